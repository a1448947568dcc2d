//! A real `qiao hub serve` process (redb backend) killed with SIGKILL while jobs are being
//! submitted: after a restart no accepted job or delivered result is lost or duplicated.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use qiao_hub::client::HubClient;
use qiao_hub::protocol::JobId;
use qiao_hub::view::SiteStatus;
use qiao_hub::HubStore;
use serde_json::json;

/// The `qiao` binary built beside this test (scripts/test.sh builds it first).
fn qiao_bin() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?;
    let bin = dir.join("qiao");
    if bin.exists() {
        return Some(bin);
    }
    assert!(
        std::env::var("QIAO_TEST_PG_REQUIRED").as_deref() != Ok("1"),
        "{} not built (cargo build -p qiao)",
        bin.display()
    );
    eprintln!(
        "SKIPPED: {} not built; run cargo build -p qiao first",
        bin.display()
    );
    None
}

fn run(bin: &Path, args: &[&str]) -> String {
    let out = Command::new(bin).args(args).output().expect("run qiao");
    assert!(
        out.status.success(),
        "qiao {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn serve(bin: &Path, data: &str) -> (Child, String) {
    let mut child = Command::new(bin)
        .args([
            "hub",
            "serve",
            "--data",
            data,
            "--insecure-http",
            "--listen",
            "127.0.0.1:0",
            "--redeliver-secs",
            "1",
            // The test submits as fast as it can: no quota in the way.
            "--jobs-per-user-hour",
            "1000000",
            "--jobs-per-project-hour",
            "1000000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn qiao hub serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read banner");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    (child, url)
}

#[test]
fn sigkill_loses_and_duplicates_nothing() {
    let Some(bin) = qiao_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let data = data.to_str().unwrap();
    std::env::set_var("QIAO_HUB_PASSWORD", PASSWORD);
    run(
        &bin,
        &[
            "hub",
            "create-user",
            "--data",
            data,
            "--id",
            "alice",
            "--role",
            "sponsor_researcher",
            "--institution",
            "Pharma",
        ],
    );
    let out = run(&bin, &["hub", "create-site", "--data", data, "--id", "h1"]);
    let enroll_token = out
        .lines()
        .find(|l| l.starts_with("qiao-enroll-"))
        .unwrap()
        .to_owned();
    run(
        &bin,
        &[
            "hub",
            "create-project",
            "--data",
            data,
            "--id",
            "p1",
            "--title",
            "Kill test",
            "--member",
            "alice",
            "--approved",
        ],
    );
    let token = run(
        &bin,
        &["hub", "create-token", "--data", data, "--user", "alice"],
    )
    .trim()
    .to_owned();

    let (mut child, url) = serve(&bin, data);
    let mut site = FakeSite::new("h1", &url);
    assert_eq!(site.enroll(&enroll_token).status, 200);
    let alice = HubClient::new(&url, None).unwrap().with_token(&token);
    let body = json!({"query_type": "cohort_count", "definition": definition()});
    let submit = |c: &HubClient| {
        let r = c.raw(
            "POST",
            "/api/v1/projects/p1/queries",
            Some(body.to_string().as_bytes()),
        );
        match r {
            Ok(r) if r.status == 201 => Some(
                r.json()["job_id"]
                    .as_str()
                    .unwrap()
                    .parse::<JobId>()
                    .unwrap(),
            ),
            _ => None,
        }
    };
    // A job accepted and its result delivered (acknowledged) before the kill.
    let j1 = submit(&alice).expect("j1 accepted");
    assert_eq!(site.poll(5).unwrap().job_id, j1);
    let r1 = cohort_result(&j1, &site.id, 120, 100);
    site.post_result(&r1);
    // Jobs accepted while the hub is killed mid-stream.
    let accepted = Arc::new(Mutex::new(vec![j1]));
    let stop = Arc::new(AtomicBool::new(false));
    let submitter = {
        let (accepted, stop, alice) = (accepted.clone(), stop.clone(), alice.clone());
        let body = body.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let r = alice.raw(
                    "POST",
                    "/api/v1/projects/p1/queries",
                    Some(body.to_string().as_bytes()),
                );
                match r {
                    Ok(r) if r.status == 201 => accepted
                        .lock()
                        .unwrap()
                        .push(r.json()["job_id"].as_str().unwrap().parse().unwrap()),
                    _ => break,
                }
            }
        })
    };
    // Kill mid-stream: once a few jobs are in (however loaded the machine), at most 10 s.
    let t0 = std::time::Instant::now();
    while accepted.lock().unwrap().len() <= 4 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(50));
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    submitter.join().unwrap();
    let accepted: Vec<JobId> = accepted.lock().unwrap().clone();
    assert!(
        accepted.len() > 3,
        "only {} jobs accepted before the kill",
        accepted.len()
    );

    // Restart on the same data directory.
    let (mut child, url) = serve(&bin, data);
    let alice = HubClient::new(&url, None).unwrap().with_token(&token);
    let v = alice.job(&j1).unwrap();
    assert_eq!(v.sites[0].status, SiteStatus::Done);
    assert_eq!(
        v.sites[0].payload.as_ref(),
        match &r1.outcome {
            qiao_hub::protocol::Outcome::Done { payload } => Some(payload),
            _ => None,
        }
    );
    for id in &accepted {
        assert!(alice.job(id).is_ok(), "accepted job {id} lost");
    }
    // The site (same key) gets every other job exactly once; j1 never again.
    site.client = HubClient::new(&url, None).unwrap();
    let mut delivered = HashSet::new();
    while let Some(job) = site.poll(0) {
        assert_ne!(job.job_id, j1, "answered job delivered again");
        assert!(
            delivered.insert(job.job_id),
            "job {} delivered twice",
            job.job_id
        );
        site.post_result(&cohort_result(&job.job_id, &site.id, 50, 40));
    }
    // A repeated result for j1 is acknowledged, not stored again.
    site.post_result(&cohort_result(&j1, &site.id, 999, 999));
    assert!(submit(&alice).is_some(), "the restarted hub accepts jobs");
    child.kill().unwrap();
    child.wait().unwrap();

    {
        let owned = qiao_hub::RedbStore::open(Path::new(data)).unwrap();
        let store: &dyn HubStore = &owned;
        let jobs = store.jobs().unwrap();
        let ids: HashSet<JobId> = jobs.iter().map(|j| j.job.job_id).collect();
        assert_eq!(ids.len(), jobs.len(), "no job stored twice");
        for id in &accepted {
            assert!(ids.contains(id));
        }
        // At most one job committed whose answer the killed hub never sent, plus the last one.
        assert!(
            jobs.len() <= accepted.len() + 2,
            "{} jobs for {} accepted",
            jobs.len(),
            accepted.len()
        );
        let r = store.results(&j1).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].result, r1);
        for j in &jobs {
            assert!(store.results(&j.job.job_id).unwrap().len() <= 1);
        }
        let (_, report) = store.verify_audit().unwrap();
        report.expect("audit chain intact after SIGKILL");
    }
    let out = Command::new(&bin)
        .args(["hub", "audit", "--data", data, "--quiet"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("audit chain OK"));
}
