//! circe-be's criteria-level tests (windowcriteria/, corelatedcriteria/): a windowed or correlated
//! criteria evaluated over the index events of a `<schema>.cohort` table joined to the observation
//! period, as circe-be's Java tests build them.

mod common;

use std::collections::BTreeMap;

use common::*;
use qiao_cdm::date;
use qiao_cohort::exec::{IndexEvent, Prepared};
use serde_json::Value;

/// circe-be's `EVENT_TABLE_TEMPLATE`: cohort 1 rows joined to the OP containing their start,
/// event_id = row number by start within the subject.
fn index_events(store: &qiao_store::Store, cohort: &[Value]) -> Vec<IndexEvent> {
    let op = store.domain("observation_period").unwrap();
    let persons = store.persons();
    let mut rows: Vec<(i64, i32, i32)> = cohort
        .iter()
        .filter(|r| r["cohort_definition_id"].as_i64() == Some(1))
        .map(|r| {
            let d = |k: &str| date::parse(r[k].as_str().unwrap().as_bytes()).unwrap();
            (
                r["subject_id"].as_i64().unwrap(),
                d("cohort_start_date"),
                d("cohort_end_date"),
            )
        })
        .collect();
    rows.sort();
    let mut out = Vec::new();
    let mut n = BTreeMap::new();
    for (pid, s, e) in rows {
        let Some(p) = persons.index_of(pid) else {
            continue;
        };
        for r in op.person_rows(p) {
            let (os, oe) = (op.start().at(r), op.end().at(r));
            if s >= os && s <= oe {
                let k = n.entry(pid).or_insert(0);
                *k += 1;
                out.push(IndexEvent {
                    person_id: pid,
                    event_id: *k,
                    start: s,
                    end: e,
                    visit_occurrence_id: None,
                    op_start: os,
                    op_end: oe,
                });
            }
        }
    }
    out
}

const PRIOR_365: &str = r#"{"Start": {"Days": 365, "Coeff": -1}, "End": {"Days": 0, "Coeff": -1}}"#;
const ANY_TIME: &str = r#"{"Start": {"Coeff": -1}, "End": {"Coeff": 1}}"#;

fn expression(rules: &[String]) -> String {
    let rules: Vec<String> = rules
        .iter()
        .enumerate()
        .map(|(i, g)| format!(r#"{{"name": "r{i}", "expression": {g}}}"#))
        .collect();
    format!(
        r#"{{"ConceptSets": [], "PrimaryCriteria": {{"CriteriaList": [], "ObservationWindow": {{"PriorDays": 0, "PostDays": 0}}}},
        "InclusionRules": [{}]}}"#,
        rules.join(",")
    )
}

fn rule(criteria: &str, window: &str, occurrence: &str) -> String {
    format!(
        r#"{{"Type": "ALL", "CriteriaList": [{{"Criteria": {criteria}, "StartWindow": {window}, "Occurrence": {occurrence}}}]}}"#
    )
}

#[test]
fn window_criteria_match_circe() {
    let cases = [
        (
            "windowConditionEra",
            "window_condition_era",
            r#"{"ConditionEra": {}}"#,
            PRIOR_365,
        ),
        (
            "windowConditionOccurrence",
            "window_condition_occurrence",
            r#"{"ConditionOccurrence": {}}"#,
            PRIOR_365,
        ),
        ("windowDeath", "window_death", r#"{"Death": {}}"#, PRIOR_365),
        (
            "windowDeviceExposure",
            "window_device_exposure",
            r#"{"DeviceExposure": {}}"#,
            PRIOR_365,
        ),
        (
            "windowDoseEra",
            "window_dose_era",
            r#"{"DoseEra": {}}"#,
            PRIOR_365,
        ),
        (
            "windowDrugEra",
            "window_drug_era",
            r#"{"DrugEra": {}}"#,
            PRIOR_365,
        ),
        (
            "windowDrugExposure",
            "window_drug_exposure",
            r#"{"DrugExposure": {}}"#,
            PRIOR_365,
        ),
        (
            "windowMeasurement",
            "window_measurement",
            r#"{"Measurement": {}}"#,
            PRIOR_365,
        ),
        (
            "windowObservation",
            "window_observation",
            r#"{"Observation": {}}"#,
            PRIOR_365,
        ),
        (
            "windowObservationPeriod",
            "window_observation_period",
            r#"{"ObservationPeriod": {}}"#,
            PRIOR_365,
        ),
        (
            "windowObservationPeriodUserDefined",
            "window_observation_period_userdefined",
            r#"{"ObservationPeriod": {"UserDefinedPeriod": {"StartDate": "2008-01-01", "EndDate": "2009-01-01"}}}"#,
            ANY_TIME,
        ),
        (
            "windowProcedureOccurrence",
            "window_procedure_occurrence",
            r#"{"ProcedureOccurrence": {}}"#,
            PRIOR_365,
        ),
        (
            "windowSpecimen",
            "window_specimen",
            r#"{"Specimen": {}}"#,
            PRIOR_365,
        ),
        (
            "windowVisitOccurrence",
            "window_visit_occurrence",
            r#"{"VisitOccurrence": {}}"#,
            PRIOR_365,
        ),
    ];
    let mut report = Vec::new();
    for (file, schema, criteria, window) in cases {
        let (store, other) = dbunit_store(&[
            "datasets/vocabulary.json".to_string(),
            format!("windowcriteria/{file}_PREP.json"),
            format!("windowcriteria/{file}_VERIFY.json"),
        ]);
        let events = index_events(&store, &other[&format!("{schema}.cohort")]);
        // Expected: number of windowed rows per (person, event).
        let mut want: BTreeMap<(i64, i64), usize> = BTreeMap::new();
        for r in other
            .get(&format!("{schema}.no_columns"))
            .into_iter()
            .flatten()
        {
            *want
                .entry((
                    r["person_id"].as_i64().unwrap(),
                    r["event_id"].as_i64().unwrap(),
                ))
                .or_default() += 1;
        }
        assert!(
            !events.is_empty() && !want.is_empty(),
            "{file}: nothing to compare"
        );
        let max = want.values().copied().max().unwrap_or(0);
        let rules: Vec<String> = (0..=max + 1)
            .map(|k| rule(criteria, window, &format!(r#"{{"Type": 0, "Count": {k}}}"#)))
            .collect();
        let def = qiao_cohort::parse(&expression(&rules)).unwrap();
        let prepared = Prepared::new(&def, &store).unwrap();
        for k in 0..=max + 1 {
            let got = prepared.rule_matches(&store, k, &events).unwrap();
            let expect: Vec<(i64, i64)> = events
                .iter()
                .map(|e| (e.person_id, e.event_id))
                .filter(|pe| want.get(pe).copied().unwrap_or(0) == k)
                .collect();
            if got != expect {
                report.push(format!("{file}: exactly {k}: got {got:?}, want {expect:?}"));
            }
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

#[test]
fn distinct_counts_match_circe() {
    for (file, schema, column) in [
        (
            "distinctStart",
            "distinct_start",
            r#", "CountColumn": "START_DATE""#,
        ),
        (
            "distinctVisit",
            "distinct_visit",
            r#", "CountColumn": "VISIT_ID""#,
        ),
        ("distinctDefault", "distinct_default", ""),
    ] {
        let (store, other) = dbunit_store(&[
            "datasets/vocabulary.json".to_string(),
            format!("corelatedcriteria/{file}_PREP.json"),
            format!("corelatedcriteria/{file}_VERIFY.json"),
        ]);
        let events = index_events(&store, &other[&format!("{schema}.cohort")]);
        let occurrence = format!(r#"{{"Type": 2, "Count": 2, "IsDistinct": true{column}}}"#);
        let json = expression(&[rule(
            r#"{"ConditionOccurrence": {}}"#,
            PRIOR_365,
            &occurrence,
        )]);
        let def = qiao_cohort::parse(&json).unwrap();
        let got = Prepared::new(&def, &store)
            .unwrap()
            .rule_matches(&store, 0, &events)
            .unwrap();
        let want: Vec<(i64, i64)> = other[&format!("{schema}.output")]
            .iter()
            .map(|r| {
                (
                    r["person_id"].as_i64().unwrap(),
                    r["event_id"].as_i64().unwrap(),
                )
            })
            .collect();
        assert!(!want.is_empty() && events.len() > want.len(), "{file}");
        assert_eq!(got, want, "{file}");
    }
}
