//! `partnergate upstream serve`: the partner API layer as its own HTTP service, behind a gateway.
//!
//! It trusts the partner identity the gateway asserts (`cmn:GatewayAssertion`) only from the
//! gateway: a call must come from one of the allowed gateway networks **and** carry the shared
//! secret (`X-Partnergate-Gateway-Secret`, compared in constant time). Anything else — a direct
//! call that bypasses the gateway — is refused with `AccessDenied` and never executed. Requests
//! are decoded as strictly as at the gateway (limits, envelope, typed decode), and answers are
//! the canonical encodings of typed values.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use ipnet::IpNet;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{reply, Provisioning};
use crate::config::XmlLimits;
use crate::decode::{self, DecodeLimits};
use crate::encode;
use crate::envelope::{self, SoapVersion};
use crate::fault::{self, StatusModes};
use crate::forward::{UpstreamReply, GATEWAY_SECRET_HEADER};
use crate::generated::partner::Operation;
use crate::generated::types::cmn;
use crate::limit;
use crate::rejection::{ActionError, Rejection};
use crate::server::plain::Plain;

/// Connections served at once (the gateways' pooled connections and their calls).
pub const MAX_CONNECTIONS: usize = 1024;
/// How long open connections may finish after shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Who may call the standalone layer.
#[derive(Clone, Debug)]
pub struct GatewayTrust {
    /// Networks the gateway nodes call from.
    pub allowed: Vec<IpNet>,
    /// The secret every gateway node sends.
    pub secret: String,
}

/// Why a direct call was refused (logged; the caller gets AccessDenied).
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The peer is not a gateway node.
    #[error("caller {0} is not an allowed gateway")]
    Source(std::net::IpAddr),
    /// Missing or wrong secret.
    #[error("missing or wrong gateway secret")]
    Secret,
    /// No or malformed GatewayAssertion.
    #[error("missing or malformed GatewayAssertion")]
    Assertion,
}

/// The standalone service.
pub struct Standalone {
    layer: Arc<Provisioning>,
    trust: GatewayTrust,
    limits: XmlLimits,
    body_max: usize,
}

impl Standalone {
    /// A service for `layer`, trusting `trust`.
    pub fn new(layer: Arc<Provisioning>, trust: GatewayTrust) -> Self {
        Standalone {
            layer,
            trust,
            limits: XmlLimits::default(),
            body_max: 1024 * 1024,
        }
    }

    /// Serves on `listener` until `shutdown` turns true (or its sender is dropped): at most
    /// [`MAX_CONNECTIONS`] connections at once, kept alive for the gateways' connection pools;
    /// on shutdown the open ones finish within [`SHUTDOWN_GRACE`].
    pub async fn serve(self, listener: TcpListener, shutdown: watch::Receiver<bool>) {
        let plain = Plain {
            name: "partner API layer",
            max_connections: MAX_CONNECTIONS,
            header_timeout: Duration::from_secs(10),
            lifetime: Duration::from_secs(24 * 3600),
            keep_alive: true,
            max_buf_size: 64 * 1024,
            grace: SHUTDOWN_GRACE,
        };
        let this = Arc::new(self);
        plain
            .serve(listener, shutdown, move |req, peer| {
                let this = Arc::clone(&this);
                async move { this.handle(req, peer).await }
            })
            .await;
    }

    fn check_trust(&self, peer: SocketAddr, headers: &http::HeaderMap) -> Result<(), TrustError> {
        if !crate::allowlist::contains(&self.trust.allowed, peer.ip()) {
            return Err(TrustError::Source(crate::allowlist::canonical(peer.ip())));
        }
        let presented = headers
            .get(GATEWAY_SECRET_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        let expected = self.trust.secret.as_bytes();
        // Constant time over the expected length; a length mismatch fails too.
        let equal = presented.len() == expected.len() && bool::from(presented.ct_eq(expected));
        if !equal {
            return Err(TrustError::Secret);
        }
        Ok(())
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        if req.method() != Method::POST {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "POST SOAP requests here\n");
        }
        let request_id = crate::server::new_request_id();
        let (parts, body) = req.into_parts();
        let version = crate::transport::content_type_version(&parts.headers)
            .map_or(SoapVersion::Soap11, |(v, _)| v);
        if let Err(e) = self.check_trust(peer, &parts.headers) {
            tracing::warn!(%peer, error = %e, "refused a call that did not come through the gateway");
            let denied = Rejection::Auth(crate::authenticate::AuthError::Missing);
            return render(
                fault::render(&denied, version, &request_id, StatusModes::default()),
                version,
            );
        }
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body =
            match limit::read_body(body, declared, self.body_max, Duration::from_secs(30)).await {
                Ok(b) => b,
                Err(e) => {
                    return render(
                        fault::render(
                            &Rejection::Limit(e),
                            version,
                            &request_id,
                            StatusModes::default(),
                        ),
                        version,
                    )
                }
            };
        match self.execute(&body, &parts.headers, &request_id).await {
            Ok((version, UpstreamReply::Response(response))) => {
                let mut out = Vec::with_capacity(2048);
                match encode::body_only(version, &mut out, |w| Ok(response.encode(w)?)) {
                    Ok(()) => soap(StatusCode::OK, version, out),
                    Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("encode: {e}\n")),
                }
            }
            Ok((version, UpstreamReply::Fault(f))) => render(
                fault::render_layer_fault(&f, version, &request_id, StatusModes::default()),
                version,
            ),
            Err((version, rejection)) => render(
                fault::render(&rejection, version, &request_id, StatusModes::default()),
                version,
            ),
        }
    }

    async fn execute(
        &self,
        body: &[u8],
        headers: &http::HeaderMap,
        request_id: &str,
    ) -> Result<(SoapVersion, UpstreamReply), (SoapVersion, Rejection)> {
        let v = SoapVersion::Soap11;
        let outline = limit::check_xml(body, &self.limits).map_err(|e| (v, Rejection::Limit(e)))?;
        let env =
            envelope::scan_outlined(body, &outline).map_err(|e| (v, Rejection::Envelope(e)))?;
        let v = env.version;
        let op = Operation::from_request_element(&env.body.namespace, env.body.local_name)
            .ok_or_else(|| (v, Rejection::Decode(decode::unknown_operation(&env.body))))?;
        if let Some(action) = headers.get("soapaction").and_then(|a| a.to_str().ok()) {
            let action = action.trim().trim_matches('"');
            if !action.is_empty() && action != op.soap_action() {
                return Err((
                    v,
                    Rejection::Action(ActionError {
                        action: action.chars().take(200).collect(),
                        body: op.name(),
                    }),
                ));
            }
        }
        let assertion = env
            .headers
            .iter()
            .find(|h| {
                h.element
                    .is("urn:partnergate:partner:common:v1", "GatewayAssertion")
            })
            .ok_or((v, Rejection::Auth(crate::authenticate::AuthError::Missing)))?;
        let assertion: cmn::GatewayAssertion = decode::decode_with(
            &assertion.element,
            crate::generated::partner::NAMESPACES,
            DecodeLimits::default(),
            |r| {
                use xsd_parser_types::quick_xml::DeserializeSync;
                cmn::GatewayAssertion::deserialize(r)
            },
        )
        .map_err(|e| {
            (
                v,
                Rejection::Auth(crate::authenticate::AuthError::Malformed(e.to_string())),
            )
        })?;
        let request = decode::partner_request(&env.body, DecodeLimits::default())
            .map_err(|e| (v, Rejection::Decode(e)))?;
        let partner = assertion.partner_id.as_str().to_string();
        let layer = Arc::clone(&self.layer);
        let result = tokio::task::spawn_blocking(move || layer.execute(&partner, &request))
            .await
            .map_err(|e| {
                (
                    v,
                    Rejection::Forward(crate::forward::ForwardError::Connect(e.to_string())),
                )
            })?;
        reply(result, request_id)
            .map(|r| (v, r))
            .map_err(|e| (v, Rejection::Forward(e)))
    }
}

/// Binds and serves in the background; returns the bound address and the shutdown switch.
pub async fn start(
    layer: Arc<Provisioning>,
    trust: GatewayTrust,
    listen: SocketAddr,
) -> std::io::Result<(SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    // Which database this process works on (it defaults to ./partnergate.db).
    tracing::info!(database = layer.database(), "partner API layer database");
    let (tx, rx) = watch::channel(false);
    let handle = tokio::spawn(Standalone::new(layer, trust).serve(listener, rx));
    Ok((addr, tx, handle))
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text.to_string())));
    *r.status_mut() = status;
    r
}

fn soap(status: StatusCode, version: SoapVersion, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let ct = match version {
        SoapVersion::Soap11 => "text/xml; charset=utf-8",
        SoapVersion::Soap12 => "application/soap+xml; charset=utf-8",
    };
    r.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ct));
    r
}

fn render(f: fault::FaultResponse, version: SoapVersion) -> Response<Full<Bytes>> {
    soap(f.status, version, f.body)
}
