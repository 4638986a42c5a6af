//! The REST face on the partner listener (`crate::rest`): `/rest/partner/v1/…`. Resolves the
//! route (404 and 405 before the body is read), reads the body within the listener's bounds,
//! checks its media type, hands it to [`pipeline::handle_json`] and answers with the typed
//! response as JSON or a problem document (`fault::problem`), counted and logged with
//! `face=rest` like every answered request. Also serves the face's OpenAPI document and its
//! readable page.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::contract::Reached;
use super::respond::{new_request_id, Done};
use super::Server;
use crate::certificate::Presented;
use crate::fault::{self, ProblemResponse};
use crate::forward::{ForwardError, UpstreamReply};
use crate::generated::partner;
use crate::pipeline::{self, Rejection};
use crate::rejection::RouteError;
use crate::rest;
use crate::stats::{Face, StageTimes};

/// `application/json` for answers.
const JSON: &str = "application/json";

impl Server {
    /// Any request below `/rest/partner/v1`.
    pub(super) async fn rest(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        cert: Option<&Presented>,
        reached: Reached,
    ) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let path = req.uri().path();
        if req.method() == http::Method::GET {
            if path == rest::OPENAPI_PATH {
                return self.openapi(req.headers(), reached);
            }
            if path == rest::DOCS_PATH {
                return self.docs(req.headers(), reached);
            }
            if path == rest::docs::CSS_PATH {
                return self.public.published(
                    rest::docs::CSS.as_bytes().to_vec(),
                    "text/css; charset=utf-8",
                );
            }
        }
        let request_id = new_request_id();
        let below = path.strip_prefix(rest::PREFIX).unwrap_or("");
        let published = [rest::OPENAPI_PATH, rest::DOCS_PATH, rest::docs::CSS_PATH];
        let resolved = if published.contains(&path) {
            Err(Rejection::Route(RouteError::MethodNotAllowed {
                allow: "GET",
            }))
        } else {
            rest::resolve(req.method(), below, req.uri().query())
        };
        let matched = match resolved {
            Ok(m) => m,
            Err(rejection) => {
                // A body, if one comes, is not read: then the connection closes after the answer.
                let mut r = self.refuse(&rejection, None, &request_id, peer, started);
                if may_have_body(req.headers()) {
                    r.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                return r;
            }
        };
        let op = Some(matched.route.op.name());
        let (parts, body) = req.into_parts();
        let body = match self.read_limited(&parts, body).await {
            Ok(b) => b,
            Err(e) => {
                let rejection = Rejection::Limit(e);
                let mut r = self.refuse(&rejection, op, &request_id, peer, started);
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return r;
            }
        };
        let json = pipeline::content_encoding(&parts.headers)
            .map_err(Rejection::Transport)
            .and_then(|()| rest::body_of(matched.route, &parts.headers, &body));
        let json = match json {
            Ok(j) => j,
            Err(rejection) => return self.refuse(&rejection, op, &request_id, peer, started),
        };
        let members = matched.pairs();
        let trace = (self.telemetry.as_ref())
            .map(|t| t.request("rest", peer.ip(), &parts.headers, started));
        let incoming = pipeline::JsonIncoming {
            peer: peer.ip(),
            headers: &parts.headers,
            body: json,
            url_members: &members,
            op: matched.route.op,
            request_id: &request_id,
            client_cert: cert,
            trace: trace.as_ref(),
        };
        let span = tracing::debug_span!("request", request_id = %request_id, peer = %peer.ip());
        let outcome =
            tracing::Instrument::instrument(pipeline::handle_json(&self.gateway, incoming), span)
                .await;
        let mut encode_failure = None;
        let (response, label, status) = match &outcome.result {
            Ok(UpstreamReply::Response(response)) => match encode_response(response) {
                Ok(body) => (
                    respond(StatusCode::OK, JSON, &request_id, body),
                    "ok",
                    StatusCode::OK,
                ),
                Err(e) => {
                    let rejection = Rejection::Forward(ForwardError::Invalid(e));
                    let p = fault::problem(&rejection, &request_id);
                    encode_failure = Some(rejection);
                    let (label, status) = (p.outcome, p.status);
                    (problem_response(p, &request_id), label, status)
                }
            },
            Ok(UpstreamReply::Fault(upstream)) => {
                let p = fault::problem_upstream(upstream, &request_id);
                let (label, status) = (p.outcome, p.status);
                (problem_response(p, &request_id), label, status)
            }
            Err(rejection) => {
                let p = fault::problem(rejection, &request_id);
                let (label, status) = (p.outcome, p.status);
                (problem_response(p, &request_id), label, status)
            }
        };
        let done = Done {
            request_id: &request_id,
            peer,
            partner: outcome.partner.as_deref(),
            operation: op,
            outcome: label,
            status,
            rejection: encode_failure.as_ref().or(outcome.result.as_ref().err()),
            stages: outcome.stages,
            key_id: outcome.key_id,
            face: Face::Rest,
        };
        if let Some(trace) = trace {
            let facts = done.facts();
            trace.finish(&facts, &outcome.stages, outcome.stages_from, Instant::now());
        }
        self.finish(done, started);
        response
    }

    /// Answers a refusal made before the pipeline (route, body limits, media type), counted
    /// and logged.
    fn refuse(
        &self,
        rejection: &Rejection,
        operation: Option<&'static str>,
        request_id: &str,
        peer: SocketAddr,
        started: Instant,
    ) -> Response<Full<Bytes>> {
        let p = fault::problem(rejection, request_id);
        let done = Done {
            request_id,
            peer,
            partner: None,
            operation,
            outcome: p.outcome,
            status: p.status,
            rejection: Some(rejection),
            stages: StageTimes::default(),
            key_id: None,
            face: Face::Rest,
        };
        self.finish(done, started);
        problem_response(p, request_id)
    }
}

/// Whether a request announces a body (a `Content-Length` other than 0, or any
/// `Transfer-Encoding`: framing has refused the other codings already).
fn may_have_body(headers: &http::HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// The typed response as JSON (`crate::json`).
fn encode_response(response: &partner::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(2048);
    crate::json::encode_partner_response(response, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    request_id: &str,
    body: Vec<u8>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-request-id", v);
    }
    r
}

fn problem_response(p: ProblemResponse, request_id: &str) -> Response<Full<Bytes>> {
    let mut r = respond(p.status, fault::PROBLEM_JSON, request_id, p.body);
    let h = r.headers_mut();
    if let Some(secs) = p.retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(allow) = p.allow {
        h.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    if p.challenge {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"partnergate\""),
        );
    }
    r
}

impl Server {
    /// `GET /rest/partner/v1/openapi.json`: the face's OpenAPI document, its server address
    /// this deployment's (as `?wsdl` publishes it).
    fn openapi(&self, headers: &http::HeaderMap, reached: Reached) -> Response<Full<Bytes>> {
        let base = self.public.base_url(headers, reached);
        let doc = rest::openapi::document(&base);
        self.public.published(doc.into_bytes(), "application/json")
    }

    /// `GET /rest/partner/v1/docs`: the same document as a page, rendered here.
    fn docs(&self, headers: &http::HeaderMap, reached: Reached) -> Response<Full<Bytes>> {
        let base = self.public.base_url(headers, reached);
        match rest::docs::page(&base) {
            Ok(html) => {
                let mut r = self
                    .public
                    .published(html.into_bytes(), "text/html; charset=utf-8");
                crate::page_headers::insert(r.headers_mut(), rest::docs::CSP);
                r
            }
            Err(_) => super::respond::text(StatusCode::INTERNAL_SERVER_ERROR, "docs page failed\n"),
        }
    }
}
