//! Enrollment review in the admin service (`partnergate enrollment list|show|approve|reject`,
//! `/admin/v1/enrollments…`): the requests partners filed through the enrollment endpoint
//! (`crate::enroll`), and the operator's decision. Approval creates the partner through
//! onboarding (`Store::approve_enrollment` → onboarding's insert, validated by
//! [`validate::new_partner`]) pre-filled from the request, every field editable; the keys are
//! made when the partner collects them, so no reply here shows a key.

use serde::{Deserialize, Serialize};

use super::request::{some, RateInput};
use super::validate::{self as v};
use super::{known_permissions, Actor, AdminError, CreatePartner, Reply, Rules, View};
use crate::store::{Approval, EnrollmentRecord, EnrollmentState, Store};

/// `enrollment approve` / `POST /admin/v1/enrollments/{id}/approve`: what the operator changes
/// of the request; absent fields take the request's values.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveEnrollment {
    /// Partner id; default `PARTNER-0001`, `-0002`, …
    #[serde(default)]
    pub id: Option<String>,
    /// Display name; default the company name.
    #[serde(default)]
    pub name: Option<String>,
    /// An existing group.
    #[serde(default)]
    pub group: Option<String>,
    /// Networks; default the request's.
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// Grants; default the requested operations.
    #[serde(default)]
    pub grants: Option<Vec<String>>,
    /// Callback URL; default the request's, `null` for none.
    #[serde(default, deserialize_with = "some")]
    pub callback_url: Option<Option<String>>,
    /// The partner's own rate.
    #[serde(default)]
    pub rate: Option<RateInput>,
    /// `false`: do not register the client certificate the request carried (by default the
    /// partner gets it as a registered certificate, as `add_client_certs` would).
    #[serde(default)]
    pub client_cert: Option<bool>,
}

/// `enrollment reject` / `POST /admin/v1/enrollments/{id}/reject`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectEnrollment {
    /// Why (1..500 characters, one line): shown to the applicant.
    pub reason: String,
}

/// A checked enrollment operation.
#[derive(Clone, Debug)]
pub(super) enum EnrollmentOp {
    List(Option<EnrollmentState>),
    Show(String),
    Approve(String, Box<ApproveEnrollment>, Rules),
    Reject(String, String),
}

/// `--status` of `enrollment list`.
pub(super) fn state(s: &str) -> Result<EnrollmentState, AdminError> {
    EnrollmentState::parse(s).ok_or_else(|| AdminError::Invalid {
        field: "status",
        reason: format!("{s:?} is not pending, approved, rejected or collected"),
    })
}

/// Checks what can be checked without the stored request.
pub(super) fn approve(
    id: String,
    input: ApproveEnrollment,
    rules: &Rules,
) -> Result<EnrollmentOp, AdminError> {
    if let Some(Some(url)) = &input.callback_url {
        v::callback_url(url, rules)?;
    }
    if let Some(rate) = input.rate {
        v::rate("rate", rate)?;
    }
    Ok(EnrollmentOp::Approve(id, Box::new(input), rules.clone()))
}

/// Checks a rejection's reason.
pub(super) fn reject(id: String, input: RejectEnrollment) -> Result<EnrollmentOp, AdminError> {
    v::text("reason", &input.reason, 500)?;
    Ok(EnrollmentOp::Reject(id, input.reason))
}

/// One enrollment as every face shows it (no secret: the pickup secret is not stored; the
/// client certificate by its SHA-256 fingerprint, as `partner show` lists registered ones).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct EnrollmentView {
    /// `enr_…`.
    pub enrollment_id: String,
    /// `pending`, `approved`, `rejected`, `collected`.
    pub status: EnrollmentState,
    /// The request.
    pub request: crate::store::EnrollmentRequest,
    /// SHA-256 fingerprint (of the DER) of the client certificate, if one was sent; of the
    /// PEM text if it does not read as one leaf certificate (approval then refuses it).
    pub client_certificate_sha256: Option<String>,
    /// The address it was filed from.
    pub source: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub decided_at: Option<i64>,
    /// Operator.
    pub decided_by: Option<String>,
    /// A rejection's reason.
    pub reason: Option<String>,
    /// The partner an approval created.
    pub partner_id: Option<String>,
    /// Unix seconds.
    pub collected_at: Option<i64>,
}

/// `{"enrollments": [...]}`, newest first.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct EnrollmentsView {
    /// The enrollments.
    pub enrollments: Vec<EnrollmentView>,
}

impl From<EnrollmentRecord> for EnrollmentView {
    fn from(r: EnrollmentRecord) -> Self {
        let mut request = r.request;
        let client_certificate_sha256 = request.client_certificate.take().map(|pem| {
            let fp = crate::certificate::single_leaf(&pem).map_or_else(
                |_| crate::certificate::fingerprint(pem.as_bytes()),
                |(_, info)| info.sha256,
            );
            crate::certificate::fingerprint_hex(&fp)
        });
        EnrollmentView {
            enrollment_id: r.enrollment_id,
            status: r.state,
            request,
            client_certificate_sha256,
            source: r.source,
            created_at: r.created_at,
            decided_at: r.decided_at,
            decided_by: r.decided_by,
            reason: r.reason,
            partner_id: r.partner_id,
            collected_at: r.collected_at,
        }
    }
}

/// The partner an approval creates: the request's values, with the operator's changes.
pub fn prefilled(request: &crate::store::EnrollmentRequest) -> CreatePartner {
    CreatePartner {
        id: None,
        name: request.company.clone(),
        country: Some(request.country.clone()),
        group: None,
        allow: request.networks.clone(),
        grants: request.operations.clone(),
        feature_defaults: None,
    }
}

/// A partner id suggested for a request: the company name in capitals, digits and dashes
/// (`Zeta Networks GmbH` → `ZETA-NETWORKS-GMBH`), at most 32 characters; `None` when too little
/// of the name is left (the default `PARTNER-NNNN` applies).
pub fn suggested_id(company: &str) -> Option<String> {
    let mut id = String::new();
    for c in company.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_uppercase());
        } else if !id.is_empty() && !id.ends_with('-') {
            id.push('-');
        }
    }
    id.truncate(32);
    let id = id.trim_end_matches('-');
    (id.len() >= 3).then(|| id.to_owned())
}

/// The contact text of a partner made from a request: the primary contact, one line.
fn contact_text(request: &crate::store::EnrollmentRequest) -> Option<String> {
    let c = request.contacts.first()?;
    let mut text = format!("{} {}", c.first_name, c.last_name);
    for part in [&c.email, &c.phone].into_iter().flatten() {
        text.push_str(", ");
        text.push_str(part);
    }
    Some(text.chars().take(500).collect())
}

pub(super) fn run(s: &Store, op: EnrollmentOp, actor: &Actor) -> Result<Reply, AdminError> {
    let show = |id: &str, message: String| -> Result<Reply, AdminError> {
        Ok(Reply {
            message,
            view: View::Enrollment(Box::new(s.enrollment(id)?.into())),
        })
    };
    match op {
        EnrollmentOp::List(state) => {
            let enrollments: Vec<EnrollmentView> = s
                .list_enrollments(state)?
                .into_iter()
                .map(EnrollmentView::from)
                .collect();
            Ok(Reply {
                message: format!("{} enrollments", enrollments.len()),
                view: View::Enrollments(EnrollmentsView { enrollments }),
            })
        }
        EnrollmentOp::Show(id) => show(&id, format!("enrollment {id}")),
        EnrollmentOp::Approve(id, input, rules) => {
            let record = s.enrollment(&id)?;
            let mut create = prefilled(&record.request);
            create.id = input.id;
            create.group = input.group;
            if let Some(name) = input.name {
                create.name = name;
            }
            if let Some(allow) = input.allow {
                create.allow = allow;
            }
            if let Some(grants) = input.grants {
                create.grants = grants;
            }
            let callback_url = input
                .callback_url
                .unwrap_or(record.request.callback_url.clone());
            if let Some(url) = &callback_url {
                v::callback_url(url, &rules)?;
            }
            let client_certs = match &record.request.client_certificate {
                Some(pem) if input.client_cert != Some(false) => {
                    vec![v::client_cert("client_certificate", pem)?]
                }
                _ => Vec::new(),
            };
            let approval = Approval {
                partner: v::new_partner(create)?,
                contact: contact_text(&record.request),
                callback_url,
                rate: input.rate.map(|r| v::rate("rate", r)).transpose()?,
                client_certs,
            };
            let with_cert = if approval.client_certs.is_empty() {
                ""
            } else {
                " with its client certificate"
            };
            let partner =
                s.approve_enrollment(actor.as_str(), &id, approval, &known_permissions())?;
            show(
                &id,
                format!("enrollment {id} approved: partner {partner} created{with_cert}; its keys are made when the partner collects them"),
            )
        }
        EnrollmentOp::Reject(id, reason) => {
            s.reject_enrollment(actor.as_str(), &id, &reason)?;
            show(&id, format!("enrollment {id} rejected"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::suggested_id;

    #[test]
    fn suggested_ids_are_valid_partner_ids() {
        assert_eq!(
            suggested_id("Zeta Networks GmbH").as_deref(),
            Some("ZETA-NETWORKS-GMBH")
        );
        assert_eq!(
            suggested_id("  Müller & Co. ").as_deref(),
            Some("M-LLER-CO")
        );
        assert_eq!(suggested_id("AB"), None);
        assert_eq!(suggested_id("Ü"), None);
        let long = suggested_id(&"Telecom ".repeat(10)).unwrap();
        assert!(long.len() <= 32 && !long.ends_with('-'), "{long}");
    }
}
