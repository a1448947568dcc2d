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

use std::collections::HashMap;

use rustc_hash::FxHashMap;

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
    gender: Option<i32>,
    year: i32,
}

impl Demog {
    /// The three values in one integer: a present value is its 32 bits and a presence bit.
    fn key(&self) -> u128 {
        let some = |v: u32| (1u64 << 32) | u64::from(v);
        let age = self.age.map_or(0, |a| some(a as u32));
        let gender = self.gender.map_or(0, |g| some(g as u32));
        (u128::from(age) << 66) | (u128::from(gender) << 32) | u128::from(self.year as u32)
    }
}

/// A TAR row's strata numbers: the range `start..end` of [`StrataIndex`]'s `numbers`.
type Numbers = (u32, u32);

/// The strata keys of each distinct (age, gender, start year), computed once and numbered: a
/// stratum's aggregate lives at its number in a plain vector, and a TAR row finds its keys'
/// numbers with one lookup of its demographics.
#[derive(Default)]
struct StrataIndex {
    /// (age, gender, year) packed by [`Demog::key`] → its keys' numbers, `numbers[start..end]`.
    by_demog: FxHashMap<u128, Numbers>,
    numbers: Vec<u32>,
    /// Stratum → its number, and the strata by number.
    number_of: FxHashMap<Stratum, u32>,
    keys: Vec<Stratum>,
}

impl StrataIndex {
    /// The numbers of the strata keys of `d` (as `strata_of` lists them, repeats included).
    fn of(&mut self, d: &Demog, strata_of: &dyn Fn(&Demog, &mut Vec<Stratum>)) -> Numbers {
        let demog = d.key();
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

    fn numbers(&self, (start, end): Numbers) -> &[u32] {
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
    let demog = |idx: u32, start: i32| -> Option<Demog> {
        if !persons.has_row(idx) {
            return None;
        }
        let y = yob.get(idx as usize).copied().unwrap_or(NULL_INT);
        let g = gender_col.get(idx as usize).copied().unwrap_or(NULL_INT);
        let year = date::year(start);
        Some(Demog {
            age: (y != NULL_INT).then(|| year - y),
            gender: (g != NULL_INT).then_some(g),
            year,
        })
    };
    let strata_of = |d: &Demog, out: &mut Vec<Stratum>| {
        out.clear();
        for &(a, g, y) in &combos {
            let gender = if g { d.gender.map(i64::from) } else { None };
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
    // Subgroups: id and, but for subgroup 0 (everyone), its cohort's periods sorted by subject.
    let mut subgroups: Vec<(i64, Option<Periods>)> = vec![(0, None)];
    for s in &design.subgroups {
        let mut periods: Vec<(i64, i32, i32)> = get(s.cohort_subgroup.cohort.id)?
            .iter()
            .map(|r| (r.subject_id, r.start, r.end))
            .collect();
        periods.sort_unstable();
        subgroups.push((s.cohort_subgroup.id, Some(periods)));
    }
    let gender_name = |g: i64| {
        i32::try_from(g)
            .ok()
            .and_then(|g| vocab.concept(g))
            .and_then(|c| c.concept_name.map(str::to_string))
    };

    let mut rows: Vec<SummaryRow> = Vec::new();
    for analysis in &design.analysis_list {
        // Each target row's person, looked up once for every time at risk.
        let mut targets: FxHashMap<i64, (&[CohortRow], Vec<Option<u32>>)> = FxHashMap::default();
        for &t in &analysis.targets {
            let target = get(t)?;
            targets.insert(
                t,
                (
                    target,
                    persons.index_of_each(target.iter().map(|r| r.subject_id)),
                ),
            );
        }
        // Per outcome: its excluded periods, merged, and its starts, both sorted by subject.
        let mut outcomes: FxHashMap<i64, OutcomeRows> = FxHashMap::default();
        for &o in &analysis.outcomes {
            let def = design
                .outcome_defs
                .iter()
                .find(|d| d.id == o)
                .expect("checked");
            let rows = get(def.cohort_id)?;
            let mut v = Vec::new();
            for r in rows {
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
            let mut starts: Vec<(i64, i32)> =
                rows.iter().map(|r| (r.subject_id, r.start)).collect();
            starts.sort_unstable();
            outcomes.insert(
                o,
                OutcomeRows {
                    excluded: erafy(v),
                    starts,
                },
            );
        }
        // One job per (target, time at risk), in parallel.
        let jobs: Vec<(i64, i64)> = analysis
            .targets
            .iter()
            .flat_map(|&t| analysis.tars.iter().map(move |&tar| (t, tar)))
            .collect();
        let job_rows: Vec<Vec<SummaryRow>> = {
            use rayon::prelude::*;
            jobs.par_iter()
                .map(|&(t, tar_id)| {
                    let (target, person_of) = &targets[&t];
                    let tar = design
                        .time_at_risk_defs
                        .iter()
                        .find(|d| d.id == tar_id)
                        .expect("checked");
                    let all = times_at_risk(target, person_of, tar, op.as_ref(), clip, design);
                    let mut out = Vec::new();
                    let mut index = StrataIndex::default();
                    for (sg, periods) in &subgroups {
                        let filtered: Vec<Tar>;
                        let tars: &[Tar] = match periods {
                            None => &all,
                            Some(p) => {
                                filtered = all
                                    .iter()
                                    .copied()
                                    .filter(|x| in_periods(p, x.subject, x.start))
                                    .collect();
                                &filtered
                            }
                        };
                        // Each TAR row's strata numbers (None: its subject has no person row);
                        // a subject's rows in one year share them.
                        let mut last: Option<(u32, i32, Option<Numbers>)> = None;
                        let row_strata: Vec<Option<Numbers>> = tars
                            .iter()
                            .map(|x| {
                                let year = date::year(x.start);
                                if let Some((p, y, r)) = last {
                                    if p == x.person && y == year {
                                        return r;
                                    }
                                }
                                let r = demog(x.person, x.start).map(|d| index.of(&d, &strata_of));
                                last = Some((x.person, year, r));
                                r
                            })
                            .collect();
                        // #tar_agg by stratum number. Rows are in subject order, so a subject
                        // is counted once per stratum by remembering the last subject counted.
                        let mut tar_agg: Vec<(i64, Distinct)> =
                            vec![Default::default(); index.keys.len()];
                        for (x, r) in tars.iter().zip(&row_strata) {
                            let Some(r) = r else { continue };
                            for &k in index.numbers(*r) {
                                let e = &mut tar_agg[k as usize];
                                e.0 += i64::from(x.end - x.start) + 1;
                                e.1.add(x.subject);
                            }
                        }
                        for &o in &analysis.outcomes {
                            let agg = outcome_agg(tars, &row_strata, &index, &outcomes[&o], clip);
                            let id = RowId {
                                source_name,
                                target: t,
                                tar: tar_id,
                                subgroup: *sg,
                                outcome: o,
                            };
                            let row = |stratum: Stratum, tar_agg, agg| {
                                let gender_name = stratum.1.and_then(gender_name);
                                SummaryRow {
                                    gender_name,
                                    ..summary_row(&id, stratum, tar_agg, agg)
                                }
                            };
                            // The strata with TAR rows (a stratum's first row counts its subject).
                            let before = out.len();
                            for (k, &(pd, persons)) in tar_agg.iter().enumerate() {
                                if persons.count > 0 {
                                    out.push(row(index.keys[k], (pd, persons.count), &agg[k]));
                                }
                            }
                            if out.len() == before {
                                out.push(row((None, None, None), (0, 0), &Agg::default()));
                            }
                        }
                    }
                    out
                })
                .collect()
        };
        rows.extend(job_rows.into_iter().flatten());
    }
    let mut memo = intervals::Memo::default();
    for r in &mut rows {
        let ir = memo.rate(r.outcomes, r.person_days as f64 / 365.25, 100.0);
        let ip = memo.proportion(r.person_outcomes, r.persons_at_risk, 100.0);
        (r.ir_ci95_low, r.ir_ci95_high) = (ir.map(|c| c.0), ir.map(|c| c.1));
        (r.ip_ci95_low, r.ip_ci95_high) = (ip.map(|c| c.0), ip.map(|c| c.1));
    }
    sort_rows(&mut rows);
    Ok(rows)
}

/// An outcome's rows as the per-TAR counting reads them: its excluded periods (outcome start + 1
/// to end + clean window, and the exclusion cohort's periods), merged, and its start dates; both
/// sorted by subject.
struct OutcomeRows {
    excluded: Vec<Tar>,
    starts: Vec<(i64, i32)>,
}

/// A cohort's periods (subject, start, end), sorted by subject.
type Periods = Vec<(i64, i32, i32)>;

/// Whether `subject` has a period in `periods` (sorted by subject) containing `day`.
fn in_periods(periods: &[(i64, i32, i32)], subject: i64, day: i32) -> bool {
    let from = periods.partition_point(|p| p.0 < subject);
    periods[from..]
        .iter()
        .take_while(|p| p.0 == subject)
        .any(|&(_, s, e)| s <= day && day <= e)
}

/// One target's times at risk for `tar`: each entry's TAR from its anchors, kept when the entry
/// and the TAR start lie in one observation period, cut at that period's end (and at
/// `clip.max_tar_days`), merged per person, kept when it starts in the study window and cut at
/// its end. `person_of` is each target row's person index.
fn times_at_risk(
    target: &[CohortRow],
    person_of: &[Option<u32>],
    tar: &design::TimeAtRisk,
    op: Option<&qiao_store::Domain<'_>>,
    clip: Clip,
    design: &Design,
) -> Vec<Tar> {
    let (window_start, window_end) = design.window_days();
    let Some(d) = op else { return Vec::new() };
    let mut v = Vec::with_capacity(target.len());
    for (r, &idx) in target.iter().zip(person_of) {
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
    let mut v = erafy(v);
    v.retain(|t| {
        window_start.is_none_or(|w| t.start >= w) && window_end.is_none_or(|w| t.start <= w)
    });
    if let Some(w) = window_end {
        for t in &mut v {
            t.end = t.end.min(w);
        }
    }
    v
}

/// Which row of `incidence_summary`: all but the stratum.
struct RowId<'a> {
    source_name: &'a str,
    target: i64,
    tar: i64,
    subgroup: i64,
    outcome: i64,
}

/// A stratum's `incidence_summary` row, as CohortIncidence's final SELECT combines the stratum's
/// #tar_agg (person days and persons before exclusion) and #outcome_agg (`agg`; all zero when no
/// subject of the stratum has excluded time or outcomes). No gender name and no intervals yet.
fn summary_row(
    id: &RowId<'_>,
    stratum: Stratum,
    (pd_pe, persons_pe): (i64, u64),
    agg: &Agg,
) -> SummaryRow {
    let persons_at_risk = persons_pe - (agg.subjects.count - agg.at_risk.count);
    let person_days = pd_pe - agg.excluded_days;
    let person_outcomes = agg.with_outcome.count;
    let outcomes = agg.outcomes;
    let (age_group_id, gender_id, start_year) = stratum;
    SummaryRow {
        ref_id: 1,
        source_name: id.source_name.to_string(),
        target_cohort_definition_id: id.target,
        tar_id: id.tar,
        subgroup_id: id.subgroup,
        outcome_id: id.outcome,
        age_group_id,
        gender_id,
        gender_name: None,
        start_year,
        persons_at_risk_pe: persons_pe,
        persons_at_risk,
        person_days_pe: pd_pe,
        person_days,
        person_outcomes_pe: agg.with_pe.count,
        person_outcomes,
        outcomes_pe: agg.outcomes_pe,
        outcomes,
        incidence_proportion_p100p: (persons_at_risk > 0)
            .then(|| 100.0 * person_outcomes as f64 / persons_at_risk as f64),
        incidence_rate_p100py: (person_days > 0)
            .then(|| 100.0 * outcomes as f64 / (person_days as f64 / 365.25)),
        ir_ci95_low: None,
        ir_ci95_high: None,
        ip_ci95_low: None,
        ip_ci95_high: None,
    }
}

/// #outcome_agg of one outcome by stratum number.
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

/// #outcome_agg: over the TAR rows (sorted by subject) of subjects with excluded time or
/// outcomes in one of their TARs, each row's excluded days and outcomes before and after
/// exclusion, summed per stratum. The outcome's rows are walked beside the TARs, subject by
/// subject.
fn outcome_agg(
    tars: &[Tar],
    row_strata: &[Option<Numbers>],
    index: &StrataIndex,
    outcome: &OutcomeRows,
    clip: Clip,
) -> Vec<Agg> {
    let mut agg: Vec<Agg> = vec![Agg::default(); index.keys.len()];
    let (excluded, starts) = (&outcome.excluded[..], &outcome.starts[..]);
    let (mut ce, mut cs) = (0usize, 0usize);
    let mut per_row: Vec<(i64, u64, u64)> = Vec::new();
    let mut i = 0;
    while i < tars.len() {
        let subject = tars[i].subject;
        let j = i + tars[i..]
            .iter()
            .take_while(|x| x.subject == subject)
            .count();
        while ce < excluded.len() && excluded[ce].subject < subject {
            ce += 1;
        }
        let ee = ce
            + excluded[ce..]
                .iter()
                .take_while(|x| x.subject == subject)
                .count();
        while cs < starts.len() && starts[cs].0 < subject {
            cs += 1;
        }
        let se = cs + starts[cs..].iter().take_while(|x| x.0 == subject).count();
        let (exs, sts) = (&excluded[ce..ee], &starts[cs..se]);
        let group = i..j;
        i = j;
        if exs.is_empty() && sts.is_empty() {
            continue;
        }
        per_row.clear();
        let mut flagged = false;
        for x in &tars[group.clone()] {
            // Excluded periods are merged, so their overlaps with the TAR are disjoint.
            let days: i64 = exs
                .iter()
                .filter(|e| e.start <= x.end && e.end >= x.start)
                .map(|e| i64::from(e.end.min(x.end) - e.start.max(x.start)) + 1)
                .sum();
            let (mut pe, mut after) = (0u64, 0u64);
            for &(_, s) in sts {
                if x.start <= s && s <= x.end {
                    pe += 1;
                    if !exs.iter().any(|e| e.start <= s && s <= e.end) {
                        after += 1;
                    }
                }
            }
            if let Some(max) = clip.max_outcomes_per_tar {
                pe = pe.min(max);
                after = after.min(max);
            }
            flagged |= days > 0 || pe > 0;
            per_row.push((days, pe, after));
        }
        if !flagged {
            continue;
        }
        for ((x, &(days, pe, after)), r) in tars[group.clone()]
            .iter()
            .zip(&per_row)
            .zip(&row_strata[group])
        {
            let Some(r) = r else { continue };
            let tar_days = i64::from(x.end - x.start) + 1;
            for &k in index.numbers(*r) {
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
    }
    agg
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
