//! Finding the tables of a source CDM folder and deciding what to do with each.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use qiao_cdm::{TableKind, TableSpec};
use rayon::prelude::*;

use crate::error::{csv_err, io, Error, Result};
use crate::template::{Hole, Mode, Template, NULL};

/// Tables outside `qiao_cdm::TABLES` that are vocabulary or CDM-level reference data: copied
/// unchanged (they hold no person).
pub const COPIED_EXTRA_TABLES: &[&str] = &[
    "attribute_definition",
    "cdm_source",
    "cohort_definition",
    "concept_class",
    "concept_synonym",
    "domain",
    "drug_strength",
    "metadata",
    "relationship",
    "source_to_concept_map",
    "vocabulary",
];

/// What a source table becomes in the output.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role {
    /// A person or clinical table of the schema: resampled / replicated row by row.
    Linked(&'static TableSpec),
    /// Vocabulary or reference data: the file is copied byte for byte.
    Copied,
    /// Not written (a table outside the schema: cost, note, fact_relationship, cohort, …).
    Skipped,
}

#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    /// Lower-case table name (the file stem).
    pub name: String,
    pub path: PathBuf,
    pub role: Role,
}

/// Every `*.csv` file of `dir` (extension and stem matched case-insensitively), sorted by table name.
pub(crate) fn scan(dir: &Path) -> Result<Vec<SourceFile>> {
    let entries = std::fs::read_dir(dir).map_err(io(dir))?;
    let mut files: Vec<SourceFile> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = file_name
            .len()
            .checked_sub(4)
            .filter(|&i| file_name.is_char_boundary(i))
            .filter(|&i| file_name[i..].eq_ignore_ascii_case(".csv"))
            .map(|i| &file_name[..i])
        else {
            continue;
        };
        if !path.is_file() {
            continue;
        }
        let name = stem.to_ascii_lowercase();
        if let Some(other) = files.iter().find(|f| f.name == name) {
            return Err(Error::Invalid(format!(
                "{}: both {} and {} hold table {name}",
                dir.display(),
                other.path.display(),
                path.display()
            )));
        }
        let role = match qiao_cdm::table(&name) {
            Some(spec) if matches!(spec.kind, TableKind::Person | TableKind::Event) => {
                Role::Linked(spec)
            }
            Some(_) => Role::Copied,
            None if COPIED_EXTRA_TABLES.contains(&name.as_str()) => Role::Copied,
            None => Role::Skipped,
        };
        files.push(SourceFile { name, path, role });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    if files.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no CSV tables found",
            dir.display()
        )));
    }
    Ok(files)
}

/// A source CDM in memory: its person and clinical tables compiled, the rest listed.
pub(crate) struct Loaded {
    /// Person and clinical tables, sorted by name.
    pub templates: Vec<Template>,
    /// Tables copied unchanged, with their data row counts.
    pub copied: Vec<(SourceFile, u64)>,
    /// Names of the tables not written.
    pub skipped: Vec<String>,
}

impl Loaded {
    pub fn table(&self, name: &str) -> Option<&Template> {
        self.templates.iter().find(|t| t.name == name)
    }
}

/// Reads every table of `dir` once (in parallel).
pub(crate) fn load(dir: &Path, mode: Mode) -> Result<Loaded> {
    let files = scan(dir)?;
    let templates = files
        .par_iter()
        .filter_map(|f| match f.role {
            Role::Linked(spec) => Some(Template::load(&f.path, &f.name, spec, mode)),
            _ => None,
        })
        .collect::<Result<Vec<_>>>()?;
    let copied = files
        .par_iter()
        .filter(|f| matches!(f.role, Role::Copied))
        .map(|f| Ok((f.clone(), count_rows(&f.path)?)))
        .collect::<Result<Vec<_>>>()?;
    let skipped = files
        .iter()
        .filter(|f| matches!(f.role, Role::Skipped))
        .map(|f| f.name.clone())
        .collect();
    Ok(Loaded {
        templates,
        copied,
        skipped,
    })
}

/// Data rows of a CSV file (records after the header).
fn count_rows(path: &Path) -> Result<u64> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_path(path)
        .map_err(|e| csv_err(path, e))?;
    let mut rec = csv::ByteRecord::new();
    let mut n = 0;
    while rdr
        .read_byte_record(&mut rec)
        .map_err(|e| csv_err(path, e))?
    {
        n += 1;
    }
    Ok(n)
}

/// The persons of the source `person` table, in order of first appearance.
pub(crate) struct People {
    /// Distinct person ids.
    pub ids: Vec<i64>,
    pub index: HashMap<i64, u32>,
    /// Year of birth of each person (NULL if unknown), from its first person row.
    pub year_of_birth: Vec<i64>,
}

impl People {
    pub fn new(person: Option<&Template>) -> People {
        let mut p = People {
            ids: Vec::new(),
            index: HashMap::new(),
            year_of_birth: Vec::new(),
        };
        let Some(t) = person else { return p };
        let Some(ph) = t.person_hole else { return p };
        let yh = t.holes.iter().position(|&h| h == Hole::BirthYear);
        for r in 0..t.rows {
            let id = t.value(r, ph);
            if id == NULL || p.index.contains_key(&id) {
                continue;
            }
            p.index.insert(id, p.ids.len() as u32);
            p.ids.push(id);
            p.year_of_birth.push(yh.map_or(NULL, |h| t.value(r, h)));
        }
        p
    }

    /// The person index of row `r` of `t` (None: an orphan, or `t` has no person column).
    pub fn of(&self, t: &Template, r: usize) -> Option<u32> {
        let ph = t.person_hole?;
        self.index.get(&t.value(r, ph)).copied()
    }
}
