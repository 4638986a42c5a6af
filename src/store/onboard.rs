//! Writes without an actor: onboarding a partner (one transaction: partner, keys, allowlist,
//! grants; audited when an actor is given), revoking keys, groups, rates and status. Input is
//! validated before the transaction starts; every write bumps `meta.revision` (see
//! `Store::write`). Uses `rules`, `models` and `schema`; never `admin`.

use std::collections::BTreeSet;
use std::time::Duration;

use diesel::prelude::*;
use rand::RngCore;

use super::models::{NewAllowRow, NewGrantRow, NewKeyRow, NewPartnerRow, PartnerUpdate};
use super::rules::{
    audit, check_country, check_grant, check_name, check_net, conflict_or, existing_partner,
    insert_group, invalid, partner_row_id, rate_columns, require_group, update_partner,
    valid_group_name, valid_partner_id,
};
use super::schema::{allow_entries, api_keys, grants, partners};
use super::{unix_now, AnyConnection, PartnerStatus, Rate, Store, StoreError};
use crate::secret::{self, KeyKind, Secret};

/// A partner to onboard.
#[derive(Clone, Debug, Default)]
pub struct NewPartner {
    /// `[A-Z0-9][A-Z0-9-]{2,31}`; `None`: `PARTNER-0001`, `-0002`… from the row id.
    pub partner_id: Option<String>,
    /// Display name, 1..200 characters, no surrounding whitespace or control characters.
    pub name: String,
    /// ISO 3166-1 alpha-2 (two uppercase ASCII letters).
    pub country: Option<String>,
    /// An existing group.
    pub group: Option<String>,
    /// Networks the partner may call from; at least one, without host bits.
    pub allow: Vec<ipnet::IpNet>,
    /// `*`, `<domain>.*` or a known permission (e.g. `accounts.create`).
    pub grants: Vec<String>,
    /// Lifetime of both keys; `None`: they do not expire.
    pub key_ttl: Option<Duration>,
    /// Default feature settings, a JSON object keyed by feature code (the caller checks it
    /// against the contract with `provision::features::validate_defaults`).
    pub feature_defaults: Option<serde_json::Value>,
}

/// The result of onboarding. The keys exist only here: the database has their hashes.
#[derive(Debug)]
pub struct CreatedPartner {
    /// The partner id (given or generated).
    pub partner_id: String,
    /// The partner key (`pgk_…`), for `PartnerAuth/ApiKey`.
    pub api_key: Secret,
    /// The callback key (`pgc_…`).
    pub callback_key: Secret,
}

impl NewPartner {
    /// Checks everything that can be checked without the database (all but the group's
    /// existence and the partner id's uniqueness), so a command can refuse bad input before it
    /// opens — or creates — a database.
    pub fn check(&self, known_permissions: &[&str]) -> Result<(), StoreError> {
        validate(self.clone(), known_permissions).map(|_| ())
    }
}

/// A [`NewPartner`] that passed validation (deduplicated allowlist and grants).
pub(super) struct ValidPartner {
    partner_id: Option<String>,
    name: String,
    country: Option<String>,
    group: Option<String>,
    allow: BTreeSet<ipnet::IpNet>,
    grants: BTreeSet<String>,
    key_ttl_secs: Option<i64>,
    feature_defaults: Option<String>,
}

pub(super) fn validate(
    new: NewPartner,
    known_permissions: &[&str],
) -> Result<ValidPartner, StoreError> {
    if let Some(id) = &new.partner_id {
        if !valid_partner_id(id) {
            return Err(invalid(
                "partner_id",
                format!("{id:?} does not match [A-Z0-9][A-Z0-9-]{{2,31}}"),
            ));
        }
    }
    check_name(&new.name)?;
    if let Some(c) = &new.country {
        check_country(c)?;
    }
    if new.allow.is_empty() {
        return Err(invalid("allow", "at least one network is required"));
    }
    for net in &new.allow {
        check_net("allow", net)?;
    }
    for grant in &new.grants {
        check_grant(grant, known_permissions)?;
    }
    let key_ttl_secs = match new.key_ttl {
        None => None,
        Some(ttl) if ttl.as_secs() == 0 => {
            return Err(invalid("key_ttl", "must be at least one second"))
        }
        Some(ttl) => Some(
            i64::try_from(ttl.as_secs())
                .ok()
                .filter(|s| unix_now().checked_add(*s).is_some())
                .ok_or_else(|| invalid("key_ttl", "too long"))?,
        ),
    };
    let feature_defaults = match &new.feature_defaults {
        None => None,
        Some(v) if v.is_object() => Some(v.to_string()),
        Some(_) => {
            return Err(invalid(
                "feature_defaults",
                "must be a JSON object keyed by feature code",
            ))
        }
    };
    Ok(ValidPartner {
        feature_defaults,
        partner_id: new.partner_id,
        name: new.name,
        country: new.country,
        group: new.group,
        allow: new.allow.into_iter().collect(),
        grants: new.grants.into_iter().collect(),
        key_ttl_secs,
    })
}

/// Inserts a validated partner in the caller's transaction: the partner row (status `active`),
/// its allowlist and grants — everything of onboarding but the keys. Returns the row id and the
/// partner id (given, or `PARTNER-0001`, … from the row id). The one partner-creating insert:
/// `partner create` and the approval of an enrollment both come here.
pub(super) fn insert_partner(
    c: &mut AnyConnection,
    p: &ValidPartner,
    now: i64,
) -> Result<(i64, String), StoreError> {
    if let Some(group) = &p.group {
        require_group(c, group)?;
    }
    let taken = |id: &str| StoreError::Conflict(format!("partner {id} already exists"));
    if let Some(id) = &p.partner_id {
        if partner_row_id(c, id)?.is_some() {
            return Err(taken(id));
        }
    }
    // A generated id derives from the row id, known only after the insert: insert under
    // a unique placeholder (never visible outside this transaction), then rename.
    let placeholder = match &p.partner_id {
        Some(id) => id.clone(),
        None => {
            let mut nonce = [0u8; 8];
            rand::rng().fill_bytes(&mut nonce);
            let hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
            format!("~pending~{hex}")
        }
    };
    let row_id: i64 = diesel::insert_into(partners::table)
        .values(NewPartnerRow {
            partner_id: &placeholder,
            name: &p.name,
            country: p.country.as_deref(),
            group_name: p.group.as_deref(),
            status: PartnerStatus::Active.as_str(),
            feature_defaults: p.feature_defaults.as_deref(),
            created_at: now,
            updated_at: now,
        })
        .returning(partners::id)
        .get_result(c)
        .map_err(|e| conflict_or(e, || format!("partner {placeholder} already exists")))?;
    let partner_id = match &p.partner_id {
        Some(id) => id.clone(),
        None => {
            let id = format!("PARTNER-{row_id:04}");
            diesel::update(partners::table.filter(partners::id.eq(row_id)))
                .set(partners::partner_id.eq(&id))
                .execute(c)
                .map_err(|e| conflict_or(e, || format!("partner {id} already exists")))?;
            id
        }
    };

    for net in &p.allow {
        diesel::insert_into(allow_entries::table)
            .values(NewAllowRow {
                partner_id: row_id,
                cidr: &net.to_string(),
                created_at: now,
            })
            .execute(c)?;
    }
    for grant in &p.grants {
        diesel::insert_into(grants::table)
            .values(NewGrantRow {
                partner_id: row_id,
                permission: grant,
                created_at: now,
            })
            .execute(c)?;
    }
    Ok((row_id, partner_id))
}

/// Inserts the hashes and display prefixes of a partner key and a callback key for the partner
/// row `row_id`, in the caller's transaction (the keys themselves are never stored). Returns the
/// two display prefixes, for the audit row.
pub(super) fn insert_keys(
    c: &mut AnyConnection,
    row_id: i64,
    api_key: &Secret,
    callback_key: &Secret,
    expires_at: Option<i64>,
    now: i64,
) -> Result<[String; 2], StoreError> {
    for (kind, key) in [
        (KeyKind::Partner, api_key),
        (KeyKind::Callback, callback_key),
    ] {
        let text = key.expose();
        diesel::insert_into(api_keys::table)
            .values(NewKeyRow {
                partner_id: row_id,
                kind: kind.as_str(),
                prefix: &secret::display_prefix(text),
                hash: &secret::hash(text),
                created_at: now,
                expires_at,
            })
            .execute(c)?;
    }
    Ok([
        secret::display_prefix(api_key.expose()),
        secret::display_prefix(callback_key.expose()),
    ])
}

/// The audit detail of `partner.create`: what was created, with the keys' display prefixes
/// (none when the keys are made later, at an enrollment's pickup).
pub(super) fn partner_created_detail(p: &ValidPartner, keys: &[String]) -> serde_json::Value {
    serde_json::json!({
        "name": p.name,
        "country": p.country,
        "group": p.group,
        "allow": p.allow.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "grants": p.grants,
        "feature_defaults": p.feature_defaults.is_some(),
        "keys": keys,
        "key_ttl_seconds": p.key_ttl_secs,
    })
}

// === impl Store (writes) ===

impl Store {
    /// Onboards a partner in one transaction: the partner row (status `active`), a partner
    /// key and a callback key (hashes and display prefixes only), the allowlist and the grants.
    /// The keys are returned once and never stored.
    ///
    /// `known_permissions` lists the exact permissions (the gateway passes every operation's
    /// `permission()`); their domains (the part before the dot) make the valid `domain.*`
    /// grants. Invalid input → [`StoreError::Invalid`] naming the field, before anything is
    /// written; an unknown group → `Invalid` (field `group`); a taken partner id →
    /// [`StoreError::Conflict`].
    pub fn create_partner(
        &self,
        new: NewPartner,
        known_permissions: &[&str],
    ) -> Result<CreatedPartner, StoreError> {
        self.create_partner_audited(new, known_permissions, None)
    }

    /// [`Store::create_partner`], recording `partner.create` by `actor` in `audit_log` in the
    /// same transaction (the key prefixes, never the keys).
    pub fn create_partner_as(
        &self,
        actor: &str,
        new: NewPartner,
        known_permissions: &[&str],
    ) -> Result<CreatedPartner, StoreError> {
        self.create_partner_audited(new, known_permissions, Some(actor))
    }

    fn create_partner_audited(
        &self,
        new: NewPartner,
        known_permissions: &[&str],
        actor: Option<&str>,
    ) -> Result<CreatedPartner, StoreError> {
        let p = validate(new, known_permissions)?;
        let api_key = secret::generate(KeyKind::Partner);
        let callback_key = secret::generate(KeyKind::Callback);
        let partner_id = self.write(|c| {
            let now = unix_now();
            let (row_id, partner_id) = insert_partner(c, &p, now)?;
            let expires_at = p.key_ttl_secs.map(|ttl| now.saturating_add(ttl));
            let keys = insert_keys(c, row_id, &api_key, &callback_key, expires_at, now)?;
            if let Some(actor) = actor {
                let detail = partner_created_detail(&p, &keys);
                audit(c, actor, "partner.create", &partner_id, &detail)?;
            }
            Ok(partner_id)
        })?;
        tracing::info!(
            partner = %partner_id,
            api_key = %api_key,
            callback_key = %callback_key,
            "partner onboarded"
        );
        Ok(CreatedPartner {
            partner_id,
            api_key,
            callback_key,
        })
    }

    /// Revokes every active key of `kind` of the partner, now. Returns how many were revoked.
    pub fn revoke_key(&self, partner_id: &str, kind: KeyKind) -> Result<u64, StoreError> {
        let revoked = self.write(|c| {
            let row_id = existing_partner(c, partner_id)?;
            let n = diesel::update(
                api_keys::table
                    .filter(api_keys::partner_id.eq(row_id))
                    .filter(api_keys::kind.eq(kind.as_str()))
                    .filter(api_keys::revoked_at.is_null()),
            )
            .set(api_keys::revoked_at.eq(Some(unix_now())))
            .execute(c)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })?;
        tracing::info!(partner = %partner_id, %kind, revoked, "keys revoked");
        Ok(revoked)
    }

    /// Creates a group with a per-member default rate and an aggregate cap. The name is
    /// `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 64 characters; a taken name → `Conflict`.
    pub fn create_group(
        &self,
        name: &str,
        rate: Option<Rate>,
        aggregate: Option<Rate>,
    ) -> Result<(), StoreError> {
        if !valid_group_name(name) {
            return Err(invalid(
                "group",
                format!("{name:?} does not match [A-Za-z0-9][A-Za-z0-9._-]{{0,63}}"),
            ));
        }
        let rate = rate_columns("rate", rate)?;
        let aggregate = rate_columns("aggregate", aggregate)?;
        self.write(|c| {
            insert_group(c, name, rate, aggregate, unix_now())
                .map_err(|e| conflict_or(e, || format!("group {name} already exists")))?;
            Ok(())
        })
    }

    /// Sets (or with `None` clears) the partner's own rate.
    pub fn set_partner_rate(&self, partner_id: &str, rate: Option<Rate>) -> Result<(), StoreError> {
        let (rate_per_second, burst) = rate_columns("rate", rate)?;
        self.write(|c| {
            let changes = PartnerUpdate {
                rate_per_second: Some(rate_per_second),
                burst: Some(burst),
                ..PartnerUpdate::now()
            };
            update_partner(c, partner_id, changes)
        })
    }

    /// Sets the partner's status.
    pub fn set_status(&self, partner_id: &str, status: PartnerStatus) -> Result<(), StoreError> {
        self.write(|c| {
            let changes = PartnerUpdate {
                status: Some(status.as_str()),
                ..PartnerUpdate::now()
            };
            update_partner(c, partner_id, changes)
        })?;
        tracing::info!(partner = %partner_id, status = status.as_str(), "partner status set");
        Ok(())
    }
}
