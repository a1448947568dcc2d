//! `qiao ingest` and `qiao stats` as a user runs them: exit codes, messages, the stats JSON contract,
//! and an ingest killed mid-way.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const GIBLEED: &str = "../../../shared/data/eunomia-gibleed-5.3";

fn qiao() -> Command {
    Command::new(env!("CARGO_BIN_EXE_qiao"))
}

/// `qiao ingest` of GiBleed into `store`; its standard output.
fn ingest_gibleed(store: &Path) -> String {
    let out = qiao()
        .args(["ingest", "--cdm", GIBLEED, "--out"])
        .arg(store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn stats_json_is_the_documented_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("g.qiao");
    let text = ingest_gibleed(&store);
    assert!(
        text.contains("observation_period") && text.contains("2649"),
        "{text}"
    );

    let out = qiao()
        .args(["stats", "--json"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["tables", "persons", "first_date", "last_date", "orphans"]
    );
    assert_eq!(v["persons"], 2694);
    assert_eq!(v["tables"]["person"], 2694);
    assert_eq!(v["tables"]["observation_period"], 5343);
    assert_eq!(v["tables"]["condition_occurrence"], 65332);
    assert_eq!(
        v["orphans"],
        serde_json::json!({"observation_period": 2649})
    );
    assert_eq!(v["first_date"], "1908-09-22");
    assert_eq!(v["last_date"], "2019-07-03");

    let out = qiao().arg("stats").arg(&store).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Acetaminophen 325 MG Oral Tablet"),
        "top concepts are named: {text}"
    );
}

#[test]
fn a_structural_error_exits_non_zero_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("person.csv"), "person_id\n1\n").unwrap();
    std::fs::write(dir.path().join("observation_period.csv"), "").unwrap();
    let store = dir.path().join("s.qiao");
    let out = qiao()
        .args(["ingest", "--cdm"])
        .arg(dir.path())
        .arg("--out")
        .arg(&store)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("person.csv") || err.contains("observation_period.csv"),
        "{err}"
    );
    assert!(!store.exists());
}

#[test]
fn a_killed_ingest_leaves_no_store_and_the_next_one_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let cdm = dir.path().join("cdm");
    qiao_synth_replicate(&cdm, 8);
    let store = dir.path().join("s.qiao");
    for delay_ms in [150u64, 600, 1500] {
        let mut child = qiao()
            .args(["ingest", "--cdm"])
            .arg(&cdm)
            .arg("--out")
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        if !finished {
            assert!(
                !store.exists(),
                "killed after {delay_ms} ms: no store may appear"
            );
        }
        let _ = std::fs::remove_file(&store);
    }
    let out = qiao()
        .args(["ingest", "--cdm"])
        .arg(&cdm)
        .arg("--out")
        .arg(&store)
        .output()
        .unwrap();
    assert!(out.status.success());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn qiao_synth_replicate(out: &Path, k: u32) {
    let st = qiao()
        .args([
            "synth",
            "--quiet",
            "--from",
            GIBLEED,
            "--replicate",
            &k.to_string(),
            "--out",
        ])
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success());
}

/// A CDM folder linking GiBleed's files, without the tables named.
fn gibleed_without(dir: &Path, remove: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    let src = std::fs::canonicalize(GIBLEED).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".csv") && !remove.contains(&name.trim_end_matches(".csv")) {
            std::os::unix::fs::symlink(src.join(&name), dir.join(&name)).unwrap();
        }
    }
}

/// (3) Absent optional tables are in the printed summary; (10) no colour codes when stderr is
/// not a terminal (a warning is printed: the misnamed file).
#[test]
fn absent_tables_are_printed_and_warnings_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let cdm = dir.path().join("cdm");
    gibleed_without(&cdm, &["drug_era", "measurement"]);
    std::fs::write(cdm.join("DRUG_ERAS.csv"), "x\n").unwrap();
    let out = qiao()
        .args(["ingest", "--cdm"])
        .arg(&cdm)
        .arg("--out")
        .arg(dir.path().join("s.qiao"))
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    let absent = stdout
        .lines()
        .find(|l| l.starts_with("absent tables:"))
        .unwrap_or_else(|| panic!("no absent tables line: {stdout}"));
    assert!(
        absent.contains("drug_era") && absent.contains("measurement"),
        "{absent}"
    );
    assert!(
        stdout.contains("DRUG_ERAS.csv: not a CDM table, ignored: did you mean drug_era?"),
        "{stdout}"
    );
    assert!(stderr.contains("DRUG_ERAS.csv"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes on a pipe: {stderr:?}"
    );
}

/// (2) No vocabulary: an error unless --no-vocabulary; such a store refuses a cohort definition
/// whose concept set needs descendants, naming it, and runs one that does not.
#[test]
fn no_vocabulary_store_refuses_descendants() {
    let dir = tempfile::tempdir().unwrap();
    let cdm = dir.path().join("cdm");
    gibleed_without(&cdm, &["concept_ancestor"]);
    let store = dir.path().join("s.qiao");
    let ingest = |extra: &[&str]| {
        qiao()
            .args(["ingest", "--cdm"])
            .arg(&cdm)
            .args(extra)
            .arg("--out")
            .arg(&store)
            .output()
            .unwrap()
    };
    let out = ingest(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("concept_ancestor not found") && err.contains("--no-vocabulary"),
        "{err}"
    );
    assert!(!store.exists());
    let out = ingest(&["--no-vocabulary"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("concept_ancestor not found"));

    let plain = Path::new("../../../shared/data/reference/cohortgenerator-eunomia/cohorts/1.json");
    let mut def: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plain).unwrap()).unwrap();
    def["ConceptSets"][0]["expression"]["items"][0]["includeDescendants"] = true.into();
    let with_descendants = dir.path().join("descendants.json");
    std::fs::write(&with_descendants, def.to_string()).unwrap();
    let run = |def: &Path| {
        qiao()
            .args(["cohort", "run", "--json", "--store"])
            .arg(&store)
            .arg(def)
            .output()
            .unwrap()
    };
    let out = run(&with_descendants);
    let err =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains("ConceptSets[0]") && err.contains("Celecoxib") && err.contains("descendants"),
        "{err}"
    );
    let out = run(plain);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1800"));
}

/// (10) An OS error is printed once (not once per wrapping layer).
#[test]
fn an_os_error_is_printed_once() {
    let out = qiao()
        .args([
            "ingest",
            "--cdm",
            GIBLEED,
            "--out",
            "/nonexistent-qiao-dir/s.qiao",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("/nonexistent-qiao-dir"), "{err}");
}

/// (10) A SIGTERM'd ingest removes its temporary file and exits 128 + 15.
#[test]
fn sigterm_removes_the_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let cdm = dir.path().join("cdm");
    qiao_synth_replicate(&cdm, 8);
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let store = out_dir.join("s.qiao");
    let mut child = qiao()
        .args(["ingest", "--cdm"])
        .arg(&cdm)
        .arg("--out")
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let temp_seen = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("tmp"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !temp_seen(&out_dir) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the ingest ended before its temporary file was seen"
        );
        assert!(std::time::Instant::now() < deadline, "no temporary file");
        std::thread::sleep(Duration::from_millis(2));
    }
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.code() == Some(143) || out.status.signal() == Some(15),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn store_verify_reads_every_byte_that_opening_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("g.qiao");
    ingest_gibleed(&store);
    let out = qiao()
        .args(["store", "verify", "--json"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    let bytes = std::fs::read(&store).unwrap();
    assert!(v["sections"].as_u64().unwrap() > 50);
    assert!(v["bytes"].as_u64().unwrap() > bytes.len() as u64 / 2);

    // One flipped byte in the middle of the condition_occurrence start dates.
    let footer = &bytes[bytes.len() - 32..];
    let off = u64::from_le_bytes(footer[0..8].try_into().unwrap()) as usize;
    let len = u64::from_le_bytes(footer[8..16].try_into().unwrap()) as usize;
    let toc: serde_json::Value = serde_json::from_slice(&bytes[off..off + len]).unwrap();
    let s = toc["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "dom/condition_occurrence/start.u16")
        .unwrap();
    let at = (s["offset"].as_u64().unwrap() + s["len"].as_u64().unwrap() / 2) as usize;
    let mut damaged = bytes.clone();
    damaged[at] ^= 0x10;
    std::fs::write(&store, &damaged).unwrap();
    // Opening reads no data, so `stats` still answers; `store verify` finds the damage.
    let out = qiao()
        .args(["stats", "--json"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = qiao()
        .args(["store", "verify"])
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("corrupt store: section dom/condition_occurrence/start.u16 checksum mismatch")
            && err.contains("g.qiao"),
        "{err}"
    );
}
