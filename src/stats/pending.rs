//! The usage rows waiting to be written: every flush puts what was counted since the last one
//! here (one row per minute × partner × operation × outcome) and writes the oldest rows first;
//! what the database did not take stays, under its own minute, until a later flush succeeds.
//!
//! Bounded by `stats.max_pending_rows` ([`DEFAULT_MAX_PENDING_ROWS`]). A row that finds the
//! bound reached is
//! - **folded** into the newest waiting row of the same partner × operation × outcome when there
//!   is one: no call is lost, those calls are stored under that row's (earlier) minute;
//! - **dropped** otherwise: its calls are never written, and counted
//!   (`partnergate_stats_dropped_total`).
//!
//! So a long outage loses nothing as long as the distinct partner × operation × outcome series
//! fit in the bound; only their minutes get coarser. Memory: about 400 bytes per row (the key's
//! three strings, the counts and the 25-bucket latency histogram), ≈ 8 MB at the default bound.

use std::collections::HashMap;

use crate::latency::Counts;
use crate::store::UsageDelta;

pub use crate::config::DEFAULT_MAX_PENDING_ROWS;

/// partner × operation × outcome.
type Series = (String, String, String);

#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    count: i64,
    total_micros: i64,
    latency: Counts,
}

impl Sums {
    fn add(&mut self, other: &Sums) {
        self.count = self.count.saturating_add(other.count);
        self.total_micros = self.total_micros.saturating_add(other.total_micros);
        self.latency.add(&other.latency);
    }
}

/// What [`Pending::keep`] could not keep as it came.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kept {
    /// Calls folded into an earlier minute of their series (kept, minute changed).
    pub folded_calls: u64,
    /// Calls dropped: never written.
    pub dropped_calls: u64,
}

/// Rows waiting for the database, at most `max_rows` of them.
#[derive(Debug)]
pub struct Pending {
    max_rows: usize,
    rows: HashMap<(i64, Series), Sums>,
    /// The newest waiting minute of each series (where a row that does not fit is folded).
    newest: HashMap<Series, i64>,
}

impl Pending {
    /// Nothing waiting; at most `max_rows` rows (at least one).
    pub fn new(max_rows: usize) -> Pending {
        Pending {
            max_rows: max_rows.max(1),
            rows: HashMap::new(),
            newest: HashMap::new(),
        }
    }

    /// Rows waiting.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Calls waiting in every row.
    pub fn calls(&self) -> u64 {
        self.rows.values().fold(0u64, |n, s| {
            n.saturating_add(u64::try_from(s.count).unwrap_or(0))
        })
    }

    /// Adds `deltas` (a row already waiting for the same minute and series adds up with it).
    pub fn keep(&mut self, deltas: Vec<UsageDelta>) -> Kept {
        let mut kept = Kept::default();
        for d in deltas {
            let sums = Sums {
                count: d.count,
                total_micros: d.total_micros,
                latency: d.latency,
            };
            let series = (d.partner_id, d.operation, d.outcome);
            let calls = u64::try_from(d.count).unwrap_or(0);
            let key = (d.bucket_start, series);
            if let Some(row) = self.rows.get_mut(&key) {
                row.add(&sums);
                continue;
            }
            let (bucket, series) = key;
            if self.rows.len() < self.max_rows {
                let newest = self.newest.entry(series.clone()).or_insert(bucket);
                *newest = (*newest).max(bucket);
                self.rows.insert((bucket, series), sums);
                continue;
            }
            let folded = self
                .newest
                .get(&series)
                .and_then(|at| self.rows.get_mut(&(*at, series.clone())));
            match folded {
                Some(row) => {
                    row.add(&sums);
                    kept.folded_calls = kept.folded_calls.saturating_add(calls);
                }
                None => kept.dropped_calls = kept.dropped_calls.saturating_add(calls),
            }
        }
        kept
    }

    /// Takes up to `n` rows, oldest minutes first, to write.
    pub fn take_oldest(&mut self, n: usize) -> Vec<UsageDelta> {
        let mut keys: Vec<(i64, Series)> = self.rows.keys().cloned().collect();
        keys.sort_unstable();
        keys.truncate(n);
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(sums) = self.rows.remove(&key) else {
                continue;
            };
            let (bucket_start, series) = key;
            if self.newest.get(&series) == Some(&bucket_start) {
                self.newest.remove(&series);
            }
            let (partner_id, operation, outcome) = series;
            out.push(UsageDelta {
                bucket_start,
                partner_id,
                operation,
                outcome,
                count: sums.count,
                total_micros: sums.total_micros,
                latency: sums.latency,
            });
        }
        // A taken row that was its series' newest took every older row of the series with it
        // (oldest minutes first): `newest` names only rows still waiting.
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(bucket: i64, partner: &str, outcome: &str, count: i64) -> UsageDelta {
        let mut latency = Counts::default();
        latency.add_to(0, u64::try_from(count).unwrap());
        UsageDelta {
            bucket_start: bucket,
            partner_id: partner.into(),
            operation: "CreateAccount".into(),
            outcome: outcome.into(),
            count,
            total_micros: count * 10,
            latency,
        }
    }

    fn total(rows: &[UsageDelta]) -> i64 {
        rows.iter().map(|r| r.count).sum()
    }

    #[test]
    fn rows_of_the_same_minute_and_series_add_up_and_come_back_oldest_first() {
        let mut p = Pending::new(10);
        assert_eq!(
            p.keep(vec![row(120, "P-1", "ok", 2), row(60, "P-1", "ok", 1)]),
            Kept::default()
        );
        assert_eq!(p.keep(vec![row(120, "P-1", "ok", 3)]), Kept::default());
        assert_eq!((p.len(), p.calls()), (2, 6));
        let rows = p.take_oldest(10);
        assert_eq!(
            rows.iter()
                .map(|r| (r.bucket_start, r.count))
                .collect::<Vec<_>>(),
            vec![(60, 1), (120, 5)]
        );
        assert_eq!(rows[1].latency.total(), 5);
        assert_eq!(rows[1].total_micros, 50);
        assert!(p.is_empty());
    }

    #[test]
    fn at_the_bound_a_known_series_is_folded_and_a_new_one_dropped() {
        let mut p = Pending::new(2);
        p.keep(vec![row(60, "P-1", "ok", 1), row(60, "P-2", "ok", 1)]);
        // A new minute of P-1: no room, folded into P-1's newest row (minute 60).
        let kept = p.keep(vec![row(120, "P-1", "ok", 4)]);
        assert_eq!(
            kept,
            Kept {
                folded_calls: 4,
                dropped_calls: 0
            }
        );
        // A series that has no row: dropped.
        let kept = p.keep(vec![row(120, "P-3", "ok", 7), row(120, "P-1", "denied", 2)]);
        assert_eq!(
            kept,
            Kept {
                folded_calls: 0,
                dropped_calls: 9
            }
        );
        assert_eq!(
            (p.len(), p.calls()),
            (2, 6),
            "the bound holds; folded calls are kept"
        );
        let rows = p.take_oldest(10);
        assert_eq!(total(&rows), 6);
        assert!(rows.iter().all(|r| r.bucket_start == 60));
    }

    #[test]
    fn taking_part_of_a_series_folds_later_rows_into_what_is_left() {
        let mut p = Pending::new(3);
        p.keep(vec![
            row(60, "P-1", "ok", 1),
            row(120, "P-1", "ok", 1),
            row(180, "P-1", "ok", 1),
        ]);
        let first = p.take_oldest(2);
        assert_eq!(
            first.iter().map(|r| r.bucket_start).collect::<Vec<_>>(),
            vec![60, 120]
        );
        // Put back as a failed write would: they fit again.
        assert_eq!(p.keep(first), Kept::default());
        assert_eq!(p.len(), 3);
        // Full: a new minute folds into the newest (180), not into a taken row.
        assert_eq!(p.keep(vec![row(240, "P-1", "ok", 5)]).folded_calls, 5);
        let rows = p.take_oldest(1);
        assert_eq!((rows[0].bucket_start, rows[0].count), (60, 1));
        assert_eq!(
            p.keep(vec![row(300, "P-1", "ok", 2)]),
            Kept::default(),
            "room again"
        );
        let rest = p.take_oldest(10);
        assert_eq!(
            rest.iter()
                .map(|r| (r.bucket_start, r.count))
                .collect::<Vec<_>>(),
            vec![(120, 1), (180, 6), (300, 2)]
        );
    }

    #[test]
    fn a_bound_of_zero_still_keeps_one_row() {
        let mut p = Pending::new(0);
        assert_eq!(p.keep(vec![row(60, "P-1", "ok", 1)]), Kept::default());
        assert_eq!(p.len(), 1);
    }
}
