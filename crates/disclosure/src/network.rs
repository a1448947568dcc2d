//! Network totals computed at the hub from per-site released values.
//!
//! The rule: **a network total is computed from released values only, by addition only.**
//! The hub never sees a true site count and never subtracts one released value from another.
//!
//! * DP values add their noisy values and their noise variances: the total carries the
//!   combined 95% interval `Σ value ± ⌈1.96 √Σσ²⌉`. A DP "< T" adds the range `[0, T − 1]` of
//!   its noisy value (and its variance), so "all sites < T" is an interval such as
//!   "between 0 and 25", never 0.
//! * Exact, suppressed and obfuscated values add their certain ranges (`[0, T − 1]` for a
//!   count below the threshold, `value ± max_error` for an obfuscated one).
//!
//! "Total − other sites" therefore gives back only what each site released itself.

use serde::{Deserialize, Serialize};

use crate::dp::half_width_95;
use crate::released::Released;

/// A network total built from per-site [`Released`] values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkTotal {
    /// Sum of the numbers the sites showed (withheld values contribute nothing).
    pub point_sum: u64,
    /// Low end of the interval for the true network total (95% when DP values are in it,
    /// certain otherwise).
    pub low: u64,
    /// High end, or `None` if some value has no upper bound (table suppression).
    pub high: Option<u64>,
    /// Standard deviation of the summed DP noise (0 without DP values).
    pub noise_sd: f64,
    /// Number of site values.
    pub sites: usize,
    /// How many were withheld ("< T" or suppressed).
    pub suppressed_sites: usize,
    /// Whether every site value was exact (then `low == high == point_sum`).
    pub exact: bool,
}

/// Adds per-site released values into a network total. Never subtracts.
pub fn network_total(values: &[Released]) -> NetworkTotal {
    let mut point_sum = 0u64;
    let (mut lo, mut hi) = (0u64, Some(0u64));
    let mut var = 0.0f64;
    let mut suppressed_sites = 0;
    let mut exact = true;
    for v in values {
        if let Some(p) = v.point() {
            point_sum = point_sum.saturating_add(p);
        }
        if v.is_suppressed() {
            suppressed_sites += 1;
        }
        if !matches!(v, Released::Exact { .. }) {
            exact = false;
        }
        // The range of what was released (the noisy value, for DP), before the noise.
        let (l, h) = match *v {
            Released::Dp {
                value,
                sigma,
                threshold,
            } => {
                var += sigma * sigma;
                match value {
                    Some(x) => (x, Some(x)),
                    None => (0, Some(threshold.saturating_sub(1))),
                }
            }
            _ => v.bounds(),
        };
        lo = lo.saturating_add(l);
        hi = match (hi, h) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
            _ => None,
        };
    }
    let noise_sd = var.sqrt();
    let w = half_width_95(noise_sd);
    NetworkTotal {
        point_sum,
        low: lo.saturating_sub(w),
        high: hi.map(|h| h.saturating_add(w)),
        noise_sd,
        sites: values.len(),
        suppressed_sites,
        exact,
    }
}

impl std::fmt::Display for NetworkTotal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.exact {
            return write!(f, "{}", self.point_sum);
        }
        let w = half_width_95(self.noise_sd);
        match self.high {
            Some(h) if h == self.low => write!(f, "{h}"),
            // Only shown DP values: the symmetric interval.
            Some(h)
                if self.suppressed_sites == 0
                    && w > 0
                    && self.point_sum.saturating_sub(w) == self.low
                    && self.point_sum.saturating_add(w) == h =>
            {
                write!(f, "{} ±{w}", self.point_sum)
            }
            Some(h) if self.suppressed_sites == self.sites => {
                write!(f, "between {} and {h}", self.low)
            }
            Some(h) => write!(f, "{} (between {} and {h})", self.point_sum, self.low),
            None => write!(f, "{} (at least {})", self.point_sum, self.low),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dp(value: Option<u64>) -> Released {
        Released::Dp {
            value,
            sigma: 6.0,
            threshold: 10,
        }
    }

    #[test]
    fn dp_values_add_with_a_combined_interval() {
        let t = network_total(&[dp(Some(100)), dp(Some(50))]);
        // sd = 6·√2 = 8.49, half-width ⌈16.63⌉ = 17.
        assert_eq!((t.point_sum, t.low, t.high), (150, 133, Some(167)));
        assert_eq!(t.to_string(), "150 ±17");
    }

    #[test]
    fn all_sites_below_threshold_is_an_interval_never_zero() {
        let t = network_total(&[dp(None), dp(None), dp(None)]);
        // Noisy values in [0, 27]; sd = 6·√3 = 10.39, half-width 21.
        assert_eq!((t.point_sum, t.low, t.high), (0, 0, Some(48)));
        assert_eq!(t.to_string(), "between 0 and 48");
        let t = network_total(&[dp(Some(40)), dp(None)]);
        assert_eq!(t.to_string(), "40 (between 23 and 66)");
    }
}
