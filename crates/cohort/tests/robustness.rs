//! No input makes the engine panic: mutated definitions either fail with an error or run.

mod common;

use common::*;
use qiao_cohort::exec::{Counter, Prepared};
use serde_json::Value;

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Replaces the `target`-th node (pre-order) with a mutation of it.
fn mutate(v: &mut Value, target: &mut usize, rng: &mut Lcg) -> bool {
    if *target == 0 {
        let replacement = match rng.below(9) {
            0 => Value::Null,
            1 => serde_json::json!(-1),
            2 => serde_json::json!(i64::MAX),
            3 => serde_json::json!(2147483647),
            4 => serde_json::json!("1999-02-30"),
            5 => serde_json::json!([]),
            6 => serde_json::json!({}),
            7 => serde_json::json!(-2147483648i64),
            _ => match v {
                Value::Array(a) if !a.is_empty() => {
                    let mut a = a.clone();
                    a.remove(rng.below(a.len()));
                    Value::Array(a)
                }
                Value::Object(o) if !o.is_empty() => {
                    let mut o = o.clone();
                    let k = o.keys().nth(rng.below(o.len())).cloned().unwrap();
                    o.remove(&k);
                    Value::Object(o)
                }
                _ => serde_json::json!(0),
            },
        };
        *v = replacement;
        return true;
    }
    *target -= 1;
    match v {
        Value::Array(a) => a.iter_mut().any(|x| mutate(x, target, rng)),
        Value::Object(o) => o.values_mut().any(|x| mutate(x, target, rng)),
        _ => false,
    }
}

#[test]
fn mutated_definitions_never_panic() {
    let store = gibleed();
    let mut rng = Lcg(7);
    let sources = [
        "reference/cohortgenerator-eunomia/cohorts/3.json",
        "reference/cohortgenerator-eunomia/cohorts/4.json",
        "phenotypes-dev/cohorts/1073.json",
        "phenotypes-dev/cohorts/23.json",
        "phenotypes-dev/cohorts/533.json",
        "circe-tests/resources/cohortgeneration/allCriteria/allCriteriaExpression.json",
    ];
    let (mut ran, mut rejected) = (0, 0);
    for src in sources {
        let base: Value = serde_json::from_str(&read(&data(src))).unwrap();
        let n = count_nodes(&base);
        for _ in 0..60 {
            let mut v = base.clone();
            for _ in 0..1 + rng.below(3) {
                let mut t = rng.below(n);
                mutate(&mut v, &mut t, &mut rng);
            }
            let json = v.to_string();
            match qiao_cohort::parse(&json) {
                Err(_) => rejected += 1,
                Ok(def) => match Prepared::new(&def, store) {
                    Err(_) => rejected += 1,
                    Ok(p) => {
                        let mut c = Counter::default();
                        let _ = p.run(store, &mut c);
                        ran += 1;
                    }
                },
            }
        }
    }
    assert!(ran > 50 && rejected > 50, "ran {ran}, rejected {rejected}");
}

#[test]
fn garbage_text_is_an_error_not_a_panic() {
    for s in [
        "",
        "null",
        "[]",
        "{\"PrimaryCriteria\": 5}",
        "{\"ConceptSets\": [{}]}",
        "\u{0}",
        "{\"a\":",
    ] {
        assert!(qiao_cohort::parse(s).is_err(), "{s:?}");
    }
}
