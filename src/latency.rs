//! Stored latency histograms: one fixed set of bucket bounds, per-bucket call counts, and
//! percentile estimates from them.
//!
//! Every answered call falls into one bucket of [`BOUNDS_MICROS`] (upper bounds, inclusive) or
//! the overflow bucket above the last bound. `stats.rs` counts per partner × operation × outcome
//! in memory and adds the counts per minute to `usage_latency` (next to `usage_stats`); counts
//! add up across gateway nodes and over time, so any set of rows can be summed into one
//! [`Counts`] and its percentiles estimated.
//!
//! An estimate is exact to within one bucket: it interpolates linearly between the bucket's
//! lower and upper bound (the same rule as Prometheus' `histogram_quantile`), and a percentile
//! that falls into the overflow bucket is reported as [`Estimate::Above`] the last bound, never
//! as an invented number. The bounds step 1-2-3-5 per decade, so an estimate is off by at most
//! the width of its bucket (a factor ≤ 2 between a bucket's bounds).
//!
//! The bounds are stored with each row (`le_micros`), not as an index: if this set ever changes,
//! older rows still say what they counted, and [`bucket_of_stored`] files a bound that is no
//! longer in the set under the next larger one (a latency is never reported smaller than it was).
//! The `/metrics` histograms (`stats::BUCKETS_MICROS`) are separate and unchanged.

use std::fmt;

/// Upper bounds (inclusive) of the stored latency buckets, in microseconds: 100 µs to 60 s in
/// 1-2-3-5 steps. A call slower than the last bound goes to the overflow bucket.
pub const BOUNDS_MICROS: [u64; 24] = [
    100, 200, 300, 500, 1_000, 2_000, 3_000, 5_000, 10_000, 20_000, 30_000, 50_000, 100_000,
    200_000, 300_000, 500_000, 1_000_000, 2_000_000, 3_000_000, 5_000_000, 10_000_000, 20_000_000,
    30_000_000, 60_000_000,
];

/// Buckets: one per bound plus the overflow bucket.
pub const BUCKETS: usize = BOUNDS_MICROS.len() + 1;

/// The `le_micros` stored for the overflow bucket.
pub const OVERFLOW_STORED: i64 = i64::MAX;

/// The last bound: what an overflow percentile is reported above.
pub const LAST_BOUND_MICROS: u64 = BOUNDS_MICROS[BOUNDS_MICROS.len() - 1];

/// The bucket of a latency of `micros`.
pub fn bucket_of(micros: u64) -> usize {
    BOUNDS_MICROS.partition_point(|b| *b < micros)
}

/// The `le_micros` stored for bucket `i` ([`OVERFLOW_STORED`] for the overflow bucket).
pub fn stored_bound(i: usize) -> i64 {
    BOUNDS_MICROS.get(i).map_or(OVERFLOW_STORED, |b| {
        i64::try_from(*b).unwrap_or(OVERFLOW_STORED)
    })
}

/// The bucket a stored `le_micros` is counted in: its own, or for a bound not in
/// [`BOUNDS_MICROS`] the next larger one (overflow above the last).
pub fn bucket_of_stored(le_micros: i64) -> usize {
    u64::try_from(le_micros).map_or(0, bucket_of)
}

/// Call counts per bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts(pub [u64; BUCKETS]);

impl Default for Counts {
    fn default() -> Self {
        Counts([0; BUCKETS])
    }
}

/// The percentiles the dashboard and `partnergate stats` show.
pub const SHOWN: [(&str, f64); 3] = [("p50", 0.50), ("p95", 0.95), ("p99", 0.99)];

impl Counts {
    /// Counts one call of `micros`.
    pub fn record(&mut self, micros: u64) {
        let i = bucket_of(micros);
        if let Some(c) = self.0.get_mut(i) {
            *c = c.saturating_add(1);
        }
    }

    /// Adds `n` calls to bucket `i` (ignored when out of range).
    pub fn add_to(&mut self, i: usize, n: u64) {
        if let Some(c) = self.0.get_mut(i) {
            *c = c.saturating_add(n);
        }
    }

    /// Adds another histogram.
    pub fn add(&mut self, other: &Counts) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    /// `self - other` per bucket (never below zero).
    pub fn minus(&self, other: &Counts) -> Counts {
        let mut out = *self;
        for (a, b) in out.0.iter_mut().zip(other.0.iter()) {
            *a = a.saturating_sub(*b);
        }
        out
    }

    /// The smaller count per bucket.
    pub fn min(&self, other: &Counts) -> Counts {
        let mut out = *self;
        for (a, b) in out.0.iter_mut().zip(other.0.iter()) {
            *a = (*a).min(*b);
        }
        out
    }

    /// All calls counted.
    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |s, n| s.saturating_add(*n))
    }

    /// `(stored le_micros, count)` of every bucket with calls, fastest first.
    pub fn stored(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (stored_bound(i), *n))
    }

    /// The `q`-quantile (`0 < q ≤ 1`), or `None` without calls (or for a `q` out of range).
    pub fn percentile(&self, q: f64) -> Option<Estimate> {
        percentile(&self.0, q)
    }
}

/// A percentile estimated from bucket counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Estimate {
    /// Interpolated inside a bucket, microseconds.
    Micros(f64),
    /// In the overflow bucket: slower than this bound (microseconds); how much is unknown.
    Above(u64),
}

impl Estimate {
    /// Milliseconds for a chart: an [`Estimate::Above`] is drawn at its bound (the chart says
    /// so in its point's title).
    pub fn chart_ms(self) -> f64 {
        match self {
            Estimate::Micros(us) => us / 1000.0,
            Estimate::Above(b) => b as f64 / 1000.0,
        }
    }

    /// Milliseconds, when known.
    pub fn ms(self) -> Option<f64> {
        match self {
            Estimate::Micros(us) => Some(us / 1000.0),
            Estimate::Above(_) => None,
        }
    }
}

impl fmt::Display for Estimate {
    /// `0.35 ms`, `12.5 ms`, `1.25 s`, or `> 60 s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Estimate::Micros(us) => {
                let ms = us / 1000.0;
                if ms < 10.0 {
                    write!(f, "{ms:.2} ms")
                } else if ms < 1000.0 {
                    write!(f, "{ms:.1} ms")
                } else {
                    write!(f, "{:.2} s", ms / 1000.0)
                }
            }
            Estimate::Above(b) => write!(f, "> {}", bound_text(*b)),
        }
    }
}

/// A bound for people: `100 µs`, `5 ms`, `60 s`.
pub fn bound_text(micros: u64) -> String {
    if micros >= 1_000_000 && micros % 1_000_000 == 0 {
        format!("{} s", micros / 1_000_000)
    } else if micros >= 1000 && micros % 1000 == 0 {
        format!("{} ms", micros / 1000)
    } else {
        format!("{micros} µs")
    }
}

/// An estimate for people, `-` for none.
pub fn text(e: Option<Estimate>) -> String {
    e.map_or_else(|| "-".to_owned(), |e| e.to_string())
}

/// The `q`-quantile (`0 < q ≤ 1`) of the calls counted in `counts` (one entry per bucket of
/// [`BOUNDS_MICROS`], then the overflow bucket): the rank `q × total` is found in the
/// cumulative counts and interpolated linearly between the bucket's lower bound (the previous
/// bound, 0 for the first) and its upper bound. `None` without calls; [`Estimate::Above`] when
/// the rank falls into the overflow bucket.
pub fn percentile(counts: &[u64; BUCKETS], q: f64) -> Option<Estimate> {
    let total = counts.iter().fold(0u64, |s, n| s.saturating_add(*n));
    if total == 0 || !(q > 0.0 && q <= 1.0) {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, n) in counts.iter().copied().enumerate() {
        if n == 0 {
            continue;
        }
        if (below.saturating_add(n)) as f64 >= rank {
            let Some(upper) = BOUNDS_MICROS.get(i).copied() else {
                return Some(Estimate::Above(LAST_BOUND_MICROS));
            };
            let lower = match i.checked_sub(1) {
                Some(j) => BOUNDS_MICROS.get(j).copied().unwrap_or(0),
                None => 0,
            };
            let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
            return Some(Estimate::Micros(
                lower as f64 + (upper - lower) as f64 * within,
            ));
        }
        below = below.saturating_add(n);
    }
    // Only reachable through rounding of `rank` at q = 1: the slowest bucket with calls.
    Some(Estimate::Above(LAST_BOUND_MICROS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(usize, u64)]) -> Counts {
        let mut c = Counts::default();
        for (i, n) in pairs {
            c.add_to(*i, *n);
        }
        c
    }

    fn micros(e: Option<Estimate>) -> f64 {
        match e {
            Some(Estimate::Micros(us)) => us,
            other => panic!("expected a number, got {other:?}"),
        }
    }

    #[test]
    fn bounds_are_increasing_and_span_100us_to_60s() {
        assert!(BOUNDS_MICROS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(BOUNDS_MICROS[0], 100);
        assert_eq!(LAST_BOUND_MICROS, 60_000_000);
        assert!(BOUNDS_MICROS.windows(2).all(|w| w[1] <= 2 * w[0]));
    }

    #[test]
    fn latencies_land_in_the_bucket_of_their_inclusive_upper_bound() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(100), 0);
        assert_eq!(bucket_of(101), 1);
        assert_eq!(bucket_of(1_000), 4);
        assert_eq!(bucket_of(60_000_000), BOUNDS_MICROS.len() - 1);
        assert_eq!(bucket_of(60_000_001), BOUNDS_MICROS.len());
        assert_eq!(bucket_of(u64::MAX), BOUNDS_MICROS.len());
    }

    #[test]
    fn stored_bounds_round_trip_and_unknown_bounds_round_up() {
        for i in 0..BUCKETS {
            assert_eq!(bucket_of_stored(stored_bound(i)), i);
        }
        assert_eq!(stored_bound(BOUNDS_MICROS.len()), OVERFLOW_STORED);
        // 250 µs is not a bound: counted under 300 µs, never under 200 µs.
        assert_eq!(bucket_of_stored(250), 2);
        assert_eq!(bucket_of_stored(-5), 0);
    }

    #[test]
    fn empty_histogram_has_no_percentiles() {
        let c = Counts::default();
        assert_eq!(c.percentile(0.5), None);
        assert_eq!(c.total(), 0);
        assert_eq!(text(c.percentile(0.99)), "-");
    }

    #[test]
    fn out_of_range_quantiles_are_refused() {
        let c = counts(&[(3, 10)]);
        assert_eq!(c.percentile(0.0), None);
        assert_eq!(c.percentile(1.5), None);
        assert_eq!(c.percentile(f64::NAN), None);
    }

    #[test]
    fn one_bucket_interpolates_linearly() {
        // 100 calls in (1 ms, 2 ms]: assumed spread evenly over the bucket.
        let c = counts(&[(5, 100)]);
        assert!((micros(c.percentile(0.5)) - 1_500.0).abs() < 1e-9);
        assert!((micros(c.percentile(0.95)) - 1_950.0).abs() < 1e-9);
        assert!((micros(c.percentile(0.99)) - 1_990.0).abs() < 1e-9);
        assert!((micros(c.percentile(1.0)) - 2_000.0).abs() < 1e-9);
    }

    #[test]
    fn the_first_bucket_starts_at_zero() {
        let c = counts(&[(0, 4)]);
        assert!((micros(c.percentile(0.5)) - 50.0).abs() < 1e-9);
    }

    #[test]
    fn two_buckets_split_by_rank() {
        // 50 calls ≤ 100 µs, 50 calls in (1 ms, 2 ms].
        let c = counts(&[(0, 50), (5, 50)]);
        assert!((micros(c.percentile(0.5)) - 100.0).abs() < 1e-9);
        assert!((micros(c.percentile(0.95)) - 1_900.0).abs() < 1e-9);
        // Empty buckets between are skipped, not interpolated into.
        assert!((micros(c.percentile(0.51)) - 1_020.0).abs() < 1e-9);
    }

    #[test]
    fn a_uniform_distribution_is_recovered() {
        // Every latency from 1 µs to 10 ms once: the true p50/p95/p99 are 5 ms, 9.5 ms, 9.9 ms.
        let mut c = Counts::default();
        for us in 1..=10_000 {
            c.record(us);
        }
        assert_eq!(c.total(), 10_000);
        for (q, want) in [(0.5, 5_000.0), (0.95, 9_500.0), (0.99, 9_900.0)] {
            let got = micros(c.percentile(q));
            assert!((got - want).abs() < 1e-6, "q={q}: {got} vs {want}");
        }
    }

    #[test]
    fn the_overflow_bucket_is_reported_as_above_the_last_bound() {
        let c = counts(&[(BOUNDS_MICROS.len(), 7)]);
        assert_eq!(c.percentile(0.5), Some(Estimate::Above(60_000_000)));
        assert_eq!(text(c.percentile(0.99)), "> 60 s");
        // 98 fast calls and 2 in overflow: p95 is a number, p99 is not.
        let c = counts(&[(4, 98), (BOUNDS_MICROS.len(), 2)]);
        assert!(matches!(c.percentile(0.95), Some(Estimate::Micros(_))));
        assert_eq!(c.percentile(0.99), Some(Estimate::Above(LAST_BOUND_MICROS)));
    }

    #[test]
    fn counts_add_subtract_and_list_stored_rows() {
        let mut a = counts(&[(0, 2), (BOUNDS_MICROS.len(), 1)]);
        let b = counts(&[(0, 1), (7, 4)]);
        a.add(&b);
        assert_eq!(a.total(), 8);
        assert_eq!(
            a.stored().collect::<Vec<_>>(),
            vec![(100, 3), (5_000, 4), (OVERFLOW_STORED, 1)]
        );
        assert_eq!(a.minus(&b), counts(&[(0, 2), (BOUNDS_MICROS.len(), 1)]));
        assert_eq!(b.minus(&a), Counts::default());
        assert_eq!(a.min(&b), b);
    }

    #[test]
    fn estimates_read_well() {
        assert_eq!(Estimate::Micros(350.0).to_string(), "0.35 ms");
        assert_eq!(Estimate::Micros(12_500.0).to_string(), "12.5 ms");
        assert_eq!(Estimate::Micros(1_250_000.0).to_string(), "1.25 s");
        assert_eq!(bound_text(100), "100 µs");
        assert_eq!(bound_text(5_000), "5 ms");
    }
}
