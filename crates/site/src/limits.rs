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

/// Every cohort definition a job runs, each with its name in messages: the target, and an
/// analysis's other cohorts (a characterization's comparator, an incidence's or a survival's
/// outcome and comparator, a regression's outcome, comparator and cohort covariates).
pub fn job_definitions(job: &qiao_protocol::Job) -> Vec<(&'static str, &serde_json::Value)> {
    use qiao_protocol::QueryType;
    let mut v = vec![("the definition", &job.definition)];
    match &job.query {
        QueryType::Characterization(spec) => v.extend(
            spec.comparator
                .iter()
                .map(|c| ("the comparator definition", c)),
        ),
        QueryType::Incidence(spec) => v.push(("the outcome definition", &spec.outcome)),
        QueryType::RegressionRound(round) => {
            let spec = &round.spec;
            v.push(("the outcome definition", &spec.outcome));
            v.extend(
                spec.comparator
                    .iter()
                    .map(|c| ("the comparator definition", c)),
            );
            v.extend(spec.covariates.iter().filter_map(|c| match c {
                qiao_protocol::RegressionCovariate::Cohort { definition, .. } => {
                    Some(("a covariate's cohort definition", definition))
                }
                _ => None,
            }));
        }
        QueryType::Survival(spec) => {
            v.push(("the outcome definition", &spec.outcome));
            v.extend(
                spec.comparator
                    .iter()
                    .map(|c| ("the comparator definition", c)),
            );
        }
        QueryType::CohortCount | QueryType::Demographics { .. } | QueryType::Recruitment(_) => {}
    }
    v
}

/// `Err` naming the first limit one of the job's definitions ([`job_definitions`]) exceeds.
pub fn check_job(job: &qiao_protocol::Job) -> Result<(), String> {
    for (name, definition) in job_definitions(job) {
        check_definition(definition).map_err(|e| match e.strip_prefix("the definition") {
            Some(rest) => format!("{name}{rest}"),
            None => e,
        })?;
    }
    Ok(())
}

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
        let e = check_definition(&json!({"PrimaryCriteria": {"CriteriaList": many.clone()}}))
            .unwrap_err();
        assert!(e.contains("201 criteria"), "{e}");
        let mut deep = json!({});
        for _ in 0..40 {
            deep = json!({"Groups": [deep]});
        }
        assert!(check_definition(&deep)
            .unwrap_err()
            .contains("deeper than 32"));
        // An analysis's other cohorts are checked too, and named.
        let small = json!({"PrimaryCriteria": {"CriteriaList": [{}]}});
        let mut job = qiao_protocol::Job {
            job_id: qiao_protocol::JobId::random(),
            project_id: qiao_protocol::ProjectId::new("p").unwrap(),
            query: qiao_protocol::QueryType::CohortCount,
            definition: small.clone(),
            requested_by: qiao_protocol::Requester {
                user_id: qiao_protocol::UserId::new("alice").unwrap(),
                role: qiao_protocol::UserRole::SponsorResearcher,
                organization: "o".into(),
            },
            created_at: 0,
            floors: qiao_protocol::Floors::none(),
        };
        assert!(check_job(&job).is_ok());
        job.query = qiao_protocol::QueryType::Incidence(qiao_protocol::IncidenceSpec {
            outcome: deep.clone(),
            tars: vec![qiao_protocol::TimeAtRisk::cohort_period()],
            clean_window: 0,
            strata: Default::default(),
            age_breaks: Vec::new(),
            max_tar_days: 365,
            max_outcomes_per_tar: 1,
        });
        let e = check_job(&job).unwrap_err();
        assert!(e.starts_with("the outcome definition nests deeper"), "{e}");
        job.query =
            qiao_protocol::QueryType::Characterization(qiao_protocol::CharacterizationSpec {
                comparator: Some(json!({"PrimaryCriteria": {"CriteriaList": many}})),
                analyses: Vec::new(),
                covariate_ids: Vec::new(),
            });
        let e = check_job(&job).unwrap_err();
        assert!(
            e.starts_with("the comparator definition has 201 criteria"),
            "{e}"
        );
        let big = json!({"x": "y".repeat(MAX_DEFINITION_BYTES)});
        assert!(check_definition(&big)
            .unwrap_err()
            .contains("at most 524288"));
    }
}
