//! Key material: partner keys (`pgk_…`, sent in the `PartnerAuth` header) and callback keys
//! (`pgc_…`).
//!
//! A key is generated once, shown once, and from then on only its SHA-256 hash and its display
//! prefix (first 8 characters, e.g. `pgk_1a2b`) are kept. [`Secret`] holds the plaintext while it
//! must exist and never prints more than that prefix.

use std::fmt;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Number of random bytes in a generated key (256 bits).
const KEY_BYTES: usize = 32;

/// Length of the display prefix: the 4-character kind prefix plus 4 characters of the key.
pub const DISPLAY_PREFIX_LEN: usize = 8;

/// Key material. `Debug` and `Display` print only the display prefix, e.g. `Secret(pgk_1a2b…)`;
/// [`Secret::expose`] is the only way to the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps key text, e.g. a key a caller presented, so that it cannot be logged by accident.
    pub fn new(text: String) -> Self {
        Secret(text)
    }

    /// The plaintext key. Call it only where the key is sent or hashed.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only keys in our own format show their prefix; anything else could be short enough
        // for 8 characters to be most of it.
        let ours = KeyKind::of(&self.0).is_some()
            || self.0.starts_with(OPERATOR_TOKEN_PREFIX)
            || self.0.starts_with(PICKUP_SECRET_PREFIX);
        if ours && self.0.len() >= 16 {
            write!(f, "Secret({}…)", display_prefix(&self.0))
        } else {
            f.write_str("Secret(…)")
        }
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a key is for. Stored as `partner` / `callback` in `api_keys.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// The key a partner's BSS sends in `PartnerAuth/ApiKey`; prefix `pgk_`.
    Partner,
    /// The key of the callback direction (`CallbackAuth`); prefix `pgc_`.
    Callback,
}

impl KeyKind {
    /// Both kinds.
    pub const ALL: [KeyKind; 2] = [KeyKind::Partner, KeyKind::Callback];

    /// The prefix every key of this kind starts with.
    pub const fn prefix(self) -> &'static str {
        match self {
            KeyKind::Partner => "pgk_",
            KeyKind::Callback => "pgc_",
        }
    }

    /// The name stored in the database (`api_keys.kind`).
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyKind::Partner => "partner",
            KeyKind::Callback => "callback",
        }
    }

    /// Parses the database name written by [`KeyKind::as_str`].
    pub fn from_db(s: &str) -> Option<Self> {
        KeyKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind whose prefix `key` starts with, if any.
    pub fn of(key: &str) -> Option<Self> {
        KeyKind::ALL
            .into_iter()
            .find(|k| key.starts_with(k.prefix()))
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fresh key: the kind's prefix and 64 lowercase hex characters of 32 bytes from the
/// thread-local CSPRNG (`rand::rng()`: ChaCha12 seeded from the operating system, reseeded
/// periodically). 68 characters of `[a-z0-9_]`, so it satisfies the contract's `ApiKey` type
/// (`[A-Za-z0-9_-]+`, 16..128 characters).
pub fn generate(kind: KeyKind) -> Secret {
    generate_prefixed(kind.prefix())
}

/// The prefix of operators' API tokens (`operator token create`).
pub const OPERATOR_TOKEN_PREFIX: &str = "pgo_";

/// A fresh operator API token: like a key ([`generate`]), with the prefix `pgo_`; stored as its
/// [`hash`] and [`display_prefix`] only, shown once.
pub fn generate_operator_token() -> Secret {
    generate_prefixed(OPERATOR_TOKEN_PREFIX)
}

/// The prefix of enrollment pickup secrets (`RequestEnrollment`'s answer).
pub const PICKUP_SECRET_PREFIX: &str = "pge_";

/// A fresh enrollment pickup secret: like a key ([`generate`]), with the prefix `pge_`; stored
/// as its [`hash`] only, shown once, to the applicant.
pub fn generate_pickup_secret() -> Secret {
    generate_prefixed(PICKUP_SECRET_PREFIX)
}

/// A fresh enrollment id: `enr_` and 32 lowercase hex characters of 16 random bytes (not a
/// secret: the pickup secret guards the enrollment; random so that ids say nothing about how
/// many were filed).
pub fn generate_enrollment_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let mut text = String::with_capacity(36);
    text.push_str("enr_");
    for b in bytes {
        text.push(hex_digit(b >> 4));
        text.push(hex_digit(b & 0x0f));
    }
    text
}

fn generate_prefixed(prefix: &str) -> Secret {
    let mut bytes = [0u8; KEY_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    let mut text = String::with_capacity(prefix.len() + 2 * KEY_BYTES);
    text.push_str(prefix);
    for b in bytes {
        text.push(hex_digit(b >> 4));
        text.push(hex_digit(b & 0x0f));
    }
    Secret(text)
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

/// A key's SHA-256 hash, as stored in `api_keys.hash`.
pub type KeyHash = [u8; 32];

/// SHA-256 of the key text.
///
/// A plain hash is enough: generated keys carry 256 bits of entropy, so neither brute force nor
/// a dictionary can invert the hash, and a slow KDF (argon2, bcrypt) would add nothing but CPU
/// time on every request.
pub fn hash(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// Compares two hashes in constant time.
pub fn ct_eq(a: &KeyHash, b: &KeyHash) -> bool {
    a.ct_eq(b).into()
}

/// The first 8 characters of a key (e.g. `pgk_1a2b`): what is stored, listed and logged.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(DISPLAY_PREFIX_LEN).collect()
}

// === the admin API's token ===

/// Shortest accepted admin token, in characters.
pub const MIN_TOKEN_CHARS: usize = 24;

/// The admin API's bearer token, kept only as its SHA-256 (so neither the configuration's
/// `Debug` nor a memory dump of it shows the token). Compared in constant time.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(KeyHash);

impl AdminToken {
    /// Accepts a token of at least [`MIN_TOKEN_CHARS`] characters without whitespace or control
    /// characters. The error never contains the token.
    pub fn new(token: &str) -> Result<AdminToken, String> {
        let chars = token.chars().count();
        if chars < MIN_TOKEN_CHARS {
            return Err(format!(
                "the admin token must have at least {MIN_TOKEN_CHARS} characters (it has {chars}); \
                 generate one with e.g. `openssl rand -hex 32`"
            ));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the admin token must not contain whitespace or control characters".into());
        }
        Ok(AdminToken(hash(token)))
    }

    /// Whether `presented` is the token: SHA-256 of it compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        ct_eq(&self.0, &hash(presented))
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_contract_shape() {
        for kind in KeyKind::ALL {
            let key = generate(kind);
            let text = key.expose();
            assert!(text.starts_with(kind.prefix()));
            assert_eq!(text.len(), 68);
            assert!((16..=128).contains(&text.len()));
            assert!(text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
            assert!(text[4..]
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
            assert_eq!(KeyKind::of(text), Some(kind));
            assert_ne!(generate(kind), key);
        }
    }

    #[test]
    fn debug_and_display_show_only_the_prefix() {
        let key = generate(KeyKind::Partner);
        let shown = format!("{key:?} {key}");
        assert!(!shown.contains(key.expose()));
        let want = format!("Secret({}…)", &key.expose()[..8]);
        assert_eq!(format!("{key:?}"), want);
        assert_eq!(format!("{key}"), want);
        assert_eq!(format!("{:?}", Secret::new("short".into())), "Secret(…)");
        assert_eq!(
            format!("{:?}", Secret::new("x".repeat(40))),
            "Secret(…)",
            "unknown formats show nothing"
        );
    }

    #[test]
    fn hash_and_compare() {
        let key = generate(KeyKind::Callback);
        let h = hash(key.expose());
        assert!(ct_eq(&h, &hash(key.expose())));
        assert!(!ct_eq(&h, &hash("pgc_other")));
        // SHA-256("abc")
        assert_eq!(hash("abc")[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(display_prefix(key.expose()), key.expose()[..8]);
        assert_eq!(display_prefix("abc"), "abc");
    }

    #[test]
    fn operator_tokens_are_keys_with_their_own_prefix() {
        let t = generate_operator_token();
        assert!(t.expose().starts_with("pgo_"));
        assert_eq!(t.expose().len(), 68);
        assert_eq!(KeyKind::of(t.expose()), None, "never a partner key");
        assert_eq!(format!("{t:?}"), format!("Secret({}…)", &t.expose()[..8]));
    }
}
