//! The little dense linear algebra Newton–Raphson needs: a Cholesky factorization of the
//! (symmetric, positive-definite) information matrix, to solve for the step and to invert it for
//! the covariance. Matrices are row-major `p × p` slices.

/// The lower-triangular Cholesky factor L of `a` (a = L·Lᵀ), or `None` when `a` is not
/// numerically positive definite (a singular or collinear design).
pub fn cholesky(a: &[f64], p: usize) -> Option<Vec<f64>> {
    debug_assert_eq!(a.len(), p * p);
    let mut l = vec![0.0; p * p];
    let scale = (0..p).map(|i| a[i * p + i].abs()).fold(0.0, f64::max);
    for j in 0..p {
        let mut d = a[j * p + j];
        for k in 0..j {
            d -= l[j * p + k] * l[j * p + k];
        }
        if !d.is_finite() || d <= 1e-13 * scale.max(f64::MIN_POSITIVE) {
            return None;
        }
        let d = d.sqrt();
        l[j * p + j] = d;
        for i in j + 1..p {
            let mut s = a[i * p + j];
            for k in 0..j {
                s -= l[i * p + k] * l[j * p + k];
            }
            l[i * p + j] = s / d;
        }
    }
    Some(l)
}

/// Solves L·Lᵀ·x = b.
pub fn cholesky_solve(l: &[f64], p: usize, b: &[f64]) -> Vec<f64> {
    let mut y = b.to_vec();
    for i in 0..p {
        for k in 0..i {
            y[i] -= l[i * p + k] * y[k];
        }
        y[i] /= l[i * p + i];
    }
    for i in (0..p).rev() {
        for k in i + 1..p {
            y[i] -= l[k * p + i] * y[k];
        }
        y[i] /= l[i * p + i];
    }
    y
}

/// (L·Lᵀ)⁻¹, row-major.
pub fn cholesky_inverse(l: &[f64], p: usize) -> Vec<f64> {
    let mut inv = vec![0.0; p * p];
    let mut e = vec![0.0; p];
    for j in 0..p {
        e.iter_mut().for_each(|x| *x = 0.0);
        e[j] = 1.0;
        let col = cholesky_solve(l, p, &e);
        for i in 0..p {
            inv[i * p + j] = col[i];
        }
    }
    inv
}

/// The nearest (Frobenius) symmetric matrix to `a` with every eigenvalue at least `floor`:
/// `a`'s symmetric part, eigen-decomposed (cyclic Jacobi), eigenvalues raised to `floor`,
/// rebuilt; with the number of eigenvalues raised. Used for noisy information matrices (differential privacy): positive definite by
/// construction, unchanged when already well conditioned.
pub fn eigenvalues_at_least(a: &[f64], p: usize, floor: f64) -> (Vec<f64>, usize) {
    let mut m: Vec<f64> = (0..p * p)
        .map(|k| (a[k] + a[(k % p) * p + k / p]) / 2.0)
        .collect();
    let mut v = vec![0.0; p * p];
    for i in 0..p {
        v[i * p + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..p)
            .flat_map(|i| (0..p).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * p + j] * m[i * p + j])
            .sum();
        let diag: f64 = (0..p).map(|i| m[i * p + i] * m[i * p + i]).sum();
        if off <= 1e-30 * diag.max(f64::MIN_POSITIVE) {
            break;
        }
        for q in 1..p {
            for r in 0..q {
                let apq = m[r * p + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (m[q * p + q] - m[r * p + r]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..p {
                    let (mkr, mkq) = (m[k * p + r], m[k * p + q]);
                    m[k * p + r] = c * mkr - s * mkq;
                    m[k * p + q] = s * mkr + c * mkq;
                }
                for k in 0..p {
                    let (mrk, mqk) = (m[r * p + k], m[q * p + k]);
                    m[r * p + k] = c * mrk - s * mqk;
                    m[q * p + k] = s * mrk + c * mqk;
                }
                for k in 0..p {
                    let (vkr, vkq) = (v[k * p + r], v[k * p + q]);
                    v[k * p + r] = c * vkr - s * vkq;
                    v[k * p + q] = s * vkr + c * vkq;
                }
            }
        }
    }
    let raised = (0..p).filter(|&i| m[i * p + i] < floor).count();
    let lambda: Vec<f64> = (0..p).map(|i| m[i * p + i].max(floor)).collect();
    let mut out = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..p {
            out[i * p + j] = (0..p)
                .map(|k| v[i * p + k] * lambda[k] * v[j * p + k])
                .sum();
        }
    }
    (out, raised)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigenvalues_are_raised_to_the_floor_and_kept_above_it() {
        // Eigenvalues 5 and −1 (vectors (1, 1)/√2 and (1, −1)/√2).
        let a = [2.0, 3.0, 3.0, 2.0];
        let (b, raised) = eigenvalues_at_least(&a, 2, 0.5);
        assert_eq!(raised, 1);
        // Rebuilt with 5 and 0.5: [[2.75, 2.25], [2.25, 2.75]].
        for (x, y) in b.iter().zip([2.75, 2.25, 2.25, 2.75]) {
            assert!((x - y).abs() < 1e-12, "{b:?}");
        }
        let pd = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let (b, raised) = eigenvalues_at_least(&pd, 3, 0.1);
        assert_eq!(raised, 0);
        for (x, y) in b.iter().zip(pd) {
            assert!((x - y).abs() < 1e-12);
        }
    }

    #[test]
    fn solves_and_inverts() {
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let l = cholesky(&a, 3).unwrap();
        let x = cholesky_solve(&l, 3, &[1.0, 2.0, 3.0]);
        for i in 0..3 {
            let ax: f64 = (0..3).map(|k| a[i * 3 + k] * x[k]).sum();
            assert!((ax - [1.0, 2.0, 3.0][i]).abs() < 1e-12);
        }
        let inv = cholesky_inverse(&l, 3);
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| a[i * 3 + k] * inv[k * 3 + j]).sum();
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        assert!(cholesky(&[1.0, 1.0, 1.0, 1.0], 2).is_none());
    }
}
