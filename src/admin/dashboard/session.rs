//! Dashboard sessions: an operator's name and password are exchanged once, at login, for a
//! random session id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` with `admin.cookie_secure`). Sessions live
//! in the database (`dashboard_sessions`, [`Store::create_dashboard_session`] and its
//! neighbours), so a login through one node works through every node on the same database and
//! survives a restart, and a logout or an expiry ends it everywhere. Each session belongs to
//! an operator, read with it on every request: disabling the operator (or resetting its
//! password) ends it on every node at the commit, and a new role applies to the next request. At most [`MAX_SESSIONS`]:
//! a login beyond that drops the oldest session.
//!
//! The database never holds anything that lets its reader act as an operator or read a key:
//! - the row is addressed by SHA-256 of the session id (256 random bits: nothing to guess);
//! - the CSRF token is HMAC-SHA256 keyed by the session id ([`csrf_token`]), computed on each
//!   request and never stored. Storing a hash of a random token would not do: every page puts
//!   the token itself in its forms, so it would have to be kept readable somewhere;
//! - the one-time slots (the flash message and the new keys shown once, [`Reveal`]) are sealed
//!   with ChaCha20-Poly1305 under a key derived from the session id by HKDF-SHA256, with a random
//!   96-bit nonce and the slot's name and the row's id hash as associated data (a sealed slot
//!   cannot be moved to another row or slot); a slot is cleared when its page shows it.
//!
//! Lifetime: absolute, `admin.session_lifetime_ms` from login. The row keeps its creation and
//! expiry time (unix milliseconds, the nodes' clocks); a read checks both the stored expiry and
//! the reading node's own lifetime (so shortening the setting ends older sessions), and deletes
//! a session that is over. Each login deletes the expired rows.
//!
//! Every method is a database round trip on the store's blocking pool (`spawn_blocking`); only
//! dashboard requests call them, never the partner path.

use std::time::Duration;

use rand::RngCore as _;
use ring::{aead, hkdf, hmac};
use serde::{Deserialize, Serialize};

use crate::secret::{self, KeyHash, Secret};
use crate::store::{OperatorIdentity, SessionSlot, Store, StoreError};

/// The session cookie.
pub const SESSION_COOKIE: &str = "pg_session";
/// The login form's double-submit CSRF cookie (there is no session yet to hold the token).
pub const LOGIN_COOKIE: &str = "pg_login";
/// Sessions kept at once.
pub const MAX_SESSIONS: usize = 256;

/// The message the CSRF token is the HMAC of.
const CSRF_CONTEXT: &[u8] = b"partnergate dashboard csrf token v1";
/// The HKDF salt and info of the slot key.
const SLOT_SALT: &[u8] = b"partnergate dashboard session slots v1";
const SLOT_INFO: &[u8] = b"chacha20-poly1305";

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The database refused or could not be reached.
    #[error("session store: {0}")]
    Store(#[from] StoreError),
    /// The blocking task did not finish.
    #[error("session task failed: {0}")]
    Task(String),
    /// Sealing a slot failed (ring reported an error; nothing was stored).
    #[error("cannot seal the session's message")]
    Seal,
    /// What was to be sealed could not be written as JSON.
    #[error("cannot encode the session's message: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A one-time message shown on the next page (after a redirect).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Flash {
    /// Success (`true`) or a refusal.
    pub ok: bool,
    /// The sentence.
    pub text: String,
}

/// Keys to show once on the next page: kept (sealed) only until that page is rendered.
#[derive(Debug)]
pub struct Reveal {
    /// Whose keys.
    pub partner_id: String,
    /// What happened (`partner PARTNER-0001 created`, …).
    pub message: String,
    /// Label and key.
    pub keys: Vec<(String, Secret)>,
}

/// The sealed form of a [`Reveal`] (only ever serialized into a buffer that is then encrypted
/// in place).
#[derive(Serialize, Deserialize)]
struct SealedReveal {
    partner_id: String,
    message: String,
    keys: Vec<(String, String)>,
}

/// What a request learns from its valid session (`Debug` shows neither the id nor the token).
pub struct Current {
    /// The raw session id (from the cookie): the key to the session's slots.
    id: String,
    /// SHA-256 of the id: the row's key.
    hash: KeyHash,
    /// The session's CSRF token.
    pub csrf: String,
    /// The pending one-time message, taken.
    pub flash: Option<Flash>,
    /// The operator logged in (its role as of this request: read with the session).
    pub operator: OperatorIdentity,
}

impl std::fmt::Debug for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Current")
            .field("flash", &self.flash)
            .field("operator", &self.operator)
            .finish_non_exhaustive()
    }
}

/// The sessions in the database (`Debug` shows the lifetime and the database, no secret).
#[derive(Clone)]
pub struct Sessions {
    store: Store,
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

/// The CSRF token of the session with this id: HMAC-SHA256(key = id, CSRF_CONTEXT), 64 hex
/// characters. Only a holder of the id can compute it; the database holds SHA-256 of the id,
/// from which neither the id nor this token follows.
pub fn csrf_token(id: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, id.as_bytes());
    hex(hmac::sign(&key, CSRF_CONTEXT).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a cookie value can be a session id at all ([`random_token`]'s shape): anything else
/// is refused without a database round trip.
fn well_formed(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn now_ms() -> i64 {
    crate::clock::unix_now_ms()
}

// === the sealed slots ===

fn slot_name(slot: SessionSlot) -> &'static [u8] {
    match slot {
        SessionSlot::Flash => b"flash",
        SessionSlot::Reveal => b"reveal",
    }
}

/// The slot key: HKDF-SHA256(salt, IKM = the session id) expanded to a ChaCha20-Poly1305 key.
fn slot_key(id: &str) -> Result<aead::LessSafeKey, SessionError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SLOT_SALT).extract(id.as_bytes());
    let okm = prk
        .expand(&[SLOT_INFO], &aead::CHACHA20_POLY1305)
        .map_err(|_| SessionError::Seal)?;
    Ok(aead::LessSafeKey::new(aead::UnboundKey::from(okm)))
}

/// Associated data: the slot's name and the row's id hash.
fn slot_aad(hash: &KeyHash, slot: SessionSlot) -> Vec<u8> {
    let mut aad = slot_name(slot).to_vec();
    aad.push(0);
    aad.extend_from_slice(hash);
    aad
}

/// `nonce ‖ ciphertext ‖ tag` of `plaintext` (encrypted in place: the plaintext buffer is
/// overwritten).
fn seal(
    id: &str,
    hash: &KeyHash,
    slot: SessionSlot,
    plaintext: Vec<u8>,
) -> Result<Vec<u8>, SessionError> {
    let key = slot_key(id)?;
    let mut nonce = [0u8; aead::NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let mut buf = plaintext;
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::from(slot_aad(hash, slot)),
        &mut buf,
    )
    .map_err(|_| SessionError::Seal)?;
    let mut sealed = Vec::with_capacity(aead::NONCE_LEN + buf.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&buf);
    Ok(sealed)
}

/// The plaintext of a sealed slot, or `None` when it does not open (another key, another row
/// or slot, altered bytes).
fn open(id: &str, hash: &KeyHash, slot: SessionSlot, sealed: &[u8]) -> Option<Vec<u8>> {
    let key = slot_key(id).ok()?;
    let (nonce, ciphertext) = sealed.split_at_checked(aead::NONCE_LEN)?;
    let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = ciphertext.to_vec();
    let len = key
        .open_in_place(nonce, aead::Aad::from(slot_aad(hash, slot)), &mut buf)
        .ok()?
        .len();
    buf.truncate(len);
    Some(buf)
}

fn open_json<T: for<'de> Deserialize<'de>>(
    current: &Current,
    slot: SessionSlot,
    sealed: &[u8],
) -> Option<T> {
    let plain = open(&current.id, &current.hash, slot, sealed);
    let value = plain.and_then(|p| serde_json::from_slice(&p).ok());
    if value.is_none() {
        // Written around this module, or altered: shown as nothing (never its bytes).
        tracing::warn!(?slot, "dashboard: a session's stored message does not open");
    }
    value
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("store", &self.store)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl Sessions {
    /// Sessions in `store` that last `lifetime` from login.
    pub fn new(store: Store, lifetime: Duration) -> Sessions {
        Sessions { store, lifetime }
    }

    /// How long a session lasts.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn lifetime_ms(&self) -> i64 {
        i64::try_from(self.lifetime.as_millis()).unwrap_or(i64::MAX)
    }

    /// Runs `f` with the store on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, SessionError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, SessionError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| SessionError::Task(e.to_string()))?
    }

    /// A new session of the operator `operator_id`: its id (for the cookie). Expired sessions
    /// are deleted, and the oldest beyond [`MAX_SESSIONS`].
    pub async fn create(&self, operator_id: i64) -> Result<String, SessionError> {
        let id = random_token();
        let hash = secret::hash(&id);
        let lifetime = self.lifetime_ms();
        self.blocking(move |store| {
            let now = now_ms();
            store.create_dashboard_session(
                &hash,
                operator_id,
                now,
                now.saturating_add(lifetime),
                MAX_SESSIONS,
            )?;
            Ok(())
        })
        .await?;
        Ok(id)
    }

    /// The live session with this id (one that is over is deleted), its flash taken.
    pub async fn current(&self, id: &str) -> Result<Option<Current>, SessionError> {
        if !well_formed(id) {
            return Ok(None);
        }
        let hash = secret::hash(id);
        let lifetime = self.lifetime_ms();
        let opened = self
            .blocking(move |store| {
                let now = now_ms();
                Ok(store.open_dashboard_session(&hash, now, now.saturating_sub(lifetime))?)
            })
            .await?;
        let Some(record) = opened else {
            return Ok(None);
        };
        let mut current = Current {
            id: id.to_owned(),
            hash,
            csrf: csrf_token(id),
            flash: None,
            operator: record.operator,
        };
        current.flash = record
            .flash
            .and_then(|s| open_json(&current, SessionSlot::Flash, &s));
        Ok(Some(current))
    }

    async fn put(
        &self,
        session: &Current,
        slot: SessionSlot,
        plaintext: Vec<u8>,
    ) -> Result<(), SessionError> {
        let sealed = seal(&session.id, &session.hash, slot, plaintext)?;
        let hash = session.hash;
        // `false`: the session ended meanwhile (perhaps through another node): nothing to show.
        self.blocking(move |store| Ok(store.put_dashboard_slot(&hash, slot, &sealed)?))
            .await
            .map(|_| ())
    }

    /// Leaves a message for the next page.
    pub async fn flash(&self, session: &Current, flash: Flash) -> Result<(), SessionError> {
        let plaintext = serde_json::to_vec(&flash)?;
        self.put(session, SessionSlot::Flash, plaintext).await
    }

    /// Leaves keys for the next page, once (sealed: the plaintext key never reaches the
    /// database).
    pub async fn reveal(&self, session: &Current, reveal: Reveal) -> Result<(), SessionError> {
        let sealed = SealedReveal {
            partner_id: reveal.partner_id,
            message: reveal.message,
            keys: reveal
                .keys
                .into_iter()
                .map(|(label, key)| (label, key.expose().to_owned()))
                .collect(),
        };
        let plaintext = serde_json::to_vec(&sealed)?;
        self.put(session, SessionSlot::Reveal, plaintext).await
    }

    /// Takes the keys left for this page (nothing the second time, on any node).
    pub async fn take_reveal(&self, session: &Current) -> Result<Option<Reveal>, SessionError> {
        let hash = session.hash;
        let sealed = self
            .blocking(move |store| Ok(store.take_dashboard_slot(&hash, SessionSlot::Reveal)?))
            .await?;
        Ok(sealed
            .and_then(|s| open_json::<SealedReveal>(session, SessionSlot::Reveal, &s))
            .map(|r| Reveal {
                partner_id: r.partner_id,
                message: r.message,
                keys: r
                    .keys
                    .into_iter()
                    .map(|(label, key)| (label, Secret::new(key)))
                    .collect(),
            }))
    }

    /// Logs out: the session ends on every node.
    pub async fn remove(&self, session: &Current) -> Result<(), SessionError> {
        let hash = session.hash;
        self.blocking(move |store| Ok(store.delete_dashboard_session(&hash)?))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDb(std::path::PathBuf);

    impl TempDb {
        fn new() -> TempDb {
            TempDb(std::env::temp_dir().join(format!(
                "partnergate-session-unit-{}-{}.db",
                std::process::id(),
                random_token()
            )))
        }

        fn store(&self) -> Store {
            Store::open(&self.0.display().to_string()).unwrap()
        }

        /// The id of an enabled operator (made on first use) for the sessions to belong to.
        fn operator(&self) -> i64 {
            let store = self.store();
            if store.login_candidate("tester").unwrap().is_none() {
                store
                    .create_operator("test", "tester", crate::store::Role::Viewer, "x")
                    .unwrap();
            }
            store.login_candidate("tester").unwrap().unwrap().0.id
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut p = self.0.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }

    fn flash(text: &str) -> Flash {
        Flash {
            ok: true,
            text: text.into(),
        }
    }

    #[tokio::test]
    async fn sessions_expire_and_flashes_are_shown_once() {
        let db = TempDb::new();
        let s = Sessions::new(db.store(), Duration::from_millis(300));
        let id = s.create(db.operator()).await.unwrap();
        assert!(s.current("nope").await.unwrap().is_none());
        assert!(s.current(&random_token()).await.unwrap().is_none());
        let c = s.current(&id).await.unwrap().unwrap();
        s.flash(&c, flash("done")).await.unwrap();
        let c = s.current(&id).await.unwrap().unwrap();
        assert_eq!(c.flash.unwrap().text, "done");
        assert!(s.current(&id).await.unwrap().unwrap().flash.is_none());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(s.current(&id).await.unwrap().is_none());
        assert_eq!(
            db.store().dashboard_session_count().unwrap(),
            0,
            "read when over, deleted"
        );
    }

    #[tokio::test]
    async fn a_shorter_lifetime_ends_older_sessions() {
        let db = TempDb::new();
        let long = Sessions::new(db.store(), Duration::from_secs(3600));
        let id = long.create(db.operator()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Another node (or this one restarted) with a lifetime of 200 ms: the session is older.
        let short = Sessions::new(db.store(), Duration::from_millis(200));
        assert!(short.current(&id).await.unwrap().is_none());
        assert!(long.current(&id).await.unwrap().is_none(), "deleted");
    }

    #[tokio::test]
    async fn sessions_are_bounded() {
        let db = TempDb::new();
        let s = Sessions::new(db.store(), Duration::from_secs(60));
        let first = s.create(db.operator()).await.unwrap();
        let mut last = String::new();
        for _ in 0..MAX_SESSIONS {
            last = s.create(db.operator()).await.unwrap();
        }
        assert!(s.current(&first).await.unwrap().is_none());
        assert!(s.current(&last).await.unwrap().is_some());
        let n = db.store().dashboard_session_count().unwrap();
        assert_eq!(usize::try_from(n).unwrap(), MAX_SESSIONS);
    }

    #[tokio::test]
    async fn debug_shows_no_secret() {
        let db = TempDb::new();
        let s = Sessions::new(db.store(), Duration::from_secs(60));
        let id = s.create(db.operator()).await.unwrap();
        let c = s.current(&id).await.unwrap().unwrap();
        let text = format!("{s:?} {c:?}");
        assert!(!text.contains(&id) && !text.contains(&c.csrf), "{text}");
    }

    #[tokio::test]
    async fn reveals_are_sealed_and_taken_once() {
        let db = TempDb::new();
        let s = Sessions::new(db.store(), Duration::from_secs(60));
        let id = s.create(db.operator()).await.unwrap();
        let c = s.current(&id).await.unwrap().unwrap();
        let key = secret::generate(secret::KeyKind::Partner);
        s.reveal(
            &c,
            Reveal {
                partner_id: "PARTNER-0001".into(),
                message: "created".into(),
                keys: vec![("Partner key".into(), key.clone())],
            },
        )
        .await
        .unwrap();
        // Another session cannot open it, even given the sealed bytes.
        let stored = db
            .store()
            .take_dashboard_slot(&c.hash, SessionSlot::Reveal)
            .unwrap()
            .unwrap();
        assert!(!stored
            .windows(key.expose().len())
            .any(|w| w == key.expose().as_bytes()));
        let other = random_token();
        assert!(open(&other, &secret::hash(&other), SessionSlot::Reveal, &stored).is_none());
        assert!(
            open(&c.id, &c.hash, SessionSlot::Flash, &stored).is_none(),
            "slot bound"
        );
        let mut altered = stored.clone();
        if let Some(b) = altered.last_mut() {
            *b ^= 1;
        }
        assert!(open(&c.id, &c.hash, SessionSlot::Reveal, &altered).is_none());
        // Put back: taken once, then nothing.
        db.store()
            .put_dashboard_slot(&c.hash, SessionSlot::Reveal, &stored)
            .unwrap();
        let r = s.take_reveal(&c).await.unwrap().unwrap();
        assert_eq!(r.keys[0].1, key);
        assert_eq!(r.partner_id, "PARTNER-0001");
        assert!(s.take_reveal(&c).await.unwrap().is_none());
    }

    #[test]
    fn csrf_tokens_follow_from_the_id_only() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(csrf_token(&a), csrf_token(&a));
        assert_ne!(csrf_token(&a), csrf_token(&b));
        assert_eq!(csrf_token(&a).len(), 64);
        assert_ne!(csrf_token(&a), a);
        assert_ne!(csrf_token(&a), hex(&secret::hash(&a)));
        // RFC 4231 test case 2 (HMAC-SHA256, key "Jefe"): the construction is plain HMAC.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            hex(hmac::sign(&key, b"what do ya want for nothing?").as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(well_formed(&a) && !well_formed("F".repeat(64).as_str()));
        assert!(same_token(&a, &a.clone()));
        assert!(!same_token(&a, &b));
    }
}
