//! Qiao's cohort engine: OHDSI Circe (circe-be) cohort definitions — the JSON that ATLAS exports —
//! parsed, validated and executed over a Qiao store with circe-be's exact semantics.
//!
//! - [`model`]: the `CohortExpression` serde model; errors name the JSON path.
//! - [`conceptset`]: concept set expression resolution against a [`conceptset::Vocabulary`].
//! - [`narrative`]: a definition as readable Markdown, in English or Simplified Chinese.
//! - [`exec`]: the executor: [`exec::Prepared`] compiles a definition against a store and runs it,
//!   pushing cohort rows into a [`exec::CohortSink`] and returning Circe's statistics.

pub mod conceptset;
pub mod exec;
pub mod model;
pub mod narrative;

pub use exec::{CohortError, CohortRow, CohortSink, CohortStats, Counter, CsvSink, Prepared};
pub use model::{parse, CohortDefinition, Issue, ModelError};
