//! The Circe cohort expression model: parsing (with JSON-path errors) and validation.

pub mod domains;
mod types;
mod validate;

pub use types::*;
pub use validate::parse_date;

use std::fmt;

/// A problem found in a cohort definition, located by its JSON path
/// (e.g. `InclusionRules[2].expression.CriteriaList[0].Criteria.Measurement.ValueAsNumber.Op`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a cohort definition could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// Not valid JSON, or JSON that does not fit the Circe model (unknown key, wrong type, unknown
    /// operator). `line`/`column` locate it in the text.
    Parse {
        issue: Issue,
        line: usize,
        column: usize,
    },
    /// Parsed, but inconsistent (missing concept set, missing operator, missing count, ...).
    Invalid(Vec<Issue>),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::Parse {
                issue,
                line,
                column,
            } => {
                write!(f, "{issue} (line {line}, column {column})")
            }
            ModelError::Invalid(issues) => {
                for (i, issue) in issues.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{issue}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ModelError {}

impl ModelError {
    /// Every issue (one for a parse error).
    pub fn issues(&self) -> Vec<Issue> {
        match self {
            ModelError::Parse { issue, .. } => vec![issue.clone()],
            ModelError::Invalid(v) => v.clone(),
        }
    }
}

/// A parsed and validated cohort definition with Circe's design-time warnings.
#[derive(Debug, Clone)]
pub struct CohortDefinition {
    pub expression: CohortExpression,
    pub warnings: Vec<Issue>,
}

/// Parses a cohort expression without validating it.
pub fn parse_expression(json: &str) -> Result<CohortExpression, ModelError> {
    // Valid input (the common case) parses without tracking the path; an error is parsed again
    // with it, to name where it is.
    if let Ok(e) = serde_json::from_str(json) {
        return Ok(e);
    }
    let mut de = serde_json::Deserializer::from_str(json);
    let parsed: Result<CohortExpression, _> = serde_path_to_error::deserialize(&mut de);
    let expr = match parsed {
        Ok(e) => e,
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            return Err(parse_error(path, &inner));
        }
    };
    if let Err(e) = de.end() {
        return Err(parse_error(String::new(), &e));
    }
    Ok(expr)
}

fn parse_error(path: String, e: &serde_json::Error) -> ModelError {
    let full = e.to_string();
    // serde_json appends " at line L column C"; the location is kept apart.
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full,
    };
    let message = shorten_unknown_field(&message);
    let path = if path == "." { String::new() } else { path };
    ModelError::Parse {
        issue: Issue { path, message },
        line: e.line(),
        column: e.column(),
    }
}

/// `unknown field `X`, expected one of ...` → `unknown field "X"` (the list of every known key is
/// long and not helpful).
fn shorten_unknown_field(msg: &str) -> String {
    for prefix in ["unknown field `", "unknown variant `"] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            if let Some(end) = rest.find('`') {
                let what = if prefix.contains("field") {
                    "unknown or unsupported element"
                } else {
                    "unknown criteria type"
                };
                return format!("{what} {:?}", &rest[..end]);
            }
        }
    }
    msg.to_string()
}

/// Parses and validates a cohort definition: the JSON must fit the Circe model exactly and be
/// consistent (every referenced concept set exists, every operator and count is present, ...).
pub fn parse(json: &str) -> Result<CohortDefinition, ModelError> {
    let expression = parse_expression(json)?;
    let (errors, warnings) = validate::validate(&expression);
    if !errors.is_empty() {
        return Err(ModelError::Invalid(errors));
    }
    Ok(CohortDefinition {
        expression,
        warnings,
    })
}
