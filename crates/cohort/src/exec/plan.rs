//! Compiles the Circe model into an execution plan: every domain criteria becomes a generic
//! [`CritNode`] (table, codeset joins, First, date adjustment, filters) following the circe-be
//! `*SqlBuilder` classes clause by clause, including their quirks.

use std::fmt::{self, Write as _};

use qiao_cdm::date::{self, Day};

use crate::model::domains::{self, check_column};
use crate::model::*;

/// A date a filter compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateExpr {
    /// The criteria's (adjusted) start date.
    Start,
    /// The criteria's (adjusted) end date.
    End,
}

/// A number a filter compares.
#[derive(Debug, Clone, PartialEq)]
pub enum NumExpr {
    /// A domain column (integer or float).
    Col(&'static str),
    /// `YEAR(start or end) - person.year_of_birth`.
    Age { at_end: bool },
    /// `DATEDIFF(d, start, end)`.
    Duration,
    /// `value_as_number / NULLIF(range_low|range_high, 0)`.
    Ratio(&'static str),
}

/// A concept a filter tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConceptExpr {
    /// A concept column of the domain table.
    Col(&'static str),
    /// `person.gender_concept_id` (and race/ethnicity).
    Person(&'static str),
    /// `provider.specialty_concept_id` via the row's provider_id (LEFT JOIN).
    ProviderSpecialty,
    /// `visit_occurrence.visit_concept_id` via the row's visit_occurrence_id (INNER JOIN).
    VisitConcept,
    /// `care_site.place_of_service_concept_id` via the row's care_site_id (INNER JOIN).
    PlaceOfService,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Date {
        expr: DateExpr,
        op: RangeOp,
        a: Day,
        b: Day,
    },
    Num {
        expr: NumExpr,
        op: RangeOp,
        a: f64,
        b: f64,
    },
    /// `col [not] in (list)`.
    InList {
        col: ConceptExpr,
        ids: Vec<i32>,
        negate: bool,
    },
    /// `col [not] in (codeset)`, or `col is [not] null` without a codeset.
    InCodeset {
        col: ConceptExpr,
        codeset: Option<i32>,
        exclude: bool,
    },
    Text {
        col: &'static str,
        op: TextOp,
        text: String,
    },
    /// Measurement `Abnormal`.
    Abnormal,
    /// `start <= d and end >= d` on the raw period (UserDefinedPeriod).
    Covers(Day),
    /// `end_date >= start_date` after a date adjustment.
    EndGeStart,
    /// LocationRegion: `location_history.domain_id = 'PERSON'`.
    DomainIsPerson,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adjust {
    pub start_from_end: bool,
    pub start_offset: i32,
    pub end_from_end: bool,
    pub end_offset: i32,
}

pub use crate::model::domains::{count_kind, CountKind};

/// One domain criteria, compiled.
#[derive(Debug, Clone)]
pub struct CritNode {
    pub kind: &'static str,
    pub table: &'static str,
    /// `JOIN #Codesets` on the domain concept.
    pub codeset: Option<i32>,
    /// `JOIN #Codesets` on a source concept column.
    pub source: Option<(&'static str, i32)>,
    /// LocationRegion: codeset on `location.region_concept_id`.
    pub region_codeset: Option<i32>,
    pub first: bool,
    pub adjust: Option<Adjust>,
    /// UserDefinedPeriod replaces the output start/end (sort date stays the period's start).
    pub user_start: Option<Day>,
    pub user_end: Option<Day>,
    pub filters: Vec<Filter>,
    /// INNER JOIN PERSON (orphans drop out).
    pub needs_person: bool,
    /// The visit_occurrence_id column (None: `CAST(NULL as bigint)`).
    pub visit_col: Option<&'static str>,
    pub correlated: Option<GroupPlan>,
}

impl CritNode {
    /// Checks every column this node reads against `qiao_cdm::schema` (Err: the first one
    /// missing): a misspelt column name is an error when a definition is planned.
    pub fn check_columns(&self) -> Result<(), String> {
        let own = |c: &str| check_column(self.table, c);
        let concept = |c: &ConceptExpr| match c {
            ConceptExpr::Col(c) => own(c),
            ConceptExpr::Person(c) => check_column("person", c),
            ConceptExpr::ProviderSpecialty => check_column("provider", "specialty_concept_id"),
            ConceptExpr::VisitConcept => check_column("visit_occurrence", "visit_concept_id"),
            ConceptExpr::PlaceOfService => check_column("care_site", "place_of_service_concept_id"),
        };
        if let Some((c, _)) = self.source {
            own(c)?;
        }
        if let Some(c) = self.visit_col {
            own(c)?;
        }
        for f in &self.filters {
            match f {
                Filter::Num {
                    expr: NumExpr::Col(c),
                    ..
                } => own(c)?,
                Filter::Num {
                    expr: NumExpr::Ratio(c),
                    ..
                } => {
                    own(c)?;
                    own("value_as_number")?;
                }
                Filter::InList { col, .. } | Filter::InCodeset { col, .. } => concept(col)?,
                Filter::Text { col, .. } => own(col)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether a matched row may still fail to be an event: a person row required, a source or
    /// region join, a date adjustment or an attribute filter (`First` aside).
    pub fn tests_rows(&self) -> bool {
        self.needs_person
            || self.source.is_some()
            || self.region_codeset.is_some()
            || self.adjust.is_some()
            || !self.filters.is_empty()
    }

    /// Whether `self` and `other` select the same events (rows, row tests and adjusted dates),
    /// whatever each then does with them (`First`, a user-defined period, correlated criteria).
    pub fn same_events(&self, other: &CritNode) -> bool {
        self.table == other.table
            && self.codeset == other.codeset
            && self.source == other.source
            && self.region_codeset == other.region_codeset
            && self.adjust == other.adjust
            && self.filters == other.filters
            && self.needs_person == other.needs_person
            && self.visit_col == other.visit_col
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// index date + offset
    Days(i64),
    OpStart,
    OpEnd,
    Unbounded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPlan {
    pub index_end: bool,
    pub event_end: bool,
    pub lo: Bound,
    pub hi: Bound,
}

#[derive(Debug, Clone)]
pub struct CorrPlan {
    pub node: usize,
    pub check_op: bool,
    pub start: WindowPlan,
    pub end: Option<WindowPlan>,
    pub restrict_visit: bool,
    /// 0 exactly, 1 at most, 2 at least
    pub occ_type: i32,
    pub occ_count: i64,
    pub distinct: Option<CountKind>,
}

impl CorrPlan {
    /// Whether `n` occurrences (events, or distinct values) satisfy the occurrence test.
    #[inline]
    pub fn satisfied(&self, n: i64) -> bool {
        match self.occ_type {
            0 => n == self.occ_count,
            1 => n <= self.occ_count,
            _ => n >= self.occ_count,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DemoPlan {
    pub filters: Vec<DemoFilter>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DemoFilter {
    Age {
        op: RangeOp,
        a: f64,
        b: f64,
    },
    InList {
        col: &'static str,
        ids: Vec<i32>,
    },
    InCodeset {
        col: &'static str,
        codeset: Option<i32>,
        exclude: bool,
    },
    Date {
        end: bool,
        op: RangeOp,
        a: Day,
        b: Day,
    },
}

#[derive(Debug, Clone)]
pub enum Member {
    Corr(CorrPlan),
    Demo(DemoPlan),
    Group(GroupPlan),
}

#[derive(Debug, Clone)]
pub struct GroupPlan {
    pub kind: GroupType,
    pub count: i64,
    pub members: Vec<Member>,
}

impl GroupPlan {
    /// Whether the group passes when `n` of its members are satisfied.
    #[inline]
    pub fn passes(&self, n: i64) -> bool {
        match self.kind {
            GroupType::All => n == self.members.len() as i64,
            GroupType::Any => n > 0,
            GroupType::AtLeast => n >= self.count,
            GroupType::AtMost => n <= self.count,
        }
    }
}

#[derive(Debug, Clone)]
pub enum EndPlan {
    /// Cohort exit at the observation period end.
    OpEnd,
    DateOffset {
        from_end: bool,
        offset: i32,
    },
    CustomEra {
        codeset: i32,
        gap: i32,
        offset: i32,
        supply_override: Option<i32>,
    },
}

/// The whole cohort, compiled.
#[derive(Debug, Clone)]
pub struct Plan {
    pub nodes: Vec<CritNode>,
    pub primary: Vec<usize>,
    pub prior_days: i32,
    pub post_days: i32,
    pub primary_limit: LimitType,
    pub additional: Option<GroupPlan>,
    pub additional_present: bool,
    pub qualified_limit: LimitType,
    pub rules: Vec<(String, GroupPlan)>,
    pub expression_limit: LimitType,
    pub end: EndPlan,
    pub censoring: Vec<usize>,
    pub era_pad: i32,
    pub censor_start: Option<Day>,
    pub censor_end: Option<Day>,
}

/// A construct the engine cannot execute (never silently ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub path: String,
    pub what: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.what)
    }
}

/// Which column a distinct occurrence count reads, as each circe-be builder allows it
/// (None: circe-be rejects it or would generate invalid SQL).
pub fn count_column_supported(c: &Criteria, col: CriteriaColumn) -> Option<CountKindPublic> {
    count_kind(c, col).map(CountKindPublic)
}

/// Opaque handle returned by [`count_column_supported`].
#[derive(Debug, Clone, Copy)]
pub struct CountKindPublic(#[allow(dead_code)] pub CountKind);

/// Java `Number.intValue()` of a JSON number (truncation toward zero, saturating).
fn int_value(v: f64) -> f64 {
    v.trunc().clamp(i32::MIN as f64, i32::MAX as f64)
}

/// `String.format(Locale.US, "%.4f", v)` read back as a number.
fn four_decimals(v: f64) -> f64 {
    let s = format!("{:.4}", v);
    s.parse().unwrap_or(v)
}

fn day(s: &Option<String>) -> Day {
    s.as_deref().and_then(parse_date).unwrap_or(date::NULL_DAY)
}

struct Compiler {
    nodes: Vec<CritNode>,
    path: Vec<String>,
    /// Elements the engine will not execute, collected so that every one is named, not only the
    /// first.
    unsupported: Vec<Unsupported>,
}

fn concept_ids(list: &[Concept]) -> Vec<i32> {
    list.iter()
        .filter_map(|c| c.concept_id.and_then(|id| i32::try_from(id).ok()))
        .collect()
}

/// Attribute-adding helpers shared by the builders.
struct Fb {
    filters: Vec<Filter>,
    needs_person: bool,
}

impl Fb {
    fn date(&mut self, expr: DateExpr, r: &Option<DateRange>) {
        if let Some(r) = r {
            self.filters.push(Filter::Date {
                expr,
                op: r.op.unwrap_or(RangeOp::Eq),
                a: day(&r.value),
                b: day(&r.extent),
            });
        }
    }
    /// `buildNumericRangeClause` without a format: integer literals.
    fn int(&mut self, expr: NumExpr, r: &Option<NumericRange>) {
        if let Some(r) = r {
            if matches!(expr, NumExpr::Age { .. }) {
                self.needs_person = true;
            }
            self.filters.push(Filter::Num {
                expr,
                op: r.op.unwrap_or(RangeOp::Eq),
                a: int_value(r.value.unwrap_or(0.0)),
                b: int_value(r.extent.unwrap_or(0.0)),
            });
        }
    }
    /// `buildNumericRangeClause(..., ".4f")`.
    fn dec(&mut self, expr: NumExpr, r: &Option<NumericRange>) {
        if let Some(r) = r {
            self.filters.push(Filter::Num {
                expr,
                op: r.op.unwrap_or(RangeOp::Eq),
                a: four_decimals(r.value.unwrap_or(0.0)),
                b: four_decimals(r.extent.unwrap_or(0.0)),
            });
        }
    }
    fn list(&mut self, col: ConceptExpr, list: &Option<Vec<Concept>>, negate: bool) {
        if let Some(list) = list {
            if !list.is_empty() {
                if matches!(col, ConceptExpr::Person(_)) {
                    self.needs_person = true;
                }
                self.filters.push(Filter::InList {
                    col,
                    ids: concept_ids(list),
                    negate,
                });
            }
        }
    }
    fn cs(&mut self, col: ConceptExpr, sel: &Option<ConceptSetSelection>) {
        if let Some(sel) = sel {
            if matches!(col, ConceptExpr::Person(_)) {
                self.needs_person = true;
            }
            self.filters.push(Filter::InCodeset {
                col,
                codeset: sel.codeset_id,
                exclude: sel.is_exclusion,
            });
        }
    }
    /// `col in (select concept_id from #Codesets where codeset_id = id)` (PayerPlanPeriod).
    fn cs_id(&mut self, col: &'static str, id: Option<i32>) {
        if let Some(id) = id {
            self.filters.push(Filter::InCodeset {
                col: ConceptExpr::Col(col),
                codeset: Some(id),
                exclude: false,
            });
        }
    }
    fn text(&mut self, col: &'static str, t: &Option<TextFilter>) {
        if let Some(t) = t {
            self.filters.push(Filter::Text {
                col,
                op: t.op.unwrap_or(TextOp::Contains),
                // circe-be formats a missing text as "null".
                text: t.text.clone().unwrap_or_else(|| "null".into()),
            });
        }
    }
    fn gender(&mut self, list: &Option<Vec<Concept>>, cs: &Option<ConceptSetSelection>) {
        self.list(ConceptExpr::Person("gender_concept_id"), list, false);
        self.cs(ConceptExpr::Person("gender_concept_id"), cs);
    }
}

impl Compiler {
    fn at(&self, key: &str) -> String {
        let mut p = String::new();
        for seg in self.path.iter().map(String::as_str).chain(Some(key)) {
            if seg.is_empty() {
                continue;
            }
            if !p.is_empty() && !seg.starts_with('[') {
                p.push('.');
            }
            p.push_str(seg);
        }
        p
    }

    fn place_of_service_location(&mut self) {
        self.unsupported.push(Unsupported {
            path: self.at("PlaceOfServiceLocation"),
            what: "PlaceOfServiceLocation (care site location history) is not supported: circe-be's SQL for it references columns its own subquery does not select".into(),
        });
    }

    fn criteria(&mut self, c: &Criteria) -> Result<usize, Unsupported> {
        self.path.push(c.name().to_string());
        let r = self.criteria_inner(c);
        self.path.pop();
        r
    }

    fn criteria_inner(&mut self, c: &Criteria) -> Result<usize, Unsupported> {
        let (corr, adj) = c.common();
        let mut fb = Fb {
            filters: Vec::new(),
            needs_person: false,
        };
        let dom = domains::domain_of(c);
        // The criteria's `<Domain>SourceConcept` joined on its domain's source concept column.
        let source = |cs: Option<i32>| cs.and_then(|s| dom.source_concept.map(|col| (col, s)));
        let mut node = CritNode {
            kind: c.name(),
            table: dom.table.name,
            codeset: None,
            source: None,
            region_codeset: None,
            first: false,
            adjust: None,
            user_start: None,
            user_end: None,
            filters: Vec::new(),
            needs_person: false,
            visit_col: dom.visit,
            correlated: None,
        };
        // Every builder but Specimen and LocationRegion applies the date adjustment and then keeps
        // only rows with end >= start.
        // DeathSqlBuilder ignores StartWith/EndWith: it always adjusts death_date (start) and
        // death_date + 1 (end).
        let is_death = matches!(c, Criteria::Death(_));
        let adjust = adj.as_ref().map(|a| Adjust {
            start_from_end: !is_death && a.start_with == Some(DateType::EndDate),
            start_offset: a.start_offset,
            end_from_end: is_death || a.end_with.unwrap_or(DateType::EndDate) == DateType::EndDate,
            end_offset: a.end_offset,
        });
        let apply_adjust = !matches!(c, Criteria::Specimen(_) | Criteria::LocationRegion(_));
        if apply_adjust && adjust.is_some() {
            node.adjust = adjust;
            fb.filters.push(Filter::EndGeStart);
        }
        use ConceptExpr as CE;
        use NumExpr as N;
        match c {
            Criteria::ConditionOccurrence(x) => {
                node.codeset = x.codeset_id;
                node.source = source(x.condition_source_concept);
                node.first = x.first == Some(true);
                fb.date(DateExpr::Start, &x.occurrence_start_date);
                fb.date(DateExpr::End, &x.occurrence_end_date);
                fb.list(
                    CE::Col("condition_type_concept_id"),
                    &x.condition_type,
                    x.condition_type_exclude == Some(true),
                );
                fb.cs(CE::Col("condition_type_concept_id"), &x.condition_type_cs);
                fb.text("stop_reason", &x.stop_reason);
                fb.int(N::Age { at_end: false }, &x.age);
                fb.gender(&x.gender, &x.gender_cs);
                fb.list(CE::ProviderSpecialty, &x.provider_specialty, false);
                fb.cs(CE::ProviderSpecialty, &x.provider_specialty_cs);
                fb.list(CE::VisitConcept, &x.visit_type, false);
                fb.cs(CE::VisitConcept, &x.visit_type_cs);
                fb.list(
                    CE::Col("condition_status_concept_id"),
                    &x.condition_status,
                    false,
                );
                fb.cs(
                    CE::Col("condition_status_concept_id"),
                    &x.condition_status_cs,
                );
            }
            Criteria::DrugExposure(x) => {
                node.codeset = x.codeset_id;
                node.source = source(x.drug_source_concept);
                node.first = x.first == Some(true);
                fb.date(DateExpr::Start, &x.occurrence_start_date);
                // circe-be compares OccurrenceEndDate with C.start_date.
                fb.date(DateExpr::Start, &x.occurrence_end_date);
                fb.list(
                    CE::Col("drug_type_concept_id"),
                    &x.drug_type,
                    x.drug_type_exclude == Some(true),
                );
                fb.cs(CE::Col("drug_type_concept_id"), &x.drug_type_cs);
                fb.text("stop_reason", &x.stop_reason);
                fb.int(N::Col("refills"), &x.refills);
                fb.dec(N::Col("quantity"), &x.quantity);
                fb.int(N::Col("days_supply"), &x.days_supply);
                fb.list(CE::Col("route_concept_id"), &x.route_concept, false);
                fb.cs(CE::Col("route_concept_id"), &x.route_concept_cs);
                fb.dec(N::Col("effective_drug_dose"), &x.effective_drug_dose);
                fb.list(CE::Col("dose_unit_concept_id"), &x.dose_unit, false);
                fb.cs(CE::Col("dose_unit_concept_id"), &x.dose_unit_cs);
                fb.text("lot_number", &x.lot_number);
                fb.int(N::Age { at_end: false }, &x.age);
                fb.gender(&x.gender, &x.gender_cs);
                fb.list(CE::ProviderSpecialty, &x.provider_specialty, false);
                fb.cs(CE::ProviderSpecialty, &x.provider_specialty_cs);
                fb.list(CE::VisitConcept, &x.visit_type, false);
                fb.cs(CE::VisitConcept, &x.visit_type_cs);
            }
            Criteria::DrugEra(x) => {
                node.codeset = x.codeset_id;
                node.first = x.first == Some(true);
                fb.date(DateExpr::Start, &x.era_start_date);
                fb.date(DateExpr::End, &x.era_end_date);
                fb.int(N::Col("drug_exposure_count"), &x.occurrence_count);
                fb.int(N::Duration, &x.era_length);
                if x.gap_days.is_some() {
                    // circe-be filters gap_days with the EraLength range.
                    fb.int(N::Col("gap_days"), &x.era_length);
                }
                fb.int(N::Age { at_end: false }, &x.age_at_start);
                fb.int(N::Age { at_end: true }, &x.age_at_end);
                fb.gender(&x.gender, &x.gender_cs);
            }
            Criteria::ConditionEra(x) => {
                node.codeset = x.codeset_id;
                node.first = x.first == Some(true);
                fb.date(DateExpr::Start, &x.era_start_date);
                fb.date(DateExpr::End, &x.era_end_date);
                fb.int(N::Col("condition_occurrence_count"), &x.occurrence_count);
                fb.int(N::Duration, &x.era_length);
                fb.int(N::Age { at_end: false }, &x.age_at_start);
                fb.int(N::Age { at_end: true }, &x.age_at_end);
                fb.gender(&x.gender, &x.gender_cs);
            }
            Criteria::DoseEra(x) => {
                node.codeset = x.codeset_id;
                node.first = x.first == Some(true);
                fb.date(DateExpr::Start, &x.era_start_date);
                fb.date(DateExpr::End, &x.era_end_date);
                fb.list(CE::Col("unit_concept_id"), &x.unit, false);
                fb.cs(CE::Col("unit_concept_id"), &x.unit_cs);
                fb.dec(N::Col("dose_value"), &x.dose_value);
                fb.int(N::Duration, &x.era_length);
                fb.int(N::Age { at_end: false }, &x.age_at_start);
                fb.int(N::Age { at_end: true }, &x.age_at_end);
                fb.gender(&x.gender, &x.gender_cs);
            }
            Criteria::ProcedureOccurrence(x) => {
                node.codeset = x.codeset_id;
                node.source = source(x.procedure_source_concept);
                node.first = x.first == Some(true);
                fb.date(DateExpr::Start, &x.occurrence_start_date);
                fb.list(
                    CE::Col("procedure_type_concept_id"),
                    &x.procedure_type,
                    x.procedure_type_exclude == Some(true),
                );
                fb.cs(CE::Col("procedure_type_concept_id"), &x.procedure_type_cs);
                fb.list(CE::Col("modifier_concept_id"), &x.modifier, false);
                fb.cs(CE::Col("modifier_concept_id"), &x.modifier_cs);
                fb.int(N::Col("quantity"), &x.quantity);
                fb.int(N::Age { at_end: false }, &x.age);
                fb.gender(&x.gender, &x.gender_cs);
                fb.list(CE::ProviderSpecialty, &x.provider_specialty, false);
                fb.cs(CE::ProviderSpecialty, &x.provider_specialty_cs);
                fb.list(CE::VisitConcept, &x.visit_type, false);
                fb.cs(CE::VisitConcept, &x.visit_type_cs);
            }
            Criteria::Measurement(x) => {
                node.codeset = x.codeset_id;
                node.source = source(x.measurement_source_concept);
                node.first = x.first == Some(true);
                fb.date(DateExpr::Start, &x.occurrence_start_date);
                fb.list(
                    CE::Col("measurement_type_concept_id"),
                    &x.measurement_type,
                    x.measurement_type_exclude == Some(true),
                );
                fb.cs(
                    CE::Col("measurement_type_concept_id"),
                    &x.measurement_type_cs,
                );
                fb.list(CE::Col("operator_concept_id"), &x.operator, false);
                fb.cs(CE::Col("operator_concept_id"), &x.operator_cs);
                fb.dec(N::Col("value_as_number"), &x.value_as_number);
                fb.list(CE::Col("value_as_concept_id"), &x.value_as_concept, false);
                fb.cs(CE::Col("value_as_concept_id"), &x.value_as_concept_cs);
                fb.list(CE::Col("unit_concept_id"), &x.unit, false);
                fb.cs(CE::Col("unit_concept_id"), &x.unit_cs);
                fb.dec(N::Col("range_low"), &x.range_low);
                fb.dec(N::Col("range_high"), &x.range_high);
                fb.dec(N::Ratio("range_low"), &x.range_low_ratio);
                fb.dec(N::Ratio("range_high"), &x.range_high_ratio);
                if x.abnormal == Some(true) {
                    // MeasurementSqlBuilder's Abnormal clause reads C.value_as_concept_id, which its
                    // subquery selects only for ValueAsConcept / ValueAsConceptCS.
                    let selects_value_concept =
                        x.value_as_concept.as_ref().is_some_and(|v| !v.is_empty())
                            || x.value_as_concept_cs.is_some();
                    if !selects_value_concept {
                        self.unsupported.push(Unsupported {
                            path: self.at("Abnormal"),
                            what: "Abnormal without ValueAsConcept or ValueAsConceptCS is not supported: circe-be's SQL for it reads C.value_as_concept_id, which its subquery does not select, and fails on every database".into(),
                        });
                    }
                    fb.filters.push(Filter::Abnormal);
                }
                fb.int(N::Age { at_end: false }, &x.age);
                fb.gender(&x.gender, &x.gender_cs);
                fb.list(CE::ProviderSpecialty, &x.provider_specialty, false);
                fb.cs(CE::ProviderSpecialty, &x.provider_specialty_cs);
                fb.list(CE::VisitConcept, &x.visit_type, false);
                fb.cs(CE::VisitConcept, &x.visit_type_cs);
            }
            Criteria::Observation(x) => {
                node.codeset = x.codeset_id;
                node.source = source(x.observation_source_concept);
                node.first = x.first == Some(true);
                fb.date(DateExpr::Start, &x.occurrence_start_date);
                fb.list(
                    CE::Col("observation_type_concept_id"),
                    &x.observation_type,
                    x.observation_type_exclude == Some(true),
                );
                fb.cs(
                    CE::Col("observation_type_concept_id"),
                    &x.observation_type_cs,
                );
                fb.dec(N::Col("value_as_number"), &x.value_as_number);
                fb.text("value_as_string", &x.value_as_string);
                fb.list(CE::Col("value_as_concept_id"), &x.value_as_concept, false);
                fb.cs(CE::Col("value_as_concept_id"), &x.value_as_concept_cs);
                fb.list(CE::Col("qualifier_concept_id"), &x.qualifier, false);
                fb.cs(CE::Col("qualifier_concept_id"), &x.qualifier_cs);
                fb.list(CE::Col("unit_concept_id"), &x.unit, false);
                fb.cs(CE::Col("unit_concept_id"), &x.unit_cs);
                fb.int(N::Age { at_end: false }, &x.age);
                fb.gender(&x.gender, &x.gender_cs);
                fb.list(CE::ProviderSpecialty, &x.provider_specialty, false);
                fb.cs(CE::ProviderSpecialty, &x.provider_specialty_cs);
                fb.list(CE::VisitConcept, &x.visit_type, false);
                fb.cs(CE::VisitConcept, &x.visit_type_cs);
            }
            Criteria::VisitOccurrence(x) => {
                node.codeset = x.codeset_id;
                node.source = source(x.visit_source_concept);
                node.first = x.first == Some(true);
                if x.place_of_service_location.is_some() {
                    self.place_of_service_location();
                }
                fb.date(DateExpr::Start, &x.occurrence_start_date);
                fb.date(DateExpr::End, &x.occurrence_end_date);
                fb.list(
                    CE::Col("visit_type_concept_id"),
                    &x.visit_type,
                    x.visit_type_exclude == Some(true),
                );
                fb.cs(CE::Col("visit_type_concept_id"), &x.visit_type_cs);
                fb.int(N::Duration, &x.visit_length);
                fb.int(N::Age { at_end: false }, &x.age);
                fb.gender(&x.gender, &x.gender_cs);
                fb.list(CE::ProviderSpecialty, &x.provider_specialty, false);
                fb.cs(CE::ProviderSpecialty, &x.provider_specialty_cs);
                fb.list(CE::PlaceOfService, &x.place_of_service, false);
                fb.cs(CE::PlaceOfService, &x.place_of_service_cs);
            }
            Criteria::VisitDetail(x) => {
                node.codeset = x.codeset_id;
                node.source = source(x.visit_detail_source_concept);
                node.first = x.first == Some(true);
                if x.place_of_service_location.is_some() {
                    self.place_of_service_location();
                }
                fb.date(DateExpr::Start, &x.visit_detail_start_date);
                fb.date(DateExpr::End, &x.visit_detail_end_date);
                fb.cs(
                    CE::Col("visit_detail_type_concept_id"),
                    &x.visit_detail_type_cs,
                );
                fb.int(N::Duration, &x.visit_detail_length);
                // circe-be computes VisitDetail Age at the end date.
                fb.int(N::Age { at_end: true }, &x.age);
                fb.cs(CE::Person("gender_concept_id"), &x.gender_cs);
                fb.cs(CE::ProviderSpecialty, &x.provider_specialty_cs);
                fb.cs(CE::PlaceOfService, &x.place_of_service_cs);
            }
            Criteria::DeviceExposure(x) => {
                node.codeset = x.codeset_id;
                node.source = source(x.device_source_concept);
                node.first = x.first == Some(true);
                fb.date(DateExpr::Start, &x.occurrence_start_date);
                fb.date(DateExpr::End, &x.occurrence_end_date);
                fb.list(
                    CE::Col("device_type_concept_id"),
                    &x.device_type,
                    x.device_type_exclude == Some(true),
                );
                fb.cs(CE::Col("device_type_concept_id"), &x.device_type_cs);
                fb.text("unique_device_id", &x.unique_device_id);
                fb.int(N::Col("quantity"), &x.quantity);
                fb.int(N::Age { at_end: false }, &x.age);
                fb.gender(&x.gender, &x.gender_cs);
                fb.list(CE::ProviderSpecialty, &x.provider_specialty, false);
                fb.cs(CE::ProviderSpecialty, &x.provider_specialty_cs);
                fb.list(CE::VisitConcept, &x.visit_type, false);
                fb.cs(CE::VisitConcept, &x.visit_type_cs);
            }
            Criteria::Specimen(x) => {
                node.codeset = x.codeset_id;
                node.first = x.first == Some(true);
                fb.date(DateExpr::Start, &x.occurrence_start_date);
                fb.list(
                    CE::Col("specimen_type_concept_id"),
                    &x.specimen_type,
                    x.specimen_type_exclude == Some(true),
                );
                fb.cs(CE::Col("specimen_type_concept_id"), &x.specimen_type_cs);
                fb.dec(N::Col("quantity"), &x.quantity);
                fb.list(CE::Col("unit_concept_id"), &x.unit, false);
                fb.cs(CE::Col("unit_concept_id"), &x.unit_cs);
                fb.list(CE::Col("anatomic_site_concept_id"), &x.anatomic_site, false);
                fb.cs(CE::Col("anatomic_site_concept_id"), &x.anatomic_site_cs);
                fb.list(
                    CE::Col("disease_status_concept_id"),
                    &x.disease_status,
                    false,
                );
                fb.cs(CE::Col("disease_status_concept_id"), &x.disease_status_cs);
                fb.text("specimen_source_id", &x.source_id);
                fb.int(N::Age { at_end: false }, &x.age);
                fb.gender(&x.gender, &x.gender_cs);
            }
            Criteria::Death(x) => {
                node.codeset = x.codeset_id;
                node.source = source(x.death_source_concept);
                fb.date(DateExpr::Start, &x.occurrence_start_date);
                fb.list(
                    CE::Col("death_type_concept_id"),
                    &x.death_type,
                    x.death_type_exclude == Some(true),
                );
                fb.cs(CE::Col("death_type_concept_id"), &x.death_type_cs);
                fb.int(N::Age { at_end: false }, &x.age);
                fb.gender(&x.gender, &x.gender_cs);
            }
            Criteria::ObservationPeriod(x) => {
                node.first = x.first == Some(true);
                if let Some(p) = &x.user_defined_period {
                    node.user_start = p.start_date.as_deref().and_then(parse_date);
                    node.user_end = p.end_date.as_deref().and_then(parse_date);
                    if let Some(d) = node.user_start {
                        fb.filters.push(Filter::Covers(d));
                    }
                    if let Some(d) = node.user_end {
                        fb.filters.push(Filter::Covers(d));
                    }
                }
                fb.date(DateExpr::Start, &x.period_start_date);
                fb.date(DateExpr::End, &x.period_end_date);
                fb.list(CE::Col("period_type_concept_id"), &x.period_type, false);
                fb.cs(CE::Col("period_type_concept_id"), &x.period_type_cs);
                fb.int(N::Duration, &x.period_length);
                fb.int(N::Age { at_end: false }, &x.age_at_start);
                fb.int(N::Age { at_end: true }, &x.age_at_end);
            }
            Criteria::PayerPlanPeriod(x) => {
                node.first = x.first == Some(true);
                if let Some(p) = &x.user_defined_period {
                    node.user_start = p.start_date.as_deref().and_then(parse_date);
                    node.user_end = p.end_date.as_deref().and_then(parse_date);
                    if let Some(d) = node.user_start {
                        fb.filters.push(Filter::Covers(d));
                    }
                    if let Some(d) = node.user_end {
                        fb.filters.push(Filter::Covers(d));
                    }
                }
                fb.date(DateExpr::Start, &x.period_start_date);
                fb.date(DateExpr::End, &x.period_end_date);
                fb.int(N::Duration, &x.period_length);
                fb.int(N::Age { at_end: false }, &x.age_at_start);
                fb.int(N::Age { at_end: true }, &x.age_at_end);
                fb.gender(&x.gender, &x.gender_cs);
                fb.cs_id("payer_concept_id", x.payer_concept);
                fb.cs_id("plan_concept_id", x.plan_concept);
                fb.cs_id("sponsor_concept_id", x.sponsor_concept);
                fb.cs_id("stop_reason_concept_id", x.stop_reason_concept);
                fb.cs_id("payer_source_concept_id", x.payer_source_concept);
                fb.cs_id("plan_source_concept_id", x.plan_source_concept);
                fb.cs_id("sponsor_source_concept_id", x.sponsor_source_concept);
                fb.cs_id(
                    "stop_reason_source_concept_id",
                    x.stop_reason_source_concept,
                );
            }
            Criteria::LocationRegion(x) => {
                node.region_codeset = x.codeset_id;
                fb.filters.push(Filter::DomainIsPerson);
            }
        }
        node.filters = fb.filters;
        node.needs_person = fb.needs_person;
        node.check_columns().map_err(|what| Unsupported {
            path: self.at(c.name()),
            what,
        })?;
        if let Some(g) = corr {
            if !g.is_empty() {
                self.path.push("CorrelatedCriteria".into());
                let gp = self.group(g);
                self.path.pop();
                node.correlated = Some(gp?);
            }
        }
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    fn window(&self, w: &Window, check_op: bool, end_window: bool) -> WindowPlan {
        let bound = |e: &Option<Endpoint>| -> Bound {
            match e {
                Some(Endpoint {
                    days: Some(d),
                    coeff,
                }) => Bound::Days(*coeff as i64 * *d as i64),
                Some(Endpoint { days: None, coeff }) if check_op => {
                    if *coeff == -1 {
                        Bound::OpStart
                    } else {
                        Bound::OpEnd
                    }
                }
                _ => Bound::Unbounded,
            }
        };
        WindowPlan {
            index_end: w.use_index_end == Some(true),
            event_end: if end_window {
                w.use_event_end != Some(false)
            } else {
                w.use_event_end == Some(true)
            },
            lo: bound(&w.start),
            hi: bound(&w.end),
        }
    }

    fn group(&mut self, g: &CriteriaGroup) -> Result<GroupPlan, Unsupported> {
        let mut members = Vec::new();
        for (i, cc) in g.criteria_list.iter().enumerate() {
            self.path.push("CriteriaList".into());
            self.path.push(format!("[{i}]"));
            let r = self.corelated(cc);
            self.path.pop();
            self.path.pop();
            members.push(Member::Corr(r?));
        }
        for d in &g.demographic_criteria_list {
            members.push(Member::Demo(demographic(d)));
        }
        for (i, sub) in g.groups.iter().enumerate() {
            self.path.push("Groups".into());
            self.path.push(format!("[{i}]"));
            let r = self.group(sub);
            self.path.pop();
            self.path.pop();
            members.push(Member::Group(r?));
        }
        Ok(GroupPlan {
            kind: g.group_type.unwrap_or(GroupType::All),
            count: g.count.unwrap_or(0) as i64,
            members,
        })
    }

    fn corelated(&mut self, cc: &CorelatedCriteria) -> Result<CorrPlan, Unsupported> {
        let criteria = cc.criteria.as_ref().ok_or_else(|| Unsupported {
            path: self.at("Criteria"),
            what: "missing criteria".into(),
        })?;
        self.path.push("Criteria".into());
        let node = self.criteria(criteria);
        self.path.pop();
        let node = node?;
        let check_op = !cc.ignore_observation_period;
        let start = match &cc.start_window {
            Some(w) => self.window(w, check_op, false),
            None => {
                return Err(Unsupported {
                    path: self.at("StartWindow"),
                    what: "missing window".into(),
                })
            }
        };
        let end = cc
            .end_window
            .as_ref()
            .map(|w| self.window(w, check_op, true));
        let occ = cc.occurrence.as_ref().ok_or_else(|| Unsupported {
            path: self.at("Occurrence"),
            what: "missing occurrence".into(),
        })?;
        let distinct = if occ.is_distinct {
            let col = occ.count_column.unwrap_or(CriteriaColumn::DOMAIN_CONCEPT);
            let kind = count_kind(criteria, col).ok_or_else(|| Unsupported {
                path: self.at("Occurrence.CountColumn"),
                what: format!(
                    "{col:?} is not a valid count column for {}",
                    criteria.name()
                ),
            })?;
            // A criteria with its own CorrelatedCriteria is wrapped by circe-be's wrapCriteriaQuery
            // in `select PE.person_id, PE.event_id, PE.start_date, PE.end_date,
            // PE.visit_occurrence_id, PE.sort_date`: any other count column is dropped before the
            // outer COUNT(DISTINCT cc.<column>) reads it.
            let nested = criteria.common().0.as_ref().is_some_and(|g| !g.is_empty());
            if nested && !matches!(kind, CountKind::Start | CountKind::End | CountKind::Visit) {
                self.unsupported.push(Unsupported {
                    path: self.at(if occ.count_column.is_some() {
                        "Occurrence.CountColumn"
                    } else {
                        "Occurrence.IsDistinct"
                    }),
                    what: format!(
                        "a distinct count of {col:?} of a criteria with its own CorrelatedCriteria is not supported: circe-be's SQL wraps that criteria in a query that drops the column, and fails on every database"
                    ),
                });
            }
            Some(kind)
        } else {
            None
        };
        Ok(CorrPlan {
            node,
            check_op,
            start,
            end,
            restrict_visit: cc.restrict_visit,
            occ_type: occ.occurrence_type,
            occ_count: occ.count.unwrap_or(0) as i64,
            distinct,
        })
    }
}

fn demographic(d: &DemographicCriteria) -> DemoPlan {
    let mut filters = Vec::new();
    if let Some(r) = &d.age {
        filters.push(DemoFilter::Age {
            op: r.op.unwrap_or(RangeOp::Eq),
            a: int_value(r.value.unwrap_or(0.0)),
            b: int_value(r.extent.unwrap_or(0.0)),
        });
    }
    let mut list = |col: &'static str, l: &Option<Vec<Concept>>| {
        if let Some(l) = l {
            if !l.is_empty() {
                filters.push(DemoFilter::InList {
                    col,
                    ids: concept_ids(l),
                });
            }
        }
    };
    list("gender_concept_id", &d.gender);
    list("race_concept_id", &d.race);
    list("ethnicity_concept_id", &d.ethnicity);
    // circe-be tests GenderCS, RaceCS and EthnicityCS all against gender_concept_id.
    for sel in [&d.gender_cs, &d.race_cs, &d.ethnicity_cs]
        .into_iter()
        .flatten()
    {
        filters.push(DemoFilter::InCodeset {
            col: "gender_concept_id",
            codeset: sel.codeset_id,
            exclude: sel.is_exclusion,
        });
    }
    for (end, r) in [
        (false, &d.occurrence_start_date),
        (true, &d.occurrence_end_date),
    ] {
        if let Some(r) = r {
            filters.push(DemoFilter::Date {
                end,
                op: r.op.unwrap_or(RangeOp::Eq),
                a: day(&r.value),
                b: day(&r.extent),
            });
        }
    }
    DemoPlan { filters }
}

/// Compiles a validated expression.
pub fn compile(e: &CohortExpression) -> Result<Plan, Unsupported> {
    let mut c = Compiler {
        nodes: Vec::new(),
        path: Vec::new(),
        unsupported: Vec::new(),
    };
    let pc = e.primary_criteria.as_ref().ok_or_else(|| Unsupported {
        path: "PrimaryCriteria".into(),
        what: "missing primary criteria".into(),
    })?;
    let mut primary = Vec::new();
    for (i, cr) in pc.criteria_list.iter().enumerate() {
        c.path = vec![
            "PrimaryCriteria".into(),
            "CriteriaList".into(),
            format!("[{i}]"),
        ];
        primary.push(c.criteria(cr)?);
    }
    let ow = pc.observation_window.clone().unwrap_or_default();
    let additional = match &e.additional_criteria {
        Some(g) if !g.is_empty() => {
            c.path = vec!["AdditionalCriteria".into()];
            Some(c.group(g)?)
        }
        _ => None,
    };
    if e.inclusion_rules.len() > 62 {
        return Err(Unsupported {
            path: "InclusionRules".into(),
            what: "more than 62 inclusion rules".into(),
        });
    }
    let mut rules = Vec::new();
    for (i, r) in e.inclusion_rules.iter().enumerate() {
        c.path = vec![
            "InclusionRules".into(),
            format!("[{i}]"),
            "expression".into(),
        ];
        let g = match &r.expression {
            Some(g) => c.group(g)?,
            None => {
                return Err(Unsupported {
                    path: c.at(""),
                    what: "missing inclusion rule expression".into(),
                })
            }
        };
        rules.push((r.name.clone().unwrap_or_default(), g));
    }
    let end = match &e.end_strategy {
        None => EndPlan::OpEnd,
        Some(EndStrategy::DateOffset(d)) => EndPlan::DateOffset {
            from_end: d.date_field == Some(DateField::EndDate),
            offset: d.offset,
        },
        Some(EndStrategy::CustomEra(ce)) => EndPlan::CustomEra {
            codeset: ce.drug_codeset_id.ok_or_else(|| Unsupported {
                path: "EndStrategy.CustomEra.DrugCodesetId".into(),
                what: "missing drug concept set".into(),
            })?,
            gap: ce.gap_days,
            offset: ce.offset,
            supply_override: ce.days_supply_override,
        },
    };
    let mut censoring = Vec::new();
    for (i, cr) in e.censoring_criteria.iter().enumerate() {
        c.path = vec!["CensoringCriteria".into(), format!("[{i}]")];
        censoring.push(c.criteria(cr)?);
    }
    let (censor_start, censor_end) = match &e.censor_window {
        Some(p) => (
            p.start_date
                .as_deref()
                .filter(|s| !s.is_empty())
                .and_then(parse_date),
            p.end_date
                .as_deref()
                .filter(|s| !s.is_empty())
                .and_then(parse_date),
        ),
        None => (None, None),
    };
    let mut unsupported = c.unsupported.into_iter();
    if let Some(mut first) = unsupported.next() {
        // Every unsupported element is named (Display: "path: what; path: what; ...").
        for u in unsupported {
            let _ = write!(first.what, "; {u}");
        }
        return Err(first);
    }
    Ok(Plan {
        nodes: c.nodes,
        primary,
        prior_days: ow.prior_days,
        post_days: ow.post_days,
        primary_limit: ResultLimit::kind(&pc.primary_limit),
        additional,
        additional_present: e.additional_criteria.is_some(),
        qualified_limit: ResultLimit::kind(&e.qualified_limit),
        rules,
        expression_limit: ResultLimit::kind(&e.expression_limit),
        end,
        censoring,
        era_pad: e.collapse_settings.as_ref().map_or(0, |c| c.era_pad),
        censor_start,
        censor_end,
    })
}

// ---------------------------------------------------------------- explain

fn fmt_day(d: Day) -> String {
    date::format(d)
}

fn fmt_range(op: RangeOp, a: String, b: String) -> String {
    if op.is_between() {
        format!("{} {a}..{b}", op.as_str())
    } else {
        format!("{} {a}", op.as_str())
    }
}

impl Filter {
    fn describe(&self) -> String {
        match self {
            Filter::Date { expr, op, a, b } => format!(
                "{} {}",
                if *expr == DateExpr::Start {
                    "start"
                } else {
                    "end"
                },
                fmt_range(*op, fmt_day(*a), fmt_day(*b))
            ),
            Filter::Num { expr, op, a, b } => {
                let what = match expr {
                    NumExpr::Col(c) => c.to_string(),
                    NumExpr::Age { at_end: false } => "age at start".into(),
                    NumExpr::Age { at_end: true } => "age at end".into(),
                    NumExpr::Duration => "duration days".into(),
                    NumExpr::Ratio(c) => format!("value_as_number/{c}"),
                };
                format!("{what} {}", fmt_range(*op, a.to_string(), b.to_string()))
            }
            Filter::InList { col, ids, negate } => format!(
                "{} {}in {:?}",
                concept_expr_name(*col),
                if *negate { "not " } else { "" },
                ids
            ),
            Filter::InCodeset {
                col,
                codeset,
                exclude,
            } => match codeset {
                Some(id) => format!(
                    "{} {}in codeset {id}",
                    concept_expr_name(*col),
                    if *exclude { "not " } else { "" }
                ),
                None => format!(
                    "{} is {}null",
                    concept_expr_name(*col),
                    if *exclude { "" } else { "not " }
                ),
            },
            Filter::Text { col, op, text } => format!("{col} {} {text:?}", op.as_str()),
            Filter::Abnormal => "abnormal (outside range or abnormal value concept)".into(),
            Filter::Covers(d) => format!("period covers {}", fmt_day(*d)),
            Filter::EndGeStart => "end >= start".into(),
            Filter::DomainIsPerson => "location_history.domain_id = 'PERSON'".into(),
        }
    }
}

fn concept_expr_name(c: ConceptExpr) -> String {
    match c {
        ConceptExpr::Col(c) => c.to_string(),
        ConceptExpr::Person(c) => format!("person.{c}"),
        ConceptExpr::ProviderSpecialty => "provider.specialty_concept_id".into(),
        ConceptExpr::VisitConcept => "visit_occurrence.visit_concept_id".into(),
        ConceptExpr::PlaceOfService => "care_site.place_of_service_concept_id".into(),
    }
}

fn bound_name(b: Bound, index: &str) -> String {
    match b {
        Bound::Days(d) => format!("{index}{d:+}d"),
        Bound::OpStart => "op_start".into(),
        Bound::OpEnd => "op_end".into(),
        Bound::Unbounded => "unbounded".into(),
    }
}

impl Plan {
    /// The CDM tables the criteria read as their events, each once, in node order, with the
    /// first criteria reading it.
    pub fn criteria_tables(&self) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&'static str, &'static str)> = Vec::new();
        for n in &self.nodes {
            if !out.iter().any(|(t, _)| *t == n.table) {
                out.push((n.table, n.kind));
            }
        }
        out
    }

    /// Refuses the plan on a CDM that lacks a table its criteria read (`has(table)` false), as
    /// Circe's SQL fails there ("relation does not exist"): an answer of zero would read as "no
    /// such patients" where the data were never there. A table present but empty is an answer.
    /// The case in practice is LocationRegion: its `location_history` is a CDM 6.0 table that
    /// CDM 5.3 and 5.4 do not define. Every evaluator calls this, so all refuse alike.
    pub fn check_tables(&self, has: impl Fn(&str) -> bool) -> Result<(), Unsupported> {
        let missing: Vec<String> = self
            .criteria_tables()
            .into_iter()
            .filter(|(t, _)| !has(t))
            .map(|(t, kind)| format!("{t} (read by {kind})"))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Unsupported {
            path: "CDM".into(),
            what: format!(
                "this CDM has no table {}: Circe's SQL fails on such a CDM \
                 (location_history is a CDM 6.0 table; CDM 5.3 and 5.4 do not define it)",
                missing.join(", ")
            ),
        })
    }

    fn node_text(&self, out: &mut String, id: usize, indent: usize) {
        let n = &self.nodes[id];
        let pad = " ".repeat(indent);
        let _ = write!(out, "{pad}{} on {}", n.kind, n.table);
        if let Some(cs) = n.codeset {
            let _ = write!(out, ", concept in codeset {cs}");
        }
        if let Some((col, cs)) = n.source {
            let _ = write!(out, ", {col} in codeset {cs}");
        }
        if let Some(cs) = n.region_codeset {
            let _ = write!(out, ", location.region_concept_id in codeset {cs}");
        }
        if n.first {
            out.push_str(", first per person");
        }
        out.push('\n');
        if let Some(a) = n.adjust {
            let _ = writeln!(
                out,
                "{pad}  date adjustment: start = {}{:+}, end = {}{:+}",
                if a.start_from_end { "end" } else { "start" },
                a.start_offset,
                if a.end_from_end { "end" } else { "start" },
                a.end_offset
            );
        }
        if n.user_start.is_some() || n.user_end.is_some() {
            let _ = writeln!(
                out,
                "{pad}  user defined period: {} .. {}",
                n.user_start.map_or("-".into(), fmt_day),
                n.user_end.map_or("-".into(), fmt_day)
            );
        }
        for f in &n.filters {
            let _ = writeln!(out, "{pad}  where {}", f.describe());
        }
        if n.needs_person {
            let _ = writeln!(out, "{pad}  requires a person row");
        }
        if let Some(g) = &n.correlated {
            let _ = writeln!(out, "{pad}  correlated criteria:");
            self.group_text(out, g, indent + 4);
        }
    }

    fn group_text(&self, out: &mut String, g: &GroupPlan, indent: usize) {
        let pad = " ".repeat(indent);
        if g.members.is_empty() {
            let _ = writeln!(out, "{pad}(empty group: every event passes)");
            return;
        }
        let kind = match g.kind {
            GroupType::All => "ALL".to_string(),
            GroupType::Any => "ANY".to_string(),
            GroupType::AtLeast => format!("AT_LEAST {}", g.count),
            GroupType::AtMost => format!("AT_MOST {}", g.count),
        };
        let _ = writeln!(out, "{pad}{kind} of:");
        for m in &g.members {
            match m {
                Member::Corr(c) => {
                    let op = match c.occ_type {
                        0 => "exactly",
                        1 => "at most",
                        _ => "at least",
                    };
                    let distinct = c
                        .distinct
                        .map_or(String::new(), |k| format!(" distinct {k:?}"));
                    let _ = writeln!(out, "{pad}- {op} {}{distinct} of", c.occ_count);
                    self.node_text(out, c.node, indent + 4);
                    let w = &c.start;
                    let idx = if w.index_end {
                        "index_end"
                    } else {
                        "index_start"
                    };
                    let _ = writeln!(
                        out,
                        "{pad}    event {} in [{}, {}]",
                        if w.event_end { "end" } else { "start" },
                        bound_name(w.lo, idx),
                        bound_name(w.hi, idx)
                    );
                    if let Some(w) = &c.end {
                        let idx = if w.index_end {
                            "index_end"
                        } else {
                            "index_start"
                        };
                        let _ = writeln!(
                            out,
                            "{pad}    event {} in [{}, {}]",
                            if w.event_end { "end" } else { "start" },
                            bound_name(w.lo, idx),
                            bound_name(w.hi, idx)
                        );
                    }
                    if c.check_op {
                        let _ = writeln!(
                            out,
                            "{pad}    event start within the index observation period"
                        );
                    }
                    if c.restrict_visit {
                        let _ = writeln!(out, "{pad}    same visit as the index event");
                    }
                }
                Member::Demo(d) => {
                    let _ = writeln!(out, "{pad}- demographics (requires a person row):");
                    for f in &d.filters {
                        let _ = writeln!(out, "{pad}    {f:?}");
                    }
                }
                Member::Group(sub) => {
                    let _ = writeln!(out, "{pad}- group:");
                    self.group_text(out, sub, indent + 4);
                }
            }
        }
    }

    /// A readable description of the plan.
    pub fn explain(&self, codeset_sizes: &[(i32, usize)]) -> String {
        let mut out = String::new();
        out.push_str("Codesets:\n");
        for (id, n) in codeset_sizes {
            let _ = writeln!(out, "  {id}: {n} concepts");
        }
        let _ = writeln!(
            out,
            "Primary events (observation window prior {} / post {} days, limit {:?}):",
            self.prior_days, self.post_days, self.primary_limit
        );
        for &p in &self.primary {
            self.node_text(&mut out, p, 2);
        }
        if let Some(g) = &self.additional {
            let _ = writeln!(
                out,
                "Additional criteria (qualified limit {:?}):",
                self.qualified_limit
            );
            self.group_text(&mut out, g, 2);
        } else if self.additional_present {
            let _ = writeln!(out, "Qualified limit {:?}", self.qualified_limit);
        }
        for (i, (name, g)) in self.rules.iter().enumerate() {
            let _ = writeln!(out, "Inclusion rule {i} {name:?}:");
            self.group_text(&mut out, g, 2);
        }
        let _ = writeln!(out, "Expression limit {:?}", self.expression_limit);
        match &self.end {
            EndPlan::OpEnd => out.push_str("End: observation period end\n"),
            EndPlan::DateOffset { from_end, offset } => {
                let _ = writeln!(
                    out,
                    "End: {} {offset:+} days (capped at observation period end)",
                    if *from_end { "end date" } else { "start date" }
                );
            }
            EndPlan::CustomEra {
                codeset,
                gap,
                offset,
                supply_override,
            } => {
                let _ = writeln!(
                    out,
                    "End: drug era of codeset {codeset}, gap {gap}, offset {offset}, days supply override {supply_override:?} (or observation period end)"
                );
            }
        }
        if !self.censoring.is_empty() {
            out.push_str("Censoring events:\n");
            for &c in &self.censoring {
                self.node_text(&mut out, c, 2);
            }
        }
        let _ = writeln!(out, "Collapse: era pad {} days", self.era_pad);
        if self.censor_start.is_some() || self.censor_end.is_some() {
            let _ = writeln!(
                out,
                "Censor window: {} .. {}",
                self.censor_start.map_or("-".into(), fmt_day),
                self.censor_end.map_or("-".into(), fmt_day)
            );
        }
        out
    }
}
