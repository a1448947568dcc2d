//! Users and tokens: sign-in, sign-out, API tokens, accounts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use qiao_audit::{Actor, EntryDraft};
use qiao_protocol::{UserId, UserRole};
use serde::{Deserialize, Serialize};

use crate::auth::{self};
use crate::error::{ApiError, ErrorBody};
use crate::model::{token_id, valid_text, TokenKind, TokenRecord, TokenView, User, UserView};
use crate::store::StoreError;
use crate::util::{now, random_token, token_hash};

use super::extract::{
    actor, bearer_token, blocking, parse_id, parse_json, require, Caller, JsonBody,
};
use super::{Hub, HubConfig};
use crate::service::users::{build_user, CreateUserRequest, UserRefused};

/// This resource's routes.
pub(super) fn routes() -> Router<Arc<Hub>> {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", delete(revoke_token_by_id))
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{id}/disable", post(disable_user))
}

/// This resource's documented operations (`#[utoipa::path]` on each handler).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    health,
    login,
    logout,
    me,
    list_tokens,
    create_token,
    revoke_token_by_id,
    list_users,
    create_user,
    disable_user
))]
pub(super) struct Doc;

/// `GET /api/v1/health` answer.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Health {
    /// Always `ok`.
    status: String,
}

/// Whether the hub answers (no sign-in needed).
#[utoipa::path(get, path = "/api/v1/health", tag = "users",
    responses((status = 200, description = "The hub answers", body = Health,
        example = json!({"status": "ok"}))))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// `POST /api/v1/login` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "alice", "password": "correct horse battery"}))]
struct LoginRequest {
    /// The login name.
    username: String,
    /// The password.
    password: String,
}

/// `POST /api/v1/login` answer.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
    Failed(StoreError),
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
            LoginRefused::Failed(e) => e.into(),
        }
    }
}

impl From<UserRefused> for ApiError {
    fn from(r: UserRefused) -> Self {
        match r {
            UserRefused::Invalid(m) => ApiError::invalid("invalid_body", m),
            UserRefused::UnknownSite(_) => ApiError::invalid("unknown_site", r.to_string()),
            UserRefused::WeakPassword(e) => ApiError::invalid("weak_password", e.to_string()),
            UserRefused::Store(e) => e.into(),
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
        let fail = LoginRefused::Failed;
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

    /// A login assertion for `user` at `site`'s pages, signed with the hub's key, valid for
    /// [`qiao_protocol::login::MAX_LIFETIME_SECS`] and once (audited). The site maps the user
    /// to the local role its steward granted.
    pub fn site_login_assertion(
        &self,
        user: &User,
        site: &qiao_protocol::SiteId,
    ) -> Result<String, StoreError> {
        use qiao_protocol::login::{seal_login, LoginClaims, MAX_LIFETIME_SECS};
        let t = now();
        let claims = LoginClaims {
            audience: site.clone(),
            user: user.id.clone(),
            role: user.role,
            nonce: qiao_protocol::Nonce::random(),
            issued_at: t,
            expires_at: t + MAX_LIFETIME_SECS,
        };
        self.store.audit(
            EntryDraft::new(t, actor(user), "user.site_login")
                .decision(format!("login assertion for site {site}")),
        )?;
        Ok(seal_login(self.signer.signing_key(), &claims))
    }
}

/// Signs in with a password: a session token.
///
/// The session lasts 12 hours by default. Failed sign-ins are limited per account and per
/// address (429 with `Retry-After`); every outcome is audited (never the password).
#[utoipa::path(post, path = "/api/v1/login", tag = "users", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in: the session token (shown once)", body = TokenResponse),
        (status = 401, description = "Unknown user or wrong password (`invalid_credentials`)", body = ErrorBody,
            example = json!({"error": {"code": "invalid_credentials", "message": "wrong user name or password"}})),
        (status = 403, description = "The account is disabled (`account_disabled`)", body = ErrorBody),
        (status = 429, description = "Too many failed sign-ins (`rate_limited`; `Retry-After` header)", body = ErrorBody)))]
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

/// `POST /api/v1/logout` answer.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LoggedOut {
    /// Always `logged_out`.
    status: String,
    /// The API tokens this session created: they stay valid (revoke them one by one).
    api_tokens_still_valid: Vec<TokenView>,
}

/// Signs out: revokes the token the request presents.
///
/// A session or an API token; the caller's other tokens stay valid.
#[utoipa::path(post, path = "/api/v1/logout", tag = "users", security(("session" = []), ("api_token" = [])),
    responses((status = 200, description = "The presented token is revoked", body = LoggedOut)))]
async fn logout(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    headers: HeaderMap,
) -> Result<Json<LoggedOut>, ApiError> {
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
    Ok(Json(LoggedOut {
        status: "logged_out".into(),
        api_tokens_still_valid: minted,
    }))
}

/// The caller's sessions and API tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "users", security(("session" = []), ("api_token" = [])),
    responses((status = 200, description = "The caller's unexpired tokens", body = Vec<TokenView>)))]
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

/// `DELETE /api/v1/tokens/{id}` answer.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Revoked {
    /// Always `revoked`.
    status: String,
    /// The token revoked.
    token: TokenView,
}

/// Revokes one of the caller's own tokens by its public id.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "users", security(("session" = []), ("api_token" = [])),
    params(("id" = String, Path, description = "The token's public id (16 hex digits, from `GET /api/v1/tokens`)")),
    responses(
        (status = 200, description = "Revoked", body = Revoked),
        (status = 400, description = "Not a token id (`invalid_id`)", body = ErrorBody),
        (status = 404, description = "No such token of the caller's", body = ErrorBody)))]
async fn revoke_token_by_id(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
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
    Ok(Json(Revoked {
        status: "revoked".into(),
        token: revoked,
    }))
}

/// `POST /api/v1/users/{id}/disable` body (optional).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DisableRequest {
    /// `false` enables the account again (default `true`).
    disabled: Option<bool>,
}

/// `POST /api/v1/users/{id}/disable` answer.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Disabled {
    /// The user.
    user: UserId,
    /// Whether the account is now disabled.
    disabled: bool,
    /// Sessions and API tokens that stopped.
    tokens_revoked: usize,
}

/// Disables an account (or enables it again). Alliance administrators only.
///
/// Every session and API token of the user stops at once; `{"disabled": false}` enables the
/// account again (its old tokens stay revoked).
#[utoipa::path(post, path = "/api/v1/users/{id}/disable", tag = "users", security(("session" = []), ("api_token" = [])),
    params(("id" = String, Path, description = "The user id")),
    request_body(content = Option<DisableRequest>, description = "Optional; an empty body disables"),
    responses(
        (status = 200, description = "Done", body = Disabled,
            example = json!({"user": "bob", "disabled": true, "tokens_revoked": 2})),
        (status = 403, description = "Not an alliance administrator", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody)))]
async fn disable_user(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Disabled>, ApiError> {
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
    Ok(Json(Disabled {
        user: target,
        disabled,
        tokens_revoked: revoked,
    }))
}

/// The caller's account.
#[utoipa::path(get, path = "/api/v1/me", tag = "users", security(("session" = []), ("api_token" = [])),
    responses((status = 200, description = "The caller", body = UserView)))]
async fn me(Caller(user): Caller) -> Json<UserView> {
    Json(UserView::from(&user))
}

/// `POST /api/v1/tokens` body (optional).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"label": "laptop CLI", "expires_in_days": 90}))]
struct CreateTokenRequest {
    /// A label (1 to 200 characters without control characters).
    label: Option<String>,
    /// Lifetime in days: 30 by default, 365 at most.
    expires_in_days: Option<u32>,
}

/// Creates an API token for the CLI or scripts (shown once).
#[utoipa::path(post, path = "/api/v1/tokens", tag = "users", security(("session" = []), ("api_token" = [])),
    request_body(content = Option<CreateTokenRequest>, description = "Optional; an empty body takes the defaults"),
    responses((status = 201, description = "The new API token (shown once)", body = TokenResponse)))]
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

/// Every account. Alliance administrators only.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("session" = []), ("api_token" = [])),
    responses(
        (status = 200, description = "The accounts", body = Vec<UserView>),
        (status = 403, description = "Not an alliance administrator", body = ErrorBody)))]
async fn list_users(
    State(hub): State<Arc<Hub>>,
    Caller(user): Caller,
) -> Result<Json<Vec<UserView>>, ApiError> {
    require(&user, &[UserRole::AllianceAdmin])?;
    let h = hub.clone();
    let users = blocking(move || Ok(h.store.users()?)).await?;
    Ok(Json(users.iter().map(UserView::from).collect()))
}

/// Creates an account (the password policy applies). Alliance administrators only.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("session" = []), ("api_token" = [])),
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created", body = UserView),
        (status = 403, description = "Not an alliance administrator", body = ErrorBody),
        (status = 409, description = "The user exists (`conflict`)", body = ErrorBody),
        (status = 422, description = "A field that does not fit the role (`invalid_body`), an unknown site (`unknown_site`) or a weak password (`weak_password`)", body = ErrorBody)))]
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
