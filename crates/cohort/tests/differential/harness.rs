//! Running a case on both engines and comparing what they return.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use qiao_cdm::date;
use qiao_cohort::exec::{CohortRow, CohortStats, Prepared};
use qiao_store::Store;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use super::cdm;
use super::common::run_both;
use super::defs;

/// The Python interpreter of `QIAO_TEST_VENV`, or None (after printing why the test is skipped).
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
            eprintln!(
                "skipped: set QIAO_TEST_VENV to a Python venv with duckdb and duckcdm (scripts/test.sh does)"
            );
            None
        }
    }
}

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/duckcdm_run.py")
}

/// One random CDM, its store and the definitions to run on it.
pub struct Case {
    pub seed: u64,
    pub sizes: cdm::Sizes,
    pub dir: PathBuf,
    pub store: Store,
    pub defs: Vec<String>,
}

impl Case {
    pub fn dir_for(name: &str) -> PathBuf {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("differential")
            .join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// CDM `seed` with `n` random definitions (definition `i` drawn from seed `seed * 1000 + i`).
    pub fn generate(seed: u64, n: usize, features: defs::Features) -> Case {
        let dir = Self::dir_for(&format!("cdm_{seed}"));
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sizes = cdm::write_random_cdm(&mut rng, &dir);
        let defs: Vec<String> = (0..n)
            .map(|i| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed * 1000 + i as u64);
                defs::Gen::new(&mut rng, features).definition().to_string()
            })
            .collect();
        Case {
            sizes,
            ..Self::with_defs(seed, dir, defs)
        }
    }

    /// A case from a CDM already written to `dir` and the given definitions.
    pub fn with_defs(seed: u64, dir: PathBuf, defs: Vec<String>) -> Case {
        for (i, d) in defs.iter().enumerate() {
            let v: Value = serde_json::from_str(d).unwrap();
            std::fs::write(
                dir.join(format!("def_{i}.json")),
                serde_json::to_string_pretty(&v).unwrap(),
            )
            .unwrap();
        }
        let store = store_of(&dir);
        Case {
            seed,
            sizes: cdm::Sizes::default(),
            dir,
            store,
            defs,
        }
    }

    pub fn def_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("def_{i}.json"))
    }
}

/// The CSV folder as a store, through the real ingest reader.
pub fn store_of(dir: &Path) -> Store {
    let (tables, report) = qiao_ingest::read_all(
        &qiao_ingest::Source::CsvDir(dir.to_path_buf()),
        qiao_ingest::Options {
            strict: true,
            progress: false,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("ingest {}: {e}", dir.display()));
    let _ = report;
    qiao_store::from_tables(tables).expect("store")
}

/// What one engine produced for one definition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// (subject_id, start, end) sorted.
    pub rows: Vec<(i64, String, String)>,
    /// (mode, rule, person_count, gain_count, person_total).
    pub inclusion_stats: Vec<[u64; 5]>,
    /// (mode, mask, person_count).
    pub inclusion_result: Vec<[u64; 3]>,
    /// (mode, base_count, final_count).
    pub summary: Vec<[u64; 3]>,
    pub censor_lost: Option<u64>,
    pub error: Option<String>,
}

fn u64s<const N: usize>(v: &Value) -> Vec<[u64; N]> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let mut a = [0u64; N];
            for (i, x) in r.as_array().unwrap().iter().enumerate() {
                a[i] = x.as_u64().unwrap();
            }
            a
        })
        .collect()
}

impl Outcome {
    pub fn from_duckcdm(v: &Value) -> Outcome {
        if let Some(e) = v["error"].as_str() {
            return Outcome {
                error: Some(e.to_string()),
                ..Default::default()
            };
        }
        let rows = v["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                (
                    r[0].as_i64().unwrap(),
                    r[1].as_str().unwrap().to_string(),
                    r[2].as_str().unwrap().to_string(),
                )
            })
            .collect();
        Outcome {
            rows,
            inclusion_stats: u64s(&v["inclusion_stats"]),
            inclusion_result: u64s(&v["inclusion_result"]),
            summary: u64s(&v["summary"]),
            censor_lost: v["censor_lost"].as_u64(),
            error: None,
        }
    }

    /// Qiao's rows and statistics in the shape of circe-be's result tables (which hold no
    /// inclusion statistics for a definition without inclusion rules).
    pub fn from_qiao(rows: &[CohortRow], stats: &CohortStats) -> Outcome {
        let mut o = Outcome {
            rows: rows
                .iter()
                .map(|r| (r.subject_id, date::format(r.start), date::format(r.end)))
                .collect(),
            censor_lost: stats.censor_lost,
            ..Default::default()
        };
        o.rows.sort();
        if !stats.rule_names.is_empty() {
            for (mode, m) in stats.modes.iter().enumerate() {
                for (i, r) in m.rules.iter().enumerate() {
                    o.inclusion_stats.push([
                        mode as u64,
                        i as u64,
                        r.person_count,
                        r.gain_count,
                        r.person_total,
                    ]);
                }
                for (mask, n) in &m.masks {
                    o.inclusion_result.push([mode as u64, *mask, *n]);
                }
                o.summary.push([mode as u64, m.base_count, m.final_count]);
            }
        }
        o.inclusion_stats.sort();
        o.inclusion_result.sort();
        o.summary.sort();
        o
    }
}

pub fn run_qiao(store: &Store, json: &str) -> Outcome {
    let result = qiao_cohort::parse(json)
        .map_err(|e| e.to_string())
        .and_then(|def| Prepared::new(&def, store).map_err(|e| e.to_string()))
        .and_then(|p| {
            let (rows, stats) = run_both(&p, store, json).map_err(|e| e.to_string())?;
            Ok(Outcome::from_qiao(&rows, &stats))
        });
    result.unwrap_or_else(|e| Outcome {
        error: Some(e),
        ..Default::default()
    })
}

/// Runs duckcdm on every definition of `case` (one Python process).
pub fn spawn_duckcdm(py: &Path, case: &Case) -> std::process::Child {
    let mut cmd = Command::new(py);
    cmd.arg(script())
        .arg("--tie-break")
        .arg("--rows")
        .arg("--threads")
        .arg("1")
        .arg("--cdm")
        .arg(&case.dir);
    for i in 0..case.defs.len() {
        cmd.arg(case.def_path(i));
    }
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", py.display()))
}

pub fn collect_duckcdm(child: std::process::Child, case: &Case) -> Vec<Outcome> {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "duckcdm_run.py failed on {}: {}\n{stdout}",
        case.dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), case.defs.len(), "{stdout}");
    lines.iter().map(Outcome::from_duckcdm).collect()
}

/// Runs duckcdm on every case, two Python processes at a time.
pub fn run_duckcdm_all(py: &Path, cases: &[Case]) -> Vec<Vec<Outcome>> {
    let mut out = Vec::new();
    for pair in cases.chunks(2) {
        let children: Vec<_> = pair.iter().map(|c| spawn_duckcdm(py, c)).collect();
        for (child, case) in children.into_iter().zip(pair) {
            out.push(collect_duckcdm(child, case));
        }
    }
    out
}

/// None if equal, else a description of the first differences.
pub fn compare(q: &Outcome, r: &Outcome) -> Option<String> {
    if q == r {
        return None;
    }
    let mut d = Vec::new();
    if q.error.is_some() || r.error.is_some() {
        d.push(format!("error: qiao {:?}, duckcdm {:?}", q.error, r.error));
    }
    if q.rows != r.rows {
        let only_q: Vec<_> = q
            .rows
            .iter()
            .filter(|x| !r.rows.contains(x))
            .take(6)
            .collect();
        let only_r: Vec<_> = r
            .rows
            .iter()
            .filter(|x| !q.rows.contains(x))
            .take(6)
            .collect();
        d.push(format!(
            "rows: qiao {} duckcdm {}; only qiao {only_q:?}; only duckcdm {only_r:?}",
            q.rows.len(),
            r.rows.len()
        ));
    }
    if q.inclusion_stats != r.inclusion_stats {
        d.push(format!(
            "inclusion_stats [mode, rule, persons, gain, total]: qiao {:?}, duckcdm {:?}",
            q.inclusion_stats, r.inclusion_stats
        ));
    }
    if q.inclusion_result != r.inclusion_result {
        d.push(format!(
            "inclusion_result [mode, mask, n]: qiao {:?}, duckcdm {:?}",
            q.inclusion_result, r.inclusion_result
        ));
    }
    if q.summary != r.summary {
        d.push(format!(
            "summary [mode, base, final]: qiao {:?}, duckcdm {:?}",
            q.summary, r.summary
        ));
    }
    if q.censor_lost != r.censor_lost {
        d.push(format!(
            "censor_lost: qiao {:?}, duckcdm {:?}",
            q.censor_lost, r.censor_lost
        ));
    }
    Some(d.join("\n  "))
}
