//! The storage test suite, run against every backend: redb always, PostgreSQL when QIAO_TEST_PG
//! is set (a fresh schema per test).

mod common;

use common::*;
use qiao_hub::audit::Actor;
use qiao_hub::model::{TokenKind, TokenRecord};
use qiao_hub::protocol::{
    EnrollError, EnrollRequest, Job, JobId, ProjectId, QueryType, Requester, Signer, StoredToken,
    UserRole,
};
use qiao_hub::store::{CallerFault, EnrollFailure, ResultOutcome, SCHEMA_VERSION};
use qiao_hub::{HubStore, StoreError};

const T0: i64 = 1_700_000_000;

fn admin() -> Actor {
    Actor::User("admin".into())
}

fn job(project: &str, user: &str) -> Job {
    Job {
        job_id: JobId::random(),
        project_id: project.parse().unwrap(),
        query: QueryType::CohortCount,
        definition: definition(),
        requested_by: Requester {
            user_id: uid(user),
            role: UserRole::SponsorResearcher,
            organization: "Example Pharma".into(),
        },
        created_at: T0,
        floors: Default::default(),
    }
}

fn for_each_backend(f: impl Fn(&dyn HubStore)) {
    for ts in backends() {
        eprintln!("backend {}", ts.name);
        f(ts.store.as_ref());
    }
}

#[test]
fn schema_is_versioned() {
    for_each_backend(|s| assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION));
}

#[test]
fn users_tokens_and_conflicts() {
    for_each_backend(|s| {
        let alice = user("alice", UserRole::SponsorResearcher);
        s.create_user(&alice, &admin(), T0).unwrap();
        assert!(matches!(
            s.create_user(&alice, &admin(), T0),
            Err(StoreError::Caller(CallerFault::Conflict(_)))
        ));
        assert_eq!(s.user(&uid("alice")).unwrap().unwrap(), alice);
        assert_eq!(s.user(&uid("bob")).unwrap(), None);
        s.create_user(&user("bob", UserRole::Auditor), &admin(), T0)
            .unwrap();
        let ids: Vec<String> = s
            .users()
            .unwrap()
            .iter()
            .map(|u| u.id.to_string())
            .collect();
        assert_eq!(ids, ["alice", "bob"]);
        let tok = TokenRecord {
            hash: qiao_hub::util::token_hash("qiao-t-secret"),
            user_id: uid("alice"),
            kind: TokenKind::Api,
            created_at: T0,
            expires_at: None,
            label: Some("cli".into()),
            minted_by: None,
        };
        s.put_token(&tok, "token.create", &admin(), T0).unwrap();
        assert_eq!(s.token(&tok.hash).unwrap().unwrap(), tok);
        assert_eq!(s.token(&qiao_hub::util::token_hash("other")).unwrap(), None);
        let mut orphan = tok.clone();
        orphan.user_id = uid("nobody");
        assert!(matches!(
            s.put_token(&orphan, "token.create", &admin(), T0),
            Err(StoreError::Caller(CallerFault::NotFound(_)))
        ));
        // Logout: the token is gone, once; the revocation is in the audit chain.
        assert!(s.revoke_token(&tok.hash, &admin(), T0 + 1).unwrap());
        assert_eq!(s.token(&tok.hash).unwrap(), None);
        assert!(!s.revoke_token(&tok.hash, &admin(), T0 + 2).unwrap());
        let (entries, report) = s.verify_audit().unwrap();
        assert!(report.is_ok());
        let revokes: Vec<_> = entries
            .iter()
            .filter(|e| e.action == "token.revoke")
            .collect();
        assert_eq!(revokes.len(), 1);
        assert_eq!(
            revokes[0].decision.as_deref(),
            Some("api token of user alice revoked")
        );
    });
}

#[test]
fn injection_attempts_are_stored_verbatim() {
    for_each_backend(|s| {
        let mut u = user("mallory", UserRole::SponsorResearcher);
        let evil = "x'); DROP TABLE users; --";
        u.institution = Some(evil.into());
        s.create_user(&u, &admin(), T0).unwrap();
        let mut p = project("p1", false, &["mallory"]);
        p.title = "Robert'); DELETE FROM projects; -- \" \\ %_".into();
        s.create_project(&p, &admin(), T0).unwrap();
        assert_eq!(
            s.user(&uid("mallory"))
                .unwrap()
                .unwrap()
                .institution
                .as_deref(),
            Some(evil)
        );
        assert_eq!(s.project(&p.id).unwrap().unwrap().title, p.title);
        assert_eq!(s.users().unwrap().len(), 1);
        assert_eq!(s.projects().unwrap().len(), 1);
        // Identifiers cannot carry SQL at all.
        assert!(qiao_hub::protocol::UserId::new("a'; DROP TABLE users; --").is_err());
        let (_, report) = s.verify_audit().unwrap();
        assert_eq!(report.unwrap().entries, 2);
    });
}

#[test]
fn enrollment_is_one_time_and_checked() {
    for_each_backend(|s| {
        s.create_site(&site("h1"), &admin(), T0).unwrap();
        s.create_site(&site("h2"), &admin(), T0).unwrap();
        let (token, stored) = StoredToken::issue(T0, 3600);
        s.set_enrollment_token(&sid("h1"), &stored, &admin(), T0)
            .unwrap();
        let secret = token.expose_secret();
        let key = Signer::generate();
        let req = EnrollRequest::new(&secret, sid("h1"), key.signing_key()).unwrap();
        // Wrong site name with a valid token: invalid token (nothing revealed).
        let other = EnrollRequest::new(&secret, sid("h2"), key.signing_key()).unwrap();
        assert!(matches!(
            s.enroll(&other, T0 + 1),
            Err(EnrollFailure::Enroll(EnrollError::InvalidToken))
        ));
        let unknown = EnrollRequest::new(&secret, sid("nope"), key.signing_key()).unwrap();
        assert!(matches!(
            s.enroll(&unknown, T0 + 1),
            Err(EnrollFailure::Enroll(EnrollError::InvalidToken))
        ));
        // Expired.
        assert!(matches!(
            s.enroll(&req, T0 + 3600),
            Err(EnrollFailure::Enroll(EnrollError::TokenExpired { .. }))
        ));
        // Forged proof.
        let mut forged = req.clone();
        forged.public_key = Signer::generate().public_key().unwrap();
        assert!(matches!(
            s.enroll(&forged, T0 + 1),
            Err(EnrollFailure::Enroll(EnrollError::BadProof))
        ));
        let site = s.enroll(&req, T0 + 2).unwrap();
        assert_eq!(site.public_key, Some(key.public_key().unwrap()));
        assert_eq!(site.enrolled_at, Some(T0 + 2));
        assert!(matches!(
            s.enroll(&req, T0 + 3),
            Err(EnrollFailure::Enroll(EnrollError::TokenAlreadyUsed))
        ));
        // The same key cannot be registered for h2.
        let (t2, st2) = StoredToken::issue(T0, 3600);
        s.set_enrollment_token(&sid("h2"), &st2, &admin(), T0)
            .unwrap();
        let dup = EnrollRequest::new(&t2.expose_secret(), sid("h2"), key.signing_key()).unwrap();
        assert!(matches!(
            s.enroll(&dup, T0 + 4),
            Err(EnrollFailure::KeyInUse)
        ));
        assert_eq!(s.site(&sid("h2")).unwrap().unwrap().public_key, None);
    });
}

#[test]
fn projects_approval_and_members() {
    for_each_backend(|s| {
        s.create_user(&user("alice", UserRole::SponsorResearcher), &admin(), T0)
            .unwrap();
        let p = project("p1", false, &[]);
        s.create_project(&p, &admin(), T0).unwrap();
        assert!(matches!(
            s.create_project(&p, &admin(), T0),
            Err(StoreError::Caller(CallerFault::Conflict(_)))
        ));
        let id: ProjectId = "p1".parse().unwrap();
        assert!(!s.project(&id).unwrap().unwrap().approved);
        assert!(
            s.set_project_approved(&id, true, &admin(), T0)
                .unwrap()
                .approved
        );
        let p = s
            .add_project_member(&id, &uid("alice"), &admin(), T0)
            .unwrap();
        assert_eq!(p.members, vec![uid("alice")]);
        let p = s
            .add_project_member(&id, &uid("alice"), &admin(), T0)
            .unwrap();
        assert_eq!(p.members.len(), 1, "adding twice is idempotent");
        assert!(matches!(
            s.add_project_member(&id, &uid("ghost"), &admin(), T0),
            Err(StoreError::Caller(CallerFault::NotFound(_)))
        ));
        assert!(matches!(
            s.set_project_approved(&"p9".parse().unwrap(), true, &admin(), T0),
            Err(StoreError::Caller(CallerFault::NotFound(_)))
        ));
    });
}

#[test]
fn jobs_lease_redeliver_and_store_results_once() {
    for_each_backend(|s| {
        let (h1, h2) = (sid("h1"), sid("h2"));
        let j1 = job("p1", "alice");
        let j2 = job("p1", "alice");
        let r1 = s.create_job(&j1, &[h1.clone(), h2.clone()], T0).unwrap();
        let r2 = s
            .create_job(&j2, std::slice::from_ref(&h1), T0 + 1)
            .unwrap();
        assert_eq!((r1.seq, r2.seq), (1, 2));
        assert!(matches!(
            s.create_job(&j1, std::slice::from_ref(&h1), T0),
            Err(StoreError::Caller(CallerFault::Conflict(_)))
        ));
        // Oldest first; a delivered job is not handed out again before the redelivery time.
        let l = s.lease_job(&h1, T0 + 10, 30).unwrap().unwrap();
        assert_eq!((l.job.job_id, l.first_delivery), (j1.job_id, true));
        let l = s.lease_job(&h1, T0 + 11, 30).unwrap().unwrap();
        assert_eq!(l.job.job_id, j2.job_id);
        assert_eq!(s.lease_job(&h1, T0 + 12, 30).unwrap(), None);
        // After the redelivery time the same job comes again (a site that crashed gets it back).
        let l = s.lease_job(&h1, T0 + 40, 30).unwrap().unwrap();
        assert_eq!((l.job.job_id, l.first_delivery), (j1.job_id, false));
        assert_eq!(l.job, j1);
        // Results: stored once; the duplicate changes nothing.
        let res = cohort_result(&j1.job_id, &h1, 120, 100);
        assert_eq!(s.put_result(&res, T0 + 50).unwrap(), ResultOutcome::Stored);
        let mut again = res.clone();
        again.outcome = cohort_result(&j1.job_id, &h1, 999, 999).outcome;
        assert_eq!(
            s.put_result(&again, T0 + 51).unwrap(),
            ResultOutcome::Duplicate
        );
        let stored = s.results(&j1.job_id).unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].result, res);
        assert_eq!(stored[0].received_at, T0 + 50);
        // Answered jobs are no longer pending for that site.
        let l = s.lease_job(&h1, T0 + 100, 30).unwrap().unwrap();
        assert_eq!(l.job.job_id, j2.job_id);
        assert_eq!(s.lease_job(&h1, T0 + 101, 30).unwrap(), None);
        // A result for a job not sent to the site, for an unknown job, or not matching it.
        let wrong = cohort_result(&j2.job_id, &h2, 50, 40);
        assert!(matches!(
            s.put_result(&wrong, T0),
            Err(StoreError::Caller(CallerFault::Forbidden(_)))
        ));
        let unknown = cohort_result(&JobId::random(), &h1, 50, 40);
        assert!(matches!(
            s.put_result(&unknown, T0),
            Err(StoreError::Caller(CallerFault::NotFound(_)))
        ));
        let mut mismatch = cohort_result(&j1.job_id, &h2, 50, 40);
        if let qiao_hub::protocol::Outcome::Done {
            payload: qiao_hub::protocol::Payload::CohortCount(c),
        } = &mut mismatch.outcome
        {
            c.rules[0].name = qiao_hub::protocol::RuleName::new("Other rule").unwrap();
        }
        assert!(matches!(
            s.put_result(&mismatch, T0),
            Err(StoreError::Caller(CallerFault::Invalid(_)))
        ));
        assert_eq!(s.results(&j1.job_id).unwrap().len(), 1);
        let rec = s.job(&j1.job_id).unwrap().unwrap();
        let d1 = rec.deliveries.iter().find(|d| d.site == h1).unwrap();
        assert_eq!(
            (d1.count, d1.first_at, d1.last_at),
            (2, Some(T0 + 10), Some(T0 + 40))
        );
        assert_eq!(s.jobs().unwrap().len(), 2);
    });
}

#[test]
fn audit_chain_records_everything_and_verifies() {
    for_each_backend(|s| {
        s.create_user(&user("alice", UserRole::SponsorResearcher), &admin(), T0)
            .unwrap();
        s.create_project(&project("p1", true, &["alice"]), &admin(), T0)
            .unwrap();
        let j = job("p1", "alice");
        s.create_job(&j, &[sid("h1")], T0).unwrap();
        s.lease_job(&sid("h1"), T0, 30).unwrap().unwrap();
        s.put_result(&cohort_result(&j.job_id, &sid("h1"), 5, 3), T0)
            .unwrap();
        let (entries, report) = s.verify_audit().unwrap();
        assert_eq!(report.unwrap().entries, 5);
        let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "user.create",
                "project.create",
                "job.submit",
                "job.deliver",
                "result.receive"
            ]
        );
        let rr = &entries[4];
        assert_eq!(rr.actor, Actor::Site("h1".into()));
        assert_eq!(rr.project.as_deref(), Some("p1"));
        assert_eq!(rr.job_id, Some(j.job_id.to_string()));
        assert_eq!(rr.decision.as_deref(), Some("done"));
        let released: serde_json::Value =
            serde_json::from_str(rr.released.as_deref().unwrap()).unwrap();
        assert_eq!(
            released["entries"],
            serde_json::json!({"kind": "below_threshold", "threshold": 10})
        );
        assert_eq!(s.audit_entries(3, 10).unwrap().len(), 2);
    });
}

#[test]
fn state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let key = {
        let s = qiao_hub::RedbStore::open(dir.path()).unwrap();
        let s: &dyn HubStore = &s;
        s.create_site(&site("h1"), &admin(), T0).unwrap();
        s.signing_key().unwrap().to_bytes()
    };
    let s = qiao_hub::RedbStore::open(dir.path()).unwrap();
    let s: &dyn HubStore = &s;
    assert_eq!(
        s.signing_key().unwrap().to_bytes(),
        key,
        "the hub key is kept"
    );
    assert!(s.site(&sid("h1")).unwrap().is_some());
    if let Some(url) = pg_url() {
        let schema = format!("qiao_hub_test_reopen_{}", std::process::id());
        let a = qiao_hub::PgStore::open_in_schema(&url, Some(&schema)).unwrap();
        let key = (&a as &dyn HubStore).signing_key().unwrap().to_bytes();
        let b = qiao_hub::PgStore::open_in_schema(&url, Some(&schema)).unwrap();
        assert_eq!((&b as &dyn HubStore).signing_key().unwrap().to_bytes(), key);
        assert_eq!(
            (&b as &dyn HubStore).schema_version().unwrap(),
            SCHEMA_VERSION
        );
        b.drop_schema().unwrap();
    }
}

/// A version-1 database (the nine original tables) opens as version 2, old records kept, and
/// takes extension tables (the portal's: `institutions`, ...): empty until first written, then
/// kept; on redb and PostgreSQL.
#[test]
fn version_1_databases_migrate_to_version_2() {
    use qiao_hub::store::Table;
    const V1: [&str; 9] = [
        "meta", "users", "tokens", "sites", "projects", "jobs", "pending", "results", "audit",
    ];
    let user = serde_json::to_vec(&user("old", UserRole::Auditor)).unwrap();
    let check = |s: &dyn HubStore| {
        assert_eq!(s.schema_version().unwrap(), 2);
        assert_eq!(s.user(&uid("old")).unwrap().unwrap().id, uid("old"));
        let never = Table::Extension("never_written");
        s.read(&mut |tx| {
            assert_eq!(tx.get(never, "k")?, None);
            assert!(tx.scan(never, "")?.is_empty());
            assert_eq!(tx.last(never)?, None);
            Ok(())
        })
        .unwrap();
        for t in ["institutions", "experts", "pipeline", "cohorts", "library"].map(Table::Extension)
        {
            s.write(&mut |tx| tx.put(t, "k", b"{\"v\":1}")).unwrap();
            let mut got = None;
            s.read(&mut |tx| {
                got = tx.get(t, "k")?;
                Ok(())
            })
            .unwrap();
            assert_eq!(
                got.as_deref(),
                Some(&b"{\"v\":1}"[..]),
                "table {}",
                t.name()
            );
        }
    };
    // redb: write the version-1 layout by hand.
    let dir = tempfile::tempdir().unwrap();
    {
        let db = redb::Database::create(dir.path().join("hub.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        for name in V1 {
            let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new(name);
            let mut t = txn.open_table(def).unwrap();
            match name {
                "meta" => {
                    t.insert("schema_version", &b"1"[..]).unwrap();
                }
                "users" => {
                    t.insert("old", user.as_slice()).unwrap();
                }
                _ => {}
            }
        }
        txn.commit().unwrap();
    }
    let s = qiao_hub::RedbStore::open(dir.path()).unwrap();
    check(&s);
    drop(s);
    // Reopening a version-2 database changes nothing.
    check(&qiao_hub::RedbStore::open(dir.path()).unwrap());
    if let Some(url) = pg_url() {
        let schema = format!("qiao_hub_test_v1_{}", std::process::id());
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut sql = format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path TO {schema};
             CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO schema_migrations (version) VALUES (1);"
        );
        for name in V1 {
            sql.push_str(&format!(
                "CREATE TABLE {name} (key text COLLATE \"C\" PRIMARY KEY, value json NOT NULL);"
            ));
        }
        c.batch_execute(&sql).unwrap();
        c.execute(
            "INSERT INTO users (key, value) VALUES ('old', $1::text::json)",
            &[&String::from_utf8(user.clone()).unwrap()],
        )
        .unwrap();
        let s = qiao_hub::PgStore::open_in_schema(&url, Some(&schema)).unwrap();
        check(&s);
        s.drop_schema().unwrap();
    }
}
