//! Devices: get, add (a MAC address is unique across the network), modify (move to another
//! service), change status; which device kinds serve which service types. Uses the shared paths
//! in `entity`, the codec in `xml` and `services` for the service a device serves.

use diesel::prelude::*;

use super::db::prov_devices as d;
use super::entity::{self, record_kind, Record};
use super::services::{self, service_type_str};
use super::xml::{to_xml, NS_DEV};
use super::{Conn, Outcome, Problem};
use crate::generated::partner::Response;
use crate::generated::types::{cmn, dev, svc};
use crate::xs::DateTime;

record_kind!(dev::Device {
    table: d,
    key: mac_address,
    what: "device",
    entity: Device,
    namespace: NS_DEV,
    root: "dev:Device",
    columns(device) {
        service_id: device.service_id.as_str(),
    },
});

/// GetDevice.
pub(crate) fn get(c: &mut Conn, partner: &str, r: &dev::GetDevice) -> Outcome {
    let (device, _) = entity::load::<dev::Device>(c, partner, r.mac_address.as_str())?;
    Ok(Response::GetDevice(Box::new(dev::GetDeviceResponse {
        device,
    })))
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

/// AddDevice: on a live service of the partner that the kind fits; a MAC address held by a
/// live device anywhere on the network is a `Conflict`, a terminated device's is taken over.
pub(crate) fn add(c: &mut Conn, partner: &str, r: &dev::AddDevice) -> Outcome {
    let service = services::load_live(c, partner, &r.service_id)?;
    check_device_fits(&r.kind, &service, "/AddDevice/Kind")?;
    // MAC addresses are unique across the network; a terminated device frees its MAC.
    let existing: Option<(String, i64)> = d::table
        .filter(d::mac_address.eq(r.mac_address.as_str()))
        .select((d::status, d::id))
        .first(c)
        .optional()?;
    let at = entity::now();
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
    let xml = to_xml(&device, "dev:Device")?;
    let mac = r.mac_address.as_str();
    let taken = || Problem::Conflict {
        reason: cmn::ConflictReason::MacAddressInUse,
        message: format!("MAC address {mac} is already registered"),
    };
    entity::add_unique(c, existing, taken, |c, reuse| {
        dev::Device::add(c, reuse, mac, partner, &device, &xml, at)
    })?;
    Ok(Response::AddDevice(Box::new(dev::AddDeviceResponse {
        device,
    })))
}

/// ModifyDevice: a new service (live, of the partner, one the kind fits), model or label.
pub(crate) fn modify(c: &mut Conn, partner: &str, r: &dev::ModifyDevice) -> Outcome {
    let mac = r.mac_address.as_str();
    let device = entity::modify::<dev::Device>(c, partner, mac, |c, device| {
        if let Some(service_id) = &r.service_id {
            let service = services::load_live(c, partner, service_id)?;
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
        Ok(())
    })?;
    Ok(Response::ModifyDevice(Box::new(
        dev::ModifyDeviceResponse { device },
    )))
}

/// ChangeDeviceStatus.
pub(crate) fn change_status(c: &mut Conn, partner: &str, r: &dev::ChangeDeviceStatus) -> Outcome {
    let mac = r.mac_address.as_str();
    let previous = entity::change_status::<dev::Device>(c, partner, mac, &r.status, |_, _| Ok(()))?;
    Ok(Response::ChangeDeviceStatus(Box::new(
        dev::ChangeDeviceStatusResponse {
            mac_address: r.mac_address.clone(),
            previous_status: previous,
            status: r.status.clone(),
        },
    )))
}
