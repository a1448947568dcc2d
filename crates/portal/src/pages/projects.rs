//! Projects: the list, a new project, and the project page with every pipeline action the
//! viewer's role allows in the current stage.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use qiao_hub::model::{Project, Site, User};
use qiao_hub::protocol::{ProjectId, SiteId, UserId, UserRole};
use qiao_hub::util::now;
use qiao_hub::view::JobView;
use qiao_web::i18n::{fmt_date, fmt_datetime, fmt_int, tf};
use qiao_web::layout::{csrf_field, field, select, submit, textarea, FormErrors, InputKind};
use qiao_web::{html, t, Lang, Markup};

use super::common::{errors_of, form_error, stage_badge, stage_name, unprocessable};
use super::{feasibility, guidance, versions};
use crate::alliance::{
    self, Criterion, InviteStatus, LibrarySummary, ProjectFile, ProjectForm, Refusal, Stage,
};
use crate::web::{blocking, redirect_flash, role_key, Ctx, PostForm, Shared};

struct Loaded {
    /// Each project with its hub record and enrolled so far (its recruitment lines' total).
    files: Vec<(ProjectFile, Project, u64)>,
}

fn load_all(portal: &Shared) -> Result<Loaded, qiao_hub::StoreError> {
    let s = portal.hub.store();
    let files = alliance::project_files(s.as_ref())?;
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        if let Some(p) = s.project(&f.project)? {
            let view = alliance::latest_view(s.as_ref(), &f)?;
            let enrolled = alliance::enrolled(&alliance::recruitment_lines(&f, view.as_ref()));
            out.push((f, p, enrolled));
        }
    }
    Ok(Loaded { files: out })
}

fn new_project_form(ctx: &Ctx, values: Option<&PostForm>, errors: &FormErrors) -> Markup {
    let lang = ctx.lang;
    let v = |n: &str| values.map(|f| f.get(n).to_owned()).unwrap_or_default();
    html! {
        h2 { (t(lang, "proj.new")) }
        (form_error(errors))
        form.card method="post" action="/projects" {
            (csrf_field(&ctx.csrf()))
            (field(lang, InputKind::Text, "id", "proj.id", &v("id"), errors))
            (field(lang, InputKind::Text, "title", "proj.title_field", &v("title"), errors))
            (textarea(lang, "summary", "proj.summary", &v("summary"), 4, errors))
            (field(lang, InputKind::Number, "target", "proj.target", &v("target"), errors))
            (submit(lang, "proj.create"))
        }
    }
}

async fn list_page(portal: &Shared, ctx: &Ctx, form: Option<(&PostForm, FormErrors)>) -> Response {
    let user = match ctx.require(&[]) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let lang = ctx.lang;
    let p2 = portal.clone();
    let loaded = match blocking(move || load_all(&p2)).await {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return ctx.internal(e),
        Err(e) => return ctx.internal(e),
    };
    let visible: Vec<&(ProjectFile, Project, u64)> = loaded
        .files
        .iter()
        .filter(|(f, p, _)| alliance::can_see(&user, f, &p.members))
        .collect();
    let body = html! {
        table {
            thead { tr { th { (t(lang, "proj.title_field")) } th { (t(lang, "proj.institution")) } th { (t(lang, "proj.stage")) } th.num { (t(lang, "proj.target")) } th.num { (t(lang, "proj.enrolled")) } th { (t(lang, "proj.created")) } } }
            tbody { @for (f, _, enrolled) in &visible { tr {
                td { a href=(format!("/projects/{}", f.project)) { (f.title) } br; span.muted { (f.project) } }
                td { (f.institution) }
                td { (stage_badge(lang, f.stage)) }
                td.num { (fmt_int(lang, i64::from(f.target))) }
                td.num { (fmt_int(lang, *enrolled as i64)) }
                td { (fmt_date(lang, f.created_at)) }
            } } }
        }
        @if visible.is_empty() { p.muted { (t(lang, "proj.none")) } }
        @if user.role == UserRole::SponsorResearcher {
            @let empty = FormErrors::new();
            (new_project_form(ctx, form.as_ref().map(|(f, _)| *f), form.as_ref().map(|(_, e)| e).unwrap_or(&empty)))
        }
    };
    let r = ctx.page("proj.list_title").respond(body);
    if form.is_some() {
        unprocessable(r)
    } else {
        r
    }
}

/// `GET /projects`.
pub async fn list(State(portal): State<Shared>, ctx: Ctx) -> Response {
    list_page(&portal, &ctx, None).await
}

/// `POST /projects`: a sponsor creates a draft.
pub async fn create(State(portal): State<Shared>, ctx: Ctx, form: PostForm) -> Response {
    let user = match ctx.require(&[UserRole::SponsorResearcher]) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let f = ProjectForm {
        id: form.get("id").into(),
        title: form.get("title").into(),
        summary: form.get("summary").into(),
        target: form.get("target").into(),
    };
    let store = portal.hub.store().clone();
    let r = match blocking(move || alliance::create_project(store.as_ref(), &f, &user, now())).await
    {
        Ok(r) => r,
        Err(e) => return ctx.internal(e),
    };
    match r {
        Ok(p) => redirect_flash(&format!("/projects/{}", p.project), "flash.saved"),
        Err(errs) => match errors_of(&ctx, &errs) {
            Ok(errors) => list_page(&portal, &ctx, Some((&form, errors))).await,
            Err(r) => r,
        },
    }
}

/// Everything the project page shows.
pub(crate) struct Detail {
    pub file: ProjectFile,
    pub project: Project,
    pub criteria: Vec<Criterion>,
    pub sites: Vec<Site>,
    pub committee: Vec<User>,
    pub library: Vec<LibrarySummary>,
    /// Per cohort number: the latest run's job views.
    pub runs: BTreeMap<u32, feasibility::RunViews>,
    /// Per cohort number: the stored definition (shown as text).
    pub definitions: BTreeMap<u32, serde_json::Value>,
    /// The network analyses run from the project.
    pub analyses: super::analyses::Runs,
    /// The review quorum.
    pub quorum: u32,
    /// The expert registry (the reviewer picker's names and expertise).
    pub experts: Vec<alliance::Expert>,
    /// The latest collection of the sites' recruitment counts.
    pub recruitment: Option<JobView>,
}

fn load_detail(portal: &Shared, id: &str) -> Result<Option<Detail>, qiao_hub::StoreError> {
    let s = portal.hub.store();
    let Some(file) = alliance::project_file(s.as_ref(), id)? else {
        return Ok(None);
    };
    let Some(project) = s.project(&file.project)? else {
        return Ok(None);
    };
    let mut runs = BTreeMap::new();
    let mut definitions = BTreeMap::new();
    for c in &file.cohorts {
        if let Some(def) = alliance::cohort_definition(s.as_ref(), &file.project, c.n)? {
            definitions.insert(c.n, def);
        }
        if let Some(run) = c.runs.last() {
            let view = |job| -> Result<Option<JobView>, qiao_hub::StoreError> {
                Ok(match s.job(job)? {
                    Some(rec) => Some(qiao_hub::view::job_view(&rec, &s.results(job)?)),
                    None => None,
                })
            };
            runs.insert(
                c.n,
                feasibility::RunViews {
                    count: view(&run.count_job)?,
                    demographics: view(&run.demographics_job)?,
                    years: match &run.years_job {
                        Some(j) => view(j)?,
                        None => None,
                    },
                },
            );
        }
    }
    let committee = s
        .users()?
        .into_iter()
        .filter(|u| u.role == UserRole::CommitteeMember)
        .collect();
    let library = if attachable(file.stage) {
        alliance::search_library(s.as_ref(), "")?
    } else {
        Vec::new()
    };
    let recruitment = alliance::latest_view(s.as_ref(), &file)?;
    Ok(Some(Detail {
        recruitment,
        analyses: super::analyses::load_runs(s.as_ref(), &file.project)?,
        quorum: alliance::quorum(s.as_ref())?,
        experts: alliance::experts(s.as_ref())?,
        criteria: alliance::criteria(s.as_ref())?,
        sites: s.sites()?,
        committee,
        library,
        runs,
        definitions,
        file,
        project,
    }))
}

/// Whether cohorts may be attached: while drafting (so the reviewers read them), approved, in
/// feasibility.
fn attachable(s: Stage) -> bool {
    matches!(s, Stage::Draft | Stage::Approved | Stage::Feasibility)
}

fn next_stages(file: &ProjectFile, user: &User, member: bool) -> Vec<Stage> {
    Stage::ALL
        .into_iter()
        .filter(|to| {
            let roles = alliance::transition_roles(file.stage, *to);
            roles.contains(&user.role)
                && (user.role != UserRole::SponsorResearcher || member)
                && !matches!(
                    (file.stage, *to),
                    (Stage::Submitted, Stage::UnderReview)
                        | (Stage::UnderReview, Stage::Approved | Stage::Rejected)
                )
        })
        .collect()
}

/// Renders the project page; `form` is the submitted form (name, values, errors) to show
/// again with its errors.
fn render_detail(
    ctx: &Ctx,
    user: &User,
    d: &Detail,
    form: Option<(&str, &PostForm, &FormErrors)>,
) -> Markup {
    let lang = ctx.lang;
    let f = &d.file;
    let member = d.project.members.contains(&user.id);
    let csrf = ctx.csrf();
    let empty = FormErrors::new();
    let errs_for = |name: &str| -> &FormErrors {
        form.filter(|(n, _, _)| *n == name)
            .map(|(_, _, e)| e)
            .unwrap_or(&empty)
    };
    let val = |name: &str, fieldname: &str| -> String {
        form.filter(|(n, _, _)| *n == name)
            .map(|(_, v, _)| v.get(fieldname).to_owned())
            .unwrap_or_default()
    };
    let is_sponsor = user.role == UserRole::SponsorResearcher && member;
    // Recruitment: the sites' released counts of their marks, typed months overriding; the
    // chart and the forecast read the same lines.
    let lines = alliance::recruitment_lines(f, d.recruitment.as_ref());
    let enrolled = alliance::enrolled(&lines);
    let my_invite = user
        .site
        .as_ref()
        .and_then(|s| f.invites.iter().find(|i| &i.site == s));
    let crit_name = |c: &Criterion| {
        if lang == Lang::ZhCn {
            c.zh.clone()
        } else {
            c.en.clone()
        }
    };
    let nexts = next_stages(f, user, member);
    html! {
        section.card {
            dl.facts {
                dt { (t(lang, "proj.id")) } dd { (f.project) }
                dt { (t(lang, "proj.stage")) } dd { (stage_badge(lang, f.stage)) }
                dt { (t(lang, "proj.institution")) } dd { (f.institution) }
                dt { (t(lang, "proj.sponsor")) } dd { (f.sponsor) }
                dt { (t(lang, "proj.target")) } dd { (fmt_int(lang, i64::from(f.target))) }
                dt { (t(lang, "proj.created")) } dd { (fmt_date(lang, f.created_at)) }
            }
            p { (f.summary) }
            (guidance::indicator(lang, &alliance::guide(f, d.quorum, enrolled)))
        }
        @if !nexts.is_empty() {
            h2 { (t(lang, "proj.move")) }
            @let errs = errs_for("transition");
            (form_error(errs))
            form.card method="post" action=(format!("/projects/{}/transition", f.project)) {
                (csrf_field(&csrf))
                (select(lang, "to", "proj.to_stage", &nexts.iter().map(|s| (s.as_str().to_owned(), stage_name(lang, *s))).collect::<Vec<_>>(), &val("transition", "to"), errs))
                (textarea(lang, "comment", "proj.comment", &val("transition", "comment"), 2, errs))
                (submit(lang, "proj.move_submit"))
            }
        }
        // Review: assignment, reviews, decision.
        @if f.stage == Stage::Submitted && user.role == UserRole::AllianceAdmin {
            h2 { (t(lang, "rev.assign")) }
            @let errs = errs_for("assign");
            (form_error(errs))
            form.card method="post" action=(format!("/projects/{}/reviewers", f.project)) {
                (csrf_field(&csrf))
                fieldset {
                    legend { (t(lang, "rev.reviewers")) }
                    @for c in &d.committee {
                        (guidance::reviewer_option(lang, c, d.experts.iter().find(|e| e.user == c.id))) br;
                    }
                    p.muted { (tf(lang, "guide.quorum_hint", &[("quorum", &d.quorum.to_string())])) }
                    @if let Some(e) = errs.get("reviewers") { p.field-error { (e) } }
                }
                (textarea(lang, "comment", "proj.comment", &val("assign", "comment"), 2, errs))
                (submit(lang, "rev.assign_submit"))
            }
        }
        @if !f.reviewers.is_empty() {
            h2 { (t(lang, "rev.title")) }
            table {
                thead { tr { th { (t(lang, "rev.reviewer")) } @for c in &d.criteria { th.num { (crit_name(c)) } } th { (t(lang, "rev.recommend")) } th { (t(lang, "rev.comment")) } } }
                tbody { @for r in &f.reviewers { tr {
                    td { (r) }
                    @match f.reviews.iter().find(|v| &v.reviewer == r) {
                        Some(v) => {
                            @for c in &d.criteria { td.num { (v.scores.get(&c.id).map(|x| x.to_string()).unwrap_or_default()) } }
                            td { (t(lang, if v.recommend { "rev.approve" } else { "rev.reject" })) }
                            td { (v.comment) }
                        }
                        None => { @for _c in &d.criteria { td.num { "–" } } td.muted { (t(lang, "rev.pending")) } td {} }
                    }
                } } }
            }
        }
        @if !f.reviewers.is_empty() && (f.stage == Stage::UnderReview || !f.reviews.is_empty()) {
            (guidance::scores(lang, &alliance::score_summary(f, &d.criteria, d.quorum), &d.criteria))
        }
        @if f.stage == Stage::UnderReview && f.reviewers.contains(&user.id) {
            h2 { (t(lang, "rev.your_review")) }
            @if !f.cohorts.is_empty() {
                p.read-cohorts { (t(lang, "guide.read_cohorts")) " " @for c in &f.cohorts { a href=(format!("#cohort-{}", c.n)) { (c.n) ". " (c.name) } " " } }
            }
            @let errs = errs_for("review");
            (form_error(errs))
            form.card method="post" action=(format!("/projects/{}/review", f.project)) {
                (csrf_field(&csrf))
                @for c in &d.criteria {
                    @let name = format!("score_{}", c.id);
                    div.field { label for=(name) { (crit_name(c)) " (1–" (c.max) ")" }
                        input id=(name) name=(name) type="number" min="1" max=(c.max) value=(val("review", &name)); }
                }
                @if let Some(e) = errs.get("scores") { p.field-error { (e) } }
                (select(lang, "recommend", "rev.recommend", &[("approve".to_owned(), t(lang, "rev.approve").to_owned()), ("reject".to_owned(), t(lang, "rev.reject").to_owned())], &val("review", "recommend"), errs))
                (textarea(lang, "comment", "rev.comment", &val("review", "comment"), 3, errs))
                (submit(lang, "rev.submit"))
            }
        }
        @if f.stage == Stage::UnderReview && matches!(user.role, UserRole::CommitteeMember | UserRole::AllianceAdmin) {
            h2 { (t(lang, "rev.decision")) }
            @let errs = errs_for("decide");
            (form_error(errs))
            form.card method="post" action=(format!("/projects/{}/decide", f.project)) {
                (csrf_field(&csrf))
                (textarea(lang, "comment", "proj.comment", &val("decide", "comment"), 2, errs))
                div.actions {
                    button type="submit" name="decision" value="approve" { (t(lang, "rev.decide_approve")) }
                    button.danger type="submit" name="decision" value="reject" { (t(lang, "rev.decide_reject")) }
                }
            }
        }
        // Feasibility.
        @if !f.cohorts.is_empty() || (is_sponsor && attachable(f.stage)) {
            h2 { (t(lang, "feas.title")) }
            p.muted { (t(lang, "sdc.legend")) }
            @for c in &f.cohorts {
                section.card id=(format!("cohort-{}", c.n)) {
                    h3 { (c.n) ". " (c.name) }
                    (versions::version_links(lang, f.project.as_str(), c))
                    @if let Some(def) = d.definitions.get(&c.n) {
                        details.narrative {
                            summary { (t(lang, "feas.read_definition")) }
                            (crate::pages::library::definition_narrative(lang, &c.name, def))
                        }
                    }
                    @if is_sponsor && attachable(f.stage) {
                        @let name = format!("replace{}", c.n);
                        @let errs = errs_for(&name);
                        details.replace open[form.is_some_and(|(n, _, _)| n == name)] {
                            summary { (t(lang, "ver.replace")) }
                            (form_error(errs))
                            form.card method="post" action=(format!("/projects/{}/cohorts/{}/replace", f.project, c.n)) {
                                (csrf_field(&csrf))
                                (field(lang, InputKind::Text, "name", "feas.name", &val(&name, "name"), errs))
                                (textarea(lang, "definition", "feas.definition", &form.filter(|(n, _, _)| *n == name).map(|(_, v, _)| v.raw("definition").to_owned()).unwrap_or_default(), 8, errs))
                                input type="hidden" name="library" value="";
                                (submit(lang, "ver.replace_submit"))
                            }
                        }
                    }
                    @if is_sponsor && f.stage == Stage::Feasibility {
                        form.inline method="post" action=(format!("/projects/{}/cohorts/{}/run", f.project, c.n)) {
                            (csrf_field(&csrf))
                            (submit(lang, "feas.run"))
                        }
                        @if let Some(e) = errs_for(&format!("run{}", c.n)).get("form") { p.flash.err { (e) } }
                    }
                    @if let Some(run) = c.runs.last() {
                        p.muted { (t(lang, "feas.last_run")) " " (fmt_datetime(lang, run.at)) }
                        details.runs {
                            summary { (tf(lang, "feas.history", &[("runs", &c.runs.len().to_string())])) }
                            ol { @for (k, r) in c.runs.iter().enumerate() { li {
                                (fmt_datetime(lang, r.at)) " · " (tf(lang, "ver.current", &[("v", &r.version.unwrap_or(1).to_string())])) " · "
                                @if !r.data_as_of.is_empty() { span.data-dates { (super::runs::data_dates(lang, r)) } " · " }
                                a href=(format!("/projects/{}/cohorts/{}/results.csv?run={k}", f.project, c.n)) download { (t(lang, "feas.csv")) }
                                @if k > 0 { " · " a.compare href=(format!("/projects/{}/cohorts/{}/compare?a={}&b={k}", f.project, c.n, k - 1)) { (t(lang, "runs.compare_previous")) } }
                            } } }
                            p.muted { (t(lang, "feas.history_note")) }
                        }
                        @if let Some(views) = d.runs.get(&c.n) {
                            (feasibility::render(lang, &format!("c{}", c.n), views, &d.sites, feasibility::Target { target: u64::from(f.target), enrolled, now: run.at }))
                        }
                    } @else {
                        p.muted { (t(lang, "feas.not_run")) }
                    }
                }
            }
            @if is_sponsor && attachable(f.stage) {
                @let errs = errs_for("cohort");
                h3 { (t(lang, "feas.attach")) }
                (form_error(errs))
                form.card method="post" action=(format!("/projects/{}/cohorts", f.project)) {
                    (csrf_field(&csrf))
                    (select(lang, "library", "feas.from_library", &std::iter::once((String::new(), t(lang, "feas.paste_below").to_owned())).chain(d.library.iter().map(|l| (l.id.clone(), format!("{} — {}", l.id, l.name)))).collect::<Vec<_>>(), &val("cohort", "library"), errs))
                    (field(lang, InputKind::Text, "name", "feas.name", &val("cohort", "name"), errs))
                    (textarea(lang, "definition", "feas.definition", &form.filter(|(n, _, _)| *n == "cohort").map(|(_, v, _)| v.raw("definition").to_owned()).unwrap_or_default(), 8, errs))
                    (submit(lang, "feas.attach_submit"))
                }
            }
        }
        (super::analyses::section(lang, &csrf, f, &d.analyses, &d.sites, is_sponsor, form))
        // Site selection.
        @if matches!(f.stage, Stage::SiteSelection | Stage::Running | Stage::Completed) || !f.invites.is_empty() {
            h2 { (t(lang, "sel.title")) }
            table {
                thead { tr { th { (t(lang, "sel.site")) } th { (t(lang, "sel.status")) } th { (t(lang, "sel.reason")) } th { (t(lang, "sel.invited_at")) } } }
                tbody { @for i in &f.invites { tr {
                    td { (i.site) }
                    td { span class=(format!("badge {}", i.status.as_str())) { (qiao_web::i18n::t_dyn(lang, &format!("invite.{}", i.status.as_str()))) } }
                    td { (i.reason.clone().unwrap_or_default()) }
                    td { (fmt_date(lang, i.invited_at)) }
                } } }
            }
            @if is_sponsor && f.stage == Stage::SiteSelection {
                @let errs = errs_for("invite");
                (form_error(errs))
                form.card method="post" action=(format!("/projects/{}/invite", f.project)) {
                    (csrf_field(&csrf))
                    fieldset {
                        legend { (t(lang, "sel.invite")) }
                        @for s in d.sites.iter().filter(|s| !f.invites.iter().any(|i| i.site == s.id)) {
                            label { input type="checkbox" name="sites" value=(s.id); " " (s.name) " (" (s.id) ")" } br;
                        }
                        @if let Some(e) = errs.get("sites") { p.field-error { (e) } }
                    }
                    (submit(lang, "sel.invite_submit"))
                }
            }
            @if let Some(inv) = my_invite.filter(|i| i.status == InviteStatus::Invited && user.role == UserRole::SiteDataSteward) {
                @let errs = errs_for("answer");
                h3 { (t(lang, "sel.answer")) " · " (inv.site) }
                (form_error(errs))
                form.card method="post" action=(format!("/projects/{}/answer", f.project)) {
                    (csrf_field(&csrf))
                    (textarea(lang, "reason", "sel.reason", &val("answer", "reason"), 2, errs))
                    div.actions {
                        button type="submit" name="decision" value="accept" { (t(lang, "sel.accept")) }
                        button.danger type="submit" name="decision" value="decline" { (t(lang, "sel.decline")) }
                    }
                }
            }
        }
        // Running.
        @if matches!(f.stage, Stage::Running | Stage::Completed) {
            h2 { (t(lang, "run.title")) }
            (feasibility::enrollment_chart(lang, &lines, f.target))
            p { a #reports-csv href=(format!("/projects/{}/reports.csv", f.project)) download { (t(lang, "runs.reports_csv")) } }
            (super::recruitment::section(lang, &csrf, f, d.recruitment.as_ref(), &lines, is_sponsor, errs_for("recruitment")))
            @if let Some(inv) = my_invite.filter(|i| i.status == InviteStatus::Accepted && user.role == UserRole::SiteInvestigator) {
                p { a.button #open-prescreen href=(format!("/sites/{}/open?next={}", inv.site, qiao_web::layout::url_encode("/prescreen"))) { (qiao_web::tf(lang, "open.prescreen", &[("site", inv.site.as_str())])) } }
            }
            @if f.stage == Stage::Running && my_invite.is_some_and(|i| i.status == InviteStatus::Accepted) && matches!(user.role, UserRole::SiteDataSteward | UserRole::SiteInvestigator) {
                @let errs = errs_for("report");
                (form_error(errs))
                form.card method="post" action=(format!("/projects/{}/report", f.project)) {
                    (csrf_field(&csrf))
                    (field(lang, InputKind::Text, "month", "run.month_hint", &val("report", "month"), errs))
                    (field(lang, InputKind::Number, "screened", "run.screened", &val("report", "screened"), errs))
                    (field(lang, InputKind::Number, "enrolled", "run.enrolled", &val("report", "enrolled"), errs))
                    (submit(lang, "run.report_submit"))
                }
            }
        }
        h2 { (t(lang, "proj.history")) }
        table {
            thead { tr { th { (t(lang, "proj.when")) } th { (t(lang, "proj.change")) } th { (t(lang, "proj.by")) } th { (t(lang, "proj.comment")) } } }
            tbody { @for h in f.history.iter().rev() { tr {
                td { (fmt_datetime(lang, h.at)) }
                td { (stage_name(lang, h.from)) " → " (stage_name(lang, h.to)) }
                td { (h.by) " · " (t(lang, role_key(h.role))) }
                td { (h.comment) }
            } } }
        }
    }
}

pub(crate) async fn detail_page(
    portal: &Shared,
    ctx: &Ctx,
    id: &str,
    form: Option<(&str, &PostForm, FormErrors)>,
) -> Response {
    let user = match ctx.require(&[]) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let p2 = portal.clone();
    let id2 = id.to_owned();
    let d = match blocking(move || load_detail(&p2, &id2)).await {
        Ok(Ok(Some(d))) => d,
        Ok(Ok(None)) => return ctx.not_found(),
        Ok(Err(e)) => return ctx.internal(e),
        Err(e) => return ctx.internal(e),
    };
    if !alliance::can_see(&user, &d.file, &d.project.members) {
        return ctx.forbidden();
    }
    let body = render_detail(ctx, &user, &d, form.as_ref().map(|(n, v, e)| (*n, *v, e)));
    let mut page = ctx.page("proj.title");
    page.title = format!("{} · {}", d.file.title, page.title);
    let r = page.respond(body);
    if form.is_some() {
        unprocessable(r)
    } else {
        r
    }
}

/// `GET /projects/{id}`.
pub async fn detail(State(portal): State<Shared>, ctx: Ctx, Path(id): Path<String>) -> Response {
    detail_page(&portal, &ctx, &id, None).await
}

/// What a project POST does.
enum Action {
    Transition,
    Assign,
    Review,
    Decide,
    Cohort,
    Replace(u32),
    Run(u32),
    Invite,
    Answer,
    Report,
    Recruitment,
}

impl Action {
    fn form_name(&self) -> String {
        match self {
            Action::Transition => "transition".into(),
            Action::Assign => "assign".into(),
            Action::Review => "review".into(),
            Action::Decide => "decide".into(),
            Action::Cohort => "cohort".into(),
            Action::Replace(n) => format!("replace{n}"),
            Action::Run(n) => format!("run{n}"),
            Action::Invite => "invite".into(),
            Action::Answer => "answer".into(),
            Action::Report => "report".into(),
            Action::Recruitment => "recruitment".into(),
        }
    }
}

fn perform(
    portal: &Shared,
    action: &Action,
    id: &ProjectId,
    form: &PostForm,
    user: &User,
) -> Result<(), Vec<Refusal>> {
    let s = portal.hub.store().as_ref();
    let t = now();
    let one = |r: Result<ProjectFile, Refusal>| r.map(|_| ()).map_err(|e| vec![e]);
    match action {
        Action::Transition => match Stage::parse(form.get("to")) {
            Some(to) => one(alliance::transition(
                s,
                id,
                to,
                form.get("comment"),
                user,
                t,
            )),
            None => Err(vec![Refusal::Field {
                field: "to",
                key: "form.err_choice",
                args: Vec::new(),
            }]),
        },
        Action::Assign => {
            let ids: Vec<UserId> = form
                .all("reviewers")
                .into_iter()
                .filter_map(|r| UserId::new(r.to_owned()).ok())
                .collect();
            one(alliance::assign_reviewers(
                s,
                id,
                &ids,
                form.get("comment"),
                user,
                t,
            ))
        }
        Action::Review => {
            let scores: BTreeMap<String, String> = alliance::criteria(s)
                .map_err(|e| vec![e.into()])?
                .into_iter()
                .map(|c| {
                    (
                        c.id.clone(),
                        form.get(&format!("score_{}", c.id)).to_owned(),
                    )
                })
                .collect();
            alliance::submit_review(
                s,
                id,
                &scores,
                form.get("recommend"),
                form.get("comment"),
                user,
                t,
            )
            .map(|_| ())
        }
        Action::Decide => one(alliance::decide_project(
            s,
            id,
            form.get("decision") == "approve",
            form.get("comment"),
            user,
            t,
        )),
        Action::Cohort => alliance::attach_cohort(
            s,
            id,
            form.get("name"),
            form.raw("definition"),
            form.get("library"),
            user,
            t,
        )
        .map(|_| ()),
        Action::Replace(n) => alliance::replace_cohort(
            s,
            id,
            *n,
            form.get("name"),
            form.raw("definition"),
            form.get("library"),
            user,
            t,
        )
        .map(|_| ()),
        Action::Run(n) => {
            let dates = alliance::data_dates(&portal.hub.sites_seen());
            let r = alliance::run_feasibility(s, id, *n, user, &dates, t)
                .map(|_| ())
                .map_err(|e| vec![e]);
            if r.is_ok() {
                portal.hub.notify_jobs();
            }
            r
        }
        Action::Invite => {
            let sites: Vec<SiteId> = form
                .all("sites")
                .into_iter()
                .filter_map(|x| x.parse().ok())
                .collect();
            one(alliance::invite_sites(s, id, &sites, user, t))
        }
        Action::Answer => one(alliance::answer_invite(
            s,
            id,
            form.get("decision") == "accept",
            form.get("reason"),
            user,
            t,
        )),
        Action::Recruitment => {
            let r = alliance::collect_recruitment(s, id, user, t)
                .map(|_| ())
                .map_err(|e| vec![e]);
            if r.is_ok() {
                portal.hub.notify_jobs();
            }
            r
        }
        Action::Report => alliance::report_enrollment(
            s,
            id,
            form.get("month"),
            form.get("screened"),
            form.get("enrolled"),
            user,
            t,
        )
        .map(|_| ()),
    }
}

async fn act(portal: Shared, ctx: Ctx, id: String, form: PostForm, action: Action) -> Response {
    let (user, pid) = match ctx.require_project(&id) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let p2 = portal.clone();
    let (r, form, action) = match blocking(move || {
        let r = perform(&p2, &action, &pid, &form, &user);
        (r, form, action)
    })
    .await
    {
        Ok(x) => x,
        Err(e) => return ctx.internal(e),
    };
    match r {
        Ok(()) => redirect_flash(&format!("/projects/{id}"), "flash.saved"),
        Err(errs) => match errors_of(&ctx, &errs) {
            Ok(errors) => {
                detail_page(
                    &portal,
                    &ctx,
                    &id,
                    Some((&action.form_name(), &form, errors)),
                )
                .await
            }
            Err(r) => r,
        },
    }
}

macro_rules! project_action {
    ($name:ident, $action:expr) => {
        /// A project page form's POST.
        pub async fn $name(
            State(portal): State<Shared>,
            ctx: Ctx,
            Path(id): Path<String>,
            form: PostForm,
        ) -> Response {
            act(portal, ctx, id, form, $action).await
        }
    };
}

project_action!(transition, Action::Transition);
project_action!(assign, Action::Assign);
project_action!(review, Action::Review);
project_action!(decide, Action::Decide);
project_action!(attach, Action::Cohort);
project_action!(invite, Action::Invite);
project_action!(answer, Action::Answer);
project_action!(report, Action::Report);
project_action!(recruitment, Action::Recruitment);

/// `POST /projects/{id}/cohorts/{n}/replace`: a new version of the definition.
pub async fn replace(
    State(portal): State<Shared>,
    ctx: Ctx,
    Path((id, n)): Path<(String, u32)>,
    form: PostForm,
) -> Response {
    act(portal, ctx, id, form, Action::Replace(n)).await
}

/// `POST /projects/{id}/cohorts/{n}/run`.
pub async fn run(
    State(portal): State<Shared>,
    ctx: Ctx,
    Path((id, n)): Path<(String, u32)>,
    form: PostForm,
) -> Response {
    act(portal, ctx, id, form, Action::Run(n)).await
}

/// `POST /projects/{id}/analyses`: launches the form's analysis (`kind`), back to the project
/// page; a refusal shows the page again with the form's errors.
pub async fn launch_analysis(
    State(portal): State<Shared>,
    ctx: Ctx,
    Path(id): Path<String>,
    form: PostForm,
) -> Response {
    let (user, pid) = match ctx.require_project(&id) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let kind = match form.get("kind") {
        "characterization" => "characterization",
        "incidence" => "incidence",
        "survival" => "survival",
        "regression" => "regression",
        _ => return ctx.not_found(),
    };
    let p2 = portal.clone();
    let (r, form) = match blocking(move || {
        let s = p2.hub.store();
        let r = if kind == "regression" {
            let config = p2.hub.config();
            alliance::run_regression(
                s.as_ref(),
                &config.quotas,
                config.floors,
                &pid,
                &alliance::RegressionForm {
                    model: form.get("model"),
                    target: form.get("target"),
                    outcome: form.get("outcome"),
                    comparator: form.get("comparator"),
                    tar: form.get("tar"),
                    covariates: form.get("covariates"),
                },
                &user,
                now(),
            )
        } else if kind == "survival" {
            alliance::run_survival(
                s.as_ref(),
                &pid,
                &alliance::SurvivalForm {
                    target: form.get("target"),
                    outcome: form.get("outcome"),
                    comparator: form.get("comparator"),
                    tar: form.get("tar"),
                    grid_days: form.get("grid_days"),
                    horizon_days: form.get("horizon_days"),
                },
                &user,
                now(),
            )
        } else if kind == "characterization" {
            alliance::run_characterization(
                s.as_ref(),
                &pid,
                &alliance::CharacterizationForm {
                    target: form.get("target"),
                    comparator: form.get("comparator"),
                    analyses: form.get("analyses"),
                    covariates: form.get("covariates"),
                },
                &user,
                now(),
            )
        } else {
            alliance::run_incidence(
                s.as_ref(),
                &pid,
                &alliance::IncidenceForm {
                    target: form.get("target"),
                    outcome: form.get("outcome"),
                    tars: form.raw("tars"),
                    clean_window: form.get("clean_window"),
                    strata: form.all("strata"),
                    age_breaks: form.get("age_breaks"),
                },
                &user,
                now(),
            )
        };
        if r.is_ok() {
            p2.hub.notify_jobs();
        }
        (r, form)
    })
    .await
    {
        Ok(x) => x,
        Err(e) => return ctx.internal(e),
    };
    match r {
        Ok(run) => redirect_flash(&format!("/projects/{id}/analyses/{}", run.n), "flash.saved"),
        Err(errs) => match errors_of(&ctx, &errs) {
            Ok(errors) => detail_page(&portal, &ctx, &id, Some((kind, &form, errors))).await,
            Err(r) => r,
        },
    }
}
