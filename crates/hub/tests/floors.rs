//! Issue 12, item 6 and the budget view, through real HTTP on loopback: the alliance floors
//! stated in every signed job, implausible results rejected and marked (and audited), and
//! `GET /api/v1/budget`.

mod common;

use common::*;
use qiao_hub::api::HubConfig;
use qiao_hub::audit::Actor;
use qiao_hub::client::HubClient;
use qiao_hub::model::{TokenKind, TokenRecord};
use qiao_hub::protocol::{
    CohortCountResult, DisclosureSummary, DpParams, Floors, JobId, JobResult, Outcome, Payload,
    Released, RuleName, RuleResult, SiteId, SiteStatus, UserRole,
};
use qiao_hub::util::{now, token_hash};
use qiao_hub::BackgroundHub;
use serde_json::{json, Value};

struct World {
    _ts: TestStore,
    hub: BackgroundHub,
}

/// alice and bob are sponsors of Pharma Inc, olga of another organization (her own).
const USERS: [(&str, UserRole); 4] = [
    ("admin", UserRole::AllianceAdmin),
    ("alice", UserRole::SponsorResearcher),
    ("bob", UserRole::SponsorResearcher),
    ("audrey", UserRole::Auditor),
];

impl World {
    fn with(config: HubConfig) -> Self {
        let ts = redb();
        let store = ts.store.clone();
        let sys = Actor::System;
        store.create_site(&site("h1"), &sys, 1).unwrap();
        store.create_site(&site("h2"), &sys, 1).unwrap();
        let mut olga = user("olga", UserRole::SponsorResearcher);
        olga.institution = None;
        store.create_user(&olga, &sys, 1).unwrap();
        for (name, role) in USERS {
            store.create_user(&user(name, role), &sys, 1).unwrap();
        }
        for name in ["admin", "alice", "bob", "audrey", "olga"] {
            let token = format!("qiao-t-test-{name}");
            store
                .put_token(
                    &TokenRecord {
                        hash: token_hash(&token),
                        user_id: uid(name),
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
        }
        store
            .create_project(&project("p1", true, &["alice", "bob", "olga"]), &sys, 1)
            .unwrap();
        let hub = start_hub(store.clone(), config);
        Self { _ts: ts, hub }
    }

    fn client(&self, name: &str) -> HubClient {
        HubClient::new(&self.hub.url(), None)
            .unwrap()
            .with_token(format!("qiao-t-test-{name}"))
    }

    fn enrolled_site(&self, id: &str) -> FakeSite {
        common::enrolled_site(&self.client("admin"), &self.hub.url(), id)
    }

    /// Submits a cohort count to `sites` as `who`; its job id.
    fn submit(&self, who: &str, def: Value, sites: &[&str]) -> JobId {
        let body = json!({"query_type": "cohort_count", "definition": def, "sites": sites});
        let r = self
            .client(who)
            .raw(
                "POST",
                "/api/v1/projects/p1/queries",
                Some(body.to_string().as_bytes()),
            )
            .unwrap();
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        r.json()["job_id"].as_str().unwrap().parse().unwrap()
    }

    fn job(&self, id: &JobId) -> Value {
        let r = self
            .client("alice")
            .raw("GET", &format!("/api/v1/jobs/{id}"), None)
            .unwrap();
        assert_eq!(r.status, 200);
        r.json()
    }

    fn audit_decisions(&self, action: &str) -> Vec<String> {
        let v: Value = self
            .client("audrey")
            .call("GET", "/api/v1/audit", None)
            .unwrap();
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action)
            .map(|e| e["decision"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

fn site_view<'a>(job: &'a Value, site: &str) -> &'a Value {
    job["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == site)
        .unwrap()
}

/// A definition with two inclusion rules.
fn two_rules() -> Value {
    json!({
        "ConceptSets": [],
        "PrimaryCriteria": {"CriteriaList": []},
        "InclusionRules": [
            {"name": "first", "expression": {"Type": "ALL"}},
            {"name": "second", "expression": {"Type": "ALL"}}
        ]
    })
}

fn dp(v: u64) -> Released {
    Released::Dp {
        value: Some(v),
        sigma: 6.0,
        threshold: 10,
    }
}

/// A DP cohort count with lines `a` then `b`, `entries` = `subjects` = `a`, reporting the
/// remaining budgets.
fn dp_result(job: &JobId, site: &SiteId, a: u64, b: u64, remaining: (f64, f64, f64)) -> JobResult {
    let rule = |name: &str, v: u64| RuleResult {
        name: RuleName::new(name).unwrap(),
        persons: dp(v),
        gain: dp(10),
    };
    JobResult {
        job_id: *job,
        site_id: site.clone(),
        outcome: Outcome::Done {
            payload: Payload::CohortCount(CohortCountResult {
                initial: None,
                entries: Released::Dp {
                    value: Some(a),
                    sigma: 60.0,
                    threshold: 10,
                },
                subjects: dp(b),
                rules: vec![rule("first", a), rule("second", b)],
                final_persons: dp(b),
                disclosure: DisclosureSummary {
                    min_cell_count: 10,
                    obfuscation: None,
                    secondary_suppression: false,
                    dp: Some(DpParams {
                        rho_spent: 4.0 / 72.0,
                        sigma: 6.0,
                        entries_bound: 10,
                        remaining_rho: remaining.0,
                        user_remaining_rho: Some(remaining.1),
                        organization_remaining_rho: Some(remaining.2),
                    }),
                },
            }),
        },
    }
}

fn poll_with_persons(s: &FakeSite, persons: u64) {
    let status = SiteStatus {
        data_as_of: Some("2020-01-01".into()),
        persons_rounded: persons,
        min_cell_count: 10,
        obfuscation: false,
        dp: true,
    };
    let env = s
        .signer
        .seal_poll_with_status(&s.id, Some(&status), now())
        .unwrap();
    assert_eq!(
        s.post_envelope("/api/v1/site/poll?wait_secs=0", &env)
            .status,
        204
    );
}

#[test]
fn every_job_states_the_configured_floors() {
    // The defaults.
    let w = World::with(HubConfig::default());
    let mut h1 = w.enrolled_site("h1");
    w.submit("alice", two_rules(), &["h1"]);
    let job = h1.poll(5).expect("a job");
    assert_eq!(job.floors, Floors::default());
    assert_eq!(job.floors.min_cell_count, 10);
    assert_eq!(job.floors.max_rho_per_release, Some(0.02));
    assert_eq!(job.floors.min_sigma(), Some(5.0));

    // Configured: threshold 20, ρ per release 1/200 (σ ≥ 10); and no limit.
    for floors in [
        Floors {
            min_cell_count: 20,
            max_rho_per_release: Some(0.005),
        },
        Floors::none(),
    ] {
        let w = World::with(HubConfig {
            floors,
            ..HubConfig::default()
        });
        let mut h1 = w.enrolled_site("h1");
        w.submit("alice", two_rules(), &["h1"]);
        let job = h1.poll(5).expect("a job");
        assert_eq!(job.floors, floors);
    }
}

#[test]
fn implausible_results_are_rejected_marked_left_out_of_totals_and_audited() {
    let w = World::with(HubConfig::default());
    let mut h1 = w.enrolled_site("h1");
    let mut h2 = w.enrolled_site("h2");
    // h1 reports about 100 persons (true count at most 150); h2 never reports a count.
    poll_with_persons(&h1, 100);
    let r = (0.2, 0.2, 0.4);

    // Plausible: 150 + 8σ + 1 = 199 is the largest a DP person count may be at h1.
    let ok = w.submit("alice", two_rules(), &["h1", "h2"]);
    let job = h1.poll(5).unwrap();
    assert_eq!(job.job_id, ok);
    h1.post_result(&dp_result(&ok, &h1.id, 199, 120, r));
    assert_eq!(h2.poll(5).unwrap().job_id, ok);
    h2.post_result(&dp_result(&ok, &h2.id, 5_000, 4_000, r));
    let v = w.job(&ok);
    assert_eq!(site_view(&v, "h1")["status"], "done");
    assert_eq!(site_view(&v, "h2")["status"], "done");
    assert_eq!(v["total"]["sites_done"], 2);

    // Above the site's person count; an increasing funnel; an overflow at a site without a
    // reported count.
    let big = w.submit("alice", two_rules(), &["h1"]);
    assert_eq!(h1.poll(5).unwrap().job_id, big);
    h1.post_result(&dp_result(&big, &h1.id, 200, 120, r));
    let up = w.submit("alice", two_rules(), &["h1", "h2"]);
    assert_eq!(h1.poll(5).unwrap().job_id, up);
    h1.post_result(&dp_result(&up, &h1.id, 100, 101, r));
    assert_eq!(h2.poll(5).unwrap().job_id, up);
    h2.post_result(&dp_result(&up, &h2.id, 2_000_000_000_000, 100, r));

    let v = w.job(&big);
    let s = site_view(&v, "h1");
    assert_eq!(s["status"], "rejected");
    let why = s["rejected"].as_str().unwrap();
    assert!(why.starts_with("rejected: implausible: "), "{why}");
    assert!(
        why.contains("rule 1 persons = 200 is above the site's person count (≈100, at most 199"),
        "{why}"
    );
    assert!(s["payload"].is_null(), "{s}");
    assert_eq!(
        v["total"]["sites_done"], 0,
        "a rejected result is not added"
    );

    let v = w.job(&up);
    let why = site_view(&v, "h1")["rejected"].as_str().unwrap();
    assert!(
        why.contains("the funnel increases from rule 1 (100 ±12) to rule 2 (101 ±12)"),
        "{why}"
    );
    let why = site_view(&v, "h2")["rejected"].as_str().unwrap();
    assert!(why.contains("entries = 2000000000000 overflows"), "{why}");
    assert_eq!(v["total"]["sites_done"], 0);

    // Audited, naming why; the plausible results as done.
    let d = w.audit_decisions("result.receive");
    assert_eq!(d.iter().filter(|x| *x == "done").count(), 2, "{d:?}");
    let rejected: Vec<_> = d
        .iter()
        .filter(|x| x.starts_with("rejected: implausible: "))
        .collect();
    assert_eq!(rejected.len(), 3, "{d:?}");
    assert!(rejected.iter().any(|x| x.contains("funnel increases")));

    // Negative values cannot be expressed on the wire: such a result does not decode.
    assert!(serde_json::from_str::<Released>(r#"{"kind":"exact","value":-1}"#).is_err());
    assert!(serde_json::from_str::<Released>(
        r#"{"kind":"dp","value":-3,"sigma":6,"threshold":10}"#
    )
    .is_err());
}

#[test]
fn the_budget_endpoint_shows_the_callers_latest_report_per_site() {
    let w = World::with(HubConfig::default());
    let mut h1 = w.enrolled_site("h1");
    let mut h2 = w.enrolled_site("h2");
    let budget = |who: &str| -> Value {
        let r = w.client(who).raw("GET", "/api/v1/budget", None).unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    };
    let empty = budget("alice");
    assert_eq!(empty["organization"], "Pharma Inc");
    assert_eq!(empty["sites"], json!([]));

    // alice at h1 and h2, then again at h1 (the later report replaces the earlier); bob (same
    // organization) at h1.
    let run = |who: &str, site: &mut FakeSite, rem: (f64, f64, f64)| {
        let id = w.submit(who, two_rules(), &[site.id.as_str()]);
        assert_eq!(site.poll(5).unwrap().job_id, id);
        site.post_result(&dp_result(&id, &site.id, 50, 40, rem));
        id
    };
    run("alice", &mut h1, (0.20, 0.20, 0.45));
    run("alice", &mut h2, (0.19, 0.19, 0.44));
    let last = run("alice", &mut h1, (0.15, 0.15, 0.40));
    run("bob", &mut h1, (0.30, 0.30, 0.35));

    let a = budget("alice");
    let sites = a["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 2, "{a}");
    let h1a = sites.iter().find(|s| s["site"] == "h1").unwrap();
    assert_eq!(h1a["remaining_rho"], 0.15);
    assert_eq!(h1a["user_remaining_rho"], 0.15);
    assert_eq!(h1a["job_id"], last.to_string());
    let h2a = sites.iter().find(|s| s["site"] == "h2").unwrap();
    assert_eq!(h2a["remaining_rho"], 0.19);
    // The organization's latest report at h1 is bob's.
    let org = a["organization_sites"].as_array().unwrap();
    let h1o = org.iter().find(|s| s["site"] == "h1").unwrap();
    assert_eq!(h1o["organization_remaining_rho"], 0.35);
    assert_eq!(h1o["user"], "bob");

    // bob sees his own; olga (another organization) sees nothing of theirs.
    let b = budget("bob");
    assert_eq!(b["sites"].as_array().unwrap().len(), 1);
    assert_eq!(b["sites"][0]["remaining_rho"], 0.30);
    let o = budget("olga");
    assert_eq!(o["organization"], "user:olga");
    assert_eq!(o["sites"], json!([]));
    assert_eq!(o["organization_sites"], json!([]));

    // Signed-in users only.
    let anon = HubClient::new(&w.hub.url(), None).unwrap();
    assert_eq!(anon.raw("GET", "/api/v1/budget", None).unwrap().status, 401);
}
