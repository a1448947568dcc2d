//! The entry point: a site's policy and secret, applied to every number that leaves the site.

use crate::digest::{PersonSetDigest, PersonSetDigester};
use crate::ledger::{BudgetStatus, QueryLedger, Refusal, RoundAdmission, RoundRefusal};
use crate::mechanism::{
    noisy_value, noisy_vector, non_increasing, rho_of, rounded, Question, Statistic,
};
use crate::obfuscate::{obfuscate, obfuscate_value, NoiseTable};
use crate::policy::{Policy, PolicyError, ReleaseMode};
use crate::released::{Released, SuppressionBasis};
use crate::secret::SiteSecret;
use crate::table::{suppression_pattern, Breakdown, TableError};

/// Who asks, for which organization and project, and when (unix seconds, passed in: nothing
/// here reads a clock). The organization comes from the signed job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryContext<'a> {
    /// The requesting user.
    pub user: &'a str,
    /// The requester's organization (sponsor institution).
    pub organization: &'a str,
    /// The project the query belongs to.
    pub project: &'a str,
    /// Current time, unix seconds.
    pub now_unix_secs: u64,
}

/// Why a site cannot release under the alliance's floors ([`Discloser::under_floors`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FloorsUnmet {
    /// The floors themselves are unusable.
    #[error("the alliance floors are invalid: {0}")]
    Invalid(String),
    /// The site's release mode has no bounded privacy loss per release.
    #[error("the alliance limits the privacy loss to ρ={max_rho} per release, and this site's release mode {mode:?} has no bounded loss (set `qiao site policy set --release dp`)")]
    Unbounded {
        /// The site's release mode.
        mode: &'static str,
        /// The alliance's limit.
        max_rho: f64,
    },
    /// The noise the floors require is outside the site's usable range.
    #[error("the alliance floors need a policy this site cannot run: {0}")]
    OutOfRange(String),
}

/// A site's disclosure control: a validated [`Policy`] and the [`SiteSecret`].
#[derive(Clone, Debug)]
pub struct Discloser {
    policy: Policy,
    secret: SiteSecret,
    noise: NoiseTable,
}

impl Discloser {
    /// Validates `policy` and prepares the noise tables.
    pub fn new(policy: Policy, secret: SiteSecret) -> Result<Self, PolicyError> {
        policy.validate()?;
        let noise = NoiseTable::new(&policy.obfuscation);
        Ok(Discloser {
            policy,
            secret,
            noise,
        })
    }

    /// This site's discloser under the alliance's floors (stated by the hub in each job): the
    /// threshold raised to at least `min_cell_count` and, when `max_rho_per_release` is given,
    /// σ raised so that one release costs at most that ρ (`1/(2σ²) ≤ max`). `Ok(None)` when
    /// the policy already meets the floors. The floors can only make the release stricter.
    ///
    /// A site that cannot meet them refuses the job ([`FloorsUnmet`]): a legacy SHRINE or
    /// exact policy has no bounded loss per release, and a σ beyond the sampler's range (or
    /// `σ · entries_bound` beyond it) cannot be used.
    pub fn under_floors(
        &self,
        min_cell_count: u64,
        max_rho_per_release: Option<f64>,
    ) -> Result<Option<Discloser>, FloorsUnmet> {
        let mut p = self.policy.clone();
        if min_cell_count == 0 {
            return Err(FloorsUnmet::Invalid("a minimum cell count of 0".into()));
        }
        p.min_cell_count = p.min_cell_count.max(min_cell_count);
        if let Some(max) = max_rho_per_release {
            if !(max.is_finite() && max > 0.0) {
                return Err(FloorsUnmet::Invalid(format!("a ρ per release of {max}")));
            }
            if p.release != ReleaseMode::Dp {
                return Err(FloorsUnmet::Unbounded {
                    mode: match p.release {
                        ReleaseMode::Shrine => "shrine",
                        _ => "exact",
                    },
                    max_rho: max,
                });
            }
            if p.dp.rho_per_release() > max {
                let mut sigma = (1.0 / (2.0 * max)).sqrt();
                while 1.0 / (2.0 * sigma * sigma) > max {
                    sigma = sigma.next_up();
                }
                p.dp.sigma = sigma;
            }
        }
        if p == self.policy {
            return Ok(None);
        }
        Discloser::new(p, self.secret.clone())
            .map(Some)
            .map_err(|e| FloorsUnmet::OutOfRange(e.to_string()))
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The SHRINE obfuscation noise table (used in [`ReleaseMode::Shrine`]).
    pub fn noise_table(&self) -> &NoiseTable {
        &self.noise
    }

    /// The digest of a person set, keyed with this site's secret.
    pub fn digest(&self, ids: impl IntoIterator<Item = i64>) -> PersonSetDigest {
        PersonSetDigest::of(&self.secret, ids)
    }

    /// An incremental digester keyed with this site's secret.
    pub fn digester(&self) -> PersonSetDigester {
        PersonSetDigester::new(&self.secret)
    }

    /// ρ (zCDP) that releasing `stats` costs under this policy; 0 outside DP mode.
    pub fn cost(&self, stats: &[Statistic]) -> f64 {
        match self.policy.release {
            ReleaseMode::Dp => rho_of(stats, self.policy.dp.sigma),
            ReleaseMode::Shrine | ReleaseMode::Exact => 0.0,
        }
    }

    /// Before anything is computed: the rate limit (and SHRINE's lockout) and, in DP mode,
    /// the charge of `stats`' cost to the user's, organization's and site's budgets. Nothing
    /// here looks at data, so whether a query is refused never depends on a true count.
    /// Returns the budgets after the charge (DP mode).
    pub fn admit(
        &self,
        ledger: &mut QueryLedger,
        ctx: &QueryContext<'_>,
        stats: &[Statistic],
    ) -> Result<Option<BudgetStatus>, Refusal> {
        let p = &self.policy;
        ledger.precheck(p, ctx.user, ctx.project, ctx.now_unix_secs)?;
        let status = match p.release {
            ReleaseMode::Dp => Some(ledger.charge(p, ctx, self.cost(stats))?),
            ReleaseMode::Shrine | ReleaseMode::Exact => None,
        };
        ledger.record_query(p, ctx.user, ctx.project, ctx.now_unix_secs)?;
        Ok(status)
    }

    /// Before anything is computed, for round `round` of a multi-round release `run` (a
    /// federated fit: each round a job whose question includes the round and where it is
    /// evaluated) that releases `per_round` at each of at most `rounds` rounds, in DP mode: at
    /// round 0 the whole run's cost, `rounds × cost(per_round)`, is charged to the three budgets
    /// (or the run is refused, charging nothing, before its first release); a later round is
    /// admitted only for a run admitted at its round 0, below `rounds`, and once per round (the
    /// same question again is the same release: free). Nothing here looks at data. `Ok(None)`
    /// outside DP mode (the rate limit is the job's [`Self::admit`]).
    #[allow(clippy::too_many_arguments)]
    pub fn admit_round(
        &self,
        ledger: &mut QueryLedger,
        ctx: &QueryContext<'_>,
        run: &str,
        round: u32,
        rounds: u32,
        question: &Question,
        per_round: &[Statistic],
    ) -> Result<Option<RoundAdmission>, RoundRefusal> {
        if self.policy.release != ReleaseMode::Dp {
            return Ok(None);
        }
        let rho = f64::from(rounds) * self.cost(per_round);
        ledger
            .admit_round(&self.policy, ctx, run, round, rounds, question, rho)
            .map(Some)
    }

    /// After computing, in [`ReleaseMode::Shrine`] only: SHRINE's repeated-result rule (a
    /// decision on the true result, which is why DP mode does not have it). A no-op otherwise.
    pub fn record_result(
        &self,
        ledger: &mut QueryLedger,
        ctx: &QueryContext<'_>,
        result: &PersonSetDigest,
    ) -> Result<(), Refusal> {
        if self.policy.release != ReleaseMode::Shrine {
            return Ok(());
        }
        ledger.check_result(
            &self.policy,
            ctx.user,
            ctx.project,
            ctx.now_unix_secs,
            result,
        )
    }

    /// The budgets of the user and organization of `ctx` now.
    pub fn budget(&self, ledger: &QueryLedger, ctx: &QueryContext<'_>) -> BudgetStatus {
        ledger.budget_status(&self.policy, ctx.user, ctx.organization, ctx.now_unix_secs)
    }

    /// Releases one statistic whose value is the size of `persons`.
    pub fn release_count(
        &self,
        question: &Question,
        stat: &Statistic,
        persons: &PersonSetDigest,
    ) -> Released {
        self.release_value(question, stat, persons, persons.count())
    }

    /// Releases one statistic of true value `value` computed over the person set `persons`
    /// (e.g. clipped rows): DP noise keyed on the question, the statistic and the set, then
    /// the threshold on the noisy value ([`ReleaseMode::Dp`]); or the threshold on the true
    /// value then obfuscation keyed on `persons` (SHRINE); or the exact value.
    pub fn release_value(
        &self,
        question: &Question,
        stat: &Statistic,
        persons: &PersonSetDigest,
        value: u64,
    ) -> Released {
        match self.policy.release {
            ReleaseMode::Dp => {
                let (noisy, sigma) = self.noisy(question, stat, persons, value);
                self.dp_released(noisy as f64, sigma)
            }
            ReleaseMode::Shrine => obfuscate_value(
                &self.noise,
                &self.secret,
                self.policy.min_cell_count,
                persons,
                value,
            ),
            ReleaseMode::Exact => exact_or_suppressed(value, self.policy.min_cell_count),
        }
    }

    /// Releases a vector of integers `values` declared as [`Statistic::vector`] (L2 sensitivity
    /// Δ) over `persons`, in DP mode only: every coordinate plus its own discrete Gaussian with
    /// `σ·Δ`, keyed as [`Self::release_value`] (same question, statistic, set and values: same
    /// answer). Returns the noisy values and the noise's σ per coordinate; `None` outside DP
    /// mode or when `σ·Δ` is beyond the sampler's range. No threshold: the caller post-processes.
    pub fn release_vector(
        &self,
        question: &Question,
        stat: &Statistic,
        persons: &PersonSetDigest,
        values: &[i64],
    ) -> Option<(Vec<i64>, f64)> {
        if self.policy.release != ReleaseMode::Dp {
            return None;
        }
        noisy_vector(
            &self.secret,
            question,
            stat,
            self.policy.dp.sigma,
            persons,
            values,
        )
    }

    /// A count released from a vector ([`Self::release_vector`]) with noise `sigma`: rounded,
    /// clamped at 0, and the threshold on the noisy value, as [`Self::release_value`].
    pub fn dp_count(&self, noisy: f64, sigma: f64) -> Released {
        self.dp_released(noisy, sigma)
    }

    /// Releases a funnel: `lines` are nested person counts, each line's set contained in the
    /// previous one's. In DP mode the noisy values are made non-increasing (least squares,
    /// post-processing) before the threshold, so the released funnel never grows.
    pub fn release_funnel(
        &self,
        question: &Question,
        lines: &[(Statistic, PersonSetDigest)],
    ) -> Vec<Released> {
        if self.policy.release != ReleaseMode::Dp {
            return lines
                .iter()
                .map(|(s, d)| self.release_count(question, s, d))
                .collect();
        }
        let noisy: Vec<(i64, f64)> = lines
            .iter()
            .map(|(s, d)| self.noisy(question, s, d, d.count()))
            .collect();
        let xs: Vec<f64> = noisy.iter().map(|&(v, _)| v as f64).collect();
        non_increasing(&xs)
            .into_iter()
            .zip(&noisy)
            .map(|(x, &(_, sigma))| self.dp_released(x, sigma))
            .collect()
    }

    /// Releases a breakdown table.
    ///
    /// DP mode: every cell is noised (the cells are disjoint, so the table costs one release:
    /// declare it with [`Statistic::disjoint_person_count`]), margins and the total are the
    /// sums of the noisy cells (post-processing: they add up exactly), and each entry is then
    /// compared with the threshold. SHRINE and exact modes: primary suppression on true
    /// counts, complementary suppression if the policy says so, then obfuscation or exact
    /// values.
    pub fn release_breakdown(
        &self,
        question: &Question,
        input: &Breakdown<PersonSetDigest>,
    ) -> Result<Breakdown<Released>, TableError> {
        let counts = input.counts();
        counts.check_additive()?;
        let threshold = self.policy.min_cell_count;
        if self.policy.release == ReleaseMode::Dp {
            let (rows, cols) = input.shape()?;
            let mut noisy = vec![vec![0u64; cols]; rows];
            let mut sigma = 0.0;
            for (r, row) in input.cells.iter().enumerate() {
                for (c, d) in row.iter().enumerate() {
                    let stat = Statistic::disjoint_person_count(format!("cell {r},{c}"), "cells");
                    let (v, s) = self.noisy(question, &stat, d, d.count());
                    noisy[r][c] = rounded(v as f64);
                    sigma = s;
                }
            }
            let table = Breakdown::from_counts(noisy)?;
            let n = |k: usize| sigma * (k as f64).sqrt();
            return Ok(table.map(|pos, &v| {
                let k = match pos {
                    crate::table::Position::Cell { .. } => 1,
                    crate::table::Position::RowTotal { .. } => cols,
                    crate::table::Position::ColTotal { .. } => rows,
                    crate::table::Position::Total => rows * cols,
                };
                Released::Dp {
                    value: (v >= threshold).then_some(v),
                    sigma: n(k),
                    threshold,
                }
            }));
        }
        let complementary = self.policy.secondary_suppression;
        let pattern = suppression_pattern(&counts, threshold, complementary)?;
        let basis = if complementary {
            SuppressionBasis::Table
        } else {
            SuppressionBasis::TrueCount
        };
        let shrine = self.policy.release == ReleaseMode::Shrine;
        Ok(input.map(|pos, d| {
            if pattern.get(pos).copied().unwrap_or(true) {
                Released::Suppressed { threshold, basis }
            } else if shrine {
                obfuscate(&self.noise, &self.secret, threshold, d)
            } else {
                Released::Exact { value: d.count() }
            }
        }))
    }

    fn noisy(
        &self,
        question: &Question,
        stat: &Statistic,
        persons: &PersonSetDigest,
        value: u64,
    ) -> (i64, f64) {
        noisy_value(
            &self.secret,
            question,
            stat,
            self.policy.dp.sigma,
            persons,
            value,
        )
    }

    /// Post-processing and the threshold on the noisy value.
    fn dp_released(&self, noisy: f64, sigma: f64) -> Released {
        let v = rounded(noisy);
        let threshold = self.policy.min_cell_count;
        Released::Dp {
            value: (v >= threshold).then_some(v),
            sigma,
            threshold,
        }
    }
}

fn exact_or_suppressed(n: u64, threshold: u64) -> Released {
    if n < threshold {
        Released::Suppressed {
            threshold,
            basis: SuppressionBasis::TrueCount,
        }
    } else {
        Released::Exact { value: n }
    }
}
