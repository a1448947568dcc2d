//! Qiao's analyses: what a site computes over the cohort engine's rows and the store, beyond
//! counts.
//!
//! - [`cohorts`]: a cohort definition run on a store into its rows (the input of every analysis).
//! - [`characterization`]: cohort characterization, OHDSI FeatureExtraction's aggregated covariates.
//! - [`incidence`]: incidence proportions and rates, OHDSI CohortIncidence.
//! - [`time_to_event`]: each person's follow-up from the cohort start to the first outcome (time, event).
//! - [`survival`]: time to event: Kaplan–Meier and the log-rank test.
//! - [`network`]: analyses across the network: the [`network::Analysis`] trait, what a site
//!   releases (through `qiao-disclosure`) and how the hub pools it.
//! - [`regression`]: logistic and Cox proportional-hazards regression, fitted from per-site sums.

pub mod characterization;
pub mod cohorts;
pub mod incidence;
pub mod network;
pub mod regression;
pub mod survival;
pub mod time_to_event;
