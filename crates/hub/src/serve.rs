//! Serving the API: a TCP accept loop, TLS with rustls (or plain HTTP only when asked), HTTP/1.1
//! with hyper, connection and header-read limits.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::api::{router, Hub, HubConfig};
use crate::store::HubStore;

/// Most simultaneous connections.
pub const MAX_CONNECTIONS: usize = 4096;
/// Time allowed for a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
pub use crate::api::BODY_READ_TIMEOUT;
/// Largest request body buffered by the server (each route then applies its own, smaller,
/// limit).
const MAX_BUFFERED_BODY: usize = 8 * 1024 * 1024;

/// Middleware: reads the whole request body within `timeout` (408 otherwise; default
/// [`BODY_READ_TIMEOUT`]) and at most [`MAX_BUFFERED_BODY`] bytes (413), before any handler
/// runs.
pub async fn body_deadline(
    axum::extract::State(timeout): axum::extract::State<Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, MAX_BUFFERED_BODY)).await {
        Ok(Ok(bytes)) => {
            next.run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
            .await
        }
        Ok(Err(_)) => crate::ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body exceeds {MAX_BUFFERED_BODY} bytes"),
        )
        .into_response(),
        Err(_) => crate::ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} s",
                timeout.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

/// A rustls server configuration from PEM files (certificate chain, private key).
pub fn tls_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading TLS certificate {}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{}: no certificate in the file", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading TLS private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not form a valid pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!("connection limit ({MAX_CONNECTIONS}) reached; dropping {addr}");
            continue;
        };
        let app = app.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(addr));
                app.clone().oneshot(req)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .keep_alive(true);
            let result = match acceptor {
                Some(a) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, a.accept(stream)).await {
                        Ok(Ok(tls)) => builder.serve_connection(TokioIo::new(tls), svc).await,
                        Ok(Err(e)) => {
                            tracing::debug!("TLS handshake with {addr}: {e}");
                            return;
                        }
                        Err(_) => return,
                    }
                }
                None => builder.serve_connection(TokioIo::new(stream), svc).await,
            };
            if let Err(e) = result {
                tracing::debug!("connection {addr}: {e}");
            }
        });
    }
}

/// How to listen.
#[derive(Clone, Debug)]
pub struct Listen {
    /// Address to bind.
    pub addr: SocketAddr,
    /// TLS configuration, or `None` for plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// A hub serving on its own runtime in a background thread (tests, demos). Dropping it stops
/// the server.
pub struct BackgroundHub {
    /// The bound address.
    pub addr: SocketAddr,
    /// The hub's state.
    pub hub: Arc<Hub>,
    /// `http` or `https`.
    pub scheme: &'static str,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundHub {
    /// Starts a hub over `store` on `listen` (use port 0 for any free port).
    pub fn start(
        store: Arc<dyn HubStore>,
        config: HubConfig,
        listen: Listen,
    ) -> anyhow::Result<Self> {
        Self::start_with(store, config, listen, router)
    }

    /// Like [`BackgroundHub::start`], serving the router `app` makes from the hub (e.g. the API
    /// merged with the portal's pages).
    pub fn start_with(
        store: Arc<dyn HubStore>,
        config: HubConfig,
        listen: Listen,
        app: impl FnOnce(Arc<Hub>) -> Router,
    ) -> anyhow::Result<Self> {
        let hub = Arc::new(Hub::new(store, config)?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let std_listener = std::net::TcpListener::bind(listen.addr)
            .with_context(|| format!("binding {}", listen.addr))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = app(hub.clone()).layer(axum::middleware::from_fn_with_state(
            hub.config().body_timeout,
            body_deadline,
        ));
        let scheme = if listen.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let tls = listen.tls;
        let thread = std::thread::Builder::new()
            .name("qiao-hub".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("listener: {e}");
                            return;
                        }
                    };
                    serve(listener, app, tls, async {
                        let _ = stopped.await;
                    })
                    .await;
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(Self {
            addr,
            hub,
            scheme,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }
}

impl Drop for BackgroundHub {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves a hub over `store` in the foreground until SIGINT or SIGTERM, calling `ready` with
/// the bound address once it accepts connections.
pub fn run_foreground(
    store: Arc<dyn HubStore>,
    config: HubConfig,
    listen: Listen,
    ready: impl FnOnce(SocketAddr, &Hub),
) -> anyhow::Result<()> {
    run_foreground_with(store, config, listen, router, ready)
}

/// Like [`run_foreground`], serving the router `app` makes from the hub.
pub fn run_foreground_with(
    store: Arc<dyn HubStore>,
    config: HubConfig,
    listen: Listen,
    app: impl FnOnce(Arc<Hub>) -> Router,
    ready: impl FnOnce(SocketAddr, &Hub),
) -> anyhow::Result<()> {
    let hub = Arc::new(Hub::new(store, config)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(listen.addr)
            .await
            .with_context(|| format!("binding {}", listen.addr))?;
        let addr = listener.local_addr()?;
        ready(addr, &hub);
        let timeout = hub.config().body_timeout;
        let app = app(hub).layer(axum::middleware::from_fn_with_state(timeout, body_deadline));
        serve(listener, app, listen.tls, shutdown_signal()).await;
        anyhow::Ok(())
    })?;
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
