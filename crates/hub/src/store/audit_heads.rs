//! Audit chain heads: the hub's own head (signed for the sites with every poll), and the signed
//! heads each site sends with its polls, kept durably as evidence of the site's log
//! ([`qiao_protocol::audit_head`]).
//!
//! Each site's heads are kept in the order received: `latest/SITE` is the newest, and
//! `history/SITE/SEQ` one per distinct sequence number, so a site's log can later be checked
//! against every head it ever signed. A head that goes backwards — a lower sequence number, or
//! the same one with another hash — is never kept: it means the site's log was truncated or
//! rewritten. It is audited once (`site.audit_head_conflict`) and the earlier head stays.

use qiao_audit::{Actor, Checkpoint, Entry, EntryDraft, EntryHash};
use qiao_protocol::{ChainOwner, HeadError, SignedHead, SiteId};

use super::ops::append_audit;
use super::records::{get_json, put_json, scan_json};
use super::{seq_key, HubStore, StoreError, Table};
use crate::model::Site;

/// The table of kept site heads.
const HEADS: Table = Table::Extension("site_audit_heads");

/// What became of a site's head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadKept {
    /// The same as the newest kept head: nothing written.
    Unchanged,
    /// Newer than the newest kept head: kept.
    Kept,
    /// Older than, or different from, the newest kept head: refused (and audited once).
    Conflict {
        /// The newest kept head's sequence number.
        kept_seq: u64,
    },
    /// Not validly signed by the site's registered key: refused.
    Invalid(HeadError),
}

impl dyn HubStore + '_ {
    /// The head of the hub's own audit chain.
    pub fn audit_head(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.read_with(|tx| match tx.last(Table::Audit)? {
            None => Ok(None),
            Some((k, v)) => {
                let e: Entry = serde_json::from_slice(&v)
                    .map_err(|err| StoreError::corrupt(Table::Audit, &k, err.to_string()))?;
                Ok(Some(Checkpoint {
                    seq: e.seq,
                    hash: e.hash,
                }))
            }
        })
    }

    /// Keeps `head`, sent by `site` with a poll, if it is validly signed by the site's key and
    /// newer than the newest head kept for it.
    pub fn keep_site_head(
        &self,
        site: &SiteId,
        head: &SignedHead,
        now: i64,
    ) -> Result<HeadKept, StoreError> {
        let latest_key = format!("latest/{site}");
        let (record, latest): (Option<Site>, Option<SignedHead>) = self.read_with(|tx| {
            Ok((
                get_json(tx, Table::Sites, site.as_str())?,
                get_json(tx, HEADS, &latest_key)?,
            ))
        })?;
        let Some(key) = record.and_then(|s| s.public_key) else {
            return Ok(HeadKept::Invalid(HeadError::WrongOwner {
                expected: ChainOwner::Site(site.clone()),
                found: head.owner.clone(),
            }));
        };
        if let Err(e) = head.verify(&ChainOwner::Site(site.clone()), key.verifying_key()) {
            return Ok(HeadKept::Invalid(e));
        }
        match &latest {
            Some(l) if l.seq == head.seq && l.hash == head.hash => return Ok(HeadKept::Unchanged),
            Some(l) if head.seq <= l.seq => {
                let kept_seq = l.seq;
                let conflict_key = format!("conflict/{site}");
                let head = head.clone();
                self.write_with(|tx| {
                    let last: Option<SignedHead> = get_json(tx, HEADS, &conflict_key)?;
                    if last.is_some_and(|c| c.seq == head.seq && c.hash == head.hash) {
                        return Ok(());
                    }
                    put_json(tx, HEADS, &conflict_key, &head)?;
                    let what = if head.seq < kept_seq {
                        format!(
                            "site signed head #{} after head #{kept_seq}: entries #{}..#{kept_seq} of its log were removed",
                            head.seq,
                            head.seq + 1
                        )
                    } else {
                        format!(
                            "site signed head #{kept_seq} with hash {} after hash {}: its log was rewritten",
                            head.hash,
                            latest.as_ref().map(|l| l.hash.to_string()).unwrap_or_default()
                        )
                    };
                    append_audit(
                        tx,
                        EntryDraft::new(now, Actor::Site(site.to_string()), "site.audit_head_conflict")
                            .decision(what),
                    )?;
                    Ok(())
                })?;
                return Ok(HeadKept::Conflict { kept_seq });
            }
            _ => {}
        }
        let head = head.clone();
        self.write_with(|tx| {
            put_json(
                tx,
                HEADS,
                &format!("history/{site}/{}", seq_key(head.seq)),
                &head,
            )?;
            put_json(tx, HEADS, &latest_key, &head)
        })?;
        Ok(HeadKept::Kept)
    }

    /// Every head kept for `site`, oldest first.
    pub fn site_heads(&self, site: &SiteId) -> Result<Vec<SignedHead>, StoreError> {
        self.read_with(|tx| scan_json(tx, HEADS, &format!("history/{site}/")))
    }
}

/// A verified head as a checkpoint of the audit chain.
pub fn checkpoint(head: &SignedHead) -> Checkpoint {
    Checkpoint {
        seq: head.seq,
        hash: EntryHash(head.hash.0),
    }
}
