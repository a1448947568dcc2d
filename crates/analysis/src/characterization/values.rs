//! FeatureExtraction's `DomainValueAsNumber.sql` (analyses 705–708 on `measurement`, 809–812 on
//! `observation`): per distinct cohort entry (subject, index date) and per (concept, unit), the
//! `value_as_number` of the latest row in the window (start date in [index + start day, index +
//! end day]; ties on the date: the smallest value, as its `ORDER BY date DESC, value_as_number`);
//! rows with concept 0, no value or no unit are not read (its `#meas_cov` join). One continuous
//! covariate per concept × unit: id `concept × 1,000,000 + (unit mod 1000) × 1000 + analysis id`
//! (units with the same last three digits share an id and are pooled, as in FE).
//!
//! Its statistics are over the entries with a value only (no population adjustment): count,
//! mean, sample sd (None — SQL's NULL — for a single value), min, max, and quantile q = the
//! smallest value v with #(values ≤ v) ≥ q·count.

use std::collections::BTreeMap;

use qiao_cdm::NULL_CONCEPT;

use super::features::{distinct_entries, Context};
use super::{Continuous, Distribution, Entry, Prespec, Settings, Window};

/// The covariate id of (concept, unit) for analysis `analysis_id`.
pub fn value_covariate_id(concept: i32, unit: i32, analysis_id: u32) -> i64 {
    i64::from(concept) * 1_000_000
        + i64::from(unit).rem_euclid(1000) * 1000
        + i64::from(analysis_id)
}

/// The continuous covariates of analysis `a` (a `DomainValueAsNumber` analysis on `table`).
pub fn values(
    ctx: &Context<'_>,
    a: &Prespec,
    table: &str,
    entries: &[Entry],
    settings: &Settings,
) -> Vec<Continuous> {
    let Some(d) = ctx.store.domain(table) else {
        return Vec::new();
    };
    let (Some(number), Some(unit)) = (
        d.column("value_as_number").and_then(|c| c.as_f64()),
        d.column("unit_concept_id").and_then(|c| c.as_i32()),
    ) else {
        return Vec::new();
    };
    let start_day = settings.start_day(a.window);
    let (starts, concepts) = (d.start(), d.concept());
    // covariate id → (the smallest unit seen, the values of the entries).
    let mut by_covariate: BTreeMap<i64, (i32, i32, Vec<f64>)> = BTreeMap::new();
    // The entry's latest row per (concept, unit): (concept, unit, -date, value).
    let mut latest: Vec<(i32, i32, i32, f64)> = Vec::new();
    for e in distinct_entries(entries).iter().copied() {
        latest.clear();
        let rows = d.person_rows(e.person);
        let hi = e.start.saturating_add(settings.end_days);
        let lo = start_day.map(|s| e.start.saturating_add(s));
        for r in rows {
            let s = starts.at(r);
            if s > hi {
                break;
            }
            if lo.is_some_and(|lo| s < lo) {
                continue;
            }
            let c = concepts[r];
            let u = unit.get(r).unwrap_or(NULL_CONCEPT);
            let v = number.get(r).unwrap_or(f64::NAN);
            if c == 0 || c == NULL_CONCEPT || u == NULL_CONCEPT || v.is_nan() {
                continue;
            }
            latest.push((c, u, -s, v));
        }
        latest.sort_unstable_by(|x, y| {
            (x.0, x.1, x.2)
                .cmp(&(y.0, y.1, y.2))
                .then(x.3.total_cmp(&y.3))
        });
        let mut i = 0;
        while i < latest.len() {
            let (c, u, _, v) = latest[i];
            let id = value_covariate_id(c, u, a.id);
            let slot = by_covariate.entry(id).or_insert((c, u, Vec::new()));
            slot.1 = slot.1.min(u);
            slot.2.push(v);
            while i < latest.len() && (latest[i].0, latest[i].1) == (c, u) {
                i += 1;
            }
        }
    }
    let window = match a.window {
        Window::None | Window::AnyTimePrior => format!(
            "during any time prior through {} days relative to index",
            settings.end_days
        ),
        w => format!(
            "during day {} through {} days relative to index",
            settings.start_day(w).unwrap_or(0),
            settings.end_days
        ),
    };
    let name_or_empty = |id: i32| {
        ctx.vocab
            .concept(id)
            .and_then(|c| c.concept_name)
            .unwrap_or("")
            .to_string()
    };
    by_covariate
        .into_iter()
        .map(|(id, (concept, unit, mut v))| {
            // CONCAT with a NULL (a concept not in the vocabulary) adds nothing.
            let unit_text = if unit == 0 {
                "Unknown unit".to_string()
            } else {
                name_or_empty(unit)
            };
            Continuous {
                covariate_id: id,
                analysis_id: a.id,
                concept_id: i64::from(concept),
                name: format!(
                    "{table} value {window}: {} ({unit_text})",
                    name_or_empty(concept)
                ),
                stats: real_distribution(&mut v),
                values: None,
            }
        })
        .collect()
}

/// FE's statistics of real values (count ≥ 1), over the values only.
fn real_distribution(values: &mut [f64]) -> Distribution {
    values.sort_unstable_by(f64::total_cmp);
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let sd = if n < 2 {
        f64::NAN
    } else {
        let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
        (ss / (n - 1) as f64).sqrt()
    };
    let quantile = |q100: usize| -> f64 {
        // The first value whose run ends at or past q·n (distinct values, counts accumulated).
        let mut i = 0;
        while i < n {
            let v = values[i];
            while i < n && values[i] == v {
                i += 1;
            }
            if 100 * i >= q100 * n {
                return v;
            }
        }
        values[n - 1]
    };
    Distribution {
        count: n as u64,
        mean,
        sd,
        min: values[0],
        p10: quantile(10),
        p25: quantile(25),
        median: quantile(50),
        p75: quantile(75),
        p90: quantile(90),
        max: values[n - 1],
    }
}
