//! Onboarding and identity through the pages: an applicant's reference and status, the admin
//! reading the application, invitation links creating accounts once, disabling, reset links,
//! role changes, the route × role matrix of the new pages, and the hand-off to a site's pages
//! with a hub-signed login assertion.

mod common;

use axum::http::StatusCode;
use common::{alliance, Client, World, PASSWORD};
use qiao_hub::protocol::{SiteId, UserId, UserRole};

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let i = s
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not in {s}"))
        + start.len();
    &s[i..i + s[i..].find(end).unwrap()]
}

async fn signed_in(w: &World, user: &str) -> Client {
    let mut c = w.client();
    c.login(user).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applicants_follow_their_application_by_reference() {
    let w = World::new();
    alliance(&w);
    let mut anon = w.client();
    let login = anon.get("/login").await;
    assert!(
        login.body.contains("href=\"/apply\""),
        "sign-in links to apply"
    );
    let r = anon
        .submit(
            "/apply",
            "/apply",
            &[
                ("id", "h9"),
                ("name", "Ninth Hospital"),
                ("kind", "hospital"),
                ("region", "Hangzhou"),
                ("contact", "office@h9.example.cn"),
                (
                    "description",
                    "Cardiology centre with 40,000 patients a year.",
                ),
                ("site", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let loc = r.location.unwrap();
    assert!(loc.starts_with("/apply/status?ref=Q-"), "{loc}");
    let reference = between(&loc, "ref=", "&").to_owned();
    assert_eq!(reference.len(), 14);
    let page = anon.get(&loc).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&reference) && page.body.contains("Ninth Hospital"));
    assert!(
        page.body
            .contains("id=\"status\" class=\"badge applied\">Applied"),
        "{}",
        page.body
    );
    // Case-insensitive; an unknown reference is a 404 that says so.
    let lower = anon
        .get(&format!("/apply/status?ref={}", reference.to_lowercase()))
        .await;
    assert_eq!(lower.status, StatusCode::OK);
    let unknown = anon.get("/apply/status?ref=Q-222222222222").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.body.contains("No application has this reference"));

    // The admin reads the application text while deciding.
    let mut admin = signed_in(&w, "admin").await;
    let inst = admin.get("/institutions").await;
    assert!(inst
        .body
        .contains("Cardiology centre with 40,000 patients a year."));
    let r = admin
        .submit(
            "/institutions",
            "/institutions/h9/decide",
            &[("decision", "approve")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = anon.get(&format!("/apply/status?ref={reference}")).await;
    assert!(
        page.body
            .contains("id=\"status\" class=\"badge approved\">Member"),
        "{}",
        page.body
    );
    assert!(page.body.contains("invitation links"));
    // Others do not see the application text.
    let spon = signed_in(&w, "spon").await.get("/institutions").await;
    assert!(!spon.body.contains("class=\"application\""));

    // In Chinese.
    anon.lang = Some("zh-CN");
    let zh = anon.get(&format!("/apply/status?ref={reference}")).await;
    assert!(
        zh.body.contains("申请编号") && zh.body.contains("badge approved"),
        "{}",
        zh.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitation_links_make_accounts_once_and_admins_manage_users() {
    let w = World::new();
    alliance(&w);
    let mut admin = signed_in(&w, "admin").await;
    let page = admin.get("/admin/users").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"user-spon\""));

    // A site role needs a site: the hospital's is the default; an enterprise has none.
    let r = admin
        .submit(
            "/admin/users",
            "/admin/users/invite",
            &[
                ("institution", "pharma"),
                ("role", "site_investigator"),
                ("site", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("Site roles need a site"), "{}", r.body);
    // The form keeps what was chosen: the institution and the role.
    let form = between(&r.body, "action=\"/admin/users/invite\"", "</form>");
    assert!(
        form.contains("<option value=\"pharma\" selected>"),
        "the institution chosen is kept: {form}"
    );
    assert!(
        form.contains("<option value=\"site_investigator\" selected>"),
        "the role chosen is kept: {form}"
    );
    let r = admin
        .submit(
            "/admin/users",
            "/admin/users/invite",
            &[
                ("institution", "h1"),
                ("role", "site_investigator"),
                ("site", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // An absolute link, from the configured public URL.
    let url = between(&r.body, "<code id=\"link\">", "</code>").to_owned();
    let link = url
        .strip_prefix("https://portal.example")
        .unwrap_or_else(|| panic!("not from the public URL: {url}"))
        .to_owned();
    assert!(link.starts_with("/join/qiao-i-"), "{link}");

    // The invitee chooses a name and password; a weak password is refused next to the field.
    let mut newbie = w.client();
    let j = newbie.get(&link).await;
    assert_eq!(j.status, StatusCode::OK);
    assert!(
        j.body.contains("Investigator") || j.body.contains("investigator"),
        "{}",
        j.body
    );
    let r = newbie
        .submit(
            &link,
            &link,
            &[("username", "dr.new"), ("password", "short")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("Password refused"), "{}", r.body);
    let r = newbie
        .submit(
            &link,
            &link,
            &[("username", "dr.new"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let u = common::u(&w, "dr.new");
    assert_eq!(u.role, UserRole::SiteInvestigator);
    assert_eq!(u.site, Some("h1".parse::<SiteId>().unwrap()));
    assert_eq!(u.institution.as_deref(), Some("h1"));
    // Used once.
    assert_eq!(w.client().get(&link).await.status, StatusCode::NOT_FOUND);
    let mut again = w.client();
    let pre = again.get("/login").await.csrf();
    let r = again
        .send(
            "POST",
            &link,
            Some(&[
                ("csrf", &pre),
                ("username", "dr.other"),
                ("password", PASSWORD),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(w
        .store
        .user(&UserId::new("dr.other".to_owned()).unwrap())
        .unwrap()
        .is_none());
    signed_in(&w, "dr.new").await;

    // Disable: sign-in refused; enable again.
    let r = admin
        .submit("/admin/users", "/admin/users/dr.new/disable", &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let mut c = w.client();
    let r = c
        .submit(
            "/login",
            "/login?next=/",
            &[("username", "dr.new"), ("password", PASSWORD)],
        )
        .await;
    assert_ne!(
        r.status,
        StatusCode::SEE_OTHER,
        "a disabled account cannot sign in"
    );
    assert!(admin.get("/admin/users").await.body.contains("disabled"));
    let r = admin
        .submit("/admin/users", "/admin/users/dr.new/enable", &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // The admin cannot disable themself.
    let r = admin
        .submit("/admin/users", "/admin/users/admin/disable", &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // A reset link sets a new password and ends the user's sessions.
    let mut newc = signed_in(&w, "dr.new").await;
    let r = admin
        .submit("/admin/users", "/admin/users/dr.new/reset", &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let reset = between(&r.body, "<code id=\"link\">", "</code>")
        .strip_prefix("https://portal.example")
        .expect("an absolute reset link")
        .to_owned();
    let new_pw = "a new and longer passphrase";
    let r = w
        .client()
        .submit(&reset, &reset, &[("password", new_pw)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        newc.get("/projects").await.status,
        StatusCode::SEE_OTHER,
        "session ended"
    );
    let mut c = w.client();
    let r = c
        .submit(
            "/login",
            "/login?next=/",
            &[("username", "dr.new"), ("password", new_pw)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);

    // Role change with the placement it needs.
    let r = admin
        .submit(
            "/admin/users",
            "/admin/users/dr.new/role",
            &[
                ("role", "sponsor_researcher"),
                ("institution", "pharma"),
                ("site", "h1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = admin
        .submit(
            "/admin/users",
            "/admin/users/dr.new/role",
            &[
                ("role", "sponsor_researcher"),
                ("institution", "pharma"),
                ("site", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let u = common::u(&w, "dr.new");
    assert_eq!(
        (u.role, u.site, u.institution.as_deref()),
        (UserRole::SponsorResearcher, None, Some("pharma"))
    );

    // Everything audited.
    let actions: Vec<String> = w
        .store
        .audit_entries(0, 100_000)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in [
        "account.invite",
        "user.create",
        "user.disable",
        "user.enable",
        "account.reset_link",
        "account.reset",
        "user.role",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a}");
    }
    // The page lists the links and their state; in Chinese too.
    admin.lang = Some("zh-CN");
    let zh = admin.get("/admin/users").await;
    assert!(zh.body.contains("已由 dr.new 使用"), "{}", zh.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_pages_route_role_matrix() {
    let w = World::new();
    alliance(&w);
    w.user("aud", UserRole::Auditor, None, None);
    let users = ["", "admin", "c2", "spon", "stew1", "inv1", "aud"];
    for user in users {
        let mut c = w.client();
        if !user.is_empty() {
            c.login(user).await;
        }
        let admin = user == "admin";
        let r = c.get("/admin/users").await;
        let want = match (user, admin) {
            ("", _) => StatusCode::SEE_OTHER,
            (_, true) => StatusCode::OK,
            _ => StatusCode::FORBIDDEN,
        };
        assert_eq!(r.status, want, "/admin/users as {user:?}");
        // Open to anyone.
        assert_eq!(c.get("/apply/status").await.status, StatusCode::OK);
        // The hand-off needs a session.
        let r = c.get("/sites/h2/open").await;
        let want = if user.is_empty() {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(
            r.status, want,
            "/sites/h2/open as {user:?} (no pages recorded)"
        );
        if !user.is_empty() {
            for (path, fields) in [
                (
                    "/admin/users/invite",
                    vec![("institution", "h1"), ("role", "auditor")],
                ),
                ("/admin/users/spon/disable", vec![]),
                ("/admin/users/spon/reset", vec![]),
                (
                    "/admin/users/spon/role",
                    vec![("role", "auditor"), ("institution", "pharma")],
                ),
            ] {
                let r = c.submit("/", path, &fields).await;
                if admin {
                    assert_ne!(r.status, StatusCode::FORBIDDEN, "POST {path} as admin");
                } else {
                    assert_eq!(r.status, StatusCode::FORBIDDEN, "POST {path} as {user}");
                }
            }
            // Site pages' address: the admin, or that site's steward.
            let r = c
                .submit(
                    "/",
                    "/sites/h1/pages",
                    &[("url", "https://h1.example/qiao")],
                )
                .await;
            if matches!(user, "admin" | "stew1") {
                assert_eq!(r.status, StatusCode::SEE_OTHER, "{user}");
            } else {
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{user}");
            }
        }
        if admin {
            // Re-enable what the admin's pass disabled.
            c.submit("/", "/admin/users/spon/enable", &[]).await;
        }
    }
    // POSTs without the CSRF token are refused.
    let mut admin = signed_in(&w, "admin").await;
    let r = admin
        .send("POST", "/admin/users/spon/disable", Some(&[]))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!w
        .store
        .user_disabled(&UserId::new("spon".to_owned()).unwrap())
        .unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_link_carries_a_short_lived_assertion_for_that_site_only() {
    let w = World::new();
    alliance(&w);
    let mut stew2 = signed_in(&w, "stew2").await;
    let r = stew2
        .submit(
            "/sites",
            "/sites/h1/pages",
            &[("url", "https://h1.example/qiao")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "another site's steward");
    let mut stew1 = signed_in(&w, "stew1").await;
    let r = stew1
        .submit(
            "/sites",
            "/sites/h1/pages",
            &[("url", "javascript:alert(1)")],
        )
        .await;
    assert_eq!(
        r.location.as_deref(),
        Some("/sites?flash=flash.err_site_pages")
    );
    let r = stew1
        .submit(
            "/sites",
            "/sites/h1/pages",
            &[("url", "https://h1.example/qiao/")],
        )
        .await;
    assert_eq!(r.location.as_deref(), Some("/sites?flash=flash.saved"));
    assert!(stew1
        .get("/sites")
        .await
        .body
        .contains("https://h1.example/qiao"));

    let mut inv = signed_in(&w, "inv1").await;
    let r = inv.get("/sites/h1/open?next=%2Fprescreen").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let href = between(&r.body, "id=\"open-site\" href=\"", "\"").replace("&amp;", "&");
    assert!(
        href.starts_with("https://h1.example/qiao/alliance/login?assertion="),
        "{href}"
    );
    assert!(href.ends_with("&next=/prescreen"), "{href}");
    let assertion = between(&href, "assertion=", "&").to_owned();
    let hub_key = w.store.signing_key().unwrap().verifying_key();
    let h1: SiteId = "h1".parse().unwrap();
    let t = qiao_hub::util::now();
    let c = qiao_hub::protocol::login::open_login(&assertion, &hub_key, &h1, t).unwrap();
    assert_eq!(c.user.as_str(), "inv1");
    assert_eq!(c.role, UserRole::SiteInvestigator);
    assert!(c.expires_at - c.issued_at <= 120);
    // Useless at another site, and after two minutes.
    let h2: SiteId = "h2".parse().unwrap();
    assert!(qiao_hub::protocol::login::open_login(&assertion, &hub_key, &h2, t).is_err());
    assert!(qiao_hub::protocol::login::open_login(&assertion, &hub_key, &h1, t + 121).is_err());
    // Each link is a new nonce; issuing is audited.
    let again = inv.get("/sites/h1/open").await;
    assert!(!again.body.contains(&assertion));
    let issued = w
        .store
        .audit_entries(0, 100_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "user.site_login")
        .count();
    assert_eq!(issued, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_page_is_the_portals_404_with_navigation() {
    let w = World::new();
    alliance(&w);
    let mut admin = signed_in(&w, "admin").await;
    admin.lang = Some("zh-CN");
    let r = admin.get("/no/such/page").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.body.starts_with("<!DOCTYPE html>") && r.body.contains("lang=\"zh-CN\""),
        "{}",
        r.body
    );
    // The admin's navigation and the badge stay, so the user can go on.
    assert!(r.body.contains("href=\"/admin/users\""), "{}", r.body);
    assert!(r.body.contains("action=\"/logout\""), "{}", r.body);
    // Anonymous: the page too (with the sign-in link), never the API's JSON.
    let anon = w.client().get("/projects/x/nothing/here").await;
    assert_eq!(anon.status, StatusCode::NOT_FOUND);
    assert!(anon.body.contains("<html"), "{}", anon.body);
    // Under /api/ the API's JSON 404 as before.
    let api = w.client().get("/api/v1/no-such-endpoint").await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    let v: serde_json::Value = serde_json::from_str(&api.body).expect("JSON");
    assert_eq!(v["error"]["code"], "not_found");
    assert_eq!(v["error"]["message"], "no such endpoint");
}
