//! Logistic and Cox proportional-hazards regression fitted by Newton–Raphson from per-site sums.
//!
//! Each site turns its followed persons and covariates ([`design`]) into a [`SiteData`], which
//! refuses by the site's [`Guard`] (DataSHIELD-style) before it computes anything, and then
//! answers each round with [`SiteSums`] — log-likelihood, gradient, Hessian, n, events — for the
//! coefficients sent. The coordinator ([`fit`]) sums the sites' answers and iterates. Logistic:
//! one model over all sites (equal to the pooled fit). Cox: Efron's ties, each site its own
//! stratum (its own baseline hazard), equal to a stratified fit on the union.

pub mod design;
mod linalg;
mod newton;
pub mod private;
mod site;

use serde::{Deserialize, Serialize};

pub use newton::{
    fit, ClipRange, Coefficient, Fit, FitError, FitPrivacy, Newton, PrivateRounds, Step,
    SumsSource, MAX_HALVINGS, MAX_ITERATIONS, TOLERANCE,
};
pub use site::{Guard, Refusal, Round, SiteData, SiteSums};

/// Which regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// The outcome within the time at risk (yes/no), with an intercept.
    Logistic,
    /// Time to the outcome, Efron ties, stratified by site.
    Cox,
}

impl Model {
    /// The names of the coefficients for covariates `names` (logistic: the intercept first).
    pub fn coefficient_names(self, names: &[String]) -> Vec<String> {
        match self {
            Model::Logistic => std::iter::once("(intercept)".to_string())
                .chain(names.iter().cloned())
                .collect(),
            Model::Cox => names.to_vec(),
        }
    }
}

impl std::str::FromStr for Model {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "logistic" => Ok(Model::Logistic),
            "cox" => Ok(Model::Cox),
            _ => Err(format!("model {s:?}: expected logistic or cox")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic data set: x1 continuous, x2 binary, outcome depending on both.
    fn data(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<i32>, Vec<bool>) {
        let mut s = seed;
        let mut next = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut x1, mut x2, mut t, mut e) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            let a = next() * 4.0 - 2.0;
            let b = (next() < 0.4) as u8 as f64;
            let risk = (0.7 * a - 0.5 * b).exp();
            t.push((next() * 50.0 / risk) as i32);
            e.push(next() < 0.7);
            x1.push(a);
            x2.push(b);
        }
        (vec![x1, x2], t, e)
    }

    #[test]
    fn federated_equals_pooled_and_guards_refuse() {
        let names = vec!["x1".to_string(), "x2".to_string()];
        let guard = Guard::new(5);
        let parts: Vec<_> = (0..3).map(|k| data(200 + 50 * k, k as u64 + 1)).collect();
        let mut pooled = (vec![vec![], vec![]], vec![], vec![]);
        for (c, t, e) in &parts {
            pooled.0[0].extend(&c[0]);
            pooled.0[1].extend(&c[1]);
            pooled.1.extend(t);
            pooled.2.extend(e);
        }
        let model = Model::Logistic;
        let sites: Vec<SiteData> = parts
            .iter()
            .map(|(c, t, e)| SiteData::new(model, &names, c, t, e, &guard).unwrap())
            .collect();
        let one = SiteData::new(model, &names, &pooled.0, &pooled.1, &pooled.2, &guard).unwrap();
        let coef = model.coefficient_names(&names);
        let fed = fit(model, &coef, &mut sites.iter().collect::<Vec<_>>()).unwrap();
        let all = fit(model, &coef, &mut [&one]).unwrap();
        assert!(fed.converged && fed.iterations <= 10, "{fed:?}");
        assert_eq!((fed.n, fed.events), (750, all.events));
        for (a, b) in fed.coefficients.iter().zip(&all.coefficients) {
            assert!(
                (a.beta - b.beta).abs() < 1e-6 && (a.se - b.se).abs() < 1e-6,
                "{fed:?} {all:?}"
            );
        }
        // Cox stratified by site differs from the pooled (one stratum) Cox, but both converge.
        let cox_sites: Vec<SiteData> = parts
            .iter()
            .map(|(c, t, e)| SiteData::new(Model::Cox, &names, c, t, e, &guard).unwrap())
            .collect();
        let cox = fit(
            Model::Cox,
            &names,
            &mut cox_sites.iter().collect::<Vec<_>>(),
        )
        .unwrap();
        assert!(cox.converged);
        assert!(
            cox.coefficients[0].beta > 0.5 && cox.coefficients[1].beta < -0.3,
            "{cox:?}"
        );

        // Guards: too many parameters, an outcome level, a binary covariate level.
        let (c, t, e) = &parts[0];
        let few: Vec<Vec<f64>> = c.iter().map(|v| v[..8].to_vec()).collect();
        assert_eq!(
            SiteData::new(model, &names, &few, &t[..8], &e[..8], &Guard::new(0)).unwrap_err(),
            Refusal::TooManyParameters
        );
        let no_events = vec![false; e.len()];
        assert!(matches!(
            SiteData::new(model, &names, c, t, &no_events, &guard).unwrap_err(),
            Refusal::Outcome(_)
        ));
        let mut rare = c.clone();
        rare[1] = (0..e.len()).map(|i| (i < 4) as u8 as f64).collect();
        assert_eq!(
            SiteData::new(model, &names, &rare, t, e, &guard).unwrap_err(),
            Refusal::Covariate("x2".into())
        );
        rare[1][4] = 1.0;
        assert!(SiteData::new(model, &names, &rare, t, e, &guard).is_ok());
    }

    #[test]
    fn round_messages_are_json() {
        let (c, t, e) = data(100, 3);
        let names = vec!["x1".to_string(), "x2".to_string()];
        let site = SiteData::new(Model::Cox, &names, &c, &t, &e, &Guard::new(5)).unwrap();
        let round = Round {
            model: Model::Cox,
            iteration: 0,
            coefficients: vec![0.0, 0.0],
        };
        let round: Round = serde_json::from_str(&serde_json::to_string(&round).unwrap()).unwrap();
        let sums = site.sums(&round.coefficients);
        let text = serde_json::to_string(&sums).unwrap();
        assert!(
            text.starts_with(r#"{"model":"cox","n":100,"events":"#),
            "{text}"
        );
        let back: SiteSums = serde_json::from_str(&text).unwrap();
        assert_eq!(back.hessian.len(), 4);
        assert!((back.loglik - sums.loglik).abs() <= 1e-12 * sums.loglik.abs());
    }

    #[test]
    fn perfect_separation_is_an_error_not_an_estimate() {
        let names = vec!["x".to_string()];
        let x: Vec<f64> = (0..60).map(|i| i as f64 / 10.0).collect();
        let y: Vec<bool> = x.iter().map(|&v| v > 3.0).collect();
        let t = vec![1; 60];
        let site = SiteData::new(Model::Logistic, &names, &[x], &t, &y, &Guard::new(5)).unwrap();
        let err = fit(
            Model::Logistic,
            &Model::Logistic.coefficient_names(&names),
            &mut [&site],
        )
        .unwrap_err();
        assert!(
            matches!(err, FitError::Separation | FitError::Singular { .. }),
            "{err}"
        );
    }

    /// A site that answers `rounds` rounds, then stops.
    struct Flaky<'a> {
        site: &'a SiteData,
        rounds: u32,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("site stopped answering")]
    struct Stopped;

    impl SumsSource for Flaky<'_> {
        type Error = Stopped;
        fn sums(&mut self, beta: &[f64]) -> Result<SiteSums, Stopped> {
            if self.rounds == 0 {
                return Err(Stopped);
            }
            self.rounds -= 1;
            Ok(self.site.sums(beta))
        }
    }

    #[test]
    fn a_site_that_stops_answering_fails_the_fit_naming_it() {
        let names = vec!["x1".to_string(), "x2".to_string()];
        let (c, t, e) = data(300, 7);
        let site = SiteData::new(Model::Cox, &names, &c, &t, &e, &Guard::new(5)).unwrap();
        let mut sites = [
            Flaky {
                site: &site,
                rounds: 99,
            },
            Flaky {
                site: &site,
                rounds: 2,
            },
        ];
        let err = fit(Model::Cox, &names, &mut sites).unwrap_err();
        assert!(matches!(err, FitError::Site { site: 1, .. }), "{err}");
        assert_eq!(err.to_string(), "site 1: site stopped answering");
        assert!(matches!(
            fit(Model::Cox, &names, &mut [] as &mut [&SiteData]),
            Err(FitError::NoSites)
        ));
    }
}
