//! A site's disclosure-control settings.
//!
//! A [`Policy`] is plain data (serde) so a site can keep it in its configuration file. Unknown
//! fields are rejected rather than ignored: a misspelt setting must not silently fall back to a
//! weaker default. [`Policy::validate`] checks the values; [`crate::Discloser::new`] refuses an
//! invalid policy, so nothing is ever released under one.

use serde::{Deserialize, Serialize};

/// Seconds in a day.
pub const DAY_SECS: u64 = 86_400;

/// SHRINE (≥ 1.22) obfuscation: bin width 5.
pub const SHRINE_BIN: u64 = 5;
/// SHRINE (≥ 1.22) obfuscation: Gaussian noise standard deviation 6.5.
pub const SHRINE_SIGMA: f64 = 6.5;
/// SHRINE (≥ 1.22) obfuscation: noise clamped to ±10.
pub const SHRINE_CLAMP: f64 = 10.0;

/// Everything a site decides about what leaves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Minimum cell count: a count `< min_cell_count` (including 0) is released only as
    /// "< min_cell_count". Default 10.
    pub min_cell_count: u64,
    /// SHRINE-style obfuscation of released counts; `None` releases exact counts (above the
    /// threshold). Default: on, with the SHRINE parameters.
    pub obfuscation: Option<ObfuscationParams>,
    /// Complementary (secondary) suppression in breakdown tables. Default on.
    pub secondary_suppression: bool,
    /// Per-user query rate limit.
    pub rate_limit: RateLimit,
    /// Per-user lockout on repeated identical results.
    pub lockout: LockoutPolicy,
    /// Differential privacy mode; when set it replaces obfuscation. Default off.
    pub dp: Option<DpPolicy>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_cell_count: 10,
            obfuscation: Some(ObfuscationParams::default()),
            secondary_suppression: true,
            rate_limit: RateLimit::default(),
            lockout: LockoutPolicy::default(),
            dp: None,
        }
    }
}

/// Parameters of the bin → clamped Gaussian noise → bin obfuscation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObfuscationParams {
    /// Bin width (counts are rounded to a multiple of it before and after the noise). ≥ 5.
    pub bin: u64,
    /// Standard deviation of the Gaussian noise. ≥ 6.5.
    pub sigma: f64,
    /// The noise is clamped to `[-clamp, clamp]`. ≥ 10.
    pub clamp: f64,
}

impl Default for ObfuscationParams {
    fn default() -> Self {
        ObfuscationParams {
            bin: SHRINE_BIN,
            sigma: SHRINE_SIGMA,
            clamp: SHRINE_CLAMP,
        }
    }
}

/// At most `max_queries` accepted queries per user in any `window_secs` window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    /// Queries allowed per window. Default 10.
    pub max_queries: u32,
    /// Window length in seconds. Default 60.
    pub window_secs: u64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            max_queries: 10,
            window_secs: 60,
        }
    }
}

/// What counts as "the same result" for the lockout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockoutBasis {
    /// The same true count (SHRINE's rule; also catches different sets of equal size).
    TrueCount,
    /// The same set of persons (same [`crate::PersonSetDigest`]).
    PersonSet,
}

/// Whose history the rate limit and lockout look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerScope {
    /// One history per user, across all projects (stricter; default).
    PerUser,
    /// One history per (user, project).
    PerUserProject,
}

/// A user who gets the same result more than `max_same_result` times within `window_secs` is
/// locked out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockoutPolicy {
    /// Same-result queries allowed within the window. Default 10 (the 11th locks the user out).
    pub max_same_result: u32,
    /// Window length in seconds. Default 30 days.
    pub window_secs: u64,
    /// What "same result" means. Default [`LockoutBasis::TrueCount`].
    pub basis: LockoutBasis,
    /// How long a lockout lasts; `None` (default) until an administrator lifts it
    /// ([`crate::QueryLedger::unlock`]), as in SHRINE.
    pub duration_secs: Option<u64>,
    /// Whose history is looked at (rate limit and lockout). Default [`LedgerScope::PerUser`].
    pub scope: LedgerScope,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            max_same_result: 10,
            window_secs: 30 * DAY_SECS,
            basis: LockoutBasis::TrueCount,
            duration_secs: None,
            scope: LedgerScope::PerUser,
        }
    }
}

/// Which differential-privacy mechanism noises counts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DpMechanism {
    /// Discrete Laplace (two-sided geometric), scale `sensitivity / epsilon`: pure ε-DP.
    Laplace {
        /// ε charged per released count.
        epsilon: f64,
    },
    /// Discrete Gaussian calibrated through zero-concentrated DP to (ε, δ)-DP.
    Gaussian {
        /// ε charged per released count.
        epsilon: f64,
        /// δ charged per released count.
        delta: f64,
    },
}

impl DpMechanism {
    /// ε charged per release.
    pub fn epsilon(&self) -> f64 {
        match *self {
            DpMechanism::Laplace { epsilon } | DpMechanism::Gaussian { epsilon, .. } => epsilon,
        }
    }
    /// δ charged per release (0 for Laplace).
    pub fn delta(&self) -> f64 {
        match *self {
            DpMechanism::Laplace { .. } => 0.0,
            DpMechanism::Gaussian { delta, .. } => delta,
        }
    }
}

/// Where the minimum-cell-count threshold is applied in DP mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpThresholdBasis {
    /// On the true count (default): a true count below the threshold is never released, even
    /// noised — the hospitals' rule. The suppression decision is a deterministic function of the
    /// true count, so the combined release is *not* formally ε-DP near the threshold.
    TrueCount,
    /// On the noised count: pure post-processing, so the release is exactly ε-DP; but a true
    /// count below the threshold can appear (noised) above it.
    NoisyCount,
}

/// Differential-privacy mode with a per-user per-project budget (sequential composition).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpPolicy {
    /// Mechanism and per-release cost.
    pub mechanism: DpMechanism,
    /// Total ε a user may spend in one project.
    pub epsilon_budget: f64,
    /// Total δ a user may spend in one project (Gaussian only; may be 0 for Laplace).
    #[serde(default)]
    pub delta_budget: f64,
    /// Sensitivity of one count: how many times one person can be counted in it. Default 1.
    #[serde(default = "one")]
    pub sensitivity: u32,
    /// Where the threshold applies. Default [`DpThresholdBasis::TrueCount`].
    #[serde(default = "true_count_basis")]
    pub threshold_basis: DpThresholdBasis,
}

fn one() -> u32 {
    1
}
fn true_count_basis() -> DpThresholdBasis {
    DpThresholdBasis::TrueCount
}

/// Why a [`Policy`] is refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// The threshold must be at least 1 (0 would release zeros, disclosing absence).
    #[error("min_cell_count must be at least 1 (got {0})")]
    Threshold(u64),
    /// Obfuscation parameters weaker than SHRINE ≥ 1.22, or unusable.
    #[error("obfuscation must be at least as strong as SHRINE (bin >= 5, sigma >= 6.5, clamp >= 10, all finite and sane): {0}")]
    Obfuscation(String),
    /// Rate-limit or lockout settings unusable.
    #[error("invalid query limits: {0}")]
    Limits(String),
    /// DP settings unusable.
    #[error("invalid differential-privacy settings: {0}")]
    Dp(String),
}

/// Largest bin width accepted.
pub const MAX_BIN: u64 = 1_000_000;
/// Largest noise clamp accepted, in bins (keeps the noise table small).
pub const MAX_CLAMP_BINS: f64 = 10_000.0;
/// Smallest ε accepted per release (larger noise scales are refused).
pub const MIN_EPSILON: f64 = 1e-4;
/// Largest ε accepted per release or as a budget.
pub const MAX_EPSILON: f64 = 1e6;
/// Largest sensitivity accepted.
pub const MAX_SENSITIVITY: u32 = 1_000;

impl Policy {
    /// Checks every setting; see [`PolicyError`].
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.min_cell_count == 0 {
            return Err(PolicyError::Threshold(0));
        }
        if let Some(o) = &self.obfuscation {
            o.validate()?;
        }
        if self.rate_limit.max_queries == 0 || self.rate_limit.window_secs == 0 {
            return Err(PolicyError::Limits(
                "rate_limit.max_queries and rate_limit.window_secs must be positive".into(),
            ));
        }
        if self.lockout.max_same_result == 0 || self.lockout.window_secs == 0 {
            return Err(PolicyError::Limits(
                "lockout.max_same_result and lockout.window_secs must be positive".into(),
            ));
        }
        if let Some(dp) = &self.dp {
            dp.validate()?;
        }
        Ok(())
    }
}

impl ObfuscationParams {
    /// Checks the parameters are finite, sane and at least SHRINE's.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let bad = |m: &str| Err(PolicyError::Obfuscation(m.into()));
        if self.bin < SHRINE_BIN || self.bin > MAX_BIN {
            return bad("bin must be in 5..=1000000");
        }
        if !(self.sigma.is_finite() && self.sigma >= SHRINE_SIGMA) {
            return bad("sigma must be finite and >= 6.5");
        }
        if !(self.clamp.is_finite() && self.clamp >= SHRINE_CLAMP) {
            return bad("clamp must be finite and >= 10");
        }
        if self.clamp / self.bin as f64 > MAX_CLAMP_BINS {
            return bad("clamp must be at most 10000 bins");
        }
        Ok(())
    }
}

impl DpPolicy {
    /// Checks ε, δ, budgets and sensitivity.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let bad = |m: String| Err(PolicyError::Dp(m));
        let eps = self.mechanism.epsilon();
        if !(eps.is_finite() && (MIN_EPSILON..=MAX_EPSILON).contains(&eps)) {
            return bad(format!(
                "epsilon per release must be in [{MIN_EPSILON}, {MAX_EPSILON}]"
            ));
        }
        if !(self.epsilon_budget.is_finite() && self.epsilon_budget > 0.0)
            || self.epsilon_budget > MAX_EPSILON
        {
            return bad("epsilon_budget must be positive and finite".into());
        }
        if !(self.delta_budget.is_finite() && (0.0..1.0).contains(&self.delta_budget)) {
            return bad("delta_budget must be in [0, 1)".into());
        }
        if let DpMechanism::Gaussian { delta, .. } = self.mechanism {
            if !(delta.is_finite() && delta > 1e-300 && delta < 1.0) {
                return bad("Gaussian delta must be in (0, 1)".into());
            }
        }
        if self.sensitivity == 0 || self.sensitivity > MAX_SENSITIVITY {
            return bad(format!("sensitivity must be in 1..={MAX_SENSITIVITY}"));
        }
        // The noise scale must stay inside what the exact samplers handle.
        crate::dp::Calibrated::new(&self.mechanism, self.sensitivity)
            .map(|_| ())
            .map_err(PolicyError::Dp)
    }
}
