//! Serde types for the Circe `CohortExpression` JSON (as ATLAS exports it).
//!
//! Property names follow circe-be: PascalCase for the cohort model, camelCase for concept-set items,
//! UPPER_SNAKE for `Concept`. Every struct denies unknown fields; purely informational keys that real
//! ATLAS exports carry are listed explicitly as ignored fields (the allow-list).

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

/// An informational key that Circe ignores (kept out of the model on purpose).
pub type Info = Option<IgnoredAny>;

/// `null` and absent both become the default (Circe treats a null list like an empty one where it
/// can, e.g. `CensoringCriteria`).
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortExpression {
    #[serde(rename = "cdmVersionRange", default)]
    pub cdm_version_range: Option<String>,
    #[serde(rename = "Title", default)]
    pub title: Option<String>,
    #[serde(rename = "ConceptSets", default, deserialize_with = "null_default")]
    pub concept_sets: Vec<ConceptSet>,
    #[serde(rename = "PrimaryCriteria", default)]
    pub primary_criteria: Option<PrimaryCriteria>,
    #[serde(rename = "AdditionalCriteria", default)]
    pub additional_criteria: Option<CriteriaGroup>,
    #[serde(rename = "QualifiedLimit", default)]
    pub qualified_limit: Option<ResultLimit>,
    #[serde(rename = "ExpressionLimit", default)]
    pub expression_limit: Option<ResultLimit>,
    #[serde(rename = "InclusionRules", default, deserialize_with = "null_default")]
    pub inclusion_rules: Vec<InclusionRule>,
    #[serde(rename = "EndStrategy", default)]
    pub end_strategy: Option<EndStrategy>,
    #[serde(
        rename = "CensoringCriteria",
        default,
        deserialize_with = "null_default"
    )]
    pub censoring_criteria: Vec<Criteria>,
    #[serde(rename = "CollapseSettings", default)]
    pub collapse_settings: Option<CollapseSettings>,
    #[serde(rename = "CensorWindow", default)]
    pub censor_window: Option<Period>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConceptSet {
    pub id: i32,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub expression: Option<ConceptSetExpression>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConceptSetExpression {
    #[serde(default, deserialize_with = "null_default")]
    pub items: Vec<ConceptSetItem>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConceptSetItem {
    pub concept: Concept,
    #[serde(rename = "isExcluded", default, deserialize_with = "null_default")]
    pub is_excluded: bool,
    #[serde(
        rename = "includeDescendants",
        default,
        deserialize_with = "null_default"
    )]
    pub include_descendants: bool,
    #[serde(rename = "includeMapped", default, deserialize_with = "null_default")]
    pub include_mapped: bool,
}

/// A vocabulary concept as ATLAS embeds it. Only `CONCEPT_ID` matters to the engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concept {
    #[serde(rename = "CONCEPT_ID", default)]
    pub concept_id: Option<i64>,
    #[serde(rename = "CONCEPT_NAME", default)]
    pub concept_name: Option<String>,
    #[serde(rename = "STANDARD_CONCEPT", default)]
    pub standard_concept: Option<String>,
    #[serde(rename = "INVALID_REASON", default)]
    pub invalid_reason: Option<String>,
    #[serde(rename = "CONCEPT_CODE", default)]
    pub concept_code: Option<String>,
    #[serde(rename = "DOMAIN_ID", default)]
    pub domain_id: Option<String>,
    #[serde(rename = "VOCABULARY_ID", default)]
    pub vocabulary_id: Option<String>,
    #[serde(rename = "CONCEPT_CLASS_ID", default)]
    pub concept_class_id: Option<String>,
    // Informational keys (allow-list): captions computed by ATLAS and vocabulary metadata.
    #[serde(rename = "STANDARD_CONCEPT_CAPTION", default)]
    pub _standard_concept_caption: Info,
    #[serde(rename = "INVALID_REASON_CAPTION", default)]
    pub _invalid_reason_caption: Info,
    #[serde(rename = "VALID_START_DATE", default)]
    pub _valid_start_date: Info,
    #[serde(rename = "VALID_END_DATE", default)]
    pub _valid_end_date: Info,
    #[serde(rename = "RECORD_COUNT", default)]
    pub _record_count: Info,
    #[serde(rename = "DESCENDANT_RECORD_COUNT", default)]
    pub _descendant_record_count: Info,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrimaryCriteria {
    #[serde(rename = "CriteriaList", default, deserialize_with = "null_default")]
    pub criteria_list: Vec<Criteria>,
    #[serde(rename = "ObservationWindow", default)]
    pub observation_window: Option<ObservationFilter>,
    #[serde(rename = "PrimaryCriteriaLimit", default)]
    pub primary_limit: Option<ResultLimit>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservationFilter {
    #[serde(rename = "PriorDays", default, deserialize_with = "null_default")]
    pub prior_days: i32,
    #[serde(rename = "PostDays", default, deserialize_with = "null_default")]
    pub post_days: i32,
}

/// `First` / `Last` / `All`, compared case-insensitively (as circe-be does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitType {
    First,
    Last,
    All,
}

impl<'de> Deserialize<'de> for LimitType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.to_ascii_lowercase().as_str() {
            "first" => Ok(LimitType::First),
            "last" => Ok(LimitType::Last),
            "all" => Ok(LimitType::All),
            _ => Err(serde::de::Error::custom(format!(
                "unknown limit type {s:?} (expected First, Last or All)"
            ))),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultLimit {
    /// Circe's default is "First".
    #[serde(rename = "Type", default)]
    pub limit_type: Option<LimitType>,
}

impl ResultLimit {
    pub fn kind(limit: &Option<ResultLimit>) -> LimitType {
        limit
            .as_ref()
            .and_then(|l| l.limit_type)
            .unwrap_or(LimitType::First)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionRule {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub expression: Option<CriteriaGroup>,
}

#[derive(Debug, Clone, Deserialize)]
pub enum EndStrategy {
    DateOffset(DateOffsetStrategy),
    CustomEra(CustomEraStrategy),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum DateField {
    StartDate,
    EndDate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateOffsetStrategy {
    #[serde(rename = "DateField", default)]
    pub date_field: Option<DateField>,
    #[serde(rename = "Offset", default, deserialize_with = "null_default")]
    pub offset: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomEraStrategy {
    #[serde(rename = "DrugCodesetId", default)]
    pub drug_codeset_id: Option<i32>,
    #[serde(rename = "GapDays", default, deserialize_with = "null_default")]
    pub gap_days: i32,
    #[serde(rename = "Offset", default, deserialize_with = "null_default")]
    pub offset: i32,
    #[serde(rename = "DaysSupplyOverride", default)]
    pub days_supply_override: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum CollapseType {
    #[serde(rename = "ERA")]
    Era,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollapseSettings {
    #[serde(rename = "CollapseType", default)]
    pub collapse_type: Option<CollapseType>,
    #[serde(rename = "EraPad", default, deserialize_with = "null_default")]
    pub era_pad: i32,
}

/// A fixed period: ISO dates, either optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    #[serde(rename = "StartDate", default)]
    pub start_date: Option<String>,
    #[serde(rename = "EndDate", default)]
    pub end_date: Option<String>,
}

/// `ALL` / `ANY` / `AT_LEAST` / `AT_MOST` (case-insensitive, as circe-be compares them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupType {
    All,
    Any,
    AtLeast,
    AtMost,
}

impl<'de> Deserialize<'de> for GroupType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.to_ascii_uppercase().as_str() {
            "ALL" => Ok(GroupType::All),
            "ANY" => Ok(GroupType::Any),
            "AT_LEAST" => Ok(GroupType::AtLeast),
            "AT_MOST" => Ok(GroupType::AtMost),
            _ => Err(serde::de::Error::custom(format!(
                "unknown criteria group type {s:?} (expected ALL, ANY, AT_LEAST or AT_MOST)"
            ))),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CriteriaGroup {
    #[serde(rename = "Type", default)]
    pub group_type: Option<GroupType>,
    #[serde(rename = "Count", default)]
    pub count: Option<i32>,
    #[serde(rename = "CriteriaList", default, deserialize_with = "null_default")]
    pub criteria_list: Vec<CorelatedCriteria>,
    #[serde(
        rename = "DemographicCriteriaList",
        default,
        deserialize_with = "null_default"
    )]
    pub demographic_criteria_list: Vec<DemographicCriteria>,
    #[serde(rename = "Groups", default, deserialize_with = "null_default")]
    pub groups: Vec<CriteriaGroup>,
}

impl CriteriaGroup {
    pub fn is_empty(&self) -> bool {
        self.criteria_list.is_empty()
            && self.demographic_criteria_list.is_empty()
            && self.groups.is_empty()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorelatedCriteria {
    #[serde(rename = "Criteria", default)]
    pub criteria: Option<Criteria>,
    #[serde(rename = "StartWindow", default)]
    pub start_window: Option<Window>,
    #[serde(rename = "EndWindow", default)]
    pub end_window: Option<Window>,
    #[serde(rename = "RestrictVisit", default, deserialize_with = "null_default")]
    pub restrict_visit: bool,
    #[serde(
        rename = "IgnoreObservationPeriod",
        default,
        deserialize_with = "null_default"
    )]
    pub ignore_observation_period: bool,
    #[serde(rename = "Occurrence", default)]
    pub occurrence: Option<Occurrence>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    #[serde(rename = "Start", default)]
    pub start: Option<Endpoint>,
    #[serde(rename = "End", default)]
    pub end: Option<Endpoint>,
    #[serde(rename = "UseIndexEnd", default)]
    pub use_index_end: Option<bool>,
    #[serde(rename = "UseEventEnd", default)]
    pub use_event_end: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    #[serde(rename = "Days", default)]
    pub days: Option<i32>,
    #[serde(rename = "Coeff", default, deserialize_with = "null_default")]
    pub coeff: i32,
}

/// Occurrence type: 0 exactly, 1 at most, 2 at least.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Occurrence {
    #[serde(rename = "Type", default, deserialize_with = "null_default")]
    pub occurrence_type: i32,
    #[serde(rename = "Count", default)]
    pub count: Option<i32>,
    #[serde(rename = "IsDistinct", default, deserialize_with = "null_default")]
    pub is_distinct: bool,
    #[serde(rename = "CountColumn", default)]
    pub count_column: Option<CriteriaColumn>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[allow(non_camel_case_types)]
#[allow(clippy::upper_case_acronyms)]
pub enum CriteriaColumn {
    DAYS_SUPPLY,
    DOMAIN_CONCEPT,
    DOMAIN_SOURCE_CONCEPT,
    DURATION,
    END_DATE,
    ERA_OCCURRENCES,
    GAP_DAYS,
    QUANTITY,
    RANGE_HIGH,
    RANGE_LOW,
    REFILLS,
    START_DATE,
    UNIT,
    VALUE_AS_NUMBER,
    VISIT_ID,
    VISIT_DETAIL_ID,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemographicCriteria {
    #[serde(rename = "Age", default)]
    pub age: Option<NumericRange>,
    #[serde(rename = "Gender", default)]
    pub gender: Option<Vec<Concept>>,
    #[serde(rename = "GenderCS", default)]
    pub gender_cs: Option<ConceptSetSelection>,
    #[serde(rename = "Race", default)]
    pub race: Option<Vec<Concept>>,
    #[serde(rename = "RaceCS", default)]
    pub race_cs: Option<ConceptSetSelection>,
    #[serde(rename = "Ethnicity", default)]
    pub ethnicity: Option<Vec<Concept>>,
    #[serde(rename = "EthnicityCS", default)]
    pub ethnicity_cs: Option<ConceptSetSelection>,
    #[serde(rename = "OccurrenceStartDate", default)]
    pub occurrence_start_date: Option<DateRange>,
    #[serde(rename = "OccurrenceEndDate", default)]
    pub occurrence_end_date: Option<DateRange>,
}

/// Comparison operators of `NumericRange` / `DateRange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    Lt,
    Lte,
    Eq,
    NotEq,
    Gt,
    Gte,
    Bt,
    NotBt,
}

impl RangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            RangeOp::Lt => "lt",
            RangeOp::Lte => "lte",
            RangeOp::Eq => "eq",
            RangeOp::NotEq => "!eq",
            RangeOp::Gt => "gt",
            RangeOp::Gte => "gte",
            RangeOp::Bt => "bt",
            RangeOp::NotBt => "!bt",
        }
    }
    pub fn is_between(self) -> bool {
        matches!(self, RangeOp::Bt | RangeOp::NotBt)
    }
}

impl<'de> Deserialize<'de> for RangeOp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "lt" => RangeOp::Lt,
            "lte" => RangeOp::Lte,
            "eq" => RangeOp::Eq,
            "!eq" => RangeOp::NotEq,
            "gt" => RangeOp::Gt,
            "gte" => RangeOp::Gte,
            "bt" => RangeOp::Bt,
            "!bt" => RangeOp::NotBt,
            _ => return Err(serde::de::Error::custom(format!("unknown operator {s:?}"))),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericRange {
    #[serde(rename = "Value", default)]
    pub value: Option<f64>,
    #[serde(rename = "Op", default)]
    pub op: Option<RangeOp>,
    #[serde(rename = "Extent", default)]
    pub extent: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateRange {
    #[serde(rename = "Value", default)]
    pub value: Option<String>,
    #[serde(rename = "Op", default)]
    pub op: Option<RangeOp>,
    #[serde(rename = "Extent", default)]
    pub extent: Option<String>,
}

/// `LIKE` operators of a `TextFilter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOp {
    StartsWith,
    Contains,
    EndsWith,
    NotStartsWith,
    NotContains,
    NotEndsWith,
}

impl TextOp {
    pub fn as_str(self) -> &'static str {
        match self {
            TextOp::StartsWith => "startsWith",
            TextOp::Contains => "contains",
            TextOp::EndsWith => "endsWith",
            TextOp::NotStartsWith => "!startsWith",
            TextOp::NotContains => "!contains",
            TextOp::NotEndsWith => "!endsWith",
        }
    }
}

impl<'de> Deserialize<'de> for TextOp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "startsWith" => TextOp::StartsWith,
            "contains" => TextOp::Contains,
            "endsWith" => TextOp::EndsWith,
            "!startsWith" => TextOp::NotStartsWith,
            "!contains" => TextOp::NotContains,
            "!endsWith" => TextOp::NotEndsWith,
            _ => {
                return Err(serde::de::Error::custom(format!(
                    "unknown text operator {s:?}"
                )))
            }
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextFilter {
    #[serde(rename = "Text", default)]
    pub text: Option<String>,
    #[serde(rename = "Op", default)]
    pub op: Option<TextOp>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConceptSetSelection {
    #[serde(rename = "CodesetId", default)]
    pub codeset_id: Option<i32>,
    #[serde(rename = "IsExclusion", default, deserialize_with = "null_default")]
    pub is_exclusion: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum DateType {
    #[serde(rename = "START_DATE")]
    StartDate,
    #[serde(rename = "END_DATE")]
    EndDate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateAdjustment {
    #[serde(rename = "StartWith", default)]
    pub start_with: Option<DateType>,
    #[serde(rename = "StartOffset", default, deserialize_with = "null_default")]
    pub start_offset: i32,
    #[serde(rename = "EndWith", default)]
    pub end_with: Option<DateType>,
    #[serde(rename = "EndOffset", default, deserialize_with = "null_default")]
    pub end_offset: i32,
}

/// A domain criteria: a wrapper object naming its type, e.g. `{"ConditionOccurrence": {...}}`.
#[derive(Debug, Clone, Deserialize)]
pub enum Criteria {
    ConditionEra(ConditionEra),
    ConditionOccurrence(ConditionOccurrence),
    Death(Death),
    DeviceExposure(DeviceExposure),
    DoseEra(DoseEra),
    DrugEra(DrugEra),
    DrugExposure(DrugExposure),
    LocationRegion(LocationRegion),
    Measurement(Measurement),
    Observation(Observation),
    ObservationPeriod(ObservationPeriod),
    ProcedureOccurrence(ProcedureOccurrence),
    Specimen(Specimen),
    VisitOccurrence(VisitOccurrence),
    VisitDetail(VisitDetail),
    PayerPlanPeriod(PayerPlanPeriod),
}

impl Criteria {
    pub fn name(&self) -> &'static str {
        match self {
            Criteria::ConditionEra(_) => "ConditionEra",
            Criteria::ConditionOccurrence(_) => "ConditionOccurrence",
            Criteria::Death(_) => "Death",
            Criteria::DeviceExposure(_) => "DeviceExposure",
            Criteria::DoseEra(_) => "DoseEra",
            Criteria::DrugEra(_) => "DrugEra",
            Criteria::DrugExposure(_) => "DrugExposure",
            Criteria::LocationRegion(_) => "LocationRegion",
            Criteria::Measurement(_) => "Measurement",
            Criteria::Observation(_) => "Observation",
            Criteria::ObservationPeriod(_) => "ObservationPeriod",
            Criteria::ProcedureOccurrence(_) => "ProcedureOccurrence",
            Criteria::Specimen(_) => "Specimen",
            Criteria::VisitOccurrence(_) => "VisitOccurrence",
            Criteria::VisitDetail(_) => "VisitDetail",
            Criteria::PayerPlanPeriod(_) => "PayerPlanPeriod",
        }
    }

    /// The attributes set in this criteria (JSON name, value), in declaration order.
    pub fn attributes(&self) -> Vec<(&'static str, Attr<'_>)> {
        macro_rules! a {
            ($($v:ident),*) => {
                match self { $(Criteria::$v(x) => x.attributes(),)* }
            };
        }
        a!(
            ConditionEra,
            ConditionOccurrence,
            Death,
            DeviceExposure,
            DoseEra,
            DrugEra,
            DrugExposure,
            LocationRegion,
            Measurement,
            Observation,
            ObservationPeriod,
            ProcedureOccurrence,
            Specimen,
            VisitOccurrence,
            VisitDetail,
            PayerPlanPeriod
        )
    }

    /// The JSON names of every attribute of every criteria type.
    pub fn all_attribute_names() -> impl Iterator<Item = &'static str> {
        [
            ConditionEra::ATTRIBUTES,
            ConditionOccurrence::ATTRIBUTES,
            Death::ATTRIBUTES,
            DeviceExposure::ATTRIBUTES,
            DoseEra::ATTRIBUTES,
            DrugEra::ATTRIBUTES,
            DrugExposure::ATTRIBUTES,
            LocationRegion::ATTRIBUTES,
            Measurement::ATTRIBUTES,
            Observation::ATTRIBUTES,
            ObservationPeriod::ATTRIBUTES,
            ProcedureOccurrence::ATTRIBUTES,
            Specimen::ATTRIBUTES,
            VisitOccurrence::ATTRIBUTES,
            VisitDetail::ATTRIBUTES,
            PayerPlanPeriod::ATTRIBUTES,
        ]
        .into_iter()
        .flatten()
        .copied()
    }

    /// The nested correlated criteria and date adjustment every criteria type accepts.
    pub fn common(&self) -> (&Option<CriteriaGroup>, &Option<DateAdjustment>) {
        macro_rules! c {
            ($x:expr) => {
                (&$x.correlated_criteria, &$x.date_adjustment)
            };
        }
        match self {
            Criteria::ConditionEra(x) => c!(x),
            Criteria::ConditionOccurrence(x) => c!(x),
            Criteria::Death(x) => c!(x),
            Criteria::DeviceExposure(x) => c!(x),
            Criteria::DoseEra(x) => c!(x),
            Criteria::DrugEra(x) => c!(x),
            Criteria::DrugExposure(x) => c!(x),
            Criteria::LocationRegion(x) => c!(x),
            Criteria::Measurement(x) => c!(x),
            Criteria::Observation(x) => c!(x),
            Criteria::ObservationPeriod(x) => c!(x),
            Criteria::ProcedureOccurrence(x) => c!(x),
            Criteria::Specimen(x) => c!(x),
            Criteria::VisitOccurrence(x) => c!(x),
            Criteria::VisitDetail(x) => c!(x),
            Criteria::PayerPlanPeriod(x) => c!(x),
        }
    }
}

/// One attribute of a domain criteria as it is set in a definition, by kind (what a reader of the
/// definition needs to describe it; see [`Criteria::attributes`]).
#[derive(Debug, Clone, Copy)]
pub enum Attr<'a> {
    /// A concept set id (`CodesetId`, `…SourceConcept`, `PlaceOfServiceLocation`, payer concepts).
    Codeset(i32),
    /// A flag (`First`, `…Exclude`, `Abnormal`).
    Flag(bool),
    Number(&'a NumericRange),
    Date(&'a DateRange),
    Concepts(&'a [Concept]),
    ConceptSet(&'a ConceptSetSelection),
    Text(&'a TextFilter),
    Period(&'a Period),
}

/// The attribute kinds a criteria field can hold ([`Attr`]), `None` when the field is not set.
pub trait AsAttr {
    fn as_attr(&self) -> Option<Attr<'_>>;
}

impl AsAttr for Option<i32> {
    fn as_attr(&self) -> Option<Attr<'_>> {
        self.map(Attr::Codeset)
    }
}
impl AsAttr for Option<bool> {
    fn as_attr(&self) -> Option<Attr<'_>> {
        self.map(Attr::Flag)
    }
}
impl AsAttr for Option<NumericRange> {
    fn as_attr(&self) -> Option<Attr<'_>> {
        self.as_ref().map(Attr::Number)
    }
}
impl AsAttr for Option<DateRange> {
    fn as_attr(&self) -> Option<Attr<'_>> {
        self.as_ref().map(Attr::Date)
    }
}
impl AsAttr for Option<Vec<Concept>> {
    fn as_attr(&self) -> Option<Attr<'_>> {
        self.as_deref().map(Attr::Concepts)
    }
}
impl AsAttr for Option<ConceptSetSelection> {
    fn as_attr(&self) -> Option<Attr<'_>> {
        self.as_ref().map(Attr::ConceptSet)
    }
}
impl AsAttr for Option<TextFilter> {
    fn as_attr(&self) -> Option<Attr<'_>> {
        self.as_ref().map(Attr::Text)
    }
}
impl AsAttr for Option<Period> {
    fn as_attr(&self) -> Option<Attr<'_>> {
        self.as_ref().map(Attr::Period)
    }
}

/// Declares a domain criteria struct: the common `CorrelatedCriteria` / `DateAdjustment` fields plus
/// the listed attributes (`JSON name => field: type`), with `ATTRIBUTES` (every attribute's JSON
/// name) and `attributes()` (those set, in declaration order).
macro_rules! criteria_struct {
    ($name:ident { $($json:literal => $field:ident : $ty:ty),* $(,)? }) => {
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            #[serde(rename = "CorrelatedCriteria", default)]
            pub correlated_criteria: Option<CriteriaGroup>,
            #[serde(rename = "DateAdjustment", default)]
            pub date_adjustment: Option<DateAdjustment>,
            $(
                #[serde(rename = $json, default)]
                pub $field: $ty,
            )*
        }

        impl $name {
            /// The JSON names of every attribute this criteria type accepts.
            pub const ATTRIBUTES: &'static [&'static str] = &[$($json),*];

            /// The attributes set in this criteria: (JSON name, value), in declaration order.
            pub fn attributes(&self) -> Vec<(&'static str, Attr<'_>)> {
                let mut out = Vec::new();
                $(
                    if let Some(a) = AsAttr::as_attr(&self.$field) {
                        out.push(($json, a));
                    }
                )*
                out
            }
        }
    };
}

criteria_struct!(ConditionOccurrence {
    "CodesetId" => codeset_id: Option<i32>,
    "First" => first: Option<bool>,
    "OccurrenceStartDate" => occurrence_start_date: Option<DateRange>,
    "OccurrenceEndDate" => occurrence_end_date: Option<DateRange>,
    "ConditionType" => condition_type: Option<Vec<Concept>>,
    "ConditionTypeCS" => condition_type_cs: Option<ConceptSetSelection>,
    "ConditionTypeExclude" => condition_type_exclude: Option<bool>,
    "StopReason" => stop_reason: Option<TextFilter>,
    "ConditionSourceConcept" => condition_source_concept: Option<i32>,
    "Age" => age: Option<NumericRange>,
    "Gender" => gender: Option<Vec<Concept>>,
    "GenderCS" => gender_cs: Option<ConceptSetSelection>,
    "ProviderSpecialty" => provider_specialty: Option<Vec<Concept>>,
    "ProviderSpecialtyCS" => provider_specialty_cs: Option<ConceptSetSelection>,
    "VisitType" => visit_type: Option<Vec<Concept>>,
    "VisitTypeCS" => visit_type_cs: Option<ConceptSetSelection>,
    "ConditionStatus" => condition_status: Option<Vec<Concept>>,
    "ConditionStatusCS" => condition_status_cs: Option<ConceptSetSelection>,
});

criteria_struct!(DrugExposure {
    "CodesetId" => codeset_id: Option<i32>,
    "First" => first: Option<bool>,
    "OccurrenceStartDate" => occurrence_start_date: Option<DateRange>,
    "OccurrenceEndDate" => occurrence_end_date: Option<DateRange>,
    "DrugType" => drug_type: Option<Vec<Concept>>,
    "DrugTypeCS" => drug_type_cs: Option<ConceptSetSelection>,
    "DrugTypeExclude" => drug_type_exclude: Option<bool>,
    "StopReason" => stop_reason: Option<TextFilter>,
    "Refills" => refills: Option<NumericRange>,
    "Quantity" => quantity: Option<NumericRange>,
    "DaysSupply" => days_supply: Option<NumericRange>,
    "RouteConcept" => route_concept: Option<Vec<Concept>>,
    "RouteConceptCS" => route_concept_cs: Option<ConceptSetSelection>,
    "EffectiveDrugDose" => effective_drug_dose: Option<NumericRange>,
    "DoseUnit" => dose_unit: Option<Vec<Concept>>,
    "DoseUnitCS" => dose_unit_cs: Option<ConceptSetSelection>,
    "LotNumber" => lot_number: Option<TextFilter>,
    "DrugSourceConcept" => drug_source_concept: Option<i32>,
    "Age" => age: Option<NumericRange>,
    "Gender" => gender: Option<Vec<Concept>>,
    "GenderCS" => gender_cs: Option<ConceptSetSelection>,
    "ProviderSpecialty" => provider_specialty: Option<Vec<Concept>>,
    "ProviderSpecialtyCS" => provider_specialty_cs: Option<ConceptSetSelection>,
    "VisitType" => visit_type: Option<Vec<Concept>>,
    "VisitTypeCS" => visit_type_cs: Option<ConceptSetSelection>,
});

criteria_struct!(DrugEra {
    "CodesetId" => codeset_id: Option<i32>,
    "First" => first: Option<bool>,
    "EraStartDate" => era_start_date: Option<DateRange>,
    "EraEndDate" => era_end_date: Option<DateRange>,
    "OccurrenceCount" => occurrence_count: Option<NumericRange>,
    "GapDays" => gap_days: Option<NumericRange>,
    "EraLength" => era_length: Option<NumericRange>,
    "AgeAtStart" => age_at_start: Option<NumericRange>,
    "AgeAtEnd" => age_at_end: Option<NumericRange>,
    "Gender" => gender: Option<Vec<Concept>>,
    "GenderCS" => gender_cs: Option<ConceptSetSelection>,
});

criteria_struct!(ConditionEra {
    "CodesetId" => codeset_id: Option<i32>,
    "First" => first: Option<bool>,
    "EraStartDate" => era_start_date: Option<DateRange>,
    "EraEndDate" => era_end_date: Option<DateRange>,
    "OccurrenceCount" => occurrence_count: Option<NumericRange>,
    "EraLength" => era_length: Option<NumericRange>,
    "AgeAtStart" => age_at_start: Option<NumericRange>,
    "AgeAtEnd" => age_at_end: Option<NumericRange>,
    "Gender" => gender: Option<Vec<Concept>>,
    "GenderCS" => gender_cs: Option<ConceptSetSelection>,
});

criteria_struct!(DoseEra {
    "CodesetId" => codeset_id: Option<i32>,
    "First" => first: Option<bool>,
    "EraStartDate" => era_start_date: Option<DateRange>,
    "EraEndDate" => era_end_date: Option<DateRange>,
    "Unit" => unit: Option<Vec<Concept>>,
    "UnitCS" => unit_cs: Option<ConceptSetSelection>,
    "DoseValue" => dose_value: Option<NumericRange>,
    "EraLength" => era_length: Option<NumericRange>,
    "AgeAtStart" => age_at_start: Option<NumericRange>,
    "AgeAtEnd" => age_at_end: Option<NumericRange>,
    "Gender" => gender: Option<Vec<Concept>>,
    "GenderCS" => gender_cs: Option<ConceptSetSelection>,
});

criteria_struct!(ProcedureOccurrence {
    "CodesetId" => codeset_id: Option<i32>,
    "First" => first: Option<bool>,
    "OccurrenceStartDate" => occurrence_start_date: Option<DateRange>,
    "ProcedureType" => procedure_type: Option<Vec<Concept>>,
    "ProcedureTypeCS" => procedure_type_cs: Option<ConceptSetSelection>,
    "ProcedureTypeExclude" => procedure_type_exclude: Option<bool>,
    "Modifier" => modifier: Option<Vec<Concept>>,
    "ModifierCS" => modifier_cs: Option<ConceptSetSelection>,
    "Quantity" => quantity: Option<NumericRange>,
    "ProcedureSourceConcept" => procedure_source_concept: Option<i32>,
    "Age" => age: Option<NumericRange>,
    "Gender" => gender: Option<Vec<Concept>>,
    "GenderCS" => gender_cs: Option<ConceptSetSelection>,
    "ProviderSpecialty" => provider_specialty: Option<Vec<Concept>>,
    "ProviderSpecialtyCS" => provider_specialty_cs: Option<ConceptSetSelection>,
    "VisitType" => visit_type: Option<Vec<Concept>>,
    "VisitTypeCS" => visit_type_cs: Option<ConceptSetSelection>,
});

criteria_struct!(Measurement {
    "CodesetId" => codeset_id: Option<i32>,
    "First" => first: Option<bool>,
    "OccurrenceStartDate" => occurrence_start_date: Option<DateRange>,
    "MeasurementType" => measurement_type: Option<Vec<Concept>>,
    "MeasurementTypeCS" => measurement_type_cs: Option<ConceptSetSelection>,
    "MeasurementTypeExclude" => measurement_type_exclude: Option<bool>,
    "Operator" => operator: Option<Vec<Concept>>,
    "OperatorCS" => operator_cs: Option<ConceptSetSelection>,
    "ValueAsNumber" => value_as_number: Option<NumericRange>,
    "ValueAsConcept" => value_as_concept: Option<Vec<Concept>>,
    "ValueAsConceptCS" => value_as_concept_cs: Option<ConceptSetSelection>,
    "Unit" => unit: Option<Vec<Concept>>,
    "UnitCS" => unit_cs: Option<ConceptSetSelection>,
    "RangeLow" => range_low: Option<NumericRange>,
    "RangeHigh" => range_high: Option<NumericRange>,
    "RangeLowRatio" => range_low_ratio: Option<NumericRange>,
    "RangeHighRatio" => range_high_ratio: Option<NumericRange>,
    "Abnormal" => abnormal: Option<bool>,
    "MeasurementSourceConcept" => measurement_source_concept: Option<i32>,
    "Age" => age: Option<NumericRange>,
    "Gender" => gender: Option<Vec<Concept>>,
    "GenderCS" => gender_cs: Option<ConceptSetSelection>,
    "ProviderSpecialty" => provider_specialty: Option<Vec<Concept>>,
    "ProviderSpecialtyCS" => provider_specialty_cs: Option<ConceptSetSelection>,
    "VisitType" => visit_type: Option<Vec<Concept>>,
    "VisitTypeCS" => visit_type_cs: Option<ConceptSetSelection>,
});

criteria_struct!(Observation {
    "CodesetId" => codeset_id: Option<i32>,
    "First" => first: Option<bool>,
    "OccurrenceStartDate" => occurrence_start_date: Option<DateRange>,
    "ObservationType" => observation_type: Option<Vec<Concept>>,
    "ObservationTypeCS" => observation_type_cs: Option<ConceptSetSelection>,
    "ObservationTypeExclude" => observation_type_exclude: Option<bool>,
    "ValueAsNumber" => value_as_number: Option<NumericRange>,
    "ValueAsString" => value_as_string: Option<TextFilter>,
    "ValueAsConcept" => value_as_concept: Option<Vec<Concept>>,
    "ValueAsConceptCS" => value_as_concept_cs: Option<ConceptSetSelection>,
    "Qualifier" => qualifier: Option<Vec<Concept>>,
    "QualifierCS" => qualifier_cs: Option<ConceptSetSelection>,
    "Unit" => unit: Option<Vec<Concept>>,
    "UnitCS" => unit_cs: Option<ConceptSetSelection>,
    "ObservationSourceConcept" => observation_source_concept: Option<i32>,
    "Age" => age: Option<NumericRange>,
    "Gender" => gender: Option<Vec<Concept>>,
    "GenderCS" => gender_cs: Option<ConceptSetSelection>,
    "ProviderSpecialty" => provider_specialty: Option<Vec<Concept>>,
    "ProviderSpecialtyCS" => provider_specialty_cs: Option<ConceptSetSelection>,
    "VisitType" => visit_type: Option<Vec<Concept>>,
    "VisitTypeCS" => visit_type_cs: Option<ConceptSetSelection>,
});

criteria_struct!(VisitOccurrence {
    "CodesetId" => codeset_id: Option<i32>,
    "First" => first: Option<bool>,
    "OccurrenceStartDate" => occurrence_start_date: Option<DateRange>,
    "OccurrenceEndDate" => occurrence_end_date: Option<DateRange>,
    "VisitType" => visit_type: Option<Vec<Concept>>,
    "VisitTypeCS" => visit_type_cs: Option<ConceptSetSelection>,
    "VisitTypeExclude" => visit_type_exclude: Option<bool>,
    "VisitSourceConcept" => visit_source_concept: Option<i32>,
    "VisitLength" => visit_length: Option<NumericRange>,
    "Age" => age: Option<NumericRange>,
    "Gender" => gender: Option<Vec<Concept>>,
    "GenderCS" => gender_cs: Option<ConceptSetSelection>,
    "ProviderSpecialty" => provider_specialty: Option<Vec<Concept>>,
    "ProviderSpecialtyCS" => provider_specialty_cs: Option<ConceptSetSelection>,
    "PlaceOfService" => place_of_service: Option<Vec<Concept>>,
    "PlaceOfServiceCS" => place_of_service_cs: Option<ConceptSetSelection>,
    "PlaceOfServiceLocation" => place_of_service_location: Option<i32>,
});

criteria_struct!(VisitDetail {
    "CodesetId" => codeset_id: Option<i32>,
    "First" => first: Option<bool>,
    "VisitDetailStartDate" => visit_detail_start_date: Option<DateRange>,
    "VisitDetailEndDate" => visit_detail_end_date: Option<DateRange>,
    "VisitDetailTypeCS" => visit_detail_type_cs: Option<ConceptSetSelection>,
    "VisitDetailSourceConcept" => visit_detail_source_concept: Option<i32>,
    "VisitDetailLength" => visit_detail_length: Option<NumericRange>,
    "Age" => age: Option<NumericRange>,
    "GenderCS" => gender_cs: Option<ConceptSetSelection>,
    "ProviderSpecialtyCS" => provider_specialty_cs: Option<ConceptSetSelection>,
    "PlaceOfServiceCS" => place_of_service_cs: Option<ConceptSetSelection>,
    "PlaceOfServiceLocation" => place_of_service_location: Option<i32>,
});

criteria_struct!(DeviceExposure {
    "CodesetId" => codeset_id: Option<i32>,
    "First" => first: Option<bool>,
    "OccurrenceStartDate" => occurrence_start_date: Option<DateRange>,
    "OccurrenceEndDate" => occurrence_end_date: Option<DateRange>,
    "DeviceType" => device_type: Option<Vec<Concept>>,
    "DeviceTypeCS" => device_type_cs: Option<ConceptSetSelection>,
    "DeviceTypeExclude" => device_type_exclude: Option<bool>,
    "UniqueDeviceId" => unique_device_id: Option<TextFilter>,
    "Quantity" => quantity: Option<NumericRange>,
    "DeviceSourceConcept" => device_source_concept: Option<i32>,
    "Age" => age: Option<NumericRange>,
    "Gender" => gender: Option<Vec<Concept>>,
    "GenderCS" => gender_cs: Option<ConceptSetSelection>,
    "ProviderSpecialty" => provider_specialty: Option<Vec<Concept>>,
    "ProviderSpecialtyCS" => provider_specialty_cs: Option<ConceptSetSelection>,
    "VisitType" => visit_type: Option<Vec<Concept>>,
    "VisitTypeCS" => visit_type_cs: Option<ConceptSetSelection>,
});

criteria_struct!(Specimen {
    "CodesetId" => codeset_id: Option<i32>,
    "First" => first: Option<bool>,
    "OccurrenceStartDate" => occurrence_start_date: Option<DateRange>,
    "SpecimenType" => specimen_type: Option<Vec<Concept>>,
    "SpecimenTypeCS" => specimen_type_cs: Option<ConceptSetSelection>,
    "SpecimenTypeExclude" => specimen_type_exclude: Option<bool>,
    "Quantity" => quantity: Option<NumericRange>,
    "Unit" => unit: Option<Vec<Concept>>,
    "UnitCS" => unit_cs: Option<ConceptSetSelection>,
    "AnatomicSite" => anatomic_site: Option<Vec<Concept>>,
    "AnatomicSiteCS" => anatomic_site_cs: Option<ConceptSetSelection>,
    "DiseaseStatus" => disease_status: Option<Vec<Concept>>,
    "DiseaseStatusCS" => disease_status_cs: Option<ConceptSetSelection>,
    "SourceId" => source_id: Option<TextFilter>,
    "SpecimenSourceConcept" => specimen_source_concept: Option<i32>,
    "Age" => age: Option<NumericRange>,
    "Gender" => gender: Option<Vec<Concept>>,
    "GenderCS" => gender_cs: Option<ConceptSetSelection>,
});

criteria_struct!(Death {
    "CodesetId" => codeset_id: Option<i32>,
    "OccurrenceStartDate" => occurrence_start_date: Option<DateRange>,
    "DeathType" => death_type: Option<Vec<Concept>>,
    "DeathTypeCS" => death_type_cs: Option<ConceptSetSelection>,
    "DeathTypeExclude" => death_type_exclude: Option<bool>,
    "DeathSourceConcept" => death_source_concept: Option<i32>,
    "Age" => age: Option<NumericRange>,
    "Gender" => gender: Option<Vec<Concept>>,
    "GenderCS" => gender_cs: Option<ConceptSetSelection>,
});

criteria_struct!(ObservationPeriod {
    "First" => first: Option<bool>,
    "PeriodStartDate" => period_start_date: Option<DateRange>,
    "PeriodEndDate" => period_end_date: Option<DateRange>,
    "UserDefinedPeriod" => user_defined_period: Option<Period>,
    "PeriodType" => period_type: Option<Vec<Concept>>,
    "PeriodTypeCS" => period_type_cs: Option<ConceptSetSelection>,
    "PeriodLength" => period_length: Option<NumericRange>,
    "AgeAtStart" => age_at_start: Option<NumericRange>,
    "AgeAtEnd" => age_at_end: Option<NumericRange>,
});

criteria_struct!(PayerPlanPeriod {
    "First" => first: Option<bool>,
    "PeriodStartDate" => period_start_date: Option<DateRange>,
    "PeriodEndDate" => period_end_date: Option<DateRange>,
    "UserDefinedPeriod" => user_defined_period: Option<Period>,
    "PeriodLength" => period_length: Option<NumericRange>,
    "AgeAtStart" => age_at_start: Option<NumericRange>,
    "AgeAtEnd" => age_at_end: Option<NumericRange>,
    "Gender" => gender: Option<Vec<Concept>>,
    "GenderCS" => gender_cs: Option<ConceptSetSelection>,
    "PayerConcept" => payer_concept: Option<i32>,
    "PlanConcept" => plan_concept: Option<i32>,
    "SponsorConcept" => sponsor_concept: Option<i32>,
    "StopReasonConcept" => stop_reason_concept: Option<i32>,
    "PayerSourceConcept" => payer_source_concept: Option<i32>,
    "PlanSourceConcept" => plan_source_concept: Option<i32>,
    "SponsorSourceConcept" => sponsor_source_concept: Option<i32>,
    "StopReasonSourceConcept" => stop_reason_source_concept: Option<i32>,
});

criteria_struct!(LocationRegion {
    "CodesetId" => codeset_id: Option<i32>,
    "StartDate" => start_date: Option<DateRange>,
    "EndDate" => end_date: Option<DateRange>,
});
