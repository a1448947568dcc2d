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
use serde_json::json;

use crate::auth::{self};
use crate::error::ApiError;
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
