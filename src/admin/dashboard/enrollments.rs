//! The enrollment pages and their actions: the queue (`/ui/enrollments`: pending requests
//! first, then the decided ones), one request (`/ui/enrollments/{id}`: what was asked for, the
//! decision, the reject form), and the approve form (`/ui/enrollments/{id}/approve`: the partner
//! pre-filled from the request by the admin service's [`prefilled`], every field editable, the
//! client certificate registered unless unticked). Approve and reject run the same admin
//! operations as `partnergate enrollment approve|reject`, as the session's operator (viewers see
//! no button, and the service refuses their POST 403).

use std::net::SocketAddr;

use askama::Template;
use http::StatusCode;

use super::actions::{grants_of, rate_input, split_list};
use super::form::{encode, Form};
use super::partners::{domain_choices, group_choices, other_grants, DomainChoice};
use super::response::{
    failure_page, html, or_dash, partner_href, time, unexpected, Choice, Fail, Layout, Resp,
};
use super::session::Current;
use super::Dashboard;
use crate::admin::text::utc;
use crate::admin::{
    prefilled, suggested_id, AdminError, ApproveEnrollment, EnrollmentView, RejectEnrollment,
    Request, View,
};
use crate::store::{EnrollmentState, Role};

fn enrollment_href(id: &str) -> String {
    format!("/ui/enrollments/{}", encode(id))
}

/// A row of the queue.
struct Row {
    id: String,
    href: String,
    company: String,
    country: String,
    operations: String,
    networks: String,
    callback_url: String,
    filed: String,
    source: String,
    status: &'static str,
    decided: String,
    decided_by: String,
    /// The partner an approval created, with its link; else the rejection's reason.
    partner: Option<(String, String)>,
    reason: String,
}

#[derive(Template)]
#[template(path = "enrollments.html")]
struct QueuePage {
    layout: Layout,
    pending: Vec<Row>,
    decided: Vec<Row>,
}

#[derive(Template)]
#[template(path = "enrollment.html")]
struct EnrollmentPage {
    layout: Layout,
    e: Row,
    pending: bool,
    contacts: Vec<String>,
    certificate: String,
    terms: String,
    collected: String,
}

/// The approve form's values (as pre-filled, or as sent when an approval failed).
#[derive(Default)]
struct ApproveValues {
    id: String,
    name: String,
    allow: String,
    grant_other: String,
    callback_url: String,
    rate_ps: String,
    rate_burst: String,
    client_cert: bool,
}

#[derive(Template)]
#[template(path = "enrollment_approve.html")]
struct ApprovePage {
    layout: Layout,
    e: Row,
    error: Option<String>,
    v: ApproveValues,
    groups: Vec<Choice>,
    domains: Vec<DomainChoice>,
    /// The request's client certificate (SHA-256), if it carried one.
    certificate: Option<String>,
}

fn row(e: &EnrollmentView) -> Row {
    let r = &e.request;
    Row {
        id: e.enrollment_id.clone(),
        href: enrollment_href(&e.enrollment_id),
        company: r.company.clone(),
        country: r.country.clone(),
        operations: r.operations.join(", "),
        networks: r.networks.join(", "),
        callback_url: or_dash(r.callback_url.as_deref()),
        filed: utc(e.created_at),
        source: e.source.clone(),
        status: e.status.as_str(),
        decided: time(e.decided_at),
        decided_by: or_dash(e.decided_by.as_deref()),
        partner: e.partner_id.as_ref().map(|p| (p.clone(), partner_href(p))),
        reason: e.reason.clone().unwrap_or_default(),
    }
}

impl Dashboard {
    /// One enrollment through the admin service (`enrollment show`).
    async fn show_enrollment(
        &self,
        session: &Current,
        id: &str,
        peer: SocketAddr,
    ) -> Result<EnrollmentView, Fail> {
        let request = Request::ShowEnrollment {
            enrollment: id.to_owned(),
        };
        match self.run(session, request, peer).await?.view {
            View::Enrollment(e) => Ok(*e),
            _ => Err(unexpected()),
        }
    }

    pub(super) async fn enrollments_page(
        &self,
        session: &Current,
        peer: SocketAddr,
    ) -> Result<Resp, Fail> {
        let request = Request::ListEnrollments { status: None };
        let View::Enrollments(list) = self.run(session, request, peer).await?.view else {
            return Err(unexpected());
        };
        let (pending, decided): (Vec<_>, Vec<_>) = list
            .enrollments
            .iter()
            .partition(|e| e.status == EnrollmentState::Pending);
        let page = QueuePage {
            layout: Layout::new("Enrollments", "enrollments", session),
            pending: pending.into_iter().map(row).collect(),
            decided: decided.into_iter().map(row).collect(),
        };
        Ok(html(StatusCode::OK, page.render()))
    }

    pub(super) async fn enrollment_page(
        &self,
        session: &Current,
        id: &str,
        peer: SocketAddr,
    ) -> Result<Resp, Fail> {
        let e = self.show_enrollment(session, id, peer).await?;
        let contacts = e
            .request
            .contacts
            .iter()
            .map(|c| {
                let mut text = format!("{} {}", c.first_name, c.last_name);
                for part in [&c.company, &c.email, &c.phone].into_iter().flatten() {
                    text.push_str(" · ");
                    text.push_str(part);
                }
                text
            })
            .collect();
        let page = EnrollmentPage {
            layout: Layout::new(
                format!("Enrollment {}", e.request.company),
                "enrollments",
                session,
            ),
            pending: e.status == EnrollmentState::Pending,
            contacts,
            certificate: or_dash(e.client_certificate_sha256.as_deref()),
            terms: e.request.accepted_terms.clone(),
            collected: time(e.collected_at),
            e: row(&e),
        };
        Ok(html(StatusCode::OK, page.render()))
    }

    /// The approve form, pre-filled from the request (operators and admins only).
    pub(super) async fn approve_form(
        &self,
        session: &Current,
        id: &str,
        peer: SocketAddr,
    ) -> Result<Resp, Fail> {
        let role = session.operator.role;
        if role < Role::Operator {
            return Err(Fail::Admin(AdminError::Forbidden {
                role,
                needed: Role::Operator,
            }));
        }
        let e = self.show_enrollment(session, id, peer).await?;
        if e.status != EnrollmentState::Pending {
            return Err(Fail::Admin(AdminError::Conflict(format!(
                "enrollment {id} is {}, not pending",
                e.status.as_str()
            ))));
        }
        let partner = prefilled(&e.request);
        let admin = self.admin.clone();
        let taken = super::response::blocking(move || {
            Ok(admin
                .store()
                .list_partners()?
                .into_iter()
                .map(|p| p.partner_id)
                .collect::<Vec<_>>())
        })
        .await?;
        // The company's name as an id, made unique (`-2`, `-3`, …); else the default numbering.
        let suggested = suggested_id(&e.request.company).and_then(|base| {
            (1..100)
                .map(|n| {
                    if n == 1 {
                        base.clone()
                    } else {
                        format!("{}-{n}", &base[..base.len().min(29)])
                    }
                })
                .find(|id| !taken.contains(id))
        });
        let values = ApproveValues {
            id: suggested.unwrap_or_default(),
            name: partner.name,
            allow: partner.allow.join("\n"),
            grant_other: other_grants(&partner.grants),
            callback_url: e.request.callback_url.clone().unwrap_or_default(),
            rate_ps: String::new(),
            rate_burst: String::new(),
            client_cert: true,
        };
        Ok(self
            .approve_page(session, &e, values, &partner.grants, "", None)
            .await)
    }

    async fn approve_page(
        &self,
        session: &Current,
        e: &EnrollmentView,
        v: ApproveValues,
        grants: &[String],
        group: &str,
        error: Option<(StatusCode, String)>,
    ) -> Resp {
        let groups = self.group_names().await.unwrap_or_default();
        let (status, error) = error.map_or((StatusCode::OK, None), |(s, e)| (s, Some(e)));
        let page = ApprovePage {
            layout: Layout::new(
                format!("Approve {}", e.request.company),
                "enrollments",
                session,
            ),
            e: row(e),
            error,
            v,
            groups: group_choices(groups, group),
            domains: domain_choices(grants),
            certificate: e.client_certificate_sha256.clone(),
        };
        html(status, page.render())
    }

    /// `POST /ui/enrollments/{id}/approve` and `…/reject`.
    pub(super) async fn enrollment_action(
        &self,
        session: &Current,
        id: &str,
        rest: &[&str],
        form: &Form,
        peer: SocketAddr,
    ) -> Resp {
        let href = enrollment_href(id);
        match rest {
            ["approve"] => self.approve(session, id, form, peer).await,
            ["reject"] => {
                let request = Request::RejectEnrollment {
                    enrollment: id.to_owned(),
                    input: RejectEnrollment {
                        reason: form.text("reason").unwrap_or_default(),
                    },
                };
                let result = self.run(session, request, peer).await.map(|r| r.message);
                self.after(session, result, &href).await
            }
            _ => self.not_found_action(session),
        }
    }

    /// Approves with the form's values (every field sent: the form shows them all); a failure
    /// shows the form again with what was sent and why.
    async fn approve(&self, session: &Current, id: &str, form: &Form, peer: SocketAddr) -> Resp {
        let grants = grants_of(form);
        let result = async {
            let input = ApproveEnrollment {
                id: form.text("id"),
                name: Some(form.get("name").unwrap_or("").trim().to_owned()),
                group: form.text("group"),
                allow: Some(split_list(form.get("allow").unwrap_or(""))),
                grants: Some(grants.clone()),
                callback_url: Some(form.text("callback_url")),
                rate: rate_input(form, "rate_ps", "rate_burst", "rate")?,
                client_cert: Some(form.get("client_cert") == Some("yes")),
            };
            let request = Request::ApproveEnrollment {
                enrollment: id.to_owned(),
                input,
            };
            self.run(session, request, peer).await
        }
        .await;
        let e = match result {
            Ok(reply) => {
                return self
                    .after(session, Ok(reply.message), &enrollment_href(id))
                    .await
            }
            Err(e @ Fail::Admin(AdminError::Forbidden { .. })) => return failure_page(session, &e),
            Err(e) => e,
        };
        let Ok(enrollment) = self.show_enrollment(session, id, peer).await else {
            return self.after(session, Err(e), &enrollment_href(id)).await;
        };
        if enrollment.status != EnrollmentState::Pending {
            return self.after(session, Err(e), &enrollment_href(id)).await;
        }
        let field = |name: &str| form.get(name).unwrap_or("").to_owned();
        let values = ApproveValues {
            id: field("id"),
            name: field("name"),
            allow: field("allow"),
            grant_other: field("grant_other"),
            callback_url: field("callback_url"),
            rate_ps: field("rate_ps"),
            rate_burst: field("rate_burst"),
            client_cert: form.get("client_cert") == Some("yes"),
        };
        let group = form.text("group").unwrap_or_default();
        let error = Some((e.status(), e.to_string()));
        self.approve_page(session, &enrollment, values, &grants, &group, error)
            .await
    }
}
