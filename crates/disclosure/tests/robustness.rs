//! No panics on any input, and the release rules hold for every count.

use proptest::prelude::*;
use qiao_disclosure::{
    Breakdown, Discloser, DpMechanism, DpPolicy, DpThresholdBasis, ObfuscationParams,
    PersonSetDigest, Policy, QueryContext, QueryLedger, Released, SiteSecret, SuppressionBasis,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn secret() -> SiteSecret {
    SiteSecret::from_bytes(&[3u8; 32]).unwrap()
}

#[test]
fn short_secret_is_refused() {
    assert!(SiteSecret::from_bytes(&[0u8; 31]).is_err());
    assert_eq!(format!("{:?}", secret()), "SiteSecret(<redacted>)");
}

#[test]
fn weaker_than_shrine_is_refused() {
    for o in [
        ObfuscationParams {
            bin: 4,
            ..ObfuscationParams::default()
        },
        ObfuscationParams {
            sigma: 6.0,
            ..ObfuscationParams::default()
        },
        ObfuscationParams {
            clamp: 9.0,
            ..ObfuscationParams::default()
        },
        ObfuscationParams {
            sigma: f64::NAN,
            ..ObfuscationParams::default()
        },
        ObfuscationParams {
            clamp: f64::INFINITY,
            ..ObfuscationParams::default()
        },
    ] {
        let p = Policy {
            obfuscation: Some(o),
            ..Policy::default()
        };
        assert!(Discloser::new(p, secret()).is_err());
    }
    let p = Policy {
        min_cell_count: 0,
        ..Policy::default()
    };
    assert!(Discloser::new(p, secret()).is_err());
}

#[test]
fn policy_json_defaults_and_unknown_fields() {
    let p: Policy = serde_json::from_str("{}").unwrap();
    assert_eq!(p, Policy::default());
    assert!(serde_json::from_str::<Policy>(r#"{"min_cel_count": 3}"#).is_err());
    let p: Policy = serde_json::from_str(
        r#"{"min_cell_count": 11, "obfuscation": null,
            "dp": {"mechanism": {"kind": "laplace", "epsilon": 0.5}, "epsilon_budget": 5}}"#,
    )
    .unwrap();
    assert_eq!(p.min_cell_count, 11);
    assert!(p.obfuscation.is_none());
    assert!(Discloser::new(p.clone(), secret()).is_ok());
    let back: Policy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
}

#[test]
fn released_serialises_with_its_rule() {
    let site = Discloser::new(Policy::default(), secret()).unwrap();
    let r = site.release_count(&site.digest(0..3));
    assert_eq!(
        serde_json::to_string(&r).unwrap(),
        r#"{"kind":"suppressed","threshold":10,"basis":"true_count"}"#
    );
    let r = site.release_count(&site.digest(0..100));
    let j = serde_json::to_value(&r).unwrap();
    assert_eq!(j["kind"], "obfuscated");
    assert_eq!(j["bin"], 5);
    assert_eq!(j["sigma"], 6.5);
    assert_eq!(j["clamp"], 10.0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Threshold on the true count; obfuscated values are multiples of the bin, never below
    /// the threshold, within max_error of the truth; zero is hidden.
    #[test]
    fn count_release_rules(n in 0u64..3000, threshold in 1u64..40, start in any::<i64>()) {
        let site = Discloser::new(Policy { min_cell_count: threshold, ..Policy::default() }, secret()).unwrap();
        let start = start / 2;
        let d = site.digest(start..start + n as i64);
        let r = site.release_count(&d);
        if n < threshold {
            prop_assert_eq!(r.clone(), Released::Suppressed { threshold, basis: SuppressionBasis::TrueCount });
            prop_assert_eq!(r.to_string(), format!("< {threshold}"));
        } else {
            let Released::Obfuscated { value, bin, floor, max_error, .. } = r.clone() else {
                panic!("{r:?}")
            };
            prop_assert_eq!(value % bin, 0);
            prop_assert!(value >= threshold && value >= floor);
            let (lo, hi) = r.bounds();
            prop_assert!(lo <= n && Some(n) <= hi, "{n} outside {lo}..{hi:?}");
            prop_assert!(value.abs_diff(n) <= max_error || value == floor);
        }
    }

    /// Any JSON either fails to parse, fails to validate, or yields a working site.
    #[test]
    fn arbitrary_policies_never_panic(
        t in any::<u64>(), bin in any::<u64>(), sigma in any::<f64>(), clamp in any::<f64>(),
        eps in any::<f64>(), delta in any::<f64>(), budget in any::<f64>(), sens in any::<u32>(),
        gaussian in any::<bool>(), n in 0u64..200,
    ) {
        let mechanism = if gaussian {
            DpMechanism::Gaussian { epsilon: eps, delta }
        } else {
            DpMechanism::Laplace { epsilon: eps }
        };
        let policy = Policy {
            min_cell_count: t,
            obfuscation: Some(ObfuscationParams { bin, sigma, clamp }),
            dp: Some(DpPolicy {
                mechanism, epsilon_budget: budget, delta_budget: delta, sensitivity: sens,
                threshold_basis: DpThresholdBasis::NoisyCount,
            }),
            ..Policy::default()
        };
        if let Ok(site) = Discloser::new(policy, secret()) {
            let d = site.digest(0..n as i64);
            let _ = site.release_count(&d);
            let mut ledger = QueryLedger::new();
            let ctx = QueryContext { user: "u", project: "p", now_unix_secs: 0 };
            let _ = site.answer_count(&mut ledger, &ctx, &d, &mut ChaCha20Rng::seed_from_u64(n));
        }
    }

    /// Any breakdown shape, any time sequence: a result or a refusal, never a panic.
    #[test]
    fn arbitrary_breakdowns_and_times_never_panic(
        rows in proptest::collection::vec(proptest::collection::vec(0u64..50, 0..5), 0..5),
        extra in proptest::option::of(0usize..3),
        times in proptest::collection::vec(any::<u64>(), 1..30),
        dp in any::<bool>(),
    ) {
        let policy = Policy {
            dp: dp.then_some(DpPolicy {
                mechanism: DpMechanism::Laplace { epsilon: 0.5 },
                epsilon_budget: 3.0, delta_budget: 0.0, sensitivity: 1,
                threshold_basis: DpThresholdBasis::TrueCount,
            }),
            ..Policy::default()
        };
        let site = Discloser::new(policy, secret()).unwrap();
        let mut next = 0i64;
        let cells: Vec<Vec<PersonSetDigest>> = rows.iter().map(|r| r.iter().map(|&n| {
            let d = site.digest(next..next + n as i64);
            next += n as i64;
            d
        }).collect()).collect();
        let mut b = match Breakdown::from_cells(cells.clone()) {
            Ok(b) => b,
            Err(_) => Breakdown {
                cells,
                row_totals: vec![],
                col_totals: vec![],
                total: PersonSetDigest::EMPTY,
            },
        };
        if let Some(k) = extra {
            // Break the margins.
            b.row_totals.truncate(k);
        }
        let mut ledger = QueryLedger::new();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for &t in &times {
            let ctx = QueryContext { user: "u", project: "p", now_unix_secs: t };
            let _ = site.release_breakdown(&b);
            let _ = site.answer_breakdown(&mut ledger, &ctx, &b, &mut rng);
            let _ = site.answer_count(&mut ledger, &ctx, &b.total, &mut rng);
        }
        let policy = site.policy().clone();
        ledger.prune_all(&policy, times[0]);
        let s = serde_json::to_string(&ledger).unwrap();
        let back: QueryLedger = serde_json::from_str(&s).unwrap();
        prop_assert_eq!(back, ledger);
    }

    /// DP answers: the released value is never below the threshold (true-count basis), and
    /// a true count below it is never released.
    #[test]
    fn dp_release_rules(n in 0u64..200, seed in any::<u64>(), gaussian in any::<bool>()) {
        let mechanism = if gaussian {
            DpMechanism::Gaussian { epsilon: 0.5, delta: 1e-6 }
        } else {
            DpMechanism::Laplace { epsilon: 0.5 }
        };
        let site = Discloser::new(Policy {
            dp: Some(DpPolicy {
                mechanism, epsilon_budget: 10.0, delta_budget: 1e-4, sensitivity: 1,
                threshold_basis: DpThresholdBasis::TrueCount,
            }),
            ..Policy::default()
        }, secret()).unwrap();
        let mut ledger = QueryLedger::new();
        let ctx = QueryContext { user: "u", project: "p", now_unix_secs: 0 };
        let r = site.answer_count(&mut ledger, &ctx, &site.digest(0..n as i64),
            &mut ChaCha20Rng::seed_from_u64(seed)).unwrap();
        if n < 10 {
            prop_assert!(r.is_suppressed());
        } else {
            prop_assert!(r.point().unwrap() >= 10);
        }
    }
}

#[test]
fn dp_breakdown_is_additive_and_closed() {
    let site = Discloser::new(
        Policy {
            dp: Some(DpPolicy {
                mechanism: DpMechanism::Laplace { epsilon: 0.5 },
                epsilon_budget: 100.0,
                delta_budget: 0.0,
                sensitivity: 1,
                threshold_basis: DpThresholdBasis::TrueCount,
            }),
            ..Policy::default()
        },
        secret(),
    )
    .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(77);
    let mut ledger = QueryLedger::new();
    let counts = [[3u64, 40, 55], [25, 0, 61], [70, 44, 12], [8, 90, 33]];
    let mut next = 0i64;
    let cells = counts
        .iter()
        .map(|r| {
            r.iter()
                .map(|&n| {
                    let d = site.digest(next..next + n as i64);
                    next += n as i64;
                    d
                })
                .collect()
        })
        .collect();
    let input = Breakdown::from_cells(cells).unwrap();
    for i in 0..10u64 {
        let ctx = QueryContext {
            user: "u",
            project: "p",
            now_unix_secs: 1_000_000 + 3600 * i,
        };
        let rel = site
            .answer_breakdown(&mut ledger, &ctx, &input, &mut rng)
            .unwrap();
        // Primary cells are never released.
        for (r, row) in counts.iter().enumerate() {
            for (c, &n) in row.iter().enumerate() {
                if n < 10 {
                    assert!(rel.cells[r][c].is_suppressed());
                }
            }
        }
        let pattern = rel.map(|_, v| v.is_suppressed());
        assert!(qiao_disclosure::computable_entries(&pattern)
            .unwrap()
            .is_empty());
        // Released rows whose cells are all shown add up to their shown total.
        for (r, row) in rel.cells.iter().enumerate() {
            if let (Some(t), true) = (
                rel.row_totals[r].point(),
                row.iter().all(|v| !v.is_suppressed()),
            ) {
                assert_eq!(row.iter().filter_map(Released::point).sum::<u64>(), t);
            }
        }
    }
    let (spent, _) = ledger.spent("u", "p");
    assert!((spent - 5.0).abs() < 1e-9, "{spent}");
}
