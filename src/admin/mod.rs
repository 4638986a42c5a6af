//! Partner lifecycle administration: one service layer behind the CLI
//! (`partnergate partner|key|allow|grant|group|throttle|audit …`), the admin HTTP API ([`http`])
//! and the operators' web dashboard ([`dashboard`]), so all validate alike and say the same
//! things.
//!
//! Not a request-path stage. The flow of one administrative operation:
//!
//! 1. a [`Request`]: what the operator asked for, as typed (text from flags or JSON);
//! 2. [`Request::check`]: validation without the database (so bad input fails before a database is
//!    opened, let alone created) → a [`Checked`] request with typed values;
//! 3. [`Admin::run`]: the store call — one transaction that bumps `meta.revision` first (every
//!    gateway node reloads its snapshot within `refresh_interval_ms`) and writes the change and
//!    its `audit_log` row (who, what, when) together — then a [`Reply`]: a sentence for people and
//!    a [`View`] that serializes to the JSON both `--json` and the API return.
//!
//! Keys appear only in the replies of `partner create` and `key rotate`; lists show key ids,
//! prefixes and dates, never a key or its hash.

mod reply;
pub use reply::*;
pub mod dashboard;
pub mod http;
pub mod text;
mod validate;

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::clock::unix_now;
use crate::generated::partner::Operation;
use crate::secret::{KeyKind, Secret};
use crate::store::{
    self, AuditRecord, GroupChanges, GroupRecord, KeyRecord, KeySelector, NewPartner, NodeRecord,
    PartnerChanges, PartnerDetail, PartnerRecord, Rate, StatusChange, Store, StoreError,
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

// === who ===

/// Who made a change, as recorded in `audit_log.actor`: `cli:<user>`, `api:<peer address>` or
/// `ui:<peer address>` (the web dashboard).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    /// The CLI's operator: `cli:$USER` when `USER` is a plain user name; without one, the
    /// process's user name from `/etc/passwd` — so root is `cli:root` whether `USER` is set or
    /// not — and `cli:uid:<uid>` only for a uid without a (plain) passwd entry.
    pub fn cli() -> Actor {
        use std::os::unix::fs::MetadataExt as _;
        let uid = std::fs::metadata("/proc/self").ok().map(|m| m.uid());
        let passwd = std::fs::read_to_string("/etc/passwd").ok();
        Actor::cli_from(std::env::var("USER").ok(), uid, passwd.as_deref())
    }

    fn cli_from(user: Option<String>, uid: Option<u32>, passwd: Option<&str>) -> Actor {
        let plain = |u: &str| {
            !u.is_empty()
                && u.len() <= 64
                && u.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        if let Some(user) = user.filter(|u| plain(u)) {
            return Actor(format!("cli:{user}"));
        }
        let Some(uid) = uid else {
            return Actor("cli:unknown".into());
        };
        // name:password:uid:…
        let name = passwd.and_then(|text| {
            text.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id = fields.nth(1)?;
                (id.parse::<u32>().ok() == Some(uid) && plain(name)).then(|| name.to_string())
            })
        });
        match name {
            Some(name) => Actor(format!("cli:{name}")),
            None => Actor(format!("cli:uid:{uid}")),
        }
    }

    /// A caller of the admin API, by its address.
    pub fn api(peer: SocketAddr) -> Actor {
        Actor(format!("api:{peer}"))
    }

    /// An operator of the web dashboard, by the browser's address.
    pub fn ui(peer: SocketAddr) -> Actor {
        Actor(format!("ui:{peer}"))
    }

    /// As stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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
    /// The database failed (HTTP 500); the change was rolled back.
    #[error("database: {0}")]
    Store(StoreError),
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

// === requests ===

/// Deployment rules that validation depends on.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Accept `http://` callback URLs (`callback.allow_http`); else only `https://`.
    pub allow_http_callbacks: bool,
    /// Networks a callback URL's IP address may be in although they are internal
    /// (`callback.allowed_networks`; see [`crate::callback::refused_target`]).
    pub callback_allowed_networks: Vec<ipnet::IpNet>,
}

/// A rate as typed: `{"per_second": 5, "burst": 10}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateInput {
    /// Sustained requests per second (at least 1).
    pub per_second: u64,
    /// Bucket size (at least 1).
    pub burst: u64,
}

/// `partner create` / `POST /admin/v1/partners`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePartner {
    /// Partner id; default `PARTNER-0001`, `-0002`, …
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    pub name: String,
    /// ISO 3166-1 alpha-2.
    #[serde(default)]
    pub country: Option<String>,
    /// An existing group.
    #[serde(default)]
    pub group: Option<String>,
    /// IP addresses or CIDRs (no host bits); at least one.
    pub allow: Vec<String>,
    /// `*`, `domain.*`, permissions (`accounts.create`) or WSDL operation names
    /// (`CreateAccount`); at least one.
    pub grants: Vec<String>,
    /// Feature defaults, keyed by feature code (checked against the contract).
    #[serde(default)]
    pub feature_defaults: Option<serde_json::Value>,
}

/// `partner update` / `PATCH /admin/v1/partners/{id}`: absent = unchanged, `null` = cleared.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatePartner {
    /// Display name (cannot be cleared).
    #[serde(default)]
    pub name: Option<String>,
    /// Contact (person, e-mail, phone), free text up to 500 characters.
    #[serde(default, deserialize_with = "some")]
    pub contact: Option<Option<String>>,
    /// `DECIMAL [CURRENCY[/UNIT]]`, e.g. `0.0125 EUR/min`.
    #[serde(default, deserialize_with = "some")]
    pub billing_rate: Option<Option<String>>,
    /// ISO 3166-1 alpha-2.
    #[serde(default, deserialize_with = "some")]
    pub country: Option<Option<String>>,
    /// An existing group.
    #[serde(default, deserialize_with = "some")]
    pub group: Option<Option<String>>,
    /// `https://…` (or `http://…` when `callback.allow_http`).
    #[serde(default, deserialize_with = "some")]
    pub callback_url: Option<Option<String>>,
    /// PEM certificate(s) that verify the partner's callback server.
    #[serde(default, deserialize_with = "some")]
    pub callback_ca_pem: Option<Option<String>>,
    /// Feature defaults (replace the stored ones as a whole).
    #[serde(default, deserialize_with = "some")]
    pub feature_defaults: Option<Option<serde_json::Value>>,
    /// Client certificates to register (PEM, one leaf certificate each).
    #[serde(default)]
    pub add_client_certs: Vec<String>,
    /// Registered client certificates to remove, by SHA-256 fingerprint.
    #[serde(default)]
    pub remove_client_certs: Vec<String>,
    /// The partner CA its client certificates chain to, with their subject; `null` clears.
    #[serde(default, deserialize_with = "some")]
    pub client_ca: Option<Option<ClientCaInput>>,
}

/// A partner CA (PEM) and the subject (`CN=…, O=…`) its client certificates must have.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCaInput {
    /// The CA certificate(s), PEM.
    pub ca_pem: String,
    /// The expected subject.
    pub subject: String,
}

/// A field that is present: `null` → `Some(None)`, a value → `Some(Some(v))` (absent fields
/// stay `None` through `#[serde(default)]`).
fn some<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `suspend` / `reinstate` / `offboard`: an optional reason for the audit log.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusInput {
    /// Why (up to 500 characters), recorded in the audit row.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `key rotate` / `POST …/keys/rotate`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateInput {
    /// `partner` (default) or `callback`.
    #[serde(default)]
    pub kind: Option<String>,
    /// How long the old keys stay valid: `0`, `90s`, `15m`, `24h` (default), `7d`, `1h30m`.
    #[serde(default)]
    pub overlap: Option<String>,
}

/// `key revoke` / `POST …/keys/revoke`: exactly one of `kind` and `id`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeInput {
    /// Every unrevoked key of this kind (`partner` or `callback`).
    #[serde(default)]
    pub kind: Option<String>,
    /// One key, by the id `key list` shows.
    #[serde(default)]
    pub id: Option<i64>,
}

/// `group create` / `POST /admin/v1/groups`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    /// `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
    pub name: String,
    /// Per-member rate for members without their own.
    #[serde(default)]
    pub rate: Option<RateInput>,
    /// Cap on the members' combined rate.
    #[serde(default)]
    pub aggregate: Option<RateInput>,
}

/// `group update`, `throttle set|clear --group` / `PATCH /admin/v1/groups/{name}`: absent =
/// unchanged, `null` = cleared.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    /// A new name (members follow).
    #[serde(default)]
    pub name: Option<String>,
    /// Per-member rate.
    #[serde(default, deserialize_with = "some")]
    pub rate: Option<Option<RateInput>>,
    /// Aggregate cap.
    #[serde(default, deserialize_with = "some")]
    pub aggregate: Option<Option<RateInput>>,
}

/// One administrative operation, as asked for.
#[derive(Clone, Debug)]
pub enum Request {
    /// Every partner.
    ListPartners,
    /// One partner with keys, allowlist, grants.
    ShowPartner {
        /// Partner id.
        partner: String,
    },
    /// Onboard a partner: its two keys are in the reply, once.
    CreatePartner(CreatePartner),
    /// Change details.
    UpdatePartner {
        /// Partner id.
        partner: String,
        /// The changes.
        update: UpdatePartner,
    },
    /// Active → suspended.
    Suspend {
        /// Partner id.
        partner: String,
        /// Reason.
        input: StatusInput,
    },
    /// Suspended → active.
    Reinstate {
        /// Partner id.
        partner: String,
        /// Reason.
        input: StatusInput,
    },
    /// → offboarded, every key revoked; final.
    Offboard {
        /// Partner id.
        partner: String,
        /// Reason.
        input: StatusInput,
    },
    /// Key metadata.
    ListKeys {
        /// Partner id.
        partner: String,
    },
    /// A new key; the old ones of the kind expire after the overlap.
    RotateKey {
        /// Partner id.
        partner: String,
        /// Kind and overlap.
        input: RotateInput,
    },
    /// Revoke keys now.
    RevokeKeys {
        /// Partner id.
        partner: String,
        /// Which.
        input: RevokeInput,
    },
    /// The allowlist.
    ListAllow {
        /// Partner id.
        partner: String,
    },
    /// Add an IP or CIDR.
    AddAllow {
        /// Partner id.
        partner: String,
        /// IP or CIDR.
        cidr: String,
    },
    /// Remove an IP or CIDR.
    RemoveAllow {
        /// Partner id.
        partner: String,
        /// IP or CIDR.
        cidr: String,
    },
    /// The grants.
    ListGrants {
        /// Partner id.
        partner: String,
    },
    /// Grant a permission, a domain wildcard, `*` or a WSDL operation name.
    AddGrant {
        /// Partner id.
        partner: String,
        /// As typed.
        permission: String,
    },
    /// Revoke a grant (as stored; a WSDL operation name is translated).
    RevokeGrant {
        /// Partner id.
        partner: String,
        /// As typed.
        permission: String,
    },
    /// Every group.
    ListGroups,
    /// One group with its members.
    ShowGroup {
        /// Group name.
        group: String,
    },
    /// A new group.
    CreateGroup(CreateGroup),
    /// Rename a group or change its rates.
    UpdateGroup {
        /// Group name.
        group: String,
        /// The changes.
        update: UpdateGroup,
    },
    /// Put a partner into a group, or none.
    AssignGroup {
        /// Partner id.
        partner: String,
        /// The group; `None`: no group.
        group: Option<String>,
    },
    /// Set (`Some`) or clear (`None`) a partner's own rate.
    PartnerThrottle {
        /// Partner id.
        partner: String,
        /// The rate.
        rate: Option<RateInput>,
    },
    /// The newest audit rows.
    ListAudit {
        /// Only rows about this target (a partner id or `group:<name>`).
        target: Option<String>,
        /// How many (1..=1000; default 50).
        limit: Option<u32>,
    },
    /// The gateway nodes sharing the database, from their heartbeats.
    ListNodes,
}

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
    PartnerThrottle(String, Option<Rate>),
    ListAudit(Option<String>, u32),
    ListNodes,
}

impl Checked {
    /// Whether running it changes data (and writes an audit row).
    pub fn is_change(&self) -> bool {
        !matches!(
            self.0,
            Op::ListPartners
                | Op::ShowPartner(_)
                | Op::ListKeys(_)
                | Op::ListAllow(_)
                | Op::ListGrants(_)
                | Op::ListGroups
                | Op::ShowGroup(_)
                | Op::ListAudit(..)
                | Op::ListNodes
        )
    }

    /// Whether it creates a resource (HTTP 201).
    pub fn creates(&self) -> bool {
        matches!(self.0, Op::CreatePartner(_) | Op::CreateGroup(..))
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
            Request::PartnerThrottle { partner, rate } => {
                Op::PartnerThrottle(partner, rate.map(|r| v::rate("rate", r)).transpose()?)
            }
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
    pub fn run(&self, request: Checked, actor: &Actor) -> Result<Reply, AdminError> {
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
            Op::PartnerThrottle(p, rate) => {
                s.set_partner_rate_as(who, &p, rate)?;
                let message = match rate {
                    Some(r) => format!(
                        "partner {p} throttled at {}/s, burst {}",
                        r.per_second, r.burst
                    ),
                    None => format!("partner {p} has no rate of its own now"),
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

#[cfg(test)]
mod actor_tests {
    use super::Actor;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        odd name:x:1001:1001::/home/odd:/bin/sh\n";

    /// One identity per operator: root is `cli:root` with `USER=root` and without `USER`
    /// (it used to be `cli:uid:0` then); `cli:uid:N` only when passwd has no plain name.
    #[test]
    fn the_cli_actor_is_the_same_with_and_without_user() {
        let with = Actor::cli_from(Some("root".into()), Some(0), Some(PASSWD));
        let without = Actor::cli_from(None, Some(0), Some(PASSWD));
        assert_eq!(with.as_str(), "cli:root");
        assert_eq!(without, with);
        let odd_user = Actor::cli_from(Some("a b".into()), Some(1), Some(PASSWD));
        assert_eq!(odd_user.as_str(), "cli:daemon");
        assert_eq!(
            Actor::cli_from(None, Some(1001), Some(PASSWD)).as_str(),
            "cli:uid:1001"
        );
        assert_eq!(
            Actor::cli_from(None, Some(4242), Some(PASSWD)).as_str(),
            "cli:uid:4242"
        );
        assert_eq!(Actor::cli_from(None, Some(0), None).as_str(), "cli:uid:0");
        assert_eq!(Actor::cli_from(None, None, None).as_str(), "cli:unknown");
        assert_eq!(
            Actor::cli_from(Some("tester".into()), Some(0), Some(PASSWD)).as_str(),
            "cli:tester"
        );
    }
}
