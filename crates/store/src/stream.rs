//! Building a store in bounded memory: event tables arrive in chunks, are sorted by (person, start
//! date, event id, source row) in runs of at most a memory budget, spilled to temporary files and
//! merged k ways; the merged rows become columns written to temporary files as they are built,
//! then copied into the store. The bytes are those [`crate::build::write_image`] writes for the
//! same tables held in memory.
//!
//! What stays in memory: the person table and per-person arrays (O(persons)), the observation
//! periods (O(periods), to count events outside them), the reference and vocabulary tables, and
//! up to the budget of buffered rows.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::{self, Read, Write};

use qiao_cdm::{Column, EndRule, RawTable, TableKind, TableSpec, NULL_ID, NULL_INT};
use rayon::prelude::*;

use crate::build::{self, PeriodIndex};
use crate::column::{self, Kind, Stats, Values};
use crate::day_column::DayBlocks;
use crate::format::SectionWriter;
use crate::meta::{Meta, TableMeta};
use crate::spill::{Sorter, SpillDir, SpillFile, SpillVec};

/// The default memory budget for buffered rows (bytes).
pub const DEFAULT_BUDGET: usize = 512 << 20;

/// Collects a CDM's tables chunk by chunk (one [`TableSink`] per table, filled on any thread),
/// then writes the store.
pub struct Builder {
    dir: SpillDir,
    budget: usize,
    tables: Vec<TableSink>,
}

impl Builder {
    /// Temporary files go to `spill`; at most about `budget` bytes of rows are held in memory.
    pub fn new(spill: SpillDir, budget: usize) -> Builder {
        Builder {
            dir: spill,
            budget,
            tables: Vec::new(),
        }
    }

    /// A sink for one table's chunks. `concurrent` tables are filled at once: each gets that share
    /// of the budget.
    pub fn sink(&self, spec: &'static TableSpec, concurrent: usize) -> TableSink {
        TableSink {
            spec,
            dir: self.dir.clone(),
            budget: (self.budget / concurrent.max(1)).max(1 << 16),
            whole: (spec.kind != TableKind::Event).then(|| RawTable::new(spec)),
            rows: 0,
            chunks: Vec::new(),
            keys: Vec::new(),
            buffered: 0,
            runs: Vec::new(),
            flags: None,
            persons: Vec::new(),
            persons_compacted: 0,
            in_key: in_key(spec),
        }
    }

    /// Adds a filled sink (tables in the order they are added; at most one sink per table),
    /// closing it ([`TableSink::close`]) if it was not.
    pub fn add(&mut self, mut sink: TableSink) -> io::Result<()> {
        sink.close()?;
        self.tables.push(sink);
        Ok(())
    }

    /// Writes the store to `out`; returns the writer and what the store says about itself.
    pub fn write<W: Write>(
        self,
        out: W,
        ingest_report: serde_json::Value,
    ) -> io::Result<(W, Meta)> {
        let Builder {
            dir,
            budget,
            tables,
        } = self;
        let mut others: BTreeMap<&'static str, RawTable> = BTreeMap::new();
        let mut order: Vec<&'static str> = Vec::new();
        let mut events: Vec<TableSink> = Vec::new();
        for mut t in tables {
            order.push(t.spec.name);
            match t.whole.take() {
                Some(whole) => {
                    others.insert(t.spec.name, whole);
                }
                None => events.push(t),
            }
        }
        // The person universe: person rows plus every person an event table names.
        let person = others.get("person");
        let mut universe: Vec<i64> = person
            .and_then(|p| p.column("person_id"))
            .and_then(Column::as_id)
            .unwrap_or(&[])
            .iter()
            .copied()
            .filter(|&id| id != NULL_ID)
            .collect();
        for t in &mut events {
            universe.append(&mut t.persons);
        }
        universe.par_sort_unstable();
        universe.dedup();

        let mut w = SectionWriter::new(out)?;
        let mut meta = Meta {
            ingest_report,
            ..Meta::default()
        };
        let has_row = build::write_persons(&mut w, &mut meta, person, &universe)?;
        // Observation periods first: every other table counts its events outside them.
        let (periods, rest): (Vec<TableSink>, Vec<TableSink>) = events
            .into_iter()
            .partition(|t| t.spec.name == "observation_period");
        let ctx = |op| Context {
            universe: &universe,
            has_row: &has_row,
            op,
            dir: &dir,
            budget,
        };
        let mut op_index: Option<PeriodIndex> = None;
        let mut dates = (i32::MAX, i32::MIN);
        let mut put = |m: Merged, op_index: &mut Option<PeriodIndex>| -> io::Result<()> {
            dates = (dates.0.min(m.dates.0), dates.1.max(m.dates.1));
            let name = m.spec.name;
            let (tm, periods) = m.write(&mut w)?;
            crate::spill::return_free_memory();
            if periods.is_some() {
                *op_index = periods;
            }
            meta.tables.insert(name.into(), tm);
            Ok(())
        };
        for t in periods {
            put(t.merge(ctx(None))?, &mut op_index)?;
        }
        // The other tables are merged in parallel (each merge is one thread's work: decoding
        // rows), then written in table order.
        let merged: Vec<io::Result<Merged>> = rest
            .into_par_iter()
            .map(|t| t.merge(ctx(op_index.as_ref())))
            .collect();
        let mut op_none = None;
        for m in merged {
            put(m?, &mut op_none)?;
        }
        build::write_summary(&mut w, &mut meta, &universe, op_index.as_ref(), dates)?;
        build::write_reference_and_vocabulary(&mut w, &mut meta, &others, &order)?;
        let out = w.finish(meta.clone())?;
        Ok((out, meta))
    }
}

/// What writing one event table needs from the rest of the store.
struct Context<'a> {
    universe: &'a [i64],
    has_row: &'a [u8],
    op: Option<&'a PeriodIndex>,
    dir: &'a SpillDir,
    budget: usize,
}

/// A row's sort key: person id, start, event id, source row (the in-memory order: person index
/// ascends with person id).
type Key = (i64, i32, i64, u64);
const KEY_LEN: usize = 28;

/// One table's rows as they arrive.
pub struct TableSink {
    spec: &'static TableSpec,
    dir: SpillDir,
    budget: usize,
    /// A person, reference or vocabulary table: kept whole.
    whole: Option<RawTable>,
    /// Source rows seen (the next chunk's first row number).
    rows: u64,
    chunks: Vec<RawTable>,
    /// Buffered rows' keys with (chunk, row in chunk).
    keys: Vec<(Key, u32, u32)>,
    buffered: usize,
    runs: Vec<(SpillFile, u64)>,
    /// Per column: any value NULL, every value NULL (over all source rows).
    flags: Option<Vec<(bool, bool)>>,
    /// Person ids seen (sorted and deduplicated when it doubles).
    persons: Vec<i64>,
    persons_compacted: usize,
    /// Per column: its value is in the row's key (person, start, primary key), not in its record.
    in_key: Vec<bool>,
}

impl TableSink {
    /// Adds the next rows of the table (columns as [`RawTable::new`] makes them).
    pub fn push(&mut self, chunk: RawTable) -> io::Result<()> {
        if let Some(whole) = &mut self.whole {
            whole.append(chunk);
            return Ok(());
        }
        let n = chunk.rows();
        let ev = self.spec.event.as_ref().expect("event table has roles");
        let flags = self
            .flags
            .get_or_insert_with(|| vec![(false, true); chunk.columns.len()]);
        for ((any, all), (_, col)) in flags.iter_mut().zip(&chunk.columns) {
            *any = *any || col.any_null();
            *all = *all && col.all_null();
        }
        let empty: &[i64] = &[];
        let persons = chunk
            .column(ev.person)
            .and_then(Column::as_id)
            .unwrap_or(empty);
        let starts = chunk
            .column(ev.start)
            .and_then(Column::as_i32)
            .unwrap_or(&[]);
        let ids = ev
            .pk
            .and_then(|pk| chunk.column(pk))
            .and_then(Column::as_id)
            .unwrap_or(persons);
        let is_person = build::PersonRows::of(&chunk);
        let c = self.chunks.len() as u32;
        for r in 0..n {
            let (Some(&pid), Some(&s)) = (persons.get(r), starts.get(r)) else {
                continue;
            };
            if pid == NULL_ID || s == NULL_INT || !is_person.is_person(r) {
                continue;
            }
            let id = ids.get(r).copied().unwrap_or(NULL_ID);
            self.keys
                .push(((pid, s, id, self.rows + r as u64), c, r as u32));
            self.persons.push(pid);
        }
        self.rows += n as u64;
        if self.persons.len() > 2 * self.persons_compacted.max(1 << 16) {
            self.persons.par_sort_unstable();
            self.persons.dedup();
            self.persons_compacted = self.persons.len();
        }
        self.buffered += bytes_of(&chunk) + n * std::mem::size_of::<(Key, u32, u32)>();
        self.chunks.push(chunk);
        if self.buffered > self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Ends the table: its buffered rows go to a temporary file unless they are few (a table read
    /// waits for the others holding at most a sixteenth of its budget).
    pub fn close(&mut self) -> io::Result<()> {
        if !self.runs.is_empty() && !self.keys.is_empty() || self.buffered > self.budget / 16 {
            self.spill()?;
        }
        Ok(())
    }

    /// Sorts the buffered rows and writes them as one run.
    fn spill(&mut self) -> io::Result<()> {
        let mut file = SpillFile::new(&self.dir)?;
        let rows = self.sorted_buffer(|rec| file.write(rec))?;
        self.runs.push((file, rows));
        crate::spill::return_free_memory();
        Ok(())
    }

    /// Sorts the buffered rows and gives each, encoded as a record, to `f`; empties the buffer.
    fn sorted_buffer(&mut self, mut f: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<u64> {
        self.keys.par_sort_unstable_by_key(|k| k.0);
        let mut rec = Vec::new();
        for &(key, c, r) in &self.keys {
            rec.clear();
            encode_row(
                &mut rec,
                key,
                &self.chunks[c as usize],
                r as usize,
                &self.in_key,
            );
            f(&rec)?;
        }
        let n = self.keys.len() as u64;
        self.keys = Vec::new();
        self.chunks = Vec::new();
        self.buffered = 0;
        Ok(n)
    }

    /// Merges the runs into the table's columns (in temporary files) and sorts its postings.
    fn merge(mut self, ctx: Context<'_>) -> io::Result<Merged> {
        let spec = self.spec;
        let ev = spec.event.as_ref().expect("event table has roles");
        let layout = RawTable::new(spec);
        let kinds: Vec<Kind> = layout.columns.iter().map(|(_, c)| c.kind()).collect();
        // What a record holds of each column (none: its value is in the key).
        let in_record: Vec<Option<Kind>> = kinds
            .iter()
            .zip(&self.in_key)
            .map(|(&k, &in_key)| (!in_key).then_some(k))
            .collect();
        let flags = self
            .flags
            .clone()
            .unwrap_or_else(|| vec![(false, true); kinds.len()]);
        let at = |name: Option<&str>| {
            name.and_then(|n| layout.columns.iter().position(|(c, _)| *c == n))
        };
        let (end_i, ds_i, concept_i) = (at(ev.end), at(Some("days_supply")), at(ev.concept));
        let is_op = spec.name == "observation_period";

        let mut core = Core::new(ctx.dir, ctx.universe.len())?;
        let mut apart: Vec<(usize, SpillColumn, Stats)> = Vec::new();
        for (i, (name, _)) in layout.columns.iter().enumerate() {
            if build::stored_apart(ev, name, flags[i].0, flags[i].1) {
                apart.push((
                    i,
                    SpillColumn::new(ctx.dir, kinds[i])?,
                    Stats::new(kinds[i]),
                ));
            }
        }
        let mut postings: Sorter<u64> = Sorter::new(ctx.dir, ctx.budget / 4);
        let mut tm = TableMeta {
            rows: 0,
            columns_present: layout.columns.iter().map(|(n, _)| n.to_string()).collect(),
            ..TableMeta::default()
        };
        let (mut min_start, mut max_start, mut max_end) = (i32::MAX, i32::MIN, i32::MIN);
        let mut periods: (Vec<i32>, Vec<i32>) = (Vec::new(), Vec::new());
        let mut p = 0usize;
        let mut vals: Vec<Val> = Vec::with_capacity(kinds.len());
        let mut on_row = |key: Key, rec: &[u8]| -> io::Result<()> {
            decode_row(rec, &in_record, &mut vals);
            let (pid, s, id, _) = key;
            while ctx.universe[p] != pid {
                p += 1;
            }
            let i32_at = |i: Option<usize>| match i.map(|i| vals[i]) {
                Some(Val::I32(x)) => x,
                _ => NULL_INT,
            };
            let raw_end = i32_at(end_i);
            let e = build::circe_end(ev.end_rule, s, raw_end, i32_at(ds_i));
            let concept = i32_at(concept_i);
            let row = tm.rows;
            build::check_rows(spec.name, row + 1)?;
            core.push(p as u32, s, e, concept, id)?;
            if concept != NULL_INT {
                postings.push((((concept as u32) ^ 0x8000_0000) as u64) << 32 | row)?;
            }
            tm.orphans += (ctx.has_row[p] == 0) as u64;
            if let Some(op) = ctx.op.filter(|_| !is_op) {
                tm.outside_observation += build::outside_observation(op, p, s) as u64;
            }
            if is_op {
                periods.0.push(s);
                periods.1.push(e);
            }
            min_start = min_start.min(s);
            max_start = max_start.max(s);
            if raw_end != NULL_INT {
                max_end = max_end.max(raw_end);
            }
            for (i, col, st) in &mut apart {
                col.push(vals[*i], rec, st)?;
            }
            tm.rows += 1;
            Ok(())
        };
        if self.runs.is_empty() {
            let mut buf = Vec::new();
            let n = self.sorted_buffer(|rec| {
                buf.extend_from_slice(rec);
                Ok(())
            })?;
            merge(
                vec![(Box::new(&buf[..]) as Box<dyn Read>, n)],
                &in_record,
                &mut on_row,
            )?;
        } else {
            if !self.keys.is_empty() {
                self.spill()?;
            }
            let mut readers: Vec<(Box<dyn Read>, u64)> = Vec::new();
            for (file, n) in &mut self.runs {
                readers.push((Box::new(file.reader()?) as Box<dyn Read>, *n));
            }
            merge(readers, &in_record, &mut on_row)?;
        }
        drop(self.runs);
        let mut dates = (i32::MAX, i32::MIN);
        if spec.name != "location_history" && tm.rows > 0 {
            let max_end = if matches!(ev.end_rule, EndRule::StartPlusOne) || end_i.is_none() {
                i32::MIN
            } else {
                max_end
            };
            dates = (min_start, max_start.max(max_end));
        }
        let (mut keys, mut post_offsets) = (Vec::<i32>::new(), vec![0u64]);
        let mut rows: SpillVec<u32> = SpillVec::new(ctx.dir)?;
        postings.sorted(|packed| {
            let c = ((packed >> 32) as u32 ^ 0x8000_0000) as i32;
            if keys.last() != Some(&c) {
                if !keys.is_empty() {
                    post_offsets.push(rows.len() as u64);
                }
                keys.push(c);
            }
            rows.push(packed as u32)
        })?;
        if !keys.is_empty() {
            post_offsets.push(rows.len() as u64);
        }
        let apart = apart
            .into_iter()
            .map(|(i, col, stats)| (layout.columns[i].0, col, stats))
            .collect();
        Ok(Merged {
            spec,
            tm,
            core,
            apart,
            postings: (keys, post_offsets, rows),
            periods: is_op.then_some(periods),
            dates,
        })
    }
}

/// One event table merged: its columns in temporary files, its postings sorted.
struct Merged {
    spec: &'static TableSpec,
    tm: TableMeta,
    core: Core,
    /// Attribute columns stored apart: name, values, statistics.
    apart: Vec<(&'static str, SpillColumn, Stats)>,
    /// Concepts (ascending), where each one's rows begin, the rows.
    postings: (Vec<i32>, Vec<u64>, SpillVec<u32>),
    /// Observation periods: each row's start and end.
    periods: Option<(Vec<i32>, Vec<i32>)>,
    /// The first start and last date (start or end) of its rows.
    dates: (i32, i32),
}

impl Merged {
    /// Writes the table's sections; returns its metadata and, for the observation periods, their
    /// index.
    fn write<W: Write>(
        self,
        w: &mut SectionWriter<W>,
    ) -> io::Result<(TableMeta, Option<PeriodIndex>)> {
        let Merged {
            spec,
            tm,
            mut core,
            apart,
            postings: (keys, post_offsets, mut rows),
            periods,
            ..
        } = self;
        let n = tm.rows;
        let prefix = format!("dom/{}", spec.name);
        let offsets = core.offsets();
        crate::person_column::write(w, &prefix, &offsets)?;
        let (start_blocks, end_blocks) = (core.start_blocks, core.end_blocks);
        start_blocks.write(w, &format!("{prefix}/start"), |out| core.start.pieces(out))?;
        end_blocks.write(w, &format!("{prefix}/end"), |out| core.end.pieces(out))?;
        w.section_from(format!("{prefix}/concept"), |out| core.concept.pieces(out))?;
        column::write_values(
            w,
            &format!("{prefix}/event_id"),
            &core.event_id,
            &core.event_id_stats,
            true,
        )?;
        w.section(
            format!("{prefix}/person_offsets"),
            build::offsets_if_rows(&offsets, n as usize),
        )?;
        w.section(format!("{prefix}/post_keys"), &keys)?;
        w.section(format!("{prefix}/post_offsets"), &post_offsets)?;
        w.section_from(format!("{prefix}/post_rows"), |out| rows.pieces(out))?;
        for (name, col, stats) in &apart {
            column::write_values(w, &format!("{prefix}/col/{name}"), col, stats, true)?;
        }
        let periods = periods.map(|(starts, ends)| (offsets, starts, ends));
        Ok((tm, periods))
    }
}

/// Per column of an event table (in [`RawTable::new`]'s order): whether its value is in a row's
/// sort key (person, start date, primary key), never read back from the record. Other tables: none.
fn in_key(spec: &'static TableSpec) -> Vec<bool> {
    let layout = RawTable::new(spec);
    layout
        .columns
        .iter()
        .map(|(name, _)| {
            spec.event
                .as_ref()
                .is_some_and(|ev| *name == ev.person || *name == ev.start || Some(*name) == ev.pk)
        })
        .collect()
}

/// Approximate bytes a chunk holds.
fn bytes_of(t: &RawTable) -> usize {
    t.columns
        .iter()
        .map(|(_, c)| match c {
            Column::Id(v) => v.len() * 8,
            Column::I32(v) => v.len() * 4,
            Column::Float(v) => v.len() * 8,
            Column::Text(t) => t.data.len() + t.nulls.len() * 9,
        })
        .sum()
}

/// One value of a row being merged (text: where its bytes are in the record).
#[derive(Clone, Copy)]
enum Val {
    Id(i64),
    I32(i32),
    F64(f64),
    Text(Option<(usize, usize)>),
}

/// A row as a record: the key, then each column's value but those the key holds (`in_key`: the
/// person, start and primary key columns; text: u32 length, `u32::MAX` for NULL, then the bytes).
fn encode_row(rec: &mut Vec<u8>, key: Key, t: &RawTable, r: usize, in_key: &[bool]) {
    rec.extend_from_slice(&key.0.to_le_bytes());
    rec.extend_from_slice(&key.1.to_le_bytes());
    rec.extend_from_slice(&key.2.to_le_bytes());
    rec.extend_from_slice(&key.3.to_le_bytes());
    for ((_, c), _) in t.columns.iter().zip(in_key).filter(|(_, &k)| !k) {
        match c {
            Column::Id(v) => rec.extend_from_slice(&v[r].to_le_bytes()),
            Column::I32(v) => rec.extend_from_slice(&v[r].to_le_bytes()),
            Column::Float(v) => rec.extend_from_slice(&v[r].to_le_bytes()),
            Column::Text(t) => match t.get(r) {
                Some(s) => {
                    rec.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    rec.extend_from_slice(s.as_bytes());
                }
                None => rec.extend_from_slice(&u32::MAX.to_le_bytes()),
            },
        }
    }
}

fn key_of(rec: &[u8]) -> Key {
    let i64_at = |o: usize| i64::from_le_bytes(rec[o..o + 8].try_into().expect("8 bytes"));
    (
        i64_at(0),
        i32::from_le_bytes(rec[8..12].try_into().expect("4 bytes")),
        i64_at(12),
        u64::from_le_bytes(rec[20..28].try_into().expect("8 bytes")),
    )
}

/// The values of a record's columns (a column the key holds reads as NULL: never read).
fn decode_row(rec: &[u8], kinds: &[Option<Kind>], vals: &mut Vec<Val>) {
    vals.clear();
    let mut o = KEY_LEN;
    for k in kinds {
        let Some(k) = k else {
            vals.push(Val::Id(NULL_ID));
            continue;
        };
        let n = match k {
            Kind::Id | Kind::F64 => 8,
            Kind::I32 => 4,
            Kind::Text => 4,
        };
        let b = &rec[o..o + n];
        o += n;
        vals.push(match k {
            Kind::Id => Val::Id(i64::from_le_bytes(b.try_into().expect("8 bytes"))),
            Kind::I32 => Val::I32(i32::from_le_bytes(b.try_into().expect("4 bytes"))),
            Kind::F64 => Val::F64(f64::from_le_bytes(b.try_into().expect("8 bytes"))),
            Kind::Text => match u32::from_le_bytes(b.try_into().expect("4 bytes")) {
                u32::MAX => Val::Text(None),
                len => {
                    o += len as usize;
                    Val::Text(Some((o - len as usize, o)))
                }
            },
        });
    }
}

/// Reads one record (its length known from the column kinds) into `rec`.
fn read_row(r: &mut dyn Read, kinds: &[Option<Kind>], rec: &mut Vec<u8>) -> io::Result<()> {
    rec.clear();
    let mut take = |n: usize, rec: &mut Vec<u8>| -> io::Result<()> {
        let at = rec.len();
        rec.resize(at + n, 0);
        r.read_exact(&mut rec[at..])
    };
    take(KEY_LEN, rec)?;
    for k in kinds.iter().flatten() {
        match k {
            Kind::Id | Kind::F64 => take(8, rec)?,
            Kind::I32 => take(4, rec)?,
            Kind::Text => {
                take(4, rec)?;
                let l = rec.len();
                let n = u32::from_le_bytes(rec[l - 4..].try_into().expect("4 bytes"));
                if n != u32::MAX {
                    take(n as usize, rec)?;
                }
            }
        }
    }
    Ok(())
}

/// Merges sorted runs of records, calling `on_row` with each in key order.
fn merge(
    mut runs: Vec<(Box<dyn Read + '_>, u64)>,
    kinds: &[Option<Kind>],
    on_row: &mut dyn FnMut(Key, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut recs: Vec<Vec<u8>> = vec![Vec::new(); runs.len()];
    let mut heap = BinaryHeap::new();
    for (i, (r, left)) in runs.iter_mut().enumerate() {
        if *left > 0 {
            *left -= 1;
            read_row(r, kinds, &mut recs[i])?;
            heap.push(Reverse((key_of(&recs[i]), i)));
        }
    }
    while let Some(Reverse((key, i))) = heap.pop() {
        on_row(key, &recs[i])?;
        let (r, left) = &mut runs[i];
        if *left > 0 {
            *left -= 1;
            read_row(r, kinds, &mut recs[i])?;
            heap.push(Reverse((key_of(&recs[i]), i)));
        }
    }
    Ok(())
}

/// The core columns of the merged rows, each written to a temporary file as it is built, and
/// the rows per person (from which the person column is written: see [`crate::person_column`]).
struct Core {
    start: SpillVec<i32>,
    end: SpillVec<i32>,
    start_blocks: DayBlocks,
    end_blocks: DayBlocks,
    concept: SpillVec<i32>,
    event_id: SpillColumn,
    event_id_stats: Stats,
    counts: Vec<u32>,
}

impl Core {
    fn new(dir: &SpillDir, persons: usize) -> io::Result<Core> {
        Ok(Core {
            start: SpillVec::new(dir)?,
            end: SpillVec::new(dir)?,
            start_blocks: DayBlocks::new(),
            end_blocks: DayBlocks::new(),
            concept: SpillVec::new(dir)?,
            event_id: SpillColumn::new(dir, Kind::Id)?,
            event_id_stats: Stats::new(Kind::Id),
            counts: vec![0; persons + 1],
        })
    }
    fn push(&mut self, p: u32, s: i32, e: i32, c: i32, id: i64) -> io::Result<()> {
        self.start.push(s)?;
        self.end.push(e)?;
        self.start_blocks.push(s);
        self.end_blocks.push(e);
        self.concept.push(c)?;
        self.event_id
            .push(Val::Id(id), &[], &mut self.event_id_stats)?;
        self.counts[p as usize + 1] += 1;
        Ok(())
    }
    /// Per-person row ranges (one more entry than persons).
    fn offsets(&self) -> Vec<u32> {
        let mut offsets = self.counts.clone();
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        offsets
    }
}

/// An attribute column of the merged rows, written to temporary files as it is built.
// A table has a handful of these: the size of the text variant does not matter.
#[allow(clippy::large_enum_variant)]
enum SpillColumn {
    I32(RefCell<SpillVec<i32>>),
    Id(RefCell<SpillVec<i64>>),
    F64(RefCell<SpillVec<f64>>),
    Text {
        ends: RefCell<SpillVec<u64>>,
        bytes: RefCell<SpillVec<u8>>,
        nulls: RefCell<SpillVec<u8>>,
        end: u64,
    },
}

impl SpillColumn {
    fn new(dir: &SpillDir, kind: Kind) -> io::Result<SpillColumn> {
        Ok(match kind {
            Kind::I32 => SpillColumn::I32(RefCell::new(SpillVec::new(dir)?)),
            Kind::Id => SpillColumn::Id(RefCell::new(SpillVec::new(dir)?)),
            Kind::F64 => SpillColumn::F64(RefCell::new(SpillVec::new(dir)?)),
            Kind::Text => SpillColumn::Text {
                ends: RefCell::new(SpillVec::new(dir)?),
                bytes: RefCell::new(SpillVec::new(dir)?),
                nulls: RefCell::new(SpillVec::new(dir)?),
                end: 0,
            },
        })
    }

    fn push(&mut self, v: Val, rec: &[u8], stats: &mut Stats) -> io::Result<()> {
        match (self, v) {
            (SpillColumn::I32(c), Val::I32(x)) => {
                stats.add_i32(x);
                c.get_mut().push(x)
            }
            (SpillColumn::Id(c), Val::Id(x)) => {
                stats.add_id(x);
                c.get_mut().push(x)
            }
            (SpillColumn::F64(c), Val::F64(x)) => {
                stats.add_f64(x);
                c.get_mut().push(x)
            }
            (
                SpillColumn::Text {
                    ends,
                    bytes,
                    nulls,
                    end,
                },
                Val::Text(t),
            ) => {
                let text = t.and_then(|(a, b)| std::str::from_utf8(&rec[a..b]).ok());
                stats.add_text(text);
                if let Some(s) = text {
                    bytes.get_mut().extend(s.as_bytes())?;
                    *end += s.len() as u64;
                }
                ends.get_mut().push(*end)?;
                nulls.get_mut().push(text.is_none() as u8)
            }
            _ => Err(io::Error::other("column value of the wrong type")),
        }
    }
}

impl Values for SpillColumn {
    fn kind(&self) -> Kind {
        match self {
            SpillColumn::I32(_) => Kind::I32,
            SpillColumn::Id(_) => Kind::Id,
            SpillColumn::F64(_) => Kind::F64,
            SpillColumn::Text { .. } => Kind::Text,
        }
    }
    fn i32_pieces(&self, f: &mut dyn FnMut(&[i32]) -> io::Result<()>) -> io::Result<()> {
        match self {
            SpillColumn::I32(c) => c.borrow_mut().pieces(f),
            _ => Ok(()),
        }
    }
    fn id_pieces(&self, f: &mut dyn FnMut(&[i64]) -> io::Result<()>) -> io::Result<()> {
        match self {
            SpillColumn::Id(c) => c.borrow_mut().pieces(f),
            _ => Ok(()),
        }
    }
    fn f64_pieces(&self, f: &mut dyn FnMut(&[f64]) -> io::Result<()>) -> io::Result<()> {
        match self {
            SpillColumn::F64(c) => c.borrow_mut().pieces(f),
            _ => Ok(()),
        }
    }
    fn text_ends(&self, f: &mut dyn FnMut(&[u64]) -> io::Result<()>) -> io::Result<()> {
        match self {
            SpillColumn::Text { ends, .. } => ends.borrow_mut().pieces(f),
            _ => Ok(()),
        }
    }
    fn text_bytes(&self, f: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        match self {
            SpillColumn::Text { bytes, .. } => bytes.borrow_mut().pieces(f),
            _ => Ok(()),
        }
    }
    fn text_nulls(&self, f: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        match self {
            SpillColumn::Text { nulls, .. } => nulls.borrow_mut().pieces(f),
            _ => Ok(()),
        }
    }
}
