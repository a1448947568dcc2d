//! Federated regression as jobs carry it: one Newton–Raphson round of one run
//! ([`RegressionRound`], a signed job per site) and a site's sums for that round's coefficients
//! ([`RegressionSums`]).
//!
//! A run (kept by the hub) fixes the model, the cohorts, the covariates and the sites; each round
//! asks every site for the log-likelihood, gradient and Hessian of its persons at the round's
//! coefficients. The answer cannot express patient-level data: two released counts (persons,
//! events) and `1 + p + p²` sums, each a record `{"value": x}` (the aggregate-only guard admits
//! arrays of records only), of exactly the shape the round's spec implies ([`check_sums`]).

use serde::{Deserialize, Serialize};

use super::{DisclosureSummary, Released};
use crate::ids::JobId;

/// Most covariates in a regression.
pub const MAX_REGRESSION_COVARIATES: usize = 64;
/// Most rounds a run may take (β = 0, then at most 25 Newton steps, each with at most 10
/// halvings, as `qiao-analysis`'s Newton–Raphson).
pub const MAX_ROUNDS: u32 = 1 + 25 * 11;

/// Which regression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RegressionModel {
    /// The outcome within the time at risk (yes/no), with an intercept.
    Logistic,
    /// Time to the outcome, Efron ties, stratified by site.
    Cox,
}

/// One covariate of the design, computed at each site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RegressionCovariate {
    /// Age at index per 10 years.
    Age,
    /// Male (8507) = 1, female (8532) = 0.
    Gender,
    /// Target = 1, comparator = 0 (needs a comparator).
    Treatment,
    /// In another cohort on the index date.
    Cohort {
        /// The covariate's name in the output.
        name: String,
        /// The cohort's OHDSI Circe expression.
        definition: serde_json::Value,
    },
}

/// What a run fits: the job's definition is the target cohort.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegressionSpec {
    /// Logistic or Cox.
    pub model: RegressionModel,
    /// The outcome cohort's Circe expression: the event is its first start within the time at
    /// risk.
    pub outcome: serde_json::Value,
    /// A comparator cohort (adds the covariate treatment first when not named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparator: Option<serde_json::Value>,
    /// The covariates, in order.
    #[serde(default)]
    pub covariates: Vec<RegressionCovariate>,
    /// The time at risk, as `qiao analyze regress --tar` (`start+N:obs_end`, `start+N:end+M`,
    /// `start+N:start+M`).
    #[serde(default = "RegressionSpec::default_tar")]
    pub tar: String,
}

impl RegressionSpec {
    fn default_tar() -> String {
        "start+0:obs_end".into()
    }

    /// The covariates as the sites compute them: the treatment first when there is a comparator
    /// and it is not named (as `qiao analyze regress`).
    pub fn design(&self) -> Vec<RegressionCovariate> {
        let mut v = Vec::with_capacity(self.covariates.len() + 1);
        if self.comparator.is_some() && !self.covariates.contains(&RegressionCovariate::Treatment) {
            v.push(RegressionCovariate::Treatment);
        }
        v.extend(self.covariates.iter().cloned());
        v
    }

    /// Number of coefficients (logistic: the intercept too).
    pub fn parameters(&self) -> usize {
        self.design().len() + usize::from(self.model == RegressionModel::Logistic)
    }

    /// The spec's own problems, as `(JSON path, what is wrong)` (the time at risk's syntax is
    /// checked where it is parsed, by the analysis).
    pub fn check(&self) -> Result<(), (String, String)> {
        if !self.outcome.is_object() {
            return Err((
                "$.outcome".into(),
                "must be a cohort expression (a JSON object)".into(),
            ));
        }
        if self.comparator.as_ref().is_some_and(|c| !c.is_object()) {
            return Err((
                "$.comparator".into(),
                "must be a cohort expression (a JSON object)".into(),
            ));
        }
        if self.covariates.len() > MAX_REGRESSION_COVARIATES {
            return Err((
                "$.covariates".into(),
                format!("at most {MAX_REGRESSION_COVARIATES}"),
            ));
        }
        for (i, c) in self.covariates.iter().enumerate() {
            match c {
                RegressionCovariate::Treatment if self.comparator.is_none() => {
                    return Err((
                        format!("$.covariates[{i}]"),
                        "treatment needs a comparator".into(),
                    ))
                }
                RegressionCovariate::Cohort { definition, .. } if !definition.is_object() => {
                    return Err((
                        format!("$.covariates[{i}].definition"),
                        "must be a cohort expression (a JSON object)".into(),
                    ))
                }
                _ => {}
            }
            if self.covariates[..i].contains(c) {
                return Err((format!("$.covariates[{i}]"), "named twice".into()));
            }
        }
        if self.design().is_empty() && self.model == RegressionModel::Cox {
            return Err((
                "$.covariates".into(),
                "a Cox model needs at least one covariate".into(),
            ));
        }
        Ok(())
    }
}

/// Coefficients as a job carries them (compared bit for bit, so a job stays `Eq`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Coefficients(pub Vec<f64>);

impl PartialEq for Coefficients {
    fn eq(&self, o: &Self) -> bool {
        self.0.len() == o.0.len()
            && self
                .0
                .iter()
                .zip(&o.0)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl Eq for Coefficients {}

/// One round of a regression run: the sites' sums at `coefficients`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegressionRound {
    /// The run (its id at the hub).
    pub run_id: JobId,
    /// 0 for β = 0, then one per evaluation.
    pub round: u32,
    /// What the run fits (the same in every round).
    pub spec: RegressionSpec,
    /// Where to evaluate ([`RegressionSpec::parameters`] values; logistic: the intercept first).
    pub coefficients: Coefficients,
}

impl RegressionRound {
    /// The round's own problems, as `(JSON path, what is wrong)`.
    pub fn check(&self) -> Result<(), (String, String)> {
        self.spec
            .check()
            .map_err(|(p, m)| (p.replacen('$', "$.spec", 1), m))?;
        if self.round >= MAX_ROUNDS {
            return Err(("$.round".into(), format!("at most {MAX_ROUNDS} rounds")));
        }
        let p = self.spec.parameters();
        if self.coefficients.0.len() != p {
            return Err((
                "$.coefficients".into(),
                format!("{p} values, not {}", self.coefficients.0.len()),
            ));
        }
        if let Some(i) = self.coefficients.0.iter().position(|b| !b.is_finite()) {
            return Err((format!("$.coefficients[{i}]"), "not a finite number".into()));
        }
        Ok(())
    }
}

/// A released real-valued sum.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RealSum {
    /// The sum.
    pub value: f64,
}

/// A site's answer to a round: its persons' sums at the round's coefficients (Cox: its own
/// stratum).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegressionSums {
    /// Persons in the fit.
    pub persons: Released,
    /// Persons with the outcome.
    pub events: Released,
    /// Σ log-likelihood (Cox: Efron's partial log-likelihood of the site's stratum).
    pub loglik: RealSum,
    /// ∂ loglik / ∂β (p values).
    pub gradient: Vec<RealSum>,
    /// ∂² loglik / ∂β∂βᵀ, row-major p × p.
    pub hessian: Vec<RealSum>,
    /// The disclosure control applied.
    pub disclosure: DisclosureSummary,
}

/// Sums of the shape the round asks for (p gradient and p² Hessian values), every value finite.
pub fn check_sums(r: &RegressionSums, round: &RegressionRound) -> Result<(), (String, String)> {
    let p = round.spec.parameters();
    if r.gradient.len() != p {
        return Err((
            "$.gradient".into(),
            format!("{p} values, not {}", r.gradient.len()),
        ));
    }
    if r.hessian.len() != p * p {
        return Err((
            "$.hessian".into(),
            format!("{} values, not {}", p * p, r.hessian.len()),
        ));
    }
    let all = std::iter::once(("$.loglik".to_string(), r.loglik.value))
        .chain(
            r.gradient
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("$.gradient[{i}]"), v.value)),
        )
        .chain(
            r.hessian
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("$.hessian[{i}]"), v.value)),
        );
    for (path, v) in all {
        if !v.is_finite() {
            return Err((path, "not a finite number".into()));
        }
    }
    Ok(())
}
