//! A user's remaining privacy budget per site ([`crate::store::budget`]).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::error::ApiError;
use crate::store::budget::{view_of, BudgetView};

use super::extract::{blocking, Caller};
use super::Hub;

/// This resource's routes.
pub(super) fn routes() -> Router<Arc<Hub>> {
    Router::new().route("/api/v1/budget", get(get_budget))
}

/// This resource's documented operations (`#[utoipa::path]` on each handler).
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_budget))]
pub(super) struct Doc;

/// The caller's remaining privacy budget per site.
///
/// Any signed-in user; only the caller's own budgets and those of the caller's organization.
#[utoipa::path(get, path = "/api/v1/budget", tag = "budget", security(("session" = []), ("api_token" = [])),
    responses((status = 200, description = "The caller's remaining privacy budget (ρ, zCDP) per site, as the sites last reported it", body = BudgetView)))]
async fn get_budget(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
) -> Result<Json<BudgetView>, ApiError> {
    let h = hub.clone();
    let view = blocking(move || Ok(view_of(h.store().as_ref(), &user)?)).await?;
    Ok(Json(view))
}
