//! Property tests of complementary suppression.

mod common;

use proptest::prelude::*;
use qiao_disclosure::{
    computable_entries, suppression_pattern, Breakdown, Discloser, Policy, Position, Released,
    SiteSecret,
};

/// Tables with many small cells (0..10 with probability ~40%), 1..=6 × 1..=6.
fn table() -> impl Strategy<Value = Breakdown<u64>> {
    (1usize..=6, 1usize..=6).prop_flat_map(|(r, c)| {
        proptest::collection::vec(
            proptest::collection::vec(
                prop_oneof![2 => 0u64..10, 3 => 10u64..120, 1 => 120u64..5000],
                c,
            ),
            r,
        )
        .prop_map(|cells| Breakdown::from_counts(cells).unwrap())
    })
}

/// Every line of the (R+1)×(C+1) grid, as positions.
fn lines(r: usize, c: usize) -> Vec<Vec<Position>> {
    let mut out = Vec::new();
    for row in 0..r {
        let mut l: Vec<_> = (0..c).map(|col| Position::Cell { row, col }).collect();
        l.push(Position::RowTotal { row });
        out.push(l);
    }
    for col in 0..c {
        let mut l: Vec<_> = (0..r).map(|row| Position::Cell { row, col }).collect();
        l.push(Position::ColTotal { col });
        out.push(l);
    }
    let mut l: Vec<_> = (0..r).map(|row| Position::RowTotal { row }).collect();
    l.push(Position::Total);
    out.push(l);
    let mut l: Vec<_> = (0..c).map(|col| Position::ColTotal { col }).collect();
    l.push(Position::Total);
    out.push(l);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn suppression_leaves_no_computable_entry(t in table(), threshold in 1u64..=20) {
        let p = suppression_pattern(&t, threshold, true).unwrap();
        let (r, c) = (t.cells.len(), t.cells[0].len());
        // Every entry below the threshold (0 included) is suppressed.
        for pos in t.positions() {
            if *t.get(pos).unwrap() < threshold {
                prop_assert!(*p.get(pos).unwrap(), "{pos:?} not suppressed");
            }
        }
        // No line (row, column, margin row, margin column) has exactly one suppressed entry.
        for line in lines(r, c) {
            let n = line.iter().filter(|&&q| *p.get(q).unwrap()).count();
            prop_assert!(n != 1, "line {line:?} has a single suppressed entry");
        }
        // Stronger: no linear combination of the margin equations pins any suppressed entry.
        prop_assert!(computable_entries(&p).unwrap().is_empty());
    }

    #[test]
    fn independent_solver_pins_nothing(cells in proptest::collection::vec(
        proptest::collection::vec(prop_oneof![2 => 0u64..10, 3 => 10u64..200], 3), 4)) {
        let site = Discloser::new(
            Policy::exact(10),
            SiteSecret::from_bytes(&[9u8; 32]).unwrap(),
        ).unwrap();
        let mut next = 0i64;
        let digests = cells.iter().map(|row| row.iter().map(|&n| {
            let d = site.digest(next..next + n as i64);
            next += n as i64;
            d
        }).collect()).collect();
        let input = Breakdown::from_cells(digests).unwrap();
        let rel = site.release_breakdown(&qiao_disclosure::Question::of(b"t"), &input).unwrap();
        prop_assert!(common::solve_margins(&rel).is_empty());
        // Released exact values are the true ones.
        for pos in rel.positions() {
            if let Released::Exact { value } = rel.get(pos).unwrap() {
                prop_assert_eq!(*value, input.get(pos).unwrap().count());
            }
        }
    }

    #[test]
    fn primary_only_pattern_is_what_the_solver_sees(t in table()) {
        // The library's own audit (bridges) and the independent rational solver agree.
        let p = suppression_pattern(&t, 10, false).unwrap();
        let released = t.map(|pos, &v| if *p.get(pos).unwrap() {
            Released::Suppressed { threshold: 10, basis: qiao_disclosure::SuppressionBasis::TrueCount }
        } else {
            Released::Exact { value: v }
        });
        let mut solved: Vec<Position> = common::solve_margins(&released).into_iter().map(|(q, _)| q).collect();
        let mut audit = computable_entries(&p).unwrap();
        solved.sort();
        audit.sort();
        prop_assert_eq!(solved, audit);
    }
}
