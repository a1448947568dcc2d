//! Alliance sign-in at a site's pages: a login assertion the hub signs for one site.
//!
//! A signed-in portal user asks the hub for an assertion naming the site (the audience), the
//! user, the user's alliance role, a random nonce, and a lifetime of at most
//! [`MAX_LIFETIME_SECS`]. The browser carries it to the site's pages, which check it against
//! the hub key the site pinned at enrollment ([`open_login`]) and refuse a nonce seen before
//! ([`SeenLogins`]). The site, not the hub, decides what the user may do there: the assertion
//! only says who the user is.
//!
//! Wire form: `HEX(claims JSON).HEX(ed25519 signature)`; the signature covers a domain tag and
//! the claims bytes, so no other signed hub message can be replayed as a login.

use std::collections::HashMap;

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::hex;
use crate::ids::{Nonce, SiteId, UserId};
use crate::message::UserRole;

/// The longest lifetime a site accepts (2 minutes).
pub const MAX_LIFETIME_SECS: i64 = 120;
/// Clock difference tolerated between hub and site for `issued_at`.
pub const CLOCK_SKEW_SECS: i64 = 30;
/// Largest assertion accepted (bytes of its wire form).
pub const MAX_ASSERTION_BYTES: usize = 4096;

const DOMAIN: &[u8] = b"qiao-login-assertion-v1\0";

/// What the hub asserts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginClaims {
    /// The one site whose pages may accept it.
    pub audience: SiteId,
    /// The alliance user.
    pub user: UserId,
    /// Their alliance role (informative: the site grants its own role).
    pub role: UserRole,
    /// Single use.
    pub nonce: Nonce,
    /// When the hub signed it (unix seconds).
    pub issued_at: i64,
    /// When it stops being valid (unix seconds).
    pub expires_at: i64,
}

/// Why an assertion is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoginRefused {
    /// Not of the wire form.
    #[error("malformed login assertion")]
    Malformed,
    /// The signature is not the pinned hub key's.
    #[error("login assertion not signed by the pinned hub key")]
    Forged,
    /// Made for another site.
    #[error("login assertion is for site {0}, not this site")]
    WrongAudience(SiteId),
    /// Past its expiry.
    #[error("login assertion expired")]
    Expired,
    /// Issued in the future, or valid for longer than allowed.
    #[error("login assertion lifetime is not within 2 minutes of now")]
    BadLifetime,
    /// Its nonce was used before.
    #[error("login assertion already used")]
    Replayed,
}

fn signed_bytes(claims_json: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(DOMAIN.len() + claims_json.len());
    b.extend_from_slice(DOMAIN);
    b.extend_from_slice(claims_json);
    b
}

/// Signs `claims` with the hub's key: the wire form.
pub fn seal_login(key: &SigningKey, claims: &LoginClaims) -> String {
    // Serializing a struct of ids and integers cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let sig = key.sign(&signed_bytes(&json));
    format!("{}.{}", hex::encode(&json), hex::encode(&sig.to_bytes()))
}

fn decode_var(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(hex::decode::<1>)
                .map(|b| b[0])
        })
        .collect()
}

/// Checks an assertion for site `me` at time `now` against the pinned hub key: signature,
/// audience, lifetime. (The nonce is checked by [`SeenLogins`].)
pub fn open_login(
    assertion: &str,
    hub_key: &VerifyingKey,
    me: &SiteId,
    now: i64,
) -> Result<LoginClaims, LoginRefused> {
    if assertion.len() > MAX_ASSERTION_BYTES {
        return Err(LoginRefused::Malformed);
    }
    let (body, sig) = assertion
        .trim()
        .split_once('.')
        .ok_or(LoginRefused::Malformed)?;
    let json = decode_var(body).ok_or(LoginRefused::Malformed)?;
    let sig: [u8; 64] = hex::decode(sig).ok_or(LoginRefused::Malformed)?;
    hub_key
        .verify(&signed_bytes(&json), &Signature::from_bytes(&sig))
        .map_err(|_| LoginRefused::Forged)?;
    let claims: LoginClaims = serde_json::from_slice(&json).map_err(|_| LoginRefused::Malformed)?;
    if &claims.audience != me {
        return Err(LoginRefused::WrongAudience(claims.audience));
    }
    if now >= claims.expires_at {
        return Err(LoginRefused::Expired);
    }
    let lifetime = claims.expires_at - claims.issued_at;
    if claims.issued_at > now + CLOCK_SKEW_SECS || !(1..=MAX_LIFETIME_SECS).contains(&lifetime) {
        return Err(LoginRefused::BadLifetime);
    }
    Ok(claims)
}

/// The nonces a site's pages have accepted, kept until their assertions expire. Assertions
/// issued before the pages started are refused, so a restart cannot reopen a used nonce.
#[derive(Debug)]
pub struct SeenLogins {
    since: i64,
    seen: HashMap<Nonce, i64>,
}

impl SeenLogins {
    /// Accepts assertions issued at or after `started_at` (unix seconds).
    pub fn new(started_at: i64) -> Self {
        Self {
            since: started_at,
            seen: HashMap::new(),
        }
    }

    /// Records `claims`' nonce: `Replayed` if it was seen before or the assertion predates the
    /// start.
    pub fn admit(&mut self, claims: &LoginClaims, now: i64) -> Result<(), LoginRefused> {
        self.seen.retain(|_, exp| *exp > now);
        if claims.issued_at < self.since || self.seen.contains_key(&claims.nonce) {
            return Err(LoginRefused::Replayed);
        }
        self.seen.insert(claims.nonce, claims.expires_at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(site: &str, now: i64) -> LoginClaims {
        LoginClaims {
            audience: site.parse().unwrap(),
            user: UserId::new("inv.a".to_owned()).unwrap(),
            role: UserRole::SiteInvestigator,
            nonce: Nonce::random(),
            issued_at: now,
            expires_at: now + 120,
        }
    }

    #[test]
    fn a_fresh_assertion_opens_once_and_only_at_its_site() {
        let key = crate::keys::generate_signing_key();
        let hub = key.verifying_key();
        let me: SiteId = "site_a".parse().unwrap();
        let c = claims("site_a", 1_000);
        let a = seal_login(&key, &c);
        assert_eq!(open_login(&a, &hub, &me, 1_010), Ok(c.clone()));
        let mut seen = SeenLogins::new(900);
        assert_eq!(seen.admit(&c, 1_010), Ok(()));
        assert_eq!(seen.admit(&c, 1_011), Err(LoginRefused::Replayed));
        // Issued before the pages started.
        assert_eq!(
            SeenLogins::new(1_001).admit(&c, 1_010),
            Err(LoginRefused::Replayed)
        );
        let other: SiteId = "site_b".parse().unwrap();
        assert_eq!(
            open_login(&a, &hub, &other, 1_010),
            Err(LoginRefused::WrongAudience(me))
        );
    }

    #[test]
    fn expired_forged_long_lived_and_malformed_assertions_are_refused() {
        let key = crate::keys::generate_signing_key();
        let hub = key.verifying_key();
        let me: SiteId = "site_a".parse().unwrap();
        let c = claims("site_a", 1_000);
        let a = seal_login(&key, &c);
        assert_eq!(open_login(&a, &hub, &me, 1_120), Err(LoginRefused::Expired));
        // Another key (a hub the site did not pin).
        let other = crate::keys::generate_signing_key();
        assert_eq!(
            open_login(&seal_login(&other, &c), &hub, &me, 1_010),
            Err(LoginRefused::Forged)
        );
        // Claims changed after signing (a longer expiry): the signature no longer matches.
        let (_, sig) = a.split_once('.').unwrap();
        let mut longer = c.clone();
        longer.expires_at += 3_600;
        let body = hex::encode(&serde_json::to_vec(&longer).unwrap());
        assert_eq!(
            open_login(&format!("{body}.{sig}"), &hub, &me, 1_010),
            Err(LoginRefused::Forged)
        );
        // Signed by the hub but valid for longer than 2 minutes, or issued in the future.
        assert_eq!(
            open_login(&seal_login(&key, &longer), &hub, &me, 1_010),
            Err(LoginRefused::BadLifetime)
        );
        let mut future = c.clone();
        future.issued_at = 2_000;
        future.expires_at = 2_100;
        assert_eq!(
            open_login(&seal_login(&key, &future), &hub, &me, 1_010),
            Err(LoginRefused::BadLifetime)
        );
        for bad in ["", ".", "zz.zz", &a[..a.len() - 2], &"a".repeat(5000)] {
            assert_eq!(
                open_login(bad, &hub, &me, 1_010),
                Err(LoginRefused::Malformed),
                "{bad:.20}"
            );
        }
    }
}
