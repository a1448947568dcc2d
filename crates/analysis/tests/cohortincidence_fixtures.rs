//! CohortIncidence 4.1.1's own Java test suite (`Incidence_5_0_Test.java`): each design of
//! `../shared/data/cohortincidence-tests` run on its PREP data set must give its VERIFY
//! `incidence_summary` rows exactly (row by row in the verify query's order, PostgreSQL NULLS
//! LAST; rates as `ROUND(x, 4)` compares them).

#[path = "../../cohort/tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use qiao_analysis::incidence::{self, Cohorts, Design, SummaryRow};
use qiao_cohort::CohortRow;
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    common::data("cohortincidence-tests")
}

/// Every `XTest.json` with an `X_PREP.json` and `X_VERIFY.json` beside it.
fn fixtures() -> Vec<(String, PathBuf, PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for dir in [fixtures_dir(), fixtures_dir().join("timeAtRisk")] {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let Some(stem) = name.strip_suffix("Test.json") else {
                continue;
            };
            let prep = dir.join(format!("{stem}_PREP.json"));
            let verify = dir.join(format!("{stem}_VERIFY.json"));
            if prep.exists() && verify.exists() {
                out.push((stem.to_string(), p.clone(), prep, verify));
            }
        }
    }
    out
}

fn vocabulary() -> PathBuf {
    common::data("../oracles/vendor/CohortIncidence/java/test/resources/datasets/vocabulary.json")
}

/// ROUND(x, 4) as the test harness's PostgreSQL does it (half away from zero).
fn round4(x: f64) -> f64 {
    let s = x * 10_000.0;
    s.abs().round().copysign(s) / 10_000.0
}

fn column(r: &SummaryRow, name: &str) -> Value {
    let v = serde_json::to_value(r).unwrap();
    let x = v.get(name).cloned().unwrap_or(Value::Null);
    match (name, x.as_f64()) {
        ("incidence_proportion_p100p" | "incidence_rate_p100py", Some(f)) => {
            serde_json::json!(round4(f))
        }
        _ => x,
    }
}

fn same(expected: &Value, actual: &Value) -> bool {
    match (expected.as_f64(), actual.as_f64()) {
        (Some(e), Some(a)) => (e - a).abs() <= 1e-9 * e.abs().max(1.0),
        _ => expected.is_null() && actual.is_null(),
    }
}

fn run_fixture(stem: &str, design: &Path, prep: &Path, verify: &Path) -> Result<usize, String> {
    let (tables, other) = common::load_dbunit(&[vocabulary(), prep.to_path_buf()]);
    let store = qiao_store::from_tables(tables).map_err(|e| format!("store: {e}"))?;
    let mut cohorts: Cohorts = HashMap::new();
    for (key, rows) in &other {
        if !key.ends_with(".cohort") {
            continue;
        }
        for r in rows {
            let day = |k: &str| qiao_cdm::date::parse(r[k].as_str().unwrap().as_bytes()).unwrap();
            cohorts
                .entry(r["cohort_definition_id"].as_i64().unwrap())
                .or_default()
                .push(CohortRow {
                    subject_id: r["subject_id"].as_i64().unwrap(),
                    start: day("cohort_start_date"),
                    end: day("cohort_end_date"),
                });
        }
    }
    let text = std::fs::read_to_string(design).unwrap();
    let design = Design::parse(&design.display().to_string(), &text).map_err(|e| e.to_string())?;
    // A cohort the design names but the PREP data lacks is an empty cohort table.
    for id in design
        .target_defs
        .iter()
        .map(|t| t.id)
        .chain(
            design
                .outcome_defs
                .iter()
                .flat_map(|o| [Some(o.cohort_id), o.exclude_cohort_id])
                .flatten(),
        )
        .chain(design.subgroups.iter().map(|s| s.cohort_subgroup.cohort.id))
    {
        cohorts.entry(id).or_default();
    }
    let mut rows = incidence::run(&store, &design, &cohorts, stem).map_err(|e| e.to_string())?;
    // The verify query's ORDER BY, PostgreSQL NULLS LAST.
    rows.sort_by_key(|r| {
        let k = |x: Option<i64>| (x.is_none(), x);
        (
            r.target_cohort_definition_id,
            r.tar_id,
            r.subgroup_id,
            r.outcome_id,
            k(r.age_group_id),
            k(r.gender_id),
            k(r.start_year.map(i64::from)),
        )
    });
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(verify).unwrap()).unwrap();
    let expected = expected
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.ends_with(".incidence_summary"))
        .map(|(_, v)| v.as_array().unwrap().clone())
        .ok_or("no incidence_summary in VERIFY")?;
    if expected.len() != rows.len() {
        return Err(format!(
            "{} rows expected, {} computed: {rows:#?}",
            expected.len(),
            rows.len()
        ));
    }
    for (i, (e, r)) in expected.iter().zip(&rows).enumerate() {
        for (col, ev) in e.as_object().unwrap() {
            let av = match col.as_str() {
                // Names come from target_def / outcome_def (the design), not incidence_summary.
                "target_name" | "outcome_name" => continue,
                c => column(r, c),
            };
            if !same(ev, &av) {
                return Err(format!(
                    "row {i}: {col}: expected {ev}, computed {av}\n{r:#?}"
                ));
            }
        }
    }
    Ok(expected.len())
}

#[test]
fn cohortincidence_java_test_fixtures_reproduce_exactly() {
    let all = fixtures();
    assert_eq!(
        all.len(),
        16,
        "CohortIncidence's 16 fixtures: {:?}",
        all.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let mut failures = Vec::new();
    let mut rows = 0;
    for (stem, design, prep, verify) in &all {
        match run_fixture(stem, design, prep, verify) {
            Ok(n) => rows += n,
            Err(e) => failures.push(format!("{stem}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures differ:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} fixtures, {rows} incidence_summary rows reproduced exactly",
        all.len()
    );
}
