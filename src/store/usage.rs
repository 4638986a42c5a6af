//! Usage statistics in the database: counts and summed latency per time bucket × partner ×
//! operation × outcome (`usage_stats`) and, beside them, latency histogram counts per bucket of
//! [`latency::BOUNDS_MICROS`](crate::latency::BOUNDS_MICROS) (`usage_latency`, one row per
//! non-empty bucket); both added to (never overwritten) so that several gateway nodes add up,
//! in one transaction; and the last use of each key. Written in batches by `stats.rs`, never
//! once per request.

use std::collections::{BTreeMap, HashMap};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::upsert::excluded;

use super::schema::{api_keys, usage_latency, usage_stats};
use super::{AnyConnection, Store, StoreError};
use crate::latency::{self, Counts};

/// One row to add: the deltas since the last flush.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageDelta {
    /// Start of the bucket (unix seconds, a multiple of the bucket length).
    pub bucket_start: i64,
    /// The partner (`-` when the caller claimed no known partner).
    pub partner_id: String,
    /// The operation (`-` when the body named none).
    pub operation: String,
    /// `ok`, or the refusal / upstream-error label.
    pub outcome: String,
    /// Calls.
    pub count: i64,
    /// Summed latency, microseconds.
    pub total_micros: i64,
    /// Calls per latency bucket (their total is `count`).
    pub latency: Counts,
}

/// A row of `partnergate stats`: totals over the requested period.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UsageTotal {
    /// The partner.
    pub partner_id: String,
    /// The operation.
    pub operation: String,
    /// The outcome.
    pub outcome: String,
    /// Calls.
    pub count: i64,
    /// Summed latency, microseconds.
    pub total_micros: i64,
    /// Calls per latency bucket (calls counted before `usage_latency` existed are missing).
    #[serde(skip)]
    pub latency: Counts,
}

/// One stored bucket: the rows behind the dashboard's charts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow {
    /// Start of the bucket (unix seconds, a multiple of `stats::BUCKET_SECS`).
    pub bucket_start: i64,
    /// The partner.
    pub partner_id: String,
    /// The operation.
    pub operation: String,
    /// The outcome.
    pub outcome: String,
    /// Calls.
    pub count: i64,
    /// Summed latency, microseconds.
    pub total_micros: i64,
    /// Calls per latency bucket (calls counted before `usage_latency` existed are missing).
    pub latency: Counts,
}

/// `usage_latency` rows summed per bucket_start × partner × operation × outcome.
type LatencyMap = HashMap<(i64, String, String, String), Counts>;

impl Store {
    /// Adds `deltas` to the usage table and records key uses, in one transaction. Does not bump
    /// the partner-data revision (statistics are not partner data).
    pub fn add_usage(
        &self,
        deltas: &[UsageDelta],
        key_uses: &[(i64, i64)],
    ) -> Result<(), StoreError> {
        if deltas.is_empty() && key_uses.is_empty() {
            return Ok(());
        }
        let mut conn = self.connection()?;
        conn.transaction(|c: &mut r2d2::PooledConnection<super::conn::Manager>| {
            for d in deltas {
                // ON CONFLICT is not available through Diesel's MultiBackend: the same statement
                // is built for each concrete backend (both speak it).
                macro_rules! upsert {
                    ($conn:expr) => {
                        diesel::insert_into(usage_stats::table)
                            .values((
                                usage_stats::bucket_start.eq(d.bucket_start),
                                usage_stats::partner_id.eq(&d.partner_id),
                                usage_stats::operation.eq(&d.operation),
                                usage_stats::outcome.eq(&d.outcome),
                                usage_stats::count.eq(d.count),
                                usage_stats::total_micros.eq(d.total_micros),
                            ))
                            .on_conflict((
                                usage_stats::bucket_start,
                                usage_stats::partner_id,
                                usage_stats::operation,
                                usage_stats::outcome,
                            ))
                            .do_update()
                            .set((
                                usage_stats::count
                                    .eq(usage_stats::count + excluded(usage_stats::count)),
                                usage_stats::total_micros
                                    .eq(usage_stats::total_micros
                                        + excluded(usage_stats::total_micros)),
                            ))
                            .execute($conn)?
                    };
                }
                match &mut **c {
                    AnyConnection::Sqlite(c) => upsert!(c),
                    AnyConnection::Postgresql(c) => upsert!(c),
                };
                for (le_micros, n) in d.latency.stored() {
                    let n = i64::try_from(n).unwrap_or(i64::MAX);
                    macro_rules! upsert_bucket {
                        ($conn:expr) => {
                            diesel::insert_into(usage_latency::table)
                                .values((
                                    usage_latency::bucket_start.eq(d.bucket_start),
                                    usage_latency::partner_id.eq(&d.partner_id),
                                    usage_latency::operation.eq(&d.operation),
                                    usage_latency::outcome.eq(&d.outcome),
                                    usage_latency::le_micros.eq(le_micros),
                                    usage_latency::count.eq(n),
                                ))
                                .on_conflict((
                                    usage_latency::bucket_start,
                                    usage_latency::partner_id,
                                    usage_latency::operation,
                                    usage_latency::outcome,
                                    usage_latency::le_micros,
                                ))
                                .do_update()
                                .set(
                                    usage_latency::count
                                        .eq(usage_latency::count + excluded(usage_latency::count)),
                                )
                                .execute($conn)?
                        };
                    }
                    match &mut **c {
                        AnyConnection::Sqlite(c) => upsert_bucket!(c),
                        AnyConnection::Postgresql(c) => upsert_bucket!(c),
                    };
                }
            }
            for (key_id, at) in key_uses {
                diesel::update(api_keys::table.filter(api_keys::id.eq(key_id)))
                    .set(api_keys::last_used_at.eq(at))
                    .execute(c)?;
            }
            Ok::<_, StoreError>(())
        })
    }

    /// Deletes the usage rows (counts and latency buckets) of minutes starting before `before`
    /// (unix seconds), in one transaction; returns how many rows went. Both tables' keys start
    /// with `bucket_start`, so this is a range delete on the primary key. Safe to run on every
    /// node at once (deleting what another node deleted deletes nothing).
    pub fn prune_usage(&self, before: i64) -> Result<usize, StoreError> {
        let mut conn = self.connection()?;
        conn.transaction(|c: &mut r2d2::PooledConnection<super::conn::Manager>| {
            let stats =
                diesel::delete(usage_stats::table.filter(usage_stats::bucket_start.lt(before)))
                    .execute(c)?;
            let latency =
                diesel::delete(usage_latency::table.filter(usage_latency::bucket_start.lt(before)))
                    .execute(c)?;
            Ok::<_, StoreError>(stats + latency)
        })
    }

    /// Totals per partner × operation × outcome over buckets starting at or after `since`
    /// (unix seconds), optionally for one partner, most calls first.
    pub fn usage(&self, since: i64, partner: Option<&str>) -> Result<Vec<UsageTotal>, StoreError> {
        let rows = self.read_snapshot(|c| usage_rows_in(c, since, partner, None))?;
        let mut totals: BTreeMap<(String, String, String), (i64, i64, Counts)> = BTreeMap::new();
        for r in rows {
            let e = totals
                .entry((r.partner_id, r.operation, r.outcome))
                .or_default();
            e.0 += r.count;
            e.1 += r.total_micros;
            e.2.add(&r.latency);
        }
        let mut out: Vec<UsageTotal> = totals
            .into_iter()
            .map(
                |((partner_id, operation, outcome), (count, total_micros, latency))| UsageTotal {
                    partner_id,
                    operation,
                    outcome,
                    count,
                    total_micros,
                    latency,
                },
            )
            .collect();
        out.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.partner_id.cmp(&b.partner_id))
        });
        Ok(out)
    }

    /// The stored buckets starting at or after `since` (unix seconds), oldest first, optionally
    /// for one partner and one operation. Counts and latency buckets are read in one read
    /// transaction with one snapshot, so a flush landing in between cannot make them disagree.
    pub fn usage_rows(
        &self,
        since: i64,
        partner: Option<&str>,
        operation: Option<&str>,
    ) -> Result<Vec<UsageRow>, StoreError> {
        self.read_snapshot(|c| usage_rows_in(c, since, partner, operation))
    }

    /// Runs `f` in one read transaction with one snapshot for all its queries (SQLite's read
    /// transaction is one; PostgreSQL's default, read committed, takes one per statement).
    fn read_snapshot<T>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.connection()?;
        let is_pg = matches!(&*conn, AnyConnection::Postgresql(_));
        conn.transaction(|c: &mut r2d2::PooledConnection<super::conn::Manager>| {
            if is_pg {
                c.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
            }
            f(c)
        })
    }
}

/// The rows of `$table` (`usage_stats` or `usage_latency`: the same key columns) in buckets
/// starting at or after `$since`, for one partner and one operation when given.
macro_rules! since_for {
    ($table:ident, $since:expr, $partner:expr, $operation:expr) => {{
        let mut query = $table::table
            .filter($table::bucket_start.ge($since))
            .into_boxed();
        if let Some(p) = $partner {
            query = query.filter($table::partner_id.eq(p.to_string()));
        }
        if let Some(o) = $operation {
            query = query.filter($table::operation.eq(o.to_string()));
        }
        query
    }};
}

/// [`Store::usage_rows`] inside its transaction.
fn usage_rows_in(
    conn: &mut AnyConnection,
    since: i64,
    partner: Option<&str>,
    operation: Option<&str>,
) -> Result<Vec<UsageRow>, StoreError> {
    let query = since_for!(usage_stats, since, partner, operation);
    let rows: Vec<(i64, String, String, String, i64, i64)> = query
        .select((
            usage_stats::bucket_start,
            usage_stats::partner_id,
            usage_stats::operation,
            usage_stats::outcome,
            usage_stats::count,
            usage_stats::total_micros,
        ))
        .order(usage_stats::bucket_start)
        .load(conn)?;
    let mut latency = latency_rows(conn, since, partner, operation)?;
    Ok(rows
        .into_iter()
        .map(
            |(bucket_start, partner_id, operation, outcome, count, total_micros)| {
                let latency = latency
                    .remove(&(
                        bucket_start,
                        partner_id.clone(),
                        operation.clone(),
                        outcome.clone(),
                    ))
                    .unwrap_or_default();
                UsageRow {
                    bucket_start,
                    partner_id,
                    operation,
                    outcome,
                    count,
                    total_micros,
                    latency,
                }
            },
        )
        .collect())
}

/// The `usage_latency` rows of buckets starting at or after `since`, optionally for one partner
/// and one operation, summed into histograms per bucket_start × partner × operation × outcome.
fn latency_rows(
    conn: &mut AnyConnection,
    since: i64,
    partner: Option<&str>,
    operation: Option<&str>,
) -> Result<LatencyMap, StoreError> {
    let query = since_for!(usage_latency, since, partner, operation);
    let rows: Vec<(i64, String, String, String, i64, i64)> = query
        .select((
            usage_latency::bucket_start,
            usage_latency::partner_id,
            usage_latency::operation,
            usage_latency::outcome,
            usage_latency::le_micros,
            usage_latency::count,
        ))
        .load(conn)?;
    let mut out = LatencyMap::new();
    for (bucket_start, partner_id, operation, outcome, le_micros, n) in rows {
        out.entry((bucket_start, partner_id, operation, outcome))
            .or_default()
            .add_to(
                latency::bucket_of_stored(le_micros),
                u64::try_from(n).unwrap_or(0),
            );
    }
    Ok(out)
}
