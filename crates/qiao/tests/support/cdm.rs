//! A small synthetic OMOP CDM with planted patients whose admission dates an attacker knows,
//! written as CSV from a fixed seed. Nothing here is real patient data.
//!
//! Dates are days since 1970-01-01. The years are laid out so each attack has data of its own:
//!
//! | year | what                                                                           |
//! |------|--------------------------------------------------------------------------------|
//! | 2016 | background persons' target-condition diagnoses (never asked about)             |
//! | 2018 | small groups: month m has `suppressed[m].count` (0–9) persons diagnosed        |
//! | 2019 | trackers: inpatient admissions on known days, never the target condition       |
//! | 2020 | nobody is diagnosed with the target condition (the "known empty" questions)    |
//! | 2021 | planted admissions, one per day on distinct days; about half are diagnosed with |
//! |      | the target condition on their admission day (the secret: `member`)             |
//! | 2022 | multi-episode persons: 12 admissions each on known days, diagnosed at every    |
//! |      | one of them or at none                                                          |

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The target condition (the secret attribute).
pub const CONDITION: i32 = 201826;
/// Inpatient visit.
pub const INPATIENT: i32 = 9201;
/// Outpatient visit.
pub const OUTPATIENT: i32 = 9202;
/// Episodes of each multi-episode person.
pub const EPISODES: usize = 12;

/// A person admitted on a known day.
#[derive(Clone, Debug)]
pub struct Admission {
    pub person: i64,
    pub day: i32,
    /// Diagnosed with the target condition on the admission day.
    pub member: bool,
}

/// A person with [`EPISODES`] admissions on known days.
#[derive(Clone, Debug)]
pub struct Episodic {
    pub person: i64,
    pub days: Vec<i32>,
    /// Diagnosed at every admission (else at none).
    pub member: bool,
}

/// A month of 2018 and how many persons were diagnosed in it.
#[derive(Clone, Debug)]
pub struct SmallGroup {
    pub first: i32,
    pub last: i32,
    pub count: u64,
}

/// What the test knows about the CDM (the attacker knows the days, never `member` or `count`).
#[derive(Clone, Debug)]
pub struct World {
    pub admissions: Vec<Admission>,
    pub trackers: Vec<Admission>,
    pub suppressed: Vec<SmallGroup>,
    pub episodic: Vec<Episodic>,
    /// First and last day of 2020 (no diagnosis of the target condition).
    pub empty: (i32, i32),
}

impl World {
    /// Members among the 2021 admissions on days `days` (inclusive ranges).
    pub fn members_in(&self, ranges: &[(i32, i32)]) -> u64 {
        self.admissions
            .iter()
            .filter(|a| a.member && ranges.iter().any(|&(f, l)| f <= a.day && a.day <= l))
            .count() as u64
    }
}

/// Days since 1970-01-01 of a civil date.
pub fn day(y: i32, m: u32, d: u32) -> i32 {
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of a day.
pub fn date(z: i32) -> String {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i32::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[derive(Default)]
struct Tables {
    person: String,
    observation_period: String,
    visit: String,
    condition: String,
    next_id: i64,
}

impl Tables {
    fn person(&mut self, rng: &mut ChaCha8Rng) -> i64 {
        self.next_id += 1;
        let id = self.next_id;
        let gender = if rng.gen_bool(0.5) { 8507 } else { 8532 };
        let year = rng.gen_range(1940..1995);
        let _ = writeln!(self.person, "{id},{gender},{year},0,0");
        let _ = writeln!(
            self.observation_period,
            "{id},{id},{},{},44814724",
            date(day(2010, 1, 1)),
            date(day(2024, 12, 31))
        );
        id
    }
    fn visit(&mut self, person: i64, concept: i32, start: i32, end: i32) {
        self.next_id += 1;
        let _ = writeln!(
            self.visit,
            "{},{person},{concept},{},{},44818517",
            self.next_id,
            date(start),
            date(end)
        );
    }
    fn condition(&mut self, person: i64, start: i32) {
        self.next_id += 1;
        let _ = writeln!(
            self.condition,
            "{},{person},{CONDITION},{},32020",
            self.next_id,
            date(start)
        );
    }
}

/// `n` distinct days of `[first, last]`, in random order.
fn distinct_days(rng: &mut ChaCha8Rng, first: i32, last: i32, n: usize) -> Vec<i32> {
    let mut all: Vec<i32> = (first..=last).collect();
    all.shuffle(rng);
    all.truncate(n);
    all
}

/// Writes the CDM into `dir` (created) from `seed`; returns what the test knows about it.
pub fn write(dir: &Path, seed: u64) -> World {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut t = Tables::default();
    // Background: outpatient visits, diagnoses in 2016 only.
    for _ in 0..150 {
        let p = t.person(&mut rng);
        for _ in 0..rng.gen_range(1..4) {
            let d = rng.gen_range(day(2012, 1, 1)..day(2024, 1, 1));
            t.visit(p, OUTPATIENT, d, d);
        }
        if rng.gen_bool(0.3) {
            t.condition(p, rng.gen_range(day(2016, 1, 1)..day(2017, 1, 1)));
        }
    }
    // 2018: ten months with 0..=9 diagnosed persons each.
    let mut suppressed = Vec::new();
    for m in 1..=10 {
        let (first, last) = (day(2018, m, 1), day(2018, m + 1, 1) - 1);
        let count = rng.gen_range(0..10u64);
        for _ in 0..count {
            let p = t.person(&mut rng);
            t.condition(p, rng.gen_range(first..=last));
        }
        suppressed.push(SmallGroup { first, last, count });
    }
    // 2019: trackers.
    let trackers = distinct_days(&mut rng, day(2019, 1, 1), day(2019, 12, 31), 20)
        .into_iter()
        .map(|d| {
            let p = t.person(&mut rng);
            t.visit(p, INPATIENT, d, d + 2);
            Admission {
                person: p,
                day: d,
                member: false,
            }
        })
        .collect();
    // 2021: planted admissions on distinct days.
    let mut admissions: Vec<Admission> =
        distinct_days(&mut rng, day(2021, 1, 1), day(2021, 12, 31), 200)
            .into_iter()
            .map(|d| {
                let p = t.person(&mut rng);
                t.visit(p, INPATIENT, d, d + 2);
                let member = rng.gen_bool(0.5);
                if member {
                    t.condition(p, d);
                }
                Admission {
                    person: p,
                    day: d,
                    member,
                }
            })
            .collect();
    admissions.sort_by_key(|a| a.day);
    // 2022: multi-episode persons, admissions at least two days apart.
    let mut days: Vec<i32> = (0..182).map(|i| day(2022, 1, 1) + 2 * i).collect();
    days.shuffle(&mut rng);
    let episodic = days
        .chunks(EPISODES)
        .take(12)
        .map(|chunk| {
            let p = t.person(&mut rng);
            let member = rng.gen_bool(0.5);
            let mut days = chunk.to_vec();
            days.sort_unstable();
            for &d in &days {
                t.visit(p, INPATIENT, d, d);
                if member {
                    t.condition(p, d);
                }
            }
            Episodic {
                person: p,
                days,
                member,
            }
        })
        .collect();

    std::fs::create_dir_all(dir).expect("CDM directory");
    let file = |name: &str, header: &str, body: &str| {
        let mut f = std::fs::File::create(dir.join(name)).expect("CDM file");
        writeln!(f, "{header}")
            .and_then(|()| f.write_all(body.as_bytes()))
            .expect("write CDM");
    };
    file(
        "person.csv",
        "person_id,gender_concept_id,year_of_birth,race_concept_id,ethnicity_concept_id",
        &t.person,
    );
    file(
        "observation_period.csv",
        "observation_period_id,person_id,observation_period_start_date,observation_period_end_date,period_type_concept_id",
        &t.observation_period,
    );
    file(
        "visit_occurrence.csv",
        "visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_end_date,visit_type_concept_id",
        &t.visit,
    );
    file(
        "condition_occurrence.csv",
        "condition_occurrence_id,person_id,condition_concept_id,condition_start_date,condition_type_concept_id",
        &t.condition,
    );
    file(
        "concept.csv",
        "concept_id,concept_name,domain_id,vocabulary_id,concept_class_id,standard_concept,concept_code,valid_start_date,valid_end_date,invalid_reason",
        &format!(
            "{CONDITION},Type 2 diabetes mellitus,Condition,SNOMED,Clinical Finding,S,44054006,1970-01-01,2099-12-31,\n\
             {INPATIENT},Inpatient Visit,Visit,Visit,Visit,S,IP,1970-01-01,2099-12-31,\n\
             {OUTPATIENT},Outpatient Visit,Visit,Visit,Visit,S,OP,1970-01-01,2099-12-31,\n\
             8507,MALE,Gender,Gender,Gender,S,M,1970-01-01,2099-12-31,\n\
             8532,FEMALE,Gender,Gender,Gender,S,F,1970-01-01,2099-12-31,\n"
        ),
    );
    World {
        admissions,
        trackers,
        suppressed,
        episodic,
        empty: (day(2020, 1, 1), day(2020, 12, 31)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_round_trip() {
        assert_eq!(day(1970, 1, 1), 0);
        assert_eq!(date(day(2021, 3, 1)), "2021-03-01");
        assert_eq!(day(2021, 3, 1) - day(2021, 2, 28), 1);
        assert_eq!(date(day(2020, 2, 29)), "2020-02-29");
    }
}
