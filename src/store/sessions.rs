//! The operators' dashboard sessions (`dashboard_sessions`), shared by every node on the
//! database so that a login through one node works through all of them and survives a restart.
//!
//! This module stores what `admin::dashboard::session` hands it and knows nothing secret: a
//! session is addressed by the SHA-256 of its id, and the one-time slots ([`SessionSlot`]) hold
//! ciphertext under a key that only the session id (in the browser's cookie) gives. Times are
//! unix milliseconds, from the node's clock.
//!
//! Not partner data: nothing here bumps the revision, and the hot path never reads it. No
//! statement reads before it writes inside a transaction (SQLite would fail such a transaction
//! with "database is locked" when another writer got in between, whatever `busy_timeout` says):
//! a slot is taken by a compare-and-clear (`UPDATE … WHERE slot = <the bytes read>`), so two
//! requests racing for it on two nodes cannot both get it.

use diesel::prelude::*;

use super::operators::{OperatorIdentity, Role};
use super::rules::corrupt;
use super::schema::{dashboard_sessions as ds, operators as op};
use super::{AnyConnection, Store, StoreError};
use crate::secret::KeyHash;

/// A session's one-time slots: each is written by one request and taken (cleared) by the next
/// page that shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionSlot {
    /// The outcome of the last action (`dashboard_sessions.flash`).
    Flash,
    /// New keys to show once (`dashboard_sessions.reveal`).
    Reveal,
}

/// A live session as read (no secret: the row is addressed by the id's hash, and the slot is
/// sealed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// When it was created (unix milliseconds).
    pub created_at_ms: i64,
    /// When it ends (unix milliseconds).
    pub expires_at_ms: i64,
    /// What the flash slot held, taken by this read (`None`: empty, or another request took it).
    pub flash: Option<Vec<u8>>,
    /// The operator the session belongs to (enabled: a disabled operator's session is not live).
    pub operator: OperatorIdentity,
}

impl Store {
    /// Stores a new session, then deletes every session expired at `created_at_ms` and the
    /// oldest beyond `max_live`, in one transaction that starts with the insert (so it holds
    /// SQLite's write lock before it reads).
    pub fn create_dashboard_session(
        &self,
        id_hash: &KeyHash,
        operator_id: i64,
        created_at_ms: i64,
        expires_at_ms: i64,
        max_live: usize,
    ) -> Result<(), StoreError> {
        self.connection()?.transaction(|c| {
            diesel::insert_into(ds::table)
                .values((
                    ds::id_hash.eq(id_hash.as_slice()),
                    ds::operator_id.eq(operator_id),
                    ds::created_at.eq(created_at_ms),
                    ds::expires_at.eq(expires_at_ms),
                ))
                .execute(c)?;
            diesel::delete(ds::table.filter(ds::expires_at.le(created_at_ms))).execute(c)?;
            // Newest first; the table holds at most `max_live` (+ a few racing logins) rows.
            let ids: Vec<Vec<u8>> = ds::table
                .select(ds::id_hash)
                .order((ds::created_at.desc(), ds::id_hash.desc()))
                .load(c)?;
            for old in ids.iter().skip(max_live.max(1)) {
                diesel::delete(ds::table.filter(ds::id_hash.eq(old))).execute(c)?;
            }
            Ok(())
        })
    }

    /// The session with this id hash if it is live: `now_ms` before its `expires_at`, its
    /// `created_at` after `created_after_ms` (the reader's own lifetime, so that a node
    /// configured with a shorter one ends older sessions) and its operator enabled (read with
    /// the session, so a disabled operator is refused from the commit on, on every node). A
    /// session found but not live is deleted. The flash slot is taken with it (cleared in the
    /// database; `None` when another request took it first).
    pub fn open_dashboard_session(
        &self,
        id_hash: &KeyHash,
        now_ms: i64,
        created_after_ms: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let mut conn = self.connection()?;
        type Row = (
            i64,
            i64,
            Option<Vec<u8>>,
            Option<(i64, String, String, Option<i64>)>,
        );
        let row: Option<Row> = ds::table
            .left_join(op::table)
            .filter(ds::id_hash.eq(id_hash.as_slice()))
            .select((
                ds::created_at,
                ds::expires_at,
                ds::flash,
                (op::id, op::name, op::role, op::disabled_at).nullable(),
            ))
            .first(&mut *conn)
            .optional()?;
        let Some((created_at_ms, expires_at_ms, flash, operator)) = row else {
            return Ok(None);
        };
        let operator = operator.filter(|o| o.3.is_none());
        let over = expires_at_ms <= now_ms || created_at_ms <= created_after_ms;
        let Some((id, name, role, _)) = operator.filter(|_| !over) else {
            delete_session(&mut conn, id_hash)?;
            return Ok(None);
        };
        let role = Role::parse(&role)
            .ok_or_else(|| corrupt("operators", &name, format!("role {role:?}")))?;
        let flash = match flash {
            Some(bytes) => {
                clear_slot(&mut conn, id_hash, SessionSlot::Flash, &bytes)?.then_some(bytes)
            }
            None => None,
        };
        Ok(Some(SessionRecord {
            created_at_ms,
            expires_at_ms,
            flash,
            operator: OperatorIdentity { id, name, role },
        }))
    }

    /// Writes `bytes` into a session's slot (replacing what it held). `false` when there is no
    /// such session (it ended meanwhile, perhaps through another node).
    pub fn put_dashboard_slot(
        &self,
        id_hash: &KeyHash,
        slot: SessionSlot,
        bytes: &[u8],
    ) -> Result<bool, StoreError> {
        let mut conn = self.connection()?;
        let target = ds::table.filter(ds::id_hash.eq(id_hash.as_slice()));
        let n = match slot {
            SessionSlot::Flash => diesel::update(target)
                .set(ds::flash.eq(bytes))
                .execute(&mut *conn)?,
            SessionSlot::Reveal => diesel::update(target)
                .set(ds::reveal.eq(bytes))
                .execute(&mut *conn)?,
        };
        Ok(n == 1)
    }

    /// Takes what a session's slot holds: the bytes, cleared in the database, or `None` (empty,
    /// no such session, or another request took it first). Whatever it held is returned at most
    /// once, whichever node asks.
    pub fn take_dashboard_slot(
        &self,
        id_hash: &KeyHash,
        slot: SessionSlot,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.connection()?;
        let target = ds::table.filter(ds::id_hash.eq(id_hash.as_slice()));
        let held: Option<Option<Vec<u8>>> = match slot {
            SessionSlot::Flash => target.select(ds::flash).first(&mut *conn).optional()?,
            SessionSlot::Reveal => target.select(ds::reveal).first(&mut *conn).optional()?,
        };
        match held.flatten() {
            Some(bytes) => Ok(clear_slot(&mut conn, id_hash, slot, &bytes)?.then_some(bytes)),
            None => Ok(None),
        }
    }

    /// Deletes a session (logout): `false` when there was none.
    pub fn delete_dashboard_session(&self, id_hash: &KeyHash) -> Result<bool, StoreError> {
        delete_session(&mut *self.connection()?, id_hash)
    }

    /// How many sessions are stored (live or not yet pruned).
    pub fn dashboard_session_count(&self) -> Result<i64, StoreError> {
        Ok(ds::table.count().get_result(&mut *self.connection()?)?)
    }
}

fn delete_session(conn: &mut AnyConnection, id_hash: &KeyHash) -> Result<bool, StoreError> {
    Ok(diesel::delete(ds::table.filter(ds::id_hash.eq(id_hash.as_slice()))).execute(conn)? == 1)
}

/// Clears a slot if it still holds `seen`: `true` when this call cleared it.
fn clear_slot(
    conn: &mut AnyConnection,
    id_hash: &KeyHash,
    slot: SessionSlot,
    seen: &[u8],
) -> Result<bool, StoreError> {
    let target = ds::table.filter(ds::id_hash.eq(id_hash.as_slice()));
    let n = match slot {
        SessionSlot::Flash => diesel::update(target.filter(ds::flash.eq(seen)))
            .set(ds::flash.eq(None::<Vec<u8>>))
            .execute(conn)?,
        SessionSlot::Reveal => diesel::update(target.filter(ds::reveal.eq(seen)))
            .set(ds::reveal.eq(None::<Vec<u8>>))
            .execute(conn)?,
    };
    Ok(n == 1)
}
