//! Partner lifecycle administration in the database: the reads behind `partnergate partner|key|
//! allow|grant|group|audit …` and the admin API, and the audited writes.
//!
//! Every write runs in one [`Store::write`] transaction (the `meta.revision` bump first, so every
//! gateway node reloads its snapshot within a refresh interval) that also inserts its
//! `audit_log` row: the change, its audit record and the revision move together or not at all.
//! Input is validated by `crate::admin` before it gets here; this module enforces what needs the
//! database: existence, uniqueness and the partner status machine (an offboarded partner is
//! history and cannot be changed).

use diesel::prelude::*;
use sha2::{Digest, Sha256};

use super::conn::AnyConnection;
use super::models::{NewAllowRow, NewGrantRow, NewGroupRow, NewKeyRow};
use super::onboard::{conflict_or, invalid, partner_row_id, rate_columns};
use super::schema::{allow_entries, api_keys, audit_log, grants, groups, partners};
use super::snapshot::stored_rate;
use super::{unix_now, PartnerStatus, Rate, Store, StoreError};
use crate::secret::{self, KeyKind, Secret};

/// Most audit rows one read returns.
pub const MAX_AUDIT_ROWS: i64 = 1000;

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

/// One `audit_log` row.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    /// Row id (increasing).
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who: `cli:<user>`, `api:<peer address>`.
    pub actor: String,
    /// What: `partner.update`, `key.rotate`, …
    pub action: String,
    /// Which: a partner id, or `group:<name>`.
    pub target: String,
    /// The change (JSON): new values, old ones where useful; never key material.
    pub detail: Option<serde_json::Value>,
}

/// Changes to a partner: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartnerChanges {
    /// New display name (validated by the caller).
    pub name: Option<String>,
    /// Contact text.
    pub contact: Option<Option<String>>,
    /// Billing rate text.
    pub billing_rate: Option<Option<String>>,
    /// Country code.
    pub country: Option<Option<String>>,
    /// Group (must exist).
    pub group: Option<Option<String>>,
    /// Callback URL.
    pub callback_url: Option<Option<String>>,
    /// Callback CA (PEM).
    pub callback_ca_pem: Option<Option<String>>,
    /// Feature defaults (a JSON object checked against the contract by the caller); replaces
    /// the stored object as a whole.
    pub feature_defaults: Option<Option<serde_json::Value>>,
}

impl PartnerChanges {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self == &PartnerChanges::default()
    }
}

/// A status transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusChange {
    /// Active → suspended: calls are refused, everything is kept.
    Suspend,
    /// Suspended → active.
    Reinstate,
    /// Active or suspended → offboarded, all keys revoked; final.
    Offboard,
}

impl StatusChange {
    /// The audit action.
    pub const fn action(self) -> &'static str {
        match self {
            StatusChange::Suspend => "partner.suspend",
            StatusChange::Reinstate => "partner.reinstate",
            StatusChange::Offboard => "partner.offboard",
        }
    }
}

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

/// Changes to a group: `None` leaves a rate alone, `Some(None)` clears it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupChanges {
    /// A new name (validated by the caller; members follow).
    pub rename: Option<String>,
    /// Per-member rate.
    pub rate: Option<Option<Rate>>,
    /// Aggregate cap.
    pub aggregate: Option<Option<Rate>>,
}

impl GroupChanges {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self == &GroupChanges::default()
    }
}

// === rows ===

#[derive(Queryable, Selectable)]
#[diesel(table_name = partners)]
struct FullPartnerRow {
    id: i64,
    partner_id: String,
    name: String,
    country: Option<String>,
    group_name: Option<String>,
    status: String,
    contact: Option<String>,
    billing_rate: Option<String>,
    feature_defaults: Option<String>,
    callback_url: Option<String>,
    callback_ca_pem: Option<String>,
    rate_per_second: Option<i32>,
    burst: Option<i32>,
    created_at: i64,
    updated_at: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = api_keys)]
struct KeyMetaRow {
    id: i64,
    kind: String,
    prefix: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = groups)]
struct FullGroupRow {
    name: String,
    rate_per_second: Option<i32>,
    burst: Option<i32>,
    aggregate_rate_per_second: Option<i32>,
    aggregate_burst: Option<i32>,
    created_at: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_log)]
struct AuditRow {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    target: String,
    detail: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = audit_log)]
struct NewAuditRow<'a> {
    at: i64,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    detail: Option<&'a str>,
}

fn corrupt(table: &'static str, key: &str, reason: String) -> StoreError {
    StoreError::Corrupt {
        table,
        key: key.to_owned(),
        reason,
    }
}

impl FullPartnerRow {
    fn into_record(self) -> Result<PartnerRecord, StoreError> {
        let status = PartnerStatus::from_db(&self.status).ok_or_else(|| {
            corrupt(
                "partners",
                &self.partner_id,
                format!("unknown status {:?}", self.status),
            )
        })?;
        let rate = stored_rate(
            "partners",
            &self.partner_id,
            self.rate_per_second,
            self.burst,
        )?;
        let feature_defaults = match &self.feature_defaults {
            None => None,
            Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                corrupt(
                    "partners",
                    &self.partner_id,
                    format!("feature_defaults: {e}"),
                )
            })?),
        };
        Ok(PartnerRecord {
            partner_id: self.partner_id,
            name: self.name,
            status,
            country: self.country,
            group: self.group_name,
            contact: self.contact,
            billing_rate: self.billing_rate,
            feature_defaults,
            callback_url: self.callback_url,
            callback_ca_pem: self.callback_ca_pem,
            rate,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

impl KeyMetaRow {
    fn into_record(self) -> Result<KeyRecord, StoreError> {
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
    fn into_record(self, members: Vec<String>) -> Result<GroupRecord, StoreError> {
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

// === helpers inside a transaction ===

/// Inserts one `audit_log` row (`detail` as JSON text; `null` is stored as NULL).
pub(super) fn audit(
    c: &mut AnyConnection,
    actor: &str,
    action: &str,
    target: &str,
    detail: &serde_json::Value,
) -> Result<(), StoreError> {
    let text = (!detail.is_null()).then(|| detail.to_string());
    diesel::insert_into(audit_log::table)
        .values(NewAuditRow {
            at: unix_now(),
            actor,
            action,
            target,
            detail: text.as_deref(),
        })
        .execute(c)?;
    Ok(())
}

fn not_found(what: &'static str, key: &str) -> StoreError {
    StoreError::NotFound {
        what,
        key: key.to_owned(),
    }
}

fn partner_row(c: &mut AnyConnection, partner_id: &str) -> Result<FullPartnerRow, StoreError> {
    partners::table
        .filter(partners::partner_id.eq(partner_id))
        .select(FullPartnerRow::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| not_found("partner", partner_id))
}

/// The partner's row id, if it exists and may still be changed (not offboarded).
fn changeable_partner(c: &mut AnyConnection, partner_id: &str) -> Result<i64, StoreError> {
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

fn group_exists(c: &mut AnyConnection, name: &str) -> Result<bool, StoreError> {
    Ok(groups::table
        .filter(groups::name.eq(name))
        .count()
        .get_result::<i64>(c)?
        > 0)
}

fn require_group(c: &mut AnyConnection, name: &str) -> Result<(), StoreError> {
    if group_exists(c, name)? {
        Ok(())
    } else {
        Err(invalid("group", format!("no group named {name:?}")))
    }
}

fn keys_of(c: &mut AnyConnection, row_id: i64) -> Result<Vec<KeyRecord>, StoreError> {
    api_keys::table
        .filter(api_keys::partner_id.eq(row_id))
        .select(KeyMetaRow::as_select())
        .order(api_keys::id)
        .load(c)?
        .into_iter()
        .map(KeyMetaRow::into_record)
        .collect()
}

fn allow_of(c: &mut AnyConnection, row_id: i64) -> Result<Vec<String>, StoreError> {
    Ok(allow_entries::table
        .filter(allow_entries::partner_id.eq(row_id))
        .select(allow_entries::cidr)
        .order(allow_entries::id)
        .load(c)?)
}

fn grants_of(c: &mut AnyConnection, row_id: i64) -> Result<Vec<String>, StoreError> {
    Ok(grants::table
        .filter(grants::partner_id.eq(row_id))
        .select(grants::permission)
        .order(grants::id)
        .load(c)?)
}

fn members_of(c: &mut AnyConnection, group: &str) -> Result<Vec<String>, StoreError> {
    Ok(partners::table
        .filter(partners::group_name.eq(group))
        .select(partners::partner_id)
        .order(partners::partner_id)
        .load(c)?)
}

fn group_record(c: &mut AnyConnection, name: &str) -> Result<GroupRecord, StoreError> {
    let row = groups::table
        .filter(groups::name.eq(name))
        .select(FullGroupRow::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| not_found("group", name))?;
    let members = members_of(c, name)?;
    row.into_record(members)
}

fn rate_json(rate: Option<Rate>) -> serde_json::Value {
    match rate {
        None => serde_json::Value::Null,
        Some(r) => serde_json::json!({"per_second": r.per_second.get(), "burst": r.burst.get()}),
    }
}

/// What the audit log says about a CA bundle: its size and SHA-256, not the text.
fn pem_fingerprint(pem: Option<&str>) -> serde_json::Value {
    match pem {
        None => serde_json::Value::Null,
        Some(text) => {
            let digest: String = Sha256::digest(text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            serde_json::json!({"sha256": digest, "bytes": text.len()})
        }
    }
}

fn key_json(k: &KeyRecord) -> serde_json::Value {
    serde_json::json!({
        "id": k.id,
        "kind": k.kind.as_str(),
        "prefix": k.prefix,
        "expires_at": k.expires_at,
    })
}

fn touch(c: &mut AnyConnection, row_id: i64) -> Result<(), StoreError> {
    diesel::update(partners::table.filter(partners::id.eq(row_id)))
        .set(partners::updated_at.eq(unix_now()))
        .execute(c)?;
    Ok(())
}

// === impl Store (administration) ===

impl Store {
    /// Every partner, whatever its status, by partner id.
    pub fn list_partners(&self) -> Result<Vec<PartnerRecord>, StoreError> {
        self.conn()?.transaction(|c| {
            partners::table
                .select(FullPartnerRow::as_select())
                .order(partners::partner_id)
                .load(c)?
                .into_iter()
                .map(FullPartnerRow::into_record)
                .collect()
        })
    }

    /// One partner with its keys (metadata only), allowlist and grants, read consistently.
    pub fn partner_detail(&self, partner_id: &str) -> Result<PartnerDetail, StoreError> {
        self.conn()?.transaction(|c| {
            let row = partner_row(c, partner_id)?;
            let row_id = row.id;
            Ok(PartnerDetail {
                partner: row.into_record()?,
                keys: keys_of(c, row_id)?,
                allow: allow_of(c, row_id)?,
                grants: grants_of(c, row_id)?,
            })
        })
    }

    /// A partner's keys, oldest first (metadata only).
    pub fn list_keys(&self, partner_id: &str) -> Result<Vec<KeyRecord>, StoreError> {
        self.conn()?.transaction(|c| {
            let row_id =
                partner_row_id(c, partner_id)?.ok_or_else(|| not_found("partner", partner_id))?;
            keys_of(c, row_id)
        })
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

    /// A partner's allowlist, oldest first.
    pub fn list_allow(&self, partner_id: &str) -> Result<Vec<String>, StoreError> {
        self.conn()?.transaction(|c| {
            let row_id =
                partner_row_id(c, partner_id)?.ok_or_else(|| not_found("partner", partner_id))?;
            allow_of(c, row_id)
        })
    }

    /// A partner's grants, oldest first.
    pub fn list_grants(&self, partner_id: &str) -> Result<Vec<String>, StoreError> {
        self.conn()?.transaction(|c| {
            let row_id =
                partner_row_id(c, partner_id)?.ok_or_else(|| not_found("partner", partner_id))?;
            grants_of(c, row_id)
        })
    }

    /// Every group with its members, by name.
    pub fn list_groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        self.conn()?.transaction(|c| {
            let rows = groups::table
                .select(FullGroupRow::as_select())
                .order(groups::name)
                .load(c)?;
            rows.into_iter()
                .map(|row| {
                    let members = members_of(c, &row.name)?;
                    row.into_record(members)
                })
                .collect()
        })
    }

    /// One group with its members.
    pub fn group_detail(&self, name: &str) -> Result<GroupRecord, StoreError> {
        self.conn()?.transaction(|c| group_record(c, name))
    }

    /// The newest `limit` audit rows (at most [`MAX_AUDIT_ROWS`]), newest first; only those
    /// about `target` when given.
    pub fn audit_log(
        &self,
        target: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = limit.clamp(1, MAX_AUDIT_ROWS);
        let mut c = self.conn()?;
        let mut query = audit_log::table
            .select(AuditRow::as_select())
            .order(audit_log::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(target) = target {
            query = query.filter(audit_log::target.eq(target.to_owned()));
        }
        query
            .load(&mut *c)?
            .into_iter()
            .map(|r| {
                let detail = match &r.detail {
                    None => None,
                    Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                        corrupt("audit_log", &r.id.to_string(), format!("detail: {e}"))
                    })?),
                };
                Ok(AuditRecord {
                    id: r.id,
                    at: r.at,
                    actor: r.actor,
                    action: r.action,
                    target: r.target,
                    detail,
                })
            })
            .collect()
    }

    /// Changes a partner's details (values validated by the caller); an unknown group →
    /// `Invalid` (field `group`); an offboarded partner → `Conflict`. Audit: `partner.update`
    /// with each changed field's old and new value (a CA bundle by its SHA-256).
    pub fn update_partner(
        &self,
        actor: &str,
        partner_id: &str,
        changes: &PartnerChanges,
    ) -> Result<(), StoreError> {
        self.write(|c| {
            changeable_partner(c, partner_id)?;
            let old = partner_row(c, partner_id)?;
            let mut detail = serde_json::Map::new();
            let mut note = |field: &str, from: serde_json::Value, to: serde_json::Value| {
                detail.insert(
                    field.to_owned(),
                    serde_json::json!({"from": from, "to": to}),
                );
            };
            let target = partners::table.filter(partners::id.eq(old.id));
            if let Some(name) = &changes.name {
                diesel::update(target)
                    .set(partners::name.eq(name))
                    .execute(c)?;
                note("name", old.name.clone().into(), name.clone().into());
            }
            if let Some(v) = &changes.contact {
                diesel::update(target)
                    .set(partners::contact.eq(v))
                    .execute(c)?;
                note("contact", old.contact.clone().into(), v.clone().into());
            }
            if let Some(v) = &changes.billing_rate {
                diesel::update(target)
                    .set(partners::billing_rate.eq(v))
                    .execute(c)?;
                note(
                    "billing_rate",
                    old.billing_rate.clone().into(),
                    v.clone().into(),
                );
            }
            if let Some(v) = &changes.country {
                diesel::update(target)
                    .set(partners::country.eq(v))
                    .execute(c)?;
                note("country", old.country.clone().into(), v.clone().into());
            }
            if let Some(v) = &changes.group {
                if let Some(group) = v {
                    require_group(c, group)?;
                }
                diesel::update(target)
                    .set(partners::group_name.eq(v))
                    .execute(c)?;
                note("group", old.group_name.clone().into(), v.clone().into());
            }
            if let Some(v) = &changes.callback_url {
                diesel::update(target)
                    .set(partners::callback_url.eq(v))
                    .execute(c)?;
                note(
                    "callback_url",
                    old.callback_url.clone().into(),
                    v.clone().into(),
                );
            }
            if let Some(v) = &changes.callback_ca_pem {
                diesel::update(target)
                    .set(partners::callback_ca_pem.eq(v))
                    .execute(c)?;
                note(
                    "callback_ca_pem",
                    pem_fingerprint(old.callback_ca_pem.as_deref()),
                    pem_fingerprint(v.as_deref()),
                );
            }
            if let Some(v) = &changes.feature_defaults {
                let text = v.as_ref().map(ToString::to_string);
                diesel::update(target)
                    .set(partners::feature_defaults.eq(text))
                    .execute(c)?;
                let from = old
                    .feature_defaults
                    .as_deref()
                    .and_then(|t| serde_json::from_str(t).ok())
                    .unwrap_or(serde_json::Value::Null);
                note(
                    "feature_defaults",
                    from,
                    v.clone().unwrap_or(serde_json::Value::Null),
                );
            }
            touch(c, old.id)?;
            audit(
                c,
                actor,
                "partner.update",
                partner_id,
                &serde_json::Value::Object(detail),
            )
        })
    }

    /// Moves a partner through its status machine (see [`StatusChange`]); a transition that
    /// does not apply (already suspended, reinstating an active or an offboarded partner, …) →
    /// `Conflict`. Offboarding revokes every unrevoked key in the same transaction. Returns the
    /// keys revoked.
    pub fn change_status(
        &self,
        actor: &str,
        partner_id: &str,
        change: StatusChange,
        reason: Option<&str>,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let revoked = self.write(|c| {
            let row = partner_row(c, partner_id)?;
            let from = PartnerStatus::from_db(&row.status).ok_or_else(|| {
                corrupt(
                    "partners",
                    partner_id,
                    format!("unknown status {:?}", row.status),
                )
            })?;
            let conflict = |why: &str| StoreError::Conflict(format!("partner {partner_id} {why}"));
            let to = match (change, from) {
                (_, PartnerStatus::Offboarded) => {
                    return Err(conflict(match change {
                        StatusChange::Reinstate => {
                            "is offboarded: an offboarded partner cannot be reinstated"
                        }
                        StatusChange::Offboard => "is already offboarded",
                        StatusChange::Suspend => "is offboarded: it cannot be suspended",
                    }))
                }
                (StatusChange::Suspend, PartnerStatus::Suspended) => {
                    return Err(conflict("is already suspended"))
                }
                (StatusChange::Reinstate, PartnerStatus::Active) => {
                    return Err(conflict(
                        "is active: only a suspended partner can be reinstated",
                    ))
                }
                (StatusChange::Suspend, PartnerStatus::Active) => PartnerStatus::Suspended,
                (StatusChange::Reinstate, PartnerStatus::Suspended) => PartnerStatus::Active,
                (StatusChange::Offboard, _) => PartnerStatus::Offboarded,
            };
            let now = unix_now();
            diesel::update(partners::table.filter(partners::id.eq(row.id)))
                .set((
                    partners::status.eq(to.as_str()),
                    partners::updated_at.eq(now),
                ))
                .execute(c)?;
            let mut revoked = Vec::new();
            if to == PartnerStatus::Offboarded {
                revoked = keys_of(c, row.id)?
                    .into_iter()
                    .filter(|k| k.revoked_at.is_none())
                    .collect();
                diesel::update(
                    api_keys::table
                        .filter(api_keys::partner_id.eq(row.id))
                        .filter(api_keys::revoked_at.is_null()),
                )
                .set(api_keys::revoked_at.eq(Some(now)))
                .execute(c)?;
                for k in &mut revoked {
                    k.revoked_at = Some(now);
                }
            }
            let detail = serde_json::json!({
                "from": from.as_str(),
                "to": to.as_str(),
                "reason": reason,
                "keys_revoked": revoked.iter().map(key_json).collect::<Vec<_>>(),
            });
            audit(c, actor, change.action(), partner_id, &detail)?;
            Ok(revoked)
        })?;
        tracing::info!(partner = %partner_id, action = change.action(), %actor, "partner status changed");
        Ok(revoked)
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
        let (record, expiring) = self.write(|c| {
            let row_id = changeable_partner(c, partner_id)?;
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
            touch(c, row_id)?;
            let detail = serde_json::json!({
                "kind": kind.as_str(),
                "new_key": key_json(&record),
                "overlap_seconds": overlap_secs,
                "expiring": expiring.iter().map(key_json).collect::<Vec<_>>(),
            });
            audit(c, actor, "key.rotate", partner_id, &detail)?;
            Ok((record, expiring))
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
        let revoked = self.write(|c| {
            let row_id = changeable_partner(c, partner_id)?;
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
            touch(c, row_id)?;
            let detail = serde_json::json!({
                "revoked": chosen.iter().map(key_json).collect::<Vec<_>>(),
            });
            audit(c, actor, "key.revoke", partner_id, &detail)?;
            Ok(chosen)
        })?;
        tracing::info!(partner = %partner_id, revoked = revoked.len(), %actor, "keys revoked");
        Ok(revoked)
    }

    /// Adds a network (validated by the caller: no host bits) to the allowlist; already there →
    /// `Conflict`. Audit: `allow.add`.
    pub fn add_allow(
        &self,
        actor: &str,
        partner_id: &str,
        net: ipnet::IpNet,
    ) -> Result<(), StoreError> {
        let cidr = net.to_string();
        self.write(|c| {
            let row_id = changeable_partner(c, partner_id)?;
            let taken = || {
                StoreError::Conflict(format!(
                    "{cidr} is already on the allowlist of {partner_id}"
                ))
            };
            if allow_of(c, row_id)?.contains(&cidr) {
                return Err(taken());
            }
            diesel::insert_into(allow_entries::table)
                .values(NewAllowRow {
                    partner_id: row_id,
                    cidr: &cidr,
                    created_at: unix_now(),
                })
                .execute(c)
                .map_err(|e| conflict_or(e, || taken().to_string()))?;
            touch(c, row_id)?;
            audit(
                c,
                actor,
                "allow.add",
                partner_id,
                &serde_json::json!({"cidr": cidr}),
            )
        })
    }

    /// Removes a network from the allowlist; not there → `NotFound`; the last entry →
    /// `Conflict` (a partner is onboarded with at least one; suspend it to stop its calls).
    /// Audit: `allow.remove`.
    pub fn remove_allow(
        &self,
        actor: &str,
        partner_id: &str,
        net: ipnet::IpNet,
    ) -> Result<(), StoreError> {
        let cidr = net.to_string();
        self.write(|c| {
            let row_id = changeable_partner(c, partner_id)?;
            let entries = allow_of(c, row_id)?;
            if !entries.contains(&cidr) {
                return Err(not_found(
                    "allowlist entry",
                    &format!("{cidr} of {partner_id}"),
                ));
            }
            if entries.len() == 1 {
                return Err(StoreError::Conflict(format!(
                    "{cidr} is the last allowlist entry of {partner_id}: add another first, or \
                     suspend the partner to stop its calls"
                )));
            }
            diesel::delete(
                allow_entries::table
                    .filter(allow_entries::partner_id.eq(row_id))
                    .filter(allow_entries::cidr.eq(&cidr)),
            )
            .execute(c)?;
            touch(c, row_id)?;
            audit(
                c,
                actor,
                "allow.remove",
                partner_id,
                &serde_json::json!({"cidr": cidr}),
            )
        })
    }

    /// Grants a permission (validated by the caller); already granted → `Conflict`. Audit:
    /// `grant.add`.
    pub fn add_grant(
        &self,
        actor: &str,
        partner_id: &str,
        permission: &str,
    ) -> Result<(), StoreError> {
        self.write(|c| {
            let row_id = changeable_partner(c, partner_id)?;
            let taken =
                || StoreError::Conflict(format!("{permission} is already granted to {partner_id}"));
            if grants_of(c, row_id)?.iter().any(|g| g == permission) {
                return Err(taken());
            }
            diesel::insert_into(grants::table)
                .values(NewGrantRow {
                    partner_id: row_id,
                    permission,
                    created_at: unix_now(),
                })
                .execute(c)
                .map_err(|e| conflict_or(e, || taken().to_string()))?;
            touch(c, row_id)?;
            audit(
                c,
                actor,
                "grant.add",
                partner_id,
                &serde_json::json!({"permission": permission}),
            )
        })
    }

    /// Revokes a permission; not granted (exactly as written) → `NotFound`. Audit:
    /// `grant.revoke`.
    pub fn remove_grant(
        &self,
        actor: &str,
        partner_id: &str,
        permission: &str,
    ) -> Result<(), StoreError> {
        self.write(|c| {
            let row_id = changeable_partner(c, partner_id)?;
            let n = diesel::delete(
                grants::table
                    .filter(grants::partner_id.eq(row_id))
                    .filter(grants::permission.eq(permission)),
            )
            .execute(c)?;
            if n == 0 {
                return Err(not_found("grant", &format!("{permission} of {partner_id}")));
            }
            touch(c, row_id)?;
            audit(
                c,
                actor,
                "grant.revoke",
                partner_id,
                &serde_json::json!({"permission": permission}),
            )
        })
    }

    /// Creates a group (name validated by the caller); a taken name → `Conflict`. Audit:
    /// `group.create` on `group:<name>`.
    pub fn create_group_as(
        &self,
        actor: &str,
        name: &str,
        rate: Option<Rate>,
        aggregate: Option<Rate>,
    ) -> Result<(), StoreError> {
        let (rate_per_second, burst) = rate_columns("rate", rate)?;
        let (aggregate_rate_per_second, aggregate_burst) = rate_columns("aggregate", aggregate)?;
        self.write(|c| {
            let taken = || StoreError::Conflict(format!("group {name} already exists"));
            if group_exists(c, name)? {
                return Err(taken());
            }
            diesel::insert_into(groups::table)
                .values(NewGroupRow {
                    name,
                    rate_per_second,
                    burst,
                    aggregate_rate_per_second,
                    aggregate_burst,
                    created_at: unix_now(),
                })
                .execute(c)
                .map_err(|e| conflict_or(e, || taken().to_string()))?;
            let detail =
                serde_json::json!({"rate": rate_json(rate), "aggregate": rate_json(aggregate)});
            audit(c, actor, "group.create", &format!("group:{name}"), &detail)
        })
    }

    /// Changes a group's rates and/or name (members follow a rename). Unknown group →
    /// `NotFound`; a taken new name → `Conflict`. Audit: `group.update` on the old
    /// `group:<name>`. Returns the group's name after the change.
    pub fn update_group(
        &self,
        actor: &str,
        name: &str,
        changes: &GroupChanges,
    ) -> Result<String, StoreError> {
        self.write(|c| {
            let old = group_record(c, name)?;
            let rate = changes.rate.unwrap_or(old.rate);
            let aggregate = changes.aggregate.unwrap_or(old.aggregate);
            let (rate_per_second, burst) = rate_columns("rate", rate)?;
            let (aggregate_rate_per_second, aggregate_burst) =
                rate_columns("aggregate", aggregate)?;
            let new_name = changes.rename.clone().unwrap_or_else(|| name.to_owned());
            if new_name == name {
                diesel::update(groups::table.filter(groups::name.eq(name)))
                    .set((
                        groups::rate_per_second.eq(rate_per_second),
                        groups::burst.eq(burst),
                        groups::aggregate_rate_per_second.eq(aggregate_rate_per_second),
                        groups::aggregate_burst.eq(aggregate_burst),
                    ))
                    .execute(c)?;
            } else {
                // partners.group_name references groups.name: insert the new row, move the
                // members, then delete the old row.
                if group_exists(c, &new_name)? {
                    return Err(StoreError::Conflict(format!(
                        "group {new_name} already exists"
                    )));
                }
                diesel::insert_into(groups::table)
                    .values(NewGroupRow {
                        name: &new_name,
                        rate_per_second,
                        burst,
                        aggregate_rate_per_second,
                        aggregate_burst,
                        created_at: old.created_at,
                    })
                    .execute(c)?;
                diesel::update(partners::table.filter(partners::group_name.eq(name)))
                    .set((
                        partners::group_name.eq(&new_name),
                        partners::updated_at.eq(unix_now()),
                    ))
                    .execute(c)?;
                diesel::delete(groups::table.filter(groups::name.eq(name))).execute(c)?;
            }
            let mut detail = serde_json::Map::new();
            if changes.rename.is_some() {
                detail.insert(
                    "name".into(),
                    serde_json::json!({"from": name, "to": new_name}),
                );
            }
            if changes.rate.is_some() {
                detail.insert(
                    "rate".into(),
                    serde_json::json!({"from": rate_json(old.rate), "to": rate_json(rate)}),
                );
            }
            if changes.aggregate.is_some() {
                detail.insert(
                    "aggregate".into(),
                    serde_json::json!({"from": rate_json(old.aggregate), "to": rate_json(aggregate)}),
                );
            }
            audit(
                c,
                actor,
                "group.update",
                &format!("group:{name}"),
                &serde_json::Value::Object(detail),
            )?;
            Ok(new_name)
        })
    }

    /// Puts a partner into a group (which must exist: else `Invalid`, field `group`) or, with
    /// `None`, into none. Audit: `group.assign`.
    pub fn assign_group(
        &self,
        actor: &str,
        partner_id: &str,
        group: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write(|c| {
            let row_id = changeable_partner(c, partner_id)?;
            let old = partner_row(c, partner_id)?.group_name;
            if let Some(g) = group {
                require_group(c, g)?;
            }
            diesel::update(partners::table.filter(partners::id.eq(row_id)))
                .set((
                    partners::group_name.eq(group),
                    partners::updated_at.eq(unix_now()),
                ))
                .execute(c)?;
            audit(
                c,
                actor,
                "group.assign",
                partner_id,
                &serde_json::json!({"from": old, "to": group}),
            )
        })
    }

    /// Sets (or with `None` clears) the partner's own rate. Audit: `throttle.set` /
    /// `throttle.clear`.
    pub fn set_partner_rate_as(
        &self,
        actor: &str,
        partner_id: &str,
        rate: Option<Rate>,
    ) -> Result<(), StoreError> {
        let (rate_per_second, burst) = rate_columns("rate", rate)?;
        self.write(|c| {
            let row_id = changeable_partner(c, partner_id)?;
            let old = partner_row(c, partner_id)?;
            let old_rate = stored_rate("partners", partner_id, old.rate_per_second, old.burst)?;
            diesel::update(partners::table.filter(partners::id.eq(row_id)))
                .set((
                    partners::rate_per_second.eq(rate_per_second),
                    partners::burst.eq(burst),
                    partners::updated_at.eq(unix_now()),
                ))
                .execute(c)?;
            let action = if rate.is_some() {
                "throttle.set"
            } else {
                "throttle.clear"
            };
            audit(
                c,
                actor,
                action,
                partner_id,
                &serde_json::json!({"from": rate_json(old_rate), "to": rate_json(rate)}),
            )
        })
    }
}
