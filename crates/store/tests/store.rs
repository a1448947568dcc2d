//! Round trip through the file format, and every way a store file can be damaged.

use qiao_cdm::{date, Column, RawTable, NULL_INT};
use qiao_store::{Store, StoreError};

fn d(s: &str) -> i32 {
    date::parse(s.as_bytes()).unwrap()
}

fn table(name: &str, rows: &[&[&str]]) -> RawTable {
    let spec = qiao_cdm::table(name).unwrap();
    let mut t = RawTable::new(spec);
    let kept: Vec<_> = spec.kept_columns().collect();
    for row in rows {
        for (c, col) in kept.iter().enumerate() {
            let v = row.get(c).copied().unwrap_or("");
            let target = t.column_mut(col.name).unwrap();
            if v.is_empty() {
                target.push_null();
                continue;
            }
            match target {
                Column::Id(x) => x.push(v.parse().unwrap()),
                Column::I32(x) if col.ty == qiao_cdm::ColType::Date => x.push(d(v)),
                Column::I32(x) => x.push(v.parse().unwrap()),
                Column::Float(x) => x.push(v.parse().unwrap()),
                Column::Text(x) => x.push(Some(v)),
            }
        }
    }
    t
}

fn sample() -> Vec<RawTable> {
    // kept person columns: person_id, gender, yob, month, day, race, ethnicity, location, provider, care_site, person_source_value, gender_src, race_src, eth_src
    let person = table(
        "person",
        &[
            &[
                "2",
                "8507",
                "1950",
                "",
                "",
                "0",
                "0",
                "",
                "",
                "",
                "MRN 0002 王",
            ],
            &["1", "8532", "1980", "", "", "0", "0"],
        ],
    );
    let op = table(
        "observation_period",
        &[
            &["10", "1", "2000-01-01", "2010-12-31", "44814724"],
            &["11", "2", "2005-01-01", "2006-01-01", "44814724"],
            &["12", "99", "2001-01-01", "2002-01-01", "44814724"],
        ],
    );
    // kept condition columns: id, person, concept, start, end, type, status, stop_reason, provider, visit, visit_detail, source
    let cond = table(
        "condition_occurrence",
        &[
            &[
                "5",
                "2",
                "201826",
                "2005-06-01",
                "",
                "32020",
                "",
                "",
                "",
                "",
                "",
                "201826",
            ],
            &[
                "3",
                "1",
                "201826",
                "2003-02-01",
                "2003-02-10",
                "32020",
                "",
                "stopped",
                "",
                "",
                "",
                "",
            ],
            &[
                "4",
                "1",
                "4112343",
                "2001-05-05",
                "",
                "32020",
                "",
                "",
                "",
                "",
                "",
                "",
            ],
            &[
                "6",
                "1",
                "201826",
                "2020-01-01",
                "",
                "32020",
                "",
                "",
                "",
                "",
                "",
                "",
            ],
        ],
    );
    let concept = table(
        "concept",
        &[
            &[
                "201826",
                "Type 2 diabetes mellitus",
                "Condition",
                "SNOMED",
                "Clinical Finding",
                "S",
                "44054006",
                "",
            ],
            &[
                "1",
                "Old",
                "Condition",
                "SNOMED",
                "Clinical Finding",
                "",
                "x",
                "D",
            ],
        ],
    );
    let anc = table(
        "concept_ancestor",
        &[&["201826", "201826"], &["201826", "4112343"]],
    );
    let rel = table(
        "concept_relationship",
        &[
            &["45", "201826", "Maps to", ""],
            &["46", "201826", "Maps to", "D"],
            &["47", "201826", "Is a", ""],
        ],
    );
    vec![person, op, cond, concept, anc, rel]
}

#[test]
fn round_trip_sorts_events_and_indexes_concepts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.qiao");
    let written = qiao_store::write(&path, sample(), serde_json::json!({"ok": true})).unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(
        &written,
        store.meta(),
        "write returns the meta the file holds"
    );

    let persons = store.persons();
    assert_eq!(persons.ids(), &[1, 2, 99]);
    assert!(persons.has_row(0) && persons.has_row(1) && !persons.has_row(2));
    assert_eq!(persons.year_of_birth(0), Some(1980));
    assert_eq!(persons.year_of_birth(2), None);
    // The hospital's record number, for the site's pre-screening list: by person id; None for a
    // NULL, an orphan (no person row) or an unknown id.
    assert_eq!(store.person_source_value(2), Some("MRN 0002 王"));
    assert_eq!(persons.source_value(1), Some("MRN 0002 王"));
    assert_eq!(store.person_source_value(1), None);
    assert_eq!(store.person_source_value(99), None);
    assert_eq!(store.person_source_value(3), None);
    assert_eq!(store.meta().persons, 2);
    assert_eq!(store.meta().tables["observation_period"].orphans, 1);
    assert_eq!(
        store.meta().tables["condition_occurrence"].outside_observation,
        1
    );
    assert_eq!(store.meta().first_date.as_deref(), Some("2000-01-01"));
    assert_eq!(store.meta().ingest_report["ok"], true);

    let c = store.domain("condition_occurrence").unwrap();
    assert_eq!(c.event_id(), &[4, 3, 6, 5]);
    assert_eq!(c.person(), &[0, 0, 0, 1]);
    assert_eq!(
        c.start(),
        &[
            d("2001-05-05"),
            d("2003-02-01"),
            d("2020-01-01"),
            d("2005-06-01")
        ]
    );
    // NULL end → start + 1 (Circe's COALESCE).
    assert_eq!(c.end().at(0), d("2001-05-06"));
    assert_eq!(c.end().at(1), d("2003-02-10"));
    assert_eq!(c.concept_rows(201826), &[1, 2, 3]);
    assert_eq!(c.concept_rows(4112343), &[0]);
    assert!(c.concept_rows(42).is_empty());
    assert_eq!(c.person_rows(0), 0..3);
    assert_eq!(c.person_rows(2), 4..4);
    // The primary key is served from the event ids; an all-NULL column is not stored.
    assert_eq!(
        c.column("condition_occurrence_id")
            .unwrap()
            .as_id()
            .unwrap()
            .to_vec(),
        c.event_id()
    );
    assert!(c.column("visit_detail_id").is_none());
    assert!(c.column("person_id").is_none());
    // Attribute columns in any encoding read the same: constant, 16-bit offsets with NULLs.
    assert_eq!(
        c.column("condition_type_concept_id")
            .unwrap()
            .as_i32()
            .unwrap()
            .to_vec(),
        [32020; 4]
    );
    assert_eq!(
        c.column("condition_type_concept_id")
            .unwrap()
            .as_i32()
            .unwrap()
            .get(4),
        None
    );
    // Core columns answer for their CDM columns; an end column with NULLs keeps its NULLs.
    assert_eq!(
        c.column("condition_start_date")
            .unwrap()
            .as_i32()
            .unwrap()
            .to_vec(),
        c.start().to_vec()
    );
    assert_eq!(
        c.column("condition_concept_id")
            .unwrap()
            .as_i32()
            .unwrap()
            .to_vec(),
        c.concept()
    );
    assert_eq!(
        c.column("condition_end_date")
            .unwrap()
            .as_i32()
            .unwrap()
            .get(0)
            .unwrap(),
        NULL_INT
    );
    let op = store.domain("observation_period").unwrap();
    assert_eq!(
        op.column("observation_period_end_date")
            .unwrap()
            .as_i32()
            .unwrap()
            .to_vec(),
        op.end().to_vec()
    );
    let stop = c.column("stop_reason").unwrap().as_text().unwrap();
    assert_eq!((stop.get(0), stop.get(1)), (None, Some("stopped")));
    let src = c
        .column("condition_source_concept_id")
        .unwrap()
        .as_i32()
        .unwrap();
    assert_eq!(src.to_vec(), [NULL_INT, NULL_INT, NULL_INT, 201826]);

    let op = store.domain("observation_period").unwrap();
    assert_eq!(op.person(), &[0, 1, 2]);
    assert_eq!(op.concept(), &[NULL_INT; 3]);

    let v = store.vocabulary();
    assert_eq!(v.len(), 2);
    assert!(v.is_valid(201826) && v.contains(1) && !v.is_valid(1) && !v.contains(5));
    assert_eq!(
        v.concept(201826).unwrap().concept_name,
        Some("Type 2 diabetes mellitus")
    );
    assert_eq!(v.descendants(201826), &[201826, 4112343]);
    assert_eq!(v.mapped_from(201826), &[45]);
}

#[test]
fn in_memory_store_equals_file_store() {
    let bytes = qiao_store::write_to_vec(sample(), serde_json::Value::Null).unwrap();
    let mem = qiao_store::from_tables(sample()).unwrap();
    let again = Store::from_bytes(&bytes).unwrap();
    assert_eq!(
        mem.domain("condition_occurrence").unwrap().event_id(),
        again.domain("condition_occurrence").unwrap().event_id()
    );
}

fn expect_corrupt(bytes: &[u8], needle: &str) {
    match Store::from_bytes(bytes) {
        Err(e) => assert!(
            e.to_string().contains(needle),
            "{e} should mention {needle}"
        ),
        Ok(_) => panic!("damaged store opened"),
    }
}

#[test]
fn damaged_stores_are_refused_with_clear_errors() {
    let bytes = qiao_store::write_to_vec(sample(), serde_json::Value::Null).unwrap();
    expect_corrupt(&bytes[..bytes.len() / 2], "no footer");
    expect_corrupt(&bytes[..10], "truncated");
    expect_corrupt(
        b"hello world, not a store at all................................................",
        "bad magic",
    );
    let mut other = bytes.clone();
    other[8] = 99;
    match Store::from_bytes(&other) {
        Err(StoreError::Version { found: 99, .. }) => {}
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("opened"),
    }
    // A flipped byte inside the data: opening reads no data and does not see it; the full
    // verification (`qiao store verify`, run by every write) catches it by the section checksum.
    let mut flipped = bytes.clone();
    flipped[200] ^= 0x55;
    let opened = Store::from_bytes(&flipped).expect("opening reads no data");
    let e = opened.verify().expect_err("verify reads every byte");
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
    assert!(Store::from_bytes(&bytes).unwrap().verify().is_ok());
    // Every single-byte truncation or flip is an error or a clean open, never a panic; every
    // flip of a byte that belongs to a section, the table of contents or the footer is caught by
    // opening or by verification.
    let toc = toc_of(&bytes);
    let in_section = |i: usize| {
        toc.sections
            .iter()
            .any(|s| (s.offset as usize..(s.offset + s.len) as usize).contains(&i))
    };
    let footer = &bytes[bytes.len() - qiao_store::format::FOOTER_LEN..];
    let toc_start = u64::from_le_bytes(footer[0..8].try_into().unwrap()) as usize;
    for cut in (0..bytes.len()).step_by(7) {
        let _ = Store::from_bytes(&bytes[..cut]);
        let mut f = bytes.clone();
        f[cut] = f[cut].wrapping_add(1);
        let outcome = Store::from_bytes(&f).and_then(|s| s.verify());
        let padding = (12..toc_start).contains(&cut) && !in_section(cut);
        if !padding {
            assert!(outcome.is_err(), "flip at byte {cut} went unnoticed");
        }
    }
}

/// The table of contents of a store's bytes.
fn toc_of(bytes: &[u8]) -> qiao_store::format::Toc {
    let footer = &bytes[bytes.len() - qiao_store::format::FOOTER_LEN..];
    let off = u64::from_le_bytes(footer[0..8].try_into().unwrap()) as usize;
    let len = u64::from_le_bytes(footer[8..16].try_into().unwrap()) as usize;
    serde_json::from_slice(&bytes[off..off + len]).unwrap()
}

/// `bytes` with its table of contents changed by `f` (footer and checksum updated to match), so
/// that only the structure checks can find what is wrong.
fn with_toc(bytes: &[u8], f: impl FnOnce(&mut qiao_store::format::Toc)) -> Vec<u8> {
    let footer = &bytes[bytes.len() - qiao_store::format::FOOTER_LEN..];
    let off = u64::from_le_bytes(footer[0..8].try_into().unwrap()) as usize;
    let mut toc = toc_of(bytes);
    f(&mut toc);
    let toc_bytes = serde_json::to_vec(&toc).unwrap();
    let mut out = bytes[..off].to_vec();
    out.extend_from_slice(&toc_bytes);
    let mut foot = footer.to_vec();
    foot[8..16].copy_from_slice(&(toc_bytes.len() as u64).to_le_bytes());
    foot[16..20].copy_from_slice(&crc32fast::hash(&toc_bytes).to_le_bytes());
    out.extend_from_slice(&foot);
    out
}

/// `bytes` with section `name`'s data changed by `f` and its checksum updated to match.
fn with_section(bytes: &[u8], name: &str, f: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let s = toc_of(bytes)
        .sections
        .into_iter()
        .find(|s| s.name == name)
        .unwrap();
    let mut out = bytes.to_vec();
    let range = s.offset as usize..(s.offset + s.len) as usize;
    f(&mut out[range.clone()]);
    let crc = crc32fast::hash(&out[range]);
    with_toc(&out, |t| {
        t.sections
            .iter_mut()
            .find(|x| x.name == name)
            .unwrap()
            .crc32 = crc;
    })
}

#[test]
fn opening_checks_structure_and_verification_every_element() {
    let bytes = qiao_store::write_to_vec(sample(), serde_json::Value::Null).unwrap();
    // Unchanged, the rewriting helpers give a store that opens and verifies.
    Store::from_bytes(&with_toc(&bytes, |_| {}))
        .unwrap()
        .verify()
        .unwrap();
    // Structural damage is caught when opening, without reading the data:
    // a core column shorter than the others,
    let shorter = with_toc(&bytes, |t| {
        let s = t
            .sections
            .iter_mut()
            .find(|s| s.name == "dom/condition_occurrence/start.u16")
            .unwrap();
        s.len -= 2;
    });
    expect_corrupt(&shorter, "domain condition_occurrence: inconsistent index");
    // a section beyond the data,
    let beyond = with_toc(&bytes, |t| t.sections[0].offset = 1 << 40);
    expect_corrupt(&beyond, "out of bounds");
    // per-person offsets that do not end at the number of rows.
    let offsets = with_section(&bytes, "dom/condition_occurrence/person_offsets", |b| {
        let n = b.len();
        b[n - 4] += 1;
    });
    expect_corrupt(&offsets, "domain condition_occurrence: inconsistent index");
    // a person column with fewer block starts than its rows need.
    let blocks = with_toc(&bytes, |t| {
        let s = t
            .sections
            .iter_mut()
            .find(|s| s.name == "dom/condition_occurrence/person.blocks")
            .unwrap();
        s.len -= 4;
    });
    expect_corrupt(&blocks, "domain condition_occurrence: inconsistent index");
    // Element-wise damage behind a matching checksum opens (nothing is read) and is caught by
    // verification: a row moved to another person,
    // (by its code, or by its block's first person)
    for section in ["person.u8", "person.blocks"] {
        let moved = with_section(
            &bytes,
            &format!("dom/condition_occurrence/{section}"),
            |b| b[0] = 1,
        );
        let e = Store::from_bytes(&moved).unwrap().verify().unwrap_err();
        assert!(
            e.to_string()
                .contains("domain condition_occurrence: inconsistent index"),
            "{section}: {e}"
        );
    }
    // a posting row past the end,
    let past = with_section(&bytes, "dom/condition_occurrence/post_rows", |b| b[0] = 200);
    let e = Store::from_bytes(&past).unwrap().verify().unwrap_err();
    assert!(e.to_string().contains("inconsistent index"), "{e}");
    // a person summary that disagrees with the observation periods,
    let summary = with_section(&bytes, "person/summary", |b| b[8] ^= 1);
    let e = Store::from_bytes(&summary).unwrap().verify().unwrap_err();
    assert!(e.to_string().contains("person/summary"), "{e}");
    // text that is not UTF-8.
    let text = with_section(&bytes, "vocab/concept/col/concept_name.data", |b| {
        b[0] = 0xff
    });
    let e = Store::from_bytes(&text).unwrap().verify().unwrap_err();
    assert!(e.to_string().contains("column parts"), "{e}");
}

#[test]
fn a_store_of_another_format_version_asks_for_a_new_ingest() {
    let mut bytes = qiao_store::write_to_vec(sample(), serde_json::Value::Null).unwrap();
    let old = qiao_store::format::FORMAT_VERSION - 1;
    bytes[8..12].copy_from_slice(&old.to_le_bytes());
    let e = Store::from_bytes(&bytes)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains(&format!("format version {old}")) && e.contains("re-ingest"),
        "{e}"
    );
}

#[test]
fn opening_a_missing_file_or_a_directory_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = Store::open(dir.path().join("nope"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("nope"), "{e}");
    let e = Store::open(dir.path()).err().unwrap().to_string();
    assert!(e.contains("directory"), "{e}");
}

#[test]
fn a_write_removes_what_an_interrupted_write_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.qiao");
    // A temporary file of a process that no longer exists (pid beyond the kernel's maximum).
    let stale = dir.path().join(".s.qiao.qstore.tmp-4294967295");
    std::fs::write(&stale, b"half a store").unwrap();
    let other = dir.path().join(".other.qiao.qstore.tmp-4294967295");
    std::fs::write(&other, b"not ours").unwrap();
    qiao_store::write(&path, sample(), serde_json::Value::Null).unwrap();
    assert!(!stale.exists());
    assert!(
        other.exists(),
        "only temporaries of the same store are touched"
    );
    Store::open(&path).unwrap();
}

#[test]
fn location_history_of_care_sites_is_not_a_person() {
    let mut tables = sample();
    // kept location_history columns: id, location_id, relationship_type, domain_id, entity_id, start, end
    tables.push(table(
        "location_history",
        &[
            &["1", "7", "", "PERSON", "1", "2001-01-01", ""],
            &["2", "7", "", "CARE_SITE", "555", "2001-01-01", ""],
        ],
    ));
    let store = qiao_store::from_tables(tables).unwrap();
    assert_eq!(store.persons().ids(), &[1, 2, 99]);
    let lh = store.domain("location_history").unwrap();
    assert_eq!(lh.event_id(), &[1]);
    assert_eq!(lh.end(), &[d("2099-12-31")]);
}

#[test]
fn person_summaries_hold_the_id_and_a_single_observation_period() {
    let mut tables = sample();
    // Person 2 gets a second period; person 1 keeps one; person 99 (an orphan) has one; a
    // person known only from a condition row has none.
    let op = tables
        .iter_mut()
        .find(|t| t.spec.name == "observation_period")
        .unwrap();
    *op = table(
        "observation_period",
        &[
            &["10", "1", "2000-01-01", "2010-12-31", "44814724"],
            &["11", "2", "2005-01-01", "2006-01-01", "44814724"],
            &["13", "2", "2007-01-01", "2008-01-01", "44814724"],
            &["12", "99", "2001-01-01", "2002-01-01", "44814724"],
        ],
    );
    let bytes = qiao_store::write_to_vec(tables, serde_json::Value::Null).unwrap();
    let store = Store::from_bytes(&bytes).unwrap();
    let ids = store.persons().ids().to_vec();
    let summaries = store.person_summaries();
    assert_eq!(summaries.len(), ids.len());
    let by_id = |id: i64| summaries[ids.iter().position(|&x| x == id).unwrap()];
    assert_eq!(by_id(1).person_id, 1);
    assert_eq!(
        by_id(1).single_period(),
        Some((d("2000-01-01"), d("2010-12-31")))
    );
    assert_eq!(by_id(2).single_period(), None, "two periods: read the rows");
    assert_eq!(
        by_id(99).single_period(),
        Some((d("2001-01-01"), d("2002-01-01")))
    );
}

#[test]
fn a_column_of_few_distinct_values_is_stored_as_one_byte_codes() {
    // condition_source_concept_id: three distinct values and a NULL.
    let row = |id: &str, src: &str| -> Vec<String> {
        let mut r: Vec<String> = [id, "1", "201826", "2001-01-01", "", "32020"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        r.extend(["", "", "", "", "", src].iter().map(|s| s.to_string()));
        r
    };
    let rows: Vec<Vec<String>> = vec![
        row("1", "45"),
        row("2", ""),
        row("3", "45"),
        row("4", "2000000000"),
        row("5", "-7"),
    ];
    let rows: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    let rows: Vec<&[&str]> = rows.iter().map(Vec::as_slice).collect();
    let mut tables = sample();
    tables.retain(|t| t.spec.name != "condition_occurrence");
    tables.push(table("condition_occurrence", &rows));
    let bytes = qiao_store::write_to_vec(tables, serde_json::Value::Null).unwrap();
    let names: Vec<String> = toc_of(&bytes)
        .sections
        .into_iter()
        .map(|s| s.name)
        .collect();
    let col = "dom/condition_occurrence/col/condition_source_concept_id";
    assert!(names.contains(&format!("{col}.dict")) && names.contains(&format!("{col}.u8")));
    let store = Store::from_bytes(&bytes).unwrap();
    store.verify().unwrap();
    let c = store.domain("condition_occurrence").unwrap();
    assert_eq!(c.event_id(), &[1, 2, 3, 4, 5]);
    let src = c
        .column("condition_source_concept_id")
        .unwrap()
        .as_i32()
        .unwrap();
    let got: Vec<Option<i32>> = (0..6).map(|r| src.get(r)).collect();
    assert_eq!(
        got,
        [
            Some(45),
            Some(NULL_INT),
            Some(45),
            Some(2_000_000_000),
            Some(-7),
            None
        ]
    );
    // A code past the dictionary: verification refuses it; reading it gives NULL, not a panic.
    let damaged = with_section(&bytes, &format!("{col}.u8"), |b| b[0] = 200);
    let store = Store::from_bytes(&damaged).unwrap();
    assert!(store.verify().is_err());
    let c = store.domain("condition_occurrence").unwrap();
    let src = c.column("condition_source_concept_id").unwrap();
    assert_eq!(src.as_i32().unwrap().get(0), Some(NULL_INT));
}

#[test]
fn event_ids_and_ids_of_few_values_are_stored_narrow_and_an_empty_table_costs_no_offsets() {
    // condition_occurrence: four event ids and visit ids of two values and a NULL, drug_exposure:
    // two ids 2⁴⁰ apart: each as one-byte codes into a dictionary (GiBleed's tables, with more
    // ids, take a base + 32-bit offsets); device_exposure: no rows.
    let cond_row = |id: &str, visit: &str| -> Vec<String> {
        [
            id,
            "1",
            "201826",
            "2001-01-01",
            "",
            "32020",
            "",
            "",
            "",
            visit,
            "",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let big = 1i64 << 40;
    let rows: Vec<Vec<String>> = vec![
        cond_row("9000000001", "7000000000"),
        cond_row("9000000002", ""),
        cond_row("9000000009", "7000000000"),
        cond_row("9000000003", "7000000005"),
    ];
    let drug: Vec<Vec<String>> = [(1i64, "2001-02-01"), (1 + big, "2001-03-01")]
        .iter()
        .map(|(id, day)| {
            [&id.to_string(), "2", "1127433", day, "", "", "38000177"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        })
        .collect();
    fn borrow(rows: &[Vec<String>]) -> Vec<Vec<&str>> {
        rows.iter()
            .map(|r| r.iter().map(String::as_str).collect())
            .collect()
    }
    fn slices<'a>(rows: &'a [Vec<&'a str>]) -> Vec<&'a [&'a str]> {
        rows.iter().map(Vec::as_slice).collect()
    }
    let (cond_rows, drug_rows) = (borrow(&rows), borrow(&drug));
    let mut tables = sample();
    tables.retain(|t| !["condition_occurrence", "drug_exposure"].contains(&t.spec.name));
    tables.push(table("condition_occurrence", &slices(&cond_rows)));
    tables.push(table("drug_exposure", &slices(&drug_rows)));
    tables.push(table("device_exposure", &[]));
    let bytes = qiao_store::write_to_vec(tables, serde_json::Value::Null).unwrap();
    let toc = toc_of(&bytes);
    let len_of = |name: &str| toc.sections.iter().find(|s| s.name == name).map(|s| s.len);
    let dom = "dom/condition_occurrence";
    assert_eq!(len_of(&format!("{dom}/event_id.u8")), Some(4));
    assert_eq!(
        len_of(&format!("{dom}/col/visit_occurrence_id.u8")),
        Some(4)
    );
    assert_eq!(len_of("dom/drug_exposure/event_id.u8"), Some(2));
    assert_eq!(len_of("dom/device_exposure/person_offsets"), Some(0));

    let store = Store::from_bytes(&bytes).unwrap();
    store.verify().unwrap();
    let c = store.domain("condition_occurrence").unwrap();
    // Sorted by (person, start, event id).
    assert_eq!(
        c.event_id(),
        &[9000000001, 9000000002, 9000000003, 9000000009]
    );
    let visits = c.column("visit_occurrence_id").unwrap().as_id().unwrap();
    assert_eq!(
        visits.to_vec(),
        [7000000000, qiao_cdm::NULL_ID, 7000000005, 7000000000]
    );
    assert_eq!(
        store.domain("drug_exposure").unwrap().event_id(),
        &[1, 1 + big]
    );
    let empty = store.domain("device_exposure").unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.person_offsets().len(), store.persons().len() + 1);
    assert!(empty.person_offsets().iter().all(|&o| o == 0));
    assert_eq!(empty.person_rows(1), 0..0);

    // A visit code past the dictionary: verification refuses it; reading it gives NULL.
    let damaged = with_section(&bytes, &format!("{dom}/col/visit_occurrence_id.u8"), |b| {
        b[0] = 200
    });
    let store = Store::from_bytes(&damaged).unwrap();
    assert!(store.verify().is_err());
    let c = store.domain("condition_occurrence").unwrap();
    let visits = c.column("visit_occurrence_id").unwrap().as_id().unwrap();
    assert_eq!(visits.get(0), Some(qiao_cdm::NULL_ID));
}

#[test]
fn the_person_column_is_stored_as_narrow_blocks_and_reads_back_every_row() {
    // 70,000 persons; condition_occurrence on persons close together (8-bit codes), drug_exposure
    // 999 persons apart (16-bit codes), procedure_occurrence on the first and last person (too far
    // apart for either: plain). 100 condition rows make two blocks of 64.
    let ids: Vec<String> = (1..=70_000).map(|i| i.to_string()).collect();
    let person_rows: Vec<[&str; 3]> = ids.iter().map(|i| [i.as_str(), "8507", "1950"]).collect();
    let person_refs: Vec<&[&str]> = person_rows.iter().map(|r| &r[..]).collect();
    let event = |id: usize, person: i64| -> Vec<String> {
        let (id, person) = (id.to_string(), person.to_string());
        vec![id, person, "201826".into(), "2001-01-01".into()]
    };
    let cond: Vec<Vec<String>> = (0..100).map(|i| event(i, 1 + (i as i64) / 3)).collect();
    let drug: Vec<Vec<String>> = vec![event(1, 1), event(2, 1000), event(3, 1000)];
    let proc: Vec<Vec<String>> = vec![event(1, 1), event(2, 70_000)];
    fn refs(rows: &[Vec<String>]) -> Vec<Vec<&str>> {
        rows.iter()
            .map(|r| r.iter().map(String::as_str).collect())
            .collect()
    }
    fn slices<'a>(rows: &'a [Vec<&'a str>]) -> Vec<&'a [&'a str]> {
        rows.iter().map(Vec::as_slice).collect()
    }
    let (c, dr, pr) = (refs(&cond), refs(&drug), refs(&proc));
    // drug_exposure and procedure_occurrence keep their concept third, their start fourth, as
    // condition_occurrence does.
    let tables = vec![
        table("person", &person_refs),
        table("condition_occurrence", &slices(&c)),
        table("drug_exposure", &slices(&dr)),
        table("procedure_occurrence", &slices(&pr)),
    ];
    let bytes = qiao_store::write_to_vec(tables, serde_json::Value::Null).unwrap();
    let toc = toc_of(&bytes);
    let len_of = |name: &str| toc.sections.iter().find(|s| s.name == name).map(|s| s.len);
    assert_eq!(
        len_of("dom/condition_occurrence/person.blocks"),
        Some(2 * 4)
    );
    assert_eq!(len_of("dom/condition_occurrence/person.u8"), Some(100));
    assert_eq!(len_of("dom/condition_occurrence/person"), None);
    assert_eq!(len_of("dom/drug_exposure/person.blocks"), Some(4));
    assert_eq!(len_of("dom/drug_exposure/person.u16"), Some(3 * 2));
    assert_eq!(len_of("dom/procedure_occurrence/person"), Some(2 * 4));
    assert_eq!(len_of("dom/procedure_occurrence/person.blocks"), None);

    let store = Store::from_bytes(&bytes).unwrap();
    store.verify().unwrap();
    let persons = store.persons();
    let person_ids = |table: &str| -> Vec<i64> {
        let d = store.domain(table).unwrap();
        assert_eq!(d.person().len(), d.len());
        assert_eq!(d.person().get(d.len()), None);
        d.person().iter().map(|p| persons.person_id(p)).collect()
    };
    let expected: Vec<i64> = (0..100).map(|i| 1 + i / 3).collect();
    assert_eq!(person_ids("condition_occurrence"), expected);
    assert_eq!(person_ids("drug_exposure"), [1, 1000, 1000]);
    assert_eq!(person_ids("procedure_occurrence"), [1, 70_000]);
    // Each row's person is the one whose offsets hold it.
    let cond = store.domain("condition_occurrence").unwrap();
    for p in 0..persons.len() as u32 {
        for r in cond.person_rows(p) {
            assert_eq!(cond.person().get(r), Some(p));
        }
    }
}

#[test]
fn start_and_end_dates_are_stored_as_16_bit_blocks_and_read_back_every_row() {
    // condition_occurrence: 100 rows of 34 persons, dates going back and forth between persons
    // (a block's smallest date is not its first row's), ends 0–40 days later or NULL (start + 1):
    // two blocks of 16-bit codes. drug_exposure: one block whose dates lie 190 years apart (too
    // far for 16 bits): plain.
    let day = |i: i32| date::format(d("1995-03-01") + (i * 7919) % 9000);
    let cond: Vec<Vec<String>> = (0..100)
        .map(|i| {
            let start = day(i);
            let end = match i % 3 {
                0 => String::new(),
                _ => date::format(d(&start) + i % 41),
            };
            let person = (1 + i / 3).to_string();
            vec![i.to_string(), person, "201826".into(), start, end]
        })
        .collect();
    let drug: Vec<Vec<String>> = vec![
        vec!["1".into(), "1".into(), "1".into(), "1850-01-01".into()],
        vec!["2".into(), "2".into(), "1".into(), "2040-06-30".into()],
    ];
    let tables = persons_and_events(
        34,
        &[("condition_occurrence", &cond), ("drug_exposure", &drug)],
    );
    let bytes = qiao_store::write_to_vec(tables, serde_json::Value::Null).unwrap();
    let toc = toc_of(&bytes);
    let len_of = |name: &str| toc.sections.iter().find(|s| s.name == name).map(|s| s.len);
    for col in ["start", "end"] {
        let name = format!("dom/condition_occurrence/{col}");
        assert_eq!(len_of(&format!("{name}.blocks")), Some(2 * 4), "{col}");
        assert_eq!(len_of(&format!("{name}.u16")), Some(100 * 2), "{col}");
        assert_eq!(len_of(&name), None, "{col}");
    }
    assert_eq!(len_of("dom/drug_exposure/start"), Some(2 * 4));
    assert_eq!(len_of("dom/drug_exposure/start.blocks"), None);

    let store = Store::from_bytes(&bytes).unwrap();
    store.verify().unwrap();
    let cd = store.domain("condition_occurrence").unwrap();
    assert_eq!((cd.start().len(), cd.end().len()), (100, 100));
    assert_eq!((cd.start().get(100), cd.end().get(100)), (None, None));
    // Every row reads back its own dates (rows sorted by person, start, id: find each by its id).
    let ids = cd.event_id();
    for r in 0..100 {
        let i = ids.get(r).unwrap() as usize;
        let start = d(&cond[i][3]);
        let end = if cond[i][4].is_empty() {
            start + 1
        } else {
            d(&cond[i][4])
        };
        assert_eq!((cd.start().at(r), cd.end().at(r)), (start, end), "row {r}");
        let as_column = |name: &str| cd.column(name).unwrap().as_i32().unwrap().get(r);
        assert_eq!(as_column("condition_start_date"), Some(start));
    }
    // Within a person, starts ascend: partition_point finds the first later than a date.
    let rows = cd.person_rows(5);
    let first = cd.start().at(rows.start);
    assert_eq!(
        cd.start().partition_point(rows.clone(), |s| s <= first),
        rows.start + 1
    );
    assert_eq!(cd.start().partition_point(rows.clone(), |_| true), rows.end);
    let dg = store.domain("drug_exposure").unwrap();
    assert_eq!(dg.start().to_vec(), [d("1850-01-01"), d("2040-06-30")]);
    assert_eq!(dg.end().to_vec(), [d("1850-01-02"), d("2040-07-01")]);
}

#[test]
fn ids_close_within_64_rows_are_stored_as_16_bit_blocks() {
    // condition_occurrence: 300 rows of 100 persons, event ids 1,000 apart per person (300
    // distinct: too many for a dictionary) and visit ids (290, and NULLs): every 64 rows within 16 bits
    // of their smallest, so blocks. drug_exposure: ids 100,000 apart: 32-bit offsets from a base.
    let mut cond: Vec<Vec<String>> = Vec::new();
    let mut drug: Vec<Vec<String>> = Vec::new();
    for p in 1..=100i64 {
        for k in 0..3i64 {
            let id = 5_000_000_000 + p * 1000 + k;
            let visit = match (p % 10, k) {
                (0, 1) => String::new(),
                _ => (7_000_000_000 + p * 10 + k).to_string(),
            };
            let day = format!("2001-01-0{}", k + 1);
            cond.push(vec![
                id.to_string(),
                p.to_string(),
                "201826".into(),
                day.clone(),
                String::new(),
                "32020".into(),
                String::new(),
                String::new(),
                String::new(),
                visit,
            ]);
            let drug_id = (p * 3 + k) * 100_000;
            drug.push(vec![
                drug_id.to_string(),
                p.to_string(),
                "1127433".into(),
                day,
            ]);
        }
    }
    let tables = persons_and_events(
        100,
        &[("condition_occurrence", &cond), ("drug_exposure", &drug)],
    );
    let bytes = qiao_store::write_to_vec(tables, serde_json::Value::Null).unwrap();
    let toc = toc_of(&bytes);
    let len_of = |name: &str| toc.sections.iter().find(|s| s.name == name).map(|s| s.len);
    let dom = "dom/condition_occurrence";
    for col in ["event_id", "col/visit_occurrence_id"] {
        assert_eq!(len_of(&format!("{dom}/{col}.blocks")), Some(5 * 8), "{col}");
        assert_eq!(len_of(&format!("{dom}/{col}.u16")), Some(300 * 2), "{col}");
    }
    assert_eq!(len_of("dom/drug_exposure/event_id.u32"), Some(300 * 4));
    assert_eq!(len_of("dom/drug_exposure/event_id.blocks"), None);

    let store = Store::from_bytes(&bytes).unwrap();
    store.verify().unwrap();
    let cd = store.domain("condition_occurrence").unwrap();
    let want_ids: Vec<i64> = cond.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(cd.event_id().to_vec(), want_ids);
    assert_eq!(cd.event_id().get(300), None);
    let visits = cd.column("visit_occurrence_id").unwrap().as_id().unwrap();
    let want_visits: Vec<i64> = cond
        .iter()
        .map(|r| r[9].parse().unwrap_or(qiao_cdm::NULL_ID))
        .collect();
    assert_eq!(visits.to_vec(), want_visits);
    let want_drug: Vec<i64> = drug.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(
        store.domain("drug_exposure").unwrap().event_id().to_vec(),
        want_drug
    );

    // Blocks that do not match the rows are refused on open.
    let short = with_toc(&bytes, |t| {
        let s = t
            .sections
            .iter_mut()
            .find(|s| s.name == format!("{dom}/col/visit_occurrence_id.blocks"))
            .unwrap();
        s.len -= 8;
    });
    expect_corrupt(&short, "column parts or lengths disagree");
}

/// Persons 1..=`persons` and event tables given as rows of owned strings (kept columns in order).
fn persons_and_events(persons: i64, events: &[(&str, &[Vec<String>])]) -> Vec<RawTable> {
    let ids: Vec<String> = (1..=persons).map(|i| i.to_string()).collect();
    let person_rows: Vec<[&str; 3]> = ids.iter().map(|i| [i.as_str(), "8507", "1950"]).collect();
    let person_refs: Vec<&[&str]> = person_rows.iter().map(|r| &r[..]).collect();
    let mut tables = vec![table("person", &person_refs)];
    for (name, rows) in events {
        let strs: Vec<Vec<&str>> = rows
            .iter()
            .map(|r| r.iter().map(String::as_str).collect())
            .collect();
        let refs: Vec<&[&str]> = strs.iter().map(Vec::as_slice).collect();
        tables.push(table(name, &refs));
    }
    tables
}
