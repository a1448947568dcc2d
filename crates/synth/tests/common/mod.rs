//! Helpers shared by the synth integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(name)
}

pub fn gibleed() -> PathBuf {
    data("eunomia-gibleed-5.3")
}

pub fn synthea() -> PathBuf {
    data("synthea27nj-5.4")
}

/// A CSV file in memory, as strings.
pub struct Csv {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Csv {
    pub fn read(path: &Path) -> Csv {
        let mut rdr = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let header = rdr
            .headers()
            .unwrap()
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect();
        let rows = rdr
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect();
        Csv { header, rows }
    }

    pub fn col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

/// The file of a table in a CDM folder, matching its name case-insensitively.
pub fn table_file(dir: &Path, table: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.eq_ignore_ascii_case(&format!("{table}.csv")))
        })
}

/// An integer id as exported (`12`, `10204.0`); None when empty.
pub fn int(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let s = s.strip_suffix(".0").unwrap_or(s);
    Some(
        s.parse()
            .unwrap_or_else(|_| panic!("not an integer: {s:?}")),
    )
}

/// Id columns of a table that the synthesizer offsets.
pub fn offset_id_cols(spec: &qiao_cdm::TableSpec, csv: &Csv) -> Vec<usize> {
    csv.header
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            spec.column(h)
                .is_some_and(|c| c.ty == qiao_cdm::ColType::Id)
                && !qiao_synth::UNCHANGED_ID_COLUMNS.contains(&h.as_str())
        })
        .map(|(i, _)| i)
        .collect()
}

/// The linked (person / clinical) schema tables present in a source folder.
pub fn linked_tables(dir: &Path) -> Vec<(&'static qiao_cdm::TableSpec, PathBuf)> {
    qiao_cdm::TABLES
        .iter()
        .filter(|t| {
            matches!(
                t.kind,
                qiao_cdm::TableKind::Person | qiao_cdm::TableKind::Event
            )
        })
        .filter_map(|t| table_file(dir, t.name).map(|p| (*t, p)))
        .collect()
}

/// Rows per table from a `ROWCOUNTS.tsv`.
pub fn rowcounts(dir: &Path) -> HashMap<String, u64> {
    std::fs::read_to_string(dir.join("ROWCOUNTS.tsv"))
        .unwrap()
        .lines()
        .map(|l| {
            let (t, n) = l.split_once('\t').unwrap();
            (t.to_string(), n.parse().unwrap())
        })
        .collect()
}
