//! The Nodes page: the gateway nodes' heartbeats (the same view as `partnergate nodes`).

use std::net::SocketAddr;

use askama::Template;
use http::StatusCode;

use super::response::{html, unexpected, Fail, Layout, Resp};
use super::session::Current;
use super::Dashboard;
use crate::admin::text::NodeText;
use crate::admin::{Request, View};

struct NodeRow {
    node_id: String,
    listen: String,
    version: String,
    started: String,
    revision: i64,
    rate: String,
    last_seen: String,
    state: &'static str,
    changes: &'static str,
}

#[derive(Template)]
#[template(path = "nodes.html")]
struct NodesPage {
    layout: Layout,
    heartbeat: u64,
    gone_after: u64,
    forget_hours: u64,
    summary: String,
    nodes: Vec<NodeRow>,
}

impl Dashboard {
    pub(super) async fn nodes_page(
        &self,
        session: &Current,
        peer: SocketAddr,
    ) -> Result<Resp, Fail> {
        let reply = self.run(session, Request::ListNodes, peer).await?;
        let View::Nodes(v) = reply.view else {
            return Err(unexpected());
        };
        let page = NodesPage {
            layout: Layout::new("Nodes", "nodes", session),
            heartbeat: v.heartbeat_seconds,
            gone_after: v.gone_after_seconds,
            forget_hours: v.forget_after_hours(),
            summary: reply.message,
            nodes: v
                .nodes
                .into_iter()
                .map(|n| {
                    let NodeText {
                        started,
                        rate,
                        last_seen,
                    } = NodeText::of(&n);
                    NodeRow {
                        started,
                        rate,
                        last_seen,
                        node_id: n.node_id,
                        listen: n.listen,
                        version: n.version,
                        revision: n.revision,
                        state: n.state,
                        changes: n.changes,
                    }
                })
                .collect(),
        };
        Ok(html(StatusCode::OK, page.render()))
    }
}
