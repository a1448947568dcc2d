//! Breakdown tables (e.g. age band × gender) with row and column margins and a grand total,
//! and complementary (secondary) suppression.
//!
//! # The model
//!
//! A table with `R` rows and `C` columns is released as an `(R+1) × (C+1)` grid: the cells,
//! the row totals (last column), the column totals (last row) and the grand total (corner).
//! Every line of that grid — each row including its total, each column including its total,
//! the margin row and the margin column — is a linear equation the attacker knows. A
//! suppressed entry is an unknown.
//!
//! Substituting `y = −x` for the margins and `y = x` for the cells and the grand total turns
//! every line into `Σ y = 0`, so the unknowns form the edges of a bipartite graph (row lines ×
//! column lines) and the equations are its incidence matrix, which is totally unimodular. The
//! equations pin a suppressed entry's value exactly **iff that entry is a bridge** of the
//! graph of suppressed entries, i.e. lies on no cycle of suppressed entries alternating
//! between rows and columns. (The row space of the incidence matrix is the cut space; the
//! unit vector of an edge lies in it iff the edge alone is a cut.)
//!
//! # The rule
//!
//! 1. Primary: every entry — cell, margin or total — whose true count is below the threshold
//!    (0 included) is suppressed.
//! 2. Complementary: while some suppressed entry is a bridge, add the cheapest set of further
//!    entries that closes a cycle through it: a minimum-cost path between its row line and its
//!    column line, where an already-suppressed entry costs nothing and any other costs its
//!    value (ties: fewer entries). This subsumes the classical rule "a line with exactly one
//!    suppressed entry gets a second one, the smallest" (an entry alone in its line is a
//!    bridge, and the cheapest path through that line starts with its smallest entry), and
//!    also catches the patterns that rule misses (two closed blocks joined by a single
//!    suppressed entry, which is then still computable). Margins and the total are suppressed
//!    when the cheapest cycle needs them (e.g. a one-row table, where column totals equal the
//!    cells).
//!
//! After it, no suppressed entry can be computed from the released entries by any linear
//! combination of the margin equations, and in particular no line has exactly one suppressed
//! entry. What it does *not* guarantee: an interval (protection-level) bound. With
//! non-negativity, the attacker's feasible interval for a suppressed entry can be narrower than
//! `[0, threshold)`; see the crate README.

use serde::{Deserialize, Serialize};

use crate::digest::PersonSetDigest;

/// A table of `rows × cols` cells with its margins and grand total.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakdown<T> {
    /// `cells[row][col]`.
    pub cells: Vec<Vec<T>>,
    /// One per row.
    pub row_totals: Vec<T>,
    /// One per column.
    pub col_totals: Vec<T>,
    /// Grand total.
    pub total: T,
}

/// An entry of a [`Breakdown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "at", rename_all = "snake_case")]
pub enum Position {
    /// A cell.
    Cell {
        /// Row index.
        row: usize,
        /// Column index.
        col: usize,
    },
    /// A row total.
    RowTotal {
        /// Row index.
        row: usize,
    },
    /// A column total.
    ColTotal {
        /// Column index.
        col: usize,
    },
    /// The grand total.
    Total,
}

/// A table that cannot be released.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// No rows or no columns.
    #[error("a breakdown needs at least one row and one column")]
    Empty,
    /// Rows of different lengths, or margins of the wrong length.
    #[error("the breakdown is not rectangular: {0}")]
    Shape(String),
    /// Margins that are not the sums of their cells. Categories must partition the persons
    /// (add an "unknown/other" row or column); non-additive tables are refused because the
    /// suppression rule relies on the margin equations.
    #[error("margins do not add up: {0}")]
    NotAdditive(String),
    /// More entries than the suppression algorithm is meant for.
    #[error("the breakdown has {0} entries; at most {MAX_ENTRIES} are supported")]
    TooLarge(usize),
}

/// Largest number of grid entries `(R+1)(C+1)` accepted.
pub const MAX_ENTRIES: usize = 40_000;

impl<T> Breakdown<T> {
    /// `(rows, cols)` after checking the shape.
    pub fn shape(&self) -> Result<(usize, usize), TableError> {
        let r = self.cells.len();
        let c = self.cells.first().map_or(0, Vec::len);
        if r == 0 || c == 0 {
            return Err(TableError::Empty);
        }
        if let Some(i) = self.cells.iter().position(|row| row.len() != c) {
            return Err(TableError::Shape(format!("row {i} has a different length")));
        }
        if self.row_totals.len() != r {
            return Err(TableError::Shape(format!(
                "{} row totals for {r} rows",
                self.row_totals.len()
            )));
        }
        if self.col_totals.len() != c {
            return Err(TableError::Shape(format!(
                "{} column totals for {c} columns",
                self.col_totals.len()
            )));
        }
        let n = (r + 1).saturating_mul(c + 1);
        if n > MAX_ENTRIES {
            return Err(TableError::TooLarge(n));
        }
        Ok((r, c))
    }

    /// The entry at `pos`, if it exists.
    pub fn get(&self, pos: Position) -> Option<&T> {
        match pos {
            Position::Cell { row, col } => self.cells.get(row).and_then(|r| r.get(col)),
            Position::RowTotal { row } => self.row_totals.get(row),
            Position::ColTotal { col } => self.col_totals.get(col),
            Position::Total => Some(&self.total),
        }
    }

    /// Applies `f` to every entry.
    pub fn map<U>(&self, mut f: impl FnMut(Position, &T) -> U) -> Breakdown<U> {
        Breakdown {
            cells: self
                .cells
                .iter()
                .enumerate()
                .map(|(row, r)| {
                    r.iter()
                        .enumerate()
                        .map(|(col, v)| f(Position::Cell { row, col }, v))
                        .collect()
                })
                .collect(),
            row_totals: self
                .row_totals
                .iter()
                .enumerate()
                .map(|(row, v)| f(Position::RowTotal { row }, v))
                .collect(),
            col_totals: self
                .col_totals
                .iter()
                .enumerate()
                .map(|(col, v)| f(Position::ColTotal { col }, v))
                .collect(),
            total: f(Position::Total, &self.total),
        }
    }

    /// Every position, cells first (row-major), then row totals, column totals, total.
    pub fn positions(&self) -> Vec<Position> {
        let mut out = Vec::new();
        for (row, r) in self.cells.iter().enumerate() {
            for col in 0..r.len() {
                out.push(Position::Cell { row, col });
            }
        }
        out.extend((0..self.row_totals.len()).map(|row| Position::RowTotal { row }));
        out.extend((0..self.col_totals.len()).map(|col| Position::ColTotal { col }));
        out.push(Position::Total);
        out
    }
}

impl Breakdown<PersonSetDigest> {
    /// A breakdown whose margins are the disjoint unions of its cells (so it is additive by
    /// construction). Each person must be in exactly one cell.
    pub fn from_cells(cells: Vec<Vec<PersonSetDigest>>) -> Result<Self, TableError> {
        let c = cells.first().map_or(0, Vec::len);
        if cells.is_empty() || c == 0 {
            return Err(TableError::Empty);
        }
        if cells.iter().any(|r| r.len() != c) {
            return Err(TableError::Shape("rows of different lengths".into()));
        }
        let row_totals: Vec<_> = cells
            .iter()
            .map(|r| r.iter().fold(PersonSetDigest::EMPTY, |a, d| a.merge(d)))
            .collect();
        let col_totals: Vec<_> = (0..c)
            .map(|j| {
                cells
                    .iter()
                    .fold(PersonSetDigest::EMPTY, |a, r| a.merge(&r[j]))
            })
            .collect();
        let total = row_totals
            .iter()
            .fold(PersonSetDigest::EMPTY, |a, d| a.merge(d));
        Ok(Breakdown {
            cells,
            row_totals,
            col_totals,
            total,
        })
    }

    /// The true counts.
    pub fn counts(&self) -> Breakdown<u64> {
        self.map(|_, d| d.count())
    }
}

impl Breakdown<u64> {
    /// A breakdown of counts with margins computed from the cells.
    pub fn from_counts(cells: Vec<Vec<u64>>) -> Result<Self, TableError> {
        let c = cells.first().map_or(0, Vec::len);
        if cells.is_empty() || c == 0 {
            return Err(TableError::Empty);
        }
        if cells.iter().any(|r| r.len() != c) {
            return Err(TableError::Shape("rows of different lengths".into()));
        }
        let row_totals: Vec<u64> = cells
            .iter()
            .map(|r| r.iter().fold(0u64, |a, &v| a.saturating_add(v)))
            .collect();
        let col_totals: Vec<u64> = (0..c)
            .map(|j| cells.iter().fold(0u64, |a, r| a.saturating_add(r[j])))
            .collect();
        let total = row_totals.iter().fold(0u64, |a, &v| a.saturating_add(v));
        Ok(Breakdown {
            cells,
            row_totals,
            col_totals,
            total,
        })
    }

    /// Checks the shape and that every margin is the sum of its cells (exactly, in `u128`).
    pub fn check_additive(&self) -> Result<(usize, usize), TableError> {
        let (r, c) = self.shape()?;
        for (i, row) in self.cells.iter().enumerate() {
            let s: u128 = row.iter().map(|&v| u128::from(v)).sum();
            if s != u128::from(self.row_totals[i]) {
                return Err(TableError::NotAdditive(format!("row {i}")));
            }
        }
        for j in 0..c {
            let s: u128 = self.cells.iter().map(|row| u128::from(row[j])).sum();
            if s != u128::from(self.col_totals[j]) {
                return Err(TableError::NotAdditive(format!("column {j}")));
            }
        }
        let s: u128 = self.row_totals.iter().map(|&v| u128::from(v)).sum();
        if s != u128::from(self.total) {
            return Err(TableError::NotAdditive("grand total".into()));
        }
        let s: u128 = self.col_totals.iter().map(|&v| u128::from(v)).sum();
        if s != u128::from(self.total) {
            return Err(TableError::NotAdditive("grand total (columns)".into()));
        }
        Ok((r, c))
    }
}

/// The `(R+1) × (C+1)` grid view used by the algorithm: index `i * (C+1) + j`, with `i == R`
/// the column-total line and `j == C` the row-total line.
struct Grid {
    r1: usize,
    c1: usize,
}

impl Grid {
    fn idx(&self, i: usize, j: usize) -> usize {
        i * self.c1 + j
    }
    fn position(&self, k: usize) -> Position {
        let (i, j) = (k / self.c1, k % self.c1);
        let (r, c) = (self.r1 - 1, self.c1 - 1);
        match (i == r, j == c) {
            (false, false) => Position::Cell { row: i, col: j },
            (false, true) => Position::RowTotal { row: i },
            (true, false) => Position::ColTotal { col: j },
            (true, true) => Position::Total,
        }
    }
}

fn to_grid<T: Copy>(b: &Breakdown<T>, r: usize, c: usize) -> Vec<T> {
    let mut g = Vec::with_capacity((r + 1) * (c + 1));
    for (row, t) in b.cells.iter().zip(&b.row_totals) {
        g.extend(row.iter().copied());
        g.push(*t);
    }
    g.extend(b.col_totals.iter().copied());
    g.push(b.total);
    g
}

fn from_grid<T: Copy>(g: &[T], r: usize, c: usize) -> Breakdown<T> {
    let c1 = c + 1;
    Breakdown {
        cells: (0..r).map(|i| g[i * c1..i * c1 + c].to_vec()).collect(),
        row_totals: (0..r).map(|i| g[i * c1 + c]).collect(),
        col_totals: g[r * c1..r * c1 + c].to_vec(),
        total: g[r * c1 + c],
    }
}

/// Suppressed entries that the margin equations pin exactly: the bridges of the graph of
/// suppressed entries, in grid order (row-major over the `(R+1) × (C+1)` grid). Empty after
/// complementary suppression. For audits and tests.
pub fn computable_entries(pattern: &Breakdown<bool>) -> Result<Vec<Position>, TableError> {
    let (r, c) = pattern.shape()?;
    let grid = Grid {
        r1: r + 1,
        c1: c + 1,
    };
    let sup = to_grid(pattern, r, c);
    Ok(bridges(&grid, &sup)
        .into_iter()
        .map(|k| grid.position(k))
        .collect())
}

/// Bridges of the bipartite graph whose edges are the suppressed grid entries (Tarjan,
/// iterative). Returns grid indices in increasing order.
fn bridges(grid: &Grid, sup: &[bool]) -> Vec<usize> {
    let n = grid.r1 + grid.c1;
    let mut adj: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    for i in 0..grid.r1 {
        for j in 0..grid.c1 {
            let k = grid.idx(i, j);
            if sup.get(k).copied().unwrap_or(false) {
                adj[i].push((grid.r1 + j, k));
                adj[grid.r1 + j].push((i, k));
            }
        }
    }
    const NONE: usize = usize::MAX;
    let mut disc = vec![NONE; n];
    let mut low = vec![0usize; n];
    let mut timer = 0usize;
    let mut out = Vec::new();
    for s in 0..n {
        if disc[s] != NONE || adj[s].is_empty() {
            continue;
        }
        disc[s] = timer;
        low[s] = timer;
        timer += 1;
        // (vertex, edge we came by, next neighbour index)
        let mut stack: Vec<(usize, usize, usize)> = vec![(s, NONE, 0)];
        while let Some(top) = stack.last_mut() {
            let (u, pe) = (top.0, top.1);
            if let Some(&(v, e)) = adj[u].get(top.2) {
                top.2 += 1;
                if e == pe {
                    continue;
                }
                if disc[v] == NONE {
                    disc[v] = timer;
                    low[v] = timer;
                    timer += 1;
                    stack.push((v, e, 0));
                } else {
                    low[u] = low[u].min(disc[v]);
                }
            } else {
                stack.pop();
                if let Some(parent) = stack.last() {
                    let p = parent.0;
                    low[p] = low[p].min(low[u]);
                    if low[u] > disc[p] {
                        out.push(pe);
                    }
                }
            }
        }
    }
    out.sort_unstable();
    out
}

/// Cheapest path from row line `a` to column line `b` not using grid entry `skip`; cost of an
/// entry: 0 if suppressed, else `value·W + 1` (value first, then number of entries).
/// Returns the grid indices of the unsuppressed entries on it.
fn cheapest_cycle_completion(
    grid: &Grid,
    values: &[u64],
    sup: &[bool],
    a: usize,
    b: usize,
    skip: usize,
) -> Vec<usize> {
    let n = grid.r1 + grid.c1;
    let weight = (values.len() as u128) + 1;
    let cost = |k: usize| -> u128 {
        if sup[k] {
            0
        } else {
            u128::from(values[k]) * weight + 1
        }
    };
    let mut dist = vec![u128::MAX; n];
    let mut prev: Vec<Option<(usize, usize)>> = vec![None; n];
    let mut done = vec![false; n];
    dist[a] = 0;
    let target = grid.r1 + b;
    loop {
        let mut u = usize::MAX;
        let mut best = u128::MAX;
        for (v, &d) in dist.iter().enumerate() {
            if !done[v] && d < best {
                best = d;
                u = v;
            }
        }
        if u == usize::MAX || u == target {
            break;
        }
        done[u] = true;
        let neighbours: Box<dyn Iterator<Item = (usize, usize)>> = if u < grid.r1 {
            Box::new((0..grid.c1).map(move |j| (grid.r1 + j, grid.idx(u, j))))
        } else {
            let j = u - grid.r1;
            Box::new((0..grid.r1).map(move |i| (i, grid.idx(i, j))))
        };
        for (v, k) in neighbours {
            if k == skip || done[v] {
                continue;
            }
            let nd = best.saturating_add(cost(k));
            if nd < dist[v] {
                dist[v] = nd;
                prev[v] = Some((u, k));
            }
        }
    }
    let mut out = Vec::new();
    let mut v = target;
    while let Some((u, k)) = prev[v] {
        if !sup[k] {
            out.push(k);
        }
        v = u;
    }
    out
}

/// Which entries to suppress: primary (true count `< threshold`, zeros included) and, if
/// `complementary`, complementary suppression until no suppressed entry is computable from
/// the margins. The counts must be additive ([`Breakdown::check_additive`]).
pub fn suppression_pattern(
    counts: &Breakdown<u64>,
    threshold: u64,
    complementary: bool,
) -> Result<Breakdown<bool>, TableError> {
    let (r, c) = counts.check_additive()?;
    let grid = Grid {
        r1: r + 1,
        c1: c + 1,
    };
    let values = to_grid(counts, r, c);
    let mut sup: Vec<bool> = values.iter().map(|&v| v < threshold).collect();
    if complementary {
        // Each round turns at least one bridge into a cycle edge and creates no new bridge,
        // so this ends after at most (number of entries) rounds.
        for _ in 0..=values.len() {
            let Some(&k) = bridges(&grid, &sup).first() else {
                break;
            };
            let (i, j) = (k / grid.c1, k % grid.c1);
            let add = cheapest_cycle_completion(&grid, &values, &sup, i, j, k);
            if add.is_empty() {
                break; // cannot happen for R, C ≥ 1; never loop forever
            }
            for a in add {
                sup[a] = true;
            }
        }
    }
    Ok(from_grid(&sup, r, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_with_one(p: &Breakdown<bool>) -> usize {
        let (r, c) = p.shape().unwrap();
        let g = to_grid(p, r, c);
        let c1 = c + 1;
        let mut bad = 0;
        for i in 0..=r {
            if (0..=c).filter(|&j| g[i * c1 + j]).count() == 1 {
                bad += 1;
            }
        }
        for j in 0..=c {
            if (0..=r).filter(|&i| g[i * c1 + j]).count() == 1 {
                bad += 1;
            }
        }
        bad
    }

    #[test]
    fn single_small_cell_gets_a_cycle() {
        let t = Breakdown::from_counts(vec![vec![3, 50, 40], vec![20, 30, 60], vec![25, 35, 45]])
            .unwrap();
        let p = suppression_pattern(&t, 10, true).unwrap();
        assert!(p.cells[0][0]);
        assert_eq!(lines_with_one(&p), 0);
        assert!(computable_entries(&p).unwrap().is_empty());
        // The cheapest cycle through (0,0) is 50 + 30 + 20 (cells (0,1), (1,1), (1,0)).
        let n = p
            .positions()
            .iter()
            .filter(|&&q| *p.get(q).unwrap())
            .count();
        assert_eq!(n, 4);
        assert!(p.cells[1][0] && p.cells[1][1] && p.cells[0][1]);
        let primary_only = suppression_pattern(&t, 10, false).unwrap();
        assert_eq!(
            computable_entries(&primary_only).unwrap(),
            vec![Position::Cell { row: 0, col: 0 }]
        );
    }

    #[test]
    fn bridge_between_two_blocks_is_fixed() {
        // Two 2×2 blocks of small cells, joined by a small cell: each line has ≥ 2 suppressed
        // entries, but the joining cell is still computable unless another cycle covers it.
        let t = Breakdown::from_counts(vec![
            vec![1, 2, 50, 50, 60],
            vec![3, 4, 5, 50, 60],
            vec![50, 50, 6, 7, 60],
            vec![50, 50, 8, 9, 60],
            vec![60, 60, 60, 60, 60],
        ])
        .unwrap();
        let primary = suppression_pattern(&t, 10, false).unwrap();
        assert_eq!(lines_with_one(&primary), 0);
        assert_eq!(
            computable_entries(&primary).unwrap(),
            vec![Position::Cell { row: 1, col: 2 }]
        );
        let full = suppression_pattern(&t, 10, true).unwrap();
        assert!(computable_entries(&full).unwrap().is_empty());
    }

    #[test]
    fn one_row_table_suppresses_column_totals() {
        let t = Breakdown::from_counts(vec![vec![4, 30, 40]]).unwrap();
        let p = suppression_pattern(&t, 10, true).unwrap();
        assert!(p.cells[0][0] && p.col_totals[0]);
        assert!(computable_entries(&p).unwrap().is_empty());
    }

    #[test]
    fn rejects_non_additive_and_ragged() {
        let mut t = Breakdown::from_counts(vec![vec![4, 30], vec![1, 2]]).unwrap();
        t.row_totals[0] += 1;
        assert!(matches!(
            suppression_pattern(&t, 10, true),
            Err(TableError::NotAdditive(_))
        ));
        let t = Breakdown {
            cells: vec![vec![1u64, 2], vec![3]],
            row_totals: vec![3, 3],
            col_totals: vec![4, 2],
            total: 6,
        };
        assert!(matches!(
            suppression_pattern(&t, 10, true),
            Err(TableError::Shape(_))
        ));
        let e: Breakdown<u64> = Breakdown {
            cells: vec![],
            row_totals: vec![],
            col_totals: vec![],
            total: 0,
        };
        assert_eq!(suppression_pattern(&e, 10, true), Err(TableError::Empty));
    }
}
