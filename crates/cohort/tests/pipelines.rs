//! The fused pipeline and the per-person evaluator give the same cohort rows, person masks and
//! statistics (parallel and single-threaded) on every real definition the fused one takes: the
//! 110 PhenotypeLibrary definitions and the CohortGenerator cohorts on Eunomia GiBleed. (The
//! circe-be materialized cases and the random differential definitions check both too, through
//! [`common::run_both`].)

mod common;

use common::*;
use qiao_cohort::exec::{Pipeline, Prepared};

#[test]
fn fused_and_per_person_pipelines_agree_on_gibleed() {
    let store = gibleed();
    let mut defs: Vec<(String, String)> = (1..=4)
        .map(|id| {
            let p = data(&format!(
                "reference/cohortgenerator-eunomia/cohorts/{id}.json"
            ));
            (format!("cg/{id}"), read(&p))
        })
        .collect();
    let mut dir: Vec<_> = std::fs::read_dir(data("phenotypes-dev/cohorts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dir.sort();
    for p in dir {
        let name = format!("pl/{}", p.file_stem().unwrap().to_string_lossy());
        defs.push((name, read(&p)));
    }
    let (mut fused, mut fused_nonempty, mut with_rules) = (0, 0, 0);
    for (name, json) in &defs {
        let def = qiao_cohort::parse(json).unwrap_or_else(|e| panic!("{name}: {e}"));
        let prepared = Prepared::new(&def, store).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (rows, stats) = run_both(&prepared, store, name).unwrap();
        if prepared.pipeline() == Pipeline::Fused {
            fused += 1;
            fused_nonempty += !rows.is_empty() as usize;
            with_rules += !stats.rule_names.is_empty() as usize;
        }
    }
    eprintln!("fused: {fused} definitions, {fused_nonempty} non-empty, {with_rules} with rules");
    // The comparison covers many definitions, non-empty ones and ones with inclusion rules.
    assert!(fused >= 40, "{fused} definitions on the fused pipeline");
    assert!(fused_nonempty >= 10, "{fused_nonempty} non-empty");
    assert!(with_rules >= 2, "{with_rules} with inclusion rules");
}

/// A concept set of one concept (with descendants).
fn concept_set(id: i32, concept: i64) -> String {
    format!(
        r#"{{"id": {id}, "name": "cs{id}", "expression": {{"items": [{{"concept": {{"CONCEPT_ID": {concept}}}, "includeDescendants": true}}]}}}}"#
    )
}

/// An inclusion rule: `occurrence` ("type", "count") of condition codeset `cs` starting within
/// [index + lo, index + hi] days.
fn rule(name: &str, cs: i32, (kind, count): (i32, i32), (lo, hi): (i32, i32)) -> String {
    format!(
        r#"{{"name": "{name}", "expression": {{"Type": "ALL", "CriteriaList": [{{"Criteria": {{"ConditionOccurrence": {{"CodesetId": {cs}}}}},
        "StartWindow": {{"Start": {{"Days": {a}, "Coeff": {ca}}}, "End": {{"Days": {b}, "Coeff": {cb}}}}},
        "Occurrence": {{"Type": {kind}, "Count": {count}}}}}], "DemographicCriteriaList": [], "Groups": []}}}}"#,
        a = lo.abs(),
        ca = if lo < 0 { -1 } else { 1 },
        b = hi.abs(),
        cb = if hi < 0 { -1 } else { 1 },
    )
}

/// Definitions built to reach the fused pipeline's shortcuts: a group criteria selecting the same
/// events as the primary criteria (read once, shared), and groups whose criteria match no row
/// (a constant result). Each must agree with the per-person evaluator, which takes neither.
#[test]
fn shared_events_and_constant_groups_agree_with_the_per_person_evaluator() {
    let store = gibleed();
    // 28060 streptococcal sore throat (few enough rows to be gathered), 40481087 viral sinusitis
    // (many), and a concept no row has.
    let sets = [
        concept_set(0, 28060),
        concept_set(1, 40481087),
        concept_set(2, 2_000_000_001),
    ]
    .join(",");
    let def_on = |primary: i32, first: bool, age: bool, rules: &[String], additional: &str| {
        let filter = if age {
            r#", "Age": {"Value": 18, "Op": "gte"}"#
        } else {
            ""
        };
        format!(
            r#"{{"ConceptSets": [{sets}], "PrimaryCriteria": {{"CriteriaList": [{{"ConditionOccurrence": {{"CodesetId": {primary}, "First": {first}{filter}}}}}],
            "ObservationWindow": {{"PriorDays": 0, "PostDays": 0}}, "PrimaryCriteriaLimit": {{"Type": "All"}}}}{additional},
            "InclusionRules": [{}], "QualifiedLimit": {{"Type": "First"}}, "ExpressionLimit": {{"Type": "All"}},
            "CollapseSettings": {{"CollapseType": "ERA", "EraPad": 0}}}}"#,
            rules.join(",")
        )
    };
    let def = |first: bool, age: bool, rules: &[String], additional: &str| {
        def_on(0, first, age, rules, additional)
    };
    let no_prior = rule("no sore throat in the 30 days before", 0, (0, 0), (-30, -1));
    let sinusitis = rule("sinusitis within a year before", 1, (2, 1), (-365, 0));
    let never = rule("at least one of nothing", 2, (2, 1), (-365, 365));
    let always = rule("at most 0 of nothing", 2, (1, 0), (-365, 365));
    let absent_additional = r#", "AdditionalCriteria": {"Type": "ALL", "CriteriaList": [{"Criteria": {"ConditionOccurrence": {"CodesetId": 2}}, "StartWindow": {"Start": {"Coeff": -1}, "End": {"Coeff": 1}}, "Occurrence": {"Type": 0, "Count": 0}}], "DemographicCriteriaList": [], "Groups": []}"#;
    let cases = [
        (
            "first, age filter, clean window",
            def(true, true, std::slice::from_ref(&no_prior), ""),
        ),
        (
            "first, clean window",
            def(true, false, std::slice::from_ref(&no_prior), ""),
        ),
        (
            "all events, clean window",
            def(false, false, std::slice::from_ref(&no_prior), ""),
        ),
        (
            "constant rules",
            def(
                false,
                false,
                &[never.clone(), always.clone(), sinusitis.clone()],
                "",
            ),
        ),
        (
            "constant additional",
            def(
                false,
                true,
                std::slice::from_ref(&sinusitis),
                absent_additional,
            ),
        ),
        // Sore throat rows (gathered) belong to a few of the persons with sinusitis: for the
        // others the rules are constant.
        (
            "sinusitis, rules on sore throat",
            def_on(
                1,
                false,
                false,
                &[
                    rule("sore throat within a year before", 0, (2, 1), (-365, 0)),
                    rule("no sore throat within 30 days before", 0, (0, 0), (-30, 0)),
                ],
                "",
            ),
        ),
    ];
    for (name, json) in &cases {
        let parsed = qiao_cohort::parse(json).unwrap_or_else(|e| panic!("{name}: {e}"));
        let prepared = Prepared::new(&parsed, store).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(prepared.pipeline(), Pipeline::Fused, "{name}");
        let (rows, stats) = run_both(&prepared, store, name).unwrap();
        let persons = &stats.modes[1];
        assert!(
            persons.base_count > 100,
            "{name}: {} persons",
            persons.base_count
        );
        if *name == "constant rules" {
            // No event passes "at least one of nothing" (so none is in the cohort); every event
            // passes "at most 0 of nothing".
            assert!(rows.is_empty(), "{name}");
            assert_eq!(persons.rules[0].person_count, 0, "{name}");
            assert_eq!(persons.rules[1].person_count, persons.base_count, "{name}");
            assert!(persons.rules[2].person_count > 0, "{name}");
        } else {
            assert!(!rows.is_empty(), "{name}: no rows");
        }
        if *name == "sinusitis, rules on sore throat" {
            // Some persons pass the first rule, not all.
            let first = persons.rules[0].person_count;
            assert!(first > 0 && first < persons.base_count, "{name}: {first}");
        }
    }
}

/// Both native pipelines behind the `Evaluator` contract give what `Prepared::run` gives; a
/// definition prepared without resolving its concept sets (for an evaluator with its own
/// vocabulary) is refused by the native ones, never run with empty concept sets.
#[test]
fn native_evaluators_fulfil_the_evaluator_contract() {
    use qiao_cohort::exec::{Evaluator, Native};
    let store = gibleed();
    let json = read(&data("reference/cohortgenerator-eunomia/cohorts/3.json"));
    let def = qiao_cohort::parse(&json).unwrap();
    let prepared = Prepared::new(&def, store).unwrap();
    let mut expected = Vec::new();
    let s = prepared.run(store, &mut expected).unwrap();
    assert_eq!(s.entries, 266);
    for pipeline in [None, Some(Pipeline::Fused), Some(Pipeline::PerPerson)] {
        let native = Native {
            pipeline,
            ..Native::new(store)
        };
        let mut rows = Vec::new();
        let stats = prepared.evaluate(&native, &mut rows).unwrap();
        assert_eq!(rows, expected, "{pipeline:?}");
        assert_eq!(stats.modes, s.modes, "{pipeline:?}");
        assert_eq!(
            native.evaluate(&prepared, &mut Vec::new()).unwrap().entries,
            266
        );
    }
    let unresolved = Prepared::unresolved(&def).unwrap();
    assert_eq!(
        unresolved.concept_sets().len(),
        def.expression.concept_sets.len()
    );
    let e = unresolved
        .evaluate(&Native::new(store), &mut Vec::new())
        .unwrap_err();
    assert!(e.to_string().contains("not resolved"), "{e}");
}
