//! Covariates: the columns of a regression's design, one value per followed person, computed at
//! the site from its store.
//!
//! Built in: age at index (per 10 years), gender (male), membership in another cohort at index,
//! treatment (target vs comparator), and a FeatureExtraction binary covariate at index
//! ([`FeCovariate`], `fe:ID`, computed by the characterization's covariate engine). Any other
//! source plugs in by implementing [`Covariate`].

use qiao_cdm::date::{self, NULL_DAY};
use qiao_cohort::CohortRow;
use qiao_store::Store;

use crate::characterization::features::{entry_covariates, Context};
use crate::characterization::{prespec, Entry, Kind, Prespec, Settings};
use crate::time_to_event::Subject;

/// Which arm a followed person belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arm {
    Target,
    Comparator,
}

/// A followed person in a regression. A person in both the target and the comparator cohort is
/// a unit in each (CohortMethod's default, "keep all").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    pub subject: Subject,
    pub arm: Arm,
}

/// A covariate that cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("covariate {name}: {why}")]
pub struct CovariateError {
    pub name: String,
    pub why: String,
}

/// One covariate: its name in the output and its value for each unit.
pub trait Covariate {
    fn name(&self) -> String;
    /// The range its values are clipped to under differential privacy, declared with the
    /// covariate and never read from data (a binary covariate: [0, 1]).
    fn range(&self) -> (f64, f64) {
        (0.0, 1.0)
    }
    /// Under differential privacy, subtracted from every (clipped) value before the fit, so
    /// that the covariate is nearly orthogonal to the intercept (the noisy information matrix
    /// is then well conditioned); the intercept is reported back at 0. Declared, never read
    /// from data.
    fn center(&self) -> f64 {
        0.0
    }
    /// Each unit's value; NaN where the unit has no usable value ([`Covariate::lack`] says why).
    fn values(&self, store: &Store, units: &[Unit]) -> Result<Vec<f64>, CovariateError>;
    /// What a NaN value means, after "N persons" (e.g. "have no year of birth").
    fn lack(&self) -> &'static str {
        "have no value"
    }
    /// Each unit's value, or an error saying how many persons have none (nothing is dropped).
    fn column(&self, store: &Store, units: &[Unit]) -> Result<Vec<f64>, CovariateError> {
        let values = self.values(store, units)?;
        let missing = values.iter().filter(|v| v.is_nan()).count();
        if missing > 0 {
            return Err(CovariateError {
                name: self.name(),
                why: format!("{missing} persons {}", self.lack()),
            });
        }
        Ok(values)
    }
}

/// Each unit's value from its person's column `column` (NaN: no usable value).
fn person_column(
    store: &Store,
    units: &[Unit],
    column: &str,
    value: impl Fn(i32, &Unit) -> Option<f64>,
) -> Vec<f64> {
    let persons = store.persons();
    let col = persons.column(column).and_then(|c| c.as_i32());
    units
        .iter()
        .map(|u| {
            col.as_ref()
                .and_then(|c| c.get(u.subject.person as usize))
                .and_then(|x| value(x, u))
                .unwrap_or(f64::NAN)
        })
        .collect()
}

/// Age at index in decades: (year of the cohort start − year of birth) / 10, as FeatureExtraction's
/// age (year difference).
pub struct AgeDecades;

impl Covariate for AgeDecades {
    fn name(&self) -> String {
        "age (per 10 years)".into()
    }
    /// 0 to 100 years.
    fn range(&self) -> (f64, f64) {
        (0.0, 10.0)
    }
    /// 50 years.
    fn center(&self) -> f64 {
        5.0
    }
    fn values(&self, store: &Store, units: &[Unit]) -> Result<Vec<f64>, CovariateError> {
        Ok(person_column(store, units, "year_of_birth", |y, u| {
            (y != qiao_cdm::NULL_INT && u.subject.index_date != NULL_DAY)
                .then(|| (date::year(u.subject.index_date) - y) as f64 / 10.0)
        }))
    }
    fn lack(&self) -> &'static str {
        "have no year of birth"
    }
}

/// OMOP gender concepts.
pub const MALE: i32 = 8507;
pub const FEMALE: i32 = 8532;

/// Male (gender concept 8507) = 1, female (8532) = 0; any other gender is an error (it would
/// otherwise be silently merged into a level).
pub struct GenderMale;

impl Covariate for GenderMale {
    fn name(&self) -> String {
        "gender = male".into()
    }
    fn values(&self, store: &Store, units: &[Unit]) -> Result<Vec<f64>, CovariateError> {
        Ok(person_column(
            store,
            units,
            "gender_concept_id",
            |g, _| match g {
                MALE => Some(1.0),
                FEMALE => Some(0.0),
                _ => None,
            },
        ))
    }
    fn lack(&self) -> &'static str {
        "have a gender other than male (8507) or female (8532)"
    }
}

/// 1 when the person is in another cohort on the index date (an entry with start ≤ index ≤ end).
pub struct CohortMembership {
    pub name: String,
    /// The cohort's rows in (subject_id, start) order.
    pub rows: Vec<CohortRow>,
}

impl Covariate for CohortMembership {
    fn name(&self) -> String {
        format!("cohort: {}", self.name)
    }
    fn values(&self, _store: &Store, units: &[Unit]) -> Result<Vec<f64>, CovariateError> {
        Ok(units
            .iter()
            .map(|u| {
                let s = &u.subject;
                let from = self.rows.partition_point(|r| r.subject_id < s.person_id);
                let member = self.rows[from..]
                    .iter()
                    .take_while(|r| r.subject_id == s.person_id && r.start <= s.index_date)
                    .any(|r| s.index_date <= r.end);
                member as u8 as f64
            })
            .collect())
    }
}

/// Target = 1, comparator = 0.
pub struct Treatment;

impl Covariate for Treatment {
    fn name(&self) -> String {
        "treatment (target vs comparator)".into()
    }
    fn values(&self, _store: &Store, units: &[Unit]) -> Result<Vec<f64>, CovariateError> {
        Ok(units
            .iter()
            .map(|u| (u.arm == Arm::Target) as u8 as f64)
            .collect())
    }
}

/// A FeatureExtraction covariate (`concept_id × 1000 + analysis_id`) as a 0/1 covariate: 1 when
/// the unit's entry (person, index date) has it, as FE decides it for a cohort entry with its
/// default windows ([`entry_covariates`]: the same code the characterization counts).
pub struct FeCovariate {
    /// The covariate id.
    pub id: i64,
    analysis: &'static Prespec,
}

impl FeCovariate {
    /// The covariate `id`, or why it cannot be a regression covariate (named, never dropped).
    pub fn new(id: i64) -> Result<FeCovariate, CovariateError> {
        let err = |why: String| CovariateError {
            name: format!("fe:{id}"),
            why,
        };
        let analysis_id = u32::try_from(id.rem_euclid(1000)).unwrap_or(0);
        let analysis = prespec(analysis_id).ok_or_else(|| {
            err(format!(
                "analysis {analysis_id} (the id's last three digits) is not a FeatureExtraction \
                 analysis Qiao computes"
            ))
        })?;
        match analysis.kind {
            Kind::Score(_) | Kind::Measure(_) => Err(err(format!(
                "analysis {analysis_id} ({}) is continuous; only binary covariates can be fe: \
                 covariates",
                analysis.name
            ))),
            Kind::ValueAsConcept(_) => Err(err(format!(
                "analysis {analysis_id} ({}) hashes (concept, value) pairs into its ids; its \
                 covariates are not available in a regression",
                analysis.name
            ))),
            _ => Ok(FeCovariate { id, analysis }),
        }
    }
}

impl Covariate for FeCovariate {
    fn name(&self) -> String {
        format!("fe:{}", self.id)
    }
    fn values(&self, store: &Store, units: &[Unit]) -> Result<Vec<f64>, CovariateError> {
        let entries: Vec<Entry> = units
            .iter()
            .map(|u| Entry {
                person: u.subject.person,
                start: u.subject.index_date,
            })
            .collect();
        let ctx = Context::new(store);
        let mut with: Vec<Entry> = Vec::new();
        entry_covariates(
            &ctx,
            self.analysis,
            &entries,
            &Settings::default(),
            &mut |e, cov| {
                if cov == self.id {
                    with.push(e);
                }
            },
        );
        with.sort_unstable();
        with.dedup();
        Ok(entries
            .iter()
            .map(|e| with.binary_search(e).is_ok() as u8 as f64)
            .collect())
    }
}

/// The design of a fit at a site: covariate names and their columns.
pub fn columns(
    store: &Store,
    units: &[Unit],
    covariates: &[Box<dyn Covariate + '_>],
) -> Result<(Vec<String>, Vec<Vec<f64>>), CovariateError> {
    let mut names = Vec::with_capacity(covariates.len());
    let mut cols = Vec::with_capacity(covariates.len());
    for c in covariates {
        names.push(c.name());
        cols.push(c.column(store, units)?);
    }
    Ok((names, cols))
}

/// The design of a fit under differential privacy: as [`columns`], but a unit without a
/// usable value of some covariate is left out (a decision on that person's own data, so one
/// person still changes at most their own units; refusing the whole fit would be a decision on
/// whether anyone lacks a value), every value is clipped to its covariate's declared
/// [`Covariate::range`] and its [`Covariate::center`] subtracted.
pub fn clipped_columns(
    store: &Store,
    units: &[Unit],
    covariates: &[Box<dyn Covariate + '_>],
) -> Result<Clipped, CovariateError> {
    let mut names = Vec::with_capacity(covariates.len());
    let mut all = Vec::with_capacity(covariates.len());
    for c in covariates {
        names.push(c.name());
        let ((lo, hi), center) = (c.range(), c.center());
        let values = c.values(store, units)?;
        all.push(
            values
                .into_iter()
                .map(|v| {
                    if v.is_nan() {
                        v
                    } else {
                        v.clamp(lo, hi) - center
                    }
                })
                .collect::<Vec<f64>>(),
        );
    }
    let kept: Vec<usize> = (0..units.len())
        .filter(|&i| all.iter().all(|c| !c[i].is_nan()))
        .collect();
    let columns = all
        .iter()
        .map(|c| kept.iter().map(|&i| c[i]).collect())
        .collect();
    Ok(Clipped {
        names,
        kept,
        columns,
    })
}

/// A design under differential privacy ([`clipped_columns`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Clipped {
    /// The covariates' names.
    pub names: Vec<String>,
    /// The units kept (indices into the units given), in order.
    pub kept: Vec<usize>,
    /// Each covariate's clipped, centred values over the kept units.
    pub columns: Vec<Vec<f64>>,
}
