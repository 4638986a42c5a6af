//! The administrator's view of partner data, shared by the `admin` modules: the public records
//! (partner, key, group), the rows they are read from, the reads inside a transaction (a
//! partner's row, keys, allowlist, grants; a group with its members), the audit detail of keys
//! and rates, and the one path of an audited change to a partner. Uses `rules`, `schema`,
//! `snapshot`'s rate reader and the connection; never another `admin` module.

use diesel::prelude::*;

use crate::secret::KeyKind;
use crate::store::conn::AnyConnection;
use crate::store::models::PartnerRow;
use crate::store::rules::{audit, corrupt, existing_partner, not_found};
use crate::store::schema::{allow_entries, api_keys, callback_rates, grants, groups, partners};
use crate::store::snapshot::stored_rate;
use crate::store::{unix_now, PartnerStatus, Rate, Store, StoreError};

// === records ===

/// A partner row as the administrator sees it (everything but keys, allowlist and grants).
#[derive(Clone, Debug, PartialEq)]
pub struct PartnerRecord {
    /// The public id, e.g. `PARTNER-0001`.
    pub partner_id: String,
    /// Display name.
    pub name: String,
    /// Lifecycle state.
    pub status: PartnerStatus,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// Throttle group.
    pub group: Option<String>,
    /// Free-text contact (person, e-mail, phone).
    pub contact: Option<String>,
    /// Billing rate, e.g. `0.0125 EUR/min`.
    pub billing_rate: Option<String>,
    /// Default feature settings (a JSON object).
    pub feature_defaults: Option<serde_json::Value>,
    /// Where the TSP's callbacks for this partner go.
    pub callback_url: Option<String>,
    /// CA certificate(s) (PEM) that verify the callback server.
    pub callback_ca_pem: Option<String>,
    /// The partner's own rate (else its group's, else the default).
    pub rate: Option<Rate>,
    /// The partner's own rate for callbacks to its BSS (else `callback.default_*`).
    pub callback_rate: Option<Rate>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last change to the row.
    pub updated_at: i64,
}

/// A partner with its keys (metadata only), allowlist and grants.
#[derive(Clone, Debug, PartialEq)]
pub struct PartnerDetail {
    /// The partner row.
    pub partner: PartnerRecord,
    /// Every key ever issued, revoked ones included, oldest first.
    pub keys: Vec<KeyRecord>,
    /// Allowlist networks (canonical text), oldest first.
    pub allow: Vec<String>,
    /// Permissions, oldest first.
    pub grants: Vec<String>,
    /// Registered client certificates, oldest first.
    pub client_certs: Vec<crate::store::ClientCertRecord>,
    /// The client CA and expected subject, if set.
    pub client_ca: Option<crate::store::ClientCaRecord>,
}

/// A key's metadata: never the key or its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// `api_keys.id`: names the key in `key revoke --id`.
    pub id: i64,
    /// Partner or callback key.
    pub kind: KeyKind,
    /// The display prefix (`pgk_1a2b`).
    pub prefix: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds after which the key is refused, if it expires.
    pub expires_at: Option<i64>,
    /// Unix seconds when it was revoked.
    pub revoked_at: Option<i64>,
    /// Unix seconds of its last accepted use, as far as recorded.
    pub last_used_at: Option<i64>,
}

impl KeyRecord {
    /// Whether the key is accepted at `now` (not revoked, not expired).
    pub fn usable_at(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// A group with its members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRecord {
    /// The group's name.
    pub name: String,
    /// Per-member rate for members without their own.
    pub rate: Option<Rate>,
    /// The cap on the members' combined rate.
    pub aggregate: Option<Rate>,
    /// Unix seconds.
    pub created_at: i64,
    /// Partner ids of the members, sorted.
    pub members: Vec<String>,
}

// === rows ===

/// A partner's whole row: the columns the snapshot reads, and the administrator's.
#[derive(Queryable, Selectable)]
#[diesel(table_name = partners)]
pub(super) struct FullPartnerRow {
    #[diesel(embed)]
    pub(super) base: PartnerRow,
    pub(super) contact: Option<String>,
    pub(super) billing_rate: Option<String>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub(super) struct KeyMetaRow {
    pub(super) id: i64,
    pub(super) kind: String,
    pub(super) prefix: String,
    pub(super) created_at: i64,
    pub(super) expires_at: Option<i64>,
    pub(super) revoked_at: Option<i64>,
    pub(super) last_used_at: Option<i64>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = groups)]
pub(super) struct FullGroupRow {
    pub(super) name: String,
    pub(super) rate_per_second: Option<i32>,
    pub(super) burst: Option<i32>,
    pub(super) aggregate_rate_per_second: Option<i32>,
    pub(super) aggregate_burst: Option<i32>,
    pub(super) created_at: i64,
}

impl FullPartnerRow {
    /// The record, with the partner's own callback rate (`callback_rates`: rate, burst) if it
    /// has one.
    pub(super) fn into_record(
        self,
        callback: Option<(i32, i32)>,
    ) -> Result<PartnerRecord, StoreError> {
        let p = self.base;
        let status = PartnerStatus::from_db(&p.status).ok_or_else(|| {
            corrupt(
                "partners",
                &p.partner_id,
                format!("unknown status {:?}", p.status),
            )
        })?;
        let rate = stored_rate("partners", &p.partner_id, p.rate_per_second, p.burst)?;
        let callback_rate = stored_rate(
            "callback_rates",
            &p.partner_id,
            callback.map(|(r, _)| r),
            callback.map(|(_, b)| b),
        )?;
        let feature_defaults = match &p.feature_defaults {
            None => None,
            Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                corrupt("partners", &p.partner_id, format!("feature_defaults: {e}"))
            })?),
        };
        Ok(PartnerRecord {
            partner_id: p.partner_id,
            name: p.name,
            status,
            country: p.country,
            group: p.group_name,
            contact: self.contact,
            billing_rate: self.billing_rate,
            feature_defaults,
            callback_url: p.callback_url,
            callback_ca_pem: p.callback_ca_pem,
            rate,
            callback_rate,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

impl KeyMetaRow {
    pub(super) fn into_record(self) -> Result<KeyRecord, StoreError> {
        let kind = KeyKind::from_db(&self.kind).ok_or_else(|| {
            corrupt(
                "api_keys",
                &self.id.to_string(),
                format!("unknown kind {:?}", self.kind),
            )
        })?;
        Ok(KeyRecord {
            id: self.id,
            kind,
            prefix: self.prefix,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            last_used_at: self.last_used_at,
        })
    }
}

impl FullGroupRow {
    pub(super) fn into_record(self, members: Vec<String>) -> Result<GroupRecord, StoreError> {
        let rate = stored_rate("groups", &self.name, self.rate_per_second, self.burst)?;
        let aggregate = stored_rate(
            "groups",
            &self.name,
            self.aggregate_rate_per_second,
            self.aggregate_burst,
        )?;
        Ok(GroupRecord {
            name: self.name,
            rate,
            aggregate,
            created_at: self.created_at,
            members,
        })
    }
}

// === reads inside a transaction ===

/// The partner's own callback rate (rate, burst), if it has one.
pub(super) fn callback_rate_of(
    c: &mut AnyConnection,
    row_id: i64,
) -> Result<Option<(i32, i32)>, StoreError> {
    Ok(callback_rates::table
        .find(row_id)
        .select((callback_rates::rate_per_second, callback_rates::burst))
        .first(c)
        .optional()?)
}

/// The partner's full row; no such partner → `NotFound`.
pub(super) fn partner_row(
    c: &mut AnyConnection,
    partner_id: &str,
) -> Result<FullPartnerRow, StoreError> {
    partners::table
        .filter(partners::partner_id.eq(partner_id))
        .select(FullPartnerRow::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| not_found("partner", partner_id))
}

/// The partner's row id, if it exists and may still be changed (not offboarded).
pub(super) fn changeable_partner(
    c: &mut AnyConnection,
    partner_id: &str,
) -> Result<i64, StoreError> {
    let row = partners::table
        .filter(partners::partner_id.eq(partner_id))
        .select((partners::id, partners::status))
        .first::<(i64, String)>(c)
        .optional()?
        .ok_or_else(|| not_found("partner", partner_id))?;
    if row.1 == PartnerStatus::Offboarded.as_str() {
        return Err(StoreError::Conflict(format!(
            "partner {partner_id} is offboarded: its records are kept as history and cannot be changed"
        )));
    }
    Ok(row.0)
}

/// A partner's keys (metadata only), oldest first.
pub(super) fn keys_of(c: &mut AnyConnection, row_id: i64) -> Result<Vec<KeyRecord>, StoreError> {
    api_keys::table
        .filter(api_keys::partner_id.eq(row_id))
        .select(KeyMetaRow::as_select())
        .order(api_keys::id)
        .load(c)?
        .into_iter()
        .map(KeyMetaRow::into_record)
        .collect()
}

/// A partner's allowlist, oldest first.
pub(super) fn allow_of(c: &mut AnyConnection, row_id: i64) -> Result<Vec<String>, StoreError> {
    Ok(allow_entries::table
        .filter(allow_entries::partner_id.eq(row_id))
        .select(allow_entries::cidr)
        .order(allow_entries::id)
        .load(c)?)
}

/// A partner's grants, oldest first.
pub(super) fn grants_of(c: &mut AnyConnection, row_id: i64) -> Result<Vec<String>, StoreError> {
    Ok(grants::table
        .filter(grants::partner_id.eq(row_id))
        .select(grants::permission)
        .order(grants::id)
        .load(c)?)
}

/// The partner ids in a group, sorted.
pub(super) fn members_of(c: &mut AnyConnection, group: &str) -> Result<Vec<String>, StoreError> {
    Ok(partners::table
        .filter(partners::group_name.eq(group))
        .select(partners::partner_id)
        .order(partners::partner_id)
        .load(c)?)
}

/// A group with its members; no such group → `NotFound`.
pub(super) fn group_record(c: &mut AnyConnection, name: &str) -> Result<GroupRecord, StoreError> {
    let row = groups::table
        .filter(groups::name.eq(name))
        .select(FullGroupRow::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| not_found("group", name))?;
    let members = members_of(c, name)?;
    row.into_record(members)
}

// === audit detail ===

/// A rate in the audit log (`null` for none).
pub(super) fn rate_json(rate: Option<Rate>) -> serde_json::Value {
    match rate {
        None => serde_json::Value::Null,
        Some(r) => serde_json::json!({"per_second": r.per_second.get(), "burst": r.burst.get()}),
    }
}

/// A key in the audit log: its metadata, never the key.
pub(super) fn key_json(k: &KeyRecord) -> serde_json::Value {
    serde_json::json!({
        "id": k.id,
        "kind": k.kind.as_str(),
        "prefix": k.prefix,
        "expires_at": k.expires_at,
    })
}

// === a partner's read, and its audited change ===

fn touch(c: &mut AnyConnection, row_id: i64) -> Result<(), StoreError> {
    diesel::update(partners::table.filter(partners::id.eq(row_id)))
        .set(partners::updated_at.eq(unix_now()))
        .execute(c)?;
    Ok(())
}

impl Store {
    /// Reads something of one partner (`read` gets its row id) in one transaction; no such
    /// partner → `NotFound`.
    pub(super) fn read_partner<T>(
        &self,
        partner_id: &str,
        read: impl FnOnce(&mut AnyConnection, i64) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn()?.transaction(|c| {
            let row_id = existing_partner(c, partner_id)?;
            read(c, row_id)
        })
    }

    /// One audited change to a partner that may still be changed (not offboarded → else
    /// `Conflict`; unknown → `NotFound`), in one write transaction: `change` gets the
    /// partner's row id and returns its result and the audit detail; then the partner's
    /// `updated_at` is set and `action` on the partner recorded.
    pub(super) fn change_partner<T>(
        &self,
        actor: &str,
        partner_id: &str,
        action: &str,
        change: impl FnOnce(&mut AnyConnection, i64) -> Result<(T, serde_json::Value), StoreError>,
    ) -> Result<T, StoreError> {
        self.write(|c| {
            let row_id = changeable_partner(c, partner_id)?;
            let (result, detail) = change(c, row_id)?;
            touch(c, row_id)?;
            audit(c, actor, action, partner_id, &detail)?;
            Ok(result)
        })
    }
}
