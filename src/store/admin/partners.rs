//! Partners: list, detail, change details, move through the status machine (offboarding
//! revokes every key). Uses `records` and `rules`.

use diesel::prelude::*;
use sha2::{Digest, Sha256};

use super::records::{
    allow_of, callback_rate_of, grants_of, key_json, keys_of, partner_row, FullPartnerRow,
    KeyRecord, PartnerDetail, PartnerRecord,
};
use crate::certificate::Fingerprint;
use crate::store::client_certs::{self, NewClientCert};
use crate::store::models::PartnerUpdate;
use crate::store::rules::{audit, corrupt, require_group};
use crate::store::schema::{api_keys, callback_rates, partners};
use crate::store::{unix_now, PartnerStatus, Store, StoreError};

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
    /// Client certificates to register (read by the caller).
    pub add_client_certs: Vec<NewClientCert>,
    /// Registered client certificates to remove, by fingerprint.
    pub remove_client_certs: Vec<Fingerprint>,
    /// The partner CA (PEM, checked by the caller) and the expected subject, set or cleared
    /// together.
    pub client_ca: Option<Option<(String, String)>>,
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

/// What the audit log says about a client CA: its fingerprint and the expected subject.
fn client_ca_detail(pem: &str, subject: &str) -> serde_json::Value {
    serde_json::json!({"ca": pem_fingerprint(Some(pem)), "subject": subject})
}

impl Store {
    /// Every partner, whatever its status, by partner id.
    pub fn list_partners(&self) -> Result<Vec<PartnerRecord>, StoreError> {
        self.conn()?.transaction(|c| {
            partners::table
                .left_join(callback_rates::table)
                .select((
                    FullPartnerRow::as_select(),
                    (callback_rates::rate_per_second, callback_rates::burst).nullable(),
                ))
                .order(partners::partner_id)
                .load::<(FullPartnerRow, Option<(i32, i32)>)>(c)?
                .into_iter()
                .map(|(row, callback)| row.into_record(callback))
                .collect()
        })
    }

    /// One partner with its keys (metadata only), allowlist and grants, read consistently.
    pub fn partner_detail(&self, partner_id: &str) -> Result<PartnerDetail, StoreError> {
        self.conn()?.transaction(|c| {
            let row = partner_row(c, partner_id)?;
            let row_id = row.base.id;
            let callback = callback_rate_of(c, row_id)?;
            Ok(PartnerDetail {
                partner: row.into_record(callback)?,
                keys: keys_of(c, row_id)?,
                allow: allow_of(c, row_id)?,
                grants: grants_of(c, row_id)?,
                client_certs: client_certs::certs_of(c, row_id)?,
                client_ca: client_certs::ca_of(c, row_id)?,
            })
        })
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
        self.change_partner(actor, partner_id, "partner.update", |c, row_id| {
            let old = partner_row(c, partner_id)?;
            if let Some(Some(group)) = &changes.group {
                require_group(c, group)?;
            }
            let defaults = changes
                .feature_defaults
                .as_ref()
                .map(|v| v.as_ref().map(ToString::to_string));
            let update = PartnerUpdate {
                name: changes.name.as_deref(),
                contact: text(&changes.contact),
                billing_rate: text(&changes.billing_rate),
                country: text(&changes.country),
                group_name: text(&changes.group),
                callback_url: text(&changes.callback_url),
                callback_ca_pem: text(&changes.callback_ca_pem),
                feature_defaults: defaults,
                ..PartnerUpdate::now()
            };
            diesel::update(partners::table.filter(partners::id.eq(row_id)))
                .set(update)
                .execute(c)?;
            let old_ca = client_certs::ca_of(c, row_id)?;
            if let Some(ca) = &changes.client_ca {
                client_certs::set_ca(c, row_id, ca.as_ref())?;
            }
            let certs = client_certs::apply(
                c,
                row_id,
                partner_id,
                &changes.add_client_certs,
                &changes.remove_client_certs,
            )?;
            let mut detail = update_detail(&old, changes);
            if let Some(map) = detail.as_object_mut() {
                if let Some(certs) = certs {
                    map.insert("client_certs".to_owned(), certs);
                }
                if let Some(v) = &changes.client_ca {
                    let from = old_ca.map_or(serde_json::Value::Null, |ca| {
                        client_ca_detail(&ca.ca_pem, &ca.subject)
                    });
                    let to = v
                        .as_ref()
                        .map_or(serde_json::Value::Null, |(pem, subject)| {
                            client_ca_detail(pem, subject)
                        });
                    map.insert(
                        "client_ca".to_owned(),
                        serde_json::json!({"from": from, "to": to}),
                    );
                }
            }
            Ok(((), detail))
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
            let from = PartnerStatus::from_db(&row.base.status).ok_or_else(|| {
                corrupt(
                    "partners",
                    partner_id,
                    format!("unknown status {:?}", row.base.status),
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
            let changes = PartnerUpdate {
                status: Some(to.as_str()),
                updated_at: Some(now),
                ..PartnerUpdate::default()
            };
            diesel::update(partners::table.filter(partners::id.eq(row.base.id)))
                .set(changes)
                .execute(c)?;
            let mut revoked = Vec::new();
            if to == PartnerStatus::Offboarded {
                revoked = keys_of(c, row.base.id)?
                    .into_iter()
                    .filter(|k| k.revoked_at.is_none())
                    .collect();
                diesel::update(
                    api_keys::table
                        .filter(api_keys::partner_id.eq(row.base.id))
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
}

/// A text change as a column change.
fn text(change: &Option<Option<String>>) -> Option<Option<&str>> {
    change.as_ref().map(Option::as_deref)
}

/// The audit detail of [`Store::update_partner`]: each changed field's old and new value.
fn update_detail(old: &FullPartnerRow, changes: &PartnerChanges) -> serde_json::Value {
    let mut detail = serde_json::Map::new();
    let mut note = |field: &str, from: serde_json::Value, to: serde_json::Value| {
        detail.insert(
            field.to_owned(),
            serde_json::json!({"from": from, "to": to}),
        );
    };
    if let Some(name) = &changes.name {
        note("name", old.base.name.clone().into(), name.clone().into());
    }
    let texts = [
        ("contact", &changes.contact, &old.contact),
        ("billing_rate", &changes.billing_rate, &old.billing_rate),
        ("country", &changes.country, &old.base.country),
        ("group", &changes.group, &old.base.group_name),
        (
            "callback_url",
            &changes.callback_url,
            &old.base.callback_url,
        ),
    ];
    for (field, new, old) in texts {
        if let Some(v) = new {
            note(field, old.clone().into(), v.clone().into());
        }
    }
    if let Some(v) = &changes.callback_ca_pem {
        note(
            "callback_ca_pem",
            pem_fingerprint(old.base.callback_ca_pem.as_deref()),
            pem_fingerprint(v.as_deref()),
        );
    }
    if let Some(v) = &changes.feature_defaults {
        let from = old
            .base
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
    serde_json::Value::Object(detail)
}
