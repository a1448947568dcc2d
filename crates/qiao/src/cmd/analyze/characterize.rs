//! `qiao analyze characterize`: FeatureExtraction aggregated covariates of a target cohort (and a
//! comparator, with standardized differences), exact, on a local store.

use std::path::PathBuf;

use anyhow::Context as _;
use qiao_analysis::characterization::{
    self, Binary, Characterization, Compared, Continuous, Settings,
};
use qiao_analysis::cohorts::cohort_rows;
use qiao_store::Store;
use serde_json::{json, Value};

#[derive(clap::Args)]
pub struct Args {
    /// The store file.
    #[arg(long)]
    pub store: PathBuf,
    /// The target cohort: an ATLAS/Circe JSON definition.
    #[arg(long)]
    pub target: PathBuf,
    /// A comparator cohort (Circe JSON): adds its covariates and FE's standardized difference.
    #[arg(long)]
    pub comparator: Option<PathBuf>,
    /// FeatureExtraction analysis ids (comma-separated); default: FE's default set.
    #[arg(long, value_delimiter = ',')]
    pub analyses: Option<Vec<u32>>,
    /// Window start days (FE's longTermStartDays, mediumTermStartDays, shortTermStartDays) and end day.
    #[arg(long, default_value_t = -365, allow_hyphen_values = true)]
    pub long_term_start_days: i32,
    #[arg(long, default_value_t = -180, allow_hyphen_values = true)]
    pub medium_term_start_days: i32,
    #[arg(long, default_value_t = -30, allow_hyphen_values = true)]
    pub short_term_start_days: i32,
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub end_days: i32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn characterize_file(
    store: &Store,
    path: &PathBuf,
    settings: &Settings,
) -> anyhow::Result<Characterization> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let rows = cohort_rows(store, &path.display().to_string(), &text)?;
    Ok(characterization::characterize(store, &rows, settings)?)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let store = Store::open(&a.store)?;
    let mut settings = Settings {
        long_term_start_days: a.long_term_start_days,
        medium_term_start_days: a.medium_term_start_days,
        short_term_start_days: a.short_term_start_days,
        end_days: a.end_days,
        ..Settings::default()
    };
    if let Some(ids) = a.analyses {
        settings.analysis_ids = ids;
    }
    let target = characterize_file(&store, &a.target, &settings)?;
    let comparator = match &a.comparator {
        Some(p) => Some(characterize_file(&store, p, &settings)?),
        None => None,
    };
    let report = report(&target, comparator.as_ref());
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

/// The `--json` object (the shape issue #15 gives).
pub fn report(target: &Characterization, comparator: Option<&Characterization>) -> Value {
    let cmp = characterization::compare(target, comparator);
    let binary = |b: Option<&Binary>| json!({"sum": b.map_or(0, |b| b.sum), "mean": b.map_or(0.0, |b| b.mean)});
    let continuous = |c: Option<&Continuous>| {
        c.map_or(Value::Null, |c| {
            serde_json::to_value(c.stats).unwrap_or(Value::Null)
        })
    };
    let has_comparator = comparator.is_some();
    let binary_id = |b: &Binary| (b.covariate_id, b.analysis_id, b.concept_id, b.name.clone());
    let continuous_id =
        |c: &Continuous| (c.covariate_id, c.analysis_id, c.concept_id, c.name.clone());
    let covariates = rows(&cmp.binary, binary_id, binary, has_comparator);
    let continuous_rows = rows(&cmp.continuous, continuous_id, continuous, has_comparator);
    json!({
        "target": target.population,
        "comparator": comparator.map(|c| c.population),
        "covariates": covariates,
        "continuous": continuous_rows,
    })
}

fn print_table(r: &Value) {
    let pop = |v: &Value| format!("{} entries, {} subjects", v["entries"], v["subjects"]);
    println!("target: {}", pop(&r["target"]));
    if !r["comparator"].is_null() {
        println!("comparator: {}", pop(&r["comparator"]));
    }
    let num = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.4}"));
    println!(
        "{:>14}  {:>9} {:>8}  {:>9} {:>8}  {:>8}  name",
        "covariate_id", "t.sum", "t.mean", "c.sum", "c.mean", "smd"
    );
    if let Some(rows) = r["covariates"].as_array() {
        for c in rows {
            println!(
                "{:>14}  {:>9} {:>8}  {:>9} {:>8}  {:>8}  {}",
                c["covariate_id"],
                c["target"]["sum"],
                num(&c["target"]["mean"]),
                c["comparator"]["sum"]
                    .as_u64()
                    .map_or("-".into(), |s| s.to_string()),
                num(&c["comparator"]["mean"]),
                num(&c["smd"]),
                c["name"].as_str().unwrap_or("")
            );
        }
    }
    if let Some(rows) = r["continuous"].as_array() {
        for c in rows {
            let t = &c["target"];
            println!(
                "{:>14}  count {} mean {} sd {} min {} p10 {} p25 {} median {} p75 {} p90 {} max {}  smd {}  {}",
                c["covariate_id"],
                t["count"],
                num(&t["mean"]),
                num(&t["sd"]),
                t["min"],
                t["p10"],
                t["p25"],
                t["median"],
                t["p75"],
                t["p90"],
                t["max"],
                num(&c["smd"]),
                c["name"].as_str().unwrap_or("")
            );
        }
    }
}

/// One JSON row per compared covariate: its ids and name (from whichever side has it), each
/// side's statistics and the SMD.
fn rows<T>(
    items: &[Compared<T>],
    id: impl Fn(&T) -> (i64, u32, i64, String),
    side: impl Fn(Option<&T>) -> Value,
    has_comparator: bool,
) -> Vec<Value> {
    items
        .iter()
        .filter_map(|c| {
            let (covariate_id, analysis_id, concept_id, name) =
                id(c.target.as_ref().or(c.comparator.as_ref())?);
            Some(json!({
                "covariate_id": covariate_id,
                "analysis_id": analysis_id,
                "concept_id": concept_id,
                "name": name,
                "target": side(c.target.as_ref()),
                "comparator": has_comparator.then(|| side(c.comparator.as_ref())),
                "smd": c.smd,
            }))
        })
        .collect()
}
