//! The admin HTTP API: the operations of [`super::Request`] as JSON over HTTP/1.1 on a listener
//! of their own (`admin.listen`, `127.0.0.1:8090` by default), started only when an admin token
//! is configured (`admin.token` / `PARTNERGATE_ADMIN_TOKEN`).
//!
//! Every request needs `Authorization: Bearer <operator API token>` (`pgo_…`, made by `operator
//! token create`): the presented token is hashed (SHA-256) and compared in constant time with
//! the stored hashes of the enabled operators' unrevoked tokens with its prefix, on every
//! request; the operation runs as that operator with its role (403 below the operation's).
//! Missing, malformed, unknown, revoked and disabled operators' tokens get the same 401. The
//! shared admin token does one thing: `POST /admin/v1/bootstrap {"name"}` makes the first admin
//! operator (409 once one exists), and is refused (401) everywhere else. Tokens are never
//! logged and never read from a URL. Bodies are
//! bounded ([`BODY_MAX_BYTES`]) and read within `limits.body_read_timeout_ms`, headers within
//! `limits.header_read_timeout_ms`; one request per connection, at most [`MAX_CONNECTIONS`] at
//! once. Errors are `{"error": "...", "field": "..."}` with 400 (bad input), 401, 403 (the role
//! is too low), 404 (unknown partner, group, key, operator, route), 405, 408, 409 (conflicts
//! with the current state), 413 or 500. Routes and their bodies: `http/routes.rs`.
//!
//! Routes (all under `/admin/v1`):
//!
//! | method | path | operation |
//! |---|---|---|
//! | GET, POST | `/partners` | list; create (201, the keys once) |
//! | GET, PATCH | `/partners/{id}` | show; update |
//! | POST | `/partners/{id}/suspend`, `/reinstate`, `/offboard` | status (`{"reason"}` optional) |
//! | GET | `/partners/{id}/keys` | key metadata |
//! | POST | `/partners/{id}/keys/rotate` | `{"kind", "overlap"}` (the new key once) |
//! | POST | `/partners/{id}/keys/revoke` | `{"kind"}` or `{"id"}` |
//! | GET, POST | `/partners/{id}/allowlist` | list; add `{"cidr"}` |
//! | POST | `/partners/{id}/allowlist/remove` | `{"cidr"}` |
//! | GET, POST | `/partners/{id}/grants` | list; grant `{"permission"}` |
//! | POST | `/partners/{id}/grants/revoke` | `{"permission"}` |
//! | PUT | `/partners/{id}/group` | `{"group": "name" or null}` |
//! | PUT, DELETE | `/partners/{id}/throttle` | `{"per_second", "burst"}`; clear |
//! | PUT, DELETE | `/partners/{id}/callback-throttle` | the same for callbacks to its BSS; clear (the `callback.default_*` rate applies) |
//! | GET, POST | `/groups` | list; create (201) |
//! | GET, PATCH | `/groups/{name}` | show; rename or change rates |
//! | PUT, DELETE | `/groups/{name}/throttle` | `{"rate", "aggregate"}` (null clears); clear both |
//! | GET | `/audit?target=…&limit=…` | audit rows, newest first |
//! | GET | `/nodes` | the gateway nodes sharing the database (heartbeats; `up` or `gone`) |
//! | GET, POST | `/operators` | list; create `{"name", "role"}` (201, the password once) |
//! | POST | `/operators/{name}/disable`, `/enable`, `/reset-password` | state; a new password once |
//! | PUT | `/operators/{name}/role` | `{"role"}` |
//! | GET, POST | `/operators/{name}/tokens` | list; create `{"label"?}` (201, the token once) |
//! | POST | `/operators/{name}/tokens/revoke` | `{"id"}` |
//! | POST | `/bootstrap` | `{"name"}` with the shared admin token: the first admin (201) |
//!
//! With [`AdminServer::with_dashboard`], paths under `/ui/` go to the operators' web dashboard
//! ([`super::dashboard`]) instead, which has its own login (a session cookie, not the bearer
//! header).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request as HttpRequest, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

mod routes;

use self::routes::{body, Endpoint};
use super::{Actor, Admin, AdminError, AdminToken, OperatorIdentity, Reply, Rules, Via};
use crate::config::Limits;
use crate::limit::{self, LimitError};
use crate::server::plain::Plain;

/// The path prefix of every route.
pub const PREFIX: &str = "/admin/v1/";
/// Largest request body.
pub const BODY_MAX_BYTES: usize = 64 * 1024;
/// Concurrent connections; more wait in the kernel backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// Request line plus headers.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// How long open requests may take to finish after shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The admin API server.
#[derive(Debug)]
pub struct AdminServer {
    dashboard: Option<super::dashboard::Dashboard>,
    admin: Admin,
    rules: Rules,
    token: AdminToken,
    header_timeout: Duration,
    body_timeout: Duration,
    /// HTTPS (`admin.tls`): every response also says `Strict-Transport-Security`.
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl AdminServer {
    /// A server running `admin` for holders of `token`, with the partner listener's header and
    /// body read timeouts.
    pub fn new(admin: Admin, rules: Rules, token: AdminToken, limits: &Limits) -> AdminServer {
        AdminServer {
            dashboard: None,
            admin,
            rules,
            token,
            header_timeout: limits.header_read_timeout,
            body_timeout: limits.body_read_timeout,
            tls: None,
        }
    }

    /// Serves HTTPS with `config` (give the dashboard `cookie_secure` too).
    pub fn with_tls(mut self, config: Arc<rustls::ServerConfig>) -> AdminServer {
        self.tls = Some(config);
        self
    }

    /// Also serves the operators' web dashboard under `/ui/` (its own login: the token is
    /// exchanged for a session cookie).
    pub fn with_dashboard(mut self, settings: super::dashboard::Settings) -> AdminServer {
        self.dashboard = Some(super::dashboard::Dashboard::new(
            self.admin.clone(),
            self.rules.clone(),
            settings,
            self.body_timeout,
        ));
        self
    }

    /// Accepts connections until `shutdown` turns true (or its sender is dropped).
    pub async fn serve(self, listener: TcpListener, shutdown: watch::Receiver<bool>) {
        let plain = Plain {
            name: "admin API",
            max_connections: MAX_CONNECTIONS,
            header_timeout: self.header_timeout,
            // A backstop for a client that stalls in ways the read timeouts do not cover (e.g.
            // not reading the response).
            lifetime: self.header_timeout + self.body_timeout + Duration::from_secs(30),
            keep_alive: false,
            max_buf_size: MAX_HEADER_BYTES,
            grace: SHUTDOWN_GRACE,
        };
        let tls = self.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let server = Arc::new(self);
        plain
            .serve_tls(listener, shutdown, tls, move |req, peer| {
                let server = Arc::clone(&server);
                async move { server.handle(req, peer).await }
            })
            .await;
    }

    async fn handle(&self, req: HttpRequest<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let mut response = self.respond(req, peer).await;
        if self.tls.is_some() {
            response.headers_mut().insert(
                header::STRICT_TRANSPORT_SECURITY,
                http::HeaderValue::from_static("max-age=31536000"),
            );
        }
        // Never the Authorization header, the query or the body.
        tracing::info!(
            %peer,
            %method,
            path,
            status = response.status().as_u16(),
            latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "admin request"
        );
        response
    }

    /// The bearer token of the request: exactly one `Authorization: Bearer …` header.
    fn bearer(headers: &HeaderMap) -> Option<&str> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return None;
        };
        match value.to_str().ok()?.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim()),
            _ => None,
        }
    }

    /// The operator holding the request's API token (looked up on every request, so a disabled
    /// operator or a revoked token is refused from the commit on); `Err` with the answer.
    async fn operator(&self, headers: &HeaderMap) -> Result<OperatorIdentity, Box<Resp>> {
        let token = Self::bearer(headers).unwrap_or("").to_owned();
        let admin = self.admin.clone();
        let found = tokio::task::spawn_blocking(move || admin.operator_by_token(&token)).await;
        match found {
            Ok(Ok(Some(operator))) => Ok(operator),
            Ok(Ok(None)) => Err(Box::new(unauthorized())),
            Ok(Err(e)) => Err(Box::new(failure(&e))),
            Err(join) => Err(Box::new(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("admin task failed: {join}"),
                None,
            ))),
        }
    }

    /// `POST /admin/v1/bootstrap {"name"}` with the shared admin token: the first admin
    /// operator, its password and API token (once); 409 once an admin exists.
    async fn bootstrap(&self, req: HttpRequest<Incoming>, peer: SocketAddr) -> Resp {
        let presented = Self::bearer(req.headers()).unwrap_or("");
        if !self.token.matches(presented) {
            return unauthorized();
        }
        if req.method() != Method::POST {
            return error(StatusCode::METHOD_NOT_ALLOWED, "use POST", None);
        }
        let bytes = match self.read(req).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let name = match body::<BootstrapBody>(&bytes) {
            Ok(b) => b.name,
            Err(e) => return failure(&e),
        };
        let admin = self.admin.clone();
        let actor = Actor::bootstrap(peer);
        let done = tokio::task::spawn_blocking(move || admin.bootstrap(&name, &actor)).await;
        answer(done, true)
    }

    /// The request's body within the size and time bounds, or the answer.
    async fn read(&self, req: HttpRequest<Incoming>) -> Result<Bytes, Resp> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match limit::read_body(req.into_body(), declared, BODY_MAX_BYTES, self.body_timeout).await {
            Ok(b) => Ok(b),
            Err(e @ LimitError::BodyTooLarge { .. }) => {
                Err(error(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string(), None))
            }
            Err(e @ LimitError::BodyTimeout(_)) => {
                Err(error(StatusCode::REQUEST_TIMEOUT, &e.to_string(), None))
            }
            Err(e) => Err(error(StatusCode::BAD_REQUEST, &e.to_string(), None)),
        }
    }

    async fn respond(&self, req: HttpRequest<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        if let Some(dashboard) = &self.dashboard {
            if super::dashboard::is_dashboard_path(req.uri().path()) {
                return dashboard.respond(req, peer).await;
            }
        }
        if req.uri().path() == BOOTSTRAP_PATH {
            return self.bootstrap(req, peer).await;
        }
        let operator = match self.operator(req.headers()).await {
            Ok(o) => o,
            Err(r) => return *r,
        };
        let path = req.uri().path().to_owned();
        let query = req.uri().query().map(str::to_owned);
        let Some(endpoint) = Endpoint::parse(&path) else {
            return error(StatusCode::NOT_FOUND, &format!("no route {path}"), None);
        };
        let method = req.method().clone();
        if !endpoint.methods().contains(&method) {
            let allow = endpoint
                .methods()
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            let mut r = error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("{method} is not allowed on {path}; use {allow}"),
                None,
            );
            if let Ok(v) = HeaderValue::from_str(&allow) {
                r.headers_mut().insert(header::ALLOW, v);
            }
            return r;
        }
        let body = match self.read(req).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let request = match endpoint.request(&method, &body, query.as_deref()) {
            Ok(r) => r,
            Err(e) => return failure(&e),
        };
        let checked = match request.check(&self.rules) {
            Ok(c) => c,
            Err(e) => return failure(&e),
        };
        let created = checked.creates();
        let admin = self.admin.clone();
        let actor = Actor::operator(&operator, Via::Api(peer));
        let done = tokio::task::spawn_blocking(move || admin.run(checked, &actor)).await;
        answer(done, created)
    }
}

type Resp = Response<Full<Bytes>>;

/// The route of the one thing the shared admin token does.
pub const BOOTSTRAP_PATH: &str = "/admin/v1/bootstrap";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BootstrapBody {
    name: String,
}

/// 401 for a missing, malformed, unknown, revoked or disabled operator's token alike.
fn unauthorized() -> Resp {
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized: send Authorization: Bearer <operator API token> (the shared admin token \
         only bootstraps the first admin: POST /admin/v1/bootstrap)",
        None,
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"partnergate-admin\""),
    );
    r
}

/// The answer to an operation run on the blocking pool: its JSON (201 when it `created`).
fn answer(done: Result<Result<Reply, AdminError>, tokio::task::JoinError>, created: bool) -> Resp {
    match done {
        Ok(Ok(reply)) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            match serde_json::to_vec(&reply.view) {
                Ok(bytes) => json(status, bytes),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), None),
            }
        }
        Ok(Err(e)) => failure(&e),
        Err(join) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("admin task failed: {join}"),
            None,
        ),
    }
}

/// The response to a refused or failed operation.
fn failure(e: &AdminError) -> Response<Full<Bytes>> {
    let status = match e {
        AdminError::Invalid { .. } => StatusCode::BAD_REQUEST,
        AdminError::NotFound { .. } => StatusCode::NOT_FOUND,
        AdminError::Conflict(_) => StatusCode::CONFLICT,
        AdminError::Forbidden { .. } => StatusCode::FORBIDDEN,
        AdminError::Store(store) => {
            tracing::warn!(error = %store, "admin API: database error");
            StatusCode::INTERNAL_SERVER_ERROR
        }
        AdminError::Internal(e) => {
            tracing::warn!(error = %e, "admin API: internal error");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    error(status, &e.to_string(), e.field())
}

fn json(status: StatusCode, bytes: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Replies of create and rotate carry keys.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn error(status: StatusCode, message: &str, field: Option<&str>) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"error": message, "field": field});
    json(status, body.to_string().into_bytes())
}
