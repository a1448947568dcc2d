//! Accounts of the hub, the portal and a site's own pages: the password policy, argon2id
//! hashing with stated parameters, and the sign-in limiter. See the README.

mod limiter;
mod password;

pub use limiter::{Attempt, Limited, LimitedBy, Limits, SignInLimiter};
pub use password::{
    burn_verify, check_password, hash_password, hash_unchecked, verify_password, PasswordError,
    ARGON2_M_KIB, ARGON2_P, ARGON2_T, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS,
};
