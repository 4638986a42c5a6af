//! The Operators page (admin only: the admin service refuses the others 403) and its actions:
//! create, role, disable/enable, new password, API tokens. A new password or token is kept
//! (sealed) for the reveal page and shown once, like a partner's keys.

use std::net::SocketAddr;

use askama::Template;
use http::StatusCode;

use super::form::Form;
use super::response::{choice, html, unexpected, Choice, Fail, Layout, Resp};
use super::session::{Current, Reveal};
use super::Dashboard;
use crate::admin::text::utc;
use crate::admin::{Request, View};
use crate::store::Role;

/// The reveal slot's subject for an operator's secret (`operator:<name>`): the reveal page
/// links back to this page instead of a partner's.
pub(super) const REVEAL_PREFIX: &str = "operator:";

struct TokenRow {
    id: i64,
    prefix: String,
    label: String,
    last_used: String,
    revoked: bool,
}

struct OperatorRow {
    name: String,
    href: String,
    state: &'static str,
    enabled: bool,
    created: String,
    roles: Vec<Choice>,
    tokens: Vec<TokenRow>,
}

#[derive(Template)]
#[template(path = "operators.html")]
struct OperatorsPage {
    layout: Layout,
    operators: Vec<OperatorRow>,
}

impl Dashboard {
    pub(super) async fn operators_page(
        &self,
        session: &Current,
        peer: SocketAddr,
    ) -> Result<Resp, Fail> {
        let operators = self
            .with_admin(session, peer, |admin, rules, actor| {
                let View::Operators(list) =
                    admin.handle(Request::ListOperators, rules, actor)?.view
                else {
                    return Err(unexpected());
                };
                let mut rows = Vec::new();
                for o in list.operators {
                    let request = Request::ListTokens {
                        operator: o.name.clone(),
                    };
                    let View::Tokens(t) = admin.handle(request, rules, actor)?.view else {
                        return Err(unexpected());
                    };
                    rows.push(OperatorRow {
                        href: format!("/ui/operators/{}", super::form::encode(&o.name)),
                        state: if o.disabled_at.is_some() {
                            "disabled"
                        } else {
                            "active"
                        },
                        enabled: o.disabled_at.is_none(),
                        created: utc(o.created_at),
                        roles: Role::ALL
                            .iter()
                            .map(|r| choice(r.as_str(), r.as_str(), *r == o.role))
                            .collect(),
                        tokens: t
                            .tokens
                            .into_iter()
                            .map(|t| TokenRow {
                                id: t.id,
                                prefix: t.prefix,
                                label: t.label.unwrap_or_default(),
                                last_used: t.last_used_at.map_or_else(|| "never".into(), utc),
                                revoked: t.revoked_at.is_some(),
                            })
                            .collect(),
                        name: o.name,
                    });
                }
                Ok(rows)
            })
            .await?;
        let page = OperatorsPage {
            layout: Layout::new("Operators", "operators", session),
            operators,
        };
        Ok(html(StatusCode::OK, page.render()))
    }

    /// `POST /ui/operators…`: `rest` is the path after `operators`.
    pub(super) async fn operator_action(
        &self,
        session: &Current,
        rest: &[&str],
        form: &Form,
        peer: SocketAddr,
    ) -> Resp {
        let owned = |s: &str| s.to_owned();
        let request = match rest {
            [] => Request::CreateOperator {
                name: form.text("name").unwrap_or_default(),
                role: form.text("role").unwrap_or_default(),
            },
            [name, "role"] => Request::SetRole {
                name: owned(name),
                role: form.text("role").unwrap_or_default(),
            },
            [name, "disable"] => Request::DisableOperator { name: owned(name) },
            [name, "enable"] => Request::EnableOperator { name: owned(name) },
            [name, "reset-password"] => Request::ResetPassword { name: owned(name) },
            [name, "tokens"] => Request::CreateToken {
                operator: owned(name),
                label: form.text("label"),
            },
            [name, "tokens", "revoke"] => match form.text("id").map(|id| id.parse::<i64>()) {
                Some(Ok(id)) => Request::RevokeToken {
                    operator: owned(name),
                    id,
                },
                _ => {
                    let e = super::response::invalid("id", "not a token id");
                    return self.after_operator(session, Err(e)).await;
                }
            },
            _ => return self.not_found_action(session),
        };
        let reply = match self.run(session, request, peer).await {
            Ok(reply) => reply,
            Err(e) => return self.after_operator(session, Err(e)).await,
        };
        let secret = match reply.view {
            View::Operator(v) => v.password.map(|p| {
                (
                    v.operator.name,
                    "Password",
                    crate::secret::Secret::new(p.expose().to_owned()),
                )
            }),
            View::TokenCreated(t) => Some((t.record.operator, "API token", t.token)),
            _ => None,
        };
        match secret {
            Some((name, label, value)) => {
                let reveal = Reveal {
                    partner_id: format!("{REVEAL_PREFIX}{name}"),
                    message: reply.message,
                    keys: vec![(label.to_owned(), value)],
                };
                self.show_keys(session, reveal).await
            }
            None => self.after_operator(session, Ok(reply.message)).await,
        }
    }

    async fn after_operator(&self, session: &Current, result: Result<String, Fail>) -> Resp {
        self.after(session, result, "/ui/operators").await
    }
}
