//! Job submission: a typed query under an approved project, to the enrolled sites, within
//! the submission quotas.

use qiao_analysis::network::characterization::Characterization;
use qiao_analysis::network::incidence::Incidence;
use qiao_analysis::network::survival::Survival;
use qiao_analysis::network::Analysis;
use qiao_audit::{Actor, EntryDraft};
use qiao_protocol::{Job, JobId, ProjectId, QueryType, Requester, SiteId};
use serde::{Deserialize, Serialize};

use crate::model::{JobRecord, Project, Site, User};
use crate::store::{HubStore, QuotaExceeded, Quotas, StoreError};

/// Largest cohort definition accepted, in bytes of compact JSON (the largest definition of the
/// OHDSI PhenotypeLibrary is about 420 KB pretty-printed).
pub const MAX_DEFINITION_BYTES: usize = 512 * 1024;

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
    #[error("query_type is not one of cohort_count, demographics, characterization, incidence")]
    UnknownType,
    /// Parameters that do not fit the query.
    #[error("{0}")]
    Invalid(&'static str),
    /// An analysis spec with a problem at a JSON path.
    #[error("spec{path}: {message}")]
    Spec {
        /// Where in `spec` (`$` its root).
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// The request as JSON carries it (the API reads it, then converts it with its own refusals).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(
    as = QueryRequest,
    description = "What to ask (`query_type` and its parameters), of which OHDSI Circe cohort definition, at which sites."
)]
#[serde(deny_unknown_fields)]
pub struct QueryWire {
    /// The query.
    query_type: QueryKind,
    /// The OHDSI Circe cohort definition (ATLAS JSON object), passed to the sites unchanged.
    definition: serde_json::Value,
    /// The sites to ask (default: every enrolled site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sites: Option<Vec<SiteId>>,
    /// Demographics only: the age band width in years, 1 to 100 (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100)]
    age_band_years: Option<u8>,
    /// Demographics only: whether cells are also split by index year (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by_index_year: Option<bool>,
    /// Characterization, incidence and survival: the analysis spec
    /// ([`qiao_protocol::CharacterizationSpec`], [`qiao_protocol::IncidenceSpec`],
    /// [`qiao_protocol::SurvivalSpec`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spec: Option<serde_json::Value>,
}

/// What to ask: `cohort_count` (the count with its attrition funnel) or `demographics` (a
/// breakdown by age band, gender and optionally index year).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum QueryKind {
    CohortCount,
    Demographics,
    Characterization,
    Incidence,
    Survival,
    /// A round of a regression run: issued by runs (`POST /api/v1/projects/{id}/runs`) only.
    RegressionRound,
    /// Recruitment: the sites' released counts of the candidates their investigators marked
    /// screened, enrolled and excluded on the pre-screening list of the definition's cohort, per
    /// month of `spec` ([`qiao_protocol::RecruitmentSpec`]).
    Recruitment,
    /// Any other name: refused as `invalid_query_type` (never serialized).
    #[serde(other, skip_serializing)]
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
            QueryKind::Characterization => {
                let spec = analysis_spec(&w, |s| {
                    Characterization::check(&s)?;
                    Ok(QueryType::Characterization(s))
                })?;
                return Ok(QueryRequest {
                    query: spec,
                    definition: w.definition,
                    sites: w.sites,
                });
            }
            QueryKind::Incidence => {
                let spec = analysis_spec(&w, |s| {
                    Incidence::check(&s)?;
                    Ok(QueryType::Incidence(s))
                })?;
                return Ok(QueryRequest {
                    query: spec,
                    definition: w.definition,
                    sites: w.sites,
                });
            }
            QueryKind::Survival => {
                let spec = analysis_spec(&w, |s| {
                    Survival::check(&s)?;
                    Ok(QueryType::Survival(s))
                })?;
                return Ok(QueryRequest {
                    query: spec,
                    definition: w.definition,
                    sites: w.sites,
                });
            }
            QueryKind::Recruitment => {
                let spec = analysis_spec(&w, |s: qiao_protocol::RecruitmentSpec| {
                    s.check()?;
                    Ok(QueryType::Recruitment(s))
                })?;
                return Ok(QueryRequest {
                    query: spec,
                    definition: w.definition,
                    sites: w.sites,
                });
            }
            QueryKind::RegressionRound => {
                return Err(QueryRefused::Invalid(
                    "regression rounds are issued by runs: POST /api/v1/projects/{id}/runs",
                ))
            }
            QueryKind::Unknown => return Err(QueryRefused::UnknownType),
        };
        if w.spec.is_some() {
            return Err(QueryRefused::Invalid(
                "spec applies to characterization and incidence queries only",
            ));
        }
        Ok(QueryRequest {
            query,
            definition: w.definition,
            sites: w.sites,
        })
    }
}

/// An analysis spec from the wire: parsed (errors name the JSON path), then checked.
fn analysis_spec<S: serde::de::DeserializeOwned>(
    w: &QueryWire,
    make: impl FnOnce(S) -> Result<QueryType, (String, String)>,
) -> Result<QueryType, QueryRefused> {
    if w.age_band_years.is_some() || w.by_index_year.is_some() {
        return Err(QueryRefused::Invalid(
            "age_band_years and by_index_year apply to demographics queries only",
        ));
    }
    let Some(spec) = &w.spec else {
        return Err(QueryRefused::Invalid(
            "characterization and incidence queries need a spec",
        ));
    };
    let spec: S = serde_path_to_error::deserialize(spec).map_err(|e| QueryRefused::Spec {
        path: format!(".{}", e.path())
            .replace(".[", "[")
            .trim_end_matches('.')
            .to_string(),
        message: e.into_inner().to_string(),
    })?;
    make(spec).map_err(|(path, message)| QueryRefused::Spec {
        path: path.trim_start_matches('$').to_string(),
        message,
    })
}

impl From<QueryRequest> for QueryWire {
    fn from(r: QueryRequest) -> Self {
        let spec = match &r.query {
            QueryType::Characterization(s) => serde_json::to_value(s).ok(),
            QueryType::Incidence(s) => serde_json::to_value(s).ok(),
            QueryType::Survival(s) => serde_json::to_value(s).ok(),
            QueryType::RegressionRound(s) => serde_json::to_value(s).ok(),
            QueryType::Recruitment(s) => serde_json::to_value(s).ok(),
            QueryType::CohortCount | QueryType::Demographics { .. } => None,
        };
        let (query_type, age_band_years, by_index_year) = match r.query {
            QueryType::Characterization(_) => (QueryKind::Characterization, None, None),
            QueryType::Incidence(_) => (QueryKind::Incidence, None, None),
            QueryType::Survival(_) => (QueryKind::Survival, None, None),
            QueryType::RegressionRound(_) => (QueryKind::RegressionRound, None, None),
            QueryType::Recruitment(_) => (QueryKind::Recruitment, None, None),
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
            spec,
        }
    }
}

/// Why a submission is refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitRefused {
    /// The submitter is not a member of the project.
    #[error("you are not a member of project {0}")]
    NotMember(ProjectId),
    /// The project is not approved.
    #[error("project {0} is not approved; queries run only under approved projects")]
    NotApproved(ProjectId),
    /// The definition is not a JSON object.
    #[error("definition must be a JSON object (an OHDSI Circe cohort expression)")]
    DefinitionNotObject,
    /// The definition is larger than [`MAX_DEFINITION_BYTES`].
    #[error("definition of {0} bytes exceeds the limit of {MAX_DEFINITION_BYTES}")]
    DefinitionTooLarge(usize),
    /// A site asked for does not exist or has not enrolled.
    #[error("site {0} does not exist or has not enrolled")]
    UnknownSite(SiteId),
    /// No enrolled site to ask.
    #[error("no enrolled site to ask")]
    NoSites,
    /// A submission quota is spent (audited).
    #[error("the {} quota of {} jobs per {} s is spent; retry in {} s", .0.what, .0.limit, .0.period_secs, .0.retry_after_secs)]
    Quota(QuotaExceeded),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// May `user` submit under `project`: a member, and the project approved.
pub fn check_submitter(user: &User, project: &Project) -> Result<(), SubmitRefused> {
    if !project.members.contains(&user.id) {
        return Err(SubmitRefused::NotMember(project.id.clone()));
    }
    if !project.approved {
        return Err(SubmitRefused::NotApproved(project.id.clone()));
    }
    Ok(())
}

/// Submits `req` as `user` under `project` (checked with [`check_submitter`]): the definition's
/// shape and size, the sites asked (every enrolled site by default), then the job and its
/// deliveries within `quotas`, in one transaction; a spent quota is audited as a refused
/// `job.submit`.
pub fn submit_job(
    store: &dyn HubStore,
    quotas: &Quotas,
    user: &User,
    project: &Project,
    req: QueryRequest,
    floors: qiao_protocol::Floors,
    t: i64,
) -> Result<JobRecord, SubmitRefused> {
    if !req.definition.is_object() {
        return Err(SubmitRefused::DefinitionNotObject);
    }
    // The analysis spec's definitions (comparator, outcome) count too.
    let def_len = serde_json::to_vec(&req.definition)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
        .saturating_add(match &req.query {
            QueryType::Characterization(_)
            | QueryType::Incidence(_)
            | QueryType::Survival(_)
            | QueryType::RegressionRound(_)
            | QueryType::Recruitment(_) => serde_json::to_vec(&req.query)
                .map(|v| v.len())
                .unwrap_or(usize::MAX),
            QueryType::CohortCount | QueryType::Demographics { .. } => 0,
        });
    if def_len > MAX_DEFINITION_BYTES {
        return Err(SubmitRefused::DefinitionTooLarge(def_len));
    }
    let enrolled: Vec<Site> = store
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
                    return Err(SubmitRefused::UnknownSite(s));
                }
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            out
        }
    };
    if sites.is_empty() {
        return Err(SubmitRefused::NoSites);
    }
    let job = Job {
        job_id: JobId::random(),
        project_id: project.id.clone(),
        query: req.query,
        definition: req.definition,
        requested_by: Requester {
            user_id: user.id.clone(),
            role: user.role,
            // The site charges this organization's privacy budget.
            organization: crate::store::budget::organization_of(user),
        },
        created_at: t,
        floors,
    };
    match store.create_job_within(&job, &sites, quotas, t)? {
        Ok(record) => Ok(record),
        Err(q) => {
            store.audit(
                EntryDraft::new(t, Actor::User(user.id.to_string()), "job.submit")
                    .project(job.project_id.to_string())
                    .decision(format!(
                        "refused: {} quota of {} jobs per {} s spent",
                        q.what, q.limit, q.period_secs
                    )),
            )?;
            Err(SubmitRefused::Quota(q))
        }
    }
}
