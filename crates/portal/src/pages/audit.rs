//! The auditor's page: the hub's audit log through `qiao_web::audit_view` (filters, pages, CSV,
//! action names), with the hash chain verified on every view (`HubStore::verify_audit`, i.e.
//! `qiao_audit::verify_entries`).

use axum::extract::State;
use axum::response::Response;
use qiao_hub::protocol::UserRole;
use qiao_web::audit_view;

use crate::web::{blocking, Ctx, Shared};

/// `GET /audit?actor=&action=&project=&from=&to=&page=&format=csv` (auditors and admins).
pub async fn audit(State(portal): State<Shared>, ctx: Ctx) -> Response {
    if let Err(r) = ctx.require(&[UserRole::Auditor, UserRole::AllianceAdmin]) {
        return r;
    }
    let store = portal.hub.store().clone();
    let (all, report) = match blocking(move || store.verify_audit()).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return ctx.internal(e),
        Err(e) => return ctx.internal(e),
    };
    if ctx.query.get("format").map(String::as_str) == Some("csv") {
        return audit_view::csv_response(ctx.lang, &ctx.query, &all, "qiao-hub-audit.csv");
    }
    let chain = audit_view::chain_result(ctx.lang, &report);
    let body = audit_view::render(ctx.lang, "/audit", &ctx.query, &all, chain);
    ctx.page("audit.title").respond(body)
}
