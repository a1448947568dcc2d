//! `qiao-synth`: synthetic OMOP CDM CSV folders for demos, tests and benchmarks, made from a real
//! (synthetic-patient) source CDM such as Eunomia GiBleed.
//!
//! Two products:
//!
//! * [`replicate`]: `K` exact copies of the source in one folder. Copy `k` (0-based) adds
//!   `k * id_offset` to every id column of the person and clinical tables (`id_offset` is the
//!   smallest power of ten above the span of the source ids); dates and everything else are
//!   unchanged, and **all** rows are replicated, including orphans (e.g. GiBleed's 2,649
//!   `observation_period` rows whose person is not in `person`), so every cohort count scales by
//!   exactly `K`. `provider_id`, `care_site_id` and `location_id` are not offset: the reference
//!   tables they point into are written once, unchanged.
//! * [`hospitals`]: `N` hospital folders (`hospital_1`, …) of resampled person timelines.
//!   Each hospital draws its persons from the source with replacement; copy `c` (0-based) of a
//!   hospital adds `(c + 1) * id_offset` to every id column of that person's rows (so person,
//!   visit, visit detail and event ids stay consistent within a copy and unique across copies),
//!   and shifts the copy's whole timeline by one number of days: a whole number of years in
//!   `-shift_years..=shift_years` plus up to ±182 days. Every date column moves, datetimes move
//!   (their time of day is kept; an unparseable datetime is blanked), and so do year, month and
//!   day of birth (exactly when all three are known, else the year by the nearest whole number of
//!   years), so ages at every event are unchanged.
//!
//! Per-hospital differences, all drawn from the seed (ChaCha8, one stream per hospital):
//!
//! * **Size**: hospital `i` of `N` (0-based) gets `round(P * spread^(1/2 - i/(N-1)))` persons, a
//!   geometric spread from `P*sqrt(spread)` (hospital_1) down to `P/sqrt(spread)` (hospital_N)
//!   with geometric mean `P` (see [`hospital_sizes`]). It does not depend on the seed.
//! * **Age mix**: an age tilt `t` uniform in `[-1, 1]`; a source person born in decade band `b` is
//!   drawn with weight `2^(t*z_b)`, `z_b` running from -1 (oldest band) to +1 (youngest): so up to
//!   4x more young (t > 0) or old (t < 0) patients than the source.
//! * **Case mix**: a pool of marker concepts: the 10 condition concepts
//!   (`condition_occurrence.condition_concept_id`) and 10 drug concepts
//!   (`drug_exposure.drug_concept_id`) held by most source persons among those with a prevalence
//!   between 1% and 50%. Each hospital picks `case_mix` of them and a boost factor uniform in
//!   `[2, 4)` for each; a source person's weight is multiplied by the factor of every picked
//!   concept they have.
//!
//! Orphans in hospitals: rows whose person is not in `person` belong to no timeline, so they are
//! **not** written (each [`TableSummary::orphan_rows`] counts them); every row of a hospital belongs
//! to a person of its `person.csv`.
//!
//! Tables: the person and clinical tables of [`qiao_cdm::TABLES`] are replicated / resampled (every
//! column of the source file is kept, in its order, with lower-case names). The schema's
//! vocabulary and reference tables (concept, concept_ancestor, concept_relationship, care_site,
//! location, provider) and [`COPIED_EXTRA_TABLES`] (cdm_source, vocabulary, domain, relationship,
//! concept_synonym, …) are copied byte for byte. Any other table (cost, note, note_nlp,
//! fact_relationship, cohort, cohort_attribute, episode, …) is skipped and listed in the summary:
//! their ids point into several tables by domain, which this crate does not remap. Each output folder
//! also gets a `ROWCOUNTS.tsv` (`table<TAB>rows`) like the project's test data.
//!
//! Output: lower-case `table.csv`, comma-delimited, header row, `\n` line ends, dates `YYYY-MM-DD`,
//! empty = NULL; ids written as plain integers (a source `10204.0` becomes `10204`). Files are
//! overwritten; files of an earlier run that this run does not write (e.g. `hospital_5` of a
//! 5-hospital run when now writing 3) are left alone.

use std::path::{Path, PathBuf};

mod error;
mod hospitals;
mod out;
mod replicate;
mod source;
mod template;

pub use error::{Error, Result};
pub use hospitals::{
    hospital_sizes, hospitals, CaseMixBoost, HospitalOptions, HospitalSummary,
    MAX_HOSPITAL_PERSONS, MAX_SHIFT_YEARS,
};
pub use replicate::{replicate, replicate_with, ReplicateOptions};
pub use source::COPIED_EXTRA_TABLES;
pub use template::UNCHANGED_ID_COLUMNS;

/// The default source CDM, relative to the working directory (the project root).
pub const DEFAULT_SOURCE: &str = "../shared/data/eunomia-gibleed-5.3";

/// How a table reached the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// `K` copies of every source row with offset ids ([`replicate`]).
    Replicated,
    /// The rows of the sampled persons, with new ids and shifted dates ([`hospitals`]).
    Resampled,
    /// The source file, byte for byte (vocabulary and reference tables).
    Copied,
}

/// One table written.
#[derive(Debug, Clone)]
pub struct TableSummary {
    /// Lower-case table name.
    pub name: String,
    pub path: PathBuf,
    /// Data rows written (without the header).
    pub rows: u64,
    pub bytes: u64,
    pub written: Written,
    /// Source rows whose person is not in the source `person` table (replicated with the rest by
    /// [`replicate`], left out by [`hospitals`]). 0 for copied tables.
    pub orphan_rows: u64,
}

/// What [`replicate`] wrote.
#[derive(Debug, Clone)]
pub struct Summary {
    pub out: PathBuf,
    pub copies: u32,
    /// Copy `k` added `k * id_offset` to every id.
    pub id_offset: i64,
    /// Rows written to `person.csv`.
    pub persons: u64,
    /// Rows of every table written.
    pub rows: u64,
    /// Rows of the person and clinical tables (without vocabulary and reference tables).
    pub clinical_rows: u64,
    pub bytes: u64,
    /// Tables written, sorted by name.
    pub tables: Vec<TableSummary>,
    /// Source tables not written (outside the schema and not reference data).
    pub skipped: Vec<String>,
}

/// Smallest power of ten (at least 10) strictly above `span`.
fn power_of_ten_above(span: i128) -> Option<i64> {
    let mut p: i128 = 10;
    while p <= span {
        p *= 10;
    }
    i64::try_from(p).ok()
}

/// The id offset for a set of tables, checked so that `max_copy * offset` plus any id fits an i64.
fn id_offset(
    ranges: impl Iterator<Item = Option<(i64, i64)>>,
    max_copy: u64,
    what: &str,
) -> Result<i64> {
    let (mut lo, mut hi) = (0i64, 0i64);
    for (a, b) in ranges.flatten() {
        lo = lo.min(a);
        hi = hi.max(b);
    }
    let span = hi as i128 - lo as i128;
    let too_big = || {
        Error::Invalid(format!(
            "{what}: ids up to {hi} times {max_copy} copies do not fit a 64-bit id"
        ))
    };
    let offset = power_of_ten_above(span).ok_or_else(too_big)?;
    if (max_copy as i128) * (offset as i128) + hi as i128 > i64::MAX as i128 {
        return Err(too_big());
    }
    Ok(offset)
}

/// Runs `run` on every task on all rayon threads, taking tasks in the given order (put the largest
/// first: each idle thread takes the next one). Results come back in task order; the first error
/// stops the threads from taking more tasks.
fn run_tasks<T: Sync, R: Send>(
    tasks: &[T],
    run: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<R>>>> =
        Mutex::new((0..tasks.len()).map(|_| None).collect());
    rayon::scope(|s| {
        for _ in 0..rayon::current_num_threads().min(tasks.len()) {
            s.spawn(|_| loop {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(task) = tasks.get(i) else { break };
                let r = run(task);
                if r.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                if let Ok(mut results) = results.lock() {
                    results[i] = Some(r);
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| Error::Invalid("a writer thread failed".into()))?;
    let mut out = Vec::with_capacity(tasks.len());
    let mut first_err = None;
    for r in results {
        match r {
            Some(Ok(v)) => out.push(v),
            Some(Err(e)) => {
                first_err.get_or_insert(e);
            }
            None => {}
        }
    }
    match first_err {
        Some(e) => Err(e),
        None if out.len() == tasks.len() => Ok(out),
        None => Err(Error::Invalid("a writer thread stopped early".into())),
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn report(progress: bool, t: &TableSummary, secs: f64) {
    tracing::info!(table = %t.name, rows = t.rows, bytes = t.bytes, "wrote {}", t.path.display());
    // With info logging on, the log line above already says it.
    if progress && !tracing::enabled!(tracing::Level::INFO) {
        eprintln!(
            "qiao synth: {}: {} rows, {:.1} MB, {:.1}s",
            t.path.display(),
            t.rows,
            t.bytes as f64 / 1e6,
            secs
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_powers_of_ten_above_the_span() {
        assert_eq!(power_of_ten_above(0), Some(10));
        assert_eq!(power_of_ten_above(9), Some(10));
        assert_eq!(power_of_ten_above(10), Some(100));
        assert_eq!(power_of_ten_above(112_345), Some(1_000_000));
        assert_eq!(id_offset([Some((-5, 7))].into_iter(), 3, "x").unwrap(), 100);
        assert!(id_offset([Some((0, i64::MAX / 2))].into_iter(), 3, "x").is_err());
    }
}
