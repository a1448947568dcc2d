//! Continuous covariates under differential privacy: what a site releases of them and the
//! statistics the hub derives (post-processing).
//!
//! Each continuous FeatureExtraction analysis declares a range fixed by its definition, never
//! by the data ([`declared_range`]): a value is clipped to `[0, max]` and counted in bin
//! `k = clipped / bin`. Per cohort a site releases, for a covariate, with each person's cohort
//! entries clipped to `b` (the policy's `entries_bound`):
//!
//! | statistic | one person changes it by at most |
//! | --- | --- |
//! | `count`: entries with a value | `b` |
//! | `sum`: Σ k | `b · kmax` |
//! | `sum_squares`: Σ k² | `b · kmax²` |
//! | `histogram`: entries per bin (one family: each entry is in one bin) | `b` in total (L2 ≤ `b`) |
//!
//! so a covariate costs four releases per cohort. The hub adds the sites' released values and
//! derives FE's statistics from them ([`Derived::of`]): mean = Σ midpoint / entries (FE divides by
//! the cohort's entries, entries without a value counting 0), the sample sd over the entries
//! with a value, and min, p10, p25, median, p75, p90 and max from the histogram by FE's rule
//! (the smallest bin whose cumulative count, plus the entries without a value, reaches q × entries;
//! 0 while the entries without a value alone reach it). A bin stands for its midpoint
//! `k·bin + (bin − 1)/2`; with bin width 1 (ages, scores, counts) the statistics of exact inputs
//! are FE's exactly, with wider bins (observation and cohort days: 366) within `(bin − 1)/2`.

use serde::{Deserialize, Serialize};

use crate::characterization::{scores, Kind, Measure, Prespec};

/// The range a continuous covariate is clipped to, and its bin width.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeclaredRange {
    /// Values above it count as it (the lower bound is 0).
    pub max: u64,
    /// Bin width.
    pub bin: u64,
    /// What the values count: `years`, `days`, `points` or `count`.
    pub unit: String,
}

impl DeclaredRange {
    fn new(max: u64, bin: u64, unit: &str) -> DeclaredRange {
        DeclaredRange {
            max,
            bin,
            unit: unit.to_string(),
        }
    }

    /// The highest bin index.
    pub fn kmax(&self) -> u64 {
        self.max / self.bin
    }

    /// The bin of value `v` (clipped to the range).
    pub fn bin_of(&self, v: i64) -> u64 {
        (v.max(0) as u64).min(self.max) / self.bin
    }

    /// The value bin `k` stands for (its midpoint).
    pub fn midpoint(&self, k: u64) -> f64 {
        (k * self.bin) as f64 + (self.bin - 1) as f64 / 2.0
    }

    /// Σ midpoint and Σ midpoint² of `count` values whose bin indices sum to `sum` and whose
    /// squared bin indices sum to `sum_squares`.
    pub fn value_moments(&self, count: u64, sum: u64, sum_squares: u64) -> (f64, f64) {
        let w = self.bin as f64;
        let c = (w - 1.0) / 2.0;
        let (n, sk, qk) = (count as f64, sum as f64, sum_squares as f64);
        (w * sk + n * c, w * w * qk + 2.0 * w * c * sk + n * c * c)
    }
}

/// Age in years (FE's `YEAR(index) − year_of_birth`).
const AGE_MAX: u64 = 120;
/// Observation and cohort days: 100 years in bins of 366 days.
const DAYS_BIN: u64 = 366;
const DAYS_MAX: u64 = 100 * DAYS_BIN - 1;
/// Concept and visit counts in a window.
const COUNT_MAX: u64 = 100;

/// The declared range of analysis `a`'s covariates; None for real-valued ones (values as number,
/// HFRS), which are not released across the network.
pub fn declared_range(a: &Prespec) -> Option<DeclaredRange> {
    match a.kind {
        Kind::Measure(Measure::Age) => Some(DeclaredRange::new(AGE_MAX, 1, "years")),
        Kind::Measure(
            Measure::PriorObservation | Measure::PostObservation | Measure::TimeInCohort,
        ) => Some(DeclaredRange::new(DAYS_MAX, DAYS_BIN, "days")),
        Kind::Measure(Measure::Count { .. }) => Some(DeclaredRange::new(COUNT_MAX, 1, "count")),
        Kind::Score(s) => scores::max_score(s).map(|m| DeclaredRange::new(m, 1, "points")),
        _ => None,
    }
}

/// What a site computes of one covariate for one cohort before release: exact, over the
/// clipped entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clipped {
    pub count: u64,
    pub sum: u64,
    pub sum_squares: u64,
    pub histogram: Vec<u64>,
}

/// The clipped sums and histogram of `values` (the entries with a value, each with its person):
/// each value clipped to the range, and each person's first `bound` values only (a cohort's rows
/// are clipped to `bound` per person already; this holds the declared sensitivity even where one
/// entry gives several values, e.g. overlapping observation periods).
pub fn clipped(range: &DeclaredRange, values: &[(u32, i64)], bound: u32) -> Clipped {
    let mut histogram = vec![0u64; range.kmax() as usize + 1];
    let (mut sum, mut sum_squares, mut count) = (0u64, 0u64, 0u64);
    let mut per_person: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
    for &(person, v) in values {
        let n = per_person.entry(person).or_default();
        if *n >= bound.max(1) {
            continue;
        }
        *n += 1;
        count += 1;
        let k = range.bin_of(v);
        histogram[k as usize] += 1;
        sum += k;
        sum_squares += k * k;
    }
    Clipped {
        count,
        sum,
        sum_squares,
        histogram,
    }
}

/// FE's statistics of a continuous covariate derived from (pooled) released sums.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Derived {
    pub mean: Option<f64>,
    pub sd: Option<f64>,
    pub min: Option<f64>,
    pub p10: Option<f64>,
    pub p25: Option<f64>,
    pub median: Option<f64>,
    pub p75: Option<f64>,
    pub p90: Option<f64>,
    pub max: Option<f64>,
}

impl Derived {
    /// From the cohort's `entries`, the `count` of entries with a value, their Σ value `s` and
    /// Σ value² `q` ([`DeclaredRange::value_moments`]) and the histogram (all as released, noisy
    /// under DP); the quantiles, min and max only with a histogram.
    pub fn of(
        range: &DeclaredRange,
        entries: u64,
        count: u64,
        (s, q): (f64, f64),
        histogram: Option<&[u64]>,
    ) -> Derived {
        let n = count as f64;
        let mean = (entries > 0).then(|| s / entries as f64);
        let sd = match count {
            0 => None,
            1 => Some(0.0),
            _ => Some(((n * q - s * s) / (n * (n - 1.0))).max(0.0).sqrt()),
        };
        let Some(histogram) = histogram else {
            return Derived {
                mean,
                sd,
                min: None,
                p10: None,
                p25: None,
                median: None,
                p75: None,
                p90: None,
                max: None,
            };
        };
        let total: u64 = histogram.iter().sum();
        let population = entries.max(total);
        let no_value = population - total;
        let quantile = |q100: u64| -> Option<f64> {
            if population == 0 {
                return None;
            }
            if q100 * population < 100 * no_value {
                return Some(0.0);
            }
            let mut acc = no_value;
            for (k, &x) in histogram.iter().enumerate() {
                acc += x;
                if x > 0 && 100 * acc >= q100 * population {
                    return Some(range.midpoint(k as u64));
                }
            }
            None
        };
        let first = histogram.iter().position(|&x| x > 0);
        let last = histogram.iter().rposition(|&x| x > 0);
        Derived {
            mean,
            sd,
            min: if no_value > 0 {
                Some(0.0)
            } else {
                first.map(|k| range.midpoint(k as u64))
            },
            p10: quantile(10),
            p25: quantile(25),
            median: quantile(50),
            p75: quantile(75),
            p90: quantile(90),
            max: last.map(|k| range.midpoint(k as u64)),
        }
    }
}
