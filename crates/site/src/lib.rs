//! The Qiao site: a hospital's end of the federated network.
//!
//! A site holds its store and **pulls** jobs from the hub (it opens no inbound port):
//!
//! - [`serve::enroll`]: generate the site's Ed25519 key pair, register it with a one-time
//!   token, pin the hub's key.
//! - [`serve::serve`]: long-poll the hub, verify every job envelope (pinned key, addressee,
//!   timestamp, nonce), decide by the [`policy::SitePolicy`] (auto / manual approval / deny),
//!   run approved jobs with the cohort engine ([`exec`]), put every number through
//!   qiao-disclosure, check the result is aggregate-only and tied to its job, journal it, and
//!   post it signed until the hub acknowledges it. A job is computed at most once
//!   ([`queue::Journal`]); the loop backs off while the hub is down.
//! - [`prescreen`]: the recruitment pre-screening list (patient ids), for the site's own
//!   investigators through the local CLI only: never sent to the hub.
//! - [`recruitment`]: the investigators' marks on a pre-screening list (screened, enrolled,
//!   excluded), kept here; the hub gets their released monthly counts only.
//! - [`projects`]: the projects the site accepted and the investigators assigned to each (who
//!   may open pre-screening lists).
//! - [`audit`]: every job seen, every decision, everything released and every pre-screening
//!   access in a hash-chained, append-only log.
//! - [`ui`]: `qiao site ui`, the site's own web pages (approval queue, policy, audit log,
//!   pre-screening lists), on the hospital's network only.
//! - [`cli`]: `qiao site …`.
//!
//! Files: see [`data`].

pub mod audit;
pub mod audit_cmd;
pub mod audit_heads;
pub mod cdm;
pub mod cli;
pub mod client;
pub mod cohorts;
pub mod data;
pub mod definitions;
pub mod exec;
pub mod limits;
pub mod policy;
pub mod prescreen;
pub mod projects;
pub mod queue;
pub mod recruitment;
pub mod replay;
pub mod run;
pub mod serve;
pub mod ui;
pub mod users;
pub mod workers;

pub use client::{HubClient, HubError, TlsOptions};
pub use data::{SiteConfig, SiteDir};
pub use exec::{
    cohort_count_statistics, cohort_count_values, demographics_statistics, execute, run_definition,
    subjects_are_final, true_funnel, CohortRun, ExecContext, Executed, TrueFunnel,
};
pub use policy::{Approval, SitePolicy};
pub use serve::{enroll, serve, serve_on, EnrollOptions, ServeOptions};
