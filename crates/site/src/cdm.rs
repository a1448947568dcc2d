//! Where the site's OMOP CDM lives, and so where its cohorts are computed: a Qiao store on this
//! machine ([`Store`]), or — with the `spark` feature — a warehouse reached through Spark Connect
//! ([`spark::SparkCdm`], `qiao site serve --spark sc://… --schema S`), which computes each
//! cohort and returns what the release needs (rows, statistics, each person's best-event mask,
//! the subjects' year of birth and gender) and nothing else of the warehouse.
//!
//! Everything else — admission, the ledger, disclosure control, the journal — is the same code
//! for both ([`crate::exec`]). A cohort on a store is computed here ([`run_definition`]).

use qiao_analysis::network::{Cdm, CohortRun};
use qiao_cohort::exec::{Cancel, RowsAndMasks};
use qiao_cohort::{CohortError, Prepared};
use qiao_protocol::FailureKind;
use qiao_store::{Meta, Store};

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
        run_definition_until(self, definition, cancel)
    }
}

/// Why a definition could not be run. The message stays at the site (logs, audit); only the
/// [`FailureKind`] crosses the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// Malformed or invalid definition.
    #[error("invalid cohort definition: {0}")]
    Invalid(String),
    /// Valid but not supported by the engine.
    #[error("unsupported cohort definition: {0}")]
    Unsupported(String),
    /// Anything else.
    #[error("internal error: {0}")]
    Internal(String),
    /// Stopped by its cancellation token (the site's time limit): what happened, for the sponsor
    /// and the audit.
    #[error("{0}")]
    Cancelled(String),
}

impl ExecError {
    /// The wire code.
    pub fn kind(&self) -> FailureKind {
        match self {
            ExecError::Invalid(_) => FailureKind::InvalidDefinition,
            ExecError::Unsupported(_) => FailureKind::UnsupportedDefinition,
            ExecError::Internal(_) => FailureKind::Internal,
            ExecError::Cancelled(_) => FailureKind::Timeout,
        }
    }
}

/// Parses, compiles and runs a Circe definition on `store`.
pub fn run_definition(
    store: &Store,
    definition: &serde_json::Value,
) -> Result<CohortRun, ExecError> {
    run_definition_until(store, definition, None)
}

/// As [`run_definition`], stopping with [`ExecError::Cancelled`] once `cancel` is cancelled.
pub fn run_definition_until(
    store: &Store,
    definition: &serde_json::Value,
    cancel: Option<Cancel>,
) -> Result<CohortRun, ExecError> {
    let text = definition.to_string();
    let def = qiao_cohort::parse(&text).map_err(|e| ExecError::Invalid(e.to_string()))?;
    let mut prepared = Prepared::new(&def, store).map_err(map_cohort_error)?;
    if let Some(c) = cancel {
        prepared = prepared.with_cancel(c);
    }
    let mut sink = RowsAndMasks::default();
    let stats = prepared.run(store, &mut sink).map_err(map_cohort_error)?;
    Ok(CohortRun {
        rows: sink.rows,
        stats,
        person_masks: sink.masks,
        person_facts: None,
    })
}

fn map_cohort_error(e: CohortError) -> ExecError {
    match e {
        CohortError::Model(m) => ExecError::Invalid(m.to_string()),
        CohortError::Unsupported(u) => ExecError::Unsupported(u.to_string()),
        CohortError::Sink(s) => ExecError::Internal(s),
        CohortError::Cancelled => ExecError::Cancelled("stopped at the site's time limit".into()),
    }
}

#[cfg(feature = "spark")]
pub mod spark;
