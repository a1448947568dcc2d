//! The site policy: what the site runs, and what it releases.
//!
//! Kept in `DIR/policy.json` (serde, unknown fields rejected so a misspelt setting never falls
//! back silently to a weaker default), edited with `qiao site policy set`, and re-read by the
//! running `serve` loop for every job.

use qiao_disclosure::{DpPolicy, LockoutPolicy, ObfuscationParams, Policy, RateLimit, ReleaseMode};
use qiao_protocol::QueryType;
use serde::{Deserialize, Serialize};

use qiao_audit::EntryDraft;

use crate::audit;
use crate::data::{now_unix, read_json, write_json, SiteDir};

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

/// Everything the site decides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SitePolicy {
    /// Cohort counts (attrition funnel). Default: auto.
    pub cohort_count: Approval,
    /// Demographics breakdowns. Default: manual.
    pub demographics: Approval,
    /// The release mechanism for every number: `dp` (default), `shrine` (legacy, no formal
    /// guarantee) or `exact` (no noise, unprotected). See the disclosure crate's README.
    pub release: ReleaseMode,
    /// Minimum cell count. Default 10.
    pub min_cell_count: u64,
    /// Differential privacy: σ, the entries clipping bound, the budget period and the ρ
    /// budgets per user, organization and site.
    pub dp: DpPolicy,
    /// Complementary suppression in breakdowns (SHRINE and exact modes). Default on.
    pub secondary_suppression: bool,
    /// Per-user rate limit. Default 10 queries a minute.
    pub rate_limit: RateLimit,
    /// Lockout on repeated identical results (SHRINE mode only). Default SHRINE's: the 11th
    /// query with the same true count within 30 days.
    pub lockout: LockoutPolicy,
}

impl Default for SitePolicy {
    fn default() -> Self {
        Self {
            cohort_count: Approval::Auto,
            demographics: Approval::Manual,
            release: ReleaseMode::Dp,
            min_cell_count: 10,
            dp: DpPolicy::default(),
            secondary_suppression: true,
            rate_limit: RateLimit::default(),
            lockout: LockoutPolicy::default(),
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

    /// The disclosure-control policy this maps to (validated).
    pub fn disclosure(&self) -> anyhow::Result<Policy> {
        let p = Policy {
            release: self.release,
            min_cell_count: self.min_cell_count,
            dp: self.dp.clone(),
            obfuscation: ObfuscationParams::default(),
            secondary_suppression: self.secondary_suppression,
            rate_limit: self.rate_limit.clone(),
            lockout: self.lockout.clone(),
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

/// Changes the site policy under the data directory's lock: `change` maps the current policy
/// to the new one, which is validated and written in one atomic replacement (or not at all),
/// then audited (`policy.set`, before and after) with `actor`.
pub fn set_policy_audited(
    dir: &SiteDir,
    actor: qiao_audit::Actor,
    change: impl FnOnce(&SitePolicy) -> anyhow::Result<SitePolicy>,
) -> anyhow::Result<SitePolicy> {
    let (before, after) = dir.locked(|| {
        let before = SitePolicy::load(dir)?;
        let after = change(&before)?;
        after.save(dir)?;
        Ok((before, after))
    })?;
    audit::append(
        dir,
        EntryDraft::new(now_unix(), actor, "policy.set")
            .decision("site policy changed")
            .released_json(&serde_json::json!({
                "before": serde_json::to_value(&before)?,
                "after": serde_json::to_value(&after)?,
            })),
    )?;
    Ok(after)
}
