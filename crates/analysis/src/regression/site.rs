//! What a site computes: for given coefficients, the sums of its persons' log-likelihood, its
//! gradient and Hessian ([`SiteSums`]) — nothing patient-level. A site refuses to take part
//! (DataSHIELD-style disclosure guards) before it computes anything.

use serde::{Deserialize, Serialize};

use super::private::SumsNoise;
use super::Model;

/// The hub's request of one Newton–Raphson round: the coefficients at which each site returns its
/// [`SiteSums`] (with the run it belongs to, when the protocol carries it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    pub model: Model,
    /// 0 for the sums at β = 0, then one per evaluation.
    pub iteration: u32,
    pub coefficients: Vec<f64>,
}

/// One site's contribution to one Newton–Raphson iteration, for the coefficients the hub sent.
/// The whole hub-bound message of a round (ready to be signed and sent by the protocol).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteSums {
    pub model: Model,
    /// Persons in the fit at this site.
    pub n: u64,
    /// Persons with the outcome.
    pub events: u64,
    /// Σ log-likelihood (Cox: the site's own stratum's Efron partial log-likelihood).
    pub loglik: f64,
    /// ∂ loglik / ∂β (p values).
    pub gradient: Vec<f64>,
    /// ∂² loglik / ∂β∂βᵀ, row-major p × p.
    pub hessian: Vec<f64>,
    /// The noise the sums carry, when released under differential privacy (then `n` and
    /// `events` are the noisy counts, and the log-likelihood is of clipped terms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<SumsNoise>,
}

impl SiteSums {
    pub fn zero(model: Model, p: usize) -> SiteSums {
        SiteSums {
            model,
            n: 0,
            events: 0,
            loglik: 0.0,
            gradient: vec![0.0; p],
            hessian: vec![0.0; p * p],
            noise: None,
        }
    }

    /// Adds another site's sums (same model and coefficients).
    pub fn add(&mut self, o: &SiteSums) {
        self.n += o.n;
        self.events += o.events;
        self.loglik += o.loglik;
        self.gradient
            .iter_mut()
            .zip(&o.gradient)
            .for_each(|(a, b)| *a += b);
        self.hessian
            .iter_mut()
            .zip(&o.hessian)
            .for_each(|(a, b)| *a += b);
        match (&mut self.noise, &o.noise) {
            (Some(a), Some(b)) => a.add(b),
            (None, Some(b)) => self.noise = Some(b.clone()),
            _ => {}
        }
    }
}

/// The site's disclosure guards, as DataSHIELD's `ds.glm` filters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Guard {
    /// Fewest persons allowed in any level of a binary covariate and of the outcome (the site's
    /// minimum cell count; DataSHIELD `nfilter.tab`).
    pub min_persons: u64,
    /// Most parameters per person (DataSHIELD `nfilter.glm`, 0.33).
    pub max_params_per_person: f64,
}

impl Guard {
    pub fn new(min_persons: u64) -> Guard {
        Guard {
            min_persons,
            max_params_per_person: 0.33,
        }
    }

    /// No guard: under differential privacy, where a refusal decided on true counts would be
    /// an exact bit about the data and the noise protects every released sum whatever the
    /// cell sizes (THREAT_MODEL.md).
    pub fn none() -> Guard {
        Guard {
            min_persons: 0,
            max_params_per_person: f64::INFINITY,
        }
    }
}

/// Why a site refuses a fit. The message names the guard and the covariate, never a count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("refused: the model has too many parameters for the persons at this site (more than nfilter.glm = 0.33 per person)")]
    TooManyParameters,
    #[error("refused: a level of the outcome ({0}) has fewer persons than the site's threshold")]
    Outcome(&'static str),
    #[error("refused: a level of the binary covariate {0:?} has fewer persons than the site's threshold")]
    Covariate(String),
}

/// A site's persons in a fit: the design (without intercept) and the outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteData {
    model: Model,
    /// Number of coefficients (logistic: 1 + covariates, the intercept first).
    p: usize,
    /// Row-major n × p (logistic: the intercept column included; Cox: centred at the site mean,
    /// which leaves every Cox sum unchanged and keeps exp(xβ) in range).
    x: Vec<f64>,
    /// Logistic: outcome 0/1. Cox: the event indicator.
    event: Vec<bool>,
    /// Cox: times, with rows sorted by time descending.
    time: Vec<i32>,
    /// Logistic under differential privacy: each unit's log-likelihood term clipped to
    /// [−L, 0].
    loglik_clip: Option<f64>,
}

impl SiteData {
    /// The site's data for `model`: `names` and `columns` are the covariates (each a column of
    /// n values), `time`/`event` each person's follow-up. Refuses by `guard` before anything is
    /// computed.
    pub fn new(
        model: Model,
        names: &[String],
        columns: &[Vec<f64>],
        time: &[i32],
        event: &[bool],
        guard: &Guard,
    ) -> Result<SiteData, Refusal> {
        let n = event.len();
        let k = columns.len();
        let p = match model {
            Model::Logistic => k + 1,
            Model::Cox => k,
        };
        if p as f64 > guard.max_params_per_person * n as f64 {
            return Err(Refusal::TooManyParameters);
        }
        let events = event.iter().filter(|&&e| e).count() as u64;
        let (yes, no) = match model {
            Model::Logistic => ("with the outcome", "without the outcome"),
            Model::Cox => ("with the event", "censored"),
        };
        if events < guard.min_persons {
            return Err(Refusal::Outcome(yes));
        }
        if (n as u64 - events) < guard.min_persons {
            return Err(Refusal::Outcome(no));
        }
        for (name, c) in names.iter().zip(columns) {
            if c.iter().all(|&v| v == 0.0 || v == 1.0) {
                let ones = c.iter().filter(|&&v| v == 1.0).count() as u64;
                if ones < guard.min_persons || (n as u64 - ones) < guard.min_persons {
                    return Err(Refusal::Covariate(name.clone()));
                }
            }
        }
        let mut order: Vec<usize> = (0..n).collect();
        if model == Model::Cox {
            order.sort_by_key(|&i| std::cmp::Reverse(time[i]));
        }
        let means: Vec<f64> = columns
            .iter()
            .map(|c| match model {
                Model::Cox => c.iter().sum::<f64>() / n as f64,
                Model::Logistic => 0.0,
            })
            .collect();
        let mut x = Vec::with_capacity(n * p);
        for &i in &order {
            if model == Model::Logistic {
                x.push(1.0);
            }
            x.extend(columns.iter().zip(&means).map(|(c, m)| c[i] - m));
        }
        Ok(SiteData {
            model,
            p,
            x,
            event: order.iter().map(|&i| event[i]).collect(),
            time: match model {
                Model::Cox => order.iter().map(|&i| time[i]).collect(),
                Model::Logistic => Vec::new(),
            },
            loglik_clip: None,
        })
    }

    /// The same data with each unit's logistic log-likelihood term clipped to [−`l`, 0] (the
    /// bounded contribution of a release under differential privacy).
    pub fn with_loglik_clip(self, l: f64) -> SiteData {
        SiteData {
            loglik_clip: Some(l),
            ..self
        }
    }

    pub fn parameters(&self) -> usize {
        self.p
    }

    /// The sums at coefficients `beta` (p values).
    pub fn sums(&self, beta: &[f64]) -> SiteSums {
        assert_eq!(beta.len(), self.p, "coefficients for another model");
        match self.model {
            Model::Logistic => self.logistic(beta),
            Model::Cox => self.cox(beta),
        }
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.p..(i + 1) * self.p]
    }

    fn logistic(&self, beta: &[f64]) -> SiteSums {
        let p = self.p;
        let mut s = SiteSums::zero(self.model, p);
        for (i, &y) in self.event.iter().enumerate() {
            let x = self.row(i);
            let eta: f64 = x.iter().zip(beta).map(|(a, b)| a * b).sum();
            // log(1 + e^η) without overflow; μ = σ(η).
            let softplus = if eta > 0.0 {
                eta + (-eta).exp().ln_1p()
            } else {
                eta.exp().ln_1p()
            };
            let mu = if eta >= 0.0 {
                1.0 / (1.0 + (-eta).exp())
            } else {
                let e = eta.exp();
                e / (1.0 + e)
            };
            let y = y as u8 as f64;
            let term = y * eta - softplus;
            s.loglik += match self.loglik_clip {
                Some(l) => term.max(-l),
                None => term,
            };
            s.gradient
                .iter_mut()
                .zip(x)
                .for_each(|(g, &xa)| *g += (y - mu) * xa);
            add_outer(&mut s.hessian, x, -mu * (1.0 - mu));
        }
        s.n = self.event.len() as u64;
        s.events = self.event.iter().filter(|&&e| e).count() as u64;
        mirror(&mut s.hessian, p);
        s
    }

    /// Efron's partial likelihood over the site's one stratum: rows by time descending, the risk
    /// set grows as time falls; at each event time with d events the d tied deaths remove
    /// l/d (l = 0…d−1) of their own weight from the risk set in turn.
    fn cox(&self, beta: &[f64]) -> SiteSums {
        let p = self.p;
        let n = self.event.len();
        let mut s = SiteSums::zero(self.model, p);
        let (mut s0, mut s1, mut s2) = (0.0f64, vec![0.0; p], vec![0.0; p * p]);
        let (mut d1, mut d2) = (vec![0.0; p], vec![0.0; p * p]);
        let mut i = 0;
        while i < n {
            let t = self.time[i];
            let (mut d0, mut d, mut xb_sum) = (0.0f64, 0usize, 0.0f64);
            d1.iter_mut().for_each(|v| *v = 0.0);
            d2.iter_mut().for_each(|v| *v = 0.0);
            while i < n && self.time[i] == t {
                let x = self.row(i);
                let xb: f64 = x.iter().zip(beta).map(|(a, b)| a * b).sum();
                let r = xb.exp();
                s0 += r;
                s1.iter_mut().zip(x).for_each(|(v, &xa)| *v += r * xa);
                add_outer(&mut s2, x, r);
                if self.event[i] {
                    d += 1;
                    d0 += r;
                    xb_sum += xb;
                    d1.iter_mut().zip(x).for_each(|(v, &xa)| *v += r * xa);
                    s.gradient.iter_mut().zip(x).for_each(|(v, &xa)| *v += xa);
                    add_outer(&mut d2, x, r);
                }
                i += 1;
            }
            if d == 0 {
                continue;
            }
            s.events += d as u64;
            s.loglik += xb_sum;
            for l in 0..d {
                let f = l as f64 / d as f64;
                let c0 = s0 - f * d0;
                s.loglik -= c0.ln();
                for a in 0..p {
                    let ca = (s1[a] - f * d1[a]) / c0;
                    s.gradient[a] -= ca;
                    for b in 0..=a {
                        let cb = (s1[b] - f * d1[b]) / c0;
                        let c2 = (s2[a * p + b] - f * d2[a * p + b]) / c0;
                        s.hessian[a * p + b] -= c2 - ca * cb;
                    }
                }
            }
        }
        s.n = n as u64;
        mirror(&mut s.hessian, p);
        s
    }
}

/// h += w·x·xᵀ on the lower triangle (row-major p × p, p = x.len()).
#[inline]
fn add_outer(h: &mut [f64], x: &[f64], w: f64) {
    let p = x.len();
    for (a, &xa) in x.iter().enumerate() {
        let wa = w * xa;
        h[a * p..=a * p + a]
            .iter_mut()
            .zip(x)
            .for_each(|(v, &xb)| *v += wa * xb);
    }
}

/// Copies the lower triangle to the upper.
fn mirror(h: &mut [f64], p: usize) {
    for a in 0..p {
        for b in 0..a {
            h[b * p + a] = h[a * p + b];
        }
    }
}
