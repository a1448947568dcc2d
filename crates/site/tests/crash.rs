//! A real `qiao-site serve` process killed (SIGKILL) after it fetched a job and before the hub
//! acknowledged the result: after a restart the job completes exactly once (computed once, one
//! result stored at the hub, the same released values). Also `qiao-site audit` and
//! `qiao-site policy` on the resulting data directory.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use qiao_protocol::{Envelope, Outcome, QueryType};

fn serve(data: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_qiao-site"))
        .args([
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--store",
            store_path().to_str().unwrap(),
            "--insecure-http",
            "--wait-secs",
            "1",
            "--max-backoff-secs",
            "0.5",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start qiao-site serve")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_job_the_job_completes_exactly_once_after_restart() {
    let hub = FakeHub::new();
    let (url, _server) = start(hub.clone(), 0).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("site");
    enroll_site(&hub, &url, &data, "hospital-a").await;
    store_path();

    hub.state.lock().unwrap().hold_results = true;
    let j = job(QueryType::CohortCount, definition(2), "alice");
    hub.offer(Offer::Job(j.clone()));
    let mut child = serve(&data);
    // Wait until the site fetched the job and is posting its result (which the hub holds).
    let deadline = Instant::now() + Duration::from_secs(90);
    while hub.state.lock().unwrap().held.is_empty() {
        assert!(Instant::now() < deadline, "the site never posted a result");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let held = hub.state.lock().unwrap().held[0].clone();
    let first: qiao_protocol::JobResult =
        serde_json::from_str(&Envelope::from_json(&held).unwrap().body).unwrap();
    assert!(hub.result(&j.job_id).is_none());

    // Restart: the hub offers the job again (it was never acknowledged).
    hub.state.lock().unwrap().hold_results = false;
    let mut child = serve(&data);
    let r = hub.wait_result(&j.job_id, 90).await;
    // Let the site record the acknowledgement before stopping it.
    let id = j.job_id.to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !audit_entries(&data)
        .iter()
        .any(|e| e.action == "result.ack" && e.job_id.as_deref() == Some(id.as_str()))
    {
        assert!(Instant::now() < deadline, "the site never recorded the ack");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    assert!(matches!(r.outcome, Outcome::Done { .. }));
    assert_eq!(r, first, "the re-sent result differs from the first");
    let s = hub.state.lock().unwrap();
    assert!(s.duplicate_results.is_empty());
    assert_eq!(s.results.len(), 1);
    drop(s);
    let audit = audit_entries(&data);
    let count = |action: &str| {
        audit
            .iter()
            .filter(|e| e.action == action && e.job_id.as_deref() == Some(id.as_str()))
            .count()
    };
    assert_eq!(count("job.decide"), 1, "computed more than once");
    assert_eq!(count("job.receive"), 1);
    assert_eq!(count("result.ack"), 1);

    // `qiao-site audit` prints and verifies the chain.
    let out = Command::new(env!("CARGO_BIN_EXE_qiao-site"))
        .args(["audit", "--data", data.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(lines, audit.len());
    assert!(String::from_utf8_lossy(&out.stderr).contains("audit chain verified"));
    // `qiao-site policy set/show`.
    let out = Command::new(env!("CARGO_BIN_EXE_qiao-site"))
        .args([
            "policy",
            "set",
            "--data",
            data.to_str().unwrap(),
            "--demographics",
            "deny",
            "--min-cell-count",
            "20",
            "--release",
            "dp",
            "--noise-sigma",
            "8",
            "--user-rho",
            "2",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = qiao_site::SiteDir::open(&data).unwrap();
    let p = qiao_site::SitePolicy::load(&dir).unwrap();
    assert_eq!(p.demographics, qiao_site::Approval::Deny);
    assert_eq!(p.min_cell_count, 20);
    assert_eq!(p.release, qiao_disclosure::ReleaseMode::Dp);
    assert_eq!(p.dp.user_rho, 2.0);
    assert_eq!(p.dp.sigma, 8.0);
    // An invalid setting is refused and nothing changes.
    let out = Command::new(env!("CARGO_BIN_EXE_qiao-site"))
        .args([
            "policy",
            "set",
            "--data",
            data.to_str().unwrap(),
            "--min-cell-count",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        qiao_site::SitePolicy::load(&dir).unwrap().min_cell_count,
        20
    );
    // A tampered log is detected.
    let path = data.join("audit.log");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("alice", "alicf", 1)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_qiao-site"))
        .args(["audit", "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken"));
}
