//! What the end-to-end tests share: running `qiao` commands, and a network of real processes
//! (`qiao hub serve` and `qiao site serve` on loopback HTTP) whose children are killed when the
//! test ends, also when it fails ([`Procs`]).
//!
//! Each test binary uses only part of it.
#![allow(dead_code)]

pub mod cdm;
pub mod circe;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

pub const QIAO: &str = env!("CARGO_BIN_EXE_qiao");
/// Password of every account the tests make.
pub const PASSWORD: &str = "e2e federated passphrase";

#[allow(unused_imports)] // not every test binary uses both
pub use qiao_testkit::{Network, Procs};

/// The binary under test, as the testkit runs it.
pub fn cli() -> qiao_testkit::Cli {
    qiao_testkit::Cli::new(QIAO, PASSWORD)
}

/// Runs `qiao ARGS` to completion (at most `timeout`), killing it if it takes longer.
pub fn run_for(args: &[&str], cwd: Option<&Path>, timeout: Duration) -> Output {
    cli()
        .run_for(args, cwd, timeout)
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Runs `qiao ARGS`, asserts it succeeded, returns its stdout.
pub fn qiao(args: &[&str]) -> String {
    let out = run_for(args, None, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "qiao {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `qiao cohort run --json` lines without their timing (to compare two runs).
pub fn without_millis(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v.as_object_mut().expect("an object").remove("millis");
            v
        })
        .collect()
}

/// Eunomia GiBleed, the source of the synthetic hospitals.
pub const GIBLEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/eunomia-gibleed-5.3"
);

/// `qiao synth` hospitals `hospital_1..=n` from GiBleed in `dir/cdm` (`persons` each, `seed`),
/// each ingested to `dir/hospital_i.qiao`: the CDM folder and (site name, store) per hospital.
pub fn synth_hospitals(
    dir: &Path,
    n: usize,
    persons: usize,
    seed: u64,
) -> (PathBuf, Vec<(String, PathBuf)>) {
    let cdm = dir.join("cdm");
    let (n_s, persons_s, seed_s) = (n.to_string(), persons.to_string(), seed.to_string());
    qiao(&[
        "synth",
        "--from",
        GIBLEED,
        "--out",
        s(&cdm),
        "--hospitals",
        &n_s,
        "--persons",
        &persons_s,
        "--seed",
        &seed_s,
        "--quiet",
    ]);
    let stores = (1..=n)
        .map(|i| {
            let name = format!("hospital_{i}");
            let store = dir.join(format!("{name}.qiao"));
            qiao(&["ingest", "--cdm", s(&cdm.join(&name)), "--out", s(&store)]);
            (name, store)
        })
        .collect();
    (cdm, stores)
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A sponsor-side account: its id and organization (institution).
pub struct User<'a> {
    pub id: &'a str,
    pub institution: &'a str,
}

/// An approved project and its members.
pub struct Project<'a> {
    pub id: &'a str,
    pub members: &'a [&'a str],
}

/// A hub and its sites as separate processes ([`qiao_testkit::Nodes::Processes`]) with its
/// state under `dir/hub` and one site per `(name, store)` with its data directory
/// `dir/site-NAME`: every user (a sponsor researcher, made with `qiao hub create-user` before
/// the hub serves) has an API token; every site is enrolled with a one-time token and the
/// pinned hub key, then serves its store. With `Some(seed)` every site's disclosure secret
/// (which keys its noise) is derived from `seed` instead of drawn at random, so released values
/// repeat from run to run. `hub_args` are extra `qiao hub serve` flags (e.g. the alliance floors:
/// `--floor-max-rho-per-release none` lets sites with the noise off answer).
pub fn network(
    dir: &Path,
    stores: &[(String, PathBuf)],
    users: &[User<'_>],
    projects: &[Project<'_>],
    secret_seed: Option<u64>,
    hub_args: &[&str],
) -> Network {
    network_with(dir, stores, users, projects, secret_seed, hub_args, &[])
}

/// [`network`] with one sponsor researcher, `sponsor` of Pharma, member of one approved
/// project, `p1`.
pub fn sponsor_network(
    dir: &Path,
    stores: &[(String, PathBuf)],
    secret_seed: Option<u64>,
    hub_args: &[&str],
) -> Network {
    network(
        dir,
        stores,
        &[User {
            id: "sponsor",
            institution: "Pharma",
        }],
        &[Project {
            id: "p1",
            members: &["sponsor"],
        }],
        secret_seed,
        hub_args,
    )
}

/// [`network`] with extra `qiao site serve` flags for every site (e.g. `--workers`).
pub fn network_with(
    dir: &Path,
    stores: &[(String, PathBuf)],
    users: &[User<'_>],
    projects: &[Project<'_>],
    secret_seed: Option<u64>,
    hub_args: &[&str],
    site_args: &[&str],
) -> Network {
    let spec = qiao_testkit::Spec {
        accounts: users
            .iter()
            .map(|u| qiao_testkit::Account {
                id: u.id.to_owned(),
                role: qiao_hub::protocol::UserRole::SponsorResearcher,
                password: PASSWORD.to_owned(),
                institution: Some(u.institution.to_owned()),
                site: None,
                api_token: true,
            })
            .collect(),
        sites: stores
            .iter()
            .map(|(name, store)| qiao_testkit::SiteSpec {
                id: name.clone(),
                name: None,
                store: store.clone(),
                data: dir.join(format!("site-{name}")),
            })
            .collect(),
        projects: projects
            .iter()
            .map(|p| qiao_testkit::ProjectSpec {
                id: p.id.to_owned(),
                title: p.id.to_owned(),
                members: p.members.iter().map(|m| (*m).to_owned()).collect(),
            })
            .collect(),
        secret_seed,
        // Submission quotas bound volume, not what an answer reveals: the attack suite's
        // hundreds of queries per account measure the release mechanism and the privacy
        // budgets, so the hub's quotas are set out of their way (as the sites' rate limit).
        jobs_per_hour: Some(100_000),
        site_wait_secs: Some(5),
        max_backoff_secs: 1,
        hub_args: hub_args.iter().map(|a| (*a).to_owned()).collect(),
        site_args: site_args.iter().map(|a| (*a).to_owned()).collect(),
        ..Default::default()
    };
    Network::start(dir, &spec, &qiao_testkit::Nodes::Processes(cli()))
        .unwrap_or_else(|e| panic!("starting the network: {e:#}"))
}

/// `qiao site policy set FLAGS` on site `i` of `net` (the running site reads it for every job).
pub fn policy(net: &Network, site: usize, flags: &[&str]) {
    let data = &net.sites[site].data;
    let mut args = vec!["site", "policy", "set", "--data", s(data)];
    args.extend_from_slice(flags);
    qiao(&args);
}

/// An API client of the hub acting as `user`.
pub fn client(net: &Network, user: &str) -> qiao_hub::HubClient {
    net.client_of(user).unwrap_or_else(|e| panic!("{e:#}"))
}
