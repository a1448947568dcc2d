//! `qiao store`: the store file itself.

use std::path::PathBuf;
use std::time::Instant;

use qiao_store::Store;
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Read the whole store and check every section's checksum and every index invariant.
    /// (Opening a store checks only its header, table of contents, footer and structure, in time
    /// independent of its size; `qiao ingest` verifies every store it writes.)
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The store file.
    pub store: PathBuf,
    /// One JSON object: {"store", "ok": true, "sections", "bytes", "seconds"}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Verify(a) => verify(a),
    }
}

fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let store = Store::open(&a.store)?;
    let v = store.verify()?;
    let seconds = t0.elapsed().as_secs_f64();
    if a.json {
        let o = json!({
            "store": a.store.display().to_string(),
            "ok": true,
            "sections": v.sections,
            "bytes": v.bytes,
            "seconds": seconds,
        });
        println!("{o}");
    } else {
        println!(
            "{}: ok ({} sections, {:.1} MB checked in {seconds:.2} s)",
            a.store.display(),
            v.sections,
            v.bytes as f64 / 1e6
        );
    }
    Ok(())
}
