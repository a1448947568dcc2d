//! Queries and jobs: submission and status.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use qiao_protocol::{JobId, SiteId, UserRole};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorBody};
use crate::util::now;
use crate::view::{job_view, JobView};

use super::extract::{blocking, parse_id, require, Caller, JsonBody};
use super::projects::load_project;
use super::Hub;
use crate::service::jobs::{
    check_submitter, submit_job, QueryRefused, QueryRequest, QueryWire, SubmitRefused,
};

/// This resource's routes.
pub(super) fn routes() -> Router<Arc<Hub>> {
    Router::new()
        .route("/api/v1/projects/{id}/queries", post(submit_query))
        .route("/api/v1/jobs/{id}", get(get_job))
}

/// This resource's documented operations (`#[utoipa::path]` on each handler).
#[derive(utoipa::OpenApi)]
#[openapi(paths(submit_query, get_job))]
pub(super) struct Doc;

impl From<SubmitRefused> for ApiError {
    fn from(r: SubmitRefused) -> Self {
        let message = r.to_string();
        match r {
            SubmitRefused::NotMember(_) => ApiError::forbidden(message),
            SubmitRefused::NotApproved(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "project_not_approved", message)
            }
            SubmitRefused::DefinitionNotObject => ApiError::invalid("invalid_definition", message),
            SubmitRefused::DefinitionTooLarge(_) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "definition_too_large",
                message,
            ),
            SubmitRefused::UnknownSite(_) => ApiError::invalid("unknown_site", message),
            SubmitRefused::NoSites => ApiError::new(StatusCode::CONFLICT, "no_sites", message),
            SubmitRefused::Quota(q) => {
                let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", message);
                e.retry_after = u64::try_from(q.retry_after_secs).ok();
                e
            }
            SubmitRefused::Store(e) => e.into(),
        }
    }
}

impl From<QueryRefused> for ApiError {
    fn from(r: QueryRefused) -> Self {
        let code = match r {
            QueryRefused::UnknownType => "invalid_query_type",
            QueryRefused::Invalid(_) | QueryRefused::Spec { .. } => "invalid_body",
        };
        ApiError::invalid(code, r.to_string())
    }
}

/// `POST /api/v1/projects/{id}/queries` answer.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubmitResponse {
    /// The job.
    pub job_id: JobId,
    /// The sites asked.
    pub sites: Vec<SiteId>,
}

/// Roles that may submit queries.
pub const QUERY_ROLES: &[UserRole] = &[UserRole::SponsorResearcher, UserRole::SiteInvestigator];

/// Submits a query under an approved project.
///
/// The answer names a job that the asked sites pull, run and answer with disclosure-controlled
/// aggregates. Sponsor researchers and site investigators who are members of the project.
#[utoipa::path(post, path = "/api/v1/projects/{id}/queries", tag = "jobs", security(("session" = []), ("api_token" = [])),
    params(("id" = String, Path, description = "The project id")),
    request_body(content = QueryWire, examples(
        ("cohort_count" = (value = json!({"query_type": "cohort_count", "definition": {"ConceptSets": [], "PrimaryCriteria": {"CriteriaList": []}}}))),
        ("demographics" = (value = json!({"query_type": "demographics", "age_band_years": 5, "by_index_year": true, "sites": ["h1"], "definition": {"ConceptSets": [], "PrimaryCriteria": {"CriteriaList": []}}}))))),
    responses(
        (status = 201, description = "The job", body = SubmitResponse),
        (status = 403, description = "Wrong role, not a member, or the project is not approved (`project_not_approved`)", body = ErrorBody,
            example = json!({"error": {"code": "forbidden", "message": "you are not a member of project p1"}})),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 409, description = "No enrolled site to ask (`no_sites`)", body = ErrorBody),
        (status = 413, description = "The definition is over 512 KiB (`definition_too_large`)", body = ErrorBody),
        (status = 422, description = "An unknown query type (`invalid_query_type`) or site (`unknown_site`), a definition that is not an object (`invalid_definition`), parameters that do not fit (`invalid_body`)", body = ErrorBody),
        (status = 429, description = "Over the submission quota (`quota_exceeded`; `Retry-After` header)", body = ErrorBody)))]
async fn submit_query(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
    JsonBody(wire): JsonBody<QueryWire>,
) -> Result<(StatusCode, Json<SubmitResponse>), ApiError> {
    require(&user, QUERY_ROLES)?;
    let project = load_project(&hub, &id).await?;
    check_submitter(&user, &project)?;
    let req = QueryRequest::try_from(wire)?;
    let h = hub.clone();
    let record = blocking(move || {
        Ok(submit_job(
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
    Ok((
        StatusCode::CREATED,
        Json(SubmitResponse {
            job_id: record.job.job_id,
            sites: record.sites,
        }),
    ))
}

/// A job: each site's status and released aggregate, and the network totals.
///
/// The totals add released values only. Project members, administrators and auditors.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", security(("session" = []), ("api_token" = [])),
    params(("id" = String, Path, description = "The job id (32 hex digits)")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 400, description = "Not a job id (`invalid_id`)", body = ErrorBody),
        (status = 403, description = "Not a member of the job's project", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody)))]
async fn get_job(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job_id = parse_id::<JobId>(&id)?;
    let h = hub.clone();
    let view = blocking(move || {
        let record = h
            .store
            .job(&job_id)?
            .ok_or_else(|| ApiError::not_found(format!("job {job_id} not found")))?;
        let oversight = matches!(user.role, UserRole::AllianceAdmin | UserRole::Auditor);
        if !oversight {
            let member = h
                .store
                .project(&record.job.project_id)?
                .is_some_and(|p| p.members.contains(&user.id));
            if !member {
                return Err(ApiError::forbidden(
                    "only members of the job's project may see it",
                ));
            }
        }
        let results = h.store.results(&job_id)?;
        Ok(job_view(&record, &results))
    })
    .await?;
    Ok(Json(view).into_response())
}
