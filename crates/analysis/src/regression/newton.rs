//! The coordinator: Newton–Raphson over the sites' summed [`SiteSums`] until the log-likelihood
//! changes by less than 1e-8 (at most 25 iterations), then Wald statistics from the summed
//! information matrix.

use serde::{Deserialize, Serialize};

use super::linalg::{cholesky, cholesky_inverse, cholesky_solve};
use super::site::{SiteData, SiteSums};
use super::Model;
use crate::survival::Z_95;

/// Stop when |Δ loglik| is below this.
pub const TOLERANCE: f64 = 1e-8;
/// At most this many Newton steps.
pub const MAX_ITERATIONS: u32 = 25;

/// Anything that answers a round: the sums at given coefficients (a site in process now; a
/// remote site through the job protocol later).
pub trait SumsSource {
    type Error: std::error::Error + Send + Sync + 'static;
    fn sums(&mut self, beta: &[f64]) -> Result<SiteSums, Self::Error>;
}

impl SumsSource for &SiteData {
    type Error = std::convert::Infallible;
    fn sums(&mut self, beta: &[f64]) -> Result<SiteSums, Self::Error> {
        Ok(SiteData::sums(self, beta))
    }
}

/// One fitted coefficient with its Wald statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coefficient {
    pub name: String,
    pub beta: f64,
    pub se: f64,
    pub z: f64,
    /// Two-sided, normal.
    pub p: f64,
    /// The 95% interval of beta.
    pub lower: f64,
    pub upper: f64,
    /// exp(beta): the odds ratio (logistic) or hazard ratio (Cox), and its interval.
    pub ratio: f64,
    pub ratio_lower: f64,
    pub ratio_upper: f64,
}

/// A fitted model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub model: Model,
    pub n: u64,
    pub events: u64,
    pub iterations: u32,
    pub converged: bool,
    pub loglik: f64,
    pub coefficients: Vec<Coefficient>,
}

/// Why a fit failed.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("no site to fit on")]
    NoSites,
    #[error("site {site}: {source}")]
    Site {
        site: usize,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("site {site} answered with sums of another shape or model")]
    Shape { site: usize },
    #[error("the information matrix is singular at iteration {iteration}: a covariate is constant or collinear with others, or the outcome is separated")]
    Singular { iteration: u32 },
    #[error("perfect separation: the covariates predict the outcome exactly (the log-likelihood reaches 0), so the estimates do not exist")]
    Separation,
}

/// Sums of every site at `beta`.
fn round<S: SumsSource>(model: Model, sites: &mut [S], beta: &[f64]) -> Result<SiteSums, FitError> {
    let p = beta.len();
    let mut total = SiteSums::zero(model, p);
    for (site, s) in sites.iter_mut().enumerate() {
        let sums = s.sums(beta).map_err(|e| FitError::Site {
            site,
            source: Box::new(e),
        })?;
        if sums.model != model || sums.gradient.len() != p || sums.hessian.len() != p * p {
            return Err(FitError::Shape { site });
        }
        total.add(&sums);
    }
    Ok(total)
}

/// Fits `model` (coefficients named `names`, in order) by Newton–Raphson from β = 0 over the
/// sites' sums. A step that lowers the log-likelihood is halved (at most 10 times per step).
pub fn fit<S: SumsSource>(
    model: Model,
    names: &[String],
    sites: &mut [S],
) -> Result<Fit, FitError> {
    if sites.is_empty() {
        return Err(FitError::NoSites);
    }
    let p = names.len();
    let mut beta = vec![0.0; p];
    let mut sums = round(model, sites, &beta)?;
    let mut iterations = 0u32;
    let mut converged = false;
    let neg = |h: &[f64]| h.iter().map(|v| -v).collect::<Vec<f64>>();
    while iterations < MAX_ITERATIONS {
        let l = cholesky(&neg(&sums.hessian), p).ok_or(FitError::Singular {
            iteration: iterations,
        })?;
        let step = cholesky_solve(&l, p, &sums.gradient);
        let mut next: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b + s).collect();
        let mut next_sums = round(model, sites, &next)?;
        let mut halvings = 0;
        while (next_sums.loglik.is_nan() || next_sums.loglik < sums.loglik) && halvings < 10 {
            next = beta.iter().zip(&next).map(|(b, n)| (b + n) / 2.0).collect();
            next_sums = round(model, sites, &next)?;
            halvings += 1;
        }
        iterations += 1;
        let change = (next_sums.loglik - sums.loglik).abs();
        beta = next;
        sums = next_sums;
        if change < TOLERANCE {
            converged = true;
            break;
        }
    }
    // statsmodels' check (every fitted probability equals the outcome), read from the sums:
    // only then does the logistic log-likelihood approach its supremum 0.
    if model == Model::Logistic && sums.loglik > -1e-6 {
        return Err(FitError::Separation);
    }
    let l = cholesky(&neg(&sums.hessian), p).ok_or(FitError::Singular {
        iteration: iterations,
    })?;
    let cov = cholesky_inverse(&l, p);
    let coefficients = names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let (b, se) = (beta[j], cov[j * p + j].sqrt());
            let z = b / se;
            let (lower, upper) = (b - Z_95 * se, b + Z_95 * se);
            Coefficient {
                name: name.clone(),
                beta: b,
                se,
                z,
                p: libm::erfc(z.abs() / std::f64::consts::SQRT_2),
                lower,
                upper,
                ratio: b.exp(),
                ratio_lower: lower.exp(),
                ratio_upper: upper.exp(),
            }
        })
        .collect();
    Ok(Fit {
        model,
        n: sums.n,
        events: sums.events,
        iterations,
        converged,
        loglik: sums.loglik,
        coefficients,
    })
}
