//! The one place where a refusal becomes a SOAP fault. Takes a [`Rejection`] (or a typed fault
//! the upstream returned) and returns the HTTP status, the fault envelope in the request's SOAP
//! version and, for throttling, `Retry-After`. The match over [`Rejection`] is exhaustive: a new
//! error does not compile until someone decides its fault.
//!
//! The client gets a stable reason (`Access Denied: …`, `Invalid Request: …`, `Throttled: …`),
//! the typed detail the contract declares, and the request id — never internal error text,
//! upstream bodies or stack traces. Authentication failures all read the same, whatever the cause.
//!
//! HTTP status: SOAP 1.2 faults carry a status that fits (400, 403, 404, 409, 413, 429, 502,
//! 503, 504), as the SOAP 1.2 HTTP binding allows. SOAP 1.1 faults are sent with 500 as WS-I
//! Basic Profile 1.1 (R1126) requires — JAX-WS and .NET clients only read a SOAP 1.1 fault from a
//! 500 — unless `faults.soap11_status = "semantic"` is configured; `Retry-After` is sent either way.

use http::StatusCode;

use crate::authenticate::AuthError;
use crate::encode;
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

/// Renders a typed fault the upstream returned (NotFound, Conflict, InvalidRequest …): its detail
/// is passed on typed, with the gateway's request id.
pub fn render_upstream(
    fault: &UpstreamFault,
    version: SoapVersion,
    request_id: &str,
    soap11: Soap11Status,
) -> FaultResponse {
    let (status, outcome) = match &fault.detail {
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
    };
    let retry_after = match &fault.detail {
        Some(FaultDetail::Throttled(t)) => Some(u64::from(t.retry_after_seconds.max(1))),
        _ => None,
    };
    let mut detail = fault.detail.clone();
    if let Some(d) = detail.as_mut() {
        set_request_id(d, request_id);
    }
    let reason = sanitize(&fault.reason).unwrap_or_else(|| "Fault".to_string());
    let plan = Plan {
        status,
        code: match fault.code {
            FaultCode::Sender => FaultCode::Sender,
            _ => FaultCode::Receiver,
        },
        reason,
        detail: detail.map(Detail::Upstream),
        retry_after,
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

/// One line, trimmed, at most 500 characters: what the contract's FaultMessage allows.
fn sanitize(text: &str) -> Option<String> {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect();
    // The serializer refuses `]]>` in a value; a message quoting the client's input (a
    // SOAPAction, say) would otherwise lose the whole typed detail.
    let line = line.replace("]]>", "]] >");
    let line = line.trim();
    (!line.is_empty()).then(|| line.to_string())
}

fn message(text: &str) -> cmn::FaultMessage {
    sanitize(text)
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
    let rid = cmn::GatewayRequestId::new(request_id.to_string())
        .or_else(|_| cmn::GatewayRequestId::new("unknown".into()))
        .ok()?;
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
        } => {
            let path: String = path.chars().take(500).collect();
            FaultDetail::InvalidRequest(Box::new(cmn::InvalidRequestFault {
                path: cmn::FaultPath::new(path)
                    .or_else(|_| cmn::FaultPath::new("/".into()))
                    .ok()?,
                rule: cmn::ValidationRule::new(rule)
                    .or_else(|_| cmn::ValidationRule::new("invalid".into()))
                    .ok()?,
                message: message(&text),
                request_id: rid,
            }))
        }
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
    let reason = format!("{} (request {request_id})", plan.reason);
    let mut body = Vec::with_capacity(1024);
    let written = encode::fault(
        version,
        &mut body,
        plan.code,
        &reason,
        detail
            .as_ref()
            .map(|d| move |w: &mut encode::XmlWriter<'_>| Ok(d.encode(w)?)),
    );
    if written.is_err() {
        // The detail could not be written (it cannot: its values were validated on
        // construction); fall back to a fault without detail rather than no answer.
        body.clear();
        let _ = encode::fault::<encode::NoHeader>(version, &mut body, plan.code, &reason, None);
    }
    FaultResponse {
        status,
        body,
        retry_after: plan.retry_after,
        outcome: plan.outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{self, DecodeLimits};
    use crate::envelope;
    use crate::pipeline::ActionError;

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
