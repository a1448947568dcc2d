//! A Qiao network on loopback: a hub and N sites, each site enrolled with a one-time token and
//! the pinned hub key, then pulling jobs over the real signed protocol. This is the one way the
//! project starts such a network: `qiao demo`, the end-to-end and attack tests of the `qiao`
//! binary, and the network round-trip benchmark all call [`Network::start`].
//!
//! The same steps run in one of two places ([`Nodes`]):
//! - [`Nodes::Processes`]: the hub's state is made with the `qiao hub create-*` commands and
//!   the nodes are `qiao hub serve` and `qiao site serve` child processes (what an operator
//!   runs; the tests and the benchmark);
//! - [`Nodes::InProcess`]: the same state is made through the hub's library calls and the
//!   nodes are a [`BackgroundHub`] and `qiao_site::serve` tasks in this process (the demo).
//!
//! The steps ([`Network::start`]): accounts, sites (each with a one-time enrollment token),
//! approved projects and API tokens on the hub's state; the hub serves; every site enrolls and
//! serves its store. Child processes are killed when the [`Network`] is dropped, also when a
//! test fails ([`Procs`]).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use qiao_hub::api::{build_user, issue_enrollment_token, CreateUserRequest};
use qiao_hub::audit::Actor;
use qiao_hub::model::{role_name, Project, Site};
use qiao_hub::protocol::{ProjectId, SiteId, UserId, UserRole};
use qiao_hub::{BackgroundHub, HubClient, HubConfig, HubStore, Listen, RedbStore};
use qiao_site::{EnrollOptions, ServeOptions, TlsOptions};

/// Child processes, killed and reaped when dropped.
#[derive(Default)]
pub struct Procs(pub Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `qiao` binary, run as a command.
#[derive(Clone, Debug)]
pub struct Cli {
    /// Path of the binary.
    pub bin: PathBuf,
    /// The password `qiao hub create-user` reads (QIAO_HUB_PASSWORD) unless a step sets its own.
    pub password: String,
}

impl Cli {
    pub fn new(bin: impl Into<PathBuf>, password: &str) -> Self {
        Self {
            bin: bin.into(),
            password: password.to_owned(),
        }
    }

    /// A command for `qiao ARGS`, with the password in the environment and QIAO_LOG unset.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env("QIAO_HUB_PASSWORD", &self.password)
            .env_remove("QIAO_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `qiao ARGS` to completion (at most `timeout`), killing it if it takes longer.
    pub fn run_for(
        &self,
        args: &[&str],
        cwd: Option<&Path>,
        timeout: Duration,
    ) -> anyhow::Result<Output> {
        self.run_cmd(self.command(args), args, cwd, timeout)
    }

    fn run_cmd(
        &self,
        mut cmd: Command,
        args: &[&str],
        cwd: Option<&Path>,
        timeout: Duration,
    ) -> anyhow::Result<Output> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let mut out_pipe = child.stdout.take().context("stdout")?;
        let mut err_pipe = child.stderr.take().context("stderr")?;
        let out_reader = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = out_pipe.read_to_end(&mut b);
            b
        });
        let err_reader = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = err_pipe.read_to_end(&mut b);
            b
        });
        let mut guard = Procs(vec![child]);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = guard.0[0].try_wait().context("waiting for qiao")? {
                break s;
            }
            if start.elapsed() >= timeout {
                bail!("qiao {args:?} did not finish within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(guard);
        Ok(Output {
            status,
            stdout: out_reader.join().unwrap_or_default(),
            stderr: err_reader.join().unwrap_or_default(),
        })
    }

    /// Runs `qiao ARGS` (at most 120 s); its stdout, or an error with its stderr.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        self.run_with_password(args, &self.password)
    }

    fn run_with_password(&self, args: &[&str], password: &str) -> anyhow::Result<String> {
        let mut cmd = self.command(args);
        cmd.env("QIAO_HUB_PASSWORD", password);
        let out = self.run_cmd(cmd, args, None, Duration::from_secs(120))?;
        if !out.status.success() {
            bail!(
                "qiao {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8(out.stdout).context("qiao printed non-UTF-8 output")
    }
}

/// Where the nodes run.
#[derive(Clone, Debug)]
pub enum Nodes {
    /// `qiao hub serve` and `qiao site serve` processes of this binary.
    Processes(Cli),
    /// A hub and site tasks in this process.
    InProcess,
}

/// An account made before the hub serves.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: String,
    pub role: UserRole,
    pub password: String,
    /// The member enterprise or hospital (sponsor researchers).
    pub institution: Option<String>,
    /// The site (site data stewards and investigators).
    pub site: Option<String>,
    /// Give the account an API token ([`Network::tokens`]).
    pub api_token: bool,
}

/// A site: its id, display name, store and data directory (made at enrollment).
#[derive(Clone, Debug)]
pub struct SiteSpec {
    pub id: String,
    pub name: Option<String>,
    pub store: PathBuf,
    pub data: PathBuf,
}

/// A project made approved, with its members.
#[derive(Clone, Debug)]
pub struct ProjectSpec {
    pub id: String,
    pub title: String,
    pub members: Vec<String>,
}

/// What to start.
#[derive(Clone, Debug)]
pub struct Spec {
    pub accounts: Vec<Account>,
    pub sites: Vec<SiteSpec>,
    pub projects: Vec<ProjectSpec>,
    /// The hub's address (plain HTTP: keep it on loopback).
    pub listen: SocketAddr,
    /// With `Some(seed)`, site `i`'s disclosure secret (which keys its noise) is derived from
    /// `seed + i` instead of drawn at random, so released values repeat from run to run.
    pub secret_seed: Option<u64>,
    /// Job submissions allowed per user and per project and hour (`None`: the hub's default).
    pub jobs_per_hour: Option<usize>,
    /// The sites' long-poll duration (`None`: the site's default).
    pub site_wait_secs: Option<u64>,
    /// The sites' longest pause between retries when the hub cannot be reached.
    pub max_backoff_secs: u64,
    /// Processes only: each site logs (`QIAO_LOG=qiao_site=info`) to `DIR/NAME.log`
    /// ([`RunningSite::log`]); otherwise its output is discarded.
    pub site_logs: bool,
    /// In process only: the alliance floors the hub states in every job (`None`: the hub's
    /// default); processes take them as `hub_args`.
    pub floors: Option<qiao_hub::protocol::Floors>,
    /// Processes only: extra `qiao hub serve` flags (e.g. the alliance floors).
    pub hub_args: Vec<String>,
    /// Processes only: extra `qiao site serve` flags for every site (e.g. `--workers`).
    pub site_args: Vec<String>,
    /// Processes only: (site id, flags) for sites that serve another CDM than their store: the
    /// flags replace `--store STORE` (e.g. `--spark sc://HOST:PORT --schema S`).
    pub site_sources: Vec<(String, Vec<String>)>,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            accounts: Vec::new(),
            sites: Vec::new(),
            projects: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            secret_seed: None,
            jobs_per_hour: None,
            site_wait_secs: None,
            max_backoff_secs: 60,
            site_logs: false,
            floors: None,
            hub_args: Vec::new(),
            site_args: Vec::new(),
            site_sources: Vec::new(),
        }
    }
}

/// A serving site.
#[derive(Clone, Debug)]
pub struct RunningSite {
    pub id: SiteId,
    /// The site's data directory.
    pub data: PathBuf,
    pub store: PathBuf,
    /// Processes with [`Spec::site_logs`]: the site's log file.
    pub log: Option<PathBuf>,
}

enum Running {
    Processes {
        procs: Procs,
    },
    InProcess {
        hub: BackgroundHub,
        runtime: tokio::runtime::Runtime,
        stop: tokio::sync::watch::Sender<bool>,
        tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    },
}

/// A hub and its sites, serving.
pub struct Network {
    /// The hub's base URL.
    pub url: String,
    /// The hub key's fingerprint, pinned by every site.
    pub hub_fingerprint: String,
    /// API token per account id (accounts with [`Account::api_token`]).
    pub tokens: BTreeMap<String, String>,
    pub sites: Vec<RunningSite>,
    running: Running,
}

/// The hub's state before it serves: made with the CLI or through the library.
enum State {
    Cli { cli: Cli, dir: PathBuf },
    Store(Arc<dyn HubStore>),
}

impl State {
    fn create_user(&self, a: &Account) -> anyhow::Result<()> {
        match self {
            State::Cli { cli, dir } => {
                let mut args = vec![
                    "hub",
                    "create-user",
                    "--data",
                    path_str(dir)?,
                    "--id",
                    &a.id,
                    "--role",
                    role_name(a.role),
                ];
                if let Some(i) = &a.institution {
                    args.extend(["--institution", i]);
                }
                if let Some(s) = &a.site {
                    args.extend(["--site", s]);
                }
                cli.run_with_password(&args, &a.password)?;
            }
            State::Store(store) => {
                let t = qiao_hub::util::now();
                let user = build_user(
                    store.as_ref(),
                    CreateUserRequest {
                        id: UserId::new(a.id.clone())?,
                        password: a.password.clone(),
                        role: a.role,
                        institution: a.institution.clone(),
                        site: a.site.clone().map(SiteId::new).transpose()?,
                    },
                    t,
                )?;
                store.create_user(&user, &Actor::System, t)?;
            }
        }
        Ok(())
    }

    /// Creates the site; its one-time enrollment token and the hub key's fingerprint.
    fn create_site(&self, s: &SiteSpec) -> anyhow::Result<(String, String)> {
        match self {
            State::Cli { cli, dir } => {
                let mut args = vec![
                    "hub",
                    "create-site",
                    "--data",
                    path_str(dir)?,
                    "--id",
                    &s.id,
                ];
                if let Some(n) = &s.name {
                    args.extend(["--name", n]);
                }
                let out = cli.run(&args)?;
                let token = out
                    .lines()
                    .find(|l| l.starts_with("qiao-enroll-"))
                    .with_context(|| format!("no token in {out}"))?;
                let fp = out
                    .lines()
                    .find_map(|l| l.strip_prefix("hub key fingerprint: "))
                    .with_context(|| format!("no fingerprint in {out}"))?;
                Ok((token.to_owned(), fp.to_owned()))
            }
            State::Store(store) => {
                let id = SiteId::new(s.id.clone())?;
                let t = qiao_hub::util::now();
                store.create_site(
                    &Site {
                        id: id.clone(),
                        name: s.name.clone().unwrap_or_else(|| s.id.clone()),
                        public_key: None,
                        enrolled_at: None,
                        enrollment: None,
                        created_at: t,
                    },
                    &Actor::System,
                    t,
                )?;
                let (token, _) = issue_enrollment_token(store.as_ref(), &id, 600, &Actor::System)?;
                let fp = qiao_hub::protocol::Signer::new(store.signing_key()?)
                    .public_key()?
                    .fingerprint();
                Ok((token, fp))
            }
        }
    }

    fn create_project(&self, p: &ProjectSpec) -> anyhow::Result<()> {
        match self {
            State::Cli { cli, dir } => {
                let members = p.members.join(",");
                cli.run(&[
                    "hub",
                    "create-project",
                    "--data",
                    path_str(dir)?,
                    "--id",
                    &p.id,
                    "--title",
                    &p.title,
                    "--member",
                    &members,
                    "--approved",
                ])?;
            }
            State::Store(store) => {
                let t = qiao_hub::util::now();
                let mut members = p
                    .members
                    .iter()
                    .map(|m| UserId::new(m.clone()))
                    .collect::<Result<Vec<_>, _>>()?;
                members.sort();
                members.dedup();
                store.create_project(
                    &Project {
                        id: ProjectId::new(p.id.clone())?,
                        title: p.title.clone(),
                        approved: true,
                        members,
                        created_at: t,
                    },
                    &Actor::System,
                    t,
                )?;
            }
        }
        Ok(())
    }
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("{}: not a UTF-8 path", p.display()))
}

/// Writes a site's `secret.key` (hex, mode 0600) from `seed`.
fn write_secret(site_data: &Path, seed: u64) -> anyhow::Result<()> {
    use rand::{RngCore, SeedableRng};
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = [0u8; 32];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = site_data.join("secret.key");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(hex.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

impl Network {
    /// Starts a hub with its state under `dir/hub` and one site per [`Spec::sites`] (site logs,
    /// when asked for, go to `dir/ID.log`).
    pub fn start(dir: &Path, spec: &Spec, nodes: &Nodes) -> anyhow::Result<Self> {
        let hub_dir = dir.join("hub");
        let state = match nodes {
            Nodes::Processes(cli) => State::Cli {
                cli: cli.clone(),
                dir: hub_dir.clone(),
            },
            Nodes::InProcess => State::Store(Arc::new(RedbStore::open(&hub_dir)?)),
        };
        for a in &spec.accounts {
            state
                .create_user(a)
                .with_context(|| format!("creating account {}", a.id))?;
        }
        let mut enrollments = Vec::new();
        for s in &spec.sites {
            let (token, fp) = state
                .create_site(s)
                .with_context(|| format!("creating site {}", s.id))?;
            enrollments.push((s, token, fp));
        }
        for p in &spec.projects {
            state
                .create_project(p)
                .with_context(|| format!("creating project {}", p.id))?;
        }
        let mut tokens = BTreeMap::new();
        if let State::Cli { cli, dir } = &state {
            for a in spec.accounts.iter().filter(|a| a.api_token) {
                let t = cli.run(&[
                    "hub",
                    "create-token",
                    "--data",
                    path_str(dir)?,
                    "--user",
                    &a.id,
                ])?;
                tokens.insert(a.id.clone(), t.trim().to_owned());
            }
        }
        let mut net = match state {
            State::Cli { cli, dir } => Self::serve_hub_process(&cli, &dir, spec)?,
            State::Store(store) => Self::serve_hub_in_process(store, spec)?,
        };
        if let Running::InProcess { .. } = net.running {
            // Without the CLI the API tokens are asked of the serving hub, as a user would.
            for a in spec.accounts.iter().filter(|a| a.api_token) {
                let client = net.login(&a.id, &a.password)?;
                let t = client.create_api_token(Some("qiao testkit"))?.token;
                tokens.insert(a.id.clone(), t);
            }
        }
        net.tokens = tokens;
        for (i, (s, token, fp)) in enrollments.into_iter().enumerate() {
            let data = s.data.clone();
            net.enroll(nodes, s, &token, &fp, &data)
                .with_context(|| format!("enrolling site {}", s.id))?;
            if let Some(seed) = spec.secret_seed {
                write_secret(&data, seed.wrapping_add(i as u64))?;
            }
            let log = (spec.site_logs && matches!(nodes, Nodes::Processes(_)))
                .then(|| dir.join(format!("{}.log", s.id)));
            net.sites.push(RunningSite {
                id: SiteId::new(s.id.clone())?,
                data,
                store: s.store.clone(),
                log,
            });
        }
        for i in 0..net.sites.len() {
            net.serve_site(nodes, spec, i)?;
        }
        Ok(net)
    }

    fn serve_hub_process(cli: &Cli, dir: &Path, spec: &Spec) -> anyhow::Result<Self> {
        let listen = spec.listen.to_string();
        let quota = spec.jobs_per_hour.map(|q| q.to_string());
        let mut args = vec![
            "hub",
            "serve",
            "--data",
            path_str(dir)?,
            "--insecure-http",
            "--listen",
            &listen,
        ];
        if let Some(q) = &quota {
            args.extend(["--jobs-per-user-hour", q, "--jobs-per-project-hour", q]);
        }
        args.extend(spec.hub_args.iter().map(String::as_str));
        let mut child = cli
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting qiao hub serve")?;
        let stdout = child.stdout.take().context("hub stdout")?;
        let procs = Procs(vec![child]);
        let mut banner = String::new();
        BufReader::new(stdout)
            .read_line(&mut banner)
            .context("reading the hub's banner")?;
        let url = banner
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .with_context(|| format!("no URL in the hub's banner {banner:?}"))?
            .to_owned();
        let hub_fingerprint = banner
            .split_whitespace()
            .find(|w| w.starts_with("SHA256:"))
            .map(|w| w.trim_end_matches(')').to_owned())
            .unwrap_or_default();
        Ok(Self {
            url,
            hub_fingerprint,
            tokens: BTreeMap::new(),
            sites: Vec::new(),
            running: Running::Processes { procs },
        })
    }

    fn serve_hub_in_process(store: Arc<dyn HubStore>, spec: &Spec) -> anyhow::Result<Self> {
        let mut config = HubConfig::default();
        if let Some(q) = spec.jobs_per_hour {
            config.quotas.per_user = q;
            config.quotas.per_project = q;
        }
        if let Some(f) = spec.floors {
            config.floors = f;
        }
        let hub = BackgroundHub::start_with(
            store,
            config,
            Listen {
                addr: spec.listen,
                tls: None,
            },
            |hub| {
                qiao_portal::app(
                    hub,
                    qiao_portal::PortalConfig {
                        secure_cookies: false,
                        public_url: None,
                    },
                )
            },
        )?;
        let hub_fingerprint = hub
            .hub
            .public_key()
            .map(|k| k.fingerprint())
            .unwrap_or_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("qiao-site")
            .enable_all()
            .build()
            .context("starting the sites' runtime")?;
        let (stop, _) = tokio::sync::watch::channel(false);
        Ok(Self {
            url: hub.url(),
            hub_fingerprint,
            tokens: BTreeMap::new(),
            sites: Vec::new(),
            running: Running::InProcess {
                hub,
                runtime,
                stop,
                tasks: Vec::new(),
            },
        })
    }

    fn enroll(
        &self,
        nodes: &Nodes,
        s: &SiteSpec,
        token: &str,
        fp: &str,
        data: &Path,
    ) -> anyhow::Result<()> {
        match (&self.running, nodes) {
            (Running::Processes { .. }, Nodes::Processes(cli)) => {
                let out = cli.run(&[
                    "site",
                    "enroll",
                    "--hub",
                    &self.url,
                    "--token",
                    token,
                    "--name",
                    &s.id,
                    "--data",
                    path_str(data)?,
                    "--hub-fingerprint",
                    fp,
                    "--insecure-http",
                ])?;
                if !out.contains(fp) {
                    bail!("qiao site enroll did not pin the hub key {fp}: {out}");
                }
            }
            (Running::InProcess { runtime, .. }, _) => {
                runtime.block_on(qiao_site::enroll(&EnrollOptions {
                    hub: self.url.clone(),
                    token: token.to_owned(),
                    name: s.id.clone(),
                    data: data.to_owned(),
                    hub_fingerprint: Some(fp.to_owned()),
                    tls: TlsOptions {
                        ca_cert: None,
                        insecure_http: true,
                    },
                }))?;
            }
            _ => bail!("the nodes changed place"),
        }
        Ok(())
    }

    /// Starts site `i` serving its store.
    fn serve_site(&mut self, nodes: &Nodes, spec: &Spec, i: usize) -> anyhow::Result<()> {
        let site = &self.sites[i];
        match (&mut self.running, nodes) {
            (Running::Processes { procs }, Nodes::Processes(cli)) => {
                let wait = spec.site_wait_secs.map(|w| w.to_string());
                let backoff = spec.max_backoff_secs.to_string();
                let source = spec
                    .site_sources
                    .iter()
                    .find(|(id, _)| site.id.as_str() == id)
                    .map(|(_, flags)| flags.iter().map(String::as_str).collect());
                let mut args = vec!["site", "serve"];
                args.extend(source.unwrap_or(vec!["--store", path_str(&site.store)?]));
                args.extend([
                    "--data",
                    path_str(&site.data)?,
                    "--insecure-http",
                    "--max-backoff-secs",
                    &backoff,
                ]);
                if let Some(w) = &wait {
                    args.extend(["--wait-secs", w]);
                }
                args.extend(spec.site_args.iter().map(String::as_str));
                let mut cmd = cli.command(&args);
                cmd.stdout(Stdio::null());
                match &site.log {
                    Some(log) => {
                        let f = std::fs::File::create(log)
                            .with_context(|| format!("creating {}", log.display()))?;
                        cmd.env("QIAO_LOG", "qiao_site=info")
                            .env("NO_COLOR", "1")
                            .stderr(f);
                    }
                    None => {
                        cmd.stderr(Stdio::null());
                    }
                }
                procs
                    .0
                    .push(cmd.spawn().context("starting qiao site serve")?);
            }
            (
                Running::InProcess {
                    runtime,
                    stop,
                    tasks,
                    ..
                },
                _,
            ) => {
                let mut o = ServeOptions::new(&site.data, &site.store);
                o.tls.insecure_http = true;
                o.max_backoff = Duration::from_secs(spec.max_backoff_secs);
                if let Some(w) = spec.site_wait_secs {
                    o.wait_secs = w;
                }
                let mut stopped = stop.subscribe();
                tasks.push(runtime.spawn(async move {
                    qiao_site::serve(&o, async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
                }));
            }
            _ => bail!("the nodes changed place"),
        }
        Ok(())
    }

    /// A client of the hub.
    pub fn client(&self) -> anyhow::Result<HubClient> {
        HubClient::new(&self.url, None)
    }

    /// A client of the hub acting with `user`'s API token.
    pub fn client_of(&self, user: &str) -> anyhow::Result<HubClient> {
        let token = self
            .tokens
            .get(user)
            .with_context(|| format!("no API token for {user}"))?;
        Ok(self.client()?.with_token(token.clone()))
    }

    /// A client of the hub signed in as `user` (a session token).
    pub fn login(&self, user: &str, password: &str) -> anyhow::Result<HubClient> {
        let client = self.client()?;
        let session = client
            .login(user, password)
            .with_context(|| format!("logging in as {user}"))?;
        Ok(client.with_token(session.token))
    }

    /// In this process: the hub.
    pub fn hub(&self) -> Option<&BackgroundHub> {
        match &self.running {
            Running::InProcess { hub, .. } => Some(hub),
            Running::Processes { .. } => None,
        }
    }

    /// In this process: runs `f` on the sites' runtime (e.g. to wait for a signal).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> Option<F::Output> {
        match &self.running {
            Running::InProcess { runtime, .. } => Some(runtime.block_on(f)),
            Running::Processes { .. } => None,
        }
    }

    /// Processes only: kills site `i`'s process (a site going down; its data directory stays,
    /// and `qiao site serve` on it serves the site again).
    pub fn kill_site(&mut self, i: usize) -> anyhow::Result<()> {
        match &mut self.running {
            Running::Processes { procs } => {
                // The hub is the first process, then the sites in order.
                let child = procs
                    .0
                    .get_mut(i + 1)
                    .with_context(|| format!("no site {i}"))?;
                child.kill().context("killing the site")?;
                child.wait().context("reaping the site")?;
                Ok(())
            }
            Running::InProcess { .. } => bail!("in-process sites share the test's process"),
        }
    }

    /// Stops the sites, then the hub; fails if a site stopped with an error.
    pub fn stop(self) -> anyhow::Result<()> {
        match self.running {
            Running::Processes { procs } => drop(procs),
            Running::InProcess {
                hub,
                runtime,
                stop,
                tasks,
            } => {
                let _ = stop.send(true);
                let mut failed = Vec::new();
                for t in tasks {
                    match runtime.block_on(t) {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => failed.push(format!("{e:#}")),
                        Err(e) => failed.push(e.to_string()),
                    }
                }
                runtime.shutdown_timeout(Duration::from_secs(2));
                drop(hub);
                if !failed.is_empty() {
                    bail!("a site stopped with an error: {}", failed.join("; "));
                }
            }
        }
        Ok(())
    }
}
