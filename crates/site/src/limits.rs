//! Limits on what a job may ask of the site's engine, checked before anything runs: a cohort
//! definition's size, its number of criteria and its nesting depth. A definition over a limit
//! is refused ([`qiao_protocol::RefusalReason::DefinitionTooComplex`]) with a message naming
//! the limit; the largest OHDSI PhenotypeLibrary definitions (about 300 KB compact, 22 criteria,
//! depth 18) are well inside them.

/// Largest definition, in bytes of compact JSON.
pub const MAX_DEFINITION_BYTES: usize = 512 * 1024;
/// Most criteria (entries of every `CriteriaList`, `DemographicCriteriaList` and `Groups`).
pub const MAX_CRITERIA: usize = 200;
/// Deepest JSON nesting.
pub const MAX_DEPTH: usize = 32;

/// `Err` naming the first limit `definition` exceeds.
pub fn check_definition(definition: &serde_json::Value) -> Result<(), String> {
    let bytes = serde_json::to_vec(definition).map_or(usize::MAX, |v| v.len());
    if bytes > MAX_DEFINITION_BYTES {
        return Err(format!(
            "the definition has {bytes} bytes; this site accepts at most {MAX_DEFINITION_BYTES}"
        ));
    }
    let mut criteria = 0usize;
    let mut depth = 0usize;
    // Iterative walk: no recursion on attacker-controlled nesting.
    let mut stack: Vec<(&serde_json::Value, usize)> = vec![(definition, 1)];
    while let Some((v, d)) = stack.pop() {
        depth = depth.max(d);
        if depth > MAX_DEPTH {
            return Err(format!(
                "the definition nests deeper than {MAX_DEPTH} levels, the limit of this site"
            ));
        }
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    if matches!(
                        k.as_str(),
                        "CriteriaList" | "DemographicCriteriaList" | "Groups"
                    ) {
                        criteria += x.as_array().map_or(0, Vec::len);
                    }
                    stack.push((x, d + 1));
                }
            }
            serde_json::Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    if criteria > MAX_CRITERIA {
        return Err(format!(
            "the definition has {criteria} criteria; this site accepts at most {MAX_CRITERIA}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn size_criteria_and_depth_are_limited() {
        assert!(check_definition(&json!({"PrimaryCriteria": {"CriteriaList": [{}]}})).is_ok());
        let many: Vec<_> = (0..201)
            .map(|_| json!({"ConditionOccurrence": {}}))
            .collect();
        let e = check_definition(&json!({"PrimaryCriteria": {"CriteriaList": many}})).unwrap_err();
        assert!(e.contains("201 criteria"), "{e}");
        let mut deep = json!({});
        for _ in 0..40 {
            deep = json!({"Groups": [deep]});
        }
        assert!(check_definition(&deep)
            .unwrap_err()
            .contains("deeper than 32"));
        let big = json!({"x": "y".repeat(MAX_DEFINITION_BYTES)});
        assert!(check_definition(&big)
            .unwrap_err()
            .contains("at most 524288"));
    }
}
