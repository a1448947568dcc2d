//! `qiao site ui` over real HTTP on loopback: the route × role matrix, CSRF, cookies and security
//! headers, the approval queue, the policy form (errors next to fields, nothing half-saved), the
//! audit page's chain verification, the pre-screening list, and page render times.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use qiao_protocol::QueryType;
use qiao_site::projects::Projects;
use qiao_site::queue::{ApprovalState, Approvals};
use qiao_site::ui::{serve_ui_on, UiOptions};
use qiao_site::users::{LocalRole, Users};
use qiao_site::SiteDir;
use reqwest::header::{HeaderMap, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

const PW: &str = "correct-horse-battery";

struct Server {
    base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start_ui(data: &Path, insecure_http: bool) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let o = UiOptions {
        data: data.to_owned(),
        store: store_path().to_owned(),
        listen: addr,
        insecure_http,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        serve_ui_on(&o, listener, async {
            let _ = rx.await;
        })
        .await
        .expect("site ui");
    });
    Server {
        base: format!("http://{addr}"),
        _stop: tx,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `name=value` of a `Set-Cookie` header for cookie `name`, and the whole header.
fn set_cookie(h: &HeaderMap, name: &str) -> Option<(String, String)> {
    h.get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| (v.split(';').next().unwrap_or("").to_owned(), v.to_owned()))
}

fn hidden_csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + 64].to_owned()
}

/// A signed-in browser: its cookie and its CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn sign_in(base: &str, user: &str, password: &str) -> Result<Browser, (StatusCode, String)> {
    let c = client();
    let r = c.get(format!("{base}/login")).send().await.unwrap();
    let (pre, _) = set_cookie(r.headers(), "qiao_pre").expect("pre-login cookie");
    let csrf = hidden_csrf(&r.text().await.unwrap());
    let r = c
        .post(format!("{base}/login"))
        .header(COOKIE, &pre)
        .form(&[
            ("csrf", csrf.as_str()),
            ("user", user),
            ("password", password),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    if r.status() != StatusCode::SEE_OTHER {
        let s = r.status();
        return Err((s, r.text().await.unwrap()));
    }
    let (session, attrs) = set_cookie(r.headers(), "qiao_session").expect("session cookie");
    assert!(
        attrs.contains("HttpOnly") && attrs.contains("SameSite=Strict"),
        "{attrs}"
    );
    let cookie = format!("{session}; lang=en");
    let r = c
        .get(format!("{base}/"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    let home = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let r = c
        .get(format!("{base}{home}"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    let csrf = hidden_csrf(&r.text().await.unwrap());
    Ok(Browser { cookie, csrf })
}

async fn get(base: &str, b: Option<&Browser>, path: &str) -> (StatusCode, HeaderMap, String) {
    let mut rq = client().get(format!("{base}{path}"));
    if let Some(b) = b {
        rq = rq.header(COOKIE, &b.cookie);
    }
    let r = rq.send().await.unwrap();
    let (s, h) = (r.status(), r.headers().clone());
    (s, h, r.text().await.unwrap())
}

async fn post(
    base: &str,
    b: Option<&Browser>,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let mut rq = client().post(format!("{base}{path}")).form(form);
    if let Some(b) = b {
        rq = rq.header(COOKIE, &b.cookie);
    }
    let r = rq.send().await.unwrap();
    let (s, h) = (r.status(), r.headers().clone());
    (s, h, r.text().await.unwrap())
}

/// An enrolled site with a steward, an investigator, a pending demographics job and a received
/// cohort definition (CohortGenerator cohort 3: 266 persons on GiBleed).
async fn site(tmp: &Path) -> (std::path::PathBuf, qiao_protocol::Job, qiao_protocol::Job) {
    let hub = FakeHub::new();
    let (url, _task) = start(hub.clone(), 0).await;
    let data = tmp.join("site");
    enroll_site(&hub, &url, &data, "hospital-ui").await;
    let dir = SiteDir::open(&data).unwrap();
    Users::add(&dir, "steward1", LocalRole::Steward, PW, now()).unwrap();
    Users::add(&dir, "dr.wang", LocalRole::Investigator, PW, now()).unwrap();
    let pending = job(
        QueryType::Demographics {
            age_band_years: 10,
            by_index_year: false,
        },
        definition(3),
        "sponsor1",
    );
    Approvals::new(&dir).enqueue(&pending, now()).unwrap();
    let counted = job(QueryType::CohortCount, definition(3), "sponsor1");
    qiao_site::cohorts::remember(&dir, &counted, now()).unwrap();
    // The steward accepted the project and assigned dr.wang (who may open its lists).
    let project = counted.project_id.as_str();
    Projects::accept(&dir, project, "steward1", now()).unwrap();
    Projects::assign(&dir, project, "dr.wang", "steward1").unwrap();
    (data, pending, counted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_checks_the_role_and_csrf() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, pending, counted) = site(tmp.path()).await;
    let srv = start_ui(&data, true).await;
    let base = srv.base.as_str();
    let steward = sign_in(base, "steward1", PW)
        .await
        .expect("steward signs in");
    let investigator = sign_in(base, "dr.wang", PW)
        .await
        .expect("investigator signs in");
    let digest = qiao_site::cohorts::digest(&counted.definition);
    let list = format!("/prescreen/{}/{digest}", counted.project_id);
    let id = pending.job_id.to_string();

    // GET: (path, role allowed).
    let pages: [(&str, LocalRole); 5] = [
        ("/approvals", LocalRole::Steward),
        ("/policy", LocalRole::Steward),
        ("/audit", LocalRole::Steward),
        ("/prescreen", LocalRole::Investigator),
        (list.as_str(), LocalRole::Investigator),
    ];
    for (path, allowed) in pages {
        let (s, h, _) = get(base, None, path).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "anonymous {path}");
        assert!(
            h[LOCATION].to_str().unwrap().starts_with("/login?next="),
            "{path}"
        );
        for (role, b) in [
            (LocalRole::Steward, &steward),
            (LocalRole::Investigator, &investigator),
        ] {
            let (s, h, body) = get(base, Some(b), path).await;
            if role == allowed {
                assert_eq!(s, StatusCode::OK, "{role} {path}: {body}");
            } else {
                assert_eq!(s, StatusCode::FORBIDDEN, "{role} {path}");
                assert!(body.contains("Access refused at site"), "{body}");
            }
            assert!(
                h["content-security-policy"]
                    .to_str()
                    .unwrap()
                    .starts_with("default-src 'self'"),
                "{path}"
            );
            assert_eq!(h["x-frame-options"], "DENY");
            assert!(h[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
            assert!(!body.contains("<script"), "no inline script on {path}");
        }
    }

    // POST: wrong role refused, right role without (or with a wrong) CSRF token refused, and
    // nothing changes.
    let approve = format!("/approvals/{id}/approve");
    let deny = format!("/approvals/{id}/deny");
    let posts: [(&str, LocalRole); 3] = [
        (approve.as_str(), LocalRole::Steward),
        (deny.as_str(), LocalRole::Steward),
        ("/policy", LocalRole::Steward),
    ];
    let policy_before = std::fs::read(data.join("policy.json")).ok();
    for (path, _) in posts {
        let (s, h, _) = post(base, None, path, &[("reason", "x")]).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "anonymous POST {path}");
        assert!(h[LOCATION].to_str().unwrap().starts_with("/login"));
        let (s, _, _) = post(
            base,
            Some(&investigator),
            path,
            &[("csrf", &investigator.csrf), ("reason", "x")],
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "investigator POST {path}");
        let (s, _, _) = post(base, Some(&steward), path, &[("reason", "x")]).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "steward POST {path} without CSRF");
        let (s, _, _) = post(
            base,
            Some(&steward),
            path,
            &[("csrf", &investigator.csrf), ("reason", "x")],
        )
        .await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "steward POST {path} with another session's CSRF"
        );
    }
    // Issue 17: marking a candidate is the investigator's (with the session's CSRF token);
    // everyone signed in has their own settings page.
    let mark = format!("{list}/mark");
    let fields = |csrf: &str| {
        vec![
            ("csrf".to_owned(), csrf.to_owned()),
            ("person".to_owned(), "1".to_owned()),
            ("mark".to_owned(), "screened".to_owned()),
            ("date".to_owned(), "2026-11-01".to_owned()),
        ]
    };
    let send = |b: Option<&Browser>, csrf: &str| {
        let f = fields(csrf);
        let mut rq = client().post(format!("{base}{mark}")).form(&f);
        if let Some(b) = b {
            rq = rq.header(COOKIE, &b.cookie);
        }
        async move { rq.send().await.unwrap().status() }
    };
    assert_eq!(
        send(None, "").await,
        StatusCode::SEE_OTHER,
        "anonymous mark"
    );
    assert_eq!(
        send(Some(&steward), &steward.csrf).await,
        StatusCode::FORBIDDEN,
        "steward mark"
    );
    assert_eq!(
        send(Some(&investigator), "").await,
        StatusCode::FORBIDDEN,
        "mark without CSRF"
    );
    assert_eq!(
        send(Some(&investigator), &steward.csrf).await,
        StatusCode::FORBIDDEN,
        "mark with another session's CSRF"
    );
    assert!(qiao_site::recruitment::load(
        &SiteDir::open(&data).unwrap(),
        counted.project_id.as_str()
    )
    .unwrap()
    .persons
    .is_empty());
    let (s, h, _) = get(base, None, "/settings").await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(h[LOCATION].to_str().unwrap().starts_with("/login?next="));
    for b in [&steward, &investigator] {
        assert_eq!(get(base, Some(b), "/settings").await.0, StatusCode::OK);
    }
    let dir = SiteDir::open(&data).unwrap();
    assert_eq!(
        Approvals::new(&dir)
            .get(&pending.job_id)
            .unwrap()
            .unwrap()
            .state,
        ApprovalState::Pending
    );
    assert_eq!(std::fs::read(data.join("policy.json")).ok(), policy_before);

    // The refusals are audited.
    let actions: Vec<String> = audit_entries(&data).into_iter().map(|e| e.action).collect();
    assert!(
        actions.iter().filter(|a| *a == "prescreen.deny").count() >= 2,
        "{actions:?}"
    );
    assert!(actions.iter().any(|a| a == "ui.refused"), "{actions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_unless_plain_http() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _, _) = site(tmp.path()).await;
    let srv = start_ui(&data, false).await;
    let r = client()
        .get(format!("{}/login", srv.base))
        .send()
        .await
        .unwrap();
    let (_, attrs) = set_cookie(r.headers(), "qiao_pre").unwrap();
    assert!(attrs.contains("; Secure"), "{attrs}");
    let plain = start_ui(&data, true).await;
    let r = client()
        .get(format!("{}/login", plain.base))
        .send()
        .await
        .unwrap();
    let (_, attrs) = set_cookie(r.headers(), "qiao_pre").unwrap();
    assert!(!attrs.contains("Secure"), "{attrs}");
    assert!(
        attrs.contains("HttpOnly") && attrs.contains("SameSite=Strict"),
        "{attrs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steward_and_investigator_pages_do_their_work() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, pending, counted) = site(tmp.path()).await;
    let srv = start_ui(&data, true).await;
    let base = srv.base.as_str();
    let dir = SiteDir::open(&data).unwrap();

    // Wrong password: refused, said next to the field, audited.
    let (s, body) = match sign_in(base, "steward1", "wrong-password!").await {
        Err(e) => e,
        Ok(_) => panic!("a wrong password signed in"),
    };
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body.contains("id=\"err-password\""), "{body}");
    assert!(
        body.contains("unknown user or wrong password at site"),
        "{body}"
    );

    let steward = sign_in(base, "steward1", PW).await.unwrap();
    let id = pending.job_id.to_string();
    let (_, _, queue) = get(base, Some(&steward), "/approvals").await;
    assert!(queue.contains(&id), "{queue}");
    assert!(queue.contains("Demographics"), "{queue}");

    // Deny without a reason: 422, the message next to the field, still pending.
    let (s, _, body) = post(
        base,
        Some(&steward),
        &format!("/approvals/{id}/deny"),
        &[("csrf", &steward.csrf), ("reason", "  ")],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.contains("id=\"err-reason\"") && body.contains("Give a reason to deny a job."),
        "{body}"
    );
    assert_eq!(
        Approvals::new(&dir)
            .get(&pending.job_id)
            .unwrap()
            .unwrap()
            .state,
        ApprovalState::Pending
    );

    // Deny with a reason: recorded, audited, POST-redirect-GET with a flash.
    let (s, h, _) = post(
        base,
        Some(&steward),
        &format!("/approvals/{id}/deny"),
        &[
            ("csrf", &steward.csrf),
            ("reason", "outside the protocol's scope"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[LOCATION], "/approvals?flash=flash.site_denied");
    match Approvals::new(&dir)
        .get(&pending.job_id)
        .unwrap()
        .unwrap()
        .state
    {
        ApprovalState::Denied { by, reason, .. } => {
            assert_eq!(
                (by.as_str(), reason.as_str()),
                ("steward1", "outside the protocol's scope")
            );
        }
        s => panic!("{s:?}"),
    }
    // Deciding twice is refused.
    let (_, h, _) = post(
        base,
        Some(&steward),
        &format!("/approvals/{id}/approve"),
        &[("csrf", &steward.csrf)],
    )
    .await;
    assert_eq!(h[LOCATION], "/approvals?flash=flash.err_site_no_job");
    // An unknown action: a 400 naming it (not a "no such page"), signed in or not; the job
    // stays as decided.
    for who in [Some(&steward), None] {
        let (s, _, body) = post(
            base,
            who,
            &format!("/approvals/{id}/approve-all"),
            &[("csrf", &steward.csrf)],
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body.contains("Unknown action “approve-all” for a queued job: approve or deny."),
            "{body}"
        );
    }
    assert!(matches!(
        Approvals::new(&dir)
            .get(&pending.job_id)
            .unwrap()
            .unwrap()
            .state,
        ApprovalState::Denied { .. }
    ));

    // Policy: every bad field gets its own message; nothing is saved.
    let before = qiao_site::SitePolicy::load(&dir).unwrap();
    let bad = [
        ("csrf", steward.csrf.as_str()),
        ("cohort_count", "manual"),
        ("demographics", "sometimes"),
        ("min_cell_count", "0"),
        ("release", "dp"),
        ("secondary_suppression", "on"),
        ("sigma", "NaN"),
        ("user_rho", "-1"),
        ("organization_rho", "1"),
        ("site_rho", "0"),
    ];
    let (s, _, body) = post(base, Some(&steward), "/policy", &bad).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    for field in [
        "demographics",
        "min_cell_count",
        "sigma",
        "user_rho",
        "site_rho",
    ] {
        assert!(
            body.contains(&format!("id=\"err-{field}\"")),
            "no error next to {field}: {body}"
        );
    }
    assert!(!body.contains("id=\"err-cohort_count\""));
    assert_eq!(
        qiao_site::SitePolicy::load(&dir).unwrap(),
        before,
        "nothing half-saved"
    );

    let good = [
        ("csrf", steward.csrf.as_str()),
        ("cohort_count", "manual"),
        ("demographics", "deny"),
        ("min_cell_count", "11"),
        ("release", "dp"),
        ("secondary_suppression", "on"),
        ("sigma", "7.5"),
        ("user_rho", "0.25"),
        ("organization_rho", "0.75"),
        ("site_rho", "3"),
    ];
    let (s, h, _) = post(base, Some(&steward), "/policy", &good).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[LOCATION], "/policy?flash=flash.site_policy_saved");
    let after = qiao_site::SitePolicy::load(&dir).unwrap();
    assert_eq!(after.cohort_count, qiao_site::Approval::Manual);
    assert_eq!(after.demographics, qiao_site::Approval::Deny);
    assert_eq!(after.min_cell_count, 11);
    assert_eq!(after.release, qiao_disclosure::ReleaseMode::Dp);
    assert_eq!(after.dp.sigma, 7.5);
    assert_eq!(
        (
            after.dp.user_rho,
            after.dp.organization_rho,
            after.dp.site_rho
        ),
        (0.25, 0.75, 3.0)
    );

    // The audit page verifies the chain and shows the steward's actions.
    let (s, _, body) = get(base, Some(&steward), "/audit").await;
    assert_eq!(s, StatusCode::OK);
    let entries = audit_entries(&data);
    let head = entries.last().unwrap();
    assert!(
        body.contains(&format!(
            "Hash chain verified: {} entries, head #{} {}",
            entries.len(),
            head.seq,
            head.hash
        )),
        "{body}"
    );
    for action in ["job.deny", "policy.set", "ui.login", "ui.login_fail"] {
        assert!(
            body.contains(&format!("<code>{action}</code>")),
            "{action}: {body}"
        );
    }
    let policy_entry = entries.iter().find(|e| e.action == "policy.set").unwrap();
    assert_eq!(
        policy_entry.actor.to_string(),
        qiao_audit::Actor::User("steward1".into()).to_string()
    );

    // A tampered log is reported as broken on the page.
    let log = std::fs::read_to_string(data.join("audit.log")).unwrap();
    std::fs::write(
        data.join("audit.log"),
        log.replacen("outside the protocol", "inside the protocol", 1),
    )
    .unwrap();
    let (_, _, body) = get(base, Some(&steward), "/audit").await;
    assert!(body.contains("Hash chain verification FAILED"), "{body}");
    std::fs::write(data.join("audit.log"), log).unwrap();

    // The investigator's pre-screening list: cohort 3's 266 persons, their index dates, audited.
    let inv = sign_in(base, "dr.wang", PW).await.unwrap();
    let (_, _, index) = get(base, Some(&inv), "/prescreen").await;
    let digest = qiao_site::cohorts::digest(&counted.definition);
    let list = format!("/prescreen/{}/{digest}", counted.project_id);
    assert!(index.contains(&format!("href=\"{list}\"")), "{index}");
    let (s, _, body) = get(base, Some(&inv), &list).await;
    assert_eq!(s, StatusCode::OK);
    let rows = qiao_site::run_definition(store(), &counted.definition)
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 266);
    // Rows of the list's table (the definition's narrative above it has tables of its own).
    let list_rows = |body: &str| {
        body.split("<table class=\"prescreen\">")
            .nth(1)
            .and_then(|t| t.split("</table>").next())
            .unwrap_or_else(|| panic!("no list table: {body}"))
            .matches("<tr><td>")
            .count()
    };
    assert_eq!(
        list_rows(&body),
        100,
        "one row per cohort entry, 100 a page"
    );
    assert!(body.contains("266 rows selected · page 1 of 3"), "{body}");
    let (_, _, last_page) = get(base, Some(&inv), &format!("{list}?page=3")).await;
    assert_eq!(list_rows(&last_page), 66);
    // Sorted by person, descending; filtered by one person; every selected row as CSV.
    let max_id = rows.iter().map(|r| r.subject_id).max().unwrap();
    let (_, _, sorted) = get(base, Some(&inv), &format!("{list}?sort=person&desc=1")).await;
    assert!(
        sorted.contains(&format!("<tbody><tr><td>{max_id}</td>")),
        "{sorted}"
    );
    let (s, _, csv) = get(base, Some(&inv), &format!("{list}?format=csv")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        csv.starts_with("person,index_date,end_date,source_value,mark\r\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 267);
    let (_, _, one) = get(base, Some(&inv), &format!("{list}?q={max_id}&format=csv")).await;
    assert!(
        one.lines().skip(1).all(|l| l.contains(&max_id.to_string())),
        "{one}"
    );
    let first = &rows[0];
    let (y, m, d) = qiao_cdm::date::to_ymd(first.start);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    assert!(
        body.contains(&format!(
            "<tr><td>{}</td><td>{d} {} {y}</td>",
            first.subject_id,
            months[m as usize - 1]
        )),
        "first row {first:?}: {body}"
    );
    // Beside it, the hospital's own record number (`person_source_value`) from the CDM.
    let mut people =
        csv::Reader::from_path(common::data("eunomia-gibleed-5.3/person.csv")).unwrap();
    let cols = people.headers().unwrap().clone();
    let col = |n: &str| cols.iter().position(|c| c == n).unwrap();
    let (pid, psv) = (col("person_id"), col("person_source_value"));
    let record = people
        .records()
        .map(Result::unwrap)
        .find(|r| r[pid].parse::<i64>().unwrap() + ID_OFFSET == first.subject_id)
        .unwrap();
    assert_eq!(record[psv].len(), 36, "a GiBleed source value is a UUID");
    let row = body
        .split("<tr>")
        .find(|r| r.starts_with(&format!("<td>{}</td>", first.subject_id)))
        .unwrap();
    // Then the recruitment mark (none yet) and the mark form (issue 17).
    assert!(
        row.contains(&format!(
            "<td>{}</td><td></td><td><form class=\"mark\"",
            &record[psv]
        )),
        "{row}"
    );
    assert!(body.contains(">Local record number</a></th>"), "{body}");
    assert!(body.contains("266 patients (266 cohort entries)"), "{body}");
    let last = audit_entries(&data).pop().unwrap();
    assert_eq!(last.action, "prescreen.list");
    let decision = last.decision.unwrap();
    assert!(decision.contains("listed 266 cohort rows of 266 persons to investigator dr.wang"));
    assert!(
        decision.contains("exported as CSV"),
        "the export is audited: {decision}"
    );
    // A definition the site never received is not listed (no arbitrary paths either).
    let (s, _, _) = get(
        base,
        Some(&inv),
        &format!("/prescreen/{}/{}", counted.project_id, "0".repeat(64)),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = get(base, Some(&inv), "/prescreen/..%2F..%2Fetc/passwd").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Chinese pages from the lang cookie.
    let zh = Browser {
        cookie: inv.cookie.replace("lang=en", "lang=zh-CN"),
        csrf: inv.csrf.clone(),
    };
    let (_, _, body) = get(base, Some(&zh), &list).await;
    assert!(
        body.contains("<html lang=\"zh-CN\">") && body.contains("预筛选名单"),
        "{body}"
    );
    assert!(
        body.contains(&format!("<td>{y}年{m}月{d}日</td>")),
        "{body}"
    );
}

/// Render times of every page (server side, loopback, GiBleed), printed for the README: the
/// median of 20 requests each. Not asserted (a shared machine's timing is not a test result).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_render_times() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _, counted) = site(tmp.path()).await;
    let srv = start_ui(&data, true).await;
    let base = srv.base.as_str();
    let steward = sign_in(base, "steward1", PW).await.unwrap();
    let inv = sign_in(base, "dr.wang", PW).await.unwrap();
    let digest = qiao_site::cohorts::digest(&counted.definition);
    let list = format!("/prescreen/{}/{digest}", counted.project_id);
    let mut medians: HashMap<String, Duration> = HashMap::new();
    for (path, b) in [
        ("/login", None),
        ("/approvals", Some(&steward)),
        ("/policy", Some(&steward)),
        ("/audit", Some(&steward)),
        ("/prescreen", Some(&inv)),
        (list.as_str(), Some(&inv)),
    ] {
        let mut times = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let (s, _, _) = get(base, b, path).await;
            times.push(t.elapsed());
            assert_eq!(s, StatusCode::OK, "{path}");
        }
        times.sort();
        medians.insert(path.to_owned(), times[times.len() / 2]);
    }
    let mut lines: Vec<_> = medians.iter().collect();
    lines.sort();
    for (path, d) in lines {
        eprintln!(
            "site ui render median {:>8.2} ms  {path}",
            d.as_secs_f64() * 1000.0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_limited_and_passwords_follow_the_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _, _) = site(tmp.path()).await;
    let dir = SiteDir::open(&data).unwrap();
    // The hub's password policy, at the site too.
    for (pw, why) in [
        ("elevenchars", "at least 12 characters"),
        ("               ", "only spaces"),
        ("i am dr.chen, really", "user name"),
        ("Password2024!", "too common"),
    ] {
        let e = Users::add(&dir, "dr.chen", LocalRole::Investigator, pw, now()).unwrap_err();
        assert!(e.to_string().contains(why), "{pw}: {e}");
    }
    assert!(!Users::load(&dir).unwrap().users.contains_key("dr.chen"));
    let server = start_ui(&data, true).await;
    // 30 wrong passwords in parallel: 5 are checked, 25 refused by the limiter.
    let tries: Vec<_> = (0..30)
        .map(|_| {
            let base = server.base.clone();
            tokio::spawn(async move {
                sign_in(&base, "steward1", "not the password")
                    .await
                    .err()
                    .unwrap()
                    .0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tries {
        statuses.push(t.await.unwrap());
    }
    let wrong = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((wrong, limited), (5, 25), "{statuses:?}");
    // The right password no longer signs in within the window.
    let (status, body) = sign_in(&server.base, "steward1", PW)
        .await
        .err()
        .expect("limited");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(body.contains("Too many failed sign-ins"), "{body}");
    // Other accounts are not locked by steward1's failures.
    assert!(sign_in(&server.base, "dr.wang", PW).await.is_ok());
    // Every refusal is in the audit log.
    let (entries, _) = qiao_site::audit::read(&dir).unwrap();
    let limited_entries = entries
        .iter()
        .filter(|e| {
            e.action == "ui.login_fail"
                && e.decision
                    .as_deref()
                    .is_some_and(|d| d.starts_with("rate_limited"))
        })
        .count();
    assert_eq!(limited_entries, 26);
}

/// Pre-screening lists open only for a project the site accepted, to an investigator assigned
/// to it there; every refusal is a 403 and audited (who, project, digest), without patient data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prescreen_opens_only_for_accepted_projects_to_assigned_investigators() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _, counted) = site(tmp.path()).await;
    let dir = SiteDir::open(&data).unwrap();
    Users::add(&dir, "dr.zhao", LocalRole::Investigator, PW, now()).unwrap();
    let srv = start_ui(&data, true).await;
    let base = srv.base.as_str();
    let wang = sign_in(base, "dr.wang", PW).await.unwrap();
    let zhao = sign_in(base, "dr.zhao", PW).await.unwrap();
    let project = counted.project_id.as_str();
    let digest = qiao_site::cohorts::digest(&counted.definition);
    let list = format!("/prescreen/{project}/{digest}");
    let denials = |data: &std::path::Path| -> Vec<qiao_audit::Entry> {
        audit_entries(data)
            .into_iter()
            .filter(|e| e.action == "prescreen.deny")
            .collect()
    };

    // The assigned investigator sees the list.
    let (s, _, body) = get(base, Some(&wang), &list).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("266 patients"), "{body}");

    // An investigator not assigned to the project: 403, audited, nothing listed.
    let (s, _, body) = get(base, Some(&zhao), &list).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("not assigned to project"), "{body}");
    assert!(!body.contains("<tr><td>"), "{body}");
    let d = denials(&data);
    let last = d.last().unwrap();
    assert_eq!(last.actor.to_string(), "user:dr.zhao");
    assert_eq!(last.project.as_deref(), Some(project));
    let why = last.decision.clone().unwrap();
    assert!(
        why.contains("not assigned") && why.contains(&digest),
        "{why}"
    );

    // The steward revokes the project: the assigned investigator is refused too.
    Projects::revoke(&dir, project, "steward1").unwrap();
    let (s, _, body) = get(base, Some(&wang), &list).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("is not accepted at this site"), "{body}");
    let d2 = denials(&data);
    assert_eq!(d2.len(), d.len() + 1);
    assert!(d2
        .last()
        .unwrap()
        .decision
        .clone()
        .unwrap()
        .contains("not accepted"));

    // Accepted again (the assignment stayed): open again; the openings are audited with counts
    // only, never an id.
    Projects::accept(&dir, project, "steward1", now()).unwrap();
    let (s, _, _) = get(base, Some(&wang), &list).await;
    assert_eq!(s, StatusCode::OK);
    let listed: Vec<_> = audit_entries(&data)
        .into_iter()
        .filter(|e| e.action == "prescreen.list")
        .collect();
    assert_eq!(listed.len(), 2);
    let rows = qiao_site::run_definition(store(), &counted.definition)
        .unwrap()
        .rows;
    let log = std::fs::read_to_string(dir.audit_path()).unwrap();
    for r in &rows {
        assert!(!log.contains(&r.subject_id.to_string()));
    }
    // Who changed what is audited.
    let actions: Vec<String> = audit_entries(&data).into_iter().map(|e| e.action).collect();
    for a in ["project.accept", "project.assign", "project.revoke"] {
        assert!(actions.iter().any(|x| x == a), "{a}: {actions:?}");
    }
    // Assigning a steward (not an investigator) is refused.
    assert!(Projects::assign(&dir, project, "steward1", "steward1").is_err());
}

/// Alliance sign-in: a hub-signed assertion for this site, fresh and used once, mapped to the
/// local role the steward granted on `/accounts`; expired, replayed, wrong-audience, forged,
/// long-lived and ungranted sign-ins are refused and audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alliance_sign_in_takes_a_fresh_hub_assertion_for_this_site_once() {
    use qiao_protocol::login::{seal_login, LoginClaims};
    let tmp = tempfile::tempdir().unwrap();
    let hub = FakeHub::new();
    let (url, _task) = start(hub.clone(), 0).await;
    let data = tmp.path().join("site");
    let cfg = enroll_site(&hub, &url, &data, "hospital-al").await;
    let dir = SiteDir::open(&data).unwrap();
    Users::add(&dir, "steward1", LocalRole::Steward, PW, now()).unwrap();
    let counted = job(QueryType::CohortCount, definition(3), "sponsor1");
    qiao_site::cohorts::remember(&dir, &counted, now()).unwrap();
    let project = counted.project_id.as_str();
    Projects::accept(&dir, project, "steward1", now()).unwrap();
    let srv = start_ui(&data, true).await;
    let base = srv.base.as_str();
    let me = cfg.site_id.clone();
    let key = hub.signer.signing_key();
    let claims = |user: &str, site: &qiao_protocol::SiteId, iat: i64, exp: i64| LoginClaims {
        audience: site.clone(),
        user: qiao_protocol::UserId::new(user.to_owned()).unwrap(),
        role: qiao_protocol::UserRole::SiteInvestigator,
        nonce: qiao_protocol::Nonce::random(),
        issued_at: iat,
        expires_at: exp,
    };
    let fresh = |user: &str| seal_login(key, &claims(user, &me, now(), now() + 120));

    // The steward grants alliance user inv.li the investigator role (and assigns the project).
    let stew = sign_in(base, "steward1", PW).await.unwrap();
    let (s, _, body) = post(
        base,
        Some(&stew),
        "/accounts",
        &[
            ("csrf", &stew.csrf),
            ("user", "bad id!"),
            ("role", "investigator"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (s, h, _) = post(
        base,
        Some(&stew),
        "/accounts",
        &[
            ("csrf", &stew.csrf),
            ("user", "inv.li"),
            ("role", "investigator"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[LOCATION], "/accounts?flash=flash.saved");
    let (s, _, body) = get(base, Some(&stew), "/accounts").await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("<td>inv.li</td>"), "{body}");
    Projects::assign(&dir, project, "alliance:inv.li", "steward1").unwrap();

    // A fresh assertion signs in; the same one again is refused.
    let a = fresh("inv.li");
    let (s, h, body) = post(
        base,
        None,
        "/alliance/login",
        &[("assertion", &a), ("next", "/prescreen")],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.contains("href=\"/prescreen\""), "{body}");
    let (session, _) = set_cookie(&h, "qiao_session").expect("session cookie");
    let li = Browser {
        cookie: format!("{session}; lang=en"),
        csrf: String::new(),
    };
    let digest = qiao_site::cohorts::digest(&counted.definition);
    let (s, _, body) = get(base, Some(&li), &format!("/prescreen/{project}/{digest}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("266 patients"), "{body}");
    // As an investigator, not a steward.
    let (s, _, _) = get(base, Some(&li), "/approvals").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        get(base, Some(&li), "/accounts").await.0,
        StatusCode::FORBIDDEN
    );
    let (s, _, body) = post(base, None, "/alliance/login", &[("assertion", &a)]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "replayed: {body}");
    // The portal's link (GET) works the same way, once.
    let g = fresh("inv.li");
    let link = format!("/alliance/login?assertion={g}&next=%2Fprescreen");
    assert_eq!(get(base, None, &link).await.0, StatusCode::OK);
    assert_eq!(get(base, None, &link).await.0, StatusCode::UNAUTHORIZED);

    // Expired, for another site, signed by another key, valid for an hour: refused.
    let t = now();
    let other_site: qiao_protocol::SiteId = "someone-else".parse().unwrap();
    let stranger = qiao_protocol::keys::generate_signing_key();
    let refused = [
        seal_login(key, &claims("inv.li", &me, t - 200, t - 80)),
        seal_login(key, &claims("inv.li", &other_site, t, t + 120)),
        seal_login(&stranger, &claims("inv.li", &me, t, t + 120)),
        seal_login(key, &claims("inv.li", &me, t, t + 3600)),
        "garbage".to_owned(),
    ];
    for bad in &refused {
        let (s, h, body) = post(base, None, "/alliance/login", &[("assertion", bad)]).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{bad:.40}: {body}");
        assert!(set_cookie(&h, "qiao_session").is_none());
    }
    // A valid assertion for a user without a granted role — even one named like a local
    // account — is refused: alliance users act only in the role granted to them.
    for user in ["sponsor1", "steward1"] {
        let (s, h, body) = post(
            base,
            None,
            "/alliance/login",
            &[("assertion", &fresh(user))],
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains("holds no role"), "{body}");
        assert!(set_cookie(&h, "qiao_session").is_none());
    }
    // Withdrawn: refused from then on.
    let (s, _, _) = post(
        base,
        Some(&stew),
        "/accounts",
        &[("csrf", &stew.csrf), ("user", "inv.li"), ("role", "none")],
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (s, _, _) = post(
        base,
        None,
        "/alliance/login",
        &[("assertion", &fresh("inv.li"))],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The session inv.li opened before loses the role at its next request (not after the 8 h
    // a session lasts): sent to sign in, the list no longer shown, the end audited.
    let (s, h, body) = get(base, Some(&li), &format!("/prescreen/{project}/{digest}")).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
    assert!(h[LOCATION].to_str().unwrap().starts_with("/login"), "{h:?}");
    assert!(!body.contains("266 patients"));
    let ended: Vec<String> = audit_entries(&data)
        .into_iter()
        .filter(|e| e.action == "ui.session_end")
        .filter_map(|e| e.decision)
        .collect();
    assert_eq!(
        ended,
        ["session ended: alliance:inv.li holds no role at this site any more"],
    );
    // Every refusal is audited with its reason; investigators cannot reach /accounts.
    let fails: Vec<String> = audit_entries(&data)
        .into_iter()
        .filter(|e| e.action == "ui.login_fail")
        .filter_map(|e| e.decision)
        .collect();
    for why in [
        "already used",
        "expired",
        "not this site",
        "not signed by the pinned hub key",
        "lifetime",
        "malformed",
        "no local role granted",
    ] {
        assert!(fails.iter().any(|f| f.contains(why)), "{why}: {fails:?}");
    }
    // (The withdrawn session is gone: /accounts sends inv.li to sign in.)
    assert_eq!(
        get(base, Some(&li), "/accounts").await.0,
        StatusCode::SEE_OTHER
    );
    let grants: Vec<String> = audit_entries(&data)
        .into_iter()
        .filter(|e| e.action == "user.grant")
        .filter_map(|e| e.decision)
        .collect();
    assert_eq!(grants.len(), 2, "{grants:?}");

    // The steward's audit page: filtered by action, action names localized, CSV export.
    let (s, _, body) = get(base, Some(&stew), "/audit?action=ui.login_fail").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body.contains(&format!("{} entries selected", fails.len())),
        "{body}"
    );
    assert!(body.contains("Refused sign-in") && body.contains("Hash chain verified"));
    let zh = Browser {
        cookie: stew.cookie.replace("lang=en", "lang=zh-CN"),
        csrf: String::new(),
    };
    let (_, _, body) = get(base, Some(&zh), "/audit?action=user.grant").await;
    assert!(body.contains("设置联盟用户的站点角色"), "{body}");
    let (s, h, csv) = get(base, Some(&stew), "/audit?action=user.grant&format=csv").await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.contains("user:steward1,user.grant,"), "{csv}");
}

/// Issue 17: the investigator marks candidates of the list screened / enrolled / excluded (day,
/// optional reason), kept at the site and audited without the person's id; the list filters by
/// mark; bad marks are refused with a message and change nothing; each user's own time zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn investigators_mark_candidates_and_filter_the_list_by_mark() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _, counted) = site(tmp.path()).await;
    let dir = SiteDir::open(&data).unwrap();
    let srv = start_ui(&data, true).await;
    let base = srv.base.as_str();
    let wang = sign_in(base, "dr.wang", PW).await.unwrap();
    let project = counted.project_id.as_str();
    let digest = qiao_site::cohorts::digest(&counted.definition);
    let list = format!("/prescreen/{project}/{digest}");
    let action = format!("{list}/mark");
    let rows = qiao_site::run_definition(store(), &counted.definition)
        .unwrap()
        .rows;
    let first = rows[0].subject_id;
    let second = rows
        .iter()
        .map(|r| r.subject_id)
        .find(|p| *p != first)
        .unwrap();
    let (s, _, body) = get(base, Some(&wang), &list).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains(&format!("action=\"{action}\"")), "{body}");
    let mark = |person: i64, m: &'static str, date: &'static str, reason: &'static str| {
        let (action, csrf) = (action.clone(), wang.csrf.clone());
        let cookie = Browser {
            cookie: wang.cookie.clone(),
            csrf: wang.csrf.clone(),
        };
        async move {
            post(
                base,
                Some(&cookie),
                &action,
                &[
                    ("csrf", csrf.as_str()),
                    ("person", &person.to_string()),
                    ("mark", m),
                    ("date", date),
                    ("reason", reason),
                    ("back", "q=&from=&to=&mark=&sort=mark&desc=1"),
                ],
            )
            .await
        }
    };
    // Saved: back to the list's selection with a message.
    let (s, h, _) = mark(first, "enrolled", "2026-11-20", "").await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(
        h[LOCATION],
        format!("{list}?q=&from=&to=&mark=&sort=mark&desc=1&flash=flash.mark_saved").as_str()
    );
    let (s, _, _) = mark(second, "excluded", "2026-11-21", "declined the visits").await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    // Refused, each with its message, nothing changed: a future day, enrolling the excluded
    // one, a person not on the list, a forged form.
    for (person, m, date, flash) in [
        (first, "screened", "2099-01-01", "flash.err_mark_future"),
        (second, "enrolled", "2026-11-25", "flash.err_mark_conflict"),
        (-5, "screened", "2026-11-25", "flash.err_mark_person"),
        (first, "screened", "11/25/2026", "flash.err_mark_date"),
    ] {
        let (s, h, _) = mark(person, m, date, "").await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let to = h[LOCATION].to_str().unwrap();
        assert!(to.ends_with(&format!("flash={flash}")), "{to}");
        let (_, _, page) = get(base, Some(&wang), to).await;
        assert!(page.contains("class=\"flash err\""), "{page}");
    }
    let (s, _, _) = post(
        base,
        Some(&wang),
        &action,
        &[
            ("csrf", "forged"),
            ("person", &first.to_string()),
            ("mark", "screened"),
            ("date", "2026-11-01"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let marks = qiao_site::recruitment::load(&dir, project).unwrap();
    assert_eq!(marks.persons.len(), 2);
    assert_eq!(
        marks.persons[&first].enrolled.as_deref(),
        Some("2026-11-20")
    );
    assert_eq!(
        marks.persons[&first].screened.as_deref(),
        Some("2026-11-20")
    );
    assert_eq!(
        marks.persons[&second].reason.as_deref(),
        Some("declined the visits")
    );
    assert_eq!(marks.persons[&second].by, "dr.wang");
    // The list filters by mark; the mark shows in its column and in the CSV.
    let (_, _, body) = get(base, Some(&wang), &format!("{list}?mark=enrolled")).await;
    assert!(body.contains("1 rows selected"), "{body}");
    assert!(body.contains("Enrolled 20 Nov 2026"), "{body}");
    let (_, _, body) = get(base, Some(&wang), &format!("{list}?mark=unmarked")).await;
    let all = rows.len();
    assert!(
        body.contains(&format!("{} rows selected", all - 2)),
        "{body}"
    );
    let (_, _, csv) = get(
        base,
        Some(&wang),
        &format!("{list}?mark=excluded&format=csv"),
    )
    .await;
    assert!(
        csv.starts_with("person,index_date,end_date,source_value,mark\r\n"),
        "{csv}"
    );
    assert!(csv.contains("excluded 2026-11-21"), "{csv}");
    // Every change audited, none naming the person; the reason stays in the marks file.
    let marked: Vec<String> = audit_entries(&data)
        .into_iter()
        .filter(|e| e.action == "recruitment.mark")
        .map(|e| e.decision.unwrap_or_default())
        .collect();
    assert_eq!(marked.len(), 2, "{marked:?}");
    assert!(
        marked[1].ends_with("excluded on 2026-11-21 (reason recorded at the site)"),
        "{marked:?}"
    );
    let log = std::fs::read_to_string(dir.audit_path()).unwrap();
    assert!(!log.contains(&format!("{first}")) && !log.contains("declined the visits"));
    // A steward cannot mark.
    let stew = sign_in(base, "steward1", PW).await.unwrap();
    let (s, _, _) = post(
        base,
        Some(&stew),
        &action,
        &[
            ("csrf", &stew.csrf),
            ("person", &first.to_string()),
            ("mark", "clear"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Each user's zone: dr.wang chooses UTC+05:30; the cookie is set now and at the next
    // sign-in, and times are shown in it.
    let (s, _, body) = get(base, Some(&wang), "/settings").await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("name=\"zone\""), "{body}");
    // A value that is no zone is refused by name; nothing is saved.
    let (s, _, body) = post(
        base,
        Some(&wang),
        "/settings",
        &[("csrf", &wang.csrf), ("zone", "Mars/Olympus")],
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("“Mars/Olympus” is not a time zone"), "{body}");
    assert_eq!(qiao_site::users::zone_of(&dir, "dr.wang").unwrap(), None);
    let (s, h, _) = post(
        base,
        Some(&wang),
        "/settings",
        &[("csrf", &wang.csrf), ("zone", "Asia/Kolkata")],
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (tz, _) = set_cookie(&h, "tz").expect("the zone cookie");
    assert_eq!(tz, "tz=Asia/Kolkata");
    let with_zone = Browser {
        cookie: format!("{}; {tz}", wang.cookie),
        csrf: wang.csrf.clone(),
    };
    let (_, _, body) = get(base, Some(&with_zone), "/settings").await;
    assert!(body.contains("UTC+05:30"), "{body}");
    assert!(
        body.contains("<option value=\"Asia/Kolkata\" selected>"),
        "{body}"
    );
    assert_eq!(
        qiao_site::users::zone_of(&dir, "dr.wang")
            .unwrap()
            .as_deref(),
        Some("Asia/Kolkata")
    );
    // Signing in again sets it from the account.
    let c = client();
    let r = c.get(format!("{base}/login")).send().await.unwrap();
    let (pre, _) = set_cookie(r.headers(), "qiao_pre").unwrap();
    let csrf = hidden_csrf(&r.text().await.unwrap());
    let r = c
        .post(format!("{base}/login"))
        .header(COOKIE, &pre)
        .form(&[
            ("csrf", csrf.as_str()),
            ("user", "dr.wang"),
            ("password", PW),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        set_cookie(r.headers(), "tz").map(|c| c.0).as_deref(),
        Some("tz=Asia/Kolkata")
    );
}
