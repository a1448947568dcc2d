//! OHDSI ATLAS/Circe cohort definitions over the synthetic CDM ([`super::cdm`]), as an
//! attacker writes them: primary criteria on days the attacker picks, inclusion rules that
//! exclude one day, end-strategy variants.

use serde_json::{json, Value};

use super::cdm::{date, CONDITION, INPATIENT};

/// Concept set 0: the target condition; 1: inpatient visit.
fn concept_sets() -> Value {
    let item = |id: i32, name: &str, domain: &str| {
        json!({"concept": {"CONCEPT_ID": id, "CONCEPT_NAME": name, "DOMAIN_ID": domain,
                            "STANDARD_CONCEPT": "S"},
               "includeDescendants": false, "isExcluded": false, "includeMapped": false})
    };
    json!([
        {"id": 0, "name": "Target condition",
         "expression": {"items": [item(CONDITION, "Type 2 diabetes mellitus", "Condition")]}},
        {"id": 1, "name": "Inpatient visit",
         "expression": {"items": [item(INPATIENT, "Inpatient Visit", "Visit")]}},
    ])
}

fn on_days(first: i32, last: i32) -> Value {
    if first == last {
        json!({"Value": date(first), "Op": "eq"})
    } else {
        json!({"Value": date(first), "Op": "bt", "Extent": date(last)})
    }
}

/// A primary criterion: a diagnosis of the target condition starting in `[first, last]`.
pub fn diagnosed(first: i32, last: i32) -> Value {
    json!({"ConditionOccurrence": {"CodesetId": 0, "OccurrenceStartDate": on_days(first, last)}})
}

/// A primary criterion: an inpatient admission starting in `[first, last]`.
pub fn admitted(first: i32, last: i32) -> Value {
    json!({"VisitOccurrence": {"CodesetId": 1, "OccurrenceStartDate": on_days(first, last)}})
}

/// An inclusion rule every person passes (age at index ≥ 0).
pub fn rule_any_age() -> Value {
    json!({"name": "Any age", "expression": {"Type": "ALL", "CriteriaList": [],
           "DemographicCriteriaList": [{"Age": {"Value": 0, "Op": "gte"}}], "Groups": []}})
}

/// An inclusion rule: no diagnosis of the target condition on `day` (at any time).
pub fn rule_not_diagnosed_on(day: i32) -> Value {
    json!({"name": "Not diagnosed that day", "expression": {"Type": "ALL",
           "CriteriaList": [{"Criteria": {"ConditionOccurrence": {"CodesetId": 0,
                               "OccurrenceStartDate": on_days(day, day)}},
                             "StartWindow": {"Start": {"Coeff": -1}, "End": {"Coeff": 1}},
                             "Occurrence": {"Type": 0, "Count": 0}}],
           "DemographicCriteriaList": [], "Groups": []}})
}

/// A definition: every event of `primary` is an entry (limits "All"), then `rules`; the cohort
/// ends `end_offset` days after the entry's start (episodes of one person on different days stay
/// separate with offset 0), or at the end of observation.
pub fn definition(primary: Vec<Value>, rules: Vec<Value>, end_offset: Option<i32>) -> Value {
    let mut d = json!({
        "ConceptSets": concept_sets(),
        "PrimaryCriteria": {"CriteriaList": primary,
                            "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
                            "PrimaryCriteriaLimit": {"Type": "All"}},
        "QualifiedLimit": {"Type": "All"},
        "ExpressionLimit": {"Type": "All"},
        "InclusionRules": rules,
        "CensoringCriteria": [],
        "CollapseSettings": {"CollapseType": "ERA", "EraPad": 0},
        "CensorWindow": {},
    });
    if let Some(k) = end_offset {
        d["EndStrategy"] = json!({"DateOffset": {"DateField": "StartDate", "Offset": k}});
    }
    d
}

/// Persons diagnosed on any day of `ranges` (inclusive).
pub fn diagnosed_in(ranges: &[(i32, i32)]) -> Value {
    definition(
        ranges.iter().map(|&(f, l)| diagnosed(f, l)).collect(),
        vec![],
        None,
    )
}
