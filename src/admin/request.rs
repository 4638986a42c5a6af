//! What an operator asks the admin service for, as typed (flags, JSON, forms): the
//! [`Request`] and its input structures, before validation ([`Request::check`](super::Request::check)).

use serde::{Deserialize, Deserializer};

pub use crate::store::Direction;

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
pub(super) fn some<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
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
    /// Enrollment requests, newest first (`status`: only those).
    ListEnrollments {
        /// `pending`, `approved`, `rejected` or `collected`.
        status: Option<String>,
    },
    /// One enrollment request.
    ShowEnrollment {
        /// `enr_…`.
        enrollment: String,
    },
    /// Approve a pending enrollment: the partner is created (its keys when it collects them).
    ApproveEnrollment {
        /// `enr_…`.
        enrollment: String,
        /// The operator's changes to the request.
        input: super::ApproveEnrollment,
    },
    /// Reject a pending enrollment with a reason the applicant reads.
    RejectEnrollment {
        /// `enr_…`.
        enrollment: String,
        /// The reason.
        input: super::RejectEnrollment,
    },
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
    /// Set (`Some`) or clear (`None`) a partner's own rate for its calls or for the callbacks
    /// to its BSS.
    PartnerThrottle {
        /// Partner id.
        partner: String,
        /// Which rate.
        direction: Direction,
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
    /// Every operator account (admin).
    ListOperators,
    /// A new operator account; its one-time password is in the reply, once.
    CreateOperator {
        /// Login name: `[a-z0-9][a-z0-9._-]{0,63}`.
        name: String,
        /// `viewer`, `operator` or `admin`.
        role: String,
    },
    /// Disable an account: its sessions end and its tokens are refused at once.
    DisableOperator {
        /// Login name.
        name: String,
    },
    /// Enable a disabled account again.
    EnableOperator {
        /// Login name.
        name: String,
    },
    /// A new one-time password (the old one and the account's sessions end).
    ResetPassword {
        /// Login name.
        name: String,
    },
    /// Give an account another role.
    SetRole {
        /// Login name.
        name: String,
        /// `viewer`, `operator` or `admin`.
        role: String,
    },
    /// A new API token for an operator, shown once.
    CreateToken {
        /// The operator's login name.
        operator: String,
        /// What it is for (up to 100 characters).
        label: Option<String>,
    },
    /// An operator's tokens (metadata only).
    ListTokens {
        /// The operator's login name.
        operator: String,
    },
    /// Revoke one of an operator's tokens.
    RevokeToken {
        /// The operator's login name.
        operator: String,
        /// The token's id, from the list.
        id: i64,
    },
}
