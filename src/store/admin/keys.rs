//! Keys: list (metadata only, never a key or its hash), rotate with an overlap, revoke. Uses
//! `records` and `rules`.

use diesel::prelude::*;

use super::records::{key_json, keys_of, KeyMetaRow, KeyRecord};
use crate::secret::{self, KeyKind, Secret};
use crate::store::models::NewKeyRow;
use crate::store::rules::not_found;
use crate::store::schema::{api_keys, partners};
use crate::store::{unix_now, Store, StoreError};

/// Which keys to revoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySelector {
    /// Every unrevoked key of this kind.
    Kind(KeyKind),
    /// One key, by `api_keys.id`.
    Id(i64),
}

/// The result of a rotation. The key exists only here: the database has its hash.
#[derive(Debug)]
pub struct RotatedKey {
    /// The new key.
    pub key: Secret,
    /// Its metadata.
    pub record: KeyRecord,
    /// The previously usable keys of the same kind, with their new `expires_at`.
    pub expiring: Vec<KeyRecord>,
}

impl Store {
    /// A partner's keys, oldest first (metadata only).
    pub fn list_keys(&self, partner_id: &str) -> Result<Vec<KeyRecord>, StoreError> {
        self.read_partner(partner_id, keys_of)
    }

    /// Every partner's keys (metadata only), by partner id then key id: one read for the
    /// dashboard's partner list.
    pub fn keys_by_partner(&self) -> Result<Vec<(String, KeyRecord)>, StoreError> {
        self.conn()?.transaction(|c| {
            api_keys::table
                .inner_join(partners::table)
                .select((partners::partner_id, KeyMetaRow::as_select()))
                .order((partners::partner_id, api_keys::id))
                .load::<(String, KeyMetaRow)>(c)?
                .into_iter()
                .map(|(p, k)| Ok((p, k.into_record()?)))
                .collect()
        })
    }

    /// Issues a new key of `kind` and lets the partner's currently usable keys of that kind
    /// expire `overlap_secs` from now (0: at once; a key that expires sooner keeps its time).
    /// The new key does not expire. Audit: `key.rotate` with the prefixes and expiries.
    pub fn rotate_key(
        &self,
        actor: &str,
        partner_id: &str,
        kind: KeyKind,
        overlap_secs: i64,
    ) -> Result<RotatedKey, StoreError> {
        let key = secret::generate(kind);
        let (record, expiring) =
            self.change_partner(actor, partner_id, "key.rotate", |c, row_id| {
                let now = unix_now();
                let until = now.saturating_add(overlap_secs.max(0));
                let mut expiring: Vec<KeyRecord> = keys_of(c, row_id)?
                    .into_iter()
                    .filter(|k| k.kind == kind && k.usable_at(now))
                    .collect();
                for k in &mut expiring {
                    let at = k.expires_at.map_or(until, |e| e.min(until));
                    diesel::update(api_keys::table.filter(api_keys::id.eq(k.id)))
                        .set(api_keys::expires_at.eq(Some(at)))
                        .execute(c)?;
                    k.expires_at = Some(at);
                }
                let text = key.expose();
                let prefix = secret::display_prefix(text);
                let id: i64 = diesel::insert_into(api_keys::table)
                    .values(NewKeyRow {
                        partner_id: row_id,
                        kind: kind.as_str(),
                        prefix: &prefix,
                        hash: &secret::hash(text),
                        created_at: now,
                        expires_at: None,
                    })
                    .returning(api_keys::id)
                    .get_result(c)?;
                let record = KeyRecord {
                    id,
                    kind,
                    prefix,
                    created_at: now,
                    expires_at: None,
                    revoked_at: None,
                    last_used_at: None,
                };
                let detail = serde_json::json!({
                    "kind": kind.as_str(),
                    "new_key": key_json(&record),
                    "overlap_seconds": overlap_secs,
                    "expiring": expiring.iter().map(key_json).collect::<Vec<_>>(),
                });
                Ok(((record, expiring), detail))
            })?;
        tracing::info!(partner = %partner_id, %kind, key = %key, %actor, "key rotated");
        Ok(RotatedKey {
            key,
            record,
            expiring,
        })
    }

    /// Revokes keys now: every unrevoked key of a kind, or one key by id. Nothing to revoke →
    /// `Conflict`; a key id of another partner → `NotFound`. Audit: `key.revoke`.
    pub fn revoke_keys(
        &self,
        actor: &str,
        partner_id: &str,
        selector: KeySelector,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let revoked = self.change_partner(actor, partner_id, "key.revoke", |c, row_id| {
            let now = unix_now();
            let keys = keys_of(c, row_id)?;
            let mut chosen: Vec<KeyRecord> = match selector {
                KeySelector::Kind(kind) => {
                    let chosen: Vec<KeyRecord> = keys
                        .into_iter()
                        .filter(|k| k.kind == kind && k.revoked_at.is_none())
                        .collect();
                    if chosen.is_empty() {
                        return Err(StoreError::Conflict(format!(
                            "partner {partner_id} has no unrevoked {kind} key"
                        )));
                    }
                    chosen
                }
                KeySelector::Id(id) => {
                    let key = keys
                        .into_iter()
                        .find(|k| k.id == id)
                        .ok_or_else(|| not_found("key", &format!("{id} of {partner_id}")))?;
                    if key.revoked_at.is_some() {
                        return Err(StoreError::Conflict(format!(
                            "key {id} ({}) of {partner_id} is already revoked",
                            key.prefix
                        )));
                    }
                    vec![key]
                }
            };
            for k in &mut chosen {
                diesel::update(api_keys::table.filter(api_keys::id.eq(k.id)))
                    .set(api_keys::revoked_at.eq(Some(now)))
                    .execute(c)?;
                k.revoked_at = Some(now);
            }
            let detail = serde_json::json!({
                "revoked": chosen.iter().map(key_json).collect::<Vec<_>>(),
            });
            Ok((chosen, detail))
        })?;
        tracing::info!(partner = %partner_id, revoked = revoked.len(), %actor, "keys revoked");
        Ok(revoked)
    }
}
