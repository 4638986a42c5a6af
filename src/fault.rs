//! The one place where a refusal becomes a SOAP fault. Takes a [`Rejection`] (or a typed fault
//! the upstream returned) and returns the HTTP status, the fault envelope in the request's SOAP
//! version and, for throttling, `Retry-After`. The match over [`Rejection`] is exhaustive: a new
//! error does not compile until someone decides its fault.
//!
//! The client gets a stable reason (`Access Denied: …`, `Invalid Request: …`, `Throttled: …`),
//! the typed detail the contract declares, and the request id — never internal error text,
//! upstream bodies or stack traces. Authentication failures all read the same, whatever the cause.
//!
//! A fault of the partner API layer ([`render_upstream`]) keeps its kind and the typed fields the
//! contract defines (entity, conflict reason, rule, path, retry delay), but every free text of
//! it — the faultstring and the detail's `Message` — is replaced by the gateway's own fixed text
//! for that kind; the upstream's text goes to the log only ([`log_text`]). A fault without a
//! contract detail becomes the gateway's own `UpstreamUnavailableFault`.
//!
//! Every text that goes into a fault (reason, `Message`, `Path`, `Rule`) passes through
//! [`sanitize`]: whatever a rejection quotes of the input, the fault is well-formed XML 1.0.
//!
//! HTTP status ([`StatusModes`]): SOAP 1.2 faults follow the SOAP 1.2 HTTP binding (Part 2,
//! 7.5.2.2): `env:Sender` 400, every other code 500 — gSOAP and JAX-WS read the typed fault only
//! from those, and report a 403 or 429 as a transport error — unless `faults.soap12_status =
//! "semantic"` is configured (400, 403, 404, 408, 409, 413, 415, 429, 502, 503, 504 by what
//! happened). SOAP 1.1 faults are sent with 500 as WS-I Basic Profile 1.1 (R1126) requires —
//! JAX-WS and .NET clients only read a SOAP 1.1 fault from a 500 — unless `faults.soap11_status =
//! "semantic"` is configured. `Retry-After` is sent either way.

use http::StatusCode;

use crate::authenticate::AuthError;
pub use crate::config::{Soap11Status, Soap12Status, StatusModes};
use crate::encode::{self, EncodeError, XmlWriter};
use crate::envelope::{FaultCode, SoapVersion};
use crate::forward::ForwardError;
use crate::generated::partner::FaultDetail;
use crate::generated::types::cmn;
use crate::rejection::{EnrollRefusal, Rejection};

impl StatusModes {
    /// The HTTP status of a fault of `version` with `code`, whose semantic status is `semantic`.
    pub fn status(self, version: SoapVersion, code: FaultCode, semantic: StatusCode) -> StatusCode {
        match (version, self.soap11, self.soap12) {
            (SoapVersion::Soap11, Soap11Status::WsI, _) => StatusCode::INTERNAL_SERVER_ERROR,
            (SoapVersion::Soap12, _, Soap12Status::HttpBinding) => match code {
                FaultCode::Sender => StatusCode::BAD_REQUEST,
                FaultCode::VersionMismatch
                | FaultCode::MustUnderstand
                | FaultCode::Receiver
                | FaultCode::DataEncodingUnknown => StatusCode::INTERNAL_SERVER_ERROR,
            },
            (SoapVersion::Soap11, Soap11Status::Semantic, _)
            | (SoapVersion::Soap12, _, Soap12Status::Semantic) => semantic,
        }
    }
}

/// A rendered fault.
#[derive(Debug)]
pub struct FaultResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// The fault envelope.
    pub body: Vec<u8>,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
    /// A short stable label of the outcome for logs and statistics.
    pub outcome: &'static str,
}

/// What a rejection becomes, before encoding.
struct Plan {
    status: StatusCode,
    code: FaultCode,
    reason: String,
    detail: Option<Detail>,
    retry_after: Option<u64>,
    outcome: &'static str,
}

enum Detail {
    AccessDenied(cmn::AccessDeniedReason, &'static str),
    Invalid {
        path: String,
        rule: String,
        message: String,
    },
    Throttled(u32, String),
    Unavailable(&'static str),
    Upstream(FaultDetail),
}

/// An `InvalidRequestFault` plan.
fn invalid(
    status: StatusCode,
    path: &str,
    rule: &str,
    message: String,
    outcome: &'static str,
) -> Plan {
    Plan {
        status,
        code: FaultCode::Sender,
        reason: format!("Invalid Request: {message}"),
        detail: Some(Detail::Invalid {
            path: path.to_string(),
            rule: rule.to_string(),
            message,
        }),
        retry_after: None,
        outcome,
    }
}

/// An `AccessDeniedFault` plan.
fn denied(reason: cmn::AccessDeniedReason, text: &'static str, outcome: &'static str) -> Plan {
    Plan {
        status: StatusCode::FORBIDDEN,
        code: FaultCode::Sender,
        reason: format!("Access Denied: {text}"),
        detail: Some(Detail::AccessDenied(reason, text)),
        retry_after: None,
        outcome,
    }
}

/// An `UpstreamUnavailableFault` plan.
fn unavailable(status: StatusCode, text: &'static str, outcome: &'static str) -> Plan {
    Plan {
        status,
        code: FaultCode::Receiver,
        reason: format!("Upstream Unavailable: {text}"),
        detail: Some(Detail::Unavailable(text)),
        retry_after: None,
        outcome,
    }
}

fn plan(rejection: &Rejection) -> Plan {
    use cmn::AccessDeniedReason as R;
    match rejection {
        Rejection::Transport(e) => invalid(
            e.status(),
            "/",
            e.rule(),
            e.to_string(),
            "invalid-transport",
        ),
        Rejection::Route(e) => invalid(e.status(), "/", e.rule(), e.to_string(), "invalid-route"),
        Rejection::Limit(e) => {
            let status = match e {
                crate::limit::LimitError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                crate::limit::LimitError::BodyTimeout(_)
                | crate::limit::LimitError::BodyTooSlow { .. } => StatusCode::REQUEST_TIMEOUT,
                _ => StatusCode::BAD_REQUEST,
            };
            invalid(
                status,
                "/",
                e.key(),
                format!("{e} ({})", e.key()),
                "limit-exceeded",
            )
        }
        Rejection::Envelope(e) => match e {
            crate::envelope::EnvelopeError::VersionMismatch => Plan {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: FaultCode::VersionMismatch,
                reason: "Version Mismatch: the envelope is neither SOAP 1.1 nor SOAP 1.2".into(),
                detail: None,
                retry_after: None,
                outcome: "version-mismatch",
            },
            other => invalid(
                StatusCode::BAD_REQUEST,
                "/",
                "envelope",
                other.to_string(),
                "invalid-envelope",
            ),
        },
        Rejection::Action(e) => invalid(
            StatusCode::BAD_REQUEST,
            "/",
            "soap-action",
            e.to_string(),
            "soap-action-mismatch",
        ),
        Rejection::Auth(AuthError::MustUnderstand(name)) => Plan {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: FaultCode::MustUnderstand,
            reason: format!("Must Understand: header {name} is not understood"),
            detail: None,
            retry_after: None,
            outcome: "must-understand",
        },
        Rejection::Auth(AuthError::Suspended { .. }) => denied(
            R::PartnerSuspended,
            "partner suspended",
            "denied-partner-suspended",
        ),
        // Missing, duplicate, malformed, unknown partner, wrong/revoked/expired key: one answer.
        Rejection::Auth(_) => denied(
            R::AuthenticationFailed,
            "authentication failed",
            "denied-authentication",
        ),
        Rejection::ClientCert(_) => denied(
            R::ClientCertificate,
            "client certificate missing or not accepted",
            "denied-client-certificate",
        ),
        Rejection::Allow(_) => denied(
            R::SourceNotAllowed,
            "caller not on allowlist",
            "denied-source",
        ),
        Rejection::Authorize(_) => denied(
            R::OperationNotPermitted,
            "operation not permitted",
            "denied-operation",
        ),
        Rejection::Throttle(t) => Plan {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: FaultCode::Sender,
            reason: format!(
                "Throttled: {} req/s {} limit",
                t.per_second,
                match t.scope {
                    crate::throttle::Scope::Partner => "partner",
                    crate::throttle::Scope::Group => "group",
                    crate::throttle::Scope::Callback => "callback",
                }
            ),
            detail: Some(Detail::Throttled(
                u32::try_from(t.retry_after_secs()).unwrap_or(u32::MAX),
                t.to_string(),
            )),
            retry_after: Some(t.retry_after_secs()),
            outcome: "throttled",
        },
        Rejection::InFlight(e) => Plan {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: FaultCode::Sender,
            reason: format!(
                "Throttled: {} requests in flight limit (limits.max_in_flight_per_partner)",
                e.limit
            ),
            detail: Some(Detail::Throttled(1, e.to_string())),
            retry_after: Some(1),
            outcome: "throttled-in-flight",
        },
        Rejection::Decode(e) => invalid(
            StatusCode::BAD_REQUEST,
            &e.path,
            e.rule.as_str(),
            format!("{}: {}", e.path, e.detail),
            "invalid-request",
        ),
        Rejection::Forward(e) => {
            let (status, text, outcome) = forward_refusal(e);
            unavailable(status, text, outcome)
        }
    }
}

/// How a failed forward reads: (HTTP status, reason, outcome label).
fn forward_refusal(e: &ForwardError) -> (StatusCode, &'static str, &'static str) {
    use StatusCode as S;
    match e {
        ForwardError::Timeout(_) => (
            S::GATEWAY_TIMEOUT,
            "the partner API did not answer in time",
            "upstream-timeout",
        ),
        ForwardError::Connect(_) => (
            S::SERVICE_UNAVAILABLE,
            "the partner API is unreachable",
            "upstream-unreachable",
        ),
        ForwardError::Unconfigured => (
            S::SERVICE_UNAVAILABLE,
            "no partner API is configured",
            "upstream-unconfigured",
        ),
        ForwardError::Status(_) | ForwardError::TooLarge(_) | ForwardError::Invalid(_) => (
            S::BAD_GATEWAY,
            "the partner API answered with an invalid response",
            "upstream-invalid",
        ),
        ForwardError::Encode(_) => (
            S::INTERNAL_SERVER_ERROR,
            "the request could not be forwarded",
            "internal",
        ),
    }
}

/// Renders a refusal of the enrollment endpoint as a fault of `version`: a shared stage's as
/// [`render`] does, the endpoint's own with the common fault details the enrollment contract
/// declares. An unknown enrollment id and a wrong pickup secret read the same.
pub fn render_enrollment(
    refusal: &EnrollRefusal,
    version: SoapVersion,
    request_id: &str,
    statuses: StatusModes,
) -> FaultResponse {
    use cmn::AccessDeniedReason as R;
    let throttled = |secs: u64, text: String, outcome: &'static str| Plan {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: FaultCode::Sender,
        reason: format!("Throttled: {text}"),
        detail: Some(Detail::Throttled(
            u32::try_from(secs).unwrap_or(u32::MAX),
            text,
        )),
        retry_after: Some(secs),
        outcome,
    };
    let plan = match refusal {
        EnrollRefusal::Path(rejection) => plan(rejection),
        EnrollRefusal::Disabled => denied(
            R::SourceNotAllowed,
            "enrollment is disabled",
            "enrollment-disabled",
        ),
        EnrollRefusal::Closed(_) => denied(
            R::SourceNotAllowed,
            "enrollment is not open to this address",
            "enrollment-closed",
        ),
        EnrollRefusal::Denied => denied(
            R::AuthenticationFailed,
            "enrollment id or pickup secret not recognised",
            "enrollment-denied",
        ),
        EnrollRefusal::Rate { retry_after_secs } => throttled(
            *retry_after_secs,
            "too many enrollment calls from this address (enrollment.rate_per_minute)".into(),
            "enrollment-throttled",
        ),
        EnrollRefusal::Full => throttled(
            ENROLLMENT_FULL_RETRY_SECS,
            "too many enrollments are waiting for review (enrollment.max_pending)".into(),
            "enrollment-full",
        ),
        EnrollRefusal::Invalid {
            path,
            rule,
            message,
        } => invalid(
            StatusCode::BAD_REQUEST,
            path,
            rule,
            format!("{path}: {message}"),
            "invalid-request",
        ),
        EnrollRefusal::Unavailable(_) => unavailable(
            StatusCode::SERVICE_UNAVAILABLE,
            "enrollment is unavailable, try again later",
            "enrollment-unavailable",
        ),
    };
    finish(plan, version, request_id, statuses)
}

/// `Retry-After` of a refusal because too many enrollments are pending: an operator's review
/// is a matter of hours, not seconds.
pub const ENROLLMENT_FULL_RETRY_SECS: u64 = 3600;

/// Renders a rejection as a fault of `version`.
pub fn render(
    rejection: &Rejection,
    version: SoapVersion,
    request_id: &str,
    statuses: StatusModes,
) -> FaultResponse {
    let plan = plan(rejection);
    finish(plan, version, request_id, statuses)
}

/// Longest text (in characters) in a fault: what the contract's `FaultMessage` and `FaultPath`
/// allow, and the bound of the reason before the request id is appended.
pub const FAULT_TEXT_CHARS: usize = 500;

/// Longest text (in characters) of the partner API layer's own fault texts quoted in the log.
pub const LOG_TEXT_CHARS: usize = 200;

/// Bound of the whole reason written into the envelope (the reason, the request id and slack).
const REASON_CHARS: usize = 1000;

fn gateway_request_id(request_id: &str) -> Option<cmn::GatewayRequestId> {
    cmn::GatewayRequestId::new(request_id.to_string())
        .or_else(|_| cmn::GatewayRequestId::new("unknown".into()))
        .ok()
}

/// The one sanitiser of every text that goes into a fault (reason, `Message`, `Path`, `Rule`)
/// or quotes an upstream's fault text in the log: one line, XML 1.0 characters only, at most
/// `max_chars` characters, trimmed; `None` when nothing is left.
///
/// Tab, LF and CR become a space; every other control character (C0, DEL, C1) and the two
/// non-characters XML 1.0 forbids (U+FFFE, U+FFFF) become U+FFFD (a Rust string holds no
/// surrogates, the only other characters outside XML's `Char`). `]]>` becomes `]] >`: the
/// generated serializer refuses it in a value, which would cost the fault its typed detail.
/// Whatever a rejection quotes of the input, the fault stays well-formed XML.
pub fn sanitize(text: &str, max_chars: usize) -> Option<String> {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(4)));
    let mut count = 0usize;
    for c in text.chars() {
        let c = match c {
            '\t' | '\n' | '\r' => ' ',
            '\u{FFFE}' | '\u{FFFF}' => '\u{FFFD}',
            c if c.is_control() => '\u{FFFD}',
            c => c,
        };
        if c == '>' && out.ends_with("]]") {
            if count == max_chars {
                break;
            }
            out.push(' ');
            count += 1;
        }
        if count == max_chars {
            break;
        }
        out.push(c);
        count += 1;
    }
    let line = out.trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// An upstream's fault text as it may appear in the log: sanitised, at most
/// [`LOG_TEXT_CHARS`] characters (`-` when empty).
pub fn log_text(text: &str) -> String {
    sanitize(text, LOG_TEXT_CHARS).unwrap_or_else(|| "-".to_string())
}

/// A fault `Message` from a text of the gateway's: sanitised, else a fixed fallback.
pub fn message(text: &str) -> cmn::FaultMessage {
    sanitize(text, FAULT_TEXT_CHARS)
        .and_then(|t| cmn::FaultMessage::new(t).ok())
        .unwrap_or_else(fallback_message)
}

#[allow(
    clippy::expect_used,
    reason = "a constant that the unit tests construct"
)]
fn fallback_message() -> cmn::FaultMessage {
    cmn::FaultMessage::new("Request refused.".into()).expect("constant is a valid FaultMessage")
}

fn build_detail(detail: Detail, request_id: &str) -> Option<FaultDetail> {
    let rid = gateway_request_id(request_id)?;
    Some(match detail {
        Detail::AccessDenied(reason, text) => {
            FaultDetail::AccessDenied(Box::new(cmn::AccessDeniedFault {
                reason,
                message: message(&format!("Access denied: {text}.")),
                request_id: rid,
            }))
        }
        Detail::Invalid {
            path,
            rule,
            message: text,
        } => FaultDetail::InvalidRequest(Box::new(cmn::InvalidRequestFault {
            path: sanitize(&path, FAULT_TEXT_CHARS)
                .and_then(|p| cmn::FaultPath::new(p).ok())
                .unwrap_or_else(upstream::root_path),
            rule: sanitize(&rule, FAULT_TEXT_CHARS)
                .and_then(|r| cmn::ValidationRule::new(r).ok())
                .or_else(|| cmn::ValidationRule::new("invalid".into()).ok())?,
            message: message(&text),
            request_id: rid,
        })),
        Detail::Throttled(secs, text) => FaultDetail::Throttled(Box::new(cmn::ThrottledFault {
            retry_after_seconds: secs,
            message: message(&text),
            request_id: rid,
        })),
        Detail::Unavailable(text) => {
            FaultDetail::UpstreamUnavailable(Box::new(cmn::UpstreamUnavailableFault {
                message: message(text),
                request_id: rid,
            }))
        }
        Detail::Upstream(d) => d,
    })
}

fn finish(
    plan: Plan,
    version: SoapVersion,
    request_id: &str,
    statuses: StatusModes,
) -> FaultResponse {
    let status = statuses.status(version, plan.code, plan.status);
    let detail = plan.detail.and_then(|d| build_detail(d, request_id));
    let reason = sanitize(&plan.reason, FAULT_TEXT_CHARS).unwrap_or_else(|| "Fault".to_string());
    let body = write(
        version,
        plan.code,
        &format!("{reason} (request {request_id})"),
        detail
            .as_ref()
            .map(|d| move |w: &mut XmlWriter<'_>| Ok(d.encode(w)?)),
    );
    FaultResponse {
        status,
        body,
        retry_after: plan.retry_after,
        outcome: plan.outcome,
    }
}

/// Writes a fault envelope of `version`: `code`, `reason` (through [`sanitize`] here) and the
/// detail entry `detail` writes. Should the detail fail to be written (its values were validated
/// on construction, so it does not), the fault goes out without it rather than not at all. Every
/// fault partnergate sends, in both directions, is written here.
pub fn write<D>(version: SoapVersion, code: FaultCode, reason: &str, detail: Option<D>) -> Vec<u8>
where
    D: FnOnce(&mut XmlWriter<'_>) -> Result<(), EncodeError>,
{
    let reason = sanitize(reason, REASON_CHARS).unwrap_or_else(|| "Fault".to_string());
    let mut body = Vec::with_capacity(1024);
    if encode::fault(version, &mut body, code, &reason, detail).is_err() {
        body.clear();
        let _ = encode::fault::<encode::NoHeader>(version, &mut body, code, &reason, None);
    }
    body
}

mod problem;
mod upstream;

pub use problem::{
    problem, problem_upstream, ProblemResponse, ProblemType, PROBLEM_JSON, PROBLEM_TYPES,
    TYPE_PREFIX,
};

#[cfg(test)]
use upstream::*;
pub use upstream::{render_layer_fault, render_upstream};

#[cfg(test)]
mod status_tests;
#[cfg(test)]
mod tests;
