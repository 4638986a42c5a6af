//! Partner lifecycle administration: one service layer behind the CLI
//! (`partnergate partner|key|allow|grant|group|throttle|audit|operator …`), the admin HTTP API
//! ([`http`]) and the operators' web dashboard ([`dashboard`]), so all validate alike, say the
//! same things and allow the same roles the same operations (`role.rs`: the one table).
//!
//! Not a request-path stage. The flow of one administrative operation:
//!
//! 1. a [`Request`]: what the operator asked for, as typed (text from flags or JSON);
//! 2. [`Request::check`]: validation without the database (so bad input fails before a database is
//!    opened, let alone created) → a [`Checked`] request with typed values;
//! 3. [`Admin::run`]: the actor's role checked against the operation's ([`Checked::required_role`],
//!    403 below it), then the store call — one transaction that bumps `meta.revision` first (every
//!    gateway node reloads its snapshot within `refresh_interval_ms`) and writes the change and
//!    its `audit_log` row (who, what, when) together — then a [`Reply`]: a sentence for people and
//!    a [`View`] that serializes to the JSON both `--json` and the API return.
//!
//! Keys appear only in the replies of `partner create` and `key rotate`, operators' passwords
//! only in those of `operator create` and `reset-password`, API tokens only in that of `operator
//! token create`; lists show ids, prefixes and dates, never a secret or its hash.
//!
//! Files: `request.rs` (what is asked, as typed), `validate.rs`, `actor.rs` (who: the audit name
//! and the role), `role.rs` (who may do what), `operators.rs` (operator accounts and tokens),
//! `reply.rs` (the views), `text.rs` (the CLI's text).

mod actor;
mod enrollments;
mod operators;
mod reply;
mod request;
mod role;
pub use actor::{Actor, Via};
pub use enrollments::{
    prefilled, suggested_id, ApproveEnrollment, EnrollmentView, EnrollmentsView, RejectEnrollment,
};
pub use operators::{BootstrapView, OperatorView, OperatorsView, TokenCreatedView, TokensView};
pub use reply::*;
pub use request::*;
pub mod dashboard;
pub mod http;
pub mod text;
mod validate;

use std::time::Duration;

use serde::Serialize;

use self::enrollments::EnrollmentOp;
use self::operators::OperatorOp;
use self::request::some;

use crate::clock::unix_now;
use crate::generated::partner::Operation;
use crate::secret::{KeyKind, Secret};
use crate::store::{
    self, AuditRecord, GroupChanges, GroupRecord, KeyRecord, KeySelector, NewPartner, NodeRecord,
    OperatorIdentity, PartnerChanges, PartnerDetail, PartnerRecord, Rate, Role, StatusChange,
    Store, StoreError,
};

pub use validate::parse_duration;

/// Default overlap of a key rotation: old keys stay valid this long.
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// Longest accepted rotation overlap.
pub const MAX_OVERLAP: Duration = Duration::from_secs(90 * 24 * 3600);
pub use crate::secret::MIN_TOKEN_CHARS;
/// Audit rows returned when no limit is given.
pub const DEFAULT_AUDIT_ROWS: u32 = 50;

// === the admin token ===

pub use crate::secret::AdminToken;

// === errors ===

/// Why an administrative operation did nothing. Every variant means nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Input that can never succeed as given (a malformed CIDR, an unknown operation name or
    /// group, a bad country, …): HTTP 400.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The input field, as named in the API's JSON (`cidr`, `permission`, `country`, …).
        field: &'static str,
        /// Why, for the operator.
        reason: String,
    },
    /// The partner, group, key or entry named does not exist: HTTP 404.
    #[error("{what} {key} not found")]
    NotFound {
        /// What was looked for.
        what: &'static str,
        /// The name given.
        key: String,
    },
    /// The change contradicts the current state (exists already, already suspended, an
    /// offboarded partner, …): HTTP 409.
    #[error("{0}")]
    Conflict(String),
    /// The actor's role is below the operation's (HTTP 403); nothing was read or written.
    #[error("forbidden: this needs the {needed} role (you have {role})")]
    Forbidden {
        /// The actor's role.
        role: Role,
        /// The lowest role that may.
        needed: Role,
    },
    /// The database failed (HTTP 500); the change was rolled back.
    #[error("database: {0}")]
    Store(StoreError),
    /// Something that is not the input's fault failed (hashing a password): HTTP 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid { field, reason } => AdminError::Invalid { field, reason },
            StoreError::NotFound { what, key } => AdminError::NotFound { what, key },
            StoreError::Conflict(message) => AdminError::Conflict(message),
            other => AdminError::Store(other),
        }
    }
}

impl AdminError {
    /// The input field at fault, if any.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            AdminError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    fn invalid(field: &'static str, reason: impl Into<String>) -> AdminError {
        AdminError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

// === checked requests ===

/// A [`Request`] whose input passed validation: ready for [`Admin::run`].
#[derive(Clone, Debug)]
pub struct Checked(Op);

#[derive(Clone, Debug)]
enum Op {
    ListPartners,
    ShowPartner(String),
    CreatePartner(NewPartner),
    UpdatePartner(String, PartnerChanges),
    Status(String, StatusChange, Option<String>),
    ListKeys(String),
    RotateKey(String, KeyKind, Duration),
    RevokeKeys(String, KeySelector),
    ListAllow(String),
    AddAllow(String, ipnet::IpNet),
    RemoveAllow(String, ipnet::IpNet),
    ListGrants(String),
    AddGrant(String, String),
    RevokeGrant(String, String),
    ListGroups,
    ShowGroup(String),
    CreateGroup(String, Option<Rate>, Option<Rate>),
    UpdateGroup(String, GroupChanges),
    AssignGroup(String, Option<String>),
    PartnerThrottle(String, Direction, Option<Rate>),
    ListAudit(Option<String>, u32),
    ListNodes,
    Operators(OperatorOp),
    Enrollments(EnrollmentOp),
}

impl Checked {
    /// Whether running it changes data (and writes an audit row): every read of partner data
    /// is a viewer's and every change of it needs more (`role.rs`), so the role table says it;
    /// the operator operations, all an admin's, say it themselves.
    pub fn is_change(&self) -> bool {
        match &self.0 {
            Op::Operators(o) => o.is_change(),
            _ => self.required_role() > Role::Viewer,
        }
    }

    /// Whether it creates a resource (HTTP 201).
    pub fn creates(&self) -> bool {
        match &self.0 {
            Op::Operators(o) => o.creates(),
            op => matches!(op, Op::CreatePartner(_) | Op::CreateGroup(..)),
        }
    }
}

/// Every operation's permission (what grants are checked against).
pub fn known_permissions() -> Vec<&'static str> {
    Operation::ALL.iter().map(|o| o.permission()).collect()
}

impl Request {
    /// Validates everything that can be validated without the database; the same checks and
    /// messages for the CLI and the API.
    pub fn check(self, rules: &Rules) -> Result<Checked, AdminError> {
        use validate as v;
        let op = match self {
            Request::ListPartners => Op::ListPartners,
            Request::ShowPartner { partner } => Op::ShowPartner(partner),
            Request::CreatePartner(c) => Op::CreatePartner(v::new_partner(c)?),
            Request::UpdatePartner { partner, update } => {
                Op::UpdatePartner(partner, v::partner_changes(update, rules)?)
            }
            Request::Suspend { partner, input } => {
                Op::Status(partner, StatusChange::Suspend, v::reason(input)?)
            }
            Request::Reinstate { partner, input } => {
                Op::Status(partner, StatusChange::Reinstate, v::reason(input)?)
            }
            Request::Offboard { partner, input } => {
                Op::Status(partner, StatusChange::Offboard, v::reason(input)?)
            }
            Request::ListKeys { partner } => Op::ListKeys(partner),
            Request::RotateKey { partner, input } => {
                let kind = input
                    .kind
                    .as_deref()
                    .map_or(Ok(KeyKind::Partner), v::key_kind)?;
                let overlap = input
                    .overlap
                    .as_deref()
                    .map_or(Ok(DEFAULT_OVERLAP), v::overlap)?;
                Op::RotateKey(partner, kind, overlap)
            }
            Request::RevokeKeys { partner, input } => {
                let selector = match (input.kind, input.id) {
                    (Some(kind), None) => KeySelector::Kind(v::key_kind(&kind)?),
                    (None, Some(id)) => KeySelector::Id(id),
                    _ => {
                        return Err(AdminError::invalid(
                            "kind",
                            "give either a key kind (partner or callback) or a key id",
                        ))
                    }
                };
                Op::RevokeKeys(partner, selector)
            }
            Request::ListAllow { partner } => Op::ListAllow(partner),
            Request::AddAllow { partner, cidr } => Op::AddAllow(partner, v::net("cidr", &cidr)?),
            Request::RemoveAllow { partner, cidr } => {
                Op::RemoveAllow(partner, v::net("cidr", &cidr)?)
            }
            Request::ListGrants { partner } => Op::ListGrants(partner),
            Request::AddGrant {
                partner,
                permission,
            } => Op::AddGrant(partner, v::permission("permission", &permission)?),
            Request::RevokeGrant {
                partner,
                permission,
            } => Op::RevokeGrant(partner, v::permission("permission", &permission)?),
            Request::ListGroups => Op::ListGroups,
            Request::ShowGroup { group } => Op::ShowGroup(group),
            Request::CreateGroup(g) => {
                v::group_name("name", &g.name)?;
                Op::CreateGroup(
                    g.name,
                    g.rate.map(|r| v::rate("rate", r)).transpose()?,
                    g.aggregate.map(|r| v::rate("aggregate", r)).transpose()?,
                )
            }
            Request::UpdateGroup { group, update } => {
                Op::UpdateGroup(group, v::group_changes(update)?)
            }
            Request::AssignGroup { partner, group } => {
                if let Some(g) = &group {
                    v::group_name("group", g)?;
                }
                Op::AssignGroup(partner, group)
            }
            Request::PartnerThrottle {
                partner,
                direction,
                rate,
            } => Op::PartnerThrottle(
                partner,
                direction,
                rate.map(|r| v::rate(direction.rate_field(), r))
                    .transpose()?,
            ),
            Request::ListAudit { target, limit } => {
                let limit = limit.unwrap_or(DEFAULT_AUDIT_ROWS);
                let max = u32::try_from(store::MAX_AUDIT_ROWS).unwrap_or(u32::MAX);
                if limit == 0 || limit > max {
                    return Err(AdminError::invalid(
                        "limit",
                        format!("must be 1..{max}, not {limit}"),
                    ));
                }
                Op::ListAudit(target, limit)
            }
            Request::ListNodes => Op::ListNodes,
            Request::ListOperators => Op::Operators(OperatorOp::List),
            Request::CreateOperator { name, role } => Op::Operators(OperatorOp::Create(
                operators::name("name", &name)?,
                operators::role(&role)?,
            )),
            Request::DisableOperator { name } => Op::Operators(OperatorOp::SetDisabled(name, true)),
            Request::EnableOperator { name } => Op::Operators(OperatorOp::SetDisabled(name, false)),
            Request::ResetPassword { name } => Op::Operators(OperatorOp::ResetPassword(name)),
            Request::SetRole { name, role } => {
                Op::Operators(OperatorOp::SetRole(name, operators::role(&role)?))
            }
            Request::CreateToken { operator, label } => {
                Op::Operators(OperatorOp::CreateToken(operator, operators::label(label)?))
            }
            Request::ListTokens { operator } => Op::Operators(OperatorOp::ListTokens(operator)),
            Request::RevokeToken { operator, id } => {
                Op::Operators(OperatorOp::RevokeToken(operator, id))
            }
            Request::ListEnrollments { status } => Op::Enrollments(EnrollmentOp::List(
                status.as_deref().map(enrollments::state).transpose()?,
            )),
            Request::ShowEnrollment { enrollment } => {
                Op::Enrollments(EnrollmentOp::Show(enrollment))
            }
            Request::ApproveEnrollment { enrollment, input } => {
                Op::Enrollments(enrollments::approve(enrollment, input, rules)?)
            }
            Request::RejectEnrollment { enrollment, input } => {
                Op::Enrollments(enrollments::reject(enrollment, input)?)
            }
        };
        Ok(Checked(op))
    }
}

// === the service ===

/// The administrative operations on one database (blocking: async callers use
/// `spawn_blocking`).
#[derive(Clone, Debug)]
pub struct Admin {
    store: Store,
}

impl Admin {
    /// Operations on `store`.
    pub fn new(store: Store) -> Admin {
        Admin { store }
    }

    /// The database (the dashboard reads usage statistics and key metadata from it directly;
    /// every change still goes through [`Admin::run`]).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs a checked request on behalf of `actor`: one transaction for a change (its audit row
    /// and the revision bump included), then the resulting state.
    ///
    /// Refused with [`AdminError::Forbidden`] before anything is read when the actor's role is
    /// below the request's ([`Checked::required_role`]).
    pub fn run(&self, request: Checked, actor: &Actor) -> Result<Reply, AdminError> {
        let needed = request.required_role();
        if actor.role() < needed {
            return Err(AdminError::Forbidden {
                role: actor.role(),
                needed,
            });
        }
        let s = &self.store;
        let who = actor.as_str();
        let now = unix_now();
        let reply = |message: String, view: View| Ok(Reply { message, view });
        let show = |partner: &str, message: String| -> Result<Reply, AdminError> {
            let detail = s.partner_detail(partner)?;
            reply(message, View::Partner(Box::new(partner_view(detail, now))))
        };
        match request.0 {
            Op::ListPartners => {
                let partners: Vec<_> = s.list_partners()?.into_iter().map(summary).collect();
                reply(
                    format!("{} partners", partners.len()),
                    View::Partners(PartnersView { partners }),
                )
            }
            Op::ShowPartner(p) => show(&p, format!("partner {p}")),
            Op::CreatePartner(new) => {
                let created = s.create_partner_as(who, new, &known_permissions())?;
                reply(
                    format!("partner {} created", created.partner_id),
                    View::Created(CreatedView {
                        api_key: created.api_key,
                        callback_key: created.callback_key,
                        partner_id: created.partner_id,
                    }),
                )
            }
            Op::UpdatePartner(p, changes) => {
                s.update_partner(who, &p, &changes)?;
                show(&p, format!("partner {p} updated"))
            }
            Op::Status(p, change, reason) => {
                let revoked = s.change_status(who, &p, change, reason.as_deref())?;
                let message = match change {
                    StatusChange::Suspend => format!("partner {p} suspended"),
                    StatusChange::Reinstate => format!("partner {p} reinstated"),
                    StatusChange::Offboard => format!(
                        "partner {p} offboarded; {} key(s) revoked; its records are kept",
                        revoked.len()
                    ),
                };
                show(&p, message)
            }
            Op::ListKeys(p) => {
                let keys = s.list_keys(&p)?;
                reply(
                    format!("{} keys of {p}", keys.len()),
                    View::Keys(KeysView {
                        keys: keys.iter().map(|k| KeyView::new(k, now)).collect(),
                        partner_id: p,
                    }),
                )
            }
            Op::RotateKey(p, kind, overlap) => {
                let secs = i64::try_from(overlap.as_secs()).unwrap_or(i64::MAX);
                let rotated = s.rotate_key(who, &p, kind, secs)?;
                let message = if rotated.expiring.is_empty() {
                    format!("new {kind} key for {p}")
                } else if secs == 0 {
                    format!(
                        "new {kind} key for {p}; {} old key(s) expired now",
                        rotated.expiring.len()
                    )
                } else {
                    format!(
                        "new {kind} key for {p}; {} old key(s) stay valid until {}",
                        rotated.expiring.len(),
                        text::utc(now.saturating_add(secs))
                    )
                };
                reply(
                    message,
                    View::Rotated(RotatedView {
                        key: rotated.key,
                        new_key: KeyView::new(&rotated.record, now),
                        expiring: rotated
                            .expiring
                            .iter()
                            .map(|k| KeyView::new(k, now))
                            .collect(),
                        partner_id: p,
                    }),
                )
            }
            Op::RevokeKeys(p, selector) => {
                let revoked = s.revoke_keys(who, &p, selector)?;
                reply(
                    format!("{} key(s) of {p} revoked", revoked.len()),
                    View::Revoked(RevokedView {
                        revoked: revoked.iter().map(|k| KeyView::new(k, now)).collect(),
                        partner_id: p,
                    }),
                )
            }
            Op::ListAllow(p) => {
                let allow = s.list_allow(&p)?;
                reply(
                    format!("allowlist of {p}"),
                    View::Allow(AllowView {
                        partner_id: p,
                        allow,
                    }),
                )
            }
            Op::AddAllow(p, net) => {
                s.add_allow(who, &p, net)?;
                let allow = s.list_allow(&p)?;
                reply(
                    format!("{net} added to the allowlist of {p}"),
                    View::Allow(AllowView {
                        partner_id: p,
                        allow,
                    }),
                )
            }
            Op::RemoveAllow(p, net) => {
                s.remove_allow(who, &p, net)?;
                let allow = s.list_allow(&p)?;
                reply(
                    format!("{net} removed from the allowlist of {p}"),
                    View::Allow(AllowView {
                        partner_id: p,
                        allow,
                    }),
                )
            }
            Op::ListGrants(p) => {
                let grants = s.list_grants(&p)?;
                reply(
                    format!("grants of {p}"),
                    View::Grants(GrantsView {
                        partner_id: p,
                        grants,
                    }),
                )
            }
            Op::AddGrant(p, permission) => {
                s.add_grant(who, &p, &permission)?;
                let grants = s.list_grants(&p)?;
                reply(
                    format!("{permission} granted to {p}"),
                    View::Grants(GrantsView {
                        partner_id: p,
                        grants,
                    }),
                )
            }
            Op::RevokeGrant(p, permission) => {
                s.remove_grant(who, &p, &permission)?;
                let grants = s.list_grants(&p)?;
                reply(
                    format!("{permission} revoked from {p}"),
                    View::Grants(GrantsView {
                        partner_id: p,
                        grants,
                    }),
                )
            }
            Op::ListGroups => {
                let groups: Vec<GroupView> =
                    s.list_groups()?.into_iter().map(GroupView::from).collect();
                reply(
                    format!("{} groups", groups.len()),
                    View::Groups(GroupsView { groups }),
                )
            }
            Op::ShowGroup(g) => reply(
                format!("group {g}"),
                View::Group(s.group_detail(&g)?.into()),
            ),
            Op::CreateGroup(g, rate, aggregate) => {
                s.create_group_as(who, &g, rate, aggregate)?;
                reply(
                    format!("group {g} created"),
                    View::Group(s.group_detail(&g)?.into()),
                )
            }
            Op::UpdateGroup(g, changes) => {
                let name = s.update_group(who, &g, &changes)?;
                let message = if name == g {
                    format!("group {g} updated")
                } else {
                    format!("group {g} renamed to {name}")
                };
                reply(message, View::Group(s.group_detail(&name)?.into()))
            }
            Op::AssignGroup(p, g) => {
                s.assign_group(who, &p, g.as_deref())?;
                let message = match &g {
                    Some(g) => format!("partner {p} is now in group {g}"),
                    None => format!("partner {p} is now in no group"),
                };
                show(&p, message)
            }
            Op::PartnerThrottle(p, direction, rate) => {
                s.set_partner_rate_as(who, &p, direction, rate)?;
                let message = match (direction, rate) {
                    (Direction::Inbound, Some(r)) => format!(
                        "partner {p} throttled at {}/s, burst {}",
                        r.per_second, r.burst
                    ),
                    (Direction::Inbound, None) => {
                        format!("partner {p} has no rate of its own now")
                    }
                    (Direction::Callback, Some(r)) => format!(
                        "callbacks to partner {p} throttled at {}/s, burst {}",
                        r.per_second, r.burst
                    ),
                    (Direction::Callback, None) => {
                        format!(
                            "partner {p} has no callback rate of its own now (the default applies)"
                        )
                    }
                };
                show(&p, message)
            }
            Op::ListAudit(target, limit) => {
                let entries: Vec<AuditEntry> = s.audit_log(target.as_deref(), i64::from(limit))?;
                reply(
                    format!("{} audit entries", entries.len()),
                    View::Audit(AuditView { entries }),
                )
            }
            Op::Operators(op) => operators::run(s, op, actor),
            Op::Enrollments(op) => enrollments::run(s, op, actor),
            Op::ListNodes => {
                let nodes: Vec<NodeView> =
                    s.list_nodes()?.into_iter().map(NodeView::from).collect();
                let up = nodes.iter().filter(|n| n.state == "up").count();
                reply(
                    format!("{} nodes, {up} up", nodes.len()),
                    View::Nodes(NodesView {
                        heartbeat_seconds: store::HEARTBEAT_INTERVAL.as_secs(),
                        gone_after_seconds: store::GONE_AFTER.as_secs(),
                        forget_after_seconds: store::FORGET_AFTER.as_secs(),
                        nodes,
                    }),
                )
            }
        }
    }

    /// The enabled operator holding the API token `presented` (`pgo_…`), if any: SHA-256 of it
    /// compared in constant time with the stored hashes of the tokens with its prefix. The
    /// token is never logged.
    pub fn operator_by_token(
        &self,
        presented: &str,
    ) -> Result<Option<OperatorIdentity>, AdminError> {
        let shaped = presented.len() == 68
            && presented.starts_with(crate::secret::OPERATOR_TOKEN_PREFIX)
            && presented
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !shaped {
            return Ok(None);
        }
        let prefix = crate::secret::display_prefix(presented);
        Ok(self
            .store
            .operator_by_token(&prefix, &crate::secret::hash(presented))?)
    }

    /// Makes the first admin operator `name` (its password and first API token in the reply,
    /// once), for the holder of the shared admin token; refused (409) once an admin account
    /// exists. The bootstrap token's only use.
    pub fn bootstrap(&self, name: &str, actor: &Actor) -> Result<Reply, AdminError> {
        operators::bootstrap(&self.store, name, actor)
    }

    /// [`Request::check`] and [`Admin::run`] in one.
    pub fn handle(
        &self,
        request: Request,
        rules: &Rules,
        actor: &Actor,
    ) -> Result<Reply, AdminError> {
        self.run(request.check(rules)?, actor)
    }
}
