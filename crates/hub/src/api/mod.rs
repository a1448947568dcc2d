//! The HTTP API: the hub's state ([`Hub`]), the router, and one module a resource with its
//! routes and handlers ([`users`], [`sites`], [`projects`], [`jobs`], [`audit`],
//! [`site_protocol`]; shared extractors in [`extract`]), and the OpenAPI document of them all
//! ([`openapi`], served with its page [`docs_page`]).
//!
//! Every handler checks the caller's role (and project membership where it applies) before it
//! reads anything, runs storage work on the blocking pool, and answers only after the storage
//! transaction has committed.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use qiao_audit::{Actor, EntryDraft};
use qiao_protocol::{
    Envelope, Opened, PublicKey, ReplayGuard, Signer, SiteId, SiteStatus, Verifier, VerifyError,
};
use tokio::sync::Notify;

use crate::auth::{self, SignInLimiter};
use crate::error::ApiError;
use crate::model::SiteSeen;
use crate::store::{HubStore, Quotas, StoreError};
use crate::util::now;

mod audit;
mod budget;
mod docs_page;
mod extract;
mod jobs;
pub mod openapi;
mod projects;
mod runs;
mod site_protocol;
mod sites;
mod users;

pub use crate::service::enrollment::issue_enrollment_token;
pub use crate::service::jobs::{
    QueryRefused, QueryRequest, SubmitRefused, DEFAULT_AGE_BAND_YEARS, MAX_DEFINITION_BYTES,
};
pub use crate::service::runs::{RunRecord, RunRequest, RunStatus};
pub use crate::service::users::{build_user, CreateUserRequest, UserRefused};
use extract::{actor, bearer_token, blocking};
pub use extract::{Caller, JsonBody};
pub use jobs::{SubmitResponse, QUERY_ROLES};
pub use sites::EnrollmentTokenResponse;
pub use users::{LoginRefused, TokenResponse};

/// Largest request body of the user API, in bytes.
pub const MAX_API_BODY: usize = 2 * 1024 * 1024;
/// Largest request body of the site endpoints (a signed envelope), in bytes.
pub const MAX_SITE_BODY: usize = qiao_protocol::envelope::MAX_ENVELOPE_BYTES;
/// Unauthenticated submissions accepted per source address per hour.
pub const ANONYMOUS_PER_ADDRESS_PER_HOUR: usize = 5;
/// Unauthenticated submissions accepted in all per hour.
pub const ANONYMOUS_PER_HOUR: usize = 50;
/// Default long-poll wait, in seconds.
pub const DEFAULT_WAIT_SECS: u64 = 25;
/// Longest long-poll wait, in seconds.
pub const MAX_WAIT_SECS: u64 = 60;

/// Time allowed to send a request's body (a client trickling a body byte by byte holds a
/// connection and a task: it gets 408 instead); the server applies it (`serve`).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

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
            body_timeout: BODY_READ_TIMEOUT,
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

/// The API router: the site protocol (signed envelopes) and the user API, one module a
/// resource, each with its own routes; any other path is a JSON 404 (`not_found`).
pub fn router(hub: Arc<Hub>) -> Router {
    routes(hub).fallback(|| async { ApiError::not_found("no such endpoint") })
}

/// [`router`] without its fallback: for a server that answers other paths itself (the
/// portal's pages answer an unknown page with their own 404 page, and `/api/…` with this
/// router's JSON one).
pub fn routes(hub: Arc<Hub>) -> Router {
    let site = site_protocol::routes().layer(DefaultBodyLimit::max(MAX_SITE_BODY));
    let api = Router::new()
        .merge(users::routes())
        .merge(sites::routes())
        .merge(projects::routes())
        .merge(jobs::routes())
        .merge(runs::routes())
        .merge(audit::routes())
        .merge(budget::routes())
        .merge(openapi::routes())
        .layer(DefaultBodyLimit::max(MAX_API_BODY))
        .layer(axum::middleware::from_fn_with_state(
            hub.clone(),
            audit_refusals,
        ));
    Router::new().merge(site).merge(api).with_state(hub)
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
