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
        .find(|s| s["name"] == "dom/condition_occurrence/start")
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
        err.contains("corrupt store: section dom/condition_occurrence/start checksum mismatch")
            && err.contains("g.qiao"),
        "{err}"
    );
}
