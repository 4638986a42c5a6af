//! Groups and throttling: list, detail, create, rename or re-rate (members follow a rename),
//! assign a partner, set a partner's own rate. Uses `records` and `rules`.

use diesel::prelude::*;

use super::records::{
    callback_rate_of, group_record, members_of, partner_row, rate_json, FullGroupRow, GroupRecord,
};
use crate::store::models::PartnerUpdate;
use crate::store::rules::{
    audit, group_exists, insert_group, insert_new, rate_columns, require_group,
};
use crate::store::schema::{callback_rates, groups, partners};
use crate::store::snapshot::stored_rate;
use crate::store::{unix_now, Rate, Store, StoreError};

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

impl Store {
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

    /// Creates a group (name validated by the caller); a taken name → `Conflict`. Audit:
    /// `group.create` on `group:<name>`.
    pub fn create_group_as(
        &self,
        actor: &str,
        name: &str,
        rate: Option<Rate>,
        aggregate: Option<Rate>,
    ) -> Result<(), StoreError> {
        let columns = rate_columns("rate", rate)?;
        let aggregate_columns = rate_columns("aggregate", aggregate)?;
        self.write(|c| {
            let present = group_exists(c, name)?;
            insert_new(
                present,
                || format!("group {name} already exists"),
                || insert_group(c, name, columns, aggregate_columns, unix_now()),
            )?;
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
            let columns = rate_columns("rate", rate)?;
            let aggregate_columns = rate_columns("aggregate", aggregate)?;
            let new_name = changes.rename.clone().unwrap_or_else(|| name.to_owned());
            if new_name == name {
                diesel::update(groups::table.filter(groups::name.eq(name)))
                    .set((
                        groups::rate_per_second.eq(columns.0),
                        groups::burst.eq(columns.1),
                        groups::aggregate_rate_per_second.eq(aggregate_columns.0),
                        groups::aggregate_burst.eq(aggregate_columns.1),
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
                insert_group(c, &new_name, columns, aggregate_columns, old.created_at)?;
                let members = PartnerUpdate {
                    group_name: Some(Some(&new_name)),
                    ..PartnerUpdate::now()
                };
                diesel::update(partners::table.filter(partners::group_name.eq(name)))
                    .set(members)
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
        self.change_partner(actor, partner_id, "group.assign", |c, row_id| {
            let old = partner_row(c, partner_id)?.base.group_name;
            if let Some(g) = group {
                require_group(c, g)?;
            }
            let update = PartnerUpdate {
                group_name: Some(group),
                ..PartnerUpdate::default()
            };
            diesel::update(partners::table.filter(partners::id.eq(row_id)))
                .set(update)
                .execute(c)?;
            Ok(((), serde_json::json!({"from": old, "to": group})))
        })
    }

    /// Sets (or with `None` clears) the partner's own rate in `direction`: the calls it makes,
    /// or the callbacks sent to its BSS. Audit: `throttle.set` / `throttle.clear`, or
    /// `callback-throttle.set` / `callback-throttle.clear`.
    pub fn set_partner_rate_as(
        &self,
        actor: &str,
        partner_id: &str,
        direction: Direction,
        rate: Option<Rate>,
    ) -> Result<(), StoreError> {
        let (per_second, burst) = rate_columns(direction.rate_field(), rate)?;
        let action = match (direction, rate.is_some()) {
            (Direction::Inbound, true) => "throttle.set",
            (Direction::Inbound, false) => "throttle.clear",
            (Direction::Callback, true) => "callback-throttle.set",
            (Direction::Callback, false) => "callback-throttle.clear",
        };
        self.change_partner(actor, partner_id, action, |c, row_id| {
            let old_rate = match direction {
                Direction::Inbound => {
                    let old = partner_row(c, partner_id)?.base;
                    let old_rate =
                        stored_rate("partners", partner_id, old.rate_per_second, old.burst)?;
                    let update = PartnerUpdate {
                        rate_per_second: Some(per_second),
                        burst: Some(burst),
                        ..PartnerUpdate::default()
                    };
                    diesel::update(partners::table.filter(partners::id.eq(row_id)))
                        .set(update)
                        .execute(c)?;
                    old_rate
                }
                Direction::Callback => {
                    let old = callback_rate_of(c, row_id)?;
                    let old_rate = stored_rate(
                        "callback_rates",
                        partner_id,
                        old.map(|(r, _)| r),
                        old.map(|(_, b)| b),
                    )?;
                    diesel::delete(callback_rates::table.find(row_id)).execute(c)?;
                    if let (Some(per_second), Some(burst)) = (per_second, burst) {
                        diesel::insert_into(callback_rates::table)
                            .values((
                                callback_rates::partner_id.eq(row_id),
                                callback_rates::rate_per_second.eq(per_second),
                                callback_rates::burst.eq(burst),
                            ))
                            .execute(c)?;
                    }
                    old_rate
                }
            };
            let detail = serde_json::json!({"from": rate_json(old_rate), "to": rate_json(rate)});
            Ok(((), detail))
        })
    }
}

/// Which of a partner's two rates: the calls it makes through the gateway, or the callbacks the
/// TSP's partner API layer sends to its BSS through the relay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direction {
    /// The partner's calls (`throttle.*`; its group's rate applies when it has none).
    #[default]
    Inbound,
    /// Callbacks to the partner's BSS (`callback.default_*` applies when it has none).
    Callback,
}

impl Direction {
    /// The name of the rate in messages: `rate` or `callback_rate`.
    pub fn rate_field(self) -> &'static str {
        match self {
            Direction::Inbound => "rate",
            Direction::Callback => "callback_rate",
        }
    }
}
