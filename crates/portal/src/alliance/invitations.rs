//! Site selection and enrollment: invitations to sites, their stewards' answers, monthly
//! enrollment reports.

use qiao_hub::audit::EntryDraft;
use qiao_hub::model::{Project, User};
use qiao_hub::protocol::{ProjectId, SiteId, UserRole};
use qiao_hub::store::{append_audit, get_json, put_json, scan_json, Table};
use qiao_hub::HubStore;

use super::input::text_ok;
use super::pipeline::{load, Invite, InviteStatus, ProjectFile, Report, Stage};
use super::refusal::{field, Outcome, Refusal};
use super::tables::{actor, write, PIPELINE};

/// The sponsor invites enrolled sites (site selection stage).
pub fn invite_sites(
    store: &dyn HubStore,
    id: &ProjectId,
    sites: &[SiteId],
    by: &User,
    now: i64,
) -> Outcome<ProjectFile> {
    if sites.is_empty() {
        return Err(field("sites", "form.err_pick_site"));
    }
    write(store, |tx| {
        let (mut f, p) = load(tx, id)?;
        if by.role != UserRole::SponsorResearcher || !p.members.contains(&by.id) {
            return Err(Refusal::Forbidden);
        }
        if f.stage != Stage::SiteSelection {
            return Err(Refusal::State("state.err_not_site_selection"));
        }
        for s in sites {
            if tx.get(Table::Sites, s.as_str())?.is_none() {
                return Err(field("sites", "form.err_no_site"));
            }
            if f.invites.iter().any(|i| &i.site == s) {
                continue;
            }
            f.invites.push(Invite {
                site: s.clone(),
                status: InviteStatus::Invited,
                reason: None,
                invited_by: by.id.clone(),
                invited_at: now,
                answered_by: None,
                answered_at: None,
            });
            append_audit(
                tx,
                EntryDraft::new(now, actor(by), "project.invite")
                    .project(id.to_string())
                    .decision(s.to_string()),
            )?;
        }
        put_json(tx, PIPELINE, id.as_str(), &f)?;
        Ok(f)
    })
}

/// A site's data steward accepts or declines the invitation (a reason is required to
/// decline).
pub fn answer_invite(
    store: &dyn HubStore,
    id: &ProjectId,
    accept: bool,
    reason: &str,
    by: &User,
    now: i64,
) -> Outcome<ProjectFile> {
    let reason = reason.trim();
    if !accept && !text_ok(reason, 1000, true) {
        return Err(field("reason", "form.err_reason"));
    }
    if !reason.is_empty() && !text_ok(reason, 1000, true) {
        return Err(field("reason", "form.err_long_text"));
    }
    write(store, |tx| {
        let (mut f, _) = load(tx, id)?;
        let Some(site) = by
            .site
            .clone()
            .filter(|_| by.role == UserRole::SiteDataSteward)
        else {
            return Err(Refusal::Forbidden);
        };
        if !matches!(f.stage, Stage::SiteSelection | Stage::Running) {
            return Err(Refusal::State("state.err_not_site_selection"));
        }
        let inv = f
            .invites
            .iter_mut()
            .find(|i| i.site == site)
            .ok_or(Refusal::Forbidden)?;
        if inv.status != InviteStatus::Invited {
            return Err(Refusal::State("state.err_decided"));
        }
        inv.status = if accept {
            InviteStatus::Accepted
        } else {
            InviteStatus::Declined
        };
        inv.reason = (!reason.is_empty()).then(|| reason.to_owned());
        inv.answered_by = Some(by.id.clone());
        inv.answered_at = Some(now);
        let status = inv.status;
        if accept {
            // The site's people join the project (its investigator then pre-screens at the site).
            let mut p: Project =
                get_json(tx, Table::Projects, id.as_str())?.ok_or(Refusal::NotFound)?;
            for u in scan_json::<User>(tx, Table::Users, "")? {
                if u.site.as_ref() == Some(&site) && !p.members.contains(&u.id) {
                    p.members.push(u.id);
                }
            }
            p.members.sort();
            put_json(tx, Table::Projects, id.as_str(), &p)?;
        }
        put_json(tx, PIPELINE, id.as_str(), &f)?;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "project.invite.answer")
                .project(id.to_string())
                .decision(format!("{site}: {}", status.as_str())),
        )?;
        Ok(f)
    })
}

/// A steward or investigator of an accepted site reports a month's screened and enrolled
/// counts (running stage); a second report for the same month replaces the first.
pub fn report_enrollment(
    store: &dyn HubStore,
    id: &ProjectId,
    month: &str,
    screened: &str,
    enrolled: &str,
    by: &User,
    now: i64,
) -> Result<ProjectFile, Vec<Refusal>> {
    let mut errs = Vec::new();
    let month_ok = month.len() == 7
        && qiao_web::i18n::parse_ymd(&format!("{month}-01")).is_some_and(|t| t <= now);
    if !month_ok {
        errs.push(field("month", "form.err_month"));
    }
    let s: Option<u32> = screened.trim().parse().ok().filter(|v| *v <= 100_000);
    let e: Option<u32> = enrolled.trim().parse().ok().filter(|v| *v <= 100_000);
    if s.is_none() {
        errs.push(field("screened", "form.err_count"));
    }
    match (s, e) {
        (_, None) => errs.push(field("enrolled", "form.err_count")),
        (Some(s), Some(e)) if e > s => {
            errs.push(field("enrolled", "form.err_enrolled_gt_screened"))
        }
        _ => {}
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let (Some(s), Some(e)) = (s, e) else {
        return Err(errs);
    };
    write(store, |tx| {
        let (mut f, _) = load(tx, id)?;
        let Some(site) = by.site.clone().filter(|_| {
            matches!(
                by.role,
                UserRole::SiteDataSteward | UserRole::SiteInvestigator
            )
        }) else {
            return Err(Refusal::Forbidden);
        };
        if !f
            .invites
            .iter()
            .any(|i| i.site == site && i.status == InviteStatus::Accepted)
        {
            return Err(Refusal::Forbidden);
        }
        if f.stage != Stage::Running {
            return Err(Refusal::State("state.err_not_running"));
        }
        f.reports.retain(|r| !(r.site == site && r.month == month));
        f.reports.push(Report {
            site: site.clone(),
            month: month.to_owned(),
            screened: s,
            enrolled: e,
            by: by.id.clone(),
            at: now,
        });
        f.reports
            .sort_by(|a, b| (&a.month, &a.site).cmp(&(&b.month, &b.site)));
        put_json(tx, PIPELINE, id.as_str(), &f)?;
        append_audit(
            tx,
            EntryDraft::new(now, actor(by), "project.report")
                .project(id.to_string())
                .decision(format!("{site} {month}: screened {s}, enrolled {e}")),
        )?;
        Ok(f)
    })
    .map_err(|e| vec![e])
}
