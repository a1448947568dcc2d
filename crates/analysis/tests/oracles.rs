//! Differential tests against the real OHDSI code (`../shared/oracles`: FeatureExtraction 3.14 and
//! CohortIncidence 4.1.1 run through their Java and SQL on DuckDB) on Eunomia GiBleed, for the
//! CohortGenerator cohorts and a dozen PhenotypeLibrary cohorts; and the exact intervals against
//! scipy.
//!
//! Needs `QIAO_TEST_VENV` (duckdb, duckcdm, scipy) and `java` (scripts/test.sh provides both).
//! Without them the tests skip, except in CI (`CI=true`) or with `QIAO_TEST_VENV_REQUIRED=1`,
//! where they fail.

#[path = "../../cohort/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use qiao_analysis::characterization::{self, Characterization, Settings, PRESPEC};
use qiao_analysis::cohorts::cohort_rows;
use qiao_analysis::incidence::{self, Cohorts, Design};
use qiao_store::Store;
use serde_json::Value;

const CG: &str = "reference/cohortgenerator-eunomia/cohorts";
const PHENOTYPES: &str = "phenotypes-dev/cohorts";
/// PhenotypeLibrary cohorts with entries on GiBleed (of `duckcdm_on_gibleed.tsv`).
const PHENOTYPE_IDS: [i64; 14] = [
    23, 33, 373, 383, 453, 513, 523, 533, 543, 553, 1153, 1183, 1203, 1263,
];

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("QIAO_TEST_VENV_REQUIRED").is_ok_and(|v| v == "1")
}

/// The venv's Python with Java on PATH, or None (skipped) when not required.
fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("QIAO_TEST_VENV").filter(|v| !v.is_empty());
    let java = Command::new(std::env::var_os("JAVA").unwrap_or("java".into()))
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    match venv {
        Some(v) if java => {
            let py = PathBuf::from(v).join("bin/python");
            assert!(py.exists(), "QIAO_TEST_VENV is set but {} does not exist", py.display());
            Some(py)
        }
        _ if required() => panic!(
            "the OHDSI oracle tests need QIAO_TEST_VENV (venv: {}) and java (found: {java}); CI must not skip them",
            venv.is_some()
        ),
        _ => {
            eprintln!("skipped: set QIAO_TEST_VENV (duckdb, duckcdm, scipy) and put java on PATH (scripts/test.sh does)");
            None
        }
    }
}

fn oracles() -> PathBuf {
    common::data("../oracles")
}

fn work_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("analysis-oracles");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(py: &Path, args: &[String]) -> String {
    let out = Command::new(py)
        .args(args)
        .output()
        .expect("run the oracle");
    assert!(
        out.status.success(),
        "{} failed:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// GiBleed as a DuckDB CDM (built once per test binary).
fn gibleed_duckdb(py: &Path) -> &'static PathBuf {
    static DB: OnceLock<PathBuf> = OnceLock::new();
    DB.get_or_init(|| {
        let db = work_dir().join("gibleed.duckdb");
        let _ = std::fs::remove_file(&db);
        run(
            py,
            &[
                oracles()
                    .join("build_gibleed_duckdb.py")
                    .display()
                    .to_string(),
                common::data("eunomia-gibleed-5.3").display().to_string(),
                db.display().to_string(),
            ],
        );
        db
    })
}

/// A CDM as both sides read it: Qiao's store and the oracle's DuckDB file of the same CSVs.
#[derive(Clone, Copy)]
struct Cdm {
    store: &'static Store,
    duckdb: &'static PathBuf,
}

fn gibleed(py: &Path) -> Cdm {
    Cdm {
        store: common::gibleed(),
        duckdb: gibleed_duckdb(py),
    }
}

/// GiBleed with measurement and observation values and units, care sites, visit details and
/// ICD10 codes mapped to its conditions (`tests/oracle/values_cdm.py`; GiBleed has none of them, so
/// FE's analyses 12, 705–708, 809–812 and 926 would be empty there).
fn values_cdm(py: &Path) -> Cdm {
    static CDM: OnceLock<(Store, PathBuf)> = OnceLock::new();
    let (store, duckdb) = CDM.get_or_init(|| {
        let dir = work_dir().join("values-cdm");
        let _ = std::fs::remove_dir_all(&dir);
        run(
            py,
            &[
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/oracle/values_cdm.py")
                    .display()
                    .to_string(),
                common::data("eunomia-gibleed-5.3").display().to_string(),
                dir.display().to_string(),
            ],
        );
        let db = work_dir().join("values-cdm.duckdb");
        let _ = std::fs::remove_file(&db);
        run(
            py,
            &[
                oracles()
                    .join("build_gibleed_duckdb.py")
                    .display()
                    .to_string(),
                dir.display().to_string(),
                db.display().to_string(),
            ],
        );
        let (tables, _report) = qiao_ingest::read_all(
            &qiao_ingest::Source::CsvDir(dir),
            qiao_ingest::Options::default(),
        )
        .expect("read the values CDM");
        (
            qiao_store::from_tables(tables).expect("the values CDM's store"),
            db,
        )
    });
    Cdm { store, duckdb }
}

fn cohort_path(id: i64) -> PathBuf {
    if (1..=4).contains(&id) {
        common::data(CG).join(format!("{id}.json"))
    } else if id == 100 {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gi_bleed.json")
    } else {
        common::data(PHENOTYPES).join(format!("{id}.json"))
    }
}

fn rows_of(store: &Store, id: i64) -> Vec<qiao_cohort::CohortRow> {
    let p = cohort_path(id);
    cohort_rows(store, &p.display().to_string(), &common::read(&p)).unwrap()
}

fn tsv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = common::read(path);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            header
                .iter()
                .map(|h| h.to_string())
                .zip(l.split('\t').map(str::to_string))
                .collect()
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// What [`compare_fe`] compared.
struct Compared {
    binary: usize,
    continuous: usize,
    /// Covariates (binary and continuous, all cohorts) compared per analysis.
    per_analysis: BTreeMap<u32, usize>,
}

/// Runs fe_oracle.py for `cohorts` on `cdm` and compares every covariate with Qiao's.
fn compare_fe(
    py: &Path,
    cdm: Cdm,
    cohorts: &[i64],
    analysis_ids: Option<&[u32]>,
    out: &str,
) -> Compared {
    let store = cdm.store;
    let dir = work_dir().join(out);
    let _ = std::fs::remove_dir_all(&dir);
    let mut args = vec![
        oracles().join("fe_oracle.py").display().to_string(),
        "--db".into(),
        cdm.duckdb.display().to_string(),
        "--cohort-ids".into(),
        cohorts
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(","),
        "--out-dir".into(),
        dir.display().to_string(),
    ];
    for &c in cohorts {
        args.push("--cohort-json".into());
        args.push(format!("{c}={}", cohort_path(c).display()));
    }
    if let Some(ids) = analysis_ids {
        args.push("--analysis-ids".into());
        args.push(ids.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
    }
    run(py, &args);
    let mut settings = Settings::default();
    if let Some(ids) = analysis_ids {
        settings.analysis_ids = ids.to_vec();
    }
    let mine: HashMap<i64, Characterization> = cohorts
        .iter()
        .map(|&c| {
            (
                c,
                characterization::characterize(store, &rows_of(store, c), &settings).unwrap(),
            )
        })
        .collect();
    let mut problems = Vec::new();
    // Population sizes.
    for r in tsv(&dir.join("cohort_counts.tsv")) {
        let c: i64 = r["cohort_definition_id"].parse().unwrap();
        let n: u64 = r["population_size"].parse().unwrap();
        if mine[&c].population.entries != n {
            problems.push(format!(
                "cohort {c}: population {n} vs {}",
                mine[&c].population.entries
            ));
        }
    }
    // Binary covariates: the same ids, sums and means.
    let mut oracle_binary: HashMap<(i64, i64), (u64, f64)> = HashMap::new();
    for r in tsv(&dir.join("covariates.tsv")) {
        oracle_binary.insert(
            (
                r["cohort_definition_id"].parse().unwrap(),
                r["covariate_id"].parse().unwrap(),
            ),
            (
                r["sum_value"].parse().unwrap(),
                r["average_value"].parse().unwrap(),
            ),
        );
    }
    let mut binary = 0;
    let mut per_analysis: BTreeMap<u32, usize> = BTreeMap::new();
    for (&c, ch) in &mine {
        for b in &ch.binary {
            binary += 1;
            *per_analysis.entry(b.analysis_id).or_default() += 1;
            match oracle_binary.remove(&(c, b.covariate_id)) {
                None => problems.push(format!(
                    "cohort {c}: covariate {} ({}) not in FE",
                    b.covariate_id, b.name
                )),
                Some((sum, mean)) => {
                    if sum != b.sum || !close(mean, b.mean) {
                        problems.push(format!(
                            "cohort {c}: covariate {}: FE {sum} {mean}, Qiao {} {}",
                            b.covariate_id, b.sum, b.mean
                        ));
                    }
                }
            }
        }
    }
    for ((c, id), _) in oracle_binary {
        problems.push(format!("cohort {c}: FE covariate {id} missing in Qiao"));
    }
    // Continuous covariates: every statistic. (FE's CHA2DS2-VASc quantiles are taken over the
    // score counts of every cohort of a run — a CROSS JOIN in Chads2Vasc.sql —, so they are
    // compared in single-cohort runs only, where they are FE's per-cohort quantiles.)
    let single = cohorts.len() == 1;
    let mut continuous = 0;
    let mut seen = 0;
    for r in tsv(&dir.join("covariates_continuous.tsv")) {
        seen += 1;
        let c: i64 = r["cohort_definition_id"].parse().unwrap();
        let id: i64 = r["covariate_id"].parse().unwrap();
        let Some(m) = mine[&c].continuous.iter().find(|x| x.covariate_id == id) else {
            problems.push(format!("cohort {c}: FE continuous {id} missing in Qiao"));
            continue;
        };
        continuous += 1;
        *per_analysis.entry(m.analysis_id).or_default() += 1;
        let s = m.stats;
        let mut stats = vec![
            ("count_value", s.count as f64),
            ("min_value", s.min),
            ("max_value", s.max),
            ("average_value", s.mean),
            ("standard_deviation", s.sd),
        ];
        if id != 1904 || single {
            stats.extend([
                ("median_value", s.median),
                ("p10_value", s.p10),
                ("p25_value", s.p25),
                ("p75_value", s.p75),
                ("p90_value", s.p90),
            ]);
        }
        for (col, v) in stats {
            // SQL's NULL (STDEV of one value) is NaN here.
            let fe: f64 = if r[col].is_empty() {
                f64::NAN
            } else {
                r[col].parse().unwrap()
            };
            if !(close(fe, v) || fe.is_nan() && v.is_nan()) {
                problems.push(format!(
                    "cohort {c}: continuous {id} {col}: FE {fe}, Qiao {v}"
                ));
            }
        }
    }
    let mine_continuous: usize = mine.values().map(|c| c.continuous.len()).sum();
    if mine_continuous != seen {
        problems.push(format!(
            "continuous covariates: FE {seen}, Qiao {mine_continuous}"
        ));
    }
    assert!(
        problems.is_empty(),
        "{} differences from FeatureExtraction:\n{}",
        problems.len(),
        problems.join("\n")
    );
    Compared {
        binary,
        continuous,
        per_analysis,
    }
}

#[test]
fn characterization_equals_feature_extraction_default_set() {
    let Some(py) = python() else { return };
    let mut cohorts = vec![1, 2, 3, 4];
    cohorts.extend(PHENOTYPE_IDS);
    let Compared {
        binary: b,
        continuous: c,
        ..
    } = compare_fe(&py, gibleed(&py), &cohorts, None, "fe_default");
    eprintln!(
        "FE default set, {} cohorts: {b} binary and {c} continuous covariates identical",
        cohorts.len()
    );
    assert!(b > 3000, "{b} binary covariates compared");
}

#[test]
fn characterization_equals_feature_extraction_every_analysis() {
    let Some(py) = python() else { return };
    let ids: Vec<u32> = PRESPEC.iter().map(|a| a.id).collect();
    assert_eq!(ids.len(), 118, "every analysis of PrespecAnalyses.csv");
    for cohort in [1, 1263] {
        let Compared {
            binary: b,
            continuous: c,
            per_analysis,
        } = compare_fe(
            &py,
            gibleed(&py),
            &[cohort],
            Some(&ids),
            &format!("fe_all_{cohort}"),
        );
        eprintln!("FE analyses {ids:?}, cohort {cohort}: {b} binary and {c} continuous covariates identical");
        assert!(b > 100, "{b}");
        assert!(per_analysis.len() > 60, "{per_analysis:?}");
    }
}

/// The analyses GiBleed has no facts for (care site, values as number, HFRS), on GiBleed with
/// those facts added ([`values_cdm`]), with every other analysis: each covariate identical.
#[test]
fn characterization_equals_feature_extraction_with_values_care_sites_and_icd10() {
    let Some(py) = python() else { return };
    let ids: Vec<u32> = PRESPEC.iter().map(|a| a.id).collect();
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    for cohort in [1, 1263] {
        let Compared {
            binary: b,
            continuous: c,
            per_analysis,
        } = compare_fe(
            &py,
            values_cdm(&py),
            &[cohort],
            Some(&ids),
            &format!("fe_values_{cohort}"),
        );
        eprintln!("FE analyses (values CDM), cohort {cohort}: {b} binary and {c} continuous covariates identical; per analysis {per_analysis:?}");
        for (a, n) in per_analysis {
            *seen.entry(a).or_default() += n;
        }
    }
    // 811 and 812 (observation values 180 and 30 days before index) are compared too, but
    // GiBleed's 1,477 observations leave none in those windows for these cohorts, in FE as here.
    for a in [12, 705, 706, 707, 708, 809, 810, 926] {
        assert!(
            seen.get(&a).is_some_and(|&n| n > 0),
            "analysis {a}: no covariate compared ({seen:?})"
        );
    }
}

/// Runs `design` with ci_oracle.py and Qiao and compares every incidence_summary row.
fn compare_ci(
    py: &Path,
    design_file: &str,
    cohort_ids: &[i64],
    out: &str,
) -> Vec<incidence::SummaryRow> {
    let store = common::gibleed();
    let design_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(design_file);
    let dir = work_dir().join(out);
    let _ = std::fs::remove_dir_all(&dir);
    let mut args = vec![
        oracles().join("ci_oracle.py").display().to_string(),
        "run".into(),
        "--db".into(),
        gibleed_duckdb(py).display().to_string(),
        "--design".into(),
        design_path.display().to_string(),
        "--out-dir".into(),
        dir.display().to_string(),
    ];
    for &c in cohort_ids {
        args.push("--cohort-json".into());
        args.push(format!("{c}={}", cohort_path(c).display()));
    }
    run(py, &args);
    let design = Design::parse(design_file, &common::read(&design_path)).unwrap();
    let cohorts: Cohorts = cohort_ids.iter().map(|&c| (c, rows_of(store, c))).collect();
    let rows = incidence::run(store, &design, &cohorts, "").unwrap();
    let key =
        |t: i64, tar: i64, sg: i64, o: i64, a: Option<i64>, g: Option<i64>, y: Option<i64>| {
            (t, tar, sg, o, a, g, y)
        };
    let mine: HashMap<_, &incidence::SummaryRow> = rows
        .iter()
        .map(|r| {
            (
                key(
                    r.target_cohort_definition_id,
                    r.tar_id,
                    r.subgroup_id,
                    r.outcome_id,
                    r.age_group_id,
                    r.gender_id,
                    r.start_year.map(i64::from),
                ),
                r,
            )
        })
        .collect();
    let oracle = tsv(&dir.join("incidence_summary.tsv"));
    let int = |s: &str| s.parse::<f64>().unwrap() as i64;
    let opt = |s: &str| (!s.is_empty()).then(|| int(s));
    let mut problems = Vec::new();
    for o in &oracle {
        let k = key(
            int(&o["target_cohort_definition_id"]),
            int(&o["tar_id"]),
            int(&o["subgroup_id"]),
            int(&o["outcome_id"]),
            opt(&o["age_group_id"]),
            opt(&o["gender_id"]),
            opt(&o["start_year"]),
        );
        let Some(m) = mine.get(&k) else {
            problems.push(format!("{k:?}: Qiao has no row"));
            continue;
        };
        let v = serde_json::to_value(m).unwrap();
        for col in [
            "persons_at_risk_pe",
            "persons_at_risk",
            "person_days_pe",
            "person_days",
            "person_outcomes_pe",
            "person_outcomes",
            "outcomes_pe",
            "outcomes",
        ] {
            if int(&o[col.to_string().as_str()]) != v[col].as_i64().unwrap() {
                problems.push(format!("{k:?} {col}: CI {}, Qiao {}", o[col], v[col]));
            }
        }
        for col in ["incidence_proportion_p100p", "incidence_rate_p100py"] {
            let ok = match (o[col].as_str(), v[col].as_f64()) {
                ("", None) => true,
                (s, Some(x)) if !s.is_empty() => close(s.parse().unwrap(), x),
                _ => false,
            };
            if !ok {
                problems.push(format!("{k:?} {col}: CI {:?}, Qiao {}", o[col], v[col]));
            }
        }
        if o["gender_name"].as_str() != m.gender_name.as_deref().unwrap_or("") {
            problems.push(format!(
                "{k:?} gender_name: CI {:?}, Qiao {:?}",
                o["gender_name"], m.gender_name
            ));
        }
    }
    if oracle.len() != rows.len() {
        problems.push(format!("rows: CI {}, Qiao {}", oracle.len(), rows.len()));
    }
    assert!(
        problems.is_empty(),
        "{} differences from CohortIncidence:\n{}",
        problems.len(),
        problems.join("\n")
    );
    rows
}

#[test]
fn incidence_equals_cohort_incidence_on_gibleed() {
    let Some(py) = python() else { return };
    // GI bleed after celecoxib: 2 targets, clean window and an exclusion cohort, 3 TARs, all strata.
    let a = compare_ci(&py, "gi_bleed_design.json", &[1, 2, 100, 33], "ci_gi_bleed");
    assert!(a.len() > 1000, "{}", a.len());
    assert!(
        a.iter()
            .any(|r| r.outcomes > 0 && r.outcomes < r.outcomes_pe)
            || a.iter().any(|r| r.person_days < r.person_days_pe)
    );
    // Phenotype cohorts: repeated entries, TARs anchored at the end with negative offsets, a
    // subgroup, a study window and overlapping age break lists.
    let b = compare_ci(
        &py,
        "phenotypes_design.json",
        &[533, 23, 1203, 1263, 453],
        "ci_phenotypes",
    );
    assert!(b
        .iter()
        .any(|r| r.subgroup_id == 1 && r.persons_at_risk > 0));
    eprintln!(
        "CohortIncidence: {} + {} incidence_summary rows identical",
        a.len(),
        b.len()
    );
    // The exact intervals of every row against scipy.
    check_intervals(&py, &a);
}

/// Garwood (chi2) and Clopper–Pearson (binomtest) intervals from scipy, to 1e-9.
fn check_intervals(py: &Path, rows: &[incidence::SummaryRow]) {
    let cases: Vec<Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!([
                r.outcomes,
                r.person_days,
                r.person_outcomes,
                r.persons_at_risk
            ])
        })
        .collect();
    let input = work_dir().join("intervals.json");
    std::fs::write(&input, serde_json::to_string(&cases).unwrap()).unwrap();
    let script = r#"
import json, sys
from scipy.stats import chi2, binomtest
out = []
for k, days, x, n in json.load(open(sys.argv[1])):
    ir = None
    if days > 0:
        t = days / 365.25
        lo = 0.0 if k == 0 else chi2.ppf(0.025, 2 * k) / 2
        hi = chi2.ppf(0.975, 2 * k + 2) / 2
        ir = [100 * lo / t, 100 * hi / t]
    ip = None
    if n > 0:
        ci = binomtest(x, n).proportion_ci(confidence_level=0.95, method='exact')
        ip = [100 * ci.low, 100 * ci.high]
    out.append([ir, ip])
print(json.dumps(out))
"#;
    let out = run(
        py,
        &["-c".into(), script.into(), input.display().to_string()],
    );
    let expected: Vec<Value> = serde_json::from_str(out.trim()).unwrap();
    let mut checked = 0;
    let mut max_rel: f64 = 0.0;
    for (r, e) in rows.iter().zip(&expected) {
        let pairs = [
            (&e[0], r.ir_ci95_low, r.ir_ci95_high),
            (&e[1], r.ip_ci95_low, r.ip_ci95_high),
        ];
        for (want, lo, hi) in pairs {
            match (want.as_array(), lo, hi) {
                (None, None, None) => {}
                (Some(w), Some(lo), Some(hi)) => {
                    for (w, got) in [(w[0].as_f64().unwrap(), lo), (w[1].as_f64().unwrap(), hi)] {
                        let rel = (w - got).abs() / w.abs().max(1e-300);
                        max_rel = max_rel.max(if w == got { 0.0 } else { rel });
                        assert!(w == got || rel < 1e-9, "{r:?}: scipy {w}, Qiao {got}");
                        checked += 1;
                    }
                }
                other => panic!("{r:?}: scipy {want}, Qiao {other:?}"),
            }
        }
    }
    assert!(checked > 1000, "{checked}");
    eprintln!("intervals: {checked} bounds equal scipy's (max relative difference {max_rel:e})");
}

/// The exact intervals at network scale (up to 10⁹ persons and 5·10⁷ outcomes), where the
/// incomplete gamma and beta functions' prefactors lose precision if computed from ln Γ and
/// their series need more than ten thousand terms: equal to scipy's to 1e-9.
#[test]
fn exact_intervals_equal_scipy_at_network_scale() {
    let Some(py) = python() else { return };
    use qiao_analysis::incidence::intervals::{binomial_proportion_ci, poisson_rate_ci};
    // (outcomes, person-days, persons with an outcome, persons at risk)
    let cases: [(u64, f64, u64, u64); 8] = [
        (0, 3_652.5, 0, 10),
        (3, 1_000.0, 3, 10),
        (12_345, 9.1e7, 500, 100_000),
        (1_000_000, 3.6525e9, 1_000_000, 10_000_000),
        (2_500_000, 7.305e9, 2_400_000, 90_000_000),
        (10_000_000, 1.0e11, 9_000_000, 100_000_000),
        (50_000_000, 3.6525e11, 123_456_789, 1_000_000_000),
        (7, 1.0e12, 999_999_999, 1_000_000_000),
    ];
    let input = work_dir().join("intervals_network_scale.json");
    std::fs::write(&input, serde_json::to_string(&cases).unwrap()).unwrap();
    let script = r#"
import json, sys
from scipy.stats import chi2, binomtest
out = []
for k, days, x, n in json.load(open(sys.argv[1])):
    t = days / 365.25
    lo = 0.0 if k == 0 else chi2.ppf(0.025, 2 * k) / 2
    hi = chi2.ppf(0.975, 2 * k + 2) / 2
    ci = binomtest(x, n).proportion_ci(confidence_level=0.95, method='exact')
    out.append([100 * lo / t, 100 * hi / t, 100 * ci.low, 100 * ci.high])
print(json.dumps(out))
"#;
    let out = run(
        &py,
        &["-c".into(), script.into(), input.display().to_string()],
    );
    let expected: Vec<[f64; 4]> = serde_json::from_str(out.trim()).unwrap();
    for ((k, days, x, n), want) in cases.iter().zip(&expected) {
        let (ir_lo, ir_hi) = poisson_rate_ci(*k, days / 365.25, 100.0).unwrap();
        let (ip_lo, ip_hi) = binomial_proportion_ci(*x, *n, 100.0).unwrap();
        for (w, got) in want.iter().zip([ir_lo, ir_hi, ip_lo, ip_hi]) {
            let rel = (w - got).abs() / w.abs().max(1e-300);
            assert!(
                *w == got || rel < 1e-9,
                "{k} outcomes over {days} days, {x}/{n}: scipy {w}, Qiao {got}"
            );
        }
    }
}
