//! `replicate`: K exact copies with offset ids.

mod common;

use std::collections::HashSet;

use common::*;
use qiao_cdm::TableKind;

#[test]
fn three_copies_of_gibleed_scale_every_table_exactly() {
    let src = gibleed();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x3");
    let s = qiao_synth::replicate(&src, 3, &out).unwrap();
    // Largest GiBleed id is visit_occurrence_id 355,125.
    assert_eq!(s.id_offset, 1_000_000);
    assert_eq!(s.copies, 3);
    assert_eq!(s.persons, 3 * 2694);
    // GiBleed's person and clinical tables hold 343,279 rows.
    assert_eq!(s.clinical_rows, 3 * 343_279);
    assert_eq!(
        s.skipped,
        [
            "cohort",
            "cohort_attribute",
            "cost",
            "fact_relationship",
            "note",
            "note_nlp",
            "ontime"
        ]
    );
    let src_counts = rowcounts(&src);
    let out_counts = rowcounts(&out);

    for (spec, src_path) in linked_tables(&src) {
        let a = Csv::read(&src_path);
        let b = Csv::read(&out.join(format!("{}.csv", spec.name)));
        let n = a.rows.len();
        assert_eq!(b.rows.len(), 3 * n, "{}", spec.name);
        assert_eq!(
            out_counts[spec.name],
            3 * src_counts[spec.name],
            "{}",
            spec.name
        );
        assert_eq!(a.header, b.header);
        let ids = offset_id_cols(spec, &a);
        for k in 0..3i64 {
            for (r, src_row) in a.rows.iter().enumerate() {
                let out_row = &b.rows[k as usize * n + r];
                for (j, (x, y)) in src_row.iter().zip(out_row).enumerate() {
                    if ids.contains(&j) {
                        assert_eq!(
                            int(y),
                            int(x).map(|v| v + k * 1_000_000),
                            "{} {}",
                            spec.name,
                            a.header[j]
                        );
                    } else {
                        // Dates, concepts, values and reference ids: unchanged.
                        assert_eq!(x, y, "{} row {r} {}", spec.name, a.header[j]);
                    }
                }
            }
        }
        // Primary keys never collide across copies. (GiBleed itself repeats some: drug_exposure,
        // measurement and observation have 4,384, 2,183 and 6 repeated ids; they stay repeated.)
        let pk = match spec.kind {
            TableKind::Person => Some("person_id"),
            _ => spec.event.and_then(|e| e.pk),
        };
        if let Some(pk) = pk {
            let distinct = |t: &Csv| {
                let c = t.col(pk).unwrap();
                t.rows
                    .iter()
                    .map(|r| int(&r[c]).unwrap())
                    .collect::<HashSet<i64>>()
                    .len()
            };
            assert_eq!(distinct(&b), 3 * distinct(&a), "{} {pk}", spec.name);
            if ["condition_occurrence", "visit_occurrence", "person"].contains(&spec.name) {
                assert_eq!(distinct(&b), b.rows.len(), "{} {pk}", spec.name);
            }
        }
    }

    // 3x distinct persons, and every orphan observation period replicated with an offset person id.
    let person = Csv::read(&out.join("person.csv"));
    let persons: HashSet<i64> = person.rows.iter().map(|r| int(&r[0]).unwrap()).collect();
    assert_eq!(persons.len(), 3 * 2694);
    let op = Csv::read(&out.join("observation_period.csv"));
    assert_eq!(op.rows.len(), 3 * 5343);
    let orphans = op
        .rows
        .iter()
        .filter(|r| !persons.contains(&int(&r[1]).unwrap()))
        .count();
    assert_eq!(orphans, 3 * 2649);
    let op_table = s
        .tables
        .iter()
        .find(|t| t.name == "observation_period")
        .unwrap();
    assert_eq!((op_table.rows, op_table.orphan_rows), (3 * 5343, 2649));
    assert_eq!(
        s.tables
            .iter()
            .find(|t| t.name == "condition_occurrence")
            .unwrap()
            .rows,
        3 * 65_332
    );

    // Vocabulary and reference tables: written once, byte for byte.
    for name in [
        "concept",
        "concept_ancestor",
        "concept_relationship",
        "vocabulary",
        "cdm_source",
        "provider",
    ] {
        assert_eq!(
            std::fs::read(src.join(format!("{name}.csv"))).unwrap(),
            std::fs::read(out.join(format!("{name}.csv"))).unwrap(),
            "{name}"
        );
        assert_eq!(out_counts[name], src_counts[name]);
    }
    for skipped in ["cost", "note"] {
        assert!(!out.join(format!("{skipped}.csv")).exists());
    }
}

#[test]
fn upper_case_source_names_are_matched_and_written_lower_case() {
    let tmp = tempfile::tempdir().unwrap();
    let s = qiao_synth::replicate(&synthea(), 2, tmp.path()).unwrap();
    assert_eq!(s.persons, 56);
    // Its largest id is visit_detail_id 1,001,802.
    assert_eq!(s.id_offset, 10_000_000);
    let vd = Csv::read(&tmp.path().join("visit_detail.csv"));
    assert_eq!(vd.rows.len(), 2 * 1791);
    let cs = tmp.path().join("concept_relationship.csv");
    assert_eq!(std::fs::metadata(cs).unwrap().len(), 13_945_864);
}

#[test]
fn zero_copies_and_missing_folders_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let e = qiao_synth::replicate(&gibleed(), 0, tmp.path()).unwrap_err();
    assert!(e.to_string().contains("at least 1"), "{e}");
    let missing = tmp.path().join("nope");
    let e = qiao_synth::replicate(&missing, 2, &tmp.path().join("o")).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let e = qiao_synth::replicate(&gibleed(), 2, &gibleed()).unwrap_err();
    assert!(!e.to_string().is_empty());
}
