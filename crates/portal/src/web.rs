//! The request context of a page: language, the signed-in user (session cookie → the hub's
//! session token), the CSRF-checked form extractor and role checks.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use qiao_hub::model::{role_name, User};
use qiao_hub::protocol::UserRole;
use qiao_hub::Hub;
use qiao_web::layout::{error_page, see_other, url_encode, Flash, NavItem, Page, UserBadge};
use qiao_web::session::{self, CookiePolicy, CSRF_FIELD, PRE_COOKIE, SESSION_COOKIE};
use qiao_web::{t, Lang};

/// The portal's shared state.
pub struct Portal {
    /// The hub (store, users, sessions).
    pub hub: Arc<Hub>,
    /// Cookie attributes.
    pub cookies: CookiePolicy,
    /// The portal's public address, without a trailing `/` ([`crate::PortalConfig::public_url`]).
    pub public_url: Option<String>,
}

/// The state type of the portal's routes.
pub type Shared = Arc<Portal>;

/// A role's catalog key.
pub fn role_key(role: UserRole) -> &'static str {
    match role {
        UserRole::AllianceAdmin => "role.alliance_admin",
        UserRole::CommitteeMember => "role.committee_member",
        UserRole::SponsorResearcher => "role.sponsor_researcher",
        UserRole::SiteDataSteward => "role.site_data_steward",
        UserRole::SiteInvestigator => "role.site_investigator",
        UserRole::Auditor => "role.auditor",
    }
}

/// Everything a page handler needs about the request.
pub struct Ctx {
    /// The page language.
    pub lang: Lang,
    /// Path and query of the request.
    pub path: String,
    /// Where the language switch and a sign-in return to: this page for a GET; for a form's
    /// POST (whose URL may only answer POST: a GET there is a 405) the page the form was on,
    /// from the same-origin `Referer`, else the dashboard.
    pub return_to: String,
    /// The signed-in user.
    pub user: Option<User>,
    /// The session token (the CSRF secret) of the signed-in user.
    secret: Option<String>,
    /// The pre-login secret cookie.
    pub pre: Option<String>,
    /// Query parameters.
    pub query: HashMap<String, String>,
    /// The client address.
    pub ip: IpAddr,
    /// The `Host` the request was sent to (`localhost` if absent or not a plain host name).
    pub host: String,
}

fn query_map(uri: &axum::http::Uri) -> HashMap<String, String> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|axum::extract::Query(v)| v.into_iter().collect())
        .unwrap_or_default()
}

fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// The signed-in user of a request's session cookie (session tokens only, not API tokens).
async fn session_user(hub: &Arc<Hub>, headers: &HeaderMap) -> Option<(String, User)> {
    let token = session::cookie(headers, SESSION_COOKIE)?;
    if !token.starts_with(qiao_hub::auth::SESSION_PREFIX) {
        return None;
    }
    let h = hub.clone();
    let t2 = token.clone();
    let found = tokio::task::spawn_blocking(move || h.token_user(&t2))
        .await
        .ok()?
        .map_err(|e| tracing::error!("portal session lookup: {e}"))
        .ok()??;
    let (rec, user) = found;
    (rec.kind == qiao_hub::model::TokenKind::Session).then_some((token, user))
}

/// The request's `Host` header when it is a plain `host[:port]` (letters, digits, `.-:[]`),
/// else `localhost`.
fn request_host(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost")
        .to_owned()
}

/// The path and query of a `Referer` (`Referrer-Policy: same-origin` sends it only from this
/// origin); only a local path (`/…`, not `//…`) is taken.
fn referer_path(headers: &axum::http::HeaderMap) -> Option<String> {
    let r = headers.get(axum::http::header::REFERER)?.to_str().ok()?;
    let path = match r.split_once("://") {
        Some((_, rest)) => &rest[rest.find('/')?..],
        None => r,
    };
    (path.starts_with('/') && !path.starts_with("//")).then(|| path.to_owned())
}

impl FromRequestParts<Shared> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, portal: &Shared) -> Result<Self, Response> {
        let lang = Lang::negotiate(&parts.headers);
        let (secret, user) = match session_user(&portal.hub, &parts.headers).await {
            Some((s, u)) => (Some(s), Some(u)),
            None => (None, None),
        };
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        let return_to = if parts.method == axum::http::Method::GET
            || parts.method == axum::http::Method::HEAD
        {
            path.clone()
        } else {
            referer_path(&parts.headers).unwrap_or_else(|| "/".to_owned())
        };
        Ok(Ctx {
            lang,
            path,
            return_to,
            user,
            secret,
            pre: session::cookie(&parts.headers, PRE_COOKIE),
            query: query_map(&parts.uri),
            ip: client_ip(parts),
            host: request_host(&parts.headers),
        })
    }
}

/// The navigation of a role.
pub fn nav_for(role: UserRole) -> Vec<NavItem> {
    let mut nav = vec![NavItem::new("/", "nav.dashboard")];
    nav.push(NavItem::new("/projects", "nav.projects"));
    nav.push(NavItem::new("/institutions", "nav.institutions"));
    if matches!(
        role,
        UserRole::AllianceAdmin | UserRole::CommitteeMember | UserRole::Auditor
    ) {
        nav.push(NavItem::new("/committee", "nav.committee"));
    }
    nav.push(NavItem::new("/library", "nav.library"));
    if role == UserRole::AllianceAdmin {
        nav.push(NavItem::new("/admin/users", "nav.users"));
    }
    if matches!(role, UserRole::AllianceAdmin | UserRole::Auditor) {
        nav.push(NavItem::new("/audit", "nav.audit"));
    }
    nav.push(NavItem::new("/sites", "nav.sites"));
    if matches!(
        role,
        UserRole::SponsorResearcher | UserRole::SiteInvestigator
    ) {
        nav.push(NavItem::new("/budget", "nav.budget"));
    }
    nav
}

impl Ctx {
    /// The signed-in session's token.
    pub fn session_token(&self) -> Option<&str> {
        self.secret.as_deref()
    }

    /// The CSRF token for forms on this page (the session's, else the pre-login cookie's).
    pub fn csrf(&self) -> String {
        match (&self.secret, &self.pre) {
            (Some(s), _) | (None, Some(s)) => session::csrf_token(s),
            (None, None) => String::new(),
        }
    }

    /// A page titled by catalog key `title_key`, with the navigation of the user's role, the
    /// user badge and a flash message from `?flash=`.
    pub fn page(&self, title_key: &'static str) -> Page {
        let mut page = Page::new(self.lang, title_key, self.return_to.clone());
        page.flash = Flash::from_query(self.lang, self.query.get("flash").map(String::as_str));
        if let Some(u) = &self.user {
            page.nav = nav_for(u.role);
            page.user = Some(UserBadge {
                name: u.id.to_string(),
                role: t(self.lang, role_key(u.role)).to_owned(),
                csrf: self.csrf(),
                logout_action: "/logout".to_owned(),
            });
        }
        page
    }

    /// The signed-in user holding one of `roles` (any role if empty); else a redirect to the
    /// sign-in page (anonymous) or a 403 page.
    pub fn require(&self, roles: &[UserRole]) -> Result<&User, Response> {
        let Some(u) = &self.user else {
            return Err(see_other(&format!(
                "/login?next={}",
                url_encode(&self.return_to)
            )));
        };
        if roles.is_empty() || roles.contains(&u.role) {
            Ok(u)
        } else {
            Err(self.forbidden())
        }
    }

    /// A project action's preamble: the signed-in user (any role; the action checks its own)
    /// and the project id of the path, else the sign-in redirect or a 404 page.
    pub fn require_project(
        &self,
        id: &str,
    ) -> Result<(User, qiao_hub::protocol::ProjectId), Response> {
        let user = self.require(&[])?.clone();
        let pid = id.parse().map_err(|_| self.not_found())?;
        Ok((user, pid))
    }

    /// An error page that keeps the user's navigation.
    fn error_with_nav(
        &self,
        status: StatusCode,
        title: &'static str,
        text: &'static str,
    ) -> Response {
        let mut r = self
            .page(title)
            .respond(qiao_web::html! { p.error role="alert" { (t(self.lang, text)) } });
        *r.status_mut() = status;
        r
    }

    /// A 403 page (with the navigation).
    pub fn forbidden(&self) -> Response {
        self.error_with_nav(
            StatusCode::FORBIDDEN,
            "error.forbidden",
            "error.forbidden_text",
        )
    }

    /// A 404 page (with the navigation).
    pub fn not_found(&self) -> Response {
        self.error_with_nav(
            StatusCode::NOT_FOUND,
            "error.not_found",
            "error.not_found_text",
        )
    }

    /// A 500 page (the cause is logged, not shown).
    pub fn internal(&self, cause: impl std::fmt::Debug) -> Response {
        tracing::error!("portal {}: {cause:?}", self.path);
        error_page(
            self.lang,
            StatusCode::INTERNAL_SERVER_ERROR,
            "error.title",
            t(self.lang, "error.internal"),
        )
    }

    /// The wire name of the user's role (for logs).
    pub fn role_name(&self) -> &'static str {
        self.user
            .as_ref()
            .map(|u| role_name(u.role))
            .unwrap_or("anonymous")
    }
}

/// A submitted `application/x-www-form-urlencoded` form whose CSRF field matched the session
/// (or, before sign-in, the pre-login cookie). Every POST handler takes one, so no POST runs
/// without the check.
pub struct PostForm {
    fields: Vec<(String, String)>,
}

impl PostForm {
    /// The first value of `name` (trimmed), or `""`.
    pub fn get(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .unwrap_or("")
    }

    /// The value of `name` without trimming.
    pub fn raw(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value of `name` (checkbox groups, multi-selects).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .collect()
    }

    /// A form from fields (tests of validation functions).
    pub fn from_fields(fields: &[(&str, &str)]) -> Self {
        Self {
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

impl FromRequest<Shared> for PostForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Shared) -> Result<Self, Response> {
        let lang = Lang::negotiate(req.headers());
        let secret = session::cookie(req.headers(), SESSION_COOKIE)
            .or_else(|| session::cookie(req.headers(), PRE_COOKIE));
        let Form(fields) = Form::<Vec<(String, String)>>::from_request(req, state)
            .await
            .map_err(|_| {
                error_page(
                    lang,
                    StatusCode::BAD_REQUEST,
                    "error.title",
                    t(lang, "error.bad_request"),
                )
            })?;
        let form = PostForm { fields };
        let ok = secret.is_some_and(|s| session::csrf_ok(&s, form.get(CSRF_FIELD)));
        if !ok {
            return Err(error_page(
                lang,
                StatusCode::FORBIDDEN,
                "error.title",
                t(lang, "error.csrf"),
            ));
        }
        Ok(form)
    }
}

/// Runs blocking store work off the async threads.
pub async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())
}

/// A redirect with a flash message key.
pub fn redirect_flash(path: &str, flash: &str) -> Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    see_other(&format!("{path}{sep}flash={flash}"))
}

/// `IntoResponse` for handler results.
pub type PageResult = Result<Response, Response>;

/// Unwraps either side of a [`PageResult`].
pub fn respond(r: PageResult) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}
