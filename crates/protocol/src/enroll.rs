//! Site enrollment: one-time tokens and the request/response pair.
//!
//! 1. An alliance admin issues a token at the hub: [`StoredToken::issue`] returns the secret
//!    [`EnrollmentToken`] (shown once, handed to the site's steward out of band) and the
//!    [`StoredToken`] the hub keeps: only a SHA-256 hash, an expiry and a `used` flag.
//! 2. The site generates its Ed25519 key pair and sends an [`EnrollRequest`]: the token, the
//!    site's id, its public key, and a proof-of-possession signature over all three.
//! 3. The hub calls [`enroll`]: the token is checked in constant time against the stored hash,
//!    then expiry and single use, then the proof; only if all pass is the token marked used.
//!    The hub must persist the `used` flag and the site's key in one transaction.
//! 4. The hub answers with an [`EnrollResponse`] carrying its public key, which the site pins
//!    ([`EnrollResponse::pin`]), optionally checking the fingerprint against one obtained out
//!    of band.

use std::fmt;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::envelope::SignatureHex;
use crate::hex;
use crate::ids::{KeyId, SiteId};
use crate::keys::{key_id, PublicKey};

/// Prefix of the token's text form.
pub const TOKEN_PREFIX: &str = "qiao-enroll-";
/// Domain separation for the stored token hash.
const TOKEN_HASH_DOMAIN: &[u8] = b"qiao-enroll-token-v1\0";
/// Domain separation for the proof-of-possession signature.
const PROOF_DOMAIN: &[u8] = b"qiao-v1-enroll\0";

/// Why enrollment failed. Token errors are told apart only after the token matched, so a wrong
/// token reveals nothing about stored ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrollError {
    /// Not a token, or not the one issued.
    #[error("invalid enrollment token")]
    InvalidToken,
    /// The token's time is up.
    #[error("enrollment token expired at {expires_at} (now {now}); ask the alliance admin for a new one")]
    TokenExpired {
        /// Expiry (unix seconds).
        expires_at: i64,
        /// Now.
        now: i64,
    },
    /// The token was already used.
    #[error("enrollment token already used; ask the alliance admin for a new one")]
    TokenAlreadyUsed,
    /// The proof-of-possession signature does not verify.
    #[error("enrollment request not signed by the private key of the public key it registers")]
    BadProof,
    /// The hub's response is inconsistent or not the expected key.
    #[error("hub key rejected: {0}")]
    HubKey(String),
}

/// A one-time enrollment token: 256 random bits. The text form is [`TOKEN_PREFIX`] followed by
/// 64 lowercase hex digits. `Debug` does not show it; the memory is wiped on drop.
pub struct EnrollmentToken {
    secret: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnrollmentToken(<redacted>)")
    }
}

impl EnrollmentToken {
    /// A fresh token from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(secret.as_mut());
        Self { secret }
    }

    /// Parses the text form.
    pub fn parse(s: &str) -> Result<Self, EnrollError> {
        let hex_part = s
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(EnrollError::InvalidToken)?;
        let secret = hex::decode::<32>(hex_part).ok_or(EnrollError::InvalidToken)?;
        Ok(Self {
            secret: Zeroizing::new(secret),
        })
    }

    /// The text form, to show once to the admin.
    pub fn expose_secret(&self) -> String {
        format!("{TOKEN_PREFIX}{}", hex::encode(self.secret.as_ref()))
    }

    /// The hash the hub stores.
    pub fn hash(&self) -> TokenHash {
        let mut h = Sha256::new();
        h.update(TOKEN_HASH_DOMAIN);
        h.update(self.secret.as_ref());
        TokenHash(h.finalize().into())
    }
}

/// SHA-256 of a token (domain-separated), as 64 lowercase hex digits. Hubs may index stored
/// tokens by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// The hash of a presented token's text form.
    pub fn of(presented: &str) -> Result<Self, EnrollError> {
        EnrollmentToken::parse(presented).map(|t| t.hash())
    }

    /// Constant-time comparison.
    pub fn ct_matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({self})")
    }
}

impl TryFrom<String> for TokenHash {
    type Error = EnrollError;
    fn try_from(s: String) -> Result<Self, EnrollError> {
        hex::decode::<32>(&s)
            .map(Self)
            .ok_or(EnrollError::InvalidToken)
    }
}

impl From<TokenHash> for String {
    fn from(h: TokenHash) -> String {
        h.to_string()
    }
}

/// What the hub stores for an issued token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredToken {
    /// [`EnrollmentToken::hash`].
    pub hash: TokenHash,
    /// Expiry (unix seconds); the token is invalid from this second on.
    pub expires_at: i64,
    /// Set by [`StoredToken::redeem`]; the caller persists it.
    pub used: bool,
}

impl StoredToken {
    /// Issues a token valid for `ttl_secs` from `now`.
    pub fn issue(now: i64, ttl_secs: i64) -> (EnrollmentToken, StoredToken) {
        let token = EnrollmentToken::generate();
        let stored = StoredToken {
            hash: token.hash(),
            expires_at: now.saturating_add(ttl_secs),
            used: false,
        };
        (token, stored)
    }

    /// Checks a presented token: it must hash to the stored hash (compared in constant time),
    /// be unexpired and unused. Changes nothing.
    pub fn verify(&self, presented: &str, now: i64) -> Result<(), EnrollError> {
        let hash = TokenHash::of(presented)?;
        if !self.hash.ct_matches(&hash) {
            return Err(EnrollError::InvalidToken);
        }
        if now >= self.expires_at {
            return Err(EnrollError::TokenExpired {
                expires_at: self.expires_at,
                now,
            });
        }
        if self.used {
            return Err(EnrollError::TokenAlreadyUsed);
        }
        Ok(())
    }

    /// [`StoredToken::verify`], then marks the token used.
    pub fn redeem(&mut self, presented: &str, now: i64) -> Result<(), EnrollError> {
        self.verify(presented, now)?;
        self.used = true;
        Ok(())
    }
}

/// Site → hub: register this site's public key.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The enrollment token's text form.
    pub token: String,
    /// The site's id in the network.
    pub site_name: SiteId,
    /// The site's Ed25519 public key.
    pub public_key: PublicKey,
    /// Signature by the site's private key over the domain-separated token, site name and key.
    pub proof: SignatureHex,
}

impl fmt::Debug for EnrollRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("token", &"<redacted>")
            .field("site_name", &self.site_name)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

fn proof_bytes(token: &str, site: &SiteId, key: &PublicKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(PROOF_DOMAIN.len() + 160);
    out.extend_from_slice(PROOF_DOMAIN);
    for field in [
        token.as_bytes(),
        site.as_str().as_bytes(),
        key.verifying_key().as_bytes(),
    ] {
        out.extend_from_slice(&(field.len() as u64).to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

impl EnrollRequest {
    /// Builds and signs a request with the site's new key.
    pub fn new(
        token: &str,
        site_name: SiteId,
        key: &SigningKey,
    ) -> Result<Self, crate::keys::PublicKeyError> {
        let public_key = PublicKey::new(key.verifying_key())?;
        let proof = SignatureHex(
            key.sign(&proof_bytes(token, &site_name, &public_key))
                .to_bytes(),
        );
        Ok(Self {
            token: token.to_owned(),
            site_name,
            public_key,
            proof,
        })
    }

    /// Checks the proof of possession; returns the key to register.
    pub fn verify_proof(&self) -> Result<VerifyingKey, EnrollError> {
        let key = *self.public_key.verifying_key();
        key.verify_strict(
            &proof_bytes(&self.token, &self.site_name, &self.public_key),
            &Signature::from_bytes(&self.proof.0),
        )
        .map_err(|_| EnrollError::BadProof)?;
        Ok(key)
    }
}

/// Hub side of enrollment: checks the token (constant time), its expiry and single use, and
/// the proof of possession; only then marks the token used. Returns the site key to register.
pub fn enroll(
    stored: &mut StoredToken,
    request: &EnrollRequest,
    now: i64,
) -> Result<VerifyingKey, EnrollError> {
    stored.verify(&request.token, now)?;
    let key = request.verify_proof()?;
    stored.used = true;
    Ok(key)
}

/// Hub → site: enrollment accepted; pin this key.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollResponse {
    /// The site's id, as registered.
    pub site_id: SiteId,
    /// The hub's public key.
    pub hub_public_key: PublicKey,
    /// Its key id.
    pub hub_key_id: KeyId,
}

impl EnrollResponse {
    /// The hub's response for `site_id`.
    pub fn new(site_id: SiteId, hub_key: PublicKey) -> Self {
        Self {
            site_id,
            hub_key_id: hub_key.key_id(),
            hub_public_key: hub_key,
        }
    }

    /// Site side: the hub key to pin. Checks the key id agrees with the key and, if given, that
    /// the fingerprint equals one obtained out of band (`SHA256:…`, see
    /// [`crate::keys::fingerprint`]).
    pub fn pin(&self, expected_fingerprint: Option<&str>) -> Result<VerifyingKey, EnrollError> {
        let key = *self.hub_public_key.verifying_key();
        if key_id(&key) != self.hub_key_id {
            return Err(EnrollError::HubKey(
                "the key id does not match the key".into(),
            ));
        }
        if let Some(expected) = expected_fingerprint {
            let actual = self.hub_public_key.fingerprint();
            if !bool::from(actual.as_bytes().ct_eq(expected.trim().as_bytes())) {
                return Err(EnrollError::HubKey(format!(
                    "fingerprint {actual} differs from the expected {}",
                    expected.trim()
                )));
            }
        }
        Ok(key)
    }
}
