//! The file-backed log: one JSON entry per line.
//!
//! - Opened with `O_APPEND` and an exclusive advisory lock (`flock`), so one process owns it.
//! - Each append is one `write` of the whole line followed by `fdatasync`; an append returns
//!   only once the entry is durable. Appends within a process are serialized by a mutex.
//! - On open the whole chain is verified; a broken chain is an error and nothing is appended.
//! - A crash during an append can leave a partial last line (no final newline). That entry was
//!   never acknowledged, so on open it is truncated away, reported in [`OpenReport::torn_tail`]
//!   and logged as a warning. [`verify`] (read-only) reports it and leaves the file alone.
//!   A line that *is* newline-terminated but invalid is never repaired: it is tampering or
//!   corruption, and the log refuses to open.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::chain::{
    AuditError, AuditStore, Chain, ChainError, ChainVerifier, Checkpoint, VerifyReport,
};
use crate::entry::{Entry, EntryDraft};

/// Longest line accepted when reading, in bytes.
pub const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;

/// An error of the file-backed log.
#[derive(Debug, thiserror::Error)]
pub enum FileLogError {
    /// An I/O error.
    #[error("audit log {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Another process has the log open.
    #[error("audit log {} is in use by another process", path.display())]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// The chain in the file is broken.
    #[error("audit log {}: {source}", path.display())]
    Chain {
        /// The file.
        path: PathBuf,
        /// Where and how.
        source: ChainError,
    },
    /// An earlier append failed; reopen the log.
    #[error("audit log {}: an earlier append failed; reopen the log before appending again", path.display())]
    Poisoned {
        /// The file.
        path: PathBuf,
    },
    /// A draft with an empty action.
    #[error("an audit entry needs an action")]
    EmptyAction,
    /// A draft whose actor has an empty id.
    #[error("an audit entry's actor needs a non-empty id")]
    InvalidActor,
}

/// A torn last line removed on open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Where it started (the file's new length).
    pub offset: u64,
    /// How many bytes were removed.
    pub bytes: u64,
}

/// What [`AuditLog::open`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenReport {
    /// Whether the file was created.
    pub created: bool,
    /// Entries in the chain.
    pub entries: u64,
    /// The last entry.
    pub head: Option<Checkpoint>,
    /// A torn last line that was truncated away.
    pub torn_tail: Option<TornTail>,
}

/// A log file's verified prefix, as a process last saw it: the file (device, inode), the
/// length of its complete lines and the head they end with. See [`AuditLog::open_after`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    identity: Identity,
    len: u64,
    head: Option<Checkpoint>,
}

/// Which file: its device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    fn of(file: &File) -> io::Result<Identity> {
        use std::os::unix::fs::MetadataExt;
        let m = file.metadata()?;
        Ok(Identity {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// The raw store under [`AuditLog`]: an append-mode file holding an exclusive lock.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    file: File,
    /// The file's device and inode, read at open.
    identity: Identity,
    /// Bytes of complete lines: the verified prefix plus this process's appends.
    len: u64,
}

impl AuditStore for FileStore {
    type Error = io::Error;

    fn append(&mut self, entry: &Entry) -> io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
        line.push(b'\n');
        // O_APPEND: the write goes to the end whatever the file offset.
        self.file.write_all(&line)?;
        self.file.sync_data()?;
        self.len += line.len() as u64;
        Ok(())
    }

    fn entries(&self) -> io::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        let file = File::open(&self.path)?;
        scan(file, ChainVerifier::new(None), |e| entries.push(e.clone())).map_err(|e| match e {
            ScanError::Io(e) => e,
            ScanError::Chain(c) => io::Error::new(io::ErrorKind::InvalidData, c),
        })?;
        Ok(entries)
    }
}

enum ScanError {
    Io(io::Error),
    Chain(ChainError),
}

/// Reads and verifies a log from `reader` with `verifier` (a new one from the start of the file,
/// or one continuing after a verified prefix, the reader then at its end: line numbers follow
/// the verifier's `seq`, one entry a line); returns the report and the length of the complete
/// lines read (where a torn tail starts).
fn scan(
    reader: impl Read,
    mut verifier: ChainVerifier,
    mut each: impl FnMut(&Entry),
) -> Result<(VerifyReport, u64), ScanError> {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    let mut complete = 0u64;
    let mut line_no = verifier.next_seq() - 1;
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut buf)
            .map_err(ScanError::Io)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if buf.last() != Some(&b'\n') {
            if n as u64 > MAX_LINE_BYTES {
                return Err(ScanError::Chain(verifier.malformed(
                    Some(line_no),
                    format!("line longer than {MAX_LINE_BYTES} bytes"),
                )));
            }
            // A final line without its newline: a torn write. Anything after it?
            let mut rest = [0u8; 1];
            if reader.read(&mut rest).map_err(ScanError::Io)? != 0 {
                return Err(ScanError::Chain(
                    verifier.malformed(Some(line_no), "unterminated line"),
                ));
            }
            let torn = n as u64;
            let report = verifier.finish(torn).map_err(ScanError::Chain)?;
            return Ok((report, complete));
        }
        let entry: Entry = serde_json::from_slice(&buf[..buf.len() - 1])
            .map_err(|e| ScanError::Chain(verifier.malformed(Some(line_no), e)))?;
        verifier
            .push(&entry, Some(line_no))
            .map_err(ScanError::Chain)?;
        each(&entry);
        complete += n as u64;
    }
    let report = verifier.finish(0).map_err(ScanError::Chain)?;
    Ok((report, complete))
}

/// Verifies a log file without changing it: every entry, in order, and (if given) that the
/// chain passes through `checkpoint`. A torn last line is reported in
/// [`VerifyReport::torn_tail_bytes`], not treated as an error.
pub fn verify(path: &Path) -> Result<VerifyReport, FileLogError> {
    verify_with_checkpoint(path, None)
}

/// [`verify`], also requiring the chain to contain `checkpoint`.
pub fn verify_with_checkpoint(
    path: &Path,
    checkpoint: Option<Checkpoint>,
) -> Result<VerifyReport, FileLogError> {
    let file = File::open(path).map_err(|source| FileLogError::Io {
        path: path.to_owned(),
        source,
    })?;
    scan(file, ChainVerifier::new(checkpoint), |_| {})
        .map(|(report, _)| report)
        .map_err(|e| scan_error(path, e))
}

/// Reads every entry of a log file, verifying the chain as it goes.
pub fn read_entries(path: &Path) -> Result<(Vec<Entry>, VerifyReport), FileLogError> {
    let file = File::open(path).map_err(|source| FileLogError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut entries = Vec::new();
    let (report, _) = scan(file, ChainVerifier::new(None), |e| entries.push(e.clone()))
        .map_err(|e| scan_error(path, e))?;
    Ok((entries, report))
}

fn scan_error(path: &Path, e: ScanError) -> FileLogError {
    match e {
        ScanError::Io(source) => FileLogError::Io {
            path: path.to_owned(),
            source,
        },
        ScanError::Chain(source) => FileLogError::Chain {
            path: path.to_owned(),
            source,
        },
    }
}

/// The append-only, hash-chained audit log in a file. Share it between threads with an `Arc`;
/// appends are serialized.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    chain: Mutex<Chain<FileStore>>,
}

impl AuditLog {
    /// Opens (creating if needed) the log at `path`: takes the lock, verifies the whole chain,
    /// truncates a torn last line (with a warning), and refuses a broken chain.
    pub fn open(path: &Path) -> Result<(AuditLog, OpenReport), FileLogError> {
        Self::open_with_checkpoint(path, None)
    }

    /// [`AuditLog::open`], also requiring the chain to contain `checkpoint`.
    pub fn open_with_checkpoint(
        path: &Path,
        checkpoint: Option<Checkpoint>,
    ) -> Result<(AuditLog, OpenReport), FileLogError> {
        Self::open_inner(path, checkpoint, None)
    }

    /// [`AuditLog::open`] by a process that verified the log before (`known`, from
    /// [`AuditLog::verified`] after its last append): when the file is the same one (device and
    /// inode) and no shorter, only the lines after `known`'s prefix are read and verified, the
    /// first of them chained to `known`'s head. Anything else (another file, a shorter one, a
    /// continuation that does not verify) falls back to verifying the whole chain, which reports
    /// a broken chain where it breaks. Appends then cost the new lines, not the whole log; a
    /// change to the prefix made meanwhile is still found by every full verification (the
    /// site's audit page, `qiao site audit verify`, the hub's checkpoints), as the appended
    /// entries chain to the head this process verified.
    pub fn open_after(
        path: &Path,
        known: Option<&Verified>,
    ) -> Result<(AuditLog, OpenReport), FileLogError> {
        Self::open_inner(path, None, known)
    }

    fn open_inner(
        path: &Path,
        checkpoint: Option<Checkpoint>,
        known: Option<&Verified>,
    ) -> Result<(AuditLog, OpenReport), FileLogError> {
        let io_error = |source| FileLogError::Io {
            path: path.to_owned(),
            source,
        };
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_error)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(FileLogError::Locked {
                    path: path.to_owned(),
                })
            }
            Err(e) => return Err(io_error(e.into())),
        }
        // The log names users, projects and decisions: readable by its owner only.
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io_error)?;
        }
        let created = !existed;
        if created {
            sync_parent(path).map_err(io_error)?;
        }
        let identity = Identity::of(&file).map_err(io_error)?;
        let size = file.metadata().map_err(io_error)?.len();
        let mut scanned = None;
        if let Some(k) = known.filter(|k| k.identity == identity && k.len <= size) {
            file.seek(SeekFrom::Start(k.len)).map_err(io_error)?;
            if let Ok((report, complete)) = scan(&mut file, ChainVerifier::after(k.head), |_| {}) {
                scanned = Some((report, k.len + complete));
            }
        }
        let (report, complete) = match scanned {
            Some(done) => done,
            None => {
                file.seek(SeekFrom::Start(0)).map_err(io_error)?;
                scan(&mut file, ChainVerifier::new(checkpoint), |_| {})
                    .map_err(|e| scan_error(path, e))?
            }
        };
        let mut torn_tail = None;
        if report.torn_tail_bytes > 0 {
            file.set_len(complete).map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
            tracing::warn!(
                path = %path.display(),
                offset = complete,
                bytes = report.torn_tail_bytes,
                "audit log: removed a torn last line left by a crash during an append (it was never acknowledged)"
            );
            torn_tail = Some(TornTail {
                offset: complete,
                bytes: report.torn_tail_bytes,
            });
        }
        let store = FileStore {
            path: path.to_owned(),
            file,
            identity,
            len: complete,
        };
        let log = AuditLog {
            path: path.to_owned(),
            chain: Mutex::new(Chain::with_head(store, report.head)),
        };
        Ok((
            log,
            OpenReport {
                created,
                entries: report.entries,
                head: report.head,
                torn_tail,
            },
        ))
    }

    /// Appends an entry; returns it once it is durable.
    pub fn append(&self, draft: EntryDraft) -> Result<Entry, FileLogError> {
        let mut chain = self.chain.lock().map_err(|_| FileLogError::Poisoned {
            path: self.path.clone(),
        })?;
        chain.append(draft).map_err(|e| match e {
            AuditError::Store(source) => FileLogError::Io {
                path: self.path.clone(),
                source,
            },
            AuditError::Chain(source) => FileLogError::Chain {
                path: self.path.clone(),
                source,
            },
            AuditError::Poisoned => FileLogError::Poisoned {
                path: self.path.clone(),
            },
            AuditError::EmptyAction => FileLogError::EmptyAction,
            AuditError::InvalidActor => FileLogError::InvalidActor,
        })
    }

    /// The last entry.
    pub fn head(&self) -> Option<Checkpoint> {
        self.chain.lock().ok().and_then(|c| c.head())
    }

    /// What this log has verified and written so far, for a later [`AuditLog::open_after`] by
    /// the same process; `None` after a failed append.
    pub fn verified(&self) -> Option<Verified> {
        let chain = self.chain.lock().ok()?;
        if chain.is_poisoned() {
            return None;
        }
        let store = chain.store();
        Some(Verified {
            identity: store.identity,
            len: store.len,
            head: chain.head(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}
