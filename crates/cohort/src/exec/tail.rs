//! Circe's tail, written once: the steps after the inclusion rules that every evaluator (the
//! fused pipeline, the per-person evaluator, the Spark backend) applies to a person's included
//! events, in this order:
//!
//! 1. **expression limit** ([`keep_first`]): First/Last keeps one included event per person;
//! 2. **end strategy** ([`End`]): each included event's end is the earliest *end candidate* on or
//!    after its start — the strategy's date (observation period end, or start/end + offset capped
//!    at the observation period end), the end of the custom drug era ([`eras`] over the drug
//!    exposures) containing the start, and the first censoring event in [start, op end];
//!    an event without a candidate gives no row;
//! 3. **era collapse with pad** ([`eras`]): a person's (start, end) rows whose padded ends reach the
//!    next start merge into one era (`#final_cohort`);
//! 4. **censor window** ([`censor_window`]): each era clipped to the window, dropped if empty.
//!
//! Invariants: dates are days since 1970-01-01 ([`Day`]); intermediate arithmetic is in `i64`
//! and saturates back to [`Day`] ([`sat`]), as circe-be's SQL dates cannot overflow.

use qiao_cdm::date::Day;

use super::plan::{EndPlan, Plan};

/// Days added to a date, in `i64` (no overflow).
#[inline]
pub fn add(d: Day, off: i64) -> i64 {
    d as i64 + off
}

/// A day number saturated to the [`Day`] range (never the NULL day, `Day::MIN`).
#[inline]
pub fn sat(d: i64) -> Day {
    d.clamp(Day::MIN as i64 + 1, Day::MAX as i64) as Day
}

/// The expression (or qualified) limit: keeps the first (or, `last`, the last) item by `start`;
/// among equal starts the earliest position (items come in event-id order) wins.
#[inline]
pub fn keep_first<T>(v: &mut Vec<T>, last: bool, start: impl Fn(&T) -> Day) {
    let mut best = 0;
    for i in 1..v.len() {
        let (a, b) = (start(&v[i]), start(&v[best]));
        if if last { a > b } else { a < b } {
            best = i;
        }
    }
    if !v.is_empty() {
        v.swap(0, best);
    }
    v.truncate(1);
}

/// An included event's end, as the earliest end candidate on or after its start
/// (`#cohort_ends`): [`End::strategy`] offers the end strategy's dates, [`End::offer`] any other
/// (a censoring event's start).
#[derive(Debug, Clone, Copy)]
pub struct End {
    start: Day,
    end: Option<Day>,
}

impl End {
    /// The end candidates of the plan's end strategy for an event (`start`, `end`) in the
    /// observation period ending `op_end`; `drug_eras`: the person's custom drug eras (only read
    /// for [`EndPlan::CustomEra`]).
    #[inline]
    pub fn strategy(
        plan: &Plan,
        start: Day,
        end: Day,
        op_end: Day,
        drug_eras: &[(Day, Day)],
    ) -> End {
        let mut e = End { start, end: None };
        match plan.end {
            EndPlan::OpEnd => e.offer(op_end),
            EndPlan::DateOffset { from_end, offset } => {
                let d = add(if from_end { end } else { start }, offset as i64);
                e.offer(if d > op_end as i64 { op_end } else { sat(d) });
            }
            EndPlan::CustomEra { .. } => {
                e.offer(op_end);
                for &(es, ee) in drug_eras {
                    if start >= es && start <= ee {
                        e.offer(ee);
                    }
                }
            }
        }
        e
    }

    /// Offers another end candidate (ignored before the start).
    #[inline]
    pub fn offer(&mut self, d: Day) {
        if d >= self.start {
            self.end = Some(self.end.map_or(d, |x| x.min(d)));
        }
    }

    /// The event's end, if it has one (else it gives no cohort row).
    #[inline]
    pub fn get(self) -> Option<Day> {
        self.end
    }
}

/// Collapses a person's intervals into eras: `rows` (start, end) with `pad` added to each end
/// are merged where an interval starts on or before the running maximum padded end; each era's
/// end is then given back its pad. The drug eras of the custom era strategy are the same
/// operation (pad = the gap, each exposure's end carrying the offset). Appends the eras
/// to `out` in start order; sorts `rows` if they are not in order.
pub fn eras(rows: &mut [(i64, i64)], pad: i64, out: &mut Vec<(i64, i64)>) {
    if let [(s, e)] = rows {
        // One row is its own era (the common case).
        out.push((*s, *e));
        return;
    }
    if !rows.is_sorted() {
        rows.sort_unstable();
    }
    let first = out.len();
    let mut running_max = i64::MIN;
    for &(s, e) in rows.iter() {
        let e = e + pad;
        if out.len() > first && running_max >= s {
            let last = out.last_mut().expect("an era");
            last.1 = last.1.max(e);
        } else {
            out.push((s, e));
        }
        running_max = running_max.max(e);
    }
    for era in &mut out[first..] {
        era.1 -= pad;
    }
}

/// The censor window applied to an era: (start, end) clipped to it, None where nothing is left.
#[inline]
pub fn censor_window(plan: &Plan, s: i64, e: i64) -> Option<(Day, Day)> {
    let (mut s, mut e) = (sat(s), sat(e));
    if plan.censor_start.is_none() && plan.censor_end.is_none() {
        return Some((s, e));
    }
    if let Some(cs) = plan.censor_start {
        s = s.max(cs);
    }
    if let Some(ce) = plan.censor_end {
        e = e.min(ce);
    }
    (s <= e).then_some((s, e))
}

/// Steps 3–4 for one person: `rows` (start, end; any order) collapsed into eras with the plan's
/// pad, then the censor window; each cohort row goes to `push` in start order. `merged` is a
/// reusable buffer. Returns whether the person is in `#final_cohort` (had a row before the
/// censor window: what `cohort_censor_stats` counts).
pub fn collapse(
    plan: &Plan,
    rows: &mut [(i64, i64)],
    merged: &mut Vec<(i64, i64)>,
    mut push: impl FnMut(Day, Day),
) -> bool {
    if rows.is_empty() {
        return false;
    }
    merged.clear();
    eras(rows, plan.era_pad as i64, merged);
    for &(s, e) in merged.iter() {
        if let Some((s, e)) = censor_window(plan, s, e) {
            push(s, e);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eras_merge_padded_overlaps_and_give_the_pad_back() {
        let mut out = Vec::new();
        // (1,3) and (5,6) touch with pad 2 (3+2 >= 5); (20,21) stays apart.
        eras(&mut [(5, 6), (1, 3), (20, 21)], 2, &mut out);
        assert_eq!(out, vec![(1, 6), (20, 21)]);
        out.clear();
        eras(&mut [(1, 3), (5, 6)], 0, &mut out);
        assert_eq!(out, vec![(1, 3), (5, 6)]);
        // A contained interval does not shorten the era.
        out.clear();
        eras(&mut [(1, 10), (2, 3), (11, 12)], 1, &mut out);
        assert_eq!(out, vec![(1, 12)]);
    }

    #[test]
    fn an_end_is_the_earliest_candidate_on_or_after_the_start() {
        let mut e = End {
            start: 10,
            end: None,
        };
        e.offer(9);
        assert_eq!(e.get(), None);
        e.offer(15);
        e.offer(12);
        e.offer(30);
        assert_eq!(e.get(), Some(12));
    }

    #[test]
    fn keep_first_takes_the_earliest_position_among_equal_starts() {
        let mut v = vec![(5, 'a'), (3, 'b'), (3, 'c'), (7, 'd'), (7, 'e')];
        keep_first(&mut v, false, |x| x.0);
        assert_eq!(v, vec![(3, 'b')]);
        let mut v = vec![(5, 'a'), (7, 'd'), (3, 'b'), (7, 'e')];
        keep_first(&mut v, true, |x| x.0);
        assert_eq!(v, vec![(7, 'd')]);
    }
}
