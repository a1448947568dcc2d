//! Cohort engine benchmarks on Eunomia GiBleed (an in-memory store built once):
//!
//! - `phenotypes_110/parse_plan_run`: parse, prepare (concept sets + plan) and run every one of the
//!   110 PhenotypeLibrary definitions (phenotypes-dev), as one iteration.
//! - `phenotypes_110/parse_plan`: the same without running (what the front end costs).
//! - `phenotypes_110/run_<pipeline>`: run every one (prepared once) on one evaluator: `fused` (the
//!   fused pipeline where it applies, as `Prepared::run` does) or `per_person` (the per-person
//!   evaluator for all): the two side by side.
//! - `cohortgenerator/<id>/<pipeline>`: each CohortGenerator reference cohort (prepared once), run
//!   with stats on each evaluator.
//!
//! `cargo bench -p qiao-cohort --bench cohorts`. GiBleed×100 side by side with duckcdm:
//! `scripts/bench-cohort.sh`.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use qiao_cohort::exec::{Counter, Pipeline, Prepared};
use qiao_store::Store;

const DATA: &str = "../../../shared/data";

fn data(rel: &str) -> PathBuf {
    PathBuf::from(DATA).join(rel)
}

fn gibleed() -> Store {
    let (tables, _) = qiao_ingest::read_all(
        &qiao_ingest::Source::CsvDir(data("eunomia-gibleed-5.3")),
        qiao_ingest::Options::default(),
    )
    .expect("read GiBleed");
    qiao_store::from_tables(tables).expect("GiBleed store")
}

fn phenotypes() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(data("phenotypes-dev/cohorts"))
        .expect("phenotypes-dev/cohorts")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn bench(c: &mut Criterion) {
    let store = gibleed();
    let defs = phenotypes();
    assert_eq!(defs.len(), 110);
    let mut g = c.benchmark_group("phenotypes_110");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("parse_plan_run", |b| {
        b.iter(|| {
            let mut entries = 0u64;
            for (_, json) in &defs {
                let def = qiao_cohort::parse(json).unwrap();
                let p = Prepared::new(&def, &store).unwrap();
                let mut counter = Counter::default();
                p.run(&store, &mut counter).unwrap();
                entries += counter.entries;
            }
            black_box(entries)
        })
    });
    g.bench_function("parse_plan", |b| {
        b.iter(|| {
            for (_, json) in &defs {
                let def = qiao_cohort::parse(json).unwrap();
                black_box(Prepared::new(&def, &store).unwrap());
            }
        })
    });
    let prepared: Vec<Prepared> = defs
        .iter()
        .map(|(_, json)| Prepared::new(&qiao_cohort::parse(json).unwrap(), &store).unwrap())
        .collect();
    // The same runs holding a cancellation token (what a site's worker gives each job).
    let cancellable: Vec<Prepared> = defs
        .iter()
        .map(|(_, json)| {
            Prepared::new(&qiao_cohort::parse(json).unwrap(), &store)
                .unwrap()
                .with_cancel(qiao_cohort::exec::Cancel::new())
        })
        .collect();
    for (name, pipeline, prepared) in [
        ("run_fused", Pipeline::Fused, &prepared),
        ("run_per_person", Pipeline::PerPerson, &prepared),
        ("run_fused_cancellable", Pipeline::Fused, &cancellable),
        (
            "run_per_person_cancellable",
            Pipeline::PerPerson,
            &cancellable,
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut entries = 0u64;
                for p in prepared {
                    let mut counter = Counter::default();
                    p.run_on(&store, &mut counter, true, pipeline).unwrap();
                    entries += counter.entries;
                }
                black_box(entries)
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("cohortgenerator");
    g.sample_size(20);
    for id in 1..=4 {
        let json = std::fs::read_to_string(data(&format!(
            "reference/cohortgenerator-eunomia/cohorts/{id}.json"
        )))
        .unwrap();
        let def = qiao_cohort::parse(&json).unwrap();
        let p = Prepared::new(&def, &store).unwrap();
        for (name, pipeline) in [
            ("fused", Pipeline::Fused),
            ("per_person", Pipeline::PerPerson),
        ] {
            g.bench_function(format!("{id}/{name}"), |b| {
                b.iter(|| {
                    let mut counter = Counter::default();
                    black_box(p.run_on(&store, &mut counter, true, pipeline).unwrap());
                    counter.entries
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
