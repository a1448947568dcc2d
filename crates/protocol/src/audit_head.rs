//! Signed audit chain heads, exchanged so that each side keeps evidence of the other's log.
//!
//! A chain can only prove its own consistency: removing its last entries, or editing an entry
//! and recomputing every hash after it, gives a chain that verifies. So with each poll a site
//! signs the head of its audit chain (sequence number and hash of its last entry) and sends it
//! in the [`PollBody`]; the hub keeps the latest one per site. The hub answers every poll with
//! its own signed head in the [`HUB_HEAD_HEADER`] response header; the site keeps the latest.
//! A log that no longer contains the other side's kept head — entries missing, or a different
//! hash at that sequence number — was truncated or rewritten.
//!
//! A head is signed on its own (not only inside an envelope), so it remains evidence when kept
//! apart from the message that carried it: anyone with the signer's public key can check it.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::hex;
use crate::ids::{KeyId, SiteId};
use crate::keys::key_id;
use crate::signature::SignatureHex;

/// Domain separation for head signatures (never a prefix of an envelope's).
pub const HEAD_DOMAIN: &[u8] = b"qiao/audit-head/v1\0";

/// The HTTP response header of `POST /api/v1/site/poll` carrying the hub's [`SignedHead`] as
/// compact JSON (on 200 and 204 alike). Optional: a hub that omits it is still understood.
pub const HUB_HEAD_HEADER: &str = "qiao-hub-audit-head";

/// Whose audit chain a head belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ChainOwner {
    /// The hub's chain.
    Hub,
    /// A site's chain.
    Site(SiteId),
}

impl ChainOwner {
    fn signed_name(&self) -> String {
        match self {
            ChainOwner::Hub => "hub".to_owned(),
            ChainOwner::Site(s) => format!("site:{s}"),
        }
    }
}

impl std::fmt::Display for ChainOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainOwner::Hub => f.write_str("the hub"),
            ChainOwner::Site(s) => write!(f, "site {s}"),
        }
    }
}

/// A chain hash on the wire: 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChainHash(pub [u8; 32]);

impl std::fmt::Display for ChainHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl std::fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChainHash({self})")
    }
}

impl TryFrom<String> for ChainHash {
    type Error = HeadError;
    fn try_from(s: String) -> Result<Self, HeadError> {
        hex::decode::<32>(&s).map(Self).ok_or(HeadError::BadHash)
    }
}

impl From<ChainHash> for String {
    fn from(h: ChainHash) -> String {
        h.to_string()
    }
}

/// "Entry `seq` of `owner`'s audit chain has hash `hash`", signed by `owner` at `signed_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedHead {
    /// Whose chain.
    pub owner: ChainOwner,
    /// The last entry's sequence number (≥ 1).
    pub seq: u64,
    /// The last entry's hash.
    pub hash: ChainHash,
    /// When it was signed (unix seconds).
    pub signed_at: i64,
    /// The signer's key id.
    pub key_id: KeyId,
    /// Ed25519 over [`SignedHead::signed_bytes`].
    pub signature: SignatureHex,
}

/// Why a head is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Not 64 lowercase hex digits.
    #[error("a chain hash must be 64 lowercase hex digits")]
    BadHash,
    /// Signed by another key than the one expected.
    #[error("the head is signed by key {found}, not by {owner}'s key {expected}")]
    WrongKey {
        /// Whose key was expected.
        owner: ChainOwner,
        /// The expected key id.
        expected: KeyId,
        /// The key id in the head.
        found: KeyId,
    },
    /// The signature does not verify: the head was forged or altered.
    #[error("the signature of {owner}'s head #{seq} does not verify: forged or altered")]
    BadSignature {
        /// The claimed owner.
        owner: ChainOwner,
        /// The claimed sequence number.
        seq: u64,
    },
    /// A head for another chain than the one expected.
    #[error("the head is for {found}'s chain, not {expected}'s")]
    WrongOwner {
        /// Expected.
        expected: ChainOwner,
        /// Found.
        found: ChainOwner,
    },
    /// Sequence number 0 (an empty chain has no head).
    #[error("a head's seq must be at least 1")]
    ZeroSeq,
    /// Not valid JSON of a head.
    #[error("not a signed audit head: {0}")]
    Malformed(String),
}

impl SignedHead {
    /// The byte string that is signed: [`HEAD_DOMAIN`], then the owner (length-prefixed), the
    /// seq (8 bytes big-endian), the hash (32 bytes), the time (8 bytes big-endian) and the key
    /// id (length-prefixed).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let owner = self.owner.signed_name();
        let kid = self.key_id.to_string();
        let mut out = Vec::with_capacity(HEAD_DOMAIN.len() + 100 + owner.len());
        out.extend_from_slice(HEAD_DOMAIN);
        out.extend_from_slice(&(owner.len() as u64).to_be_bytes());
        out.extend_from_slice(owner.as_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.hash.0);
        out.extend_from_slice(&self.signed_at.to_be_bytes());
        out.extend_from_slice(&(kid.len() as u64).to_be_bytes());
        out.extend_from_slice(kid.as_bytes());
        out
    }

    /// Signs the head of `owner`'s chain with `key` (whose id is `key_id`); sites and the hub
    /// call it through [`crate::Signer::sign_audit_head`].
    pub fn sign_with_key(
        key: &SigningKey,
        key_id: KeyId,
        owner: ChainOwner,
        seq: u64,
        hash: [u8; 32],
        now: i64,
    ) -> Self {
        let mut head = SignedHead {
            owner,
            seq,
            hash: ChainHash(hash),
            signed_at: now,
            key_id,
            signature: SignatureHex([0; 64]),
        };
        head.signature = SignatureHex(key.sign(&head.signed_bytes()).to_bytes());
        head
    }

    /// Checks that this is `owner`'s head, signed with `key`.
    pub fn verify(&self, owner: &ChainOwner, key: &VerifyingKey) -> Result<(), HeadError> {
        if &self.owner != owner {
            return Err(HeadError::WrongOwner {
                expected: owner.clone(),
                found: self.owner.clone(),
            });
        }
        if self.seq == 0 {
            return Err(HeadError::ZeroSeq);
        }
        let expected = key_id(key);
        if self.key_id != expected {
            return Err(HeadError::WrongKey {
                owner: owner.clone(),
                expected,
                found: self.key_id,
            });
        }
        key.verify_strict(
            &self.signed_bytes(),
            &Signature::from_bytes(&self.signature.0),
        )
        .map_err(|_| HeadError::BadSignature {
            owner: self.owner.clone(),
            seq: self.seq,
        })
    }

    /// Compact JSON (one line; fits an HTTP header).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses heads, one JSON head a line (blank lines skipped); a bad line is named by its
    /// number (shape only; use [`SignedHead::verify`]).
    pub fn parse_lines(text: &str) -> Result<Vec<Self>, HeadError> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                Self::from_json(l).map_err(|e| HeadError::Malformed(format!("line {}: {e}", i + 1)))
            })
            .collect()
    }

    /// Parses JSON (shape only; use [`SignedHead::verify`]).
    pub fn from_json(s: &str) -> Result<Self, HeadError> {
        serde_json::from_str(s.trim()).map_err(|e| HeadError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{poll_audit_head, PollBody, Signer};

    fn site() -> ChainOwner {
        ChainOwner::Site(SiteId::new("hospital-a").unwrap())
    }

    #[test]
    fn a_head_verifies_with_its_signers_key_only_and_unaltered() {
        let s = Signer::generate();
        let h = s.sign_audit_head(site(), 45, [7; 32], 1_760_000_000);
        let back = SignedHead::from_json(&h.to_json()).unwrap();
        assert_eq!(back, h);
        back.verify(&site(), &s.verifying_key()).unwrap();
        // Another chain, another key, an altered field: refused.
        assert!(matches!(
            h.verify(&ChainOwner::Hub, &s.verifying_key()),
            Err(HeadError::WrongOwner { .. })
        ));
        assert!(matches!(
            h.verify(&site(), &Signer::generate().verifying_key()),
            Err(HeadError::WrongKey { .. })
        ));
        for altered in [
            SignedHead {
                seq: 46,
                ..h.clone()
            },
            SignedHead {
                hash: ChainHash([8; 32]),
                ..h.clone()
            },
            SignedHead {
                signed_at: 1,
                ..h.clone()
            },
        ] {
            assert_eq!(
                altered.verify(&site(), &s.verifying_key()),
                Err(HeadError::BadSignature {
                    owner: site(),
                    seq: altered.seq
                })
            );
        }
    }

    #[test]
    fn polls_without_a_head_still_parse_and_a_head_rides_in_the_signed_body() {
        let old: PollBody = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(old.audit_head, None);
        let s = Signer::generate();
        let me = SiteId::new("hospital-a").unwrap();
        let h = s.sign_audit_head(site(), 3, [1; 32], 5);
        let env = s.seal_poll_with_head(&me, None, Some(&h), 5).unwrap();
        assert_eq!(poll_audit_head(&env.body), Some(h));
        let env = s.seal_poll(&me, 5).unwrap();
        assert_eq!(env.body, "{}");
        assert_eq!(poll_audit_head(&env.body), None);
    }
}
