//! Each user's remaining privacy budget per site, as the sites last reported it.
//!
//! A site charges every job to three zCDP budgets (the user's, the organization's, its own)
//! and reports what remains with each result (`disclosure.dp`). The hub keeps the latest
//! report per (user, site) and per (organization, site) — in the `meta` table under
//! `budget/…` keys, written in the transaction that stores the result — and answers
//! `GET /api/v1/budget` with the caller's. The figures are as of the last result: budgets
//! recover as charges leave the site's rolling period, which the hub does not see.

use qiao_protocol::{Job, JobId, JobResult, Outcome, SiteId, UserId};
use serde::{Deserialize, Serialize};

use super::{get_json, put_json, scan_json, HubStore, StoreError, Table, Tx};
use crate::model::User;

/// What one site last reported about one budget.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteBudget {
    /// The site.
    pub site: SiteId,
    /// ρ the user could still spend there: the smallest of the user's, the organization's and
    /// the site's remainders.
    pub remaining_rho: f64,
    /// ρ left in the user's own budget (`None` from sites that do not report it).
    pub user_remaining_rho: Option<f64>,
    /// ρ left in the organization's budget.
    pub organization_remaining_rho: Option<f64>,
    /// When the hub received the report (unix seconds).
    pub as_of: i64,
    /// The job whose result carried it.
    pub job_id: JobId,
    /// The user whose job it was.
    pub user: UserId,
}

/// `GET /api/v1/budget`: the caller's budgets per site.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetView {
    /// The caller.
    pub user: UserId,
    /// The caller's organization, as the hub signs it into jobs.
    pub organization: String,
    /// The latest report per site of a job of the caller.
    pub sites: Vec<SiteBudget>,
    /// The latest report per site of a job of anyone in the caller's organization.
    pub organization_sites: Vec<SiteBudget>,
}

/// The organization the hub signs into a user's jobs (a user without an institution is an
/// organization of one).
pub fn organization_of(user: &User) -> String {
    user.institution
        .clone()
        .unwrap_or_else(|| format!("user:{}", user.id.as_str()))
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn user_prefix(user: &UserId) -> String {
    format!("budget/user/{}/", hex(user.as_str()))
}

fn org_prefix(org: &str) -> String {
    format!("budget/org/{}/", hex(org))
}

/// Inside the transaction that stores `result`: keeps its budget report, if it has one, as the
/// latest for the job's user and organization at that site (an older report never replaces a
/// newer one).
pub fn record(tx: &mut dyn Tx, job: &Job, result: &JobResult, now: i64) -> Result<(), StoreError> {
    let Outcome::Done { payload } = &result.outcome else {
        return Ok(());
    };
    let Some(dp) = &payload.disclosure().dp else {
        return Ok(());
    };
    let entry = SiteBudget {
        site: result.site_id.clone(),
        remaining_rho: dp.remaining_rho,
        user_remaining_rho: dp.user_remaining_rho,
        organization_remaining_rho: dp.organization_remaining_rho,
        as_of: now,
        job_id: job.job_id,
        user: job.requested_by.user_id.clone(),
    };
    let site = hex(result.site_id.as_str());
    for prefix in [
        user_prefix(&job.requested_by.user_id),
        org_prefix(&job.requested_by.organization),
    ] {
        let key = format!("{prefix}{site}");
        let older = get_json::<SiteBudget>(tx, Table::Meta, &key)?.is_none_or(|b| b.as_of <= now);
        if older {
            put_json(tx, Table::Meta, &key, &entry)?;
        }
    }
    Ok(())
}

/// The budgets of `user` per site.
pub fn view_of(store: &dyn HubStore, user: &User) -> Result<BudgetView, StoreError> {
    let organization = organization_of(user);
    let (sites, organization_sites) = store.read_with(|tx| {
        Ok((
            scan_json::<SiteBudget>(tx, Table::Meta, &user_prefix(&user.id))?,
            scan_json::<SiteBudget>(tx, Table::Meta, &org_prefix(&organization))?,
        ))
    })?;
    Ok(BudgetView {
        user: user.id.clone(),
        organization,
        sites,
        organization_sites,
    })
}
