//! The embedded backend: one redb file (`hub.redb`) in the hub's data directory.
//!
//! redb is a pure-Rust, copy-on-write B-tree store with ACID transactions; a commit is durable
//! (fsynced) when it returns, and a process killed at any moment reopens at the last commit.
//! One process holds the file at a time.
//!
//! The hub's tables are created when the store opens; an extension table ([`Table::Extension`])
//! by the first write transaction that opens it, and until then a read finds it empty.

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};

use super::{HubStore, OperatorFault, StoreError, Table, Tx, TxFn, SCHEMA_VERSION};

const SCHEMA_KEY: &str = "schema_version";
const FILE_NAME: &str = "hub.redb";

fn def(table: Table) -> TableDefinition<'static, &'static str, &'static [u8]> {
    TableDefinition::new(table.name())
}

fn backend<E: fmt::Display>(e: E) -> StoreError {
    StoreError::backend(e.to_string())
}

/// The hub's state in a redb file.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish()
    }
}

impl RedbStore {
    /// Opens (creating if needed) the store in data directory `dir` (mode 0700, file 0600)
    /// and brings its schema up to date.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|e| backend(format!("{}: {e}", dir.display())))?;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        let path = dir.join(FILE_NAME);
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::backend(format!(
                "{}: the database is open in another process (is `qiao hub serve` running on this data dir?)",
                path.display()
            )),
            e => backend(format!("{}: {e}", path.display())),
        })?;
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
        let store = Self { db, path };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let found = {
            for t in Table::ALL {
                txn.open_table(def(t)).map_err(backend)?;
            }
            let mut meta = txn.open_table(def(Table::Meta)).map_err(backend)?;
            let found = match meta.get(SCHEMA_KEY).map_err(backend)? {
                Some(v) => serde_json::from_slice::<u32>(v.value())
                    .map_err(|e| StoreError::corrupt(Table::Meta, SCHEMA_KEY, e.to_string()))?,
                None => 0,
            };
            if found > SCHEMA_VERSION {
                return Err(OperatorFault::TooNew { found }.into());
            }
            // Every version so far only adds tables, created above (version 2's, the portal's,
            // are now its own extension tables, created on first write); later
            // versions that change records migrate here, one step at a time, inside this
            // transaction.
            if found < SCHEMA_VERSION {
                let v = SCHEMA_VERSION.to_string();
                meta.insert(SCHEMA_KEY, v.as_bytes()).map_err(backend)?;
            }
            found
        };
        if found < SCHEMA_VERSION {
            txn.commit().map_err(backend)?;
        } else {
            txn.abort().map_err(backend)?;
        }
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

struct WriteTx<'a>(&'a WriteTransaction);
struct ReadTx<'a>(&'a ReadTransaction);

fn scan_table<T: ReadableTable<&'static str, &'static [u8]>>(
    t: &T,
    prefix: &str,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let mut out = Vec::new();
    for item in t.range(prefix..).map_err(backend)? {
        let (k, v) = item.map_err(backend)?;
        let key = k.value();
        if !key.starts_with(prefix) {
            break;
        }
        out.push((key.to_owned(), v.value().to_vec()));
    }
    Ok(out)
}

fn last_of<T: ReadableTable<&'static str, &'static [u8]>>(
    t: &T,
) -> Result<Option<(String, Vec<u8>)>, StoreError> {
    Ok(t.last()
        .map_err(backend)?
        .map(|(k, v)| (k.value().to_owned(), v.value().to_vec())))
}

impl Tx for WriteTx<'_> {
    fn get(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.0.open_table(def(table)).map_err(backend)?;
        let v = t.get(key).map_err(backend)?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    fn put(&mut self, table: Table, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut t = self.0.open_table(def(table)).map_err(backend)?;
        t.insert(key, value).map_err(backend)?;
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &str) -> Result<bool, StoreError> {
        let mut t = self.0.open_table(def(table)).map_err(backend)?;
        let removed = t.remove(key).map_err(backend)?.is_some();
        Ok(removed)
    }

    fn scan(&mut self, table: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let t = self.0.open_table(def(table)).map_err(backend)?;
        scan_table(&t, prefix)
    }

    fn last(&mut self, table: Table) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let t = self.0.open_table(def(table)).map_err(backend)?;
        last_of(&t)
    }
}

impl ReadTx<'_> {
    /// The table, or `None` if it was never created (an extension table never written).
    fn table(
        &self,
        table: Table,
    ) -> Result<Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>, StoreError> {
        match self.0.open_table(def(table)) {
            Ok(t) => Ok(Some(t)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }
}

impl Tx for ReadTx<'_> {
    fn get(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(t) = self.table(table)? else {
            return Ok(None);
        };
        let v = t.get(key).map_err(backend)?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    fn put(&mut self, table: Table, _key: &str, _value: &[u8]) -> Result<(), StoreError> {
        Err(StoreError::backend(format!(
            "write to {} in a read transaction",
            table.name()
        )))
    }

    fn delete(&mut self, table: Table, _key: &str) -> Result<bool, StoreError> {
        Err(StoreError::backend(format!(
            "delete from {} in a read transaction",
            table.name()
        )))
    }

    fn scan(&mut self, table: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        match self.table(table)? {
            Some(t) => scan_table(&t, prefix),
            None => Ok(Vec::new()),
        }
    }

    fn last(&mut self, table: Table) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        match self.table(table)? {
            Some(t) => last_of(&t),
            None => Ok(None),
        }
    }
}

impl HubStore for RedbStore {
    fn backend(&self) -> &'static str {
        "redb"
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn read(&self, f: &mut TxFn<'_>) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        f(&mut ReadTx(&txn))
    }

    fn write(&self, f: &mut TxFn<'_>) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        match f(&mut WriteTx(&txn)) {
            Ok(()) => txn.commit().map_err(backend),
            Err(e) => {
                let _ = txn.abort();
                Err(e)
            }
        }
    }

    fn schema_version(&self) -> Result<u32, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let t = txn.open_table(def(Table::Meta)).map_err(backend)?;
        let v = t.get(SCHEMA_KEY).map_err(backend)?;
        match v {
            None => Ok(0),
            Some(v) => serde_json::from_slice(v.value())
                .map_err(|e| StoreError::corrupt(Table::Meta, SCHEMA_KEY, e.to_string())),
        }
    }
}
