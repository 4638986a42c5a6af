//! The partner listener's responses (plain text, SOAP answers and faults with the request id)
//! and the one access-log line per answered request.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;

use crate::envelope::SoapVersion;
use crate::fault;
use crate::pipeline;
use crate::stats::{Face, StageTimes};

/// `gw-` and 32 hex digits (128 random bits).
pub fn new_request_id() -> String {
    let n: u128 = rand::random();
    format!("gw-{n:032x}")
}

pub(super) fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub(super) fn content_type(version: SoapVersion) -> header::HeaderValue {
    match version {
        SoapVersion::Soap11 => header::HeaderValue::from_static("text/xml; charset=utf-8"),
        SoapVersion::Soap12 => {
            header::HeaderValue::from_static("application/soap+xml; charset=utf-8")
        }
    }
}

pub(super) fn soap_response(
    status: StatusCode,
    version: SoapVersion,
    request_id: &str,
    body: Vec<u8>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, content_type(version));
    if let Ok(v) = header::HeaderValue::from_str(request_id) {
        r.headers_mut().insert("x-request-id", v);
    }
    r
}

pub(super) fn fault_response(
    f: fault::FaultResponse,
    version: SoapVersion,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let mut r = soap_response(f.status, version, request_id, f.body);
    if let Some(secs) = f.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    }
    r
}

/// What one answered request was, for its log line and its statistics.
pub(super) struct Done<'a> {
    pub(super) request_id: &'a str,
    pub(super) peer: SocketAddr,
    pub(super) partner: Option<&'a str>,
    pub(super) operation: Option<&'static str>,
    pub(super) outcome: &'static str,
    pub(super) status: StatusCode,
    pub(super) rejection: Option<&'a pipeline::Rejection>,
    pub(super) stages: StageTimes,
    pub(super) key_id: Option<i64>,
    pub(super) face: Face,
}

impl Done<'_> {
    /// What the request's server span carries (`crate::telemetry`).
    pub(super) fn facts(&self) -> crate::telemetry::Facts<'_> {
        crate::telemetry::Facts {
            request_id: self.request_id,
            partner: self.partner,
            operation: self.operation,
            outcome: self.outcome,
            rule: self.rejection.map(|r| r.stage()),
            status: self.status.as_u16(),
        }
    }
}

/// What the server span of a callback carries.
pub(super) fn answer_facts<'a>(
    answer: &'a crate::transport::SoapAnswer,
    request_id: &'a str,
) -> crate::telemetry::Facts<'a> {
    crate::telemetry::Facts {
        request_id,
        partner: answer.partner.as_deref(),
        operation: answer.operation,
        outcome: answer.outcome,
        rule: None,
        status: answer.status.as_u16(),
    }
}

pub(super) fn log_line(done: &Done<'_>, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    // Never a key or a body: the rejection's Display names rules, paths and limits only.
    let detail = done.rejection.map(|r| r.to_string());
    tracing::info!(
        target: crate::access_format::ACCESS_TARGET,
        request_id = done.request_id,
        peer = %done.peer.ip(),
        partner = done.partner.unwrap_or("-"),
        operation = done.operation.unwrap_or("-"),
        face = done.face.label(),
        outcome = done.outcome,
        status = done.status.as_u16(),
        latency_us = micros,
        stage = done.rejection.map_or("-", |r| r.stage()),
        detail = detail.as_deref().unwrap_or("-"),
    );
}
