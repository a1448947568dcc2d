//! The Qiao store: a hospital's OMOP CDM as one immutable, memory-mapped file laid out for the
//! cohort engine.
//!
//! - **Persons**: every person id (rows of `person`, plus orphan ids that only event tables name),
//!   by dense index in ascending id order; person attributes by that index.
//! - **Domains**: each clinical table sorted by (person, start date, event id), with a core of about
//!   9 bytes per event (person index as one-byte codes from a start per 64 rows: see
//!   [`PersonColumn`]; start and Circe end as 16-bit codes from the smallest date of each 64 rows:
//!   see [`DayColumn`]; concept: 4 bytes) plus the event id (a base and 4-byte offsets where the
//!   table's ids span less than 2³²), per-person row ranges (32-bit; none stored for a table
//!   without rows), per-concept postings (ascending rows), and attribute columns stored apart and
//!   read only when a criterion filters on them.
//! - **Vocabulary**: concepts, the ancestor → descendants closure and "Maps to" (target → sources).
//!
//! The file format is in [`format`]: versioned, checksummed, opened without parsing the data.
//!
//! Two ways to build one, giving the same bytes: [`write`] from tables held in memory, and a
//! [`Builder`] fed chunk by chunk that sorts event rows in runs spilled to temporary files and
//! merges them ([`write_built`]; what ingest uses, in bounded memory).

mod build;
mod column;
mod day_column;
mod error;
pub mod format;
mod meta;
mod person_column;
mod read;
pub mod spill;
mod stream;

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::Path;

use qiao_cdm::RawTable;

pub use column::{prefetch, ColumnRef, FloatColumn, I32Column, IdColumn, TextRef};
pub use day_column::DayColumn;
pub use error::StoreError;
pub use meta::{Meta, TableMeta};
pub use person_column::PersonColumn;
pub use read::{
    ConceptInfo, Domain, PersonSummary, Persons, Reference, Store, Verified, Vocabulary,
};
pub use stream::{Builder, TableSink, DEFAULT_BUDGET};

/// Builds a store from `tables` and writes it to `path` atomically: the file is written to a
/// temporary name beside `path`, synced, verified in full ([`Store::verify`]) and renamed into
/// place only then.
pub fn write(
    path: &Path,
    tables: Vec<RawTable>,
    ingest_report: serde_json::Value,
) -> Result<Meta, StoreError> {
    write_with(path, |out| build::write_image(out, tables, ingest_report))
}

/// Writes the store a [`Builder`] collected to `path`, as [`write`] does (atomically, verified).
pub fn write_built(
    path: &Path,
    builder: Builder,
    ingest_report: serde_json::Value,
) -> Result<Meta, StoreError> {
    write_with(path, |out| builder.write(out, ingest_report))
}

type Out = BufWriter<File>;

fn write_with(
    path: &Path,
    image: impl FnOnce(Out) -> std::io::Result<(Out, Meta)>,
) -> Result<Meta, StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".into());
    let prefix = format!(".{file_name}.qstore.");
    remove_stale_temporaries(path, &prefix);
    let tmp = path.with_file_name(format!("{prefix}tmp-{}", std::process::id()));
    let result = (|| {
        let file = File::create(&tmp)?;
        let (out, meta) = image(BufWriter::with_capacity(1 << 20, file))?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(meta)
    })()
    .map_err(io)
    // What was written is read back and verified in full before it takes the store's name.
    .and_then(|meta| {
        Store::open(&tmp)?.verify()?;
        fs::rename(&tmp, path).map_err(io)?;
        Ok(meta)
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes temporary files that an interrupted write of the same store left behind (their process is
/// gone). A killed ingest leaves at most such a file, never a store at `path`.
fn remove_stale_temporaries(path: &Path, prefix: &str) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        // `<prefix>tmp-<pid>` (a store being written) or `<prefix>spill<k>-<pid>` (its temporary files).
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|rest| rest.rsplit_once('-'))
            .map(|(_, pid)| pid)
        else {
            continue;
        };
        let alive = pid
            .parse::<u32>()
            .is_ok_and(|p| p == std::process::id() || Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            tracing::warn!(
                "removing {} left by an interrupted write",
                entry.path().display()
            );
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Builds a store in memory (tests, small fixtures).
pub fn from_tables(tables: Vec<RawTable>) -> Result<Store, StoreError> {
    let bytes = write_to_vec(tables, serde_json::Value::Null)?;
    Store::from_bytes(&bytes)
}

/// The bytes of a store built from `tables`.
pub fn write_to_vec(
    tables: Vec<RawTable>,
    ingest_report: serde_json::Value,
) -> Result<Vec<u8>, StoreError> {
    build::write_image(Vec::new(), tables, ingest_report)
        .map(|(bytes, _)| bytes)
        .map_err(|source| StoreError::Io {
            path: "<memory>".into(),
            source,
        })
}
