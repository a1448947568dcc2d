//! Member institutions (apply, decide) and the scientific committee (experts, criteria).

use axum::extract::{Path, State};
use axum::response::Response;
use qiao_hub::model::User;
use qiao_hub::protocol::UserRole;
use qiao_hub::util::now;
use qiao_web::i18n::{fmt_date, fmt_datetime, t_dyn};
use qiao_web::layout::{csrf_field, field, select, submit, textarea, FormErrors, InputKind};
use qiao_web::{html, t, tf, Markup};

use super::common::{errors_of, form_error, unprocessable};
use super::library::status_cells;
use crate::alliance::{self, Application, ExpertForm, InstitutionKind};
use crate::web::{blocking, redirect_flash, Ctx, PostForm, Shared};

fn kind_options(ctx: &Ctx) -> Vec<(String, String)> {
    InstitutionKind::ALL
        .iter()
        .map(|k| {
            (
                k.as_str().to_owned(),
                t_dyn(ctx.lang, &format!("kind.{}", k.as_str())),
            )
        })
        .collect()
}

async fn institutions_page(
    portal: &Shared,
    ctx: &Ctx,
    decide_errors: Option<(&str, FormErrors)>,
) -> Response {
    if let Err(r) = ctx.require(&[]) {
        return r;
    }
    let lang = ctx.lang;
    let store = portal.hub.store().clone();
    let seen = portal.hub.sites_seen();
    let all = match blocking(move || alliance::institutions(store.as_ref())).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return ctx.internal(e),
        Err(e) => return ctx.internal(e),
    };
    let admin = ctx
        .user
        .as_ref()
        .is_some_and(|u| u.role == UserRole::AllianceAdmin);
    let csrf = ctx.csrf();
    let body = html! {
        p { a href="/apply" { (t(lang, "inst.apply_link")) } }
        table {
            thead { tr {
                th { (t(lang, "inst.name")) } th { (t(lang, "inst.kind")) } th { (t(lang, "inst.region")) }
                th { (t(lang, "inst.site")) } th { (t(lang, "sites.data")) } th { (t(lang, "sites.control")) }
                th { (t(lang, "inst.status")) } th { (t(lang, "inst.applied_at")) }
                @if admin { th { (t(lang, "inst.decide")) } }
            } }
            tbody {
                @for i in &all {
                    tr id=(format!("inst-{}", i.id)) {
                        td { (i.name) br; span.muted { (i.id) " · " (i.contact) }
                             @if admin && i.status == alliance::MemberStatus::Applied {
                                 details.application open {
                                     summary { (t(lang, "inst.application_text")) }
                                     p.prewrap { (i.description) }
                                 }
                             } }
                        td { (t_dyn(lang, &format!("kind.{}", i.kind.as_str()))) }
                        td { (i.region) }
                        @let site_seen = i.site.as_ref().and_then(|s| seen.get(s));
                        td { (i.site.as_ref().map(|s| s.to_string()).unwrap_or_default())
                             @if let Some(x) = site_seen { br; span.muted { (t(lang, "sites.last_seen")) " " (fmt_datetime(lang, x.last_seen)) } } }
                        (status_cells(lang, site_seen))
                        td { span class=(format!("badge {}", i.status.as_str())) { (t_dyn(lang, &format!("member.{}", i.status.as_str()))) }
                             @if let Some(r) = &i.reason { br; span.muted { (r) } } }
                        td { (fmt_date(lang, i.applied_at)) }
                        @if admin {
                            td {
                                @if i.status == alliance::MemberStatus::Applied {
                                    @let errs = decide_errors.as_ref().filter(|(id, _)| *id == i.id).map(|(_, e)| e.clone()).unwrap_or_default();
                                    form.actions method="post" action=(format!("/institutions/{}/decide", i.id)) {
                                        (csrf_field(&csrf))
                                        (form_error(&errs))
                                        (field(lang, InputKind::Text, "reason", "inst.reason", "", &errs))
                                        button type="submit" name="decision" value="approve" { (t(lang, "inst.approve")) }
                                        button.danger type="submit" name="decision" value="reject" { (t(lang, "inst.reject")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let r = ctx.page("inst.title").respond(body);
    if decide_errors.is_some() {
        unprocessable(r)
    } else {
        r
    }
}

/// `GET /institutions`.
pub async fn institutions(State(portal): State<Shared>, ctx: Ctx) -> Response {
    institutions_page(&portal, &ctx, None).await
}

/// `POST /institutions/{id}/decide`.
pub async fn decide(
    State(portal): State<Shared>,
    ctx: Ctx,
    Path(id): Path<String>,
    form: PostForm,
) -> Response {
    let user = match ctx.require(&[UserRole::AllianceAdmin]) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let approve = form.get("decision") == "approve";
    let reason = form.get("reason").to_owned();
    let store = portal.hub.store().clone();
    let id2 = id.clone();
    let r = match blocking(move || {
        alliance::decide_institution(store.as_ref(), &id2, approve, &reason, &user, now())
    })
    .await
    {
        Ok(r) => r,
        Err(e) => return ctx.internal(e),
    };
    match r {
        Ok(_) => redirect_flash("/institutions", "flash.saved"),
        Err(e) => match errors_of(&ctx, &[e]) {
            Ok(errs) => institutions_page(&portal, &ctx, Some((&id, errs))).await,
            Err(r) => r,
        },
    }
}

fn apply_form(ctx: &Ctx, a: &Application, errors: &FormErrors) -> Markup {
    let lang = ctx.lang;
    html! {
        p.muted { (t(lang, "inst.apply_intro")) }
        (form_error(errors))
        form.card method="post" action="/apply" {
            (csrf_field(&ctx.csrf()))
            (field(lang, InputKind::Text, "id", "inst.id", &a.id, errors))
            (field(lang, InputKind::Text, "name", "inst.name", &a.name, errors))
            (select(lang, "kind", "inst.kind", &kind_options(ctx), &a.kind, errors))
            (field(lang, InputKind::Text, "region", "inst.region", &a.region, errors))
            (field(lang, InputKind::Email, "contact", "inst.contact", &a.contact, errors))
            (textarea(lang, "description", "inst.description", &a.description, 4, errors))
            (field(lang, InputKind::Text, "site", "inst.site_optional", &a.site, errors))
            (submit(lang, "inst.submit_application"))
        }
    }
}

/// `GET /apply`: the membership application form (open to anyone).
pub async fn apply_page(State(portal): State<Shared>, ctx: Ctx) -> Response {
    let (pre, fresh) = match (&ctx.user, &ctx.pre) {
        (None, None) => (Some(qiao_web::session::random_secret()), true),
        _ => (None, false),
    };
    let mut ctx = ctx;
    if let Some(p) = &pre {
        ctx.pre = Some(p.clone());
    }
    let r = ctx.page("inst.apply_title").respond(apply_form(
        &ctx,
        &Application::default(),
        &FormErrors::new(),
    ));
    match (fresh, pre) {
        (true, Some(p)) => {
            super::auth::with_cookie(r, &qiao_web::session::pre_cookie(portal.cookies, &p))
        }
        _ => r,
    }
}

/// `POST /apply`.
pub async fn apply_submit(State(portal): State<Shared>, ctx: Ctx, form: PostForm) -> Response {
    let a = Application {
        id: form.get("id").to_owned(),
        name: form.get("name").to_owned(),
        kind: form.get("kind").to_owned(),
        region: form.get("region").to_owned(),
        contact: form.get("contact").to_owned(),
        description: form.get("description").to_owned(),
        site: form.get("site").to_owned(),
    };
    if ctx.user.is_none() {
        let hub = portal.hub.clone();
        let ip = ctx.ip;
        match blocking(move || hub.admit_anonymous("apply", ip)).await {
            Ok(Ok(())) => {}
            Ok(Err(secs)) => {
                let message = qiao_web::tf(
                    ctx.lang,
                    "inst.apply_rate_limited",
                    &[("secs", &secs.to_string())],
                );
                let mut r = ctx
                    .page("inst.apply_title")
                    .respond(html! { p.error role="alert" { (message) } });
                *r.status_mut() = axum::http::StatusCode::TOO_MANY_REQUESTS;
                return r;
            }
            Err(e) => return ctx.internal(e),
        }
    }
    let store = portal.hub.store().clone();
    let by = ctx.user.clone();
    let a2 = a.clone();
    let r = match blocking(move || alliance::apply(store.as_ref(), &a2, by.as_ref(), now())).await {
        Ok(r) => r,
        Err(e) => return ctx.internal(e),
    };
    match r {
        Ok(inst) => redirect_flash(
            &format!(
                "/apply/status?ref={}",
                inst.reference.as_deref().unwrap_or_default()
            ),
            "flash.applied",
        ),
        Err(errs) => match errors_of(&ctx, &errs) {
            Ok(errors) => unprocessable(
                ctx.page("inst.apply_title")
                    .respond(apply_form(&ctx, &a, &errors)),
            ),
            Err(r) => r,
        },
    }
}

const COMMITTEE_ROLES: &[UserRole] = &[
    UserRole::AllianceAdmin,
    UserRole::CommitteeMember,
    UserRole::Auditor,
];

async fn committee_page(
    portal: &Shared,
    ctx: &Ctx,
    form: Option<(&str, &PostForm, FormErrors)>,
) -> Response {
    if let Err(r) = ctx.require(COMMITTEE_ROLES) {
        return r;
    }
    let lang = ctx.lang;
    let store = portal.hub.store().clone();
    let loaded = blocking(move || {
        Ok::<_, qiao_hub::StoreError>((
            alliance::experts(store.as_ref())?,
            alliance::criteria(store.as_ref())?,
            alliance::quorum(store.as_ref())?,
        ))
    })
    .await;
    let (experts, criteria, quorum) = match loaded {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return ctx.internal(e),
        Err(e) => return ctx.internal(e),
    };
    let admin = ctx
        .user
        .as_ref()
        .is_some_and(|u| u.role == UserRole::AllianceAdmin);
    let t_now = now();
    let empty = FormErrors::new();
    let (which, values, errors) = match &form {
        Some((w, v, e)) => (*w, Some(*v), e),
        None => ("", None, &empty),
    };
    let val = |name: &str| values.map(|v| v.get(name).to_owned()).unwrap_or_default();
    let crit_text: String = criteria
        .iter()
        .map(|c| format!("{} | {} | {} | {}\n", c.id, c.en, c.zh, c.max))
        .collect();
    let no_errors = FormErrors::new();
    let body = html! {
        h2 { (t(lang, "cmte.experts")) }
        table {
            thead { tr { th { (t(lang, "cmte.name")) } th { (t(lang, "cmte.institution")) } th { (t(lang, "cmte.fields")) } th { (t(lang, "cmte.terms")) } th { (t(lang, "cmte.active")) } } }
            tbody { @for e in &experts { tr {
                td { (e.name) br; span.muted { (e.user) } }
                td { (e.institution) }
                td { (e.fields.join(", ")) }
                td { @for a in &e.appointments { (fmt_date(lang, a.start)) " – " (fmt_date(lang, a.end)) " · " (a.letter) br; } }
                td { @if e.active(t_now) { span.badge.ok { (t(lang, "cmte.yes")) } } @else { span.badge { (t(lang, "cmte.no")) } } }
            } } }
        }
        @if admin {
            h2 { (t(lang, "cmte.appoint")) }
            @let errs = if which == "appoint" { errors } else { &no_errors };
            (form_error(errs))
            form.card method="post" action="/committee/experts" {
                (csrf_field(&ctx.csrf()))
                (field(lang, InputKind::Text, "user", "cmte.user", &val("user"), errs))
                (field(lang, InputKind::Text, "name", "cmte.name", &val("name"), errs))
                (field(lang, InputKind::Text, "institution", "cmte.institution_id", &val("institution"), errs))
                (field(lang, InputKind::Text, "fields", "cmte.fields_hint", &val("fields"), errs))
                (field(lang, InputKind::Date, "start", "cmte.start", &val("start"), errs))
                (field(lang, InputKind::Date, "end", "cmte.end", &val("end"), errs))
                (field(lang, InputKind::Text, "letter", "cmte.letter", &val("letter"), errs))
                (submit(lang, "cmte.appoint_submit"))
            }
        }
        h2 { (t(lang, "cmte.criteria")) }
        table {
            thead { tr { th { (t(lang, "cmte.criterion")) } th.num { (t(lang, "cmte.max")) } } }
            tbody { @for c in &criteria { tr { td { (if lang == qiao_web::Lang::ZhCn { &c.zh } else { &c.en }) } td.num { (c.max) } } } }
        }
        @if admin {
            @let errs = if which == "criteria" { errors } else { &no_errors };
            (form_error(errs))
            form.card method="post" action="/committee/criteria" {
                (csrf_field(&ctx.csrf()))
                (textarea(lang, "criteria", "cmte.criteria_hint", &values.filter(|_| which == "criteria").map(|v| v.raw("criteria").to_owned()).unwrap_or(crit_text), 5, errs))
                (submit(lang, "cmte.criteria_submit"))
            }
        }
        h2 { (t(lang, "guide.quorum_title")) }
        p #quorum { (tf(lang, "guide.quorum_now", &[("quorum", &quorum.to_string())])) }
        @if admin {
            @let errs = if which == "quorum" { errors } else { &no_errors };
            (form_error(errs))
            form.card method="post" action="/committee/quorum" {
                (csrf_field(&ctx.csrf()))
                (field(lang, InputKind::Number, "quorum", "guide.quorum_field", &values.filter(|_| which == "quorum").map(|v| v.get("quorum").to_owned()).unwrap_or(quorum.to_string()), errs))
                (submit(lang, "guide.quorum_submit"))
            }
        }
    };
    let r = ctx.page("cmte.title").respond(body);
    if form.is_some() {
        unprocessable(r)
    } else {
        r
    }
}

/// `GET /committee`.
pub async fn committee(State(portal): State<Shared>, ctx: Ctx) -> Response {
    committee_page(&portal, &ctx, None).await
}

/// `POST /committee/experts`.
pub async fn appoint(State(portal): State<Shared>, ctx: Ctx, form: PostForm) -> Response {
    let user = match ctx.require(&[UserRole::AllianceAdmin]) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let f = ExpertForm {
        user: form.get("user").into(),
        name: form.get("name").into(),
        institution: form.get("institution").into(),
        fields: form.get("fields").into(),
        start: form.get("start").into(),
        end: form.get("end").into(),
        letter: form.get("letter").into(),
    };
    let store = portal.hub.store().clone();
    let r = match blocking(move || alliance::appoint_expert(store.as_ref(), &f, &user, now())).await
    {
        Ok(r) => r,
        Err(e) => return ctx.internal(e),
    };
    match r {
        Ok(_) => redirect_flash("/committee", "flash.saved"),
        Err(errs) => match errors_of(&ctx, &errs) {
            Ok(errors) => committee_page(&portal, &ctx, Some(("appoint", &form, errors))).await,
            Err(r) => r,
        },
    }
}

/// `POST /committee/criteria`.
pub async fn set_criteria(State(portal): State<Shared>, ctx: Ctx, form: PostForm) -> Response {
    committee_setting(portal, ctx, form, "criteria", alliance::set_criteria).await
}

/// `POST /committee/quorum`: the reviews a committee decision needs.
pub async fn set_quorum(State(portal): State<Shared>, ctx: Ctx, form: PostForm) -> Response {
    committee_setting(portal, ctx, form, "quorum", alliance::set_quorum).await
}

/// An admin's committee setting: the form field `name`'s text, saved by `save`.
async fn committee_setting<R: Send + 'static>(
    portal: Shared,
    ctx: Ctx,
    form: PostForm,
    name: &'static str,
    save: fn(&dyn qiao_hub::HubStore, &str, &User, i64) -> alliance::Outcome<R>,
) -> Response {
    let user = match ctx.require(&[UserRole::AllianceAdmin]) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let text = form.raw(name).to_owned();
    let store = portal.hub.store().clone();
    let r = match blocking(move || save(store.as_ref(), &text, &user, now())).await {
        Ok(r) => r,
        Err(e) => return ctx.internal(e),
    };
    match r {
        Ok(_) => redirect_flash("/committee", "flash.saved"),
        Err(e) => match errors_of(&ctx, &[e]) {
            Ok(errors) => committee_page(&portal, &ctx, Some((name, &form, errors))).await,
            Err(r) => r,
        },
    }
}
