//! The release mechanism's cost per job at a site (the budget: < 1 ms per job).
//!
//! - `release/funnel_job`: what a 2-rule cohort count releases under the default DP policy —
//!   the budget charge (admit), subjects, clipped entries, a 2-line funnel with consistency
//!   post-processing, 2 gains — given the person-set digests (which the site computes anyway).
//! - `release/breakdown_10x4`: a demographics breakdown (10 age bands × 4 genders) with margins.
//! - `digest/1000_persons`: digesting a 1000-person set, for scale.
//!
//! `cargo bench -p qiao-disclosure --bench release`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use qiao_disclosure::{
    Breakdown, Discloser, Policy, QueryContext, QueryLedger, Question, SiteSecret, Statistic,
};

fn bench(c: &mut Criterion) {
    let site = Discloser::new(
        Policy::default(),
        SiteSecret::from_bytes(&[7u8; 32]).unwrap(),
    )
    .unwrap();
    let q = Question::of(b"a cohort definition");
    let subjects = site.digest(0..569);
    let after = [site.digest(0..569), site.digest(0..266)];
    let gains = [site.digest(1000..1628), site.digest(2000..2303)];
    let stats = vec![
        Statistic::person_count("subjects"),
        Statistic::clipped_rows("entries", 10),
        Statistic::person_count("after rule 0"),
        Statistic::disjoint_person_count("gain 0", "gain"),
        Statistic::person_count("after rule 1"),
        Statistic::disjoint_person_count("gain 1", "gain"),
    ];
    let mut i = 0u64;
    c.bench_function("release/funnel_job", |b| {
        b.iter(|| {
            // A fresh ledger per job keeps the budget from running out.
            let mut ledger = QueryLedger::new();
            i += 1;
            let ctx = QueryContext {
                user: "u",
                organization: "o",
                project: "p",
                now_unix_secs: 1_700_000_000 + i,
            };
            site.admit(&mut ledger, &ctx, &stats).unwrap();
            let s = site.release_count(&q, &stats[0], &subjects);
            let e = site.release_value(&q, &stats[1], &subjects, 600);
            let lines: Vec<(Statistic, _)> =
                vec![(stats[2].clone(), after[0]), (stats[4].clone(), after[1])];
            let f = site.release_funnel(&q, &lines);
            let g0 = site.release_count(&q, &stats[3], &gains[0]);
            let g1 = site.release_count(&q, &stats[5], &gains[1]);
            black_box((s, e, f, g0, g1))
        })
    });
    let mut next = 0i64;
    let cells = (0..10)
        .map(|_| {
            (0..4)
                .map(|k| {
                    let n = 5 + 20 * k;
                    let d = site.digest(next..next + n);
                    next += n;
                    d
                })
                .collect()
        })
        .collect();
    let table = Breakdown::from_cells(cells).unwrap();
    c.bench_function("release/breakdown_10x4", |b| {
        b.iter(|| black_box(site.release_breakdown(&q, &table).unwrap()))
    });
    c.bench_function("digest/1000_persons", |b| {
        b.iter(|| black_box(site.digest(0..1000)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
