//! What onboarding (`onboard`) and administration (`admin`) share, below both: the input rules
//! (partner ids, names, countries, networks, grants, group names, rates), the error shapes, and
//! the small steps inside a write transaction (a partner's row id, a group's existence, a new
//! group row, a partner row update, an `audit_log` row). Uses `schema`, `models`, the
//! connection and the store's error and clock only.

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::conn::AnyConnection;
use super::models::{NewAuditRow, NewGroupRow, PartnerUpdate};
use super::schema::{audit_log, groups, partners};
use super::{unix_now, Rate, StoreError};

/// Longest partner display name, in characters.
const MAX_NAME_CHARS: usize = 200;
/// Longest group name, in characters.
const MAX_GROUP_CHARS: usize = 64;

// === error shapes ===

/// Input that breaks a rule, naming the field.
pub(super) fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// No such `what` (`partner`, `group`, …) under `key`.
pub(super) fn not_found(what: &'static str, key: &str) -> StoreError {
    StoreError::NotFound {
        what,
        key: key.to_owned(),
    }
}

/// A stored value this code cannot read.
pub(super) fn corrupt(table: &'static str, key: &str, reason: String) -> StoreError {
    StoreError::Corrupt {
        table,
        key: key.to_owned(),
        reason,
    }
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

/// Inserts a row that must be new: already `present` → `Conflict` saying `taken`, and so is
/// an insert that hits a unique index (a concurrent writer got there first): the same text.
pub(super) fn insert_new(
    present: bool,
    taken: impl Fn() -> String,
    insert: impl FnOnce() -> QueryResult<usize>,
) -> Result<(), StoreError> {
    if present {
        return Err(StoreError::Conflict(taken()));
    }
    insert().map_err(|e| conflict_or(e, &taken))?;
    Ok(())
}

// === input rules ===

/// Whether `id` matches `[A-Z0-9][A-Z0-9-]{2,31}`.
pub(crate) fn valid_partner_id(id: &str) -> bool {
    let b = id.as_bytes();
    (3..=32).contains(&b.len())
        && (b[0].is_ascii_uppercase() || b[0].is_ascii_digit())
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'-')
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

// === steps inside a transaction ===

/// The partner's row id, if it exists.
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

/// The partner's row id; no such partner → `NotFound`.
pub(super) fn existing_partner(c: &mut AnyConnection, partner_id: &str) -> Result<i64, StoreError> {
    partner_row_id(c, partner_id)?.ok_or_else(|| not_found("partner", partner_id))
}

/// Changes the row of partner `partner_id`; no such partner → `NotFound`.
pub(super) fn update_partner(
    c: &mut AnyConnection,
    partner_id: &str,
    changes: PartnerUpdate<'_>,
) -> Result<(), StoreError> {
    let n = diesel::update(partners::table.filter(partners::partner_id.eq(partner_id)))
        .set(changes)
        .execute(c)?;
    if n == 0 {
        return Err(not_found("partner", partner_id));
    }
    Ok(())
}

/// Whether a group named `name` exists.
pub(super) fn group_exists(c: &mut AnyConnection, name: &str) -> Result<bool, StoreError> {
    Ok(groups::table
        .filter(groups::name.eq(name))
        .count()
        .get_result::<i64>(c)?
        > 0)
}

/// A group a partner is put into must exist: else `Invalid`, field `group`.
pub(super) fn require_group(c: &mut AnyConnection, name: &str) -> Result<(), StoreError> {
    if group_exists(c, name)? {
        Ok(())
    } else {
        Err(invalid("group", format!("no group named {name:?}")))
    }
}

/// Inserts a group row (rates checked by [`rate_columns`]).
pub(super) fn insert_group(
    c: &mut AnyConnection,
    name: &str,
    rate: (Option<i32>, Option<i32>),
    aggregate: (Option<i32>, Option<i32>),
    created_at: i64,
) -> QueryResult<usize> {
    diesel::insert_into(groups::table)
        .values(NewGroupRow {
            name,
            rate_per_second: rate.0,
            burst: rate.1,
            aggregate_rate_per_second: aggregate.0,
            aggregate_burst: aggregate.1,
            created_at,
        })
        .execute(c)
}

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

    /// A row found present and a row that a concurrent writer inserted first (the unique index
    /// refuses ours) are the same conflict, with the same text, said once.
    #[test]
    fn a_lost_race_is_the_same_conflict_as_a_row_found_present() {
        let taken = || "group gold already exists".to_string();
        let found = insert_new(true, taken, || Ok(1)).expect_err("present");
        let raced = insert_new(false, taken, || {
            Err(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                Box::new("duplicate key".to_string()),
            ))
        })
        .expect_err("raced");
        assert_eq!(found.to_string(), raced.to_string());
        assert_eq!(raced.to_string().matches("conflict").count(), 1, "{raced}");
        assert!(insert_new(false, taken, || Ok(1)).is_ok());
    }
}
