//! The hub's state: a small set of ordered tables of JSON documents behind the [`HubStore`]
//! trait, with two implementations — [`RedbStore`] (embedded, file-backed, ACID; the default)
//! and [`PgStore`] (a PostgreSQL server) — and every domain operation written once on top of it
//! (`impl dyn HubStore`), so both backends behave identically and one test suite covers both.
//!
//! Every mutating operation runs in one write transaction that also appends its audit entry,
//! and returns only after the transaction is durably committed: a caller that responds after
//! the call returns never acknowledges anything a crash could lose.

pub mod audit_heads;
pub mod budget;
mod definitions;
mod ops;
mod pg;
mod records;
mod redb_store;

use std::fmt;

pub use audit_heads::HeadKept;
pub use ops::{
    append_audit, create_job_in, job_in, withdraw_job_in, EnrollFailure, LeasedJob, QuotaExceeded,
    Quotas, ResultOutcome,
};
pub use pg::PgStore;
pub use records::{get_json, insert_new_json, put_json, scan_json};
pub use redb_store::RedbStore;

/// The current schema version of both backends. Version 2 added the portal's tables, which
/// the portal now declares itself ([`Table::Extension`]).
pub const SCHEMA_VERSION: u32 = 2;

/// The logical tables. Keys are ASCII strings compared bytewise; values are JSON documents.
///
/// The hub's own tables are listed here and created when the store opens. A crate built on the
/// hub (the portal) declares its own tables as [`Table::Extension`] constants: the backends
/// create such a table in the first write transaction that touches it, and a table never
/// written reads as empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    /// Hub-wide values: the signing key, counters.
    Meta,
    /// User accounts by id.
    Users,
    /// Session and API tokens by the hex SHA-256 of the token.
    Tokens,
    /// Sites by id.
    Sites,
    /// Projects by id.
    Projects,
    /// Jobs by job id.
    Jobs,
    /// `site/seq` → job id for every job still waiting for that site's result.
    Pending,
    /// `job/site` → the site's stored result.
    Results,
    /// The audit chain by zero-padded sequence number.
    Audit,
    /// A table owned by another crate, by its name: `[a-z_]+`, fixed (never user input) and
    /// none of the hub's.
    Extension(&'static str),
}

impl Table {
    /// The hub's own tables.
    pub const ALL: [Table; 9] = [
        Table::Meta,
        Table::Users,
        Table::Tokens,
        Table::Sites,
        Table::Projects,
        Table::Jobs,
        Table::Pending,
        Table::Results,
        Table::Audit,
    ];

    /// The table's name (a fixed identifier, never user input).
    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Users => "users",
            Table::Tokens => "tokens",
            Table::Sites => "sites",
            Table::Projects => "projects",
            Table::Jobs => "jobs",
            Table::Pending => "pending",
            Table::Results => "results",
            Table::Audit => "audit",
            Table::Extension(name) => name,
        }
    }
}

/// A storage failure, by who is at fault: the caller (a request the stored state refuses,
/// answered 4xx) or the operator (the database, its contents or its version; answered 500 and
/// logged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The caller's request is refused.
    #[error(transparent)]
    Caller(#[from] CallerFault),
    /// The hub's storage failed.
    #[error(transparent)]
    Operator(#[from] OperatorFault),
}

/// What the caller asked for that the stored state refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallerFault {
    /// The record already exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// The record does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request is inconsistent with the stored state.
    #[error("{0}")]
    Invalid(String),
    /// A site acted on a job that was not sent to it.
    #[error("{0}")]
    Forbidden(String),
}

/// What failed in the hub's storage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorFault {
    /// The database failed (I/O, connection, ...).
    #[error("database error: {0}")]
    Backend(String),
    /// A stored document could not be read back.
    #[error("corrupt stored record in {table}/{key}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The body of a transaction returned its own error: the transaction was rolled back and
    /// [`HubStore::write_or_rollback`](dyn HubStore::write_or_rollback) returns that error
    /// instead. Never leaves the store.
    #[error("transaction rolled back by its body")]
    RolledBack,
    /// The database was written by a newer Qiao.
    #[error(
        "database schema version {found} is newer than this build's {SCHEMA_VERSION}; upgrade qiao"
    )]
    TooNew {
        /// The stored version.
        found: u32,
    },
}

impl StoreError {
    /// [`CallerFault::Conflict`].
    pub fn conflict(what: impl Into<String>) -> Self {
        CallerFault::Conflict(what.into()).into()
    }
    /// [`CallerFault::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        CallerFault::NotFound(what.into()).into()
    }
    /// [`CallerFault::Invalid`].
    pub fn invalid(why: impl Into<String>) -> Self {
        CallerFault::Invalid(why.into()).into()
    }
    /// [`CallerFault::Forbidden`].
    pub fn forbidden(why: impl Into<String>) -> Self {
        CallerFault::Forbidden(why.into()).into()
    }
    /// [`OperatorFault::Backend`].
    pub fn backend(what: impl Into<String>) -> Self {
        OperatorFault::Backend(what.into()).into()
    }
    /// [`OperatorFault::Corrupt`].
    pub fn corrupt(table: Table, key: &str, reason: impl Into<String>) -> Self {
        OperatorFault::Corrupt {
            table: table.name(),
            key: key.to_owned(),
            reason: reason.into(),
        }
        .into()
    }
}

/// One transaction over the tables. Keys are compared bytewise.
pub trait Tx {
    /// The value stored under `key`.
    fn get(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Inserts or replaces. Fails in a read transaction.
    fn put(&mut self, table: Table, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Removes; returns whether the key was there. Fails in a read transaction.
    fn delete(&mut self, table: Table, key: &str) -> Result<bool, StoreError>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan(&mut self, table: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// The entry with the greatest key.
    fn last(&mut self, table: Table) -> Result<Option<(String, Vec<u8>)>, StoreError>;
}

/// The body of a transaction.
pub type TxFn<'a> = dyn FnMut(&mut dyn Tx) -> Result<(), StoreError> + 'a;

/// A transactional store of ordered JSON tables: the hub's storage backend.
///
/// Implementations: [`RedbStore`] and [`PgStore`]. Write transactions are serialized (one at a
/// time), committed durably before [`HubStore::write`] returns, and rolled back entirely if
/// the body returns an error. The domain operations are inherent methods on `dyn HubStore`.
pub trait HubStore: Send + Sync + fmt::Debug {
    /// `"redb"` or `"postgres"`.
    fn backend(&self) -> &'static str;
    /// Where the state is (a path or a redacted URL), for messages.
    fn location(&self) -> String;
    /// Runs `f` in a read-only snapshot.
    fn read(&self, f: &mut TxFn<'_>) -> Result<(), StoreError>;
    /// Runs `f` in a write transaction and commits it durably if `f` returns `Ok`.
    fn write(&self, f: &mut TxFn<'_>) -> Result<(), StoreError>;
    /// The schema version recorded in the database.
    fn schema_version(&self) -> Result<u32, StoreError>;
}

impl dyn HubStore + '_ {
    /// Runs `f` in one write transaction and returns its value. An error from `f` — a storage
    /// failure or the caller's own typed refusal — rolls the whole transaction back and is
    /// returned as it is; a failed commit comes back as `E::from(StoreError)`.
    pub fn write_or_rollback<R, E: From<StoreError>>(
        &self,
        mut f: impl FnMut(&mut dyn Tx) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut out: Option<Result<R, E>> = None;
        let committed = self.write(&mut |tx| {
            let r = f(tx);
            let failed = r.is_err();
            out = Some(r);
            if failed {
                Err(OperatorFault::RolledBack.into())
            } else {
                Ok(())
            }
        });
        match (committed, out) {
            (Ok(()), Some(r)) | (Err(_), Some(r @ Err(_))) => r,
            (Err(e), _) => Err(e.into()),
            (Ok(()), None) => Err(StoreError::backend("transaction produced no result").into()),
        }
    }
}

/// Zero-padded decimal, so that keys sort numerically.
pub(crate) fn seq_key(seq: u64) -> String {
    format!("{seq:020}")
}

/// Opens the hub's state: the PostgreSQL database at `database` (tables in `schema` if given),
/// or else the redb data directory `data`.
pub fn open_store(
    data: Option<&std::path::Path>,
    database: Option<&str>,
    schema: Option<&str>,
) -> Result<std::sync::Arc<dyn HubStore>, StoreError> {
    match (database, data) {
        (Some(url), _) => Ok(std::sync::Arc::new(PgStore::open_in_schema(url, schema)?)),
        (None, Some(dir)) => Ok(std::sync::Arc::new(RedbStore::open(dir)?)),
        (None, None) => Err(StoreError::invalid(
            "give --data DIR (embedded database) or --database postgres://...",
        )),
    }
}
