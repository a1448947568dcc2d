//! Feasibility round trip through a real network on loopback.
//!
//! What's measured: submit → every result, for a cohort count (CohortGenerator cohort 3,
//! celecoxib + age ≥ 40 + male, two inclusion rules) asked of 5 sites, each serving GiBleed×20
//! (53,880 persons; `qiao synth --replicate 20`, ingested once, the store file shared by the
//! 5 sites), auto-approval. One `qiao hub serve` process (redb, plain HTTP) and 5
//! `qiao site serve` processes, all on this machine, started by [`qiao_testkit::Network`]; the client submits with the sponsor's API
//! token and polls the job every 2 ms until every site is done. Queries run one after another.
//! The sites' rate limit and SHRINE lockout are raised for the run (they would, by design,
//! refuse the 11th identical question); everything else is the default policy (threshold 10,
//! obfuscation on).
//!
//! Also reported: the cohort alone (`qiao cohort run` on the store, best of 5) and each site's
//! own execution time (its `job executed … millis` log line), to show what dominates.
//!
//! Then, on the same network, federated Cox regressions (issue 16's target: < 2 s end to end):
//! celecoxib (CohortGenerator cohort 1) against diclofenac, GI bleed outcome, 5 covariates
//! (treatment, age per 10 years, gender, ankle sprain and concussion at index), stratified by
//! site; each a run started through the hub API and polled every 2 ms until it ends. The sites
//! switch to the `exact` release mode for it (regression rounds are refused under DP and
//! SHRINE) and run analyses without the steward's approval; the hub then has no ceiling on ρ
//! per release (the exact mode has none). Reported: the time from start to the fit, the Newton iterations and rounds, and each
//! round's time (issued → the last site's sums), from the run's record. QIAO_BENCH_FITS (3) runs;
//! QIAO_BENCH_QUERIES=0 skips the cohort round trips.
//!
//! Then issue 15's analyses through the network, whole round trips (submit → every site's
//! released result → the hub's pooled view): a characterization (FE's default set, DP with named
//! covariates) and an incidence (3 TARs, all strata) of celecoxib new users, QIAO_BENCH_ANALYSES
//! (20) of each after one warm-up, under the sites' default DP policy.
//!
//! Run with `cargo bench -p qiao --bench network_roundtrip` or `scripts/bench-network.sh`;
//! environment: QIAO_BENCH_QUERIES (200), QIAO_BENCH_SITES (5), QIAO_BENCH_REPLICATE (20),
//! QIAO_BENCH_DIR (where the replicated store is cached; default target/bench-network).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qiao_hub::api::QueryRequest;
use qiao_hub::protocol::{ProjectId, QueryType, UserRole};
use qiao_site::{SiteDir, SitePolicy};
use qiao_testkit::{Account, Cli, Network, Nodes, ProjectSpec, SiteSpec, Spec};

const QIAO: &str = env!("CARGO_BIN_EXE_qiao");
const DEFINITION: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/cohorts/celecoxib-age40-male.json"
);
const GIBLEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/eunomia-gibleed-5.3"
);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cli() -> Cli {
    Cli::new(QIAO, "bench-password")
}

fn qiao(args: &[&str]) -> String {
    cli().run(args).unwrap_or_else(|e| panic!("{e:#}"))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// GiBleed×K ingested once and kept between runs.
fn replicated_store(dir: &Path, k: u64) -> PathBuf {
    let store = dir.join(format!("gibleed-x{k}.qiao"));
    if store.exists() {
        return store;
    }
    std::fs::create_dir_all(dir).expect("bench dir");
    let cdm = dir.join(format!("gibleed-x{k}"));
    let t = Instant::now();
    qiao(&[
        "synth",
        "--from",
        GIBLEED,
        "--replicate",
        &k.to_string(),
        "--out",
        s(&cdm),
        "--quiet",
    ]);
    qiao(&["ingest", "--cdm", s(&cdm), "--out", s(&store)]);
    let _ = std::fs::remove_dir_all(&cdm);
    eprintln!(
        "GiBleed x{k} replicated and ingested in {:.1} s → {}",
        t.elapsed().as_secs_f64(),
        store.display()
    );
    store
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(label: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "{label:<34} n={:<5} p50 {:>7.1} ms  p90 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  mean {:>7.1} ms",
        v.len(),
        percentile(&v, 50.0),
        percentile(&v, 90.0),
        percentile(&v, 99.0),
        v.last().copied().unwrap_or(f64::NAN),
        mean
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run only when asked.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let queries = env_or("QIAO_BENCH_QUERIES", 200);
    let n_sites = env_or("QIAO_BENCH_SITES", 5);
    let k = env_or("QIAO_BENCH_REPLICATE", 20);
    let fits = env_or("QIAO_BENCH_FITS", 3);
    let n_analyses = env_or("QIAO_BENCH_ANALYSES", 20);
    let cache = std::env::var_os("QIAO_BENCH_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-network"),
        PathBuf::from,
    );
    let store = replicated_store(&cache, k);
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let spec = Spec {
        accounts: vec![Account {
            id: "sponsor".into(),
            role: UserRole::SponsorResearcher,
            password: "bench-password".into(),
            institution: Some("Pharma".into()),
            site: None,
            api_token: true,
        }],
        sites: (1..=n_sites)
            .map(|i| SiteSpec {
                id: format!("site{i}"),
                name: None,
                store: store.clone(),
                data: d.join(format!("site{i}")),
            })
            .collect(),
        projects: vec![ProjectSpec {
            id: "bench".into(),
            title: "Round trip benchmark".into(),
            members: vec!["sponsor".into()],
        }],
        site_logs: true,
        // The submission quotas (120 per user per hour) would stop a 200-query run.
        jobs_per_hour: Some(100_000),
        // The exact release mode of the regression runs has no ρ: no alliance ceiling on it.
        hub_args: if fits > 0 {
            vec!["--floor-max-rho-per-release".into(), "none".into()]
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    let net = Network::start(d, &spec, &Nodes::Processes(cli())).expect("network");
    // The running sites read their policy for every job.
    for site in &net.sites {
        let dir = SiteDir::open(&site.data).expect("site dir");
        let mut policy = SitePolicy::load(&dir).expect("policy");
        policy.rate_limit.max_queries = u32::MAX;
        policy.lockout.max_same_result = u32::MAX;
        // The privacy budgets bound what is learned, not how fast: the default user budget
        // answers a handful of funnels per 30 days, this bench asks hundreds.
        policy.dp.user_rho = 1e5;
        policy.dp.organization_rho = 1e5;
        policy.dp.site_rho = 1e5;
        // Analyses (characterization, incidence) run without the steward's approval.
        policy.analyses = qiao_site::Approval::Auto;
        policy.save(&dir).expect("save policy");
    }
    let logs: Vec<PathBuf> = net.sites.iter().filter_map(|s| s.log.clone()).collect();
    let client = net.client_of("sponsor").expect("client");
    let definition: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(DEFINITION).expect("definition"))
            .expect("definition JSON");
    let project = ProjectId::new("bench").expect("project id");
    let request = QueryRequest {
        query: QueryType::CohortCount,
        definition,
        sites: None,
    };
    let round_trip_of = |request: &QueryRequest, check: bool| -> f64 {
        let t = Instant::now();
        let job = client.submit_query(&project, request).expect("submit");
        loop {
            let v = client.job(&job.job_id).expect("job status");
            if v.complete {
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                if check {
                    assert!(
                        v.sites
                            .iter()
                            .all(|s| s.status == qiao_hub::view::SiteStatus::Done),
                        "not every site is done: {:?}",
                        v.sites.iter().map(|s| s.status).collect::<Vec<_>>()
                    );
                    assert_eq!(v.sites.len() as u64, n_sites);
                }
                return ms;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "job {} not complete after 60 s",
                job.job_id
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let round_trip = |check: bool| round_trip_of(&request, check);
    // Sites enrolled and polling; first queries warm the page cache and connections.
    for _ in 0..5 {
        round_trip(true);
    }
    let mut times = Vec::new();
    let started = Instant::now();
    for _ in 0..queries {
        times.push(round_trip(true));
    }
    let wall = started.elapsed().as_secs_f64();
    let analyses: Vec<(&str, Vec<f64>)> = analysis_requests()
        .iter()
        .map(|(label, r)| {
            round_trip_of(r, true);
            let v = (0..n_analyses).map(|_| round_trip_of(r, true)).collect();
            (*label, v)
        })
        .collect();
    let fits = regression_runs(&net, &client, &project, fits);

    let mut cohort = Vec::new();
    for _ in 0..5 {
        let out = qiao(&[
            "cohort",
            "run",
            "--json",
            "--stats",
            "--store",
            s(&store),
            DEFINITION,
        ]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("cohort JSON");
        cohort.push(v["millis"].as_f64().unwrap_or(f64::NAN));
        if cohort.len() == 1 {
            eprintln!(
                "cohort on the store: {} entries, final {}",
                v["entries"], v["final_persons"]
            );
        }
    }
    drop(net);
    let mut executed = Vec::new();
    for log in &logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains("job executed")) {
            if let Some(ms) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("millis="))
                .and_then(|v| v.parse::<f64>().ok())
            {
                executed.push(ms);
            }
        }
    }
    println!(
        "network round trip: {n_sites} sites x GiBleed x{k} on loopback, {queries} sequential cohort_count queries in {wall:.1} s ({:.1} queries/s)",
        queries as f64 / wall
    );
    if queries > 0 {
        summary("submit -> all results", times);
    }
    summary("site: job executed (each site)", executed);
    if n_analyses > 0 {
        println!(
            "analyses through the hub ({n_sites} sites, default DP policy), submit -> all results:"
        );
        for (label, v) in analyses {
            summary(label, v);
        }
    }
    cohort.sort_by(f64::total_cmp);
    println!(
        "{:<34} best of 5 {:>7.1} ms (qiao cohort run, parse + plan + run, all threads)",
        "cohort alone",
        cohort.first().copied().unwrap_or(f64::NAN)
    );
    let (ends, rounds): (Vec<f64>, Vec<Vec<f64>>) = fits.into_iter().unzip();
    if !ends.is_empty() {
        println!(
            "federated Cox, 5 covariates, {n_sites} sites x GiBleed x{k}, stratified by site:"
        );
        summary("start -> fit (end to end)", ends);
        summary("round (issued -> last sums)", rounds.concat());
    }
}

const ANALYSIS_COHORTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../analysis/tests/cohorts");

/// The network forms of issue 15's analyses, of celecoxib new users (CohortGenerator cohort 1)
/// under the sites' default DP policy: a characterization with FE's default analyses naming male
/// and female and the four comorbidity scores (continuous, released clipped with histograms),
/// and the incidence of GI bleed in 3 times at risk (cohort period, 365 and 30 days from start)
/// with every stratum (age groups by 40 and 65, gender, start year).
fn analysis_requests() -> Vec<(&'static str, QueryRequest)> {
    use qiao_hub::protocol::{
        CharacterizationSpec, IncidenceSpec, IncidenceStrata, TarAnchor, TarDate, TimeAtRisk,
    };
    let definition = cohort_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/reference/cohortgenerator-eunomia/cohorts/1.json"
    ));
    let from_start = |days: i32| TimeAtRisk {
        start: TarAnchor {
            date_field: TarDate::Start,
            offset: 0,
        },
        end: TarAnchor {
            date_field: TarDate::Start,
            offset: days,
        },
    };
    vec![
        (
            "characterization (FE default set)",
            QueryRequest {
                query: QueryType::Characterization(CharacterizationSpec {
                    comparator: None,
                    analyses: Vec::new(),
                    covariate_ids: vec![8507001, 8532001, 1901, 1902, 1903, 1904],
                }),
                definition: definition.clone(),
                sites: None,
            },
        ),
        (
            "incidence (3 TARs, all strata)",
            QueryRequest {
                query: QueryType::Incidence(IncidenceSpec {
                    outcome: cohort_file(&format!("{ANALYSIS_COHORTS}/gi_bleed.json")),
                    tars: vec![TimeAtRisk::cohort_period(), from_start(365), from_start(30)],
                    clean_window: 0,
                    strata: IncidenceStrata {
                        by_age: true,
                        by_gender: true,
                        by_year: true,
                    },
                    age_breaks: vec![40, 65],
                    max_tar_days: IncidenceSpec::DEFAULT_MAX_TAR_DAYS,
                    max_outcomes_per_tar: IncidenceSpec::DEFAULT_MAX_OUTCOMES_PER_TAR,
                }),
                definition,
                sites: None,
            },
        ),
    ]
}

fn cohort_file(path: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `fits` federated Cox runs, one after another: per run, the milliseconds from the start to
/// the fit and each round's milliseconds (issued → the last site's sums).
fn regression_runs(
    net: &Network,
    client: &qiao_hub::HubClient,
    project: &ProjectId,
    fits: u64,
) -> Vec<(f64, Vec<f64>)> {
    use qiao_hub::protocol::{RegressionCovariate, RegressionModel, RegressionSpec};
    use qiao_hub::service::runs::{RunRequest, RunStatus};
    if fits == 0 {
        return Vec::new();
    }
    for site in &net.sites {
        let dir = SiteDir::open(&site.data).expect("site dir");
        let mut policy = SitePolicy::load(&dir).expect("policy");
        policy.release = qiao_disclosure::ReleaseMode::Exact;
        policy.analyses = qiao_site::Approval::Auto;
        policy.save(&dir).expect("save policy");
    }
    let analysis = |name: &str| cohort_file(&format!("{ANALYSIS_COHORTS}/{name}.json"));
    let cohort = |name: &str| RegressionCovariate::Cohort {
        name: name.replace('_', " "),
        definition: analysis(name),
    };
    let request = RunRequest {
        spec: RegressionSpec {
            model: RegressionModel::Cox,
            outcome: analysis("gi_bleed"),
            comparator: Some(analysis("diclofenac")),
            covariates: vec![
                RegressionCovariate::Treatment,
                RegressionCovariate::Age,
                RegressionCovariate::Gender,
                cohort("ankle_sprain"),
                cohort("concussion"),
            ],
            tar: "start+0:obs_end".into(),
        },
        definition: cohort_file(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/reference/cohortgenerator-eunomia/cohorts/1.json"
        )),
        sites: None,
        round_timeout_secs: None,
    };
    (0..fits)
        .map(|_| {
            let t = Instant::now();
            let run = client.start_run(project, &request).expect("start run");
            let run = loop {
                let r = client.run(&run.run_id).expect("run");
                if r.status != RunStatus::Running {
                    break r;
                }
                assert!(t.elapsed() < Duration::from_secs(120), "run still running");
                std::thread::sleep(Duration::from_millis(2));
            };
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(run.status, RunStatus::Converged, "{:?}", run.failure);
            let fit = run.fit.as_ref().expect("fit");
            eprintln!(
                "Cox run: n {} events {} iterations {} rounds {} in {ms:.0} ms; {}",
                fit.n,
                fit.events,
                fit.iterations,
                run.rounds.len(),
                fit.coefficients
                    .iter()
                    .map(|c| format!("{} {:.4}", c.name, c.beta))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let rounds = run
                .rounds
                .iter()
                .filter_map(|r| Some((r.finished_at_ms? - r.issued_at_ms) as f64))
                .collect();
            (ms, rounds)
        })
        .collect()
}
