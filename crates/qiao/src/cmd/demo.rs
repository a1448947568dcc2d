//! `qiao demo`: a whole Qiao network on one machine, on built-in data.
//!
//! 1. [`synthesize`] three hospitals of different sizes and case mix from the bundled Eunomia
//!    GiBleed CDM, and [`ingest`] each into its own store;
//! 2. [`Network::start`]: a hub (embedded redb, plain HTTP on a free loopback port) and one
//!    site per hospital, started in this process by [`qiao_testkit::Network`] (the one way the
//!    project starts a network), each enrolled with a one-time token and pulling jobs over the
//!    real signed protocol, exactly as separate `qiao site serve` processes would; demo
//!    accounts (one per role) and an approved project, made through the hub's HTTP API;
//! 3. [`Network::feasibility`]: the sponsor runs the CohortGenerator "celecoxib, age ≥ 40,
//!    male" definition across the network; the per-site and total funnel is printed;
//! 4. the network keeps serving (hub URL and logins printed) until Ctrl-C, or stops with
//!    `--exit`.
//!
//! With `--json` the result is one JSON object on stdout and everything else goes to stderr.
//! Every run starts from a clean work directory (`.work/demo` by default).

use std::fmt::Display;
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use qiao_hub::api::QueryRequest;
use qiao_hub::protocol::{ProjectId, QueryType, UserId, UserRole};
use qiao_hub::view::{JobView, SiteStatus};
use qiao_hub::{report, HubClient};
use qiao_ingest::{Options, Source};
use serde_json::json;

/// The demo's question: OHDSI CohortGenerator's Eunomia cohort 3 (celecoxib exposure, age at
/// index ≥ 40, male), compiled in so the demo runs from any directory.
pub const DEFINITION: &str = include_str!("../../data/cohorts/celecoxib-age40-male.json");
/// File name the definition is written to in the work directory (for `qiao query`).
pub const DEFINITION_FILE: &str = "celecoxib-age40-male.json";
/// The demo project.
pub const PROJECT: &str = "celecoxib-feasibility";
/// Where the bundled GiBleed CDM is, relative to the project root.
const BUNDLED_CDM: &str = "../shared/data/eunomia-gibleed-5.3";
/// Where the phenotype library the portal is seeded with is, relative to the project root.
const BUNDLED_LIBRARY: &str = "../shared/data/phenotypes-dev";
/// Marks a directory as a demo work directory (only such directories are ever cleared).
const MARKER: &str = ".qiao-demo";
/// Held while a demo runs on a work directory.
const LOCK: &str = "demo.lock";
/// Everything a demo (this one or an earlier version) puts in its work directory.
const DEMO_NAMES: &[&str] = &[
    MARKER,
    LOCK,
    "cdm",
    "stores",
    "hub",
    "sites",
    DEFINITION_FILE,
    "gibleed.qiao",
];
/// How long the demo waits for every site to answer.
const QUERY_WAIT: Duration = Duration::from_secs(120);

#[derive(clap::Args)]
pub struct Args {
    /// The OMOP CDM CSV folder to synthesize the hospitals from (default: the bundled Eunomia
    /// GiBleed data, ../shared/data/eunomia-gibleed-5.3 from the project root).
    #[arg(long, value_name = "DIR")]
    cdm: Option<PathBuf>,
    /// The demo's work directory (cleared at every run; only directories made by `qiao demo`).
    #[arg(long, value_name = "DIR", default_value = ".work/demo")]
    work: PathBuf,
    /// Number of hospitals (sites).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    hospitals: u32,
    /// Geometric mean hospital size in persons (the largest is 2x, the smallest 1/2x).
    #[arg(long, value_name = "P", default_value_t = 2000)]
    persons: u64,
    /// Seed of the synthetic hospitals.
    #[arg(long, value_name = "S", default_value_t = 42)]
    seed: u64,
    /// Address the hub listens on (plain HTTP: keep it on loopback).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Stop after the query instead of serving until Ctrl-C.
    #[arg(long)]
    exit: bool,
    /// Print the result as one JSON object on stdout (everything else on stderr).
    #[arg(long)]
    json: bool,
    /// The sites release exact aggregates (the `exact` release mode: the threshold, no noise,
    /// DataSHIELD's model) and the hub states no limit on the privacy loss per release: for
    /// showing federated regression, which sites under differential privacy refuse.
    #[arg(long)]
    exact: bool,
}

/// Queries a user may send a site per rate-limit window in an `--exact` demo (each round of a
/// regression run is one).
const EXACT_DEMO_RATE_LIMIT: u32 = 1000;

/// The demo sites' 30-day ρ budgets: per user, per organization, in all.
const DEMO_BUDGETS: [f64; 3] = [4.0, 8.0, 16.0];

pub fn run(args: Args) -> anyhow::Result<()> {
    let console = Console { json: args.json };
    let started = Instant::now();
    let cdm = resolve_cdm(args.cdm.as_deref())?;
    let work = WorkDir::prepare(&args.work)?;
    let hospitals = synthesize(&console, &cdm, &work, &args)?;
    let stores = ingest(&console, &work, &hospitals)?;
    let net = Network::start(&console, &work, &stores, args.listen, args.exact)?;
    let view = net.feasibility(&console, &work)?;
    net.seed_portal(&console)?;
    if args.json {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", report::to_json(&view))?;
        out.flush()?;
    } else {
        console.say("");
        console.say(report::to_table(&view));
    }
    console.say(format!(
        "demo network up and query answered in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    if !view.complete {
        console.say("note: not every site answered in time");
    }
    if !args.exit {
        net.start_site_pages(&console)?;
        net.print_access(&console, &work);
        net.wait_for_ctrl_c()?;
        console.say("stopping");
    }
    net.stop()
}

/// Where the demo's narrative goes: stdout, or stderr when stdout carries the JSON result.
pub struct Console {
    json: bool,
}

impl Console {
    fn say(&self, s: impl Display) {
        // A closed terminal is not worth failing the demo for.
        if self.json {
            let _ = writeln!(std::io::stderr().lock(), "{s}");
        } else {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{s}");
            let _ = out.flush();
        }
    }
}

/// A bundled data folder: from the project root, else from the source tree this binary was
/// built from.
fn bundled(rel: &str) -> Option<PathBuf> {
    let from_root = PathBuf::from(rel);
    let from_source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    [from_root, from_source].into_iter().find(|p| p.is_dir())
}

/// The source CDM: `--cdm`, else the bundled GiBleed from the project root, else from the
/// source tree this binary was built from.
fn resolve_cdm(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        if !p.is_dir() {
            bail!("--cdm {}: not a directory", p.display());
        }
        return Ok(p.to_owned());
    }
    let from_root = PathBuf::from(BUNDLED_CDM);
    let from_source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(BUNDLED_CDM);
    for p in [&from_root, &from_source] {
        if p.join("person.csv").is_file() {
            return Ok(p.clone());
        }
    }
    bail!(
        "the bundled Eunomia GiBleed CDM is missing: looked for {} (from the current directory) \
         and {} (from the source tree); put the shared test data at ../shared/data beside the \
         project root, or give --cdm DIR",
        from_root.display(),
        from_source.display()
    )
}

/// The demo's work directory, held (locked) for the whole run and cleared at its start.
pub struct WorkDir {
    root: PathBuf,
    _lock: File,
}

impl WorkDir {
    fn prepare(root: &Path) -> anyhow::Result<Self> {
        let marker = root.join(MARKER);
        if root.exists() && !marker.exists() {
            // Without the marker, clear only what a demo makes (earlier versions of the demo
            // wrote `gibleed.qiao` and no marker).
            for entry in
                std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))?
            {
                let entry = entry.with_context(|| format!("reading {}", root.display()))?;
                let name = entry.file_name();
                if !DEMO_NAMES.iter().any(|n| name == *n) {
                    bail!(
                        "{} holds {:?}, which `qiao demo` did not make; give another --work directory",
                        root.display(),
                        name
                    );
                }
            }
        }
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        std::fs::write(
            &marker,
            "work directory of `qiao demo`, cleared at every run\n",
        )
        .with_context(|| format!("writing {}", marker.display()))?;
        let lock_path = root.join(LOCK);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            bail!(
                "another `qiao demo` is running on {} (stop it with Ctrl-C, or give another --work)",
                root.display()
            );
        }
        for entry in
            std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))?
        {
            let entry = entry.with_context(|| format!("reading {}", root.display()))?;
            let name = entry.file_name();
            if name == MARKER || name == LOCK {
                continue;
            }
            let path = entry.path();
            let removed = if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.with_context(|| format!("clearing {}", path.display()))?;
        }
        Ok(Self {
            root: root.to_owned(),
            _lock: lock,
        })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// Writes the synthetic hospitals' CDM folders under `WORK/cdm`.
fn synthesize(
    console: &Console,
    cdm: &Path,
    work: &WorkDir,
    args: &Args,
) -> anyhow::Result<Vec<qiao_synth::HospitalSummary>> {
    let t = Instant::now();
    console.say(format!(
        "== 1. synthesize {} hospitals from {}",
        args.hospitals,
        cdm.display()
    ));
    let mut opts = qiao_synth::HospitalOptions::new(cdm, work.path("cdm"));
    opts.hospitals = args.hospitals;
    opts.persons = args.persons;
    opts.seed = args.seed;
    opts.progress = std::io::stderr().is_terminal();
    let hospitals = qiao_synth::hospitals(&opts)
        .with_context(|| format!("synthesizing hospitals from {}", cdm.display()))?;
    for h in &hospitals {
        let mix: Vec<String> = h
            .case_mix
            .iter()
            .map(|b| {
                format!(
                    "{} x{:.1}",
                    b.concept_name.as_deref().unwrap_or("concept"),
                    b.factor
                )
            })
            .collect();
        console.say(format!(
            "   {:<11} {:>6} persons {:>8} clinical rows  {}; more of: {}",
            h.name,
            h.persons,
            h.clinical_rows,
            if h.age_tilt >= 0.0 {
                "younger"
            } else {
                "older"
            },
            mix.join(", ")
        ));
    }
    console.say(format!("   ({:.1} s)", t.elapsed().as_secs_f64()));
    Ok(hospitals)
}

/// A hospital's store.
pub struct HospitalStore {
    /// `hospital_1`, …: also its site id.
    pub name: String,
    /// The store file.
    pub store: PathBuf,
    /// Persons synthesized.
    pub persons: u64,
}

/// Ingests each hospital's CDM into `WORK/stores/NAME.qiao`.
fn ingest(
    console: &Console,
    work: &WorkDir,
    hospitals: &[qiao_synth::HospitalSummary],
) -> anyhow::Result<Vec<HospitalStore>> {
    console.say("== 2. ingest each hospital into its own store");
    let dir = work.path("stores");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = Vec::new();
    for h in hospitals {
        let store = dir.join(format!("{}.qiao", h.name));
        let r = qiao_ingest::ingest(
            &Source::CsvDir(h.dir.clone()),
            &store,
            Options {
                strict: false,
                progress: std::io::stderr().is_terminal(),
                ..Default::default()
            },
        )
        .with_context(|| format!("ingesting {}", h.dir.display()))?;
        console.say(format!(
            "   {:<11} {:>9} rows in {:.2} s → {}{}",
            h.name,
            r.tables.values().map(|t| t.rows_kept).sum::<u64>(),
            r.read_seconds + r.build_seconds,
            store.display(),
            match r.problems() {
                0 => String::new(),
                n => format!(" ({n} rows skipped, see `qiao ingest`)"),
            }
        ));
        out.push(HospitalStore {
            name: h.name.clone(),
            store,
            persons: h.persons,
        });
    }
    Ok(out)
}

/// A demo account.
#[derive(Clone, Debug)]
pub struct Account {
    /// Login name.
    pub id: String,
    /// Role.
    pub role: UserRole,
    /// Password (random per run).
    pub password: String,
    /// What the account is for.
    pub about: String,
}

/// The running network: the hub and one site task per hospital ([`qiao_testkit::Network`] in
/// this process), the demo accounts.
pub struct Network {
    /// The hub and the sites.
    pub net: qiao_testkit::Network,
    /// The hub's base URL.
    pub url: String,
    /// One account per role.
    pub accounts: Vec<Account>,
    /// The approved demo project.
    pub project: ProjectId,
    /// An API token of the sponsor (for `qiao query`).
    pub sponsor_token: String,
    /// Accounts the portal's seed created (id, password, role, what for).
    pub seeded_logins: std::sync::Mutex<Vec<(String, String, UserRole, String)>>,
}

fn password() -> String {
    qiao_hub::util::random_token("")[..12].to_owned()
}

fn account(id: &str, role: UserRole, about: &str) -> Account {
    Account {
        id: id.to_owned(),
        role,
        password: password(),
        about: about.to_owned(),
    }
}

impl Network {
    /// Starts the hub and the sites, creates the accounts and the approved project; `exact`:
    /// the sites release exact aggregates and the hub states no privacy-loss floor.
    pub fn start(
        console: &Console,
        work: &WorkDir,
        stores: &[HospitalStore],
        listen: SocketAddr,
        exact: bool,
    ) -> anyhow::Result<Self> {
        let t = Instant::now();
        console.say("== 3. start the hub and the sites");
        let first_site = stores.first().map(|s| s.name.clone()).unwrap_or_default();
        let accounts = vec![
            account(
                "admin",
                UserRole::AllianceAdmin,
                "runs the alliance: users, sites, projects",
            ),
            account("committee", UserRole::CommitteeMember, "approves projects"),
            account(
                "sponsor",
                UserRole::SponsorResearcher,
                "asks questions under the demo project",
            ),
            account(
                "steward",
                UserRole::SiteDataSteward,
                &format!("data steward of {first_site}"),
            ),
            account(
                "investigator",
                UserRole::SiteInvestigator,
                &format!("investigator at {first_site}"),
            ),
            account("auditor", UserRole::Auditor, "reads the hub's audit log"),
        ];
        // The first administrator and the sites are made on the state directly (as
        // `qiao hub create-user` and `create-site`); the other accounts and the project go
        // through the HTTP API.
        let admin = &accounts[0];
        let spec = qiao_testkit::Spec {
            accounts: vec![qiao_testkit::Account {
                id: admin.id.clone(),
                role: admin.role,
                password: admin.password.clone(),
                institution: None,
                site: None,
                api_token: false,
            }],
            sites: stores
                .iter()
                .map(|h| qiao_testkit::SiteSpec {
                    id: h.name.clone(),
                    name: Some(format!("Demo {} ({} persons)", h.name, h.persons)),
                    store: h.store.clone(),
                    data: work.path("sites").join(&h.name),
                })
                .collect(),
            listen,
            max_backoff_secs: 2,
            floors: exact.then_some(qiao_hub::protocol::Floors {
                max_rho_per_release: None,
                ..Default::default()
            }),
            ..Default::default()
        };
        let net = qiao_testkit::Network::start(&work.root, &spec, &qiao_testkit::Nodes::InProcess)?;
        // One sponsor runs the demo query, the portal's seeded feasibility runs and then the
        // printed follow-up queries: more than the default 30-day budgets of one user at a site
        // (ρ 0.25, about four funnels). The demo's sites raise them — and say so; every other
        // setting is a new site's default.
        for s in &net.sites {
            let dir = qiao_site::SiteDir::open(&s.data)?;
            let mut policy = qiao_site::policy::SitePolicy::load(&dir)?;
            policy.dp.user_rho = DEMO_BUDGETS[0];
            policy.dp.organization_rho = DEMO_BUDGETS[1];
            policy.dp.site_rho = DEMO_BUDGETS[2];
            // Network analyses (characterization, incidence) run without the steward's
            // approval, so the portal's analysis pages answer in the demo.
            policy.analyses = qiao_site::policy::Approval::Auto;
            if exact {
                // Exact releases; every regression round is a query to the rate limit.
                policy.release = qiao_disclosure::ReleaseMode::Exact;
                policy.rate_limit.max_queries = EXACT_DEMO_RATE_LIMIT;
            }
            policy.save(&dir)?;
        }
        if exact {
            console.say(format!(
                "   sites release exact aggregates (threshold {}, no noise) and answer {EXACT_DEMO_RATE_LIMIT} queries per window: federated regression runs (--exact)",
                qiao_hub::protocol::Floors::default().min_cell_count
            ));
        }
        console.say(
            "   sites run network analyses (characterization, incidence) without approval in the demo (new sites: manual)",
        );
        console.say(format!(
            "   sites' 30-day privacy budgets raised for the demo: ρ {} per user, {} per organization, {} in all (new sites: 0.25, 0.5, 1)",
            DEMO_BUDGETS[0], DEMO_BUDGETS[1], DEMO_BUDGETS[2]
        ));
        let url = net.url.clone();
        console.say(format!(
            "   hub listening on {url} (plain HTTP, state in {})",
            work.path("hub").display()
        ));
        for s in &net.sites {
            console.say(format!(
                "   site {:<11} enrolled with a one-time token, hub key pinned ({}); serving {}",
                s.id,
                net.hub_fingerprint,
                s.store.display()
            ));
        }
        let admin_api = net.login(&admin.id, &admin.password)?;
        for a in &accounts[1..] {
            let (institution, site) = match a.role {
                UserRole::SponsorResearcher => (Some(qiao_portal::demo::SPONSOR_INSTITUTION), None),
                UserRole::SiteDataSteward | UserRole::SiteInvestigator => {
                    (None, Some(first_site.as_str()))
                }
                _ => (None, None),
            };
            admin_api.call::<serde_json::Value>(
                "POST",
                "/api/v1/users",
                Some(&json!({"id": a.id, "password": a.password, "role": a.role,
                             "institution": institution, "site": site})),
            )?;
        }
        let project = ProjectId::new(PROJECT)?;
        admin_api.call::<serde_json::Value>(
            "POST",
            "/api/v1/projects",
            Some(
                &json!({"id": project, "title": "Celecoxib users aged 40 and over: feasibility",
                         "members": ["sponsor", "investigator"]}),
            ),
        )?;
        let committee = net.login(&accounts[1].id, &accounts[1].password)?;
        committee.call::<serde_json::Value>(
            "POST",
            &format!("/api/v1/projects/{project}/approve"),
            Some(&json!({"approved": true})),
        )?;
        let sponsor_token = net
            .login(&accounts[2].id, &accounts[2].password)?
            .create_api_token(Some("qiao demo"))?
            .token;
        console.say(format!(
            "   accounts: {}; project {project} created by admin, approved by committee ({:.1} s)",
            accounts
                .iter()
                .map(|a| a.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            t.elapsed().as_secs_f64()
        ));
        Ok(Self {
            net,
            url,
            accounts,
            project,
            sponsor_token,
            seeded_logins: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The account with `id`.
    pub fn account(&self, id: &str) -> anyhow::Result<&Account> {
        self.accounts
            .iter()
            .find(|a| a.id == id)
            .with_context(|| format!("no demo account {id}"))
    }

    /// The sponsor runs the demo definition on every site and waits for the answers.
    pub fn feasibility(&self, console: &Console, work: &WorkDir) -> anyhow::Result<JobView> {
        let definition: serde_json::Value =
            serde_json::from_str(DEFINITION).context("the bundled cohort definition")?;
        let path = work.path(DEFINITION_FILE);
        std::fs::write(&path, DEFINITION).with_context(|| format!("writing {}", path.display()))?;
        console.say(
            "== 4. feasibility query by sponsor: celecoxib exposure, age at index ≥ 40, male \
             (OHDSI CohortGenerator cohort 3)",
        );
        let t = Instant::now();
        let sponsor = self.login(self.account("sponsor")?)?;
        let submitted = sponsor.submit_query(
            &self.project,
            &QueryRequest {
                query: QueryType::CohortCount,
                definition,
                sites: None,
            },
        )?;
        let view = sponsor.wait_job(&submitted.job_id, QUERY_WAIT)?;
        console.say(format!(
            "   job {} answered by {} of {} sites in {:.0} ms",
            view.job_id,
            view.sites
                .iter()
                .filter(|s| s.status != SiteStatus::Pending)
                .count(),
            view.sites.len(),
            t.elapsed().as_secs_f64() * 1000.0
        ));
        Ok(view)
    }

    /// Seeds the alliance portal: after the demo's own query, so that query is not queued at
    /// the sites behind the seeded feasibility runs' jobs (measured: 129 ms after, 20.8 s when
    /// seeded before, with the sites' loop of the time).
    pub fn seed_portal(&self, console: &Console) -> anyhow::Result<()> {
        let data_as_of = qiao_portal::alliance::data_dates(
            &self
                .net
                .hub()
                .context("the demo's hub runs in this process")?
                .hub
                .sites_seen(),
        );
        let seeded = qiao_portal::demo::seed(
            self.net
                .hub()
                .context("the demo's hub runs in this process")?
                .hub
                .store()
                .as_ref(),
            &qiao_portal::demo::DemoAccounts {
                admin: UserId::new("admin")?,
                committee: UserId::new("committee")?,
                sponsor: UserId::new("sponsor")?,
                steward: UserId::new("steward")?,
            },
            &self
                .net
                .sites
                .iter()
                .map(|s| s.id.clone())
                .collect::<Vec<_>>(),
            DEFINITION,
            &data_as_of,
            qiao_hub::util::now(),
        )?;
        let store = self
            .net
            .hub()
            .context("the demo's hub runs in this process")?
            .hub
            .store()
            .clone();
        let library = bundled(BUNDLED_LIBRARY);
        let imported = match &library {
            Some(dir) => {
                let r = qiao_portal::alliance::import_library(
                    store.as_ref(),
                    dir,
                    qiao_hub::util::now(),
                )
                .map_err(|e| anyhow::anyhow!("importing the phenotype library: {e}"))?;
                for (file, why) in &r.refused {
                    console.say(format!("   library: {file} refused: {why}"));
                }
                r.imported
            }
            None => {
                console.say(format!(
                    "   phenotype library not found at {BUNDLED_LIBRARY}: the portal's library stays empty"
                ));
                0
            }
        };
        console.say(format!(
            "   phenotype library: {imported} definitions imported from {}",
            library.map_or_else(|| BUNDLED_LIBRARY.to_owned(), |p| p.display().to_string())
        ));
        // The demo's alliance users may use the first site's pages in their site roles.
        if let Some(s) = self.net.sites.first() {
            let dir = qiao_site::SiteDir::open(&s.data)?;
            qiao_site::users::Users::grant(
                &dir,
                "investigator",
                Some(qiao_site::users::LocalRole::Investigator),
            )?;
            qiao_site::users::Users::grant(
                &dir,
                "steward",
                Some(qiao_site::users::LocalRole::Steward),
            )?;
            let projects = std::iter::once(PROJECT.to_owned())
                .chain(seeded.projects.iter().map(|(p, _)| p.to_string()));
            for p in projects {
                let t = qiao_hub::util::now();
                qiao_site::projects::Projects::accept(&dir, &p, "steward", t)?;
                qiao_site::projects::Projects::assign(
                    &dir,
                    &p,
                    "alliance:investigator",
                    "steward",
                )?;
            }
        }
        if let Ok(mut l) = self.seeded_logins.lock() {
            l.extend(seeded.logins.iter().cloned());
        }
        console.say(format!(
            "== 5. alliance portal seeded: {} institutions, 2 experts, a project in every stage: {}",
            seeded.institutions.len(),
            seeded
                .projects
                .iter()
                .map(|(p, s)| format!("{p} ({})", s.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok(())
    }

    /// Starts each site's own pages (`qiao site ui`) on a free loopback port with a local
    /// steward and investigator account, and records the address in the portal (the alliance
    /// sign-in links there). Only when the demo keeps serving.
    pub fn start_site_pages(&self, console: &Console) -> anyhow::Result<()> {
        let hub = self
            .net
            .hub()
            .context("the demo's hub runs in this process")?;
        let store = hub.hub.store().clone();
        let admin = store
            .user(&UserId::new("admin")?)?
            .context("the demo's admin")?;
        let now = qiao_hub::util::now();
        for (i, s) in self.net.sites.iter().enumerate() {
            let dir = qiao_site::SiteDir::open(&s.data)?;
            let mut logins = Vec::new();
            for (role, who) in [
                (qiao_site::users::LocalRole::Steward, "steward"),
                (qiao_site::users::LocalRole::Investigator, "investigator"),
            ] {
                let name = format!("{who}.local");
                let pw = password();
                qiao_site::users::Users::add(&dir, &name, role, &pw, now)?;
                logins.push(format!("{name} {pw} ({who})"));
            }
            // Its own loopback address: browsers scope cookies by host, not port, and the hub's
            // session cookie has the same name.
            let host = std::net::Ipv4Addr::new(127, 0, 0, 2 + u8::try_from(i).unwrap_or(0));
            let listener = std::net::TcpListener::bind((host, 0))?;
            listener.set_nonblocking(true)?;
            let addr = listener.local_addr()?;
            let url = format!("http://{addr}");
            qiao_portal::alliance::set_site_pages(store.as_ref(), &s.id, &url, &admin, now)
                .map_err(|e| anyhow::anyhow!("recording site pages: {e:?}"))?;
            let o = qiao_site::ui::UiOptions {
                data: s.data.clone(),
                store: s.store.clone(),
                listen: addr,
                insecure_http: true,
            };
            self.net
                .block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    tokio::spawn(async move {
                        if let Err(e) =
                            qiao_site::ui::serve_ui_on(&o, listener, std::future::pending()).await
                        {
                            tracing::error!("site pages: {e:#}");
                        }
                    });
                    Ok::<_, std::io::Error>(())
                })
                .context("the demo's sites run in this process")??;
            console.say(format!(
                "Site {} pages: {url}/login — local logins: {}",
                s.id,
                logins.join(", ")
            ));
        }
        console.say(
            "   alliance users sign in there from the portal (project page → pre-screening list); the first site grants 'investigator' and 'steward' their roles",
        );
        Ok(())
    }

    /// Prints how to use the running network.
    pub fn print_access(&self, console: &Console, work: &WorkDir) {
        console.say("");
        console.say(format!("The demo network is serving. Hub: {}", self.url));
        console.say(format!(
            "Alliance portal (zh-CN / English): {}/login — sign in with a login below",
            self.url
        ));
        console.say("Demo logins (POST /api/v1/login with {\"username\", \"password\"}):");
        for a in &self.accounts {
            console.say(format!(
                "   {:<13} {:<14} {:<19} {}",
                a.id,
                a.password,
                qiao_hub::model::role_name(a.role),
                a.about
            ));
        }
        if let Ok(l) = self.seeded_logins.lock() {
            for (id, password, role, about) in l.iter() {
                console.say(format!(
                    "   {:<13} {:<14} {:<19} {}",
                    id,
                    password,
                    qiao_hub::model::role_name(*role),
                    about
                ));
            }
        }
        console.say(format!(
            "Ask again from another terminal (sponsor's API token):\n   qiao query --hub {} --token {} --project {} {}",
            self.url,
            self.sponsor_token,
            self.project,
            work.path(DEFINITION_FILE).display()
        ));
        console.say(format!(
            "Sites' data, journals and audit logs: {} (e.g. qiao site audit --data {})",
            work.path("sites").display(),
            self.net
                .sites
                .first()
                .map_or_else(String::new, |s| s.data.display().to_string())
        ));
        console.say("Press Ctrl-C to stop.");
    }

    fn wait_for_ctrl_c(&self) -> anyhow::Result<()> {
        self.net
            .block_on(tokio::signal::ctrl_c())
            .context("the demo's sites run in this process")?
            .context("waiting for Ctrl-C")
    }

    /// Stops the sites, then the hub.
    pub fn stop(self) -> anyhow::Result<()> {
        self.net.stop()
    }

    /// A client of the hub logged in as `a` (a session token).
    fn login(&self, a: &Account) -> anyhow::Result<HubClient> {
        self.net.login(&a.id, &a.password)
    }
}
