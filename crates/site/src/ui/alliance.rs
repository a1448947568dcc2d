//! Alliance sign-in at the site's pages, and the steward's page granting alliance users a
//! local role.
//!
//! `POST /alliance/login` takes a login assertion the hub signed for this site
//! ([`qiao_protocol::login`]): checked against the hub key pinned at enrollment, for this
//! site only, at most 2 minutes old, used once. The user then acts here in the local role the
//! steward granted (`/accounts`), never in one the hub names. Every outcome is audited.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use qiao_audit::EntryDraft;
use qiao_protocol::login::{open_login, LoginClaims, LoginRefused};
use qiao_web::i18n::fmt_datetime;
use qiao_web::layout::{self, Flash, FormErrors, InputKind, Page};
use qiao_web::session;
use qiao_web::{html, t, tf, Lang};
use serde::Deserialize;

use super::{csrf_checked, home_of, require, role_key, set_cookie, Session, Signed, Ui};
use crate::audit;
use crate::data::now_unix;
use crate::users::{LocalRole, Users, ALLIANCE_PREFIX};

pub(super) fn routes() -> Router<Arc<Ui>> {
    Router::new()
        .route("/alliance/login", get(alliance_link).post(alliance_login))
        .route("/accounts", get(accounts).post(accounts_save))
}

#[derive(Deserialize, Default)]
struct AssertionForm {
    #[serde(default)]
    assertion: String,
    #[serde(default)]
    next: String,
}

impl Ui {
    /// Checks an assertion: signature by the pinned hub key, audience, lifetime, then the
    /// nonce (consumed even if no role is granted).
    fn open_assertion(&self, assertion: &str, now: i64) -> Result<LoginClaims, LoginRefused> {
        let claims = open_login(assertion, &self.hub_key, &self.site_id, now)?;
        let mut seen = self.logins.lock().map_err(|_| LoginRefused::Replayed)?;
        seen.admit(&claims, now)?;
        Ok(claims)
    }
}

fn refused_page(lang: Lang, status: StatusCode, message: String) -> Response {
    let mut page = Page::new(lang, "site.alliance.title", "/alliance/login");
    page.brand_key = "app.site";
    layout::html_response(
        status,
        page.render(html! {
            p.error role="alert" { (message) }
            p { a href="/login" { (t(lang, "site.alliance.local_login")) } }
        }),
    )
}

/// `GET /alliance/login?assertion=…`: the portal's link (a form cannot post here: the portal's
/// pages allow forms to their own origin only).
async fn alliance_link(
    State(ui): State<Arc<Ui>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(f): Query<AssertionForm>,
) -> Response {
    sign_in(&ui, peer, &headers, &f)
}

async fn alliance_login(
    State(ui): State<Arc<Ui>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<AssertionForm>,
) -> Response {
    sign_in(&ui, peer, &headers, &f)
}

fn sign_in(ui: &Ui, peer: SocketAddr, headers: &HeaderMap, f: &AssertionForm) -> Response {
    let lang = Lang::negotiate(headers);
    let now = now_unix();
    let claims = match ui.open_assertion(&f.assertion, now) {
        Ok(c) => c,
        Err(e) => {
            ui.audit(
                EntryDraft::new(now, audit::user("(alliance)"), "ui.login_fail")
                    .decision(format!("alliance sign-in refused: {e}; from {}", peer.ip())),
            );
            return refused_page(
                lang,
                StatusCode::UNAUTHORIZED,
                tf(lang, "site.alliance.refused", &[("site", &ui.site_name)]),
            );
        }
    };
    let name = format!("{ALLIANCE_PREFIX}{}", claims.user);
    let role = Users::load(&ui.dir).ok().and_then(|u| u.role_of(&name));
    let Some(role) = role else {
        ui.audit(
            EntryDraft::new(now, audit::user(&name), "ui.login_fail").decision(format!(
                "alliance sign-in refused: no local role granted at this site; from {}",
                peer.ip()
            )),
        );
        return refused_page(
            lang,
            StatusCode::FORBIDDEN,
            tf(
                lang,
                "site.alliance.no_role",
                &[("user", claims.user.as_str()), ("site", &ui.site_name)],
            ),
        );
    };
    let token = session::random_secret();
    if let Ok(mut s) = ui.sessions.lock() {
        s.insert(
            token.clone(),
            Session {
                user: name.clone(),
                role,
                expires_at: now + super::SESSION_SECS,
            },
        );
    }
    ui.audit(
        EntryDraft::new(now, audit::user(&name), "ui.login").decision(format!(
            "signed in to the site pages as {role} with the alliance's assertion (alliance role {})",
            serde_json::to_value(claims.role)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        )),
    );
    let next = session::safe_next(Some(&f.next));
    let target = if next == "/" {
        home_of(role).to_owned()
    } else {
        next
    };
    // The session cookie is SameSite=Strict: it is not sent on the redirect of a cross-site
    // POST, so the user continues with a same-site link.
    let who = Signed {
        user: name,
        role,
        csrf: session::csrf_token(&token),
        token: token.clone(),
    };
    let page = ui.page(lang, "site.alliance.title", "/alliance/login", &who);
    let mut resp = layout::html_response(
        StatusCode::OK,
        page.render(html! {
            p { (tf(lang, "site.alliance.welcome", &[("user", claims.user.as_str()), ("role", t(lang, role_key(role))), ("site", &ui.site_name)])) }
            p { a.button #continue href=(target) { (t(lang, "site.alliance.continue")) } }
        }),
    );
    set_cookie(
        &mut resp,
        &session::session_cookie(ui.cookies, &token, super::SESSION_SECS),
    );
    super::set_zone_cookie(ui, &mut resp, &who.user);
    resp
}

// --- the steward's grants ----------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct FlashQuery {
    flash: Option<String>,
}

#[derive(Deserialize, Default)]
struct GrantForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    role: String,
}

fn render_accounts(
    ui: &Ui,
    lang: Lang,
    who: &Signed,
    flash: Option<Flash>,
    form: Option<(&GrantForm, FormErrors)>,
) -> Response {
    let users = match Users::load(&ui.dir) {
        Ok(u) => u,
        Err(e) => {
            tracing::error!("site ui: reading users: {e:#}");
            return layout::error_page(
                lang,
                StatusCode::INTERNAL_SERVER_ERROR,
                "site.refused.title",
                t(lang, "error.internal"),
            );
        }
    };
    let mut page = ui.page(lang, "site.accounts.title", "/accounts", who);
    page.flash = flash;
    let (values, errors) = match &form {
        Some((f, e)) => (Some(*f), e.clone()),
        None => (None, FormErrors::new()),
    };
    let roles = [
        (
            "investigator".to_owned(),
            t(lang, "site.role.investigator").to_owned(),
        ),
        (
            "steward".to_owned(),
            t(lang, "site.role.steward").to_owned(),
        ),
        (
            "none".to_owned(),
            t(lang, "site.accounts.withdraw").to_owned(),
        ),
    ];
    let body = html! {
        p { (tf(lang, "site.accounts.intro", &[("site", &ui.site_name)])) }
        h2 { (t(lang, "site.accounts.local")) }
        table { thead { tr { th { (t(lang, "site.login.user")) } th { (t(lang, "site.accounts.role")) } th { (t(lang, "site.accounts.created")) } } }
            tbody { @for (name, u) in &users.users { tr { td { (name) } td { (t(lang, role_key(u.role))) } td { (fmt_datetime(lang, u.created_at)) } } } } }
        h2 { (t(lang, "site.accounts.alliance")) }
        @if users.alliance.is_empty() { p.empty { (t(lang, "site.accounts.none")) } } @else {
            table #grants { thead { tr { th { (t(lang, "site.accounts.hub_user")) } th { (t(lang, "site.accounts.role")) } } }
                tbody { @for (id, r) in &users.alliance { tr { td { (id) } td { (t(lang, role_key(*r))) } } } } }
        }
        @if let Some(e) = errors.get("form") { p.flash.err role="alert" { (e) } }
        form.card method="post" action="/accounts" {
            (layout::csrf_field(&who.csrf))
            (layout::field(lang, InputKind::Text, "user", "site.accounts.hub_user", values.map(|v| v.user.as_str()).unwrap_or(""), &errors))
            (layout::select(lang, "role", "site.accounts.role", &roles, values.map(|v| v.role.as_str()).unwrap_or("investigator"), &errors))
            (layout::submit(lang, "site.accounts.grant"))
        }
    };
    let status = if form.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    layout::html_response(status, page.render(body))
}

async fn accounts(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Query(q): Query<FlashQuery>,
) -> Result<Response, super::Gate> {
    let who = require(&ui, &headers, LocalRole::Steward, "/accounts")?;
    let lang = Lang::negotiate(&headers);
    Ok(render_accounts(
        &ui,
        lang,
        &who,
        Flash::from_query(lang, q.flash.as_deref()),
        None,
    ))
}

async fn accounts_save(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Form(f): Form<GrantForm>,
) -> Result<Response, super::Gate> {
    let who = require(&ui, &headers, LocalRole::Steward, "/accounts")?;
    let lang = Lang::negotiate(&headers);
    csrf_checked(&who, &f.csrf, lang)?;
    let role = match f.role.as_str() {
        "investigator" => Some(LocalRole::Investigator),
        "steward" => Some(LocalRole::Steward),
        _ => None,
    };
    let user = f.user.trim().to_owned();
    match Users::grant(&ui.dir, &user, role) {
        Ok(()) => {
            ui.audit(
                EntryDraft::new(now_unix(), audit::user(&who.user), "user.grant").decision(
                    match role {
                        Some(r) => format!("alliance user {user} may act here as {r}"),
                        None => format!("alliance user {user}'s local role withdrawn"),
                    },
                ),
            );
            Ok(layout::see_other("/accounts?flash=flash.saved"))
        }
        Err(e) => {
            tracing::info!("site ui: grant refused: {e:#}");
            let key = if role.is_none() {
                "site.accounts.err_none"
            } else {
                "site.accounts.err_id"
            };
            let mut errors = FormErrors::new();
            errors.add("user", t(lang, key));
            Ok(render_accounts(&ui, lang, &who, None, Some((&f, errors))))
        }
    }
}
