//! Partner enrollment (`POST /soap/enrollment/v1`, `wsdl/partner-enrollment.wsdl`): a
//! prospective partner's BSS files a request and, once an operator approved it, collects its
//! partner id and both keys, exactly once. The only partner-facing operations without a key, so
//! every refusal comes before anything costly:
//!
//! `enrollment.enabled` → the caller inside `enrollment.allow` (empty by default: closed; decided
//! before the body is read) → a GCRA limit per source address (`enrollment.rate_per_minute`,
//! `enrollment.burst`; IPv6 per /64) → transport → the XML limits pass → envelope scan (the
//! partner path's own stages) → operation and SOAPAction → mustUnderstand headers → strict typed
//! decode → the operation.
//!
//! `RequestEnrollment` is checked (networks without host bits, known operations, the current
//! terms, the callback URL's scheme) and filed under `enrollment.max_pending`; the answer's
//! pickup secret is shown once, its SHA-256 stored. `GetEnrollmentStatus` hashes the presented
//! secret and compares it in constant time with the stored hash — or, for an unknown id, with a
//! fixed dummy hash, so both cost the same — and both failures are one refusal
//! ([`EnrollRefusal::Denied`]). An approved enrollment is collected in one transaction
//! (`Store::collect_enrollment`): the keys are made then, only their hashes stored.
//!
//! No secret is logged: the access line has the operation and the outcome only.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::authenticate::{addressed_to_us, AuthError};
use crate::config::{EnrollmentConfig, XmlLimits};
use crate::decode::{self, DecodeLimits};
use crate::encode;
use crate::envelope::{self, Envelope, SoapVersion};
use crate::fault::{self, StatusModes};
use crate::generated::enrollment::{Operation, Request, Response};
use crate::generated::partner;
use crate::generated::types::{cmn, enr};
use crate::limit;
use crate::rejection::{ActionError, EnrollRefusal, Rejection};
use crate::secret::{self, KeyHash};
use crate::store::{
    EnrollmentContact, EnrollmentRequest, EnrollmentState, Filed, Store, StoreError,
};
use crate::transport::{content_encoding, content_type_version, soap_action, SoapAnswer};

/// The hash an unknown enrollment id's presented secret is compared with: the same work as a
/// known one, and no secret hashes to it.
const DUMMY_HASH: KeyHash = [0x5a; 32];

/// Source addresses remembered by the per-address limiter before the idle ones are dropped.
const MAX_TRACKED_SOURCES: usize = 10_000;

type SourceLimiter = RateLimiter<IpAddr, HashMapStateStore<IpAddr>, DefaultClock>;

/// The enrollment endpoint: settings, the store, the per-address limiter.
pub struct Enrollment {
    config: EnrollmentConfig,
    store: Store,
    limiter: SourceLimiter,
    xml: XmlLimits,
    statuses: StatusModes,
    allow_http_callbacks: bool,
}

impl Enrollment {
    /// The endpoint on `store` with `config`'s settings.
    pub fn new(
        config: EnrollmentConfig,
        store: Store,
        xml: XmlLimits,
        statuses: StatusModes,
        allow_http_callbacks: bool,
    ) -> Self {
        let per_minute = NonZeroU32::new(config.rate_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN);
        Enrollment {
            limiter: RateLimiter::hashmap(Quota::per_minute(per_minute).allow_burst(burst)),
            config,
            store,
            xml,
            statuses,
            allow_http_callbacks,
        }
    }

    /// The refusal of a caller that can never enroll (disabled, outside `enrollment.allow`),
    /// decided before its body is read; `None` when the caller may go on.
    pub fn refuse_caller(
        &self,
        peer: IpAddr,
        headers: &http::HeaderMap,
        request_id: &str,
    ) -> Option<SoapAnswer> {
        let version = content_type_version(headers).map_or(SoapVersion::Soap11, |(v, _)| v);
        let peer = crate::allowlist::canonical(peer);
        let refusal = if !self.config.enabled {
            EnrollRefusal::Disabled
        } else if !crate::allowlist::contains(&self.config.allow, peer) {
            EnrollRefusal::Closed(peer)
        } else {
            return None;
        };
        Some(self.refuse(&refusal, version, request_id, None))
    }

    /// Handles one call (the caller passed [`Enrollment::refuse_caller`]; the body was read
    /// within the listener's limits).
    pub async fn handle(
        &self,
        peer: IpAddr,
        headers: &http::HeaderMap,
        body: &[u8],
        request_id: &str,
    ) -> SoapAnswer {
        let mut version = content_type_version(headers).map_or(SoapVersion::Soap11, |(v, _)| v);
        let mut operation = None;
        match self
            .run(peer, headers, body, &mut version, &mut operation)
            .await
        {
            Ok(response) => {
                let mut out = Vec::with_capacity(1024);
                match encode::body_only(version, &mut out, |w| Ok(response.encode(w)?)) {
                    Ok(()) => SoapAnswer {
                        status: http::StatusCode::OK,
                        body: out,
                        version,
                        partner: None,
                        operation: operation.map(Operation::name),
                        outcome: "ok",
                        retry_after: None,
                    },
                    Err(e) => {
                        let refusal = EnrollRefusal::Unavailable(e.to_string());
                        self.refuse(&refusal, version, request_id, operation)
                    }
                }
            }
            Err(refusal) => {
                if let EnrollRefusal::Unavailable(detail) = &refusal {
                    tracing::warn!(request_id, error = %detail, "enrollment store failed");
                }
                self.refuse(&refusal, version, request_id, operation)
            }
        }
    }

    fn refuse(
        &self,
        refusal: &EnrollRefusal,
        version: SoapVersion,
        request_id: &str,
        operation: Option<Operation>,
    ) -> SoapAnswer {
        let f = fault::render_enrollment(refusal, version, request_id, self.statuses);
        SoapAnswer {
            status: f.status,
            body: f.body,
            version,
            partner: None,
            operation: operation.map(Operation::name),
            outcome: f.outcome,
            retry_after: f.retry_after,
        }
    }

    async fn run(
        &self,
        peer: IpAddr,
        headers: &http::HeaderMap,
        body: &[u8],
        version: &mut SoapVersion,
        operation: &mut Option<Operation>,
    ) -> Result<Response, EnrollRefusal> {
        self.admit(peer)?;
        let path = EnrollRefusal::Path;
        let (ct_version, ct_action) =
            content_type_version(headers).map_err(|e| path(Rejection::Transport(e)))?;
        content_encoding(headers).map_err(|e| path(Rejection::Transport(e)))?;
        let action = soap_action(headers, ct_action).map_err(|e| path(Rejection::Transport(e)))?;
        let outline = limit::check_xml(body, &self.xml).map_err(|e| path(Rejection::Limit(e)))?;
        let env =
            envelope::scan_outlined(body, &outline).map_err(|e| path(Rejection::Envelope(e)))?;
        *version = env.version;
        if env.version != ct_version {
            return Err(path(Rejection::Transport(
                crate::transport::TransportError::VersionConflict,
            )));
        }
        let op = Operation::from_request_element(&env.body.namespace, env.body.local_name)
            .ok_or_else(|| path(Rejection::Decode(decode::unknown_operation(&env.body))))?;
        *operation = Some(op);
        if let Some(action) = action {
            if action != op.soap_action() {
                return Err(path(Rejection::Action(ActionError {
                    action: action.chars().take(200).collect(),
                    body: op.name(),
                })));
            }
        }
        must_understand(&env).map_err(|e| path(Rejection::Auth(e)))?;
        let request = decode::enrollment_request(&env.body, DecodeLimits::default())
            .map_err(|e| path(Rejection::Decode(e)))?;
        match request {
            Request::RequestEnrollment(r) => self.file(peer, *r).await,
            Request::GetEnrollmentStatus(r) => self.status(*r).await,
        }
    }

    /// The per-address limit (IPv6 per /64, as the accept gate counts sources).
    fn admit(&self, peer: IpAddr) -> Result<(), EnrollRefusal> {
        let source = match crate::allowlist::canonical(peer) {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
            v4 => v4,
        };
        if self.limiter.len() > MAX_TRACKED_SOURCES {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&source).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            EnrollRefusal::Rate {
                retry_after_secs: (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1),
            }
        })
    }

    async fn file(
        &self,
        peer: IpAddr,
        r: enr::RequestEnrollment,
    ) -> Result<Response, EnrollRefusal> {
        let request = self.check(r)?;
        let id = secret::generate_enrollment_id();
        let pickup = secret::generate_pickup_secret();
        let hash = secret::hash(pickup.expose());
        let store = self.store.clone();
        let (max, source, id2) = (self.config.max_pending, peer.to_string(), id.clone());
        let filed =
            blocking(move || store.file_enrollment(&id2, &hash, &request, &source, max)).await?;
        if filed == Filed::Full {
            return Err(EnrollRefusal::Full);
        }
        tracing::info!(enrollment = %id, %peer, "enrollment filed");
        let response = enr::RequestEnrollmentResponse {
            enrollment_id: text(enr::EnrollmentId::new(id))?,
            pickup_secret: text(enr::PickupSecret::new(pickup.expose().to_string()))?,
            status: enr::EnrollmentStatus::Pending,
        };
        Ok(Response::RequestEnrollment(Box::new(response)))
    }

    /// What the store keeps of a request, once every value is one an approval can use.
    fn check(&self, r: enr::RequestEnrollment) -> Result<EnrollmentRequest, EnrollRefusal> {
        let invalid = |path: String, rule: &'static str, message: String| EnrollRefusal::Invalid {
            path,
            rule,
            message,
        };
        if r.accepted_terms.as_str() != self.config.terms_version {
            return Err(invalid(
                "/RequestEnrollment/AcceptedTerms".into(),
                "enrollment-terms",
                format!(
                    "the current terms are version {}",
                    self.config.terms_version
                ),
            ));
        }
        let mut networks = Vec::with_capacity(r.network.len());
        for (i, n) in r.network.iter().enumerate() {
            let path = format!("/RequestEnrollment/Network[{}]", i + 1);
            let net: ipnet::IpNet = n
                .parse()
                .map_err(|_| invalid(path.clone(), "enrollment-network", "not a CIDR".into()))?;
            crate::store::check_net("network", &net)
                .map_err(|e| invalid(path, "enrollment-network", store_reason(e)))?;
            networks.push(net.to_string());
        }
        let known: Vec<&str> = partner::Operation::ALL
            .iter()
            .map(|o| o.permission())
            .collect();
        let mut operations = Vec::with_capacity(r.operation.len());
        for (i, o) in r.operation.iter().enumerate() {
            let path = format!("/RequestEnrollment/Operation[{}]", i + 1);
            let permission = partner::Operation::from_name(o)
                .map_or_else(|| o.as_str().to_string(), |op| op.permission().to_string());
            crate::store::check_grant(&permission, &known)
                .map_err(|e| invalid(path, "enrollment-operation", store_reason(e)))?;
            operations.push(permission);
        }
        let callback_url = r.callback_url.map(|u| u.as_str().to_string());
        if let Some(url) = &callback_url {
            if !(url.starts_with("https://") || self.allow_http_callbacks) {
                return Err(invalid(
                    "/RequestEnrollment/CallbackUrl".into(),
                    "enrollment-callback-url",
                    "must be an https:// URL".into(),
                ));
            }
        }
        Ok(EnrollmentRequest {
            company: r.company_name.as_str().to_string(),
            country: format!("{:?}", r.country).to_ascii_uppercase(),
            contacts: r.contact.iter().map(contact).collect(),
            operations,
            networks,
            callback_url,
            client_certificate: r.client_certificate.map(|c| c.as_str().to_string()),
            accepted_terms: r.accepted_terms.as_str().to_string(),
        })
    }

    async fn status(&self, r: enr::GetEnrollmentStatus) -> Result<Response, EnrollRefusal> {
        let id = r.enrollment_id.as_str().to_string();
        let presented = secret::hash(r.pickup_secret.as_str());
        let store = self.store.clone();
        let id2 = id.clone();
        let row = blocking(move || store.enrollment_pickup(&id2)).await?;
        // The same hash and one comparison whether or not the id exists.
        let stored = row.as_ref().map_or(DUMMY_HASH, |r| r.pickup_hash);
        let matches = secret::ct_eq(&presented, &stored);
        let row = match row {
            Some(row) if matches => row,
            _ => return Err(EnrollRefusal::Denied),
        };
        let mut answer = enr::GetEnrollmentStatusResponse {
            enrollment_id: r.enrollment_id,
            status: enr::EnrollmentStatus::Pending,
            reason: None,
            partner_id: None,
            api_key: None,
            callback_key: None,
        };
        match row.state {
            EnrollmentState::Pending => {}
            EnrollmentState::Rejected => {
                answer.status = enr::EnrollmentStatus::Rejected;
                answer.reason = row
                    .reason
                    .and_then(|t| fault::sanitize(&t, 500))
                    .and_then(|t| cmn::StatusReason::new(t).ok());
            }
            EnrollmentState::Approved | EnrollmentState::Collected => {
                let store = self.store.clone();
                let collected = if row.state == EnrollmentState::Approved {
                    let id2 = id.clone();
                    blocking(move || store.collect_enrollment(&id2, &presented)).await?
                } else {
                    None
                };
                match collected {
                    Some(keys) => {
                        tracing::info!(enrollment = %id, partner = %keys.partner_id, "enrollment collected");
                        answer.status = enr::EnrollmentStatus::Approved;
                        answer.partner_id = Some(text(cmn::PartnerId::new(keys.partner_id))?);
                        answer.api_key =
                            Some(text(cmn::ApiKey::new(keys.api_key.expose().to_string()))?);
                        answer.callback_key = Some(text(cmn::ApiKey::new(
                            keys.callback_key.expose().to_string(),
                        ))?);
                    }
                    None => answer.status = enr::EnrollmentStatus::Collected,
                }
            }
        }
        Ok(Response::GetEnrollmentStatus(Box::new(answer)))
    }
}

/// A header block addressed to this endpoint with mustUnderstand: the contract has no header,
/// so none is understood.
fn must_understand(env: &Envelope<'_>) -> Result<(), AuthError> {
    for block in &env.headers {
        if addressed_to_us(block, env.version) && block.must_understand {
            let el = &block.element;
            return Err(AuthError::MustUnderstand(format!(
                "{{{}}}{}",
                String::from_utf8_lossy(&el.namespace),
                String::from_utf8_lossy(el.local_name)
            )));
        }
    }
    Ok(())
}

fn contact(c: &cmn::Contact) -> EnrollmentContact {
    EnrollmentContact {
        first_name: c.first_name.as_str().to_string(),
        last_name: c.last_name.as_str().to_string(),
        company: c.company.as_ref().map(|v| v.as_str().to_string()),
        email: c.email.as_ref().map(|v| v.as_str().to_string()),
        phone: c.phone.as_ref().map(|v| v.as_str().to_string()),
    }
}

fn store_reason(e: StoreError) -> String {
    match e {
        StoreError::Invalid { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// A value the gateway made itself (an id, a key) as its contract type; it always fits. The
/// error is not quoted: the value may be a secret.
fn text<T, E>(made: Result<T, E>) -> Result<T, EnrollRefusal> {
    made.map_err(|_| {
        EnrollRefusal::Unavailable("a generated value does not fit the contract".into())
    })
}

/// Runs a store call on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, EnrollRefusal> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(EnrollRefusal::Unavailable(e.to_string())),
        Err(e) => Err(EnrollRefusal::Unavailable(e.to_string())),
    }
}
