//! Job records with their definitions stored once: a definition is kept under its SHA-256
//! (the `definitions` table) and a job record refers to it, so submitting one definition many
//! times stores one copy of it, however large (as a site does, `qiao_site::definitions`).
//!
//! A record written before this (its definition inline, no digest) reads as it is.

use qiao_protocol::{Job, SiteId};
use serde::{Deserialize, Serialize};

use super::records::{get_json, json_sha256, put_json};
use super::{StoreError, Table, Tx};
use crate::model::{Delivery, JobRecord};

/// Definitions by the hex SHA-256 of their JSON text.
const DEFINITIONS: Table = Table::Extension("definitions");

/// A job record as stored: the job without its definition, and the definition's digest.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    job: Job,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    definition_sha256: Option<String>,
    sites: Vec<SiteId>,
    seq: u64,
    deliveries: Vec<Delivery>,
}

/// Stores `record` (its definition once, by digest), replacing any record of that job.
pub fn put_job(tx: &mut dyn Tx, record: &JobRecord) -> Result<(), StoreError> {
    let digest = json_sha256(&record.job.definition);
    if tx.get(DEFINITIONS, &digest)?.is_none() {
        put_json(tx, DEFINITIONS, &digest, &record.job.definition)?;
    }
    let mut job = record.job.clone();
    job.definition = serde_json::Value::Null;
    let stored = Stored {
        job,
        definition_sha256: Some(digest),
        sites: record.sites.clone(),
        seq: record.seq,
        deliveries: record.deliveries.clone(),
    };
    put_json(tx, Table::Jobs, &record.job.job_id.to_string(), &stored)
}

/// Stores a new record: `Conflict("job ID")` if the job exists.
pub fn insert_new_job(tx: &mut dyn Tx, record: &JobRecord) -> Result<(), StoreError> {
    let id = record.job.job_id.to_string();
    if tx.get(Table::Jobs, &id)?.is_some() {
        return Err(StoreError::conflict(format!("job {id}")));
    }
    put_job(tx, record)
}

/// The record of job `id`, with its definition.
pub fn get_job(tx: &mut dyn Tx, id: &str) -> Result<Option<JobRecord>, StoreError> {
    match get_json::<Stored>(tx, Table::Jobs, id)? {
        None => Ok(None),
        Some(s) => load(tx, id, s).map(Some),
    }
}

/// Every job record, in key order, with its definition.
pub fn scan_jobs(tx: &mut dyn Tx) -> Result<Vec<JobRecord>, StoreError> {
    let rows = tx.scan(Table::Jobs, "")?;
    let mut out = Vec::with_capacity(rows.len());
    for (k, v) in rows {
        let s: Stored = serde_json::from_slice(&v)
            .map_err(|e| StoreError::corrupt(Table::Jobs, &k, e.to_string()))?;
        out.push(load(tx, &k, s)?);
    }
    Ok(out)
}

fn load(tx: &mut dyn Tx, id: &str, s: Stored) -> Result<JobRecord, StoreError> {
    let mut job = s.job;
    if let Some(digest) = &s.definition_sha256 {
        job.definition = get_json(tx, DEFINITIONS, digest)?.ok_or_else(|| {
            StoreError::corrupt(Table::Jobs, id, format!("definition {digest} is missing"))
        })?;
        if &json_sha256(&job.definition) != digest {
            return Err(StoreError::corrupt(
                DEFINITIONS,
                digest,
                "the definition does not match its digest",
            ));
        }
    }
    Ok(JobRecord {
        job,
        sites: s.sites,
        seq: s.seq,
        deliveries: s.deliveries,
    })
}
