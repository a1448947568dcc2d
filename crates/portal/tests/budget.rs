//! The portal's budget page (issue 12): the signed-in user's remaining privacy budget per site,
//! from the sites' reports with their results, in English and Chinese.

mod common;

use axum::http::StatusCode;
use common::*;
use qiao_hub::audit::Actor;
use qiao_hub::model::Site;
use qiao_hub::protocol::{
    CohortCountResult, DisclosureSummary, DpParams, Job, JobId, JobResult, Outcome, Payload,
    QueryType, Released, Requester, SiteId, UserRole,
};

fn result_with_budget(w: &World, user: &str, site: &str, remaining: (f64, f64, f64)) {
    let site_id: SiteId = site.parse().unwrap();
    if w.store.site(&site_id).unwrap().is_none() {
        let s = Site {
            id: site_id.clone(),
            name: site.into(),
            public_key: None,
            enrolled_at: None,
            enrollment: None,
            created_at: T,
        };
        w.store.create_site(&s, &Actor::System, T).unwrap();
    }
    let job = Job {
        job_id: JobId::random(),
        project_id: "p1".parse().unwrap(),
        query: QueryType::CohortCount,
        definition: serde_json::json!({"PrimaryCriteria": {"CriteriaList": []}}),
        requested_by: Requester {
            user_id: user.parse().unwrap(),
            role: UserRole::SponsorResearcher,
            organization: "Pharma Inc".into(),
        },
        created_at: T,
        floors: Default::default(),
    };
    w.store
        .create_job(&job, std::slice::from_ref(&site_id), T)
        .unwrap();
    let dp = |v| Released::Dp {
        value: Some(v),
        sigma: 6.0,
        threshold: 10,
    };
    let r = JobResult {
        job_id: job.job_id,
        site_id,
        outcome: Outcome::Done {
            payload: Payload::CohortCount(CohortCountResult {
                initial: None,
                entries: dp(40),
                subjects: dp(30),
                rules: vec![],
                final_persons: dp(30),
                disclosure: DisclosureSummary {
                    min_cell_count: 10,
                    obfuscation: None,
                    secondary_suppression: false,
                    dp: Some(DpParams {
                        rho_spent: 2.0 / 72.0,
                        sigma: 6.0,
                        entries_bound: 10,
                        remaining_rho: remaining.0,
                        user_remaining_rho: Some(remaining.1),
                        organization_remaining_rho: Some(remaining.2),
                    }),
                },
            }),
        },
    };
    w.store.put_result(&r, T + 1).unwrap();
}

#[tokio::test]
async fn the_budget_page_shows_the_users_own_budgets_in_both_languages() {
    let w = World::new();
    w.user(
        "alice",
        UserRole::SponsorResearcher,
        Some("Pharma Inc"),
        None,
    );
    w.user("bob", UserRole::SponsorResearcher, Some("Pharma Inc"), None);
    let mut c = w.client();
    c.login("alice").await;
    let r = c.get("/budget").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("No site has reported a budget yet"),
        "{}",
        r.body
    );
    assert!(r.body.contains("href=\"/budget\""), "in the navigation");

    result_with_budget(&w, "alice", "h1", (0.1875, 0.1875, 0.4375));
    result_with_budget(&w, "bob", "h2", (0.2, 0.2, 0.3));
    let r = c.get("/budget").await;
    assert_eq!(r.status, StatusCode::OK);
    let body = &r.body;
    assert!(body.contains("Pharma Inc"), "{body}");
    // alice's own row at h1; h2 only in the organization's table (bob's query).
    let mine = body.split("Your organization").next().unwrap();
    assert!(mine.contains("id=\"budget-h1\""), "{body}");
    assert!(mine.contains("0.1875") && mine.contains("0.4375"), "{body}");
    assert!(!mine.contains("id=\"budget-h2\""), "{body}");
    let org = body.split("Your organization").nth(1).unwrap();
    assert!(
        org.contains("id=\"budget-h2\"") && org.contains("0.3000"),
        "{body}"
    );
    assert!(org.contains("bob"), "{body}");

    c.lang = Some("zh-CN");
    let r = c.get("/budget").await;
    assert!(
        r.body.contains("隐私预算") && r.body.contains("您在各站点的预算"),
        "{}",
        r.body
    );

    // Signed out: to the sign-in page.
    let r = w.client().get("/budget").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}
