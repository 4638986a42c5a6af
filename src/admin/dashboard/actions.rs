//! The POST actions (every form but login's): the dispatch by path, the parsing of their forms
//! into admin requests, and where the browser goes next (the outcome kept as a flash message for
//! that page, or new keys kept for the reveal page). Each runs through [`Admin`] like the CLI
//! and the admin API, as the session's operator (`op:<name>/ui:<peer>`, with its role: a change
//! the role does not allow is answered 403).
//!
//! [`Admin`]: crate::admin::Admin

use std::net::SocketAddr;

use super::form::Form;
use super::partners::{show_partner, NewValues};
use super::response::{
    failure_page, group_href, invalid, partner_href, redirect, unexpected, Fail, Resp,
};
use super::session::{Current, Flash, Reveal};
use super::Dashboard;
use crate::admin::{
    AdminError, CreateGroup, CreatePartner, Direction, RateInput, Request, RevokeInput,
    RotateInput, StatusInput, UpdateGroup, UpdatePartner, View,
};
use crate::store::{GroupRecord, Rate};

impl Dashboard {
    /// Leaves the outcome for the next page and sends the browser there.
    /// A change the operator's role does not allow is answered 403 at once (no redirect: the
    /// form was not one the dashboard showed it).
    pub(super) async fn after(
        &self,
        session: &Current,
        result: Result<String, Fail>,
        to: &str,
    ) -> Resp {
        if let Err(e @ Fail::Admin(AdminError::Forbidden { .. })) = &result {
            return failure_page(session, e);
        }
        let flash = match result {
            Ok(text) => Flash { ok: true, text },
            Err(e) => {
                let _ = e.status(); // logs database and internal errors
                Flash {
                    ok: false,
                    text: e.to_string(),
                }
            }
        };
        if let Err(e) = self.sessions.flash(session, flash).await {
            // The action is done; only its message is lost.
            tracing::warn!(error = %e, "dashboard: the outcome could not be kept for the next page");
        }
        redirect(to)
    }

    pub(super) async fn action(
        &self,
        session: &Current,
        segs: &[&str],
        form: &Form,
        peer: SocketAddr,
    ) -> Resp {
        match segs {
            ["logout"] => self.logout(session, peer).await,
            ["partners"] => self.create_partner(session, form, peer).await,
            ["partners", id, "update"] => {
                let result = self.update_partner(session, id, form, peer).await;
                self.after(session, result, &format!("{}#details", partner_href(id)))
                    .await
            }
            ["partners", id, rest @ ..] => {
                let href = partner_href(id);
                let (request, anchor) = match partner_request(id, rest, form) {
                    Ok(Some(r)) => r,
                    Ok(None) => return self.not_found_action(session),
                    Err(e) => return self.after(session, Err(e), &href).await,
                };
                let to = format!("{href}#{anchor}");
                match self.run(session, request, peer).await {
                    Ok(reply) => match reply.view {
                        View::Rotated(r) => {
                            let label = if r.new_key.kind == "callback" {
                                "New callback key"
                            } else {
                                "New partner key"
                            };
                            let reveal = Reveal {
                                message: reply.message,
                                keys: vec![(label.to_owned(), r.key)],
                                partner_id: r.partner_id,
                            };
                            self.show_keys(session, reveal).await
                        }
                        _ => self.after(session, Ok(reply.message), &to).await,
                    },
                    Err(e) => self.after(session, Err(e), &to).await,
                }
            }
            ["groups"] => {
                let result = async {
                    let name = form.text("name").unwrap_or_default();
                    let create = CreateGroup {
                        rate: rate_input(form, "rate_ps", "rate_burst", "rate")?,
                        aggregate: rate_input(form, "agg_ps", "agg_burst", "aggregate")?,
                        name,
                    };
                    Ok(self
                        .run(session, Request::CreateGroup(create), peer)
                        .await?
                        .message)
                }
                .await;
                self.after(session, result, "/ui/groups").await
            }
            ["operators", rest @ ..] => self.operator_action(session, rest, form, peer).await,
            ["enrollments", id, rest @ ..] => {
                self.enrollment_action(session, id, rest, form, peer).await
            }
            ["groups", name] => {
                let href = group_href(name);
                let result = self.update_group_rates(session, name, form, peer).await;
                self.after(session, result, &href).await
            }
            ["groups", name, "rename"] => {
                let new = form.text("name").unwrap_or_default();
                let request = Request::UpdateGroup {
                    group: (*name).to_owned(),
                    update: UpdateGroup {
                        name: Some(new.clone()),
                        rate: None,
                        aggregate: None,
                    },
                };
                match self.run(session, request, peer).await {
                    Ok(reply) => {
                        self.after(session, Ok(reply.message), &group_href(&new))
                            .await
                    }
                    Err(e) => self.after(session, Err(e), &group_href(name)).await,
                }
            }
            _ => self.not_found_action(session),
        }
    }

    /// Keeps new keys (sealed) for the reveal page and sends the browser there.
    pub(super) async fn show_keys(&self, session: &Current, reveal: Reveal) -> Resp {
        let partner = reveal.partner_id.clone();
        match self.sessions.reveal(session, reveal).await {
            Ok(()) => redirect("/ui/reveal"),
            Err(e) => failure_page(
                session,
                &Fail::Internal(format!(
                    "{partner}: the change is done, but its new keys could not be kept to show \
                     you ({e}); rotate them on the partner's page"
                )),
            ),
        }
    }

    pub(super) fn not_found_action(&self, session: &Current) -> Resp {
        failure_page(
            session,
            &Fail::Admin(AdminError::NotFound {
                what: "action",
                key: "at this address".into(),
            }),
        )
    }

    async fn create_partner(&self, session: &Current, form: &Form, peer: SocketAddr) -> Resp {
        let grants = grants_of(form);
        let values = NewValues {
            id: form.get("id").unwrap_or("").to_owned(),
            name: form.get("name").unwrap_or("").to_owned(),
            country: form.get("country").unwrap_or("").to_owned(),
            allow: form.get("allow").unwrap_or("").to_owned(),
            grant_other: form.get("grant_other").unwrap_or("").to_owned(),
            feature_defaults: form.get("feature_defaults").unwrap_or("").to_owned(),
        };
        let group = form.text("group").unwrap_or_default();
        let result = async {
            let create = CreatePartner {
                id: form.text("id"),
                name: form.get("name").unwrap_or("").trim().to_owned(),
                country: form.text("country"),
                group: form.text("group"),
                allow: split_list(form.get("allow").unwrap_or("")),
                grants: grants.clone(),
                feature_defaults: json_field(form, "feature_defaults")?,
            };
            self.run(session, Request::CreatePartner(create), peer)
                .await
        }
        .await;
        match result {
            Ok(reply) => {
                let View::Created(c) = reply.view else {
                    return failure_page(session, &unexpected());
                };
                let reveal = Reveal {
                    message: reply.message,
                    keys: vec![
                        (
                            "Partner key (for the PartnerAuth header)".to_owned(),
                            c.api_key,
                        ),
                        (
                            "Callback key (the TSP presents it on callbacks)".to_owned(),
                            c.callback_key,
                        ),
                    ],
                    partner_id: c.partner_id,
                };
                self.show_keys(session, reveal).await
            }
            Err(e) => {
                let status = e.status();
                let groups = self.group_names().await.unwrap_or_default();
                self.new_partner_page(
                    session,
                    values,
                    &grants,
                    &group,
                    groups,
                    Some(e.to_string()),
                    status,
                )
            }
        }
    }

    /// Sends only the fields that differ from the stored partner (as `partner update` with the
    /// flags of the changed fields would): one change, one audit row.
    async fn update_partner(
        &self,
        session: &Current,
        id: &str,
        form: &Form,
        peer: SocketAddr,
    ) -> Result<String, Fail> {
        let sent_json = json_field(form, "feature_defaults")?;
        let partner = id.to_owned();
        let form = form.clone();
        self.with_admin(session, peer, move |admin, rules, actor| {
            let now = show_partner(admin, rules, actor, partner.clone())?;
            let diff = |current: &Option<String>, field: &str| -> Option<Option<String>> {
                let sent = normalize(form.get(field).unwrap_or(""));
                let sent = (!sent.is_empty()).then_some(sent);
                let current = current.as_deref().map(normalize).filter(|c| !c.is_empty());
                (sent != current).then_some(sent)
            };
            let name = form.get("name").unwrap_or("").trim().to_owned();
            let update = UpdatePartner {
                name: (name != now.name).then_some(name),
                contact: diff(&now.contact, "contact"),
                billing_rate: diff(&now.billing_rate, "billing_rate"),
                country: diff(&now.country, "country"),
                group: None,
                callback_url: diff(&now.callback_url, "callback_url"),
                callback_ca_pem: diff(&now.callback_ca_pem, "callback_ca_pem")
                    .map(|v| v.map(|pem| format!("{pem}\n"))),
                feature_defaults: (sent_json != now.feature_defaults).then_some(sent_json),
                ..UpdatePartner::default()
            };
            Ok(admin
                .handle(Request::UpdatePartner { partner, update }, rules, actor)?
                .message)
        })
        .await
    }

    async fn update_group_rates(
        &self,
        session: &Current,
        name: &str,
        form: &Form,
        peer: SocketAddr,
    ) -> Result<String, Fail> {
        let rate = rate_input(form, "rate_ps", "rate_burst", "rate")?;
        let aggregate = rate_input(form, "agg_ps", "agg_burst", "aggregate")?;
        let group = name.to_owned();
        self.with_admin(session, peer, move |admin, rules, actor| {
            let current: GroupRecord = admin.store().group_detail(&group)?;
            let same = |stored: Option<Rate>, sent: Option<RateInput>| {
                let stored =
                    stored.map(|r| (u64::from(r.per_second.get()), u64::from(r.burst.get())));
                stored == sent.map(|r| (r.per_second, r.burst))
            };
            let update = UpdateGroup {
                name: None,
                rate: (!same(current.rate, rate)).then_some(rate),
                aggregate: (!same(current.aggregate, aggregate)).then_some(aggregate),
            };
            Ok(admin
                .handle(Request::UpdateGroup { group, update }, rules, actor)?
                .message)
        })
        .await
    }
}

/// Trims and turns CRLF (what browsers send for textareas) into LF.
fn normalize(s: &str) -> String {
    s.replace("\r\n", "\n").trim().to_owned()
}

/// The grants a partner form sends: the ticked boxes, then the other grants typed, once each.
pub(super) fn grants_of(form: &Form) -> Vec<String> {
    let mut grants: Vec<String> = Vec::new();
    for g in form
        .all("grant")
        .into_iter()
        .map(str::to_owned)
        .chain(split_list(form.get("grant_other").unwrap_or("")))
    {
        if !grants.contains(&g) {
            grants.push(g);
        }
    }
    grants
}

/// Items separated by whitespace or commas.
pub(super) fn split_list(s: &str) -> Vec<String> {
    s.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A JSON field: blank → `None`.
fn json_field(form: &Form, field: &'static str) -> Result<Option<serde_json::Value>, Fail> {
    match form.text(field) {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| invalid(field, format!("not valid JSON: {e}"))),
    }
}

/// A rate from two number fields: both blank → `None`.
pub(super) fn rate_input(
    form: &Form,
    per_second: &str,
    burst: &str,
    field: &'static str,
) -> Result<Option<RateInput>, Fail> {
    let number = |name: &str, what: &str| -> Result<Option<u64>, Fail> {
        match form.text(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| invalid(field, format!("{what} must be a whole number, not {v:?}"))),
        }
    };
    match (
        number(per_second, "requests per second")?,
        number(burst, "burst")?,
    ) {
        (None, None) => Ok(None),
        (Some(per_second), Some(burst)) => Ok(Some(RateInput { per_second, burst })),
        _ => Err(invalid(
            field,
            "give both requests per second and burst, or neither",
        )),
    }
}

/// The admin request of a partner action (`/ui/partners/{id}/…`) and the page section to
/// return to; `Ok(None)`: no such action.
fn partner_request(
    id: &str,
    rest: &[&str],
    form: &Form,
) -> Result<Option<(Request, &'static str)>, Fail> {
    let partner = id.to_owned();
    let reason = || StatusInput {
        reason: form.text("reason"),
    };
    Ok(Some(match rest {
        ["suspend"] => (
            Request::Suspend {
                partner,
                input: reason(),
            },
            "lifecycle",
        ),
        ["reinstate"] => (
            Request::Reinstate {
                partner,
                input: reason(),
            },
            "lifecycle",
        ),
        ["offboard"] => {
            if form.get("confirm") != Some("yes") {
                return Err(invalid(
                    "confirm",
                    "tick \"I understand this cannot be undone\" to offboard",
                ));
            }
            (
                Request::Offboard {
                    partner,
                    input: reason(),
                },
                "lifecycle",
            )
        }
        ["keys", "rotate"] => (
            Request::RotateKey {
                partner,
                input: RotateInput {
                    kind: form.text("kind"),
                    overlap: form.text("overlap"),
                },
            },
            "keys",
        ),
        ["keys", "revoke"] => {
            let key_id = match form.text("id") {
                None => None,
                Some(v) => Some(
                    v.parse::<i64>()
                        .map_err(|_| invalid("id", format!("{v:?} is not a key id")))?,
                ),
            };
            (
                Request::RevokeKeys {
                    partner,
                    input: RevokeInput {
                        kind: if key_id.is_some() {
                            None
                        } else {
                            form.text("kind")
                        },
                        id: key_id,
                    },
                },
                "keys",
            )
        }
        ["allowlist"] => (
            Request::AddAllow {
                partner,
                cidr: form.text("cidr").unwrap_or_default(),
            },
            "allowlist",
        ),
        ["allowlist", "remove"] => (
            Request::RemoveAllow {
                partner,
                cidr: form.text("cidr").unwrap_or_default(),
            },
            "allowlist",
        ),
        ["grants", "add"] => (
            Request::AddGrant {
                partner,
                permission: form.text("permission").unwrap_or_default(),
            },
            "permissions",
        ),
        ["grants", "revoke"] => (
            Request::RevokeGrant {
                partner,
                permission: form.text("permission").unwrap_or_default(),
            },
            "permissions",
        ),
        ["group"] => (
            Request::AssignGroup {
                partner,
                group: form.text("group"),
            },
            "throttle",
        ),
        [which @ ("throttle" | "callback-throttle")] => {
            let direction = direction_of(which);
            let field = direction.rate_field();
            let Some(rate) = rate_input(form, "per_second", "burst", field)? else {
                return Err(invalid(
                    field,
                    "give requests per second and burst (or clear the rate)",
                ));
            };
            (
                Request::PartnerThrottle {
                    partner,
                    direction,
                    rate: Some(rate),
                },
                "throttle",
            )
        }
        [which @ ("throttle" | "callback-throttle"), "clear"] => (
            Request::PartnerThrottle {
                partner,
                direction: direction_of(which),
                rate: None,
            },
            "throttle",
        ),
        _ => return Ok(None),
    }))
}

/// The rate a throttle form's path names: `throttle` (the partner's calls) or
/// `callback-throttle` (callbacks to its BSS).
fn direction_of(path: &str) -> Direction {
    if path == "callback-throttle" {
        Direction::Callback
    } else {
        Direction::Inbound
    }
}
