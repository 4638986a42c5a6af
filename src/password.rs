//! Operators' passwords: generated once (shown once), stored only as an Argon2id PHC string,
//! verified by the `argon2` crate (RustCrypto), whose comparison of the derived hash is constant
//! time.
//!
//! Not a request-path stage; the dashboard's login and `operator create|reset-password` use it.
//!
//! Parameters ([`PARAMS`]): Argon2id, m = 19,456 KiB (19 MiB), t = 2 passes, p = 1 lane, a
//! 16-byte random salt, a 32-byte hash — OWASP's recommended minimum for Argon2id (Password
//! Storage Cheat Sheet). They are written into every stored string
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), so a later change of [`PARAMS`] still
//! verifies the passwords stored before it. One hash takes ≈ 20–40 ms of one core and 19 MiB,
//! which is why the dashboard runs at most a few at once (`admin::dashboard`).
//!
//! A hand-written KDF or comparison would be the one piece of this code nobody could review
//! with confidence; the crate is the reference implementation of RFC 9106 with the PHC string
//! format, constant-time verification and test vectors.

use std::fmt;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore as _;

/// Memory cost in KiB (19 MiB).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Passes over the memory.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;
/// Characters of a generated password (base64url of 18 random bytes: 144 bits).
pub const GENERATED_CHARS: usize = 24;
/// Longest password verified: a longer one is refused after the same work (a bound on what a
/// login form can make the KDF read).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a password could not be hashed or a stored hash read.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The parameters or the salt were refused by the crate (never expected: they are fixed).
    #[error("cannot hash the password: {0}")]
    Hash(String),
    /// The stored string is not an Argon2 PHC string.
    #[error("the stored password hash is not a valid PHC string")]
    Stored,
}

/// A password in memory: `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password that was typed (a login form).
    pub fn new(text: String) -> Password {
        Password(text)
    }

    /// A fresh password of [`GENERATED_CHARS`] characters from the thread-local CSPRNG.
    pub fn generate() -> Password {
        let mut bytes = [0u8; 18];
        rand::rng().fill_bytes(&mut bytes);
        Password(base64url(&bytes))
    }

    /// The text: only to show it once or to hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("…")
    }
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 3);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            let index = usize::try_from((n >> (18 - 6 * i)) & 63).unwrap_or(0);
            out.push(char::from(ALPHABET[index]));
        }
    }
    out
}

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, Some(32))
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The PHC string of `password` under [`MEMORY_KIB`], [`ITERATIONS`], [`PARALLELISM`] and a
/// fresh 16-byte salt.
pub fn hash(password: &Password) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    hasher()?
        .hash_password(password.0.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC string (the parameters are the string's own).
/// A string that is not a PHC string is an error, not a mismatch; an overlong password is a
/// mismatch (after the same work as any other, on the dummy hash).
pub fn verify(password: &Password, stored: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(stored).map_err(|_| PasswordError::Stored)?;
    let too_long = password.0.len() > MAX_PASSWORD_BYTES;
    let presented = if too_long { "" } else { password.0.as_str() };
    let ok = hasher()?
        .verify_password(presented.as_bytes(), &parsed)
        .is_ok();
    Ok(ok && !too_long)
}

/// The same work as [`verify`] for a name without an account (or a disabled one): a login's
/// time does not tell whether the account exists. Always `false`.
pub fn verify_nothing(password: &Password) -> bool {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let stored = DUMMY.get_or_init(|| hash(&Password::generate()).ok());
    if let Some(stored) = stored {
        let _ = verify(password, stored);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let p = Password::generate();
        assert_eq!(p.expose().len(), GENERATED_CHARS);
        let stored = hash(&p).unwrap();
        assert!(verify(&p, &stored).unwrap());
        assert!(!verify(&Password::new(format!("{}x", p.expose())), &stored).unwrap());
        assert!(!verify(&Password::new(String::new()), &stored).unwrap());
        // Two hashes of one password differ (fresh salt) and both verify.
        let again = hash(&p).unwrap();
        assert_ne!(stored, again);
        assert!(verify(&p, &again).unwrap());
    }

    #[test]
    fn the_stored_string_names_argon2id_and_the_parameters() {
        let stored = hash(&Password::new("correct horse battery staple".into())).unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        let parsed = PasswordHash::new(&stored).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert_eq!(parsed.salt.map(|s| s.as_str().len()), Some(22), "16 bytes");
        assert_eq!(parsed.hash.map(|h| h.len()), Some(32));
        assert!(!stored.contains("correct horse"));
    }

    #[test]
    fn a_hash_made_with_other_parameters_still_verifies() {
        let p = Password::new("older".into());
        let params = Params::new(8, 1, 1, None).unwrap();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let old = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"older", &salt)
            .unwrap()
            .to_string();
        assert!(verify(&p, &old).unwrap());
        assert!(!verify(&Password::new("newer".into()), &old).unwrap());
    }

    #[test]
    fn bad_stored_strings_and_long_passwords() {
        assert!(matches!(
            verify(&Password::new("x".into()), "not a hash"),
            Err(PasswordError::Stored)
        ));
        let long = Password::new("a".repeat(MAX_PASSWORD_BYTES + 1));
        let stored = hash(&long).unwrap();
        assert!(!verify(&long, &stored).unwrap());
        assert!(!verify_nothing(&long));
    }

    #[test]
    fn debug_and_display_hide_the_password() {
        let p = Password::new("hunter2-hunter2".into());
        assert_eq!(format!("{p:?} {p}"), "Password(…) …");
    }
}
