//! The Qiao hub: the alliance's coordination server.
//!
//! Sponsors submit cohort questions under approved projects; enrolled sites (hospitals) pull
//! the resulting jobs over a signed long-poll protocol, compute them locally, apply disclosure
//! control and post back aggregate results, which the hub stores once and shows per site with
//! network totals built from released values only. Everything is recorded in a hash-chained
//! audit log. See the crate README for the HTTP API and the site contract.
//!
//! - [`store`]: the [`HubStore`] trait (transactional tables) with [`RedbStore`] (embedded,
//!   default) and [`PgStore`] (PostgreSQL), and every domain operation written once over it.
//! - [`api`]: routes, authentication (argon2 passwords, session and API tokens, login rate
//!   limit), role checks, handlers, the site protocol.
//! - [`serve`]: the TLS (rustls) / plain HTTP server loop.
//! - [`view`], [`report`]: job status, network totals, and their table/JSON renderings.
//! - [`client`]: a blocking client for the CLI and tests.

pub mod api;
pub mod auth;
pub mod client;
pub mod error;
pub mod floors;
pub mod model;
pub mod report;
pub mod serve;
pub mod service;
pub mod store;
pub mod util;
/// Each user's remaining privacy budget per site, as the sites last reported it.
pub use store::budget;
pub mod view;

pub use api::{router, Hub, HubConfig};
pub use client::{ClientError, HubClient};
pub use error::ApiError;
pub use serve::{BackgroundHub, Listen};
pub use store::{open_store, CallerFault, HubStore, OperatorFault, PgStore, RedbStore, StoreError};

/// The audit crate, re-exported for the CLI.
pub use qiao_audit as audit;
/// The wire protocol crate, re-exported for the CLI.
pub use qiao_protocol as protocol;
