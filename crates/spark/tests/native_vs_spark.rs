//! Native == Spark on a real cluster: the 4 OHDSI CohortGenerator cohorts and PhenotypeLibrary
//! definitions on GiBleed (by default the 16 with a cohort on GiBleed and every eighth of the
//! others; all 110 with `QIAO_TEST_SPARK_PHENOTYPES=all`), run by the native engine over a store ingested from the
//! CSVs and by Spark over the same CSVs loaded as Parquet tables (scripts/spark-test-cluster.sh,
//! schema `gibleed`). Rows, entries, subjects, both modes' inclusion masks and rule statistics,
//! and censor losses must be identical, and so must each person's best-event mask and the
//! subjects' `person` rows (what a site serving through Spark releases on); a definition the Spark
//! compiler does not cover must be refused by name (counted and printed), never answered
//! differently.
//!
//! Needs `QIAO_TEST_SPARK` (the `sc://` URL that `scripts/spark-test-cluster.sh start` prints; set
//! by scripts/test.sh when Java is present). Without it the test is skipped, unless
//! `QIAO_TEST_SPARK_REQUIRED=1`, which makes it fail.

use std::path::{Path, PathBuf};
use std::time::Instant;

use qiao_cohort::exec::{CohortError, CohortRow, CohortStats, Prepared, RowsAndMasks};
use qiao_spark::{sql::Wants, PersonFact, Schemas, SparkCohorts, SparkError};
use qiao_store::Store;

const DATA: &str = "../../../shared/data";

fn data(rel: &str) -> PathBuf {
    PathBuf::from(DATA).join(rel)
}

fn spark_url() -> Option<String> {
    let Ok(url) = std::env::var("QIAO_TEST_SPARK") else {
        if std::env::var("QIAO_TEST_SPARK_REQUIRED").as_deref() == Ok("1") {
            panic!("QIAO_TEST_SPARK_REQUIRED=1 but QIAO_TEST_SPARK is not set");
        }
        eprintln!("skipped: QIAO_TEST_SPARK is not set (scripts/spark-test-cluster.sh start)");
        return None;
    };
    Some(url)
}

fn connect(url: &str) -> SparkCohorts {
    let schemas = Schemas {
        cdm: "gibleed".into(),
        vocab: "gibleed".into(),
    };
    SparkCohorts::connect(url, schemas).expect("connect to Spark")
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

#[derive(Default)]
struct Outcome {
    /// (definition, entries, native ms, Spark ms)
    compared: Vec<(String, u64, f64, f64)>,
    refused: Vec<(String, String)>,
    differ: Vec<String>,
}

/// Runs every definition natively and on Spark, `threads` Spark sessions at a time (Spark
/// interleaves their stages; the results are per definition).
fn compare(url: &str, store: &Store, files: &[PathBuf], threads: usize) -> Outcome {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out = std::sync::Mutex::new(Outcome::default());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let spark = connect(url);
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(f) = files.get(k) else { break };
                    let r = compare_one(&spark, store, f);
                    let mut o = out.lock().unwrap();
                    match r {
                        Ok(Ok(c)) => {
                            eprintln!(
                                "{}: {} entries, native {:.1} ms, Spark {:.0} ms",
                                c.0, c.1, c.2, c.3
                            );
                            o.compared.push(c)
                        }
                        Ok(Err(refused)) => {
                            eprintln!("{}: refused: {}", refused.0, refused.1);
                            o.refused.push(refused)
                        }
                        Err(differ) => {
                            eprintln!("{differ}");
                            o.differ.push(differ)
                        }
                    }
                }
            });
        }
    });
    let mut o = out.into_inner().unwrap();
    o.compared.sort_by(|a, b| a.0.cmp(&b.0));
    o
}

type Compared = (String, u64, f64, f64);

/// The subjects' `person` rows in the store, as [`PersonFact`]s.
fn facts_of(store: &Store, rows: &[CohortRow]) -> Vec<PersonFact> {
    let persons = store.persons();
    let genders = persons.i32_column("gender_concept_id");
    let mut ids: Vec<i64> = rows.iter().map(|r| r.subject_id).collect();
    ids.dedup();
    ids.iter()
        .filter_map(|&id| {
            let idx = persons.index_of(id)?;
            persons.has_row(idx).then(|| PersonFact {
                person_id: id,
                year_of_birth: persons.year_of_birth(idx),
                gender_concept_id: genders
                    .get(idx as usize)
                    .copied()
                    .filter(|&g| g != qiao_cdm::NULL_INT),
            })
        })
        .collect()
}

/// Ok(Ok): equal; Ok(Err): refused by name; Err: a difference or a Spark failure.
#[allow(clippy::type_complexity)]
fn compare_one(
    spark: &SparkCohorts,
    store: &Store,
    f: &Path,
) -> Result<Result<Compared, (String, String)>, String> {
    let name = f.file_name().unwrap().to_string_lossy().to_string();
    let json = std::fs::read_to_string(f).unwrap();
    let def = qiao_cohort::parse(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
    let t = Instant::now();
    let mut sink = RowsAndMasks::default();
    let native = Prepared::new(&def, store).and_then(|p| p.run(store, &mut sink));
    let RowsAndMasks { rows, mut masks } = sink;
    masks.sort_unstable();
    let native_ms = t.elapsed().as_secs_f64() * 1e3;
    let native = match native {
        Ok(s) => s,
        Err(e) => {
            // The native engine refuses it: Spark must refuse it too.
            if spark.run(&def).is_ok() {
                return Err(format!("{name}: native refuses ({e}) but Spark answers"));
            }
            return Ok(Err((name, format!("unsupported (native): {e}"))));
        }
    };
    let t = Instant::now();
    let wants = Wants {
        person_masks: true,
        person_facts: true,
    };
    match spark.run_with(&def, wants) {
        Ok(g) => {
            let (srows, sstats) = (&g.rows, &g.stats);
            let spark_ms = t.elapsed().as_secs_f64() * 1e3;
            let a = summary(&rows, &native);
            let b = summary(srows, sstats);
            if masks != g.person_masks {
                return Err(format!("{name}: per-person best-event masks differ"));
            }
            let facts = facts_of(store, &rows);
            if facts != g.person_facts {
                let first = facts
                    .iter()
                    .zip(&g.person_facts)
                    .position(|(x, y)| x != y)
                    .unwrap_or(facts.len().min(g.person_facts.len()));
                return Err(format!(
                    "{name}: the subjects' person rows differ ({} native, {} Spark; entries {a} vs {b}); \
                     first difference at {first}: native {:?} Spark {:?}",
                    facts.len(),
                    g.person_facts.len(),
                    facts.get(first),
                    g.person_facts.get(first)
                ));
            }
            if a != b || rows != *srows {
                let first = rows
                    .iter()
                    .zip(srows.iter())
                    .position(|(x, y)| x != y)
                    .unwrap_or(rows.len().min(srows.len()));
                return Err(format!(
                    "{name}:\n native {a}\n spark  {b}\n first differing row {first}: native {:?} spark {:?}",
                    rows.get(first),
                    srows.get(first)
                ));
            }
            Ok(Ok((name, native.entries, native_ms, spark_ms)))
        }
        Err(SparkError::Unsupported(u)) => Ok(Err((name, u.to_string()))),
        Err(e) => Err(format!("{name}: Spark failed: {e}")),
    }
}

#[test]
fn cohortgenerator_cohorts_native_equals_spark() {
    let Some(url) = spark_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = gibleed(dir.path());
    let files: Vec<PathBuf> = (1..=4)
        .map(|i| {
            data(&format!(
                "reference/cohortgenerator-eunomia/cohorts/{i}.json"
            ))
        })
        .collect();
    let o = compare(&url, &store, &files, 1);
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

/// The site's time limit on Spark: a run whose token is cancelled while Spark works stops with
/// `CohortError::Cancelled` within seconds — Spark's running operation is interrupted, not run to
/// its end (this definition's run takes ~40 s on the test cluster, its first step alone 8–12 s);
/// only the run's own Connect session is interrupted (this binary's other tests run on the same
/// server meanwhile).
#[test]
fn a_cancelled_run_is_interrupted_on_spark() {
    let Some(url) = spark_url() else { return };
    let spark = connect(&url);
    let json = std::fs::read_to_string(data("phenotypes-dev/cohorts/1073.json")).unwrap();
    let def = qiao_cohort::parse(&json).unwrap();
    let cancel = qiao_cohort::exec::Cancel::new();
    let prepared = Prepared::unresolved(&def)
        .unwrap()
        .with_cancel(cancel.clone());
    let t0 = Instant::now();
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_secs(2));
            cancel.cancel();
        });
        spark.generate_with(&prepared, Wants::default())
    });
    let took = t0.elapsed().as_secs_f64();
    eprintln!("cancelled after 2 s, returned after {took:.1} s");
    assert!(
        matches!(r, Err(SparkError::Cohort(CohortError::Cancelled))),
        "{:?}",
        r.map(|g| g.stats.entries)
    );
    assert!(took < 6.0, "returned {took:.1} s after the start");
    // A token cancelled before the run: nothing is sent.
    let t0 = Instant::now();
    let r = spark.generate_with(&prepared, Wants::default());
    assert!(matches!(r, Err(SparkError::Cohort(CohortError::Cancelled))));
    assert!(t0.elapsed().as_secs_f64() < 1.0);
}

#[test]
fn phenotypes_native_equals_spark() {
    let Some(url) = spark_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = gibleed(dir.path());
    let mut files: Vec<PathBuf> = std::fs::read_dir(data("phenotypes-dev/cohorts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 110);
    // All 110 with QIAO_TEST_SPARK_PHENOTYPES=all; by default (the cluster's share of the test run
    // is kept under 10 minutes on a shared 2-core machine) every definition with a cohort on
    // GiBleed and every eighth of the others, in file order.
    // QIAO_TEST_SPARK_PHENOTYPES=1073,1153 runs those definitions only.
    let only = std::env::var("QIAO_TEST_SPARK_PHENOTYPES").unwrap_or_default();
    if only != "all" && !only.is_empty() {
        let ids: Vec<String> = only
            .split(',')
            .map(|s| format!("{}.json", s.trim()))
            .collect();
        files.retain(|f| ids.iter().any(|id| f.ends_with(id)));
    } else if only != "all" {
        let mut k = 0;
        files.retain(|f| {
            let json = std::fs::read_to_string(f).unwrap();
            let def = qiao_cohort::parse(&json).unwrap();
            let mut n = qiao_cohort::Counter::default();
            let nonempty = Prepared::new(&def, &store)
                .and_then(|p| p.run(&store, &mut n))
                .is_ok_and(|s| s.entries > 0);
            k += 1;
            nonempty || k % 8 == 0
        });
    }
    let o = compare(&url, &store, &files, 4);
    eprintln!(
        "{} compared ({} non-empty), {} refused",
        o.compared.len(),
        o.compared.iter().filter(|c| c.1 > 0).count(),
        o.refused.len()
    );
    // Known limits of the Spark backend, each held to its present failure (a strict expected
    // failure): when one is fixed this test fails until its entry goes. (793's single query used
    // to exhaust the Connect server's driver heap: its steps are materialized one by one now.)
    let known: [(&str, &str); 0] = [];
    let mut differ = Vec::new();
    for d in &o.differ {
        match known.iter().find(|(f, _)| d.starts_with(&format!("{f}:"))) {
            Some((_, why)) => assert!(d.contains(why), "{d}: expected to fail with {why:?}"),
            None => differ.push(d.clone()),
        }
    }
    for (f, why) in known {
        if files.iter().any(|p| p.ends_with(f)) {
            assert!(
                o.differ.iter().any(|d| d.starts_with(&format!("{f}:"))),
                "{f} no longer fails with {why:?}: remove it from the known limits"
            );
            eprintln!("{f}: known limit of the Spark backend ({why})");
        }
    }
    assert!(differ.is_empty(), "native != Spark:\n{}", differ.join("\n"));
    // Every refusal names what is not supported.
    for (name, why) in &o.refused {
        assert!(
            why.contains("not supported") || why.contains("unsupported"),
            "{name}: {why}"
        );
    }
    // Every definition the native engine runs is compiled to Spark (none refused by Spark).
    assert!(
        o.refused
            .iter()
            .all(|(_, why)| why.starts_with("unsupported (native)")),
        "refused by the Spark compiler: {:?}",
        o.refused
    );
}
