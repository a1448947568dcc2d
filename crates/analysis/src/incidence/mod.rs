//! Incidence proportions and rates: OHDSI CohortIncidence 4.1.1 (`incidenceAnalysis.sql`),
//! computed over the store, plus exact 95% intervals.
//!
//! Per analysis of a [`Design`] (targets × outcomes × times at risk) and subgroup:
//! 1. each target entry's time at risk (TAR) from its start/end anchors and offsets, kept when
//!    the cohort start lies in an observation period, the TAR start lies in that same period and
//!    does not follow the TAR end; cut at the period's end; overlapping TARs of a person merged;
//!    kept when it starts within the study window (its end cut at the window's end);
//! 2. excluded time per person and outcome: each outcome's [start + 1, end + clean window] and the
//!    exclusion cohort's periods, merged; its overlap with each TAR is removed;
//! 3. outcomes counted when they start within a TAR (`_pe`), and outside excluded time;
//! 4. sums and distinct persons per stratum (every combination of age group, gender and start
//!    year that the strata settings switch on), persons at risk = persons minus those whose TAR is
//!    entirely excluded;
//! 5. proportion per 100 persons, rate per 100 person-years (days / 365.25), as its SQL does.

pub mod design;
pub mod intervals;

use std::collections::{BTreeMap, HashMap};

use rustc_hash::{FxHashMap, FxHashSet};

use qiao_cdm::{date, NULL_INT};
use qiao_cohort::CohortRow;
use qiao_store::Store;
use serde::Serialize;

pub use design::{AgeGroup, Design, DesignError};

/// Cohort rows by cohort definition id: the cohort table an analysis reads.
pub type Cohorts = HashMap<i64, Vec<CohortRow>>;

/// Why a design could not be run.
#[derive(Debug, thiserror::Error)]
pub enum IncidenceError {
    #[error(transparent)]
    Design(#[from] DesignError),
    #[error("cohort {0} is used by the design but was not given")]
    MissingCohort(i64),
}

/// One row of CohortIncidence's `incidence_summary`, plus exact 95% intervals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryRow {
    pub ref_id: i64,
    pub source_name: String,
    pub target_cohort_definition_id: i64,
    pub tar_id: i64,
    pub subgroup_id: i64,
    pub outcome_id: i64,
    pub age_group_id: Option<i64>,
    pub gender_id: Option<i64>,
    pub gender_name: Option<String>,
    pub start_year: Option<i32>,
    pub persons_at_risk_pe: u64,
    pub persons_at_risk: u64,
    pub person_days_pe: i64,
    pub person_days: i64,
    pub person_outcomes_pe: u64,
    pub person_outcomes: u64,
    pub outcomes_pe: u64,
    pub outcomes: u64,
    pub incidence_proportion_p100p: Option<f64>,
    pub incidence_rate_p100py: Option<f64>,
    pub ir_ci95_low: Option<f64>,
    pub ir_ci95_high: Option<f64>,
    pub ip_ci95_low: Option<f64>,
    pub ip_ci95_high: Option<f64>,
}

/// A merged time at risk of a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Tar {
    subject: i64,
    start: i32,
    end: i32,
    /// The subject's person index (a time at risk's; [`NO_PERSON`] for excluded periods). A
    /// function of `subject`, so it leaves the order and the merging as they are.
    person: u32,
}

/// The person index of an excluded period (not read).
const NO_PERSON: u32 = u32::MAX;

/// Merges intervals per subject (sorted by subject, start) as CohortIncidence's era-fying does:
/// an interval joins the previous group when the group's latest end is on or after its start.
fn erafy(mut v: Vec<Tar>) -> Vec<Tar> {
    v.sort_unstable();
    let mut out: Vec<Tar> = Vec::with_capacity(v.len());
    for t in v {
        match out.last_mut() {
            Some(last) if last.subject == t.subject && last.end >= t.start => {
                last.end = last.end.max(t.end)
            }
            _ => out.push(t),
        }
    }
    out
}

/// A stratum key: age group, gender, start year (None: not stratified by it).
type Stratum = (Option<i64>, Option<i64>, Option<i32>);

/// Distinct subjects counted from rows in subject order.
#[derive(Default, Clone, Copy)]
struct Distinct {
    count: u64,
    last: Option<i64>,
}

impl Distinct {
    fn add(&mut self, subject: i64) {
        if self.last != Some(subject) {
            self.last = Some(subject);
            self.count += 1;
        }
    }
}

/// What a TAR row carries for the strata: its person's age at TAR start, gender, start year.
#[derive(Clone, Copy)]
struct Demog {
    age: Option<i32>,
    gender: Option<i64>,
    year: i32,
}

/// A TAR row's demographics: age, gender concept, start year.
type Demographics = (Option<i32>, Option<i64>, i32);

/// The strata keys of each distinct (age, gender, start year), computed once and numbered: a
/// stratum's aggregate lives at its number in a plain vector, and a TAR row finds its keys'
/// numbers with one lookup of its demographics.
#[derive(Default)]
struct StrataIndex {
    /// (age, gender, year) → its keys' numbers, `numbers[start..end]`.
    by_demog: FxHashMap<Demographics, (u32, u32)>,
    numbers: Vec<u32>,
    /// Stratum → its number, and the strata by number.
    number_of: FxHashMap<Stratum, u32>,
    keys: Vec<Stratum>,
}

impl StrataIndex {
    /// The numbers of the strata keys of `d` (as `strata_of` lists them, repeats included).
    fn of(&mut self, d: &Demog, strata_of: &dyn Fn(&Demog, &mut Vec<Stratum>)) -> (u32, u32) {
        let demog = (d.age, d.gender, d.year);
        if let Some(&r) = self.by_demog.get(&demog) {
            return r;
        }
        let mut keys = Vec::new();
        strata_of(d, &mut keys);
        let start = self.numbers.len() as u32;
        for k in keys {
            let next = self.keys.len() as u32;
            let n = *self.number_of.entry(k).or_insert(next);
            if n == next {
                self.keys.push(k);
            }
            self.numbers.push(n);
        }
        let r = (start, self.numbers.len() as u32);
        self.by_demog.insert(demog, r);
        r
    }

    fn numbers(&self, (start, end): (u32, u32)) -> &[u32] {
        &self.numbers[start as usize..end as usize]
    }
}

/// Runs every analysis of `design` over `cohorts` (targets, outcomes, exclusion and subgroup
/// cohorts by definition id) and `store` (observation periods, persons, gender names); rows in
/// CohortIncidence's order (target, TAR, subgroup, outcome, age group, gender, start year; NULL
/// first).
pub fn run(
    store: &Store,
    design: &Design,
    cohorts: &Cohorts,
    source_name: &str,
) -> Result<Vec<SummaryRow>, IncidenceError> {
    run_clipped(store, design, cohorts, source_name, Clip::default())
}

/// Bounds on one target entry's contribution, for a release with declared sensitivities
/// (CohortIncidence has none: [`run`] is [`run_clipped`] with [`Clip::default`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clip {
    /// Each entry's time at risk ends at most this many days after (and including) its start.
    pub max_tar_days: Option<i32>,
    /// Outcomes counted at most this many times per (merged) time at risk.
    pub max_outcomes_per_tar: Option<u64>,
}

/// [`run`] with each entry's time at risk and outcomes clipped as `clip` says.
pub fn run_clipped(
    store: &Store,
    design: &Design,
    cohorts: &Cohorts,
    source_name: &str,
    clip: Clip,
) -> Result<Vec<SummaryRow>, IncidenceError> {
    design.check(source_name)?;
    let get = |id: i64| cohorts.get(&id).ok_or(IncidenceError::MissingCohort(id));
    let persons = store.persons();
    let op = store.domain("observation_period");
    let yob = persons.i32_column("year_of_birth");
    let gender_col = persons.i32_column("gender_concept_id");
    let vocab = store.vocabulary();
    let (window_start, window_end) = design.window_days();
    let age_groups = design.age_groups();
    let strata = design.strata_settings.clone().unwrap_or_default();
    // Which strata combinations #tar_agg has: every subset of the enabled dimensions.
    let mut combos: Vec<(bool, bool, bool)> = vec![(false, false, false)];
    for a in [false, true] {
        for g in [false, true] {
            for y in [false, true] {
                if (a, g, y) != (false, false, false)
                    && (!a || strata.by_age)
                    && (!g || strata.by_gender)
                    && (!y || strata.by_year)
                {
                    combos.push((a, g, y));
                }
            }
        }
    }
    // Subjects arrive in order (cohort rows and TARs are sorted by subject): remember the last
    // one's person index instead of searching the person ids again.
    let last_index: std::cell::Cell<Option<(i64, Option<u32>)>> = std::cell::Cell::new(None);
    let index_of = |subject: i64| -> Option<u32> {
        match last_index.get() {
            Some((s, i)) if s == subject => i,
            _ => {
                let i = persons.index_of(subject);
                last_index.set(Some((subject, i)));
                i
            }
        }
    };
    let demog = |idx: u32, start: i32| -> Option<Demog> {
        if !persons.has_row(idx) {
            return None;
        }
        let y = yob.get(idx as usize).copied().unwrap_or(NULL_INT);
        let g = gender_col.get(idx as usize).copied().unwrap_or(NULL_INT);
        let year = date::year(start);
        Some(Demog {
            age: (y != NULL_INT).then(|| year - y),
            gender: (g != NULL_INT).then_some(i64::from(g)),
            year,
        })
    };
    let strata_of = |d: &Demog, out: &mut Vec<Stratum>| {
        out.clear();
        for &(a, g, y) in &combos {
            let gender = if g { d.gender } else { None };
            let year = y.then_some(d.year);
            if a {
                // LEFT JOIN age_group_def: every group the age falls in, or NULL.
                let before = out.len();
                for ag in &age_groups {
                    if d.age.is_some_and(|age| {
                        age >= ag.min.unwrap_or(-999) && age < ag.max.unwrap_or(999)
                    }) {
                        out.push((Some(ag.id), gender, year));
                    }
                }
                if out.len() == before {
                    out.push((None, gender, year));
                }
            } else {
                out.push((None, gender, year));
            }
        }
    };
    let mut subgroups: Vec<(i64, Option<i64>)> = vec![(0, None)];
    subgroups.extend(
        design
            .subgroups
            .iter()
            .map(|s| (s.cohort_subgroup.id, Some(s.cohort_subgroup.cohort.id))),
    );

    let mut strata_index = StrataIndex::default();
    let mut rows: Vec<SummaryRow> = Vec::new();
    for analysis in &design.analysis_list {
        // 1) TARs per (target, tar), merged, in the study window.
        let mut ttar_all: BTreeMap<(i64, i64), Vec<Tar>> = BTreeMap::new();
        for &t in &analysis.targets {
            let target = get(t)?;
            // Each row's person, looked up once for every time at risk.
            let person_of: Vec<Option<u32>> =
                target.iter().map(|r| index_of(r.subject_id)).collect();
            for &tar_id in &analysis.tars {
                let tar = design
                    .time_at_risk_defs
                    .iter()
                    .find(|d| d.id == tar_id)
                    .expect("checked");
                let mut v = Vec::new();
                for (r, &idx) in target.iter().zip(&person_of) {
                    let anchor = |a: &design::Anchor| {
                        let base = match a.date_field {
                            design::DateField::Start => r.start,
                            design::DateField::End => r.end,
                        };
                        base.saturating_add(a.offset)
                    };
                    let (s, mut e) = (anchor(&tar.start), anchor(&tar.end));
                    if let Some(max) = clip.max_tar_days {
                        e = e.min(s.saturating_add(max.max(1) - 1));
                    }
                    if s > e {
                        continue;
                    }
                    let Some(idx) = idx else {
                        continue;
                    };
                    let Some(d) = &op else { continue };
                    for p in d.person_rows(idx) {
                        let (ps, pe) = (d.start().at(p), d.end().at(p));
                        if r.start >= ps && r.start <= pe && s >= ps && s <= pe {
                            v.push(Tar {
                                subject: r.subject_id,
                                start: s,
                                end: e.min(pe),
                                person: idx,
                            });
                        }
                    }
                }
                let v: Vec<Tar> = erafy(v)
                    .into_iter()
                    .filter(|t| {
                        window_start.is_none_or(|w| t.start >= w)
                            && window_end.is_none_or(|w| t.start <= w)
                    })
                    .map(|t| Tar {
                        end: window_end.map_or(t.end, |w| t.end.min(w)),
                        ..t
                    })
                    .collect();
                ttar_all.insert((t, tar_id), v);
            }
        }
        // Subgroup membership of (subject, TAR start).
        let mut members: FxHashMap<i64, FxHashSet<(i64, i32)>> = FxHashMap::default();
        for &(sg, cohort) in &subgroups {
            let Some(cohort) = cohort else { continue };
            let mut by_subject: FxHashMap<i64, Vec<(i32, i32)>> = FxHashMap::default();
            for r in get(cohort)? {
                by_subject
                    .entry(r.subject_id)
                    .or_default()
                    .push((r.start, r.end));
            }
            let set = members.entry(sg).or_default();
            for tars in ttar_all.values() {
                for t in tars {
                    if by_subject
                        .get(&t.subject)
                        .is_some_and(|p| p.iter().any(|&(s, e)| s <= t.start && t.start <= e))
                    {
                        set.insert((t.subject, t.start));
                    }
                }
            }
        }
        // 2) Excluded periods per outcome and subject, merged.
        let mut excluded: FxHashMap<i64, FxHashMap<i64, Vec<Tar>>> = FxHashMap::default();
        for &o in &analysis.outcomes {
            let def = design
                .outcome_defs
                .iter()
                .find(|d| d.id == o)
                .expect("checked");
            let mut v = Vec::new();
            for r in get(def.cohort_id)? {
                let (s, e) = (
                    r.start.saturating_add(1),
                    r.end.saturating_add(def.clean_window),
                );
                if e >= s {
                    v.push(Tar {
                        subject: r.subject_id,
                        start: s,
                        end: e,
                        person: NO_PERSON,
                    });
                }
            }
            if let Some(x) = def.exclude_cohort_id {
                for r in get(x)? {
                    v.push(Tar {
                        subject: r.subject_id,
                        start: r.start,
                        end: r.end,
                        person: NO_PERSON,
                    });
                }
            }
            let mut by_subject: FxHashMap<i64, Vec<Tar>> = FxHashMap::default();
            for t in erafy(v) {
                by_subject.entry(t.subject).or_default().push(t);
            }
            excluded.insert(o, by_subject);
        }
        let mut outcome_starts: FxHashMap<i64, FxHashMap<i64, Vec<i32>>> = FxHashMap::default();
        for &o in &analysis.outcomes {
            let def = design
                .outcome_defs
                .iter()
                .find(|d| d.id == o)
                .expect("checked");
            let mut m: FxHashMap<i64, Vec<i32>> = FxHashMap::default();
            for r in get(def.cohort_id)? {
                m.entry(r.subject_id).or_default().push(r.start);
            }
            outcome_starts.insert(o, m);
        }

        for &t in &analysis.targets {
            for &tar_id in &analysis.tars {
                let all = &ttar_all[&(t, tar_id)];
                for &(sg, _) in &subgroups {
                    let tars: Vec<Tar> = if sg == 0 {
                        all.clone()
                    } else {
                        let set = &members[&sg];
                        all.iter()
                            .copied()
                            .filter(|x| set.contains(&(x.subject, x.start)))
                            .collect()
                    };
                    // Each TAR row's strata numbers (None: its subject has no person row).
                    let row_strata: Vec<Option<(u32, u32)>> = tars
                        .iter()
                        .map(|x| Some(strata_index.of(&demog(x.person, x.start)?, &strata_of)))
                        .collect();
                    // #tar_agg by stratum number. Rows are in subject order, so a subject is
                    // counted once per stratum by remembering the last subject counted there.
                    let mut tar_agg: Vec<(i64, Distinct)> = Vec::new();
                    for (x, r) in tars.iter().zip(&row_strata) {
                        let Some(r) = r else { continue };
                        for &k in strata_index.numbers(*r) {
                            let k = k as usize;
                            if k >= tar_agg.len() {
                                tar_agg.resize(strata_index.keys.len(), Default::default());
                            }
                            let e = &mut tar_agg[k];
                            e.0 += i64::from(x.end - x.start) + 1;
                            e.1.add(x.subject);
                        }
                    }
                    for &o in &analysis.outcomes {
                        let exc = &excluded[&o];
                        let starts = &outcome_starts[&o];
                        // Per TAR row: excluded days, outcomes before and after exclusion.
                        let mut per_row: Vec<(i64, u64, u64)> = Vec::with_capacity(tars.len());
                        let mut op_subjects: FxHashSet<i64> = FxHashSet::default();
                        for x in &tars {
                            let ex: Vec<(i32, i32)> = exc
                                .get(&x.subject)
                                .map(|v| {
                                    v.iter()
                                        .filter(|e| e.start <= x.end && e.end >= x.start)
                                        .map(|e| (e.start.max(x.start), e.end.min(x.end)))
                                        .collect()
                                })
                                .unwrap_or_default();
                            let days: i64 = ex.iter().map(|&(s, e)| i64::from(e - s) + 1).sum();
                            let mut pe = 0u64;
                            let mut after = 0u64;
                            if let Some(os) = starts.get(&x.subject) {
                                for &s in os {
                                    if x.start <= s && s <= x.end {
                                        pe += 1;
                                        if !ex.iter().any(|&(a, b)| a <= s && s <= b) {
                                            after += 1;
                                        }
                                    }
                                }
                            }
                            if let Some(max) = clip.max_outcomes_per_tar {
                                pe = pe.min(max);
                                after = after.min(max);
                            }
                            if !ex.is_empty() || pe > 0 {
                                op_subjects.insert(x.subject);
                            }
                            per_row.push((days, pe, after));
                        }
                        // #outcome_agg over the TAR rows of subjects with excluded time or outcomes.
                        #[derive(Default, Clone)]
                        struct Agg {
                            excluded_days: i64,
                            subjects: Distinct,
                            at_risk: Distinct,
                            with_pe: Distinct,
                            with_outcome: Distinct,
                            outcomes_pe: u64,
                            outcomes: u64,
                        }
                        let mut agg: Vec<Agg> = vec![Agg::default(); tar_agg.len()];
                        for ((x, &(days, pe, after)), r) in
                            tars.iter().zip(&per_row).zip(&row_strata)
                        {
                            if !op_subjects.contains(&x.subject) {
                                continue;
                            }
                            let Some(r) = r else { continue };
                            let tar_days = i64::from(x.end - x.start) + 1;
                            for &k in strata_index.numbers(*r) {
                                let a = &mut agg[k as usize];
                                a.excluded_days += days;
                                a.subjects.add(x.subject);
                                if tar_days > days {
                                    a.at_risk.add(x.subject);
                                }
                                if pe > 0 {
                                    a.with_pe.add(x.subject);
                                }
                                if after > 0 {
                                    a.with_outcome.add(x.subject);
                                }
                                a.outcomes_pe += pe;
                                a.outcomes += after;
                            }
                        }
                        let mut emit = |k: Option<usize>, pd_pe: i64, persons_pe: u64| {
                            let a = k.map(|k| &agg[k]);
                            let excluded_persons =
                                a.map_or(0, |a| a.subjects.count - a.at_risk.count);
                            let excluded_days = a.map_or(0, |a| a.excluded_days);
                            let persons_at_risk = persons_pe - excluded_persons;
                            let person_days = pd_pe - excluded_days;
                            let person_outcomes = a.map_or(0, |a| a.with_outcome.count);
                            let outcomes = a.map_or(0, |a| a.outcomes);
                            let ip = (persons_at_risk > 0)
                                .then(|| 100.0 * person_outcomes as f64 / persons_at_risk as f64);
                            let ir = (person_days > 0)
                                .then(|| 100.0 * outcomes as f64 / (person_days as f64 / 365.25));
                            let (age_group_id, gender_id, start_year) =
                                k.map_or((None, None, None), |k| strata_index.keys[k]);
                            rows.push(SummaryRow {
                                ref_id: 1,
                                source_name: source_name.to_string(),
                                target_cohort_definition_id: t,
                                tar_id,
                                subgroup_id: sg,
                                outcome_id: o,
                                age_group_id,
                                gender_id,
                                gender_name: gender_id
                                    .and_then(|g| i32::try_from(g).ok())
                                    .and_then(|g| vocab.concept(g))
                                    .and_then(|c| c.concept_name.map(str::to_string)),
                                start_year,
                                persons_at_risk_pe: persons_pe,
                                persons_at_risk,
                                person_days_pe: pd_pe,
                                person_days,
                                person_outcomes_pe: a.map_or(0, |a| a.with_pe.count),
                                person_outcomes,
                                outcomes_pe: a.map_or(0, |a| a.outcomes_pe),
                                outcomes,
                                incidence_proportion_p100p: ip,
                                incidence_rate_p100py: ir,
                                // Set below, for every row at once.
                                ir_ci95_low: None,
                                ir_ci95_high: None,
                                ip_ci95_low: None,
                                ip_ci95_high: None,
                            });
                        };
                        // The strata with TAR rows (a stratum's first row counts its subject).
                        let mut any = false;
                        for (k, (pd, persons)) in tar_agg.iter().enumerate() {
                            if persons.count > 0 {
                                any = true;
                                emit(Some(k), *pd, persons.count);
                            }
                        }
                        if !any {
                            emit(None, 0, 0);
                        }
                    }
                }
            }
        }
    }
    // The exact intervals of each row (each an iterative inversion: in parallel).
    {
        use rayon::prelude::*;
        rows.par_iter_mut().for_each(|r| {
            let ir = intervals::poisson_rate_ci(r.outcomes, r.person_days as f64 / 365.25, 100.0);
            let ip = intervals::binomial_proportion_ci(r.person_outcomes, r.persons_at_risk, 100.0);
            (r.ir_ci95_low, r.ir_ci95_high) = (ir.map(|c| c.0), ir.map(|c| c.1));
            (r.ip_ci95_low, r.ip_ci95_high) = (ip.map(|c| c.0), ip.map(|c| c.1));
        });
    }
    sort_rows(&mut rows);
    Ok(rows)
}

/// Sorts rows as CohortIncidence's verify query and the oracle do: target, TAR, subgroup,
/// outcome, age group, gender, start year, NULLs first.
pub fn sort_rows(rows: &mut [SummaryRow]) {
    rows.sort_by_key(|r| {
        (
            r.target_cohort_definition_id,
            r.tar_id,
            r.subgroup_id,
            r.outcome_id,
            r.age_group_id,
            r.gender_id,
            r.start_year,
        )
    });
}
