//! Features on services: typed settings, the partner's defaults for unset ones, and the system
//! defaults below those; get, enable, modify, change status. Uses the shared paths in `entity`,
//! the codec in `xml` and `services` for the service a feature is on.

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::db::prov_features as f;
use super::entity::{self, not_terminated, now, parse_status, status_str, transition};
use super::services;
use super::xml::{from_xml, to_xml, NS_FTR};
use super::{Conn, Outcome, Problem};
use crate::generated::partner::Response;
use crate::generated::types::{cmn, ftr, svc, CONTENT_MODELS};
use crate::xs::DateTime;

/// The contract's code of a feature (`VOICEMAIL`, …), also the key of partner defaults.
pub fn feature_code(code: &ftr::FeatureCode) -> &'static str {
    match code {
        ftr::FeatureCode::Voicemail => "VOICEMAIL",
        ftr::FeatureCode::CallForwarding => "CALL_FORWARDING",
        ftr::FeatureCode::CallerId => "CALLER_ID",
        ftr::FeatureCode::CallWaiting => "CALL_WAITING",
        ftr::FeatureCode::DoNotDisturb => "DO_NOT_DISTURB",
    }
}

/// The settings element and schema type of each feature.
fn settings_element(code: &ftr::FeatureCode) -> (&'static str, &'static str) {
    match code {
        ftr::FeatureCode::Voicemail => ("Voicemail", "VoicemailSettings"),
        ftr::FeatureCode::CallForwarding => ("CallForwarding", "CallForwardingSettings"),
        ftr::FeatureCode::CallerId => ("CallerId", "CallerIdSettings"),
        ftr::FeatureCode::CallWaiting => ("CallWaiting", "CallWaitingSettings"),
        ftr::FeatureCode::DoNotDisturb => ("DoNotDisturb", "DoNotDisturbSettings"),
    }
}

const FEATURE_CODES: [ftr::FeatureCode; 5] = [
    ftr::FeatureCode::Voicemail,
    ftr::FeatureCode::CallForwarding,
    ftr::FeatureCode::CallerId,
    ftr::FeatureCode::CallWaiting,
    ftr::FeatureCode::DoNotDisturb,
];

/// A partner's defaults, one typed settings value per feature.
#[derive(Debug, Default)]
pub struct PartnerDefaults(BTreeMap<&'static str, ftr::FeatureSettings>);

/// Partner defaults that do not fit the contract.
#[derive(Debug, thiserror::Error)]
#[error("feature default {0}")]
pub struct DefaultsError(pub String);

impl PartnerDefaults {
    /// Reads the JSON stored at onboarding: `{"VOICEMAIL": {"MaxMessageSeconds": 120, …}, …}`,
    /// setting names as the schema's element names. Invalid entries are skipped with a warning
    /// (they were validated when stored: see [`validate_defaults`]).
    pub fn from_json(partner: &str, value: Option<&serde_json::Value>) -> PartnerDefaults {
        match value.map(parse_defaults) {
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                tracing::warn!(partner, error = %e, "ignoring the partner's feature defaults");
                PartnerDefaults::default()
            }
            None => PartnerDefaults::default(),
        }
    }

    fn get(&self, code: &ftr::FeatureCode) -> Option<&ftr::FeatureSettings> {
        self.0.get(feature_code(code))
    }
}

/// Checks feature defaults before they are stored: every key a feature code, every setting an
/// element of its settings type, every value valid for its type.
pub fn validate_defaults(value: &serde_json::Value) -> Result<(), DefaultsError> {
    parse_defaults(value).map(|_| ())
}

fn parse_defaults(value: &serde_json::Value) -> Result<PartnerDefaults, DefaultsError> {
    let object = value
        .as_object()
        .ok_or_else(|| DefaultsError("must be an object keyed by feature code".into()))?;
    let mut out = BTreeMap::new();
    for (code_text, settings) in object {
        let code = FEATURE_CODES
            .iter()
            .find(|c| feature_code(c) == code_text)
            .ok_or_else(|| DefaultsError(format!("{code_text:?} is not a feature code")))?;
        let settings = settings
            .as_object()
            .ok_or_else(|| DefaultsError(format!("{code_text}: must be an object of settings")))?;
        let (element, type_name) = settings_element(code);
        let model_key = format!("{NS_FTR} {type_name}");
        let model = CONTENT_MODELS
            .iter()
            .find(|(k, _)| *k == model_key)
            .map(|(_, m)| m)
            .ok_or_else(|| DefaultsError(format!("no content model for {type_name}")))?;
        for name in settings.keys() {
            if !model.children.iter().any(|c| c.name == name) {
                return Err(DefaultsError(format!(
                    "{code_text}: {name:?} is not a setting of {element}"
                )));
            }
        }
        // Build the settings element in schema order and decode it strictly.
        let mut xml = format!(
            "<ftr:{element} xmlns:ftr=\"{NS_FTR}\" xmlns:cmn=\"urn:partnergate:partner:common:v1\">"
        );
        for child in model.children {
            let Some(v) = settings.get(child.name) else {
                continue;
            };
            let values: Vec<&serde_json::Value> = match v {
                serde_json::Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for v in values {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(DefaultsError(format!(
                            "{code_text}.{}: not a scalar",
                            child.name
                        )))
                    }
                };
                let escaped = text
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;");
                xml.push_str(&format!("<ftr:{0}>{escaped}</ftr:{0}>", child.name));
            }
        }
        xml.push_str(&format!("</ftr:{element}>"));
        let typed = match code {
            ftr::FeatureCode::Voicemail => {
                from_xml(&xml, NS_FTR).map(ftr::FeatureSettings::Voicemail)
            }
            ftr::FeatureCode::CallForwarding => {
                from_xml(&xml, NS_FTR).map(ftr::FeatureSettings::CallForwarding)
            }
            ftr::FeatureCode::CallerId => {
                from_xml(&xml, NS_FTR).map(ftr::FeatureSettings::CallerId)
            }
            ftr::FeatureCode::CallWaiting => {
                from_xml(&xml, NS_FTR).map(ftr::FeatureSettings::CallWaiting)
            }
            ftr::FeatureCode::DoNotDisturb => {
                from_xml(&xml, NS_FTR).map(ftr::FeatureSettings::DoNotDisturb)
            }
        }
        .map_err(|e| match e {
            Problem::Corrupt(m) => DefaultsError(format!("{code_text}: {m}")),
            other => DefaultsError(format!("{code_text}: {other}")),
        })?;
        out.insert(feature_code(code), typed);
    }
    Ok(PartnerDefaults(out))
}

/// The settings variant matches the feature code.
fn matches_code(settings: &ftr::FeatureSettings, code: &ftr::FeatureCode) -> bool {
    matches!(
        (settings, code),
        (
            ftr::FeatureSettings::Voicemail(_),
            ftr::FeatureCode::Voicemail
        ) | (
            ftr::FeatureSettings::CallForwarding(_),
            ftr::FeatureCode::CallForwarding
        ) | (
            ftr::FeatureSettings::CallerId(_),
            ftr::FeatureCode::CallerId
        ) | (
            ftr::FeatureSettings::CallWaiting(_),
            ftr::FeatureCode::CallWaiting
        ) | (
            ftr::FeatureSettings::DoNotDisturb(_),
            ftr::FeatureCode::DoNotDisturb
        )
    )
}

fn empty_settings(code: &ftr::FeatureCode) -> ftr::FeatureSettings {
    match code {
        ftr::FeatureCode::Voicemail => ftr::FeatureSettings::Voicemail(ftr::VoicemailSettings {
            pin: None,
            max_message_seconds: None,
            email_notification: None,
            notification_email: None,
        }),
        ftr::FeatureCode::CallForwarding => {
            ftr::FeatureSettings::CallForwarding(ftr::CallForwardingSettings {
                forward_to: None,
                condition: None,
                ring_seconds: None,
            })
        }
        ftr::FeatureCode::CallerId => ftr::FeatureSettings::CallerId(ftr::CallerIdSettings {
            presentation: None,
            display_name: None,
        }),
        ftr::FeatureCode::CallWaiting => {
            ftr::FeatureSettings::CallWaiting(ftr::CallWaitingSettings { tone_enabled: None })
        }
        ftr::FeatureCode::DoNotDisturb => {
            ftr::FeatureSettings::DoNotDisturb(ftr::DoNotDisturbSettings {
                allow_list: Vec::new(),
            })
        }
    }
}

/// The system defaults, below the partner's.
fn system_defaults(code: &ftr::FeatureCode) -> ftr::FeatureSettings {
    match code {
        ftr::FeatureCode::Voicemail => ftr::FeatureSettings::Voicemail(ftr::VoicemailSettings {
            pin: None,
            max_message_seconds: ftr::MessageSeconds::new(180).ok(),
            email_notification: Some(false),
            notification_email: None,
        }),
        ftr::FeatureCode::CallForwarding => {
            ftr::FeatureSettings::CallForwarding(ftr::CallForwardingSettings {
                forward_to: None,
                condition: Some(ftr::ForwardingCondition::NoAnswer),
                ring_seconds: ftr::RingSeconds::new(20).ok(),
            })
        }
        ftr::FeatureCode::CallerId => ftr::FeatureSettings::CallerId(ftr::CallerIdSettings {
            presentation: Some(ftr::CallerIdPresentation::Allowed),
            display_name: None,
        }),
        ftr::FeatureCode::CallWaiting => {
            ftr::FeatureSettings::CallWaiting(ftr::CallWaitingSettings {
                tone_enabled: Some(true),
            })
        }
        ftr::FeatureCode::DoNotDisturb => {
            ftr::FeatureSettings::DoNotDisturb(ftr::DoNotDisturbSettings {
                allow_list: Vec::new(),
            })
        }
    }
}

/// One setting kind's three layers, and the names of the settings that came from a default.
struct Layers<'a, T> {
    explicit: &'a T,
    partner: &'a T,
    system: &'a T,
    used: &'a mut Vec<String>,
}

impl<'a, T> Layers<'a, T> {
    fn new(explicit: &'a T, partner: &'a T, system: &'a T, used: &'a mut Vec<String>) -> Self {
        Layers {
            explicit,
            partner,
            system,
            used,
        }
    }

    /// The setting `name` (read by `field`): the explicit value if set, else the partner's,
    /// else the system's; `name` is recorded when a default was used.
    fn pick<V: Clone>(&mut self, name: &str, field: impl Fn(&T) -> &Option<V>) -> Option<V> {
        if let Some(v) = field(self.explicit) {
            return Some(v.clone());
        }
        let value = field(self.partner)
            .clone()
            .or_else(|| field(self.system).clone());
        if value.is_some() {
            self.used.push(name.to_string());
        }
        value
    }
}

/// Merges explicit settings over the partner's and the system's defaults. Returns the effective
/// settings and the names of the settings that came from a default.
pub fn effective(
    code: &ftr::FeatureCode,
    explicit: &ftr::FeatureSettings,
    defaults: &PartnerDefaults,
) -> (ftr::FeatureSettings, Vec<String>) {
    use ftr::FeatureSettings as S;
    // No partner default for the feature reads as one that sets nothing.
    let partner = defaults
        .get(code)
        .filter(|p| matches_code(p, code))
        .cloned()
        .unwrap_or_else(|| empty_settings(code));
    let system = system_defaults(code);
    let mut used = Vec::new();
    let merged = match (explicit, &partner, &system) {
        (S::Voicemail(explicit), S::Voicemail(partner), S::Voicemail(system)) => {
            let mut l = Layers::new(explicit, partner, system, &mut used);
            S::Voicemail(ftr::VoicemailSettings {
                pin: l.pick("Pin", |s| &s.pin),
                max_message_seconds: l.pick("MaxMessageSeconds", |s| &s.max_message_seconds),
                email_notification: l.pick("EmailNotification", |s| &s.email_notification),
                notification_email: l.pick("NotificationEmail", |s| &s.notification_email),
            })
        }
        (S::CallForwarding(explicit), S::CallForwarding(partner), S::CallForwarding(system)) => {
            let mut l = Layers::new(explicit, partner, system, &mut used);
            S::CallForwarding(ftr::CallForwardingSettings {
                forward_to: l.pick("ForwardTo", |s| &s.forward_to),
                condition: l.pick("Condition", |s| &s.condition),
                ring_seconds: l.pick("RingSeconds", |s| &s.ring_seconds),
            })
        }
        (S::CallerId(explicit), S::CallerId(partner), S::CallerId(system)) => {
            let mut l = Layers::new(explicit, partner, system, &mut used);
            S::CallerId(ftr::CallerIdSettings {
                presentation: l.pick("Presentation", |s| &s.presentation),
                display_name: l.pick("DisplayName", |s| &s.display_name),
            })
        }
        (S::CallWaiting(explicit), S::CallWaiting(partner), S::CallWaiting(system)) => {
            let mut l = Layers::new(explicit, partner, system, &mut used);
            S::CallWaiting(ftr::CallWaitingSettings {
                tone_enabled: l.pick("ToneEnabled", |s| &s.tone_enabled),
            })
        }
        (S::DoNotDisturb(e), S::DoNotDisturb(p), S::DoNotDisturb(_)) => {
            let allow_list = if !e.allow_list.is_empty() {
                e.allow_list.clone()
            } else if !p.allow_list.is_empty() {
                used.push("AllowList".into());
                p.allow_list.clone()
            } else {
                Vec::new()
            };
            S::DoNotDisturb(ftr::DoNotDisturbSettings { allow_list })
        }
        // `explicit` always matches `code` (checked before storing).
        (other, _, _) => other.clone(),
    };
    (merged, used)
}

/// Explicit settings: `new`'s set fields over `old`'s.
fn overlay(old: &ftr::FeatureSettings, new: &ftr::FeatureSettings) -> ftr::FeatureSettings {
    use ftr::FeatureSettings as S;
    fn or<T: Clone>(n: &Option<T>, o: &Option<T>) -> Option<T> {
        n.clone().or_else(|| o.clone())
    }
    match (old, new) {
        (S::Voicemail(o), S::Voicemail(n)) => S::Voicemail(ftr::VoicemailSettings {
            pin: or(&n.pin, &o.pin),
            max_message_seconds: or(&n.max_message_seconds, &o.max_message_seconds),
            email_notification: or(&n.email_notification, &o.email_notification),
            notification_email: or(&n.notification_email, &o.notification_email),
        }),
        (S::CallForwarding(o), S::CallForwarding(n)) => {
            S::CallForwarding(ftr::CallForwardingSettings {
                forward_to: or(&n.forward_to, &o.forward_to),
                condition: or(&n.condition, &o.condition),
                ring_seconds: or(&n.ring_seconds, &o.ring_seconds),
            })
        }
        (S::CallerId(o), S::CallerId(n)) => S::CallerId(ftr::CallerIdSettings {
            presentation: or(&n.presentation, &o.presentation),
            display_name: or(&n.display_name, &o.display_name),
        }),
        (S::CallWaiting(o), S::CallWaiting(n)) => S::CallWaiting(ftr::CallWaitingSettings {
            tone_enabled: or(&n.tone_enabled, &o.tone_enabled),
        }),
        (S::DoNotDisturb(o), S::DoNotDisturb(n)) => S::DoNotDisturb(ftr::DoNotDisturbSettings {
            allow_list: if n.allow_list.is_empty() {
                o.allow_list.clone()
            } else {
                n.allow_list.clone()
            },
        }),
        (_, n) => n.clone(),
    }
}

fn check_settings(code: &ftr::FeatureCode, settings: &ftr::FeatureSettings) -> Result<(), Problem> {
    if matches_code(settings, code) {
        Ok(())
    } else {
        Err(Problem::Conflict {
            reason: cmn::ConflictReason::FeatureSettingsMismatch,
            message: format!("the settings are not {} settings", feature_code(code)),
        })
    }
}

/// Features exist on voice services only.
fn check_service_type(service: &svc::Service, path: &str) -> Result<(), Problem> {
    if matches!(
        service.service_type,
        svc::ServiceType::Voip | svc::ServiceType::SipTrunk
    ) {
        Ok(())
    } else {
        Err(Problem::Invalid {
            path: path.to_string(),
            rule: "service-type",
            message: "features are available on VOIP and SIP_TRUNK services only".into(),
        })
    }
}

/// The partner a feature operation is for, with its feature defaults.
pub(crate) struct Caller<'a> {
    /// The partner id.
    pub(crate) partner: &'a str,
    /// Its feature defaults.
    pub(crate) defaults: &'a PartnerDefaults,
}

/// One feature of one service, as an operation names it, for a caller.
struct Feature<'a> {
    who: &'a Caller<'a>,
    service_id: &'a cmn::ServiceId,
    code: &'a ftr::FeatureCode,
}

impl<'a> Feature<'a> {
    fn new(
        who: &'a Caller<'a>,
        service_id: &'a cmn::ServiceId,
        code: &'a ftr::FeatureCode,
    ) -> Self {
        Feature {
            who,
            service_id,
            code,
        }
    }

    /// The feature as the contract returns it: the effective settings, and the names of
    /// those that came from a default.
    fn instance(
        &self,
        status: cmn::Status,
        explicit: &ftr::FeatureSettings,
        updated_at: i64,
    ) -> ftr::FeatureInstance {
        let (settings, used) = effective(self.code, explicit, self.who.defaults);
        ftr::FeatureInstance {
            service_id: self.service_id.clone(),
            feature: self.code.clone(),
            status,
            settings,
            defaulted_setting: used
                .into_iter()
                .filter_map(|n| ftr::SettingName::new(n).ok())
                .collect(),
            updated_at: DateTime::from_unix(updated_at),
        }
    }

    /// The feature on one of the partner's services (another partner's service is `NotFound`):
    /// as returned, with its row id and its explicit settings.
    fn load(
        &self,
        c: &mut Conn,
    ) -> Result<(ftr::FeatureInstance, i64, ftr::FeatureSettings), Problem> {
        let partner = self.who.partner;
        services::load(c, partner, self.service_id)?;
        let code = feature_code(self.code);
        let row: Option<(i64, String, String, i64)> = f::table
            .filter(f::service_id.eq(self.service_id.as_str()))
            .filter(f::partner_id.eq(partner))
            .filter(f::feature.eq(code))
            .select((f::id, f::status, f::settings, f::updated_at))
            .first(c)
            .optional()?;
        let (id, status, xml, updated) = row.ok_or_else(|| Problem::NotFound {
            entity: cmn::NotFoundEntity::Feature,
            what: "feature",
            key: format!("{code} on {}", self.service_id.as_str()),
        })?;
        let explicit: ftr::FeatureSettings = from_xml(&xml, NS_FTR)?;
        let status = parse_status(&status)?;
        Ok((self.instance(status, &explicit, updated), id, explicit))
    }
}

/// GetFeature.
pub(crate) fn get(c: &mut Conn, who: &Caller, r: &ftr::GetFeature) -> Outcome {
    let feature = Feature::new(who, &r.service_id, &r.feature);
    let (feature_instance, _, _) = feature.load(c)?;
    Ok(Response::GetFeature(Box::new(ftr::GetFeatureResponse {
        feature_instance,
    })))
}

/// EnableFeature: on a live voice service of the partner; enabled already → `Conflict`, a
/// terminated feature is enabled again.
pub(crate) fn enable(c: &mut Conn, who: &Caller, r: &ftr::EnableFeature) -> Outcome {
    let partner = who.partner;
    let service = services::load_live(c, partner, &r.service_id)?;
    check_service_type(&service, "/EnableFeature/ServiceId")?;
    let explicit = r
        .settings
        .clone()
        .unwrap_or_else(|| empty_settings(&r.feature));
    check_settings(&r.feature, &explicit)?;
    let code = feature_code(&r.feature);
    let existing: Option<(String, i64)> = f::table
        .filter(f::service_id.eq(r.service_id.as_str()))
        .filter(f::feature.eq(code))
        .select((f::status, f::id))
        .first(c)
        .optional()?;
    let at = now();
    let xml = to_xml(&explicit, "ftr:FeatureSettings")?;
    let columns = (
        f::status.eq("ACTIVE"),
        f::settings.eq(&xml),
        f::updated_at.eq(at),
    );
    let taken = || Problem::Conflict {
        reason: cmn::ConflictReason::Duplicate,
        message: format!("{code} is already enabled on {}", r.service_id.as_str()),
    };
    entity::add_unique(c, existing, taken, |c, reuse| match reuse {
        Some(id) => diesel::update(f::table.filter(f::id.eq(id)))
            .set(columns)
            .execute(c),
        None => diesel::insert_into(f::table)
            .values((
                f::service_id.eq(r.service_id.as_str()),
                f::partner_id.eq(partner),
                f::feature.eq(code),
                f::created_at.eq(at),
                columns,
            ))
            .execute(c),
    })?;
    let feature = Feature::new(who, &r.service_id, &r.feature);
    let feature_instance = feature.instance(cmn::Status::Active, &explicit, at);
    Ok(Response::EnableFeature(Box::new(
        ftr::EnableFeatureResponse { feature_instance },
    )))
}

/// ModifyFeature: the given settings replace the explicit ones they set.
pub(crate) fn modify(c: &mut Conn, who: &Caller, r: &ftr::ModifyFeature) -> Outcome {
    let feature = Feature::new(who, &r.service_id, &r.feature);
    let (current, id, explicit) = feature.load(c)?;
    not_terminated(&current.status, "feature", feature_code(&r.feature))?;
    check_settings(&r.feature, &r.settings)?;
    let merged = overlay(&explicit, &r.settings);
    let at = now();
    diesel::update(f::table.filter(f::id.eq(id)))
        .set((
            f::settings.eq(to_xml(&merged, "ftr:FeatureSettings")?),
            f::updated_at.eq(at),
        ))
        .execute(c)?;
    let feature_instance = feature.instance(current.status, &merged, at);
    Ok(Response::ModifyFeature(Box::new(
        ftr::ModifyFeatureResponse { feature_instance },
    )))
}

/// ChangeFeatureStatus.
pub(crate) fn change_status(c: &mut Conn, who: &Caller, r: &ftr::ChangeFeatureStatus) -> Outcome {
    let feature = Feature::new(who, &r.service_id, &r.feature);
    let (current, id, _) = feature.load(c)?;
    transition(&current.status, &r.status)?;
    diesel::update(f::table.filter(f::id.eq(id)))
        .set((f::status.eq(status_str(&r.status)), f::updated_at.eq(now())))
        .execute(c)?;
    Ok(Response::ChangeFeatureStatus(Box::new(
        ftr::ChangeFeatureStatusResponse {
            service_id: r.service_id.clone(),
            feature: r.feature.clone(),
            previous_status: current.status,
            status: r.status.clone(),
        },
    )))
}
