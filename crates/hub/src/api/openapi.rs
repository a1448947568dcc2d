//! The OpenAPI 3.1 document of this API, generated from the code: each resource module
//! declares its operations (`#[utoipa::path]` on a handler, listed in the module's `Doc`),
//! the request and response types derive `utoipa::ToSchema`, and [`document`] puts them
//! together with what applies to every operation (the security schemes, the errors any
//! signed-in call or any request body can meet). Served at `GET /api/v1/openapi.json` and as
//! a page at `GET /api/v1/docs` ([`super::docs_page`]), both without sign-in.
//!
//! Documenting a new route: annotate its handler with `#[utoipa::path(...)]` and add the
//! handler's name to its module's `Doc` list; `tests/openapi.rs` fails on a route of the
//! router that the document lacks, and on a documented one the router lacks.

use std::sync::{Arc, OnceLock};

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use utoipa::OpenApi;

use super::{audit, budget, jobs, projects, runs, site_protocol, sites, users, Hub};

/// This resource's routes.
pub(super) fn routes() -> Router<Arc<Hub>> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/api/v1/docs", get(docs))
}

/// This resource's documented operations.
#[derive(utoipa::OpenApi)]
#[openapi(paths(openapi_json, docs))]
struct Doc;

/// The resources in the order the page shows them: (tag, description).
const TAGS: &[(&str, &str)] = &[
    ("users", "Sign-in, tokens and accounts."),
    (
        "sites",
        "The network's sites and their one-time enrollment tokens.",
    ),
    (
        "projects",
        "Projects: queries run only under an approved one, by its members.",
    ),
    (
        "jobs",
        "Queries and their jobs: per-site released aggregates and network totals.",
    ),
    (
        "runs",
        "Federated regression runs: one signed job per site per Newton–Raphson round, failed \
         cleanly naming a site, resumed with the same coefficients.",
    ),
    ("budget", "The caller's remaining privacy budget per site."),
    ("audit", "The hub's hash-chained audit log."),
    (
        "site protocol",
        "What sites call: enrollment, then signed envelopes (Ed25519) for polls and results. \
         The signature is the credential; see `Envelope` for the signed fields.",
    ),
    ("docs", "This document."),
];

/// The document (built once).
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

fn build() -> Value {
    let mut doc = utoipa::openapi::OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("Qiao hub API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The hub of a Qiao network: users, sites, projects, queries and their \
                     disclosure-controlled results, the audit log, and the protocol sites use. \
                     Errors answer `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}` \
                     (`ErrorBody`). Times are unix seconds.",
                ))
                .build(),
        )
        .build();
    for part in [
        users::Doc::openapi(),
        sites::Doc::openapi(),
        projects::Doc::openapi(),
        jobs::Doc::openapi(),
        runs::Doc::openapi(),
        budget::Doc::openapi(),
        audit::Doc::openapi(),
        site_protocol::Doc::openapi(),
        Doc::openapi(),
    ] {
        doc.merge(part);
    }
    let mut v = serde_json::to_value(&doc).unwrap_or_default();
    complete(&mut v);
    v
}

/// What applies to every operation: the security schemes, the tags, and the errors any
/// signed-in call (401) or any JSON request body (400, 413, 422) can meet, where an operation
/// does not state them itself.
fn complete(doc: &mut Value) {
    doc["tags"] = TAGS
        .iter()
        .map(|(name, description)| json!({"name": name, "description": description}))
        .collect();
    let bearer = |what: &str| json!({"type": "http", "scheme": "bearer", "description": what});
    doc["components"]["securitySchemes"] = json!({
        "session": bearer("A session token from `POST /api/v1/login` (`qiao-s-…`; 12 hours by default), sent as `Authorization: Bearer <token>`."),
        "api_token": bearer("An API token from `POST /api/v1/tokens` (`qiao-t-…`; 30 days by default, 365 at most), sent as `Authorization: Bearer <token>`."),
    });
    let error = |description: &str, code: &str, message: &str| {
        json!({
            "description": description,
            "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorBody"},
                "example": {"error": {"code": code, "message": message}},
            }},
        })
    };
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut().filter_map(Value::as_object_mut) {
            let signed_in = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| !s.is_empty());
            let has_body = op.contains_key("requestBody");
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            let mut add = |status: &str, r: Value| {
                responses.entry(status).or_insert(r);
            };
            if signed_in {
                add(
                    "401",
                    error(
                        "No valid session or API token (`unauthorized`)",
                        "unauthorized",
                        "invalid or expired token",
                    ),
                );
            }
            if has_body {
                add(
                    "400",
                    error(
                        "The body is not JSON (`invalid_json`)",
                        "invalid_json",
                        "request body is not valid JSON: EOF while parsing an object at line 1 column 1",
                    ),
                );
                add(
                    "413",
                    error(
                        "The body is over the size limit (`body_too_large`)",
                        "body_too_large",
                        "request body exceeds the limit of 2097152 bytes",
                    ),
                );
                add(
                    "422",
                    error(
                        "A field of the wrong type or value, named by its JSON path (`invalid_body`)",
                        "invalid_body",
                        "request body at id: invalid type: integer `7`, expected a string",
                    ),
                );
            }
            add(
                "500",
                error(
                    "The hub failed (details in its log)",
                    "internal",
                    "internal error; see the hub's log",
                ),
            );
            // In the order of their status codes.
            let mut sorted: Vec<(String, Value)> = std::mem::take(responses).into_iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            responses.extend(sorted);
        }
    }
}

/// The document as JSON.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "docs",
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
async fn openapi_json() -> Response {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    let bytes = BYTES.get_or_init(|| serde_json::to_vec_pretty(document()).unwrap_or_default());
    (
        [(header::CONTENT_TYPE, "application/json")],
        bytes.as_slice(),
    )
        .into_response()
}

/// The document as a page.
///
/// Every operation with its parameters, bodies, responses and examples, and every schema;
/// served by the hub itself, nothing loaded from elsewhere.
#[utoipa::path(get, path = "/api/v1/docs", tag = "docs",
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
async fn docs() -> Html<&'static str> {
    static PAGE: OnceLock<String> = OnceLock::new();
    Html(PAGE.get_or_init(|| super::docs_page::render(document(), TAGS)))
}
