//! Kaplan–Meier across sites: each site releases its risk-set table on a time grid, the hub sums
//! them and fits the pooled curve.
//!
//! A time t is put on the grid at ⌈t / width⌉·width (0 stays 0; (0, w] → w; …): the grid point
//! ends the interval the time falls in. Summing the sites' tables gives exactly the table of the
//! union of their persons with times on the grid, so the pooled curve equals a Kaplan–Meier fit on
//! the union with grid times (tested). The counts released are per interval (entered, events,
//! censored); at-risk is derived, and [`RiskSetTable::monotone`] post-processes noisy counts so
//! that at-risk never increases and never goes below zero.

use serde::{Deserialize, Serialize};

use super::km::{EventRow, EventTable};

/// A site's (or the pooled) counts on a time grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskSetTable {
    /// Days between grid points (> 0).
    pub width: i32,
    /// Persons followed (at risk at time 0).
    pub entered: f64,
    /// Per grid point k (time k·width): events and censorings in the interval it ends.
    pub events: Vec<f64>,
    pub censored: Vec<f64>,
}

/// A grid fixed before the data is seen: intervals of `width` days up to `horizon` days, so a
/// table on it always has [`Grid::cells`] grid points (time 0 and ⌈horizon / width⌉ intervals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grid {
    pub width: i32,
    pub horizon: i32,
}

impl Grid {
    /// The grid of `width` days up to `horizon` days (both positive).
    pub fn new(width: i32, horizon: i32) -> Result<Grid, GridError> {
        if width <= 0 {
            return Err(GridError::Width(width));
        }
        if horizon <= 0 {
            return Err(GridError::Horizon(horizon));
        }
        Ok(Grid { width, horizon })
    }

    /// Grid points: time 0 and one per interval up to the horizon.
    pub fn cells(&self) -> usize {
        grid_index(self.horizon, self.width) + 1
    }

    /// A duration cut at the horizon (follow-up beyond it is censored at it) and put on the
    /// grid: its grid point index and whether it is an event.
    pub fn place(&self, time: i32, event: bool) -> (usize, bool) {
        if time > self.horizon {
            (grid_index(self.horizon, self.width), false)
        } else {
            (grid_index(time, self.width), event)
        }
    }
}

/// Why tables cannot be pooled.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GridError {
    #[error("grid width must be a positive number of days, not {0}")]
    Width(i32),
    #[error("the horizon must be a positive number of days, not {0}")]
    Horizon(i32),
    #[error("the sites' tables are on different grids ({0} and {1} days)")]
    Mismatch(i32, i32),
}

impl RiskSetTable {
    /// The table of `(time, event)` durations (times ≥ 0) on a grid of `width` days.
    pub fn from_durations(
        width: i32,
        durations: impl IntoIterator<Item = (i32, bool)>,
    ) -> Result<RiskSetTable, GridError> {
        if width <= 0 {
            return Err(GridError::Width(width));
        }
        let mut t = RiskSetTable {
            width,
            entered: 0.0,
            events: Vec::new(),
            censored: Vec::new(),
        };
        for (time, event) in durations {
            let k = grid_index(time, width);
            if k >= t.events.len() {
                t.events.resize(k + 1, 0.0);
                t.censored.resize(k + 1, 0.0);
            }
            t.entered += 1.0;
            if event {
                t.events[k] += 1.0;
            } else {
                t.censored[k] += 1.0;
            }
        }
        Ok(t)
    }

    /// The table of `(time, event)` durations (times ≥ 0) on `grid`: every grid point up to the
    /// horizon present, durations cut at the horizon ([`Grid::place`]).
    pub fn on_grid(grid: Grid, durations: impl IntoIterator<Item = (i32, bool)>) -> RiskSetTable {
        let cells = grid.cells();
        let mut t = RiskSetTable {
            width: grid.width,
            entered: 0.0,
            events: vec![0.0; cells],
            censored: vec![0.0; cells],
        };
        for (time, event) in durations {
            let (k, event) = grid.place(time, event);
            t.entered += 1.0;
            if event {
                t.events[k] += 1.0;
            } else {
                t.censored[k] += 1.0;
            }
        }
        t
    }

    /// The sum of sites' tables (all on one grid).
    pub fn pool(tables: &[RiskSetTable]) -> Result<RiskSetTable, GridError> {
        let width = tables.first().map_or(1, |t| t.width);
        let len = tables.iter().map(|t| t.events.len()).max().unwrap_or(0);
        let mut sum = RiskSetTable {
            width,
            entered: 0.0,
            events: vec![0.0; len],
            censored: vec![0.0; len],
        };
        for t in tables {
            if t.width != width {
                return Err(GridError::Mismatch(width, t.width));
            }
            sum.entered += t.entered;
            for (k, (&e, &c)) in t.events.iter().zip(&t.censored).enumerate() {
                sum.events[k] += e;
                sum.censored[k] += c;
            }
        }
        Ok(sum)
    }

    /// Post-processing of noisy counts (no access to the true ones): counts rounded to whole
    /// persons and clamped at 0, and each interval's removals cut so that at-risk never
    /// increases and never goes below zero (events kept before censorings).
    pub fn monotone(&self) -> RiskSetTable {
        let whole = |x: f64| x.round().max(0.0);
        let mut left = whole(self.entered);
        let mut out = RiskSetTable {
            width: self.width,
            entered: left,
            events: Vec::with_capacity(self.events.len()),
            censored: Vec::with_capacity(self.events.len()),
        };
        for (&e, &c) in self.events.iter().zip(&self.censored) {
            let e = whole(e).min(left);
            let c = whole(c).min(left - e);
            left -= e + c;
            out.events.push(e);
            out.censored.push(c);
        }
        out
    }

    /// The event table at the grid points where someone has the event or is censored (and 0),
    /// the input of [`super::KaplanMeier::fit`] and [`super::logrank`]. Counts are taken as whole
    /// persons (call [`RiskSetTable::monotone`] first on noisy counts).
    pub fn event_table(&self) -> EventTable {
        let mut at_risk = self.entered.max(0.0) as u64;
        let mut rows = Vec::new();
        if at_risk == 0 {
            return EventTable { rows };
        }
        for (k, (&e, &c)) in self.events.iter().zip(&self.censored).enumerate() {
            let (e, c) = (e.max(0.0) as u64, c.max(0.0) as u64);
            if k == 0 || e + c > 0 {
                rows.push(EventRow {
                    time: k as i32 * self.width,
                    at_risk,
                    events: e,
                    censored: c,
                });
            }
            at_risk = at_risk.saturating_sub(e + c);
        }
        EventTable { rows }
    }
}

/// The grid point index of a time: ⌈t / width⌉ (times < 0 at 0).
pub fn grid_index(time: i32, width: i32) -> usize {
    (time.max(0) as i64 + width as i64 - 1).div_euclid(width as i64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_times_and_monotone_post_processing() {
        assert_eq!(
            [0, 1, 30, 31, 60].map(|t| grid_index(t, 30)),
            [0, 1, 1, 2, 2]
        );
        let t = RiskSetTable::from_durations(30, [(0, true), (5, false), (30, true), (61, true)])
            .unwrap();
        assert_eq!(
            (t.entered, t.events.clone(), t.censored.clone()),
            (4.0, vec![1.0, 1.0, 0.0, 1.0], vec![0.0, 1.0, 0.0, 0.0])
        );
        let rows: Vec<(i32, u64)> = t
            .event_table()
            .rows
            .iter()
            .map(|r| (r.time, r.at_risk))
            .collect();
        assert_eq!(rows, [(0, 4), (30, 3), (90, 1)]);
        let noisy = RiskSetTable {
            width: 30,
            entered: 3.4,
            events: vec![-0.7, 2.6],
            censored: vec![0.2, 5.0],
        };
        let m = noisy.monotone();
        assert_eq!(
            (m.entered, m.events, m.censored),
            (3.0, vec![0.0, 3.0], vec![0.0, 0.0])
        );
        assert_eq!(
            RiskSetTable::from_durations(0, []).unwrap_err(),
            GridError::Width(0)
        );
        let grid = Grid::new(30, 65).unwrap();
        assert_eq!(grid.cells(), 4, "0, 30, 60, 90");
        let cut = RiskSetTable::on_grid(grid, [(0, true), (5, false), (65, true), (66, true)]);
        assert_eq!(
            (cut.entered, cut.events, cut.censored),
            (4.0, vec![1.0, 0.0, 0.0, 1.0], vec![0.0, 1.0, 0.0, 1.0]),
            "an event after the horizon is censored at it"
        );
        assert_eq!(Grid::new(30, 0).unwrap_err(), GridError::Horizon(0));
        let other = RiskSetTable::from_durations(7, []).unwrap();
        assert_eq!(
            RiskSetTable::pool(&[t, other]).unwrap_err(),
            GridError::Mismatch(30, 7)
        );
    }
}
