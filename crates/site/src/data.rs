//! The site's data directory: every file the site keeps, written atomically.
//!
//! ```text
//! DIR/
//!   site.json          enrollment: site id, hub URL, the pinned hub key
//!   site.key           the site's Ed25519 signing key (0600)
//!   secret.key         the disclosure-control secret (0600): keys person-set digests and noise
//!   policy.json        the site policy (SitePolicy)
//!   ledger.json        the disclosure ledger (rate limit, lockout, DP budgets)
//!   users.json         local accounts (argon2 hashes): investigators and data stewards
//!   approvals/ID.json  the manual approval queue, one file per job
//!   journal/ID.json    finished jobs: the released result, whether the hub acknowledged it
//!   audit.log          the append-only, hash-chained audit log
//! ```
//!
//! Every JSON file is replaced atomically (temporary file, fsync, rename, fsync of the
//! directory), so a crash leaves either the old or the new version. Read-modify-write cycles
//! that several processes share (the `serve` loop and the steward's CLI) hold `DIR/.lock`.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use qiao_disclosure::SiteSecret;
use qiao_protocol::{PublicKey, SiteId};
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Largest JSON state file read, in bytes (a corrupt or hostile file must not exhaust memory).
const MAX_STATE_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// What enrollment left behind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// The site id the hub assigned (every message to and from the hub carries it).
    pub site_id: SiteId,
    /// The name asked for at enrollment.
    pub name: String,
    /// The hub's base URL.
    pub hub_url: String,
    /// The hub's pinned public key.
    pub hub_public_key: PublicKey,
    /// Its fingerprint (`SHA256:…`), for the operator to compare out of band.
    pub hub_fingerprint: String,
    /// When the site enrolled (unix seconds).
    pub enrolled_at: i64,
}

/// The site's data directory.
#[derive(Clone, Debug)]
pub struct SiteDir {
    root: PathBuf,
}

impl SiteDir {
    /// The directory at `root` (not created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Creates the directory and its subdirectories (0700) if needed.
    pub fn create(root: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let d = Self::new(root);
        for p in [d.root.clone(), d.approvals_dir(), d.journal_dir()] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&p)
                .with_context(|| format!("creating {}", p.display()))?;
        }
        Ok(d)
    }

    /// Opens an existing data directory (creating missing subdirectories).
    pub fn open(root: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let root = root.into();
        if !root.is_dir() {
            bail!(
                "{}: no such site data directory (run `qiao site enroll` first)",
                root.display()
            );
        }
        Self::create(root)
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `site.json`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("site.json")
    }
    /// `site.key`.
    pub fn key_path(&self) -> PathBuf {
        self.root.join("site.key")
    }
    /// `secret.key`.
    pub fn secret_path(&self) -> PathBuf {
        self.root.join("secret.key")
    }
    /// `policy.json`.
    pub fn policy_path(&self) -> PathBuf {
        self.root.join("policy.json")
    }
    /// `ledger.json`.
    pub fn ledger_path(&self) -> PathBuf {
        self.root.join("ledger.json")
    }
    /// `users.json`.
    pub fn users_path(&self) -> PathBuf {
        self.root.join("users.json")
    }
    /// `audit.log`.
    pub fn audit_path(&self) -> PathBuf {
        self.root.join("audit.log")
    }
    /// `approvals/`.
    pub fn approvals_dir(&self) -> PathBuf {
        self.root.join("approvals")
    }
    /// `journal/`.
    pub fn journal_dir(&self) -> PathBuf {
        self.root.join("journal")
    }

    /// The enrollment record.
    pub fn config(&self) -> anyhow::Result<SiteConfig> {
        read_json(&self.config_path())?.with_context(|| {
            format!(
                "{}: this site is not enrolled (run `qiao site enroll`)",
                self.root.display()
            )
        })
    }

    /// The disclosure secret, created (32 random bytes, 0600) on first use.
    pub fn secret(&self) -> anyhow::Result<SiteSecret> {
        let path = self.secret_path();
        if !path.exists() {
            let mut bytes = Zeroizing::new([0u8; 32]);
            rand::rngs::OsRng.fill_bytes(bytes.as_mut());
            let hex = Zeroizing::new(hex_encode(bytes.as_ref()));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(hex.as_bytes())
                        .and_then(|()| f.sync_all())
                        .with_context(|| format!("writing {}", path.display()))?;
                    sync_dir(&self.root)?;
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
        let f = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mode = f.metadata()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "{}: secret file has permissions {mode:o}; it must not be accessible by group or others (chmod 600)",
                path.display()
            );
        }
        let mut text = Zeroizing::new(String::new());
        f.take(4096)
            .read_to_string(&mut text)
            .with_context(|| format!("reading {}", path.display()))?;
        let bytes = Zeroizing::new(
            hex_decode(text.trim())
                .with_context(|| format!("{}: not a hex secret", path.display()))?,
        );
        SiteSecret::from_bytes(&bytes).with_context(|| format!("{}", path.display()))
    }

    /// Runs `f` holding the directory's exclusive lock (`DIR/.lock`), which serializes
    /// read-modify-write cycles between the `serve` loop and the CLI.
    pub fn locked<T>(&self, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let path = self.root.join(".lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .with_context(|| format!("locking {}", path.display()))?;
        let r = f();
        // Closing the file releases the lock.
        drop(file);
        r
    }
}

/// Reads a JSON file; `Ok(None)` if it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut bytes = Vec::new();
    file.take(MAX_STATE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_STATE_FILE_BYTES {
        bail!(
            "{}: larger than {MAX_STATE_FILE_BYTES} bytes",
            path.display()
        );
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .with_context(|| format!("{}: invalid content", path.display()))
}

/// Writes a JSON file atomically (0600): temporary file, fsync, rename, fsync of the directory.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).context("serializing")?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Replaces `path` with `bytes` atomically (0600).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    sync_dir(&dir)
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// Lowercase hex.
pub fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() & 1 == 1 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Now, unix seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
