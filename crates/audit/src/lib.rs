//! Append-only, hash-chained audit logs for the Qiao hub and sites.
//!
//! Each [`Entry`] records who did what, when, under which project and job, what was decided
//! and what (aggregate) was released, and carries `hash = SHA-256(domain || prev_hash ||
//! canonical JSON of its fields)`, so editing, deleting, inserting or reordering any entry
//! breaks the chain at that entry. [`AuditLog`] keeps the chain in a JSON-lines file;
//! [`Chain`] keeps it in any [`AuditStore`] (memory now, the hub's database later).
//!
//! Pure apart from the log file: no clock (timestamps come from the caller), no network.

pub mod chain;
pub mod checkpoint;
pub mod entry;
pub mod file;
#[cfg(feature = "openapi")]
mod openapi;

pub use chain::{
    verify_entries, AuditError, AuditStore, Chain, ChainError, ChainErrorReason, ChainVerifier,
    Checkpoint, MemoryStore, VerifyReport,
};
pub use checkpoint::{check_heads, last_head, HeadProblem, HeadsError, HeadsReport};
pub use entry::{Actor, Entry, EntryDraft, EntryHash};
pub use file::{
    read_entries, verify, verify_with_checkpoint, AuditLog, FileLogError, FileStore, OpenReport,
    TornTail, Verified,
};
