//! `qiao site …`: the command line, shared by the `qiao` binary and this crate's `qiao-site`
//! binary (which the crate's process-level tests run).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use qiao_audit::EntryDraft;
use qiao_disclosure::{BudgetScope, QueryLedger, ReleaseMode};
use qiao_protocol::JobId;
use qiao_store::Store;

use crate::client::TlsOptions;
use crate::data::{now_unix, read_json, write_json, SiteDir};
use crate::policy::{self, Approval, PolicyEdit, SitePolicy};
use crate::queue::{approve_job, deny_job, ApprovalState, Approvals};
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
    /// Privacy budgets (ρ, zCDP): show what users and organizations spent; the data steward
    /// sets a user's or organization's budget (audited). Spending is never erased.
    #[command(subcommand)]
    Budget(BudgetCommand),
    /// The data steward's manual approval queue.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Local accounts (investigators, data stewards); they never exist at the hub.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Recruitment pre-screening: this site's patients of a cohort, for a local investigator.
    /// Never sent to the hub; every access is audited.
    Prescreen(PrescreenArgs),
    /// Projects this site accepts and the investigators assigned to them (who may open
    /// pre-screening lists). Steward only; audited.
    #[command(subcommand)]
    Project(ProjectCommand),
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
    #[arg(long, required_unless_present = "spark")]
    pub store: Option<PathBuf>,
    /// Serve from a CDM in a Spark catalog instead, its cohorts computed by Spark through this
    /// Spark Connect server (`sc://HOST:PORT`; a qiao built with the `spark` feature).
    #[arg(long, conflicts_with = "store", requires = "schema")]
    pub spark: Option<String>,
    /// With --spark: the catalog schema of the CDM's clinical tables.
    #[arg(long, requires = "spark")]
    pub schema: Option<String>,
    /// With --spark: the schema of the vocabulary tables (default: --schema).
    #[arg(long, requires = "spark")]
    pub vocab_schema: Option<String>,
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
    /// Jobs computed at once; the others wait, served fairly between users.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// A job's cohort computation is stopped after this many seconds (reported to the hub as
    /// `timeout`).
    #[arg(long, default_value_t = 600.0)]
    pub job_time_limit: f64,
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

/// The release mechanism (see the disclosure crate's README).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseArg {
    /// Differential privacy (default): noise first, threshold on the noisy value, budgets.
    Dp,
    /// Legacy SHRINE obfuscation: no formal guarantee.
    Shrine,
    /// No noise: exact counts, unprotected (tests, attack baselines).
    Exact,
}

impl From<ReleaseArg> for ReleaseMode {
    fn from(r: ReleaseArg) -> Self {
        match r {
            ReleaseArg::Dp => ReleaseMode::Dp,
            ReleaseArg::Shrine => ReleaseMode::Shrine,
            ReleaseArg::Exact => ReleaseMode::Exact,
        }
    }
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
    /// Analyses (characterization, incidence).
    #[arg(long, value_enum)]
    pub analyses: Option<Approval>,
    /// The release mechanism for every number.
    #[arg(long, value_enum)]
    pub release: Option<ReleaseArg>,
    /// Minimum cell count.
    #[arg(long)]
    pub min_cell_count: Option<u64>,
    /// Legacy alias: `on` = `--release shrine`, `off` = `--release exact`.
    #[arg(long, value_enum, conflicts_with = "release")]
    pub obfuscation: Option<OnOff>,
    /// Complementary suppression in breakdowns (SHRINE and exact modes).
    #[arg(long, value_enum)]
    pub secondary_suppression: Option<OnOff>,
    /// Queries per user per rate window.
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Rate window in seconds.
    #[arg(long)]
    pub rate_window_secs: Option<u64>,
    /// DP: σ of the noise per unit of sensitivity (one release costs ρ = 1/(2σ²)).
    #[arg(long)]
    pub noise_sigma: Option<f64>,
    /// DP: rows of one person counted at most in `entries`.
    #[arg(long)]
    pub entries_bound: Option<u32>,
    /// DP: the budget period (rolling), in days.
    #[arg(long)]
    pub budget_period_days: Option<u32>,
    /// DP: ρ per user per period.
    #[arg(long)]
    pub user_rho: Option<f64>,
    /// DP: ρ per organization per period.
    #[arg(long)]
    pub organization_rho: Option<f64>,
    /// DP: ρ for the whole site per period.
    #[arg(long)]
    pub site_rho: Option<f64>,
}

/// `qiao site budget`.
#[derive(clap::Subcommand, Debug)]
pub enum BudgetCommand {
    /// The budgets: the policy's, the steward's overrides, and ρ spent in the current period
    /// per user and organization.
    Show {
        /// The site's data directory.
        #[arg(long)]
        data: PathBuf,
    },
    /// Set (or with `--clear`, return to the policy's) the budget of one user or organization.
    /// Steward only (password from QIAO_SITE_PASSWORD or standard input); audited.
    Set {
        /// The site's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The data steward.
        #[arg(long)]
        user: String,
        /// Whose budget: a user id at the hub.
        #[arg(
            long,
            conflicts_with = "organization",
            required_unless_present = "organization"
        )]
        for_user: Option<String>,
        /// Whose budget: an organization.
        #[arg(long)]
        organization: Option<String>,
        /// ρ per period.
        #[arg(long, required_unless_present = "clear")]
        rho: Option<f64>,
        /// Remove the override.
        #[arg(long, conflicts_with = "rho")]
        clear: bool,
    },
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
    /// The hub project: accepted at this site, with the investigator assigned to it.
    #[arg(long)]
    pub project: String,
    /// The cohort definition (ATLAS / Circe JSON): one this site received for the project.
    pub definition: PathBuf,
}

/// `qiao site project`.
#[derive(clap::Subcommand, Debug)]
pub enum ProjectCommand {
    /// Accept a hub project at this site.
    Accept(ProjectArgs),
    /// Revoke the acceptance.
    Revoke(ProjectArgs),
    /// Assign a local investigator to a project (`--investigator`).
    Assign(ProjectArgs),
    /// Remove a local investigator from a project (`--investigator`).
    Unassign(ProjectArgs),
    /// Print the accepted projects and their investigators.
    Show {
        /// The site's data directory.
        #[arg(long)]
        data: PathBuf,
    },
}

/// Arguments of `qiao site project accept|revoke|assign|unassign`.
#[derive(clap::Args, Debug)]
pub struct ProjectArgs {
    /// The site's data directory.
    #[arg(long)]
    pub data: PathBuf,
    /// The data steward (password from QIAO_SITE_PASSWORD or standard input).
    #[arg(long)]
    pub user: String,
    /// The hub project id.
    #[arg(long)]
    pub project: String,
    /// The local investigator (assign, unassign).
    #[arg(long)]
    pub investigator: Option<String>,
}

/// `qiao site audit`.
#[derive(clap::Args, Debug)]
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    /// Without a subcommand: print the log and verify its chain.
    #[command(subcommand)]
    pub action: Option<crate::audit_cmd::SiteAuditAction>,
    /// The site's data directory.
    #[arg(long, required = true)]
    pub data: Option<PathBuf>,
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
        Command::Budget(c) => budget_cmd(c),
        Command::Project(c) => project_cmd(c),
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
    let mut o = ServeOptions::new(a.data, a.store.clone().unwrap_or_default());
    o.hub = a.hub;
    o.tls = a.tls.options();
    o.wait_secs = a.wait_secs;
    o.max_backoff = Duration::from_secs_f64(a.max_backoff_secs.clamp(0.1, 3600.0));
    o.limits = crate::workers::Limits {
        workers: usize::from(a.workers),
        time_limit: Duration::from_secs_f64(a.job_time_limit.clamp(0.1, 7.0 * 86_400.0)),
    };
    let Some(url) = a.spark else {
        return runtime()?.block_on(async { crate::serve::serve(&o, shutdown_signal()).await });
    };
    #[cfg(feature = "spark")]
    {
        // Connecting blocks: outside the async runtime.
        let target = crate::cdm::spark::SparkTarget {
            url,
            schema: a.schema.unwrap_or_default(),
            vocab_schema: a.vocab_schema,
        };
        let cdm = crate::cdm::spark::SparkCdm::connect(&target)?;
        tracing::info!(url = %target.url, schema = %target.schema, "CDM on Spark");
        runtime()?.block_on(async {
            crate::serve::serve_on(&o, std::sync::Arc::new(cdm), shutdown_signal()).await
        })
    }
    #[cfg(not(feature = "spark"))]
    {
        let _ = url;
        anyhow::bail!("--spark: this qiao was built without the `spark` feature")
    }
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
    let after = policy::set_audited(&dir, qiao_audit::Actor::os_user(), &a.edit())?;
    println!("{}", serde_json::to_string_pretty(&after)?);
    Ok(())
}

impl PolicySetArgs {
    /// The change these flags ask for.
    pub fn edit(&self) -> PolicyEdit {
        let on = |v: OnOff| v == OnOff::On;
        PolicyEdit {
            cohort_count: self.cohort_count,
            demographics: self.demographics,
            analyses: self.analyses,
            release: self
                .release
                .map(ReleaseMode::from)
                .or(self.obfuscation.map(|v| {
                    if on(v) {
                        ReleaseMode::Shrine
                    } else {
                        ReleaseMode::Exact
                    }
                })),
            min_cell_count: self.min_cell_count,
            secondary_suppression: self.secondary_suppression.map(on),
            rate_limit: self.rate_limit,
            rate_window_secs: self.rate_window_secs,
            sigma: self.noise_sigma,
            entries_bound: self.entries_bound,
            budget_period_days: self.budget_period_days,
            user_rho: self.user_rho,
            organization_rho: self.organization_rho,
            site_rho: self.site_rho,
        }
    }
}

fn budget_cmd(c: BudgetCommand) -> anyhow::Result<()> {
    match c {
        BudgetCommand::Show { data } => {
            let dir = SiteDir::open(data)?;
            let policy = SitePolicy::load(&dir)?.disclosure()?;
            let ledger: QueryLedger = read_json(&dir.ledger_path())?.unwrap_or_default();
            let now = u64::try_from(now_unix()).unwrap_or(0);
            let dp = &policy.dp;
            println!(
                "release: {:?}; budgets per {} days (ρ, zCDP): user {}, organization {}, site {}",
                policy.release, dp.period_days, dp.user_rho, dp.organization_rho, dp.site_rho
            );
            let site = ledger.budget_status(&policy, "", "", now).site;
            println!(
                "site: spent {:.4} of {:.4}, remaining {:.4}",
                site.spent,
                site.budget,
                site.remaining()
            );
            for (u, r) in &ledger.overrides().users {
                println!("override: user {u} ρ = {r}");
            }
            for (o, r) in &ledger.overrides().organizations {
                println!("override: organization {o} ρ = {r}");
            }
            for (run, paid, released) in ledger.paid_runs() {
                println!("{run}: {paid} rounds paid at round 0, {released} released");
            }
            for (user, org, _) in ledger.spenders(&policy, now) {
                let s = ledger.budget_status(&policy, &user, &org, now);
                println!(
                    "user {user} ({org}): spent {:.4} of {:.4}; organization spent {:.4} of {:.4}; remaining for this user {:.4}",
                    s.user.spent,
                    s.user.budget,
                    s.organization.spent,
                    s.organization.budget,
                    s.remaining()
                );
            }
            Ok(())
        }
        BudgetCommand::Set {
            data,
            user,
            for_user,
            organization,
            rho,
            clear,
        } => {
            let dir = steward(data, &user)?;
            if let Some(r) = rho {
                policy::check_budget_override(r).map_err(|e| anyhow::anyhow!("--rho: {e}"))?;
            }
            let (scope, name) = match (for_user, organization) {
                (Some(u), None) => (BudgetScope::User, u),
                (None, Some(o)) => (BudgetScope::Organization, o),
                _ => bail!("give --for-user or --organization"),
            };
            let value = if clear { None } else { rho };
            dir.locked(|| {
                let mut ledger: QueryLedger = read_json(&dir.ledger_path())?.unwrap_or_default();
                ledger.set_budget(scope, &name, value);
                write_json(&dir.ledger_path(), &ledger)
            })?;
            let what = match value {
                Some(r) => format!("set the {scope} budget of {name} to ρ = {r} per period"),
                None => format!("returned the {scope} budget of {name} to the policy's"),
            };
            audit::append(
                &dir,
                EntryDraft::new(now_unix(), audit::user(&user), "budget.set")
                    .decision(what.clone()),
            )?;
            println!("{what}");
            Ok(())
        }
    }
}

fn project_cmd(c: ProjectCommand) -> anyhow::Result<()> {
    use crate::projects::Projects;
    let investigator = |a: &ProjectArgs| {
        a.investigator
            .clone()
            .ok_or_else(|| anyhow::anyhow!("give --investigator NAME"))
    };
    match c {
        ProjectCommand::Show { data } => {
            let p = Projects::load(&SiteDir::open(data)?)?;
            for (id, a) in &p.accepted {
                let who: Vec<&str> = p
                    .assigned
                    .get(id)
                    .map(|s| s.iter().map(String::as_str).collect())
                    .unwrap_or_default();
                println!(
                    "{id}: accepted by {} at {}; investigators: {}",
                    a.by,
                    a.at,
                    if who.is_empty() {
                        "none".to_owned()
                    } else {
                        who.join(", ")
                    }
                );
            }
            Ok(())
        }
        ProjectCommand::Accept(a) => {
            let dir = steward(a.data.clone(), &a.user)?;
            Projects::accept(&dir, &a.project, &a.user, now_unix())?;
            println!("accepted project {}", a.project);
            Ok(())
        }
        ProjectCommand::Revoke(a) => {
            let dir = steward(a.data.clone(), &a.user)?;
            Projects::revoke(&dir, &a.project, &a.user)?;
            println!("revoked project {}", a.project);
            Ok(())
        }
        ProjectCommand::Assign(a) => {
            let who = investigator(&a)?;
            let dir = steward(a.data.clone(), &a.user)?;
            Projects::assign(&dir, &a.project, &who, &a.user)?;
            println!("assigned {who} to project {}", a.project);
            Ok(())
        }
        ProjectCommand::Unassign(a) => {
            let who = investigator(&a)?;
            let dir = steward(a.data.clone(), &a.user)?;
            Projects::unassign(&dir, &a.project, &who, &a.user)?;
            println!("removed {who} from project {}", a.project);
            Ok(())
        }
    }
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
        &a.project,
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
    let Some(data) = a.data else {
        return crate::audit_cmd::run(a.action.context("give --data DIR or a subcommand")?);
    };
    let dir = SiteDir::open(&data)?;
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
