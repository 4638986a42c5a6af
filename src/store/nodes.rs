//! The gateway nodes sharing this database (`nodes`): each `partnergate serve` process registers
//! under an id of its own (random per start) and heartbeats every [`HEARTBEAT_INTERVAL`]
//! (`crate::node`); `partnergate nodes`, the admin API and the dashboard list them. A node whose
//! last heartbeat is older than [`GONE_AFTER`] is gone; rows silent for [`FORGET_AFTER`] are
//! deleted. Times are the database's clock, so the nodes' own clocks need not agree.
//!
//! Not partner data: writes here do not bump the revision.

use std::time::Duration;

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::upsert::excluded;

use super::schema::{nodes, throttle_usage};
use super::{AnyConnection, Store, StoreError};

/// How often a node writes its heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// A node silent for longer than this is shown as gone: three heartbeats and 2 s of slack (a
/// busy database or node may delay a heartbeat or two).
pub const GONE_AFTER: Duration = Duration::from_secs(5);
/// The row of a node silent for longer than this is deleted (by any live node).
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The throttle counts of a node silent for longer than this are deleted (by any live node):
/// long past any use, since the other nodes stop charging a node's counts once it is gone.
pub const FORGET_COUNTS_AFTER: Duration = Duration::from_secs(3600);

/// Now in unix milliseconds, by the database's clock.
const PG_NOW_MS: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";
const SQLITE_NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

/// What a node reports in one heartbeat.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeBeat {
    /// The node's id (random per process start).
    pub node_id: String,
    /// The address its partner listener is bound to.
    pub listen: String,
    /// The binary's version.
    pub version: String,
    /// When the process started (unix seconds, its own clock).
    pub started_at: i64,
    /// The revision of the partner snapshot in force.
    pub revision: i64,
    /// Requests answered since the start.
    pub requests_total: i64,
    /// Requests answered per second over the last heartbeat interval.
    pub requests_per_second: f64,
    /// Whether changes reach the node by notification (else by polling).
    pub push_connected: bool,
}

/// A stored node, as of one read.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeRecord {
    /// The last heartbeat.
    pub beat: NodeBeat,
    /// When it was written (unix milliseconds, the database's clock).
    pub last_seen_ms: i64,
    /// How long ago, by the database's clock at the read (milliseconds).
    pub silent_ms: i64,
}

impl NodeRecord {
    /// Whether the node has been silent for longer than [`GONE_AFTER`].
    pub fn gone(&self) -> bool {
        self.silent_ms > i64::try_from(GONE_AFTER.as_millis()).unwrap_or(i64::MAX)
    }
}

/// The database's "now" in unix milliseconds.
pub(super) fn db_now_ms(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    let expr = match conn {
        AnyConnection::Postgresql(_) => PG_NOW_MS,
        AnyConnection::Sqlite(_) => SQLITE_NOW_MS,
    };
    Ok(diesel::select(sql::<BigInt>(expr)).get_result(conn)?)
}

type NodeRow = (String, String, String, i64, i64, i64, i64, f64, bool);

impl Store {
    /// Writes `beat` as the node's row (inserted the first time), stamped with the database's
    /// clock.
    pub fn heartbeat(&self, beat: &NodeBeat) -> Result<(), StoreError> {
        let mut conn = self.connection()?;
        macro_rules! upsert {
            ($conn:expr, $now:expr) => {
                diesel::insert_into(nodes::table)
                    .values((
                        nodes::node_id.eq(&beat.node_id),
                        nodes::listen.eq(&beat.listen),
                        nodes::version.eq(&beat.version),
                        nodes::started_at.eq(beat.started_at),
                        nodes::last_seen_ms.eq(sql::<BigInt>($now)),
                        nodes::revision.eq(beat.revision),
                        nodes::requests_total.eq(beat.requests_total),
                        nodes::requests_per_second.eq(beat.requests_per_second),
                        nodes::push_connected.eq(beat.push_connected),
                    ))
                    .on_conflict(nodes::node_id)
                    .do_update()
                    .set((
                        nodes::listen.eq(excluded(nodes::listen)),
                        nodes::version.eq(excluded(nodes::version)),
                        nodes::started_at.eq(excluded(nodes::started_at)),
                        nodes::last_seen_ms.eq(excluded(nodes::last_seen_ms)),
                        nodes::revision.eq(excluded(nodes::revision)),
                        nodes::requests_total.eq(excluded(nodes::requests_total)),
                        nodes::requests_per_second.eq(excluded(nodes::requests_per_second)),
                        nodes::push_connected.eq(excluded(nodes::push_connected)),
                    ))
                    .execute($conn)?
            };
        }
        match &mut *conn {
            AnyConnection::Postgresql(c) => upsert!(c, PG_NOW_MS),
            AnyConnection::Sqlite(c) => upsert!(c, SQLITE_NOW_MS),
        };
        Ok(())
    }

    /// Every stored node, the longest-running first.
    pub fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let mut conn = self.connection()?;
        let now = db_now_ms(&mut conn)?;
        let rows: Vec<NodeRow> = nodes::table
            .select((
                nodes::node_id,
                nodes::listen,
                nodes::version,
                nodes::started_at,
                nodes::last_seen_ms,
                nodes::revision,
                nodes::requests_total,
                nodes::requests_per_second,
                nodes::push_connected,
            ))
            .order((nodes::started_at, nodes::node_id))
            .load(&mut *conn)?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    node_id,
                    listen,
                    version,
                    started_at,
                    last_seen_ms,
                    revision,
                    requests_total,
                    requests_per_second,
                    push_connected,
                )| NodeRecord {
                    beat: NodeBeat {
                        node_id,
                        listen,
                        version,
                        started_at,
                        revision,
                        requests_total,
                        requests_per_second,
                        push_connected,
                    },
                    last_seen_ms,
                    silent_ms: now.saturating_sub(last_seen_ms).max(0),
                },
            )
            .collect())
    }

    /// Deletes the rows of nodes silent for longer than [`FORGET_AFTER`], and the throttle
    /// counts of nodes silent for longer than [`FORGET_COUNTS_AFTER`] (or never registered);
    /// returns how many node rows. Safe on every node at once.
    pub fn prune_nodes(&self) -> Result<usize, StoreError> {
        let mut conn = self.connection()?;
        let now = db_now_ms(&mut conn)?;
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let live = nodes::table
            .select(nodes::node_id)
            .filter(nodes::last_seen_ms.ge(now.saturating_sub(millis(FORGET_COUNTS_AFTER))));
        diesel::delete(
            throttle_usage::table.filter(diesel::dsl::not(throttle_usage::node_id.eq_any(live))),
        )
        .execute(&mut *conn)?;
        Ok(diesel::delete(
            nodes::table.filter(nodes::last_seen_ms.lt(now.saturating_sub(millis(FORGET_AFTER)))),
        )
        .execute(&mut *conn)?)
    }
}
