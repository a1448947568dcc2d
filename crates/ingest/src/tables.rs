//! Names of files in a CDM folder: the OMOP CDM tables Qiao does not read (known, silently
//! skipped) and, for any other file, the nearest table name.

use std::path::Path;

use qiao_cdm::TABLES;

/// CDM v5.3 / v5.4 tables (and Athena's vocabulary files) that Qiao does not read.
const OTHER_CDM_TABLES: &[&str] = &[
    "attribute_definition",
    "cdm_source",
    "cohort",
    "cohort_attribute",
    "cohort_definition",
    "concept_class",
    "concept_synonym",
    "cost",
    "domain",
    "drug_strength",
    "episode",
    "episode_event",
    "fact_relationship",
    "metadata",
    "note",
    "note_nlp",
    "relationship",
    "source_to_concept_map",
    "survey_conduct",
    "vocabulary",
];

pub(crate) fn is_other_cdm_table(name: &str) -> bool {
    OTHER_CDM_TABLES.contains(&name)
}

/// The table name closest to `name` (edit distance, `-`/space read as `_`), if close enough to be
/// a likely misspelling: at most 2 edits, or 3 for names longer than 12 characters.
pub(crate) fn nearest_table(name: &str) -> Option<&'static str> {
    let name = name.replace(['-', ' '], "_");
    TABLES
        .iter()
        .map(|t| t.name)
        .chain(OTHER_CDM_TABLES.iter().copied())
        .map(|t| (strsim::levenshtein(&name, t), t))
        .min()
        .filter(|&(d, t)| d <= if t.len() > 12 { 3 } else { 2 })
        .map(|(_, t)| t)
}

/// The warning for a delimited file whose name is not a CDM table.
pub(crate) fn unknown_file_warning(path: &Path, name: &str) -> String {
    match nearest_table(name) {
        Some(t) => format!(
            "{}: not a CDM table, ignored: did you mean {t}?",
            path.display()
        ),
        None => format!("{}: not a CDM table, ignored", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_names_get_the_nearest_table() {
        assert_eq!(nearest_table("devices_exposure"), Some("device_exposure"));
        assert_eq!(
            nearest_table("condition_occurence"),
            Some("condition_occurrence")
        );
        assert_eq!(
            nearest_table("observation-period"),
            Some("observation_period")
        );
        assert_eq!(nearest_table("persons"), Some("person"));
        assert_eq!(nearest_table("rowcounts"), None);
        assert_eq!(nearest_table("ontime"), None);
    }
}
