//! Chain verification, the storage trait, and the generic chain writer.

use std::convert::Infallible;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::entry::{Entry, EntryDraft, EntryHash};

/// A known point of the chain: entry `seq` has hash `hash`. Kept outside the log (by the hub
/// for each site, in a backup, printed on paper), it detects truncation and wholesale rewrites,
/// which no chain can detect from the inside.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The entry.
    pub seq: u64,
    /// Its hash.
    pub hash: EntryHash,
}

/// What a successful verification found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Number of entries.
    pub entries: u64,
    /// The last entry, if any.
    pub head: Option<Checkpoint>,
    /// Bytes after the last complete line of a file (a write torn by a crash); never part of the
    /// chain. Always 0 for stores other than files.
    pub torn_tail_bytes: u64,
}

/// Where and how the chain is broken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at entry {seq}{}: {reason}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
pub struct ChainError {
    /// The sequence number expected at the point of failure (entry `seq` is the first one that
    /// cannot be trusted).
    pub seq: u64,
    /// The line of the file, for file-backed logs.
    pub line: Option<u64>,
    /// What is wrong.
    pub reason: ChainErrorReason,
}

/// What is wrong with the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainErrorReason {
    /// Not a valid entry (bad JSON, unknown or missing field, bad hash syntax).
    Malformed(String),
    /// The entry's `seq` is not the next number: an entry was deleted, inserted or moved, or
    /// the `seq` field was edited.
    SeqMismatch {
        /// The `seq` found.
        found: u64,
    },
    /// `prev_hash` is not the previous entry's hash: an entry before it was replaced, or this
    /// one was edited.
    PrevHashMismatch,
    /// The stored hash is not the hash of the entry's fields: the entry was edited.
    HashMismatch,
    /// The chain ends before a checkpoint: entries were removed from the end.
    CheckpointMissing {
        /// Entries present.
        entries: u64,
    },
    /// The entry at a checkpoint has another hash: the chain was rewritten.
    CheckpointMismatch,
}

impl fmt::Display for ChainErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainErrorReason::Malformed(e) => write!(f, "not a valid audit entry: {e}"),
            ChainErrorReason::SeqMismatch { found } => write!(
                f,
                "found entry {found} instead: an entry was deleted, inserted or moved, or its seq edited"
            ),
            ChainErrorReason::PrevHashMismatch => f.write_str(
                "prev_hash does not match the previous entry's hash: the previous entry was replaced or this one edited",
            ),
            ChainErrorReason::HashMismatch => {
                f.write_str("hash does not match the entry's contents: the entry was edited")
            }
            ChainErrorReason::CheckpointMissing { entries } => write!(
                f,
                "the chain has only {entries} entries: entries were removed from its end"
            ),
            ChainErrorReason::CheckpointMismatch => {
                f.write_str("the entry differs from the checkpoint: the chain was rewritten")
            }
        }
    }
}

/// Incremental verifier: feed entries in order.
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    next_seq: u64,
    prev: EntryHash,
    checkpoint: Option<Checkpoint>,
    checkpoint_seen: bool,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new(None)
    }
}

impl ChainVerifier {
    /// A verifier for a chain from its start, optionally required to pass through `checkpoint`.
    pub fn new(checkpoint: Option<Checkpoint>) -> Self {
        Self {
            next_seq: 1,
            prev: EntryHash::GENESIS,
            checkpoint,
            checkpoint_seen: false,
        }
    }

    /// A verifier for the entries after `head`, a point of the chain already verified (by
    /// this process: an open or append of [`crate::AuditLog`] that it remembers).
    pub fn after(head: Option<Checkpoint>) -> Self {
        match head {
            Some(h) => Self {
                next_seq: h.seq.saturating_add(1),
                prev: h.hash,
                checkpoint: None,
                checkpoint_seen: false,
            },
            None => Self::new(None),
        }
    }

    /// The `seq` the next entry must have.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Checks the next entry.
    pub fn push(&mut self, entry: &Entry, line: Option<u64>) -> Result<(), ChainError> {
        let fail = |reason| ChainError {
            seq: self.next_seq,
            line,
            reason,
        };
        if entry.seq != self.next_seq {
            return Err(fail(ChainErrorReason::SeqMismatch { found: entry.seq }));
        }
        if entry.prev_hash != self.prev {
            return Err(fail(ChainErrorReason::PrevHashMismatch));
        }
        if entry.compute_hash() != entry.hash {
            return Err(fail(ChainErrorReason::HashMismatch));
        }
        if let Some(cp) = self.checkpoint {
            if cp.seq == entry.seq {
                if cp.hash != entry.hash {
                    return Err(fail(ChainErrorReason::CheckpointMismatch));
                }
                self.checkpoint_seen = true;
            }
        }
        self.prev = entry.hash;
        self.next_seq = self.next_seq.saturating_add(1);
        Ok(())
    }

    /// Reports a line that is not an entry at the current position.
    pub fn malformed(&self, line: Option<u64>, error: impl fmt::Display) -> ChainError {
        ChainError {
            seq: self.next_seq,
            line,
            reason: ChainErrorReason::Malformed(error.to_string()),
        }
    }

    /// Ends verification.
    pub fn finish(self, torn_tail_bytes: u64) -> Result<VerifyReport, ChainError> {
        let entries = self.next_seq - 1;
        if let Some(cp) = self.checkpoint {
            if !self.checkpoint_seen {
                return Err(ChainError {
                    seq: cp.seq,
                    line: None,
                    reason: if cp.seq == 0 {
                        ChainErrorReason::CheckpointMismatch
                    } else {
                        ChainErrorReason::CheckpointMissing { entries }
                    },
                });
            }
        }
        Ok(VerifyReport {
            entries,
            head: (entries > 0).then_some(Checkpoint {
                seq: entries,
                hash: self.prev,
            }),
            torn_tail_bytes,
        })
    }
}

/// Verifies a sequence of entries from the start of a chain.
pub fn verify_entries<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    checkpoint: Option<Checkpoint>,
) -> Result<VerifyReport, ChainError> {
    let mut v = ChainVerifier::new(checkpoint);
    for e in entries {
        v.push(e, None)?;
    }
    v.finish(0)
}

/// Where a chain's entries are kept: a file ([`crate::FileStore`]), memory ([`MemoryStore`]),
/// or later the hub's database. A store only keeps entries; [`Chain`] numbers, links, hashes
/// and verifies them.
pub trait AuditStore {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Stores one entry durably and atomically (all of it or nothing), after all earlier ones.
    /// Returns only once the entry is durable.
    fn append(&mut self, entry: &Entry) -> Result<(), Self::Error>;

    /// All entries, in order.
    fn entries(&self) -> Result<Vec<Entry>, Self::Error>;
}

/// An error from a [`Chain`].
#[derive(Debug, thiserror::Error)]
pub enum AuditError<E: std::error::Error + 'static> {
    /// The store failed.
    #[error("audit store: {0}")]
    Store(#[source] E),
    /// The stored chain is broken; nothing will be appended to it.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// An earlier append failed, so whether it was stored is unknown; reopen the log.
    #[error("an earlier audit append failed; reopen the log before appending again")]
    Poisoned,
    /// A draft with an empty action.
    #[error("an audit entry needs an action")]
    EmptyAction,
    /// A draft whose actor has an empty id.
    #[error("an audit entry's actor needs a non-empty id")]
    InvalidActor,
}

/// A hash chain over an [`AuditStore`]. It refuses to open a broken chain and, after a failed
/// append, refuses further appends until reopened.
#[derive(Debug)]
pub struct Chain<S> {
    store: S,
    head: Option<Checkpoint>,
    poisoned: bool,
}

impl<S: AuditStore> Chain<S> {
    /// Reads and verifies the store's entries (against `checkpoint`, if given).
    pub fn open(store: S, checkpoint: Option<Checkpoint>) -> Result<Self, AuditError<S::Error>> {
        let entries = store.entries().map_err(AuditError::Store)?;
        let report = verify_entries(&entries, checkpoint)?;
        Ok(Self::with_head(store, report.head))
    }

    /// A chain whose store has already been verified up to `head`.
    pub(crate) fn with_head(store: S, head: Option<Checkpoint>) -> Self {
        Self {
            store,
            head,
            poisoned: false,
        }
    }

    /// Appends an entry: next `seq`, linked to the head, hashed, stored durably.
    pub fn append(&mut self, draft: EntryDraft) -> Result<Entry, AuditError<S::Error>> {
        if self.poisoned {
            return Err(AuditError::Poisoned);
        }
        if draft.action.is_empty() {
            return Err(AuditError::EmptyAction);
        }
        if !draft.actor.is_valid() {
            return Err(AuditError::InvalidActor);
        }
        let (seq, prev) = match self.head {
            Some(h) => (h.seq + 1, h.hash),
            None => (1, EntryHash::GENESIS),
        };
        let entry = Entry::seal(draft, seq, prev);
        if let Err(e) = self.store.append(&entry) {
            self.poisoned = true;
            return Err(AuditError::Store(e));
        }
        self.head = Some(Checkpoint {
            seq,
            hash: entry.hash,
        });
        Ok(entry)
    }

    /// The last entry.
    pub fn head(&self) -> Option<Checkpoint> {
        self.head
    }

    /// Whether an append failed (nothing more is appended until reopened).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Re-reads and verifies the whole store.
    pub fn verify(&self) -> Result<VerifyReport, AuditError<S::Error>> {
        let entries = self.store.entries().map_err(AuditError::Store)?;
        Ok(verify_entries(&entries, None)?)
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives the store back.
    pub fn into_store(self) -> S {
        self.store
    }
}

/// Entries in memory (tests, or a hub before its database is wired).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryStore {
    /// The entries.
    pub entries: Vec<Entry>,
}

impl AuditStore for MemoryStore {
    type Error = Infallible;

    fn append(&mut self, entry: &Entry) -> Result<(), Infallible> {
        self.entries.push(entry.clone());
        Ok(())
    }

    fn entries(&self) -> Result<Vec<Entry>, Infallible> {
        Ok(self.entries.clone())
    }
}
