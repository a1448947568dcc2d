//! A CohortIncidence 4.1.1 design (`CohortIncidence.fromJson`'s format), parsed with JSON-path
//! errors and checked.

use serde::{Deserialize, Serialize};

/// A CohortIncidence design.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Design {
    #[serde(default)]
    pub target_defs: Vec<TargetDef>,
    #[serde(default)]
    pub outcome_defs: Vec<OutcomeDef>,
    #[serde(default)]
    pub time_at_risk_defs: Vec<TimeAtRisk>,
    #[serde(default)]
    pub analysis_list: Vec<AnalysisSpec>,
    #[serde(default)]
    pub strata_settings: Option<StrataSettings>,
    #[serde(default)]
    pub subgroups: Vec<SubgroupDef>,
    #[serde(default)]
    pub study_window: Option<StudyWindow>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct TargetDef {
    /// The target cohort's definition id.
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeDef {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    /// The outcome cohort's definition id.
    pub cohort_id: i64,
    /// Days after an outcome's end during which time is not at risk.
    #[serde(default)]
    pub clean_window: i32,
    /// A cohort whose periods are removed from the time at risk.
    #[serde(default)]
    pub exclude_cohort_id: Option<i64>,
}

/// Which cohort date a time-at-risk bound is anchored at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DateField {
    Start,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Anchor {
    pub date_field: DateField,
    #[serde(default)]
    pub offset: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub struct TimeAtRisk {
    pub id: i64,
    pub start: Anchor,
    pub end: Anchor,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct AnalysisSpec {
    pub targets: Vec<i64>,
    pub outcomes: Vec<i64>,
    pub tars: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StrataSettings {
    #[serde(default)]
    pub by_age: bool,
    #[serde(default)]
    pub by_gender: bool,
    #[serde(default)]
    pub by_year: bool,
    #[serde(default)]
    pub age_breaks: Vec<i32>,
    #[serde(default)]
    pub age_break_list: Vec<Vec<i32>>,
}

/// A subgroup: `{"CohortSubgroup": {"id", "name", "cohort": {"id", "name"}}}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SubgroupDef {
    #[serde(rename = "CohortSubgroup")]
    pub cohort_subgroup: CohortSubgroup,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct CohortSubgroup {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    pub cohort: CohortRef,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct CohortRef {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
}

/// Dates as `YYYY-MM-DD` (CohortIncidence's `startDate`/`endDate`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StudyWindow {
    #[serde(default)]
    pub start_date: Option<String>,
    #[serde(default)]
    pub end_date: Option<String>,
}

/// A design that cannot be run, with the JSON path at fault.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {path}: {message}")]
pub struct DesignError {
    pub source_name: String,
    pub path: String,
    pub message: String,
}

/// An age group (`age_group_def`): age ≥ min and < max (None: unbounded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeGroup {
    pub id: i64,
    pub name: String,
    pub min: Option<i32>,
    pub max: Option<i32>,
}

impl Design {
    /// Parses a design (`source_name` names it in errors) and checks it.
    pub fn parse(source_name: &str, json: &str) -> Result<Design, DesignError> {
        let de = &mut serde_json::Deserializer::from_str(json);
        let design: Design = serde_path_to_error::deserialize(de).map_err(|e| DesignError {
            source_name: source_name.to_string(),
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
        design.check(source_name)?;
        Ok(design)
    }

    /// Every analysis's ids refer to defined targets, outcomes and TARs; the study window's dates parse.
    pub fn check(&self, source_name: &str) -> Result<(), DesignError> {
        let err = |path: String, message: String| DesignError {
            source_name: source_name.to_string(),
            path,
            message,
        };
        for (i, a) in self.analysis_list.iter().enumerate() {
            for (j, t) in a.targets.iter().enumerate() {
                if !self.target_defs.iter().any(|d| d.id == *t) {
                    return Err(err(
                        format!("analysisList[{i}].targets[{j}]"),
                        format!("target {t} is not in targetDefs"),
                    ));
                }
            }
            for (j, o) in a.outcomes.iter().enumerate() {
                if !self.outcome_defs.iter().any(|d| d.id == *o) {
                    return Err(err(
                        format!("analysisList[{i}].outcomes[{j}]"),
                        format!("outcome {o} is not in outcomeDefs"),
                    ));
                }
            }
            for (j, t) in a.tars.iter().enumerate() {
                if !self.time_at_risk_defs.iter().any(|d| d.id == *t) {
                    return Err(err(
                        format!("analysisList[{i}].tars[{j}]"),
                        format!("time at risk {t} is not in timeAtRiskDefs"),
                    ));
                }
            }
        }
        if let Some(w) = &self.study_window {
            for (field, v) in [("startDate", &w.start_date), ("endDate", &w.end_date)] {
                if let Some(s) = v {
                    if qiao_cdm::date::parse(s.as_bytes()).is_none() {
                        return Err(err(
                            format!("studyWindow.{field}"),
                            format!("{s:?} is not a date (YYYY-MM-DD)"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The study window as days (start, end).
    pub fn window_days(&self) -> (Option<i32>, Option<i32>) {
        let day = |s: &Option<String>| s.as_ref().and_then(|s| qiao_cdm::date::parse(s.as_bytes()));
        match &self.study_window {
            Some(w) => (day(&w.start_date), day(&w.end_date)),
            None => (None, None),
        }
    }

    /// CohortIncidence's `age_group_def`: the groups of `ageBreaks` (`<b0`, `b0 - b1-1`, …,
    /// `>=bn`), then those of each list of `ageBreakList`, numbered from 1.
    pub fn age_groups(&self) -> Vec<AgeGroup> {
        let Some(s) = &self.strata_settings else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let lists = std::iter::once(&s.age_breaks)
            .filter(|b| !b.is_empty())
            .chain(s.age_break_list.iter().filter(|b| !b.is_empty()));
        for breaks in lists {
            let mut push = |name: String, min, max| {
                out.push(AgeGroup {
                    id: out.len() as i64 + 1,
                    name,
                    min,
                    max,
                })
            };
            push(format!("<{}", breaks[0]), None, Some(breaks[0]));
            for w in breaks.windows(2) {
                push(format!("{} - {}", w[0], w[1] - 1), Some(w[0]), Some(w[1]));
            }
            let last = breaks[breaks.len() - 1];
            push(format!(">={last}"), Some(last), None);
        }
        out
    }
}
