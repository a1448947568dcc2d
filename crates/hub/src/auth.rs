//! Passwords (argon2id), bearer tokens and the login rate limit.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Failed logins per (user, address) within [`LOGIN_WINDOW`] before logins are refused.
pub const MAX_LOGIN_FAILURES: usize = 5;
/// The login rate-limit window.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Prefix of session tokens.
pub const SESSION_PREFIX: &str = "qiao-s-";
/// Prefix of API tokens.
pub const API_PREFIX: &str = "qiao-t-";

/// Why a password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Too short or too long.
    #[error("a password must be at least {MIN_PASSWORD_CHARS} characters and at most {MAX_PASSWORD_BYTES} bytes")]
    Length,
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Hashes a password with argon2id (default parameters, random salt) into a PHC string.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::Length);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Checks a password against a stored PHC string.
pub fn verify_password(phc: &str, password: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the same effort as [`verify_password`] for an unknown user, so that response time
/// does not tell which user names exist.
pub fn burn_verify(password: &str) {
    // A fixed valid hash of a random password (argon2id, default parameters).
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0Lw3m1uZ6yG8a5WmJm1d3n3mGq1fJm7h3m8v0c7yD0M";
    let _ = verify_password(DUMMY, password);
}

/// Refuses logins for a (user, address) after [`MAX_LOGIN_FAILURES`] failures within
/// [`LOGIN_WINDOW`].
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<(String, IpAddr), VecDeque<Instant>>>,
}

/// Most (user, address) pairs tracked; the oldest are dropped past it.
const MAX_TRACKED: usize = 100_000;

impl LoginLimiter {
    /// `Err(seconds to wait)` if the pair is currently limited.
    pub fn check(&self, user: &str, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(q) = map.get_mut(&(user.to_owned(), ip)) else {
            return Ok(());
        };
        while q
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= LOGIN_WINDOW)
        {
            q.pop_front();
        }
        if q.len() >= MAX_LOGIN_FAILURES {
            let oldest = q.front().copied().unwrap_or(now);
            let wait = LOGIN_WINDOW.saturating_sub(now.saturating_duration_since(oldest));
            return Err(wait.as_secs().max(1));
        }
        Ok(())
    }

    /// Records a failed login.
    pub fn failure(&self, user: &str, ip: IpAddr, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED {
            map.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < LOGIN_WINDOW)
            });
        }
        let q = map.entry((user.to_owned(), ip)).or_default();
        q.push_back(now);
        while q.len() > MAX_LOGIN_FAILURES {
            q.pop_front();
        }
    }

    /// Forgets the failures of a pair (after a successful login).
    pub fn success(&self, user: &str, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&(user.to_owned(), ip));
    }
}
