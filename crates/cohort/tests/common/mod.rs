//! Test fixtures: DBUnit JSON datasets (circe-be's test data) and CSV CDMs as in-memory stores.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use qiao_cdm::{date, ColType, Column, RawTable};
use qiao_store::Store;
use serde_json::Value;

pub const DATA: &str = "../../../shared/data";

pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(DATA).join(rel)
}

/// Reads DBUnit datasets (`{"schema.table": [{column: value}]}`) into CDM tables. Tables that are
/// not CDM tables (expected results) are returned apart, keyed by their full name.
pub fn load_dbunit(files: &[PathBuf]) -> (Vec<RawTable>, BTreeMap<String, Vec<Value>>) {
    let mut tables: BTreeMap<&'static str, RawTable> = BTreeMap::new();
    let mut other = BTreeMap::new();
    for f in files {
        let text = fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let v: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
        for (key, rows) in v {
            let name = key.rsplit('.').next().unwrap();
            let rows = rows.as_array().cloned().unwrap_or_default();
            let spec = match (key.starts_with("cdm."), qiao_cdm::table(name)) {
                (true, Some(spec)) => spec,
                _ => {
                    other.entry(key).or_insert_with(Vec::new).extend(rows);
                    continue;
                }
            };
            let t = tables
                .entry(spec.name)
                .or_insert_with(|| RawTable::new(spec));
            for row in &rows {
                let obj = row.as_object().unwrap();
                // Columns our CDM schema does not list (e.g. datetimes) are not read.
                for (col, column) in t.columns.iter_mut() {
                    let ty = spec.column(col).unwrap().ty;
                    let val = obj
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(col))
                        .map(|(_, v)| v)
                        .filter(|v| !v.is_null());
                    push(column, ty, val);
                }
            }
        }
    }
    (tables.into_values().collect(), other)
}

fn push(column: &mut Column, ty: ColType, v: Option<&Value>) {
    let Some(v) = v else {
        column.push_null();
        return;
    };
    let as_text = || match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match (column, ty) {
        (Column::Id(c), _) => c.push(v.as_i64().unwrap_or_else(|| as_text().parse().unwrap())),
        (Column::I32(c), ColType::Date) => c.push(date::parse(as_text().as_bytes()).unwrap()),
        (Column::I32(c), _) => c.push(
            v.as_i64()
                .map(|x| x as i32)
                .unwrap_or_else(|| as_text().parse().unwrap()),
        ),
        (Column::Float(c), _) => c.push(v.as_f64().unwrap_or_else(|| as_text().parse().unwrap())),
        (Column::Text(t), _) => t.push(Some(&as_text())),
    }
}

/// A store from DBUnit files relative to `circe-tests/resources/`.
pub fn dbunit_store(rel_files: &[String]) -> (Store, BTreeMap<String, Vec<Value>>) {
    let files: Vec<PathBuf> = rel_files
        .iter()
        .map(|f| data("circe-tests/resources").join(f))
        .collect();
    let (tables, other) = load_dbunit(&files);
    (qiao_store::from_tables(tables).expect("store"), other)
}

/// The Eunomia GiBleed CDM as an in-memory store (built once per test binary).
pub fn gibleed() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = data("eunomia-gibleed-5.3");
        let (tables, _report) = qiao_ingest::read_all(
            &qiao_ingest::Source::CsvDir(dir),
            qiao_ingest::Options::default(),
        )
        .expect("read GiBleed");
        qiao_store::from_tables(tables).expect("GiBleed store")
    })
}

pub fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub use qiao_cohort::exec::RowsAndMasks;

/// Runs a definition as [`Prepared::run`] does and, when it takes the fused pipeline, also on
/// the per-person evaluator, single-threaded: rows, person masks and statistics must be equal.
/// Returns the rows and statistics; `what` names the definition in a failure.
pub fn run_both(
    prepared: &qiao_cohort::exec::Prepared,
    store: &Store,
    what: &str,
) -> Result<
    (
        Vec<qiao_cohort::exec::CohortRow>,
        qiao_cohort::exec::CohortStats,
    ),
    qiao_cohort::CohortError,
> {
    use qiao_cohort::exec::Pipeline;
    let mut a = RowsAndMasks::default();
    let sa = prepared.run(store, &mut a)?;
    // The run's counts are those of the rows it gave.
    let mut subjects: Vec<i64> = a.rows.iter().map(|r| r.subject_id).collect();
    subjects.dedup();
    assert_eq!(
        (sa.entries, sa.subjects),
        (a.rows.len() as u64, subjects.len() as u64),
        "{what}: entries and subjects of the statistics vs of the rows"
    );
    if prepared.pipeline() == Pipeline::Fused {
        for (pipeline, label) in [
            (Pipeline::PerPerson, "fused vs per-person"),
            (Pipeline::Fused, "fused parallel vs single-threaded"),
        ] {
            let mut b = RowsAndMasks::default();
            let sb = prepared.run_on(store, &mut b, false, pipeline)?;
            assert_eq!(a.rows, b.rows, "{what}: rows, {label}");
            assert_eq!(a.masks, b.masks, "{what}: person masks, {label}");
            assert_eq!(sa.modes, sb.modes, "{what}: inclusion statistics, {label}");
            assert_eq!(
                (sa.entries, sa.subjects, sa.censor_lost),
                (sb.entries, sb.subjects, sb.censor_lost),
                "{what}: counts, {label}"
            );
        }
    }
    Ok((a.rows, sa))
}

/// Compares `actual` with the golden file `tests/golden/<rel>`; with `QIAO_BLESS=1` (re)writes the
/// file instead. A missing golden file fails (bless to create it).
pub fn golden(rel: &str, actual: &str) {
    let path = PathBuf::from("tests/golden").join(rel);
    if std::env::var("QIAO_BLESS").is_ok_and(|v| v == "1") {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with QIAO_BLESS=1 to write it)",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the output at line {} (QIAO_BLESS=1 rewrites it)\n--- expected\n{}\n--- actual\n{}",
            path.display(),
            line + 1,
            expected.lines().nth(line).unwrap_or("<end>"),
            actual.lines().nth(line).unwrap_or("<end>")
        );
    }
}
