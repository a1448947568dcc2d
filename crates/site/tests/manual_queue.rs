//! Jobs waiting for the steward do not hold up the jobs behind them: the site pauses only when
//! a hub re-offers a waiting job within seconds (to avoid spinning), not once per queued job.

mod common;

use std::time::{Duration, Instant};

use common::*;
use qiao_protocol::QueryType;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_manual_jobs_do_not_delay_an_auto_approved_one() {
    let hub = FakeHub::new();
    let (url, _server) = start(hub.clone(), 0).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("site");
    enroll_site(&hub, &url, &data, "hospital-a").await;
    // The default policy: counts auto-approved, demographics manual.
    let mut o = qiao_site::ServeOptions::new(&data, store_path());
    o.tls = insecure();
    o.wait_secs = 5; // a pause per queued job would be 5 s each
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let site = tokio::spawn(async move {
        qiao_site::serve(&o, async {
            let _ = rx.await;
        })
        .await
    });
    let queued: Vec<_> = (0..4)
        .map(|_| {
            job(
                QueryType::Demographics {
                    age_band_years: 10,
                    by_index_year: false,
                },
                definition(1),
                "alice",
            )
        })
        .collect();
    for j in &queued {
        hub.offer(Offer::Job(j.clone()));
    }
    let count = job(QueryType::CohortCount, definition(1), "alice");
    let t = Instant::now();
    hub.offer(Offer::Job(count.clone()));
    hub.wait_result(&count.job_id, 60).await;
    let took = t.elapsed();
    // Before: 4 queued jobs x 5 s pause = 20 s. Now: the count runs right behind them.
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let dir = qiao_site::SiteDir::open(&data).unwrap();
    let waiting = qiao_site::queue::Approvals::new(&dir).list().unwrap();
    assert_eq!(waiting.len(), 4);
    for j in &queued {
        assert!(hub.result(&j.job_id).is_none());
    }
    let _ = stop.send(());
    site.await.unwrap().unwrap();
}
