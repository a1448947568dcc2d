//! End-to-end tests with real processes on loopback: `qiao synth` and `qiao ingest` make three
//! hospitals, `qiao hub serve` and three `qiao site serve` processes form the network (sites
//! enrolled with one-time tokens and the pinned hub key), `qiao query` asks it, and every
//! released number is checked against `qiao cohort run --stats --json` on that site's store,
//! before disclosure control. Also `qiao demo --exit --json`, run from outside the project.
//!
//! Every process is killed when a test ends, also when it fails ([`Procs`]).

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{qiao, run_for, s, Procs, QIAO};
/// The bundled demo definition (CohortGenerator cohort 3: celecoxib, age ≥ 40, male).
const DEFINITION: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/cohorts/celecoxib-age40-male.json"
);
const REFERENCE_DEFINITION: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/reference/cohortgenerator-eunomia/cohorts/3.json"
);

/// What `qiao cohort run --stats --json` says about a store: the true funnel.
#[derive(Debug, Clone)]
struct Truth {
    entries: u64,
    subjects: u64,
    /// (name, Circe's person_count, gain, remaining after rules 1..=i)
    rules: Vec<(String, u64, u64, u64)>,
    final_persons: u64,
}

fn num(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what}: not a count: {v}"))
}

fn truth(store: &Path, definition: &str) -> Truth {
    let out = qiao(&[
        "cohort",
        "run",
        "--stats",
        "--json",
        "--store",
        s(store),
        definition,
    ]);
    let v: Value = serde_json::from_str(out.trim()).expect("cohort run JSON");
    let rules = v["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().expect("rule name").to_owned(),
                num(&r["persons"], "persons"),
                num(&r["gain"], "gain"),
                num(&r["remaining"], "remaining"),
            )
        })
        .collect();
    Truth {
        entries: num(&v["entries"], "entries"),
        subjects: num(&v["subjects"], "subjects"),
        rules,
        final_persons: num(&v["final_persons"], "final_persons"),
    }
}

/// A released number as `qiao query --json` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    Exact(u64),
    Below(u64),
    Obfuscated(u64, u64),
}

fn shown(v: &Value) -> Shown {
    let t = v
        .as_str()
        .unwrap_or_else(|| panic!("not a released value: {v}"));
    if let Some(th) = t.strip_prefix("< ") {
        return Shown::Below(th.parse().unwrap_or_else(|_| panic!("{t:?}")));
    }
    if let Some((a, b)) = t.split_once(" ±") {
        return Shown::Obfuscated(
            a.parse().unwrap_or_else(|_| panic!("{t:?}")),
            b.parse().unwrap_or_else(|_| panic!("{t:?}")),
        );
    }
    Shown::Exact(t.parse().unwrap_or_else(|_| panic!("{t:?}")))
}

/// Every released number of a site with its true value: (label, released, true).
fn pairs(site: &Value, t: &Truth) -> Vec<(String, Shown, u64)> {
    let rules = site["rules"].as_array().expect("site rules");
    assert_eq!(rules.len(), t.rules.len(), "{site}");
    let mut out = vec![
        ("entries".to_owned(), shown(&site["entries"]), t.entries),
        ("subjects".to_owned(), shown(&site["subjects"]), t.subjects),
        (
            "final_persons".to_owned(),
            shown(&site["final_persons"]),
            t.final_persons,
        ),
    ];
    for (r, (name, _person_count, gain, remaining)) in rules.iter().zip(&t.rules) {
        assert_eq!(r["name"].as_str(), Some(name.as_str()));
        out.push((format!("{name} persons"), shown(&r["persons"]), *remaining));
        out.push((format!("{name} gain"), shown(&r["gain"]), *gain));
    }
    out
}

/// Checks one released value against the truth under threshold `threshold` with obfuscation
/// on: below the threshold only "< threshold"; otherwise binned to 5 within ±max_error.
fn check_obfuscated(label: &str, released: Shown, truth: u64, threshold: u64) {
    match released {
        Shown::Below(t) => {
            assert_eq!(t, threshold, "{label}");
            assert!(truth < threshold, "{label}: {truth} released as < {t}");
        }
        Shown::Obfuscated(v, e) => {
            assert!(
                truth >= threshold,
                "{label}: {truth} < {threshold} released as {v}"
            );
            assert_eq!(v % 5, 0, "{label}: {v} not binned to 5");
            assert!(e <= 15, "{label}: max error {e}");
            assert!(
                v.abs_diff(truth) <= e,
                "{label}: released {v} ±{e}, true {truth}"
            );
        }
        Shown::Exact(v) => panic!("{label}: exact {v} released with obfuscation on"),
    }
}

/// Checks one released value against the truth under the DP policy (σ = 6 per unit of
/// sensitivity, threshold `threshold` on the noisy value): a shown value `v ±w` (w = ⌈1.96σ⌉)
/// within 2w (≈ 4σ) of the truth; "< threshold" only for a truth below threshold + 2w.
fn check_dp(label: &str, released: Shown, truth: u64, threshold: u64) {
    match released {
        Shown::Below(t) => {
            assert_eq!(t, threshold, "{label}");
            // 2w of the noise: σ = 60 (w = 118) for clipped entries, σ = 6 (w = 12) otherwise.
            let reach = if label.ends_with("entries") { 236 } else { 24 };
            assert!(
                truth < threshold + reach,
                "{label}: {truth} released as < {t}"
            );
        }
        Shown::Obfuscated(v, w) => {
            assert!(w == 12 || w == 118, "{label}: ±{w} is not σ = 6 or 60");
            assert!(v >= threshold, "{label}: {v} shown below the threshold");
            assert!(
                v.abs_diff(truth) <= 2 * w,
                "{label}: released {v} ±{w}, true {truth}"
            );
        }
        Shown::Exact(v) => panic!("{label}: exact {v} released under DP"),
    }
}

/// A network total as (point, low, high): "N", "N ±W", "N (between L and H)" or "between L and
/// H" (every site below the threshold).
fn point(total: &Value) -> (u64, u64, u64) {
    let t = total.as_str().expect("total text");
    if let Some(range) = t.strip_prefix("between ") {
        let (lo, hi) = range.split_once(" and ").expect("range");
        return (0, lo.parse().expect("low"), hi.parse().expect("high"));
    }
    if let Some((p, w)) = t.split_once(" ±") {
        let (p, w): (u64, u64) = (p.parse().expect("point"), w.parse().expect("width"));
        return (p, p.saturating_sub(w), p + w);
    }
    match t.split_once(" (between ") {
        Some((p, range)) => {
            let range = range.trim_end_matches(')');
            let (lo, hi) = range.split_once(" and ").expect("range");
            (
                p.parse().expect("point"),
                lo.parse().expect("low"),
                hi.parse().expect("high"),
            )
        }
        None => {
            let p = t.parse().unwrap_or_else(|_| panic!("total {t:?}"));
            (p, p, p)
        }
    }
}

/// A hub and three sites as separate processes, on three synthetic hospitals.
struct Network {
    net: support::Network,
    dir: tempfile::TempDir,
    token: String,
    /// (site name, data directory, store)
    sites: Vec<(String, PathBuf, PathBuf)>,
}

impl Network {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_owned();
        let (_, stores) = support::synth_hospitals(&d, 3, 600, 11);
        // No alliance floors: the test checks released values against the truth under
        // site policies below them (threshold 1, SHRINE, exact). Site secrets from a seed: the
        // noise, and so whether a 95% interval holds the truth, is the same every run.
        let net = support::sponsor_network(&d, &stores, Some(29), NO_FLOORS);
        Network {
            token: net.tokens["sponsor"].clone(),
            sites: net
                .sites
                .iter()
                .map(|s| (s.id.to_string(), s.data.clone(), s.store.clone()))
                .collect(),
            net,
            dir,
        }
    }

    fn policy(&self, site: usize, flags: &[&str]) {
        support::policy(&self.net, site, flags);
    }
}

/// `qiao hub serve` flags for a hub without alliance floors.
const NO_FLOORS: &[&str] = &[
    "--floor-min-cell-count",
    "1",
    "--floor-max-rho-per-release",
    "none",
];

impl Network {
    fn query(&self) -> Value {
        let out = qiao(&[
            "query",
            "--hub",
            &self.net.url,
            "--token",
            &self.token,
            "--project",
            "p1",
            "--wait",
            "60",
            "--json",
            DEFINITION,
        ]);
        let v: Value = serde_json::from_str(out.trim()).expect("qiao query --json");
        assert_eq!(v["complete"], true, "{v}");
        v
    }
}

#[test]
fn released_counts_equal_cohort_run_before_disclosure_control() {
    let net = Network::start();
    let truths: Vec<Truth> = net
        .sites
        .iter()
        .map(|(_, _, store)| truth(store, DEFINITION))
        .collect();
    // The hospitals differ (size and case mix) and the definition has two rules.
    for t in &truths {
        assert_eq!(t.rules.len(), 2, "{t:?}");
        assert!(t.final_persons > 0, "{t:?}");
        assert_eq!(t.rules[1].3, t.final_persons, "{t:?}");
        assert_eq!(t.rules[0].1, t.rules[0].3, "rule 1 alone = after rule 1");
    }
    assert!(truths[0].subjects > truths[2].subjects, "{truths:?}");

    // 1. Obfuscation off, threshold 1: every released number is the true one.
    for i in 0..3 {
        net.policy(i, &["--obfuscation", "off", "--min-cell-count", "1"]);
    }
    let v = net.query();
    let sites = v["sites"].as_array().expect("sites");
    assert_eq!(sites.len(), 3);
    let mut sum_entries = 0;
    let mut sum_rule1 = 0;
    for ((name, _, _), t) in net.sites.iter().zip(&truths) {
        let site = sites
            .iter()
            .find(|x| x["site"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} missing in {v}"));
        assert_eq!(site["status"], "done", "{site}");
        for (label, released, true_value) in pairs(site, t) {
            assert_eq!(
                released,
                Shown::Exact(true_value),
                "{name} {label}: released {released:?}, cohort run says {true_value}"
            );
        }
        sum_entries += t.entries;
        sum_rule1 += t.rules[0].3;
    }
    assert_eq!(v["total"]["sites_done"], 3);
    assert_eq!(
        point(&v["total"]["entries"]),
        (sum_entries, sum_entries, sum_entries)
    );
    assert_eq!(
        point(&v["total"]["rules"][0]["persons"]),
        (sum_rule1, sum_rule1, sum_rule1)
    );

    // 2. The default policy (threshold 10, obfuscation on) on two sites, and a threshold just
    //    above the final cohort on the third: "< threshold" exactly for the true counts below
    //    it, binned values within the stated error for the others.
    let high = truths[2].final_persons + 1;
    let thresholds = [10, 10, high];
    for (i, th) in thresholds.iter().enumerate() {
        net.policy(
            i,
            &["--obfuscation", "on", "--min-cell-count", &th.to_string()],
        );
    }
    let v = net.query();
    let mut below = 0;
    let mut obfuscated = 0;
    let mut released_values = Vec::new();
    for (((name, _, _), t), th) in net.sites.iter().zip(&truths).zip(thresholds) {
        let site = site_in(&v, name);
        assert_eq!(site["status"], "done", "{site}");
        for (label, released, true_value) in pairs(site, t) {
            check_obfuscated(&format!("{name} {label}"), released, true_value, th);
            match released {
                Shown::Below(_) => below += 1,
                _ => obfuscated += 1,
            }
            released_values.push(released);
        }
    }
    assert!(
        below >= 1 && obfuscated >= 1,
        "{below} below, {obfuscated} obfuscated"
    );
    // The total adds released values only: the truth is inside its range.
    let sum_final: u64 = truths.iter().map(|t| t.final_persons).sum();
    let (_, lo, hi) = point(&v["total"]["final_persons"]);
    assert!(
        lo <= sum_final && sum_final <= hi,
        "{} vs {sum_final}",
        v["total"]
    );

    // 3. The same question again: the same answers (noise keyed on the person sets).
    let again = net.query();
    let mut released_again = Vec::new();
    for ((name, _, _), t) in net.sites.iter().zip(&truths) {
        let site = site_in(&again, name);
        released_again.extend(pairs(site, t).into_iter().map(|(_, r, _)| r));
    }
    assert_eq!(released_values, released_again);

    // 4. Differential privacy (the default for new sites), threshold 10 on the noisy value:
    //    every number plausible (within its interval), the total's interval holding the truth,
    //    the same question again giving the same answers.
    for i in 0..3 {
        net.policy(i, &["--release", "dp", "--min-cell-count", "10"]);
    }
    let v = net.query();
    let mut released_values = Vec::new();
    for ((name, _, _), t) in net.sites.iter().zip(&truths) {
        let site = site_in(&v, name);
        assert_eq!(site["status"], "done", "{site}");
        for (label, released, true_value) in pairs(site, t) {
            check_dp(&format!("{name} {label}"), released, true_value, 10);
            released_values.push(released);
        }
    }
    let (_, lo, hi) = point(&v["total"]["final_persons"]);
    assert!(
        lo <= sum_final && sum_final <= hi,
        "{} vs {sum_final}",
        v["total"]
    );
    let again = net.query();
    let mut released_again = Vec::new();
    for ((name, _, _), t) in net.sites.iter().zip(&truths) {
        let site = site_in(&again, name);
        released_again.extend(pairs(site, t).into_iter().map(|(_, r, _)| r));
    }
    assert_eq!(released_values, released_again);
    drop(net.net);
    drop(net.dir);
}

#[test]
fn bundled_demo_definition_is_the_reference_cohort_3() {
    let bundled: Value =
        serde_json::from_str(&std::fs::read_to_string(DEFINITION).expect("bundled")).unwrap();
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(REFERENCE_DEFINITION).expect("reference cohort 3"),
    )
    .unwrap();
    assert_eq!(bundled, reference);
}

/// `qiao demo --exit --json` from a directory outside the project (the bundled data is found
/// from the source tree), run twice on the same work directory.
#[test]
fn demo_exit_json_reports_three_sites_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("demo-work");
    // What the first version of the demo left behind (no marker) is cleared too.
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("gibleed.qiao"), b"old demo store").unwrap();
    for run in 0..2 {
        let out = run_for(
            &["demo", "--exit", "--json", "--work", s(&work)],
            Some(dir.path()),
            Duration::from_secs(180),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "run {run}: {stderr}");
        let stdout = String::from_utf8(out.stdout).expect("UTF-8");
        assert_eq!(
            stdout.lines().count(),
            1,
            "stdout: {stdout}\nstderr: {stderr}"
        );
        assert!(stderr.contains("== 4. feasibility query"), "{stderr}");
        let v: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
        let sites = v["sites"].as_array().expect("sites");
        let names: Vec<&str> = sites.iter().filter_map(|s| s["site"].as_str()).collect();
        assert_eq!(names, ["hospital_1", "hospital_2", "hospital_3"], "{v}");
        let mut sum_entries = 0;
        let mut point_entries = 0;
        let mut sizes = Vec::new();
        for site in sites {
            assert_eq!(site["status"], "done", "{site}");
            assert!(site["rules"].is_array(), "{site}");
            let name = site["site"].as_str().unwrap_or_default();
            let store = work.join("stores").join(format!("{name}.qiao"));
            let t = truth(&store, DEFINITION);
            // The demo runs the default policy: differential privacy.
            for (label, released, true_value) in pairs(site, &t) {
                check_dp(&format!("{name} {label}"), released, true_value, 10);
            }
            sum_entries += t.entries;
            sizes.push(t.rules[0].3);
            if let Shown::Obfuscated(p, _) = shown(&site["entries"]) {
                point_entries += p;
            }
        }
        // The hospitals differ in size (largest first).
        assert!(sizes[0] > sizes[1] && sizes[1] > sizes[2], "{sizes:?}");
        let (p, _, hi) = point(&v["total"]["entries"]);
        assert_eq!(p, point_entries, "{}", v["total"]);
        // The printed ±W is a 95% interval: the truth falls outside it one run in twenty. Twice
        // W (about 4σ, as `check_dp`) keeps the check firm without a random failure.
        assert!(
            p.abs_diff(sum_entries) <= 2 * (hi - p),
            "{} vs {sum_entries}",
            v["total"]
        );
        assert_eq!(v["total"]["sites_done"], 3);
        // Re-runs start clean: one job, three enrolled sites.
        let sites_dir: Vec<_> = std::fs::read_dir(work.join("sites"))
            .expect("sites dir")
            .collect();
        assert_eq!(sites_dir.len(), 3);
    }
}

/// `qiao demo` without `--exit`: it keeps serving with the printed logins and `qiao query`
/// command working, and stops cleanly on SIGINT (Ctrl-C).
#[test]
fn demo_serves_until_ctrl_c_with_working_logins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("demo-work");
    let mut child = Command::new(QIAO)
        .args(["demo", "--work", s(&work)])
        .current_dir(dir.path())
        .env_remove("QIAO_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn qiao demo");
    let stdout = child.stdout.take().expect("stdout");
    let pid = child.id().to_string();
    let mut procs = Procs(vec![child]);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lines = Vec::new();
    while !lines
        .iter()
        .any(|l: &String| l.contains("Press Ctrl-C to stop"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(e) => panic!(
                "demo not serving ({e}); printed so far:\n{}",
                lines.join("\n")
            ),
        }
    }
    let text = lines.join("\n");
    let url = text
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no hub URL in\n{text}"))
        .trim_end_matches(['.', ',', '/'])
        .to_owned();
    // Every printed login works.
    let mut logged_in = Vec::new();
    for (user, role) in [
        ("admin", "alliance_admin"),
        ("committee", "committee_member"),
        ("sponsor", "sponsor_researcher"),
        ("steward", "site_data_steward"),
        ("investigator", "site_investigator"),
        ("auditor", "auditor"),
    ] {
        let line = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(user) && l.contains(role))
            .unwrap_or_else(|| panic!("no login line for {user} in\n{text}"));
        let password = line.split_whitespace().nth(1).expect("password");
        let client = qiao_hub::HubClient::new(&url, None).expect("client");
        let session = client
            .login(user, password)
            .unwrap_or_else(|e| panic!("login {user}: {e}"));
        assert_eq!(session.user.role, role_of(role));
        logged_in.push(user);
    }
    assert_eq!(logged_in.len(), 6);
    // The printed `qiao query` command asks the running network again.
    let command = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("qiao query "))
        .unwrap_or_else(|| panic!("no qiao query command in\n{text}"));
    let mut args: Vec<&str> = vec!["query"];
    args.extend(command.split_whitespace());
    args.extend(["--json", "--wait", "60"]);
    let v: Value = serde_json::from_str(qiao(&args).trim()).expect("query JSON");
    assert_eq!(v["complete"], true, "{v}");
    assert_eq!(v["total"]["sites_done"], 3, "{v}");
    // Ctrl-C: the sites and the hub stop, the process exits successfully.
    let status = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let stop_deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(s) = procs.0[0].try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < stop_deadline,
            "demo still running 20 s after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l == "stopping"), "{rest:?}");
}

fn role_of(name: &str) -> qiao_hub::protocol::UserRole {
    serde_json::from_value(Value::String(name.to_owned())).expect("role")
}

/// The demo never clears a directory it did not make.
#[test]
fn demo_refuses_a_work_directory_it_did_not_make() {
    let dir = tempfile::tempdir().expect("tempdir");
    let precious = dir.path().join("precious.txt");
    std::fs::write(&precious, b"keep me").unwrap();
    let out = run_for(
        &["demo", "--exit", "--work", s(dir.path())],
        None,
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("precious.txt") && stderr.contains("did not make"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&precious).unwrap(), b"keep me");
}

/// The `sites[]` entry of `site` in a query's JSON result.
fn site_in<'a>(result: &'a Value, site: &str) -> &'a Value {
    result["sites"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["site"] == site))
        .unwrap_or_else(|| panic!("{site} missing in {result}"))
}
