//! A site stores a definition once however often it is asked: 20 jobs carrying the same
//! ~900 KB definition (refused: over the size limit) and 10 carrying the same ~400 KB one
//! (waiting for the steward) grow the site's folder by about one copy of each, not 20.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use qiao_protocol::{Outcome, QueryType, RefusalReason};
use qiao_site::queue::Approvals;
use qiao_site::{Approval, SiteDir};

fn folder_bytes(p: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            folder_bytes(&e.path())
        } else {
            m.len()
        };
    }
    total
}

/// Definition 3 with a description of `bytes` characters.
fn padded(bytes: usize) -> serde_json::Value {
    let mut d = definition(3);
    d["description"] = serde_json::Value::String("x".repeat(bytes));
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_asked_for_twenty_times_is_stored_once() {
    let hub = FakeHub::new();
    let (url, _server) = start(hub.clone(), 0).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("site");
    enroll_site(&hub, &url, &data, "hospital-a").await;
    set_policy(&data, |p| p.cohort_count = Approval::Manual);
    let big = padded(900_000);
    let queued = padded(400_000);
    let mut refused = Vec::new();
    let mut waiting = Vec::new();
    for i in 0..20 {
        let j = job(QueryType::CohortCount, big.clone(), &format!("user{i}"));
        refused.push(j.job_id);
        hub.offer(Offer::Job(j));
    }
    for i in 0..10 {
        let j = job(QueryType::CohortCount, queued.clone(), &format!("user{i}"));
        waiting.push(j.job_id);
        hub.offer(Offer::Job(j));
    }
    let before = folder_bytes(&data);
    let (stop, site) = spawn_site(&data, None);
    for id in &refused {
        let r = hub.wait_result(id, 60).await;
        assert_eq!(
            r.outcome,
            Outcome::Refused {
                reason: RefusalReason::DefinitionTooComplex
            }
        );
    }
    let dir = SiteDir::open(&data).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Approvals::new(&dir).list().unwrap().len() < waiting.len() {
        assert!(Instant::now() < deadline, "the jobs were not all queued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    site.await.unwrap().unwrap();
    // A queued job reads back with its whole definition.
    let item = Approvals::new(&dir).get(&waiting[7]).unwrap().unwrap();
    assert_eq!(item.job.definition, queued);
    let grown = folder_bytes(&data) - before;
    let one_copy_each = (big.to_string().len() + queued.to_string().len()) as u64;
    assert!(
        grown < one_copy_each + 200_000,
        "the folder grew by {grown} bytes; one copy of each definition is {one_copy_each}"
    );
}
