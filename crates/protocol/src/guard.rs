//! The aggregate-only guard: what stops patient-level data from leaving a site.
//!
//! Three layers, each sufficient against a different mistake:
//!
//! 1. **Types.** Result types (see [`crate::message`]) have no field that can hold a list of
//!    ids, a date, a map or free text. This stops honest code from doing it by accident.
//! 2. **[`check_result_json`]** walks the *serialized* result and accepts only keys from
//!    [`ALLOWED_KEYS`], string values only under [`STRING_KEYS`], and arrays only of objects.
//!    This still holds if someone later adds a field such as `person_ids: Vec<u64>` to a result
//!    type: the unknown key, and the array of raw integers, are rejected before anything is
//!    signed. Extending the allow-list is a deliberate, reviewable change (the crate's tests
//!    keep an independent copy of it).
//! 3. **[`assert_aggregate_only`]** checks values: bounded numbers of rules and cells, no
//!    duplicate cells, plausible bands and years, every threshold equal to the declared minimum
//!    cell count, no exact count below it, obfuscated/DP numbers only when the summary says
//!    that mechanism was on, finite non-negative parameters. [`check_against_job`] further ties
//!    the result to its job: same job id, the payload type the query asked for, and rule names
//!    exactly those of the job's own definition (so the only strings that are not enum tags are
//!    strings the hub sent).
//!
//! [`crate::envelope::Signer::seal_result`] runs [`assert_aggregate_only`] before signing, and
//! the hub's [`crate::envelope::ReplayGuard::open`] runs it again on receipt, so a result that
//! fails it is neither sent nor accepted.

use std::collections::HashSet;

use serde_json::Value;

use crate::message::analyses::{
    CharacterizationResult, CharacterizationSpec, IncidenceResult, IncidenceSpec,
};
use crate::message::analyses::{RiskSetResult, SurvivalResult, SurvivalSpec};
use crate::message::{
    AgeBand, DisclosureSummary, Job, JobResult, Outcome, Payload, QueryType, Released,
};

/// Most inclusion rules in a cohort-count result.
pub const MAX_RULES: usize = 256;
/// Most cells in a demographics result.
pub const MAX_CELLS: usize = 65_536;
/// Highest age accepted in an age band.
pub const MAX_AGE: u8 = 150;
/// Earliest index year accepted.
pub const MIN_INDEX_YEAR: u16 = 1800;
/// Latest index year accepted.
pub const MAX_INDEX_YEAR: u16 = 2300;
/// Longest string value accepted anywhere in a serialized result, in bytes.
pub const MAX_STRING_BYTES: usize = 1024;

/// Every object key that may appear in a serialized [`JobResult`].
pub const ALLOWED_KEYS: &[&str] = &[
    // JobResult, Outcome
    "job_id",
    "site_id",
    "outcome",
    "status",
    "payload",
    "reason",
    "error",
    // Payload
    "type",
    // CohortCountResult, RuleResult
    "entries",
    "subjects",
    "initial",
    "rules",
    "name",
    "persons",
    "gain",
    "final_persons",
    // DemographicsResult, Cell, AgeBand
    "total",
    "cells",
    "age_band",
    "min_age",
    "max_age",
    "gender",
    "index_year",
    "count",
    // CharacterizationResult, PopulationResult, CovariateResult, ContinuousResult, Moments
    "target",
    "comparator",
    "covariates",
    "covariate_id",
    "analysis_id",
    "continuous",
    "sum",
    "sum_squares",
    "histogram",
    // IncidenceResult, IncidenceRow
    "rows",
    "tar_id",
    "age_group_id",
    "gender_concept_id",
    "start_year",
    "persons_at_risk_pe",
    "persons_at_risk",
    "person_days_pe",
    "person_days",
    "person_outcomes_pe",
    "person_outcomes",
    "outcomes_pe",
    "outcomes",
    // SurvivalResult, RiskSetResult
    "entered",
    "events",
    "censored",
    // RegressionSums (persons and events above), RealSum (value below)
    "loglik",
    "gradient",
    "hessian",
    // RecruitmentResult, RecruitmentMonth: released counts per month (issue 17)
    "months",
    "year",
    "month",
    "screened",
    "enrolled",
    "excluded",
    // Released
    "kind",
    "value",
    "threshold",
    "basis",
    "max_error",
    // DisclosureSummary
    "disclosure",
    "min_cell_count",
    "obfuscation",
    "bin",
    "sigma",
    "clamp",
    "secondary_suppression",
    "dp",
    "rho_spent",
    "entries_bound",
    "remaining_rho",
    "user_remaining_rho",
    "organization_remaining_rho",
];

/// The keys whose values may be strings: identifiers, enum tags and rule names.
pub const STRING_KEYS: &[&str] = &[
    "job_id", "site_id", "status", "reason", "error", "type", "name", "gender", "kind", "basis",
];

/// A result that could carry more than aggregates, or is inconsistent with its job.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AggregateViolation {
    /// A key outside [`ALLOWED_KEYS`].
    #[error("{path}: key {key:?} is not allowed in a result")]
    UnexpectedKey {
        /// JSON path of the object.
        path: String,
        /// The key.
        key: String,
    },
    /// An array with an element that is not an object (e.g. a list of ids).
    #[error("{path}: arrays in a result may hold only records, not raw values")]
    RawArray {
        /// JSON path of the array.
        path: String,
    },
    /// A string where none is allowed, or one too long.
    #[error("{path}: a string is not allowed here (or is longer than {MAX_STRING_BYTES} bytes)")]
    UnexpectedString {
        /// JSON path of the string.
        path: String,
    },
    /// The result could not be serialized (e.g. a non-finite float).
    #[error("the result cannot be serialized: {0}")]
    Serialize(String),
    /// Too many rules or cells.
    #[error("{what}: {found} entries, at most {max} allowed")]
    TooMany {
        /// Rules or cells.
        what: &'static str,
        /// How many.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// Two cells with the same coordinates.
    #[error("cells[{index}]: a cell with the same age band, gender and index year came before")]
    DuplicateCell {
        /// Index of the second cell.
        index: usize,
    },
    /// An age band with `min_age > max_age` or ages above [`MAX_AGE`].
    #[error("cells[{index}]: invalid age band {band:?}")]
    InvalidAgeBand {
        /// Index of the cell.
        index: usize,
        /// The band.
        band: AgeBand,
    },
    /// An index year outside [`MIN_INDEX_YEAR`]..=[`MAX_INDEX_YEAR`].
    #[error("cells[{index}]: index year {year} out of range")]
    IndexYearOutOfRange {
        /// Index of the cell.
        index: usize,
        /// The year.
        year: u16,
    },
    /// A released number whose threshold differs from the declared minimum cell count.
    #[error("{path}: threshold {found} differs from the declared minimum cell count {declared}")]
    ThresholdMismatch {
        /// Which number.
        path: String,
        /// Its threshold.
        found: u64,
        /// `disclosure.min_cell_count`.
        declared: u64,
    },
    /// An exact count below the declared minimum cell count.
    #[error("{path}: exact count {value} is below the minimum cell count {threshold}")]
    ExactBelowThreshold {
        /// Which number.
        path: String,
        /// The count.
        value: u64,
        /// `disclosure.min_cell_count`.
        threshold: u64,
    },
    /// An obfuscated or DP number although the summary says that mechanism was off.
    #[error("{path}: {mechanism} number but the disclosure summary does not declare {mechanism}")]
    UndeclaredMechanism {
        /// Which number.
        path: String,
        /// "obfuscation" or "differential privacy".
        mechanism: &'static str,
    },
    /// A disclosure parameter that is not a finite, non-negative number (or a DP ε that is not
    /// positive, or a δ not below 1).
    #[error("{path}: invalid parameter {value}")]
    InvalidParameter {
        /// Which parameter.
        path: String,
        /// Its value.
        value: f64,
    },
    /// The result is for another job.
    #[error("result is for job {found}, expected {expected}")]
    JobMismatch {
        /// The job sent.
        expected: String,
        /// The job answered.
        found: String,
    },
    /// The payload does not answer the query type.
    #[error("payload is {found}, the job asked for {expected}")]
    PayloadMismatch {
        /// The query's payload type.
        expected: &'static str,
        /// The payload's type.
        found: &'static str,
    },
    /// Rule names differ from the inclusion rules of the job's definition.
    #[error("rules[{index}]: {detail}")]
    RuleMismatch {
        /// Index of the first differing rule.
        index: usize,
        /// What differs.
        detail: String,
    },
    /// A characterization or incidence result inconsistent with the job's spec.
    #[error("{path}: {detail}")]
    AnalysisMismatch {
        /// JSON path of the offending record.
        path: String,
        /// What differs.
        detail: String,
    },
    /// A breakdown cell inconsistent with the query's parameters.
    #[error("cells[{index}]: {detail}")]
    CellMismatch {
        /// Index of the cell.
        index: usize,
        /// What differs.
        detail: String,
    },
}

/// Checks that `result` can carry only aggregates (layers 2 and 3 of the module docs).
/// Sites call it (through [`crate::envelope::Signer::seal_result`]) before anything is sent.
pub fn assert_aggregate_only(result: &JobResult) -> Result<(), AggregateViolation> {
    // Values first: a non-finite float would not serialize faithfully.
    if let Outcome::Done { payload } = &result.outcome {
        check_payload(payload)?;
    }
    let text =
        serde_json::to_vec(result).map_err(|e| AggregateViolation::Serialize(e.to_string()))?;
    check_result_text(&text)
}

/// [`check_result_json`] on a result's JSON text: checked as it is read; only a text that breaks
/// a rule is read into a tree, for the tree's walk to say which rule and where.
pub fn check_result_text(text: &[u8]) -> Result<(), AggregateViolation> {
    if json_text_passes(text) {
        return Ok(());
    }
    let value: Value =
        serde_json::from_slice(text).map_err(|e| AggregateViolation::Serialize(e.to_string()))?;
    check_result_json(&value)
}

/// Whether a result's JSON text keeps the rules of [`check_result_json`], checked while it is
/// read, without building its tree (a result can hold a hundred thousand numbers). False on
/// any breach (or text that is not JSON); [`check_result_json`] then says which and where.
fn json_text_passes(text: &[u8]) -> bool {
    use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    /// A value under `key`; an array's item must be an object.
    struct Node {
        key: Option<&'static str>,
        item: bool,
    }
    /// An object's key: one of [`ALLOWED_KEYS`].
    struct Key;

    impl<'de> DeserializeSeed<'de> for Node {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl Node {
        fn scalar<E: Error>(&self) -> Result<(), E> {
            if self.item {
                Err(E::custom("an array item that is not an object"))
            } else {
                Ok(())
            }
        }
    }
    impl<'de> Visitor<'de> for Node {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an aggregate-only result")
        }
        fn visit_bool<E: Error>(self, _: bool) -> Result<(), E> {
            self.scalar()
        }
        fn visit_i64<E: Error>(self, _: i64) -> Result<(), E> {
            self.scalar()
        }
        fn visit_u64<E: Error>(self, _: u64) -> Result<(), E> {
            self.scalar()
        }
        fn visit_f64<E: Error>(self, _: f64) -> Result<(), E> {
            self.scalar()
        }
        fn visit_unit<E: Error>(self) -> Result<(), E> {
            self.scalar()
        }
        fn visit_str<E: Error>(self, s: &str) -> Result<(), E> {
            self.scalar()?;
            if self.key.is_some_and(|k| STRING_KEYS.contains(&k)) && s.len() <= MAX_STRING_BYTES {
                Ok(())
            } else {
                Err(E::custom("a string where none may be"))
            }
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            self.scalar()?;
            let key = self.key;
            while seq.next_element_seed(Node { key, item: true })?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key_seed(Key)? {
                map.next_value_seed(Node {
                    key: Some(key),
                    item: false,
                })?;
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for Key {
        type Value = &'static str;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'static str, D::Error> {
            d.deserialize_str(self)
        }
    }
    impl<'de> Visitor<'de> for Key {
        type Value = &'static str;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an allowed key")
        }
        fn visit_str<E: Error>(self, s: &str) -> Result<&'static str, E> {
            allowed_key(s).ok_or_else(|| E::custom("a key that is not allowed"))
        }
    }

    let mut de = serde_json::Deserializer::from_slice(text);
    Node {
        key: None,
        item: false,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .is_ok()
}

/// [`assert_aggregate_only`] plus the ties to the job: same job id, payload of the requested
/// type, rule names exactly the definition's `InclusionRules[*].name` in order, and breakdown
/// cells of the requested band width and split.
pub fn check_against_job(job: &Job, result: &JobResult) -> Result<(), AggregateViolation> {
    assert_aggregate_only(result)?;
    if result.job_id != job.job_id {
        return Err(AggregateViolation::JobMismatch {
            expected: job.job_id.to_string(),
            found: result.job_id.to_string(),
        });
    }
    let Outcome::Done { payload } = &result.outcome else {
        return Ok(());
    };
    let wrong = || AggregateViolation::PayloadMismatch {
        expected: job.query.payload_type(),
        found: payload.payload_type(),
    };
    if payload.payload_type() != job.query.payload_type() {
        return Err(wrong());
    }
    // One arm per payload (a new payload type does not compile until it is checked here); the
    // job's query is of the same type (compared above), the `else` arms never taken.
    match payload {
        Payload::CohortCount(r) => {
            let expected = inclusion_rule_names(&job.definition);
            for (index, rule) in r.rules.iter().enumerate() {
                match expected.get(index) {
                    Some(name) if name == rule.name.as_str() => {}
                    Some(name) => {
                        return Err(AggregateViolation::RuleMismatch {
                            index,
                            detail: format!(
                                "name {:?} differs from the definition's {:?}",
                                rule.name.as_str(),
                                name
                            ),
                        })
                    }
                    None => {
                        return Err(AggregateViolation::RuleMismatch {
                            index,
                            detail: format!(
                                "the definition has only {} inclusion rules",
                                expected.len()
                            ),
                        })
                    }
                }
            }
            if r.rules.len() != expected.len() {
                return Err(AggregateViolation::RuleMismatch {
                    index: r.rules.len(),
                    detail: format!(
                        "the definition has {} inclusion rules, the result {}",
                        expected.len(),
                        r.rules.len()
                    ),
                });
            }
        }
        Payload::Demographics(r) => {
            let QueryType::Demographics {
                age_band_years,
                by_index_year,
            } = &job.query
            else {
                return Err(wrong());
            };
            let width = u16::from(*age_band_years);
            for (index, cell) in r.cells.iter().enumerate() {
                if cell.index_year.is_some() && !by_index_year {
                    return Err(AggregateViolation::CellMismatch {
                        index,
                        detail: "split by index year, which the job did not ask for".into(),
                    });
                }
                if let Some(band) = cell.age_band {
                    let min = u16::from(band.min_age);
                    let aligned = width > 0 && min % width == 0;
                    let right_width = match band.max_age {
                        Some(max) => u16::from(max) + 1 == min + width,
                        None => true,
                    };
                    if !aligned || !right_width {
                        return Err(AggregateViolation::CellMismatch {
                            index,
                            detail: format!(
                                "age band {band:?} is not a {age_band_years}-year band"
                            ),
                        });
                    }
                }
            }
        }
        Payload::Characterization(r) => {
            let QueryType::Characterization(spec) = &job.query else {
                return Err(wrong());
            };
            check_characterization(r, spec)?;
        }
        Payload::Incidence(r) => {
            let QueryType::Incidence(spec) = &job.query else {
                return Err(wrong());
            };
            check_incidence(r, spec)?;
        }
        Payload::Survival(r) => {
            let QueryType::Survival(spec) = &job.query else {
                return Err(wrong());
            };
            check_survival(r, spec)?;
        }
        Payload::RegressionRound(r) => {
            let QueryType::RegressionRound(round) = &job.query else {
                return Err(wrong());
            };
            crate::message::regression::check_sums(r, round)
                .map_err(|(path, detail)| mismatch(path, detail))?;
        }
        Payload::Recruitment(r) => {
            let QueryType::Recruitment(spec) = &job.query else {
                return Err(wrong());
            };
            crate::message::recruitment::check_recruitment(r, spec)
                .map_err(|(path, detail)| mismatch(path, detail))?;
        }
    }
    Ok(())
}

/// The inclusion rule names of a Circe definition (`InclusionRules[*].name`, a missing or null
/// name read as empty), in order.
pub fn inclusion_rule_names(definition: &Value) -> Vec<String> {
    definition
        .get("InclusionRules")
        .and_then(Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .map(|r| {
                    r.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Walks a serialized result: keys only from [`ALLOWED_KEYS`], strings only under
/// [`STRING_KEYS`] (and at most [`MAX_STRING_BYTES`]), arrays only of objects.
pub fn check_result_json(value: &Value) -> Result<(), AggregateViolation> {
    walk(value, &mut Vec::new(), None)
}

/// A step of a JSON path: an object's key or an array's index.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The JSON path of `steps` (`$.rows[3].name`), written only for an error.
fn path_of(steps: &[Step<'_>]) -> String {
    let mut path = String::from("$");
    for s in steps {
        match s {
            Step::Key(k) => {
                path.push('.');
                path.push_str(k);
            }
            Step::Index(i) => path.push_str(&format!("[{i}]")),
        }
    }
    path
}

/// `key` as it is in [`ALLOWED_KEYS`], if it is (a set built once: a result has a key per
/// number).
fn allowed_key(key: &str) -> Option<&'static str> {
    static SET: std::sync::OnceLock<HashSet<&'static str>> = std::sync::OnceLock::new();
    SET.get_or_init(|| ALLOWED_KEYS.iter().copied().collect())
        .get(key)
        .copied()
}

fn allowed(key: &str) -> bool {
    allowed_key(key).is_some()
}

fn walk<'v>(
    value: &'v Value,
    steps: &mut Vec<Step<'v>>,
    key: Option<&str>,
) -> Result<(), AggregateViolation> {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
        Value::String(s) => {
            if key.is_some_and(|k| STRING_KEYS.contains(&k)) && s.len() <= MAX_STRING_BYTES {
                Ok(())
            } else {
                Err(AggregateViolation::UnexpectedString {
                    path: path_of(steps),
                })
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                steps.push(Step::Index(i));
                if !item.is_object() {
                    return Err(AggregateViolation::RawArray {
                        path: path_of(steps),
                    });
                }
                walk(item, steps, key)?;
                steps.pop();
            }
            Ok(())
        }
        Value::Object(map) => {
            for (k, v) in map {
                if !allowed(k) {
                    return Err(AggregateViolation::UnexpectedKey {
                        path: path_of(steps),
                        key: k.clone(),
                    });
                }
                steps.push(Step::Key(k));
                walk(v, steps, Some(k))?;
                steps.pop();
            }
            Ok(())
        }
    }
}

fn check_payload(payload: &Payload) -> Result<(), AggregateViolation> {
    let disclosure = payload.disclosure();
    check_summary(disclosure)?;
    match payload {
        Payload::CohortCount(r) => {
            if r.rules.len() > MAX_RULES {
                return Err(AggregateViolation::TooMany {
                    what: "rules",
                    found: r.rules.len(),
                    max: MAX_RULES,
                });
            }
            check_released(&r.entries, "$.entries", disclosure)?;
            check_released(&r.subjects, "$.subjects", disclosure)?;
            if let Some(initial) = &r.initial {
                check_released(initial, "$.initial", disclosure)?;
            }
            for (i, rule) in r.rules.iter().enumerate() {
                check_released(&rule.persons, &format!("$.rules[{i}].persons"), disclosure)?;
                check_released(&rule.gain, &format!("$.rules[{i}].gain"), disclosure)?;
            }
            check_released(&r.final_persons, "$.final_persons", disclosure)?;
        }
        Payload::Demographics(r) => {
            if r.cells.len() > MAX_CELLS {
                return Err(AggregateViolation::TooMany {
                    what: "cells",
                    found: r.cells.len(),
                    max: MAX_CELLS,
                });
            }
            check_released(&r.total, "$.total", disclosure)?;
            let mut seen = HashSet::with_capacity(r.cells.len());
            for (index, cell) in r.cells.iter().enumerate() {
                if let Some(band) = cell.age_band {
                    let bad_max = band
                        .max_age
                        .is_some_and(|m| m < band.min_age || m > MAX_AGE);
                    if band.min_age > MAX_AGE || bad_max {
                        return Err(AggregateViolation::InvalidAgeBand { index, band });
                    }
                }
                if let Some(year) = cell.index_year {
                    if !(MIN_INDEX_YEAR..=MAX_INDEX_YEAR).contains(&year) {
                        return Err(AggregateViolation::IndexYearOutOfRange { index, year });
                    }
                }
                if !seen.insert(cell.key()) {
                    return Err(AggregateViolation::DuplicateCell { index });
                }
                check_released(&cell.count, &format!("$.cells[{index}].count"), disclosure)?;
            }
        }
        Payload::Characterization(r) => {
            let n = r.covariates.len() + r.continuous.len();
            if n > crate::message::analyses::MAX_COVARIATES {
                return Err(AggregateViolation::TooMany {
                    what: "covariates",
                    found: n,
                    max: crate::message::analyses::MAX_COVARIATES,
                });
            }
        }
        Payload::RegressionRound(r) => {
            let p2 = r.hessian.len();
            if r.gradient.len() * r.gradient.len() != p2 {
                return Err(AggregateViolation::AnalysisMismatch {
                    path: "$.hessian".into(),
                    detail: "not the square of the gradient's length".into(),
                });
            }
        }
        Payload::Incidence(r) => {
            if r.rows.len() > crate::message::analyses::MAX_INCIDENCE_ROWS {
                return Err(AggregateViolation::TooMany {
                    what: "rows",
                    found: r.rows.len(),
                    max: crate::message::analyses::MAX_INCIDENCE_ROWS,
                });
            }
        }
        Payload::Recruitment(r) => {
            if r.months.len() > crate::message::recruitment::MAX_RECRUITMENT_MONTHS {
                return Err(AggregateViolation::TooMany {
                    what: "months",
                    found: r.months.len(),
                    max: crate::message::recruitment::MAX_RECRUITMENT_MONTHS,
                });
            }
        }
        Payload::Survival(r) => {
            for arm in std::iter::once(&r.target).chain(&r.comparator) {
                let n = arm.events.len().max(arm.censored.len());
                if n > crate::message::analyses::MAX_GRID_CELLS {
                    return Err(AggregateViolation::TooMany {
                        what: "grid cells",
                        found: n,
                        max: crate::message::analyses::MAX_GRID_CELLS,
                    });
                }
            }
        }
    }
    each_analysis_value(payload, &mut |path, r| {
        check_released_at(r, disclosure, path)
    })
}

/// Writes a JSON path when asked.
type PathOf<'a> = dyn Fn() -> String + 'a;

/// Calls `f` with every released number of an analysis result and a function writing its JSON
/// path (a result can hold a hundred thousand numbers: a path is written only if asked for).
fn each_analysis_value(
    payload: &Payload,
    f: &mut dyn FnMut(&PathOf, &Released) -> Result<(), AggregateViolation>,
) -> Result<(), AggregateViolation> {
    match payload {
        Payload::Characterization(r) => {
            for (side, p) in [
                ("target", Some(&r.target)),
                ("comparator", r.comparator.as_ref()),
            ] {
                if let Some(p) = p {
                    f(&|| format!("$.{side}.entries"), &p.entries)?;
                    f(&|| format!("$.{side}.subjects"), &p.subjects)?;
                }
            }
            for (i, c) in r.covariates.iter().enumerate() {
                f(&|| format!("$.covariates[{i}].target"), &c.target)?;
                if let Some(x) = &c.comparator {
                    f(&|| format!("$.covariates[{i}].comparator"), x)?;
                }
            }
            for (i, c) in r.continuous.iter().enumerate() {
                for (side, m) in [("target", &c.target), ("comparator", &c.comparator)] {
                    if let Some(m) = m {
                        let p = || format!("$.continuous[{i}].{side}");
                        f(&|| format!("{}.count", p()), &m.count)?;
                        f(&|| format!("{}.sum", p()), &m.sum)?;
                        f(&|| format!("{}.sum_squares", p()), &m.sum_squares)?;
                        for (k, x) in m.histogram.iter().enumerate() {
                            f(&|| format!("{}.histogram[{k}]", p()), x)?;
                        }
                    }
                }
            }
        }
        Payload::Incidence(r) => {
            for (i, row) in r.rows.iter().enumerate() {
                for (name, x) in row.values() {
                    f(&|| format!("$.rows[{i}].{name}"), x)?;
                }
            }
        }
        Payload::Survival(r) => {
            for (side, arm) in [
                ("target", Some(&r.target)),
                ("comparator", r.comparator.as_ref()),
            ] {
                let Some(arm) = arm else { continue };
                f(&|| format!("$.{side}.entered"), &arm.entered)?;
                for (i, x) in arm.events.iter().enumerate() {
                    f(&|| format!("$.{side}.events[{i}]"), x)?;
                }
                for (i, x) in arm.censored.iter().enumerate() {
                    f(&|| format!("$.{side}.censored[{i}]"), x)?;
                }
            }
        }
        Payload::RegressionRound(r) => {
            f(&|| "$.persons".into(), &r.persons)?;
            f(&|| "$.events".into(), &r.events)?;
        }
        Payload::Recruitment(r) => {
            for (i, m) in r.months.iter().enumerate() {
                f(&|| format!("$.months[{i}].screened"), &m.screened)?;
                f(&|| format!("$.months[{i}].enrolled"), &m.enrolled)?;
                f(&|| format!("$.months[{i}].excluded"), &m.excluded)?;
            }
        }
        Payload::CohortCount(_) | Payload::Demographics(_) => {}
    }
    Ok(())
}

fn check_summary(s: &DisclosureSummary) -> Result<(), AggregateViolation> {
    if let Some(o) = &s.obfuscation {
        non_negative("$.disclosure.obfuscation.sigma", o.sigma)?;
        non_negative("$.disclosure.obfuscation.clamp", o.clamp)?;
    }
    if let Some(dp) = &s.dp {
        non_negative("$.disclosure.dp.rho_spent", dp.rho_spent)?;
        positive("$.disclosure.dp.sigma", dp.sigma)?;
        non_negative("$.disclosure.dp.remaining_rho", dp.remaining_rho)?;
        if let Some(r) = dp.user_remaining_rho {
            non_negative("$.disclosure.dp.user_remaining_rho", r)?;
        }
        if let Some(r) = dp.organization_remaining_rho {
            non_negative("$.disclosure.dp.organization_remaining_rho", r)?;
        }
    }
    Ok(())
}

/// [`check_released`] with the path written only for an error (a result can hold thousands).
fn check_released_at(
    r: &Released,
    summary: &DisclosureSummary,
    path: &PathOf,
) -> Result<(), AggregateViolation> {
    check_released(r, "", summary).or_else(|_| check_released(r, &path(), summary))
}

fn check_released(
    r: &Released,
    path: &str,
    summary: &DisclosureSummary,
) -> Result<(), AggregateViolation> {
    let declared = summary.min_cell_count;
    let same_threshold = |found: u64| {
        if found == declared {
            Ok(())
        } else {
            Err(AggregateViolation::ThresholdMismatch {
                path: path.to_owned(),
                found,
                declared,
            })
        }
    };
    match *r {
        Released::Exact { value } => {
            if value < declared {
                return Err(AggregateViolation::ExactBelowThreshold {
                    path: path.to_owned(),
                    value,
                    threshold: declared,
                });
            }
        }
        Released::BelowThreshold { threshold } | Released::Suppressed { threshold, .. } => {
            same_threshold(threshold)?;
        }
        Released::Obfuscated { threshold, .. } => {
            same_threshold(threshold)?;
            if summary.obfuscation.is_none() {
                return Err(AggregateViolation::UndeclaredMechanism {
                    path: path.to_owned(),
                    mechanism: "obfuscation",
                });
            }
        }
        Released::Dp {
            sigma, threshold, ..
        } => {
            same_threshold(threshold)?;
            positive(&format!("{path}.sigma"), sigma)?;
            if summary.dp.is_none() {
                return Err(AggregateViolation::UndeclaredMechanism {
                    path: path.to_owned(),
                    mechanism: "differential privacy",
                });
            }
        }
    }
    Ok(())
}

fn non_negative(path: &str, value: f64) -> Result<(), AggregateViolation> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(AggregateViolation::InvalidParameter {
            path: path.to_owned(),
            value,
        })
    }
}

fn positive(path: &str, value: f64) -> Result<(), AggregateViolation> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(AggregateViolation::InvalidParameter {
            path: path.to_owned(),
            value,
        })
    }
}

fn mismatch(path: String, detail: impl Into<String>) -> AggregateViolation {
    AggregateViolation::AnalysisMismatch {
        path,
        detail: detail.into(),
    }
}

/// A characterization result against its spec: a comparator exactly when asked for, each
/// covariate once, its analysis id the covariate id's last three digits and one the spec asked
/// for, and (when the spec names covariates) only those.
pub(crate) fn check_characterization(
    r: &CharacterizationResult,
    spec: &CharacterizationSpec,
) -> Result<(), AggregateViolation> {
    if r.comparator.is_some() != spec.comparator.is_some() {
        return Err(mismatch(
            "$.comparator".into(),
            "present exactly when the job has a comparator",
        ));
    }
    let named: HashSet<i64> = spec.covariate_ids.iter().copied().collect();
    let mut seen = HashSet::new();
    let ids = r
        .covariates
        .iter()
        .map(|c| {
            (
                c.covariate_id,
                c.analysis_id,
                c.comparator.is_some(),
                "covariates",
            )
        })
        .chain(r.continuous.iter().map(|c| {
            (
                c.covariate_id,
                c.analysis_id,
                c.comparator.is_some() || spec.comparator.is_none(),
                "continuous",
            )
        }));
    for (i, (id, analysis, has_comparator, list)) in ids.enumerate() {
        let path = format!("$.{list}[{i}]");
        if id < 0 || id % 1000 != i64::from(analysis) {
            return Err(mismatch(
                path,
                format!("covariate {id} is not of analysis {analysis}"),
            ));
        }
        if !spec.analyses.is_empty() && !spec.analyses.contains(&analysis) {
            return Err(mismatch(
                path,
                format!("analysis {analysis} was not asked for"),
            ));
        }
        if !named.is_empty() && !named.contains(&id) {
            return Err(mismatch(path, format!("covariate {id} was not asked for")));
        }
        if list == "covariates" && has_comparator != spec.comparator.is_some() {
            return Err(mismatch(
                path,
                "comparator value exactly when the job has one",
            ));
        }
        if !seen.insert(id) {
            return Err(mismatch(path, format!("covariate {id} twice")));
        }
    }
    Ok(())
}

/// An incidence result against its spec: times at risk and strata the spec asked for, genders
/// male and female only, years in range, each row once.
pub(crate) fn check_incidence(
    r: &IncidenceResult,
    spec: &IncidenceSpec,
) -> Result<(), AggregateViolation> {
    let mut seen = HashSet::new();
    for (i, row) in r.rows.iter().enumerate() {
        let path = format!("$.rows[{i}]");
        if row.tar_id == 0 || row.tar_id as usize > spec.tars.len() {
            return Err(mismatch(
                path,
                format!("time at risk {} not in the job", row.tar_id),
            ));
        }
        if let Some(a) = row.age_group_id {
            if !spec.strata.by_age || a == 0 || a as usize > spec.age_breaks.len() + 1 {
                return Err(mismatch(path, format!("age group {a} not in the job")));
            }
        }
        if let Some(g) = row.gender_concept_id {
            if !spec.strata.by_gender || !(g == 8507 || g == 8532) {
                return Err(mismatch(path, format!("gender {g} not in the job")));
            }
        }
        if let Some(y) = row.start_year {
            if !spec.strata.by_year || !(MIN_INDEX_YEAR..=MAX_INDEX_YEAR).contains(&y) {
                return Err(mismatch(path, format!("start year {y} not in the job")));
            }
        }
        if !seen.insert(row.key()) {
            return Err(mismatch(path, "the same row twice"));
        }
    }
    Ok(())
}

/// A survival result against its spec: a comparator exactly when asked for, and each arm's
/// table exactly on the spec's grid (one events and one censored value per grid point).
pub(crate) fn check_survival(
    r: &SurvivalResult,
    spec: &SurvivalSpec,
) -> Result<(), AggregateViolation> {
    if r.comparator.is_some() != spec.comparator.is_some() {
        return Err(mismatch(
            "$.comparator".into(),
            "present exactly when the job has a comparator",
        ));
    }
    let cells = spec.cells();
    let arms: [(&str, Option<&RiskSetResult>); 2] = [
        ("target", Some(&r.target)),
        ("comparator", r.comparator.as_ref()),
    ];
    for (side, arm) in arms {
        let Some(arm) = arm else { continue };
        for (list, n) in [
            ("events", arm.events.len()),
            ("censored", arm.censored.len()),
        ] {
            if n != cells {
                return Err(mismatch(
                    format!("$.{side}.{list}"),
                    format!("{n} grid points, the job's grid has {cells}"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod analysis_tests {
    use super::*;
    use crate::message::analyses::*;
    use crate::message::QueryType;

    #[test]
    fn specs_travel_as_tagged_query_types_and_refuse_unknown_fields() {
        let q = QueryType::Characterization(CharacterizationSpec {
            comparator: Some(serde_json::json!({"PrimaryCriteria": {}})),
            analyses: vec![1, 3],
            covariate_ids: vec![8507001],
        });
        let text = serde_json::to_string(&q).unwrap();
        assert!(text.starts_with(r#"{"type":"characterization""#), "{text}");
        assert_eq!(serde_json::from_str::<QueryType>(&text).unwrap(), q);
        let i: QueryType = serde_json::from_str(
            r#"{"type":"incidence","outcome":{},"tars":[{"start":{"date_field":"start"},"end":{"date_field":"end","offset":30}}]}"#,
        )
        .unwrap();
        let QueryType::Incidence(spec) = i else {
            panic!()
        };
        assert_eq!(spec.max_tar_days, IncidenceSpec::DEFAULT_MAX_TAR_DAYS);
        assert_eq!(spec.tars[0].end.offset, 30);
        assert!(serde_json::from_str::<QueryType>(
            r#"{"type":"incidence","outcome":{},"tars":[],"extra":1}"#
        )
        .is_err());
        assert_eq!(spec.check(), Ok(()));
        let mut bad = spec.clone();
        bad.tars.clear();
        assert_eq!(bad.check().unwrap_err().0, "$.tars");
        bad = spec;
        bad.strata.by_age = true;
        assert_eq!(bad.check().unwrap_err().0, "$.age_breaks");
    }

    #[test]
    fn results_must_answer_their_spec() {
        let spec = CharacterizationSpec {
            comparator: None,
            analyses: vec![1],
            covariate_ids: vec![8507001],
        };
        let exact = |value| Released::Exact { value };
        let mut r = CharacterizationResult {
            target: PopulationResult {
                entries: exact(20),
                subjects: exact(20),
            },
            comparator: None,
            covariates: vec![CovariateResult {
                covariate_id: 8507001,
                analysis_id: 1,
                target: exact(12),
                comparator: None,
            }],
            continuous: Vec::new(),
            disclosure: DisclosureSummary {
                min_cell_count: 10,
                obfuscation: None,
                secondary_suppression: false,
                dp: None,
            },
        };
        assert_eq!(check_characterization(&r, &spec), Ok(()));
        r.covariates[0].covariate_id = 8532001;
        assert!(check_characterization(&r, &spec).is_err(), "not asked for");
        r.covariates[0].covariate_id = 8507002;
        assert!(check_characterization(&r, &spec).is_err(), "wrong analysis");
        let inc = IncidenceSpec {
            outcome: serde_json::json!({}),
            tars: vec![TimeAtRisk::cohort_period()],
            clean_window: 0,
            strata: IncidenceStrata::default(),
            age_breaks: Vec::new(),
            max_tar_days: 365,
            max_outcomes_per_tar: 1,
        };
        let row = |tar_id, gender| IncidenceRow {
            tar_id,
            age_group_id: None,
            gender_concept_id: gender,
            start_year: None,
            persons_at_risk_pe: exact(10),
            persons_at_risk: exact(10),
            person_days_pe: exact(10),
            person_days: exact(10),
            person_outcomes_pe: exact(10),
            person_outcomes: exact(10),
            outcomes_pe: exact(10),
            outcomes: exact(10),
        };
        let mut r = IncidenceResult {
            rows: vec![row(1, None)],
            disclosure: DisclosureSummary {
                min_cell_count: 10,
                obfuscation: None,
                secondary_suppression: false,
                dp: None,
            },
        };
        assert_eq!(check_incidence(&r, &inc), Ok(()));
        r.rows.push(row(1, None));
        assert!(check_incidence(&r, &inc).is_err(), "twice");
        r.rows = vec![row(2, None)];
        assert!(check_incidence(&r, &inc).is_err(), "no such TAR");
        r.rows = vec![row(1, Some(8507))];
        assert!(
            check_incidence(&r, &inc).is_err(),
            "not stratified by gender"
        );
    }

    #[test]
    fn survival_specs_are_checked_and_results_must_be_on_their_grid() {
        let q: QueryType =
            serde_json::from_str(r#"{"type":"survival","outcome":{"PrimaryCriteria":{}}}"#)
                .unwrap();
        let QueryType::Survival(mut spec) = q else {
            panic!()
        };
        assert_eq!(
            (spec.grid_days, spec.horizon_days, spec.tar),
            (30, 3650, SurvivalTar::default())
        );
        // ⌈3650 / 30⌉ = 122 intervals and time 0.
        assert_eq!(spec.cells(), 123);
        assert_eq!(spec.check(), Ok(()));
        let t: SurvivalTar =
            serde_json::from_str(r#"{"start_offset":1,"end":{"cohort_start":365}}"#).unwrap();
        assert_eq!(t.end, SurvivalTarEnd::CohortStart(365));
        assert!(
            serde_json::from_str::<QueryType>(r#"{"type":"survival","outcome":{},"grid":30}"#)
                .is_err()
        );
        let path = |s: &SurvivalSpec| s.check().unwrap_err().0;
        spec.grid_days = 0;
        assert_eq!(path(&spec), "$.grid_days");
        spec.grid_days = 1;
        spec.horizon_days = 5000;
        assert_eq!(path(&spec), "$.horizon_days", "5,000 one-day intervals");
        spec.grid_days = 7;
        spec.horizon_days = 0;
        assert_eq!(path(&spec), "$.horizon_days");
        spec.horizon_days = 70;
        spec.comparator = Some(serde_json::json!([]));
        assert_eq!(path(&spec), "$.comparator");
        spec.comparator = None;
        spec.outcome = serde_json::json!("x");
        assert_eq!(path(&spec), "$.outcome");
        spec.outcome = serde_json::json!({});

        // 70 days on a 7-day grid: 11 grid points per arm.
        let zero = Released::BelowThreshold { threshold: 1 };
        let arm = |n| RiskSetResult {
            entered: Released::Exact { value: 3 },
            events: vec![zero.clone(); n],
            censored: vec![zero.clone(); n],
        };
        let mut r = SurvivalResult {
            target: arm(11),
            comparator: None,
            disclosure: DisclosureSummary {
                min_cell_count: 1,
                obfuscation: None,
                secondary_suppression: false,
                dp: None,
            },
        };
        assert_eq!(check_survival(&r, &spec), Ok(()));
        let json = serde_json::to_value(Payload::Survival(r.clone())).unwrap();
        assert_eq!(check_result_json(&json), Ok(()), "{json}");
        r.comparator = Some(arm(11));
        assert!(check_survival(&r, &spec).is_err(), "no comparator asked");
        spec.comparator = Some(serde_json::json!({}));
        assert_eq!(check_survival(&r, &spec), Ok(()));
        r.comparator = Some(arm(12));
        assert_eq!(
            check_survival(&r, &spec),
            Err(mismatch(
                "$.comparator.events".into(),
                "12 grid points, the job's grid has 11"
            ))
        );
    }
}
