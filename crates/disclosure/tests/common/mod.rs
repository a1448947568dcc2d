//! An attacker written independently of the library: exact Gaussian elimination over the
//! rationals on a released table's margin equations.

#![allow(dead_code)]

use qiao_disclosure::{Breakdown, Position, Released};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Q {
    n: i128,
    d: i128,
}

fn gcd(a: i128, b: i128) -> i128 {
    let (mut a, mut b) = (a.abs(), b.abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

impl Q {
    pub fn int(n: i128) -> Q {
        Q { n, d: 1 }
    }
    fn new(n: i128, d: i128) -> Q {
        let s = if d < 0 { -1 } else { 1 };
        let g = gcd(n, d);
        Q {
            n: s * n / g,
            d: s * d / g,
        }
    }
    fn is_zero(self) -> bool {
        self.n == 0
    }
    fn sub(self, o: Q) -> Q {
        Q::new(self.n * o.d - o.n * self.d, self.d * o.d)
    }
    fn mul(self, o: Q) -> Q {
        Q::new(self.n * o.n, self.d * o.d)
    }
    fn div(self, o: Q) -> Q {
        Q::new(self.n * o.d, self.d * o.n)
    }
    pub fn as_integer(self) -> Option<i128> {
        (self.d == 1).then_some(self.n)
    }
}

/// Every line of the `(R+1)×(C+1)` grid as (entries, with coefficient +1 for cells and the
/// grand total, −1 for margins... expressed as "sum of parts − whole = 0").
fn lines(r: usize, c: usize) -> Vec<Vec<(Position, i128)>> {
    let mut out = Vec::new();
    for row in 0..r {
        let mut l: Vec<_> = (0..c).map(|col| (Position::Cell { row, col }, 1)).collect();
        l.push((Position::RowTotal { row }, -1));
        out.push(l);
    }
    for col in 0..c {
        let mut l: Vec<_> = (0..r).map(|row| (Position::Cell { row, col }, 1)).collect();
        l.push((Position::ColTotal { col }, -1));
        out.push(l);
    }
    let mut l: Vec<_> = (0..r).map(|row| (Position::RowTotal { row }, 1)).collect();
    l.push((Position::Total, -1));
    out.push(l);
    let mut l: Vec<_> = (0..c).map(|col| (Position::ColTotal { col }, 1)).collect();
    l.push((Position::Total, -1));
    out.push(l);
    out
}

/// The suppressed entries the attacker can compute exactly from the released exact values,
/// with the values computed.
pub fn solve_margins(released: &Breakdown<Released>) -> Vec<(Position, i128)> {
    let r = released.cells.len();
    let c = released.cells[0].len();
    let unknowns: Vec<Position> = released
        .positions()
        .into_iter()
        .filter(|p| released.get(*p).unwrap().is_suppressed())
        .collect();
    let col_of = |p: Position| unknowns.iter().position(|&u| u == p);
    let n = unknowns.len();
    // Augmented matrix rows: coefficients for unknowns, then rhs.
    let mut m: Vec<Vec<Q>> = Vec::new();
    for line in lines(r, c) {
        let mut row = vec![Q::int(0); n + 1];
        let mut rhs = Q::int(0);
        for (p, coef) in line {
            match col_of(p) {
                Some(k) => row[k] = Q::int(coef),
                None => {
                    let v = released
                        .get(p)
                        .unwrap()
                        .point()
                        .expect("attacker needs exact released values")
                        as i128;
                    rhs = rhs.sub(Q::int(coef * v));
                }
            }
        }
        row[n] = rhs;
        m.push(row);
    }
    // Reduced row echelon form.
    let mut pivots = Vec::new();
    let mut pr = 0;
    for col in 0..n {
        let Some(sel) = (pr..m.len()).find(|&i| !m[i][col].is_zero()) else {
            continue;
        };
        m.swap(pr, sel);
        let pv = m[pr][col];
        for x in m[pr].iter_mut() {
            *x = x.div(pv);
        }
        for i in 0..m.len() {
            if i != pr && !m[i][col].is_zero() {
                let f = m[i][col];
                let pivot_row = m[pr].clone();
                for (x, &pv) in m[i].iter_mut().zip(&pivot_row) {
                    *x = x.sub(f.mul(pv));
                }
            }
        }
        pivots.push((pr, col));
        pr += 1;
        if pr == m.len() {
            break;
        }
    }
    // A pivot variable is determined iff its row has no other non-zero coefficient.
    let mut out = Vec::new();
    for (row, col) in pivots {
        let others = (0..n).any(|j| j != col && !m[row][j].is_zero());
        if !others {
            out.push((unknowns[col], m[row][n].as_integer().unwrap_or(i128::MIN)));
        }
    }
    out
}
