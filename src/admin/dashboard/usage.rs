//! The usage page (`/ui/usage`, by partner, operation and range) and the usage report it and the
//! partner page draw, from `usage_stats` and `usage_latency`: per one-minute bucket ×
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

use askama::Template;
use http::StatusCode;

use super::chart::{self, Point, Series};
use super::colours::{colour, PERCENTILE_COLOURS};
use super::form::Form;
pub use super::range::{fitting, named, Range, LONGEST_DEFAULT, RANGES};
use super::response::{blocking, choice, html, Choice, Fail, Layout, Resp};
use super::session::Current;
use super::Dashboard;
use crate::admin::text::utc;
use crate::generated::partner::Operation;
use crate::latency::{self, Counts, Estimate};
use crate::store::UsageRow;

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
    /// Its colour.
    pub colour: &'static str,
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
        .map(|i| range.bin_label(since + i * range.bin))
        .collect();
    let end = range.end_label(now);
    let bin_of = |t: i64| usize::try_from((t - since).div_euclid(range.bin)).ok();

    // Outcomes: ok, then upstream faults, then refusals, each by name; each in its own colour
    // (the same on every page).
    let outcomes: BTreeSet<(Category, &str)> = rows
        .iter()
        .map(|r| (category(&r.outcome), r.outcome.as_str()))
        .collect();
    let legend: Vec<Legend> = outcomes
        .iter()
        .map(|(_, name)| Legend {
            name: (*name).to_owned(),
            colour: colour(name),
        })
        .collect();

    let mut per_outcome_bin: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut reached_bin = vec![Sum::default(); nbins];
    let mut cat_bin = vec![[0u64; 3]; nbins];
    let mut per_op: BTreeMap<&str, [Sum; 3]> = BTreeMap::new();
    let mut per_op_outcome: BTreeMap<(&str, &str), u64> = BTreeMap::new();
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
        *per_op_outcome
            .entry((r.operation.as_str(), r.outcome.as_str()))
            .or_default() += n;
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
        &end,
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
        &end,
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
            let values = legend
                .iter()
                .map(|l| {
                    per_op_outcome
                        .get(&(o.operation.as_str(), l.name.as_str()))
                        .copied()
                        .unwrap_or(0)
                })
                .collect();
            (o.operation.clone(), values)
        })
        .collect();
    let op_series: Vec<(String, &'static str)> =
        legend.iter().map(|l| (l.name.clone(), l.colour)).collect();
    report.ops_svg = chart::hbars(
        &format!("{id}-ops"),
        &format!("Calls per operation, last {}", range.label),
        "Calls per operation by outcome, in the outcomes' colours (the legend).",
        &op_rows,
        &op_series,
    );
    report.ops = ops;

    let mut outcomes: Vec<OutcomeRow> = per_outcome
        .iter()
        .map(|(o, s)| OutcomeRow {
            outcome: (*o).to_owned(),
            colour: colour(o),
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

/// The start of the oldest bucket of `rows`.
pub fn oldest(rows: &[UsageRow]) -> Option<i64> {
    rows.iter().map(|r| r.bucket_start).min()
}

fn duration_text(secs: i64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{} day(s)", s / 86_400),
        s if s % 3600 == 0 => format!("{} hour(s)", s / 3600),
        s => format!("{} minute(s)", s / 60),
    }
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    layout: Layout,
    partner: String,
    partners: Vec<Choice>,
    ops: Vec<Choice>,
    ranges: Vec<Choice>,
    /// The range was chosen from the data (none asked for).
    chosen: bool,
    r: Report,
}

impl Dashboard {
    pub(super) async fn usage_page(&self, session: &Current, query: &Form) -> Result<Resp, Fail> {
        let partner = query.text("partner");
        let op = query.text("op");
        let asked = named(query.get("range"));
        let now = crate::clock::unix_now();
        let admin = self.admin.clone();
        let (p, o) = (partner.clone(), op.clone());
        let (partners, rows) = blocking(move || {
            let s = admin.store();
            let partners = s.list_partners()?;
            let from = asked.unwrap_or(LONGEST_DEFAULT).since(now);
            let rows = s.usage_rows(from, p.as_deref(), o.as_deref())?;
            Ok((partners, rows))
        })
        .await?;
        let range = asked.unwrap_or_else(|| fitting(oldest(&rows), now));
        let partner = partner.unwrap_or_default();
        let op = op.unwrap_or_default();
        let mut partner_choices = vec![choice("", "all partners", partner.is_empty())];
        partner_choices.extend(partners.iter().map(|p| {
            choice(
                &p.partner_id,
                &format!("{} {}", p.partner_id, p.name),
                p.partner_id == partner,
            )
        }));
        let mut op_choices = vec![choice("", "all operations", op.is_empty())];
        op_choices.extend(
            Operation::ALL
                .iter()
                .map(|o| choice(o.name(), o.name(), o.name() == op)),
        );
        let page = UsagePage {
            layout: Layout::new("Usage", "usage", session),
            partner,
            partners: partner_choices,
            ops: op_choices,
            ranges: std::iter::once(choice(
                "",
                &format!("fit the data ({})", range.label),
                asked.is_none(),
            ))
            .chain(
                RANGES
                    .iter()
                    .map(|r| choice(r.key, r.label, Some(*r) == asked)),
            )
            .collect(),
            chosen: asked.is_none(),
            r: report(&rows, range, now, "u"),
        };
        Ok(html(StatusCode::OK, page.render()))
    }
}

#[cfg(test)]
mod tests;
