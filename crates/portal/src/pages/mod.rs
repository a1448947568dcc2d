//! The portal's pages and [`router`].

mod analyses;
mod audit;
mod auth;
mod budget;
mod common;
mod dashboard;
mod feasibility;
mod guidance;
mod library;
mod members;
mod people;
mod projects;
mod recruitment;
mod results;
mod runs;
mod settings;
mod versions;

use std::sync::Arc;

use axum::middleware;
use axum::routing::{get, post};
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
    let state = Arc::new(Portal {
        hub,
        cookies,
        public_url: config
            .public_url
            .map(|u| u.trim_end_matches('/').to_owned()),
    });
    Router::new()
        .route("/", get(dashboard::dashboard))
        .route("/login", get(auth::login_page).post(auth::login_submit))
        .route("/logout", post(auth::logout))
        .route(
            "/apply",
            get(members::apply_page).post(members::apply_submit),
        )
        .route("/audit", get(audit::audit))
        .route("/apply/status", get(people::apply_status))
        .route("/admin/users", get(people::users))
        .route("/admin/users/invite", post(people::invite))
        .route("/admin/users/{id}/{action}", post(people::user_action))
        .route(
            "/join/{secret}",
            get(people::join_page).post(people::join_submit),
        )
        .route("/sites/{site}/open", get(people::open_site))
        .route("/sites/{site}/pages", post(people::set_pages))
        .route("/institutions", get(members::institutions))
        .route("/institutions/{id}/decide", post(members::decide))
        .route("/committee", get(members::committee))
        .route("/committee/experts", post(members::appoint))
        .route("/committee/criteria", post(members::set_criteria))
        .route("/committee/quorum", post(members::set_quorum))
        .route("/projects", get(projects::list).post(projects::create))
        .route("/projects/{id}", get(projects::detail))
        .route("/projects/{id}/transition", post(projects::transition))
        .route("/projects/{id}/reviewers", post(projects::assign))
        .route("/projects/{id}/review", post(projects::review))
        .route("/projects/{id}/decide", post(projects::decide))
        .route("/projects/{id}/cohorts", post(projects::attach))
        .route("/projects/{id}/cohorts/{n}/run", post(projects::run))
        .route(
            "/projects/{id}/cohorts/{n}/replace",
            post(projects::replace),
        )
        .route("/projects/{id}/cohorts/{n}/diff", get(versions::diff))
        .route(
            "/projects/{id}/cohorts/{n}/compare",
            get(runs::compare_page),
        )
        .route("/projects/{id}/reports.csv", get(runs::reports_csv))
        .route("/projects/{id}/cohorts/{n}/results.csv", get(results::csv))
        .route("/projects/{id}/analyses", post(projects::launch_analysis))
        .route("/projects/{id}/analyses/{n}", get(analyses::result_page))
        .route("/projects/{id}/analyses/{n}/{table}", get(analyses::csv))
        .route("/projects/{id}/analyses/{n}/resume", post(analyses::resume))
        .route("/projects/{id}/invite", post(projects::invite))
        .route("/projects/{id}/answer", post(projects::answer))
        .route("/projects/{id}/report", post(projects::report))
        .route("/projects/{id}/recruitment", post(projects::recruitment))
        .route("/library", get(library::library))
        .route("/library/{id}", get(library::entry))
        .route("/sites", get(library::sites))
        .route("/budget", get(budget::budget))
        .route("/settings", get(settings::settings).post(settings::save))
        .fallback(not_found)
        .with_state(state)
        .merge(qiao_web::assets::routes(cookies))
        .layer(middleware::from_fn(qiao_web::zone::zone_scope))
        .layer(middleware::from_fn(security_headers))
}

/// Any other path: the portal's 404 page with the navigation; under `/api/` the API's JSON
/// 404 (the portal is mounted beside the API without the API's own fallback: [`crate::app`]).
async fn not_found(ctx: crate::web::Ctx, uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    if uri.path() == "/api" || uri.path().starts_with("/api/") {
        return qiao_hub::ApiError::not_found("no such endpoint").into_response();
    }
    ctx.not_found()
}
