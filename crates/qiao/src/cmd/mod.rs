//! One module per subcommand: its arguments and its `run`.

pub mod cohort;
pub mod demo;
pub mod ingest;
pub mod stats;
pub mod synth;
