//! JSON records in the store's tables: the get, put, insert-if-absent and scan every
//! operation is written with, and the digest definitions are kept under.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{StoreError, Table, Tx};

/// Reads and decodes a JSON record inside a transaction.
pub fn get_json<T: DeserializeOwned>(
    tx: &mut dyn Tx,
    table: Table,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match tx.get(table, key)? {
        None => Ok(None),
        Some(bytes) => decode(table, key, &bytes).map(Some),
    }
}

pub(super) fn decode<T: DeserializeOwned>(
    table: Table,
    key: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::corrupt(table, key, e.to_string()))
}

/// Encodes and stores a JSON record inside a transaction.
pub fn put_json<T: Serialize>(
    tx: &mut dyn Tx,
    table: Table,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(value).map_err(|e| StoreError::backend(e.to_string()))?;
    tx.put(table, key, &bytes)
}

/// Stores a new record: `Conflict("WHAT KEY")` if `key` is taken (every create operation).
pub fn insert_new_json<T: Serialize>(
    tx: &mut dyn Tx,
    table: Table,
    what: &str,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    if tx.get(table, key)?.is_some() {
        return Err(StoreError::conflict(format!("{what} {key}")));
    }
    put_json(tx, table, key, value)
}

/// Decodes every record whose key starts with `prefix`, in key order.
pub fn scan_json<T: DeserializeOwned>(
    tx: &mut dyn Tx,
    table: Table,
    prefix: &str,
) -> Result<Vec<T>, StoreError> {
    tx.scan(table, prefix)?
        .into_iter()
        .map(|(k, v)| decode(table, &k, &v))
        .collect()
}

/// SHA-256 of a JSON value's compact text, in hex.
pub fn json_sha256(value: &serde_json::Value) -> String {
    let digest = Sha256::digest(value.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
