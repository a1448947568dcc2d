//! The dashboard: the alliance in numbers and what waits for the signed-in user.

use axum::extract::State;
use axum::response::Response;
use qiao_hub::protocol::UserRole;
use qiao_hub::util::now;
use qiao_web::chart::{self, Bar};
use qiao_web::i18n::fmt_int;
use qiao_web::{html, t, tf};

use super::common::{stage_badge, stage_name};
use crate::alliance::{self, InviteStatus, MemberStatus, Stage};
use crate::web::{blocking, Ctx, Shared};

/// `GET /`: the dashboard, or a redirect to the sign-in page for anonymous visitors.
pub async fn dashboard(State(portal): State<Shared>, ctx: Ctx) -> Response {
    let user = match ctx.require(&[]) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let lang = ctx.lang;
    let store = portal.hub.store().clone();
    let loaded = blocking(move || {
        let s = store.as_ref();
        let files = alliance::project_files(s)?;
        let mut visible = Vec::new();
        for f in files {
            let members = s
                .project(&f.project)?
                .map(|p| p.members)
                .unwrap_or_default();
            if alliance::can_see(&user, &f, &members) {
                visible.push(f);
            }
        }
        Ok::<_, qiao_hub::StoreError>((
            visible,
            alliance::institutions(s)?,
            alliance::experts(s)?,
            s.sites()?,
            alliance::search_library(s, "")?.len(),
            user,
        ))
    })
    .await;
    let (files, insts, experts, sites, library, user) = match loaded {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return ctx.internal(e),
        Err(e) => return ctx.internal(e),
    };
    let t_now = now();
    // What waits for this user, by role.
    let tasks: Vec<(String, String)> = files
        .iter()
        .filter(|f| match user.role {
            UserRole::AllianceAdmin => f.stage == Stage::Submitted,
            UserRole::CommitteeMember => {
                f.stage == Stage::UnderReview
                    && f.reviewers.contains(&user.id)
                    && !f.reviews.iter().any(|r| r.reviewer == user.id)
            }
            UserRole::SponsorResearcher => {
                f.sponsor == user.id
                    && matches!(
                        f.stage,
                        Stage::Draft | Stage::Approved | Stage::Feasibility | Stage::SiteSelection
                    )
            }
            UserRole::SiteDataSteward => f
                .invites
                .iter()
                .any(|i| Some(&i.site) == user.site.as_ref() && i.status == InviteStatus::Invited),
            UserRole::SiteInvestigator => {
                f.stage == Stage::Running
                    && f.invites.iter().any(|i| {
                        Some(&i.site) == user.site.as_ref() && i.status == InviteStatus::Accepted
                    })
            }
            UserRole::Auditor => false,
        })
        .map(|f| (f.project.to_string(), f.title.clone()))
        .collect();
    let applied = insts
        .iter()
        .filter(|i| i.status == MemberStatus::Applied)
        .count();
    let by_stage: Vec<Bar> = Stage::ALL
        .iter()
        .map(|s| {
            let n = files.iter().filter(|f| f.stage == *s).count();
            Bar::new(stage_name(lang, *s), n as f64, fmt_int(lang, n as i64))
        })
        .collect();
    let stat = |key: &'static str, n: usize| {
        html! { div.stat { div.n { (fmt_int(lang, n as i64)) } div.muted { (t(lang, key)) } } }
    };
    let body = html! {
        p { (tf(lang, "dashboard.welcome", &[("name", ctx.user.as_ref().map(|u| u.id.as_str()).unwrap_or(""))])) }
        div.grid {
            (stat("dashboard.institutions", insts.iter().filter(|i| i.status == MemberStatus::Approved).count()))
            (stat("dashboard.experts", experts.iter().filter(|e| e.active(t_now)).count()))
            (stat("dashboard.sites", sites.iter().filter(|s| s.public_key.is_some()).count()))
            (stat("dashboard.library", library))
        }
        h2 { (t(lang, "dashboard.my_tasks")) }
        @if tasks.is_empty() && !(user.role == UserRole::AllianceAdmin && applied > 0) {
            p.muted { (t(lang, "dashboard.no_tasks")) }
        } @else {
            ul {
                @if user.role == UserRole::AllianceAdmin && applied > 0 {
                    li { a href="/institutions" { (tf(lang, "dashboard.applications", &[("n", &fmt_int(lang, applied as i64))])) } }
                }
                @for (id, title) in &tasks {
                    @let stage = files.iter().find(|f| f.project.as_str() == id).map(|f| f.stage).unwrap_or(Stage::Draft);
                    li { a href=(format!("/projects/{id}")) { (title) } " " (stage_badge(lang, stage)) }
                }
            }
        }
        h2 { (t(lang, "dashboard.projects_by_stage")) }
        (chart::bars("stages", t(lang, "dashboard.projects_by_stage"), &by_stage))
    };
    ctx.page("dashboard.title").respond(body)
}
