//! The aggregate-only guard on a large result, as a site runs it before signing and the hub on
//! receipt: an incidence result with every stratum (3 times at risk × 4 age groups × 3 genders ×
//! 113 years = 4,068 rows × 8 released values, about 2 MB of JSON).
//!
//! `cargo bench -p qiao-protocol --bench guard`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use qiao_protocol::guard::check_result_text;
use qiao_protocol::{
    assert_aggregate_only, DisclosureSummary, IncidenceResult, IncidenceRow, JobId, JobResult,
    Outcome, Payload, Released, SiteId,
};

fn incidence_result() -> JobResult {
    let mut rows = Vec::new();
    let value = |v: u64| Released::Exact { value: 10 + v };
    for tar in 1..=3u32 {
        for age in [None, Some(1), Some(2), Some(3)] {
            for gender in [None, Some(8507), Some(8532)] {
                for year in std::iter::once(None).chain((1908..=2019).map(Some)) {
                    rows.push(IncidenceRow {
                        tar_id: tar,
                        age_group_id: age,
                        gender_concept_id: gender,
                        start_year: year,
                        persons_at_risk_pe: value(1),
                        persons_at_risk: value(2),
                        person_days_pe: value(3_000),
                        person_days: value(2_900),
                        person_outcomes_pe: value(4),
                        person_outcomes: value(5),
                        outcomes_pe: value(6),
                        outcomes: value(7),
                    });
                }
            }
        }
    }
    JobResult {
        job_id: JobId::random(),
        site_id: SiteId::new("site-a").unwrap(),
        outcome: Outcome::Done {
            payload: Payload::Incidence(IncidenceResult {
                rows,
                disclosure: DisclosureSummary {
                    min_cell_count: 10,
                    obfuscation: None,
                    secondary_suppression: false,
                    dp: None,
                },
            }),
        },
    }
}

fn bench(c: &mut Criterion) {
    let result = incidence_result();
    assert_eq!(assert_aggregate_only(&result), Ok(()));
    let text = serde_json::to_vec(&result).unwrap();
    eprintln!("incidence result: {} bytes of JSON", text.len());
    let mut g = c.benchmark_group("guard");
    g.sample_size(20);
    g.bench_function("incidence_4068_rows", |b| {
        b.iter(|| assert_aggregate_only(black_box(&result)))
    });
    g.bench_function("incidence_4068_rows_text_only", |b| {
        b.iter(|| check_result_text(black_box(&text)))
    });
    // The tree walk (kept to name a breach's path), which every result went through before.
    g.bench_function("incidence_4068_rows_tree_walk", |b| {
        b.iter(|| {
            let v = serde_json::to_value(black_box(&result)).unwrap();
            qiao_protocol::guard::check_result_json(&v)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
