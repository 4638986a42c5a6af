//! Partner client certificates (mutual TLS) in the database: the rows of `client_certs` (pinned
//! leaves) and `client_cas` (a CA and an expected subject); read into the snapshot's
//! [`ClientAuth`], shown to the administrator ([`ClientCertRecord`], [`ClientCaRecord`]),
//! changed inside a partner update's transaction. Uses `schema`, `rules` and `certificate`.

use std::collections::HashMap;
use std::sync::Arc;

use diesel::prelude::*;

use super::conn::AnyConnection;
use super::rules::{corrupt, insert_new, not_found};
use super::schema::{client_cas, client_certs};
use super::{unix_now, StoreError};
use crate::certificate::{
    fingerprint_hex, CertInfo, ClientAuth, ClientCa, Fingerprint, PinnedCert,
};

/// A registered certificate as the administrator sees it (never the certificate's key: the
/// gateway has none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertRecord {
    /// SHA-256 of the DER, 64 lower-case hex digits.
    pub sha256: String,
    /// `CN=…, O=…`.
    pub subject: String,
    /// Unix seconds from which it is valid.
    pub not_before: i64,
    /// Unix seconds after which it is not.
    pub not_after: i64,
    /// Unix seconds when it was registered.
    pub created_at: i64,
}

/// A partner's client CA and the subject its certificates must have.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = client_cas)]
pub struct ClientCaRecord {
    /// The CA certificate(s), PEM.
    pub ca_pem: String,
    /// The expected subject, as given.
    pub subject: String,
    /// Unix seconds when it was set.
    pub created_at: i64,
}

/// A certificate to register: its DER and the facts read from it (by the admin layer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewClientCert {
    /// The DER.
    pub der: Vec<u8>,
    /// Fingerprint, subject, dates.
    pub info: CertInfo,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = client_certs)]
struct CertRow {
    partner_id: i64,
    sha256: String,
    subject: String,
    not_before: i64,
    not_after: i64,
    created_at: i64,
}

#[derive(Insertable)]
#[diesel(table_name = client_certs)]
struct NewCertRow<'a> {
    partner_id: i64,
    sha256: &'a str,
    subject: &'a str,
    not_before: i64,
    not_after: i64,
    cert_der: &'a [u8],
    created_at: i64,
}

impl CertRow {
    fn record(self) -> ClientCertRecord {
        ClientCertRecord {
            sha256: self.sha256,
            subject: self.subject,
            not_before: self.not_before,
            not_after: self.not_after,
            created_at: self.created_at,
        }
    }
}

/// Every registered certificate, for the snapshot (row id of the partner, record).
fn all(c: &mut AnyConnection) -> QueryResult<Vec<CertRow>> {
    client_certs::table
        .select(CertRow::as_select())
        .order(client_certs::id)
        .load(c)
}

/// A partner's certificates, oldest first.
pub(super) fn certs_of(
    c: &mut AnyConnection,
    row_id: i64,
) -> Result<Vec<ClientCertRecord>, StoreError> {
    Ok(client_certs::table
        .filter(client_certs::partner_id.eq(row_id))
        .select(CertRow::as_select())
        .order(client_certs::id)
        .load(c)?
        .into_iter()
        .map(CertRow::record)
        .collect())
}

/// A partner's client CA, if set.
pub(super) fn ca_of(
    c: &mut AnyConnection,
    row_id: i64,
) -> Result<Option<ClientCaRecord>, StoreError> {
    Ok(client_cas::table
        .filter(client_cas::partner_id.eq(row_id))
        .select(ClientCaRecord::as_select())
        .first(c)
        .optional()?)
}

/// Sets (`Some((pem, subject))`, checked by the caller) or clears a partner's client CA.
pub(super) fn set_ca(
    c: &mut AnyConnection,
    row_id: i64,
    ca: Option<&(String, String)>,
) -> Result<(), StoreError> {
    diesel::delete(client_cas::table.filter(client_cas::partner_id.eq(row_id))).execute(c)?;
    if let Some((pem, subject)) = ca {
        diesel::insert_into(client_cas::table)
            .values((
                client_cas::partner_id.eq(row_id),
                client_cas::ca_pem.eq(pem),
                client_cas::subject.eq(subject),
                client_cas::created_at.eq(unix_now()),
            ))
            .execute(c)?;
    }
    Ok(())
}

/// The snapshot's client-certificate settings per partner row id: the registered certificates
/// and the CAs. Partners with neither are absent.
pub(super) fn load_settings(
    c: &mut AnyConnection,
) -> Result<HashMap<i64, Arc<ClientAuth>>, StoreError> {
    let cas: Vec<(i64, String, String)> = client_cas::table
        .select((
            client_cas::partner_id,
            client_cas::ca_pem,
            client_cas::subject,
        ))
        .load(c)?;
    let mut out: HashMap<i64, ClientAuth> = HashMap::new();
    for row in all(c)? {
        let sha256 = crate::certificate::parse_fingerprint(&row.sha256)
            .map_err(|e| corrupt("client_certs", &row.sha256, e.to_string()))?;
        out.entry(row.partner_id)
            .or_default()
            .pinned
            .push(PinnedCert {
                sha256,
                not_before: row.not_before,
                not_after: row.not_after,
            });
    }
    for (row_id, pem, subject) in cas {
        let ca = ClientCa::new(&pem, &subject)
            .map_err(|e| corrupt("partners", &row_id.to_string(), format!("client CA: {e}")))?;
        out.entry(row_id).or_default().ca = Some(ca);
    }
    Ok(out.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
}

/// Registers `add` and removes `remove` for the partner `row_id` (inside its update's
/// transaction). A certificate registered already (for this or another partner) → `Conflict`;
/// a fingerprint not registered for it → `NotFound`. Returns the audit detail: the
/// fingerprints added and removed.
pub(super) fn apply(
    c: &mut AnyConnection,
    row_id: i64,
    partner_id: &str,
    add: &[NewClientCert],
    remove: &[Fingerprint],
) -> Result<Option<serde_json::Value>, StoreError> {
    if add.is_empty() && remove.is_empty() {
        return Ok(None);
    }
    let now = unix_now();
    let mut added = Vec::new();
    for cert in add {
        let hex = fingerprint_hex(&cert.info.sha256);
        let present = client_certs::table
            .filter(client_certs::sha256.eq(&hex))
            .count()
            .get_result::<i64>(c)?
            > 0;
        let taken = || format!("client certificate {hex} is registered already");
        insert_new(present, taken, || {
            diesel::insert_into(client_certs::table)
                .values(NewCertRow {
                    partner_id: row_id,
                    sha256: &hex,
                    subject: &cert.info.subject,
                    not_before: cert.info.not_before,
                    not_after: cert.info.not_after,
                    cert_der: &cert.der,
                    created_at: now,
                })
                .execute(c)
        })?;
        added.push(serde_json::json!({"sha256": hex, "subject": cert.info.subject}));
    }
    let mut removed = Vec::new();
    for fp in remove {
        let hex = fingerprint_hex(fp);
        let n = diesel::delete(
            client_certs::table
                .filter(client_certs::partner_id.eq(row_id))
                .filter(client_certs::sha256.eq(&hex)),
        )
        .execute(c)?;
        if n == 0 {
            return Err(not_found(
                "client certificate",
                &format!("{hex} of {partner_id}"),
            ));
        }
        removed.push(hex);
    }
    Ok(Some(
        serde_json::json!({"added": added, "removed": removed}),
    ))
}
