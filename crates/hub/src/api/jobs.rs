//! Queries and jobs: submission and status.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use qiao_audit::EntryDraft;
use qiao_protocol::{Job, JobId, QueryType, Requester, SiteId, UserRole};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::model::Site;
use crate::util::now;
use crate::view::job_view;

use super::extract::{actor, blocking, parse_id, require, Caller, JsonBody};
use super::projects::load_project;
use super::{Hub, MAX_DEFINITION_BYTES};

/// This resource's routes.
pub(super) fn routes() -> Router<Arc<Hub>> {
    Router::new()
        .route("/api/v1/projects/{id}/queries", post(submit_query))
        .route("/api/v1/jobs/{id}", get(get_job))
}

/// Demographics: the age band width when none is asked for, in years.
pub const DEFAULT_AGE_BAND_YEARS: u8 = 10;

/// `POST /api/v1/projects/{id}/queries` body: what to ask (the typed query the sites receive),
/// of which cohort definition, at which sites.
///
/// On the wire the query's type and parameters stand beside the definition (`query_type`,
/// and for demographics `age_band_years`, 1 to 100, default 10, and `by_index_year`, default
/// false): `{"query_type": "demographics", "age_band_years": 5, "definition": {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "QueryWire", try_from = "QueryWire")]
pub struct QueryRequest {
    /// The query.
    pub query: QueryType,
    /// The OHDSI Circe cohort definition (ATLAS JSON object), passed to the sites unchanged.
    pub definition: serde_json::Value,
    /// The sites to ask (default: every enrolled site).
    pub sites: Option<Vec<SiteId>>,
}

/// A query the request's own fields refuse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryRefused {
    /// `query_type` names no query.
    #[error("query_type is not one of cohort_count, demographics")]
    UnknownType,
    /// Parameters that do not fit the query.
    #[error("{0}")]
    Invalid(&'static str),
}

impl From<QueryRefused> for ApiError {
    fn from(r: QueryRefused) -> Self {
        let code = match r {
            QueryRefused::UnknownType => "invalid_query_type",
            QueryRefused::Invalid(_) => "invalid_body",
        };
        ApiError::invalid(code, r.to_string())
    }
}

/// The request as JSON carries it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryWire {
    query_type: QueryKind,
    definition: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sites: Option<Vec<SiteId>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    age_band_years: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by_index_year: Option<bool>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum QueryKind {
    CohortCount,
    Demographics,
    #[serde(other)]
    Unknown,
}

impl TryFrom<QueryWire> for QueryRequest {
    type Error = QueryRefused;

    fn try_from(w: QueryWire) -> Result<Self, QueryRefused> {
        let query = match w.query_type {
            QueryKind::CohortCount => {
                if w.age_band_years.is_some() || w.by_index_year.is_some() {
                    return Err(QueryRefused::Invalid(
                        "age_band_years and by_index_year apply to demographics queries only",
                    ));
                }
                QueryType::CohortCount
            }
            QueryKind::Demographics => {
                let band = w.age_band_years.unwrap_or(DEFAULT_AGE_BAND_YEARS);
                if !(1..=100).contains(&band) {
                    return Err(QueryRefused::Invalid(
                        "age_band_years must be between 1 and 100",
                    ));
                }
                QueryType::Demographics {
                    age_band_years: band,
                    by_index_year: w.by_index_year.unwrap_or(false),
                }
            }
            QueryKind::Unknown => return Err(QueryRefused::UnknownType),
        };
        Ok(QueryRequest {
            query,
            definition: w.definition,
            sites: w.sites,
        })
    }
}

impl From<QueryRequest> for QueryWire {
    fn from(r: QueryRequest) -> Self {
        let (query_type, age_band_years, by_index_year) = match r.query {
            QueryType::CohortCount => (QueryKind::CohortCount, None, None),
            QueryType::Demographics {
                age_band_years,
                by_index_year,
            } => (
                QueryKind::Demographics,
                Some(age_band_years),
                Some(by_index_year),
            ),
        };
        QueryWire {
            query_type,
            definition: r.definition,
            sites: r.sites,
            age_band_years,
            by_index_year,
        }
    }
}

/// `POST /api/v1/projects/{id}/queries` answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubmitResponse {
    /// The job.
    pub job_id: JobId,
    /// The sites asked.
    pub sites: Vec<SiteId>,
}

/// Roles that may submit queries.
pub const QUERY_ROLES: &[UserRole] = &[UserRole::SponsorResearcher, UserRole::SiteInvestigator];

async fn submit_query(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
    JsonBody(wire): JsonBody<QueryWire>,
) -> Result<(StatusCode, Json<SubmitResponse>), ApiError> {
    require(&user, QUERY_ROLES)?;
    let project = load_project(&hub, &id).await?;
    if !project.members.contains(&user.id) {
        return Err(ApiError::forbidden(format!(
            "you are not a member of project {}",
            project.id
        )));
    }
    if !project.approved {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "project_not_approved",
            format!(
                "project {} is not approved; queries run only under approved projects",
                project.id
            ),
        ));
    }
    let req = QueryRequest::try_from(wire)?;
    let query = req.query;
    if !req.definition.is_object() {
        return Err(ApiError::invalid(
            "invalid_definition",
            "definition must be a JSON object (an OHDSI Circe cohort expression)",
        ));
    }
    let def_len = serde_json::to_vec(&req.definition)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if def_len > MAX_DEFINITION_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "definition_too_large",
            format!("definition of {def_len} bytes exceeds the limit of {MAX_DEFINITION_BYTES}"),
        ));
    }
    let h = hub.clone();
    let record = blocking(move || {
        let enrolled: Vec<Site> = h
            .store
            .sites()?
            .into_iter()
            .filter(|s| s.public_key.is_some())
            .collect();
        let sites: Vec<SiteId> = match req.sites {
            None => enrolled.iter().map(|s| s.id.clone()).collect(),
            Some(list) => {
                let mut out: Vec<SiteId> = Vec::new();
                for s in list {
                    if !enrolled.iter().any(|e| e.id == s) {
                        return Err(ApiError::invalid(
                            "unknown_site",
                            format!("site {s} does not exist or has not enrolled"),
                        ));
                    }
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
                out
            }
        };
        if sites.is_empty() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "no_sites",
                "no enrolled site to ask",
            ));
        }
        let t = now();
        let job = Job {
            job_id: JobId::random(),
            project_id: project.id.clone(),
            query,
            definition: req.definition,
            requested_by: Requester {
                user_id: user.id.clone(),
                role: user.role,
                // The site charges this organization's privacy budget; a user without an
                // institution is an organization of one.
                organization: user
                    .institution
                    .clone()
                    .unwrap_or_else(|| format!("user:{}", user.id.as_str())),
            },
            created_at: t,
        };
        match h
            .store
            .create_job_within(&job, &sites, &h.config.quotas, t)?
        {
            Ok(record) => Ok(record),
            Err(q) => {
                h.store.audit(
                    EntryDraft::new(t, actor(&user), "job.submit")
                        .project(job.project_id.to_string())
                        .decision(format!(
                            "refused: {} quota of {} jobs per {} s spent",
                            q.what, q.limit, q.period_secs
                        )),
                )?;
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "quota_exceeded",
                    format!(
                        "the {} quota of {} jobs per {} s is spent; retry in {} s",
                        q.what, q.limit, q.period_secs, q.retry_after_secs
                    ),
                );
                e.retry_after = u64::try_from(q.retry_after_secs).ok();
                Err(e)
            }
        }
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
