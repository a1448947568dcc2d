//! Job limits at a site, through the real processes and HTTP: `qiao site serve --workers 2
//! --job-time-limit 2` on a store 4× GiBleed. A sponsor's heavy job is stopped at the limit and
//! shown to the sponsor as `failed` with error `timeout` (and audited at the site), while
//! another sponsor's small job, submitted after it, completes meanwhile.

mod support;

use std::time::Duration;

use qiao_hub::api::QueryRequest;
use qiao_hub::protocol::{FailureKind, ProjectId, QueryType};
use qiao_hub::view::SiteStatus;
use support::{qiao, s, Project, User};

const GIBLEED: &str = "../../../shared/data/eunomia-gibleed-5.3";

fn request(definition: serde_json::Value) -> QueryRequest {
    QueryRequest {
        query: QueryType::CohortCount,
        definition,
        sites: None,
    }
}

fn read_json(path: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("JSON")
}

#[test]
fn a_heavy_job_is_stopped_at_its_limit_while_another_users_small_job_completes() {
    let dir = tempfile::tempdir().unwrap();
    let cdm = dir.path().join("cdm");
    qiao(&[
        "synth",
        "--from",
        GIBLEED,
        "--out",
        s(&cdm),
        "--replicate",
        "4",
        "-q",
    ]);
    let store = dir.path().join("h.qiao");
    qiao(&["ingest", "--cdm", s(&cdm), "--out", s(&store)]);
    // The site with two workers and a two-second limit a job.
    let net = support::network_with(
        dir.path(),
        &[("hospital-a".into(), store.clone())],
        &[
            User {
                id: "mallory",
                institution: "Example Pharma",
            },
            User {
                id: "alice",
                institution: "Example Pharma",
            },
        ],
        &[Project {
            id: "feasibility",
            members: &["mallory", "alice"],
        }],
        None,
        // SHRINE release (below) meets no alliance floor on ρ: this hub states none.
        &["--floor-max-rho-per-release", "none"],
        &["--workers", "2", "--job-time-limit", "2"],
    );
    // SHRINE release: under the default DP policy the ρ of the heavy job's 45 rules is more
    // than a user's budget (it would be refused, had it finished in time).
    support::policy(&net, 0, &["--release", "shrine"]);
    let data = net.sites[0].data.clone();

    let project = ProjectId::new("feasibility").unwrap();
    let mallory = support::client(&net, "mallory");
    let alice = support::client(&net, "alice");
    let heavy = mallory
        .submit_query(
            &project,
            &request(read_json("../cohort/tests/fixtures/slow_definition.json")),
        )
        .unwrap();
    let small = alice
        .submit_query(
            &project,
            &request(read_json(&format!(
                "{GIBLEED}/../reference/cohortgenerator-eunomia/cohorts/3.json"
            ))),
        )
        .unwrap();
    let v = alice
        .wait_job(&small.job_id, Duration::from_secs(120))
        .unwrap();
    assert!(v.complete, "{v:?}");
    assert_eq!(v.sites[0].status, SiteStatus::Done, "{v:?}");
    let h = mallory.job(&heavy.job_id).unwrap();
    assert_eq!(
        h.sites[0].status,
        SiteStatus::Pending,
        "the heavy job still runs when the small one is done: {h:?}"
    );
    let h = mallory
        .wait_job(&heavy.job_id, Duration::from_secs(120))
        .unwrap();
    assert!(h.complete, "{h:?}");
    assert_eq!(h.sites[0].status, SiteStatus::Failed, "{h:?}");
    assert_eq!(h.sites[0].error, Some(FailureKind::Timeout), "{h:?}");
    // What the sponsor's API shows.
    let raw = serde_json::to_value(&h).unwrap();
    assert_eq!(raw["sites"][0]["status"], "failed");
    assert_eq!(raw["sites"][0]["error"], "timeout");
    // Audited at the site.
    let dir = qiao_site::SiteDir::open(&data).unwrap();
    let (entries, _) = qiao_site::audit::read(&dir).unwrap();
    let decided = entries
        .iter()
        .find(|e| {
            e.action == "job.decide"
                && e.job_id.as_deref() == Some(heavy.job_id.to_string().as_str())
        })
        .expect("the heavy job's decision is audited");
    let text = decided.decision.as_deref().unwrap();
    assert!(
        text.starts_with("failed:timeout") && text.contains("time limit of 2 s"),
        "{text}"
    );
}
