//! Every funnel line's noise is keyed on that line's own person set: two definitions whose
//! lines select the same persons get the same released value for those lines, whatever else
//! they ask (so averaging over differently worded questions gains nothing).

mod common;

use common::*;
use qiao_disclosure::{Discloser, Policy, QueryLedger, SiteSecret};
use qiao_protocol::{CohortCountResult, JobResult, Outcome, Payload, QueryType, Released, SiteId};
use qiao_site::{execute, ExecContext};

fn count(discloser: &Discloser, def: u32) -> CohortCountResult {
    let site = SiteId::new("hospital-a").unwrap();
    let mut ledger = QueryLedger::new();
    let mut rng = rand::rngs::OsRng;
    let mut cx = ExecContext {
        site_id: &site,
        store: store(),
        discloser,
        ledger: &mut ledger,
        now: now(),
        rng: &mut rng,
    };
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
        let d = Discloser::new(Policy::default(), secret).unwrap();
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
