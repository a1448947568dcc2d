//! A cohort definition run on a store: the rows every analysis starts from.

use qiao_cohort::{parse, CohortRow, Prepared};
use qiao_store::Store;

/// Why a cohort could not be made for an analysis.
#[derive(Debug, thiserror::Error)]
pub enum CohortInputError {
    #[error("{name}: {source}")]
    Definition {
        name: String,
        #[source]
        source: qiao_cohort::ModelError,
    },
    #[error("{name}: {source}")]
    Run {
        name: String,
        #[source]
        source: qiao_cohort::CohortError,
    },
}

/// Parses the Circe JSON `json` (named `name` in errors) and runs it on `store`: its rows in
/// (subject_id, start) order.
pub fn cohort_rows(
    store: &Store,
    name: &str,
    json: &str,
) -> Result<Vec<CohortRow>, CohortInputError> {
    let def = parse(json).map_err(|source| CohortInputError::Definition {
        name: name.to_string(),
        source,
    })?;
    let prepared = Prepared::new(&def, store).map_err(|source| CohortInputError::Run {
        name: name.to_string(),
        source,
    })?;
    let mut rows = Vec::new();
    prepared
        .run(store, &mut rows)
        .map_err(|source| CohortInputError::Run {
            name: name.to_string(),
            source,
        })?;
    Ok(rows)
}
