//! Exact 95% intervals CohortIncidence does not give: Garwood's exact Poisson interval for a
//! rate, Clopper–Pearson's for a proportion. Both are quantiles of the gamma and beta
//! distributions, computed from the regularized incomplete gamma and beta functions (series and
//! continued fractions) and inverted by safeguarded Newton steps to full double precision.

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

/// The regularized lower incomplete gamma function P(a, x).
fn gamma_p(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let front = (a * x.ln() - x - ln_gamma(a)).exp();
    if x < a + 1.0 {
        // Series: P = e^{-x} x^a / Γ(a+1) · Σ x^n / ((a+1)…(a+n)).
        let mut term = 1.0 / a;
        let mut sum = term;
        let mut ap = a;
        for _ in 0..10_000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-17 {
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
        for i in 1..10_000 {
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
            if (del - 1.0).abs() < 1e-17 {
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
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
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
    for m in 1..10_000 {
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
        if (del - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// The x in [lo, hi] with `cdf(x) = p` for an increasing `cdf` with density `pdf`: Newton steps
/// kept inside a shrinking bracket (bisection when a step leaves it), to a relative step of 1e-15.
fn invert(
    cdf: impl Fn(f64) -> f64,
    pdf: impl Fn(f64) -> f64,
    p: f64,
    mut lo: f64,
    mut hi: f64,
) -> f64 {
    let mut x = 0.5 * (lo + hi);
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

/// The p-quantile of Gamma(shape a, scale 1).
pub fn gamma_quantile(p: f64, a: f64) -> f64 {
    let mut hi = a.max(1.0);
    while gamma_p(a, hi) < p {
        hi *= 2.0;
    }
    let ln_norm = ln_gamma(a);
    invert(
        |x| gamma_p(a, x),
        |x| ((a - 1.0) * x.ln() - x - ln_norm).exp(),
        p,
        0.0,
        hi,
    )
}

/// The p-quantile of Beta(a, b).
pub fn beta_quantile(p: f64, a: f64, b: f64) -> f64 {
    let ln_norm = ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b);
    invert(
        |x| beta_i(a, b, x),
        |x| ((a - 1.0) * x.ln() + (b - 1.0) * (1.0 - x).ln() - ln_norm).exp(),
        p,
        0.0,
        1.0,
    )
}

/// Garwood's exact Poisson 95% interval of a rate: `events` over `exposure`, scaled by `per`
/// (e.g. events per 100 person-years: exposure in years, per = 100). None for no exposure.
pub fn poisson_rate_ci(events: u64, exposure: f64, per: f64) -> Option<(f64, f64)> {
    if exposure <= 0.0 || !exposure.is_finite() {
        return None;
    }
    let k = events as f64;
    let low = if events == 0 {
        0.0
    } else {
        gamma_quantile(0.025, k)
    };
    let high = gamma_quantile(0.975, k + 1.0);
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
