//! Qiao's cohort engine: OHDSI Circe (circe-be) cohort definitions — the JSON that ATLAS exports —
//! parsed, validated and executed over a Qiao store with circe-be's exact semantics.
//!
//! - [`model`]: the `CohortExpression` serde model; errors name the JSON path.
//! - [`conceptset`]: concept set expression resolution against a [`conceptset::Vocabulary`].
//! - [`narrative`]: a definition as readable Markdown, in English or Simplified Chinese.
//! - [`exec`]: the executor: [`exec::Prepared`] compiles a definition into the plan
//!   ([`exec::plan`], the public IR) and any [`exec::Evaluator`] runs it ([`exec::Native`] over a
//!   store; the Spark backend in `qiao-spark`), pushing cohort rows into a [`exec::CohortSink`]
//!   and returning Circe's statistics; [`exec::tail`] is Circe's tail, written once.

pub mod conceptset;
pub mod exec;
pub mod model;
pub mod narrative;

pub use exec::{
    CohortError, CohortRow, CohortSink, CohortStats, Counter, CsvSink, Evaluator, Native, Prepared,
};
pub use model::{parse, CohortDefinition, Issue, ModelError};
