//! No panics on any input, and the release rules hold for every count.

use proptest::prelude::*;
use qiao_disclosure::{
    Breakdown, Discloser, DpPolicy, ObfuscationParams, PersonSetDigest, Policy, QueryContext,
    QueryLedger, Question, ReleaseMode, Released, SiteSecret, Statistic, SuppressionBasis,
};

fn q() -> Question {
    Question::of(b"q")
}

fn stat() -> Statistic {
    Statistic::person_count("n")
}

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
            obfuscation: o,
            ..Policy::shrine()
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
    assert_eq!(p.release, ReleaseMode::Dp);
    let p: Policy = serde_json::from_str(
        r#"{"release": "dp", "min_cell_count": 11,
            "dp": {"sigma": 8, "entries_bound": 5, "user_rho": 0.2}}"#,
    )
    .unwrap();
    assert_eq!(p.min_cell_count, 11);
    assert_eq!(p.dp.sigma, 8.0);
    assert_eq!(p.dp.organization_rho, DpPolicy::default().organization_rho);
    let e: Policy = serde_json::from_str(r#"{"release": "exact"}"#).unwrap();
    assert_eq!(e, Policy::exact(10));
    assert!(serde_json::from_str::<Policy>(r#"{"release": "none"}"#).is_err());
    assert!(serde_json::from_str::<Policy>(r#"{"dp": {"epsilon": 1}}"#).is_err());
    assert!(Discloser::new(p.clone(), secret()).is_ok());
    let back: Policy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
}

#[test]
fn released_serialises_with_its_rule() {
    let site = Discloser::new(Policy::shrine(), secret()).unwrap();
    let r = site.release_count(&q(), &stat(), &site.digest(0..3));
    assert_eq!(
        serde_json::to_string(&r).unwrap(),
        r#"{"kind":"suppressed","threshold":10,"basis":"true_count"}"#
    );
    let r = site.release_count(&q(), &stat(), &site.digest(0..100));
    let j = serde_json::to_value(&r).unwrap();
    assert_eq!(j["kind"], "obfuscated");
    assert_eq!(j["bin"], 5);
    assert_eq!(j["sigma"], 6.5);
    assert_eq!(j["clamp"], 10.0);
    let site = Discloser::new(Policy::default(), secret()).unwrap();
    let r = site.release_count(&q(), &stat(), &site.digest(0..100));
    let j = serde_json::to_value(&r).unwrap();
    assert_eq!(j["kind"], "dp");
    assert_eq!(j["threshold"], 10);
    assert!(j["sigma"].as_f64().unwrap() >= 6.0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Threshold on the true count; obfuscated values are multiples of the bin, never below
    /// the threshold, within max_error of the truth; zero is hidden.
    #[test]
    fn count_release_rules(n in 0u64..3000, threshold in 1u64..40, start in any::<i64>()) {
        let site = Discloser::new(Policy { min_cell_count: threshold, ..Policy::shrine() }, secret()).unwrap();
        let start = start / 2;
        let d = site.digest(start..start + n as i64);
        let r = site.release_count(&q(), &stat(), &d);
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

    /// Any settings either fail to validate or yield a working site.
    #[test]
    fn arbitrary_policies_never_panic(
        t in any::<u64>(), bin in any::<u64>(), sigma in any::<f64>(), clamp in any::<f64>(),
        dp_sigma in any::<f64>(), bound in any::<u32>(), rho in any::<f64>(), days in any::<u32>(),
        mode in 0u8..3, n in 0u64..200,
    ) {
        let policy = Policy {
            release: [ReleaseMode::Dp, ReleaseMode::Shrine, ReleaseMode::Exact][mode as usize],
            min_cell_count: t,
            obfuscation: ObfuscationParams { bin, sigma, clamp },
            dp: DpPolicy {
                sigma: dp_sigma, entries_bound: bound, period_days: days,
                user_rho: rho, organization_rho: rho, site_rho: rho,
            },
            ..Policy::default()
        };
        if let Ok(site) = Discloser::new(policy, secret()) {
            let d = site.digest(0..n as i64);
            let _ = site.release_count(&q(), &stat(), &d);
            let _ = site.release_value(&q(), &Statistic::clipped_rows("e", bound), &d, n * 3);
            let mut ledger = QueryLedger::new();
            let ctx = QueryContext { user: "u", organization: "o", project: "p", now_unix_secs: 0 };
            let _ = site.admit(&mut ledger, &ctx, &[stat()]);
        }
    }

    /// Any breakdown shape, any time sequence: a result or a refusal, never a panic.
    #[test]
    fn arbitrary_breakdowns_and_times_never_panic(
        rows in proptest::collection::vec(proptest::collection::vec(0u64..50, 0..5), 0..5),
        extra in proptest::option::of(0usize..3),
        times in proptest::collection::vec(any::<u64>(), 1..30),
        mode in 0u8..3,
    ) {
        let policy = Policy {
            release: [ReleaseMode::Dp, ReleaseMode::Shrine, ReleaseMode::Exact][mode as usize],
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
        for &t in &times {
            let ctx = QueryContext { user: "u", organization: "o", project: "p", now_unix_secs: t };
            if site.admit(&mut ledger, &ctx, &[stat()]).is_ok() {
                let _ = site.record_result(&mut ledger, &ctx, &b.total);
                let _ = site.release_breakdown(&q(), &b);
                let _ = site.release_count(&q(), &stat(), &b.total);
            }
        }
        let policy = site.policy().clone();
        ledger.prune_all(&policy, times[0]);
        let s = serde_json::to_string(&ledger).unwrap();
        let back: QueryLedger = serde_json::from_str(&s).unwrap();
        prop_assert_eq!(back, ledger);
    }

    /// DP answers: a number is shown iff its noisy value is at least the threshold; the same
    /// question and set always give the same answer; another question gives another draw.
    #[test]
    fn dp_release_rules(n in 0u64..200, start in -1_000_000i64..1_000_000, word in any::<u32>()) {
        let site = Discloser::new(Policy::default(), secret()).unwrap();
        let d = site.digest(start..start + n as i64);
        let question = Question::of(&word.to_le_bytes());
        let r = site.release_count(&question, &stat(), &d);
        let Released::Dp { value, threshold, sigma } = r.clone() else { panic!("{r:?}") };
        prop_assert_eq!(threshold, 10);
        prop_assert!((6.0..6.001).contains(&sigma));
        if let Some(v) = value {
            prop_assert!(v >= 10);
        }
        prop_assert_eq!(r, site.release_count(&question, &stat(), &d));
    }
}

/// The noise of the release mechanism: over many different questions, the released values
/// (thresholding aside) are the true count plus a discrete Gaussian with σ = 6: mean 0,
/// variance 36, P(|Z| ≤ 12) ≈ 0.954, symmetric.
#[test]
fn dp_noise_has_the_declared_distribution() {
    let site = Discloser::new(
        Policy {
            min_cell_count: 1,
            ..Policy::default()
        },
        secret(),
    )
    .unwrap();
    let d = site.digest(0..1000);
    let trials = 40_000;
    let zs: Vec<i64> = (0..trials)
        .map(|i: u32| {
            let r = site.release_count(&Question::of(&i.to_le_bytes()), &stat(), &d);
            r.point().unwrap() as i64 - 1000
        })
        .collect();
    let mean = zs.iter().sum::<i64>() as f64 / trials as f64;
    let var = zs.iter().map(|&z| (z * z) as f64).sum::<f64>() / trials as f64 - mean * mean;
    let within = zs.iter().filter(|z| z.abs() <= 12).count() as f64 / trials as f64;
    let pos = zs.iter().filter(|&&z| z > 0).count() as f64;
    let neg = zs.iter().filter(|&&z| z < 0).count() as f64;
    assert!(mean.abs() < 0.1, "{mean}");
    assert!((var - 36.0).abs() < 1.2, "{var}");
    assert!((within - 0.954).abs() < 0.01, "{within}");
    assert!((pos - neg).abs() / trials as f64 <= 0.015, "{pos} vs {neg}");
}

/// PRF keying: the noise depends on the key, the question, the statistic and the exact set.
#[test]
fn dp_noise_is_keyed() {
    let a = Discloser::new(Policy::default(), secret()).unwrap();
    let b = Discloser::new(
        Policy::default(),
        SiteSecret::from_bytes(&[4u8; 32]).unwrap(),
    )
    .unwrap();
    let mut differs = [0usize; 4];
    for i in 0..200i64 {
        let set = a.digest(i * 1000..i * 1000 + 500);
        let base = a.release_count(&q(), &stat(), &set);
        let other_key = b.release_count(&q(), &stat(), &b.digest(i * 1000..i * 1000 + 500));
        let other_q = a.release_count(&Question::of(b"q2"), &stat(), &set);
        let other_stat = a.release_count(&q(), &Statistic::person_count("m"), &set);
        // Same size, one person swapped.
        let swapped = a.digest((i * 1000 + 1)..(i * 1000 + 501));
        let other_set = a.release_count(&q(), &stat(), &swapped);
        for (k, r) in [other_key, other_q, other_stat, other_set]
            .iter()
            .enumerate()
        {
            if *r != base {
                differs[k] += 1;
            }
        }
    }
    // Independent σ = 6 draws coincide with probability ≈ 1/(2σ√π) ≈ 0.047.
    for (k, d) in differs.iter().enumerate() {
        assert!(*d >= 175, "keying {k}: only {d} of 200 differ");
    }
}

/// Clipping: `entries` is released on the clipped row count with noise scaled to the bound.
#[test]
fn clipped_entries_noise_scales_with_the_bound() {
    let site = Discloser::new(Policy::default(), secret()).unwrap();
    let d = site.digest(0..100);
    let r = site.release_value(&q(), &Statistic::clipped_rows("entries", 10), &d, 700);
    let Released::Dp { sigma, .. } = r else {
        panic!("{r:?}")
    };
    assert!((sigma - 60.0).abs() < 0.01, "{sigma}");
    // It costs what one person count costs (ρ = 1/72).
    let one = site.cost(&[stat()]);
    assert!((site.cost(&[Statistic::clipped_rows("entries", 10)]) - one).abs() < 1e-15);
    assert!((one - 1.0 / 72.0).abs() < 1e-15);
}

#[test]
fn dp_breakdown_margins_add_up_and_funnels_never_grow() {
    let site = Discloser::new(
        Policy {
            min_cell_count: 1,
            ..Policy::default()
        },
        secret(),
    )
    .unwrap();
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
    let rel = site.release_breakdown(&q(), &input).unwrap();
    let v = |r: &Released| r.point().unwrap_or(0);
    for (r, row) in rel.cells.iter().enumerate() {
        assert_eq!(row.iter().map(v).sum::<u64>(), v(&rel.row_totals[r]));
    }
    for c in 0..3 {
        assert_eq!(
            rel.cells.iter().map(|row| v(&row[c])).sum::<u64>(),
            v(&rel.col_totals[c])
        );
    }
    assert_eq!(rel.row_totals.iter().map(v).sum::<u64>(), v(&rel.total));
    // The total's σ is the cells' σ times √12.
    let Released::Dp { sigma, .. } = rel.total else {
        panic!()
    };
    assert!((sigma - 6.0 * 12f64.sqrt()).abs() < 0.01);

    // Funnels: nested sets with small steps often invert under independent noise; the
    // released funnel never grows.
    for i in 0..200i64 {
        let base = i * 10_000;
        let lines: Vec<(Statistic, PersonSetDigest)> = [300i64, 298, 297, 290, 289]
            .iter()
            .enumerate()
            .map(|(k, &n)| {
                (
                    Statistic::person_count(format!("line {k}")),
                    site.digest(base..base + n),
                )
            })
            .collect();
        let out = site.release_funnel(&Question::of(&i.to_le_bytes()), &lines);
        let vals: Vec<u64> = out.iter().map(|r| r.point().unwrap_or(0)).collect();
        assert!(vals.windows(2).all(|w| w[0] >= w[1]), "{vals:?}");
    }
}
