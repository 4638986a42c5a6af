//! Enrollment requests (`enrollments`, issue 19): filed by a prospective partner's BSS through
//! the anonymous enrollment endpoint, reviewed by operators, collected once.
//!
//! What rests here: the request (JSON, with the client certificate's PEM as filed: a
//! certificate is public, and approval registers it), the SHA-256 of the pickup secret, the decision. Never a
//! key: an approval creates the partner through onboarding's own insert ([`insert_partner`])
//! without keys, and the keys are made at the first successful pickup, their hashes inserted in
//! the transaction that marks the enrollment collected ([`Store::collect_enrollment`]). Two
//! pickups racing: the conditional update (`… WHERE status = 'approved'`) lets one through;
//! the other updates nothing, inserts nothing and reads `collected`.
//!
//! Filing is not partner data: it bumps no revision (an anonymous caller must not make every
//! node reload); it locks the `meta` row `enrollments` first, so that the pending cap and the
//! insert are one step on every node (and the transaction writes before it reads, as SQLite
//! needs). Approval and collection change partner data and go through `Store::write`.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::client_certs::{self, NewClientCert};
use super::models::PartnerUpdate;
use super::onboard::{insert_keys, insert_partner, partner_created_detail, validate};
use super::rules::{audit, corrupt, existing_partner, not_found, rate_columns};
use super::schema::{enrollments as e, meta, partners};
use super::{unix_now, AnyConnection, NewPartner, Rate, Store, StoreError};
use crate::secret::{self, KeyHash, KeyKind, Secret};

/// The audit actor of a collection (the applicant, who has no operator account).
pub const ENROLLMENT_ACTOR: &str = "enrollment";

/// Where an enrollment stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnrollmentState {
    /// Waiting for an operator.
    Pending,
    /// The partner exists; the keys wait for the first pickup.
    Approved,
    /// Refused, with the operator's reason.
    Rejected,
    /// The keys were handed out.
    Collected,
}

impl EnrollmentState {
    /// The stored text.
    pub const fn as_str(self) -> &'static str {
        match self {
            EnrollmentState::Pending => "pending",
            EnrollmentState::Approved => "approved",
            EnrollmentState::Rejected => "rejected",
            EnrollmentState::Collected => "collected",
        }
    }

    /// The state a stored (or typed) text names.
    pub fn parse(text: &str) -> Option<Self> {
        [
            EnrollmentState::Pending,
            EnrollmentState::Approved,
            EnrollmentState::Rejected,
            EnrollmentState::Collected,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One contact person of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentContact {
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Company.
    pub company: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// E.164 telephone number.
    pub phone: Option<String>,
}

/// What the applicant asked for, as filed (checked by the endpoint before it is stored).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentRequest {
    /// Registered company name.
    pub company: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// Contact persons, the primary one first.
    pub contacts: Vec<EnrollmentContact>,
    /// Requested permissions (`accounts.create`, `accounts.*`, `*`).
    pub operations: Vec<String>,
    /// The partner's server networks (canonical CIDR text).
    pub networks: Vec<String>,
    /// The partner's callback endpoint.
    pub callback_url: Option<String>,
    /// The partner's client certificate (PEM).
    pub client_certificate: Option<String>,
    /// The terms version accepted.
    pub accepted_terms: String,
}

/// An enrollment as operators see it (no secret: the pickup secret's hash is not read out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollmentRecord {
    /// `enr_…`.
    pub enrollment_id: String,
    /// Where it stands.
    pub state: EnrollmentState,
    /// The request.
    pub request: EnrollmentRequest,
    /// The address it was filed from.
    pub source: String,
    /// When it was filed (unix seconds).
    pub created_at: i64,
    /// When an operator decided.
    pub decided_at: Option<i64>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// The rejection's reason.
    pub reason: Option<String>,
    /// The partner an approval created.
    pub partner_id: Option<String>,
    /// When the keys were collected.
    pub collected_at: Option<i64>,
}

/// What the pickup check needs of an enrollment.
#[derive(Clone, Debug)]
pub struct PickupRow {
    /// SHA-256 of the pickup secret.
    pub pickup_hash: KeyHash,
    /// Where it stands.
    pub state: EnrollmentState,
    /// The rejection's reason.
    pub reason: Option<String>,
}

/// The outcome of filing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filed {
    /// Stored, pending.
    Filed,
    /// Refused: `enrollment.max_pending` requests are pending already.
    Full,
}

/// The one answer that carries the keys. They exist only here: the database has their hashes.
#[derive(Debug)]
pub struct Collected {
    /// The partner the approval created.
    pub partner_id: String,
    /// `pgk_…`.
    pub api_key: Secret,
    /// `pgc_…`.
    pub callback_key: Secret,
}

/// An operator's approval: the partner to create (pre-filled from the request, edited) and the
/// details onboarding does not take.
#[derive(Clone, Debug, Default)]
pub struct Approval {
    /// The partner (validated by onboarding's rules).
    pub partner: NewPartner,
    /// Contact text.
    pub contact: Option<String>,
    /// Callback URL (validated by the caller).
    pub callback_url: Option<String>,
    /// The partner's own rate.
    pub rate: Option<Rate>,
    /// The request's client certificate to register for the partner (read by the caller);
    /// empty when the request carried none or the operator opted out.
    pub client_certs: Vec<NewClientCert>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = e)]
struct EnrollmentRow {
    enrollment_id: String,
    status: String,
    request: String,
    source: String,
    created_at: i64,
    decided_at: Option<i64>,
    decided_by: Option<String>,
    reason: Option<String>,
    partner_id: Option<String>,
    collected_at: Option<i64>,
}

fn state_of(id: &str, text: &str) -> Result<EnrollmentState, StoreError> {
    EnrollmentState::parse(text)
        .ok_or_else(|| corrupt("enrollments", id, format!("status {text:?}")))
}

impl EnrollmentRow {
    fn into_record(self) -> Result<EnrollmentRecord, StoreError> {
        let request = serde_json::from_str(&self.request)
            .map_err(|err| corrupt("enrollments", &self.enrollment_id, err.to_string()))?;
        Ok(EnrollmentRecord {
            state: state_of(&self.enrollment_id, &self.status)?,
            request,
            source: self.source,
            created_at: self.created_at,
            decided_at: self.decided_at,
            decided_by: self.decided_by,
            reason: self.reason,
            partner_id: self.partner_id,
            collected_at: self.collected_at,
            enrollment_id: self.enrollment_id,
        })
    }
}

/// Why an approval or rejection changed nothing: `id` does not exist, or is decided already.
fn not_pending(c: &mut AnyConnection, id: &str) -> StoreError {
    let status: Option<String> = e::table
        .filter(e::enrollment_id.eq(id))
        .select(e::status)
        .first(c)
        .optional()
        .unwrap_or(None);
    match status {
        None => not_found("enrollment", id),
        Some(s) => StoreError::Conflict(format!("enrollment {id} is {s}, not pending")),
    }
}

impl Store {
    /// Files a request as `pending` under `enrollment_id` with the pickup secret's hash, unless
    /// `max_pending` requests are pending already ([`Filed::Full`]). Bumps no revision.
    pub fn file_enrollment(
        &self,
        enrollment_id: &str,
        pickup_hash: &KeyHash,
        request: &EnrollmentRequest,
        source: &str,
        max_pending: u64,
    ) -> Result<Filed, StoreError> {
        let json = serde_json::to_string(request)
            .map_err(|err| corrupt("enrollments", enrollment_id, err.to_string()))?;
        self.connection()?.transaction(|c| {
            // The lock every filing takes first: the count and the insert are one step.
            diesel::update(meta::table.filter(meta::key.eq("enrollments")))
                .set(meta::value.eq(meta::value + 1))
                .execute(c)?;
            let pending: i64 = e::table
                .filter(e::status.eq(EnrollmentState::Pending.as_str()))
                .count()
                .get_result(c)?;
            if u64::try_from(pending).unwrap_or(u64::MAX) >= max_pending {
                return Ok(Filed::Full);
            }
            diesel::insert_into(e::table)
                .values((
                    e::enrollment_id.eq(enrollment_id),
                    e::pickup_hash.eq(pickup_hash.as_slice()),
                    e::status.eq(EnrollmentState::Pending.as_str()),
                    e::request.eq(&json),
                    e::source.eq(source),
                    e::created_at.eq(unix_now()),
                ))
                .execute(c)?;
            Ok(Filed::Filed)
        })
    }

    /// The pickup secret's hash and the state of `enrollment_id`, if it exists.
    pub fn enrollment_pickup(&self, enrollment_id: &str) -> Result<Option<PickupRow>, StoreError> {
        let row: Option<(Vec<u8>, String, Option<String>)> = e::table
            .filter(e::enrollment_id.eq(enrollment_id))
            .select((e::pickup_hash, e::status, e::reason))
            .first(&mut *self.connection()?)
            .optional()?;
        row.map(|(hash, status, reason)| {
            let pickup_hash = KeyHash::try_from(hash.as_slice())
                .map_err(|_| corrupt("enrollments", enrollment_id, "pickup_hash".into()))?;
            Ok(PickupRow {
                pickup_hash,
                state: state_of(enrollment_id, &status)?,
                reason,
            })
        })
        .transpose()
    }

    /// Collects an approved enrollment: in one transaction, marks it `collected` (only if it is
    /// `approved` and `pickup_hash` is its secret's), makes the partner's two keys and inserts
    /// their hashes. `None`: nothing changed (not approved, or another pickup got there first).
    /// The keys exist only in the answer.
    pub fn collect_enrollment(
        &self,
        enrollment_id: &str,
        pickup_hash: &KeyHash,
    ) -> Result<Option<Collected>, StoreError> {
        let api_key = secret::generate(KeyKind::Partner);
        let callback_key = secret::generate(KeyKind::Callback);
        let collected = self.write(|c| {
            let now = unix_now();
            let claimed = diesel::update(
                e::table
                    .filter(e::enrollment_id.eq(enrollment_id))
                    .filter(e::status.eq(EnrollmentState::Approved.as_str()))
                    .filter(e::pickup_hash.eq(pickup_hash.as_slice())),
            )
            .set((
                e::status.eq(EnrollmentState::Collected.as_str()),
                e::collected_at.eq(Some(now)),
            ))
            .execute(c)?;
            if claimed != 1 {
                return Ok(None);
            }
            let partner_id: Option<String> = e::table
                .filter(e::enrollment_id.eq(enrollment_id))
                .select(e::partner_id)
                .first(c)?;
            let partner_id = partner_id
                .ok_or_else(|| corrupt("enrollments", enrollment_id, "no partner_id".into()))?;
            let row_id = existing_partner(c, &partner_id)?;
            let keys = insert_keys(c, row_id, &api_key, &callback_key, None, now)?;
            let detail = serde_json::json!({ "partner": partner_id, "keys": keys });
            audit(
                c,
                ENROLLMENT_ACTOR,
                "enrollment.collect",
                enrollment_id,
                &detail,
            )?;
            Ok(Some(partner_id))
        })?;
        Ok(collected.map(|partner_id| Collected {
            partner_id,
            api_key,
            callback_key,
        }))
    }

    /// Enrollments, newest first; only those in `state` when given.
    pub fn list_enrollments(
        &self,
        state: Option<EnrollmentState>,
    ) -> Result<Vec<EnrollmentRecord>, StoreError> {
        let mut query = e::table
            .select(EnrollmentRow::as_select())
            .order(e::id.desc())
            .into_boxed();
        if let Some(state) = state {
            query = query.filter(e::status.eq(state.as_str()));
        }
        query
            .load(&mut *self.connection()?)?
            .into_iter()
            .map(EnrollmentRow::into_record)
            .collect()
    }

    /// One enrollment.
    pub fn enrollment(&self, enrollment_id: &str) -> Result<EnrollmentRecord, StoreError> {
        e::table
            .filter(e::enrollment_id.eq(enrollment_id))
            .select(EnrollmentRow::as_select())
            .first(&mut *self.connection()?)
            .optional()?
            .ok_or_else(|| not_found("enrollment", enrollment_id))?
            .into_record()
    }

    /// Approves a pending enrollment: one transaction creates the partner through onboarding's
    /// insert (no keys: they are made when collected), sets its contact, callback URL and rate,
    /// registers its client certificate (the partner update's own registration; one registered
    /// already → `Conflict`, nothing approved), marks the enrollment `approved` and writes the
    /// audit rows (`partner.create`, `enrollment.approve` with the certificate registered).
    /// Returns the partner id.
    pub fn approve_enrollment(
        &self,
        actor: &str,
        enrollment_id: &str,
        approval: Approval,
        known_permissions: &[&str],
    ) -> Result<String, StoreError> {
        let p = validate(approval.partner, known_permissions)?;
        let (rate_per_second, burst) = rate_columns("rate", approval.rate)?;
        self.write(|c| {
            let now = unix_now();
            let claimed = diesel::update(
                e::table
                    .filter(e::enrollment_id.eq(enrollment_id))
                    .filter(e::status.eq(EnrollmentState::Pending.as_str())),
            )
            .set((
                e::status.eq(EnrollmentState::Approved.as_str()),
                e::decided_at.eq(Some(now)),
                e::decided_by.eq(Some(actor)),
            ))
            .execute(c)?;
            if claimed != 1 {
                return Err(not_pending(c, enrollment_id));
            }
            let (row_id, partner_id) = insert_partner(c, &p, now)?;
            diesel::update(partners::table.filter(partners::id.eq(row_id)))
                .set(PartnerUpdate {
                    contact: Some(approval.contact.as_deref()),
                    callback_url: Some(approval.callback_url.as_deref()),
                    rate_per_second: Some(rate_per_second),
                    burst: Some(burst),
                    ..PartnerUpdate::now()
                })
                .execute(c)?;
            diesel::update(e::table.filter(e::enrollment_id.eq(enrollment_id)))
                .set(e::partner_id.eq(Some(&partner_id)))
                .execute(c)?;
            let certs = client_certs::apply(c, row_id, &partner_id, &approval.client_certs, &[])?;
            audit(
                c,
                actor,
                "partner.create",
                &partner_id,
                &partner_created_detail(&p, &[]),
            )?;
            let detail = serde_json::json!({
                "partner": partner_id,
                "callback_url": approval.callback_url,
                "rate": rate_per_second.zip(burst),
                "client_certs": certs,
            });
            audit(c, actor, "enrollment.approve", enrollment_id, &detail)?;
            Ok(partner_id)
        })
    }

    /// Rejects a pending enrollment with `reason` (shown to the applicant), audited as
    /// `enrollment.reject`. Bumps no revision: no partner data changes.
    pub fn reject_enrollment(
        &self,
        actor: &str,
        enrollment_id: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.connection()?.transaction(|c| {
            let claimed = diesel::update(
                e::table
                    .filter(e::enrollment_id.eq(enrollment_id))
                    .filter(e::status.eq(EnrollmentState::Pending.as_str())),
            )
            .set((
                e::status.eq(EnrollmentState::Rejected.as_str()),
                e::decided_at.eq(Some(unix_now())),
                e::decided_by.eq(Some(actor)),
                e::reason.eq(Some(reason)),
            ))
            .execute(c)?;
            if claimed != 1 {
                return Err(not_pending(c, enrollment_id));
            }
            let detail = serde_json::json!({ "reason": reason });
            audit(c, actor, "enrollment.reject", enrollment_id, &detail)
        })
    }
}
