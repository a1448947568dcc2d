//! Executes a cohort definition over a Qiao store with circe-be semantics.
//!
//! The work is per person (every Circe window function partitions by person), driven by the
//! per-concept postings so that only rows that can qualify are read. Each criteria node with a
//! codeset resolves its matched rows once per run: one posting list, merged postings, or a bitmap
//! over the domain's rows when they are many. Then one of two evaluators runs (results identical,
//! and identical to a single-threaded run: outputs are merged in person order):
//!
//! - **The fused pipeline** ([`Pipeline::Fused`], `stream.rs`), for every definition without
//!   censoring criteria: spans of person indexes in parallel (4,096, fewer where persons have
//!   many events: about 8,192 events a span); each primary criteria's matched rows of a span read
//!   once in row order, the span's person ids and observation periods read in one pass (from the
//!   store's per-person summaries: one load a person), then each person's events through the
//!   cohort steps on reused buffers. Groups that read other criteria's events are handed to a
//!   per-person evaluator; nodes they read with not many more matched rows than the primary
//!   criteria are *gathered* first, the rows of persons with a primary event only (in parallel
//!   pieces, row order: their row tests applied on the way, person, dates and the ids and visits
//!   read copied out, so a person's events are found without the domain's person offsets). A
//!   gathered node selecting the same events as a primary criteria serves that criteria's events
//!   too. A group is not evaluated where its result is known: every criteria it counts has no row
//!   (for anyone, or for the person at hand: a count of 0).
//! - **The per-person evaluator** ([`Pipeline::PerPerson`], `run.rs`), for everything: the
//!   primary criteria's matched rows gathered, candidates evaluated in chunks of 256 persons with
//!   their observation periods read ahead, a node's events computed lazily, at most once per
//!   person.
//!
//! `benches/cohorts.rs` and `scripts/bench-cohort.sh` measure it.

mod cancel;
pub mod plan;
mod run;
mod stream;
pub mod tail;

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;
use std::io::Write;

use qiao_cdm::date::{self, Day};
use qiao_store::Store;
use rayon::prelude::*;

pub use cancel::Cancel;
pub use plan::{count_column_supported, CountKindPublic, Unsupported};

use crate::conceptset;
use crate::model::{CohortDefinition, CohortExpression, ModelError};
use run::{Among, CodeSet, Ctx, Person, PersonOut};

/// Why a cohort could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum CohortError {
    #[error("{0}")]
    Model(#[from] ModelError),
    #[error("unsupported: {0}")]
    Unsupported(Unsupported),
    #[error("writing results: {0}")]
    Sink(String),
    /// The run was stopped by its [`Cancel`] token.
    #[error("cancelled")]
    Cancelled,
}

/// One row of the OHDSI cohort table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CohortRow {
    pub subject_id: i64,
    pub start: Day,
    pub end: Day,
}

/// Receives cohort rows in (subject_id, start) order.
pub trait CohortSink {
    fn push(&mut self, row: CohortRow) -> Result<(), CohortError>;

    /// Rows in order, as [`CohortSink::push`] one by one (a sink may take them faster at once).
    fn push_all(&mut self, rows: &[CohortRow]) -> Result<(), CohortError> {
        rows.iter().try_for_each(|&r| self.push(r))
    }

    /// Whether [`CohortSink::person_mask`] should be called (off by default: it costs a
    /// little per person).
    fn wants_person_masks(&self) -> bool {
        false
    }

    /// The inclusion-rule mask of a person's best qualified event (bit `i` set: rule `i`
    /// passed), for every person with a qualified event, in the order persons are merged
    /// (the store's person order, as rows). What the best-event statistics count, per person:
    /// e.g. the persons still in after rules `0..=i` are those whose mask has bits `0..=i`.
    fn person_mask(&mut self, _person_id: i64, _mask: u64) -> Result<(), CohortError> {
        Ok(())
    }
}

/// Counts rows and distinct subjects.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counter {
    pub entries: u64,
    pub subjects: u64,
    last: Option<i64>,
}

impl CohortSink for Counter {
    fn push(&mut self, row: CohortRow) -> Result<(), CohortError> {
        self.entries += 1;
        if self.last != Some(row.subject_id) {
            self.subjects += 1;
            self.last = Some(row.subject_id);
        }
        Ok(())
    }
    fn push_all(&mut self, rows: &[CohortRow]) -> Result<(), CohortError> {
        for r in rows {
            self.entries += 1;
            if self.last != Some(r.subject_id) {
                self.subjects += 1;
                self.last = Some(r.subject_id);
            }
        }
        Ok(())
    }
}

/// Takes rows and keeps none (the counts are in [`CohortStats`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl CohortSink for Discard {
    fn push(&mut self, _row: CohortRow) -> Result<(), CohortError> {
        Ok(())
    }
    fn push_all(&mut self, _rows: &[CohortRow]) -> Result<(), CohortError> {
        Ok(())
    }
}

/// Keeps the rows and each person's best-event mask (what a site releases from).
#[derive(Debug, Default, Clone)]
pub struct RowsAndMasks {
    /// The rows, in order.
    pub rows: Vec<CohortRow>,
    /// (person_id, mask of the person's best qualified event), in the store's person order.
    pub masks: Vec<(i64, u64)>,
}

impl CohortSink for RowsAndMasks {
    fn push(&mut self, row: CohortRow) -> Result<(), CohortError> {
        self.rows.push(row);
        Ok(())
    }
    fn push_all(&mut self, rows: &[CohortRow]) -> Result<(), CohortError> {
        self.rows.extend_from_slice(rows);
        Ok(())
    }
    fn wants_person_masks(&self) -> bool {
        true
    }
    fn person_mask(&mut self, person_id: i64, mask: u64) -> Result<(), CohortError> {
        self.masks.push((person_id, mask));
        Ok(())
    }
}

impl CohortSink for Vec<CohortRow> {
    fn push(&mut self, row: CohortRow) -> Result<(), CohortError> {
        Vec::push(self, row);
        Ok(())
    }
    fn push_all(&mut self, rows: &[CohortRow]) -> Result<(), CohortError> {
        self.extend_from_slice(rows);
        Ok(())
    }
}

/// Writes OHDSI cohort rows as CSV
/// (`cohort_definition_id,subject_id,cohort_start_date,cohort_end_date`).
pub struct CsvSink<W: Write> {
    out: W,
    cohort_id: i64,
}

impl<W: Write> CsvSink<W> {
    pub fn new(mut out: W, cohort_id: i64, header: bool) -> Result<Self, CohortError> {
        if header {
            writeln!(
                out,
                "cohort_definition_id,subject_id,cohort_start_date,cohort_end_date"
            )
            .map_err(|e| CohortError::Sink(e.to_string()))?;
        }
        Ok(CsvSink { out, cohort_id })
    }
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> CohortSink for CsvSink<W> {
    fn push(&mut self, row: CohortRow) -> Result<(), CohortError> {
        writeln!(
            self.out,
            "{},{},{},{}",
            self.cohort_id,
            row.subject_id,
            date::format(row.start),
            date::format(row.end)
        )
        .map_err(|e| CohortError::Sink(e.to_string()))
    }
}

/// Inclusion statistics of one mode (0: all events, 1: best event per person).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModeStats {
    /// `cohort_inclusion_result`: inclusion rule mask → count.
    pub masks: BTreeMap<u64, u64>,
    /// `cohort_inclusion_stats` per rule: (person_count, gain_count, person_total).
    pub rules: Vec<RuleStat>,
    /// `cohort_summary_stats`.
    pub base_count: u64,
    pub final_count: u64,
}

/// The inclusion mask of "passed rules 0 to `rule`" (all bits from rule 64 on).
pub fn rules_through(rule: usize) -> u64 {
    if rule + 1 >= 64 {
        u64::MAX
    } else {
        (1u64 << (rule + 1)) - 1
    }
}

impl ModeStats {
    /// Persons (mode 1) or events (mode 0) passing rules 0 to `rule`: the attrition line
    /// ATLAS shows after that rule.
    pub fn remaining_after(&self, rule: usize) -> u64 {
        let need = rules_through(rule);
        self.masks
            .iter()
            .filter(|(m, _)| *m & need == need)
            .map(|(_, n)| n)
            .sum()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleStat {
    pub person_count: u64,
    pub gain_count: u64,
    pub person_total: u64,
}

/// What a run produced besides the rows.
#[derive(Debug, Clone, Default)]
pub struct CohortStats {
    pub rule_names: Vec<String>,
    /// `[mode 0 (events), mode 1 (persons: best event)]`.
    pub modes: [ModeStats; 2],
    /// `cohort_censor_stats.lost_count` (only when a censor window is set).
    pub censor_lost: Option<u64>,
    pub entries: u64,
    pub subjects: u64,
    /// Persons evaluated: on the per-person evaluator, persons with a row matching a primary
    /// criteria's codeset; on the fused pipeline, persons with a qualified event.
    pub candidates: u64,
}

/// A definition compiled against a store's vocabulary, ready to run.
///
/// It holds the plan (the public IR, [`plan::Plan`]; [`Prepared::explain`] describes it) and the
/// concept sets, resolved against a local vocabulary or left to the evaluator
/// ([`Prepared::unresolved`]). Any [`Evaluator`] runs it.
pub struct Prepared {
    plan: plan::Plan,
    codesets: HashMap<i32, CodeSet>,
    /// Whether `codesets` were resolved (else an evaluator resolves `concept_sets` itself).
    resolved: bool,
    concept_sets: Vec<crate::model::ConceptSet>,
    warnings: Vec<crate::model::Issue>,
    cancel: Option<Cancel>,
}

/// The contract of every evaluator of a [`Prepared`] definition — the fused pipeline and the
/// per-person evaluator over a Qiao store ([`Native`]), the Spark backend (`qiao-spark`): the
/// cohort rows go to the sink in (subject_id, start) order and Circe's statistics are returned,
/// computed from the inclusion masks by [`mode_stats`], with Circe's tail applied by [`tail`].
/// Every evaluator gives the same rows and statistics for the same data (tests/pipelines.rs,
/// crates/spark/tests/native_vs_spark.rs).
pub trait Evaluator {
    /// The evaluator's failures (a [`CohortError`] among them).
    type Error: From<CohortError>;

    fn evaluate(
        &self,
        prepared: &Prepared,
        sink: &mut dyn CohortSink,
    ) -> Result<CohortStats, Self::Error>;
}

/// The native evaluators over a Qiao store: the fused pipeline where it applies, else the
/// per-person evaluator ([`Prepared::pipeline`]); or the one chosen.
#[derive(Clone, Copy)]
pub struct Native<'s> {
    pub store: &'s Store,
    /// None: the one [`Prepared::pipeline`] chooses.
    pub pipeline: Option<Pipeline>,
    /// Whether to use the thread pool (the results are identical).
    pub parallel: bool,
}

impl<'s> Native<'s> {
    pub fn new(store: &'s Store) -> Native<'s> {
        Native {
            store,
            pipeline: None,
            parallel: true,
        }
    }
}

impl Evaluator for Native<'_> {
    type Error = CohortError;

    fn evaluate(
        &self,
        prepared: &Prepared,
        sink: &mut dyn CohortSink,
    ) -> Result<CohortStats, CohortError> {
        let pipeline = self.pipeline.unwrap_or_else(|| prepared.pipeline());
        prepared.run_on(self.store, sink, self.parallel, pipeline)
    }
}

/// A store ingested without (part of) its vocabulary (`qiao ingest --no-vocabulary` records which
/// tables were missing or empty) cannot expand concept sets that include descendants or mapped
/// concepts: such a definition is refused, naming its concept sets, instead of counting too few.
fn check_vocabulary(def: &CohortDefinition, store: &Store) -> Result<(), CohortError> {
    let missing: Vec<&str> = store
        .meta()
        .ingest_report
        .get("missing_vocabulary")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|m| m.as_str()).collect())
        .unwrap_or_default();
    let lacks = |table: &str| missing.iter().any(|m| m.split(' ').next() == Some(table));
    let no_descendants = lacks("concept") || lacks("concept_ancestor");
    let no_mapping = lacks("concept") || lacks("concept_relationship");
    let mut refused = Vec::new();
    for (i, cs) in def.expression.concept_sets.iter().enumerate() {
        let items = cs.expression.as_ref().map_or(&[][..], |e| &e.items[..]);
        let mut needs = Vec::new();
        if no_descendants && items.iter().any(|it| it.include_descendants) {
            needs.push("descendants");
        }
        if no_mapping && items.iter().any(|it| it.include_mapped) {
            needs.push("mapped concepts");
        }
        if !needs.is_empty() {
            refused.push(format!(
                "ConceptSets[{i}] (id {}, {:?}) needs {}",
                cs.id,
                cs.name.as_deref().unwrap_or(""),
                needs.join(" and ")
            ));
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    Err(CohortError::Unsupported(Unsupported {
        path: "ConceptSets".into(),
        what: format!(
            "the store was ingested without vocabulary ({}): {}",
            missing.join(", "),
            refused.join("; ")
        ),
    }))
}

impl Prepared {
    /// Resolves concept sets against the store's vocabulary and compiles the plan.
    pub fn new(def: &CohortDefinition, store: &Store) -> Result<Prepared, CohortError> {
        check_vocabulary(def, store)?;
        Self::with_vocabulary(def, &store.vocabulary())
    }

    pub fn with_vocabulary<V: conceptset::Vocabulary + ?Sized>(
        def: &CohortDefinition,
        vocab: &V,
    ) -> Result<Prepared, CohortError> {
        let mut p = Self::unresolved(def)?;
        p.codesets = resolve_codesets(&def.expression, vocab);
        p.resolved = true;
        Ok(p)
    }

    /// The definition planned, its concept sets left to an evaluator that resolves them in its
    /// own vocabulary (Spark: in the warehouse's `concept` tables). The native evaluators refuse
    /// it.
    pub fn unresolved(def: &CohortDefinition) -> Result<Prepared, CohortError> {
        let plan = plan::compile(&def.expression).map_err(CohortError::Unsupported)?;
        Ok(Prepared {
            plan,
            codesets: HashMap::new(),
            resolved: false,
            concept_sets: def.expression.concept_sets.clone(),
            warnings: def.warnings.clone(),
            cancel: None,
        })
    }

    /// The execution plan (the IR every evaluator runs).
    pub fn plan(&self) -> &plan::Plan {
        &self.plan
    }

    /// The definition's concept set expressions.
    pub fn concept_sets(&self) -> &[crate::model::ConceptSet] {
        &self.concept_sets
    }

    /// The cancellation token, if any (evaluators check it between pieces of work).
    pub fn cancel(&self) -> Option<&Cancel> {
        self.cancel.as_ref()
    }

    /// Runs this definition on `evaluator`.
    pub fn evaluate<E: Evaluator>(
        &self,
        evaluator: &E,
        sink: &mut dyn CohortSink,
    ) -> Result<CohortStats, E::Error> {
        evaluator.evaluate(self, sink)
    }

    /// Runs of this definition stop, with [`CohortError::Cancelled`], once `cancel` is
    /// cancelled (checked per span of persons or per person).
    pub fn with_cancel(mut self, cancel: Cancel) -> Prepared {
        self.cancel = Some(cancel);
        self
    }

    pub fn warnings(&self) -> &[crate::model::Issue] {
        &self.warnings
    }

    /// A readable description of the execution plan.
    pub fn explain(&self) -> String {
        let mut sizes: Vec<(i32, usize)> = self
            .codesets
            .iter()
            .map(|(k, v)| (*k, v.ids.len()))
            .collect();
        sizes.sort_unstable();
        self.plan.explain(&sizes)
    }

    /// Generates the cohort: rows go to `sink` in (subject_id, start) order; statistics are returned.
    pub fn run(
        &self,
        store: &Store,
        sink: &mut dyn CohortSink,
    ) -> Result<CohortStats, CohortError> {
        self.run_with(store, sink, true)
    }

    /// As [`Prepared::run`], optionally single-threaded (the results are identical).
    pub fn run_with(
        &self,
        store: &Store,
        sink: &mut dyn CohortSink,
        parallel: bool,
    ) -> Result<CohortStats, CohortError> {
        self.run_on(store, sink, parallel, self.pipeline())
    }

    /// Which evaluator [`Prepared::run`] uses for this definition.
    pub fn pipeline(&self) -> Pipeline {
        if stream::eligible(&self.plan) {
            Pipeline::Fused
        } else {
            Pipeline::PerPerson
        }
    }

    /// As [`Prepared::run_with`] on a chosen evaluator (tests compare the two; the fused one
    /// falls back to the per-person one for definitions it cannot evaluate).
    pub fn run_on(
        &self,
        store: &Store,
        sink: &mut dyn CohortSink,
        parallel: bool,
        pipeline: Pipeline,
    ) -> Result<CohortStats, CohortError> {
        if !self.resolved {
            return Err(CohortError::Unsupported(Unsupported {
                path: "ConceptSets".into(),
                what: "the concept sets were not resolved against the store's vocabulary (Prepared::unresolved)".into(),
            }));
        }
        self.plan
            .check_tables(|t| store.domain(t).is_some())
            .map_err(CohortError::Unsupported)?;
        let fused = pipeline == Pipeline::Fused && self.pipeline() == Pipeline::Fused;
        let mut ctx = Ctx::new(store, &self.plan, &self.codesets);
        let want_masks = sink.wants_person_masks();
        let n_rules = self.plan.rules.len();
        let mut stats = CohortStats {
            rule_names: self.plan.rules.iter().map(|(n, _)| n.clone()).collect(),
            ..Default::default()
        };
        let mut in_final = 0u64;
        let stop = self.cancel.as_ref();
        let mut merge = |chunk: ChunkOut| -> Result<(), CohortError> {
            if cancel::cancelled(stop) {
                return Err(CohortError::Cancelled);
            }
            for (mode, masks) in chunk.masks.into_iter().enumerate() {
                for (m, n) in masks {
                    *stats.modes[mode].masks.entry(m).or_default() += n;
                }
            }
            in_final += chunk.in_final;
            for (person_id, mask) in chunk.person_masks {
                sink.person_mask(person_id, mask)?;
            }
            // Chunks hold disjoint persons: their subjects add up.
            stats.subjects += chunk.subjects;
            stats.entries += chunk.rows.len() as u64;
            sink.push_all(&chunk.rows)
        };
        let candidates = if fused {
            // Criteria read by groups (correlated criteria, inclusion rules) with not many more
            // matched rows than the primary criteria are gathered: found by person without
            // touching the domain's person offsets.
            let bound = ctx.primary_matched_rows();
            if let Some(bound) = bound {
                ctx.gather(Some(bound), Among::PrimaryPersons);
            }
            // Few primary events: one wave (each wave costs the pool a round of wake-ups); many:
            // waves of 16 spans, so outputs stay small and merging overlaps evaluation.
            let n = ctx.persons_len() as u32;
            let span = stream::span_len(bound, n as usize);
            let wave = match bound {
                Some(b) if b < FEW_EVENTS => usize::MAX,
                _ => 16 * (stream::SPAN / span) as usize,
            };
            let spans: Vec<std::ops::Range<u32>> = (0..n.div_ceil(span))
                .map(|i| i * span..((i + 1) * span).min(n))
                .collect();
            // Very few primary events: less work than starting (or waking) the thread pool.
            let parallel = parallel && bound.is_none_or(|b| b >= THREADS_FROM_EVENTS);
            let ctx = &ctx;
            // Workers (and their grown buffers) go back to a pool when a split of the work ends,
            // for the next split or wave to reuse.
            let pool = std::sync::Mutex::new(Vec::new());
            in_waves(
                &spans,
                1,
                wave,
                parallel,
                || stream::Pooled::take(&pool, ctx),
                |w: &mut stream::Pooled, spans| {
                    let w = w.worker();
                    let mut acc = ChunkOut::default();
                    for s in spans.iter().take_while(|_| !cancel::cancelled(stop)) {
                        w.span(ctx, s.clone(), want_masks, &mut acc);
                    }
                    acc
                },
                &mut merge,
            )?;
            None
        } else {
            ctx.gather(None, Among::Everyone);
            let candidates = ctx.candidates();
            ctx.gather(Some(candidates.len()), Among::Candidates(&candidates));
            let ctx = &ctx;
            let persons = store.persons();
            in_waves(
                &candidates,
                CHUNK,
                16,
                parallel,
                || (Person::new(ctx), PersonOut::default(), Vec::new()),
                |(worker, out, ids): &mut (Person, PersonOut, Vec<i64>), chunk: &[u32]| {
                    let mut acc = ChunkOut::default();
                    worker.preload(chunk);
                    // The chunk's person ids in one pass (independent loads in flight; one at a
                    // time after each person's evaluation, each would be an exposed cache miss).
                    ids.clear();
                    ids.extend(chunk.iter().map(|&p| persons.person_id(p)));
                    for (&p, &id) in chunk.iter().zip(ids.iter()) {
                        if cancel::cancelled(stop) {
                            break;
                        }
                        worker.run(p, out);
                        // Runs of equal masks (often all of a person's events) counted with one
                        // lookup.
                        for run in out.event_masks.chunk_by(|a, b| a == b) {
                            *acc.masks[0].entry(run[0]).or_default() += run.len() as u64;
                        }
                        if let Some(m) = out.best_mask {
                            *acc.masks[1].entry(m).or_default() += 1;
                            if want_masks {
                                acc.person_masks.push((id, m));
                            }
                        }
                        acc.in_final += out.in_final as u64;
                        if !out.rows.is_empty() {
                            acc.subjects += 1;
                            acc.rows
                                .extend(out.rows.iter().map(|&(start, end)| CohortRow {
                                    subject_id: id,
                                    start,
                                    end,
                                }));
                        }
                    }
                    acc
                },
                &mut merge,
            )?;
            Some(candidates.len() as u64)
        };
        if cancel::cancelled(stop) {
            return Err(CohortError::Cancelled);
        }
        stats.candidates = candidates.unwrap_or(stats.modes[1].masks.values().sum());
        for mode in &mut stats.modes {
            *mode = mode_stats(std::mem::take(&mut mode.masks), n_rules);
        }
        if self.plan.censor_start.is_some() || self.plan.censor_end.is_some() {
            stats.censor_lost = Some(in_final.saturating_sub(stats.subjects));
        }
        Ok(stats)
    }
}

/// Circe's inclusion statistics of one mode from its mask counts (inclusion rule mask → events
/// or persons), for a definition with `n_rules` inclusion rules: what every evaluator reports.
pub fn mode_stats(masks: BTreeMap<u64, u64>, n_rules: usize) -> ModeStats {
    let full: u64 = if n_rules == 0 {
        0
    } else {
        (1u64 << n_rules) - 1
    };
    let total: u64 = masks.values().sum();
    let rules = (0..n_rules)
        .map(|i| RuleStat {
            person_count: masks
                .iter()
                .filter(|(m, _)| *m & (1 << i) != 0)
                .map(|(_, c)| c)
                .sum(),
            gain_count: masks.get(&(full & !(1u64 << i))).copied().unwrap_or(0),
            person_total: total,
        })
        .collect();
    ModeStats {
        final_count: masks.get(&full).copied().unwrap_or(0),
        base_count: total,
        rules,
        masks,
    }
}

fn resolve_codesets<V: conceptset::Vocabulary + ?Sized>(
    e: &CohortExpression,
    vocab: &V,
) -> HashMap<i32, CodeSet> {
    e.concept_sets
        .iter()
        .map(|cs| {
            let ids = cs
                .expression
                .as_ref()
                .map(|x| conceptset::resolve(x, vocab))
                .unwrap_or_default();
            (cs.id, CodeSet::new(ids))
        })
        .collect()
}

/// Persons per parallel work item.
const CHUNK: usize = 256;

/// Primary criteria matched rows below which the fused pipeline evaluates all spans in one wave.
const FEW_EVENTS: usize = 1 << 20;

/// Primary criteria matched rows below which the fused pipeline evaluates on the calling thread:
/// a span of so few events takes microseconds, less than handing it to the pool's threads (and,
/// in a new process, starting them).
const THREADS_FROM_EVENTS: usize = 2048;

/// The two evaluators of a plan: the same semantics, tested against each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipeline {
    /// One pass over the primary criteria's matched rows, span by span of persons: every
    /// definition without censoring criteria.
    Fused,
    /// Every construct: each person's criteria events computed on demand.
    PerPerson,
}

/// Evaluates `items` in chunks of `chunk` (in parallel with `parallel`, in waves of `wave`
/// chunks), merging the chunks' outputs in item order: a wave is merged on this thread while the
/// pool evaluates the next one, so outputs stay small and their memory is reused.
fn in_waves<T: Sync, S: Send>(
    items: &[T],
    chunk: usize,
    wave: usize,
    parallel: bool,
    init: impl Fn() -> S + Sync + Send,
    eval: impl Fn(&mut S, &[T]) -> ChunkOut + Sync + Send,
    merge: &mut dyn FnMut(ChunkOut) -> Result<(), CohortError>,
) -> Result<(), CohortError> {
    if !parallel || items.len() <= chunk {
        let mut state = init();
        return items
            .chunks(chunk.max(1).saturating_mul(wave))
            .try_for_each(|c| merge(eval(&mut state, c)));
    }
    let mut pending: Vec<ChunkOut> = Vec::new();
    for w in items.chunks(chunk.saturating_mul(wave)) {
        let mut outs: Vec<ChunkOut> = Vec::new();
        rayon::in_place_scope(|s| {
            s.spawn(|_| {
                outs = w
                    .par_chunks(chunk)
                    .map_init(&init, |state, c| eval(state, c))
                    .collect();
            });
            std::mem::take(&mut pending)
                .into_iter()
                .try_for_each(&mut *merge)
        })?;
        pending = outs;
    }
    pending.into_iter().try_for_each(merge)
}

/// What a chunk of persons contributes.
#[derive(Default)]
struct ChunkOut {
    rows: Vec<CohortRow>,
    masks: [HashMap<u64, u64, BuildHasherDefault<run::IdHasher>>; 2],
    in_final: u64,
    /// Persons with rows.
    subjects: u64,
    /// (person_id, best-event mask), only when the sink wants them.
    person_masks: Vec<(i64, u64)>,
}

/// Parses, validates, compiles and runs a definition in one call.
pub fn generate(
    json: &str,
    store: &Store,
    sink: &mut dyn CohortSink,
) -> Result<CohortStats, CohortError> {
    let def = crate::model::parse(json)?;
    Prepared::new(&def, store)?.run(store, sink)
}

/// An index event for [`Prepared::rule_matches`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEvent {
    pub person_id: i64,
    pub event_id: i64,
    pub start: Day,
    pub end: Day,
    pub visit_occurrence_id: Option<i64>,
    pub op_start: Day,
    pub op_end: Day,
}

impl Prepared {
    /// Evaluates inclusion rule `rule` of the definition over arbitrary index events, as circe-be's
    /// `getCriteriaGroupQuery` does over an event table: returns the (person_id, event_id) pairs
    /// that satisfy it, in input order. Events of persons unknown to the store never match.
    pub fn rule_matches(
        &self,
        store: &Store,
        rule: usize,
        events: &[IndexEvent],
    ) -> Result<Vec<(i64, i64)>, CohortError> {
        let (_, group) = self.plan.rules.get(rule).ok_or_else(|| {
            CohortError::Unsupported(Unsupported {
                path: format!("InclusionRules[{rule}]"),
                what: "no such inclusion rule".into(),
            })
        })?;
        let ctx = Ctx::new(store, &self.plan, &self.codesets);
        let persons = store.persons();
        let mut worker = Person::new(&ctx);
        let mut out = Vec::new();
        let mut by_person: BTreeMap<u32, Vec<&IndexEvent>> = BTreeMap::new();
        for e in events {
            if let Some(p) = persons.index_of(e.person_id) {
                by_person.entry(p).or_default().push(e);
            }
        }
        for (p, evs) in by_person {
            let idx: Vec<run::Idx> = evs
                .iter()
                .map(|e| run::Idx {
                    id: e.event_id,
                    start: e.start,
                    end: e.end,
                    visit: e.visit_occurrence_id.unwrap_or(i64::MIN),
                    op_start: e.op_start,
                    op_end: e.op_end,
                })
                .collect();
            let pass = worker.group_for(p, group, &idx);
            out.extend(
                evs.iter()
                    .zip(pass)
                    .filter(|(_, ok)| *ok)
                    .map(|(e, _)| (e.person_id, e.event_id)),
            );
        }
        Ok(out)
    }
}
