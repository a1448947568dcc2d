//! The coordinator: Newton–Raphson over the sites' summed [`SiteSums`] until the log-likelihood
//! changes by less than 1e-8 (at most 25 iterations), then Wald statistics from the summed
//! information matrix.

use serde::{Deserialize, Serialize};

use super::linalg::{cholesky, cholesky_inverse, cholesky_solve, eigenvalues_at_least};
use super::private::{SumsNoise, DP_AVERAGED, LOGLIK_CLIP};
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
    /// Set when the sums were released under differential privacy: how they were noised.
    /// Then `n` and `events` are the noisy counts averaged over the rounds, `loglik` the
    /// last round's noisy sum of clipped terms, `converged` false (a fixed number of rounds),
    /// and each standard error includes the last round's gradient noise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<FitPrivacy>,
}

/// How a fit's sums were protected (differential privacy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitPrivacy {
    /// Rounds run (fixed in advance).
    pub rounds: u32,
    /// ρ (zCDP) one round cost at the site that charged the most (its σ: `1/√(2ρ)`); each
    /// site charged `rounds × ρ` at round 0.
    pub rho_per_round: f64,
    /// Each covariate's clip range, in coefficient order (logistic: the intercept first,
    /// [1, 1]).
    pub clip: Vec<ClipRange>,
    /// Each unit's log-likelihood term clipped to [−this, 0].
    pub loglik_clip: f64,
    /// Standard deviation of the pooled noise on each gradient coordinate in the last round.
    pub gradient_noise_sd: Vec<f64>,
    /// Standard deviation of the noise on each pooled count, per round (before averaging).
    pub count_noise_sd: f64,
}

/// A covariate's declared clip range, and the centre subtracted from it in the fit (the
/// intercept is reported back at 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipRange {
    pub name: String,
    pub lower: f64,
    pub upper: f64,
    pub center: f64,
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
    #[error("under differential privacy the released sums do not determine the model: in {directions} direction(s) the information is below the noise of the released Hessian (too few persons or outcomes for this σ, or a covariate with too little spread within its declared range); the estimates would be noise")]
    NoiseDominated { directions: usize },
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
    /// Under differential privacy (noisy sums): rounds answered and the sums of the noisy
    /// counts (averaged in the result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<PrivateRounds>,
}

/// The rounds of a fit on noisy sums so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivateRounds {
    pub evaluations: u32,
    pub n_sum: u64,
    pub events_sum: u64,
    /// The last [`DP_AVERAGED`] rounds' coefficients and sums (the estimate averages them).
    #[serde(default)]
    pub last: Vec<(Vec<f64>, SiteSums)>,
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
            private: None,
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
        if sums.noise.is_some() || self.private.is_some() {
            return self.advance_private(sums);
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

    /// A round of noisy sums (differential privacy): no step halving and no convergence test
    /// (both would be decisions on noisy values that steer what is released next); a Newton
    /// step from every round's sums with the information matrix made positive definite,
    /// until the fixed number of rounds.
    fn advance_private(&mut self, sums: &SiteSums) -> Result<Step, FitError> {
        let Some(noise) = &sums.noise else {
            return Err(FitError::Shape { site: 0 });
        };
        let state = self.private.get_or_insert(PrivateRounds {
            evaluations: 0,
            n_sum: 0,
            events_sum: 0,
            last: Vec::new(),
        });
        state.evaluations += 1;
        state.n_sum += sums.n;
        state.events_sum += sums.events;
        state.last.push((self.pending.clone(), sums.clone()));
        if state.last.len() > DP_AVERAGED as usize {
            state.last.remove(0);
        }
        self.iterations = state.evaluations;
        let done = state.evaluations >= noise.rounds;
        self.current = Some((self.pending.clone(), sums.clone()));
        if done {
            self.done = true;
            return Ok(Step::Done);
        }
        let (estimate, _, _) = private_estimate(
            &[(self.pending.clone(), sums.clone())],
            noise,
            self.iterations,
        )?;
        self.pending = estimate;
        Ok(Step::Evaluate(self.pending.clone()))
    }

    /// The fitted model, once [`Step::Done`]: the coefficients (named `names`) with their Wald
    /// statistics from the summed information matrix.
    pub fn result(&self, names: &[String]) -> Result<Fit, FitError> {
        if self.private.is_some() {
            return self.private_result(names);
        }
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
        Ok(Fit {
            model: self.model,
            n: sums.n,
            events: sums.events,
            iterations: self.iterations,
            converged: self.converged,
            loglik: sums.loglik,
            coefficients: wald(names, beta, &cov),
            privacy: None,
        })
    }

    /// The fit on noisy sums: the mean of the Newton steps' ends from the last
    /// [`DP_AVERAGED`] rounds' coefficients (one-step estimators from the neighbourhood the
    /// earlier rounds reached, each with its own independent gradient noise), with the mean
    /// of those rounds' information made positive definite (A); covariance
    /// `A⁻¹ + A⁻¹·Σ_g·A⁻¹ / m` (the gradient noise averaged over m rounds).
    fn private_result(&self, names: &[String]) -> Result<Fit, FitError> {
        let (_, sums) = self.current.as_ref().ok_or(FitError::NoSites)?;
        let (Some(state), Some(noise)) = (&self.private, &sums.noise) else {
            return Err(FitError::Shape { site: 0 });
        };
        let (estimate, cov, weak) = private_estimate(&state.last, noise, self.iterations)?;
        // A direction whose information is below the noise is not determined by the released
        // sums (post-processing: decided on released values only).
        if weak > 0 {
            return Err(FitError::NoiseDominated { directions: weak });
        }
        let (estimate, cov) = uncentered(self.model, estimate, cov, &noise.centers);
        let rounds = state.evaluations.max(1);
        let mean = |x: u64| (x as f64 / f64::from(rounds)).round() as u64;
        let b = noise.bounds();
        Ok(Fit {
            model: self.model,
            n: mean(state.n_sum),
            events: mean(state.events_sum),
            iterations: self.iterations,
            converged: false,
            loglik: sums.loglik,
            coefficients: wald(names, &estimate, &cov),
            privacy: Some(FitPrivacy {
                rounds: state.evaluations,
                rho_per_round: noise.rho_per_round,
                clip: names
                    .iter()
                    .zip(noise.ranges.iter().zip(&noise.centers))
                    .map(|(name, (&(lower, upper), &center))| ClipRange {
                        name: name.clone(),
                        lower: lower + center,
                        upper: upper + center,
                        center,
                    })
                    .collect(),
                loglik_clip: LOGLIK_CLIP,
                gradient_noise_sd: b.iter().map(|bj| bj * noise.gradient_var.sqrt()).collect(),
                count_noise_sd: noise.counts_var.sqrt(),
            }),
        })
    }
}

/// The mean of the Newton steps' ends from `rounds` (coefficients and their noisy sums), its
/// covariance, in the coefficients' units, and how many directions of the information were
/// below the noise (raised to it). In normalized coordinates (`x_j / B_j`, where
/// every entry has the same noise) the rounds' mean information `−H` has its eigenvalues raised
/// to the noise's standard deviation per entry, `s_H/√m` (positive definite; a well-determined
/// information matrix is unchanged), and every step uses it.
fn private_estimate(
    rounds: &[(Vec<f64>, SiteSums)],
    noise: &SumsNoise,
    iteration: u32,
) -> Result<(Vec<f64>, Vec<f64>, usize), FitError> {
    let m = rounds.len();
    let Some((first, _)) = rounds.first() else {
        return Err(FitError::NoSites);
    };
    let p = first.len();
    let b = noise.bounds();
    if b.len() != p || rounds.iter().any(|(_, s)| s.gradient.len() != p) {
        return Err(FitError::Shape { site: 0 });
    }
    let info: Vec<f64> = (0..p * p)
        .map(|k| {
            let h: f64 = rounds.iter().map(|(_, s)| s.hessian[k]).sum::<f64>() / m as f64;
            -h / (b[k / p] * b[k % p])
        })
        .collect();
    let floor = (noise.hessian_var / m as f64).sqrt();
    let (info, weak) = eigenvalues_at_least(&info, p, floor.max(f64::MIN_POSITIVE));
    let l = cholesky(&info, p).ok_or(FitError::Singular { iteration })?;
    let mut estimate = vec![0.0; p];
    for (beta, sums) in rounds {
        let g: Vec<f64> = (0..p).map(|j| sums.gradient[j] / b[j]).collect();
        let step = cholesky_solve(&l, p, &g);
        for j in 0..p {
            estimate[j] += (beta[j] + step[j] / b[j]) / m as f64;
        }
    }
    let inv = cholesky_inverse(&l, p);
    let mut cov = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..p {
            let carried: f64 = (0..p).map(|k| inv[i * p + k] * inv[k * p + j]).sum();
            cov[i * p + j] =
                (inv[i * p + j] + noise.gradient_var / m as f64 * carried) / (b[i] * b[j]);
        }
    }
    Ok((estimate, cov, weak))
}

/// Coefficients fitted on centred covariates (`x_j − c_j`) in the covariates' own units: the
/// same slopes, the intercept `β₀ − Σ c_j β_j` (logistic: the intercept first), and the
/// covariance `T·C·Tᵀ` of that linear map.
fn uncentered(
    model: Model,
    beta: Vec<f64>,
    cov: Vec<f64>,
    centers: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let p = beta.len();
    if model != Model::Logistic || centers.len() != p || centers.iter().all(|&c| c == 0.0) {
        return (beta, cov);
    }
    let mut t = vec![0.0; p * p];
    for j in 0..p {
        t[j * p + j] = 1.0;
    }
    for j in 1..p {
        t[j] = -centers[j];
    }
    let apply = |v: &[f64]| -> Vec<f64> {
        (0..p)
            .map(|i| (0..p).map(|k| t[i * p + k] * v[k]).sum())
            .collect()
    };
    let beta = apply(&beta);
    // T·C·Tᵀ
    let tc: Vec<f64> = (0..p * p)
        .map(|k| {
            (0..p)
                .map(|m| t[(k / p) * p + m] * cov[m * p + k % p])
                .sum()
        })
        .collect();
    let cov = (0..p * p)
        .map(|k| {
            (0..p)
                .map(|m| tc[(k / p) * p + m] * t[(k % p) * p + m])
                .sum()
        })
        .collect();
    (beta, cov)
}

/// Wald statistics of `beta` with covariance `cov` (row-major).
fn wald(names: &[String], beta: &[f64], cov: &[f64]) -> Vec<Coefficient> {
    let p = beta.len();
    names
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
        .collect()
}

/// At most this many halvings of one Newton step.
pub const MAX_HALVINGS: u32 = 10;

fn negated(h: &[f64]) -> Vec<f64> {
    h.iter().map(|v| -v).collect()
}
