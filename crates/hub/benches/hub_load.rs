//! Hub under load: N concurrent clients (default 200) polling one job's status over keep-alive
//! HTTP/1.1 on loopback for a fixed time. Reports throughput and latency percentiles.
//!
//! `cargo bench -p qiao-hub --bench hub_load` (or `scripts/bench-hub.sh`); environment:
//! QIAO_BENCH_CLIENTS (200), QIAO_BENCH_SECS (10), QIAO_BENCH_PG (a PostgreSQL URL: use that
//! backend instead of redb).

use std::sync::Arc;
use std::time::{Duration, Instant};

use qiao_hub::api::HubConfig;
use qiao_hub::audit::Actor;
use qiao_hub::model::{Project, Site, TokenKind, TokenRecord, User};
use qiao_hub::protocol::{
    CohortCountResult, DisclosureSummary, Job, JobId, JobResult, Outcome, Payload, QueryType,
    Released, Requester, SiteId, UserId, UserRole,
};
use qiao_hub::util::token_hash;
use qiao_hub::{BackgroundHub, HubStore, Listen};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn setup(store: &dyn HubStore) -> JobId {
    let sys = Actor::System;
    let alice = UserId::new("alice").unwrap();
    store
        .create_user(
            &User {
                id: alice.clone(),
                role: UserRole::SponsorResearcher,
                institution: Some("Pharma".into()),
                site: None,
                password_hash: "unused".into(),
                created_at: 1,
            },
            &sys,
            1,
        )
        .unwrap();
    store
        .put_token(
            &TokenRecord {
                hash: token_hash("qiao-t-bench"),
                user_id: alice.clone(),
                kind: TokenKind::Api,
                created_at: 1,
                expires_at: None,
                label: None,
                minted_by: None,
            },
            "token.create",
            &sys,
            1,
        )
        .unwrap();
    store
        .create_project(
            &Project {
                id: "p1".parse().unwrap(),
                title: "bench".into(),
                approved: true,
                members: vec![alice.clone()],
                created_at: 1,
            },
            &sys,
            1,
        )
        .unwrap();
    let sites: Vec<SiteId> = (1..=5)
        .map(|i| SiteId::new(format!("h{i}")).unwrap())
        .collect();
    for s in &sites {
        store
            .create_site(
                &Site {
                    id: s.clone(),
                    name: s.to_string(),
                    public_key: None,
                    enrolled_at: None,
                    enrollment: None,
                    created_at: 1,
                },
                &sys,
                1,
            )
            .unwrap();
    }
    let job = Job {
        job_id: JobId::random(),
        project_id: "p1".parse().unwrap(),
        query: QueryType::CohortCount,
        definition: serde_json::json!({"PrimaryCriteria": {}}),
        requested_by: Requester {
            user_id: alice,
            role: UserRole::SponsorResearcher,
            organization: "Example Pharma".into(),
        },
        created_at: 1,
        floors: Default::default(),
    };
    store.create_job(&job, &sites, 1).unwrap();
    for (i, s) in sites.iter().enumerate().take(4) {
        let v = 100 + 10 * i as u64;
        store
            .put_result(
                &JobResult {
                    job_id: job.job_id,
                    site_id: s.clone(),
                    outcome: Outcome::Done {
                        payload: Payload::CohortCount(CohortCountResult {
                            initial: None,
                            entries: Released::Exact { value: v },
                            subjects: Released::Exact { value: v },
                            rules: vec![],
                            final_persons: Released::Exact { value: v },
                            disclosure: DisclosureSummary {
                                min_cell_count: 10,
                                obfuscation: None,
                                secondary_suppression: false,
                                dp: None,
                            },
                        }),
                    },
                },
                2,
            )
            .unwrap();
    }
    job.job_id
}

async fn client(addr: std::net::SocketAddr, path: String, until: Instant) -> Vec<Duration> {
    let mut lat = Vec::new();
    let Ok(stream) = TcpStream::connect(addr).await else {
        return lat;
    };
    let _ = stream.set_nodelay(true);
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer qiao-t-bench\r\n\r\n");
    let mut line = String::new();
    let mut body = Vec::new();
    while Instant::now() < until {
        let t = Instant::now();
        if w.write_all(req.as_bytes()).await.is_err() {
            break;
        }
        let mut len = 0usize;
        let mut status_ok = false;
        loop {
            line.clear();
            match r.read_line(&mut line).await {
                Ok(0) | Err(_) => return lat,
                Ok(_) => {}
            }
            if line.starts_with("HTTP/1.1 ") {
                status_ok = line.starts_with("HTTP/1.1 200");
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        body.resize(len, 0);
        if r.read_exact(&mut body).await.is_err() || !status_ok {
            return lat;
        }
        lat.push(t.elapsed());
    }
    lat
}

fn main() {
    let clients = env_or("QIAO_BENCH_CLIENTS", 200) as usize;
    let secs = env_or("QIAO_BENCH_SECS", 10);
    let dir = tempfile::tempdir().unwrap();
    let mut pg = None;
    let store: Arc<dyn HubStore> = match std::env::var("QIAO_BENCH_PG") {
        Ok(url) if !url.is_empty() => {
            let schema = format!("qiao_hub_bench_{}", std::process::id());
            let s = Arc::new(qiao_hub::PgStore::open_in_schema(&url, Some(&schema)).unwrap());
            pg = Some(s.clone());
            s
        }
        _ => Arc::new(qiao_hub::RedbStore::open(dir.path()).unwrap()),
    };
    let job = setup(store.as_ref());
    let backend = store.backend();
    let hub = BackgroundHub::start(
        store.clone(),
        HubConfig::default(),
        Listen {
            addr: "127.0.0.1:0".parse().unwrap(),
            tls: None,
        },
    )
    .unwrap();
    let addr = hub.addr;
    let path = format!("/api/v1/jobs/{job}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // Warm-up.
    let warm = Instant::now() + Duration::from_secs(1);
    rt.block_on(async {
        let tasks: Vec<_> = (0..clients.min(20))
            .map(|_| tokio::spawn(client(addr, path.clone(), warm)))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let mut all: Vec<Duration> = rt.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|_| tokio::spawn(client(addr, path.clone(), until)))
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            if let Ok(v) = t.await {
                all.extend(v);
            }
        }
        all
    });
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "hub_load: backend {backend}, {clients} concurrent clients, GET job status (5 sites, 4 done), {secs} s on loopback, plain HTTP/1.1 keep-alive"
    );
    println!(
        "  requests {}  throughput {:.0} req/s  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        all.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
    drop(hub);
    if let Some(pg) = pg {
        let _ = pg.drop_schema();
    }
}
