//! Ed25519 keys: generation, fingerprints, key ids, and key files (the crate's only file I/O).
//!
//! A key file is a short armored text file holding the 32-byte key in hex:
//!
//! ```text
//! -----BEGIN QIAO ED25519 PRIVATE KEY-----
//! 9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60
//! -----END QIAO ED25519 PRIVATE KEY-----
//! ```
//!
//! (`PUBLIC KEY` for a public key). Files are created with mode 0600, never overwritten, and
//! fsynced along with their directory. A private key file readable by group or others is
//! refused on load, as OpenSSH does.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::hex;
use crate::ids::KeyId;

const PRIVATE_LABEL: &str = "QIAO ED25519 PRIVATE KEY";
const PUBLIC_LABEL: &str = "QIAO ED25519 PUBLIC KEY";
/// Longest key file read, in bytes.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// A fresh signing key from the operating system's CSPRNG.
pub fn generate_signing_key() -> SigningKey {
    SigningKey::generate(&mut OsRng)
}

/// SHA-256 of the 32-byte public key, as `SHA256:` and 64 lowercase hex digits. Compare it out
/// of band when pinning a key.
pub fn fingerprint(key: &VerifyingKey) -> String {
    format!("SHA256:{}", hex::encode(&fingerprint_bytes(key)))
}

fn fingerprint_bytes(key: &VerifyingKey) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The key's id: the first 16 bytes of its fingerprint (so the hex id is a prefix of the hex
/// fingerprint).
pub fn key_id(key: &VerifyingKey) -> KeyId {
    let fp = fingerprint_bytes(key);
    let mut id = [0u8; 16];
    id.copy_from_slice(&fp[..16]);
    KeyId::from_bytes(id)
}

/// A public key on the wire: 64 lowercase hex digits. Parsing rejects encodings that are not
/// curve points and weak (small-order) keys.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PublicKey(VerifyingKey);

/// A public key that is not 32 bytes of lowercase hex, not a valid point, or weak.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicKeyError {
    /// Not 64 lowercase hex digits.
    #[error("a public key must be 64 lowercase hex digits")]
    Encoding,
    /// Not a valid curve point.
    #[error("not a valid Ed25519 public key")]
    InvalidPoint,
    /// A small-order ("weak") key, which would make signatures meaningless.
    #[error("weak (small-order) Ed25519 public key")]
    Weak,
}

impl PublicKey {
    /// Wraps a verifying key, rejecting weak keys.
    pub fn new(key: VerifyingKey) -> Result<Self, PublicKeyError> {
        if key.is_weak() {
            Err(PublicKeyError::Weak)
        } else {
            Ok(Self(key))
        }
    }

    /// Parses the hex form.
    pub fn parse(s: &str) -> Result<Self, PublicKeyError> {
        let bytes = hex::decode::<32>(s).ok_or(PublicKeyError::Encoding)?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| PublicKeyError::InvalidPoint)?;
        Self::new(key)
    }

    /// The key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }

    /// See [`key_id`].
    pub fn key_id(&self) -> KeyId {
        key_id(&self.0)
    }

    /// See [`fingerprint`].
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl TryFrom<String> for PublicKey {
    type Error = PublicKeyError;
    fn try_from(s: String) -> Result<Self, PublicKeyError> {
        Self::parse(&s)
    }
}

impl From<PublicKey> for String {
    fn from(k: PublicKey) -> String {
        k.to_string()
    }
}

/// A key file that could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// An I/O error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Refused to overwrite an existing key file.
    #[error("{}: a key file already exists; remove it first if you mean to replace the key", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A private key file readable or writable by group or others.
    #[error("{}: private key file has permissions {mode:o}; it must not be accessible by group or others (chmod 600)", path.display())]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a key file of the expected kind.
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Writes a private key file (mode 0600; refuses to overwrite).
pub fn save_signing_key(path: &Path, key: &SigningKey) -> Result<(), KeyFileError> {
    let secret = Zeroizing::new(hex::encode(key.as_bytes()));
    let text = Zeroizing::new(armor(PRIVATE_LABEL, &secret));
    write_new(path, text.as_bytes())
}

/// Reads a private key file written by [`save_signing_key`]; refuses files accessible by group
/// or others.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    let text = read_key_file(path, true)?;
    let secret = Zeroizing::new(unarmor(path, &text, PRIVATE_LABEL)?);
    Ok(SigningKey::from_bytes(&secret))
}

/// Writes a public key file (mode 0600; refuses to overwrite).
pub fn save_public_key(path: &Path, key: &VerifyingKey) -> Result<(), KeyFileError> {
    write_new(
        path,
        armor(PUBLIC_LABEL, &hex::encode(key.as_bytes())).as_bytes(),
    )
}

/// Reads a public key file written by [`save_public_key`], rejecting invalid and weak keys.
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, KeyFileError> {
    let text = read_key_file(path, false)?;
    let bytes = unarmor(path, &text, PUBLIC_LABEL)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyFileError::Format {
        path: path.to_owned(),
        reason: "not a valid Ed25519 public key".into(),
    })?;
    if key.is_weak() {
        return Err(KeyFileError::Format {
            path: path.to_owned(),
            reason: "weak (small-order) Ed25519 public key".into(),
        });
    }
    Ok(key)
}

fn armor(label: &str, hex: &str) -> String {
    format!("-----BEGIN {label}-----\n{hex}\n-----END {label}-----\n")
}

fn unarmor(path: &Path, text: &str, label: &str) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let format_error = |reason: String| KeyFileError::Format {
        path: path.to_owned(),
        reason,
    };
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    match lines.as_slice() {
        [b, body, e] if *b == begin && *e == end => {
            let lower = Zeroizing::new(body.to_ascii_lowercase());
            hex::decode::<32>(&lower)
                .map(Zeroizing::new)
                .ok_or_else(|| {
                    format_error(format!(
                        "the key must be 64 hex digits between the {begin} and {end} lines"
                    ))
                })
        }
        [b, ..] if b.starts_with("-----BEGIN ") => Err(format_error(format!(
            "expected a {label} file, found {}",
            b.trim_matches('-').trim_start_matches("BEGIN ")
        ))),
        _ => Err(format_error(format!(
            "not a Qiao key file (expected {begin}, 64 hex digits, {end})"
        ))),
    }
}

fn read_key_file(path: &Path, private: bool) -> Result<Zeroizing<String>, KeyFileError> {
    let io_error = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let meta = file.metadata().map_err(io_error)?;
    if private {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::InsecurePermissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                KeyFileError::Format {
                    path: path.to_owned(),
                    reason: "not a text file".into(),
                }
            } else {
                io_error(e)
            }
        })?;
    if text.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyFileError::Format {
            path: path.to_owned(),
            reason: "too large for a key file".into(),
        });
    }
    Ok(text)
}

fn write_new(path: &Path, contents: &[u8]) -> Result<(), KeyFileError> {
    let io_error = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(KeyFileError::Exists {
                path: path.to_owned(),
            })
        }
        Err(e) => return Err(io_error(e)),
    };
    // The umask can only clear bits, but make the mode explicit regardless of it.
    let written = file
        .set_permissions(fs::Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(contents))
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(io_error(e));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| KeyFileError::Io {
            path: dir.to_owned(),
            source,
        })
}
