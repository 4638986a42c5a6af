//! Dashboard sessions: the admin token is exchanged once, at login, for a random session id in
//! an `HttpOnly`, `SameSite=Strict` cookie (`Secure` with `admin.cookie_secure`). Sessions live in
//! this process's memory (a restart logs everyone out), keyed by the SHA-256 of the id, with an
//! absolute lifetime (`admin.session_lifetime_ms`) and a per-session CSRF token that every form
//! carries. At most [`MAX_SESSIONS`]: a login beyond that drops the oldest session.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rand::RngCore as _;

use crate::secret::{self, KeyHash, Secret};

/// The session cookie.
pub const SESSION_COOKIE: &str = "pg_session";
/// The login form's double-submit CSRF cookie (there is no session yet to hold the token).
pub const LOGIN_COOKIE: &str = "pg_login";
/// Sessions kept at once.
pub const MAX_SESSIONS: usize = 256;

/// A one-time message shown on the next page (after a redirect).
#[derive(Clone, Debug)]
pub struct Flash {
    /// Success (`true`) or a refusal.
    pub ok: bool,
    /// The sentence.
    pub text: String,
}

/// Keys to show once on the next page: kept only until that page is rendered.
#[derive(Debug)]
pub struct Reveal {
    /// Whose keys.
    pub partner_id: String,
    /// What happened (`partner PARTNER-0001 created`, …).
    pub message: String,
    /// Label and key.
    pub keys: Vec<(&'static str, Secret)>,
}

struct Session {
    csrf: String,
    expires: Instant,
    created: Instant,
    flash: Option<Flash>,
    reveal: Option<Reveal>,
}

/// What a request learns from its valid session (`Debug` shows neither the id nor the token).
pub struct Current {
    /// The raw session id (from the cookie), to address the session again.
    pub id: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// The pending one-time message, taken.
    pub flash: Option<Flash>,
}

impl std::fmt::Debug for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Current")
            .field("flash", &self.flash)
            .finish_non_exhaustive()
    }
}

/// Every live session (`Debug` shows only how many: ids and tokens are secrets).
pub struct Sessions {
    map: Mutex<HashMap<KeyHash, Session>>,
    lifetime: Duration,
}

/// 32 random bytes as 64 hex characters.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time comparison of two tokens (by their SHA-256). An empty token matches nothing:
/// an empty login cookie and an empty form field are equal, and prove nothing.
pub fn same_token(a: &str, b: &str) -> bool {
    !a.is_empty() && !b.is_empty() && secret::ct_eq(&secret::hash(a), &secret::hash(b))
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("live", &self.lock().len())
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl Sessions {
    /// Sessions that last `lifetime` from login.
    pub fn new(lifetime: Duration) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            lifetime,
        }
    }

    /// How long a session lasts.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<KeyHash, Session>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new session: its id (for the cookie).
    pub fn create(&self) -> String {
        let id = random_token();
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        while map.len() >= MAX_SESSIONS {
            let oldest = map.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k);
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(
            secret::hash(&id),
            Session {
                csrf: random_token(),
                expires: now + self.lifetime,
                created: now,
                flash: None,
                reveal: None,
            },
        );
        id
    }

    /// The live session with this id (an expired one is removed), its flash taken.
    pub fn current(&self, id: &str) -> Option<Current> {
        let key = secret::hash(id);
        let mut map = self.lock();
        let live = map.get(&key).is_some_and(|s| s.expires > Instant::now());
        if !live {
            map.remove(&key);
            return None;
        }
        let s = map.get_mut(&key)?;
        Some(Current {
            id: id.to_owned(),
            csrf: s.csrf.clone(),
            flash: s.flash.take(),
        })
    }

    /// Leaves a message for the next page.
    pub fn flash(&self, id: &str, flash: Flash) {
        if let Some(s) = self.lock().get_mut(&secret::hash(id)) {
            s.flash = Some(flash);
        }
    }

    /// Leaves keys for the next page, once.
    pub fn reveal(&self, id: &str, reveal: Reveal) {
        if let Some(s) = self.lock().get_mut(&secret::hash(id)) {
            s.reveal = Some(reveal);
        }
    }

    /// Takes the keys left for this page (nothing the second time).
    pub fn take_reveal(&self, id: &str) -> Option<Reveal> {
        self.lock()
            .get_mut(&secret::hash(id))
            .and_then(|s| s.reveal.take())
    }

    /// Logs out.
    pub fn remove(&self, id: &str) {
        self.lock().remove(&secret::hash(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_flashes_are_shown_once() {
        let s = Sessions::new(Duration::from_millis(50));
        let id = s.create();
        assert!(s.current("nope").is_none());
        s.flash(
            &id,
            Flash {
                ok: true,
                text: "done".into(),
            },
        );
        let c = s.current(&id).unwrap();
        assert_eq!(c.flash.unwrap().text, "done");
        assert!(s.current(&id).unwrap().flash.is_none());
        std::thread::sleep(Duration::from_millis(80));
        assert!(s.current(&id).is_none());
    }

    #[test]
    fn sessions_are_bounded() {
        let s = Sessions::new(Duration::from_secs(60));
        let first = s.create();
        for _ in 0..MAX_SESSIONS {
            s.create();
        }
        assert!(s.current(&first).is_none());
        assert!(s.lock().len() <= MAX_SESSIONS);
    }

    #[test]
    fn debug_shows_no_secret() {
        let s = Sessions::new(Duration::from_secs(60));
        let id = s.create();
        let c = s.current(&id).unwrap();
        let text = format!("{s:?} {c:?}");
        assert!(!text.contains(&id) && !text.contains(&c.csrf), "{text}");
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(same_token(&a, &a.clone()));
        assert!(!same_token(&a, &b));
    }
}
