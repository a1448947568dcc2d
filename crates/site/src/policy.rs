//! The site policy: what the site runs, and what it releases.
//!
//! Kept in `DIR/policy.json` (serde, unknown fields rejected so a misspelt setting never falls
//! back silently to a weaker default), edited with `qiao site policy set`, and re-read by the
//! running `serve` loop for every job.

use qiao_disclosure::{
    DpMechanism, DpPolicy, DpThresholdBasis, LockoutPolicy, ObfuscationParams, Policy, RateLimit,
};
use qiao_protocol::QueryType;
use serde::{Deserialize, Serialize};

use crate::data::{read_json, write_json, SiteDir};

/// What the site does with one query type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(clap::ValueEnum)]
pub enum Approval {
    /// Run it as soon as it arrives.
    Auto,
    /// Queue it for the data steward (`qiao site approvals`).
    Manual,
    /// Refuse it.
    Deny,
}

impl std::fmt::Display for Approval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Approval::Auto => "auto",
            Approval::Manual => "manual",
            Approval::Deny => "deny",
        })
    }
}

/// Differential-privacy mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpSettings {
    /// The noise mechanism and the (ε, δ) charged per released number.
    pub mechanism: DpMechanism,
    /// ε a user may spend in one project at this site.
    pub epsilon_budget: f64,
    /// δ a user may spend in one project (Gaussian only).
    #[serde(default)]
    pub delta_budget: f64,
    /// Where the threshold applies (default: on the true count).
    #[serde(default = "true_count")]
    pub threshold_basis: DpThresholdBasis,
}

fn true_count() -> DpThresholdBasis {
    DpThresholdBasis::TrueCount
}

/// Everything the site decides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SitePolicy {
    /// Cohort counts (attrition funnel). Default: auto.
    pub cohort_count: Approval,
    /// Demographics breakdowns. Default: manual.
    pub demographics: Approval,
    /// Minimum cell count. Default 10.
    pub min_cell_count: u64,
    /// SHRINE-style obfuscation (bin 5, σ 6.5 clamped to ±10, bin 5). Default on. Replaced by
    /// noise when DP mode is on.
    pub obfuscation: bool,
    /// Complementary suppression in breakdowns. Default on.
    pub secondary_suppression: bool,
    /// Per-user rate limit. Default 10 queries a minute.
    pub rate_limit: RateLimit,
    /// Lockout on repeated identical results. Default SHRINE's: the 11th query with the same
    /// true count within 30 days.
    pub lockout: LockoutPolicy,
    /// Differential-privacy mode. Default off.
    pub dp: Option<DpSettings>,
}

impl Default for SitePolicy {
    fn default() -> Self {
        Self {
            cohort_count: Approval::Auto,
            demographics: Approval::Manual,
            min_cell_count: 10,
            obfuscation: true,
            secondary_suppression: true,
            rate_limit: RateLimit::default(),
            lockout: LockoutPolicy::default(),
            dp: None,
        }
    }
}

impl SitePolicy {
    /// The rule for a query type.
    pub fn approval(&self, query: &QueryType) -> Approval {
        match query {
            QueryType::CohortCount => self.cohort_count,
            QueryType::Demographics { .. } => self.demographics,
        }
    }

    /// The disclosure-control policy this maps to (validated). In DP mode the noise replaces
    /// obfuscation.
    pub fn disclosure(&self) -> anyhow::Result<Policy> {
        let p = Policy {
            min_cell_count: self.min_cell_count,
            obfuscation: (self.obfuscation && self.dp.is_none()).then(ObfuscationParams::default),
            secondary_suppression: self.secondary_suppression,
            rate_limit: self.rate_limit.clone(),
            lockout: self.lockout.clone(),
            dp: self.dp.as_ref().map(|d| DpPolicy {
                mechanism: d.mechanism,
                epsilon_budget: d.epsilon_budget,
                delta_budget: d.delta_budget,
                sensitivity: 1,
                threshold_basis: d.threshold_basis,
            }),
        };
        p.validate()
            .map_err(|e| anyhow::anyhow!("invalid site policy: {e}"))?;
        Ok(p)
    }

    /// Loads `DIR/policy.json`, or the default if there is none.
    pub fn load(dir: &SiteDir) -> anyhow::Result<Self> {
        Ok(read_json(&dir.policy_path())?.unwrap_or_default())
    }

    /// Validates and saves.
    pub fn save(&self, dir: &SiteDir) -> anyhow::Result<()> {
        self.disclosure()?;
        write_json(&dir.policy_path(), self)
    }
}
