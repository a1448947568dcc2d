//! Where the site's OMOP CDM lives, and so where its cohorts are computed: a Qiao store on this
//! machine ([`Store`]), or — with the `spark` feature — a warehouse reached through Spark Connect
//! ([`spark::SparkCdm`], `qiao site serve --spark sc://… --schema S`), which computes each
//! cohort and returns what the release needs (rows, statistics, each person's best-event mask,
//! the subjects' year of birth and gender) and nothing else of the warehouse.
//!
//! Everything else — admission, the ledger, disclosure control, the journal — is the same code
//! for both ([`crate::exec`]).

use qiao_cdm::date;
use qiao_cohort::exec::Cancel;
use qiao_store::{Meta, Store};

use crate::exec::{CohortRun, ExecError};

/// A subject's `person` row as the demographics read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonFact {
    pub year_of_birth: Option<i32>,
    pub gender_concept_id: Option<i32>,
}

/// The site's CDM.
pub trait Cdm: Send + Sync {
    /// The store, when the CDM is one on this machine (the analyses that read it row by row
    /// need it; a site without one refuses them by name).
    fn store(&self) -> Option<&Store>;

    /// Its size and dates, for the status sent with each poll.
    fn meta(&self) -> &Meta;

    /// The first and last year of its observation periods (starts and ends).
    fn observation_years(&self) -> Option<(i32, i32)>;

    /// The cohort of a Circe definition (JSON), with each person's best-event mask, stopping
    /// with [`ExecError::Cancelled`] once `cancel` is cancelled.
    fn run(
        &self,
        definition: &serde_json::Value,
        cancel: Option<Cancel>,
    ) -> Result<CohortRun, ExecError>;

    /// A cohort subject's `person` row (None: not in `person`): from the run when the CDM
    /// returned it with the cohort ([`CohortRun::person_facts`]), else looked up.
    fn person(&self, run: &CohortRun, person_id: i64) -> Option<PersonFact>;
}

impl Cdm for Store {
    fn store(&self) -> Option<&Store> {
        Some(self)
    }

    fn meta(&self) -> &Meta {
        Store::meta(self)
    }

    fn observation_years(&self) -> Option<(i32, i32)> {
        let op = self.domain("observation_period")?;
        let years = op
            .start()
            .iter()
            .chain(op.end().iter())
            .filter(|&&d| d != date::NULL_DAY)
            .map(|&d| date::year(d));
        years.fold(None, |acc, y| match acc {
            None => Some((y, y)),
            Some((lo, hi)) => Some((lo.min(y), hi.max(y))),
        })
    }

    fn run(
        &self,
        definition: &serde_json::Value,
        cancel: Option<Cancel>,
    ) -> Result<CohortRun, ExecError> {
        crate::exec::run_definition_until(self, definition, cancel)
    }

    fn person(&self, _run: &CohortRun, person_id: i64) -> Option<PersonFact> {
        let persons = self.persons();
        let idx = persons.index_of(person_id)?;
        Some(PersonFact {
            year_of_birth: persons.year_of_birth(idx),
            gender_concept_id: persons
                .i32_column("gender_concept_id")
                .get(idx as usize)
                .copied(),
        })
    }
}

#[cfg(feature = "spark")]
pub mod spark;
