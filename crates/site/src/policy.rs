//! The site policy: what the site runs, and what it releases.
//!
//! Kept in `DIR/policy.json` (serde, unknown fields rejected so a misspelt setting never falls
//! back silently to a weaker default), edited with `qiao site policy set` or the steward's policy
//! page, and re-read by the running `serve` loop for every job.
//!
//! One validator, [`SitePolicy::validate`], holds every rule: the CLI, the policy page and the
//! file (saved, and read by `serve`) all go through it, and its problems name the field they
//! are in. A change is a [`PolicyEdit`], applied by [`set_audited`] under the data directory's
//! lock: validated, written in one atomic replacement, audited.

use qiao_disclosure::{
    DpPolicy, LockoutPolicy, ObfuscationParams, Policy, RateLimit, ReleaseMode, MAX_RHO,
};
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
    /// Analyses (characterization, incidence). Default: manual.
    pub analyses: Approval,
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
            analyses: Approval::Manual,
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
            QueryType::Characterization(_)
            | QueryType::Incidence(_)
            | QueryType::Survival(_)
            | QueryType::RegressionRound(_)
            | QueryType::Recruitment(_) => self.analyses,
        }
    }

    /// The disclosure-control policy this maps to, validated ([`SitePolicy::validate`]).
    pub fn disclosure(&self) -> anyhow::Result<Policy> {
        Ok(self.validate()?)
    }

    /// Checks every rule and returns the disclosure-control policy this maps to, or every
    /// problem found, each naming its field.
    ///
    /// The rules are the disclosure crate's ([`Policy::validate`]) and the site's own cap on
    /// the minimum cell count. So that a problem names its field, each DP setting the steward
    /// edits (σ and the three budgets) is first checked on its own, against the defaults of
    /// the others; what the settings break only together is reported as [`PolicyField::Other`].
    pub fn validate(&self) -> Result<Policy, PolicyInvalid> {
        let mut problems = Vec::new();
        if !(1..=MAX_MIN_CELL_COUNT).contains(&self.min_cell_count) {
            problems.push(PolicyProblem {
                field: PolicyField::MinCellCount,
                message: format!("must be in 1..={MAX_MIN_CELL_COUNT}"),
            });
        }
        let d = DpPolicy::default();
        let alone = [
            (
                PolicyField::Sigma,
                DpPolicy {
                    sigma: self.dp.sigma,
                    ..d.clone()
                },
            ),
            (
                PolicyField::UserRho,
                DpPolicy {
                    user_rho: self.dp.user_rho,
                    ..d.clone()
                },
            ),
            (
                PolicyField::OrganizationRho,
                DpPolicy {
                    organization_rho: self.dp.organization_rho,
                    ..d.clone()
                },
            ),
            (
                PolicyField::SiteRho,
                DpPolicy {
                    site_rho: self.dp.site_rho,
                    ..d
                },
            ),
        ];
        for (field, dp) in alone {
            if let Err(e) = dp.validate() {
                problems.push(PolicyProblem {
                    field,
                    message: e.to_string(),
                });
            }
        }
        let policy = Policy {
            release: self.release,
            min_cell_count: self.min_cell_count,
            dp: self.dp.clone(),
            obfuscation: ObfuscationParams::default(),
            secondary_suppression: self.secondary_suppression,
            rate_limit: self.rate_limit.clone(),
            lockout: self.lockout.clone(),
        };
        if problems.is_empty() {
            if let Err(e) = policy.validate() {
                problems.push(PolicyProblem {
                    field: PolicyField::Other,
                    message: e.to_string(),
                });
            }
        }
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(PolicyInvalid(problems))
        }
    }

    /// Loads `DIR/policy.json`, or the default if there is none.
    pub fn load(dir: &SiteDir) -> anyhow::Result<Self> {
        Ok(read_json(&dir.policy_path())?.unwrap_or_default())
    }

    /// Validates and saves.
    pub fn save(&self, dir: &SiteDir) -> anyhow::Result<()> {
        self.validate()?;
        write_json(&dir.policy_path(), self)
    }
}

/// The largest minimum cell count a site may set.
pub const MAX_MIN_CELL_COUNT: u64 = 1_000_000;

/// A setting of the site policy that a rule can fail on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PolicyField {
    /// `min_cell_count`.
    MinCellCount,
    /// `dp.sigma`.
    Sigma,
    /// `dp.user_rho`.
    UserRho,
    /// `dp.organization_rho`.
    OrganizationRho,
    /// `dp.site_rho`.
    SiteRho,
    /// Any other setting, or settings that are valid alone but not together.
    Other,
}

impl PolicyField {
    /// The setting's path in `policy.json`.
    pub fn path(self) -> &'static str {
        match self {
            PolicyField::MinCellCount => "min_cell_count",
            PolicyField::Sigma => "dp.sigma",
            PolicyField::UserRho => "dp.user_rho",
            PolicyField::OrganizationRho => "dp.organization_rho",
            PolicyField::SiteRho => "dp.site_rho",
            PolicyField::Other => "policy",
        }
    }
}

/// One rule a policy breaks.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyProblem {
    /// Where.
    pub field: PolicyField,
    /// What is wrong.
    pub message: String,
}

/// Why a site policy is refused: every problem found (at least one).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("invalid site policy: {}", .0.iter().map(|p| format!("{}: {}", p.field.path(), p.message)).collect::<Vec<_>>().join("; "))]
pub struct PolicyInvalid(pub Vec<PolicyProblem>);

/// A steward's budget override for one user or organization: ρ per period, from 0 (nothing
/// more may be spent) to the largest budget a policy may set.
pub fn check_budget_override(rho: f64) -> Result<f64, String> {
    if rho.is_finite() && (0.0..=MAX_RHO).contains(&rho) {
        Ok(rho)
    } else {
        Err(format!("ρ must be a number in [0, {MAX_RHO}]"))
    }
}

/// A change to some settings (the CLI's flags, the policy page's form): each `Some` replaces
/// its setting, the rest stay as they are.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyEdit {
    /// Cohort count queries.
    pub cohort_count: Option<Approval>,
    /// Demographics queries.
    pub demographics: Option<Approval>,
    /// Analyses (characterization, incidence).
    pub analyses: Option<Approval>,
    /// The release mechanism.
    pub release: Option<ReleaseMode>,
    /// The minimum cell count.
    pub min_cell_count: Option<u64>,
    /// Complementary suppression.
    pub secondary_suppression: Option<bool>,
    /// Queries per user per rate window.
    pub rate_limit: Option<u32>,
    /// The rate window in seconds.
    pub rate_window_secs: Option<u64>,
    /// DP: σ per unit of sensitivity.
    pub sigma: Option<f64>,
    /// DP: rows of one person counted at most in `entries`.
    pub entries_bound: Option<u32>,
    /// DP: the budget period in days.
    pub budget_period_days: Option<u32>,
    /// DP: ρ per user per period.
    pub user_rho: Option<f64>,
    /// DP: ρ per organization per period.
    pub organization_rho: Option<f64>,
    /// DP: ρ for the whole site per period.
    pub site_rho: Option<f64>,
}

impl PolicyEdit {
    /// `base` with the edit applied (not validated).
    pub fn applied_to(&self, base: &SitePolicy) -> SitePolicy {
        fn set<T: Clone>(to: &mut T, v: &Option<T>) {
            if let Some(v) = v {
                *to = v.clone();
            }
        }
        let mut p = base.clone();
        set(&mut p.cohort_count, &self.cohort_count);
        set(&mut p.demographics, &self.demographics);
        set(&mut p.analyses, &self.analyses);
        set(&mut p.release, &self.release);
        set(&mut p.min_cell_count, &self.min_cell_count);
        set(&mut p.secondary_suppression, &self.secondary_suppression);
        set(&mut p.rate_limit.max_queries, &self.rate_limit);
        set(&mut p.rate_limit.window_secs, &self.rate_window_secs);
        set(&mut p.dp.sigma, &self.sigma);
        set(&mut p.dp.entries_bound, &self.entries_bound);
        set(&mut p.dp.period_days, &self.budget_period_days);
        set(&mut p.dp.user_rho, &self.user_rho);
        set(&mut p.dp.organization_rho, &self.organization_rho);
        set(&mut p.dp.site_rho, &self.site_rho);
        p
    }
}

/// Why a policy change was not made.
#[derive(Debug, thiserror::Error)]
pub enum PolicyChangeError {
    /// The changed policy breaks a rule; nothing was written.
    #[error(transparent)]
    Invalid(#[from] PolicyInvalid),
    /// Reading, writing or auditing failed.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Applies `edit` to the site policy under the data directory's lock: the new policy is
/// validated and written in one atomic replacement (or not at all), then audited
/// (`policy.set`, before and after) with `actor`. Returns the new policy.
pub fn set_audited(
    dir: &SiteDir,
    actor: qiao_audit::Actor,
    edit: &PolicyEdit,
) -> Result<SitePolicy, PolicyChangeError> {
    let changed = dir.locked(|| {
        let before = SitePolicy::load(dir)?;
        let after = edit.applied_to(&before);
        if let Err(invalid) = after.validate() {
            return Ok(Err(invalid));
        }
        write_json(&dir.policy_path(), &after)?;
        Ok(Ok((before, after)))
    })?;
    let (before, after) = changed?;
    audit::append(
        dir,
        EntryDraft::new(now_unix(), actor, "policy.set")
            .decision("site policy changed")
            .released_json(&serde_json::json!({
                "before": serde_json::to_value(&before).map_err(anyhow::Error::new)?,
                "after": serde_json::to_value(&after).map_err(anyhow::Error::new)?,
            })),
    )?;
    Ok(after)
}
