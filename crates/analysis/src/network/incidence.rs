//! Incidence across the network.
//!
//! The rows a site releases are a grid fixed before the data is seen: per time at risk, the
//! unstratified row and every combination of the strata the spec switches on, over age groups
//! 1..=breaks+1, genders male (8507) and female (8532), and the years the store's observation
//! periods span (a site-level fact, as for demographics). A stratum without persons is
//! released as 0 (noised under DP); persons of other genders or without a year of birth are in
//! the margins only.
//!
//! | statistic (per row) | one person changes it by at most |
//! | --- | --- |
//! | `persons_at_risk_pe`, `persons_at_risk`, `person_outcomes_pe`, `person_outcomes` | 1 |
//! | `person_days_pe`, `person_days` (each entry's time at risk cut to `max_tar_days` under DP) | `entries_bound × max_tar_days` |
//! | `outcomes_pe`, `outcomes` (at most `max_outcomes_per_tar` per time at risk under DP) | `entries_bound × max_outcomes_per_tar` |
//!
//! Under DP each person's target entries are clipped to the policy's `entries_bound` (first by
//! start), so a person has at most that many (merged) times at risk. Every statistic is charged
//! on its own (one person can be in several rows: sequential composition, never less than the
//! true loss). Legacy and exact modes neither clip nor cut.

use std::collections::{BTreeMap, HashMap};

use qiao_disclosure::{Discloser, Statistic};
use qiao_protocol::{
    DisclosureSummary, IncidenceResult, IncidenceRow, IncidenceSpec, Released, TarDate,
};
use serde::{Deserialize, Serialize};

use super::{clip_rows, is_dp, persons, release, Analysis, AnalysisError, Cdm, Site, Sum};
use crate::incidence::{design, intervals, run_clipped, Clip, Cohorts, Design};

/// CohortIncidence's incidence summary, released.
pub struct Incidence;

/// Genders with rows of their own.
const GENDERS: [u32; 2] = [8507, 8532];

/// A row's coordinates: time at risk, age group, gender, start year.
type Key = (u32, Option<u32>, Option<u32>, Option<u16>);

/// The CohortIncidence design of a spec: target cohort 1, outcome 1 (cohort 2), times at risk
/// 1, 2, … in the spec's order.
pub fn design_of(spec: &IncidenceSpec) -> Design {
    let anchor = |a: &qiao_protocol::TarAnchor| design::Anchor {
        date_field: match a.date_field {
            TarDate::Start => design::DateField::Start,
            TarDate::End => design::DateField::End,
        },
        offset: a.offset,
    };
    let tars: Vec<design::TimeAtRisk> = spec
        .tars
        .iter()
        .enumerate()
        .map(|(i, t)| design::TimeAtRisk {
            id: i as i64 + 1,
            start: anchor(&t.start),
            end: anchor(&t.end),
        })
        .collect();
    Design {
        target_defs: vec![design::TargetDef {
            id: 1,
            name: Some("target".into()),
        }],
        outcome_defs: vec![design::OutcomeDef {
            id: 1,
            name: Some("outcome".into()),
            cohort_id: 2,
            clean_window: i32::try_from(spec.clean_window).unwrap_or(i32::MAX),
            exclude_cohort_id: None,
        }],
        analysis_list: vec![design::AnalysisSpec {
            targets: vec![1],
            outcomes: vec![1],
            tars: tars.iter().map(|t| t.id).collect(),
        }],
        time_at_risk_defs: tars,
        strata_settings: Some(design::StrataSettings {
            by_age: spec.strata.by_age,
            by_gender: spec.strata.by_gender,
            by_year: spec.strata.by_year,
            age_breaks: spec.age_breaks.iter().map(|&b| i32::from(b)).collect(),
            ..Default::default()
        }),
        subgroups: Vec::new(),
        study_window: None,
    }
}

/// The years the CDM's observation periods span (site-level, not cohort-level).
fn observed_years(cdm: &dyn Cdm) -> Vec<u16> {
    let Some((lo, hi)) = cdm.observation_years() else {
        return Vec::new();
    };
    let lo = lo.max(i32::from(qiao_protocol::guard::MIN_INDEX_YEAR));
    let hi = hi.min(i32::from(qiao_protocol::guard::MAX_INDEX_YEAR));
    (lo..=hi).filter_map(|y| u16::try_from(y).ok()).collect()
}

/// The grid of rows a site releases.
fn grid(spec: &IncidenceSpec, cdm: &dyn Cdm) -> Vec<Key> {
    let s = spec.strata;
    let ages: Vec<Option<u32>> = (1..=spec.age_breaks.len() as u32 + 1).map(Some).collect();
    let genders: Vec<Option<u32>> = GENDERS.iter().copied().map(Some).collect();
    let years: Vec<Option<u16>> = if s.by_year {
        observed_years(cdm).into_iter().map(Some).collect()
    } else {
        Vec::new()
    };
    let mut keys = Vec::new();
    for tar in 1..=spec.tars.len() as u32 {
        for a in [false, true] {
            for g in [false, true] {
                for y in [false, true] {
                    if (a && !s.by_age) || (g && !s.by_gender) || (y && !s.by_year) {
                        continue;
                    }
                    let av = if a { ages.clone() } else { vec![None] };
                    let gv = if g { genders.clone() } else { vec![None] };
                    let yv = if y { years.clone() } else { vec![None] };
                    for &age in &av {
                        for &gender in &gv {
                            for &year in &yv {
                                keys.push((tar, age, gender, year));
                            }
                        }
                    }
                }
            }
        }
    }
    keys.sort_unstable();
    keys
}

/// The eight statistics of a row, with their sensitivities.
fn row_stats(key: &Key, spec: &IncidenceSpec, bound: u32) -> [Statistic; 8] {
    let (t, a, g, y) = key;
    let name = |s: &str| format!("tar {t} age {a:?} gender {g:?} year {y:?} {s}");
    let days = bound.saturating_mul(spec.max_tar_days);
    let outcomes = bound.saturating_mul(spec.max_outcomes_per_tar);
    [
        Statistic::person_count(name("persons_at_risk_pe")),
        Statistic::person_count(name("persons_at_risk")),
        Statistic::clipped_rows(name("person_days_pe"), days),
        Statistic::clipped_rows(name("person_days"), days),
        Statistic::person_count(name("person_outcomes_pe")),
        Statistic::person_count(name("person_outcomes")),
        Statistic::clipped_rows(name("outcomes_pe"), outcomes),
        Statistic::clipped_rows(name("outcomes"), outcomes),
    ]
}

impl Analysis for Incidence {
    type Spec = IncidenceSpec;
    type Released = IncidenceResult;
    type Pooled = PooledIncidence;

    fn check(spec: &IncidenceSpec) -> Result<(), (String, String)> {
        spec.check()
    }

    fn statistics(
        spec: &IncidenceSpec,
        _target: &serde_json::Value,
        d: &Discloser,
        cdm: &dyn Cdm,
    ) -> Result<Vec<Statistic>, AnalysisError> {
        Self::check(spec).map_err(|(p, m)| AnalysisError::Invalid(format!("{p}: {m}")))?;
        let bound = d.policy().dp.entries_bound;
        Ok(grid(spec, cdm)
            .iter()
            .flat_map(|k| row_stats(k, spec, bound))
            .collect())
    }

    fn release(
        spec: &IncidenceSpec,
        site: &mut Site<'_>,
    ) -> Result<IncidenceResult, AnalysisError> {
        let d = site.discloser;
        let dp = is_dp(d);
        let bound = d.policy().dp.entries_bound;
        let target = clip_rows(d, (site.engine)(site.target)?.rows);
        let outcome = (site.engine)(&spec.outcome)?.rows;
        let who = persons(d, &target);
        // SHRINE's repeated-result lockout, on the target's persons (as a count's final line).
        site.record_result(&who)?;
        let mut cohorts: Cohorts = HashMap::new();
        cohorts.insert(1, target);
        cohorts.insert(2, outcome);
        let clip = if dp {
            Clip {
                max_tar_days: Some(i32::try_from(spec.max_tar_days).unwrap_or(i32::MAX)),
                max_outcomes_per_tar: Some(u64::from(spec.max_outcomes_per_tar)),
            }
        } else {
            Clip::default()
        };
        let rows = run_clipped(site.store()?, &design_of(spec), &cohorts, "site", clip)
            .map_err(|e| AnalysisError::Invalid(e.to_string()))?;
        let by_key: HashMap<Key, &crate::incidence::SummaryRow> = rows
            .iter()
            .filter_map(|r| {
                let key = (
                    u32::try_from(r.tar_id).ok()?,
                    r.age_group_id.map(u32::try_from).transpose().ok()?,
                    r.gender_id.map(u32::try_from).transpose().ok()?,
                    r.start_year.map(u16::try_from).transpose().ok()?,
                );
                Some((key, r))
            })
            .collect();
        let days = |x: i64| u64::try_from(x).unwrap_or(0);
        let out = grid(spec, site.cdm)
            .into_iter()
            .map(|key| {
                let r = by_key.get(&key);
                let v = |f: fn(&crate::incidence::SummaryRow) -> u64| r.map_or(0, |r| f(r));
                let values = [
                    v(|r| r.persons_at_risk_pe),
                    v(|r| r.persons_at_risk),
                    r.map_or(0, |r| days(r.person_days_pe)),
                    r.map_or(0, |r| days(r.person_days)),
                    v(|r| r.person_outcomes_pe),
                    v(|r| r.person_outcomes),
                    v(|r| r.outcomes_pe),
                    v(|r| r.outcomes),
                ];
                let stats = row_stats(&key, spec, bound);
                let [a, b, c, dd, e, f, g, h] =
                    std::array::from_fn(|i| release(site, &stats[i], &who, values[i]));
                IncidenceRow {
                    tar_id: key.0,
                    age_group_id: key.1,
                    gender_concept_id: key.2,
                    start_year: key.3,
                    persons_at_risk_pe: a,
                    persons_at_risk: b,
                    person_days_pe: c,
                    person_days: dd,
                    person_outcomes_pe: e,
                    person_outcomes: f,
                    outcomes_pe: g,
                    outcomes: h,
                }
            })
            .collect();
        Ok(IncidenceResult {
            rows: out,
            disclosure: site.summary.clone(),
        })
    }

    fn pool(_spec: &IncidenceSpec, released: &[&IncidenceResult]) -> PooledIncidence {
        let mut rows: BTreeMap<Key, Vec<(&IncidenceRow, &DisclosureSummary)>> = BTreeMap::new();
        for r in released {
            for row in &r.rows {
                rows.entry(row.key())
                    .or_default()
                    .push((row, &r.disclosure));
            }
        }
        let mut memo = intervals::Memo::default();
        PooledIncidence {
            sites_done: released.len(),
            rows: rows
                .into_iter()
                .map(|(key, site_rows)| pooled_row(key, &site_rows, &mut memo))
                .collect(),
        }
    }
}

fn pooled_row(
    key: Key,
    site_rows: &[(&IncidenceRow, &DisclosureSummary)],
    memo: &mut intervals::Memo,
) -> PooledIncidenceRow {
    let sum = |f: fn(&IncidenceRow) -> &Released| {
        Sum::of(
            &site_rows
                .iter()
                .map(|(r, s)| (f(r), *s))
                .collect::<Vec<_>>(),
        )
    };
    let persons_at_risk = sum(|r| &r.persons_at_risk);
    let person_days = sum(|r| &r.person_days);
    let person_outcomes = sum(|r| &r.person_outcomes);
    let outcomes = sum(|r| &r.outcomes);
    let (n, x) = (persons_at_risk.point_sum, person_outcomes.point_sum);
    let years = person_days.point_sum as f64 / 365.25;
    let ip = (n > 0).then(|| 100.0 * x.min(n) as f64 / n as f64);
    let ir = (person_days.point_sum > 0).then(|| 100.0 * outcomes.point_sum as f64 / years);
    let ir_ci = memo.rate(outcomes.point_sum, years, 100.0);
    let ip_ci = memo.proportion(x.min(n), n, 100.0);
    PooledIncidenceRow {
        tar_id: key.0,
        age_group_id: key.1,
        gender_concept_id: key.2,
        start_year: key.3,
        persons_at_risk_pe: sum(|r| &r.persons_at_risk_pe),
        person_days_pe: sum(|r| &r.person_days_pe),
        person_outcomes_pe: sum(|r| &r.person_outcomes_pe),
        outcomes_pe: sum(|r| &r.outcomes_pe),
        persons_at_risk,
        person_days,
        person_outcomes,
        outcomes,
        incidence_proportion_p100p: ip,
        incidence_rate_p100py: ir,
        ir_ci95_low: ir_ci.map(|c| c.0),
        ir_ci95_high: ir_ci.map(|c| c.1),
        ip_ci95_low: ip_ci.map(|c| c.0),
        ip_ci95_high: ip_ci.map(|c| c.1),
    }
}

/// One pooled incidence row: the sums, and CohortIncidence's proportion and rate with exact
/// intervals computed from them (intervals for the counts as if exact: the noise of a DP sum is
/// shown with each sum, not folded into these intervals).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PooledIncidenceRow {
    /// Time at risk.
    pub tar_id: u32,
    /// Age group or all.
    pub age_group_id: Option<u32>,
    /// Gender concept or all.
    pub gender_concept_id: Option<u32>,
    /// Start year or all.
    pub start_year: Option<u16>,
    /// Sums.
    pub persons_at_risk_pe: Sum,
    pub persons_at_risk: Sum,
    pub person_days_pe: Sum,
    pub person_days: Sum,
    pub person_outcomes_pe: Sum,
    pub person_outcomes: Sum,
    pub outcomes_pe: Sum,
    pub outcomes: Sum,
    /// Per 100 persons.
    pub incidence_proportion_p100p: Option<f64>,
    /// Per 100 person-years.
    pub incidence_rate_p100py: Option<f64>,
    /// Exact Poisson (Garwood) 95% interval of the rate.
    pub ir_ci95_low: Option<f64>,
    pub ir_ci95_high: Option<f64>,
    /// Clopper–Pearson 95% interval of the proportion.
    pub ip_ci95_low: Option<f64>,
    pub ip_ci95_high: Option<f64>,
}

/// An incidence analysis pooled across sites.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PooledIncidence {
    /// Sites added.
    pub sites_done: usize,
    /// Rows by time at risk and stratum.
    pub rows: Vec<PooledIncidenceRow>,
}
