//! Every cohort expression in the shared test data parses; bad inputs give exact JSON-path errors.

use std::fs;
use std::path::{Path, PathBuf};

use qiao_cohort::model::{self, ModelError};

const DATA: &str = "../../../shared/data";

fn files(dir: &str, pred: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from(DATA).join(dir)];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if pred(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn is_json(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "json")
}

/// A cohort expression (as opposed to a DBUnit dataset or a bare concept set).
fn is_cohort_expression(p: &Path) -> bool {
    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap();
    v.get("PrimaryCriteria").is_some()
}

fn parse_file(p: &Path) -> Result<model::CohortDefinition, ModelError> {
    model::parse(&fs::read_to_string(p).unwrap())
}

#[test]
fn all_phenotype_definitions_parse() {
    let list = files("phenotypes-dev/cohorts", is_json);
    assert_eq!(list.len(), 110);
    let mut bad = Vec::new();
    for p in &list {
        if let Err(e) = parse_file(p) {
            bad.push(format!("{}: {e}", p.display()));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn all_materialized_circe_cohorts_parse() {
    let list = files("circe-tests/materialized", |p| {
        is_json(p)
            && p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("cohort_"))
    });
    assert_eq!(list.len(), 38);
    for p in &list {
        parse_file(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}

#[test]
fn reference_and_all_criteria_expressions_parse() {
    let mut list = files("reference/cohortgenerator-eunomia/cohorts", is_json);
    list.push(
        PathBuf::from(DATA)
            .join("circe-tests/resources/cohortgeneration/allCriteria/allCriteriaExpression.json"),
    );
    for p in &list {
        parse_file(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}

/// Inputs under checkers/ and printfriendly/ that carry keys circe-be's model does not have
/// (Jackson drops them silently). We reject them, naming the element.
const UNKNOWN_ELEMENTS: &[(&str, &str)] = &[
    (
        "checkers/primaryCriteriaCheckValueCorrect.json",
        "PrimaryCriteria.CriteriaList[0].Measurement.CorrelatedCriteria.CriteriaList[13].Criteria.VisitDetail",
    ),
    (
        "printfriendly/allAttributes.json",
        "PrimaryCriteria.CriteriaList[8].DrugExposure",
    ),
    (
        "printfriendly/visitDetail.json",
        "PrimaryCriteria.CriteriaList[0].VisitDetail",
    ),
];

/// Checker fixtures that circe-be can deserialize but not execute (missing values, windows,
/// concept sets or rule expressions: circe-be fails with a NullPointerException or matches nothing):
/// validation rejects them, naming the first problem.
const NOT_EXECUTABLE: &[(&str, &str)] = &[
    ("checkers/additionalCriteriaCheckValueIncorrect.json", "AdditionalCriteria.Groups[0].CriteriaList[0].Criteria.ConditionEra.EraEndDate.Value"),
    ("checkers/censoringEventCheckValueIncorrect.json", "CensoringCriteria[0].ConditionEra.EraStartDate.Value"),
    ("checkers/domainTypeCheckCorrect.json", "PrimaryCriteria.CriteriaList[13].VisitDetail.VisitDetailTypeCS.CodesetId"),
    ("checkers/drugEraCheckIncorrect.json", "InclusionRules[0].expression.CriteriaList[0].StartWindow.Start"),
    ("checkers/duplicatesConceptSetCheckIncorrect.json", "ConceptSets[1].id"),
    ("checkers/emptyCorrelatedCriteria.json", "AdditionalCriteria.Groups[0].CriteriaList[0].Criteria.ConditionEra.CorrelatedCriteria.CriteriaList[0].Criteria"),
    ("checkers/emptyDemographicCheckCorrect.json", "InclusionRules[0].expression.DemographicCriteriaList[0].Age.Value"),
    ("checkers/emptyInclusionRules.json", "InclusionRules[0].expression"),
    ("checkers/inclusionRulesCheckValueIncorrect.json", "InclusionRules[0].expression.CriteriaList[0].Criteria.Measurement.OccurrenceStartDate.Value"),
    ("checkers/primaryCriteriaCheckValueIncorrect.json", "PrimaryCriteria.CriteriaList[0].Measurement.OccurrenceStartDate.Value"),
];

#[test]
fn checker_and_printfriendly_cohort_expressions_parse() {
    let mut list = files("circe-tests/resources/checkers", is_json);
    list.extend(files("circe-tests/resources/printfriendly", is_json));
    let mut parsed = 0;
    let mut report = Vec::new();
    for p in &list {
        if !is_cohort_expression(p) {
            continue;
        }
        let rel = p.to_string_lossy().replace('\\', "/");
        let unknown = UNKNOWN_ELEMENTS.iter().find(|(f, _)| rel.ends_with(f));
        let invalid = NOT_EXECUTABLE.iter().find(|(f, _)| rel.ends_with(f));
        match (parse_file(p), unknown, invalid) {
            (Ok(_), None, None) => parsed += 1,
            (Err(ModelError::Parse { issue, .. }), Some((_, path)), _) => {
                if !(issue.path.starts_with(path)
                    && issue.message.contains("unknown or unsupported element"))
                {
                    report.push(format!("{rel}: {issue}"));
                }
            }
            (Err(ModelError::Invalid(issues)), None, Some((_, path))) => {
                // Structurally fine, semantically not executable.
                model::parse_expression(&fs::read_to_string(p).unwrap()).unwrap();
                if issues[0].path != *path {
                    report.push(format!("{rel}: first issue {}", issues[0]));
                }
            }
            (Err(e), _, _) => report.push(format!("{rel}: {e}")),
            (Ok(_), _, _) => report.push(format!("{rel}: expected an error")),
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
    assert!(parsed > 50, "parsed {parsed}");
}

fn minimal(inclusion: &str) -> String {
    format!(
        r#"{{
  "ConceptSets": [{{"id": 0, "name": "x", "expression": {{"items": [{{"concept": {{"CONCEPT_ID": 1}}}}]}}}}],
  "PrimaryCriteria": {{"CriteriaList": [{{"ConditionOccurrence": {{"CodesetId": 0}}}}],
    "ObservationWindow": {{"PriorDays": 0, "PostDays": 0}}, "PrimaryCriteriaLimit": {{"Type": "First"}}}},
  "InclusionRules": [{inclusion}]
}}"#
    )
}

fn rule(criteria: &str) -> String {
    format!(
        r#"{{"name": "r", "expression": {{"Type": "ALL", "CriteriaList": [{{"Criteria": {criteria},
        "StartWindow": {{"Start": {{"Coeff": -1}}, "End": {{"Days": 0, "Coeff": 1}}}},
        "Occurrence": {{"Type": 2, "Count": 1}}}}]}}}}"#
    )
}

fn parse_err(json: &str) -> (String, String) {
    match model::parse(json) {
        Ok(_) => panic!("expected an error"),
        Err(ModelError::Parse { issue, .. }) => (issue.path, issue.message),
        Err(ModelError::Invalid(v)) => (v[0].path.clone(), v[0].message.clone()),
    }
}

#[test]
fn bad_operator_is_reported_at_its_json_path() {
    let ok = rule(r#"{"Measurement": {"CodesetId": 0}}"#);
    let bad =
        rule(r#"{"Measurement": {"CodesetId": 0, "ValueAsNumber": {"Value": 5, "Op": "gtx"}}}"#);
    let json = minimal(&format!("{ok}, {ok}, {bad}"));
    let (path, msg) = parse_err(&json);
    assert_eq!(
        path,
        "InclusionRules[2].expression.CriteriaList[0].Criteria.Measurement.ValueAsNumber.Op"
    );
    assert_eq!(msg, r#"unknown operator "gtx""#);
}

#[test]
fn unknown_keys_are_errors_but_informational_keys_are_not() {
    let bad = rule(r#"{"Measurement": {"CodesetId": 0, "Foo": 1}}"#);
    let (path, msg) = parse_err(&minimal(&bad));
    assert_eq!(
        path,
        "InclusionRules[0].expression.CriteriaList[0].Criteria.Measurement.Foo"
    );
    assert_eq!(msg, r#"unknown or unsupported element "Foo""#);

    let (path, msg) = parse_err(&minimal(&rule(r#"{"Measurements": {}}"#)));
    assert_eq!(
        path,
        "InclusionRules[0].expression.CriteriaList[0].Criteria"
    );
    assert!(msg.contains("Measurements"), "{msg}");

    let json = minimal("").replace(
        r#""ConceptSets""#,
        r#""cdmVersionRange": ">=5.0.0", "ConceptSets""#,
    ).replace(
        r#""CONCEPT_ID": 1"#,
        r#""CONCEPT_ID": 1, "STANDARD_CONCEPT_CAPTION": "Standard", "INVALID_REASON_CAPTION": "Valid", "VALID_START_DATE": "1970-01-01""#,
    );
    model::parse(&json).unwrap();
}

#[test]
fn validation_errors_name_paths() {
    // A codeset that does not exist.
    let (path, msg) = parse_err(&minimal(&rule(r#"{"Measurement": {"CodesetId": 7}}"#)));
    assert_eq!(
        path,
        "InclusionRules[0].expression.CriteriaList[0].Criteria.Measurement.CodesetId"
    );
    assert_eq!(msg, "concept set 7 is not defined in ConceptSets");
    // AT_LEAST without Count.
    let json = minimal(
        r#"{"name": "r", "expression": {"Type": "AT_LEAST", "DemographicCriteriaList": [{"Age": {"Value": 3, "Op": "gt"}}]}}"#,
    );
    let (path, msg) = parse_err(&json);
    assert_eq!(path, "InclusionRules[0].expression.Count");
    assert!(msg.contains("missing count"), "{msg}");
    // Occurrence without Count.
    let json =
        minimal(&rule(r#"{"Measurement": {"CodesetId": 0}}"#).replace(r#", "Count": 1"#, ""));
    let (path, _) = parse_err(&json);
    assert_eq!(
        path,
        "InclusionRules[0].expression.CriteriaList[0].Occurrence.Count"
    );
    // Missing operator, bad date.
    let (path, msg) = parse_err(&minimal(&rule(
        r#"{"ConditionOccurrence": {"CodesetId": 0, "OccurrenceStartDate": {"Value": "2010-02-30", "Op": "gt"}}}"#,
    )));
    assert_eq!(path, "InclusionRules[0].expression.CriteriaList[0].Criteria.ConditionOccurrence.OccurrenceStartDate.Value");
    assert!(msg.contains("invalid date"), "{msg}");
    let (path, msg) = parse_err(&minimal(&rule(
        r#"{"Measurement": {"CodesetId": 0, "Age": {"Value": 3}}}"#,
    )));
    assert_eq!(
        path,
        "InclusionRules[0].expression.CriteriaList[0].Criteria.Measurement.Age.Op"
    );
    assert_eq!(msg, "missing operator");
    // Bad limit type; limit types are case-insensitive.
    let (path, _) = parse_err(&minimal("").replace(r#""Type": "First""#, r#""Type": "Firstly""#));
    assert_eq!(path, "PrimaryCriteria.PrimaryCriteriaLimit.Type");
    model::parse(&minimal("").replace(r#""Type": "First""#, r#""Type": "aLL""#)).unwrap();
    // Not JSON at all.
    assert!(matches!(model::parse("{"), Err(ModelError::Parse { .. })));
}

#[test]
fn warnings_report_unused_concept_sets() {
    let json = minimal("").replace(
        r#"[{"id": 0,"#,
        r#"[{"id": 5, "name": "spare", "expression": {"items": []}}, {"id": 0,"#,
    );
    let def = model::parse(&json).unwrap();
    assert!(
        def.warnings
            .iter()
            .any(|w| w.message == r#"Concept Set "spare" is not used"#),
        "{:?}",
        def.warnings
    );
}
