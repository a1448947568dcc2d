//! Eunomia GiBleed: the OHDSI CohortGenerator reference results (Java Circe) and the 110
//! PhenotypeLibrary definitions against the counts of a peer engine (duckcdm).

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::*;
use qiao_cohort::exec::{Counter, Prepared};

fn csv_rows(rel: &str) -> Vec<BTreeMap<String, String>> {
    let text = read(&data(rel));
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(|s| s.trim().to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn cohort_generator_reference_on_gibleed() {
    let store = gibleed();
    let base = "reference/cohortgenerator-eunomia/Results_Eunomia";
    let counts = csv_rows(&format!("{base}/cg_cohort_count.csv"));
    let inc_stats = csv_rows(&format!("{base}/cg_cohort_inc_stats.csv"));
    let inc_result = csv_rows(&format!("{base}/cg_cohort_inc_result.csv"));
    let summary = csv_rows(&format!("{base}/cg_cohort_summary_stats.csv"));
    let censor = csv_rows(&format!("{base}/cg_cohort_censor_stats.csv"));
    for id in 1..=4 {
        let json = read(&data(&format!(
            "reference/cohortgenerator-eunomia/cohorts/{id}.json"
        )));
        let def = qiao_cohort::parse(&json).unwrap();
        let prepared = Prepared::new(&def, store).unwrap();
        let mut counter = Counter::default();
        let stats = prepared.run(store, &mut counter).unwrap();
        let id_s = id.to_string();
        let want = counts.iter().find(|r| r["cohort_id"] == id_s).unwrap();
        assert_eq!(
            (counter.entries.to_string(), counter.subjects.to_string()),
            (
                want["cohort_entries"].clone(),
                want["cohort_subjects"].clone()
            ),
            "cohort {id} counts"
        );
        let mine = |r: &&BTreeMap<String, String>| r["cohort_definition_id"] == id_s;
        // Inclusion stats per rule and mode.
        let mut want: Vec<String> = inc_stats
            .iter()
            .filter(mine)
            .map(|r| {
                format!(
                    "{} {} {} {} {}",
                    r["mode_id"],
                    r["rule_sequence"],
                    r["person_count"],
                    r["gain_count"],
                    r["person_total"]
                )
            })
            .collect();
        let mut got = Vec::new();
        let mut got_masks = Vec::new();
        let mut got_summary = Vec::new();
        if !stats.rule_names.is_empty() {
            for (mode, m) in stats.modes.iter().enumerate() {
                for (i, r) in m.rules.iter().enumerate() {
                    got.push(format!(
                        "{mode} {i} {} {} {}",
                        r.person_count, r.gain_count, r.person_total
                    ));
                }
                for (mask, n) in &m.masks {
                    got_masks.push(format!("{mode} {mask} {n}"));
                }
                got_summary.push(format!("{mode} {} {}", m.base_count, m.final_count));
            }
        }
        want.sort();
        got.sort();
        assert_eq!(got, want, "cohort {id} inclusion stats");
        let mut want: Vec<String> = inc_result
            .iter()
            .filter(mine)
            .map(|r| {
                format!(
                    "{} {} {}",
                    r["mode_id"], r["inclusion_rule_mask"], r["person_count"]
                )
            })
            .collect();
        want.sort();
        got_masks.sort();
        assert_eq!(got_masks, want, "cohort {id} inclusion results");
        let mut want: Vec<String> = summary
            .iter()
            .filter(mine)
            .map(|r| format!("{} {} {}", r["mode_id"], r["base_count"], r["final_count"]))
            .collect();
        want.sort();
        got_summary.sort();
        assert_eq!(got_summary, want, "cohort {id} summary stats");
        let want: Vec<String> = censor
            .iter()
            .filter(mine)
            .map(|r| r["lost_count"].clone())
            .collect();
        let got: Vec<String> = stats.censor_lost.iter().map(|n| n.to_string()).collect();
        assert_eq!(got, want, "cohort {id} censor stats");
    }
}

#[test]
fn phenotype_library_on_gibleed_matches_duckcdm() {
    let store = gibleed();
    let tsv = read(&data("phenotypes-dev/duckcdm_on_gibleed.tsv"));
    let mut ok = 0;
    let mut bad = Vec::new();
    let mut times = Vec::new();
    let mut n = 0;
    for line in tsv.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let (id, entries, subjects) = (f[0], f[1], f[2]);
        n += 1;
        let json = read(&data(&format!("phenotypes-dev/cohorts/{id}.json")));
        let def = qiao_cohort::parse(&json).unwrap_or_else(|e| panic!("{id}: {e}"));
        let t0 = Instant::now();
        let result = Prepared::new(&def, store).and_then(|p| {
            let mut c = Counter::default();
            p.run(store, &mut c).map(|_| c)
        });
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        match result {
            Ok(c) if c.entries.to_string() == entries && c.subjects.to_string() == subjects => {
                ok += 1
            }
            Ok(c) => bad.push(format!(
                "{id}: got {}/{}, duckcdm {entries}/{subjects}",
                c.entries, c.subjects
            )),
            Err(e) => bad.push(format!("{id}: error {e}")),
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!(
        "phenotypes: {ok}/{n} match duckcdm; median {:.2} ms, max {:.2} ms",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    assert_eq!(n, 110);
    assert!(bad.is_empty(), "{ok}/{n} match\n{}", bad.join("\n"));
}

#[test]
fn parallel_and_single_threaded_runs_are_identical() {
    let store = gibleed();
    let mut compared = 0;
    for entry in std::fs::read_dir(data("phenotypes-dev/cohorts")).unwrap() {
        let p = entry.unwrap().path();
        let def = qiao_cohort::parse(&read(&p)).unwrap();
        let prepared = Prepared::new(&def, store).unwrap();
        let mut a: Vec<qiao_cohort::CohortRow> = Vec::new();
        let mut b: Vec<qiao_cohort::CohortRow> = Vec::new();
        let sa = prepared.run_with(store, &mut a, true).unwrap();
        let sb = prepared.run_with(store, &mut b, false).unwrap();
        assert_eq!(a, b, "{}", p.display());
        assert_eq!(sa.modes, sb.modes, "{}", p.display());
        assert!(a
            .windows(2)
            .all(|w| (w[0].subject_id, w[0].start) < (w[1].subject_id, w[1].start)));
        compared += !a.is_empty() as usize;
    }
    assert!(compared >= 16);
}
