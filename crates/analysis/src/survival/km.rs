//! The Kaplan–Meier estimator exactly as lifelines' `KaplanMeierFitter` computes it.

use serde::{Deserialize, Serialize};

/// z for a two-sided 95% interval: the standard normal 0.975 quantile (scipy `norm.ppf(0.975)`).
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Counts at one time: the row of lifelines' `event_table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRow {
    pub time: i32,
    /// Persons with time ≥ `time`.
    pub at_risk: u64,
    pub events: u64,
    pub censored: u64,
}

/// Times in ascending order with their counts: time 0 (as lifelines, where everyone enters),
/// then every time at which someone has the event or is censored; no rows without persons.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTable {
    pub rows: Vec<EventRow>,
}

impl EventTable {
    /// The table of `(time, event)` durations (times ≥ 0, in any order).
    pub fn from_durations(durations: impl IntoIterator<Item = (i32, bool)>) -> EventTable {
        let mut d: Vec<(i32, bool)> = durations.into_iter().collect();
        d.sort_unstable();
        Self::from_sorted(&d)
    }

    /// As [`EventTable::from_durations`], for durations already sorted by time.
    pub fn from_sorted(d: &[(i32, bool)]) -> EventTable {
        let mut rows = Vec::new();
        let mut at_risk = d.len() as u64;
        if d.first().is_some_and(|&(t, _)| t > 0) {
            rows.push(EventRow {
                time: 0,
                at_risk,
                events: 0,
                censored: 0,
            });
        }
        let mut i = 0;
        while i < d.len() {
            let time = d[i].0;
            let (mut events, mut censored) = (0u64, 0u64);
            while i < d.len() && d[i].0 == time {
                if d[i].1 {
                    events += 1;
                } else {
                    censored += 1;
                }
                i += 1;
            }
            rows.push(EventRow {
                time,
                at_risk,
                events,
                censored,
            });
            at_risk -= events + censored;
        }
        EventTable { rows }
    }

    /// Persons entered (at risk at time 0).
    pub fn entered(&self) -> u64 {
        self.rows.first().map_or(0, |r| r.at_risk)
    }

    /// The table's at-risk counts as lifelines' `add_at_risk_counts` shows them under a plot: at
    /// each of `times`, the persons still followed after that time (at risk at the last table time
    /// ≤ t, less those removed then), and the events and censorings up to it.
    pub fn at_risk_at(&self, times: &[i32]) -> Vec<AtRisk> {
        times
            .iter()
            .map(|&t| {
                let upto = self.rows.partition_point(|r| r.time <= t);
                let seen = &self.rows[..upto];
                AtRisk {
                    time: t,
                    at_risk: seen
                        .last()
                        .map_or(self.entered(), |r| r.at_risk - r.events - r.censored),
                    events: seen.iter().map(|r| r.events).sum(),
                    censored: seen.iter().map(|r| r.censored).sum(),
                }
            })
            .collect()
    }
}

/// The at-risk table under a Kaplan–Meier plot at one chosen time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AtRisk {
    pub time: i32,
    pub at_risk: u64,
    /// Events up to and including `time`.
    pub events: u64,
    /// Censorings up to and including `time`.
    pub censored: u64,
}

/// One point of a Kaplan–Meier curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KmPoint {
    pub time: i32,
    pub at_risk: u64,
    pub events: u64,
    pub censored: u64,
    pub survival: f64,
    /// Greenwood standard error of the survival: S·√(Σ d/(n(n−d))).
    pub std_err: f64,
    /// The 95% interval on the log(−log) scale (lifelines' exponential Greenwood).
    pub lower: f64,
    pub upper: f64,
}

/// Median survival and its 95% interval (lifelines: the first time the curve, resp. the lower and
/// upper interval bound, is ≤ 0.5); `None` where it is never reached (lifelines: `inf`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Median {
    pub time: Option<i32>,
    pub lower: Option<i32>,
    pub upper: Option<i32>,
}

/// A Kaplan–Meier curve: its points at every time of the event table, and the median.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KaplanMeier {
    pub points: Vec<KmPoint>,
    pub median: Median,
}

/// What the interval is, for outputs that must say it.
pub const INTERVAL_METHOD: &str =
    "95% pointwise interval on the log(-log) scale with the Greenwood variance (exponential Greenwood, as lifelines)";

impl KaplanMeier {
    /// The curve of an event table.
    pub fn fit(table: &EventTable) -> KaplanMeier {
        let mut log_s = 0.0f64;
        let mut var = 0.0f64;
        let points: Vec<KmPoint> = table
            .rows
            .iter()
            .map(|r| {
                let (n, d) = (r.at_risk as f64, r.events as f64);
                // lifelines: cumsum(log(n - d) - log(n)), and d/(n(n-d)) with inf read as 0.
                log_s += (n - d).ln() - n.ln();
                let term = d / (n * (n - d));
                var += if term == f64::INFINITY { 0.0 } else { term };
                let survival = log_s.exp();
                let (lower, upper) = log_log_interval(survival, var);
                KmPoint {
                    time: r.time,
                    at_risk: r.at_risk,
                    events: r.events,
                    censored: r.censored,
                    survival,
                    std_err: survival * var.sqrt(),
                    lower,
                    upper,
                }
            })
            .collect();
        let median = Median {
            time: first_at_or_below(&points, 0.5, |p| p.survival),
            lower: first_at_or_below(&points, 0.5, |p| p.lower),
            upper: first_at_or_below(&points, 0.5, |p| p.upper),
        };
        KaplanMeier { points, median }
    }

    /// S(t): the survival at the last curve time ≤ `t` (1 before the first).
    pub fn survival_at(&self, t: i32) -> f64 {
        let i = self.points.partition_point(|p| p.time <= t);
        if i == 0 {
            1.0
        } else {
            self.points[i - 1].survival
        }
    }
}

/// lifelines `_bounds`: exp(−exp(log(−log S) ∓ z·√var / log S)), NaN read as 1.
fn log_log_interval(survival: f64, var: f64) -> (f64, f64) {
    let v = survival.ln();
    let w = Z_95 * var.sqrt() / v;
    let bound = |x: f64| {
        let b = (-(x.exp())).exp();
        if b.is_nan() {
            1.0
        } else {
            b
        }
    };
    let c = (-v).ln();
    (bound(c - w), bound(c + w))
}

/// lifelines `qth_survival_time(q, series)`: `None` (inf) if the last value is above `q`, else the
/// time at numpy's `searchsorted(-values, -q)` (a left binary search, which on a non-increasing
/// column is the first value ≤ q; reproduced step for step so that a column that is not monotone
/// gives lifelines' answer too).
fn first_at_or_below(points: &[KmPoint], q: f64, value: impl Fn(&KmPoint) -> f64) -> Option<i32> {
    let last = points.last()?;
    if value(last) > q {
        return None;
    }
    let (mut lo, mut hi) = (0usize, points.len());
    while lo < hi {
        let mid = lo + ((hi - lo) >> 1);
        if -value(&points[mid]) < -q {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    points.get(lo).map(|p| p.time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_hand_computed_curve() {
        // lifelines on [3,3,5,8,8,9] with events [1,0,1,1,1,0]:
        // S = 1, 5/6, 0.625, 0.208333, 0.208333; median 8; var(3) = 1/30.
        let t = EventTable::from_durations([
            (3, true),
            (3, false),
            (5, true),
            (8, true),
            (8, true),
            (9, false),
        ]);
        let times: Vec<i32> = t.rows.iter().map(|r| r.time).collect();
        assert_eq!(times, [0, 3, 5, 8, 9]);
        assert_eq!(t.rows[2].at_risk, 4);
        let km = KaplanMeier::fit(&t);
        let s: Vec<f64> = km.points.iter().map(|p| p.survival).collect();
        for (a, b) in s
            .iter()
            .zip([1.0, 5.0 / 6.0, 0.625, 0.625 / 3.0, 0.625 / 3.0])
        {
            assert!((a - b).abs() < 1e-12, "{s:?}");
        }
        assert!((km.points[1].std_err - 5.0 / 6.0 * (1.0f64 / 30.0).sqrt()).abs() < 1e-12);
        assert_eq!((km.points[0].lower, km.points[0].upper), (1.0, 1.0));
        assert_eq!(km.median.time, Some(8));
        assert!(
            km.points[1].lower < km.points[1].survival
                && km.points[1].survival < km.points[1].upper
        );
        assert_eq!(km.survival_at(4), km.points[1].survival);
        assert_eq!(
            t.at_risk_at(&[0, 3, 8, 100]),
            [
                AtRisk {
                    time: 0,
                    at_risk: 6,
                    events: 0,
                    censored: 0
                },
                AtRisk {
                    time: 3,
                    at_risk: 4,
                    events: 1,
                    censored: 1
                },
                AtRisk {
                    time: 8,
                    at_risk: 1,
                    events: 4,
                    censored: 1
                },
                AtRisk {
                    time: 100,
                    at_risk: 0,
                    events: 4,
                    censored: 2
                },
            ]
        );
    }

    #[test]
    fn an_event_at_time_zero_and_a_curve_that_reaches_zero() {
        let km = KaplanMeier::fit(&EventTable::from_durations([(0, true), (2, true)]));
        assert_eq!(km.points.len(), 2);
        assert_eq!(km.points[0].survival, 0.5);
        assert_eq!(km.points[1].survival, 0.0);
        assert_eq!(km.median.time, Some(0));
        assert!(KaplanMeier::fit(&EventTable::default())
            .median
            .time
            .is_none());
    }
}
