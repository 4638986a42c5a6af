//! The group pages: every throttle group (`/ui/groups`, with the create form) and one group
//! (`/ui/groups/{name}`: its rates, members and audit rows). The actions on them are in
//! `actions.rs`.

use std::net::SocketAddr;

use askama::Template;
use http::StatusCode;

use super::audit::{audit_rows, AuditRow};
use super::response::{blocking, group_href, html, partner_href, rate_text, Fail, Layout, Resp};
use super::session::Current;
use super::{Dashboard, PAGE_AUDIT_ROWS};
use crate::admin::text::utc;
use crate::store::Rate;

struct GroupRow {
    name: String,
    href: String,
    rate: String,
    aggregate: String,
    members: usize,
    created: String,
}

#[derive(Template)]
#[template(path = "groups.html")]
struct GroupsPage {
    layout: Layout,
    groups: Vec<GroupRow>,
}

struct GroupData {
    name: String,
    href: String,
    rate: String,
    aggregate: String,
    created: String,
    rate_ps: String,
    rate_burst: String,
    agg_ps: String,
    agg_burst: String,
    members: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "group.html")]
struct GroupPage {
    layout: Layout,
    g: GroupData,
    audit: Vec<AuditRow>,
}

impl Dashboard {
    pub(super) async fn groups_page(&self, session: &Current) -> Result<Resp, Fail> {
        let admin = self.admin.clone();
        let groups = blocking(move || Ok(admin.store().list_groups()?)).await?;
        let page = GroupsPage {
            layout: Layout::new("Groups", "groups", session),
            groups: groups
                .into_iter()
                .map(|g| GroupRow {
                    href: group_href(&g.name),
                    rate: rate_text(g.rate),
                    aggregate: rate_text(g.aggregate),
                    members: g.members.len(),
                    created: utc(g.created_at),
                    name: g.name,
                })
                .collect(),
        };
        Ok(html(StatusCode::OK, page.render()))
    }

    pub(super) async fn group_page(
        &self,
        session: &Current,
        name: &str,
        peer: SocketAddr,
    ) -> Result<Resp, Fail> {
        let group = name.to_owned();
        let (g, audit) = self
            .with_admin(session, peer, move |admin, rules, actor| {
                let g = admin.store().group_detail(&group)?;
                let audit = audit_rows(
                    admin,
                    rules,
                    actor,
                    Some(format!("group:{group}")),
                    PAGE_AUDIT_ROWS,
                )?;
                Ok((g, audit))
            })
            .await?;
        let num = |r: Option<Rate>, burst: bool| {
            r.map(|r| if burst { r.burst } else { r.per_second }.to_string())
                .unwrap_or_default()
        };
        let page = GroupPage {
            layout: Layout::new(format!("Group {}", g.name), "groups", session),
            g: GroupData {
                href: group_href(&g.name),
                rate: rate_text(g.rate),
                aggregate: rate_text(g.aggregate),
                created: utc(g.created_at),
                rate_ps: num(g.rate, false),
                rate_burst: num(g.rate, true),
                agg_ps: num(g.aggregate, false),
                agg_burst: num(g.aggregate, true),
                members: g
                    .members
                    .iter()
                    .map(|m| (m.clone(), partner_href(m)))
                    .collect(),
                name: g.name,
            },
            audit,
        };
        Ok(html(StatusCode::OK, page.render()))
    }
}
