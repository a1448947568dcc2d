//! The HTTP API: routes, authentication, authorization and handlers.
//!
//! Every handler checks the caller's role (and project membership where it applies) before it
//! reads anything, runs storage work on the blocking pool, and answers only after the storage
//! transaction has committed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State,
};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use qiao_audit::{Actor, EntryDraft};
use qiao_protocol::{
    EnrollError, EnrollRequest, EnrollResponse, Envelope, Job, JobId, Message, MessageKind, Opened,
    ProjectId, PublicKey, QueryType, ReplayGuard, Requester, Signer, SiteId, SiteStatus,
    StoredToken, UserId, UserRole, Verifier, VerifyError,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;

use crate::auth::{self, SignInLimiter};
use crate::error::ApiError;
use crate::model::{
    role_name, token_id, valid_text, Project, Site, SiteSeen, SiteView, TokenKind, TokenRecord,
    TokenView, User, UserView,
};
use crate::store::{EnrollFailure, HubStore, Quotas, ResultOutcome, StoreError};
use crate::util::{now, random_token, token_hash};
use crate::view::job_view;

/// Largest request body of the user API, in bytes.
pub const MAX_API_BODY: usize = 2 * 1024 * 1024;
/// Largest request body of the site endpoints (a signed envelope), in bytes.
pub const MAX_SITE_BODY: usize = qiao_protocol::envelope::MAX_ENVELOPE_BYTES;
/// Largest cohort definition accepted, in bytes of compact JSON (the largest definition of the
/// OHDSI PhenotypeLibrary is about 420 KB pretty-printed).
pub const MAX_DEFINITION_BYTES: usize = 512 * 1024;
/// Unauthenticated submissions accepted per source address per hour.
pub const ANONYMOUS_PER_ADDRESS_PER_HOUR: usize = 5;
/// Unauthenticated submissions accepted in all per hour.
pub const ANONYMOUS_PER_HOUR: usize = 50;
/// Default long-poll wait, in seconds.
pub const DEFAULT_WAIT_SECS: u64 = 25;
/// Longest long-poll wait, in seconds.
pub const MAX_WAIT_SECS: u64 = 60;

/// Hub settings.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// A job delivered to a site and still without its result is delivered again to that site
    /// after this many seconds.
    pub redeliver_secs: i64,
    /// Session token lifetime.
    pub session_ttl_secs: i64,
    /// Default enrollment token lifetime.
    pub enrollment_ttl_secs: i64,
    /// Accepted clock skew for signed envelopes, either way.
    pub max_skew_secs: i64,
    /// Failed sign-ins allowed per account and per source address.
    pub login_limits: auth::Limits,
    /// Job submissions allowed per user and per project.
    pub quotas: Quotas,
    /// Time allowed for a request's body to arrive.
    pub body_timeout: Duration,
    /// The alliance's disclosure floors, stated in every job ([`crate::floors`]).
    pub floors: qiao_protocol::Floors,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            redeliver_secs: 30,
            session_ttl_secs: 12 * 3600,
            enrollment_ttl_secs: 7 * 86_400,
            max_skew_secs: qiao_protocol::envelope::DEFAULT_MAX_SKEW_SECS,
            login_limits: auth::Limits::default(),
            quotas: Quotas::default(),
            body_timeout: crate::serve::BODY_READ_TIMEOUT,
            floors: qiao_protocol::Floors::default(),
        }
    }
}

/// The running hub's state.
pub struct Hub {
    store: Arc<dyn HubStore>,
    signer: Signer,
    verifier: RwLock<Verifier>,
    replay: Mutex<ReplayGuard>,
    limiter: SignInLimiter,
    /// Unauthenticated submissions (membership applications): per address and in all.
    anonymous: SignInLimiter,
    jobs_changed: Notify,
    /// Last poll time and status per site (memory only).
    seen: Mutex<std::collections::HashMap<SiteId, SiteSeen>>,
    config: HubConfig,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("store", &self.store)
            .field("key_id", &self.signer.key_id())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Loads (or creates) the hub's signing key and the enrolled sites' keys.
    pub fn new(store: Arc<dyn HubStore>, config: HubConfig) -> Result<Self, StoreError> {
        let signer = Signer::new(store.signing_key()?);
        let hub = Self {
            store,
            signer,
            verifier: RwLock::new(Verifier::for_hub()),
            replay: Mutex::new(ReplayGuard::new(config.max_skew_secs)),
            limiter: SignInLimiter::new(config.login_limits),
            anonymous: SignInLimiter::new(auth::Limits {
                per_account: ANONYMOUS_PER_HOUR,
                per_address: ANONYMOUS_PER_ADDRESS_PER_HOUR,
                window: Duration::from_secs(3600),
            }),
            jobs_changed: Notify::new(),
            seen: Mutex::new(std::collections::HashMap::new()),
            config,
        };
        hub.reload_sites()?;
        crate::floors::publish(hub.store.as_ref(), hub.config.floors)?;
        Ok(hub)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn HubStore> {
        &self.store
    }

    /// What each site's polls told the hub since it started (last-seen time and status).
    pub fn sites_seen(&self) -> std::collections::HashMap<SiteId, SiteSeen> {
        self.seen.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Records a poll: its time, and its status if it carries one (memory only, no store
    /// write). The poll handler calls it for every verified poll.
    pub fn record_poll(&self, site: &SiteId, status: Option<SiteStatus>, at: i64) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        match seen.get_mut(site) {
            Some(s) => {
                s.last_seen = at;
                if status.is_some() {
                    s.status = status;
                }
            }
            None => {
                seen.insert(
                    site.clone(),
                    SiteSeen {
                        last_seen: at,
                        status,
                    },
                );
            }
        }
    }

    /// The hub's public key (what sites pin).
    pub fn public_key(&self) -> Result<PublicKey, ApiError> {
        self.signer.public_key().map_err(ApiError::internal)
    }

    /// Rebuilds the envelope verifier from the enrolled sites in the store.
    pub fn reload_sites(&self) -> Result<(), StoreError> {
        let mut v = Verifier::for_hub();
        for s in self.store.sites()? {
            if let Some(k) = s.public_key {
                if let Err(e) = v.register_site(s.id.clone(), *k.verifying_key()) {
                    tracing::error!("site {}: key not registered: {e}", s.id);
                }
            }
        }
        *self.verifier.write().unwrap_or_else(|p| p.into_inner()) = v;
        Ok(())
    }

    fn open_envelope(&self, env: &Envelope) -> Result<Opened, VerifyError> {
        let verifier = self.verifier.read().unwrap_or_else(|p| p.into_inner());
        let mut guard = self.replay.lock().unwrap_or_else(|p| p.into_inner());
        guard.open(&verifier, env, now())
    }

    /// Admits one unauthenticated submission of kind `what` (e.g. a membership application)
    /// from `ip`: at most [`ANONYMOUS_PER_ADDRESS_PER_HOUR`] per address and
    /// [`ANONYMOUS_PER_HOUR`] in all per hour. `Err(seconds to wait)` otherwise (audited).
    pub fn admit_anonymous(&self, what: &str, ip: std::net::IpAddr) -> Result<(), u64> {
        match self.anonymous.begin(what, ip, Instant::now()) {
            Ok(a) => {
                a.failed(Instant::now());
                Ok(())
            }
            Err(l) => {
                let _ = self.store.audit(
                    EntryDraft::new(now(), Actor::Unverified, format!("{what}.rate_limited"))
                        .decision(format!("refused an unauthenticated {what} from {ip}")),
                );
                Err(l.retry_after_secs)
            }
        }
    }

    /// Wakes long-polling sites (a job was submitted).
    pub fn notify_jobs(&self) {
        self.jobs_changed.notify_waiters();
    }
}

/// The API router.
pub fn router(hub: Arc<Hub>) -> Router {
    let site = Router::new()
        .route("/api/v1/enroll", post(enroll))
        .route("/api/v1/site/poll", post(site_poll))
        .route("/api/v1/site/result", post(site_result))
        .layer(DefaultBodyLimit::max(MAX_SITE_BODY));
    let api = Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", delete(revoke_token_by_id))
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{id}/disable", post(disable_user))
        .route("/api/v1/sites", get(list_sites).post(create_site))
        .route(
            "/api/v1/sites/{id}/enrollment-token",
            post(issue_enrollment),
        )
        .route("/api/v1/projects", get(list_projects).post(create_project))
        .route("/api/v1/projects/{id}", get(get_project))
        .route("/api/v1/projects/{id}/approve", post(approve_project))
        .route("/api/v1/projects/{id}/members", post(add_member))
        .route("/api/v1/projects/{id}/queries", post(submit_query))
        .route("/api/v1/jobs/{id}", get(get_job))
        .route("/api/v1/audit", get(get_audit))
        .route("/api/v1/budget", get(crate::budget::get_budget))
        .layer(DefaultBodyLimit::max(MAX_API_BODY))
        .layer(axum::middleware::from_fn_with_state(
            hub.clone(),
            audit_refusals,
        ));
    Router::new()
        .merge(site)
        .merge(api)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .with_state(hub)
}

/// Middleware of the user API: every 403 is audited (`access.denied`), naming the caller (when
/// the request carried a valid token), the method, the path and the refusal's code.
async fn audit_refusals(
    State(hub): State<Arc<Hub>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let method = req.method().clone();
    let path: String = req.uri().path().chars().take(200).collect();
    let token = bearer_token(req.headers()).ok().map(str::to_owned);
    let resp = next.run(req).await;
    if resp.status() == StatusCode::FORBIDDEN {
        let code = resp
            .extensions()
            .get::<crate::error::ErrorCode>()
            .map_or("forbidden", |c| c.0);
        let h = hub.clone();
        let _ = blocking(move || {
            let who = match token {
                Some(t) => h.token_user(&t)?.map(|(_, u)| actor(&u)),
                None => None,
            };
            h.store.audit(
                EntryDraft::new(now(), who.unwrap_or(Actor::Unverified), "access.denied")
                    .decision(format!("403 {code}: {method} {path}")),
            )?;
            Ok(())
        })
        .await;
    }
    resp
}

// ---- extractors -------------------------------------------------------------------------------

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, ApiError> + Send + 'static,
) -> Result<R, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

fn body_rejection(r: BytesRejection, limit: usize) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body exceeds the limit of {limit} bytes"),
        )
    } else {
        ApiError::bad_request("bad_request", r.body_text())
    }
}

/// A JSON request body of the user API: size-limited, syntax errors 400, schema errors 422.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| body_rejection(r, MAX_API_BODY))?;
        parse_json(&bytes).map(JsonBody)
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            ApiError::invalid("invalid_body", format!("request body: {e}"))
        } else {
            ApiError::bad_request(
                "invalid_json",
                format!("request body is not valid JSON: {e}"),
            )
        }
    })
}

/// A signed envelope posted by a site.
struct EnvelopeBody(Envelope);

impl<S: Send + Sync> FromRequest<S> for EnvelopeBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| body_rejection(r, MAX_SITE_BODY))?;
        Ok(EnvelopeBody(Envelope::from_json(&bytes)?))
    }
}

/// The authenticated user (from `Authorization: Bearer <token>`).
pub struct Caller(pub User);

impl FromRequestParts<Arc<Hub>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub>) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers)?.to_owned();
        let h = hub.clone();
        let user = blocking(move || Ok(h.token_user(&token)?.map(|(_, u)| u))).await?;
        user.map(Caller)
            .ok_or_else(|| ApiError::unauthorized("invalid or expired token"))
    }
}

/// The token of `Authorization: Bearer <token>`.
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or_else(|| ApiError::unauthorized("expected Authorization: Bearer <token>"))
}

fn require(user: &User, roles: &[UserRole]) -> Result<(), ApiError> {
    if roles.contains(&user.role) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "the {} role may not do this",
            role_name(user.role)
        )))
    }
}

fn actor(user: &User) -> Actor {
    Actor::User(user.id.to_string())
}

fn parse_id<T: std::str::FromStr<Err = qiao_protocol::IdError>>(s: &str) -> Result<T, ApiError> {
    s.parse::<T>()
        .map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))
}

// ---- users and tokens -------------------------------------------------------------------------

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
}

/// `POST /api/v1/login` answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The bearer token (shown once).
    pub token: String,
    /// `session` or `api`.
    pub kind: TokenKind,
    /// Expiry, if any.
    pub expires_at: Option<i64>,
    /// The user.
    pub user: UserView,
}

/// Why a password login was refused.
#[derive(Debug)]
pub enum LoginRefused {
    /// Too many recent failures for this account or from this address: retry after this many
    /// seconds.
    RateLimited(u64),
    /// Unknown user or wrong password (indistinguishable on purpose).
    InvalidCredentials,
    /// The right password for an account an administrator disabled.
    Disabled,
    /// Storage failed.
    Failed(ApiError),
}

impl From<LoginRefused> for ApiError {
    fn from(r: LoginRefused) -> Self {
        match r {
            LoginRefused::RateLimited(secs) => {
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!(
                        "too many failed logins for this user or from this address; retry in {secs} s"
                    ),
                );
                e.retry_after = Some(secs);
                e
            }
            LoginRefused::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "wrong user name or password",
            ),
            LoginRefused::Disabled => ApiError::new(
                StatusCode::FORBIDDEN,
                "account_disabled",
                "this account is disabled; ask the alliance administrator",
            ),
            LoginRefused::Failed(e) => e,
        }
    }
}

/// The actor of a sign-in attempt: the name as typed (any text; the audit log escapes it).
fn login_actor(name: &str) -> Actor {
    if name.is_empty() {
        Actor::User("(empty)".into())
    } else {
        Actor::User(name.to_owned())
    }
}

impl Hub {
    /// A password login from `ip`: the sign-in limiter (a slot is reserved for the account and
    /// the address before the password is checked), argon2 verification (slow: call it off the
    /// async threads), the audit entry (every outcome, rate-limited and unknown users included;
    /// never the password), and a new session token. Used by the API's `POST /api/v1/login`
    /// and the portal's sign-in form.
    pub fn password_login(
        &self,
        username: &str,
        password: &str,
        ip: std::net::IpAddr,
    ) -> Result<TokenResponse, LoginRefused> {
        let name: String = username.chars().take(256).collect();
        let fail = |e: StoreError| LoginRefused::Failed(e.into());
        let t = now();
        let audit = |decision: String| {
            self.store
                .audit(EntryDraft::new(t, login_actor(&name), "user.login").decision(decision))
        };
        let attempt = match self.limiter.begin(&name, ip, Instant::now()) {
            Ok(a) => a,
            Err(limited) => {
                let by = match limited.by {
                    auth::LimitedBy::Account => "account",
                    auth::LimitedBy::Address => "address",
                };
                audit(format!(
                    "rate_limited: too many failed sign-ins for this {by}; from {ip}; retry in {} s",
                    limited.retry_after_secs
                ))
                .map_err(fail)?;
                return Err(LoginRefused::RateLimited(limited.retry_after_secs));
            }
        };
        let id = UserId::new(name.clone()).ok();
        let user = match &id {
            Some(id) => self.store.user(id).map_err(fail)?,
            None => None,
        };
        let ok = match &user {
            Some(u) => auth::verify_password(&u.password_hash, password),
            None => {
                auth::burn_verify(password);
                false
            }
        };
        let known = user.is_some();
        let Some(user) = user.filter(|_| ok) else {
            attempt.failed(Instant::now());
            let why = if known {
                "wrong password"
            } else {
                "unknown user"
            };
            audit(format!("failed: {why}; from {ip}")).map_err(fail)?;
            return Err(LoginRefused::InvalidCredentials);
        };
        attempt.succeeded();
        if self.store.user_disabled(&user.id).map_err(fail)? {
            audit(format!("refused: account disabled; from {ip}")).map_err(fail)?;
            return Err(LoginRefused::Disabled);
        }
        let token = random_token(auth::SESSION_PREFIX);
        let rec = TokenRecord {
            hash: token_hash(&token),
            user_id: user.id.clone(),
            kind: TokenKind::Session,
            created_at: t,
            expires_at: Some(t.saturating_add(self.config.session_ttl_secs)),
            label: None,
            minted_by: None,
        };
        self.store
            .put_token(&rec, "user.login", &actor(&user), t)
            .map_err(fail)?;
        Ok(TokenResponse {
            token,
            kind: TokenKind::Session,
            expires_at: rec.expires_at,
            user: UserView::from(&user),
        })
    }

    /// The user of a bearer or session token, if it exists, has not expired and its account
    /// is not disabled.
    pub fn token_user(&self, token: &str) -> Result<Option<(TokenRecord, User)>, StoreError> {
        let Some(rec) = self.store.token(&token_hash(token))? else {
            return Ok(None);
        };
        if rec.expires_at.is_some_and(|t| now() >= t) {
            return Ok(None);
        }
        if self.store.user_disabled(&rec.user_id)? {
            return Ok(None);
        }
        Ok(self.store.user(&rec.user_id)?.map(|u| (rec, u)))
    }

    /// Revokes a session or API token (logout), audited as `actor`; `false` if it was not
    /// valid (unknown, or revoked already).
    pub fn revoke_token(&self, token: &str, actor: &Actor) -> Result<bool, StoreError> {
        self.store.revoke_token(&token_hash(token), actor, now())
    }

    /// The hub's settings.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }
}

async fn login(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let h = hub.clone();
    let resp =
        blocking(move || Ok(h.password_login(&req.username, &req.password, addr.ip()))).await??;
    Ok(Json(resp))
}

/// `POST /api/v1/logout`: revokes the token the request presents (a session or an API
/// token); the caller's other tokens stay valid.
async fn logout(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let token = bearer_token(&headers)?.to_owned();
    let h = hub.clone();
    let (revoked, minted) = blocking(move || {
        let revoked = h.revoke_token(&token, &actor(&user))?;
        // API tokens created from this session stay valid (they are for the CLI): name them,
        // so that signing out does not leave them unnoticed.
        let id = token_id(&token_hash(&token));
        let minted: Vec<TokenView> = h
            .store
            .tokens_of(&user.id)?
            .iter()
            .filter(|t| t.minted_by.as_deref() == Some(id.as_str()))
            .filter(|t| t.expires_at.is_none_or(|e| e > now()))
            .map(|t| TokenView::of(t, ""))
            .collect();
        Ok((revoked, minted))
    })
    .await?;
    if !revoked {
        // Revoked by a concurrent logout between authentication and now.
        return Err(ApiError::unauthorized("invalid or expired token"));
    }
    Ok(Json(
        json!({"status": "logged_out", "api_tokens_still_valid": minted}),
    ))
}

/// `GET /api/v1/tokens`: the caller's sessions and API tokens (never their secrets).
async fn list_tokens(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    headers: HeaderMap,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let current = token_hash(bearer_token(&headers)?);
    let h = hub.clone();
    let t = now();
    let tokens = blocking(move || Ok(h.store.tokens_of(&user.id)?)).await?;
    Ok(Json(
        tokens
            .iter()
            .filter(|r| r.expires_at.is_none_or(|e| e > t))
            .map(|r| TokenView::of(r, &current))
            .collect(),
    ))
}

/// `DELETE /api/v1/tokens/{id}`: revokes one of the caller's own tokens by its public id.
async fn revoke_token_by_id(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(
            "invalid_id",
            "a token id is 16 hex digits",
        ));
    }
    let h = hub.clone();
    let revoked = blocking(move || {
        let Some(rec) = h
            .store
            .tokens_of(&user.id)?
            .into_iter()
            .find(|t| token_id(&t.hash) == id)
        else {
            return Err(ApiError::not_found("no such token of yours"));
        };
        h.store.revoke_token(&rec.hash, &actor(&user), now())?;
        Ok(TokenView::of(&rec, ""))
    })
    .await?;
    Ok(Json(json!({"status": "revoked", "token": revoked})))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DisableRequest {
    disabled: Option<bool>,
}

/// `POST /api/v1/users/{id}/disable` (`{"disabled": false}` enables again): every session and
/// API token of the user stops at once.
async fn disable_user(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&user, &[UserRole::AllianceAdmin])?;
    let target = parse_id::<UserId>(&id)?;
    let req: DisableRequest = if body.iter().all(u8::is_ascii_whitespace) {
        DisableRequest::default()
    } else {
        parse_json(&body)?
    };
    let disabled = req.disabled.unwrap_or(true);
    if disabled && target == user.id {
        return Err(ApiError::invalid(
            "invalid_body",
            "an administrator cannot disable their own account",
        ));
    }
    let h = hub.clone();
    let t2 = target.clone();
    let revoked = blocking(move || {
        Ok(h.store
            .set_user_disabled(&t2, disabled, &actor(&user), now())?)
    })
    .await?;
    Ok(Json(
        json!({"user": target, "disabled": disabled, "tokens_revoked": revoked}),
    ))
}

async fn me(Caller(user): Caller) -> Json<UserView> {
    Json(UserView::from(&user))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateTokenRequest {
    label: Option<String>,
    expires_in_days: Option<u32>,
}

async fn create_token(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    let req: CreateTokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CreateTokenRequest::default()
    } else {
        parse_json(&body)?
    };
    if let Some(l) = &req.label {
        if !valid_text(l) {
            return Err(ApiError::invalid(
                "invalid_body",
                "label: 1 to 200 characters without control characters",
            ));
        }
    }
    let t = now();
    let expires_at = auth::token_expiry(t, req.expires_in_days)
        .map_err(|m| ApiError::invalid("invalid_body", m))?;
    let presented = token_hash(bearer_token(&headers)?);
    let token = random_token(auth::API_PREFIX);
    let rec = TokenRecord {
        hash: token_hash(&token),
        user_id: user.id.clone(),
        kind: TokenKind::Api,
        created_at: t,
        expires_at: Some(expires_at),
        label: req.label,
        minted_by: Some(token_id(&presented)),
    };
    let h = hub.clone();
    let u = user.clone();
    let r2 = rec.clone();
    blocking(move || Ok(h.store.put_token(&r2, "token.create", &actor(&u), t)?)).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenResponse {
            token,
            kind: TokenKind::Api,
            expires_at: rec.expires_at,
            user: UserView::from(&user),
        }),
    ))
}

/// `POST /api/v1/users` body.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Login name.
    pub id: UserId,
    /// Initial password.
    pub password: String,
    /// Role.
    pub role: UserRole,
    /// Institution (required for sponsor researchers).
    #[serde(default)]
    pub institution: Option<String>,
    /// Site (required for site data stewards and investigators).
    #[serde(default)]
    pub site: Option<SiteId>,
}

/// Validates a new user and hashes the password (slow: call off the async threads).
pub fn build_user(store: &dyn HubStore, req: CreateUserRequest, t: i64) -> Result<User, ApiError> {
    if let Some(i) = &req.institution {
        if !valid_text(i) {
            return Err(ApiError::invalid(
                "invalid_body",
                "institution: 1 to 200 characters without control characters",
            ));
        }
    }
    match req.role {
        UserRole::SponsorResearcher if req.institution.is_none() => {
            return Err(ApiError::invalid(
                "invalid_body",
                "a sponsor researcher belongs to an institution: give institution",
            ))
        }
        UserRole::SiteDataSteward | UserRole::SiteInvestigator => match &req.site {
            None => {
                return Err(ApiError::invalid(
                    "invalid_body",
                    "site data stewards and investigators belong to a site: give site",
                ))
            }
            Some(s) => {
                if store.site(s)?.is_none() {
                    return Err(ApiError::invalid("unknown_site", format!("no site {s}")));
                }
            }
        },
        _ if req.site.is_some() => {
            return Err(ApiError::invalid(
                "invalid_body",
                "only site data stewards and investigators belong to a site",
            ))
        }
        _ => {}
    }
    let password_hash = auth::hash_password(req.id.as_str(), &req.password)
        .map_err(|e| ApiError::invalid("weak_password", e.to_string()))?;
    Ok(User {
        id: req.id,
        role: req.role,
        institution: req.institution,
        site: req.site,
        password_hash,
        created_at: t,
    })
}

async fn list_users(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
) -> Result<Json<Vec<UserView>>, ApiError> {
    require(&user, &[UserRole::AllianceAdmin])?;
    let h = hub.clone();
    let users = blocking(move || Ok(h.store.users()?)).await?;
    Ok(Json(users.iter().map(UserView::from).collect()))
}

async fn create_user(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    JsonBody(req): JsonBody<CreateUserRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    require(&user, &[UserRole::AllianceAdmin])?;
    let h = hub.clone();
    let created = blocking(move || {
        let t = now();
        let new = build_user(h.store.as_ref(), req, t)?;
        h.store.create_user(&new, &actor(&user), t)?;
        Ok(new)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&created))))
}

// ---- sites ------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSiteRequest {
    id: SiteId,
    name: Option<String>,
}

async fn list_sites(
    State(hub): State<Arc<Hub>>,
    Caller(_user): Caller,
) -> Result<Json<Vec<SiteView>>, ApiError> {
    let h = hub.clone();
    let sites = blocking(move || Ok(h.store.sites()?)).await?;
    let seen = hub.sites_seen();
    Ok(Json(
        sites
            .iter()
            .map(|s| SiteView::from(s).with_seen(seen.get(&s.id)))
            .collect(),
    ))
}

async fn create_site(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    JsonBody(req): JsonBody<CreateSiteRequest>,
) -> Result<(StatusCode, Json<SiteView>), ApiError> {
    require(&user, &[UserRole::AllianceAdmin])?;
    let name = req.name.unwrap_or_else(|| req.id.to_string());
    if !valid_text(&name) {
        return Err(ApiError::invalid(
            "invalid_body",
            "name: 1 to 200 characters without control characters",
        ));
    }
    let t = now();
    let site = Site {
        id: req.id,
        name,
        public_key: None,
        enrolled_at: None,
        enrollment: None,
        created_at: t,
    };
    let h = hub.clone();
    let s2 = site.clone();
    blocking(move || Ok(h.store.create_site(&s2, &actor(&user), t)?)).await?;
    Ok((StatusCode::CREATED, Json(SiteView::from(&site))))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EnrollmentTokenRequest {
    ttl_secs: Option<i64>,
}

/// `POST /api/v1/sites/{id}/enrollment-token` answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnrollmentTokenResponse {
    /// The site.
    pub site: SiteId,
    /// The one-time token (shown once; hand it to the site's steward out of band).
    pub token: String,
    /// Expiry (unix seconds).
    pub expires_at: i64,
    /// The hub key's fingerprint, for the site to compare when it pins the key.
    pub hub_key_fingerprint: String,
}

/// Issues a one-time enrollment token for `site` (replacing any earlier one).
pub fn issue_enrollment_token(
    store: &dyn HubStore,
    site: &SiteId,
    ttl_secs: i64,
    who: &Actor,
) -> Result<(String, StoredToken), ApiError> {
    let t = now();
    let (token, stored) = StoredToken::issue(t, ttl_secs);
    store.set_enrollment_token(site, &stored, who, t)?;
    Ok((token.expose_secret(), stored))
}

async fn issue_enrollment(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<EnrollmentTokenResponse>), ApiError> {
    require(&user, &[UserRole::AllianceAdmin])?;
    let site = parse_id::<SiteId>(&id)?;
    let req: EnrollmentTokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        EnrollmentTokenRequest::default()
    } else {
        parse_json(&body)?
    };
    let ttl = req.ttl_secs.unwrap_or(hub.config.enrollment_ttl_secs);
    if !(60..=30 * 86_400).contains(&ttl) {
        return Err(ApiError::invalid(
            "invalid_body",
            "ttl_secs must be between 60 and 2592000 (30 days)",
        ));
    }
    let fingerprint = hub.public_key()?.fingerprint();
    let h = hub.clone();
    let s2 = site.clone();
    let (token, stored) =
        blocking(move || issue_enrollment_token(h.store.as_ref(), &s2, ttl, &actor(&user))).await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrollmentTokenResponse {
            site,
            token,
            expires_at: stored.expires_at,
            hub_key_fingerprint: fingerprint,
        }),
    ))
}

// ---- projects ---------------------------------------------------------------------------------

const OVERSIGHT: &[UserRole] = &[
    UserRole::AllianceAdmin,
    UserRole::CommitteeMember,
    UserRole::Auditor,
];

async fn list_projects(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
) -> Result<Json<Vec<Project>>, ApiError> {
    let h = hub.clone();
    let all = blocking(move || Ok(h.store.projects()?)).await?;
    let visible = all
        .into_iter()
        .filter(|p| OVERSIGHT.contains(&user.role) || p.members.contains(&user.id))
        .collect();
    Ok(Json(visible))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProjectRequest {
    id: ProjectId,
    title: String,
    #[serde(default)]
    members: Vec<UserId>,
    #[serde(default)]
    approved: bool,
}

async fn create_project(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    JsonBody(req): JsonBody<CreateProjectRequest>,
) -> Result<(StatusCode, Json<Project>), ApiError> {
    require(&user, &[UserRole::AllianceAdmin])?;
    if !valid_text(&req.title) {
        return Err(ApiError::invalid(
            "invalid_body",
            "title: 1 to 200 characters without control characters",
        ));
    }
    let mut members = req.members;
    members.sort();
    members.dedup();
    let project = Project {
        id: req.id,
        title: req.title,
        approved: req.approved,
        members,
        created_at: now(),
    };
    let h = hub.clone();
    let p2 = project.clone();
    blocking(move || Ok(h.store.create_project(&p2, &actor(&user), p2.created_at)?)).await?;
    Ok((StatusCode::CREATED, Json(project)))
}

async fn load_project(hub: &Arc<Hub>, id: &str) -> Result<Project, ApiError> {
    let id = parse_id::<ProjectId>(id)?;
    let h = hub.clone();
    blocking(move || {
        h.store
            .project(&id)?
            .ok_or_else(|| ApiError::not_found(format!("project {id} not found")))
    })
    .await
}

async fn get_project(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<Project>, ApiError> {
    let p = load_project(&hub, &id).await?;
    if OVERSIGHT.contains(&user.role) || p.members.contains(&user.id) {
        Ok(Json(p))
    } else {
        Err(ApiError::forbidden("not a member of this project"))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApproveRequest {
    approved: Option<bool>,
}

async fn approve_project(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Project>, ApiError> {
    require(&user, &[UserRole::AllianceAdmin, UserRole::CommitteeMember])?;
    let id = parse_id::<ProjectId>(&id)?;
    let req: ApproveRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ApproveRequest::default()
    } else {
        parse_json(&body)?
    };
    let h = hub.clone();
    let p = blocking(move || {
        Ok(h.store
            .set_project_approved(&id, req.approved.unwrap_or(true), &actor(&user), now())?)
    })
    .await?;
    Ok(Json(p))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberRequest {
    user: UserId,
}

async fn add_member(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<MemberRequest>,
) -> Result<Json<Project>, ApiError> {
    require(&user, &[UserRole::AllianceAdmin])?;
    let id = parse_id::<ProjectId>(&id)?;
    let h = hub.clone();
    let p = blocking(move || {
        Ok(h.store
            .add_project_member(&id, &req.user, &actor(&user), now())?)
    })
    .await?;
    Ok(Json(p))
}

// ---- queries and jobs -------------------------------------------------------------------------

/// `POST /api/v1/projects/{id}/queries` body.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// `cohort_count` or `demographics`.
    pub query_type: String,
    /// The OHDSI Circe cohort definition (ATLAS JSON object), passed to the sites unchanged.
    pub definition: serde_json::Value,
    /// The sites to ask (default: every enrolled site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sites: Option<Vec<SiteId>>,
    /// Demographics: age band width in years (1 to 100, default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_band_years: Option<u8>,
    /// Demographics: also split by index year (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_index_year: Option<bool>,
}

/// `POST /api/v1/projects/{id}/queries` answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubmitResponse {
    /// The job.
    pub job_id: JobId,
    /// The sites asked.
    pub sites: Vec<SiteId>,
}

/// Roles that may submit queries.
pub const QUERY_ROLES: &[UserRole] = &[UserRole::SponsorResearcher, UserRole::SiteInvestigator];

async fn submit_query(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<QueryRequest>,
) -> Result<(StatusCode, Json<SubmitResponse>), ApiError> {
    require(&user, QUERY_ROLES)?;
    let project = load_project(&hub, &id).await?;
    if !project.members.contains(&user.id) {
        return Err(ApiError::forbidden(format!(
            "you are not a member of project {}",
            project.id
        )));
    }
    if !project.approved {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "project_not_approved",
            format!(
                "project {} is not approved; queries run only under approved projects",
                project.id
            ),
        ));
    }
    let query = match req.query_type.as_str() {
        "cohort_count" => {
            if req.age_band_years.is_some() || req.by_index_year.is_some() {
                return Err(ApiError::invalid(
                    "invalid_body",
                    "age_band_years and by_index_year apply to demographics queries only",
                ));
            }
            QueryType::CohortCount
        }
        "demographics" => {
            let band = req.age_band_years.unwrap_or(10);
            if !(1..=100).contains(&band) {
                return Err(ApiError::invalid(
                    "invalid_body",
                    "age_band_years must be between 1 and 100",
                ));
            }
            QueryType::Demographics {
                age_band_years: band,
                by_index_year: req.by_index_year.unwrap_or(false),
            }
        }
        other => {
            return Err(ApiError::invalid(
                "invalid_query_type",
                format!(
                    "query_type {:?} is not one of cohort_count, demographics",
                    other.chars().take(64).collect::<String>()
                ),
            ))
        }
    };
    if !req.definition.is_object() {
        return Err(ApiError::invalid(
            "invalid_definition",
            "definition must be a JSON object (an OHDSI Circe cohort expression)",
        ));
    }
    let def_len = serde_json::to_vec(&req.definition)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if def_len > MAX_DEFINITION_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "definition_too_large",
            format!("definition of {def_len} bytes exceeds the limit of {MAX_DEFINITION_BYTES}"),
        ));
    }
    let h = hub.clone();
    let record = blocking(move || {
        let enrolled: Vec<Site> = h
            .store
            .sites()?
            .into_iter()
            .filter(|s| s.public_key.is_some())
            .collect();
        let sites: Vec<SiteId> = match req.sites {
            None => enrolled.iter().map(|s| s.id.clone()).collect(),
            Some(list) => {
                let mut out: Vec<SiteId> = Vec::new();
                for s in list {
                    if !enrolled.iter().any(|e| e.id == s) {
                        return Err(ApiError::invalid(
                            "unknown_site",
                            format!("site {s} does not exist or has not enrolled"),
                        ));
                    }
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
                out
            }
        };
        if sites.is_empty() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "no_sites",
                "no enrolled site to ask",
            ));
        }
        let t = now();
        let job = Job {
            job_id: JobId::random(),
            project_id: project.id.clone(),
            query,
            definition: req.definition,
            requested_by: Requester {
                user_id: user.id.clone(),
                role: user.role,
                // The site charges this organization's privacy budget.
                organization: crate::budget::organization_of(&user),
            },
            created_at: t,
            floors: h.config.floors,
        };
        match h
            .store
            .create_job_within(&job, &sites, &h.config.quotas, t)?
        {
            Ok(record) => Ok(record),
            Err(q) => {
                h.store.audit(
                    EntryDraft::new(t, actor(&user), "job.submit")
                        .project(job.project_id.to_string())
                        .decision(format!(
                            "refused: {} quota of {} jobs per {} s spent",
                            q.what, q.limit, q.period_secs
                        )),
                )?;
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "quota_exceeded",
                    format!(
                        "the {} quota of {} jobs per {} s is spent; retry in {} s",
                        q.what, q.limit, q.period_secs, q.retry_after_secs
                    ),
                );
                e.retry_after = u64::try_from(q.retry_after_secs).ok();
                Err(e)
            }
        }
    })
    .await?;
    hub.notify_jobs();
    Ok((
        StatusCode::CREATED,
        Json(SubmitResponse {
            job_id: record.job.job_id,
            sites: record.sites,
        }),
    ))
}

async fn get_job(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job_id = parse_id::<JobId>(&id)?;
    let h = hub.clone();
    let view = blocking(move || {
        let record = h
            .store
            .job(&job_id)?
            .ok_or_else(|| ApiError::not_found(format!("job {job_id} not found")))?;
        let oversight = matches!(user.role, UserRole::AllianceAdmin | UserRole::Auditor);
        if !oversight {
            let member = h
                .store
                .project(&record.job.project_id)?
                .is_some_and(|p| p.members.contains(&user.id));
            if !member {
                return Err(ApiError::forbidden(
                    "only members of the job's project may see it",
                ));
            }
        }
        let results = h.store.results(&job_id)?;
        Ok(job_view(&record, &results))
    })
    .await?;
    Ok(Json(view).into_response())
}

// ---- audit ------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct AuditQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn get_audit(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&user, &[UserRole::Auditor])?;
    let h = hub.clone();
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(1000).min(10_000);
    let out = blocking(move || {
        let (all, report) = h.store.verify_audit()?;
        let verified = match report {
            Ok(r) => json!({"ok": true, "entries": r.entries,
                "head": r.head.map(|c| json!({"seq": c.seq, "hash": c.hash.to_string()}))}),
            Err(e) => json!({"ok": false, "error": e.to_string()}),
        };
        let entries: Vec<_> = all
            .into_iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .collect();
        Ok(json!({"verified": verified, "entries": entries}))
    })
    .await?;
    Ok(Json(out))
}

// ---- the site protocol ------------------------------------------------------------------------

async fn enroll(
    State(hub): State<Arc<Hub>>,
    JsonBody(req): JsonBody<EnrollRequest>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let hub_key = hub.public_key()?;
    let h = hub.clone();
    let claimed = req.site_name.clone();
    let fingerprint = req.public_key.fingerprint();
    let site = blocking(move || match h.store.enroll(&req, now()) {
        Ok(site) => Ok(site),
        Err(EnrollFailure::Store(e)) => Err(e.into()),
        Err(EnrollFailure::KeyInUse) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "key_in_use",
            "this public key is already registered for another site",
        )),
        Err(EnrollFailure::Enroll(e)) => {
            let (status, code) = match e {
                EnrollError::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
                EnrollError::TokenExpired { .. } => (StatusCode::UNAUTHORIZED, "token_expired"),
                EnrollError::TokenAlreadyUsed => (StatusCode::CONFLICT, "token_used"),
                EnrollError::BadProof => (StatusCode::UNAUTHORIZED, "bad_proof"),
                EnrollError::HubKey(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            };
            Err(ApiError::new(status, code, e.to_string()))
        }
    })
    .await;
    let site = match site {
        Ok(s) => s,
        Err(e) => {
            let h = hub.clone();
            let decision = format!(
                "failed: {} ({}); claimed site {claimed}, key {fingerprint}",
                e.code, e.status
            );
            blocking(move || {
                Ok(h.store.audit(
                    EntryDraft::new(now(), Actor::Unverified, "site.enroll").decision(decision),
                )?)
            })
            .await?;
            return Err(e);
        }
    };
    let h = hub.clone();
    blocking(move || Ok(h.reload_sites()?)).await?;
    Ok(Json(EnrollResponse::new(site.id, hub_key)))
}

async fn open_site_envelope(
    hub: &Arc<Hub>,
    env: &Envelope,
    expected: MessageKind,
) -> Result<Opened, ApiError> {
    if env.kind != expected {
        return Err(ApiError::bad_request(
            "wrong_kind",
            format!("this endpoint takes {expected} messages, not {}", env.kind),
        ));
    }
    let opened = match hub.open_envelope(env) {
        Err(VerifyError::UnknownSigner { .. }) => {
            // A site may have enrolled through another hub process sharing the database.
            let h = hub.clone();
            blocking(move || Ok(h.reload_sites()?)).await?;
            hub.open_envelope(env)
        }
        other => other,
    };
    match opened {
        Ok(o) => Ok(o),
        Err(e) => {
            // Audited as "unverified": the envelope does not prove who sent it.
            let h = hub.clone();
            let mut draft = EntryDraft::new(now(), Actor::Unverified, "envelope.reject").decision(
                format!("rejected a {} claiming site {}: {e}", env.kind, env.site_id),
            );
            if let Some(id) = env.job_id {
                draft = draft.job(format!("{id} (claimed)"));
            }
            blocking(move || Ok(h.store.audit(draft)?)).await?;
            Err(e.into())
        }
    }
}

fn envelope_response(env: &Envelope) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        env.to_json(),
    )
        .into_response()
}

#[derive(Deserialize)]
struct PollQuery {
    wait_secs: Option<u64>,
}

async fn site_poll(
    State(hub): State<Arc<Hub>>,
    Query(q): Query<PollQuery>,
    EnvelopeBody(env): EnvelopeBody,
) -> Result<Response, ApiError> {
    let opened = open_site_envelope(&hub, &env, MessageKind::Poll).await?;
    let site = opened.site_id;
    if let Message::Poll(status) = opened.message {
        hub.record_poll(&site, status, now());
    }
    let wait = Duration::from_secs(q.wait_secs.unwrap_or(DEFAULT_WAIT_SECS).min(MAX_WAIT_SECS));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let notified = hub.jobs_changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let h = hub.clone();
        let s = site.clone();
        let leased =
            blocking(move || Ok(h.store.lease_job(&s, now(), h.config.redeliver_secs)?)).await?;
        if let Some(leased) = leased {
            let sealed = hub
                .signer
                .seal_job(&leased.job, &site, now())
                .map_err(ApiError::internal)?;
            return Ok(envelope_response(&sealed));
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        // Re-check at least every second: a delivered job becomes due again after the
        // redelivery interval without any notification.
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(left.min(Duration::from_secs(1))) => {}
        }
    }
}

async fn site_result(
    State(hub): State<Arc<Hub>>,
    EnvelopeBody(env): EnvelopeBody,
) -> Result<Response, ApiError> {
    let opened = open_site_envelope(&hub, &env, MessageKind::Result).await?;
    let Message::Result(result) = opened.message else {
        return Err(ApiError::bad_request("wrong_kind", "expected a result"));
    };
    let site = opened.site_id;
    let job_id = result.job_id;
    let persons = hub
        .sites_seen()
        .get(&site)
        .and_then(|s| s.status.as_ref().map(|st| st.persons_rounded));
    let rejected = crate::floors::implausible(&result, persons);
    let h = hub.clone();
    let outcome = blocking(move || {
        match h
            .store
            .put_result_marked(&result, rejected.as_deref(), now())
        {
            Ok(o) => Ok(o),
            Err(StoreError::NotFound(m)) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_job",
                format!("{m} not found"),
            )),
            Err(StoreError::Invalid(m)) => Err(ApiError::invalid("result_mismatch", m)),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    if outcome == ResultOutcome::Duplicate {
        tracing::info!("duplicate result for job {job_id} from site {site}: acknowledged again");
    }
    let ack = hub
        .signer
        .seal_result_ack(job_id, &site, now())
        .map_err(ApiError::internal)?;
    Ok(envelope_response(&ack))
}
