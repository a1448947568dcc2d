//! Per-user query history (rate limit; SHRINE's lockout on repeated results) and the privacy
//! accountant (zCDP budgets per user, per organization and site-wide over a rolling period).
//!
//! The [`QueryLedger`] is plain state: the site persists it (serde) between queries and
//! passes the current time in; nothing here reads a clock. Only accepted queries are
//! recorded; refused ones leave the ledger unchanged, except the query that *triggers* a
//! lockout, which records the lockout.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::digest::PersonSetDigest;
use crate::policy::{LedgerScope, LockoutBasis, Policy};

/// Why a query was not answered.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    /// More than the allowed queries in the rate window.
    #[error(
        "rate limit: at most {limit} queries per {window_secs} s; retry in {retry_after_secs} s"
    )]
    RateLimited {
        /// Queries allowed per window.
        limit: u32,
        /// Window length.
        window_secs: u64,
        /// Seconds until a query would be accepted.
        retry_after_secs: u64,
    },
    /// The user is locked out for having received the same result too many times.
    #[error("locked out since {since} (same result more than {max_same_result} times within {window_secs} s){}", until.map(|u| format!(" until {u}")).unwrap_or_else(|| "; an administrator must lift it".into()))]
    LockedOut {
        /// When the lockout started (unix seconds).
        since: u64,
        /// When it ends, or `None` until an administrator lifts it.
        until: Option<u64>,
        /// The policy's limit.
        max_same_result: u32,
        /// The policy's window.
        window_secs: u64,
    },
    /// A privacy budget (user, organization or site-wide) would be exceeded. Nothing was
    /// computed and nothing was charged.
    #[error("privacy budget exhausted ({scope}): spent ρ={spent:.4} of {budget:.4} in the last {period_days} days, this query needs ρ={requested:.4}; remaining ρ={remaining:.4}")]
    BudgetExhausted {
        /// Which budget.
        scope: BudgetScope,
        /// ρ already spent in the period.
        spent: f64,
        /// ρ budget for the period.
        budget: f64,
        /// ρ this query needs.
        requested: f64,
        /// ρ remaining (budget − spent).
        remaining: f64,
        /// The period.
        period_days: u32,
    },
    /// The request itself is unusable (e.g. a breakdown whose margins do not add up).
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: String,
    },
}

/// Which of the three budgets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    /// One user, across all projects.
    User,
    /// One organization (the requester's institution), across its users and projects.
    Organization,
    /// Everyone at this site.
    Site,
}

impl std::fmt::Display for BudgetScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BudgetScope::User => "user",
            BudgetScope::Organization => "organization",
            BudgetScope::Site => "site",
        })
    }
}

/// ρ is accounted in units of 10⁻¹² (costs rounded up, budgets down), so that adding up many
/// small charges never drifts past a budget through floating-point rounding.
const UNITS: f64 = 1e12;

fn cost_units(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        (x * UNITS).ceil().min(u64::MAX as f64) as u64
    } else if x == 0.0 {
        0
    } else {
        u64::MAX
    }
}

fn budget_units(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        (x * UNITS).floor().min(u64::MAX as f64) as u64
    } else {
        0
    }
}

fn to_f64(units: u64) -> f64 {
    units as f64 / UNITS
}

/// One charge to the accountant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Charge {
    at: u64,
    user: String,
    organization: String,
    project: String,
    rho: u64,
}

/// A multi-round release (a federated fit) admitted and paid in full at its round 0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PaidRun {
    /// When round 0 was admitted (the run expires with its charge, after the period).
    at: u64,
    /// Rounds paid for.
    rounds: u32,
    /// Round → the question (hex) released at it.
    released: BTreeMap<u32, String>,
}

/// How a round of a multi-round release was admitted ([`QueryLedger::admit_round`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RoundAdmission {
    /// Round 0: the whole run's ρ was charged now; the budgets after the charge.
    Charged {
        /// ρ charged (every round of the run).
        rho: f64,
        /// The budgets after the charge.
        status: BudgetStatus,
    },
    /// A later round (or round 0 asked again) of a run already paid: nothing charged.
    Prepaid {
        /// The budgets now.
        status: BudgetStatus,
    },
}

impl RoundAdmission {
    /// ρ charged by this round.
    pub fn rho(&self) -> f64 {
        match self {
            RoundAdmission::Charged { rho, .. } => *rho,
            RoundAdmission::Prepaid { .. } => 0.0,
        }
    }

    /// The budgets after it.
    pub fn status(&self) -> BudgetStatus {
        match self {
            RoundAdmission::Charged { status, .. } | RoundAdmission::Prepaid { status } => *status,
        }
    }
}

/// Why a round of a multi-round release is refused (decided on the ledger alone).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RoundRefusal {
    /// Round 0 would exceed a budget: the run is refused before its first release.
    #[error("{0}")]
    Budget(Refusal),
    /// A later round of a run this site never admitted (or whose period has passed).
    #[error("round {round} of a run this site has not admitted: a run is admitted, and its every round paid, at its round 0")]
    NotAdmitted {
        /// The round asked.
        round: u32,
    },
    /// Beyond the rounds paid.
    #[error("round {round}: the run was admitted for {rounds} rounds (0 to {})", rounds.saturating_sub(1))]
    TooManyRounds {
        /// The round asked.
        round: u32,
        /// Rounds paid.
        rounds: u32,
    },
    /// A round asked again with another question (other coefficients): a new release that was
    /// not paid.
    #[error("round {round} was already released for other coefficients")]
    Changed {
        /// The round asked.
        round: u32,
    },
}

/// Steward-set budgets that replace the policy's for one user or organization.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetOverrides {
    /// ρ per period, by user.
    #[serde(default)]
    pub users: BTreeMap<String, f64>,
    /// ρ per period, by organization.
    #[serde(default)]
    pub organizations: BTreeMap<String, f64>,
}

/// Spent and total ρ of one budget in the current period.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// ρ spent in the period.
    pub spent: f64,
    /// ρ budget for the period.
    pub budget: f64,
}

impl Account {
    /// ρ left (never negative).
    pub fn remaining(&self) -> f64 {
        (self.budget - self.spent).max(0.0)
    }
}

/// The three budgets that apply to one query.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetStatus {
    /// The requesting user's.
    pub user: Account,
    /// The requester's organization's.
    pub organization: Account,
    /// The site's.
    pub site: Account,
    /// The rolling period, in days.
    pub period_days: u32,
}

impl BudgetStatus {
    /// ρ a query can still spend: the smallest of the three remainders.
    pub fn remaining(&self) -> f64 {
        self.user
            .remaining()
            .min(self.organization.remaining())
            .min(self.site.remaining())
    }
}

/// A lockout in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lockout {
    /// When it started.
    pub since: u64,
    /// When it ends; `None` until lifted.
    pub until: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct History {
    /// Times of accepted queries still inside the rate window.
    recent: VecDeque<u64>,
    /// Times of accepted queries per result key, still inside the lockout window.
    results: BTreeMap<String, VecDeque<u64>>,
    lockout: Option<Lockout>,
}

/// The persistent per-site record of who asked what, when, and what it cost.
///
/// There is no way to remove a charge: budgets are a rolling window over the charges, so they
/// recover only with time, never by a new project, a new user or a restart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryLedger {
    histories: BTreeMap<String, History>,
    #[serde(default)]
    charges: Vec<Charge>,
    #[serde(default)]
    overrides: BudgetOverrides,
    /// Multi-round releases paid at their round 0, by run key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    runs: BTreeMap<String, PaidRun>,
}

fn history_key(policy: &Policy, user: &str, project: &str) -> String {
    match policy.lockout.scope {
        LedgerScope::PerUser => user.to_owned(),
        LedgerScope::PerUserProject => format!("{user}\u{1f}{project}"),
    }
}

fn result_key(policy: &Policy, result: &PersonSetDigest) -> String {
    match policy.lockout.basis {
        LockoutBasis::TrueCount => format!("n:{}", result.count()),
        LockoutBasis::PersonSet => format!("s:{}", result.to_hex()),
    }
}

/// Drops entries older than `window` before `now`. Entries "in the future" (a clock that went
/// back) are kept: conservative.
fn prune(times: &mut VecDeque<u64>, now: u64, window: u64) {
    while let Some(&t) = times.front() {
        if t.saturating_add(window) <= now {
            times.pop_front();
        } else {
            break;
        }
    }
}

impl QueryLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lockout and rate limit only, without recording: lets a site refuse before running an
    /// expensive query. [`Self::check_and_record`] repeats these checks.
    pub fn precheck(
        &mut self,
        policy: &Policy,
        user: &str,
        project: &str,
        now_unix_secs: u64,
    ) -> Result<(), Refusal> {
        let key = history_key(policy, user, project);
        let Some(h) = self.histories.get_mut(&key) else {
            return Ok(());
        };
        Self::check_history(h, policy, now_unix_secs)
    }

    fn check_history(h: &mut History, policy: &Policy, now: u64) -> Result<(), Refusal> {
        if let Some(l) = &h.lockout {
            if l.until.is_none_or(|u| now < u) {
                return Err(Refusal::LockedOut {
                    since: l.since,
                    until: l.until,
                    max_same_result: policy.lockout.max_same_result,
                    window_secs: policy.lockout.window_secs,
                });
            }
            h.lockout = None;
        }
        let rl = &policy.rate_limit;
        prune(&mut h.recent, now, rl.window_secs);
        if h.recent.len() >= rl.max_queries as usize {
            // The oldest entries leave the window first; the first one that must leave for
            // the count to drop below the limit decides when a query is accepted again.
            let excess = h.recent.len() + 1 - rl.max_queries as usize;
            let leaving = h.recent.get(excess - 1).copied().unwrap_or(now);
            let retry = leaving.saturating_add(rl.window_secs).saturating_sub(now);
            return Err(Refusal::RateLimited {
                limit: rl.max_queries,
                window_secs: rl.window_secs,
                retry_after_secs: retry.max(1),
            });
        }
        Ok(())
    }

    /// Checks lockout, rate limit and the repeated-result rule for a query whose result is the
    /// person set `result`, and records it if accepted.
    ///
    /// The repeated-result rule (SHRINE): if this would be the `max_same_result + 1`-th query
    /// within `lockout.window_secs` with the same result (same true count, or same person set,
    /// per [`LockoutBasis`]), the query is refused and the user is locked out.
    pub fn check_and_record(
        &mut self,
        policy: &Policy,
        user: &str,
        project: &str,
        now_unix_secs: u64,
        result: &PersonSetDigest,
    ) -> Result<(), Refusal> {
        let key = history_key(policy, user, project);
        let h = self.histories.entry(key).or_default();
        Self::check_history(h, policy, now_unix_secs)?;
        Self::same_result_rule(h, policy, now_unix_secs, result)?;
        h.recent.push_back(now_unix_secs);
        Ok(())
    }

    /// SHRINE's repeated-result rule alone, for a query already recorded with
    /// [`Self::record_query`].
    pub fn check_result(
        &mut self,
        policy: &Policy,
        user: &str,
        project: &str,
        now_unix_secs: u64,
        result: &PersonSetDigest,
    ) -> Result<(), Refusal> {
        let key = history_key(policy, user, project);
        let h = self.histories.entry(key).or_default();
        Self::same_result_rule(h, policy, now_unix_secs, result)
    }

    fn same_result_rule(
        h: &mut History,
        policy: &Policy,
        now: u64,
        result: &PersonSetDigest,
    ) -> Result<(), Refusal> {
        let lp = &policy.lockout;
        let rkey = result_key(policy, result);
        let times = h.results.entry(rkey).or_default();
        prune(times, now, lp.window_secs);
        if times.len() >= lp.max_same_result as usize {
            let until = lp.duration_secs.map(|d| now.saturating_add(d));
            h.lockout = Some(Lockout { since: now, until });
            return Err(Refusal::LockedOut {
                since: now,
                until,
                max_same_result: lp.max_same_result,
                window_secs: lp.window_secs,
            });
        }
        times.push_back(now);
        Ok(())
    }

    /// The lockout in force for `user` (in `project`, if the scope is per project), if any.
    pub fn lockout(&self, policy: &Policy, user: &str, project: &str) -> Option<&Lockout> {
        self.histories
            .get(&history_key(policy, user, project))
            .and_then(|h| h.lockout.as_ref())
    }

    /// Lifts a lockout (an administrator's decision). Returns whether one was in force.
    pub fn unlock(&mut self, policy: &Policy, user: &str, project: &str) -> bool {
        self.histories
            .get_mut(&history_key(policy, user, project))
            .and_then(|h| h.lockout.take())
            .is_some()
    }

    /// Forgets history that no rule can look at any more (call now and then to bound size).
    pub fn prune_all(&mut self, policy: &Policy, now_unix_secs: u64) {
        for h in self.histories.values_mut() {
            prune(&mut h.recent, now_unix_secs, policy.rate_limit.window_secs);
            for times in h.results.values_mut() {
                prune(times, now_unix_secs, policy.lockout.window_secs);
            }
            h.results.retain(|_, t| !t.is_empty());
        }
        self.histories
            .retain(|_, h| h.lockout.is_some() || !h.recent.is_empty() || !h.results.is_empty());
        let period = policy.dp.period_secs();
        self.charges
            .retain(|c| c.at.saturating_add(period) > now_unix_secs);
        self.runs
            .retain(|_, r| r.at.saturating_add(period) > now_unix_secs);
    }

    /// Records an accepted query for the rate limit only (after [`Self::precheck`]-style
    /// checks); SHRINE's repeated-result rule is [`Self::check_and_record`].
    pub fn record_query(
        &mut self,
        policy: &Policy,
        user: &str,
        project: &str,
        now_unix_secs: u64,
    ) -> Result<(), Refusal> {
        let key = history_key(policy, user, project);
        let h = self.histories.entry(key).or_default();
        Self::check_history(h, policy, now_unix_secs)?;
        h.recent.push_back(now_unix_secs);
        Ok(())
    }

    fn spent_units(&self, now: u64, period: u64, keep: impl Fn(&Charge) -> bool) -> u64 {
        self.charges
            .iter()
            .filter(|c| c.at.saturating_add(period) > now && keep(c))
            .fold(0u64, |a, c| a.saturating_add(c.rho))
    }

    /// The three budgets for `user` of `organization` now.
    pub fn budget_status(
        &self,
        policy: &Policy,
        user: &str,
        organization: &str,
        now_unix_secs: u64,
    ) -> BudgetStatus {
        let dp = &policy.dp;
        let period = dp.period_secs();
        let now = now_unix_secs;
        let account = |spent: u64, budget: f64| Account {
            spent: to_f64(spent),
            budget,
        };
        BudgetStatus {
            user: account(
                self.spent_units(now, period, |c| c.user == user),
                self.overrides
                    .users
                    .get(user)
                    .copied()
                    .unwrap_or(dp.user_rho),
            ),
            organization: account(
                self.spent_units(now, period, |c| c.organization == organization),
                self.overrides
                    .organizations
                    .get(organization)
                    .copied()
                    .unwrap_or(dp.organization_rho),
            ),
            site: account(self.spent_units(now, period, |_| true), dp.site_rho),
            period_days: dp.period_days,
        }
    }

    /// Charges ρ to the user's, the organization's and the site's budgets, or refuses (naming
    /// the first budget that would be exceeded, with what remains) and charges nothing.
    pub fn charge(
        &mut self,
        policy: &Policy,
        ctx: &crate::QueryContext<'_>,
        rho: f64,
    ) -> Result<BudgetStatus, Refusal> {
        let status = self.budget_status(policy, ctx.user, ctx.organization, ctx.now_unix_secs);
        let cost = cost_units(rho);
        for (scope, a) in [
            (BudgetScope::User, status.user),
            (BudgetScope::Organization, status.organization),
            (BudgetScope::Site, status.site),
        ] {
            if cost_units(a.spent).saturating_add(cost) > budget_units(a.budget) {
                return Err(Refusal::BudgetExhausted {
                    scope,
                    spent: a.spent,
                    budget: a.budget,
                    requested: rho,
                    remaining: a.remaining(),
                    period_days: status.period_days,
                });
            }
        }
        self.charges.push(Charge {
            at: ctx.now_unix_secs,
            user: ctx.user.to_owned(),
            organization: ctx.organization.to_owned(),
            project: ctx.project.to_owned(),
            rho: cost,
        });
        Ok(self.budget_status(policy, ctx.user, ctx.organization, ctx.now_unix_secs))
    }

    /// Admits round `round` of the multi-round release `run` (at most `rounds` rounds, the
    /// whole run costing `run_rho`) asking `question`: round 0 of a new run charges `run_rho`
    /// (or refuses, charging nothing); a later round needs the run admitted, `round < rounds`,
    /// and the round not released before for another question. Nothing here looks at data.
    #[allow(clippy::too_many_arguments)]
    pub fn admit_round(
        &mut self,
        policy: &Policy,
        ctx: &crate::QueryContext<'_>,
        run: &str,
        round: u32,
        rounds: u32,
        question: &crate::Question,
        run_rho: f64,
    ) -> Result<RoundAdmission, RoundRefusal> {
        let now = ctx.now_unix_secs;
        let period = policy.dp.period_secs();
        self.runs.retain(|_, r| r.at.saturating_add(period) > now);
        let asked: String = question.0.iter().map(|b| format!("{b:02x}")).collect();
        if let Some(paid) = self.runs.get_mut(run) {
            if round >= paid.rounds {
                return Err(RoundRefusal::TooManyRounds {
                    round,
                    rounds: paid.rounds,
                });
            }
            match paid.released.get(&round) {
                Some(q) if *q != asked => return Err(RoundRefusal::Changed { round }),
                Some(_) => {}
                None => {
                    paid.released.insert(round, asked);
                }
            }
            let status = self.budget_status(policy, ctx.user, ctx.organization, now);
            return Ok(RoundAdmission::Prepaid { status });
        }
        if round != 0 {
            return Err(RoundRefusal::NotAdmitted { round });
        }
        if rounds == 0 {
            return Err(RoundRefusal::TooManyRounds { round, rounds });
        }
        let status = self
            .charge(policy, ctx, run_rho)
            .map_err(RoundRefusal::Budget)?;
        self.runs.insert(
            run.to_owned(),
            PaidRun {
                at: now,
                rounds,
                released: BTreeMap::from([(0, asked)]),
            },
        );
        Ok(RoundAdmission::Charged {
            rho: run_rho,
            status,
        })
    }

    /// The multi-round releases paid and still in the period: (run key, rounds paid, rounds
    /// released).
    pub fn paid_runs(&self) -> impl Iterator<Item = (&str, u32, usize)> + '_ {
        self.runs
            .iter()
            .map(|(k, r)| (k.as_str(), r.rounds, r.released.len()))
    }

    /// Sets (a steward's decision, audited by the caller) the budget of one user or
    /// organization, replacing the policy's; `None` returns to the policy's. Spent ρ is never
    /// forgotten.
    pub fn set_budget(&mut self, scope: BudgetScope, name: &str, rho: Option<f64>) {
        let map = match scope {
            BudgetScope::User => &mut self.overrides.users,
            BudgetScope::Organization => &mut self.overrides.organizations,
            BudgetScope::Site => return,
        };
        match rho {
            Some(r) if r.is_finite() && r >= 0.0 => {
                map.insert(name.to_owned(), r);
            }
            _ => {
                map.remove(name);
            }
        }
    }

    /// The steward-set budgets.
    pub fn overrides(&self) -> &BudgetOverrides {
        &self.overrides
    }

    /// ρ spent in the current period, per (user, organization), largest first (for `qiao
    /// site budget`).
    pub fn spenders(&self, policy: &Policy, now_unix_secs: u64) -> Vec<(String, String, f64)> {
        let period = policy.dp.period_secs();
        let mut by: BTreeMap<(String, String), u64> = BTreeMap::new();
        for c in &self.charges {
            if c.at.saturating_add(period) > now_unix_secs {
                let e = by
                    .entry((c.user.clone(), c.organization.clone()))
                    .or_default();
                *e = e.saturating_add(c.rho);
            }
        }
        let mut v: Vec<_> = by
            .into_iter()
            .map(|((u, o), r)| (u, o, to_f64(r)))
            .collect();
        v.sort_by(|a, b| b.2.total_cmp(&a.2));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::DAY_SECS;
    use crate::SiteSecret;

    fn digest(n: i64) -> PersonSetDigest {
        let s = SiteSecret::from_bytes(&[1u8; 32]).unwrap();
        PersonSetDigest::of(&s, 0..n)
    }

    #[test]
    fn rate_limit_ten_per_minute() {
        let p = Policy::default();
        let mut l = QueryLedger::new();
        for i in 0..10 {
            l.check_and_record(&p, "u", "p", 1000 + i, &digest(20 + i as i64))
                .unwrap();
        }
        let e = l
            .check_and_record(&p, "u", "p", 1030, &digest(99))
            .unwrap_err();
        assert_eq!(
            e,
            Refusal::RateLimited {
                limit: 10,
                window_secs: 60,
                retry_after_secs: 30
            }
        );
        // Another user is unaffected; the first one can go on after the window.
        l.check_and_record(&p, "v", "p", 1030, &digest(99)).unwrap();
        l.check_and_record(&p, "u", "p", 1060, &digest(99)).unwrap();
    }

    #[test]
    fn lockout_on_eleventh_same_count_within_30_days() {
        let p = Policy::default();
        let mut l = QueryLedger::new();
        let t0 = 1_700_000_000;
        for i in 0..10 {
            l.check_and_record(&p, "u", "p", t0 + i * DAY_SECS, &digest(42))
                .unwrap();
        }
        let e = l
            .check_and_record(&p, "u", "q", t0 + 10 * DAY_SECS, &digest(42))
            .unwrap_err();
        assert!(matches!(e, Refusal::LockedOut { until: None, .. }));
        // Locked for everything now, until an administrator lifts it.
        assert!(l
            .check_and_record(&p, "u", "p", t0 + 400 * DAY_SECS, &digest(7))
            .is_err());
        assert!(l.unlock(&p, "u", "p"));
        l.check_and_record(&p, "u", "p", t0 + 400 * DAY_SECS, &digest(7))
            .unwrap();
    }

    #[test]
    fn person_set_basis_and_per_project_scope() {
        let p = Policy {
            lockout: crate::LockoutPolicy {
                basis: LockoutBasis::PersonSet,
                scope: LedgerScope::PerUserProject,
                duration_secs: Some(DAY_SECS),
                ..crate::LockoutPolicy::default()
            },
            ..Policy::default()
        };
        let s = SiteSecret::from_bytes(&[1u8; 32]).unwrap();
        let mut l = QueryLedger::new();
        // Ten different sets of the same size: no lockout on the person-set basis.
        for i in 0..10 {
            let d = PersonSetDigest::of(&s, (100 * i)..(100 * i + 42));
            l.check_and_record(&p, "u", "p", 100 * i as u64, &d)
                .unwrap();
        }
        let same = PersonSetDigest::of(&s, 0..42);
        for i in 0..9 {
            l.check_and_record(&p, "u", "p", 2000 + 100 * i, &same)
                .unwrap();
        }
        let e = l.check_and_record(&p, "u", "p", 5000, &same).unwrap_err();
        assert!(
            matches!(e, Refusal::LockedOut { since: 5000, until: Some(u), .. } if u == 5000 + DAY_SECS)
        );
        // Per-project scope: the same user in another project is not locked.
        l.check_and_record(&p, "u", "q", 5000, &same).unwrap();
        assert!(l.precheck(&p, "u", "p", 5001).is_err());
        assert!(l.lockout(&p, "u", "p").is_some());
        // The lockout expires by itself.
        l.precheck(&p, "u", "p", 5000 + DAY_SECS).unwrap();
    }

    #[test]
    fn clock_going_back_is_conservative() {
        let p = Policy::default();
        let mut l = QueryLedger::new();
        for _ in 0..10 {
            l.check_and_record(&p, "u", "p", 10_000, &digest(20))
                .unwrap();
        }
        assert!(matches!(
            l.check_and_record(&p, "u", "p", 5, &digest(30)),
            Err(Refusal::RateLimited { .. })
        ));
    }

    #[test]
    fn same_count_outside_window_does_not_lock() {
        let p = Policy::default();
        let mut l = QueryLedger::new();
        for i in 0..30 {
            l.check_and_record(&p, "u", "p", i * 4 * DAY_SECS, &digest(42))
                .unwrap();
        }
    }

    fn ctx<'a>(user: &'a str, org: &'a str, project: &'a str, now: u64) -> crate::QueryContext<'a> {
        crate::QueryContext {
            user,
            organization: org,
            project,
            now_unix_secs: now,
        }
    }

    #[test]
    fn budgets_compose_and_cannot_be_reset() {
        let p = Policy {
            dp: crate::DpPolicy {
                user_rho: 0.1,
                organization_rho: 0.25,
                site_rho: 0.45,
                ..crate::DpPolicy::default()
            },
            ..Policy::default()
        };
        let mut l = QueryLedger::new();
        let t = 1_700_000_000;
        // Ten charges of 0.01 fill the user's 0.1 exactly (no float drift past it).
        for i in 0..10 {
            l.charge(&p, &ctx("u", "acme", "p1", t + i), 0.01).unwrap();
        }
        let e = l
            .charge(&p, &ctx("u", "acme", "p2", t + 20), 0.01)
            .unwrap_err();
        assert!(
            matches!(e, Refusal::BudgetExhausted { scope: BudgetScope::User, remaining, .. } if remaining < 1e-9),
            "{e:?}"
        );
        // A new project does not help; a new user of the same organization gets the rest of
        // the organization's 0.25 and no more.
        let mut fresh_user = 0;
        while l
            .charge(
                &p,
                &ctx(&format!("v{fresh_user}"), "acme", "p9", t + 30),
                0.05,
            )
            .is_ok()
        {
            fresh_user += 1;
        }
        assert_eq!(fresh_user, 3, "0.25 − 0.1 = 0.15 = three charges of 0.05");
        let e = l
            .charge(&p, &ctx("w", "acme", "p9", t + 31), 0.05)
            .unwrap_err();
        assert!(matches!(
            e,
            Refusal::BudgetExhausted {
                scope: BudgetScope::Organization,
                ..
            }
        ));
        // Invented organizations are bounded by the site-wide cap: 0.45 − 0.25 = 0.2 left.
        let mut orgs = 0;
        while l
            .charge(
                &p,
                &ctx(&format!("x{orgs}"), &format!("org{orgs}"), "p", t + 40),
                0.05,
            )
            .is_ok()
        {
            orgs += 1;
        }
        assert_eq!(orgs, 4);
        let s = l.budget_status(&p, "x", "org9", t + 41);
        assert!(s.site.remaining() < 1e-9 && (s.site.spent - 0.45).abs() < 1e-9);
        // Only time brings budget back: after the 30-day window everything is available.
        let later = t + 31 * DAY_SECS;
        l.charge(&p, &ctx("u", "acme", "p1", later), 0.1).unwrap();
        // Survives a restart (serde) unchanged.
        let back: QueryLedger = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l);
        // A steward override changes the cap, never the spending.
        l.set_budget(BudgetScope::User, "u", Some(0.5));
        let s = l.budget_status(&p, "u", "acme", later);
        assert_eq!(s.user.budget, 0.5);
        assert!((s.user.spent - 0.1).abs() < 1e-9);
    }

    #[test]
    fn ledger_round_trips_through_json() {
        let p = Policy::default();
        let mut l = QueryLedger::new();
        l.check_and_record(&p, "u", "p", 5, &digest(3)).unwrap();
        let s = serde_json::to_string(&l).unwrap();
        let back: QueryLedger = serde_json::from_str(&s).unwrap();
        assert_eq!(back, l);
    }
}
