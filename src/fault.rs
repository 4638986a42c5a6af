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
//! HTTP status: SOAP 1.2 faults carry a status that fits (400, 403, 404, 409, 413, 429, 502,
//! 503, 504), as the SOAP 1.2 HTTP binding allows. SOAP 1.1 faults are sent with 500 as WS-I
//! Basic Profile 1.1 (R1126) requires — JAX-WS and .NET clients only read a SOAP 1.1 fault from a
//! 500 — unless `faults.soap11_status = "semantic"` is configured; `Retry-After` is sent either way.

use http::StatusCode;

use crate::authenticate::AuthError;
use crate::encode::{self, EncodeError, XmlWriter};
use crate::envelope::{FaultCode, SoapVersion};
use crate::forward::{ForwardError, UpstreamFault};
use crate::generated::partner::FaultDetail;
use crate::generated::types::cmn;
use crate::pipeline::Rejection;

/// How SOAP 1.1 faults choose their HTTP status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Soap11Status {
    /// Always 500 (WS-I Basic Profile R1126; what SOAP 1.1 toolkits expect).
    #[default]
    WsI,
    /// The same status as SOAP 1.2 faults.
    Semantic,
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

fn plan(rejection: &Rejection) -> Plan {
    use cmn::AccessDeniedReason as R;
    let invalid =
        |status: StatusCode, path: &str, rule: &str, message: String, outcome: &'static str| Plan {
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
        };
    let denied = |reason: R, text: &'static str, outcome: &'static str| Plan {
        status: StatusCode::FORBIDDEN,
        code: FaultCode::Sender,
        reason: format!("Access Denied: {text}"),
        detail: Some(Detail::AccessDenied(reason, text)),
        retry_after: None,
        outcome,
    };
    let unavailable = |status: StatusCode, text: &'static str, outcome: &'static str| Plan {
        status,
        code: FaultCode::Receiver,
        reason: format!("Upstream Unavailable: {text}"),
        detail: Some(Detail::Unavailable(text)),
        retry_after: None,
        outcome,
    };
    match rejection {
        Rejection::Transport(e) => invalid(
            e.status(),
            "/",
            e.rule(),
            e.to_string(),
            "invalid-transport",
        ),
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
        Rejection::Forward(e) => match e {
            ForwardError::Timeout(_) => unavailable(
                StatusCode::GATEWAY_TIMEOUT,
                "the partner API did not answer in time",
                "upstream-timeout",
            ),
            ForwardError::Connect(_) => unavailable(
                StatusCode::SERVICE_UNAVAILABLE,
                "the partner API is unreachable",
                "upstream-unreachable",
            ),
            ForwardError::Unconfigured => unavailable(
                StatusCode::SERVICE_UNAVAILABLE,
                "no partner API is configured",
                "upstream-unconfigured",
            ),
            ForwardError::Status(_) | ForwardError::TooLarge(_) | ForwardError::Invalid(_) => {
                unavailable(
                    StatusCode::BAD_GATEWAY,
                    "the partner API answered with an invalid response",
                    "upstream-invalid",
                )
            }
            ForwardError::Encode(_) => unavailable(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the request could not be forwarded",
                "internal",
            ),
        },
    }
}

/// Renders a rejection as a fault of `version`.
pub fn render(
    rejection: &Rejection,
    version: SoapVersion,
    request_id: &str,
    soap11: Soap11Status,
) -> FaultResponse {
    let plan = plan(rejection);
    finish(plan, version, request_id, soap11)
}

/// Longest text (in characters) in a fault: what the contract's `FaultMessage` and `FaultPath`
/// allow, and the bound of the reason before the request id is appended.
pub const FAULT_TEXT_CHARS: usize = 500;

/// Longest text (in characters) of the partner API layer's own fault texts quoted in the log.
pub const LOG_TEXT_CHARS: usize = 200;

/// Bound of the whole reason written into the envelope (the reason, the request id and slack).
const REASON_CHARS: usize = 1000;

/// What the partner reads for an upstream fault without a contract detail, and for the
/// upstream's own `UpstreamUnavailableFault`.
const UPSTREAM_FAULT: &str = "the partner API could not serve the request";

/// HTTP status and outcome label of a fault of the partner API layer.
fn upstream_status(detail: Option<&FaultDetail>) -> (StatusCode, &'static str) {
    match detail {
        Some(FaultDetail::NotFound(_)) => (StatusCode::NOT_FOUND, "upstream-not-found"),
        Some(FaultDetail::Conflict(_)) => (StatusCode::CONFLICT, "upstream-conflict"),
        Some(FaultDetail::InvalidRequest(_)) => {
            (StatusCode::BAD_REQUEST, "upstream-invalid-request")
        }
        Some(FaultDetail::AccessDenied(_)) => (StatusCode::FORBIDDEN, "upstream-access-denied"),
        Some(FaultDetail::Throttled(_)) => (StatusCode::TOO_MANY_REQUESTS, "upstream-throttled"),
        Some(FaultDetail::UpstreamUnavailable(_)) | None => {
            (StatusCode::BAD_GATEWAY, "upstream-fault")
        }
    }
}

fn upstream_retry_after(detail: Option<&FaultDetail>) -> Option<u64> {
    match detail {
        Some(FaultDetail::Throttled(t)) => Some(u64::from(t.retry_after_seconds.max(1))),
        _ => None,
    }
}

fn upstream_code(code: FaultCode) -> FaultCode {
    match code {
        FaultCode::Sender => FaultCode::Sender,
        _ => FaultCode::Receiver,
    }
}

/// Renders a fault the partner API layer returned, for the partner. A typed contract fault
/// (NotFound, Conflict, InvalidRequest …) keeps its kind, its status and the typed fields the
/// contract defines, with the gateway's request id; its free texts — the faultstring and the
/// detail's `Message` (and an `InvalidRequestFault` `Path` that is not an element path) — are
/// replaced by the gateway's own fixed text for that kind. A fault without a contract detail
/// becomes the gateway's own `UpstreamUnavailableFault`. The upstream's texts are logged
/// (sanitised, at most [`LOG_TEXT_CHARS`] each), never sent to the partner.
pub fn render_upstream(
    fault: &UpstreamFault,
    version: SoapVersion,
    request_id: &str,
    soap11: Soap11Status,
) -> FaultResponse {
    let plan = match &fault.detail {
        None => {
            tracing::warn!(
                request_id,
                upstream_reason = ?log_text(&fault.reason),
                "the partner API answered with a fault without a contract detail; the partner gets UpstreamUnavailable"
            );
            Plan {
                status: StatusCode::BAD_GATEWAY,
                code: FaultCode::Receiver,
                reason: format!("Upstream Unavailable: {UPSTREAM_FAULT}"),
                detail: Some(Detail::Unavailable(UPSTREAM_FAULT)),
                retry_after: None,
                outcome: "upstream-fault",
            }
        }
        Some(detail) => {
            let (reason, own) = with_own_texts(detail, request_id);
            let upstream_path = match detail {
                FaultDetail::InvalidRequest(d) => log_text(d.path.as_str()),
                _ => String::new(),
            };
            tracing::info!(
                request_id,
                kind = ?detail.kind(),
                upstream_reason = ?log_text(&fault.reason),
                upstream_message = ?log_text(upstream_message(detail)),
                upstream_path = ?upstream_path,
                "the partner API answered with a contract fault; its texts are replaced by the gateway's"
            );
            let (status, outcome) = upstream_status(Some(detail));
            Plan {
                status,
                code: upstream_code(fault.code),
                reason,
                detail: own.map(Detail::Upstream),
                retry_after: upstream_retry_after(Some(detail)),
                outcome,
            }
        }
    };
    finish(plan, version, request_id, soap11)
}

/// Renders a typed fault of the partner API layer itself (`partnergate upstream serve`, which
/// answers the gateway): its own texts, sanitised, and its own request id. The gateway renders
/// what it receives with [`render_upstream`].
pub fn render_layer_fault(
    fault: &UpstreamFault,
    version: SoapVersion,
    request_id: &str,
    soap11: Soap11Status,
) -> FaultResponse {
    let (status, outcome) = upstream_status(fault.detail.as_ref());
    let mut detail = fault.detail.clone();
    if let Some(d) = detail.as_mut() {
        set_request_id(d, request_id);
    }
    let plan = Plan {
        status,
        code: upstream_code(fault.code),
        reason: fault.reason.clone(),
        detail: detail.map(Detail::Upstream),
        retry_after: upstream_retry_after(fault.detail.as_ref()),
        outcome,
    };
    finish(plan, version, request_id, soap11)
}

fn set_request_id(detail: &mut FaultDetail, request_id: &str) {
    let Ok(id) = cmn::GatewayRequestId::new(request_id.to_string()) else {
        return;
    };
    match detail {
        FaultDetail::AccessDenied(d) => d.request_id = id,
        FaultDetail::InvalidRequest(d) => d.request_id = id,
        FaultDetail::Throttled(d) => d.request_id = id,
        FaultDetail::NotFound(d) => d.request_id = id,
        FaultDetail::Conflict(d) => d.request_id = id,
        FaultDetail::UpstreamUnavailable(d) => d.request_id = id,
    }
}

/// The upstream detail's `Message` (for the log).
fn upstream_message(detail: &FaultDetail) -> &str {
    match detail {
        FaultDetail::AccessDenied(d) => d.message.as_str(),
        FaultDetail::InvalidRequest(d) => d.message.as_str(),
        FaultDetail::Throttled(d) => d.message.as_str(),
        FaultDetail::NotFound(d) => d.message.as_str(),
        FaultDetail::Conflict(d) => d.message.as_str(),
        FaultDetail::UpstreamUnavailable(d) => d.message.as_str(),
    }
}

/// The gateway's reason and a copy of `detail` with the typed fields kept, the gateway's fixed
/// `Message` and the gateway's request id. Struct literals, not field updates: a field the
/// contract adds does not compile until someone decides whether it is typed or free text.
fn with_own_texts(detail: &FaultDetail, request_id: &str) -> (String, Option<FaultDetail>) {
    use cmn::AccessDeniedReason as A;
    use cmn::ConflictReason as C;
    use cmn::NotFoundEntity as E;
    let rid = || gateway_request_id(request_id);
    match detail {
        FaultDetail::NotFound(d) => {
            let entity = match d.entity {
                E::Account => "account",
                E::Service => "service",
                E::Device => "device",
                E::Feature => "feature",
            };
            let own = rid().map(|request_id| {
                FaultDetail::NotFound(Box::new(cmn::NotFoundFault {
                    entity: d.entity.clone(),
                    message: message(&format!(
                        "The {entity} does not exist or is not visible to this partner."
                    )),
                    request_id,
                }))
            });
            (format!("Not Found: {entity}"), own)
        }
        FaultDetail::Conflict(d) => {
            let (name, text) = match d.reason {
                C::Duplicate => (
                    "duplicate",
                    "The entity already exists, or the RequestId was used for a different request.",
                ),
                C::InvalidStatusTransition => (
                    "invalid-status-transition",
                    "The requested status change is not allowed from the current status.",
                ),
                C::MacAddressInUse => (
                    "mac-address-in-use",
                    "The MAC address is registered elsewhere.",
                ),
                C::FeatureSettingsMismatch => (
                    "feature-settings-mismatch",
                    "The Settings choice does not match the Feature code.",
                ),
                C::Terminated => (
                    "terminated",
                    "The entity is TERMINATED and cannot be changed.",
                ),
            };
            let own = rid().map(|request_id| {
                FaultDetail::Conflict(Box::new(cmn::ConflictFault {
                    reason: d.reason.clone(),
                    message: message(text),
                    request_id,
                }))
            });
            (format!("Conflict: {name}"), own)
        }
        FaultDetail::InvalidRequest(d) => {
            let own = rid().map(|request_id| {
                FaultDetail::InvalidRequest(Box::new(cmn::InvalidRequestFault {
                    path: if is_element_path(d.path.as_str()) {
                        d.path.clone()
                    } else {
                        root_path()
                    },
                    rule: d.rule.clone(),
                    message: message("The partner API refused the request: see Path and Rule."),
                    request_id,
                }))
            });
            (
                "Invalid Request: the partner API refused the request".to_string(),
                own,
            )
        }
        FaultDetail::Throttled(d) => {
            let secs = d.retry_after_seconds;
            let own = rid().map(|request_id| {
                FaultDetail::Throttled(Box::new(cmn::ThrottledFault {
                    retry_after_seconds: secs.max(1),
                    message: message(&format!(
                        "The partner API is busy: retry after {} seconds.",
                        secs.max(1)
                    )),
                    request_id,
                }))
            });
            ("Throttled: the partner API is busy".to_string(), own)
        }
        FaultDetail::AccessDenied(d) => {
            let text = match d.reason {
                A::AuthenticationFailed => "authentication failed",
                A::SourceNotAllowed => "caller not on allowlist",
                A::OperationNotPermitted => "operation not permitted",
                A::PartnerSuspended => "partner suspended",
            };
            let own = rid().map(|request_id| {
                FaultDetail::AccessDenied(Box::new(cmn::AccessDeniedFault {
                    reason: d.reason.clone(),
                    message: message(&format!("Access denied: {text}.")),
                    request_id,
                }))
            });
            (format!("Access Denied: {text}"), own)
        }
        FaultDetail::UpstreamUnavailable(_) => {
            let own = rid().map(|request_id| {
                FaultDetail::UpstreamUnavailable(Box::new(cmn::UpstreamUnavailableFault {
                    message: message(UPSTREAM_FAULT),
                    request_id,
                }))
            });
            (format!("Upstream Unavailable: {UPSTREAM_FAULT}"), own)
        }
    }
}

/// `/` or `/Name/Name[2]/…`: element names (ASCII letters, digits, `_`, `-`, `.`, not starting
/// with a digit, `-` or `.`) with an optional position, as the contract's element paths are
/// written. Anything else in an upstream's `Path` is free text and is not passed on.
fn is_element_path(path: &str) -> bool {
    if path == "/" {
        return true;
    }
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    path.len() <= FAULT_TEXT_CHARS
        && rest.split('/').all(|step| {
            let (name, position) = match step.split_once('[') {
                Some((name, pos)) => (name, Some(pos)),
                None => (step, None),
            };
            let name_ok = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            let position_ok = position.is_none_or(|p| {
                p.strip_suffix(']').is_some_and(|digits| {
                    !digits.is_empty()
                        && digits.len() <= 6
                        && digits.bytes().all(|b| b.is_ascii_digit())
                })
            });
            name_ok && position_ok
        })
}

#[allow(
    clippy::expect_used,
    reason = "a constant that the unit tests construct"
)]
fn root_path() -> cmn::FaultPath {
    cmn::FaultPath::new("/".into()).expect("constant is a valid FaultPath")
}

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
                .unwrap_or_else(root_path),
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
    soap11: Soap11Status,
) -> FaultResponse {
    let status = match (version, soap11) {
        (SoapVersion::Soap11, Soap11Status::WsI) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => plan.status,
    };
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

#[cfg(test)]
mod tests;
