//! One limit across the cluster: every node keeps its own limiters (the request path never waits
//! on the database or the network) and, every `throttle.cluster_sync_ms` (default
//! [`DEFAULT_SYNC_INTERVAL`]), exchanges counts through the database (PostgreSQL): it writes
//! how many calls it has admitted per limiter since it started (`throttle_usage`, only the rows
//! that changed) and reads the rows the other nodes changed since its last read. What another
//! node admitted since the last exchange is charged to this node's limiter as if the calls had
//! come here ([`Throttle::charge`]), so every node's limiter spends what the whole cluster
//! admitted, and a node that is gone simply stops being charged: the others take over its share
//! at their next exchange.
//!
//! **The bound.** With `N` nodes, a limit of `r` calls per second and burst `b`, and `L` the
//! time until every node has charged another's admission (at most two sync intervals plus one
//! exchange: the admitting node writes at its next exchange, the others read at theirs), the
//! calls the cluster admits in any window of `W` seconds are at most
//! `r·W + b + (N−1)·(b + r·L)`: each node may admit what its own limiter allows before it
//! has seen the others' last `L` seconds, and a burst taken on every node at once (a limit
//! unused for `b/r` seconds) is paid back afterwards (a debt stops at `N·b` cells). Under
//! a demand above the limit, at least `r·W − N·r·L` are admitted (a charge that arrives late
//! spends at most `L` seconds of refill the limiter would otherwise have had). On one node, or
//! on SQLite, or with `throttle.cluster_sync_ms = 0`, the limiters are exactly the local ones.
//!
//! Callbacks (`Scope::Callback`, keyed by partner id) go through the same exchange and the same
//! bound: the relay's limiter is one more limiter of the node.
//!
//! **Outages.** When the database cannot be reached, every node goes on with its own limiter
//! (each admits up to the full limit: the cluster up to `N` times it). Counts older than
//! [`RESYNC_AFTER`] are neither written nor charged once the database is back — the nodes
//! start again from what they see then — so an outage is never paid back with refusals.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Scope, Throttle};
use crate::store::{Exchanged, OwnCount, Store};

/// Default of `throttle.cluster_sync_ms`.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(50);
/// The longest allowed `throttle.cluster_sync_ms` (the bound grows with it, and it must stay
/// below [`RESYNC_AFTER`]).
pub const MAX_SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// Counts that could not be exchanged for this long are dropped (not written, not charged).
pub const RESYNC_AFTER: Duration = Duration::from_secs(1);
/// A read asks for the rows changed since the last read minus this (a row is stamped when its
/// statement runs and becomes visible at commit, a little later).
const READ_MARGIN_MS: i64 = 2_000;
/// Another node counts as sharing the limits while it has written within this (the nodes'
/// "gone" time).
const LIVE_WITHIN_MS: i64 = 5_000;
/// What is remembered of another node's row not written for this long is forgotten (the row, if
/// it changes again, is then taken as a new starting point).
const FORGET_AFTER_MS: i64 = 600_000;

impl Scope {
    /// The name stored in `throttle_usage.scope`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Partner => "partner",
            Scope::Group => "group",
            Scope::Callback => "callback",
        }
    }

    fn parse(s: &str) -> Option<Scope> {
        match s {
            "partner" => Some(Scope::Partner),
            "group" => Some(Scope::Group),
            "callback" => Some(Scope::Callback),
            _ => None,
        }
    }
}

/// Calls another node admitted, to be charged here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    /// Which kind of limiter.
    pub scope: Scope,
    /// The partner's id or the group's name.
    pub key: String,
    /// How many calls.
    pub cells: u64,
}

/// What is known of another node's row.
#[derive(Clone, Copy, Debug)]
struct Seen {
    admitted: i64,
    updated_ms: i64,
}

/// This node's side of the exchange: its own counts and what it has seen of the others'. Plain
/// data, no I/O: [`run`] feeds it.
pub struct Ledger {
    /// Admitted calls per limiter, as last written.
    mine: HashMap<(Scope, String), i64>,
    /// Admitted since the last successful exchange, not yet written.
    pending: HashMap<(Scope, String), u64>,
    /// The last successful exchange (or the start).
    last_ok: Instant,
    /// The database's clock at the last successful exchange; `None` before the first.
    last_read_ms: Option<i64>,
    peers: HashMap<(String, Scope, String), Seen>,
    /// Each other node's newest write seen (database clock).
    peer_nodes: HashMap<String, i64>,
}

impl Ledger {
    /// A ledger for a node starting at `now`.
    pub fn new(now: Instant) -> Ledger {
        Ledger {
            mine: HashMap::new(),
            pending: HashMap::new(),
            last_ok: now,
            last_read_ms: None,
            peers: HashMap::new(),
            peer_nodes: HashMap::new(),
        }
    }

    /// Adds calls drained from the limiters ([`Throttle::drain_admitted`]).
    pub fn collect(&mut self, drained: impl IntoIterator<Item = (Scope, String, u64)>) {
        for (scope, key, n) in drained {
            *self.pending.entry((scope, key)).or_default() += n;
        }
    }

    /// The rows to write: every limiter with calls not yet written, at its new total.
    pub fn rows(&self) -> Vec<OwnCount> {
        self.pending
            .iter()
            .map(|((scope, key), n)| OwnCount {
                scope: scope.as_str(),
                key: key.clone(),
                admitted: self
                    .mine
                    .get(&(*scope, key.clone()))
                    .copied()
                    .unwrap_or(0)
                    .saturating_add(i64::try_from(*n).unwrap_or(i64::MAX)),
            })
            .collect()
    }

    /// Read the rows changed after this (every row on the first exchange).
    pub fn since(&self) -> Option<i64> {
        self.last_read_ms.map(|t| t.saturating_sub(READ_MARGIN_MS))
    }

    /// The exchange begun at `at` failed. Once nothing has been exchanged for [`RESYNC_AFTER`],
    /// the counts not yet written are dropped (the other nodes would charge them too late);
    /// returns how many calls were dropped.
    pub fn failed(&mut self, at: Instant) -> u64 {
        if at.saturating_duration_since(self.last_ok) < RESYNC_AFTER {
            return 0;
        }
        self.pending.drain().map(|(_, n)| n).sum()
    }

    /// The exchange begun at `at` succeeded: the rows of [`Ledger::rows`] are written and
    /// `exchanged` is what was read. Returns the calls to charge and how many nodes share the
    /// limits now (this one included).
    pub fn succeeded(&mut self, at: Instant, exchanged: Exchanged) -> (Vec<Charge>, u64) {
        for ((scope, key), n) in self.pending.drain() {
            let total = self.mine.entry((scope, key)).or_default();
            *total = total.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
        }
        // The first exchange, or the first after a gap: what the others admitted before now is
        // not charged (before this node started, or while it could not see them).
        let resync = self.last_read_ms.is_none()
            || at.saturating_duration_since(self.last_ok) >= RESYNC_AFTER;
        let created_after = self
            .last_read_ms
            .map_or(i64::MAX, |t| t.saturating_sub(READ_MARGIN_MS));
        let mut charges = Vec::new();
        for row in exchanged.peers {
            let Some(scope) = Scope::parse(&row.scope) else {
                continue;
            };
            let newest = self
                .peer_nodes
                .entry(row.node_id.clone())
                .or_insert(i64::MIN);
            *newest = (*newest).max(row.updated_ms);
            let seen = Seen {
                admitted: row.admitted,
                updated_ms: row.updated_ms,
            };
            let before = self
                .peers
                .insert((row.node_id, scope, row.key.clone()), seen);
            let cells = match before {
                _ if resync => 0,
                Some(prev) => row.admitted.saturating_sub(prev.admitted).max(0),
                // A row new since the last read: a node that just started, or a limiter's first
                // calls on a node. An older row not known here is a starting point.
                None if row.created_ms > created_after => row.admitted.max(0),
                None => 0,
            };
            if cells > 0 {
                charges.push(Charge {
                    scope,
                    key: row.key,
                    cells: u64::try_from(cells).unwrap_or(0),
                });
            }
        }
        let now_ms = exchanged.now_ms;
        self.last_ok = at;
        self.last_read_ms = Some(now_ms);
        let forget_before = now_ms.saturating_sub(FORGET_AFTER_MS);
        self.peers.retain(|_, s| s.updated_ms >= forget_before);
        self.peer_nodes.retain(|_, t| *t >= forget_before);
        let live_after = now_ms.saturating_sub(LIVE_WITHIN_MS);
        let others = self
            .peer_nodes
            .values()
            .filter(|t| **t >= live_after)
            .count();
        (charges, 1 + others as u64)
    }
}

/// What `/metrics` says of the exchange.
#[derive(Debug, Default)]
pub struct SyncStatus {
    enabled: AtomicBool,
    ok: AtomicBool,
    nodes: AtomicU64,
    exchanges: AtomicU64,
    failures: AtomicU64,
    charged: AtomicU64,
    dropped: AtomicU64,
}

impl SyncStatus {
    /// Prometheus text: `partnergate_throttle_cluster_*`.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let flag = |b: &AtomicBool| u8::from(b.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP partnergate_throttle_cluster_enabled 1 when limits are shared with the other \
             nodes through the database (PostgreSQL, throttle.cluster_sync_ms > 0).\n\
             # TYPE partnergate_throttle_cluster_enabled gauge\n\
             partnergate_throttle_cluster_enabled {}\n\
             # HELP partnergate_throttle_cluster_synced 1 while the last exchange of counts \
             succeeded; 0: limits are per node until the database answers again.\n\
             # TYPE partnergate_throttle_cluster_synced gauge\n\
             partnergate_throttle_cluster_synced {}\n\
             # HELP partnergate_throttle_cluster_nodes Nodes sharing the limits (this one \
             included) at the last exchange.\n\
             # TYPE partnergate_throttle_cluster_nodes gauge\n\
             partnergate_throttle_cluster_nodes {}\n\
             # HELP partnergate_throttle_cluster_exchanges_total Exchanges of counts, by result.\n\
             # TYPE partnergate_throttle_cluster_exchanges_total counter\n\
             partnergate_throttle_cluster_exchanges_total{{result=\"ok\"}} {}\n\
             partnergate_throttle_cluster_exchanges_total{{result=\"failed\"}} {}\n\
             # HELP partnergate_throttle_cluster_charged_total Calls admitted by other nodes and \
             charged to this node's limiters.\n\
             # TYPE partnergate_throttle_cluster_charged_total counter\n\
             partnergate_throttle_cluster_charged_total {}\n\
             # HELP partnergate_throttle_cluster_dropped_total Calls admitted here whose counts \
             were dropped because the database could not be reached for longer than 1 s.\n\
             # TYPE partnergate_throttle_cluster_dropped_total counter\n\
             partnergate_throttle_cluster_dropped_total {}",
            flag(&self.enabled),
            flag(&self.ok),
            get(&self.nodes),
            get(&self.exchanges),
            get(&self.failures),
            get(&self.charged),
            get(&self.dropped),
        );
    }
}

/// Exchanges counts for `owner`'s throttle as node `node_id` every `every` until `shutdown`
/// turns true (or closes). The database work runs on `spawn_blocking`; a failure is logged once
/// until an exchange succeeds again, and changes nothing for the requests.
pub async fn run<T>(
    store: Store,
    node_id: String,
    owner: Arc<T>,
    every: Duration,
    shutdown: watch::Receiver<bool>,
) where
    T: AsRef<Throttle> + Send + Sync + 'static,
{
    let status = Arc::clone(&owner.as_ref().as_ref().sync);
    status.enabled.store(true, Ordering::Relaxed);
    status.nodes.store(1, Ordering::Relaxed);
    let mut ledger = Ledger::new(Instant::now());
    let mut ticker = crate::ticker::Ticker::new(every, shutdown);
    let mut drained = Vec::new();
    let mut failing = false;
    tracing::info!(node = %node_id, every = ?every, "cluster-wide limits: exchanging counts");
    while ticker.next().await {
        let throttle: &Throttle = owner.as_ref().as_ref();
        throttle.drain_admitted(&mut drained);
        ledger.collect(drained.drain(..));
        let rows = ledger.rows();
        let since = ledger.since();
        let at = Instant::now();
        let db = store.clone();
        let id = node_id.clone();
        let result =
            tokio::task::spawn_blocking(move || db.exchange_throttle_usage(&id, &rows, since))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
        match result {
            Ok(exchanged) => {
                let (charges, nodes) = ledger.succeeded(at, exchanged);
                let mut cells = 0u64;
                for c in charges {
                    throttle.charge(c.scope, &c.key, c.cells, nodes);
                    cells = cells.saturating_add(c.cells);
                }
                status.charged.fetch_add(cells, Ordering::Relaxed);
                status.nodes.store(nodes, Ordering::Relaxed);
                status.exchanges.fetch_add(1, Ordering::Relaxed);
                status.ok.store(true, Ordering::Relaxed);
                if failing {
                    failing = false;
                    tracing::info!(node = %node_id, nodes, "cluster-wide limits: exchanging counts again");
                }
            }
            Err(error) => {
                let dropped = ledger.failed(at);
                status.dropped.fetch_add(dropped, Ordering::Relaxed);
                status.failures.fetch_add(1, Ordering::Relaxed);
                status.ok.store(false, Ordering::Relaxed);
                if !failing {
                    failing = true;
                    tracing::warn!(
                        node = %node_id,
                        %error,
                        "cluster-wide limits: cannot exchange counts; each node applies the limits on its own until the database answers"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
