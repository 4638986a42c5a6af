//! Administrative commands' common path: a request checked, run in one transaction as the CLI
//! user (the admin role) or, with `--as` / `PARTNERGATE_OPERATOR_TOKEN`, as the operator
//! holding that API token (with its role), and printed as text or (`--json`) the admin API's
//! JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use partnergate::admin::{self, Actor, Admin, AdminError, Request, Rules, Via};

use super::args::{Common, Output};
use super::setup::{load_config, with_store};

/// The flag that sets an input field, for messages of flag-based commands.
fn flag_of(field: &str) -> Option<&'static str> {
    Some(match field {
        "id" => "--id",
        "name" => "--name",
        "country" => "--country",
        "group" => "--group",
        "allow" => "--allow",
        "grants" => "--grant",
        "feature_defaults" => "--feature-default",
        "contact" => "--contact",
        "billing_rate" => "--billing-rate",
        "callback_url" => "--callback-url",
        "callback_ca_pem" => "--callback-ca-file",
        "reason" => "--reason",
        "rate" => "--rate/--burst",
        "aggregate" => "--aggregate-rate/--aggregate-burst",
        "limit" => "--limit",
        "role" => "--role",
        "label" => "--label",
        "status" => "--status",
        _ => return None,
    })
}

/// Runs one administrative request as the CLI user: checked before the database is opened,
/// then one transaction; prints text or (`--json`) the admin API's JSON.
pub fn administer(
    request: Request,
    common: &Common,
    output: &Output,
    flags: bool,
    out: &mut String,
) -> Result<(), String> {
    let config = load_config(common, BTreeMap::new())?;
    let rules = Rules {
        allow_http_callbacks: config.callback.allow_http,
        callback_allowed_networks: config.callback.allowed_networks.clone(),
    };
    let message = |e: AdminError| match e.field().and_then(flag_of) {
        Some(flag) if flags => format!("{flag}: {e}"),
        _ => e.to_string(),
    };
    let checked = request.check(&rules).map_err(message)?;
    let is_change = checked.is_change();
    let reply = with_store(&config.database_url, |store| {
        let admin = Admin::new(store);
        let actor = match output.as_token.as_deref() {
            None => Actor::cli(),
            Some(token) => match admin.operator_by_token(token.trim()).map_err(message)? {
                Some(operator) => Actor::operator(&operator, Via::Cli),
                None => {
                    return Err(
                        "the operator token (--as / PARTNERGATE_OPERATOR_TOKEN) is not \
                                valid: unknown, revoked, or its operator is disabled"
                            .into(),
                    )
                }
            },
        };
        admin.run(checked, &actor).map_err(message)
    })?;
    if output.json {
        let text = serde_json::to_string(&reply.view).map_err(|e| e.to_string())?;
        let _ = writeln!(out, "{text}");
    } else {
        out.push_str(&admin::text::render(&reply, is_change));
    }
    Ok(())
}
