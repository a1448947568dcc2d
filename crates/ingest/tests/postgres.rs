//! PostgreSQL ingest against a real server.
//!
//! These tests run only when `QIAO_TEST_PG` names a database (scripts/test.sh starts a private
//! PostgreSQL 15 with scripts/pg-test-server.sh, loads GiBleed with scripts/pg-load-gibleed.sh and
//! sets it); without it they print a skip note and pass, unless `QIAO_TEST_PG_REQUIRED=1`, which
//! scripts/test.sh also sets so that CI cannot skip them silently.
//!
//! The GiBleed schema (`QIAO_GIBLEED_SCHEMA`, default `gibleed`) must hold the CSV files of
//! `../shared/data/eunomia-gibleed-5.3` (`QIAO_GIBLEED_DIR`): the main test checks that ingesting it
//! gives the same store as ingesting the CSV files. Other fixtures are built by the tests in scratch
//! schemas `qt_<pid>_<name>`, dropped at the end.

use std::path::{Path, PathBuf};
use std::process::Command;

use qiao_cdm::{date, TableKind, TABLES};
use qiao_ingest::{ingest, IngestError, IngestReport, Options, PostgresSource, Source};
use qiao_store::{ColumnRef, Store};

// ---------------------------------------------------------------------------------------------
// Set-up

/// The database URL, or None (after a skip note) when the tests should not run.
fn pg_url(test: &str) -> Option<String> {
    match std::env::var("QIAO_TEST_PG") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let required = std::env::var("QIAO_TEST_PG_REQUIRED").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "QIAO_TEST_PG_REQUIRED=1 but QIAO_TEST_PG is not set: \
                 start the server with scripts/pg-test-server.sh start"
            );
            eprintln!(
                "SKIPPED postgres::{test}: QIAO_TEST_PG is not set. To run the PostgreSQL ingest \
                 tests: scripts/pg-test-server.sh start && scripts/pg-load-gibleed.sh && \
                 eval \"$(scripts/pg-test-server.sh env)\" (or just scripts/test.sh)"
            );
            None
        }
    }
}

macro_rules! require_pg {
    ($test:literal) => {
        match pg_url($test) {
            Some(url) => url,
            None => return,
        }
    };
}

fn gibleed_schema() -> String {
    std::env::var("QIAO_GIBLEED_SCHEMA").unwrap_or_else(|_| "gibleed".into())
}

fn gibleed_dir() -> PathBuf {
    match std::env::var_os("QIAO_GIBLEED_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/eunomia-gibleed-5.3")
        }
    }
}

fn opts() -> Options {
    Options {
        strict: false,
        progress: false,
        ..Options::default()
    }
}

fn pg(url: &str, schema: &str, vocab_schema: Option<&str>) -> Source {
    Source::Postgres(PostgresSource {
        url: url.to_string(),
        schema: schema.to_string(),
        vocab_schema: vocab_schema.map(str::to_string),
        timezone: None,
    })
}

/// Ingests `source` into a fresh temporary directory; returns the store and the report.
fn ingest_to_store(source: &Source, what: &str) -> (Store, IngestReport, tempfile::TempDir) {
    ingest_to_store_with(source, what, opts())
}

fn ingest_to_store_with(
    source: &Source,
    what: &str,
    opts: Options,
) -> (Store, IngestReport, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("store.qiao");
    let report = ingest(source, &out, opts).unwrap_or_else(|e| panic!("{what}: ingest: {e}"));
    let store = Store::open(&out).unwrap_or_else(|e| panic!("{what}: open: {e}"));
    (store, report, dir)
}

/// Runs an ingest that must fail, and checks that it left nothing in the output directory.
fn ingest_fails(source: &Source) -> IngestError {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("store.qiao");
    let err = match ingest(source, &out, opts()) {
        Ok(_) => panic!("ingest succeeded, expected an error"),
        Err(e) => e,
    };
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read temp dir")
        .map(|e| e.expect("dir entry").file_name())
        .collect();
    assert!(
        left.is_empty(),
        "a failed ingest left files behind: {left:?}"
    );
    err
}

/// Scratch schemas for one test, dropped when it ends (also when it fails).
struct Scratch {
    client: postgres::Client,
    schemas: Vec<String>,
}

impl Scratch {
    fn new(url: &str) -> Scratch {
        let client = postgres::Client::connect(url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to QIAO_TEST_PG: {e}"));
        Scratch {
            client,
            schemas: Vec::new(),
        }
    }

    /// A new empty schema `qt_<pid>_<tag>`.
    fn schema(&mut self, tag: &str) -> String {
        let name = format!("qt_{}_{tag}", std::process::id());
        self.exec(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        ));
        self.schemas.push(name.clone());
        name
    }

    fn exec(&mut self, sql: &str) {
        self.client
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {}", db_error(&e)));
    }

    /// Views in `schema` of `tables` of the GiBleed schema.
    fn views_of_gibleed(&mut self, schema: &str, tables: &[&str]) {
        let g = gibleed_schema();
        for t in tables {
            self.exec(&format!(
                "CREATE VIEW {schema}.{t} AS SELECT * FROM {g}.{t}"
            ));
        }
    }

    /// The GiBleed tables that exist (the loader creates one per CDM table GiBleed has).
    fn gibleed_tables(&mut self) -> Vec<String> {
        let rows = self
            .client
            .query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                &[&gibleed_schema()],
            )
            .expect("list gibleed tables");
        let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        assert!(
            names.iter().any(|n| n == "person"),
            "schema {} has no person table: load it with scripts/pg-load-gibleed.sh",
            gibleed_schema()
        );
        names
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for s in &self.schemas {
            let _ = self
                .client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {s} CASCADE"));
        }
    }
}

fn db_error(e: &postgres::Error) -> String {
    std::error::Error::source(e).map_or_else(|| e.to_string(), |s| s.to_string())
}

/// The `qiao` binary beside this test's executable (built by `cargo build -p qiao` with the same
/// profile, as scripts/test.sh does), if there is one.
fn qiao_bin() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("qiao");
    bin.is_file().then_some(bin)
}

// ---------------------------------------------------------------------------------------------
// Store comparison

fn first_diff<T>(a: &[T], b: &[T], same: impl Fn(&T, &T) -> bool) -> Option<usize> {
    if a.len() != b.len() {
        return Some(a.len().min(b.len()));
    }
    a.iter().zip(b).position(|(x, y)| !same(x, y))
}

fn same_slice<T: PartialEq + std::fmt::Debug>(what: &str, a: &[T], b: &[T]) {
    if let Some(i) = first_diff(a, b, |x, y| x == y) {
        panic!(
            "{what}: differ at row {i} of {}/{}: {:?} vs {:?}",
            a.len(),
            b.len(),
            a.get(i),
            b.get(i)
        );
    }
}

/// Bitwise equality of floats, NaN (NULL) equal to NaN.
fn same_f64(x: &f64, y: &f64) -> bool {
    x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
}

fn same_column(what: &str, a: Option<ColumnRef<'_>>, b: Option<ColumnRef<'_>>) {
    match (a, b) {
        (None, None) => {}
        (Some(ColumnRef::Id(x)), Some(ColumnRef::Id(y))) => {
            same_slice(what, &x.to_vec(), &y.to_vec())
        }
        (Some(ColumnRef::I32(x)), Some(ColumnRef::I32(y))) => {
            same_slice(what, &x.to_vec(), &y.to_vec())
        }
        (Some(ColumnRef::Float(x)), Some(ColumnRef::Float(y))) => {
            let (x, y): (Vec<f64>, Vec<f64>) = (x.iter().collect(), y.iter().collect());
            if let Some(i) = first_diff(&x, &y, same_f64) {
                panic!(
                    "{what}: differ at row {i}: {:?} vs {:?}",
                    x.get(i),
                    y.get(i)
                );
            }
        }
        (Some(ColumnRef::Text(x)), Some(ColumnRef::Text(y))) => {
            assert_eq!(x.len(), y.len(), "{what}: lengths");
            for i in 0..x.len() {
                assert_eq!(x.get(i), y.get(i), "{what}: row {i}");
            }
        }
        (a, b) => panic!("{what}: {a:?} vs {b:?}"),
    }
}

/// Asserts that two stores hold the same data: metadata, persons, every domain's core slices,
/// postings and attribute columns, reference tables, vocabulary; then, as a catch-all, that every
/// section of the two files has the same length and checksum.
fn assert_same_store(a: &Store, b: &Store, a_path: &Path, b_path: &Path) {
    let (ma, mb) = (a.meta(), b.meta());
    assert_eq!(ma.persons, mb.persons, "meta.persons");
    assert_eq!(
        ma.person_universe, mb.person_universe,
        "meta.person_universe"
    );
    assert_eq!(ma.first_date, mb.first_date, "meta.first_date");
    assert_eq!(ma.last_date, mb.last_date, "meta.last_date");
    assert_eq!(
        ma.tables.keys().collect::<Vec<_>>(),
        mb.tables.keys().collect::<Vec<_>>(),
        "meta: tables stored"
    );
    for (name, ta) in &ma.tables {
        assert_eq!(ta, &mb.tables[name], "meta.tables[{name}]");
    }

    let (pa, pb) = (a.persons(), b.persons());
    same_slice("person ids", pa.ids(), pb.ids());
    let rows_a: Vec<bool> = (0..pa.len() as u32).map(|i| pa.has_row(i)).collect();
    let rows_b: Vec<bool> = (0..pb.len() as u32).map(|i| pb.has_row(i)).collect();
    same_slice("person has_row", &rows_a, &rows_b);
    for col in qiao_cdm::PERSON.kept_columns() {
        same_column(
            &format!("person.{}", col.name),
            pa.column(col.name),
            pb.column(col.name),
        );
    }

    assert_eq!(a.domain_names(), b.domain_names(), "domains");
    for name in a.domain_names() {
        let (da, db) = (a.domain(&name).unwrap(), b.domain(&name).unwrap());
        same_slice(
            &format!("{name}.person"),
            &da.person().to_vec(),
            &db.person().to_vec(),
        );
        same_slice(
            &format!("{name}.start"),
            &da.start().to_vec(),
            &db.start().to_vec(),
        );
        same_slice(
            &format!("{name}.end"),
            &da.end().to_vec(),
            &db.end().to_vec(),
        );
        same_slice(&format!("{name}.concept"), da.concept(), db.concept());
        same_slice(
            &format!("{name}.event_id"),
            &da.event_id().to_vec(),
            &db.event_id().to_vec(),
        );
        for p in 0..pa.len() as u32 {
            assert_eq!(
                da.person_rows(p),
                db.person_rows(p),
                "{name}: rows of person index {p}"
            );
        }
        let ca: Vec<(i32, u64)> = da.concept_counts().collect();
        let cb: Vec<(i32, u64)> = db.concept_counts().collect();
        same_slice(&format!("{name}: concept counts"), &ca, &cb);
        for (concept, _) in &ca {
            same_slice(
                &format!("{name}: rows of concept {concept}"),
                da.concept_rows(*concept),
                db.concept_rows(*concept),
            );
        }
        for col in da.spec().kept_columns() {
            same_column(
                &format!("{name}.{}", col.name),
                da.column(col.name),
                db.column(col.name),
            );
        }
    }

    for spec in TABLES.iter().filter(|t| t.kind == TableKind::Reference) {
        let (ra, rb) = (a.reference(spec.name), b.reference(spec.name));
        assert_eq!(ra.is_some(), rb.is_some(), "reference table {}", spec.name);
        if let (Some(ra), Some(rb)) = (ra, rb) {
            for col in spec.kept_columns() {
                same_column(
                    &format!("{}.{}", spec.name, col.name),
                    ra.column(col.name),
                    rb.column(col.name),
                );
            }
        }
    }

    // Vocabulary: every concept id any table or the vocabulary mentions.
    let (va, vb) = (a.vocabulary(), b.vocabulary());
    assert_eq!(va.len(), vb.len(), "vocabulary: concepts");
    let mut ids: Vec<i32> = Vec::new();
    for name in a.domain_names() {
        ids.extend(a.domain(&name).unwrap().concept_counts().map(|(c, _)| c));
    }
    ids.extend(section_i32(a_path, "vocab/ancestor/keys"));
    ids.extend(section_i32(a_path, "vocab/ancestor/values"));
    ids.extend(section_i32(a_path, "vocab/mapped_from/keys"));
    ids.extend(section_i32(a_path, "vocab/concept/col/concept_id"));
    ids.sort_unstable();
    ids.dedup();
    assert!(!ids.is_empty(), "no concept ids found to compare");
    for id in ids {
        assert_eq!(va.concept(id), vb.concept(id), "vocabulary: concept {id}");
        assert_eq!(va.is_valid(id), vb.is_valid(id), "vocabulary: valid {id}");
        same_slice(
            &format!("vocabulary: descendants of {id}"),
            va.descendants(id),
            vb.descendants(id),
        );
        same_slice(
            &format!("vocabulary: mapped from {id}"),
            va.mapped_from(id),
            vb.mapped_from(id),
        );
    }

    // Catch-all: the files' sections are byte-identical (by length and CRC-32).
    let (sa, sb) = (sections(a_path), sections(b_path));
    let names_a: Vec<&String> = sa.iter().map(|s| &s.0).collect();
    let names_b: Vec<&String> = sb.iter().map(|s| &s.0).collect();
    assert_eq!(names_a, names_b, "section names");
    for (x, y) in sa.iter().zip(&sb) {
        assert_eq!(x, y, "section {} (name, bytes, crc32)", x.0);
    }
}

/// The table of contents of a store file.
fn toc(path: &Path) -> (Vec<u8>, qiao_store::format::Toc) {
    use qiao_store::format::FOOTER_LEN;
    let bytes = std::fs::read(path).expect("read store");
    let footer = &bytes[bytes.len() - FOOTER_LEN..];
    let off = u64::from_le_bytes(footer[0..8].try_into().unwrap()) as usize;
    let len = u64::from_le_bytes(footer[8..16].try_into().unwrap()) as usize;
    let toc = serde_json::from_slice(&bytes[off..off + len]).expect("parse toc");
    (bytes, toc)
}

/// (name, length, crc32) of every section, sorted by name.
fn sections(path: &Path) -> Vec<(String, u64, u32)> {
    let mut v: Vec<_> = toc(path)
        .1
        .sections
        .into_iter()
        .map(|s| (s.name, s.len, s.crc32))
        .collect();
    v.sort();
    v
}

/// An i32 section's values (empty if the store has no such section).
fn section_i32(path: &Path, name: &str) -> Vec<i32> {
    let (bytes, toc) = toc(path);
    match toc.sections.iter().find(|s| s.name == name) {
        Some(s) => bytes[s.offset as usize..(s.offset + s.len) as usize]
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        None => Vec::new(),
    }
}

/// The parts of two ingest reports that must agree whatever the source (not paths, bytes, timings).
fn assert_same_report(a: &IngestReport, b: &IngestReport) {
    assert_eq!(
        a.tables.keys().collect::<Vec<_>>(),
        b.tables.keys().collect::<Vec<_>>(),
        "report: tables read"
    );
    for (name, ta) in &a.tables {
        let tb = &b.tables[name];
        assert_eq!(ta.rows_read, tb.rows_read, "report {name}: rows_read");
        assert_eq!(ta.rows_kept, tb.rows_kept, "report {name}: rows_kept");
        assert_eq!(ta.skipped, tb.skipped, "report {name}: skipped");
        assert_eq!(ta.flagged, tb.flagged, "report {name}: flagged");
        assert_eq!(
            ta.extra_columns, tb.extra_columns,
            "report {name}: extra columns"
        );
        assert_eq!(
            ta.absent_columns, tb.absent_columns,
            "report {name}: absent columns"
        );
        assert_eq!(ta.orphans, tb.orphans, "report {name}: orphans");
        assert_eq!(
            ta.outside_observation, tb.outside_observation,
            "report {name}: outside observation"
        );
        let key = |p: &qiao_ingest::Problem| {
            (p.kind, p.line, p.column, p.field.clone(), p.detail.clone())
        };
        assert_eq!(
            ta.samples.iter().map(key).collect::<Vec<_>>(),
            tb.samples.iter().map(key).collect::<Vec<_>>(),
            "report {name}: problem samples"
        );
    }
    assert_eq!(a.absent_tables, b.absent_tables, "report: absent tables");
    // Files in the folder that are no CDM table (GiBleed's ROWCOUNTS.tsv) only a folder has.
    let table_warnings = |r: &IngestReport| {
        r.warnings
            .iter()
            .filter(|w| !w.contains("not a CDM table"))
            .count()
    };
    assert_eq!(
        table_warnings(a),
        table_warnings(b),
        "report: warnings {:?} vs {:?}",
        a.warnings,
        b.warnings
    );
}

// ---------------------------------------------------------------------------------------------
// Tests

/// (a) GiBleed from PostgreSQL gives exactly the store that GiBleed from CSV gives.
#[test]
fn gibleed_from_postgres_equals_gibleed_from_csv() {
    let url = require_pg!("gibleed_from_postgres_equals_gibleed_from_csv");
    let csv_dir = gibleed_dir();
    assert!(
        csv_dir.join("person.csv").is_file(),
        "GiBleed CSV not found at {} (set QIAO_GIBLEED_DIR)",
        csv_dir.display()
    );
    Scratch::new(&url).gibleed_tables(); // a clear message if the schema is not loaded

    let (csv, csv_report, csv_dir_out) = ingest_to_store(&Source::CsvDir(csv_dir), "csv");
    let (pgs, pg_report, pg_dir_out) =
        ingest_to_store(&pg(&url, &gibleed_schema(), None), "postgres");

    // The known facts of GiBleed, so that "equal" cannot mean "equally empty".
    let meta = pgs.meta();
    assert_eq!(meta.persons, 2_694);
    assert_eq!(meta.tables["observation_period"].rows, 5_343);
    assert_eq!(meta.tables["observation_period"].orphans, 2_649);
    assert_eq!(meta.tables["condition_occurrence"].rows, 65_332);
    assert_eq!(meta.tables["drug_exposure"].rows, 67_707);
    assert_eq!(meta.tables["measurement"].rows, 44_053);
    assert!(meta.first_date.is_some() && meta.last_date.is_some());
    assert_eq!(pgs.vocabulary().len(), 442);
    assert_eq!(
        pg_report.tables["person"].source,
        format!("postgres:{}.person", gibleed_schema())
    );

    assert_same_report(&csv_report, &pg_report);
    assert_same_store(
        &csv,
        &pgs,
        &csv_dir_out.path().join("store.qiao"),
        &pg_dir_out.path().join("store.qiao"),
    );
}

/// (b) A server that refuses the connection: a Postgres error naming the host, nothing written,
/// and `qiao ingest` exits non-zero.
#[test]
fn refused_connection_names_the_host_and_writes_nothing() {
    let _ = require_pg!("refused_connection_names_the_host_and_writes_nothing");
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("postgres://qiao:sekret@127.0.0.1:{port}/qiao?connect_timeout=5");
    let err = ingest_fails(&pg(&url, "gibleed", None));
    let IngestError::Postgres(msg) = &err else {
        panic!("expected IngestError::Postgres, got {err:?}");
    };
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(msg.contains("cannot connect"), "{msg}");
    assert!(!msg.contains("sekret"), "the password leaked: {msg}");
    assert!(err.to_string().starts_with("postgres: "), "{err}");

    // The other spellings of a connection string keep the password out of messages too.
    for url in [
        format!(
            "host=127.0.0.1 port={port} user=qiao password=sekret dbname=qiao connect_timeout=5"
        ),
        format!("host=127.0.0.1 port={port} user=qiao password='se kret' dbname=qiao"),
        format!("postgres://127.0.0.1:{port}/qiao?user=qiao&password=sekret"),
    ] {
        let msg = ingest_fails(&pg(&url, "gibleed", None)).to_string();
        assert!(msg.contains("127.0.0.1"), "{msg}");
        assert!(
            !msg.contains("sekret") && !msg.contains("kret"),
            "the password leaked: {msg}"
        );
    }

    if let Some(bin) = qiao_bin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.qiao");
        let run = Command::new(bin)
            .args([
                "ingest",
                "--postgres",
                &url,
                "--schema",
                "gibleed",
                "--json",
                "--out",
            ])
            .arg(&out)
            .output()
            .expect("run qiao");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "qiao ingest succeeded: {stderr}");
        assert!(stderr.contains("127.0.0.1"), "{stderr}");
        assert!(!stderr.contains("sekret"), "the password leaked: {stderr}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    } else {
        eprintln!("note: no qiao binary beside the tests; CLI exit status not checked");
    }
}

/// A wrong password: the server's reason, without the password.
#[test]
fn wrong_password_is_reported_without_it() {
    let url = require_pg!("wrong_password_is_reported_without_it");
    let cfg: postgres::Config = url.parse().expect("QIAO_TEST_PG is a connection string");
    let host = match cfg.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => return eprintln!("note: QIAO_TEST_PG is not a TCP address; skipped"),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    let user = cfg.get_user().unwrap_or("postgres");
    let db = cfg.get_dbname().unwrap_or(user);
    let bad = format!("postgres://{user}:not-the-sekret@{host}:{port}/{db}");
    let msg = ingest_fails(&pg(&bad, &gibleed_schema(), None)).to_string();
    assert!(msg.contains("authentication failed"), "{msg}");
    assert!(msg.contains(&host), "{msg}");
    assert!(!msg.contains("sekret"), "the password leaked: {msg}");
}

/// (c) A schema that does not exist: an error naming it, nothing written.
#[test]
fn missing_schema_is_named() {
    let url = require_pg!("missing_schema_is_named");
    let schema = format!("qt_{}_no_such_schema", std::process::id());
    let err = ingest_fails(&pg(&url, &schema, None));
    assert!(matches!(err, IngestError::Postgres(_)), "{err:?}");
    assert!(err.to_string().contains(&schema), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");

    // A missing vocabulary schema too.
    let voc = format!("qt_{}_no_vocab", std::process::id());
    let err = ingest_fails(&pg(&url, &gibleed_schema(), Some(&voc)));
    assert!(err.to_string().contains(&voc), "{err}");
}

/// (d) A schema without a required table (observation_period): an error naming it.
#[test]
fn missing_required_table_is_named() {
    let url = require_pg!("missing_required_table_is_named");
    let mut db = Scratch::new(&url);
    db.gibleed_tables();
    let s = db.schema("no_op");
    db.views_of_gibleed(&s, &["person", "condition_occurrence", "concept"]);
    let err = ingest_fails(&pg(&url, &s, None));
    assert!(matches!(err, IngestError::Postgres(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("{s}.observation_period")), "{msg}");
    assert!(msg.contains("not found"), "{msg}");

    // And without person.
    let s2 = db.schema("no_person");
    db.views_of_gibleed(&s2, &["observation_period"]);
    let msg = ingest_fails(&pg(&url, &s2, None)).to_string();
    assert!(msg.contains(&format!("{s2}.person")), "{msg}");
}

/// (e) The vocabulary in a schema of its own (`--vocab-schema`), the CDM in another, table names
/// in upper case, views instead of tables: the same store as GiBleed in one schema.
#[test]
fn vocabulary_schema_apart_from_the_cdm_schema() {
    let url = require_pg!("vocabulary_schema_apart_from_the_cdm_schema");
    let mut db = Scratch::new(&url);
    let tables = db.gibleed_tables();
    let cdm = db.schema("cdm");
    let voc = db.schema("voc");
    let g = gibleed_schema();
    for t in &tables {
        let is_vocab = qiao_cdm::table(t).is_some_and(|s| s.kind == TableKind::Vocabulary);
        let target = if is_vocab { &voc } else { &cdm };
        // Quoted upper-case names, as some exports create them.
        db.exec(&format!(
            "CREATE VIEW {target}.\"{}\" AS SELECT * FROM {g}.{t}",
            t.to_uppercase()
        ));
    }

    let (whole, _, whole_dir) = ingest_to_store(&pg(&url, &g, None), "gibleed");
    let (split, report, split_dir) = ingest_to_store(&pg(&url, &cdm, Some(&voc)), "split");
    assert_eq!(
        report.tables["concept"].source,
        format!("postgres:{voc}.CONCEPT")
    );
    assert_eq!(
        report.tables["person"].source,
        format!("postgres:{cdm}.PERSON")
    );
    assert_same_store(
        &whole,
        &split,
        &whole_dir.path().join("store.qiao"),
        &split_dir.path().join("store.qiao"),
    );

    // Without --vocab-schema the CDM schema has no vocabulary: an error that says so, nothing
    // written; with --no-vocabulary the store has none either.
    let msg = ingest_fails(&pg(&url, &cdm, None)).to_string();
    assert!(
        msg.contains("concept not found") && msg.contains("--vocab-schema"),
        "{msg}"
    );
    let dir = tempfile::tempdir().unwrap();
    let report = ingest(
        &pg(&url, &cdm, None),
        &dir.path().join("store.qiao"),
        Options {
            no_vocabulary: true,
            ..opts()
        },
    )
    .expect("ingest with --no-vocabulary");
    let novocab = Store::open(dir.path().join("store.qiao")).unwrap();
    assert_eq!(novocab.vocabulary().len(), 0);
    assert!(report.absent_tables.iter().any(|t| t == "concept"));
    assert_eq!(
        novocab.meta().tables["condition_occurrence"],
        whole.meta().tables["condition_occurrence"]
    );

    if let Some(bin) = qiao_bin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("split.qiao");
        let run = Command::new(bin)
            .args([
                "ingest",
                "--postgres",
                &url,
                "--schema",
                &cdm,
                "--vocab-schema",
                &voc,
            ])
            .args(["--json", "--out"])
            .arg(&out)
            .output()
            .expect("run qiao");
        assert!(
            run.status.success(),
            "qiao ingest: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let cli = Store::open(&out).expect("open CLI store");
        assert_eq!(cli.vocabulary().len(), 442);
        assert_eq!(cli.meta().persons, 2_694);
    }
}

/// Values of every PostgreSQL type a CDM column is commonly given reach the store exactly:
/// float8 (bit for bit), real and numeric as their decimal text, ids as numeric / int / bigint,
/// dates as date / timestamp / text — whatever DateStyle and extra_float_digits the server has.
#[test]
fn typed_columns_reach_the_store_exactly() {
    let url = require_pg!("typed_columns_reach_the_store_exactly");
    let mut db = Scratch::new(&url);
    let s = db.schema("typed");
    db.exec(&format!(
        "CREATE TABLE {s}.person (person_id numeric(12,0), gender_concept_id bigint, \
           year_of_birth smallint, race_concept_id integer, ethnicity_concept_id integer);
         INSERT INTO {s}.person VALUES (1, 8507, 1950, 0, 0), (2, 8532, 1961, 0, 0);
         CREATE TABLE {s}.observation_period (observation_period_id integer, person_id bigint, \
           observation_period_start_date timestamp, observation_period_end_date timestamp(0), \
           period_type_concept_id integer);
         INSERT INTO {s}.observation_period VALUES \
           (1, 1, '2000-01-01 00:00:00', '2019-12-31 23:59:59', 44814724), \
           (2, 2, '1999-02-28 12:00:00', '2020-02-29 00:00:00', 44814724);
         CREATE TABLE {s}.measurement (measurement_id numeric(14,1), person_id bigint, \
           measurement_concept_id integer, measurement_date date, \
           measurement_type_concept_id integer, value_as_number double precision, \
           range_low real, range_high numeric, unit_concept_id integer);
         CREATE TABLE {s}.condition_occurrence (condition_occurrence_id bigint, person_id integer, \
           condition_concept_id integer, condition_start_date text, condition_end_date varchar(20), \
           condition_type_concept_id integer, stop_reason text);
         INSERT INTO {s}.condition_occurrence VALUES \
           (10, 1, 201826, '2001-05-05', NULL, 32020, 'a, \"quoted\"\nline'), \
           (11, 2, 201826, '20030201', '2003-02-10 00:00:00', 32020, ''), \
           (12, 2, 201826, '2004-03-01', '', 32020, NULL);"
    ));
    // Floats that lose bits if printed with 15 digits, extremes, negative zero.
    let values: [f64; 8] = [
        0.1,
        1.0 / 3.0,
        2.0f64.sqrt(),
        1e-300,
        5e-324,
        f64::MAX,
        -0.0,
        123_456_789.123_456_78,
    ];
    for (i, v) in values.iter().enumerate() {
        db.client
            .execute(
                &format!(
                    "INSERT INTO {s}.measurement VALUES \
                     ($1::text::numeric + 0.0, 1, 3004249, '2010-01-01'::date + $2::integer, 44818702, \
                      $3, $4, $5::text::numeric, NULL)"
                ),
                &[
                    &(i as i64 + 100).to_string(),
                    &(i as i32),
                    v,
                    &0.1f32,
                    &"0.00000000000000000001",
                ],
            )
            .unwrap_or_else(|e| panic!("insert: {}", db_error(&e)));
    }

    let day = |s: &str| date::parse(s.as_bytes()).unwrap();
    let check = |url: &str| {
        // A fixture without vocabulary tables.
        let no_vocabulary = Options {
            no_vocabulary: true,
            ..opts()
        };
        let (store, report, _dir) =
            ingest_to_store_with(&pg(url, &s, None), "typed", no_vocabulary);
        for t in [
            "person",
            "observation_period",
            "measurement",
            "condition_occurrence",
        ] {
            assert_eq!(
                report.tables[t].rows_skipped(),
                0,
                "{t}: {:?}",
                report.tables[t].samples
            );
        }
        assert_eq!(store.persons().ids(), &[1, 2]);
        assert_eq!(store.persons().year_of_birth(1), Some(1961));
        assert_eq!(
            store.persons().i32_column("gender_concept_id"),
            &[8507, 8532]
        );

        let op = store.domain("observation_period").unwrap();
        assert_eq!(op.start(), &[day("2000-01-01"), day("1999-02-28")]);
        assert_eq!(op.end(), &[day("2019-12-31"), day("2020-02-29")]);

        let m = store.domain("measurement").unwrap();
        let ids: Vec<i64> = (100..108).collect();
        assert_eq!(m.event_id(), &ids[..]);
        let starts: Vec<i32> = (0..8).map(|i| day("2010-01-01") + i).collect();
        assert_eq!(m.start(), &starts[..]);
        let got = m.column("value_as_number").unwrap().as_f64().unwrap();
        for (g, want) in got.iter().zip(&values) {
            assert!(
                g.to_bits() == want.to_bits(),
                "value_as_number: stored {g:e}, inserted {want:e}"
            );
        }
        // real: its shortest decimal text (what any CSV export of the column carries).
        assert!(m
            .column("range_low")
            .unwrap()
            .as_f64()
            .unwrap()
            .iter()
            .all(|x| x == 0.1));
        assert!(m
            .column("range_high")
            .unwrap()
            .as_f64()
            .unwrap()
            .iter()
            .all(|x| x == 1e-20));
        // All NULL: stored as NULLs, or not stored at all.
        assert!(m.column("unit_concept_id").is_none_or(|c| c
            .as_i32()
            .unwrap()
            .iter()
            .all(|x| x == qiao_cdm::NULL_CONCEPT)));

        let c = store.domain("condition_occurrence").unwrap();
        assert_eq!(c.event_id(), &[10, 11, 12]);
        assert_eq!(
            c.start(),
            &[day("2001-05-05"), day("2003-02-01"), day("2004-03-01")]
        );
        // NULL / empty end: start + 1 (Circe's rule for condition_occurrence).
        assert_eq!(
            c.end(),
            &[day("2001-05-06"), day("2003-02-10"), day("2004-03-02")]
        );
        let stop = c.column("stop_reason").unwrap().as_text().unwrap();
        assert_eq!(stop.get(0), Some("a, \"quoted\"\nline"));
        // CSV has no way to tell '' from NULL: both are NULL, as from a CSV file.
        assert_eq!((stop.get(1), stop.get(2)), (None, None));
    };
    check(&url);
    // A server whose sessions print dates as 28/02/1999 and floats with 12 digits: the ingest
    // sets its own DateStyle and extra_float_digits.
    let sep = if url.contains('?') { '&' } else { '?' };
    check(&format!(
        "{url}{sep}options=-c%20DateStyle%3DSQL%2CDMY%20-c%20extra_float_digits%3D-3"
    ));
}

// ---------------------------------------------------------------------------------------------
// Issue 13: PostgreSQL as hospitals run it

/// The test server's host, port and database (from QIAO_TEST_PG).
fn server(url: &str) -> (String, u16, String) {
    let cfg: postgres::Config = url.parse().expect("QIAO_TEST_PG is a connection string");
    let host = match cfg.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    (host, port, cfg.get_dbname().unwrap_or("qiao").to_string())
}

/// The test CA, client certificate and key (scripts/pg-test-server.sh env), or None after a note.
fn tls_files() -> Option<(String, String, String)> {
    let get = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
    match (
        get("QIAO_TEST_PG_CA"),
        get("QIAO_TEST_PG_CLIENT_CERT"),
        get("QIAO_TEST_PG_CLIENT_KEY"),
    ) {
        (Some(ca), Some(cert), Some(key)) => Some((ca, cert, key)),
        _ => {
            assert!(
                std::env::var("QIAO_TEST_PG_REQUIRED").is_err_and(|_| true)
                    || std::env::var("QIAO_TEST_PG_REQUIRED").as_deref() != Ok("1"),
                "QIAO_TEST_PG_REQUIRED=1 but QIAO_TEST_PG_CA is not set (scripts/pg-test-server.sh env)"
            );
            eprintln!("note: QIAO_TEST_PG_CA not set; TLS cases skipped");
            None
        }
    }
}

/// Ingest as `key=value` connection string; the report's connection line, or the error.
fn try_ingest(
    conninfo: &str,
    schema: &str,
    vocab: Option<&str>,
    o: Options,
) -> Result<IngestReport, String> {
    let dir = tempfile::tempdir().unwrap();
    let src = pg(conninfo, schema, vocab);
    ingest(&src, &dir.path().join("s.qiao"), o).map_err(|e| e.to_string())
}

fn no_vocabulary() -> Options {
    Options {
        no_vocabulary: true,
        ..opts()
    }
}

/// A small CDM in a scratch schema: two persons, their periods, one condition per person.
fn tiny_cdm(db: &mut Scratch, tag: &str) -> String {
    let s = db.schema(tag);
    db.exec(&format!(
        "CREATE TABLE {s}.person (person_id bigint PRIMARY KEY, gender_concept_id integer, \
           year_of_birth integer, race_concept_id integer, ethnicity_concept_id integer);
         INSERT INTO {s}.person VALUES (1, 8507, 1950, 0, 0), (2, 8532, 1961, 0, 0);
         CREATE TABLE {s}.observation_period (observation_period_id bigint, person_id bigint, \
           observation_period_start_date date, observation_period_end_date date, \
           period_type_concept_id integer);
         INSERT INTO {s}.observation_period VALUES (1, 1, '2000-01-01', '2019-12-31', 1), \
           (2, 2, '2000-01-01', '2019-12-31', 1);"
    ));
    s
}

/// (11) TLS with rustls: every sslmode against a server whose `qiao_tls` role may only connect
/// over TLS (`hostssl`), certificate and host name checks, client certificates; `prefer` really
/// uses TLS.
#[test]
fn tls_sslmodes_against_a_hostssl_only_role() {
    let url = require_pg!("tls_sslmodes_against_a_hostssl_only_role");
    let Some((ca, cert, key)) = tls_files() else {
        return;
    };
    let (host, port, dbname) = server(&url);
    let g = gibleed_schema();
    let base = format!("host={host} port={port} dbname={dbname} user=qiao_tls password=qiao_tls");
    let connection = |extra: &str| {
        try_ingest(&format!("{base} {extra}"), &g, None, opts()).map(|r| r.connection.unwrap())
    };

    let err = connection("sslmode=disable").unwrap_err();
    assert!(
        err.contains("no encryption") || err.contains("pg_hba.conf"),
        "{err}"
    );
    assert!(!err.contains("qiao_tls password"), "{err}");
    for mode in ["allow", "prefer", "require"] {
        let c = connection(&format!("sslmode={mode}")).unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(c.contains("TLS TLSv1.3") && c.contains(mode), "{mode}: {c}");
    }
    for mode in ["verify-ca", "verify-full"] {
        let c = connection(&format!("sslmode={mode} sslrootcert={ca}"))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(c.contains("TLS") && c.contains(mode), "{c}");
    }
    // A host name the certificate does not carry (the address given apart): verify-ca accepts,
    // verify-full refuses.
    let named = format!(
        "host=qiao.invalid hostaddr=127.0.0.1 port={port} dbname={dbname} user=qiao_tls password=qiao_tls sslrootcert={ca}"
    );
    try_ingest(&format!("{named} sslmode=verify-ca"), &g, None, opts()).unwrap();
    let err = try_ingest(&format!("{named} sslmode=verify-full"), &g, None, opts()).unwrap_err();
    assert!(
        err.contains("not valid for name") || err.contains("NotValidForName"),
        "{err}"
    );
    // A root certificate that did not sign the server's: refused by verify-ca and by require.
    for mode in ["verify-ca", "require"] {
        let err = connection(&format!("sslmode={mode} sslrootcert={cert}")).unwrap_err();
        assert!(err.to_lowercase().contains("certificate"), "{mode}: {err}");
    }

    // The ordinary role, default sslmode (prefer): TLS first.
    let c = try_ingest(
        &format!("host={host} port={port} dbname={dbname} user=qiao password=qiao"),
        &g,
        None,
        opts(),
    )
    .unwrap()
    .connection
    .unwrap();
    assert!(
        c.contains("TLS TLSv1.3") && c.contains("sslmode=prefer"),
        "{c}"
    );
    let c = try_ingest(
        &format!("host={host} port={port} dbname={dbname} user=qiao password=qiao sslmode=disable"),
        &g,
        None,
        opts(),
    )
    .unwrap()
    .connection
    .unwrap();
    assert!(c.contains("no TLS"), "{c}");

    // A client certificate (`cert` authentication), no password.
    let certified = format!("host={host} port={port} dbname={dbname} user=qiao_cert sslrootcert={ca} sslmode=verify-full");
    let report = try_ingest(
        &format!("{certified} sslcert={cert} sslkey={key}"),
        &g,
        None,
        opts(),
    )
    .unwrap();
    assert_eq!(report.tables["person"].rows_kept, 2_694);
    let err = try_ingest(&certified, &g, None, opts()).unwrap_err();
    assert!(err.contains("certificate"), "{err}");
}

/// (13) The official OHDSI 5.4 DDL with primary keys, the vocabulary in a schema of its own, read
/// by a SELECT-only role over verified TLS: the same store as the Synthea27Nj CSV folder.
#[test]
fn official_ddl_select_only_role_over_tls_equals_csv() {
    let url = require_pg!("official_ddl_select_only_role_over_tls_equals_csv");
    let Some((ca, _, _)) = tls_files() else {
        return;
    };
    let (host, port, dbname) = server(&url);
    let reader = format!(
        "postgres://qiao_reader:qiao_reader@{host}:{port}/{dbname}?sslmode=verify-full&sslrootcert={ca}"
    );
    // Its concept_ancestor is empty: no vocabulary unless accepted.
    let err = try_ingest(&reader, "synthea54", Some("synthea54_vocab"), opts()).unwrap_err();
    assert!(err.contains("concept_ancestor empty"), "{err}");

    let csv_dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea27nj-5.4");
    let (csv, csv_report, csv_out) =
        ingest_to_store_with(&Source::CsvDir(csv_dir), "csv", no_vocabulary());
    let (pgs, pg_report, pg_out) = ingest_to_store_with(
        &pg(&reader, "synthea54", Some("synthea54_vocab")),
        "postgres",
        no_vocabulary(),
    );
    assert_eq!(pgs.meta().persons, 28);
    assert_eq!(pgs.meta().tables["concept_relationship"].rows, 266_588);
    assert!(pg_report.connection.as_deref().unwrap().contains("TLS"));
    assert_eq!(
        pg_report.tables["concept"].source,
        "postgres:synthea54_vocab.concept"
    );
    assert_same_report(&csv_report, &pg_report);
    assert_same_store(
        &csv,
        &pgs,
        &csv_out.path().join("store.qiao"),
        &pg_out.path().join("store.qiao"),
    );

    // SELECT-only: the role cannot write there.
    let mut c = postgres::Client::connect(
        &format!("host={host} port={port} dbname={dbname} user=qiao_reader password=qiao_reader"),
        postgres::NoTls,
    )
    .unwrap();
    let e = c
        .batch_execute("DELETE FROM synthea54.person")
        .expect_err("qiao_reader must not write");
    assert!(
        db_error(&e).contains("permission denied"),
        "{}",
        db_error(&e)
    );
}

/// (1) Tables are found in the catalog: materialized views and partitioned tables too. A table
/// the role cannot read is an error naming it and the privilege, never "absent".
#[test]
fn catalog_discovery_and_unreadable_tables() {
    let url = require_pg!("catalog_discovery_and_unreadable_tables");
    let mut db = Scratch::new(&url);
    db.gibleed_tables();
    let g = gibleed_schema();
    let s = db.schema("catalog");
    db.exec(&format!(
        "CREATE MATERIALIZED VIEW {s}.person AS SELECT * FROM {g}.person;
         CREATE TABLE {s}.observation_period (LIKE {g}.observation_period) PARTITION BY RANGE (observation_period_start_date);
         CREATE TABLE {s}.op_old PARTITION OF {s}.observation_period FOR VALUES FROM (MINVALUE) TO ('2000-01-01');
         CREATE TABLE {s}.op_new PARTITION OF {s}.observation_period FOR VALUES FROM ('2000-01-01') TO (MAXVALUE);
         INSERT INTO {s}.observation_period SELECT * FROM {g}.observation_period;
         CREATE VIEW {s}.condition_occurrence AS SELECT * FROM {g}.condition_occurrence;
         CREATE VIEW {s}.concept AS SELECT * FROM {g}.concept;
         CREATE VIEW {s}.concept_ancestor AS SELECT * FROM {g}.concept_ancestor;
         CREATE VIEW {s}.concept_relationship AS SELECT * FROM {g}.concept_relationship;"
    ));
    // A foreign table (postgres_fdw, back into this database).
    let (host, port, dbname) = server(&url);
    let fdw = format!("qt_{}_fdw", std::process::id());
    db.exec(&format!(
        "DROP SERVER IF EXISTS {fdw} CASCADE;
         CREATE SERVER {fdw} FOREIGN DATA WRAPPER postgres_fdw \
           OPTIONS (host '{host}', port '{port}', dbname '{dbname}');
         CREATE USER MAPPING FOR CURRENT_USER SERVER {fdw} OPTIONS (user 'qiao', password 'qiao');
         IMPORT FOREIGN SCHEMA {g} LIMIT TO (drug_era) FROM SERVER {fdw} INTO {s};"
    ));
    let report = try_ingest(&url, &s, None, opts());
    db.exec(&format!("DROP SERVER IF EXISTS {fdw} CASCADE"));
    let report = report.unwrap();
    assert_eq!(report.tables["person"].rows_kept, 2_694);
    assert_eq!(report.tables["observation_period"].rows_kept, 5_343);
    assert_eq!(report.tables["condition_occurrence"].rows_kept, 65_332);
    assert_eq!(report.tables["drug_era"].rows_kept, 52_508);
    assert!(report.absent_tables.iter().any(|t| t == "drug_exposure"));

    // Two relations for one table (names differing in case): an error naming both.
    db.exec(&format!(
        "CREATE VIEW {s}.\"PERSON\" AS SELECT * FROM {g}.person"
    ));
    let err = try_ingest(&url, &s, None, opts()).unwrap_err();
    assert!(
        err.contains("\"PERSON\" (view)") && err.contains("\"person\" (materialized view)"),
        "{err}"
    );
    db.exec(&format!("DROP VIEW {s}.\"PERSON\""));

    // The SELECT-only role may use the schema but not read condition_occurrence.
    db.exec(&format!(
        "GRANT USAGE ON SCHEMA {s} TO qiao_reader; GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO qiao_reader;
         GRANT USAGE ON SCHEMA {g} TO qiao_reader; GRANT SELECT ON ALL TABLES IN SCHEMA {g} TO qiao_reader;
         REVOKE SELECT ON {s}.condition_occurrence FROM qiao_reader;"
    ));
    let reader = format!("postgres://qiao_reader:qiao_reader@{host}:{port}/{dbname}");
    let err = try_ingest(&reader, &s, None, opts()).unwrap_err();
    assert!(
        err.contains(&format!("{s}.condition_occurrence"))
            && err.contains("SELECT privilege")
            && err.contains("qiao_reader"),
        "{err}"
    );
    db.exec(&format!("REVOKE USAGE ON SCHEMA {s} FROM qiao_reader"));
    let err = try_ingest(&reader, &s, None, opts()).unwrap_err();
    assert!(err.contains("USAGE privilege") && err.contains(&s), "{err}");
    db.exec(&format!(
        "REVOKE ALL ON ALL TABLES IN SCHEMA {g} FROM qiao_reader; REVOKE USAGE ON SCHEMA {g} FROM qiao_reader"
    ));
}

/// (8) PostgreSQL problems are located by table and primary key; an error mid-stream keeps the
/// server's message; (9) BC dates are rejected and `timestamptz` is read in an explicit zone.
#[test]
fn problems_by_key_server_messages_dates_and_zones() {
    let url = require_pg!("problems_by_key_server_messages_dates_and_zones");
    let mut db = Scratch::new(&url);
    let s = tiny_cdm(&mut db, "keyed");
    db.exec(&format!(
        "CREATE TABLE {s}.condition_occurrence (condition_occurrence_id bigint, person_id bigint, \
           condition_concept_id integer, condition_start_date date, \
           condition_start_datetime timestamptz, condition_end_date text, \
           condition_type_concept_id integer);
         INSERT INTO {s}.condition_occurrence VALUES \
           (501, 1, 201826, '2005-01-01', NULL, NULL, 32020), \
           (502, 1, 201826, '0044-03-15 BC', NULL, NULL, 32020), \
           (503, 2, 201826, '2006-01-01', NULL, 'not a date', 32020);
         CREATE TABLE {s}.drug_exposure (drug_exposure_id bigint, person_id bigint, \
           drug_concept_id integer, drug_exposure_start_date timestamptz, \
           drug_exposure_end_date timestamptz, drug_type_concept_id integer);
         INSERT INTO {s}.drug_exposure VALUES \
           (1, 1, 1118084, '2010-01-01 20:00:00+00', '2010-01-31 20:00:00+00', 1);"
    ));
    let report = try_ingest(&url, &s, None, no_vocabulary()).unwrap();
    let t = &report.tables["condition_occurrence"];
    assert_eq!(t.rows_kept, 1);
    let shown: Vec<String> = t.samples.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        t.samples[0].key.as_deref(),
        Some("condition_occurrence_id=502")
    );
    assert!(
        shown[0].starts_with(&format!(
            "postgres:{s}.condition_occurrence: row condition_occurrence_id=502, column 4"
        )),
        "{shown:?}"
    );
    assert!(shown[0].contains("BC"), "{shown:?}");
    assert_eq!(
        t.samples[1].key.as_deref(),
        Some("condition_occurrence_id=503")
    );

    // timestamptz: the server's zone (here the session's, as a role setting would make it), or
    // an explicit one; the one used is reported.
    let sep = if url.contains('?') { '&' } else { '?' };
    let shanghai = format!("{url}{sep}options=-c%20TimeZone%3DAsia%2FShanghai");
    let day = |r: &IngestReport, dir: &Path| {
        let _ = r;
        let store = Store::open(dir.join("s.qiao")).unwrap();
        let d = store.domain("drug_exposure").unwrap().start().at(0);
        date::format(d)
    };
    for (conn, zone, want_zone, want_day) in [
        (
            &shanghai,
            None,
            "Asia/Shanghai (the server's TimeZone setting",
            "2010-01-02",
        ),
        (&shanghai, Some("UTC"), "UTC (--timezone)", "2010-01-01"),
        (
            &url,
            Some("America/New_York"),
            "America/New_York (--timezone)",
            "2010-01-01",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let src = Source::Postgres(PostgresSource {
            url: conn.clone(),
            schema: s.clone(),
            vocab_schema: None,
            timezone: zone.map(str::to_string),
        });
        let r = ingest(&src, &dir.path().join("s.qiao"), no_vocabulary()).unwrap();
        assert!(
            r.timezone.as_deref().unwrap().starts_with(want_zone),
            "{:?}",
            r.timezone
        );
        assert_eq!(day(&r, dir.path()), want_day, "{zone:?}");
    }
    let src = Source::Postgres(PostgresSource {
        url: url.clone(),
        schema: s.clone(),
        vocab_schema: None,
        timezone: Some("Mars/Olympus".into()),
    });
    let err = ingest_fails(&src).to_string();
    assert!(err.contains("Mars/Olympus"), "{err}");

    // A view that fails mid-stream: the server's message, the table named.
    let s2 = tiny_cdm(&mut db, "midstream");
    let g = gibleed_schema();
    db.exec(&format!(
        "CREATE VIEW {s2}.condition_occurrence AS SELECT c.*, 1 / (CASE WHEN condition_occurrence_id = \
           (SELECT max(condition_occurrence_id) FROM {g}.condition_occurrence) THEN 0 ELSE 1 END) AS boom \
         FROM {g}.condition_occurrence c ORDER BY condition_occurrence_id"
    ));
    let err = ingest_fails(&pg(&url, &s2, None)).to_string();
    assert!(
        err.contains(&format!("{s2}.condition_occurrence")) && err.contains("division by zero"),
        "{err}"
    );
    // statement_timeout: the server's words, not "db error".
    db.exec(&format!(
        "DROP VIEW {s2}.condition_occurrence; CREATE VIEW {s2}.condition_occurrence AS SELECT c.* FROM {g}.condition_occurrence c \
         UNION ALL SELECT c.* FROM {g}.condition_occurrence c, (SELECT pg_sleep(3)) z"
    ));
    let slow = format!("{url}{sep}options=-c%20statement_timeout%3D1000");
    let err = ingest_fails(&pg(&slow, &s2, None)).to_string();
    assert!(err.contains("statement timeout"), "{err}");
}

/// (12) Credentials: no password in argv. QIAO_PG_URL, PGPASSWORD, ~/.pgpass and PGSERVICE all
/// work for `qiao ingest`; a password in a URL is never printed, percent-encoded or not.
#[test]
fn credentials_without_argv_and_never_printed() {
    let url = require_pg!("credentials_without_argv_and_never_printed");
    let Some(bin) = qiao_bin() else {
        assert!(
            std::env::var("QIAO_TEST_PG_REQUIRED").as_deref() != Ok("1"),
            "no qiao binary beside the tests: cargo build --release -p qiao"
        );
        return;
    };
    let (host, port, dbname) = server(&url);
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("s.qiao");
    let g = gibleed_schema();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let _ = std::fs::remove_file(&out);
        let mut cmd = Command::new(&bin);
        cmd.arg("ingest")
            .args(args)
            .args(["--json", "--out"])
            .arg(&out);
        for v in [
            "PGPASSWORD",
            "PGSERVICE",
            "PGSERVICEFILE",
            "QIAO_PG_URL",
            "PGUSER",
            "PGHOST",
            "PGPORT",
            "PGDATABASE",
            "PGPASSFILE",
            "PGSSLMODE",
        ] {
            cmd.env_remove(v);
        }
        cmd.env("HOME", home.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let o = cmd.output().expect("run qiao");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let nopw = format!("postgres://qiao@{host}:{port}/{dbname}");

    // QIAO_PG_URL (password inside, not in argv) without --postgres.
    let (ok, text) = run(&["--schema", &g], &[("QIAO_PG_URL", &url)]);
    assert!(ok, "{text}");
    // PGPASSWORD with a URL that has none.
    let (ok, text) = run(
        &["--postgres", &nopw, "--schema", &g],
        &[("PGPASSWORD", "qiao")],
    );
    assert!(ok, "{text}");
    // Without it: the server's refusal.
    let (ok, text) = run(&["--postgres", &nopw, "--schema", &g], &[]);
    assert!(!ok && text.contains("password"), "{text}");
    // ~/.pgpass (0600).
    let pgpass = home.path().join(".pgpass");
    std::fs::write(&pgpass, format!("{host}:{port}:{dbname}:qiao:qiao\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, text) = run(&["--postgres", &nopw, "--schema", &g], &[]);
    assert!(ok, "{text}");
    std::fs::remove_file(&pgpass).unwrap();
    // PGSERVICE with a service file, and --postgres without a value.
    let svc = home.path().join("pg_service.conf");
    std::fs::write(
        &svc,
        format!("[cdm]\nhost={host}\nport={port}\ndbname={dbname}\nuser=qiao\npassword=qiao\n"),
    )
    .unwrap();
    let (ok, text) = run(
        &["--postgres", "--schema", &g],
        &[
            ("PGSERVICE", "cdm"),
            ("PGSERVICEFILE", svc.to_str().unwrap()),
        ],
    );
    assert!(ok, "{text}");
    let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(v["tables"]["person"]["rows_kept"], 2694);
    assert_eq!(
        v["connection"].as_str().unwrap().split(' ').next(),
        Some(format!("qiao@{host}:{port}/{dbname}").as_str())
    );

    // A wrong password, plain or percent-encoded, in every spelling: never printed.
    for conn in [
        format!("postgres://qiao:Sekr%65t%40x@{host}:{port}/{dbname}"),
        format!("postgres://qiao:Sekret@{host}:{port}/{dbname}?sslmode=disable"),
        format!("host={host} port={port} dbname={dbname} user=qiao password='Sekret x'"),
        format!("postgres://{host}:{port}/{dbname}?user=qiao&password=Sekret"),
    ] {
        let (ok, text) = run(&["--postgres", &conn, "--schema", &g], &[]);
        assert!(!ok, "{text}");
        assert!(text.contains("authentication failed"), "{text}");
        assert!(!text.contains("Sekr"), "the password leaked: {text}");
    }
}
