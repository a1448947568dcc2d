//! Consistency checks after parsing (errors) and Circe-style design-time checks (warnings).

use std::collections::{BTreeMap, BTreeSet};

use super::types::*;
use super::Issue;
use qiao_cdm::date::{self, Day};

/// Parses a Circe date string the way circe-be does (`YYYY-MM-DD`, split on `-`, each part an
/// integer), rejecting impossible dates.
pub fn parse_date(s: &str) -> Option<Day> {
    let parts: Vec<&str> = s.trim().split('-').collect();
    if parts.len() != 3 {
        return None;
    }
    let y: i32 = parts[0].parse().ok()?;
    let m: u32 = parts[1].parse().ok()?;
    let d: u32 = parts[2].parse().ok()?;
    if !(1..=12).contains(&m) || d == 0 || d > date::days_in_month(y, m) || !(1..=9999).contains(&y)
    {
        return None;
    }
    Some(date::from_ymd(y, m, d))
}

struct V<'a> {
    path: Vec<String>,
    errors: Vec<Issue>,
    warnings: Vec<Issue>,
    codesets: &'a BTreeMap<i32, &'a ConceptSet>,
    used: BTreeSet<i32>,
}

impl<'a> V<'a> {
    fn at(&self, key: &str) -> String {
        let mut p = String::new();
        for seg in &self.path {
            if seg.starts_with('[') || p.is_empty() {
                p.push_str(seg);
            } else {
                p.push('.');
                p.push_str(seg);
            }
        }
        if !key.is_empty() {
            if !p.is_empty() {
                p.push('.');
            }
            p.push_str(key);
        }
        p
    }
    fn err(&mut self, key: &str, msg: impl Into<String>) {
        let path = self.at(key);
        self.errors.push(Issue {
            path,
            message: msg.into(),
        });
    }
    fn warn(&mut self, key: &str, msg: impl Into<String>) {
        let path = self.at(key);
        self.warnings.push(Issue {
            path,
            message: msg.into(),
        });
    }
    fn push(&mut self, seg: impl Into<String>) {
        self.path.push(seg.into());
    }
    fn pop(&mut self) {
        self.path.pop();
    }

    fn codeset(&mut self, key: &str, id: Option<i32>) {
        if let Some(id) = id {
            self.used.insert(id);
            if !self.codesets.contains_key(&id) {
                self.err(
                    key,
                    format!("concept set {id} is not defined in ConceptSets"),
                );
            }
        }
    }

    fn cs_selection(&mut self, key: &str, sel: &Option<ConceptSetSelection>) {
        if let Some(sel) = sel {
            match sel.codeset_id {
                Some(id) => {
                    self.push(key);
                    self.codeset("CodesetId", Some(id));
                    self.pop();
                }
                None => self.warn(
                    key,
                    "no concept set selected: Circe then only requires the value to be non-NULL (NULL if IsExclusion)",
                ),
            }
        }
    }

    fn concepts(&mut self, key: &str, list: &Option<Vec<Concept>>) {
        if let Some(list) = list {
            for (i, c) in list.iter().enumerate() {
                if c.concept_id.is_none() {
                    self.err(&format!("{key}[{i}].CONCEPT_ID"), "missing CONCEPT_ID");
                } else if c.concept_id.is_some_and(|id| i32::try_from(id).is_err()) {
                    self.err(&format!("{key}[{i}].CONCEPT_ID"), "CONCEPT_ID out of range");
                }
            }
        }
    }

    fn numeric(&mut self, key: &str, r: &Option<NumericRange>) {
        let Some(r) = r else { return };
        match r.op {
            None => self.err(&format!("{key}.Op"), "missing operator"),
            Some(op) => {
                if r.value.is_none() {
                    self.err(&format!("{key}.Value"), "missing value");
                }
                if op.is_between() && r.extent.is_none() {
                    self.err(
                        &format!("{key}.Extent"),
                        "missing extent for a between operator",
                    );
                }
            }
        }
        for (k, v) in [("Value", r.value), ("Extent", r.extent)] {
            if v.is_some_and(|v| !v.is_finite()) {
                self.err(&format!("{key}.{k}"), "not a finite number");
            }
        }
    }

    fn date_range(&mut self, key: &str, r: &Option<DateRange>) {
        let Some(r) = r else { return };
        match r.op {
            None => self.err(&format!("{key}.Op"), "missing operator"),
            Some(op) => {
                match &r.value {
                    None => self.err(&format!("{key}.Value"), "missing date"),
                    Some(v) if parse_date(v).is_none() => {
                        self.err(&format!("{key}.Value"), format!("invalid date {v:?}"))
                    }
                    _ => {}
                }
                if op.is_between() {
                    match &r.extent {
                        None => self.err(
                            &format!("{key}.Extent"),
                            "missing extent for a between operator",
                        ),
                        Some(v) if parse_date(v).is_none() => {
                            self.err(&format!("{key}.Extent"), format!("invalid date {v:?}"))
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    fn text(&mut self, key: &str, t: &Option<TextFilter>) {
        let Some(t) = t else { return };
        if t.op.is_none() {
            self.err(&format!("{key}.Op"), "missing operator");
        }
        if t.text.is_none() {
            self.warn(
                &format!("{key}.Text"),
                "missing text: circe-be then matches the literal text \"null\"",
            );
        }
    }

    fn period(&mut self, key: &str, p: &Option<Period>) {
        let Some(p) = p else { return };
        for (k, v) in [("StartDate", &p.start_date), ("EndDate", &p.end_date)] {
            if let Some(v) = v {
                if parse_date(v).is_none() {
                    self.err(&format!("{key}.{k}"), format!("invalid date {v:?}"));
                }
            }
        }
    }

    fn date_adjustment(&mut self, key: &str, d: &Option<DateAdjustment>) {
        let _ = (key, d);
    }

    fn group(&mut self, g: &CriteriaGroup) {
        if !g.is_empty() {
            match g.group_type {
                None => self.err("Type", "missing criteria group type"),
                Some(GroupType::AtLeast | GroupType::AtMost) if g.count.is_none() => {
                    self.err("Count", "missing count for an AT_LEAST / AT_MOST group")
                }
                _ => {}
            }
        }
        for (i, cc) in g.criteria_list.iter().enumerate() {
            self.push("CriteriaList");
            self.push(format!("[{i}]"));
            self.corelated(cc);
            self.pop();
            self.pop();
        }
        for (i, d) in g.demographic_criteria_list.iter().enumerate() {
            self.push("DemographicCriteriaList");
            self.push(format!("[{i}]"));
            self.numeric("Age", &d.age);
            self.concepts("Gender", &d.gender);
            self.cs_selection("GenderCS", &d.gender_cs);
            self.concepts("Race", &d.race);
            self.cs_selection("RaceCS", &d.race_cs);
            if d.race_cs.is_some() {
                self.warn("RaceCS", "circe-be matches RaceCS against gender_concept_id (a circe-be defect this engine reproduces)");
            }
            self.concepts("Ethnicity", &d.ethnicity);
            self.cs_selection("EthnicityCS", &d.ethnicity_cs);
            if d.ethnicity_cs.is_some() {
                self.warn("EthnicityCS", "circe-be matches EthnicityCS against gender_concept_id (a circe-be defect this engine reproduces)");
            }
            self.date_range("OccurrenceStartDate", &d.occurrence_start_date);
            self.date_range("OccurrenceEndDate", &d.occurrence_end_date);
            self.pop();
            self.pop();
        }
        for (i, sub) in g.groups.iter().enumerate() {
            self.push("Groups");
            self.push(format!("[{i}]"));
            self.group(sub);
            self.pop();
            self.pop();
        }
    }

    fn window(&mut self, key: &str, w: &Option<Window>, required: bool) {
        match w {
            None if required => self.err(key, "missing window"),
            None => {}
            Some(w) => {
                for (k, e) in [("Start", &w.start), ("End", &w.end)] {
                    if e.is_none() {
                        self.err(&format!("{key}.{k}"), "missing window endpoint");
                    }
                }
            }
        }
    }

    fn corelated(&mut self, cc: &CorelatedCriteria) {
        match &cc.criteria {
            None => self.err("Criteria", "missing criteria"),
            Some(c) => {
                self.push("Criteria");
                self.criteria(c);
                self.pop();
            }
        }
        self.window("StartWindow", &cc.start_window, true);
        self.window("EndWindow", &cc.end_window, false);
        match &cc.occurrence {
            None => self.err("Occurrence", "missing occurrence"),
            Some(o) => {
                if !(0..=2).contains(&o.occurrence_type) {
                    self.err(
                        "Occurrence.Type",
                        format!(
                            "invalid occurrence type {} (0 exactly, 1 at most, 2 at least)",
                            o.occurrence_type
                        ),
                    );
                }
                match o.count {
                    None => self.err("Occurrence.Count", "missing count"),
                    Some(c) if c < 0 => self.err("Occurrence.Count", "negative count"),
                    Some(0) if o.occurrence_type == 2 => self.warn(
                        "Occurrence",
                        "'at least 0' occurrence is not a real constraint, probably meant 'exactly 0' or 'at least 1'",
                    ),
                    _ => {}
                }
                if let (Some(col), Some(c)) = (o.count_column, &cc.criteria) {
                    if !o.is_distinct {
                        self.warn(
                            "Occurrence.CountColumn",
                            "CountColumn is only used when IsDistinct is true",
                        );
                    } else if super::domains::count_kind(c, col).is_none() {
                        self.err(
                            "Occurrence.CountColumn",
                            format!("{col:?} is not a valid count column for {}", c.name()),
                        );
                    }
                }
            }
        }
    }

    fn criteria(&mut self, c: &Criteria) {
        self.push(c.name());
        let (corr, adj) = c.common();
        self.date_adjustment("DateAdjustment", adj);
        match c {
            Criteria::ConditionOccurrence(x) => {
                self.codeset("CodesetId", x.codeset_id);
                self.date_range("OccurrenceStartDate", &x.occurrence_start_date);
                self.date_range("OccurrenceEndDate", &x.occurrence_end_date);
                self.concepts("ConditionType", &x.condition_type);
                self.cs_selection("ConditionTypeCS", &x.condition_type_cs);
                self.text("StopReason", &x.stop_reason);
                self.codeset("ConditionSourceConcept", x.condition_source_concept);
                self.numeric("Age", &x.age);
                self.concepts("Gender", &x.gender);
                self.cs_selection("GenderCS", &x.gender_cs);
                self.concepts("ProviderSpecialty", &x.provider_specialty);
                self.cs_selection("ProviderSpecialtyCS", &x.provider_specialty_cs);
                self.concepts("VisitType", &x.visit_type);
                self.cs_selection("VisitTypeCS", &x.visit_type_cs);
                self.concepts("ConditionStatus", &x.condition_status);
                self.cs_selection("ConditionStatusCS", &x.condition_status_cs);
            }
            Criteria::DrugExposure(x) => {
                self.codeset("CodesetId", x.codeset_id);
                self.date_range("OccurrenceStartDate", &x.occurrence_start_date);
                self.date_range("OccurrenceEndDate", &x.occurrence_end_date);
                if x.occurrence_end_date.is_some() {
                    self.warn("OccurrenceEndDate", "circe-be compares DrugExposure OccurrenceEndDate with the exposure start date (a circe-be defect this engine reproduces)");
                }
                self.concepts("DrugType", &x.drug_type);
                self.cs_selection("DrugTypeCS", &x.drug_type_cs);
                self.text("StopReason", &x.stop_reason);
                self.numeric("Refills", &x.refills);
                self.numeric("Quantity", &x.quantity);
                self.numeric("DaysSupply", &x.days_supply);
                self.concepts("RouteConcept", &x.route_concept);
                self.cs_selection("RouteConceptCS", &x.route_concept_cs);
                self.numeric("EffectiveDrugDose", &x.effective_drug_dose);
                self.concepts("DoseUnit", &x.dose_unit);
                self.cs_selection("DoseUnitCS", &x.dose_unit_cs);
                self.text("LotNumber", &x.lot_number);
                self.codeset("DrugSourceConcept", x.drug_source_concept);
                self.numeric("Age", &x.age);
                self.concepts("Gender", &x.gender);
                self.cs_selection("GenderCS", &x.gender_cs);
                self.concepts("ProviderSpecialty", &x.provider_specialty);
                self.cs_selection("ProviderSpecialtyCS", &x.provider_specialty_cs);
                self.concepts("VisitType", &x.visit_type);
                self.cs_selection("VisitTypeCS", &x.visit_type_cs);
            }
            Criteria::DrugEra(x) => {
                self.codeset("CodesetId", x.codeset_id);
                self.date_range("EraStartDate", &x.era_start_date);
                self.date_range("EraEndDate", &x.era_end_date);
                self.numeric("OccurrenceCount", &x.occurrence_count);
                self.numeric("GapDays", &x.gap_days);
                if x.gap_days.is_some() {
                    if x.era_length.is_none() {
                        self.err("GapDays", "circe-be filters GapDays with the EraLength range, which is missing (circe-be fails on this definition)");
                    } else {
                        self.warn("GapDays", "circe-be filters gap_days with the EraLength range, not GapDays (a circe-be defect this engine reproduces)");
                    }
                }
                self.numeric("EraLength", &x.era_length);
                self.numeric("AgeAtStart", &x.age_at_start);
                self.numeric("AgeAtEnd", &x.age_at_end);
                self.concepts("Gender", &x.gender);
                self.cs_selection("GenderCS", &x.gender_cs);
            }
            Criteria::ConditionEra(x) => {
                self.codeset("CodesetId", x.codeset_id);
                self.date_range("EraStartDate", &x.era_start_date);
                self.date_range("EraEndDate", &x.era_end_date);
                self.numeric("OccurrenceCount", &x.occurrence_count);
                self.numeric("EraLength", &x.era_length);
                self.numeric("AgeAtStart", &x.age_at_start);
                self.numeric("AgeAtEnd", &x.age_at_end);
                self.concepts("Gender", &x.gender);
                self.cs_selection("GenderCS", &x.gender_cs);
            }
            Criteria::DoseEra(x) => {
                self.codeset("CodesetId", x.codeset_id);
                self.date_range("EraStartDate", &x.era_start_date);
                self.date_range("EraEndDate", &x.era_end_date);
                self.concepts("Unit", &x.unit);
                self.cs_selection("UnitCS", &x.unit_cs);
                self.numeric("DoseValue", &x.dose_value);
                self.numeric("EraLength", &x.era_length);
                self.numeric("AgeAtStart", &x.age_at_start);
                self.numeric("AgeAtEnd", &x.age_at_end);
                self.concepts("Gender", &x.gender);
                self.cs_selection("GenderCS", &x.gender_cs);
            }
            Criteria::ProcedureOccurrence(x) => {
                self.codeset("CodesetId", x.codeset_id);
                self.date_range("OccurrenceStartDate", &x.occurrence_start_date);
                self.concepts("ProcedureType", &x.procedure_type);
                self.cs_selection("ProcedureTypeCS", &x.procedure_type_cs);
                self.concepts("Modifier", &x.modifier);
                self.cs_selection("ModifierCS", &x.modifier_cs);
                self.numeric("Quantity", &x.quantity);
                self.codeset("ProcedureSourceConcept", x.procedure_source_concept);
                self.numeric("Age", &x.age);
                self.concepts("Gender", &x.gender);
                self.cs_selection("GenderCS", &x.gender_cs);
                self.concepts("ProviderSpecialty", &x.provider_specialty);
                self.cs_selection("ProviderSpecialtyCS", &x.provider_specialty_cs);
                self.concepts("VisitType", &x.visit_type);
                self.cs_selection("VisitTypeCS", &x.visit_type_cs);
            }
            Criteria::Measurement(x) => {
                self.codeset("CodesetId", x.codeset_id);
                self.date_range("OccurrenceStartDate", &x.occurrence_start_date);
                self.concepts("MeasurementType", &x.measurement_type);
                self.cs_selection("MeasurementTypeCS", &x.measurement_type_cs);
                self.concepts("Operator", &x.operator);
                self.cs_selection("OperatorCS", &x.operator_cs);
                self.numeric("ValueAsNumber", &x.value_as_number);
                self.concepts("ValueAsConcept", &x.value_as_concept);
                self.cs_selection("ValueAsConceptCS", &x.value_as_concept_cs);
                self.concepts("Unit", &x.unit);
                self.cs_selection("UnitCS", &x.unit_cs);
                self.numeric("RangeLow", &x.range_low);
                self.numeric("RangeHigh", &x.range_high);
                self.numeric("RangeLowRatio", &x.range_low_ratio);
                self.numeric("RangeHighRatio", &x.range_high_ratio);
                self.codeset("MeasurementSourceConcept", x.measurement_source_concept);
                self.numeric("Age", &x.age);
                self.concepts("Gender", &x.gender);
                self.cs_selection("GenderCS", &x.gender_cs);
                self.concepts("ProviderSpecialty", &x.provider_specialty);
                self.cs_selection("ProviderSpecialtyCS", &x.provider_specialty_cs);
                self.concepts("VisitType", &x.visit_type);
                self.cs_selection("VisitTypeCS", &x.visit_type_cs);
            }
            Criteria::Observation(x) => {
                self.codeset("CodesetId", x.codeset_id);
                self.date_range("OccurrenceStartDate", &x.occurrence_start_date);
                self.concepts("ObservationType", &x.observation_type);
                self.cs_selection("ObservationTypeCS", &x.observation_type_cs);
                self.numeric("ValueAsNumber", &x.value_as_number);
                self.text("ValueAsString", &x.value_as_string);
                self.concepts("ValueAsConcept", &x.value_as_concept);
                self.cs_selection("ValueAsConceptCS", &x.value_as_concept_cs);
                self.concepts("Qualifier", &x.qualifier);
                self.cs_selection("QualifierCS", &x.qualifier_cs);
                self.concepts("Unit", &x.unit);
                self.cs_selection("UnitCS", &x.unit_cs);
                self.codeset("ObservationSourceConcept", x.observation_source_concept);
                self.numeric("Age", &x.age);
                self.concepts("Gender", &x.gender);
                self.cs_selection("GenderCS", &x.gender_cs);
                self.concepts("ProviderSpecialty", &x.provider_specialty);
                self.cs_selection("ProviderSpecialtyCS", &x.provider_specialty_cs);
                self.concepts("VisitType", &x.visit_type);
                self.cs_selection("VisitTypeCS", &x.visit_type_cs);
            }
            Criteria::VisitOccurrence(x) => {
                self.codeset("CodesetId", x.codeset_id);
                self.date_range("OccurrenceStartDate", &x.occurrence_start_date);
                self.date_range("OccurrenceEndDate", &x.occurrence_end_date);
                self.concepts("VisitType", &x.visit_type);
                self.cs_selection("VisitTypeCS", &x.visit_type_cs);
                self.codeset("VisitSourceConcept", x.visit_source_concept);
                self.numeric("VisitLength", &x.visit_length);
                self.numeric("Age", &x.age);
                self.concepts("Gender", &x.gender);
                self.cs_selection("GenderCS", &x.gender_cs);
                self.concepts("ProviderSpecialty", &x.provider_specialty);
                self.cs_selection("ProviderSpecialtyCS", &x.provider_specialty_cs);
                self.concepts("PlaceOfService", &x.place_of_service);
                self.cs_selection("PlaceOfServiceCS", &x.place_of_service_cs);
                self.codeset("PlaceOfServiceLocation", x.place_of_service_location);
            }
            Criteria::VisitDetail(x) => {
                self.codeset("CodesetId", x.codeset_id);
                self.date_range("VisitDetailStartDate", &x.visit_detail_start_date);
                self.date_range("VisitDetailEndDate", &x.visit_detail_end_date);
                self.cs_selection("VisitDetailTypeCS", &x.visit_detail_type_cs);
                self.codeset("VisitDetailSourceConcept", x.visit_detail_source_concept);
                self.numeric("VisitDetailLength", &x.visit_detail_length);
                self.numeric("Age", &x.age);
                self.cs_selection("GenderCS", &x.gender_cs);
                self.cs_selection("ProviderSpecialtyCS", &x.provider_specialty_cs);
                self.cs_selection("PlaceOfServiceCS", &x.place_of_service_cs);
                self.codeset("PlaceOfServiceLocation", x.place_of_service_location);
            }
            Criteria::DeviceExposure(x) => {
                self.codeset("CodesetId", x.codeset_id);
                self.date_range("OccurrenceStartDate", &x.occurrence_start_date);
                self.date_range("OccurrenceEndDate", &x.occurrence_end_date);
                self.concepts("DeviceType", &x.device_type);
                self.cs_selection("DeviceTypeCS", &x.device_type_cs);
                self.text("UniqueDeviceId", &x.unique_device_id);
                self.numeric("Quantity", &x.quantity);
                self.codeset("DeviceSourceConcept", x.device_source_concept);
                self.numeric("Age", &x.age);
                self.concepts("Gender", &x.gender);
                self.cs_selection("GenderCS", &x.gender_cs);
                self.concepts("ProviderSpecialty", &x.provider_specialty);
                self.cs_selection("ProviderSpecialtyCS", &x.provider_specialty_cs);
                self.concepts("VisitType", &x.visit_type);
                self.cs_selection("VisitTypeCS", &x.visit_type_cs);
            }
            Criteria::Specimen(x) => {
                self.codeset("CodesetId", x.codeset_id);
                self.date_range("OccurrenceStartDate", &x.occurrence_start_date);
                self.concepts("SpecimenType", &x.specimen_type);
                self.cs_selection("SpecimenTypeCS", &x.specimen_type_cs);
                self.numeric("Quantity", &x.quantity);
                self.concepts("Unit", &x.unit);
                self.cs_selection("UnitCS", &x.unit_cs);
                self.concepts("AnatomicSite", &x.anatomic_site);
                self.cs_selection("AnatomicSiteCS", &x.anatomic_site_cs);
                self.concepts("DiseaseStatus", &x.disease_status);
                self.cs_selection("DiseaseStatusCS", &x.disease_status_cs);
                self.text("SourceId", &x.source_id);
                self.codeset("SpecimenSourceConcept", x.specimen_source_concept);
                if x.specimen_source_concept.is_some() {
                    self.warn(
                        "SpecimenSourceConcept",
                        "circe-be ignores SpecimenSourceConcept",
                    );
                }
                self.numeric("Age", &x.age);
                self.concepts("Gender", &x.gender);
                self.cs_selection("GenderCS", &x.gender_cs);
                if adj.is_some() {
                    self.warn(
                        "DateAdjustment",
                        "circe-be ignores DateAdjustment on Specimen",
                    );
                }
            }
            Criteria::Death(x) => {
                self.codeset("CodesetId", x.codeset_id);
                self.date_range("OccurrenceStartDate", &x.occurrence_start_date);
                self.concepts("DeathType", &x.death_type);
                self.cs_selection("DeathTypeCS", &x.death_type_cs);
                self.codeset("DeathSourceConcept", x.death_source_concept);
                self.numeric("Age", &x.age);
                self.concepts("Gender", &x.gender);
                self.cs_selection("GenderCS", &x.gender_cs);
            }
            Criteria::ObservationPeriod(x) => {
                self.date_range("PeriodStartDate", &x.period_start_date);
                self.date_range("PeriodEndDate", &x.period_end_date);
                self.period("UserDefinedPeriod", &x.user_defined_period);
                self.concepts("PeriodType", &x.period_type);
                self.cs_selection("PeriodTypeCS", &x.period_type_cs);
                self.numeric("PeriodLength", &x.period_length);
                self.numeric("AgeAtStart", &x.age_at_start);
                self.numeric("AgeAtEnd", &x.age_at_end);
            }
            Criteria::PayerPlanPeriod(x) => {
                self.date_range("PeriodStartDate", &x.period_start_date);
                self.date_range("PeriodEndDate", &x.period_end_date);
                self.period("UserDefinedPeriod", &x.user_defined_period);
                self.numeric("PeriodLength", &x.period_length);
                self.numeric("AgeAtStart", &x.age_at_start);
                self.numeric("AgeAtEnd", &x.age_at_end);
                self.concepts("Gender", &x.gender);
                self.cs_selection("GenderCS", &x.gender_cs);
                self.codeset("PayerConcept", x.payer_concept);
                self.codeset("PlanConcept", x.plan_concept);
                self.codeset("SponsorConcept", x.sponsor_concept);
                self.codeset("StopReasonConcept", x.stop_reason_concept);
                self.codeset("PayerSourceConcept", x.payer_source_concept);
                self.codeset("PlanSourceConcept", x.plan_source_concept);
                self.codeset("SponsorSourceConcept", x.sponsor_source_concept);
                self.codeset("StopReasonSourceConcept", x.stop_reason_source_concept);
            }
            Criteria::LocationRegion(x) => {
                self.codeset("CodesetId", x.codeset_id);
                self.date_range("StartDate", &x.start_date);
                self.date_range("EndDate", &x.end_date);
                if x.start_date.is_some() || x.end_date.is_some() {
                    self.warn("", "circe-be ignores LocationRegion StartDate/EndDate");
                }
                if adj.is_some() {
                    self.warn(
                        "DateAdjustment",
                        "circe-be ignores DateAdjustment on LocationRegion",
                    );
                }
            }
        }
        if let Some(g) = corr {
            self.push("CorrelatedCriteria");
            self.group(g);
            self.pop();
        }
        self.pop();
    }
}

/// Returns (errors, warnings).
pub(crate) fn validate(e: &CohortExpression) -> (Vec<Issue>, Vec<Issue>) {
    let mut codesets: BTreeMap<i32, &ConceptSet> = BTreeMap::new();
    let mut errors = Vec::new();
    for (i, cs) in e.concept_sets.iter().enumerate() {
        if codesets.insert(cs.id, cs).is_some() {
            errors.push(Issue {
                path: format!("ConceptSets[{i}].id"),
                message: format!("duplicate concept set id {}", cs.id),
            });
        }
        if let Some(expr) = &cs.expression {
            for (j, item) in expr.items.iter().enumerate() {
                let path = format!("ConceptSets[{i}].expression.items[{j}].concept.CONCEPT_ID");
                match item.concept.concept_id {
                    None => errors.push(Issue {
                        path,
                        message: "missing CONCEPT_ID".into(),
                    }),
                    Some(id) if i32::try_from(id).is_err() => errors.push(Issue {
                        path,
                        message: format!("CONCEPT_ID {id} out of range"),
                    }),
                    _ => {}
                }
            }
        }
    }
    let mut v = V {
        path: Vec::new(),
        errors,
        warnings: Vec::new(),
        codesets: &codesets,
        used: BTreeSet::new(),
    };

    match &e.primary_criteria {
        None => v.err("PrimaryCriteria", "missing primary criteria"),
        Some(pc) => {
            v.push("PrimaryCriteria");
            if pc.criteria_list.is_empty() {
                v.warn(
                    "CriteriaList",
                    "no entry event criteria: the cohort is empty",
                );
            }
            for (i, c) in pc.criteria_list.iter().enumerate() {
                v.push("CriteriaList");
                v.push(format!("[{i}]"));
                v.criteria(c);
                v.pop();
                v.pop();
            }
            if pc.observation_window.is_none() {
                v.err("ObservationWindow", "missing observation window");
            }
            v.pop();
        }
    }
    if let Some(g) = &e.additional_criteria {
        v.push("AdditionalCriteria");
        v.group(g);
        v.pop();
    }
    if e.inclusion_rules.len() > 62 {
        v.err(
            "InclusionRules",
            "more than 62 inclusion rules are not supported",
        );
    }
    for (i, r) in e.inclusion_rules.iter().enumerate() {
        v.push("InclusionRules");
        v.push(format!("[{i}]"));
        match &r.expression {
            None => v.err("expression", "missing inclusion rule expression"),
            Some(g) => {
                v.push("expression");
                v.group(g);
                v.pop();
            }
        }
        v.pop();
        v.pop();
    }
    match &e.end_strategy {
        Some(EndStrategy::CustomEra(ce)) => {
            v.push("EndStrategy");
            v.push("CustomEra");
            match ce.drug_codeset_id {
                None => v.err("DrugCodesetId", "missing drug concept set"),
                Some(id) => v.codeset("DrugCodesetId", Some(id)),
            }
            v.pop();
            v.pop();
        }
        Some(EndStrategy::DateOffset(_)) | None => {}
    }
    for (i, c) in e.censoring_criteria.iter().enumerate() {
        v.push("CensoringCriteria");
        v.push(format!("[{i}]"));
        v.criteria(c);
        v.pop();
        v.pop();
    }
    v.period("CensorWindow", &e.censor_window);

    // Design-time warnings (a subset of circe-be's checkers).
    for cs in &e.concept_sets {
        if !v.used.contains(&cs.id) {
            let name = cs.name.clone().unwrap_or_default();
            v.warnings.push(Issue {
                path: String::new(),
                message: format!("Concept Set \"{name}\" is not used"),
            });
        } else if cs.expression.as_ref().is_none_or(|x| x.items.is_empty()) {
            let name = cs.name.clone().unwrap_or_default();
            v.warnings.push(Issue {
                path: String::new(),
                message: format!("Concept set {name} contains no concepts"),
            });
        }
    }
    let primary_all = e
        .primary_criteria
        .as_ref()
        .is_some_and(|p| ResultLimit::kind(&p.primary_limit) == LimitType::All);
    if primary_all && e.end_strategy.is_none() && e.censoring_criteria.is_empty() {
        v.warnings.push(Issue {
            path: String::new(),
            message: "\"all events\" are selected and cohort exit criteria has not been specified"
                .into(),
        });
    }
    (v.errors, v.warnings)
}
