//! Passwords (the shared policy, argon2id), bearer tokens and their lifetimes, the sign-in
//! limiter (all from `qiao-accounts`, written once for the hub and the sites).

pub use qiao_accounts::{
    burn_verify, check_password, hash_password, verify_password, Attempt, Limited, LimitedBy,
    Limits, PasswordError, SignInLimiter, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS,
};

/// Prefix of session tokens.
pub const SESSION_PREFIX: &str = "qiao-s-";
/// Prefix of API tokens.
pub const API_PREFIX: &str = "qiao-t-";
/// Lifetime of an API token when none is asked for, in days.
pub const DEFAULT_TOKEN_DAYS: u32 = 30;
/// Longest lifetime of an API token, in days.
pub const MAX_TOKEN_DAYS: u32 = 365;

/// The expiry of an API token created at `now` for `days` (default [`DEFAULT_TOKEN_DAYS`]);
/// `Err` with a message if `days` is 0 or above [`MAX_TOKEN_DAYS`].
pub fn token_expiry(now: i64, days: Option<u32>) -> Result<i64, String> {
    let days = days.unwrap_or(DEFAULT_TOKEN_DAYS);
    if !(1..=MAX_TOKEN_DAYS).contains(&days) {
        return Err(format!(
            "expires_in_days must be between 1 and {MAX_TOKEN_DAYS} (default {DEFAULT_TOKEN_DAYS})"
        ));
    }
    Ok(now.saturating_add(i64::from(days) * 86_400))
}
