//! Time-to-event and regression benchmarks on GiBleed×100 (269,400 persons; the celecoxib
//! cohort has 180,000 entries, diclofenac 83,000; GI bleed outcome).
//!
//! What's measured (cohort rows made once, outside the timings, except where said):
//! - `km_x100/follow_up_km`: follow each of the 180,000 celecoxib persons to the first GI bleed
//!   (observation-period lookup per person), the event table and the Kaplan–Meier curve
//!   (Greenwood intervals, median). The target: < 200 ms.
//! - `km_x100/cohorts_follow_up_km`: the same including running both cohort definitions.
//! - `km_x100/logrank`: the log-rank test of celecoxib vs diclofenac from their event tables.
//! - `km_x100/grid_tables_pool`: five sites' 30-day risk-set tables, pooled, and the pooled curve.
//! - `cox_x100/site_sums_5cov`: one Newton–Raphson round of a site (Efron sums, 263,000 persons,
//!   5 covariates: treatment, age, gender, two cohort memberships).
//! - `cox_x100/fit_5cov_1site`, `cox_x100/fit_5cov_5sites`: the whole fit, on one site and split
//!   into 5 sites (persons by id mod 5, as five GiBleed×20 hospitals; in process, no network),
//!   each its own stratum. Iterations are printed once.
//! - `logistic_x100/fit_5cov_5sites`: the logistic fit over the same 5 sites.
//!
//! Run with: `cargo bench -p qiao-analysis --bench time_to_event`. The GiBleed×100 store is
//! made once under `$BENCH_DIR` (default /tmp/qiao-bench, shared with scripts/bench-cohort.sh:
//! `cohort_x100.qiao`), by `qiao synth --replicate 100` and `qiao ingest` (build the binary first:
//! `cargo build --release -p qiao`); no randomness.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use qiao_analysis::cohorts::cohort_rows;
use qiao_analysis::regression::design::{
    columns, AgeDecades, Arm, CohortMembership, Covariate, GenderMale, Treatment, Unit,
};
use qiao_analysis::regression::{fit, Guard, Model, SiteData};
use qiao_analysis::survival::{logrank, EventTable, KaplanMeier, RiskSetTable};
use qiao_analysis::time_to_event::{follow_up, TimeAtRisk};
use qiao_cohort::CohortRow;
use qiao_store::Store;

fn manifest(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn cohort_json(name: &str) -> String {
    let p = match name {
        "celecoxib" => {
            manifest("../../../shared/data/reference/cohortgenerator-eunomia/cohorts/1.json")
        }
        _ => manifest(&format!("tests/cohorts/{name}.json")),
    };
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn run(cmd: &mut Command) {
    let st = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(st.success(), "{cmd:?} failed");
}

/// GiBleed×100 as a store file, made once.
fn store_x100() -> Store {
    let dir =
        PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp/qiao-bench".into()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = dir.join("cohort_x100.qiao");
    if let Ok(s) = Store::open(&store) {
        return s;
    }
    let qiao = manifest("../../target/release/qiao");
    assert!(
        qiao.exists(),
        "build the binary first: cargo build --release -p qiao"
    );
    let cdm = dir.join("gibleed_x100");
    if !cdm.join("person.csv").exists() {
        run(Command::new(&qiao)
            .args(["synth", "--replicate", "100", "--quiet", "--out"])
            .arg(&cdm));
    }
    run(Command::new(&qiao)
        .args(["ingest", "--cdm"])
        .arg(&cdm)
        .arg("--out")
        .arg(&store));
    Store::open(&store).expect("open GiBleed×100")
}

fn rows(store: &Store, name: &str) -> Vec<CohortRow> {
    cohort_rows(store, name, &cohort_json(name)).unwrap()
}

fn bench(c: &mut Criterion) {
    let store = store_x100();
    let target = rows(&store, "celecoxib");
    let comparator = rows(&store, "diclofenac");
    let outcome = rows(&store, "gi_bleed");
    assert_eq!(target.len(), 180_000);
    let tar = TimeAtRisk::default();

    let mut g = c.benchmark_group("km_x100");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.bench_function("follow_up_km", |b| {
        b.iter(|| {
            let f = follow_up(&store, &target, &outcome, tar);
            let t = EventTable::from_durations(f.subjects.iter().map(|s| (s.time, s.event)));
            black_box(KaplanMeier::fit(&t))
        })
    });
    g.bench_function("cohorts_follow_up_km", |b| {
        b.iter(|| {
            let (t, o) = (rows(&store, "celecoxib"), rows(&store, "gi_bleed"));
            let f = follow_up(&store, &t, &o, tar);
            let t = EventTable::from_durations(f.subjects.iter().map(|s| (s.time, s.event)));
            black_box(KaplanMeier::fit(&t))
        })
    });
    let table = |rows: &[CohortRow]| {
        let f = follow_up(&store, rows, &outcome, tar);
        EventTable::from_durations(f.subjects.iter().map(|s| (s.time, s.event)))
    };
    let (tt, ct) = (table(&target), table(&comparator));
    g.bench_function("logrank", |b| b.iter(|| black_box(logrank(&tt, &ct))));
    let fu = follow_up(&store, &target, &outcome, tar);
    g.bench_function("grid_tables_pool", |b| {
        b.iter(|| {
            let tables: Vec<RiskSetTable> = (0..5)
                .map(|k| {
                    let d = fu
                        .subjects
                        .iter()
                        .filter(|s| s.person_id % 5 == k)
                        .map(|s| (s.time, s.event));
                    RiskSetTable::from_durations(30, d).unwrap()
                })
                .collect();
            black_box(KaplanMeier::fit(
                &RiskSetTable::pool(&tables)
                    .unwrap()
                    .monotone()
                    .event_table(),
            ))
        })
    });
    g.finish();

    // Regression: celecoxib (target) vs diclofenac, 5 covariates.
    let units: Vec<Unit> = [(&target, Arm::Target), (&comparator, Arm::Comparator)]
        .into_iter()
        .flat_map(|(rows, arm)| {
            follow_up(&store, rows, &outcome, tar)
                .subjects
                .into_iter()
                .map(move |subject| Unit { subject, arm })
        })
        .collect();
    let covariates: Vec<Box<dyn Covariate>> = vec![
        Box::new(Treatment),
        Box::new(AgeDecades),
        Box::new(GenderMale),
        Box::new(CohortMembership {
            name: "ankle sprain".into(),
            rows: rows(&store, "ankle_sprain"),
        }),
        Box::new(CohortMembership {
            name: "concussion".into(),
            rows: rows(&store, "concussion"),
        }),
    ];
    let (names, cols) = columns(&store, &units, &covariates).unwrap();
    let site_of = |model: Model, pick: &dyn Fn(&Unit) -> bool| {
        let idx: Vec<usize> = (0..units.len()).filter(|&i| pick(&units[i])).collect();
        let c: Vec<Vec<f64>> = cols
            .iter()
            .map(|col| idx.iter().map(|&i| col[i]).collect())
            .collect();
        let t: Vec<i32> = idx.iter().map(|&i| units[i].subject.time).collect();
        let e: Vec<bool> = idx.iter().map(|&i| units[i].subject.event).collect();
        SiteData::new(model, &names, &c, &t, &e, &Guard::new(10)).unwrap()
    };
    let one = site_of(Model::Cox, &|_| true);
    let five: Vec<SiteData> = (0..5)
        .map(|k| site_of(Model::Cox, &move |u: &Unit| u.subject.person_id % 5 == k))
        .collect();
    let five_logistic: Vec<SiteData> = (0..5)
        .map(|k| {
            site_of(Model::Logistic, &move |u: &Unit| {
                u.subject.person_id % 5 == k
            })
        })
        .collect();
    for (what, sites, model) in [
        ("1 site", vec![&one], Model::Cox),
        ("5 sites", five.iter().collect(), Model::Cox),
        ("5 sites", five_logistic.iter().collect(), Model::Logistic),
    ] {
        let t = Instant::now();
        let f = fit(model, &model.coefficient_names(&names), &mut sites.clone()).unwrap();
        eprintln!(
            "{model:?} {what}: n {} events {} iterations {} converged {} in {:.1} ms",
            f.n,
            f.events,
            f.iterations,
            f.converged,
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let beta = vec![0.1; names.len()];
    let mut g = c.benchmark_group("cox_x100");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("site_sums_5cov", |b| b.iter(|| black_box(one.sums(&beta))));
    g.bench_function("fit_5cov_1site", |b| {
        b.iter(|| black_box(fit(Model::Cox, &names, &mut [&one]).unwrap()))
    });
    g.bench_function("fit_5cov_5sites", |b| {
        b.iter(|| black_box(fit(Model::Cox, &names, &mut five.iter().collect::<Vec<_>>()).unwrap()))
    });
    g.finish();
    let mut g = c.benchmark_group("logistic_x100");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let lnames = Model::Logistic.coefficient_names(&names);
    g.bench_function("fit_5cov_5sites", |b| {
        b.iter(|| {
            black_box(
                fit(
                    Model::Logistic,
                    &lnames,
                    &mut five_logistic.iter().collect::<Vec<_>>(),
                )
                .unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
