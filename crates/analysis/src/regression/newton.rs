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
/// The steps are [`Newton`]'s, the same the hub's multi-round runs take one round at a time.
pub fn fit<S: SumsSource>(
    model: Model,
    names: &[String],
    sites: &mut [S],
) -> Result<Fit, FitError> {
    if sites.is_empty() {
        return Err(FitError::NoSites);
    }
    let mut newton = Newton::new(model, names.len());
    let mut beta = newton.next_coefficients().to_vec();
    loop {
        let sums = round(model, sites, &beta)?;
        match newton.advance(&sums)? {
            Step::Evaluate(next) => beta = next,
            Step::Done => return newton.result(names),
        }
    }
}

/// Newton–Raphson as a state machine, one evaluation (one round of every site's sums) at a
/// time: [`Newton::next_coefficients`] says where the sites evaluate next, [`Newton::advance`]
/// takes the summed answer. Serializable, so a coordinator can keep it between rounds (the
/// hub's multi-round runs); [`fit`] drives it in process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Newton {
    pub model: Model,
    /// Where the sites evaluate next.
    pub pending: Vec<f64>,
    /// The accepted coefficients and their summed sums (none before the first answer).
    pub current: Option<(Vec<f64>, SiteSums)>,
    /// Newton steps taken.
    pub iterations: u32,
    /// Halvings of the pending step.
    pub halvings: u32,
    /// Whether |Δ loglik| fell below [`TOLERANCE`].
    pub converged: bool,
    /// Whether the fit has ended (converged, or [`MAX_ITERATIONS`] steps).
    pub done: bool,
}

/// What [`Newton::advance`] asks for next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The sites' sums at these coefficients.
    Evaluate(Vec<f64>),
    /// Nothing: the fit has ended; [`Newton::result`] gives it.
    Done,
}

impl Newton {
    /// A fit of `p` coefficients from β = 0.
    pub fn new(model: Model, p: usize) -> Newton {
        Newton {
            model,
            pending: vec![0.0; p],
            current: None,
            iterations: 0,
            halvings: 0,
            converged: false,
            done: false,
        }
    }

    /// The coefficients the next round evaluates.
    pub fn next_coefficients(&self) -> &[f64] {
        &self.pending
    }

    /// Takes the sites' summed sums at [`Self::next_coefficients`] and decides the next step.
    pub fn advance(&mut self, sums: &SiteSums) -> Result<Step, FitError> {
        let p = self.pending.len();
        if self.done
            || sums.model != self.model
            || sums.gradient.len() != p
            || sums.hessian.len() != p * p
        {
            return Err(FitError::Shape { site: 0 });
        }
        let Some((beta, cur)) = &self.current else {
            self.current = Some((self.pending.clone(), sums.clone()));
            return self.step();
        };
        if (sums.loglik.is_nan() || sums.loglik < cur.loglik) && self.halvings < MAX_HALVINGS {
            self.pending = beta
                .iter()
                .zip(&self.pending)
                .map(|(b, n)| (b + n) / 2.0)
                .collect();
            self.halvings += 1;
            return Ok(Step::Evaluate(self.pending.clone()));
        }
        self.iterations += 1;
        let change = (sums.loglik - cur.loglik).abs();
        self.current = Some((self.pending.clone(), sums.clone()));
        if change < TOLERANCE {
            self.converged = true;
            self.done = true;
            return Ok(Step::Done);
        }
        if self.iterations >= MAX_ITERATIONS {
            self.done = true;
            return Ok(Step::Done);
        }
        self.step()
    }

    /// The Newton step from the current coefficients.
    fn step(&mut self) -> Result<Step, FitError> {
        let (beta, sums) = self.current.as_ref().ok_or(FitError::NoSites)?;
        let p = beta.len();
        let l = cholesky(&negated(&sums.hessian), p).ok_or(FitError::Singular {
            iteration: self.iterations,
        })?;
        let step = cholesky_solve(&l, p, &sums.gradient);
        self.pending = beta.iter().zip(&step).map(|(b, s)| b + s).collect();
        self.halvings = 0;
        Ok(Step::Evaluate(self.pending.clone()))
    }

    /// The fitted model, once [`Step::Done`]: the coefficients (named `names`) with their Wald
    /// statistics from the summed information matrix.
    pub fn result(&self, names: &[String]) -> Result<Fit, FitError> {
        let (beta, sums) = self.current.as_ref().ok_or(FitError::NoSites)?;
        let p = beta.len();
        // statsmodels' check (every fitted probability equals the outcome), read from the sums:
        // only then does the logistic log-likelihood approach its supremum 0.
        if self.model == Model::Logistic && sums.loglik > -1e-6 {
            return Err(FitError::Separation);
        }
        let l = cholesky(&negated(&sums.hessian), p).ok_or(FitError::Singular {
            iteration: self.iterations,
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
            model: self.model,
            n: sums.n,
            events: sums.events,
            iterations: self.iterations,
            converged: self.converged,
            loglik: sums.loglik,
            coefficients,
        })
    }
}

/// At most this many halvings of one Newton step.
pub const MAX_HALVINGS: u32 = 10;

fn negated(h: &[f64]) -> Vec<f64> {
    h.iter().map(|v| -v).collect()
}
