//! Embedded assets and the routes every UI mounts: the stylesheet and the language switch.

use axum::extract::Query;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::i18n::Lang;
use crate::session::{lang_cookie, safe_next, CookiePolicy};

/// The stylesheet (compiled in).
pub const CSS: &str = include_str!("../assets/qiao.css");
/// Where the stylesheet is served.
pub const CSS_PATH: &str = "/assets/qiao.css";
/// The favicon (a bridge, 桥; compiled in).
pub const FAVICON: &str = include_str!("../assets/favicon.svg");
/// Where the favicon is served (also at `/favicon.ico`, where browsers look unasked).
pub const FAVICON_PATH: &str = "/assets/favicon.svg";
/// The language switch: `GET /lang?to=zh-CN&next=/path` sets the `lang` cookie and redirects
/// back to `next` (a local path).
pub const LANG_PATH: &str = "/lang";

async fn css() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        CSS,
    )
        .into_response()
}

async fn favicon() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        FAVICON,
    )
        .into_response()
}

#[derive(Deserialize)]
struct LangQuery {
    to: Option<String>,
    next: Option<String>,
}

fn switch_lang(policy: CookiePolicy, headers: &HeaderMap, q: LangQuery) -> Response {
    let lang =
        q.to.as_deref()
            .and_then(Lang::from_tag)
            .unwrap_or_else(|| Lang::negotiate(headers));
    let next = safe_next(q.next.as_deref());
    let cookie = lang_cookie(policy, lang);
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let (Ok(loc), Ok(c)) = (HeaderValue::from_str(&next), HeaderValue::from_str(&cookie)) {
        resp.headers_mut().insert(header::LOCATION, loc);
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

/// The routes every UI mounts: [`CSS_PATH`] and [`LANG_PATH`]. Merge into your router.
pub fn routes<S: Clone + Send + Sync + 'static>(policy: CookiePolicy) -> Router<S> {
    Router::new()
        .route(CSS_PATH, get(css))
        .route(FAVICON_PATH, get(favicon))
        .route("/favicon.ico", get(favicon))
        .route(
            LANG_PATH,
            get(
                move |headers: HeaderMap, Query(q): Query<LangQuery>| async move {
                    switch_lang(policy, &headers, q)
                },
            ),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lang_switch_sets_the_cookie_and_returns_locally() {
        let h = HeaderMap::new();
        let r = switch_lang(
            CookiePolicy { secure: false },
            &h,
            LangQuery {
                to: Some("zh-CN".into()),
                next: Some("/projects".into()),
            },
        );
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()[header::LOCATION], "/projects");
        assert!(r.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .starts_with("lang=zh-CN;"));
        let r = switch_lang(
            CookiePolicy { secure: true },
            &h,
            LangQuery {
                to: Some("en".into()),
                next: Some("https://evil".into()),
            },
        );
        assert_eq!(r.headers()[header::LOCATION], "/");
        assert!(r.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .ends_with("Secure"));
    }

    #[test]
    fn css_has_no_external_references() {
        assert!(
            !CSS.contains("http"),
            "the stylesheet loads nothing from elsewhere"
        );
        assert!(CSS.contains(".field-error"));
    }
}
