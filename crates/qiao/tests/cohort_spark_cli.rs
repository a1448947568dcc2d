//! `qiao cohort run --spark` prints and writes exactly what the native run does: the
//! CohortGenerator reference cohorts on GiBleed, natively over a store ingested from the CSVs and
//! on the Spark test cluster over the same CSVs loaded as Parquet (schema `gibleed`).
//!
//! Only with the `spark` feature (`cargo test --release -p qiao --features spark --test
//! cohort_spark_cli`) and `QIAO_TEST_SPARK` (the `sc://` URL that `scripts/spark-test-cluster.sh
//! start` prints); skipped without the URL unless `QIAO_TEST_SPARK_REQUIRED=1`.
#![cfg(feature = "spark")]

mod support;

use support::{qiao, without_millis};

const GIBLEED: &str = "../../../shared/data/eunomia-gibleed-5.3";
const COHORTS: &str = "../../../shared/data/reference/cohortgenerator-eunomia/cohorts";

#[test]
fn cohort_run_on_spark_prints_and_writes_what_the_native_run_does() {
    let Ok(url) = std::env::var("QIAO_TEST_SPARK") else {
        assert!(
            std::env::var("QIAO_TEST_SPARK_REQUIRED").as_deref() != Ok("1"),
            "QIAO_TEST_SPARK_REQUIRED=1 but QIAO_TEST_SPARK is not set"
        );
        eprintln!("skipped: QIAO_TEST_SPARK is not set (scripts/spark-test-cluster.sh start)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("g.qiao");
    let store = store.to_str().unwrap();
    qiao(&["ingest", "--cdm", GIBLEED, "--out", store]);
    let defs: Vec<String> = (1..=4).map(|i| format!("{COHORTS}/{i}.json")).collect();
    let mut outputs = Vec::new();
    for backend in [
        vec!["--store", store],
        vec!["--spark", &url, "--schema", "gibleed"],
    ] {
        let csv = dir.path().join(format!("rows{}.csv", outputs.len()));
        let mut args = vec!["cohort", "run", "--stats", "--json"];
        args.extend(backend);
        args.extend(["--out", csv.to_str().unwrap()]);
        args.extend(defs.iter().map(String::as_str));
        let json = without_millis(&qiao(&args));
        let rows = std::fs::read_to_string(&csv).unwrap();
        outputs.push((json, rows));
    }
    let (native, spark) = (&outputs[0], &outputs[1]);
    let entries: Vec<u64> = spark
        .0
        .iter()
        .map(|v| v["entries"].as_u64().unwrap())
        .collect();
    assert_eq!(entries, [1800, 569, 266, 1750]);
    assert_eq!(native.0, spark.0, "JSON lines");
    assert_eq!(native.1.lines().count(), 1 + 1800 + 569 + 266 + 1750);
    assert_eq!(native.1, spark.1, "cohort rows CSV");
}
