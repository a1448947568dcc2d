//! Sites: registration and one-time enrollment tokens.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use qiao_protocol::{SiteId, UserRole};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSiteRequest {
    id: SiteId,
    name: Option<String>,
}

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EnrollmentTokenRequest {
    ttl_secs: Option<i64>,
}

/// `POST /api/v1/sites/{id}/enrollment-token` answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
