//! Issue 12, item 6 through real processes: `qiao hub serve` with alliance floors above the
//! sites' policies, and two `qiao site serve` over loopback HTTP. The DP site releases under the
//! stricter of its policy and the floors (threshold 20, σ = 10 instead of its 10 and 6); the
//! site with the noise off cannot meet a limit on the loss per release and refuses, naming it.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use qiao_hub::api::QueryRequest;
use qiao_hub::protocol::{Payload, QueryType, RefusalReason, Released};
use qiao_hub::view::SiteStatus;
use support::circe::{admitted, definition};
use support::{cdm, qiao, s};

#[test]
fn sites_apply_the_stricter_of_policy_and_floors_or_refuse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cdm_dir = dir.path().join("cdm");
    cdm::write(&cdm_dir, 7);
    let store = dir.path().join("floors.qiao");
    qiao(&[
        "ingest",
        "--cdm",
        s(&cdm_dir),
        "--no-vocabulary",
        "--out",
        s(&store),
    ]);
    let stores: Vec<(String, PathBuf)> =
        vec![("dp".into(), store.clone()), ("noiseless".into(), store)];
    let net = support::sponsor_network(
        &dir.path().join("net"),
        &stores,
        Some(12),
        &[
            "--floor-min-cell-count",
            "20",
            "--floor-max-rho-per-release",
            "0.005",
        ],
    );
    support::policy(&net, 1, &["--release", "exact"]);
    let client = support::client(&net, "sponsor");
    let req = QueryRequest {
        query: QueryType::CohortCount,
        definition: definition(
            vec![admitted(cdm::day(1900, 1, 1), cdm::day(2100, 1, 1))],
            vec![],
            None,
        ),
        sites: None,
    };
    let id = client
        .submit_query(&"p1".parse().unwrap(), &req)
        .expect("submit")
        .job_id;
    let view = client.wait_job(&id, Duration::from_secs(120)).expect("job");
    assert!(view.complete, "{view:?}");

    let dp = view.sites.iter().find(|s| s.site.as_str() == "dp").unwrap();
    assert_eq!(dp.status, SiteStatus::Done, "{dp:?}");
    let Some(Payload::CohortCount(r)) = &dp.payload else {
        panic!("{dp:?}")
    };
    assert_eq!(r.disclosure.min_cell_count, 20, "the floor's threshold");
    let d = r.disclosure.dp.as_ref().expect("dp");
    assert!(
        (d.sigma - 10.0).abs() < 1e-9,
        "σ raised to the floor's: {}",
        d.sigma
    );
    // ρ charged at σ = 10: entries and the final line (subjects is the final line), 2/(2·100).
    assert!((d.rho_spent - 0.01).abs() < 1e-12, "{}", d.rho_spent);
    for v in [&r.subjects, &r.final_persons] {
        match v {
            Released::Dp {
                sigma, threshold, ..
            } => {
                assert!((sigma - 10.0).abs() < 1e-9);
                assert_eq!(*threshold, 20);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(r.subjects, r.final_persons, "one release of one statistic");
    match &r.entries {
        Released::Dp {
            sigma, threshold, ..
        } => {
            assert!((sigma - 100.0).abs() < 1e-6, "σ·entries_bound: {sigma}");
            assert_eq!(*threshold, 20);
        }
        other => panic!("{other:?}"),
    }

    let off = view
        .sites
        .iter()
        .find(|s| s.site.as_str() == "noiseless")
        .unwrap();
    assert_eq!(off.status, SiteStatus::Refused, "{off:?}");
    assert_eq!(off.reason, Some(RefusalReason::FloorsUnmet));
}
