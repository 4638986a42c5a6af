//! Services: get, list an account's, add, modify, change status (a service is active only on an
//! active account; terminating one terminates its devices and features). Uses the shared paths
//! in `entity`, the codec in `xml` and `accounts` for the account a service belongs to.

use diesel::prelude::*;

use super::accounts;
use super::db::prov_services as s;
use super::entity::{self, record_kind, status_str};
use super::xml::NS_SVC;
use super::{Conn, Outcome, Problem};
use crate::generated::partner::Response;
use crate::generated::types::{cmn, svc};
use crate::xs::DateTime;

record_kind!(svc::Service {
    table: s,
    key: service_id,
    what: "service",
    entity: Service,
    namespace: NS_SVC,
    root: "svc:Service",
    columns(service) {
        account_number: service.account_number.as_str(),
        service_type: service_type_str(&service.service_type),
    },
});

/// The contract's code of a service type.
pub(crate) fn service_type_str(t: &svc::ServiceType) -> &'static str {
    match t {
        svc::ServiceType::Voip => "VOIP",
        svc::ServiceType::Sms => "SMS",
        svc::ServiceType::Fax => "FAX",
        svc::ServiceType::SipTrunk => "SIP_TRUNK",
    }
}

/// The partner's service `id`, with its row id.
pub(crate) fn load(
    c: &mut Conn,
    partner: &str,
    id: &cmn::ServiceId,
) -> Result<(svc::Service, i64), Problem> {
    entity::load(c, partner, id.as_str())
}

/// The partner's service `id`, refused when terminated: the one a new entity goes on.
pub(crate) fn load_live(
    c: &mut Conn,
    partner: &str,
    id: &cmn::ServiceId,
) -> Result<svc::Service, Problem> {
    let (service, _) = load(c, partner, id)?;
    entity::not_terminated(&service.status, "service", id.as_str())?;
    Ok(service)
}

/// GetService.
pub(crate) fn get(c: &mut Conn, partner: &str, r: &svc::GetService) -> Outcome {
    let (service, _) = load(c, partner, &r.service_id)?;
    Ok(Response::GetService(Box::new(svc::GetServiceResponse {
        service,
    })))
}

/// ListServices: an account's services (of one type if given), oldest first, at most 200.
pub(crate) fn list(c: &mut Conn, partner: &str, r: &svc::ListServices) -> Outcome {
    accounts::load(c, partner, &r.account_number)?;
    let mut q = s::table
        .filter(s::partner_id.eq(partner))
        .filter(s::account_number.eq(r.account_number.as_str()))
        .into_boxed();
    if let Some(t) = &r.service_type {
        q = q.filter(s::service_type.eq(service_type_str(t)));
    }
    let rows: Vec<String> = q.order(s::id.asc()).limit(200).select(s::record).load(c)?;
    let service = entity::decode_all(&rows)?;
    Ok(Response::ListServices(Box::new(
        svc::ListServicesResponse { service },
    )))
}

/// AddService: on a live account of the partner, a fresh service id, ACTIVE at once.
pub(crate) fn add(c: &mut Conn, partner: &str, r: &svc::AddService) -> Outcome {
    let (account, _) = accounts::load(c, partner, &r.account_number)?;
    entity::not_terminated(&account.status, "account", r.account_number.as_str())?;
    let service = entity::create(c, partner, ("SVC", "service id"), |id, at| {
        Ok(svc::Service {
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
        })
    })?;
    Ok(Response::AddService(Box::new(svc::AddServiceResponse {
        service,
    })))
}

/// ModifyService: the settings given replace the stored ones they set.
pub(crate) fn modify(c: &mut Conn, partner: &str, r: &svc::ModifyService) -> Outcome {
    let id = r.service_id.as_str();
    let service = entity::modify::<svc::Service>(c, partner, id, |_, service| {
        let (new, old) = (&r.settings, &mut service.settings);
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
        Ok(())
    })?;
    Ok(Response::ModifyService(Box::new(
        svc::ModifyServiceResponse { service },
    )))
}

/// ChangeServiceStatus: activating needs an active account; terminating cascades to the
/// service's devices and features.
pub(crate) fn change_status(c: &mut Conn, partner: &str, r: &svc::ChangeServiceStatus) -> Outcome {
    let id = r.service_id.as_str();
    let previous =
        entity::change_status::<svc::Service>(c, partner, id, &r.status, |c, service| {
            if r.status != cmn::Status::Active {
                return Ok(());
            }
            // A service cannot be active on an account that is not.
            let (account, _) = accounts::load(c, partner, &service.account_number)?;
            if account.status == cmn::Status::Active {
                return Ok(());
            }
            Err(Problem::Conflict {
                reason: cmn::ConflictReason::InvalidStatusTransition,
                message: format!(
                    "account {} is {}",
                    account.account_number.as_str(),
                    status_str(&account.status)
                ),
            })
        })?;
    if r.status == cmn::Status::Terminated {
        entity::terminate_service(c, id)?;
    }
    Ok(Response::ChangeServiceStatus(Box::new(
        svc::ChangeServiceStatusResponse {
            service_id: r.service_id.clone(),
            previous_status: previous,
            status: r.status.clone(),
        },
    )))
}
