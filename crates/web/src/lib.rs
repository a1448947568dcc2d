//! `qiao_web`: the web framework pieces shared by the hub's alliance portal (`qiao_portal`) and a
//! site's local pages (`qiao site ui`). Server-rendered HTML (maud templates, compiled in), no
//! third-party JavaScript, pages that work without JavaScript (plain forms, POST-redirect-GET).
//!
//! - [`i18n`]: the zh-CN and en catalogs (`i18n/*.toml`, compiled in), [`t`] / [`tf`] lookups,
//!   language negotiation (`lang` cookie, else `Accept-Language`), locale dates and numbers.
//! - [`layout`]: the page shell (nav, language switch, flash message) and form widgets that show
//!   an error next to their field.
//! - [`session`]: cookies (session, language, pre-login CSRF), the per-session CSRF token, the
//!   security headers (CSP `default-src 'self'`, `X-Frame-Options: DENY`, ...).
//! - [`chart`]: server-made SVG charts (bars, funnel, age pyramid, lines) with accessible titles.
//! - [`markdown`]: Qiao's own Markdown (definition narratives) as HTML, raw HTML shown as text.
//! - [`assets`]: the embedded stylesheet and the routes serving it and the language switch.
//!
//! This crate knows nothing of the hub or the site: it is the presentation layer both use.
//!
//! # Using it (a page handler)
//!
//! ```ignore
//! use qiao_web::{layout::{Page, Nav}, i18n::{t, Lang}, session};
//! async fn page(headers: axum::http::HeaderMap) -> axum::response::Response {
//!     let lang = Lang::negotiate(&headers);
//!     let body = maud::html! { p { (t(lang, "dashboard.welcome")) } };
//!     Page::new(lang, "dashboard.title", "/").render(body).into_response()
//! }
//! ```
//! Every user-visible string comes from the catalogs: pass keys, never text.

pub mod assets;
pub mod audit_view;
pub mod chart;
pub mod i18n;
pub mod layout;
pub mod markdown;
pub mod session;
pub mod zone;

pub use i18n::{t, tf, Lang};
pub use maud::{html, Markup, PreEscaped};
