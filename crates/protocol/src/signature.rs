//! An Ed25519 signature as it travels: 128 lowercase hex digits (envelopes, enrollment proofs,
//! audit heads).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hex;

/// An Ed25519 signature on the wire: 128 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SignatureHex(pub [u8; 64]);

impl fmt::Display for SignatureHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl fmt::Debug for SignatureHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignatureHex({self})")
    }
}

/// A signature that is not 128 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a signature must be 128 lowercase hex digits")]
pub struct SignatureEncodingError;

impl TryFrom<String> for SignatureHex {
    type Error = SignatureEncodingError;
    fn try_from(s: String) -> Result<Self, SignatureEncodingError> {
        hex::decode::<64>(&s)
            .map(Self)
            .ok_or(SignatureEncodingError)
    }
}

impl From<SignatureHex> for String {
    fn from(s: SignatureHex) -> String {
        s.to_string()
    }
}
