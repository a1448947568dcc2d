//! `qiao cohort`: run, explain or check OHDSI ATLAS/Circe cohort definitions on a store.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use qiao_cohort::conceptset::MemVocabulary;
use qiao_cohort::exec::{CohortStats, CsvSink, Discard, Pipeline, Prepared};
use qiao_cohort::narrative::{narrative, Lang};
use qiao_store::Store;
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Generate cohorts: entries, subjects and (with --stats) Circe's inclusion statistics.
    Run(RunArgs),
    /// Print the execution plan of a definition.
    Explain(ExplainArgs),
    /// Parse and validate definitions; print Circe's design-time warnings.
    Check(CheckArgs),
    /// Print a definition as readable text (Markdown): entry events, inclusion rules, exit, eras,
    /// concept sets, in English or Simplified Chinese.
    Print(PrintArgs),
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The store file.
    #[arg(long, required_unless_present = "spark")]
    pub store: Option<PathBuf>,
    /// Run on Apache Spark through this Spark Connect server (`sc://HOST:PORT`) over the CDM
    /// tables of --schema, instead of a store (same output; the definitions run 4 at a time).
    #[arg(long, conflicts_with_all = ["store", "per_person", "single_thread"], requires = "schema")]
    pub spark: Option<String>,
    /// With --spark: the catalog schema holding the CDM tables.
    #[arg(long, requires = "spark")]
    pub schema: Option<String>,
    /// With --spark: the schema holding the vocabulary tables (default: --schema).
    #[arg(long, requires = "spark")]
    pub vocab_schema: Option<String>,
    /// Also report inclusion rule statistics and censoring losses.
    #[arg(long)]
    pub stats: bool,
    /// One JSON object per definition on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write OHDSI cohort rows (cohort_definition_id,subject_id,cohort_start_date,cohort_end_date)
    /// to this CSV; with --stats the inclusion/summary/censor statistics CSVs go beside it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// cohort_definition_id of the first definition (the next ones count up from it).
    #[arg(long, default_value_t = 1)]
    pub cohort_id: i64,
    /// Evaluate on one thread (the results are the same).
    #[arg(long)]
    pub single_thread: bool,
    /// Evaluate every definition with the per-person evaluator instead of the fused pipeline
    /// (the results are the same; for comparison and diagnosis).
    #[arg(long)]
    pub per_person: bool,
    /// Cohort definition JSON files (ATLAS / Circe export).
    #[arg(required = true)]
    pub definitions: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// Resolve concept sets against this store's vocabulary (sizes shown in the plan).
    #[arg(long)]
    pub store: Option<PathBuf>,
    pub definition: PathBuf,
}

#[derive(clap::Args)]
pub struct PrintArgs {
    /// The language of the text: en or zh-CN.
    #[arg(long, default_value = "en", value_parser = parse_lang)]
    pub lang: Lang,
    pub definition: PathBuf,
}

fn parse_lang(s: &str) -> Result<Lang, String> {
    Lang::parse(s).ok_or_else(|| format!("unknown language {s:?} (expected en or zh-CN)"))
}

#[derive(clap::Args)]
pub struct CheckArgs {
    #[arg(required = true)]
    pub definitions: Vec<PathBuf>,
}

pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Run(a) => run_cohorts(a),
        Command::Explain(a) => explain(a),
        Command::Check(a) => check(a),
        Command::Print(a) => print_definition(a),
    }
}

fn print_definition(a: PrintArgs) -> anyhow::Result<()> {
    let def = load(&a.definition)?;
    let title = a
        .definition
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    print!("{}", narrative(&def.expression, &title, a.lang));
    Ok(())
}

fn load(path: &Path) -> anyhow::Result<qiao_cohort::CohortDefinition> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    qiao_cohort::parse(&text).with_context(|| format!("{}", path.display()))
}

fn check(a: CheckArgs) -> anyhow::Result<()> {
    let mut failed = 0;
    for p in &a.definitions {
        match load(p) {
            Ok(def) => {
                println!("{}: ok", p.display());
                for w in &def.warnings {
                    println!("  warning: {w}");
                }
                if let Err(e) = Prepared::with_vocabulary(&def, &MemVocabulary::new()) {
                    failed += 1;
                    println!("  error: {e}");
                }
            }
            Err(e) => {
                failed += 1;
                println!("{e:#}");
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} definitions are not valid",
            a.definitions.len()
        );
    }
    Ok(())
}

fn explain(a: ExplainArgs) -> anyhow::Result<()> {
    let def = load(&a.definition)?;
    let prepared = match &a.store {
        Some(s) => {
            let store = Store::open(s)?;
            Prepared::new(&def, &store)?
        }
        None => Prepared::with_vocabulary(&def, &MemVocabulary::new())?,
    };
    if a.store.is_none() {
        println!("(no --store: concept sets not resolved)");
    }
    print!("{}", prepared.explain());
    for w in prepared.warnings() {
        println!("warning: {w}");
    }
    Ok(())
}

struct StatsFiles {
    inclusion: BufWriter<File>,
    result: BufWriter<File>,
    stats: BufWriter<File>,
    summary: BufWriter<File>,
    censor: BufWriter<File>,
}

fn beside(out: &Path, suffix: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cohort".into());
    out.with_file_name(format!("{stem}_{suffix}.csv"))
}

fn create(p: &Path, header: &str) -> anyhow::Result<BufWriter<File>> {
    let mut w =
        BufWriter::new(File::create(p).with_context(|| format!("creating {}", p.display()))?);
    writeln!(w, "{header}")?;
    Ok(w)
}

impl StatsFiles {
    fn new(out: &Path) -> anyhow::Result<Self> {
        Ok(StatsFiles {
            inclusion: create(
                &beside(out, "inclusion"),
                "cohort_definition_id,rule_sequence,name,description",
            )?,
            result: create(
                &beside(out, "inclusion_result"),
                "cohort_definition_id,inclusion_rule_mask,person_count,mode_id",
            )?,
            stats: create(
                &beside(out, "inclusion_stats"),
                "cohort_definition_id,rule_sequence,person_count,gain_count,person_total,mode_id",
            )?,
            summary: create(
                &beside(out, "summary_stats"),
                "cohort_definition_id,base_count,final_count,mode_id",
            )?,
            censor: create(
                &beside(out, "censor_stats"),
                "cohort_definition_id,lost_count",
            )?,
        })
    }

    /// Circe writes the inclusion tables only for definitions with inclusion rules, and censor
    /// stats only with a censor window.
    fn write(&mut self, id: i64, s: &CohortStats) -> anyhow::Result<()> {
        if !s.rule_names.is_empty() {
            for (i, name) in s.rule_names.iter().enumerate() {
                let name = name.replace('"', "\"\"");
                writeln!(self.inclusion, "{id},{i},\"{name}\",")?;
            }
            for (mode, m) in s.modes.iter().enumerate() {
                for (mask, n) in &m.masks {
                    writeln!(self.result, "{id},{mask},{n},{mode}")?;
                }
                for (i, r) in m.rules.iter().enumerate() {
                    writeln!(
                        self.stats,
                        "{id},{i},{},{},{},{mode}",
                        r.person_count, r.gain_count, r.person_total
                    )?;
                }
                writeln!(
                    self.summary,
                    "{id},{},{},{mode}",
                    m.base_count, m.final_count
                )?;
            }
        }
        if let Some(lost) = s.censor_lost {
            writeln!(self.censor, "{id},{lost}")?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        for w in [
            &mut self.inclusion,
            &mut self.result,
            &mut self.stats,
            &mut self.summary,
            &mut self.censor,
        ] {
            w.flush()?;
        }
        Ok(())
    }
}

/// Where `qiao cohort run` generates cohorts.
enum Backend {
    Store(Store),
    #[cfg(feature = "spark")]
    Spark(qiao_spark::SparkCohorts),
}

impl Backend {
    fn open(a: &RunArgs) -> anyhow::Result<Backend> {
        match (&a.spark, &a.store) {
            #[cfg(feature = "spark")]
            (Some(url), _) => {
                let cdm = a.schema.clone().context("--spark needs --schema")?;
                let vocab = a.vocab_schema.clone().unwrap_or_else(|| cdm.clone());
                let schemas = qiao_spark::Schemas { cdm, vocab };
                Ok(Backend::Spark(qiao_spark::SparkCohorts::connect(
                    url, schemas,
                )?))
            }
            #[cfg(not(feature = "spark"))]
            (Some(_), _) => bail!("this qiao was built without the `spark` feature"),
            (None, Some(p)) => Ok(Backend::Store(Store::open(p)?)),
            (None, None) => bail!("give --store or --spark"),
        }
    }
}

/// `qiao cohort run --spark`: the definitions this many at a time.
#[cfg(feature = "spark")]
const SPARK_AT_ONCE: usize = 4;

/// One definition's run on Spark: its rows and statistics, and its own wall time in ms.
#[cfg(feature = "spark")]
type SparkRun = (
    anyhow::Result<(Vec<qiao_cohort::CohortRow>, CohortStats)>,
    f64,
);

/// Runs every definition on Spark, [`SPARK_AT_ONCE`] at a time (each run has a Connect session
/// of its own; Spark interleaves their jobs, whose time on a small CDM is mostly latency), the
/// results in the definitions' order.
#[cfg(feature = "spark")]
fn spark_runs(
    spark: &qiao_spark::SparkCohorts,
    paths: &[PathBuf],
) -> anyhow::Result<Vec<SparkRun>> {
    use rayon::prelude::*;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(SPARK_AT_ONCE.min(paths.len()).max(1))
        .build()
        .context("starting the Spark runs' threads")?;
    Ok(pool.install(|| {
        paths
            .par_iter()
            .map(|path| {
                let t0 = Instant::now();
                let r = load(path).and_then(|def| {
                    let (rows, stats, _) = spark.run(&def)?;
                    Ok((rows, stats))
                });
                (r, t0.elapsed().as_secs_f64() * 1000.0)
            })
            .collect()
    }))
}

fn run_cohorts(a: RunArgs) -> anyhow::Result<()> {
    let backend = Backend::open(&a)?;
    #[cfg(feature = "spark")]
    let mut on_spark = match &backend {
        Backend::Spark(spark) => spark_runs(spark, &a.definitions)?
            .into_iter()
            .map(Some)
            .collect(),
        Backend::Store(_) => Vec::new(),
    };
    let mut csv = match &a.out {
        Some(p) => Some(CsvSink::new(
            BufWriter::new(File::create(p).with_context(|| format!("creating {}", p.display()))?),
            a.cohort_id,
            true,
        )?),
        None => None,
    };
    let mut stats_files = match (&a.out, a.stats) {
        (Some(p), true) => Some(StatsFiles::new(p)?),
        _ => None,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = 0usize;
    let pipeline = if a.per_person {
        Pipeline::PerPerson
    } else {
        Pipeline::Fused
    };
    for (k, path) in a.definitions.iter().enumerate() {
        let cohort_id = a.cohort_id + k as i64;
        let t0 = Instant::now();
        // A run's own time (on Spark the runs overlap; assigned only with the `spark` feature).
        #[allow(unused_mut)]
        let mut took: Option<f64> = None;
        let result = load(path).and_then(|def| {
            for w in &def.warnings {
                tracing::info!("{}: {w}", path.display());
            }
            // One arm without the `spark` feature.
            #[allow(clippy::infallible_destructuring_match)]
            let store = match &backend {
                Backend::Store(store) => store,
                #[cfg(feature = "spark")]
                Backend::Spark(_) => {
                    let (run, ms) = on_spark
                        .get_mut(k)
                        .and_then(Option::take)
                        .context("internal: a definition without its Spark run")?;
                    took = Some(ms);
                    let (rows, stats) = run?;
                    if let Some(sink) = csv.take() {
                        let mut sink = CsvSink::new(sink.into_inner(), cohort_id, false)?;
                        let r = qiao_cohort::CohortSink::push_all(&mut sink, &rows);
                        csv = Some(sink);
                        r?;
                    }
                    return Ok(stats);
                }
            };
            let prepared = Prepared::new(&def, store)?;
            // Entries and subjects come with the statistics; rows go to the CSV, if any.
            let stats = match csv.take() {
                Some(sink) => {
                    let mut sink = CsvSink::new(sink.into_inner(), cohort_id, false)?;
                    let r = prepared.run_on(store, &mut sink, !a.single_thread, pipeline);
                    csv = Some(sink);
                    r?
                }
                None => prepared.run_on(store, &mut Discard, !a.single_thread, pipeline)?,
            };
            Ok(stats)
        });
        let millis = took.unwrap_or_else(|| t0.elapsed().as_secs_f64() * 1000.0);
        let stats = match result {
            Ok(r) => r,
            Err(e) => {
                failed += 1;
                if a.json {
                    let v = json!({"definition": path.display().to_string(), "error": format!("{e:#}")});
                    writeln!(out, "{v}")?;
                } else {
                    eprintln!("error: {e:#}");
                }
                continue;
            }
        };
        if let Some(f) = &mut stats_files {
            f.write(cohort_id, &stats)?;
        }
        if a.json {
            let mut v = json!({
                "definition": path.display().to_string(),
                "entries": stats.entries,
                "subjects": stats.subjects,
            });
            if a.stats {
                // `persons`: Circe's person_count (persons whose best event satisfies the
                // rule on its own); `remaining`: persons passing this rule and every rule
                // before it, the funnel line a site releases to the hub as `persons`.
                let rules: Vec<_> = stats
                    .rule_names
                    .iter()
                    .zip(&stats.modes[1].rules)
                    .enumerate()
                    .map(|(i, (name, r))| {
                        json!({"name": name, "persons": r.person_count, "gain": r.gain_count,
                               "remaining": stats.modes[1].remaining_after(i)})
                    })
                    .collect();
                v["rules"] = json!(rules);
                v["final_persons"] = json!(stats.modes[1].final_count);
                v["censor_lost"] = json!(stats.censor_lost.unwrap_or(0));
            }
            v["millis"] = json!((millis * 1000.0).round() / 1000.0);
            writeln!(out, "{v}")?;
        } else {
            writeln!(
                out,
                "{}: {} entries, {} subjects ({:.1} ms)",
                path.display(),
                stats.entries,
                stats.subjects,
                millis
            )?;
            if a.stats {
                writeln!(
                    out,
                    "  {:<40} {:>10} {:>10} {:>10}",
                    "attrition (persons, best event)", "satisfied", "gain", "remaining"
                )?;
                writeln!(
                    out,
                    "  {:<40} {:>10} {:>10} {:>10}",
                    "qualifying entry events", "", "", stats.modes[1].base_count
                )?;
                for (i, (name, r)) in stats
                    .rule_names
                    .iter()
                    .zip(&stats.modes[1].rules)
                    .enumerate()
                {
                    let label: String = format!("{i}. {name}").chars().take(40).collect();
                    writeln!(
                        out,
                        "  {:<40} {:>10} {:>10} {:>10}",
                        label,
                        r.person_count,
                        r.gain_count,
                        stats.modes[1].remaining_after(i)
                    )?;
                }
                writeln!(
                    out,
                    "  {:<40} {:>10} {:>10} {:>10}",
                    "final (all rules)", "", "", stats.modes[1].final_count
                )?;
                if let Some(lost) = stats.censor_lost {
                    writeln!(out, "  lost to the censor window: {lost} persons")?;
                }
            }
        }
    }
    if let Some(sink) = csv {
        sink.into_inner().flush()?;
    }
    if let Some(f) = &mut stats_files {
        f.flush()?;
    }
    if failed > 0 {
        bail!("{failed} of {} definitions failed", a.definitions.len());
    }
    Ok(())
}
