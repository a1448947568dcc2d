//! Onboarding and identity: an applicant's status by reference, the admin's users page
//! (invitation links with roles, disable/enable, reset links, role changes), redeeming a link,
//! and the hand-off to a site's own pages with a hub-signed login assertion.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use qiao_hub::model::{role_name, User};
use qiao_hub::protocol::{SiteId, UserRole};
use qiao_hub::util::now;
use qiao_web::i18n::{fmt_date, fmt_datetime, t_dyn};
use qiao_web::layout::{csrf_field, field, select, submit, url_encode, FormErrors, InputKind};
use qiao_web::{html, t, tf, Markup};

use super::common::{errors_of, form_error, unprocessable};
use crate::alliance::{self, MemberStatus};
use crate::web::{blocking, redirect_flash, role_key, Ctx, PostForm, Shared};

const ROLES: [UserRole; 6] = [
    UserRole::SponsorResearcher,
    UserRole::SiteInvestigator,
    UserRole::SiteDataSteward,
    UserRole::CommitteeMember,
    UserRole::Auditor,
    UserRole::AllianceAdmin,
];

fn role_options(ctx: &Ctx) -> Vec<(String, String)> {
    ROLES
        .iter()
        .map(|r| {
            (
                role_name(*r).to_owned(),
                t(ctx.lang, role_key(*r)).to_owned(),
            )
        })
        .collect()
}

/// The action that flips an account's state.
fn toggle(disabled: bool) -> &'static str {
    if disabled {
        "enable"
    } else {
        "disable"
    }
}

// --- the applicant's status ---------------------------------------------------------------------

/// `GET /apply/status?ref=…`: an application's status by its reference (no account needed).
pub async fn apply_status(State(portal): State<Shared>, ctx: Ctx) -> Response {
    let lang = ctx.lang;
    let reference = ctx.query.get("ref").cloned().unwrap_or_default();
    let store = portal.hub.store().clone();
    let r2 = reference.clone();
    let found = match blocking(move || alliance::application_status(store.as_ref(), &r2)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return ctx.internal(e),
        Err(e) => return ctx.internal(e),
    };
    let body = html! {
        form.card method="get" action="/apply/status" {
            div.field { label for="ref" { (t(lang, "apply.reference")) } input id="ref" name="ref" type="text" value=(reference); }
            (submit(lang, "apply.look_up"))
        }
        @if let Some(i) = &found {
            div.card #application {
                p { strong { (t(lang, "apply.reference")) ": " } code { (i.reference.as_deref().unwrap_or_default()) } }
                p.muted { (t(lang, "apply.keep_reference")) }
                table { tbody {
                    tr { th { (t(lang, "inst.name")) } td { (i.name) } }
                    tr { th { (t(lang, "inst.status")) } td { span class=(format!("badge {}", i.status.as_str())) #status { (t_dyn(lang, &format!("member.{}", i.status.as_str()))) } } }
                    tr { th { (t(lang, "inst.applied_at")) } td { (fmt_date(lang, i.applied_at)) } }
                    @if let Some(d) = i.decided_at { tr { th { (t(lang, "apply.decided_at")) } td { (fmt_date(lang, d)) } } }
                    @if let Some(r) = &i.reason { tr { th { (t(lang, "inst.reason")) } td { (r) } } }
                } }
                p { (t(lang, match i.status {
                    MemberStatus::Applied => "apply.next_applied",
                    MemberStatus::Approved => "apply.next_approved",
                    MemberStatus::Rejected => "apply.next_rejected",
                })) }
            }
        } @else if !reference.is_empty() {
            p.flash.err role="alert" { (t(lang, "apply.unknown_reference")) }
        }
    };
    let r = ctx.page("apply.status_title").respond(body);
    if found.is_none() && !reference.is_empty() {
        let mut r = r;
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    } else {
        r
    }
}

// --- the admin's users page ---------------------------------------------------------------------

/// A link just made (shown once), or a form's errors.
enum Shown<'a> {
    Nothing,
    Link(&'static str, String),
    Errors(&'a str, &'a PostForm, FormErrors),
}

async fn users_page(portal: &Shared, ctx: &Ctx, shown: Shown<'_>) -> Response {
    if let Err(r) = ctx.require(&[UserRole::AllianceAdmin]) {
        return r;
    }
    let lang = ctx.lang;
    let store = portal.hub.store().clone();
    let loaded = blocking(move || {
        let users = store.users()?;
        let mut disabled = Vec::with_capacity(users.len());
        for u in &users {
            disabled.push(store.user_disabled(&u.id)?);
        }
        Ok::<_, qiao_hub::StoreError>((
            users,
            disabled,
            alliance::institutions(store.as_ref())?,
            alliance::account_invites(store.as_ref())?,
        ))
    })
    .await;
    let (users, disabled, insts, invites) = match loaded {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return ctx.internal(e),
        Err(e) => return ctx.internal(e),
    };
    let approved: Vec<(String, String)> = insts
        .iter()
        .filter(|i| i.status == MemberStatus::Approved)
        .map(|i| (i.id.clone(), i.name.clone()))
        .collect();
    let csrf = ctx.csrf();
    let empty = FormErrors::new();
    let (which, values, errors) = match &shown {
        Shown::Errors(w, v, e) => (*w, Some(*v), e),
        _ => ("", None, &empty),
    };
    let val = |name: &str| values.map(|v| v.get(name).to_owned()).unwrap_or_default();
    let t_now = now();
    let body = html! {
        @if let Shown::Link(key, url) = &shown {
            div.card #new-link role="status" {
                p { (t(lang, key)) }
                p { code #link { (url) } }
                p.muted { (t(lang, "users.link_once")) }
            }
        }
        h2 { (t(lang, "users.invite")) }
        p.muted { (t(lang, "users.invite_intro")) }
        @let errs = if which == "invite" { errors } else { &empty };
        (form_error(errs))
        form.card method="post" action="/admin/users/invite" {
            (csrf_field(&csrf))
            (select(lang, "institution", "users.institution", &approved, &val("institution"), errs))
            (select(lang, "role", "users.role", &role_options(ctx), &val("role"), errs))
            (field(lang, InputKind::Text, "site", "users.site_optional", &val("site"), errs))
            (submit(lang, "users.invite_submit"))
        }
        h2 { (t(lang, "users.title")) }
        div.scroll { table #users {
            thead { tr {
                th { (t(lang, "users.user")) } th { (t(lang, "users.role")) } th { (t(lang, "users.institution")) }
                th { (t(lang, "inst.site")) } th { (t(lang, "users.created")) } th { (t(lang, "users.state")) } th { (t(lang, "users.actions")) }
            } }
            tbody { @for (u, off) in users.iter().zip(&disabled) {
                tr id=(format!("user-{}", u.id)) {
                    td { (u.id) }
                    td { (t(lang, role_key(u.role))) }
                    td { (u.institution.as_deref().unwrap_or("")) }
                    td { (u.site.as_ref().map(|s| s.to_string()).unwrap_or_default()) }
                    td { (fmt_date(lang, u.created_at)) }
                    td { @if *off { span.badge.rejected { (t(lang, "users.disabled")) } } @else { span.badge.ok { (t(lang, "users.active")) } } }
                    td {
                        @let me = ctx.user.as_ref().is_some_and(|m| m.id == u.id);
                        @if !me {
                            form.inline method="post" action=(format!("/admin/users/{}/{}", url_encode(u.id.as_str()), toggle(*off))) {
                                (csrf_field(&csrf))
                                @if *off { button type="submit" { (t(lang, "users.enable")) } }
                                @else { button.danger type="submit" { (t(lang, "users.disable")) } }
                            }
                        }
                        form.inline method="post" action=(format!("/admin/users/{}/reset", url_encode(u.id.as_str()))) {
                            (csrf_field(&csrf))
                            button type="submit" { (t(lang, "users.reset")) }
                        }
                        @if !me {
                            @let errs = if which == u.id.as_str() { errors } else { &empty };
                            details open[which == u.id.as_str()] {
                                summary { (t(lang, "users.change_role")) }
                                (form_error(errs))
                                form method="post" action=(format!("/admin/users/{}/role", url_encode(u.id.as_str()))) {
                                    (csrf_field(&csrf))
                                    (select(lang, "role", "users.role", &role_options(ctx), role_name(u.role), errs))
                                    (select(lang, "institution", "users.institution", &approved, u.institution.as_deref().unwrap_or(""), errs))
                                    (field(lang, InputKind::Text, "site", "users.site_optional", &u.site.as_ref().map(|s| s.to_string()).unwrap_or_default(), errs))
                                    (submit(lang, "users.role_submit"))
                                }
                            }
                        }
                    }
                }
            } }
        } }
        h2 { (t(lang, "users.links")) }
        @if invites.is_empty() { p.empty { (t(lang, "users.no_links")) } } @else {
            div.scroll { table #links {
                thead { tr { th { (t(lang, "users.link_kind")) } th { (t(lang, "users.role")) } th { (t(lang, "users.institution")) } th { (t(lang, "users.created")) } th { (t(lang, "users.state")) } } }
                tbody { @for i in &invites { tr {
                    td { @if let Some(u) = &i.reset_of { (tf(lang, "users.kind_reset", &[("user", u.as_str())])) } @else { (t(lang, "users.kind_invite")) } }
                    td { (t(lang, role_key(i.role))) @if let Some(s) = &i.site { " · " (s) } }
                    td { (i.institution) }
                    td { (fmt_datetime(lang, i.created_at)) " · " (i.created_by) }
                    td { @if let Some(u) = &i.used_by { (tf(lang, "users.link_used", &[("user", u.as_str())])) }
                         @else if t_now >= i.expires_at { (t(lang, "users.link_expired")) }
                         @else { (tf(lang, "users.link_open", &[("date", &fmt_datetime(lang, i.expires_at))])) } }
                } } }
            } }
        }
    };
    let r = ctx.page("users.title").respond(body);
    if matches!(shown, Shown::Errors(..)) {
        unprocessable(r)
    } else {
        r
    }
}

/// `GET /admin/users`.
pub async fn users(State(portal): State<Shared>, ctx: Ctx) -> Response {
    users_page(&portal, &ctx, Shown::Nothing).await
}

/// The page a link's secret opens, as an absolute URL (the admin sends it to its person, who
/// opens it elsewhere): from the portal's configured public address, else the address the
/// admin's browser reached.
fn link_url(portal: &Shared, ctx: &Ctx, secret: &str) -> String {
    let base = match &portal.public_url {
        Some(u) => u.clone(),
        None => {
            let scheme = if portal.cookies.secure {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{}", ctx.host)
        }
    };
    format!("{base}/join/{secret}")
}

/// `POST /admin/users/invite`.
pub async fn invite(State(portal): State<Shared>, ctx: Ctx, form: PostForm) -> Response {
    let user = match ctx.require(&[UserRole::AllianceAdmin]) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let (role, inst, site) = (
        form.get("role").to_owned(),
        form.get("institution").to_owned(),
        form.get("site").to_owned(),
    );
    let store = portal.hub.store().clone();
    let r = match blocking(move || {
        alliance::invite_account(store.as_ref(), &role, &inst, &site, &user, now())
    })
    .await
    {
        Ok(r) => r,
        Err(e) => return ctx.internal(e),
    };
    match r {
        Ok((secret, _)) => {
            let url = link_url(&portal, &ctx, &secret);
            users_page(&portal, &ctx, Shown::Link("users.link_made", url)).await
        }
        Err(e) => match errors_of(&ctx, &[e]) {
            Ok(errs) => users_page(&portal, &ctx, Shown::Errors("invite", &form, errs)).await,
            Err(r) => r,
        },
    }
}

/// `POST /admin/users/{id}/{action}`: `disable`, `enable`, `reset` or `role`.
pub async fn user_action(
    State(portal): State<Shared>,
    ctx: Ctx,
    Path((id, action)): Path<(String, String)>,
    form: PostForm,
) -> Response {
    let admin = match ctx.require(&[UserRole::AllianceAdmin]) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let Ok(target) = qiao_hub::protocol::UserId::new(id.clone()) else {
        return ctx.not_found();
    };
    let store = portal.hub.store().clone();
    match action.as_str() {
        "disable" | "enable" => {
            let off = action == "disable";
            if off && target == admin.id {
                return ctx.forbidden();
            }
            let who = qiao_hub::audit::Actor::User(admin.id.to_string());
            let r = blocking(move || store.set_user_disabled(&target, off, &who, now())).await;
            match r {
                Ok(Ok(_)) => redirect_flash("/admin/users", "flash.saved"),
                Ok(Err(qiao_hub::StoreError::Caller(qiao_hub::CallerFault::NotFound(_)))) => {
                    ctx.not_found()
                }
                Ok(Err(e)) => ctx.internal(e),
                Err(e) => ctx.internal(e),
            }
        }
        "reset" => {
            let r =
                blocking(move || alliance::reset_link(store.as_ref(), &id, &admin, now())).await;
            match r {
                Ok(Ok((secret, _))) => {
                    let url = link_url(&portal, &ctx, &secret);
                    users_page(&portal, &ctx, Shown::Link("users.reset_made", url)).await
                }
                Ok(Err(e)) => match errors_of(&ctx, &[e]) {
                    Ok(_) => ctx.not_found(),
                    Err(r) => r,
                },
                Err(e) => ctx.internal(e),
            }
        }
        "role" => {
            let (role, inst, site) = (
                form.get("role").to_owned(),
                form.get("institution").to_owned(),
                form.get("site").to_owned(),
            );
            let id2 = id.clone();
            let r = blocking(move || {
                alliance::change_role(store.as_ref(), &id2, &role, &inst, &site, &admin, now())
            })
            .await;
            match r {
                Ok(Ok(_)) => redirect_flash("/admin/users", "flash.saved"),
                Ok(Err(e)) => match errors_of(&ctx, &[e]) {
                    Ok(errs) => users_page(&portal, &ctx, Shown::Errors(&id, &form, errs)).await,
                    Err(r) => r,
                },
                Err(e) => ctx.internal(e),
            }
        }
        _ => ctx.not_found(),
    }
}

// --- redeeming a link ---------------------------------------------------------------------------

fn join_form(
    ctx: &Ctx,
    secret: &str,
    inv: &alliance::AccountInvite,
    name: &str,
    errors: &FormErrors,
) -> Markup {
    let lang = ctx.lang;
    html! {
        @if let Some(u) = &inv.reset_of {
            p { (tf(lang, "join.reset_intro", &[("user", u.as_str())])) }
        } @else {
            p { (tf(lang, "join.intro", &[("role", t(lang, role_key(inv.role))), ("institution", &inv.institution)])) }
        }
        (form_error(errors))
        form.card method="post" action=(format!("/join/{secret}")) {
            (csrf_field(&ctx.csrf()))
            @if inv.reset_of.is_none() {
                (field(lang, InputKind::Text, "username", "login.username", name, errors))
            }
            (field(lang, InputKind::Password, "password", "login.password", "", errors))
            p.muted { (t(lang, "join.policy")) }
            (submit(lang, "join.submit"))
        }
    }
}

async fn load_link(
    portal: &Shared,
    ctx: &Ctx,
    secret: &str,
) -> Result<alliance::AccountInvite, Response> {
    let store = portal.hub.store().clone();
    let s = secret.to_owned();
    match blocking(move || alliance::open_invite(store.as_ref(), &s, now())).await {
        Ok(Ok(Some(i))) => Ok(i),
        Ok(Ok(None)) => {
            let mut r = ctx
                .page("join.title")
                .respond(html! { p.flash.err role="alert" { (t(ctx.lang, "acct.err_link")) } });
            *r.status_mut() = StatusCode::NOT_FOUND;
            Err(r)
        }
        Ok(Err(e)) => Err(ctx.internal(e)),
        Err(e) => Err(ctx.internal(e)),
    }
}

/// `GET /join/{secret}`: the invitee chooses a user name and password (or a reset's new
/// password).
pub async fn join_page(
    State(portal): State<Shared>,
    ctx: Ctx,
    Path(secret): Path<String>,
) -> Response {
    let inv = match load_link(&portal, &ctx, &secret).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let (pre, fresh) = match (&ctx.user, &ctx.pre) {
        (None, None) => (Some(qiao_web::session::random_secret()), true),
        _ => (None, false),
    };
    let mut ctx = ctx;
    if let Some(p) = &pre {
        ctx.pre = Some(p.clone());
    }
    let r = ctx
        .page("join.title")
        .respond(join_form(&ctx, &secret, &inv, "", &FormErrors::new()));
    match (fresh, pre) {
        (true, Some(p)) => {
            super::auth::with_cookie(r, &qiao_web::session::pre_cookie(portal.cookies, &p))
        }
        _ => r,
    }
}

/// `POST /join/{secret}`.
pub async fn join_submit(
    State(portal): State<Shared>,
    ctx: Ctx,
    Path(secret): Path<String>,
    form: PostForm,
) -> Response {
    let inv = match load_link(&portal, &ctx, &secret).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let name = form.get("username").to_owned();
    let password = form.raw("password").to_owned();
    let store = portal.hub.store().clone();
    let (s2, n2) = (secret.clone(), name.clone());
    let r =
        match blocking(move || alliance::redeem_invite(store.as_ref(), &s2, &n2, &password, now()))
            .await
        {
            Ok(r) => r,
            Err(e) => return ctx.internal(e),
        };
    match r {
        Ok(u) => redirect_flash(
            &format!("/login?next=%2F&user={}", url_encode(u.id.as_str())),
            "flash.joined",
        ),
        Err(errs) => match errors_of(&ctx, &errs) {
            Ok(errors) => unprocessable(
                ctx.page("join.title")
                    .respond(join_form(&ctx, &secret, &inv, &name, &errors)),
            ),
            Err(r) => r,
        },
    }
}

// --- a site's own pages ---------------------------------------------------------------------------

/// `GET /sites/{site}/open?next=/prescreen`: a link to `site`'s own pages carrying a login
/// assertion the hub signs for that site (2 minutes, single use). The site decides the role.
pub async fn open_site(
    State(portal): State<Shared>,
    ctx: Ctx,
    Path(site): Path<String>,
) -> Response {
    let user: User = match ctx.require(&[]) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let lang = ctx.lang;
    let Ok(site) = site.parse::<SiteId>() else {
        return ctx.not_found();
    };
    let next = qiao_web::session::safe_next(ctx.query.get("next").map(String::as_str));
    let hub = portal.hub.clone();
    let s2 = site.clone();
    let r = blocking(move || {
        let Some(base) = alliance::site_pages(hub.store().as_ref(), &s2)? else {
            return Ok(None);
        };
        Ok::<_, qiao_hub::StoreError>(Some((base, hub.site_login_assertion(&user, &s2)?)))
    })
    .await;
    let (base, assertion) = match r {
        Ok(Ok(Some(v))) => v,
        Ok(Ok(None)) => {
            let mut r = ctx.page("open.title").respond(html! {
                p.flash.err role="alert" { (tf(lang, "open.no_pages", &[("site", site.as_str())])) }
            });
            *r.status_mut() = StatusCode::NOT_FOUND;
            return r;
        }
        Ok(Err(e)) => return ctx.internal(e),
        Err(e) => return ctx.internal(e),
    };
    let href = format!(
        "{base}/alliance/login?assertion={}&next={}",
        url_encode(&assertion),
        url_encode(&next)
    );
    ctx.page("open.title").respond(html! {
        p { (tf(lang, "open.intro", &[("site", site.as_str())])) }
        p { a.button #open-site href=(href) { (tf(lang, "open.go", &[("site", site.as_str())])) } }
        p.muted { (t(lang, "open.note")) }
    })
}

/// `POST /sites/{site}/pages`: where the site's own pages are (an alliance admin or the site's
/// data steward).
pub async fn set_pages(
    State(portal): State<Shared>,
    ctx: Ctx,
    Path(site): Path<String>,
    form: PostForm,
) -> Response {
    let user = match ctx.require(&[UserRole::AllianceAdmin, UserRole::SiteDataSteward]) {
        Ok(u) => u.clone(),
        Err(r) => return r,
    };
    let Ok(site) = site.parse::<SiteId>() else {
        return ctx.not_found();
    };
    let url = form.get("url").to_owned();
    let store = portal.hub.store().clone();
    let r =
        match blocking(move || alliance::set_site_pages(store.as_ref(), &site, &url, &user, now()))
            .await
        {
            Ok(r) => r,
            Err(e) => return ctx.internal(e),
        };
    match r {
        Ok(()) => redirect_flash("/sites", "flash.saved"),
        Err(e) => match errors_of(&ctx, &[e]) {
            Ok(_) => redirect_flash("/sites", "flash.err_site_pages"),
            Err(r) => r,
        },
    }
}

/// The Sites page's section on where each site's own pages are: the address (any signed-in
/// user sees it) and, for an admin or the site's steward, the form to record it.
pub(super) async fn site_pages_section(
    portal: &Shared,
    ctx: &Ctx,
    sites: &[qiao_hub::model::Site],
) -> Markup {
    let lang = ctx.lang;
    let store = portal.hub.store().clone();
    let ids: Vec<SiteId> = sites.iter().map(|s| s.id.clone()).collect();
    let pages = blocking(move || {
        ids.into_iter()
            .map(|s| {
                let p = alliance::site_pages(store.as_ref(), &s).ok().flatten();
                (s, p)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let csrf = ctx.csrf();
    let may = |s: &SiteId| {
        ctx.user.as_ref().is_some_and(|u| {
            u.role == UserRole::AllianceAdmin
                || (u.role == UserRole::SiteDataSteward && u.site.as_ref() == Some(s))
        })
    };
    html! {
        h2 { (t(lang, "sites.pages")) }
        table #site-pages { tbody { @for (s, p) in &pages { tr {
            td { (s) }
            td { @if let Some(u) = p { a href=(format!("/sites/{s}/open")) { (u) } } @else { "–" } }
            td { @if may(s) {
                form.inline method="post" action=(format!("/sites/{s}/pages")) {
                    (csrf_field(&csrf))
                    input type="url" name="url" aria-label=(t(lang, "sites.pages")) value=(p.clone().unwrap_or_default());
                    button type="submit" { (t(lang, "sites.pages_submit")) }
                }
            } }
        } } } }
    }
}
