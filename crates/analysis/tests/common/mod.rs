//! Shared by the analysis tests: GiBleed and synthetic hospitals as stores, cohorts, and the
//! Python references (lifelines, statsmodels, ../shared/oracles) in `QIAO_TEST_VENV`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use qiao_analysis::cohorts::cohort_rows;
use qiao_cohort::CohortRow;
use qiao_store::Store;

/// `../shared/data` seen from the project root.
pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

pub fn oracles(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/oracles")
        .join(rel)
}

/// This crate's test cohorts (`tests/cohorts/NAME.json`) or, for `celecoxib`, the CohortGenerator
/// reference cohort 1.
pub fn cohort_path(name: &str) -> PathBuf {
    match name {
        "celecoxib" => data("reference/cohortgenerator-eunomia/cohorts/1.json"),
        "celecoxib_age40" => data("reference/cohortgenerator-eunomia/cohorts/2.json"),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/cohorts")
            .join(format!("{name}.json")),
    }
}

pub fn cohort(store: &Store, name: &str) -> Vec<CohortRow> {
    let path = cohort_path(name);
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    cohort_rows(store, name, &json).unwrap()
}

pub fn store_of(dir: &Path) -> Store {
    let (tables, _report) = qiao_ingest::read_all(
        &qiao_ingest::Source::CsvDir(dir.to_path_buf()),
        qiao_ingest::Options::default(),
    )
    .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    qiao_store::from_tables(tables).expect("store")
}

/// The Eunomia GiBleed CDM as an in-memory store (built once per test binary).
pub fn gibleed() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| store_of(&data("eunomia-gibleed-5.3")))
}

/// The Python of `QIAO_TEST_VENV`. Missing: a test failure under CI (`CI` set) or with
/// `QIAO_TEST_VENV_REQUIRED=1`, else None after saying the test is skipped.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("QIAO_TEST_VENV") {
        Some(v) if !v.is_empty() => {
            let py = PathBuf::from(v).join("bin/python");
            assert!(
                py.exists(),
                "QIAO_TEST_VENV is set but {} does not exist",
                py.display()
            );
            Some(py)
        }
        _ => {
            let required = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
                || std::env::var_os("QIAO_TEST_VENV_REQUIRED").is_some_and(|v| v == "1");
            assert!(
                !required,
                "QIAO_TEST_VENV is not set: the lifelines/statsmodels references cannot run (scripts/test.sh makes the venv)"
            );
            eprintln!("skipped: set QIAO_TEST_VENV to a Python venv with lifelines and statsmodels (scripts/test.sh does)");
            None
        }
    }
}

/// Runs `python args…`, panicking with its stderr on failure.
pub fn run_python(py: &Path, args: &[&std::ffi::OsStr]) {
    let out = Command::new(py).args(args).output().expect("run python");
    assert!(
        out.status.success(),
        "{} {args:?}: {}\n{}",
        py.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tests/oracle/reference_fits.py` on `request`: lifelines and statsmodels results.
pub fn reference_fits(py: &Path, dir: &Path, request: &serde_json::Value) -> serde_json::Value {
    let req = dir.join("request.json");
    let res = dir.join("result.json");
    std::fs::write(&req, serde_json::to_vec(request).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/reference_fits.py");
    run_python(py, &[script.as_os_str(), req.as_os_str(), res.as_os_str()]);
    serde_json::from_slice(&std::fs::read(&res).unwrap()).unwrap()
}

/// Largest absolute difference seen per quantity, printed at the end of a test (the numbers of
/// the note) and bounded by `tol`.
#[derive(Default)]
pub struct Agreement {
    pub max: std::collections::BTreeMap<String, f64>,
}

impl Agreement {
    pub fn check(&mut self, what: &str, ours: f64, theirs: f64, tol: f64) {
        let d = if ours == theirs {
            0.0
        } else {
            (ours - theirs).abs()
        };
        assert!(
            d <= tol,
            "{what}: ours {ours} vs reference {theirs} (|diff| {d:e} > {tol:e})"
        );
        let m = self
            .max
            .entry(what.split('[').next().unwrap_or(what).to_string())
            .or_insert(0.0);
        *m = m.max(d);
    }

    pub fn print(&self, title: &str) {
        eprintln!("{title}: max |ours - reference|");
        for (k, v) in &self.max {
            eprintln!("  {k:<40} {v:.3e}");
        }
    }
}
