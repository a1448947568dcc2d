//! `hospitals`: resampled timelines with new ids, shifted dates, per-hospital mixes.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use common::*;
use qiao_cdm::date::{self, Day};
use qiao_cdm::{ColType, TableKind};
use qiao_synth::{hospital_sizes, HospitalOptions, HospitalSummary};

fn opts(from: &Path, out: &Path, seed: u64, persons: u64) -> HospitalOptions {
    let mut o = HospitalOptions::new(from, out);
    o.hospitals = 3;
    o.persons = persons;
    o.seed = seed;
    o
}

#[test]
fn sizes_spread_geometrically_around_p() {
    assert_eq!(hospital_sizes(200, 3, 4.0), [400, 200, 100]);
    assert_eq!(hospital_sizes(100, 4, 8.0), [283, 141, 71, 35]);
    assert_eq!(hospital_sizes(1000, 1, 4.0), [1000]);
    assert_eq!(hospital_sizes(50, 3, 1.0), [50, 50, 50]);
    assert_eq!(hospital_sizes(0, 2, 4.0), [0, 0]);
    assert_eq!(hospital_sizes(1, 3, 100.0), [10, 1, 1]);
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn same_seed_same_bytes_other_seed_other_hospitals() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let ha = qiao_synth::hospitals(&opts(&gibleed(), &a, 5, 100)).unwrap();
    qiao_synth::hospitals(&opts(&gibleed(), &b, 5, 100)).unwrap();
    let hc = qiao_synth::hospitals(&opts(&gibleed(), &c, 6, 100)).unwrap();
    for h in 1..=3 {
        let name = format!("hospital_{h}");
        let (fa, fb) = (files(&a.join(&name)), files(&b.join(&name)));
        assert_eq!(fa.len(), 32); // 31 tables and ROWCOUNTS.tsv
        assert!(fa == fb, "{name} differs between two runs with seed 5");
        let fc = files(&c.join(&name));
        let person =
            |f: &[(String, Vec<u8>)]| f.iter().find(|(n, _)| n == "person.csv").unwrap().1.clone();
        assert_ne!(
            person(&fa),
            person(&fc),
            "{name}: seeds 5 and 6 drew the same persons"
        );
    }
    // Sizes do not depend on the seed; mixes do.
    assert_eq!(
        ha.iter().map(|h| h.persons).collect::<Vec<_>>(),
        [200, 100, 50]
    );
    assert_eq!(
        hc.iter().map(|h| h.persons).collect::<Vec<_>>(),
        [200, 100, 50]
    );
    assert_ne!(ha[0].age_tilt, hc[0].age_tilt);
}

/// Applies a copy's shift to a source date or datetime text as the synthesizer documents.
fn shifted(src: &str, shift: Day, datetime: bool) -> String {
    let s = src.trim();
    match date::parse(s.as_bytes()) {
        Some(day) => {
            let len = if s.len() >= 10 && s.as_bytes()[4] == b'-' {
                10
            } else {
                8
            };
            format!("{}{}", date::format(day + shift), &s[len..])
        }
        None if datetime => String::new(),
        None => src.to_string(),
    }
}

fn birth(row: &[String], t: &Csv) -> Day {
    let v = |c: &str| row[t.col(c).unwrap()].parse::<u32>().unwrap();
    date::from_ymd(
        v("year_of_birth") as i32,
        v("month_of_birth"),
        v("day_of_birth"),
    )
}

/// Checks every row of a hospital against its source row; returns rows checked.
fn check_hospital(src: &Path, h: &HospitalSummary) -> usize {
    let off = h.id_offset;
    let tables = linked_tables(src);
    let src_csv: HashMap<&str, Csv> = tables.iter().map(|(s, p)| (s.name, Csv::read(p))).collect();
    let out_csv: HashMap<&str, Csv> = tables
        .iter()
        .map(|(s, _)| (s.name, Csv::read(&h.dir.join(format!("{}.csv", s.name)))))
        .collect();

    // Persons: one row per draw; each is a source person's copy with a day shift.
    let (sp, op) = (&src_csv["person"], &out_csv["person"]);
    assert_eq!(op.rows.len() as u64, h.persons);
    let src_person: HashMap<i64, &Vec<String>> =
        sp.rows.iter().map(|r| (int(&r[0]).unwrap(), r)).collect();
    let mut shift_of: HashMap<i64, Day> = HashMap::new();
    for row in &op.rows {
        let pid = int(&row[0]).unwrap();
        let s = src_person[&(pid % off)];
        let shift = birth(row, op) - birth(s, sp);
        assert!(shift.abs() <= 5 * 366 + 183, "shift {shift}");
        assert!(shift_of.insert(pid, shift).is_none(), "person {pid} twice");
    }

    // Source visits and visit details: id -> person.
    let owner = |t: &str| -> HashMap<i64, i64> {
        src_csv.get(t).map_or(HashMap::new(), |c| {
            c.rows
                .iter()
                .map(|r| {
                    (
                        int(&r[c.col(&format!("{t}_id")).unwrap()]).unwrap(),
                        int(&r[c.col("person_id").unwrap()]).unwrap(),
                    )
                })
                .collect()
        })
    };
    let (src_visit, src_detail) = (owner("visit_occurrence"), owner("visit_detail"));
    let out_owner = |t: &str| -> HashMap<i64, i64> {
        out_csv.get(t).map_or(HashMap::new(), |c| {
            c.rows
                .iter()
                .map(|r| {
                    (
                        int(&r[c.col(&format!("{t}_id")).unwrap()]).unwrap(),
                        int(&r[c.col("person_id").unwrap()]).unwrap(),
                    )
                })
                .collect()
        })
    };
    let (out_visit, out_detail) = (out_owner("visit_occurrence"), out_owner("visit_detail"));

    let mut checked = 0;
    let mut refs_checked = 0;
    for (spec, _) in &tables {
        let (s, o) = (&src_csv[spec.name], &out_csv[spec.name]);
        assert_eq!(s.header, o.header, "{}", spec.name);
        let person_col = o.col(spec.event.map_or("person_id", |e| e.person)).unwrap();
        let pk_col = match spec.kind {
            TableKind::Person => Some(0),
            _ => spec.event.and_then(|e| e.pk).and_then(|pk| o.col(pk)),
        };
        let ids = offset_id_cols(spec, o);
        // Source rows by (person, primary key).
        let mut by_key: HashMap<(i64, Option<i64>), Vec<&Vec<String>>> = HashMap::new();
        for r in &s.rows {
            let key = (
                int(&r[person_col]).unwrap(),
                pk_col.and_then(|c| int(&r[c])),
            );
            by_key.entry(key).or_default().push(r);
        }
        let mut keys = HashSet::new();
        for row in &o.rows {
            let pid = int(&row[person_col]).unwrap();
            let shift = *shift_of
                .get(&pid)
                .unwrap_or_else(|| panic!("{}: person {pid} not in person.csv", spec.name));
            let copy = pid / off;
            // Every offset id lies in its person's copy range.
            for &c in &ids {
                if let Some(v) = int(&row[c]) {
                    assert_eq!(v / off, copy, "{} {}", spec.name, o.header[c]);
                }
            }
            // The row is its source row with ids offset and dates shifted.
            let key = (
                pid % off,
                pk_col.and_then(|c| int(&row[c])).map(|v| v % off),
            );
            let expect = |src_row: &Vec<String>| -> Vec<String> {
                src_row
                    .iter()
                    .enumerate()
                    .map(|(j, v)| {
                        let name = &o.header[j];
                        let ty = spec.column(name).map(|c| c.ty);
                        if ids.contains(&j) {
                            int(v).map_or(String::new(), |v| (v + copy * off).to_string())
                        } else if spec.kind == TableKind::Person && name.ends_with("_of_birth") {
                            row[j].clone() // checked through the shift above
                        } else if ty == Some(ColType::Date)
                            || name.ends_with("_date")
                            || name.ends_with("_time")
                        {
                            shifted(v, shift, false)
                        } else if name.ends_with("_datetime") {
                            shifted(v, shift, true)
                        } else {
                            v.clone()
                        }
                    })
                    .collect()
            };
            let cands = &by_key[&key];
            assert!(
                cands.iter().any(|c| &expect(c) == row),
                "{}: {row:?} is not a shifted copy of any of {cands:?}",
                spec.name
            );
            // Dates are valid.
            for (j, name) in o.header.iter().enumerate() {
                if spec.column(name).is_some_and(|c| c.ty == ColType::Date) && !row[j].is_empty() {
                    assert!(
                        date::parse(row[j].as_bytes()).is_some(),
                        "{} {name} {}",
                        spec.name,
                        row[j]
                    );
                }
            }
            // Visit references resolve within the hospital whenever they did within the person in the source.
            for (col, src_ref, out_ref) in [
                ("visit_occurrence_id", &src_visit, &out_visit),
                ("visit_detail_id", &src_detail, &out_detail),
                ("preceding_visit_occurrence_id", &src_visit, &out_visit),
                ("preceding_visit_detail_id", &src_detail, &out_detail),
            ] {
                if spec.event.and_then(|e| e.pk) == Some(col) {
                    continue;
                }
                let Some(c) = o.col(col) else { continue };
                let Some(v) = int(&row[c]) else { continue };
                if src_ref.get(&(v % off)) == Some(&(pid % off)) {
                    assert_eq!(out_ref.get(&v), Some(&pid), "{} {col} {v}", spec.name);
                    refs_checked += 1;
                }
            }
            if let Some(c) = pk_col {
                keys.insert(int(&row[c]));
            }
            checked += 1;
        }
        if let Some(c) = pk_col {
            // No id collides across copies: distinct output keys = distinct (copy, source key).
            let pairs: HashSet<(i64, Option<i64>)> = o
                .rows
                .iter()
                .map(|r| {
                    (
                        int(&r[person_col]).unwrap() / off,
                        int(&r[c]).map(|v| v % off),
                    )
                })
                .collect();
            assert_eq!(keys.len(), pairs.len(), "{}", spec.name);
        }
    }
    assert!(refs_checked > 0 || out_visit.is_empty());
    checked
}

#[test]
fn gibleed_hospitals_are_consistent_copies_of_source_timelines() {
    let src = gibleed();
    let tmp = tempfile::tempdir().unwrap();
    let hs = qiao_synth::hospitals(&opts(&src, tmp.path(), 2024, 200)).unwrap();
    assert_eq!(hs.len(), 3);
    assert_eq!(
        hs.iter().map(|h| h.persons).collect::<Vec<_>>(),
        [400, 200, 100]
    );
    let src_persons = Csv::read(&src.join("person.csv")).rows.len() as f64;
    for h in &hs {
        assert_eq!(h.id_offset, 1_000_000);
        check_hospital(&src, h);
        // Orphan observation periods are left out: one period per person.
        let op = h
            .tables
            .iter()
            .find(|t| t.name == "observation_period")
            .unwrap();
        assert_eq!((op.rows, op.orphan_rows), (h.persons, 2649));
        assert_eq!(rowcounts(&h.dir)["person"], h.persons);
        // Vocabulary copied unchanged.
        assert_eq!(
            std::fs::read(src.join("concept_ancestor.csv")).unwrap(),
            std::fs::read(h.dir.join("concept_ancestor.csv")).unwrap()
        );
        // Case mix: three boosted marker concepts, each over-represented against the source.
        assert_eq!(h.case_mix.len(), 3);
        let co = Csv::read(&h.dir.join("condition_occurrence.csv"));
        let de = Csv::read(&h.dir.join("drug_exposure.csv"));
        for b in &h.case_mix {
            assert!((2.0..4.0).contains(&b.factor));
            let (t, c) = if b.table == "condition_occurrence" {
                (&co, 2)
            } else {
                (&de, 2)
            };
            let holders: HashSet<&str> = t
                .rows
                .iter()
                .filter(|r| int(&r[c]) == Some(b.concept_id))
                .map(|r| r[1].as_str())
                .collect();
            let here = holders.len() as f64 / h.persons as f64;
            let there = b.source_persons as f64 / src_persons;
            assert!(
                here > there,
                "{} {}: {here} <= {there}",
                h.name,
                b.concept_id
            );
        }
    }
    assert!(hs.iter().any(|h| h.age_tilt > 0.0) || hs.iter().any(|h| h.age_tilt < 0.0));
}

#[test]
fn synthea_hospitals_keep_visit_and_visit_detail_references() {
    // Upper-case file names, CDM 5.4, visit_detail linked to visits and events.
    let src = synthea();
    let tmp = tempfile::tempdir().unwrap();
    let mut o = opts(&src, tmp.path(), 9, 40);
    o.size_spread = 1.0;
    let hs = qiao_synth::hospitals(&o).unwrap();
    for h in &hs {
        assert_eq!(h.persons, 40);
        assert_eq!(h.id_offset, 10_000_000);
        let rows = check_hospital(&src, h);
        assert!(rows > 10_000, "{rows}");
        assert!(h.dir.join("person.csv").exists());
        assert!(h.dir.join("visit_detail.csv").exists());
    }
}

#[test]
fn no_shift_keeps_source_dates() {
    let src = gibleed();
    let tmp = tempfile::tempdir().unwrap();
    let mut o = opts(&src, tmp.path(), 1, 30);
    o.shift_years = 0;
    o.hospitals = 1;
    let hs = qiao_synth::hospitals(&o).unwrap();
    let sp: HashMap<String, Vec<String>> = Csv::read(&src.join("person.csv"))
        .rows
        .into_iter()
        .map(|r| (r[0].clone(), r))
        .collect();
    for row in Csv::read(&hs[0].dir.join("person.csv")).rows {
        let src_id = (int(&row[0]).unwrap() % 1_000_000).to_string();
        assert_eq!(row[1..], sp[&src_id][1..]);
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn bad_input_is_reported_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let person = "person_id,gender_concept_id,year_of_birth\n1,8507,1970\n2,8532,1980\n";

    let bad_id = tmp.path().join("bad_id");
    write(
        &bad_id,
        "PERSON.csv",
        "person_id,gender_concept_id,year_of_birth\n1,8507,1970\nabc,8507,1980\n",
    );
    let e = qiao_synth::hospitals(&opts(&bad_id, &out, 1, 5))
        .unwrap_err()
        .to_string();
    assert!(e.contains("PERSON.csv:3") && e.contains("person_id"), "{e}");
    let e = qiao_synth::replicate(&bad_id, 2, &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("PERSON.csv:3"), "{e}");

    let bad_date = tmp.path().join("bad_date");
    write(&bad_date, "person.csv", person);
    write(
        &bad_date,
        "observation_period.csv",
        "observation_period_id,person_id,observation_period_start_date,observation_period_end_date\n1,1,2020-01-01,2020-13-45\n",
    );
    let e = qiao_synth::hospitals(&opts(&bad_date, &out, 1, 5))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("observation_period.csv:2") && e.contains("observation_period_end_date"),
        "{e}"
    );
    // Replicas do not read dates, so they copy what is there.
    qiao_synth::replicate(&bad_date, 2, &out).unwrap();

    let ragged = tmp.path().join("ragged");
    write(
        &ragged,
        "person.csv",
        "person_id,gender_concept_id\n1,8507\n2\n",
    );
    let e = qiao_synth::hospitals(&opts(&ragged, &out, 1, 5))
        .unwrap_err()
        .to_string();
    assert!(e.contains("person.csv") && e.contains("line: 3"), "{e}");

    let no_person = tmp.path().join("no_person");
    write(&no_person, "concept.csv", "concept_id,concept_name\n1,x\n");
    let e = qiao_synth::hospitals(&opts(&no_person, &out, 1, 5))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no person table"), "{e}");

    let empty = tmp.path().join("empty");
    write(&empty, "person.csv", "");
    let e = qiao_synth::hospitals(&opts(&empty, &out, 1, 5))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no persons"), "{e}");

    let mut o = opts(&gibleed(), &out, 1, 5);
    o.size_spread = f64::NAN;
    assert!(qiao_synth::hospitals(&o).is_err());
    o.size_spread = 2.0;
    o.hospitals = 0;
    assert!(qiao_synth::hospitals(&o).is_err());
    o.hospitals = 2;
    o.persons = u64::MAX;
    let e = qiao_synth::hospitals(&o).unwrap_err().to_string();
    assert!(e.contains("too big"), "{e}");
    o.persons = 5;
    o.shift_years = 101;
    assert!(qiao_synth::hospitals(&o).is_err());
}

#[test]
fn minimal_cdm_with_year_only_births_and_datetimes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src, "person.csv", "person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth,birth_datetime\n7,8507,1970,,,\n8,8532,1980,2,29,1980-02-29 10:30:00\n");
    write(
        &src,
        "Visit_Occurrence.CSV",
        "visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_start_datetime,visit_end_date,provider_id\n70,7,9201,2000-01-01,bad,2000-01-02,3\n80,8,9201,2001-03-01,2001-03-01T08:00:00,,4\n",
    );
    let out = tmp.path().join("out");
    let mut o = opts(&src, &out, 3, 20);
    o.hospitals = 2;
    o.case_mix = 0;
    let hs = qiao_synth::hospitals(&o).unwrap();
    assert_eq!(hs.iter().map(|h| h.persons).collect::<Vec<_>>(), [40, 10]);
    for h in &hs {
        assert_eq!(h.id_offset, 100);
        let p = Csv::read(&h.dir.join("person.csv"));
        let v = Csv::read(&h.dir.join("visit_occurrence.csv"));
        let mut shift = HashMap::new();
        for r in &p.rows {
            let id = int(&r[0]).unwrap();
            let yob = int(&r[2]).unwrap();
            if id % 100 == 8 {
                let b = date::from_ymd(yob as i32, r[3].parse().unwrap(), r[4].parse().unwrap());
                let s = b - date::from_ymd(1980, 2, 29);
                assert_eq!(r[5], format!("{} 10:30:00", date::format(b)));
                shift.insert(id, Some(s));
            } else {
                assert_eq!((r[3].as_str(), r[4].as_str(), r[5].as_str()), ("", "", ""));
                assert!((1964..=1976).contains(&yob), "{yob}");
                shift.insert(id, None);
            }
        }
        assert_eq!(v.rows.len(), p.rows.len());
        for r in &v.rows {
            let (vid, pid) = (int(&r[0]).unwrap(), int(&r[1]).unwrap());
            assert_eq!(vid / 100, pid / 100);
            match shift[&pid] {
                Some(s) => {
                    assert_eq!(r[3], date::format(date::from_ymd(2001, 3, 1) + s));
                    assert_eq!(r[4], format!("{}T08:00:00", r[3]));
                    assert_eq!((r[5].as_str(), r[6].as_str()), ("", "4"));
                }
                None => {
                    assert_eq!(r[4], "", "an unparseable datetime is blanked");
                    let start = date::parse(r[3].as_bytes()).unwrap();
                    assert_eq!(date::parse(r[5].as_bytes()), Some(start + 1));
                    assert_eq!(r[6], "3");
                }
            }
        }
    }
}
