//! Projects: creation, approval, membership.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use qiao_protocol::{ProjectId, UserId, UserRole};
use serde::Deserialize;

use crate::error::{ApiError, ErrorBody};
use crate::model::{valid_text, Project};
use crate::util::now;

use super::extract::{actor, blocking, parse_id, parse_json, require, Caller, JsonBody};
use super::Hub;

/// This resource's routes.
pub(super) fn routes() -> Router<Arc<Hub>> {
    Router::new()
        .route("/api/v1/projects", get(list_projects).post(create_project))
        .route("/api/v1/projects/{id}", get(get_project))
        .route("/api/v1/projects/{id}/approve", post(approve_project))
        .route("/api/v1/projects/{id}/members", post(add_member))
}

/// This resource's documented operations (`#[utoipa::path]` on each handler).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_projects,
    create_project,
    get_project,
    approve_project,
    add_member
))]
pub(super) struct Doc;

pub(super) const OVERSIGHT: &[UserRole] = &[
    UserRole::AllianceAdmin,
    UserRole::CommitteeMember,
    UserRole::Auditor,
];

/// The projects the caller may see.
///
/// All of them for administrators, committee members and auditors; the caller's own otherwise.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", security(("session" = []), ("api_token" = [])),
    responses((status = 200, description = "The projects", body = Vec<Project>)))]
async fn list_projects(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
) -> Result<Json<Vec<Project>>, ApiError> {
    let h = hub.clone();
    let all = blocking(move || Ok(h.store.projects()?)).await?;
    let visible = all
        .into_iter()
        .filter(|p| OVERSIGHT.contains(&user.role) || p.members.contains(&user.id))
        .collect();
    Ok(Json(visible))
}

/// `POST /api/v1/projects` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "p1", "title": "Diabetes feasibility", "members": ["alice"], "approved": false}))]
struct CreateProjectRequest {
    /// The project id.
    id: ProjectId,
    /// Title (1 to 200 characters without control characters).
    title: String,
    /// Members (default none).
    #[serde(default)]
    members: Vec<UserId>,
    /// Approved at once (default false).
    #[serde(default)]
    approved: bool,
}

/// Creates a project. Alliance administrators only.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", security(("session" = []), ("api_token" = [])),
    request_body = CreateProjectRequest,
    responses(
        (status = 201, description = "Created", body = Project),
        (status = 403, description = "Not an alliance administrator", body = ErrorBody),
        (status = 409, description = "The project exists (`conflict`)", body = ErrorBody,
            example = json!({"error": {"code": "conflict", "message": "project p1 already exists"}}))))]
async fn create_project(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    JsonBody(req): JsonBody<CreateProjectRequest>,
) -> Result<(StatusCode, Json<Project>), ApiError> {
    require(&user, &[UserRole::AllianceAdmin])?;
    if !valid_text(&req.title) {
        return Err(ApiError::invalid(
            "invalid_body",
            "title: 1 to 200 characters without control characters",
        ));
    }
    let mut members = req.members;
    members.sort();
    members.dedup();
    let project = Project {
        id: req.id,
        title: req.title,
        approved: req.approved,
        members,
        created_at: now(),
    };
    let h = hub.clone();
    let p2 = project.clone();
    blocking(move || Ok(h.store.create_project(&p2, &actor(&user), p2.created_at)?)).await?;
    Ok((StatusCode::CREATED, Json(project)))
}

pub(super) async fn load_project(hub: &Arc<Hub>, id: &str) -> Result<Project, ApiError> {
    let id = parse_id::<ProjectId>(id)?;
    let h = hub.clone();
    blocking(move || {
        h.store
            .project(&id)?
            .ok_or_else(|| ApiError::not_found(format!("project {id} not found")))
    })
    .await
}

/// One project (members, administrators, committee members and auditors).
#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects", security(("session" = []), ("api_token" = [])),
    params(("id" = String, Path, description = "The project id")),
    responses(
        (status = 200, description = "The project", body = Project),
        (status = 403, description = "Not a member", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody)))]
async fn get_project(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<Project>, ApiError> {
    let p = load_project(&hub, &id).await?;
    if OVERSIGHT.contains(&user.role) || p.members.contains(&user.id) {
        Ok(Json(p))
    } else {
        Err(ApiError::forbidden("not a member of this project"))
    }
}

/// `POST /api/v1/projects/{id}/approve` body (optional).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ApproveRequest {
    /// `false` withdraws the approval (default `true`).
    approved: Option<bool>,
}

/// Approves a project (or withdraws the approval). Administrators and committee members.
#[utoipa::path(post, path = "/api/v1/projects/{id}/approve", tag = "projects", security(("session" = []), ("api_token" = [])),
    params(("id" = String, Path, description = "The project id")),
    request_body(content = Option<ApproveRequest>, description = "Optional; an empty body approves"),
    responses(
        (status = 200, description = "The project", body = Project),
        (status = 403, description = "Neither an administrator nor a committee member", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody)))]
async fn approve_project(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Project>, ApiError> {
    require(&user, &[UserRole::AllianceAdmin, UserRole::CommitteeMember])?;
    let id = parse_id::<ProjectId>(&id)?;
    let req: ApproveRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ApproveRequest::default()
    } else {
        parse_json(&body)?
    };
    let h = hub.clone();
    let p = blocking(move || {
        Ok(h.store
            .set_project_approved(&id, req.approved.unwrap_or(true), &actor(&user), now())?)
    })
    .await?;
    Ok(Json(p))
}

/// `POST /api/v1/projects/{id}/members` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"user": "bob"}))]
struct MemberRequest {
    /// The user to add.
    user: UserId,
}

/// Adds a member. Alliance administrators only.
#[utoipa::path(post, path = "/api/v1/projects/{id}/members", tag = "projects", security(("session" = []), ("api_token" = [])),
    params(("id" = String, Path, description = "The project id")),
    request_body = MemberRequest,
    responses(
        (status = 200, description = "The project", body = Project),
        (status = 403, description = "Not an alliance administrator", body = ErrorBody),
        (status = 404, description = "No such project or user", body = ErrorBody)))]
async fn add_member(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<MemberRequest>,
) -> Result<Json<Project>, ApiError> {
    require(&user, &[UserRole::AllianceAdmin])?;
    let id = parse_id::<ProjectId>(&id)?;
    let h = hub.clone();
    let p = blocking(move || {
        Ok(h.store
            .add_project_member(&id, &req.user, &actor(&user), now())?)
    })
    .await?;
    Ok(Json(p))
}
