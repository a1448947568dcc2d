//! The OMOP Common Data Model as Qiao knows it: which tables and columns exist (CDM v5.3 and v5.4),
//! which an OHDSI Circe criterion reads, and how their values are typed. Knows nothing of files or stores.

pub mod date;
mod schema;
mod table;

pub use schema::*;
pub use table::{Column, RawTable, TextColumn, NULL_CONCEPT, NULL_ID, NULL_INT};
