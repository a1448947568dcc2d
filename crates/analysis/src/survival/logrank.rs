//! The log-rank test of two groups, as lifelines' `logrank_test`.

use serde::{Deserialize, Serialize};

use super::km::EventTable;

/// The log-rank test statistic (χ² with `df` degrees of freedom) and its p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogRank {
    pub chi2: f64,
    pub df: u32,
    pub p: f64,
}

/// The two-group log-rank test from each group's event table: over every time of either table,
/// observed minus expected events of group `a` and the hypergeometric variance
/// n_a·n_b·d·(n−d) / (n²·(n−1)) (the factor (n−d)/(n−1) read as 1 when n = 1, as lifelines).
/// `None` when the variance is zero (no event, or a group empty): there is nothing to test.
pub fn logrank(a: &EventTable, b: &EventTable) -> Option<LogRank> {
    let (ra, rb) = (&a.rows, &b.rows);
    let (mut i, mut j) = (0usize, 0usize);
    // At risk in each group at the current time: the entered less those removed before it.
    let (mut na, mut nb) = (a.entered() as f64, b.entered() as f64);
    let (mut o_minus_e, mut var) = (0.0f64, 0.0f64);
    while i < ra.len() || j < rb.len() {
        let t = match (ra.get(i), rb.get(j)) {
            (Some(x), Some(y)) => x.time.min(y.time),
            (Some(x), None) => x.time,
            (None, Some(y)) => y.time,
            (None, None) => break,
        };
        let (mut da, mut ca, mut db, mut cb) = (0.0, 0.0, 0.0, 0.0);
        if let Some(x) = ra.get(i).filter(|x| x.time == t) {
            (da, ca) = (x.events as f64, x.censored as f64);
            i += 1;
        }
        if let Some(y) = rb.get(j).filter(|y| y.time == t) {
            (db, cb) = (y.events as f64, y.censored as f64);
            j += 1;
        }
        let (n, d) = (na + nb, da + db);
        if d > 0.0 && n > 0.0 {
            o_minus_e += da - na * d / n;
            let f = (n - d) / (n - 1.0);
            let f = if f.is_finite() { f } else { 1.0 };
            var += na * nb * f * d / (n * n);
        }
        na -= da + ca;
        nb -= db + cb;
    }
    (var > 0.0).then(|| {
        let chi2 = o_minus_e * o_minus_e / var;
        LogRank {
            chi2,
            df: 1,
            p: chi2_1_sf(chi2),
        }
    })
}

/// P(χ²₁ > x) = erfc(√(x/2)).
pub fn chi2_1_sf(x: f64) -> f64 {
    libm::erfc((x / 2.0).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_groups_by_hand() {
        // Group a: events at 1 and 3; group b: event at 2, censored at 4. Times 1, 2, 3:
        // t=1: n=4 (2,2) d=1 → O−E = 1 − 0.5, V = 2·2·1·3/(16·3) = 0.25
        // t=2: n=3 (1,2) d=1 → O−E = 0 − 1/3, V = 1·2·1·2/(9·2) = 2/9
        // t=3: n=2 (1,1) d=1 → O−E = 1 − 0.5, V = 1·1·1·1/(4·1) = 0.25
        let a = EventTable::from_durations([(1, true), (3, true)]);
        let b = EventTable::from_durations([(2, true), (4, false)]);
        let r = logrank(&a, &b).unwrap();
        let (oe, v) = (0.5 - 1.0 / 3.0 + 0.5, 0.25 + 2.0 / 9.0 + 0.25);
        assert!((r.chi2 - oe * oe / v).abs() < 1e-12);
        assert!((chi2_1_sf(3.841_458_820_694_124) - 0.05).abs() < 1e-12);
        assert!(logrank(&a, &EventTable::default()).is_none());
    }
}
