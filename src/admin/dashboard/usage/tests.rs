//! Unit tests of the usage report (buckets, percentiles, the chart data), without a database.
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
    let r = named(Some("1h")).unwrap();
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
    assert_eq!(named(Some("nope")), None);
}

#[test]
fn percentiles_come_from_the_summed_buckets_of_reached_calls() {
    let now = 1_800_000_000;
    let r = named(Some("1h")).unwrap();
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
    let r = named(Some("1h")).unwrap();
    let rows = vec![row(r.since(now), "GetAccount", "ok", 2, 2 * 90_000_000)];
    let rep = report(&rows, r, now, "u");
    assert_eq!(rep.pct_reached, ["> 60 s", "> 60 s", "> 60 s"]);
    assert!(rep.percentiles_svg.contains("p50: &gt; 60 s (2 calls)"));
    assert!(rep.percentiles_svg.contains("slower than 60 s"));
}
