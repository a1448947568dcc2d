//! Audit heads exchanged with the hub ([`qiao_protocol::audit_head`]).
//!
//! - With each poll the site signs the head of its own audit log ([`OwnHead`]); the hub keeps
//!   it. Before signing a new head, the site checks that its log still contains the head it
//!   signed last, so a log truncated or rewritten while `serve` runs is never signed again.
//! - Each poll's answer carries the hub's signed head; the site checks the signature against
//!   the pinned hub key and keeps every new one in `DIR/hub_audit_heads.jsonl` (one JSON head
//!   a line, 0600, appended and synced). A head that goes backwards is not kept: it is audited
//!   once (`hub.audit_head_conflict`) as evidence that the hub's log was truncated or rewritten.
//!
//! `qiao site audit hub-heads` prints the kept hub heads, for `qiao hub audit verify --heads`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::Context;
use ed25519_dalek::VerifyingKey;
use qiao_audit::{Actor, Checkpoint, EntryDraft, EntryHash};
use qiao_protocol::{ChainOwner, SignedHead, Signer, SiteId};

use crate::audit;
use crate::data::SiteDir;

/// The file of kept hub heads.
pub fn hub_heads_path(dir: &SiteDir) -> PathBuf {
    dir.root().join("hub_audit_heads.jsonl")
}

/// A verified head as a checkpoint of the audit chain.
pub fn checkpoint(head: &SignedHead) -> Checkpoint {
    Checkpoint {
        seq: head.seq,
        hash: EntryHash(head.hash.0),
    }
}

/// The site's own head, signed for each poll.
#[derive(Debug, Default)]
pub struct OwnHead {
    last: Option<Checkpoint>,
    broken: bool,
}

impl OwnHead {
    /// The signed head of the site's log now; `None` for an empty log, or once the log no
    /// longer contains the head signed before (logged as an error; the hub keeps the last good
    /// head as evidence).
    pub fn sign(
        &mut self,
        dir: &SiteDir,
        signer: &Signer,
        me: &SiteId,
        now: i64,
    ) -> Option<SignedHead> {
        if self.broken {
            return None;
        }
        let path = dir.audit_path();
        let head = match qiao_audit::last_head(&path) {
            Ok(Some(h)) => h,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!("reading the audit log's head: {e}");
                return None;
            }
        };
        if self.last != Some(head) {
            if let Err(e) = qiao_audit::verify_with_checkpoint(&path, self.last) {
                tracing::error!("the audit log no longer verifies against the head signed before; no more heads are signed: {e}");
                self.broken = true;
                return None;
            }
            self.last = Some(head);
        }
        Some(signer.sign_audit_head(ChainOwner::Site(me.clone()), head.seq, head.hash.0, now))
    }
}

/// The hub heads kept, oldest first (a torn last line is skipped).
pub fn read_hub_heads(dir: &SiteDir) -> anyhow::Result<Vec<SignedHead>> {
    let path = hub_heads_path(dir);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut heads = Vec::new();
    let mut lines = BufReader::new(file).split(b'\n').peekable();
    let mut n = 0;
    while let Some(line) = lines.next() {
        n += 1;
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        match serde_json::from_slice::<SignedHead>(&line) {
            Ok(h) => heads.push(h),
            Err(e) if lines.peek().is_none() || line.last() != Some(&b'}') => {
                // A line torn by a crash during an append (ended by the next append).
                tracing::warn!("{} line {n}: skipping a torn line: {e}", path.display());
            }
            Err(e) => anyhow::bail!("{} line {n}: not a signed head: {e}", path.display()),
        }
    }
    Ok(heads)
}

/// Keeps the hub's signed heads as they arrive.
#[derive(Debug)]
pub struct HubHeads {
    hub_key: VerifyingKey,
    latest: Option<SignedHead>,
    last_conflict: Option<(u64, [u8; 32])>,
}

impl HubHeads {
    /// Loads the newest kept head.
    pub fn load(dir: &SiteDir, hub_key: VerifyingKey) -> anyhow::Result<Self> {
        Ok(Self {
            hub_key,
            latest: read_hub_heads(dir)?.pop(),
            last_conflict: None,
        })
    }

    /// Checks and keeps the head from a poll's answer (`header`, the raw header value).
    pub fn keep(&mut self, dir: &SiteDir, header: &str, now: i64) -> anyhow::Result<()> {
        let head = SignedHead::from_json(header)?;
        head.verify(&ChainOwner::Hub, &self.hub_key)
            .context("the hub's audit head")?;
        if let Some(l) = &self.latest {
            if l.seq == head.seq && l.hash == head.hash {
                return Ok(());
            }
            if head.seq <= l.seq {
                let id = (head.seq, head.hash.0);
                if self.last_conflict != Some(id) {
                    self.last_conflict = Some(id);
                    let what = format!(
                        "the hub signed head #{} ({}) after head #{} ({}): its audit log was truncated or rewritten",
                        head.seq, head.hash, l.seq, l.hash
                    );
                    tracing::error!("{what}");
                    audit::append(
                        dir,
                        EntryDraft::new(now, Actor::Hub, "hub.audit_head_conflict").decision(what),
                    )?;
                }
                return Ok(());
            }
        }
        let path = hub_heads_path(dir);
        let mut f = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // A line torn by a crash is ended first, so it stays one (skipped) line.
        let torn = {
            use std::os::unix::fs::FileExt;
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let mut last = [b'\n'];
            len > 0 && f.read_at(&mut last, len - 1).is_ok() && last[0] != b'\n'
        };
        let mut line = if torn { vec![b'\n'] } else { Vec::new() };
        line.extend_from_slice(head.to_json().as_bytes());
        line.push(b'\n');
        f.write_all(&line)
            .and_then(|()| f.sync_data())
            .with_context(|| format!("writing {}", path.display()))?;
        self.latest = Some(head);
        Ok(())
    }
}

/// Verifies the site's audit log, and that it contains every one of `heads` — the site's
/// signed heads as the hub kept them (`qiao hub audit site-heads`). Each head must carry this
/// site's valid signature. `Err` names a forged head, a broken chain, or the sequence numbers
/// missing or altered.
pub fn verify_against(
    dir: &SiteDir,
    heads: &[SignedHead],
) -> anyhow::Result<(qiao_audit::VerifyReport, qiao_audit::HeadsReport)> {
    let config = dir.config()?;
    let key = qiao_protocol::keys::load_signing_key(&dir.key_path())?.verifying_key();
    let owner = ChainOwner::Site(config.site_id.clone());
    let mut checkpoints = Vec::with_capacity(heads.len());
    for (i, h) in heads.iter().enumerate() {
        h.verify(&owner, &key)
            .with_context(|| format!("head {} of {}", i + 1, heads.len()))?;
        checkpoints.push(checkpoint(h));
    }
    let (entries, report) = audit::read(dir)?;
    let checked = qiao_audit::check_heads(&entries, &checkpoints).map_err(|e| {
        anyhow::anyhow!(
            "{}: the log does not contain the signed heads on record:\n{e}",
            dir.audit_path().display()
        )
    })?;
    Ok((report, checked))
}
