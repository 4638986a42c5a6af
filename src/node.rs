//! This process as one node of the cluster: an id of its own (random per start), registered in
//! the database's `nodes` table and refreshed by a heartbeat every
//! [`store::HEARTBEAT_INTERVAL`] with its listen address, version, start time, snapshot
//! revision, requests per second (from the [`Stats`] counters) and how changes reach it (push or
//! poll). `partnergate nodes`, the admin API (`GET /admin/v1/nodes`) and the dashboard's Nodes
//! page list the rows; a node silent for longer than [`store::GONE_AFTER`] is shown as gone.
//!
//! The heartbeat is a background task whose database work runs on `spawn_blocking`, never on
//! the request path; a failed heartbeat is logged (once, until one succeeds again) and changes
//! nothing for the requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::stats::Stats;
use crate::store::{self, NodeBeat, SnapshotCell, Store};

/// Heartbeats between two deletions of long-gone rows (about a minute).
const PRUNE_EVERY: u64 = 60;

/// Who this node is.
#[derive(Clone, Debug)]
pub struct Node {
    /// `n-` and 16 hex digits (64 random bits), new at every start.
    pub id: String,
    /// The partner listener's bound address.
    pub listen: SocketAddr,
    /// When the process started (unix seconds).
    pub started_at: i64,
}

impl Node {
    /// A new identity for a process listening on `listen`, started now.
    pub fn new(listen: SocketAddr) -> Node {
        Node {
            id: format!("n-{:016x}", rand::random::<u64>()),
            listen,
            started_at: crate::clock::unix_now(),
        }
    }
}

/// Writes this node's heartbeat every `every` until `shutdown` turns true (or closes): the
/// first at once, then one per interval (a beat that takes longer delays the next).
pub async fn run_heartbeat(
    store: Store,
    node: Node,
    cell: Arc<SnapshotCell>,
    stats: Arc<Stats>,
    every: Duration,
    shutdown: watch::Receiver<bool>,
) {
    let mut ticker = crate::ticker::Ticker::new(every, shutdown);
    let mut last: Option<(Instant, u64)> = None;
    let mut beats: u64 = 0;
    let mut failing = false;
    tracing::info!(node = %node.id, every = ?every, "node heartbeat started");
    while ticker.next().await {
        let now = Instant::now();
        let total = stats.answered();
        let rate = match last {
            Some((at, before)) => {
                let secs = now.duration_since(at).as_secs_f64();
                if secs > 0.0 {
                    total.saturating_sub(before) as f64 / secs
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        last = Some((now, total));
        let beat = NodeBeat {
            node_id: node.id.clone(),
            listen: node.listen.to_string(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: node.started_at,
            revision: cell.load().revision,
            requests_total: i64::try_from(total).unwrap_or(i64::MAX),
            requests_per_second: rate,
            push_connected: cell.push_connected(),
        };
        let prune = beats % PRUNE_EVERY == 0;
        beats = beats.wrapping_add(1);
        let db = store.clone();
        let written = tokio::task::spawn_blocking(move || -> Result<usize, store::StoreError> {
            db.heartbeat(&beat)?;
            if prune {
                return db.prune_nodes();
            }
            Ok(0)
        })
        .await;
        match written {
            Ok(Ok(pruned)) => {
                if failing {
                    failing = false;
                    tracing::info!(node = %node.id, "node heartbeat written again");
                }
                if pruned > 0 {
                    tracing::info!(pruned, "rows of long-gone nodes deleted");
                }
            }
            Ok(Err(e)) => {
                if !failing {
                    failing = true;
                    tracing::warn!(node = %node.id, error = %e, "node heartbeat failed; retrying every interval");
                }
            }
            Err(e) => tracing::warn!(error = %e, "node heartbeat task failed"),
        }
    }
}
