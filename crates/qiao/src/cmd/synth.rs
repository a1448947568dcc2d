//! `qiao synth`: synthetic hospitals (or exact K-fold replicas) resampled from a source CDM.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Source OMOP CDM CSV folder (file names matched case-insensitively).
    #[arg(long, value_name = "CDM_DIR", default_value = qiao_synth::DEFAULT_SOURCE)]
    from: PathBuf,
    /// Output folder: DIR/hospital_1, DIR/hospital_2, … (with --replicate: DIR itself).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Number of hospitals.
    #[arg(long, value_name = "N", default_value_t = 3)]
    hospitals: u32,
    /// Geometric mean hospital size in persons (sizes spread around it, see --size-spread).
    #[arg(long, value_name = "P", default_value_t = 1000)]
    persons: u64,
    /// Seed of every random choice (same seed, same files).
    #[arg(long, value_name = "S", default_value_t = 42)]
    seed: u64,
    /// Largest / smallest hospital size (geometric spread, largest first; 1 = all equal).
    #[arg(long, value_name = "RATIO", default_value_t = 4.0)]
    size_spread: f64,
    /// Marker concepts (common conditions/drugs) over-represented per hospital.
    #[arg(long, value_name = "M", default_value_t = 3)]
    case_mix: u32,
    /// Shift each person's timeline by up to ±Y whole years (±182 days); 0 keeps source dates.
    #[arg(long, value_name = "Y", default_value_t = 5)]
    shift_years: u32,
    /// Instead of hospitals: K exact copies of the source in DIR, ids offset per copy, dates unchanged.
    #[arg(
        long,
        value_name = "K",
        conflicts_with_all = ["hospitals", "persons", "seed", "size_spread", "case_mix", "shift_years"]
    )]
    replicate: Option<u32>,
    /// No per-table progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut out = std::io::stdout().lock();
    if let Some(k) = args.replicate {
        let s = qiao_synth::replicate_with(&qiao_synth::ReplicateOptions {
            from: args.from.clone(),
            copies: k,
            out: args.out.clone(),
            progress,
        })
        .with_context(|| format!("replicating {}", args.from.display()))?;
        writeln!(
            out,
            "{}: {} copies of {} (id offset {}): {} persons, {} clinical rows ({} in all), {:.1} MB in {:.1}s",
            s.out.display(),
            s.copies,
            args.from.display(),
            s.id_offset,
            s.persons,
            s.clinical_rows,
            s.rows,
            s.bytes as f64 / 1e6,
            started.elapsed().as_secs_f64()
        )?;
        for t in &s.tables {
            writeln!(out, "  {:<24} {:>12} rows", t.name, t.rows)?;
        }
        if !s.skipped.is_empty() {
            writeln!(out, "  skipped: {}", s.skipped.join(", "))?;
        }
        return Ok(());
    }
    let opts = qiao_synth::HospitalOptions {
        from: args.from.clone(),
        out: args.out.clone(),
        hospitals: args.hospitals,
        persons: args.persons,
        seed: args.seed,
        size_spread: args.size_spread,
        case_mix: args.case_mix,
        shift_years: args.shift_years,
        progress,
    };
    let hs = qiao_synth::hospitals(&opts)
        .with_context(|| format!("synthesizing hospitals from {}", args.from.display()))?;
    writeln!(
        out,
        "{}: {} hospitals from {} (seed {}) in {:.1}s",
        args.out.display(),
        hs.len(),
        args.from.display(),
        args.seed,
        started.elapsed().as_secs_f64()
    )?;
    for h in &hs {
        writeln!(
            out,
            "  {:<12} {:>9} persons {:>11} clinical rows {:>9.1} MB  age tilt {:+.2}",
            h.name,
            h.persons,
            h.clinical_rows,
            h.bytes as f64 / 1e6,
            h.age_tilt
        )?;
        for b in &h.case_mix {
            writeln!(
                out,
                "    x{:.2} {} {} ({}, {} source persons)",
                b.factor,
                b.concept_id,
                b.concept_name.as_deref().unwrap_or("?"),
                b.table,
                b.source_persons
            )?;
        }
    }
    if let Some(h) = hs.first() {
        let orphans: Vec<String> = h
            .tables
            .iter()
            .filter(|t| t.orphan_rows > 0)
            .map(|t| format!("{} {}", t.name, t.orphan_rows))
            .collect();
        if !orphans.is_empty() {
            writeln!(out, "  orphan source rows left out: {}", orphans.join(", "))?;
        }
        if !h.skipped.is_empty() {
            writeln!(out, "  skipped: {}", h.skipped.join(", "))?;
        }
    }
    Ok(())
}
