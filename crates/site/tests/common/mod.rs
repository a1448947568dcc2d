//! Test fixtures: the GiBleed store (person ids offset so that they are unmistakable in captured
//! traffic), the CohortGenerator reference definitions, and an in-process fake hub (axum on
//! 127.0.0.1) that signs with `qiao_protocol::Signer` and records every byte it receives.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use qiao_protocol::{
    check_against_job, EnrollRequest, EnrollResponse, Envelope, Job, JobId, JobResult, Message,
    ProjectId, QueryType, ReplayGuard, Requester, SiteId, StoredToken, UserId, UserRole, Verifier,
};
use qiao_site::{EnrollOptions, SiteConfig, TlsOptions};
use serde_json::{json, Value};
use tokio::sync::Notify;

pub const DATA: &str = "../../../shared/data";
/// Added to every person id of GiBleed: 13-digit ids cannot be confused with counts, times or
/// nonces in captured traffic.
pub const ID_OFFSET: i64 = 9_000_000_000_000;

pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(DATA).join(rel)
}

/// A CohortGenerator reference definition (1 celecoxib, 2 + age, 3 + age + male, 4 censored).
pub fn definition(n: u32) -> Value {
    let p = data(&format!(
        "reference/cohortgenerator-eunomia/cohorts/{n}.json"
    ));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("definition JSON")
}

pub fn definition_path(n: u32) -> PathBuf {
    data(&format!(
        "reference/cohortgenerator-eunomia/cohorts/{n}.json"
    ))
}

/// GiBleed with every person_id offset by [`ID_OFFSET`], ingested once per test binary.
pub fn store_path() -> &'static Path {
    static STORE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, p) = STORE.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cdm = tmp.path().join("cdm");
        std::fs::create_dir_all(&cdm).unwrap();
        let src = data("eunomia-gibleed-5.3");
        for entry in std::fs::read_dir(&src).expect("GiBleed folder") {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_owned();
            if path.extension().is_some_and(|e| e == "csv") {
                offset_person_ids(&path, &cdm.join(name));
            }
        }
        let out = tmp.path().join("gibleed.qiao");
        qiao_ingest::ingest(
            &qiao_ingest::Source::CsvDir(cdm),
            &out,
            qiao_ingest::Options::default(),
        )
        .expect("ingest GiBleed");
        (tmp, out)
    });
    p
}

fn offset_person_ids(from: &Path, to: &Path) {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(from)
        .unwrap();
    let headers = r.headers().unwrap().clone();
    let col = headers
        .iter()
        .position(|h| h.eq_ignore_ascii_case("person_id"));
    let mut w = csv::Writer::from_path(to).unwrap();
    w.write_record(&headers).unwrap();
    for rec in r.records() {
        let rec = rec.unwrap();
        let fields: Vec<String> = rec
            .iter()
            .enumerate()
            .map(|(i, f)| match (Some(i) == col, f.parse::<i64>()) {
                (true, Ok(v)) => (v + ID_OFFSET).to_string(),
                _ => f.to_owned(),
            })
            .collect();
        w.write_record(&fields).unwrap();
    }
    w.flush().unwrap();
}

pub fn store() -> &'static qiao_store::Store {
    static S: OnceLock<qiao_store::Store> = OnceLock::new();
    S.get_or_init(|| qiao_store::Store::open(store_path()).expect("open store"))
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// What a job runs with at `site_id` over the GiBleed [`store`], now, without recruitment
/// marks (a recruitment test sets `recruitment`).
pub fn context<'a>(
    site_id: &'a SiteId,
    discloser: &'a qiao_disclosure::Discloser,
    ledger: &'a mut qiao_disclosure::QueryLedger,
) -> qiao_site::ExecContext<'a> {
    qiao_site::ExecContext {
        site_id,
        cdm: store(),
        discloser,
        ledger,
        now: now(),
        recruitment: &[],
    }
}

pub fn job(query: QueryType, definition: Value, user: &str) -> Job {
    Job {
        job_id: JobId::random(),
        project_id: ProjectId::new("celecoxib-feasibility").unwrap(),
        query,
        definition,
        requested_by: Requester {
            user_id: UserId::new(user).unwrap(),
            role: UserRole::SponsorResearcher,
            organization: "Example Pharma".into(),
        },
        created_at: now(),
        // No alliance floors: these tests exercise the site's own policies (exact, SHRINE,
        // thresholds below 10); floors have their own tests.
        floors: qiao_protocol::Floors::none(),
    }
}

/// One thing the fake hub can hand out on a poll.
#[allow(clippy::large_enum_variant)] // A test double: a few offers per test.
pub enum Offer {
    /// A job, sealed afresh for the site at each poll until its result is acknowledged.
    Job(Job),
    /// A fixed envelope, handed out once (forged, tampered, replayed, misaddressed …).
    Raw(Envelope),
}

#[derive(Default)]
pub struct Hub {
    pub site: Option<SiteId>,
    pub verifier: Option<Verifier>,
    pub token: Option<StoredToken>,
    pub offers: Vec<Offer>,
    /// Accepted results by job, in arrival order (a second result for a job is kept apart).
    pub results: BTreeMap<JobId, JobResult>,
    pub duplicate_results: Vec<JobResult>,
    /// Every request: method path?query, headers, body.
    pub traffic: Vec<u8>,
    pub polls: u64,
    pub result_posts: u64,
    /// Jobs handed out, in order (job ids of sealed offers).
    pub delivered: Vec<JobId>,
    /// When each job was last handed out.
    pub leases: BTreeMap<JobId, Instant>,
    /// Hold result posts (never answer them) and keep their bodies here.
    pub hold_results: bool,
    pub held: Vec<Vec<u8>>,
}

pub struct FakeHub {
    pub signer: qiao_protocol::Signer,
    pub state: Mutex<Hub>,
    pub guard: Mutex<ReplayGuard>,
    pub changed: Notify,
}

impl FakeHub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            signer: qiao_protocol::Signer::generate(),
            state: Mutex::new(Hub::default()),
            guard: Mutex::new(ReplayGuard::default()),
            changed: Notify::new(),
        })
    }

    /// A one-time enrollment token.
    pub fn issue_token(&self) -> String {
        let (token, stored) = StoredToken::issue(now(), 3600);
        self.state.lock().unwrap().token = Some(stored);
        token.expose_secret()
    }

    pub fn offer(&self, o: Offer) {
        self.state.lock().unwrap().offers.push(o);
        self.changed.notify_waiters();
    }

    pub fn site(&self) -> SiteId {
        self.state.lock().unwrap().site.clone().expect("enrolled")
    }

    pub fn result(&self, id: &JobId) -> Option<JobResult> {
        self.state.lock().unwrap().results.get(id).cloned()
    }

    /// Waits (up to `secs`) for the result of a job.
    pub async fn wait_result(&self, id: &JobId, secs: u64) -> JobResult {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(r) = self.result(id) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no result for job {id} within {secs} s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn traffic(&self) -> Vec<u8> {
        self.state.lock().unwrap().traffic.clone()
    }
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

fn record(hub: &FakeHub, uri: &Uri, headers: &HeaderMap, body: &[u8]) {
    let mut s = hub.state.lock().unwrap();
    s.traffic
        .extend_from_slice(format!("POST {uri}\n").as_bytes());
    for (k, v) in headers {
        s.traffic.extend_from_slice(k.as_str().as_bytes());
        s.traffic.extend_from_slice(b": ");
        s.traffic.extend_from_slice(v.as_bytes());
        s.traffic.push(b'\n');
    }
    s.traffic.extend_from_slice(body);
    s.traffic.push(b'\n');
}

async fn enroll(
    State(hub): State<Arc<FakeHub>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&hub, &uri, &headers, &body);
    let req: EnrollRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
    };
    let mut s = hub.state.lock().unwrap();
    let Some(stored) = s.token.as_mut() else {
        return error(StatusCode::FORBIDDEN, "invalid_token", "no token issued");
    };
    let key = match qiao_protocol::enroll(stored, &req, now()) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::FORBIDDEN, "invalid_token", e.to_string()),
    };
    let site = req.site_name.clone();
    let mut verifier = Verifier::for_hub();
    verifier.register_site(site.clone(), key).unwrap();
    s.verifier = Some(verifier);
    s.site = Some(site.clone());
    let resp = EnrollResponse::new(site, hub.signer.public_key().unwrap());
    axum::Json(resp).into_response()
}

#[derive(serde::Deserialize)]
struct Wait {
    wait_secs: Option<u64>,
}

fn open_site_envelope(hub: &FakeHub, body: &[u8]) -> Result<Message, Box<Response>> {
    let env = Envelope::from_json(body)
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, "malformed", e.to_string())))?;
    let verifier = hub.state.lock().unwrap().verifier.clone().ok_or_else(|| {
        Box::new(error(
            StatusCode::UNAUTHORIZED,
            "not_enrolled",
            "no site enrolled",
        ))
    })?;
    let opened = hub
        .guard
        .lock()
        .unwrap()
        .open(&verifier, &env, now())
        .map_err(|e| {
            Box::new(error(
                StatusCode::UNAUTHORIZED,
                "bad_envelope",
                e.to_string(),
            ))
        })?;
    Ok(opened.message)
}

async fn poll(
    State(hub): State<Arc<FakeHub>>,
    Query(w): Query<Wait>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&hub, &uri, &headers, &body);
    match open_site_envelope(&hub, &body) {
        Ok(Message::Poll(_)) => {}
        Ok(_) => return error(StatusCode::BAD_REQUEST, "wrong_kind", "expected a poll"),
        Err(r) => return *r,
    }
    hub.state.lock().unwrap().polls += 1;
    let deadline = Instant::now() + Duration::from_secs(w.wait_secs.unwrap_or(0).min(30));
    loop {
        let notified = hub.changed.notified();
        {
            let mut s = hub.state.lock().unwrap();
            let site = s.site.clone().unwrap();
            let acked: HashSet<JobId> = s.results.keys().copied().collect();
            // Like the real hub: a delivered job is leased for a while before it is offered
            // again (until its result is acknowledged).
            let leased: HashSet<JobId> = s
                .leases
                .iter()
                .filter(|(_, t)| t.elapsed() < Duration::from_secs(3))
                .map(|(id, _)| *id)
                .collect();
            let pos = s.offers.iter().position(|o| match o {
                Offer::Job(j) => !acked.contains(&j.job_id) && !leased.contains(&j.job_id),
                Offer::Raw(_) => true,
            });
            if let Some(i) = pos {
                let env = match &s.offers[i] {
                    Offer::Job(j) => {
                        let env = hub.signer.seal_job(j, &site, now()).unwrap();
                        let id = j.job_id;
                        s.delivered.push(id);
                        s.leases.insert(id, Instant::now());
                        env
                    }
                    Offer::Raw(_) => {
                        let Offer::Raw(env) = s.offers.remove(i) else {
                            unreachable!()
                        };
                        env
                    }
                };
                return (StatusCode::OK, env.to_json()).into_response();
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return StatusCode::NO_CONTENT.into_response();
        }
        let _ = tokio::time::timeout(left.min(Duration::from_millis(250)), notified).await;
    }
}

async fn result(
    State(hub): State<Arc<FakeHub>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&hub, &uri, &headers, &body);
    let hold = {
        let mut s = hub.state.lock().unwrap();
        s.result_posts += 1;
        if s.hold_results {
            s.held.push(body.to_vec());
        }
        s.hold_results
    };
    if hold {
        hub.changed.notify_waiters();
        // Never answer: the test kills the site meanwhile.
        std::future::pending::<()>().await;
    }
    let result = match open_site_envelope(&hub, &body) {
        Ok(Message::Result(r)) => r,
        Ok(_) => return error(StatusCode::BAD_REQUEST, "wrong_kind", "expected a result"),
        Err(r) => return *r,
    };
    let mut s = hub.state.lock().unwrap();
    let job = s.offers.iter().find_map(|o| match o {
        Offer::Job(j) if j.job_id == result.job_id => Some(j.clone()),
        _ => None,
    });
    let Some(job) = job else {
        return error(StatusCode::NOT_FOUND, "unknown_job", "no such job");
    };
    if let Err(e) = check_against_job(&job, &result) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_aggregate",
            e.to_string(),
        );
    }
    match s.results.entry(result.job_id) {
        std::collections::btree_map::Entry::Occupied(_) => s.duplicate_results.push(result.clone()),
        std::collections::btree_map::Entry::Vacant(v) => {
            v.insert(result.clone());
        }
    }
    let site = s.site.clone().unwrap();
    drop(s);
    hub.changed.notify_waiters();
    let ack = hub
        .signer
        .seal_result_ack(result.job_id, &site, now())
        .unwrap();
    (StatusCode::OK, ack.to_json()).into_response()
}

pub fn router(hub: Arc<FakeHub>) -> Router {
    Router::new()
        .route("/api/v1/enroll", post(enroll))
        .route("/api/v1/site/poll", post(poll))
        .route("/api/v1/site/result", post(result))
        .with_state(hub)
}

/// Serves the hub on `127.0.0.1:port` (0: any free port); returns the URL and the server task.
pub async fn start(hub: Arc<FakeHub>, port: u16) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the fake hub");
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router(hub)).await;
    });
    (format!("http://{addr}"), task)
}

pub fn insecure() -> TlsOptions {
    TlsOptions {
        ca_cert: None,
        insecure_http: true,
    }
}

/// Enrolls a site in `data` with the hub at `url`.
pub async fn enroll_site(hub: &FakeHub, url: &str, data: &Path, name: &str) -> SiteConfig {
    let token = hub.issue_token();
    qiao_site::enroll(&EnrollOptions {
        hub: url.to_owned(),
        token,
        name: name.to_owned(),
        data: data.to_owned(),
        hub_fingerprint: Some(hub.signer.public_key().unwrap().fingerprint()),
        tls: insecure(),
    })
    .await
    .expect("enroll")
}

/// Runs `qiao_site::serve` in the background until the returned sender is dropped or fired.
pub fn spawn_site(
    data: &Path,
    hub_url: Option<String>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let mut o = qiao_site::ServeOptions::new(data, store_path());
    o.hub = hub_url;
    o.tls = insecure();
    o.wait_secs = 1;
    o.max_backoff = Duration::from_millis(500);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        qiao_site::serve(&o, async {
            let _ = rx.await;
        })
        .await
    });
    (tx, task)
}

/// Sets the site policy.
pub fn set_policy(data: &Path, f: impl FnOnce(&mut qiao_site::SitePolicy)) {
    let dir = qiao_site::SiteDir::open(data).unwrap();
    let mut p = qiao_site::SitePolicy::load(&dir).unwrap();
    f(&mut p);
    p.save(&dir).unwrap();
}

/// Audit entries of a site.
pub fn audit_entries(data: &Path) -> Vec<qiao_audit::Entry> {
    let dir = qiao_site::SiteDir::open(data).unwrap();
    qiao_site::audit::read(&dir)
        .expect("audit chain verifies")
        .0
}
