//! Differential privacy: exact discrete samplers and their calibration.
//!
//! Counts are integers, so the noise is integer too: the discrete Laplace (two-sided
//! geometric) and discrete Gaussian distributions, sampled *exactly* with the rejection
//! samplers of Canonne, Kamath and Steinke, "The Discrete Gaussian for Differential Privacy"
//! (NeurIPS 2020), Algorithms 1–3. They use only integer arithmetic and uniform integers from
//! the RNG, so they have none of the floating-point leaks of textbook `Lap(1/ε)` sampling
//! (Mironov, "On significance of the least significant bits for differential privacy", CCS
//! 2012).
//!
//! * Laplace: `P(x) ∝ exp(-|x| / scale)` with `scale = sensitivity / ε` rounded *up* to a
//!   multiple of 2⁻¹⁰ (more noise, so still ε-DP).
//! * Gaussian: `P(x) ∝ exp(-x² / 2σ²)`. The discrete Gaussian with `σ` is
//!   `ρ = Δ² / 2σ²`-zCDP (CKS Thm. 4), hence `(ρ + 2√(ρ·ln(1/δ)), δ)`-DP for every δ (Bun &
//!   Steinke 2016, Prop. 1.3). We solve that for the smallest σ giving the requested (ε, δ)
//!   and round σ² up to a multiple of 2⁻¹⁰.
//!
//! Fresh randomness is required (DP noise must not be a function of the data alone): callers
//! pass a cryptographically secure RNG — `rand::rngs::OsRng` in production, a seeded ChaCha in
//! tests.

use rand::{CryptoRng, Rng, RngCore};

use crate::policy::DpMechanism;
use crate::released::DpNoise;

const FRAC_BITS: u32 = 10;
const DEN: u128 = 1 << FRAC_BITS;
/// Largest Laplace scale / Gaussian σ accepted (keeps all sampler arithmetic in `u128`).
pub const MAX_NOISE_SCALE: f64 = 1.0e6;

/// A mechanism with its noise parameters as exact rationals (numerators over 2¹⁰).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Calibrated {
    pub(crate) mechanism: DpMechanism,
    pub(crate) sensitivity: u32,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// Laplace scale = t / DEN.
    Laplace { t: u128 },
    /// σ² = num / DEN.
    Gaussian { num: u128 },
}

impl Calibrated {
    pub(crate) fn new(mechanism: &DpMechanism, sensitivity: u32) -> Result<Self, String> {
        let delta_f = f64::from(sensitivity.max(1));
        let eps = mechanism.epsilon();
        if !(eps.is_finite() && eps > 0.0) {
            return Err("epsilon must be positive and finite".into());
        }
        let kind = match *mechanism {
            DpMechanism::Laplace { .. } => {
                let scale = delta_f / eps;
                if !(scale.is_finite() && scale <= MAX_NOISE_SCALE) {
                    return Err(format!("Laplace scale {scale} exceeds {MAX_NOISE_SCALE}"));
                }
                let t = (scale * DEN as f64 * (1.0 + 1e-12)).ceil().max(1.0) as u128;
                Kind::Laplace { t }
            }
            DpMechanism::Gaussian { delta, .. } => {
                if !(delta.is_finite() && delta > 0.0 && delta < 1.0) {
                    return Err("Gaussian delta must be in (0, 1)".into());
                }
                let l = (1.0 / delta).ln();
                let sqrt_rho = (l + eps).sqrt() - l.sqrt();
                let rho = sqrt_rho * sqrt_rho;
                if !(rho.is_finite() && rho > 0.0) {
                    return Err("epsilon too small for this delta".into());
                }
                let sigma2 = delta_f * delta_f / (2.0 * rho);
                if !(sigma2.is_finite() && sigma2.sqrt() <= MAX_NOISE_SCALE) {
                    return Err(format!("Gaussian sigma exceeds {MAX_NOISE_SCALE}"));
                }
                // Safety margin against rounding in ln/sqrt, then round up.
                let num = (sigma2 * DEN as f64 * (1.0 + 1e-9)).ceil().max(1.0) as u128;
                Kind::Gaussian { num }
            }
        };
        Ok(Calibrated {
            mechanism: *mechanism,
            sensitivity,
            kind,
        })
    }

    /// What the hub is told about the noise.
    pub(crate) fn describe(&self) -> DpNoise {
        match (self.kind, self.mechanism) {
            (Kind::Laplace { t }, m) => DpNoise::Laplace {
                epsilon: m.epsilon(),
                sensitivity: self.sensitivity,
                scale: t as f64 / DEN as f64,
            },
            (Kind::Gaussian { num }, m) => DpNoise::Gaussian {
                epsilon: m.epsilon(),
                delta: m.delta(),
                sensitivity: self.sensitivity,
                sigma: (num as f64 / DEN as f64).sqrt(),
            },
        }
    }

    /// One noise draw.
    pub(crate) fn sample<R: RngCore + CryptoRng + ?Sized>(&self, rng: &mut R) -> i64 {
        let x = match self.kind {
            Kind::Laplace { t } => discrete_laplace(rng, DEN, t),
            Kind::Gaussian { num } => discrete_gaussian(rng, num, DEN),
        };
        i64::try_from(x).unwrap_or(if x < 0 { i64::MIN } else { i64::MAX })
    }
}

/// Uniform in `[0, n)`; `n ≥ 1`.
fn uniform<R: RngCore + ?Sized>(rng: &mut R, n: u128) -> u128 {
    if n <= 1 {
        return 0;
    }
    rng.gen_range(0..n)
}

/// Bernoulli(exp(−num/den)) exactly (CKS Algorithm 1).
pub(crate) fn bernoulli_exp<R: RngCore + ?Sized>(rng: &mut R, num: u128, den: u128) -> bool {
    if den == 0 {
        return false;
    }
    let mut n = num;
    while n > den {
        if !bernoulli_exp_le1(rng, 1, 1) {
            return false;
        }
        n -= den;
    }
    bernoulli_exp_le1(rng, n, den)
}

/// Bernoulli(exp(−γ)) for γ = num/den ∈ [0, 1].
fn bernoulli_exp_le1<R: RngCore + ?Sized>(rng: &mut R, num: u128, den: u128) -> bool {
    let mut k: u128 = 1;
    // A ~ Bernoulli(γ / k); stop at the first A = 0.
    while let Some(d) = den.checked_mul(k) {
        if uniform(rng, d) < num {
            k += 1;
        } else {
            break;
        }
    }
    k % 2 == 1
}

/// Discrete Laplace with scale t/s (CKS Algorithm 2).
pub(crate) fn discrete_laplace<R: RngCore + ?Sized>(rng: &mut R, s: u128, t: u128) -> i128 {
    let s = s.max(1);
    let t = t.max(1);
    loop {
        let u = uniform(rng, t);
        if !bernoulli_exp(rng, u, t) {
            continue;
        }
        let mut v: u128 = 0;
        while bernoulli_exp(rng, 1, 1) {
            v += 1;
        }
        let Some(x) = t.checked_mul(v).and_then(|tv| tv.checked_add(u)) else {
            continue;
        };
        let y = x / s;
        let negative: bool = rng.gen();
        if negative && y == 0 {
            continue;
        }
        let y = i128::try_from(y).unwrap_or(i128::MAX);
        return if negative { -y } else { y };
    }
}

/// Discrete Gaussian with σ² = num/den (CKS Algorithm 3).
pub(crate) fn discrete_gaussian<R: RngCore + ?Sized>(rng: &mut R, num: u128, den: u128) -> i128 {
    let num = num.max(1);
    let den = den.max(1);
    let t = isqrt(num / den) + 1;
    loop {
        let y = discrete_laplace(rng, 1, t);
        // γ = (|y| − σ²/t)² / (2σ²) = (|y|·den·t − num)² / (2·num·den·t²)
        let abs = y.unsigned_abs();
        let Some(a) = abs.checked_mul(den).and_then(|v| v.checked_mul(t)) else {
            continue;
        };
        let diff = a.abs_diff(num);
        let Some(g_num) = diff.checked_mul(diff) else {
            continue;
        };
        let Some(g_den) = num
            .checked_mul(2)
            .and_then(|v| v.checked_mul(den))
            .and_then(|v| v.checked_mul(t))
            .and_then(|v| v.checked_mul(t))
        else {
            continue;
        };
        if bernoulli_exp(rng, g_num, g_den) {
            return y;
        }
    }
}

fn isqrt(n: u128) -> u128 {
    if n < 2 {
        return n;
    }
    let mut x = (n as f64).sqrt() as u128;
    while x.checked_mul(x).is_none_or(|sq| sq > n) {
        x -= 1;
    }
    while (x + 1).checked_mul(x + 1).is_some_and(|sq| sq <= n) {
        x += 1;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn isqrt_is_exact() {
        for n in [
            0u128,
            1,
            2,
            3,
            4,
            15,
            16,
            17,
            1 << 60,
            (1 << 62) - 1,
            u64::MAX as u128,
        ] {
            let r = isqrt(n);
            assert!(r * r <= n && (r + 1) * (r + 1) > n, "{n}");
        }
    }

    #[test]
    fn bernoulli_exp_rate() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let n = 200_000;
        for (num, den) in [(1u128, 2u128), (3, 1), (7, 4)] {
            let hits = (0..n).filter(|_| bernoulli_exp(&mut rng, num, den)).count();
            let p = (-(num as f64) / den as f64).exp();
            assert!((hits as f64 / n as f64 - p).abs() < 0.005, "{num}/{den}");
        }
    }

    #[test]
    fn laplace_moments() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        // scale 2: P(0) = tanh(1/4) ≈ 0.2449, Var = 2e^{-1/2}/(1-e^{-1/2})² ≈ 7.83.
        let n = 200_000;
        let xs: Vec<i128> = (0..n).map(|_| discrete_laplace(&mut rng, 1, 2)).collect();
        let zeros = xs.iter().filter(|&&x| x == 0).count() as f64 / n as f64;
        let mean = xs.iter().sum::<i128>() as f64 / n as f64;
        let var = xs.iter().map(|&x| (x * x) as f64).sum::<f64>() / n as f64;
        assert!((zeros - 0.2449).abs() < 0.005, "{zeros}");
        assert!(mean.abs() < 0.05, "{mean}");
        assert!((var - 7.83).abs() < 0.2, "{var}");
    }

    #[test]
    fn gaussian_moments() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let n = 100_000;
        // σ² = 9 → variance ≈ 9 (discrete Gaussian variance < σ² but ≈ for σ ≥ 1).
        let xs: Vec<i128> = (0..n)
            .map(|_| discrete_gaussian(&mut rng, 9 * DEN, DEN))
            .collect();
        let mean = xs.iter().sum::<i128>() as f64 / n as f64;
        let var = xs.iter().map(|&x| (x * x) as f64).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.05, "{mean}");
        assert!((var - 9.0).abs() < 0.25, "{var}");
    }

    #[test]
    fn gaussian_calibration_meets_target() {
        let c = Calibrated::new(
            &DpMechanism::Gaussian {
                epsilon: 1.0,
                delta: 1e-6,
            },
            1,
        )
        .unwrap();
        let DpNoise::Gaussian { sigma, .. } = c.describe() else {
            panic!()
        };
        let rho = 1.0 / (2.0 * sigma * sigma);
        let eps = rho + 2.0 * (rho * (1e6f64).ln()).sqrt();
        assert!(eps <= 1.0 + 1e-9, "{eps}");
        assert!(eps > 0.999, "{eps}");
    }
}
