//! A small blocking client of the hub's user API (`qiao query`, tests, demos).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use qiao_protocol::{JobId, ProjectId};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{QueryRequest, SubmitResponse, TokenResponse};
use crate::view::JobView;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The hub answered with an error.
    #[error("hub answered {status} {code}: {message}")]
    Http {
        /// HTTP status.
        status: u16,
        /// The error code.
        code: String,
        /// The message.
        message: String,
    },
    /// No answer (connection, TLS, timeout).
    #[error("cannot reach the hub: {0}")]
    Transport(String),
    /// The answer was not what was expected.
    #[error("unexpected answer from the hub: {0}")]
    Decode(String),
}

/// A raw answer: status and body.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The body as JSON (`Null` if empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The error code of an error answer.
    pub fn error_code(&self) -> Option<String> {
        self.json()["error"]["code"].as_str().map(str::to_owned)
    }
}

/// A client of one hub.
#[derive(Clone, Debug)]
pub struct HubClient {
    base: String,
    agent: ureq::Agent,
    token: Option<String>,
}

impl HubClient {
    /// A client of the hub at `base` (`https://host:port`). With `ca_cert`, the hub's
    /// certificate must chain to the certificate(s) in that PEM file instead of the public
    /// web roots.
    pub fn new(base: &str, ca_cert: Option<&Path>) -> anyhow::Result<Self> {
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(90))
            .timeout_write(Duration::from_secs(30));
        if let Some(ca) = ca_cert {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("reading {}", ca.display()))?
            {
                let cert = cert.with_context(|| format!("reading {}", ca.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("{}: not a usable CA certificate", ca.display()))?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
            builder = builder.tls_config(Arc::new(config));
        }
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            agent: builder.build(),
            token: None,
        })
    }

    /// Uses `token` as the bearer token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Any request; error statuses are returned, not raised.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<RawResponse, ClientError> {
        let mut req = self.agent.request(method, &format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let result = match body {
            Some(b) => req.set("Content-Type", "application/json").send_bytes(b),
            None => req.call(),
        };
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(ClientError::Transport(e.to_string())),
        };
        let status = resp.status();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader().take_limit(), &mut body)
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(RawResponse { status, body })
    }

    /// A JSON call; an error status becomes [`ClientError::Http`].
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, ClientError> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let r = self.raw(method, path, bytes.as_deref())?;
        if !(200..300).contains(&r.status) {
            let v = r.json();
            return Err(ClientError::Http {
                status: r.status,
                code: v["error"]["code"].as_str().unwrap_or("unknown").to_owned(),
                message: v["error"]["message"]
                    .as_str()
                    .unwrap_or("(no message)")
                    .to_owned(),
            });
        }
        serde_json::from_slice(&r.body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Logs in; returns a session token.
    pub fn login(&self, user: &str, password: &str) -> Result<TokenResponse, ClientError> {
        self.call(
            "POST",
            "/api/v1/login",
            Some(&serde_json::json!({"username": user, "password": password})),
        )
    }

    /// Creates an API token for the current user.
    pub fn create_api_token(&self, label: Option<&str>) -> Result<TokenResponse, ClientError> {
        self.call(
            "POST",
            "/api/v1/tokens",
            Some(&serde_json::json!({"label": label})),
        )
    }

    /// Submits a query under `project`.
    pub fn submit_query(
        &self,
        project: &ProjectId,
        req: &QueryRequest,
    ) -> Result<SubmitResponse, ClientError> {
        let body = serde_json::to_value(req).map_err(|e| ClientError::Decode(e.to_string()))?;
        self.call(
            "POST",
            &format!("/api/v1/projects/{project}/queries"),
            Some(&body),
        )
    }

    /// A job's status and results.
    pub fn job(&self, id: &JobId) -> Result<JobView, ClientError> {
        self.call("GET", &format!("/api/v1/jobs/{id}"), None)
    }

    /// Polls a job until every site has answered or `timeout` passes; returns the last view.
    pub fn wait_job(&self, id: &JobId, timeout: Duration) -> Result<JobView, ClientError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let v = self.job(id)?;
            if v.complete || start.elapsed() >= timeout {
                return Ok(v);
            }
            std::thread::sleep(pause.min(timeout.saturating_sub(start.elapsed())));
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// Starts a regression run under `project`.
    pub fn start_run(
        &self,
        project: &ProjectId,
        req: &crate::service::runs::RunRequest,
    ) -> Result<crate::service::runs::RunRecord, ClientError> {
        let body = serde_json::to_value(req).map_err(|e| ClientError::Decode(e.to_string()))?;
        self.call(
            "POST",
            &format!("/api/v1/projects/{project}/runs"),
            Some(&body),
        )
    }

    /// A regression run.
    pub fn run(&self, id: &JobId) -> Result<crate::service::runs::RunRecord, ClientError> {
        self.call("GET", &format!("/api/v1/runs/{id}"), None)
    }

    /// Resumes a failed regression run.
    pub fn resume_run(&self, id: &JobId) -> Result<crate::service::runs::RunRecord, ClientError> {
        self.call("POST", &format!("/api/v1/runs/{id}/resume"), None)
    }
}

trait TakeLimit: std::io::Read + Sized {
    fn take_limit(self) -> std::io::Take<Self> {
        self.take(64 * 1024 * 1024)
    }
}

impl<R: std::io::Read> TakeLimit for R {}
