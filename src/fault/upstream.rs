//! Faults of the partner API layer on their way to the partner: kind, status and typed fields
//! kept, the free texts replaced by the gateway's own and logged (ARCHITECTURE.md, "What never
//! leaves toward a partner").

use http::StatusCode;

use super::{
    finish, gateway_request_id, log_text, message, Detail, FaultResponse, Plan, StatusModes,
    FAULT_TEXT_CHARS,
};
use crate::envelope::{FaultCode, SoapVersion};
use crate::forward::UpstreamFault;
use crate::generated::partner::FaultDetail;
use crate::generated::types::cmn;

/// What the partner reads for an upstream fault without a contract detail, and for the
/// upstream's own `UpstreamUnavailableFault`.
pub(super) const UPSTREAM_FAULT: &str = "the partner API could not serve the request";

/// HTTP status and outcome label of a fault of the partner API layer.
pub(super) fn upstream_status(detail: Option<&FaultDetail>) -> (StatusCode, &'static str) {
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

pub(super) fn upstream_retry_after(detail: Option<&FaultDetail>) -> Option<u64> {
    match detail {
        Some(FaultDetail::Throttled(t)) => Some(u64::from(t.retry_after_seconds.max(1))),
        _ => None,
    }
}

pub(super) fn upstream_code(code: FaultCode) -> FaultCode {
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
    statuses: StatusModes,
) -> FaultResponse {
    finish(
        upstream_plan(fault, request_id),
        version,
        request_id,
        statuses,
    )
}

/// What an upstream fault becomes, whichever face renders it (see [`render_upstream`]).
pub(super) fn upstream_plan(fault: &UpstreamFault, request_id: &str) -> Plan {
    match &fault.detail {
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
    }
}

/// Renders a typed fault of the partner API layer itself (`partnergate upstream serve`, which
/// answers the gateway): its own texts, sanitised, and its own request id. The gateway renders
/// what it receives with [`render_upstream`].
pub fn render_layer_fault(
    fault: &UpstreamFault,
    version: SoapVersion,
    request_id: &str,
    statuses: StatusModes,
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
    finish(plan, version, request_id, statuses)
}

pub(super) fn set_request_id(detail: &mut FaultDetail, request_id: &str) {
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
pub(super) fn upstream_message(detail: &FaultDetail) -> &str {
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
pub(super) fn with_own_texts(
    detail: &FaultDetail,
    request_id: &str,
) -> (String, Option<FaultDetail>) {
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
                A::ClientCertificate => "client certificate missing or not accepted",
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
pub(super) fn is_element_path(path: &str) -> bool {
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
pub(super) fn root_path() -> cmn::FaultPath {
    cmn::FaultPath::new("/".into()).expect("constant is a valid FaultPath")
}
