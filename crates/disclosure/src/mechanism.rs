//! The release mechanism of DP mode: noise first, then the threshold on the noisy value, then
//! rounding.
//!
//! For one statistic `s` of sensitivity `Δ` over the person set `S` with true value `v`:
//!
//! 1. `seed = HMAC-SHA256(noise key, question ‖ s.name ‖ Δ ‖ σ ‖ digest(S) ‖ v)`: a keyed PRF
//!    of *what was asked* (the job's query and cohort definition), *which statistic* and *the
//!    exact person set*; identical question and set give an identical answer (asking again
//!    reveals nothing new), and nobody without the site secret can predict the noise.
//! 2. `noisy = v + Z`, `Z` ~ discrete Gaussian with `σ·Δ`, drawn exactly from a ChaCha20
//!    stream seeded with `seed` (see [`crate::dp`]). This costs `ρ = 1/(2σ²)` (zCDP).
//! 3. Post-processing (costs no privacy): consistency (a non-increasing funnel, margins that
//!    are sums of their cells), clamping at 0, rounding to an integer.
//! 4. `noisy < threshold` is shown as "< threshold": the decision is on the noisy value, so
//!    no observable decision depends on a true count.
//!
//! Why the question is part of the key: with noise keyed on the person set alone, two
//! questions whose sets coincide exactly when a named person is absent (`count(C)` and
//! `count(C ∖ {p})`) answer identically iff `p ∉ C`, an equality oracle that no noise level
//! hides (it breaks differential privacy outright). Keyed on the question as well, every new
//! question gets its own draw and is charged to the budget, so averaging over reworded
//! questions is bounded by the budget, as the zCDP accounting says.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

use crate::digest::PersonSetDigest;
use crate::dp::DiscreteGaussian;
use crate::secret::{hmac_sha256, SiteSecret};

/// What was asked, as the mechanism keys it: SHA-256 of the caller's canonical encoding of the
/// question (for a job: its query type and cohort definition).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Question(pub [u8; 32]);

impl Question {
    /// The question whose canonical encoding is `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let mut q = [0u8; 32];
        q.copy_from_slice(&Sha256::digest(bytes));
        Question(q)
    }
}

/// A released statistic, declared with its sensitivity next to its definition.
///
/// `sensitivity` is the most one person can change the value (1 for a person count; the
/// clipping bound for clipped row counts). Statistics of one `family` are disjoint: one person
/// changes at most one of them (e.g. the cells of a breakdown, or "persons failing only rule
/// i" over i), so the family costs like one statistic (parallel composition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statistic {
    /// Its name within the question (part of the noise key).
    pub name: String,
    /// Largest change one person can make to it.
    pub sensitivity: u32,
    /// The family of mutually disjoint statistics it belongs to, if any.
    pub family: Option<String>,
}

impl Statistic {
    /// A count of distinct persons: sensitivity 1.
    pub fn person_count(name: impl Into<String>) -> Self {
        Statistic {
            name: name.into(),
            sensitivity: 1,
            family: None,
        }
    }

    /// A person count in a family of disjoint person counts: sensitivity 1, and one person is
    /// in at most one member of the family.
    pub fn disjoint_person_count(name: impl Into<String>, family: impl Into<String>) -> Self {
        Statistic {
            name: name.into(),
            sensitivity: 1,
            family: Some(family.into()),
        }
    }

    /// A vector of integers (e.g. fixed-point sums, [`crate::Discloser::release_vector`]) whose
    /// L2 norm one person changes by at most `l2`: every coordinate gets its own discrete
    /// Gaussian with `σ·l2`, one release in all: a coordinate shifted by `t_j` has Rényi
    /// divergence `α·t_j²/(2(σΔ)²)` (CKS 2020, Thm. 4), independent coordinates add, and
    /// `Σ t_j² ≤ Δ²`, so the vector is `1/(2σ²)`-zCDP.
    pub fn vector(name: impl Into<String>, l2: u32) -> Self {
        Statistic {
            name: name.into(),
            sensitivity: l2.max(1),
            family: None,
        }
    }

    /// A bin of a histogram of clipped rows (each person's rows clipped to `bound`, each row in
    /// one bin of the family): one person adds at most `bound` rows across the family's bins, so
    /// the histogram's L2 change is at most `bound` (‖x‖₂ ≤ ‖x‖₁) and the family, each bin noised
    /// at σ·`bound`, costs one release.
    pub fn clipped_histogram_bin(
        name: impl Into<String>,
        family: impl Into<String>,
        bound: u32,
    ) -> Self {
        Statistic {
            name: name.into(),
            sensitivity: bound.max(1),
            family: Some(family.into()),
        }
    }

    /// A sum over clipped rows (each person's rows clipped to `bound`) of values clipped to
    /// `[0, max]`: sensitivity `bound × max`. None when that exceeds `u32`.
    pub fn clipped_sum(name: impl Into<String>, bound: u32, max: u64) -> Option<Self> {
        let sensitivity = u64::from(bound.max(1)).checked_mul(max.max(1))?;
        Some(Statistic {
            name: name.into(),
            sensitivity: u32::try_from(sensitivity).ok()?,
            family: None,
        })
    }

    /// A count of rows with each person's rows clipped to `bound`: sensitivity `bound`.
    pub fn clipped_rows(name: impl Into<String>, bound: u32) -> Self {
        Statistic {
            name: name.into(),
            sensitivity: bound.max(1),
            family: None,
        }
    }
}

/// ρ (zCDP) of releasing `stats` together with noise `σ·Δ` each: `1/(2σ²)` per statistic
/// outside a family plus `1/(2σ²)` per family (its members are disjoint, so one person moves
/// one of them by at most Δ, and each is noised at σ·Δ).
pub fn rho_of(stats: &[Statistic], sigma: f64) -> f64 {
    let mut families: Vec<&str> = stats.iter().filter_map(|s| s.family.as_deref()).collect();
    families.sort_unstable();
    families.dedup();
    let singles = stats.iter().filter(|s| s.family.is_none()).count();
    (singles + families.len()) as f64 * crate::dp::gaussian_rho(1.0, sigma)
}

/// The noisy value of one statistic (step 1–2 above), before post-processing.
pub(crate) fn noisy_value(
    secret: &SiteSecret,
    question: &Question,
    stat: &Statistic,
    sigma: f64,
    persons: &PersonSetDigest,
    value: u64,
) -> (i64, f64) {
    let scaled = sigma * f64::from(stat.sensitivity.max(1));
    let Some(noise) = DiscreteGaussian::new(scaled) else {
        // Unreachable with a validated policy; never release a noiseless value.
        return (0, f64::INFINITY);
    };
    let mut rng = noise_stream(
        secret,
        b"qiao-disclosure/v2/dp-release",
        (question, stat, sigma, persons),
        &[&value.to_le_bytes()],
    );
    let z = noise.sample(&mut rng);
    let v = i64::try_from(value).unwrap_or(i64::MAX);
    (v.saturating_add(z), noise.sigma())
}

/// The noisy values of a vector statistic ([`Statistic::vector`]): each coordinate plus an
/// independent discrete Gaussian with `σ·Δ`, all drawn from one ChaCha20 stream seeded with the
/// keyed PRF of the question, the statistic, Δ, σ, the person set and every true value. `None`
/// when `σ·Δ` is beyond the sampler's range (never a noiseless value).
pub(crate) fn noisy_vector(
    secret: &SiteSecret,
    question: &Question,
    stat: &Statistic,
    sigma: f64,
    persons: &PersonSetDigest,
    values: &[i64],
) -> Option<(Vec<i64>, f64)> {
    let noise = DiscreteGaussian::new(sigma * f64::from(stat.sensitivity.max(1)))?;
    let mut bytes = Vec::with_capacity(8 * values.len());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let mut rng = noise_stream(
        secret,
        b"qiao-disclosure/v2/dp-vector",
        (question, stat, sigma, persons),
        &[&(values.len() as u64).to_le_bytes(), &bytes],
    );
    let noisy = values
        .iter()
        .map(|&v| v.saturating_add(noise.sample(&mut rng)))
        .collect();
    Some((noisy, noise.sigma()))
}

/// The ChaCha20 stream a DP release draws its noise from: seeded with the site's keyed PRF of
/// the mechanism's `domain`, the question, the statistic (name, Δ), σ, the person set and the
/// release's true values (`values`, as bytes), so a repeated question gets the same noise.
fn noise_stream(
    secret: &SiteSecret,
    domain: &[u8],
    (question, stat, sigma, persons): (&Question, &Statistic, f64, &PersonSetDigest),
    values: &[&[u8]],
) -> ChaCha20Rng {
    let name_len = (stat.name.len() as u64).to_le_bytes();
    let sensitivity = stat.sensitivity.to_le_bytes();
    let sigma = sigma.to_bits().to_le_bytes();
    let persons = persons.to_bytes();
    let mut parts: Vec<&[u8]> = vec![
        domain,
        &question.0,
        &name_len,
        stat.name.as_bytes(),
        &sensitivity,
        &sigma,
        &persons,
    ];
    parts.extend_from_slice(values);
    ChaCha20Rng::from_seed(hmac_sha256(&secret.noise_key, &parts))
}

/// The non-increasing sequence closest (least squares) to `xs`: pool-adjacent-violators.
pub fn non_increasing(xs: &[f64]) -> Vec<f64> {
    // Blocks of (sum, count), merged while a later block's mean exceeds an earlier one's.
    let mut blocks: Vec<(f64, usize)> = Vec::with_capacity(xs.len());
    for &x in xs {
        blocks.push((x, 1));
        while blocks.len() >= 2 {
            let (s2, n2) = blocks[blocks.len() - 1];
            let (s1, n1) = blocks[blocks.len() - 2];
            if s2 / n2 as f64 > s1 / n1 as f64 {
                blocks.pop();
                blocks.pop();
                blocks.push((s1 + s2, n1 + n2));
            } else {
                break;
            }
        }
    }
    blocks
        .into_iter()
        .flat_map(|(s, n)| std::iter::repeat_n(s / n as f64, n))
        .collect()
}

/// A noisy value after post-processing: rounded to the nearest integer, clamped at 0.
pub(crate) fn rounded(x: f64) -> u64 {
    if x.is_nan() || x <= 0.0 {
        0
    } else {
        x.round().min(u64::MAX as f64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pava_is_non_increasing_and_keeps_monotone_input() {
        assert_eq!(
            non_increasing(&[5.0, 4.0, 4.0, 1.0]),
            vec![5.0, 4.0, 4.0, 1.0]
        );
        assert_eq!(non_increasing(&[3.0, 5.0, 1.0]), vec![4.0, 4.0, 1.0]);
        assert_eq!(non_increasing(&[1.0, 2.0, 3.0]), vec![2.0, 2.0, 2.0]);
        let y = non_increasing(&[10.0, 12.0, 7.0, 9.0, 8.0, -2.0]);
        assert!(y.windows(2).all(|w| w[0] >= w[1]), "{y:?}");
        // Least squares keeps the sum.
        assert!((y.iter().sum::<f64>() - 44.0).abs() < 1e-9);
    }

    #[test]
    fn cost_counts_families_once() {
        let s = 6.0;
        let one = 1.0 / 72.0;
        let stats = [
            Statistic::person_count("a"),
            Statistic::person_count("b"),
            Statistic::disjoint_person_count("g0", "gain"),
            Statistic::disjoint_person_count("g1", "gain"),
            Statistic::clipped_rows("entries", 10),
        ];
        assert!((rho_of(&stats, s) - 4.0 * one).abs() < 1e-15);
    }
}
