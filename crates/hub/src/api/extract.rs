//! Extractors and helpers every resource uses: JSON bodies, signed envelopes, the caller,
//! role checks, blocking storage work.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use qiao_audit::Actor;
use qiao_protocol::{Envelope, UserRole};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::model::{role_name, User};

use super::{Hub, MAX_API_BODY, MAX_SITE_BODY};

pub(super) async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, ApiError> + Send + 'static,
) -> Result<R, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

pub(super) fn body_rejection(r: BytesRejection, limit: usize) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body exceeds the limit of {limit} bytes"),
        )
    } else {
        ApiError::bad_request("bad_request", r.body_text())
    }
}

/// A JSON request body of the user API: size-limited, syntax errors 400, schema errors 422.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| body_rejection(r, MAX_API_BODY))?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses a request body; a schema error names the JSON path of the field at fault
/// (`request body at sites[1]: invalid type: ...`).
pub(super) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        body_error((path != ".").then_some(path), e.into_inner())
    })?;
    de.end().map_err(|e| body_error(None, e))?;
    Ok(value)
}

fn body_error(path: Option<String>, e: serde_json::Error) -> ApiError {
    if e.is_data() {
        let at = path.map(|p| format!(" at {p}")).unwrap_or_default();
        ApiError::invalid("invalid_body", format!("request body{at}: {e}"))
    } else {
        ApiError::bad_request(
            "invalid_json",
            format!("request body is not valid JSON: {e}"),
        )
    }
}

/// A signed envelope posted by a site.
pub(super) struct EnvelopeBody(pub(super) Envelope);

impl<S: Send + Sync> FromRequest<S> for EnvelopeBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| body_rejection(r, MAX_SITE_BODY))?;
        Ok(EnvelopeBody(Envelope::from_json(&bytes)?))
    }
}

/// The authenticated user (from `Authorization: Bearer <token>`).
pub struct Caller(pub User);

impl FromRequestParts<Arc<Hub>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub>) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers)?.to_owned();
        let h = hub.clone();
        let user = blocking(move || Ok(h.token_user(&token)?.map(|(_, u)| u))).await?;
        user.map(Caller)
            .ok_or_else(|| ApiError::unauthorized("invalid or expired token"))
    }
}

/// The token of `Authorization: Bearer <token>`.
pub(super) fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or_else(|| ApiError::unauthorized("expected Authorization: Bearer <token>"))
}

pub(super) fn require(user: &User, roles: &[UserRole]) -> Result<(), ApiError> {
    if roles.contains(&user.role) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "the {} role may not do this",
            role_name(user.role)
        )))
    }
}

pub(super) fn actor(user: &User) -> Actor {
    Actor::User(user.id.to_string())
}

pub(super) fn parse_id<T: std::str::FromStr<Err = qiao_protocol::IdError>>(
    s: &str,
) -> Result<T, ApiError> {
    s.parse::<T>()
        .map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))
}
