//! The phenotype library: definitions imported from a folder (OHDSI PhenotypeLibrary layout),
//! searched and read by the pages.

use std::collections::BTreeMap;

use qiao_hub::audit::{Actor, EntryDraft};
use qiao_hub::store::{append_audit, get_json, put_json, scan_json};
use qiao_hub::{HubStore, StoreError};
use serde::{Deserialize, Serialize};

use super::input::{check_definition, id_ok};
use super::refusal::Refusal;
use super::tables::{read, LIBRARY};

/// A library definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryEntry {
    /// Identifier (the file stem).
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// The ATLAS JSON.
    pub definition: serde_json::Value,
    /// Imported when.
    pub imported_at: i64,
}

/// A library entry without its definition (lists).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibrarySummary {
    /// Identifier.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Definitions stored (new or replaced).
    pub imported: usize,
    /// Files refused, with the reason (file name, message with JSON path).
    pub refused: Vec<(String, String)>,
}

/// Names and descriptions from a `Cohorts.csv` beside the definitions (OHDSI PhenotypeLibrary
/// layout: columns `cohortId`, `cohortName`, and optionally `description`/`logicDescription`).
fn names_csv(dir: &std::path::Path) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for candidate in ["Cohorts.csv", "cohorts.csv", "../Cohorts.csv"] {
        let Ok(file) = std::fs::File::open(dir.join(candidate)) else {
            continue;
        };
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(file);
        let Ok(header) = reader.headers() else {
            continue;
        };
        let header: Vec<String> = header
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        let col = |names: &[&str]| header.iter().position(|h| names.contains(&h.as_str()));
        let (Some(idc), Some(namec)) = (
            col(&["cohortid", "cohort_id", "id"]),
            col(&["cohortname", "cohort_name", "name"]),
        ) else {
            continue;
        };
        let descc = col(&["description", "logicdescription", "logic_description"]);
        for cells in reader.records().map_while(Result::ok) {
            if let (Some(id), Some(name)) = (cells.get(idc), cells.get(namec)) {
                let desc = descc.and_then(|d| cells.get(d)).unwrap_or_default();
                out.insert(id.to_owned(), (name.to_owned(), desc.to_owned()));
            }
        }
        break;
    }
    out
}

/// Imports every `*.json` in `dir` (or its `cohorts/` folder) as library definitions: each is
/// validated with the cohort engine's parser (refused files are reported with the JSON path of
/// the problem); names and descriptions come from a `Cohorts.csv` if present, else from the
/// definition's `name`/`description`, else the file stem and concept set names. All valid
/// definitions are stored in one transaction.
pub fn import_library(
    store: &dyn HubStore,
    dir: &std::path::Path,
    now: i64,
) -> Result<ImportReport, String> {
    let folder = if dir.join("cohorts").is_dir() {
        dir.join("cohorts")
    } else {
        dir.to_path_buf()
    };
    let names = names_csv(&folder);
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .map_err(|e| format!("{}: {e}", folder.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut report = ImportReport::default();
    let mut entries = Vec::new();
    for path in files {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = path
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !id_ok(&stem.to_ascii_lowercase()) {
            report
                .refused
                .push((file, "file name is not an identifier [a-z0-9_-]".into()));
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                report.refused.push((file, e.to_string()));
                continue;
            }
        };
        let value = match check_definition(&text) {
            Ok(v) => v,
            Err(Refusal::Field { args, .. }) => {
                report.refused.push((
                    file,
                    args.into_iter()
                        .map(|(_, v)| v)
                        .collect::<Vec<_>>()
                        .join("; "),
                ));
                continue;
            }
            Err(_) => {
                report.refused.push((file, "too large or empty".into()));
                continue;
            }
        };
        let concept_sets: Vec<String> = value
            .get("ConceptSets")
            .and_then(|c| c.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.get("name").and_then(|n| n.as_str()).map(str::to_owned))
                    .take(4)
                    .collect()
            })
            .unwrap_or_default();
        let (name, description) = match names.get(&stem) {
            Some((n, d)) => (n.clone(), d.clone()),
            None => {
                let n = value
                    .get("name")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .or_else(|| concept_sets.first().map(|c| format!("{stem} · {c}")))
                    .unwrap_or_else(|| stem.clone());
                let d = value
                    .get("description")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(|| concept_sets.join(", "));
                (n, d)
            }
        };
        entries.push(LibraryEntry {
            id: stem.to_ascii_lowercase(),
            name: name.chars().take(200).collect(),
            description: description.chars().take(2000).collect(),
            definition: value,
            imported_at: now,
        });
    }
    let n = entries.len();
    store
        .write_with(|tx| {
            for e in &entries {
                // The full entry under `d/`, its summary under `s/` (lists read only those).
                put_json(tx, LIBRARY, &format!("d/{}", e.id), e)?;
                let summary = LibrarySummary {
                    id: e.id.clone(),
                    name: e.name.clone(),
                    description: e.description.clone(),
                };
                put_json(tx, LIBRARY, &format!("s/{}", e.id), &summary)?;
            }
            append_audit(
                tx,
                EntryDraft::new(now, Actor::System, "library.import")
                    .decision(format!("{n} definitions from {}", dir.display())),
            )?;
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    report.imported = n;
    Ok(report)
}

/// Library entries whose id, name or description contains `query` (case-insensitive; all if
/// empty), without their definitions.
pub fn search_library(
    store: &dyn HubStore,
    query: &str,
) -> Result<Vec<LibrarySummary>, StoreError> {
    let q = query.trim().to_lowercase();
    let all: Vec<LibrarySummary> = read(store, |tx| scan_json(tx, LIBRARY, "s/"))?;
    Ok(all
        .into_iter()
        .filter(|e| {
            q.is_empty()
                || e.id.contains(&q)
                || e.name.to_lowercase().contains(&q)
                || e.description.to_lowercase().contains(&q)
        })
        .collect())
}

/// One library entry.
pub fn library_entry(store: &dyn HubStore, id: &str) -> Result<Option<LibraryEntry>, StoreError> {
    read(store, |tx| get_json(tx, LIBRARY, &format!("d/{id}")))
}
