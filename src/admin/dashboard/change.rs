//! An audit entry's change for people: one line per field, `field: old → new` for a change
//! (`{"from": …, "to": …}`) and `field: value` otherwise, with times (`*_at`) in UTC, rates as
//! `N/s, burst M`, keys by id, kind and prefix, and nothing as `none`.

use serde_json::{Map, Value};

use crate::admin::text::utc;

/// The lines of the change `detail` recorded with `action` (e.g. `partner.suspend`).
pub(super) fn lines(action: &str, detail: Option<&Value>) -> Vec<String> {
    match detail {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => object_lines(action, m),
        Some(other) => vec![value("", other)],
    }
}

fn object_lines(action: &str, m: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    // A change of the entry's subject itself: `{"from": …, "to": …, …}`.
    if let (Some(from), Some(to)) = (m.get("from"), m.get("to")) {
        let field = subject(action);
        out.push(format!(
            "{field}: {} → {}",
            value(field, from),
            value(field, to)
        ));
    }
    for (k, v) in m {
        if m.contains_key("from") && m.contains_key("to") && (k == "from" || k == "to") {
            continue;
        }
        let name = label(k);
        match change(v) {
            Some((from, to)) => {
                out.push(format!("{name}: {} → {}", value(k, from), value(k, to)));
            }
            None => out.push(format!("{name}: {}", value(k, v))),
        }
    }
    out
}

/// A field name for people (`overlap_seconds` → `overlap`: the value says `s`).
fn label(field: &str) -> String {
    field
        .strip_suffix("_seconds")
        .unwrap_or(field)
        .replace('_', " ")
}

/// What a top-level `from`/`to` changes, by action.
fn subject(action: &str) -> &'static str {
    match action.split_once('.').map_or(action, |(domain, _)| domain) {
        "partner" => "status",
        "group" => "group",
        "throttle" => "rate",
        "callback-throttle" => "callback rate",
        _ => "value",
    }
}

/// `{"from": a, "to": b}` (and nothing else) → `(a, b)`.
fn change(v: &Value) -> Option<(&Value, &Value)> {
    match v {
        Value::Object(m) if m.len() == 2 => Some((m.get("from")?, m.get("to")?)),
        _ => None,
    }
}

/// One value for people; `field` tells times (`*_at`) and durations (`*_seconds`) apart.
fn value(field: &str, v: &Value) -> String {
    match v {
        Value::Null => "none".to_owned(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Number(n) => match n.as_i64() {
            Some(t) if field.ends_with("_at") => utc(t),
            Some(s) if field.ends_with("_seconds") => format!("{s} s"),
            _ => n.to_string(),
        },
        Value::String(s) if s.is_empty() => "\"\"".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "none".to_owned(),
        Value::Array(items) => items
            .iter()
            .map(|i| value(field, i))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(m) => object(m),
    }
}

fn object(m: &Map<String, Value>) -> String {
    let get = |k: &str| m.get(k).filter(|v| !v.is_null());
    // A rate.
    if let (Some(ps), Some(burst), 2) = (get("per_second"), get("burst"), m.len()) {
        return format!("{ps}/s, burst {burst}");
    }
    // A key.
    if let (Some(id), Some(kind), Some(prefix)) = (get("id"), get("kind"), get("prefix")) {
        let mut s = format!(
            "key {id} ({}, {})",
            value("kind", kind),
            value("prefix", prefix)
        );
        if let Some(at) = get("expires_at") {
            s.push_str(&format!(", expires {}", value("expires_at", at)));
        }
        return s;
    }
    // A CA bundle by its fingerprint.
    if let (Some(sha), Some(bytes)) = (get("sha256"), get("bytes")) {
        let sha = value("sha256", sha);
        return format!("{bytes} bytes, SHA-256 {}…", sha.get(..12).unwrap_or(&sha));
    }
    let parts: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{} {}", label(k), value(k, v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn show(action: &str, detail: Value) -> Vec<String> {
        lines(action, Some(&detail))
    }

    #[test]
    fn field_changes_read_old_to_new() {
        let d = json!({
            "name": {"from": "Acme", "to": "Acme Telecom"},
            "contact": {"from": null, "to": "ops@acme.example"},
        });
        assert_eq!(
            show("partner.update", d),
            [
                "contact: none → ops@acme.example",
                "name: Acme → Acme Telecom"
            ]
        );
    }

    #[test]
    fn a_status_change_names_its_subject_and_shows_times_in_utc() {
        let d = json!({
            "from": "active",
            "to": "suspended",
            "reason": "unpaid invoice",
            "keys_revoked": [
                {"id": 7, "kind": "partner", "prefix": "pgk_ab12", "expires_at": 1_800_000_000}
            ],
        });
        assert_eq!(
            show("partner.suspend", d),
            [
                "status: active → suspended",
                "keys revoked: key 7 (partner, pgk_ab12), expires 2027-01-15T08:00:00Z",
                "reason: unpaid invoice",
            ]
        );
    }

    #[test]
    fn rates_groups_and_empty_values() {
        assert_eq!(
            show(
                "throttle.set",
                json!({"from": null, "to": {"per_second": 20, "burst": 40}})
            ),
            ["rate: none → 20/s, burst 40"]
        );
        assert_eq!(
            show(
                "callback-throttle.clear",
                json!({"from": {"per_second": 2, "burst": 5}, "to": null})
            ),
            ["callback rate: 2/s, burst 5 → none"]
        );
        assert_eq!(
            show("group.assign", json!({"from": null, "to": "gold"})),
            ["group: none → gold"]
        );
        assert_eq!(
            show(
                "group.update",
                json!({"name": {"from": "gold", "to": "platinum"}})
            ),
            ["name: gold → platinum"]
        );
        assert_eq!(
            show(
                "key.rotate",
                json!({"overlap_seconds": 86_400, "expiring": [], "kind": "partner"})
            ),
            ["expiring: none", "kind: partner", "overlap: 86400 s"]
        );
        assert!(lines("grant.add", None).is_empty());
    }

    #[test]
    fn no_raw_json_or_epoch_seconds_remain() {
        let d = json!({
            "revoked": [{"id": 3, "kind": "callback", "prefix": "pgc_x", "expires_at": null}],
            "callback_ca_pem": {"from": null, "to": {"sha256": "0123456789abcdef0123", "bytes": 1200}},
        });
        let text = show("key.revoke", d).join("\n");
        assert!(!text.contains('{') && !text.contains('"'), "{text}");
        assert!(!text.contains("1800000000"), "{text}");
        assert!(text.contains("callback ca pem: none → 1200 bytes, SHA-256 0123456789ab…"));
    }
}
