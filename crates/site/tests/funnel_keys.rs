//! Under the legacy SHRINE policy every funnel line's noise is keyed on that line's own person
//! set: two definitions whose lines select the same persons get the same released value for
//! those lines. Under the default DP policy the noise is keyed on the question as well (set
//! keying alone is an equality oracle, see the disclosure crate), so the same job gives the
//! same answer, every answer is within its interval of the truth, and the funnel never grows.

mod common;

use common::*;
use qiao_disclosure::{Discloser, Policy, QueryLedger, SiteSecret};
use qiao_protocol::{CohortCountResult, JobResult, Outcome, Payload, QueryType, Released, SiteId};
use qiao_site::execute;

fn count(discloser: &Discloser, def: u32) -> CohortCountResult {
    let site = SiteId::new("hospital-a").unwrap();
    let mut ledger = QueryLedger::new();
    let mut cx = context(&site, discloser, &mut ledger);
    let job = job(QueryType::CohortCount, definition(def), "alice");
    let done: JobResult = execute(&job, &mut cx).result;
    match done.outcome {
        Outcome::Done {
            payload: Payload::CohortCount(c),
        } => c,
        other => panic!("cohort {def}: {other:?}"),
    }
}

fn point(r: &Released) -> u64 {
    r.point().expect("a released point value")
}

#[test]
fn a_funnel_line_is_keyed_on_its_own_person_set() {
    // CohortGenerator cohorts on GiBleed: 2 = celecoxib with rule "Age > 40" (569 persons
    // remain, its final line); 3 = the same and then "Gender = MALE" (569 → 266).
    let mut distinct = std::collections::BTreeSet::new();
    for seed in 1..=8u8 {
        let secret = SiteSecret::from_bytes(&[seed; 32]).unwrap();
        let d = Discloser::new(Policy::shrine(), secret).unwrap();
        let two = count(&d, 2);
        let three = count(&d, 3);
        // The same 569 persons: the same released value, in both definitions and both lines.
        assert_eq!(
            two.rules[0].persons, three.rules[0].persons,
            "secret {seed}"
        );
        assert_eq!(two.final_persons, three.rules[0].persons, "secret {seed}");
        // Cohort 3's final line is its second rule's line: 266 persons.
        assert_eq!(three.final_persons, three.rules[1].persons, "secret {seed}");
        // Released values stay within the obfuscation's reach of the truth.
        assert!(
            point(&three.rules[0].persons).abs_diff(569) <= 12,
            "secret {seed}"
        );
        assert!(
            point(&three.final_persons).abs_diff(266) <= 12,
            "secret {seed}"
        );
        distinct.insert(point(&three.rules[0].persons));
    }
    // The noise does depend on the site's secret (the equality above is not a constant).
    assert!(distinct.len() > 1, "{distinct:?}");
}

#[test]
fn dp_funnels_are_reproducible_plausible_and_non_increasing() {
    let mut distinct = std::collections::BTreeSet::new();
    for seed in 1..=8u8 {
        let secret = SiteSecret::from_bytes(&[seed; 32]).unwrap();
        let d = Discloser::new(Policy::default(), secret).unwrap();
        let three = count(&d, 3);
        // The same question on the same data: the same answer.
        assert_eq!(three, count(&d, 3), "secret {seed}");
        // The final line is the last rule's line, released once.
        assert_eq!(three.final_persons, three.rules[1].persons, "secret {seed}");
        // Within 4σ = 24 of the truth (569 → 266); the funnel never grows.
        let (a, b) = (
            point(&three.rules[0].persons),
            point(&three.rules[1].persons),
        );
        assert!(
            a.abs_diff(569) <= 24 && b.abs_diff(266) <= 24,
            "secret {seed}: {a}, {b}"
        );
        assert!(a >= b);
        let Released::Dp {
            sigma, threshold, ..
        } = three.final_persons
        else {
            panic!("{:?}", three.final_persons)
        };
        assert!((6.0..6.001).contains(&sigma) && threshold == 10);
        // entries: clipped rows with noise scaled to the bound (σ = 60).
        let Released::Dp { sigma, .. } = three.entries else {
            panic!()
        };
        assert!((60.0..60.01).contains(&sigma));
        // The initial line (persons with a qualifying event) tops the funnel.
        let initial = point(three.initial.as_ref().expect("the initial line"));
        assert!(initial >= a, "secret {seed}: {initial} < {a}");
        // ρ charged: entries, the initial line, two rule lines, the gains family = 5/72
        // (`subjects` is released as the final line for this definition, at no cost).
        let dp = three.disclosure.dp.as_ref().expect("DP summary");
        assert!(
            (dp.rho_spent - 5.0 / 72.0).abs() < 1e-12,
            "{}",
            dp.rho_spent
        );
        distinct.insert(b);
    }
    assert!(distinct.len() > 1, "{distinct:?}");
}

/// Every statistic's declared sensitivity holds against the worst case on real runs: removing
/// any one person (with all their rows; Circe evaluates each person on their own records)
/// moves each statistic by at most its declared sensitivity, and the gains family by at most 1
/// in total; `entries` is clipped so a many-episode person moves it by at most the bound.
#[test]
fn declared_sensitivities_hold_for_every_person() {
    for def in 1..=4u32 {
        let run = qiao_site::run_definition(store(), &definition(def)).unwrap();
        let subjects_final = qiao_site::subjects_are_final(&definition(def));
        for bound in [1u32, 2, 10] {
            let stats = qiao_site::cohort_count_statistics(
                run.stats.rule_names.len(),
                bound,
                subjects_final,
            );
            let sens = |name: &str| {
                stats
                    .iter()
                    .find(|s| s.name == name)
                    .map(|s| u64::from(s.sensitivity))
            };
            let (s0, e0, r0, f0) = qiao_site::cohort_count_values(&run, bound);
            // Released once as the final line: the two must be the same count.
            assert_eq!(subjects_final, sens("subjects").is_none(), "def {def}");
            if subjects_final {
                assert_eq!(s0, f0, "def {def}: subjects and the final line differ");
            }
            let mut persons: Vec<i64> = run.person_masks.iter().map(|(p, _)| *p).collect();
            persons.extend(run.rows.iter().map(|r| r.subject_id));
            persons.sort_unstable();
            persons.dedup();
            let mut worst_entries = 0;
            for &p in &persons {
                let without = qiao_site::CohortRun {
                    rows: run
                        .rows
                        .iter()
                        .filter(|r| r.subject_id != p)
                        .cloned()
                        .collect(),
                    stats: run.stats.clone(),
                    person_masks: run
                        .person_masks
                        .iter()
                        .filter(|(q, _)| *q != p)
                        .copied()
                        .collect(),
                    person_facts: None,
                };
                let (s1, e1, r1, f1) = qiao_site::cohort_count_values(&without, bound);
                assert!(
                    s0.abs_diff(s1) <= sens("subjects").unwrap_or(1),
                    "def {def} person {p}"
                );
                if subjects_final {
                    assert_eq!(s1, f1, "def {def} without person {p}");
                }
                assert!(
                    e0.abs_diff(e1) <= sens("entries").unwrap(),
                    "def {def} person {p}"
                );
                worst_entries = worst_entries.max(e0.abs_diff(e1));
                let mut gains = 0;
                for (i, ((a0, g0), (a1, g1))) in r0.iter().zip(&r1).enumerate() {
                    assert!(a0.abs_diff(*a1) <= sens(&format!("after rule {i}")).unwrap());
                    gains += g0.abs_diff(*g1);
                }
                assert!(
                    gains <= 1,
                    "def {def} person {p}: gains family moved by {gains}"
                );
                let final_sens = sens("final").unwrap_or(1);
                assert!(f0.abs_diff(f1) <= final_sens, "def {def} person {p}");
            }
            assert!(worst_entries <= u64::from(bound));
            if !persons.is_empty() {
                assert!(worst_entries >= 1, "def {def}: no person moved entries");
            }
        }
    }
}
