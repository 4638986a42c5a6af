//! What the admin operations answer: the views (partners, keys, groups, audit rows, nodes) the CLI
//! prints, the API sends as JSON and the dashboard renders, and the reply that carries them.
//! Uses the store's records and the request types of `super`.

use super::*;

/// What an operation returns: a sentence for people and the data.
#[derive(Debug)]
pub struct Reply {
    /// One line: what was done (writes) or what is shown (reads).
    pub message: String,
    /// The data; its JSON is what `--json` prints and the API returns.
    pub view: View,
}

/// The data of a [`Reply`]; serializes to the JSON of the CLI's `--json` and the API.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum View {
    /// `{"partners": [...]}`.
    Partners(PartnersView),
    /// One partner.
    Partner(Box<PartnerView>),
    /// A new partner and its keys (shown once).
    Created(CreatedView),
    /// `{"partner_id", "keys": [...]}`.
    Keys(KeysView),
    /// A new key (shown once) and the keys it replaces.
    Rotated(RotatedView),
    /// `{"partner_id", "revoked": [...]}`.
    Revoked(RevokedView),
    /// `{"partner_id", "allow": [...]}`.
    Allow(AllowView),
    /// `{"partner_id", "grants": [...]}`.
    Grants(GrantsView),
    /// `{"groups": [...]}`.
    Groups(GroupsView),
    /// One group.
    Group(GroupView),
    /// `{"entries": [...]}`, newest first.
    Audit(AuditView),
    /// `{"heartbeat_seconds", "gone_after_seconds", "nodes": [...]}`.
    Nodes(NodesView),
    /// `{"operators": [...]}`.
    Operators(OperatorsView),
    /// One operator account (with its new password, once).
    Operator(OperatorView),
    /// `{"operator", "tokens": [...]}`.
    Tokens(TokensView),
    /// A new API token (shown once).
    TokenCreated(TokenCreatedView),
    /// The first admin, its password and token (shown once).
    Bootstrap(BootstrapView),
    /// `{"enrollments": [...]}`.
    Enrollments(super::EnrollmentsView),
    /// One enrollment request.
    Enrollment(Box<super::EnrollmentView>),
}

/// A rate in JSON.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct RateView {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Bucket size.
    pub burst: u32,
}

impl From<Rate> for RateView {
    fn from(r: Rate) -> Self {
        RateView {
            per_second: r.per_second.get(),
            burst: r.burst.get(),
        }
    }
}

/// A partner in a list.
#[derive(Debug, Serialize)]
pub struct PartnerSummary {
    /// Partner id.
    pub partner_id: String,
    /// Display name.
    pub name: String,
    /// `active`, `suspended` or `offboarded`.
    pub status: &'static str,
    /// Country.
    pub country: Option<String>,
    /// Group.
    pub group: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// `{"partners": [...]}`.
#[derive(Debug, Serialize)]
pub struct PartnersView {
    /// By partner id.
    pub partners: Vec<PartnerSummary>,
}

/// One partner with everything but key material.
#[derive(Debug, Serialize)]
pub struct PartnerView {
    /// Partner id.
    pub partner_id: String,
    /// Display name.
    pub name: String,
    /// `active`, `suspended` or `offboarded`.
    pub status: &'static str,
    /// Country.
    pub country: Option<String>,
    /// Group.
    pub group: Option<String>,
    /// Contact.
    pub contact: Option<String>,
    /// Billing rate.
    pub billing_rate: Option<String>,
    /// Callback URL.
    pub callback_url: Option<String>,
    /// Callback CA (PEM).
    pub callback_ca_pem: Option<String>,
    /// Feature defaults.
    pub feature_defaults: Option<serde_json::Value>,
    /// The partner's own rate.
    pub rate: Option<RateView>,
    /// The partner's own rate for callbacks to its BSS (`null`: the callback default).
    pub callback_rate: Option<RateView>,
    /// Allowlist.
    pub allow: Vec<String>,
    /// Grants.
    pub grants: Vec<String>,
    /// Key metadata.
    pub keys: Vec<KeyView>,
    /// Registered client certificates (mutual TLS), oldest first.
    pub client_certs: Vec<ClientCertView>,
    /// The client CA and the subject its certificates must have.
    pub client_ca: Option<ClientCaView>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// A registered client certificate (or one of a client CA's certificates).
#[derive(Debug, Serialize)]
pub struct ClientCertView {
    /// SHA-256 of the DER, 64 lower-case hex digits (`--remove-client-cert` takes it).
    pub sha256: String,
    /// `CN=…, O=…`.
    pub subject: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// `valid`, `expiring` (within 30 days), `expired` or `not-yet-valid`.
    pub state: &'static str,
}

/// A partner's client CA.
#[derive(Debug, Serialize)]
pub struct ClientCaView {
    /// The subject the CA's certificates must have.
    pub subject: String,
    /// The CA certificate(s).
    pub ca_certs: Vec<ClientCertView>,
}

impl ClientCertView {
    fn new(sha256: String, subject: String, not_before: i64, not_after: i64, now: i64) -> Self {
        ClientCertView {
            state: crate::certificate::validity_state(not_before, not_after, now),
            sha256,
            subject,
            not_before,
            not_after,
        }
    }
}

fn client_ca_view(ca: crate::store::ClientCaRecord, now: i64) -> ClientCaView {
    let ca_certs = crate::certificate::pem_certs(&ca.ca_pem)
        .unwrap_or_default()
        .iter()
        .filter_map(|der| crate::certificate::describe(der).ok())
        .map(|i| {
            let sha256 = crate::certificate::fingerprint_hex(&i.sha256);
            ClientCertView::new(sha256, i.subject, i.not_before, i.not_after, now)
        })
        .collect();
    ClientCaView {
        subject: ca.subject,
        ca_certs,
    }
}

/// A key's metadata; never the key or its hash.
#[derive(Debug, Serialize)]
pub struct KeyView {
    /// Key id (for `key revoke --id`).
    pub id: i64,
    /// `partner` or `callback`.
    pub kind: &'static str,
    /// Display prefix, e.g. `pgk_1a2b`.
    pub prefix: String,
    /// `active`, `expiring` (valid, with an expiry), `expired` or `revoked`.
    pub state: &'static str,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    /// Unix seconds.
    pub revoked_at: Option<i64>,
    /// Unix seconds.
    pub last_used_at: Option<i64>,
}

impl KeyView {
    pub(super) fn new(k: &KeyRecord, now: i64) -> KeyView {
        let state = match (k.revoked_at, k.expires_at) {
            (Some(_), _) => "revoked",
            (None, Some(at)) if at <= now => "expired",
            (None, Some(_)) => "expiring",
            (None, None) => "active",
        };
        KeyView {
            id: k.id,
            kind: k.kind.as_str(),
            prefix: k.prefix.clone(),
            state,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// Serializes a key as its text: the only way keys leave a [`View`] (their `Debug` is redacted).
fn expose<S: serde::Serializer>(key: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(key.expose())
}

/// A new partner's id and keys (the fields and their order are `partner create --json`'s).
#[derive(Debug, Serialize)]
pub struct CreatedView {
    /// The partner key.
    #[serde(serialize_with = "expose")]
    pub api_key: Secret,
    /// The callback key.
    #[serde(serialize_with = "expose")]
    pub callback_key: Secret,
    /// The partner id.
    pub partner_id: String,
}

/// `{"partner_id", "keys": [...]}`.
#[derive(Debug, Serialize)]
pub struct KeysView {
    /// Partner id.
    pub partner_id: String,
    /// Oldest first.
    pub keys: Vec<KeyView>,
}

/// A rotation: the new key (shown once) and the keys that now expire.
#[derive(Debug, Serialize)]
pub struct RotatedView {
    /// Partner id.
    pub partner_id: String,
    /// The new key.
    #[serde(serialize_with = "expose")]
    pub key: Secret,
    /// Its metadata.
    pub new_key: KeyView,
    /// The previously valid keys of the kind, with their expiry.
    pub expiring: Vec<KeyView>,
}

/// Revoked keys.
#[derive(Debug, Serialize)]
pub struct RevokedView {
    /// Partner id.
    pub partner_id: String,
    /// The keys revoked now.
    pub revoked: Vec<KeyView>,
}

/// An allowlist.
#[derive(Debug, Serialize)]
pub struct AllowView {
    /// Partner id.
    pub partner_id: String,
    /// Networks, oldest first.
    pub allow: Vec<String>,
}

/// Grants.
#[derive(Debug, Serialize)]
pub struct GrantsView {
    /// Partner id.
    pub partner_id: String,
    /// Permissions, oldest first.
    pub grants: Vec<String>,
}

/// A group.
#[derive(Debug, Serialize)]
pub struct GroupView {
    /// Name.
    pub name: String,
    /// Per-member rate.
    pub rate: Option<RateView>,
    /// Aggregate cap.
    pub aggregate: Option<RateView>,
    /// Partner ids.
    pub members: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<GroupRecord> for GroupView {
    fn from(g: GroupRecord) -> Self {
        GroupView {
            name: g.name,
            rate: g.rate.map(RateView::from),
            aggregate: g.aggregate.map(RateView::from),
            members: g.members,
            created_at: g.created_at,
        }
    }
}

/// `{"groups": [...]}`.
#[derive(Debug, Serialize)]
pub struct GroupsView {
    /// By name.
    pub groups: Vec<GroupView>,
}

/// One audit row, as the store reads it (serialized as is for `--json` and the API).
pub type AuditEntry = AuditRecord;

/// `{"entries": [...]}`.
#[derive(Debug, Serialize)]
pub struct AuditView {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
}

/// One gateway node, from its last heartbeat.
#[derive(Debug, Serialize)]
pub struct NodeView {
    /// Random per process start (`n-` and 16 hex digits).
    pub node_id: String,
    /// The partner listener's bound address.
    pub listen: String,
    /// The binary's version.
    pub version: String,
    /// Unix seconds (the node's clock).
    pub started_at: i64,
    /// The revision of the partner snapshot it had in force.
    pub revision: i64,
    /// Requests answered per second over its last heartbeat interval.
    pub requests_per_second: f64,
    /// Requests answered since its start.
    pub requests_total: i64,
    /// `push` (notified of changes) or `poll` (SQLite, or its notification connection is down).
    pub changes: &'static str,
    /// Its last heartbeat, unix milliseconds (the database's clock).
    pub last_seen_ms: i64,
    /// How long ago that was, in milliseconds, when this was read.
    pub silent_ms: i64,
    /// `up`, or `gone` when silent for longer than `gone_after_seconds`.
    pub state: &'static str,
}

impl From<NodeRecord> for NodeView {
    fn from(n: NodeRecord) -> Self {
        let state = if n.gone() { "gone" } else { "up" };
        NodeView {
            node_id: n.beat.node_id,
            listen: n.beat.listen,
            version: n.beat.version,
            started_at: n.beat.started_at,
            revision: n.beat.revision,
            requests_per_second: n.beat.requests_per_second,
            requests_total: n.beat.requests_total,
            changes: if n.beat.push_connected {
                "push"
            } else {
                "poll"
            },
            last_seen_ms: n.last_seen_ms,
            silent_ms: n.silent_ms,
            state,
        }
    }
}

/// The nodes and the rules their state follows.
#[derive(Debug, Serialize)]
pub struct NodesView {
    /// How often a node writes its heartbeat.
    pub heartbeat_seconds: u64,
    /// A node silent for longer than this is `gone`.
    pub gone_after_seconds: u64,
    /// Rows of nodes silent for longer than this are deleted.
    pub forget_after_seconds: u64,
    /// The longest-running first.
    pub nodes: Vec<NodeView>,
}

pub(super) fn summary(p: PartnerRecord) -> PartnerSummary {
    PartnerSummary {
        status: p.status.as_str(),
        partner_id: p.partner_id,
        name: p.name,
        country: p.country,
        group: p.group,
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

pub(super) fn partner_view(d: PartnerDetail, now: i64) -> PartnerView {
    let p = d.partner;
    PartnerView {
        status: p.status.as_str(),
        partner_id: p.partner_id,
        name: p.name,
        country: p.country,
        group: p.group,
        contact: p.contact,
        billing_rate: p.billing_rate,
        callback_url: p.callback_url,
        callback_ca_pem: p.callback_ca_pem,
        feature_defaults: p.feature_defaults,
        rate: p.rate.map(RateView::from),
        callback_rate: p.callback_rate.map(RateView::from),
        allow: d.allow,
        grants: d.grants,
        keys: d.keys.iter().map(|k| KeyView::new(k, now)).collect(),
        client_certs: d
            .client_certs
            .into_iter()
            .map(|c| ClientCertView::new(c.sha256, c.subject, c.not_before, c.not_after, now))
            .collect(),
        client_ca: d.client_ca.map(|ca| client_ca_view(ca, now)),
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}
