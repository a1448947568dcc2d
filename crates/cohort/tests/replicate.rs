//! GiBleed×K oracle: `qiao_synth::replicate` writes K exact copies of GiBleed (ids offset, dates
//! unchanged), so every Circe count — entries, subjects, inclusion rule persons and gains, the mask
//! histogram, base and final counts, censoring losses — must be exactly K times the K=1 count.
//! Both stores go through the real pipeline: CSV folder → `qiao_ingest::ingest` → store file →
//! `Store::open`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use qiao_cohort::exec::{CohortStats, Counter, Prepared};
use qiao_store::Store;

const DATA: &str = "../../../shared/data";
const K: u64 = 3;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(DATA).join(rel)
}

fn ingest(cdm: &Path, out: &Path) -> Store {
    qiao_ingest::ingest(
        &qiao_ingest::Source::CsvDir(cdm.to_path_buf()),
        out,
        qiao_ingest::Options::default(),
    )
    .unwrap_or_else(|e| panic!("ingest {}: {e}", cdm.display()));
    Store::open(out).expect("open store")
}

/// Every count a run produces, by name (rows sorted, so the K=1 and K=3 lists line up).
fn counts(entries: u64, subjects: u64, s: &CohortStats) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    m.insert("entries".to_string(), entries);
    m.insert("subjects".to_string(), subjects);
    for (mode, ms) in s.modes.iter().enumerate() {
        for (i, r) in ms.rules.iter().enumerate() {
            m.insert(format!("mode{mode}.rule{i}.person_count"), r.person_count);
            m.insert(format!("mode{mode}.rule{i}.gain_count"), r.gain_count);
            m.insert(format!("mode{mode}.rule{i}.person_total"), r.person_total);
        }
        for (mask, n) in &ms.masks {
            m.insert(format!("mode{mode}.mask{mask}"), *n);
        }
        m.insert(format!("mode{mode}.base_count"), ms.base_count);
        m.insert(format!("mode{mode}.final_count"), ms.final_count);
    }
    if let Some(lost) = s.censor_lost {
        m.insert("censor_lost".to_string(), lost);
    }
    m
}

fn run(store: &Store, json: &str) -> BTreeMap<String, u64> {
    let def = qiao_cohort::parse(json).unwrap();
    let p = Prepared::new(&def, store).unwrap();
    let mut c = Counter::default();
    let stats = p.run(store, &mut c).unwrap();
    assert_eq!((c.entries, c.subjects), (stats.entries, stats.subjects));
    counts(c.entries, c.subjects, &stats)
}

/// The definitions: the 4 CohortGenerator reference cohorts and every phenotypes-dev cohort that is
/// not empty on GiBleed (by duckcdm's counts).
fn definitions() -> Vec<(String, String)> {
    let mut defs = Vec::new();
    for id in 1..=4 {
        let p = data(&format!(
            "reference/cohortgenerator-eunomia/cohorts/{id}.json"
        ));
        defs.push((format!("cohortgenerator/{id}"), read(&p)));
    }
    let tsv = read(&data("phenotypes-dev/duckcdm_on_gibleed.tsv"));
    for line in tsv.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f[1] != "0" {
            let p = data(&format!("phenotypes-dev/cohorts/{}.json", f[0]));
            defs.push((format!("phenotypes-dev/{}", f[0]), read(&p)));
        }
    }
    defs
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn gibleed_times_3_scales_every_count_by_3() {
    let tmp = tempfile::tempdir().unwrap();
    let x3 = tmp.path().join("gibleed_x3");
    let summary = qiao_synth::replicate(&data("eunomia-gibleed-5.3"), K as u32, &x3).unwrap();
    assert_eq!(summary.copies, K as u32);
    let one = ingest(&data("eunomia-gibleed-5.3"), &tmp.path().join("x1.qiao"));
    let three = ingest(&x3, &tmp.path().join("x3.qiao"));
    assert_eq!(three.persons().len() as u64, K * one.persons().len() as u64);

    let defs = definitions();
    assert_eq!(
        defs.len(),
        4 + 16,
        "4 reference cohorts + 16 non-empty phenotypes"
    );
    let mut bad = Vec::new();
    let mut checked = 0;
    for (name, json) in &defs {
        let a = run(&one, json);
        let b = run(&three, json);
        assert!(a["entries"] > 0, "{name}: empty on GiBleed");
        let want: BTreeMap<String, u64> = a.iter().map(|(k, v)| (k.clone(), v * K)).collect();
        if b != want {
            let diff: Vec<String> = want
                .keys()
                .chain(b.keys())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .filter(|k| want.get(*k) != b.get(*k))
                .map(|k| format!("{k}: x1 {:?}, x{K} {:?}", a.get(k), b.get(k)))
                .collect();
            bad.push(format!("{name}: {}", diff.join("; ")));
        }
        checked += a.len();
    }
    eprintln!(
        "GiBleed x{K}: {} definitions, {checked} counts, {} scale exactly",
        defs.len(),
        defs.len() - bad.len()
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
