//! Ingest: read a hospital's OMOP CDM (a folder of CSV/TSV files, or a PostgreSQL schema), check
//! every row, and write a Qiao store. The store is written to a temporary file and renamed into
//! place only when complete, so a failed or interrupted ingest never leaves a half store.

mod conninfo;
mod delimited;
mod postgres_source;
mod progress;
mod report;
mod tables;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use qiao_cdm::{RawTable, TableSpec, TABLES};
use rayon::prelude::*;

pub use conninfo::SslMode;
pub use delimited::{read_table, ReadOptions, TextEncoding, DEFAULT_NULL_TOKENS};
pub use postgres_source::PostgresSource;
pub use report::{IngestReport, Problem, ProblemKind, TableReport};

/// Why an ingest stopped. Structural problems always stop it; bad rows only under `--strict`.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: cannot read: {detail}")]
    Unreadable { path: String, detail: String },
    #[error("{dir}: required table {table} not found (looked for {table}.csv / {table}.tsv in any case)")]
    MissingTable { dir: String, table: &'static str },
    #[error("{file}: table {table} is empty: no header row")]
    EmptyTable { file: String, table: &'static str },
    #[error("{file}: table person has no rows: a CDM without persons answers every query with 0")]
    NoPersons { file: String },
    #[error("{dir}: two files for table {table}: {first} and {second} (keep one)")]
    DuplicateFile {
        dir: String,
        table: &'static str,
        first: String,
        second: String,
    },
    #[error(
        "no vocabulary: {} (for PostgreSQL, is --vocab-schema missing?). Without a vocabulary \
         concept sets cannot include descendants or mapped concepts; give --no-vocabulary to \
         ingest anyway",
        .0.join(", ")
    )]
    NoVocabulary(Vec<String>),
    #[error("{file}: table {table} has no column {column}{hint}")]
    MissingColumn {
        file: String,
        table: &'static str,
        column: &'static str,
        hint: &'static str,
    },
    #[error("{file}: column {column} appears twice in the header")]
    DuplicateColumn { file: String, column: String },
    #[error("{0} (--strict: nothing was written)")]
    Strict(Box<Problem>),
    #[error("postgres: {0}")]
    Postgres(String),
    #[error(transparent)]
    Store(#[from] qiao_store::StoreError),
}

/// Ingest options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Fail on the first bad row (nothing is written).
    pub strict: bool,
    /// Draw progress bars on stderr (only when it is a terminal).
    pub progress: bool,
    /// Accept a CDM whose vocabulary tables are missing or empty (reported in the store).
    pub no_vocabulary: bool,
    /// How delimited files are read (quoting, NULL tokens, encoding); its `strict` is replaced by
    /// [`Options::strict`].
    pub text: ReadOptions,
    /// Bytes of rows held in memory while the store is built (beyond them rows are sorted into
    /// temporary files beside the store and merged); None: [`qiao_store::DEFAULT_BUDGET`], or
    /// `QIAO_INGEST_MEMORY_MB` when set.
    pub memory_budget: Option<usize>,
}

impl Options {
    fn budget(&self) -> usize {
        self.memory_budget
            .or_else(|| {
                std::env::var("QIAO_INGEST_MEMORY_MB")
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .map(|mb| mb << 20)
            })
            .unwrap_or(qiao_store::DEFAULT_BUDGET)
    }
}

/// The vocabulary tables a store needs to expand concept sets.
const VOCABULARY: [&str; 3] = ["concept", "concept_ancestor", "concept_relationship"];

/// Where the CDM comes from.
pub enum Source {
    /// A folder with one delimited file per table.
    CsvDir(PathBuf),
    /// A PostgreSQL schema (and a vocabulary schema, by default the same).
    Postgres(PostgresSource),
}

/// Reads every CDM table of `source`, writes the store to `out`, and returns the report. A CDM
/// without persons, or without vocabulary unless [`Options::no_vocabulary`], is an error.
///
/// Memory stays within [`Options::memory_budget`] plus what grows with persons and the
/// vocabulary: tables are read in chunks, event rows sorted in runs spilled to temporary files
/// beside `out` (removed when done, on error too) and merged while the store is written.
pub fn ingest(source: &Source, out: &Path, opts: Options) -> Result<IngestReport, IngestError> {
    let t0 = Instant::now();
    let no_vocabulary = opts.no_vocabulary;
    let budget = opts.budget();
    let spill = qiao_store::spill::SpillDir::beside(out);
    let mut builder = qiao_store::Builder::new(spill.clone(), budget);
    let chunks = delimited::Chunks {
        rows: (budget / 256).clamp(1 << 10, CHUNK_ROWS),
        spill,
        key_budget: budget / 8,
    };
    let (sinks, mut report) = read_each(
        source,
        opts,
        &chunks,
        // As many tables are read at a time as there are threads: each gets that share of the budget.
        |spec| builder.sink(spec, rayon::current_num_threads()),
        |sink, chunk| sink.push(chunk).map_err(spill_error),
        |sink| sink.close().map_err(spill_error),
    )?;
    for s in sinks {
        builder.add(s).map_err(spill_error)?;
    }
    if let Some(person) = report.tables.get("person").filter(|t| t.rows_kept == 0) {
        return Err(IngestError::NoPersons {
            file: person.source.clone(),
        });
    }
    if !report.missing_vocabulary.is_empty() && !no_vocabulary {
        return Err(IngestError::NoVocabulary(report.missing_vocabulary));
    }
    report.read_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let report_json = serde_json::to_value(&report).unwrap_or_default();
    let meta = qiao_store::write_built(out, builder, report_json)?;
    report.build_seconds = t1.elapsed().as_secs_f64();
    // Orphans and events outside observation are found while building the person index.
    for (name, tm) in &meta.tables {
        if let Some(tr) = report.tables.get_mut(name) {
            tr.orphans = tm.orphans;
            tr.outside_observation = tm.outside_observation;
        }
    }
    Ok(report)
}

/// Rows per chunk handed from a table's reader to the store builder (at most).
const CHUNK_ROWS: usize = 1 << 16;

fn spill_error(e: std::io::Error) -> IngestError {
    IngestError::Unreadable {
        path: "temporary file beside the store".into(),
        detail: e.to_string(),
    }
}

/// Reads every table the source has into memory, checking each row (the vocabulary tables missing
/// or empty are listed in the report, not refused: see [`ingest`]).
pub fn read_all(
    source: &Source,
    opts: Options,
) -> Result<(Vec<RawTable>, IngestReport), IngestError> {
    read_each(
        source,
        opts,
        &delimited::Chunks::whole(),
        RawTable::new,
        |table, chunk| {
            table.append(chunk);
            Ok(())
        },
        |_| Ok(()),
    )
}

/// Reads every table the source has (in parallel), checking each row: each table's chunks go to
/// a sink made by `new` through `push`, closed by `close` when the table ends. Returns the sinks
/// (in table order) and the report.
fn read_each<S: Send>(
    source: &Source,
    opts: Options,
    chunks: &delimited::Chunks,
    new: impl Fn(&'static TableSpec) -> S + Sync,
    push: impl Fn(&mut S, RawTable) -> Result<(), IngestError> + Sync,
    close: impl Fn(&mut S) -> Result<(), IngestError> + Sync,
) -> Result<(Vec<S>, IngestReport), IngestError> {
    let mut report = IngestReport::default();
    let located: Vec<(&'static TableSpec, Located)> = match source {
        Source::CsvDir(dir) => locate_files(dir, &mut report)?,
        Source::Postgres(pg) => pg.locate(&mut report)?,
    };
    let bars = progress::Bars::new(opts.progress);
    let read_opts = &ReadOptions {
        strict: opts.strict,
        ..opts.text.clone()
    };
    let results: Vec<Result<(&'static str, S, TableReport), IngestError>> = located
        .par_iter()
        .map(|(spec, loc)| {
            let bar = bars.table(spec.name, loc.size());
            let mut on_bytes = |n| bar.inc(n);
            let mut sink = new(spec);
            let mut to_sink = |chunk: RawTable| push(&mut sink, chunk);
            let r = match (loc, source) {
                (Located::File(path), _) => {
                    let file = fs::File::open(path).map_err(|e| IngestError::Unreadable {
                        path: path.display().to_string(),
                        detail: e.to_string(),
                    })?;
                    delimited::read_table_chunks(
                        spec,
                        &path.display().to_string(),
                        file,
                        read_opts,
                        &mut on_bytes,
                        chunks,
                        &mut to_sink,
                    )
                }
                (Located::Postgres { schema, table }, Source::Postgres(pg)) => pg.read(
                    spec,
                    (schema, table),
                    read_opts,
                    &mut on_bytes,
                    chunks,
                    &mut to_sink,
                ),
                (Located::Postgres { .. }, Source::CsvDir(_)) => {
                    unreachable!("located from the same source")
                }
            };
            bar.finish();
            let tr = r?;
            close(&mut sink)?;
            Ok((spec.name, sink, tr))
        })
        .collect();
    bars.clear();
    let mut sinks = Vec::with_capacity(results.len());
    for r in results {
        let (name, sink, tr) = r?;
        if !tr.extra_columns.is_empty() {
            let w = format!(
                "{}: ignored column(s) the CDM does not define: {}",
                tr.source,
                tr.extra_columns.join(", ")
            );
            tracing::warn!("{w}");
            report.warnings.push(w);
        }
        report.tables.insert(name.to_string(), tr);
        sinks.push(sink);
    }
    report.missing_vocabulary = VOCABULARY
        .iter()
        .filter_map(|t| match report.tables.get(*t) {
            None => Some(format!("{t} not found")),
            Some(tr) if tr.rows_kept == 0 => Some(format!("{t} empty ({})", tr.source)),
            Some(_) => None,
        })
        .collect();
    Ok((sinks, report))
}

/// Where one table's rows are.
pub(crate) enum Located {
    File(PathBuf),
    Postgres { schema: String, table: String },
}

impl Located {
    fn size(&self) -> Option<u64> {
        match self {
            Located::File(p) => fs::metadata(p).ok().map(|m| m.len()),
            Located::Postgres { .. } => None,
        }
    }
}

/// Finds each CDM table's file in `dir` (`person.csv`, `PERSON.csv`, `person.tsv`, …).
fn locate_files(
    dir: &Path,
    report: &mut IngestReport,
) -> Result<Vec<(&'static TableSpec, Located)>, IngestError> {
    let unreadable = |e: std::io::Error| IngestError::Unreadable {
        path: dir.display().to_string(),
        detail: e.to_string(),
    };
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(unreadable)? {
        entries.push(entry.map_err(unreadable)?.path());
    }
    entries.sort();
    for path in entries {
        let (Some(stem), Some(ext)) = (path.file_stem(), path.extension()) else {
            continue;
        };
        let ext = ext.to_string_lossy().to_ascii_lowercase();
        if !matches!(ext.as_str(), "csv" | "tsv" | "txt") {
            continue;
        }
        let name = stem.to_string_lossy().to_ascii_lowercase();
        match qiao_cdm::table(&name) {
            Some(spec) => {
                if let Some(first) = by_name.get(&name) {
                    return Err(IngestError::DuplicateFile {
                        dir: dir.display().to_string(),
                        table: spec.name,
                        first: first.display().to_string(),
                        second: path.display().to_string(),
                    });
                }
                by_name.insert(name, path);
            }
            None if tables::is_other_cdm_table(&name) => {}
            None => {
                let w = tables::unknown_file_warning(&path, &name);
                tracing::warn!("{w}");
                report.warnings.push(w);
            }
        }
    }
    let mut out = Vec::new();
    for spec in TABLES {
        match by_name.get(spec.name) {
            Some(path) => {
                let empty = fs::metadata(path).map(|m| m.len() == 0).map_err(|e| {
                    IngestError::Unreadable {
                        path: path.display().to_string(),
                        detail: e.to_string(),
                    }
                })?;
                if empty {
                    if spec.required {
                        return Err(IngestError::EmptyTable {
                            file: path.display().to_string(),
                            table: spec.name,
                        });
                    }
                    report.warnings.push(format!(
                        "{}: empty file (no header), treated as absent",
                        path.display()
                    ));
                    report.absent_tables.push(spec.name.to_string());
                    continue;
                }
                out.push((*spec, Located::File(path.clone())));
            }
            None if spec.required => {
                return Err(IngestError::MissingTable {
                    dir: dir.display().to_string(),
                    table: spec.name,
                })
            }
            None => report.absent_tables.push(spec.name.to_string()),
        }
    }
    Ok(out)
}
