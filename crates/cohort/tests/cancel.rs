//! A run stops when its cancellation token is cancelled, in both evaluators, and an unused
//! token changes nothing.

mod common;

use std::time::{Duration, Instant};

use common::*;
use qiao_cohort::exec::{Cancel, CohortError, Counter, Pipeline, Prepared};

fn prepared(id: u32) -> Prepared {
    let json = read(&data(&format!(
        "reference/cohortgenerator-eunomia/cohorts/{id}.json"
    )));
    Prepared::new(&qiao_cohort::parse(&json).unwrap(), gibleed()).unwrap()
}

#[test]
fn a_cancelled_token_stops_both_evaluators() {
    let store = gibleed();
    for pipeline in [Pipeline::Fused, Pipeline::PerPerson] {
        for parallel in [true, false] {
            let cancel = Cancel::new();
            let p = prepared(3).with_cancel(cancel.clone());
            cancel.cancel();
            let mut sink = Counter::default();
            let r = p.run_on(store, &mut sink, parallel, pipeline);
            assert!(
                matches!(r, Err(CohortError::Cancelled)),
                "{pipeline:?} parallel={parallel}: {r:?}"
            );
            assert_eq!(sink.entries, 0, "{pipeline:?}: no rows after cancelling");
        }
    }
}

#[test]
fn an_unused_token_changes_nothing() {
    let store = gibleed();
    for pipeline in [Pipeline::Fused, Pipeline::PerPerson] {
        let mut plain = Counter::default();
        let a = prepared(3)
            .run_on(store, &mut plain, true, pipeline)
            .unwrap();
        let mut with = Counter::default();
        let b = prepared(3)
            .with_cancel(Cancel::new())
            .run_on(store, &mut with, true, pipeline)
            .unwrap();
        // CohortGenerator's reference for cohort 3: 266 persons.
        assert_eq!((plain.entries, plain.subjects), (266, 266), "{pipeline:?}");
        assert_eq!((with.entries, with.subjects), (266, 266), "{pipeline:?}");
        assert_eq!(a.modes[1].final_count, b.modes[1].final_count);
        assert_eq!(a.candidates, b.candidates);
    }
}

#[test]
fn cancelling_from_another_thread_stops_a_running_evaluation() {
    // Every condition occurrence a primary event, each checked against 45 rules of nested
    // correlated criteria: seconds of work, stopped within a span of persons.
    let def = read(std::path::Path::new("tests/fixtures/slow_definition.json"));
    let store = gibleed();
    for pipeline in [Pipeline::Fused, Pipeline::PerPerson] {
        let cancel = Cancel::new();
        let p = Prepared::new(&qiao_cohort::parse(&def).unwrap(), store)
            .unwrap()
            .with_cancel(cancel.clone());
        let started = Instant::now();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            cancel.cancel();
        });
        let r = p.run_on(store, &mut Counter::default(), true, pipeline);
        stopper.join().unwrap();
        assert!(
            matches!(r, Err(CohortError::Cancelled)),
            "{pipeline:?}: {r:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{pipeline:?}: stopped after {:?}",
            started.elapsed()
        );
    }
}
