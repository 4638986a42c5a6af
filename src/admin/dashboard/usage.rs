//! Usage for the dashboard, from `usage_stats` and `usage_latency`: per one-minute bucket ×
//! partner × operation × outcome, a call count, the summed latency and a latency histogram
//! (calls per bucket of [`crate::latency::BOUNDS_MICROS`], 100 µs … 60 s).
//!
//! From that the dashboard shows calls by outcome over time, **p50/p95/p99 latency** over time
//! (calls that reached the partner API layer), and per operation, per outcome and per interval
//! the percentiles beside the average (sum ÷ count). A percentile is estimated from the summed
//! histograms of the rows in question ([`crate::latency::percentile`]): exact to within one
//! bucket (linear inside it), and one in the overflow bucket reads "> 60 s" (drawn at 60 s),
//! never an invented number. Calls counted before `usage_latency` existed have no histogram:
//! they are in the counts and averages, not in the percentiles.

use std::collections::{BTreeMap, BTreeSet};

use super::chart::{self, Point, Series};
use crate::admin::text::utc;
use crate::latency::{self, Counts, Estimate};
use crate::store::UsageRow;

/// A time range the usage page offers.
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

/// The offered ranges; the first is the default.
pub const RANGES: [Range; 5] = [
    Range {
        key: "24h",
        label: "24 hours",
        secs: 86_400,
        bin: 1800,
    },
    Range {
        key: "1h",
        label: "1 hour",
        secs: 3600,
        bin: 60,
    },
    Range {
        key: "6h",
        label: "6 hours",
        secs: 6 * 3600,
        bin: 600,
    },
    Range {
        key: "7d",
        label: "7 days",
        secs: 7 * 86_400,
        bin: 4 * 3600,
    },
    Range {
        key: "30d",
        label: "30 days",
        secs: 30 * 86_400,
        bin: 86_400,
    },
];

/// The range named `key`, else the default.
pub fn range(key: Option<&str>) -> Range {
    RANGES
        .iter()
        .find(|r| Some(r.key) == key)
        .copied()
        .unwrap_or(RANGES[0])
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
}

/// How an outcome counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    /// Answered by the partner API layer with a response.
    Ok,
    /// Reached the partner API layer, which answered with a fault or failed (`upstream-*`,
    /// `internal`): an authorised call.
    Upstream,
    /// Refused by the gateway (authentication, allowlist, permission, throttle, decode, …).
    Refused,
}

/// The category of a stored outcome label.
pub fn category(outcome: &str) -> Category {
    if outcome == "ok" {
        Category::Ok
    } else if outcome.starts_with("upstream-") || outcome == "internal" {
        Category::Upstream
    } else {
        Category::Refused
    }
}

impl Category {
    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            Category::Ok => "ok",
            Category::Upstream => "upstream fault",
            Category::Refused => "refused",
        }
    }
}

const OK_COLOUR: &str = "#2e7d32";
/// Colours of the p50, p95 and p99 lines (the chart also dashes them differently).
pub const PERCENTILE_COLOURS: [&str; 3] = ["#1565c0", "#ef6c00", "#c62828"];
const UPSTREAM_COLOURS: [&str; 4] = ["#ef6c00", "#8d6e63", "#f9a825", "#5d4037"];
const REFUSED_COLOURS: [&str; 8] = [
    "#c62828", "#6a1b9a", "#1565c0", "#00838f", "#ad1457", "#37474f", "#283593", "#9e9d24",
];

/// One legend entry.
#[derive(Clone, Debug)]
pub struct Legend {
    /// The outcome.
    pub name: String,
    /// Its colour.
    pub colour: &'static str,
}

/// One row of the per-operation table.
#[derive(Clone, Debug)]
pub struct OpRow {
    /// Operation (or `-` for calls that named none).
    pub operation: String,
    /// All calls.
    pub calls: i64,
    /// Answered.
    pub ok: i64,
    /// Upstream faults.
    pub upstream: i64,
    /// Refused by the gateway.
    pub refused: i64,
    /// Average latency of the calls that reached the partner API layer (ok + upstream).
    pub avg_reached: String,
    /// p50, p95 and p99 latency of those.
    pub pct_reached: [String; 3],
    /// Average latency of refusals.
    pub avg_refused: String,
}

/// One row of the per-outcome table.
#[derive(Clone, Debug)]
pub struct OutcomeRow {
    /// The outcome label.
    pub outcome: String,
    /// Its category.
    pub category: &'static str,
    /// Calls.
    pub calls: i64,
    /// Average latency.
    pub avg: String,
    /// p50, p95 and p99 latency.
    pub pct: [String; 3],
}

/// One row of the over-time table (the charts' numbers).
#[derive(Clone, Debug)]
pub struct BinRow {
    /// Start of the interval.
    pub start: String,
    /// Calls.
    pub calls: u64,
    /// Answered.
    pub ok: u64,
    /// Upstream faults.
    pub upstream: u64,
    /// Refused.
    pub refused: u64,
    /// Average latency of calls that reached the partner API layer.
    pub avg_reached: String,
    /// p50, p95 and p99 latency of those.
    pub pct_reached: [String; 3],
}

/// Everything the usage page and the partner page show.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// All calls in the range.
    pub calls: i64,
    /// Answered.
    pub ok: i64,
    /// Upstream faults.
    pub upstream: i64,
    /// Refused by the gateway.
    pub refused: i64,
    /// Average latency of calls that reached the partner API layer.
    pub avg_reached: String,
    /// p50, p95 and p99 latency of those.
    pub pct_reached: [String; 3],
    /// Calls by outcome over time (SVG).
    pub calls_svg: String,
    /// p50/p95/p99 latency over time of calls that reached the partner API layer (SVG).
    pub percentiles_svg: String,
    /// Calls per operation by category (SVG).
    pub ops_svg: String,
    /// Colours of the outcomes in the calls chart.
    pub legend: Vec<Legend>,
    /// Per operation, most calls first.
    pub ops: Vec<OpRow>,
    /// Per outcome, most calls first.
    pub outcomes: Vec<OutcomeRow>,
    /// Per interval, oldest first.
    pub bins: Vec<BinRow>,
}

fn ms(total_micros: i64, count: i64) -> Option<f64> {
    (count > 0).then(|| total_micros as f64 / count as f64 / 1000.0)
}

/// An average in milliseconds for people, `-` without calls.
pub fn ms_text(total_micros: i64, count: i64) -> String {
    match ms(total_micros, count) {
        None => "-".to_owned(),
        Some(v) if v < 10.0 => format!("{v:.2} ms"),
        Some(v) => format!("{v:.1} ms"),
    }
}

fn bin_label(start: i64, bin: i64) -> String {
    let t = utc(start);
    if bin >= 86_400 {
        t.get(5..10).unwrap_or(&t).to_owned()
    } else if bin >= 4 * 3600 {
        format!(
            "{} {}",
            t.get(5..10).unwrap_or(""),
            t.get(11..16).unwrap_or("")
        )
    } else {
        t.get(11..16).unwrap_or(&t).to_owned()
    }
}

/// p50, p95 and p99 for people (`-` without a histogram).
pub fn pct_text(c: &Counts) -> [String; 3] {
    latency::SHOWN.map(|(_, q)| latency::text(c.percentile(q)))
}

#[derive(Default, Clone, Copy)]
struct Sum {
    count: i64,
    micros: i64,
    latency: Counts,
}

impl Sum {
    fn add(&mut self, r: &UsageRow) {
        self.count += r.count;
        self.micros += r.total_micros;
        self.latency.add(&r.latency);
    }
}

/// Builds the report over `range` (drawn at `now`) from the stored rows.
pub fn report(rows: &[UsageRow], range: Range, now: i64, id: &str) -> Report {
    let since = range.since(now);
    let nbins = usize::try_from(range.bins()).unwrap_or(0);
    let labels: Vec<String> = (0..range.bins())
        .map(|i| bin_label(since + i * range.bin, range.bin))
        .collect();
    let bin_of = |t: i64| usize::try_from((t - since).div_euclid(range.bin)).ok();

    // Outcomes: ok, then upstream faults, then refusals, each by name.
    let outcomes: BTreeSet<(Category, &str)> = rows
        .iter()
        .map(|r| (category(&r.outcome), r.outcome.as_str()))
        .collect();
    let (mut up, mut refused) = (0usize, 0usize);
    let legend: Vec<Legend> = outcomes
        .iter()
        .map(|(c, name)| {
            let colour = match c {
                Category::Ok => OK_COLOUR,
                Category::Upstream => {
                    up += 1;
                    UPSTREAM_COLOURS[(up - 1) % UPSTREAM_COLOURS.len()]
                }
                Category::Refused => {
                    refused += 1;
                    REFUSED_COLOURS[(refused - 1) % REFUSED_COLOURS.len()]
                }
            };
            Legend {
                name: (*name).to_owned(),
                colour,
            }
        })
        .collect();

    let mut per_outcome_bin: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut reached_bin = vec![Sum::default(); nbins];
    let mut cat_bin = vec![[0u64; 3]; nbins];
    let mut per_op: BTreeMap<&str, [Sum; 3]> = BTreeMap::new();
    let mut per_outcome: BTreeMap<&str, Sum> = BTreeMap::new();
    let mut report = Report::default();
    let mut reached = Sum::default();
    for r in rows {
        let Some(b) = bin_of(r.bucket_start).filter(|b| *b < nbins) else {
            continue;
        };
        let cat = category(&r.outcome);
        let n = u64::try_from(r.count).unwrap_or(0);
        if let Some(v) = per_outcome_bin
            .entry(r.outcome.as_str())
            .or_insert_with(|| vec![0; nbins])
            .get_mut(b)
        {
            *v += n;
        }
        let ci = cat as usize;
        if let Some(c) = cat_bin.get_mut(b).and_then(|a| a.get_mut(ci)) {
            *c += n;
        }
        let op = per_op.entry(r.operation.as_str()).or_default();
        if let Some(s) = op.get_mut(ci) {
            s.add(r);
        }
        per_outcome.entry(r.outcome.as_str()).or_default().add(r);
        report.calls += r.count;
        match cat {
            Category::Ok | Category::Upstream => {
                if cat == Category::Ok {
                    report.ok += r.count;
                } else {
                    report.upstream += r.count;
                }
                reached.add(r);
                if let Some(s) = reached_bin.get_mut(b) {
                    s.add(r);
                }
            }
            Category::Refused => {
                report.refused += r.count;
            }
        }
    }
    report.avg_reached = ms_text(reached.micros, reached.count);
    report.pct_reached = pct_text(&reached.latency);

    let series: Vec<Series<u64>> = legend
        .iter()
        .map(|l| Series {
            name: l.name.clone(),
            colour: l.colour,
            values: per_outcome_bin
                .get(l.name.as_str())
                .cloned()
                .unwrap_or_else(|| vec![0; nbins]),
        })
        .collect();
    report.calls_svg = chart::stacked_bars(
        &format!("{id}-calls"),
        &format!("Calls by outcome, last {}", range.label),
        &format!(
            "{} calls: {} ok, {} upstream faults, {} refused by the gateway; one bar per {}.",
            report.calls,
            report.ok,
            report.upstream,
            report.refused,
            duration_text(range.bin)
        ),
        &labels,
        &series,
    );
    let with_calls = reached_bin.iter().filter(|s| s.latency.total() > 0).count();
    let pct_series: Vec<Series<Option<Point>>> = latency::SHOWN
        .iter()
        .zip(PERCENTILE_COLOURS)
        .map(|((name, q), colour)| Series {
            name: (*name).to_owned(),
            colour,
            values: reached_bin
                .iter()
                .map(|s| {
                    s.latency.percentile(*q).map(|e| Point {
                        value: e.chart_ms(),
                        text: format!("{e} ({} calls)", s.latency.total()),
                    })
                })
                .collect(),
        })
        .collect();
    // p99 is the highest shown: if any point is in the overflow bucket, a p99 is.
    let overflow = reached_bin
        .iter()
        .any(|s| matches!(s.latency.percentile(0.99), Some(Estimate::Above(_))));
    report.percentiles_svg = chart::lines(
        &format!("{id}-latency"),
        &format!("Latency percentiles, last {}", range.label),
        &format!(
            "p50 (blue, solid), p95 (orange, dashed) and p99 (red, dotted) latency per {} of \
             calls that reached the partner API layer, in milliseconds, estimated from latency \
             buckets; {with_calls} interval(s) with calls, gaps: no calls.{}",
            duration_text(range.bin),
            if overflow {
                " Points at 60 000 ms mean slower than 60 s."
            } else {
                ""
            }
        ),
        &labels,
        &pct_series,
        " ms",
    );

    let mut ops: Vec<OpRow> = per_op
        .iter()
        .map(|(op, [ok, upstream, refused])| {
            let reached_micros = ok.micros + upstream.micros;
            let reached_count = ok.count + upstream.count;
            let mut reached_latency = ok.latency;
            reached_latency.add(&upstream.latency);
            OpRow {
                operation: (*op).to_owned(),
                calls: ok.count + upstream.count + refused.count,
                ok: ok.count,
                upstream: upstream.count,
                refused: refused.count,
                avg_reached: ms_text(reached_micros, reached_count),
                pct_reached: pct_text(&reached_latency),
                avg_refused: ms_text(refused.micros, refused.count),
            }
        })
        .collect();
    ops.sort_by(|a, b| {
        b.calls
            .cmp(&a.calls)
            .then_with(|| a.operation.cmp(&b.operation))
    });
    let op_rows: Vec<(String, Vec<u64>)> = ops
        .iter()
        .map(|o| {
            let n = |v: i64| u64::try_from(v).unwrap_or(0);
            (
                o.operation.clone(),
                vec![n(o.ok), n(o.upstream), n(o.refused)],
            )
        })
        .collect();
    report.ops_svg = chart::hbars(
        &format!("{id}-ops"),
        &format!("Calls per operation, last {}", range.label),
        "Calls per operation: ok (green), upstream faults (orange), refused by the gateway (red).",
        &op_rows,
        &[
            ("ok".to_owned(), OK_COLOUR),
            ("upstream fault".to_owned(), UPSTREAM_COLOURS[0]),
            ("refused".to_owned(), REFUSED_COLOURS[0]),
        ],
    );
    report.ops = ops;

    let mut outcomes: Vec<OutcomeRow> = per_outcome
        .iter()
        .map(|(o, s)| OutcomeRow {
            outcome: (*o).to_owned(),
            category: category(o).label(),
            calls: s.count,
            avg: ms_text(s.micros, s.count),
            pct: pct_text(&s.latency),
        })
        .collect();
    outcomes.sort_by(|a, b| {
        b.calls
            .cmp(&a.calls)
            .then_with(|| a.outcome.cmp(&b.outcome))
    });
    report.outcomes = outcomes;
    report.legend = legend;
    report.bins = (0..nbins)
        .filter_map(|i| {
            let [ok, upstream, refused] = *cat_bin.get(i)?;
            let s = reached_bin.get(i)?;
            let start = since + i64::try_from(i).ok()? * range.bin;
            Some(BinRow {
                start: utc(start),
                calls: ok + upstream + refused,
                ok,
                upstream,
                refused,
                avg_reached: ms_text(s.micros, s.count),
                pct_reached: pct_text(&s.latency),
            })
        })
        .filter(|b| b.calls > 0)
        .collect();
    report
}

fn duration_text(secs: i64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{} day(s)", s / 86_400),
        s if s % 3600 == 0 => format!("{} hour(s)", s / 3600),
        s => format!("{} minute(s)", s / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of `count` calls that each took `micros / count` (all in that latency's bucket).
    fn row(at: i64, op: &str, outcome: &str, count: i64, micros: i64) -> UsageRow {
        let mut latency = Counts::default();
        if count > 0 {
            latency.add_to(latency::bucket_of((micros / count) as u64), count as u64);
        }
        UsageRow {
            bucket_start: at,
            partner_id: "P-1".into(),
            operation: op.into(),
            outcome: outcome.into(),
            count,
            total_micros: micros,
            latency,
        }
    }

    #[test]
    fn outcomes_are_categorised() {
        assert_eq!(category("ok"), Category::Ok);
        assert_eq!(category("upstream-not-found"), Category::Upstream);
        assert_eq!(category("internal"), Category::Upstream);
        assert_eq!(category("authenticate"), Category::Refused);
    }

    #[test]
    fn report_sums_and_averages() {
        let now = 1_800_000_000;
        let r = range(Some("1h"));
        let since = r.since(now);
        let rows = vec![
            row(since, "GetAccount", "ok", 2, 4_000),
            row(since, "GetAccount", "upstream-not-found", 2, 8_000),
            row(since + 60, "GetAccount", "ok", 1, 30_000),
            row(since + 60, "GetAccount", "authenticate", 5, 500),
            row(since - 60, "GetAccount", "ok", 100, 1), // before the range
        ];
        let rep = report(&rows, r, now, "u");
        assert_eq!(
            (rep.calls, rep.ok, rep.upstream, rep.refused),
            (10, 3, 2, 5)
        );
        // (4000 + 8000 + 30000) / 5 calls = 8.4 ms
        assert_eq!(rep.avg_reached, "8.40 ms");
        let op = &rep.ops[0];
        assert_eq!(op.avg_refused, "0.10 ms");
        assert_eq!(rep.bins.len(), 2);
        assert_eq!(rep.legend[0].name, "ok");
        assert!(rep.calls_svg.starts_with("<svg"));
        assert_eq!(range(Some("nope")), RANGES[0]);
    }

    #[test]
    fn percentiles_come_from_the_summed_buckets_of_reached_calls() {
        let now = 1_800_000_000;
        let r = range(Some("1h"));
        let since = r.since(now);
        let rows = vec![
            // 90 calls of 1.5 ms (bucket 1–2 ms), 10 of 150 ms (bucket 100–200 ms), split over
            // two minutes and two outcomes that reached the partner API layer.
            row(since, "GetAccount", "ok", 60, 60 * 1_500),
            row(
                since + 60,
                "GetAccount",
                "upstream-not-found",
                30,
                30 * 1_500,
            ),
            row(since + 60, "GetAccount", "ok", 10, 10 * 150_000),
            // Refusals are not in the reached percentiles.
            row(
                since + 60,
                "GetAccount",
                "denied-authentication",
                500,
                500 * 40_000_000,
            ),
            // A call before the histograms were kept: counted, not in the percentiles.
            UsageRow {
                latency: Counts::default(),
                ..row(since + 120, "CreateAccount", "ok", 3, 3_000)
            },
        ];
        let rep = report(&rows, r, now, "u");
        // p50: rank 50 of 100, inside 1–2 ms: 1 + 50/90 ms. p95: rank 95, 5 into the 10 calls
        // of 100–200 ms: 150 ms. p99: 9 of 10: 190 ms.
        assert_eq!(rep.pct_reached, ["1.56 ms", "150.0 ms", "190.0 ms"]);
        let get = rep
            .ops
            .iter()
            .find(|o| o.operation == "GetAccount")
            .unwrap();
        assert_eq!(get.pct_reached, rep.pct_reached);
        let create = rep
            .ops
            .iter()
            .find(|o| o.operation == "CreateAccount")
            .unwrap();
        assert_eq!(create.pct_reached, ["-", "-", "-"]);
        assert_eq!(create.avg_reached, "1.00 ms");
        let refused = rep
            .outcomes
            .iter()
            .find(|o| o.outcome == "denied-authentication")
            .unwrap();
        // 500 calls of 40 s, bucket 30–60 s: p99 at 99 % of it.
        assert_eq!(refused.pct[2], "59.70 s");
        // First minute: only 1.5 ms calls; second: 30 of 1.5 ms and 10 of 150 ms.
        assert_eq!(rep.bins[0].pct_reached, ["1.50 ms", "1.95 ms", "1.99 ms"]);
        assert_eq!(rep.bins[1].pct_reached[2], "196.0 ms");
        assert_eq!(rep.bins[2].pct_reached[0], "-");
        // Three lines, each with a point in the two minutes that have histograms.
        let svg = &rep.percentiles_svg;
        assert_eq!(svg.matches("<polyline").count(), 3, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 6, "{svg}");
        assert!(svg.contains("p99: 196.0 ms (40 calls)"), "{svg}");
        assert!(!svg.contains("slower than 60 s"));
    }

    #[test]
    fn percentiles_in_the_overflow_bucket_are_not_invented() {
        let now = 1_800_000_000;
        let r = range(Some("1h"));
        let rows = vec![row(r.since(now), "GetAccount", "ok", 2, 2 * 90_000_000)];
        let rep = report(&rows, r, now, "u");
        assert_eq!(rep.pct_reached, ["> 60 s", "> 60 s", "> 60 s"]);
        assert!(rep.percentiles_svg.contains("p50: &gt; 60 s (2 calls)"));
        assert!(rep.percentiles_svg.contains("slower than 60 s"));
    }
}
