//! Time to event and regression against their references, on GiBleed cohorts (celecoxib vs
//! diclofenac, GI bleed outcome) and on three synthetic hospitals made from GiBleed:
//!
//! - Kaplan–Meier (survival, Greenwood standard error, log(−log) interval, median and its interval,
//!   at-risk table) and the log-rank test equal lifelines' `KaplanMeierFitter` / `logrank_test`;
//! - the follow-up (time, event per person) equals `../shared/oracles/survival_reference.py`, which
//!   generates the cohorts with duckcdm's Circe on DuckDB and derives it in SQL;
//! - logistic regression equals statsmodels `Logit`, Cox equals lifelines `CoxPHFitter`;
//! - `fe:` covariates are the characterization's covariates per unit, and fit as statsmodels;
//! - federated = pooled: the three sites' summed Newton–Raphson equals statsmodels on the union
//!   (logistic) and `CoxPHFitter(strata=site)` on the union (Cox); the KM pooled from the sites'
//!   30-day risk-set tables equals lifelines on the union with times on the same grid.
//!
//! Needs `QIAO_TEST_VENV` (lifelines, statsmodels, duckdb, duckcdm); fails without it under CI.

mod common;

use std::collections::BTreeMap;

use common::*;
use qiao_analysis::regression::design::{
    columns, AgeDecades, Arm, CohortMembership, Covariate, FeCovariate, GenderMale, Treatment, Unit,
};
use qiao_analysis::regression::{fit, Fit, Guard, Model, SiteData};
use qiao_analysis::survival::{grid_index, logrank, EventTable, KaplanMeier, RiskSetTable};
use qiao_analysis::time_to_event::{follow_up, FollowUp, TimeAtRisk};
use qiao_store::Store;
use serde_json::{json, Value};

const TOL: f64 = 1e-6;
const AT_RISK_TIMES: [i32; 8] = [0, 7, 30, 90, 180, 365, 1000, 5000];

fn durations(f: &FollowUp) -> Vec<(i32, bool)> {
    f.subjects.iter().map(|s| (s.time, s.event)).collect()
}

fn km_request(d: &[(i32, bool)]) -> Value {
    json!({"time": d.iter().map(|x| x.0).collect::<Vec<_>>(), "event": d.iter().map(|x| x.1 as u8).collect::<Vec<_>>()})
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn compare_km(agree: &mut Agreement, name: &str, d: &[(i32, bool)], r: &Value) -> KaplanMeier {
    let table = EventTable::from_durations(d.iter().copied());
    let km = KaplanMeier::fit(&table);
    let times: Vec<f64> = r["time"].as_array().unwrap().iter().map(f).collect();
    assert_eq!(km.points.len(), times.len(), "{name}: number of times");
    for (i, p) in km.points.iter().enumerate() {
        assert_eq!(p.time as f64, times[i], "{name}: time {i}");
        assert_eq!(
            (p.at_risk, p.events, p.censored),
            (
                r["at_risk"][i].as_u64().unwrap(),
                r["events"][i].as_u64().unwrap(),
                r["censored"][i].as_u64().unwrap()
            ),
            "{name}: counts at {}",
            p.time
        );
        agree.check(
            &format!("km survival [{name}]"),
            p.survival,
            f(&r["survival"][i]),
            TOL,
        );
        agree.check(
            &format!("km greenwood se [{name}]"),
            p.std_err,
            f(&r["std_err"][i]),
            TOL,
        );
        agree.check(
            &format!("km lower (log-log) [{name}]"),
            p.lower,
            f(&r["lower"][i]),
            TOL,
        );
        agree.check(
            &format!("km upper (log-log) [{name}]"),
            p.upper,
            f(&r["upper"][i]),
            TOL,
        );
    }
    let m = &r["median"];
    let opt = |v: &Value| v.as_f64().map(|x| x as i32);
    assert_eq!(
        (km.median.time, km.median.lower, km.median.upper),
        (opt(&m["time"]), opt(&m["lower"]), opt(&m["upper"])),
        "{name}: median and its interval"
    );
    let ours = serde_json::to_value(table.at_risk_at(&AT_RISK_TIMES)).unwrap();
    assert_eq!(ours, r["at_risk_table"], "{name}: at-risk table");
    km
}

/// Deterministic durations with ties, most of them events: a curve that crosses 0.5.
fn synthetic(n: usize, scale: f64, seed: u64) -> Vec<(i32, bool)> {
    let mut s = seed;
    let mut u = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| ((-u().ln() * scale) as i32, u() < 0.8))
        .collect()
}

#[test]
fn kaplan_meier_and_logrank_equal_lifelines_on_gibleed() {
    let Some(py) = python() else { return };
    let store = gibleed();
    let outcome = cohort(store, "gi_bleed");
    let target = cohort(store, "celecoxib");
    let comparator = cohort(store, "diclofenac");
    let tar = |s: &str| s.parse::<TimeAtRisk>().unwrap();
    let mut sets: BTreeMap<&str, Vec<(i32, bool)>> = BTreeMap::new();
    let fu = follow_up(store, &target, &outcome, TimeAtRisk::default());
    assert_eq!(
        (fu.persons, fu.subjects.len(), fu.events()),
        (1800, 1800, 355)
    );
    sets.insert("target", durations(&fu));
    sets.insert(
        "comparator",
        durations(&follow_up(
            store,
            &comparator,
            &outcome,
            TimeAtRisk::default(),
        )),
    );
    sets.insert(
        "target, start+0:start+60",
        durations(&follow_up(
            store,
            &target,
            &outcome,
            tar("start+0:start+60"),
        )),
    );
    sets.insert(
        "target, start+0:end+0",
        durations(&follow_up(store, &target, &outcome, tar("start+0:end+0"))),
    );
    sets.insert(
        "target, start+7:obs_end",
        durations(&follow_up(store, &target, &outcome, tar("start+7:obs_end"))),
    );
    sets.insert("synthetic a", synthetic(400, 100.0, 1));
    sets.insert("synthetic b", synthetic(300, 140.0, 2));
    // The fixed horizon censors at day 60 at the latest (earlier where the observation ends).
    let h = &sets["target, start+0:start+60"];
    assert!(h.iter().all(|&(t, _)| t <= 60));
    assert!(h.iter().filter(|&&(t, e)| t == 60 && !e).count() > 1000);
    let pairs = [("target", "comparator"), ("synthetic a", "synthetic b")];
    let request = json!({
        "km": sets.iter().map(|(k, d)| (k.to_string(), km_request(d))).collect::<serde_json::Map<_, _>>(),
        "at_risk_times": AT_RISK_TIMES,
        "logrank": pairs.iter().map(|(a, b)| [a, b]).collect::<Vec<_>>(),
    });
    let dir = tempfile::tempdir().unwrap();
    let r = reference_fits(&py, dir.path(), &request);
    let mut agree = Agreement::default();
    let mut medians = 0;
    for (name, d) in &sets {
        let km = compare_km(&mut agree, name, d, &r["km"][*name]);
        medians += km.median.time.is_some() as u32;
    }
    assert_eq!(medians, 2, "the synthetic curves reach their medians");
    for (i, (a, b)) in pairs.iter().enumerate() {
        let t = |n: &str| EventTable::from_durations(sets[n].iter().copied());
        let ours = logrank(&t(a), &t(b)).unwrap();
        let theirs = &r["logrank"][i];
        agree.check("logrank chi2", ours.chi2, f(&theirs["chi2"]), TOL);
        agree.check("logrank p", ours.p, f(&theirs["p"]), TOL);
        assert_eq!(ours.df as u64, theirs["df"].as_u64().unwrap());
    }
    agree.print("Kaplan-Meier and log-rank vs lifelines on GiBleed");
}

fn tsv(path: &std::path::Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .skip(1)
        .map(|l| l.split('\t').map(String::from).collect())
        .collect()
}

#[test]
fn follow_up_equals_the_duckdb_oracle_extraction() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gibleed.duckdb");
    let out = dir.path().join("survival");
    run_python(
        &py,
        &[
            oracles("build_gibleed_duckdb.py").as_os_str(),
            data("eunomia-gibleed-5.3").as_os_str(),
            db.as_os_str(),
        ],
    );
    let spec = |id: u32, name: &str| format!("{id}={}", cohort_path(name).display());
    let (t, g, o) = (
        spec(1, "celecoxib"),
        spec(2, "celecoxib_age40"),
        spec(100, "gi_bleed"),
    );
    let args: Vec<std::ffi::OsString> = [
        oracles("survival_reference.py").into_os_string(),
        "--db".into(),
        db.into_os_string(),
        "--target".into(),
        "1".into(),
        "--outcome".into(),
        "100".into(),
        "--group".into(),
        "2".into(),
        "--out-dir".into(),
        out.clone().into_os_string(),
        "--cohort-json".into(),
        t.into(),
        "--cohort-json".into(),
        g.into(),
        "--cohort-json".into(),
        o.into(),
    ]
    .into_iter()
    .collect();
    run_python(&py, &args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());

    let store = gibleed();
    let fu = follow_up(
        store,
        &cohort(store, "celecoxib"),
        &cohort(store, "gi_bleed"),
        TimeAtRisk::default(),
    );
    let group = cohort(store, "celecoxib_age40");
    let in_group =
        |id: i64, start: i32| group.iter().any(|r| r.subject_id == id && r.start == start);
    let ours: Vec<Vec<String>> = fu
        .subjects
        .iter()
        .map(|s| {
            vec![
                s.person_id.to_string(),
                s.time.to_string(),
                (s.event as u8).to_string(),
                (in_group(s.person_id, s.index_date) as u8).to_string(),
            ]
        })
        .collect();
    let theirs = tsv(&out.join("survival_inputs.tsv"));
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(a, b, "subject_id, time_days, event, in_group");
    }
    // The oracle's KM over everyone and its log-rank of the age-40 group against the rest.
    let km = KaplanMeier::fit(&EventTable::from_durations(durations(&fu)));
    let all = tsv(&out.join("km_all.tsv"));
    assert_eq!(km.points.len(), all.len());
    let mut agree = Agreement::default();
    for (p, row) in km.points.iter().zip(&all) {
        let n = |i: usize| row[i].parse::<f64>().unwrap();
        assert_eq!(
            (
                p.time as f64,
                p.at_risk as f64,
                p.events as f64,
                p.censored as f64
            ),
            (n(0), n(1), n(2), n(3))
        );
        agree.check("survival_reference km survival", p.survival, n(4), TOL);
        agree.check("survival_reference km lower", p.lower, n(5), TOL);
        agree.check("survival_reference km upper", p.upper, n(6), TOL);
    }
    let split = |g: bool| {
        EventTable::from_durations(
            fu.subjects
                .iter()
                .filter(|s| in_group(s.person_id, s.index_date) == g)
                .map(|s| (s.time, s.event)),
        )
    };
    let lr = logrank(&split(true), &split(false)).unwrap();
    let row = &tsv(&out.join("logrank.tsv"))[0];
    agree.check(
        "survival_reference logrank chi2",
        lr.chi2,
        row[5].parse().unwrap(),
        TOL,
    );
    agree.check(
        "survival_reference logrank p",
        lr.p,
        row[7].parse().unwrap(),
        TOL,
    );
    agree.print("follow-up, KM and log-rank vs ../shared/oracles/survival_reference.py");
}

/// One site's units (celecoxib = target, diclofenac = comparator) and its covariate columns.
struct SiteInput {
    units: Vec<Unit>,
    names: Vec<String>,
    columns: Vec<Vec<f64>>,
}

fn site_input(store: &Store) -> SiteInput {
    let outcome = cohort(store, "gi_bleed");
    let arm = |name: &str, arm: Arm| {
        follow_up(store, &cohort(store, name), &outcome, TimeAtRisk::default())
            .subjects
            .into_iter()
            .map(move |subject| Unit { subject, arm })
    };
    let units: Vec<Unit> = arm("celecoxib", Arm::Target)
        .chain(arm("diclofenac", Arm::Comparator))
        .collect();
    let covariates: Vec<Box<dyn Covariate>> = vec![
        Box::new(Treatment),
        Box::new(AgeDecades),
        Box::new(GenderMale),
        Box::new(CohortMembership {
            name: "ankle sprain".into(),
            rows: cohort(store, "ankle_sprain"),
        }),
    ];
    let (names, columns) = columns(store, &units, &covariates).unwrap();
    SiteInput {
        units,
        names,
        columns,
    }
}

fn site_data(model: Model, s: &SiteInput) -> SiteData {
    let time: Vec<i32> = s.units.iter().map(|u| u.subject.time).collect();
    let event: Vec<bool> = s.units.iter().map(|u| u.subject.event).collect();
    SiteData::new(model, &s.names, &s.columns, &time, &event, &Guard::new(10)).unwrap()
}

fn fit_sites(model: Model, inputs: &[SiteInput]) -> Fit {
    let sites: Vec<SiteData> = inputs.iter().map(|s| site_data(model, s)).collect();
    let names = model.coefficient_names(&inputs[0].names);
    let fitted = fit(model, &names, &mut sites.iter().collect::<Vec<_>>()).unwrap();
    assert!(fitted.converged && fitted.iterations <= 25, "{fitted:?}");
    fitted
}

/// The union of the sites' data as the reference script takes it (strata = site number).
fn union_request(inputs: &[SiteInput], strata: bool) -> (Value, Value) {
    let mut cols: serde_json::Map<String, Value> = serde_json::Map::new();
    for (j, name) in inputs[0].names.iter().enumerate() {
        let v: Vec<f64> = inputs
            .iter()
            .flat_map(|s| s.columns[j].iter().copied())
            .collect();
        cols.insert(name.clone(), json!(v));
    }
    let time: Vec<i32> = inputs
        .iter()
        .flat_map(|s| s.units.iter().map(|u| u.subject.time))
        .collect();
    let event: Vec<u8> = inputs
        .iter()
        .flat_map(|s| s.units.iter().map(|u| u.subject.event as u8))
        .collect();
    let site: Vec<usize> = inputs
        .iter()
        .enumerate()
        .flat_map(|(k, s)| std::iter::repeat_n(k, s.units.len()))
        .collect();
    (
        json!({"columns": cols, "time": time, "event": event, "strata": if strata { json!(site) } else { Value::Null }}),
        json!({"columns": cols, "y": event}),
    )
}

fn compare_fit(agree: &mut Agreement, what: &str, ours: &Fit, r: &Value) {
    let coef = &r["coefficients"];
    assert_eq!(
        ours.coefficients.len(),
        coef.as_object().unwrap().len(),
        "{what}: coefficients"
    );
    for c in &ours.coefficients {
        let t = &coef[&c.name];
        for (k, v) in [
            ("beta", c.beta),
            ("se", c.se),
            ("z", c.z),
            ("p", c.p),
            ("lower", c.lower),
            ("upper", c.upper),
        ] {
            agree.check(&format!("{what} {k} [{}]", c.name), v, f(&t[k]), TOL);
        }
        agree.check(
            &format!("{what} odds/hazard ratio [{}]", c.name),
            c.ratio,
            f(&t["beta"]).exp(),
            TOL,
        );
    }
    agree.check(&format!("{what} loglik"), ours.loglik, f(&r["loglik"]), TOL);
}

#[test]
fn regression_equals_statsmodels_and_lifelines_on_gibleed() {
    let Some(py) = python() else { return };
    let input = [site_input(gibleed())];
    assert_eq!(input[0].units.len(), 1800 + 830);
    let logistic = fit_sites(Model::Logistic, &input);
    let cox = fit_sites(Model::Cox, &input);
    assert_eq!(
        (logistic.n, logistic.events, cox.n, cox.events),
        (2630, 479, 2630, 479)
    );
    let (cox_req, logit_req) = union_request(&input, false);
    let dir = tempfile::tempdir().unwrap();
    let r = reference_fits(
        &py,
        dir.path(),
        &json!({"cox": {"gibleed": cox_req}, "logit": {"gibleed": logit_req}}),
    );
    let mut agree = Agreement::default();
    compare_fit(
        &mut agree,
        "logistic vs statsmodels Logit",
        &logistic,
        &r["logit"]["gibleed"],
    );
    compare_fit(
        &mut agree,
        "cox vs lifelines CoxPHFitter",
        &cox,
        &r["cox"]["gibleed"],
    );
    assert!(
        f(&r["logit"]["gibleed"]["glm_max_abs_diff_beta"]) < TOL,
        "statsmodels GLM Binomial = Logit"
    );
    agree.print(
        "regression vs statsmodels / lifelines on GiBleed (celecoxib vs diclofenac, GI bleed)",
    );
    eprintln!(
        "iterations: logistic {}, cox {}",
        logistic.iterations, cox.iterations
    );
}

/// `fe:` covariates: a FeatureExtraction covariate as a 0/1 column at each unit's index, from
/// the characterization's own covariate engine. Checked three ways: `fe:8507001` (gender =
/// MALE, FE analysis 1) is the gender column; each column summed over the target's units is
/// what the characterization (equal to FE's SQL in the oracle tests) counts for those entries,
/// for a condition occurrence (analysis 102) and a condition group era (210); and the logistic
/// fit with them equals statsmodels' `Logit`. Continuous, value-as-concept and unknown analyses
/// are refused by name.
#[test]
fn fe_covariates_are_the_characterizations_and_fit_as_statsmodels() {
    use qiao_analysis::characterization::{characterize, Settings};
    let store = gibleed();
    let input = site_input(store);
    let target_rows: Vec<qiao_cohort::CohortRow> = input
        .units
        .iter()
        .filter(|u| u.arm == Arm::Target)
        .map(|u| qiao_cohort::CohortRow {
            subject_id: u.subject.person_id,
            start: u.subject.index_date,
            end: u.subject.index_date,
        })
        .collect();
    let settings = Settings {
        analysis_ids: vec![1, 102, 210],
        ..Settings::default()
    };
    let ch = characterize(store, &target_rows, &settings).unwrap();
    // Per analysis, the covariate with prevalence nearest 30% whose column over all units is
    // neither constant nor a copy of one chosen before (a singular design otherwise).
    let gender = GenderMale.column(store, &input.units).unwrap();
    let mut chosen = vec![ch
        .binary
        .iter()
        .find(|b| b.covariate_id == 8507001)
        .unwrap()];
    let mut chosen_cols = vec![gender.clone()];
    for analysis in [102, 210] {
        let mut candidates: Vec<_> = ch
            .binary
            .iter()
            .filter(|b| b.analysis_id == analysis)
            .collect();
        candidates.sort_by(|a, b| (a.mean - 0.3).abs().total_cmp(&(b.mean - 0.3).abs()));
        let (b, col) = candidates
            .into_iter()
            .find_map(|b| {
                let col = FeCovariate::new(b.covariate_id)
                    .unwrap()
                    .column(store, &input.units)
                    .unwrap();
                let ones = col.iter().filter(|&&v| v == 1.0).count();
                (ones > 20 && ones + 20 < col.len() && !chosen_cols.contains(&col))
                    .then_some((b, col))
            })
            .unwrap_or_else(|| panic!("no usable covariate of analysis {analysis}"));
        chosen.push(b);
        chosen_cols.push(col);
    }
    for b in &chosen {
        eprintln!("fe:{} {} (target sum {})", b.covariate_id, b.name, b.sum);
    }
    let mut covariates: Vec<Box<dyn Covariate>> = vec![Box::new(Treatment)];
    for b in &chosen {
        covariates.push(Box::new(FeCovariate::new(b.covariate_id).unwrap()));
    }
    let (names, cols) = columns(store, &input.units, &covariates).unwrap();
    assert_eq!(names[1], "fe:8507001");
    assert_eq!(cols[1], gender, "fe:8507001 is gender = male");
    for (j, b) in chosen.iter().enumerate() {
        let sum: f64 = input
            .units
            .iter()
            .zip(&cols[j + 1])
            .filter(|(u, _)| u.arm == Arm::Target)
            .map(|(_, v)| v)
            .sum();
        assert_eq!(sum, b.sum as f64, "fe:{} over the target", b.covariate_id);
        assert!(b.sum > 50, "fe:{}: {} persons", b.covariate_id, b.sum);
    }
    for (id, why) in [
        (1901, "continuous"),
        (4_194_304_123_456_713, "hashes"),
        (8507999, "not a FeatureExtraction analysis"),
    ] {
        let e = FeCovariate::new(id).err().expect("refused");
        assert!(e.to_string().contains(why), "{e}");
    }
    let Some(py) = python() else { return };
    let s = SiteInput {
        units: input.units,
        names,
        columns: cols,
    };
    let logistic = fit_sites(Model::Logistic, std::slice::from_ref(&s));
    let (_, logit_req) = union_request(std::slice::from_ref(&s), false);
    let dir = tempfile::tempdir().unwrap();
    let r = reference_fits(&py, dir.path(), &json!({"logit": {"fe": logit_req}}));
    let mut agree = Agreement::default();
    compare_fit(
        &mut agree,
        "logistic with fe: covariates vs statsmodels Logit",
        &logistic,
        &r["logit"]["fe"],
    );
    agree.print("fe: covariates (gender, a condition, a condition group) vs statsmodels");
}

#[test]
fn federated_fits_and_kaplan_meier_equal_the_pooled_references() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut opts =
        qiao_synth::HospitalOptions::new(data("eunomia-gibleed-5.3"), dir.path().join("sites"));
    opts.hospitals = 3;
    opts.persons = 1500;
    opts.seed = 16;
    qiao_synth::hospitals(&opts).unwrap();
    let stores: Vec<Store> = (1..=3)
        .map(|k| store_of(&dir.path().join(format!("sites/hospital_{k}"))))
        .collect();
    let inputs: Vec<SiteInput> = stores.iter().map(site_input).collect();
    for s in &inputs {
        assert!(s.units.len() > 300, "every site has persons to fit");
    }

    let logistic = fit_sites(Model::Logistic, &inputs);
    let cox = fit_sites(Model::Cox, &inputs);
    // Logistic over the sites = one logistic fit on the union, computed in one place.
    let union = SiteInput {
        units: inputs
            .iter()
            .flat_map(|s| s.units.iter().copied())
            .collect(),
        names: inputs[0].names.clone(),
        columns: (0..inputs[0].names.len())
            .map(|j| {
                inputs
                    .iter()
                    .flat_map(|s| s.columns[j].iter().copied())
                    .collect()
            })
            .collect(),
    };
    let pooled = fit_sites(Model::Logistic, std::slice::from_ref(&union));
    let mut agree = Agreement::default();
    for (a, b) in logistic.coefficients.iter().zip(&pooled.coefficients) {
        agree.check("federated vs pooled logistic beta", a.beta, b.beta, TOL);
        agree.check("federated vs pooled logistic se", a.se, b.se, TOL);
    }

    // Kaplan–Meier pooled from each site's 30-day risk-set table.
    let width = 30;
    let site_durations: Vec<Vec<(i32, bool)>> = inputs
        .iter()
        .map(|s| {
            s.units
                .iter()
                .filter(|u| u.arm == Arm::Target)
                .map(|u| (u.subject.time, u.subject.event))
                .collect()
        })
        .collect();
    let tables: Vec<RiskSetTable> = site_durations
        .iter()
        .map(|d| RiskSetTable::from_durations(width, d.iter().copied()).unwrap())
        .collect();
    let pooled_km = KaplanMeier::fit(
        &RiskSetTable::pool(&tables)
            .unwrap()
            .monotone()
            .event_table(),
    );
    let on_grid: Vec<(i32, bool)> = site_durations
        .iter()
        .flatten()
        .map(|&(t, e)| (grid_index(t, width) as i32 * width, e))
        .collect();
    let union_km = KaplanMeier::fit(&EventTable::from_durations(on_grid.iter().copied()));
    assert_eq!(
        pooled_km, union_km,
        "pooled tables = KM of the union on the grid"
    );

    let (cox_req, logit_req) = union_request(&inputs, true);
    let r = reference_fits(
        &py,
        dir.path(),
        &json!({
            "cox": {"strata": cox_req},
            "logit": {"union": logit_req},
            "km": {"grid": km_request(&on_grid)},
            "at_risk_times": AT_RISK_TIMES,
        }),
    );
    compare_fit(
        &mut agree,
        "federated logistic vs statsmodels on the union",
        &logistic,
        &r["logit"]["union"],
    );
    compare_fit(
        &mut agree,
        "federated cox vs CoxPHFitter(strata=site)",
        &cox,
        &r["cox"]["strata"],
    );
    compare_km(
        &mut agree,
        "pooled grid KM vs lifelines on union grid",
        &on_grid,
        &r["km"]["grid"],
    );
    agree.print("federated (3 synthetic GiBleed sites) vs pooled references");
    eprintln!(
        "iterations: logistic {}, cox {}",
        logistic.iterations, cox.iterations
    );
}
