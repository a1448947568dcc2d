//! The cohort count (feasibility): Circe's attrition funnel — entries, subjects, the persons
//! after each inclusion rule and each rule's gain, the final persons — every line released on
//! its own person set, taken from each person's best-event inclusion mask (what Circe's
//! best-event statistics count): "after rule i" on the persons passing rules 0..=i, a rule's
//! gain on the persons failing only that rule, the final line on the persons passing all;
//! `entries` on the cohort rows with each person's rows clipped to the policy's bound under DP.
//! Funnels are made non-increasing (post-processing) and the threshold applies to the noisy
//! values. Pooled at the hub as sums of the released lines.

use qiao_cohort::exec::rules_through;
use qiao_cohort::CohortRow;
use qiao_disclosure::{Discloser, PersonSetDigest, ReleaseMode, Statistic};
use qiao_protocol::{CohortCountResult, RuleName, RuleResult};
use serde::{Deserialize, Serialize};

use super::{subject_ids, to_wire, Analysis, AnalysisError, Cdm, CohortRun, Site, Sum};

/// The cohort count. Its spec is the job's definition alone (`()`).
pub struct CohortCount;

/// The attrition funnel before disclosure control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrueFunnel {
    /// Cohort rows.
    pub entries: u64,
    /// Distinct persons in the cohort.
    pub subjects: u64,
    /// Per inclusion rule: name, persons remaining after it and every rule before it (best
    /// event per person, as ATLAS's attrition shows), and Circe's gain.
    pub rules: Vec<(String, u64, u64)>,
    /// Persons whose best event passes every rule (Circe's `final_count`, mode 1).
    pub final_persons: u64,
}

/// The funnel of a run.
pub fn true_funnel(run: &CohortRun) -> TrueFunnel {
    let s = &run.stats;
    let mode = &s.modes[1];
    let rules = s
        .rule_names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let remaining = mode.remaining_after(i);
            let gain = mode.rules.get(i).map_or(0, |r| r.gain_count);
            (name.clone(), remaining, gain)
        })
        .collect();
    TrueFunnel {
        entries: s.entries,
        subjects: s.subjects,
        rules,
        final_persons: mode.final_count,
    }
}

/// Whether a definition's cohort persons (`subjects`) are, by construction, exactly the
/// persons of the funnel's final line (those whose best event passes every rule), so that
/// `subjects` is released once, as the final line (post-processing, no further ρ). Decided on
/// the definition alone, never on data: deciding it on the two person sets would make
/// "the two numbers are equal" an exact oracle for whether a person was dropped after the
/// inclusion rules.
///
/// The engine drops a person after the inclusion rules only when every end date it is offered
/// is before the start (an end strategy offset from the event's end date, or a negative offset)
/// or when the censor window clips every episode away. Without those, every person with an
/// included event keeps at least one cohort episode. A definition that does not parse answers
/// `false` (it fails later anyway).
pub fn subjects_are_final(definition: &serde_json::Value) -> bool {
    use qiao_cohort::model::{DateField, EndStrategy};
    let Ok(def) = qiao_cohort::parse(&definition.to_string()) else {
        return false;
    };
    let e = &def.expression;
    let no_window = e.censor_window.as_ref().is_none_or(|w| {
        w.start_date.as_deref().is_none_or(str::is_empty)
            && w.end_date.as_deref().is_none_or(str::is_empty)
    });
    let ends_kept = match &e.end_strategy {
        None | Some(EndStrategy::CustomEra(_)) => true,
        Some(EndStrategy::DateOffset(d)) => {
            d.date_field != Some(DateField::EndDate) && d.offset >= 0
        }
    };
    no_window && ends_kept
}

/// The statistics of a cohort count with `rules` inclusion rules, each with its sensitivity:
///
/// | statistic | one person changes it by at most |
/// | --- | --- |
/// | `subjects` (distinct persons in the cohort; not a statistic of its own when
/// `subjects_final`: then it is the final line, released once) | 1 |
/// | `entries` (cohort rows, each person's clipped to `entries_bound`) | `entries_bound` |
/// | `after rule i` (persons whose best event passes rules 0..=i) | 1 each |
/// | `gain i` (persons whose best event fails only rule i) | 1, and in one `gain` at most |
/// | `final` (persons whose best event passes every rule; released only without rules, as it
/// is the last `after rule` line otherwise) | 1 |
/// | `initial` (persons with a qualifying event, before the rules: the funnel's first line;
/// only with rules, as it is the final line otherwise) | 1 |
///
/// So the job costs `(rules + 4)/(2σ²)` (the gains are one family), `3/(2σ²)` without rules,
/// one release less when `subjects_final` ([`subjects_are_final`]).
pub fn cohort_count_statistics(
    rules: usize,
    entries_bound: u32,
    subjects_final: bool,
) -> Vec<Statistic> {
    let mut v = Vec::with_capacity(2 * rules + 3);
    if !subjects_final {
        v.push(Statistic::person_count("subjects"));
    }
    v.push(Statistic::clipped_rows("entries", entries_bound));
    for i in 0..rules {
        v.push(Statistic::person_count(format!("after rule {i}")));
        v.push(Statistic::disjoint_person_count(
            format!("gain {i}"),
            "gain",
        ));
    }
    if rules == 0 {
        v.push(Statistic::person_count("final"));
    } else {
        v.push(Statistic::person_count("initial"));
    }
    v
}

/// The true values of a cohort count's statistics from a run (for the sensitivity test and
/// for the release): `(subjects, clipped entries, per rule (after, gain), final)`.
pub fn cohort_count_values(
    run: &CohortRun,
    entries_bound: u32,
) -> (u64, u64, Vec<(u64, u64)>, u64) {
    let bound = u64::from(entries_bound);
    let mut subjects = 0u64;
    let mut entries = 0u64;
    let mut i = 0;
    while i < run.rows.len() {
        let p = run.rows[i].subject_id;
        let mut n = 0u64;
        while i < run.rows.len() && run.rows[i].subject_id == p {
            n += 1;
            i += 1;
        }
        subjects += 1;
        entries += n.min(bound);
    }
    let n_rules = run.stats.rule_names.len();
    let full = full_mask(n_rules);
    let count = |keep: &dyn Fn(u64) -> bool| {
        run.person_masks.iter().filter(|(_, m)| keep(*m)).count() as u64
    };
    let rules = (0..n_rules)
        .map(|r| {
            let need = rules_through(r);
            let only_this = full & !(1u64 << (r % 64));
            (count(&|m| m & need == need), count(&|m| m == only_this))
        })
        .collect();
    (subjects, entries, rules, count(&|m| m & full == full))
}

/// The mask of a person whose best event passes all `n_rules` rules.
fn full_mask(n_rules: usize) -> u64 {
    if n_rules == 0 {
        0
    } else {
        rules_through(n_rules - 1)
    }
}

/// A stable 64-bit key of one cohort row (splitmix64 of its fields), so that `entries` is keyed
/// on the set of rows.
fn row_key(r: &CohortRow) -> i64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let a = mix(r.subject_id as u64);
    let b = mix(a ^ (r.start as u32 as u64));
    mix(b ^ ((r.end as u32 as u64) << 32)) as i64
}

/// The digest of the persons whose best-event mask satisfies `keep`, checked against the
/// count the statistics give for the same line (they are two views of one computation).
fn mask_digest(
    d: &Discloser,
    run: &CohortRun,
    want: u64,
    keep: impl Fn(u64) -> bool,
) -> Result<PersonSetDigest, AnalysisError> {
    let digest = d.digest(
        run.person_masks
            .iter()
            .filter(|(_, m)| keep(*m))
            .map(|(p, _)| *p),
    );
    if digest.count() != want {
        return Err(AnalysisError::Internal(format!(
            "funnel line: {} persons by mask, {want} by the statistics",
            digest.count()
        )));
    }
    Ok(digest)
}

/// One inclusion rule's network total.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PooledRule {
    /// The rule's name.
    pub name: String,
    /// Persons remaining after it.
    pub persons: Sum,
}

/// The funnel pooled over the sites that are done: sums of their released lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PooledCohortCount {
    /// Sites added.
    pub sites_done: usize,
    /// Entries.
    pub entries: Sum,
    /// Subjects.
    pub subjects: Sum,
    /// The funnel's first line, when every site that is done released it.
    pub initial: Option<Sum>,
    /// Per inclusion rule (by position; a site whose rule there has another name is left out).
    pub rules: Vec<PooledRule>,
    /// Final persons.
    pub final_persons: Sum,
}

impl Analysis for CohortCount {
    type Spec = ();
    type Released = CohortCountResult;
    type Pooled = PooledCohortCount;
    const NEEDS_STORE: bool = false;

    fn check(_spec: &()) -> Result<(), (String, String)> {
        Ok(())
    }

    fn statistics(
        _spec: &(),
        target: &serde_json::Value,
        d: &Discloser,
        _cdm: &dyn Cdm,
    ) -> Result<Vec<Statistic>, AnalysisError> {
        let rules = qiao_protocol::guard::inclusion_rule_names(target).len();
        Ok(cohort_count_statistics(
            rules,
            d.policy().dp.entries_bound,
            subjects_are_final(target),
        ))
    }

    fn release(_spec: &(), site: &mut Site<'_>) -> Result<CohortCountResult, AnalysisError> {
        let rule_names = qiao_protocol::guard::inclusion_rule_names(site.target);
        let d = site.discloser;
        let policy = d.policy().clone();
        let subjects_final = subjects_are_final(site.target);
        let run = (site.engine)(site.target)?;
        let funnel = true_funnel(&run);
        if funnel.rules.len() != rule_names.len() {
            return Err(AnalysisError::Internal(format!(
                "{} inclusion rules in the definition, {} in the statistics",
                rule_names.len(),
                funnel.rules.len()
            )));
        }
        let subjects = d.digest(subject_ids(&run.rows));
        let n_rules = funnel.rules.len();
        let full = full_mask(n_rules);
        let final_persons = mask_digest(d, &run, funnel.final_persons, |m| m & full == full)?;
        site.record_result(&final_persons)?;
        let question = &site.question;
        let entries = if policy.release == ReleaseMode::Dp {
            let (_, clipped, _, _) = cohort_count_values(&run, policy.dp.entries_bound);
            d.release_value(question, site.statistic("entries")?, &subjects, clipped)
        } else {
            // Legacy and exact modes release the unclipped row count, keyed on the rows.
            let rows = d.digest(run.rows.iter().map(row_key));
            d.release_count(question, site.statistic("entries")?, &rows)
        };
        let mut lines = Vec::with_capacity(n_rules + 2);
        let mut gains = Vec::with_capacity(n_rules);
        if n_rules > 0 {
            // The funnel's first line: every person with a qualifying event (Circe's base count).
            let base = run.stats.modes[1].base_count;
            lines.push((
                site.statistic("initial")?.clone(),
                mask_digest(d, &run, base, |_| true)?,
            ));
        }
        for (i, (_, remaining, gain)) in funnel.rules.iter().enumerate() {
            let need = rules_through(i);
            lines.push((
                site.statistic(&format!("after rule {i}"))?.clone(),
                mask_digest(d, &run, *remaining, |m| m & need == need)?,
            ));
            let only_this = full & !(1u64 << (i % 64));
            let gained = mask_digest(d, &run, *gain, |m| m == only_this)?;
            gains.push(d.release_count(question, site.statistic(&format!("gain {i}"))?, &gained));
        }
        if n_rules == 0 {
            lines.push((site.statistic("final")?.clone(), final_persons));
        }
        let mut released = d.release_funnel(question, &lines);
        let initial = (n_rules > 0 && !released.is_empty()).then(|| to_wire(&released.remove(0)));
        // The final line is the last rule's line (the same person set, released once).
        let final_released =
            released
                .last()
                .map(to_wire)
                .unwrap_or(qiao_protocol::Released::BelowThreshold {
                    threshold: policy.min_cell_count,
                });
        let mut rules = Vec::with_capacity(n_rules);
        for (i, ((after, gain), name)) in released.iter().zip(&gains).zip(&rule_names).enumerate() {
            let name = RuleName::new(name)
                .map_err(|e| AnalysisError::Invalid(format!("InclusionRules[{i}].name: {e}")))?;
            rules.push(RuleResult {
                name,
                persons: to_wire(after),
                gain: to_wire(gain),
            });
        }
        Ok(CohortCountResult {
            entries: to_wire(&entries),
            // The same statistic on the same person set: released once.
            subjects: if subjects_final {
                final_released.clone()
            } else {
                to_wire(&d.release_count(question, site.statistic("subjects")?, &subjects))
            },
            initial,
            rules,
            final_persons: final_released,
            disclosure: site.summary.clone(),
        })
    }

    fn pool(_spec: &(), released: &[&CohortCountResult]) -> PooledCohortCount {
        let line = |f: &dyn Fn(&CohortCountResult) -> &qiao_protocol::Released| {
            let v: Vec<_> = released.iter().map(|r| (f(r), &r.disclosure)).collect();
            Sum::of(&v)
        };
        let initial = released
            .iter()
            .map(|r| r.initial.as_ref().map(|i| (i, &r.disclosure)))
            .collect::<Option<Vec<_>>>()
            .filter(|v| !v.is_empty())
            .map(|v| Sum::of(&v));
        let mut rules: Vec<(String, Vec<_>)> = Vec::new();
        for r in released {
            for (i, rule) in r.rules.iter().enumerate() {
                match rules.get_mut(i) {
                    Some((name, vals)) if name == rule.name.as_str() => {
                        vals.push((&rule.persons, &r.disclosure))
                    }
                    Some(_) => {}
                    None => rules.push((
                        rule.name.as_str().to_owned(),
                        vec![(&rule.persons, &r.disclosure)],
                    )),
                }
            }
        }
        PooledCohortCount {
            sites_done: released.len(),
            entries: line(&|r| &r.entries),
            subjects: line(&|r| &r.subjects),
            initial,
            rules: rules
                .into_iter()
                .map(|(name, v)| PooledRule {
                    name,
                    persons: Sum::of(&v),
                })
                .collect(),
            final_persons: line(&|r| &r.final_persons),
        }
    }
}
