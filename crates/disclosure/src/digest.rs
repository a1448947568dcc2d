//! Order-independent, incremental, keyed digests of person sets.
//!
//! The digest of a set `S` is `(|S|, Σ_{p∈S} H_k(p) mod 2^256)` where `H_k` is a keyed PRF
//! (secret-prefix SHA-256 over one fixed-length block: `SHA-256(k ‖ label ‖ id)`). This is the
//! MSet-Add-Hash construction of Clarke, Devadas, van Dijk, Gassend and Suh, "Incremental
//! multiset hash functions and their application to memory integrity checking" (ASIACRYPT
//! 2003): it is independent of order, can be built incrementally and merged across chunks or
//! threads, and — because the key is secret — finding two different sets with the same digest
//! is infeasible. (Without a key an additive hash is open to generalized-birthday attacks;
//! that is why [`PersonSetDigest::of`] takes the [`SiteSecret`].)
//!
//! It is a *multiset* digest: pass each person once (a cohort is a set). The digest of the
//! disjoint union of two sets is [`PersonSetDigest::merge`] of their digests, so margins of a
//! breakdown can be computed from its cells.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secret::SiteSecret;

/// The digest of a set of person ids (any entity ids work: the digest only needs each counted
/// entity once). Compare digests to know whether two queries counted the same set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PersonSetDigest {
    count: u64,
    sum: [u64; 4],
}

impl PersonSetDigest {
    /// The digest of the empty set.
    pub const EMPTY: PersonSetDigest = PersonSetDigest {
        count: 0,
        sum: [0; 4],
    };

    /// The digest of `ids`, in any order. Each id must appear once.
    pub fn of(secret: &SiteSecret, ids: impl IntoIterator<Item = i64>) -> Self {
        let mut d = PersonSetDigester::new(secret);
        d.extend(ids);
        d.finish()
    }

    /// How many persons the set holds: the true count.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The digest of the disjoint union of the two sets.
    #[must_use]
    pub fn merge(&self, other: &PersonSetDigest) -> PersonSetDigest {
        let mut sum = self.sum;
        add256(&mut sum, &other.sum);
        PersonSetDigest {
            count: self.count.wrapping_add(other.count),
            sum,
        }
    }

    /// A canonical 40-byte encoding (count then sum, little-endian).
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut b = [0u8; 40];
        b[..8].copy_from_slice(&self.count.to_le_bytes());
        for (i, limb) in self.sum.iter().enumerate() {
            b[8 + 8 * i..16 + 8 * i].copy_from_slice(&limb.to_le_bytes());
        }
        b
    }

    /// Hex of [`Self::to_bytes`]; used as a ledger key.
    pub fn to_hex(&self) -> String {
        self.to_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for PersonSetDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex = self.to_hex();
        write!(f, "PersonSetDigest(count={}, {}…)", self.count, &hex[8..24])
    }
}

/// Builds a [`PersonSetDigest`] one id at a time.
#[derive(Clone)]
pub struct PersonSetDigester {
    prefix: Sha256,
    acc: PersonSetDigest,
}

impl PersonSetDigester {
    /// A digester for the site keyed by `secret`.
    pub fn new(secret: &SiteSecret) -> Self {
        // One full 64-byte block of key material, so each id costs one compression.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&secret.element_key);
        let label = b"qiao-disclosure/v1/person";
        block[32..32 + label.len()].copy_from_slice(label);
        let mut prefix = Sha256::new();
        prefix.update(block);
        PersonSetDigester {
            prefix,
            acc: PersonSetDigest::EMPTY,
        }
    }

    /// Adds one person.
    pub fn add(&mut self, id: i64) {
        let mut h = self.prefix.clone();
        h.update(id.to_le_bytes());
        let out = h.finalize();
        let mut x = [0u64; 4];
        for (i, limb) in x.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&out[8 * i..8 * i + 8]);
            *limb = u64::from_le_bytes(b);
        }
        add256(&mut self.acc.sum, &x);
        self.acc.count = self.acc.count.wrapping_add(1);
    }

    /// Adds many persons.
    pub fn extend(&mut self, ids: impl IntoIterator<Item = i64>) {
        for id in ids {
            self.add(id);
        }
    }

    /// The digest so far.
    pub fn finish(&self) -> PersonSetDigest {
        self.acc
    }
}

fn add256(acc: &mut [u64; 4], x: &[u64; 4]) {
    let mut carry = 0u64;
    for (a, b) in acc.iter_mut().zip(x) {
        let (s1, c1) = a.overflowing_add(*b);
        let (s2, c2) = s1.overflowing_add(carry);
        *a = s2;
        carry = u64::from(c1) + u64::from(c2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SiteSecret {
        SiteSecret::from_bytes(&[7u8; 32]).unwrap()
    }

    #[test]
    fn order_and_chunking_do_not_matter() {
        let s = secret();
        let a = PersonSetDigest::of(&s, [5, 1, 9, -3, 1 << 40]);
        let b = PersonSetDigest::of(&s, [1 << 40, -3, 9, 1, 5]);
        let c = PersonSetDigest::of(&s, [9, 5]).merge(&PersonSetDigest::of(&s, [-3, 1 << 40, 1]));
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.count(), 5);
        assert_ne!(a, PersonSetDigest::of(&s, [5, 1, 9, -3]));
    }

    #[test]
    fn keyed() {
        let other = SiteSecret::from_bytes(&[8u8; 32]).unwrap();
        assert_ne!(
            PersonSetDigest::of(&secret(), [1, 2, 3]),
            PersonSetDigest::of(&other, [1, 2, 3])
        );
    }
}
