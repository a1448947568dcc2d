//! Recruitment: how many candidates of a project's pre-screening list the site's investigators
//! marked screened, enrolled and excluded in each asked month.
//!
//! The marks are the site's own records ([`Site::recruitment`]: each candidate's days,
//! patient-level, never sent); the job's definition is the list's cohort, and only its
//! subjects' marks count. Each kind of mark is one family of disjoint counts over the months
//! (a candidate has one day of each kind, so is in at most one month of each), so the release
//! costs three units of ρ under DP whatever the number of months; each count goes through the
//! site's release mechanism ([`Discloser::release_value`]) keyed on the question and the month's
//! person set, like every other count. The months are the spec's, fixed before any data is
//! seen: which months have marks is not revealed by the shape of the answer.
//!
//! Δ: 1 per count; three families (screened, enrolled, excluded).

use std::collections::BTreeSet;

use qiao_cdm::date::{to_ymd, Day};
use qiao_disclosure::{Discloser, Statistic};
use qiao_protocol::{RecruitmentMonth, RecruitmentResult, RecruitmentSpec, YearMonth};
use serde::{Deserialize, Serialize};

use super::{subject_ids, to_wire, Analysis, AnalysisError, Cdm, Site, Sum};

/// One candidate's recruitment days at the site (patient-level: never leaves the site).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PersonMarks {
    /// The person.
    pub person_id: i64,
    /// Day screened.
    pub screened: Option<Day>,
    /// Day enrolled.
    pub enrolled: Option<Day>,
    /// Day excluded.
    pub excluded: Option<Day>,
}

/// The recruitment counts.
pub struct Recruitment;

/// A candidate's day of one kind of mark.
type DayOf = fn(&PersonMarks) -> Option<Day>;

/// The kinds of mark, each one family of statistics: (name, the day of that kind).
const KINDS: [(&str, DayOf); 3] = [
    ("screened", |m| m.screened),
    ("enrolled", |m| m.enrolled),
    ("excluded", |m| m.excluded),
];

fn stat_name(kind: &str, m: &YearMonth) -> String {
    format!("{kind} {}", m.key())
}

/// The statistics of a spec: per month and kind a disjoint count in the kind's family.
pub fn recruitment_statistics(spec: &RecruitmentSpec) -> Vec<Statistic> {
    let mut v = Vec::with_capacity(spec.months.len() * KINDS.len());
    for m in &spec.months {
        for (kind, _) in KINDS {
            v.push(Statistic::disjoint_person_count(stat_name(kind, m), kind));
        }
    }
    v
}

fn month_of(d: Day) -> YearMonth {
    let (y, m, _) = to_ymd(d);
    YearMonth {
        year: u16::try_from(y).unwrap_or(0),
        month: m as u8,
    }
}

/// Network totals of one month.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PooledMonth {
    /// `YYYY-MM`.
    pub month: String,
    /// Screened.
    pub screened: Sum,
    /// Enrolled.
    pub enrolled: Sum,
    /// Excluded.
    pub excluded: Sum,
}

/// Recruitment pooled over the sites that answered: per month, and over every month.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PooledRecruitment {
    /// Sites added.
    pub sites_done: usize,
    /// Per asked month.
    pub months: Vec<PooledMonth>,
    /// Screened in every asked month.
    pub screened: Sum,
    /// Enrolled in every asked month.
    pub enrolled: Sum,
    /// Excluded in every asked month.
    pub excluded: Sum,
}

impl Analysis for Recruitment {
    type Spec = RecruitmentSpec;
    type Released = RecruitmentResult;
    type Pooled = PooledRecruitment;
    const NEEDS_STORE: bool = false;

    fn check(spec: &RecruitmentSpec) -> Result<(), (String, String)> {
        spec.check()
    }

    fn statistics(
        spec: &RecruitmentSpec,
        _target: &serde_json::Value,
        _d: &Discloser,
        _cdm: &dyn Cdm,
    ) -> Result<Vec<Statistic>, AnalysisError> {
        Self::check(spec).map_err(|(p, m)| AnalysisError::Invalid(format!("{p} {m}")))?;
        Ok(recruitment_statistics(spec))
    }

    fn release(
        spec: &RecruitmentSpec,
        site: &mut Site<'_>,
    ) -> Result<RecruitmentResult, AnalysisError> {
        let run = (site.engine)(site.target)?;
        let on_list: BTreeSet<i64> = subject_ids(&run.rows).collect();
        let marks: Vec<&PersonMarks> = site
            .recruitment
            .iter()
            .filter(|m| on_list.contains(&m.person_id))
            .collect();
        let d = site.discloser;
        let mut months = Vec::with_capacity(spec.months.len());
        for m in &spec.months {
            let mut values = Vec::with_capacity(KINDS.len());
            for (kind, day) in KINDS {
                let persons = d.digest(
                    marks
                        .iter()
                        .filter(|p| day(p).is_some_and(|x| month_of(x) == *m))
                        .map(|p| p.person_id),
                );
                let stat = site.statistic(&stat_name(kind, m))?;
                let released = d.release_value(&site.question, stat, &persons, persons.count());
                values.push(to_wire(&released));
            }
            let [screened, enrolled, excluded]: [_; 3] = values
                .try_into()
                .map_err(|_| AnalysisError::Internal("three kinds of mark".into()))?;
            months.push(RecruitmentMonth {
                year: m.year,
                month: m.month,
                screened,
                enrolled,
                excluded,
            });
        }
        Ok(RecruitmentResult {
            months,
            disclosure: site.summary.clone(),
        })
    }

    fn pool(spec: &RecruitmentSpec, released: &[&RecruitmentResult]) -> PooledRecruitment {
        let of = |pick: fn(&RecruitmentMonth) -> &qiao_protocol::Released, month: Option<usize>| {
            let v: Vec<_> = released
                .iter()
                .flat_map(|r| {
                    r.months
                        .iter()
                        .enumerate()
                        .filter(move |(i, _)| month.is_none_or(|m| m == *i))
                        .map(move |(_, m)| (pick(m), &r.disclosure))
                })
                .collect();
            Sum::of(&v)
        };
        PooledRecruitment {
            sites_done: released.len(),
            months: spec
                .months
                .iter()
                .enumerate()
                .map(|(i, m)| PooledMonth {
                    month: m.key(),
                    screened: of(|m| &m.screened, Some(i)),
                    enrolled: of(|m| &m.enrolled, Some(i)),
                    excluded: of(|m| &m.excluded, Some(i)),
                })
                .collect(),
            screened: of(|m| &m.screened, None),
            enrolled: of(|m| &m.enrolled, None),
            excluded: of(|m| &m.excluded, None),
        }
    }
}
