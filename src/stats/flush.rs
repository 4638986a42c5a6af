//! Writing the counts: every flush moves what was counted since the last one into the rows
//! waiting ([`Pending`], bounded), then writes the waiting rows, oldest minutes first, in
//! transactions of at most [`WRITE_BATCH_ROWS`]; a failed write leaves its rows waiting for the
//! next flush. The flusher runs one flush every `stats.flush_interval_ms`; at shutdown the
//! gateway runs the last one itself (`app.rs`), within the exit budget.
//!
//! A database outage is logged once when it starts (the first failed flush) and once when it
//! ends (the rows written after it); a row dropped or folded at the bound is logged once per
//! outage, and counted in `/metrics` always.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use super::pending::{Kept, Pending};
use super::{Stats, BUCKET_SECS};
use crate::store::{Store, StoreError, UsageDelta};

/// Rows written per transaction (the rows waiting after a long outage go in several).
pub const WRITE_BATCH_ROWS: usize = 1_000;

/// How often old usage rows are deleted.
pub const PRUNE_EVERY_SECS: i64 = 3600;

/// The rows waiting and what has been logged about them in this outage.
#[derive(Debug)]
pub(super) struct Waiting {
    rows: Pending,
    dropped_logged: bool,
    folded_logged: bool,
}

impl Waiting {
    pub(super) fn new(max_rows: usize) -> Waiting {
        Waiting {
            rows: Pending::new(max_rows),
            dropped_logged: false,
            folded_logged: false,
        }
    }
}

impl Stats {
    fn waiting(&self) -> MutexGuard<'_, Waiting> {
        // A panic while holding the lock leaves consistent rows (every change is one call).
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes everything not yet written to `store` (blocking; run on `spawn_blocking`): the
    /// rows that waited, then what was counted since; returns the rows written. The wait for
    /// a connection is the store handle's checkout timeout.
    pub fn flush(&self, store: &Store, now: i64) -> Result<usize, StoreError> {
        self.flush_with(now, |rows, uses| store.add_usage(rows, uses))
    }

    /// [`Stats::flush`] through `write` (one call per transaction).
    pub(super) fn flush_with(
        &self,
        now: i64,
        mut write: impl FnMut(&[UsageDelta], &[(i64, i64)]) -> Result<(), StoreError>,
    ) -> Result<usize, StoreError> {
        let mut waiting = self.waiting();
        let bucket = now - now.rem_euclid(BUCKET_SECS);
        let kept = waiting.rows.keep(self.take_deltas(bucket));
        self.note(&mut waiting, kept);
        let mut uses = self.take_key_uses();
        let mut written = 0;
        let result = loop {
            let rows = waiting.rows.take_oldest(WRITE_BATCH_ROWS);
            if rows.is_empty() && uses.is_empty() {
                break Ok(written);
            }
            match write(&rows, &uses) {
                Ok(()) => {
                    written += rows.len();
                    uses.clear();
                }
                Err(e) => {
                    // Taken from the rows waiting a moment ago: they fit back as they were.
                    let back = waiting.rows.keep(rows);
                    self.note(&mut waiting, back);
                    self.give_back_key_uses(uses);
                    break Err(e);
                }
            }
        };
        if waiting.rows.is_empty() {
            waiting.dropped_logged = false;
            waiting.folded_logged = false;
        }
        self.pending_rows
            .store(waiting.rows.len(), Ordering::Relaxed);
        result
    }

    /// Counts (and logs once per outage) what could not be kept as it came.
    fn note(&self, waiting: &mut Waiting, kept: Kept) {
        let max_pending_rows = self.max_pending_rows;
        let count = |counter: &AtomicU64, logged: &mut bool, calls: u64, what: &str| {
            if calls == 0 {
                return;
            }
            counter.fetch_add(calls, Ordering::Relaxed);
            if !*logged {
                *logged = true;
                tracing::warn!(calls, max_pending_rows, "{what}");
            }
        };
        count(
            &self.dropped_calls,
            &mut waiting.dropped_logged,
            kept.dropped_calls,
            "statistics dropped: the rows waiting for the database reached \
             stats.max_pending_rows; further drops until it is written again are counted in \
             partnergate_stats_dropped_total only",
        );
        count(
            &self.folded_calls,
            &mut waiting.folded_logged,
            kept.folded_calls,
            "statistics folded: the rows waiting for the database reached \
             stats.max_pending_rows; later minutes are added to the newest waiting minute of \
             the same partner, operation and outcome",
        );
    }

    /// Key uses of a failed write, back for the next one (a use recorded since is the later).
    fn give_back_key_uses(&self, uses: Vec<(i64, i64)>) {
        if let Some(shard) = self.shards.first() {
            if let Ok(mut shard) = shard.lock() {
                for (id, at) in uses {
                    let e = shard.key_uses.entry(id).or_insert(at);
                    *e = (*e).max(at);
                }
            }
        }
    }

    /// Calls counted but not written yet (in rows waiting; the counters since the last flush
    /// are not included).
    pub fn pending_calls(&self) -> u64 {
        self.waiting().rows.calls()
    }

    /// Calls whose counts were dropped at the bound since the start.
    pub fn dropped_calls(&self) -> u64 {
        self.dropped_calls.load(Ordering::Relaxed)
    }

    pub(super) fn render_pending(&self, out: &mut String) {
        let series: [(&str, &str, &str, u64); 4] = [
            (
                "partnergate_stats_pending_rows",
                "gauge",
                "Usage rows (minute x partner x operation x outcome) waiting for the database.",
                u64::try_from(self.pending_rows.load(Ordering::Relaxed)).unwrap_or(u64::MAX),
            ),
            (
                "partnergate_stats_pending_rows_max",
                "gauge",
                "stats.max_pending_rows: the most usage rows that wait in memory.",
                u64::try_from(self.max_pending_rows).unwrap_or(u64::MAX),
            ),
            (
                "partnergate_stats_dropped_total",
                "counter",
                "Calls whose statistics were dropped because the rows waiting for the database were at stats.max_pending_rows.",
                self.dropped_calls.load(Ordering::Relaxed),
            ),
            (
                "partnergate_stats_folded_total",
                "counter",
                "Calls whose statistics were kept under an earlier minute because the rows waiting for the database were at stats.max_pending_rows.",
                self.folded_calls.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

/// The cut-off (unix seconds) when old usage rows are due to be deleted: at the first flush and
/// then hourly; never with a zero retention (keep for ever).
fn prune_due(now: i64, retention: Duration, last: &mut Option<i64>) -> Option<i64> {
    if retention.is_zero() || last.is_some_and(|t| now - t < PRUNE_EVERY_SECS) {
        return None;
    }
    *last = Some(now);
    let keep = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
    Some(now.saturating_sub(keep))
}

/// Flushes every `every` until `shutdown`; the last flush is the caller's (after the requests
/// in flight are done). `store`'s checkout timeout bounds each flush's wait for a connection,
/// so a shutdown never waits long on a flush in progress.
pub async fn run_flusher(
    stats: Arc<Stats>,
    store: Store,
    every: Duration,
    retention: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = crate::ticker::Ticker::new(every, shutdown);
    let mut last_prune: Option<i64> = None;
    // Whether the database is failing (logged when it starts and when it ends).
    let mut failing = false;
    while ticker.next().await {
        let (s, st) = (Arc::clone(&stats), store.clone());
        let now = crate::clock::unix_now();
        match tokio::task::spawn_blocking(move || s.flush(&st, now)).await {
            Ok(Ok(rows)) => {
                if failing {
                    failing = false;
                    tracing::info!(rows, "statistics written again: the database is back");
                }
            }
            Ok(Err(e)) => {
                if !failing {
                    failing = true;
                    tracing::warn!(
                        error = %e,
                        pending_rows = stats.pending_rows.load(Ordering::Relaxed),
                        "statistics flush failed; counts wait in memory and every flush retries"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "statistics flush task failed"),
        }
        if failing || ticker.stopping() {
            continue;
        }
        if let Some(before) = prune_due(now, retention, &mut last_prune) {
            let st = store.clone();
            match tokio::task::spawn_blocking(move || st.prune_usage(before)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(rows)) => tracing::info!(rows, before, "old usage statistics deleted"),
                Ok(Err(e)) => tracing::warn!(error = %e, "deleting old usage statistics failed"),
                Err(e) => tracing::warn!(error = %e, "deleting old usage statistics failed"),
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::stats::{Record, StageTimes};

    /// A failed write.
    pub(crate) fn down() -> StoreError {
        StoreError::Pool("database down (test)".into())
    }

    fn call(s: &Stats, partner: &'static str, operation: &'static str) {
        s.record(
            Record {
                partner: Some(partner),
                operation: Some(operation),
                outcome: "ok",
                total: Duration::from_micros(500),
                stages: StageTimes::default(),
                key_id: Some(1),
                face: crate::stats::Face::Soap,
            },
            0,
        );
    }

    fn written(rows: &[UsageDelta]) -> i64 {
        rows.iter().map(|r| r.count).sum()
    }

    #[test]
    fn old_rows_are_pruned_at_the_first_flush_then_hourly_and_never_with_zero_retention() {
        let day = Duration::from_secs(86_400);
        let mut last = None;
        assert_eq!(
            prune_due(1_000_000, day, &mut last),
            Some(1_000_000 - 86_400)
        );
        assert_eq!(prune_due(1_000_000 + 3_599, day, &mut last), None);
        assert_eq!(
            prune_due(1_000_000 + 3_600, day, &mut last),
            Some(1_000_000 + 3_600 - 86_400)
        );
        let mut never = None;
        assert_eq!(prune_due(1_000_000, Duration::ZERO, &mut never), None);
        assert_eq!(never, None);
    }

    #[test]
    fn an_outage_keeps_every_minute_and_writes_them_all_after() {
        let s = Stats::new(100);
        let mut calls = 0;
        // Five minutes of outage, a call per minute and 3 on the last.
        for minute in 0..5 {
            let n = if minute == 4 { 3 } else { 1 };
            for _ in 0..n {
                call(&s, "P-1", "GetAccount");
                calls += 1;
            }
            assert!(s.flush_with(minute * 60, |_, _| Err(down())).is_err());
        }
        assert_eq!((s.pending_calls(), s.dropped_calls()), (calls, 0));
        let text = s.render(&[]);
        assert!(
            text.contains("partnergate_stats_pending_rows 5\n"),
            "{text}"
        );
        let mut rows = Vec::new();
        let mut uses = Vec::new();
        let n = s
            .flush_with(300, |r, u| {
                rows.extend_from_slice(r);
                uses.extend_from_slice(u);
                Ok(())
            })
            .unwrap();
        assert_eq!(n, 5);
        assert_eq!(
            rows.iter()
                .map(|r| (r.bucket_start, r.count))
                .collect::<Vec<_>>(),
            vec![(0, 1), (60, 1), (120, 1), (180, 1), (240, 3)],
            "each minute under its own minute, oldest first"
        );
        assert_eq!(uses, vec![(1, 0)], "the key's last use is written too");
        assert_eq!(s.pending_calls(), 0);
        assert!(s.render(&[]).contains("partnergate_stats_pending_rows 0\n"));
    }

    #[test]
    fn beyond_the_bound_rows_are_dropped_and_counted_the_rest_written() {
        let s = Stats::new(2);
        for op in ["GetAccount", "GetService"] {
            call(&s, "P-1", op);
            call(&s, "P-1", op);
        }
        assert!(s.flush_with(60, |_, _| Err(down())).is_err());
        assert_eq!(s.dropped_calls(), 0);
        for op in ["GetDevice", "GetFeature"] {
            call(&s, "P-1", op);
            call(&s, "P-1", op);
        }
        assert!(s.flush_with(60, |_, _| Err(down())).is_err());
        assert_eq!(s.dropped_calls(), 4, "two series of two calls did not fit");
        assert_eq!(s.pending_calls(), 4);
        // Same series, a later minute: folded, not dropped.
        call(&s, "P-1", "GetAccount");
        assert!(s.flush_with(120, |_, _| Err(down())).is_err());
        assert_eq!((s.dropped_calls(), s.pending_calls()), (4, 5));
        let text = s.render(&[]);
        assert!(
            text.contains("partnergate_stats_dropped_total 4\n"),
            "{text}"
        );
        assert!(
            text.contains("partnergate_stats_folded_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("partnergate_stats_pending_rows_max 2\n"),
            "{text}"
        );
        let mut rows = Vec::new();
        s.flush_with(180, |r, _| {
            rows.extend_from_slice(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(written(&rows), 5, "made 9 = written 5 + dropped 4");
    }

    #[test]
    fn a_write_failing_halfway_keeps_what_was_not_written() {
        let s = Stats::new(5_000);
        // More rows than one transaction takes: 1,200 minutes of one series.
        for minute in 0..1_200 {
            call(&s, "P-1", "GetAccount");
            assert!(s.flush_with(minute * 60, |_, _| Err(down())).is_err());
        }
        let mut batches = 0;
        let mut rows = Vec::new();
        let failed = s.flush_with(1_200 * 60, |r, _| {
            batches += 1;
            if batches == 2 {
                return Err(down());
            }
            rows.extend_from_slice(r);
            Ok(())
        });
        assert!(failed.is_err());
        assert_eq!(
            rows.len(),
            WRITE_BATCH_ROWS,
            "the first transaction went in"
        );
        assert_eq!(s.pending_calls(), 200);
        s.flush_with(1_201 * 60, |r, _| {
            rows.extend_from_slice(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(written(&rows), 1_200);
    }
}
