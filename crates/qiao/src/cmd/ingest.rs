//! `qiao ingest`: OMOP CDM (CSV folder or PostgreSQL schema) → store, with a data-quality report.

use std::path::PathBuf;

use anyhow::Context;
use qiao_ingest::{IngestReport, Options, PostgresSource, Source};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["cdm", "postgres"])))]
pub struct Args {
    /// Folder with one CSV/TSV file per CDM table (`person.csv` or `PERSON.csv`, …).
    #[arg(long, value_name = "DIR")]
    cdm: Option<PathBuf>,
    /// PostgreSQL URL of the CDM database (e.g. postgres://user:pw@host/db).
    #[arg(long, value_name = "URL", requires = "schema")]
    postgres: Option<String>,
    /// CDM schema in the PostgreSQL database.
    #[arg(long, value_name = "S")]
    schema: Option<String>,
    /// Vocabulary schema (concept, concept_ancestor, concept_relationship); default: the CDM schema.
    #[arg(long, value_name = "V")]
    vocab_schema: Option<String>,
    /// The store file to write (replaced atomically when complete).
    #[arg(long, value_name = "STORE")]
    out: PathBuf,
    /// Fail on the first bad row instead of skipping and reporting it; nothing is written then.
    #[arg(long)]
    strict: bool,
    /// Also write the full data-quality report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Print the report as one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let source = match (&args.cdm, &args.postgres) {
        (Some(dir), _) => Source::CsvDir(dir.clone()),
        (None, Some(url)) => Source::Postgres(PostgresSource {
            url: url.clone(),
            schema: args.schema.clone().unwrap_or_default(),
            vocab_schema: args.vocab_schema.clone(),
        }),
        (None, None) => anyhow::bail!("give --cdm DIR or --postgres URL --schema S"),
    };
    let report = qiao_ingest::ingest(
        &source,
        &args.out,
        Options {
            strict: args.strict,
            progress: !args.json,
        },
    )?;
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_summary(&report, &args.out);
    }
    Ok(())
}

fn print_summary(report: &IngestReport, out: &std::path::Path) {
    println!(
        "{:<22} {:>12} {:>12} {:>9} {:>9} {:>9} {:>11}",
        "table", "rows read", "rows kept", "skipped", "dup keys", "orphans", "outside OP"
    );
    for (name, t) in &report.tables {
        println!(
            "{:<22} {:>12} {:>12} {:>9} {:>9} {:>9} {:>11}",
            name,
            t.rows_read,
            t.rows_kept,
            t.rows_skipped(),
            t.rows_flagged(),
            t.orphans,
            t.outside_observation
        );
    }
    let problems: Vec<_> = report
        .tables
        .values()
        .flat_map(|t| t.samples.iter())
        .collect();
    if !problems.is_empty() {
        println!(
            "\n{} bad row(s) skipped, {} kept but flagged; first ones:",
            report.problems(),
            report.flagged()
        );
        for p in problems.iter().take(10) {
            println!("  {p}");
        }
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    println!(
        "\nwrote {} (read {:.2} s, build {:.2} s)",
        out.display(),
        report.read_seconds,
        report.build_seconds
    );
}
