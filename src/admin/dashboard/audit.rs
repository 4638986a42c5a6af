//! The audit log page (`/ui/audit`, filtered by target) and the audit rows the partner and
//! group pages show too.

use std::net::SocketAddr;

use askama::Template;
use http::StatusCode;

use super::form::Form;
use super::response::{group_href, html, invalid, partner_href, unexpected, Fail, Layout, Resp};
use super::session::Current;
use super::Dashboard;
use crate::admin::text::utc;
use crate::admin::{Actor, Admin, AuditEntry, Request, Rules, View};

/// One audit entry as the pages show it, with a link to its target.
pub(super) struct AuditRow {
    pub(super) at: String,
    pub(super) actor: String,
    pub(super) action: String,
    pub(super) target: String,
    pub(super) href: String,
    pub(super) detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    target: String,
    limit: String,
    entries: Vec<AuditRow>,
}

/// The audit rows about `target` (every target with `None`), newest first, at most `limit`, as
/// the admin service lists them (`audit`); blocking.
pub(super) fn audit_rows(
    admin: &Admin,
    rules: &Rules,
    actor: &Actor,
    target: Option<String>,
    limit: u32,
) -> Result<Vec<AuditRow>, Fail> {
    match admin
        .handle(
            Request::ListAudit {
                target,
                limit: Some(limit),
            },
            rules,
            actor,
        )?
        .view
    {
        View::Audit(a) => Ok(a.entries.into_iter().map(audit_row).collect()),
        _ => Err(unexpected()),
    }
}

fn audit_row(a: AuditEntry) -> AuditRow {
    let href = if let Some(g) = a.target.strip_prefix("group:") {
        group_href(g)
    } else if a.target.is_empty() {
        String::new()
    } else {
        partner_href(&a.target)
    };
    AuditRow {
        at: utc(a.at),
        actor: a.actor,
        action: a.action,
        href,
        target: a.target,
        detail: a.detail.map(|d| d.to_string()).unwrap_or_default(),
    }
}

impl Dashboard {
    pub(super) async fn audit_page(
        &self,
        session: &Current,
        query: &Form,
        peer: SocketAddr,
    ) -> Result<Resp, Fail> {
        let target = query.text("target");
        let limit = match query.text("limit") {
            None => 100,
            Some(l) => l
                .parse::<u32>()
                .map_err(|_| invalid("limit", format!("{l:?} is not a number")))?,
        };
        let t = target.clone();
        let entries = self
            .with_admin(peer, move |admin, rules, actor| {
                audit_rows(admin, rules, actor, t, limit)
            })
            .await?;
        let page = AuditPage {
            layout: Layout::new("Audit log", "audit", session),
            target: target.unwrap_or_default(),
            limit: limit.to_string(),
            entries,
        };
        Ok(html(StatusCode::OK, page.render()))
    }
}
