//! Target `pipeline`: the whole request path in process, from HTTP headers and body to the
//! answer, with the stub upstream (`stub.rs`); the checks of who may reach the upstream are
//! made here independently of the gateway's own code, and every answer must re-decode or render
//! as a parseable fault. Uses `stub.rs`, the partner world and the stages it checks.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::authenticate;
use crate::decode::{self, DecodeLimits};
use crate::envelope::{self, SoapVersion};
use crate::fault::{self, Soap11Status, Soap12Status, StatusModes};
use crate::forward::UpstreamReply;
use crate::generated::partner;
use crate::pipeline::{self, Incoming, Outcome, Rejection};

use super::partners::{
    fuzz_partner, nets, FuzzPartner, PARTNERS, PEERS, REQUEST_ID, TRUSTED_PROXIES,
};
use super::stub::{block_on, with_harness, Call, PipelineHarness, StubReply};
use super::{contains, encode_body};

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// The pipeline target's input: the first byte chooses the peer (bits 0–2) and the stub's answer
/// (bits 3–5); then `Name: value` header lines up to an empty line; then the body.
pub(super) struct PipelineInput<'a> {
    peer: IpAddr,
    reply: StubReply,
    headers: HeaderMap,
    body: &'a [u8],
}

pub(super) fn pipeline_input(data: &[u8]) -> Option<PipelineInput<'_>> {
    let (&sel, mut rest) = data.split_first()?;
    let peer = PEERS[usize::from(sel & 7) % PEERS.len()];
    let reply = StubReply::from_bits(sel >> 3);
    let mut headers = HeaderMap::new();
    loop {
        let (line, after) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = after;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(trim(&line[..colon])),
            HeaderValue::from_bytes(trim(&line[colon + 1..])),
        ) else {
            continue;
        };
        if headers.len() < 64 {
            headers.append(name, value);
        }
    }
    Some(PipelineInput {
        peer,
        reply,
        headers,
        body: rest,
    })
}

fn v4_mapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// Independently of `allowlist.rs`: the peer is allowed, or it is a trusted proxy and a
/// forwarding header names an allowed address.
pub(super) fn allowed_independently(p: &FuzzPartner, peer: IpAddr, headers: &HeaderMap) -> bool {
    let allow = nets(p.allow);
    let ok = |ip: IpAddr| allow.iter().any(|n| n.contains(&v4_mapped(ip)));
    if ok(peer) {
        return true;
    }
    if !nets(&[TRUSTED_PROXIES])
        .iter()
        .any(|n| n.contains(&v4_mapped(peer)))
    {
        return false;
    }
    let parse = |token: &str| -> Option<IpAddr> {
        token
            .parse()
            .ok()
            .or_else(|| token.rsplit_once(':').and_then(|(h, _)| h.parse().ok()))
    };
    // Only the header the proxies are configured to write (X-Forwarded-For here); a client's
    // `Forwarded` passed through by the proxy is never believed.
    headers.get_all("x-forwarded-for").iter().any(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .split([',', ';', '=', '"', ' ', '\t', '[', ']'])
            .filter_map(parse)
            .any(ok)
    })
}

/// Independently of `authorize.rs`: a grant permits the operation.
pub(super) fn permitted_independently(p: &FuzzPartner, op: partner::Operation) -> bool {
    let permission = op.permission();
    let domain = permission.split('.').next().unwrap_or(permission);
    p.grants
        .iter()
        .any(|g| *g == "*" || *g == permission || g.strip_suffix(".*").is_some_and(|d| d == domain))
}

/// A rendered fault parses as a SOAP fault of `version` whose detail (if any) decodes; returns
/// whether it has one.
fn check_fault(body: &[u8], version: SoapVersion, what: &str) -> bool {
    let env = envelope::scan(body).unwrap_or_else(|e| {
        panic!(
            "{what}: the fault does not scan ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    assert_eq!(env.version, version, "{what}: fault in the wrong version");
    let f = envelope::parse_fault(&env).unwrap_or_else(|e| {
        panic!(
            "{what}: not a SOAP fault ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    assert!(
        f.reason.contains(REQUEST_ID),
        "{what}: the reason does not name the request id: {}",
        f.reason
    );
    if let Some(detail) = &f.detail {
        decode::partner_fault(detail, DecodeLimits::default()).unwrap_or_else(|e| {
            panic!(
                "{what}: the fault detail does not decode ({e}): {}",
                String::from_utf8_lossy(body)
            )
        });
    }
    f.detail.is_some()
}

/// The `Message` of an upstream's contract fault.
fn upstream_message(detail: &partner::FaultDetail) -> &str {
    use partner::FaultDetail as D;
    match detail {
        D::AccessDenied(d) => d.message.as_str(),
        D::InvalidRequest(d) => d.message.as_str(),
        D::Throttled(d) => d.message.as_str(),
        D::NotFound(d) => d.message.as_str(),
        D::Conflict(d) => d.message.as_str(),
        D::UpstreamUnavailable(d) => d.message.as_str(),
    }
}

/// Every answer is a typed response that encodes and decodes back, or a fault that renders and
/// parses.
fn check_answer(outcome: &Outcome) {
    let version = outcome.version;
    match &outcome.result {
        Ok(UpstreamReply::Response(r)) => {
            let bytes = encode_body(version, |w| Ok(r.encode(w)?));
            let env = envelope::scan(&bytes).expect("the response scans");
            let back = decode::partner_response(r.operation(), &env.body, DecodeLimits::default())
                .unwrap_or_else(|e| panic!("the response does not decode: {e}"));
            assert_eq!(&back, r);
        }
        Ok(UpstreamReply::Fault(f)) => {
            let rendered = fault::render_upstream(f, version, REQUEST_ID, StatusModes::default());
            // A typed detail always: the upstream's kind, or the gateway's UpstreamUnavailable.
            assert!(
                check_fault(&rendered.body, version, "upstream fault"),
                "the upstream fault went out without a typed detail"
            );
            // The upstream's texts never reach the partner: its Message (the golden faults'
            // faultstrings are not checked: "Not Found: account" is also the gateway's own).
            if let Some(text) = f.detail.as_ref().map(upstream_message) {
                assert!(
                    !contains(&rendered.body, text.as_bytes()),
                    "the upstream's text {text:?} reached the partner"
                );
            }
        }
        Err(rejection) => {
            // Every refusal carries its typed detail, but the two SOAP-level faults.
            let detail_expected = !matches!(
                rejection,
                Rejection::Envelope(envelope::EnvelopeError::VersionMismatch)
                    | Rejection::Auth(authenticate::AuthError::MustUnderstand(_))
            );
            let semantic = StatusModes {
                soap11: Soap11Status::Semantic,
                soap12: Soap12Status::Semantic,
            };
            for mode in [StatusModes::default(), semantic] {
                let rendered = fault::render(rejection, version, REQUEST_ID, mode);
                assert!(
                    rendered.status.is_client_error() || rendered.status.is_server_error(),
                    "a refusal with status {}",
                    rendered.status
                );
                // By default only the statuses WS-I (SOAP 1.1: 500) and the SOAP 1.2 HTTP
                // binding (400 for env:Sender, 500 otherwise) allow.
                if mode == StatusModes::default() {
                    let allowed: &[u16] = match version {
                        SoapVersion::Soap11 => &[500],
                        SoapVersion::Soap12 => &[400, 500],
                    };
                    assert!(
                        allowed.contains(&rendered.status.as_u16()),
                        "a {version:?} refusal with status {} by default",
                        rendered.status
                    );
                }
                let has_detail = check_fault(&rendered.body, version, rejection.stage());
                assert_eq!(
                    has_detail,
                    detail_expected,
                    "{}: the fault's typed detail: {}",
                    rejection.stage(),
                    String::from_utf8_lossy(&rendered.body)
                );
                if matches!(rejection, Rejection::Auth(_)) {
                    for p in &PARTNERS {
                        assert!(
                            !contains(&rendered.body, p.key.as_bytes()),
                            "an authentication fault quotes a key"
                        );
                    }
                }
            }
        }
    }
}

/// One request through the harness's gateway: the outcome and the calls the stub received.
pub(super) fn run_pipeline(h: &PipelineHarness, input: &PipelineInput<'_>) -> (Outcome, Vec<Call>) {
    *h.stub.reply.lock().expect("reply") = input.reply;
    h.stub.calls.lock().expect("calls").clear();
    let incoming = Incoming {
        peer: input.peer,
        headers: &input.headers,
        body: input.body,
        request_id: REQUEST_ID,
        client_cert: None,
        trace: None,
    };
    let outcome = block_on(pipeline::handle(&h.gateway, incoming));
    let calls = std::mem::take(&mut *h.stub.calls.lock().expect("calls"));
    (outcome, calls)
}

/// Target `pipeline`: the whole request path in process, from HTTP headers and body to the
/// answer, with a recording stub upstream.
pub fn pipeline(data: &[u8]) {
    let Some(input) = pipeline_input(data) else {
        return;
    };
    let (outcome, calls) = with_harness(|h| run_pipeline(h, &input));
    assert!(
        calls.len() <= 1,
        "{} upstream calls for one request",
        calls.len()
    );
    match calls.first() {
        Some(call) => {
            let p = fuzz_partner(&call.partner_id)
                .unwrap_or_else(|| panic!("upstream called for unknown {}", call.partner_id));
            assert!(
                p.may_call(),
                "upstream called for {} that may not call",
                p.id
            );
            assert!(
                contains(input.body, p.key.as_bytes()) && contains(input.body, p.id.as_bytes()),
                "upstream called for {} without its id and key in the body",
                p.id
            );
            assert!(
                allowed_independently(p, input.peer, &input.headers),
                "upstream called for {} from {} which is not allowed",
                p.id,
                input.peer
            );
            let op = call.request.operation();
            assert!(
                permitted_independently(p, op),
                "upstream called for {} with {op:?}, which it is not granted",
                p.id
            );
            assert_eq!(outcome.operation, Some(op));
            assert_eq!(outcome.partner.as_deref(), Some(p.id));
            assert_eq!(call.request_id, REQUEST_ID);
            assert!(
                matches!(outcome.result, Ok(_) | Err(Rejection::Forward(_))),
                "refused after the upstream was called: {:?}",
                outcome.result.as_ref().err()
            );
        }
        None => {
            assert!(
                matches!(
                    outcome.result,
                    Err(ref r) if !matches!(r, Rejection::Forward(_))
                ),
                "an upstream answer or error without an upstream call"
            );
        }
    }
    check_answer(&outcome);
}
