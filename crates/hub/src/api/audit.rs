//! The audit log, for auditors.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use qiao_protocol::UserRole;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;

use super::extract::{blocking, require, Caller};
use super::Hub;

/// This resource's routes.
pub(super) fn routes() -> Router<Arc<Hub>> {
    Router::new().route("/api/v1/audit", get(get_audit))
}

#[derive(Deserialize)]
struct AuditQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn get_audit(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&user, &[UserRole::Auditor])?;
    let h = hub.clone();
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(1000).min(10_000);
    let out = blocking(move || {
        let (all, report) = h.store.verify_audit()?;
        let verified = match report {
            Ok(r) => json!({"ok": true, "entries": r.entries,
                "head": r.head.map(|c| json!({"seq": c.seq, "hash": c.hash.to_string()}))}),
            Err(e) => json!({"ok": false, "error": e.to_string()}),
        };
        let entries: Vec<_> = all
            .into_iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .collect();
        Ok(json!({"verified": verified, "entries": entries}))
    })
    .await?;
    Ok(Json(out))
}
