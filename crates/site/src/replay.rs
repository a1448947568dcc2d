//! The nonces of the hub messages this site accepted, kept on disk (`DIR/replay.json`), so that
//! a message replayed after `serve` restarts is refused just as it would have been before.
//!
//! In memory, `qiao_protocol::ReplayGuard` refuses a nonce seen twice by one process. A message
//! is accepted only within the clock-skew window (±`max_skew_secs` around its timestamp), so a
//! nonce has to be remembered only until its timestamp is older than that window; the file
//! keeps exactly those, and is rewritten atomically (and durably) before the message is acted
//! on. It holds random nonces and timestamps only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::bail;
use qiao_protocol::Nonce;
use serde::{Deserialize, Serialize};

use crate::data::{read_json, write_json, SiteDir};

/// Most nonces remembered; past it, messages are refused (fail closed) until old ones expire.
pub const MAX_REMEMBERED: usize = 100_000;

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeenFile {
    /// Nonce (hex) → the message's timestamp (unix seconds).
    nonces: BTreeMap<String, i64>,
}

/// The nonces accepted within the replay window, persisted.
pub struct SeenNonces {
    path: PathBuf,
    seen: SeenFile,
    max_skew_secs: i64,
}

/// What [`SeenNonces::record`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First time: recorded.
    New,
    /// Seen before (by this or an earlier `serve`): a replay.
    Replay,
}

impl SeenNonces {
    /// Loads `DIR/replay.json` (empty if there is none).
    pub fn load(dir: &SiteDir, max_skew_secs: i64) -> anyhow::Result<Self> {
        let path = dir.root().join("replay.json");
        let seen = read_json(&path)?.unwrap_or_default();
        Ok(Self {
            path,
            seen,
            max_skew_secs: max_skew_secs.max(0),
        })
    }

    /// Records the nonce of a message (already verified) stamped `timestamp`, saving the file
    /// before returning [`Recorded::New`]; [`Recorded::Replay`] if it was seen before.
    pub fn record(&mut self, nonce: &Nonce, timestamp: i64, now: i64) -> anyhow::Result<Recorded> {
        let key = nonce.to_string();
        if self.seen.nonces.contains_key(&key) {
            return Ok(Recorded::Replay);
        }
        // Older than the window (with a minute to spare): expired anyway, forget it.
        let oldest = now.saturating_sub(self.max_skew_secs).saturating_sub(60);
        self.seen.nonces.retain(|_, t| *t >= oldest);
        if self.seen.nonces.len() >= MAX_REMEMBERED {
            bail!(
                "{}: {MAX_REMEMBERED} unexpired nonces remembered; refusing more messages until they expire",
                self.path.display()
            );
        }
        self.seen.nonces.insert(key, timestamp);
        write_json(&self.path, &self.seen)?;
        Ok(Recorded::New)
    }

    /// Nonces remembered.
    pub fn len(&self) -> usize {
        self.seen.nonces.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.nonces.is_empty()
    }
}
