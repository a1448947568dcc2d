//! circe-be's cohort generation tests (14 cases, 38 cohort expressions): exact cohort rows and,
//! where the case verifies them, censor stats and inclusion rule masks.

mod common;

use std::collections::BTreeMap;
use std::fs;

use common::*;
use qiao_cdm::date;
use qiao_cohort::exec::Prepared;
use serde_json::Value;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    prep: Vec<String>,
    verify: String,
    cohort_ids: Vec<i64>,
    verify_tables: BTreeMap<String, usize>,
}

fn rows_of(v: &[Value], cohort_id: i64, cols: &[&str]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = v
        .iter()
        .filter(|r| r["cohort_definition_id"].as_i64() == Some(cohort_id))
        .map(|r| {
            cols.iter()
                .map(|c| match &r[*c] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    out.sort();
    out
}

/// Runs one case; returns (cohorts that match, mismatch descriptions).
fn run_case(dir: &str) -> (usize, Vec<String>) {
    let case_dir = data("circe-tests/materialized").join(dir);
    let case: Case = serde_json::from_str(&read(&case_dir.join("case.json"))).unwrap();
    let mut files = case.prep.clone();
    files.push(case.verify.clone());
    let (store, expected) = dbunit_store(&files);
    let mut ok = 0;
    let mut bad = Vec::new();
    for &id in &case.cohort_ids {
        let json = read(&case_dir.join(format!("cohort_{id}.json")));
        let def = qiao_cohort::parse(&json).unwrap_or_else(|e| panic!("{}/{id}: {e}", case.name));
        let prepared = Prepared::new(&def, &store).unwrap();
        let (rows, stats) = run_both(&prepared, &store, &format!("{}/{id}", case.name)).unwrap();
        let mut errs = Vec::new();
        for table in case.verify_tables.keys() {
            let exp = expected.get(table).cloned().unwrap_or_default();
            if table.ends_with(".cohort") {
                let want = rows_of(
                    &exp,
                    id,
                    &["subject_id", "cohort_start_date", "cohort_end_date"],
                );
                let mut got: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.subject_id.to_string(),
                            date::format(r.start),
                            date::format(r.end),
                        ]
                    })
                    .collect();
                got.sort();
                if got != want {
                    errs.push(format!("rows: got {got:?}, want {want:?}"));
                }
            } else if table.ends_with(".cohort_censor_stats") {
                let want = rows_of(&exp, id, &["lost_count"]);
                let got = vec![vec![stats.censor_lost.unwrap_or(0).to_string()]];
                if got != want {
                    errs.push(format!("censor stats: got {got:?}, want {want:?}"));
                }
            } else if table.ends_with(".cohort_inclusion_result") {
                let want = rows_of(
                    &exp,
                    id,
                    &["inclusion_rule_mask", "person_count", "mode_id"],
                );
                let mut got = Vec::new();
                for (mode, m) in stats.modes.iter().enumerate() {
                    for (mask, n) in &m.masks {
                        got.push(vec![mask.to_string(), n.to_string(), mode.to_string()]);
                    }
                }
                got.sort();
                if got != want {
                    errs.push(format!("inclusion result: got {got:?}, want {want:?}"));
                }
            } else {
                panic!("{}: unexpected verify table {table}", case.name);
            }
        }
        if errs.is_empty() {
            ok += 1;
        } else {
            bad.push(format!("{}/cohort_{id}: {}", case.name, errs.join("; ")));
        }
    }
    (ok, bad)
}

#[test]
fn all_materialized_cases_match_circe() {
    let mut dirs: Vec<String> = fs::read_dir(data("circe-tests/materialized"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 14);
    let mut ok = 0;
    let mut bad = Vec::new();
    for d in &dirs {
        let (o, b) = run_case(d);
        ok += o;
        bad.extend(b);
    }
    eprintln!("materialized: {ok}/38 cohorts match");
    assert!(bad.is_empty(), "{ok}/38 match\n{}", bad.join("\n"));
    assert_eq!(ok, 38);
}
