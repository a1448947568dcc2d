//! FeatureExtraction 3.14's prespecified analyses (`inst/csv/PrespecAnalyses.csv`) that Qiao
//! computes: id, name, domain, what the SQL template computes and its window.

/// What an analysis's SQL template computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `DemographicsGender/Race/Ethnicity.sql`: the person's concept column (≠ 0), one covariate per
    /// concept, counted per cohort entry; the second field names the covariate (`gender = …`);
    /// `true`: only concepts of the concept table whose class is that name (race, ethnicity).
    PersonConcept(&'static str, &'static str, bool),
    /// `DemographicsAgeGroup.sql`: FLOOR((index year − year of birth) / 5).
    AgeGroup,
    /// `DemographicsYear.sql`: the index year.
    IndexYear,
    /// `DemographicsMonth.sql`: the index month.
    IndexMonth,
    /// `DomainConcept.sql` on a table; `true`: the window test reads the table's end date (eras),
    /// `false`: its start date.
    Concept(&'static str, bool),
    /// `DomainConcept.sql` `inpatient`: as [`Kind::Concept`] (start date in the window), rows whose
    /// start falls in a visit (start ≤ date ≤ end) whose concept descends from an inpatient visit
    /// (9201, 38004311, 8920, 262 through concept_ancestor).
    Inpatient(&'static str),
    /// `DomainConceptGroup.sql`: as [`Kind::Concept`], rolled up to FE's groups through concept_ancestor.
    Group(&'static str, bool),
    /// `MeasObsValueAsConcept.sql`: one covariate per (concept, value_as_concept_id), persons counted.
    ValueAsConcept(&'static str),
    /// `MeasurementRangeGroup.sql`: below / within / above the normal range.
    RangeGroup,
    /// `CareSite.sql`: the care site of the subject's visit detail, else visit, overlapping an
    /// index date, else of the person; one per subject (see [`super::features`]).
    CareSite,
    /// A comorbidity score: a continuous covariate.
    Score(Score),
    /// `DemographicsYearMonth.sql`: the index year and month (binary, id year·100000 + month·1000).
    IndexYearMonth,
    /// A continuous covariate of `DemographicsAge.sql`, `DemographicsTime.sql` or
    /// `ConceptCounts.sql` (see [`Measure`]).
    Measure(Measure),
}

impl Kind {
    /// True for analyses whose covariates are continuous (FE's `is_binary = 'N'`).
    pub fn is_continuous(self) -> bool {
        matches!(self, Kind::Score(_) | Kind::Measure(_))
    }
}

/// The continuous demographics and concept counts, one value per cohort entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// `DemographicsAge.sql`: YEAR(index) − year_of_birth.
    Age,
    /// `DemographicsTime.sql` `priorObservation`: days from the start of the observation period
    /// holding the index date.
    PriorObservation,
    /// `postObservation`: days from the index date to that period's end.
    PostObservation,
    /// `inCohort`: days from cohort start to cohort end.
    TimeInCohort,
    /// `DomainValueAsNumber.sql` on `table`: the entry's latest `value_as_number` in the window
    /// per (concept, unit), one covariate per concept × unit (see [`super::values`]).
    Value(&'static str),
    /// `ConceptCounts.sql`: the entry's rows of `table` overlapping the window with a concept ≠ 0;
    /// `use_end`: the table's end date is FE's `domainEndDate` (eras, visits), else its start date.
    Count {
        table: &'static str,
        use_end: bool,
        how: Count,
    },
}

/// `ConceptCounts.sql`'s `subType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// `distinct`: distinct concepts.
    Distinct,
    /// `all`: rows.
    All,
    /// `stratified`: rows per concept, one covariate per concept.
    ByConcept,
}

/// The comorbidity indices (`CharlsonIndex.sql`, `Dcsi.sql`, `Chads2.sql`, `Chads2Vasc.sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Score {
    Charlson,
    Dcsi,
    Chads2,
    Chads2Vasc,
    /// `Hfrs.sql`: the Hospital Frailty Risk Score (weights in tenths).
    Hfrs,
}

/// The window column of `PrespecAnalyses.csv` (`startDay`), resolved through the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// No window (demographics).
    None,
    /// `anyTimePrior`: everything up to the end day.
    AnyTimePrior,
    Long,
    Medium,
    Short,
    /// `endDays` as start: the events overlapping the end day.
    End,
}

/// One prespecified analysis.
#[derive(Debug, Clone, Copy)]
pub struct Prespec {
    pub id: u32,
    pub name: &'static str,
    pub domain: &'static str,
    pub kind: Kind,
    pub window: Window,
    /// In FeatureExtraction's default set (`isDefault`, R `createDefaultCovariateSettings()`).
    pub is_default: bool,
}

const fn p(
    id: u32,
    name: &'static str,
    domain: &'static str,
    kind: Kind,
    window: Window,
    is_default: bool,
) -> Prespec {
    Prespec {
        id,
        name,
        domain,
        kind,
        window,
        is_default,
    }
}

use Kind as K;
use Score as S;
use Window as W;

const fn count(table: &'static str, use_end: bool, how: Count) -> Kind {
    K::Measure(Measure::Count {
        table,
        use_end,
        how,
    })
}

/// Every prespecified analysis of `PrespecAnalyses.csv` (FeatureExtraction 3.14), in its order.
#[rustfmt::skip]
pub static PRESPEC: &[Prespec] = &[
    p(1, "DemographicsGender", "Demographics", K::PersonConcept("gender_concept_id", "gender", false), W::None, true),
    p(2, "DemographicsAge", "Demographics", K::Measure(Measure::Age), W::None, false),
    p(3, "DemographicsAgeGroup", "Demographics", K::AgeGroup, W::None, true),
    p(4, "DemographicsRace", "Demographics", K::PersonConcept("race_concept_id", "race", true), W::None, true),
    p(5, "DemographicsEthnicity", "Demographics", K::PersonConcept("ethnicity_concept_id", "ethnicity", true), W::None, true),
    p(6, "DemographicsIndexYear", "Demographics", K::IndexYear, W::None, true),
    p(7, "DemographicsIndexMonth", "Demographics", K::IndexMonth, W::None, true),
    p(8, "DemographicsPriorObservationTime", "Demographics", K::Measure(Measure::PriorObservation), W::None, false),
    p(9, "DemographicsPostObservationTime", "Demographics", K::Measure(Measure::PostObservation), W::None, false),
    p(10, "DemographicsTimeInCohort", "Demographics", K::Measure(Measure::TimeInCohort), W::None, false),
    p(11, "DemographicsIndexYearMonth", "Demographics", K::IndexYearMonth, W::None, false),
    p(12, "CareSiteId", "CareSite", K::CareSite, W::None, false),
    p(101, "ConditionOccurrenceAnyTimePrior", "Condition", K::Concept("condition_occurrence", false), W::AnyTimePrior, false),
    p(102, "ConditionOccurrenceLongTerm", "Condition", K::Concept("condition_occurrence", false), W::Long, false),
    p(103, "ConditionOccurrenceMediumTerm", "Condition", K::Concept("condition_occurrence", false), W::Medium, false),
    p(104, "ConditionOccurrenceShortTerm", "Condition", K::Concept("condition_occurrence", false), W::Short, false),
    p(105, "ConditionOccurrencePrimaryInpatientAnyTimePrior", "Condition", K::Inpatient("condition_occurrence"), W::AnyTimePrior, false),
    p(106, "ConditionOccurrencePrimaryInpatientLongTerm", "Condition", K::Inpatient("condition_occurrence"), W::Long, false),
    p(107, "ConditionOccurrencePrimaryInpatientMediumTerm", "Condition", K::Inpatient("condition_occurrence"), W::Medium, false),
    p(108, "ConditionOccurrencePrimaryInpatientShortTerm", "Condition", K::Inpatient("condition_occurrence"), W::Short, false),
    p(201, "ConditionEraAnyTimePrior", "Condition", K::Concept("condition_era", true), W::AnyTimePrior, false),
    p(202, "ConditionEraLongTerm", "Condition", K::Concept("condition_era", true), W::Long, false),
    p(203, "ConditionEraMediumTerm", "Condition", K::Concept("condition_era", true), W::Medium, false),
    p(204, "ConditionEraShortTerm", "Condition", K::Concept("condition_era", true), W::Short, false),
    p(205, "ConditionEraOverlapping", "Condition", K::Concept("condition_era", true), W::End, false),
    p(206, "ConditionEraStartLongTerm", "Condition", K::Concept("condition_era", false), W::Long, false),
    p(207, "ConditionEraStartMediumTerm", "Condition", K::Concept("condition_era", false), W::Medium, false),
    p(208, "ConditionEraStartShortTerm", "Condition", K::Concept("condition_era", false), W::Short, false),
    p(209, "ConditionGroupEraAnyTimePrior", "Condition", K::Group("condition_era", true), W::AnyTimePrior, false),
    p(210, "ConditionGroupEraLongTerm", "Condition", K::Group("condition_era", true), W::Long, true),
    p(211, "ConditionGroupEraMediumTerm", "Condition", K::Group("condition_era", true), W::Medium, false),
    p(212, "ConditionGroupEraShortTerm", "Condition", K::Group("condition_era", true), W::Short, true),
    p(213, "ConditionGroupEraOverlapping", "Condition", K::Group("condition_era", true), W::End, false),
    p(214, "ConditionGroupEraStartLongTerm", "Condition", K::Group("condition_era", false), W::Long, false),
    p(215, "ConditionGroupEraStartMediumTerm", "Condition", K::Group("condition_era", false), W::Medium, false),
    p(216, "ConditionGroupEraStartShortTerm", "Condition", K::Group("condition_era", false), W::Short, false),
    p(301, "DrugExposureAnyTimePrior", "Drug", K::Concept("drug_exposure", false), W::AnyTimePrior, false),
    p(302, "DrugExposureLongTerm", "Drug", K::Concept("drug_exposure", false), W::Long, false),
    p(303, "DrugExposureMediumTerm", "Drug", K::Concept("drug_exposure", false), W::Medium, false),
    p(304, "DrugExposureShortTerm", "Drug", K::Concept("drug_exposure", false), W::Short, false),
    p(401, "DrugEraAnyTimePrior", "Drug", K::Concept("drug_era", true), W::AnyTimePrior, false),
    p(402, "DrugEraLongTerm", "Drug", K::Concept("drug_era", true), W::Long, false),
    p(403, "DrugEraMediumTerm", "Drug", K::Concept("drug_era", true), W::Medium, false),
    p(404, "DrugEraShortTerm", "Drug", K::Concept("drug_era", true), W::Short, false),
    p(405, "DrugEraOverlapping", "Drug", K::Concept("drug_era", true), W::End, false),
    p(406, "DrugEraStartLongTerm", "Drug", K::Concept("drug_era", false), W::Long, false),
    p(407, "DrugEraStartMediumTerm", "Drug", K::Concept("drug_era", false), W::Medium, false),
    p(408, "DrugEraStartShortTerm", "Drug", K::Concept("drug_era", false), W::Short, false),
    p(409, "DrugGroupEraAnyTimePrior", "Drug", K::Group("drug_era", true), W::AnyTimePrior, false),
    p(410, "DrugGroupEraLongTerm", "Drug", K::Group("drug_era", true), W::Long, true),
    p(411, "DrugGroupEraMediumTerm", "Drug", K::Group("drug_era", true), W::Medium, false),
    p(412, "DrugGroupEraShortTerm", "Drug", K::Group("drug_era", true), W::Short, true),
    p(413, "DrugGroupEraOverlapping", "Drug", K::Group("drug_era", true), W::End, true),
    p(414, "DrugGroupEraStartLongTerm", "Drug", K::Group("drug_era", false), W::Long, false),
    p(415, "DrugGroupEraStartMediumTerm", "Drug", K::Group("drug_era", false), W::Medium, false),
    p(416, "DrugGroupEraStartShortTerm", "Drug", K::Group("drug_era", false), W::Short, false),
    p(501, "ProcedureOccurrenceAnyTimePrior", "Procedure", K::Concept("procedure_occurrence", false), W::AnyTimePrior, false),
    p(502, "ProcedureOccurrenceLongTerm", "Procedure", K::Concept("procedure_occurrence", false), W::Long, true),
    p(503, "ProcedureOccurrenceMediumTerm", "Procedure", K::Concept("procedure_occurrence", false), W::Medium, false),
    p(504, "ProcedureOccurrenceShortTerm", "Procedure", K::Concept("procedure_occurrence", false), W::Short, true),
    p(601, "DeviceExposureAnyTimePrior", "Device", K::Concept("device_exposure", false), W::AnyTimePrior, false),
    p(602, "DeviceExposureLongTerm", "Device", K::Concept("device_exposure", false), W::Long, true),
    p(603, "DeviceExposureMediumTerm", "Device", K::Concept("device_exposure", false), W::Medium, false),
    p(604, "DeviceExposureShortTerm", "Device", K::Concept("device_exposure", false), W::Short, true),
    p(701, "MeasurementAnyTimePrior", "measurement", K::Concept("measurement", false), W::AnyTimePrior, false),
    p(702, "MeasurementLongTerm", "measurement", K::Concept("measurement", false), W::Long, true),
    p(703, "MeasurementMediumTerm", "measurement", K::Concept("measurement", false), W::Medium, false),
    p(704, "MeasurementShortTerm", "measurement", K::Concept("measurement", false), W::Short, true),
    p(705, "MeasurementValueAnyTimePrior", "Measurement", K::Measure(Measure::Value("measurement")), W::AnyTimePrior, false),
    p(706, "MeasurementValueLongTerm", "Measurement", K::Measure(Measure::Value("measurement")), W::Long, false),
    p(707, "MeasurementValueMediumTerm", "Measurement", K::Measure(Measure::Value("measurement")), W::Medium, false),
    p(708, "MeasurementValueShortTerm", "Measurement", K::Measure(Measure::Value("measurement")), W::Short, false),
    p(709, "MeasurementRangeGroupAnyTimePrior", "", K::RangeGroup, W::AnyTimePrior, false),
    p(710, "MeasurementRangeGroupLongTerm", "", K::RangeGroup, W::Long, true),
    p(711, "MeasurementRangeGroupMediumTerm", "", K::RangeGroup, W::Medium, false),
    p(712, "MeasurementRangeGroupShortTerm", "", K::RangeGroup, W::Short, true),
    p(713, "MeasurementValueAsConceptAnyTimePrior", "measurement", K::ValueAsConcept("measurement"), W::AnyTimePrior, false),
    p(714, "MeasurementValueAsConceptLongTerm", "measurement", K::ValueAsConcept("measurement"), W::Long, true),
    p(715, "MeasurementValueAsConceptMediumTerm", "measurement", K::ValueAsConcept("measurement"), W::Medium, false),
    p(716, "MeasurementValueAsConceptShortTerm", "measurement", K::ValueAsConcept("measurement"), W::Short, true),
    p(801, "ObservationAnyTimePrior", "observation", K::Concept("observation", false), W::AnyTimePrior, false),
    p(802, "ObservationLongTerm", "observation", K::Concept("observation", false), W::Long, true),
    p(803, "ObservationMediumTerm", "observation", K::Concept("observation", false), W::Medium, false),
    p(804, "ObservationShortTerm", "observation", K::Concept("observation", false), W::Short, true),
    p(805, "ObservationValueAsConceptAnyTimePrior", "observation", K::ValueAsConcept("observation"), W::AnyTimePrior, false),
    p(806, "ObservationValueAsConceptLongTerm", "observation", K::ValueAsConcept("observation"), W::Long, true),
    p(807, "ObservationValueAsConceptMediumTerm", "observation", K::ValueAsConcept("observation"), W::Medium, false),
    p(808, "ObservationValueAsConceptShortTerm", "observation", K::ValueAsConcept("observation"), W::Short, true),
    p(809, "ObservationValueAnyTimePrior", "Observation", K::Measure(Measure::Value("observation")), W::AnyTimePrior, false),
    p(810, "ObservationValueLongTerm", "Observation", K::Measure(Measure::Value("observation")), W::Long, false),
    p(811, "ObservationValueMediumTerm", "Observation", K::Measure(Measure::Value("observation")), W::Medium, false),
    p(812, "ObservationValueShortTerm", "Observation", K::Measure(Measure::Value("observation")), W::Short, false),
    p(901, "CharlsonIndex", "Condition", K::Score(S::Charlson), W::None, true),
    p(902, "Dcsi", "Condition", K::Score(S::Dcsi), W::None, true),
    p(903, "Chads2", "Condition", K::Score(S::Chads2), W::None, true),
    p(904, "Chads2Vasc", "Condition", K::Score(S::Chads2Vasc), W::None, true),
    p(926, "Hfrs", "Condition", K::Score(S::Hfrs), W::None, false),
    p(905, "DistinctConditionCountLongTerm", "Condition", count("condition_era", true, Count::Distinct), W::Long, false),
    p(906, "DistinctConditionCountMediumTerm", "Condition", count("condition_era", true, Count::Distinct), W::Medium, false),
    p(907, "DistinctConditionCountShortTerm", "Condition", count("condition_era", true, Count::Distinct), W::Short, false),
    p(908, "DistinctIngredientCountLongTerm", "Drug", count("drug_era", true, Count::Distinct), W::Long, false),
    p(909, "DistinctIngredientCountMediumTerm", "Drug", count("drug_era", true, Count::Distinct), W::Medium, false),
    p(910, "DistinctIngredientCountShortTerm", "Drug", count("drug_era", true, Count::Distinct), W::Short, false),
    p(911, "DistinctProcedureCountLongTerm", "Procedure", count("procedure_occurrence", false, Count::Distinct), W::Long, false),
    p(912, "DistinctProcedureCountMediumTerm", "Procedure", count("procedure_occurrence", false, Count::Distinct), W::Medium, false),
    p(913, "DistinctProcedureCountShortTerm", "Procedure", count("procedure_occurrence", false, Count::Distinct), W::Short, false),
    p(914, "DistinctMeasurementCountLongTerm", "Measurement", count("measurement", false, Count::Distinct), W::Long, false),
    p(915, "DistinctMeasurementCountMediumTerm", "Measurement", count("measurement", false, Count::Distinct), W::Medium, false),
    p(916, "DistinctMeasurementCountShortTerm", "Measurement", count("measurement", false, Count::Distinct), W::Short, false),
    p(917, "DistinctObservationCountLongTerm", "Observation", count("observation", false, Count::Distinct), W::Long, false),
    p(918, "DistinctObservationCountMediumTerm", "Observation", count("observation", false, Count::Distinct), W::Medium, false),
    p(919, "DistinctObservationCountShortTerm", "Observation", count("observation", false, Count::Distinct), W::Short, false),
    p(920, "VisitCountLongTerm", "Visit", count("visit_occurrence", true, Count::All), W::Long, false),
    p(921, "VisitCountMediumTerm", "Visit", count("visit_occurrence", true, Count::All), W::Medium, false),
    p(922, "VisitCountShortTerm", "Visit", count("visit_occurrence", true, Count::All), W::Short, false),
    p(923, "VisitConceptCountLongTerm", "Visit", count("visit_occurrence", true, Count::ByConcept), W::Long, false),
    p(924, "VisitConceptCountMediumTerm", "Visit", count("visit_occurrence", true, Count::ByConcept), W::Medium, false),
    p(925, "VisitConceptCountShortTerm", "Visit", count("visit_occurrence", true, Count::ByConcept), W::Short, false),
];

/// The analysis with id `id`, if Qiao computes it.
pub fn prespec(id: u32) -> Option<&'static Prespec> {
    PRESPEC.iter().find(|a| a.id == id)
}

/// FeatureExtraction's default analysis ids (R `createDefaultCovariateSettings()`).
pub fn default_ids() -> Vec<u32> {
    PRESPEC
        .iter()
        .filter(|a| a.is_default)
        .map(|a| a.id)
        .collect()
}
