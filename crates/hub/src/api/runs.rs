//! Federated regression runs: start, see, resume ([`crate::service::runs`]).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use qiao_protocol::{JobId, UserRole};

use crate::error::{ApiError, ErrorBody};
use crate::service::runs::{self, RunRecord, RunRefused, RunRequest};
use crate::util::now;

use super::extract::{blocking, parse_id, require, Caller, JsonBody};
use super::jobs::QUERY_ROLES;
use super::projects::load_project;
use super::Hub;
use crate::service::jobs::check_submitter;

/// This resource's routes.
pub(super) fn routes() -> Router<Arc<Hub>> {
    Router::new()
        .route("/api/v1/projects/{id}/runs", post(start_run))
        .route("/api/v1/runs/{id}", get(get_run))
        .route("/api/v1/runs/{id}/resume", post(resume_run))
}

/// This resource's documented operations.
#[derive(utoipa::OpenApi)]
#[openapi(paths(start_run, get_run, resume_run))]
pub(super) struct Doc;

impl From<RunRefused> for ApiError {
    fn from(r: RunRefused) -> Self {
        let message = r.to_string();
        match r {
            RunRefused::Spec { .. } => ApiError::invalid("invalid_body", message),
            RunRefused::Submit(e) => e.into(),
            RunRefused::NotFailed(..) => {
                ApiError::new(StatusCode::CONFLICT, "run_not_failed", message)
            }
            RunRefused::NotFound(_) => ApiError::not_found(message),
            RunRefused::Store(e) => e.into(),
        }
    }
}

/// Starts a federated regression run (logistic or Cox) under an approved project.
///
/// Round 0 is a signed job to every site of the run; the hub takes each Newton–Raphson step
/// when every site has answered and issues the next round, until |Δ loglik| < 1e-8 or 25
/// steps. Sponsor researchers and site investigators who are members of the project.
#[utoipa::path(post, path = "/api/v1/projects/{id}/runs", tag = "runs", security(("session" = []), ("api_token" = [])),
    params(("id" = String, Path, description = "The project id")),
    request_body(content = RunRequest, examples(
        ("logistic" = (value = json!({"spec": {"model": "logistic", "outcome": {"ConceptSets": [], "PrimaryCriteria": {"CriteriaList": []}}, "covariates": [{"kind": "age"}, {"kind": "gender"}]}, "definition": {"ConceptSets": [], "PrimaryCriteria": {"CriteriaList": []}}, "round_timeout_secs": 60}))))),
    responses(
        (status = 201, description = "The run, round 0 issued", body = RunRecord),
        (status = 403, description = "Wrong role, not a member, or the project is not approved", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 409, description = "No enrolled site to ask (`no_sites`)", body = ErrorBody),
        (status = 422, description = "A spec with a problem (`invalid_body`, naming its JSON path) or an unknown site", body = ErrorBody),
        (status = 429, description = "Over the submission quota (`quota_exceeded`)", body = ErrorBody)))]
async fn start_run(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<RunRequest>,
) -> Result<(StatusCode, Json<RunRecord>), ApiError> {
    require(&user, QUERY_ROLES)?;
    let project = load_project(&hub, &id).await?;
    check_submitter(&user, &project)?;
    let h = hub.clone();
    let run = blocking(move || {
        Ok(runs::start(
            h.store.as_ref(),
            &h.config.quotas,
            &user,
            &project,
            req,
            h.config.floors,
            now(),
        )?)
    })
    .await?;
    hub.notify_jobs();
    Ok((StatusCode::CREATED, Json(run)))
}

/// A regression run: its status, every round's per-site sums and timing, the fit once ended.
///
/// A run whose round is past its deadline is failed here, naming the sites that did not
/// answer. Project members, administrators and auditors.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs", security(("session" = []), ("api_token" = [])),
    params(("id" = String, Path, description = "The run id (32 hex digits)")),
    responses(
        (status = 200, description = "The run", body = RunRecord),
        (status = 400, description = "Not a run id (`invalid_id`)", body = ErrorBody),
        (status = 403, description = "Not a member of the run's project", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody)))]
async fn get_run(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<RunRecord>, ApiError> {
    let run_id = parse_id::<JobId>(&id)?;
    let h = hub.clone();
    let run = blocking(move || {
        let run = runs::get(h.store.as_ref(), &run_id, now())?
            .ok_or_else(|| ApiError::not_found(format!("run {run_id} not found")))?;
        let oversight = matches!(user.role, UserRole::AllianceAdmin | UserRole::Auditor);
        let member = h
            .store
            .project(&run.project_id)?
            .is_some_and(|p| p.members.contains(&user.id));
        if !oversight && !member {
            return Err(ApiError::forbidden(
                "only members of the run's project may see it",
            ));
        }
        Ok(run)
    })
    .await?;
    Ok(Json(run))
}

/// Resumes a failed run: its failed round is issued again (the same coefficients, to the
/// run's sites) and the run continues.
///
/// Members of the run's project who may submit queries.
#[utoipa::path(post, path = "/api/v1/runs/{id}/resume", tag = "runs", security(("session" = []), ("api_token" = [])),
    params(("id" = String, Path, description = "The run id (32 hex digits)")),
    responses(
        (status = 200, description = "The run, running again", body = RunRecord),
        (status = 400, description = "Not a run id (`invalid_id`)", body = ErrorBody),
        (status = 403, description = "Wrong role or not a member of the run's project", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run has not failed (`run_not_failed`)", body = ErrorBody)))]
async fn resume_run(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<RunRecord>, ApiError> {
    require(&user, QUERY_ROLES)?;
    let run_id = parse_id::<JobId>(&id)?;
    let h = hub.clone();
    let run = blocking(move || {
        let run = runs::get(h.store.as_ref(), &run_id, now())?
            .ok_or_else(|| ApiError::not_found(format!("run {run_id} not found")))?;
        let project = h
            .store
            .project(&run.project_id)?
            .ok_or_else(|| ApiError::not_found(format!("project {} not found", run.project_id)))?;
        check_submitter(&user, &project)?;
        Ok(runs::resume(h.store.as_ref(), &run_id, &user, now())?)
    })
    .await?;
    hub.notify_jobs();
    Ok(Json(run))
}
