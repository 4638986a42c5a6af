//! Stage: authentication. Takes the scanned [`Envelope`] and the partner snapshot and returns the
//! [`Authenticated`] partner — or an [`AuthError`].
//!
//! - Exactly one credential header directly under `Envelope/Header`: the contract's `PartnerAuth`
//!   (PartnerId, ApiKey), or a WS-Security `UsernameToken` with a `PasswordText` password
//!   (Username = partner id), which enterprise toolkits send natively. Two of them are refused,
//!   and so is a repeated element inside one (two `Username`s, two `Password`s, …): a credential
//!   has one reading. A `wsu:Timestamp` beside the token is checked: its `Expires` (and
//!   `Created`) must be UTC `xs:dateTime`s, and an `Expires` more than [`CLOCK_SKEW_SECS`] in the
//!   past is refused like any other authentication failure.
//! - SOAP header rules: a header block addressed to us (no actor/role, an empty one, `next`, or
//!   `ultimateReceiver`: [`addressed_to_us`]) that is marked mustUnderstand and that we do not understand is a
//!   `MustUnderstand` fault. The credential header may itself carry mustUnderstand.
//! - Keys are compared as SHA-256 hashes with a constant-time comparison, against every key of
//!   the partner (no early exit); an unknown partner id is compared against a dummy hash, so the
//!   work and the answer do not tell which partner ids exist. Missing, malformed, unknown partner,
//!   wrong, revoked or expired key all produce the same refusal for the client; the reason is
//!   only logged and counted.

use std::sync::Arc;

use quick_xml::events::Event;
use quick_xml::name::{Namespace, NamespaceResolver, PrefixDeclaration, ResolveResult};

use crate::decode::{self, DecodeLimits};
use crate::envelope::{BodyElement, Envelope, HeaderBlock, SoapVersion};
use crate::generated::partner;
use crate::secret::{self, KeyHash, KeyKind};
use crate::store::{PartnerEntry, PartnerStatus, Snapshot};

/// WS-Security 1.0 `wsse` namespace.
pub const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
/// WS-Security utility namespace (`wsu:Timestamp`, `wsu:Created`).
pub const WSU_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
/// How far a WS-Security `Timestamp`'s `Expires` may lie in the past (clocks of partner and
/// gateway differ): 300 s, the usual WS-Security default (WSS4J, WCF).
pub const CLOCK_SKEW_SECS: i64 = 300;
/// The `PasswordText` password type.
pub const PASSWORD_TEXT: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";

/// The caller proved to be this partner.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// The partner, from the snapshot.
    pub partner: Arc<PartnerEntry>,
    /// The key that matched (for last-use statistics; never the key itself).
    pub key_id: i64,
}

/// Why authentication failed. Every variant but `MustUnderstand` and `Suspended` becomes the same
/// `AccessDenied: authentication failed` for the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential header.
    #[error("no credential header")]
    Missing,
    /// More than one credential header.
    #[error("more than one credential header")]
    Duplicate,
    /// The credential header does not decode (details are not shown to the client).
    #[error("malformed credential header: {0}")]
    Malformed(String),
    /// No partner has this id (claimed id kept for statistics).
    #[error("unknown partner")]
    UnknownPartner {
        /// The id the caller claimed.
        claimed: String,
    },
    /// The partner exists but no active key matches.
    #[error("wrong, revoked or expired key")]
    WrongKey {
        /// The id the caller claimed.
        claimed: String,
    },
    /// The key matched but the partner is suspended or offboarded.
    #[error("partner is {status:?}")]
    Suspended {
        /// The partner.
        claimed: String,
        /// Its status.
        status: PartnerStatus,
    },
    /// A header block addressed to us is marked mustUnderstand and we do not understand it.
    #[error("header {0} is not understood")]
    MustUnderstand(String),
    /// The WS-Security `Timestamp` has expired (beyond the allowed clock skew).
    #[error("WS-Security Timestamp expired")]
    Expired,
}

impl AuthError {
    /// The partner id the caller claimed, when there was one (refusals are counted against it).
    pub fn claimed(&self) -> Option<&str> {
        match self {
            AuthError::UnknownPartner { claimed }
            | AuthError::WrongKey { claimed }
            | AuthError::Suspended { claimed, .. } => Some(claimed),
            _ => None,
        }
    }

    /// A short stable reason for logs and statistics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "credentials-missing",
            AuthError::Duplicate => "credentials-duplicate",
            AuthError::Malformed(_) => "credentials-malformed",
            AuthError::UnknownPartner { .. } => "unknown-partner",
            AuthError::WrongKey { .. } => "wrong-key",
            AuthError::Suspended { .. } => "partner-suspended",
            AuthError::MustUnderstand(_) => "must-understand",
            AuthError::Expired => "credentials-expired",
        }
    }
}

/// A credential as presented.
struct Presented {
    partner_id: String,
    key: String,
}

/// Whether a header block is addressed to this node (SOAP 1.1 actor / SOAP 1.2 role). The
/// gateway is the ultimate receiver, so a block is for us when it names:
///
/// - no actor/role at all (SOAP 1.1 4.2.2: the ultimate recipient; SOAP 1.2 5.2.2: the same as
///   `ultimateReceiver`);
/// - an **empty** one: SOAP 1.1 does not define `actor=""`, and the toolkits that send it (with
///   `mustUnderstand="0"`) mean "no actor". SOAP 1.2's `role` is an `xs:anyURI`, and `""` is a
///   relative reference that resolves to its base URI (RFC 3986 5.2.2) — for a message received
///   over HTTP the request URI, this endpoint — so it names this node too;
/// - `next` (every node, us included), or in SOAP 1.2 `ultimateReceiver`.
///
/// The value is an `xs:anyURI`, whose whitespace is collapsed: surrounding XML whitespace is
/// ignored. Any other role (`…/role/none`, another node's URI) is not for us: the block is
/// skipped (a credential there is no credential, an unknown mustUnderstand there no fault).
pub(crate) fn addressed_to_us(block: &HeaderBlock<'_>, version: SoapVersion) -> bool {
    let Some(role) = &block.role else {
        return true;
    };
    let role = role.trim_matches([' ', '\t', '\r', '\n']);
    match version {
        SoapVersion::Soap11 => {
            role.is_empty() || role == "http://schemas.xmlsoap.org/soap/actor/next"
        }
        SoapVersion::Soap12 => {
            role.is_empty()
                || role == "http://www.w3.org/2003/05/soap-envelope/role/next"
                || role == "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver"
        }
    }
}

/// A fixed hash compared against when the partner id is unknown, so that path does the same work.
const DUMMY_HASH: KeyHash = [0x5a; 32];

/// Authenticates the envelope's credential header against the snapshot at time `now` (unix s).
pub fn authenticate(
    env: &Envelope<'_>,
    snapshot: &Snapshot,
    now: i64,
) -> Result<Authenticated, AuthError> {
    let (auth_ns, auth_local) = partner::AUTH_HEADER_ELEMENT;
    let mut credential: Option<&HeaderBlock<'_>> = None;
    let mut count = 0;
    for block in &env.headers {
        if !addressed_to_us(block, env.version) {
            continue;
        }
        let el = &block.element;
        if el.is(auth_ns, auth_local) || el.is(WSSE_NS, "Security") {
            count += 1;
            credential = Some(block);
        } else if block.must_understand {
            let name = format!(
                "{{{}}}{}",
                String::from_utf8_lossy(&el.namespace),
                String::from_utf8_lossy(el.local_name)
            );
            return Err(AuthError::MustUnderstand(name));
        }
    }
    let block = match (count, credential) {
        (0, _) | (_, None) => return Err(AuthError::Missing),
        (1, Some(block)) => block,
        _ => return Err(AuthError::Duplicate),
    };
    plain_text_only(&block.element)?;
    let presented = if block.element.is(auth_ns, auth_local) {
        let header = decode::partner_auth(&block.element, DecodeLimits::header_block())
            .map_err(|e| AuthError::Malformed(format!("{}: {}", e.path, e.rule)))?;
        Presented {
            partner_id: header.partner_id.as_str().to_string(),
            key: header.api_key.as_str().to_string(),
        }
    } else {
        username_token(&block.element, now)?
    };
    verify(&presented, snapshot, KeyKind::Partner, now)
}

/// Checks a presented (partner id, key) against the snapshot's keys of `kind`.
fn verify(
    presented: &Presented,
    snapshot: &Snapshot,
    kind: KeyKind,
    now: i64,
) -> Result<Authenticated, AuthError> {
    let hash = secret::hash(&presented.key);
    let claimed = presented.partner_id.clone();
    let Some(partner) = snapshot.partners.get(&presented.partner_id) else {
        // Same work as for a known partner with one key.
        let _ = secret::ct_eq(&hash, &DUMMY_HASH);
        return Err(AuthError::UnknownPartner { claimed });
    };
    let mut matched: Option<i64> = None;
    for key in &partner.keys {
        // Compare with every key, without stopping at the first match.
        let equal = secret::ct_eq(&hash, &key.hash);
        let usable = key.kind == kind && key.expires_at.is_none_or(|at| at > now);
        if equal && usable {
            matched = Some(key.id);
        }
    }
    let Some(key_id) = matched else {
        return Err(AuthError::WrongKey { claimed });
    };
    if partner.status != PartnerStatus::Active {
        return Err(AuthError::Suspended {
            claimed,
            status: partner.status,
        });
    }
    Ok(Authenticated {
        partner: Arc::clone(partner),
        key_id,
    })
}

/// A callback whose `CallbackAuth` header carried the partner's callback key. `Debug` leaves
/// out the verified header: it holds the key.
#[derive(Clone)]
pub struct CallbackAuthenticated {
    /// The partner, from the snapshot.
    pub partner: Arc<PartnerEntry>,
    /// The callback key that matched.
    pub key_id: i64,
    /// The `CallbackAuth` block that was verified, decoded: the only credential the relay may
    /// send on (a block addressed to another node is never read, let alone relayed).
    pub header: crate::generated::callback::AuthHeader,
}

impl std::fmt::Debug for CallbackAuthenticated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackAuthenticated")
            .field("partner", &self.partner.partner_id)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Authenticates a callback's `CallbackAuth` header (the partner's callback key).
pub fn authenticate_callback(
    env: &Envelope<'_>,
    snapshot: &Snapshot,
    now: i64,
) -> Result<CallbackAuthenticated, AuthError> {
    let (ns, local) = crate::generated::callback::AUTH_HEADER_ELEMENT;
    let mut blocks = env
        .headers
        .iter()
        .filter(|b| addressed_to_us(b, env.version));
    let mut found = None;
    for block in blocks.by_ref() {
        if block.element.is(ns, local) {
            if found.is_some() {
                return Err(AuthError::Duplicate);
            }
            found = Some(block);
        } else if block.must_understand {
            return Err(AuthError::MustUnderstand(
                String::from_utf8_lossy(block.element.local_name).into_owned(),
            ));
        }
    }
    let block = found.ok_or(AuthError::Missing)?;
    plain_text_only(&block.element)?;
    let header = decode::callback_auth(&block.element, DecodeLimits::header_block())
        .map_err(|e| AuthError::Malformed(format!("{}: {}", e.path, e.rule)))?;
    let presented = Presented {
        partner_id: header.partner_id.as_str().to_string(),
        key: header.callback_key.as_str().to_string(),
    };
    let auth = verify(&presented, snapshot, KeyKind::Callback, now)?;
    Ok(CallbackAuthenticated {
        partner: auth.partner,
        key_id: auth.key_id,
        header,
    })
}

/// Credentials are plain text: a comment, CDATA section or character reference inside a
/// credential header is refused. XML would allow them (the value is the same), but no toolkit
/// writes a key that way, and a key that is only equal after unescaping is a probe.
fn plain_text_only(block: &BodyElement<'_>) -> Result<(), AuthError> {
    let bytes = block.bytes();
    // Inside an element (well-formed: the limits pass or the envelope scan has read it), `<!`
    // starts a comment or a CDATA section and nothing else.
    if memchr::memchr(b'&', bytes).is_some() || memchr::memmem::find(bytes, b"<!").is_some() {
        return Err(AuthError::Malformed(
            "comments, CDATA and references are not accepted in credentials".into(),
        ));
    }
    Ok(())
}

/// Reads `wsse:Security/wsse:UsernameToken` (Username, Password of type PasswordText, optional
/// Nonce and wsu:Created, each at most once) and an optional `wsu:Timestamp` beside it (Created,
/// Expires, each at most once; Expires checked against `now` with [`CLOCK_SKEW_SECS`]). Anything
/// else is refused: we must not claim to understand a signature or an encrypted key we do not
/// process, and a repeated element would leave two readings of one credential.
fn username_token(block: &BodyElement<'_>, now: i64) -> Result<Presented, AuthError> {
    let bad = |m: &str| AuthError::Malformed(format!("WS-Security: {m}"));
    let mut reader = quick_xml::Reader::from_reader(block.bytes());
    reader.config_mut().check_end_names = true;
    let mut resolver = NamespaceResolver::default();
    for (prefix, ns) in &block.inherited {
        let decl = if prefix.is_empty() {
            PrefixDeclaration::Default
        } else {
            PrefixDeclaration::Named(prefix)
        };
        resolver
            .add(decl, Namespace(ns))
            .map_err(|_| bad("namespace"))?;
    }
    // Path of the open elements: Security, then UsernameToken or Timestamp, then a field.
    let mut path: Vec<Field> = Vec::new();
    let mut username: Option<String> = None;
    let mut password: Option<String> = None;
    let mut expires: Option<String> = None;
    let mut created: Option<String> = None;
    // UsernameToken's Nonce and wsu:Created, Timestamp's Created: only counted.
    let (mut nonce, mut token_created) = (0, 0);
    let (mut tokens, mut timestamps) = (0, 0);
    let mut text = String::new();
    loop {
        let event = reader.read_event().map_err(|e| bad(&e.to_string()))?;
        let (start, empty) = match &event {
            Event::Start(s) => (Some(s), false),
            Event::Empty(s) => (Some(s), true),
            _ => (None, false),
        };
        if let Some(s) = start {
            resolver.push(s).map_err(|_| bad("namespace"))?;
            let ns = match resolver.resolve_element(s.name()).0 {
                ResolveResult::Bound(ns) => ns.0.to_vec(),
                _ => return Err(bad("unqualified element")),
            };
            let local = s.local_name();
            let is = |n: &str, l: &str| ns == n.as_bytes() && local.as_ref() == l.as_bytes();
            let field = match (path.last(), path.len()) {
                (None, 0) if is(WSSE_NS, "Security") => Field::Security,
                (Some(Field::Security), 1) if is(WSSE_NS, "UsernameToken") => {
                    tokens += 1;
                    Field::Token
                }
                (Some(Field::Security), 1) if is(WSU_NS, "Timestamp") => {
                    timestamps += 1;
                    Field::Timestamp
                }
                (Some(Field::Token), 2) if is(WSSE_NS, "Username") => Field::Username,
                (Some(Field::Token), 2) if is(WSSE_NS, "Nonce") => {
                    nonce += 1;
                    Field::Other
                }
                (Some(Field::Token), 2) if is(WSU_NS, "Created") => {
                    token_created += 1;
                    Field::Other
                }
                (Some(Field::Token), 2) if is(WSSE_NS, "Password") => {
                    let kind = s
                        .try_get_attribute("Type")
                        .map_err(|_| bad("attribute"))?
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned());
                    if kind.as_deref().is_some_and(|t| t != PASSWORD_TEXT) {
                        return Err(bad("only PasswordText passwords are accepted"));
                    }
                    Field::Password
                }
                (Some(Field::Timestamp), 2) if is(WSU_NS, "Created") => Field::Created,
                (Some(Field::Timestamp), 2) if is(WSU_NS, "Expires") => Field::Expires,
                _ => return Err(bad("unsupported element in the Security header")),
            };
            text.clear();
            path.push(field);
            if !empty {
                continue;
            }
        }
        match event {
            Event::Start(_) => {}
            Event::End(_) | Event::Empty(_) => {
                resolver.pop();
                let value = std::mem::take(&mut text);
                let slot = match path.pop() {
                    Some(Field::Username) => Some((&mut username, "Username")),
                    Some(Field::Password) => Some((&mut password, "Password")),
                    Some(Field::Created) => Some((&mut created, "Timestamp/Created")),
                    Some(Field::Expires) => Some((&mut expires, "Timestamp/Expires")),
                    _ => None,
                };
                if let Some((slot, name)) = slot {
                    if slot.is_some() {
                        return Err(bad(&format!("more than one {name}")));
                    }
                    *slot = Some(value);
                }
                if path.is_empty() {
                    break;
                }
            }
            Event::Text(t) => text.push_str(&t.xml10_content().map_err(|_| bad("encoding"))?),
            Event::GeneralRef(r) => {
                text.push(decode::reference_char(&r).ok_or_else(|| bad("entity"))?)
            }
            Event::CData(_) => return Err(bad("CDATA is not accepted in credentials")),
            Event::Comment(_) => {}
            Event::Eof => break,
            _ => return Err(bad("unexpected content")),
        }
    }
    if tokens != 1 {
        return Err(bad("exactly one UsernameToken is required"));
    }
    if nonce > 1 || token_created > 1 {
        return Err(bad("more than one Nonce or Created in the UsernameToken"));
    }
    if timestamps > 1 {
        return Err(bad("more than one Timestamp"));
    }
    if let Some(c) = &created {
        utc_seconds(c).ok_or_else(|| bad("Timestamp/Created is not a UTC xs:dateTime"))?;
    }
    if let Some(e) = &expires {
        let at = utc_seconds(e).ok_or_else(|| bad("Timestamp/Expires is not a UTC xs:dateTime"))?;
        if now > at.saturating_add(CLOCK_SKEW_SECS) {
            return Err(AuthError::Expired);
        }
    }
    match (username, password) {
        (Some(partner_id), Some(key)) if !partner_id.is_empty() && !key.is_empty() => {
            Ok(Presented { partner_id, key })
        }
        _ => Err(bad("Username and Password are required")),
    }
}

/// What an open element of the Security header is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Security,
    Token,
    Timestamp,
    Username,
    Password,
    Created,
    Expires,
    /// Nonce and the token's Created: allowed, not read.
    Other,
}

/// A WS-Security time (`wsu:Created`, `wsu:Expires`): an `xs:dateTime` in UTC (`Z`, as the
/// WS-I Basic Security Profile requires), as seconds since the Unix epoch (fractions dropped).
fn utc_seconds(text: &str) -> Option<i64> {
    text.parse::<crate::xs::DateTime>().ok()?;
    let body = text.strip_suffix('Z')?;
    let b = body.as_bytes();
    // YYYY-MM-DDThh:mm:ss: a four-digit year (no sign), as every toolkit writes.
    if b.len() < 19 || b.get(4) != Some(&b'-') || b.get(10) != Some(&b'T') {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> { body.get(range)?.parse().ok() };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

mod headers;
pub use headers::{authenticate_headers, PARTNER_ID_HEADER};

#[cfg(test)]
mod tests;
