//! Running a job on the store and putting every number through the release mechanism.
//!
//! The cohort engine (qiao-cohort) gives the cohort rows and Circe's inclusion statistics;
//! [`true_funnel`] is the attrition funnel before any disclosure control (what
//! `qiao cohort run --stats` prints); [`execute`] turns a job into a [`JobResult`] whose every
//! number went through [`qiao_disclosure`]:
//!
//! - before anything is computed, the site's [`Discloser::admit`]: the rate limit and, under
//!   the default DP policy, the job's ρ — the sum over its declared statistics
//!   ([`cohort_count_statistics`], [`demographics_statistics`]) — charged to the user's, the
//!   organization's (from the signed job) and the site's budgets;
//! - each statistic released by the one mechanism, keyed on the question (query type and
//!   definition), the statistic and its **person set**: `subjects` on the cohort's distinct
//!   persons; `entries` on the cohort rows with each person's rows clipped to the policy's
//!   bound (noise scaled to it); every funnel line on its own person set, taken from each
//!   person's best-event inclusion mask (what Circe's best-event statistics count): "after
//!   rule i" on the persons passing rules 0..=i, a rule's gain on the persons failing only that
//!   rule, the final line on the persons passing all;
//! - funnels made non-increasing and breakdown margins made the sums of their cells
//!   (post-processing), and the threshold applied to the noisy values.
//!
//! Nothing patient-level leaves this module: the result types cannot express it, and
//! [`execute`] runs [`check_against_job`] before returning a result.

use qiao_analysis::network::characterization::Characterization;
use qiao_analysis::network::incidence::Incidence;
use qiao_analysis::network::regression::RegressionRoundAnalysis;
use qiao_analysis::network::{Analysis, AnalysisError, Site};
use qiao_cdm::date::{self, Day};
use qiao_cdm::NULL_INT;
use qiao_cohort::exec::{rules_through, Cancel};
use qiao_cohort::{CohortError, CohortRow, CohortSink, CohortStats, Prepared};
use qiao_disclosure::{
    Breakdown, BudgetStatus, Discloser, PersonSetDigest, Policy, QueryContext, QueryLedger,
    Question, Refusal, ReleaseMode, Released as DReleased, Statistic, SuppressionBasis as DBasis,
};
use qiao_protocol::{
    check_against_job, AgeBand, Cell, CohortCountResult, DemographicsResult, DisclosureSummary,
    DpParams, FailureKind, Gender, Job, JobResult, ObfuscationParams, Outcome, Payload, QueryType,
    RefusalReason, RuleName, RuleResult, SiteId,
};
use qiao_store::Store;

/// Ages at or above this go into the open-ended top band (rounded up to a band boundary).
pub const TOP_AGE: u16 = 90;

/// The cohort a definition gives on a store.
#[derive(Debug, Clone)]
pub struct CohortRun {
    /// The cohort rows, in (subject_id, start) order. Patient-level: never leaves the site.
    pub rows: Vec<CohortRow>,
    /// Circe's statistics.
    pub stats: CohortStats,
    /// (person_id, inclusion mask of the person's best event) for every person with a
    /// qualified event, ascending. Patient-level: never leaves the site.
    pub person_masks: Vec<(i64, u64)>,
}

/// Collects a run's rows and per-person masks.
#[derive(Default)]
struct RunSink {
    rows: Vec<CohortRow>,
    person_masks: Vec<(i64, u64)>,
}

impl CohortSink for RunSink {
    fn push(&mut self, row: CohortRow) -> Result<(), CohortError> {
        self.rows.push(row);
        Ok(())
    }
    fn wants_person_masks(&self) -> bool {
        true
    }
    fn person_mask(&mut self, person_id: i64, mask: u64) -> Result<(), CohortError> {
        self.person_masks.push((person_id, mask));
        Ok(())
    }
}

/// Why a definition could not be run. The message stays at the site (logs, audit); only the
/// [`FailureKind`] crosses the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// Malformed or invalid definition.
    #[error("invalid cohort definition: {0}")]
    Invalid(String),
    /// Valid but not supported by the engine.
    #[error("unsupported cohort definition: {0}")]
    Unsupported(String),
    /// Anything else.
    #[error("internal error: {0}")]
    Internal(String),
    /// Stopped by its cancellation token (the site's time limit): what happened, for the sponsor
    /// and the audit.
    #[error("{0}")]
    Cancelled(String),
}

impl ExecError {
    /// The wire code.
    pub fn kind(&self) -> FailureKind {
        match self {
            ExecError::Invalid(_) => FailureKind::InvalidDefinition,
            ExecError::Unsupported(_) => FailureKind::UnsupportedDefinition,
            ExecError::Internal(_) => FailureKind::Internal,
            ExecError::Cancelled(_) => FailureKind::Timeout,
        }
    }
}

/// Parses, compiles and runs a Circe definition on `store`.
pub fn run_definition(
    store: &Store,
    definition: &serde_json::Value,
) -> Result<CohortRun, ExecError> {
    run_definition_until(store, definition, None)
}

/// As [`run_definition`], stopping with [`ExecError::Cancelled`] once `cancel` is cancelled.
pub fn run_definition_until(
    store: &Store,
    definition: &serde_json::Value,
    cancel: Option<Cancel>,
) -> Result<CohortRun, ExecError> {
    let text = definition.to_string();
    let def = qiao_cohort::parse(&text).map_err(|e| ExecError::Invalid(e.to_string()))?;
    let mut prepared = Prepared::new(&def, store).map_err(map_cohort_error)?;
    if let Some(c) = cancel {
        prepared = prepared.with_cancel(c);
    }
    let mut sink = RunSink::default();
    let stats = prepared.run(store, &mut sink).map_err(map_cohort_error)?;
    Ok(CohortRun {
        rows: sink.rows,
        stats,
        person_masks: sink.person_masks,
    })
}

fn map_cohort_error(e: CohortError) -> ExecError {
    match e {
        CohortError::Model(m) => ExecError::Invalid(m.to_string()),
        CohortError::Unsupported(u) => ExecError::Unsupported(u.to_string()),
        CohortError::Sink(s) => ExecError::Internal(s),
        CohortError::Cancelled => ExecError::Cancelled("stopped at the site's time limit".into()),
    }
}

/// The attrition funnel before disclosure control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrueFunnel {
    /// Cohort rows.
    pub entries: u64,
    /// Distinct persons in the cohort.
    pub subjects: u64,
    /// Per inclusion rule: name, persons remaining after it and every rule before it (best
    /// event per person, as ATLAS's attrition shows), and Circe's gain.
    pub rules: Vec<(String, u64, u64)>,
    /// Persons whose best event passes every rule (Circe's `final_count`, mode 1).
    pub final_persons: u64,
}

/// The funnel of a run.
pub fn true_funnel(run: &CohortRun) -> TrueFunnel {
    let s = &run.stats;
    let mode = &s.modes[1];
    let rules = s
        .rule_names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let remaining = mode.remaining_after(i);
            let gain = mode.rules.get(i).map_or(0, |r| r.gain_count);
            (name.clone(), remaining, gain)
        })
        .collect();
    TrueFunnel {
        entries: s.entries,
        subjects: s.subjects,
        rules,
        final_persons: mode.final_count,
    }
}

/// The distinct subject ids of a run's rows.
pub fn subject_ids(rows: &[CohortRow]) -> impl Iterator<Item = i64> + '_ {
    let mut last = None;
    rows.iter().filter_map(move |r| {
        if last == Some(r.subject_id) {
            None
        } else {
            last = Some(r.subject_id);
            Some(r.subject_id)
        }
    })
}

/// A stable 64-bit key of one cohort row (splitmix64 of its fields), so that `entries` is keyed
/// on the set of rows.
fn row_key(r: &CohortRow) -> i64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let a = mix(r.subject_id as u64);
    let b = mix(a ^ (r.start as u32 as u64));
    mix(b ^ ((r.end as u32 as u64) << 32)) as i64
}

/// The digest of the persons whose best-event mask satisfies `keep`, checked against the
/// count the statistics give for the same line (they are two views of one computation).
fn mask_digest(
    d: &Discloser,
    run: &CohortRun,
    want: u64,
    keep: impl Fn(u64) -> bool,
) -> Result<PersonSetDigest, Stop> {
    let digest = d.digest(
        run.person_masks
            .iter()
            .filter(|(_, m)| keep(*m))
            .map(|(p, _)| *p),
    );
    if digest.count() != want {
        return Err(Stop::Failed(ExecError::Internal(format!(
            "funnel line: {} persons by mask, {want} by the statistics",
            digest.count()
        ))));
    }
    Ok(digest)
}

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
    /// The store.
    pub store: &'a Store,
    /// The site's disclosure control.
    pub discloser: &'a Discloser,
    /// The ledger: rate limit and privacy budgets (persisted by the caller).
    pub ledger: &'a mut QueryLedger,
    /// Now (unix seconds).
    pub now: i64,
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
    execute_with(job, cx, &mut |store, definition| {
        run_definition(store, definition)
    })
}

/// How [`execute_with`] gets the cohort of a job's definition.
pub type Engine<'e> = dyn FnMut(&Store, &serde_json::Value) -> Result<CohortRun, ExecError> + 'e;

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
                store: cx.store,
                discloser: &d,
                ledger: &mut *cx.ledger,
                now: cx.now,
            },
            engine,
        ),
        Err(e) => refused(job, cx.site_id, RefusalReason::FloorsUnmet, e.to_string()),
    }
}

/// [`execute_with`] once the floors are applied.
fn execute_under(job: &Job, cx: &mut ExecContext<'_>, engine: &mut Engine<'_>) -> Executed {
    let payload = match &job.query {
        QueryType::CohortCount => cohort_count(job, cx, engine).map(Payload::CohortCount),
        QueryType::Demographics {
            age_band_years,
            by_index_year,
        } => demographics(job, cx, engine, *age_band_years, *by_index_year)
            .map(Payload::Demographics),
        QueryType::Characterization(spec) => {
            run_analysis::<Characterization>(job, cx, engine, spec).map(Payload::Characterization)
        }
        QueryType::Incidence(spec) => {
            run_analysis::<Incidence>(job, cx, engine, spec).map(Payload::Incidence)
        }
        QueryType::RegressionRound(round) => {
            run_analysis::<RegressionRoundAnalysis>(job, cx, engine, round)
                .map(Payload::RegressionRound)
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

/// An analysis of the analysis layer ([`qiao_analysis::network`]): its declared statistics
/// charged before anything is computed, then computed and released at the site.
fn run_analysis<A: Analysis>(
    job: &Job,
    cx: &mut ExecContext<'_>,
    engine: &mut Engine<'_>,
    spec: &A::Spec,
) -> Result<A::Released, Stop> {
    let d = cx.discloser;
    let stats = A::statistics(spec, d, cx.store).map_err(analysis_stop)?;
    let q = ctx(job, cx.now);
    let budget = d.admit(cx.ledger, &q, &stats).map_err(refusal)?;
    let summary = summary(d.policy(), d.cost(&stats), budget, false);
    let mut rows = |store: &Store, def: &serde_json::Value| {
        engine(store, def).map(|run| run.rows).map_err(|e| match e {
            ExecError::Invalid(m) => AnalysisError::Invalid(m),
            ExecError::Unsupported(m) => AnalysisError::Unsupported(m),
            ExecError::Internal(m) => AnalysisError::Internal(m),
            ExecError::Cancelled(m) => AnalysisError::Cancelled(m),
        })
    };
    let mut site = Site {
        store: cx.store,
        engine: &mut rows,
        discloser: d,
        question: question(job),
        target: &job.definition,
        summary,
    };
    A::release(spec, &mut site).map_err(analysis_stop)
}

fn analysis_stop(e: AnalysisError) -> Stop {
    match e {
        AnalysisError::Invalid(m) => Stop::Failed(ExecError::Invalid(m)),
        // Decided on the spec and the policy: the site's policy does not release it.
        AnalysisError::Unsupported(m) => Stop::Refused(RefusalReason::Policy, m),
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

/// Whether a definition's cohort persons (`subjects`) are, by construction, exactly the
/// persons of the funnel's final line (those whose best event passes every rule), so that
/// `subjects` is released once, as the final line (post-processing, no further ρ). Decided on
/// the definition alone, never on data: deciding it on the two person sets would make
/// "the two numbers are equal" an exact oracle for whether a person was dropped after the
/// inclusion rules.
///
/// The engine drops a person after the inclusion rules only when every end date it is offered
/// is before the start (an end strategy offset from the event's end date, or a negative offset)
/// or when the censor window clips every episode away. Without those, every person with an
/// included event keeps at least one cohort episode. A definition that does not parse answers
/// `false` (it fails later anyway).
pub fn subjects_are_final(definition: &serde_json::Value) -> bool {
    use qiao_cohort::model::{DateField, EndStrategy};
    let Ok(def) = qiao_cohort::parse(&definition.to_string()) else {
        return false;
    };
    let e = &def.expression;
    let no_window = e.censor_window.as_ref().is_none_or(|w| {
        w.start_date.as_deref().is_none_or(str::is_empty)
            && w.end_date.as_deref().is_none_or(str::is_empty)
    });
    let ends_kept = match &e.end_strategy {
        None | Some(EndStrategy::CustomEra(_)) => true,
        Some(EndStrategy::DateOffset(d)) => {
            d.date_field != Some(DateField::EndDate) && d.offset >= 0
        }
    };
    no_window && ends_kept
}

/// The statistics of a cohort count with `rules` inclusion rules, each with its sensitivity:
///
/// | statistic | one person changes it by at most |
/// | --- | --- |
/// | `subjects` (distinct persons in the cohort; not a statistic of its own when
/// `subjects_final`: then it is the final line, released once) | 1 |
/// | `entries` (cohort rows, each person's clipped to `entries_bound`) | `entries_bound` |
/// | `after rule i` (persons whose best event passes rules 0..=i) | 1 each |
/// | `gain i` (persons whose best event fails only rule i) | 1, and in one `gain` at most |
/// | `final` (persons whose best event passes every rule; released only without rules, as it
/// is the last `after rule` line otherwise) | 1 |
/// | `initial` (persons with a qualifying event, before the rules: the funnel's first line;
/// only with rules, as it is the final line otherwise) | 1 |
///
/// So the job costs `(rules + 4)/(2σ²)` (the gains are one family), `3/(2σ²)` without rules,
/// one release less when `subjects_final` ([`subjects_are_final`]).
pub fn cohort_count_statistics(
    rules: usize,
    entries_bound: u32,
    subjects_final: bool,
) -> Vec<Statistic> {
    let mut v = Vec::with_capacity(2 * rules + 3);
    if !subjects_final {
        v.push(Statistic::person_count("subjects"));
    }
    v.push(Statistic::clipped_rows("entries", entries_bound));
    for i in 0..rules {
        v.push(Statistic::person_count(format!("after rule {i}")));
        v.push(Statistic::disjoint_person_count(
            format!("gain {i}"),
            "gain",
        ));
    }
    if rules == 0 {
        v.push(Statistic::person_count("final"));
    } else {
        v.push(Statistic::person_count("initial"));
    }
    v
}

/// The statistics of a demographics breakdown: its cells (each person is in exactly one, so
/// they are one family of sensitivity 1); the margins are sums of noisy cells. One release.
pub fn demographics_statistics() -> Vec<Statistic> {
    vec![Statistic::disjoint_person_count("cells", "cells")]
}

/// The true values of a cohort count's statistics from a run (for the sensitivity test and
/// for the release): `(subjects, clipped entries, per rule (after, gain), final)`.
pub fn cohort_count_values(
    run: &CohortRun,
    entries_bound: u32,
) -> (u64, u64, Vec<(u64, u64)>, u64) {
    let bound = u64::from(entries_bound);
    let mut subjects = 0u64;
    let mut entries = 0u64;
    let mut i = 0;
    while i < run.rows.len() {
        let p = run.rows[i].subject_id;
        let mut n = 0u64;
        while i < run.rows.len() && run.rows[i].subject_id == p {
            n += 1;
            i += 1;
        }
        subjects += 1;
        entries += n.min(bound);
    }
    let n_rules = run.stats.rule_names.len();
    let full = if n_rules == 0 {
        0
    } else {
        rules_through(n_rules - 1)
    };
    let count = |keep: &dyn Fn(u64) -> bool| {
        run.person_masks.iter().filter(|(_, m)| keep(*m)).count() as u64
    };
    let rules = (0..n_rules)
        .map(|r| {
            let need = rules_through(r);
            let only_this = full & !(1u64 << (r % 64));
            (count(&|m| m & need == need), count(&|m| m == only_this))
        })
        .collect();
    (subjects, entries, rules, count(&|m| m & full == full))
}

fn cohort_count(
    job: &Job,
    cx: &mut ExecContext<'_>,
    engine: &mut Engine<'_>,
) -> Result<CohortCountResult, Stop> {
    let rule_names = qiao_protocol::guard::inclusion_rule_names(&job.definition);
    let d = cx.discloser;
    let policy = d.policy().clone();
    let bound = policy.dp.entries_bound;
    let subjects_final = subjects_are_final(&job.definition);
    let stats = cohort_count_statistics(rule_names.len(), bound, subjects_final);
    let q = ctx(job, cx.now);
    // Charged before computing, whatever the data.
    let budget = d.admit(cx.ledger, &q, &stats).map_err(refusal)?;
    let run = engine(cx.store, &job.definition)?;
    let funnel = true_funnel(&run);
    if funnel.rules.len() != rule_names.len() {
        return Err(Stop::Failed(ExecError::Internal(format!(
            "{} inclusion rules in the definition, {} in the statistics",
            rule_names.len(),
            funnel.rules.len()
        ))));
    }
    let subjects = d.digest(subject_ids(&run.rows));
    let n_rules = funnel.rules.len();
    let full = if n_rules == 0 {
        0
    } else {
        rules_through(n_rules - 1)
    };
    let final_persons = mask_digest(d, &run, funnel.final_persons, |m| m & full == full)?;
    d.record_result(cx.ledger, &q, &final_persons)
        .map_err(refusal)?;
    let question = question(job);
    let stat = |name: &str| {
        stats
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .unwrap_or_else(|| Statistic::person_count(name))
    };
    let entries = if policy.release == ReleaseMode::Dp {
        let (_, clipped, _, _) = cohort_count_values(&run, bound);
        d.release_value(&question, &stat("entries"), &subjects, clipped)
    } else {
        // Legacy and exact modes release the unclipped row count, keyed on the rows.
        let rows = d.digest(run.rows.iter().map(row_key));
        d.release_count(&question, &stat("entries"), &rows)
    };
    let mut lines = Vec::with_capacity(n_rules + 2);
    let mut gains = Vec::with_capacity(n_rules);
    if n_rules > 0 {
        // The funnel's first line: every person with a qualifying event (Circe's base count).
        let base = run.stats.modes[1].base_count;
        lines.push((stat("initial"), mask_digest(d, &run, base, |_| true)?));
    }
    for (i, (_, remaining, gain)) in funnel.rules.iter().enumerate() {
        let need = rules_through(i);
        lines.push((
            stat(&format!("after rule {i}")),
            mask_digest(d, &run, *remaining, |m| m & need == need)?,
        ));
        let only_this = full & !(1u64 << (i % 64));
        let gained = mask_digest(d, &run, *gain, |m| m == only_this)?;
        gains.push(d.release_count(&question, &stat(&format!("gain {i}")), &gained));
    }
    if n_rules == 0 {
        lines.push((stat("final"), final_persons));
    }
    let mut released = d.release_funnel(&question, &lines);
    let initial = (n_rules > 0 && !released.is_empty()).then(|| to_wire(&released.remove(0)));
    // The final line is the last rule's line (the same person set, released once).
    let final_released = released.last().cloned().unwrap_or(DReleased::Suppressed {
        threshold: policy.min_cell_count,
        basis: DBasis::TrueCount,
    });
    let mut rules = Vec::with_capacity(n_rules);
    for (i, ((after, gain), name)) in released.iter().zip(&gains).zip(&rule_names).enumerate() {
        let name = RuleName::new(name).map_err(|e| {
            Stop::Failed(ExecError::Invalid(format!("InclusionRules[{i}].name: {e}")))
        })?;
        rules.push(RuleResult {
            name,
            persons: to_wire(after),
            gain: to_wire(gain),
        });
    }
    Ok(CohortCountResult {
        entries: to_wire(&entries),
        // The same statistic on the same person set: released once.
        subjects: if subjects_final {
            to_wire(&final_released)
        } else {
            to_wire(&d.release_count(&question, &stat("subjects"), &subjects))
        },
        initial,
        rules,
        final_persons: to_wire(&final_released),
        disclosure: summary(&policy, d.cost(&stats), budget, false),
    })
}

/// Gender as the protocol knows it, from `person.gender_concept_id`.
pub fn gender_of(concept: Option<i32>) -> Gender {
    match concept {
        Some(8532) => Gender::Female,
        Some(8507) => Gender::Male,
        None | Some(0) | Some(NULL_INT) => Gender::Unknown,
        Some(_) => Gender::Other,
    }
}

/// The fixed age bands for a band width: `[0, w-1], [w, 2w-1], …` up to the first boundary at
/// or above [`TOP_AGE`], which opens the top band.
pub fn age_bands(width: u8) -> Vec<AgeBand> {
    let w = u16::from(width.max(1));
    let top = TOP_AGE.div_ceil(w) * w;
    let mut bands = Vec::new();
    let mut min = 0u16;
    while min < top {
        bands.push(AgeBand {
            min_age: min as u8,
            max_age: Some((min + w - 1) as u8),
        });
        min += w;
    }
    bands.push(AgeBand {
        min_age: top.min(u16::from(u8::MAX)) as u8,
        max_age: None,
    });
    bands
}

/// Index of the band holding `age`.
fn band_index(bands: &[AgeBand], age: i64) -> usize {
    let age = age.max(0);
    bands
        .iter()
        .position(|b| match b.max_age {
            Some(max) => age <= i64::from(max),
            None => true,
        })
        .unwrap_or(bands.len().saturating_sub(1))
}

const GENDERS: [Gender; 4] = [Gender::Female, Gender::Male, Gender::Other, Gender::Unknown];

/// The index years shown: the years the store's observation periods span (site-level, not
/// cohort-level, so which rows exist says nothing about the cohort), widened to the cohort's.
fn year_range(store: &Store, index_years: impl Iterator<Item = i32>) -> Option<(i32, i32)> {
    let mut lo = i32::MAX;
    let mut hi = i32::MIN;
    if let Some(op) = store.domain("observation_period") {
        for &d in op.start().iter().chain(op.end().iter()) {
            if d != qiao_cdm::date::NULL_DAY {
                let y = date::year(d);
                lo = lo.min(y);
                hi = hi.max(y);
            }
        }
    }
    for y in index_years {
        lo = lo.min(y);
        hi = hi.max(y);
    }
    let lo = lo.max(i32::from(qiao_protocol::guard::MIN_INDEX_YEAR));
    let hi = hi.min(i32::from(qiao_protocol::guard::MAX_INDEX_YEAR));
    (lo <= hi).then_some((lo, hi))
}

/// Per person of the cohort: (age at index, gender, index year); persons with no year of
/// birth (absent from `person`) are left out.
fn person_facts(store: &Store, rows: &[CohortRow]) -> Vec<(i64, i64, Gender, i32)> {
    let persons = store.persons();
    let genders = persons.i32_column("gender_concept_id");
    let mut out = Vec::new();
    let mut last = None;
    for r in rows {
        if last == Some(r.subject_id) {
            continue;
        }
        last = Some(r.subject_id);
        let Some(idx) = persons.index_of(r.subject_id) else {
            continue;
        };
        let Some(yob) = persons.year_of_birth(idx) else {
            continue;
        };
        let index: Day = r.start;
        let year = date::year(index);
        let gender = gender_of(genders.get(idx as usize).copied());
        out.push((r.subject_id, i64::from(year) - i64::from(yob), gender, year));
    }
    out
}

fn demographics(
    job: &Job,
    cx: &mut ExecContext<'_>,
    engine: &mut Engine<'_>,
    age_band_years: u8,
    by_index_year: bool,
) -> Result<DemographicsResult, Stop> {
    if !(1..=100).contains(&age_band_years) {
        return Err(Stop::Failed(ExecError::Invalid(format!(
            "age_band_years must be 1 to 100, not {age_band_years}"
        ))));
    }
    let stats = demographics_statistics();
    let q = ctx(job, cx.now);
    let budget = cx.discloser.admit(cx.ledger, &q, &stats).map_err(refusal)?;
    let run = engine(cx.store, &job.definition)?;
    let facts = person_facts(cx.store, &run.rows);
    let bands = age_bands(age_band_years);
    let years: Vec<Option<u16>> = if by_index_year {
        match year_range(cx.store, facts.iter().map(|f| f.3)) {
            Some((lo, hi)) => (lo..=hi).map(|y| u16::try_from(y).ok()).collect(),
            None => vec![None],
        }
    } else {
        vec![None]
    };
    let d = cx.discloser;
    let row_of = |band: usize, year: Option<u16>| -> Option<usize> {
        let y = match (year, years.first().copied().flatten()) {
            (Some(y), Some(first)) => usize::from(y.checked_sub(first)?),
            _ => 0,
        };
        (y < years.len()).then_some(y * bands.len() + band)
    };
    let mut digesters: Vec<Vec<_>> = (0..years.len() * bands.len())
        .map(|_| (0..GENDERS.len()).map(|_| d.digester()).collect())
        .collect();
    for &(person, age, gender, year) in &facts {
        let band = band_index(&bands, age);
        let y = if by_index_year {
            u16::try_from(year).ok()
        } else {
            None
        };
        let Some(row) = row_of(band, y) else {
            // Outside the representable years (1800..=2300): not counted.
            continue;
        };
        let col = GENDERS.iter().position(|g| *g == gender).unwrap_or(3);
        if let Some(dg) = digesters.get_mut(row).and_then(|r| r.get_mut(col)) {
            dg.add(person);
        }
    }
    let cells: Vec<Vec<PersonSetDigest>> = digesters
        .iter()
        .map(|r| r.iter().map(|dg| dg.finish()).collect())
        .collect();
    let table = Breakdown::from_cells(cells)
        .map_err(|e| Stop::Failed(ExecError::Internal(e.to_string())))?;
    d.record_result(cx.ledger, &q, &table.total)
        .map_err(refusal)?;
    let released = d
        .release_breakdown(&question(job), &table)
        .map_err(|e| Stop::Failed(ExecError::Internal(e.to_string())))?;
    let mut out = Vec::new();
    for (row, values) in released.cells.iter().enumerate() {
        let band = bands.get(row % bands.len()).copied();
        let year = years.get(row / bands.len()).copied().flatten();
        for (col, v) in values.iter().enumerate() {
            out.push(Cell {
                age_band: band,
                gender: GENDERS.get(col).copied(),
                index_year: year,
                count: to_wire(v),
            });
        }
        if let Some(total) = released.row_totals.get(row) {
            out.push(Cell {
                age_band: band,
                gender: None,
                index_year: year,
                count: to_wire(total),
            });
        }
    }
    for (col, v) in released.col_totals.iter().enumerate() {
        out.push(Cell {
            age_band: None,
            gender: GENDERS.get(col).copied(),
            index_year: None,
            count: to_wire(v),
        });
    }
    Ok(DemographicsResult {
        total: to_wire(&released.total),
        cells: out,
        disclosure: summary(d.policy(), d.cost(&stats), budget, true),
    })
}
