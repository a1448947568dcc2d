//! The portal through its routes: sign-in, CSRF, security headers, language.

mod common;

use axum::http::StatusCode;
use common::{World, PASSWORD};
use qiao_hub::protocol::UserRole;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_a_strict_secure_session_cookie_and_shows_the_dashboard() {
    let w = World::new();
    w.user("ada", UserRole::AllianceAdmin, None, None);
    let mut c = w.client();
    // Anonymous: the dashboard redirects to the sign-in page.
    let r = c.get("/").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location.as_deref(), Some("/login?next=/"));
    let page = c.get("/login").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .split(';')
            .next(),
        Some("default-src 'self'")
    );
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert!(!page.body.contains("<script"), "no inline script");
    // A POST without the CSRF field is refused, whatever it carries.
    let r = c
        .send(
            "POST",
            "/login",
            Some(&[("username", "ada"), ("password", PASSWORD)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Wrong password: the message, the user name kept, no cookie.
    let r = c
        .submit(
            "/login",
            "/login",
            &[("username", "ada"), ("password", "wrong password")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.body.contains("Wrong user name or password."),
        "{}",
        r.body
    );
    assert!(r.body.contains("value=\"ada\""), "{}", r.body);
    assert!(!c.cookies.contains_key("qiao_session"));
    // Empty fields: messages next to each field.
    let r = c
        .submit("/login", "/login", &[("username", ""), ("password", "")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.body.matches("class=\"field-error\"").count(),
        2,
        "{}",
        r.body
    );
    // Right password.
    let r = c
        .submit(
            "/login",
            "/login?next=/projects",
            &[("username", "ada"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location.as_deref(), Some("/projects"));
    let cookie = r
        .set_cookies
        .iter()
        .find(|c| c.starts_with("qiao_session="))
        .expect("session cookie");
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Secure"),
        "{cookie}"
    );
    let d = c.get("/").await;
    assert_eq!(d.status, StatusCode::OK);
    assert!(d.body.contains("Welcome, ada."), "{}", d.body);
    assert!(d.body.contains("Alliance admin"), "{}", d.body);
    // Sign out revokes the session at the hub and clears the cookie: the old token no longer works.
    let token = c.cookies["qiao_session"].clone();
    assert!(w.hub.token_user(&token).unwrap().is_some());
    let r = c.submit("/", "/logout", &[]).await;
    assert!(w.hub.token_user(&token).unwrap().is_none(), "revoked");
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(!c.cookies.contains_key("qiao_session"));
    assert_eq!(c.get("/").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn language_from_the_browser_and_the_switch_persists() {
    let w = World::new();
    let mut c = w.client();
    c.lang = Some("zh-CN,zh;q=0.9,en;q=0.5");
    let r = c.get("/login").await;
    assert!(r.body.contains("<html lang=\"zh-CN\">"), "{}", r.body);
    assert!(r.body.contains("请使用您的联盟账号登录。"), "{}", r.body);
    let r = c.get("/lang?to=en&next=/login").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location.as_deref(), Some("/login"));
    let r = c.get("/login").await;
    assert!(r.body.contains("<html lang=\"en\">"), "{}", r.body);
    assert!(r.body.contains("Sign in with your alliance account."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_and_institutions_show_the_status_a_site_reported_in_both_languages() {
    let w = World::new();
    common::alliance(&w);
    common::enroll_sites(&w);
    let status = qiao_hub::protocol::SiteStatus {
        data_as_of: Some("2019-12-31".into()),
        persons_rounded: 2_700,
        min_cell_count: 11,
        obfuscation: true,
        dp: false,
    };
    let h1: qiao_hub::protocol::SiteId = "h1".parse().unwrap();
    let h2: qiao_hub::protocol::SiteId = "h2".parse().unwrap();
    let t = qiao_hub::util::now();
    w.hub.record_poll(&h1, Some(status), t);
    w.hub.record_poll(&h2, None, t);

    let mut c = w.client();
    c.login("spon").await;
    let r = c.get("/sites").await;
    assert_eq!(r.status, StatusCode::OK);
    let row = |body: &str, id: &str| -> String {
        let start = body.find(&format!("id=\"site-{id}\"")).expect("site row");
        let end = body[start..].find("</tr>").expect("row end") + start;
        body[start..end].to_owned()
    };
    let r1 = row(&r.body, "h1");
    contains_all(
        &r1,
        &[
            "Online",
            "As of 31 Dec 2019",
            "Persons ≈ 2,700",
            "Minimum cell count 11",
            "Obfuscation on",
            "Differential privacy off",
        ],
    );
    // h2 polled without a status: online, no data shown.
    let r2 = row(&r.body, "h2");
    assert!(r2.contains("Online"), "{r2}");
    assert!(!r2.contains("As of"), "{r2}");

    let r = c.get("/institutions").await;
    assert_eq!(r.status, StatusCode::OK);
    let start = r.body.find("id=\"inst-h1\"").expect("h1 row");
    let end = r.body[start..].find("</tr>").unwrap() + start;
    let inst = &r.body[start..end];
    assert!(inst.contains("As of 31 Dec 2019"), "{inst}");
    assert!(inst.contains("Minimum cell count 11"), "{inst}");

    let r = c.get("/lang?to=zh-CN&next=/sites").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = c.get("/sites").await;
    let r1 = row(&r.body, "h1");
    contains_all(
        &r1,
        &[
            "在线",
            "数据截至 2019年12月31日",
            "最小单元格计数 11",
            "扰动 开",
            "差分隐私 关",
        ],
    );
}

fn contains_all(hay: &str, wants: &[&str]) {
    for want in wants {
        assert!(hay.contains(want), "{want:?} not in {hay}");
    }
}
