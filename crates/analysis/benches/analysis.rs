//! Characterization (FeatureExtraction's default set) of CohortGenerator cohort 1 (celecoxib) and
//! incidence of GI bleed after celecoxib (3 TARs, all strata), given the cohorts' rows.
//!
//! The store: `QIAO_BENCH_STORE` (scripts/bench-analysis.sh passes GiBleed×100 and prints the
//! OHDSI SQL on DuckDB beside it), else GiBleed read from ../shared/data into memory.

use std::collections::HashMap;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use qiao_analysis::characterization::{characterize, Settings};
use qiao_analysis::cohorts::cohort_rows;
use qiao_analysis::incidence::{self, Design};
use qiao_store::Store;

fn store() -> Store {
    match std::env::var_os("QIAO_BENCH_STORE") {
        Some(p) => Store::open(p).expect("QIAO_BENCH_STORE"),
        None => {
            let (tables, _) = qiao_ingest::read_all(
                &qiao_ingest::Source::CsvDir("../../../shared/data/eunomia-gibleed-5.3".into()),
                qiao_ingest::Options::default(),
            )
            .expect("GiBleed");
            qiao_store::from_tables(tables).expect("store")
        }
    }
}

fn read(p: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(p);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn bench(c: &mut Criterion) {
    let store = store();
    let celecoxib = cohort_rows(
        &store,
        "celecoxib",
        &read("../../../shared/data/reference/cohortgenerator-eunomia/cohorts/1.json"),
    )
    .unwrap();
    let gi_bleed = cohort_rows(&store, "gi bleed", &read("tests/data/gi_bleed.json")).unwrap();
    eprintln!(
        "celecoxib: {} entries; GI bleed: {} entries",
        celecoxib.len(),
        gi_bleed.len()
    );
    let settings = Settings::default();
    let mut g = c.benchmark_group("analysis");
    g.sample_size(10);
    g.bench_function("characterize_cohort1_fe_default", |b| {
        b.iter(|| characterize(&store, &celecoxib, &settings).unwrap())
    });
    let design = Design::parse("bench", &read("tests/data/bench_gi_bleed_design.json")).unwrap();
    let cohorts: incidence::Cohorts =
        HashMap::from([(1, celecoxib.clone()), (100, gi_bleed.clone())]);
    g.bench_function("incidence_gi_bleed_3tars_all_strata", |b| {
        b.iter(|| incidence::run(&store, &design, &cohorts, "").unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
