//! The request path, in one function: [`handle`] runs the stages in their fixed order, each
//! taking the previous stage's output. Cheap checks come first, so that an anonymous caller never
//! reaches the typed decode:
//!
//! ```text
//! transport (content type, SOAPAction) → XML limits → envelope scan → operation & action check
//!   → authenticate → client certificate → allowlist → authorize → throttle → strict typed decode → forward (re-encode)
//! ```
//!
//! The REST face ([`handle_json`]) enters with the operation its route names: the JSON limits
//! pass, then credentials from the headers, then the same stages from the client certificate on
//! (`admitted`, shared), its own strict decode (`crate::json`) into the same typed request, and
//! the same forward.
//!
//! Every stage's error becomes a [`Rejection`]; `fault.rs` turns it into a SOAP fault (or, for
//! the REST face, a problem document).

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;

use crate::allowlist;
use crate::authenticate;
use crate::authorize;
use crate::certificate::Presented;
use crate::client_cert;
use crate::decode::{self, DecodeLimits};
use crate::envelope::{self, SoapVersion};
use crate::forward::{CallContext, ForwardError, Upstream, UpstreamReply};
use crate::generated::partner::Operation;
use crate::limit;
use crate::stats::{Stage, StageTimes};
use crate::store::SnapshotCell;
use crate::throttle::Throttle;
use std::time::Instant;

pub use crate::clock::unix_now;
pub use crate::rejection::{ActionError, Rejection};
pub use crate::transport::{content_encoding, content_type_version, soap_action, TransportError};

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
    /// The enrollment endpoint (anonymous, `crate::enroll`), when served.
    pub enrollment: Option<Arc<crate::enroll::Enrollment>>,
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
    /// The certificate chain the TLS client presented (mutual TLS), if any.
    pub client_cert: Option<&'a Presented>,
    /// The request's server span, when tracing is on (`crate::telemetry`).
    pub trace: Option<&'a crate::telemetry::RequestTrace>,
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
    /// When the first timed stage started (the stages follow each other from there).
    pub stages_from: Option<Instant>,
    /// The key that authenticated the call (for its last-use time).
    pub key_id: Option<i64>,
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
        stages_from: None,
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
    out.stages_from = Some(laps.0);
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
    // Refusals are counted against the partner claimed, if that partner exists: the one the
    // credentials name, whether or not they authenticate.
    let snapshot = gw.snapshot.load();
    let now = unix_now();
    let known = |id: Option<&str>| {
        id.filter(|p| snapshot.partners.contains_key(*p))
            .map(str::to_string)
    };
    let claimed = |auth: &Result<authenticate::Authenticated, authenticate::AuthError>| {
        known(match auth {
            Ok(a) => Some(a.partner.partner_id.as_str()),
            Err(e) => e.claimed(),
        })
    };
    let Some(op) = Operation::from_request_element(&env.body.namespace, env.body.local_name) else {
        out.partner = claimed(&authenticate::authenticate(&env, &snapshot, now));
        return Err(Rejection::Decode(decode::unknown_operation(&env.body)));
    };
    out.operation = Some(op);
    if let Some(action) = action {
        if action != op.soap_action() {
            out.partner = claimed(&authenticate::authenticate(&env, &snapshot, now));
            return Err(Rejection::Action(ActionError {
                action: action.chars().take(200).collect(),
                body: op.name(),
            }));
        }
    }

    // Authenticate, against the snapshot as it is now.
    let auth = authenticate::authenticate(&env, &snapshot, now);
    let call = Admit {
        peer: incoming.peer,
        headers: incoming.headers,
        client_cert: incoming.client_cert,
        request_id: incoming.request_id,
        op,
        trace: incoming.trace,
    };
    admitted(gw, call, auth, &snapshot, now, laps, out, |limits| {
        decode::partner_request(&env.body, limits)
    })
    .await
}

/// A REST/JSON request as the server hands it to the pipeline: the route already named the
/// operation and the URL members (`crate::rest`), the body read within its limits.
pub struct JsonIncoming<'a> {
    /// The TCP peer.
    pub peer: IpAddr,
    /// HTTP headers (the credentials are `X-Partner-Id` and `Authorization: Bearer`).
    pub headers: &'a HeaderMap,
    /// The JSON body (`{}` for a route without one).
    pub body: &'a [u8],
    /// The members the URL carries (path segments and query), for the decoder.
    pub url_members: &'a [(&'a str, &'a str)],
    /// The operation of the route.
    pub op: Operation,
    /// The gateway's id for this request.
    pub request_id: &'a str,
    /// The certificate chain the TLS client presented (mutual TLS), if any.
    pub client_cert: Option<&'a Presented>,
    /// The request's server span, when tracing is on (`crate::telemetry`).
    pub trace: Option<&'a crate::telemetry::RequestTrace>,
}

/// The REST face's path: the JSON limits pass, credentials from the headers, then the same
/// stages as [`handle`] (client certificate, allowlist, permission, throttle), the strict JSON
/// decode into the same typed `Request` (`crate::json`), and the same forward.
pub async fn handle_json(gw: &Gateway, incoming: JsonIncoming<'_>) -> Outcome {
    let mut outcome = Outcome {
        version: SoapVersion::Soap11,
        partner: None,
        operation: Some(incoming.op),
        result: Err(Rejection::Transport(TransportError::ContentType(
            String::new(),
        ))),
        stages: StageTimes::default(),
        stages_from: None,
        key_id: None,
    };
    // JSON limits: one byte scan before anything parses the body or checks the caller.
    let mut laps = Laps(Instant::now());
    outcome.stages_from = Some(laps.0);
    let limited = limit::check_json(incoming.body, &gw.settings.xml);
    laps.lap(Stage::Limit, &mut outcome);
    if let Err(e) = limited {
        outcome.result = Err(Rejection::Limit(e));
        return outcome;
    }
    let snapshot = gw.snapshot.load();
    let now = unix_now();
    let auth = authenticate::authenticate_headers(incoming.headers, &snapshot, now);
    let call = Admit {
        peer: incoming.peer,
        headers: incoming.headers,
        client_cert: incoming.client_cert,
        request_id: incoming.request_id,
        op: incoming.op,
        trace: incoming.trace,
    };
    let (body, members, op) = (incoming.body, incoming.url_members, incoming.op);
    outcome.result = admitted(
        gw,
        call,
        auth,
        &snapshot,
        now,
        laps,
        &mut outcome,
        |limits| crate::json::decode_partner_request(op, body, members, &limits),
    )
    .await;
    outcome
}

/// What the shared stages need of a request, whichever face it came through.
struct Admit<'a> {
    peer: IpAddr,
    headers: &'a HeaderMap,
    client_cert: Option<&'a Presented>,
    request_id: &'a str,
    op: Operation,
    trace: Option<&'a crate::telemetry::RequestTrace>,
}

/// The stages both faces share, from the authentication's result on: client certificate,
/// allowlist, permission, throttle, then `decode` (the face's strict typed decode, only for an
/// authentic, allowed, permitted, admitted partner) and the forward.
#[allow(
    clippy::too_many_arguments,
    reason = "the stage's inputs, each from a different place; a struct would only rename them"
)]
async fn admitted(
    gw: &Gateway,
    call: Admit<'_>,
    auth: Result<authenticate::Authenticated, authenticate::AuthError>,
    snapshot: &crate::store::Snapshot,
    now: i64,
    mut laps: Laps,
    out: &mut Outcome,
    decode: impl FnOnce(DecodeLimits) -> Result<crate::generated::partner::Request, decode::DecodeError>,
) -> Result<UpstreamReply, Rejection> {
    let op = call.op;
    let auth = match auth {
        Ok(auth) => auth,
        Err(e) => {
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

    // Client certificate (nothing to do for a partner without one), calling server,
    // permission, throttle. The in-flight guard counts this call against the partner until the
    // function returns, whatever the path.
    let checks = (|| {
        client_cert::check(&auth, call.client_cert, now).map_err(Rejection::ClientCert)?;
        let client = allowlist::client_address(
            call.peer,
            call.headers,
            &gw.settings.trusted_proxies,
            gw.settings.trusted_proxy_header,
        )
        .map_err(Rejection::Allow)?;
        allowlist::check(&auth, client).map_err(Rejection::Allow)?;
        authorize::check(&auth, op).map_err(Rejection::Authorize)?;
        gw.throttle
            .admit(&auth.partner, snapshot)
            .map_err(Rejection::from)
    })();
    laps.lap(Stage::Checks, out);
    let _in_flight = checks?;

    // Strict typed decode: only now, for a known, allowed, permitted, admitted partner.
    let request = decode(DecodeLimits::default());
    laps.lap(Stage::Decode, out);
    let request = request.map_err(Rejection::Decode)?;

    // Forward: the upstream sees only what encode.rs writes from the typed value.
    let upstream = gw
        .upstream
        .as_ref()
        .ok_or(Rejection::Forward(ForwardError::Unconfigured))?;
    // The client span and its traceparent, when tracing is on.
    let client = call.trace.map(|t| t.client("upstream", None));
    let ctx = CallContext {
        partner_id: &auth.partner.partner_id,
        request_id: call.request_id,
        trace: client.as_ref().map(|c| &c.headers),
    };
    let reply = upstream.call(ctx, &request).await;
    if let Some(client) = client {
        client.end(match &reply {
            Ok(UpstreamReply::Response(_)) => "ok",
            Ok(UpstreamReply::Fault(_)) => "fault",
            Err(_) => "error",
        });
    }
    laps.lap(Stage::Upstream, out);
    reply.map_err(Rejection::Forward)
}
