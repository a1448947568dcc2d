//! Checks of what users type: free text, identifiers, cohort definitions.

use super::refusal::{field, Refusal};

/// Checks free text: trimmed length within `1..=max` characters, no control characters except
/// newlines when `multiline`.
pub fn text_ok(s: &str, max: usize, multiline: bool) -> bool {
    let n = s.trim().chars().count();
    (1..=max).contains(&n)
        && !s
            .chars()
            .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\r' || c == '\t')))
}

/// Checks an identifier: 1 to 64 of `[a-z0-9_-]`, starting with a letter or digit.
pub fn id_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Largest cohort definition accepted, in bytes.
pub const MAX_DEFINITION_BYTES: usize = qiao_hub::api::MAX_DEFINITION_BYTES;

/// Validates ATLAS JSON with the cohort engine's parser; the error names the JSON path.
pub fn check_definition(json: &str) -> Result<serde_json::Value, Refusal> {
    if json.len() > MAX_DEFINITION_BYTES {
        return Err(field("definition", "form.err_definition_size"));
    }
    if json.trim().is_empty() {
        return Err(field("definition", "form.err_required"));
    }
    if let Err(e) = qiao_cohort::parse(json) {
        return Err(definition_refusal(&e));
    }
    serde_json::from_str(json).map_err(|e| Refusal::Field {
        field: "definition",
        key: "form.err_definition",
        args: vec![("error", e.to_string())],
    })
}

/// A parser error as a localized refusal: the kind of problem in the page's language, with the
/// JSON path (`(root)` for the whole text), line and column kept; the parser's own words follow
/// as the detail (serde's type names, the definition's names).
pub fn definition_refusal(e: &qiao_cohort::ModelError) -> Refusal {
    use qiao_cohort::ModelError;
    let quoted = |m: &str, q: char| m.split(q).nth(1).unwrap_or_default().to_owned();
    let (key, args) = match e {
        ModelError::Parse {
            issue,
            line,
            column,
        } => {
            let m = issue.message.as_str();
            let (key, detail) = if m.starts_with("unknown or unsupported element") {
                ("form.err_def_unknown_element", quoted(m, '"'))
            } else if m.starts_with("unknown criteria type") {
                ("form.err_def_unknown_value", quoted(m, '"'))
            } else if m.starts_with("missing field") {
                ("form.err_def_missing", quoted(m, '`'))
            } else if m.starts_with("invalid type") || m.starts_with("invalid value") {
                ("form.err_def_type", m.to_owned())
            } else {
                ("form.err_def_syntax", m.to_owned())
            };
            let path = if issue.path.is_empty() {
                "(root)".to_owned()
            } else {
                issue.path.clone()
            };
            (
                key,
                vec![
                    ("path", path),
                    ("line", line.to_string()),
                    ("column", column.to_string()),
                    ("detail", detail),
                ],
            )
        }
        ModelError::Invalid(issues) => (
            "form.err_def_invalid",
            vec![(
                "issues",
                issues
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )],
        ),
    };
    Refusal::Field {
        field: "definition",
        key,
        args,
    }
}
