//! Federated regression launched from a project (issue 16): logistic or Cox regression of an
//! outcome cohort in a target cohort (and a comparator), over the project's attached cohorts.
//! Unlike the other analyses it is not one job but a multi-round run at the hub
//! (`qiao_hub::service::runs`: each Newton–Raphson round a signed job to every site, within the
//! hub's submission quotas); the portal's [`AnalysisRun`] holds the run's id, and a failed run
//! (a site refused, failed or did not answer a round) resumes through the hub's own
//! [`runs::resume`].

use qiao_hub::model::User;
use qiao_hub::protocol::{Floors, ProjectId, RegressionCovariate, RegressionModel, RegressionSpec};
use qiao_hub::service::jobs::SubmitRefused;
use qiao_hub::service::runs::{self, RunRefused, RunRequest};
use qiao_hub::store::{get_json, Quotas};
use qiao_hub::HubStore;

use super::analyses::{
    analysis_run, cohort_field, collect, launchable, record_run, AnalysisKind, AnalysisRun,
};
use super::feasibility::cohort_key;
use super::pipeline::load;
use super::refusal::{field, Outcome, Refusal};
use super::tables::{write, COHORTS};

/// The regression form: the model (`logistic`, `cox`), the target, outcome and (optional)
/// comparator cohorts, the time at risk as `qiao analyze regress --tar` writes it (empty:
/// `start+0:obs_end`), and the covariates (`age`, `gender`, `treatment`, `cohort:N` for the
/// project's cohort N; comma-separated).
pub struct RegressionForm<'a> {
    pub model: &'a str,
    pub target: &'a str,
    pub outcome: &'a str,
    pub comparator: &'a str,
    pub tar: &'a str,
    pub covariates: &'a str,
}

/// A covariate as the form names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CovariateChoice {
    /// Age at index per 10 years.
    Age,
    /// Male = 1.
    Gender,
    /// Target = 1, comparator = 0.
    Treatment,
    /// In the project's cohort N on the index date.
    Cohort(u32),
}

impl CovariateChoice {
    fn parse(token: &str) -> Outcome<CovariateChoice> {
        let bad = |key| Refusal::Field {
            field: "covariates",
            key,
            args: vec![("covariate", token.to_owned())],
        };
        match token {
            "age" => Ok(CovariateChoice::Age),
            "gender" => Ok(CovariateChoice::Gender),
            "treatment" => Ok(CovariateChoice::Treatment),
            t if t.starts_with("fe:") => Err(bad("ana.err_fe")),
            t => t
                .strip_prefix("cohort:")
                .and_then(|n| n.trim().parse().ok())
                .map(CovariateChoice::Cohort)
                .ok_or_else(|| bad("ana.err_covariate")),
        }
    }

    /// As the form writes it.
    pub fn as_form(&self) -> String {
        match self {
            CovariateChoice::Age => "age".into(),
            CovariateChoice::Gender => "gender".into(),
            CovariateChoice::Treatment => "treatment".into(),
            CovariateChoice::Cohort(n) => format!("cohort:{n}"),
        }
    }
}

/// A regression form, checked: everything but the cohorts' definitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegressionChoice {
    pub model: RegressionModel,
    pub target: u32,
    pub outcome: u32,
    pub comparator: Option<u32>,
    pub covariates: Vec<CovariateChoice>,
    pub tar: String,
}

impl RegressionChoice {
    /// The spec with each cohort's definition from `def` (by number) and a cohort
    /// covariate's name from `name`.
    fn spec(
        &self,
        def: &mut dyn FnMut(&'static str, u32) -> Outcome<serde_json::Value>,
        name: &dyn Fn(u32) -> String,
    ) -> Outcome<RegressionSpec> {
        let mut covariates = Vec::new();
        for c in &self.covariates {
            covariates.push(match *c {
                CovariateChoice::Age => RegressionCovariate::Age,
                CovariateChoice::Gender => RegressionCovariate::Gender,
                CovariateChoice::Treatment => RegressionCovariate::Treatment,
                CovariateChoice::Cohort(n) => RegressionCovariate::Cohort {
                    name: name(n),
                    definition: def("covariates", n)?,
                },
            });
        }
        Ok(RegressionSpec {
            model: self.model,
            outcome: def("outcome", self.outcome)?,
            comparator: self.comparator.map(|c| def("comparator", c)).transpose()?,
            covariates,
            tar: self.tar.clone(),
        })
    }
}

/// The form's field a spec problem at `path` belongs to.
fn field_of(path: &str) -> &'static str {
    let p = path.trim_start_matches('$').trim_start_matches('.');
    ["tar", "comparator", "outcome", "covariates"]
        .into_iter()
        .find(|f| p.starts_with(f))
        .unwrap_or("covariates")
}

/// The checked form; every bad field refused at once.
pub fn regression_choice(f: &RegressionForm<'_>) -> Result<RegressionChoice, Vec<Refusal>> {
    let mut errs = Vec::new();
    let model = match f.model.trim() {
        "logistic" => Some(RegressionModel::Logistic),
        "cox" => Some(RegressionModel::Cox),
        _ => {
            errs.push(field("model", "form.err_choice"));
            None
        }
    };
    let target = collect(&mut errs, cohort_field("target", f.target, false)).flatten();
    let outcome = collect(&mut errs, cohort_field("outcome", f.outcome, false)).flatten();
    let comparator = collect(&mut errs, cohort_field("comparator", f.comparator, true));
    let tar = match f.tar.trim() {
        "" => "start+0:obs_end".to_owned(),
        t => {
            if let Err(e) = t.parse::<qiao_analysis::time_to_event::TimeAtRisk>() {
                errs.push(Refusal::Field {
                    field: "tar",
                    key: "ana.err_spec",
                    args: vec![("what", e.to_string())],
                });
            }
            t.to_owned()
        }
    };
    let mut covariates = Vec::new();
    for token in f
        .covariates
        .split([',', ' ', '\n', '，'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if let Some(c) = collect(&mut errs, CovariateChoice::parse(token)) {
            covariates.push(c);
        }
    }
    let (Some(model), Some(target), Some(outcome), Some(comparator)) =
        (model, target, outcome, comparator)
    else {
        return Err(errs);
    };
    if comparator == Some(target) {
        errs.push(field("comparator", "ana.err_same"));
    }
    let choice = RegressionChoice {
        model,
        target,
        outcome,
        comparator,
        covariates,
        tar,
    };
    // The protocol's own check (a Cox model without covariates, treatment without a
    // comparator, a covariate twice), on placeholder definitions.
    if errs.is_empty() {
        let spec = choice.spec(&mut |_, _| Ok(serde_json::json!({})), &|n| n.to_string());
        if let Some(Err((path, what))) = spec.ok().map(|s| s.check()) {
            errs.push(Refusal::Field {
                field: field_of(&path),
                key: "ana.err_spec",
                args: vec![("what", format!("{path}: {what}"))],
            });
        }
    }
    if errs.is_empty() {
        Ok(choice)
    } else {
        Err(errs)
    }
}

/// A refused run start or resume as the portal says it.
fn refusal_of(e: RunRefused) -> Refusal {
    match e {
        RunRefused::Spec { path, message } => Refusal::Field {
            field: field_of(&path),
            key: "ana.err_spec",
            args: vec![("what", format!("{path}: {message}"))],
        },
        RunRefused::Submit(SubmitRefused::NoSites) => Refusal::State("state.err_no_sites"),
        RunRefused::Submit(SubmitRefused::Quota(_)) => Refusal::State("ana.err_quota"),
        RunRefused::Submit(SubmitRefused::NotMember(_)) => Refusal::Forbidden,
        RunRefused::Submit(SubmitRefused::NotApproved(_)) => Refusal::State("ana.err_stage"),
        RunRefused::Submit(SubmitRefused::Store(e)) | RunRefused::Store(e) => Refusal::Store(e),
        RunRefused::Submit(e) => Refusal::Field {
            field: "target",
            key: "ana.err_spec",
            args: vec![("what", e.to_string())],
        },
        RunRefused::NotFailed(..) => Refusal::State("ana.err_not_failed"),
        RunRefused::NotFound(_) => Refusal::NotFound,
    }
}

/// A regression from its form, started as a run at the hub (round 0 issued to every enrolled
/// site within `quotas`, stating `floors`) and recorded as the project's next analysis. Only
/// a sponsor member, in the stages analyses run. The caller wakes the polling sites.
pub fn run_regression(
    store: &dyn HubStore,
    quotas: &Quotas,
    floors: Floors,
    id: &ProjectId,
    form: &RegressionForm<'_>,
    by: &User,
    now: i64,
) -> Result<AnalysisRun, Vec<Refusal>> {
    let choice = regression_choice(form)?;
    let (project, request) = write(store, |tx| {
        let project = launchable(tx, id, by)?;
        let (file, _) = load(tx, id)?;
        let mut def = |name: &'static str, n: u32| -> Outcome<serde_json::Value> {
            get_json::<serde_json::Value>(tx, COHORTS, &cohort_key(id, n))?
                .ok_or_else(|| field(name, "form.err_choice"))
        };
        let target = def("target", choice.target)?;
        let name = |n: u32| {
            file.cohorts
                .iter()
                .find(|c| c.n == n)
                .map_or_else(|| n.to_string(), |c| format!("{n}. {}", c.name))
        };
        let spec = choice.spec(&mut def, &name)?;
        Ok((
            project,
            RunRequest {
                spec,
                definition: target,
                sites: None,
                round_timeout_secs: None,
            },
        ))
    })
    .map_err(|e| vec![e])?;
    let run = runs::start(store, quotas, by, &project, request, floors, now)
        .map_err(|e| vec![refusal_of(e)])?;
    let round0 = run.rounds.first().map(|r| r.job_id).unwrap_or(run.run_id);
    let kind = AnalysisKind::Regression {
        model: choice.model,
        outcome: choice.outcome,
        comparator: choice.comparator,
        covariates: choice.covariates.iter().map(|c| c.as_form()).collect(),
    };
    write(store, |tx| {
        record_run(
            tx,
            id,
            choice.target,
            kind.clone(),
            round0,
            Some(run.run_id),
            by,
            now,
        )
    })
    .map_err(|e| vec![e])
}

/// Resumes analysis `n`'s failed regression run (its failed round issued again: the same
/// coefficients, to the same sites), as a sponsor member in the stages analyses run.
pub fn resume_regression(
    store: &dyn HubStore,
    id: &ProjectId,
    n: u32,
    by: &User,
    now: i64,
) -> Outcome<AnalysisRun> {
    let rec = analysis_run(store, id, n)?.ok_or(Refusal::NotFound)?;
    let run_id = rec.run.ok_or(Refusal::NotFound)?;
    write(store, |tx| launchable(tx, id, by).map(|_| ()))?;
    runs::resume(store, &run_id, by, now).map_err(refusal_of)?;
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form<'a>(model: &'a str, comparator: &'a str, covariates: &'a str) -> RegressionForm<'a> {
        RegressionForm {
            model,
            target: "1",
            outcome: "3",
            comparator,
            tar: "",
            covariates,
        }
    }

    /// The fields refused, in order, with their message keys.
    fn refused(errs: &[Refusal]) -> Vec<(&'static str, &'static str)> {
        errs.iter()
            .filter_map(|e| match e {
                Refusal::Field { field, key, .. } => Some((*field, *key)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_form_parses_into_a_choice_and_names_the_bad_field() {
        let c = regression_choice(&form("cox", "2", "age, gender，cohort:4 treatment")).unwrap();
        assert_eq!(
            c,
            RegressionChoice {
                model: RegressionModel::Cox,
                target: 1,
                outcome: 3,
                comparator: Some(2),
                covariates: vec![
                    CovariateChoice::Age,
                    CovariateChoice::Gender,
                    CovariateChoice::Cohort(4),
                    CovariateChoice::Treatment
                ],
                tar: "start+0:obs_end".into(),
            }
        );
        // Every bad field at once: the model, a covariate of no kind, an fe: covariate (not
        // computed across the network), the time at risk.
        let errs = regression_choice(&RegressionForm {
            tar: "end+0:obs_end",
            ..form("probit", "", "age, bmi, fe:8507001")
        })
        .unwrap_err();
        assert_eq!(
            refused(&errs),
            [
                ("model", "form.err_choice"),
                ("tar", "ana.err_spec"),
                ("covariates", "ana.err_covariate"),
                ("covariates", "ana.err_fe")
            ]
        );
        // The protocol's own checks, on the covariates field: a Cox model needs a covariate,
        // treatment needs a comparator, a covariate twice.
        for (model, comparator, covariates, what) in [
            (
                "cox",
                "",
                "",
                "$.covariates: a Cox model needs at least one covariate",
            ),
            (
                "logistic",
                "",
                "treatment",
                "$.covariates[0]: treatment needs a comparator",
            ),
            ("logistic", "2", "age,age", "$.covariates[1]: named twice"),
        ] {
            let errs = regression_choice(&form(model, comparator, covariates)).unwrap_err();
            match &errs[..] {
                [Refusal::Field {
                    field: "covariates",
                    key: "ana.err_spec",
                    args,
                }] => assert_eq!(args[0].1, what),
                other => panic!("{other:?}"),
            }
        }
        // With a comparator a Cox model has its treatment covariate: accepted without others.
        assert!(regression_choice(&form("cox", "2", "")).is_ok());
        assert_eq!(
            refused(&regression_choice(&form("cox", "1", "age")).unwrap_err()),
            [("comparator", "ana.err_same")]
        );
    }
}
