//! One append to a site's audit log of 20,000 entries (a few months of jobs at a busy site), as
//! every site process makes it: open the log, append one entry (durable: `fdatasync`), close.
//! `open` verifies the whole chain first; `open_after` only the lines written since this
//! process's last append.
//!
//! `cargo bench -p qiao-audit --bench append`.

use criterion::{criterion_group, criterion_main, Criterion};
use qiao_audit::{Actor, AuditLog, EntryDraft};

const ENTRIES: u64 = 20_000;

fn draft(i: u64) -> EntryDraft {
    EntryDraft::new(
        1_760_000_000 + i as i64,
        Actor::Site("hospital-a".into()),
        "result.release",
    )
    .project("p-celecoxib")
    .job(format!("{i:032x}"))
    .decision("auto_approved")
    .released_json(
        &serde_json::json!({"final_persons": {"kind": "dp", "value": 415, "sigma": 6.0}}),
    )
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    {
        let (log, _) = AuditLog::open(&path).unwrap();
        for i in 1..=ENTRIES {
            log.append(draft(i)).unwrap();
        }
    }
    let mut g = c.benchmark_group("audit append, log of 20,000 entries");
    let mut i = ENTRIES;
    g.bench_function("open (whole chain verified) + append", |b| {
        b.iter(|| {
            i += 1;
            let (log, _) = AuditLog::open(&path).unwrap();
            log.append(draft(i)).unwrap();
        })
    });
    let mut known = AuditLog::open(&path).unwrap().0.verified();
    g.bench_function("open_after (new lines verified) + append", |b| {
        b.iter(|| {
            i += 1;
            let (log, _) = AuditLog::open_after(&path, known.as_ref()).unwrap();
            log.append(draft(i)).unwrap();
            known = log.verified();
        })
    });
    g.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
