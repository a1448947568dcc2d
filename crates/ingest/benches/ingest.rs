//! What's measured: ingest of the bundled Eunomia GiBleed CDM (CSV → store file, ~0.5 M rows,
//! 29 MB), reading one table (drug_exposure, 67,707 rows) through the row checks, and opening the
//! resulting store (checksums and index invariants included). The bytes per event of the store are
//! printed once.
//!
//! Run with: `cargo bench -p qiao-ingest --bench ingest`. Scale runs (GiBleed×100) are in
//! `scripts/bench-ingest.sh`.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qiao_ingest::{ingest, read_table, Options, ReadOptions, Source};
use qiao_store::Store;

fn gibleed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/eunomia-gibleed-5.3")
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("g.qiao");
    let src = Source::CsvDir(gibleed());
    ingest(&src, &out, Options::default()).expect("ingest GiBleed");
    let store = Store::open(&out).expect("open");
    let events: u64 = store
        .domain_names()
        .iter()
        .filter_map(|n| store.domain(n))
        .map(|d| d.len() as u64)
        .sum();
    let size = std::fs::metadata(&out).expect("size").len();
    eprintln!(
        "GiBleed store: {size} bytes, {events} events, {:.1} bytes/event (all sections)",
        size as f64 / events as f64
    );

    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    let csv_bytes: u64 = std::fs::read_dir(gibleed())
        .expect("dir")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    g.throughput(Throughput::Bytes(csv_bytes));
    g.bench_function("gibleed_csv_to_store", |b| {
        b.iter(|| ingest(&src, &out, Options::default()).expect("ingest"))
    });
    let drug = std::fs::read(gibleed().join("drug_exposure.csv")).expect("read");
    g.throughput(Throughput::Bytes(drug.len() as u64));
    let spec = qiao_cdm::table("drug_exposure").expect("spec");
    g.bench_function("read_drug_exposure", |b| {
        b.iter(|| {
            read_table(
                spec,
                "drug_exposure.csv",
                &drug[..],
                &ReadOptions::default(),
                &mut |_| {},
            )
            .expect("read")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("store");
    g.bench_function("open_gibleed", |b| {
        b.iter(|| Store::open(&out).expect("open"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
