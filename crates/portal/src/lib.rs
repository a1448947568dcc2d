//! `qiao_portal`: the alliance portal served by `qiao hub serve` — member institutions, the
//! scientific committee, the clinical research project pipeline with trial feasibility, site
//! selection and enrollment reports, and the phenotype library — in zh-CN and en.
//!
//! - [`web`]: the request context (language, signed-in user from the session cookie), the CSRF-
//!   checked form extractor, sign-in/out, the role checks of pages.
//! - [`pages`]: the page handlers and [`router`].
//!
//! The HTML framework (layout, catalogs, charts, cookies) is `qiao_web`; the hub's state and
//! users are `qiao_hub`'s.

// Handlers return `Result<_, Response>`: the error side is a rendered error page, as in axum.
#![allow(clippy::result_large_err)]

pub mod alliance;
pub mod demo;
pub mod pages;
pub mod web;

use std::sync::Arc;

use axum::Router;
use qiao_hub::Hub;

pub use pages::router;

/// Portal settings.
#[derive(Clone, Debug)]
pub struct PortalConfig {
    /// Mark cookies `Secure` (false only when the hub serves plain HTTP, `--insecure-http`).
    pub secure_cookies: bool,
    /// The portal's address as its users reach it (scheme, host, port): the start of every
    /// link handed out to be opened elsewhere (invitations, password resets). `None`: the
    /// scheme of the cookie policy and the request's `Host`.
    pub public_url: Option<String>,
}

/// The hub's whole HTTP surface: the JSON API and site protocol (`/api/v1/...`) and the
/// portal's pages.
/// A path neither serves is the portal's 404 page (with the navigation), or under `/api/` the
/// API's JSON 404.
pub fn app(hub: Arc<Hub>, config: PortalConfig) -> Router {
    router(hub.clone(), config).merge(qiao_hub::api::routes(hub))
}
