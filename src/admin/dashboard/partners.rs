//! The partner pages and their view data: the list with its search (`/ui/partners`), the
//! create form (`/ui/partners/new`, shown again with the sent values when a create fails), the
//! new keys shown once (`/ui/reveal`) and one partner (`/ui/partners/{id}`: details, keys,
//! allowlist, the permission matrix, throttle, usage, audit). The actions on them are in
//! `actions.rs`.

use std::net::SocketAddr;

use askama::Template;
use http::StatusCode;

use super::audit::{audit_rows, AuditRow};
use super::form::{encode, Form};
use super::response::{
    blocking, choice, html, or_dash, partner_href, rate_text, sentence, time, unexpected, Choice,
    Fail, Layout, Resp,
};
use super::session::Current;
use super::{usage, Dashboard, PAGE_AUDIT_ROWS};
use crate::admin::text::utc;
use crate::admin::{
    Actor, Admin, ClientCertView, KeyView, PartnerView, RateView, Request, Rules, View,
};
use crate::generated::partner::Operation;
use crate::store::{GroupRecord, Rate};

struct KeyCell {
    prefix: String,
    kind: &'static str,
    state: &'static str,
    last_used: String,
}

struct PartnerRow {
    id: String,
    href: String,
    name: String,
    status: &'static str,
    group: String,
    country: String,
    keys: Vec<KeyCell>,
    calls: i64,
    ok: i64,
    refused: i64,
    upstream: i64,
}

#[derive(Template)]
#[template(path = "partners.html")]
struct PartnersPage {
    layout: Layout,
    q: String,
    statuses: Vec<Choice>,
    rows: Vec<PartnerRow>,
    total: usize,
}

#[derive(Default)]
pub(super) struct NewValues {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) country: String,
    pub(super) allow: String,
    pub(super) grant_other: String,
    pub(super) feature_defaults: String,
}

pub(super) struct OpChoice {
    pub(super) name: &'static str,
    pub(super) permission: &'static str,
    pub(super) checked: bool,
}

pub(super) struct DomainChoice {
    pub(super) wildcard: String,
    pub(super) wildcard_checked: bool,
    pub(super) ops: Vec<OpChoice>,
}

#[derive(Template)]
#[template(path = "partner_new.html")]
struct NewPartnerPage {
    layout: Layout,
    error: Option<String>,
    v: NewValues,
    groups: Vec<Choice>,
    domains: Vec<DomainChoice>,
}

struct RevealKey {
    id: &'static str,
    label: String,
    value: String,
}

struct RevealView {
    partner_id: String,
    href: String,
    message: String,
    keys: Vec<RevealKey>,
}

#[derive(Template)]
#[template(path = "reveal.html")]
struct RevealPage {
    layout: Layout,
    reveal: Option<RevealView>,
}

struct KeyRow {
    id: i64,
    kind: &'static str,
    prefix: String,
    state: &'static str,
    created: String,
    expires: String,
    last_used: String,
    usable: bool,
}

/// A registered client certificate or one of the client CA's, for the page.
struct CertRow {
    kind: &'static str,
    sha256: String,
    subject: String,
    not_after: String,
    state: &'static str,
}

struct MatrixOp {
    name: &'static str,
    permission: &'static str,
    exact: bool,
    via: String,
}

struct MatrixDomain {
    wildcard: String,
    wildcard_granted: bool,
    all: bool,
    ops: Vec<MatrixOp>,
}

struct PartnerData {
    id: String,
    id_query: String,
    href: String,
    name: String,
    status: &'static str,
    active: bool,
    /// Not offboarded: the record can still change.
    changeable: bool,
    /// Changeable, and by this operator (role operator or admin): the forms are shown.
    editable: bool,
    group: String,
    country: String,
    country_value: String,
    contact: String,
    contact_text: String,
    billing_rate: String,
    billing_rate_text: String,
    callback_url: String,
    callback_url_value: String,
    callback_ca: String,
    callback_ca_pem: String,
    feature_defaults: String,
    features: Vec<(String, String)>,
    rate: OwnRate,
    rate_note: String,
    /// The partner's own rate for callbacks to its BSS, beside the rate of its calls.
    callback_rate: OwnRate,
    callback_rate_note: String,
    keys: Vec<KeyRow>,
    /// Registered client certificates, then the client CA's; expiring ones are marked.
    client_certs: Vec<CertRow>,
    /// The subject the client CA's certificates must have; empty without a CA.
    client_subject: String,
    allow: Vec<String>,
    grants: Vec<String>,
    has_star: bool,
    matrix: Vec<MatrixDomain>,
    created: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "partner.html")]
struct PartnerPage {
    layout: Layout,
    p: PartnerData,
    groups: Vec<Choice>,
    /// The usage range (chosen from the data, at most 24 hours).
    range: &'static str,
    usage: usage::Report,
    audit: Vec<AuditRow>,
}

impl Dashboard {
    /// The empty create form.
    pub(super) async fn new_partner_form(&self, session: &Current) -> Result<Resp, Fail> {
        let groups = self.group_names().await?;
        Ok(self.new_partner_page(
            session,
            NewValues::default(),
            &[],
            "",
            groups,
            None,
            StatusCode::OK,
        ))
    }

    pub(super) async fn partners_page(
        &self,
        session: &Current,
        query: &Form,
    ) -> Result<Resp, Fail> {
        let admin = self.admin.clone();
        let now = crate::clock::unix_now();
        let (partners, keys, totals) = blocking(move || {
            let s = admin.store();
            Ok((
                s.list_partners()?,
                s.keys_by_partner()?,
                s.usage(now - 86_400, None)?,
            ))
        })
        .await?;
        let q = query.text("q").unwrap_or_default();
        let status = query.text("status").unwrap_or_default();
        let needle = q.to_lowercase();
        let total = partners.len();
        let mut rows = Vec::new();
        for p in partners {
            let cells: Vec<KeyCell> = keys
                .iter()
                .filter(|(id, k)| *id == p.partner_id && k.usable_at(now))
                .map(|(_, k)| {
                    let v = KeyView::new(k, now);
                    KeyCell {
                        prefix: v.prefix,
                        kind: v.kind,
                        state: v.state,
                        last_used: v.last_used_at.map_or_else(
                            || "never used".to_owned(),
                            |t| format!("used {}", utc(t)),
                        ),
                    }
                })
                .collect();
            let status_text = p.status.as_str();
            if !status.is_empty() && status != status_text {
                continue;
            }
            if !needle.is_empty() {
                let hay = [
                    p.partner_id.as_str(),
                    p.name.as_str(),
                    p.country.as_deref().unwrap_or(""),
                    p.group.as_deref().unwrap_or(""),
                    status_text,
                ];
                let hit = hay.iter().any(|h| h.to_lowercase().contains(&needle))
                    || cells
                        .iter()
                        .any(|c| c.prefix.to_lowercase().contains(&needle));
                if !hit {
                    continue;
                }
            }
            let [mut ok, mut upstream, mut refused] = [0; 3];
            for t in totals.iter().filter(|t| t.partner_id == p.partner_id) {
                *match usage::category(&t.outcome) {
                    usage::Category::Ok => &mut ok,
                    usage::Category::Upstream => &mut upstream,
                    usage::Category::Refused => &mut refused,
                } += t.count;
            }
            rows.push(PartnerRow {
                href: partner_href(&p.partner_id),
                id: p.partner_id,
                name: p.name,
                status: status_text,
                group: or_dash(p.group.as_deref()),
                country: or_dash(p.country.as_deref()),
                keys: cells,
                calls: ok + upstream + refused,
                ok,
                refused,
                upstream,
            });
        }
        let statuses = [
            ("", "any"),
            ("active", "active"),
            ("suspended", "suspended"),
            ("offboarded", "offboarded"),
        ]
        .iter()
        .map(|(v, l)| choice(v, l, *v == status))
        .collect();
        let page = PartnersPage {
            layout: Layout::new("Partners", "partners", session),
            q,
            statuses,
            rows,
            total,
        };
        Ok(html(StatusCode::OK, page.render()))
    }

    pub(super) async fn group_names(&self) -> Result<Vec<String>, Fail> {
        let admin = self.admin.clone();
        blocking(move || {
            Ok(admin
                .store()
                .list_groups()?
                .into_iter()
                .map(|g| g.name)
                .collect())
        })
        .await
    }

    #[allow(clippy::too_many_arguments, reason = "one page's inputs")]
    pub(super) fn new_partner_page(
        &self,
        session: &Current,
        v: NewValues,
        checked: &[String],
        group: &str,
        groups: Vec<String>,
        error: Option<String>,
        status: StatusCode,
    ) -> Resp {
        let page = NewPartnerPage {
            layout: Layout::new("New partner", "partners", session),
            error,
            v,
            groups: group_choices(groups, group),
            domains: domain_choices(checked),
        };
        html(status, page.render())
    }

    pub(super) async fn reveal_page(&self, session: &Current) -> Result<Resp, Fail> {
        let reveal = self
            .sessions
            .take_reveal(session)
            .await?
            .map(|r| RevealView {
                // An operator's password or token (`operators.rs`) goes back to the operators.
                href: match r.partner_id.strip_prefix(super::operators::REVEAL_PREFIX) {
                    Some(_) => "/ui/operators".to_owned(),
                    None => partner_href(&r.partner_id),
                },
                partner_id: r.partner_id,
                message: sentence(&r.message),
                keys: r
                    .keys
                    .into_iter()
                    .enumerate()
                    .map(|(i, (label, key))| RevealKey {
                        id: ["key-1", "key-2", "key-3"]
                            .get(i)
                            .copied()
                            .unwrap_or("key-n"),
                        label,
                        value: key.expose().to_owned(),
                    })
                    .collect(),
            });
        let page = RevealPage {
            layout: Layout::new("New keys", "partners", session),
            reveal,
        };
        Ok(html(StatusCode::OK, page.render()))
    }

    pub(super) async fn partner_page(
        &self,
        session: &Current,
        id: &str,
        peer: SocketAddr,
    ) -> Result<Resp, Fail> {
        let partner = id.to_owned();
        let now = crate::clock::unix_now();
        let (view, audit, groups, rows) = self
            .with_admin(session, peer, move |admin, rules, actor| {
                let view = show_partner(admin, rules, actor, partner.clone())?;
                let audit =
                    audit_rows(admin, rules, actor, Some(partner.clone()), PAGE_AUDIT_ROWS)?;
                let s = admin.store();
                let groups = s.list_groups()?;
                let since = usage::LONGEST_DEFAULT.since(now);
                let rows = s.usage_rows(since, Some(&partner), None)?;
                Ok((view, audit, groups, rows))
            })
            .await?;
        let range = usage::fitting(usage::oldest(&rows), now);
        let report = usage::report(&rows, range, now, "p");
        let group_choices = {
            let current = view.group.clone().unwrap_or_default();
            let mut c = vec![choice("", "no group", current.is_empty())];
            c.extend(
                groups
                    .iter()
                    .map(|g| choice(&g.name, &g.name, g.name == current)),
            );
            c
        };
        let mut p = partner_data(
            *view,
            &groups,
            self.default_rate,
            self.default_callback_rate,
        );
        p.editable = p.changeable && session.operator.role >= crate::store::Role::Operator;
        let page = PartnerPage {
            layout: Layout::new(format!("{} {}", p.id, p.name), "partners", session),
            p,
            range: range.label,
            groups: group_choices,
            usage: report,
            audit,
        };
        Ok(html(StatusCode::OK, page.render()))
    }
}

/// The permission checkboxes of a partner form (`templates/grants.html`), by domain, those in
/// `checked` (permissions, operation names or domain wildcards) ticked.
pub(super) fn domain_choices(checked: &[String]) -> Vec<DomainChoice> {
    let mut domains: Vec<DomainChoice> = Vec::new();
    for op in Operation::ALL {
        let permission = op.permission();
        let wildcard = format!("{}.*", domain_of(permission));
        let o = OpChoice {
            name: op.name(),
            permission,
            checked: checked.iter().any(|c| c == permission || c == op.name()),
        };
        match domains.iter_mut().find(|d| d.wildcard == wildcard) {
            Some(d) => d.ops.push(o),
            None => domains.push(DomainChoice {
                wildcard_checked: checked.contains(&wildcard),
                wildcard,
                ops: vec![o],
            }),
        }
    }
    domains
}

/// The grants of `grants` no checkbox stands for (`*`, unknown names): the "other grants" text.
pub(super) fn other_grants(grants: &[String]) -> String {
    let boxed = |g: &str| {
        Operation::ALL.iter().any(|op| {
            g == op.permission()
                || g == op.name()
                || g == format!("{}.*", domain_of(op.permission()))
        })
    };
    let others: Vec<&str> = grants
        .iter()
        .map(String::as_str)
        .filter(|g| !boxed(g))
        .collect();
    others.join(" ")
}

/// The group choice of a partner form: none, or one of `groups`, `group` selected.
pub(super) fn group_choices(groups: Vec<String>, group: &str) -> Vec<Choice> {
    let mut choices = vec![choice("", "no group", group.is_empty())];
    choices.extend(groups.iter().map(|g| choice(g, g, g == group)));
    choices
}

fn domain_of(permission: &str) -> &str {
    permission.split_once('.').map_or(permission, |(d, _)| d)
}

/// One partner as the admin service shows it (`partner show`); blocking.
pub(super) fn show_partner(
    admin: &Admin,
    rules: &Rules,
    actor: &Actor,
    partner: String,
) -> Result<Box<PartnerView>, Fail> {
    let View::Partner(view) = admin
        .handle(Request::ShowPartner { partner }, rules, actor)?
        .view
    else {
        return Err(unexpected());
    };
    Ok(view)
}

/// The partner page's data from the admin service's view.
fn partner_data(
    v: PartnerView,
    groups: &[GroupRecord],
    default_rate: Rate,
    default_callback_rate: Rate,
) -> PartnerData {
    let star = v.grants.iter().any(|g| g == "*");
    let mut matrix: Vec<MatrixDomain> = Vec::new();
    for op in Operation::ALL {
        let permission = op.permission();
        let wildcard = format!("{}.*", domain_of(permission));
        let wildcard_granted = v.grants.contains(&wildcard);
        let exact = v.grants.iter().any(|g| g == permission);
        let via = if exact {
            String::new()
        } else if wildcard_granted {
            wildcard.clone()
        } else if star {
            "*".to_owned()
        } else {
            String::new()
        };
        let o = MatrixOp {
            name: op.name(),
            permission,
            exact,
            via,
        };
        match matrix.iter_mut().find(|d| d.wildcard == wildcard) {
            Some(d) => d.ops.push(o),
            None => matrix.push(MatrixDomain {
                wildcard,
                wildcard_granted,
                all: star,
                ops: vec![o],
            }),
        }
    }
    let group = v
        .group
        .as_deref()
        .and_then(|g| groups.iter().find(|r| r.name == g));
    let rate_note = match (&v.rate, group) {
        (Some(_), _) => "The partner's own rate applies.".to_owned(),
        (None, Some(g)) if g.rate.is_some() => format!(
            "Group {}'s per-member rate applies: {}.",
            g.name,
            rate_text(g.rate)
        ),
        _ => format!(
            "The gateway's default rate applies: {} (throttle.default_rate_per_second, \
             throttle.default_burst).",
            rate_text(Some(default_rate))
        ),
    } + &group
        .and_then(|g| g.aggregate.map(|a| (g, a)))
        .map(|(g, a)| {
            format!(
                " Group {} caps its members together at {}.",
                g.name,
                rate_text(Some(a))
            )
        })
        .unwrap_or_default();
    let features = match &v.feature_defaults {
        Some(serde_json::Value::Object(m)) => m
            .iter()
            .map(|(k, val)| (k.clone(), val.to_string()))
            .collect(),
        _ => Vec::new(),
    };
    let ca_note = v.callback_ca_pem.as_ref().map(|pem| {
        let certs = pem.matches("-----BEGIN CERTIFICATE-----").count();
        format!("{certs} certificate(s) (PEM); else the system roots")
    });
    let client_certs = cert_rows(&v);
    let client_subject = v
        .client_ca
        .as_ref()
        .map(|ca| ca.subject.clone())
        .unwrap_or_default();
    PartnerData {
        id_query: encode(&v.partner_id),
        href: partner_href(&v.partner_id),
        name: v.name,
        status: v.status,
        active: v.status == "active",
        changeable: v.status != "offboarded",
        editable: false,
        group: or_dash(v.group.as_deref()),
        country: or_dash(v.country.as_deref()),
        country_value: v.country.clone().unwrap_or_default(),
        contact_text: or_dash(v.contact.as_deref()),
        billing_rate_text: or_dash(v.billing_rate.as_deref()),
        contact: v.contact.clone().unwrap_or_default(),
        billing_rate: v.billing_rate.clone().unwrap_or_default(),
        callback_url: or_dash(v.callback_url.as_deref()),
        callback_url_value: v.callback_url.clone().unwrap_or_default(),
        callback_ca: ca_note.unwrap_or_else(|| "- (the system roots)".to_owned()),
        callback_ca_pem: v.callback_ca_pem.clone().unwrap_or_default(),
        feature_defaults: v
            .feature_defaults
            .as_ref()
            .and_then(|f| serde_json::to_string_pretty(f).ok())
            .unwrap_or_default(),
        features,
        rate: OwnRate::new(v.rate.as_ref()),
        rate_note,
        callback_rate_note: if v.callback_rate.is_some() {
            "The partner's own callback rate applies.".to_owned()
        } else {
            format!(
                "The gateway's default callback rate applies: {} \
                 (callback.default_rate_per_second, callback.default_burst).",
                rate_text(Some(default_callback_rate))
            )
        },
        callback_rate: OwnRate::new(v.callback_rate.as_ref()),
        keys: v
            .keys
            .iter()
            .rev()
            .map(|k| KeyRow {
                id: k.id,
                kind: k.kind,
                prefix: k.prefix.clone(),
                state: k.state,
                created: utc(k.created_at),
                expires: match k.revoked_at {
                    Some(at) => format!("revoked {}", utc(at)),
                    None => time(k.expires_at),
                },
                last_used: time(k.last_used_at),
                usable: matches!(k.state, "active" | "expiring"),
            })
            .collect(),
        has_star: star,
        client_certs,
        client_subject,
        allow: v.allow,
        grants: v.grants,
        matrix,
        created: utc(v.created_at),
        updated: utc(v.updated_at),
        id: v.partner_id,
    }
}

/// The partner's client certificates, registered ones first, then its CA's.
fn cert_rows(v: &PartnerView) -> Vec<CertRow> {
    let row = |kind, c: &ClientCertView| CertRow {
        kind,
        sha256: c.sha256.clone(),
        subject: c.subject.clone(),
        not_after: utc(c.not_after),
        state: c.state,
    };
    let ca = v.client_ca.iter().flat_map(|ca| ca.ca_certs.iter());
    v.client_certs
        .iter()
        .map(|c| row("registered", c))
        .chain(ca.map(|c| row("CA", c)))
        .collect()
}

/// A partner's own rate (of its calls, or of the callbacks to its BSS) as the page shows it and
/// its form is filled.
struct OwnRate {
    /// `20/s, burst 40` or `none`.
    text: String,
    per_second: String,
    burst: String,
    set: bool,
}

impl OwnRate {
    fn new(rate: Option<&RateView>) -> OwnRate {
        OwnRate {
            text: rate.map_or_else(
                || "none".to_owned(),
                |r| format!("{}/s, burst {}", r.per_second, r.burst),
            ),
            per_second: rate.map(|r| r.per_second.to_string()).unwrap_or_default(),
            burst: rate.map(|r| r.burst.to_string()).unwrap_or_default(),
            set: rate.is_some(),
        }
    }
}
