//! Usage statistics and metrics: every answered request is counted once, in memory, per partner ×
//! operation × outcome, with its latency; per-stage and total latency histograms feed `/metrics`.
//! Each call's latency also goes into that key's histogram of [`crate::latency::BOUNDS_MICROS`]
//! (the stored buckets behind the dashboard's and `partnergate stats`' percentiles).
//! A flusher adds the counts to the database in batches (every `stats.flush_interval_ms` and at
//! shutdown), never one write per request; several gateway nodes add up in the same rows. What
//! a flush could not write waits in memory under its own minute (`pending`: bounded by
//! `stats.max_pending_rows`, what goes beyond counted in `/metrics`), so a database outage
//! loses no count; `flush`: the flusher and the writing.
//!
//! Refused calls are counted against the partner they claimed to be when that partner exists;
//! otherwise under `-` (so an anonymous caller cannot grow the key space). The hot path takes
//! one of [`SHARDS`] mutexes, chosen per worker thread, for a few hundred nanoseconds.

mod flush;
mod partners;
mod pending;
pub mod process;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::latency;
use crate::store::UsageDelta;

pub use flush::{run_flusher, PRUNE_EVERY_SECS};
pub use pending::{Kept, Pending, DEFAULT_MAX_PENDING_ROWS};

/// Mutex shards of the counter map.
pub const SHARDS: usize = 16;

/// Length of a statistics bucket in the database.
pub const BUCKET_SECS: i64 = 60;

/// Upper bounds of the `/metrics` latency histogram buckets, in microseconds (the last is +Inf).
/// The stored per-partner histograms use [`crate::latency::BOUNDS_MICROS`].
pub const BUCKETS_MICROS: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// The face a request came through: the same contract as SOAP or as REST/JSON (`crate::rest`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Face {
    /// `/soap/…`: SOAP 1.1 or 1.2.
    #[default]
    Soap,
    /// `/rest/partner/v1/…`: JSON.
    Rest,
}

impl Face {
    /// The `face` label of `/metrics` and the access line.
    pub const fn label(self) -> &'static str {
        match self {
            Face::Soap => "soap",
            Face::Rest => "rest",
        }
    }
}

/// The stages timed separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Body limits and the XML structure pass.
    Limit,
    /// Envelope scan.
    Envelope,
    /// Authentication, allowlist, authorization, throttle.
    Checks,
    /// Strict typed decode.
    Decode,
    /// The upstream call (re-encode, send, decode the reply).
    Upstream,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 5] = [
        Stage::Limit,
        Stage::Envelope,
        Stage::Checks,
        Stage::Decode,
        Stage::Upstream,
    ];

    /// The metrics label.
    pub const fn label(self) -> &'static str {
        match self {
            Stage::Limit => "limit",
            Stage::Envelope => "envelope",
            Stage::Checks => "checks",
            Stage::Decode => "decode",
            Stage::Upstream => "upstream",
        }
    }
}

/// Time spent per stage by one request (zero for stages it did not reach).
#[derive(Clone, Copy, Debug, Default)]
pub struct StageTimes(pub [Duration; 5]);

impl StageTimes {
    /// Adds `d` to `stage`.
    pub fn add(&mut self, stage: Stage, d: Duration) {
        let i = stage as usize;
        self.0[i] += d;
    }
}

/// A latency histogram with atomic buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; 13],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BUCKETS_MICROS
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BUCKETS_MICROS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BUCKETS_MICROS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let le = *bound as f64 / 1e6;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets[BUCKETS_MICROS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(
            out,
            "{name}_count{braces} {}",
            self.count.load(Ordering::Relaxed)
        );
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    partner: Arc<str>,
    operation: &'static str,
    outcome: &'static str,
    face: Face,
}

#[derive(Clone, Copy, Debug, Default)]
struct Value {
    count: u64,
    micros: u64,
    latency: latency::Counts,
    flushed_count: u64,
    flushed_micros: u64,
    flushed_latency: latency::Counts,
}

/// One thread's share of the counters (a request takes one shard's lock, nothing process-wide).
#[derive(Default)]
struct Shard {
    counters: HashMap<Key, Value>,
    /// Last use per key id.
    key_uses: HashMap<i64, i64>,
    /// The partner ids this shard has counted, so that counting a request clones an `Arc`
    /// instead of allocating the id (only existing partners are counted: bounded).
    partners: HashSet<Arc<str>>,
}

/// All counters of one gateway process.
pub struct Stats {
    shards: Vec<Mutex<Shard>>,
    total: Histogram,
    stages: [Histogram; 5],
    /// Open connections (maintained by the server).
    pub open_connections: AtomicUsize,
    /// The rows waiting for the database (only flushes take this lock, one at a time).
    waiting: Mutex<flush::Waiting>,
    /// Mirrors of `waiting` for `/metrics` (read without its lock).
    pending_rows: AtomicUsize,
    max_pending_rows: usize,
    dropped_calls: AtomicU64,
    folded_calls: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new(DEFAULT_MAX_PENDING_ROWS)
    }
}

fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|i| *i)
}

/// One answered request, as counted.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// The partner (authenticated, or claimed and known), or `None`.
    pub partner: Option<&'a str>,
    /// The operation, when the body named one.
    pub operation: Option<&'static str>,
    /// `ok` or the refusal / upstream-error label.
    pub outcome: &'static str,
    /// Total time in the gateway.
    pub total: Duration,
    /// Per-stage times.
    pub stages: StageTimes,
    /// The key that authenticated the call.
    pub key_id: Option<i64>,
    /// The face the call came through.
    pub face: Face,
}

impl Stats {
    /// No counts yet; at most `max_pending_rows` rows wait for the database
    /// (`stats.max_pending_rows`).
    pub fn new(max_pending_rows: usize) -> Stats {
        Stats {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            total: Histogram::default(),
            stages: Default::default(),
            open_connections: AtomicUsize::new(0),
            waiting: Mutex::new(flush::Waiting::new(max_pending_rows)),
            pending_rows: AtomicUsize::new(0),
            max_pending_rows: max_pending_rows.max(1),
            dropped_calls: AtomicU64::new(0),
            folded_calls: AtomicU64::new(0),
        }
    }

    /// Counts one request.
    pub fn record(&self, r: Record<'_>, now: i64) {
        let micros = u64::try_from(r.total.as_micros()).unwrap_or(u64::MAX);
        if let Ok(mut shard) = self.shards[shard_index()].lock() {
            let shard = &mut *shard;
            let id = r.partner.unwrap_or("-");
            let partner = match shard.partners.get(id) {
                Some(p) => Arc::clone(p),
                None => {
                    let p: Arc<str> = Arc::from(id);
                    shard.partners.insert(Arc::clone(&p));
                    p
                }
            };
            let key = Key {
                partner,
                operation: r.operation.unwrap_or("-"),
                outcome: r.outcome,
                face: r.face,
            };
            let v = shard.counters.entry(key).or_default();
            v.count += 1;
            v.micros = v.micros.saturating_add(micros);
            v.latency.record(micros);
            if let Some(id) = r.key_id {
                shard.key_uses.insert(id, now);
            }
        }
        self.total.observe(r.total);
        for stage in Stage::ALL {
            let d = r.stages.0[stage as usize];
            if !d.is_zero() {
                self.stages[stage as usize].observe(d);
            }
        }
    }

    /// Requests answered since the start (what the node's heartbeat derives its requests per
    /// second from).
    pub fn answered(&self) -> u64 {
        self.total.count.load(Ordering::Relaxed)
    }

    /// The counts not yet written, marked as written (returned to the caller to write).
    fn take_deltas(&self, bucket_start: i64) -> Vec<UsageDelta> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let Ok(mut shard) = shard.lock() else {
                continue;
            };
            for (k, v) in shard.counters.iter_mut() {
                let count = v.count - v.flushed_count;
                if count == 0 {
                    continue;
                }
                let micros = v.micros - v.flushed_micros;
                let latency = v.latency.minus(&v.flushed_latency);
                v.flushed_count = v.count;
                v.flushed_micros = v.micros;
                v.flushed_latency = v.latency;
                out.push(UsageDelta {
                    bucket_start,
                    partner_id: k.partner.to_string(),
                    operation: k.operation.to_string(),
                    outcome: k.outcome.to_string(),
                    count: i64::try_from(count).unwrap_or(i64::MAX),
                    total_micros: i64::try_from(micros).unwrap_or(i64::MAX),
                    latency,
                });
            }
        }
        // Rows of different shards with the same key are merged.
        let mut merged: HashMap<(String, String, String), UsageDelta> = HashMap::new();
        for d in out {
            let k = (d.partner_id.clone(), d.operation.clone(), d.outcome.clone());
            merged
                .entry(k)
                .and_modify(|e| {
                    e.count += d.count;
                    e.total_micros += d.total_micros;
                    e.latency.add(&d.latency);
                })
                .or_insert(d);
        }
        merged.into_values().collect()
    }

    /// The latest use per key id across the shards, emptying them.
    fn take_key_uses(&self) -> Vec<(i64, i64)> {
        let mut latest: HashMap<i64, i64> = HashMap::new();
        for shard in &self.shards {
            if let Ok(mut shard) = shard.lock() {
                for (id, at) in shard.key_uses.drain() {
                    let e = latest.entry(id).or_insert(at);
                    *e = (*e).max(at);
                }
            }
        }
        latest.into_iter().collect()
    }

    /// Prometheus text: requests by partner × operation × outcome, refusals by reason,
    /// latency histograms, plus `gauges` (name, help, value) from the caller.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let mut totals: HashMap<Key, u64> = HashMap::new();
        for shard in &self.shards {
            let Ok(shard) = shard.lock() else { continue };
            for (k, v) in shard.counters.iter() {
                *totals.entry(k.clone()).or_default() += v.count;
            }
        }
        let mut rows: Vec<(Key, u64)> = totals.into_iter().collect();
        rows.sort_by(|a, b| {
            (&*a.0.partner, a.0.operation, a.0.outcome, a.0.face).cmp(&(
                &*b.0.partner,
                b.0.operation,
                b.0.outcome,
                b.0.face,
            ))
        });
        let _ = writeln!(
            out,
            "# HELP partnergate_requests_total Answered partner requests, by face (soap, rest)."
        );
        let _ = writeln!(out, "# TYPE partnergate_requests_total counter");
        let mut refusals: HashMap<&'static str, u64> = HashMap::new();
        let mut upstream_errors: HashMap<&'static str, u64> = HashMap::new();
        for (k, n) in &rows {
            let _ = writeln!(
                out,
                "partnergate_requests_total{{partner=\"{}\",operation=\"{}\",outcome=\"{}\",face=\"{}\"}} {n}",
                escape_label(&k.partner),
                k.operation,
                k.outcome,
                k.face.label()
            );
            if k.outcome.starts_with("upstream-") || k.outcome == "internal" {
                *upstream_errors.entry(k.outcome).or_default() += n;
            } else if k.outcome != "ok" {
                *refusals.entry(k.outcome).or_default() += n;
            }
        }
        let mut write_map =
            |name: &str, help: &str, label: &str, map: HashMap<&'static str, u64>| {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} counter");
                let mut items: Vec<_> = map.into_iter().collect();
                items.sort();
                for (k, n) in items {
                    let _ = writeln!(out, "{name}{{{label}=\"{k}\"}} {n}");
                }
            };
        write_map(
            "partnergate_refusals_total",
            "Requests refused by the gateway, by reason.",
            "reason",
            refusals,
        );
        write_map(
            "partnergate_upstream_errors_total",
            "Requests the upstream could not answer, by kind.",
            "kind",
            upstream_errors,
        );
        let _ = writeln!(
            out,
            "# HELP partnergate_request_duration_seconds Time in the gateway per request."
        );
        let _ = writeln!(out, "# TYPE partnergate_request_duration_seconds histogram");
        self.total
            .render(&mut out, "partnergate_request_duration_seconds", "");
        let _ = writeln!(
            out,
            "# HELP partnergate_stage_duration_seconds Time per stage of the request path."
        );
        let _ = writeln!(out, "# TYPE partnergate_stage_duration_seconds histogram");
        for stage in Stage::ALL {
            self.stages[stage as usize].render(
                &mut out,
                "partnergate_stage_duration_seconds",
                &format!("stage=\"{}\"", stage.label()),
            );
        }
        let _ = writeln!(
            out,
            "# HELP partnergate_open_connections Open partner connections."
        );
        let _ = writeln!(out, "# TYPE partnergate_open_connections gauge");
        let _ = writeln!(
            out,
            "partnergate_open_connections {}",
            self.open_connections.load(Ordering::Relaxed)
        );
        self.render_pending(&mut out);
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(partner: &str, outcome: &'static str) -> Record<'static> {
        let partner: &'static str = Box::leak(partner.to_string().into_boxed_str());
        Record {
            partner: Some(partner),
            operation: Some("CreateAccount"),
            outcome,
            total: Duration::from_micros(700),
            stages: StageTimes::default(),
            key_id: Some(7),
            face: Face::Soap,
        }
    }

    #[test]
    fn key_uses_from_every_shard_are_taken_once_latest_first() {
        let stats = Arc::new(Stats::default());
        let use_key = |stats: &Stats, id: i64, at: i64| {
            let mut r = rec("PARTNER-0001", "ok");
            r.key_id = Some(id);
            stats.record(r, at);
        };
        use_key(&stats, 7, 200);
        use_key(&stats, 8, 150);
        let s2 = Arc::clone(&stats);
        // Another thread records into another shard.
        std::thread::spawn(move || use_key(&s2, 7, 100))
            .join()
            .unwrap();
        let mut uses = stats.take_key_uses();
        uses.sort_unstable();
        assert_eq!(uses, vec![(7, 200), (8, 150)]);
        assert!(stats.take_key_uses().is_empty());
    }

    #[test]
    fn deltas_are_taken_once_and_merged_across_shards() {
        let s = Stats::default();
        for _ in 0..3 {
            s.record(rec("P-1", "ok"), 100);
        }
        std::thread::scope(|scope| {
            scope.spawn(|| s.record(rec("P-1", "ok"), 100));
        });
        s.record(rec("P-1", "denied-operation"), 100);
        let mut d = s.take_deltas(60);
        d.sort_by(|a, b| a.outcome.cmp(&b.outcome));
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[1].outcome.as_str(), d[1].count, d[1].total_micros),
            ("ok", 4, 2800)
        );
        assert!(s.take_deltas(60).is_empty(), "nothing is written twice");
    }

    #[test]
    fn latencies_are_bucketed_per_key_and_survive_a_failed_flush() {
        let s = Stats::default();
        let at = |us: u64, outcome: &'static str| Record {
            total: Duration::from_micros(us),
            ..rec("P-1", outcome)
        };
        // 4 ok calls ≤ 100 µs, 2 ok calls in (1 ms, 2 ms], one from another thread (shard);
        // 1 refusal in (2 ms, 3 ms].
        for _ in 0..4 {
            s.record(at(80, "ok"), 100);
        }
        s.record(at(1_500, "ok"), 100);
        std::thread::scope(|scope| {
            scope.spawn(|| s.record(at(2_000, "ok"), 100));
        });
        s.record(at(2_500, "denied-operation"), 100);
        // The write fails: what it was given is what was counted.
        let mut d = Vec::new();
        let failed = s.flush_with(60, |rows, _| {
            d.extend_from_slice(rows);
            Err(flush::tests::down())
        });
        assert!(failed.is_err());
        d.sort_by(|a, b| a.outcome.cmp(&b.outcome));
        let ok = &d[1];
        assert_eq!((ok.outcome.as_str(), ok.count), ("ok", 6));
        assert_eq!(ok.latency.total(), 6);
        assert_eq!(
            ok.latency.stored().collect::<Vec<_>>(),
            vec![(100, 4), (2_000, 2)]
        );
        assert_eq!(d[0].latency.stored().collect::<Vec<_>>(), vec![(3_000, 1)]);
        // Everything waits, and is written with what came since (same minute: added up).
        s.record(at(90_000_000, "ok"), 100);
        let mut again = Vec::new();
        s.flush_with(60, |rows, _| {
            again.extend_from_slice(rows);
            Ok(())
        })
        .unwrap();
        again.sort_by(|a, b| a.outcome.cmp(&b.outcome));
        assert_eq!(again[1].count, 7);
        assert_eq!(
            again[1].latency.stored().collect::<Vec<_>>(),
            vec![(100, 4), (2_000, 2), (latency::OVERFLOW_STORED, 1)]
        );
        assert_eq!(again[0].latency, d[0].latency);
        assert!(s.take_deltas(60).is_empty());
    }

    #[test]
    fn metrics_render() {
        let s = Stats::default();
        s.record(rec("P-1", "ok"), 100);
        s.record(rec("P-1", "throttled"), 100);
        s.record(rec("P-1", "upstream-timeout"), 100);
        let text = s.render(&[("partnergate_snapshot_age_seconds", "Age.", 0.5)]);
        assert!(text.contains("partnergate_requests_total{partner=\"P-1\",operation=\"CreateAccount\",outcome=\"ok\",face=\"soap\"} 1"));
        assert!(text.contains("partnergate_refusals_total{reason=\"throttled\"} 1"));
        assert!(text.contains("partnergate_upstream_errors_total{kind=\"upstream-timeout\"} 1"));
        assert!(text.contains("partnergate_request_duration_seconds_bucket{le=\"0.001\"} 3"));
        assert!(text.contains("partnergate_request_duration_seconds_count 3"));
        assert!(text.contains("partnergate_snapshot_age_seconds 0.5"));
    }
}
