//! The site's HTTP client for the hub: HTTPS with rustls (optionally trusting an extra CA
//! certificate), plain HTTP only when explicitly allowed.
//!
//! The hub's API (`/api/v1`):
//! - `POST enroll` — JSON [`EnrollRequest`] → [`EnrollResponse`];
//! - `POST site/poll?wait_secs=N` — a site-signed poll [`Envelope`] → 200 with a hub-signed job
//!   envelope, or 204 when no job came within N seconds (long poll);
//! - `POST site/result` — a site-signed result envelope → 200 with a hub-signed `result_ack`.
//!
//! Errors are 4xx/5xx with `{"error": {"code", "message"}}`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use qiao_protocol::{EnrollRequest, EnrollResponse, Envelope};
use serde::Deserialize;

/// Largest response body read from the hub, in bytes.
const MAX_RESPONSE_BYTES: usize = qiao_protocol::envelope::MAX_ENVELOPE_BYTES;

/// How to reach the hub.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// A PEM CA certificate to trust in addition to the system's web roots (e.g. the alliance's
    /// own CA, or a self-signed hub certificate in tests).
    pub ca_cert: Option<PathBuf>,
    /// Allow a plain `http://` hub URL (local demos and tests only).
    pub insecure_http: bool,
}

/// A failed exchange with the hub.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The hub could not be reached, or the connection failed (retry later).
    #[error("cannot reach the hub: {0}")]
    Network(String),
    /// The hub answered with an error status.
    #[error("hub answered {status}: {code}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The error code from the body (or `http_<status>`).
        code: String,
        /// The message from the body.
        message: String,
    },
    /// The hub's answer is not what the protocol says.
    #[error("unexpected answer from the hub: {0}")]
    Protocol(String),
}

impl HubError {
    /// Whether retrying later may help (network errors and 5xx; a 4xx will not change).
    pub fn is_transient(&self) -> bool {
        match self {
            HubError::Network(_) => true,
            HubError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            HubError::Protocol(_) => true,
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// The hub's API.
#[derive(Clone, Debug)]
pub struct HubClient {
    base: String,
    http: reqwest::Client,
}

impl HubClient {
    /// A client for the hub at `url` (`https://…`, or `http://…` with `insecure_http`).
    pub fn new(url: &str, tls: &TlsOptions) -> anyhow::Result<Self> {
        let base = url.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base).with_context(|| format!("hub URL {url:?}"))?;
        match parsed.scheme() {
            "https" => {}
            "http" if tls.insecure_http => {
                tracing::warn!("talking to the hub over plain HTTP (--insecure-http)")
            }
            "http" => bail!(
                "hub URL {url} is plain http; use https, or pass --insecure-http for a local demo"
            ),
            other => bail!("hub URL {url}: unsupported scheme {other:?}"),
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(!tls.insecure_http)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("qiao-site/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &tls.ca_cert {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{}: not a PEM certificate", ca.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build().context("building the HTTP client")?;
        Ok(Self { base, http })
    }

    /// The hub's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn post(
        &self,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, HubError> {
        self.post_with_head(path, body, timeout)
            .await
            .map(|(b, _)| b)
    }

    /// [`Self::post`], also returning the hub's signed audit head header, if sent.
    async fn post_with_head(
        &self,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(Option<Vec<u8>>, Option<String>), HubError> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| HubError::Network(error_chain(&e)))?;
        let status = resp.status();
        let head = resp
            .headers()
            .get(qiao_protocol::HUB_HEAD_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = read_limited(resp).await?;
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok((None, head));
        }
        if status.is_success() {
            return Ok((Some(bytes), head));
        }
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => (b.error.code, b.error.message),
            Err(_) => (
                format!("http_{}", status.as_u16()),
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
            ),
        };
        Err(HubError::Status {
            status: status.as_u16(),
            code,
            message,
        })
    }

    /// `POST /api/v1/enroll`.
    pub async fn enroll(&self, request: &EnrollRequest) -> Result<EnrollResponse, HubError> {
        let body = serde_json::to_vec(request).map_err(|e| HubError::Protocol(e.to_string()))?;
        let bytes = self
            .post("/api/v1/enroll", body, Duration::from_secs(30))
            .await?
            .ok_or_else(|| HubError::Protocol("empty enrollment response".into()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| HubError::Protocol(format!("enrollment response: {e}")))
    }

    /// `POST /api/v1/site/poll?wait_secs=N`: a job envelope, or `None` if none came in time.
    pub async fn poll(
        &self,
        poll: &Envelope,
        wait_secs: u64,
    ) -> Result<Option<Envelope>, HubError> {
        self.poll_with_head(poll, wait_secs).await.map(|(e, _)| e)
    }

    /// [`Self::poll`], also returning the hub's signed audit head (the
    /// [`qiao_protocol::HUB_HEAD_HEADER`] header, unverified) if it sent one.
    pub async fn poll_with_head(
        &self,
        poll: &Envelope,
        wait_secs: u64,
    ) -> Result<(Option<Envelope>, Option<String>), HubError> {
        let path = format!("/api/v1/site/poll?wait_secs={wait_secs}");
        let timeout = Duration::from_secs(wait_secs.saturating_add(20));
        let (bytes, head) = self.post_with_head(&path, poll.to_json(), timeout).await?;
        match bytes {
            None => Ok((None, head)),
            Some(bytes) => Envelope::from_json(&bytes)
                .map(|e| (Some(e), head))
                .map_err(|e| HubError::Protocol(format!("job envelope: {e}"))),
        }
    }

    /// `POST /api/v1/site/result`: the hub's signed acknowledgement.
    pub async fn send_result(&self, result: &Envelope) -> Result<Envelope, HubError> {
        let bytes = self
            .post(
                "/api/v1/site/result",
                result.to_json(),
                Duration::from_secs(60),
            )
            .await?
            .ok_or_else(|| HubError::Protocol("empty result acknowledgement".into()))?;
        Envelope::from_json(&bytes).map_err(|e| HubError::Protocol(format!("result ack: {e}")))
    }
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, HubError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| HubError::Network(error_chain(&e)))?
    {
        if out.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(HubError::Protocol(format!(
                "response larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
