//! Network analyses of a project (issue 15): the project page's section (the forms that launch a
//! characterization or an incidence analysis, and the runs with each site's status), the result
//! page of a run (`GET /projects/{id}/analyses/{n}`, `?site=ID` for one site, else pooled) and its
//! tables as CSV (`GET /projects/{id}/analyses/{n}/{table}.csv`).
//!
//! Each analysis kind is one module here with three functions — `render` (the result page's
//! body), `tables` (its CSV tables) and the form in [`section`]; survival (Kaplan–Meier curves
//! with the at-risk table and the log-rank test, issue 16) is the third. Regression (issue 16)
//! is the fourth, and the one that is not a job: a multi-round run at the hub, whose page shows
//! the run's progress (and resumes it when failed: `POST …/{n}/resume`), then the coefficients
//! and a forest plot of the odds or hazard ratios on a log axis (`qiao_web::chart::ratio_forest`).

mod characterization;
mod incidence;
mod names;
mod regression;
mod survival;

pub use regression::resume;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use qiao_hub::model::{Site, User};
use qiao_hub::protocol::{DisclosureSummary, ProjectId};

use qiao_hub::view::{JobView, SiteJobView, TotalValue};
use qiao_web::i18n::{fmt_datetime, fmt_decimal, t_dyn, tf};
use qiao_web::layout::{csrf_field, field, select, submit, textarea, FormErrors, InputKind};
use qiao_web::{html, t, Lang, Markup};
use serde::Deserialize;

use super::common::form_error;
use super::feasibility::{status_text, uncertain};
use crate::alliance::{self, AnalysisKind, AnalysisRun, CohortRef, ProjectFile, Stage};
use crate::web::{blocking, Ctx, PostForm, Shared};

pub(crate) use names::Names;

/// A project's analysis runs with their jobs' views, for the project page.
pub(crate) type Runs = Vec<(AnalysisRun, Option<JobView>)>;

/// The runs of a project with their views.
pub(crate) fn load_runs(
    store: &dyn qiao_hub::HubStore,
    id: &ProjectId,
) -> Result<Runs, qiao_hub::StoreError> {
    let mut out = Vec::new();
    for r in alliance::analysis_runs(store, id)? {
        let job = match &r.run {
            Some(run) => regression::current_job(store, run)?.unwrap_or(r.job),
            None => r.job,
        };
        let view = match store.job(&job)? {
            Some(rec) => Some(qiao_hub::view::job_view(&rec, &store.results(&job)?)),
            None => None,
        };
        out.push((r, view));
    }
    Ok(out)
}

fn cohort_name(cohorts: &[CohortRef], n: u32) -> String {
    cohorts
        .iter()
        .find(|c| c.n == n)
        .map_or_else(|| n.to_string(), |c| format!("{n}. {}", c.name))
}

/// What a run computes, in words: "Characterization of 1. X vs 2. Y".
fn run_title(lang: Lang, f: &ProjectFile, r: &AnalysisRun) -> String {
    let target = cohort_name(&f.cohorts, r.target);
    match r.kind {
        AnalysisKind::Characterization { comparator: None } => {
            tf(lang, "ana.title_char", &[("target", &target)])
        }
        AnalysisKind::Characterization {
            comparator: Some(c),
        } => tf(
            lang,
            "ana.title_char_vs",
            &[
                ("target", &target),
                ("comparator", &cohort_name(&f.cohorts, c)),
            ],
        ),
        AnalysisKind::Incidence { outcome } => tf(
            lang,
            "ana.title_inc",
            &[
                ("target", &target),
                ("outcome", &cohort_name(&f.cohorts, outcome)),
            ],
        ),
        AnalysisKind::Survival {
            outcome,
            comparator,
        } => {
            let outcome = cohort_name(&f.cohorts, outcome);
            match comparator {
                None => tf(
                    lang,
                    "ana.title_surv",
                    &[("target", &target), ("outcome", &outcome)],
                ),
                Some(c) => tf(
                    lang,
                    "ana.title_surv_vs",
                    &[
                        ("target", &target),
                        ("outcome", &outcome),
                        ("comparator", &cohort_name(&f.cohorts, c)),
                    ],
                ),
            }
        }
        AnalysisKind::Regression {
            model,
            outcome,
            comparator,
            ..
        } => {
            let model = regression::model_name(lang, model);
            let outcome = cohort_name(&f.cohorts, outcome);
            match comparator {
                None => tf(
                    lang,
                    "ana.title_reg",
                    &[("model", model), ("target", &target), ("outcome", &outcome)],
                ),
                Some(c) => tf(
                    lang,
                    "ana.title_reg_vs",
                    &[
                        ("model", model),
                        ("target", &target),
                        ("outcome", &outcome),
                        ("comparator", &cohort_name(&f.cohorts, c)),
                    ],
                ),
            }
        }
    }
}

fn site_name(sites: &[Site], id: &str) -> String {
    sites
        .iter()
        .find(|s| s.id.as_str() == id)
        .map_or_else(|| id.to_owned(), |s| s.name.clone())
}

/// Each site's status for a run.
fn statuses(lang: Lang, view: &JobView, sites: &[Site]) -> Markup {
    html! {
        ul.statuses { @for s in &view.sites {
            @let name = site_name(sites, s.site.as_str());
            li { (name) ": " (status_text(lang, s, &name)) }
        } }
    }
}

/// One launch form of the section, folded unless it is the refused submission shown again:
/// (`kind`, its summary's key, its button's key), the form's errors and its fields.
fn launch_form(
    lang: Lang,
    csrf: &str,
    f: &ProjectFile,
    form: Option<(&str, &PostForm, &FormErrors)>,
    (kind, summary_key, submit_key): (&str, &'static str, &'static str),
    errs: &FormErrors,
    fields: Markup,
) -> Markup {
    html! {
        details.card open[form.is_some_and(|(n, _, _)| n == kind)] {
            summary { (t(lang, summary_key)) }
            (form_error(errs))
            form method="post" action=(format!("/projects/{}/analyses", f.project)) {
                (csrf_field(csrf))
                input type="hidden" name="kind" value=(kind);
                (fields)
                (submit(lang, submit_key))
            }
        }
    }
}

/// The project page's section: the runs and, for the project's sponsors in the stages that
/// run queries, the two launch forms. `form` is a refused submission to show again.
pub(crate) fn section(
    lang: Lang,
    csrf: &str,
    f: &ProjectFile,
    runs: &Runs,
    sites: &[Site],
    is_sponsor: bool,
    form: Option<(&str, &PostForm, &FormErrors)>,
) -> Markup {
    let can_run = is_sponsor
        && !f.cohorts.is_empty()
        && matches!(
            f.stage,
            Stage::Feasibility | Stage::SiteSelection | Stage::Running
        );
    if runs.is_empty() && !can_run {
        return html! {};
    }
    let empty = FormErrors::new();
    let errs_for = |name: &str| -> &FormErrors {
        form.filter(|(n, _, _)| *n == name)
            .map(|(_, _, e)| e)
            .unwrap_or(&empty)
    };
    let val = |name: &str, field: &str, default: &str| -> String {
        form.filter(|(n, _, _)| *n == name)
            .map_or_else(|| default.to_owned(), |(_, v, _)| v.get(field).to_owned())
    };
    let cohorts: Vec<(String, String)> = f
        .cohorts
        .iter()
        .map(|c| (c.n.to_string(), format!("{}. {}", c.n, c.name)))
        .collect();
    let optional: Vec<(String, String)> =
        std::iter::once((String::new(), t(lang, "ana.none").to_owned()))
            .chain(cohorts.iter().cloned())
            .collect();
    let checked = |name: &str, v: &str| -> bool {
        form.filter(|(n, _, _)| *n == name)
            .is_some_and(|(_, f, _)| f.all("strata").contains(&v))
    };
    html! {
        h2 id="analyses" { (t(lang, "ana.section")) }
        p.muted { (t(lang, "ana.intro")) }
        @if !runs.is_empty() {
            table.analyses {
                thead { tr { th { "#" } th { (t(lang, "ana.analysis")) } th { (t(lang, "ana.run_at")) } th { (t(lang, "ana.site_status")) } th {} } }
                tbody { @for (r, v) in runs { tr {
                    td { (r.n) }
                    td { (run_title(lang, f, r)) }
                    td { (fmt_datetime(lang, r.at)) }
                    td { @if let Some(v) = v { (statuses(lang, v, sites)) } }
                    td { a href=(format!("/projects/{}/analyses/{}", f.project, r.n)) { (t(lang, "ana.open")) } }
                } } }
            }
        }
        @if can_run {
            @let errs = errs_for("characterization");
            (launch_form(lang, csrf, f, form, ("characterization", "ana.char_form", "ana.run_char"), errs, html! {
                (select(lang, "target", "ana.target", &cohorts, &val("characterization", "target", ""), errs))
                (select(lang, "comparator", "ana.comparator", &optional, &val("characterization", "comparator", ""), errs))
                (field(lang, InputKind::Text, "analyses", "ana.analyses", &val("characterization", "analyses", ""), errs))
                (textarea(lang, "covariates", "ana.covariates", &val("characterization", "covariates", ""), 2, errs))
            }))
            @let errs = errs_for("incidence");
            (launch_form(lang, csrf, f, form, ("incidence", "ana.inc_form", "ana.run_inc"), errs, html! {
                (select(lang, "target", "ana.target", &cohorts, &val("incidence", "target", ""), errs))
                (select(lang, "outcome", "ana.outcome", &cohorts, &val("incidence", "outcome", ""), errs))
                (textarea(lang, "tars", "ana.tars", &val("incidence", "tars", "start+0:end+0"), 2, errs))
                (field(lang, InputKind::Number, "clean_window", "ana.clean_window", &val("incidence", "clean_window", "0"), errs))
                fieldset {
                    legend { (t(lang, "ana.strata")) }
                    @for (v, key) in [("age", "ana.by_age"), ("gender", "ana.by_gender"), ("year", "ana.by_year")] {
                        label { input type="checkbox" name="strata" value=(v) checked[checked("incidence", v)]; " " (t_dyn(lang, key)) } " "
                    }
                    @if let Some(e) = errs.get("strata") { p.field-error { (e) } }
                }
                (field(lang, InputKind::Text, "age_breaks", "ana.age_breaks", &val("incidence", "age_breaks", ""), errs))
            }))
            @let errs = errs_for("survival");
            (launch_form(lang, csrf, f, form, ("survival", "ana.surv_form", "ana.run_surv"), errs, html! {
                (select(lang, "target", "ana.target", &cohorts, &val("survival", "target", ""), errs))
                (select(lang, "comparator", "ana.comparator", &optional, &val("survival", "comparator", ""), errs))
                (select(lang, "outcome", "ana.outcome", &cohorts, &val("survival", "outcome", ""), errs))
                (field(lang, InputKind::Text, "tar", "ana.surv_tar", &val("survival", "tar", "start+0:obs_end"), errs))
                (field(lang, InputKind::Number, "grid_days", "ana.grid_days", &val("survival", "grid_days", "30"), errs))
                (field(lang, InputKind::Number, "horizon_days", "ana.horizon_days", &val("survival", "horizon_days", "3650"), errs))
            }))
            @let errs = errs_for("regression");
            (launch_form(lang, csrf, f, form, ("regression", "ana.reg_form", "ana.run_reg"), errs, html! {
                (select(lang, "model", "ana.model", &regression::models(lang), &val("regression", "model", "cox"), errs))
                (select(lang, "target", "ana.target", &cohorts, &val("regression", "target", ""), errs))
                (select(lang, "comparator", "ana.comparator", &optional, &val("regression", "comparator", ""), errs))
                (select(lang, "outcome", "ana.outcome", &cohorts, &val("regression", "outcome", ""), errs))
                (field(lang, InputKind::Text, "tar", "ana.surv_tar", &val("regression", "tar", "start+0:obs_end"), errs))
                (field(lang, InputKind::Text, "covariates", "ana.reg_covariates", &val("regression", "covariates", "age, gender"), errs))
            }))
        }
    }
}

/// Which part of a result: one site (`?site=ID`), else pooled; and the table controls.
#[derive(Deserialize, Default)]
pub struct ResultQuery {
    /// One site's results.
    pub site: Option<String>,
    /// Search text (covariate names and ids).
    pub q: Option<String>,
    /// Hide covariates under this prevalence, in percent (default 1).
    pub min: Option<f64>,
    /// Sort: `smd` (|SMD|, default with a comparator), `prevalence`, `id`.
    pub sort: Option<String>,
}

/// Everything a result page or CSV needs.
pub(crate) struct Loaded {
    pub file: ProjectFile,
    pub run: AnalysisRun,
    pub view: JobView,
    pub sites: Vec<Site>,
    pub names: Names,
    /// A regression's run at the hub.
    pub regression: Option<qiao_hub::service::runs::RunRecord>,
}

async fn load(portal: &Shared, ctx: &Ctx, id: String, n: u32) -> Result<(User, Loaded), Response> {
    let user = ctx.require(&[])?.clone();
    let p = portal.clone();
    let loaded = blocking(move || -> Result<_, qiao_hub::StoreError> {
        let s = p.hub.store();
        let Some(file) = alliance::project_file(s.as_ref(), &id)? else {
            return Ok(None);
        };
        let Some(project) = s.project(&file.project)? else {
            return Ok(None);
        };
        let Some(run) = alliance::analysis_run(s.as_ref(), &file.project, n)? else {
            return Ok(Some((file, project.members, None)));
        };
        // A regression: its run (failed here when its round is past the deadline, as the
        // hub's API does) and the current round's job.
        let regression = match &run.run {
            Some(id) => qiao_hub::service::runs::get(s.as_ref(), id, qiao_hub::util::now())?,
            None => None,
        };
        let job = regression
            .as_ref()
            .and_then(|r| r.current())
            .map_or(run.job, |r| r.job_id);
        let Some(rec) = s.job(&job)? else {
            return Ok(Some((file, project.members, None)));
        };
        let view = qiao_hub::view::job_view(&rec, &s.results(&job)?);
        let mut defs = Vec::new();
        for c in &file.cohorts {
            if let Some(d) = alliance::cohort_definition(s.as_ref(), &file.project, c.n)? {
                defs.push(d);
            }
        }
        let names = Names::from_definitions(&defs);
        Ok(Some((
            file,
            project.members,
            Some((run, view, s.sites()?, names, regression)),
        )))
    })
    .await;
    let (file, members, rest) = match loaded {
        Ok(Ok(Some(x))) => x,
        Ok(Ok(None)) => return Err(ctx.not_found()),
        Ok(Err(e)) => return Err(ctx.internal(e)),
        Err(e) => return Err(ctx.internal(e)),
    };
    if !alliance::can_see(&user, &file, &members) {
        return Err(ctx.forbidden());
    }
    let Some((run, view, sites, names, regression)) = rest else {
        return Err(ctx.not_found());
    };
    Ok((
        user,
        Loaded {
            file,
            run,
            view,
            sites,
            names,
            regression,
        },
    ))
}

/// The part of a result shown: pooled, or one site's answer.
pub(crate) enum Scope<'a> {
    Pooled,
    Site(&'a SiteJobView),
}

/// The links between the pooled result and each site's.
fn scope_nav(lang: Lang, base: &str, l: &Loaded, site: Option<&str>) -> Markup {
    html! {
        nav.scopes aria-label=(t(lang, "ana.scope")) {
            @if site.is_none() { strong { (t(lang, "ana.pooled")) } } @else { a href=(base) { (t(lang, "ana.pooled")) } }
            @for s in &l.view.sites {
                " · "
                @let name = site_name(&l.sites, s.site.as_str());
                @if site == Some(s.site.as_str()) { strong { (name) } } @else { a href=(format!("{base}?site={}", s.site)) { (name) } }
            }
        }
    }
}

/// What the sites' disclosure control did to the numbers of this result, in words: the
/// threshold, the noise and the budget charged, per site that answered.
pub(crate) fn disclosure_note(
    lang: Lang,
    view: &JobView,
    sites: &[Site],
    only: Option<&str>,
) -> Markup {
    let summaries: Vec<(String, &DisclosureSummary)> = view
        .sites
        .iter()
        .filter(|s| only.is_none_or(|o| o == s.site.as_str()))
        .filter_map(|s| {
            Some((
                site_name(sites, s.site.as_str()),
                s.payload.as_ref()?.disclosure(),
            ))
        })
        .collect();
    html! {
        ul.disclosure { @for (name, d) in summaries {
            li {
                (name) ": " (tf(lang, "ana.sdc_threshold", &[("n", &d.min_cell_count.to_string())]))
                @if let Some(o) = &d.obfuscation { "; " (tf(lang, "ana.sdc_obfuscation", &[("bin", &o.bin.to_string()), ("sigma", &fmt_decimal(lang, o.sigma, 1)), ("clamp", &fmt_decimal(lang, o.clamp, 0))])) }
                @if let Some(dp) = &d.dp { "; " (tf(lang, "ana.sdc_dp", &[("sigma", &fmt_decimal(lang, dp.sigma, 2)), ("rho", &format!("{:.4}", dp.rho_spent))])) }
                @if d.obfuscation.is_none() && d.dp.is_none() { "; " (t(lang, "ana.sdc_no_noise")) }
            }
        } }
    }
}

/// How many of `values` a site withheld (some site below its threshold) or noised: the note a
/// table or chart carries.
pub(crate) fn controlled_note<'a>(
    lang: Lang,
    values: impl Iterator<Item = &'a TotalValue>,
) -> Markup {
    let (mut withheld, mut noised) = (0usize, 0usize);
    for v in values {
        if v.suppressed_sites > 0 {
            withheld += 1;
        } else if !v.exact {
            noised += 1;
        }
    }
    html! {
        p.muted.controlled {
            (tf(lang, "ana.note_withheld", &[("n", &withheld.to_string())])) " "
            (tf(lang, "ana.note_noised", &[("n", &noised.to_string())]))
        }
    }
}

/// A value in the portal's one notation, with the † of released numbers.
pub(crate) fn shown(lang: Lang, v: &TotalValue) -> String {
    format!("{}†", uncertain(lang, v).1)
}

/// A network sum as the hub's total value (the same fields).
pub(crate) fn total(s: &qiao_analysis::network::Sum) -> TotalValue {
    TotalValue {
        display: s.display.clone(),
        point_sum: s.point_sum,
        low: s.low,
        high: s.high,
        exact: s.exact,
        sites: s.sites,
        suppressed_sites: s.suppressed_sites,
    }
}

/// `GET /projects/{id}/analyses/{n}`.
pub async fn result_page(
    State(portal): State<Shared>,
    ctx: Ctx,
    Path((id, n)): Path<(String, u32)>,
    Query(q): Query<ResultQuery>,
) -> Response {
    let (user, l) = match load(&portal, &ctx, id, n).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let lang = ctx.lang;
    let site = q.site.as_deref().filter(|s| !s.is_empty());
    let scope = match site {
        None => Scope::Pooled,
        Some(s) => match l.view.sites.iter().find(|x| x.site.as_str() == s) {
            Some(v) => Scope::Site(v),
            None => return ctx.not_found(),
        },
    };
    let base = format!("/projects/{}/analyses/{}", l.file.project, l.run.n);
    let body = match l.run.kind {
        AnalysisKind::Characterization { .. } => {
            characterization::render(lang, &base, &l, &scope, &q)
        }
        AnalysisKind::Incidence { .. } => incidence::render(lang, &base, &l, &scope),
        AnalysisKind::Survival { .. } => survival::render(lang, &base, &l, &scope),
        AnalysisKind::Regression { .. } => regression::render(lang, &base, &l, &user, &ctx.csrf()),
    };
    // A regression's sites answer rounds, not results of their own: no per-site view.
    let per_site = !matches!(l.run.kind, AnalysisKind::Regression { .. });
    let mut page = ctx.page("ana.result_title");
    let title = run_title(lang, &l.file, &l.run);
    page.title = format!("{title} · {}", l.file.title);
    page.respond(html! {
        p { a href=(format!("/projects/{}#analyses", l.file.project)) { "← " (l.file.title) } }
        h2 { (title) }
        p.muted { (t(lang, "ana.run_at")) " " (fmt_datetime(lang, l.run.at)) " · " (tf(lang, "ana.run_by", &[("user", l.run.by.as_str())])) }
        (statuses(lang, &l.view, &l.sites))
        @if per_site { (scope_nav(lang, &base, &l, site)) }
        h3 { (t(lang, "ana.sdc")) }
        (disclosure_note(lang, &l.view, &l.sites, site))
        p.muted { (t(lang, "sdc.legend")) }
        (body)
    })
}

/// `GET /projects/{id}/analyses/{n}/{table}` (`covariates.csv`, `continuous.csv`,
/// `incidence.csv`, `km.csv`, `coefficients.csv`): the table for the pooled result and every site, one row per value.
pub async fn csv(
    State(portal): State<Shared>,
    ctx: Ctx,
    Path((id, n, table)): Path<(String, u32, String)>,
) -> Response {
    let (_, l) = match load(&portal, &ctx, id, n).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let rows = match (&l.run.kind, table.as_str()) {
        (AnalysisKind::Characterization { .. }, "covariates.csv") => {
            characterization::covariates_csv(&l)
        }
        (AnalysisKind::Characterization { .. }, "continuous.csv") => {
            characterization::continuous_csv(&l)
        }
        (AnalysisKind::Incidence { .. }, "incidence.csv") => incidence::rows_csv(&l),
        (AnalysisKind::Survival { .. }, "km.csv") => survival::km_csv(&l),
        (AnalysisKind::Regression { .. }, "coefficients.csv") => regression::coefficients_csv(&l),
        _ => return ctx.not_found(),
    };
    let text = match write_csv(rows) {
        Ok(t) => t,
        Err(e) => return ctx.internal(e),
    };
    super::common::csv_attachment(
        text,
        &format!("{}-analysis{}-{table}", l.file.project, l.run.n),
    )
}

/// CSV text of a header row and the rows.
fn write_csv(rows: Vec<Vec<String>>) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.write_record(&r)?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A float for CSV (full precision; empty when absent).
pub(crate) fn num(x: Option<f64>) -> String {
    x.filter(|v| v.is_finite())
        .map_or_else(String::new, |v| v.to_string())
}

/// A total's columns in CSV: shown (the one notation), point, low, high.
pub(crate) fn total_cols(v: &TotalValue) -> [String; 4] {
    [
        uncertain(Lang::En, v).1,
        v.point_sum.to_string(),
        v.low.to_string(),
        v.high.map_or_else(String::new, |h| h.to_string()),
    ]
}
