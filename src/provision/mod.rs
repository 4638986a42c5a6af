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
//!
//! Layout (data flows one way, down this list): `mod.rs` dispatches an operation inside one
//! read, or one idempotent write transaction, and turns problems into faults; `features`,
//! `devices`, `services` and `accounts` carry out their entity's operations (one may load
//! through a module after it in this list: a feature's or a device's service, a service's
//! account); `entity` holds the paths every entity takes (load for a partner, modify, change
//! status, the termination cascade, fresh numbers); `xml` stores records; `db` declares the
//! tables; `standalone` serves the layer over HTTP.
//! `standalone` serves the layer over HTTP.

mod accounts;
pub mod db;
mod devices;
mod entity;
pub mod features;
mod services;
pub mod standalone;
mod xml;

use std::sync::Arc;

use diesel::prelude::*;

use crate::envelope::FaultCode;
use crate::forward::{
    BoxFuture, CallContext, ForwardError, Upstream, UpstreamFault, UpstreamReply,
};
use crate::generated::partner::{FaultDetail, Operation, Request, Response};
use crate::generated::types::cmn;
use crate::store::{AnyConnection, SnapshotCell, Store, StoreError};

use db::{meta, prov_idempotency as idem};
use entity::now;
use xml::{decode_response, encode_response};

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

/// What an operation returns: its response, or why not.
pub(crate) type Outcome = Result<Response, Problem>;

/// The connection an operation runs on (inside its transaction).
pub(crate) type Conn = AnyConnection;

impl From<diesel::result::Error> for Problem {
    fn from(e: diesel::result::Error) -> Self {
        Problem::Store(StoreError::Query(e))
    }
}

pub use crate::config::DEFAULT_CHECKOUT_TIMEOUT;

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
        let who = features::Caller {
            partner,
            defaults: &defaults,
        };
        let op = request.operation();
        let request_id = request_id_of(request);
        match request {
            Request::GetAccount(r) => self.read(|c| accounts::get(c, partner, r)),
            Request::FindAccounts(r) => self.read(|c| accounts::find(c, partner, r)),
            Request::GetService(r) => self.read(|c| services::get(c, partner, r)),
            Request::ListServices(r) => self.read(|c| services::list(c, partner, r)),
            Request::GetDevice(r) => self.read(|c| devices::get(c, partner, r)),
            Request::GetFeature(r) => self.read(|c| features::get(c, &who, r)),
            _ => self.write(partner, request_id, op, |c| match request {
                Request::CreateAccount(r) => accounts::create(c, partner, r),
                Request::ModifyAccount(r) => accounts::modify(c, partner, r),
                Request::ChangeAccountStatus(r) => accounts::change_status(c, partner, r),
                Request::AddService(r) => services::add(c, partner, r),
                Request::ModifyService(r) => services::modify(c, partner, r),
                Request::ChangeServiceStatus(r) => services::change_status(c, partner, r),
                Request::AddDevice(r) => devices::add(c, partner, r),
                Request::ModifyDevice(r) => devices::modify(c, partner, r),
                Request::ChangeDeviceStatus(r) => devices::change_status(c, partner, r),
                Request::EnableFeature(r) => features::enable(c, &who, r),
                Request::ModifyFeature(r) => features::modify(c, &who, r),
                Request::ChangeFeatureStatus(r) => features::change_status(c, &who, r),
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

#[cfg(test)]
mod tests;
