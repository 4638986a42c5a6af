//! Naming rules of the code generator (std only, so `tests/codegen_names.rs` runs them under
//! `cargo test`): permission names and domains from the contract's names, field ~ element names.

#![allow(
    clippy::panic,
    reason = "build-time input is our own contract: a broken one must stop the build with a message"
)]

/// `accounts` from `urn:partnergate:partner:accounts:v1`; `callback` from `urn:partnergate:callback:v1`.
pub(crate) fn domain_of(ns: &str) -> String {
    let parts: Vec<&str> = ns.split(':').collect();
    parts
        .len()
        .checked_sub(2)
        .and_then(|i| parts.get(i))
        .unwrap_or_else(|| panic!("namespace {ns} has no domain segment"))
        .to_string()
}

/// `accounts.changeStatus` from (`accounts`, `ChangeAccountStatus`): the operation name without
/// the domain's noun, lower camel case. Callback operations keep their whole name.
pub(crate) fn permission_of(domain: &str, op: &str) -> String {
    let singular = domain.strip_suffix('s').unwrap_or(domain);
    let mut noun = singular.to_string();
    if let Some(first) = noun.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    let plural = format!("{noun}s");
    let verb = if op.contains(&plural) {
        op.replacen(&plural, "", 1)
    } else {
        op.replacen(&noun, "", 1)
    };
    let verb = if verb.is_empty() {
        op.to_string()
    } else {
        verb
    };
    let mut chars = verb.chars();
    let first = chars
        .next()
        .map(|c| c.to_ascii_lowercase())
        .unwrap_or_default();
    format!("{domain}.{first}{}", chars.as_str())
}

/// `street_2` and `Street2` are the same name.
pub(crate) fn same_name(field: &str, element: &str) -> bool {
    let norm = |s: &str| {
        s.trim_start_matches("r#")
            .chars()
            .filter(|c| *c != '_')
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    norm(field) == norm(element)
}
