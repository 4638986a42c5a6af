//! The admin HTTP API: the operations of [`super::Request`] as JSON over HTTP/1.1 on a listener
//! of their own (`admin.listen`, `127.0.0.1:8090` by default), started only when an admin token
//! is configured (`admin.token` / `PARTNERGATE_ADMIN_TOKEN`).
//!
//! Every request needs `Authorization: Bearer <token>`: the presented token is hashed (SHA-256)
//! and compared in constant time with the configured token's hash; missing, malformed and wrong
//! tokens get the same 401. The token is never logged and never read from a URL. Bodies are
//! bounded ([`BODY_MAX_BYTES`]) and read within `limits.body_read_timeout_ms`, headers within
//! `limits.header_read_timeout_ms`; one request per connection, at most [`MAX_CONNECTIONS`] at
//! once. Errors are `{"error": "...", "field": "..."}` with 400 (bad input), 401, 404 (unknown
//! partner, group, key, route), 405, 408, 409 (conflicts with the current state), 413 or 500.
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
//! | GET, POST | `/groups` | list; create (201) |
//! | GET, PATCH | `/groups/{name}` | show; rename or change rates |
//! | PUT, DELETE | `/groups/{name}/throttle` | `{"rate", "aggregate"}` (null clears); clear both |
//! | GET | `/audit?target=…&limit=…` | audit rows, newest first |
//! | GET | `/nodes` | the gateway nodes sharing the database (heartbeats; `up` or `gone`) |
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
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{
    some, Actor, Admin, AdminError, AdminToken, RateInput, Request, Rules, StatusInput, UpdateGroup,
};
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
            self.token.clone(),
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

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let Ok(text) = value.to_str() else {
            return false;
        };
        match text.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                self.token.matches(token.trim())
            }
            _ => false,
        }
    }

    async fn respond(&self, req: HttpRequest<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        if let Some(dashboard) = &self.dashboard {
            if super::dashboard::is_dashboard_path(req.uri().path()) {
                return dashboard.respond(req, peer).await;
            }
        }
        if !self.authorized(req.headers()) {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "unauthorized: send Authorization: Bearer <admin token>",
                None,
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"partnergate-admin\""),
            );
            return r;
        }
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
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let body =
            match limit::read_body(req.into_body(), declared, BODY_MAX_BYTES, self.body_timeout)
                .await
            {
                Ok(b) => b,
                Err(e @ LimitError::BodyTooLarge { .. }) => {
                    return error(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string(), None)
                }
                Err(e @ LimitError::BodyTimeout(_)) => {
                    return error(StatusCode::REQUEST_TIMEOUT, &e.to_string(), None)
                }
                Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string(), None),
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
        let actor = Actor::api(peer);
        match tokio::task::spawn_blocking(move || admin.run(checked, &actor)).await {
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
}

/// The response to a refused or failed operation.
fn failure(e: &AdminError) -> Response<Full<Bytes>> {
    let status = match e {
        AdminError::Invalid { .. } => StatusCode::BAD_REQUEST,
        AdminError::NotFound { .. } => StatusCode::NOT_FOUND,
        AdminError::Conflict(_) => StatusCode::CONFLICT,
        AdminError::Store(store) => {
            tracing::warn!(error = %store, "admin API: database error");
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

// === routes ===

/// A route, with the partner id or group name from the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint<'a> {
    Partners,
    Partner(&'a str),
    Suspend(&'a str),
    Reinstate(&'a str),
    Offboard(&'a str),
    Keys(&'a str),
    Rotate(&'a str),
    Revoke(&'a str),
    Allow(&'a str),
    AllowRemove(&'a str),
    Grants(&'a str),
    GrantRevoke(&'a str),
    PartnerGroup(&'a str),
    PartnerThrottle(&'a str),
    Groups,
    Group(&'a str),
    GroupThrottle(&'a str),
    Audit,
    Nodes,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CidrBody {
    cidr: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionBody {
    permission: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    group: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupThrottleBody {
    #[serde(default, deserialize_with = "some")]
    rate: Option<Option<RateInput>>,
    #[serde(default, deserialize_with = "some")]
    aggregate: Option<Option<RateInput>>,
}

/// A JSON body (an empty body reads as `{}`).
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| AdminError::Invalid {
        field: "body",
        reason: format!("not the expected JSON: {e}"),
    })
}

/// `%XX` escapes and `+` in a query value (the dashboard's form decoder).
fn percent_decode(s: &str) -> Result<String, AdminError> {
    super::dashboard::form::decode(s).ok_or_else(|| AdminError::Invalid {
        field: "query",
        reason: format!("{s:?} is not a valid query value"),
    })
}

impl<'a> Endpoint<'a> {
    fn parse(path: &'a str) -> Option<Endpoint<'a>> {
        let rest = path.strip_prefix(PREFIX)?;
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        Some(match parts.as_slice() {
            ["partners"] => Endpoint::Partners,
            ["partners", id] => Endpoint::Partner(id),
            ["partners", id, "suspend"] => Endpoint::Suspend(id),
            ["partners", id, "reinstate"] => Endpoint::Reinstate(id),
            ["partners", id, "offboard"] => Endpoint::Offboard(id),
            ["partners", id, "keys"] => Endpoint::Keys(id),
            ["partners", id, "keys", "rotate"] => Endpoint::Rotate(id),
            ["partners", id, "keys", "revoke"] => Endpoint::Revoke(id),
            ["partners", id, "allowlist"] => Endpoint::Allow(id),
            ["partners", id, "allowlist", "remove"] => Endpoint::AllowRemove(id),
            ["partners", id, "grants"] => Endpoint::Grants(id),
            ["partners", id, "grants", "revoke"] => Endpoint::GrantRevoke(id),
            ["partners", id, "group"] => Endpoint::PartnerGroup(id),
            ["partners", id, "throttle"] => Endpoint::PartnerThrottle(id),
            ["groups"] => Endpoint::Groups,
            ["groups", name] => Endpoint::Group(name),
            ["groups", name, "throttle"] => Endpoint::GroupThrottle(name),
            ["audit"] => Endpoint::Audit,
            ["nodes"] => Endpoint::Nodes,
            _ => return None,
        })
    }

    fn methods(self) -> &'static [Method] {
        match self {
            Endpoint::Partners | Endpoint::Allow(_) | Endpoint::Grants(_) | Endpoint::Groups => {
                &[Method::GET, Method::POST]
            }
            Endpoint::Partner(_) | Endpoint::Group(_) => &[Method::GET, Method::PATCH],
            Endpoint::Suspend(_)
            | Endpoint::Reinstate(_)
            | Endpoint::Offboard(_)
            | Endpoint::Rotate(_)
            | Endpoint::Revoke(_)
            | Endpoint::AllowRemove(_)
            | Endpoint::GrantRevoke(_) => &[Method::POST],
            Endpoint::Keys(_) | Endpoint::Audit | Endpoint::Nodes => &[Method::GET],
            Endpoint::PartnerGroup(_) => &[Method::PUT],
            Endpoint::PartnerThrottle(_) | Endpoint::GroupThrottle(_) => {
                &[Method::PUT, Method::DELETE]
            }
        }
    }

    /// The operation of this route and method (already checked against [`Self::methods`]).
    fn request(
        self,
        method: &Method,
        bytes: &[u8],
        query: Option<&str>,
    ) -> Result<Request, AdminError> {
        let get = *method == Method::GET;
        let owned = |s: &str| s.to_owned();
        Ok(match self {
            Endpoint::Partners if get => Request::ListPartners,
            Endpoint::Partners => Request::CreatePartner(body(bytes)?),
            Endpoint::Partner(p) if get => Request::ShowPartner { partner: owned(p) },
            Endpoint::Partner(p) => Request::UpdatePartner {
                partner: owned(p),
                update: body(bytes)?,
            },
            Endpoint::Suspend(p) => Request::Suspend {
                partner: owned(p),
                input: body::<StatusInput>(bytes)?,
            },
            Endpoint::Reinstate(p) => Request::Reinstate {
                partner: owned(p),
                input: body(bytes)?,
            },
            Endpoint::Offboard(p) => Request::Offboard {
                partner: owned(p),
                input: body(bytes)?,
            },
            Endpoint::Keys(p) => Request::ListKeys { partner: owned(p) },
            Endpoint::Rotate(p) => Request::RotateKey {
                partner: owned(p),
                input: body(bytes)?,
            },
            Endpoint::Revoke(p) => Request::RevokeKeys {
                partner: owned(p),
                input: body(bytes)?,
            },
            Endpoint::Allow(p) if get => Request::ListAllow { partner: owned(p) },
            Endpoint::Allow(p) => Request::AddAllow {
                partner: owned(p),
                cidr: body::<CidrBody>(bytes)?.cidr,
            },
            Endpoint::AllowRemove(p) => Request::RemoveAllow {
                partner: owned(p),
                cidr: body::<CidrBody>(bytes)?.cidr,
            },
            Endpoint::Grants(p) if get => Request::ListGrants { partner: owned(p) },
            Endpoint::Grants(p) => Request::AddGrant {
                partner: owned(p),
                permission: body::<PermissionBody>(bytes)?.permission,
            },
            Endpoint::GrantRevoke(p) => Request::RevokeGrant {
                partner: owned(p),
                permission: body::<PermissionBody>(bytes)?.permission,
            },
            Endpoint::PartnerGroup(p) => Request::AssignGroup {
                partner: owned(p),
                group: body::<GroupBody>(bytes)?.group,
            },
            Endpoint::PartnerThrottle(p) if *method == Method::DELETE => Request::PartnerThrottle {
                partner: owned(p),
                rate: None,
            },
            Endpoint::PartnerThrottle(p) => Request::PartnerThrottle {
                partner: owned(p),
                rate: Some(body(bytes)?),
            },
            Endpoint::Groups if get => Request::ListGroups,
            Endpoint::Groups => Request::CreateGroup(body(bytes)?),
            Endpoint::Group(g) if get => Request::ShowGroup { group: owned(g) },
            Endpoint::Group(g) => Request::UpdateGroup {
                group: owned(g),
                update: body(bytes)?,
            },
            Endpoint::GroupThrottle(g) if *method == Method::DELETE => Request::UpdateGroup {
                group: owned(g),
                update: UpdateGroup {
                    name: None,
                    rate: Some(None),
                    aggregate: Some(None),
                },
            },
            Endpoint::GroupThrottle(g) => {
                let b: GroupThrottleBody = body(bytes)?;
                Request::UpdateGroup {
                    group: owned(g),
                    update: UpdateGroup {
                        name: None,
                        rate: b.rate,
                        aggregate: b.aggregate,
                    },
                }
            }
            Endpoint::Audit => {
                let mut target = None;
                let mut limit = None;
                for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let v = percent_decode(v)?;
                    match k {
                        "target" => target = Some(v),
                        "limit" => {
                            limit = Some(v.parse::<u32>().map_err(|_| AdminError::Invalid {
                                field: "limit",
                                reason: format!("{v:?} is not a number"),
                            })?);
                        }
                        other => {
                            return Err(AdminError::Invalid {
                                field: "query",
                                reason: format!("unknown parameter {other:?}: use target, limit"),
                            })
                        }
                    }
                }
                Request::ListAudit { target, limit }
            }
            Endpoint::Nodes => Request::ListNodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            Endpoint::parse("/admin/v1/partners"),
            Some(Endpoint::Partners)
        );
        assert_eq!(
            Endpoint::parse("/admin/v1/partners/P-1/keys/rotate"),
            Some(Endpoint::Rotate("P-1"))
        );
        assert_eq!(
            Endpoint::parse("/admin/v1/groups/gold/throttle"),
            Some(Endpoint::GroupThrottle("gold"))
        );
        for bad in [
            "/admin/v1/",
            "/admin/v1/partners/",
            "/admin/v1//partners",
            "/admin/v2/partners",
            "/admin/v1/partners/P/nope",
        ] {
            assert_eq!(Endpoint::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn query_values_are_decoded() {
        assert_eq!(percent_decode("group%3Agold+x").unwrap(), "group:gold x");
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%f").is_err());
    }

    #[test]
    fn empty_bodies_read_as_empty_objects() {
        let s: StatusInput = body(b"").unwrap();
        assert!(s.reason.is_none());
        assert!(body::<StatusInput>(b"{\"why\": 1}").is_err());
    }
}
