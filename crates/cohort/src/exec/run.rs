//! Per-person evaluation of a compiled plan over a store.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use qiao_cdm::date::{self, Day, NULL_DAY};
use qiao_store::{
    ColumnRef, Domain, I32Column, IdColumn, PersonColumn, PersonSummary, Persons, Store, TextRef,
};

use rayon::prelude::*;

use super::plan::*;
use super::tail;
use crate::model::{LimitType, RangeOp, TextOp};

// ------------------------------------------------------------------ concept sets

/// A fast hasher for concept ids.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (i ^ (i >> 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_i32(&mut self, i: i32) {
        self.0 = (i as u32 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

pub(crate) type IdSet = std::collections::HashSet<i32, BuildHasherDefault<IdHasher>>;

/// A resolved codeset.
#[derive(Debug, Clone, Default)]
pub(crate) struct CodeSet {
    pub ids: Vec<i32>,
    set: IdSet,
}

impl CodeSet {
    pub fn new(ids: Vec<i32>) -> CodeSet {
        let set = ids.iter().copied().collect();
        CodeSet { ids, set }
    }
    #[inline]
    pub fn contains(&self, id: i32) -> bool {
        if self.ids.len() <= 8 {
            // Small sets (the common case) are faster to scan than to hash.
            id != i32::MIN && self.ids.contains(&id)
        } else {
            id != i32::MIN && self.set.contains(&id)
        }
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

// ------------------------------------------------------------------ events

/// A criteria event (a row of a Circe criteria query).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ev {
    pub id: i64,
    pub start: Day,
    pub end: Day,
    pub sort: Day,
    pub visit: i64,
    pub row: u32,
}

/// An index event (primary / qualified events, or a criteria's events joined to their
/// observation period).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Idx {
    pub id: i64,
    pub start: Day,
    pub end: Day,
    pub visit: i64,
    pub op_start: Day,
    pub op_end: Day,
}

const NULL_ID: i64 = i64::MIN;

// ------------------------------------------------------------------ bound data

fn col_i32<'s>(c: Option<ColumnRef<'s>>) -> Option<I32Column<'s>> {
    c.and_then(ColumnRef::as_i32)
}
fn col_id<'s>(c: Option<ColumnRef<'s>>) -> Option<IdColumn<'s>> {
    c.and_then(ColumnRef::as_id)
}

/// A number from a column: None for NULL.
fn num_at(c: Option<ColumnRef<'_>>, r: usize) -> Option<f64> {
    match c? {
        ColumnRef::I32(v) => v.get(r).filter(|&x| x != i32::MIN).map(f64::from),
        ColumnRef::Id(v) => v.get(r).filter(|&x| x != i64::MIN).map(|x| x as f64),
        ColumnRef::Float(v) => v.get(r).filter(|x| !x.is_nan()),
        ColumnRef::Text(_) => None,
    }
}

/// A reference table keyed by id with one concept column.
struct RefLookup<'s> {
    ids: &'s [i64],
    values: &'s [i32],
}

impl RefLookup<'_> {
    /// Ok(value or NULL) if the row exists, Err(()) if not.
    fn get(&self, id: i64) -> Result<i32, ()> {
        if id == NULL_ID {
            return Err(());
        }
        match self.ids.binary_search(&id) {
            Ok(i) => Ok(self.values.get(i).copied().unwrap_or(i32::MIN)),
            Err(_) => Err(()),
        }
    }
}

fn ref_lookup<'s>(store: &'s Store, table: &str, id_col: &str, col: &str) -> Option<RefLookup<'s>> {
    let r = store.reference(table)?;
    Some(RefLookup {
        ids: col_id(r.column(id_col))?.as_slice()?,
        values: col_i32(r.column(col))
            .and_then(|c| c.as_slice())
            .unwrap_or(&[]),
    })
}

/// Columns a node reads, resolved once per run.
pub(crate) struct NodeData<'s> {
    pub dom: Option<usize>,
    source: Option<I32Column<'s>>,
    pub visit: Option<IdColumn<'s>>,
    provider: Option<IdColumn<'s>>,
    care_site: Option<IdColumn<'s>>,
    location: Option<IdColumn<'s>>,
    domain_id: Option<TextRef<'s>>,
    /// One resolved column per filter (None where the filter reads no domain column or the store
    /// lacks it: all NULL).
    filter_cols: Vec<Option<ColumnRef<'s>>>,
    /// Measurement / observation value columns (Abnormal, ratio filters).
    value_as_number: Option<ColumnRef<'s>>,
    range_low: Option<ColumnRef<'s>>,
    range_high: Option<ColumnRef<'s>>,
    value_as_concept: Option<I32Column<'s>>,
    /// The column a distinct occurrence count of this node reads (`CountKind::Col`).
    count_col: Option<ColumnRef<'s>>,
    /// The rows whose domain concept is in the node's codeset.
    pub matched: Matched<'s>,
    /// The person of each row of a [`Matched::Rows`] list, when already read (empty otherwise).
    pub row_persons: Vec<u32>,
}

/// The rows of a domain a node can select, found from the per-concept postings so a person's
/// other rows are never read.
pub(crate) enum Matched<'s> {
    /// No codeset on the domain concept: every row of the person is a candidate.
    Scan,
    /// Ascending rows: one posting list (a single-concept or empty codeset), or several merged.
    Rows(Cow<'s, [u32]>),
    /// Several concepts: one bit per domain row.
    Bits(Vec<u64>),
    /// The matched rows with their core columns copied out in row order.
    Gathered(Gathered),
}

/// A node's matched rows with the columns every event reads, gathered in one ascending pass (many
/// independent loads in flight) instead of one person's scattered rows at a time.
#[derive(Default, Clone)]
pub(crate) struct Gathered {
    pub rows: Vec<u32>,
    pub person: Vec<u32>,
    pub start: Vec<Day>,
    pub end: Vec<Day>,
    /// Empty when no step reads the events' ids (NULL).
    id: Vec<i64>,
    /// Empty when no criteria reads visits (NULL).
    visit: Vec<i64>,
    /// The node's row tests (person row, joins, filters, date adjustment) already applied: the
    /// rows are its events, `start`/`end` their adjusted dates. Not for a `First` criteria, whose
    /// first row is taken before the filters.
    filtered: bool,
}

impl<'s> Matched<'s> {
    fn new(d: &Domain<'s>, cs: &CodeSet) -> Matched<'s> {
        match cs.ids.as_slice() {
            [] => Matched::Rows(Cow::Borrowed(&[])),
            [c] => Matched::Rows(Cow::Borrowed(d.concept_rows(*c))),
            ids if ids.iter().map(|&c| d.concept_rows(c).len()).sum::<usize>() < d.len() / 64 => {
                // Few rows: merged postings are cheaper than a bitmap over the whole domain.
                let lists: Vec<&[u32]> = ids.iter().map(|&c| d.concept_rows(c)).collect();
                Matched::Rows(Cow::Owned(merge_sorted(lists)))
            }
            ids => {
                // Pieces of the bitmap in parallel, each from its range of every posting list.
                let lists: Vec<&[u32]> = ids.iter().map(|&c| d.concept_rows(c)).collect();
                let mut bits = vec![0u64; d.len().div_ceil(64)];
                bits.par_chunks_mut(BITS_PIECE)
                    .enumerate()
                    .for_each(|(i, piece)| {
                        let first = i * BITS_PIECE * 64;
                        let rows = first..first + piece.len() * 64;
                        for list in &lists {
                            let from = list.partition_point(|&r| (r as usize) < rows.start);
                            for &r in &list[from..] {
                                let Some(w) = piece.get_mut((r as usize - first) / 64) else {
                                    break;
                                };
                                *w |= 1u64 << (r % 64);
                            }
                        }
                    });
                Matched::Bits(bits)
            }
        }
    }
}

/// Merges ascending lists into one ascending list (pairs of runs merged until one is left).
fn merge_sorted(lists: Vec<&[u32]>) -> Vec<u32> {
    fn two(a: &[u32], b: &[u32]) -> Vec<u32> {
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            if a[i] <= b[j] {
                out.push(a[i]);
                i += 1;
            } else {
                out.push(b[j]);
                j += 1;
            }
        }
        out.extend_from_slice(&a[i..]);
        out.extend_from_slice(&b[j..]);
        out
    }
    let mut runs: Vec<Vec<u32>> = lists
        .into_iter()
        .filter(|l| !l.is_empty())
        .map(<[u32]>::to_vec)
        .collect();
    while runs.len() > 1 {
        runs = runs
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => two(a, b),
                [a] => a.clone(),
                _ => Vec::new(),
            })
            .collect();
    }
    runs.pop().unwrap_or_default()
}

impl Matched<'_> {
    /// The number of matched rows (None: every row).
    fn len(&self) -> Option<usize> {
        match self {
            Matched::Scan => None,
            Matched::Rows(r) => Some(r.len()),
            Matched::Bits(b) => Some(b.iter().map(|w| w.count_ones() as usize).sum()),
            Matched::Gathered(g) => Some(g.rows.len()),
        }
    }

    /// Whether no row matches (an empty codeset, or concepts the domain does not hold).
    pub(crate) fn matches_nothing(&self) -> bool {
        match self {
            Matched::Rows(r) => r.is_empty(),
            Matched::Gathered(g) => g.rows.is_empty(),
            Matched::Scan | Matched::Bits(_) => false,
        }
    }

    /// The matched rows as a list (None: every row, or already gathered).
    fn row_list(&self) -> Option<Vec<u32>> {
        match self {
            Matched::Scan | Matched::Gathered(_) => None,
            Matched::Rows(r) => Some(r.to_vec()),
            Matched::Bits(bits) => {
                let mut rows = Vec::new();
                for (w, &word) in bits.iter().enumerate() {
                    let mut word = word;
                    while word != 0 {
                        rows.push((w * 64) as u32 + word.trailing_zeros());
                        word &= word - 1;
                    }
                }
                Some(rows)
            }
        }
    }
}

impl Gathered {
    pub(crate) fn rows(&self) -> &[u32] {
        &self.rows
    }

    /// Whether the node's row tests are applied: the rows are its events.
    pub(crate) fn filtered(&self) -> bool {
        self.filtered
    }

    /// Event `i`'s id, if gathered.
    pub(crate) fn id(&self, i: usize) -> Option<i64> {
        self.id.get(i).copied()
    }

    /// Event `i`'s visit id, if gathered.
    pub(crate) fn visit(&self, i: usize) -> Option<i64> {
        self.visit.get(i).copied()
    }
}

/// The person of each of `rows` (a domain's rows, ascending; `column` its person column), read
/// in parallel pieces with many loads in flight (u32::MAX for a row past the column's end).
fn persons_of(column: PersonColumn<'_>, rows: &[u32]) -> Vec<u32> {
    let pieces: Vec<Vec<u32>> = in_pieces(rows, GATHER_PIECE, |chunk| {
        let mut out = Vec::with_capacity(chunk.len());
        for (k, &r) in chunk.iter().enumerate() {
            if let Some(&next) = chunk.get(k + AHEAD) {
                column.prefetch(next as usize);
            }
            out.push(column.get(r as usize).unwrap_or(u32::MAX));
        }
        out
    });
    pieces.concat()
}

/// `f` of each piece of `items` (`piece` items each), in order: in parallel where there are
/// several pieces, on this thread where there is one (a small gather neither starts nor wakes the
/// thread pool: a short query's process never starts it).
fn in_pieces<T: Sync, R: Send>(
    items: &[T],
    piece: usize,
    f: impl Fn(&[T]) -> R + Sync + Send,
) -> Vec<R> {
    match items.len() {
        0 => Vec::new(),
        n if n <= piece => vec![f(items)],
        _ => items.par_chunks(piece).map(f).collect(),
    }
}

/// Whose rows [`Ctx::gather`] gathers.
pub(crate) enum Among<'a> {
    Everyone,
    /// These persons (indexes, ascending): the ones the per-person evaluator evaluates.
    Candidates(&'a [u32]),
    /// The persons with a row matched by some primary criteria (the only ones the fused
    /// pipeline evaluates groups for).
    PrimaryPersons,
}

/// A set of persons: their indexes ascending, and as a bitmap.
pub(crate) struct PersonSet {
    list: Vec<u32>,
    bits: Vec<u64>,
}

impl PersonSet {
    /// The persons `list` (ascending, distinct) among `n` person indexes.
    fn new(n: usize, list: Vec<u32>) -> PersonSet {
        let mut bits = vec![0u64; n.div_ceil(64)];
        for &p in &list {
            if let Some(w) = bits.get_mut(p as usize / 64) {
                *w |= 1 << (p % 64);
            }
        }
        PersonSet { list, bits }
    }

    #[inline]
    fn has(&self, p: u32) -> bool {
        self.bits
            .get(p as usize / 64)
            .is_some_and(|w| w & (1 << (p % 64)) != 0)
    }
}

/// The first index `i >= from` of ascending `rows` with `rows[i] >= target` (galloping from `from`,
/// which is a hint: a `from` past the answer falls back to a binary search).
pub(crate) fn seek<T: Copy + Into<u64>>(rows: &[T], from: usize, target: usize) -> usize {
    let below = |r: &T| (*r).into() < target as u64;
    if from > rows.len() || (from > 0 && !below(&rows[from - 1])) {
        return rows.partition_point(below);
    }
    let (mut lo, mut hi, mut step) = (from, from, 1usize);
    while hi < rows.len() && below(&rows[hi]) {
        lo = hi + 1;
        hi += step;
        step *= 2;
    }
    let hi = hi.min(rows.len());
    lo + rows[lo..hi].partition_point(below)
}

/// Calls `f` for each row of `range` whose bit is set, ascending.
#[inline]
pub(crate) fn for_each_bit(
    bits: &[u64],
    range: std::ops::Range<usize>,
    mut f: impl FnMut(usize) -> bool,
) {
    if range.is_empty() {
        return;
    }
    let (first, last) = (range.start / 64, (range.end - 1) / 64);
    for w in first..=last {
        let mut word = bits.get(w).copied().unwrap_or(0);
        if w == first {
            word &= u64::MAX << (range.start % 64);
        }
        if w == last && !range.end.is_multiple_of(64) {
            word &= u64::MAX >> (64 - range.end % 64);
        }
        while word != 0 {
            let r = w * 64 + word.trailing_zeros() as usize;
            if !f(r) {
                return;
            }
            word &= word - 1;
        }
    }
}

/// Prefetches for loops whose addresses come from another array (rows from a posting list, a
/// person's rows from the person offsets), which the hardware cannot predict, issued some
/// iterations ahead.
pub(crate) use qiao_store::prefetch;

/// [`prefetch`] of row `r`'s person, start and end (and event id) in domain `d`.
#[inline(always)]
pub(crate) fn prefetch_row(d: &Domain<'_>, r: usize, id: bool) {
    d.person().prefetch(r);
    prefetch_dates(d, r, id);
}

/// [`prefetch`] of row `r`'s start and end (and event id) in domain `d`.
#[inline(always)]
pub(crate) fn prefetch_dates(d: &Domain<'_>, r: usize, id: bool) {
    d.start().prefetch(r);
    d.end().prefetch(r);
    if id {
        d.event_id().prefetch(r);
    }
}

/// How many iterations ahead [`prefetch`] is issued.
pub(crate) const AHEAD: usize = 16;

/// Words per parallel piece of a matched-rows bitmap (a million rows).
const BITS_PIECE: usize = 1 << 14;

/// Rows per parallel piece of a gather.
const GATHER_PIECE: usize = 4096;

/// A node whose matched rows are more than 1/DENSE_SHARE of its domain's rows is not gathered.
const DENSE_SHARE: usize = 8;

pub(crate) struct Ctx<'s> {
    pub plan: &'s Plan,
    pub codesets: &'s HashMap<i32, CodeSet>,
    pub domains: Vec<Domain<'s>>,
    pub nodes: Vec<NodeData<'s>>,
    pub op: Option<usize>,
    pub visit_dom: Option<usize>,
    pub drug_dom: Option<usize>,
    drug_source: Option<I32Column<'s>>,
    persons: Persons<'s>,
    store: &'s Store,
    yob: &'s [i32],
    gender: &'s [i32],
    race: &'s [i32],
    ethnicity: &'s [i32],
    provider: Option<RefLookup<'s>>,
    care_site: Option<RefLookup<'s>>,
    location: Option<RefLookup<'s>>,
    empty: CodeSet,
}

fn filter_column(f: &Filter) -> Option<&'static str> {
    match f {
        Filter::Num {
            expr: NumExpr::Col(c) | NumExpr::Ratio(c),
            ..
        } => Some(c),
        Filter::InList {
            col: ConceptExpr::Col(c),
            ..
        }
        | Filter::InCodeset {
            col: ConceptExpr::Col(c),
            ..
        } => Some(c),
        Filter::Text { col, .. } => Some(col),
        _ => None,
    }
}

impl<'s> Ctx<'s> {
    pub fn new(store: &'s Store, plan: &'s Plan, codesets: &'s HashMap<i32, CodeSet>) -> Ctx<'s> {
        let mut domains: Vec<Domain<'s>> = Vec::new();
        let mut names: Vec<&'static str> = Vec::new();
        let mut dom_index = |table: &'static str, domains: &mut Vec<Domain<'s>>| -> Option<usize> {
            if let Some(i) = names.iter().position(|n| *n == table) {
                return Some(i).filter(|&i| i < domains.len() && names[i] == table);
            }
            let d = store.domain(table)?;
            domains.push(d);
            names.push(table);
            Some(domains.len() - 1)
        };
        let op = dom_index("observation_period", &mut domains);
        let visit_dom = dom_index("visit_occurrence", &mut domains);
        let drug_dom = if matches!(plan.end, EndPlan::CustomEra { .. }) {
            dom_index("drug_exposure", &mut domains)
        } else {
            None
        };
        let mut nodes = Vec::with_capacity(plan.nodes.len());
        let empty = CodeSet::default();
        let count_cols = count_columns(plan);
        for n in &plan.nodes {
            let dom = dom_index(n.table, &mut domains);
            let d = dom.map(|i| &domains[i]);
            let col = |name: &str| d.and_then(|d| d.column(name));
            let matched = match (n.codeset, d) {
                (Some(cs), Some(d)) => Matched::new(d, codesets.get(&cs).unwrap_or(&empty)),
                _ => Matched::Scan,
            };
            nodes.push(NodeData {
                dom,
                source: n.source.and_then(|(c, _)| col_i32(col(c))),
                visit: n.visit_col.and_then(|c| col_id(col(c))),
                provider: col_id(col("provider_id")),
                care_site: col_id(col("care_site_id")),
                location: col_id(col("location_id")),
                domain_id: col("domain_id").and_then(ColumnRef::as_text),
                filter_cols: n
                    .filters
                    .iter()
                    .map(|f| filter_column(f).and_then(col))
                    .collect(),
                value_as_number: col("value_as_number"),
                range_low: col("range_low"),
                range_high: col("range_high"),
                value_as_concept: col_i32(col("value_as_concept_id")),
                count_col: count_cols.get(nodes.len()).copied().flatten().and_then(col),
                matched,
                row_persons: Vec::new(),
            });
        }
        let drug_source =
            drug_dom.and_then(|i| col_i32(domains[i].column("drug_source_concept_id")));
        let persons = store.persons();
        Ctx {
            plan,
            codesets,
            domains,
            nodes,
            op,
            visit_dom,
            drug_dom,
            drug_source,
            yob: persons.i32_column("year_of_birth"),
            gender: persons.i32_column("gender_concept_id"),
            race: persons.i32_column("race_concept_id"),
            ethnicity: persons.i32_column("ethnicity_concept_id"),
            // Reference tables only when some filter joins them.
            provider: reads_concept(plan, ConceptExpr::ProviderSpecialty)
                .then(|| ref_lookup(store, "provider", "provider_id", "specialty_concept_id"))
                .flatten(),
            care_site: reads_concept(plan, ConceptExpr::PlaceOfService)
                .then(|| {
                    ref_lookup(
                        store,
                        "care_site",
                        "care_site_id",
                        "place_of_service_concept_id",
                    )
                })
                .flatten(),
            location: plan
                .nodes
                .iter()
                .any(|n| n.region_codeset.is_some())
                .then(|| ref_lookup(store, "location", "location_id", "region_concept_id"))
                .flatten(),
            persons,
            store,
            empty: CodeSet::default(),
        }
    }

    /// Gathers the matched rows of the primary criteria (`candidates` None), or of every other node
    /// whose matched rows are not many more than the candidates' (`Some(persons evaluated)`), of
    /// the persons `among`: the rows of other persons are left out (no group reads them).
    pub fn gather(&mut self, candidates: Option<usize>, among: Among<'_>) {
        let primary = &self.plan.primary;
        let work: Vec<usize> = (0..self.nodes.len())
            .filter(|i| {
                let nd = &self.nodes[*i];
                // A dense match (a large share of the domain's rows) is read in place: a person's
                // rows are contiguous, so reading them in person order already streams, and a copy
                // would only add writes and page faults.
                let rows = nd
                    .dom
                    .and_then(|d| self.domains.get(d))
                    .map_or(0, Domain::len);
                nd.matched.len().is_some_and(|m| {
                    m <= rows / DENSE_SHARE
                        && match candidates {
                            None => primary.contains(i),
                            Some(n) => !primary.contains(i) && m <= n.saturating_mul(4),
                        }
                })
            })
            .collect();
        if work.is_empty() {
            return;
        }
        // A node with the events of a (not gathered) primary criteria: its rows are all of primary
        // persons; once gathered, the primary criteria's events are read from it too.
        let nodes = &self.plan.nodes;
        let twin = |i: usize| {
            primary.iter().copied().find(|&n| {
                // (A First taken before the filters is not one of the filtered events.)
                !nodes[i].first
                    && (!nodes[n].first || nodes[n].filters.is_empty())
                    && nodes[n].same_events(&nodes[i])
                    && !matches!(self.nodes[n].matched, Matched::Gathered(_))
            })
        };
        let twins: Vec<Option<usize>> = match among {
            Among::PrimaryPersons => work.iter().map(|&i| twin(i)).collect(),
            _ => vec![None; work.len()],
        };
        let persons = match among {
            _ if twins.iter().all(Option::is_some) => None,
            Among::Everyone => None,
            Among::Candidates(list) => Some(PersonSet::new(self.persons_len(), list.to_vec())),
            Among::PrimaryPersons => self.primary_persons(),
        };
        let gathered: Vec<Option<Gathered>> = work
            .iter()
            .zip(&twins)
            .map(|(&i, twin)| self.gather_node(i, persons.as_ref().filter(|_| twin.is_none())))
            .collect();
        for ((i, g), twin) in work.into_iter().zip(gathered).zip(twins) {
            if let Some(g) = g {
                if let Some(n) = twin {
                    self.nodes[n].matched = Matched::Gathered(g.clone());
                }
                self.nodes[i].matched = Matched::Gathered(g);
            }
        }
    }

    /// The persons with a row matched by some primary criteria (None: a primary criteria matches
    /// every row of its domain). Their rows' persons are read in parallel pieces, many loads in
    /// flight.
    fn primary_persons(&mut self) -> Option<PersonSet> {
        let mut persons = Vec::new();
        for &i in &self.plan.primary {
            let nd = &self.nodes[i];
            let Some(d) = nd.dom.and_then(|x| self.domains.get(x)) else {
                continue;
            };
            match &nd.matched {
                Matched::Scan => return None,
                Matched::Gathered(g) => persons.extend_from_slice(&g.person),
                Matched::Rows(rows) => {
                    // Kept for the scan of the primary events, which then reads no person.
                    let of_rows = persons_of(d.person(), rows);
                    persons.extend_from_slice(&of_rows);
                    self.nodes[i].row_persons = of_rows;
                }
                Matched::Bits(_) => {
                    let rows = nd.matched.row_list().unwrap_or_default();
                    persons.extend(persons_of(d.person(), &rows));
                }
            }
        }
        persons.sort_unstable();
        persons.dedup();
        Some(PersonSet::new(self.persons_len(), persons))
    }

    /// Node `i`'s matched rows with the columns its events read, copied out in row order (many
    /// independent loads in flight, in parallel pieces) instead of one person's scattered rows
    /// at a time; the row tests applied on the way, unless the node takes a person's `First` row.
    /// With `persons` (a bitmap), only the rows of those persons: a row's person is read first,
    /// its other columns only if it is kept.
    fn gather_node(&self, i: usize, persons: Option<&PersonSet>) -> Option<Gathered> {
        let (node, nd) = (&self.plan.nodes[i], &self.nodes[i]);
        let d = nd.dom.and_then(|x| self.domains.get(x))?;
        let rows = nd.matched.row_list()?;
        // Unread visit ids are not gathered (events carry NULL); event ids only order index
        // events (primary criteria) and a nested group's index events.
        let visit = nd.visit.filter(|_| reads_visits(self.plan));
        let need_id = self.plan.primary.contains(&i) || node.correlated.is_some();
        let filtered = !node.first;
        let tests = filtered && node.tests_rows();
        let (person, starts, ends, ids) = (d.person(), d.start(), d.end(), d.event_id());
        // Row `r` of person `p`, if it passes the node's row tests.
        let take = |g: &mut Gathered, r: u32, p: u32| {
            let ri = r as usize;
            let s0 = starts.get(ri).unwrap_or(NULL_DAY);
            let e0 = ends.get(ri).unwrap_or(NULL_DAY);
            let (start, end) = if !tests {
                (s0, e0)
            } else if (node.needs_person && !self.has_person_row(p))
                || !self.row_joins_ok(node, nd, ri)
            {
                return;
            } else {
                match self.row_dates(p, node, nd, ri, s0, e0) {
                    Some(dates) => dates,
                    None => return,
                }
            };
            g.rows.push(r);
            g.person.push(p);
            g.start.push(start);
            g.end.push(end);
            if need_id {
                g.id.push(ids.get(ri).unwrap_or(NULL_ID));
            }
            if let Some(v) = visit {
                g.visit.push(v.get(ri).unwrap_or(NULL_ID));
            }
        };
        // What `take` reads of row `r`, but its person.
        let ahead = |r: u32| {
            prefetch_dates(d, r as usize, need_id);
            if tests {
                for c in nd.filter_cols.iter().flatten() {
                    c.prefetch(r as usize);
                }
            }
        };
        let pieces: Vec<Gathered> = match persons {
            None => in_pieces(&rows, GATHER_PIECE, |chunk| {
                let mut g = Gathered {
                    filtered,
                    ..Gathered::default()
                };
                for (k, &r) in chunk.iter().enumerate() {
                    if let Some(&next) = chunk.get(k + AHEAD) {
                        person.prefetch(next as usize);
                        ahead(next);
                    }
                    if let Some(p) = person.get(r as usize) {
                        take(&mut g, r, p);
                    }
                }
                g
            }),
            Some(persons) => {
                // The rows of those persons, with their person: found from the person offsets
                // (read in person order) where the persons are fewer than the rows, else from
                // each row's person.
                let kept: Vec<(u32, u32)> = if persons.list.len() < rows.len() {
                    let offsets = d.person_offsets();
                    let of = |chunk: &[u32]| {
                        let mut out = Vec::new();
                        let mut j = 0;
                        for (k, &p) in chunk.iter().enumerate() {
                            if let Some(&next) = chunk.get(k + AHEAD) {
                                prefetch(offsets, next as usize);
                            }
                            let range = d.person_rows(p);
                            j = seek(&rows, j, range.start);
                            while let Some(&r) = rows.get(j).filter(|&&r| (r as usize) < range.end)
                            {
                                out.push((r, p));
                                j += 1;
                            }
                        }
                        out
                    };
                    let pieces: Vec<Vec<(u32, u32)>> = in_pieces(&persons.list, GATHER_PIECE, of);
                    pieces.concat()
                } else {
                    let of_rows = persons_of(person, &rows);
                    rows.iter()
                        .zip(of_rows)
                        .filter(|&(_, p)| persons.has(p))
                        .map(|(&r, p)| (r, p))
                        .collect()
                };
                in_pieces(&kept, GATHER_PIECE, |chunk| {
                    let mut g = Gathered {
                        filtered,
                        ..Gathered::default()
                    };
                    for (k, &(r, p)) in chunk.iter().enumerate() {
                        if let Some(&(next, _)) = chunk.get(k + AHEAD) {
                            ahead(next);
                        }
                        take(&mut g, r, p);
                    }
                    g
                })
            }
        };
        let mut all = Gathered {
            filtered,
            ..Gathered::default()
        };
        for g in pieces {
            all.rows.extend(g.rows);
            all.person.extend(g.person);
            all.start.extend(g.start);
            all.end.extend(g.end);
            all.id.extend(g.id);
            all.visit.extend(g.visit);
        }
        Some(all)
    }

    /// The primary criteria's matched rows in all (None if one reads every row of its
    /// domain): a bound on the persons with a primary event.
    pub(crate) fn primary_matched_rows(&self) -> Option<usize> {
        self.plan
            .primary
            .iter()
            .map(|&n| self.nodes[n].matched.len())
            .sum()
    }

    fn codeset(&self, id: i32) -> &CodeSet {
        self.codesets.get(&id).unwrap_or(&self.empty)
    }

    fn person_i32(&self, col: &str, p: u32) -> i32 {
        let v = match col {
            "gender_concept_id" => self.gender,
            "race_concept_id" => self.race,
            "ethnicity_concept_id" => self.ethnicity,
            _ => &[],
        };
        v.get(p as usize).copied().unwrap_or(i32::MIN)
    }

    pub(crate) fn has_person_row(&self, p: u32) -> bool {
        self.persons.has_row(p)
    }

    pub(crate) fn person_id(&self, p: u32) -> i64 {
        self.persons.person_id(p)
    }

    /// The person offsets of the domains a per-person evaluator reads a person's rows from
    /// (criteria not gathered, other than `skip`; the drug exposures of a custom era end), and
    /// for the custom era the columns it scans: for prefetching persons ahead.
    pub(crate) fn per_person_reads(&self, skip: &[usize]) -> (Vec<&'s [u32]>, Vec<I32Column<'s>>) {
        let mut doms: Vec<usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, nd)| {
                !skip.contains(i)
                    && !matches!(&nd.matched, Matched::Gathered(_))
                    && !nd.matched.matches_nothing()
            })
            .filter_map(|(_, nd)| nd.dom)
            .chain(self.drug_dom)
            .collect();
        doms.sort_unstable();
        doms.dedup();
        let offsets = doms
            .iter()
            .map(|&d| self.domains[d].person_offsets())
            .collect();
        let columns = match self.drug_dom.map(|d| &self.domains[d]) {
            Some(d) => [
                Some(d.start().into()),
                Some(d.end().into()),
                Some(I32Column::from_slice(d.concept())),
                self.drug_source,
            ]
            .into_iter()
            .flatten()
            .collect(),
            None => Vec::new(),
        };
        (offsets, columns)
    }

    /// The drug exposure rows' person offsets (a custom era end reads a person's rows).
    pub(crate) fn drug_offsets(&self) -> Option<&'s [u32]> {
        self.drug_dom.map(|d| self.domains[d].person_offsets())
    }

    /// Every person id by person index.
    /// Per person index: id and single observation period, side by side (made on the store's
    /// first call, for the fused pipeline only).
    pub(crate) fn person_summaries(&self) -> &'s [PersonSummary] {
        self.store.person_summaries()
    }

    pub(crate) fn persons_len(&self) -> usize {
        self.persons.len()
    }

    fn concept_of(
        &self,
        p: u32,
        nd: &NodeData<'s>,
        col: ConceptExpr,
        fcol: Option<ColumnRef<'s>>,
        r: usize,
    ) -> Result<i32, ()> {
        let ctx = self;
        match col {
            ConceptExpr::Col(_) => Ok(col_i32(fcol).and_then(|v| v.get(r)).unwrap_or(i32::MIN)),
            ConceptExpr::Person(c) => Ok(ctx.person_i32(c, p)),
            ConceptExpr::ProviderSpecialty => {
                let id = nd.provider.and_then(|v| v.get(r)).unwrap_or(NULL_ID);
                Ok(ctx
                    .provider
                    .as_ref()
                    .and_then(|l| l.get(id).ok())
                    .unwrap_or(i32::MIN))
            }
            ConceptExpr::VisitConcept => {
                let id = nd.visit.and_then(|v| v.get(r)).unwrap_or(NULL_ID);
                if id == NULL_ID {
                    return Err(());
                }
                let vd = ctx.visit_dom.map(|i| &ctx.domains[i]).ok_or(())?;
                let (ids, concepts) = (vd.event_id(), vd.concept());
                for vr in vd.person_rows(p) {
                    if ids.get(vr) == Some(id) {
                        return Ok(concepts.get(vr).copied().unwrap_or(i32::MIN));
                    }
                }
                Err(())
            }
            ConceptExpr::PlaceOfService => {
                let id = nd.care_site.and_then(|v| v.get(r)).unwrap_or(NULL_ID);
                ctx.care_site.as_ref().ok_or(())?.get(id)
            }
        }
    }

    fn year_of_birth(&self, p: u32) -> Option<i32> {
        self.yob.get(p as usize).copied().filter(|&y| y != i32::MIN)
    }

    #[allow(clippy::too_many_arguments)]
    fn filter_ok(
        &self,
        p: u32,
        nd: &NodeData<'s>,
        f: &Filter,
        fcol: Option<ColumnRef<'s>>,
        r: usize,
        start: Day,
        end: Day,
    ) -> bool {
        match f {
            Filter::Date { expr, op, a, b } => {
                let v = if *expr == DateExpr::Start { start } else { end };
                date_ok(*op, v, *a, *b)
            }
            Filter::Num { expr, op, a, b } => {
                let v = match expr {
                    NumExpr::Col(_) => num_at(fcol, r),
                    NumExpr::Age { at_end } => {
                        let d = if *at_end { end } else { start };
                        self.year_of_birth(p)
                            .filter(|_| d != NULL_DAY)
                            .map(|y| (date::year(d) as i64 - y as i64) as f64)
                    }
                    NumExpr::Duration => {
                        if start == NULL_DAY || end == NULL_DAY {
                            None
                        } else {
                            Some(end as f64 - start as f64)
                        }
                    }
                    NumExpr::Ratio(_) => {
                        let v = num_at(nd.value_as_number, r);
                        let d = num_at(fcol, r).filter(|&d| d != 0.0);
                        match (v, d) {
                            (Some(v), Some(d)) => Some(v / d),
                            _ => None,
                        }
                    }
                };
                v.is_some_and(|v| range_ok(*op, v, *a, *b))
            }
            Filter::InList { col, ids, negate } => match self.concept_of(p, nd, *col, fcol, r) {
                Err(()) => false,
                Ok(v) if v == i32::MIN => false,
                Ok(v) => ids.contains(&v) != *negate,
            },
            Filter::InCodeset {
                col,
                codeset,
                exclude,
            } => match self.concept_of(p, nd, *col, fcol, r) {
                Err(()) => false,
                Ok(v) => match codeset {
                    Some(cs) => in_codeset(v, self.codeset(*cs), *exclude),
                    None => (v == i32::MIN) == *exclude,
                },
            },
            Filter::Text { op, text, .. } => {
                let Some(t) = fcol.and_then(ColumnRef::as_text).and_then(|t| t.get(r)) else {
                    return false;
                };
                let (pat, negate) = like_pattern(*op, text);
                like(t, &pat) != negate
            }
            Filter::Abnormal => {
                let v = num_at(nd.value_as_number, r);
                let lo = num_at(nd.range_low, r);
                let hi = num_at(nd.range_high, r);
                let vc = nd
                    .value_as_concept
                    .and_then(|c| c.get(r))
                    .unwrap_or(i32::MIN);
                matches!((v, lo), (Some(v), Some(lo)) if v < lo)
                    || matches!((v, hi), (Some(v), Some(hi)) if v > hi)
                    || vc == 4155142
                    || vc == 4155143
            }
            Filter::Covers(d) => start <= *d && end >= *d,
            Filter::EndGeStart => end >= start,
            Filter::DomainIsPerson => nd
                .domain_id
                .and_then(|t| t.get(r))
                .is_some_and(|s| s == "PERSON"),
        }
    }

    /// A demographic criteria on an index event of person `p` (false without a person row).
    pub(crate) fn demo_ok(&self, p: u32, d: &DemoPlan, start: Day, end: Day) -> bool {
        self.has_person_row(p)
            && d.filters.iter().all(|f| match f {
                DemoFilter::Age { op, a, b } => self.year_of_birth(p).is_some_and(|y| {
                    range_ok(*op, (date::year(start) as i64 - y as i64) as f64, *a, *b)
                }),
                DemoFilter::InList { col, ids } => {
                    let v = self.person_i32(col, p);
                    v != i32::MIN && ids.contains(&v)
                }
                DemoFilter::InCodeset {
                    col,
                    codeset,
                    exclude,
                } => {
                    let v = self.person_i32(col, p);
                    match codeset {
                        Some(cs) => in_codeset(v, self.codeset(*cs), *exclude),
                        None => (v == i32::MIN) == *exclude,
                    }
                }
                DemoFilter::Date {
                    end: at_end,
                    op,
                    a,
                    b,
                } => date_ok(*op, if *at_end { end } else { start }, *a, *b),
            })
    }

    /// Whether row `r` of a node's domain passes its source-concept and location-region joins
    /// (the domain-concept codeset is applied by the caller, from the postings).
    #[inline]
    pub(crate) fn row_joins_ok(&self, node: &CritNode, nd: &NodeData<'s>, r: usize) -> bool {
        if let Some((_, c)) = node.source {
            let v = nd.source.and_then(|s| s.get(r)).unwrap_or(i32::MIN);
            if !self.codeset(c).contains(v) {
                return false;
            }
        }
        if let Some(c) = node.region_codeset {
            let loc = nd.location.and_then(|l| l.get(r)).unwrap_or(NULL_ID);
            let reg = self
                .location
                .as_ref()
                .and_then(|l| l.get(loc).ok())
                .unwrap_or(i32::MIN);
            if !self.codeset(c).contains(reg) {
                return false;
            }
        }
        true
    }

    /// Row `r`'s (start, end) after the node's date adjustment (`s0`, `e0`: the row's own dates),
    /// if the row passes the node's filters.
    #[inline]
    pub(crate) fn row_dates(
        &self,
        p: u32,
        node: &CritNode,
        nd: &NodeData<'s>,
        r: usize,
        s0: Day,
        e0: Day,
    ) -> Option<(Day, Day)> {
        let (start, end) = match node.adjust {
            Some(a) => (
                sat(add(
                    if a.start_from_end { e0 } else { s0 },
                    a.start_offset as i64,
                )),
                sat(add(
                    if a.end_from_end { e0 } else { s0 },
                    a.end_offset as i64,
                )),
            ),
            None => (s0, e0),
        };
        node.filters
            .iter()
            .zip(&nd.filter_cols)
            .all(|(f, c)| self.filter_ok(p, nd, f, *c, r, start, end))
            .then_some((start, end))
    }

    /// Drug eras for the custom era end strategy: (era start, era end) per person.
    pub(crate) fn drug_eras(
        &self,
        p: u32,
        codeset: i32,
        gap: i32,
        offset: i32,
        supply_override: Option<i32>,
    ) -> Vec<(Day, Day)> {
        let ctx = self;
        let Some(di) = ctx.drug_dom else {
            return Vec::new();
        };
        let d = &ctx.domains[di];
        let cs = ctx.codeset(codeset);
        let (starts, ends, concepts) = (d.start(), d.end(), d.concept());
        let mut exp: Vec<(i64, i64)> = Vec::new();
        for r in d.person_rows(p) {
            // A row in the codeset by its concept or its source concept (Circe joins each: a row
            // in by both is there twice, which changes no era). Its dates are read only then.
            if !cs.contains(concepts.get(r).copied().unwrap_or(i32::MIN))
                && !cs.contains(ctx.drug_source.and_then(|v| v.get(r)).unwrap_or(i32::MIN))
            {
                continue;
            }
            let s = starts.get(r).unwrap_or(NULL_DAY);
            let end = match supply_override {
                Some(o) => add(s, o as i64),
                None => ends.get(r).unwrap_or(NULL_DAY) as i64,
            };
            exp.push((s as i64, end + offset as i64));
        }
        let mut eras = Vec::new();
        tail::eras(&mut exp, gap as i64, &mut eras);
        eras.into_iter().map(|(s, e)| (sat(s), sat(e))).collect()
    }

    /// Persons who may have a primary event (ascending person index).
    pub fn candidates(&self) -> Vec<u32> {
        let n = self.persons.len();
        let mut mark = vec![0u64; n.div_ceil(64)];
        let mut set = |p: u32| {
            if let Some(w) = mark.get_mut(p as usize / 64) {
                *w |= 1u64 << (p % 64);
            }
        };
        for &id in &self.plan.primary {
            let node = &self.plan.nodes[id];
            let Some(di) = self.nodes[id].dom else {
                continue;
            };
            let d = &self.domains[di];
            let person = d.person();
            if let Matched::Gathered(g) = &self.nodes[id].matched {
                for &p in &g.person {
                    set(p);
                }
            } else if let Some(cs) = node.codeset {
                for &c in &self.codeset(cs).ids {
                    for &r in d.concept_rows(c) {
                        if let Some(p) = person.get(r as usize) {
                            set(p);
                        }
                    }
                }
            } else if let (Some((_, cs)), Some(src)) = (node.source, self.nodes[id].source) {
                let cs = self.codeset(cs);
                for (r, v) in src.iter().enumerate() {
                    if cs.contains(v) {
                        if let Some(p) = person.get(r) {
                            set(p);
                        }
                    }
                }
            } else if node.source.is_some() {
                // The source column is absent: no row matches.
            } else {
                for p in person.iter() {
                    set(p);
                }
            }
        }
        let mut out = Vec::new();
        for_each_bit(&mark, 0..n, |p| {
            out.push(p as u32);
            true
        });
        out
    }
}

/// Calls `f` on every correlated criteria of the plan.
fn each_corr(plan: &Plan, f: &mut impl FnMut(&CorrPlan)) {
    fn walk(g: &GroupPlan, f: &mut impl FnMut(&CorrPlan)) {
        for m in &g.members {
            match m {
                Member::Corr(c) => f(c),
                Member::Group(sub) => walk(sub, f),
                Member::Demo(_) => {}
            }
        }
    }
    for g in plan
        .additional
        .iter()
        .chain(plan.rules.iter().map(|(_, g)| g))
        .chain(plan.nodes.iter().filter_map(|n| n.correlated.as_ref()))
    {
        walk(g, f);
    }
}

/// Per node, the column its distinct occurrence count reads (`CountKind::Col`), if any.
fn count_columns(plan: &Plan) -> Vec<Option<&'static str>> {
    let mut out = vec![None; plan.nodes.len()];
    each_corr(plan, &mut |c| {
        if let (Some(CountKind::Col(name)), Some(slot)) = (c.distinct, out.get_mut(c.node)) {
            *slot = Some(name);
        }
    });
    out
}

/// Whether some criteria filters on the concept `expr`.
fn reads_concept(plan: &Plan, expr: ConceptExpr) -> bool {
    plan.nodes.iter().flat_map(|n| &n.filters).any(
        |f| matches!(f, Filter::InList { col, .. } | Filter::InCodeset { col, .. } if *col == expr),
    )
}

/// Whether any event's visit_occurrence_id is ever read (RestrictVisit, a distinct visit count).
pub(crate) fn reads_visits(plan: &Plan) -> bool {
    let mut any = false;
    each_corr(plan, &mut |c| {
        any |= c.restrict_visit || c.distinct == Some(CountKind::Visit);
    });
    any
}

// ------------------------------------------------------------------ helpers

pub(crate) use super::tail::{add, sat};

fn range_ok(op: RangeOp, v: f64, a: f64, b: f64) -> bool {
    match op {
        RangeOp::Lt => v < a,
        RangeOp::Lte => v <= a,
        RangeOp::Eq => v == a,
        RangeOp::NotEq => v != a,
        RangeOp::Gt => v > a,
        RangeOp::Gte => v >= a,
        RangeOp::Bt => v >= a && v <= b,
        RangeOp::NotBt => !(v >= a && v <= b),
    }
}

fn date_ok(op: RangeOp, v: Day, a: Day, b: Day) -> bool {
    if v == NULL_DAY {
        return false;
    }
    range_ok(op, v as f64, a as f64, b as f64)
}

/// SQL `col [not] in (codeset)` with NULL semantics (`NULL not in (empty)` is true).
fn in_codeset(v: i32, cs: &CodeSet, exclude: bool) -> bool {
    if exclude {
        cs.is_empty() || (v != i32::MIN && !cs.contains(v))
    } else {
        cs.contains(v)
    }
}

/// SQL `LIKE` with `%` and `_` wildcards (case-sensitive).
fn like(text: &str, pattern: &[char]) -> bool {
    let t: Vec<char> = text.chars().collect();
    let (mut ti, mut pi) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ti < t.len() {
        if pi < pattern.len() && (pattern[pi] == '_' || pattern[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < pattern.len() && pattern[pi] == '%' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < pattern.len() && pattern[pi] == '%' {
        pi += 1;
    }
    pi == pattern.len()
}

fn like_pattern(op: TextOp, text: &str) -> (Vec<char>, bool) {
    let negate = matches!(
        op,
        TextOp::NotStartsWith | TextOp::NotContains | TextOp::NotEndsWith
    );
    let prefix = matches!(
        op,
        TextOp::EndsWith | TextOp::NotEndsWith | TextOp::Contains | TextOp::NotContains
    );
    let postfix = matches!(
        op,
        TextOp::StartsWith | TextOp::NotStartsWith | TextOp::Contains | TextOp::NotContains
    );
    let mut p = Vec::new();
    if prefix {
        p.push('%');
    }
    p.extend(text.chars());
    if postfix {
        p.push('%');
    }
    (p, negate)
}

// ------------------------------------------------------------------ per-person state

/// What one person contributes.
#[derive(Debug, Default, Clone)]
pub(crate) struct PersonOut {
    /// Final cohort rows (after collapse and censor window), ascending by start.
    pub rows: Vec<(Day, Day)>,
    /// Inclusion masks of qualified events (mode 0).
    pub event_masks: Vec<u64>,
    /// Inclusion mask of the best event (mode 1), if the person had a qualified event.
    pub best_mask: Option<u64>,
    /// The person had rows in #final_cohort (before the censor window).
    pub in_final: bool,
}

/// A primary event candidate.
#[derive(Debug, Clone, Copy)]
struct Cand {
    sort: Day,
    id: i64,
    crit: usize,
    pos: usize,
    ev: Idx,
}

/// Buffers of the per-person pipeline, reused from one person to the next.
#[derive(Debug, Default)]
struct Scratch {
    cands: Vec<Cand>,
    qualified: Vec<Idx>,
    included: Vec<Idx>,
    ends: Vec<tail::End>,
    rows: Vec<(i64, i64)>,
    merged: Vec<(i64, i64)>,
}

pub(crate) struct Person<'c, 's> {
    ctx: &'c Ctx<'s>,
    p: u32,
    cache: Vec<Vec<Ev>>,
    done: Vec<bool>,
    /// Per node: where the last person's rows began in its posting list (a search hint).
    cursor: Vec<usize>,
    ops: Vec<(Day, Day)>,
    /// Observation periods read ahead by [`Person::preload`]: persons, their periods, offsets.
    pre_persons: Vec<u32>,
    pre_ops: Vec<(Day, Day)>,
    pre_off: Vec<u32>,
    pre_i: usize,
    /// Pools of group result / count vectors, and the distinct-count key buffer.
    bool_pool: Vec<Vec<bool>>,
    count_pool: Vec<Vec<i64>>,
    keys: Vec<i64>,
    scratch: Scratch,
}

impl<'c, 's> Person<'c, 's> {
    /// A reusable evaluator; [`Person::run`] evaluates one person at a time.
    pub fn new(ctx: &'c Ctx<'s>) -> Self {
        Person {
            ctx,
            p: 0,
            cache: vec![Vec::new(); ctx.plan.nodes.len()],
            done: vec![false; ctx.plan.nodes.len()],
            cursor: vec![0; ctx.plan.nodes.len()],
            pre_persons: Vec::new(),
            pre_ops: Vec::new(),
            pre_off: Vec::new(),
            pre_i: 0,
            bool_pool: Vec::new(),
            count_pool: Vec::new(),
            keys: Vec::new(),
            scratch: Scratch::default(),
            ops: Vec::new(),
        }
    }

    /// Starts evaluating groups of person `p`, whose observation periods are `ops` (already read)
    /// ([`Person::group`]): the person's criteria events are then computed at most once whatever
    /// the number of groups.
    pub(crate) fn begin(&mut self, p: u32, ops: &[(Day, Day)]) {
        self.p = p;
        self.done.iter_mut().for_each(|d| *d = false);
        self.ops.clear();
        self.ops.extend_from_slice(ops);
    }

    /// Evaluates a group for person `p` over the given index events.
    pub(crate) fn group_for(&mut self, p: u32, g: &GroupPlan, idx: &[Idx]) -> Vec<bool> {
        self.reset(p);
        self.group(g, idx)
    }

    /// Reads the observation periods of `persons` (ascending) in one pass, so that the loads of
    /// many persons are in flight at once; [`Person::run`] then takes them from here.
    pub fn preload(&mut self, persons: &[u32]) {
        self.pre_persons.clear();
        self.pre_ops.clear();
        self.pre_off.clear();
        self.pre_i = 0;
        let Some(i) = self.ctx.op else { return };
        let d = &self.ctx.domains[i];
        let (s, e) = (d.start(), d.end());
        let ranges: Vec<std::ops::Range<usize>> =
            persons.iter().map(|&p| d.person_rows(p)).collect();
        self.pre_off.push(0);
        for range in ranges {
            self.pre_ops
                .extend(range.filter_map(|r| Some((s.get(r)?, e.get(r)?))));
            self.pre_off.push(self.pre_ops.len() as u32);
        }
        self.pre_persons.extend_from_slice(persons);
    }

    fn reset(&mut self, p: u32) {
        self.p = p;
        self.done.iter_mut().for_each(|d| *d = false);
        self.ops.clear();
        while self.pre_persons.get(self.pre_i).is_some_and(|&q| q < p) {
            self.pre_i += 1;
        }
        if self.pre_persons.get(self.pre_i) == Some(&p) {
            let (a, b) = (self.pre_off[self.pre_i], self.pre_off[self.pre_i + 1]);
            self.ops
                .extend_from_slice(&self.pre_ops[a as usize..b as usize]);
            return;
        }
        if let Some(i) = self.ctx.op {
            let d = &self.ctx.domains[i];
            let (s, e) = (d.start(), d.end());
            self.ops.extend(
                d.person_rows(p)
                    .filter_map(|r| Some((s.get(r)?, e.get(r)?))),
            );
        }
    }

    // -------------------------------------------------------------- criteria

    /// Computes a node's events for the current person (once), into `self.cache[node]`.
    fn ensure(&mut self, node: usize) {
        if self.done[node] {
            return;
        }
        let mut out = std::mem::take(&mut self.cache[node]);
        out.clear();
        self.compute(node, &mut out);
        self.cache[node] = out;
        self.done[node] = true;
    }

    fn compute(&mut self, node_id: usize, out: &mut Vec<Ev>) {
        let ctx = self.ctx;
        let node = &ctx.plan.nodes[node_id];
        let nd = &ctx.nodes[node_id];
        let Some(di) = nd.dom else { return };
        if node.needs_person && !ctx.has_person_row(self.p) {
            return;
        }
        let d = &ctx.domains[di];
        let (starts, ends, ids) = (d.start(), d.end(), d.event_id());
        let p = self.p;
        if nd.matched.matches_nothing() {
            return;
        }
        // Where this person's matched rows begin (gathered: by person, without reading the
        // domain's person offsets).
        let (lo, range) = match &nd.matched {
            Matched::Gathered(g) => (seek(&g.person, self.cursor[node_id], p as usize), 0..0),
            Matched::Rows(rows) => {
                let range = d.person_rows(p);
                (seek(rows, self.cursor[node_id], range.start), range)
            }
            Matched::Scan | Matched::Bits(_) => (0, d.person_rows(p)),
        };
        self.cursor[node_id] = lo;
        let gathered = match &nd.matched {
            Matched::Gathered(g) => Some(g),
            _ => None,
        };
        let mut taken_first = false;
        // One row (already known to match the codeset; `gi`: its index in `gathered`): false stops
        // the scan (First taken).
        let mut visit = |r: usize, gi: usize| -> bool {
            if !ctx.row_joins_ok(node, nd, r) {
                return true;
            }
            if node.first {
                if taken_first {
                    return false;
                }
                taken_first = true;
            }
            let (s0, e0) = match gathered {
                Some(g) => (g.start[gi], g.end[gi]),
                None => (
                    starts.get(r).unwrap_or(NULL_DAY),
                    ends.get(r).unwrap_or(NULL_DAY),
                ),
            };
            if let Some((start, end)) = ctx.row_dates(p, node, nd, r, s0, e0) {
                let (id, visit) = match gathered {
                    Some(g) => (
                        g.id.get(gi).copied().unwrap_or(NULL_ID),
                        g.visit.get(gi).copied().unwrap_or(NULL_ID),
                    ),
                    None => (
                        ids.get(r).unwrap_or(NULL_ID),
                        nd.visit.and_then(|v| v.get(r)).unwrap_or(NULL_ID),
                    ),
                };
                out.push(Ev {
                    id,
                    start: node.user_start.unwrap_or(start),
                    end: node.user_end.unwrap_or(end),
                    sort: start,
                    visit,
                    row: r as u32,
                });
            }
            true
        };
        match &nd.matched {
            // Rows already tested: they are the events.
            Matched::Gathered(g) if g.filtered => {
                let mut i = lo;
                while g.person.get(i) == Some(&p) {
                    let (start, end) = (g.start[i], g.end[i]);
                    out.push(Ev {
                        id: g.id.get(i).copied().unwrap_or(NULL_ID),
                        start: node.user_start.unwrap_or(start),
                        end: node.user_end.unwrap_or(end),
                        sort: start,
                        visit: g.visit.get(i).copied().unwrap_or(NULL_ID),
                        row: g.rows[i],
                    });
                    i += 1;
                }
            }
            Matched::Scan => {
                for r in range {
                    if !visit(r, 0) {
                        break;
                    }
                }
            }
            Matched::Rows(rows) => {
                let mut i = lo;
                while let Some(&r) = rows.get(i) {
                    if r as usize >= range.end || !visit(r as usize, i) {
                        break;
                    }
                    i += 1;
                }
            }
            Matched::Gathered(g) => {
                let mut i = lo;
                while let (Some(&r), Some(&q)) = (g.rows.get(i), g.person.get(i)) {
                    if q != p || !visit(r as usize, i) {
                        break;
                    }
                    i += 1;
                }
            }
            Matched::Bits(bits) => for_each_bit(bits, range, |r| visit(r, 0)),
        }
        if let Some(g) = &node.correlated {
            // Join each event to the observation period containing its start, evaluate the group
            // with these as index events, keep the events that pass.
            let (mut idx, mut owner) = (Vec::new(), Vec::new());
            let events = out.iter().map(|e| (e.id, e.start, e.end, e.visit));
            join_periods(events, &self.ops, &mut idx, &mut owner);
            let pass = self.group(g, &idx);
            let mut keep = vec![false; out.len()];
            for (k, &i) in owner.iter().enumerate() {
                if pass[k] {
                    keep[i] = true;
                }
            }
            self.give(pass);
            let mut i = 0;
            out.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        }
    }

    // -------------------------------------------------------------- groups

    pub(crate) fn group(&mut self, g: &GroupPlan, idx: &[Idx]) -> Vec<bool> {
        if idx.is_empty() {
            // No index event: nothing to evaluate (and no criteria's events to compute).
            return Vec::new();
        }
        if g.members.is_empty() {
            return vec![true; idx.len()];
        }
        let mut counts = self.count_pool.pop().unwrap_or_default();
        counts.clear();
        counts.resize(idx.len(), 0);
        for m in &g.members {
            let sat = match m {
                Member::Corr(c) => self.corelated(c, idx),
                Member::Demo(d) => self.demographic(d, idx),
                Member::Group(sub) => self.group(sub, idx),
            };
            for (c, &s) in counts.iter_mut().zip(sat.iter()) {
                *c += s as i64;
            }
            self.give(sat);
        }
        let mut out = self.bools();
        out.extend(counts.iter().map(|&c| g.passes(c)));
        self.count_pool.push(counts);
        out
    }

    /// An empty result vector from the pool (return it with [`Person::give`]).
    fn bools(&mut self) -> Vec<bool> {
        let mut v = self.bool_pool.pop().unwrap_or_default();
        v.clear();
        v
    }

    pub(crate) fn give(&mut self, v: Vec<bool>) {
        self.bool_pool.push(v);
    }

    fn demographic(&mut self, d: &DemoPlan, idx: &[Idx]) -> Vec<bool> {
        let mut out = self.bools();
        let (ctx, p) = (self.ctx, self.p);
        out.extend(idx.iter().map(|e| ctx.demo_ok(p, d, e.start, e.end)));
        out
    }

    fn count_key(&self, node_id: usize, k: CountKind, e: &Ev) -> Option<i64> {
        let ctx = self.ctx;
        let nd = &ctx.nodes[node_id];
        let r = e.row as usize;
        match k {
            CountKind::Start => Some(e.start as i64),
            CountKind::End => Some(e.end as i64),
            CountKind::Visit => Some(e.visit).filter(|&v| v != NULL_ID),
            CountKind::Concept { coalesce_zero } => {
                let c = nd
                    .dom
                    .and_then(|d| ctx.domains[d].concept().get(r).copied())
                    .unwrap_or(i32::MIN);
                if c == i32::MIN {
                    coalesce_zero.then_some(0)
                } else {
                    Some(c as i64)
                }
            }
            CountKind::Col(_) => match nd.count_col? {
                ColumnRef::I32(v) => v.get(r).filter(|&x| x != i32::MIN).map(i64::from),
                ColumnRef::Id(v) => v.get(r).filter(|&x| x != i64::MIN),
                ColumnRef::Float(v) => v
                    .get(r)
                    .filter(|x| !x.is_nan())
                    .map(|x| if x == 0.0 { 0.0f64 } else { x }.to_bits() as i64),
                ColumnRef::Text(_) => None,
            },
            CountKind::Duration => Some(e.end as i64 - e.start as i64),
            CountKind::One => Some(1),
        }
    }

    fn corelated(&mut self, c: &CorrPlan, idx: &[Idx]) -> Vec<bool> {
        self.ensure(c.node);
        let mut out = self.bools();
        let mut keys = std::mem::take(&mut self.keys);
        let evs = &self.cache[c.node];
        out.extend(idx.iter().map(|p| {
            let mut n: i64 = 0;
            keys.clear();
            for a in evs.iter() {
                if !window_ok(c, p, a) {
                    continue;
                }
                match c.distinct {
                    None => n += 1,
                    Some(k) => {
                        if let Some(key) = self.count_key(c.node, k, a) {
                            keys.push(key);
                        }
                    }
                }
            }
            if c.distinct.is_some() {
                keys.sort_unstable();
                keys.dedup();
                n = keys.len() as i64;
            }
            c.satisfied(n)
        }));
        self.keys = keys;
        out
    }

    // -------------------------------------------------------------- pipeline

    /// Runs the whole cohort pipeline for this person.
    pub fn run(&mut self, p: u32, out: &mut PersonOut) {
        let mut sc = std::mem::take(&mut self.scratch);
        self.run_in(p, out, &mut sc);
        self.scratch = sc;
    }

    fn run_in(&mut self, p: u32, out: &mut PersonOut, sc: &mut Scratch) {
        self.reset(p);
        out.rows.clear();
        out.event_masks.clear();
        out.best_mask = None;
        out.in_final = false;
        let ctx = self.ctx;
        let plan = ctx.plan;

        // Primary events.
        let cands = &mut sc.cands;
        cands.clear();
        for (ci, &node) in plan.primary.iter().enumerate() {
            self.ensure(node);
            let evs = &self.cache[node];
            for (pos, e) in evs.iter().enumerate() {
                for &(os, oe) in &self.ops {
                    if in_window(plan, e.start, os, oe) {
                        cands.push(Cand {
                            sort: e.sort,
                            id: e.id,
                            crit: ci,
                            pos,
                            ev: Idx {
                                id: 0,
                                start: e.start,
                                end: e.end,
                                visit: e.visit,
                                op_start: os,
                                op_end: oe,
                            },
                        });
                    }
                }
            }
        }
        if cands.is_empty() {
            return;
        }
        limit_primary(cands, plan.primary_limit, |c| (c.sort, c.id, c.crit, c.pos));
        let qualified = &mut sc.qualified;
        qualified.clear();
        qualified.extend(cands.iter().enumerate().map(|(i, c)| Idx {
            id: i as i64 + 1,
            ..c.ev
        }));

        // Qualified events.
        if let Some(g) = &plan.additional {
            let pass = self.group(g, qualified);
            let mut k = 0;
            qualified.retain(|_| {
                k += 1;
                pass[k - 1]
            });
            self.give(pass);
        }
        if plan.additional_present && plan.qualified_limit != LimitType::All {
            tail::keep_first(qualified, plan.qualified_limit == LimitType::Last, |e| {
                e.start
            });
        }
        if qualified.is_empty() {
            return;
        }

        // Inclusion rules.
        let masks = &mut out.event_masks;
        masks.resize(qualified.len(), 0);
        for (i, (_, g)) in plan.rules.iter().enumerate() {
            let pass = self.group(g, qualified);
            for (m, &p) in masks.iter_mut().zip(pass.iter()) {
                if p {
                    *m |= 1u64 << i;
                }
            }
            self.give(pass);
        }
        let full: u64 = if plan.rules.is_empty() {
            0
        } else {
            (1u64 << plan.rules.len()) - 1
        };
        // Best event: most rules, then lowest min rule id, then earliest start (then event id).
        let best = if plan.rules.is_empty() {
            // No rules: every event's mask is 0.
            Some(0)
        } else {
            qualified
                .iter()
                .zip(masks.iter())
                .min_by(|(a, ma), (b, mb)| {
                    let min_rule = |m: u64| if m == 0 { 0 } else { m.trailing_zeros() };
                    mb.count_ones()
                        .cmp(&ma.count_ones())
                        .then(min_rule(**ma).cmp(&min_rule(**mb)))
                        .then(a.start.cmp(&b.start))
                        .then(a.id.cmp(&b.id))
                })
                .map(|(_, m)| *m)
        };
        out.best_mask = best;

        let included = &mut sc.included;
        included.clear();
        if plan.rules.is_empty() {
            // Every mask is 0 == full: all qualified events are included (not read after this).
            std::mem::swap(included, qualified);
        } else {
            included.extend(
                qualified
                    .iter()
                    .zip(masks.iter())
                    .filter(|(_, m)| **m == full)
                    .map(|(e, _)| *e),
            );
        }
        if plan.expression_limit != LimitType::All {
            tail::keep_first(included, plan.expression_limit == LimitType::Last, |e| {
                e.start
            });
        }
        if included.is_empty() {
            return;
        }

        // End dates: the end strategy's candidates, then the censoring events'.
        let eras = match plan.end {
            EndPlan::CustomEra {
                codeset,
                gap,
                offset,
                supply_override,
            } => ctx.drug_eras(self.p, codeset, gap, offset, supply_override),
            _ => Vec::new(),
        };
        let ends = &mut sc.ends;
        ends.clear();
        ends.extend(
            included
                .iter()
                .map(|e| tail::End::strategy(plan, e.start, e.end, e.op_end, &eras)),
        );
        for &node in &plan.censoring {
            self.ensure(node);
            let evs = &self.cache[node];
            for (end, e) in ends.iter_mut().zip(included.iter()) {
                let m = evs
                    .iter()
                    .filter(|c| c.start >= e.start && c.start <= e.op_end)
                    .map(|c| c.start)
                    .min();
                if let Some(m) = m {
                    end.offer(m);
                }
            }
        }
        let rows = &mut sc.rows;
        rows.clear();
        rows.extend(
            included
                .iter()
                .zip(ends.iter())
                .filter_map(|(e, end)| end.get().map(|end| (e.start as i64, end as i64))),
        );

        // Collapse into eras (pad), then the censor window.
        let out_rows = &mut out.rows;
        out.in_final = tail::collapse(plan, rows, &mut sc.merged, |s, e| out_rows.push((s, e)));
    }
}

/// A criteria's events (id, start, end, visit) as the index events of its correlated criteria
/// group: each joined to every observation period containing its start; `owner[i]` is the
/// position of the event `index[i]` came from.
pub(crate) fn join_periods(
    events: impl Iterator<Item = (i64, Day, Day, i64)>,
    ops: &[(Day, Day)],
    index: &mut Vec<Idx>,
    owner: &mut Vec<usize>,
) {
    index.clear();
    owner.clear();
    for (i, (id, start, end, visit)) in events.enumerate() {
        for &(op_start, op_end) in ops {
            if op_start <= start && op_end >= start {
                index.push(Idx {
                    id,
                    start,
                    end,
                    visit,
                    op_start,
                    op_end,
                });
                owner.push(i);
            }
        }
    }
}

/// Whether an event starting at `start` is a primary event in the observation period
/// (`op_start`, `op_end`): within it, with the observation window's prior and post days.
#[inline]
pub(crate) fn in_window(plan: &Plan, start: Day, op_start: Day, op_end: Day) -> bool {
    start >= op_start
        && start <= op_end
        && add(op_start, plan.prior_days as i64) <= start as i64
        && add(start, plan.post_days as i64) <= op_end as i64
}

/// Circe's primary criteria limit on a person's candidate events: First (Last) keeps the first
/// (last) by sort date, then event id, criteria and position (`key`); All orders them so. The
/// first among equals is kept, without sorting for a limit; events usually come in order already
/// (rows are sorted by person, start, event id), which is checked before sorting.
pub(crate) fn limit_primary<C>(
    cands: &mut Vec<C>,
    limit: LimitType,
    key: impl Fn(&C) -> (Day, i64, usize, usize),
) {
    let desc = limit == LimitType::Last;
    let order = |a: &C, b: &C| {
        let ((sa, ia, ca, pa), (sb, ib, cb, pb)) = (key(a), key(b));
        let s = if desc { sb.cmp(&sa) } else { sa.cmp(&sb) };
        s.then(ia.cmp(&ib)).then(ca.cmp(&cb)).then(pa.cmp(&pb))
    };
    if cands.is_empty() {
        return;
    }
    if limit != LimitType::All {
        let mut best = 0;
        for (i, c) in cands.iter().enumerate().skip(1) {
            if order(c, &cands[best]).is_lt() {
                best = i;
            }
        }
        cands.swap(0, best);
        cands.truncate(1);
    } else if !cands.is_sorted_by(|a, b| order(a, b).is_le()) {
        cands.sort_by(order);
    }
}

fn window_ok(c: &CorrPlan, p: &Idx, a: &Ev) -> bool {
    if c.check_op && !(a.start >= p.op_start && a.start <= p.op_end) {
        return false;
    }
    let check = |w: &WindowPlan| -> bool {
        let index = if w.index_end { p.end } else { p.start };
        let ev = if w.event_end { a.end } else { a.start } as i64;
        let lo_ok = match w.lo {
            Bound::Days(d) => ev >= add(index, d),
            Bound::OpStart => ev >= p.op_start as i64,
            Bound::OpEnd => ev >= p.op_end as i64,
            Bound::Unbounded => true,
        };
        let hi_ok = match w.hi {
            Bound::Days(d) => ev <= add(index, d),
            Bound::OpStart => ev <= p.op_start as i64,
            Bound::OpEnd => ev <= p.op_end as i64,
            Bound::Unbounded => true,
        };
        lo_ok && hi_ok
    };
    if !check(&c.start) {
        return false;
    }
    if let Some(w) = &c.end {
        if !check(w) {
            return false;
        }
    }
    if c.restrict_visit && !(a.visit != NULL_ID && a.visit == p.visit) {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_sql_semantics() {
        let (p, n) = like_pattern(TextOp::Contains, "ab");
        assert!(like("xxabyy", &p) && !n);
        let (p, _) = like_pattern(TextOp::StartsWith, "ab");
        assert!(like("abc", &p) && !like("cab", &p));
        let (p, _) = like_pattern(TextOp::EndsWith, "a_c");
        assert!(like("zzabc", &p) && !like("abcz", &p));
        let (p, n) = like_pattern(TextOp::NotContains, "q");
        assert!(!like("abc", &p) && n);
    }

    #[test]
    fn merged_postings_are_ascending_and_complete() {
        let a: &[u32] = &[1, 4, 9];
        let b: &[u32] = &[2, 3, 10, 11];
        let c: &[u32] = &[0, 5];
        assert_eq!(
            merge_sorted(vec![a, b, c]),
            vec![0, 1, 2, 3, 4, 5, 9, 10, 11]
        );
        assert_eq!(merge_sorted(vec![a]), vec![1, 4, 9]);
        assert_eq!(merge_sorted(vec![&[], b, &[]]), vec![2, 3, 10, 11]);
        assert!(merge_sorted(Vec::new()).is_empty());
    }

    #[test]
    fn not_in_empty_codeset_is_true_even_for_null() {
        let empty = CodeSet::default();
        assert!(in_codeset(i32::MIN, &empty, true));
        assert!(!in_codeset(i32::MIN, &CodeSet::new(vec![1]), true));
        assert!(in_codeset(2, &CodeSet::new(vec![1]), true));
        assert!(!in_codeset(i32::MIN, &CodeSet::new(vec![1]), false));
    }
}
