//! The value type of everything a site releases: the number (if any) and the rule that was
//! applied to it, so the hub can show each number with its provenance.

use serde::{Deserialize, Serialize};

/// Why a number was withheld.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionBasis {
    /// A stand-alone count whose true value is below the threshold: the true value is in
    /// `[0, threshold - 1]`. Zero is included on purpose: releasing 0 exactly would disclose
    /// absence ("nobody here has condition X"), which is itself sensitive, and would turn
    /// every "< threshold" into "1 to threshold-1".
    TrueCount,
    /// A cell or margin of a breakdown table, suppressed either because it is below the
    /// threshold (primary) or to protect another cell (complementary). The two are labelled
    /// identically on purpose: telling them apart would tell the attacker which cells are
    /// `≥ threshold`, which narrows the primary ones. The true value may be above the
    /// threshold.
    Table,
}

/// One released number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Released {
    /// The exact count (obfuscation off, count ≥ threshold).
    Exact {
        /// The count.
        value: u64,
    },
    /// Withheld; shown as "< threshold" (or "suppressed" for [`SuppressionBasis::Table`]).
    Suppressed {
        /// The site's minimum cell count.
        threshold: u64,
        /// Why.
        basis: SuppressionBasis,
    },
    /// SHRINE-style obfuscated: `bin(bin(n) + clamp(N(0, sigma²), ±clamp))`, then raised to
    /// `floor` if below it. The true count lies in `[max(threshold, value - max_error),
    /// value + max_error]`.
    Obfuscated {
        /// The released value (a multiple of `bin`, at least `floor`).
        value: u64,
        /// Bin width.
        bin: u64,
        /// Noise σ.
        sigma: f64,
        /// Noise clamp.
        clamp: f64,
        /// The site's minimum cell count (the true count is at least this).
        threshold: u64,
        /// Smallest value released: the first multiple of `bin` at or above the threshold.
        floor: u64,
        /// Largest possible `|value - true count|` before the floor is applied.
        max_error: u64,
    },
    /// Differentially private: the true value plus discrete Gaussian noise with `sigma`,
    /// post-processed (consistency, clamped at 0, rounded), then compared with the
    /// threshold: `value` is `None` ("< threshold") when the *noisy* value fell below it.
    /// Nothing about the true value decides what is shown.
    Dp {
        /// The released value, or `None` when the noisy value is below the threshold.
        value: Option<u64>,
        /// σ of the noise (already scaled by the statistic's sensitivity).
        sigma: f64,
        /// The site's minimum cell count.
        threshold: u64,
    },
}

impl Released {
    /// The number shown for it, if any.
    pub fn point(&self) -> Option<u64> {
        match *self {
            Released::Exact { value } | Released::Obfuscated { value, .. } => Some(value),
            Released::Dp { value, .. } => value,
            Released::Suppressed { .. } => None,
        }
    }

    /// Whether a number is shown.
    pub fn is_suppressed(&self) -> bool {
        matches!(
            self,
            Released::Suppressed { .. } | Released::Dp { value: None, .. }
        )
    }

    /// The interval that holds the true count, given only the released value and its rule:
    /// certainly for exact, suppressed and obfuscated values, with 95% probability for DP
    /// values (`value ± ⌈1.96σ⌉`; "< T" gives `[0, T − 1 + ⌈1.96σ⌉]`). `(low, None)` when no
    /// upper bound follows from the rule (table suppression).
    pub fn bounds(&self) -> (u64, Option<u64>) {
        match *self {
            Released::Exact { value } => (value, Some(value)),
            Released::Suppressed {
                threshold,
                basis: SuppressionBasis::TrueCount,
            } => (0, Some(threshold.saturating_sub(1))),
            Released::Suppressed { .. } => (0, None),
            Released::Obfuscated {
                value,
                threshold,
                max_error,
                ..
            } => (
                value.saturating_sub(max_error).max(threshold),
                Some(value.saturating_add(max_error)),
            ),
            Released::Dp {
                value,
                sigma,
                threshold,
            } => {
                let h = crate::dp::half_width_95(sigma);
                match value {
                    Some(v) => (v.saturating_sub(h), Some(v.saturating_add(h))),
                    None => (0, Some(threshold.saturating_sub(1).saturating_add(h))),
                }
            }
        }
    }
}

impl std::fmt::Display for Released {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Released::Exact { value } => write!(f, "{value}"),
            Released::Suppressed {
                threshold,
                basis: SuppressionBasis::TrueCount,
            } => write!(f, "< {threshold}"),
            Released::Suppressed { .. } => write!(f, "suppressed"),
            Released::Obfuscated {
                value, max_error, ..
            } => write!(f, "{value} (obfuscated, ±{max_error})"),
            Released::Dp {
                value: Some(v),
                sigma,
                ..
            } => write!(f, "{v} ±{}", crate::dp::half_width_95(*sigma)),
            Released::Dp {
                value: None,
                threshold,
                ..
            } => write!(f, "< {threshold}"),
        }
    }
}
