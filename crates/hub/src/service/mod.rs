//! The hub's domain operations apart from HTTP: new accounts ([`users`]), enrollment tokens
//! ([`enrollment`]), job submission ([`jobs`]); sign-in is [`crate::Hub::password_login`]. Each
//! returns a domain error (`UserRefused`, `SubmitRefused`, …) that the API maps to a status and
//! a code, and the CLI prints.

pub mod audit_heads;
pub mod enrollment;
pub mod jobs;
pub mod runs;
pub mod users;
