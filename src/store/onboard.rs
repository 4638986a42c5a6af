//! Writes: onboarding a partner (one transaction: partner, keys, allowlist, grants), revoking
//! keys, groups, rates and status. Input is validated before the transaction starts; every
//! write bumps `meta.revision` (see `Store::write`).

use std::collections::BTreeSet;
use std::time::Duration;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use rand::RngCore;

use super::conn::AnyConnection;
use super::models::{NewAllowRow, NewGrantRow, NewGroupRow, NewKeyRow, NewPartnerRow};
use super::schema::{allow_entries, api_keys, grants, groups, partners};
use super::{unix_now, PartnerStatus, Rate, Store, StoreError};
use crate::secret::{self, KeyKind, Secret};

/// Longest partner display name, in characters.
const MAX_NAME_CHARS: usize = 200;
/// Longest group name, in characters.
const MAX_GROUP_CHARS: usize = 64;

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
struct ValidPartner {
    partner_id: Option<String>,
    name: String,
    country: Option<String>,
    group: Option<String>,
    allow: BTreeSet<ipnet::IpNet>,
    grants: BTreeSet<String>,
    key_ttl_secs: Option<i64>,
    feature_defaults: Option<String>,
}

pub(super) fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Whether `id` matches `[A-Z0-9][A-Z0-9-]{2,31}`.
pub(crate) fn valid_partner_id(id: &str) -> bool {
    let b = id.as_bytes();
    (3..=32).contains(&b.len())
        && (b[0].is_ascii_uppercase() || b[0].is_ascii_digit())
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'-')
}

fn validate(new: NewPartner, known_permissions: &[&str]) -> Result<ValidPartner, StoreError> {
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

/// A partner's display name: 1..200 characters, no surrounding whitespace or control characters.
pub(crate) fn check_name(name: &str) -> Result<(), StoreError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(invalid(
            "name",
            format!("must be 1..{MAX_NAME_CHARS} characters, not {chars}"),
        ));
    }
    if name.trim() != name || name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            "no leading/trailing whitespace or control characters",
        ));
    }
    Ok(())
}

/// ISO 3166-1 alpha-2: two uppercase ASCII letters.
pub(crate) fn check_country(country: &str) -> Result<(), StoreError> {
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid(
            "country",
            format!("{country:?} is not two uppercase letters (ISO 3166-1 alpha-2)"),
        ));
    }
    Ok(())
}

/// An allowlist network must be written without host bits: `10.1.2.3/8` is refused (did the
/// operator mean `10.0.0.0/8` or `10.1.2.3/32`?) rather than silently widened.
pub(crate) fn check_net(field: &'static str, net: &ipnet::IpNet) -> Result<(), StoreError> {
    if net.trunc() != *net {
        return Err(invalid(
            field,
            format!("{net} has host bits set; did you mean {}?", net.trunc()),
        ));
    }
    Ok(())
}

/// A grant is `*`, `<domain>.*` for a domain of a known permission, or a known permission.
pub(crate) fn check_grant(grant: &str, known: &[&str]) -> Result<(), StoreError> {
    let domains: BTreeSet<&str> = known
        .iter()
        .filter_map(|p| p.split_once('.').map(|(d, _)| d))
        .collect();
    let ok = grant == "*"
        || known.contains(&grant)
        || grant
            .strip_suffix(".*")
            .is_some_and(|d| domains.contains(d));
    if ok {
        return Ok(());
    }
    let domain_list: Vec<String> = domains.iter().map(|d| format!("{d}.*")).collect();
    Err(invalid(
        "grants",
        format!(
            "unknown permission {grant:?}: use *, one of {} or an operation's permission such as {}",
            domain_list.join(", "),
            known.first().copied().unwrap_or("accounts.create")
        ),
    ))
}

/// Whether `name` matches `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
pub(crate) fn valid_group_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_GROUP_CHARS
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A rate as stored: (per second, burst), each at most `i32::MAX`.
pub(super) fn rate_columns(
    field: &'static str,
    rate: Option<Rate>,
) -> Result<(Option<i32>, Option<i32>), StoreError> {
    let Some(rate) = rate else {
        return Ok((None, None));
    };
    let col = |v: std::num::NonZeroU32| {
        i32::try_from(v.get()).map_err(|_| invalid(field, format!("{v} is above {}", i32::MAX)))
    };
    Ok((Some(col(rate.per_second)?), Some(col(rate.burst)?)))
}

/// Unique violations are conflicts; anything else stays a query error.
pub(super) fn conflict_or(e: DieselError, what: impl FnOnce() -> String) -> StoreError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            StoreError::Conflict(what())
        }
        other => StoreError::Query(other),
    }
}

pub(super) fn partner_row_id(
    c: &mut AnyConnection,
    partner_id: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(partners::table
        .filter(partners::partner_id.eq(partner_id))
        .select(partners::id)
        .first::<i64>(c)
        .optional()?)
}

fn existing_partner(c: &mut AnyConnection, partner_id: &str) -> Result<i64, StoreError> {
    partner_row_id(c, partner_id)?.ok_or_else(|| StoreError::NotFound {
        what: "partner",
        key: partner_id.to_owned(),
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
            if let Some(group) = &p.group {
                let found = groups::table
                    .filter(groups::name.eq(group))
                    .count()
                    .get_result::<i64>(c)?;
                if found == 0 {
                    return Err(invalid("group", format!("no group named {group:?}")));
                }
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

            let expires_at = p.key_ttl_secs.map(|ttl| now.saturating_add(ttl));
            for (kind, key) in [
                (KeyKind::Partner, &api_key),
                (KeyKind::Callback, &callback_key),
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
            if let Some(actor) = actor {
                let detail = serde_json::json!({
                    "name": p.name,
                    "country": p.country,
                    "group": p.group,
                    "allow": p.allow.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "grants": p.grants,
                    "feature_defaults": p.feature_defaults.is_some(),
                    "keys": [
                        secret::display_prefix(api_key.expose()),
                        secret::display_prefix(callback_key.expose()),
                    ],
                    "key_ttl_seconds": p.key_ttl_secs,
                });
                super::admin::audit(c, actor, "partner.create", &partner_id, &detail)?;
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
        let (rate_per_second, burst) = rate_columns("rate", rate)?;
        let (aggregate_rate_per_second, aggregate_burst) = rate_columns("aggregate", aggregate)?;
        self.write(|c| {
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
                .map_err(|e| conflict_or(e, || format!("group {name} already exists")))?;
            Ok(())
        })
    }

    /// Sets (or with `None` clears) the partner's own rate.
    pub fn set_partner_rate(&self, partner_id: &str, rate: Option<Rate>) -> Result<(), StoreError> {
        let (rate_per_second, burst) = rate_columns("rate", rate)?;
        self.write(|c| {
            let n = diesel::update(partners::table.filter(partners::partner_id.eq(partner_id)))
                .set((
                    partners::rate_per_second.eq(rate_per_second),
                    partners::burst.eq(burst),
                    partners::updated_at.eq(unix_now()),
                ))
                .execute(c)?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: "partner",
                    key: partner_id.to_owned(),
                });
            }
            Ok(())
        })
    }

    /// Sets the partner's status.
    pub fn set_status(&self, partner_id: &str, status: PartnerStatus) -> Result<(), StoreError> {
        self.write(|c| {
            let n = diesel::update(partners::table.filter(partners::partner_id.eq(partner_id)))
                .set((
                    partners::status.eq(status.as_str()),
                    partners::updated_at.eq(unix_now()),
                ))
                .execute(c)?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: "partner",
                    key: partner_id.to_owned(),
                });
            }
            Ok(())
        })?;
        tracing::info!(partner = %partner_id, status = status.as_str(), "partner status set");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: [&str; 3] = ["accounts.create", "accounts.get", "devices.add"];

    #[test]
    fn partner_id_pattern() {
        for ok in [
            "PARTNER-0001",
            "ABC",
            "0-9",
            &format!("A{}", "B".repeat(31)),
        ] {
            assert!(valid_partner_id(ok), "{ok}");
        }
        for bad in [
            "AB",
            "-AB",
            "partner-1",
            "PARTNER_1",
            "",
            &"A".repeat(33),
            "ÄBC",
        ] {
            assert!(!valid_partner_id(bad), "{bad}");
        }
    }

    #[test]
    fn grants() {
        for ok in ["*", "accounts.*", "devices.*", "accounts.create"] {
            assert!(check_grant(ok, &KNOWN).is_ok(), "{ok}");
        }
        for bad in [
            "services.*",
            "accounts.delete",
            "accounts",
            "*.*",
            ".*",
            "accounts.**",
        ] {
            assert!(
                matches!(
                    check_grant(bad, &KNOWN),
                    Err(StoreError::Invalid {
                        field: "grants",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn group_names() {
        assert!(valid_group_name("tier-1.gold_A"));
        assert!(!valid_group_name(""));
        assert!(!valid_group_name("-x"));
        assert!(!valid_group_name("a b"));
        assert!(!valid_group_name(&"a".repeat(65)));
    }
}
