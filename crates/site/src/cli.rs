//! `qiao site …`: the command line, shared by the `qiao` binary and this crate's `qiao-site`
//! binary (which the crate's process-level tests run).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use qiao_audit::EntryDraft;
use qiao_disclosure::{DpMechanism, DpThresholdBasis};
use qiao_protocol::JobId;
use qiao_store::Store;

use crate::client::TlsOptions;
use crate::data::{now_unix, SiteDir};
use crate::policy::{Approval, DpSettings, SitePolicy};
use crate::queue::{ApprovalItem, ApprovalState, Approvals};
use crate::serve::{EnrollOptions, ServeOptions};
use crate::users::{LocalRole, Users};
use crate::{audit, prescreen};

/// Environment variable read for a local account's password (otherwise the first line of
/// standard input).
pub const PASSWORD_ENV: &str = "QIAO_SITE_PASSWORD";

/// `qiao site` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Enroll with the hub: generate the site's key pair, register it, pin the hub's key.
    Enroll(EnrollArgs),
    /// Pull jobs from the hub, run them on the store, send back disclosure-controlled aggregates.
    Serve(ServeArgs),
    /// Show or change the site policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The data steward's manual approval queue.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Local accounts (investigators, data stewards); they never exist at the hub.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Recruitment pre-screening: this site's patients of a cohort, for a local investigator.
    /// Never sent to the hub; every access is audited.
    Prescreen(PrescreenArgs),
    /// Print and verify the site's hash-chained audit log.
    Audit(AuditArgs),
    /// Serve the site's own web pages (data steward, investigators) on the hospital's network.
    Ui(UiArgs),
}

/// `qiao site ui`.
#[derive(clap::Args, Debug)]
pub struct UiArgs {
    /// The site's data directory.
    #[arg(long)]
    pub data: PathBuf,
    /// The site's store (pre-screening lists run on it).
    #[arg(long)]
    pub store: PathBuf,
    /// Address to listen on: keep it on the hospital's own network.
    #[arg(long, default_value = "127.0.0.1:8480")]
    pub listen: std::net::SocketAddr,
    /// Plain HTTP: session cookies without `Secure` (local tests and demos; otherwise serve
    /// behind a TLS-terminating proxy).
    #[arg(long)]
    pub insecure_http: bool,
}

/// TLS flags.
#[derive(clap::Args, Debug, Clone)]
pub struct TlsArgs {
    /// Trust this PEM CA certificate for the hub's TLS certificate (besides the web roots).
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// Allow a plain http:// hub URL (local demos only).
    #[arg(long)]
    pub insecure_http: bool,
}

impl TlsArgs {
    fn options(&self) -> TlsOptions {
        TlsOptions {
            ca_cert: self.ca_cert.clone(),
            insecure_http: self.insecure_http,
        }
    }
}

/// `qiao site enroll`.
#[derive(clap::Args, Debug)]
pub struct EnrollArgs {
    /// The hub's URL.
    #[arg(long)]
    pub hub: String,
    /// The one-time enrollment token from the alliance admin.
    #[arg(long, env = "QIAO_ENROLL_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The site's name.
    #[arg(long)]
    pub name: String,
    /// The site's data directory (created).
    #[arg(long)]
    pub data: PathBuf,
    /// The hub key's fingerprint (SHA256:…), given out of band.
    #[arg(long)]
    pub hub_fingerprint: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// `qiao site serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The site's store.
    #[arg(long)]
    pub store: PathBuf,
    /// The site's data directory.
    #[arg(long)]
    pub data: PathBuf,
    /// The hub's URL (default: the one enrolled with).
    #[arg(long)]
    pub hub: Option<String>,
    /// Seconds the hub may hold a poll open.
    #[arg(long, default_value_t = 25)]
    pub wait_secs: u64,
    /// Longest pause between retries while the hub is unreachable, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub max_backoff_secs: f64,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// `qiao site policy`.
#[derive(clap::Subcommand, Debug)]
pub enum PolicyCommand {
    /// Print the policy (JSON).
    Show {
        /// The site's data directory.
        #[arg(long)]
        data: PathBuf,
    },
    /// Change settings; the running `serve` applies them from the next job on.
    Set(PolicySetArgs),
}

/// On or off.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// DP mode.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpMode {
    /// No differential privacy.
    Off,
    /// Discrete Laplace (ε-DP).
    Laplace,
    /// Discrete Gaussian ((ε, δ)-DP).
    Gaussian,
}

/// `qiao site policy set`.
#[derive(clap::Args, Debug, Default)]
pub struct PolicySetArgs {
    /// The site's data directory.
    #[arg(long)]
    pub data: PathBuf,
    /// Cohort count queries.
    #[arg(long, value_enum)]
    pub cohort_count: Option<Approval>,
    /// Demographics queries.
    #[arg(long, value_enum)]
    pub demographics: Option<Approval>,
    /// Minimum cell count.
    #[arg(long)]
    pub min_cell_count: Option<u64>,
    /// SHRINE-style obfuscation.
    #[arg(long, value_enum)]
    pub obfuscation: Option<OnOff>,
    /// Complementary suppression in breakdowns.
    #[arg(long, value_enum)]
    pub secondary_suppression: Option<OnOff>,
    /// Queries per user per rate window.
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Rate window in seconds.
    #[arg(long)]
    pub rate_window_secs: Option<u64>,
    /// Differential-privacy mode.
    #[arg(long, value_enum)]
    pub dp: Option<DpMode>,
    /// ε charged per released number (DP mode).
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// δ charged per released number (Gaussian).
    #[arg(long)]
    pub delta: Option<f64>,
    /// ε budget per user per project (DP mode).
    #[arg(long)]
    pub epsilon_budget: Option<f64>,
    /// δ budget per user per project (Gaussian).
    #[arg(long)]
    pub delta_budget: Option<f64>,
}

/// `qiao site approvals`.
#[derive(clap::Subcommand, Debug)]
pub enum ApprovalsCommand {
    /// The queue.
    List {
        /// The site's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The data steward (password from QIAO_SITE_PASSWORD or standard input).
        #[arg(long)]
        user: String,
    },
    /// Approve a job: the running `serve` runs it.
    Approve {
        /// The site's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The data steward.
        #[arg(long)]
        user: String,
        /// The job id.
        id: String,
    },
    /// Deny a job: the hub gets a refusal.
    Deny {
        /// The site's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The data steward.
        #[arg(long)]
        user: String,
        /// Why (kept at the site).
        #[arg(long)]
        reason: String,
        /// The job id.
        id: String,
    },
}

/// `qiao site users`.
#[derive(clap::Subcommand, Debug)]
pub enum UsersCommand {
    /// Add an account (password from QIAO_SITE_PASSWORD or standard input).
    Add {
        /// The site's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The role.
        #[arg(long, value_enum)]
        role: LocalRole,
        /// The user name.
        name: String,
    },
    /// List accounts.
    List {
        /// The site's data directory.
        #[arg(long)]
        data: PathBuf,
    },
}

/// `qiao site prescreen`.
#[derive(clap::Args, Debug)]
pub struct PrescreenArgs {
    /// The site's data directory.
    #[arg(long)]
    pub data: PathBuf,
    /// The site's store.
    #[arg(long)]
    pub store: PathBuf,
    /// The investigator (password from QIAO_SITE_PASSWORD or standard input).
    #[arg(long)]
    pub user: String,
    /// The cohort definition (ATLAS / Circe JSON).
    pub definition: PathBuf,
}

/// `qiao site audit`.
#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// The site's data directory.
    #[arg(long)]
    pub data: PathBuf,
    /// One JSON object per entry.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `qiao site` command.
pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Enroll(a) => enroll(a),
        Command::Serve(a) => serve(a),
        Command::Policy(PolicyCommand::Show { data }) => {
            let dir = SiteDir::open(data)?;
            let policy = SitePolicy::load(&dir)?;
            println!("{}", serde_json::to_string_pretty(&policy)?);
            Ok(())
        }
        Command::Policy(PolicyCommand::Set(a)) => policy_set(a),
        Command::Approvals(a) => approvals(a),
        Command::Users(UsersCommand::Add { data, role, name }) => {
            let dir = SiteDir::open(data)?;
            let password = password()?;
            Users::add(&dir, &name, role, &password, now_unix())?;
            audit::append(
                &dir,
                EntryDraft::new(now_unix(), qiao_audit::Actor::os_user(), "user.add")
                    .decision(format!("added local {role} {name}")),
            )?;
            println!("added {role} {name}");
            Ok(())
        }
        Command::Users(UsersCommand::List { data }) => {
            let dir = SiteDir::open(data)?;
            for (name, u) in Users::load(&dir)?.users {
                println!("{name}\t{}", u.role);
            }
            Ok(())
        }
        Command::Prescreen(a) => prescreen_cmd(a),
        Command::Audit(a) => audit_cmd(a),
        Command::Ui(a) => ui_cmd(a),
    }
}

/// The password: `QIAO_SITE_PASSWORD`, or the first line of standard input.
fn password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let p = line.trim_end_matches(['\r', '\n']).to_owned();
    if p.is_empty() {
        bail!("no password: set {PASSWORD_ENV} or give it on standard input");
    }
    Ok(p)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn enroll(a: EnrollArgs) -> anyhow::Result<()> {
    let o = EnrollOptions {
        hub: a.hub,
        token: a.token,
        name: a.name,
        data: a.data,
        hub_fingerprint: a.hub_fingerprint,
        tls: a.tls.options(),
    };
    let config = runtime()?.block_on(crate::serve::enroll(&o))?;
    println!(
        "enrolled as site {} at {}\nhub key pinned: {}",
        config.site_id, config.hub_url, config.hub_fingerprint
    );
    Ok(())
}

fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let mut o = ServeOptions::new(a.data, a.store);
    o.hub = a.hub;
    o.tls = a.tls.options();
    o.wait_secs = a.wait_secs;
    o.max_backoff = Duration::from_secs_f64(a.max_backoff_secs.clamp(0.1, 3600.0));
    runtime()?.block_on(async { crate::serve::serve(&o, shutdown_signal()).await })
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

fn ui_cmd(a: UiArgs) -> anyhow::Result<()> {
    let o = crate::ui::UiOptions {
        data: a.data,
        store: a.store,
        listen: a.listen,
        insecure_http: a.insecure_http,
    };
    runtime()?.block_on(async { crate::ui::serve_ui(&o, shutdown_signal()).await })
}

fn policy_set(a: PolicySetArgs) -> anyhow::Result<()> {
    let dir = SiteDir::open(&a.data)?;
    let after = set_policy_audited(&dir, qiao_audit::Actor::os_user(), |p| {
        let mut p = p.clone();
        apply_policy_args(&mut p, &a)?;
        Ok(p)
    })?;
    println!("{}", serde_json::to_string_pretty(&after)?);
    Ok(())
}

/// Changes the site policy under the data directory's lock: `change` maps the current policy
/// to the new one, which is validated and written in one atomic replacement (or not at all),
/// then audited (`policy.set`, before and after) with `actor`.
pub fn set_policy_audited(
    dir: &SiteDir,
    actor: qiao_audit::Actor,
    change: impl FnOnce(&SitePolicy) -> anyhow::Result<SitePolicy>,
) -> anyhow::Result<SitePolicy> {
    let (before, after) = dir.locked(|| {
        let before = SitePolicy::load(dir)?;
        let after = change(&before)?;
        after.save(dir)?;
        Ok((before, after))
    })?;
    audit::append(
        dir,
        EntryDraft::new(now_unix(), actor, "policy.set")
            .decision("site policy changed")
            .released_json(&serde_json::json!({
                "before": serde_json::to_value(&before)?,
                "after": serde_json::to_value(&after)?,
            })),
    )?;
    Ok(after)
}

/// Applies `qiao site policy set` flags to a policy (validated by [`SitePolicy::save`]).
pub fn apply_policy_args(p: &mut SitePolicy, a: &PolicySetArgs) -> anyhow::Result<()> {
    if let Some(v) = a.cohort_count {
        p.cohort_count = v;
    }
    if let Some(v) = a.demographics {
        p.demographics = v;
    }
    if let Some(v) = a.min_cell_count {
        p.min_cell_count = v;
    }
    if let Some(v) = a.obfuscation {
        p.obfuscation = v == OnOff::On;
    }
    if let Some(v) = a.secondary_suppression {
        p.secondary_suppression = v == OnOff::On;
    }
    if let Some(v) = a.rate_limit {
        p.rate_limit.max_queries = v;
    }
    if let Some(v) = a.rate_window_secs {
        p.rate_limit.window_secs = v;
    }
    let mode = match a.dp {
        Some(m) => Some(m),
        None if a.epsilon.is_some()
            || a.delta.is_some()
            || a.epsilon_budget.is_some()
            || a.delta_budget.is_some() =>
        {
            match p.dp.as_ref().map(|d| &d.mechanism) {
                None => bail!("--epsilon/--delta/--epsilon-budget need --dp laplace|gaussian"),
                Some(DpMechanism::Laplace { .. }) => Some(DpMode::Laplace),
                Some(DpMechanism::Gaussian { .. }) => Some(DpMode::Gaussian),
            }
        }
        None => None,
    };
    match mode {
        None => {}
        Some(DpMode::Off) => p.dp = None,
        Some(m) => {
            let old = p.dp.clone();
            let epsilon = a
                .epsilon
                .or_else(|| old.as_ref().map(|d| d.mechanism.epsilon()))
                .unwrap_or(0.1);
            let delta = a
                .delta
                .or_else(|| {
                    old.as_ref()
                        .map(|d| d.mechanism.delta())
                        .filter(|d| *d > 0.0)
                })
                .unwrap_or(1e-6);
            let mechanism = if m == DpMode::Laplace {
                DpMechanism::Laplace { epsilon }
            } else {
                DpMechanism::Gaussian { epsilon, delta }
            };
            p.dp = Some(DpSettings {
                mechanism,
                epsilon_budget: a
                    .epsilon_budget
                    .or_else(|| old.as_ref().map(|d| d.epsilon_budget))
                    .unwrap_or(1.0),
                delta_budget: a
                    .delta_budget
                    .or_else(|| old.as_ref().map(|d| d.delta_budget))
                    .unwrap_or(if m == DpMode::Gaussian { 1e-5 } else { 0.0 }),
                threshold_basis: old
                    .map(|d| d.threshold_basis)
                    .unwrap_or(DpThresholdBasis::TrueCount),
            });
        }
    }
    Ok(())
}

fn steward(data: PathBuf, user: &str) -> anyhow::Result<SiteDir> {
    let dir = SiteDir::open(data)?;
    let pw = password()?;
    if let Err(e) = Users::authenticate(&dir, user, &pw, LocalRole::Steward) {
        audit::append(
            &dir,
            EntryDraft::new(now_unix(), audit::user(user), "approvals.deny_access")
                .decision(format!("refused: {e}")),
        )?;
        return Err(e);
    }
    Ok(dir)
}

fn approvals(c: ApprovalsCommand) -> anyhow::Result<()> {
    match c {
        ApprovalsCommand::List { data, user } => {
            let dir = steward(data, &user)?;
            let items = Approvals::new(&dir).list()?;
            if items.is_empty() {
                println!("no jobs in the approval queue");
            }
            for item in items {
                let state = match &item.state {
                    ApprovalState::Pending => "pending".to_owned(),
                    ApprovalState::Approved { by, .. } => format!("approved by {by}"),
                    ApprovalState::Denied { by, reason, .. } => {
                        format!("denied by {by}: {reason}")
                    }
                };
                println!(
                    "{}  {}  project {}  requested by {} ({})  queued {}  {}",
                    item.job.job_id,
                    item.job.query.payload_type(),
                    item.job.project_id,
                    item.job.requested_by.user_id,
                    serde_json::to_value(item.job.requested_by.role)?
                        .as_str()
                        .unwrap_or_default(),
                    item.queued_at,
                    state
                );
            }
            Ok(())
        }
        ApprovalsCommand::Approve { data, user, id } => {
            let dir = steward(data, &user)?;
            let id = JobId::parse(&id)?;
            approve_job(&dir, &user, &id)?;
            println!("approved job {id}; the running site will execute it");
            Ok(())
        }
        ApprovalsCommand::Deny {
            data,
            user,
            reason,
            id,
        } => {
            let dir = steward(data, &user)?;
            let id = JobId::parse(&id)?;
            deny_job(&dir, &user, &id, &reason)?;
            println!("denied job {id}");
            Ok(())
        }
    }
}

/// Records an authenticated steward's approval of a pending job, audited (`job.approve`).
pub fn approve_job(dir: &SiteDir, steward: &str, id: &JobId) -> anyhow::Result<ApprovalItem> {
    let item = Approvals::new(dir).decide(
        id,
        ApprovalState::Approved {
            by: steward.to_owned(),
            at: now_unix(),
        },
    )?;
    audit::append(
        dir,
        EntryDraft::new(now_unix(), audit::user(steward), "job.approve")
            .project(item.job.project_id.to_string())
            .job(id.to_string())
            .decision("approved by the data steward"),
    )?;
    Ok(item)
}

/// Records an authenticated steward's refusal of a pending job with its reason, audited
/// (`job.deny`; the reason stays at the site).
pub fn deny_job(
    dir: &SiteDir,
    steward: &str,
    id: &JobId,
    reason: &str,
) -> anyhow::Result<ApprovalItem> {
    let item = Approvals::new(dir).decide(
        id,
        ApprovalState::Denied {
            by: steward.to_owned(),
            at: now_unix(),
            reason: reason.to_owned(),
        },
    )?;
    audit::append(
        dir,
        EntryDraft::new(now_unix(), audit::user(steward), "job.deny")
            .project(item.job.project_id.to_string())
            .job(id.to_string())
            .decision(format!("denied by the data steward: {reason}")),
    )?;
    Ok(item)
}

fn prescreen_cmd(a: PrescreenArgs) -> anyhow::Result<()> {
    let dir = SiteDir::open(&a.data)?;
    let pw = password()?;
    let text = std::fs::read_to_string(&a.definition)
        .with_context(|| format!("reading {}", a.definition.display()))?;
    let store = Store::open(&a.store)?;
    let rows = prescreen::prescreen(
        &dir,
        &store,
        &a.user,
        &pw,
        &text,
        &a.definition.display().to_string(),
    )?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    writeln!(out, "person_id,cohort_start_date,cohort_end_date")?;
    for r in rows {
        writeln!(
            out,
            "{},{},{}",
            r.subject_id,
            qiao_cdm::date::format(r.start),
            qiao_cdm::date::format(r.end)
        )?;
    }
    out.flush()?;
    Ok(())
}

fn audit_cmd(a: AuditArgs) -> anyhow::Result<()> {
    let dir = SiteDir::open(&a.data)?;
    let (entries, report) = audit::read(&dir)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for e in &entries {
        if a.json {
            writeln!(out, "{}", serde_json::to_string(e)?)?;
        } else {
            writeln!(out, "{e}")?;
        }
    }
    out.flush()?;
    match report.head {
        Some(h) => eprintln!(
            "audit chain verified: {} entries, head #{} {}",
            report.entries, h.seq, h.hash
        ),
        None => eprintln!("audit log empty"),
    }
    Ok(())
}
