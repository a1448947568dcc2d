//! Cookies, CSRF and security headers.
//!
//! - The session cookie [`SESSION_COOKIE`] carries the hub's (or site's) session token:
//!   `HttpOnly; SameSite=Strict; Path=/` and `Secure` unless the server runs plain HTTP
//!   (`--insecure-http`). See [`session_cookie`].
//! - The CSRF token of a session is derived from its secret token ([`csrf_token`]): a hidden
//!   field in every form ([`crate::layout::csrf_field`]), checked on every POST with
//!   [`csrf_ok`]. Before login, a random [`PRE_COOKIE`] plays the session's part (double submit).
//! - [`security_headers`] is a middleware adding the CSP `default-src 'self'` (no inline script),
//!   `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff`, `Referrer-Policy` and
//!   `Cache-Control: no-store` on HTML.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "qiao_session";
/// The language cookie's name (`en` or `zh-CN`).
pub const LANG_COOKIE: &str = "lang";
/// The pre-login cookie (the CSRF secret of the login form).
pub const PRE_COOKIE: &str = "qiao_pre";
/// The form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// The Content-Security-Policy of every response.
pub const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
     script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 512)
}

/// How cookies are set: `secure` adds the `Secure` attribute (omit only on plain HTTP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookiePolicy {
    /// Add `Secure`.
    pub secure: bool,
}

impl CookiePolicy {
    fn attrs(self) -> &'static str {
        if self.secure {
            "; Path=/; HttpOnly; SameSite=Strict; Secure"
        } else {
            "; Path=/; HttpOnly; SameSite=Strict"
        }
    }
}

/// `Set-Cookie` value storing a session token for `max_age_secs`.
pub fn session_cookie(policy: CookiePolicy, token: &str, max_age_secs: i64) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Max-Age={max_age_secs}{}",
        policy.attrs()
    )
}

/// `Set-Cookie` value removing the session cookie.
pub fn clear_session_cookie(policy: CookiePolicy) -> String {
    format!("{SESSION_COOKIE}=; Max-Age=0{}", policy.attrs())
}

/// `Set-Cookie` value of the pre-login CSRF secret.
pub fn pre_cookie(policy: CookiePolicy, secret: &str) -> String {
    format!("{PRE_COOKIE}={secret}; Max-Age=3600{}", policy.attrs())
}

/// `Set-Cookie` value persisting a language choice for a year.
pub fn lang_cookie(policy: CookiePolicy, lang: crate::Lang) -> String {
    format!(
        "{LANG_COOKIE}={}; Max-Age=31536000{}",
        lang.code(),
        policy.attrs()
    )
}

/// A new random secret (hex of 32 random bytes) for a pre-login cookie.
pub fn random_secret() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex(&b)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The CSRF token of a session (or pre-login) secret: hex SHA-256 of a domain tag and the
/// secret. It reveals nothing about the secret, and an attacker's page cannot read it.
pub fn csrf_token(secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"qiao-web-csrf\0");
    h.update(secret.as_bytes());
    hex(&h.finalize())
}

/// Whether `submitted` is the CSRF token of `secret` (constant-time comparison).
pub fn csrf_ok(secret: &str, submitted: &str) -> bool {
    let want = csrf_token(secret);
    want.len() == submitted.len() && bool::from(want.as_bytes().ct_eq(submitted.as_bytes()))
}

/// A local redirect target from a `next` parameter: a path on this server, else `/`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control)
                && n.len() <= 512 =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// Middleware: the security headers on every response (see the module docs).
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_parsed_and_set_with_the_right_attributes() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; qiao_session=qiao-s-abc".parse().unwrap(),
        );
        h.append(header::COOKIE, "lang=zh-CN".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("qiao-s-abc"));
        assert_eq!(cookie(&h, LANG_COOKIE).as_deref(), Some("zh-CN"));
        assert_eq!(cookie(&h, "b"), None);
        let secure = CookiePolicy { secure: true };
        assert_eq!(
            session_cookie(secure, "tok", 60),
            "qiao_session=tok; Max-Age=60; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        let plain = CookiePolicy { secure: false };
        assert_eq!(
            clear_session_cookie(plain),
            "qiao_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"
        );
    }

    #[test]
    fn csrf_tokens_bind_to_their_secret() {
        let t = csrf_token("secret-1");
        assert_eq!(t.len(), 64);
        assert!(csrf_ok("secret-1", &t));
        assert!(!csrf_ok("secret-2", &t));
        assert!(!csrf_ok("secret-1", ""));
        assert!(!csrf_ok("secret-1", &t[..63]));
        assert_ne!(random_secret(), random_secret());
    }

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(safe_next(Some("/projects/p1")), "/projects/p1");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
