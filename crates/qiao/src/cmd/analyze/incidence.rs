//! `qiao analyze incidence`: CohortIncidence 4.1.1 incidence proportions and rates (with exact
//! 95% intervals), exact, on a local store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use qiao_analysis::cohorts::cohort_rows;
use qiao_analysis::incidence::{self, design, Cohorts, Design};
use qiao_store::Store;
use serde_json::Value;

#[derive(clap::Args)]
pub struct Args {
    /// The store file.
    #[arg(long)]
    pub store: PathBuf,
    /// A CohortIncidence design (JSON). Its cohorts come from `"cohortDefinitions": {"ID": PATH or
    /// inline Circe JSON}` in the design (paths relative to the design's folder) and `--cohort`.
    #[arg(long, conflicts_with_all = ["target", "outcome"])]
    pub design: Option<PathBuf>,
    /// A cohort of the design: ID=PATH of a Circe JSON definition (repeatable).
    #[arg(long = "cohort", value_name = "ID=PATH")]
    pub cohorts: Vec<String>,
    /// Short form: the target cohort (Circe JSON), cohort id 1.
    #[arg(long, requires = "outcome")]
    pub target: Option<PathBuf>,
    /// Short form: the outcome cohort (Circe JSON), cohort id 2, outcome id 1.
    #[arg(long, requires = "target")]
    pub outcome: Option<PathBuf>,
    /// Short form: a time at risk `start+0:end+0` (anchor start|end, signed day offset); repeatable,
    /// ids 1, 2, …; default `start+0:end+0`.
    #[arg(long = "tar", allow_hyphen_values = true)]
    pub tars: Vec<String>,
    /// Short form: the outcome's clean window in days.
    #[arg(long, default_value_t = 0)]
    pub clean_window: i32,
    /// Short form: strata, any of age,gender,year.
    #[arg(long, value_delimiter = ',')]
    pub strata: Vec<String>,
    /// Short form: age group breaks (e.g. 40,65 → <40, 40 - 64, >=65).
    #[arg(long, value_delimiter = ',')]
    pub age_breaks: Vec<i32>,
    /// `source_name` of the rows.
    #[arg(long, default_value = "")]
    pub source_name: String,
    /// Print `{"rows": [...]}` instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Parses `start+0:end+0`.
pub(crate) fn parse_tar(id: i64, s: &str) -> anyhow::Result<design::TimeAtRisk> {
    let anchor = |part: &str| -> anyhow::Result<design::Anchor> {
        let (field, rest) = if let Some(r) = part.strip_prefix("start") {
            (design::DateField::Start, r)
        } else if let Some(r) = part.strip_prefix("end") {
            (design::DateField::End, r)
        } else {
            bail!("--tar {s}: {part:?} must start with `start` or `end`")
        };
        let offset = if rest.is_empty() {
            0
        } else {
            rest.parse::<i32>().with_context(|| {
                format!("--tar {s}: {rest:?} is not a day offset like +0 or -30")
            })?
        };
        Ok(design::Anchor {
            date_field: field,
            offset,
        })
    };
    let Some((a, b)) = s.split_once(':') else {
        bail!("--tar {s}: expected START:END, e.g. start+0:end+0")
    };
    Ok(design::TimeAtRisk {
        id,
        start: anchor(a)?,
        end: anchor(b)?,
    })
}

fn short_design(a: &Args) -> anyhow::Result<Design> {
    let tar_specs: Vec<String> = if a.tars.is_empty() {
        vec!["start+0:end+0".into()]
    } else {
        a.tars.clone()
    };
    let tars = tar_specs
        .iter()
        .enumerate()
        .map(|(i, s)| parse_tar(i as i64 + 1, s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut strata = design::StrataSettings {
        age_breaks: a.age_breaks.clone(),
        ..Default::default()
    };
    for s in &a.strata {
        match s.as_str() {
            "age" => strata.by_age = true,
            "gender" => strata.by_gender = true,
            "year" => strata.by_year = true,
            other => bail!("--strata: {other:?} is not one of age, gender, year"),
        }
    }
    if strata.by_age && strata.age_breaks.is_empty() {
        bail!("--strata age needs --age-breaks (e.g. --age-breaks 40,65)");
    }
    Ok(Design {
        target_defs: vec![design::TargetDef {
            id: 1,
            name: Some("target".into()),
        }],
        outcome_defs: vec![design::OutcomeDef {
            id: 1,
            name: Some("outcome".into()),
            cohort_id: 2,
            clean_window: a.clean_window,
            exclude_cohort_id: None,
        }],
        analysis_list: vec![design::AnalysisSpec {
            targets: vec![1],
            outcomes: vec![1],
            tars: tars.iter().map(|t| t.id).collect(),
        }],
        time_at_risk_defs: tars,
        strata_settings: Some(strata),
        subgroups: Vec::new(),
        study_window: None,
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let store = Store::open(&a.store)?;
    let mut cohorts: Cohorts = HashMap::new();
    let mut add = |id: i64, name: &str, json: &str| -> anyhow::Result<()> {
        cohorts.insert(id, cohort_rows(&store, name, json)?);
        Ok(())
    };
    let design = match (&a.design, &a.target, &a.outcome) {
        (Some(path), _, _) => {
            let text = read(path)?;
            let design = Design::parse(&path.display().to_string(), &text)?;
            let raw: Value = serde_json::from_str(&text)?;
            if let Some(defs) = raw.get("cohortDefinitions").and_then(Value::as_object) {
                let dir = path.parent().unwrap_or(Path::new("."));
                for (id, def) in defs {
                    let cid: i64 = id.parse().with_context(|| {
                        format!(
                            "{}: cohortDefinitions.{id}: not a cohort id",
                            path.display()
                        )
                    })?;
                    match def {
                        Value::String(p) => {
                            let p = dir.join(p);
                            add(cid, &p.display().to_string(), &read(&p)?)?
                        }
                        inline => add(
                            cid,
                            &format!("{}: cohortDefinitions.{id}", path.display()),
                            &inline.to_string(),
                        )?,
                    }
                }
            }
            design
        }
        (None, Some(t), Some(o)) => {
            add(1, &t.display().to_string(), &read(t)?)?;
            add(2, &o.display().to_string(), &read(o)?)?;
            short_design(&a)?
        }
        _ => bail!("give --design DESIGN.json, or --target T.json --outcome O.json"),
    };
    for c in &a.cohorts {
        let Some((id, p)) = c.split_once('=') else {
            bail!("--cohort {c}: expected ID=PATH")
        };
        let id: i64 = id
            .parse()
            .with_context(|| format!("--cohort {c}: {id:?} is not a cohort id"))?;
        let p = PathBuf::from(p);
        add(id, &p.display().to_string(), &read(&p)?)?;
    }
    let mut rows = incidence::run(&store, &design, &cohorts, &a.source_name)?;
    incidence::sort_rows(&mut rows);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "rows": rows }))?
        );
        return Ok(());
    }
    let opt = |x: Option<i64>| x.map_or("-".into(), |v| v.to_string());
    let f = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.3}"));
    println!(
        "{:>6} {:>4} {:>3} {:>4} {:>4} {:>8} {:>5} {:>9} {:>9} {:>10} {:>8} {:>8} {:>8}  IR/100PY [95% CI]        IP/100P [95% CI]",
        "target", "tar", "sg", "out", "age", "gender", "year", "persons", "pers.pe", "days", "p.outc", "outc", "outc.pe"
    );
    for r in &rows {
        println!(
            "{:>6} {:>4} {:>3} {:>4} {:>4} {:>8} {:>5} {:>9} {:>9} {:>10} {:>8} {:>8} {:>8}  {} [{}, {}]  {} [{}, {}]",
            r.target_cohort_definition_id,
            r.tar_id,
            r.subgroup_id,
            r.outcome_id,
            opt(r.age_group_id),
            opt(r.gender_id),
            opt(r.start_year.map(i64::from)),
            r.persons_at_risk,
            r.persons_at_risk_pe,
            r.person_days,
            r.person_outcomes,
            r.outcomes,
            r.outcomes_pe,
            f(r.incidence_rate_p100py),
            f(r.ir_ci95_low),
            f(r.ir_ci95_high),
            f(r.incidence_proportion_p100p),
            f(r.ip_ci95_low),
            f(r.ip_ci95_high),
        );
    }
    Ok(())
}
