//! `partner create/list/show/update/suspend/reinstate/offboard`: the flags, and the admin
//! request each one makes.

use std::path::PathBuf;

use clap::Subcommand;

use partnergate::admin::{ClientCaInput, CreatePartner, Request, StatusInput, UpdatePartner};

use super::admin::administer;
use super::args::AdminArgs;

#[derive(Subcommand, Debug)]
pub enum PartnerAction {
    /// List every partner.
    List,
    /// Show a partner: details, allowlist, grants, keys (never a key itself).
    Show {
        /// Partner id.
        partner: String,
    },
    /// Create a partner with its two keys (shown once, stored hashed), allowlist and grants.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Partner id (default: PARTNER-0001, -0002, …).
        #[arg(long)]
        id: Option<String>,
        /// ISO 3166-1 alpha-2 country code.
        #[arg(long)]
        country: Option<String>,
        /// Throttle group (must exist).
        #[arg(long)]
        group: Option<String>,
        /// Network the partner's servers call from (IP or CIDR); repeat for more.
        #[arg(long = "allow", value_name = "CIDR", required = true)]
        allow: Vec<String>,
        /// Permission: *, a domain wildcard (accounts.*) or an operation (accounts.create, or
        /// its WSDL name CreateAccount); repeat for more.
        #[arg(long = "grant", value_name = "OP", required = true)]
        grant: Vec<String>,
        /// Default for an unset feature setting, as FEATURE.Setting=VALUE (e.g.
        /// VOICEMAIL.MaxMessageSeconds=120, DO_NOT_DISTURB.AllowList=+4930123); repeat for more.
        #[arg(long = "feature-default", value_name = "FEATURE.SETTING=VALUE")]
        feature_default: Vec<String>,
    },
    /// Change a partner's details; --clear FIELD removes one.
    Update {
        /// Partner id.
        partner: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Contact (person, e-mail, phone), free text.
        #[arg(long)]
        contact: Option<String>,
        /// Billing rate: DECIMAL [CURRENCY[/UNIT]], e.g. "0.0125 EUR/min".
        #[arg(long)]
        billing_rate: Option<String>,
        /// ISO 3166-1 alpha-2 country code.
        #[arg(long)]
        country: Option<String>,
        /// Throttle group (must exist).
        #[arg(long)]
        group: Option<String>,
        /// Where the TSP's callbacks go (https://…).
        #[arg(long, value_name = "URL")]
        callback_url: Option<String>,
        /// PEM file with the CA certificate(s) of the partner's callback server.
        #[arg(long, value_name = "FILE")]
        callback_ca_file: Option<PathBuf>,
        /// Feature defaults as FEATURE.Setting=VALUE (repeat); they replace the stored ones.
        #[arg(long = "feature-default", value_name = "FEATURE.SETTING=VALUE")]
        feature_default: Vec<String>,
        /// PEM file with a client certificate (the partner's leaf) to register: its calls must
        /// then come over TLS with a registered certificate (or its CA's); repeat for more.
        #[arg(long = "client-cert-file", value_name = "FILE")]
        client_cert_file: Vec<PathBuf>,
        /// Remove a registered client certificate by its SHA-256 fingerprint; repeat for more.
        #[arg(long = "remove-client-cert", value_name = "SHA256")]
        remove_client_cert: Vec<String>,
        /// PEM file with the partner's CA: certificates it issued with --client-subject are
        /// accepted.
        #[arg(long, value_name = "FILE", requires = "client_subject")]
        client_ca_file: Option<PathBuf>,
        /// The subject the partner CA's certificates must have, e.g. "CN=bss.example, O=Example".
        #[arg(long, value_name = "DN", requires = "client_ca_file")]
        client_subject: Option<String>,
        /// Remove a field's value; repeat for more.
        #[arg(long, value_enum, value_name = "FIELD")]
        clear: Vec<ClearField>,
    },
    /// Suspend a partner: its calls are refused; keys and settings are kept.
    Suspend {
        /// Partner id.
        partner: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reinstate a suspended partner.
    Reinstate {
        /// Partner id.
        partner: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Offboard a partner for good: every key revoked, status offboarded, records kept.
    Offboard {
        /// Partner id.
        partner: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// A partner field `partner update --clear` can remove.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClearField {
    /// The contact.
    Contact,
    /// The billing rate.
    BillingRate,
    /// The country.
    Country,
    /// The group.
    Group,
    /// The callback URL.
    CallbackUrl,
    /// The callback CA.
    CallbackCa,
    /// The feature defaults.
    FeatureDefaults,
    /// The client CA and subject.
    ClientCa,
}

/// `partnergate partner …`; the create and update messages name the flag at fault.
pub fn run(args: AdminArgs<PartnerAction>, out: &mut String) -> Result<(), String> {
    let flags = matches!(
        args.action,
        PartnerAction::Create { .. } | PartnerAction::Update { .. }
    );
    administer(
        request(args.action)?,
        &args.common,
        &args.output,
        flags,
        out,
    )
}

/// `VOICEMAIL.MaxMessageSeconds=120` … → `{"VOICEMAIL": {"MaxMessageSeconds": "120"}}` (repeated
/// settings, such as AllowList, become lists); the admin service checks it against the contract.
fn feature_defaults(items: &[String]) -> Result<Option<serde_json::Value>, String> {
    if items.is_empty() {
        return Ok(None);
    }
    let mut object = serde_json::Map::new();
    for item in items {
        let (path, value) = item
            .split_once('=')
            .ok_or_else(|| format!("--feature-default {item:?}: expected FEATURE.SETTING=VALUE"))?;
        let (feature, setting) = path
            .split_once('.')
            .ok_or_else(|| format!("--feature-default {item:?}: expected FEATURE.SETTING=VALUE"))?;
        let entry = object
            .entry(feature.to_string())
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if let serde_json::Value::Object(settings) = entry {
            match settings.get_mut(setting) {
                Some(serde_json::Value::Array(list)) => list.push(value.into()),
                Some(single) => {
                    let first = single.take();
                    *single = serde_json::Value::Array(vec![first, value.into()]);
                }
                None => {
                    settings.insert(setting.to_string(), value.into());
                }
            }
        }
    }
    Ok(Some(serde_json::Value::Object(object)))
}

fn request(action: PartnerAction) -> Result<Request, String> {
    let status = |reason| StatusInput { reason };
    Ok(match action {
        PartnerAction::List => Request::ListPartners,
        PartnerAction::Show { partner } => Request::ShowPartner { partner },
        PartnerAction::Create {
            name,
            id,
            country,
            group,
            allow,
            grant,
            feature_default,
        } => Request::CreatePartner(CreatePartner {
            id,
            name,
            country,
            group,
            allow,
            grants: grant,
            feature_defaults: feature_defaults(&feature_default)?,
        }),
        PartnerAction::Update {
            partner,
            name,
            contact,
            billing_rate,
            country,
            group,
            callback_url,
            callback_ca_file,
            feature_default,
            client_cert_file,
            remove_client_cert,
            client_ca_file,
            client_subject,
            clear,
        } => {
            let read = |flag: &str, path: &PathBuf| {
                std::fs::read_to_string(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
            };
            let callback_ca_pem = callback_ca_file
                .as_ref()
                .map(|p| read("--callback-ca-file", p))
                .transpose()?;
            let add_client_certs = client_cert_file
                .iter()
                .map(|p| read("--client-cert-file", p))
                .collect::<Result<Vec<_>, _>>()?;
            let client_ca = match client_ca_file.as_ref().zip(client_subject) {
                Some((path, subject)) => Some(ClientCaInput {
                    ca_pem: read("--client-ca-file", path)?,
                    subject,
                }),
                None => None,
            };
            let feature_defaults = feature_defaults(&feature_default)?;
            // A field is set, cleared (--clear) or left alone; not two of these.
            let field = |value: Option<_>, which: ClearField, flag: &str| {
                let cleared = clear.contains(&which);
                match (value, cleared) {
                    (Some(_), true) => Err(format!(
                        "{flag} and --clear {} contradict each other",
                        clap::ValueEnum::to_possible_value(&which)
                            .map_or_else(String::new, |v| v.get_name().to_owned())
                    )),
                    (Some(v), false) => Ok(Some(Some(v))),
                    (None, true) => Ok(Some(None)),
                    (None, false) => Ok(None),
                }
            };
            Request::UpdatePartner {
                partner,
                update: UpdatePartner {
                    name,
                    contact: field(contact, ClearField::Contact, "--contact")?,
                    billing_rate: field(billing_rate, ClearField::BillingRate, "--billing-rate")?,
                    country: field(country, ClearField::Country, "--country")?,
                    group: field(group, ClearField::Group, "--group")?,
                    callback_url: field(callback_url, ClearField::CallbackUrl, "--callback-url")?,
                    callback_ca_pem: field(
                        callback_ca_pem,
                        ClearField::CallbackCa,
                        "--callback-ca-file",
                    )?,
                    add_client_certs,
                    remove_client_certs: remove_client_cert,
                    client_ca: match (client_ca, clear.contains(&ClearField::ClientCa)) {
                        (Some(_), true) => {
                            return Err(
                                "--client-ca-file and --clear client-ca contradict each other"
                                    .into(),
                            )
                        }
                        (Some(v), false) => Some(Some(v)),
                        (None, true) => Some(None),
                        (None, false) => None,
                    },
                    feature_defaults: match (
                        feature_defaults,
                        clear.contains(&ClearField::FeatureDefaults),
                    ) {
                        (Some(_), true) => return Err(
                            "--feature-default and --clear feature-defaults contradict each other"
                                .into(),
                        ),
                        (Some(v), false) => Some(Some(v)),
                        (None, true) => Some(None),
                        (None, false) => None,
                    },
                },
            }
        }
        PartnerAction::Suspend { partner, reason } => Request::Suspend {
            partner,
            input: status(reason),
        },
        PartnerAction::Reinstate { partner, reason } => Request::Reinstate {
            partner,
            input: status(reason),
        },
        PartnerAction::Offboard { partner, reason } => Request::Offboard {
            partner,
            input: status(reason),
        },
    })
}
