//! `partnergate_partner_request_duration_seconds{partner}`: each partner's latency histogram,
//! read at `/metrics` time from the counts the request path already keeps per partner ×
//! operation × outcome (nothing more is done per request). The label set is bounded by the
//! partners in force: only partners the caller says are active (the snapshot's `active`
//! partners) are written, so a removed or suspended partner's series disappears at the next
//! scrape, and the anonymous `-` never appears. Buckets are the stored latency bounds
//! ([`crate::latency::BOUNDS_MICROS`], 100 µs to 60 s in 1-2-3-5 steps).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Stats;
use crate::latency;

/// The family's name.
pub const FAMILY: &str = "partnergate_partner_request_duration_seconds";

impl Stats {
    /// Appends the per-partner latency histograms of the partners for which `active` is true.
    pub fn render_partner_latency(&self, out: &mut String, active: impl Fn(&str) -> bool) {
        let mut per: BTreeMap<std::sync::Arc<str>, (latency::Counts, u64, u64)> = BTreeMap::new();
        for shard in &self.shards {
            let Ok(shard) = shard.lock() else { continue };
            for (k, v) in shard.counters.iter() {
                if &*k.partner == "-" || !active(&k.partner) {
                    continue;
                }
                let e = per.entry(k.partner.clone()).or_default();
                e.0.add(&v.latency);
                e.1 += v.count;
                e.2 = e.2.saturating_add(v.micros);
            }
        }
        let _ = writeln!(
            out,
            "# HELP {FAMILY} Time in the gateway per request, by partner (active partners only).\n\
             # TYPE {FAMILY} histogram"
        );
        for (partner, (counts, count, micros)) in per {
            let partner = super::escape_label(&partner);
            let mut cumulative = 0u64;
            for (i, bound) in latency::BOUNDS_MICROS.iter().enumerate() {
                cumulative += counts.0[i];
                let le = *bound as f64 / 1e6;
                let _ = writeln!(
                    out,
                    "{FAMILY}_bucket{{partner=\"{partner}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "{FAMILY}_bucket{{partner=\"{partner}\",le=\"+Inf\"}} {count}\n\
                 {FAMILY}_sum{{partner=\"{partner}\"}} {}\n\
                 {FAMILY}_count{{partner=\"{partner}\"}} {count}",
                micros as f64 / 1e6
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::{Face, Record, StageTimes};

    fn call(s: &Stats, partner: Option<&str>, micros: u64, outcome: &'static str, face: Face) {
        s.record(
            Record {
                partner,
                operation: Some("CreateAccount"),
                outcome,
                total: Duration::from_micros(micros),
                stages: StageTimes::default(),
                key_id: None,
                face,
            },
            100,
        );
    }

    #[test]
    fn one_histogram_per_active_partner_over_operations_outcomes_and_faces() {
        let s = Stats::default();
        call(&s, Some("P-1"), 150, "ok", Face::Soap);
        call(&s, Some("P-1"), 2_500, "throttled", Face::Rest);
        call(&s, Some("P-2"), 90, "ok", Face::Soap);
        call(&s, None, 90, "denied-key", Face::Rest);
        let mut out = String::new();
        s.render_partner_latency(&mut out, |p| p == "P-1");
        assert!(out.contains(&format!("# TYPE {FAMILY} histogram\n")));
        assert!(out.contains(&format!(
            "{FAMILY}_bucket{{partner=\"P-1\",le=\"0.0001\"}} 0\n"
        )));
        assert!(out.contains(&format!(
            "{FAMILY}_bucket{{partner=\"P-1\",le=\"0.0002\"}} 1\n"
        )));
        assert!(out.contains(&format!(
            "{FAMILY}_bucket{{partner=\"P-1\",le=\"0.003\"}} 2\n"
        )));
        assert!(out.contains(&format!(
            "{FAMILY}_bucket{{partner=\"P-1\",le=\"+Inf\"}} 2\n"
        )));
        assert!(out.contains(&format!("{FAMILY}_sum{{partner=\"P-1\"}} 0.00265\n")));
        assert!(out.contains(&format!("{FAMILY}_count{{partner=\"P-1\"}} 2\n")));
        assert!(!out.contains("P-2"), "an inactive partner has no series");
        assert!(!out.contains("partner=\"-\""));
    }
}
