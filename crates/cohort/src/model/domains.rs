//! The 16 Circe criteria domains in one table: each one's CDM table, tied to its
//! [`qiao_cdm::schema`] specification, and the columns a distinct occurrence count may read.
//! Planning takes a criteria's table, source concept column and visit column from here
//! ([`domain_of`]) and checks every other column the plan names against the schema
//! ([`check_column`]), so a misspelt column is an error when a definition is planned (and in every
//! test), never a column read as all NULL; validation asks [`count_kind`] which count columns a
//! domain allows; the narrative names each domain's events from here; the Spark SQL reads the
//! plan, whose tables and columns come from here.

use qiao_cdm::{self as schema, TableSpec};

use super::types::{Criteria, CriteriaColumn};

/// One criteria domain.
#[derive(Debug)]
pub struct DomainSpec {
    /// The criteria's name in the Circe JSON (`ConditionOccurrence`, ...).
    pub criteria: &'static str,
    /// Its CDM table.
    pub table: &'static TableSpec,
    /// The column the criteria's `<Domain>SourceConcept` concept set is joined on (None: the
    /// criteria has none, or circe-be ignores it, as Specimen's).
    pub source_concept: Option<&'static str>,
    /// The column read as the event's visit (`visit_occurrence_id`; None: circe-be's
    /// `CAST(NULL as bigint)`).
    pub visit: Option<&'static str>,
    /// One event of the domain in prose, English and Simplified Chinese ("a drug era", "药物时期").
    pub noun: (&'static str, &'static str),
}

/// Whether a domain's rows carry their visit.
const VISIT: bool = true;
const NO_VISIT: bool = false;

/// The 16 domains, in the order of the Circe criteria. Every column named here is checked
/// against the schema when the crate is built ([`schema::stored`]).
pub static DOMAINS: [DomainSpec; 16] = [
    d(
        "ConditionEra",
        &schema::CONDITION_ERA,
        None,
        NO_VISIT,
        ("a condition era", "疾病时期"),
    ),
    d(
        "ConditionOccurrence",
        &schema::CONDITION_OCCURRENCE,
        Some("condition_source_concept_id"),
        VISIT,
        ("a condition occurrence", "疾病记录"),
    ),
    d(
        "Death",
        &schema::DEATH,
        Some("cause_source_concept_id"),
        NO_VISIT,
        ("a death", "死亡"),
    ),
    d(
        "DeviceExposure",
        &schema::DEVICE_EXPOSURE,
        Some("device_source_concept_id"),
        VISIT,
        ("a device exposure", "器械暴露"),
    ),
    d(
        "DoseEra",
        &schema::DOSE_ERA,
        None,
        NO_VISIT,
        ("a dose era", "剂量时期"),
    ),
    d(
        "DrugEra",
        &schema::DRUG_ERA,
        None,
        NO_VISIT,
        ("a drug era", "药物时期"),
    ),
    d(
        "DrugExposure",
        &schema::DRUG_EXPOSURE,
        Some("drug_source_concept_id"),
        VISIT,
        ("a drug exposure", "药物暴露"),
    ),
    d(
        "LocationRegion",
        &schema::LOCATION_HISTORY,
        None,
        NO_VISIT,
        ("a location region", "所在地区"),
    ),
    d(
        "Measurement",
        &schema::MEASUREMENT,
        Some("measurement_source_concept_id"),
        VISIT,
        ("a measurement", "检验检查"),
    ),
    d(
        "Observation",
        &schema::OBSERVATION,
        Some("observation_source_concept_id"),
        VISIT,
        ("an observation", "观察记录"),
    ),
    d(
        "ObservationPeriod",
        &schema::OBSERVATION_PERIOD,
        None,
        NO_VISIT,
        ("an observation period", "观察期"),
    ),
    d(
        "ProcedureOccurrence",
        &schema::PROCEDURE_OCCURRENCE,
        Some("procedure_source_concept_id"),
        VISIT,
        ("a procedure", "诊疗操作"),
    ),
    d(
        "Specimen",
        &schema::SPECIMEN,
        None,
        NO_VISIT,
        ("a specimen", "标本"),
    ),
    d(
        "VisitOccurrence",
        &schema::VISIT_OCCURRENCE,
        Some("visit_source_concept_id"),
        VISIT,
        ("a visit", "就诊"),
    ),
    d(
        "VisitDetail",
        &schema::VISIT_DETAIL,
        Some("visit_detail_source_concept_id"),
        VISIT,
        ("a visit detail", "就诊明细"),
    ),
    d(
        "PayerPlanPeriod",
        &schema::PAYER_PLAN_PERIOD,
        None,
        NO_VISIT,
        ("a payer plan period", "医保计划期"),
    ),
];

/// A row of [`DOMAINS`], its columns checked in the constant's evaluation.
const fn d(
    criteria: &'static str,
    table: &'static TableSpec,
    source_concept: Option<&'static str>,
    visit: bool,
    noun: (&'static str, &'static str),
) -> DomainSpec {
    DomainSpec {
        criteria,
        table,
        source_concept: match source_concept {
            Some(c) => Some(schema::stored(table, c)),
            None => None,
        },
        visit: if visit {
            Some(schema::stored(table, "visit_occurrence_id"))
        } else {
            None
        },
        noun,
    }
}

/// The domain of a criteria.
pub fn domain_of(c: &Criteria) -> &'static DomainSpec {
    let name = c.name();
    DOMAINS
        .iter()
        .find(|d| d.criteria == name)
        .expect("every criteria has a row in DOMAINS (tested)")
}

/// The tables a criteria's filters may read besides its own (joined by id).
pub static JOINED: [&TableSpec; 5] = [
    &schema::PERSON,
    &schema::PROVIDER,
    &schema::VISIT_OCCURRENCE,
    &schema::CARE_SITE,
    &schema::LOCATION,
];

/// Checks that `table` (a CDM table name) has a stored column `column`: Err names both.
pub fn check_column(table: &str, column: &str) -> Result<(), String> {
    let spec = schema::TABLES
        .iter()
        .find(|t| t.name == table)
        .ok_or_else(|| format!("internal: no CDM table {table:?} in qiao_cdm::schema"))?;
    match spec.column(column) {
        Some(c) if c.is_kept() => Ok(()),
        Some(_) => Err(format!("internal: {table}.{column} is not stored")),
        None => Err(format!(
            "internal: no column {table}.{column} in qiao_cdm::schema"
        )),
    }
}

/// What `COUNT(DISTINCT ...)` counts for a correlated criteria.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountKind {
    Start,
    End,
    Visit,
    /// The domain concept (`coalesce(cause_concept_id, 0)` for death).
    Concept {
        coalesce_zero: bool,
    },
    /// Another concept / integer / float column of the table.
    Col(&'static str),
    Duration,
    /// `CAST(1 as int)`.
    One,
}

/// Which column a distinct occurrence count reads, as each circe-be builder allows it
/// (None: circe-be rejects it or would generate invalid SQL).
pub fn count_kind(c: &Criteria, col: CriteriaColumn) -> Option<CountKind> {
    use CountKind as K;
    use CriteriaColumn as C;
    let has_visit_default = !matches!(c, Criteria::ConditionEra(_) | Criteria::VisitDetail(_));
    match col {
        C::START_DATE => return Some(K::Start),
        C::END_DATE => return Some(K::End),
        C::VISIT_ID if has_visit_default => return Some(K::Visit),
        _ => {}
    }
    let concept = K::Concept {
        coalesce_zero: false,
    };
    Some(match (c, col) {
        (Criteria::ConditionOccurrence(_), C::DOMAIN_CONCEPT) => concept,
        (Criteria::ConditionOccurrence(_), C::DURATION) => K::Duration,
        (Criteria::DrugExposure(_), C::DAYS_SUPPLY) => K::Col("days_supply"),
        (Criteria::DrugExposure(_), C::DOMAIN_CONCEPT) => concept,
        (Criteria::DrugExposure(_), C::DURATION) => K::Duration,
        (Criteria::DrugExposure(_), C::QUANTITY) => K::Col("quantity"),
        (Criteria::DrugExposure(_), C::REFILLS) => K::Col("refills"),
        (Criteria::DrugEra(_), C::DOMAIN_CONCEPT) => concept,
        (Criteria::DrugEra(_), C::ERA_OCCURRENCES) => K::Col("drug_exposure_count"),
        (Criteria::DrugEra(_), C::GAP_DAYS) => K::Col("gap_days"),
        (Criteria::DrugEra(_), C::DURATION) => K::Duration,
        (Criteria::ConditionEra(_), C::DOMAIN_CONCEPT) => concept,
        (Criteria::ConditionEra(_), C::ERA_OCCURRENCES) => K::Col("condition_occurrence_count"),
        (Criteria::ConditionEra(_), C::DURATION) => K::Duration,
        (Criteria::DoseEra(_), C::DOMAIN_CONCEPT) => concept,
        (Criteria::DoseEra(_), C::DURATION) => K::Duration,
        (Criteria::DoseEra(_), C::UNIT) => K::Col("unit_concept_id"),
        (Criteria::DoseEra(_), C::VALUE_AS_NUMBER) => K::Col("dose_value"),
        (Criteria::Death(_), C::DOMAIN_CONCEPT) => K::Concept {
            coalesce_zero: true,
        },
        (Criteria::Death(_), C::DURATION) => K::One,
        (Criteria::ObservationPeriod(_), C::DOMAIN_CONCEPT) => K::Col("period_type_concept_id"),
        (Criteria::ObservationPeriod(_), C::DURATION) => K::Duration,
        (Criteria::PayerPlanPeriod(_), C::DOMAIN_CONCEPT) => K::Col("payer_concept_id"),
        (Criteria::ProcedureOccurrence(_), C::DOMAIN_CONCEPT) => concept,
        (Criteria::ProcedureOccurrence(_), C::DURATION) => K::One,
        (Criteria::ProcedureOccurrence(_), C::QUANTITY) => K::Col("quantity"),
        (Criteria::Measurement(_), C::DOMAIN_CONCEPT) => concept,
        (Criteria::Measurement(_), C::DURATION) => K::One,
        (Criteria::Measurement(_), C::VALUE_AS_NUMBER) => K::Col("value_as_number"),
        (Criteria::Measurement(_), C::RANGE_HIGH) => K::Col("range_high"),
        (Criteria::Measurement(_), C::RANGE_LOW) => K::Col("range_low"),
        (Criteria::Observation(_), C::DOMAIN_CONCEPT) => concept,
        (Criteria::Observation(_), C::VALUE_AS_NUMBER) => K::Col("value_as_number"),
        (Criteria::Observation(_), C::DURATION) => K::One,
        (Criteria::VisitOccurrence(_), C::DOMAIN_CONCEPT) => concept,
        (Criteria::VisitOccurrence(_), C::DURATION) => K::Duration,
        (Criteria::VisitDetail(_), C::DOMAIN_CONCEPT) => concept,
        (Criteria::VisitDetail(_), C::DURATION) => K::Duration,
        (Criteria::DeviceExposure(_), C::DOMAIN_CONCEPT) => concept,
        (Criteria::DeviceExposure(_), C::QUANTITY) => K::Col("quantity"),
        (Criteria::DeviceExposure(_), C::DURATION) => K::Duration,
        (Criteria::Specimen(_), C::DOMAIN_CONCEPT) => concept,
        (Criteria::Specimen(_), C::DURATION) => K::One,
        (Criteria::LocationRegion(_), C::DOMAIN_CONCEPT) => K::Col("region_concept_id"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_names_a_schema_event_table_once() {
        for (i, d) in DOMAINS.iter().enumerate() {
            assert!(d.table.event.is_some(), "{}", d.criteria);
            assert!(
                DOMAINS[..i].iter().all(|o| o.criteria != d.criteria),
                "{} twice",
                d.criteria
            );
        }
    }

    #[test]
    fn a_misspelt_column_is_an_error() {
        assert!(check_column("drug_exposure", "days_supply").is_ok());
        let e = check_column("drug_exposure", "day_supply").unwrap_err();
        assert!(e.contains("drug_exposure.day_supply"), "{e}");
        assert!(check_column("drug_exposures", "days_supply").is_err());
    }

    #[test]
    fn every_count_column_exists_in_its_domain_table() {
        use CriteriaColumn as C;
        let all = [
            C::DAYS_SUPPLY,
            C::DOMAIN_CONCEPT,
            C::DURATION,
            C::END_DATE,
            C::ERA_OCCURRENCES,
            C::GAP_DAYS,
            C::QUANTITY,
            C::RANGE_HIGH,
            C::RANGE_LOW,
            C::REFILLS,
            C::START_DATE,
            C::UNIT,
            C::VALUE_AS_NUMBER,
            C::VISIT_ID,
        ];
        for d in &DOMAINS {
            let c: Criteria =
                serde_json::from_str(&format!("{{\"{}\": {{}}}}", d.criteria)).unwrap();
            for col in all {
                if let Some(CountKind::Col(name)) = count_kind(&c, col) {
                    // LocationRegion counts the joined location's region.
                    let table = match d.criteria {
                        "LocationRegion" => "location",
                        _ => d.table.name,
                    };
                    check_column(table, name).unwrap();
                }
            }
        }
    }
}
