//! Characterization, incidence and survival across a real network (a hub and three `qiao site serve`
//! processes on loopback, three hospitals from `qiao synth`): with the noise off (the `exact`
//! release, threshold 1) the pooled result equals `qiao analyze` on the union of the three
//! stores — counts exactly, means, standardized differences, rates and intervals to 1e-9, the
//! Kaplan–Meier curves (times on the 30-day grid) exactly and their intervals and the log-rank
//! χ² to 1e-9; with
//! differential privacy on, every number is noised with σ·Δ for its declared Δ and the job
//! charges exactly the declared ρ.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{qiao, s};

const COHORTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/reference/cohortgenerator-eunomia/cohorts"
);
const GI_BLEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../analysis/tests/data/gi_bleed.json"
);

/// `qiao hub serve` flags for a hub without alliance floors (the sites' own policies apply).
const NO_FLOORS: &[&str] = &[
    "--floor-min-cell-count",
    "1",
    "--floor-max-rho-per-release",
    "none",
];

/// The union of hospital CDM folders: vocabulary and reference tables once, every table with a
/// `person_id` column concatenated, hospital `h`'s ids (every `*_id` column but concepts,
/// providers, care sites and locations) offset by `h × 10^15` so that persons stay distinct.
fn union_cdm(hospitals: &[&Path], out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    for entry in std::fs::read_dir(hospitals[0]).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !name.ends_with(".csv") {
            continue;
        }
        let header = BufReader::new(std::fs::File::open(&path).unwrap())
            .lines()
            .next()
            .unwrap()
            .unwrap();
        let cols: Vec<&str> = header.split(',').collect();
        if !cols.contains(&"person_id") {
            std::fs::copy(&path, out.join(&name)).unwrap();
            continue;
        }
        let offset: Vec<bool> = cols
            .iter()
            .map(|c| {
                c.ends_with("_id")
                    && !c.contains("concept")
                    && !matches!(*c, "provider_id" | "care_site_id" | "location_id")
            })
            .collect();
        let mut w = std::io::BufWriter::new(std::fs::File::create(out.join(&name)).unwrap());
        writeln!(w, "{header}").unwrap();
        for (h, dir) in hospitals.iter().enumerate() {
            let f = std::fs::File::open(dir.join(&name)).unwrap();
            for line in BufReader::new(f).lines().skip(1) {
                let line = line.unwrap();
                // Synthetic CDM CSVs: no quoted commas in id columns; ids are plain integers.
                let fields: Vec<String> = line
                    .split(',')
                    .zip(offset.iter().chain(std::iter::repeat(&false)))
                    .map(|(v, &o)| match (o, v.parse::<i64>()) {
                        (true, Ok(id)) => (id + h as i64 * 1_000_000_000_000_000).to_string(),
                        _ => v.to_owned(),
                    })
                    .collect();
                writeln!(w, "{}", fields.join(",")).unwrap();
            }
        }
    }
}

/// Three `qiao synth` hospitals (`persons` the middle one's size, seed 11) in `dir`, their
/// stores, and the store of their union ([`union_cdm`]).
fn hospitals_and_union(dir: &Path, persons: usize) -> (Vec<(String, PathBuf)>, PathBuf) {
    let (cdm, stores) = support::synth_hospitals(dir, 3, persons, 11);
    let dirs: Vec<PathBuf> = stores.iter().map(|(name, _)| cdm.join(name)).collect();
    let union_dir = dir.join("union");
    union_cdm(
        &dirs.iter().map(|p| p.as_path()).collect::<Vec<_>>(),
        &union_dir,
    );
    let union = dir.join("union.qiao");
    qiao(&["ingest", "--cdm", s(&union_dir), "--out", s(&union)]);
    (stores, union)
}

/// `qiao query` flags of a regression: `model` of the outcome GI bleeding in target `t`
/// against comparator `c`, with `covariates`.
fn regress_flags<'a>(model: &'a str, covariates: &'a str, t: &'a str, c: &'a str) -> Vec<&'a str> {
    vec![
        "--analysis",
        "regress",
        "--model",
        model,
        "--outcome",
        GI_BLEED,
        "--comparator",
        c,
        "--covariates",
        covariates,
        t,
    ]
}

/// The exact logistic fit on the `union` store (`qiao analyze regress`), as [`regress_flags`].
fn union_logistic(union: &Path, covariates: &str, t: &str, c: &str) -> Value {
    serde_json::from_str(&qiao(&[
        "analyze",
        "regress",
        "--store",
        s(union),
        "--model",
        "logistic",
        "--target",
        t,
        "--comparator",
        c,
        "--outcome",
        GI_BLEED,
        "--covariates",
        covariates,
        "--min-persons",
        "1",
        "--json",
    ]))
    .unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn close(a: &Value, b: &Value, what: &str) {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => assert!(
            (x - y).abs() <= 1e-9 * y.abs().max(1.0),
            "{what}: pooled {x} vs union {y}"
        ),
        _ => assert!(
            a.is_null() && b.is_null(),
            "{what}: pooled {a} vs union {b}"
        ),
    }
}

#[test]
fn pooled_analyses_equal_the_union_and_dp_charges_the_declared_rho() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (stores, union) = hospitals_and_union(d, 600);

    let mut net = support::sponsor_network(d, &stores, Some(7), NO_FLOORS);
    let token = net.tokens["sponsor"].clone();
    let query = |args: &[&str]| -> Value {
        let mut all = vec![
            "query",
            "--hub",
            &net.url,
            "--token",
            &token,
            "--project",
            "p1",
            "--wait",
            "120",
            "--json",
        ];
        all.extend_from_slice(args);
        let v: Value = serde_json::from_str(qiao(&all).trim()).expect("qiao query --json");
        assert_eq!(v["complete"], true, "{v}");
        for site in v["sites"].as_array().unwrap() {
            assert_eq!(site["status"], "done", "{site}");
        }
        v
    };
    let (t, c) = (format!("{COHORTS}/1.json"), format!("{COHORTS}/2.json"));
    for i in 0..3 {
        support::policy(
            &net,
            i,
            &[
                "--release",
                "exact",
                "--min-cell-count",
                "1",
                "--analyses",
                "auto",
            ],
        );
    }

    // Characterization, FE's default set, target and comparator.
    let v = query(&["--analysis", "characterize", "--comparator", &c, &t]);
    let pooled = &v["total"];
    let local: Value = serde_json::from_str(&qiao(&[
        "analyze",
        "characterize",
        "--store",
        s(&union),
        "--target",
        &t,
        "--comparator",
        &c,
        "--json",
    ]))
    .unwrap();
    for side in ["target", "comparator"] {
        for n in ["entries", "subjects"] {
            assert_eq!(pooled[side][n]["point_sum"], local[side][n], "{side} {n}");
            assert_eq!(pooled[side][n]["exact"], true);
        }
    }
    assert!(local["target"]["entries"].as_u64().unwrap() > 100);
    let by_id = |list: &Value| -> HashMap<i64, Value> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|x| (x["covariate_id"].as_i64().unwrap(), x.clone()))
            .collect()
    };
    let pooled_cov = by_id(&pooled["covariates"]);
    let local_cov = by_id(&local["covariates"]);
    assert_eq!(pooled_cov.len(), local_cov.len(), "the same covariates");
    assert!(local_cov.len() > 50, "{} covariates", local_cov.len());
    let mut with_smd = 0;
    for (id, l) in &local_cov {
        let p = &pooled_cov[id];
        for side in ["target", "comparator"] {
            let sum = l[side]["sum"].as_u64().unwrap_or(0);
            assert_eq!(
                p[side]["sum"]["point_sum"].as_u64().unwrap(),
                sum,
                "{id} {side}"
            );
            if !l[side].is_null() {
                close(
                    &p[side]["mean"],
                    &l[side]["mean"],
                    &format!("{id} {side} mean"),
                );
            }
        }
        close(&p["smd"], &l["smd"], &format!("{id} smd"));
        with_smd += usize::from(!l["smd"].is_null());
    }
    assert!(with_smd > 50);
    let pooled_cont = by_id(&pooled["continuous"]);
    let local_cont = by_id(&local["continuous"]);
    assert_eq!(pooled_cont.len(), local_cont.len());
    assert!(!local_cont.is_empty());
    for (id, l) in &local_cont {
        let p = &pooled_cont[id];
        for side in ["target", "comparator"] {
            if l[side].is_null() {
                continue;
            }
            assert_eq!(
                p[side]["count"]["point_sum"], l[side]["count"],
                "{id} {side}"
            );
            close(
                &p[side]["mean"],
                &l[side]["mean"],
                &format!("{id} {side} mean"),
            );
            close(&p[side]["sd"], &l[side]["sd"], &format!("{id} {side} sd"));
        }
        close(&p["smd"], &l["smd"], &format!("{id} smd"));
    }

    // Incidence: two times at risk, strata by age and gender.
    let inc = [
        "--outcome",
        GI_BLEED,
        "--tar",
        "start+0:end+0",
        "--tar",
        "start+0:start+365",
        "--strata",
        "age,gender",
        "--age-breaks",
        "40,65",
    ];
    let mut args = vec!["--analysis", "incidence"];
    args.extend_from_slice(&inc);
    args.push(&t);
    let v = query(&args);
    let mut largs = vec!["analyze", "incidence", "--store", s(&union), "--target", &t];
    largs.extend_from_slice(&inc);
    largs.push("--json");
    let local: Value = serde_json::from_str(&qiao(&largs)).unwrap();
    let key = |r: &Value, g: &str| {
        (
            r["tar_id"].as_i64().unwrap(),
            r["age_group_id"].as_i64(),
            r[g].as_i64(),
            r["start_year"].as_i64(),
        )
    };
    let pooled_rows: HashMap<_, Value> = v["total"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (key(r, "gender_concept_id"), r.clone()))
        .collect();
    let local_rows = local["rows"].as_array().unwrap();
    // The grid: 2 TARs × (all + 3 age groups + 2 genders + 6 age × gender); CohortIncidence
    // has rows only for strata with persons.
    assert_eq!(pooled_rows.len(), 2 * 12);
    assert!(local_rows.len() >= 2 * 6, "{}", local_rows.len());
    let mut outcomes = 0;
    for l in local_rows {
        let k = key(l, "gender_id");
        let p = pooled_rows.get(&k).unwrap_or_else(|| panic!("row {k:?}"));
        for n in [
            "persons_at_risk_pe",
            "persons_at_risk",
            "person_days_pe",
            "person_days",
            "person_outcomes_pe",
            "person_outcomes",
            "outcomes_pe",
            "outcomes",
        ] {
            assert_eq!(p[n]["point_sum"], l[n], "{k:?} {n}");
        }
        for n in [
            "incidence_proportion_p100p",
            "incidence_rate_p100py",
            "ir_ci95_low",
            "ir_ci95_high",
            "ip_ci95_low",
            "ip_ci95_high",
        ] {
            close(&p[n], &l[n], &format!("{k:?} {n}"));
        }
        outcomes += l["outcomes"].as_u64().unwrap();
    }
    assert!(outcomes > 0);
    // Grid rows without persons are released as 0.
    let local_keys: Vec<_> = local_rows.iter().map(|l| key(l, "gender_id")).collect();
    for (k, p) in &pooled_rows {
        if !local_keys.contains(k) {
            assert_eq!(p["persons_at_risk_pe"]["point_sum"], 0, "{k:?}");
            assert_eq!(p["outcomes_pe"]["point_sum"], 0, "{k:?}");
        }
    }

    // Survival: target and comparator to the first GI bleed, 30-day grid, 10-year horizon.
    let survival: [&str; 7] = [
        "--analysis",
        "survival",
        "--outcome",
        GI_BLEED,
        "--comparator",
        &c,
        &t,
    ];
    let v = query(&survival);
    let local: Value = serde_json::from_str(&qiao(&[
        "analyze",
        "survival",
        "--store",
        s(&union),
        "--target",
        &t,
        "--comparator",
        &c,
        "--outcome",
        GI_BLEED,
        "--grid-days",
        "30",
        "--json",
    ]))
    .unwrap();
    let pooled = &v["total"];
    let mut events = 0;
    for arm in ["target", "comparator"] {
        let (p, l) = (
            pooled["km"][arm].as_array().unwrap(),
            local["km"][arm].as_array().unwrap(),
        );
        assert_eq!(p.len(), l.len(), "{arm}: grid times");
        assert!(l.len() > 10, "{arm}: {} grid times", l.len());
        for (x, y) in p.iter().zip(l) {
            for n in ["time", "at_risk", "events", "censored", "survival"] {
                assert_eq!(x[n], y[n], "{arm} {n} at {}", y["time"]);
            }
            for n in ["std_err", "lower", "upper"] {
                close(&x[n], &y[n], &format!("{arm} {n} at {}", y["time"]));
            }
            events += y["events"].as_u64().unwrap();
        }
        assert_eq!(pooled["median"][arm], local["median"][arm], "{arm} median");
        assert_eq!(
            pooled["at_risk"][arm], local["at_risk"][arm],
            "{arm} at risk"
        );
        assert_eq!(
            pooled["entered"][arm]["point_sum"], local["follow_up"][arm]["followed"],
            "{arm} persons followed"
        );
    }
    assert!(events > 0);
    close(
        &pooled["logrank"]["chi2"],
        &local["logrank"]["chi2"],
        "log-rank chi2",
    );
    close(
        &pooled["logrank"]["p"],
        &local["logrank"]["p"],
        "log-rank p",
    );
    let sites = pooled["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 3);
    assert!(sites.iter().all(|x| x["target"]["km"]["points"].is_array()));
    assert!(pooled["disclosure"][0]
        .as_str()
        .unwrap()
        .starts_with("exact counts"));

    // Differential privacy: σ = 5, entries clipped at 2; ρ per statistic 1/(2·25) = 0.02.
    for i in 0..3 {
        support::policy(
            &net,
            i,
            &[
                "--release",
                "dp",
                "--min-cell-count",
                "5",
                "--noise-sigma",
                "5",
                "--entries-bound",
                "2",
                "--user-rho",
                "4",
                "--organization-rho",
                "4",
                "--site-rho",
                "100",
            ],
        );
    }
    let v = query(&[
        "--analysis",
        "characterize",
        "--covariates",
        "8507001,8532001",
        "--analyses",
        "1",
        &t,
    ]);
    // Target: entries, subjects and 2 covariates = 4 statistics.
    let rho = 4.0 / 50.0;
    for site in v["sites"].as_array().unwrap() {
        let p = &site["payload"];
        let dp = &p["disclosure"]["dp"];
        assert!((f(&dp["rho_spent"]) - rho).abs() < 1e-12, "{dp}");
        assert!(
            (f(&dp["user_remaining_rho"]) - (4.0 - rho)).abs() < 1e-12,
            "{dp}"
        );
        assert_eq!(p["covariates"].as_array().unwrap().len(), 2);
        assert!(p["continuous"].as_array().unwrap().is_empty());
        for c in p["covariates"].as_array().unwrap() {
            assert_eq!(c["target"]["kind"], "dp");
            assert!((f(&c["target"]["sigma"]) - 10.0).abs() < 1e-9, "σ·Δ = 5·2");
            assert_eq!(c["target"]["threshold"], 5);
        }
        assert!((f(&p["target"]["subjects"]["sigma"]) - 5.0).abs() < 1e-9);
    }
    let v = query(&["--analysis", "incidence", "--outcome", GI_BLEED, &t]);
    // One row of 8 statistics.
    for site in v["sites"].as_array().unwrap() {
        let p = &site["payload"];
        let dp = &p["disclosure"]["dp"];
        assert!((f(&dp["rho_spent"]) - 8.0 / 50.0).abs() < 1e-12, "{dp}");
        assert!(
            (f(&dp["user_remaining_rho"]) - (4.0 - rho - 8.0 / 50.0)).abs() < 1e-12,
            "{dp}"
        );
        let row = &p["rows"][0];
        assert!((f(&row["person_days"]["sigma"]) - 5.0 * 2.0 * 365.0).abs() < 1e-6);
        assert!((f(&row["outcomes"]["sigma"]) - 5.0 * 2.0).abs() < 1e-9);
        assert!((f(&row["persons_at_risk"]["sigma"]) - 5.0).abs() < 1e-9);
    }
    // Survival under DP: per arm `entered` and one family of disjoint cells, 2 × 2 releases.
    let v = query(&survival);
    for site in v["sites"].as_array().unwrap() {
        let p = &site["payload"];
        let dp = &p["disclosure"]["dp"];
        assert!((f(&dp["rho_spent"]) - 4.0 / 50.0).abs() < 1e-12, "{dp}");
        assert!(
            (f(&dp["user_remaining_rho"]) - (4.0 - rho - 8.0 / 50.0 - 4.0 / 50.0)).abs() < 1e-12,
            "{dp}"
        );
        for arm in ["target", "comparator"] {
            assert_eq!(p[arm]["events"].as_array().unwrap().len(), 123);
            for x in [&p[arm]["entered"], &p[arm]["censored"][7]] {
                assert_eq!(x["kind"], "dp", "{x}");
                assert!((f(&x["sigma"]) - 5.0).abs() < 1e-9, "σ·Δ = 5·1");
            }
        }
    }
    let non_increasing = |points: &Value| {
        let n: Vec<u64> = points
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["at_risk"].as_u64().unwrap())
            .collect();
        assert!(n.windows(2).all(|w| w[0] >= w[1]), "{n:?}");
        n.len()
    };
    assert!(non_increasing(&v["total"]["km"]["target"]) > 1);
    non_increasing(&v["total"]["km"]["comparator"]);
    for site in v["total"]["sites"].as_array().unwrap() {
        if !site["target"].is_null() {
            non_increasing(&site["target"]["km"]["points"]);
        }
    }
    assert!(v["total"]["disclosure"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d.as_str().unwrap().contains("noised")));

    // Under DP a characterization must name its covariates: the site refuses, charging nothing.
    let out = qiao(&[
        "query",
        "--hub",
        &net.url,
        "--token",
        &token,
        "--project",
        "p1",
        "--wait",
        "60",
        "--json",
        "--analysis",
        "characterize",
        &t,
    ]);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    for site in v["sites"].as_array().unwrap() {
        assert_eq!(site["status"], "refused", "{site}");
        assert_eq!(site["reason"], "policy", "{site}");
    }
    // A continuous covariate (Charlson, FE analysis 901) named under DP is released clipped to
    // its declared range 0–33 points: count, Σk, Σk² and a 34-bin histogram (one family), 4
    // releases; with entries, subjects and the binary covariate 7 × 1/50.
    let out = qiao(&[
        "query",
        "--hub",
        &net.url,
        "--token",
        &token,
        "--project",
        "p1",
        "--wait",
        "60",
        "--json",
        "--analysis",
        "characterize",
        "--covariates",
        "8507001,1901",
        "--analyses",
        "1,901",
        &t,
    ]);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    for site in v["sites"].as_array().unwrap() {
        let p = &site["payload"];
        let dp = &p["disclosure"]["dp"];
        assert!((f(&dp["rho_spent"]) - 7.0 / 50.0).abs() < 1e-12, "{site}");
        let m = &p["continuous"][0]["target"];
        assert_eq!(p["continuous"][0]["covariate_id"], 1901, "{site}");
        assert_eq!(m["histogram"].as_array().unwrap().len(), 34, "{m}");
        assert!((f(&m["count"]["sigma"]) - 5.0 * 2.0).abs() < 1e-9, "σ·b");
        assert!(
            (f(&m["sum"]["sigma"]) - 5.0 * 2.0 * 33.0).abs() < 1e-6,
            "σ·b·33"
        );
        assert!(
            (f(&m["histogram"][3]["sigma"]) - 5.0 * 2.0).abs() < 1e-9,
            "σ·b"
        );
    }
    let pooled = &v["total"]["continuous"][0]["target"];
    assert_eq!(pooled["range"]["max"], 33, "{pooled}");
    assert!(pooled["derived"]["median"].is_number(), "{pooled}");

    regression_runs(&mut net, &token, &union, &stores, &t, &c);
    net.stop().unwrap();
}

/// `qiao query --analysis regress` (or `--resume RUN`) with `args`, JSON on stdout.
fn regress(url: &str, token: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec![
        "query",
        "--hub",
        url,
        "--token",
        token,
        "--project",
        "p1",
        "--wait",
        "60",
        "--json",
    ];
    all.extend_from_slice(args);
    support::run_for(&all, None, std::time::Duration::from_secs(90))
}

fn coefficients(v: &Value) -> Vec<(String, f64, f64)> {
    v["coefficients"]
        .as_array()
        .unwrap_or_else(|| panic!("no coefficients: {v}"))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                f(&c["beta"]),
                f(&c["se"]),
            )
        })
        .collect()
}

fn same_fit(a: &[(String, f64, f64)], b: &[(String, f64, f64)], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: {a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.0, y.0, "{what}");
        assert!(
            (x.1 - y.1).abs() < tol,
            "{what} {}: beta {} vs {}",
            x.0,
            x.1,
            y.1
        );
        assert!(
            (x.2 - y.2).abs() < tol,
            "{what} {}: se {} vs {}",
            x.0,
            x.2,
            y.2
        );
    }
}

/// Federated regression as multi-round signed runs over the three sites (exact release,
/// threshold 1): logistic equals `qiao analyze regress` on the union; Cox stratified by site
/// equals the in-process federated fit over the three stores; a site's guard refusal fails
/// the run cleanly; a site killed mid-fit fails the run naming it, and after it is back
/// `--resume` converges to the same coefficients.
fn regression_runs(
    net: &mut qiao_testkit::Network,
    token: &str,
    union: &Path,
    stores: &[(String, std::path::PathBuf)],
    t: &str,
    c: &str,
) {
    use qiao_analysis::network::regression::{coefficient_names, site_data};
    use qiao_analysis::network::AnalysisError;
    use qiao_analysis::regression::{fit, Model};
    use qiao_hub::protocol::{
        Coefficients, JobId, RegressionCovariate, RegressionModel, RegressionRound, RegressionSpec,
    };
    for i in 0..3 {
        // Each round is a query to the site's rate limit (10 per window by default).
        support::policy(
            net,
            i,
            &[
                "--release",
                "exact",
                "--min-cell-count",
                "1",
                "--rate-limit",
                "1000",
            ],
        );
    }
    let url = net.url.clone();
    let model_args = |model| regress_flags(model, "age,gender", t, c);
    let json_of = |out: &std::process::Output| -> Value {
        assert!(
            out.status.success(),
            "qiao query failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    };

    // Logistic: the federated fit equals the fit on the union.
    let fed = json_of(&regress(&url, token, &model_args("logistic")));
    let local = union_logistic(union, "age,gender", t, c);
    assert_eq!(fed["status"], "converged", "{fed}");
    assert_eq!((&fed["n"], &fed["events"]), (&local["n"], &local["events"]));
    assert_eq!(fed["iterations"], local["iterations"]);
    same_fit(&coefficients(&fed), &coefficients(&local), 1e-6, "logistic");
    let rounds = fed["rounds"].as_array().unwrap();
    assert!(rounds.len() as u64 > local["iterations"].as_u64().unwrap());
    assert!(rounds
        .iter()
        .all(|r| r["sites"] == 3 && r["millis"].as_i64().is_some()));

    // Cox, stratified by site: equal to the in-process federated fit over the three stores.
    let cox = json_of(&regress(&url, token, &model_args("cox")));
    assert_eq!(cox["status"], "converged", "{cox}");
    let read =
        |p: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let round = RegressionRound {
        run_id: JobId::random(),
        round: 0,
        spec: RegressionSpec {
            model: RegressionModel::Cox,
            outcome: read(GI_BLEED),
            comparator: Some(read(c)),
            covariates: vec![RegressionCovariate::Age, RegressionCovariate::Gender],
            tar: "start+0:obs_end".into(),
        },
        coefficients: Coefficients(vec![0.0; 3]),
    };
    let target = read(t);
    let data: Vec<_> = stores
        .iter()
        .map(|(_, path)| {
            let store = qiao_store::Store::open(path).unwrap();
            let mut engine = |def: &Value| {
                qiao_site::exec::run_definition(&store, def)
                    .map_err(|e| AnalysisError::Invalid(e.to_string()))
            };
            site_data(&round, &store, &mut engine, &target, 1)
                .unwrap()
                .0
        })
        .collect();
    let local = fit(
        Model::Cox,
        &coefficient_names(&round),
        &mut data.iter().collect::<Vec<_>>(),
    )
    .unwrap();
    let local = serde_json::to_value(&local).unwrap();
    assert_eq!((&cox["n"], &cox["events"]), (&local["n"], &local["events"]));
    same_fit(&coefficients(&cox), &coefficients(&local), 1e-6, "cox");

    // A guard refusal at a site (its threshold above its persons) fails the run cleanly.
    support::policy(net, 0, &["--min-cell-count", "1000000"]);
    let out = regress(&url, token, &model_args("logistic"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("round 0: site hospital_1 refused (policy)"),
        "{err}"
    );
    support::policy(net, 0, &["--min-cell-count", "1"]);

    // A site killed mid-fit: the run fails naming it; back up, `--resume` converges as before.
    let mut args = vec![
        "query",
        "--hub",
        &url,
        "--token",
        token,
        "--project",
        "p1",
        "--wait",
        "60",
        "--json",
        "--round-timeout",
        "2",
    ];
    args.extend(model_args("cox"));
    let mut child = support::cli()
        .command(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let run_id = first
        .strip_prefix("run ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    let round0 = lines.next().unwrap().unwrap();
    assert!(round0.starts_with("round 0:"), "{round0}");
    net.kill_site(2).unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(!child.wait().unwrap().success(), "{rest:?}");
    let failure = rest.join("\n");
    assert!(
        failure.contains("hospital_3 did not answer within 2 s") && failure.contains("--resume"),
        "{failure}"
    );
    let site = &net.sites[2];
    let _back = support::Procs(vec![support::cli()
        .command(&[
            "site",
            "serve",
            "--store",
            s(&site.store),
            "--data",
            s(&site.data),
            "--insecure-http",
            "--max-backoff-secs",
            "1",
            "--wait-secs",
            "5",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()]);
    let resumed = json_of(&regress(&url, token, &["--resume", &run_id]));
    assert_eq!(resumed["status"], "converged", "{resumed}");
    same_fit(
        &coefficients(&resumed),
        &coefficients(&cox),
        1e-9,
        "resumed cox",
    );

    // Under DP (σ = 6) on these small hospitals age's information is far below the noise: the
    // fit ends failed, saying so, never a model of noise.
    dp_policy(net);
    let out = regress(&url, token, &model_args("logistic"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("the released sums do not determine the model"),
        "{err}"
    );
}

/// The sites' policy for regression under differential privacy: the demo's default noise
/// (σ = 6, threshold 10, 10 entries a person), 4 ρ a user and an organization, 100 a site.
fn dp_policy(net: &qiao_testkit::Network) {
    for i in 0..3 {
        support::policy(
            net,
            i,
            &[
                "--release",
                "dp",
                "--noise-sigma",
                "6",
                "--min-cell-count",
                "10",
                "--entries-bound",
                "10",
                "--user-rho",
                "4",
                "--organization-rho",
                "4",
                "--site-rho",
                "100",
            ],
        );
    }
}

/// ρ spent at site `i` in the current period, as `qiao site budget show` states it: the
/// site's (`prefix` "site: spent ") or a user's (`"user sponsor (Pharma): spent "`).
fn spent_at(net: &qiao_testkit::Network, i: usize, prefix: &str) -> f64 {
    let out = qiao(&["site", "budget", "show", "--data", s(&net.sites[i].data)]);
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("{out}"));
    line.split(' ').next().unwrap().parse().unwrap()
}

fn site_spent(net: &qiao_testkit::Network, i: usize) -> f64 {
    spent_at(net, i, "site: spent ")
}

/// Federated logistic regression under differential privacy, through the hub and three site
/// processes. The hospitals are ten times those of the test above (3,000–12,000 persons): on
/// 300–1,200 the weakest direction of treatment and gender's information is about one standard
/// deviation of the Hessian's noise at σ = 6, so whether the fit is determined would be a coin
/// toss from run to run (a run's noise is keyed by its id). Here it is far above it.
#[test]
fn regression_under_dp_fits_near_the_exact_fit_and_charges_each_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (stores, union) = hospitals_and_union(d, 6000);
    let mut net = support::sponsor_network(d, &stores, Some(7), NO_FLOORS);
    let token = net.tokens["sponsor"].clone();
    for i in 0..3 {
        // Analyses answered without a steward's approval; each round is a query to the
        // site's rate limit (10 per window by default).
        support::policy(&net, i, &["--analyses", "auto", "--rate-limit", "1000"]);
    }
    let (t, c) = (format!("{COHORTS}/1.json"), format!("{COHORTS}/2.json"));
    let exact = union_logistic(&union, "gender", &t, &c);
    assert_eq!(exact["converged"], true);
    regression_under_dp(
        &mut net,
        &token,
        &exact,
        &regress_flags("logistic", "gender", &t, &c),
        &regress_flags("cox", "age,gender", &t, &c),
    );
    net.stop().unwrap();
}

/// Federated logistic regression under differential privacy ([`dp_policy`]): a fixed 6
/// rounds on noisy sums, every site charging the whole run — 6 × 1/72 — at round 0 and nothing
/// after; the coefficients within 3 of their reported standard errors (which include the
/// noise) of the `exact` fit on the union (the covariates of `logistic`); a run over budget
/// refused at round 0 with nothing charged; Cox refused under DP.
fn regression_under_dp(
    net: &mut qiao_testkit::Network,
    token: &str,
    exact: &Value,
    logistic: &[&str],
    cox: &[&str],
) {
    let union = exact;
    dp_policy(net);
    let url = net.url.clone();
    let before: Vec<f64> = (0..3).map(|i| site_spent(net, i)).collect();
    let out = regress(&url, token, logistic);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dp: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dp["status"], "completed", "{dp}");
    assert_eq!(dp["converged"], false);
    let privacy = &dp["privacy"];
    assert_eq!(privacy["rounds"], 6, "{privacy}");
    assert!((f(&privacy["rho_per_round"]) - 1.0 / 72.0).abs() < 1e-12);
    assert_eq!(privacy["clip"][2]["name"], "gender = male");
    assert_eq!(
        (
            f(&privacy["clip"][2]["lower"]),
            f(&privacy["clip"][2]["upper"])
        ),
        (0.0, 1.0)
    );
    // The ledger: each site charged the whole run at round 0, nothing at later rounds.
    let rounds = dp["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 6);
    for (k, r) in rounds.iter().enumerate() {
        let charged: Vec<f64> = r["rho_spent"].as_array().unwrap().iter().map(f).collect();
        let want = if k == 0 { 6.0 / 72.0 } else { 0.0 };
        assert!(
            charged.len() == 3 && charged.iter().all(|x| (x - want).abs() < 1e-12),
            "round {k}: {charged:?}"
        );
    }
    for (i, b) in before.iter().enumerate() {
        let spent = site_spent(net, i) - b;
        assert!((spent - 6.0 / 72.0).abs() < 2e-4, "site {i}: {spent}");
    }
    // Close to the exact fit: every coefficient within 3 reported standard errors.
    let (noisy, exact) = (coefficients(&dp), coefficients(exact));
    for (a, b) in noisy.iter().zip(&exact) {
        eprintln!(
            "DP {} {:.4} (se {:.4}) exact {:.4} (se {:.4})",
            a.0, a.1, a.2, b.1, b.2
        );
        assert_eq!(a.0, b.0);
        assert!(
            (a.1 - b.1).abs() <= 3.0 * a.2,
            "{}: {} vs {} (se {})",
            a.0,
            a.1,
            b.1,
            a.2
        );
        assert!(a.2 >= 0.9 * b.2, "{}: se {} vs {}", a.0, a.2, b.2);
    }
    // The counts: noisy, averaged over the rounds.
    let count_sd = f(&privacy["count_noise_sd"]) / 6f64.sqrt();
    assert!(
        (f(&dp["n"]) - f(&union["n"])).abs() <= 4.0 * count_sd + 1.0,
        "n {} vs {} ± {count_sd}",
        dp["n"],
        union["n"]
    );

    // Over budget: the user has 0.04 left at every site, the run needs 6/72 ≈ 0.083: refused at
    // round 0, before any release, nothing charged.
    for i in 0..3 {
        let spent = spent_at(net, i, "user sponsor (Pharma): spent ");
        let rho = format!("{}", spent + 0.04);
        support::policy(net, i, &["--user-rho", &rho]);
    }
    let before: Vec<f64> = (0..3).map(|i| site_spent(net, i)).collect();
    let out = regress(&url, token, logistic);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("round 0: site hospital_")
            && err.contains("refused (privacy_budget_exhausted)"),
        "{err}"
    );
    let failed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(failed["rounds"].as_array().unwrap().len(), 1, "{failed}");
    for (i, b) in before.iter().enumerate() {
        assert_eq!(site_spent(net, i), *b, "site {i} charged a refused run");
    }
    for i in 0..3 {
        support::policy(net, i, &["--user-rho", "4"]);
    }

    // Cox has no per-person bound: refused under DP, by name.
    let out = regress(&url, token, cox);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("round 0: site hospital_") && err.contains("refused (policy)"),
        "{err}"
    );
}
