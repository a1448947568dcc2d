//! Jobs at the site run in a bounded pool of workers, fair between users, each under a time
//! limit: a heavy job is stopped at the limit (reported as `failed: timeout` and audited) while
//! another user's small job completes.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use qiao_protocol::{FailureKind, Job, JobResult, Outcome, QueryType};
use qiao_site::workers::Limits;

/// Every condition occurrence a primary event, each checked against 45 rules of nested
/// correlated criteria: seconds of work on GiBleed, inside the site's definition limits.
fn heavy_definition() -> serde_json::Value {
    let text = std::fs::read_to_string("../cohort/tests/fixtures/slow_definition.json")
        .expect("the slow definition");
    serde_json::from_str(&text).expect("JSON")
}

fn spawn_limited(
    data: &Path,
    limits: Limits,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let mut o = qiao_site::ServeOptions::new(data, store_path());
    o.tls = insecure();
    o.wait_secs = 1;
    o.max_backoff = Duration::from_millis(500);
    o.limits = limits;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        qiao_site::serve(&o, async {
            let _ = rx.await;
        })
        .await
    });
    (tx, task)
}

/// Budgets that pay for the heavy job's 45 rules (a timed-out job is charged like any other;
/// the default user budget would refuse it before its time limit mattered).
fn generous_budgets(data: &Path) {
    let dir = qiao_site::SiteDir::open(data).expect("site dir");
    let mut policy = qiao_site::SitePolicy::load(&dir).expect("policy");
    policy.dp.user_rho = 100.0;
    policy.dp.organization_rho = 100.0;
    policy.dp.site_rho = 100.0;
    policy.save(&dir).expect("save policy");
}

fn timed_out(r: &JobResult) -> bool {
    r.outcome
        == Outcome::Failed {
            error: FailureKind::Timeout,
        }
}

fn done(r: &JobResult) -> bool {
    matches!(r.outcome, Outcome::Done { .. })
}

fn heavy(user: &str) -> Job {
    job(QueryType::CohortCount, heavy_definition(), user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_job_is_stopped_at_the_limit_while_a_small_job_completes() {
    let hub = FakeHub::new();
    let (url, _server) = start(hub.clone(), 0).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("site");
    enroll_site(&hub, &url, &data, "hospital-a").await;
    generous_budgets(&data);
    let heavy = heavy("mallory");
    let small = job(QueryType::CohortCount, definition(3), "alice");
    hub.offer(Offer::Job(heavy.clone()));
    hub.offer(Offer::Job(small.clone()));
    let (stop, site) = spawn_limited(
        &data,
        Limits {
            workers: 2,
            time_limit: Duration::from_millis(400),
        },
    );
    // Alice's small job completes while Mallory's heavy one still runs.
    let r = hub.wait_result(&small.job_id, 60).await;
    assert!(done(&r), "{r:?}");
    assert!(
        hub.result(&heavy.job_id).is_none(),
        "the heavy job was still running"
    );
    // The heavy job is stopped at the limit and reported as a timeout.
    let r = hub.wait_result(&heavy.job_id, 60).await;
    assert!(timed_out(&r), "{r:?}");
    let audit = audit_entries(&data);
    let decided = audit
        .iter()
        .find(|e| {
            e.action == "job.decide"
                && e.job_id.as_deref() == Some(heavy.job_id.to_string().as_str())
        })
        .expect("audited");
    let text = decided.decision.as_deref().unwrap();
    assert!(
        text.starts_with("failed:timeout")
            && text.contains("at this site's time limit of 0.4 s")
            && text.contains("charged, nothing released"),
        "{decided:?}"
    );
    assert!(decided.released.is_none(), "{decided:?}");
    let _ = stop.send(());
    site.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_serves_users_in_turn() {
    let hub = FakeHub::new();
    let (url, _server) = start(hub.clone(), 0).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("site");
    enroll_site(&hub, &url, &data, "hospital-a").await;
    generous_budgets(&data);
    // Mallory's three heavy jobs are offered before Alice's small one.
    let heavies = [heavy("mallory"), heavy("mallory"), heavy("mallory")];
    let small = job(QueryType::CohortCount, definition(3), "alice");
    for h in &heavies {
        hub.offer(Offer::Job(h.clone()));
    }
    hub.offer(Offer::Job(small.clone()));
    let (stop, site) = spawn_limited(
        &data,
        Limits {
            workers: 1,
            time_limit: Duration::from_millis(400),
        },
    );
    // Alice is served right after Mallory's first job, not behind all three.
    let r = hub.wait_result(&small.job_id, 60).await;
    assert!(done(&r), "{r:?}");
    let finished: Vec<bool> = heavies
        .iter()
        .map(|h| hub.result(&h.job_id).is_some())
        .collect();
    assert_eq!(finished, [true, false, false]);
    for h in &heavies {
        let r = hub.wait_result(&h.job_id, 60).await;
        assert!(timed_out(&r), "{r:?}");
    }
    let _ = stop.send(());
    site.await.unwrap().unwrap();
}

/// Admission is decided before the cohort is computed (it never depends on the data): a heavy
/// job the user's default budget cannot pay is refused without starting the engine. The proof:
/// run with a token already cancelled while the site is stopping — any computation would
/// observe it and end the run as "stopped" — the heavy job is still answered `refused`, while a
/// small job that is admitted does start its computation and is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_refused_by_its_budget_costs_no_computation() {
    let hub = FakeHub::new();
    let (url, _server) = start(hub.clone(), 0).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("site");
    let config = enroll_site(&hub, &url, &data, "hospital-a").await;
    let dir = qiao_site::SiteDir::open(&data).unwrap();
    let stopped = || {
        let cancel = qiao_cohort::exec::Cancel::new();
        cancel.cancel();
        qiao_site::workers::Run {
            cancel,
            limit: Duration::from_secs(60),
            threads: 1,
            stopping: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
    };
    let actor = qiao_audit::Actor::Site(config.site_id.to_string());
    let heavy = heavy("mallory");
    let store = store();
    let started = std::time::Instant::now();
    let entry = qiao_site::workers::run_job(
        &dir,
        store,
        &config.site_id,
        &heavy,
        actor.clone(),
        stopped(),
    )
    .expect("decided without computing");
    assert_eq!(
        entry.result.outcome,
        Outcome::Refused {
            reason: qiao_protocol::RefusalReason::PrivacyBudgetExhausted
        },
        "{entry:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // An admitted job computes, so the stopped run ends it (nothing journaled).
    let small = job(QueryType::CohortCount, definition(3), "alice");
    let e = qiao_site::workers::run_job(&dir, store, &config.site_id, &small, actor, stopped())
        .expect_err("the computation saw the cancellation");
    assert!(e.to_string().contains("shutting down"), "{e:#}");
}

/// An analysis's other cohorts run under the job's time limit too: an incidence job whose
/// target is small and whose outcome is the heavy definition ends as a timeout when the token
/// is cancelled while the outcome is computed (it ran to the end, unlimited, before).
#[test]
fn an_analysis_outcome_cohort_runs_under_the_time_limit() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hub = FakeHub::new();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("site");
    let config = rt.block_on(async {
        let (url, server) = start(hub.clone(), 0).await;
        let config = enroll_site(&hub, &url, &data, "hospital-a").await;
        drop(server);
        config
    });
    let dir = qiao_site::SiteDir::open(&data).unwrap();
    let spec = qiao_protocol::IncidenceSpec {
        outcome: heavy_definition(),
        tars: vec![qiao_protocol::TimeAtRisk::cohort_period()],
        clean_window: 0,
        strata: Default::default(),
        age_breaks: Vec::new(),
        max_tar_days: qiao_protocol::IncidenceSpec::DEFAULT_MAX_TAR_DAYS,
        max_outcomes_per_tar: qiao_protocol::IncidenceSpec::DEFAULT_MAX_OUTCOMES_PER_TAR,
    };
    let j = job(QueryType::Incidence(spec), definition(3), "alice");
    let cancel = qiao_cohort::exec::Cancel::new();
    let timer = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            cancel.cancel();
        })
    };
    let run = qiao_site::workers::Run {
        cancel,
        limit: Duration::from_millis(400),
        threads: 1,
        stopping: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    };
    let actor = qiao_audit::Actor::Site(config.site_id.to_string());
    let started = std::time::Instant::now();
    let entry = qiao_site::workers::run_job(&dir, store(), &config.site_id, &j, actor, run)
        .expect("journaled");
    timer.join().unwrap();
    assert!(timed_out(&entry.result), "{entry:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
