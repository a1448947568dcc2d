//! One module per subcommand: its arguments and its `run`.

pub mod analyze;
pub mod cohort;
pub mod demo;
pub mod hub;
pub mod ingest;
pub mod query;

pub mod site;
pub mod stats;
pub mod store;
pub mod synth;
