//! The REST face's refusals: the same [`Plan`] a SOAP fault is written from, written as an
//! RFC 9457 `application/problem+json` document instead. The reason is the fault's reason, the
//! rule and path are the `InvalidRequestFault`'s, the access-denied reason the
//! `AccessDeniedFault`'s, and the typed fault detail the contract declares goes along as a
//! member named after its element, in its JSON form (`crate::json`). The HTTP status is always
//! the semantic one (no SOAP toolkit reads it), except that failed authentication is a 401 with
//! a `Bearer` challenge. Every `type` is one of [`PROBLEM_TYPES`], stable and documented.

use std::io::Write as _;

use http::StatusCode;

use super::upstream::upstream_plan;
use super::{build_detail, plan, sanitize, Detail, Plan, FAULT_TEXT_CHARS};
use crate::authenticate::AuthError;
use crate::forward::UpstreamFault;
use crate::generated::partner::FaultDetail;
use crate::generated::types::cmn;
use crate::rejection::{Rejection, RouteError};

/// The prefix of every problem `type` (a URN: nothing to fetch).
pub const TYPE_PREFIX: &str = "urn:partnergate:problem:";

/// The media type of a problem document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One problem type: its `type` suffix, its `title`, the statuses it comes with, and when.
#[derive(Clone, Copy, Debug)]
pub struct ProblemType {
    /// What follows [`TYPE_PREFIX`].
    pub slug: &'static str,
    /// The fixed `title`.
    pub title: &'static str,
    /// The HTTP statuses it is sent with.
    pub statuses: &'static [u16],
    /// When (for the README, the OpenAPI document and the docs page).
    pub when: &'static str,
}

macro_rules! problem_types {
    ($($name:ident = $slug:literal, $title:literal, [$($status:literal),+], $when:literal;)+) => {
        $(const $name: ProblemType = ProblemType {
            slug: $slug,
            title: $title,
            statuses: &[$($status),+],
            when: $when,
        };)+
        /// Every problem type the REST face sends.
        pub const PROBLEM_TYPES: &[ProblemType] = &[$($name),+];
    };
}

problem_types! {
    INVALID = "invalid-request", "Invalid request", [400], "The request breaks the contract (members `rule` and `path`, a JSON Pointer), or the partner API refused it as invalid.";
    TOO_LARGE = "request-too-large", "Request too large", [413], "The body is larger than `limits.body_max_bytes`.";
    TIMEOUT = "request-timeout", "Request timeout", [408], "The body did not arrive within `limits.body_read_timeout_ms` or too slowly.";
    MEDIA_TYPE = "unsupported-media-type", "Unsupported media type", [415], "The body is not `application/json`, or has a content coding.";
    AUTHENTICATION = "authentication-failed", "Authentication failed", [401], "`X-Partner-Id` or `Authorization: Bearer` missing, repeated, malformed, unknown, wrong, revoked or expired: one answer for all.";
    DENIED = "access-denied", "Access denied", [403], "Authenticated, but refused: member `reason` is `partner-suspended`, `client-certificate`, `source-not-allowed` or `operation-not-permitted`.";
    NOT_FOUND = "not-found", "Not found", [404], "The partner API has no such entity for this partner (`NotFoundFault`).";
    CONFLICT = "conflict", "Conflict", [409], "The partner API refused the change (`ConflictFault`).";
    NO_ROUTE = "no-route", "No such resource", [404], "No route of `/rest/partner/v1` has this path.";
    METHOD = "method-not-allowed", "Method not allowed", [405], "The path exists, the method is not one of its routes' (see `Allow`).";
    THROTTLED = "throttled", "Throttled", [429], "Over the partner's or group's rate, or too many calls in flight (see `Retry-After`).";
    UNAVAILABLE = "upstream-unavailable", "Upstream unavailable", [502, 503, 504], "The partner API is unreachable (503), did not answer in time (504) or answered wrongly (502).";
    INTERNAL = "internal", "Internal error", [500], "The gateway could not forward the request.";
}

/// A rendered problem.
#[derive(Debug)]
pub struct ProblemResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// The `application/problem+json` document.
    pub body: Vec<u8>,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
    /// The methods for `Allow` (405).
    pub allow: Option<&'static str>,
    /// Send `WWW-Authenticate: Bearer` (401).
    pub challenge: bool,
    /// The same outcome label the SOAP fault has, for logs and statistics.
    pub outcome: &'static str,
}

/// Renders a refusal of the REST face.
pub fn problem(rejection: &Rejection, request_id: &str) -> ProblemResponse {
    let mut p = plan(rejection);
    let mut allow = None;
    let mut challenge = false;
    let ty = match rejection {
        Rejection::Auth(AuthError::Suspended { .. }) => DENIED,
        Rejection::Auth(_) => {
            challenge = true;
            p.status = StatusCode::UNAUTHORIZED;
            AUTHENTICATION
        }
        Rejection::Route(RouteError::NotFound) => NO_ROUTE,
        Rejection::Route(RouteError::MethodNotAllowed { allow: a }) => {
            allow = Some(*a);
            METHOD
        }
        _ => of_plan(&p),
    };
    let mut r = write(ty, p, request_id);
    r.allow = allow;
    r.challenge = challenge;
    r
}

/// Renders a fault of the partner API layer for the REST face (its texts replaced by the
/// gateway's, as for SOAP).
pub fn problem_upstream(fault: &UpstreamFault, request_id: &str) -> ProblemResponse {
    let p = upstream_plan(fault, request_id);
    write(of_plan(&p), p, request_id)
}

/// The problem type of a plan, by its detail and status.
fn of_plan(p: &Plan) -> ProblemType {
    match &p.detail {
        Some(Detail::AccessDenied(..)) | Some(Detail::Upstream(FaultDetail::AccessDenied(_))) => {
            DENIED
        }
        Some(Detail::Throttled(..)) | Some(Detail::Upstream(FaultDetail::Throttled(_))) => {
            THROTTLED
        }
        Some(Detail::Upstream(FaultDetail::NotFound(_))) => NOT_FOUND,
        Some(Detail::Upstream(FaultDetail::Conflict(_))) => CONFLICT,
        Some(Detail::Upstream(FaultDetail::UpstreamUnavailable(_)))
        | Some(Detail::Unavailable(_))
            if p.status != StatusCode::INTERNAL_SERVER_ERROR =>
        {
            UNAVAILABLE
        }
        _ => match p.status {
            StatusCode::PAYLOAD_TOO_LARGE => TOO_LARGE,
            StatusCode::REQUEST_TIMEOUT => TIMEOUT,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => MEDIA_TYPE,
            StatusCode::NOT_FOUND => NO_ROUTE,
            StatusCode::METHOD_NOT_ALLOWED => METHOD,
            s if s.is_server_error() => INTERNAL,
            _ => INVALID,
        },
    }
}

fn reason_text(reason: &cmn::AccessDeniedReason) -> &'static str {
    use cmn::AccessDeniedReason as R;
    match reason {
        R::AuthenticationFailed => "authentication-failed",
        R::SourceNotAllowed => "source-not-allowed",
        R::OperationNotPermitted => "operation-not-permitted",
        R::PartnerSuspended => "partner-suspended",
        R::ClientCertificate => "client-certificate",
    }
}

/// A JSON string (serde_json's escaping; never a `Value`).
fn string(out: &mut Vec<u8>, text: &str) {
    if serde_json::to_writer(&mut *out, text).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

fn member(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b',');
    string(out, name);
    out.push(b':');
    string(out, value);
}

fn write(ty: ProblemType, p: Plan, request_id: &str) -> ProblemResponse {
    let detail = p.detail.and_then(|d| build_detail(d, request_id));
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"type\":");
    string(&mut out, &format!("{TYPE_PREFIX}{}", ty.slug));
    member(&mut out, "title", ty.title);
    let _ = write!(out, ",\"status\":{}", p.status.as_u16());
    let reason = sanitize(&p.reason, FAULT_TEXT_CHARS).unwrap_or_else(|| ty.title.to_string());
    member(&mut out, "detail", &reason);
    member(&mut out, "requestId", request_id);
    match &detail {
        Some(FaultDetail::InvalidRequest(d)) => {
            member(&mut out, "rule", d.rule.as_str());
            member(&mut out, "path", d.path.as_str());
        }
        Some(FaultDetail::AccessDenied(d)) => {
            member(&mut out, "reason", reason_text(&d.reason));
        }
        _ => {}
    }
    if let Some(d) = &detail {
        fault_member(&mut out, d);
    }
    out.push(b'}');
    ProblemResponse {
        status: p.status,
        body: out,
        retry_after: p.retry_after,
        allow: None,
        challenge: false,
        outcome: p.outcome,
    }
}

/// `,"<FaultElement>":{…}`: the typed detail in its JSON form; left out should it not encode
/// (its values were validated on construction, so it does).
fn fault_member(out: &mut Vec<u8>, detail: &FaultDetail) {
    let start = out.len();
    out.push(b',');
    string(out, detail.kind().element().1);
    out.push(b':');
    if crate::json::encode_partner_fault(detail, out).is_err() {
        out.truncate(start);
    }
}

#[cfg(test)]
mod tests;
