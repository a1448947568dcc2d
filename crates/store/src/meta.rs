//! What a store says about itself: per-table counts and data-quality facts found while building it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TableMeta {
    /// Rows stored.
    pub rows: u64,
    /// Rows whose person is not in `person` (kept: Circe does not join events to person).
    #[serde(default)]
    pub orphans: u64,
    /// Rows whose start date lies in none of the person's observation periods.
    #[serde(default)]
    pub outside_observation: u64,
    /// Source columns that were present (absent optional columns are stored as NULL).
    #[serde(default)]
    pub columns_present: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    /// Rows in `person`.
    pub persons: u64,
    /// Distinct person ids across person and all event tables (orphans included).
    pub person_universe: u64,
    /// Earliest event start, `YYYY-MM-DD` (None for an empty store).
    pub first_date: Option<String>,
    /// Latest event end or start, `YYYY-MM-DD`.
    pub last_date: Option<String>,
    /// Per table, in ingest order (tables absent from the source are absent here).
    pub tables: BTreeMap<String, TableMeta>,
    /// The ingest report (data-quality findings) as the ingest wrote it; opaque to the store.
    #[serde(default)]
    pub ingest_report: serde_json::Value,
}
