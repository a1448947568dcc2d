//! The PostgreSQL backend: one table per logical table, `(key text COLLATE "C" PRIMARY KEY,
//! value json NOT NULL)`, versioned by `schema_migrations`. Every statement is parameterized;
//! the only identifiers spliced into SQL are the fixed table names and a schema name checked
//! to be `[a-z_][a-z0-9_]*`.
//!
//! Extension tables (another crate's, [`Table::Extension`]) are created by the first write
//! transaction that touches one; until then a read finds it empty. Their names are checked to
//! be identifiers like the schema's before they reach SQL.
//!
//! Write transactions take a transaction-level advisory lock first, so they run one at a time
//! (like redb's single writer) and an audit append always sees the latest head. Reads run in
//! read-only repeatable-read snapshots.

use std::collections::HashSet;
use std::error::Error as _;
use std::fmt;
use std::str::FromStr;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use postgres::{Client, IsolationLevel, NoTls, Transaction};

use super::{HubStore, OperatorFault, StoreError, Table, Tx, TxFn, SCHEMA_VERSION};

/// Advisory lock key serializing the hub's write transactions ("qiaohub" in ASCII).
const WRITE_LOCK: i64 = 0x71_69_61_6f_68_75_62;
/// Most pooled connections.
const DEFAULT_POOL: usize = 8;

fn pg_error(e: &postgres::Error) -> StoreError {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    StoreError::backend(msg)
}

/// Hides the password of a `postgres://user:password@host/db` URL or a `password=` setting.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((auth, host)) = rest.rsplit_once('@') {
            let user = auth.split(':').next().unwrap_or("");
            return format!("{scheme}://{user}:***@{host}");
        }
        return url.to_owned();
    }
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn valid_schema(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

struct PoolState {
    idle: Vec<Client>,
    total: usize,
}

/// The hub's state in a PostgreSQL database.
pub struct PgStore {
    config: postgres::Config,
    schema: Option<String>,
    location: String,
    max: usize,
    state: Mutex<PoolState>,
    available: Condvar,
    /// Extension tables known to exist.
    extensions: Mutex<HashSet<&'static str>>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.location)
            .field("schema", &self.schema)
            .finish()
    }
}

struct Pooled<'a> {
    store: &'a PgStore,
    client: Option<Client>,
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let mut st = self.store.lock();
        match self.client.take() {
            Some(c) if !c.is_closed() => st.idle.push(c),
            _ => st.total = st.total.saturating_sub(1),
        }
        drop(st);
        self.store.available.notify_one();
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/db` or key=value settings),
    /// using the connection's default schema.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_in_schema(url, None)
    }

    /// Connects to `url` and keeps every table in `schema` (created if missing), e.g. to run
    /// several hubs or test runs in one database.
    pub fn open_in_schema(url: &str, schema: Option<&str>) -> Result<Self, StoreError> {
        if let Some(s) = schema {
            if !valid_schema(s) {
                return Err(StoreError::invalid(format!(
                    "schema name {s:?} must be [a-z_][a-z0-9_]* (at most 63 characters)"
                )));
            }
        }
        let mut config = postgres::Config::from_str(url)
            .map_err(|e| StoreError::invalid(format!("{}: {}", redact_url(url), pg_error(&e))))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let store = Self {
            config,
            schema: schema.map(str::to_owned),
            location: redact_url(url),
            max: DEFAULT_POOL,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                total: 0,
            }),
            available: Condvar::new(),
            extensions: Mutex::new(HashSet::new()),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Drops the schema this store was opened in, with everything in it (tests).
    pub fn drop_schema(&self) -> Result<(), StoreError> {
        let Some(schema) = &self.schema else {
            return Err(StoreError::invalid("no schema to drop"));
        };
        let mut c = self.get()?;
        let client = c
            .client
            .as_mut()
            .ok_or_else(|| StoreError::backend("no client"))?;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .map_err(|e| pg_error(&e))
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn connect(&self) -> Result<Client, StoreError> {
        let mut client = self.config.connect(NoTls).map_err(|e| {
            StoreError::backend(format!("connecting to {}: {}", self.location, pg_error(&e)))
        })?;
        if let Some(schema) = &self.schema {
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"
                ))
                .map_err(|e| pg_error(&e))?;
        }
        Ok(client)
    }

    fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let mut st = self.lock();
        loop {
            if let Some(c) = st.idle.pop() {
                return Ok(Pooled {
                    store: self,
                    client: Some(c),
                });
            }
            if st.total < self.max {
                st.total += 1;
                drop(st);
                return match self.connect() {
                    Ok(c) => Ok(Pooled {
                        store: self,
                        client: Some(c),
                    }),
                    Err(e) => {
                        self.lock().total -= 1;
                        self.available.notify_one();
                        Err(e)
                    }
                };
            }
            st = self.available.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut pooled = self.get()?;
        let client = pooled
            .client
            .as_mut()
            .ok_or_else(|| StoreError::backend("no client"))?;
        let mut tx = client.transaction().map_err(|e| pg_error(&e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
            .map_err(|e| pg_error(&e))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .map_err(|e| pg_error(&e))?;
        let row = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .map_err(|e| pg_error(&e))?;
        let found: i32 = row.try_get(0).map_err(|e| pg_error(&e))?;
        let found = u32::try_from(found).unwrap_or(0);
        if found > SCHEMA_VERSION {
            return Err(OperatorFault::TooNew { found }.into());
        }
        for version in found + 1..=SCHEMA_VERSION {
            for step in migration(version) {
                tx.batch_execute(&step).map_err(|e| pg_error(&e))?;
            }
            let v = i32::try_from(version).unwrap_or(i32::MAX);
            tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&v])
                .map_err(|e| pg_error(&e))?;
        }
        tx.commit().map_err(|e| pg_error(&e))
    }
}

/// The statements of migration `version`.
fn migration(version: u32) -> Vec<String> {
    // Version 1 created the hub's tables. Version 2 added the portal's, which the portal now
    // declares itself (extension tables, created on first write).
    match version {
        1 => Table::ALL.iter().map(|t| create_table(t.name())).collect(),
        _ => Vec::new(),
    }
}

fn create_table(name: &str) -> String {
    format!("CREATE TABLE IF NOT EXISTS {name} (key text COLLATE \"C\" PRIMARY KEY, value json NOT NULL)")
}

struct PgTx<'a, 'b> {
    tx: &'b mut Transaction<'a>,
    read_only: bool,
    extensions: &'b Mutex<HashSet<&'static str>>,
}

impl PgTx<'_, '_> {
    /// Whether `table` exists; in a write transaction an extension table that does not is
    /// created (and exists from this transaction's commit on).
    fn ready(&mut self, table: Table) -> Result<bool, StoreError> {
        let Table::Extension(name) = table else {
            return Ok(true);
        };
        let known = |e: &Mutex<HashSet<&'static str>>| {
            e.lock().unwrap_or_else(|p| p.into_inner()).contains(name)
        };
        if known(self.extensions) {
            return Ok(true);
        }
        if !valid_schema(name) {
            return Err(StoreError::invalid(format!(
                "table name {name:?} must be [a-z_][a-z0-9_]*"
            )));
        }
        let row = self
            .tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
            .map_err(|e| pg_error(&e))?;
        let exists: bool = row.try_get(0).map_err(|e| pg_error(&e))?;
        if exists {
            self.extensions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name);
            return Ok(true);
        }
        if self.read_only {
            return Ok(false);
        }
        self.tx
            .batch_execute(&create_table(name))
            .map_err(|e| pg_error(&e))?;
        Ok(true)
    }
}

impl Tx for PgTx<'_, '_> {
    fn get(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.ready(table)? {
            return Ok(None);
        }
        let row = self
            .tx
            .query_opt(
                &format!("SELECT value::text FROM {} WHERE key = $1", table.name()),
                &[&key],
            )
            .map_err(|e| pg_error(&e))?;
        row.map(|r| r.try_get::<_, String>(0).map(String::into_bytes))
            .transpose()
            .map_err(|e| pg_error(&e))
    }

    fn put(&mut self, table: Table, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::backend("write in a read transaction"));
        }
        self.ready(table)?;
        let text = std::str::from_utf8(value).map_err(|e| StoreError::backend(e.to_string()))?;
        self.tx
            .execute(
                &format!(
                    "INSERT INTO {} (key, value) VALUES ($1, ($2::text)::json)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    table.name()
                ),
                &[&key, &text],
            )
            .map_err(|e| pg_error(&e))?;
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &str) -> Result<bool, StoreError> {
        if self.read_only {
            return Err(StoreError::backend("delete in a read transaction"));
        }
        if !self.ready(table)? {
            return Ok(false);
        }
        let n = self
            .tx
            .execute(
                &format!("DELETE FROM {} WHERE key = $1", table.name()),
                &[&key],
            )
            .map_err(|e| pg_error(&e))?;
        Ok(n > 0)
    }

    fn scan(&mut self, table: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if !self.ready(table)? {
            return Ok(Vec::new());
        }
        let rows = match prefix_end(prefix) {
            Some(end) => self.tx.query(
                &format!(
                    "SELECT key, value::text FROM {} WHERE key >= $1 AND key < $2 ORDER BY key",
                    table.name()
                ),
                &[&prefix, &end],
            ),
            None => self.tx.query(
                &format!(
                    "SELECT key, value::text FROM {} WHERE key >= $1 ORDER BY key",
                    table.name()
                ),
                &[&prefix],
            ),
        }
        .map_err(|e| pg_error(&e))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let (k, v) = key_value(&r)?;
            if k.starts_with(prefix) {
                out.push((k, v));
            }
        }
        Ok(out)
    }

    fn last(&mut self, table: Table) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        if !self.ready(table)? {
            return Ok(None);
        }
        let row = self
            .tx
            .query_opt(
                &format!(
                    "SELECT key, value::text FROM {} ORDER BY key DESC LIMIT 1",
                    table.name()
                ),
                &[],
            )
            .map_err(|e| pg_error(&e))?;
        row.as_ref().map(key_value).transpose()
    }
}

fn key_value(r: &postgres::Row) -> Result<(String, Vec<u8>), StoreError> {
    let k: String = r.try_get(0).map_err(|e| pg_error(&e))?;
    let v: String = r.try_get(1).map_err(|e| pg_error(&e))?;
    Ok((k, v.into_bytes()))
}

/// The smallest string greater than every string starting with `prefix` (ASCII keys), or
/// `None` for the empty prefix.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut b = prefix.as_bytes().to_vec();
    while let Some(last) = b.pop() {
        if last < 0x7f {
            b.push(last + 1);
            return String::from_utf8(b).ok();
        }
    }
    None
}

impl HubStore for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn location(&self) -> String {
        match &self.schema {
            Some(s) => format!("{} (schema {s})", self.location),
            None => self.location.clone(),
        }
    }

    fn read(&self, f: &mut TxFn<'_>) -> Result<(), StoreError> {
        let mut pooled = self.get()?;
        let client = pooled
            .client
            .as_mut()
            .ok_or_else(|| StoreError::backend("no client"))?;
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(|e| pg_error(&e))?;
        f(&mut PgTx {
            tx: &mut tx,
            read_only: true,
            extensions: &self.extensions,
        })?;
        tx.commit().map_err(|e| pg_error(&e))
    }

    fn write(&self, f: &mut TxFn<'_>) -> Result<(), StoreError> {
        let mut pooled = self.get()?;
        let client = pooled
            .client
            .as_mut()
            .ok_or_else(|| StoreError::backend("no client"))?;
        let mut tx = client.transaction().map_err(|e| pg_error(&e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
            .map_err(|e| pg_error(&e))?;
        f(&mut PgTx {
            tx: &mut tx,
            read_only: false,
            extensions: &self.extensions,
        })?;
        tx.commit().map_err(|e| pg_error(&e))
    }

    fn schema_version(&self) -> Result<u32, StoreError> {
        let mut pooled = self.get()?;
        let client = pooled
            .client
            .as_mut()
            .ok_or_else(|| StoreError::backend("no client"))?;
        let row = client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .map_err(|e| pg_error(&e))?;
        let v: i32 = row.try_get(0).map_err(|e| pg_error(&e))?;
        Ok(u32::try_from(v).unwrap_or(0))
    }
}
