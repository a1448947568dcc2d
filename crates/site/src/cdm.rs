//! Where the site's OMOP CDM lives, and so where its cohorts are computed: a Qiao store on this
//! machine ([`Store`]), or — with the `spark` feature — a warehouse reached through Spark Connect
//! ([`spark::SparkCdm`], `qiao site serve --spark sc://… --schema S`), which computes each
//! cohort and returns what the release needs (rows, statistics, each person's best-event mask,
//! the subjects' year of birth and gender) and nothing else of the warehouse.
//!
//! Everything else — admission, the ledger, disclosure control, the journal — is the same code
//! for both ([`crate::exec`]).

use qiao_analysis::network::Cdm;
use qiao_cohort::exec::Cancel;
use qiao_store::{Meta, Store};

use crate::exec::{CohortRun, ExecError};

/// The site's CDM: what the analyses read ([`Cdm`]), its extent and its cohorts.
pub trait SiteCdm: Cdm {
    /// Its size and dates, for the status sent with each poll.
    fn meta(&self) -> &Meta;

    /// The cohort of a Circe definition (JSON), with each person's best-event mask, stopping
    /// with [`ExecError::Cancelled`] once `cancel` is cancelled.
    fn run(
        &self,
        definition: &serde_json::Value,
        cancel: Option<Cancel>,
    ) -> Result<CohortRun, ExecError>;
}

impl SiteCdm for Store {
    fn meta(&self) -> &Meta {
        Store::meta(self)
    }

    fn run(
        &self,
        definition: &serde_json::Value,
        cancel: Option<Cancel>,
    ) -> Result<CohortRun, ExecError> {
        crate::exec::run_definition_until(self, definition, cancel)
    }
}

#[cfg(feature = "spark")]
pub mod spark;
