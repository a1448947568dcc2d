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
