//! `stats`: usage statistics over a period, as a table or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use partnergate::latency::{self, Estimate};
use partnergate::store::UsageTotal;

use super::args::Common;
use super::setup::{load_config, with_store};

/// `partnergate stats`.
pub fn stats(
    partner: Option<&str>,
    since: &str,
    common: &Common,
    json: bool,
    out: &mut String,
) -> Result<(), String> {
    let now = partnergate::pipeline::unix_now();
    let start = if since.len() >= 9 && since.bytes().all(|b| b.is_ascii_digit()) {
        since
            .parse::<i64>()
            .map_err(|e| format!("--since {since:?}: {e}"))?
    } else {
        let back =
            partnergate::admin::parse_duration(since).map_err(|e| format!("--since: {e}"))?;
        now - i64::try_from(back.as_secs()).unwrap_or(i64::MAX / 2)
    };
    let config = load_config(common, BTreeMap::new())?;
    let rows = with_store(&config.database_url, |store| {
        store.usage(start, partner).map_err(|e| e.to_string())
    })?;
    if json {
        let rows: Vec<serde_json::Value> = rows.iter().map(stats_json_row).collect();
        let value = serde_json::json!({ "since": start, "until": now, "rows": rows });
        let _ = writeln!(out, "{value}");
        return Ok(());
    }
    let since_text = partnergate::xs::DateTime::from_unix(start);
    let _ = writeln!(out, "since {since_text} (statistics are kept per minute)");
    let _ = writeln!(
        out,
        "{:<16} {:<22} {:<26} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "PARTNER", "OPERATION", "OUTCOME", "CALLS", "AVG MS", "P50 MS", "P95 MS", "P99 MS"
    );
    for r in &rows {
        let avg = if r.count > 0 {
            r.total_micros as f64 / r.count as f64 / 1000.0
        } else {
            0.0
        };
        let [p50, p95, p99] = latency::SHOWN.map(|(_, q)| match r.latency.percentile(q) {
            Some(Estimate::Micros(us)) => format!("{:.3}", us / 1000.0),
            Some(Estimate::Above(b)) => format!(">{}", b / 1000),
            None => "-".to_owned(),
        });
        let _ = writeln!(
            out,
            "{:<16} {:<22} {:<26} {:>10} {:>10.3} {p50:>10} {p95:>10} {p99:>10}",
            r.partner_id, r.operation, r.outcome, r.count, avg
        );
    }
    let total: i64 = rows.iter().map(|r| r.count).sum();
    let _ = writeln!(out, "{total} calls");
    Ok(())
}

/// One row of `partnergate stats --json`: the stored totals, the average, p50/p95/p99 (in
/// milliseconds; `{"above_ms": 60000}` when slower than the last bucket bound, `null` without a
/// histogram) and the non-empty latency buckets (`le_ms` null for the overflow bucket).
fn stats_json_row(r: &UsageTotal) -> serde_json::Value {
    let estimate = |q: f64| match r.latency.percentile(q) {
        Some(Estimate::Micros(us)) => serde_json::json!(us / 1000.0),
        Some(Estimate::Above(b)) => serde_json::json!({ "above_ms": b as f64 / 1000.0 }),
        None => serde_json::Value::Null,
    };
    let buckets: Vec<serde_json::Value> = r
        .latency
        .stored()
        .map(|(le, n)| {
            let le_ms = (le != latency::OVERFLOW_STORED).then(|| le as f64 / 1000.0);
            serde_json::json!({ "le_ms": le_ms, "count": n })
        })
        .collect();
    serde_json::json!({
        "partner_id": r.partner_id,
        "operation": r.operation,
        "outcome": r.outcome,
        "count": r.count,
        "total_micros": r.total_micros,
        "avg_ms": (r.count > 0).then(|| r.total_micros as f64 / r.count as f64 / 1000.0),
        "p50_ms": estimate(0.50),
        "p95_ms": estimate(0.95),
        "p99_ms": estimate(0.99),
        "latency_buckets": buckets,
    })
}
