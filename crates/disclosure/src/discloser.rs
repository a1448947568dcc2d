//! The entry point: a site's policy and secret, applied to counts and breakdowns.

use rand::{CryptoRng, RngCore};

use crate::digest::{PersonSetDigest, PersonSetDigester};
use crate::dp::Calibrated;
use crate::ledger::{QueryLedger, Refusal};
use crate::obfuscate::{obfuscate, NoiseTable};
use crate::policy::{DpThresholdBasis, Policy, PolicyError};
use crate::released::{Released, SuppressionBasis};
use crate::secret::SiteSecret;
use crate::table::{suppression_pattern, Breakdown, TableError};

/// Who asks, for which project, and when (unix seconds, passed in: nothing here reads a
/// clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryContext<'a> {
    /// The requesting user.
    pub user: &'a str,
    /// The project the query belongs to (the DP budget is per user per project).
    pub project: &'a str,
    /// Current time, unix seconds.
    pub now_unix_secs: u64,
}

/// A site's disclosure control: a validated [`Policy`] and the [`SiteSecret`].
#[derive(Clone, Debug)]
pub struct Discloser {
    policy: Policy,
    secret: SiteSecret,
    noise: Option<NoiseTable>,
    dp: Option<Calibrated>,
}

impl Discloser {
    /// Validates `policy` and prepares the noise tables.
    pub fn new(policy: Policy, secret: SiteSecret) -> Result<Self, PolicyError> {
        policy.validate()?;
        let noise = policy.obfuscation.as_ref().map(NoiseTable::new);
        let dp = match &policy.dp {
            Some(d) => Some(Calibrated::new(&d.mechanism, d.sensitivity).map_err(PolicyError::Dp)?),
            None => None,
        };
        Ok(Discloser {
            policy,
            secret,
            noise,
            dp,
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The obfuscation noise table, if obfuscation is on.
    pub fn noise_table(&self) -> Option<&NoiseTable> {
        self.noise.as_ref()
    }

    /// The digest of a person set, keyed with this site's secret.
    pub fn digest(&self, ids: impl IntoIterator<Item = i64>) -> PersonSetDigest {
        PersonSetDigest::of(&self.secret, ids)
    }

    /// An incremental digester keyed with this site's secret.
    pub fn digester(&self) -> PersonSetDigester {
        PersonSetDigester::new(&self.secret)
    }

    /// The non-DP release of one count: threshold on the true count, then obfuscation if on.
    /// Stateless and deterministic: the same person set always gives the same value. Does not
    /// consult the ledger and ignores DP mode; [`Self::answer_count`] is the full pipeline.
    pub fn release_count(&self, persons: &PersonSetDigest) -> Released {
        let threshold = self.policy.min_cell_count;
        match &self.noise {
            Some(table) => obfuscate(table, &self.secret, threshold, persons),
            None => exact_or_suppressed(persons.count(), threshold, SuppressionBasis::TrueCount),
        }
    }

    /// The non-DP release of a breakdown: primary suppression on true counts, complementary
    /// suppression if the policy says so, then obfuscation (per entry, keyed by that entry's
    /// person set) or exact values. Stateless and deterministic.
    pub fn release_breakdown(
        &self,
        input: &Breakdown<PersonSetDigest>,
    ) -> Result<Breakdown<Released>, TableError> {
        let counts = input.counts();
        let threshold = self.policy.min_cell_count;
        let complementary = self.policy.secondary_suppression;
        let pattern = suppression_pattern(&counts, threshold, complementary)?;
        let basis = if complementary {
            SuppressionBasis::Table
        } else {
            SuppressionBasis::TrueCount
        };
        Ok(input.map(|pos, d| {
            if pattern.get(pos).copied().unwrap_or(true) {
                Released::Suppressed { threshold, basis }
            } else {
                match &self.noise {
                    Some(table) => obfuscate(table, &self.secret, threshold, d),
                    None => Released::Exact { value: d.count() },
                }
            }
        }))
    }

    /// The full pipeline for one count: lockout, rate limit and repeated-result rule
    /// ([`QueryLedger::check_and_record`]), then — in DP mode — the budget charge and DP
    /// noise, otherwise [`Self::release_count`]. `rng` is used only in DP mode; pass
    /// `rand::rngs::OsRng` in production.
    pub fn answer_count<R: RngCore + CryptoRng + ?Sized>(
        &self,
        ledger: &mut QueryLedger,
        ctx: &QueryContext<'_>,
        persons: &PersonSetDigest,
        rng: &mut R,
    ) -> Result<Released, Refusal> {
        self.admit(ledger, ctx, persons)?;
        match (&self.dp, &self.policy.dp) {
            (Some(cal), Some(_)) => Ok(self.dp_count(cal, persons.count(), rng)),
            _ => Ok(self.release_count(persons)),
        }
    }

    /// The full pipeline for a breakdown (the lockout key is the grand total's person set).
    ///
    /// In DP mode, each cell gets independent DP noise (cells are disjoint, so by parallel
    /// composition the whole table costs one ε — the caller asserts each person is in exactly
    /// one cell), margins are *sums of the noised cells* (post-processing, so they add up and
    /// cost nothing), and suppression — primary and complementary — is decided on the true
    /// counts ([`DpThresholdBasis::TrueCount`]) or the noised ones
    /// ([`DpThresholdBasis::NoisyCount`]).
    pub fn answer_breakdown<R: RngCore + CryptoRng + ?Sized>(
        &self,
        ledger: &mut QueryLedger,
        ctx: &QueryContext<'_>,
        input: &Breakdown<PersonSetDigest>,
        rng: &mut R,
    ) -> Result<Breakdown<Released>, Refusal> {
        let invalid = |e: TableError| Refusal::InvalidRequest {
            reason: e.to_string(),
        };
        input.counts().check_additive().map_err(invalid)?;
        self.admit(ledger, ctx, &input.total)?;
        let (Some(cal), Some(dp)) = (&self.dp, &self.policy.dp) else {
            return self.release_breakdown(input).map_err(invalid);
        };
        let threshold = self.policy.min_cell_count;
        let noisy_cells: Vec<Vec<u64>> = input
            .cells
            .iter()
            .map(|row| {
                row.iter()
                    .map(|d| noised(d.count(), cal.sample(rng)))
                    .collect()
            })
            .collect();
        let noisy = Breakdown::from_counts(noisy_cells).map_err(invalid)?;
        let (basis_counts, basis) = match dp.threshold_basis {
            DpThresholdBasis::TrueCount => (input.counts(), SuppressionBasis::Table),
            DpThresholdBasis::NoisyCount => (noisy.clone(), SuppressionBasis::NoisyCount),
        };
        let pattern = suppression_pattern(&basis_counts, threshold, true).map_err(invalid)?;
        let noise = cal.describe();
        Ok(noisy.map(|pos, &v| {
            if pattern.get(pos).copied().unwrap_or(true) {
                Released::Suppressed { threshold, basis }
            } else {
                Released::DpNoised {
                    value: v,
                    noise,
                    floor: 0,
                }
            }
        }))
    }

    /// Ledger checks, and in DP mode the budget check and charge (before any noise is drawn, so
    /// that whether a charge happens never depends on the data).
    fn admit(
        &self,
        ledger: &mut QueryLedger,
        ctx: &QueryContext<'_>,
        persons: &PersonSetDigest,
    ) -> Result<(), Refusal> {
        let p = &self.policy;
        if let Some(dp) = &p.dp {
            let (e, d) = (dp.mechanism.epsilon(), dp.mechanism.delta());
            ledger.check_budget(p, ctx.user, ctx.project, e, d)?;
            ledger.check_and_record(p, ctx.user, ctx.project, ctx.now_unix_secs, persons)?;
            ledger.charge(p, ctx.user, ctx.project, e, d)?;
        } else {
            ledger.check_and_record(p, ctx.user, ctx.project, ctx.now_unix_secs, persons)?;
        }
        Ok(())
    }

    /// One DP count (budget already charged).
    fn dp_count<R: RngCore + CryptoRng + ?Sized>(
        &self,
        cal: &Calibrated,
        n: u64,
        rng: &mut R,
    ) -> Released {
        let threshold = self.policy.min_cell_count;
        let noise = cal.describe();
        let basis = self
            .policy
            .dp
            .as_ref()
            .map_or(DpThresholdBasis::TrueCount, |d| d.threshold_basis);
        match basis {
            DpThresholdBasis::TrueCount => {
                if n < threshold {
                    // Draw anyway: the RNG use (and timing) does not depend on the count.
                    let _ = cal.sample(rng);
                    return Released::Suppressed {
                        threshold,
                        basis: SuppressionBasis::TrueCount,
                    };
                }
                let v = noised(n, cal.sample(rng)).max(threshold);
                Released::DpNoised {
                    value: v,
                    noise,
                    floor: threshold,
                }
            }
            DpThresholdBasis::NoisyCount => {
                let v = noised(n, cal.sample(rng));
                if v < threshold {
                    Released::Suppressed {
                        threshold,
                        basis: SuppressionBasis::NoisyCount,
                    }
                } else {
                    Released::DpNoised {
                        value: v,
                        noise,
                        floor: 0,
                    }
                }
            }
        }
    }
}

/// `n + noise`, clamped to `[0, u64::MAX]` (post-processing).
fn noised(n: u64, noise: i64) -> u64 {
    let v = i128::from(n) + i128::from(noise);
    u64::try_from(v.max(0)).unwrap_or(u64::MAX)
}

fn exact_or_suppressed(n: u64, threshold: u64, basis: SuppressionBasis) -> Released {
    if n < threshold {
        Released::Suppressed { threshold, basis }
    } else {
        Released::Exact { value: n }
    }
}
