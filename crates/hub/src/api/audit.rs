//! The audit log, for auditors.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use qiao_audit::{Checkpoint, Entry};
use qiao_protocol::UserRole;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorBody};

use super::extract::{blocking, require, Caller};
use super::Hub;

/// This resource's routes.
pub(super) fn routes() -> Router<Arc<Hub>> {
    Router::new().route("/api/v1/audit", get(get_audit))
}

/// This resource's documented operations (`#[utoipa::path]` on each handler).
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_audit))]
pub(super) struct Doc;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Entries after this sequence number (default 0: from the first).
    after: Option<u64>,
    /// At most this many entries (default 1000, at most 10000).
    limit: Option<usize>,
}

/// `GET /api/v1/audit` answer.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditLog {
    /// The whole chain's verification.
    verified: Verification,
    /// The entries asked for.
    entries: Vec<Entry>,
}

/// Whether the hash chain verifies from the first entry to the last.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
enum Verification {
    /// It does.
    Verified {
        /// `true`.
        ok: bool,
        /// Entries checked.
        entries: u64,
        /// The last entry, if any.
        head: Option<Checkpoint>,
    },
    /// It does not.
    Broken {
        /// `false`.
        ok: bool,
        /// Where and how the chain breaks.
        error: String,
    },
}

/// The audit log and its chain's verification. Auditors only.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("session" = []), ("api_token" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "Entries and the verification", body = AuditLog),
        (status = 403, description = "Not an auditor", body = ErrorBody)))]
async fn get_audit(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditLog>, ApiError> {
    require(&user, &[UserRole::Auditor])?;
    let h = hub.clone();
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(1000).min(10_000);
    let out = blocking(move || {
        let (all, report) = h.store.verify_audit()?;
        let verified = match report {
            Ok(r) => Verification::Verified {
                ok: true,
                entries: r.entries,
                head: r.head,
            },
            Err(e) => Verification::Broken {
                ok: false,
                error: e.to_string(),
            },
        };
        let entries: Vec<_> = all
            .into_iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .collect();
        Ok(AuditLog { verified, entries })
    })
    .await?;
    Ok(Json(out))
}
