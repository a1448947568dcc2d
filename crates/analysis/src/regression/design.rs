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
    fn column(&self, store: &Store, units: &[Unit]) -> Result<Vec<f64>, CovariateError>;
}

/// Each unit's value from its person's column `column` (`None`: no usable value, an error that
/// says how many persons `lack`).
fn person_column(
    store: &Store,
    units: &[Unit],
    covariate: String,
    column: &str,
    lack: &str,
    value: impl Fn(i32, &Unit) -> Option<f64>,
) -> Result<Vec<f64>, CovariateError> {
    let persons = store.persons();
    let col = persons.column(column).and_then(|c| c.as_i32());
    let mut missing = 0usize;
    let v = units
        .iter()
        .map(|u| {
            col.as_ref()
                .and_then(|c| c.get(u.subject.person as usize))
                .and_then(|x| value(x, u))
                .unwrap_or_else(|| {
                    missing += 1;
                    f64::NAN
                })
        })
        .collect();
    if missing > 0 {
        return Err(CovariateError {
            name: covariate,
            why: format!("{missing} persons {lack}"),
        });
    }
    Ok(v)
}

/// Age at index in decades: (year of the cohort start − year of birth) / 10, as FeatureExtraction's
/// age (year difference).
pub struct AgeDecades;

impl Covariate for AgeDecades {
    fn name(&self) -> String {
        "age (per 10 years)".into()
    }
    fn column(&self, store: &Store, units: &[Unit]) -> Result<Vec<f64>, CovariateError> {
        person_column(
            store,
            units,
            self.name(),
            "year_of_birth",
            "have no year of birth",
            |y, u| {
                (y != qiao_cdm::NULL_INT && u.subject.index_date != NULL_DAY)
                    .then(|| (date::year(u.subject.index_date) - y) as f64 / 10.0)
            },
        )
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
    fn column(&self, store: &Store, units: &[Unit]) -> Result<Vec<f64>, CovariateError> {
        let lack = "have a gender other than male (8507) or female (8532)";
        person_column(
            store,
            units,
            self.name(),
            "gender_concept_id",
            lack,
            |g, _| match g {
                MALE => Some(1.0),
                FEMALE => Some(0.0),
                _ => None,
            },
        )
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
    fn column(&self, _store: &Store, units: &[Unit]) -> Result<Vec<f64>, CovariateError> {
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
    fn column(&self, _store: &Store, units: &[Unit]) -> Result<Vec<f64>, CovariateError> {
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
    fn column(&self, store: &Store, units: &[Unit]) -> Result<Vec<f64>, CovariateError> {
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
