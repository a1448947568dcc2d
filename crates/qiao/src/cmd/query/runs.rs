//! `qiao query --analysis regress` and `qiao query --resume RUN`: start (or resume) a federated
//! regression run at the hub and follow it to its end, a line per round on stderr; the fit in
//! the shape of `qiao analyze regress --json`, plus the run, its rounds and their timing.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use qiao_hub::api::{RunRecord, RunRequest, RunStatus};
use qiao_hub::protocol::{
    JobId, ProjectId, RegressionCovariate, RegressionModel, RegressionSpec, SiteId,
};
use qiao_hub::HubClient;
use serde_json::json;

use super::{read_json, AnalysisKind, Args};

/// The regression spec the flags give.
fn spec(a: &Args) -> anyhow::Result<RegressionSpec> {
    let model = match a.model.as_deref() {
        Some("logistic") => RegressionModel::Logistic,
        Some("cox") => RegressionModel::Cox,
        Some(m) => bail!("--model {m:?}: expected logistic or cox"),
        None => bail!("--analysis regress needs --model logistic|cox"),
    };
    let Some(outcome) = &a.outcome else {
        bail!("--analysis regress needs --outcome O.json");
    };
    if a.tars.len() > 1 {
        bail!("--analysis regress takes one --tar");
    }
    let mut covariates = Vec::new();
    for c in a
        .covariates
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
    {
        covariates.push(match c.split_once(':') {
            None if c == "age" => RegressionCovariate::Age,
            None if c == "gender" => RegressionCovariate::Gender,
            None if c == "treatment" => RegressionCovariate::Treatment,
            Some(("cohort", path)) => {
                let path = Path::new(path);
                RegressionCovariate::Cohort {
                    name: path
                        .file_stem()
                        .map_or(path.display().to_string(), |s| s.to_string_lossy().into()),
                    definition: read_json(path)?,
                }
            }
            Some(("fe", _)) => bail!(
                "covariate {c:?}: FeatureExtraction covariates are not yet computed by the sites of a network run"
            ),
            _ => bail!("covariate {c:?}: expected age, gender, treatment or cohort:FILE.json"),
        });
    }
    let spec = RegressionSpec {
        model,
        outcome: read_json(outcome)?,
        comparator: a.comparator.as_deref().map(read_json).transpose()?,
        covariates,
        tar: a
            .tars
            .first()
            .cloned()
            .unwrap_or_else(|| "start+0:obs_end".into()),
    };
    spec.check().map_err(|(p, m)| anyhow::anyhow!("{p}: {m}"))?;
    Ok(spec)
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    let client = HubClient::new(&a.hub, a.ca_cert.as_deref())?.with_token(a.token.clone());
    let run = match &a.resume {
        Some(id) => {
            let id: JobId = id
                .parse()
                .with_context(|| format!("--resume {id:?}: not a run id"))?;
            let run = client.resume_run(&id)?;
            eprintln!(
                "run {id}: round {} issued again",
                run.rounds.last().map_or(0, |r| r.round)
            );
            run
        }
        None => {
            if !matches!(a.analysis, Some(AnalysisKind::Regress)) {
                bail!("--resume resumes a regression run");
            }
            let Some(path) = &a.definition else {
                bail!("the target cohort definition (a Circe JSON file) is missing");
            };
            let sites = a
                .sites
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| SiteId::new(s.clone()))
                .collect::<Result<Vec<_>, _>>()?;
            let req = RunRequest {
                spec: spec(a)?,
                definition: read_json(path)?,
                sites: (!sites.is_empty()).then_some(sites),
                round_timeout_secs: Some(a.round_timeout),
            };
            let run = client.start_run(&ProjectId::new(a.project.clone())?, &req)?;
            eprintln!("run {} started on {} sites", run.run_id, run.sites.len());
            run
        }
    };
    let run = follow(&client, run, Duration::from_secs(a.wait))?;
    let mut out = std::io::stdout().lock();
    match run.status {
        RunStatus::Converged | RunStatus::NotConverged | RunStatus::Completed => {}
        RunStatus::Failed => {
            if a.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&report(&run))?)?;
            }
            bail!(
                "run {} failed: {}; its state is kept: `qiao query --resume {}` issues the failed round again",
                run.run_id,
                run.failure.as_deref().unwrap_or("unknown"),
                run.run_id
            );
        }
        RunStatus::Running => bail!(
            "run {} is still running after {} s (follow it again with GET /api/v1/runs/{})",
            run.run_id,
            a.wait,
            run.run_id
        ),
    }
    let v = report(&run);
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    let Some(fit) = &run.fit else {
        bail!("run {} ended without a fit", run.run_id);
    };
    writeln!(
        out,
        "federated {} regression over {} sites: n {}, events {}, {} iterations in {} rounds{}",
        v["model"].as_str().unwrap_or_default(),
        run.sites.len(),
        fit.n,
        fit.events,
        fit.iterations,
        run.rounds.len(),
        if fit.converged {
            ""
        } else if fit.privacy.is_some() {
            " (a fixed number of rounds on noisy sums: differential privacy)"
        } else {
            " (NOT converged)"
        }
    )?;
    for c in &fit.coefficients {
        writeln!(
            out,
            "{:<36} {:>9.4} {:>8.4} {:>8.3} {:>10.3e} {:>8.3} {:>9.3}–{:<9.3}",
            c.name, c.beta, c.se, c.z, c.p, c.ratio, c.ratio_lower, c.ratio_upper
        )?;
    }
    Ok(())
}

/// Polls the run until it is no longer running (or `wait` passes), a line per finished round.
fn follow(client: &HubClient, mut run: RunRecord, wait: Duration) -> anyhow::Result<RunRecord> {
    let start = Instant::now();
    let mut shown = 0usize;
    loop {
        for r in run
            .rounds
            .iter()
            .filter(|r| r.finished_at_ms.is_some())
            .skip(shown)
        {
            let loglik: f64 = r.sites.iter().map(|s| s.sums.loglik).sum();
            eprintln!(
                "round {}: loglik {loglik:.10}, {} sites, {} ms",
                r.round,
                r.sites.len(),
                r.finished_at_ms.unwrap_or(r.issued_at_ms) - r.issued_at_ms
            );
            shown += 1;
        }
        if run.status != RunStatus::Running || start.elapsed() >= wait {
            return Ok(run);
        }
        std::thread::sleep(Duration::from_millis(15));
        run = client.run(&run.run_id)?;
    }
}

/// The run as `qiao analyze regress --json` shapes a fit, plus the run and its rounds.
fn report(run: &RunRecord) -> serde_json::Value {
    let mut v = match &run.fit {
        Some(fit) => serde_json::to_value(fit).unwrap_or_default(),
        None => json!({}),
    };
    let model = match run.spec.model {
        RegressionModel::Logistic => "logistic",
        RegressionModel::Cox => "cox",
    };
    v["model"] = json!(model);
    v["run_id"] = json!(run.run_id);
    v["status"] = json!(run.status);
    if let Some(f) = &run.failure {
        v["failure"] = json!(f);
    }
    v["sites"] = json!(run.sites);
    v["time_at_risk"] = json!(run.spec.tar);
    v["method"] = json!(match run.spec.model {
        RegressionModel::Logistic => "federated logistic regression (outcome within the time at risk), Newton-Raphson over the sites' sums, Wald 95% intervals",
        RegressionModel::Cox => "federated Cox proportional hazards, Efron ties, stratified by site, Newton-Raphson over the sites' sums, Wald 95% intervals",
    });
    if run.fit.as_ref().is_some_and(|f| f.privacy.is_some()) {
        v["method"] = json!("federated logistic regression under differential privacy: covariates clipped to the ranges in `privacy.clip`, each round's sums released with Gaussian noise (one zCDP release per round, every round charged at round 0), a fixed number of Newton-Raphson rounds with the noisy information made positive definite, the estimate the last round's Newton step, Wald 95% intervals including the gradient noise");
    }
    v["rounds"] = json!(run
        .rounds
        .iter()
        .map(|r| json!({
            "round": r.round,
            "coefficients": r.coefficients,
            "loglik": r.sites.iter().map(|s| s.sums.loglik).sum::<f64>(),
            "sites": r.sites.len(),
            "rho_spent": r.sites.iter().map(|s| s.rho_spent).collect::<Vec<_>>(),
            "millis": r.finished_at_ms.map(|f| f - r.issued_at_ms),
        }))
        .collect::<Vec<_>>());
    v
}
