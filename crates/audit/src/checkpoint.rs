//! Checking a chain against heads kept by someone else, and reading a log file's head cheaply.
//!
//! A chain verifies itself only up to its own end: after its last entries are removed, or an
//! entry is edited and every later hash recomputed, it is again a valid chain. What it cannot
//! do is contain an entry it lost, or give an entry at a known sequence number a hash it did not
//! have. So heads ([`Checkpoint`]s) kept outside the log — the hub keeps each site's, each site
//! keeps the hub's — detect both: [`check_heads`] names the sequence numbers missing or altered.
//!
//! What it cannot detect: changes to entries after the newest kept head (they were never
//! seen outside), and a rewrite of entries that no kept head covers.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use crate::chain::Checkpoint;
use crate::entry::Entry;

/// What [`check_heads`] found wrong, one problem per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadProblem {
    /// The chain ends before a kept head: entries `first..=last` were removed from its end.
    Missing {
        /// The first missing sequence number (entries present + 1).
        first: u64,
        /// The kept head's sequence number.
        last: u64,
    },
    /// The entry at a kept head has another hash: one of entries `first..=last` was altered
    /// (and the chain recomputed after it).
    Altered {
        /// One past the newest head below `last` that still matches (1 if none).
        first: u64,
        /// The kept head that no longer matches.
        last: u64,
    },
}

impl fmt::Display for HeadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HeadProblem::Missing { first, last } if first == last => write!(
                f,
                "entry #{last} is missing: the log ends at entry #{} but a signed head #{last} is on record (entries were removed from its end)",
                first - 1
            ),
            HeadProblem::Missing { first, last } => write!(
                f,
                "entries #{first}..#{last} are missing: the log ends at entry #{} but a signed head #{last} is on record (entries were removed from its end)",
                first - 1
            ),
            HeadProblem::Altered { first, last } if first == last => write!(
                f,
                "entry #{last} was altered: its hash differs from the signed head #{last} on record"
            ),
            HeadProblem::Altered { first, last } => write!(
                f,
                "the chain was rewritten: entry #{last} differs from the signed head #{last} on record, so one of entries #{first}..#{last} was altered and the hashes after it recomputed"
            ),
        }
    }
}

/// The chain does not contain every kept head.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct HeadsError {
    /// What is wrong, oldest first.
    pub problems: Vec<HeadProblem>,
}

impl fmt::Display for HeadsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// What [`check_heads`] confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadsReport {
    /// Heads checked.
    pub heads: usize,
    /// The newest head checked, if any.
    pub newest: Option<u64>,
    /// Entries in the chain after the newest head (never seen outside, so unchecked).
    pub unchecked_after: u64,
}

/// Checks that `entries` — a chain already verified from its start — contains every head.
pub fn check_heads(entries: &[Entry], heads: &[Checkpoint]) -> Result<HeadsReport, HeadsError> {
    let mut heads: Vec<Checkpoint> = heads.to_vec();
    heads.sort_by_key(|h| h.seq);
    heads.dedup();
    let len = entries.len() as u64;
    let mut problems = Vec::new();
    let mut last_good = 0u64;
    let mut missing_from: Option<u64> = None;
    for h in &heads {
        if h.seq == 0 {
            continue;
        }
        if h.seq > len {
            missing_from.get_or_insert(h.seq);
            continue;
        }
        let entry = &entries[(h.seq - 1) as usize];
        if entry.hash == h.hash {
            last_good = last_good.max(h.seq);
        } else if problems.is_empty() {
            // Later heads follow from this one; the oldest mismatch says the most.
            problems.push(HeadProblem::Altered {
                first: last_good + 1,
                last: h.seq,
            });
        }
    }
    if missing_from.is_some() {
        let last = heads.last().map_or(len, |h| h.seq);
        problems.push(HeadProblem::Missing {
            first: len + 1,
            last,
        });
    }
    if !problems.is_empty() {
        return Err(HeadsError { problems });
    }
    let newest = heads.iter().map(|h| h.seq).filter(|&s| s > 0).max();
    Ok(HeadsReport {
        heads: heads.len(),
        newest,
        unchecked_after: len - newest.unwrap_or(0),
    })
}

/// The last complete entry of a log file, read from its end without verifying the chain (for
/// signing the head often; the log itself verifies its chain whenever it is opened). `None` for
/// a missing or empty file. A torn last line (no newline) is skipped.
pub fn last_head(path: &Path) -> io::Result<Option<Checkpoint>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.seek(SeekFrom::End(0))?;
    const CHUNK: u64 = 64 * 1024;
    // Bytes from `start` to the end of the file, read backwards a chunk at a time until they
    // hold the last complete line.
    let mut tail: Vec<u8> = Vec::new();
    let mut start = len;
    loop {
        if let Some(line) = last_complete_line(&tail, start == 0) {
            let entry: Entry = serde_json::from_slice(line)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            return Ok(Some(Checkpoint {
                seq: entry.seq,
                hash: entry.hash,
            }));
        }
        if start == 0 {
            return Ok(None);
        }
        if tail.len() as u64 > crate::file::MAX_LINE_BYTES * 2 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "audit log: last line too long",
            ));
        }
        let from = start.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        start = from;
    }
}

/// The last newline-terminated line in `buf` (without its newline), if `buf` holds all of it.
fn last_complete_line(buf: &[u8], at_file_start: bool) -> Option<&[u8]> {
    let end = buf.iter().rposition(|&b| b == b'\n')?;
    let body = &buf[..end];
    match body.iter().rposition(|&b| b == b'\n') {
        Some(nl) => Some(&body[nl + 1..]),
        None if at_file_start => Some(body),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{Chain, MemoryStore};
    use crate::entry::{Actor, EntryDraft};

    fn chain(n: u64) -> Vec<Entry> {
        let mut c = Chain::open(MemoryStore::default(), None).unwrap();
        for i in 0..n {
            c.append(EntryDraft::new(i as i64, Actor::System, format!("a{i}")))
                .unwrap();
        }
        c.into_store().entries
    }

    fn head(e: &[Entry], seq: u64) -> Checkpoint {
        Checkpoint {
            seq,
            hash: e[seq as usize - 1].hash,
        }
    }

    #[test]
    fn missing_and_altered_entries_are_named() {
        let full = chain(10);
        let heads = [head(&full, 4), head(&full, 8)];
        let ok = check_heads(&full, &heads).unwrap();
        assert_eq!((ok.heads, ok.newest, ok.unchecked_after), (2, Some(8), 2));
        let err = check_heads(&full[..6], &heads).unwrap_err();
        assert_eq!(err.problems, [HeadProblem::Missing { first: 7, last: 8 }]);
        // Entry 6 edited and the chain recomputed.
        let mut rewritten = full.clone();
        rewritten[5].action = "other".into();
        let mut prev = crate::EntryHash::GENESIS;
        for e in &mut rewritten {
            e.prev_hash = prev;
            e.hash = e.compute_hash();
            prev = e.hash;
        }
        crate::verify_entries(&rewritten, None).unwrap();
        let err = check_heads(&rewritten, &heads).unwrap_err();
        assert_eq!(err.problems, [HeadProblem::Altered { first: 5, last: 8 }]);
        assert!(err
            .to_string()
            .contains("one of entries #5..#8 was altered"));
    }

    #[test]
    fn the_last_head_is_read_from_the_end_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        assert_eq!(last_head(&path).unwrap(), None);
        let (log, _) = crate::AuditLog::open(&path).unwrap();
        let mut last = None;
        for i in 0..50 {
            let e = log
                .append(EntryDraft::new(i, Actor::System, "x").released_text("y".repeat(5_000)))
                .unwrap();
            last = Some(Checkpoint {
                seq: e.seq,
                hash: e.hash,
            });
        }
        assert_eq!(last_head(&path).unwrap(), last);
        // A torn last line is skipped.
        drop(log);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"{\"seq\":51,").unwrap();
        assert_eq!(last_head(&path).unwrap(), last);
    }
}
