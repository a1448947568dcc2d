//! Exact 95% intervals CohortIncidence does not give: Garwood's exact Poisson interval for a
//! rate, Clopper–Pearson's for a proportion. Both are quantiles of the gamma and beta
//! distributions, computed from the regularized incomplete gamma and beta functions (series and
//! continued fractions) and inverted by safeguarded Newton steps to full double precision.
//!
//! At network scale (millions of outcomes or persons) the functions' prefactor
//! `xᵃ e⁻ˣ / Γ(a)` is the exponential of a difference of numbers near `a ln a`: computed as that
//! difference it loses `a ln a · 1e-16` of absolute accuracy (1e-9 at a = 10⁶). It is computed
//! instead in Loader's saddle-point form, from Stirling's correction and the deviance term
//! `a ln(a/x) + x − a` (summed as a series when `a ≈ x`), which keeps full relative precision at
//! any size; and the series and continued fractions run until they converge in double precision
//! (their length grows as √a near the mode).

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error ≈ 1e-15).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Stirling's correction `ln Γ(n+1) − [(n + ½) ln n − n + ½ ln 2π]`, n > 0: its asymptotic
/// series above 15, else from ln Γ (small there, so no cancellation).
fn stirling_error(n: f64) -> f64 {
    const S: [f64; 5] = [
        1.0 / 12.0,
        1.0 / 360.0,
        1.0 / 1260.0,
        1.0 / 1680.0,
        1.0 / 1188.0,
    ];
    if n <= 15.0 {
        let half_ln_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        return ln_gamma(n + 1.0) - (n + 0.5) * n.ln() + n - half_ln_2pi;
    }
    let nn = n * n;
    let terms = if n > 500.0 {
        2
    } else if n > 80.0 {
        3
    } else if n > 35.0 {
        4
    } else {
        5
    };
    // S0 − (S1 − (S2 − …)/n²)/n², divided by n.
    let mut acc = S[terms - 1];
    for k in (0..terms - 1).rev() {
        acc = S[k] - acc / nn;
    }
    acc / n
}

/// The deviance term `x ln(x/m) + m − x` (x, m > 0) without cancellation when x ≈ m: there
/// it is the series `(x−m)·v + 2x·Σ v^(2j+1)/(2j+1)` with `v = (x−m)/(x+m)`.
fn deviance(x: f64, m: f64) -> f64 {
    if (x - m).abs() < 0.1 * (x + m) {
        let v = (x - m) / (x + m);
        let v2 = v * v;
        let mut sum = (x - m) * v;
        let mut ej = 2.0 * x * v;
        for j in 1..1000 {
            ej *= v2;
            let next = sum + ej / f64::from(2 * j + 1);
            if next == sum {
                break;
            }
            sum = next;
        }
        sum
    } else {
        x * (x / m).ln() + m - x
    }
}

/// `xᵃ e⁻ˣ / Γ(a)` (a, x > 0) to full relative precision: `a` times the Poisson density
/// `e⁻ˣ xᵃ / Γ(a+1) = exp(−stirling_error(a) − deviance(a, x)) / √(2πa)`.
fn gamma_front(a: f64, x: f64) -> f64 {
    let density =
        (-stirling_error(a) - deviance(a, x)).exp() / (2.0 * std::f64::consts::PI * a).sqrt();
    a * density
}

/// `xᵃ (1−x)ᵇ / B(a, b)` (a, b > 0, 0 < x < 1) to full relative precision: with n = a + b,
/// `ab/n` times the binomial density `Γ(n+1)/(Γ(a+1)Γ(b+1)) xᵃ (1−x)ᵇ`, which is
/// `exp(st(n) − st(a) − st(b) − deviance(a, nx) − deviance(b, n(1−x))) · √(n / (2πab))`.
fn beta_front(a: f64, b: f64, x: f64) -> f64 {
    let n = a + b;
    let lc = stirling_error(n)
        - stirling_error(a)
        - stirling_error(b)
        - deviance(a, n * x)
        - deviance(b, n * (1.0 - x));
    let density = lc.exp() * (n / (2.0 * std::f64::consts::PI * a * b)).sqrt();
    a * b / n * density
}

/// The most terms a series or continued fraction may take: they converge in O(√a) terms near
/// the mode (≈ 1.2 million at a = 10¹⁰), so this bound is only reached on a non-finite input.
const MAX_TERMS: usize = 10_000_000;

/// The regularized lower incomplete gamma function P(a, x).
fn gamma_p(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let front = gamma_front(a, x);
    if x < a + 1.0 {
        // Series: P = e^{-x} x^a / Γ(a+1) · Σ x^n / ((a+1)…(a+n)).
        let mut term = 1.0 / a;
        let mut sum = term;
        let mut ap = a;
        for _ in 0..MAX_TERMS {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() <= sum.abs() * f64::EPSILON {
                break;
            }
        }
        (sum * front).min(1.0)
    } else {
        // Continued fraction for Q = 1 − P (modified Lentz).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..MAX_TERMS {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() <= f64::EPSILON {
                break;
            }
        }
        (1.0 - front * h).max(0.0)
    }
}

/// The regularized incomplete beta function I_x(a, b).
fn beta_i(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = beta_front(a, b, x);
    // The continued fraction converges fast for x < (a+1)/(a+b+2); use symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    let tiny = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < tiny {
        d = tiny;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..MAX_TERMS {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < tiny {
            d = tiny;
        }
        c = 1.0 + aa / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < tiny {
            d = tiny;
        }
        c = 1.0 + aa / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() <= f64::EPSILON {
            break;
        }
    }
    h
}

/// The x in [lo, hi] with `cdf(x) = p` for an increasing `cdf` with density `pdf`, from a first
/// guess `x0`: Newton steps kept inside a shrinking bracket (bisection when a step leaves it), to
/// a relative step of 1e-15. From a guess within a few per cent, that is 3–5 evaluations.
fn invert(
    cdf: impl Fn(f64) -> f64,
    pdf: impl Fn(f64) -> f64,
    p: f64,
    mut lo: f64,
    mut hi: f64,
    x0: f64,
) -> f64 {
    let mut x = if x0.is_finite() && x0 > lo && x0 < hi {
        x0
    } else {
        0.5 * (lo + hi)
    };
    for _ in 0..500 {
        let f = cdf(x) - p;
        if f < 0.0 {
            lo = x;
        } else {
            hi = x;
        }
        let d = pdf(x);
        let newton = x - f / d;
        let next = if d > 0.0 && newton.is_finite() && newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if (next - x).abs() <= 1e-15 * x.abs() || hi - lo <= hi * f64::EPSILON {
            return next;
        }
        x = next;
    }
    x
}

/// The standard normal p-quantile to about 5e-4 (Abramowitz & Stegun 26.2.23): a first guess.
fn normal_quantile_rough(p: f64) -> f64 {
    let q = if p < 0.5 { p } else { 1.0 - p };
    let t = (-2.0 * q.ln()).sqrt();
    let z = t
        - (2.515_517 + 0.802_853 * t + 0.010_328 * t * t)
            / (1.0 + 1.432_788 * t + 0.189_269 * t * t + 0.001_308 * t * t * t);
    if p < 0.5 {
        -z
    } else {
        z
    }
}

/// The p-quantile of Gamma(shape a, scale 1).
pub fn gamma_quantile(p: f64, a: f64) -> f64 {
    // Wilson–Hilferty's cube-root normal approximation as the first guess.
    let z = normal_quantile_rough(p);
    let c = 1.0 - 1.0 / (9.0 * a) + z / (3.0 * a.sqrt());
    let guess = a * c * c * c;
    let mut hi = if guess > 0.0 {
        2.0 * guess + 1.0
    } else {
        a.max(1.0)
    };
    while gamma_p(a, hi) < p {
        hi *= 2.0;
    }
    invert(
        |x| gamma_p(a, x),
        |x| if x > 0.0 { gamma_front(a, x) / x } else { 0.0 },
        p,
        0.0,
        hi,
        guess,
    )
}

/// The p-quantile of Beta(a, b).
pub fn beta_quantile(p: f64, a: f64, b: f64) -> f64 {
    // Abramowitz & Stegun 26.5.22 as the first guess when a, b ≥ 1; else the mean.
    let guess = if a >= 1.0 && b >= 1.0 {
        let y = normal_quantile_rough(p);
        let lambda = (y * y - 3.0) / 6.0;
        let (ra, rb) = (1.0 / (2.0 * a - 1.0), 1.0 / (2.0 * b - 1.0));
        let h = 2.0 / (ra + rb);
        let w = y * (h + lambda).sqrt() / h - (rb - ra) * (lambda + 5.0 / 6.0 - 2.0 / (3.0 * h));
        a / (a + b * (2.0 * w).exp())
    } else {
        a / (a + b)
    };
    invert(
        |x| beta_i(a, b, x),
        |x| {
            if x > 0.0 && x < 1.0 {
                beta_front(a, b, x) / (x * (1.0 - x))
            } else {
                0.0
            }
        },
        p,
        0.0,
        1.0,
        guess,
    )
}

/// Garwood's exact Poisson 95% bounds of the mean of a count of `events`.
pub fn poisson_count_bounds(events: u64) -> (f64, f64) {
    let k = events as f64;
    let low = if events == 0 {
        0.0
    } else {
        gamma_quantile(0.025, k)
    };
    (low, gamma_quantile(0.975, k + 1.0))
}

/// Garwood's exact Poisson 95% interval of a rate: `events` over `exposure`, scaled by `per`
/// (e.g. events per 100 person-years: exposure in years, per = 100). None for no exposure.
pub fn poisson_rate_ci(events: u64, exposure: f64, per: f64) -> Option<(f64, f64)> {
    rate_ci(poisson_count_bounds(events), exposure, per)
}

/// A rate's interval from its count's bounds ([`poisson_count_bounds`]).
fn rate_ci((low, high): (f64, f64), exposure: f64, per: f64) -> Option<(f64, f64)> {
    if exposure <= 0.0 || !exposure.is_finite() {
        return None;
    }
    Some((low / exposure * per, high / exposure * per))
}

/// Clopper–Pearson's exact 95% interval of a proportion `x / n`, scaled by `per`. None for n = 0.
pub fn binomial_proportion_ci(x: u64, n: u64, per: f64) -> Option<(f64, f64)> {
    if n == 0 || x > n {
        return None;
    }
    let (xf, nf) = (x as f64, n as f64);
    let low = if x == 0 {
        0.0
    } else {
        beta_quantile(0.025, xf, nf - xf + 1.0)
    };
    let high = if x == n {
        1.0
    } else {
        beta_quantile(0.975, xf + 1.0, nf - xf)
    };
    Some((low * per, high * per))
}

/// The intervals of many rows (a stratified incidence table), each distinct count's quantiles
/// inverted once: most strata share their small counts.
#[derive(Default)]
pub struct Memo {
    events: rustc_hash::FxHashMap<u64, (f64, f64)>,
    proportions: rustc_hash::FxHashMap<(u64, u64), Option<(f64, f64)>>,
}

impl Memo {
    /// [`poisson_rate_ci`].
    pub fn rate(&mut self, events: u64, exposure: f64, per: f64) -> Option<(f64, f64)> {
        let bounds = *self
            .events
            .entry(events)
            .or_insert_with(|| poisson_count_bounds(events));
        rate_ci(bounds, exposure, per)
    }

    /// [`binomial_proportion_ci`].
    pub fn proportion(&mut self, x: u64, n: u64, per: f64) -> Option<(f64, f64)> {
        let ci = *self
            .proportions
            .entry((x, n))
            .or_insert_with(|| binomial_proportion_ci(x, n, 1.0));
        ci.map(|(low, high)| (low * per, high * per))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_quantiles() {
        // chi2.ppf(0.975, 2)/2 = -ln(0.025) for one event's upper bound with none observed.
        let (lo, hi) = poisson_rate_ci(0, 1.0, 1.0).unwrap();
        assert_eq!(lo, 0.0);
        assert!((hi - (-(0.025f64).ln())).abs() < 1e-12, "{hi}");
        // Clopper–Pearson for 0/n: upper = 1 − 0.025^(1/n).
        let (lo, hi) = binomial_proportion_ci(0, 10, 1.0).unwrap();
        assert_eq!(lo, 0.0);
        assert!((hi - (1.0 - 0.025f64.powf(0.1))).abs() < 1e-12, "{hi}");
        // n/n: lower = 0.025^(1/n).
        let (lo, hi) = binomial_proportion_ci(10, 10, 1.0).unwrap();
        assert!((lo - 0.025f64.powf(0.1)).abs() < 1e-12, "{lo}");
        assert_eq!(hi, 1.0);
        assert!(poisson_rate_ci(3, 0.0, 100.0).is_none());
        assert!(binomial_proportion_ci(0, 0, 100.0).is_none());
    }
}
