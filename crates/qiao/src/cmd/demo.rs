//! `qiao demo`: the main job on built-in data. Today: ingest the bundled Eunomia GiBleed CDM and
//! print what the store holds.

use std::path::PathBuf;

use anyhow::Context;
use qiao_ingest::{Options, Source};

#[derive(clap::Args)]
pub struct Args {
    /// The OMOP CDM CSV folder to use (default: the bundled Eunomia GiBleed test data).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "../shared/data/eunomia-gibleed-5.3"
    )]
    cdm: PathBuf,
    /// Where to put the demo's files.
    #[arg(long, value_name = "DIR", default_value = ".work/demo")]
    work: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.work)
        .with_context(|| format!("creating {}", args.work.display()))?;
    let store = args.work.join("gibleed.qiao");
    println!("== ingest {} → {}", args.cdm.display(), store.display());
    let report = qiao_ingest::ingest(
        &Source::CsvDir(args.cdm.clone()),
        &store,
        Options {
            strict: false,
            progress: true,
        },
    )
    .with_context(|| format!("ingesting {}", args.cdm.display()))?;
    println!(
        "   {} tables, {} rows in {:.2} s (+ {:.2} s to build the store); {} rows skipped, {} flagged",
        report.tables.len(),
        report.tables.values().map(|t| t.rows_kept).sum::<u64>(),
        report.read_seconds,
        report.build_seconds,
        report.problems(),
        report.flagged()
    );
    println!();
    super::stats::run(super::stats::Args {
        store,
        json: false,
        top: 5,
    })
}
