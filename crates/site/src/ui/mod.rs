//! `qiao site ui`: the site's own web pages, served only on the hospital's network.
//!
//! - the **data steward**: the approval queue (approve, or deny with a reason), the site policy
//!   (per query type auto / manual / deny, threshold, obfuscation, DP budget; every field
//!   validated, the error shown next to it, one atomic write), and the audit log with its hash
//!   chain verified on every view;
//! - the **investigator**: the pre-screening list of a project's cohort at this site (person
//!   ids and index dates), run locally on the definitions the site received from the hub for
//!   that project; every access audited; nothing of it ever goes to the hub.
//!
//! Accounts are the site's local ones ([`crate::users`], argon2id). Sessions live in memory
//! (a restart signs everyone out). Pages are server-rendered with the shared `qiao_web` layout
//! and catalogs (zh-CN / en), work without JavaScript (forms, POST-redirect-GET), and carry the
//! security headers (CSP `default-src 'self'`, `X-Frame-Options: DENY`); every POST checks the
//! session's CSRF token.

mod alliance;
mod listing;
mod pages;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use qiao_audit::EntryDraft;
use qiao_store::Store;
use qiao_web::layout::{self, FormErrors, InputKind, NavItem, Page, UserBadge};
use qiao_web::session::{self, CookiePolicy};
use qiao_web::{html, t, tf, Lang, Markup};
use serde::Deserialize;

use crate::audit;
use crate::data::{now_unix, SiteDir};
use crate::users::{LocalRole, Users};
use qiao_accounts::{Limits, SignInLimiter};

/// How long a session lasts (8 hours).
const SESSION_SECS: i64 = 8 * 3600;

/// What `qiao site ui` serves.
#[derive(Clone, Debug)]
pub struct UiOptions {
    /// The site's data directory.
    pub data: PathBuf,
    /// The site's store.
    pub store: PathBuf,
    /// Where to listen (a hospital-internal address).
    pub listen: SocketAddr,
    /// Plain HTTP: cookies without `Secure` (local tests and demos only; put a TLS-terminating
    /// proxy in front otherwise).
    pub insecure_http: bool,
}

/// A signed-in local user.
#[derive(Clone, Debug)]
struct Session {
    user: String,
    role: LocalRole,
    expires_at: i64,
}

/// Shared state of the pages.
pub(crate) struct Ui {
    dir: SiteDir,
    store: Store,
    site_name: String,
    cookies: CookiePolicy,
    sessions: Mutex<HashMap<String, Session>>,
    /// Failed sign-ins per account and per source address (the hub's limits).
    limiter: SignInLimiter,
    /// This site's id (the audience of alliance login assertions).
    site_id: qiao_protocol::SiteId,
    /// The hub key pinned at enrollment (signs alliance login assertions).
    hub_key: ed25519_dalek::VerifyingKey,
    /// Alliance login nonces used (single use).
    logins: Mutex<qiao_protocol::login::SeenLogins>,
}

/// The signed-in user of a request, with the session's CSRF token.
pub(crate) struct Signed {
    user: String,
    role: LocalRole,
    csrf: String,
    token: String,
}

impl Ui {
    fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let token = session::cookie(headers, session::SESSION_COOKIE)?;
        let mut sessions = self.sessions.lock().ok()?;
        let now = now_unix();
        sessions.retain(|_, s| s.expires_at > now);
        let s = sessions.get(&token)?.clone();
        Some((token, s))
    }

    /// The signed-in user of a request, in the role the site's accounts give them *now*: the
    /// role is read again on every request, so a steward's change (an alliance user's grant
    /// withdrawn or changed, a local account removed) applies to open sessions at once; a
    /// session whose user holds no role any more ends.
    fn signed(&self, headers: &HeaderMap) -> Option<Signed> {
        let (token, s) = self.session(headers)?;
        let current = match Users::load(&self.dir) {
            Ok(u) => u.role_of(&s.user),
            Err(e) => {
                tracing::error!("site ui: reading the accounts: {e:#}");
                None
            }
        };
        let Some(role) = current else {
            if let Ok(mut sessions) = self.sessions.lock() {
                sessions.remove(&token);
            }
            self.audit(
                EntryDraft::new(now_unix(), audit::user(&s.user), "ui.session_end").decision(
                    format!(
                        "session ended: {} holds no role at this site any more",
                        s.user
                    ),
                ),
            );
            return None;
        };
        if role != s.role {
            if let Ok(mut sessions) = self.sessions.lock() {
                if let Some(open) = sessions.get_mut(&token) {
                    open.role = role;
                }
            }
        }
        Some(Signed {
            user: s.user,
            role,
            csrf: session::csrf_token(&token),
            token,
        })
    }

    /// The page shell for a signed-in user.
    fn page(&self, lang: Lang, title_key: &'static str, path: &str, who: &Signed) -> Page {
        let mut p = Page::new(lang, title_key, path);
        p.brand_key = "app.site";
        p.nav = match who.role {
            LocalRole::Steward => vec![
                NavItem::new("/approvals", "site.nav.approvals"),
                NavItem::new("/policy", "site.nav.policy"),
                NavItem::new("/audit", "site.nav.audit"),
                NavItem::new("/accounts", "site.nav.accounts"),
            ],
            LocalRole::Investigator => vec![NavItem::new("/prescreen", "site.nav.prescreen")],
        };
        p.user = Some(UserBadge {
            name: who.user.clone(),
            role: t(lang, role_key(who.role)).to_owned(),
            csrf: who.csrf.clone(),
            logout_action: "/logout".to_owned(),
        });
        p
    }

    fn audit(&self, draft: EntryDraft) {
        if let Err(e) = audit::append(&self.dir, draft) {
            tracing::error!("site ui: appending to the audit log: {e:#}");
        }
    }
}

fn role_key(role: LocalRole) -> &'static str {
    match role {
        LocalRole::Steward => "site.role.steward",
        LocalRole::Investigator => "site.role.investigator",
    }
}

/// A page not shown: the redirect to the login page, or the refusal.
pub(crate) struct Gate(Box<Response>);

impl IntoResponse for Gate {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// The signed-in user if they hold `role`; else a redirect to the login page, or a refusal
/// (audited) naming who they are and what the page needs.
pub(crate) fn require(
    ui: &Ui,
    headers: &HeaderMap,
    role: LocalRole,
    path: &str,
) -> Result<Signed, Gate> {
    let lang = Lang::negotiate(headers);
    let Some(who) = ui.signed(headers) else {
        return Err(Gate(Box::new(layout::see_other(&format!(
            "/login?next={}",
            layout::url_encode(path)
        )))));
    };
    if who.role == role {
        return Ok(who);
    }
    let action = if role == LocalRole::Investigator {
        "prescreen.deny"
    } else {
        "ui.refused"
    };
    ui.audit(
        EntryDraft::new(now_unix(), audit::user(&who.user), action).decision(format!(
            "refused {path}: a {} page, user is a {}",
            role, who.role
        )),
    );
    let message = tf(
        lang,
        "site.refused.role",
        &[
            ("user", &who.user),
            ("role", t(lang, role_key(who.role))),
            ("needed", t(lang, role_key(role))),
            ("site", &ui.site_name),
        ],
    );
    let page = ui.page(lang, "site.refused.title", path, &who);
    Err(Gate(Box::new(layout::html_response(
        StatusCode::FORBIDDEN,
        page.render(html! { p.error role="alert" { (message) } }),
    ))))
}

/// Checks a POST's CSRF token against the session.
pub(crate) fn csrf_checked(who: &Signed, submitted: &str, lang: Lang) -> Result<(), Gate> {
    if session::csrf_ok(&who.token, submitted) {
        Ok(())
    } else {
        Err(Gate(Box::new(csrf_refused(lang))))
    }
}

/// The answer to a POST whose CSRF token is missing or wrong.
fn csrf_refused(lang: Lang) -> Response {
    layout::error_page(
        lang,
        StatusCode::FORBIDDEN,
        "site.refused.title",
        t(lang, "flash.err_csrf"),
    )
}

/// Serves the pages on `o.listen` until `shutdown` completes.
pub async fn serve_ui(
    o: &UiOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(o.listen)
        .await
        .with_context(|| format!("listening on {}", o.listen))?;
    serve_ui_on(o, listener, shutdown).await
}

/// Serves the pages on a bound listener (`o.listen` is ignored) until `shutdown` completes.
pub async fn serve_ui_on(
    o: &UiOptions,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let dir = SiteDir::open(&o.data)?;
    let config = dir.config()?;
    let store = Store::open(&o.store).with_context(|| format!("opening {}", o.store.display()))?;
    let ui = Arc::new(Ui {
        dir,
        store,
        site_name: config.site_id.to_string(),
        cookies: CookiePolicy {
            secure: !o.insecure_http,
        },
        sessions: Mutex::new(HashMap::new()),
        limiter: SignInLimiter::new(Limits::default()),
        site_id: config.site_id.clone(),
        hub_key: *config.hub_public_key.verifying_key(),
        logins: Mutex::new(qiao_protocol::login::SeenLogins::new(now_unix())),
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("site ui for {} on {addr}", ui.site_name);
    }
    axum::serve(
        listener,
        router(ui).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("serving the site ui")
}

/// The routes.
pub(crate) fn router(ui: Arc<Ui>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .merge(pages::routes())
        .merge(alliance::routes())
        .merge(qiao_web::assets::routes(ui.cookies))
        .layer(axum::middleware::from_fn(qiao_web::zone::zone_scope))
        .layer(axum::middleware::from_fn(session::security_headers))
        .with_state(ui)
}

async fn home(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    match ui.signed(&headers) {
        None => layout::see_other("/login"),
        Some(who) => layout::see_other(home_of(who.role)),
    }
}

fn home_of(role: LocalRole) -> &'static str {
    match role {
        LocalRole::Steward => "/approvals",
        LocalRole::Investigator => "/prescreen",
    }
}

#[derive(Deserialize, Default)]
struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize, Default)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

fn login_form(
    ui: &Ui,
    lang: Lang,
    csrf: &str,
    user: &str,
    next: &str,
    errors: &FormErrors,
) -> Markup {
    let mut page = Page::new(lang, "site.login.title", "/login");
    page.brand_key = "app.site";
    page.render(html! {
        p { (tf(lang, "site.login.intro", &[("site", &ui.site_name)])) }
        form.login method="post" action="/login" {
            (layout::csrf_field(csrf))
            input type="hidden" name="next" value=(next);
            (layout::field(lang, InputKind::Text, "user", "site.login.user", user, errors))
            (layout::field(lang, InputKind::Password, "password", "site.login.password", "", errors))
            (layout::submit(lang, "site.login.submit"))
        }
        p.muted { (t(lang, "site.alliance.hint")) }
    })
}

async fn login_page(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let lang = Lang::negotiate(&headers);
    let (pre, fresh) = match session::cookie(&headers, session::PRE_COOKIE) {
        Some(p) => (p, false),
        None => (session::random_secret(), true),
    };
    let next = session::safe_next(q.next.as_deref());
    let body = login_form(
        &ui,
        lang,
        &session::csrf_token(&pre),
        "",
        &next,
        &FormErrors::new(),
    );
    let mut resp = layout::html_response(StatusCode::OK, body);
    if fresh {
        set_cookie(&mut resp, &session::pre_cookie(ui.cookies, &pre));
    }
    resp
}

fn set_cookie(resp: &mut Response, value: &str) {
    if let Ok(v) = value.parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

async fn login(
    State(ui): State<Arc<Ui>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let lang = Lang::negotiate(&headers);
    let Some(pre) = session::cookie(&headers, session::PRE_COOKIE) else {
        return layout::see_other("/login");
    };
    if !session::csrf_ok(&pre, &f.csrf) {
        return csrf_refused(lang);
    }
    let next = session::safe_next(Some(&f.next));
    // A slot is reserved for the account and the address before the password is checked.
    let attempt = match ui
        .limiter
        .begin(&f.user, peer.ip(), std::time::Instant::now())
    {
        Ok(a) => a,
        Err(limited) => {
            ui.audit(
                EntryDraft::new(now_unix(), audit::user(&f.user), "ui.login_fail").decision(
                    format!(
                        "rate_limited: too many failed sign-ins; from {}; retry in {} s",
                        peer.ip(),
                        limited.retry_after_secs
                    ),
                ),
            );
            let mut errors = FormErrors::new();
            errors.add(
                "password",
                tf(
                    lang,
                    "site.login.rate_limited",
                    &[
                        ("site", &ui.site_name),
                        ("secs", &limited.retry_after_secs.to_string()),
                    ],
                ),
            );
            let body = login_form(&ui, lang, &f.csrf, &f.user, &next, &errors);
            let mut resp = layout::html_response(StatusCode::TOO_MANY_REQUESTS, body);
            if let Ok(v) = limited.retry_after_secs.to_string().parse() {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
    };
    let ui2 = Arc::clone(&ui);
    let (user, password) = (f.user.clone(), f.password.clone());
    // argon2 is deliberately slow: off the async workers.
    let role = tokio::task::spawn_blocking(move || {
        let role = Users::load(&ui2.dir)
            .ok()
            .and_then(|u| u.users.get(&user).map(|u| u.role))
            .unwrap_or(LocalRole::Investigator);
        Users::authenticate(&ui2.dir, &user, &password, role).map(|()| role)
    })
    .await
    .unwrap_or_else(|e| Err(anyhow::anyhow!("login task: {e}")));
    let role = match role {
        Ok(r) => r,
        Err(e) => {
            attempt.failed(std::time::Instant::now());
            ui.audit(
                EntryDraft::new(now_unix(), audit::user(&f.user), "ui.login_fail")
                    .decision(format!("refused: {e}; from {}", peer.ip())),
            );
            let mut errors = FormErrors::new();
            errors.add(
                "password",
                tf(lang, "site.login.failed", &[("site", &ui.site_name)]),
            );
            let body = login_form(&ui, lang, &f.csrf, &f.user, &next, &errors);
            return layout::html_response(StatusCode::UNAUTHORIZED, body);
        }
    };
    attempt.succeeded();
    let token = session::random_secret();
    if let Ok(mut s) = ui.sessions.lock() {
        s.insert(
            token.clone(),
            Session {
                user: f.user.clone(),
                role,
                expires_at: now_unix() + SESSION_SECS,
            },
        );
    }
    ui.audit(
        EntryDraft::new(now_unix(), audit::user(&f.user), "ui.login")
            .decision(format!("signed in to the site pages as {role}")),
    );
    let target = if next == "/" {
        home_of(role).to_owned()
    } else {
        next
    };
    let mut resp = layout::see_other(&target);
    set_cookie(
        &mut resp,
        &session::session_cookie(ui.cookies, &token, SESSION_SECS),
    );
    set_zone_cookie(&ui, &mut resp, &f.user);
    resp
}

/// Sets the zone cookie from the zone `user` chose here (none: the page language's).
fn set_zone_cookie(ui: &Ui, resp: &mut Response, user: &str) {
    let zone = crate::users::zone_of(&ui.dir, user).unwrap_or_else(|e| {
        tracing::error!("site ui: reading the accounts: {e:#}");
        None
    });
    set_cookie(
        resp,
        &qiao_web::zone::zone_cookie(ui.cookies, zone.as_deref()),
    );
}

#[derive(Deserialize, Default)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let lang = Lang::negotiate(&headers);
    if let Some((token, _)) = ui.session(&headers) {
        if !session::csrf_ok(&token, &f.csrf) {
            return csrf_refused(lang);
        }
        if let Ok(mut s) = ui.sessions.lock() {
            s.remove(&token);
        }
    }
    let mut resp = layout::see_other("/login");
    set_cookie(&mut resp, &session::clear_session_cookie(ui.cookies));
    resp
}
