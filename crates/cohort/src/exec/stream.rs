//! The fused pipeline: a definition evaluated in one pass over its primary criteria's matched
//! rows, span by span of persons, instead of person by person through per-node event caches.
//!
//! It takes every definition without censoring criteria (feasibility queries and most
//! phenotypes; the others go to the per-person evaluator). Persons are taken in spans of consecutive person indexes: each primary criteria's
//! matched rows of the span are read once, in row order (person, start, event id); the span's
//! persons' observation periods and ids are read in one pass; then every person's events go
//! through the steps of the per-person evaluator (correlated criteria of the primary criteria,
//! observation window, primary limit, additional criteria, inclusion masks, best event,
//! expression limit, end date, era collapse, censor window) on small reused buffers. Groups that
//! read other criteria's events are evaluated by a per-person [`Person`] evaluator, started once
//! per person; demographic groups directly. `tests/pipelines.rs` and the test helpers check that
//! both evaluators give the same rows, masks and statistics on every test definition.

use std::ops::Range;

use qiao_cdm::date::Day;
use qiao_store::{DayColumn, Domain, I32Column, PersonSummary};

use super::plan::{CritNode, EndPlan, GroupPlan, Member, Plan};
use super::run::{
    for_each_bit, in_window, join_periods, limit_primary, prefetch, prefetch_dates, prefetch_row,
    reads_visits, seek, Ctx, Idx, Matched, NodeData, Person, AHEAD,
};
use super::{tail, ChunkOut, CohortRow};
use crate::model::LimitType;

/// Whether the fused pipeline can evaluate `plan` (else the per-person evaluator does).
pub(crate) fn eligible(plan: &Plan) -> bool {
    !plan.primary.is_empty() && plan.censoring.is_empty() && plan.rules.len() < 64
}

/// Whether a group tests demographics only (no criteria events to compute).
fn demographic_only(g: &GroupPlan) -> bool {
    g.members.iter().all(|m| match m {
        Member::Demo(_) => true,
        Member::Group(sub) => demographic_only(sub),
        Member::Corr(_) => false,
    })
}

/// Person indexes per span (one parallel work item), at the most.
pub(crate) const SPAN: u32 = 4096;

/// Primary events a span is sized for: its event buffer (32 bytes an event) and what is derived
/// from it stay in the core's L2 cache between the span's read and its per-person steps.
const SPAN_EVENTS: usize = 8192;

/// Person indexes per span for `events` primary criteria matched rows (None: unknown, every row
/// of a domain) over `persons` persons: [`SPAN`], fewer (a power of two, at least 256) where
/// persons have many events.
pub(crate) fn span_len(events: Option<usize>, persons: usize) -> u32 {
    let per_person = events.map_or(f64::INFINITY, |e| e as f64 / persons.max(1) as f64);
    let mut len = SPAN;
    while len > 256 && per_person * len as f64 > SPAN_EVENTS as f64 {
        len /= 2;
    }
    len
}

/// The groups whose result is the same for every person evaluated ([`constant`]): per primary
/// criteria its correlated criteria group, the additional criteria, each inclusion rule (None:
/// evaluated per person).
struct Fixed {
    correlated: Vec<Option<bool>>,
    additional: Option<bool>,
    rules: Vec<Option<bool>>,
}

/// One primary event of a span.
#[derive(Debug, Clone, Copy)]
struct Event {
    person: u32,
    /// The date events are ordered by (the adjusted start).
    sort: Day,
    start: Day,
    end: Day,
    id: i64,
    /// visit_occurrence_id (NULL unless some criteria reads the index event's visit).
    visit: i64,
}

/// A primary event within an observation period (ordinal: its position in
/// (sort, event id, criteria, position) order, Circe's `event_id` of qualified events).
#[derive(Debug, Clone, Copy)]
struct Cand {
    sort: Day,
    id: i64,
    crit: u32,
    pos: u32,
    start: Day,
    end: Day,
    op_start: Day,
    op_end: Day,
    visit: i64,
}

impl Cand {
    /// As an index event of a criteria group (`ordinal`: its qualified event id).
    fn index(&self, ordinal: usize) -> Idx {
        Idx {
            id: ordinal as i64 + 1,
            start: self.start,
            end: self.end,
            visit: self.visit,
            op_start: self.op_start,
            op_end: self.op_end,
        }
    }
}

/// A worker's reusable buffers.
pub(crate) struct Worker<'c, 's> {
    groups: Groups<'c, 's>,
    fixed: Fixed,
    /// Per node: where the last person's gathered rows were looked for ([`constant_for`]).
    cursors: Vec<usize>,
    /// [`Ctx::per_person_reads`]: person offsets and custom era columns to prefetch.
    reads: (Vec<&'s [u32]>, Vec<I32Column<'s>>),
    index: Vec<Idx>,
    owner: Vec<usize>,
    kept: Vec<Event>,
    events: Vec<Vec<Event>>,
    cursor: Vec<usize>,
    /// The span's persons with events (ascending), their observation period rows, the
    /// periods (start, end) with offsets per person, and their person ids.
    persons: Vec<u32>,
    seen: Vec<u64>,
    ops: Vec<(Day, Day)>,
    op_off: Vec<u32>,
    ids: Vec<i64>,
    cands: Vec<Cand>,
    masks: Vec<u64>,
    rows: Vec<(i64, i64)>,
    merged: Vec<(i64, i64)>,
}

impl<'c, 's> Worker<'c, 's> {
    pub(crate) fn new(ctx: &'c Ctx<'s>) -> Self {
        let plan = ctx.plan;
        let fixed = Fixed {
            correlated: plan
                .primary
                .iter()
                .map(|&n| {
                    plan.nodes[n]
                        .correlated
                        .as_ref()
                        .and_then(|g| constant(ctx, g))
                })
                .collect(),
            additional: plan.additional.as_ref().and_then(|g| constant(ctx, g)),
            rules: plan.rules.iter().map(|(_, g)| constant(ctx, g)).collect(),
        };
        // A per-person evaluator, if some group reads criteria events per person.
        let groups = (plan.additional.is_some() && fixed.additional.is_none())
            || plan
                .rules
                .iter()
                .zip(&fixed.rules)
                .any(|((_, g), f)| f.is_none() && !demographic_only(g))
            || plan
                .primary
                .iter()
                .zip(&fixed.correlated)
                .any(|(&n, f)| plan.nodes[n].correlated.is_some() && f.is_none());
        let reads = if groups || matches!(plan.end, EndPlan::CustomEra { .. }) {
            ctx.per_person_reads(&plan.primary)
        } else {
            (Vec::new(), Vec::new())
        };
        Worker {
            reads,
            fixed,
            cursors: vec![0; plan.nodes.len()],
            groups: Groups {
                person: groups.then(|| Person::new(ctx)),
                started: None,
                pass: Vec::new(),
            },
            index: Vec::new(),
            owner: Vec::new(),
            kept: Vec::new(),
            events: Vec::new(),
            cursor: Vec::new(),
            persons: Vec::new(),
            seen: Vec::new(),
            ops: Vec::new(),
            op_off: Vec::new(),
            ids: Vec::new(),
            cands: Vec::new(),
            masks: Vec::new(),
            rows: Vec::new(),
            merged: Vec::new(),
        }
    }

    /// Evaluates the persons of `span`, adding their output to `acc` (a worker's spans of one
    /// split share one: rows are written once, not copied from span to split).
    pub(crate) fn span(
        &mut self,
        ctx: &Ctx<'s>,
        span: Range<u32>,
        want_masks: bool,
        acc: &mut ChunkOut,
    ) {
        let plan = ctx.plan;
        let k = plan.primary.len();
        self.events.resize_with(k, Vec::new);
        self.cursor.clear();
        self.cursor.resize(k, 0);
        // Without inclusion rules, additional criteria or limits, the qualified events' order and
        // ordinals matter to no later step: events go straight to cohort rows.
        let direct = plan.rules.is_empty()
            && plan.additional.is_none()
            && !plan.additional_present
            && plan.primary_limit == LimitType::All
            && plan.expression_limit == LimitType::All
            && !matches!(plan.end, EndPlan::CustomEra { .. });
        // Event ids only order events of different criteria or reordered by a date adjustment
        // (and events going straight to rows are not ordered).
        // (A criteria whose codeset matches no row has no events: it orders nothing.)
        let live = plan
            .primary
            .iter()
            .filter(|&&n| !ctx.nodes[n].matched.matches_nothing())
            .count();
        let need_id =
            !direct && (live > 1 || plan.primary.iter().any(|&n| reorders(&plan.nodes[n])));
        // One criteria whose events come in candidate order under a First limit: a person's first
        // candidate is the one kept.
        let first = plan.primary_limit == LimitType::First && live == 1 && !need_id;
        let need_visit = reads_visits(plan);
        for (ci, &n) in plan.primary.iter().enumerate() {
            let buf = &mut self.events[ci];
            buf.clear();
            let nd = &ctx.nodes[n];
            if let Some(d) = nd.dom.map(|i| &ctx.domains[i]) {
                events(
                    ctx,
                    &plan.nodes[n],
                    nd,
                    d,
                    span.clone(),
                    (need_id, need_visit),
                    buf,
                );
            }
        }
        // The span's persons with events, and their observation periods and person ids, each
        // read in one pass over all of them (independent loads in flight, where one person at
        // a time would expose every cache miss).
        let persons = &mut self.persons;
        persons.clear();
        let mut with_events = self.events[..k].iter().filter(|e| !e.is_empty());
        if let (Some(only), None) = (with_events.next(), with_events.next()) {
            // One criteria with events (in person order).
            persons.extend(only.iter().map(|e| e.person));
            persons.dedup();
        } else {
            // Several criteria: their persons marked in a bitmap of the span.
            let seen = &mut self.seen;
            seen.clear();
            seen.resize((span.len()).div_ceil(64), 0);
            for evs in &self.events[..k] {
                for e in evs {
                    let i = (e.person - span.start) as usize;
                    seen[i / 64] |= 1 << (i % 64);
                }
            }
            for_each_bit(seen, 0..span.len(), |i| {
                persons.push(span.start + i as u32);
                true
            });
        }
        // Most persons have one observation period: it is in their summary, beside their id (one
        // load a person); the others' periods are read from the observation period rows.
        let op = ctx.op.map(|i| &ctx.domains[i]);
        let summaries = ctx.person_summaries();
        self.ops.clear();
        self.op_off.clear();
        self.op_off.push(0);
        self.ids.clear();
        for (i, &p) in persons.iter().enumerate() {
            if let Some(&ahead) = persons.get(i + AHEAD) {
                prefetch(summaries, ahead as usize);
            }
            let summary = summaries.get(p as usize);
            self.ids
                .push(summary.map_or_else(|| ctx.person_id(p), |s| s.person_id));
            match (summary.and_then(PersonSummary::single_period), op) {
                (Some(period), Some(_)) => self.ops.push(period),
                (None, Some(d)) => {
                    let (s, e) = (d.start(), d.end());
                    self.ops.extend(
                        d.person_rows(p)
                            .filter_map(|r| Some((s.get(r)?, e.get(r)?))),
                    );
                }
                (_, None) => {}
            }
            self.op_off.push(self.ops.len() as u32);
        }

        // About a row per event (one allocation per span, no copies as it grows).
        acc.rows
            .reserve(self.events[..k].iter().map(Vec::len).sum::<usize>());
        let mut counts = Counts::default();
        self.groups.started = None;
        let reads = std::mem::take(&mut self.reads);
        let (offsets, era_columns) = &reads;
        let drug = ctx.drug_offsets();
        for i in 0..self.persons.len() {
            let p = self.persons[i];
            // What the per-person steps will read of later persons, fetched ahead.
            if let Some(&ahead) = self.persons.get(i + AHEAD) {
                for o in offsets {
                    prefetch(o, ahead as usize);
                }
            }
            if let (Some(drug), Some(&near)) = (drug, self.persons.get(i + AHEAD / 2)) {
                if let Some(&row) = drug.get(near as usize) {
                    for c in era_columns {
                        c.prefetch(row as usize);
                    }
                }
            }
            self.cands.clear();
            self.rows.clear();
            let mut qualified = 0u64;
            let ops = &self.ops[self.op_off[i] as usize..self.op_off[i + 1] as usize];
            for ci in 0..k {
                let evs = &self.events[ci];
                let from = self.cursor[ci];
                let mut to = from;
                while evs.get(to).is_some_and(|e| e.person == p) {
                    to += 1;
                }
                self.cursor[ci] = to;
                let node = &plan.nodes[plan.primary[ci]];
                // A correlated group passing every event is none; failing every event, no event.
                let correlated = match self.fixed.correlated[ci] {
                    Some(false) => continue,
                    Some(true) => None,
                    None => node.correlated.as_ref(),
                };
                match correlated {
                    None if direct => {
                        qualified += direct_rows(plan, ops, &evs[from..to], &mut self.rows)
                    }
                    None => {
                        in_observation(plan, ops, ci as u32, &evs[from..to], first, &mut self.cands)
                    }
                    Some(g) => {
                        // Each event joined to every observation period containing its start is
                        // an index event of the group; the events with a passing one are kept.
                        let events = evs[from..to]
                            .iter()
                            .map(|e| (e.id, e.start, e.end, e.visit));
                        join_periods(events, ops, &mut self.index, &mut self.owner);
                        let pass = self.groups.eval(p, ops, g, &self.index);
                        self.kept.clear();
                        let evs = &self.events[ci][from..to];
                        let mut last = usize::MAX;
                        for (&j, &ok) in self.owner.iter().zip(pass) {
                            if ok && j != last {
                                self.kept.push(evs[j]);
                                last = j;
                            }
                        }
                        if direct {
                            qualified += direct_rows(plan, ops, &self.kept, &mut self.rows);
                        } else {
                            in_observation(
                                plan,
                                ops,
                                ci as u32,
                                &self.kept,
                                first,
                                &mut self.cands,
                            );
                        }
                    }
                }
            }
            let id = self.ids[i];
            if !direct {
                self.person(ctx, (p, i), id, acc, &mut counts, want_masks);
            } else if qualified > 0 {
                counts.zero_events += qualified;
                counts.zero_persons += 1;
                if want_masks {
                    acc.person_masks.push((id, 0));
                }
                emit(plan, &mut self.rows, &mut self.merged, id, acc);
            }
        }
        self.reads = reads;
        counts.into(acc);
    }

    /// The pipeline after the primary events of person `p`, the span's `i`th (in `self.cands`).
    fn person(
        &mut self,
        ctx: &Ctx<'_>,
        (p, i): (u32, usize),
        id: i64,
        acc: &mut ChunkOut,
        counts: &mut Counts,
        want_masks: bool,
    ) {
        let plan = ctx.plan;
        let ops = &self.ops[self.op_off[i] as usize..self.op_off[i + 1] as usize];
        let cands = &mut self.cands;
        if cands.is_empty() {
            return;
        }
        limit_primary(cands, plan.primary_limit, |c| {
            (c.sort, c.id, c.crit as usize, c.pos as usize)
        });
        // The candidates' positions are now their ordinals (qualified event ids).
        let additional = plan.additional.as_ref().and_then(|g| {
            (self.fixed.additional).or_else(|| constant_for(ctx, g, Some(p), &mut self.cursors))
        });
        if let Some(pass) = additional {
            if !pass {
                cands.clear();
            }
        } else if let Some(g) = &plan.additional {
            self.index.clear();
            self.index
                .extend(cands.iter().enumerate().map(|(i, c)| c.index(i)));
            let pass = self.groups.eval(p, ops, g, &self.index);
            let mut i = 0;
            cands.retain(|_| {
                i += 1;
                pass[i - 1]
            });
        }
        if plan.additional_present && plan.qualified_limit != LimitType::All {
            tail::keep_first(cands, plan.qualified_limit == LimitType::Last, |c| c.start);
        }
        if cands.is_empty() {
            return;
        }

        // Inclusion rules (demographics of the person at each event).
        let n_rules = plan.rules.len();
        let full: u64 = if n_rules == 0 {
            0
        } else {
            (1u64 << n_rules) - 1
        };
        let masks = &mut self.masks;
        masks.clear();
        if n_rules == 0 {
            counts.zero_events += cands.len() as u64;
            counts.zero_persons += 1;
            if want_masks {
                acc.person_masks.push((id, 0));
            }
        } else {
            masks.resize(cands.len(), 0);
            for (i, (_, g)) in plan.rules.iter().enumerate() {
                // (A group of a person without rows of its criteria is constant too.)
                let fixed = self.fixed.rules[i]
                    .or_else(|| constant_for(ctx, g, Some(p), &mut self.cursors));
                if let Some(pass) = fixed {
                    if pass {
                        masks.iter_mut().for_each(|m| *m |= 1 << i);
                    }
                } else if demographic_only(g) {
                    for (m, c) in masks.iter_mut().zip(cands.iter()) {
                        if demographic_group(ctx, p, g, c.start, c.end) {
                            *m |= 1 << i;
                        }
                    }
                } else {
                    self.index.clear();
                    // Qualified event ids: the candidates' ordinals before additional criteria
                    // removed any do not matter to a group (no window reads them).
                    self.index
                        .extend(cands.iter().enumerate().map(|(j, c)| c.index(j)));
                    let pass = self.groups.eval(p, ops, g, &self.index);
                    for (m, &ok) in masks.iter_mut().zip(pass) {
                        if ok {
                            *m |= 1 << i;
                        }
                    }
                }
            }
            for run in masks.chunk_by(|a, b| a == b) {
                *acc.masks[0].entry(run[0]).or_default() += run.len() as u64;
            }
            // Best event: most rules, then lowest min rule id, then earliest start, then ordinal.
            let min_rule = |m: u64| if m == 0 { 0 } else { m.trailing_zeros() };
            let mut best = 0;
            for i in 1..cands.len() {
                let (mi, mb) = (masks[i], masks[best]);
                let better = mb
                    .count_ones()
                    .cmp(&mi.count_ones())
                    .then(min_rule(mi).cmp(&min_rule(mb)))
                    .then(cands[i].start.cmp(&cands[best].start))
                    .is_lt();
                if better {
                    best = i;
                }
            }
            *acc.masks[1].entry(masks[best]).or_default() += 1;
            if want_masks {
                acc.person_masks.push((id, masks[best]));
            }
            let mut i = 0;
            cands.retain(|_| {
                i += 1;
                masks[i - 1] == full
            });
        }
        if plan.expression_limit != LimitType::All {
            tail::keep_first(cands, plan.expression_limit == LimitType::Last, |c| c.start);
        }
        if cands.is_empty() {
            return;
        }

        // End dates, then eras.
        let eras = match plan.end {
            EndPlan::CustomEra {
                codeset,
                gap,
                offset,
                supply_override,
            } => ctx.drug_eras(p, codeset, gap, offset, supply_override),
            _ => Vec::new(),
        };
        let rows = &mut self.rows;
        rows.clear();
        rows.extend(cands.iter().filter_map(|c| {
            let end = tail::End::strategy(plan, c.start, c.end, c.op_end, &eras).get()?;
            Some((c.start as i64, end as i64))
        }));
        emit(plan, rows, &mut self.merged, id, acc);
    }
}

/// A worker taken from a pool, returned to it when dropped.
pub(crate) struct Pooled<'p, 'c, 's> {
    worker: Option<Worker<'c, 's>>,
    pool: &'p std::sync::Mutex<Vec<Worker<'c, 's>>>,
    ctx: &'c Ctx<'s>,
}

impl<'p, 'c, 's> Pooled<'p, 'c, 's> {
    pub(crate) fn take(pool: &'p std::sync::Mutex<Vec<Worker<'c, 's>>>, ctx: &'c Ctx<'s>) -> Self {
        let reused = pool.lock().ok().and_then(|mut p| p.pop());
        Pooled {
            worker: Some(reused.unwrap_or_else(|| Worker::new(ctx))),
            pool,
            ctx,
        }
    }

    pub(crate) fn worker(&mut self) -> &mut Worker<'c, 's> {
        let ctx = self.ctx;
        self.worker.get_or_insert_with(|| Worker::new(ctx))
    }
}

impl Drop for Pooled<'_, '_, '_> {
    fn drop(&mut self) {
        if let (Some(w), Ok(mut pool)) = (self.worker.take(), self.pool.lock()) {
            pool.push(w);
        }
    }
}

/// Evaluates criteria groups that read other criteria's events (correlated criteria of the primary
/// criteria, additional criteria, inclusion rules), when the plan has such.
struct Groups<'c, 's> {
    person: Option<Person<'c, 's>>,
    /// The person last started on.
    started: Option<u32>,
    pass: Vec<bool>,
}

impl Groups<'_, '_> {
    /// Group `g` of person `p` (observation periods `ops`) over `index`: whether each index
    /// event passes.
    fn eval(&mut self, p: u32, ops: &[(Day, Day)], g: &GroupPlan, index: &[Idx]) -> &[bool] {
        self.pass.clear();
        let Some(person) = self.person.as_mut() else {
            self.pass.resize(index.len(), false);
            return &self.pass;
        };
        if self.started != Some(p) {
            person.begin(p, ops);
            self.started = Some(p);
        }
        let pass = person.group(g, index);
        self.pass.extend_from_slice(&pass);
        person.give(pass);
        &self.pass
    }
}

/// Mask counts of definitions without inclusion rules (every mask 0), added once per span.
#[derive(Default)]
struct Counts {
    zero_events: u64,
    zero_persons: u64,
}

impl Counts {
    fn into(self, acc: &mut ChunkOut) {
        if self.zero_persons > 0 {
            *acc.masks[0].entry(0).or_default() += self.zero_events;
            *acc.masks[1].entry(0).or_default() += self.zero_persons;
        }
    }
}

/// Whether a date adjustment can order a criteria's events otherwise than its rows.
fn reorders(node: &CritNode) -> bool {
    node.adjust.is_some_and(|a| a.start_from_end)
}

/// The events of one primary criteria for the persons of `span`, in row order.
fn events(
    ctx: &Ctx<'_>,
    node: &CritNode,
    nd: &NodeData<'_>,
    d: &Domain<'_>,
    span: Range<u32>,
    (need_id, need_visit): (bool, bool),
    out: &mut Vec<Event>,
) {
    let (starts, ends, ids) = (d.start(), d.end(), d.event_id());
    let visits = nd.visit.filter(|_| need_visit);
    let event = |p: u32, r: usize, start: Day, end: Day| Event {
        person: p,
        sort: start,
        start: node.user_start.unwrap_or(start),
        end: node.user_end.unwrap_or(end),
        id: if need_id {
            ids.get(r).unwrap_or(i64::MIN)
        } else {
            0
        },
        visit: visits.map_or(i64::MIN, |v| v.get(r).unwrap_or(i64::MIN)),
    };
    let day = |v: DayColumn<'_>, r: usize| v.get(r).unwrap_or(qiao_cdm::date::NULL_DAY);
    if let Matched::Gathered(g) = &nd.matched {
        if g.filtered() {
            let (rows, persons, starts, ends) = (&g.rows, &g.person, &g.start, &g.end);
            // Already the events (read with a group's criteria selecting the same ones), in
            // row order.
            let from = persons.partition_point(|&p| p < span.start);
            let to = from + persons[from..].partition_point(|&p| p < span.end);
            let mut last = u32::MAX;
            for i in from..to {
                let (p, r) = (persons[i], rows[i] as usize);
                if node.first {
                    if last == p {
                        continue;
                    }
                    last = p;
                }
                out.push(Event {
                    person: p,
                    sort: starts[i],
                    start: node.user_start.unwrap_or(starts[i]),
                    end: node.user_end.unwrap_or(ends[i]),
                    id: match need_id {
                        true => g.id(i).or(ids.get(r)).unwrap_or(i64::MIN),
                        false => 0,
                    },
                    visit: match visits {
                        Some(v) => g.visit(i).or(v.get(r)).unwrap_or(i64::MIN),
                        None => i64::MIN,
                    },
                });
            }
            return;
        }
    }
    if !node.tests_rows() && !node.first {
        // No row test: every matched row is an event (the common case, kept small enough to be
        // inlined into the scan).
        scan(&nd.matched, &nd.row_persons, span, d, need_id, |r, p| {
            out.push(event(p, r, day(starts, r), day(ends, r)));
        });
        return;
    }
    let mut first_of = u32::MAX;
    scan(&nd.matched, &nd.row_persons, span, d, need_id, |r, p| {
        if (node.needs_person && !ctx.has_person_row(p)) || !ctx.row_joins_ok(node, nd, r) {
            return;
        }
        if node.first {
            if first_of == p {
                return;
            }
            first_of = p;
        }
        if let Some((start, end)) = ctx.row_dates(p, node, nd, r, day(starts, r), day(ends, r)) {
            out.push(event(p, r, start, end));
        }
    });
}

/// Calls `visit(row, person)` on each matched row of the persons `span`, ascending. Where listed rows are many for the span's persons, a row's person is found from
/// the person offsets, read forward, rather than loaded from the person column (one scattered
/// load fewer a row).
#[inline(always)]
fn scan(
    matched: &Matched<'_>,
    persons: &[u32],
    span: Range<u32>,
    d: &Domain<'_>,
    need_id: bool,
    mut visit: impl FnMut(usize, u32),
) {
    let rows = d.persons_rows(span.clone());
    // Dense matches (every row, a bitmap) read the person column nearly in sequence; rows far
    // apart load it (prefetched).
    let person = d.person();
    let mut by_column = |r: usize| {
        if let Some(p) = person.get(r) {
            visit(r, p)
        }
    };
    let list = match matched {
        Matched::Scan => return rows.for_each(by_column),
        Matched::Bits(bits) => {
            return for_each_bit(bits, rows, |r| {
                by_column(r);
                true
            })
        }
        Matched::Rows(list) => &list[..],
        // Not gathered on this path; a gathered list is still the matched rows in order.
        Matched::Gathered(g) => g.rows(),
    };
    let from = list.partition_point(|&r| (r as usize) < rows.start);
    let to = from + list[from..].partition_point(|&r| (r as usize) < rows.end);
    if let Some(persons) = persons
        .get(from..to)
        .filter(|_| persons.len() == list.len())
    {
        // The rows' persons already read (while gathering).
        let list = &list[from..to];
        for (i, (&r, &p)) in list.iter().zip(persons).enumerate() {
            if let Some(&next) = list.get(i + AHEAD) {
                prefetch_dates(d, next as usize, need_id);
            }
            visit(r as usize, p);
        }
        return;
    }
    let list = &list[from..to];
    if list.len() * 8 >= span.len() {
        // A row for every few persons: the person offsets in between are one or two cache lines,
        // read forward.
        let (offsets, mut q) = (d.person_offsets(), span.start as usize);
        for (i, &r) in list.iter().enumerate() {
            if let Some(&next) = list.get(i + AHEAD) {
                prefetch_dates(d, next as usize, need_id);
            }
            visit(r as usize, person_at(offsets, &mut q, r as usize));
        }
    } else {
        for (i, &r) in list.iter().enumerate() {
            if let Some(&next) = list.get(i + AHEAD) {
                prefetch_row(d, next as usize, need_id);
            }
            by_column(r as usize);
        }
    }
}

/// The person of row `r` from the person offsets, given `q`, a person at or before it (rows are
/// visited ascending: `q` moves forward, galloping over persons without rows in between).
#[inline(always)]
fn person_at(offsets: &[u32], q: &mut usize, r: usize) -> u32 {
    // The last person whose rows begin at or before `r`.
    *q = seek(offsets, *q + 1, r + 1) - 1;
    *q as u32
}

/// Joins a person's events of criteria `crit` to the observation periods `ops` (start, end) that
/// contain their start with the observation window. With `first`, stops at the first candidate
/// (events in candidate order: it is the one a First limit keeps).
fn in_observation(
    plan: &Plan,
    ops: &[(Day, Day)],
    crit: u32,
    evs: &[Event],
    first: bool,
    out: &mut Vec<Cand>,
) {
    for (pos, e) in evs.iter().enumerate() {
        if first && !out.is_empty() {
            return;
        }
        for &(s, end) in ops {
            if in_window(plan, e.start, s, end) {
                out.push(Cand {
                    sort: e.sort,
                    id: e.id,
                    crit,
                    pos: pos as u32,
                    start: e.start,
                    end: e.end,
                    op_start: s,
                    op_end: end,
                    visit: e.visit,
                });
            }
        }
    }
}

/// A person's (start, end) rows collapsed into eras, with the censor window, into `acc`.
fn emit(
    plan: &Plan,
    rows: &mut [(i64, i64)],
    merged: &mut Vec<(i64, i64)>,
    id: i64,
    acc: &mut ChunkOut,
) {
    let before = acc.rows.len();
    let out = &mut acc.rows;
    if tail::collapse(plan, rows, merged, |start, end| {
        out.push(CohortRow {
            subject_id: id,
            start,
            end,
        })
    }) {
        acc.in_final += 1;
        acc.subjects += (acc.rows.len() > before) as u64;
    }
}

/// A person's events of one criteria straight to (start, end) rows, for definitions where no
/// step after the primary events depends on their order or identity (no inclusion rules, no
/// additional criteria, no limits): returns the number of qualified events (event × containing
/// observation period within the window).
fn direct_rows(plan: &Plan, ops: &[(Day, Day)], evs: &[Event], rows: &mut Vec<(i64, i64)>) -> u64 {
    let mut n = 0;
    for e in evs {
        for &(s, oe) in ops {
            if in_window(plan, e.start, s, oe) {
                n += 1;
                if let Some(end) = tail::End::strategy(plan, e.start, e.end, oe, &[]).get() {
                    rows.push((e.start as i64, end as i64));
                }
            }
        }
    }
    n
}

/// A demographics-only criteria group on one index event.
fn demographic_group(ctx: &Ctx<'_>, p: u32, g: &GroupPlan, start: Day, end: Day) -> bool {
    if g.members.is_empty() {
        return true;
    }
    let n = g
        .members
        .iter()
        .filter(|m| match m {
            Member::Demo(d) => ctx.demo_ok(p, d, start, end),
            Member::Group(sub) => demographic_group(ctx, p, sub, start, end),
            Member::Corr(_) => false,
        })
        .count() as i64;
    g.passes(n)
}

/// A group's result when it is the same for every index event of the persons evaluated: each
/// criteria it counts has no event for them (a count of 0; its codeset matches no row of theirs),
/// and it has no demographic member. None otherwise.
fn constant(ctx: &Ctx<'_>, g: &GroupPlan) -> Option<bool> {
    constant_for(ctx, g, None, &mut [])
}

/// As [`constant`], for person `p` (if given) too: a criteria whose gathered rows hold none of
/// `p`'s has no event for them. `cursors`: per node, where the last person's gathered rows were
/// looked for (a search hint).
fn constant_for(
    ctx: &Ctx<'_>,
    g: &GroupPlan,
    p: Option<u32>,
    cursors: &mut [usize],
) -> Option<bool> {
    let mut n = 0;
    for m in &g.members {
        let sat = match m {
            Member::Corr(c) => {
                let nd = &ctx.nodes[c.node];
                let none = nd.dom.is_none()
                    || nd.matched.matches_nothing()
                    || match (p, &nd.matched, cursors.get_mut(c.node)) {
                        (Some(p), Matched::Gathered(g), Some(cursor)) => {
                            *cursor = seek(&g.person, *cursor, p as usize);
                            g.person.get(*cursor) != Some(&p)
                        }
                        _ => false,
                    };
                if !none {
                    return None;
                }
                c.satisfied(0)
            }
            Member::Demo(_) => return None,
            Member::Group(sub) => constant_for(ctx, sub, p, cursors)?,
        };
        n += sat as i64;
    }
    Some(g.members.is_empty() || g.passes(n))
}

#[cfg(test)]
mod tests {
    use super::person_at;

    #[test]
    fn a_rows_person_is_found_from_the_offsets_moving_forward() {
        // Persons 0..6 with rows 0..2, none, 2..3, none, none, 3..9; person 6 has none.
        let offsets = [0u32, 2, 2, 3, 3, 3, 9, 9];
        let column = [0u32, 0, 2, 5, 5, 5, 5, 5, 5];
        for start in [0, 1, 3] {
            let mut q = 0;
            for (r, &want) in column.iter().enumerate().skip(start) {
                assert_eq!(person_at(&offsets, &mut q, r), want, "row {r}");
            }
        }
        // Far jumps (galloping) from any person before the row.
        for (q0, r) in [(0, 8), (0, 3), (2, 7), (1, 2)] {
            let mut q = q0;
            assert_eq!(
                person_at(&offsets, &mut q, r),
                column[r],
                "row {r} from {q0}"
            );
        }
    }
}
