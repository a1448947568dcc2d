//! Vector releases (`Discloser::release_vector`) and multi-round releases paid at their round 0
//! (`Discloser::admit_round`): the noise has the declared scale, is keyed like every release,
//! and a run's whole cost is charged before its first release, never more rounds than paid.

use qiao_disclosure::{
    Discloser, Policy, QueryContext, QueryLedger, Question, Refusal, RoundAdmission, RoundRefusal,
    SiteSecret, Statistic,
};

fn site(policy: Policy) -> Discloser {
    Discloser::new(policy, SiteSecret::from_bytes(&[9u8; 32]).unwrap()).unwrap()
}

fn ctx(user: &str) -> QueryContext<'_> {
    QueryContext {
        user,
        organization: "pharma",
        project: "p1",
        now_unix_secs: 1_800_000_000,
    }
}

#[test]
fn a_vector_gets_independent_noise_of_sigma_times_its_l2_sensitivity() {
    let d = site(Policy::default()); // σ = 6
    let stat = Statistic::vector("sums", 100);
    assert_eq!(
        d.cost(std::slice::from_ref(&stat)),
        1.0 / 72.0,
        "one release"
    );
    let persons = d.digest(1..500);
    let values: Vec<i64> = (0..4000).map(|i| i * 1000 - 7).collect();
    let q = Question::of(b"round 0");
    let (noisy, sigma) = d.release_vector(&q, &stat, &persons, &values).unwrap();
    assert!((sigma - 600.0).abs() < 0.01, "σ·Δ = 6·100, {sigma}");
    let z: Vec<f64> = noisy
        .iter()
        .zip(&values)
        .map(|(a, b)| (a - b) as f64)
        .collect();
    let mean = z.iter().sum::<f64>() / z.len() as f64;
    let sd = (z.iter().map(|x| x * x).sum::<f64>() / z.len() as f64).sqrt();
    assert!(mean.abs() < 4.0 * 600.0 / 4000f64.sqrt(), "{mean}");
    assert!((sd - 600.0).abs() < 30.0, "{sd}");
    // Neighbouring coordinates are not the same draw.
    assert!(z.windows(2).filter(|w| w[0] == w[1]).count() < 40);
    // Same question, statistic, set and values: the same answer; any change: another draw.
    assert_eq!(
        d.release_vector(&q, &stat, &persons, &values).unwrap().0,
        noisy
    );
    let other = d
        .release_vector(&Question::of(b"round 1"), &stat, &persons, &values)
        .unwrap()
        .0;
    assert_ne!(other, noisy);
    // Outside DP mode nothing is released by this path.
    assert!(site(Policy::exact(1))
        .release_vector(&q, &stat, &persons, &values)
        .is_none());
}

#[test]
fn a_run_is_paid_at_round_0_and_releases_at_most_its_rounds() {
    let d = site(Policy::default()); // user budget 0.25, σ = 6
    let per_round = [Statistic::vector("sums", 4096)];
    let mut ledger = QueryLedger::new();
    let q = |r: u32, beta: &str| Question::of(format!("round {r} at {beta}").as_bytes());
    // A later round of a run never admitted is refused.
    assert_eq!(
        d.admit_round(
            &mut ledger,
            &ctx("alice"),
            "run-a",
            1,
            6,
            &q(1, "b1"),
            &per_round
        )
        .unwrap_err(),
        RoundRefusal::NotAdmitted { round: 1 }
    );
    // Round 0 charges all six rounds.
    let a = d
        .admit_round(
            &mut ledger,
            &ctx("alice"),
            "run-a",
            0,
            6,
            &q(0, "0"),
            &per_round,
        )
        .unwrap()
        .unwrap();
    assert!(matches!(a, RoundAdmission::Charged { .. }));
    assert!((a.rho() - 6.0 / 72.0).abs() < 1e-15);
    assert!((a.status().user.spent - 6.0 / 72.0).abs() < 1e-9);
    // Later rounds are prepaid; a round asked again with the same question is free.
    for r in 1..6 {
        let a = d
            .admit_round(
                &mut ledger,
                &ctx("alice"),
                "run-a",
                r,
                6,
                &q(r, "b"),
                &per_round,
            )
            .unwrap()
            .unwrap();
        assert_eq!(a.rho(), 0.0);
        assert!((a.status().user.spent - 6.0 / 72.0).abs() < 1e-9);
    }
    assert!(d
        .admit_round(
            &mut ledger,
            &ctx("alice"),
            "run-a",
            3,
            6,
            &q(3, "b"),
            &per_round
        )
        .is_ok());
    assert!(d
        .admit_round(
            &mut ledger,
            &ctx("alice"),
            "run-a",
            0,
            6,
            &q(0, "0"),
            &per_round
        )
        .unwrap()
        .is_some_and(|a| a.rho() == 0.0));
    // Another question at a released round, and a round beyond those paid: refused.
    assert_eq!(
        d.admit_round(
            &mut ledger,
            &ctx("alice"),
            "run-a",
            3,
            6,
            &q(3, "c"),
            &per_round
        )
        .unwrap_err(),
        RoundRefusal::Changed { round: 3 }
    );
    assert_eq!(
        d.admit_round(
            &mut ledger,
            &ctx("alice"),
            "run-a",
            6,
            99,
            &q(6, "b"),
            &per_round
        )
        .unwrap_err(),
        RoundRefusal::TooManyRounds {
            round: 6,
            rounds: 6
        }
    );
    // A second run fits (2 × 6/72 = 0.167 ≤ 0.25); a third would not: refused at its round 0,
    // charging nothing.
    d.admit_round(
        &mut ledger,
        &ctx("alice"),
        "run-b",
        0,
        6,
        &q(0, "0"),
        &per_round,
    )
    .unwrap();
    let err = d
        .admit_round(
            &mut ledger,
            &ctx("alice"),
            "run-c",
            0,
            6,
            &q(0, "0"),
            &per_round,
        )
        .unwrap_err();
    assert!(
        matches!(err, RoundRefusal::Budget(Refusal::BudgetExhausted { .. })),
        "{err}"
    );
    let spent = d.budget(&ledger, &ctx("alice")).user.spent;
    assert!((spent - 12.0 / 72.0).abs() < 1e-9, "{spent}");
    // The ledger round-trips (the site persists it) with its runs.
    let text = serde_json::to_string(&ledger).unwrap();
    let mut back: QueryLedger = serde_json::from_str(&text).unwrap();
    assert_eq!(back, ledger);
    assert!(d
        .admit_round(
            &mut back,
            &ctx("alice"),
            "run-b",
            1,
            6,
            &q(1, "b"),
            &per_round
        )
        .is_ok());
    // Outside DP mode there is nothing to charge.
    assert!(site(Policy::exact(1))
        .admit_round(
            &mut ledger,
            &ctx("bob"),
            "run-d",
            4,
            6,
            &q(4, "b"),
            &per_round
        )
        .unwrap()
        .is_none());
}
