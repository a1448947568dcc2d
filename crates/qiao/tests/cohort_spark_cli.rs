//! `qiao cohort run --spark` prints and writes exactly what the native run does, and a site
//! serving through Spark (`qiao site serve --spark`) releases what a native site does: GiBleed,
//! natively over a store ingested from the CSVs and on the Spark test cluster over the same CSVs
//! loaded as Parquet (schema `gibleed`).
//!
//! Only with the `spark` feature (`cargo test --release -p qiao --features spark --test
//! cohort_spark_cli`; scripts/test.sh runs the workspace's tests with `--features qiao/spark`) and
//! `QIAO_TEST_SPARK` (the `sc://` URL that `scripts/spark-test-cluster.sh start` prints); skipped
//! without the URL unless `QIAO_TEST_SPARK_REQUIRED=1`.
#![cfg(feature = "spark")]

mod support;

use serde_json::Value;
use support::{qiao, run_for, s, without_millis};

const GIBLEED: &str = "../../../shared/data/eunomia-gibleed-5.3";
const COHORTS: &str = "../../../shared/data/reference/cohortgenerator-eunomia/cohorts";

fn spark_url() -> Option<String> {
    let Ok(url) = std::env::var("QIAO_TEST_SPARK") else {
        assert!(
            std::env::var("QIAO_TEST_SPARK_REQUIRED").as_deref() != Ok("1"),
            "QIAO_TEST_SPARK_REQUIRED=1 but QIAO_TEST_SPARK is not set"
        );
        eprintln!("skipped: QIAO_TEST_SPARK is not set (scripts/spark-test-cluster.sh start)");
        return None;
    };
    Some(url)
}

#[test]
fn cohort_run_on_spark_prints_and_writes_what_the_native_run_does() {
    let Some(url) = spark_url() else { return };
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

/// The demo's feasibility queries (the bundled definition: CohortGenerator cohort 3 with its two
/// inclusion rules; a cohort count, then a demographics breakdown) sent by one
/// sponsor through one hub to two sites on GiBleed with the same disclosure secret and policy:
/// one serving its store, one serving through Spark. Every released number (noise included: it
/// is keyed on the secret, the question and each statistic's person set) must be the same.
#[test]
fn a_site_serving_through_spark_releases_what_a_native_site_does() {
    let Some(url) = spark_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = d.join("g.qiao");
    qiao(&["ingest", "--cdm", GIBLEED, "--out", s(&store)]);
    let spec = qiao_testkit::Spec {
        accounts: vec![qiao_testkit::Account {
            id: "sponsor".into(),
            role: qiao_hub::protocol::UserRole::SponsorResearcher,
            password: support::PASSWORD.into(),
            institution: Some("Pharma".into()),
            site: None,
            api_token: true,
        }],
        sites: ["native", "spark"]
            .iter()
            .map(|name| qiao_testkit::SiteSpec {
                id: (*name).into(),
                name: None,
                store: store.clone(),
                data: d.join(format!("site-{name}")),
            })
            .collect(),
        projects: vec![qiao_testkit::ProjectSpec {
            id: "p1".into(),
            title: "p1".into(),
            members: vec!["sponsor".into()],
        }],
        secret_seed: Some(18),
        site_logs: true,
        site_wait_secs: Some(5),
        max_backoff_secs: 1,
        site_sources: vec![(
            "spark".into(),
            ["--spark", url.as_str(), "--schema", "gibleed"]
                .map(String::from)
                .to_vec(),
        )],
        ..Default::default()
    };
    let net =
        qiao_testkit::Network::start(d, &spec, &qiao_testkit::Nodes::Processes(support::cli()))
            .unwrap_or_else(|e| panic!("starting the network: {e:#}"));
    // The same secret (each site reads it for every job).
    std::fs::copy(
        net.sites[0].data.join("secret.key"),
        net.sites[1].data.join("secret.key"),
    )
    .unwrap();
    let definition = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/cohorts/celecoxib-age40-male.json"
    );
    let token = &net.tokens["sponsor"];
    let query = |extra: &[&str]| -> Value {
        let mut args = vec![
            "query",
            "--hub",
            &net.url,
            "--token",
            token,
            "--project",
            "p1",
            // The Spark site's start and runs on a loaded 2-core machine: minutes.
            "--wait",
            "480",
            "--json",
        ];
        args.extend_from_slice(extra);
        args.push(definition);
        // Spark's runs on a loaded 2-core machine take a while: more than `qiao`'s 120 s.
        let out = run_for(&args, None, std::time::Duration::from_secs(600));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("qiao query --json");
        if v["complete"] != true {
            let logs: Vec<String> = net
                .sites
                .iter()
                .filter_map(|s| std::fs::read_to_string(s.log.as_ref()?).ok())
                .collect();
            panic!("{v}\nsite logs:\n{}", logs.join("\n----\n"));
        }
        v
    };
    let released = |v: &Value, site: &str| -> Value {
        let mut r = v["sites"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["site"] == site))
            .unwrap_or_else(|| panic!("{site} missing in {v}"))
            .clone();
        r.as_object_mut().unwrap().remove("site");
        r
    };
    let count = query(&[]);
    let (native, spark) = (released(&count, "native"), released(&count, "spark"));
    eprintln!("cohort count: {native}");
    assert_eq!(native, spark, "cohort count");
    assert_eq!(native["status"], "done", "{native}");
    // Released, with its two rules (not refused or failed).
    assert_eq!(
        native
            .pointer("/rules")
            .and_then(Value::as_array)
            .map(Vec::len),
        Some(2),
        "{native}"
    );
    // The demographics breakdown of the same definition (held for the steward by the default
    // policy: both sites' stewards let it run). The site reads the policy for every job.
    for site in &net.sites {
        qiao(&[
            "site",
            "policy",
            "set",
            "--data",
            s(&site.data),
            "--demographics",
            "auto",
        ]);
    }
    let demographics = query(&["--type", "demographics", "--age-band-years", "10"]);
    let (native, spark) = (
        released(&demographics, "native"),
        released(&demographics, "spark"),
    );
    eprintln!("demographics: {native}");
    assert_eq!(native, spark, "demographics");
    assert_eq!(native["status"], "done", "{native}");
    // Released, with its cells (age band × gender × index year), not refused or failed.
    let cells = native["cells"].as_array().map_or(0, Vec::len);
    assert!(cells > 0, "{native}");
    assert!(native["total"].is_string(), "{native}");
    net.stop().unwrap();
}
