//! Native == Spark on a real cluster: the 4 OHDSI CohortGenerator cohorts and the 110
//! PhenotypeLibrary definitions on GiBleed, run by the native engine over a store ingested from the
//! CSVs and by Spark over the same CSVs loaded as Parquet tables (scripts/spark-test-cluster.sh,
//! schema `gibleed`). Rows, entries, subjects, both modes' inclusion masks and rule statistics,
//! and censor losses must be identical; a definition the Spark compiler does not cover must be
//! refused by name (counted and printed), never answered differently.
//!
//! Needs `QIAO_TEST_SPARK` (the `sc://` URL that `scripts/spark-test-cluster.sh start` prints; set
//! by scripts/test.sh when Java is present). Without it the test is skipped, unless
//! `QIAO_TEST_SPARK_REQUIRED=1`, which makes it fail.

use std::path::{Path, PathBuf};
use std::time::Instant;

use qiao_cohort::exec::{CohortRow, CohortStats, Prepared};
use qiao_spark::{Schemas, SparkCohorts, SparkError};
use qiao_store::Store;

const DATA: &str = "../../../shared/data";

fn data(rel: &str) -> PathBuf {
    PathBuf::from(DATA).join(rel)
}

fn spark() -> Option<SparkCohorts> {
    let Ok(url) = std::env::var("QIAO_TEST_SPARK") else {
        if std::env::var("QIAO_TEST_SPARK_REQUIRED").as_deref() == Ok("1") {
            panic!("QIAO_TEST_SPARK_REQUIRED=1 but QIAO_TEST_SPARK is not set");
        }
        eprintln!("skipped: QIAO_TEST_SPARK is not set (scripts/spark-test-cluster.sh start)");
        return None;
    };
    let schemas = Schemas {
        cdm: "gibleed".into(),
        vocab: "gibleed".into(),
    };
    Some(SparkCohorts::connect(&url, schemas).expect("connect to Spark"))
}

fn gibleed(dir: &Path) -> Store {
    let out = dir.join("gibleed.qstore");
    qiao_ingest::ingest(
        &qiao_ingest::Source::CsvDir(data("eunomia-gibleed-5.3")),
        &out,
        qiao_ingest::Options::default(),
    )
    .expect("ingest GiBleed");
    Store::open(&out).expect("open store")
}

/// Everything a run reports, comparable.
fn summary(rows: &[CohortRow], s: &CohortStats) -> String {
    format!(
        "entries {} subjects {} censor_lost {:?} rules {:?}\nmodes {:?}\nrows {}",
        s.entries,
        s.subjects,
        s.censor_lost,
        s.rule_names,
        s.modes,
        rows.len()
    )
}

struct Outcome {
    compared: Vec<(String, u64, f64, f64)>,
    refused: Vec<(String, String)>,
    differ: Vec<String>,
}

fn compare(spark: &SparkCohorts, store: &Store, files: &[PathBuf]) -> Outcome {
    let mut out = Outcome {
        compared: Vec::new(),
        refused: Vec::new(),
        differ: Vec::new(),
    };
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let json = std::fs::read_to_string(f).unwrap();
        let def = qiao_cohort::parse(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
        let t = Instant::now();
        let mut rows = Vec::new();
        let native = Prepared::new(&def, store).and_then(|p| p.run(store, &mut rows));
        let native_ms = t.elapsed().as_secs_f64() * 1e3;
        let native = match native {
            Ok(s) => s,
            Err(e) => {
                // The native engine refuses it too: Spark must refuse as well.
                assert!(
                    spark.run(&def).is_err(),
                    "{name}: native refuses ({e}) but Spark answers"
                );
                out.refused.push((name, format!("native: {e}")));
                continue;
            }
        };
        let t = Instant::now();
        match spark.run(&def) {
            Ok((srows, sstats, _)) => {
                let spark_ms = t.elapsed().as_secs_f64() * 1e3;
                let a = summary(&rows, &native);
                let b = summary(&srows, &sstats);
                if a != b || rows != srows {
                    let first = rows
                        .iter()
                        .zip(&srows)
                        .position(|(x, y)| x != y)
                        .unwrap_or(rows.len().min(srows.len()));
                    out.differ.push(format!(
                        "{name}:\n native {a}\n spark  {b}\n first differing row {first}: native {:?} spark {:?}",
                        rows.get(first),
                        srows.get(first)
                    ));
                }
                out.compared
                    .push((name, native.entries, native_ms, spark_ms));
            }
            Err(SparkError::Unsupported(u)) => out.refused.push((name, u.to_string())),
            Err(e) => out.differ.push(format!("{name}: Spark failed: {e}")),
        }
    }
    out
}

fn report(o: &Outcome) {
    for (name, entries, n, s) in &o.compared {
        eprintln!("{name}: {entries} entries, native {n:.1} ms, Spark {s:.0} ms");
    }
    for (name, why) in &o.refused {
        eprintln!("{name}: refused: {why}");
    }
}

#[test]
fn cohortgenerator_cohorts_native_equals_spark() {
    let Some(spark) = spark() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = gibleed(dir.path());
    let files: Vec<PathBuf> = (1..=4)
        .map(|i| {
            data(&format!(
                "reference/cohortgenerator-eunomia/cohorts/{i}.json"
            ))
        })
        .collect();
    let o = compare(&spark, &store, &files);
    report(&o);
    assert!(
        o.differ.is_empty(),
        "native != Spark:\n{}",
        o.differ.join("\n")
    );
    assert!(o.refused.is_empty(), "refused: {:?}", o.refused);
    // The published anchor: 1,800 / 569 / 266 / 1,750 entries (Java Circe via CohortGenerator).
    let entries: Vec<u64> = o.compared.iter().map(|c| c.1).collect();
    assert_eq!(entries, vec![1800, 569, 266, 1750]);
}

#[test]
fn phenotypes_native_equals_spark() {
    let Some(spark) = spark() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = gibleed(dir.path());
    let mut files: Vec<PathBuf> = std::fs::read_dir(data("phenotypes-dev/cohorts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 110);
    let o = compare(&spark, &store, &files);
    report(&o);
    eprintln!(
        "{} compared ({} non-empty), {} refused",
        o.compared.len(),
        o.compared.iter().filter(|c| c.1 > 0).count(),
        o.refused.len()
    );
    assert!(
        o.differ.is_empty(),
        "native != Spark:\n{}",
        o.differ.join("\n")
    );
    // Every refusal names what is not supported.
    for (name, why) in &o.refused {
        assert!(
            why.contains("not supported") || why.contains("unsupported"),
            "{name}: {why}"
        );
    }
    assert!(
        o.compared.len() >= 100,
        "only {} compared",
        o.compared.len()
    );
}
