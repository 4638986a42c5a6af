//! One colour per outcome, the same in every chart and table: `ok` green, the upstream faults
//! in oranges and browns, the gateway's refusals in reds, purples, blues and greys. An outcome
//! not in the table (one a newer node records) gets a grey picked from its name, so it too is
//! the same everywhere.

/// Every outcome the gateway records and its colour.
pub const OUTCOME_COLOURS: &[(&str, &str)] = &[
    ("ok", "#2e7d32"),
    // Upstream faults (authorised calls the partner API layer answered with a fault).
    ("upstream-not-found", "#ef6c00"),
    ("upstream-conflict", "#f9a825"),
    ("upstream-invalid-request", "#8d6e63"),
    ("upstream-access-denied", "#5d4037"),
    ("upstream-throttled", "#ffb74d"),
    ("upstream-fault", "#e65100"),
    ("upstream-timeout", "#bf360c"),
    ("upstream-unreachable", "#a1887f"),
    ("upstream-unconfigured", "#795548"),
    ("upstream-invalid", "#ff8f00"),
    ("internal", "#3e2723"),
    // Refused by the gateway.
    ("denied-authentication", "#c62828"),
    ("denied-source", "#ad1457"),
    ("denied-operation", "#6a1b9a"),
    ("denied-partner-suspended", "#4a148c"),
    ("denied-client-certificate", "#880e4f"),
    ("throttled", "#1565c0"),
    ("throttled-in-flight", "#64b5f6"),
    // A callback refused by the partner's callback rate (the relay's direction).
    ("callback-throttled", "#1e88e5"),
    ("invalid-request", "#00838f"),
    ("invalid-envelope", "#26a69a"),
    ("invalid-transport", "#37474f"),
    ("soap-action-mismatch", "#283593"),
    ("limit-exceeded", "#9e9d24"),
    ("version-mismatch", "#78909c"),
    ("must-understand", "#7986cb"),
];

/// Greys for outcomes not in the table.
const OTHER: [&str; 4] = ["#9e9e9e", "#616161", "#bdbdbd", "#424242"];

/// Colours of the p50, p95 and p99 latency lines (none is an outcome's; the chart also dashes
/// them differently).
pub const PERCENTILE_COLOURS: [&str; 3] = ["#0d47a1", "#f57f17", "#b71c1c"];

/// The colour of `outcome`.
pub fn colour(outcome: &str) -> &'static str {
    if let Some((_, c)) = OUTCOME_COLOURS.iter().find(|(o, _)| *o == outcome) {
        return c;
    }
    // FNV-1a of the name: the same grey on every page.
    let hash = outcome.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let i = usize::try_from(hash % OTHER.len() as u64).unwrap_or(0);
    OTHER.get(i).copied().unwrap_or("#9e9e9e")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::dashboard::usage::{category, Category};

    #[test]
    fn every_outcome_has_its_own_colour() {
        let mut seen = std::collections::BTreeSet::new();
        for &(outcome, c) in OUTCOME_COLOURS {
            assert!(seen.insert(c), "{outcome} shares {c}");
            assert_eq!(colour(outcome), c);
            assert!(c.len() == 7 && c.starts_with('#'), "{c}");
        }
        for c in PERCENTILE_COLOURS.iter().chain(&OTHER) {
            assert!(seen.insert(c), "{c} is also an outcome's colour");
        }
        assert_eq!(colour("ok"), "#2e7d32");
    }

    #[test]
    fn the_table_follows_the_categories() {
        // Upstream faults are warm, refusals are not: the table lists them in that order.
        let kinds: Vec<Category> = OUTCOME_COLOURS.iter().map(|(o, _)| category(o)).collect();
        assert_eq!(kinds[0], Category::Ok);
        assert!(kinds[1..12].iter().all(|k| *k == Category::Upstream));
        assert!(kinds[12..].iter().all(|k| *k == Category::Refused));
    }

    #[test]
    fn unknown_outcomes_get_a_stable_grey() {
        let c = colour("some-new-outcome");
        assert!(OTHER.contains(&c));
        assert_eq!(c, colour("some-new-outcome"));
    }
}
