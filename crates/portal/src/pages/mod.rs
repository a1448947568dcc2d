//! The portal's pages and [`router`].

mod auth;
mod dashboard;

use std::sync::Arc;

use axum::middleware;
use axum::routing::get;
use axum::Router;
use qiao_hub::Hub;
use qiao_web::session::{security_headers, CookiePolicy};

use crate::web::Portal;
use crate::PortalConfig;

/// The portal's pages (no API routes): mount beside `qiao_hub::router`, or use
/// [`crate::app`] for both.
pub fn router(hub: Arc<Hub>, config: PortalConfig) -> Router {
    let cookies = CookiePolicy {
        secure: config.secure_cookies,
    };
    let state = Arc::new(Portal { hub, cookies });
    Router::new()
        .route("/", get(dashboard::dashboard))
        .route("/login", get(auth::login_page).post(auth::login_submit))
        .route("/logout", axum::routing::post(auth::logout))
        .with_state(state)
        .merge(qiao_web::assets::routes(cookies))
        .layer(middleware::from_fn(security_headers))
}
