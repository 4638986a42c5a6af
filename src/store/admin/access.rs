//! The allowlist and the grants, a partner's two lists of entries: list, add, remove (the last
//! allowlist entry stays). Uses `records` and `rules`.

use diesel::prelude::*;

use super::records::{allow_of, grants_of};
use crate::store::conn::AnyConnection;
use crate::store::models::{NewAllowRow, NewGrantRow};
use crate::store::rules::{insert_new, not_found};
use crate::store::schema::{allow_entries, grants};
use crate::store::{unix_now, Store, StoreError};

/// One of a partner's lists.
#[derive(Clone, Copy, PartialEq, Eq)]
enum List {
    /// Networks (canonical text) the partner may call from.
    Allow,
    /// Permissions.
    Grants,
}

impl List {
    /// The list's entries, oldest first.
    fn entries(self, c: &mut AnyConnection, row_id: i64) -> Result<Vec<String>, StoreError> {
        match self {
            List::Allow => allow_of(c, row_id),
            List::Grants => grants_of(c, row_id),
        }
    }

    fn insert(self, c: &mut AnyConnection, row_id: i64, entry: &str) -> QueryResult<usize> {
        let created_at = unix_now();
        match self {
            List::Allow => diesel::insert_into(allow_entries::table)
                .values(NewAllowRow {
                    partner_id: row_id,
                    cidr: entry,
                    created_at,
                })
                .execute(c),
            List::Grants => diesel::insert_into(grants::table)
                .values(NewGrantRow {
                    partner_id: row_id,
                    permission: entry,
                    created_at,
                })
                .execute(c),
        }
    }

    fn delete(self, c: &mut AnyConnection, row_id: i64, entry: &str) -> QueryResult<usize> {
        match self {
            List::Allow => diesel::delete(
                allow_entries::table
                    .filter(allow_entries::partner_id.eq(row_id))
                    .filter(allow_entries::cidr.eq(entry)),
            )
            .execute(c),
            List::Grants => diesel::delete(
                grants::table
                    .filter(grants::partner_id.eq(row_id))
                    .filter(grants::permission.eq(entry)),
            )
            .execute(c),
        }
    }

    /// The audit detail of a change to the list.
    fn detail(self, entry: &str) -> serde_json::Value {
        match self {
            List::Allow => serde_json::json!({"cidr": entry}),
            List::Grants => serde_json::json!({"permission": entry}),
        }
    }
}

impl Store {
    /// A partner's allowlist, oldest first.
    pub fn list_allow(&self, partner_id: &str) -> Result<Vec<String>, StoreError> {
        self.read_partner(partner_id, allow_of)
    }

    /// A partner's grants, oldest first.
    pub fn list_grants(&self, partner_id: &str) -> Result<Vec<String>, StoreError> {
        self.read_partner(partner_id, grants_of)
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
        let taken = || format!("{cidr} is already on the allowlist of {partner_id}");
        self.add_entry(actor, partner_id, "allow.add", List::Allow, &cidr, taken)
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
        self.change_partner(actor, partner_id, "allow.remove", |c, row_id| {
            let entries = List::Allow.entries(c, row_id)?;
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
            List::Allow.delete(c, row_id, &cidr)?;
            Ok(((), List::Allow.detail(&cidr)))
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
        let taken = || format!("{permission} is already granted to {partner_id}");
        self.add_entry(
            actor,
            partner_id,
            "grant.add",
            List::Grants,
            permission,
            taken,
        )
    }

    /// Revokes a permission; not granted (exactly as written) → `NotFound`. Audit:
    /// `grant.revoke`.
    pub fn remove_grant(
        &self,
        actor: &str,
        partner_id: &str,
        permission: &str,
    ) -> Result<(), StoreError> {
        self.change_partner(actor, partner_id, "grant.revoke", |c, row_id| {
            if List::Grants.delete(c, row_id, permission)? == 0 {
                return Err(not_found("grant", &format!("{permission} of {partner_id}")));
            }
            Ok(((), List::Grants.detail(permission)))
        })
    }

    /// Adds `entry` to a list; already there → `Conflict` saying `taken`. Audit: `action`.
    fn add_entry(
        &self,
        actor: &str,
        partner_id: &str,
        action: &str,
        list: List,
        entry: &str,
        taken: impl Fn() -> String,
    ) -> Result<(), StoreError> {
        self.change_partner(actor, partner_id, action, |c, row_id| {
            let present = list.entries(c, row_id)?.iter().any(|e| e == entry);
            insert_new(present, taken, || list.insert(c, row_id, entry))?;
            Ok(((), list.detail(entry)))
        })
    }
}
