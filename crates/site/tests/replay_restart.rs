//! A job envelope replayed after `serve` restarts is refused: the nonces the site accepted are
//! kept on disk (`DIR/replay.json`), not only in the in-memory guard.

mod common;

use common::*;
use qiao_protocol::QueryType;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_envelope_replayed_after_a_restart_is_refused() {
    let hub = FakeHub::new();
    let (url, _server) = start(hub.clone(), 0).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("site");
    enroll_site(&hub, &url, &data, "hospital-a").await;
    let site_id = hub.site();

    // First serve: the captured envelope is delivered and the job runs once.
    let j = job(QueryType::CohortCount, definition(1), "alice");
    let captured = hub.signer.seal_job(&j, &site_id, now()).unwrap();
    let (stop, site) = spawn_site(&data, None);
    hub.offer(Offer::Raw(captured.clone()));
    // The hub accepts results only for jobs it offers as jobs: offer it too (a fresh nonce).
    hub.offer(Offer::Job(j.clone()));
    hub.wait_result(&j.job_id, 60).await;
    let _ = stop.send(());
    site.await.unwrap().unwrap();
    let persisted = std::fs::read_to_string(data.join("replay.json")).unwrap();
    assert!(
        persisted.contains(&captured.nonce.to_string()),
        "{persisted}"
    );
    let posts_before = hub.state.lock().unwrap().result_posts;
    // A long poll of the stopped serve may still be open at the fake hub (up to its 1 s wait)
    // and would swallow the next offer: let it end first.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;

    // Second serve, fresh memory: the same envelope again, then a new job to sync on.
    let (stop, site) = spawn_site(&data, None);
    hub.offer(Offer::Raw(captured.clone()));
    let sync = job(QueryType::CohortCount, definition(2), "alice");
    hub.offer(Offer::Job(sync.clone()));
    hub.wait_result(&sync.job_id, 60).await;
    let _ = stop.send(());
    site.await.unwrap().unwrap();

    // Refused and audited; nothing re-sent for the replayed job (only the sync job's result).
    let state = hub.state.lock().unwrap();
    assert_eq!(state.result_posts, posts_before + 1);
    assert!(
        state.duplicate_results.is_empty(),
        "{:?}",
        state.duplicate_results
    );
    drop(state);
    let audit = audit_entries(&data);
    let id = j.job_id.to_string();
    let rejects: Vec<String> = audit
        .iter()
        .filter(|e| e.action == "envelope.reject")
        .map(|e| format!("{:?} {}", e.job_id, e.decision.clone().unwrap_or_default()))
        .collect();
    assert_eq!(rejects.len(), 1, "{rejects:#?}");
    assert!(
        rejects[0].contains(&id) && rejects[0].contains("replayed message"),
        "{rejects:#?}"
    );
    let decided = audit
        .iter()
        .filter(|e| e.action == "job.decide" && e.job_id.as_deref() == Some(id.as_str()))
        .count();
    assert_eq!(decided, 1);
}
