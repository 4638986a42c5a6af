//! Row types: what is read for the snapshot, what onboarding and administration insert, and
//! the one changeset of a partner row. Uses `schema` only.

use diesel::prelude::*;

use super::schema::{allow_entries, api_keys, audit_log, grants, groups, partners};

/// The partner columns the hot path needs.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = partners)]
pub(crate) struct PartnerRow {
    pub(crate) id: i64,
    pub(crate) partner_id: String,
    pub(crate) name: String,
    pub(crate) country: Option<String>,
    pub(crate) group_name: Option<String>,
    pub(crate) status: String,
    pub(crate) feature_defaults: Option<String>,
    pub(crate) callback_url: Option<String>,
    pub(crate) callback_ca_pem: Option<String>,
    pub(crate) rate_per_second: Option<i32>,
    pub(crate) burst: Option<i32>,
}

/// A group and its two rates.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = groups)]
pub(crate) struct GroupRow {
    pub(crate) name: String,
    pub(crate) rate_per_second: Option<i32>,
    pub(crate) burst: Option<i32>,
    pub(crate) aggregate_rate_per_second: Option<i32>,
    pub(crate) aggregate_burst: Option<i32>,
}

/// A key that is not revoked.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub(crate) struct KeyRow {
    pub(crate) id: i64,
    pub(crate) partner_id: i64,
    pub(crate) kind: String,
    pub(crate) prefix: String,
    pub(crate) hash: Vec<u8>,
    pub(crate) expires_at: Option<i64>,
}

#[derive(Insertable)]
#[diesel(table_name = partners)]
pub(crate) struct NewPartnerRow<'a> {
    pub(crate) partner_id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) country: Option<&'a str>,
    pub(crate) group_name: Option<&'a str>,
    pub(crate) status: &'a str,
    pub(crate) feature_defaults: Option<&'a str>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

#[derive(Insertable)]
#[diesel(table_name = api_keys)]
pub(crate) struct NewKeyRow<'a> {
    pub(crate) partner_id: i64,
    pub(crate) kind: &'a str,
    pub(crate) prefix: &'a str,
    pub(crate) hash: &'a [u8],
    pub(crate) created_at: i64,
    pub(crate) expires_at: Option<i64>,
}

#[derive(Insertable)]
#[diesel(table_name = allow_entries)]
pub(crate) struct NewAllowRow<'a> {
    pub(crate) partner_id: i64,
    pub(crate) cidr: &'a str,
    pub(crate) created_at: i64,
}

#[derive(Insertable)]
#[diesel(table_name = grants)]
pub(crate) struct NewGrantRow<'a> {
    pub(crate) partner_id: i64,
    pub(crate) permission: &'a str,
    pub(crate) created_at: i64,
}

#[derive(Insertable)]
#[diesel(table_name = groups)]
pub(crate) struct NewGroupRow<'a> {
    pub(crate) name: &'a str,
    pub(crate) rate_per_second: Option<i32>,
    pub(crate) burst: Option<i32>,
    pub(crate) aggregate_rate_per_second: Option<i32>,
    pub(crate) aggregate_burst: Option<i32>,
    pub(crate) created_at: i64,
}

#[derive(Insertable)]
#[diesel(table_name = audit_log)]
pub(crate) struct NewAuditRow<'a> {
    pub(crate) at: i64,
    pub(crate) actor: &'a str,
    pub(crate) action: &'a str,
    pub(crate) target: &'a str,
    pub(crate) detail: Option<&'a str>,
}

/// Changes to a partner row: `None` leaves a column alone, `Some(None)` clears a nullable one.
/// Start from [`PartnerUpdate::now`], which sets `updated_at`.
#[derive(AsChangeset, Default)]
#[diesel(table_name = partners)]
pub(crate) struct PartnerUpdate<'a> {
    pub(crate) name: Option<&'a str>,
    pub(crate) status: Option<&'a str>,
    pub(crate) contact: Option<Option<&'a str>>,
    pub(crate) billing_rate: Option<Option<&'a str>>,
    pub(crate) country: Option<Option<&'a str>>,
    pub(crate) group_name: Option<Option<&'a str>>,
    pub(crate) callback_url: Option<Option<&'a str>>,
    pub(crate) callback_ca_pem: Option<Option<&'a str>>,
    pub(crate) feature_defaults: Option<Option<String>>,
    pub(crate) rate_per_second: Option<Option<i32>>,
    pub(crate) burst: Option<Option<i32>>,
    pub(crate) updated_at: Option<i64>,
}

impl PartnerUpdate<'_> {
    /// No change but `updated_at`, set to now.
    pub(crate) fn now() -> Self {
        PartnerUpdate {
            updated_at: Some(super::unix_now()),
            ..PartnerUpdate::default()
        }
    }
}
