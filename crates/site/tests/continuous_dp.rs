//! Continuous FeatureExtraction covariates under differential privacy at a site: released as
//! clipped count, Σk, Σk² and histogram with their declared sensitivities (see
//! `qiao_analysis::network::continuous`), the ledger charged exactly the declared ρ, and the
//! hub's pooled statistics near the site's exact ones.

mod common;

use common::*;
use qiao_analysis::characterization::{self, Settings};
use qiao_analysis::network::characterization::Characterization;
use qiao_analysis::network::Analysis;
use qiao_protocol::{CharacterizationSpec, Outcome, Payload, QueryType, Released};

fn dp_discloser() -> qiao_disclosure::Discloser {
    let mut policy = qiao_disclosure::Policy::default();
    policy.rate_limit.max_queries = 1000;
    policy.dp.user_rho = 10.0;
    policy.dp.organization_rho = 10.0;
    policy.dp.site_rho = 100.0;
    let secret = qiao_disclosure::SiteSecret::from_bytes(&[9u8; 32]).unwrap();
    qiao_disclosure::Discloser::new(policy, secret).unwrap()
}

#[test]
fn continuous_covariates_are_released_clipped_with_their_declared_rho() {
    let discloser = dp_discloser();
    let (sigma, bound) = (
        discloser.policy().dp.sigma,
        discloser.policy().dp.entries_bound,
    );
    assert_eq!((sigma, bound), (6.0, 10), "the default policy");
    let mut ledger = qiao_disclosure::QueryLedger::new();
    let site_id = qiao_protocol::SiteId::new("hospital-a").unwrap();
    // Age (2), prior observation days (8), Charlson (901), and one binary covariate (male).
    let spec = CharacterizationSpec {
        comparator: None,
        analyses: vec![1, 2, 8, 901],
        covariate_ids: vec![8507001, 1002, 1008, 1901],
    };
    let j = job(
        QueryType::Characterization(spec.clone()),
        definition(1),
        "carol",
    );
    let mut cx = context(&site_id, &discloser, &mut ledger);
    let result = qiao_site::execute(&j, &mut cx).result;
    let Outcome::Done {
        payload: Payload::Characterization(r),
    } = &result.outcome
    else {
        panic!("{:?}", result.outcome)
    };
    // Entries, subjects, one binary covariate, and 3 continuous covariates × (count, Σk, Σk²,
    // one histogram family): 2 + 1 + 12 = 15 releases of ρ = 1/(2σ²) each.
    let dp = r.disclosure.dp.as_ref().expect("DP declared");
    let rho = 15.0 / (2.0 * sigma * sigma);
    assert!((dp.rho_spent - rho).abs() < 1e-12, "{dp:?}");
    assert!(
        (dp.user_remaining_rho.unwrap() - (10.0 - rho)).abs() < 1e-9,
        "{dp:?}"
    );
    assert_eq!(r.covariates.len(), 1);
    assert_eq!(r.continuous.len(), 3);
    let b = f64::from(bound);
    let sigma_of = |x: &Released| match x {
        Released::Dp { sigma, .. } => *sigma,
        other => panic!("not a DP release: {other:?}"),
    };
    // (covariate, bin width, bins, largest bin index).
    for (c, (id, bin, bins, kmax)) in r.continuous.iter().zip([
        (1002, 1, 121, 120.0),
        (1008, 366, 100, 99.0),
        (1901, 1, 34, 33.0),
    ]) {
        assert_eq!(c.covariate_id, id);
        let m = c.target.as_ref().expect("target moments");
        assert_eq!(m.bin, bin, "{id}");
        assert_eq!(m.histogram.len(), bins, "{id}");
        assert!((sigma_of(&m.count) - sigma * b).abs() < 0.01, "{id}");
        assert!((sigma_of(&m.sum) - sigma * b * kmax).abs() < 0.01, "{id}");
        assert!(
            (sigma_of(&m.sum_squares) - sigma * b * kmax * kmax).abs() < 1.0,
            "{id}"
        );
        for x in &m.histogram {
            assert!((sigma_of(x) - sigma * b).abs() < 0.01, "{id}");
        }
    }

    // The hub's pooled statistics from the noisy sums, near the site's exact ones.
    let p = common::definition_path(1);
    let rows = qiao_analysis::cohorts::cohort_rows(
        store(),
        &p.display().to_string(),
        &std::fs::read_to_string(&p).unwrap(),
    )
    .unwrap();
    let exact = characterization::characterize(
        store(),
        &rows,
        &Settings {
            analysis_ids: vec![2, 8, 901],
            ..Settings::default()
        },
    )
    .unwrap();
    let n = exact.population.entries as f64;
    let pooled = Characterization::pool(&spec, &[r]);
    for (id, mean_noise) in [
        // σ of the mean ≈ σ·b·kmax·bin / n (the sum's noise), plus the entries' noise.
        (1002, sigma * b * 120.0 / n),
        (1008, sigma * b * 99.0 * 366.0 / n),
        (1901, sigma * b * 33.0 / n),
    ] {
        let c = pooled
            .continuous
            .iter()
            .find(|c| c.covariate_id == id)
            .unwrap();
        let m = c.target.as_ref().unwrap();
        let range = m.range.as_ref().expect("the declared range is stated");
        assert!(range.max > 0);
        let d = m.derived.as_ref().expect("derived statistics");
        let truth = exact
            .continuous
            .iter()
            .find(|c| c.covariate_id == id)
            .unwrap()
            .stats;
        let mean = d.mean.unwrap();
        let tol = 5.0 * mean_noise + 0.05 * truth.mean.abs() + range.bin as f64;
        assert!(
            (mean - truth.mean).abs() <= tol,
            "{id}: mean {mean} vs {} (±{tol})",
            truth.mean
        );
        assert!(
            d.median.is_some() && d.p10.is_some() && d.max.is_some(),
            "{id}: {d:?}"
        );
    }
}

/// A continuous covariate whose sums would need more noise than the sampler takes is refused
/// by name before anything is charged (age's Σk² has Δ = 10 × 120² = 144,000; at σ = 7 the noise
/// would be 1,008,000 > 10⁶).
#[test]
fn a_continuous_covariate_beyond_the_sampler_is_refused_by_name() {
    let mut policy = qiao_disclosure::Policy::default();
    policy.dp.sigma = 7.0;
    policy.rate_limit.max_queries = 1000;
    let secret = qiao_disclosure::SiteSecret::from_bytes(&[9u8; 32]).unwrap();
    let discloser = qiao_disclosure::Discloser::new(policy, secret).unwrap();
    let mut ledger = qiao_disclosure::QueryLedger::new();
    let site_id = qiao_protocol::SiteId::new("hospital-a").unwrap();
    let spec = CharacterizationSpec {
        comparator: None,
        analyses: vec![2],
        covariate_ids: vec![1002],
    };
    let j = job(QueryType::Characterization(spec), definition(1), "carol");
    let mut cx = context(&site_id, &discloser, &mut ledger);
    let outcome = qiao_site::execute(&j, &mut cx).result.outcome;
    assert!(
        matches!(outcome, Outcome::Refused { .. } | Outcome::Failed { .. }),
        "{outcome:?}"
    );
}
