//! Running a job on the store and putting every number through the release mechanism.
//!
//! The cohort engine (qiao-cohort) gives the cohort rows and Circe's inclusion statistics
//! ([`run_definition`], [`crate::cdm`]); every query type is an analysis of the analysis layer
//! ([`qiao_analysis::network`]: the cohort count, demographics, characterization, incidence),
//! and [`execute`] runs each through one generic function, turning a job into a [`JobResult`]
//! whose every number went through [`qiao_disclosure`]:
//!
//! - the job's floors applied to the site's policy (or a refusal naming what cannot be met);
//! - before anything is computed, the site's [`Discloser::admit`]: the rate limit and, under
//!   the default DP policy, the job's ρ — the sum over the analysis's declared statistics
//!   ([`Analysis::statistics`]) — charged to the user's, the organization's (from the signed
//!   job) and the site's budgets;
//! - the analysis computed and released ([`Analysis::release`]), each statistic by the one
//!   mechanism, the result's person set recorded in the ledger (SHRINE's lockout).
//!
//! Nothing patient-level leaves this module: the result types cannot express it, and
//! [`execute`] runs [`check_against_job`] before returning a result.

use qiao_analysis::network::characterization::Characterization;
use qiao_analysis::network::cohort_count::CohortCount;
use qiao_analysis::network::demographics::{Demographics, DemographicsSpec};
use qiao_analysis::network::incidence::Incidence;
use qiao_analysis::network::recruitment::{PersonMarks, Recruitment};
use qiao_analysis::network::regression::RegressionRoundAnalysis;
use qiao_analysis::network::survival::Survival;
use qiao_analysis::network::{Analysis, AnalysisError, Site};
use qiao_disclosure::{
    BudgetStatus, Discloser, Policy, QueryContext, QueryLedger, Question, Refusal, ReleaseMode,
};
use qiao_protocol::{
    check_against_job, DisclosureSummary, DpParams, FailureKind, Job, JobResult, ObfuscationParams,
    Outcome, Payload, QueryType, RefusalReason, SiteId,
};

pub use crate::cdm::{run_definition, run_definition_until, ExecError, SiteCdm};

pub use qiao_analysis::network::cohort_count::{
    cohort_count_statistics, cohort_count_values, subjects_are_final, true_funnel, TrueFunnel,
};
pub use qiao_analysis::network::demographics::{
    age_bands, demographics_statistics, gender_of, TOP_AGE,
};
pub use qiao_analysis::network::{subject_ids, CohortRun};

pub use qiao_analysis::network::to_wire;

fn refusal_reason(r: &Refusal) -> Result<RefusalReason, ExecError> {
    match r {
        Refusal::RateLimited { .. } => Ok(RefusalReason::RateLimited),
        Refusal::LockedOut { .. } => Ok(RefusalReason::LockedOut),
        Refusal::BudgetExhausted { .. } => Ok(RefusalReason::PrivacyBudgetExhausted),
        Refusal::InvalidRequest { reason } => Err(ExecError::Internal(reason.clone())),
    }
}

fn summary(
    policy: &Policy,
    rho_spent: f64,
    budget: Option<BudgetStatus>,
    breakdown: bool,
) -> DisclosureSummary {
    DisclosureSummary {
        min_cell_count: policy.min_cell_count,
        obfuscation: (policy.release == ReleaseMode::Shrine).then_some(ObfuscationParams {
            bin: policy.obfuscation.bin,
            sigma: policy.obfuscation.sigma,
            clamp: policy.obfuscation.clamp,
        }),
        secondary_suppression: breakdown
            && policy.release != ReleaseMode::Dp
            && policy.secondary_suppression,
        dp: budget.map(|b| DpParams {
            rho_spent,
            sigma: policy.dp.sigma,
            entries_bound: policy.dp.entries_bound,
            remaining_rho: b.remaining(),
            user_remaining_rho: Some(b.user.remaining()),
            organization_remaining_rho: Some(b.organization.remaining()),
        }),
    }
}

/// What happened to a job, with a note for the site's own log and audit.
#[derive(Debug, Clone)]
pub struct Executed {
    /// The result to send.
    pub result: JobResult,
    /// Local detail (never sent): the refusal or error text.
    pub note: String,
}

/// Everything [`execute`] needs besides the job.
pub struct ExecContext<'a> {
    /// This site.
    pub site_id: &'a SiteId,
    /// The CDM (a store, or a warehouse that computes the cohorts).
    pub cdm: &'a dyn SiteCdm,
    /// The site's disclosure control.
    pub discloser: &'a Discloser,
    /// The ledger: rate limit and privacy budgets (persisted by the caller).
    pub ledger: &'a mut QueryLedger,
    /// Now (unix seconds).
    pub now: i64,
    /// The recruitment marks of the job's project, for a recruitment job
    /// ([`crate::recruitment::dates`]); empty otherwise.
    pub recruitment: &'a [PersonMarks],
}

/// A refusal result.
pub fn refused(job: &Job, site_id: &SiteId, reason: RefusalReason, note: String) -> Executed {
    Executed {
        result: JobResult {
            job_id: job.job_id,
            site_id: site_id.clone(),
            outcome: Outcome::Refused { reason },
        },
        note,
    }
}

/// A failure result.
pub fn failed(job: &Job, site_id: &SiteId, error: FailureKind, note: String) -> Executed {
    Executed {
        result: JobResult {
            job_id: job.job_id,
            site_id: site_id.clone(),
            outcome: Outcome::Failed { error },
        },
        note,
    }
}

enum Stop {
    Refused(RefusalReason, String),
    Failed(ExecError),
}

impl From<ExecError> for Stop {
    fn from(e: ExecError) -> Self {
        Stop::Failed(e)
    }
}

fn refusal(r: Refusal) -> Stop {
    match refusal_reason(&r) {
        Ok(reason) => Stop::Refused(reason, r.to_string()),
        Err(e) => Stop::Failed(e),
    }
}

/// Runs an approved job: ledger, engine, disclosure control, guards. Never panics on a bad job;
/// every outcome is a [`JobResult`] for the hub.
pub fn execute(job: &Job, cx: &mut ExecContext<'_>) -> Executed {
    execute_with(job, cx, &mut |cdm, definition| cdm.run(definition, None))
}

/// How [`execute_with`] gets the cohort of a job's definition.
pub type Engine<'e> =
    dyn FnMut(&dyn SiteCdm, &serde_json::Value) -> Result<CohortRun, ExecError> + 'e;

/// As [`execute`], the cohort given by `engine` (e.g. one computed before, outside the data
/// directory's lock: [`crate::workers`]).
pub fn execute_with(job: &Job, cx: &mut ExecContext<'_>, engine: &mut Engine<'_>) -> Executed {
    // The alliance's floors from the signed job: the stricter of them and the site's policy,
    // or a refusal naming what cannot be met (decided on the policy alone, never on data).
    match cx
        .discloser
        .under_floors(job.floors.min_cell_count, job.floors.max_rho_per_release)
    {
        Ok(None) => execute_under(job, cx, engine),
        Ok(Some(d)) => execute_under(
            job,
            &mut ExecContext {
                site_id: cx.site_id,
                cdm: cx.cdm,
                discloser: &d,
                ledger: &mut *cx.ledger,
                now: cx.now,
                recruitment: cx.recruitment,
            },
            engine,
        ),
        Err(e) => refused(job, cx.site_id, RefusalReason::FloorsUnmet, e.to_string()),
    }
}

/// [`execute_with`] once the floors are applied.
fn execute_under(job: &Job, cx: &mut ExecContext<'_>, engine: &mut Engine<'_>) -> Executed {
    let payload = match &job.query {
        QueryType::CohortCount => {
            run_analysis::<CohortCount>(job, cx, engine, &()).map(Payload::CohortCount)
        }
        QueryType::Demographics {
            age_band_years,
            by_index_year,
        } => {
            let spec = DemographicsSpec {
                age_band_years: *age_band_years,
                by_index_year: *by_index_year,
            };
            run_analysis::<Demographics>(job, cx, engine, &spec).map(Payload::Demographics)
        }
        QueryType::Characterization(spec) => {
            run_analysis::<Characterization>(job, cx, engine, spec).map(Payload::Characterization)
        }
        QueryType::Incidence(spec) => {
            run_analysis::<Incidence>(job, cx, engine, spec).map(Payload::Incidence)
        }
        QueryType::Survival(spec) => {
            run_analysis::<Survival>(job, cx, engine, spec).map(Payload::Survival)
        }
        QueryType::RegressionRound(round) => {
            run_analysis::<RegressionRoundAnalysis>(job, cx, engine, round)
                .map(Payload::RegressionRound)
        }
        QueryType::Recruitment(spec) => {
            run_analysis::<Recruitment>(job, cx, engine, spec).map(Payload::Recruitment)
        }
    };
    let executed = match payload {
        Ok(payload) => Executed {
            result: JobResult {
                job_id: job.job_id,
                site_id: cx.site_id.clone(),
                outcome: Outcome::Done { payload },
            },
            note: "released".into(),
        },
        Err(Stop::Refused(reason, note)) => refused(job, cx.site_id, reason, note),
        Err(Stop::Failed(e)) => failed(job, cx.site_id, e.kind(), e.to_string()),
    };
    match check_against_job(job, &executed.result) {
        Ok(()) => executed,
        Err(v) => failed(
            job,
            cx.site_id,
            FailureKind::Internal,
            format!("result withheld by the aggregate-only guard: {v}"),
        ),
    }
}

/// Runs an analysis of the analysis layer ([`qiao_analysis::network`]): its declared
/// statistics charged before anything is computed, then computed and released at the site.
fn run_analysis<A: Analysis>(
    job: &Job,
    cx: &mut ExecContext<'_>,
    engine: &mut Engine<'_>,
    spec: &A::Spec,
) -> Result<A::Released, Stop> {
    let d = cx.discloser;
    let cdm = cx.cdm;
    if A::NEEDS_STORE && cdm.store().is_none() {
        return Err(Stop::Failed(ExecError::Unsupported(
            "this analysis reads the CDM row by row and is not served by a site whose CDM is on \
             Spark"
                .into(),
        )));
    }
    let stats = A::statistics(spec, &job.definition, d, cdm).map_err(analysis_stop)?;
    let q = ctx(job, cx.now);
    let budget = d.admit(cx.ledger, &q, &stats).map_err(refusal)?;
    let summary = summary(d.policy(), d.cost(&stats), budget, A::TABLE);
    let mut runs = |def: &serde_json::Value| {
        engine(cdm, def).map_err(|e| match e {
            ExecError::Invalid(m) => AnalysisError::Invalid(m),
            ExecError::Unsupported(m) => AnalysisError::UnsupportedDefinition(m),
            ExecError::Internal(m) => AnalysisError::Internal(m),
            ExecError::Cancelled(m) => AnalysisError::Cancelled(m),
        })
    };
    let mut site = Site {
        cdm,
        engine: &mut runs,
        discloser: d,
        ledger: &mut *cx.ledger,
        context: q,
        question: question(job),
        target: &job.definition,
        statistics: &stats,
        summary,
        recruitment: cx.recruitment,
    };
    A::release(spec, &mut site).map_err(analysis_stop)
}

fn analysis_stop(e: AnalysisError) -> Stop {
    match e {
        AnalysisError::Invalid(m) => Stop::Failed(ExecError::Invalid(m)),
        // Decided on the spec and the policy: the site's policy does not release it.
        AnalysisError::Unsupported(m) => Stop::Refused(RefusalReason::Policy, m),
        AnalysisError::UnsupportedDefinition(m) => Stop::Failed(ExecError::Unsupported(m)),
        AnalysisError::Refused(r) => refusal(r),
        AnalysisError::Cancelled(m) => Stop::Failed(ExecError::Cancelled(m)),
        AnalysisError::Internal(m) => Stop::Failed(ExecError::Internal(m)),
    }
}

fn ctx<'j>(job: &'j Job, now: i64) -> QueryContext<'j> {
    QueryContext {
        user: job.requested_by.user_id.as_str(),
        organization: job.requested_by.organization.as_str(),
        project: job.project_id.as_str(),
        now_unix_secs: u64::try_from(now).unwrap_or(0),
    }
}

/// The question a job asks, as the release mechanism keys it: its query type and cohort
/// definition (serialized JSON).
pub fn question(job: &Job) -> Question {
    let mut bytes = serde_json::to_vec(&job.query).unwrap_or_default();
    bytes.push(0);
    bytes.extend(serde_json::to_vec(&job.definition).unwrap_or_default());
    Question::of(&bytes)
}
