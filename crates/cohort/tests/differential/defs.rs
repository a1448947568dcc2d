//! Random OHDSI Circe cohort definitions over the vocabulary and tables of [`super::cdm`].
//!
//! The grammar covers concept sets (descendants, mapped, excluded), primary criteria across
//! domains with observation window and limit, additional criteria, inclusion rules with
//! ALL/ANY/AT_LEAST/AT_MOST groups (nested), correlated criteria with start and end windows
//! (bounded and unbounded days, UseIndexEnd/UseEventEnd), occurrence counts (exactly/at most/at
//! least, distinct by a column), RestrictVisit, IgnoreObservationPeriod, demographic criteria,
//! First, DateAdjustment, domain attribute filters (numeric, date, concept and text), end strategies
//! (observation period end, DateOffset, CustomEra), censoring criteria, era collapse pad, censor
//! window and the three result limits.
//!
//! The primary criteria of one definition are of distinct domains: with two criteria of one domain
//! the same row can enter twice with the same `event_id` and `sort_date`, and Circe's
//! `row_number() … ORDER BY sort_date, event_id` leaves their order (and so which one a limit
//! keeps) to the database.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use super::cdm::*;

/// Constructs the generator may use. All on by default; a construct on which duckcdm departs from
/// circe-be's SQL templates is switched off for the comparison (and tested on its own).
#[derive(Debug, Clone, Copy)]
pub struct Features {
    pub death: bool,
    pub observation_period: bool,
    pub custom_era: bool,
    pub text_filters: bool,
    pub date_adjustment: bool,
    /// DateAdjustment on Death (circe-be ignores StartWith/EndWith there: see
    /// `death_date_adjustment_ignores_start_with_and_end_with`).
    pub death_date_adjustment: bool,
    /// ConditionEra and DrugEra criteria.
    pub eras: bool,
    /// DrugEra GapDays: off, duckcdm departs from circe-be there (see the test
    /// `drug_era_gap_days_is_filtered_with_the_era_length_range`).
    pub drug_era_gap_days: bool,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            death: true,
            observation_period: true,
            custom_era: true,
            text_filters: true,
            date_adjustment: true,
            death_date_adjustment: true,
            eras: true,
            drug_era_gap_days: false,
        }
    }
}

pub struct Gen<'a> {
    rng: &'a mut ChaCha8Rng,
    sets: Vec<(i32, Dom)>,
    features: Features,
}

const CLINICAL: [Dom; 6] = [
    Dom::Condition,
    Dom::Drug,
    Dom::Procedure,
    Dom::Measurement,
    Dom::Observation,
    Dom::Visit,
];

impl<'a> Gen<'a> {
    pub fn new(rng: &'a mut ChaCha8Rng, features: Features) -> Gen<'a> {
        Gen {
            rng,
            sets: Vec::new(),
            features,
        }
    }

    fn p(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    /// Whether a criteria gets an optional attribute filter of nominal probability `p` (scaled
    /// down: most random filters remove most rows, and empty cohorts compare little).
    fn a(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p * 0.6)
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        *xs.choose(self.rng).unwrap()
    }

    fn domains(&self) -> Vec<Dom> {
        let mut v = CLINICAL.to_vec();
        if self.features.death {
            v.push(Dom::Death);
        }
        if self.features.observation_period {
            v.push(Dom::ObservationPeriod);
        }
        if self.features.eras {
            v.push(Dom::ConditionEra);
            v.push(Dom::DrugEra);
        }
        v
    }

    /// A whole cohort expression.
    pub fn definition(&mut self) -> Value {
        self.sets.clear();
        let mut concept_sets = Vec::new();
        for dom in CLINICAL {
            {
                for _ in 0..self.rng.gen_range(1..=2) {
                    let id = self.sets.len() as i32;
                    concept_sets.push(self.concept_set(id, dom));
                    self.sets.push((id, dom));
                }
            }
        }
        let mut e = Map::new();
        e.insert("ConceptSets".into(), Value::Array(concept_sets));

        // Primary criteria: 1..=3 criteria of distinct domains.
        let mut doms = self.domains();
        doms.shuffle(self.rng);
        let n = *[1, 1, 1, 2, 2, 3].choose(self.rng).unwrap();
        doms.truncate(n);
        let list: Vec<Value> = doms.into_iter().map(|d| self.criteria(d, 0)).collect();
        let prior = self.pick(&[0, 0, 30, 365]);
        let post = self.pick(&[0, 0, 30]);
        let limit = self.pick(&["First", "All", "All", "Last"]);
        e.insert(
            "PrimaryCriteria".into(),
            json!({"CriteriaList": list, "ObservationWindow": {"PriorDays": prior, "PostDays": post},
                   "PrimaryCriteriaLimit": {"Type": limit}}),
        );
        if self.p(0.35) {
            let g = self.group(0);
            e.insert("AdditionalCriteria".into(), g);
        }
        let ql = self.pick(&["First", "All", "All", "Last"]);
        e.insert("QualifiedLimit".into(), json!({"Type": ql}));
        let el = self.pick(&["First", "All", "All", "Last"]);
        e.insert("ExpressionLimit".into(), json!({"Type": el}));
        let n_rules = *[0, 0, 1, 1, 1, 2, 2, 3].choose(self.rng).unwrap();
        let rules: Vec<Value> = (0..n_rules)
            .map(|i| json!({"name": format!("rule {i}"), "expression": self.group(0)}))
            .collect();
        e.insert("InclusionRules".into(), Value::Array(rules));
        let drug_sets: Vec<i32> = self
            .sets
            .iter()
            .filter(|(_, d)| *d == Dom::Drug)
            .map(|(i, _)| *i)
            .collect();
        match self.rng.gen_range(0..100) {
            0..=34 => {}
            35..=74 => {
                let field = self.pick(&["StartDate", "EndDate"]);
                let offset = self.pick(&[0, 1, 7, 30, 180]);
                e.insert(
                    "EndStrategy".into(),
                    json!({"DateOffset": {"DateField": field, "Offset": offset}}),
                );
            }
            _ if self.features.custom_era && !drug_sets.is_empty() => {
                let mut ce = json!({"DrugCodesetId": self.pick(&drug_sets),
                    "GapDays": self.pick(&[0, 7, 30]), "Offset": self.pick(&[0, 0, 7])});
                if self.p(0.25) {
                    ce["DaysSupplyOverride"] = json!(self.pick(&[7, 30]));
                }
                e.insert("EndStrategy".into(), json!({ "CustomEra": ce }));
            }
            _ => {}
        }
        let censoring: Vec<Value> = if self.p(0.2) {
            (0..self.rng.gen_range(1..=2))
                .map(|_| {
                    let d = self.pick(&self.domains());
                    self.criteria(d, 1)
                })
                .collect()
        } else {
            vec![]
        };
        e.insert("CensoringCriteria".into(), Value::Array(censoring));
        let pad = self.pick(&[0, 0, 1, 7, 30]);
        e.insert(
            "CollapseSettings".into(),
            json!({"CollapseType": "ERA", "EraPad": pad}),
        );
        if self.p(0.15) {
            let mut w = Map::new();
            if self.p(0.7) {
                w.insert("StartDate".into(), json!(self.date()));
            }
            if self.p(0.5) {
                w.insert("EndDate".into(), json!(self.date()));
            }
            e.insert("CensorWindow".into(), Value::Object(w));
        }
        Value::Object(e)
    }

    fn concept_set(&mut self, id: i32, dom: Dom) -> Value {
        let concepts = dom.concepts();
        let n = self.rng.gen_range(1..=3);
        let items: Vec<Value> = (0..n)
            .map(|i| {
                // The first item: mostly a concept high in the hierarchy, with descendants.
                let (c, desc) = if i == 0 && self.p(0.7) {
                    (self.pick(&concepts[..3]), self.p(0.8))
                } else {
                    (self.pick(&concepts), self.p(0.5))
                };
                let excluded = i > 0 && self.p(0.25);
                json!({"concept": {"CONCEPT_ID": c, "CONCEPT_NAME": format!("c{c}")},
                       "isExcluded": excluded,
                       "includeDescendants": desc,
                       "includeMapped": self.p(0.25)})
            })
            .collect();
        json!({"id": id, "name": format!("set {id}"), "expression": {"items": items}})
    }

    fn codeset_for(&mut self, dom: Dom) -> Option<i32> {
        let dom = match dom {
            Dom::Death | Dom::ConditionEra => Dom::Condition,
            Dom::DrugEra => Dom::Drug,
            d => d,
        };
        let same: Vec<i32> = self
            .sets
            .iter()
            .filter(|(_, d)| *d == dom)
            .map(|(i, _)| *i)
            .collect();
        let r = self.rng.gen_range(0..100);
        if r < 90 && !same.is_empty() {
            Some(self.pick(&same))
        } else if r < 94 && !self.sets.is_empty() {
            let all: Vec<i32> = self.sets.iter().map(|(i, _)| *i).collect();
            Some(self.pick(&all))
        } else {
            None
        }
    }

    fn date(&mut self) -> String {
        let d = qiao_cdm::date::from_ymd(2004, 10, 1) + self.rng.gen_range(0..2600);
        qiao_cdm::date::format(d)
    }

    fn concepts(&mut self, pool: &[i32]) -> Value {
        let n = self.rng.gen_range(1..=2.min(pool.len()));
        let mut v: Vec<i32> = pool.to_vec();
        v.shuffle(self.rng);
        Value::Array(
            v[..n]
                .iter()
                .map(|c| json!({"CONCEPT_ID": c, "CONCEPT_NAME": format!("c{c}")}))
                .collect(),
        )
    }

    fn num(&mut self, lo: f64, hi: f64, decimals: bool) -> Value {
        let ops = ["lt", "lte", "eq", "!eq", "gt", "gte", "bt", "!bt"];
        let op = self.pick(&ops);
        let val = |rng: &mut ChaCha8Rng| {
            let x = rng.gen_range(lo..=hi);
            if decimals {
                (x * 2.0).round() / 2.0
            } else {
                x.round()
            }
        };
        let a = val(self.rng);
        let mut r = json!({"Value": a, "Op": op});
        if op.ends_with("bt") {
            let b = val(self.rng);
            r["Extent"] = json!(if self.p(0.85) { a.max(b) } else { b });
        }
        r
    }

    fn date_range(&mut self) -> Value {
        let ops = ["lt", "lte", "eq", "!eq", "gt", "gte", "bt", "!bt"];
        let op = self.pick(&ops);
        let a = self.date();
        let mut r = json!({"Value": a, "Op": op});
        if op.ends_with("bt") {
            let b = self.date();
            let (x, y) = if a <= b { (a, b) } else { (b, a) };
            r["Value"] = json!(x);
            r["Extent"] = json!(y);
        }
        r
    }

    fn text(&mut self, words: &[&str]) -> Value {
        let ops = [
            "startsWith",
            "contains",
            "endsWith",
            "!startsWith",
            "!contains",
            "!endsWith",
        ];
        json!({"Text": self.pick(words), "Op": self.pick(&ops)})
    }

    /// One domain criteria (`{"ConditionOccurrence": {...}}`); `depth` bounds nested correlated
    /// criteria.
    pub fn criteria(&mut self, dom: Dom, depth: u32) -> Value {
        let mut c = Map::new();
        let put = |c: &mut Map<String, Value>, k: &str, v: Value| {
            c.insert(k.to_string(), v);
        };
        if dom != Dom::ObservationPeriod {
            if let Some(cs) = self.codeset_for(dom) {
                put(&mut c, "CodesetId", json!(cs));
            }
        }
        if !matches!(dom, Dom::Death) && self.a(0.15) {
            put(&mut c, "First", json!(true));
        }
        let has_end = matches!(dom, Dom::Condition | Dom::Drug | Dom::Visit);
        let era = matches!(dom, Dom::ConditionEra | Dom::DrugEra);
        if dom != Dom::ObservationPeriod && !era {
            if self.a(0.1) {
                let r = self.date_range();
                put(&mut c, "OccurrenceStartDate", r);
            }
            if has_end && self.a(0.06) {
                let r = self.date_range();
                put(&mut c, "OccurrenceEndDate", r);
            }
            if self.a(0.1) {
                let r = self.num(5.0, 85.0, false);
                put(&mut c, "Age", r);
            }
            if self.a(0.1) {
                let g = self.concepts(&GENDERS);
                put(&mut c, "Gender", g);
            }
        }
        let visit_type = matches!(
            dom,
            Dom::Condition | Dom::Drug | Dom::Procedure | Dom::Measurement | Dom::Observation
        );
        if visit_type && self.a(0.06) {
            let v = self.concepts(&VISIT_CONCEPTS);
            put(&mut c, "VisitType", v);
        }
        let source_codeset = |g: &mut Self| g.codeset_for(dom).map(|x| json!(x));
        match dom {
            Dom::Condition => {
                if self.a(0.1) {
                    let t = self.concepts(&TYPES);
                    put(&mut c, "ConditionType", t);
                    if self.a(0.5) {
                        put(&mut c, "ConditionTypeExclude", json!(true));
                    }
                }
                if self.a(0.08) {
                    if let Some(s) = source_codeset(self) {
                        put(&mut c, "ConditionSourceConcept", s);
                    }
                }
                if self.a(0.08) {
                    let s = self.concepts(&STATUS);
                    put(&mut c, "ConditionStatus", s);
                }
                if self.features.text_filters && self.a(0.05) {
                    let t = self.text(&["complete", "adverse", "early", "stop"]);
                    put(&mut c, "StopReason", t);
                }
            }
            Dom::Drug => {
                if self.a(0.1) {
                    let t = self.concepts(&TYPES);
                    put(&mut c, "DrugType", t);
                    if self.a(0.5) {
                        put(&mut c, "DrugTypeExclude", json!(true));
                    }
                }
                if self.a(0.08) {
                    let r = self.num(0.0, 5.0, false);
                    put(&mut c, "Refills", r);
                }
                if self.a(0.08) {
                    let r = self.num(1.0, 120.0, true);
                    put(&mut c, "Quantity", r);
                }
                if self.a(0.1) {
                    let r = self.num(0.0, 90.0, false);
                    put(&mut c, "DaysSupply", r);
                }
                if self.a(0.08) {
                    let r = self.concepts(&ROUTES);
                    put(&mut c, "RouteConcept", r);
                }
                if self.a(0.05) {
                    if let Some(s) = source_codeset(self) {
                        put(&mut c, "DrugSourceConcept", s);
                    }
                }
                if self.features.text_filters && self.a(0.05) {
                    let t = self.text(&["complete", "adverse", "early", "stop"]);
                    put(&mut c, "StopReason", t);
                }
            }
            Dom::Procedure => {
                if self.a(0.1) {
                    let t = self.concepts(&TYPES);
                    put(&mut c, "ProcedureType", t);
                    if self.a(0.5) {
                        put(&mut c, "ProcedureTypeExclude", json!(true));
                    }
                }
                if self.a(0.08) {
                    let r = self.num(1.0, 4.0, false);
                    put(&mut c, "Quantity", r);
                }
                if self.a(0.05) {
                    if let Some(s) = source_codeset(self) {
                        put(&mut c, "ProcedureSourceConcept", s);
                    }
                }
            }
            Dom::Measurement => {
                if self.a(0.08) {
                    let t = self.concepts(&TYPES);
                    put(&mut c, "MeasurementType", t);
                    if self.a(0.5) {
                        put(&mut c, "MeasurementTypeExclude", json!(true));
                    }
                }
                if self.a(0.08) {
                    let o = self.concepts(&OPERATORS);
                    put(&mut c, "Operator", o);
                }
                if self.a(0.25) {
                    let r = self.num(-2.0, 200.0, true);
                    put(&mut c, "ValueAsNumber", r);
                }
                // Abnormal only with ValueAsConcept: without it circe-be's SQL refers to
                // C.value_as_concept_id, which its subquery does not select (the SQL fails).
                let abnormal = self.a(0.08);
                if abnormal || self.a(0.1) {
                    let v = self.concepts(&VALUE_CONCEPTS);
                    put(&mut c, "ValueAsConcept", v);
                }
                if abnormal {
                    put(&mut c, "Abnormal", json!(true));
                }
                if self.a(0.1) {
                    let u = self.concepts(&UNITS);
                    put(&mut c, "Unit", u);
                }
                if self.a(0.08) {
                    let r = self.num(0.0, 50.0, false);
                    put(&mut c, "RangeLow", r);
                }
                if self.a(0.08) {
                    let r = self.num(50.0, 150.0, false);
                    put(&mut c, "RangeHigh", r);
                }
                if self.a(0.06) {
                    let r = self.num(0.0, 4.0, true);
                    put(&mut c, "RangeLowRatio", r);
                }
                if self.a(0.06) {
                    let r = self.num(0.0, 3.0, true);
                    put(&mut c, "RangeHighRatio", r);
                }
                if self.a(0.05) {
                    if let Some(s) = source_codeset(self) {
                        put(&mut c, "MeasurementSourceConcept", s);
                    }
                }
            }
            Dom::Observation => {
                if self.a(0.08) {
                    let t = self.concepts(&TYPES);
                    put(&mut c, "ObservationType", t);
                }
                if self.a(0.2) {
                    let r = self.num(0.0, 50.0, true);
                    put(&mut c, "ValueAsNumber", r);
                }
                if self.features.text_filters && self.a(0.1) {
                    let t = self.text(&["pos", "neg", "positive", "tr", "c"]);
                    put(&mut c, "ValueAsString", t);
                }
                if self.a(0.1) {
                    let v = self.concepts(&VALUE_CONCEPTS);
                    put(&mut c, "ValueAsConcept", v);
                }
                if self.a(0.08) {
                    let q = self.concepts(&QUALIFIERS);
                    put(&mut c, "Qualifier", q);
                }
                if self.a(0.08) {
                    let u = self.concepts(&UNITS);
                    put(&mut c, "Unit", u);
                }
                if self.a(0.05) {
                    if let Some(s) = source_codeset(self) {
                        put(&mut c, "ObservationSourceConcept", s);
                    }
                }
            }
            Dom::Visit => {
                if self.a(0.1) {
                    let t = self.concepts(&VISIT_TYPES);
                    put(&mut c, "VisitType", t);
                    if self.a(0.5) {
                        put(&mut c, "VisitTypeExclude", json!(true));
                    }
                }
                if self.a(0.1) {
                    let r = self.num(0.0, 10.0, false);
                    put(&mut c, "VisitLength", r);
                }
            }
            Dom::Death => {
                if self.a(0.1) {
                    let t = self.concepts(&TYPES);
                    put(&mut c, "DeathType", t);
                    if self.a(0.5) {
                        put(&mut c, "DeathTypeExclude", json!(true));
                    }
                }
            }
            Dom::ConditionEra | Dom::DrugEra => {
                if self.a(0.1) {
                    let r = self.date_range();
                    put(&mut c, "EraStartDate", r);
                }
                if self.a(0.1) {
                    let r = self.date_range();
                    put(&mut c, "EraEndDate", r);
                }
                if self.a(0.15) {
                    let r = self.num(1.0, 5.0, false);
                    put(&mut c, "OccurrenceCount", r);
                }
                if self.a(0.15) {
                    let r = self.num(0.0, 200.0, false);
                    put(&mut c, "EraLength", r);
                }
                if dom == Dom::DrugEra && self.features.drug_era_gap_days && self.a(0.1) {
                    let r = self.num(0.0, 30.0, false);
                    put(&mut c, "GapDays", r);
                }
                if self.a(0.1) {
                    let r = self.num(5.0, 85.0, false);
                    put(&mut c, "AgeAtStart", r);
                }
                if self.a(0.05) {
                    let r = self.num(5.0, 85.0, false);
                    put(&mut c, "AgeAtEnd", r);
                }
                if self.a(0.1) {
                    let g = self.concepts(&GENDERS);
                    put(&mut c, "Gender", g);
                }
            }
            Dom::ObservationPeriod => {
                if self.a(0.1) {
                    let r = self.date_range();
                    put(&mut c, "PeriodStartDate", r);
                }
                if self.a(0.1) {
                    let r = self.date_range();
                    put(&mut c, "PeriodEndDate", r);
                }
                if self.a(0.1) {
                    let t = self.concepts(&PERIOD_TYPES);
                    put(&mut c, "PeriodType", t);
                }
                if self.a(0.15) {
                    let r = self.num(0.0, 900.0, false);
                    put(&mut c, "PeriodLength", r);
                }
                if self.a(0.1) {
                    let r = self.num(5.0, 85.0, false);
                    put(&mut c, "AgeAtStart", r);
                }
                if self.a(0.05) {
                    let r = self.num(5.0, 85.0, false);
                    put(&mut c, "AgeAtEnd", r);
                }
            }
        }
        let adjustable = dom != Dom::Death || self.features.death_date_adjustment;
        if self.features.date_adjustment && adjustable && self.p(0.08) {
            let sw = self.pick(&["START_DATE", "END_DATE"]);
            let ew = self.pick(&["START_DATE", "END_DATE"]);
            let so = self.pick(&[0, 0, 1, -7, 30]);
            let eo = self.pick(&[0, 0, 1, -7, 30]);
            put(
                &mut c,
                "DateAdjustment",
                json!({"StartWith": sw, "StartOffset": so, "EndWith": ew, "EndOffset": eo}),
            );
        }
        if depth < 2 && self.p(0.1) {
            let g = self.group(depth + 1);
            put(&mut c, "CorrelatedCriteria", g);
        }
        let name = match dom {
            Dom::Condition => "ConditionOccurrence",
            Dom::Drug => "DrugExposure",
            Dom::Procedure => "ProcedureOccurrence",
            Dom::Measurement => "Measurement",
            Dom::Observation => "Observation",
            Dom::Visit => "VisitOccurrence",
            Dom::Death => "Death",
            Dom::ObservationPeriod => "ObservationPeriod",
            Dom::ConditionEra => "ConditionEra",
            Dom::DrugEra => "DrugEra",
        };
        let mut out = Map::new();
        out.insert(name.to_string(), Value::Object(c));
        Value::Object(out)
    }

    /// An offset in days from the index (None: unbounded, on the side of `coeff`).
    fn offset(&mut self) -> (Option<i32>, i32) {
        let days = self.pick(&[
            None,
            None,
            Some(0),
            Some(0),
            Some(1),
            Some(7),
            Some(30),
            Some(90),
            Some(365),
        ]);
        (days, self.pick(&[-1, 1]))
    }

    fn endpoint((days, coeff): (Option<i32>, i32)) -> Value {
        match days {
            Some(d) => json!({"Days": d, "Coeff": coeff}),
            None => json!({"Coeff": coeff}),
        }
    }

    /// A window: mostly well-formed (start before end), sometimes any two endpoints.
    fn window(&mut self) -> Value {
        let (mut a, mut b) = (self.offset(), self.offset());
        let key = |(d, c): (Option<i32>, i32)| match d {
            None => c as i64 * 1_000_000,
            Some(d) => (c * d) as i64,
        };
        if self.p(0.85) && key(a) > key(b) {
            std::mem::swap(&mut a, &mut b);
        }
        let mut w = json!({"Start": Self::endpoint(a), "End": Self::endpoint(b)});
        if self.p(0.15) {
            w["UseIndexEnd"] = json!(true);
        }
        if self.p(0.15) {
            w["UseEventEnd"] = json!(true);
        }
        w
    }

    fn occurrence(&mut self, dom: Dom) -> Value {
        let t = self.pick(&[2, 2, 2, 2, 2, 0, 0, 1]);
        let count = match t {
            2 => self.pick(&[1, 1, 1, 1, 2, 3]),
            0 => self.pick(&[0, 0, 0, 1, 2]),
            _ => self.pick(&[0, 1, 1, 2]),
        };
        let mut o = json!({"Type": t, "Count": count});
        if self.p(0.2) {
            o["IsDistinct"] = json!(true);
            let cols: &[&str] = if matches!(
                dom,
                Dom::ObservationPeriod | Dom::ConditionEra | Dom::DrugEra
            ) {
                &["START_DATE", "END_DATE"]
            } else {
                &["START_DATE", "END_DATE", "VISIT_ID", "DOMAIN_CONCEPT"]
            };
            if self.p(0.8) {
                o["CountColumn"] = json!(self.pick(cols));
            }
        }
        o
    }

    fn corr(&mut self, depth: u32) -> Value {
        let dom = self.pick(&self.domains());
        let occurrence = self.occurrence(dom);
        // A distinct count of a column outside circe-be's base columns (the domain concept, the
        // default) makes circe-be add the column to the criteria query, but `wrapCriteriaQuery`
        // (CohortExpressionQueryBuilder.java) drops it again when the criteria has its own
        // CorrelatedCriteria, and the SQL fails: no nested criteria under such a count.
        let extra_column = occurrence["IsDistinct"] == json!(true)
            && !matches!(
                occurrence["CountColumn"].as_str(),
                Some("START_DATE" | "END_DATE" | "VISIT_ID")
            );
        let crit_depth = if extra_column { 2 } else { depth + 1 };
        let mut m = json!({
            "Criteria": self.criteria(dom, crit_depth),
            "StartWindow": self.window(),
            "Occurrence": occurrence,
        });
        if self.p(0.2) {
            m["EndWindow"] = self.window();
        }
        if self.p(0.15) {
            m["RestrictVisit"] = json!(true);
        }
        if self.p(0.15) {
            m["IgnoreObservationPeriod"] = json!(true);
        }
        m
    }

    fn demographic(&mut self) -> Value {
        let mut d = Map::new();
        if self.p(0.5) {
            d.insert("Age".into(), self.num(5.0, 85.0, false));
        }
        if self.p(0.4) {
            d.insert("Gender".into(), self.concepts(&GENDERS));
        }
        if self.p(0.1) {
            d.insert("Race".into(), self.concepts(&RACES));
        }
        if self.p(0.1) {
            d.insert("Ethnicity".into(), self.concepts(&ETHNICITIES));
        }
        if self.p(0.15) {
            d.insert("OccurrenceStartDate".into(), self.date_range());
        }
        if self.p(0.1) || d.is_empty() {
            d.insert("OccurrenceEndDate".into(), self.date_range());
        }
        Value::Object(d)
    }

    /// A criteria group (inclusion rule, additional or correlated criteria).
    pub fn group(&mut self, depth: u32) -> Value {
        if self.p(0.03) {
            return json!({"Type": "ALL", "CriteriaList": [], "DemographicCriteriaList": [], "Groups": []});
        }
        let n_crit = self.pick(&[0, 1, 1, 1, 2, 2, 3]);
        let n_demo = if self.p(0.2) { 1 } else { 0 };
        let n_groups = if depth < 2 && self.p(0.2) { 1 } else { 0 };
        let n_crit = if n_crit + n_demo + n_groups == 0 {
            1
        } else {
            n_crit
        };
        let crits: Vec<Value> = (0..n_crit).map(|_| self.corr(depth)).collect();
        let demos: Vec<Value> = (0..n_demo).map(|_| self.demographic()).collect();
        let groups: Vec<Value> = (0..n_groups).map(|_| self.group(depth + 1)).collect();
        let total = n_crit + n_demo + n_groups;
        let t = self.pick(&["ALL", "ALL", "ANY", "ANY", "AT_LEAST", "AT_MOST"]);
        let mut g = json!({"Type": t, "CriteriaList": crits, "DemographicCriteriaList": demos, "Groups": groups});
        if t.starts_with("AT_") {
            g["Count"] = json!(self.rng.gen_range(0..=total));
        }
        g
    }
}
