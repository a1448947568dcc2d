//! The analyses beyond counts, as jobs carry them (specs) and sites answer them (released
//! aggregates): cohort characterization (OHDSI FeatureExtraction) and incidence (OHDSI
//! CohortIncidence).
//!
//! As every result type of [`crate::message`], the answers cannot express patient-level data:
//! every number is a [`Released`] count or sum, every identifier an integer the hub can check
//! against the job ([`crate::guard`]); no covariate names (free text) and no quantiles, minima
//! or maxima (each is one person's value) cross the wire. What each number's sensitivity is,
//! and how it is clipped, is stated by the analysis that releases it (crate `qiao-analysis`,
//! module `network`) and in `THREAT_MODEL.md`.

use serde::{Deserialize, Serialize};

use super::{DisclosureSummary, Released};

/// Most FeatureExtraction analysis ids in a characterization spec.
pub const MAX_ANALYSES: usize = 128;
/// Most covariates named in a characterization spec, and most covariates in a result.
pub const MAX_COVARIATES: usize = 20_000;
/// Most times at risk in an incidence spec.
pub const MAX_TARS: usize = 10;
/// Most age breaks in an incidence spec.
pub const MAX_AGE_BREAKS: usize = 20;
/// Most rows in an incidence result.
pub const MAX_INCIDENCE_ROWS: usize = 65_536;

/// Cohort characterization: FeatureExtraction's aggregated covariates of the job's cohort
/// (the target) and, optionally, a comparator cohort.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CharacterizationSpec {
    /// The comparator's OHDSI Circe cohort expression, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparator: Option<serde_json::Value>,
    /// FeatureExtraction analysis ids (empty: FE's default set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analyses: Vec<u32>,
    /// The covariates to release (`concept_id × 1000 + analysis_id`). Under differential
    /// privacy a site releases only covariates named here (which covariates exist is itself a
    /// fact about the data, so the list must be fixed before the data is seen); empty: every
    /// covariate at or above the threshold, in the legacy and exact modes only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub covariate_ids: Vec<i64>,
}

/// Where a time at risk starts or ends: a cohort date plus days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TarAnchor {
    /// The cohort date.
    pub date_field: TarDate,
    /// Days added to it.
    #[serde(default)]
    pub offset: i32,
}

/// A cohort date a time at risk is anchored at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TarDate {
    /// The cohort start.
    Start,
    /// The cohort end.
    End,
}

/// One time at risk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TimeAtRisk {
    /// Its start.
    pub start: TarAnchor,
    /// Its end.
    pub end: TarAnchor,
}

impl TimeAtRisk {
    /// CohortIncidence's default: cohort start to cohort end.
    pub fn cohort_period() -> Self {
        TimeAtRisk {
            start: TarAnchor {
                date_field: TarDate::Start,
                offset: 0,
            },
            end: TarAnchor {
                date_field: TarDate::End,
                offset: 0,
            },
        }
    }
}

/// The strata of an incidence analysis (the unstratified row is always there).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct IncidenceStrata {
    /// By age group (from [`IncidenceSpec::age_breaks`]).
    pub by_age: bool,
    /// By gender (male 8507 and female 8532 rows; other genders only in the margins).
    pub by_gender: bool,
    /// By the year the time at risk starts.
    pub by_year: bool,
}

/// Incidence: CohortIncidence's analysis of the job's cohort (the target) and one outcome
/// cohort over one or more times at risk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IncidenceSpec {
    /// The outcome's OHDSI Circe cohort expression.
    pub outcome: serde_json::Value,
    /// Times at risk (1 to [`MAX_TARS`]); ids 1, 2, … in this order.
    pub tars: Vec<TimeAtRisk>,
    /// Days after an outcome's end during which a new outcome is not counted (and its time
    /// is not at risk).
    #[serde(default)]
    pub clean_window: u32,
    /// Strata.
    #[serde(default)]
    pub strata: IncidenceStrata,
    /// Age group boundaries (ascending), for [`IncidenceStrata::by_age`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub age_breaks: Vec<u8>,
    /// Differential privacy: each time at risk is cut to at most this many days, so one
    /// person's person-days are bounded (the declared clipping of `person_days`).
    #[serde(default = "IncidenceSpec::default_max_tar_days")]
    pub max_tar_days: u32,
    /// Differential privacy: outcomes counted at most this many times per time at risk.
    #[serde(default = "IncidenceSpec::default_max_outcomes_per_tar")]
    pub max_outcomes_per_tar: u32,
}

impl IncidenceSpec {
    /// Default clip of a time at risk under DP: one year.
    pub const DEFAULT_MAX_TAR_DAYS: u32 = 365;
    /// Default clip of outcomes per time at risk under DP.
    pub const DEFAULT_MAX_OUTCOMES_PER_TAR: u32 = 1;

    fn default_max_tar_days() -> u32 {
        Self::DEFAULT_MAX_TAR_DAYS
    }
    fn default_max_outcomes_per_tar() -> u32 {
        Self::DEFAULT_MAX_OUTCOMES_PER_TAR
    }

    /// The spec's own problems (a JSON path and what is wrong), checked by the hub on
    /// submission and by the site before anything is charged.
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.tars.is_empty() || self.tars.len() > MAX_TARS {
            return Err((
                "$.tars".into(),
                format!("1 to {MAX_TARS} times at risk, not {}", self.tars.len()),
            ));
        }
        if self.age_breaks.len() > MAX_AGE_BREAKS {
            return Err(("$.age_breaks".into(), format!("at most {MAX_AGE_BREAKS}")));
        }
        if self.age_breaks.windows(2).any(|w| w[0] >= w[1]) {
            return Err(("$.age_breaks".into(), "must be ascending".into()));
        }
        if self.strata.by_age && self.age_breaks.is_empty() {
            return Err((
                "$.age_breaks".into(),
                "strata by age need age breaks".into(),
            ));
        }
        if self.max_tar_days == 0 || self.max_outcomes_per_tar == 0 {
            return Err((
                "$.max_tar_days".into(),
                "the clipping bounds must be at least 1".into(),
            ));
        }
        if !self.outcome.is_object() {
            return Err((
                "$.outcome".into(),
                "must be a cohort expression (a JSON object)".into(),
            ));
        }
        Ok(())
    }
}

impl CharacterizationSpec {
    /// The spec's own problems (a JSON path and what is wrong).
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.analyses.len() > MAX_ANALYSES {
            return Err(("$.analyses".into(), format!("at most {MAX_ANALYSES} ids")));
        }
        if self.covariate_ids.len() > MAX_COVARIATES {
            return Err((
                "$.covariate_ids".into(),
                format!("at most {MAX_COVARIATES} ids"),
            ));
        }
        if let Some(i) = self.covariate_ids.iter().position(|&c| c < 0) {
            return Err((
                format!("$.covariate_ids[{i}]"),
                "must not be negative".into(),
            ));
        }
        if self.comparator.as_ref().is_some_and(|c| !c.is_object()) {
            return Err((
                "$.comparator".into(),
                "must be a cohort expression (a JSON object)".into(),
            ));
        }
        Ok(())
    }
}

/// A cohort's size as released.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PopulationResult {
    /// Cohort entries (each person's clipped to the policy's bound under DP).
    pub entries: Released,
    /// Distinct persons.
    pub subjects: Released,
}

/// One binary covariate: entries with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CovariateResult {
    /// `concept_id × 1000 + analysis_id`.
    pub covariate_id: i64,
    /// The FeatureExtraction analysis.
    pub analysis_id: u32,
    /// Entries of the target with the covariate.
    pub target: Released,
    /// Entries of the comparator with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparator: Option<Released>,
}

/// A continuous covariate as sums: its count, sum and sum of squares (the mean and standard
/// deviation follow). Legacy and exact modes: of the values (`bin` 0, no histogram; quantiles,
/// minima and maxima are one person's value each and stay at the site). Differential privacy:
/// of the values clipped to the analysis's declared range and counted in bins of width `bin`
/// (the sums are of the bin indices), with the histogram of the bins, from which the hub
/// derives the quantiles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Moments {
    /// Entries with a value.
    pub count: Released,
    /// Sum of the values (bin indices when `bin` > 0).
    pub sum: Released,
    /// Sum of the squared values (bin indices when `bin` > 0).
    pub sum_squares: Released,
    /// The bin width (0: the values themselves, no histogram).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bin: u64,
    /// Entries per bin (bin k holds the clipped values in [k·bin, (k+1)·bin)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub histogram: Vec<Released>,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

/// One continuous covariate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ContinuousResult {
    /// `concept_id × 1000 + analysis_id`.
    pub covariate_id: i64,
    /// The FeatureExtraction analysis.
    pub analysis_id: u32,
    /// The target's sums.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Moments>,
    /// The comparator's sums.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparator: Option<Moments>,
}

/// Answer to a characterization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CharacterizationResult {
    /// The target cohort.
    pub target: PopulationResult,
    /// The comparator cohort, if the spec has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparator: Option<PopulationResult>,
    /// Binary covariates, by covariate id.
    pub covariates: Vec<CovariateResult>,
    /// Continuous covariates, by covariate id.
    pub continuous: Vec<ContinuousResult>,
    /// The disclosure control applied.
    pub disclosure: DisclosureSummary,
}

/// One incidence row (a time at risk and a stratum); `None` strata are margins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IncidenceRow {
    /// The time at risk, 1-based in the spec's order.
    pub tar_id: u32,
    /// The age group (1-based over the spec's breaks), or all ages.
    pub age_group_id: Option<u32>,
    /// The gender concept (8507 or 8532), or all.
    pub gender_concept_id: Option<u32>,
    /// The year the time at risk starts, or all years.
    pub start_year: Option<u16>,
    /// Persons with time at risk, before exclusion.
    pub persons_at_risk_pe: Released,
    /// Persons with time at risk after excluded time.
    pub persons_at_risk: Released,
    /// Days at risk before exclusion.
    pub person_days_pe: Released,
    /// Days at risk after exclusion.
    pub person_days: Released,
    /// Persons with an outcome, before exclusion.
    pub person_outcomes_pe: Released,
    /// Persons with a counted outcome.
    pub person_outcomes: Released,
    /// Outcomes before exclusion.
    pub outcomes_pe: Released,
    /// Counted outcomes.
    pub outcomes: Released,
}

impl IncidenceRow {
    /// The row's coordinates.
    pub fn key(&self) -> (u32, Option<u32>, Option<u32>, Option<u16>) {
        (
            self.tar_id,
            self.age_group_id,
            self.gender_concept_id,
            self.start_year,
        )
    }

    /// The released numbers, named.
    pub fn values(&self) -> [(&'static str, &Released); 8] {
        [
            ("persons_at_risk_pe", &self.persons_at_risk_pe),
            ("persons_at_risk", &self.persons_at_risk),
            ("person_days_pe", &self.person_days_pe),
            ("person_days", &self.person_days),
            ("person_outcomes_pe", &self.person_outcomes_pe),
            ("person_outcomes", &self.person_outcomes),
            ("outcomes_pe", &self.outcomes_pe),
            ("outcomes", &self.outcomes),
        ]
    }
}

/// Answer to an incidence analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IncidenceResult {
    /// One row per time at risk and stratum.
    pub rows: Vec<IncidenceRow>,
    /// The disclosure control applied.
    pub disclosure: DisclosureSummary,
}

/// Most grid cells per arm in a survival result (⌈horizon / grid⌉ + 1).
pub const MAX_GRID_CELLS: usize = 4097;

/// When a survival analysis's time at risk ends (time zero is the cohort start plus
/// [`SurvivalTar::start_offset`]); it never runs past the end of the observation period that
/// contains the cohort start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SurvivalTarEnd {
    /// The end of the observation period.
    #[default]
    ObservationEnd,
    /// The cohort end plus days.
    CohortEnd(i32),
    /// A fixed horizon: the cohort start plus days.
    CohortStart(i32),
}

/// The time at risk of a survival analysis (as `qiao analyze survival --tar`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SurvivalTar {
    /// Days after the cohort start where time zero is.
    pub start_offset: i32,
    /// Where it ends.
    pub end: SurvivalTarEnd,
}

/// Time to event across the network: Kaplan–Meier of the job's cohort (the target) and,
/// optionally, a comparator to the first outcome within the time at risk. Each site releases
/// per arm its risk-set table on a grid fixed by the spec (so the shape of what is released
/// never depends on data): the persons followed, and per grid interval the events and the
/// censorings; follow-up beyond the horizon is censored at the horizon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SurvivalSpec {
    /// The outcome's OHDSI Circe cohort expression.
    pub outcome: serde_json::Value,
    /// The comparator's OHDSI Circe cohort expression, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparator: Option<serde_json::Value>,
    /// The time at risk (default: cohort start to the observation period end).
    #[serde(default)]
    pub tar: SurvivalTar,
    /// Days per grid interval (time t is put at ⌈t / grid⌉·grid).
    #[serde(default = "SurvivalSpec::default_grid_days")]
    pub grid_days: u32,
    /// Days of follow-up released; later follow-up is censored at the horizon.
    #[serde(default = "SurvivalSpec::default_horizon_days")]
    pub horizon_days: u32,
}

impl SurvivalSpec {
    /// Default grid: 30 days.
    pub const DEFAULT_GRID_DAYS: u32 = 30;
    /// Default horizon: 3,650 days (ten years).
    pub const DEFAULT_HORIZON_DAYS: u32 = 3650;

    fn default_grid_days() -> u32 {
        Self::DEFAULT_GRID_DAYS
    }
    fn default_horizon_days() -> u32 {
        Self::DEFAULT_HORIZON_DAYS
    }

    /// Grid cells per arm: time 0 and ⌈horizon / grid⌉ intervals.
    pub fn cells(&self) -> usize {
        self.horizon_days.div_ceil(self.grid_days.max(1)) as usize + 1
    }

    /// The spec's own problems (a JSON path and what is wrong).
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
        if self.grid_days == 0 || self.grid_days > i32::MAX as u32 {
            return Err((
                "$.grid_days".into(),
                format!("must be a positive number of days, not {}", self.grid_days),
            ));
        }
        if self.horizon_days == 0
            || self.horizon_days > i32::MAX as u32
            || self.cells() > MAX_GRID_CELLS
        {
            return Err((
                "$.horizon_days".into(),
                format!(
                    "must be positive and at most {} grid intervals of {} days",
                    MAX_GRID_CELLS - 1,
                    self.grid_days
                ),
            ));
        }
        Ok(())
    }
}

/// One arm's risk-set table on the grid, released: persons followed, and per grid point k
/// (time k·grid, ending the interval ((k−1)·grid, k·grid]) events and censorings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RiskSetResult {
    /// Persons followed (at risk at time 0).
    pub entered: Released,
    /// Events per grid point.
    pub events: Vec<Released>,
    /// Censorings per grid point.
    pub censored: Vec<Released>,
}

/// Answer to a survival analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SurvivalResult {
    /// The target's table.
    pub target: RiskSetResult,
    /// The comparator's table, if the spec has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparator: Option<RiskSetResult>,
    /// The disclosure control applied.
    pub disclosure: DisclosureSummary,
}
