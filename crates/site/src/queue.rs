//! The manual approval queue and the journal of finished jobs.
//!
//! Both are directories of one JSON file per job id (`approvals/ID.json`, `journal/ID.json`),
//! replaced atomically, so the steward's CLI and the running `serve` loop share them safely
//! (state transitions hold the data directory's lock).

use std::fs;

use anyhow::{bail, Context};
use qiao_protocol::{Job, JobId, JobResult};
use serde::{Deserialize, Serialize};

use qiao_audit::EntryDraft;

use crate::audit;
use crate::data::{now_unix, read_json, write_atomic, write_json, SiteDir};

/// Where a queued job stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for the steward.
    Pending,
    /// Approved; `serve` runs it.
    Approved {
        /// The steward.
        by: String,
        /// When (unix seconds).
        at: i64,
    },
    /// Denied; `serve` sends a refusal.
    Denied {
        /// The steward.
        by: String,
        /// When (unix seconds).
        at: i64,
        /// Why (kept at the site; only the refusal code reaches the hub).
        reason: String,
    },
}

/// One job in the approval queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalItem {
    /// The verified job, exactly as the hub sent it.
    pub job: Job,
    /// When it was queued (unix seconds).
    pub queued_at: i64,
    /// The decision.
    pub state: ApprovalState,
    /// On disk: the job's definition is kept once in [`crate::definitions`] under this digest
    /// (and `job.definition` is `null`); filled back in when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition_sha256: Option<String>,
}

/// The approval queue.
pub struct Approvals<'a> {
    dir: &'a SiteDir,
}

impl<'a> Approvals<'a> {
    /// The queue of `dir`.
    pub fn new(dir: &'a SiteDir) -> Self {
        Self { dir }
    }

    fn path(&self, id: &JobId) -> std::path::PathBuf {
        self.dir.approvals_dir().join(format!("{id}.json"))
    }

    /// One item.
    pub fn get(&self, id: &JobId) -> anyhow::Result<Option<ApprovalItem>> {
        let Some(mut item) = read_json::<ApprovalItem>(&self.path(id))? else {
            return Ok(None);
        };
        if let Some(digest) = item.definition_sha256.take() {
            item.job.definition = crate::definitions::get(self.dir, &digest)
                .with_context(|| format!("the definition of queued job {id}"))?;
        }
        Ok(Some(item))
    }

    /// Writes an item, its definition stored once by digest.
    fn write(&self, item: &ApprovalItem) -> anyhow::Result<()> {
        let digest = crate::definitions::put(self.dir, &item.job.definition)?;
        let mut stored = item.clone();
        stored.job.definition = serde_json::Value::Null;
        stored.definition_sha256 = Some(digest);
        write_json(&self.path(&item.job.job_id), &stored)
    }

    /// Queues a job as pending, unless it is already queued. Returns the item as stored.
    pub fn enqueue(&self, job: &Job, now: i64) -> anyhow::Result<ApprovalItem> {
        self.dir.locked(|| {
            if let Some(existing) = self.get(&job.job_id)? {
                return Ok(existing);
            }
            let item = ApprovalItem {
                job: job.clone(),
                queued_at: now,
                state: ApprovalState::Pending,
                definition_sha256: None,
            };
            self.write(&item)?;
            Ok(item)
        })
    }

    /// Records the steward's decision on a pending item.
    pub fn decide(&self, id: &JobId, state: ApprovalState) -> anyhow::Result<ApprovalItem> {
        self.dir.locked(|| {
            let Some(mut item) = self.get(id)? else {
                bail!("no job {id} in the approval queue");
            };
            if item.state != ApprovalState::Pending {
                bail!("job {id} was already decided");
            }
            item.state = state;
            self.write(&item)?;
            Ok(item)
        })
    }

    /// Every item, oldest first.
    pub fn list(&self) -> anyhow::Result<Vec<ApprovalItem>> {
        let mut items = Vec::new();
        for id in job_files(&self.dir.approvals_dir())? {
            if let Some(item) = self.get(&id)? {
                items.push(item);
            }
        }
        items.sort_by_key(|i| (i.queued_at, i.job.job_id));
        Ok(items)
    }

    /// Removes an item (after its result is journaled).
    pub fn remove(&self, id: &JobId) -> anyhow::Result<()> {
        match fs::remove_file(self.path(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).context("removing an approval item"),
        }
    }
}

/// Records an authenticated steward's approval of a pending job, audited (`job.approve`).
pub fn approve_job(dir: &SiteDir, steward: &str, id: &JobId) -> anyhow::Result<ApprovalItem> {
    let item = Approvals::new(dir).decide(
        id,
        ApprovalState::Approved {
            by: steward.to_owned(),
            at: now_unix(),
        },
    )?;
    audit::append(
        dir,
        EntryDraft::new(now_unix(), audit::user(steward), "job.approve")
            .project(item.job.project_id.to_string())
            .job(id.to_string())
            .decision("approved by the data steward"),
    )?;
    Ok(item)
}

/// Longest deny reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 1000;

/// Why a deny reason is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReasonRefused {
    /// Empty (or only white space).
    #[error("a reason is required to deny a job")]
    Empty,
    /// Longer than [`MAX_REASON_CHARS`], or with control characters other than line breaks.
    #[error("the reason must be at most {MAX_REASON_CHARS} characters of text")]
    Unfit,
}

/// The reason as kept (trimmed), if it is one.
pub fn check_reason(reason: &str) -> Result<&str, ReasonRefused> {
    let reason = reason.trim();
    if reason.is_empty() {
        Err(ReasonRefused::Empty)
    } else if reason.chars().count() > MAX_REASON_CHARS
        || reason
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r')
    {
        Err(ReasonRefused::Unfit)
    } else {
        Ok(reason)
    }
}

/// Records an authenticated steward's refusal of a pending job with its reason
/// ([`check_reason`]), audited (`job.deny`; the reason stays at the site).
pub fn deny_job(
    dir: &SiteDir,
    steward: &str,
    id: &JobId,
    reason: &str,
) -> anyhow::Result<ApprovalItem> {
    let reason = check_reason(reason)?;
    let item = Approvals::new(dir).decide(
        id,
        ApprovalState::Denied {
            by: steward.to_owned(),
            at: now_unix(),
            reason: reason.to_owned(),
        },
    )?;
    audit::append(
        dir,
        EntryDraft::new(now_unix(), audit::user(steward), "job.deny")
            .project(item.job.project_id.to_string())
            .job(id.to_string())
            .decision(format!("denied by the data steward: {reason}")),
    )?;
    Ok(item)
}

/// What the journal knows of a finished job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalEntry {
    /// The job's result, as released (already through disclosure control and the guards).
    pub result: JobResult,
    /// When it was computed (unix seconds).
    pub finished_at: i64,
    /// Whether the hub acknowledged it (a signed result_ack).
    pub acked: bool,
    /// Times the result was sent.
    pub sends: u32,
    /// The hub refused it for good (a 4xx), with its message.
    pub hub_rejected: Option<String>,
}

/// The journal of finished jobs: a job in it is never computed again; its stored result is
/// re-sent until the hub acknowledges it.
pub struct Journal<'a> {
    dir: &'a SiteDir,
}

impl<'a> Journal<'a> {
    /// The journal of `dir`.
    pub fn new(dir: &'a SiteDir) -> Self {
        Self { dir }
    }

    fn path(&self, id: &JobId) -> std::path::PathBuf {
        self.dir.journal_dir().join(format!("{id}.json"))
    }

    /// The entry for a job.
    pub fn get(&self, id: &JobId) -> anyhow::Result<Option<JournalEntry>> {
        read_json(&self.path(id))
    }

    /// `ID.done`: the entry is settled (acknowledged, or refused for good by the hub). Only a
    /// shortcut for [`Journal::unacked`], which then need not read the entry (a result can be
    /// megabytes): the entry itself says what is true, and an entry without its mark is read.
    fn done_mark(&self, id: &JobId) -> std::path::PathBuf {
        self.dir.journal_dir().join(format!("{id}.done"))
    }

    /// Stores an entry (durably, before the result is first sent).
    pub fn put(&self, entry: &JournalEntry) -> anyhow::Result<()> {
        let id = &entry.result.job_id;
        let mark = self.done_mark(id);
        if settled(entry) {
            write_json(&self.path(id), entry)?;
            write_atomic(&mark, b"")
        } else {
            // The mark goes first: a crash in between leaves an unmarked entry, which is read.
            match fs::remove_file(&mark) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", mark.display())),
            }
            write_json(&self.path(id), entry)
        }
    }

    /// Entries not yet acknowledged (nor refused for good by the hub). Settled entries with
    /// their mark are not read; one without (written by an earlier version) is read once and
    /// marked.
    pub fn unacked(&self) -> anyhow::Result<Vec<JournalEntry>> {
        let mut out = Vec::new();
        for id in job_files(&self.dir.journal_dir())? {
            if self.done_mark(&id).exists() {
                continue;
            }
            if let Some(e) = self.get(&id)? {
                if settled(&e) {
                    write_atomic(&self.done_mark(&id), b"")?;
                } else {
                    out.push(e);
                }
            }
        }
        out.sort_by_key(|e| e.finished_at);
        Ok(out)
    }
}

/// Acknowledged, or refused for good by the hub: never sent again.
fn settled(e: &JournalEntry) -> bool {
    e.acked || e.hub_rejected.is_some()
}

/// The job ids of the `ID.json` files in `dir` (none if it does not exist yet); other files
/// (an atomic replacement's temporary, say) are not jobs.
fn job_files(dir: &std::path::Path) -> anyhow::Result<Vec<JobId>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        if let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| JobId::parse(n).ok())
        {
            ids.push(id);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qiao_protocol::{Outcome, RefusalReason, SiteId};

    fn entry(acked: bool) -> JournalEntry {
        JournalEntry {
            result: JobResult {
                job_id: JobId::random(),
                site_id: SiteId::new("site-a").unwrap(),
                outcome: Outcome::Refused {
                    reason: RefusalReason::QueryTypeDenied,
                },
            },
            finished_at: 1,
            acked,
            sends: 1,
            hub_rejected: None,
        }
    }

    #[test]
    fn settled_entries_are_marked_and_not_read_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SiteDir::create(tmp.path().join("site")).unwrap();
        let journal = Journal::new(&dir);
        let (mut a, b) = (entry(false), entry(false));
        journal.put(&a).unwrap();
        journal.put(&b).unwrap();
        assert_eq!(journal.unacked().unwrap().len(), 2);
        a.acked = true;
        journal.put(&a).unwrap();
        let mark = journal.done_mark(&a.result.job_id);
        assert!(mark.exists());
        assert_eq!(journal.unacked().unwrap(), vec![b.clone()]);
        // The mark is what lets unacked() skip the entry: with it, a corrupted entry is not read.
        std::fs::write(journal.path(&a.result.job_id), b"{ not json").unwrap();
        assert_eq!(journal.unacked().unwrap(), vec![b.clone()]);
        // Sent again (no longer acknowledged): the mark goes.
        a.acked = false;
        journal.put(&a).unwrap();
        assert!(!mark.exists());
        assert_eq!(journal.unacked().unwrap().len(), 2);
        // An acknowledged entry of an earlier version (no mark) is read once and marked.
        let mut old = entry(true);
        old.hub_rejected = Some("refused".into());
        write_json(&journal.path(&old.result.job_id), &old).unwrap();
        assert_eq!(journal.unacked().unwrap().len(), 2);
        assert!(journal.done_mark(&old.result.job_id).exists());
    }
}
