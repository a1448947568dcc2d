//! SHRINE-style obfuscation with noise drawn deterministically from the set of persons.
//!
//! SHRINE (≥ 1.22) releases `bin₅(bin₅(n) + clamp(N(0, 6.5²), ±10))`. Since `bin₅(n)` is a
//! multiple of the bin width `w`, `bin_w(bin_w(n) + x) = bin_w(n) + w·round(x / w)`: the only
//! thing the noise contributes is the integer `k = round(clamp(x) / w) ∈ [-K, K]` with
//! `K = round(clamp / w)` (2 for SHRINE). We therefore draw `k` directly from its exact
//! distribution `P(k ≤ j) = Φ((j + ½)·w / σ)` (the clamp folds the tails into `±K`), by
//! comparing one 64-bit uniform against a table of CDF thresholds. The uniform comes from
//! `HMAC-SHA256(noise_key, digest of the person set)`, so the same set always gets the same
//! answer, however the query was worded, and nobody without the site secret can predict it.
//!
//! Φ is computed with a series that uses only `+ − × ÷` (no `exp`/`erf` from the platform's
//! libm), so the table — and hence every released value — is bit-identical on every platform
//! and compiler version: a site upgrade cannot hand an attacker a second, independent noise
//! draw for the same set.

use crate::digest::PersonSetDigest;
use crate::policy::ObfuscationParams;
use crate::released::Released;
use crate::secret::{hmac_sha256, SiteSecret};

/// erf(x) for x ≥ 0 with only IEEE basic operations (bit-reproducible).
///
/// erf(x) = 2/√π · e^{-x²} · Σ_{n≥0} 2ⁿ x^{2n+1} / (1·3·…·(2n+1)); e^{x²} by its Taylor series.
/// Both series have positive terms, so there is no cancellation.
pub(crate) fn erf_portable(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return 0.0;
    }
    if x >= 6.0 {
        return 1.0;
    }
    let x2 = x * x;
    let mut term = 1.0f64;
    let mut ex = 1.0f64;
    let mut n = 1.0f64;
    for _ in 0..1000 {
        term = term * x2 / n;
        ex += term;
        n += 1.0;
        if term < ex * 1e-18 {
            break;
        }
    }
    let mut t = x;
    let mut s = x;
    let mut k = 1.0f64;
    for _ in 0..1000 {
        k += 2.0;
        t = t * 2.0 * x2 / k;
        s += t;
        if t < s * 1e-18 {
            break;
        }
    }
    const TWO_OVER_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;
    (TWO_OVER_SQRT_PI * s / ex).min(1.0)
}

/// Standard normal CDF, bit-reproducible.
pub(crate) fn phi(z: f64) -> f64 {
    const SQRT_2: f64 = std::f64::consts::SQRT_2;
    if z >= 0.0 {
        0.5 + 0.5 * erf_portable(z / SQRT_2)
    } else {
        0.5 - 0.5 * erf_portable(-z / SQRT_2)
    }
}

/// The precomputed distribution of the noise offset `k` (in bins).
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseTable {
    params: ObfuscationParams,
    k_max: i64,
    /// `thresholds[i]` = ⌊2⁶⁴ · P(k ≤ i − K)⌋ for i in 0..2K.
    thresholds: Vec<u64>,
}

impl NoiseTable {
    /// Builds the table for validated parameters.
    pub fn new(params: &ObfuscationParams) -> Self {
        let w = params.bin.max(1) as f64;
        let sigma = if params.sigma.is_finite() && params.sigma > 0.0 {
            params.sigma
        } else {
            1.0
        };
        let ratio = params.clamp / w;
        let k_max = if ratio.is_finite() && ratio > 0.0 {
            ratio.round().min(100_000.0) as i64
        } else {
            0
        };
        let mut thresholds = Vec::with_capacity((2 * k_max) as usize);
        for j in -k_max..k_max {
            let z = (j as f64 + 0.5) * w / sigma;
            let p = phi(z);
            thresholds.push((p * 18_446_744_073_709_551_616.0) as u64);
        }
        NoiseTable {
            params: params.clone(),
            k_max,
            thresholds,
        }
    }

    /// The noise offset, in bins, for a 64-bit uniform `u`.
    pub fn offset(&self, u: u64) -> i64 {
        let idx = self.thresholds.partition_point(|&t| t <= u);
        idx as i64 - self.k_max
    }

    /// `P(k = j)` for j in −K..=K (for documentation and tests).
    pub fn probabilities(&self) -> Vec<(i64, f64)> {
        let two64 = 18_446_744_073_709_551_616.0f64;
        let mut prev = 0.0;
        let mut out = Vec::new();
        for (i, &t) in self.thresholds.iter().enumerate() {
            let c = t as f64 / two64;
            out.push((i as i64 - self.k_max, c - prev));
            prev = c;
        }
        out.push((self.k_max, 1.0 - prev));
        out
    }

    /// The largest `|released − true|` before the threshold floor: `⌊bin/2⌋ + K·bin`.
    pub fn max_error(&self) -> u64 {
        (self.params.bin / 2).saturating_add((self.k_max as u64).saturating_mul(self.params.bin))
    }

    /// The parameters.
    pub fn params(&self) -> &ObfuscationParams {
        &self.params
    }
}

/// `n` rounded to the nearest multiple of `w`, halves up.
pub(crate) fn bin_round(n: u64, w: u64) -> u64 {
    let w = w.max(1);
    (n.saturating_add(w / 2) / w).saturating_mul(w)
}

/// The smallest multiple of `w` that is ≥ `t`.
pub(crate) fn bin_ceil(t: u64, w: u64) -> u64 {
    let w = w.max(1);
    t.div_ceil(w).saturating_mul(w)
}

/// The uniform that drives the noise of `set`: the first 8 bytes of
/// `HMAC-SHA256(noise_key, "obfuscation/v1" ‖ digest)`.
pub(crate) fn set_uniform(secret: &SiteSecret, set: &PersonSetDigest) -> u64 {
    let mac = hmac_sha256(&secret.noise_key, &[b"obfuscation/v1", &set.to_bytes()]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&mac[..8]);
    u64::from_le_bytes(b)
}

/// Threshold, then obfuscate, then floor. The threshold is checked on the true count; the
/// released value is never below the threshold: a noised value that falls below it is raised
/// to `floor = bin_ceil(threshold)` (clamping, not suppression: "< threshold" keeps meaning
/// "the true count is below the threshold").
pub(crate) fn obfuscate(
    table: &NoiseTable,
    secret: &SiteSecret,
    threshold: u64,
    set: &PersonSetDigest,
) -> Released {
    obfuscate_value(table, secret, threshold, set, set.count())
}

/// [`obfuscate`] for a value `n` that is not the size of the set keying the noise.
pub(crate) fn obfuscate_value(
    table: &NoiseTable,
    secret: &SiteSecret,
    threshold: u64,
    set: &PersonSetDigest,
    n: u64,
) -> Released {
    if n < threshold {
        return Released::Suppressed {
            threshold,
            basis: crate::SuppressionBasis::TrueCount,
        };
    }
    let p = &table.params;
    let w = p.bin.max(1);
    let k = table.offset(set_uniform(secret, set));
    let base = bin_round(n, w) as i128;
    let noised = base + i128::from(k) * i128::from(w);
    let floor = bin_ceil(threshold, w);
    let value = if noised < i128::from(floor) {
        floor
    } else {
        u64::try_from(noised).unwrap_or(u64::MAX)
    };
    Released::Obfuscated {
        value,
        bin: w,
        sigma: p.sigma,
        clamp: p.clamp,
        threshold,
        floor,
        max_error: table.max_error(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        // Reference values of erf.
        for (x, e) in [
            (0.1, 0.112_462_916_018_284_9),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
            (5.0, 0.999_999_999_998_462_5),
        ] {
            assert!((erf_portable(x) - e).abs() < 1e-14, "erf({x})");
        }
    }

    #[test]
    fn shrine_table_matches_simulated_definition() {
        let t = NoiseTable::new(&ObfuscationParams::default());
        let probs = t.probabilities();
        assert_eq!(probs.len(), 5);
        // Simulate the definition with Box–Muller: round(clamp(N(0, 6.5²), ±10) / 5).
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let mut hist = [0u64; 5];
        let n = 400_000;
        for _ in 0..n {
            let u1: f64 = 1.0 - rng.gen::<f64>();
            let u2: f64 = rng.gen();
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            let x = (6.5 * z).clamp(-10.0, 10.0);
            let k = (x / 5.0).round() as i64;
            hist[(k + 2) as usize] += 1;
        }
        for (i, (k, p)) in probs.iter().enumerate() {
            assert_eq!(*k, i as i64 - 2);
            let emp = hist[i] as f64 / n as f64;
            assert!(
                (emp - p).abs() < 0.005,
                "k={k}: table {p} vs simulated {emp}"
            );
        }
        // P(k = 0) = 2Φ(2.5/6.5) − 1 ≈ 0.2995.
        assert!((probs[2].1 - 0.2995).abs() < 0.001);
        assert_eq!(t.max_error(), 12);
    }

    #[test]
    fn offsets_cover_the_range() {
        let t = NoiseTable::new(&ObfuscationParams::default());
        assert_eq!(t.offset(0), -2);
        assert_eq!(t.offset(u64::MAX), 2);
        assert_eq!(t.offset(u64::MAX / 2), 0);
    }

    #[test]
    fn binning() {
        assert_eq!(bin_round(0, 5), 0);
        assert_eq!(bin_round(2, 5), 0);
        assert_eq!(bin_round(3, 5), 5);
        assert_eq!(bin_round(12, 5), 10);
        assert_eq!(bin_round(13, 5), 15);
        assert_eq!(bin_round(u64::MAX, 5), bin_round(u64::MAX, 5));
        assert_eq!(bin_ceil(10, 5), 10);
        assert_eq!(bin_ceil(11, 5), 15);
    }
}
