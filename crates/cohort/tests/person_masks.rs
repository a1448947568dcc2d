//! Per-person best-event inclusion masks (what a site needs to key each funnel line's noise on
//! that line's own person set): they must be exactly what the best-event statistics count.

mod common;

use std::collections::BTreeMap;

use common::*;
use qiao_cohort::exec::{CohortError, CohortRow, CohortSink, Counter, Prepared};

#[test]
fn person_masks_are_what_the_best_event_statistics_count() {
    let store = gibleed();
    // CohortGenerator's Eunomia cohorts: 2 and 3 have inclusion rules (age; age and gender).
    let mut rules_seen = 0;
    for id in 1..=4 {
        let json = read(&data(&format!(
            "reference/cohortgenerator-eunomia/cohorts/{id}.json"
        )));
        let def = qiao_cohort::parse(&json).unwrap();
        let prepared = Prepared::new(&def, store).unwrap();
        let mut sink = RowsAndMasks::default();
        let stats = prepared.run(store, &mut sink).unwrap();
        let best = &stats.modes[1];

        // One mask per person with a qualified event, persons ascending and distinct.
        assert_eq!(sink.masks.len() as u64, best.base_count, "cohort {id}");
        assert!(
            sink.masks.windows(2).all(|w| w[0].0 < w[1].0),
            "cohort {id}: order"
        );
        let mut hist: BTreeMap<u64, u64> = BTreeMap::new();
        for &(_, m) in &sink.masks {
            *hist.entry(m).or_default() += 1;
        }
        let want: BTreeMap<u64, u64> = best.masks.iter().map(|(m, n)| (*m, *n)).collect();
        assert_eq!(hist, want, "cohort {id}: masks");

        // The funnel: persons with rules 0..=i all passed; at the end, the final count.
        let n = stats.rule_names.len();
        rules_seen += n;
        let mut funnel = Vec::new();
        for i in 0..n {
            let need = (1u64 << (i + 1)) - 1;
            let remaining = sink.masks.iter().filter(|(_, m)| m & need == need).count() as u64;
            let from_stats: u64 = best
                .masks
                .iter()
                .filter(|(m, _)| *m & need == need)
                .map(|(_, c)| c)
                .sum();
            assert_eq!(remaining, from_stats, "cohort {id} rule {i}");
            funnel.push(remaining);
        }
        // The reference (cg_cohort_inc_result.csv, mode 1): cohort 2 keeps 569 of 1,800 at
        // "Age > 40"; cohort 3 keeps 569, then 266 at "Gender = MALE".
        match id {
            2 => assert_eq!(funnel, [569]),
            3 => assert_eq!(funnel, [569, 266]),
            _ => assert!(funnel.is_empty()),
        }
        let full = if n == 0 { 0 } else { (1u64 << n) - 1 };
        let in_final = sink.masks.iter().filter(|(_, m)| *m == full).count() as u64;
        assert_eq!(in_final, best.final_count, "cohort {id}: final");
        // Without end-date censoring, the final persons are the cohort's subjects.
        if stats.censor_lost.is_none() {
            let subjects = sink
                .rows
                .chunk_by(|a, b| a.subject_id == b.subject_id)
                .count() as u64;
            assert_eq!(in_final, subjects, "cohort {id}: subjects");
        }

        // Single-threaded: the same masks in the same order.
        let mut single = RowsAndMasks::default();
        prepared.run_with(store, &mut single, false).unwrap();
        assert_eq!(
            single.masks, sink.masks,
            "cohort {id}: parallel = single-threaded"
        );
    }
    assert_eq!(rules_seen, 3, "the reference cohorts' rules");
}

#[test]
fn masks_are_not_produced_unless_asked() {
    struct Refuses(Counter);
    impl CohortSink for Refuses {
        fn push(&mut self, row: CohortRow) -> Result<(), CohortError> {
            self.0.push(row)
        }
        fn person_mask(&mut self, _: i64, _: u64) -> Result<(), CohortError> {
            Err(CohortError::Sink(
                "person_mask called without being asked".into(),
            ))
        }
    }
    let store = gibleed();
    let json = read(&data("reference/cohortgenerator-eunomia/cohorts/3.json"));
    let def = qiao_cohort::parse(&json).unwrap();
    let prepared = Prepared::new(&def, store).unwrap();
    let mut sink = Refuses(Counter::default());
    prepared.run(store, &mut sink).unwrap();
    assert_eq!(sink.0.subjects, 266);
}
