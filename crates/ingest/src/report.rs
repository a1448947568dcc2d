//! The data-quality report every ingest produces.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What is wrong with one value or row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A value that does not parse as its column's type (e.g. date `2020-13-45`, id `abc`).
    Unparseable,
    /// A NOT NULL column left empty.
    MissingRequired,
    /// Bytes of a kept text value that are not valid in the file's encoding: the row is kept, the
    /// bytes replaced by U+FFFD, and the row flagged (fatal under `--strict`).
    NotUtf8,
    /// A row with more or fewer fields than the header (e.g. a truncated last line).
    WrongFieldCount,
    /// A primary key seen before in the same table. The row is kept (OHDSI's Circe SQL has no
    /// unique constraint to rely on and counts both rows; real exports such as Eunomia GiBleed carry
    /// them), flagged in the report, and fatal under `--strict`.
    DuplicateKey,
    /// A quoted field running across more lines than allowed or to the end of the input (an
    /// unterminated quote that would swallow the rows after it).
    RunawayQuote,
    /// A row with empty fields after the header's last column: kept, flagged.
    TrailingEmptyFields,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProblemKind::Unparseable => "unparseable value",
            ProblemKind::MissingRequired => "missing required value",
            ProblemKind::NotUtf8 => "invalid text encoding",
            ProblemKind::WrongFieldCount => "wrong field count",
            ProblemKind::DuplicateKey => "duplicate primary key",
            ProblemKind::RunawayQuote => "runaway quoted field",
            ProblemKind::TrailingEmptyFields => "trailing empty fields",
        })
    }
}

/// One bad row, located as `file:line:column`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The file (or `postgres:schema.table`).
    pub source: String,
    /// 1-based line of the row in the source.
    pub line: u64,
    /// 1-based field position, 0 when the whole row is at fault.
    pub column: usize,
    /// The column name, empty when the whole row is at fault.
    pub field: String,
    pub detail: String,
    /// The row's primary key (`measurement_id=42`), where a line means nothing (PostgreSQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) if self.column > 0 => write!(
                f,
                "{}: row {key}, column {}: {}",
                self.source, self.column, self.kind
            )?,
            Some(key) => write!(f, "{}: row {key}: {}", self.source, self.kind)?,
            None => write!(
                f,
                "{}:{}:{}: {}",
                self.source, self.line, self.column, self.kind
            )?,
        }
        if !self.field.is_empty() {
            write!(f, " in {}", self.field)?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// How many problems of each kind a table report keeps verbatim (all are counted).
pub const SAMPLES_PER_TABLE: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableReport {
    /// The file or `postgres:schema.table` read.
    pub source: String,
    /// Data rows read (header excluded).
    pub rows_read: u64,
    /// Rows stored.
    pub rows_kept: u64,
    /// Skipped rows by problem kind.
    pub skipped: BTreeMap<ProblemKind, u64>,
    /// Rows kept but flagged, by problem kind (duplicate keys, trailing empty fields, text encoding).
    #[serde(default)]
    pub flagged: BTreeMap<ProblemKind, u64>,
    /// The first [`SAMPLES_PER_TABLE`] problems.
    pub samples: Vec<Problem>,
    /// Columns in the source that the CDM does not define (ignored).
    pub extra_columns: Vec<String>,
    /// Optional CDM columns absent from the source (stored as NULL).
    pub absent_columns: Vec<String>,
    /// Rows whose person is not in `person` (kept).
    pub orphans: u64,
    /// Rows starting outside every observation period of their person (kept).
    pub outside_observation: u64,
    /// Source bytes read.
    pub bytes: u64,
    /// The text encoding kept text was decoded with, and whether it was given or detected.
    #[serde(default)]
    pub encoding: String,
}

impl TableReport {
    pub fn record(&mut self, p: Problem) {
        *self.skipped.entry(p.kind).or_default() += 1;
        if self.samples.len() < SAMPLES_PER_TABLE {
            self.samples.push(p);
        }
    }
    /// Notes a problem with a row that is kept.
    pub fn flag(&mut self, p: Problem) {
        *self.flagged.entry(p.kind).or_default() += 1;
        if self.samples.len() < SAMPLES_PER_TABLE {
            self.samples.push(p);
        }
    }
    pub fn rows_flagged(&self) -> u64 {
        self.flagged.values().sum()
    }
    pub fn rows_skipped(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// The whole ingest: per table, in ingest order, plus warnings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestReport {
    pub tables: BTreeMap<String, TableReport>,
    /// CDM tables Qiao reads that the source does not have.
    pub absent_tables: Vec<String>,
    pub warnings: Vec<String>,
    /// The PostgreSQL connection, as `user@host:port/dbname` with its TLS state (no password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// The time zone `timestamptz` columns were read in (PostgreSQL), and where it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Vocabulary tables (concept, concept_ancestor, concept_relationship) missing or empty,
    /// accepted with `--no-vocabulary`.
    #[serde(default)]
    pub missing_vocabulary: Vec<String>,
    /// Seconds spent reading and parsing, and building and writing the store.
    pub read_seconds: f64,
    pub build_seconds: f64,
}

impl IngestReport {
    pub fn problems(&self) -> u64 {
        self.tables.values().map(TableReport::rows_skipped).sum()
    }
    pub fn flagged(&self) -> u64 {
        self.tables.values().map(TableReport::rows_flagged).sum()
    }
}
