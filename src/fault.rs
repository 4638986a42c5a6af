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
                upstream_reason = %log_text(&fault.reason),
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
                upstream_reason = %log_text(&fault.reason),
                upstream_message = %log_text(upstream_message(detail)),
                upstream_path = %upstream_path,
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
                    retry_after_seconds: secs,
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
mod tests {
    use super::*;
    use crate::decode::{self, DecodeLimits};
    use crate::envelope;
    use crate::pipeline::ActionError;

    const RID: &str = "gw-1";

    fn is_xml_char(c: char) -> bool {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    }

    /// Texts a refusal may quote: every character XML 1.0 forbids that a Rust string can hold
    /// (C0 controls, U+FFFE, U+FFFF), C1 controls and DEL, markup, the CDATA end, and length.
    fn hostile_quotes() -> Vec<String> {
        let controls: String = ('\u{0}'..='\u{1F}').collect();
        vec![
            "</a\u{FFFF}b>".to_string(),
            "\u{FFFF}".to_string(),
            "\u{FFFE}x\u{FFFF}".to_string(),
            controls.clone(),
            format!("a{controls}b"),
            "\u{7F}\u{80}\u{85}\u{9F}".to_string(),
            "]]>".to_string(),
            "]]]]>>]]>".to_string(),
            "<x:y a=\"1\">&amp;&lt;&#0;&#xFFFF;</x:y>".to_string(),
            "& < > \" '".to_string(),
            format!("{}]]>\u{FFFF}", "]".repeat(498)),
            "x".repeat(100_000),
            "\u{FFFF}".repeat(5_000),
            format!("{}\u{FFFF}", "é".repeat(600)),
            " \t\r\n".to_string(),
            String::new(),
        ]
    }

    /// Every rejection that can carry a text, with `q` in every text, and every other variant.
    fn rejections(q: &str) -> Vec<Rejection> {
        use crate::allowlist::AllowError;
        use crate::authorize::AuthorizeError;
        use crate::decode::{DecodeError, Rule};
        use crate::envelope::EnvelopeError as E;
        use crate::limit::LimitError as L;
        use crate::pipeline::TransportError as T;
        use crate::store::PartnerStatus;
        use crate::throttle::{Scope, Throttled};
        let s = || q.to_string();
        let mut all = vec![
            Rejection::Transport(T::ContentType(s())),
            Rejection::Transport(T::VersionConflict),
            Rejection::Transport(T::DuplicateAction),
            Rejection::Transport(T::ContentEncoding(s())),
            Rejection::Limit(L::BodyTooLarge { limit: 1 }),
            Rejection::Limit(L::BodyTimeout(std::time::Duration::from_millis(1))),
            Rejection::Limit(L::BodyRead(s())),
            Rejection::Limit(L::BodyTooSlow {
                bytes_per_second: 512,
                window: std::time::Duration::from_secs(5),
            }),
            Rejection::Limit(L::NotUtf8),
            Rejection::Limit(L::DocumentStart),
            Rejection::Limit(L::Doctype),
            Rejection::Limit(L::ProcessingInstruction),
            Rejection::Limit(L::Malformed(s())),
            Rejection::Limit(L::Xml {
                what: "max_depth",
                limit: 1,
            }),
            Rejection::Envelope(E::Malformed(s())),
            Rejection::Envelope(E::Encoding),
            Rejection::Envelope(E::Doctype),
            Rejection::Envelope(E::ProcessingInstruction),
            Rejection::Envelope(E::NotAnEnvelope),
            Rejection::Envelope(E::VersionMismatch),
            Rejection::Envelope(E::UnexpectedElement(s())),
            Rejection::Envelope(E::NoBody),
            Rejection::Envelope(E::EmptyBody),
            Rejection::Envelope(E::MultipleBodyElements),
            Rejection::Envelope(E::Unqualified(s())),
            Rejection::Envelope(E::AttributeNotAllowed(s())),
            Rejection::Envelope(E::TextNotAllowed("Body")),
            Rejection::Envelope(E::TrailingContent),
            Rejection::Action(ActionError {
                action: s(),
                body: "GetAccount",
            }),
            Rejection::Auth(AuthError::Missing),
            Rejection::Auth(AuthError::Duplicate),
            Rejection::Auth(AuthError::Malformed(s())),
            Rejection::Auth(AuthError::UnknownPartner { claimed: s() }),
            Rejection::Auth(AuthError::WrongKey { claimed: s() }),
            Rejection::Auth(AuthError::Suspended {
                claimed: s(),
                status: PartnerStatus::Suspended,
            }),
            Rejection::Auth(AuthError::MustUnderstand(s())),
            Rejection::Allow(AllowError::NotAllowed([192, 0, 2, 1].into())),
            Rejection::Allow(AllowError::BadForwardingHeader),
            Rejection::Authorize(AuthorizeError {
                permission: "accounts.get",
            }),
            Rejection::Throttle(Throttled {
                scope: Scope::Group,
                per_second: 3,
                retry_after: std::time::Duration::from_millis(1500),
            }),
            Rejection::InFlight(crate::throttle::TooManyInFlight { limit: 2 }),
            Rejection::Forward(ForwardError::Unconfigured),
            Rejection::Forward(ForwardError::Connect(s())),
            Rejection::Forward(ForwardError::Timeout(std::time::Duration::from_secs(1))),
            Rejection::Forward(ForwardError::Status(599)),
            Rejection::Forward(ForwardError::TooLarge(1)),
            Rejection::Forward(ForwardError::Invalid(s())),
            Rejection::Forward(ForwardError::Encode(s())),
        ];
        for rule in [Rule::Pattern, Rule::InvalidCharacter, Rule::Malformed] {
            all.push(Rejection::Decode(DecodeError {
                path: s(),
                rule,
                detail: s(),
            }));
            all.push(Rejection::Decode(DecodeError {
                path: format!("/GetAccount/{q}"),
                rule,
                detail: s(),
            }));
        }
        // A new stage does not compile until it is added above.
        for r in &all {
            match r {
                Rejection::Transport(_)
                | Rejection::Limit(_)
                | Rejection::Envelope(_)
                | Rejection::Action(_)
                | Rejection::Auth(_)
                | Rejection::Allow(_)
                | Rejection::Authorize(_)
                | Rejection::Throttle(_)
                | Rejection::InFlight(_)
                | Rejection::Decode(_)
                | Rejection::Forward(_) => {}
            }
        }
        all
    }

    /// The whole fault is well-formed XML 1.0 (every character allowed, quick-xml reads it to
    /// the end with end names and comments checked, one root), a SOAP fault of `version` that
    /// the envelope scan and the fault parser accept, with a typed detail that decodes strictly.
    /// Returns the reason and the detail.
    fn assert_well_formed(
        body: &[u8],
        version: SoapVersion,
        what: &str,
    ) -> (String, Option<FaultDetail>) {
        let (_, reason, detail) = assert_well_formed_fault(body, version, what);
        (reason, detail)
    }

    fn assert_well_formed_fault(
        body: &[u8],
        version: SoapVersion,
        what: &str,
    ) -> (FaultCode, String, Option<FaultDetail>) {
        let text = std::str::from_utf8(body).unwrap_or_else(|e| panic!("{what}: not UTF-8: {e}"));
        if let Some(c) = text.chars().find(|c| !is_xml_char(*c)) {
            panic!("{what}: U+{:04X} in the fault: {text:?}", u32::from(c));
        }
        let mut reader = quick_xml::Reader::from_str(text);
        reader.config_mut().check_end_names = true;
        reader.config_mut().check_comments = true;
        let (mut depth, mut roots) = (0usize, 0usize);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Start(s)) => {
                    roots += usize::from(depth == 0);
                    depth += 1;
                    for a in s.attributes().with_checks(true) {
                        let a = a.unwrap_or_else(|e| panic!("{what}: attribute: {e}"));
                        a.decode_and_unescape_value(reader.decoder())
                            .unwrap_or_else(|e| panic!("{what}: attribute value: {e}"));
                    }
                }
                Ok(quick_xml::events::Event::End(_)) => depth -= 1,
                Ok(quick_xml::events::Event::Empty(_)) => roots += usize::from(depth == 0),
                Ok(quick_xml::events::Event::Text(t)) => {
                    t.decode().unwrap_or_else(|e| panic!("{what}: text: {e}"));
                }
                Ok(quick_xml::events::Event::GeneralRef(r)) => {
                    let name = r.decode().unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert!(
                        matches!(&*name, "lt" | "gt" | "amp" | "quot" | "apos")
                            || r.resolve_char_ref().ok().flatten().is_some_and(is_xml_char),
                        "{what}: reference &{name};"
                    );
                }
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(quick_xml::events::Event::CData(_) | quick_xml::events::Event::Decl(_)) => {}
                Ok(other) => panic!("{what}: unexpected {other:?}"),
                Err(e) => panic!("{what}: not well-formed ({e}): {text:?}"),
            }
        }
        assert_eq!((depth, roots), (0, 1), "{what}: {text:?}");
        let env = envelope::scan(body).unwrap_or_else(|e| panic!("{what}: scan: {e}"));
        assert_eq!(env.version, version, "{what}");
        let fault = envelope::parse_fault(&env).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            fault.reason.ends_with(&format!(" (request {RID})")),
            "{what}: {}",
            fault.reason
        );
        assert!(
            fault.reason.chars().count() <= FAULT_TEXT_CHARS + 20,
            "{what}: a reason of {} characters",
            fault.reason.chars().count()
        );
        let detail = fault.detail.as_ref().map(|d| {
            decode::partner_fault(d, DecodeLimits::default())
                .unwrap_or_else(|e| panic!("{what}: the detail does not decode ({e}): {text:?}"))
        });
        (fault.code, fault.reason.to_string(), detail)
    }

    /// Found by the `pipeline` fuzz target (`fuzz/regressions/pipeline/u-ffff-in-an-end-tag`):
    /// a body holding `</a\u{FFFF}b>` got a fault quoting quick-xml's error text with the raw
    /// U+FFFF, which no XML parser accepts. Every rule's error, quoting anything, renders as a
    /// well-formed fault that keeps its typed detail, in both SOAP versions and status modes.
    #[test]
    fn every_rejection_quoting_hostile_text_renders_a_well_formed_fault() {
        let mut rendered = 0;
        for q in hostile_quotes() {
            for rejection in rejections(&q) {
                let with_detail = !matches!(
                    rejection,
                    Rejection::Envelope(crate::envelope::EnvelopeError::VersionMismatch)
                        | Rejection::Auth(AuthError::MustUnderstand(_))
                );
                for version in [SoapVersion::Soap11, SoapVersion::Soap12] {
                    for mode in [Soap11Status::WsI, Soap11Status::Semantic] {
                        let f = render(&rejection, version, RID, mode);
                        let what = format!("{} {version:?} {q:?}", rejection.stage());
                        let (_, detail) = assert_well_formed(&f.body, version, &what);
                        assert_eq!(detail.is_some(), with_detail, "{what}");
                        rendered += 1;
                    }
                }
            }
        }
        assert!(rendered > 3000, "{rendered}");
    }

    /// The quoted text itself: what the partner reads of `</a\u{FFFF}b>` and the rest.
    #[test]
    fn the_sanitiser_keeps_one_line_of_xml_characters() {
        assert_eq!(
            sanitize("</a\u{FFFF}b>", 500).as_deref(),
            Some("</a\u{FFFD}b>")
        );
        assert_eq!(
            sanitize("a\u{0}b\u{1F}c\u{7F}d\u{85}e\u{FFFE}f", 500).as_deref(),
            Some("a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}e\u{FFFD}f")
        );
        assert_eq!(sanitize("a\tb\r\nc", 500).as_deref(), Some("a b  c"));
        assert_eq!(sanitize("x]]>y]]]>z", 500).as_deref(), Some("x]] >y]]] >z"));
        assert_eq!(sanitize(" \t\r\n", 500), None);
        assert_eq!(sanitize("", 500), None);
        assert_eq!(sanitize(&"é".repeat(600), 500), Some("é".repeat(500)));
        // The CDATA end cut in the middle stays harmless, and the cap holds with it.
        assert_eq!(sanitize("ab]]>", 4).as_deref(), Some("ab]]"));
        assert_eq!(sanitize("a]]>", 4).as_deref(), Some("a]]"));
        assert_eq!(log_text(&"x".repeat(1000)).len(), LOG_TEXT_CHARS);
        assert_eq!(log_text("\u{0}"), "\u{FFFD}");
        assert_eq!(log_text(""), "-");
    }

    /// The fuzz target's input, through the limits pass: quick-xml's error quotes the end tag
    /// with its U+FFFF; the partner reads U+FFFD in its place.
    #[test]
    fn a_forbidden_character_in_an_end_tag_is_quoted_as_a_replacement_character() {
        let doc = "<soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\">\
            <soap:Body><a>x</a\u{FFFF}b></soap:Body></soap:Envelope>";
        let e = crate::limit::check_xml(doc.as_bytes(), &crate::config::XmlLimits::default())
            .expect_err("malformed");
        assert!(e.to_string().contains('\u{FFFF}'), "{e}");
        let f = render(
            &Rejection::Limit(e),
            SoapVersion::Soap12,
            RID,
            Soap11Status::WsI,
        );
        let (reason, detail) = assert_well_formed(&f.body, SoapVersion::Soap12, "end tag");
        let expected =
            "not well-formed XML: ill-formed document: expected `</a>`, but `</a\u{FFFD}b>` was found (malformed)";
        assert_eq!(
            reason,
            format!("Invalid Request: {expected} (request {RID})")
        );
        match detail {
            Some(FaultDetail::InvalidRequest(d)) => {
                assert_eq!(
                    (d.path.as_str(), d.rule.as_str(), d.message.as_str()),
                    ("/", "malformed", expected)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    /// What a partner API layer's fault may say (issue 14: an Oracle error with a password).
    const SECRET: &str =
        "java.sql.SQLException: ORA-01017 at db-int-7.corp.local:1521 user=prov_admin password=hunter2";

    /// No piece of the upstream's text is in the fault.
    fn assert_no_upstream_text(body: &[u8], what: &str) {
        let text = String::from_utf8_lossy(body);
        for piece in SECRET
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|p| p.len() >= 4)
            .chain(["gw-upstream-1"])
        {
            assert!(!text.contains(piece), "{what}: {piece:?} in {text}");
        }
    }

    fn secret_message() -> cmn::FaultMessage {
        cmn::FaultMessage::new(SECRET.into()).expect("a valid FaultMessage")
    }

    fn upstream_rid() -> cmn::GatewayRequestId {
        cmn::GatewayRequestId::new("gw-upstream-1".into()).expect("valid")
    }

    fn own_rid() -> cmn::GatewayRequestId {
        cmn::GatewayRequestId::new(RID.into()).expect("valid")
    }

    #[test]
    fn an_upstream_fault_without_detail_becomes_our_upstream_unavailable() {
        for code in [FaultCode::Sender, FaultCode::Receiver] {
            let fault = UpstreamFault {
                code,
                reason: format!("{SECRET}\u{FFFF}\n\tat oracle.jdbc.driver"),
                detail: None,
            };
            for version in [SoapVersion::Soap11, SoapVersion::Soap12] {
                let f = render_upstream(&fault, version, RID, Soap11Status::Semantic);
                assert_eq!(
                    (f.status, f.outcome, f.retry_after),
                    (StatusCode::BAD_GATEWAY, "upstream-fault", None)
                );
                let (code, reason, detail) =
                    assert_well_formed_fault(&f.body, version, "no detail");
                assert_eq!(code, FaultCode::Receiver);
                assert_eq!(
                    reason,
                    "Upstream Unavailable: the partner API could not serve the request (request gw-1)"
                );
                assert_eq!(
                    detail,
                    Some(FaultDetail::UpstreamUnavailable(Box::new(
                        cmn::UpstreamUnavailableFault {
                            message: message("the partner API could not serve the request"),
                            request_id: own_rid(),
                        }
                    )))
                );
                assert_no_upstream_text(&f.body, "no detail");
            }
        }
    }

    /// Every contract fault of the upstream: its kind, status and typed fields, the gateway's
    /// request id, and the gateway's own faultstring and `Message` — nothing of the upstream's.
    #[test]
    fn typed_upstream_faults_keep_their_typed_fields_and_get_our_texts() {
        use cmn::{AccessDeniedReason as A, ConflictReason as C, NotFoundEntity as E};
        let path = |p: &str| cmn::FaultPath::new(p.into()).expect("valid");
        let rule = cmn::ValidationRule::new("pattern".into()).expect("valid");
        let invalid = |p: &str, own: bool| {
            FaultDetail::InvalidRequest(Box::new(cmn::InvalidRequestFault {
                path: path(p),
                rule: rule.clone(),
                message: if own {
                    message("The partner API refused the request: see Path and Rule.")
                } else {
                    secret_message()
                },
                request_id: if own { own_rid() } else { upstream_rid() },
            }))
        };
        // (upstream detail, SOAP 1.2 status, outcome, Retry-After, reason, detail the partner gets)
        let cases = vec![
            (
                FaultDetail::NotFound(Box::new(cmn::NotFoundFault {
                    entity: E::Device,
                    message: secret_message(),
                    request_id: upstream_rid(),
                })),
                404,
                "upstream-not-found",
                None,
                "Not Found: device",
                FaultDetail::NotFound(Box::new(cmn::NotFoundFault {
                    entity: E::Device,
                    message: message(
                        "The device does not exist or is not visible to this partner.",
                    ),
                    request_id: own_rid(),
                })),
            ),
            (
                FaultDetail::Conflict(Box::new(cmn::ConflictFault {
                    reason: C::MacAddressInUse,
                    message: secret_message(),
                    request_id: upstream_rid(),
                })),
                409,
                "upstream-conflict",
                None,
                "Conflict: mac-address-in-use",
                FaultDetail::Conflict(Box::new(cmn::ConflictFault {
                    reason: C::MacAddressInUse,
                    message: message("The MAC address is registered elsewhere."),
                    request_id: own_rid(),
                })),
            ),
            (
                invalid("/AddDevice/Device/MacAddress", false),
                400,
                "upstream-invalid-request",
                None,
                "Invalid Request: the partner API refused the request",
                invalid("/AddDevice/Device/MacAddress", true),
            ),
            (
                invalid(SECRET, false),
                400,
                "upstream-invalid-request",
                None,
                "Invalid Request: the partner API refused the request",
                invalid("/", true),
            ),
            (
                FaultDetail::Throttled(Box::new(cmn::ThrottledFault {
                    retry_after_seconds: 30,
                    message: secret_message(),
                    request_id: upstream_rid(),
                })),
                429,
                "upstream-throttled",
                Some(30),
                "Throttled: the partner API is busy",
                FaultDetail::Throttled(Box::new(cmn::ThrottledFault {
                    retry_after_seconds: 30,
                    message: message("The partner API is busy: retry after 30 seconds."),
                    request_id: own_rid(),
                })),
            ),
            (
                FaultDetail::AccessDenied(Box::new(cmn::AccessDeniedFault {
                    reason: A::SourceNotAllowed,
                    message: secret_message(),
                    request_id: upstream_rid(),
                })),
                403,
                "upstream-access-denied",
                None,
                "Access Denied: caller not on allowlist",
                FaultDetail::AccessDenied(Box::new(cmn::AccessDeniedFault {
                    reason: A::SourceNotAllowed,
                    message: message("Access denied: caller not on allowlist."),
                    request_id: own_rid(),
                })),
            ),
            (
                FaultDetail::UpstreamUnavailable(Box::new(cmn::UpstreamUnavailableFault {
                    message: secret_message(),
                    request_id: upstream_rid(),
                })),
                502,
                "upstream-fault",
                None,
                "Upstream Unavailable: the partner API could not serve the request",
                FaultDetail::UpstreamUnavailable(Box::new(cmn::UpstreamUnavailableFault {
                    message: message("the partner API could not serve the request"),
                    request_id: own_rid(),
                })),
            ),
        ];
        for (upstream, status, outcome, retry_after, reason, expected) in cases {
            let fault = UpstreamFault {
                code: FaultCode::Sender,
                reason: format!("{SECRET}\u{FFFF}"),
                detail: Some(upstream),
            };
            for version in [SoapVersion::Soap11, SoapVersion::Soap12] {
                let f = render_upstream(&fault, version, RID, Soap11Status::Semantic);
                assert_eq!(
                    (f.status.as_u16(), f.outcome, f.retry_after),
                    (status, outcome, retry_after),
                    "{reason}"
                );
                let (code, got_reason, detail) = assert_well_formed_fault(&f.body, version, reason);
                assert_eq!(code, FaultCode::Sender);
                assert_eq!(got_reason, format!("{reason} (request gw-1)"));
                assert_eq!(detail.as_ref(), Some(&expected));
                assert_no_upstream_text(&f.body, reason);
            }
        }
    }

    /// Captures what a tracing subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    fn log_of(f: impl FnOnce()) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = captured.0.lock().expect("log buffer").clone();
        String::from_utf8(bytes).expect("UTF-8 log")
    }

    /// The upstream's texts go to the log, with the request id: one line, sanitised, at most
    /// LOG_TEXT_CHARS characters each.
    #[test]
    fn the_upstream_texts_are_logged_cut_and_on_one_line() {
        let long = format!("{SECRET}\n\tat\u{0}\u{FFFF} {}TAIL", "x".repeat(300));
        let fault = UpstreamFault {
            code: FaultCode::Receiver,
            reason: long.clone(),
            detail: None,
        };
        let log = log_of(|| {
            render_upstream(&fault, SoapVersion::Soap11, RID, Soap11Status::WsI);
        });
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.contains(" WARN "), "{log}");
        assert!(log.contains("request_id=\"gw-1\""), "{log}");
        let cut = log_text(&long);
        assert_eq!(cut.chars().count(), LOG_TEXT_CHARS);
        assert!(
            cut.starts_with(&format!("{SECRET}  at\u{FFFD}\u{FFFD} xxx")),
            "{cut}"
        );
        assert!(log.ends_with(&format!("upstream_reason={cut}\n")), "{log}");
        assert!(!log.contains("TAIL"), "{log}");

        let fault = UpstreamFault {
            code: FaultCode::Sender,
            reason: "Not Found: account".into(),
            detail: Some(FaultDetail::NotFound(Box::new(cmn::NotFoundFault {
                entity: cmn::NotFoundEntity::Account,
                message: secret_message(),
                request_id: upstream_rid(),
            }))),
        };
        let log = log_of(|| {
            render_upstream(&fault, SoapVersion::Soap12, RID, Soap11Status::WsI);
        });
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.contains(" INFO "), "{log}");
        assert!(log.contains("request_id=\"gw-1\""), "{log}");
        assert!(log.contains("upstream_reason=Not Found: account "), "{log}");
        assert!(
            log.contains(&format!("upstream_message={SECRET} ")),
            "{log}"
        );
    }

    #[test]
    fn only_element_paths_of_an_upstream_are_passed_on() {
        for ok in [
            "/",
            "/GetAccount",
            "/AddDevice/Device/MacAddress",
            "/A/B[2]/_c-d.e",
        ] {
            assert!(is_element_path(ok), "{ok}");
        }
        for no in [
            "",
            "GetAccount",
            "//",
            "/a/",
            "/a b",
            "/1a",
            "/a[x]",
            "/a[]",
            "/a[1]b",
            "/password=hunter2",
            "/ORA-01017 at db",
            "/a/\u{e9}",
        ] {
            assert!(!is_element_path(no), "{no}");
        }
    }

    /// The standalone partner API layer answers the gateway with its own texts (the gateway
    /// keeps them out of the partner's fault and logs them), sanitised like every fault text.
    #[test]
    fn the_layers_own_fault_keeps_its_texts() {
        let fault = UpstreamFault {
            code: FaultCode::Sender,
            reason: "Not Found: account: Account ACC-0000009999 does not exist.\u{FFFF}".into(),
            detail: Some(FaultDetail::NotFound(Box::new(cmn::NotFoundFault {
                entity: cmn::NotFoundEntity::Account,
                message: message("Account ACC-0000009999 does not exist."),
                request_id: upstream_rid(),
            }))),
        };
        let f = render_layer_fault(&fault, SoapVersion::Soap11, RID, Soap11Status::WsI);
        assert_eq!(f.status, StatusCode::INTERNAL_SERVER_ERROR);
        let (reason, detail) = assert_well_formed(&f.body, SoapVersion::Soap11, "layer");
        assert_eq!(
            reason,
            "Not Found: account: Account ACC-0000009999 does not exist.\u{FFFD} (request gw-1)"
        );
        match detail {
            Some(FaultDetail::NotFound(d)) => {
                assert_eq!(d.message.as_str(), "Account ACC-0000009999 does not exist.");
                assert_eq!(d.request_id, own_rid());
            }
            other => panic!("{other:?}"),
        }
    }

    /// Found with the `pipeline` fuzz invariant "every refusal carries its typed detail": a
    /// SOAPAction holding `]]>` is quoted in the detail's message, which the serializer refused
    /// to write, so the fault went out without its detail.
    #[test]
    fn a_quoted_cdata_end_keeps_the_typed_detail() {
        let rejection = Rejection::Action(ActionError {
            action: "urn:x]]>y".into(),
            body: "GetAccount",
        });
        let f = render(&rejection, SoapVersion::Soap12, "gw-1", Soap11Status::WsI);
        let env = envelope::scan(&f.body).expect("scan");
        let fault = envelope::parse_fault(&env).expect("fault");
        let detail = fault.detail.expect("the typed detail is kept");
        match decode::partner_fault(&detail, DecodeLimits::default()).expect("decode") {
            FaultDetail::InvalidRequest(d) => {
                assert_eq!(d.rule.as_str(), "soap-action");
                assert!(d.message.as_str().contains("urn:x]] >y"), "{d:?}");
            }
            other => panic!("{other:?}"),
        }
    }
}
