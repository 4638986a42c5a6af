//! The request path, in one function: [`handle`] runs the stages in their fixed order, each
//! taking the previous stage's output. Cheap checks come first, so that an anonymous caller never
//! reaches the typed decode:
//!
//! ```text
//! transport (content type, SOAPAction) → XML limits → envelope scan → operation & action check
//!   → authenticate → allowlist → authorize → throttle → strict typed decode → forward (re-encode)
//! ```
//!
//! Every stage's error becomes a [`Rejection`]; `fault.rs` turns it into a SOAP fault.

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;

use crate::allowlist::{self, AllowError};
use crate::authenticate::{self, AuthError};
use crate::authorize::{self, AuthorizeError};
use crate::decode::{self, DecodeError, DecodeLimits};
use crate::envelope::{self, EnvelopeError, SoapVersion};
use crate::forward::{CallContext, ForwardError, Upstream, UpstreamReply};
use crate::generated::partner::Operation;
use crate::limit::{self, LimitError};
use crate::stats::{Stage, StageTimes};
use crate::store::SnapshotCell;
use crate::throttle::{Refused, Throttle, Throttled, TooManyInFlight};
use std::time::Instant;

/// The HTTP framing of a SOAP request is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Neither `text/xml` (SOAP 1.1) nor `application/soap+xml` (SOAP 1.2).
    #[error("content type {0:?} is not text/xml (SOAP 1.1) or application/soap+xml (SOAP 1.2)")]
    ContentType(String),
    /// The content type names one SOAP version and the envelope is the other.
    #[error("the content type does not match the envelope's SOAP version")]
    VersionConflict,
    /// More than one SOAPAction header.
    #[error("more than one SOAPAction header")]
    DuplicateAction,
    /// A `Content-Encoding` other than `identity` (gzip, deflate, …): the gateway checks the
    /// envelope as sent and does not decompress (a decompression bomb would get past the body
    /// limit), so it says so instead of failing on the compressed bytes.
    #[error("content encoding {0:?} is not accepted: send the envelope uncompressed")]
    ContentEncoding(String),
}

impl TransportError {
    /// The rule name in the fault detail.
    pub fn rule(&self) -> &'static str {
        match self {
            TransportError::ContentType(_) => "content-type",
            TransportError::VersionConflict => "soap-version",
            TransportError::DuplicateAction => "soap-action",
            TransportError::ContentEncoding(_) => "content-encoding",
        }
    }

    /// The HTTP status of the fault (RFC 9110 §15.5.16: 415 for an unsupported content coding).
    pub fn status(&self) -> http::StatusCode {
        match self {
            TransportError::ContentEncoding(_) => http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }
}

/// Refuses a request body with a content coding other than `identity`.
pub fn content_encoding(headers: &HeaderMap) -> Result<(), TransportError> {
    for value in headers.get_all(http::header::CONTENT_ENCODING) {
        let text = String::from_utf8_lossy(value.as_bytes());
        let identity = text
            .split(',')
            .map(str::trim)
            .all(|c| c.is_empty() || c.eq_ignore_ascii_case("identity"));
        if !identity {
            return Err(TransportError::ContentEncoding(
                text.chars().take(100).collect(),
            ));
        }
    }
    Ok(())
}

/// The SOAPAction names another operation than the body, or none of the contract.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("SOAPAction {action:?} does not match the body element {body}")]
pub struct ActionError {
    /// The action the client sent (bounded).
    pub action: String,
    /// The operation the body element names.
    pub body: &'static str,
}

/// Why a request was refused: one variant per stage.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// HTTP framing.
    #[error(transparent)]
    Transport(TransportError),
    /// Size, time or XML structure limits.
    #[error(transparent)]
    Limit(LimitError),
    /// Not an acceptable SOAP envelope.
    #[error(transparent)]
    Envelope(EnvelopeError),
    /// SOAPAction and body disagree.
    #[error(transparent)]
    Action(ActionError),
    /// Authentication.
    #[error(transparent)]
    Auth(AuthError),
    /// Calling-server allowlist.
    #[error(transparent)]
    Allow(AllowError),
    /// Per-operation permission.
    #[error(transparent)]
    Authorize(AuthorizeError),
    /// Throttling.
    #[error(transparent)]
    Throttle(Throttled),
    /// Too many of the partner's requests in flight (`limits.max_in_flight_per_partner`).
    #[error(transparent)]
    InFlight(TooManyInFlight),
    /// Strict typed decode.
    #[error(transparent)]
    Decode(DecodeError),
    /// The upstream.
    #[error(transparent)]
    Forward(ForwardError),
}

impl From<Refused> for Rejection {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Rate(t) => Rejection::Throttle(t),
            Refused::InFlight(e) => Rejection::InFlight(e),
        }
    }
}

impl Rejection {
    /// The stage that refused, for logs and metrics.
    pub fn stage(&self) -> &'static str {
        match self {
            Rejection::Transport(_) => "transport",
            Rejection::Limit(_) => "limit",
            Rejection::Envelope(_) => "envelope",
            Rejection::Action(_) => "action",
            Rejection::Auth(_) => "authenticate",
            Rejection::Allow(_) => "allowlist",
            Rejection::Authorize(_) => "authorize",
            Rejection::Throttle(_) | Rejection::InFlight(_) => "throttle",
            Rejection::Decode(_) => "decode",
            Rejection::Forward(_) => "forward",
        }
    }
}

/// Everything the request path needs, shared by all connections.
pub struct Gateway {
    /// Limits, trusted proxies, fault status mode.
    pub settings: Settings,
    /// The partner snapshot (read lock-free on every request).
    pub snapshot: Arc<SnapshotCell>,
    /// Per-partner and per-group limiters.
    pub throttle: Throttle,
    /// The partner API layer.
    pub upstream: Option<Arc<dyn Upstream>>,
    /// Counters and histograms.
    pub stats: Arc<crate::stats::Stats>,
    /// The callback direction (TSP → partner BSS), when enabled.
    pub callback: Option<Arc<crate::callback::Relay>>,
}

impl AsRef<Throttle> for Gateway {
    /// The limiters, for the cluster exchange ([`crate::throttle::cluster::run`]).
    fn as_ref(&self) -> &Throttle {
        &self.throttle
    }
}

/// The parts of the configuration the request path reads.
#[derive(Clone, Debug)]
pub struct Settings {
    /// XML structure bounds.
    pub xml: crate::config::XmlLimits,
    /// Proxies whose forwarding header is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The one forwarding header those proxies write (`trusted_proxy_header`).
    pub trusted_proxy_header: allowlist::ProxyHeader,
    /// How faults choose their HTTP status (`faults.soap11_status`, `faults.soap12_status`).
    pub fault_status: crate::fault::StatusModes,
}

/// A request as the server hands it to the pipeline (the body already read within its limits).
pub struct Incoming<'a> {
    /// The TCP peer.
    pub peer: IpAddr,
    /// HTTP headers.
    pub headers: &'a HeaderMap,
    /// The body.
    pub body: &'a [u8],
    /// The gateway's id for this request.
    pub request_id: &'a str,
}

/// What happened, with what was learnt on the way (for the fault's SOAP version and the log line).
pub struct Outcome {
    /// The SOAP version to answer in.
    pub version: SoapVersion,
    /// The partner, once authenticated — or the id it claimed, when authentication failed.
    pub partner: Option<String>,
    /// The operation, once the body element was read.
    pub operation: Option<Operation>,
    /// The upstream's reply, or the refusal.
    pub result: Result<UpstreamReply, Rejection>,
    /// Time per stage.
    pub stages: StageTimes,
    /// The key that authenticated the call (for its last-use time).
    pub key_id: Option<i64>,
}

/// The SOAP version a content type names, and the `action` parameter of a SOAP 1.2 one.
pub fn content_type_version(
    headers: &HeaderMap,
) -> Result<(SoapVersion, Option<String>), TransportError> {
    let value = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let version = match media.as_str() {
        "text/xml" => SoapVersion::Soap11,
        "application/soap+xml" => SoapVersion::Soap12,
        _ => {
            return Err(TransportError::ContentType(
                value.chars().take(100).collect(),
            ))
        }
    };
    let mut action = None;
    for param in parts {
        if let Some((k, v)) = param.split_once('=') {
            if k.trim().eq_ignore_ascii_case("action") {
                action = Some(v.trim().trim_matches('"').to_string());
            }
        }
    }
    Ok((version, action))
}

/// The SOAPAction of a request: the header (at most one), else the content type's `action`.
pub fn soap_action(
    headers: &HeaderMap,
    from_content_type: Option<String>,
) -> Result<Option<String>, TransportError> {
    let mut values = headers.get_all("soapaction").iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(TransportError::DuplicateAction);
    }
    let header = first
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .trim()
                .trim_matches('"')
                .to_string()
        })
        .filter(|a| !a.is_empty());
    Ok(header.or(from_content_type).filter(|a| !a.is_empty()))
}

/// The request path. Never panics on any input; every refusal is a [`Rejection`].
pub async fn handle(gw: &Gateway, incoming: Incoming<'_>) -> Outcome {
    let mut outcome = Outcome {
        version: SoapVersion::Soap11,
        partner: None,
        operation: None,
        result: Err(Rejection::Transport(TransportError::ContentType(
            String::new(),
        ))),
        stages: StageTimes::default(),
        key_id: None,
    };
    outcome.result = run(gw, &incoming, &mut outcome).await;
    outcome
}

/// Times the stages: each `lap` charges the time since the previous one to a stage.
struct Laps(Instant);

impl Laps {
    fn lap(&mut self, stage: Stage, out: &mut Outcome) {
        let now = Instant::now();
        out.stages.add(stage, now - self.0);
        self.0 = now;
    }
}

async fn run(
    gw: &Gateway,
    incoming: &Incoming<'_>,
    out: &mut Outcome,
) -> Result<UpstreamReply, Rejection> {
    // Transport: content type and SOAPAction.
    let ct = content_type_version(incoming.headers);
    if let Ok((version, _)) = &ct {
        out.version = *version;
    }
    let (ct_version, ct_action) = ct.map_err(Rejection::Transport)?;
    content_encoding(incoming.headers).map_err(Rejection::Transport)?;
    let action = soap_action(incoming.headers, ct_action).map_err(Rejection::Transport)?;

    // XML limits: one streaming pass before anything else parses.
    let mut laps = Laps(Instant::now());
    let limited = limit::check_xml(incoming.body, &gw.settings.xml);
    laps.lap(Stage::Limit, out);
    let outline = limited.map_err(Rejection::Limit)?;

    // Envelope scan: header blocks and the body element (stepping over their content, which the
    // limits pass has read).
    let env = envelope::scan_outlined(incoming.body, &outline);
    laps.lap(Stage::Envelope, out);
    let env = env.map_err(Rejection::Envelope)?;
    out.version = env.version;
    if env.version != ct_version {
        return Err(Rejection::Transport(TransportError::VersionConflict));
    }

    // The operation, from the body element; the SOAPAction must be absent or name the same one.
    let op = Operation::from_request_element(&env.body.namespace, env.body.local_name)
        .ok_or_else(|| Rejection::Decode(decode::unknown_operation(&env.body)))?;
    out.operation = Some(op);
    if let Some(action) = action {
        if action != op.soap_action() {
            return Err(Rejection::Action(ActionError {
                action: action.chars().take(200).collect(),
                body: op.name(),
            }));
        }
    }

    // Authenticate, against the snapshot as it is now.
    let snapshot = gw.snapshot.load();
    let auth = authenticate::authenticate(&env, &snapshot, unix_now());
    let auth = match auth {
        Ok(auth) => auth,
        Err(e) => {
            // Refusals are counted against the partner claimed, if that partner exists.
            out.partner = e
                .claimed()
                .filter(|p| snapshot.partners.contains_key(*p))
                .map(str::to_string);
            laps.lap(Stage::Checks, out);
            return Err(Rejection::Auth(e));
        }
    };
    out.partner = Some(auth.partner.partner_id.clone());
    out.key_id = Some(auth.key_id);

    // Calling server, permission, throttle. The in-flight guard counts this call against the
    // partner until the function returns, whatever the path.
    let checks = (|| {
        let client = allowlist::client_address(
            incoming.peer,
            incoming.headers,
            &gw.settings.trusted_proxies,
            gw.settings.trusted_proxy_header,
        )
        .map_err(Rejection::Allow)?;
        allowlist::check(&auth, client).map_err(Rejection::Allow)?;
        authorize::check(&auth, op).map_err(Rejection::Authorize)?;
        gw.throttle
            .admit(&auth.partner, &snapshot)
            .map_err(Rejection::from)
    })();
    laps.lap(Stage::Checks, out);
    let _in_flight = checks?;

    // Strict typed decode: only now, for a known, allowed, permitted, admitted partner.
    let request = decode::partner_request(&env.body, DecodeLimits::default());
    laps.lap(Stage::Decode, out);
    let request = request.map_err(Rejection::Decode)?;

    // Forward: the upstream sees only what encode.rs writes from the typed value.
    let upstream = gw
        .upstream
        .as_ref()
        .ok_or(Rejection::Forward(ForwardError::Unconfigured))?;
    let ctx = CallContext {
        partner_id: &auth.partner.partner_id,
        request_id: incoming.request_id,
    };
    let reply = upstream.call(ctx, &request).await;
    laps.lap(Stage::Upstream, out);
    reply.map_err(Rejection::Forward)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(codings: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in codings {
            h.append(
                http::header::CONTENT_ENCODING,
                http::HeaderValue::from_str(c).unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_the_identity_coding_is_accepted() {
        assert_eq!(content_encoding(&headers(&[])), Ok(()));
        assert_eq!(content_encoding(&headers(&["identity"])), Ok(()));
        assert_eq!(content_encoding(&headers(&["Identity", ""])), Ok(()));
        for bad in [
            &["gzip"][..],
            &["identity, br"],
            &["identity", "deflate"],
            &["x-gzip"],
        ] {
            let err = content_encoding(&headers(bad)).unwrap_err();
            assert_eq!(err.rule(), "content-encoding");
            assert_eq!(err.status(), http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
    }
}
