//! `qiao analyze regress`: logistic (outcome within the time at risk) or Cox proportional-hazards
//! (Efron ties) regression on one store, fitted by the same Newton–Raphson over site sums the
//! network uses, with the site's DataSHIELD-style guards.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use qiao_analysis::regression::design::{
    columns, AgeDecades, Arm, CohortMembership, Covariate, FeCovariate, GenderMale, Treatment, Unit,
};
use qiao_analysis::regression::{fit, Guard, Model, SiteData};
use qiao_analysis::time_to_event::follow_up;
use qiao_store::Store;
use serde_json::json;

use super::survival::{cohort_file, follow_up_json, open_store, CohortArgs};

#[derive(clap::Args)]
pub struct Args {
    /// logistic (the outcome within the time at risk, yes/no) or cox (time to the outcome).
    #[arg(long)]
    pub model: Model,
    /// The cohorts; a comparator adds the covariate treatment (target = 1, comparator = 0).
    #[command(flatten)]
    pub cohorts: CohortArgs,
    /// Covariates, comma-separated: age (at index, per 10 years), gender (male vs female),
    /// cohort:X.json (in cohort X on the index date), treatment, fe:ID (FeatureExtraction).
    #[arg(long, value_delimiter = ',')]
    pub covariates: Vec<String>,
    /// Fewest persons in any level of the outcome or of a binary covariate (default: the
    /// disclosure policy's minimum cell count).
    #[arg(long, default_value_t = qiao_disclosure::Policy::default().min_cell_count)]
    pub min_persons: u64,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

fn covariate(store: &Store, spec: &str, comparator: bool) -> anyhow::Result<Box<dyn Covariate>> {
    let spec = spec.trim();
    Ok(match spec.split_once(':') {
        None if spec == "age" => Box::new(AgeDecades),
        None if spec == "gender" => Box::new(GenderMale),
        None if spec == "treatment" => {
            if !comparator {
                bail!("covariate treatment needs --comparator");
            }
            Box::new(Treatment)
        }
        Some(("cohort", path)) => {
            let path = Path::new(path);
            Box::new(CohortMembership {
                name: path
                    .file_stem()
                    .map_or(path.display().to_string(), |s| s.to_string_lossy().into()),
                rows: cohort_file(store, path)?,
            })
        }
        Some(("fe", id)) => {
            let id: i64 = id
                .parse()
                .with_context(|| format!("covariate {spec:?}: not a covariate id"))?;
            Box::new(FeCovariate::new(id)?)
        }
        _ => {
            bail!("covariate {spec:?}: expected age, gender, treatment, cohort:FILE.json or fe:ID")
        }
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let a = &args.cohorts;
    let store = open_store(&a.store)?;
    let outcome = cohort_file(&store, &a.outcome)?;
    let target = follow_up(&store, &cohort_file(&store, &a.target)?, &outcome, a.tar);
    let comparator = a
        .comparator
        .as_deref()
        .map(|c| anyhow::Ok(follow_up(&store, &cohort_file(&store, c)?, &outcome, a.tar)))
        .transpose()?;
    let mut covariates: Vec<Box<dyn Covariate>> = Vec::new();
    if comparator.is_some() && !args.covariates.iter().any(|c| c.trim() == "treatment") {
        covariates.push(Box::new(Treatment));
    }
    for spec in args.covariates.iter().filter(|s| !s.trim().is_empty()) {
        covariates.push(covariate(&store, spec, comparator.is_some())?);
    }
    let units: Vec<Unit> = target
        .subjects
        .iter()
        .map(|&subject| Unit {
            subject,
            arm: Arm::Target,
        })
        .chain(comparator.iter().flat_map(|c| {
            c.subjects.iter().map(|&subject| Unit {
                subject,
                arm: Arm::Comparator,
            })
        }))
        .collect();
    let (names, cols) = columns(&store, &units, &covariates)?;
    let time: Vec<i32> = units.iter().map(|u| u.subject.time).collect();
    let event: Vec<bool> = units.iter().map(|u| u.subject.event).collect();
    let site = SiteData::new(
        args.model,
        &names,
        &cols,
        &time,
        &event,
        &Guard::new(args.min_persons),
    )?;
    let fitted = fit(
        args.model,
        &args.model.coefficient_names(&names),
        &mut [&site],
    )?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut v = serde_json::to_value(&fitted)?;
        v["time_at_risk"] = json!(a.tar.to_string());
        v["follow_up"] = json!({
            "target": follow_up_json(&target),
            "comparator": comparator.as_ref().map(follow_up_json),
        });
        v["method"] = json!(match args.model {
            Model::Logistic => "logistic regression (outcome within the time at risk), Newton-Raphson, Wald 95% intervals",
            Model::Cox => "Cox proportional hazards, Efron ties, Newton-Raphson, Wald 95% intervals",
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    let ratio = match args.model {
        Model::Logistic => "OR",
        Model::Cox => "HR",
    };
    writeln!(
        out,
        "{} regression, time at risk {}: n {}, events {}, {} iterations{}",
        match args.model {
            Model::Logistic => "logistic",
            Model::Cox => "Cox (Efron ties)",
        },
        a.tar,
        fitted.n,
        fitted.events,
        fitted.iterations,
        if fitted.converged {
            ""
        } else {
            " (NOT converged)"
        }
    )?;
    writeln!(
        out,
        "{:<36} {:>9} {:>8} {:>8} {:>10} {:>8} {:>19}",
        "coefficient", "beta", "se", "z", "p", ratio, "95% CI"
    )?;
    for c in &fitted.coefficients {
        writeln!(
            out,
            "{:<36} {:>9.4} {:>8.4} {:>8.3} {:>10.3e} {:>8.3} {:>9.3}–{:<9.3}",
            c.name, c.beta, c.se, c.z, c.p, c.ratio, c.ratio_lower, c.ratio_upper
        )?;
    }
    Ok(())
}
