//! `qiao ingest`: OMOP CDM (CSV folder or PostgreSQL schema) → store, with a data-quality report.

use std::path::{Path, PathBuf};

use anyhow::Context;
use qiao_ingest::{
    IngestReport, Options, PostgresSource, ReadOptions, Source, TextEncoding, DEFAULT_NULL_TOKENS,
};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").args(["cdm", "postgres"])))]
pub struct Args {
    /// Folder with one CSV/TSV file per CDM table (`person.csv` or `PERSON.csv`, …).
    #[arg(long, value_name = "DIR")]
    cdm: Option<PathBuf>,
    /// PostgreSQL connection: a URL (postgres://user@host:port/db?sslmode=verify-full&sslrootcert=…)
    /// or libpq `key=value` pairs; without a value, or when neither --cdm nor --postgres is given,
    /// $QIAO_PG_URL. PGHOST, PGUSER, PGPASSWORD, PGSERVICE, PGSSLMODE, … and ~/.pgpass fill in
    /// what it leaves out, so no password needs to be on the command line.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    postgres: Option<String>,
    /// CDM schema in the PostgreSQL database.
    #[arg(long, value_name = "S")]
    schema: Option<String>,
    /// Vocabulary schema (concept, concept_ancestor, concept_relationship); default: the CDM schema.
    #[arg(long, value_name = "V")]
    vocab_schema: Option<String>,
    /// The time zone `timestamptz` columns are read in (e.g. Asia/Shanghai); default: the
    /// server's TimeZone setting. The zone used is reported.
    #[arg(long, value_name = "ZONE")]
    timezone: Option<String>,
    /// Ingest a CDM whose vocabulary tables are missing or empty; cohort definitions that need
    /// descendants or mapped concepts are then refused on the store.
    #[arg(long)]
    no_vocabulary: bool,
    /// Text encoding of the CSV/TSV files: utf-8, gb18030, windows-1252 or auto (detected per file).
    #[arg(long, value_name = "ENC", default_value = "auto")]
    encoding: TextEncoding,
    /// Process quotes in tab-delimited files too (by default tab files are read unquoted, as
    /// Athena writes them; comma files are always quoted).
    #[arg(long)]
    quote: bool,
    /// A field value read as NULL (repeatable; replaces the default NA, NULL, \N, null).
    #[arg(long = "null", value_name = "TOKEN")]
    null_tokens: Vec<String>,
    /// A quoted field running across more lines than this is reported as a runaway quote.
    #[arg(long, value_name = "N", default_value_t = 100)]
    max_field_lines: u64,
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
    /// Megabytes of rows held in memory while the store is built; more are sorted in temporary
    /// files beside the store (default 512, or $QIAO_INGEST_MEMORY_MB).
    #[arg(long, value_name = "MB")]
    memory_mb: Option<usize>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let source = match (&args.cdm, &args.postgres) {
        (Some(dir), _) => Source::CsvDir(dir.clone()),
        (None, pg) => {
            let url = match pg.as_deref() {
                Some(url) if !url.is_empty() => url.to_string(),
                _ => match std::env::var("QIAO_PG_URL") {
                    Ok(url) => url,
                    Err(_) if pg.is_some() => String::new(),
                    Err(_) => anyhow::bail!(
                        "give --cdm DIR, or --postgres [URL] --schema S (or set QIAO_PG_URL)"
                    ),
                },
            };
            let Some(schema) = args.schema.clone() else {
                anyhow::bail!("--schema S is needed with a PostgreSQL source");
            };
            Source::Postgres(PostgresSource {
                url,
                schema,
                vocab_schema: args.vocab_schema.clone(),
                timezone: args.timezone.clone(),
            })
        }
    };
    remove_temporary_on_termination(&args.out);
    let null_tokens = if args.null_tokens.is_empty() {
        DEFAULT_NULL_TOKENS.iter().map(|s| s.to_string()).collect()
    } else {
        args.null_tokens.clone()
    };
    let report = qiao_ingest::ingest(
        &source,
        &args.out,
        Options {
            strict: args.strict,
            progress: !args.json,
            no_vocabulary: args.no_vocabulary,
            text: ReadOptions {
                quote_tabs: args.quote,
                null_tokens,
                encoding: args.encoding,
                max_field_lines: args.max_field_lines,
                ..ReadOptions::default()
            },
            memory_budget: args.memory_mb.map(|mb| mb << 20),
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

/// On SIGTERM, SIGINT or SIGHUP, removes the store's temporary file (`.<name>.…-<pid>` beside it,
/// as the store writes it) and exits with 128 + the signal number.
fn remove_temporary_on_termination(out: &Path) {
    use tokio::signal::unix::{signal, SignalKind};
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.");
    let suffix = format!("-{}", std::process::id());
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let kinds = [
        (SignalKind::terminate(), 15),
        (SignalKind::interrupt(), 2),
        (SignalKind::hangup(), 1),
    ];
    // Registered here, before any file is written; waited for on a thread of its own.
    let streams: Vec<_> = rt.block_on(async {
        kinds
            .iter()
            .filter_map(|(k, n)| signal(*k).ok().map(|s| (s, *n)))
            .collect()
    });
    std::thread::spawn(move || {
        let number = rt.block_on(async move {
            let waits = streams.into_iter().map(|(mut s, n)| {
                Box::pin(async move {
                    s.recv().await;
                    n
                })
            });
            futures_select_all(waits).await
        });
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let f = e.file_name().to_string_lossy().into_owned();
                if f.starts_with(&prefix) && f.ends_with(&suffix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        eprintln!("qiao ingest: interrupted (signal {number}); nothing was written");
        std::process::exit(128 + number);
    });
}

/// The first of several futures to finish.
async fn futures_select_all<F: std::future::Future<Output = i32> + Unpin>(
    futures: impl IntoIterator<Item = F>,
) -> i32 {
    let mut futures: Vec<F> = futures.into_iter().collect();
    std::future::poll_fn(move |cx| {
        for f in futures.iter_mut() {
            if let std::task::Poll::Ready(n) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(n);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

fn print_summary(report: &IngestReport, out: &Path) {
    if let Some(c) = &report.connection {
        println!("connection: {c}");
    }
    if let Some(z) = &report.timezone {
        println!("timestamptz read in: {z}");
    }
    println!(
        "{:<22} {:>12} {:>12} {:>9} {:>9} {:>9} {:>11}",
        "table", "rows read", "rows kept", "skipped", "flagged", "orphans", "outside OP"
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
    if !report.absent_tables.is_empty() {
        println!("\nabsent tables: {}", report.absent_tables.join(", "));
    }
    if !report.missing_vocabulary.is_empty() {
        println!(
            "no vocabulary (--no-vocabulary): {}",
            report.missing_vocabulary.join(", ")
        );
    }
    let decoded: Vec<String> = report
        .tables
        .iter()
        .filter(|(_, t)| !t.encoding.is_empty() && !t.encoding.starts_with("UTF-8 (detected)"))
        .map(|(n, t)| format!("{n}: {}", t.encoding))
        .collect();
    if !decoded.is_empty() {
        println!("text encoding: {}", decoded.join(", "));
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
