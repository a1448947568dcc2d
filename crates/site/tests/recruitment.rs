//! Recruitment counts (issue 17): the marks the site's investigators made on a cohort's
//! pre-screening list, released per asked month through the site's one release mechanism —
//! only the marks of the job's cohort's subjects, exactly the asked months, every count under
//! the site's policy (threshold, DP noise and its charge).

mod common;

use std::collections::BTreeSet;

use common::*;
use qiao_disclosure::{Discloser, Policy, QueryLedger, SiteSecret};
use qiao_protocol::{
    check_against_job, Outcome, Payload, QueryType, RecruitmentResult, RecruitmentSpec, Released,
    SiteId, YearMonth,
};
use qiao_site::recruitment::{self, Change, Mark};
use qiao_site::{execute, SiteDir};

const PROJECT: &str = "celecoxib-feasibility";

fn ym(year: u16, month: u8) -> YearMonth {
    YearMonth { year, month }
}

fn release(
    policy: Policy,
    marks: &[qiao_analysis::network::recruitment::PersonMarks],
) -> (RecruitmentResult, qiao_protocol::DisclosureSummary) {
    let site = SiteId::new("hospital-a").unwrap();
    let d = Discloser::new(policy, SiteSecret::from_bytes(&[9u8; 32]).unwrap()).unwrap();
    let mut ledger = QueryLedger::new();
    let mut cx = context(&site, &d, &mut ledger);
    cx.recruitment = marks;
    let job = job(
        QueryType::Recruitment(RecruitmentSpec {
            months: vec![ym(2026, 10), ym(2026, 11)],
        }),
        definition(3),
        "sponsor1",
    );
    let done = execute(&job, &mut cx).result;
    check_against_job(&job, &done).expect("aggregate-only and tied to its job");
    match done.outcome {
        Outcome::Done {
            payload: Payload::Recruitment(r),
        } => {
            let s = r.disclosure.clone();
            (r, s)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_marks_of_the_lists_cohort_are_released_per_asked_month() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = SiteDir::create(tmp.path()).unwrap();
    // Cohort 3 of CohortGenerator on GiBleed (266 persons): its first 20 subjects are marked.
    let run = qiao_site::run_definition(store(), &definition(3)).unwrap();
    let subjects: Vec<i64> = qiao_site::exec::subject_ids(&run.rows).collect();
    assert_eq!(subjects.len(), 266);
    let on_list: BTreeSet<i64> = subjects.iter().copied().collect();
    let outsider = *store()
        .persons()
        .ids()
        .iter()
        .find(|p| !on_list.contains(p))
        .expect("a person outside the cohort");
    let mark = |p: i64, m: Mark, date: &str| {
        recruitment::set(
            &dir,
            PROJECT,
            p,
            Change::Mark {
                mark: m,
                date,
                reason: "",
            },
            "dr.a",
            now(),
        )
        .unwrap()
        .unwrap();
    };
    // November: 12 screened, of whom 5 enrolled in November and 3 excluded; 2 screened in
    // October and enrolled in November; one outsider (not on this list) marked too.
    for (i, p) in subjects.iter().take(12).enumerate() {
        mark(*p, Mark::Screened, "2026-11-03");
        if i < 5 {
            mark(*p, Mark::Enrolled, "2026-11-20");
        } else if i < 8 {
            mark(*p, Mark::Excluded, "2026-11-21");
        }
    }
    for p in &subjects[12..14] {
        mark(*p, Mark::Screened, "2026-10-15");
        mark(*p, Mark::Enrolled, "2026-11-02");
    }
    mark(outsider, Mark::Enrolled, "2026-11-02");
    let marks = recruitment::dates(&recruitment::load(&dir, PROJECT).unwrap());
    assert_eq!(marks.len(), 15);

    // Exact, threshold 1: the true counts, the outsider not among them (a zero is below the
    // threshold of 1, withheld like any count under it).
    let (r, _) = release(Policy::exact(1), &marks);
    // (month, screened, enrolled, excluded) as released points.
    type Line = (u8, Option<u64>, Option<u64>, Option<u64>);
    let values = |r: &RecruitmentResult| -> Vec<Line> {
        r.months
            .iter()
            .map(|m| {
                (
                    m.month,
                    m.screened.point(),
                    m.enrolled.point(),
                    m.excluded.point(),
                )
            })
            .collect()
    };
    assert_eq!(
        values(&r),
        [(10, Some(2), None, None), (11, Some(12), Some(7), Some(3))]
    );
    // Threshold 10: the small counts withheld as below it, 12 released.
    let (r, _) = release(Policy::exact(10), &marks);
    assert_eq!(r.months[1].screened, Released::Exact { value: 12 });
    assert!(matches!(
        r.months[1].enrolled,
        Released::BelowThreshold { threshold: 10 }
    ));
    assert!(matches!(
        r.months[0].screened,
        Released::BelowThreshold { threshold: 10 }
    ));
    // Under DP (the default): three families, three units of ρ, whatever the months.
    let (r, s) = release(Policy::default(), &marks);
    let dp = s.dp.expect("DP parameters");
    let unit = 1.0 / (2.0 * dp.sigma * dp.sigma);
    assert!(
        (dp.rho_spent - 3.0 * unit).abs() < 1e-12,
        "{} vs {unit}",
        dp.rho_spent
    );
    assert_eq!(r.months.len(), 2);
}
