//! The time ranges the usage charts offer (15 minutes … 90 days, the time the database keeps
//! usage), the default chosen from the data, and the x-axis labels.

use crate::admin::text::utc;

/// A time range of the usage charts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// The query value (`24h`).
    pub key: &'static str,
    /// For people.
    pub label: &'static str,
    /// Length, seconds.
    pub secs: i64,
    /// Width of one bar, seconds (a multiple of the 60 s bucket).
    pub bin: i64,
}

const fn r(key: &'static str, label: &'static str, secs: i64, bin: i64) -> Range {
    Range {
        key,
        label,
        secs,
        bin,
    }
}

/// The offered ranges, shortest first.
pub const RANGES: [Range; 7] = [
    r("15m", "15 minutes", 15 * 60, 60),
    r("1h", "1 hour", 3600, 60),
    r("6h", "6 hours", 6 * 3600, 600),
    r("24h", "24 hours", 86_400, 1800),
    r("7d", "7 days", 7 * 86_400, 4 * 3600),
    r("30d", "30 days", 30 * 86_400, 86_400),
    r("90d", "90 days", 90 * 86_400, 3 * 86_400),
];

/// The longest range chosen without asking (24 hours); longer ones are asked for.
pub const LONGEST_DEFAULT: Range = RANGES[3];

/// The range named `key`, if it is one.
pub fn named(key: Option<&str>) -> Option<Range> {
    RANGES.iter().find(|r| Some(r.key) == key).copied()
}

/// The default for data whose oldest bucket starts at `oldest` (`None`: no data), drawn at
/// `now`: the shortest range that holds all of it, at most [`LONGEST_DEFAULT`], so that a
/// young system is not squeezed into a sliver at the right edge.
pub fn fitting(oldest: Option<i64>, now: i64) -> Range {
    let Some(oldest) = oldest else {
        return LONGEST_DEFAULT;
    };
    RANGES
        .iter()
        .take_while(|r| r.secs <= LONGEST_DEFAULT.secs)
        .find(|r| r.since(now) <= oldest)
        .copied()
        .unwrap_or(LONGEST_DEFAULT)
}

impl Range {
    /// The first bin's start for a page drawn at `now`: bins end with the one holding `now`.
    pub fn since(&self, now: i64) -> i64 {
        let last = now - now.rem_euclid(self.bin);
        last - (self.bins() - 1) * self.bin
    }

    /// How many bins.
    pub fn bins(&self) -> i64 {
        self.secs / self.bin
    }

    /// The label of the bin starting at `start` (a time of day, with the date for bins of 4
    /// hours and more, only the date for bins of a day and more).
    pub fn bin_label(&self, start: i64) -> String {
        let t = utc(start);
        if self.bin >= 86_400 {
            t.get(5..10).unwrap_or(&t).to_owned()
        } else {
            self.minute_label(start)
        }
    }

    /// The label of the axis end: the newest minute at `now` (with the date for ranges of
    /// bins of 4 hours and more).
    pub fn end_label(&self, now: i64) -> String {
        self.minute_label(now - now.rem_euclid(60))
    }

    fn minute_label(&self, at: i64) -> String {
        let t = utc(at);
        if self.bin >= 4 * 3600 {
            format!(
                "{} {}",
                t.get(5..10).unwrap_or(""),
                t.get(11..16).unwrap_or("")
            )
        } else {
            t.get(11..16).unwrap_or(&t).to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000 + 37 * 60 + 12; // 2027-01-15T08:37:12Z

    #[test]
    fn the_ranges_reach_the_kept_90_days() {
        let keys: Vec<&str> = RANGES.iter().map(|r| r.key).collect();
        assert_eq!(keys, ["15m", "1h", "6h", "24h", "7d", "30d", "90d"]);
        for r in RANGES {
            assert_eq!(r.secs % r.bin, 0, "{r:?}");
            assert_eq!(r.bin % 60, 0, "{r:?}");
            assert!((15..=60).contains(&r.bins()), "{r:?}: {} bars", r.bins());
            // The range holds its full length before now.
            assert!(r.since(NOW) <= NOW - r.secs + r.bin, "{r:?}");
        }
        assert_eq!(named(Some("90d")).map(|r| r.secs), Some(90 * 86_400));
        assert_eq!(named(Some("nope")), None);
        assert_eq!(named(None), None);
    }

    #[test]
    fn the_default_is_the_shortest_range_holding_the_data() {
        let key = |oldest: Option<i64>| fitting(oldest, NOW).key;
        // No data: the longest default.
        assert_eq!(key(None), "24h");
        // Data from 3 minutes ago: 15 minutes.
        assert_eq!(key(Some(NOW - 180)), "15m");
        // From 40 minutes ago: an hour.
        assert_eq!(key(Some(NOW - 40 * 60)), "1h");
        // From 2 hours ago: 6 hours.
        assert_eq!(key(Some(NOW - 2 * 3600)), "6h");
        // From 10 hours ago: 24 hours.
        assert_eq!(key(Some(NOW - 10 * 3600)), "24h");
        // Older than 24 hours: still 24 hours (longer ranges are asked for).
        assert_eq!(key(Some(NOW - 3 * 86_400)), "24h");
        // The chosen range really holds the oldest bucket.
        for ago in [0, 60, 899, 900, 3599, 3600, 5 * 3600, 80_000] {
            let oldest = NOW - NOW.rem_euclid(60) - ago;
            assert!(fitting(Some(oldest), NOW).since(NOW) <= oldest, "{ago}");
        }
    }

    #[test]
    fn the_axis_end_is_the_newest_minute() {
        let r = named(Some("1h")).unwrap();
        assert_eq!(r.end_label(NOW), "08:37");
        let week = named(Some("7d")).unwrap();
        assert_eq!(week.end_label(NOW), "01-15 08:37");
        assert_eq!(named(Some("30d")).unwrap().bin_label(NOW), "01-15");
    }
}
