//! PostgreSQL connection parameters as libpq reads them, so that a hospital's usual set-up works
//! without a password in argv: a URL (`postgres://user@host:port/db?sslmode=verify-full`) or
//! `key=value` string, then the service file entry (`service=` / `PGSERVICE`), then the `PG*`
//! environment variables, then defaults; a password missing from all of them is looked up in
//! `~/.pgpass` (`PGPASSFILE`). TLS follows libpq's `sslmode` (disable, allow, prefer, require,
//! verify-ca, verify-full) with `sslrootcert`, `sslcert` and `sslkey`, over rustls.
//!
//! Nothing here ever formats the password: messages name the connection by [`Conn::display`]
//! (`user@host:port/dbname`), never by the string the user gave.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// Without TLS first; with TLS if the server refuses that.
    Allow,
    /// With TLS first (certificate not checked); without if TLS fails or the server has none.
    Prefer,
    /// TLS; the certificate is checked against the root certificate only if one is given.
    Require,
    /// TLS with a certificate signed by the root certificate.
    VerifyCa,
    /// TLS with a certificate signed by the root certificate and naming the host.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(format!(
                "invalid sslmode {s:?} (disable, allow, prefer, require, verify-ca or verify-full)"
            ))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Resolved connection parameters.
pub struct Conn {
    pub config: postgres::Config,
    pub sslmode: SslMode,
    /// `user@host:port/dbname`: what messages call this connection.
    pub display: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conn({}, sslmode={})", self.display, self.sslmode.name())
    }
}

/// The parameters libpq knows that Qiao uses, and the environment variable of each.
const PARAMS: &[(&str, Option<&str>)] = &[
    ("host", Some("PGHOST")),
    ("hostaddr", Some("PGHOSTADDR")),
    ("port", Some("PGPORT")),
    ("dbname", Some("PGDATABASE")),
    ("user", Some("PGUSER")),
    ("password", Some("PGPASSWORD")),
    ("passfile", Some("PGPASSFILE")),
    ("service", None),
    ("sslmode", Some("PGSSLMODE")),
    ("sslrootcert", Some("PGSSLROOTCERT")),
    ("sslcert", Some("PGSSLCERT")),
    ("sslkey", Some("PGSSLKEY")),
    ("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    ("application_name", Some("PGAPPNAME")),
    ("options", Some("PGOPTIONS")),
];

/// Where environment variables and the home directory come from (the process's, or a test's).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
    fn home(&self) -> Option<PathBuf>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
    fn home(&self) -> Option<PathBuf> {
        std::env::var_os("HOME").map(PathBuf::from)
    }
}

/// Resolves a connection string (URL, `key=value` or empty) with the service file, environment,
/// `~/.pgpass` and defaults. Errors never contain the password.
pub fn resolve(conninfo: &str, env: &dyn Env) -> Result<Conn, String> {
    let mut p = parse(conninfo)?;
    // The service file fills what the string does not set; then the environment.
    if let Some(service) = p.get("service").cloned().or_else(|| env.var("PGSERVICE")) {
        for (k, v) in service_entry(&service, env)? {
            p.entry(k).or_insert(v);
        }
    }
    for (key, var) in PARAMS {
        if let Some(v) = var.and_then(|var| env.var(var)) {
            p.entry(key.to_string()).or_insert(v);
        }
    }
    let os_user = env
        .var("USER")
        .or_else(|| env.var("LOGNAME"))
        .unwrap_or_else(|| "postgres".into());
    let host = p.get("host").cloned().unwrap_or_else(|| "localhost".into());
    let port: u16 = match p.get("port") {
        Some(s) => s
            .parse()
            .map_err(|_| format!("invalid port {s:?} in the connection parameters"))?,
        None => 5432,
    };
    let user = p.get("user").cloned().unwrap_or(os_user);
    let dbname = p.get("dbname").cloned().unwrap_or_else(|| user.clone());
    let display = format!("{user}@{host}:{port}/{dbname}");

    let mut config = postgres::Config::new();
    for h in host.split(',') {
        if h.starts_with('/') {
            config.host_path(h);
        } else {
            config.host(h);
        }
    }
    if let Some(addr) = p.get("hostaddr") {
        config.hostaddr(
            addr.parse()
                .map_err(|_| format!("invalid hostaddr {addr:?}"))?,
        );
    }
    config.port(port).user(&user).dbname(&dbname);
    let password = match p.get("password") {
        Some(pw) => Some(pw.clone()),
        None => {
            let passfile = p
                .get("passfile")
                .map(PathBuf::from)
                .or_else(|| env.home().map(|h| h.join(".pgpass")));
            passfile.and_then(|f| pgpass_lookup(&f, &host, port, &dbname, &user))
        }
    };
    if let Some(pw) = password {
        config.password(pw);
    }
    if let Some(t) = p.get("connect_timeout") {
        let secs: u64 = t
            .parse()
            .map_err(|_| format!("invalid connect_timeout {t:?}"))?;
        if secs > 0 {
            config.connect_timeout(Duration::from_secs(secs.max(2)));
        }
    }
    if let Some(a) = p.get("application_name") {
        config.application_name(a);
    } else {
        config.application_name("qiao ingest");
    }
    if let Some(o) = p.get("options") {
        config.options(o);
    }

    let sslmode = SslMode::parse(p.get("sslmode").map_or("prefer", String::as_str))?;
    let pg_dir = env.home().map(|h| h.join(".postgresql"));
    let default_file = |name: &str| {
        pg_dir
            .as_ref()
            .map(|d| d.join(name))
            .filter(|f| f.is_file())
    };
    let rootcert = p
        .get("sslrootcert")
        .map(PathBuf::from)
        .or_else(|| default_file("root.crt"));
    let cert = p
        .get("sslcert")
        .map(PathBuf::from)
        .or_else(|| default_file("postgresql.crt"));
    let key = p
        .get("sslkey")
        .map(PathBuf::from)
        .or_else(|| default_file("postgresql.key"));
    let tls = match sslmode {
        SslMode::Disable => None,
        _ => Some(Arc::new(tls_config(
            sslmode,
            rootcert.as_deref(),
            cert.as_deref(),
            key.as_deref(),
        )?)),
    };
    Ok(Conn {
        config,
        sslmode,
        display,
        tls,
    })
}

impl Conn {
    /// Connects as `sslmode` says. Returns the client and whether TLS is on.
    pub fn connect(&self) -> Result<(postgres::Client, bool), postgres::Error> {
        use postgres::config::SslMode as Pg;
        let plain = || {
            let mut c = self.config.clone();
            c.ssl_mode(Pg::Disable).connect(postgres::NoTls)
        };
        let tls = |mode: Pg| {
            let mut c = self.config.clone();
            let tls_config = self
                .tls
                .clone()
                .expect("a TLS config unless sslmode=disable");
            c.ssl_mode(mode)
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(
                    Arc::unwrap_or_clone(tls_config),
                ))
        };
        match self.sslmode {
            SslMode::Disable => plain().map(|c| (c, false)),
            SslMode::Allow => plain()
                .map(|c| (c, false))
                .or_else(|_| tls(Pg::Require).map(|c| (c, true))),
            // tokio-postgres' Prefer goes on without TLS when the server has none; when the TLS
            // attempt itself fails (e.g. a `hostnossl`-only rule), libpq tries again without.
            SslMode::Prefer => tls(Pg::Prefer)
                .map(|c| (c, true))
                .or_else(|e| plain().map(|c| (c, false)).map_err(|_| e)),
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tls(Pg::Require).map(|c| (c, true))
            }
        }
    }
}

/// The rustls client configuration for `sslmode`: which certificates are accepted, and the client
/// certificate if one is given.
fn tls_config(
    mode: SslMode,
    rootcert: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = |path: &Path| -> Result<Arc<RootCertStore>, String> {
        let mut store = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
        for c in certs {
            let c = c.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            store
                .add(c)
                .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
        }
        if store.is_empty() {
            return Err(format!("sslrootcert {}: no certificate", path.display()));
        }
        Ok(Arc::new(store))
    };
    let webpki = |path: &Path| -> Result<Arc<WebPkiServerVerifier>, String> {
        WebPkiServerVerifier::builder_with_provider(roots(path)?, provider.clone())
            .build()
            .map_err(|e| format!("sslrootcert {}: {e}", path.display()))
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, rootcert) {
        (SslMode::VerifyFull, Some(root)) => webpki(root)?,
        // libpq: `require` with a root certificate file behaves as verify-ca.
        (SslMode::VerifyCa | SslMode::Require, Some(root)) => Arc::new(Lenient {
            chain: Some(webpki(root)?),
            provider: provider.clone(),
        }),
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(format!(
                "sslmode={} needs a root certificate: give sslrootcert=FILE (or put it in \
                 ~/.postgresql/root.crt)",
                mode.name()
            ))
        }
        _ => Arc::new(Lenient {
            chain: None,
            provider: provider.clone(),
        }),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect())
                .map_err(|e| format!("sslcert {}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("sslkey {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("sslcert/sslkey: {e}"))
        }
        (Some(_), None) => Err("sslcert is given without sslkey".into()),
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// The server certificate check of every mode but verify-full: with a root certificate
/// (verify-ca, or require given one) a chain to it, whatever host name the certificate is for;
/// without (prefer, allow, require) none, as libpq: encryption without authentication of the
/// server. The handshake's signatures are checked either way.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // The chain is checked before the name: a name error means the chain is good.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Parses a URL or `key=value` connection string into libpq keywords (values decoded).
fn parse(s: &str) -> Result<BTreeMap<String, String>, String> {
    let s = s.trim();
    let mut out = BTreeMap::new();
    if let Some(rest) = s
        .strip_prefix("postgresql://")
        .or_else(|| s.strip_prefix("postgres://"))
    {
        let decode = |v: &str| -> Result<String, String> {
            percent_decode_str(v)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| {
                    "the connection URL has a percent-encoded value that is not UTF-8".into()
                })
        };
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = main.split_once('/').unwrap_or((main, ""));
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        if let Some(ui) = userinfo {
            let (u, pw) = match ui.split_once(':') {
                Some((u, pw)) => (u, Some(pw)),
                None => (ui, None),
            };
            if !u.is_empty() {
                out.insert("user".into(), decode(u)?);
            }
            if let Some(pw) = pw {
                out.insert("password".into(), decode(pw)?);
            }
        }
        // host[:port][,host[:port]…]; [v6] hosts in brackets.
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for hp in hostport.split(',').filter(|h| !h.is_empty()) {
            let (h, port) = if let Some(v6) = hp.strip_prefix('[') {
                let (h, rest) = v6.split_once(']').ok_or("unclosed [ in the URL's host")?;
                (h, rest.strip_prefix(':'))
            } else {
                match hp.rsplit_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (hp, None),
                }
            };
            if !h.is_empty() {
                hosts.push(decode(h)?);
            }
            if let Some(p) = port {
                ports.push(p.to_string());
            }
        }
        if !hosts.is_empty() {
            out.insert("host".into(), hosts.join(","));
        }
        if let Some(p) = ports.first() {
            out.insert("port".into(), p.clone());
        }
        if !path.is_empty() {
            out.insert("dbname".into(), decode(path)?);
        }
        for kv in query.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let k = decode(k)?;
            check_key(&k)?;
            out.insert(k, decode(v)?);
        }
        return Ok(out);
    }
    // key = value pairs; values 'quoted' with \' and \\ escapes.
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!(
                "connection string: missing \"=\" after {key:?} (give a postgres:// URL or key=value pairs)"
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("connection string: unterminated quote in {key}")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        check_key(&key)?;
        out.insert(key, value);
    }
    Ok(out)
}

fn check_key(key: &str) -> Result<(), String> {
    const IGNORED: &[&str] = &[
        "channel_binding",
        "keepalives",
        "keepalives_idle",
        "target_session_attrs",
        "gssencmode",
        "sslcompression",
        "sslcrl",
        "sslpassword",
        "sslsni",
        "requiressl",
        "fallback_application_name",
        "client_encoding",
    ];
    if PARAMS.iter().any(|(k, _)| *k == key) || IGNORED.contains(&key) {
        Ok(())
    } else {
        Err(format!("unknown connection parameter {key:?}"))
    }
}

/// The `[service]` entry of the service file (`PGSERVICEFILE` or `~/.pg_service.conf`, then
/// `PGSYSCONFDIR/pg_service.conf`).
fn service_entry(service: &str, env: &dyn Env) -> Result<Vec<(String, String)>, String> {
    let mut files: Vec<PathBuf> = Vec::new();
    match env.var("PGSERVICEFILE") {
        Some(f) => files.push(f.into()),
        None => files.extend(env.home().map(|h| h.join(".pg_service.conf"))),
    }
    files.push(
        PathBuf::from(
            env.var("PGSYSCONFDIR")
                .unwrap_or_else(|| "/etc/postgresql-common".into()),
        )
        .join("pg_service.conf"),
    );
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let mut in_section = false;
        let mut found = false;
        let mut out = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                in_section = name.trim() == service;
                found |= in_section;
                continue;
            }
            if in_section {
                let (k, v) = line.split_once('=').ok_or_else(|| {
                    format!(
                        "{}: service {service}: a line without \"=\"",
                        file.display()
                    )
                })?;
                let k = k.trim();
                check_key(k).map_err(|e| format!("{}: {e}", file.display()))?;
                out.push((k.to_string(), v.trim().to_string()));
            }
        }
        if found {
            return Ok(out);
        }
    }
    Err(format!(
        "service {service:?} not found in {}",
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    ))
}

/// The password for (host, port, dbname, user) from a `.pgpass` file, as libpq reads it: the first
/// matching `host:port:db:user:password` line, `*` matching anything, `\:` and `\\` escaped;
/// `localhost` also matches a unix socket. A file others can read is ignored (with a warning).
fn pgpass_lookup(file: &Path, host: &str, port: u16, dbname: &str, user: &str) -> Option<String> {
    let meta = std::fs::metadata(file).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "{}: ignored: readable by group or others (chmod 0600 it)",
                file.display()
            );
            return None;
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = std::fs::read_to_string(file).ok()?;
    let host = if host.starts_with('/') {
        "localhost"
    } else {
        host
    };
    let port = port.to_string();
    let want = [host, port.as_str(), dbname, user];
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::with_capacity(5);
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => cur.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() == 5
            && fields[..4]
                .iter()
                .zip(want)
                .all(|(f, w)| f == "*" || f == w)
        {
            return fields.pop();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeEnv(BTreeMap<&'static str, String>, Option<PathBuf>);
    impl Env for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
        fn home(&self) -> Option<PathBuf> {
            self.1.clone()
        }
    }

    fn env(vars: &[(&'static str, &str)], home: Option<&Path>) -> FakeEnv {
        FakeEnv(
            vars.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            home.map(Path::to_path_buf),
        )
    }

    fn password(c: &Conn) -> Option<String> {
        c.config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }

    #[test]
    fn urls_and_keywords_decode_and_never_show_the_password() {
        let e = env(&[], None);
        for (s, pw) in [
            ("postgres://u:s%65cr%40t@h:5/db", "secr@t"),
            ("postgresql://u:secret@h:5/db?connect_timeout=5", "secret"),
            (
                "postgres://h:5/db?user=u&password=secret&sslmode=disable",
                "secret",
            ),
            ("host=h port=5 user=u password=secret dbname=db", "secret"),
            (
                "host=h port=5 user=u password = 'sec ret\\'s' dbname=db",
                "sec ret's",
            ),
        ] {
            let c = resolve(s, &e).unwrap();
            assert_eq!(c.display, "u@h:5/db", "{s}");
            assert_eq!(password(&c).as_deref(), Some(pw), "{s}");
            assert!(!format!("{c:?}").contains("sec"), "{c:?}");
        }
        let c = resolve("postgres://[::1]:6/x?sslmode=require", &e).unwrap();
        assert_eq!(c.sslmode, SslMode::Require);
        assert_eq!(c.config.get_ports(), &[6]);
        let err = resolve("postgres://u:secret@h/db?sslmode=sometimes", &e).unwrap_err();
        assert!(err.contains("sslmode") && !err.contains("secret"), "{err}");
        let err = resolve("host=h pasword=secret", &e).unwrap_err();
        assert!(err.contains("pasword") && !err.contains("secret"), "{err}");
    }

    #[test]
    fn the_environment_service_file_and_pgpass_fill_in() {
        let home = tempfile::tempdir().unwrap();
        let e = env(
            &[
                ("PGHOST", "dbhost"),
                ("PGUSER", "envuser"),
                ("PGPASSWORD", "envpw"),
                ("USER", "me"),
            ],
            Some(home.path()),
        );
        let c = resolve("dbname=cdm", &e).unwrap();
        assert_eq!(c.display, "envuser@dbhost:5432/cdm");
        assert_eq!(password(&c).as_deref(), Some("envpw"));
        // The string wins over the environment.
        let c = resolve("postgres://other@h2/x", &e).unwrap();
        assert_eq!(c.display, "other@h2:5432/x");

        // A service file entry, under the string and over the environment.
        let svc = home.path().join("svc.conf");
        std::fs::write(
            &svc,
            "# sites\n[site]\nhost=svchost\nport=6543\ndbname=omop\n[other]\nhost=no\n",
        )
        .unwrap();
        let svc = svc.to_str().unwrap().to_string();
        let e = env(
            &[
                ("PGSERVICEFILE", &svc),
                ("PGSERVICE", "site"),
                ("PGHOST", "envhost"),
                ("USER", "me"),
            ],
            Some(home.path()),
        );
        let c = resolve("", &e).unwrap();
        assert_eq!(c.display, "me@svchost:6543/omop");
        let c = resolve("dbname=x", &e).unwrap();
        assert_eq!(c.display, "me@svchost:6543/x");
        let e2 = env(&[("PGSERVICEFILE", &svc)], Some(home.path()));
        assert!(resolve("service=nope", &e2).unwrap_err().contains("nope"));

        // ~/.pgpass: the first matching line; wildcards and escapes; 0600 only.
        let pgpass = home.path().join(".pgpass");
        std::fs::write(
            &pgpass,
            "otherhost:*:*:*:wrong\nsvchost:6543:omop:me:p\\:w\\\\1\n*:*:*:*:fallback\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let c = resolve("", &e).unwrap();
        assert_eq!(password(&c).as_deref(), Some("p:w\\1"));
        let c = resolve("host=elsewhere", &e).unwrap();
        assert_eq!(password(&c).as_deref(), Some("fallback"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(password(&resolve("", &e).unwrap()), None);
        }
    }

    #[test]
    fn verify_modes_need_a_root_certificate() {
        let home = tempfile::tempdir().unwrap();
        let e = env(&[], Some(home.path()));
        for mode in ["verify-ca", "verify-full"] {
            let err = resolve(&format!("host=h sslmode={mode}"), &e).unwrap_err();
            assert!(err.contains("sslrootcert"), "{err}");
        }
        let err = resolve(
            "host=h sslmode=verify-full sslrootcert=/nonexistent/ca.crt",
            &e,
        )
        .unwrap_err();
        assert!(err.contains("/nonexistent/ca.crt"), "{err}");
        assert_eq!(resolve("host=h", &e).unwrap().sslmode, SslMode::Prefer);
    }
}
