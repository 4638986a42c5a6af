//! Stage: receive. The partner-facing listener: TCP or TLS (tokio-rustls; clients are asked for
//! a certificate they may send or not, handed to the pipeline for `client_cert`), HTTP/1.1 with
//! keep-alive (hyper), a cap on concurrent connections, header, body and idle timeouts, and the
//! routes — the SOAP endpoint, the published WSDL and XSDs, health and readiness. It reads the
//! body within its limits, hands it to [`pipeline::handle`], and writes the typed response or the
//! fault `fault.rs` renders, with the request id, and one log line per request.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::Instrument;

use crate::certificate::Presented;
use crate::config::{Config, Limits};
use crate::encode;
use crate::envelope::SoapVersion;
use crate::fault;
use crate::forward::UpstreamReply;
use crate::limit;
use crate::pipeline::{self, Gateway};
use crate::stats::{Face, Record, StageTimes};
use crate::transport::SoapAnswer;

pub mod admit;
pub mod contract;
mod enroll;
pub mod framing;
mod health;
pub mod idle;
pub mod plain;
mod respond;
mod rest;

use admit::Admission;
pub use contract::{rewrite_addresses, rewrite_schema_locations};
use contract::{PublicAddress, Reached};
use idle::{BusyGuard, ConnState, IdleIo, RateFloor, Reclaim, RECLAIM_EVERY};
pub use respond::new_request_id;
use respond::{fault_response, log_line, soap_response, text, Done};

/// `/readyz` fails when the database has not confirmed the snapshot for this long.
pub const READY_STALENESS: Duration = Duration::from_secs(5);

/// The SOAP endpoint of the callback direction (TSP → partner BSS).
pub const CALLBACK_PATH: &str = "/soap/callback/v1";

/// The listen backlog asked for (the kernel caps it at `net.core.somaxconn`, 4,096 by default).
pub const LISTEN_BACKLOG: u32 = 4096;

/// The SOAP endpoint of the partner API.
pub const PARTNER_PATH: &str = "/soap/partner/v1";

/// Every path of the REST face starts with this (`crate::rest::PREFIX` and a slash).
const REST_PREFIX_SLASH: &str = "/rest/partner/v1/";

/// The SOAP endpoint of partner enrollment (anonymous; `crate::enroll`).
pub const ENROLLMENT_PATH: &str = "/soap/enrollment/v1";

/// Starting the listener failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsFileError),
}

/// Everything a connection needs.
pub struct Server {
    gateway: Arc<Gateway>,
    limits: Limits,
    floor: Option<RateFloor>,
    public: PublicAddress,
    tls: Option<tokio_rustls::TlsAcceptor>,
    started: Instant,
    metrics_allow: Vec<ipnet::IpNet>,
    admission: Arc<Admission>,
    telemetry: Option<Arc<crate::telemetry::Telemetry>>,
}

/// Loads a certificate chain and key (PEM) into a TLS acceptor (HTTP/1.1 via ALPN) that asks
/// for no client certificate (test servers and internal listeners).
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    let identity = Arc::new(crate::tls::Identity::load("listener", cert, key)?);
    Ok(tokio_rustls::TlsAcceptor::from(crate::tls::server_config(
        identity, false,
    )?))
}

impl Server {
    /// A server for `gateway` with the listener settings of `config` (its certificate, if any,
    /// loaded here: not reloadable; see [`Server::with_identity`]).
    pub fn new(config: &Config, gateway: Arc<Gateway>) -> Result<Server, ServeError> {
        let identity = match &config.tls {
            Some(t) => Some(Arc::new(crate::tls::Identity::load(
                "partner listener",
                &t.cert,
                &t.key,
            )?)),
            None => None,
        };
        Server::with_identity(config, gateway, identity)
    }

    /// A server presenting `identity` over TLS (plain HTTP without one); TLS clients are asked
    /// for a certificate they may send or not.
    pub fn with_identity(
        config: &Config,
        gateway: Arc<Gateway>,
        identity: Option<Arc<crate::tls::Identity>>,
    ) -> Result<Server, ServeError> {
        let tls = match identity {
            Some(identity) => Some(tokio_rustls::TlsAcceptor::from(crate::tls::server_config(
                identity, true,
            )?)),
            None => None,
        };
        Ok(Server {
            gateway,
            limits: config.limits,
            floor: RateFloor::of(&config.limits),
            public: PublicAddress {
                url: config.public_url.clone(),
                hosts: config.public_hosts.clone(),
            },
            tls,
            started: Instant::now(),
            metrics_allow: config.metrics_allow.clone(),
            admission: Admission::new(config),
            telemetry: None,
        })
    }

    /// Traces every request answered after its body was read (`crate::telemetry`; `None`: off).
    pub fn with_telemetry(mut self, telemetry: Option<Arc<crate::telemetry::Telemetry>>) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Binds `addr` with a listen backlog of [`LISTEN_BACKLOG`] (tokio's default is 1,024: a
    /// burst of hostile connects then overflows the queue, and a partner's SYN is dropped and
    /// retried only after a second).
    pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
        let bind = || -> io::Result<TcpListener> {
            let socket = if addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(LISTEN_BACKLOG)
        };
        bind().map_err(|source| ServeError::Bind { addr, source })
    }

    /// Accepts connections until `shutdown` turns true, then lets open connections finish their
    /// current request (up to `grace`).
    ///
    /// Each accepted connection takes one of `limits.max_connections` permits (more wait in the
    /// kernel's backlog), then passes [`Admission`] (the gate and the per-source limits) before
    /// a byte of it is read; a refused one gives its permit back at once. When fewer than a
    /// tenth of the permits are left, idle keep-alive connections are asked to close.
    pub async fn serve(
        self,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
        grace: Duration,
    ) {
        let server = Arc::new(self);
        let permits = Arc::new(Semaphore::new(server.limits.max_connections));
        let reclaim = Reclaim::new(Arc::clone(&permits), server.limits.max_connections);
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            let permit = loop {
                tokio::select! {
                    p = Arc::clone(&permits).acquire_owned() => break p.ok(),
                    _ = shutdown.changed() => break None,
                    // Every permit taken: keep asking idle connections to make room.
                    _ = tokio::time::sleep(RECLAIM_EVERY) => reclaim.check(),
                }
            };
            let Some(permit) = permit else { break };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => break,
            };
            let slot = {
                let snapshot = server.gateway.snapshot.load();
                match server.admission.admit(peer.ip(), &snapshot) {
                    Ok(slot) => slot,
                    Err(refusal) => {
                        admit::refuse(stream, refusal, server.tls.is_some());
                        continue;
                    }
                }
            };
            reclaim.check();
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().unwrap_or(peer);
            let server = Arc::clone(&server);
            let shutdown = shutdown.clone();
            let reclaim = Arc::clone(&reclaim);
            tasks.spawn(async move {
                let stats = Arc::clone(&server.gateway.stats);
                stats.open_connections.fetch_add(1, Ordering::Relaxed);
                server
                    .connection(stream, peer, local, shutdown, reclaim)
                    .await;
                stats.open_connections.fetch_sub(1, Ordering::Relaxed);
                drop(slot);
                drop(permit);
            });
            // Reap finished connection tasks so the set does not grow.
            while tasks.try_join_next().is_some() {}
        }
        drop(listener);
        let _ =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    }

    async fn connection(
        self: Arc<Self>,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        local: SocketAddr,
        shutdown: watch::Receiver<bool>,
        reclaim: Arc<Reclaim>,
    ) {
        let idle = self.limits.keepalive_idle_timeout;
        let state = ConnState::new(self.limits.max_header_bytes.max(8192));
        match self.tls.clone() {
            Some(acceptor) => {
                let handshake =
                    tokio::time::timeout(self.limits.header_read_timeout, acceptor.accept(stream))
                        .await;
                match handshake {
                    Ok(Ok(tls)) => {
                        // Read once per connection: the chain and the leaf's fingerprint.
                        let cert = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| Presented::new(chain.to_vec()))
                            .map(Arc::new);
                        let io = IdleIo::new(tls, idle, self.floor, Arc::clone(&state));
                        let reached = Reached { local, tls: true };
                        let conn = (peer, cert);
                        self.http(io, state, conn, reached, shutdown, reclaim).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
            None => {
                let io = IdleIo::new(stream, idle, self.floor, Arc::clone(&state));
                let reached = Reached { local, tls: false };
                self.http(io, state, (peer, None), reached, shutdown, reclaim)
                    .await;
            }
        }
    }

    async fn http<T>(
        self: Arc<Self>,
        io: IdleIo<T>,
        state: Arc<ConnState>,
        (peer, cert): (SocketAddr, Option<Arc<Presented>>),
        reached: Reached,
        mut shutdown: watch::Receiver<bool>,
        reclaim: Arc<Reclaim>,
    ) where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let server = Arc::clone(&self);
        let busy = Arc::clone(&state);
        let service = service_fn(move |req| {
            let server = Arc::clone(&server);
            let cert = cert.clone();
            // While a request is being answered the connection is not idle, however long the
            // upstream takes (the upstream has its own timeout).
            let guard = BusyGuard::enter(Arc::clone(&busy));
            let head = busy.take_head();
            async move {
                let response = server
                    .route(req, head, peer, reached, cert.as_deref())
                    .await;
                drop(guard);
                Ok::<_, Infallible>(response)
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .keep_alive(true)
            .max_buf_size(self.limits.max_header_bytes.max(8192));
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let mut signals = reclaim.subscribe();
        let mut listening = true;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    break;
                }
                _ = shutdown.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                    break;
                }
                changed = signals.changed(), if listening => {
                    if changed.is_err() {
                        listening = false;
                    } else if reclaim.take(&state) {
                        self.admission.count_reclaimed();
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.as_mut().await;
                        break;
                    }
                }
            }
        }
        if state.cut_slow() {
            self.admission.count_cut_slow();
        }
    }

    async fn route(
        &self,
        req: Request<Incoming>,
        head: Option<framing::Head>,
        peer: SocketAddr,
        reached: Reached,
        cert: Option<&Presented>,
    ) -> Response<Full<Bytes>> {
        if let Some(refused) = framing::refusal(req.version(), req.headers(), head) {
            tracing::debug!(%peer, reason = refused.reason(), "request refused before its body");
            return refused.response();
        }
        let path = req.uri().path().to_string();
        let query = req.uri().query().map(str::to_string);
        match (req.method(), path.as_str()) {
            (&Method::POST, PARTNER_PATH) => self.soap(req, peer, cert).await,
            (&Method::GET, PARTNER_PATH) => {
                self.public
                    .contract(&contract::PARTNER, req.headers(), query.as_deref(), reached)
            }
            (&Method::POST, CALLBACK_PATH) => self.callback(req, peer).await,
            (&Method::GET, CALLBACK_PATH) => self.public.contract(
                &contract::CALLBACK,
                req.headers(),
                query.as_deref(),
                reached,
            ),
            (&Method::POST, ENROLLMENT_PATH) => self.enrollment(req, peer).await,
            (&Method::GET, ENROLLMENT_PATH) => self.public.contract(
                &contract::ENROLLMENT,
                req.headers(),
                query.as_deref(),
                reached,
            ),
            (_, p) if p == crate::rest::PREFIX || p.starts_with(REST_PREFIX_SLASH) => {
                self.rest(req, peer, cert, reached).await
            }
            (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/metrics") => self.metrics(peer),
            (&Method::GET, "/readyz") => self.ready(),
            (_, PARTNER_PATH) => {
                let mut r = text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "use POST for SOAP requests, GET ?wsdl for the contract\n",
                );
                r.headers_mut()
                    .insert(header::ALLOW, header::HeaderValue::from_static("GET, POST"));
                r
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    async fn soap(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        cert: Option<&Presented>,
    ) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let request_id = new_request_id();
        let (parts, body) = req.into_parts();
        let version_hint =
            pipeline::content_type_version(&parts.headers).map_or(SoapVersion::Soap11, |(v, _)| v);
        let gw = &self.gateway;
        let mode = gw.settings.fault_status;
        let body = match self
            .read_body(&parts, body, version_hint, &request_id, peer, started)
            .await
        {
            Ok(b) => b,
            Err(response) => return response,
        };
        let trace = (self.telemetry.as_ref())
            .map(|t| t.request("partner", peer.ip(), &parts.headers, started));
        let incoming = pipeline::Incoming {
            peer: peer.ip(),
            headers: &parts.headers,
            body: &body,
            request_id: &request_id,
            client_cert: cert,
            trace: trace.as_ref(),
        };
        // One span per request, at DEBUG: events on the request's way carry its id when
        // debugging. Nothing on the path logs at INFO or above inside it (the access line, with
        // the request id, partner and operation, is written after it), and at INFO the span
        // cost ~8,000 instructions per request (2.6 %: creating it formats its fields).
        let span = tracing::debug_span!("request", request_id = %request_id, peer = %peer.ip());
        let outcome = pipeline::handle(gw, incoming).instrument(span).await;
        let version = outcome.version;
        // A response that cannot be encoded (it cannot: its values were validated on decode) is
        // answered as an invalid upstream response rather than not at all.
        let mut encode_failure = None;
        let (response, label, status) = match &outcome.result {
            Ok(UpstreamReply::Response(response)) => {
                let mut out = Vec::with_capacity(2048);
                match encode::body_only(version, &mut out, |w| Ok(response.encode(w)?)) {
                    Ok(()) => (
                        soap_response(StatusCode::OK, version, &request_id, out),
                        "ok",
                        StatusCode::OK,
                    ),
                    Err(e) => {
                        let rejection = pipeline::Rejection::Forward(
                            crate::forward::ForwardError::Invalid(e.to_string()),
                        );
                        let f = fault::render(&rejection, version, &request_id, mode);
                        let (label, status) = (f.outcome, f.status);
                        encode_failure = Some(rejection);
                        (fault_response(f, version, &request_id), label, status)
                    }
                }
            }
            Ok(UpstreamReply::Fault(upstream)) => {
                let f = fault::render_upstream(upstream, version, &request_id, mode);
                let (label, status) = (f.outcome, f.status);
                (fault_response(f, version, &request_id), label, status)
            }
            Err(rejection) => {
                let f = fault::render(rejection, version, &request_id, mode);
                let (label, status) = (f.outcome, f.status);
                (fault_response(f, version, &request_id), label, status)
            }
        };
        let done = Done {
            request_id: &request_id,
            peer,
            partner: outcome.partner.as_deref(),
            operation: outcome.operation.map(|o| o.name()),
            outcome: label,
            status,
            rejection: encode_failure.as_ref().or(outcome.result.as_ref().err()),
            stages: outcome.stages,
            key_id: outcome.key_id,
            face: Face::Soap,
        };
        if let Some(trace) = trace {
            trace.finish(
                &done.facts(),
                &outcome.stages,
                outcome.stages_from,
                Instant::now(),
            );
        }
        self.finish(done, started);
        response
    }

    /// `POST /soap/callback/v1`: the TSP calling a partner's BSS through the gateway.
    async fn callback(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let request_id = new_request_id();
        let (parts, body) = req.into_parts();
        let version_hint =
            pipeline::content_type_version(&parts.headers).map_or(SoapVersion::Soap11, |(v, _)| v);
        let Some(relay) = self.gateway.callback.clone() else {
            return text(StatusCode::NOT_FOUND, "callbacks are not enabled\n");
        };
        // The caller is checked before its body (up to limits.body_max_bytes) is read; the
        // connection of a refused one is closed, its body unread.
        let (answer, unread) = match relay.refuse_caller(peer.ip(), &parts.headers, &request_id) {
            Some(refused) => (refused, true),
            None => {
                let body = match self
                    .read_body(&parts, body, version_hint, &request_id, peer, started)
                    .await
                {
                    Ok(b) => b,
                    Err(response) => return response,
                };
                let trace = (self.telemetry.as_ref())
                    .map(|t| t.request("callback", peer.ip(), &parts.headers, started));
                let answer = relay
                    .handle(
                        &self.gateway.throttle,
                        peer.ip(),
                        &parts.headers,
                        &body,
                        &request_id,
                        trace.as_ref(),
                    )
                    .await;
                if let Some(trace) = trace {
                    let facts = respond::answer_facts(&answer, &request_id);
                    trace.finish(&facts, &StageTimes::default(), None, Instant::now());
                }
                (answer, false)
            }
        };
        self.answer(answer, &request_id, peer, unread, started)
    }

    /// Counts, logs and frames the answer of the callback relay or the enrollment endpoint
    /// (`unread`: the caller was refused before its body was read, so the connection closes).
    pub(super) fn answer(
        &self,
        answer: SoapAnswer,
        request_id: &str,
        peer: SocketAddr,
        unread: bool,
        started: Instant,
    ) -> Response<Full<Bytes>> {
        let done = Done {
            request_id,
            peer,
            partner: answer.partner.as_deref(),
            operation: answer.operation,
            outcome: answer.outcome,
            status: answer.status,
            rejection: None,
            stages: StageTimes::default(),
            key_id: None,
            face: Face::Soap,
        };
        self.finish(done, started);
        let mut r = soap_response(answer.status, answer.version, request_id, answer.body);
        if let Some(secs) = answer.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        if unread {
            r.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        r
    }

    /// Reads the body within `limits.body_max_bytes` and `limits.body_read_timeout_ms`; a
    /// refusal is answered (and counted) here, and the connection is closed, since the rest of
    /// an oversized or stalled body is not read.
    async fn read_body(
        &self,
        parts: &http::request::Parts,
        body: Incoming,
        version: SoapVersion,
        request_id: &str,
        peer: SocketAddr,
        started: Instant,
    ) -> Result<Bytes, Response<Full<Bytes>>> {
        self.read_limited(parts, body).await.map_err(|e| {
            let rejection = pipeline::Rejection::Limit(e);
            let f = fault::render(
                &rejection,
                version,
                request_id,
                self.gateway.settings.fault_status,
            );
            let done = Done {
                request_id,
                peer,
                partner: None,
                operation: None,
                outcome: f.outcome,
                status: f.status,
                rejection: Some(&rejection),
                stages: StageTimes::default(),
                key_id: None,
                face: Face::Soap,
            };
            self.finish(done, started);
            let mut response = fault_response(f, version, request_id);
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            response
        })
    }

    /// Reads the body within `limits.body_max_bytes` and `limits.body_read_timeout_ms` (and the
    /// receive-rate floor), whichever face the request came through.
    async fn read_limited(
        &self,
        parts: &http::request::Parts,
        body: Incoming,
    ) -> Result<Bytes, limit::LimitError> {
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        limit::read_body_within(
            body,
            declared,
            limit::BodyBounds {
                max: self.limits.body_max_bytes,
                timeout: self.limits.body_read_timeout,
                floor: self.floor,
            },
        )
        .await
    }

    /// The one log line and the statistics of an answered request.
    fn finish(&self, done: Done<'_>, started: Instant) {
        let elapsed = started.elapsed();
        log_line(&done, elapsed);
        self.gateway.stats.record(
            Record {
                partner: done.partner,
                operation: done.operation,
                outcome: done.outcome,
                total: elapsed,
                stages: done.stages,
                key_id: done.key_id,
                face: done.face,
            },
            pipeline::unix_now(),
        );
    }

    /// Seconds since the server started (for diagnostics).
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}
