//! The password policy and argon2id hashing.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted, in bytes (argon2 hashes anything, but a megabyte password is a
/// denial of service, not a secret).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// argon2id memory cost in KiB (19 MiB).
pub const ARGON2_M_KIB: u32 = 19_456;
/// argon2id iterations.
pub const ARGON2_T: u32 = 2;
/// argon2id lanes.
pub const ARGON2_P: u32 = 1;

/// Commonly used passwords and the words they are built from (lower case). A password equal to
/// one of them, or one of them followed only by digits and punctuation ("Password2024!"), is
/// refused. Short ones are here for the second rule.
const COMMON: &[&str] = &[
    "password",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "qwerty",
    "qwertyuiop",
    "qwerty123",
    "asdfghjkl",
    "zxcvbnm",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "1qaz2wsx",
    "qazwsx",
    "abc123",
    "abcdef",
    "abcdefgh",
    "123456",
    "1234567",
    "12345678",
    "123456789",
    "1234567890",
    "0987654321",
    "111111",
    "000000",
    "123123",
    "654321",
    "iloveyou",
    "letmein",
    "welcome",
    "welcome1",
    "admin",
    "administrator",
    "root",
    "login",
    "master",
    "monkey",
    "dragon",
    "football",
    "baseball",
    "basketball",
    "soccer",
    "sunshine",
    "princess",
    "shadow",
    "superman",
    "batman",
    "trustno1",
    "whatever",
    "freedom",
    "starwars",
    "pokemon",
    "michael",
    "jennifer",
    "charlie",
    "computer",
    "internet",
    "changeme",
    "default",
    "secret",
    "hello",
    "hellohello",
    "loveme",
    "lovely",
    "flower",
    "summer",
    "winter",
    "spring",
    "autumn",
    "hospital",
    "doctor",
    "patient",
    "research",
    "qiao",
    "omop",
    "passwordpassword",
    "password1234",
    "password12345",
    "password123456",
    "qwerty123456",
    "qwertyuiop123",
    "123456789012",
    "1234567890123",
    "12345678910",
    "iloveyou1234",
    "letmein12345",
    "welcome12345",
    "changeme1234",
    "administrator1",
    "correcthorsebatterystaple",
    "correct horse battery staple",
    "woaini",
    "woaini1314",
    "woaini520",
    "5201314",
    "1314520",
    "aini1314",
    "zhang",
    "wang",
    "li",
    "asdasd",
    "zaq12wsx",
    "!qaz2wsx",
    "q1w2e3r4",
    "q1w2e3r4t5y6",
    "aa123456",
    "a123456",
    "a12345678",
    "abcd1234",
    "abcd12345678",
];

/// Why a password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Too short or too long.
    #[error("a password must be at least {MIN_PASSWORD_CHARS} characters and at most {MAX_PASSWORD_BYTES} bytes")]
    Length,
    /// Only whitespace.
    #[error("a password must not be only spaces")]
    Whitespace,
    /// The user name, or containing it.
    #[error("a password must not contain the user name")]
    ContainsUserName,
    /// A commonly used password (or one built from a common word and digits).
    #[error("this password is too common; choose a longer phrase of your own")]
    Common,
    /// One character repeated.
    #[error("a password must not be one character repeated")]
    Repeated,
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Checks `password` for account `user` against the policy (see the crate docs).
pub fn check_password(user: &str, password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::Length);
    }
    if password.chars().all(char::is_whitespace) {
        return Err(PasswordError::Whitespace);
    }
    let lower = password.to_lowercase();
    let name = user.trim().to_lowercase();
    if name.chars().count() >= 3 && lower.contains(&name) {
        return Err(PasswordError::ContainsUserName);
    }
    let mut chars = password.chars();
    if let Some(first) = chars.next() {
        if chars.all(|c| c == first) {
            return Err(PasswordError::Repeated);
        }
    }
    let base = lower.trim_end_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation());
    let squeezed: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    if COMMON
        .iter()
        .any(|c| *c == lower || *c == base || *c == squeezed)
    {
        return Err(PasswordError::Common);
    }
    Ok(())
}

fn argon2() -> Argon2<'static> {
    let params =
        Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).unwrap_or_else(|_| Params::default());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks the policy for `user`, then hashes with argon2id (the stated parameters, a random
/// salt) into a PHC string. Slow on purpose: call it off async threads.
pub fn hash_password(user: &str, password: &str) -> Result<String, PasswordError> {
    check_password(user, password)?;
    hash_unchecked(password)
}

/// Hashes without the policy (tests and fixtures with fixed passwords).
pub fn hash_unchecked(password: &str) -> Result<String, PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::Length);
    }
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Checks a password against a stored PHC string (the parameters are read from the string).
pub fn verify_password(phc: &str, password: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(h) => argon2().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// Spends the same effort as [`verify_password`] for an unknown user, so that response time
/// does not tell which user names exist.
pub fn burn_verify(password: &str) {
    // A valid argon2id hash with the stated parameters of a random password.
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0Lw3m1uZ6yG8a5WmJm1d3n3mGq1fJm7h3m8v0c7yD0M";
    let _ = verify_password(DUMMY, password);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_refuses_short_whitespace_username_common_and_repeated() {
        assert_eq!(
            check_password("ada", "short pw"),
            Err(PasswordError::Length)
        );
        assert_eq!(
            check_password("ada", "elevenchars"),
            Err(PasswordError::Length)
        );
        assert_eq!(
            check_password("ada", &"x".repeat(1025)),
            Err(PasswordError::Length)
        );
        assert_eq!(
            check_password("ada", "              "),
            Err(PasswordError::Whitespace)
        );
        assert_eq!(
            check_password("lovelace", "my name is Lovelace!"),
            Err(PasswordError::ContainsUserName)
        );
        for common in [
            "password1234",
            "Password2024!",
            "qwertyuiop123",
            "123456789012",
            "Woaini1314!!",
        ] {
            assert_eq!(
                check_password("ada", common),
                Err(PasswordError::Common),
                "{common}"
            );
        }
        assert_eq!(
            check_password("ada", "aaaaaaaaaaaaaaaa"),
            Err(PasswordError::Repeated)
        );
        assert_eq!(check_password("ada", "correct horse battery"), Ok(()));
        assert_eq!(check_password("ada", "长城长城长城长城长城长城"), Ok(()));
    }

    #[test]
    fn hashes_state_their_parameters_and_verify() {
        let h = hash_password("ada", "correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse batterz"));
        assert!(!verify_password("not a hash", "correct horse battery"));
    }
}
