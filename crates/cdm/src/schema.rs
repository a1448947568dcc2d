//! The OMOP CDM tables Qiao reads (v5.3 and v5.4), their columns and the role each plays.
//!
//! Every column a CDM export may carry is listed, so that a column we do not know is reported as an
//! extra. Columns an OHDSI Circe criterion can filter on are *kept* (stored); the rest (datetimes,
//! free-text source values) are *known* but skipped.

/// How a column's text is parsed and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// 64-bit integer identifier (primary and foreign keys).
    Id,
    /// 32-bit concept id.
    Concept,
    /// 32-bit integer (year of birth, refills, days supply, counts).
    Int,
    /// Calendar date, stored as days since 1970-01-01.
    Date,
    /// Floating point number (quantity, value_as_number, ranges, dose).
    Float,
    /// UTF-8 text.
    Text,
    /// A CDM column Qiao does not store (datetimes, source values): neither parsed nor kept.
    Skip,
}

/// One column of a CDM table.
#[derive(Debug, Clone, Copy)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub ty: ColType,
    /// NOT NULL in the CDM DDL (a row missing it is rejected as bad data).
    pub required: bool,
}

impl ColumnSpec {
    pub fn is_kept(&self) -> bool {
        self.ty != ColType::Skip
    }
}

/// What a table is, for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// `person`: one row per person, demographic attributes.
    Person,
    /// A clinical table with a person and a start date: stored sorted by (person, start date).
    Event,
    /// A vocabulary table (concept, concept_ancestor, concept_relationship).
    Vocabulary,
    /// A reference table without a person (care_site, location, provider).
    Reference,
}

/// How Circe derives an event's end date when the table's own end column is NULL or absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndRule {
    /// The end column as is (required in the CDM).
    Column,
    /// `COALESCE(end, start + 1)`.
    ColumnOrStartPlusOne,
    /// `COALESCE(end, start + days_supply, start + 1)` (drug_exposure).
    ColumnOrDaysSupplyOrStartPlusOne,
    /// `start + 1` (the table has no end column that Circe reads).
    StartPlusOne,
    /// `COALESCE(end, 2099-12-31)` (location_history).
    ColumnOr2099,
}

/// The columns that make a clinical table an event stream.
#[derive(Debug, Clone, Copy)]
pub struct EventRoles {
    /// The person column (`person_id`, or `entity_id` for location_history).
    pub person: &'static str,
    /// Primary key: Circe's `event_id` for this domain (None: death, whose event id is the person id).
    pub pk: Option<&'static str>,
    /// The domain concept column matched by a criterion's `CodesetId`.
    pub concept: Option<&'static str>,
    pub start: &'static str,
    pub end: Option<&'static str>,
    pub end_rule: EndRule,
}

#[derive(Debug)]
pub struct TableSpec {
    pub name: &'static str,
    pub kind: TableKind,
    /// A CDM without this table cannot be ingested.
    pub required: bool,
    pub columns: &'static [ColumnSpec],
    pub event: Option<EventRoles>,
}

impl TableSpec {
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
    pub fn kept_columns(&self) -> impl Iterator<Item = &ColumnSpec> {
        self.columns.iter().filter(|c| c.is_kept())
    }
}

const fn req(name: &'static str, ty: ColType) -> ColumnSpec {
    ColumnSpec {
        name,
        ty,
        required: true,
    }
}
const fn opt(name: &'static str, ty: ColType) -> ColumnSpec {
    ColumnSpec {
        name,
        ty,
        required: false,
    }
}
const fn skip(name: &'static str) -> ColumnSpec {
    ColumnSpec {
        name,
        ty: ColType::Skip,
        required: false,
    }
}

use ColType::*;

pub static PERSON: TableSpec = TableSpec {
    name: "person",
    kind: TableKind::Person,
    required: true,
    event: None,
    columns: &[
        req("person_id", Id),
        req("gender_concept_id", Concept),
        req("year_of_birth", Int),
        opt("month_of_birth", Int),
        opt("day_of_birth", Int),
        skip("birth_datetime"),
        req("race_concept_id", Concept),
        req("ethnicity_concept_id", Concept),
        opt("location_id", Id),
        opt("provider_id", Id),
        opt("care_site_id", Id),
        // The hospital's own record number: kept for the site's pre-screening list (its
        // investigators find their patients by it), never in anything hub-bound.
        opt("person_source_value", Text),
        skip("gender_source_value"),
        opt("gender_source_concept_id", Concept),
        skip("race_source_value"),
        opt("race_source_concept_id", Concept),
        skip("ethnicity_source_value"),
        opt("ethnicity_source_concept_id", Concept),
    ],
};

pub static OBSERVATION_PERIOD: TableSpec = TableSpec {
    name: "observation_period",
    kind: TableKind::Event,
    required: true,
    event: Some(EventRoles {
        person: "person_id",
        pk: Some("observation_period_id"),
        concept: None,
        start: "observation_period_start_date",
        end: Some("observation_period_end_date"),
        end_rule: EndRule::Column,
    }),
    columns: &[
        req("observation_period_id", Id),
        req("person_id", Id),
        req("observation_period_start_date", Date),
        req("observation_period_end_date", Date),
        req("period_type_concept_id", Concept),
    ],
};

pub static VISIT_OCCURRENCE: TableSpec = TableSpec {
    name: "visit_occurrence",
    kind: TableKind::Event,
    required: false,
    event: Some(EventRoles {
        person: "person_id",
        pk: Some("visit_occurrence_id"),
        concept: Some("visit_concept_id"),
        start: "visit_start_date",
        end: Some("visit_end_date"),
        end_rule: EndRule::Column,
    }),
    columns: &[
        req("visit_occurrence_id", Id),
        req("person_id", Id),
        req("visit_concept_id", Concept),
        req("visit_start_date", Date),
        skip("visit_start_datetime"),
        req("visit_end_date", Date),
        skip("visit_end_datetime"),
        req("visit_type_concept_id", Concept),
        opt("provider_id", Id),
        opt("care_site_id", Id),
        skip("visit_source_value"),
        opt("visit_source_concept_id", Concept),
        opt("admitting_source_concept_id", Concept),
        skip("admitting_source_value"),
        opt("discharge_to_concept_id", Concept),
        skip("discharge_to_source_value"),
        opt("admitted_from_concept_id", Concept),
        skip("admitted_from_source_value"),
        opt("discharged_to_concept_id", Concept),
        skip("discharged_to_source_value"),
        opt("preceding_visit_occurrence_id", Id),
    ],
};

pub static VISIT_DETAIL: TableSpec = TableSpec {
    name: "visit_detail",
    kind: TableKind::Event,
    required: false,
    event: Some(EventRoles {
        person: "person_id",
        pk: Some("visit_detail_id"),
        concept: Some("visit_detail_concept_id"),
        start: "visit_detail_start_date",
        end: Some("visit_detail_end_date"),
        end_rule: EndRule::Column,
    }),
    columns: &[
        req("visit_detail_id", Id),
        req("person_id", Id),
        req("visit_detail_concept_id", Concept),
        req("visit_detail_start_date", Date),
        skip("visit_detail_start_datetime"),
        req("visit_detail_end_date", Date),
        skip("visit_detail_end_datetime"),
        req("visit_detail_type_concept_id", Concept),
        opt("provider_id", Id),
        opt("care_site_id", Id),
        skip("visit_detail_source_value"),
        opt("visit_detail_source_concept_id", Concept),
        opt("admitting_source_concept_id", Concept),
        skip("admitting_source_value"),
        opt("discharge_to_concept_id", Concept),
        skip("discharge_to_source_value"),
        opt("admitted_from_concept_id", Concept),
        skip("admitted_from_source_value"),
        opt("discharged_to_concept_id", Concept),
        skip("discharged_to_source_value"),
        opt("preceding_visit_detail_id", Id),
        opt("visit_detail_parent_id", Id),
        opt("parent_visit_detail_id", Id),
        req("visit_occurrence_id", Id),
    ],
};

pub static CONDITION_OCCURRENCE: TableSpec = TableSpec {
    name: "condition_occurrence",
    kind: TableKind::Event,
    required: false,
    event: Some(EventRoles {
        person: "person_id",
        pk: Some("condition_occurrence_id"),
        concept: Some("condition_concept_id"),
        start: "condition_start_date",
        end: Some("condition_end_date"),
        end_rule: EndRule::ColumnOrStartPlusOne,
    }),
    columns: &[
        req("condition_occurrence_id", Id),
        req("person_id", Id),
        req("condition_concept_id", Concept),
        req("condition_start_date", Date),
        skip("condition_start_datetime"),
        opt("condition_end_date", Date),
        skip("condition_end_datetime"),
        req("condition_type_concept_id", Concept),
        opt("condition_status_concept_id", Concept),
        opt("stop_reason", Text),
        opt("provider_id", Id),
        opt("visit_occurrence_id", Id),
        opt("visit_detail_id", Id),
        skip("condition_source_value"),
        opt("condition_source_concept_id", Concept),
        skip("condition_status_source_value"),
    ],
};

pub static DRUG_EXPOSURE: TableSpec = TableSpec {
    name: "drug_exposure",
    kind: TableKind::Event,
    required: false,
    event: Some(EventRoles {
        person: "person_id",
        pk: Some("drug_exposure_id"),
        concept: Some("drug_concept_id"),
        start: "drug_exposure_start_date",
        end: Some("drug_exposure_end_date"),
        end_rule: EndRule::ColumnOrDaysSupplyOrStartPlusOne,
    }),
    columns: &[
        req("drug_exposure_id", Id),
        req("person_id", Id),
        req("drug_concept_id", Concept),
        req("drug_exposure_start_date", Date),
        skip("drug_exposure_start_datetime"),
        // NOT NULL in the DDL, but Circe coalesces it, and real exports leave it empty.
        opt("drug_exposure_end_date", Date),
        skip("drug_exposure_end_datetime"),
        opt("verbatim_end_date", Date),
        req("drug_type_concept_id", Concept),
        opt("stop_reason", Text),
        opt("refills", Int),
        opt("quantity", Float),
        opt("days_supply", Int),
        skip("sig"),
        opt("route_concept_id", Concept),
        opt("lot_number", Text),
        opt("provider_id", Id),
        opt("visit_occurrence_id", Id),
        opt("visit_detail_id", Id),
        skip("drug_source_value"),
        opt("drug_source_concept_id", Concept),
        skip("route_source_value"),
        skip("dose_unit_source_value"),
        // CDM 5.2 and earlier; Circe's EffectiveDrugDose/DoseUnit read them where present.
        opt("effective_drug_dose", Float),
        opt("dose_unit_concept_id", Concept),
    ],
};

pub static PROCEDURE_OCCURRENCE: TableSpec = TableSpec {
    name: "procedure_occurrence",
    kind: TableKind::Event,
    required: false,
    event: Some(EventRoles {
        person: "person_id",
        pk: Some("procedure_occurrence_id"),
        concept: Some("procedure_concept_id"),
        start: "procedure_date",
        end: None,
        end_rule: EndRule::StartPlusOne,
    }),
    columns: &[
        req("procedure_occurrence_id", Id),
        req("person_id", Id),
        req("procedure_concept_id", Concept),
        req("procedure_date", Date),
        skip("procedure_datetime"),
        opt("procedure_end_date", Date),
        skip("procedure_end_datetime"),
        req("procedure_type_concept_id", Concept),
        opt("modifier_concept_id", Concept),
        opt("quantity", Float),
        opt("provider_id", Id),
        opt("visit_occurrence_id", Id),
        opt("visit_detail_id", Id),
        skip("procedure_source_value"),
        opt("procedure_source_concept_id", Concept),
        skip("modifier_source_value"),
    ],
};

pub static DEVICE_EXPOSURE: TableSpec = TableSpec {
    name: "device_exposure",
    kind: TableKind::Event,
    required: false,
    event: Some(EventRoles {
        person: "person_id",
        pk: Some("device_exposure_id"),
        concept: Some("device_concept_id"),
        start: "device_exposure_start_date",
        end: Some("device_exposure_end_date"),
        end_rule: EndRule::ColumnOrStartPlusOne,
    }),
    columns: &[
        req("device_exposure_id", Id),
        req("person_id", Id),
        req("device_concept_id", Concept),
        req("device_exposure_start_date", Date),
        skip("device_exposure_start_datetime"),
        opt("device_exposure_end_date", Date),
        skip("device_exposure_end_datetime"),
        req("device_type_concept_id", Concept),
        opt("unique_device_id", Text),
        skip("production_id"),
        opt("quantity", Float),
        opt("provider_id", Id),
        opt("visit_occurrence_id", Id),
        opt("visit_detail_id", Id),
        skip("device_source_value"),
        opt("device_source_concept_id", Concept),
        opt("unit_concept_id", Concept),
        skip("unit_source_value"),
        opt("unit_source_concept_id", Concept),
    ],
};

pub static MEASUREMENT: TableSpec = TableSpec {
    name: "measurement",
    kind: TableKind::Event,
    required: false,
    event: Some(EventRoles {
        person: "person_id",
        pk: Some("measurement_id"),
        concept: Some("measurement_concept_id"),
        start: "measurement_date",
        end: None,
        end_rule: EndRule::StartPlusOne,
    }),
    columns: &[
        req("measurement_id", Id),
        req("person_id", Id),
        req("measurement_concept_id", Concept),
        req("measurement_date", Date),
        skip("measurement_datetime"),
        skip("measurement_time"),
        req("measurement_type_concept_id", Concept),
        opt("operator_concept_id", Concept),
        opt("value_as_number", Float),
        opt("value_as_concept_id", Concept),
        opt("unit_concept_id", Concept),
        opt("range_low", Float),
        opt("range_high", Float),
        opt("provider_id", Id),
        opt("visit_occurrence_id", Id),
        opt("visit_detail_id", Id),
        skip("measurement_source_value"),
        opt("measurement_source_concept_id", Concept),
        skip("unit_source_value"),
        opt("unit_source_concept_id", Concept),
        skip("value_source_value"),
        opt("measurement_event_id", Id),
        opt("meas_event_field_concept_id", Concept),
    ],
};

pub static OBSERVATION: TableSpec = TableSpec {
    name: "observation",
    kind: TableKind::Event,
    required: false,
    event: Some(EventRoles {
        person: "person_id",
        pk: Some("observation_id"),
        concept: Some("observation_concept_id"),
        start: "observation_date",
        end: None,
        end_rule: EndRule::StartPlusOne,
    }),
    columns: &[
        req("observation_id", Id),
        req("person_id", Id),
        req("observation_concept_id", Concept),
        req("observation_date", Date),
        skip("observation_datetime"),
        req("observation_type_concept_id", Concept),
        opt("value_as_number", Float),
        opt("value_as_string", Text),
        opt("value_as_concept_id", Concept),
        opt("qualifier_concept_id", Concept),
        opt("unit_concept_id", Concept),
        opt("provider_id", Id),
        opt("visit_occurrence_id", Id),
        opt("visit_detail_id", Id),
        skip("observation_source_value"),
        opt("observation_source_concept_id", Concept),
        skip("unit_source_value"),
        skip("qualifier_source_value"),
        skip("value_source_value"),
        opt("observation_event_id", Id),
        opt("obs_event_field_concept_id", Concept),
    ],
};

pub static DEATH: TableSpec = TableSpec {
    name: "death",
    kind: TableKind::Event,
    required: false,
    event: Some(EventRoles {
        person: "person_id",
        pk: None,
        concept: Some("cause_concept_id"),
        start: "death_date",
        end: None,
        end_rule: EndRule::StartPlusOne,
    }),
    columns: &[
        req("person_id", Id),
        req("death_date", Date),
        skip("death_datetime"),
        opt("death_type_concept_id", Concept),
        opt("cause_concept_id", Concept),
        skip("cause_source_value"),
        opt("cause_source_concept_id", Concept),
    ],
};

pub static SPECIMEN: TableSpec = TableSpec {
    name: "specimen",
    kind: TableKind::Event,
    required: false,
    event: Some(EventRoles {
        person: "person_id",
        pk: Some("specimen_id"),
        concept: Some("specimen_concept_id"),
        start: "specimen_date",
        end: None,
        end_rule: EndRule::StartPlusOne,
    }),
    columns: &[
        req("specimen_id", Id),
        req("person_id", Id),
        req("specimen_concept_id", Concept),
        req("specimen_type_concept_id", Concept),
        req("specimen_date", Date),
        skip("specimen_datetime"),
        opt("quantity", Float),
        opt("unit_concept_id", Concept),
        opt("anatomic_site_concept_id", Concept),
        opt("disease_status_concept_id", Concept),
        opt("specimen_source_id", Text),
        skip("specimen_source_value"),
        skip("unit_source_value"),
        skip("anatomic_site_source_value"),
        skip("disease_status_source_value"),
    ],
};

pub static CONDITION_ERA: TableSpec = TableSpec {
    name: "condition_era",
    kind: TableKind::Event,
    required: false,
    event: Some(EventRoles {
        person: "person_id",
        pk: Some("condition_era_id"),
        concept: Some("condition_concept_id"),
        start: "condition_era_start_date",
        end: Some("condition_era_end_date"),
        end_rule: EndRule::Column,
    }),
    columns: &[
        req("condition_era_id", Id),
        req("person_id", Id),
        req("condition_concept_id", Concept),
        req("condition_era_start_date", Date),
        req("condition_era_end_date", Date),
        opt("condition_occurrence_count", Int),
    ],
};

pub static DRUG_ERA: TableSpec = TableSpec {
    name: "drug_era",
    kind: TableKind::Event,
    required: false,
    event: Some(EventRoles {
        person: "person_id",
        pk: Some("drug_era_id"),
        concept: Some("drug_concept_id"),
        start: "drug_era_start_date",
        end: Some("drug_era_end_date"),
        end_rule: EndRule::Column,
    }),
    columns: &[
        req("drug_era_id", Id),
        req("person_id", Id),
        req("drug_concept_id", Concept),
        req("drug_era_start_date", Date),
        req("drug_era_end_date", Date),
        opt("drug_exposure_count", Int),
        opt("gap_days", Int),
    ],
};

pub static DOSE_ERA: TableSpec = TableSpec {
    name: "dose_era",
    kind: TableKind::Event,
    required: false,
    event: Some(EventRoles {
        person: "person_id",
        pk: Some("dose_era_id"),
        concept: Some("drug_concept_id"),
        start: "dose_era_start_date",
        end: Some("dose_era_end_date"),
        end_rule: EndRule::Column,
    }),
    columns: &[
        req("dose_era_id", Id),
        req("person_id", Id),
        req("drug_concept_id", Concept),
        req("unit_concept_id", Concept),
        req("dose_value", Float),
        req("dose_era_start_date", Date),
        req("dose_era_end_date", Date),
    ],
};

pub static PAYER_PLAN_PERIOD: TableSpec = TableSpec {
    name: "payer_plan_period",
    kind: TableKind::Event,
    required: false,
    event: Some(EventRoles {
        person: "person_id",
        pk: Some("payer_plan_period_id"),
        concept: None,
        start: "payer_plan_period_start_date",
        end: Some("payer_plan_period_end_date"),
        end_rule: EndRule::Column,
    }),
    columns: &[
        req("payer_plan_period_id", Id),
        req("person_id", Id),
        req("payer_plan_period_start_date", Date),
        req("payer_plan_period_end_date", Date),
        opt("payer_concept_id", Concept),
        skip("payer_source_value"),
        opt("payer_source_concept_id", Concept),
        opt("plan_concept_id", Concept),
        skip("plan_source_value"),
        opt("plan_source_concept_id", Concept),
        opt("sponsor_concept_id", Concept),
        skip("sponsor_source_value"),
        opt("sponsor_source_concept_id", Concept),
        skip("family_source_value"),
        opt("stop_reason_concept_id", Concept),
        skip("stop_reason_source_value"),
        opt("stop_reason_source_concept_id", Concept),
    ],
};

pub static LOCATION_HISTORY: TableSpec = TableSpec {
    name: "location_history",
    kind: TableKind::Event,
    required: false,
    event: Some(EventRoles {
        person: "entity_id",
        pk: Some("location_history_id"),
        concept: None,
        start: "start_date",
        end: Some("end_date"),
        end_rule: EndRule::ColumnOr2099,
    }),
    columns: &[
        req("location_history_id", Id),
        req("location_id", Id),
        opt("relationship_type_concept_id", Concept),
        req("domain_id", Text),
        req("entity_id", Id),
        req("start_date", Date),
        opt("end_date", Date),
    ],
};

pub static LOCATION: TableSpec = TableSpec {
    name: "location",
    kind: TableKind::Reference,
    required: false,
    event: None,
    columns: &[
        req("location_id", Id),
        skip("address_1"),
        skip("address_2"),
        skip("city"),
        opt("state", Text),
        skip("zip"),
        skip("county"),
        skip("location_source_value"),
        opt("country_concept_id", Concept),
        skip("country_source_value"),
        opt("latitude", Float),
        opt("longitude", Float),
        // Not in CDM 5.3/5.4 DDL, but Circe's LocationRegion criterion reads it.
        opt("region_concept_id", Concept),
    ],
};

pub static CARE_SITE: TableSpec = TableSpec {
    name: "care_site",
    kind: TableKind::Reference,
    required: false,
    event: None,
    columns: &[
        req("care_site_id", Id),
        skip("care_site_name"),
        opt("place_of_service_concept_id", Concept),
        opt("location_id", Id),
        skip("care_site_source_value"),
        skip("place_of_service_source_value"),
    ],
};

pub static PROVIDER: TableSpec = TableSpec {
    name: "provider",
    kind: TableKind::Reference,
    required: false,
    event: None,
    columns: &[
        req("provider_id", Id),
        skip("provider_name"),
        skip("npi"),
        skip("dea"),
        opt("specialty_concept_id", Concept),
        opt("care_site_id", Id),
        opt("year_of_birth", Int),
        opt("gender_concept_id", Concept),
        skip("provider_source_value"),
        skip("specialty_source_value"),
        opt("specialty_source_concept_id", Concept),
        skip("gender_source_value"),
        opt("gender_source_concept_id", Concept),
    ],
};

pub static CONCEPT: TableSpec = TableSpec {
    name: "concept",
    kind: TableKind::Vocabulary,
    required: false,
    event: None,
    columns: &[
        req("concept_id", Concept),
        req("concept_name", Text),
        req("domain_id", Text),
        req("vocabulary_id", Text),
        req("concept_class_id", Text),
        opt("standard_concept", Text),
        req("concept_code", Text),
        skip("valid_start_date"),
        skip("valid_end_date"),
        opt("invalid_reason", Text),
    ],
};

pub static CONCEPT_ANCESTOR: TableSpec = TableSpec {
    name: "concept_ancestor",
    kind: TableKind::Vocabulary,
    required: false,
    event: None,
    columns: &[
        req("ancestor_concept_id", Concept),
        req("descendant_concept_id", Concept),
        opt("min_levels_of_separation", Int),
        skip("max_levels_of_separation"),
    ],
};

pub static CONCEPT_RELATIONSHIP: TableSpec = TableSpec {
    name: "concept_relationship",
    kind: TableKind::Vocabulary,
    required: false,
    event: None,
    columns: &[
        req("concept_id_1", Concept),
        req("concept_id_2", Concept),
        req("relationship_id", Text),
        skip("valid_start_date"),
        skip("valid_end_date"),
        opt("invalid_reason", Text),
    ],
};

/// Every table Qiao ingests, in ingest order (person first: the person index is built from it).
pub static TABLES: &[&TableSpec] = &[
    &PERSON,
    &OBSERVATION_PERIOD,
    &VISIT_OCCURRENCE,
    &VISIT_DETAIL,
    &CONDITION_OCCURRENCE,
    &DRUG_EXPOSURE,
    &PROCEDURE_OCCURRENCE,
    &DEVICE_EXPOSURE,
    &MEASUREMENT,
    &OBSERVATION,
    &DEATH,
    &SPECIMEN,
    &CONDITION_ERA,
    &DRUG_ERA,
    &DOSE_ERA,
    &PAYER_PLAN_PERIOD,
    &LOCATION,
    &LOCATION_HISTORY,
    &CARE_SITE,
    &PROVIDER,
    &CONCEPT,
    &CONCEPT_ANCESTOR,
    &CONCEPT_RELATIONSHIP,
];

/// `column` of `table`, checked in a constant's evaluation: a column the schema does not have or
/// does not store fails the build (`const C: &str = stored(&DRUG_EXPOSURE, "days_supply")`), so
/// code naming CDM columns by hand cannot misspell one into a column of NULLs.
pub const fn stored(table: &'static TableSpec, column: &'static str) -> &'static str {
    let mut i = 0;
    while i < table.columns.len() {
        let c = &table.columns[i];
        if same_str(c.name, column) && !matches!(c.ty, ColType::Skip) {
            return c.name;
        }
        i += 1;
    }
    panic!("a column named in code is not stored by qiao_cdm's schema");
}

const fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The table spec for a (case-insensitive) table name.
pub fn table(name: &str) -> Option<&'static TableSpec> {
    TABLES
        .iter()
        .copied()
        .find(|t| t.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_role_names_a_kept_column() {
        for t in TABLES {
            if let Some(ev) = &t.event {
                let names = [Some(ev.person), ev.pk, ev.concept, Some(ev.start), ev.end];
                for n in names.into_iter().flatten() {
                    let c = t
                        .column(n)
                        .unwrap_or_else(|| panic!("{}.{n} missing", t.name));
                    assert!(c.is_kept(), "{}.{n} must be kept", t.name);
                }
                assert_eq!(t.kind, TableKind::Event);
            }
        }
    }

    #[test]
    fn column_names_are_unique_and_lower_case() {
        for t in TABLES {
            for (i, c) in t.columns.iter().enumerate() {
                assert_eq!(c.name, c.name.to_ascii_lowercase());
                assert!(
                    t.columns[..i].iter().all(|d| d.name != c.name),
                    "{}.{}",
                    t.name,
                    c.name
                );
            }
        }
    }

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(table("PERSON").unwrap().name, "person");
        assert!(table("cost").is_none());
    }
}
