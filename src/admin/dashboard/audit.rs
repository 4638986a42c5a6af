//! The audit log page (`/ui/audit`, filtered by target) and the audit rows the partner and
//! group pages show too.

use std::net::SocketAddr;

use askama::Template;
use http::StatusCode;

use super::form::Form;
use super::response::{group_href, html, invalid, partner_href, unexpected, Fail, Layout, Resp};
use super::session::Current;
use super::{change, Dashboard};
use crate::admin::text::utc;
use crate::admin::{Actor, Admin, AuditEntry, Request, Rules, View};

/// One audit entry as the pages show it, with a link to its target.
pub(super) struct AuditRow {
    pub(super) at: String,
    pub(super) actor: String,
    pub(super) action: String,
    /// The target as recorded (a group by its name at the time).
    pub(super) target: String,
    /// Where the target is now (empty: nowhere, e.g. a group renamed since).
    pub(super) href: String,
    /// For a group renamed since: its name now.
    pub(super) now_named: String,
    /// The change, one line per field ([`change::lines`]).
    pub(super) changes: Vec<String>,
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
    let View::Audit(a) = admin
        .handle(
            Request::ListAudit {
                target,
                limit: Some(limit),
            },
            rules,
            actor,
        )?
        .view
    else {
        return Err(unexpected());
    };
    let groups: Vec<String> = admin
        .store()
        .list_groups()?
        .into_iter()
        .map(|g| g.name)
        .collect();
    let renames = renames(&a.entries);
    Ok(a.entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| audit_row(e, i, &groups, &renames))
        .collect())
}

/// A group rename among the listed entries: (the entry's index, old name, new name).
type Rename = (usize, String, String);

/// The group renames among `entries` (newest first).
fn renames(entries: &[AuditEntry]) -> Vec<Rename> {
    entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.action == "group.update")
        .filter_map(|(i, e)| {
            let name = e.detail.as_ref()?.get("name")?;
            Some((
                i,
                name.get("from")?.as_str()?.to_owned(),
                name.get("to")?.as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// Where the group called `name` by entry `at` (an index into the newest-first entries) is
/// now: followed through the renames at or after that entry, oldest first; `None` when no
/// group has that name now. Groups are known by name only, so a link by the old name would
/// lead nowhere (or to another group that took the name).
fn group_now(name: &str, at: usize, groups: &[String], renames: &[Rename]) -> Option<String> {
    let mut current = name.to_owned();
    for (_, from, to) in renames.iter().rev().filter(|(i, _, _)| *i <= at) {
        if *from == current {
            current.clone_from(to);
        }
    }
    groups.contains(&current).then_some(current)
}

fn audit_row(a: AuditEntry, at: usize, groups: &[String], renames: &[Rename]) -> AuditRow {
    let (href, now_named) = if let Some(g) = a.target.strip_prefix("group:") {
        match group_now(g, at, groups, renames) {
            Some(now) if now == g => (group_href(g), String::new()),
            Some(now) => (group_href(&now), now),
            None => (String::new(), String::new()),
        }
    } else if a.target.is_empty() {
        (String::new(), String::new())
    } else if a.target.starts_with("operator:") {
        ("/ui/operators".to_owned(), String::new())
    } else {
        (partner_href(&a.target), String::new())
    };
    AuditRow {
        at: utc(a.at),
        actor: a.actor,
        changes: change::lines(&a.action, a.detail.as_ref()),
        action: a.action,
        href,
        now_named,
        target: a.target,
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
            .with_admin(session, peer, move |admin, rules, actor| {
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

#[cfg(test)]
mod tests {
    use super::group_now;

    #[test]
    fn groups_are_found_under_their_name_now() {
        let groups = [
            "platinum".to_owned(),
            "silver".to_owned(),
            "gold".to_owned(),
        ];
        // Newest first: entry 1 renamed gold to platinum, entry 3 bronze to gold, and a new
        // gold was created since (entry 0).
        let renames = [
            (1, "gold".to_owned(), "platinum".to_owned()),
            (3, "bronze".to_owned(), "gold".to_owned()),
        ];
        let now = |name: &str, at: usize| group_now(name, at, &groups, &renames);
        assert_eq!(now("silver", 5).as_deref(), Some("silver"));
        // Before both renames: bronze → gold → platinum.
        assert_eq!(now("bronze", 4).as_deref(), Some("platinum"));
        // The rename's own entry leads to the new name.
        assert_eq!(now("gold", 1).as_deref(), Some("platinum"));
        // The gold created after the rename is today's gold.
        assert_eq!(now("gold", 0).as_deref(), Some("gold"));
        // Gone, or renamed before the listed entries: no link.
        assert_eq!(now("copper", 2), None);
    }
}
