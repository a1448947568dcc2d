//! `Discloser::under_floors`: the alliance's floors only ever tighten a site's policy, and a
//! site that cannot meet them says why.

use qiao_disclosure::{Discloser, FloorsUnmet, Policy, ReleaseMode, SiteSecret};

fn site(policy: Policy) -> Discloser {
    Discloser::new(policy, SiteSecret::from_bytes(&[7u8; 32]).unwrap()).unwrap()
}

#[test]
fn floors_raise_threshold_and_sigma_and_never_lower_them() {
    let d = site(Policy::default()); // T = 10, σ = 6 (ρ = 1/72 per release)
                                     // Floors already met (T 10, ρ ≤ 0.02 i.e. σ ≥ 5): nothing changes.
    assert!(d.under_floors(10, Some(0.02)).unwrap().is_none());
    assert!(d.under_floors(1, None).unwrap().is_none());
    // Stricter floors: T 20, ρ ≤ 1/200 (σ ≥ 10).
    let f = d.under_floors(20, Some(0.005)).unwrap().expect("tightened");
    assert_eq!(f.policy().min_cell_count, 20);
    assert!((f.policy().dp.sigma - 10.0).abs() < 1e-9);
    assert!(f.policy().dp.rho_per_release() <= 0.005);
    // Budgets and everything else stay the site's.
    assert_eq!(f.policy().dp.user_rho, d.policy().dp.user_rho);
    assert_eq!(f.policy().rate_limit, d.policy().rate_limit);
    // A stricter site keeps its own values.
    let mut strict = Policy {
        min_cell_count: 30,
        ..Policy::default()
    };
    strict.dp.sigma = 12.0;
    let s = site(strict);
    assert!(s.under_floors(20, Some(0.005)).unwrap().is_none());
    let only_t = s.under_floors(40, Some(0.005)).unwrap().unwrap();
    assert_eq!(only_t.policy().min_cell_count, 40);
    assert_eq!(only_t.policy().dp.sigma, 12.0);
}

#[test]
fn sites_without_a_bounded_loss_or_range_refuse() {
    for mode in [ReleaseMode::Shrine, ReleaseMode::Exact] {
        let d = site(Policy {
            release: mode,
            ..Policy::default()
        });
        let e = d.under_floors(10, Some(0.02)).unwrap_err();
        assert!(matches!(e, FloorsUnmet::Unbounded { .. }), "{e}");
        assert!(e.to_string().contains("no bounded loss"), "{e}");
        // Without a limit on the loss, only the threshold applies.
        let t = d.under_floors(15, None).unwrap().unwrap();
        assert_eq!(t.policy().min_cell_count, 15);
    }
    let d = site(Policy::default());
    // σ·entries_bound beyond the sampler's range.
    assert!(matches!(
        d.under_floors(10, Some(1e-14)).unwrap_err(),
        FloorsUnmet::OutOfRange(_)
    ));
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            d.under_floors(10, Some(bad)).unwrap_err(),
            FloorsUnmet::Invalid(_)
        ));
    }
    assert!(matches!(
        d.under_floors(0, None).unwrap_err(),
        FloorsUnmet::Invalid(_)
    ));
}
