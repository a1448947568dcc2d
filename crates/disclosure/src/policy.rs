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

/// Which release mechanism every number leaving the site goes through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseMode {
    /// Differential privacy (default): discrete Gaussian noise seeded from a keyed PRF of the
    /// question, the statistic and the exact person set; the threshold is applied to the
    /// *noisy* value; budgets per user, organization and site (zCDP). See THREAT_MODEL.md.
    #[default]
    Dp,
    /// Legacy SHRINE ≥ 1.22 obfuscation with a threshold on the true count and a lockout.
    /// **Not** a formal guarantee (the threshold and the lockout are decisions on true counts).
    Shrine,
    /// No noise: exact counts, threshold on the true count. **Unprotected**: for tests and for
    /// showing that attacks succeed without protection.
    Exact,
}

/// Everything a site decides about what leaves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// The release mechanism. Default [`ReleaseMode::Dp`].
    pub release: ReleaseMode,
    /// Minimum cell count: a (noisy, in DP mode) count `< min_cell_count` is released only as
    /// "< min_cell_count". Default 10.
    pub min_cell_count: u64,
    /// Differential-privacy parameters ([`ReleaseMode::Dp`]).
    pub dp: DpPolicy,
    /// SHRINE-style obfuscation parameters ([`ReleaseMode::Shrine`]).
    pub obfuscation: ObfuscationParams,
    /// Complementary (secondary) suppression in breakdown tables (SHRINE and exact modes; in
    /// DP mode margins are sums of noisy cells and nothing needs protecting). Default on.
    pub secondary_suppression: bool,
    /// Per-user query rate limit (all modes; it never looks at data).
    pub rate_limit: RateLimit,
    /// Lockout on repeated identical results ([`ReleaseMode::Shrine`] only: it is a decision
    /// on true counts, hence an oracle, and DP mode does not need it).
    pub lockout: LockoutPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            release: ReleaseMode::Dp,
            min_cell_count: 10,
            dp: DpPolicy::default(),
            obfuscation: ObfuscationParams::default(),
            secondary_suppression: true,
            rate_limit: RateLimit::default(),
            lockout: LockoutPolicy::default(),
        }
    }
}

impl Policy {
    /// The legacy SHRINE policy (for comparison with existing SHRINE networks).
    pub fn shrine() -> Self {
        Policy {
            release: ReleaseMode::Shrine,
            ..Policy::default()
        }
    }

    /// The unprotected exact policy with the given threshold (tests, attack baselines).
    pub fn exact(min_cell_count: u64) -> Self {
        Policy {
            release: ReleaseMode::Exact,
            min_cell_count,
            ..Policy::default()
        }
    }
}

/// Differential-privacy parameters: the noise and the budgets (zCDP, in ρ).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpPolicy {
    /// σ of the discrete Gaussian added to a statistic of sensitivity 1 (a statistic of
    /// sensitivity Δ gets Δ·σ). One such release costs ρ = 1/(2σ²). Default 6 (95% interval
    /// ±12).
    pub sigma: f64,
    /// Rows of one person counted at most in `entries` (clipping). Default 10.
    pub entries_bound: u32,
    /// Length of the budget period in days (a rolling window). Default 30.
    pub period_days: u32,
    /// ρ one user may spend at this site per period, across all projects. Default 0.25
    /// (ε = 3.5 at δ = 10⁻⁶).
    pub user_rho: f64,
    /// ρ one organization (all its users) may spend per period. Default 0.5 (ε = 5.2).
    pub organization_rho: f64,
    /// ρ all users together may spend at this site per period: bounds the total loss even if
    /// the hub invents users or organizations. Default 1 (ε = 7.8).
    pub site_rho: f64,
}

impl Default for DpPolicy {
    fn default() -> Self {
        DpPolicy {
            sigma: DEFAULT_SIGMA,
            entries_bound: 10,
            period_days: 30,
            user_rho: 0.25,
            organization_rho: 0.5,
            site_rho: 1.0,
        }
    }
}

/// Default σ per unit of sensitivity.
pub const DEFAULT_SIGMA: f64 = 6.0;

impl DpPolicy {
    /// ρ of one release of sensitivity-scaled noise: `1 / (2σ²)`.
    pub fn rho_per_release(&self) -> f64 {
        1.0 / (2.0 * self.sigma * self.sigma)
    }

    /// The budget period in seconds.
    pub fn period_secs(&self) -> u64 {
        u64::from(self.period_days).saturating_mul(DAY_SECS)
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
/// Smallest σ accepted (ρ per release at most 1/2).
pub const MIN_SIGMA: f64 = 1.0;
/// Largest σ accepted (sensitivity-scaled noise must stay inside the exact sampler's range).
pub const MAX_SIGMA: f64 = 100_000.0;
/// Largest `entries_bound` accepted.
pub const MAX_ENTRIES_BOUND: u32 = 1_000;
/// Largest budget (ρ) accepted.
pub const MAX_RHO: f64 = 1e6;

impl Policy {
    /// Checks every setting; see [`PolicyError`].
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.min_cell_count == 0 {
            return Err(PolicyError::Threshold(0));
        }
        self.obfuscation.validate()?;
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
        self.dp.validate()
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
    /// Checks σ, the entries bound, the period and the budgets.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let bad = |m: String| Err(PolicyError::Dp(m));
        if !(self.sigma.is_finite() && (MIN_SIGMA..=MAX_SIGMA).contains(&self.sigma)) {
            return bad(format!("sigma must be in [{MIN_SIGMA}, {MAX_SIGMA}]"));
        }
        if self.entries_bound == 0 || self.entries_bound > MAX_ENTRIES_BOUND {
            return bad(format!("entries_bound must be in 1..={MAX_ENTRIES_BOUND}"));
        }
        if self.sigma * f64::from(self.entries_bound) > crate::dp::MAX_NOISE_SCALE {
            return bad("sigma * entries_bound is too large".into());
        }
        if !(1..=3660).contains(&self.period_days) {
            return bad("period_days must be in 1..=3660".into());
        }
        for (name, v) in [
            ("user_rho", self.user_rho),
            ("organization_rho", self.organization_rho),
            ("site_rho", self.site_rho),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= MAX_RHO) {
                return bad(format!("{name} must be positive and at most {MAX_RHO}"));
            }
        }
        Ok(())
    }
}
