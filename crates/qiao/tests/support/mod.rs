//! What the end-to-end tests share: running `qiao` commands, and a network of real processes
//! (`qiao hub serve` and `qiao site serve` on loopback HTTP) whose children are killed when the
//! test ends, also when it fails ([`Procs`]).
//!
//! Each test binary uses only part of it.
#![allow(dead_code)]

pub mod cdm;
pub mod circe;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const QIAO: &str = env!("CARGO_BIN_EXE_qiao");
/// Password of every account the tests make.
pub const PASSWORD: &str = "e2e federated passphrase";

/// Child processes, killed and reaped when dropped (the test passed, failed or panicked).
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

/// Runs `qiao ARGS` to completion (at most `timeout`), killing it if it takes longer.
pub fn run_for(args: &[&str], cwd: Option<&Path>, timeout: Duration) -> Output {
    let mut cmd = Command::new(QIAO);
    cmd.args(args)
        .env("QIAO_HUB_PASSWORD", PASSWORD)
        .env_remove("QIAO_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let mut child = cmd.spawn().expect("spawn qiao");
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
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
        if let Some(s) = guard.0[0].try_wait().expect("wait for qiao") {
            break s;
        }
        assert!(
            start.elapsed() < timeout,
            "qiao {args:?} did not finish within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(guard);
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
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

pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Writes a site's `secret.key` (hex, mode 0600) from `seed`.
fn write_secret(site_data: &Path, seed: u64) {
    use rand::{RngCore, SeedableRng};
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = [0u8; 32];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(site_data.join("secret.key"))
        .expect("secret.key");
    f.write_all(hex.as_bytes()).expect("write secret.key");
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

/// A hub and its sites as separate processes: every user (made with `qiao hub create-user`
/// before the hub serves) has an API token; every site is enrolled with a one-time token and
/// the pinned hub key, then serves its store.
pub struct Network {
    pub procs: Procs,
    pub url: String,
    /// API token per user id.
    pub tokens: BTreeMap<String, String>,
    /// (site name, data directory, store)
    pub sites: Vec<(String, PathBuf, PathBuf)>,
}

impl Network {
    /// Starts a hub with its state under `dir/hub` and one site per `(name, store)`, with data
    /// directories `dir/site-NAME`.
    pub fn start(
        dir: &Path,
        stores: &[(String, PathBuf)],
        users: &[User<'_>],
        projects: &[Project<'_>],
    ) -> Self {
        Self::start_seeded(dir, stores, users, projects, None)
    }

    /// [`Self::start`], and with `Some(seed)` every site's disclosure secret (which keys its
    /// noise) is derived from `seed` instead of drawn at random, so released values repeat
    /// from run to run.
    pub fn start_seeded(
        dir: &Path,
        stores: &[(String, PathBuf)],
        users: &[User<'_>],
        projects: &[Project<'_>],
        secret_seed: Option<u64>,
    ) -> Self {
        Self::start_with(dir, stores, users, projects, secret_seed, &[])
    }

    /// [`Self::start_seeded`] with extra `qiao hub serve` flags (e.g. the alliance floors:
    /// `--floor-max-rho-per-release none` lets sites with the noise off answer).
    pub fn start_with(
        dir: &Path,
        stores: &[(String, PathBuf)],
        users: &[User<'_>],
        projects: &[Project<'_>],
        secret_seed: Option<u64>,
        hub_flags: &[&str],
    ) -> Self {
        let hub = dir.join("hub");
        for u in users {
            qiao(&[
                "hub",
                "create-user",
                "--data",
                s(&hub),
                "--id",
                u.id,
                "--role",
                "sponsor_researcher",
                "--institution",
                u.institution,
            ]);
        }
        let mut enrollments = Vec::new();
        for (name, store) in stores {
            let out = qiao(&["hub", "create-site", "--data", s(&hub), "--id", name]);
            let token = out
                .lines()
                .find(|l| l.starts_with("qiao-enroll-"))
                .unwrap_or_else(|| panic!("no token in {out}"))
                .to_owned();
            let fp = out
                .lines()
                .find_map(|l| l.strip_prefix("hub key fingerprint: "))
                .unwrap_or_else(|| panic!("no fingerprint in {out}"))
                .to_owned();
            enrollments.push((name.clone(), store.clone(), token, fp));
        }
        for p in projects {
            let members = p.members.join(",");
            qiao(&[
                "hub",
                "create-project",
                "--data",
                s(&hub),
                "--id",
                p.id,
                "--title",
                p.id,
                "--member",
                &members,
                "--approved",
            ]);
        }
        let tokens = users
            .iter()
            .map(|u| {
                let t = qiao(&["hub", "create-token", "--data", s(&hub), "--user", u.id]);
                (u.id.to_owned(), t.trim().to_owned())
            })
            .collect();
        let mut procs = Procs::default();
        let mut child = Command::new(QIAO)
            .args([
                "hub",
                "serve",
                "--data",
                s(&hub),
                "--insecure-http",
                "--listen",
                "127.0.0.1:0",
                // Submission quotas bound volume, not what an answer reveals: the attack suite's
                // hundreds of queries per account measure the release mechanism and the privacy
                // budgets, so the hub's quotas are set out of their way (as the sites' rate limit).
                "--jobs-per-user-hour",
                "100000",
                "--jobs-per-project-hour",
                "100000",
            ])
            .args(hub_flags)
            .env_remove("QIAO_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn qiao hub serve");
        let stdout = child.stdout.take().expect("hub stdout");
        procs.0.push(child);
        let mut banner = String::new();
        BufReader::new(stdout)
            .read_line(&mut banner)
            .expect("hub banner");
        let url = banner
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {banner:?}"))
            .to_owned();
        let mut sites = Vec::new();
        for (name, store, enroll_token, fp) in enrollments {
            let data = dir.join(format!("site-{name}"));
            let out = qiao(&[
                "site",
                "enroll",
                "--hub",
                &url,
                "--token",
                &enroll_token,
                "--name",
                &name,
                "--data",
                s(&data),
                "--hub-fingerprint",
                &fp,
                "--insecure-http",
            ]);
            assert!(out.contains(&fp), "{out}");
            if let Some(seed) = secret_seed {
                write_secret(&data, seed.wrapping_add(sites.len() as u64));
            }
            sites.push((name, data, store));
        }
        let mut net = Network {
            procs,
            url,
            tokens,
            sites,
        };
        for i in 0..net.sites.len() {
            net.serve_site(i);
        }
        net
    }

    /// Starts `qiao site serve` for site `i`.
    fn serve_site(&mut self, i: usize) {
        let (_, data, store) = &self.sites[i];
        let child = Command::new(QIAO)
            .args([
                "site",
                "serve",
                "--store",
                s(store),
                "--data",
                s(data),
                "--insecure-http",
                "--wait-secs",
                "5",
                "--max-backoff-secs",
                "1",
            ])
            .env_remove("QIAO_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn qiao site serve");
        self.procs.0.push(child);
    }

    /// `qiao site policy set FLAGS` on site `i` (the running site reads it for every job).
    pub fn policy(&self, site: usize, flags: &[&str]) {
        let data = &self.sites[site].1;
        let mut args = vec!["site", "policy", "set", "--data", s(data)];
        args.extend_from_slice(flags);
        qiao(&args);
    }

    /// An API client of the hub acting as `user`.
    pub fn client(&self, user: &str) -> qiao_hub::HubClient {
        let token = self
            .tokens
            .get(user)
            .unwrap_or_else(|| panic!("no token for {user}"));
        qiao_hub::HubClient::new(&self.url, None)
            .expect("hub client")
            .with_token(token.clone())
    }
}
