//! The alliance's floors and the hub's plausibility check of site results.
//!
//! * **Floors** ([`Floors`], set with `qiao hub serve --floor-min-cell-count N
//!   --floor-max-rho-per-release R|none`): the hub states them in every signed job; a site
//!   applies the stricter of its policy and the floors, or refuses the job (`floors_unmet`).
//! * **Plausibility** ([`implausible`]): a result whose numbers cannot be true for the site
//!   that sent it is stored but marked "rejected: implausible" with the reason, audited, shown
//!   in the job view, and left out of the network totals. The hub cannot check that a plausible
//!   number is true; it rejects only what no honest site can send:
//!   - a released value above what the site's rounded person count allows (the count the site
//!     reports with its poll, rounded to 100, plus half the rounding, plus the stated noise:
//!     8 σ for a DP value, `max_error` for an obfuscated one; `entries` may reach the person
//!     bound times the entries clip under DP);
//!   - a value above [`MAX_PLAUSIBLE_VALUE`] (overflow; applies even before the site reported
//!     a person count);
//!   - a funnel that increases (under DP the site makes it non-increasing; exact lines are
//!     nested sets; obfuscated lines may cross only within their stated errors).
//!
//!   Negative values cannot be expressed on the wire (every count is unsigned): an envelope
//!   carrying one fails to decode and is rejected before it is opened (400, audited as
//!   `envelope.reject`).

use qiao_protocol::{
    CohortCountResult, DemographicsResult, JobResult, Outcome, Payload, Released, SiteStatus,
};

pub use qiao_protocol::Floors;

use crate::store::{get_json, put_json, HubStore, StoreError, Table, Tx};

/// The `meta` key under which the running hub publishes its floors (for jobs created outside
/// the API handlers, e.g. the portal's feasibility runs).
const META_FLOORS: &str = "alliance_floors";

/// Publishes the hub's configured floors (at start-up).
pub fn publish(store: &dyn HubStore, floors: Floors) -> Result<(), StoreError> {
    store.write_with(|tx| put_json(tx, Table::Meta, META_FLOORS, &floors))
}

/// The floors the hub published, or the defaults.
pub fn stated(tx: &mut dyn Tx) -> Result<Floors, StoreError> {
    Ok(get_json(tx, Table::Meta, META_FLOORS)?.unwrap_or_default())
}

/// Largest count a site may release (10¹²; more than the rows of any CDM): above it the value
/// is an overflow, whatever the site's size.
pub const MAX_PLAUSIBLE_VALUE: u64 = 1_000_000_000_000;

/// Standard deviations of DP noise allowed above the person bound (P(|Z| > 8σ) < 10⁻¹⁵).
pub const NOISE_SDS: f64 = 8.0;

/// Why a result is implausible, or `None` when it is plausible. `persons_rounded` is the
/// site's last reported rounded person count, if any.
pub fn implausible(result: &JobResult, persons_rounded: Option<u64>) -> Option<String> {
    let Outcome::Done { payload } = &result.outcome else {
        return None;
    };
    let persons = persons_rounded.map(|p| p.saturating_add(SiteStatus::PERSON_ROUNDING / 2));
    let mut why = Vec::new();
    match payload {
        Payload::CohortCount(r) => cohort_count(r, persons, &mut why),
        Payload::Demographics(r) => demographics(r, persons, &mut why),
        Payload::Characterization(r) => characterization(r, persons, &mut why),
        Payload::Incidence(r) => incidence(r, persons, &mut why),
        Payload::Survival(r) => survival(r, persons, &mut why),
        // A person in both the target and the comparator is a unit in each.
        Payload::RegressionRound(r) => {
            check("persons", &r.persons, persons, Some(2), &mut why);
            check("events", &r.events, persons, Some(2), &mut why);
        }
        Payload::Recruitment(r) => {
            for m in &r.months {
                for (what, x) in [
                    ("screened", &m.screened),
                    ("enrolled", &m.enrolled),
                    ("excluded", &m.excluded),
                ] {
                    check(what, x, persons, Some(1), &mut why);
                }
            }
        }
    }
    if why.is_empty() {
        None
    } else {
        Some(why.join("; "))
    }
}

/// The largest value `r` may take when its true value is at most `max_true`.
fn upper(r: &Released, max_true: u64) -> u64 {
    match *r {
        Released::Dp { sigma, .. } => {
            let slack = if sigma.is_finite() && sigma > 0.0 {
                (NOISE_SDS * sigma).ceil().min(MAX_PLAUSIBLE_VALUE as f64) as u64
            } else {
                0
            };
            // +1: the site rounds the post-processed value.
            max_true.saturating_add(slack).saturating_add(1)
        }
        Released::Obfuscated { max_error, .. } => max_true.saturating_add(max_error),
        _ => max_true,
    }
}

/// Checks one value: overflow, and the bound from the person count (`per_person` rows per
/// person, `None` when the value has no per-person bound).
fn check(
    what: &str,
    r: &Released,
    persons: Option<u64>,
    per_person: Option<u64>,
    why: &mut Vec<String>,
) {
    let Some(v) = r.point() else { return };
    if v > MAX_PLAUSIBLE_VALUE {
        why.push(format!(
            "{what} = {v} overflows (above {MAX_PLAUSIBLE_VALUE})"
        ));
        return;
    }
    if let (Some(p), Some(k)) = (persons, per_person) {
        let max = upper(r, p.saturating_mul(k));
        if v > max {
            why.push(format!(
                "{what} = {v} is above the site's person count (≈{}, at most {max} with the stated noise)",
                p - SiteStatus::PERSON_ROUNDING / 2
            ));
        }
    }
}

fn characterization(
    r: &qiao_protocol::CharacterizationResult,
    persons: Option<u64>,
    why: &mut Vec<String>,
) {
    let clip = r.disclosure.dp.as_ref().map(|d| u64::from(d.entries_bound));
    for (side, p) in [
        ("target", Some(&r.target)),
        ("comparator", r.comparator.as_ref()),
    ] {
        if let Some(p) = p {
            check(
                &format!("{side} subjects"),
                &p.subjects,
                persons,
                Some(1),
                why,
            );
            check(&format!("{side} entries"), &p.entries, persons, clip, why);
        }
    }
    for c in &r.covariates {
        let what = format!("covariate {}", c.covariate_id);
        check(&what, &c.target, persons, clip, why);
        if let Some(x) = &c.comparator {
            check(&what, x, persons, clip, why);
        }
    }
}

fn incidence(r: &qiao_protocol::IncidenceResult, persons: Option<u64>, why: &mut Vec<String>) {
    for row in &r.rows {
        for (name, x) in row.values() {
            let per_person = name.starts_with("persons") || name.starts_with("person_outcomes");
            check(name, x, persons, per_person.then_some(1), why);
        }
    }
}

/// Every count of a risk-set table is of persons (each followed person in one cell).
fn survival(r: &qiao_protocol::SurvivalResult, persons: Option<u64>, why: &mut Vec<String>) {
    for (side, arm) in [
        ("target", Some(&r.target)),
        ("comparator", r.comparator.as_ref()),
    ] {
        let Some(arm) = arm else { continue };
        check(
            &format!("{side} entered"),
            &arm.entered,
            persons,
            Some(1),
            why,
        );
        for (list, v) in [("events", &arm.events), ("censored", &arm.censored)] {
            for (k, x) in v.iter().enumerate() {
                check(&format!("{side} {list} {k}"), x, persons, Some(1), why);
            }
        }
    }
}

fn cohort_count(r: &CohortCountResult, persons: Option<u64>, why: &mut Vec<String>) {
    let dp = r.disclosure.dp.as_ref();
    check("subjects", &r.subjects, persons, Some(1), why);
    // Under DP `entries` is clipped to `entries_bound` rows per person; legacy modes release
    // the unclipped row count, which has no per-person bound.
    let clip = dp.map(|d| u64::from(d.entries_bound));
    check("entries", &r.entries, persons, clip, why);
    check("final persons", &r.final_persons, persons, Some(1), why);
    for (i, rule) in r.rules.iter().enumerate() {
        check(
            &format!("rule {} persons", i + 1),
            &rule.persons,
            persons,
            Some(1),
            why,
        );
        check(
            &format!("rule {} gain", i + 1),
            &rule.gain,
            persons,
            Some(1),
            why,
        );
    }
    for (i, pair) in r.rules.windows(2).enumerate() {
        if increases(&pair[0].persons, &pair[1].persons) {
            why.push(format!(
                "the funnel increases from rule {} ({}) to rule {} ({})",
                i + 1,
                pair[0].persons,
                i + 2,
                pair[1].persons
            ));
        }
    }
}

/// Whether line `b` (after `a`) is larger than any honest release allows.
fn increases(a: &Released, b: &Released) -> bool {
    let (Some(x), Some(y)) = (a.point(), b.point()) else {
        return false;
    };
    let err = |r: &Released| match *r {
        Released::Obfuscated { max_error, .. } => max_error,
        _ => 0,
    };
    y > x.saturating_add(err(a)).saturating_add(err(b))
}

fn demographics(r: &DemographicsResult, persons: Option<u64>, why: &mut Vec<String>) {
    check("total", &r.total, persons, Some(1), why);
    for c in &r.cells {
        check("a cell", &c.count, persons, Some(1), why);
    }
}

/// Parses a `--floor-max-rho-per-release` value: a positive number, or `none`.
pub fn parse_max_rho(s: &str) -> Result<Option<f64>, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 0.5 => Ok(Some(r)),
        _ => Err(format!(
            "{s:?} is not a ρ per release in (0, 0.5] or \"none\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_rho_parses_numbers_and_none_only() {
        assert_eq!(parse_max_rho("none"), Ok(None));
        assert_eq!(parse_max_rho("0.02"), Ok(Some(0.02)));
        for bad in ["0", "-1", "NaN", "inf", "0.6", "x"] {
            assert!(parse_max_rho(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dp_values_may_exceed_the_bound_by_the_stated_noise_only() {
        let r = Released::Dp {
            value: Some(0),
            sigma: 6.0,
            threshold: 10,
        };
        assert_eq!(upper(&r, 100), 100 + 48 + 1);
        let o = Released::Obfuscated {
            value: 0,
            threshold: 10,
            max_error: 10,
        };
        assert_eq!(upper(&o, 100), 110);
        assert_eq!(upper(&Released::Exact { value: 0 }, 100), 100);
    }

    #[test]
    fn crossing_within_obfuscation_errors_is_not_an_increase() {
        let ob = |v| Released::Obfuscated {
            value: v,
            threshold: 10,
            max_error: 10,
        };
        assert!(!increases(&ob(100), &ob(120)));
        assert!(increases(&ob(100), &ob(121)));
        let ex = |v| Released::Exact { value: v };
        assert!(increases(&ex(100), &ex(101)));
        assert!(!increases(&ex(100), &ex(100)));
    }
}
