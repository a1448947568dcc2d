//! Bounded-memory ingest: with a small memory budget event rows are sorted in runs spilled to
//! temporary files and merged; the store must be byte for byte the one built in memory, and the
//! temporary files must be gone afterwards, after a failure too.

use std::fs;
use std::path::{Path, PathBuf};

use qiao_cdm::RawTable;
use qiao_ingest::{ingest, read_all, IngestError, Options, Source};
use qiao_store::spill::SpillDir;

const SHARED: &str = "../../../shared/data";

fn cdm(name: &str) -> PathBuf {
    PathBuf::from(SHARED).join(name)
}

/// `t` cut into chunks of `rows` rows.
fn chunks(t: &RawTable, rows: usize) -> Vec<RawTable> {
    (0..t.rows().max(1))
        .step_by(rows)
        .map(|a| {
            let idx: Vec<u32> = (a as u32..(a + rows).min(t.rows()) as u32).collect();
            RawTable {
                spec: t.spec,
                columns: t
                    .columns
                    .iter()
                    .map(|(n, c)| (*n, c.gather(&idx)))
                    .collect(),
            }
        })
        .collect()
}

/// Files in `dir` whose name starts with `.` (a store's temporary files).
fn hidden_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[test]
fn a_spilled_build_is_byte_identical_to_the_in_memory_one() {
    for name in ["eunomia-gibleed-5.3", "synthea27nj-5.4"] {
        let (tables, report) = read_all(
            &Source::CsvDir(cdm(name)),
            Options {
                no_vocabulary: true,
                ..Options::default()
            },
        )
        .unwrap();
        let report = serde_json::to_value(&report).unwrap();
        let in_memory = qiao_store::write_to_vec(tables.clone(), report.clone()).unwrap();

        let out = tempfile::tempdir().unwrap();
        let spill = SpillDir::beside(&out.path().join("s.qiao"));
        // 64 KiB of rows per table: every sizeable table is sorted in many runs.
        let mut builder = qiao_store::Builder::new(spill.clone(), 64 << 10);
        for t in &tables {
            let mut sink = builder.sink(t.spec, 1);
            for c in chunks(t, 1000) {
                sink.push(c).unwrap();
            }
            builder.add(sink).unwrap();
        }
        let (spilled, meta) = builder.write(Vec::new(), report).unwrap();
        assert!(
            spill.created() > 20,
            "{name}: only {} temporary files: nothing was spilled",
            spill.created()
        );
        assert!(meta.tables["condition_occurrence"].rows > 0);
        assert_eq!(spilled.len(), in_memory.len(), "{name}: store sizes");
        assert!(spilled == in_memory, "{name}: the stores differ");
        drop(spill);
        assert_eq!(hidden_files(out.path()), Vec::<String>::new(), "{name}");
    }
}

/// The bytes before the table of contents (every section) and the section directory.
fn sections(path: &Path) -> (Vec<u8>, serde_json::Value) {
    let b = fs::read(path).unwrap();
    let footer = &b[b.len() - 32..];
    let toc_off = u64::from_le_bytes(footer[0..8].try_into().unwrap()) as usize;
    let toc_len = u64::from_le_bytes(footer[8..16].try_into().unwrap()) as usize;
    let toc: serde_json::Value = serde_json::from_slice(&b[toc_off..toc_off + toc_len]).unwrap();
    (b[..toc_off].to_vec(), toc["sections"].clone())
}

#[test]
fn ingest_with_a_small_memory_budget_writes_the_same_store() {
    let out = tempfile::tempdir().unwrap();
    let (small, default) = (
        out.path().join("small.qiao"),
        out.path().join("default.qiao"),
    );
    let src = Source::CsvDir(cdm("eunomia-gibleed-5.3"));
    let a = ingest(
        &src,
        &small,
        Options {
            memory_budget: Some(256 << 10),
            ..Options::default()
        },
    )
    .unwrap();
    let b = ingest(&src, &default, Options::default()).unwrap();
    assert_eq!(a.tables["drug_exposure"].rows_kept, 67707);
    assert_eq!(
        serde_json::to_value(&a.tables).unwrap(),
        serde_json::to_value(&b.tables).unwrap(),
        "the same rows read, flagged and kept"
    );
    let (sa, ta) = sections(&small);
    let (sb, tb) = sections(&default);
    assert_eq!(ta, tb, "section directories");
    assert!(sa == sb, "section bytes differ");
    assert_eq!(hidden_files(out.path()), Vec::<String>::new());
}

#[test]
fn temporary_files_are_removed_when_ingest_fails() {
    let src = tempfile::tempdir().unwrap();
    for e in fs::read_dir(cdm("eunomia-gibleed-5.3")).unwrap() {
        let p = e.unwrap().path();
        fs::copy(&p, src.path().join(p.file_name().unwrap())).unwrap();
    }
    // A bad row at the end of the largest clinical table: found after its runs were spilled.
    let drug = src.path().join("drug_exposure.csv");
    let mut text = fs::read_to_string(&drug).unwrap();
    let columns = text.lines().next().unwrap().split(',').count();
    text.push_str(&format!("not-a-number{}\n", ",".repeat(columns - 1)));
    fs::write(&drug, text).unwrap();

    let out = tempfile::tempdir().unwrap();
    let err = ingest(
        &Source::CsvDir(src.path().to_path_buf()),
        &out.path().join("s.qiao"),
        Options {
            strict: true,
            memory_budget: Some(256 << 10),
            ..Options::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, IngestError::Strict(_)), "{err}");
    assert_eq!(hidden_files(out.path()), Vec::<String>::new());
    assert!(!out.path().join("s.qiao").exists());
}
