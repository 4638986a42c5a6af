//! Readable output of administrative replies for the CLI: tables for lists, a block for one
//! partner or group, one line for a change. Times are UTC, RFC 3339. Key material appears only
//! in the replies that create it (`partner create`, `key rotate`), exactly once.

use std::fmt::Write as _;

use super::{ClientCertView, KeyView, NodeView, NodesView, OperatorView, RateView, Reply, View};

/// A unix time as `2026-11-26T08:00:00Z` (UTC).
pub fn utc(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn time(ts: Option<i64>) -> String {
    ts.map_or_else(|| "-".to_owned(), utc)
}

fn opt(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

fn rate(r: Option<RateView>) -> String {
    r.map_or_else(
        || "-".to_owned(),
        |r| format!("{}/s burst {}", r.per_second, r.burst),
    )
}

/// Columns padded to their widest cell; the last column is not padded.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = widths.get(i).copied().unwrap_or(0);
            let _ = write!(text, "{cell:<pad$}");
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(out, &mut header.iter().copied());
    for row in rows {
        line(out, &mut row.iter().map(String::as_str));
    }
}

fn key_rows(keys: &[KeyView]) -> Vec<Vec<String>> {
    keys.iter()
        .map(|k| {
            vec![
                k.id.to_string(),
                k.kind.to_owned(),
                k.prefix.clone(),
                k.state.to_owned(),
                utc(k.created_at),
                time(k.expires_at),
                time(k.revoked_at),
                time(k.last_used_at),
            ]
        })
        .collect()
}

const KEY_HEADER: [&str; 8] = [
    "ID",
    "KIND",
    "PREFIX",
    "STATE",
    "CREATED",
    "EXPIRES",
    "REVOKED",
    "LAST USED",
];

fn cert_rows(certs: &[ClientCertView]) -> Vec<Vec<String>> {
    certs
        .iter()
        .map(|c| {
            vec![
                c.sha256.clone(),
                c.state.to_owned(),
                utc(c.not_after),
                c.subject.clone(),
            ]
        })
        .collect()
}

const CERT_HEADER: [&str; 4] = ["SHA256", "STATE", "NOT AFTER", "SUBJECT"];

/// The reply as text: the table or block of a read, the sentence of a change (with the new key
/// of a creation or rotation).
pub fn render(reply: &Reply, is_change: bool) -> String {
    let mut out = String::new();
    match &reply.view {
        View::Created(c) => {
            let _ = writeln!(out, "partner_id:   {}", c.partner_id);
            let _ = writeln!(out, "api_key:      {}", c.api_key.expose());
            let _ = writeln!(out, "callback_key: {}", c.callback_key.expose());
            let _ = writeln!(
                out,
                "Store the keys now: they are shown only once (the database keeps their hashes)."
            );
        }
        View::Rotated(r) => {
            let _ = writeln!(out, "{}", reply.message);
            let _ = writeln!(out, "key: {}", r.key.expose());
            let _ = writeln!(
                out,
                "Store the key now: it is shown only once (the database keeps its hash)."
            );
            if !r.expiring.is_empty() {
                table(&mut out, &KEY_HEADER, &key_rows(&r.expiring));
            }
        }
        View::Operator(OperatorView {
            password: Some(p), ..
        }) => {
            let _ = writeln!(out, "{}", reply.message);
            let _ = writeln!(out, "password: {}", p.expose());
            let _ = writeln!(
                out,
                "Give the password to its operator now: it is shown only once (the database keeps \
                 an Argon2id hash)."
            );
        }
        View::TokenCreated(t) => {
            let _ = writeln!(out, "{}", reply.message);
            let _ = writeln!(out, "token: {}", t.token.expose());
            let _ = writeln!(
                out,
                "Store the token now: it is shown only once (the database keeps its hash)."
            );
        }
        View::Bootstrap(b) => {
            let _ = writeln!(out, "{}", reply.message);
            let _ = writeln!(out, "password: {}", b.password.expose());
            let _ = writeln!(out, "token:    {}", b.token.expose());
        }
        _ if is_change => {
            let _ = writeln!(out, "{}", reply.message);
        }
        View::Operators(o) => {
            let rows: Vec<Vec<String>> = o
                .operators
                .iter()
                .map(|o| {
                    vec![
                        o.name.clone(),
                        o.role.to_string(),
                        if o.disabled_at.is_some() {
                            "disabled"
                        } else {
                            "enabled"
                        }
                        .to_owned(),
                        utc(o.created_at),
                        utc(o.updated_at),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["OPERATOR", "ROLE", "STATE", "CREATED", "UPDATED"],
                &rows,
            );
        }
        View::Operator(o) => {
            let o = &o.operator;
            let state = if o.disabled_at.is_some() {
                "disabled"
            } else {
                "enabled"
            };
            let _ = writeln!(out, "{} {} {state}", o.name, o.role);
        }
        View::Tokens(t) => {
            let rows: Vec<Vec<String>> = t
                .tokens
                .iter()
                .map(|t| {
                    vec![
                        t.id.to_string(),
                        t.prefix.clone(),
                        opt(t.label.as_deref()).to_owned(),
                        utc(t.created_at),
                        t.last_used_at.map_or_else(|| "-".to_owned(), utc),
                        t.revoked_at.map_or_else(|| "-".to_owned(), utc),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["ID", "PREFIX", "LABEL", "CREATED", "LAST USED", "REVOKED"],
                &rows,
            );
        }
        View::Partners(p) => {
            let rows: Vec<Vec<String>> = p
                .partners
                .iter()
                .map(|p| {
                    vec![
                        p.partner_id.clone(),
                        p.status.to_owned(),
                        opt(p.country.as_deref()).to_owned(),
                        opt(p.group.as_deref()).to_owned(),
                        utc(p.created_at),
                        p.name.clone(),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["PARTNER", "STATUS", "COUNTRY", "GROUP", "CREATED", "NAME"],
                &rows,
            );
        }
        View::Partner(p) => {
            let mut field = |k: &str, v: &str| {
                let _ = writeln!(out, "{k:<17} {v}");
            };
            field("partner_id:", &p.partner_id);
            field("name:", &p.name);
            field("status:", p.status);
            field("country:", opt(p.country.as_deref()));
            field("group:", opt(p.group.as_deref()));
            field("rate:", &rate(p.rate));
            field("callback_rate:", &rate(p.callback_rate));
            field("contact:", opt(p.contact.as_deref()));
            field("billing_rate:", opt(p.billing_rate.as_deref()));
            field("callback_url:", opt(p.callback_url.as_deref()));
            let ca = p.callback_ca_pem.as_deref().map(|pem| {
                format!(
                    "{} certificate(s), {} bytes",
                    pem.matches("-----BEGIN CERTIFICATE-----").count(),
                    pem.len()
                )
            });
            field("callback_ca:", opt(ca.as_deref()));
            let defaults = p.feature_defaults.as_ref().map(ToString::to_string);
            field("feature_defaults:", opt(defaults.as_deref()));
            field("allow:", &p.allow.join(", "));
            field("grants:", &p.grants.join(", "));
            let expected = p.client_ca.as_ref().map(|ca| ca.subject.as_str());
            field("client_subject:", opt(expected));
            field("created:", &utc(p.created_at));
            field("updated:", &utc(p.updated_at));
            let _ = writeln!(out, "keys:");
            table(&mut out, &KEY_HEADER, &key_rows(&p.keys));
            if !p.client_certs.is_empty() {
                let _ = writeln!(out, "client certificates:");
                table(&mut out, &CERT_HEADER, &cert_rows(&p.client_certs));
            }
            if let Some(ca) = &p.client_ca {
                let _ = writeln!(out, "client CA:");
                table(&mut out, &CERT_HEADER, &cert_rows(&ca.ca_certs));
            }
        }
        View::Keys(k) => table(&mut out, &KEY_HEADER, &key_rows(&k.keys)),
        View::Revoked(r) => table(&mut out, &KEY_HEADER, &key_rows(&r.revoked)),
        View::Allow(a) => {
            for net in &a.allow {
                let _ = writeln!(out, "{net}");
            }
        }
        View::Grants(g) => {
            for grant in &g.grants {
                let _ = writeln!(out, "{grant}");
            }
        }
        View::Groups(g) => {
            let rows: Vec<Vec<String>> = g
                .groups
                .iter()
                .map(|g| {
                    vec![
                        g.name.clone(),
                        rate(g.rate),
                        rate(g.aggregate),
                        g.members.len().to_string(),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["GROUP", "MEMBER RATE", "AGGREGATE", "MEMBERS"],
                &rows,
            );
        }
        View::Group(g) => {
            let _ = writeln!(out, "group:           {}", g.name);
            let _ = writeln!(out, "member rate:     {}", rate(g.rate));
            let _ = writeln!(out, "aggregate:       {}", rate(g.aggregate));
            let _ = writeln!(out, "created:         {}", utc(g.created_at));
            let _ = writeln!(out, "members:         {}", g.members.join(", "));
        }
        View::Audit(a) => {
            let rows: Vec<Vec<String>> = a
                .entries
                .iter()
                .map(|e| {
                    vec![
                        e.id.to_string(),
                        utc(e.at),
                        e.actor.clone(),
                        e.action.clone(),
                        e.target.clone(),
                        e.detail
                            .as_ref()
                            .map_or_else(|| "-".to_owned(), ToString::to_string),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["ID", "AT", "ACTOR", "ACTION", "TARGET", "DETAIL"],
                &rows,
            );
        }
        View::Enrollments(list) => {
            let rows: Vec<Vec<String>> = list
                .enrollments
                .iter()
                .map(|e| {
                    vec![
                        e.enrollment_id.clone(),
                        e.status.as_str().to_owned(),
                        e.request.company.clone(),
                        e.request.country.clone(),
                        e.source.clone(),
                        utc(e.created_at),
                        opt(e.partner_id.as_deref()).to_owned(),
                    ]
                })
                .collect();
            table(
                &mut out,
                &[
                    "ID", "STATUS", "COMPANY", "COUNTRY", "SOURCE", "FILED", "PARTNER",
                ],
                &rows,
            );
        }
        View::Enrollment(e) => {
            let r = &e.request;
            let _ = writeln!(out, "enrollment:      {}", e.enrollment_id);
            let _ = writeln!(out, "status:          {}", e.status.as_str());
            let _ = writeln!(out, "company:         {} ({})", r.company, r.country);
            for c in &r.contacts {
                let _ = writeln!(
                    out,
                    "contact:         {} {} {} {}",
                    c.first_name,
                    c.last_name,
                    opt(c.email.as_deref()),
                    opt(c.phone.as_deref())
                );
            }
            let _ = writeln!(out, "operations:      {}", r.operations.join(", "));
            let _ = writeln!(out, "networks:        {}", r.networks.join(", "));
            let _ = writeln!(out, "callback url:    {}", opt(r.callback_url.as_deref()));
            let _ = writeln!(
                out,
                "client cert:     {}",
                opt(e.client_certificate_sha256.as_deref())
            );
            let _ = writeln!(out, "terms:           {}", r.accepted_terms);
            let _ = writeln!(out, "source:          {}", e.source);
            let _ = writeln!(out, "filed:           {}", utc(e.created_at));
            let _ = writeln!(out, "decided:         {}", time(e.decided_at));
            let _ = writeln!(out, "decided by:      {}", opt(e.decided_by.as_deref()));
            let _ = writeln!(out, "reason:          {}", opt(e.reason.as_deref()));
            let _ = writeln!(out, "partner:         {}", opt(e.partner_id.as_deref()));
            let _ = writeln!(out, "collected:       {}", time(e.collected_at));
        }
        View::Nodes(n) => {
            let rows: Vec<Vec<String>> = n
                .nodes
                .iter()
                .map(|node| {
                    let shown = NodeText::of(node);
                    vec![
                        node.node_id.clone(),
                        node.listen.clone(),
                        node.version.clone(),
                        shown.started,
                        node.revision.to_string(),
                        shown.rate,
                        shown.last_seen,
                        node.state.to_owned(),
                        node.changes.to_owned(),
                    ]
                })
                .collect();
            table(
                &mut out,
                &[
                    "ID",
                    "LISTEN",
                    "VERSION",
                    "STARTED",
                    "REVISION",
                    "REQ/S",
                    "LAST SEEN",
                    "STATE",
                    "CHANGES",
                ],
                &rows,
            );
            let _ = writeln!(
                out,
                "{} (heartbeat every {} s; gone after {} s of silence; forgotten after {} h)",
                reply.message,
                n.heartbeat_seconds,
                n.gone_after_seconds,
                n.forget_after_hours()
            );
        }
    }
    out
}

/// How the CLI and the dashboard write a node's start, request rate and silence.
pub struct NodeText {
    /// The start, UTC.
    pub started: String,
    /// Requests per second, one decimal.
    pub rate: String,
    /// `0.4 s ago`, `5 min ago` …
    pub last_seen: String,
}

impl NodeText {
    /// The texts of `node`.
    pub fn of(node: &NodeView) -> NodeText {
        NodeText {
            started: utc(node.started_at),
            rate: format!("{:.1}", node.requests_per_second),
            last_seen: ago(node.silent_ms),
        }
    }
}

impl NodesView {
    /// After how many hours a silent node's row is deleted.
    pub fn forget_after_hours(&self) -> u64 {
        self.forget_after_seconds / 3600
    }
}

/// A silence in milliseconds as `0.4 s ago`, `12 s ago`, `5 min ago`, `3 h ago`.
pub fn ago(ms: i64) -> String {
    match ms {
        ..=9_999 => format!("{:.1} s ago", ms as f64 / 1000.0),
        10_000..=119_999 => format!("{} s ago", ms / 1000),
        120_000..=7_199_999 => format!("{} min ago", ms / 60_000),
        _ => format!("{} h ago", ms / 3_600_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silences_read_in_a_sensible_unit() {
        assert_eq!(ago(0), "0.0 s ago");
        assert_eq!(ago(420), "0.4 s ago");
        assert_eq!(ago(12_345), "12 s ago");
        assert_eq!(ago(300_000), "5 min ago");
        assert_eq!(ago(3 * 3_600_000 + 5), "3 h ago");
    }

    #[test]
    fn utc_formats_unix_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_680_000), "2026-11-26T08:00:00Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59Z");
    }
}
