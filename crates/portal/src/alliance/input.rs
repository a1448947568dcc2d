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
        return Err(Refusal::Field {
            field: "definition",
            key: "form.err_definition",
            args: vec![("error", e.to_string())],
        });
    }
    serde_json::from_str(json).map_err(|e| Refusal::Field {
        field: "definition",
        key: "form.err_definition",
        args: vec![("error", e.to_string())],
    })
}
