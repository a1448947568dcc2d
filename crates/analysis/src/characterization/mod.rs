//! Cohort characterization: OHDSI FeatureExtraction 3.14's aggregated covariates
//! (`getDbCovariateData(aggregated = TRUE)`), computed over the store.
//!
//! Every analysis follows its SQL template (`inst/sql/sql_server/`): covariate ids
//! `concept_id × 1000 + analysis_id`, binary covariates counted per cohort entry (distinct
//! subject and index date; value-as-concept covariates count persons, as FE's `row_id` is the
//! subject id) with mean = sum / entries; the comorbidity scores as continuous covariates with
//! FE's statistics (see [`scores`]). [`compare`] is FE's `computeStandardizedDifference`.
//!
//! - [`prespec`]: the prespecified analyses (ids, windows, defaults).
//! - [`features`]: the binary covariates.
//! - [`scores`]: Charlson, DCSI, CHADS2, CHA2DS2-VASc and FE's continuous statistics.
//! - [`measures`]: the continuous demographics (age, observation time, time in cohort) and concept
//!   and visit counts.
//! - [`values`]: measurement and observation values as number.

pub mod features;
pub mod measures;
pub mod prespec;
pub mod scores;
pub mod values;

use qiao_cdm::date::Day;
use qiao_cohort::CohortRow;
use qiao_store::Store;
use serde::Serialize;

pub use prespec::{default_ids, prespec, Count, Kind, Measure, Prespec, Score, Window, PRESPEC};

/// FeatureExtraction's covariate settings that Qiao takes: which prespecified analyses and the
/// window days (`OtherParameters.csv` defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub analysis_ids: Vec<u32>,
    pub long_term_start_days: i32,
    pub medium_term_start_days: i32,
    pub short_term_start_days: i32,
    pub end_days: i32,
}

impl Default for Settings {
    /// R `createDefaultCovariateSettings()`.
    fn default() -> Settings {
        Settings {
            analysis_ids: default_ids(),
            long_term_start_days: -365,
            medium_term_start_days: -180,
            short_term_start_days: -30,
            end_days: 0,
        }
    }
}

impl Settings {
    /// The start day of `w` (None: no lower bound).
    pub fn start_day(&self, w: Window) -> Option<i32> {
        match w {
            Window::None | Window::AnyTimePrior => None,
            Window::Long => Some(self.long_term_start_days),
            Window::Medium => Some(self.medium_term_start_days),
            Window::Short => Some(self.short_term_start_days),
            Window::End => Some(self.end_days),
        }
    }
}

/// Why a characterization could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum CharacterizationError {
    #[error("analysis {0} is not a FeatureExtraction prespecified analysis Qiao computes (supported: {1})")]
    UnknownAnalysis(u32, String),
    #[error("cohort subject {0} is not a person of this store")]
    UnknownSubject(i64),
}

/// A cohort entry as FeatureExtraction reads it: the subject (person index) and the index date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub person: u32,
    pub start: Day,
}

/// The cohort's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Population {
    /// Cohort entries (FE's population size and denominator).
    pub entries: u64,
    /// Distinct subjects.
    pub subjects: u64,
}

/// One binary covariate of a cohort.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Binary {
    pub covariate_id: i64,
    pub analysis_id: u32,
    pub concept_id: i64,
    pub name: String,
    pub sum: u64,
    pub mean: f64,
}

/// FeatureExtraction's statistics of a continuous covariate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Distribution {
    pub count: u64,
    pub mean: f64,
    pub sd: f64,
    pub min: f64,
    pub p10: f64,
    pub p25: f64,
    pub median: f64,
    pub p75: f64,
    pub p90: f64,
    pub max: f64,
}

/// One continuous covariate of a cohort.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Continuous {
    pub covariate_id: i64,
    pub analysis_id: u32,
    pub concept_id: i64,
    pub name: String,
    pub stats: Distribution,
    /// The values of the entries with a value, each with its person (index), when they are
    /// integers (what a site releases across the network is computed from them, each person's
    /// values clipped); None for real values (705–708, 809–812, HFRS in tenths).
    #[serde(skip)]
    pub values: Option<Vec<(u32, i64)>>,
}

/// A cohort's aggregated covariates, ordered by analysis then covariate id.
#[derive(Debug, Clone, PartialEq)]
pub struct Characterization {
    pub population: Population,
    pub binary: Vec<Binary>,
    pub continuous: Vec<Continuous>,
}

/// The cohort entries of `rows` (subject ids resolved to person indexes).
pub fn entries(store: &Store, rows: &[CohortRow]) -> Result<Vec<Entry>, CharacterizationError> {
    let persons = store.persons();
    let index = persons.index_of_each(rows.iter().map(|r| r.subject_id));
    rows.iter()
        .zip(index)
        .map(|(r, person)| {
            person
                .map(|person| Entry {
                    person,
                    start: r.start,
                })
                .ok_or(CharacterizationError::UnknownSubject(r.subject_id))
        })
        .collect()
}

/// The analyses of `settings`, checked.
fn analyses(settings: &Settings) -> Result<Vec<&'static Prespec>, CharacterizationError> {
    let mut ids = settings.analysis_ids.clone();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .map(|id| {
            prespec(id).ok_or_else(|| {
                let known: Vec<String> = PRESPEC.iter().map(|a| a.id.to_string()).collect();
                CharacterizationError::UnknownAnalysis(id, known.join(","))
            })
        })
        .collect()
}

/// Rows that several analyses read alike, so that they read them once, as one task.
#[derive(Clone, Copy, PartialEq)]
enum SharedRows {
    /// The condition eras before each entry's end day: every comorbidity score.
    Scores,
    /// An era table's rows up to the end day, whatever the window: its analyses of one kind.
    Eras(Kind),
}

impl SharedRows {
    fn of(kind: Kind) -> Option<SharedRows> {
        match kind {
            Kind::Score(_) => Some(SharedRows::Scores),
            Kind::Concept(_, true) | Kind::Group(_, true) => Some(SharedRows::Eras(kind)),
            _ => None,
        }
    }
}

/// An analysis's covariates, by its index in the analyses.
type Computed = (usize, Vec<Binary>, Vec<Continuous>);

/// FeatureExtraction's aggregated covariates of the cohort `rows` on `store`.
pub fn characterize(
    store: &Store,
    rows: &[CohortRow],
    settings: &Settings,
) -> Result<Characterization, CharacterizationError> {
    let analyses = analyses(settings)?;
    let entries = entries(store, rows)?;
    let mut subjects: Vec<u32> = entries.iter().map(|e| e.person).collect();
    subjects.sort_unstable();
    subjects.dedup();
    let population = Population {
        entries: entries.len() as u64,
        subjects: subjects.len() as u64,
    };
    let ctx = features::Context::new(store);
    // Analyses that read the same rows run together: the scores (condition eras), and each era
    // table's analyses of one kind (every row up to the end day, whatever the window). Each
    // group is one task; the tasks run in parallel.
    let mut tasks: Vec<Vec<usize>> = Vec::new();
    let mut shared: Vec<(SharedRows, usize)> = Vec::new();
    for (i, a) in analyses.iter().enumerate() {
        let Some(key) = SharedRows::of(a.kind) else {
            tasks.push(vec![i]);
            continue;
        };
        match shared.iter().find(|(k, _)| *k == key) {
            Some(&(_, t)) => tasks[t].push(i),
            None => {
                shared.push((key, tasks.len()));
                tasks.push(vec![i]);
            }
        }
    }
    let done: Vec<Vec<Computed>> = {
        use rayon::prelude::*;
        tasks
            .par_iter()
            .map(|task| {
                let list: Vec<&Prespec> = task.iter().map(|&i| analyses[i]).collect();
                let out: Vec<(Vec<Binary>, Vec<Continuous>)> = match list[0].kind {
                    Kind::Score(_) => {
                        let scores: Vec<(&Prespec, Score)> = list
                            .iter()
                            .filter_map(|a| match a.kind {
                                Kind::Score(s) => Some((*a, s)),
                                _ => None,
                            })
                            .collect();
                        scores::scores(&ctx, &scores, &entries, settings)
                            .into_iter()
                            .map(|c| (Vec::new(), c.into_iter().collect()))
                            .collect()
                    }
                    Kind::Concept(_, true) | Kind::Group(_, true) => {
                        features::binary_eras(&ctx, &list, &entries, settings)
                            .into_iter()
                            .map(|b| (b, Vec::new()))
                            .collect()
                    }
                    Kind::Measure(m) => vec![(
                        Vec::new(),
                        measures::measure(&ctx, list[0], m, &entries, rows, settings),
                    )],
                    _ => vec![(
                        features::binary(&ctx, list[0], &entries, settings),
                        Vec::new(),
                    )],
                };
                task.iter().zip(out).map(|(&i, (b, c))| (i, b, c)).collect()
            })
            .collect()
    };
    // In the analyses' order.
    let mut results: Vec<(Vec<Binary>, Vec<Continuous>)> =
        vec![(Vec::new(), Vec::new()); analyses.len()];
    for (i, b, c) in done.into_iter().flatten() {
        results[i] = (b, c);
    }
    let mut binary = Vec::new();
    let mut continuous = Vec::new();
    for (b, c) in results {
        binary.extend(b);
        continuous.extend(c);
    }
    Ok(Characterization {
        population,
        binary,
        continuous,
    })
}

/// A covariate of target and comparator side by side, with FE's standardized difference.
#[derive(Debug, Clone, PartialEq)]
pub struct Compared<T> {
    pub target: Option<T>,
    pub comparator: Option<T>,
    /// FE's `stdDiff` = (comparator mean − target mean) / sd (None when not computable: no
    /// comparator, or a zero sd, where R gives NaN or ±Inf).
    pub smd: Option<f64>,
}

/// Target vs comparator, covariate by covariate (the union of both; ordered by covariate id).
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub binary: Vec<Compared<Binary>>,
    pub continuous: Vec<Compared<Continuous>>,
}

/// The standardized difference as FeatureExtraction's `computeStandardizedDifference`:
/// binary covariates: means count/n (0 when absent), sd_i = √(m_i(1 − m_i)),
/// sd = √((sd1² + sd2²)/2); continuous: sd = √(sd1² + sd2²) (FE does not halve it);
/// stdDiff = (mean2 − mean1) / sd with cohort 1 the target.
pub fn compare(target: &Characterization, comparator: Option<&Characterization>) -> Comparison {
    let finite = |x: f64| x.is_finite().then_some(x);
    let n1 = target.population.entries as f64;
    let mut binary: Vec<Compared<Binary>> = Vec::new();
    let mut continuous: Vec<Compared<Continuous>> = Vec::new();
    match comparator {
        None => {
            binary = target
                .binary
                .iter()
                .map(|b| Compared {
                    target: Some(b.clone()),
                    comparator: None,
                    smd: None,
                })
                .collect();
            continuous = target
                .continuous
                .iter()
                .map(|c| Compared {
                    target: Some(c.clone()),
                    comparator: None,
                    smd: None,
                })
                .collect();
        }
        Some(cmp) => {
            let n2 = cmp.population.entries as f64;
            for (t, c) in merge(&target.binary, &cmp.binary, |b| b.covariate_id) {
                let m1 = t.map_or(0.0, |b| b.sum as f64 / n1);
                let m2 = c.map_or(0.0, |b| b.sum as f64 / n2);
                let sd1 = (m1 * (1.0 - m1)).sqrt();
                let sd2 = (m2 * (1.0 - m2)).sqrt();
                let sd = ((sd1 * sd1 + sd2 * sd2) / 2.0).sqrt();
                binary.push(Compared {
                    target: t.cloned(),
                    comparator: c.cloned(),
                    smd: finite((m2 - m1) / sd),
                });
            }
            for (t, c) in merge(&target.continuous, &cmp.continuous, |c| c.covariate_id) {
                let (m1, sd1) = t.map_or((0.0, 0.0), |c| (c.stats.mean, c.stats.sd));
                let (m2, sd2) = c.map_or((0.0, 0.0), |c| (c.stats.mean, c.stats.sd));
                let sd = (sd1 * sd1 + sd2 * sd2).sqrt();
                continuous.push(Compared {
                    target: t.cloned(),
                    comparator: c.cloned(),
                    smd: finite((m2 - m1) / sd),
                });
            }
        }
    }
    Comparison { binary, continuous }
}

/// The full outer join of two lists by `key` (ordered by key).
fn merge<'a, T>(
    a: &'a [T],
    b: &'a [T],
    key: impl Fn(&T) -> i64,
) -> Vec<(Option<&'a T>, Option<&'a T>)> {
    let mut keys: Vec<i64> = a.iter().chain(b).map(&key).collect();
    keys.sort_unstable();
    keys.dedup();
    let ai: std::collections::HashMap<i64, &T> = a.iter().map(|x| (key(x), x)).collect();
    let bi: std::collections::HashMap<i64, &T> = b.iter().map(|x| (key(x), x)).collect();
    keys.into_iter()
        .map(|k| (ai.get(&k).copied(), bi.get(&k).copied()))
        .collect()
}
