//! Time to event: Kaplan–Meier curves with Greenwood log(−log) intervals and medians, at-risk
//! tables and the log-rank test, exactly as lifelines computes them; and the Kaplan–Meier curve
//! pooled across sites from risk-set tables on a time grid.
//!
//! Inputs are `(time, event)` durations, from [`crate::time_to_event::follow_up`] at a site.

mod grid;
mod km;
mod logrank;

pub use grid::{grid_index, Grid, GridError, RiskSetTable};
pub use km::{AtRisk, EventRow, EventTable, KaplanMeier, KmPoint, Median, INTERVAL_METHOD, Z_95};
pub use logrank::{chi2_1_sf, logrank, LogRank};

/// Days of the at-risk table under the curves (`qiao analyze survival`'s default, and the
/// network's).
pub const AT_RISK_TIMES: [i32; 8] = [0, 30, 90, 180, 365, 730, 1095, 1825];
