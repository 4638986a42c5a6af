//! How the nodes share one limit (`throttle_usage`): per node and per limiter, the number of
//! calls the node has admitted since it started. Each node writes its changed counts and reads
//! the others' in one exchange every `throttle.cluster_sync_ms` (`crate::throttle::cluster`).
//! Times are the database's clock.
//!
//! Not partner data: writes here do not bump the revision.

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::nodes::db_now_ms;
use super::schema::throttle_usage as tu;
use super::{AnyConnection, Store, StoreError};

/// Rows per INSERT statement (6 parameters each: far below PostgreSQL's 65,535).
const ROWS_PER_STATEMENT: usize = 1_000;

/// One of this node's counts, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnCount {
    /// `partner` or `group`.
    pub scope: &'static str,
    /// The partner's id or the group's name.
    pub key: String,
    /// Calls admitted since the node started.
    pub admitted: i64,
}

/// Another node's count, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCount {
    /// The other node.
    pub node_id: String,
    /// `partner` or `group`.
    pub scope: String,
    /// The partner's id or the group's name.
    pub key: String,
    /// Calls it has admitted since it started.
    pub admitted: i64,
    /// When the row was first written (unix milliseconds, the database's clock).
    pub created_ms: i64,
    /// When it wrote the row (unix milliseconds, the database's clock).
    pub updated_ms: i64,
}

/// The result of one exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchanged {
    /// The database's clock when the exchange began (unix milliseconds).
    pub now_ms: i64,
    /// The other nodes' rows changed since the time asked for.
    pub peers: Vec<PeerCount>,
}

type PeerRow = (String, String, String, i64, i64, i64);

impl Store {
    /// Writes `mine` as node `node_id`'s counts, then reads every other node's row written
    /// after `since_ms` (every row when `None`).
    pub fn exchange_throttle_usage(
        &self,
        node_id: &str,
        mine: &[OwnCount],
        since_ms: Option<i64>,
    ) -> Result<Exchanged, StoreError> {
        let mut conn = self.connection()?;
        let now_ms = db_now_ms(&mut conn)?;
        for chunk in mine.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|c| {
                    (
                        tu::node_id.eq(node_id),
                        tu::scope.eq(c.scope),
                        tu::key.eq(c.key.as_str()),
                        tu::admitted.eq(c.admitted),
                        tu::created_ms.eq(now_ms),
                        tu::updated_ms.eq(now_ms),
                    )
                })
                .collect();
            macro_rules! upsert {
                ($conn:expr) => {
                    diesel::insert_into(tu::table)
                        .values(rows)
                        .on_conflict((tu::node_id, tu::scope, tu::key))
                        .do_update()
                        .set((
                            tu::admitted.eq(excluded(tu::admitted)),
                            tu::updated_ms.eq(excluded(tu::updated_ms)),
                        ))
                        .execute($conn)?
                };
            }
            match &mut *conn {
                AnyConnection::Postgresql(c) => upsert!(c),
                AnyConnection::Sqlite(c) => upsert!(c),
            };
        }
        let rows: Vec<PeerRow> = tu::table
            .select((
                tu::node_id,
                tu::scope,
                tu::key,
                tu::admitted,
                tu::created_ms,
                tu::updated_ms,
            ))
            .filter(tu::node_id.ne(node_id))
            .filter(tu::updated_ms.gt(since_ms.unwrap_or(i64::MIN)))
            .load(&mut *conn)?;
        Ok(Exchanged {
            now_ms,
            peers: rows
                .into_iter()
                .map(
                    |(node_id, scope, key, admitted, created_ms, updated_ms)| PeerCount {
                        node_id,
                        scope,
                        key,
                        admitted,
                        created_ms,
                        updated_ms,
                    },
                )
                .collect(),
        })
    }
}
