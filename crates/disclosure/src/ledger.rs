//! Per-user query history: rate limit, lockout on repeated results, and the DP budget.
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
    /// The user's ε budget in this project would be exceeded.
    #[error("privacy budget exhausted: spent ε={spent} of {budget}, this query needs {requested}")]
    BudgetExhausted {
        /// ε already spent.
        spent: f64,
        /// ε budget.
        budget: f64,
        /// ε this query needs.
        requested: f64,
    },
    /// The user's δ budget in this project would be exceeded.
    #[error("privacy budget exhausted: spent δ={spent} of {budget}, this query needs {requested}")]
    DeltaBudgetExhausted {
        /// δ already spent.
        spent: f64,
        /// δ budget.
        budget: f64,
        /// δ this query needs.
        requested: f64,
    },
    /// The request itself is unusable (e.g. a breakdown whose margins do not add up).
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: String,
    },
}

/// ε and δ are accounted in units of 10⁻¹² (costs rounded up, budgets down), so that adding
/// up many small charges never drifts past the budget through floating-point rounding.
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

/// ε and δ spent by one user in one project.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Spent {
    epsilon: u64,
    delta: u64,
}

/// The persistent per-site record of who asked what, when.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryLedger {
    histories: BTreeMap<String, History>,
    budgets: BTreeMap<String, BTreeMap<String, Spent>>,
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
        let now = now_unix_secs;
        let key = history_key(policy, user, project);
        let h = self.histories.entry(key).or_default();
        Self::check_history(h, policy, now)?;
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
        h.recent.push_back(now);
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
    }

    /// (ε, δ) spent by `user` in `project`.
    pub fn spent(&self, user: &str, project: &str) -> (f64, f64) {
        self.budgets
            .get(user)
            .and_then(|p| p.get(project))
            .map(|s| (to_f64(s.epsilon), to_f64(s.delta)))
            .unwrap_or((0.0, 0.0))
    }

    /// Whether `user` can spend (ε, δ) more in `project` under `policy`'s budget, without
    /// spending it. Without DP mode every charge is refused.
    pub fn check_budget(
        &self,
        policy: &Policy,
        user: &str,
        project: &str,
        epsilon: f64,
        delta: f64,
    ) -> Result<(), Refusal> {
        let (eb, db) = match &policy.dp {
            Some(dp) => (dp.epsilon_budget, dp.delta_budget),
            None => (0.0, 0.0),
        };
        let s = self
            .budgets
            .get(user)
            .and_then(|p| p.get(project))
            .copied()
            .unwrap_or_default();
        let (ce, cd) = (cost_units(epsilon), cost_units(delta));
        if s.epsilon.saturating_add(ce) > budget_units(eb) {
            return Err(Refusal::BudgetExhausted {
                spent: to_f64(s.epsilon),
                budget: eb,
                requested: epsilon,
            });
        }
        if s.delta.saturating_add(cd) > budget_units(db) {
            return Err(Refusal::DeltaBudgetExhausted {
                spent: to_f64(s.delta),
                budget: db,
                requested: delta,
            });
        }
        Ok(())
    }

    /// Spends (ε, δ) of `user`'s budget in `project` (sequential composition: costs add up),
    /// or refuses with [`Refusal::BudgetExhausted`] and spends nothing.
    pub fn charge(
        &mut self,
        policy: &Policy,
        user: &str,
        project: &str,
        epsilon: f64,
        delta: f64,
    ) -> Result<(), Refusal> {
        self.check_budget(policy, user, project, epsilon, delta)?;
        let s = self
            .budgets
            .entry(user.to_owned())
            .or_default()
            .entry(project.to_owned())
            .or_default();
        s.epsilon = s.epsilon.saturating_add(cost_units(epsilon));
        s.delta = s.delta.saturating_add(cost_units(delta));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{DpMechanism, DpPolicy, DAY_SECS};
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

    #[test]
    fn budget_sequential_composition() {
        let p = Policy {
            dp: Some(DpPolicy {
                mechanism: DpMechanism::Laplace { epsilon: 0.1 },
                epsilon_budget: 1.0,
                delta_budget: 0.0,
                sensitivity: 1,
                threshold_basis: crate::DpThresholdBasis::TrueCount,
            }),
            ..Policy::default()
        };
        let mut l = QueryLedger::new();
        for _ in 0..10 {
            l.charge(&p, "u", "p", 0.1, 0.0).unwrap();
        }
        let e = l.charge(&p, "u", "p", 0.1, 0.0).unwrap_err();
        match e {
            Refusal::BudgetExhausted {
                spent,
                budget,
                requested,
            } => {
                assert!((spent - 1.0).abs() < 1e-9);
                assert_eq!(budget, 1.0);
                assert_eq!(requested, 0.1);
            }
            other => panic!("{other:?}"),
        }
        // Other project, other budget.
        l.charge(&p, "u", "other", 0.1, 0.0).unwrap();
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
