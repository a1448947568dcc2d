//! The site protocol: enrollment, signed polls and results.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use qiao_audit::{Actor, EntryDraft};
use qiao_protocol::{
    EnrollError, EnrollRequest, EnrollResponse, Envelope, Message, MessageKind, Opened, VerifyError,
};
use serde::Deserialize;

use crate::error::{ApiError, ErrorBody};
use crate::store::{CallerFault, EnrollFailure, ResultOutcome, StoreError};
use crate::util::now;

use super::extract::{blocking, EnvelopeBody, JsonBody};
use super::{Hub, DEFAULT_WAIT_SECS, MAX_WAIT_SECS};

/// This resource's routes.
pub(super) fn routes() -> Router<Arc<Hub>> {
    Router::new()
        .route("/api/v1/enroll", post(enroll))
        .route("/api/v1/site/poll", post(site_poll))
        .route("/api/v1/site/result", post(site_result))
}

/// This resource's documented operations (`#[utoipa::path]` on each handler).
#[derive(utoipa::OpenApi)]
#[openapi(paths(enroll, site_poll, site_result))]
pub(super) struct Doc;

/// A site registers its public key with a one-time enrollment token.
///
/// The request carries the site's Ed25519 key and a proof of possession of it; the answer
/// carries the hub's key for the site to pin. No bearer token: the enrollment token is the
/// credential.
#[utoipa::path(post, path = "/api/v1/enroll", tag = "site protocol", request_body = EnrollRequest,
    responses(
        (status = 200, description = "Enrolled: pin the hub's key", body = EnrollResponse),
        (status = 401, description = "Unknown (`invalid_token`) or expired (`token_expired`) token, or a proof that does not verify (`bad_proof`)", body = ErrorBody),
        (status = 409, description = "The token was used (`token_used`) or the key belongs to another site (`key_in_use`)", body = ErrorBody)))]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PollQuery {
    /// Long-poll: wait up to this many seconds for a job (default 25, at most 60).
    wait_secs: Option<u64>,
}

/// A site asks for work (long poll).
///
/// The request is a signed `poll` envelope (body `{}` or `{"status": {...}}`, a `PollBody`);
/// the answer a signed `job` envelope (its body a `Job`), or 204 when no job came within the
/// wait. The envelope's signature is the credential (no bearer token).
#[utoipa::path(post, path = "/api/v1/site/poll", tag = "site protocol", params(PollQuery),
    request_body(content = Envelope, description = "A `poll` envelope signed by the site"),
    responses(
        (status = 200, description = "A `job` envelope signed by the hub", body = Envelope),
        (status = 204, description = "No job within the wait"),
        (status = 400, description = "Not a poll (`wrong_kind`) or a malformed envelope (`malformed_envelope`, `malformed_body`, `unsupported_version`)", body = ErrorBody),
        (status = 401, description = "The signature does not verify (`unknown_signer`, `bad_signature`, `expired`, `from_the_future`)", body = ErrorBody),
        (status = 403, description = "The envelope speaks for another site (`wrong_site`, `wrong_direction`)", body = ErrorBody),
        (status = 409, description = "A replayed envelope (`replay`)", body = ErrorBody),
        (status = 413, description = "Over the envelope size limit (`body_too_large`)", body = ErrorBody)))]
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
    let (h, s) = (hub.clone(), site.clone());
    let hub_head = blocking(move || {
        Ok(crate::service::audit_heads::on_poll(
            h.store.as_ref(),
            &h.signer,
            &s,
            &env.body,
            now(),
        )?)
    })
    .await?;
    let with_head = |mut r: Response| {
        if let Some(v) = hub_head.and_then(|h| header::HeaderValue::from_str(&h.to_json()).ok()) {
            r.headers_mut().insert(qiao_protocol::HUB_HEAD_HEADER, v);
        }
        r
    };
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
            return Ok(with_head(envelope_response(&sealed)));
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Ok(with_head(StatusCode::NO_CONTENT.into_response()));
        }
        // Re-check at least every second: a delivered job becomes due again after the
        // redelivery interval without any notification.
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(left.min(Duration::from_secs(1))) => {}
        }
    }
}

/// A site posts a job's result.
///
/// The request is a signed `result` envelope (its body a `JobResult`, aggregates only); the
/// answer a signed `result_ack` envelope once the result is durably stored (a duplicate is
/// acknowledged again).
#[utoipa::path(post, path = "/api/v1/site/result", tag = "site protocol",
    request_body(content = Envelope, description = "A `result` envelope signed by the site"),
    responses(
        (status = 200, description = "A `result_ack` envelope signed by the hub", body = Envelope),
        (status = 400, description = "Not a result (`wrong_kind`) or a malformed envelope", body = ErrorBody),
        (status = 401, description = "The signature does not verify", body = ErrorBody),
        (status = 403, description = "The envelope speaks for another site, or the job was not sent to it (`wrong_site`)", body = ErrorBody),
        (status = 404, description = "No such job (`unknown_job`)", body = ErrorBody),
        (status = 409, description = "A replayed envelope (`replay`)", body = ErrorBody),
        (status = 422, description = "The result does not fit the job (`result_mismatch`) or is not aggregate-only (`not_aggregate`)", body = ErrorBody)))]
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
            Err(StoreError::Caller(CallerFault::NotFound(m))) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_job",
                format!("{m} not found"),
            )),
            Err(StoreError::Caller(CallerFault::Invalid(m))) => {
                Err(ApiError::invalid("result_mismatch", m))
            }
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    if outcome == ResultOutcome::Duplicate {
        tracing::info!("duplicate result for job {job_id} from site {site}: acknowledged again");
    } else {
        // A round of a regression run: the next round when every site has answered.
        let h = hub.clone();
        let issued = blocking(move || {
            Ok(crate::service::runs::advance(
                h.store.as_ref(),
                &job_id,
                now(),
            )?)
        })
        .await?;
        if issued {
            hub.notify_jobs();
        }
    }
    let ack = hub
        .signer
        .seal_result_ack(job_id, &site, now())
        .map_err(ApiError::internal)?;
    Ok(envelope_response(&ack))
}
