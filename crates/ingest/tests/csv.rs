//! CSV ingest: the bundled OMOP test data, every kind of bad input, and a property test that no
//! input makes the reader panic.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use qiao_ingest::{ingest, read_table, IngestError, Options, ProblemKind, ReadOptions, Source};
use qiao_store::Store;

const SHARED: &str = "../../../shared/data";

fn rowcounts(dir: &Path) -> BTreeMap<String, u64> {
    fs::read_to_string(dir.join("ROWCOUNTS.tsv"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (t, n) = l.split_once('\t')?;
            Some((t.to_ascii_lowercase(), n.trim().parse().ok()?))
        })
        .collect()
}

fn check_against_rowcounts(name: &str, opts: Options) -> Store {
    let dir = PathBuf::from(SHARED).join(name);
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("s.qiao");
    let report = ingest(&Source::CsvDir(dir.clone()), &path, opts).unwrap();
    let store = Store::open(&path).unwrap();
    let expected = rowcounts(&dir);
    for (table, meta) in &store.meta().tables {
        assert_eq!(Some(&meta.rows), expected.get(table), "{name}: {table}");
        assert_eq!(report.tables[table].rows_read, meta.rows, "{name}: {table}");
    }
    assert_eq!(report.problems(), 0, "{name}: no row is skipped");
    store
}

#[test]
fn gibleed_row_counts_and_orphans() {
    let store = check_against_rowcounts("eunomia-gibleed-5.3", Options::default());
    let m = store.meta();
    assert_eq!(m.persons, 2694);
    assert_eq!(m.tables["observation_period"].orphans, 2649);
    assert_eq!(m.tables["observation_period"].rows, 5343);
    assert_eq!(m.person_universe, 2694 + 2649);
    assert_eq!(m.tables["drug_exposure"].rows, 67707);
    // Duplicate primary keys are real in GiBleed: kept (as Circe counts them) and flagged.
    let report: qiao_ingest::IngestReport =
        serde_json::from_value(m.ingest_report.clone()).unwrap();
    assert_eq!(
        report.tables["drug_exposure"].flagged[&ProblemKind::DuplicateKey],
        4384
    );
    assert_eq!(m.first_date.as_deref(), Some("1908-09-22"));
    assert_eq!(m.last_date.as_deref(), Some("2019-07-03"));
    // Celecoxib (1118084) drug eras: the CohortGenerator anchor's entry events.
    assert_eq!(
        store
            .domain("drug_era")
            .unwrap()
            .concept_rows(1118084)
            .len(),
        1844
    );
    assert!(store.vocabulary().descendants(1118084).contains(&1118084));
}

#[test]
fn synthea27nj_row_counts() {
    // Its concept_ancestor is empty (header only): without --no-vocabulary that is an error.
    let msg = ingest(
        &Source::CsvDir(PathBuf::from(SHARED).join("synthea27nj-5.4")),
        &tempfile::tempdir().unwrap().path().join("s.qiao"),
        Options::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("concept_ancestor empty"), "{msg}");
    let store = check_against_rowcounts(
        "synthea27nj-5.4",
        Options {
            no_vocabulary: true,
            ..Options::default()
        },
    );
    assert_eq!(store.meta().persons, 28);
    assert_eq!(store.meta().tables["concept_relationship"].rows, 266_588);
}

/// A minimal valid CDM folder; `files` override or add files.
fn cdm(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("person.csv"),
        "person_id,gender_concept_id,year_of_birth,race_concept_id,ethnicity_concept_id\n1,8507,1950,0,0\n2,8532,1960,0,0\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("observation_period.csv"),
        "observation_period_id,person_id,observation_period_start_date,observation_period_end_date,period_type_concept_id\n1,1,2000-01-01,2010-01-01,1\n2,2,2001-01-01,2011-01-01,1\n",
    )
    .unwrap();
    for (name, body) in files {
        fs::write(dir.path().join(name), body).unwrap();
    }
    dir
}

fn run(
    dir: &Path,
    strict: bool,
) -> (
    Result<qiao_ingest::IngestReport, IngestError>,
    PathBuf,
    tempfile::TempDir,
) {
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("s.qiao");
    let r = ingest(
        &Source::CsvDir(dir.to_path_buf()),
        &path,
        Options {
            strict,
            progress: false,
            // The minimal CDM has no vocabulary tables.
            no_vocabulary: true,
            ..Options::default()
        },
    );
    (r, path, out)
}

/// The ingest fails with a message containing every `needle`, and writes nothing at all.
fn fails(dir: &Path, strict: bool, needles: &[&str]) {
    let (r, path, out) = run(dir, strict);
    let msg = r.expect_err("ingest must fail").to_string();
    for n in needles {
        assert!(msg.contains(n), "{msg:?} should contain {n:?}");
    }
    assert!(!path.exists());
    assert_eq!(
        fs::read_dir(out.path()).unwrap().count(),
        0,
        "no temporary file left behind"
    );
}

#[test]
fn structural_problems_always_fail_and_name_the_file_and_column() {
    let d = cdm(&[]);
    fs::remove_file(d.path().join("observation_period.csv")).unwrap();
    fails(d.path(), false, &["observation_period", "not found"]);

    let d = cdm(&[("person.csv", b"")]);
    fails(d.path(), false, &["person.csv", "empty"]);

    let d = cdm(&[(
        "person.csv",
        b"person_id,gender_concept_id,race_concept_id,ethnicity_concept_id\n1,8507,0,0\n",
    )]);
    fails(d.path(), false, &["person.csv", "year_of_birth"]);

    let d = cdm(&[("person.csv", b"person_id;gender_concept_id;year_of_birth;race_concept_id;ethnicity_concept_id\n1;8507;1950;0;0\n")]);
    fails(d.path(), false, &["person.csv", "person_id", "delimited"]);

    let d = cdm(&[("person.csv", b"person_id,person_id,gender_concept_id,year_of_birth,race_concept_id,ethnicity_concept_id\n")]);
    fails(d.path(), false, &["person.csv", "twice"]);

    fails(
        Path::new("/nonexistent/cdm"),
        false,
        &["/nonexistent/cdm", "cannot read"],
    );
}

#[cfg(unix)]
#[test]
fn an_unreadable_file_fails() {
    use std::os::unix::fs::PermissionsExt;
    let d = cdm(&[]);
    let p = d.path().join("person.csv");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read(&p).is_ok() {
        // Running as root: permissions do not stop us; a directory in the file's place does.
        fs::remove_file(&p).unwrap();
        fs::create_dir(&p).unwrap();
    }
    fails(d.path(), false, &["person.csv"]);
}

#[test]
fn a_header_only_file_is_a_valid_empty_table() {
    let d = cdm(&[("death.csv", b"person_id,death_date,death_type_concept_id\n")]);
    let (r, path, _o) = run(d.path(), true);
    r.unwrap();
    assert_eq!(Store::open(path).unwrap().meta().tables["death"].rows, 0);
}

/// Bad rows: skipped and reported by default; under --strict the whole ingest fails.
fn bad_row(file: &str, body: &[u8], kind: ProblemKind, line: u64, column: usize) {
    let d = cdm(&[(file, body)]);
    let (r, path, _o) = run(d.path(), false);
    let report = r.unwrap();
    let table = file.trim_end_matches(".csv");
    let t = &report.tables[table];
    assert_eq!(t.skipped.get(&kind), Some(&1), "{file}: {t:?}");
    let p = &t.samples[0];
    assert_eq!((p.kind, p.line, p.column), (kind, line, column), "{p}");
    assert!(
        p.to_string().starts_with(&format!(
            "{}:{line}:{column}:",
            d.path().join(file).display()
        )),
        "{p}"
    );
    assert_eq!(
        Store::open(path).unwrap().meta().tables[table].rows,
        t.rows_read - 1
    );

    let msg = run(d.path(), true).0.expect_err("strict fails").to_string();
    assert!(msg.contains(&format!("{file}:{line}:{column}")), "{msg}");
    fails(d.path(), true, &["--strict"]);
}

const COND_HEADER: &str = "condition_occurrence_id,person_id,condition_concept_id,condition_start_date,condition_end_date,condition_type_concept_id\n";

#[test]
fn impossible_date() {
    let body = format!("{COND_HEADER}1,1,201826,2005-01-01,,32020\n2,1,201826,2020-13-45,,32020\n3,2,201826,2006-01-01,,32020\n");
    bad_row(
        "condition_occurrence.csv",
        body.as_bytes(),
        ProblemKind::Unparseable,
        3,
        4,
    );
}

#[test]
fn non_numeric_id() {
    let body = format!("{COND_HEADER}1,1,201826,2005-01-01,,32020\n2,abc,201826,2005-01-01,,32020\n3,2,201826,2006-01-01,,32020\n");
    bad_row(
        "condition_occurrence.csv",
        body.as_bytes(),
        ProblemKind::Unparseable,
        3,
        2,
    );
}

#[test]
fn non_utf8_bytes() {
    // Bytes that are no text in a concept id: unparseable (in kept text they are decoded and
    // flagged, never dropped: tests/nothing_lost.rs).
    let d_body: Vec<u8> = [COND_HEADER.as_bytes(), b"1,1,201826,2005-01-01,,32020\n2,1,201826,2005-01-01,,\xff\xfe\n3,2,201826,2006-01-01,,32020\n"].concat();
    bad_row(
        "condition_occurrence.csv",
        &d_body,
        ProblemKind::Unparseable,
        3,
        6,
    );
}

#[test]
fn truncated_last_line() {
    let body = format!(
        "{COND_HEADER}1,1,201826,2005-01-01,,32020\n3,2,201826,2006-01-01,,32020\n2,1,2018"
    );
    bad_row(
        "condition_occurrence.csv",
        body.as_bytes(),
        ProblemKind::WrongFieldCount,
        4,
        0,
    );
}

#[test]
fn missing_required_value() {
    let body = format!("{COND_HEADER}1,1,201826,2005-01-01,,32020\n2,1,,2005-01-01,,32020\n3,2,201826,2006-01-01,,32020\n");
    bad_row(
        "condition_occurrence.csv",
        body.as_bytes(),
        ProblemKind::MissingRequired,
        3,
        3,
    );
}

#[test]
fn duplicate_keys_are_kept_flagged_and_fatal_when_strict() {
    let body = format!("{COND_HEADER}1,1,201826,2005-01-01,,32020\n1,2,201826,2006-01-01,,32020\n");
    let d = cdm(&[("condition_occurrence.csv", body.as_bytes())]);
    let (r, path, _o) = run(d.path(), false);
    let t = &r.unwrap().tables["condition_occurrence"];
    assert_eq!(t.flagged[&ProblemKind::DuplicateKey], 1);
    assert_eq!((t.samples[0].line, t.samples[0].column), (3, 1));
    assert_eq!(
        Store::open(path).unwrap().meta().tables["condition_occurrence"].rows,
        2
    );
    fails(
        d.path(),
        true,
        &["condition_occurrence.csv:3:1", "duplicate"],
    );
}

#[test]
fn tsv_upper_case_shuffled_quoted_and_compact_dates_give_the_same_store() {
    let csv = cdm(&[(
        "condition_occurrence.csv",
        format!(
            "{COND_HEADER}1,1,201826,2005-01-01,,32020\n2,2,201826,2006-01-01,2006-02-01,32020\n"
        )
        .as_bytes(),
    )]);
    let tsv = cdm(&[]);
    fs::remove_file(tsv.path().join("person.csv")).unwrap();
    fs::write(
        tsv.path().join("PERSON.tsv"),
        "ETHNICITY_CONCEPT_ID\tRACE_CONCEPT_ID\tYEAR_OF_BIRTH\tGENDER_CONCEPT_ID\tPERSON_ID\tshoe_size\n0\t0\t1950\t8507\t1\t42\n0\t0\t1960\t8532\t2\t40\n",
    )
    .unwrap();
    fs::write(
        tsv.path().join("Condition_Occurrence.CSV"),
        "\"condition_type_concept_id\",condition_start_date,person_id,condition_concept_id,condition_occurrence_id,condition_end_date\n\"32020\",20050101,1,201826,1,\n32020,\"20060101\",2,201826,2,2006-02-01T00:00:00\n",
    )
    .unwrap();
    let (a, pa, _oa) = run(csv.path(), true);
    let (b, pb, _ob) = run(tsv.path(), false);
    a.unwrap();
    let rb = b.unwrap();
    assert!(
        rb.warnings.iter().any(|w| w.contains("shoe_size")),
        "{:?}",
        rb.warnings
    );
    let (sa, sb) = (Store::open(pa).unwrap(), Store::open(pb).unwrap());
    let (ca, cb) = (
        sa.domain("condition_occurrence").unwrap(),
        sb.domain("condition_occurrence").unwrap(),
    );
    assert_eq!(ca.start(), cb.start());
    assert_eq!(ca.end(), cb.end());
    assert_eq!(ca.event_id(), cb.event_id());
    assert_eq!(
        sa.persons().i32_column("year_of_birth"),
        sb.persons().i32_column("year_of_birth")
    );
}

#[test]
fn a_failed_ingest_leaves_the_previous_store_untouched() {
    let good = cdm(&[]);
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("s.qiao");
    let no_vocabulary = || Options {
        no_vocabulary: true,
        ..Options::default()
    };
    ingest(
        &Source::CsvDir(good.path().to_path_buf()),
        &path,
        no_vocabulary(),
    )
    .unwrap();
    let before = fs::read(&path).unwrap();
    let bad = cdm(&[("person.csv", b"")]);
    assert!(ingest(
        &Source::CsvDir(bad.path().to_path_buf()),
        &path,
        no_vocabulary()
    )
    .is_err());
    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!(fs::read_dir(out.path()).unwrap().count(), 1);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha, ..ProptestConfig::default() })]

        /// Arbitrary bytes after a valid header: an error or a report, never a panic, and every
        /// row is either kept or skipped.
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let spec = qiao_cdm::table("condition_occurrence").unwrap();
            let input = [COND_HEADER.as_bytes(), &body].concat();
            if let Ok((table, report)) = read_table(spec, "x.csv", &input[..], &ReadOptions::default(), &mut |_| {}) {
                prop_assert_eq!(table.rows() as u64 + report.rows_skipped(), report.rows_read);
            }
            let _ = read_table(spec, "x.csv", &body[..], &ReadOptions { strict: true, ..ReadOptions::default() }, &mut |_| {});
        }

        /// Well-formed rows all come back with their values.
        #[test]
        fn valid_rows_round_trip(rows in proptest::collection::vec((1i64..1_000_000, 1i64..500, 0i32..2_000_000_000, 0i32..40_000), 0..50)) {
            let mut text = COND_HEADER.to_string();
            for (id, person, concept, day) in &rows {
                text.push_str(&format!("{id},{person},{concept},{},,32020\n", qiao_cdm::date::format(*day)));
            }
            let spec = qiao_cdm::table("condition_occurrence").unwrap();
            let (table, report) = read_table(spec, "x.csv", text.as_bytes(), &ReadOptions::default(), &mut |_| {}).unwrap();
            prop_assert_eq!(report.rows_skipped(), 0);
            let ids = table.column("condition_occurrence_id").unwrap().as_id().unwrap();
            let starts = table.column("condition_start_date").unwrap().as_i32().unwrap();
            for (i, (id, _, _, day)) in rows.iter().enumerate() {
                prop_assert_eq!(ids[i], *id);
                prop_assert_eq!(starts[i], *day);
            }
        }
    }
}
