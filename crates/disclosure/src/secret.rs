//! The site secret and the keys derived from it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Shortest accepted site secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// A site's secret key. It never leaves the site: it keys the person-set digests and the
/// obfuscation noise, so that nobody without it can predict or reproduce the noise.
///
/// Generate it once per site from a cryptographically secure source (e.g. 32 bytes from the
/// OS), keep it with the site's configuration, and keep it stable: changing it changes every
/// obfuscated answer, which lets an attacker average old and new answers for the same set.
#[derive(Clone)]
pub struct SiteSecret {
    pub(crate) element_key: [u8; 32],
    pub(crate) noise_key: [u8; 32],
}

/// A secret shorter than [`MIN_SECRET_LEN`] bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("site secret must be at least {MIN_SECRET_LEN} bytes (got {0})")]
pub struct SecretTooShort(pub usize);

pub(crate) type HmacSha256 = Hmac<Sha256>;

pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this never fails; an (unreachable) error degrades to
    // a fixed all-zero output rather than a panic.
    let Ok(mut mac) = <HmacSha256 as KeyInit>::new_from_slice(key) else {
        return [0u8; 32];
    };
    for p in parts {
        mac.update(p);
    }
    let out = mac.finalize().into_bytes();
    let mut r = [0u8; 32];
    r.copy_from_slice(&out);
    r
}

impl SiteSecret {
    /// Derives the site's keys from `secret` (at least 32 bytes) with HMAC-SHA256 and
    /// distinct labels, so the digest key and the noise key are independent.
    pub fn from_bytes(secret: &[u8]) -> Result<Self, SecretTooShort> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(SecretTooShort(secret.len()));
        }
        Ok(SiteSecret {
            element_key: hmac_sha256(secret, &[b"qiao-disclosure/v1/person-set-digest"]),
            noise_key: hmac_sha256(secret, &[b"qiao-disclosure/v1/obfuscation-noise"]),
        })
    }
}

impl std::fmt::Debug for SiteSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SiteSecret(<redacted>)")
    }
}
