//! Stage: forward. Takes the strictly decoded request of an authenticated, allowed, permitted and
//! admitted partner, and returns the upstream's typed reply — or a [`ForwardError`].
//!
//! [`HttpUpstream`] re-encodes the request into a fresh SOAP 1.1 envelope (`encode.rs`: the
//! partner's key and bytes never leave), asserts the authenticated partner in a `GatewayAssertion`
//! header of partnergate's own, sends it with a pooled hyper client (HTTP, or HTTPS via rustls
//! with the system roots plus an optional CA), bounded by connect and response timeouts and a
//! response size limit, and decodes the answer as strictly as a partner's request: a response of
//! the called operation, or a SOAP fault whose detail is one of the contract's faults. Anything
//! else is `UpstreamUnavailable`, never relayed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::UpstreamConfig;
use crate::decode::{self, DecodeLimits};
use crate::encode::{self, EncodeError};
use crate::envelope::{self, FaultCode, SoapVersion};
use crate::generated::partner::{self, Operation};
use crate::generated::types::cmn;

/// A boxed future (the upstream is a trait object).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who is calling, for the upstream.
#[derive(Clone, Copy, Debug)]
pub struct CallContext<'a> {
    /// The authenticated partner.
    pub partner_id: &'a str,
    /// The gateway's request id.
    pub request_id: &'a str,
    /// `traceparent` (+ `tracestate`) for the call, when tracing is on (`crate::telemetry`).
    pub trace: Option<&'a http::HeaderMap>,
}

/// A fault from the upstream (NotFound, Conflict, …, or one without a contract detail). Its kind
/// and typed fields are passed on to the partner; its texts are not (`fault::render_upstream`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamFault {
    /// SOAP fault code.
    pub code: FaultCode,
    /// The fault's reason text: the upstream's own, for the log only.
    pub reason: String,
    /// The contract fault detail (its `Message` is the upstream's text, for the log only).
    pub detail: Option<partner::FaultDetail>,
}

/// What the upstream answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamReply {
    /// The operation's response.
    Response(partner::Response),
    /// A contract fault.
    Fault(UpstreamFault),
}

/// Why the upstream could not be used. All become `UpstreamUnavailable` for the partner.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// No partner API layer is configured.
    #[error("no upstream is configured")]
    Unconfigured,
    /// Connection refused, DNS, TLS handshake…
    #[error("upstream unreachable: {0}")]
    Connect(String),
    /// No complete response in time.
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// An HTTP status that is neither a response nor a SOAP fault.
    #[error("upstream answered HTTP {0}")]
    Status(u16),
    /// The response body exceeded `upstream.max_response_bytes`.
    #[error("upstream response larger than {0} bytes")]
    TooLarge(usize),
    /// The response is not a valid response of the operation (strict decode failed).
    #[error("upstream response invalid: {0}")]
    Invalid(String),
    /// The request could not be encoded (a value that escaped validation).
    #[error("request could not be encoded: {0}")]
    Encode(String),
}

impl From<EncodeError> for ForwardError {
    fn from(e: EncodeError) -> Self {
        ForwardError::Encode(e.to_string())
    }
}

/// The partner API layer, wherever it runs.
pub trait Upstream: Send + Sync {
    /// Carries out `request` for the partner in `ctx`.
    fn call<'a>(
        &'a self,
        ctx: CallContext<'a>,
        request: &'a partner::Request,
    ) -> BoxFuture<'a, Result<UpstreamReply, ForwardError>>;
}

/// Header carrying the shared secret a standalone partner API layer requires from the gateway.
pub const GATEWAY_SECRET_HEADER: &str = "x-partnergate-gateway-secret";

/// A partner API layer reached over HTTP(S).
pub struct HttpUpstream {
    url: http::Uri,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    response_timeout: Duration,
    max_response_bytes: usize,
    gateway_secret: Option<String>,
}

/// Building the client failed (bad URL or CA file).
#[derive(Debug, thiserror::Error)]
#[error("upstream configuration: {0}")]
pub struct UpstreamConfigError(pub String);

impl HttpUpstream {
    /// A client for `config.url` with the system roots plus `config.ca_file`, presenting
    /// `config.client` when the upstream asks for a client certificate (loaded here: not
    /// reloadable; see [`HttpUpstream::with_identity`]).
    pub fn new(config: &UpstreamConfig) -> Result<HttpUpstream, UpstreamConfigError> {
        let identity = match &config.client {
            Some(files) => Some(Arc::new(
                crate::tls::Identity::load("upstream client", &files.cert, &files.key)
                    .map_err(|e| UpstreamConfigError(e.to_string()))?,
            )),
            None => None,
        };
        HttpUpstream::with_identity(config, identity)
    }

    /// Like [`HttpUpstream::new`], presenting `identity` (mutual TLS) when the upstream asks.
    pub fn with_identity(
        config: &UpstreamConfig,
        identity: Option<Arc<crate::tls::Identity>>,
    ) -> Result<HttpUpstream, UpstreamConfigError> {
        let url_text = config
            .url
            .as_deref()
            .ok_or_else(|| UpstreamConfigError("no upstream URL".into()))?;
        let url: http::Uri = url_text
            .parse()
            .map_err(|e| UpstreamConfigError(format!("{url_text}: {e}")))?;
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // Unparseable system certificates are skipped, as browsers do.
            let _ = roots.add(cert);
        }
        if let Some(path) = &config.ca_file {
            use rustls_pki_types::pem::PemObject;
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| UpstreamConfigError(format!("{}: {e}", path.display())))?;
            for cert in certs {
                let cert =
                    cert.map_err(|e| UpstreamConfigError(format!("{}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| UpstreamConfigError(format!("{}: {e}", path.display())))?;
            }
        }
        let tls = crate::tls::client_config(roots, identity)
            .map_err(|e| UpstreamConfigError(e.to_string()))?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build(https);
        Ok(HttpUpstream {
            url,
            client,
            response_timeout: config.response_timeout,
            max_response_bytes: config.max_response_bytes,
            gateway_secret: config.gateway_secret.clone(),
        })
    }

    async fn send(
        &self,
        ctx: CallContext<'_>,
        request: &partner::Request,
    ) -> Result<UpstreamReply, ForwardError> {
        let op = request.operation();
        let body = encode_upstream_request(ctx, request)?;
        let mut builder = http::Request::post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .header("soapaction", format!("\"{}\"", op.soap_action()));
        if let Some(secret) = &self.gateway_secret {
            builder = builder.header(GATEWAY_SECRET_HEADER, secret.as_str());
        }
        for (name, value) in ctx.trace.into_iter().flatten() {
            builder = builder.header(name, value);
        }
        let http_request = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ForwardError::Encode(e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(http_request)
                .await
                .map_err(|e| ForwardError::Connect(error_chain(&e)))?;
            let status = response.status();
            let limited = Limited::new(response.into_body(), self.max_response_bytes);
            let bytes = limited.collect().await.map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    ForwardError::TooLarge(self.max_response_bytes)
                } else {
                    ForwardError::Connect(e.to_string())
                }
            })?;
            Ok::<_, ForwardError>((status, bytes.to_bytes()))
        };
        let (status, bytes) = tokio::time::timeout(self.response_timeout, exchange)
            .await
            .map_err(|_| ForwardError::Timeout(self.response_timeout))??;
        decode_upstream_reply(op, status.as_u16(), &bytes)
    }
}

impl Upstream for HttpUpstream {
    fn call<'a>(
        &'a self,
        ctx: CallContext<'a>,
        request: &'a partner::Request,
    ) -> BoxFuture<'a, Result<UpstreamReply, ForwardError>> {
        Box::pin(self.send(ctx, request))
    }
}

/// The canonical envelope sent upstream: SOAP 1.1, a `GatewayAssertion` header naming the
/// authenticated partner and the gateway request id, and the re-encoded body.
pub fn encode_upstream_request(
    ctx: CallContext<'_>,
    request: &partner::Request,
) -> Result<Vec<u8>, ForwardError> {
    let assertion = cmn::GatewayAssertion {
        partner_id: cmn::PartnerId::new(ctx.partner_id.to_string())
            .map_err(|e| ForwardError::Encode(format!("partner id: {e}")))?,
        request_id: cmn::GatewayRequestId::new(ctx.request_id.to_string())
            .map_err(|e| ForwardError::Encode(format!("request id: {e}")))?,
    };
    let mut out = Vec::with_capacity(2048);
    encode::envelope(
        SoapVersion::Soap11,
        &mut out,
        Some(|w: &mut encode::XmlWriter<'_>| {
            use xsd_parser_types::quick_xml::SerializeSync;
            const NAME: &str = "cmn:GatewayAssertion";
            encode::fast::encode_root(&assertion, NAME, w, |w| assertion.serialize(NAME, w))?;
            Ok(())
        }),
        |w| Ok(request.encode(w)?),
    )?;
    Ok(out)
}

/// Decodes what the upstream answered to a call of `op`.
pub fn decode_upstream_reply(
    op: Operation,
    status: u16,
    bytes: &[u8],
) -> Result<UpstreamReply, ForwardError> {
    // An ordinary answer in one pass: the envelope up to the body element, the fast decode of
    // the body element, then the rest of the envelope. Anything else (a fault, an unusual shape,
    // an error) takes the full scan and decode below, which name what is wrong.
    if (200..300).contains(&status) {
        let open = envelope::scan_to_body(bytes);
        let limits = DecodeLimits::default();
        if let Some(response) = open
            .ok()
            .and_then(|open| decode::partner_response_open(op, &open, limits))
        {
            // Debug builds and the fuzz targets: the same as the full path. The message shows
            // no values.
            #[cfg(any(debug_assertions, feature = "fuzzing"))]
            assert!(
                matches!(decode_whole_reply(op, status, bytes), Ok(UpstreamReply::Response(r)) if r == response),
                "the one-pass decode of an upstream answer disagrees with the full scan and decode"
            );
            return Ok(UpstreamReply::Response(response));
        }
    }
    decode_whole_reply(op, status, bytes)
}

/// [`decode_upstream_reply`] with a scan of the whole envelope first.
fn decode_whole_reply(
    op: Operation,
    status: u16,
    bytes: &[u8],
) -> Result<UpstreamReply, ForwardError> {
    let invalid = |e: &dyn std::fmt::Display| ForwardError::Invalid(e.to_string());
    let limits = DecodeLimits::default();
    let env = match envelope::scan(bytes) {
        Ok(env) => env,
        Err(_) if !(200..300).contains(&status) && status != 500 => {
            return Err(ForwardError::Status(status))
        }
        Err(e) => return Err(invalid(&e)),
    };
    let is_fault = env.body.is(env.version.namespace(), "Fault");
    match (status, is_fault) {
        (200..=299, false) => decode::partner_response(op, &env.body, limits)
            .map(UpstreamReply::Response)
            .map_err(|e| invalid(&e)),
        (_, true) => {
            let fault = envelope::parse_fault(&env).map_err(|e| invalid(&e))?;
            let detail = match &fault.detail {
                Some(entry) => Some(decode::partner_fault(entry, limits).map_err(|e| invalid(&e))?),
                None => None,
            };
            if matches!(detail, Some(partner::FaultDetail::AccessDenied(_))) {
                // The upstream refused the gateway itself (a standalone partner API layer checks
                // the gateway's address and secret): not the partner's fault, and not to be
                // shown to the partner as an access decision about it.
                return Err(ForwardError::Invalid(
                    "the upstream refused the gateway (check upstream.gateway_secret and its allowed gateways)".into(),
                ));
            }
            Ok(UpstreamReply::Fault(UpstreamFault {
                code: fault.code,
                reason: fault.reason,
                detail,
            }))
        }
        (status, false) => Err(ForwardError::Status(status)),
    }
}

/// An error with its sources, for the log (hyper's client error alone says only "client error
/// (Connect)").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(op: &str, file: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/data/{op}/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture")
    }

    #[test]
    fn the_upstream_request_is_canonical_and_carries_no_partner_key() {
        let bytes = fixture("CreateAccount", "request.xml");
        let env = envelope::scan(&bytes).expect("scan");
        let request = decode::partner_request(&env.body, DecodeLimits::default()).expect("decode");
        let ctx = CallContext {
            partner_id: "PARTNER-0042",
            request_id: "gw-0123",
            trace: None,
        };
        let out = encode_upstream_request(ctx, &request).expect("encode");
        let text = String::from_utf8(out.clone()).expect("utf-8");
        assert!(
            !text.contains("pgk_"),
            "the partner key must not be forwarded"
        );
        assert!(!text.contains("PartnerAuth"));
        assert!(text.contains("<cmn:GatewayAssertion"));
        assert!(text.contains("<cmn:PartnerId>PARTNER-0042</cmn:PartnerId>"));
        let env2 = envelope::scan(&out).expect("scan");
        assert_eq!(env2.headers.len(), 1);
        let again = decode::partner_request(&env2.body, DecodeLimits::default()).expect("decode");
        assert_eq!(request, again);
    }

    #[test]
    fn replies_are_decoded_strictly() {
        let ok = decode_upstream_reply(
            Operation::GetAccount,
            200,
            &fixture("GetAccount", "response.xml"),
        );
        assert!(matches!(ok, Ok(UpstreamReply::Response(_))));
        // A response of another operation is not a response of this one.
        let wrong = decode_upstream_reply(
            Operation::GetDevice,
            200,
            &fixture("GetAccount", "response.xml"),
        );
        assert!(matches!(wrong, Err(ForwardError::Invalid(_))));
        let fault = std::fs::read(format!(
            "{}/tests/data/faults/NotFoundFault.soap11.xml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture");
        match decode_upstream_reply(Operation::GetAccount, 500, &fault) {
            Ok(UpstreamReply::Fault(f)) => {
                assert_eq!(f.code, FaultCode::Sender);
                assert!(matches!(f.detail, Some(partner::FaultDetail::NotFound(_))));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decode_upstream_reply(Operation::GetAccount, 502, b"<html>bad gateway</html>"),
            Err(ForwardError::Status(502))
        );
        assert!(matches!(
            decode_upstream_reply(Operation::GetAccount, 200, b"<not-soap/>"),
            Err(ForwardError::Invalid(_))
        ));
    }

    /// Whether an answer takes the one-pass path (scan to the body element, fast decode, rest).
    fn one_pass(op: Operation, bytes: &[u8]) -> bool {
        envelope::scan_to_body(bytes).is_ok_and(|open| {
            decode::partner_response_open(op, &open, DecodeLimits::default()).is_some()
        })
    }

    #[test]
    fn every_golden_response_is_decoded_in_one_pass() {
        for op in Operation::ALL {
            let bytes = fixture(op.name(), "response.xml");
            assert!(one_pass(op, &bytes), "{}", op.name());
            // (and equals the full path: asserted inside in this debug build)
            assert!(matches!(
                decode_upstream_reply(op, 200, &bytes),
                Ok(UpstreamReply::Response(_))
            ));
        }
    }

    /// What follows the body element: the one-pass path accepts exactly what the full scan
    /// accepts, and its result is the full path's (asserted inside `decode_upstream_reply`).
    #[test]
    fn the_rest_of_an_answer_is_checked_as_the_full_scan_checks_it() {
        let doc = String::from_utf8(fixture("GetAccount", "response.xml")).expect("utf-8");
        let end = "</acc:GetAccountResponse>";
        let at = doc.find(end).expect("end tag") + end.len();
        let (head, tail) = doc.split_at(at);
        assert_eq!(tail, "\n  </soapenv:Body>\n</soapenv:Envelope>\n");
        let other = "<acc:GetAccountResponse/>";
        for (tail, accepted) in [
            ("</soapenv:Body></soapenv:Envelope>", true),
            (
                "<!-- c --></soapenv:Body >\n<!-- c -->\t</soapenv:Envelope\n>\r\n<!---->",
                true,
            ),
            ("</soapenv:Body></soapenv:Envelope>", true),
            ("", false),
            ("</soapenv:Body>", false),
            ("</soapenv:Body></soapenv:Envelope></x>", false),
            ("</soapenv:Body></soapenv:Envelope>x", false),
            ("</soapenv:Body></soapenv:Envelope><!-- a -- b -->", false),
            ("</soapenv:Body></soapenv:Envelope><?pi?>", false),
            ("</soapenv:Body></soapenv:Envelope>\u{FEFF}", false),
            ("\u{FEFF}</soapenv:Body></soapenv:Envelope>", false),
            ("&#32;</soapenv:Body></soapenv:Envelope>", false),
            ("<![CDATA[]]></soapenv:Body></soapenv:Envelope>", false),
            (&format!("{other}</soapenv:Body></soapenv:Envelope>"), false),
            (
                &format!("</soapenv:Body><soapenv:Body>{other}</soapenv:Body></soapenv:Envelope>"),
                false,
            ),
            ("</soapenv:Body><soapenv:Header/></soapenv:Envelope>", false),
            ("</Body></soapenv:Envelope>", false),
            ("</soapenv:Envelope></soapenv:Body>", false),
            (
                "</soapenv:Body></soapenv:Envelope></soapenv:Envelope>",
                false,
            ),
        ] {
            let bytes = format!("{head}{tail}").into_bytes();
            let whole = decode_whole_reply(Operation::GetAccount, 200, &bytes);
            assert_eq!(whole.is_ok(), accepted, "{tail:?}: {whole:?}");
            assert_eq!(
                one_pass(Operation::GetAccount, &bytes),
                accepted,
                "{tail:?}"
            );
            assert_eq!(
                decode_upstream_reply(Operation::GetAccount, 200, &bytes),
                whole
            );
        }
    }
}
