//! Random small OMOP CDMs (CSV folders) for the differential test.
//!
//! Built so that Circe's SQL is deterministic on them (then a difference is a semantic one):
//! every event id is unique across all tables (Circe breaks ties on `event_id`), and a person's
//! observation periods never overlap. Dates, values, visits, types and concepts are random; the
//! vocabulary is fixed (see [`Vocab`]).

use std::fmt::Write as _;
use std::path::Path;

use qiao_cdm::date::{self, Day};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The domains events are drawn for, with the base of their concept ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dom {
    Condition,
    Drug,
    Procedure,
    Measurement,
    Observation,
    Visit,
    Death,
    ObservationPeriod,
    ConditionEra,
    DrugEra,
}

impl Dom {
    /// Concept id base of the domain's tiny hierarchy (Visit and ObservationPeriod use fixed ids).
    pub fn base(self) -> i32 {
        match self {
            Dom::Condition | Dom::Death | Dom::ConditionEra => 100,
            Dom::Drug | Dom::DrugEra => 200,
            Dom::Procedure => 300,
            Dom::Measurement => 400,
            Dom::Observation => 500,
            Dom::Visit | Dom::ObservationPeriod => 0,
        }
    }

    /// Concepts events of the domain carry in their domain concept column.
    pub fn concepts(self) -> Vec<i32> {
        match self {
            Dom::Visit => VISIT_CONCEPTS.to_vec(),
            Dom::ObservationPeriod => vec![],
            _ => {
                let b = self.base();
                // b+0..b+8 in the vocabulary (b+7 invalid), b+9 absent from it, b+50 non-standard;
                // the first three are the top of the hierarchy (see Vocab).
                [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 50]
                    .iter()
                    .map(|i| b + i)
                    .collect()
            }
        }
    }
}

pub const VISIT_CONCEPTS: [i32; 4] = [9201, 9202, 9203, 262];
pub const GENDERS: [i32; 3] = [8507, 8532, 8551];
pub const RACES: [i32; 2] = [8527, 8516];
pub const ETHNICITIES: [i32; 2] = [38003563, 38003564];
pub const TYPES: [i32; 3] = [32817, 32020, 38000177];
pub const VISIT_TYPES: [i32; 2] = [44818517, 32035];
pub const PERIOD_TYPES: [i32; 2] = [44814724, 32880];
pub const STATUS: [i32; 2] = [32902, 32908];
pub const ROUTES: [i32; 2] = [4132161, 4128794];
pub const UNITS: [i32; 2] = [8840, 8713];
pub const VALUE_CONCEPTS: [i32; 2] = [4181412, 45884084];
pub const OPERATORS: [i32; 3] = [4172703, 4171756, 4172704];
pub const QUALIFIERS: [i32; 2] = [4155142, 4260287];
pub const VALUE_STRINGS: [&str; 4] = ["positive", "negative", "trace positive", "abc"];
pub const STOP_REASONS: [&str; 3] = ["completed", "adverse event", "stopped early"];

/// The fixed vocabulary: per clinical domain base `b`,
///
/// ```text
///   b ─┬─ b+1 ─┬─ b+3 ── b+6        b+7: invalid ('D'), a descendant of b+1 and b
///      │       ├─ b+4               b+8: standard, outside the hierarchy
///      │       └─ b+7               b+9: not in `concept` at all
///      └─ b+2 ─┬─ b+4 (two parents)  b+50, b+51, b+52: non-standard source concepts
///              └─ b+5                  b+50 maps to b+1, b+51 to b+5, b+52 to b+3 (invalid map)
/// ```
///
/// `concept_ancestor` is the transitive closure with self rows (none for b+7); b+1 also "Maps to"
/// itself, and "Mapped from" rows mirror the valid maps. Visits: 262 (ER+IP) descends from 9201
/// and 9203.
pub struct Vocab;

impl Vocab {
    pub fn write(dir: &Path) {
        let mut concept = String::from(
            "concept_id,concept_name,domain_id,vocabulary_id,concept_class_id,standard_concept,concept_code,valid_start_date,valid_end_date,invalid_reason\n",
        );
        let mut ancestor = String::from(
            "ancestor_concept_id,descendant_concept_id,min_levels_of_separation,max_levels_of_separation\n",
        );
        let mut rel = String::from(
            "concept_id_1,concept_id_2,relationship_id,valid_start_date,valid_end_date,invalid_reason\n",
        );
        let doms = [
            (100, "Condition"),
            (200, "Drug"),
            (300, "Procedure"),
            (400, "Measurement"),
            (500, "Observation"),
        ];
        for (b, dom) in doms {
            for i in 0..=8 {
                let (std, inv) = if i == 7 { ("", "D") } else { ("S", "") };
                writeln!(
                    concept,
                    "{},{dom} {i},{dom},Test,Clinical,{std},{},1970-01-01,2099-12-31,{inv}",
                    b + i,
                    b + i
                )
                .unwrap();
            }
            for i in 50..=52 {
                writeln!(
                    concept,
                    "{},{dom} source {i},{dom},Source,Clinical,,{},1970-01-01,2099-12-31,",
                    b + i,
                    b + i
                )
                .unwrap();
            }
            let parents: [(i32, i32); 7] = [(0, 1), (0, 2), (1, 3), (1, 4), (1, 7), (2, 4), (2, 5)];
            let edges: Vec<(i32, i32)> = parents
                .iter()
                .copied()
                .chain([(3, 6)])
                .map(|(a, d)| (b + a, b + d))
                .collect();
            for (a, d, lvl) in closure(&edges) {
                writeln!(ancestor, "{a},{d},{lvl},{lvl}").unwrap();
            }
            for i in [0, 1, 2, 3, 4, 5, 6, 8] {
                writeln!(ancestor, "{},{},0,0", b + i, b + i).unwrap();
            }
            for (s, t, inv) in [(50, 1, ""), (51, 5, ""), (52, 3, "D"), (1, 1, "")] {
                writeln!(
                    rel,
                    "{},{},Maps to,1970-01-01,2099-12-31,{inv}",
                    b + s,
                    b + t
                )
                .unwrap();
                if inv.is_empty() && s != t {
                    writeln!(
                        rel,
                        "{},{},Mapped from,1970-01-01,2099-12-31,",
                        b + t,
                        b + s
                    )
                    .unwrap();
                }
            }
        }
        for v in VISIT_CONCEPTS {
            writeln!(
                concept,
                "{v},Visit {v},Visit,Visit,Visit,S,{v},1970-01-01,2099-12-31,"
            )
            .unwrap();
            writeln!(ancestor, "{v},{v},0,0").unwrap();
        }
        writeln!(ancestor, "9201,262,1,1").unwrap();
        writeln!(ancestor, "9203,262,1,1").unwrap();
        for g in [8507, 8532] {
            writeln!(
                concept,
                "{g},Gender {g},Gender,Gender,Gender,S,{g},1970-01-01,2099-12-31,"
            )
            .unwrap();
        }
        std::fs::write(dir.join("concept.csv"), concept).unwrap();
        std::fs::write(dir.join("concept_ancestor.csv"), ancestor).unwrap();
        std::fs::write(dir.join("concept_relationship.csv"), rel).unwrap();
    }
}

/// Transitive closure of parent → child edges (without self rows): (ancestor, descendant, levels).
fn closure(edges: &[(i32, i32)]) -> Vec<(i32, i32, i32)> {
    let mut out: Vec<(i32, i32, i32)> = edges.iter().map(|&(a, d)| (a, d, 1)).collect();
    loop {
        let mut added = false;
        for i in 0..out.len() {
            for &(a2, d2) in edges {
                let (a, d, l) = out[i];
                if a2 == d && !out.iter().any(|&(x, y, _)| x == a && y == d2) {
                    out.push((a, d2, l + 1));
                    added = true;
                }
            }
        }
        if !added {
            return out;
        }
    }
}

/// Sizes of a generated CDM.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sizes {
    pub persons: usize,
    pub events: usize,
}

struct Csv {
    text: String,
}

impl Csv {
    fn new(header: &str) -> Csv {
        Csv {
            text: format!("{header}\n"),
        }
    }
    fn row(&mut self, fields: &[String]) {
        self.text.push_str(&fields.join(","));
        self.text.push('\n');
    }
}

fn d(day: Day) -> String {
    date::format(day)
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// Writes a random CDM (person, observation_period, visit_occurrence, condition_occurrence,
/// drug_exposure, procedure_occurrence, measurement, observation, death, condition_era, drug_era
/// and the vocabulary) to `dir` as CSV files.
pub fn write_random_cdm(rng: &mut ChaCha8Rng, dir: &Path) -> Sizes {
    std::fs::create_dir_all(dir).unwrap();
    Vocab::write(dir);
    let mut person = Csv::new("person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth,race_concept_id,ethnicity_concept_id");
    let mut op = Csv::new("observation_period_id,person_id,observation_period_start_date,observation_period_end_date,period_type_concept_id");
    let mut visit = Csv::new("visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_end_date,visit_type_concept_id,visit_source_concept_id");
    let mut cond = Csv::new("condition_occurrence_id,person_id,condition_concept_id,condition_start_date,condition_end_date,condition_type_concept_id,condition_status_concept_id,stop_reason,visit_occurrence_id,condition_source_concept_id");
    let mut drug = Csv::new("drug_exposure_id,person_id,drug_concept_id,drug_exposure_start_date,drug_exposure_end_date,drug_type_concept_id,stop_reason,refills,quantity,days_supply,route_concept_id,visit_occurrence_id,drug_source_concept_id");
    let mut proc_ = Csv::new("procedure_occurrence_id,person_id,procedure_concept_id,procedure_date,procedure_type_concept_id,quantity,visit_occurrence_id,procedure_source_concept_id");
    let mut meas = Csv::new("measurement_id,person_id,measurement_concept_id,measurement_date,measurement_type_concept_id,operator_concept_id,value_as_number,value_as_concept_id,unit_concept_id,range_low,range_high,visit_occurrence_id,measurement_source_concept_id");
    let mut obs = Csv::new("observation_id,person_id,observation_concept_id,observation_date,observation_type_concept_id,value_as_number,value_as_string,value_as_concept_id,qualifier_concept_id,unit_concept_id,visit_occurrence_id,observation_source_concept_id");
    let mut death = Csv::new("person_id,death_date,death_type_concept_id,cause_concept_id");
    let mut cera = Csv::new("condition_era_id,person_id,condition_concept_id,condition_era_start_date,condition_era_end_date,condition_occurrence_count");
    let mut dera = Csv::new("drug_era_id,person_id,drug_concept_id,drug_era_start_date,drug_era_end_date,drug_exposure_count,gap_days");

    let n_persons = rng.gen_range(30..=80);
    let n_orphans = 2;
    // Ids: persons 1..=n; every other id from one counter far above them.
    let mut next_id: i64 = 100_000;
    let mut id = || {
        next_id += 1;
        next_id
    };
    let t0 = date::from_ymd(2005, 1, 1);
    let mut sizes = Sizes {
        persons: n_persons,
        events: 0,
    };
    for p in 1..=(n_persons + n_orphans) as i64 {
        let orphan = p as usize > n_persons;
        if !orphan {
            let yob = rng.gen_range(1930..=2008);
            person.row(&[
                p.to_string(),
                GENDERS.choose(rng).unwrap().to_string(),
                yob.to_string(),
                opt(rng.gen_bool(0.8).then(|| rng.gen_range(1..=12))),
                opt(rng.gen_bool(0.7).then(|| rng.gen_range(1..=28))),
                RACES.choose(rng).unwrap().to_string(),
                ETHNICITIES.choose(rng).unwrap().to_string(),
            ]);
        }
        // Observation periods: 0..=3, disjoint, gaps of at least one day.
        let n_op = *[0, 1, 1, 1, 2, 2, 3].choose(rng).unwrap();
        let mut start = t0 + rng.gen_range(0..1500);
        let first = start;
        let mut last = start;
        for _ in 0..n_op {
            let end = start + rng.gen_range(0..900);
            op.row(&[
                id().to_string(),
                p.to_string(),
                d(start),
                d(end),
                PERIOD_TYPES.choose(rng).unwrap().to_string(),
            ]);
            last = end;
            start = end + rng.gen_range(1..300);
        }
        let lo = first - 60;
        let hi = last.max(first + 200) + 60;
        // Visits.
        let mut visits: Vec<i64> = Vec::new();
        let n_visits = rng.gen_range(0..=8);
        for _ in 0..n_visits {
            let s = rng.gen_range(lo..=hi);
            let vid = id();
            visits.push(vid);
            let len = *[0, 0, 1, 2, 5, 20].choose(rng).unwrap();
            visit.row(&[
                vid.to_string(),
                p.to_string(),
                VISIT_CONCEPTS.choose(rng).unwrap().to_string(),
                d(s),
                d(s + len),
                VISIT_TYPES.choose(rng).unwrap().to_string(),
                opt(rng.gen_bool(0.3).then_some(9201)),
            ]);
        }
        sizes.events += n_visits;
        let n = rng.gen_range(0..=16);
        sizes.events += n;
        for _ in 0..n {
            let s = rng.gen_range(lo..=hi);
            let row = vec![
                id().to_string(),
                p.to_string(),
                pick(rng, Dom::Condition),
                d(s),
                opt(rng.gen_bool(0.5).then(|| d(s + rng.gen_range(0..60)))),
                TYPES.choose(rng).unwrap().to_string(),
                opt(rng.gen_bool(0.7).then(|| *STATUS.choose(rng).unwrap())),
                opt(rng
                    .gen_bool(0.2)
                    .then(|| *STOP_REASONS.choose(rng).unwrap())),
                visit_of(rng, &visits),
                source(rng, 100),
            ];
            cond.row(&row);
        }
        let n = rng.gen_range(0..=14);
        sizes.events += n;
        for _ in 0..n {
            let s = rng.gen_range(lo..=hi);
            let row = vec![
                id().to_string(),
                p.to_string(),
                pick(rng, Dom::Drug),
                d(s),
                opt(rng.gen_bool(0.6).then(|| d(s + rng.gen_range(0..90)))),
                TYPES.choose(rng).unwrap().to_string(),
                opt(rng
                    .gen_bool(0.2)
                    .then(|| *STOP_REASONS.choose(rng).unwrap())),
                opt(rng.gen_bool(0.7).then(|| rng.gen_range(0..=5))),
                opt(rng.gen_bool(0.7).then(|| rng.gen_range(1..=120))),
                opt(rng.gen_bool(0.6).then(|| rng.gen_range(0..=90))),
                opt(rng.gen_bool(0.7).then(|| *ROUTES.choose(rng).unwrap())),
                visit_of(rng, &visits),
                source(rng, 200),
            ];
            drug.row(&row);
        }
        let n = rng.gen_range(0..=8);
        sizes.events += n;
        for _ in 0..n {
            let s = rng.gen_range(lo..=hi);
            let row = vec![
                id().to_string(),
                p.to_string(),
                pick(rng, Dom::Procedure),
                d(s),
                TYPES.choose(rng).unwrap().to_string(),
                opt(rng.gen_bool(0.6).then(|| rng.gen_range(1..=4))),
                visit_of(rng, &visits),
                source(rng, 300),
            ];
            proc_.row(&row);
        }
        let n = rng.gen_range(0..=8);
        sizes.events += n;
        for _ in 0..n {
            let s = rng.gen_range(lo..=hi);
            let low = match rng.gen_range(0..4) {
                0 => None,
                1 => Some(0.0),
                _ => Some(rng.gen_range(10..50) as f64),
            };
            let high = rng.gen_bool(0.7).then(|| rng.gen_range(50..150) as f64);
            let row = vec![
                id().to_string(),
                p.to_string(),
                pick(rng, Dom::Measurement),
                d(s),
                TYPES.choose(rng).unwrap().to_string(),
                opt(rng.gen_bool(0.3).then(|| *OPERATORS.choose(rng).unwrap())),
                opt(rng
                    .gen_bool(0.85)
                    .then(|| rng.gen_range(-20..2000) as f64 / 10.0)),
                opt(rng
                    .gen_bool(0.4)
                    .then(|| *VALUE_CONCEPTS.choose(rng).unwrap())),
                opt(rng.gen_bool(0.7).then(|| *UNITS.choose(rng).unwrap())),
                opt(low),
                opt(high),
                visit_of(rng, &visits),
                source(rng, 400),
            ];
            meas.row(&row);
        }
        let n = rng.gen_range(0..=6);
        sizes.events += n;
        for _ in 0..n {
            let s = rng.gen_range(lo..=hi);
            let row = vec![
                id().to_string(),
                p.to_string(),
                pick(rng, Dom::Observation),
                d(s),
                TYPES.choose(rng).unwrap().to_string(),
                opt(rng
                    .gen_bool(0.5)
                    .then(|| rng.gen_range(0..500) as f64 / 10.0)),
                opt(rng
                    .gen_bool(0.4)
                    .then(|| *VALUE_STRINGS.choose(rng).unwrap())),
                opt(rng
                    .gen_bool(0.4)
                    .then(|| *VALUE_CONCEPTS.choose(rng).unwrap())),
                opt(rng.gen_bool(0.3).then(|| *QUALIFIERS.choose(rng).unwrap())),
                opt(rng.gen_bool(0.5).then(|| *UNITS.choose(rng).unwrap())),
                visit_of(rng, &visits),
                source(rng, 500),
            ];
            obs.row(&row);
        }
        // Eras: random, not derived from the events (Circe reads the era tables as they are).
        for _ in 0..rng.gen_range(0..=4) {
            let s = rng.gen_range(lo..=hi);
            sizes.events += 1;
            cera.row(&[
                id().to_string(),
                p.to_string(),
                pick(rng, Dom::Condition),
                d(s),
                d(s + rng.gen_range(0..200)),
                opt(rng.gen_bool(0.9).then(|| rng.gen_range(1..=5))),
            ]);
        }
        for _ in 0..rng.gen_range(0..=4) {
            let s = rng.gen_range(lo..=hi);
            sizes.events += 1;
            dera.row(&[
                id().to_string(),
                p.to_string(),
                pick(rng, Dom::Drug),
                d(s),
                d(s + rng.gen_range(0..200)),
                opt(rng.gen_bool(0.9).then(|| rng.gen_range(1..=5))),
                opt(rng.gen_bool(0.9).then(|| rng.gen_range(0..=30))),
            ]);
        }
        if rng.gen_bool(0.2) {
            sizes.events += 1;
            let s = rng.gen_range(lo..=hi + 100);
            death.row(&[
                p.to_string(),
                d(s),
                opt(rng.gen_bool(0.8).then(|| *TYPES.choose(rng).unwrap())),
                opt(rng.gen_bool(0.7).then(|| pick(rng, Dom::Condition))),
            ]);
        }
    }
    for (name, csv) in [
        ("person", person),
        ("observation_period", op),
        ("visit_occurrence", visit),
        ("condition_occurrence", cond),
        ("drug_exposure", drug),
        ("procedure_occurrence", proc_),
        ("measurement", meas),
        ("observation", obs),
        ("death", death),
        ("condition_era", cera),
        ("drug_era", dera),
    ] {
        std::fs::write(dir.join(format!("{name}.csv")), csv.text).unwrap();
    }
    sizes
}

/// A domain concept for an event: mostly from the hierarchy below b+1 and b+2.
fn pick(rng: &mut ChaCha8Rng, dom: Dom) -> String {
    if dom != Dom::Visit && rng.gen_bool(0.6) {
        (dom.base() + rng.gen_range(1..=6)).to_string()
    } else {
        dom.concepts().choose(rng).unwrap().to_string()
    }
}

fn source(rng: &mut ChaCha8Rng, base: i32) -> String {
    opt(rng
        .gen_bool(0.5)
        .then(|| base + *[50, 51, 52, 1, 3].choose(rng).unwrap()))
}

fn visit_of(rng: &mut ChaCha8Rng, visits: &[i64]) -> String {
    if visits.is_empty() || rng.gen_bool(0.3) {
        String::new()
    } else {
        visits.choose(rng).unwrap().to_string()
    }
}
