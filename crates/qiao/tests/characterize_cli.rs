//! `qiao analyze characterize|incidence` as checks call them: the JSON shapes of issue #15 with
//! the numbers FeatureExtraction and CohortIncidence give on GiBleed (crates/analysis/tests/oracles.rs
//! compares every number with the OHDSI code itself).

use std::process::Command;

use serde_json::Value;

const GIBLEED: &str = "../../../shared/data/eunomia-gibleed-5.3";
const COHORTS: &str = "../../../shared/data/reference/cohortgenerator-eunomia/cohorts";
const GI_BLEED: &str = "../analysis/tests/data/gi_bleed.json";

fn qiao(args: &[&str]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_qiao"))
        .args(args)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() < 1e-12
}

#[test]
fn characterize_and_incidence_print_the_oracles_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("g.qiao");
    let store = store.to_str().unwrap();
    qiao(&["ingest", "--cdm", GIBLEED, "--out", store]).unwrap();
    let (t, c) = (format!("{COHORTS}/1.json"), format!("{COHORTS}/2.json"));

    let out = qiao(&[
        "analyze",
        "characterize",
        "--store",
        store,
        "--target",
        &t,
        "--comparator",
        &c,
        "--json",
    ])
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["target"],
        serde_json::json!({"entries": 1800, "subjects": 1800})
    );
    assert_eq!(v["comparator"]["entries"], 569);
    let cov = v["covariates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["covariate_id"] == 8507001)
        .unwrap();
    assert_eq!(cov["analysis_id"], 1);
    assert_eq!(cov["concept_id"], 8507);
    assert_eq!(cov["target"]["sum"], 894);
    assert!(close(&cov["target"]["mean"], 894.0 / 1800.0));
    assert_eq!(cov["comparator"]["sum"], 266);
    // FE's sign: (comparator − target) / pooled sd.
    let (m1, m2) = (894.0 / 1800.0, 266.0 / 569.0);
    let sd = ((m1 * (1.0 - m1) + m2 * (1.0 - m2)) / 2.0f64).sqrt();
    assert!(close(&cov["smd"], (m2 - m1) / sd), "{}", cov["smd"]);
    let charlson = v["continuous"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["covariate_id"] == 1901)
        .unwrap();
    assert_eq!(charlson["target"]["count"], 935);
    assert!(close(&charlson["target"]["mean"], 0.6144444444444445));
    assert!(close(&charlson["target"]["sd"], 0.3867813197434988));
    assert_eq!(charlson["target"]["median"], 1.0);
    assert_eq!(charlson["comparator"]["count"], 293);
    assert_eq!(charlson["comparator"]["p90"], 2.0);
    // Without a comparator: nulls.
    // The target alone with FE analyses `ids`.
    let target_only = |ids: &str| -> Value {
        let out = qiao(&[
            "analyze",
            "characterize",
            "--store",
            store,
            "--target",
            &t,
            "--analyses",
            ids,
            "--json",
        ])
        .unwrap();
        serde_json::from_str(&out).unwrap()
    };
    let v = target_only("1,3,901");
    assert!(v["comparator"].is_null());
    let ids: std::collections::BTreeSet<u64> = v["covariates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["analysis_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 3].into());
    assert!(v["covariates"][0]["comparator"].is_null() && v["covariates"][0]["smd"].is_null());
    // FE's continuous demographics and visit counts (numbers of FeatureExtraction 3.14 on GiBleed,
    // cohort 1): every statistic of the shape; visit concept counts one per visit concept.
    let v = target_only("2,8,9,920,923");
    let cont = |id: i64| -> Value {
        v["continuous"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["covariate_id"] == id)
            .unwrap_or_else(|| panic!("continuous {id} in {}", v["continuous"]))
            .clone()
    };
    let age = cont(1002);
    assert_eq!(age["analysis_id"], 2);
    assert_eq!(age["name"], "age in years");
    let keys: std::collections::BTreeSet<&str> = age["target"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["count", "mean", "sd", "min", "p10", "p25", "median", "p75", "p90", "max"].into()
    );
    assert_eq!(age["target"]["count"], 1800);
    assert!(close(&age["target"]["mean"], 38.645));
    assert_eq!(age["target"]["median"], 39.0);
    let prior = cont(1008);
    assert!(close(&prior["target"]["mean"], 14114.683888888889));
    assert_eq!(prior["target"]["median"], 14100.0);
    let post = cont(1009);
    assert!(close(&post["target"]["mean"], 7588.081666666667));
    assert_eq!(post["target"]["median"], 6676.0);
    let visits = cont(1920);
    assert_eq!(visits["target"]["count"], 3);
    assert_eq!(
        visits["target"]["min"], 0.0,
        "entries without visits count as 0"
    );
    assert!(close(&visits["target"]["mean"], 3.0 / 1800.0));
    assert_eq!(cont(9201923)["target"]["count"], 3);
    assert!(v["covariates"].as_array().unwrap().is_empty());
    // An analysis id FeatureExtraction does not define is an error naming it (every id of its
    // PrespecAnalyses.csv is computed, 926 included).
    let err = qiao(&[
        "analyze",
        "characterize",
        "--store",
        store,
        "--target",
        &t,
        "--analyses",
        "1,927",
    ])
    .unwrap_err();
    assert!(err.contains("analysis 927"), "{err}");

    let out = qiao(&[
        "analyze",
        "incidence",
        "--store",
        store,
        "--target",
        &t,
        "--outcome",
        GI_BLEED,
        "--tar",
        "start+0:end+0",
        "--clean-window",
        "30",
        "--strata",
        "age,gender,year",
        "--age-breaks",
        "40,65",
        "--json",
    ])
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let rows = v["rows"].as_array().unwrap();
    let all = &rows[0];
    assert!(
        all["age_group_id"].is_null() && all["gender_id"].is_null() && all["start_year"].is_null()
    );
    assert_eq!(all["persons_at_risk"], 1800);
    assert_eq!(all["person_days_pe"], 13660347);
    assert_eq!(all["person_days"], 13649969);
    assert_eq!(all["outcomes"], 355);
    assert!(close(
        &all["incidence_rate_p100py"],
        355.0 * 100.0 / (13649969.0 / 365.25)
    ));
    assert!(
        close(&all["ir_ci95_low"], 0.8536635203094596)
            || (all["ir_ci95_low"].as_f64().unwrap() - 0.8536635203094596).abs() < 1e-9
    );
    assert!(
        all["ip_ci95_high"].as_f64().unwrap() > 19.72
            && all["ip_ci95_high"].as_f64().unwrap() < 21.7
    );
    assert!(rows.iter().any(|r| r["age_group_id"].is_number()
        && r["gender_id"] == 8532
        && r["start_year"].is_number()));
    // The same analysis as a CohortIncidence design: the target by path, the outcome inline
    // (design ids: target 1, outcome 1 on cohort 100) gives the short form's rows; or the
    // outcome from `--cohort`.
    let abs = |p: &str| std::fs::canonicalize(p).unwrap().display().to_string();
    let mut design = serde_json::json!({
        "targetDefs": [{"id": 1, "name": "celecoxib"}],
        "outcomeDefs": [{"id": 1, "name": "GI bleed", "cohortId": 100, "cleanWindow": 30}],
        "timeAtRiskDefs": [{"id": 1, "start": {"dateField": "start", "offset": 0},
                            "end": {"dateField": "end", "offset": 0}}],
        "analysisList": [{"targets": [1], "outcomes": [1], "tars": [1]}],
        "strataSettings": {"byAge": true, "byGender": true, "byYear": true, "ageBreaks": [40, 65]},
        "cohortDefinitions": {
            "1": abs(&t),
            "100": serde_json::from_str::<Value>(&std::fs::read_to_string(GI_BLEED).unwrap()).unwrap(),
        }
    });
    let design_path = dir.path().join("design.json");
    let design_path = design_path.to_str().unwrap();
    let run_design = |design: &Value, extra: &[&str]| {
        std::fs::write(design_path, design.to_string()).unwrap();
        let mut args = vec![
            "analyze",
            "incidence",
            "--store",
            store,
            "--design",
            design_path,
        ];
        args.extend_from_slice(extra);
        args.push("--json");
        qiao(&args)
    };
    let by_design: Value = serde_json::from_str(&run_design(&design, &[]).unwrap()).unwrap();
    assert_eq!(by_design["rows"], v["rows"], "design and short form");
    design["cohortDefinitions"]
        .as_object_mut()
        .unwrap()
        .remove("100");
    let outcome = format!("100={}", abs(GI_BLEED));
    let by_flag: Value =
        serde_json::from_str(&run_design(&design, &["--cohort", &outcome]).unwrap()).unwrap();
    assert_eq!(by_flag["rows"], v["rows"], "outcome from --cohort");
    design["cohortDefinitions"]["x"] = serde_json::json!("1.json");
    let err = run_design(&design, &[]).unwrap_err();
    assert!(
        err.contains("cohortDefinitions.x: not a cohort id"),
        "{err}"
    );
    let err = qiao(&[
        "analyze",
        "incidence",
        "--store",
        store,
        "--target",
        &t,
        "--outcome",
        GI_BLEED,
        "--tar",
        "begin:end",
    ])
    .unwrap_err();
    assert!(err.contains("--tar begin:end"), "{err}");
}
