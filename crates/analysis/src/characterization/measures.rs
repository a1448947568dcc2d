//! FeatureExtraction's continuous demographics and concept counts (`DemographicsAge.sql`,
//! `DemographicsTime.sql`, `ConceptCounts.sql`): one value per cohort entry, FE's statistics over
//! them ([`distribution`]) with the cohort's entries as the population (an entry without a value,
//! e.g. without rows in the window, is FE's `count_no_value`).
//!
//! - Age, prior and post observation time and time in cohort: one value per cohort row (the SQL
//!   reads the cohort table without DISTINCT); age only for subjects with a `person` row (INNER
//!   JOIN person), observation times one per observation period holding the index date.
//! - Concept counts: per distinct (subject, index date) (the SQL's GROUP BY), the rows of the table
//!   with a concept ≠ 0 whose start is on or before index + end day and whose FE end date (the
//!   table's end for eras and visits, its date otherwise) is on or after index + start day.

use rustc_hash::FxHashMap as HashMap;

use qiao_cdm::{date, NULL_CONCEPT, NULL_INT};
use qiao_cohort::CohortRow;

use super::features::{distinct_entries, Context};
use super::prespec::{Count, Measure};
use super::scores::distribution;
use super::{Continuous, Entry, Prespec, Settings};

/// The continuous covariates of measure `m` (analysis `a`) for the cohort `entries` (the cohort's
/// `rows`, one entry per row in the same order). Empty when no entry has a value, as FE's inner
/// joins leave no row.
pub fn measure(
    ctx: &Context<'_>,
    a: &Prespec,
    m: Measure,
    entries: &[Entry],
    rows: &[CohortRow],
    settings: &Settings,
) -> Vec<Continuous> {
    if entries.is_empty() {
        return Vec::new();
    }
    let population = entries.len() as u64;
    let one = |values: Vec<(u32, i64)>, name: String| -> Vec<Continuous> {
        let mut v: Vec<i64> = values.iter().map(|x| x.1).collect();
        distribution(&mut v, population)
            .map(|stats| Continuous {
                covariate_id: 1000 + i64::from(a.id),
                analysis_id: a.id,
                concept_id: 0,
                name,
                stats,
                values: Some(values),
            })
            .into_iter()
            .collect()
    };
    let persons = ctx.store.persons();
    match m {
        Measure::Age => {
            let yob = persons.i32_column("year_of_birth");
            let values = entries
                .iter()
                .filter(|e| persons.has_row(e.person))
                .filter_map(|e| {
                    let y = yob.get(e.person as usize).copied().unwrap_or(NULL_INT);
                    (y != NULL_INT).then(|| (e.person, i64::from(date::year(e.start) - y)))
                })
                .collect();
            one(values, "age in years".into())
        }
        Measure::PriorObservation | Measure::PostObservation => {
            let Some(op) = ctx.store.domain("observation_period") else {
                return Vec::new();
            };
            let (starts, ends) = (op.start(), op.end());
            let mut values = Vec::new();
            for e in entries {
                for r in op.person_rows(e.person) {
                    let (s, end) = (starts.at(r), ends.at(r));
                    if s <= e.start && end >= e.start {
                        let days = if m == Measure::PriorObservation {
                            e.start - s
                        } else {
                            end - e.start
                        };
                        values.push((e.person, i64::from(days)));
                    }
                }
            }
            let name = if m == Measure::PriorObservation {
                "observation time (days) prior to index"
            } else {
                "observation time (days) after index"
            };
            one(values, name.into())
        }
        Measure::TimeInCohort => one(
            entries
                .iter()
                .zip(rows)
                .map(|(e, r)| (e.person, i64::from(r.end - r.start)))
                .collect(),
            "time (days) between cohort start and end".into(),
        ),
        Measure::Count {
            table,
            use_end,
            how,
        } => concept_counts(ctx, a, table, use_end, how, entries, settings),
        Measure::Value(table) => super::values::values(ctx, a, table, entries, settings),
    }
}

/// `ConceptCounts.sql` for one analysis.
fn concept_counts(
    ctx: &Context<'_>,
    a: &Prespec,
    table: &str,
    use_end: bool,
    how: Count,
    entries: &[Entry],
    settings: &Settings,
) -> Vec<Continuous> {
    let Some(d) = ctx.store.domain(table) else {
        return Vec::new();
    };
    let start_day = settings.start_day(a.window).unwrap_or(i32::MIN);
    let (starts, ends, concepts) = (d.start(), d.end(), d.concept());
    let mut values: Vec<(u32, i64)> = Vec::new();
    let mut by_concept: HashMap<i32, Vec<(u32, i64)>> = HashMap::default();
    let mut seen: Vec<i32> = Vec::new();
    for e in distinct_entries(entries).iter().copied() {
        let hi = e.start.saturating_add(settings.end_days);
        let lo = e.start.saturating_add(start_day);
        seen.clear();
        for r in d.person_rows(e.person) {
            if starts.at(r) > hi {
                break;
            }
            let c = concepts[r];
            let last = if use_end { ends.at(r) } else { starts.at(r) };
            if c != 0 && c != NULL_CONCEPT && last >= lo {
                seen.push(c);
            }
        }
        if seen.is_empty() {
            continue;
        }
        match how {
            Count::All => values.push((e.person, seen.len() as i64)),
            Count::Distinct => {
                seen.sort_unstable();
                seen.dedup();
                values.push((e.person, seen.len() as i64));
            }
            Count::ByConcept => {
                seen.sort_unstable();
                let mut i = 0;
                while i < seen.len() {
                    let j = i + seen[i..].partition_point(|&c| c == seen[i]);
                    by_concept
                        .entry(seen[i])
                        .or_default()
                        .push((e.person, (j - i) as i64));
                    i = j;
                }
            }
        }
    }
    let window = format!(
        "during day {} through {} concept_count relative to index",
        start_day, settings.end_days
    );
    let population = entries.len() as u64;
    let aid = i64::from(a.id);
    let mut out: Vec<Continuous> = match how {
        Count::ByConcept => by_concept
            .into_iter()
            .filter_map(|(c, v)| {
                let mut plain: Vec<i64> = v.iter().map(|x| x.1).collect();
                Some(Continuous {
                    covariate_id: i64::from(c) * 1000 + aid,
                    analysis_id: a.id,
                    concept_id: 0,
                    name: format!(
                        "{table} concept count {window}: {}",
                        ctx.concept_name(i64::from(c))
                    ),
                    stats: distribution(&mut plain, population)?,
                    values: Some(v),
                })
            })
            .collect(),
        _ => {
            let what = if how == Count::Distinct {
                "distinct concept count"
            } else {
                "concept count"
            };
            let mut plain: Vec<i64> = values.iter().map(|x| x.1).collect();
            distribution(&mut plain, population)
                .map(|stats| Continuous {
                    covariate_id: 1000 + aid,
                    analysis_id: a.id,
                    concept_id: 0,
                    name: format!("{table} {what} {window}"),
                    stats,
                    values: Some(values),
                })
                .into_iter()
                .collect()
        }
    };
    out.sort_by_key(|c| c.covariate_id);
    out
}
