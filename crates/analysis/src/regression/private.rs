//! Federated logistic regression under differential privacy: what one round releases and its
//! sensitivity (the derivation is THREAT_MODEL.md's "Federated regression under differential
//! privacy").
//!
//! Every covariate is clipped to a range declared with it ([`super::design::Covariate::range`]:
//! age 0–10 decades, binary covariates 0–1; the intercept is 1) and centred at a declared value
//! (age: 5 decades; [`super::design::Covariate::center`]), so `|x_j| ≤ B_j = max(|lo_j|, |hi_j|)`
//! over the centred range (age: 5). In normalized coordinates `x̃_j = x_j / B_j ∈ [−1, 1]`, `‖x̃‖² ≤ p`,
//! one followed unit adds to a round's sums at any coefficients:
//!
//! | block | a unit's contribution | L2 bound |
//! | --- | --- | --- |
//! | counts (units, units with the outcome) | (1, y) | √2 |
//! | log-likelihood, each unit's term clipped to [−L, 0] | ℓ ∈ [−L, 0] | L |
//! | gradient (normalized) | (y − μ)·x̃, \|y − μ\| ≤ 1 | √p |
//! | Hessian, upper triangle with the diagonal (normalized) | −μ(1 − μ)·x̃_a x̃_b, μ(1 − μ) ≤ ¼ | ¼·√((p² + p)/2) |
//!
//! (`Σ_{a≤b} x̃_a² x̃_b² = (‖x̃‖⁴ + Σ_a x̃_a⁴)/2 ≤ (p² + p)/2`.) A person is at most `u` units
//! (`u = 2` with a comparator: one in each cohort), so a person moves block `k` by at most
//! `D_k = u·(the bound)`. Block `k` is scaled by `c_k = S·√w_k / D_k` (weights `Σ w_k = 1`)
//! and rounded to integers: one person moves the scaled block by at most `S·√w_k` and the
//! rounding by at most `√d_k` more, so the whole integer vector (d coordinates) moves by at most
//! `√(Σ_k S² w_k) + √d = S + √d` (Minkowski). Independent discrete Gaussians with `σ·Δ`,
//! `Δ = S + ⌈√d⌉`, on every coordinate are `1/(2σ²)`-zCDP (a coordinate shifted by `t_j` has
//! Rényi divergence `α·t_j²/(2(σΔ)²)`, Canonne–Kamath–Steinke 2020 Thm. 4; independent
//! coordinates add, and `Σ t_j² ≤ Δ²`): one release of the site's policy per round. The hub decodes the noisy integers
//! (post-processing), knowing each block's noise from σ and this spec alone ([`Privacy::noise`]).

use serde::{Deserialize, Serialize};

use super::{Model, SiteSums};

/// Rounds of a fit under differential privacy: fixed, because whether a fit has converged is
/// a decision on noisy sums that would steer what is released next (and Newton–Raphson from
/// β = 0 reaches a logistic fit's neighbourhood in three or four steps). The estimate averages
/// the Newton steps from the last [`DP_AVERAGED`] rounds' coefficients ([`super::Newton`]).
pub const DP_ROUNDS: u32 = 6;

/// The estimate under differential privacy averages the Newton steps from the last this many
/// rounds (each round's gradient noise is independent: the noise's variance is divided by it).
pub const DP_AVERAGED: u32 = 3;

/// Each unit's log-likelihood term is clipped to [−`LOGLIK_CLIP`, 0] under differential
/// privacy (a unit predicted with probability below e⁻¹⁰ of what happened counts as e⁻¹⁰).
pub const LOGLIK_CLIP: f64 = 10.0;

/// Fixed-point units per block's unit of sensitivity (the integer lattice the noise is drawn
/// on): rounding adds at most `√d / S` to the sensitivity (about 1% at p = 8).
const FIXED_POINT: f64 = 4096.0;
/// Below this a site's σ is too large for the sampler's range at a useful resolution.
const MIN_FIXED_POINT: f64 = 64.0;
/// The share of each round's ρ per block: counts, log-likelihood, gradient, Hessian. The
/// gradient sets the estimate, the Hessian its step and standard errors; the counts and the
/// log-likelihood are shown only.
pub const WEIGHTS: [f64; 4] = [0.1, 0.05, 0.5, 0.35];

/// Everything a round's release depends on besides the data: public, from the spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Privacy {
    /// Each coefficient's clip range after centring, in order (logistic: the intercept's is
    /// [1, 1]).
    pub ranges: Vec<(f64, f64)>,
    /// Each coefficient's centre, subtracted from the clipped values (the intercept's is 0);
    /// the fit reports the intercept back at 0 ([`super::Newton`]).
    pub centers: Vec<f64>,
    /// Most units one person is (2 with a comparator).
    pub units_per_person: u32,
}

/// The noise of released sums, as variances (they add over sites). Gradient and Hessian in
/// normalized coordinates (`x_j / B_j`), where every coordinate has the same noise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SumsNoise {
    /// Each coefficient's clip range after centring.
    pub ranges: Vec<(f64, f64)>,
    /// Each coefficient's centre.
    pub centers: Vec<f64>,
    /// Rounds of the fit.
    pub rounds: u32,
    /// ρ (zCDP) each round cost at the site that charged the most.
    pub rho_per_round: f64,
    /// Variance of the unit count and of the outcome count.
    pub counts_var: f64,
    /// Variance of the (clipped) log-likelihood.
    pub loglik_var: f64,
    /// Variance of each normalized gradient coordinate.
    pub gradient_var: f64,
    /// Variance of each normalized Hessian entry (one draw per pair a ≤ b, mirrored).
    pub hessian_var: f64,
}

impl SumsNoise {
    /// Adds another site's noise (independent draws: variances add).
    pub fn add(&mut self, o: &SumsNoise) {
        self.rho_per_round = self.rho_per_round.max(o.rho_per_round);
        self.counts_var += o.counts_var;
        self.loglik_var += o.loglik_var;
        self.gradient_var += o.gradient_var;
        self.hessian_var += o.hessian_var;
    }

    /// `B_j = max(|lo_j|, |hi_j|)`.
    pub fn bounds(&self) -> Vec<f64> {
        self.ranges.iter().map(|&(lo, hi)| bound(lo, hi)).collect()
    }
}

fn bound(lo: f64, hi: f64) -> f64 {
    lo.abs().max(hi.abs()).max(f64::MIN_POSITIVE)
}

/// Why a site cannot release a round under differential privacy (decided on the policy).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("σ = {0} is too large for the regression's fixed-point release (the sampler's range is σ·Δ ≤ 10⁶)")]
pub struct SigmaOutOfRange(pub f64);

impl Privacy {
    /// Number of coefficients.
    pub fn p(&self) -> usize {
        self.ranges.len()
    }

    /// Coordinates released: the two counts, the log-likelihood, the gradient, the Hessian's
    /// upper triangle.
    pub fn dims(&self) -> usize {
        let p = self.p();
        3 + p + p * (p + 1) / 2
    }

    /// Each block's per-person L2 bound `D_k` (module docs).
    pub fn block_l2(&self) -> [f64; 4] {
        let u = f64::from(self.units_per_person.max(1));
        let p = self.p() as f64;
        [
            u * std::f64::consts::SQRT_2,
            u * LOGLIK_CLIP,
            u * p.sqrt(),
            u * ((p * p + p) / 2.0).sqrt() / 4.0,
        ]
    }

    fn root_dims(&self) -> f64 {
        (self.dims() as f64).sqrt().ceil()
    }

    /// The fixed-point scale S for the site's σ: [`FIXED_POINT`], smaller when `σ·Δ` would
    /// leave the sampler's range.
    fn fixed_point(&self, sigma: f64) -> Result<f64, SigmaOutOfRange> {
        let s = FIXED_POINT
            .min((qiao_disclosure::dp::MAX_NOISE_SCALE / sigma).floor() - self.root_dims() - 1.0);
        if sigma.is_finite() && sigma > 0.0 && s >= MIN_FIXED_POINT {
            Ok(s)
        } else {
            Err(SigmaOutOfRange(sigma))
        }
    }

    /// The L2 sensitivity of the released integer vector: `S + ⌈√d⌉`.
    pub fn sensitivity(&self, sigma: f64) -> Result<u32, SigmaOutOfRange> {
        Ok((self.fixed_point(sigma)? + self.root_dims()) as u32)
    }

    /// The scale of each block: `c_k = S·√w_k / D_k`.
    fn scales(&self, sigma: f64) -> Result<[f64; 4], SigmaOutOfRange> {
        let s = self.fixed_point(sigma)?;
        let d = self.block_l2();
        Ok(std::array::from_fn(|k| s * WEIGHTS[k].sqrt() / d[k]))
    }

    /// A site's exact sums (of clipped units) as the integer vector released.
    pub fn encode(&self, sums: &SiteSums, sigma: f64) -> Result<Vec<i64>, SigmaOutOfRange> {
        let c = self.scales(sigma)?;
        let b: Vec<f64> = self.ranges.iter().map(|&(lo, hi)| bound(lo, hi)).collect();
        let p = self.p();
        let fixed = |x: f64, k: usize| -> i64 {
            const LIMIT: f64 = (1u64 << 52) as f64;
            (x * c[k]).round().clamp(-LIMIT, LIMIT) as i64
        };
        let mut v = Vec::with_capacity(self.dims());
        v.push(fixed(sums.n as f64, 0));
        v.push(fixed(sums.events as f64, 0));
        v.push(fixed(sums.loglik, 1));
        v.extend((0..p).map(|j| fixed(sums.gradient[j] / b[j], 2)));
        for a in 0..p {
            for bb in a..p {
                v.push(fixed(sums.hessian[a * p + bb] / (b[a] * b[bb]), 3));
            }
        }
        Ok(v)
    }

    /// The noise of one site's release at σ (per unit of sensitivity).
    pub fn noise(&self, sigma: f64) -> Result<SumsNoise, SigmaOutOfRange> {
        let c = self.scales(sigma)?;
        let sd = sigma * f64::from(self.sensitivity(sigma)?);
        let var = |k: usize| (sd / c[k]).powi(2);
        Ok(SumsNoise {
            ranges: self.ranges.clone(),
            centers: self.centers.clone(),
            rounds: DP_ROUNDS,
            rho_per_round: 1.0 / (2.0 * sigma * sigma),
            counts_var: var(0),
            loglik_var: var(1),
            gradient_var: var(2),
            hessian_var: var(3),
        })
    }

    /// The noisy integer vector back as sums (post-processing): the counts as reals (the
    /// caller rounds and thresholds them), the Hessian mirrored from its upper triangle, and
    /// the noise they carry.
    pub fn decode(
        &self,
        model: Model,
        noisy: &[i64],
        sigma: f64,
    ) -> Result<(SiteSums, [f64; 2]), SigmaOutOfRange> {
        let c = self.scales(sigma)?;
        let b: Vec<f64> = self.ranges.iter().map(|&(lo, hi)| bound(lo, hi)).collect();
        let p = self.p();
        let at = |i: usize| noisy.get(i).copied().unwrap_or(0) as f64;
        let mut s = SiteSums::zero(model, p);
        let counts = [at(0) / c[0], at(1) / c[0]];
        s.loglik = at(2) / c[1];
        for (j, (g, bj)) in s.gradient.iter_mut().zip(&b).enumerate() {
            *g = at(3 + j) / c[2] * bj;
        }
        let mut i = 3 + p;
        for a in 0..p {
            for bb in a..p {
                let h = at(i) / c[3] * b[a] * b[bb];
                s.hessian[a * p + bb] = h;
                s.hessian[bb * p + a] = h;
                i += 1;
            }
        }
        s.noise = Some(self.noise(sigma)?);
        Ok((s, counts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regression::{Guard, SiteData};

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Adding or removing one person (one or two units) never moves the released integer
    /// vector by more than the declared sensitivity, at any coefficients — including extreme
    /// ones and units at the corners of the clip box.
    #[test]
    fn one_person_moves_the_encoded_round_by_at_most_the_declared_sensitivity() {
        let names: Vec<String> = ["treatment", "age", "male"].map(String::from).to_vec();
        let privacy = Privacy {
            ranges: vec![(1.0, 1.0), (0.0, 1.0), (0.0, 10.0), (0.0, 1.0)],
            centers: vec![0.0; 4],
            units_per_person: 2,
        };
        let mut next = lcg(17);
        let n = 300;
        let mut cols = [vec![], vec![], vec![]];
        let mut y = vec![];
        for i in 0..n {
            cols[0].push((next() < 0.5) as u8 as f64);
            // The corners of the box too.
            cols[1].push(if i % 7 == 0 { 10.0 } else { next() * 10.0 });
            cols[2].push((next() < 0.5) as u8 as f64);
            y.push(next() < 0.3);
        }
        let t = vec![1; n];
        let site = |keep: &dyn Fn(usize) -> bool| {
            let idx: Vec<usize> = (0..n).filter(|&i| keep(i)).collect();
            let c: Vec<Vec<f64>> = cols
                .iter()
                .map(|c| idx.iter().map(|&i| c[i]).collect())
                .collect();
            let e: Vec<bool> = idx.iter().map(|&i| y[i]).collect();
            SiteData::new(
                Model::Logistic,
                &names,
                &c,
                &t[..idx.len()],
                &e,
                &Guard::none(),
            )
            .unwrap()
            .with_loglik_clip(LOGLIK_CLIP)
        };
        let sigma = 6.0;
        let delta = f64::from(privacy.sensitivity(sigma).unwrap());
        assert_eq!(delta, 4096.0 + 5.0, "d = 3 + 4 + 10 = 17");
        let all = site(&|_| true);
        let mut worst = 0.0f64;
        for beta in [
            vec![0.0; 4],
            vec![-1.5, 0.4, 0.2, -0.3],
            vec![30.0, -40.0, 8.0, 25.0],
            vec![-30.0, 40.0, -8.0, -25.0],
        ] {
            let full = privacy.encode(&all.sums(&beta), sigma).unwrap();
            // A person who is two units (units 2i and 2i + 1 stand for one person in both arms).
            for i in (0..n).step_by(23) {
                let pair = i - i % 2;
                let without = site(&|k| k != pair && k != pair + 1);
                let v = privacy.encode(&without.sums(&beta), sigma).unwrap();
                let l2 = full
                    .iter()
                    .zip(&v)
                    .map(|(a, b)| ((a - b) as f64).powi(2))
                    .sum::<f64>()
                    .sqrt();
                worst = worst.max(l2);
                assert!(l2 <= delta, "β {beta:?}, person {pair}: {l2} > {delta}");
            }
        }
        // The bound is not vacuous: extreme coefficients bring a person close to it.
        assert!(worst > 0.5 * delta, "{worst}");
    }

    #[test]
    fn decode_inverts_encode_up_to_the_fixed_point() {
        let privacy = Privacy {
            ranges: vec![(1.0, 1.0), (0.0, 10.0)],
            centers: vec![0.0; 2],
            units_per_person: 1,
        };
        let mut s = SiteSums::zero(Model::Logistic, 2);
        s.n = 500;
        s.events = 60;
        s.loglik = -180.25;
        s.gradient = vec![3.5, -12.0];
        s.hessian = vec![-40.0, -150.0, -150.0, -700.0];
        let v = privacy.encode(&s, 6.0).unwrap();
        let (back, counts) = privacy.decode(Model::Logistic, &v, 6.0).unwrap();
        assert!((counts[0] - 500.0).abs() < 0.01 && (counts[1] - 60.0).abs() < 0.01);
        assert!((back.loglik - s.loglik).abs() < 0.05);
        for (a, b) in back.gradient.iter().zip(&s.gradient) {
            assert!((a - b).abs() < 0.01, "{a} {b}");
        }
        for (a, b) in back.hessian.iter().zip(&s.hessian) {
            assert!((a - b).abs() < 0.1, "{a} {b}");
        }
        let noise = back.noise.unwrap();
        // Gradient noise per normalized coordinate: σ(S + ⌈√d⌉)/S · √p/√w.
        let expect = 6.0 * (4096.0 + 3.0) / 4096.0 * 2f64.sqrt() / 0.5f64.sqrt();
        assert!(
            (noise.gradient_var.sqrt() - expect).abs() < 1e-9,
            "{noise:?}"
        );
        assert!(Privacy::sensitivity(&privacy, 1.0e5).is_err());
    }
}
