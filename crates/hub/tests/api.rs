//! The HTTP API on loopback: enrollment, the signed poll/result protocol, rejected messages,
//! body limits, login rate limit, the role × endpoint matrix, TLS.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use qiao_hub::api::HubConfig;
use qiao_hub::audit::Actor;
use qiao_hub::client::HubClient;
use qiao_hub::model::{TokenKind, TokenRecord};
use qiao_hub::protocol::{Envelope, JobId, MessageKind, Nonce, QueryType, Signer, UserRole};
use qiao_hub::util::{now, token_hash};
use qiao_hub::view::{JobView, NetworkTotals, SiteStatus};
use qiao_hub::{BackgroundHub, HubStore};
use serde_json::json;

const ROLES: [(&str, UserRole); 6] = [
    ("admin", UserRole::AllianceAdmin),
    ("carol", UserRole::CommitteeMember),
    ("alice", UserRole::SponsorResearcher),
    ("steve", UserRole::SiteDataSteward),
    ("ivan", UserRole::SiteInvestigator),
    ("audrey", UserRole::Auditor),
];

struct World {
    _ts: TestStore,
    store: Arc<dyn HubStore>,
    hub: BackgroundHub,
    tokens: Vec<(String, String)>,
}

impl World {
    fn new() -> Self {
        Self::with(HubConfig::default())
    }

    fn with(config: HubConfig) -> Self {
        let ts = redb();
        let store = ts.store.clone();
        let sys = Actor::System;
        store.create_site(&site("h1"), &sys, 1).unwrap();
        store.create_site(&site("h2"), &sys, 1).unwrap();
        let mut tokens = Vec::new();
        for (name, role) in ROLES {
            store.create_user(&user(name, role), &sys, 1).unwrap();
            let token = api_token(store.as_ref(), &format!("qiao-t-test-{name}"), name);
            tokens.push((name.to_owned(), token));
        }
        store
            .create_project(&project("p1", true, &["alice", "steve", "ivan"]), &sys, 1)
            .unwrap();
        store
            .create_project(&project("p2", false, &["alice"]), &sys, 1)
            .unwrap();
        let hub = start_hub(store.clone(), config);
        Self {
            _ts: ts,
            store,
            hub,
            tokens,
        }
    }

    fn client(&self, name: &str) -> HubClient {
        let t = &self.tokens.iter().find(|(n, _)| n == name).unwrap().1;
        HubClient::new(&self.hub.url(), None).unwrap().with_token(t)
    }

    fn anon(&self) -> HubClient {
        HubClient::new(&self.hub.url(), None).unwrap()
    }

    /// A site enrolled through the API with a token issued through the API.
    fn enrolled_site(&self, id: &str) -> FakeSite {
        common::enrolled_site(&self.client("admin"), &self.hub.url(), id)
    }

    fn submit(
        &self,
        who: &str,
        project: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let r = self
            .client(who)
            .raw(
                "POST",
                &format!("/api/v1/projects/{project}/queries"),
                Some(body.to_string().as_bytes()),
            )
            .unwrap();
        (r.status, r.json())
    }
}

fn query() -> serde_json::Value {
    json!({"query_type": "cohort_count", "definition": definition()})
}

#[test]
fn enrollment_poll_result_round_trip() {
    let w = World::new();
    let mut h1 = w.enrolled_site("h1");
    let mut h2 = w.enrolled_site("h2");
    // The token is one-time.
    let t = w
        .client("admin")
        .raw("POST", "/api/v1/sites/h1/enrollment-token", None)
        .unwrap()
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut again = FakeSite::new("h1", &w.hub.url());
    assert_eq!(again.enroll(&t).status, 200, "a new token re-keys the site");
    let r = FakeSite::new("h1", &w.hub.url()).enroll(&t);
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (409, Some("token_used"))
    );
    // The old key of h1 no longer verifies; the new one does.
    let r = h1.post_envelope("/api/v1/site/poll?wait_secs=0", &h1.poll_envelope());
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (401, Some("unknown_signer"))
    );
    h1 = again;

    // Nothing pending: 204 after the wait.
    let start = Instant::now();
    assert_eq!(h1.poll(1), None);
    assert!(start.elapsed() >= Duration::from_millis(900));

    // A waiting poll is woken by a submission.
    let url = w.hub.url();
    let waiter = std::thread::spawn(move || {
        let start = Instant::now();
        let job = h2.poll(20);
        (h2, job, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = w.submit("alice", "p1", query());
    assert_eq!(status, 201, "{body}");
    let job_id: JobId = body["job_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(body["sites"], json!(["h1", "h2"]));
    let (mut h2, job, waited) = waiter.join().unwrap();
    let job = job.expect("job delivered to the waiting poll");
    assert!(
        waited < Duration::from_secs(5),
        "long poll woke after {waited:?}"
    );
    assert_eq!(job.job_id, job_id);
    assert_eq!(job.project_id.as_str(), "p1");
    assert_eq!(job.query, QueryType::CohortCount);
    assert_eq!(job.definition, definition());
    assert_eq!(job.requested_by.user_id.as_str(), "alice");
    let _ = url;

    // h1 gets the same job; polling again before the redelivery time gives nothing.
    let j1 = h1.poll(0).expect("job for h1");
    assert_eq!(j1.job_id, job_id);
    assert_eq!(h1.poll(0), None);

    // Partial results: h1 done, h2 pending.
    h1.post_result(&cohort_result(&job_id, &h1.id, 120, 100));
    let v: JobView = w.client("alice").job(&job_id).unwrap();
    assert!(!v.complete);
    assert_eq!(v.sites[0].status, SiteStatus::Done);
    assert_eq!(v.sites[1].status, SiteStatus::Pending);
    assert_eq!(v.sites[1].deliveries, 1);
    // A duplicate result is acknowledged and not stored twice.
    h1.post_result(&cohort_result(&job_id, &h1.id, 999, 999));
    h2.post_result(&cohort_result(&job_id, &h2.id, 5, 3));
    let v = w.client("alice").job(&job_id).unwrap();
    assert!(v.complete);
    assert_eq!(w.store.results(&job_id).unwrap().len(), 2);
    let NetworkTotals::CohortCount {
        sites_done,
        entries,
        final_persons,
        rules,
        ..
    } = &v.total
    else {
        panic!("cohort totals expected")
    };
    assert_eq!(*sites_done, 2);
    // 120 exact + "< 10": point sum 120, true total in [120, 129]; never subtracted.
    assert_eq!(
        (entries.point_sum, entries.low, entries.high),
        (120, 120, Some(129))
    );
    assert_eq!(entries.display, "120 (between 120 and 129)");
    assert_eq!(
        (final_persons.point_sum, final_persons.high),
        (100, Some(109))
    );
    assert_eq!(rules[0].name, "Age >= 18");
    assert_eq!(rules[0].persons.suppressed_sites, 1);
    assert_eq!(
        v.sites[0].disclosure,
        vec!["minimum cell count 10".to_owned()]
    );
    let table = qiao_hub::report::to_table(&v);
    assert!(table.contains("120 (between 120 and 129)"), "{table}");
    let j = qiao_hub::report::to_json(&v);
    assert_eq!(j["sites"][0]["entries"], "120");
    assert_eq!(j["sites"][1]["entries"], "< 10");
    assert_eq!(j["total"]["entries"], "120 (between 120 and 129)");
    // Answered: no more deliveries.
    assert_eq!(h1.poll(0), None);

    // The audit log tells the story.
    let audit = w
        .client("audrey")
        .raw("GET", "/api/v1/audit", None)
        .unwrap()
        .json();
    assert_eq!(audit["verified"]["ok"], true);
    let actions: Vec<String> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["actor"].as_str().unwrap(),
                e["action"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "site:h1 site.enroll",
        "user:alice job.submit",
        "site:h2 job.deliver",
        "site:h1 result.receive",
        "site:h2 result.receive",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} in {actions:?}"
        );
    }
    assert_eq!(
        actions
            .iter()
            .filter(|a| a.ends_with("result.receive"))
            .count(),
        2
    );
}

#[test]
fn redelivery_after_the_interval() {
    let w = World::with(HubConfig {
        redeliver_secs: 1,
        ..HubConfig::default()
    });
    let mut h1 = w.enrolled_site("h1");
    let (_, body) = w.submit(
        "alice",
        "p1",
        json!({"query_type": "cohort_count", "definition": definition(), "sites": ["h1"]}),
    );
    let id = body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(h1.poll(0).unwrap().job_id.to_string(), id);
    // "Crash": the site lost the job; it polls again and gets it back within the interval.
    let start = Instant::now();
    assert_eq!(h1.poll(5).unwrap().job_id.to_string(), id);
    assert!(start.elapsed() < Duration::from_secs(4));
}

#[test]
fn a_polls_status_is_recorded_and_served() {
    let w = World::new();
    let h1 = w.enrolled_site("h1");
    let _h2 = w.enrolled_site("h2");
    let sites = |w: &World| -> serde_json::Value {
        w.client("alice")
            .call("GET", "/api/v1/sites", None)
            .unwrap()
    };
    let find = |v: &serde_json::Value, id: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .cloned()
            .unwrap()
    };
    // Before any poll: no last-seen time, no status.
    let v = sites(&w);
    assert_eq!(find(&v, "h1")["last_seen"], serde_json::Value::Null);
    assert_eq!(find(&v, "h1")["status"], serde_json::Value::Null);

    // A poll without a status (an older site) is accepted and sets last-seen only.
    let before = now();
    assert_eq!(
        h1.post_envelope("/api/v1/site/poll?wait_secs=0", &h1.poll_envelope())
            .status,
        204
    );
    let v = sites(&w);
    let seen = find(&v, "h1")["last_seen"].as_i64().unwrap();
    assert!(
        seen >= before && seen <= now(),
        "{seen} not in [{before}, now]"
    );
    assert_eq!(find(&v, "h1")["status"], serde_json::Value::Null);

    // A poll with a status: recorded and served as sent.
    let status = qiao_hub::protocol::SiteStatus {
        data_as_of: Some("2019-12-31".into()),
        persons_rounded: 2_700,
        min_cell_count: 11,
        obfuscation: true,
        dp: false,
    };
    let env = h1
        .signer
        .seal_poll_with_status(&h1.id, Some(&status), now())
        .unwrap();
    assert_eq!(
        h1.post_envelope("/api/v1/site/poll?wait_secs=0", &env)
            .status,
        204
    );
    let v = sites(&w);
    let h1v = find(&v, "h1");
    assert_eq!(
        h1v["status"],
        json!({"data_as_of": "2019-12-31", "persons_rounded": 2700, "min_cell_count": 11,
               "obfuscation": true, "dp": false})
    );
    // A later poll without a status keeps the last one; h2 never polled.
    assert_eq!(
        h1.post_envelope("/api/v1/site/poll?wait_secs=0", &h1.poll_envelope())
            .status,
        204
    );
    let v = sites(&w);
    assert_eq!(find(&v, "h1")["status"]["persons_rounded"], 2700);
    assert_eq!(find(&v, "h2")["last_seen"], serde_json::Value::Null);
    assert_eq!(find(&v, "h2")["status"], serde_json::Value::Null);

    // A status with an unknown field is a malformed body.
    let bad = h1.signer.seal(
        MessageKind::Poll,
        None,
        h1.id.clone(),
        r#"{"status":{"data_as_of":null,"persons_rounded":0,"min_cell_count":5,"obfuscation":false,"dp":false,"rows":[1]}}"#.into(),
        Nonce::random(),
        now(),
    );
    assert!(
        bad.is_err(),
        "the signer refuses a body the hub would refuse"
    );
}

#[test]
fn bad_envelopes_are_rejected() {
    let w = World::new();
    let mut h1 = w.enrolled_site("h1");
    let h2 = w.enrolled_site("h2");
    let (_, body) = w.submit(
        "alice",
        "p1",
        json!({"query_type": "cohort_count", "definition": definition(), "sites": ["h2"]}),
    );
    let job_id: JobId = body["job_id"].as_str().unwrap().parse().unwrap();
    let code = |r: qiao_hub::client::RawResponse| (r.status, r.error_code().unwrap_or_default());

    // Replay: the same poll twice.
    let env = h1.poll_envelope();
    assert_eq!(
        h1.post_envelope("/api/v1/site/poll?wait_secs=0", &env)
            .status,
        204
    );
    assert_eq!(
        code(h1.post_envelope("/api/v1/site/poll?wait_secs=0", &env)),
        (409, "replay".into())
    );
    // Forged: altered after signing.
    let mut forged = h1.poll_envelope();
    forged.timestamp += 1;
    assert_eq!(
        code(h1.post_envelope("/api/v1/site/poll", &forged)),
        (401, "bad_signature".into())
    );
    // Expired.
    let old = h1.signer.seal_poll(&h1.id, now() - 3600).unwrap();
    assert_eq!(
        code(h1.post_envelope("/api/v1/site/poll", &old)),
        (401, "expired".into())
    );
    let future = h1.signer.seal_poll(&h1.id, now() + 3600).unwrap();
    assert_eq!(
        code(h1.post_envelope("/api/v1/site/poll", &future)),
        (401, "from_the_future".into())
    );
    // Wrong site: h1's key claiming to be h2.
    let imp = h1
        .signer
        .seal(
            MessageKind::Poll,
            None,
            h2.id.clone(),
            "{}".into(),
            Nonce::random(),
            now(),
        )
        .unwrap();
    assert_eq!(
        code(h1.post_envelope("/api/v1/site/poll", &imp)),
        (403, "wrong_site".into())
    );
    // Wrong site: h1 answering a job that was sent to h2 only.
    let res = cohort_result(&job_id, &h1.id, 50, 40);
    let env = h1.signer.seal_result(&res, now()).unwrap();
    assert_eq!(
        code(h1.post_envelope("/api/v1/site/result", &env)),
        (403, "wrong_site".into())
    );
    // Unknown job.
    let env = h1
        .signer
        .seal_result(&cohort_result(&JobId::random(), &h1.id, 50, 40), now())
        .unwrap();
    assert_eq!(
        code(h1.post_envelope("/api/v1/site/result", &env)),
        (404, "unknown_job".into())
    );
    // An unenrolled key.
    let stranger = Signer::generate();
    let env = stranger.seal_poll(&h1.id, now()).unwrap();
    assert_eq!(
        code(h1.post_envelope("/api/v1/site/poll", &env)),
        (401, "unknown_signer".into())
    );
    // A hub-kind message signed by a site, and the wrong kind for the endpoint.
    let env = h2
        .signer
        .seal_result(&cohort_result(&job_id, &h2.id, 50, 40), now())
        .unwrap();
    assert_eq!(
        code(h2.post_envelope("/api/v1/site/poll", &env)),
        (400, "wrong_kind".into())
    );
    // Not an envelope.
    let r = h1
        .client
        .raw("POST", "/api/v1/site/poll", Some(b"{\"v\":1}"))
        .unwrap();
    assert_eq!(code(r), (400, "malformed_envelope".into()));
    // A hub-signed job replayed back to the hub is refused.
    let job_env: Envelope = {
        let r = h2.post_envelope("/api/v1/site/poll?wait_secs=0", &h2.poll_envelope());
        assert_eq!(r.status, 200);
        Envelope::from_json(&r.body).unwrap()
    };
    let r = h1.post_envelope("/api/v1/site/result", &job_env);
    assert_eq!(code(r), (400, "wrong_kind".into()));
    // The genuine result is still accepted afterwards, and nothing was stored before.
    assert_eq!(w.store.results(&job_id).unwrap().len(), 0);
    let mut h2 = h2;
    h2.post_result(&cohort_result(&job_id, &h2.id, 50, 40));
    assert_eq!(w.store.results(&job_id).unwrap().len(), 1);
    let _ = &mut h1;
}

#[test]
fn bodies_are_validated() {
    let w = World::new();
    let _h1 = w.enrolled_site("h1");
    let alice = w.client("alice");
    let big = vec![b'a'; 3 * 1024 * 1024];
    // The hub answers 413 as soon as the declared length is over the limit and closes the
    // connection; a client still writing the body may see that as a broken pipe instead of the
    // answer. Either way the body was refused; when the answer arrives it must be the clear error.
    match alice.raw("POST", "/api/v1/projects/p1/queries", Some(&big)) {
        Ok(r) => {
            assert_eq!(
                (r.status, r.error_code().unwrap()),
                (413, "body_too_large".into())
            );
            assert!(r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("2097152"));
        }
        Err(e) => {
            let msg = format!("{e:?}");
            assert!(
                msg.contains("Broken pipe") || msg.contains("reset"),
                "oversized body: {msg}"
            );
        }
    }
    let huge_def =
        json!({"query_type": "cohort_count", "definition": {"x": "y".repeat(1_500_000)}});
    let (s, b) = w.submit("alice", "p1", huge_def);
    assert_eq!(
        (s, b["error"]["code"].as_str().unwrap()),
        (413, "definition_too_large")
    );
    let (s, b) = w.submit(
        "alice",
        "p1",
        json!({"query_type": "cohort_count", "definition": [1, 2]}),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str().unwrap()),
        (422, "invalid_definition")
    );
    let (s, b) = w.submit(
        "alice",
        "p1",
        json!({"query_type": "patient_list", "definition": {}}),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str().unwrap()),
        (422, "invalid_query_type")
    );
    let (s, b) = w.submit(
        "alice",
        "p1",
        json!({"query_type": "cohort_count", "definition": {}, "extra": 1}),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str().unwrap()),
        (422, "invalid_body")
    );
    let (s, b) = w.submit(
        "alice",
        "p1",
        json!({"query_type": "cohort_count", "definition": {}, "sites": ["nowhere"]}),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str().unwrap()),
        (422, "unknown_site")
    );
    let r = alice
        .raw("POST", "/api/v1/projects/p1/queries", Some(b"{not json"))
        .unwrap();
    assert_eq!(
        (r.status, r.error_code().unwrap()),
        (400, "invalid_json".into())
    );
    // Injection attempts in identifiers are refused before any SQL, in bodies as values.
    let r = alice
        .raw(
            "GET",
            "/api/v1/projects/p1';DROP%20TABLE%20projects;--",
            None,
        )
        .unwrap();
    assert_eq!(
        (r.status, r.error_code().unwrap()),
        (400, "invalid_id".into())
    );
    let admin = w.client("admin");
    let r = admin
        .raw("POST", "/api/v1/users", Some(json!({"id": "x'; DROP TABLE users;--", "password": "long enough passphrase", "role": "auditor"}).to_string().as_bytes()))
        .unwrap();
    assert_eq!(r.status, 422);
    let r = admin
        .raw("POST", "/api/v1/users", Some(json!({"id": "bobby", "password": "long enough passphrase", "role": "sponsor_researcher", "institution": "x'); DROP TABLE users;--"}).to_string().as_bytes()))
        .unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(w.store.users().unwrap().len(), 7);
    // Demographics needs a sane band.
    let (s, _) = w.submit(
        "alice",
        "p1",
        json!({"query_type": "demographics", "definition": {}, "age_band_years": 0}),
    );
    assert_eq!(s, 422);
    let (s, _) = w.submit("alice", "p1", json!({"query_type": "demographics", "definition": {}, "age_band_years": 5, "by_index_year": true}));
    assert_eq!(s, 201);
    // Unapproved project, non-member.
    let (s, b) = w.submit("alice", "p2", query());
    assert_eq!(
        (s, b["error"]["code"].as_str().unwrap()),
        (403, "project_not_approved")
    );
    w.store
        .create_user(&user("zed", UserRole::SponsorResearcher), &Actor::System, 1)
        .unwrap();
    w.store
        .put_token(
            &TokenRecord {
                hash: token_hash("qiao-t-zed"),
                user_id: uid("zed"),
                kind: TokenKind::Api,
                created_at: 1,
                expires_at: None,
                label: None,
                minted_by: None,
            },
            "token.create",
            &Actor::System,
            1,
        )
        .unwrap();
    let zed = HubClient::new(&w.hub.url(), None)
        .unwrap()
        .with_token("qiao-t-zed");
    let r = zed
        .raw(
            "POST",
            "/api/v1/projects/p1/queries",
            Some(query().to_string().as_bytes()),
        )
        .unwrap();
    assert_eq!(
        (r.status, r.error_code().unwrap()),
        (403, "forbidden".into())
    );
}

#[test]
fn login_sessions_and_rate_limit() {
    let w = World::new();
    let anon = w.anon();
    let s = anon.login("alice", PASSWORD).unwrap();
    assert!(s.token.starts_with("qiao-s-"));
    let me: serde_json::Value = anon
        .clone()
        .with_token(&s.token)
        .call("GET", "/api/v1/me", None)
        .unwrap();
    assert_eq!(me["role"], "sponsor_researcher");
    let api = anon
        .clone()
        .with_token(&s.token)
        .create_api_token(Some("laptop"))
        .unwrap();
    assert!(api.token.starts_with("qiao-t-"));
    // API tokens expire: 30 days unless asked otherwise.
    let expiry = api.expires_at.expect("an API token expires");
    assert!((expiry - now() - 30 * 86_400).abs() <= 5, "{expiry}");
    let r = anon
        .clone()
        .with_token("qiao-t-forged")
        .raw("GET", "/api/v1/me", None)
        .unwrap();
    assert_eq!(r.status, 401);
    for _ in 0..5 {
        let r = anon
            .raw(
                "POST",
                "/api/v1/login",
                Some(br#"{"username":"alice","password":"wrong password"}"#),
            )
            .unwrap();
        assert_eq!(
            (r.status, r.error_code().unwrap()),
            (401, "invalid_credentials".into())
        );
    }
    // Locked for this user and address, even with the right password.
    let body = json!({"username": "alice", "password": PASSWORD}).to_string();
    let r = anon
        .raw("POST", "/api/v1/login", Some(body.as_bytes()))
        .unwrap();
    assert_eq!(
        (r.status, r.error_code().unwrap()),
        (429, "rate_limited".into())
    );
    // Other users are not affected; unknown users get the same answer as a wrong password.
    assert!(anon.login("ivan", PASSWORD).is_ok());
    let r = anon
        .raw(
            "POST",
            "/api/v1/login",
            Some(br#"{"username":"nobody","password":"whatever1"}"#),
        )
        .unwrap();
    assert_eq!(
        (r.status, r.error_code().unwrap()),
        (401, "invalid_credentials".into())
    );
}

#[test]
fn logout_revokes_the_presented_token_only() {
    let w = World::new();
    let anon = w.anon();
    let first = anon.login("alice", PASSWORD).unwrap().token;
    let second = anon.login("alice", PASSWORD).unwrap().token;
    let as_ = |t: &str| anon.clone().with_token(t);
    let api = as_(&first).create_api_token(Some("cli")).unwrap().token;
    for t in [&first, &second, &api] {
        assert_eq!(as_(t).raw("GET", "/api/v1/me", None).unwrap().status, 200);
    }
    let r = as_(&first).raw("POST", "/api/v1/logout", None).unwrap();
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, json!("logged_out"))
    );
    // The presented session is gone, for every endpoint and for logging out again.
    let r = as_(&first).raw("GET", "/api/v1/me", None).unwrap();
    assert_eq!(
        (r.status, r.error_code()),
        (401, Some("unauthorized".into()))
    );
    let r = as_(&first).raw("POST", "/api/v1/logout", None).unwrap();
    assert_eq!(r.status, 401);
    let r = as_(&first)
        .raw(
            "POST",
            "/api/v1/projects/p1/queries",
            Some(query().to_string().as_bytes()),
        )
        .unwrap();
    assert_eq!(r.status, 401);
    // The user's other session and API token still work; an API token can be revoked too.
    assert_eq!(
        as_(&second).raw("GET", "/api/v1/me", None).unwrap().status,
        200
    );
    assert_eq!(
        as_(&api)
            .raw("POST", "/api/v1/logout", None)
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        as_(&api).raw("GET", "/api/v1/me", None).unwrap().status,
        401
    );
    assert_eq!(
        as_(&second).raw("GET", "/api/v1/me", None).unwrap().status,
        200
    );
    // Revocations are audited, as the user.
    let audit = w
        .client("audrey")
        .raw("GET", "/api/v1/audit", None)
        .unwrap()
        .json();
    let revokes: Vec<String> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "token.revoke")
        .map(|e| format!("{} {}", e["actor"], e["decision"]))
        .collect();
    assert_eq!(revokes.len(), 2, "{revokes:?}");
    assert!(
        revokes[0].contains("alice") && revokes[0].contains("session"),
        "{revokes:?}"
    );
    assert!(revokes[1].contains("api token"), "{revokes:?}");
}

/// Each row: method, path, body, and per role in ROLES order `A` (allowed) or `-` (403).
/// Members of p1: alice (sponsor), steve (steward), ivan (investigator). Anonymous: always 401.
const MATRIX: &[(&str, &str, &str, &str)] = &[
    ("GET", "/api/v1/me", "", "AAAAAA"),
    ("GET", "/api/v1/tokens", "", "AAAAAA"),
    ("POST", "/api/v1/tokens", "{}", "AAAAAA"),
    ("GET", "/api/v1/users", "", "A-----"),
    (
        "POST",
        "/api/v1/users",
        r#"{"id":"new-{role}","password":"long enough passphrase","role":"auditor"}"#,
        "A-----",
    ),
    ("GET", "/api/v1/sites", "", "AAAAAA"),
    ("POST", "/api/v1/sites", r#"{"id":"site-{role}"}"#, "A-----"),
    ("POST", "/api/v1/sites/h2/enrollment-token", "", "A-----"),
    ("GET", "/api/v1/projects", "", "AAAAAA"),
    (
        "POST",
        "/api/v1/projects",
        r#"{"id":"proj-{role}","title":"T"}"#,
        "A-----",
    ),
    ("GET", "/api/v1/projects/p1", "", "AAAAAA"),
    ("POST", "/api/v1/projects/p1/approve", "", "AA----"),
    (
        "POST",
        "/api/v1/projects/p1/members",
        r#"{"user":"alice"}"#,
        "A-----",
    ),
    (
        "POST",
        "/api/v1/projects/p1/queries",
        r#"{"query_type":"cohort_count","definition":{}}"#,
        "--A-A-",
    ),
    ("GET", "/api/v1/jobs/{job}", "", "A-AAAA"),
    ("GET", "/api/v1/audit", "", "-----A"),
    // Revokes the caller's token: keep it last.
    ("POST", "/api/v1/logout", "", "AAAAAA"),
];

#[test]
fn authorization_matrix() {
    let w = World::new();
    let _h1 = w.enrolled_site("h1");
    let (s, b) = w.submit("alice", "p1", query());
    assert_eq!(s, 201);
    let job = b["job_id"].as_str().unwrap().to_owned();
    let mut failures = Vec::new();
    for (method, path, body, expected) in MATRIX {
        let path = path.replace("{job}", &job);
        assert_eq!(expected.len(), ROLES.len());
        for ((name, role), want) in ROLES.iter().zip(expected.chars()) {
            let role_name = qiao_hub::model::role_name(*role);
            let body = body.replace("{role}", &role_name.replace('_', "-"));
            let body = (!body.is_empty()).then_some(body.as_bytes());
            let r = w.client(name).raw(method, &path, body).unwrap();
            let ok = match want {
                'A' => (200..300).contains(&r.status),
                _ => r.status == 403,
            };
            if !ok {
                failures.push(format!(
                    "{method} {path} as {role_name}: expected {}, got {} {}",
                    if want == 'A' { "2xx" } else { "403" },
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
            }
        }
        let r = w
            .anon()
            .raw(
                method,
                &path,
                body.is_empty()
                    .then_some(&b""[..])
                    .or(Some(body.as_bytes())),
            )
            .unwrap();
        if r.status != 401 {
            failures.push(format!(
                "{method} {path} anonymous: expected 401, got {}",
                r.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tls_only_with_the_right_ca() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert_path = dir.path().join("hub.crt");
    let key_path = dir.path().join("hub.key");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let tls = qiao_hub::serve::tls_config(&cert_path, &key_path).unwrap();
    let ts = redb();
    let hub = BackgroundHub::start(
        ts.store.clone(),
        HubConfig::default(),
        qiao_hub::Listen {
            addr: "127.0.0.1:0".parse().unwrap(),
            tls: Some(tls),
        },
    )
    .unwrap();
    assert!(hub.url().starts_with("https://"));
    let good = HubClient::new(&hub.url(), Some(&cert_path)).unwrap();
    let v: serde_json::Value = good.call("GET", "/api/v1/health", None).unwrap();
    assert_eq!(v["status"], "ok");
    let untrusting = HubClient::new(&hub.url(), None).unwrap();
    assert!(matches!(
        untrusting.raw("GET", "/api/v1/health", None),
        Err(qiao_hub::ClientError::Transport(_))
    ));
    let plain = HubClient::new(&hub.url().replace("https", "http"), None).unwrap();
    assert!(plain
        .raw("GET", "/api/v1/health", None)
        .map(|r| r.status != 200)
        .unwrap_or(true));
}

// ---- security hardening (issue 19) -------------------------------------------------------------

fn login_raw(anon: &HubClient, user: &str, password: &str) -> qiao_hub::client::RawResponse {
    let body = json!({"username": user, "password": password}).to_string();
    anon.raw("POST", "/api/v1/login", Some(body.as_bytes()))
        .unwrap()
}

fn audit_entries(w: &World) -> Vec<serde_json::Value> {
    let r = w
        .client("audrey")
        .raw("GET", "/api/v1/audit", None)
        .unwrap();
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["verified"]["ok"], json!(true), "{v}");
    v["entries"].as_array().unwrap().clone()
}

fn with_action<'a>(entries: &'a [serde_json::Value], action: &str) -> Vec<&'a serde_json::Value> {
    entries.iter().filter(|e| e["action"] == action).collect()
}

#[test]
fn api_tokens_expire_list_revoke_and_disable() {
    let w = World::new();
    let anon = w.anon();
    let session = anon.login("alice", PASSWORD).unwrap().token;
    let alice = anon.clone().with_token(&session);
    // Lifetimes: 30 days by default, at most 365; 0, 366 and 2^32-1 days are refused.
    for (days, status) in [
        (json!(365), 201),
        (json!(0), 422),
        (json!(366), 422),
        (json!(4_294_967_295u64), 422),
    ] {
        let body = json!({"label": "x", "expires_in_days": days}).to_string();
        let r = alice
            .raw("POST", "/api/v1/tokens", Some(body.as_bytes()))
            .unwrap();
        assert_eq!(
            r.status,
            status,
            "{days}: {}",
            String::from_utf8_lossy(&r.body)
        );
        if status == 201 {
            let e = r.json()["expires_at"].as_i64().unwrap();
            assert!((e - now() - 365 * 86_400).abs() <= 5);
        }
    }
    let cli = alice.create_api_token(Some("cli")).unwrap().token;
    let laptop = alice.create_api_token(Some("laptop")).unwrap().token;
    // The list: the session (current) and the three API tokens minted from it; no secrets.
    let r = alice.raw("GET", "/api/v1/tokens", None).unwrap();
    assert_eq!(r.status, 200);
    let list = r.json();
    let list = list.as_array().unwrap();
    assert!(
        !r.body.windows(7).any(|w| w == b"qiao-t-"),
        "no secrets in the list"
    );
    let session_id = qiao_hub::model::token_id(&token_hash(&session));
    let sessions: Vec<_> = list.iter().filter(|t| t["kind"] == "session").collect();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        (sessions[0]["id"].as_str(), sessions[0]["current"].as_bool()),
        (Some(session_id.as_str()), Some(true))
    );
    let api: Vec<_> = list.iter().filter(|t| t["kind"] == "api").collect();
    // The fixture's test token has no parent; the three new ones name the session.
    assert_eq!(
        api.iter()
            .filter(|t| t["minted_by"] == json!(session_id))
            .count(),
        3
    );
    assert_eq!(api.len(), 4);
    // Revoke one by id: it stops at once; another user's id is not found.
    let laptop_id = qiao_hub::model::token_id(&token_hash(&laptop));
    let r = alice
        .raw("DELETE", &format!("/api/v1/tokens/{laptop_id}"), None)
        .unwrap();
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, json!("revoked"))
    );
    assert_eq!(
        anon.clone()
            .with_token(&laptop)
            .raw("GET", "/api/v1/me", None)
            .unwrap()
            .status,
        401
    );
    let ivans = qiao_hub::model::token_id(&token_hash("qiao-t-test-ivan"));
    let r = alice
        .raw("DELETE", &format!("/api/v1/tokens/{ivans}"), None)
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        w.client("ivan")
            .raw("GET", "/api/v1/me", None)
            .unwrap()
            .status,
        200
    );
    // Signing out names the API tokens of the session that stay valid.
    let r = alice.raw("POST", "/api/v1/logout", None).unwrap();
    assert_eq!(r.status, 200);
    let mut still: Vec<String> = r.json()["api_tokens_still_valid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["label"].as_str().unwrap().to_owned())
        .collect();
    still.sort();
    assert_eq!(still, ["cli", "x"]);
    let cli_client = anon.clone().with_token(&cli);
    assert_eq!(
        cli_client.raw("GET", "/api/v1/me", None).unwrap().status,
        200
    );
    // Only an administrator disables an account.
    let r = w
        .client("carol")
        .raw("POST", "/api/v1/users/alice/disable", None)
        .unwrap();
    assert_eq!(r.status, 403);
    // Disabled: every token and session stops at once, and the password no longer signs in.
    let second = anon.login("alice", PASSWORD).unwrap().token;
    let r = w
        .client("admin")
        .raw("POST", "/api/v1/users/alice/disable", None)
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The fixture token, the 365-day and cli tokens, and the second session.
    assert_eq!(r.json()["tokens_revoked"], json!(4));
    for t in [cli.as_str(), second.as_str(), "qiao-t-test-alice"] {
        let r = anon
            .clone()
            .with_token(t)
            .raw("GET", "/api/v1/me", None)
            .unwrap();
        assert_eq!(r.status, 401, "{t}");
    }
    let r = login_raw(&anon, "alice", PASSWORD);
    assert_eq!(
        (r.status, r.error_code()),
        (403, Some("account_disabled".into()))
    );
    // Enabled again: the password works; the revoked tokens stay revoked.
    let r = w
        .client("admin")
        .raw(
            "POST",
            "/api/v1/users/alice/disable",
            Some(br#"{"disabled": false}"#),
        )
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(anon.login("alice", PASSWORD).is_ok());
    assert_eq!(
        cli_client.raw("GET", "/api/v1/me", None).unwrap().status,
        401
    );
    let entries = audit_entries(&w);
    assert_eq!(with_action(&entries, "user.disable").len(), 1);
    assert_eq!(with_action(&entries, "user.enable").len(), 1);
}

#[test]
fn parallel_wrong_passwords_are_limited_atomically() {
    let w = World::new();
    let url = w.hub.url();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..30)
            .map(|_| {
                let url = url.clone();
                s.spawn(move || {
                    let anon = HubClient::new(&url, None).unwrap();
                    login_raw(&anon, "alice", "wrong password guess").status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let refused_by_password = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((refused_by_password, limited), (5, 25), "{statuses:?}");
    // The right password is refused too, until the window passes.
    assert_eq!(login_raw(&w.anon(), "alice", PASSWORD).status, 429);
    // Every refusal is audited, never with the password.
    let entries = audit_entries(&w);
    let logins = with_action(&entries, "user.login");
    let decided = |prefix: &str| {
        logins
            .iter()
            .filter(|e| {
                e["actor"] == "user:alice" && e["decision"].as_str().unwrap().starts_with(prefix)
            })
            .count()
    };
    assert_eq!(decided("failed: wrong password"), 5);
    assert_eq!(decided("rate_limited"), 26);
    // Unknown users are recorded as such.
    assert_eq!(
        login_raw(&w.anon(), "mallory", "some guess at all").status,
        401
    );
    assert_eq!(
        login_raw(&w.anon(), "not a valid id!", "some guess at all").status,
        401
    );
    let entries = audit_entries(&w);
    let unknown: Vec<_> = with_action(&entries, "user.login")
        .into_iter()
        .filter(|e| {
            e["decision"]
                .as_str()
                .unwrap()
                .starts_with("failed: unknown user")
        })
        .map(|e| e["actor"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(unknown, ["user:mallory", "user:not a valid id!"]);
    let all = serde_json::to_string(&entries).unwrap();
    assert!(!all.contains("wrong password guess") && !all.contains("some guess at all"));
    // The address is limited across accounts: 20 failures from one address in a minute.
    let anon = w.anon();
    let mut last = 0;
    for i in 0..20 {
        last = login_raw(&anon, &format!("user{i}"), "wrong password guess").status;
    }
    assert_eq!(
        last, 429,
        "address limit reached by the 15 + 5 earlier failures"
    );
}

#[test]
fn passwords_are_checked_against_the_policy() {
    let w = World::new();
    let admin = w.client("admin");
    let create = |id: &str, password: &str| {
        let body = json!({"id": id, "password": password, "role": "auditor"}).to_string();
        admin
            .raw("POST", "/api/v1/users", Some(body.as_bytes()))
            .unwrap()
    };
    for (password, why) in [
        ("elevenchars", "at least 12 characters"),
        ("                ", "only spaces"),
        ("my name is Lovelace", "user name"),
        ("Password2024!", "too common"),
        ("qwertyuiop123", "too common"),
    ] {
        let r = create("lovelace", password);
        assert_eq!(
            (r.status, r.error_code()),
            (422, Some("weak_password".into())),
            "{password}"
        );
        let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(msg.contains(why), "{password}: {msg}");
    }
    assert_eq!(create("lovelace", "analytical engine notes").status, 201);
}

#[test]
fn submission_quotas_and_definition_size() {
    let w = World::with(HubConfig {
        quotas: qiao_hub::store::Quotas {
            per_user: 3,
            per_project: 4,
            period_secs: 3600,
        },
        ..HubConfig::default()
    });
    let _h1 = w.enrolled_site("h1");
    let body = json!({"query_type": "cohort_count", "definition": definition()});
    for _ in 0..3 {
        assert_eq!(w.submit("alice", "p1", body.clone()).0, 201);
    }
    let (s, v) = w.submit("alice", "p1", body.clone());
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (429, json!("quota_exceeded")),
        "{v}"
    );
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("user quota of 3"));
    // Another member still has a user quota, but the project's (4) is spent after one more.
    assert_eq!(w.submit("ivan", "p1", body.clone()).0, 201);
    let (s, v) = w.submit("ivan", "p1", body.clone());
    assert_eq!(s, 429);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("project quota of 4"),
        "{v}"
    );
    // Refused submissions store nothing: 4 jobs.
    assert_eq!(w.store.jobs().unwrap().len(), 4);
    let entries = audit_entries(&w);
    let refused = with_action(&entries, "job.submit")
        .into_iter()
        .filter(|e| e["decision"].as_str().unwrap().starts_with("refused"))
        .count();
    assert_eq!(refused, 2);
    // A definition above 512 KiB is refused before any quota or storage.
    let w = World::new();
    let _h1 = w.enrolled_site("h1");
    let big = json!({"query_type": "cohort_count", "definition": {"ConceptSets": [], "Pad": "x".repeat(600 * 1024)}});
    let (s, v) = w.submit("alice", "p1", big);
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (413, json!("definition_too_large"))
    );
    assert_eq!(w.store.jobs().unwrap().len(), 0);
}

#[test]
fn slow_request_bodies_time_out() {
    use std::io::{Read, Write};
    let w = World::with(HubConfig {
        body_timeout: Duration::from_millis(500),
        ..HubConfig::default()
    });
    let mut conn = std::net::TcpStream::connect(w.hub.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(
        b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user",
    )
    .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    let n = conn.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn refusals_and_rejected_messages_are_audited() {
    let w = World::new();
    // A 403 names the caller and what was refused.
    assert_eq!(
        w.client("alice")
            .raw("GET", "/api/v1/users", None)
            .unwrap()
            .status,
        403
    );
    // A failed enrollment (bad token) and an envelope from an unknown key.
    let mut intruder = FakeSite::new("h2", &w.hub.url());
    assert_eq!(intruder.enroll("qiao-e-not-a-real-token").status, 401);
    let env = intruder.poll_envelope();
    assert_eq!(
        intruder
            .post_envelope("/api/v1/site/poll?wait_secs=0", &env)
            .status,
        401
    );
    let entries = audit_entries(&w);
    let denied = with_action(&entries, "access.denied");
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["actor"], "user:alice");
    assert_eq!(denied[0]["decision"], "403 forbidden: GET /api/v1/users");
    let enroll = with_action(&entries, "site.enroll");
    assert_eq!(enroll.len(), 1);
    assert_eq!(enroll[0]["actor"], "unverified");
    assert!(
        enroll[0]["decision"]
            .as_str()
            .unwrap()
            .starts_with("failed: invalid_token"),
        "{}",
        enroll[0]
    );
    let rejected = with_action(&entries, "envelope.reject");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["actor"], "unverified");
    assert!(
        rejected[0]["decision"]
            .as_str()
            .unwrap()
            .contains("claiming site h2"),
        "{}",
        rejected[0]
    );
}

/// The hub stores an identical definition once: 20 submissions of the same ~400 KB definition
/// grow `hub.redb` by about one copy, not 20; every job still reads back with it (for the sites
/// and the sponsor), and jobs with another definition keep theirs.
#[test]
fn a_definition_submitted_twenty_times_is_stored_once() {
    let w = World::with(HubConfig {
        quotas: qiao_hub::store::Quotas {
            per_user: 1000,
            per_project: 1000,
            period_secs: 3600,
        },
        ..HubConfig::default()
    });
    let mut h1 = w.enrolled_site("h1");
    let file = w._ts.dir.as_ref().unwrap().path().join("hub.redb");
    let mut padded = definition();
    padded["Pad"] = json!("x".repeat(400_000));
    let body = json!({"query_type": "cohort_count", "definition": padded.clone()});
    // One submission first, so that what follows measures the repeats only.
    assert_eq!(w.submit("alice", "p1", body.clone()).0, 201);
    let before = std::fs::metadata(&file).unwrap().len();
    let mut ids = Vec::new();
    for _ in 0..20 {
        let (s, v) = w.submit("alice", "p1", body.clone());
        assert_eq!(s, 201, "{v}");
        ids.push(v["job_id"].as_str().unwrap().to_owned());
    }
    let (s, _) = w.submit(
        "alice",
        "p1",
        json!({"query_type": "cohort_count", "definition": definition()}),
    );
    assert_eq!(s, 201);
    let grown = std::fs::metadata(&file).unwrap().len() - before;
    // 20 copies would be 8 MB; the file grows by page allocations, not by copies.
    assert!(
        grown < 2 * 400_000,
        "hub.redb grew by {grown} bytes for 20 submissions of one 400 KB definition"
    );
    let jobs = w.store.jobs().unwrap();
    assert_eq!(jobs.len(), 22);
    assert!(jobs[..21]
        .iter()
        .all(|j| j.job.definition["Pad"].as_str().map(str::len) == Some(400_000)));
    assert_eq!(jobs[21].job.definition, definition());
    // A site receives the whole definition.
    let job = h1.poll(5).expect("a job");
    assert_eq!(job.definition, padded);
}

/// A site's signed audit heads ride in its polls: the hub keeps each new one, refuses one not
/// signed by the site's key, and a head that goes backwards (the site's log truncated or
/// rewritten) is never kept and is audited once.
#[test]
fn site_audit_heads_are_kept_and_backward_heads_audited() {
    use qiao_hub::protocol::{ChainOwner, SignedHead};
    let w = World::new();
    let h1 = w.enrolled_site("h1");
    let owner = ChainOwner::Site(h1.id.clone());
    let send = |head: &SignedHead| {
        let env = h1
            .signer
            .seal_poll_with_head(&h1.id, None, Some(head), now())
            .unwrap();
        let r = h1.post_envelope("/api/v1/site/poll?wait_secs=0", &env);
        assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    };
    let heads = |w: &World| -> Vec<u64> {
        w.store
            .site_heads(&h1.id)
            .unwrap()
            .iter()
            .map(|h| h.seq)
            .collect()
    };
    send(&h1.signer.sign_audit_head(owner.clone(), 5, [5; 32], now()));
    send(&h1.signer.sign_audit_head(owner.clone(), 5, [5; 32], now()));
    send(&h1.signer.sign_audit_head(owner.clone(), 9, [9; 32], now()));
    assert_eq!(heads(&w), [5, 9]);
    // Signed by another key (inside an envelope the site signed): refused.
    let other = Signer::generate();
    send(&other.sign_audit_head(owner.clone(), 12, [12; 32], now()));
    assert_eq!(heads(&w), [5, 9]);
    // Backwards, twice: not kept, audited once.
    for _ in 0..2 {
        send(&h1.signer.sign_audit_head(owner.clone(), 7, [7; 32], now()));
    }
    send(&h1.signer.sign_audit_head(owner.clone(), 9, [1; 32], now()));
    assert_eq!(heads(&w), [5, 9]);
    let entries = audit_entries(&w);
    let conflicts = with_action(&entries, "site.audit_head_conflict");
    assert_eq!(conflicts.len(), 2, "{conflicts:?}");
    assert!(conflicts[0]["decision"]
        .as_str()
        .unwrap()
        .contains("entries #8..#9 of its log were removed"));
    assert!(conflicts[1]["decision"]
        .as_str()
        .unwrap()
        .contains("its log was rewritten"));
}
