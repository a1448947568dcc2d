//! API errors: an HTTP status and `{"error": {"code": "...", "message": "..."}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use qiao_protocol::VerifyError;

use crate::store::{CallerFault, StoreError};

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (snake_case).
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// Seconds to wait before retrying (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 500, details logged, not shown.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {detail}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the hub's log",
        )
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.clone(),
            },
        })
        .unwrap_or_default()
    }
}

/// The body of every error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"error": {"code": "unauthorized", "message": "invalid or expired token"}}))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable machine-readable code (snake_case), e.g. `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `invalid_body`, `invalid_json`, `body_too_large`,
    /// `rate_limited`, `quota_exceeded`.
    #[schema(pattern = "^[a-z][a-z0-9_]*$")]
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

/// The code of an error answer, kept in the response's extensions (for the audit of refusals).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        resp.extensions_mut().insert(ErrorCode(self.code));
        if let Some(secs) = self.retry_after {
            if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Caller(CallerFault::Conflict(m)) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{m} already exists"),
            ),
            StoreError::Caller(CallerFault::NotFound(m)) => {
                ApiError::not_found(format!("{m} not found"))
            }
            StoreError::Caller(CallerFault::Invalid(m)) => ApiError::invalid("invalid", m),
            StoreError::Caller(CallerFault::Forbidden(m)) => {
                ApiError::new(StatusCode::FORBIDDEN, "wrong_site", m)
            }
            StoreError::Operator(e) => ApiError::internal(e),
        }
    }
}

impl From<VerifyError> for ApiError {
    fn from(e: VerifyError) -> Self {
        let (status, code) = match &e {
            VerifyError::TooLarge { .. } | VerifyError::BodyTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
            }
            VerifyError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_envelope"),
            VerifyError::UnsupportedVersion { .. } => {
                (StatusCode::BAD_REQUEST, "unsupported_version")
            }
            VerifyError::UnknownSigner { .. } => (StatusCode::UNAUTHORIZED, "unknown_signer"),
            VerifyError::BadSignature { .. } => (StatusCode::UNAUTHORIZED, "bad_signature"),
            VerifyError::WrongDirection { .. } => (StatusCode::FORBIDDEN, "wrong_direction"),
            VerifyError::WrongSite { .. } | VerifyError::SiteImpersonation { .. } => {
                (StatusCode::FORBIDDEN, "wrong_site")
            }
            VerifyError::JobIdPresence { .. } => (StatusCode::BAD_REQUEST, "malformed_envelope"),
            VerifyError::Expired { .. } => (StatusCode::UNAUTHORIZED, "expired"),
            VerifyError::FromTheFuture { .. } => (StatusCode::UNAUTHORIZED, "from_the_future"),
            VerifyError::Replay { .. } => (StatusCode::CONFLICT, "replay"),
            VerifyError::ReplayCacheFull { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "replay_cache_full")
            }
            VerifyError::MalformedBody { .. } | VerifyError::BodyMismatch { .. } => {
                (StatusCode::BAD_REQUEST, "malformed_body")
            }
            VerifyError::NotAggregate(_) => (StatusCode::UNPROCESSABLE_ENTITY, "not_aggregate"),
        };
        ApiError::new(status, code, e.to_string())
    }
}
