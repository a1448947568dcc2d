//! Network totals computed at the hub from per-site released values.
//!
//! The rule: **a network total is computed from released values only, by addition only.**
//! The hub never sees a true site count, never subtracts one released value from another, and
//! never releases a "total" that it did not build this way. A suppressed site value contributes
//! an unknown in its range (`[0, threshold − 1]` for a stand-alone count), so the total is
//! reported as a range. Consequently "network total − sum of the other sites" gives back only
//! that site's range, never its value: the total carries no information about any site beyond
//! what that site released itself.

use serde::{Deserialize, Serialize};

use crate::released::Released;

/// A network total built from per-site [`Released`] values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkTotal {
    /// Sum of the numbers the sites showed (suppressed sites contribute nothing).
    pub point_sum: u64,
    /// Smallest true network total consistent with the released values and their rules.
    pub low: u64,
    /// Largest one, or `None` if some value has no upper bound (DP noise, table suppression).
    pub high: Option<u64>,
    /// Number of site values.
    pub sites: usize,
    /// How many were suppressed.
    pub suppressed_sites: usize,
    /// Whether every site value was exact (then `low == high == point_sum`).
    pub exact: bool,
}

/// Adds per-site released values into a network total. Never subtracts.
pub fn network_total(values: &[Released]) -> NetworkTotal {
    let mut t = NetworkTotal {
        point_sum: 0,
        low: 0,
        high: Some(0),
        sites: values.len(),
        suppressed_sites: 0,
        exact: true,
    };
    for v in values {
        if let Some(p) = v.point() {
            t.point_sum = t.point_sum.saturating_add(p);
        }
        if v.is_suppressed() {
            t.suppressed_sites += 1;
        }
        if !matches!(v, Released::Exact { .. }) {
            t.exact = false;
        }
        let (lo, hi) = v.bounds();
        t.low = t.low.saturating_add(lo);
        t.high = match (t.high, hi) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
            _ => None,
        };
    }
    t
}

impl std::fmt::Display for NetworkTotal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.exact {
            return write!(f, "{}", self.point_sum);
        }
        match self.high {
            Some(h) if h == self.low => write!(f, "{h}"),
            Some(h) => write!(f, "{} (between {} and {})", self.point_sum, self.low, h),
            None => write!(f, "{} (at least {})", self.point_sum, self.low),
        }
    }
}
