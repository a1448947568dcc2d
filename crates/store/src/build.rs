//! Building a store from CDM tables held in memory: index persons, sort events, build postings and
//! vocabulary closures, and write it all as sections.

use std::collections::BTreeMap;
use std::io::{self, Write};

use qiao_cdm::{date, Column, EndRule, RawTable, TableKind, NULL_ID, NULL_INT};
use rayon::prelude::*;

use crate::column;
use crate::day_column::DayBlocks;
use crate::format::{Element, SectionWriter};
use crate::meta::{Meta, TableMeta};
use crate::PersonSummary;

/// Builds every section of a store from `tables`, writes them to `out`, and returns the writer and
/// what the store says about itself (so a caller need not reopen the file to learn it).
/// Tables may come in any order; at most one per CDM table name (later ones are appended to earlier ones).
pub fn write_image<W: Write>(
    out: W,
    tables: Vec<RawTable>,
    ingest_report: serde_json::Value,
) -> io::Result<(W, Meta)> {
    let mut by_name: BTreeMap<&'static str, RawTable> = BTreeMap::new();
    let mut order: Vec<&'static str> = Vec::new();
    for t in tables {
        match by_name.get_mut(t.spec.name) {
            Some(existing) => existing.append(t),
            None => {
                order.push(t.spec.name);
                by_name.insert(t.spec.name, t);
            }
        }
    }

    let mut w = SectionWriter::new(out)?;
    let mut meta = Meta {
        ingest_report,
        ..Meta::default()
    };

    // 1. The person universe: person rows plus every person id an event table mentions.
    let person = by_name.get("person");
    let person_ids: &[i64] = person
        .and_then(|p| p.column("person_id"))
        .and_then(Column::as_id)
        .unwrap_or(&[]);
    let mut universe: Vec<i64> = person_ids
        .iter()
        .copied()
        .filter(|&id| id != NULL_ID)
        .collect();
    for t in by_name.values() {
        if let Some(ev) = &t.spec.event {
            if let Some(ids) = t.column(ev.person).and_then(Column::as_id) {
                let rows = PersonRows::of(t);
                universe.extend(
                    ids.iter()
                        .enumerate()
                        .filter(|&(r, &id)| id != NULL_ID && rows.is_person(r))
                        .map(|(_, &id)| id),
                );
            }
        }
    }
    universe.par_sort_unstable();
    universe.dedup();
    let has_row = write_persons(&mut w, &mut meta, person, &universe)?;

    // 2. Observation periods first: every other table counts its events outside them.
    let mut op_index: Option<PeriodIndex> = None;
    let mut first_date = i32::MAX;
    let mut last_date = i32::MIN;
    let mut event_names: Vec<&'static str> = order
        .iter()
        .copied()
        .filter(|n| by_name[n].spec.kind == TableKind::Event)
        .collect();
    event_names.sort_by_key(|n| *n != "observation_period");
    for name in event_names {
        let t = &by_name[name];
        let ev = t.spec.event.as_ref().expect("event table has roles");
        let built = sort_events(t, &universe);
        let n = built.order.len();
        check_rows(name, n as u64)?;
        let mut tm = TableMeta {
            rows: n as u64,
            columns_present: present(t),
            ..TableMeta::default()
        };
        tm.orphans = built
            .person
            .iter()
            .filter(|&&p| has_row[p as usize] == 0)
            .count() as u64;

        // Per-person row ranges.
        let mut offsets = vec![0u32; universe.len() + 1];
        for &p in &built.person {
            offsets[p as usize + 1] += 1;
        }
        for i in 0..universe.len() {
            offsets[i + 1] += offsets[i];
        }

        if name == "observation_period" {
            op_index = Some((offsets.clone(), built.start.clone(), built.end.clone()));
        } else if let Some(op) = &op_index {
            tm.outside_observation = (0..n)
                .into_par_iter()
                .filter(|&r| outside_observation(op, built.person[r] as usize, built.start[r]))
                .count() as u64;
        }
        if name != "location_history" && n > 0 {
            first_date = first_date.min(*built.start.iter().min().unwrap_or(&i32::MAX));
            let max_start = *built.start.iter().max().unwrap_or(&i32::MIN);
            let max_end = if matches!(ev.end_rule, EndRule::StartPlusOne) {
                i32::MIN
            } else {
                ev.end
                    .and_then(|e| t.column(e))
                    .and_then(Column::as_i32)
                    .map_or(i32::MIN, |v| {
                        built
                            .order
                            .iter()
                            .map(|&i| v[i as usize])
                            .filter(|&d| d != NULL_INT)
                            .max()
                            .unwrap_or(i32::MIN)
                    })
            };
            last_date = last_date.max(max_start).max(max_end);
        }

        let prefix = format!("dom/{name}");
        crate::person_column::write(&mut w, &prefix, &offsets)?;
        for (col, values) in [("start", &built.start), ("end", &built.end)] {
            let mut blocks = DayBlocks::new();
            blocks.extend(values);
            blocks.write(&mut w, &format!("{prefix}/{col}"), |out| out(values))?;
        }
        w.section(format!("{prefix}/concept"), &built.concept)?;
        // Event ids in their smallest encoding (base + 32-bit offsets where they fit).
        let event_id = Column::Id(built.event_id);
        column::write_encoded(&mut w, &format!("{prefix}/event_id"), &event_id, true)?;
        // An empty table's offsets are all 0: not stored (see `Store::domain`).
        w.section(
            format!("{prefix}/person_offsets"),
            offsets_if_rows(&offsets, n),
        )?;
        let (keys, post_offsets, rows) = postings(&built.concept);
        w.section(format!("{prefix}/post_keys"), &keys)?;
        w.section(format!("{prefix}/post_offsets"), &post_offsets)?;
        w.section(format!("{prefix}/post_rows"), &rows)?;
        // Attribute columns (the core columns and all-NULL ones are not stored: see `stored_apart`).
        for (cname, col) in &t.columns {
            if !stored_apart(ev, cname, col.any_null(), col.all_null()) {
                continue;
            }
            column::write_encoded(
                &mut w,
                &format!("{prefix}/col/{cname}"),
                &col.gather(&built.order),
                true,
            )?;
        }
        meta.tables.insert(name.into(), tm);
    }
    write_summary(
        &mut w,
        &mut meta,
        &universe,
        op_index.as_ref(),
        (first_date, last_date),
    )?;

    write_reference_and_vocabulary(&mut w, &mut meta, &by_name, &order)?;
    let out = w.finish(meta.clone())?;
    Ok((out, meta))
}

/// An event table's rows are numbered in 32 bits (per-person offsets, postings).
pub(crate) fn check_rows(table: &str, rows: u64) -> io::Result<()> {
    if rows > u32::MAX as u64 {
        return Err(io::Error::other(format!(
            "{table}: more than {} rows, more than a store holds in one table",
            u32::MAX
        )));
    }
    Ok(())
}

/// The per-person offsets to store: none for a table without rows.
pub(crate) fn offsets_if_rows(offsets: &[u32], rows: usize) -> &[u32] {
    if rows == 0 {
        &[]
    } else {
        offsets
    }
}

/// Person rows aligned to the universe (first row wins for a duplicated id): `person/id`,
/// `person/has_row` and the person columns. Returns `has_row`.
pub(crate) fn write_persons<W: Write>(
    w: &mut SectionWriter<W>,
    meta: &mut Meta,
    person: Option<&RawTable>,
    universe: &[i64],
) -> io::Result<Vec<u8>> {
    let index_of = |id: i64| universe.binary_search(&id).ok().map(|i| i as u32);
    let person_ids: &[i64] = person
        .and_then(|p| p.column("person_id"))
        .and_then(Column::as_id)
        .unwrap_or(&[]);
    // Person rows, aligned to the universe (first row wins for a duplicated id).
    let mut person_row: Vec<u32> = vec![u32::MAX; universe.len()];
    for (row, &id) in person_ids.iter().enumerate() {
        if let Some(idx) = index_of(id) {
            let slot = &mut person_row[idx as usize];
            if *slot == u32::MAX {
                *slot = row as u32;
            }
        }
    }
    let has_row: Vec<u8> = person_row.iter().map(|&r| (r != u32::MAX) as u8).collect();
    meta.persons = has_row.iter().filter(|&&h| h == 1).count() as u64;
    meta.person_universe = universe.len() as u64;
    w.section("person/id", universe)?;
    w.section("person/has_row", &has_row)?;
    if let Some(p) = person {
        for (name, col) in &p.columns {
            if *name == "person_id" {
                continue;
            }
            column::write_encoded(
                w,
                &format!("person/col/{name}"),
                &col.gather(&person_row),
                false,
            )?;
        }
        meta.tables.insert(
            "person".into(),
            TableMeta {
                rows: p.rows() as u64,
                columns_present: present(p),
                ..TableMeta::default()
            },
        );
    }

    Ok(has_row)
}

/// The observation periods' per-person offsets, starts and ends (what events are checked against).
pub(crate) type PeriodIndex = (Vec<u32>, Vec<i32>, Vec<i32>);

/// `person/summary` (what a query reads of a person before any event: id and single observation
/// period) and the store's first and last dates.
pub(crate) fn write_summary<W: Write>(
    w: &mut SectionWriter<W>,
    meta: &mut Meta,
    universe: &[i64],
    op_index: Option<&PeriodIndex>,
    (first_date, last_date): (i32, i32),
) -> io::Result<()> {
    let op = op_index.map(|(off, start, end)| (&off[..], &start[..], &end[..]));
    w.section("person/summary", &summaries(universe, op))?;
    if first_date != i32::MAX {
        meta.first_date = Some(date::format(first_date));
        meta.last_date = Some(date::format(last_date));
    }
    Ok(())
}

/// Whether an event of person `p` starting on `s` lies outside all of the person's periods.
#[inline]
pub(crate) fn outside_observation(op: &PeriodIndex, p: usize, s: i32) -> bool {
    let (op_off, op_start, op_end) = op;
    let range = op_off[p] as usize..op_off[p + 1] as usize;
    !range
        .into_iter()
        .any(|o| op_start[o] <= s && s <= op_end[o])
}

/// Circe's end date of an event starting on `s` whose end column holds `e` and days supply `d`.
#[inline]
pub(crate) fn circe_end(rule: EndRule, s: i32, e: i32, d: i32) -> i32 {
    let plus = |d: i32| s.saturating_add(d);
    match rule {
        EndRule::Column => e,
        EndRule::StartPlusOne => plus(1),
        EndRule::ColumnOrStartPlusOne if e != NULL_INT => e,
        EndRule::ColumnOrStartPlusOne => plus(1),
        EndRule::ColumnOrDaysSupplyOrStartPlusOne if e != NULL_INT => e,
        EndRule::ColumnOrDaysSupplyOrStartPlusOne => match d {
            NULL_INT => plus(1),
            d => plus(d),
        },
        EndRule::ColumnOr2099 if e != NULL_INT => e,
        EndRule::ColumnOr2099 => date::from_ymd(2099, 12, 31),
    }
}

/// Whether a column of an event table is stored apart: not a core column (primary key, person,
/// start, concept; the end column when never NULL) and not all NULL. An end column with NULLs is
/// kept even when all NULL: its absence means "equals end".
pub(crate) fn stored_apart(
    ev: &qiao_cdm::EventRoles,
    name: &str,
    any_null: bool,
    all_null: bool,
) -> bool {
    let is_core = Some(name) == ev.pk
        || name == ev.person
        || name == ev.start
        || Some(name) == ev.concept
        || (Some(name) == ev.end && !any_null);
    !(is_core || (all_null && Some(name) != ev.end))
}

/// Reference tables (location, care_site, provider) sorted by primary key, then the vocabulary.
pub(crate) fn write_reference_and_vocabulary<W: Write>(
    w: &mut SectionWriter<W>,
    meta: &mut Meta,
    by_name: &BTreeMap<&'static str, RawTable>,
    order: &[&'static str],
) -> io::Result<()> {
    // 3. Reference tables (location, care_site, provider), sorted by primary key.
    for name in order {
        let Some(t) = by_name
            .get(name)
            .filter(|t| t.spec.kind == TableKind::Reference)
        else {
            continue;
        };
        let pk = t.spec.columns[0].name;
        let ids = t.column(pk).and_then(Column::as_id).unwrap_or(&[]);
        let mut perm: Vec<u32> = (0..ids.len() as u32).collect();
        perm.sort_by_key(|&i| ids[i as usize]);
        for (cname, col) in &t.columns {
            column::write_encoded(
                w,
                &format!("ref/{name}/col/{cname}"),
                &col.gather(&perm),
                false,
            )?;
        }
        meta.tables.insert(
            (*name).into(),
            TableMeta {
                rows: t.rows() as u64,
                columns_present: present(t),
                ..TableMeta::default()
            },
        );
    }

    // 4. Vocabulary.
    if let Some(c) = by_name.get("concept") {
        let ids = c
            .column("concept_id")
            .and_then(Column::as_i32)
            .unwrap_or(&[]);
        let mut perm: Vec<u32> = (0..ids.len() as u32).collect();
        perm.sort_by_key(|&i| ids[i as usize]);
        perm.dedup_by_key(|i| ids[*i as usize]);
        for (cname, col) in &c.columns {
            column::write_encoded(
                w,
                &format!("vocab/concept/col/{cname}"),
                &col.gather(&perm),
                false,
            )?;
        }
        meta.tables.insert(
            "concept".into(),
            TableMeta {
                rows: c.rows() as u64,
                columns_present: present(c),
                ..TableMeta::default()
            },
        );
    }
    if let Some(ca) = by_name.get("concept_ancestor") {
        let a = ca
            .column("ancestor_concept_id")
            .and_then(Column::as_i32)
            .unwrap_or(&[]);
        let d = ca
            .column("descendant_concept_id")
            .and_then(Column::as_i32)
            .unwrap_or(&[]);
        let pairs: Vec<(i32, i32)> = a.iter().copied().zip(d.iter().copied()).collect();
        write_multimap(w, "vocab/ancestor", pairs.clone())?;
        if let Some(levels) = ca
            .column("min_levels_of_separation")
            .and_then(Column::as_i32)
            .filter(|l| l.len() == pairs.len())
        {
            // Aligned with the multimap's values: per (ancestor, descendant), the smallest level.
            let mut triples: Vec<(i32, i32, i32)> = pairs
                .iter()
                .zip(levels)
                .map(|(&(a, d), &l)| (a, d, l))
                .collect();
            triples.par_sort_unstable();
            triples.dedup_by(|x, y| (x.0, x.1) == (y.0, y.1));
            let levels: Vec<i32> = triples.iter().map(|t| t.2).collect();
            w.section("vocab/ancestor/min_levels".to_string(), &levels)?;
        }
        meta.tables.insert(
            "concept_ancestor".into(),
            TableMeta {
                rows: ca.rows() as u64,
                columns_present: present(ca),
                ..TableMeta::default()
            },
        );
    }
    if let Some(cr) = by_name.get("concept_relationship") {
        let c1 = cr
            .column("concept_id_1")
            .and_then(Column::as_i32)
            .unwrap_or(&[]);
        let c2 = cr
            .column("concept_id_2")
            .and_then(Column::as_i32)
            .unwrap_or(&[]);
        let rel = cr.column("relationship_id").and_then(Column::as_text);
        let inv = cr.column("invalid_reason").and_then(Column::as_text);
        let pairs: Vec<(i32, i32)> = (0..c1.len())
            .filter(|&i| {
                rel.and_then(|r| r.get(i)) == Some("Maps to")
                    && inv.is_none_or(|v| v.get(i).is_none())
            })
            .map(|i| (c2[i], c1[i]))
            .collect();
        write_multimap(w, "vocab/mapped_from", pairs)?;
        meta.tables.insert(
            "concept_relationship".into(),
            TableMeta {
                rows: cr.rows() as u64,
                columns_present: present(cr),
                ..TableMeta::default()
            },
        );
    }

    Ok(())
}

/// Per person index, the person id and the single observation period, from the observation
/// periods' per-person offsets, starts and ends (see [`PersonSummary`]).
fn summaries(ids: &[i64], op: Option<(&[u32], &[i32], &[i32])>) -> Vec<PersonSummary> {
    let (offsets, starts, ends) = op.unwrap_or((&[], &[], &[]));
    let none = (PersonSummary::NOT_ONE, PersonSummary::NOT_ONE);
    ids.iter()
        .enumerate()
        .map(|(p, &person_id)| {
            let (op_start, op_end) = match offsets.get(p..p + 2) {
                Some(&[a, b]) if b == a + 1 => {
                    let r = a as usize;
                    match (starts.get(r), ends.get(r)) {
                        (Some(&s), Some(&e)) => (s, e),
                        _ => none,
                    }
                }
                _ => none,
            };
            PersonSummary {
                person_id,
                op_start,
                op_end,
            }
        })
        .collect()
}

/// [`summaries`] of an open store (what verification compares the stored ones with).
pub(crate) fn person_summaries(ids: &[i64], op: Option<&crate::Domain<'_>>) -> Vec<PersonSummary> {
    let op = op.map(|d| (d.person_offsets(), d.start().to_vec(), d.end().to_vec()));
    summaries(ids, op.as_ref().map(|(o, s, e)| (&o[..], &s[..], &e[..])))
}

fn present(t: &RawTable) -> Vec<String> {
    t.columns.iter().map(|(n, _)| n.to_string()).collect()
}

/// `key → sorted distinct values` as three sections: keys, offsets (len keys+1), values.
fn write_multimap<W: Write>(
    w: &mut SectionWriter<W>,
    prefix: &str,
    mut pairs: Vec<(i32, i32)>,
) -> io::Result<()> {
    pairs.par_sort_unstable();
    pairs.dedup();
    let mut keys: Vec<i32> = Vec::new();
    let mut offsets: Vec<u64> = vec![0];
    let mut values: Vec<i32> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        if keys.last() != Some(&k) {
            if !keys.is_empty() {
                offsets.push(values.len() as u64);
            }
            keys.push(k);
        }
        values.push(v);
    }
    if !keys.is_empty() {
        offsets.push(values.len() as u64);
    }
    write3(w, prefix, &keys, &offsets, &values)
}

fn write3<W: Write, K: Element, V: Element>(
    w: &mut SectionWriter<W>,
    prefix: &str,
    keys: &[K],
    offsets: &[u64],
    values: &[V],
) -> io::Result<()> {
    w.section(format!("{prefix}/keys"), keys)?;
    w.section(format!("{prefix}/offsets"), offsets)?;
    w.section(format!("{prefix}/values"), values)
}

/// Per-concept postings: distinct concepts (ascending), offsets, and the rows of each (ascending).
fn postings(concept: &[i32]) -> (Vec<i32>, Vec<u64>, Vec<u32>) {
    // Sort (concept, row) packed into u64 so rows stay ascending within a concept.
    let mut packed: Vec<u64> = concept
        .par_iter()
        .enumerate()
        .filter(|(_, &c)| c != NULL_INT)
        .map(|(row, &c)| (((c as u32) ^ 0x8000_0000) as u64) << 32 | row as u64)
        .collect();
    packed.par_sort_unstable();
    let mut keys = Vec::new();
    let mut offsets = vec![0u64];
    let mut rows = Vec::with_capacity(packed.len());
    for p in packed {
        let c = ((p >> 32) as u32 ^ 0x8000_0000) as i32;
        if keys.last() != Some(&c) {
            if !keys.is_empty() {
                offsets.push(rows.len() as u64);
            }
            keys.push(c);
        }
        rows.push(p as u32);
    }
    if !keys.is_empty() {
        offsets.push(rows.len() as u64);
    }
    (keys, offsets, rows)
}

/// Which rows of an event table are events of a person: all of them, except that `location_history`
/// also holds the locations of care sites and providers (`domain_id` other than `PERSON`), which
/// Circe's LocationRegion criterion ignores and which are not persons.
pub(crate) struct PersonRows<'a> {
    domain: Option<&'a qiao_cdm::TextColumn>,
}

impl<'a> PersonRows<'a> {
    pub(crate) fn of(t: &'a RawTable) -> Self {
        let domain = (t.spec.name == "location_history")
            .then(|| t.column("domain_id").and_then(Column::as_text))
            .flatten();
        PersonRows { domain }
    }
    pub(crate) fn is_person(&self, r: usize) -> bool {
        self.domain.is_none_or(|d| d.get(r) == Some("PERSON"))
    }
}

struct SortedEvents {
    /// Source row of each stored row.
    order: Vec<u32>,
    person: Vec<u32>,
    start: Vec<i32>,
    end: Vec<i32>,
    concept: Vec<i32>,
    event_id: Vec<i64>,
}

/// Sorts an event table by (person, start date, event id) and derives Circe's core columns.
/// Rows without a person or a start date (which ingest rejects) are dropped.
fn sort_events(t: &RawTable, universe: &[i64]) -> SortedEvents {
    let ev = t.spec.event.as_ref().expect("event roles");
    let empty_id: Vec<i64> = Vec::new();
    let empty_i32: Vec<i32> = Vec::new();
    let persons = t
        .column(ev.person)
        .and_then(Column::as_id)
        .unwrap_or(&empty_id);
    let starts = t
        .column(ev.start)
        .and_then(Column::as_i32)
        .unwrap_or(&empty_i32);
    let ids = ev
        .pk
        .and_then(|pk| t.column(pk))
        .and_then(Column::as_id)
        .unwrap_or(persons);
    let n = t.rows();
    let person_rows = PersonRows::of(t);

    let mut keyed: Vec<(u32, i32, i64, u32)> = (0..n)
        .into_par_iter()
        .filter_map(|r| {
            let pid = *persons.get(r)?;
            let s = *starts.get(r)?;
            if pid == NULL_ID || s == NULL_INT || !person_rows.is_person(r) {
                return None;
            }
            let p = universe.binary_search(&pid).ok()? as u32;
            Some((p, s, ids.get(r).copied().unwrap_or(NULL_ID), r as u32))
        })
        .collect();
    keyed.par_sort_unstable();

    let order: Vec<u32> = keyed.iter().map(|k| k.3).collect();
    let person: Vec<u32> = keyed.iter().map(|k| k.0).collect();
    let start: Vec<i32> = keyed.iter().map(|k| k.1).collect();
    let event_id: Vec<i64> = keyed.iter().map(|k| k.2).collect();
    let col_i32 = |name: Option<&str>| name.and_then(|n| t.column(n)).and_then(Column::as_i32);
    let raw_end = col_i32(ev.end);
    let days_supply = t.column("days_supply").and_then(Column::as_i32);
    let end: Vec<i32> = keyed
        .par_iter()
        .map(|&(_, s, _, r)| {
            let r = r as usize;
            let at = |c: Option<&[i32]>| c.map_or(NULL_INT, |v| v[r]);
            circe_end(ev.end_rule, s, at(raw_end), at(days_supply))
        })
        .collect();
    let concept: Vec<i32> = match col_i32(ev.concept) {
        Some(v) => order.iter().map(|&r| v[r as usize]).collect(),
        None => vec![NULL_INT; order.len()],
    };
    SortedEvents {
        order,
        person,
        start,
        end,
        concept,
        event_id,
    }
}
