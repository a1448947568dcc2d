//! The nonces of the hub messages this site accepted, kept on disk (`DIR/replay.json`), so that
//! a message replayed after `serve` restarts is refused just as it would have been before.
//!
//! In memory, `qiao_protocol::ReplayGuard` refuses a nonce seen twice by one process. A message
//! is accepted only within the clock-skew window (±`max_skew_secs` around its timestamp), so a
//! nonce has to be remembered only until its timestamp is older than that window; the file
//! keeps exactly those, and is replaced atomically (temporary file, rename) before the message
//! is acted on. It holds random nonces and timestamps only.
//!
//! The file is not fsynced: a restart of `serve` (or a crash of the process) keeps it, and only
//! a power loss within seconds of a message could forget that message's nonce. What a replay
//! could then achieve is harmless anyway (a journaled job's stored result is sent again; a job
//! is never computed twice), so the two fsyncs (≈ 8 ms here) stay off every job's path.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use qiao_protocol::Nonce;
use serde::{Deserialize, Serialize};

use crate::data::{read_json, SiteDir};

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
        self.save()?;
        Ok(Recorded::New)
    }

    /// Replaces the file atomically (without fsync, see the module documentation).
    fn save(&self) -> anyhow::Result<()> {
        let mut bytes = serde_json::to_vec(&self.seen).context("serializing the nonces")?;
        bytes.push(b'\n');
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("replacing {}", self.path.display()))
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
