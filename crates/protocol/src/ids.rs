//! Identifiers carried on the wire. Each has exactly one textual form and a bounded, restricted
//! alphabet, so an identifier field cannot be used to carry free text.

use std::fmt;
use std::str::FromStr;

use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::hex;

/// Longest name-like identifier (site, project, user), in bytes.
pub const MAX_NAME_ID_LEN: usize = 128;

/// An identifier that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// A hex identifier of the wrong length or with characters other than `0-9a-f`.
    #[error("{what} must be {expected_len} lowercase hex digits")]
    Hex {
        /// Which identifier.
        what: &'static str,
        /// Number of hex digits expected.
        expected_len: usize,
    },
    /// A name-like identifier that is empty, too long, or has a disallowed character.
    #[error(
        "{what} must be 1 to {MAX_NAME_ID_LEN} characters of A-Z a-z 0-9 . _ - @ +, starting with a letter or digit"
    )]
    Name {
        /// Which identifier.
        what: &'static str,
    },
}

macro_rules! hex_id {
    ($(#[$meta:meta])* $name:ident, $len:expr, $what:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name([u8; $len]);

        impl $name {
            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Parses exactly the lowercase hex form produced by `Display`.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                hex::decode::<$len>(s).map(Self).ok_or(IdError::Hex {
                    what: $what,
                    expected_len: 2 * $len,
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.to_string()
            }
        }
    };
}

hex_id!(
    /// A job: 128 random bits, written as 32 lowercase hex digits.
    JobId,
    16,
    "job id"
);
hex_id!(
    /// A message nonce: 128 random bits, written as 32 lowercase hex digits.
    Nonce,
    16,
    "nonce"
);
hex_id!(
    /// A signing key's id: the first 128 bits of the SHA-256 fingerprint of its public key
    /// (see [`crate::keys::fingerprint`]), written as 32 lowercase hex digits.
    KeyId,
    16,
    "key id"
);

impl JobId {
    /// A fresh random job id (from the operating system's CSPRNG).
    pub fn random() -> Self {
        let mut b = [0u8; 16];
        OsRng.fill_bytes(&mut b);
        Self(b)
    }
}

impl Nonce {
    /// A fresh random nonce (from the operating system's CSPRNG).
    pub fn random() -> Self {
        let mut b = [0u8; 16];
        OsRng.fill_bytes(&mut b);
        Self(b)
    }
}

fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_ID_LEN
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'@' | b'+'))
}

macro_rules! name_id {
    ($(#[$meta:meta])* $name:ident, $what:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `s`: 1 to [`MAX_NAME_ID_LEN`] bytes of `A-Z a-z 0-9 . _ - @ +`,
            /// starting with a letter or digit.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                if valid_name(&s) {
                    Ok(Self(s))
                } else {
                    Err(IdError::Name { what: $what })
                }
            }

            /// The identifier.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

name_id!(
    /// A site (hospital) in the network.
    SiteId,
    "site id"
);
name_id!(
    /// An approved project under which queries run.
    ProjectId,
    "project id"
);
name_id!(
    /// A user account at the hub.
    UserId,
    "user id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids_have_one_form() {
        let id = JobId::random();
        let s = id.to_string();
        assert_eq!(s.len(), 32);
        assert_eq!(JobId::parse(&s), Ok(id));
        assert!(JobId::parse(&s.to_uppercase()).is_err() || s.bytes().all(|c| c.is_ascii_digit()));
        assert!(JobId::parse("").is_err());
        assert!(JobId::parse("0123456789abcdef0123456789abcdef0").is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<JobId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<JobId>("12").is_err());
    }

    #[test]
    fn names_are_restricted() {
        assert!(SiteId::new("st-olav.hospital_1").is_ok());
        assert!(UserId::new("alice@example.org").is_ok());
        for bad in ["", "-x", "a b", "a/b", "é", "a\nb", &"x".repeat(129)] {
            assert!(SiteId::new(bad).is_err(), "{bad:?}");
            assert!(serde_json::from_value::<SiteId>(serde_json::json!(bad)).is_err());
        }
        assert!(SiteId::new("x".repeat(128)).is_ok());
    }
}
