//! `qiao hub`: run the alliance's hub, and administer its state directly (for set-up and demos).

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

mod audit_heads;

use anyhow::{bail, Context};
use qiao_hub::api::{build_user, issue_enrollment_token, CreateUserRequest};
use qiao_hub::audit::Actor;
use qiao_hub::model::{parse_role, valid_text, Project, Site, TokenKind, TokenRecord};
use qiao_hub::protocol::{ProjectId, SiteId, UserId};
use qiao_hub::serve::{run_foreground_with, tls_config, Listen};
use qiao_hub::util::{now, random_token, token_hash};
use qiao_hub::{open_store, HubConfig, HubStore};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Serve the hub's HTTP API (TLS unless --insecure-http).
    Serve(ServeArgs),
    /// Print the hub's audit log and verify its hash chain.
    Audit(AuditArgs),
    /// Create a user account.
    CreateUser(CreateUserArgs),
    /// Create a site and print its one-time enrollment token.
    CreateSite(CreateSiteArgs),
    /// Issue a new one-time enrollment token for an existing site.
    EnrollmentToken(EnrollmentTokenArgs),
    /// Create a project.
    CreateProject(CreateProjectArgs),
    /// Approve a project (queries run only under approved projects).
    ApproveProject(ApproveProjectArgs),
    /// Add a member to a project.
    AddMember(AddMemberArgs),
    /// Create an API token for a user and print it.
    CreateToken(CreateTokenArgs),
    /// Import a folder of ATLAS JSON cohort definitions into the phenotype library.
    ImportLibrary(ImportLibraryArgs),
}

#[derive(clap::Args)]
pub struct ImportLibraryArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The folder: `*.json` definitions (or a `cohorts/` folder of them), with names and
    /// descriptions from a `Cohorts.csv` beside them if present.
    pub dir: PathBuf,
}

/// Where the hub's state is.
#[derive(clap::Args)]
pub struct StoreArgs {
    /// Data directory of the embedded database (created if missing).
    #[arg(long, required_unless_present = "database")]
    pub data: Option<PathBuf>,
    /// A PostgreSQL database instead: postgres://user:password@host:port/db.
    #[arg(long, env = "QIAO_HUB_DATABASE", conflicts_with = "data")]
    pub database: Option<String>,
    /// With --database: keep the hub's tables in this schema (created if missing).
    #[arg(long, requires = "database")]
    pub database_schema: Option<String>,
}

impl StoreArgs {
    pub(super) fn open(&self) -> anyhow::Result<Arc<dyn HubStore>> {
        Ok(open_store(
            self.data.as_deref(),
            self.database.as_deref(),
            self.database_schema.as_deref(),
        )?)
    }
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// TLS certificate chain (PEM).
    #[arg(long, requires = "tls_key", conflicts_with = "insecure_http")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP without TLS (local demos and tests only).
    #[arg(long)]
    pub insecure_http: bool,
    /// The portal's address as its users reach it (e.g. `https://qiao.example.org`): the
    /// start of the invitation and reset links the admin hands out. Default: the address
    /// the admin's browser reached (its `Host`).
    #[arg(long)]
    pub public_url: Option<String>,
    /// Deliver a job again to a site that has not answered it after this many seconds.
    #[arg(long, default_value_t = 30)]
    pub redeliver_secs: i64,
    /// Job submissions accepted per user per hour.
    #[arg(long, default_value_t = qiao_hub::store::Quotas::default().per_user)]
    pub jobs_per_user_hour: usize,
    /// Job submissions accepted per project per hour.
    #[arg(long, default_value_t = qiao_hub::store::Quotas::default().per_project)]
    pub jobs_per_project_hour: usize,
    /// Alliance floor: no site releases a count below this as a number (a site's threshold is
    /// at least this). Stated in every job.
    #[arg(long, default_value_t = qiao_hub::floors::Floors::DEFAULT_MIN_CELL_COUNT)]
    pub floor_min_cell_count: u64,
    /// Alliance floor: the largest ρ (zCDP) one released number may cost (σ ≥ 1/√(2ρ));
    /// default 0.02, i.e. σ ≥ 5, ε = 0.90 at δ = 1e-6. `none` allows sites without a bounded
    /// loss (legacy SHRINE or exact policies); with a limit such sites refuse jobs.
    #[arg(long, default_value = "0.02")]
    pub floor_max_rho_per_release: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(clap::Args)]
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    /// Without a subcommand: print the log and verify its chain.
    #[command(subcommand)]
    pub action: Option<audit_heads::HubAuditAction>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// One JSON entry per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Only verify; print the summary line.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(clap::Args)]
pub struct CreateUserArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Login name.
    #[arg(long)]
    pub id: String,
    /// alliance_admin, committee_member, sponsor_researcher, site_data_steward,
    /// site_investigator or auditor.
    #[arg(long)]
    pub role: String,
    /// The member enterprise or hospital (sponsor researchers).
    #[arg(long)]
    pub institution: Option<String>,
    /// The site (site data stewards and investigators).
    #[arg(long)]
    pub site: Option<String>,
    /// The password (prefer QIAO_HUB_PASSWORD or --password-stdin: arguments are visible to
    /// other local users).
    #[arg(long, env = "QIAO_HUB_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long, conflicts_with = "password")]
    pub password_stdin: bool,
}

#[derive(clap::Args)]
pub struct CreateSiteArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Site id (what the site's messages carry).
    #[arg(long)]
    pub id: String,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Lifetime of the enrollment token, in seconds.
    #[arg(long, default_value_t = 7 * 86_400)]
    pub token_ttl_secs: i64,
}

#[derive(clap::Args)]
pub struct EnrollmentTokenArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Site id.
    #[arg(long)]
    pub site: String,
    /// Lifetime of the token, in seconds.
    #[arg(long, default_value_t = 7 * 86_400)]
    pub token_ttl_secs: i64,
}

#[derive(clap::Args)]
pub struct CreateProjectArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Project id.
    #[arg(long)]
    pub id: String,
    /// Title.
    #[arg(long)]
    pub title: String,
    /// Members (repeat or comma-separate).
    #[arg(long = "member", value_delimiter = ',')]
    pub members: Vec<String>,
    /// Create it approved.
    #[arg(long)]
    pub approved: bool,
}

#[derive(clap::Args)]
pub struct ApproveProjectArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Project id.
    #[arg(long)]
    pub id: String,
    /// Withdraw the approval instead.
    #[arg(long)]
    pub revoke: bool,
}

#[derive(clap::Args)]
pub struct AddMemberArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Project id.
    #[arg(long)]
    pub project: String,
    /// User id.
    #[arg(long)]
    pub user: String,
}

#[derive(clap::Args)]
pub struct CreateTokenArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// User id.
    #[arg(long)]
    pub user: String,
    /// A label for the token.
    #[arg(long)]
    pub label: Option<String>,
    /// Lifetime in days (default 30, at most 365).
    #[arg(long)]
    pub expires_in_days: Option<u32>,
}

pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Serve(a) => serve(a),
        Command::Audit(a) => audit(a),
        Command::CreateUser(a) => create_user(a),
        Command::CreateSite(a) => create_site(a),
        Command::EnrollmentToken(a) => enrollment_token(a),
        Command::CreateProject(a) => create_project(a),
        Command::ApproveProject(a) => approve_project(a),
        Command::AddMember(a) => add_member(a),
        Command::CreateToken(a) => create_token(a),
        Command::ImportLibrary(a) => import_library(a),
    }
}

fn import_library(a: ImportLibraryArgs) -> anyhow::Result<()> {
    let store = a.store.open()?;
    let report = qiao_portal::alliance::import_library(store.as_ref(), &a.dir, now())
        .map_err(|e| anyhow::anyhow!(e))?;
    let mut out = std::io::stdout().lock();
    for (file, why) in &report.refused {
        writeln!(out, "refused {file}: {why}")?;
    }
    writeln!(
        out,
        "imported {} definitions into the phenotype library ({} refused)",
        report.imported,
        report.refused.len()
    )?;
    Ok(())
}

/// Administrative changes made from the command line are audited as the operating-system user
/// who ran the command.
fn cli_actor() -> Actor {
    Actor::os_user()
}

fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let tls = match (&a.tls_cert, &a.tls_key, a.insecure_http) {
        (Some(c), Some(k), false) => Some(tls_config(c, k)?),
        (None, None, true) => None,
        (None, None, false) => bail!(
            "give --tls-cert FILE --tls-key FILE, or --insecure-http to serve plain HTTP (local demos only)"
        ),
        _ => bail!("--tls-cert and --tls-key go together, and not with --insecure-http"),
    };
    if a.redeliver_secs < 1 {
        bail!("--redeliver-secs must be at least 1");
    }
    if a.floor_min_cell_count < 1 {
        bail!("--floor-min-cell-count must be at least 1");
    }
    let store = a.store.open()?;
    let location = format!("{} {}", store.backend(), store.location());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let config = HubConfig {
        redeliver_secs: a.redeliver_secs,
        quotas: qiao_hub::store::Quotas {
            per_user: a.jobs_per_user_hour,
            per_project: a.jobs_per_project_hour,
            period_secs: 3600,
        },
        floors: qiao_hub::floors::Floors {
            min_cell_count: a.floor_min_cell_count,
            max_rho_per_release: qiao_hub::floors::parse_max_rho(&a.floor_max_rho_per_release)
                .map_err(|e| anyhow::anyhow!("--floor-max-rho-per-release: {e}"))?,
        },
        ..HubConfig::default()
    };
    let portal = qiao_portal::PortalConfig {
        secure_cookies: tls.is_some(),
        public_url: a.public_url.clone(),
    };
    run_foreground_with(
        store,
        config,
        Listen {
            addr: a.listen,
            tls,
        },
        |hub| qiao_portal::app(hub, portal),
        |addr, hub| {
            let fp = hub
                .public_key()
                .map(|k| k.fingerprint())
                .unwrap_or_default();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "qiao hub listening on {scheme}://{addr} (state: {location}; hub key {fp})"
            );
            let _ = out.flush();
        },
    )
}

fn audit(a: AuditArgs) -> anyhow::Result<()> {
    if let Some(action) = a.action {
        return audit_heads::hub(action);
    }
    let store = a.store.open()?;
    let (entries, report) = store.verify_audit()?;
    let mut out = std::io::stdout().lock();
    if !a.quiet {
        for e in &entries {
            if a.json {
                writeln!(out, "{}", serde_json::to_string(e)?)?;
            } else {
                writeln!(out, "{e}")?;
            }
        }
    }
    match report {
        Ok(r) => {
            let head = r
                .head
                .map(|h| format!(", head #{} {}", h.seq, h.hash))
                .unwrap_or_default();
            eprintln!("audit chain OK: {} entries{head}", r.entries);
            Ok(())
        }
        Err(e) => bail!("{e}"),
    }
}

fn read_password(a: &CreateUserArgs) -> anyhow::Result<String> {
    if a.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    a.password
        .clone()
        .context("give the password with QIAO_HUB_PASSWORD, --password-stdin or --password")
}

fn create_user(a: CreateUserArgs) -> anyhow::Result<()> {
    let role = parse_role(&a.role).with_context(|| {
        format!(
            "unknown role {:?}: alliance_admin, committee_member, sponsor_researcher, site_data_steward, site_investigator or auditor",
            a.role
        )
    })?;
    let password = read_password(&a)?;
    let store = a.store.open()?;
    let req = CreateUserRequest {
        id: UserId::new(a.id.clone())?,
        password,
        role,
        institution: a.institution.clone(),
        site: a.site.as_deref().map(SiteId::new).transpose()?,
    };
    let t = now();
    let user = build_user(store.as_ref(), req, t)?;
    store.create_user(&user, &cli_actor(), t)?;
    println!("created user {} ({})", user.id, a.role);
    Ok(())
}

fn create_site(a: CreateSiteArgs) -> anyhow::Result<()> {
    let id = SiteId::new(a.id.clone())?;
    let name = a.name.clone().unwrap_or_else(|| a.id.clone());
    if !valid_text(&name) {
        bail!("--name: 1 to 200 characters without control characters");
    }
    let store = a.store.open()?;
    let t = now();
    store.create_site(
        &Site {
            id: id.clone(),
            name,
            public_key: None,
            enrolled_at: None,
            enrollment: None,
            created_at: t,
        },
        &cli_actor(),
        t,
    )?;
    print_token(store.as_ref(), &id, a.token_ttl_secs)
}

fn print_token(store: &dyn HubStore, site: &SiteId, ttl: i64) -> anyhow::Result<()> {
    if !qiao_hub::service::enrollment::ENROLLMENT_TTL_SECS.contains(&ttl) {
        bail!("--token-ttl-secs must be between 60 and 2592000");
    }
    let (token, stored) = issue_enrollment_token(store, site, ttl, &cli_actor())?;
    let fp = qiao_hub::protocol::Signer::new(store.signing_key()?)
        .public_key()?
        .fingerprint();
    println!(
        "site {site}: one-time enrollment token (expires at {}):",
        stored.expires_at
    );
    println!("{token}");
    println!("hub key fingerprint: {fp}");
    Ok(())
}

fn enrollment_token(a: EnrollmentTokenArgs) -> anyhow::Result<()> {
    let site = SiteId::new(a.site.clone())?;
    let store = a.store.open()?;
    print_token(store.as_ref(), &site, a.token_ttl_secs)
}

fn create_project(a: CreateProjectArgs) -> anyhow::Result<()> {
    if !valid_text(&a.title) {
        bail!("--title: 1 to 200 characters without control characters");
    }
    let mut members = a
        .members
        .iter()
        .filter(|m| !m.is_empty())
        .map(|m| UserId::new(m.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    members.sort();
    members.dedup();
    let store = a.store.open()?;
    let t = now();
    let p = Project {
        id: ProjectId::new(a.id.clone())?,
        title: a.title.clone(),
        approved: a.approved,
        members,
        created_at: t,
    };
    store.create_project(&p, &cli_actor(), t)?;
    println!(
        "created project {} ({}, {} members)",
        p.id,
        if p.approved {
            "approved"
        } else {
            "not approved"
        },
        p.members.len()
    );
    Ok(())
}

fn approve_project(a: ApproveProjectArgs) -> anyhow::Result<()> {
    let store = a.store.open()?;
    let p = store.set_project_approved(
        &ProjectId::new(a.id.clone())?,
        !a.revoke,
        &cli_actor(),
        now(),
    )?;
    println!(
        "project {} is {}",
        p.id,
        if p.approved {
            "approved"
        } else {
            "not approved"
        }
    );
    Ok(())
}

fn add_member(a: AddMemberArgs) -> anyhow::Result<()> {
    let store = a.store.open()?;
    let p = store.add_project_member(
        &ProjectId::new(a.project.clone())?,
        &UserId::new(a.user.clone())?,
        &cli_actor(),
        now(),
    )?;
    println!("project {}: {} members", p.id, p.members.len());
    Ok(())
}

fn create_token(a: CreateTokenArgs) -> anyhow::Result<()> {
    let user = UserId::new(a.user.clone())?;
    if let Some(l) = &a.label {
        if !valid_text(l) {
            bail!("--label: 1 to 200 characters without control characters");
        }
    }
    let t = now();
    let expires_at =
        qiao_hub::auth::token_expiry(t, a.expires_in_days).map_err(|m| anyhow::anyhow!(m))?;
    let store = a.store.open()?;
    let token = random_token(qiao_hub::auth::API_PREFIX);
    store.put_token(
        &TokenRecord {
            hash: token_hash(&token),
            user_id: user,
            kind: TokenKind::Api,
            created_at: t,
            expires_at: Some(expires_at),
            label: a.label.clone(),
            minted_by: None,
        },
        "token.create",
        &cli_actor(),
        t,
    )?;
    println!("{token}");
    Ok(())
}
