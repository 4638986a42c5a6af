//! The reference partner API layer: carries out the contract's operations — accounts, services,
//! devices, features — in the same database, for the gateway in process (the embedded default)
//! or as a standalone service behind it (`partnergate upstream serve`). It is the gateway's
//! [`Upstream`]: it receives typed, validated requests and returns typed responses or contract
//! faults.
//!
//! Rules:
//! - **Isolation.** A partner sees and changes only its own customers: another partner's account
//!   number, service id or device is `NotFound`, never `AccessDenied` (existence must not leak).
//!   The one network-wide fact that can show is a MAC address in use (devices are unique across
//!   the network, so registering a MAC another partner holds is a `Conflict`).
//! - **Status machine.** PENDING → ACTIVE | TERMINATED; ACTIVE ⇄ SUSPENDED; ACTIVE | SUSPENDED →
//!   TERMINATED; nothing leaves TERMINATED. Anything else, including "changing" to the current
//!   status, is `Conflict invalid-status-transition`. Terminating an account terminates its
//!   services, their devices and features; a terminated entity cannot be modified or extended
//!   (`Conflict terminated`). The reference layer provisions synchronously, so new entities are
//!   ACTIVE at once; PENDING is for implementations that provision asynchronously.
//! - **Idempotency.** A change carrying a partner `RequestId` that was seen before returns the
//!   first result and changes nothing; the same id with another operation is `Conflict duplicate`.
//! - **Feature defaults.** Unset feature settings take the partner's defaults (set at
//!   onboarding), then the system defaults; the effective values are returned, and
//!   `DefaultedSetting` names the ones that were not set explicitly. Only explicit values are
//!   stored, so a changed partner default applies to every setting left unset.
//! - Records are stored as the canonical XML the contract's encoder writes and read back through
//!   the strict decoder: a stored record is always a valid contract value.

pub mod db;
pub mod features;
pub mod standalone;

use std::sync::Arc;

use diesel::prelude::*;
use quick_xml::Writer;
use xsd_parser_types::quick_xml::{
    DeserializeSync, SerializeSync, WithDeserializer, WithSerializer,
};

use crate::decode::{self, DecodeLimits};
use crate::envelope::{BodyElement, FaultCode};
use crate::forward::{
    BoxFuture, CallContext, ForwardError, Upstream, UpstreamFault, UpstreamReply,
};
use crate::generated::partner::{self, FaultDetail, Operation, Request, Response};
use crate::generated::types::{acc, cmn, dev, ftr, svc};
use crate::store::{AnyConnection, SnapshotCell, Store, StoreError};
use crate::xs::DateTime;

use db::{
    meta, prov_accounts as a, prov_devices as d, prov_features as f, prov_idempotency as idem,
    prov_services as s,
};

/// Why an operation was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// Not found (or not the partner's).
    #[error("{what} {key} not found")]
    NotFound {
        /// Which kind of entity.
        entity: cmn::NotFoundEntity,
        /// `account`, `service`, …
        what: &'static str,
        /// The identifier given.
        key: String,
    },
    /// A business rule.
    #[error("{message}")]
    Conflict {
        /// The contract's reason code.
        reason: cmn::ConflictReason,
        /// For the partner's developer.
        message: String,
    },
    /// A request that is valid against the schema but not for this data.
    #[error("{path}: {rule}: {message}")]
    Invalid {
        /// Element path.
        path: String,
        /// Rule name.
        rule: &'static str,
        /// Explanation.
        message: String,
    },
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record does not decode (written around this module, or a bug).
    #[error("stored record unreadable: {0}")]
    Corrupt(String),
}

impl From<diesel::result::Error> for Problem {
    fn from(e: diesel::result::Error) -> Self {
        Problem::Store(StoreError::Query(e))
    }
}

/// How long a call waits for a database connection by default (`database_checkout_timeout_ms`
/// for the embedded layer; `upstream serve` uses this): with the database down a call fails
/// within it (`UpstreamUnavailableFault` for the partner), and at once while the store knows the
/// database unreachable (see `Store::with_checkout_timeout`).
pub const DEFAULT_CHECKOUT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// The partner API layer over a [`Store`] (its handle's checkout timeout is each call's wait
/// for a connection).
pub struct Provisioning {
    store: Store,
    /// Partner feature defaults come from the partner snapshot (no query per request).
    snapshot: Arc<SnapshotCell>,
}

impl Provisioning {
    /// The database this layer works on, as a URL with any password replaced (for the log).
    pub fn database(&self) -> &str {
        self.store.redacted_url()
    }

    /// A layer over `store`, reading partner data from `snapshot`.
    pub fn new(store: Store, snapshot: Arc<SnapshotCell>) -> Self {
        Provisioning { store, snapshot }
    }

    /// Carries out `request` for `partner` (blocking: call from `spawn_blocking`).
    pub fn execute(&self, partner: &str, request: &Request) -> Result<Response, Problem> {
        let defaults = self
            .snapshot
            .load()
            .partners
            .get(partner)
            .and_then(|p| p.feature_defaults.clone());
        let defaults = features::PartnerDefaults::from_json(partner, defaults.as_ref());
        let op = request.operation();
        let request_id = request_id_of(request);
        match request {
            Request::GetAccount(r) => self.read(|c| {
                let (account, _) = load_account(c, partner, &r.account_number)?;
                Ok(Response::GetAccount(Box::new(acc::GetAccountResponse {
                    account,
                })))
            }),
            Request::FindAccounts(r) => self.read(|c| {
                let rows: Vec<String> = a::table
                    .filter(a::partner_id.eq(partner))
                    .filter(a::customer_reference.eq(r.customer_reference.as_str()))
                    .order(a::id.asc())
                    .limit(100)
                    .select(a::record)
                    .load(c)?;
                let account = rows
                    .iter()
                    .map(|x| from_xml::<acc::Account>(x, NS_ACC))
                    .collect::<Result<_, _>>()?;
                Ok(Response::FindAccounts(Box::new(
                    acc::FindAccountsResponse { account },
                )))
            }),
            Request::GetService(r) => self.read(|c| {
                let (service, _) = load_service(c, partner, &r.service_id)?;
                Ok(Response::GetService(Box::new(svc::GetServiceResponse {
                    service,
                })))
            }),
            Request::ListServices(r) => self.read(|c| {
                load_account(c, partner, &r.account_number)?;
                let mut q = s::table
                    .filter(s::partner_id.eq(partner))
                    .filter(s::account_number.eq(r.account_number.as_str()))
                    .into_boxed();
                if let Some(t) = &r.service_type {
                    q = q.filter(s::service_type.eq(service_type_str(t)));
                }
                let rows: Vec<String> =
                    q.order(s::id.asc()).limit(200).select(s::record).load(c)?;
                let service = rows
                    .iter()
                    .map(|x| from_xml::<svc::Service>(x, NS_SVC))
                    .collect::<Result<_, _>>()?;
                Ok(Response::ListServices(Box::new(
                    svc::ListServicesResponse { service },
                )))
            }),
            Request::GetDevice(r) => self.read(|c| {
                let device = load_device(c, partner, &r.mac_address)?;
                Ok(Response::GetDevice(Box::new(dev::GetDeviceResponse {
                    device,
                })))
            }),
            Request::GetFeature(r) => self.read(|c| {
                let feature_instance =
                    load_feature(c, partner, &r.service_id, &r.feature, &defaults)?.0;
                Ok(Response::GetFeature(Box::new(ftr::GetFeatureResponse {
                    feature_instance,
                })))
            }),
            _ => self.write(partner, request_id, op, |c| match request {
                Request::CreateAccount(r) => create_account(c, partner, r),
                Request::ModifyAccount(r) => modify_account(c, partner, r),
                Request::ChangeAccountStatus(r) => change_account_status(c, partner, r),
                Request::AddService(r) => add_service(c, partner, r),
                Request::ModifyService(r) => modify_service(c, partner, r),
                Request::ChangeServiceStatus(r) => change_service_status(c, partner, r),
                Request::AddDevice(r) => add_device(c, partner, r),
                Request::ModifyDevice(r) => modify_device(c, partner, r),
                Request::ChangeDeviceStatus(r) => change_device_status(c, partner, r),
                Request::EnableFeature(r) => features::enable(c, partner, r, &defaults),
                Request::ModifyFeature(r) => features::modify(c, partner, r, &defaults),
                Request::ChangeFeatureStatus(r) => {
                    features::change_status(c, partner, r, &defaults)
                }
                // Reads are handled above.
                _ => Err(Problem::Invalid {
                    path: "/".into(),
                    rule: "operation",
                    message: "not a change".into(),
                }),
            }),
        }
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, Problem>,
    ) -> Result<T, Problem> {
        let mut conn = self.store.connection()?;
        f(&mut conn)
    }

    /// One transaction: take the writer row, return the first result of a repeated request id,
    /// else run `f` and remember its result under the request id.
    fn write(
        &self,
        partner: &str,
        request_id: Option<&str>,
        op: Operation,
        f: impl FnOnce(&mut AnyConnection) -> Result<Response, Problem>,
    ) -> Result<Response, Problem> {
        let mut conn = self.store.connection()?;
        conn.transaction(|c| {
            diesel::update(meta::table.filter(meta::key.eq("provisioning")))
                .set(meta::value.eq(meta::value + 1))
                .execute(c)?;
            if let Some(rid) = request_id {
                let seen: Option<(String, String)> = idem::table
                    .filter(idem::partner_id.eq(partner))
                    .filter(idem::request_id.eq(rid))
                    .select((idem::operation, idem::response))
                    .first(c)
                    .optional()?;
                if let Some((operation, response)) = seen {
                    if operation != op.name() {
                        return Err(Problem::Conflict {
                            reason: cmn::ConflictReason::Duplicate,
                            message: format!("request id {rid} was already used for {operation}"),
                        });
                    }
                    return decode_response(op, &response);
                }
            }
            let response = f(c)?;
            if let Some(rid) = request_id {
                diesel::insert_into(idem::table)
                    .values((
                        idem::partner_id.eq(partner),
                        idem::request_id.eq(rid),
                        idem::operation.eq(op.name()),
                        idem::response.eq(encode_response(&response)?),
                        idem::created_at.eq(now()),
                    ))
                    .execute(c)?;
            }
            Ok(response)
        })
    }
}

impl Upstream for Provisioning {
    fn call<'a>(
        &'a self,
        ctx: CallContext<'a>,
        request: &'a Request,
    ) -> BoxFuture<'a, Result<UpstreamReply, ForwardError>> {
        let partner = ctx.partner_id.to_string();
        let request_id = ctx.request_id.to_string();
        let request = request.clone();
        let store = self.store.clone();
        let snapshot = Arc::clone(&self.snapshot);
        Box::pin(async move {
            let layer = Provisioning { store, snapshot };
            let result = tokio::task::spawn_blocking(move || layer.execute(&partner, &request))
                .await
                .map_err(|e| ForwardError::Connect(format!("partner API task failed: {e}")))?;
            reply(result, &request_id)
        })
    }
}

/// Turns the layer's result into what the gateway expects from any upstream.
pub fn reply(
    result: Result<Response, Problem>,
    request_id: &str,
) -> Result<UpstreamReply, ForwardError> {
    match result {
        Ok(response) => Ok(UpstreamReply::Response(response)),
        Err(Problem::Store(e)) => {
            tracing::warn!(error = %e, "partner API layer: database error");
            Err(ForwardError::Connect(
                "the partner database is unavailable".into(),
            ))
        }
        Err(Problem::Corrupt(e)) => {
            tracing::error!(error = %e, "partner API layer: unreadable record");
            Err(ForwardError::Invalid(
                "a stored record is unreadable".into(),
            ))
        }
        Err(problem) => Ok(UpstreamReply::Fault(to_fault(&problem, request_id))),
    }
}

fn fault_message(text: &str) -> cmn::FaultMessage {
    let line: String = text.chars().filter(|c| !c.is_control()).take(500).collect();
    cmn::FaultMessage::new(line.trim().to_string())
        .or_else(|_| cmn::FaultMessage::new("Refused.".into()))
        .unwrap_or_else(|_| unreachable_message())
}

#[allow(clippy::expect_used, reason = "a constant checked by the unit tests")]
fn unreachable_message() -> cmn::FaultMessage {
    cmn::FaultMessage::new("Refused.".into()).expect("constant FaultMessage")
}

fn to_fault(problem: &Problem, request_id: &str) -> UpstreamFault {
    let rid = cmn::GatewayRequestId::new(request_id.to_string())
        .or_else(|_| cmn::GatewayRequestId::new("unknown".into()))
        .ok();
    let message = fault_message(&problem.to_string());
    let detail = rid.and_then(|request_id| {
        Some(match problem {
            Problem::NotFound { entity, .. } => {
                FaultDetail::NotFound(Box::new(cmn::NotFoundFault {
                    entity: entity.clone(),
                    message,
                    request_id,
                }))
            }
            Problem::Conflict { reason, .. } => {
                FaultDetail::Conflict(Box::new(cmn::ConflictFault {
                    reason: reason.clone(),
                    message,
                    request_id,
                }))
            }
            Problem::Invalid { path, rule, .. } => {
                FaultDetail::InvalidRequest(Box::new(cmn::InvalidRequestFault {
                    path: cmn::FaultPath::new(path.clone()).ok()?,
                    rule: cmn::ValidationRule::new((*rule).to_string()).ok()?,
                    message,
                    request_id,
                }))
            }
            Problem::Store(_) | Problem::Corrupt(_) => return None,
        })
    });
    // The kind, then what the problem says once (`Not Found: account ACC-1`, not
    // `Not Found: account: account ACC-1 not found`).
    let reason = match problem {
        Problem::NotFound { what, key, .. } => format!("Not Found: {what} {key}"),
        Problem::Conflict { .. } => format!("Conflict: {problem}"),
        Problem::Invalid { .. } => format!("Invalid Request: {problem}"),
        Problem::Store(_) | Problem::Corrupt(_) => format!("Upstream Unavailable: {problem}"),
    };
    UpstreamFault {
        code: FaultCode::Sender,
        reason: reason.chars().take(400).collect(),
        detail,
    }
}

// === records ===

const NS_ACC: &str = "urn:partnergate:partner:accounts:v1";
const NS_SVC: &str = "urn:partnergate:partner:services:v1";
const NS_DEV: &str = "urn:partnergate:partner:devices:v1";
const NS_FTR: &str = "urn:partnergate:partner:features:v1";

/// Canonical XML of a value, with `root` as its element name.
pub(crate) fn to_xml<T: WithSerializer>(value: &T, root: &str) -> Result<String, Problem> {
    let mut out = Vec::with_capacity(1024);
    let mut w = Writer::new(&mut out);
    value
        .serialize(root, &mut w)
        .map_err(|e| Problem::Corrupt(format!("encode {root}: {e}")))?;
    crate::encode::escape_carriage_returns(&mut out, 0);
    String::from_utf8(out).map_err(|e| Problem::Corrupt(e.to_string()))
}

/// Decodes a stored record strictly.
pub(crate) fn from_xml<T>(xml: &str, namespace: &str) -> Result<T, Problem>
where
    T: WithDeserializer,
    for<'a> T:
        DeserializeSync<'a, decode::StrictReader<'a>, Error = xsd_parser_types::quick_xml::Error>,
{
    let bytes = xml.as_bytes();
    let name_end = bytes
        .iter()
        .position(|b| matches!(b, b' ' | b'>' | b'/' | b'\t' | b'\n'))
        .unwrap_or(bytes.len());
    let qname = bytes.get(1..name_end).unwrap_or_default();
    let local_name = qname.rsplit(|b| *b == b':').next().unwrap_or(qname);
    let body = BodyElement {
        text: xml,
        inherited: Vec::new(),
        namespace: namespace.as_bytes().to_vec(),
        local_name,
    };
    decode::decode_with(&body, partner::NAMESPACES, DecodeLimits::default(), |r| {
        T::deserialize(r)
    })
    .map_err(|e| Problem::Corrupt(e.to_string()))
}

fn encode_response(response: &Response) -> Result<String, Problem> {
    let mut out = Vec::with_capacity(1024);
    let mut w = Writer::new(&mut out);
    response
        .encode(&mut w)
        .map_err(|e| Problem::Corrupt(e.to_string()))?;
    crate::encode::escape_carriage_returns(&mut out, 0);
    String::from_utf8(out).map_err(|e| Problem::Corrupt(e.to_string()))
}

fn decode_response(op: Operation, xml: &str) -> Result<Response, Problem> {
    let (ns, local) = op.response_element();
    let body = BodyElement {
        text: xml,
        inherited: Vec::new(),
        namespace: ns.as_bytes().to_vec(),
        local_name: local.as_bytes(),
    };
    decode::partner_response(op, &body, DecodeLimits::default())
        .map_err(|e| Problem::Corrupt(e.to_string()))
}

fn request_id_of(request: &Request) -> Option<&str> {
    let rid = match request {
        Request::CreateAccount(r) => r.request_id.as_ref(),
        Request::ModifyAccount(r) => r.request_id.as_ref(),
        Request::ChangeAccountStatus(r) => r.request_id.as_ref(),
        Request::AddService(r) => r.request_id.as_ref(),
        Request::ModifyService(r) => r.request_id.as_ref(),
        Request::ChangeServiceStatus(r) => r.request_id.as_ref(),
        Request::AddDevice(r) => r.request_id.as_ref(),
        Request::ModifyDevice(r) => r.request_id.as_ref(),
        Request::ChangeDeviceStatus(r) => r.request_id.as_ref(),
        Request::EnableFeature(r) => r.request_id.as_ref(),
        Request::ModifyFeature(r) => r.request_id.as_ref(),
        Request::ChangeFeatureStatus(r) => r.request_id.as_ref(),
        Request::GetAccount(_)
        | Request::FindAccounts(_)
        | Request::GetService(_)
        | Request::ListServices(_)
        | Request::GetDevice(_)
        | Request::GetFeature(_) => None,
    };
    rid.map(|r| r.as_str())
}

pub(crate) fn now() -> i64 {
    crate::pipeline::unix_now()
}

// === status ===

pub(crate) fn status_str(s: &cmn::Status) -> &'static str {
    match s {
        cmn::Status::Pending => "PENDING",
        cmn::Status::Active => "ACTIVE",
        cmn::Status::Suspended => "SUSPENDED",
        cmn::Status::Terminated => "TERMINATED",
    }
}

/// Checks a status change against the state machine (see the module doc).
pub fn transition(from: &cmn::Status, to: &cmn::Status) -> Result<(), Problem> {
    use cmn::Status::{Active, Pending, Suspended, Terminated};
    let allowed = matches!(
        (from, to),
        (Pending, Active)
            | (Pending, Terminated)
            | (Active, Suspended)
            | (Suspended, Active)
            | (Active | Suspended, Terminated)
    );
    if allowed {
        Ok(())
    } else {
        Err(Problem::Conflict {
            reason: cmn::ConflictReason::InvalidStatusTransition,
            message: format!(
                "status cannot change from {} to {}",
                status_str(from),
                status_str(to)
            ),
        })
    }
}

pub(crate) fn not_terminated(status: &cmn::Status, what: &str, key: &str) -> Result<(), Problem> {
    if *status == cmn::Status::Terminated {
        Err(Problem::Conflict {
            reason: cmn::ConflictReason::Terminated,
            message: format!("{what} {key} is terminated"),
        })
    } else {
        Ok(())
    }
}

// === accounts ===

fn load_account(
    c: &mut AnyConnection,
    partner: &str,
    number: &cmn::AccountNumber,
) -> Result<(acc::Account, i64), Problem> {
    let row: Option<(String, i64)> = a::table
        .filter(a::account_number.eq(number.as_str()))
        .filter(a::partner_id.eq(partner))
        .select((a::record, a::id))
        .first(c)
        .optional()?;
    let (xml, id) = row.ok_or_else(|| Problem::NotFound {
        entity: cmn::NotFoundEntity::Account,
        what: "account",
        key: number.as_str().to_string(),
    })?;
    Ok((from_xml(&xml, NS_ACC)?, id))
}

fn save_account(c: &mut AnyConnection, id: i64, account: &acc::Account) -> Result<(), Problem> {
    diesel::update(a::table.filter(a::id.eq(id)))
        .set((
            a::status.eq(status_str(&account.status)),
            a::record.eq(to_xml(account, "acc:Account")?),
            a::updated_at.eq(now()),
        ))
        .execute(c)?;
    Ok(())
}

/// A fresh random identifier `PREFIX-` + ten digits (random, so numbers reveal nothing about
/// volume; uniqueness is enforced by the database and retried on collision).
fn random_number(prefix: &str) -> String {
    let n: u64 = rand::random::<u64>() % 10_000_000_000;
    format!("{prefix}-{n:010}")
}

/// Allocates a fresh `PREFIX-##########` number: `insert` tries it in a savepoint (so a collision
/// does not abort the outer transaction), and a collision with an existing number is retried.
fn with_fresh_number<T>(
    c: &mut AnyConnection,
    prefix: &str,
    what: &str,
    mut insert: impl FnMut(&mut AnyConnection, &str) -> Result<T, Problem>,
) -> Result<T, Problem> {
    for _ in 0..8 {
        let number = random_number(prefix);
        match c.transaction(|c| insert(c, &number)) {
            Ok(value) => return Ok(value),
            Err(Problem::Store(StoreError::Query(e))) if is_unique_violation(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Problem::Conflict {
        reason: cmn::ConflictReason::Duplicate,
        message: format!("could not allocate a unique {what}"),
    })
}

fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

fn create_account(
    c: &mut AnyConnection,
    partner: &str,
    r: &acc::CreateAccount,
) -> Result<Response, Problem> {
    let at = now();
    let account = with_fresh_number(c, "ACC", "account number", |c, number| {
        let account = acc::Account {
            account_number: cmn::AccountNumber::new(number.to_string())
                .map_err(|e| Problem::Corrupt(e.to_string()))?,
            customer_reference: r.customer_reference.clone(),
            account_type: r.account_type.clone(),
            status: cmn::Status::Active,
            contact: r.contact.clone(),
            address: r.address.clone(),
            settings: r.settings.clone().unwrap_or(acc::AccountSettings {
                language: None,
                currency: None,
                billing_cycle: None,
                notes: None,
            }),
            created_at: DateTime::from_unix(at),
            updated_at: DateTime::from_unix(at),
        };
        diesel::insert_into(a::table)
            .values((
                a::account_number.eq(number),
                a::partner_id.eq(partner),
                a::customer_reference.eq(r.customer_reference.as_str()),
                a::status.eq("ACTIVE"),
                a::record.eq(to_xml(&account, "acc:Account")?),
                a::created_at.eq(at),
                a::updated_at.eq(at),
            ))
            .execute(c)?;
        Ok(account)
    })?;
    Ok(Response::CreateAccount(Box::new(
        acc::CreateAccountResponse { account },
    )))
}

fn modify_account(
    c: &mut AnyConnection,
    partner: &str,
    r: &acc::ModifyAccount,
) -> Result<Response, Problem> {
    let (mut account, id) = load_account(c, partner, &r.account_number)?;
    not_terminated(&account.status, "account", r.account_number.as_str())?;
    if let Some(contact) = &r.contact {
        account.contact = contact.clone();
    }
    if let Some(address) = &r.address {
        account.address = address.clone();
    }
    if let Some(settings) = &r.settings {
        account.settings = settings.clone();
    }
    account.updated_at = DateTime::from_unix(now());
    save_account(c, id, &account)?;
    Ok(Response::ModifyAccount(Box::new(
        acc::ModifyAccountResponse { account },
    )))
}

fn change_account_status(
    c: &mut AnyConnection,
    partner: &str,
    r: &acc::ChangeAccountStatus,
) -> Result<Response, Problem> {
    let (mut account, id) = load_account(c, partner, &r.account_number)?;
    transition(&account.status, &r.status)?;
    let previous = std::mem::replace(&mut account.status, r.status.clone());
    account.updated_at = DateTime::from_unix(now());
    save_account(c, id, &account)?;
    if r.status == cmn::Status::Terminated {
        // Cascade: every service of the account, and their devices and features.
        let services: Vec<String> = s::table
            .filter(s::account_number.eq(r.account_number.as_str()))
            .filter(s::status.ne("TERMINATED"))
            .select(s::service_id)
            .load(c)?;
        for service_id in services {
            terminate_service(c, &service_id)?;
        }
    }
    Ok(Response::ChangeAccountStatus(Box::new(
        acc::ChangeAccountStatusResponse {
            account_number: r.account_number.clone(),
            previous_status: previous,
            status: r.status.clone(),
        },
    )))
}

// === services ===

fn service_type_str(t: &svc::ServiceType) -> &'static str {
    match t {
        svc::ServiceType::Voip => "VOIP",
        svc::ServiceType::Sms => "SMS",
        svc::ServiceType::Fax => "FAX",
        svc::ServiceType::SipTrunk => "SIP_TRUNK",
    }
}

pub(crate) fn load_service(
    c: &mut AnyConnection,
    partner: &str,
    id: &cmn::ServiceId,
) -> Result<(svc::Service, i64), Problem> {
    let row: Option<(String, i64)> = s::table
        .filter(s::service_id.eq(id.as_str()))
        .filter(s::partner_id.eq(partner))
        .select((s::record, s::id))
        .first(c)
        .optional()?;
    let (xml, row_id) = row.ok_or_else(|| Problem::NotFound {
        entity: cmn::NotFoundEntity::Service,
        what: "service",
        key: id.as_str().to_string(),
    })?;
    Ok((from_xml(&xml, NS_SVC)?, row_id))
}

fn save_service(c: &mut AnyConnection, row_id: i64, service: &svc::Service) -> Result<(), Problem> {
    diesel::update(s::table.filter(s::id.eq(row_id)))
        .set((
            s::status.eq(status_str(&service.status)),
            s::record.eq(to_xml(service, "svc:Service")?),
            s::updated_at.eq(now()),
        ))
        .execute(c)?;
    Ok(())
}

/// Terminates a service with its devices and features (the account cascade).
fn terminate_service(c: &mut AnyConnection, service_id: &str) -> Result<(), Problem> {
    let row: Option<(String, i64)> = s::table
        .filter(s::service_id.eq(service_id))
        .select((s::record, s::id))
        .first(c)
        .optional()?;
    if let Some((xml, row_id)) = row {
        let mut service: svc::Service = from_xml(&xml, NS_SVC)?;
        service.status = cmn::Status::Terminated;
        service.updated_at = DateTime::from_unix(now());
        save_service(c, row_id, &service)?;
    }
    let devices: Vec<(String, i64)> = d::table
        .filter(d::service_id.eq(service_id))
        .filter(d::status.ne("TERMINATED"))
        .select((d::record, d::id))
        .load(c)?;
    for (xml, row_id) in devices {
        let mut device: dev::Device = from_xml(&xml, NS_DEV)?;
        device.status = cmn::Status::Terminated;
        device.updated_at = DateTime::from_unix(now());
        save_device(c, row_id, &device)?;
    }
    diesel::update(f::table.filter(f::service_id.eq(service_id)))
        .set((f::status.eq("TERMINATED"), f::updated_at.eq(now())))
        .execute(c)?;
    Ok(())
}

fn add_service(
    c: &mut AnyConnection,
    partner: &str,
    r: &svc::AddService,
) -> Result<Response, Problem> {
    let (account, _) = load_account(c, partner, &r.account_number)?;
    not_terminated(&account.status, "account", r.account_number.as_str())?;
    let at = now();
    let service = with_fresh_number(c, "SVC", "service id", |c, id| {
        let service = svc::Service {
            service_id: cmn::ServiceId::new(id.to_string())
                .map_err(|e| Problem::Corrupt(e.to_string()))?,
            account_number: r.account_number.clone(),
            service_type: r.service_type.clone(),
            status: cmn::Status::Active,
            settings: r.settings.clone().unwrap_or(svc::ServiceSettings {
                phone_number: None,
                display_name: None,
                max_channels: None,
                sms_sender_id: None,
            }),
            created_at: DateTime::from_unix(at),
            updated_at: DateTime::from_unix(at),
        };
        diesel::insert_into(s::table)
            .values((
                s::service_id.eq(id),
                s::partner_id.eq(partner),
                s::account_number.eq(r.account_number.as_str()),
                s::service_type.eq(service_type_str(&r.service_type)),
                s::status.eq("ACTIVE"),
                s::record.eq(to_xml(&service, "svc:Service")?),
                s::created_at.eq(at),
                s::updated_at.eq(at),
            ))
            .execute(c)?;
        Ok(service)
    })?;
    Ok(Response::AddService(Box::new(svc::AddServiceResponse {
        service,
    })))
}

fn modify_service(
    c: &mut AnyConnection,
    partner: &str,
    r: &svc::ModifyService,
) -> Result<Response, Problem> {
    let (mut service, row_id) = load_service(c, partner, &r.service_id)?;
    not_terminated(&service.status, "service", r.service_id.as_str())?;
    let new = &r.settings;
    let old = &mut service.settings;
    if new.phone_number.is_some() {
        old.phone_number = new.phone_number.clone();
    }
    if new.display_name.is_some() {
        old.display_name = new.display_name.clone();
    }
    if new.max_channels.is_some() {
        old.max_channels = new.max_channels.clone();
    }
    if new.sms_sender_id.is_some() {
        old.sms_sender_id = new.sms_sender_id.clone();
    }
    service.updated_at = DateTime::from_unix(now());
    save_service(c, row_id, &service)?;
    Ok(Response::ModifyService(Box::new(
        svc::ModifyServiceResponse { service },
    )))
}

fn change_service_status(
    c: &mut AnyConnection,
    partner: &str,
    r: &svc::ChangeServiceStatus,
) -> Result<Response, Problem> {
    let (mut service, row_id) = load_service(c, partner, &r.service_id)?;
    transition(&service.status, &r.status)?;
    if r.status == cmn::Status::Active {
        // A service cannot be active on an account that is not.
        let (account, _) = load_account(c, partner, &service.account_number)?;
        if account.status != cmn::Status::Active {
            return Err(Problem::Conflict {
                reason: cmn::ConflictReason::InvalidStatusTransition,
                message: format!(
                    "account {} is {}",
                    account.account_number.as_str(),
                    status_str(&account.status)
                ),
            });
        }
    }
    let previous = std::mem::replace(&mut service.status, r.status.clone());
    service.updated_at = DateTime::from_unix(now());
    save_service(c, row_id, &service)?;
    if r.status == cmn::Status::Terminated {
        terminate_service(c, r.service_id.as_str())?;
    }
    Ok(Response::ChangeServiceStatus(Box::new(
        svc::ChangeServiceStatusResponse {
            service_id: r.service_id.clone(),
            previous_status: previous,
            status: r.status.clone(),
        },
    )))
}

// === devices ===

fn load_device(
    c: &mut AnyConnection,
    partner: &str,
    mac: &cmn::MacAddress,
) -> Result<dev::Device, Problem> {
    Ok(load_device_row(c, partner, mac)?.0)
}

fn load_device_row(
    c: &mut AnyConnection,
    partner: &str,
    mac: &cmn::MacAddress,
) -> Result<(dev::Device, i64), Problem> {
    let row: Option<(String, i64)> = d::table
        .filter(d::mac_address.eq(mac.as_str()))
        .filter(d::partner_id.eq(partner))
        .select((d::record, d::id))
        .first(c)
        .optional()?;
    let (xml, id) = row.ok_or_else(|| Problem::NotFound {
        entity: cmn::NotFoundEntity::Device,
        what: "device",
        key: mac.as_str().to_string(),
    })?;
    Ok((from_xml(&xml, NS_DEV)?, id))
}

fn save_device(c: &mut AnyConnection, row_id: i64, device: &dev::Device) -> Result<(), Problem> {
    diesel::update(d::table.filter(d::id.eq(row_id)))
        .set((
            d::status.eq(status_str(&device.status)),
            d::service_id.eq(device.service_id.as_str()),
            d::record.eq(to_xml(device, "dev:Device")?),
            d::updated_at.eq(now()),
        ))
        .execute(c)?;
    Ok(())
}

/// Which device kinds can serve which service types.
fn check_device_fits(
    kind: &dev::DeviceKind,
    service: &svc::Service,
    path: &str,
) -> Result<(), Problem> {
    use dev::DeviceKind as K;
    use svc::ServiceType as T;
    let fits = match service.service_type {
        T::Sms => matches!(kind, K::SmsGateway),
        T::Voip | T::SipTrunk | T::Fax => {
            matches!(kind, K::TelephonyAdapter | K::IpPhone | K::Router)
        }
    };
    if fits {
        Ok(())
    } else {
        Err(Problem::Invalid {
            path: path.to_string(),
            rule: "service-type",
            message: format!(
                "a {kind:?} device cannot serve a {} service",
                service_type_str(&service.service_type)
            ),
        })
    }
}

fn add_device(
    c: &mut AnyConnection,
    partner: &str,
    r: &dev::AddDevice,
) -> Result<Response, Problem> {
    let (service, _) = load_service(c, partner, &r.service_id)?;
    not_terminated(&service.status, "service", r.service_id.as_str())?;
    check_device_fits(&r.kind, &service, "/AddDevice/Kind")?;
    // MAC addresses are unique across the network; a terminated device frees its MAC.
    let existing: Option<(String, i64)> = d::table
        .filter(d::mac_address.eq(r.mac_address.as_str()))
        .select((d::status, d::id))
        .first(c)
        .optional()?;
    let at = now();
    let device = dev::Device {
        mac_address: r.mac_address.clone(),
        account_number: service.account_number.clone(),
        service_id: r.service_id.clone(),
        kind: r.kind.clone(),
        model: r.model.clone(),
        label: r.label.clone(),
        status: cmn::Status::Active,
        created_at: DateTime::from_unix(at),
        updated_at: DateTime::from_unix(at),
    };
    let record = to_xml(&device, "dev:Device")?;
    match existing {
        Some((status, _)) if status != "TERMINATED" => {
            return Err(Problem::Conflict {
                reason: cmn::ConflictReason::MacAddressInUse,
                message: format!(
                    "MAC address {} is already registered",
                    r.mac_address.as_str()
                ),
            })
        }
        Some((_, row_id)) => {
            diesel::update(d::table.filter(d::id.eq(row_id)))
                .set((
                    d::partner_id.eq(partner),
                    d::service_id.eq(r.service_id.as_str()),
                    d::status.eq("ACTIVE"),
                    d::record.eq(&record),
                    d::created_at.eq(at),
                    d::updated_at.eq(at),
                ))
                .execute(c)?;
        }
        None => {
            diesel::insert_into(d::table)
                .values((
                    d::mac_address.eq(r.mac_address.as_str()),
                    d::partner_id.eq(partner),
                    d::service_id.eq(r.service_id.as_str()),
                    d::status.eq("ACTIVE"),
                    d::record.eq(&record),
                    d::created_at.eq(at),
                    d::updated_at.eq(at),
                ))
                .execute(c)?;
        }
    }
    Ok(Response::AddDevice(Box::new(dev::AddDeviceResponse {
        device,
    })))
}

fn modify_device(
    c: &mut AnyConnection,
    partner: &str,
    r: &dev::ModifyDevice,
) -> Result<Response, Problem> {
    let (mut device, row_id) = load_device_row(c, partner, &r.mac_address)?;
    not_terminated(&device.status, "device", r.mac_address.as_str())?;
    if let Some(service_id) = &r.service_id {
        let (service, _) = load_service(c, partner, service_id)?;
        not_terminated(&service.status, "service", service_id.as_str())?;
        check_device_fits(&device.kind, &service, "/ModifyDevice/ServiceId")?;
        device.service_id = service_id.clone();
        device.account_number = service.account_number.clone();
    }
    if let Some(model) = &r.model {
        device.model = model.clone();
    }
    if r.label.is_some() {
        device.label = r.label.clone();
    }
    device.updated_at = DateTime::from_unix(now());
    save_device(c, row_id, &device)?;
    Ok(Response::ModifyDevice(Box::new(
        dev::ModifyDeviceResponse { device },
    )))
}

fn change_device_status(
    c: &mut AnyConnection,
    partner: &str,
    r: &dev::ChangeDeviceStatus,
) -> Result<Response, Problem> {
    let (mut device, row_id) = load_device_row(c, partner, &r.mac_address)?;
    transition(&device.status, &r.status)?;
    let previous = std::mem::replace(&mut device.status, r.status.clone());
    device.updated_at = DateTime::from_unix(now());
    save_device(c, row_id, &device)?;
    Ok(Response::ChangeDeviceStatus(Box::new(
        dev::ChangeDeviceStatusResponse {
            mac_address: r.mac_address.clone(),
            previous_status: previous,
            status: r.status.clone(),
        },
    )))
}

pub(crate) use features::load_feature;

#[cfg(test)]
mod tests;
