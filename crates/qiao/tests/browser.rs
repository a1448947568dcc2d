//! Browser end-to-end test: real `qiao hub serve`, two `qiao site serve` and two `qiao site ui`
//! processes on loopback, driven by headless Chromium through playwright-core
//! (`crates/portal/e2e/flow.mjs`), one screenshot per step under `target/portal-screenshots/`.
//!
//! Needs `QIAO_CHROMIUM` (Debian's `/usr/bin/chromium`) and `QIAO_E2E_NODE_MODULES` (the
//! `node_modules` holding playwright-core), which `bash scripts/test.sh` installs and exports.
//! Without them the test fails with that message: it never skips silently.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GIBLEED: &str = "../../../shared/data/eunomia-gibleed-5.3";
/// CohortGenerator's cohort 3 (celecoxib, age > 40, male): 266 persons on GiBleed (Java Circe).
const GIBLEED_COHORT3: &str =
    "../../../shared/data/reference/cohortgenerator-eunomia/cohorts/3.json";
const PASSWORD: &str = "correct-horse-battery";

fn qiao() -> Command {
    Command::new(env!("CARGO_BIN_EXE_qiao"))
}

/// A child process killed (and reaped) when dropped, so a failing test leaves nothing running.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn spawn(name: &str, logs: &Path, args: &[&str]) -> Proc {
        let log = logs.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("creating a process log");
        let err = out.try_clone().expect("cloning a log handle");
        let child = qiao()
            .args(args)
            .env("QIAO_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// Panics with the process's log if it has exited.
    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            panic!("{} exited ({status}):\n{log}", self.name);
        }
    }
}

/// A free port on loopback address `127.0.0.{host}`. The hub and each site get their own
/// address, as they would have their own host names: browsers scope cookies by host, not port.
fn free_addr(host: u8) -> SocketAddr {
    let l = TcpListener::bind(("127.0.0.".to_owned() + &host.to_string(), 0))
        .expect("binding a loopback port");
    l.local_addr().expect("local address")
}

/// GET `path` on `addr` with a plain HTTP/1.1 request; the status code, or None if the
/// server does not answer yet.
fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn wait_ready(p: &mut Proc, addr: SocketAddr, path: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        p.check_alive();
        if http_status(addr, path).is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{} did not answer on {addr}{path} within 30 s", p.name);
}

fn run_ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut c = qiao();
    c.args(args).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("running qiao");
    assert!(
        out.status.success(),
        "qiao {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: the browser test needs Chromium and playwright-core, which \
             `bash scripts/test.sh` installs and exports (QIAO_CHROMIUM, QIAO_E2E_NODE_MODULES). \
             Run the browser test through `bash scripts/test.sh`."
        ),
    }
}

/// The workspace's `target/` (the test executable is `target/release/deps/browser-…`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("../../target"))
}

/// One hospital: its data directory, and once started its `site serve` and `site ui`.
struct Hospital {
    id: &'static str,
    data: PathBuf,
    ui: SocketAddr,
}

#[test]
fn portal_flow_in_headless_chromium() {
    let chromium = required_env("QIAO_CHROMIUM");
    let node_modules = required_env("QIAO_E2E_NODE_MODULES");
    assert!(
        Path::new(&chromium).is_file(),
        "QIAO_CHROMIUM={chromium} does not exist: run `bash scripts/test.sh`"
    );
    assert!(
        Path::new(&node_modules).join("playwright-core").is_dir(),
        "QIAO_E2E_NODE_MODULES={node_modules} has no playwright-core: run `bash scripts/test.sh`"
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let screenshots = target_dir().join("portal-screenshots");
    let _ = std::fs::remove_dir_all(&screenshots);
    std::fs::create_dir_all(&screenshots).expect("screenshot dir");

    // The hospitals' store: GiBleed.
    let store = root.join("gibleed.qiao");
    run_ok(
        &[
            "ingest",
            "--cdm",
            GIBLEED,
            "--out",
            store.to_str().expect("utf-8 path"),
        ],
        &[],
    );

    // The hub's state, set up before it serves (the embedded database has one writer).
    let hub_data = root.join("hub");
    let hub_data_s = hub_data.to_str().expect("utf-8 path").to_owned();
    let pw_env = [("QIAO_HUB_PASSWORD", PASSWORD)];
    run_ok(
        &[
            "hub",
            "create-user",
            "--data",
            &hub_data_s,
            "--id",
            "admin",
            "--role",
            "alliance_admin",
        ],
        &pw_env,
    );
    // A sponsor with an approved project, to send the sites jobs through the hub's API (the
    // site pages' part of the flow does not depend on the portal's pages).
    run_ok(
        &[
            "hub",
            "create-user",
            "--data",
            &hub_data_s,
            "--id",
            "sponsor.api",
            "--role",
            "sponsor_researcher",
            "--institution",
            "Pharma Co",
        ],
        &pw_env,
    );
    run_ok(
        &[
            "hub",
            "create-project",
            "--data",
            &hub_data_s,
            "--id",
            "p-site-pages",
            "--title",
            "Celecoxib pre-screening",
            "--member",
            "sponsor.api",
            "--approved",
        ],
        &[],
    );
    let sponsor_token = run_ok(
        &[
            "hub",
            "create-token",
            "--data",
            &hub_data_s,
            "--user",
            "sponsor.api",
        ],
        &[],
    );
    let sponsor_token = sponsor_token
        .lines()
        .find(|l| l.starts_with("qiao-"))
        .unwrap_or_else(|| panic!("no token in {sponsor_token}"))
        .trim()
        .to_owned();
    let mut hospitals = vec![
        Hospital {
            id: "hospital-a",
            data: root.join("site-a"),
            ui: free_addr(2),
        },
        Hospital {
            id: "hospital-b",
            data: root.join("site-b"),
            ui: free_addr(3),
        },
    ];
    let mut tokens = Vec::new();
    for h in &hospitals {
        let out = run_ok(
            &["hub", "create-site", "--data", &hub_data_s, "--id", h.id],
            &[],
        );
        let token = out
            .lines()
            .find(|l| l.starts_with("qiao-enroll-"))
            .unwrap_or_else(|| panic!("no enrollment token in {out}"))
            .to_owned();
        tokens.push(token);
    }

    // The portal's people: the sponsor of an enterprise that applies in the flow, two
    // committee members, and hospital A's data steward at the hub.
    for (id, role, extra) in [
        (
            "sponsor.sh",
            "sponsor_researcher",
            ["--institution", "shpharma"],
        ),
        (
            "expert.li",
            "committee_member",
            ["--institution", "hospital-b"],
        ),
        (
            "expert.wang",
            "committee_member",
            ["--institution", "hospital-b"],
        ),
        (
            "steward.hub.a",
            "site_data_steward",
            ["--site", "hospital-a"],
        ),
    ] {
        let mut args = vec![
            "hub",
            "create-user",
            "--data",
            &hub_data_s,
            "--id",
            id,
            "--role",
            role,
        ];
        args.extend(extra);
        run_ok(&args, &pw_env);
    }

    let hub_addr = free_addr(1);
    let hub_url = format!("http://{hub_addr}");
    let mut procs = Vec::new();
    let mut hub = Proc::spawn(
        "hub",
        &logs,
        &[
            "hub",
            "serve",
            "--data",
            &hub_data_s,
            "--listen",
            &hub_addr.to_string(),
            "--insecure-http",
        ],
    );
    wait_ready(&mut hub, hub_addr, "/api/v1/health");
    procs.push(hub);

    let store_s = store.to_str().expect("utf-8 path").to_owned();
    for (h, token) in hospitals.iter_mut().zip(&tokens) {
        let data = h.data.to_str().expect("utf-8 path").to_owned();
        run_ok(
            &[
                "site",
                "enroll",
                "--hub",
                &hub_url,
                "--token",
                token,
                "--name",
                h.id,
                "--data",
                &data,
                "--insecure-http",
            ],
            &[],
        );
        let site_pw = [("QIAO_SITE_PASSWORD", PASSWORD)];
        let prefix = &h.id[h.id.len() - 1..];
        run_ok(
            &[
                "site",
                "users",
                "add",
                "--data",
                &data,
                "--role",
                "steward",
                &format!("steward.{prefix}"),
            ],
            &site_pw,
        );
        run_ok(
            &[
                "site",
                "users",
                "add",
                "--data",
                &data,
                "--role",
                "investigator",
                &format!("dr.{prefix}"),
            ],
            &site_pw,
        );
        // The steward accepts the projects (the site pages' own and the portal's) and assigns
        // the investigator (issue 12: pre-screening lists open only for accepted projects, to
        // assigned investigators).
        for (verb, extra, project) in [
            ("accept", None, "p-site-pages"),
            ("assign", Some(format!("dr.{prefix}")), "p-site-pages"),
            ("accept", None, "celecoxib-trial"),
            ("assign", Some(format!("dr.{prefix}")), "celecoxib-trial"),
        ] {
            let steward = format!("steward.{prefix}");
            let mut args = vec![
                "site",
                "project",
                verb,
                "--data",
                &data,
                "--user",
                &steward,
                "--project",
                project,
            ];
            if let Some(inv) = &extra {
                args.extend(["--investigator", inv.as_str()]);
            }
            run_ok(&args, &site_pw);
        }
        procs.push(Proc::spawn(
            &format!("{}-serve", h.id),
            &logs,
            &[
                "site",
                "serve",
                "--store",
                &store_s,
                "--data",
                &data,
                "--hub",
                &hub_url,
                "--insecure-http",
                "--wait-secs",
                "2",
            ],
        ));
        let mut ui = Proc::spawn(
            &format!("{}-ui", h.id),
            &logs,
            &[
                "site",
                "ui",
                "--store",
                &store_s,
                "--data",
                &data,
                "--listen",
                &h.ui.to_string(),
                "--insecure-http",
            ],
        );
        wait_ready(&mut ui, h.ui, "/login");
        procs.push(ui);
    }

    // QIAO_E2E_FLOW: another copy of the script (while developing it).
    // A cohort count (auto at both sites: each records the definition for pre-screening),
    // then a demographics breakdown (manual by default: it waits in both approval queues).
    let definition = Path::new(GIBLEED_COHORT3);
    let def_s = definition.to_str().expect("utf-8 path");
    let out = run_ok(
        &[
            "query",
            "--hub",
            &hub_url,
            "--token",
            &sponsor_token,
            "--project",
            "p-site-pages",
            "--wait",
            "60",
            "--json",
            def_s,
        ],
        &[],
    );
    let answer: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("qiao query --json: {e}: {out}"));
    assert_eq!(
        answer["sites"].as_array().map(Vec::len),
        Some(2),
        "both sites answered: {answer}"
    );
    let mut demographics = qiao()
        .args([
            "query",
            "--hub",
            &hub_url,
            "--token",
            &sponsor_token,
            "--project",
            "p-site-pages",
        ])
        .args([
            "--type",
            "demographics",
            "--age-band-years",
            "10",
            "--wait",
            "1",
            def_s,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("qiao query --type demographics");
    let _ = demographics.wait();
    for h in &hospitals {
        let queue = h.data.join("approvals");
        let start = Instant::now();
        while std::fs::read_dir(&queue).map_or(0, |d| d.count()) == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{}: the demographics job never reached the approval queue",
                h.id
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    let flow = std::env::var_os("QIAO_E2E_FLOW")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../portal/e2e/flow.mjs"));
    assert!(flow.is_file(), "{} is missing", flow.display());
    let started = Instant::now();
    let mut node = Command::new("node")
        .arg(&flow)
        .env("QIAO_CHROMIUM", &chromium)
        .env("QIAO_E2E_NODE_MODULES", &node_modules)
        .env("QIAO_E2E_SCREENSHOTS", &screenshots)
        .env("QIAO_E2E_HUB", &hub_url)
        .env("QIAO_E2E_SITE_A", format!("http://{}", hospitals[0].ui))
        .env("QIAO_E2E_SITE_B", format!("http://{}", hospitals[1].ui))
        .env("QIAO_E2E_PASSWORD", PASSWORD)
        .env("QIAO_E2E_PROFILE", root.join("chromium-profile"))
        .env(
            "QIAO_E2E_CATALOGS",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/i18n"),
        )
        .env("QIAO_E2E_PRESCREEN_PERSONS", "266")
        .env("QIAO_E2E_DEFINITION", GIBLEED_COHORT3)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting node (run `bash scripts/test.sh`, which checks it is installed)");
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut o) = node.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    if let Some(mut e) = node.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let status = node.wait().expect("waiting for node");
    for p in &mut procs {
        p.check_alive();
    }
    if !status.success() {
        let logs: Vec<(String, String)> = procs
            .iter()
            .map(|p| {
                let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                (p.name.clone(), log)
            })
            .collect();
        panic!(
            "{}",
            journey_failure("flow.mjs", started.elapsed(), &stdout, &stderr, &logs)
        );
    }

    // Every step the flow reports: its name, the screenshot it saved, what it checked.
    let steps: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("flow output {l}: {e}")))
        .collect();
    let names: Vec<&str> = steps.iter().filter_map(|s| s["step"].as_str()).collect();
    eprintln!("{stdout}");
    for s in &steps {
        let shot = s["screenshot"]
            .as_str()
            .unwrap_or_else(|| panic!("{s}: no screenshot"));
        let meta = std::fs::metadata(shot).unwrap_or_else(|e| panic!("{shot}: {e}"));
        assert!(meta.len() > 1000, "{shot} is {} bytes", meta.len());
    }
    for expected in EXPECTED_STEPS {
        assert!(
            names.contains(expected),
            "step {expected} missing from {names:?}"
        );
    }
    assert_bilingual("flow", &steps);
}

/// Issue 17: every page a journey reached by a GET was also shown, and screenshotted, in the
/// other language (`alt`: its own zh-CN check passed in the script); a form's answer (a POST)
/// is shown once. Prints each journey's pages by language and their render times.
fn assert_bilingual(journey: &str, steps: &[serde_json::Value]) {
    let mut both = 0;
    for s in steps {
        let lang = s["lang"].as_str().unwrap_or_default();
        // A step on the hub's JSON API (the health check) has no page language.
        if s["lang"].is_null() && s["url"].as_str().is_some_and(|u| u.contains("/api/")) {
            continue;
        }
        assert!(
            lang == "en" || lang == "zh-CN",
            "{journey} step {}: lang {lang:?}",
            s["step"]
        );
        if let Some(alt) = s["alt"].as_object() {
            let other = alt["lang"].as_str().unwrap_or_default();
            assert!(
                (other == "en" || other == "zh-CN") && other != lang,
                "{journey} step {}: {lang} and {other}",
                s["step"]
            );
            let shot = alt["screenshot"]
                .as_str()
                .expect("the other language's screenshot");
            let len = std::fs::metadata(shot).map_or(0, |m| m.len());
            assert!(len > 1000, "{shot} is {len} bytes");
            both += 1;
        }
        eprintln!(
            "{journey}: {} {lang} {} ms{}",
            s["step"].as_str().unwrap_or_default(),
            s["render_ms"],
            s["alt"]
                .as_object()
                .map(|a| format!(
                    " · {} {} ms",
                    a["lang"].as_str().unwrap_or_default(),
                    a["render_ms"]
                ))
                .unwrap_or_default()
        );
    }
    // Every journey shows most of its pages in both languages (the rest are forms' answers).
    assert!(
        both * 2 >= steps.len(),
        "{journey}: {both} of {} steps in both languages",
        steps.len()
    );
}

/// The steps flow.mjs must report (each with a screenshot).
const EXPECTED_STEPS: &[&str] = &[
    "hub-health",
    "site-a-login-zh",
    "site-a-login-refused",
    "site-a-approvals",
    "site-a-deny-needs-reason",
    "site-a-approved",
    "site-a-policy-rejected",
    "site-a-policy-saved",
    "site-a-audit",
    "site-a-steward-refused",
    "site-a-prescreen-index",
    "site-a-prescreen-list",
    "site-a-prescreen-sorted-filtered-zh",
    "site-a-prescreen-marked-zh",
    "site-b-investigator-of-a-refused",
    "portal-login-zh",
    "portal-apply-rejected-field",
    "portal-applied",
    "portal-dashboard-admin",
    "portal-institution-approved",
    "portal-committee-experts",
    "portal-draft-guidance-zh",
    "portal-project-submitted",
    "portal-reviewer-picker-zh",
    "portal-under-review",
    "portal-reviewed-expert.li",
    "portal-reviewed-expert.wang",
    "portal-score-summary-zh",
    "portal-score-summary-en",
    "portal-approved",
    "portal-definition-diff-zh",
    "portal-feasibility-funnel",
    "portal-sites-invited",
    "portal-site-a-accepted",
    "site-a-prescreen-portal-project",
];

/// `qiao demo` of two 500-person hospitals from GiBleed (and `extra` flags) serving on
/// loopback: the process, its address and the sponsor's printed password.
fn serving_demo(root: &Path, logs: &Path, extra: &[&str]) -> (Proc, SocketAddr, String) {
    let addr = free_addr(1);
    let work = root.join("demo");
    let mut args = vec![
        "demo",
        "--cdm",
        GIBLEED,
        "--work",
        work.to_str().expect("utf-8 path"),
        "--hospitals",
        "2",
        "--persons",
        "500",
        "--listen",
    ];
    let listen = addr.to_string();
    args.push(&listen);
    args.extend_from_slice(extra);
    let mut demo = Proc::spawn("demo", logs, &args);
    // The demo prints its logins once the network serves.
    let start = Instant::now();
    let log = loop {
        demo.check_alive();
        let log = std::fs::read_to_string(&demo.log).unwrap_or_default();
        if log.contains("Press Ctrl-C to stop.") {
            break log;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the demo did not start:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let password = log
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("sponsor")).then(|| w.next().map(str::to_owned))?
        })
        .unwrap_or_else(|| panic!("no sponsor login in the demo's output:\n{log}"));
    (demo, addr, password)
}

/// What a journey of `crates/portal/e2e/` against `qiao demo` printed: its steps (one JSON
/// line each), its whole output, and the demo's (whose work directory lives as long as this).
struct Journey {
    steps: Vec<serde_json::Value>,
    stdout: String,
    demo_log: String,
    _tmp: tempfile::TempDir,
}

/// Runs the journey `script` of `crates/portal/e2e/` in headless Chromium against a serving
/// `qiao demo` (with `demo_flags`) as its sponsor on the seeded feasibility project, with the
/// extra settings `env`; screenshots under `target/{shots}`. Panics with both outputs if it
/// fails.
fn demo_journey(
    script: &str,
    shots: &str,
    demo_flags: &[&str],
    env: &[(&str, PathBuf)],
) -> Journey {
    let chromium = required_env("QIAO_CHROMIUM");
    let node_modules = required_env("QIAO_E2E_NODE_MODULES");
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let screenshots = target_dir().join(shots);
    let _ = std::fs::remove_dir_all(&screenshots);
    std::fs::create_dir_all(&screenshots).expect("screenshot dir");
    let (mut demo, addr, password) = serving_demo(root, &logs, demo_flags);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();
    let mut node = Command::new("node");
    node.arg(manifest.join("../portal/e2e").join(script))
        .env("QIAO_CHROMIUM", &chromium)
        .env("QIAO_E2E_NODE_MODULES", &node_modules)
        .env("QIAO_E2E_SCREENSHOTS", &screenshots)
        .env("QIAO_E2E_HUB", format!("http://{addr}"))
        .env("QIAO_E2E_SPONSOR", "sponsor")
        .env("QIAO_E2E_SPONSOR_PASSWORD", &password)
        .env("QIAO_E2E_PROJECT", "demo-feasibility")
        .env("QIAO_E2E_PROFILE", root.join("chromium-profile"))
        .env("QIAO_E2E_CATALOGS", manifest.join("../web/i18n"))
        .stdin(Stdio::null());
    for (k, v) in env {
        node.env(k, v);
    }
    let out = node
        .output()
        .expect("starting node (run `bash scripts/test.sh`, which checks it is installed)");
    demo.check_alive();
    let demo_log = std::fs::read_to_string(&demo.log).unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let logs = [("demo".to_owned(), demo_log)];
        panic!(
            "{}",
            journey_failure(script, started.elapsed(), &stdout, &stderr, &logs)
        );
    }
    eprintln!("{stdout}");
    let steps = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{script} output {l}: {e}")))
        .collect();
    Journey {
        steps,
        stdout,
        demo_log,
        _tmp: tmp,
    }
}

/// The feasibility results journey (issue 17, items 2–3; `crates/portal/e2e/results.mjs`)
/// against `qiao demo`: its seeded project in the feasibility stage has been run on both sites
/// (funnels answered, demographics waiting in each site's approval queue). One process, a
/// few seconds.
#[test]
fn portal_results_in_headless_chromium() {
    let journey = demo_journey("results.mjs", "portal-screenshots-results", &[], &[]);
    let steps = &journey.steps;
    let stdout = &journey.stdout;
    assert_bilingual("results", steps);
    for expected in [
        "results-funnel-en",
        "results-phone-en",
        "results-funnel-zh",
        // Issue 15: the analysis result pages launched from the project, in both languages.
        "analysis-char-zh",
        "analysis-inc-zh",
        "analysis-char-en",
        "analysis-inc-en",
    ] {
        let s = steps
            .iter()
            .find(|s| s["step"] == expected)
            .unwrap_or_else(|| panic!("step {expected} missing: {stdout}"));
        let shot = s["screenshot"].as_str().expect("a screenshot");
        let meta = std::fs::metadata(shot).unwrap_or_else(|e| panic!("{shot}: {e}"));
        assert!(meta.len() > 1000, "{shot} is {} bytes", meta.len());
    }
}

/// The people journeys of issue 17 (`crates/portal/e2e/people.mjs`) against a serving
/// `qiao demo`: its printed logins, its portal and the first site's pages.
#[test]
fn people_journeys_in_headless_chromium() {
    let chromium = required_env("QIAO_CHROMIUM");
    let node_modules = required_env("QIAO_E2E_NODE_MODULES");
    let root = tempfile::tempdir().expect("tempdir");
    // Not under portal-screenshots: the other browser test clears that at its start.
    let screenshots = target_dir().join("people-screenshots");
    let _ = std::fs::remove_dir_all(&screenshots);
    std::fs::create_dir_all(&screenshots).expect("screenshot dir");
    let mut child = qiao()
        .args(["demo", "--work"])
        .arg(root.path().join("demo"))
        .env_remove("QIAO_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("qiao demo");
    let stdout = child.stdout.take().expect("stdout");
    let demo = Proc {
        name: "demo".into(),
        child,
        log: root.path().join("demo.log"),
    };
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut lines: Vec<String> = Vec::new();
    while !lines.iter().any(|l| l.contains("Press Ctrl-C to stop")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(e) => panic!("demo not serving ({e}):\n{}", lines.join("\n")),
        }
    }
    let text = lines.join("\n");
    let hub = text
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("hub URL")
        .trim_end_matches(['.', ',', '/'])
        .to_owned();
    let site = lines
        .iter()
        .find_map(|l| l.strip_prefix("Site hospital_1 pages: "))
        .and_then(|l| l.split("/login").next())
        .unwrap_or_else(|| panic!("no site pages line in\n{text}"))
        .to_owned();
    let mut logins = serde_json::Map::new();
    for user in ["admin", "investigator", "steward", "auditor"] {
        let line = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(user))
            .unwrap_or_else(|| panic!("no login for {user} in\n{text}"));
        let pw = line.split_whitespace().nth(1).expect("password");
        logins.insert(user.into(), pw.into());
    }
    let flow = Path::new(env!("CARGO_MANIFEST_DIR")).join("../portal/e2e/people.mjs");
    let out = Command::new("node")
        .arg(&flow)
        .env("QIAO_CHROMIUM", &chromium)
        .env("QIAO_E2E_NODE_MODULES", &node_modules)
        .env("QIAO_E2E_SCREENSHOTS", &screenshots)
        .env("QIAO_E2E_HUB", &hub)
        .env("QIAO_E2E_SITE", &site)
        .env(
            "QIAO_E2E_LOGINS",
            serde_json::Value::Object(logins).to_string(),
        )
        .env("QIAO_E2E_PROFILE", root.path().join("chromium-profile"))
        .env(
            "QIAO_E2E_CATALOGS",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/i18n"),
        )
        .stdin(Stdio::null())
        .output()
        .expect("node (run `bash scripts/test.sh`, which installs it)");
    drop(demo);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "people.mjs failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    let steps: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("step JSON"))
        .collect();
    assert_bilingual("people", &steps);
    let names: Vec<String> = steps
        .iter()
        .map(|v| {
            let shot = v["screenshot"].as_str().expect("screenshot").to_owned();
            let len = std::fs::metadata(&shot).map_or(0, |m| m.len());
            assert!(len > 1000, "{shot} is {len} bytes");
            v["step"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    for expected in [
        "applicant-reference",
        "admin-reads-application-zh",
        "admin-invitation-link-zh",
        "applicant-approved-zh",
        "invitee-signed-in",
        "admin-disabled-user",
        "investigator-open-site",
        "site-alliance-welcome",
        "site-prescreen-via-alliance",
        "site-alliance-replay-refused",
        "site-steward-accounts-zh",
        "auditor-audit-zh",
        "auditor-zone-zh",
        "auditor-audit-zoned-zh",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "step {expected} missing: {names:?}"
        );
    }
}

/// CohortGenerator's cohort 1 (celecoxib): the comparator the survival and regression journey
/// attaches.
const GIBLEED_COHORT1: &str =
    "../../../shared/data/reference/cohortgenerator-eunomia/cohorts/1.json";
/// The GI bleed outcome cohort.
const GI_BLEED: &str = "../analysis/tests/data/gi_bleed.json";

/// What the survival and regression pages must show for the demo's stores, computed in
/// process: the persons followed in the target (the demo's cohort 3) and the comparator
/// (cohort 1) to GI bleed, and the Cox fit of treatment and age stratified by site at each
/// site's threshold.
fn expected_survival_and_cox(stores: &[PathBuf]) -> ([usize; 2], qiao_analysis::regression::Fit) {
    use qiao_analysis::network::regression::{coefficient_names, site_data};
    use qiao_analysis::network::AnalysisError;
    use qiao_analysis::regression::{fit, Model};
    use qiao_analysis::time_to_event::{follow_up, TimeAtRisk};
    use qiao_hub::protocol::{
        Coefficients, JobId, RegressionCovariate, RegressionModel, RegressionRound, RegressionSpec,
    };
    let read = |p: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).expect(p)).expect(p)
    };
    let (target, comparator, outcome) =
        (read(GIBLEED_COHORT3), read(GIBLEED_COHORT1), read(GI_BLEED));
    let tar: TimeAtRisk = "start+0:obs_end".parse().expect("time at risk");
    let round = RegressionRound {
        run_id: JobId::random(),
        round: 0,
        spec: RegressionSpec {
            model: RegressionModel::Cox,
            outcome: outcome.clone(),
            comparator: Some(comparator.clone()),
            covariates: vec![RegressionCovariate::Age],
            tar: "start+0:obs_end".into(),
        },
        coefficients: Coefficients(vec![0.0; 2]),
    };
    let mut followed = [0usize; 2];
    let mut data = Vec::new();
    for path in stores {
        let store = qiao_store::Store::open(path).expect("a demo store");
        let rows = |def: &serde_json::Value| {
            qiao_site::exec::run_definition(&store, def)
                .expect("a cohort")
                .rows
        };
        let outcome_rows = rows(&outcome);
        for (i, def) in [&target, &comparator].into_iter().enumerate() {
            followed[i] += follow_up(&store, &rows(def), &outcome_rows, tar)
                .subjects
                .len();
        }
        let mut engine = |def: &serde_json::Value| {
            qiao_site::exec::run_definition(&store, def)
                .map_err(|e| AnalysisError::Invalid(e.to_string()))
        };
        let threshold = qiao_hub::protocol::Floors::DEFAULT_MIN_CELL_COUNT;
        data.push(
            site_data(&round, &store, &mut engine, &target, threshold)
                .expect("the site's design")
                .0,
        );
    }
    let fit = fit(
        Model::Cox,
        &coefficient_names(&round),
        &mut data.iter().collect::<Vec<_>>(),
    )
    .expect("the Cox fit");
    (followed, fit)
}

/// The survival and regression journey of issue 16 (`crates/portal/e2e/analyses.mjs`) against
/// `qiao demo --exact` (sites releasing exact aggregates: under differential privacy a site
/// refuses regression rounds): the sponsor attaches a comparator and an outcome, launches a
/// Kaplan–Meier analysis and a federated Cox regression from the project page, and reads both
/// result pages in zh-CN and en. The persons at risk at day 0 and the hazard ratio shown equal
/// an in-process computation over the demo's stores (to the displayed precision).
#[test]
fn portal_survival_and_regression_in_headless_chromium() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let journey = demo_journey(
        "analyses.mjs",
        "portal-screenshots-analyses",
        &["--exact"],
        &[
            ("QIAO_E2E_COMPARATOR_DEF", manifest.join(GIBLEED_COHORT1)),
            ("QIAO_E2E_OUTCOME_DEF", manifest.join(GI_BLEED)),
        ],
    );
    let (steps, stdout) = (&journey.steps, &journey.stdout);
    let stores: Vec<PathBuf> = journey
        .demo_log
        .lines()
        .filter(|l| l.contains("enrolled with a one-time token"))
        .filter_map(|l| l.split("serving ").nth(1))
        .map(|p| PathBuf::from(p.trim()))
        .collect();
    assert_eq!(
        stores.len(),
        2,
        "the demo's stores in its output:\n{}",
        journey.demo_log
    );
    let step = |name: &str| -> &serde_json::Value {
        let s = steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("step {name} missing: {stdout}"));
        let shot = s["screenshot"].as_str().expect("a screenshot");
        let meta = std::fs::metadata(shot).unwrap_or_else(|e| panic!("{shot}: {e}"));
        assert!(meta.len() > 1000, "{shot} is {} bytes", meta.len());
        s
    };
    step("regression-refused-zh");
    let (followed, fit) = expected_survival_and_cox(&stores);
    assert!(
        fit.converged && followed[0] > 10 && followed[1] > followed[0],
        "{followed:?} {fit:?}"
    );
    let treatment = &fit.coefficients[0];
    let hr = format!(
        "{:.3} ({:.3}–{:.3})",
        treatment.ratio, treatment.ratio_lower, treatment.ratio_upper
    );
    for lang in ["zh", "en"] {
        // The number at risk at day 0 of each arm: the persons followed (exact release).
        let km = step(&format!("survival-{lang}"));
        for (arm, want) in followed.iter().enumerate() {
            let shown = km["at_risk"][arm][0]
                .as_str()
                .unwrap_or_default()
                .replace(',', "");
            assert_eq!(
                shown.parse::<usize>().ok(),
                Some(*want),
                "{lang} arm {arm}: {km}"
            );
        }
        // The treatment's hazard ratio with its interval, as the in-process fit gives it.
        let reg = step(&format!("regression-{lang}"));
        let row = &reg["coefficients"][0];
        let shown = row[row.as_array().map_or(0, Vec::len).saturating_sub(1)]
            .as_str()
            .unwrap_or_default()
            .replace('（', " (")
            .replace('）', ")");
        assert_eq!(shown, hr, "{lang}: {reg}");
    }
}

/// Why a journey failed, reason first: what the script said on stderr (the step, the error,
/// the page's text), the steps it had passed (by name), then the last lines of each server's
/// log. CI shows the beginning and the end of a long failure, so the reason must not sit
/// behind the steps' full JSON.
fn journey_failure(
    script: &str,
    elapsed: Duration,
    stdout: &str,
    stderr: &str,
    logs: &[(String, String)],
) -> String {
    let passed: Vec<String> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|s| s["step"].as_str().map(str::to_owned))
        .collect();
    let mut out = format!(
        "{script} failed after {elapsed:?}\nstderr:\n{stderr}\nsteps passed ({}): {}\n",
        passed.len(),
        passed.join(", ")
    );
    for (name, log) in logs {
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(40)..];
        out += &format!(
            "--- {name} (last {} lines) ---\n{}\n",
            tail.len(),
            tail.join("\n")
        );
    }
    out
}
