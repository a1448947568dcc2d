//! No patient-level data can be expressed in, or sent as, a result.

mod common;

use std::collections::BTreeSet;

use common::*;
use proptest::prelude::*;
use qiao_protocol::guard::{check_result_json, check_result_text, MAX_CELLS, MAX_RULES};
use qiao_protocol::*;
use serde_json::{json, Value};

/// An independent copy of the allow-list: widening the library's list without updating this
/// one (a reviewable change) fails the schema test.
const EXPECTED_KEYS: &[&str] = &[
    "job_id",
    "site_id",
    "outcome",
    "status",
    "payload",
    "reason",
    "error",
    "type",
    "entries",
    "subjects",
    "initial",
    "rules",
    "name",
    "persons",
    "gain",
    "final_persons",
    "total",
    "cells",
    "age_band",
    "min_age",
    "max_age",
    "gender",
    "index_year",
    "count",
    // characterization and incidence results
    "target",
    "comparator",
    "covariates",
    "covariate_id",
    "analysis_id",
    "continuous",
    "sum",
    "sum_squares",
    "histogram",
    "rows",
    "tar_id",
    "age_group_id",
    "gender_concept_id",
    "start_year",
    "persons_at_risk_pe",
    "persons_at_risk",
    "person_days_pe",
    "person_days",
    "person_outcomes_pe",
    "person_outcomes",
    "outcomes_pe",
    "outcomes",
    "entered",
    "censored",
    "events",
    "loglik",
    "gradient",
    "hessian",
    // recruitment results (issue 17): released counts per month
    "months",
    "year",
    "month",
    "screened",
    "enrolled",
    "excluded",
    "kind",
    "value",
    "threshold",
    "basis",
    "max_error",
    "disclosure",
    "min_cell_count",
    "obfuscation",
    "bin",
    "sigma",
    "clamp",
    "secondary_suppression",
    "dp",
    "rho_spent",
    "entries_bound",
    "remaining_rho",
    // Reviewed for issue 12: the requester's own and organization's remaining ρ (numbers).
    "user_remaining_rho",
    "organization_remaining_rho",
];

fn collect(value: &Value, keys: &mut BTreeSet<String>, raw_arrays: &mut Vec<String>, path: &str) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                keys.insert(k.clone());
                collect(v, keys, raw_arrays, &format!("{path}.{k}"));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if !item.is_object() {
                    raw_arrays.push(format!("{path}[{i}]"));
                }
                collect(item, keys, raw_arrays, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

#[test]
fn library_allow_list_matches_the_reviewed_copy() {
    let lib: BTreeSet<_> = qiao_protocol::guard::ALLOWED_KEYS.iter().collect();
    let ours: BTreeSet<_> = EXPECTED_KEYS.iter().collect();
    assert_eq!(lib, ours);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every result type, with arbitrary values: only allow-listed keys, no array of raw
    /// values anywhere, the guard accepts it, and it round-trips.
    #[test]
    fn every_result_serializes_to_the_allowed_schema(result in arb_result()) {
        let value = serde_json::to_value(&result).unwrap();
        let mut keys = BTreeSet::new();
        let mut raw_arrays = Vec::new();
        collect(&value, &mut keys, &mut raw_arrays, "$");
        for k in &keys {
            prop_assert!(EXPECTED_KEYS.contains(&k.as_str()), "key {k:?} not in the allow-list");
        }
        prop_assert!(raw_arrays.is_empty(), "arrays of raw values at {raw_arrays:?}");
        prop_assert_eq!(check_result_json(&value), Ok(()));
        prop_assert_eq!(check_result_text(&serde_json::to_vec(&value).unwrap()), Ok(()));
        prop_assert_eq!(assert_aggregate_only(&result), Ok(()));
        let text = serde_json::to_string(&result).unwrap();
        let back: JobResult = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, result);
    }

    /// The walker never panics and rejects any array of scalars, whatever it is wrapped in.
    #[test]
    fn raw_integer_arrays_are_rejected_anywhere(
        ids in proptest::collection::vec(any::<i64>(), 1..20),
        key in proptest::sample::select(EXPECTED_KEYS),
    ) {
        let value = json!({ "outcome": { "payload": { key: ids } } });
        prop_assert!(
            matches!(check_result_json(&value), Err(AggregateViolation::RawArray { .. })),
            "accepted {value}"
        );
        // The text form (checked as it is read) finds the same breach at the same path.
        let text = serde_json::to_vec(&value).unwrap();
        prop_assert_eq!(check_result_text(&text), check_result_json(&value));
    }
}

#[test]
fn a_result_type_with_person_ids_would_be_caught_before_signing() {
    // What a careless future change might serialize.
    let mut value = serde_json::to_value(count_result(&job(), &site("a"))).unwrap();
    value["outcome"]["payload"]["person_ids"] = json!([101, 202, 303]);
    assert!(matches!(
        check_result_json(&value),
        Err(AggregateViolation::UnexpectedKey { key, .. }) if key == "person_ids"
    ));
    // ... even under an allowed key.
    let mut value = serde_json::to_value(count_result(&job(), &site("a"))).unwrap();
    value["outcome"]["payload"]["rules"] = json!([101, 202, 303]);
    assert!(matches!(
        check_result_json(&value),
        Err(AggregateViolation::RawArray { path }) if path == "$.outcome.payload.rules[0]"
    ));
    // Dates or ids smuggled as strings where numbers belong.
    let mut value = serde_json::to_value(count_result(&job(), &site("a"))).unwrap();
    value["outcome"]["payload"]["entries"]["value"] = json!("2019-03-04");
    assert!(matches!(
        check_result_json(&value),
        Err(AggregateViolation::UnexpectedString { .. })
    ));
    // And the typed form refuses to deserialize such extras at all.
    let mut value = serde_json::to_value(count_result(&job(), &site("a"))).unwrap();
    value["outcome"]["payload"]["person_ids"] = json!([101]);
    assert!(serde_json::from_value::<JobResult>(value).is_err());
}

#[test]
fn there_is_no_patient_list_query_type() {
    let mut j = serde_json::to_value(job()).unwrap();
    for t in [
        "prescreening",
        "recruitment_list",
        "patient_list",
        "person_ids",
    ] {
        j["query"] = json!({"type": t});
        assert!(serde_json::from_value::<Job>(j.clone()).is_err(), "{t}");
    }
    j["query"] = json!({"type": "cohort_count"});
    assert!(serde_json::from_value::<Job>(j).is_ok());
}

#[test]
fn unknown_released_kinds_and_fields_are_rejected() {
    for bad in [
        json!({"kind": "exact", "value": 12, "person_id": 7}),
        json!({"kind": "raw", "value": 12}),
        json!({"kind": "exact", "value": -1}),
        json!({"kind": "exact", "value": "12"}),
    ] {
        assert!(
            serde_json::from_value::<Released>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

fn payload_mut(r: &mut JobResult) -> &mut Payload {
    match &mut r.outcome {
        Outcome::Done { payload } => payload,
        _ => unreachable!(),
    }
}

fn count_mut(r: &mut JobResult) -> &mut CohortCountResult {
    match payload_mut(r) {
        Payload::CohortCount(c) => c,
        _ => unreachable!(),
    }
}

fn demo_mut(r: &mut JobResult) -> &mut DemographicsResult {
    match payload_mut(r) {
        Payload::Demographics(d) => d,
        _ => unreachable!(),
    }
}

#[test]
fn guard_checks_values() {
    let j = job();
    let s = site("a");
    assert_eq!(assert_aggregate_only(&count_result(&j, &s)), Ok(()));
    assert_eq!(
        assert_aggregate_only(&demographics_result(j.job_id, &s)),
        Ok(())
    );

    let mut r = count_result(&j, &s);
    count_mut(&mut r).final_persons = Released::Exact { value: 3 };
    assert!(matches!(
        assert_aggregate_only(&r),
        Err(AggregateViolation::ExactBelowThreshold { value: 3, threshold: 10, path }) if path == "$.final_persons"
    ));

    let mut r = count_result(&j, &s);
    count_mut(&mut r).rules[1].gain = Released::BelowThreshold { threshold: 5 };
    assert!(matches!(
        assert_aggregate_only(&r),
        Err(AggregateViolation::ThresholdMismatch {
            found: 5,
            declared: 10,
            ..
        })
    ));

    let mut r = count_result(&j, &s);
    count_mut(&mut r).disclosure.obfuscation = None;
    assert!(matches!(
        assert_aggregate_only(&r),
        Err(AggregateViolation::UndeclaredMechanism {
            mechanism: "obfuscation",
            ..
        })
    ));

    let mut r = count_result(&j, &s);
    count_mut(&mut r).entries = Released::Dp {
        value: Some(1200),
        sigma: 60.0,
        threshold: 10,
    };
    assert!(matches!(
        assert_aggregate_only(&r),
        Err(AggregateViolation::UndeclaredMechanism { .. })
    ));
    count_mut(&mut r).disclosure.dp = Some(DpParams {
        rho_spent: 0.07,
        sigma: 6.0,
        entries_bound: 10,
        remaining_rho: 0.4,
        user_remaining_rho: Some(0.4),
        organization_remaining_rho: None,
    });
    assert_eq!(assert_aggregate_only(&r), Ok(()));
    for bad in [f64::NAN, f64::INFINITY, 0.0, -1.0] {
        count_mut(&mut r).entries = Released::Dp {
            value: Some(1200),
            sigma: bad,
            threshold: 10,
        };
        assert!(matches!(
            assert_aggregate_only(&r),
            Err(AggregateViolation::InvalidParameter { .. })
        ));
    }

    let mut r = count_result(&j, &s);
    count_mut(&mut r).disclosure.obfuscation = Some(ObfuscationParams {
        bin: 5,
        sigma: f64::NAN,
        clamp: 10.0,
    });
    assert!(matches!(
        assert_aggregate_only(&r),
        Err(AggregateViolation::InvalidParameter { .. })
    ));

    let mut r = count_result(&j, &s);
    let rule = count_mut(&mut r).rules[0].clone();
    count_mut(&mut r).rules = vec![rule; MAX_RULES + 1];
    assert!(matches!(
        assert_aggregate_only(&r),
        Err(AggregateViolation::TooMany { what: "rules", .. })
    ));

    let mut r = demographics_result(j.job_id, &s);
    let c = demo_mut(&mut r).cells[0].clone();
    demo_mut(&mut r).cells.push(c);
    assert!(matches!(
        assert_aggregate_only(&r),
        Err(AggregateViolation::DuplicateCell { index: 3 })
    ));

    let mut r = demographics_result(j.job_id, &s);
    demo_mut(&mut r).cells = (0..=MAX_CELLS)
        .map(|i| Cell {
            age_band: None,
            gender: None,
            index_year: Some(1800 + (i % 500) as u16),
            count: Released::BelowThreshold { threshold: 10 },
        })
        .collect();
    assert!(matches!(
        assert_aggregate_only(&r),
        Err(AggregateViolation::TooMany { what: "cells", .. })
    ));

    let mut r = demographics_result(j.job_id, &s);
    demo_mut(&mut r).cells[0].age_band = Some(AgeBand {
        min_age: 50,
        max_age: Some(40),
    });
    assert!(matches!(
        assert_aggregate_only(&r),
        Err(AggregateViolation::InvalidAgeBand { index: 0, .. })
    ));

    let mut r = demographics_result(j.job_id, &s);
    demo_mut(&mut r).cells[1].index_year = Some(12345);
    assert!(matches!(
        assert_aggregate_only(&r),
        Err(AggregateViolation::IndexYearOutOfRange {
            index: 1,
            year: 12345
        })
    ));

    // Refusals and failures carry only codes.
    for outcome in [
        Outcome::Refused {
            reason: RefusalReason::RateLimited,
        },
        Outcome::Failed {
            error: FailureKind::Internal,
        },
    ] {
        let r = JobResult {
            job_id: j.job_id,
            site_id: s.clone(),
            outcome,
        };
        assert_eq!(assert_aggregate_only(&r), Ok(()));
    }
}

#[test]
fn results_are_tied_to_their_job() {
    let j = job();
    let s = site("a");
    assert_eq!(check_against_job(&j, &count_result(&j, &s)), Ok(()));

    let other = job();
    assert!(matches!(
        check_against_job(&other, &count_result(&j, &s)),
        Err(AggregateViolation::JobMismatch { .. })
    ));

    // A rule name is the only free-ish string; it must be the definition's own.
    let mut r = count_result(&j, &s);
    count_mut(&mut r).rules[1].name = RuleName::new("person 12345 born 1950-02-03").unwrap();
    assert!(matches!(
        check_against_job(&j, &r),
        Err(AggregateViolation::RuleMismatch { index: 1, .. })
    ));
    let mut r = count_result(&j, &s);
    count_mut(&mut r).rules.pop();
    assert!(matches!(
        check_against_job(&j, &r),
        Err(AggregateViolation::RuleMismatch { index: 1, .. })
    ));
    let mut r = count_result(&j, &s);
    let extra = count_mut(&mut r).rules[0].clone();
    count_mut(&mut r).rules.push(extra);
    assert!(matches!(
        check_against_job(&j, &r),
        Err(AggregateViolation::RuleMismatch { index: 2, .. })
    ));

    assert!(matches!(
        check_against_job(&j, &demographics_result(j.job_id, &s)),
        Err(AggregateViolation::PayloadMismatch {
            expected: "cohort_count",
            found: "demographics"
        })
    ));

    let mut dj = job();
    dj.query = QueryType::Demographics {
        age_band_years: 10,
        by_index_year: true,
    };
    assert_eq!(
        check_against_job(&dj, &demographics_result(dj.job_id, &s)),
        Ok(())
    );
    dj.query = QueryType::Demographics {
        age_band_years: 5,
        by_index_year: true,
    };
    assert!(matches!(
        check_against_job(&dj, &demographics_result(dj.job_id, &s)),
        Err(AggregateViolation::CellMismatch { index: 0, .. })
    ));
    dj.query = QueryType::Demographics {
        age_band_years: 10,
        by_index_year: false,
    };
    assert!(matches!(
        check_against_job(&dj, &demographics_result(dj.job_id, &s)),
        Err(AggregateViolation::CellMismatch { index: 0, .. })
    ));
}

#[test]
fn rule_names_reject_control_characters_and_length() {
    assert!(RuleName::new("Age >= 18 ").is_ok());
    assert!(RuleName::new("a\nb").is_err());
    assert!(RuleName::new("x".repeat(257)).is_err());
    assert!(serde_json::from_value::<RuleName>(json!("a\u{0}b")).is_err());
}

/// A regression round travels tagged; its result must have the round's shape (1 + p + p² finite
/// sums, counts over the threshold) to pass the aggregate-only guard.
#[test]
fn rounds_travel_tagged_and_results_must_have_the_rounds_shape() {
    let round = RegressionRound {
        run_id: JobId::random(),
        round: 2,
        spec: RegressionSpec {
            model: RegressionModel::Logistic,
            outcome: serde_json::json!({}),
            comparator: Some(serde_json::json!({})),
            covariates: vec![RegressionCovariate::Age],
            tar: "start+0:obs_end".into(),
        },
        coefficients: Coefficients(vec![0.1, -0.2, 0.3]),
    };
    // Intercept, treatment (added first), age.
    assert_eq!(round.spec.parameters(), 3);
    assert_eq!(round.check(), Ok(()));
    let q = QueryType::RegressionRound(round.clone());
    let text = serde_json::to_string(&q).unwrap();
    assert!(text.starts_with(r#"{"type":"regression_round""#), "{text}");
    assert_eq!(serde_json::from_str::<QueryType>(&text).unwrap(), q);
    let mut bad = round.clone();
    bad.coefficients.0.push(1.0);
    assert_eq!(bad.check().unwrap_err().0, "$.coefficients");
    bad.coefficients.0 = vec![0.0, f64::NAN, 0.0];
    assert_eq!(bad.check().unwrap_err().0, "$.coefficients[1]");
    bad = round.clone();
    bad.spec.comparator = None;
    bad.spec.covariates.push(RegressionCovariate::Treatment);
    assert_eq!(bad.check().unwrap_err().0, "$.spec.covariates[1]");

    let summary = DisclosureSummary {
        min_cell_count: 5,
        obfuscation: None,
        secondary_suppression: false,
        dp: None,
    };
    let sums = |p: usize| RegressionSums {
        persons: Released::Exact { value: 50 },
        events: Released::Exact { value: 10 },
        loglik: RealSum { value: -20.5 },
        gradient: vec![RealSum { value: 0.5 }; p],
        hessian: vec![RealSum { value: -3.0 }; p * p],
        disclosure: summary.clone(),
    };
    let job = Job {
        job_id: JobId::random(),
        project_id: ProjectId::new("p1").unwrap(),
        query: q,
        definition: serde_json::json!({}),
        requested_by: Requester {
            user_id: UserId::new("u").unwrap(),
            role: UserRole::SponsorResearcher,
            organization: "o".into(),
        },
        created_at: 0,
        floors: Floors::none(),
    };
    let result = |s: RegressionSums| JobResult {
        job_id: job.job_id,
        site_id: SiteId::new("h1").unwrap(),
        outcome: Outcome::Done {
            payload: Payload::RegressionRound(s),
        },
    };
    assert_eq!(check_against_job(&job, &result(sums(3))), Ok(()));
    assert!(check_against_job(&job, &result(sums(2))).is_err());
    let mut small = sums(3);
    small.events = Released::Exact { value: 2 };
    assert!(
        check_against_job(&job, &result(small)).is_err(),
        "an exact count below the threshold"
    );
    let mut inf = sums(3);
    inf.hessian[4].value = f64::INFINITY;
    assert!(check_against_job(&job, &result(inf)).is_err());
}

#[test]
fn the_text_check_finds_what_the_tree_walk_finds() {
    let bad = [
        json!({ "job_id": "j", "outcome": { "payload": { "person_ids": [{ "n": 1 }] } } }),
        json!({ "job_id": "j", "outcome": { "status": "done", "payload": { "value": "a name" } } }),
        json!({ "job_id": "j", "rows": [1, 2] }),
        json!({ "job_id": "j", "rows": [{ "value": 1 }, { "secret": 2 }] }),
        json!("just a string"),
        json!({ "name": "x".repeat(10_000) }),
    ];
    for value in bad {
        let text = serde_json::to_vec(&value).unwrap();
        let tree = check_result_json(&value);
        assert!(tree.is_err(), "{value}");
        assert_eq!(check_result_text(&text), tree, "{value}");
    }
    let good = json!({ "job_id": "j", "rows": [{ "value": 1, "name": "rule" }], "status": "done" });
    assert_eq!(
        check_result_text(&serde_json::to_vec(&good).unwrap()),
        Ok(())
    );
    assert_eq!(check_result_json(&good), Ok(()));
}
