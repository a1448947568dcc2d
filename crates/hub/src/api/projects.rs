//! Projects: creation, approval, membership.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use qiao_protocol::{ProjectId, UserId, UserRole};
use serde::Deserialize;

use crate::error::ApiError;
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

pub(super) const OVERSIGHT: &[UserRole] = &[
    UserRole::AllianceAdmin,
    UserRole::CommitteeMember,
    UserRole::Auditor,
];

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProjectRequest {
    id: ProjectId,
    title: String,
    #[serde(default)]
    members: Vec<UserId>,
    #[serde(default)]
    approved: bool,
}

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApproveRequest {
    approved: Option<bool>,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberRequest {
    user: UserId,
}

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
