//! The binary covariates: demographics, domain concepts, FE's concept groups, values as concept and
//! measurement range groups, each as its FeatureExtraction SQL template counts them.

use rustc_hash::FxHashMap as HashMap;

use qiao_cdm::{date, NULL_CONCEPT, NULL_ID, NULL_INT};
use qiao_store::{Domain, Store, Vocabulary};

use super::{Binary, Entry, Kind, Prespec, Settings, Window};

/// What the analyses read of a store, opened once.
pub struct Context<'a> {
    pub store: &'a Store,
    pub vocab: Vocabulary<'a>,
    /// FE's concept groups of condition eras, drug eras and other drug tables, built once and
    /// shared by the analyses of every window ([`groups`]).
    groups: [std::sync::OnceLock<Groups>; 3],
}

impl<'a> Context<'a> {
    pub fn new(store: &'a Store) -> Context<'a> {
        Context {
            store,
            vocab: store.vocabulary(),
            groups: Default::default(),
        }
    }

    /// `DomainConceptGroup.sql`'s groups of `table`.
    fn groups(&self, table: &str) -> &Groups {
        let kind = GroupKind::of(table);
        self.groups[kind as usize].get_or_init(|| groups(self, kind))
    }

    /// The concept's name as FE's `CASE WHEN concept_name IS NULL THEN 'Unknown concept'`.
    pub fn concept_name(&self, id: i64) -> String {
        i32::try_from(id)
            .ok()
            .and_then(|id| self.vocab.concept(id))
            .and_then(|c| c.concept_name.map(str::to_string))
            .unwrap_or_else(|| "Unknown concept".to_string())
    }
}

/// The distinct (person, index date) entries, as FE's `SELECT DISTINCT … subject_id, cohort_start_date`.
/// Entries already sorted and distinct (a cohort's rows by subject and start) are taken as they
/// are.
pub fn distinct_entries(entries: &[Entry]) -> std::borrow::Cow<'_, [Entry]> {
    if entries.windows(2).all(|w| w[0] < w[1]) {
        return std::borrow::Cow::Borrowed(entries);
    }
    let mut v = entries.to_vec();
    v.sort_unstable();
    v.dedup();
    std::borrow::Cow::Owned(v)
}

/// The text FE puts in a windowed covariate name.
fn window_text(settings: &Settings, w: Window) -> String {
    match settings.start_day(w) {
        None => format!(
            "any time prior through {} days relative to index",
            settings.end_days
        ),
        Some(s) => format!(
            "during day {s} through {} days relative to index",
            settings.end_days
        ),
    }
}

/// The rows of `d` for `e`'s person whose start is on or before `e.start + end_days` and whose
/// start (or end, `use_end`) is on or after `e.start + start_day`.
fn window_rows<'d>(
    d: &'d Domain<'_>,
    e: Entry,
    start_day: Option<i32>,
    end_day: i32,
    use_end: bool,
) -> impl Iterator<Item = usize> + 'd {
    let rows = d.person_rows(e.person);
    let starts = d.start();
    let ends = d.end();
    let hi = e.start.saturating_add(end_day);
    let lo = start_day.map(|s| e.start.saturating_add(s));
    let upto = starts.partition_point(rows.clone(), |s| s <= hi);
    // Rows are by start: a window on the start date is a range; one on the end date (eras)
    // reads every row that starts by `hi`.
    let from = match lo {
        Some(lo) if !use_end => starts.partition_point(rows.start..upto, |s| s < lo),
        _ => rows.start,
    };
    (from..upto).filter(move |&r| match lo {
        Some(lo) if use_end => ends.at(r) >= lo,
        _ => true,
    })
}

/// Counts per key into sorted binary covariates.
fn finish(
    counts: HashMap<i64, u64>,
    a: &Prespec,
    population: usize,
    concept_of: impl Fn(i64) -> i64,
    name_of: impl Fn(i64) -> String,
) -> Vec<Binary> {
    let mut v: Vec<Binary> = counts
        .into_iter()
        .map(|(covariate_id, sum)| Binary {
            covariate_id,
            analysis_id: a.id,
            concept_id: concept_of(covariate_id),
            name: name_of(covariate_id),
            sum,
            mean: sum as f64 / population as f64,
        })
        .collect();
    v.sort_by_key(|b| b.covariate_id);
    v
}

/// The binary covariates of analysis `a` for the cohort `entries`: the per-entry facts of
/// [`entry_covariates`] counted (FE's sums) and named as FE names them.
pub fn binary(
    ctx: &Context<'_>,
    a: &Prespec,
    entries: &[Entry],
    settings: &Settings,
) -> Vec<Binary> {
    if entries.is_empty() {
        return Vec::new();
    }
    match a.kind {
        Kind::ValueAsConcept(table) => value_as_concept(ctx, a, table, entries, settings),
        Kind::Score(_) | Kind::Measure(_) => Vec::new(),
        Kind::CareSite => {
            // One care site per subject: persons counted, over the cohort's entries.
            let mut pairs: Vec<(u32, i64)> = Vec::new();
            entry_covariates(ctx, a, entries, settings, &mut |e, cov| {
                pairs.push((e.person, cov))
            });
            pairs.sort_unstable();
            pairs.dedup();
            let mut counts: HashMap<i64, u64> = HashMap::default();
            for (_, cov) in pairs {
                *counts.entry(cov).or_default() += 1;
            }
            finish(
                counts,
                a,
                entries.len(),
                |_| 0,
                |cov| covariate_name(ctx, a, settings, cov),
            )
        }
        _ => {
            let mut counts: HashMap<i64, u64> = HashMap::default();
            entry_covariates(ctx, a, entries, settings, &mut |_, cov| {
                *counts.entry(cov).or_default() += 1
            });
            finish(
                counts,
                a,
                entries.len(),
                |cov| concept_of(a, cov),
                |cov| covariate_name(ctx, a, settings, cov),
            )
        }
    }
}

/// [`binary`] of analyses that differ only in their window, on an era table (`Concept(table,
/// true)` or `Group(table, true)`: every row starting by the end day is read, whatever the
/// window). Each entry's rows are read once for all of them: a row counts for an analysis when
/// its end is on or after that analysis's window start. Results in `list`'s order.
pub fn binary_eras(
    ctx: &Context<'_>,
    list: &[&Prespec],
    entries: &[Entry],
    settings: &Settings,
) -> Vec<Vec<Binary>> {
    let Some(first) = list.first() else {
        return Vec::new();
    };
    let (table, grouped) = match first.kind {
        Kind::Concept(table, true) => (table, false),
        Kind::Group(table, true) => (table, true),
        _ => unreachable!("binary_eras is given era analyses"),
    };
    debug_assert!(list.iter().all(|a| a.kind == first.kind));
    let d = match ctx.store.domain(table) {
        Some(d) if !entries.is_empty() => d,
        _ => return vec![Vec::new(); list.len()],
    };
    let groups = grouped.then(|| ctx.groups(table));
    let start_days: Vec<Option<i32>> = list.iter().map(|a| settings.start_day(a.window)).collect();
    let ids: Vec<i64> = list.iter().map(|a| i64::from(a.id)).collect();
    let (concepts, starts, ends) = (d.concept(), d.start(), d.end());
    // Per analysis: the concepts (or groups) an entry has already counted, and the counts.
    let mut distinct: Vec<DistinctConcepts> =
        list.iter().map(|_| DistinctConcepts::new(groups)).collect();
    let mut counts: Vec<HashMap<i64, u64>> = list.iter().map(|_| HashMap::default()).collect();
    for (round, e) in (1u32..).zip(distinct_entries(entries).iter().copied()) {
        let rows = d.person_rows(e.person);
        let hi = e.start.saturating_add(settings.end_days);
        let upto = starts.partition_point(rows.clone(), |s| s <= hi);
        let los: Vec<Option<i32>> = start_days
            .iter()
            .map(|s| s.map(|s| e.start.saturating_add(s)))
            .collect();
        // `r` reads two columns; as an index loop this measured 69 ms against 82 ms zipped.
        #[allow(clippy::needless_range_loop)]
        for r in rows.start..upto {
            let c = concepts[r];
            if c == 0 || c == NULL_CONCEPT {
                continue;
            }
            let end = ends.at(r);
            for i in 0..list.len() {
                if los[i].is_some_and(|lo| end < lo) {
                    continue;
                }
                let (counts, id) = (&mut counts[i], ids[i]);
                distinct[i].add(c, round, |k| {
                    *counts.entry(i64::from(k) * 1000 + id).or_default() += 1
                });
            }
        }
    }
    list.iter()
        .zip(counts)
        .map(|(a, counts)| {
            finish(
                counts,
                a,
                entries.len(),
                |cov| concept_of(a, cov),
                |cov| covariate_name(ctx, a, settings, cov),
            )
        })
        .collect()
}

/// The concept of covariate `cov` of analysis `a` (0 for age groups, index years and months).
fn concept_of(a: &Prespec, cov: i64) -> i64 {
    match a.kind {
        Kind::AgeGroup
        | Kind::IndexYear
        | Kind::IndexMonth
        | Kind::IndexYearMonth
        | Kind::CareSite => 0,
        Kind::RangeGroup => cov.div_euclid(10000),
        _ => (cov - i64::from(a.id)) / 1000,
    }
}

/// FE's name of covariate `cov` of analysis `a` (the analyses of [`entry_covariates`]).
pub fn covariate_name(ctx: &Context<'_>, a: &Prespec, settings: &Settings, cov: i64) -> String {
    let k = (cov - i64::from(a.id)) / 1000;
    match a.kind {
        Kind::PersonConcept(_, label, _) => format!("{label} = {}", ctx.concept_name(k)),
        Kind::AgeGroup => format!("age group: {:>3} - {:>3}", 5 * k, 5 * k + 4),
        Kind::IndexYear => format!("index year: {k}"),
        Kind::IndexMonth => format!("index month: {k}"),
        Kind::IndexYearMonth => format!("index year and month: {k}"),
        Kind::CareSite => format!("care site ID = {k}"),
        Kind::Concept(table, _) => format!(
            "{table} {}: {}",
            window_text(settings, a.window),
            ctx.concept_name(k)
        ),
        Kind::Inpatient(table) => format!(
            "{table} {}: {} (inpatient)",
            window_text(settings, a.window),
            ctx.concept_name(k)
        ),
        Kind::Group(table, _) => format!(
            "{table} group ({}) {}: {}",
            a.name,
            window_text(settings, a.window),
            ctx.concept_name(k)
        ),
        Kind::RangeGroup => {
            let window = match settings.start_day(a.window) {
                None => format!(
                    "during any time prior through {} days relative to index",
                    settings.end_days
                ),
                Some(s) => format!(
                    "during day {s} through {} days relative to index",
                    settings.end_days
                ),
            };
            let range = match cov.div_euclid(1000) % 10 {
                1 => "below normal range",
                3 => "above normal range",
                _ => "within normal range",
            };
            format!(
                "measurement {range} {window}: {}",
                ctx.concept_name(cov.div_euclid(10000))
            )
        }
        Kind::ValueAsConcept(table) => format!("{table} value as concept: covariate {cov}"),
        Kind::Score(_) | Kind::Measure(_) => a.name.to_string(),
    }
}

/// Calls `hit(entry, covariate_id)` once for each covariate of analysis `a` the entry has at
/// its index, as FE's SQL template decides it: demographics per cohort entry; domain concepts,
/// concept groups and measurement range groups per distinct (person, index date). This is the
/// one place these covariates are defined: [`binary`] counts the hits, a regression's `fe:`
/// covariate reads them per person. Value-as-concept covariates (their ids depend on the
/// cohort's pairs) and scores (continuous) have no hits here.
pub fn entry_covariates(
    ctx: &Context<'_>,
    a: &Prespec,
    entries: &[Entry],
    settings: &Settings,
    hit: &mut dyn FnMut(Entry, i64),
) {
    let aid = i64::from(a.id);
    let by_concept = |concept: i64| concept * 1000 + aid;
    let persons = ctx.store.persons();
    match a.kind {
        Kind::PersonConcept(column, label, by_class) => {
            let col = persons.i32_column(column);
            // Whether a concept's class is the label, looked up once per distinct concept.
            let mut class_of: HashMap<i32, bool> = HashMap::default();
            for e in entries {
                if !persons.has_row(e.person) {
                    continue;
                }
                let c = col.get(e.person as usize).copied().unwrap_or(NULL_CONCEPT);
                let class_ok = !by_class
                    || *class_of.entry(c).or_insert_with(|| {
                        ctx.vocab
                            .concept(c)
                            .and_then(|k| k.concept_class_id)
                            .is_some_and(|k| k.to_lowercase() == label)
                    });
                if c != 0 && c != NULL_CONCEPT && class_ok {
                    hit(*e, by_concept(i64::from(c)));
                }
            }
        }
        Kind::AgeGroup | Kind::IndexYear | Kind::IndexMonth | Kind::IndexYearMonth => {
            let yob = persons.i32_column("year_of_birth");
            for e in entries {
                if !persons.has_row(e.person) {
                    continue;
                }
                let (year, month, _) = date::to_ymd(e.start);
                let key = match a.kind {
                    Kind::AgeGroup => {
                        let y = yob.get(e.person as usize).copied().unwrap_or(NULL_INT);
                        if y == NULL_INT {
                            continue;
                        }
                        i64::from(year - y).div_euclid(5)
                    }
                    Kind::IndexYear => i64::from(year),
                    Kind::IndexYearMonth => i64::from(year) * 100 + i64::from(month),
                    _ => i64::from(month),
                };
                hit(*e, by_concept(key));
            }
        }
        Kind::Concept(..) | Kind::Group(..) | Kind::Inpatient(_) => {
            let Some((table, use_end)) = domain_table(a.kind) else {
                return;
            };
            let Some(d) = ctx.store.domain(table) else {
                return;
            };
            let inpatient = match a.kind {
                Kind::Inpatient(_) => Some(InpatientVisits::new(ctx)),
                _ => None,
            };
            let groups = match a.kind {
                Kind::Group(..) => Some(ctx.groups(table)),
                _ => None,
            };
            let start_day = settings.start_day(a.window);
            let concepts = d.concept();
            let mut distinct = DistinctConcepts::new(groups);
            let mut fresh: Vec<i32> = Vec::new();
            for (round, e) in (1u32..).zip(distinct_entries(entries).iter().copied()) {
                fresh.clear();
                for r in window_rows(&d, e, start_day, settings.end_days, use_end) {
                    let c = concepts[r];
                    if c == 0 || c == NULL_CONCEPT {
                        continue;
                    }
                    if let Some(v) = &inpatient {
                        if !v.holds(e.person, d.start().at(r)) {
                            continue;
                        }
                    }
                    distinct.add(c, round, |k| fresh.push(k));
                }
                for &c in &fresh {
                    hit(e, by_concept(i64::from(c)));
                }
            }
        }
        Kind::RangeGroup => range_group(ctx, a, entries, settings, hit),
        Kind::CareSite => care_site(ctx, a, entries, hit),
        Kind::ValueAsConcept(_) | Kind::Score(_) | Kind::Measure(_) => {}
    }
}

/// `CareSite.sql`: for each subject, over the rows of (cohort entry × visit detail overlapping
/// the index date × visit overlapping it), each row's care site being the detail's, else the
/// visit's, else the person's (rows with none dropped; subjects without a `person` row too),
/// the row first by detail end date then visit end date (NULLs last, as DuckDB orders them;
/// SQL Server puts them first) gives the subject's care site. Ties between rows of different care
/// sites (same end dates) are an arbitrary pick in the SQL; here the smallest care site id. The
/// hit is reported for every entry of the subject.
fn care_site(ctx: &Context<'_>, a: &Prespec, entries: &[Entry], hit: &mut dyn FnMut(Entry, i64)) {
    let persons = ctx.store.persons();
    fn id_col(c: Option<qiao_store::ColumnRef<'_>>) -> Option<qiao_store::IdColumn<'_>> {
        c.and_then(|c| c.as_id())
    }
    let person_site = id_col(persons.column("care_site_id"));
    // (start, end, care site) of a person's visits (or visit details) holding `day`.
    struct Spans<'a> {
        domain: Option<Domain<'a>>,
        site: Option<qiao_store::IdColumn<'a>>,
    }
    impl Spans<'_> {
        fn holding(&self, person: u32, day: i32, out: &mut Vec<(i32, Option<i64>)>) {
            out.clear();
            if let Some(d) = &self.domain {
                let (starts, ends) = (d.start(), d.end());
                for r in d.person_rows(person) {
                    if starts.at(r) > day {
                        break;
                    }
                    if ends.at(r) >= day {
                        let site = self
                            .site
                            .as_ref()
                            .and_then(|c| c.get(r))
                            .filter(|&x| x != NULL_ID);
                        out.push((ends.at(r), site));
                    }
                }
            }
        }
    }
    let spans = |table: &str| {
        let domain = ctx.store.domain(table);
        let site = domain
            .as_ref()
            .and_then(|d| id_col(d.column("care_site_id")));
        Spans { domain, site }
    };
    let (visits, details) = (spans("visit_occurrence"), spans("visit_detail"));
    let aid = i64::from(a.id);
    let all = distinct_entries(entries);
    let (mut vo, mut vd) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < all.len() {
        let person = all[i].person;
        let j = i + all[i..].partition_point(|e| e.person == person);
        if persons.has_row(person) {
            let own = person_site
                .as_ref()
                .and_then(|c| c.get(person as usize))
                .filter(|&x| x != NULL_ID);
            // (detail end, visit end) with NULL as +∞, then the care site.
            let mut best: Option<((i64, i64), i64)> = None;
            for e in &all[i..j] {
                visits.holding(person, e.start, &mut vo);
                details.holding(person, e.start, &mut vd);
                let none = [(i32::MAX, None)];
                let vo_rows: &[(i32, Option<i64>)] = if vo.is_empty() { &none } else { &vo };
                let vd_rows: &[(i32, Option<i64>)] = if vd.is_empty() { &none } else { &vd };
                for &(vo_end, vo_site) in vo_rows {
                    for &(vd_end, vd_site) in vd_rows {
                        let Some(site) = vd_site.or(vo_site).or(own) else {
                            continue;
                        };
                        let key = ((i64::from(vd_end), i64::from(vo_end)), site);
                        if best.is_none_or(|b| key < b) {
                            best = Some(key);
                        }
                    }
                }
            }
            if let Some((_, site)) = best {
                for e in &all[i..j] {
                    hit(*e, site * 1000 + aid);
                }
            }
        }
        i = j;
    }
}

/// The table of a domain-concept analysis and whether its window reads the end date (eras).
fn domain_table(kind: Kind) -> Option<(&'static str, bool)> {
    match kind {
        Kind::Concept(table, use_end) | Kind::Group(table, use_end) => Some((table, use_end)),
        Kind::Inpatient(table) => Some((table, false)),
        _ => None,
    }
}

/// The visits `DomainConcept.sql`'s `inpatient` join keeps: those whose concept descends from
/// 9201, 38004311, 8920 or 262 in concept_ancestor.
struct InpatientVisits<'a> {
    visits: Option<Domain<'a>>,
    concepts: Vec<i32>,
}

impl<'a> InpatientVisits<'a> {
    fn new(ctx: &Context<'a>) -> InpatientVisits<'a> {
        let mut concepts: Vec<i32> = [9201, 38004311, 8920, 262]
            .iter()
            .flat_map(|&a| ctx.vocab.descendants(a).iter().copied())
            .collect();
        concepts.sort_unstable();
        concepts.dedup();
        InpatientVisits {
            visits: ctx.store.domain("visit_occurrence"),
            concepts,
        }
    }

    /// True if one of the person's inpatient visits holds `day` (start ≤ day ≤ end).
    fn holds(&self, person: u32, day: i32) -> bool {
        let Some(v) = &self.visits else { return false };
        let (starts, ends, concepts) = (v.start(), v.end(), v.concept());
        v.person_rows(person)
            .take_while(|&r| starts.at(r) <= day)
            .any(|r| ends.at(r) >= day && self.concepts.binary_search(&concepts[r]).is_ok())
    }
}

/// Which keys a round (one cohort entry) has seen: each key's slot is stamped with the round
/// that saw it last, so a key counts once per round without sorting or clearing.
struct FirstSeen<K> {
    slot: HashMap<K, u32>,
    stamp: Vec<u32>,
}

impl<K> Default for FirstSeen<K> {
    fn default() -> Self {
        FirstSeen {
            slot: HashMap::default(),
            stamp: Vec::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq> FirstSeen<K> {
    /// True the first time round `round` (≥ 1) sees `key`.
    fn first(&mut self, key: K, round: u32) -> bool {
        let next = self.stamp.len() as u32;
        let slot = *self.slot.entry(key).or_insert(next);
        if slot == next {
            self.stamp.push(0);
        }
        let stamp = &mut self.stamp[slot as usize];
        let first = *stamp != round;
        *stamp = round;
        first
    }
}

/// An entry's distinct concepts in a window, or (with groups) the distinct groups they roll up
/// to. Each entry is a round (≥ 1): the first row of a concept in a round adds the concept, or
/// those of its groups not added yet in that round; later rows add nothing.
struct DistinctConcepts<'g> {
    groups: Option<&'g Groups>,
    seen: FirstSeen<i32>,
    /// Per group: the last round that added it.
    stamps: Vec<u32>,
}

impl<'g> DistinctConcepts<'g> {
    fn new(groups: Option<&'g Groups>) -> Self {
        DistinctConcepts {
            groups,
            seen: FirstSeen::default(),
            stamps: vec![0; groups.map_or(0, |g| g.ids.len())],
        }
    }

    /// Passes to `added` what concept `c`'s row adds in `round`.
    #[inline]
    fn add(&mut self, c: i32, round: u32, mut added: impl FnMut(i32)) {
        if !self.seen.first(c, round) {
            return;
        }
        match self.groups {
            None => added(c),
            Some(g) => {
                for &k in g.of(c) {
                    let stamp = &mut self.stamps[k as usize];
                    if *stamp != round {
                        *stamp = round;
                        added(g.ids[k as usize]);
                    }
                }
            }
        }
    }
}

/// FE's concept groups of a table: the group concepts, and for each concept the groups (indexes
/// into `ids`) it rolls up to.
struct Groups {
    ids: Vec<i32>,
    of: HashMap<i32, Vec<u32>>,
}

impl Groups {
    /// The groups concept `c` rolls up to.
    fn of(&self, c: i32) -> &[u32] {
        self.of.get(&c).map_or(&[], Vec::as_slice)
    }
}

/// `DomainConceptGroup.sql`'s `#groups`: descendant concept → the group concepts it rolls up to.
/// Which of FE's group sets a table's concepts roll up to (the index of its cache in
/// [`Context`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum GroupKind {
    /// SNOMED clinical findings (condition tables).
    Condition = 0,
    /// ATC classes and standard ingredients (drug eras).
    DrugEra = 1,
    /// ATC classes and standard drugs (other drug tables).
    Drug = 2,
}

impl GroupKind {
    fn of(table: &str) -> GroupKind {
        match table {
            "drug_era" => GroupKind::DrugEra,
            t if t.starts_with("drug") => GroupKind::Drug,
            _ => GroupKind::Condition,
        }
    }
}

fn groups(ctx: &Context<'_>, kind: GroupKind) -> Groups {
    let vocab = &ctx.vocab;
    let mut valid: Vec<i32> = Vec::new();
    if kind != GroupKind::Condition {
        for &id in vocab.concept_ids() {
            let Some(c) = vocab.concept(id) else { continue };
            let atc = c.vocabulary_id == Some("ATC")
                && c.concept_code
                    .is_some_and(|code| matches!(code.chars().count(), 1 | 3 | 4 | 5));
            let standard = c.standard_concept == Some("S")
                && c.domain_id == Some("Drug")
                && (kind != GroupKind::DrugEra || c.concept_class_id == Some("Ingredient"));
            if (atc || standard) && id != 0 {
                valid.push(id);
            }
        }
    } else {
        // Descendants of SNOMED "Clinical finding" (441840) more than two levels down, or named
        // ones; minus FE's name patterns (LIKE, case-sensitive as on PostgreSQL and DuckDB).
        const NAMED: [i32; 20] = [
            433736, 433595, 441408, 72404, 192671, 137977, 434621, 437312, 439847, 4171917, 438555,
            4299449, 375258, 76784, 40483532, 4145627, 434157, 433778, 258449, 313878,
        ];
        let descendants = vocab.descendants(441840);
        let levels = vocab.descendant_min_levels(441840);
        for (i, &id) in descendants.iter().enumerate() {
            let deep = levels.map_or(id != 441840, |l| l[i] > 2);
            if !(deep || NAMED.contains(&id)) {
                continue;
            }
            let Some(c) = vocab.concept(id) else { continue };
            let name = c.concept_name.unwrap_or("");
            let excluded = name.ends_with("finding")
                || name.starts_with("Disorder of")
                || name.starts_with("Finding of")
                || name.starts_with("Disease of")
                || name.starts_with("Injury of")
                || name.ends_with("by site")
                || name.ends_with("by body site")
                || name.ends_with("by mechanism")
                || name.ends_with("of body region")
                || name.ends_with("of anatomical site")
                || name.contains("of specific body structure");
            if !excluded && c.domain_id == Some("Condition") {
                valid.push(id);
            }
        }
    }
    valid.sort_unstable();
    valid.dedup();
    let mut of: HashMap<i32, Vec<u32>> = HashMap::default();
    for (k, &g) in (0u32..).zip(&valid) {
        for &d in vocab.descendants(g) {
            of.entry(d).or_default().push(k);
        }
    }
    Groups { ids: valid, of }
}

/// FE's post-coordinated covariate id of (concept, value concept) (`MeasObsValueAsConcept.sql`;
/// integer division as on SQL Server and PostgreSQL).
pub fn value_covariate_id(concept: i32, value: i32, analysis_id: u32) -> i64 {
    let h = |x: i32, div: i128, mask: i128| {
        ((i128::from(x) * 2_654_435_769 / div) as i64) & mask as i64
    };
    h(concept, 4096, 1_048_575) * 4_194_304_000
        + h(value, 1024, 4_194_303) * 1000
        + i64::from(analysis_id)
}

/// `MeasObsValueAsConcept.sql`: persons with the (concept, value concept) pair in the window
/// (start date in [index + start, index + end]); ids that collide keep only the pair of minimal
/// concept and minimal value, as FE's `#no_collisions` join does.
fn value_as_concept(
    ctx: &Context<'_>,
    a: &Prespec,
    table: &str,
    entries: &[Entry],
    settings: &Settings,
) -> Vec<Binary> {
    let Some(d) = ctx.store.domain(table) else {
        return Vec::new();
    };
    let Some(values) = d.column("value_as_concept_id").and_then(|c| c.as_i32()) else {
        return Vec::new();
    };
    let start_day = settings.start_day(a.window);
    let concepts = d.concept();
    let mut pairs_by_person: Vec<(u32, i32, i32)> = Vec::new();
    for e in distinct_entries(entries).iter().copied() {
        for r in window_rows(&d, e, start_day, settings.end_days, false) {
            let c = concepts[r];
            let v = values.get(r).unwrap_or(NULL_CONCEPT);
            if c != 0 && c != NULL_CONCEPT && v != 0 && v != NULL_CONCEPT {
                pairs_by_person.push((e.person, c, v));
            }
        }
    }
    pairs_by_person.sort_unstable();
    pairs_by_person.dedup();
    let mut counts: HashMap<(i32, i32), u64> = HashMap::default();
    for &(_, c, v) in &pairs_by_person {
        *counts.entry((c, v)).or_default() += 1;
    }
    // #no_collisions: per covariate id, MIN(concept) and MIN(value) over its distinct pairs.
    let mut mins: HashMap<i64, (i32, i32)> = HashMap::default();
    for &(c, v) in counts.keys() {
        let id = value_covariate_id(c, v, a.id);
        let m = mins.entry(id).or_insert((c, v));
        *m = (m.0.min(c), m.1.min(v));
    }
    let window = window_text(settings, a.window);
    let mut out: Vec<Binary> = counts
        .into_iter()
        .filter_map(|((c, v), sum)| {
            let id = value_covariate_id(c, v, a.id);
            (mins[&id] == (c, v)).then(|| Binary {
                covariate_id: id,
                analysis_id: a.id,
                concept_id: i64::from(c),
                name: format!(
                    "{table} {window}: {} = {}",
                    ctx.concept_name(i64::from(c)),
                    ctx.concept_name(i64::from(v))
                ),
                sum,
                mean: sum as f64 / entries.len() as f64,
            })
        })
        .collect();
    out.sort_by_key(|b| b.covariate_id);
    out
}

/// `MeasurementRangeGroup.sql`: measurements with both range bounds, below (1), within (2) or above
/// (3) the range (a NULL value is "within", as the SQL's ELSE); id concept × 10000 + group × 1000 + id.
fn range_group(
    ctx: &Context<'_>,
    a: &Prespec,
    entries: &[Entry],
    settings: &Settings,
    hit: &mut dyn FnMut(Entry, i64),
) {
    let Some(d) = ctx.store.domain("measurement") else {
        return;
    };
    let col = |name: &str| d.column(name).and_then(|c| c.as_f64());
    let (Some(low), Some(high)) = (col("range_low"), col("range_high")) else {
        return;
    };
    let value = col("value_as_number");
    let start_day = settings.start_day(a.window);
    let concepts = d.concept();
    let aid = i64::from(a.id);
    let mut seen: Vec<i64> = Vec::new();
    let mut first: FirstSeen<i64> = FirstSeen::default();
    for (round, e) in (1u32..).zip(distinct_entries(entries).iter().copied()) {
        seen.clear();
        for r in window_rows(&d, e, start_day, settings.end_days, false) {
            let c = concepts[r];
            let (Some(lo), Some(hi)) = (low.get(r), high.get(r)) else {
                continue;
            };
            if lo.is_nan() || hi.is_nan() {
                continue;
            }
            if c == 0 || c == NULL_CONCEPT {
                continue;
            }
            let v = value
                .as_ref()
                .and_then(|v| v.get(r))
                .filter(|v| !v.is_nan());
            let group = match v {
                Some(v) if v < lo => 1,
                Some(v) if v > hi => 3,
                _ => 2,
            };
            let id = i64::from(c) * 10000 + group * 1000 + aid;
            if first.first(id, round) {
                seen.push(id);
            }
        }
        for &id in &seen {
            hit(e, id);
        }
    }
}
