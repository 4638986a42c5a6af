//! The other direction: the TSP's partner API layer calls a partner's BSS through partnergate
//! (`POST /soap/callback/v1`). The same kind of stages as the partner path, against
//! `wsdl/partner-callback.wsdl`:
//!
//! XML limits → envelope scan → operation (and SOAPAction) → the caller is one of the TSP servers
//! allowed to call back (`callback.allowed_callers`) → the partner's callback key in
//! `CallbackAuth` (hash, constant-time compare, like API keys) → strict typed decode → a fresh
//! canonical envelope (SOAP 1.1, the `CallbackAuth` header re-encoded) to the partner's registered
//! callback URL over HTTPS (the partner's own CA when one is registered, else the system roots),
//! with connect and response timeouts → the partner's answer decoded strictly and re-encoded for
//! the TSP. Every refusal or failure is a `CallbackFault` with its reason.
//!
//! **Throttled before the partner is called.** Once the callback key names the partner, the
//! partner's callback limiter ([`Throttle::admit_callback`]: its own callback rate, else
//! `callback.default_rate_per_second` / `callback.default_burst`, counted across the cluster
//! like the inbound limits) admits the callback or refuses it: a `CallbackFault` with reason
//! `throttled`, `RetryAfterSeconds` in the detail and a `Retry-After` header, and the partner's
//! BSS is not called. A refused callback spends nothing. A partner's own
//! `CallbackFault` reaches the TSP with its `Reason` and `RequestId` and the gateway's texts (its
//! faultstring and `Message` go to the log only), as the partner API's faults do on the partner
//! path.
//!
//! **Only the verified credential is relayed**: the `CallbackAuth` sent to the partner is the
//! block [`authenticate::authenticate_callback`] verified (decoded from it), never another
//! `CallbackAuth` of the request (one addressed to another SOAP node is not even read).
//!
//! **Callbacks never reach inside.** A callback URL is the partner's to choose, so it must not
//! make the gateway a proxy into the TSP's own networks: the relay refuses to connect to
//! loopback, link-local (cloud metadata), private, shared (CGNAT), unique-local, reserved,
//! unspecified, broadcast and multicast addresses — IPv4-mapped, IPv4-compatible and NAT64 forms
//! included — unless an address is inside `callback.allowed_networks` (unspecified, broadcast
//! and multicast never). It is checked twice: when the URL is saved (an IP literal; admin
//! validation) and when connecting, after DNS resolution, on every address resolved (refused
//! ones are dropped before connecting) and on the address actually connected to
//! ([`refused_target`], [`GuardedConnector`]). Every failure to reach the partner or to get a
//! valid answer reads the same for the TSP (no status codes, no error text: a port scan learns
//! nothing); the detail is logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};

use crate::authenticate::{self, AuthError};
use crate::clock::unix_now;
use crate::decode::{self, DecodeError, DecodeLimits};
use crate::encode::{self, EncodeError};
use crate::envelope::{self, EnvelopeError, FaultCode, SoapVersion};
use crate::generated::callback::{self, FaultDetail, Operation, Request, Response};
use crate::generated::types::cb;
use crate::limit::{self, LimitError};
use crate::store::{PartnerEntry, SnapshotCell};
use crate::throttle::{Throttle, Throttled};
use crate::transport::{
    content_encoding, content_type_version, soap_action, SoapAnswer, TransportError,
};

pub use crate::config::CallbackConfig;

/// Why a callback was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// HTTP framing.
    #[error(transparent)]
    Transport(TransportError),
    /// Limits.
    #[error(transparent)]
    Limit(LimitError),
    /// Not an acceptable envelope.
    #[error(transparent)]
    Envelope(EnvelopeError),
    /// SOAPAction and body disagree.
    #[error("SOAPAction does not match the body element")]
    Action,
    /// The caller is not an allowed TSP server.
    #[error("caller {0} is not allowed to send callbacks")]
    Caller(std::net::IpAddr),
    /// The callback key.
    #[error(transparent)]
    Auth(AuthError),
    /// Strict decode.
    #[error(transparent)]
    Decode(DecodeError),
    /// The partner's callback rate is exhausted; the BSS was not called.
    #[error(transparent)]
    Throttled(Throttled),
    /// The partner has no (usable) callback URL.
    #[error("partner has no usable callback URL: {0}")]
    NoEndpoint(String),
    /// The partner's BSS is down, slow or answered something invalid.
    #[error("partner BSS: {0}")]
    Partner(String),
    /// The request could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl CallbackError {
    fn reason(&self) -> (cb::CallbackFaultReason, &'static str) {
        use cb::CallbackFaultReason as R;
        match self {
            CallbackError::Caller(_) | CallbackError::Auth(_) => {
                (R::AuthenticationFailed, "callback-denied")
            }
            CallbackError::Transport(_)
            | CallbackError::Limit(_)
            | CallbackError::Envelope(_)
            | CallbackError::Action
            | CallbackError::Decode(_) => (R::InvalidRequest, "callback-invalid"),
            CallbackError::NoEndpoint(_) => (R::NotFound, "callback-no-endpoint"),
            CallbackError::Throttled(_) => (R::Throttled, "callback-throttled"),
            CallbackError::Partner(_) | CallbackError::Encode(_) => {
                (R::Unavailable, "callback-unavailable")
            }
        }
    }

    fn status(&self) -> http::StatusCode {
        match self {
            CallbackError::Caller(_) | CallbackError::Auth(_) => http::StatusCode::FORBIDDEN,
            CallbackError::NoEndpoint(_) => http::StatusCode::NOT_FOUND,
            CallbackError::Throttled(_) => http::StatusCode::TOO_MANY_REQUESTS,
            CallbackError::Transport(e) => e.status(),
            CallbackError::Partner(_) | CallbackError::Encode(_) => http::StatusCode::BAD_GATEWAY,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<GuardedConnector>, Full<Bytes>>;

/// The callback relay: settings, the snapshot, and HTTPS clients per trust store.
pub struct Relay {
    config: CallbackConfig,
    snapshot: Arc<SnapshotCell>,
    /// Clients by the SHA-256 of the partner's CA PEM (empty key: system roots).
    clients: Mutex<HashMap<[u8; 32], HttpsClient>>,
    xml: crate::config::XmlLimits,
    statuses: crate::fault::StatusModes,
    /// The client certificate presented to callback servers that ask (mutual TLS).
    identity: Option<Arc<crate::tls::Identity>>,
}

impl Relay {
    /// A relay reading partners from `snapshot`.
    pub fn new(
        config: CallbackConfig,
        snapshot: Arc<SnapshotCell>,
        xml: crate::config::XmlLimits,
        statuses: crate::fault::StatusModes,
    ) -> Self {
        Relay {
            config,
            snapshot,
            clients: Mutex::new(HashMap::new()),
            xml,
            statuses,
            identity: None,
        }
    }

    /// Presents `identity` to the partners' callback servers that ask for a client certificate.
    pub fn with_identity(mut self, identity: Option<Arc<crate::tls::Identity>>) -> Self {
        self.identity = identity;
        self
    }

    /// The refusal of a caller outside `callback.allowed_callers`, decided before its body is
    /// read (the same answer `handle` gives); `None` when the caller is allowed.
    pub fn refuse_caller(
        &self,
        peer: std::net::IpAddr,
        headers: &http::HeaderMap,
        request_id: &str,
    ) -> Option<SoapAnswer> {
        let peer = crate::allowlist::canonical(peer);
        if crate::allowlist::contains(&self.config.allowed_callers, peer) {
            return None;
        }
        let version = content_type_version(headers).map_or(SoapVersion::Soap11, |(v, _)| v);
        Some(self.refuse(CallbackError::Caller(peer), version, request_id, None, None))
    }

    /// Handles one callback request (body already read within the body limits), admitted by
    /// the partner's callback limiter in `throttle`; `trace`: its server span, when tracing is on
    /// (the call to the partner's BSS gets a client span and its `traceparent`).
    pub async fn handle(
        &self,
        throttle: &Throttle,
        peer: std::net::IpAddr,
        headers: &http::HeaderMap,
        body: &[u8],
        request_id: &str,
        trace: Option<&crate::telemetry::RequestTrace>,
    ) -> SoapAnswer {
        let mut partner = None;
        let mut operation = None;
        let version_hint = content_type_version(headers).map_or(SoapVersion::Soap11, |(v, _)| v);
        let mut version = version_hint;
        let result = self
            .relay(
                throttle,
                peer,
                headers,
                body,
                &mut version,
                &mut partner,
                &mut operation,
                trace,
            )
            .await;
        match result {
            Ok(Reply::Response(response)) => {
                let mut out = Vec::with_capacity(1024);
                match encode::body_only(version, &mut out, |w| Ok(response.encode(w)?)) {
                    Ok(()) => SoapAnswer {
                        status: http::StatusCode::OK,
                        body: out,
                        version,
                        partner,
                        operation,
                        outcome: "ok",
                        retry_after: None,
                    },
                    Err(e) => self.refuse(
                        CallbackError::Encode(e),
                        version,
                        request_id,
                        partner,
                        operation,
                    ),
                }
            }
            Ok(Reply::Fault {
                code,
                reason,
                detail,
            }) => {
                // The partner's own typed fault: its kind and typed fields go on to the TSP,
                // its texts only to the log (the same rule as for the partner API's faults).
                let FaultDetail::Callback(d) = &detail;
                let text = partner_fault_text(&d.reason);
                tracing::info!(
                    request_id,
                    partner_reason = ?crate::fault::log_text(&reason),
                    partner_message = ?crate::fault::log_text(d.message.as_str()),
                    "the partner's system answered with a CallbackFault; its texts are replaced by the gateway's"
                );
                let own = FaultDetail::Callback(Box::new(cb::CallbackFault {
                    reason: d.reason.clone(),
                    message: crate::fault::message(&format!("{text}.")),
                    request_id: d.request_id.clone(),
                    retry_after_seconds: d.retry_after_seconds,
                }));
                let out = crate::fault::write(
                    version,
                    code,
                    &format!("Partner Fault: {text} (request {request_id})"),
                    Some(|w: &mut encode::XmlWriter<'_>| Ok(own.encode(w)?)),
                );
                SoapAnswer {
                    status: self
                        .statuses
                        .status(version, code, http::StatusCode::BAD_GATEWAY),
                    body: out,
                    version,
                    partner,
                    operation,
                    outcome: "callback-partner-fault",
                    retry_after: d.retry_after_seconds.map(|s| u64::from(s.max(1))),
                }
            }
            Err(e) => self.refuse(e, version, request_id, partner, operation),
        }
    }

    fn refuse(
        &self,
        error: CallbackError,
        version: SoapVersion,
        request_id: &str,
        partner: Option<String>,
        operation: Option<&'static str>,
    ) -> SoapAnswer {
        let (reason, outcome) = error.reason();
        // The error may quote the partner's answer: sanitised, bounded and quoted like any
        // other text from outside.
        tracing::info!(
            target: "partnergate::access",
            request_id,
            error = ?crate::fault::log_text(&error.to_string()),
            outcome,
            "callback refused"
        );
        let text = match reason {
            cb::CallbackFaultReason::AuthenticationFailed => {
                "Access Denied: callback not authorised"
            }
            cb::CallbackFaultReason::InvalidRequest => {
                "Invalid Request: the callback does not match the contract"
            }
            cb::CallbackFaultReason::NotFound => "Not Found: the partner has no callback endpoint",
            cb::CallbackFaultReason::Unavailable => {
                "Unavailable: the partner's system could not be reached or did not answer correctly"
            }
            cb::CallbackFaultReason::Throttled => {
                "Throttled: too many callbacks for this partner; retry later"
            }
        };
        let retry_after = match &error {
            CallbackError::Throttled(t) => Some(t.retry_after_secs()),
            _ => None,
        };
        // Authentication failures say nothing more, and neither does a failure to reach the
        // partner (refused address, connection refused, timeout, HTTP 401, invalid answer read
        // the same: the callback URL must not become a port scanner); the others name the rule
        // or the problem.
        let message = match &error {
            CallbackError::Auth(_) | CallbackError::Caller(_) | CallbackError::Partner(_) => {
                text.to_string()
            }
            other => format!("{text}: {other}"),
        };
        let detail = FaultDetail::Callback(Box::new(cb::CallbackFault {
            reason: reason.clone(),
            message: crate::fault::message(&message),
            request_id: None,
            retry_after_seconds: retry_after.map(|s| u32::try_from(s).unwrap_or(u32::MAX)),
        }));
        let code = match reason {
            cb::CallbackFaultReason::Unavailable => FaultCode::Receiver,
            _ => FaultCode::Sender,
        };
        let out = crate::fault::write(
            version,
            code,
            &format!("{text} (request {request_id})"),
            Some(|w: &mut encode::XmlWriter<'_>| Ok(detail.encode(w)?)),
        );
        SoapAnswer {
            status: self.statuses.status(version, code, error.status()),
            body: out,
            version,
            partner,
            operation,
            outcome,
            retry_after,
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "the stage's inputs and the three facts it reports as it learns them"
    )]
    async fn relay(
        &self,
        throttle: &Throttle,
        peer: std::net::IpAddr,
        headers: &http::HeaderMap,
        body: &[u8],
        version: &mut SoapVersion,
        partner_out: &mut Option<String>,
        operation_out: &mut Option<&'static str>,
        trace: Option<&crate::telemetry::RequestTrace>,
    ) -> Result<Reply, CallbackError> {
        let (ct_version, ct_action) =
            content_type_version(headers).map_err(CallbackError::Transport)?;
        content_encoding(headers).map_err(CallbackError::Transport)?;
        // At most one SOAPAction, as on the partner path.
        let action = soap_action(headers, ct_action).map_err(CallbackError::Transport)?;
        let outline = limit::check_xml(body, &self.xml).map_err(CallbackError::Limit)?;
        let env = envelope::scan_outlined(body, &outline).map_err(CallbackError::Envelope)?;
        *version = env.version;
        if env.version != ct_version {
            return Err(CallbackError::Transport(TransportError::VersionConflict));
        }
        let op = Operation::from_request_element(&env.body.namespace, env.body.local_name)
            .ok_or_else(|| CallbackError::Decode(decode::unknown_operation(&env.body)))?;
        *operation_out = Some(op.name());
        if action.is_some_and(|a| a != op.soap_action()) {
            return Err(CallbackError::Action);
        }
        let peer = crate::allowlist::canonical(peer);
        if !crate::allowlist::contains(&self.config.allowed_callers, peer) {
            return Err(CallbackError::Caller(peer));
        }
        let snapshot = self.snapshot.load();
        let auth =
            authenticate::authenticate_callback(&env, &snapshot, unix_now()).map_err(|e| {
                *partner_out = e
                    .claimed()
                    .filter(|p| snapshot.partners.contains_key(*p))
                    .map(str::to_string);
                CallbackError::Auth(e)
            })?;
        *partner_out = Some(auth.partner.partner_id.clone());
        // Before the typed decode, as on the partner path: a refused callback costs little,
        // and the partner's BSS is never called for it.
        throttle
            .admit_callback(&auth.partner)
            .map_err(CallbackError::Throttled)?;
        let request = decode::callback_request(&env.body, DecodeLimits::default())
            .map_err(CallbackError::Decode)?;
        // The block that was verified, and no other.
        self.forward(&auth.partner, &auth.header, &request, trace)
            .await
    }

    fn client(&self, partner: &PartnerEntry) -> Result<HttpsClient, CallbackError> {
        let key: [u8; 32] = match &partner.callback_ca_pem {
            Some(pem) => Sha256::digest(pem.as_bytes()).into(),
            None => [0; 32],
        };
        if let Ok(clients) = self.clients.lock() {
            if let Some(c) = clients.get(&key) {
                return Ok(c.clone());
            }
        }
        let mut roots = rustls::RootCertStore::empty();
        match &partner.callback_ca_pem {
            Some(pem) => {
                use rustls_pki_types::pem::PemObject;
                for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let cert =
                        cert.map_err(|e| CallbackError::NoEndpoint(format!("partner CA: {e}")))?;
                    roots
                        .add(cert)
                        .map_err(|e| CallbackError::NoEndpoint(format!("partner CA: {e}")))?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let tls = crate::tls::client_config(roots, self.identity.clone())
            .map_err(|e| CallbackError::Partner(e.to_string()))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(GuardedConnector::new(
                &self.config.allowed_networks,
                self.config.connect_timeout,
            ));
        let client: HttpsClient = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(key, client.clone());
        }
        Ok(client)
    }

    async fn forward(
        &self,
        partner: &PartnerEntry,
        header: &callback::AuthHeader,
        request: &Request,
        trace: Option<&crate::telemetry::RequestTrace>,
    ) -> Result<Reply, CallbackError> {
        let url = partner
            .callback_url
            .as_deref()
            .ok_or_else(|| CallbackError::NoEndpoint("none registered".into()))?;
        let allowed =
            url.starts_with("https://") || (self.config.allow_http && url.starts_with("http://"));
        if !allowed {
            return Err(CallbackError::NoEndpoint(
                "callback URLs must be https://".into(),
            ));
        }
        let uri: http::Uri = url
            .parse()
            .map_err(|e| CallbackError::NoEndpoint(format!("{e}")))?;
        let op = request.operation();
        let mut body = Vec::with_capacity(1024);
        encode::envelope(
            SoapVersion::Soap11,
            &mut body,
            Some(|w: &mut encode::XmlWriter<'_>| Ok(callback::encode_auth_header(header, w)?)),
            |w| Ok(request.encode(w)?),
        )?;
        let client = self.client(partner)?;
        // The client span and its traceparent, when tracing is on.
        let client_span = trace.map(|t| t.client("callback", uri.host()));
        let mut builder = http::Request::post(uri)
            .header(http::header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .header("soapaction", format!("\"{}\"", op.soap_action()));
        for (name, value) in client_span.iter().flat_map(|c| &c.headers) {
            builder = builder.header(name, value);
        }
        let http_request = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| CallbackError::Partner(e.to_string()))?;
        let max = self.config.max_response_bytes;
        let exchange = async {
            let response = client.request(http_request).await.map_err(|e| {
                CallbackError::Partner(format!("unreachable: {}", crate::forward::error_chain(&e)))
            })?;
            let status = response.status().as_u16();
            let bytes = Limited::new(response.into_body(), max)
                .collect()
                .await
                .map_err(|e| {
                    CallbackError::Partner(format!("answer: {}", crate::forward::error_chain(&*e)))
                })?
                .to_bytes();
            Ok::<_, CallbackError>((status, bytes))
        };
        let answer = tokio::time::timeout(self.config.response_timeout, exchange)
            .await
            .map_err(|_| {
                CallbackError::Partner(format!(
                    "no answer within {:?}",
                    self.config.response_timeout
                ))
            });
        let reply = answer
            .and_then(|a| a)
            .and_then(|(status, bytes)| decode_reply(op, status, &bytes));
        if let Some(span) = client_span {
            span.end(match &reply {
                Ok(Reply::Response(_)) => "ok",
                Ok(Reply::Fault { .. }) => "fault",
                Err(_) => "error",
            });
        }
        reply
    }
}

/// What the TSP reads for a partner's `CallbackFault` of each reason (instead of the partner's
/// own faultstring and `Message`, which only the log sees).
fn partner_fault_text(reason: &cb::CallbackFaultReason) -> &'static str {
    use cb::CallbackFaultReason as R;
    match reason {
        R::AuthenticationFailed => "the partner's system refused the callback credentials",
        R::NotFound => "the partner's system does not know the customer reference",
        R::InvalidRequest => "the partner's system could not process the callback as sent",
        R::Unavailable => "the partner's system is temporarily unavailable; retry later",
        R::Throttled => "the partner's system is receiving too many callbacks; retry later",
    }
}

/// What the partner answered.
#[derive(Debug)]
pub enum Reply {
    /// The operation's response.
    Response(Response),
    /// The partner's `CallbackFault`.
    Fault {
        /// SOAP fault code.
        code: FaultCode,
        /// The partner's reason text (for the log only).
        reason: String,
        /// The typed detail (its `Message` is for the log only).
        detail: FaultDetail,
    },
}

/// Decodes the partner's answer strictly.
pub fn decode_reply(op: Operation, status: u16, bytes: &[u8]) -> Result<Reply, CallbackError> {
    let invalid =
        |e: &dyn std::fmt::Display| CallbackError::Partner(format!("invalid answer: {e}"));
    let env = envelope::scan(bytes).map_err(|e| {
        if (200..300).contains(&status) || status == 500 {
            invalid(&e)
        } else {
            CallbackError::Partner(format!("HTTP {status}"))
        }
    })?;
    let limits = DecodeLimits::default();
    if env.body.is(env.version.namespace(), "Fault") {
        let fault = envelope::parse_fault(&env).map_err(|e| invalid(&e))?;
        let entry = fault.detail.ok_or_else(|| {
            CallbackError::Partner("a fault without a CallbackFault detail".into())
        })?;
        let detail = decode::callback_fault(&entry, limits).map_err(|e| invalid(&e))?;
        let reason: String = fault
            .reason
            .chars()
            .filter(|c| !c.is_control())
            .take(400)
            .collect();
        return Ok(Reply::Fault {
            code: fault.code,
            reason,
            detail,
        });
    }
    if !(200..300).contains(&status) {
        return Err(CallbackError::Partner(format!("HTTP {status}")));
    }
    decode::callback_response(op, &env.body, limits)
        .map(Reply::Response)
        .map_err(|e| invalid(&e))
}

mod target;

pub use target::{refused_target, GuardedConnector, GuardedResolver};

#[cfg(test)]
mod tests;
