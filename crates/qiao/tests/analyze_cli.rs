//! `qiao analyze survival` and `qiao analyze regress` as checks call them, on GiBleed (celecoxib
//! vs diclofenac, GI bleed): the JSON shapes of the issue, the counts, the same numbers as the
//! library (itself checked against lifelines and statsmodels in crates/analysis/tests), and the
//! refusals and errors.

use std::process::{Command, Output};

use qiao_analysis::cohorts::cohort_rows;
use qiao_analysis::survival::{logrank, EventTable, KaplanMeier};
use qiao_analysis::time_to_event::{follow_up, TimeAtRisk};
use qiao_store::Store;
use serde_json::Value;

const GIBLEED: &str = "../../../shared/data/eunomia-gibleed-5.3";
const CELECOXIB: &str = "../../../shared/data/reference/cohortgenerator-eunomia/cohorts/1.json";
const DICLOFENAC: &str = "../analysis/tests/cohorts/diclofenac.json";
const GI_BLEED: &str = "../analysis/tests/cohorts/gi_bleed.json";
const ANKLE: &str = "../analysis/tests/cohorts/ankle_sprain.json";
const OSTEOARTHRITIS: &str = "../analysis/tests/cohorts/osteoarthritis.json";

fn qiao(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qiao"))
        .args(args)
        .output()
        .unwrap()
}

fn json_of(args: &[&str]) -> Value {
    let out = qiao(args);
    assert!(
        out.status.success(),
        "qiao {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn error_of(args: &[&str]) -> String {
    let out = qiao(args);
    assert!(!out.status.success(), "qiao {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn rows(store: &Store, path: &str) -> Vec<qiao_cohort::CohortRow> {
    cohort_rows(store, path, &std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `qiao analyze regress` on GiBleed, celecoxib and GI bleed, with `extra` arguments.
fn regress_args<'a>(
    store: &'a str,
    model: &'a str,
    covariates: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let args = [
        "analyze",
        "regress",
        "--store",
        store,
        "--model",
        model,
        "--target",
        CELECOXIB,
        "--outcome",
        GI_BLEED,
        "--covariates",
        covariates,
    ];
    [&args[..], extra].concat()
}

#[test]
fn survival_and_regression_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("g.qiao");
    let s = store_path.to_str().unwrap();
    assert!(qiao(&["ingest", "--cdm", GIBLEED, "--out", s])
        .status
        .success());

    // Survival: the shape, the counts, the library's numbers.
    let base = [
        "analyze",
        "survival",
        "--store",
        s,
        "--target",
        CELECOXIB,
        "--outcome",
        GI_BLEED,
    ];
    let v = json_of(&[&base[..], &["--comparator", DICLOFENAC, "--json"]].concat());
    let target = v["km"]["target"].as_array().unwrap();
    for key in [
        "time", "at_risk", "events", "censored", "survival", "lower", "upper",
    ] {
        assert!(target[1].get(key).is_some(), "km point has {key}");
    }
    assert_eq!(target[0]["at_risk"], 1800);
    let events: u64 = target.iter().map(|p| p["events"].as_u64().unwrap()).sum();
    assert_eq!(events, 355);
    assert_eq!(v["km"]["comparator"][0]["at_risk"], 830);
    assert_eq!(v["follow_up"]["comparator"]["events"], 124);
    assert_eq!(
        v["median"]["target"]["time"],
        Value::Null,
        "S(t) stays above 0.5"
    );
    assert!(v["method"]["interval"]
        .as_str()
        .unwrap()
        .contains("log(-log)"));

    let store = Store::open(&store_path).unwrap();
    let outcome = rows(&store, GI_BLEED);
    let table = |def: &str| {
        let f = follow_up(&store, &rows(&store, def), &outcome, TimeAtRisk::default());
        EventTable::from_durations(f.subjects.iter().map(|x| (x.time, x.event)))
    };
    let (t, c) = (table(CELECOXIB), table(DICLOFENAC));
    let km = KaplanMeier::fit(&t);
    assert_eq!(target.len(), km.points.len());
    for (p, q) in km.points.iter().zip(target) {
        assert_eq!(
            (p.time as u64, p.at_risk),
            (q["time"].as_u64().unwrap(), q["at_risk"].as_u64().unwrap())
        );
        for (ours, key) in [
            (p.survival, "survival"),
            (p.lower, "lower"),
            (p.upper, "upper"),
        ] {
            assert!(
                (ours - q[key].as_f64().unwrap()).abs() < 1e-12,
                "{key} at {}",
                p.time
            );
        }
    }
    let lr = logrank(&t, &c).unwrap();
    assert!((v["logrank"]["chi2"].as_f64().unwrap() - lr.chi2).abs() < 1e-9);
    assert_eq!(v["logrank"]["df"], 1);
    assert!(lr.p < 0.01);

    // Without a comparator: nulls; a fixed horizon censors at day 60.
    let v = json_of(&[&base[..], &["--tar", "start+0:start+60", "--json"]].concat());
    assert_eq!(v["km"]["comparator"], Value::Null);
    assert_eq!(v["logrank"], Value::Null);
    let last = v["km"]["target"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["time"], 60);
    assert_eq!(v["at_risk"]["target"][1]["time"], 30);
    assert_eq!(
        v["at_risk"]["target"][2]["at_risk"], 0,
        "nobody is followed past day 60"
    );

    // Regression: the shape, n, events, the coefficients.
    let reg = |model: &str, covs: &str| {
        json_of(&regress_args(
            s,
            model,
            covs,
            &["--comparator", DICLOFENAC, "--json"],
        ))
    };
    let covs = format!("age,gender,cohort:{ANKLE}");
    for model in ["logistic", "cox"] {
        let v = reg(model, &covs);
        assert_eq!(v["model"], model);
        assert_eq!(
            (v["n"].as_u64(), v["events"].as_u64()),
            (Some(2630), Some(479))
        );
        assert_eq!(v["converged"], true);
        assert!(v["iterations"].as_u64().unwrap() <= 25);
        let names: Vec<&str> = v["coefficients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        let mut expected = vec![
            "treatment (target vs comparator)",
            "age (per 10 years)",
            "gender = male",
            "cohort: ankle_sprain",
        ];
        if model == "logistic" {
            expected.insert(0, "(intercept)");
        }
        assert_eq!(names, expected);
        let c = &v["coefficients"][names.len() - 4];
        for key in ["beta", "se", "z", "p", "lower", "upper"] {
            assert!(c[key].is_f64(), "{key}");
        }
        let (b, se) = (c["beta"].as_f64().unwrap(), c["se"].as_f64().unwrap());
        assert!((c["lower"].as_f64().unwrap() - (b - 1.959963984540054 * se)).abs() < 1e-12);
    }

    // Refusals and errors name what is wrong.
    let regress_error =
        |model: &str, covariates: &str| error_of(&regress_args(s, model, covariates, &[]));
    let e = regress_error("cox", &format!("age,cohort:{OSTEOARTHRITIS}"));
    assert!(e.contains("refused") && e.contains("osteoarthritis"), "{e}");
    // A FeatureExtraction covariate must be binary: Charlson's index (analysis 901) is a score.
    let e = regress_error("logistic", "fe:1901");
    assert!(e.contains("fe:1901") && e.contains("continuous"), "{e}");
    let e = regress_error("logistic", "treatment");
    assert!(e.contains("--comparator"), "{e}");
    let e = error_of(&[&base[..], &["--tar", "start+0:later"]].concat());
    assert!(e.contains("start+0:later"), "{e}");
    let e = error_of(&[
        "analyze",
        "survival",
        "--store",
        s,
        "--target",
        "nope.json",
        "--outcome",
        GI_BLEED,
    ]);
    assert!(e.contains("nope.json"), "{e}");
}
