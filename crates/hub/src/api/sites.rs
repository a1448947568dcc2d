//! Sites: registration and one-time enrollment tokens.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use qiao_protocol::{SiteId, UserRole};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorBody};
use crate::model::{valid_text, Site, SiteView};
use crate::util::now;

use super::extract::{actor, blocking, parse_id, parse_json, require, Caller, JsonBody};
use super::Hub;
use crate::service::enrollment::{issue_enrollment_token, ENROLLMENT_TTL_SECS};

/// This resource's routes.
pub(super) fn routes() -> Router<Arc<Hub>> {
    Router::new()
        .route("/api/v1/sites", get(list_sites).post(create_site))
        .route(
            "/api/v1/sites/{id}/enrollment-token",
            post(issue_enrollment),
        )
}

/// This resource's documented operations (`#[utoipa::path]` on each handler).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_sites, create_site, issue_enrollment))]
pub(super) struct Doc;

/// `POST /api/v1/sites` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "h1", "name": "Hospital One"}))]
struct CreateSiteRequest {
    /// The site id (what its envelopes carry).
    id: SiteId,
    /// Display name (1 to 200 characters; default: the id).
    name: Option<String>,
}

/// The network's sites, with what the hub saw of their polls since it started.
#[utoipa::path(get, path = "/api/v1/sites", tag = "sites", security(("session" = []), ("api_token" = [])),
    responses((status = 200, description = "The sites", body = Vec<SiteView>)))]
async fn list_sites(
    State(hub): State<Arc<Hub>>,
    Caller(_user): Caller,
) -> Result<Json<Vec<SiteView>>, ApiError> {
    let h = hub.clone();
    let sites = blocking(move || Ok(h.store.sites()?)).await?;
    let seen = hub.sites_seen();
    Ok(Json(
        sites
            .iter()
            .map(|s| SiteView::from(s).with_seen(seen.get(&s.id)))
            .collect(),
    ))
}

/// Registers a site (it enrolls later with a one-time token). Alliance administrators only.
#[utoipa::path(post, path = "/api/v1/sites", tag = "sites", security(("session" = []), ("api_token" = [])),
    request_body = CreateSiteRequest,
    responses(
        (status = 201, description = "Registered", body = SiteView),
        (status = 403, description = "Not an alliance administrator", body = ErrorBody,
            example = json!({"error": {"code": "forbidden", "message": "the sponsor_researcher role may not do this"}})),
        (status = 409, description = "The site exists (`conflict`)", body = ErrorBody)))]
async fn create_site(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    JsonBody(req): JsonBody<CreateSiteRequest>,
) -> Result<(StatusCode, Json<SiteView>), ApiError> {
    require(&user, &[UserRole::AllianceAdmin])?;
    let name = req.name.unwrap_or_else(|| req.id.to_string());
    if !valid_text(&name) {
        return Err(ApiError::invalid(
            "invalid_body",
            "name: 1 to 200 characters without control characters",
        ));
    }
    let t = now();
    let site = Site {
        id: req.id,
        name,
        public_key: None,
        enrolled_at: None,
        enrollment: None,
        created_at: t,
    };
    let h = hub.clone();
    let s2 = site.clone();
    blocking(move || Ok(h.store.create_site(&s2, &actor(&user), t)?)).await?;
    Ok((StatusCode::CREATED, Json(SiteView::from(&site))))
}

/// `POST /api/v1/sites/{id}/enrollment-token` body (optional).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EnrollmentTokenRequest {
    /// Lifetime in seconds, 60 to 2592000 (30 days); default the hub's setting (7 days).
    #[schema(minimum = 60, maximum = 2592000)]
    ttl_secs: Option<i64>,
}

/// `POST /api/v1/sites/{id}/enrollment-token` answer.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnrollmentTokenResponse {
    /// The site.
    pub site: SiteId,
    /// The one-time token (shown once; hand it to the site's steward out of band).
    pub token: String,
    /// Expiry (unix seconds).
    pub expires_at: i64,
    /// The hub key's fingerprint, for the site to compare when it pins the key.
    pub hub_key_fingerprint: String,
}

/// Issues a one-time enrollment token for a site. Alliance administrators only.
///
/// Any earlier unused token of the site stops working.
#[utoipa::path(post, path = "/api/v1/sites/{id}/enrollment-token", tag = "sites", security(("session" = []), ("api_token" = [])),
    params(("id" = String, Path, description = "The site id")),
    request_body(content = Option<EnrollmentTokenRequest>, description = "Optional; an empty body takes the default lifetime"),
    responses(
        (status = 201, description = "The token (shown once: hand it to the site's steward out of band)", body = EnrollmentTokenResponse),
        (status = 403, description = "Not an alliance administrator", body = ErrorBody),
        (status = 404, description = "No such site", body = ErrorBody)))]
async fn issue_enrollment(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<EnrollmentTokenResponse>), ApiError> {
    require(&user, &[UserRole::AllianceAdmin])?;
    let site = parse_id::<SiteId>(&id)?;
    let req: EnrollmentTokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        EnrollmentTokenRequest::default()
    } else {
        parse_json(&body)?
    };
    let ttl = req.ttl_secs.unwrap_or(hub.config.enrollment_ttl_secs);
    if !ENROLLMENT_TTL_SECS.contains(&ttl) {
        return Err(ApiError::invalid(
            "invalid_body",
            "ttl_secs must be between 60 and 2592000 (30 days)",
        ));
    }
    let fingerprint = hub.public_key()?.fingerprint();
    let h = hub.clone();
    let s2 = site.clone();
    let (token, stored) = blocking(move || {
        Ok(issue_enrollment_token(
            h.store.as_ref(),
            &s2,
            ttl,
            &actor(&user),
        )?)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrollmentTokenResponse {
            site,
            token,
            expires_at: stored.expires_at,
            hub_key_fingerprint: fingerprint,
        }),
    ))
}
