//! The steward's and the investigator's pages.

use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use qiao_disclosure::ReleaseMode;
use qiao_protocol::{JobId, QueryType};
use qiao_web::i18n::{fmt_datetime, fmt_int};
use qiao_web::layout::{self, Flash, FormErrors, InputKind};
use qiao_web::{html, t, tf, Lang, Markup};
use serde::Deserialize;

use super::{csrf_checked, require, Signed, Ui};
use crate::audit;
use crate::cohorts;
use crate::data::now_unix;
use crate::policy::{
    self, Approval, PolicyChangeError, PolicyEdit, PolicyField, PolicyInvalid, SitePolicy,
};
use crate::queue::{self, ApprovalItem, ApprovalState, Approvals, ReasonRefused};
use crate::users::LocalRole;

pub(super) fn routes() -> Router<Arc<Ui>> {
    Router::new()
        .route("/approvals", get(approvals))
        .route("/approvals/{id}/{action}", post(decide))
        .route("/policy", get(policy).post(policy_save))
        .route("/audit", get(audit_log))
        .route("/prescreen", get(prescreen_index))
        .route("/prescreen/{project}/{digest}", get(prescreen_list))
        .route("/prescreen/{project}/{digest}/mark", post(prescreen_mark))
        .route("/settings", get(settings).post(settings_save))
}

#[derive(Deserialize, Default)]
struct FlashQuery {
    flash: Option<String>,
}

fn query_label(lang: Lang, q: &QueryType) -> &'static str {
    match q {
        QueryType::CohortCount => t(lang, "site.query.cohort_count"),
        QueryType::Demographics { .. } => t(lang, "site.query.demographics"),
        QueryType::Characterization(_) => t(lang, "site.query.characterization"),
        QueryType::Incidence(_) => t(lang, "site.query.incidence"),
        QueryType::Survival(_) => t(lang, "site.query.survival"),
        QueryType::RegressionRound(_) => t(lang, "site.query.regression_round"),
        QueryType::Recruitment(_) => t(lang, "site.query.recruitment"),
    }
}

/// A received cohort definition as readable text (the cohort engine's narrative), folded; the
/// parser's error (with its JSON path) when it is not one.
fn narrative(lang: Lang, title: &str, definition: &serde_json::Value) -> Markup {
    let nl = qiao_cohort::narrative::Lang::parse(lang.code())
        .unwrap_or(qiao_cohort::narrative::Lang::En);
    html! {
        details.narrative {
            summary { (t(lang, "site.narrative.read")) }
            @match qiao_cohort::narrative::narrative_of_json(&definition.to_string(), title, nl) {
                Ok(md) => { (qiao_web::markdown::markdown(&md)) }
                Err(e) => { p.error { (t(lang, "site.narrative.unreadable")) " " (e) } }
            }
        }
    }
}

// --- approvals -------------------------------------------------------------------------------

async fn approvals(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Query(q): Query<FlashQuery>,
) -> Result<Response, super::Gate> {
    let who = require(&ui, &headers, LocalRole::Steward, "/approvals")?;
    let lang = Lang::negotiate(&headers);
    Ok(render_approvals(
        &ui,
        lang,
        &who,
        Flash::from_query(lang, q.flash.as_deref()),
        None,
    ))
}

/// The queue page; `deny_errors` re-shows a rejected deny form (job id, its errors, the text).
fn render_approvals(
    ui: &Ui,
    lang: Lang,
    who: &Signed,
    flash: Option<Flash>,
    deny_errors: Option<(JobId, FormErrors, String)>,
) -> Response {
    let items = match Approvals::new(&ui.dir).list() {
        Ok(i) => i,
        Err(e) => return internal(ui, lang, who, &e),
    };
    let mut page = ui.page(lang, "site.approvals.title", "/approvals", who);
    page.flash = flash;
    let status = if deny_errors.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let pending = items
        .iter()
        .filter(|i| i.state == ApprovalState::Pending)
        .count();
    let body = html! {
        p { (tf(lang, "site.approvals.intro", &[("pending", &fmt_int(lang, pending as i64))])) }
        @if items.is_empty() {
            p.empty { (t(lang, "site.approvals.empty")) }
        } @else {
            table.approvals {
                thead { tr {
                    th { (t(lang, "site.approvals.job")) }
                    th { (t(lang, "site.approvals.query")) }
                    th { (t(lang, "site.approvals.project")) }
                    th { (t(lang, "site.approvals.requested_by")) }
                    th { (t(lang, "site.approvals.queued")) }
                    th { (t(lang, "site.approvals.state")) }
                } }
                tbody {
                    @for item in &items {
                        (approval_row(lang, who, item, deny_errors.as_ref()))
                    }
                }
            }
        }
    };
    layout::html_response(status, page.render(body))
}

fn approval_row(
    lang: Lang,
    who: &Signed,
    item: &ApprovalItem,
    deny_errors: Option<&(JobId, FormErrors, String)>,
) -> Markup {
    let id = item.job.job_id;
    let empty = FormErrors::new();
    let (errors, reason) = match deny_errors {
        Some((eid, errs, text)) if *eid == id => (errs, text.as_str()),
        _ => (&empty, ""),
    };
    html! {
        tr id=(format!("job-{id}")) {
            td { code { (id) } }
            td { (query_label(lang, &item.job.query)) (narrative(lang, item.job.project_id.as_str(), &item.job.definition)) }
            td { (item.job.project_id) }
            td { (item.job.requested_by.user_id) }
            td { (fmt_datetime(lang, item.queued_at)) }
            td {
                @match &item.state {
                    ApprovalState::Pending => {
                        span.state.pending { (t(lang, "site.approvals.pending")) }
                        form.inline method="post" action=(format!("/approvals/{id}/approve")) {
                            (layout::csrf_field(&who.csrf))
                            (layout::submit(lang, "site.approvals.approve"))
                        }
                        form.deny method="post" action=(format!("/approvals/{id}/deny")) {
                            (layout::csrf_field(&who.csrf))
                            (layout::textarea(lang, "reason", "site.approvals.reason", reason, 2, errors))
                            button.danger type="submit" { (t(lang, "site.approvals.deny")) }
                        }
                    }
                    ApprovalState::Approved { by, at } => {
                        span.state.ok { (tf(lang, "site.approvals.approved_by", &[("user", by), ("when", &fmt_datetime(lang, *at))])) }
                    }
                    ApprovalState::Denied { by, at, reason } => {
                        span.state.err { (tf(lang, "site.approvals.denied_by", &[("user", by), ("when", &fmt_datetime(lang, *at))])) }
                        p.reason { (reason) }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize, Default)]
struct DenyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// What a steward does with a queued job (the last segment of its form's path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    /// `POST /approvals/{id}/approve`.
    Approve,
    /// `POST /approvals/{id}/deny`, with a reason.
    Deny,
}

impl std::str::FromStr for Decision {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "approve" => Ok(Decision::Approve),
            "deny" => Ok(Decision::Deny),
            _ => Err(()),
        }
    }
}

/// `POST /approvals/{id}/approve` and `POST /approvals/{id}/deny` (with a reason). Any other
/// action is a 400 naming it, whoever asks (nothing is read or changed).
async fn decide(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<DenyForm>,
) -> Result<Response, super::Gate> {
    let lang = Lang::negotiate(&headers);
    let Ok(decision) = action.parse::<Decision>() else {
        let action: String = action.chars().take(40).collect();
        return Ok(layout::error_page(
            lang,
            StatusCode::BAD_REQUEST,
            "site.error.title",
            &tf(
                lang,
                "site.approvals.unknown_action",
                &[("action", &action)],
            ),
        ));
    };
    let who = require(&ui, &headers, LocalRole::Steward, "/approvals")?;
    csrf_checked(&who, &f.csrf, lang)?;
    let no_job = || layout::see_other("/approvals?flash=flash.err_site_no_job");
    let Ok(id) = JobId::parse(&id) else {
        return Ok(no_job());
    };
    let (done, flash) = match decision {
        Decision::Approve => (
            queue::approve_job(&ui.dir, &who.user, &id),
            "flash.site_approved",
        ),
        Decision::Deny => {
            let reason = match queue::check_reason(&f.reason) {
                Ok(r) => r,
                Err(refused) => {
                    let mut errors = FormErrors::new();
                    errors.add(
                        "reason",
                        match refused {
                            ReasonRefused::Empty => {
                                t(lang, "site.approvals.reason_required").to_owned()
                            }
                            ReasonRefused::Unfit => tf(
                                lang,
                                "site.approvals.reason_too_long",
                                &[("max", &queue::MAX_REASON_CHARS.to_string())],
                            ),
                        },
                    );
                    return Ok(render_approvals(
                        &ui,
                        lang,
                        &who,
                        None,
                        Some((id, errors, f.reason.clone())),
                    ));
                }
            };
            (
                queue::deny_job(&ui.dir, &who.user, &id, reason),
                "flash.site_denied",
            )
        }
    };
    Ok(match done {
        Ok(_) => layout::see_other(&format!("/approvals?flash={flash}")),
        Err(e) => {
            tracing::warn!("{decision:?} {id}: {e:#}");
            no_job()
        }
    })
}

// --- policy ----------------------------------------------------------------------------------

/// The policy form's fields, as submitted (strings, so a bad value is shown back as typed).
#[derive(Deserialize, Default, Clone)]
struct PolicyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    cohort_count: String,
    #[serde(default)]
    demographics: String,
    #[serde(default)]
    release: String,
    #[serde(default)]
    min_cell_count: String,
    #[serde(default)]
    secondary_suppression: String,
    #[serde(default)]
    sigma: String,
    #[serde(default)]
    user_rho: String,
    #[serde(default)]
    organization_rho: String,
    #[serde(default)]
    site_rho: String,
}

fn release_name(r: ReleaseMode) -> &'static str {
    match r {
        ReleaseMode::Dp => "dp",
        ReleaseMode::Shrine => "shrine",
        ReleaseMode::Exact => "exact",
    }
}

impl PolicyForm {
    fn of(p: &SitePolicy) -> Self {
        let on = |b: bool| if b { "on" } else { "off" }.to_owned();
        Self {
            csrf: String::new(),
            cohort_count: p.cohort_count.to_string(),
            demographics: p.demographics.to_string(),
            release: release_name(p.release).to_owned(),
            min_cell_count: p.min_cell_count.to_string(),
            secondary_suppression: on(p.secondary_suppression),
            sigma: p.dp.sigma.to_string(),
            user_rho: p.dp.user_rho.to_string(),
            organization_rho: p.dp.organization_rho.to_string(),
            site_rho: p.dp.site_rho.to_string(),
        }
    }

    /// The change the form asks for, and the fields that do not parse (each with its
    /// message). The values' rules are [`SitePolicy::validate`]'s, shown by [`add_problems`].
    fn edit(&self, lang: Lang) -> (PolicyEdit, FormErrors) {
        /// The value, or its field's message.
        fn parsed<T>(
            e: &mut FormErrors,
            lang: Lang,
            field: &str,
            key: &'static str,
            v: Option<T>,
        ) -> Option<T> {
            if v.is_none() {
                e.add(field, t(lang, key));
            }
            v
        }
        let mut e = FormErrors::new();
        let choice = "site.policy.err_choice";
        let approval = |v: &str| match v {
            "auto" => Some(Approval::Auto),
            "manual" => Some(Approval::Manual),
            "deny" => Some(Approval::Deny),
            _ => None,
        };
        let release = match self.release.as_str() {
            "dp" => Some(ReleaseMode::Dp),
            "shrine" => Some(ReleaseMode::Shrine),
            "exact" => Some(ReleaseMode::Exact),
            _ => None,
        };
        let on_off = match self.secondary_suppression.as_str() {
            "on" => Some(true),
            "off" => Some(false),
            _ => None,
        };
        let number = |v: &str| v.trim().parse::<f64>().ok();
        let edit = PolicyEdit {
            cohort_count: parsed(
                &mut e,
                lang,
                "cohort_count",
                choice,
                approval(&self.cohort_count),
            ),
            demographics: parsed(
                &mut e,
                lang,
                "demographics",
                choice,
                approval(&self.demographics),
            ),
            release: parsed(&mut e, lang, "release", choice, release),
            min_cell_count: parsed(
                &mut e,
                lang,
                "min_cell_count",
                "site.policy.err_threshold",
                self.min_cell_count.trim().parse().ok(),
            ),
            secondary_suppression: parsed(&mut e, lang, "secondary_suppression", choice, on_off),
            sigma: parsed(
                &mut e,
                lang,
                "sigma",
                "site.policy.err_sigma",
                number(&self.sigma),
            ),
            user_rho: parsed(
                &mut e,
                lang,
                "user_rho",
                "site.policy.err_budget",
                number(&self.user_rho),
            ),
            organization_rho: parsed(
                &mut e,
                lang,
                "organization_rho",
                "site.policy.err_budget",
                number(&self.organization_rho),
            ),
            site_rho: parsed(
                &mut e,
                lang,
                "site_rho",
                "site.policy.err_budget",
                number(&self.site_rho),
            ),
            ..PolicyEdit::default()
        };
        (edit, e)
    }
}

/// Puts the validator's problems next to their form fields (a field that did not parse keeps
/// its own message). What the settings break only together is reported on the σ field.
fn add_problems(lang: Lang, errors: &mut FormErrors, invalid: &PolicyInvalid) {
    for problem in &invalid.0 {
        let (field, key) = match problem.field {
            PolicyField::MinCellCount => ("min_cell_count", "site.policy.err_threshold"),
            PolicyField::Sigma => ("sigma", "site.policy.err_sigma"),
            PolicyField::UserRho => ("user_rho", "site.policy.err_budget"),
            PolicyField::OrganizationRho => ("organization_rho", "site.policy.err_budget"),
            PolicyField::SiteRho => ("site_rho", "site.policy.err_budget"),
            PolicyField::Other => {
                tracing::info!("policy form refused: {}", problem.message);
                ("sigma", "site.policy.err_invalid")
            }
        };
        errors.add(field, t(lang, key));
    }
}

fn render_policy(
    ui: &Ui,
    lang: Lang,
    who: &Signed,
    f: &PolicyForm,
    errors: &FormErrors,
    flash: Option<Flash>,
) -> Markup {
    let mut page = ui.page(lang, "site.policy.title", "/policy", who);
    page.flash = flash;
    let approvals = [
        ("auto".to_owned(), t(lang, "site.policy.auto").to_owned()),
        (
            "manual".to_owned(),
            t(lang, "site.policy.manual").to_owned(),
        ),
        ("deny".to_owned(), t(lang, "site.policy.deny").to_owned()),
    ];
    let on_off = [
        ("on".to_owned(), t(lang, "site.policy.on").to_owned()),
        ("off".to_owned(), t(lang, "site.policy.off").to_owned()),
    ];
    let release = [
        (
            "dp".to_owned(),
            t(lang, "site.policy.release_dp").to_owned(),
        ),
        (
            "shrine".to_owned(),
            t(lang, "site.policy.release_shrine").to_owned(),
        ),
        (
            "exact".to_owned(),
            t(lang, "site.policy.release_exact").to_owned(),
        ),
    ];
    page.render(html! {
        p { (t(lang, "site.policy.intro")) }
        form.policy method="post" action="/policy" {
            (layout::csrf_field(&who.csrf))
            fieldset {
                legend { (t(lang, "site.policy.query_types")) }
                (layout::select(lang, "cohort_count", "site.query.cohort_count", &approvals, &f.cohort_count, errors))
                (layout::select(lang, "demographics", "site.query.demographics", &approvals, &f.demographics, errors))
            }
            fieldset {
                legend { (t(lang, "site.policy.release")) }
                (layout::select(lang, "release", "site.policy.release_mode", &release, &f.release, errors))
                (layout::field(lang, InputKind::Number, "min_cell_count", "site.policy.min_cell_count", &f.min_cell_count, errors))
                (layout::select(lang, "secondary_suppression", "site.policy.secondary_suppression", &on_off, &f.secondary_suppression, errors))
            }
            fieldset {
                legend { (t(lang, "site.policy.dp")) }
                (layout::field(lang, InputKind::Text, "sigma", "site.policy.sigma", &f.sigma, errors))
                (layout::field(lang, InputKind::Text, "user_rho", "site.policy.user_rho", &f.user_rho, errors))
                (layout::field(lang, InputKind::Text, "organization_rho", "site.policy.organization_rho", &f.organization_rho, errors))
                (layout::field(lang, InputKind::Text, "site_rho", "site.policy.site_rho", &f.site_rho, errors))
            }
            (layout::submit(lang, "site.policy.save"))
        }
    })
}

async fn policy(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Query(q): Query<FlashQuery>,
) -> Result<Response, super::Gate> {
    let who = require(&ui, &headers, LocalRole::Steward, "/policy")?;
    let lang = Lang::negotiate(&headers);
    let p = match SitePolicy::load(&ui.dir) {
        Ok(p) => p,
        Err(e) => return Ok(internal(&ui, lang, &who, &e)),
    };
    let flash = Flash::from_query(lang, q.flash.as_deref());
    Ok(layout::html_response(
        StatusCode::OK,
        render_policy(
            &ui,
            lang,
            &who,
            &PolicyForm::of(&p),
            &FormErrors::new(),
            flash,
        ),
    ))
}

async fn policy_save(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Form(f): Form<PolicyForm>,
) -> Result<Response, super::Gate> {
    let who = require(&ui, &headers, LocalRole::Steward, "/policy")?;
    let lang = Lang::negotiate(&headers);
    csrf_checked(&who, &f.csrf, lang)?;
    let refused = |errors: &FormErrors| {
        layout::html_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            render_policy(&ui, lang, &who, &f, errors, None),
        )
    };
    let (edit, mut errors) = f.edit(lang);
    if !errors.is_empty() {
        // Every field's problem at once: what did parse, checked against the current policy.
        let current = match SitePolicy::load(&ui.dir) {
            Ok(p) => p,
            Err(e) => return Ok(internal(&ui, lang, &who, &e)),
        };
        if let Err(invalid) = edit.applied_to(&current).validate() {
            add_problems(lang, &mut errors, &invalid);
        }
        return Ok(refused(&errors));
    }
    // Validated and written under the data directory's lock: one atomic replacement of
    // policy.json, or nothing.
    Ok(
        match policy::set_audited(&ui.dir, audit::user(&who.user), &edit) {
            Ok(_) => layout::see_other("/policy?flash=flash.site_policy_saved"),
            Err(PolicyChangeError::Invalid(invalid)) => {
                add_problems(lang, &mut errors, &invalid);
                refused(&errors)
            }
            Err(PolicyChangeError::Failed(e)) => internal(&ui, lang, &who, &e),
        },
    )
}

// --- audit -----------------------------------------------------------------------------------

async fn audit_log(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, super::Gate> {
    let who = require(&ui, &headers, LocalRole::Steward, "/audit")?;
    let lang = Lang::negotiate(&headers);
    let page = ui.page(lang, "site.audit.title", "/audit", &who);
    let body = match audit::read(&ui.dir) {
        Ok((entries, report)) => {
            if query.get("format").map(String::as_str) == Some("csv") {
                let name = format!("qiao-site-{}-audit.csv", ui.site_name);
                return Ok(qiao_web::audit_view::csv_response(
                    lang, &query, &entries, &name,
                ));
            }
            let chain = html! {
                p.verified.ok role="status" id="chain" {
                    @match &report.head {
                        Some(h) => (tf(lang, "site.audit.verified", &[
                            ("entries", &fmt_int(lang, report.entries as i64)),
                            ("seq", &h.seq.to_string()),
                            ("hash", &h.hash.to_string()),
                        ])),
                        None => (t(lang, "site.audit.empty")),
                    }
                }
            };
            qiao_web::audit_view::render(lang, "/audit", &query, &entries, chain)
        }
        Err(e) => html! {
            p.verified.err role="alert" id="chain" {
                (t(lang, "site.audit.broken")) " " code { (format!("{e:#}")) }
            }
        },
    };
    Ok(page.respond(body))
}

// --- pre-screening ---------------------------------------------------------------------------

async fn prescreen_index(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
) -> Result<Response, super::Gate> {
    let who = require(&ui, &headers, LocalRole::Investigator, "/prescreen")?;
    let lang = Lang::negotiate(&headers);
    let list = match cohorts::list(&ui.dir) {
        Ok(l) => l,
        Err(e) => return Ok(internal(&ui, lang, &who, &e)),
    };
    let page = ui.page(lang, "site.prescreen.title", "/prescreen", &who);
    Ok(page.respond(html! {
        p { (tf(lang, "site.prescreen.intro", &[("site", &ui.site_name)])) }
        @if list.is_empty() {
            p.empty { (t(lang, "site.prescreen.none")) }
        } @else {
            table.cohorts {
                thead { tr {
                    th { (t(lang, "site.prescreen.project")) }
                    th { (t(lang, "site.prescreen.cohort")) }
                    th { (t(lang, "site.prescreen.received")) }
                    th {}
                } }
                tbody {
                    @for c in &list {
                        tr {
                            td { (c.project) }
                            td { (c.name.as_deref().unwrap_or(&c.digest[..12])) }
                            td { (fmt_datetime(lang, c.first_seen)) }
                            td { a.open href=(format!("/prescreen/{}/{}", c.project, c.digest)) { (t(lang, "site.prescreen.open")) } }
                        }
                    }
                }
            }
        }
    }))
}

/// The cohort `project` sent under `digest`, or the page to answer instead (not found, or an
/// internal error). The error is the response itself, returned at once by the handler (as the
/// handlers' `Result<Response, Gate>` already do), so its size does not matter.
#[allow(clippy::result_large_err)]
fn received_cohort(
    ui: &Ui,
    lang: Lang,
    who: &Signed,
    project: &str,
    digest: &str,
) -> Result<cohorts::ProjectCohort, Response> {
    match cohorts::get(&ui.dir, project, digest) {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(layout::error_page(
            lang,
            StatusCode::NOT_FOUND,
            "site.prescreen.title",
            t(lang, "site.prescreen.not_found"),
        )),
        Err(e) => Err(internal(ui, lang, who, &e)),
    }
}

async fn prescreen_list(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Path((project, digest)): Path<(String, String)>,
    Query(q): Query<super::listing::ListQuery>,
    Query(flash): Query<FlashQuery>,
) -> Result<Response, super::Gate> {
    let path = format!("/prescreen/{project}/{digest}");
    let who = require(&ui, &headers, LocalRole::Investigator, &path)?;
    let lang = Lang::negotiate(&headers);
    let cohort = match received_cohort(&ui, lang, &who, &project, &digest) {
        Ok(c) => c,
        Err(page) => return Ok(page),
    };
    let ui2 = Arc::clone(&ui);
    let user = who.user.clone();
    let text = cohort.definition.to_string();
    let label = format!(
        "project {project}, received cohort {}{}",
        &digest[..12.min(digest.len())],
        if q.csv() { ", exported as CSV" } else { "" }
    );
    // Only for a project this site accepted, to an investigator assigned to it (audited).
    match crate::prescreen::admit(&ui.dir, &who.user, &project, &digest, &label) {
        Ok(Ok(())) => {}
        Ok(Err(denied)) => {
            let key = match denied {
                crate::projects::Denied::NotAccepted(_) => "site.prescreen.not_accepted",
                crate::projects::Denied::NotAssigned { .. } => "site.prescreen.not_assigned",
            };
            return Ok(layout::error_page(
                lang,
                StatusCode::FORBIDDEN,
                "site.prescreen.title",
                &tf(lang, key, &[("project", &project)]),
            ));
        }
        Err(e) => return Ok(internal(&ui, lang, &who, &e)),
    }
    let project2 = project.clone();
    let rows = tokio::task::spawn_blocking(move || {
        crate::prescreen::list_for(&ui2.dir, &ui2.store, &user, &project2, &text, &label)
    })
    .await
    .unwrap_or_else(|e| Err(anyhow::anyhow!("pre-screening task: {e}")));
    let rows = match rows {
        Ok(r) => r,
        Err(e) => return Ok(internal(&ui, lang, &who, &e)),
    };
    let persons = crate::exec::subject_ids(&rows).count();
    let mut marks = match crate::recruitment::load(&ui.dir, &project) {
        Ok(m) => m.persons,
        Err(e) => return Ok(internal(&ui, lang, &who, &e)),
    };
    // The hospital's own record number beside each id (this page only: nothing hub-bound has
    // it), and the candidate's recruitment mark (shown on the person's first row).
    let people = ui.store.persons();
    let rows: Vec<super::listing::ListRow> = rows
        .into_iter()
        .map(|row| super::listing::ListRow {
            source_value: people
                .index_of(row.subject_id)
                .and_then(|i| people.source_value(i))
                .map(str::to_owned),
            mark: marks.remove(&row.subject_id),
            row,
        })
        .collect();
    let selected = super::listing::select(&rows, &q);
    if q.csv() {
        return Ok(super::listing::csv_response(
            &format!("{project}-prescreen.csv"),
            super::listing::to_csv(&selected),
        ));
    }
    let mut page = ui.page(lang, "site.prescreen.list_title", &path, &who);
    page.flash = Flash::from_query(lang, flash.flash.as_deref());
    let today = qiao_web::i18n::ymd_value(now_in_zone(lang));
    let marking = super::listing::Marking {
        csrf: &who.csrf,
        today: &today,
    };
    Ok(page.respond(html! {
        p.local role="note" { (t(lang, "site.prescreen.local_only")) }
        p { (tf(lang, "site.prescreen.summary", &[
            ("project", &project),
            ("cohort", cohort.name.as_deref().unwrap_or(&digest)),
            ("persons", &fmt_int(lang, persons as i64)),
            ("rows", &fmt_int(lang, rows.len() as i64)),
        ])) }
        (narrative(lang, cohort.name.as_deref().unwrap_or(&digest), &cohort.definition))
        p.muted { (t(lang, "site.mark.intro")) }
        (super::listing::render(lang, &path, &selected, &q, Some(&marking)))
    }))
}

/// Now, shifted into the request's zone (a form's default day).
fn now_in_zone(lang: Lang) -> i64 {
    let now = crate::data::now_unix();
    now + qiao_web::i18n::offset_at(lang, now)
}

#[derive(Deserialize, Default)]
struct MarkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    person: String,
    #[serde(default)]
    mark: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    back: String,
}

/// `POST /prescreen/{project}/{digest}/mark`: the investigator marks a candidate of the list
/// (the access rule of the list, the person on the list), then back to the list with a flash.
async fn prescreen_mark(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Path((project, digest)): Path<(String, String)>,
    Form(f): Form<MarkForm>,
) -> Result<Response, super::Gate> {
    let path = format!("/prescreen/{project}/{digest}");
    let who = require(&ui, &headers, LocalRole::Investigator, &path)?;
    let lang = Lang::negotiate(&headers);
    csrf_checked(&who, &f.csrf, lang)?;
    let cohort = match received_cohort(&ui, lang, &who, &project, &digest) {
        Ok(c) => c,
        Err(page) => return Ok(page),
    };
    let label = format!(
        "project {project}, received cohort {}, marking",
        &digest[..12.min(digest.len())]
    );
    match crate::prescreen::admit(&ui.dir, &who.user, &project, &digest, &label) {
        Ok(Ok(())) => {}
        Ok(Err(_)) => {
            return Ok(layout::error_page(
                lang,
                StatusCode::FORBIDDEN,
                "site.prescreen.title",
                &tf(
                    lang,
                    "site.prescreen.not_assigned",
                    &[("project", &project)],
                ),
            ))
        }
        Err(e) => return Ok(internal(&ui, lang, &who, &e)),
    }
    // Only the query string of the list's own selection comes back (no other URL).
    let back: String = f
        .back
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "=&%-_.+".contains(*c))
        .take(500)
        .collect();
    let to_list = |flash: &str| layout::see_other(&format!("{path}?{back}&flash={flash}"));
    let Ok(person) = f.person.trim().parse::<i64>() else {
        return Ok(to_list("flash.err_mark_person"));
    };
    let change = if f.mark == "clear" {
        crate::recruitment::Change::Clear
    } else {
        match crate::recruitment::Mark::parse(&f.mark) {
            Some(mark) => crate::recruitment::Change::Mark {
                mark,
                date: &f.date,
                reason: &f.reason,
            },
            None => return Ok(to_list("flash.err_mark_person")),
        }
    };
    // The person must be on this list: the cohort computed again (nothing is shown or audited
    // as a listing).
    let ui2 = Arc::clone(&ui);
    let definition = cohort.definition.clone();
    let on_list = tokio::task::spawn_blocking(move || {
        crate::exec::run_definition(&ui2.store, &definition)
            .map(|run| run.rows.iter().any(|r| r.subject_id == person))
    })
    .await;
    match on_list {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return Ok(to_list("flash.err_mark_person")),
        Ok(Err(e)) => return Ok(internal(&ui, lang, &who, &anyhow::anyhow!("{e}"))),
        Err(e) => return Ok(internal(&ui, lang, &who, &anyhow::anyhow!("{e}"))),
    }
    use crate::recruitment::MarkRefused;
    match crate::recruitment::set(&ui.dir, &project, person, change, &who.user, now_unix()) {
        Ok(Ok(_)) => Ok(to_list("flash.mark_saved")),
        Ok(Err(refused)) => Ok(to_list(match refused {
            MarkRefused::BadDate => "flash.err_mark_date",
            MarkRefused::Future => "flash.err_mark_future",
            MarkRefused::EnrolledBeforeScreened { .. } => "flash.err_mark_order",
            MarkRefused::Conflict(_) => "flash.err_mark_conflict",
            MarkRefused::BadReason => "flash.err_mark_reason",
        })),
        Err(e) => Ok(internal(&ui, lang, &who, &e)),
    }
}

// --- the user's own settings -----------------------------------------------------------------

#[derive(Deserialize, Default)]
struct ZoneForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    zone: String,
}

/// `GET /settings`: the signed-in user's time zone (kept with the site's accounts).
async fn settings(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Query(q): Query<FlashQuery>,
) -> Result<Response, super::Gate> {
    let Some(who) = ui.signed(&headers) else {
        return Ok(layout::see_other("/login?next=%2Fsettings"));
    };
    let lang = Lang::negotiate(&headers);
    let chosen = match crate::users::zone_of(&ui.dir, &who.user) {
        Ok(z) => z.unwrap_or_default(),
        Err(e) => return Ok(internal(&ui, lang, &who, &e)),
    };
    Ok(settings_page(
        &ui,
        lang,
        &who,
        &chosen,
        q.flash.as_deref(),
        &FormErrors::new(),
    ))
}

/// The settings page with `chosen` selected, the flash and the form's `errors`.
fn settings_page(
    ui: &Ui,
    lang: Lang,
    who: &Signed,
    chosen: &str,
    flash: Option<&str>,
    errors: &FormErrors,
) -> Response {
    let mut page = ui.page(lang, "settings.title", "/settings", who);
    page.flash = Flash::from_query(lang, flash);
    page.respond(html! {
        form.card #zone-form method="post" action="/settings" {
            (layout::csrf_field(&who.csrf))
            (layout::select(lang, "zone", "settings.zone", &layout::zone_options(lang, chosen, now_unix()), chosen, errors))
            p.muted { (t(lang, "settings.zone_note")) }
            (layout::submit(lang, "settings.save"))
        }
        p #now { (tf(lang, "settings.now", &[("time", &fmt_datetime(lang, now_unix()))])) }
    })
}

/// `POST /settings`: saves the zone (empty: the language's) and sets the zone cookie; a value
/// that is no zone is refused, naming it, and nothing is saved.
async fn settings_save(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Form(f): Form<ZoneForm>,
) -> Result<Response, super::Gate> {
    let Some(who) = ui.signed(&headers) else {
        return Ok(layout::see_other("/login?next=%2Fsettings"));
    };
    let lang = Lang::negotiate(&headers);
    csrf_checked(&who, &f.csrf, lang)?;
    let value = f.zone.trim();
    let chosen = qiao_web::zone::parse(value);
    if chosen.is_none() && !value.is_empty() {
        let mut errors = FormErrors::new();
        errors.add("zone", tf(lang, "settings.err_zone", &[("value", value)]));
        let mut r = settings_page(&ui, lang, &who, "", None, &errors);
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(r);
    }
    match crate::users::set_zone(&ui.dir, &who.user, chosen.as_ref()) {
        Ok(()) => {
            let mut resp = layout::see_other("/settings?flash=flash.saved");
            if let Ok(v) =
                qiao_web::zone::zone_cookie(ui.cookies, chosen.as_ref().map(|z| z.name())).parse()
            {
                resp.headers_mut().append(axum::http::header::SET_COOKIE, v);
            }
            Ok(resp)
        }
        Err(e) => Ok(internal(&ui, lang, &who, &e)),
    }
}

// --- errors ----------------------------------------------------------------------------------

/// An internal error: logged, with a generic translated page (the detail stays in the log).
fn internal(ui: &Ui, lang: Lang, who: &Signed, e: &anyhow::Error) -> Response {
    tracing::error!("site ui: {e:#}");
    let page = ui.page(lang, "site.error.title", "/", who);
    layout::html_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        page.render(html! { p.error role="alert" { (t(lang, "site.error.internal")) } }),
    )
}
