//! The site's audit log: `DIR/audit.log`, a hash-chained, append-only log (qiao-audit).
//!
//! Every process (the `serve` loop, the steward's and investigators' CLI) opens the log for
//! each append and closes it again, so they take turns on the log's lock instead of one
//! holding it for as long as it runs. A process verifies the whole chain at its first append
//! and, at each later one, only the lines written since (by itself or another process):
//! [`qiao_audit::AuditLog::open_after`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use qiao_audit::{Actor, AuditLog, Entry, EntryDraft, FileLogError, Verified, VerifyReport};

use crate::data::SiteDir;

/// How long an append waits for another process holding the log.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// What this process last verified of each log, by path.
static VERIFIED: Mutex<BTreeMap<PathBuf, Verified>> = Mutex::new(BTreeMap::new());

fn verified(path: &Path) -> Option<Verified> {
    VERIFIED.lock().ok()?.get(path).cloned()
}

fn remember(path: &Path, v: Option<Verified>) {
    if let Ok(mut m) = VERIFIED.lock() {
        match v {
            Some(v) => m.insert(path.to_owned(), v),
            None => m.remove(path),
        };
    }
}

/// Appends one entry, waiting (up to 10 s) while another process holds the log.
pub fn append(dir: &SiteDir, draft: EntryDraft) -> anyhow::Result<Entry> {
    let path = dir.audit_path();
    let started = Instant::now();
    loop {
        match AuditLog::open_after(&path, verified(&path).as_ref()) {
            Ok((log, _)) => {
                let appended = log.append(draft);
                remember(&path, appended.is_ok().then(|| log.verified()).flatten());
                return appended.with_context(|| format!("appending to {}", path.display()));
            }
            Err(FileLogError::Locked { .. }) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                remember(&path, None);
                return Err(e).with_context(|| format!("opening {}", path.display()));
            }
        }
    }
}

/// A user actor, or the system if the name is unusable.
pub fn user(name: &str) -> Actor {
    if name.is_empty() {
        Actor::System
    } else {
        Actor::User(name.to_owned())
    }
}

/// Reads and verifies the whole log.
pub fn read(dir: &SiteDir) -> anyhow::Result<(Vec<Entry>, VerifyReport)> {
    let path = dir.audit_path();
    if !path.exists() {
        return Ok((
            Vec::new(),
            VerifyReport {
                entries: 0,
                head: None,
                torn_tail_bytes: 0,
            },
        ));
    }
    qiao_audit::read_entries(&path).with_context(|| format!("verifying {}", path.display()))
}
