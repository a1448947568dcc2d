//! Shared test helpers: both storage backends, a hub on loopback, fake sites.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use qiao_hub::api::HubConfig;
use qiao_hub::client::{HubClient, RawResponse};
use qiao_hub::model::{Project, Site, User};
use qiao_hub::protocol::{
    CohortCountResult, DisclosureSummary, EnrollRequest, EnrollResponse, Envelope, Job, JobId,
    JobResult, Message, MessageKind, Outcome, Payload, Released, ReplayGuard, RuleName, RuleResult,
    Signer, SiteId, UserId, UserRole, Verifier,
};
use qiao_hub::util::now;
use qiao_hub::{BackgroundHub, HubStore, Listen, PgStore, RedbStore};

pub const PASSWORD: &str = "correct horse battery";

/// A store under test and what to clean up.
pub struct TestStore {
    pub name: &'static str,
    pub store: Arc<dyn HubStore>,
    pub pg: Option<Arc<PgStore>>,
    pub dir: Option<tempfile::TempDir>,
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(pg) = &self.pg {
            let _ = pg.drop_schema();
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn redb() -> TestStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(RedbStore::open(dir.path()).expect("open redb"));
    TestStore {
        name: "redb",
        store,
        pg: None,
        dir: Some(dir),
    }
}

/// The PostgreSQL URL, or `None` (with a message) when QIAO_TEST_PG is unset. With
/// QIAO_TEST_PG_REQUIRED=1 (scripts/test.sh) a missing server fails the test instead.
pub fn pg_url() -> Option<String> {
    match std::env::var("QIAO_TEST_PG") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("QIAO_TEST_PG_REQUIRED").as_deref() != Ok("1"),
                "QIAO_TEST_PG_REQUIRED=1 but QIAO_TEST_PG is unset"
            );
            eprintln!("SKIPPED PostgreSQL variant: set QIAO_TEST_PG=postgres://... (scripts/test.sh does)");
            None
        }
    }
}

/// A fresh schema in the test database, dropped at the end.
pub fn pg() -> Option<TestStore> {
    let url = pg_url()?;
    let schema = format!(
        "qiao_hub_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        rand_suffix()
    );
    let pg = Arc::new(PgStore::open_in_schema(&url, Some(&schema)).expect("open postgres"));
    Some(TestStore {
        name: "postgres",
        store: pg.clone(),
        pg: Some(pg),
        dir: None,
    })
}

fn rand_suffix() -> u32 {
    use rand::Rng;
    rand::thread_rng().gen_range(0..1_000_000)
}

/// Every backend available.
pub fn backends() -> Vec<TestStore> {
    let mut v = vec![redb()];
    v.extend(pg());
    v
}

pub fn uid(s: &str) -> UserId {
    UserId::new(s).expect("user id")
}

pub fn sid(s: &str) -> SiteId {
    SiteId::new(s).expect("site id")
}

/// A user record with a (cheap, fixed) password hash.
pub fn user(id: &str, role: UserRole) -> User {
    let (institution, site) = match role {
        UserRole::SponsorResearcher => (Some("Pharma Inc".to_owned()), None),
        UserRole::SiteDataSteward | UserRole::SiteInvestigator => (None, Some(sid("h1"))),
        _ => (None, None),
    };
    User {
        id: uid(id),
        role,
        institution,
        site,
        password_hash: qiao_hub::auth::hash_password(id, PASSWORD).expect("hash"),
        created_at: 1_700_000_000,
    }
}

pub fn site(id: &str) -> Site {
    Site {
        id: sid(id),
        name: format!("Hospital {id}"),
        public_key: None,
        enrolled_at: None,
        enrollment: None,
        created_at: 1_700_000_000,
    }
}

pub fn project(id: &str, approved: bool, members: &[&str]) -> Project {
    Project {
        id: id.parse().expect("project id"),
        title: format!("Project {id}"),
        approved,
        members: members.iter().map(|m| uid(m)).collect(),
        created_at: 1_700_000_000,
    }
}

/// A Circe-like definition with one inclusion rule.
pub fn definition() -> serde_json::Value {
    serde_json::json!({
        "ConceptSets": [],
        "PrimaryCriteria": {"CriteriaList": []},
        "InclusionRules": [{"name": "Age >= 18", "expression": {"Type": "ALL"}}]
    })
}

/// A cohort-count result for `job` released by `site`.
pub fn cohort_result(job: &JobId, site: &SiteId, entries: u64, finals: u64) -> JobResult {
    let rel = |v: u64| {
        if v < 10 {
            Released::BelowThreshold { threshold: 10 }
        } else {
            Released::Exact { value: v }
        }
    };
    JobResult {
        job_id: *job,
        site_id: site.clone(),
        outcome: Outcome::Done {
            payload: Payload::CohortCount(CohortCountResult {
                initial: None,
                entries: rel(entries),
                subjects: rel(entries),
                rules: vec![RuleResult {
                    name: RuleName::new("Age >= 18").expect("rule"),
                    persons: rel(finals),
                    gain: rel(entries.saturating_sub(finals)),
                }],
                final_persons: rel(finals),
                disclosure: DisclosureSummary {
                    min_cell_count: 10,
                    obfuscation: None,
                    secondary_suppression: false,
                    dp: None,
                },
            }),
        },
    }
}

/// A hub on loopback over `store` (plain HTTP).
pub fn start_hub(store: Arc<dyn HubStore>, config: HubConfig) -> BackgroundHub {
    BackgroundHub::start(
        store,
        config,
        Listen {
            addr: "127.0.0.1:0".parse().expect("addr"),
            tls: None,
        },
    )
    .expect("start hub")
}

/// A fake site: its own key, the pinned hub key, and a replay guard for hub messages.
pub struct FakeSite {
    pub id: SiteId,
    pub signer: Signer,
    pub verifier: Option<Verifier>,
    pub guard: ReplayGuard,
    pub client: HubClient,
}

impl FakeSite {
    pub fn new(id: &str, hub_url: &str) -> Self {
        Self {
            id: sid(id),
            signer: Signer::generate(),
            verifier: None,
            guard: ReplayGuard::default(),
            client: HubClient::new(hub_url, None).expect("client"),
        }
    }

    pub fn enroll(&mut self, token: &str) -> RawResponse {
        let req = EnrollRequest::new(token, self.id.clone(), self.signer.signing_key())
            .expect("enroll request");
        let body = serde_json::to_vec(&req).expect("json");
        let r = self
            .client
            .raw("POST", "/api/v1/enroll", Some(&body))
            .expect("enroll call");
        if r.status == 200 {
            let resp: EnrollResponse = serde_json::from_slice(&r.body).expect("enroll response");
            let key = resp.pin(None).expect("pin");
            self.verifier = Some(Verifier::for_site(self.id.clone(), key).expect("verifier"));
        }
        r
    }

    pub fn post_envelope(&self, path: &str, env: &Envelope) -> RawResponse {
        self.client
            .raw("POST", path, Some(&env.to_json()))
            .expect("call")
    }

    pub fn poll_envelope(&self) -> Envelope {
        self.signer.seal_poll(&self.id, now()).expect("seal poll")
    }

    /// Polls once; returns the verified job, if any.
    pub fn poll(&mut self, wait_secs: u64) -> Option<Job> {
        let env = self.poll_envelope();
        let r = self.post_envelope(&format!("/api/v1/site/poll?wait_secs={wait_secs}"), &env);
        match r.status {
            204 => None,
            200 => {
                let env = Envelope::from_json(&r.body).expect("job envelope");
                assert_eq!(env.kind, MessageKind::Job);
                let v = self.verifier.as_ref().expect("enrolled");
                let opened = self.guard.open(v, &env, now()).expect("hub job verifies");
                match opened.message {
                    Message::Job(j) => Some(j),
                    other => panic!("expected a job, got {other:?}"),
                }
            }
            s => panic!("poll: {s} {}", String::from_utf8_lossy(&r.body)),
        }
    }

    /// Posts a result; asserts a verified ack.
    pub fn post_result(&mut self, result: &JobResult) {
        let env = self.signer.seal_result(result, now()).expect("seal result");
        let r = self.post_envelope("/api/v1/site/result", &env);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let ack = Envelope::from_json(&r.body).expect("ack envelope");
        let v = self.verifier.as_ref().expect("enrolled");
        let opened = self.guard.open(v, &ack, now()).expect("ack verifies");
        assert_eq!(opened.message, Message::ResultAck);
        assert_eq!(opened.job_id, Some(result.job_id));
    }
}

/// Compares `actual` with the golden file `tests/golden/<rel>`; with `QIAO_BLESS=1` (re)writes
/// the file instead (as `crates/cohort/tests/common`). A missing golden file fails.
pub fn golden(rel: &str, actual: &str) {
    let path = std::path::PathBuf::from("tests/golden").join(rel);
    if std::env::var("QIAO_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("golden dir");
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (QIAO_BLESS=1 writes it)", path.display()));
    if expected != actual {
        let at = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the output at line {} (QIAO_BLESS=1 rewrites it)\n--- expected\n{}\n--- actual\n{}",
            path.display(),
            at + 1,
            expected.lines().nth(at).unwrap_or("<end>"),
            actual.lines().nth(at).unwrap_or("<end>")
        );
    }
}

/// Stores `token` as an API token of `user` (no expiry), made at time 1 by the system; returns it.
pub fn api_token(store: &dyn HubStore, token: &str, user: &str) -> String {
    store
        .put_token(
            &qiao_hub::model::TokenRecord {
                hash: qiao_hub::util::token_hash(token),
                user_id: uid(user),
                kind: qiao_hub::model::TokenKind::Api,
                created_at: 1,
                expires_at: None,
                label: None,
                minted_by: None,
            },
            "token.create",
            &qiao_hub::audit::Actor::System,
            1,
        )
        .expect("put token");
    token.to_owned()
}

/// A site enrolled through the API, with a one-time token `admin` (a client of an
/// administrator) asks for.
pub fn enrolled_site(admin: &qiao_hub::client::HubClient, hub_url: &str, id: &str) -> FakeSite {
    let t = admin
        .raw(
            "POST",
            &format!("/api/v1/sites/{id}/enrollment-token"),
            None,
        )
        .unwrap();
    assert_eq!(t.status, 201, "{}", String::from_utf8_lossy(&t.body));
    let token = t.json()["token"].as_str().unwrap().to_owned();
    let mut s = FakeSite::new(id, hub_url);
    let r = s.enroll(&token);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    s
}
