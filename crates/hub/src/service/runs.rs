//! Federated regression runs: Newton–Raphson over the network as a multi-round signed job
//! protocol.
//!
//! A run fixes the model, the cohorts, the covariates and the sites. Each round is one signed job
//! to every site of the run ([`QueryType::RegressionRound`]: run id, round, spec, coefficients);
//! its result is the site's sums at those coefficients. When every site has answered, the hub
//! takes the Newton step — [`Newton`], the same code `qiao analyze regress` runs in process —
//! and issues the next round, until |Δ loglik| < 1e-8 or 25 steps.
//!
//! A site that refuses or fails a round, or does not answer before the round's deadline, makes
//! the run **fail** with its state kept (the Newton state, every round's per-site sums); the
//! round's job is withdrawn from the sites that have not answered. [`resume`] issues the failed
//! round again (the same coefficients, to the same sites) and the run continues: a run never
//! silently becomes a different model. Every step is in the hub's audit chain (`run.start`,
//! `run.round`, `run.fail`, `run.resume`, `run.end`) beside the jobs' own `job.submit` and
//! `result.receive`; each site audits every round it runs as any job.

use qiao_analysis::network::regression::{coefficient_names, sums_of, RegressionRoundAnalysis};
use qiao_analysis::network::Analysis;
use qiao_analysis::regression::{Fit, Newton, SiteSums, Step};
use qiao_audit::{Actor, EntryDraft};
use qiao_protocol::{
    Coefficients, Floors, Job, JobId, Outcome, Payload, ProjectId, QueryType, RegressionRound,
    RegressionSpec, SiteId, UserId,
};
use serde::{Deserialize, Serialize};

use super::jobs::{submit_job, QueryRequest, SubmitRefused};
use crate::model::{Project, StoredResult, User};
use crate::store::{
    append_audit, create_job_in, get_json, job_in, put_json, scan_json, withdraw_job_in, HubStore,
    Quotas, StoreError, Table, Tx,
};

/// Runs by id.
pub const RUNS: Table = Table::Extension("regression_runs");

/// Seconds a site has to answer a round unless the run says otherwise.
pub const DEFAULT_ROUND_TIMEOUT_SECS: u64 = 120;

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for the current round's sums.
    Running,
    /// Stopped at a round (a site refused, failed or did not answer; or the fit failed):
    /// resumable.
    Failed,
    /// |Δ loglik| fell below 1e-8.
    Converged,
    /// 25 Newton steps without converging.
    NotConverged,
    /// Under differential privacy: the fixed number of rounds was run (no convergence test on
    /// noisy sums); the fit says how it was noised.
    Completed,
}

/// One site's answer to a round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SiteRound {
    /// The site.
    pub site: SiteId,
    /// Its released sums.
    #[schema(value_type = Object)]
    pub sums: SiteSums,
    /// ρ (zCDP) the site charged for this round (under differential privacy: the whole run's
    /// at round 0, nothing after), from its disclosure summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rho_spent: Option<f64>,
    /// When they arrived (unix seconds).
    pub received_at: i64,
}

/// One round: a signed job to every site of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoundRecord {
    /// 0, 1, … (a resumed round keeps its number).
    pub round: u32,
    /// The round's job (a resumed round gets a new job).
    pub job_id: JobId,
    /// Where the sites evaluate.
    pub coefficients: Vec<f64>,
    /// When the job was issued (unix milliseconds).
    pub issued_at_ms: i64,
    /// When the last site's sums arrived (unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    /// The sites' answers so far.
    pub sites: Vec<SiteRound>,
}

/// A regression run as the hub keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunRecord {
    /// The run.
    pub run_id: JobId,
    /// Its project.
    pub project_id: ProjectId,
    /// Who started it.
    pub requested_by: UserId,
    /// What it fits.
    pub spec: RegressionSpec,
    /// The target cohort (OHDSI Circe).
    pub definition: serde_json::Value,
    /// The sites, fixed for the run.
    pub sites: Vec<SiteId>,
    /// The coefficients' names (logistic: the intercept first).
    pub names: Vec<String>,
    /// Seconds each site has to answer a round.
    pub round_timeout_secs: u64,
    /// Where the run is.
    pub status: RunStatus,
    /// Why it failed (names the site), while failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The Newton–Raphson state between rounds.
    #[schema(value_type = Object)]
    pub newton: Newton,
    /// Every round, in order (a resumed round replaces its failed attempt).
    pub rounds: Vec<RoundRecord>,
    /// The fit, once ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub fit: Option<Fit>,
    /// When the run started (unix seconds).
    pub created_at: i64,
}

impl RunRecord {
    /// The round in progress (or the last).
    pub fn current(&self) -> Option<&RoundRecord> {
        self.rounds.last()
    }

    fn round_job(&self, round: u32, coefficients: Vec<f64>) -> QueryType {
        QueryType::RegressionRound(RegressionRound {
            run_id: self.run_id,
            round,
            spec: self.spec.clone(),
            coefficients: Coefficients(coefficients),
        })
    }
}

/// `POST /api/v1/projects/{id}/runs` body.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// What to fit.
    pub spec: RegressionSpec,
    /// The target cohort (OHDSI Circe expression).
    pub definition: serde_json::Value,
    /// The sites (default: every enrolled site); fixed for the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sites: Option<Vec<SiteId>>,
    /// Seconds each site has to answer a round (default 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_timeout_secs: Option<u64>,
}

/// Why a run cannot start or resume.
#[derive(Debug, thiserror::Error)]
pub enum RunRefused {
    /// The spec has a problem at a JSON path.
    #[error("spec{path}: {message}")]
    Spec {
        /// Where (`$` the spec).
        path: String,
        /// What.
        message: String,
    },
    /// The round-0 job was refused.
    #[error(transparent)]
    Submit(#[from] SubmitRefused),
    /// Resume of a run that has not failed.
    #[error("run {0} is {1:?}; only a failed run resumes")]
    NotFailed(JobId, RunStatus),
    /// No such run.
    #[error("run {0} not found")]
    NotFound(JobId),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn audit(
    tx: &mut dyn Tx,
    run: &RunRecord,
    actor: Actor,
    action: &str,
    decision: String,
    t: i64,
) -> Result<(), StoreError> {
    append_audit(
        tx,
        EntryDraft::new(t, actor, action)
            .project(run.project_id.to_string())
            .job(run.run_id.to_string())
            .decision(decision),
    )
    .map(|_| ())
}

/// Starts a run as `user` (a member of the approved `project`: checked by the caller): round 0
/// is submitted as a job within the submission quotas.
pub fn start(
    store: &dyn HubStore,
    quotas: &Quotas,
    user: &User,
    project: &Project,
    req: RunRequest,
    floors: Floors,
    t: i64,
) -> Result<RunRecord, RunRefused> {
    let run_id = JobId::random();
    let p = req.spec.parameters();
    let probe = RegressionRound {
        run_id,
        round: 0,
        spec: req.spec.clone(),
        coefficients: Coefficients(vec![0.0; p]),
    };
    RegressionRoundAnalysis::check(&probe).map_err(|(path, message)| RunRefused::Spec {
        path: path.trim_start_matches('$').replacen(".spec", "", 1),
        message,
    })?;
    let model = qiao_analysis::network::regression::model_of(req.spec.model);
    let job = submit_job(
        store,
        quotas,
        user,
        project,
        QueryRequest {
            query: QueryType::RegressionRound(probe.clone()),
            definition: req.definition.clone(),
            sites: req.sites.clone(),
        },
        floors,
        t,
    )?;
    let run = RunRecord {
        run_id,
        project_id: project.id.clone(),
        requested_by: user.id.clone(),
        names: coefficient_names(&probe),
        spec: req.spec,
        definition: req.definition,
        sites: job.sites.clone(),
        round_timeout_secs: req
            .round_timeout_secs
            .unwrap_or(DEFAULT_ROUND_TIMEOUT_SECS)
            .max(1),
        status: RunStatus::Running,
        failure: None,
        newton: Newton::new(model, p),
        rounds: vec![RoundRecord {
            round: 0,
            job_id: job.job.job_id,
            coefficients: vec![0.0; p],
            issued_at_ms: now_ms(),
            finished_at_ms: None,
            sites: Vec::new(),
        }],
        fit: None,
        created_at: t,
    };
    store.write_with(|tx| {
        put_json(tx, RUNS, &run_id.to_string(), &run)?;
        audit(
            tx,
            &run,
            Actor::User(user.id.to_string()),
            "run.start",
            format!(
                "regression run: {} sites, round 0 is job {}",
                run.sites.len(),
                job.job.job_id
            ),
            t,
        )
    })?;
    // Round 0 may have been answered before the run was stored.
    advance(store, &job.job.job_id, t)?;
    Ok(store
        .read_with(|tx| get_json(tx, RUNS, &run_id.to_string()))?
        .unwrap_or(run))
}

/// A run, after failing it if its round is past the deadline.
pub fn get(store: &dyn HubStore, run_id: &JobId, t: i64) -> Result<Option<RunRecord>, StoreError> {
    store.write_with(|tx| {
        let Some(mut run) = get_json::<RunRecord>(tx, RUNS, &run_id.to_string())? else {
            return Ok(None);
        };
        if run.status == RunStatus::Running {
            if let Some(r) = run.current() {
                let late = now_ms() - r.issued_at_ms > (run.round_timeout_secs as i64) * 1000;
                if late {
                    let missing: Vec<String> = run
                        .sites
                        .iter()
                        .filter(|s| !r.sites.iter().any(|a| &a.site == *s))
                        .map(|s| s.to_string())
                        .collect();
                    let why = format!(
                        "round {}: site {} did not answer within {} s",
                        r.round,
                        missing.join(", site "),
                        run.round_timeout_secs
                    );
                    fail(tx, &mut run, why, t)?;
                }
            }
        }
        Ok(Some(run))
    })
}

fn fail(tx: &mut dyn Tx, run: &mut RunRecord, why: String, t: i64) -> Result<(), StoreError> {
    if let Some(r) = run.current() {
        if let Some(record) = job_in(tx, &r.job_id)? {
            withdraw_job_in(tx, &record)?;
        }
    }
    run.status = RunStatus::Failed;
    run.failure = Some(why.clone());
    put_json(tx, RUNS, &run.run_id.to_string(), run)?;
    audit(tx, run, Actor::Hub, "run.fail", why, t)
}

/// Issues the failed round of a run again (same round, same coefficients, same sites) as
/// `user`.
pub fn resume(
    store: &dyn HubStore,
    run_id: &JobId,
    user: &User,
    t: i64,
) -> Result<RunRecord, RunRefused> {
    let run = store.write_with(|tx| {
        let Some(mut run) = get_json::<RunRecord>(tx, RUNS, &run_id.to_string())? else {
            return Ok(Err(RunRefused::NotFound(*run_id)));
        };
        if run.status != RunStatus::Failed {
            return Ok(Err(RunRefused::NotFailed(*run_id, run.status)));
        }
        let Some(last) = run.rounds.pop() else {
            return Ok(Err(RunRefused::NotFound(*run_id)));
        };
        let Some(failed) = job_in(tx, &last.job_id)? else {
            return Ok(Err(RunRefused::NotFound(*run_id)));
        };
        // The failed round's job again (the requester and floors of the run), under a new id.
        let job = Job {
            job_id: JobId::random(),
            created_at: t,
            ..failed.job
        };
        issue_job(tx, &mut run, job, last.round, last.coefficients, t)?;
        run.status = RunStatus::Running;
        run.failure = None;
        put_json(tx, RUNS, &run_id.to_string(), &run)?;
        audit(
            tx,
            &run,
            Actor::User(user.id.to_string()),
            "run.resume",
            format!("round {} issued again", last.round),
            t,
        )?;
        Ok(Ok(run))
    })??;
    Ok(run)
}

fn issue_job(
    tx: &mut dyn Tx,
    run: &mut RunRecord,
    job: Job,
    round: u32,
    coefficients: Vec<f64>,
    t: i64,
) -> Result<(), StoreError> {
    create_job_in(tx, &job, &run.sites, t)?;
    run.rounds.push(RoundRecord {
        round,
        job_id: job.job_id,
        coefficients,
        issued_at_ms: now_ms(),
        finished_at_ms: None,
        sites: Vec::new(),
    });
    Ok(())
}

/// After a result of job `job_id` is stored: when it is a round of a running run, records the
/// site's sums; when every site has answered, takes the Newton step and issues the next round
/// (or ends the run); a refusal or failure fails the run. Returns whether a new job was issued.
pub fn advance(store: &dyn HubStore, job_id: &JobId, t: i64) -> Result<bool, StoreError> {
    store.write_with(|tx| {
        let Some(record) = job_in(tx, job_id)? else {
            return Ok(false);
        };
        let QueryType::RegressionRound(round) = &record.job.query else {
            return Ok(false);
        };
        let Some(mut run) = get_json::<RunRecord>(tx, RUNS, &round.run_id.to_string())? else {
            return Ok(false);
        };
        let current = run.current().map(|r| r.job_id);
        if run.status != RunStatus::Running || current != Some(*job_id) {
            return Ok(false);
        }
        let results: Vec<StoredResult> = scan_json(tx, Table::Results, &format!("{job_id}/"))?;
        let mut answers = Vec::new();
        for s in &results {
            let site = &s.result.site_id;
            let why = match (&s.result.outcome, &s.rejected) {
                (_, Some(r)) => Some(format!("rejected as implausible: {r}")),
                (
                    Outcome::Done {
                        payload: Payload::RegressionRound(p),
                    },
                    None,
                ) => {
                    answers.push(SiteRound {
                        site: site.clone(),
                        sums: sums_of(round, p),
                        rho_spent: p.disclosure.dp.as_ref().map(|dp| dp.rho_spent),
                        received_at: s.received_at,
                    });
                    None
                }
                (Outcome::Done { .. }, None) => Some("answered another query type".into()),
                (Outcome::Refused { reason }, None) => Some(format!(
                    "refused ({})",
                    serde_json::to_string(reason)
                        .unwrap_or_default()
                        .trim_matches('"')
                )),
                (Outcome::Failed { error }, None) => Some(format!(
                    "failed ({})",
                    serde_json::to_string(error)
                        .unwrap_or_default()
                        .trim_matches('"')
                )),
            };
            if let Some(why) = why {
                let msg = format!("round {}: site {site} {why}", round.round);
                fail(tx, &mut run, msg, t)?;
                return Ok(false);
            }
        }
        // In the run's site order.
        answers.sort_by_key(|a| run.sites.iter().position(|s| *s == a.site));
        let complete = answers.len() == run.sites.len();
        let last = run.rounds.last_mut().expect("a current round");
        last.sites = answers;
        if !complete {
            put_json(tx, RUNS, &run.run_id.to_string(), &run)?;
            return Ok(false);
        }
        last.finished_at_ms = Some(now_ms());
        let released: Vec<_> = results
            .iter()
            .filter_map(|s| match &s.result.outcome {
                Outcome::Done {
                    payload: Payload::RegressionRound(p),
                } => Some(p),
                _ => None,
            })
            .collect();
        let total = RegressionRoundAnalysis::pool(round, &released);
        let mut issued = false;
        match run.newton.advance(&total) {
            Ok(Step::Evaluate(beta)) => {
                let next = round.round + 1;
                let job = Job {
                    job_id: JobId::random(),
                    query: run.round_job(next, beta.clone()),
                    created_at: t,
                    ..record.job.clone()
                };
                let decision = format!(
                    "round {} complete (loglik {}); round {next} is job {}",
                    round.round, total.loglik, job.job_id
                );
                issue_job(tx, &mut run, job, next, beta, t)?;
                put_json(tx, RUNS, &run.run_id.to_string(), &run)?;
                audit(tx, &run, Actor::Hub, "run.round", decision, t)?;
                issued = true;
            }
            Ok(Step::Done) => match run.newton.result(&run.names) {
                Ok(fit) => {
                    run.status = if fit.privacy.is_some() {
                        RunStatus::Completed
                    } else if fit.converged {
                        RunStatus::Converged
                    } else {
                        RunStatus::NotConverged
                    };
                    let decision = format!(
                        "{:?} after {} iterations, {} rounds",
                        run.status,
                        fit.iterations,
                        run.rounds.len()
                    );
                    run.fit = Some(fit);
                    put_json(tx, RUNS, &run.run_id.to_string(), &run)?;
                    audit(tx, &run, Actor::Hub, "run.end", decision, t)?;
                }
                Err(e) => fail(tx, &mut run, format!("the fit failed: {e}"), t)?,
            },
            Err(e) => fail(tx, &mut run, format!("the fit failed: {e}"), t)?,
        }
        Ok(issued)
    })
}

/// A round's sums over the sites that answered (the network totals of a round's job).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoundTotals {
    /// Sites added.
    pub sites_done: usize,
    /// Persons.
    pub persons: u64,
    /// Persons with the outcome.
    pub events: u64,
    /// Σ log-likelihood.
    pub loglik: f64,
    /// Σ gradient.
    pub gradient: Vec<f64>,
    /// Σ Hessian, row-major.
    pub hessian: Vec<f64>,
}

/// [`RoundTotals`] of the payloads of the sites that are done.
pub fn round_totals(round: &RegressionRound, done: &[&Payload]) -> RoundTotals {
    let released: Vec<_> = done
        .iter()
        .filter_map(|p| match p {
            Payload::RegressionRound(r) => Some(r),
            _ => None,
        })
        .collect();
    let t = RegressionRoundAnalysis::pool(round, &released);
    RoundTotals {
        sites_done: released.len(),
        persons: t.n,
        events: t.events,
        loglik: t.loglik,
        gradient: t.gradient,
        hessian: t.hessian,
    }
}
