//! `qiao cohort run` as other tools call it: the CohortGenerator reference cohorts on GiBleed give
//! the reference counts, and `--per-person` (the per-person evaluator) prints and writes exactly
//! what the default (fused pipeline) does.

mod support;

use support::{qiao, without_millis};

const GIBLEED: &str = "../../../shared/data/eunomia-gibleed-5.3";
const COHORTS: &str = "../../../shared/data/reference/cohortgenerator-eunomia/cohorts";

#[test]
fn per_person_evaluator_prints_and_writes_what_the_fused_pipeline_does() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("g.qiao");
    let store = store.to_str().unwrap();
    qiao(&["ingest", "--cdm", GIBLEED, "--out", store]);
    let defs: Vec<String> = (1..=4).map(|i| format!("{COHORTS}/{i}.json")).collect();
    let mut outputs = Vec::new();
    for extra in [None, Some("--per-person")] {
        let csv = dir.path().join(format!("rows{}.csv", outputs.len()));
        let mut args = vec!["cohort", "run", "--store", store, "--stats", "--json"];
        args.extend(extra);
        args.extend(["--out", csv.to_str().unwrap()]);
        args.extend(defs.iter().map(String::as_str));
        let json = without_millis(&qiao(&args));
        let rows = std::fs::read_to_string(&csv).unwrap();
        outputs.push((json, rows));
    }
    let (fused, per_person) = (&outputs[0], &outputs[1]);
    let entries: Vec<u64> = fused
        .0
        .iter()
        .map(|v| v["entries"].as_u64().unwrap())
        .collect();
    assert_eq!(entries, [1800, 569, 266, 1750]);
    assert_eq!(fused.0[2]["rules"][1]["remaining"], 266);
    assert_eq!(fused.0, per_person.0, "JSON lines");
    assert_eq!(fused.1.lines().count(), 1 + 1800 + 569 + 266 + 1750);
    assert_eq!(fused.1, per_person.1, "cohort rows CSV");
}

/// `qiao cohort print` prints the narrative pinned by the cohort crate's golden files, in both
/// languages, titled by the file name; an unknown language is refused.
#[test]
fn cohort_print_prints_the_golden_narrative_in_both_languages() {
    for (lang, tag) in [("en", "en"), ("zh-CN", "zh-CN")] {
        let out = qiao(&[
            "cohort",
            "print",
            "--lang",
            lang,
            &format!("{COHORTS}/3.json"),
        ]);
        let golden =
            std::fs::read_to_string(format!("../cohort/tests/golden/narrative/cg3.{tag}.md"))
                .unwrap();
        let body = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
        assert_eq!(out.lines().next(), Some("# 3"));
        assert_eq!(body(&out), body(&golden));
    }
    let bad = support::run_for(
        &[
            "cohort",
            "print",
            "--lang",
            "fr",
            &format!("{COHORTS}/3.json"),
        ],
        None,
        std::time::Duration::from_secs(60),
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown language \"fr\""));
}
