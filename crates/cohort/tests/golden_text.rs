//! What users read from the engine, pinned by golden files (tests/golden/, rewritten with
//! QIAO_BLESS=1; a diff fails): `explain` plans for the OHDSI CohortGenerator cohorts and a dozen
//! phenotypes, and definition errors with their JSON paths.

mod common;

use std::fmt::Write;
use std::fs;

use common::{data, golden};
use qiao_cohort::conceptset::MemVocabulary;
use qiao_cohort::Prepared;

const PHENOTYPES: [u32; 12] = [
    23, 33, 123, 373, 383, 453, 513, 1073, 1153, 1183, 1203, 1263,
];

fn explain(rel: &str) -> String {
    let text = fs::read_to_string(data(rel)).unwrap();
    let def = qiao_cohort::parse(&text).unwrap();
    let prepared = Prepared::with_vocabulary(&def, &MemVocabulary::new()).unwrap();
    let mut out = prepared.explain();
    for w in prepared.warnings() {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

#[test]
fn explain_plans_match_their_golden_files() {
    for id in 1..=4 {
        let rel = format!("reference/cohortgenerator-eunomia/cohorts/{id}.json");
        golden(&format!("explain/cg{id}.txt"), &explain(&rel));
    }
    for id in PHENOTYPES {
        let rel = format!("phenotypes-dev/cohorts/{id}.json");
        golden(&format!("explain/pl{id}.txt"), &explain(&rel));
    }
}

/// Broken definitions, each with the error a user gets (message and JSON path).
const BROKEN: &[(&str, &str)] = &[
    ("not JSON", "{\"ConceptSets\": ["),
    ("unknown top-level element", r#"{"PrimaryCriterion": {}}"#),
    (
        "unknown criteria type",
        r#"{"PrimaryCriteria": {"CriteriaList": [{"DrugEpisode": {}}]}}"#,
    ),
    (
        "unknown attribute of a criteria",
        r#"{"PrimaryCriteria": {"CriteriaList": [{"DrugEra": {"CodesetId": 0, "Dose": 3}}]}, "ConceptSets": [{"id": 0, "name": "x", "expression": {"items": []}}]}"#,
    ),
    (
        "undefined concept set",
        r#"{"PrimaryCriteria": {"CriteriaList": [{"DrugEra": {"CodesetId": 7}}]}}"#,
    ),
    (
        "operator missing its value",
        r#"{"PrimaryCriteria": {"CriteriaList": [{"VisitOccurrence": {}}]}, "InclusionRules": [{"name": "r", "expression": {"Type": "ALL", "DemographicCriteriaList": [{"Age": {"Op": "gt"}}]}}]}"#,
    ),
    (
        "unknown operator",
        r#"{"PrimaryCriteria": {"CriteriaList": [{"VisitOccurrence": {"VisitLength": {"Value": 1, "Op": "greater"}}}]}}"#,
    ),
    (
        "bad date",
        r#"{"PrimaryCriteria": {"CriteriaList": [{"VisitOccurrence": {"OccurrenceStartDate": {"Value": "2020-13-01", "Op": "gt"}}}]}}"#,
    ),
    (
        "unknown group type",
        r#"{"PrimaryCriteria": {"CriteriaList": [{"VisitOccurrence": {}}]}, "AdditionalCriteria": {"Type": "SOME"}}"#,
    ),
    (
        "wrong type of value",
        r#"{"PrimaryCriteria": {"CriteriaList": [{"VisitOccurrence": {"First": "yes"}}]}}"#,
    ),
];

#[test]
fn definition_errors_match_their_golden_file() {
    let mut out = String::new();
    for (what, json) in BROKEN {
        let err = match qiao_cohort::parse(json) {
            Ok(def) => match Prepared::with_vocabulary(&def, &MemVocabulary::new()) {
                Ok(_) => "(accepted)".to_string(),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        let _ = writeln!(out, "## {what}\n{json}\n=> {err}\n");
    }
    golden("errors/definitions.txt", &out);
}
