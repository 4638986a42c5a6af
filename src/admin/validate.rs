//! Input validation of administrative requests: pure functions, no database. The rules the store
//! shares with onboarding (name, country, host bits, grants, group names) come from the store, so
//! onboarding and administration cannot drift apart.

use std::time::Duration;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

use super::{
    known_permissions, AdminError, ClientCaInput, CreatePartner, RateInput, Rules, StatusInput,
    UpdateGroup, UpdatePartner, MAX_OVERLAP,
};
use crate::generated::partner::Operation;
use crate::secret::KeyKind;
use crate::store::{self, GroupChanges, NewPartner, PartnerChanges, Rate, StoreError};

/// Longest contact text, in characters.
const MAX_CONTACT_CHARS: usize = 500;
/// Longest audit reason, in characters.
const MAX_REASON_CHARS: usize = 500;
/// Longest callback URL, in bytes.
const MAX_URL_BYTES: usize = 2048;
/// Largest callback CA bundle (PEM), in bytes.
const MAX_PEM_BYTES: usize = 32 * 1024;

fn invalid(field: &'static str, reason: impl Into<String>) -> AdminError {
    AdminError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// A store validation error, under the API's field name.
fn as_field(field: &'static str, e: StoreError) -> AdminError {
    match e {
        StoreError::Invalid { reason, .. } => invalid(field, reason),
        other => AdminError::from(other),
    }
}

/// Free text: 1..=`max` characters, no control characters, no surrounding whitespace.
pub(super) fn text(field: &'static str, value: &str, max: usize) -> Result<(), AdminError> {
    let chars = value.chars().count();
    if chars == 0 || chars > max {
        return Err(invalid(
            field,
            format!("must be 1..{max} characters, not {chars}"),
        ));
    }
    if value.trim() != value || value.chars().any(char::is_control) {
        return Err(invalid(
            field,
            "no leading/trailing whitespace or control characters",
        ));
    }
    Ok(())
}

/// An IP address (a /32 or /128) or a CIDR without host bits.
pub(super) fn net(field: &'static str, s: &str) -> Result<ipnet::IpNet, AdminError> {
    if let Ok(net) = s.parse::<ipnet::IpNet>() {
        store::check_net(field, &net).map_err(|e| as_field(field, e))?;
        return Ok(net);
    }
    s.parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| invalid(field, format!("{s:?} is not an IP address or CIDR")))
}

/// A grant: `*`, `domain.*`, a permission (`accounts.create`) or an operation's WSDL name
/// (`CreateAccount`, stored as its permission).
pub(super) fn permission(field: &'static str, s: &str) -> Result<String, AdminError> {
    let permission =
        Operation::from_name(s).map_or_else(|| s.to_owned(), |op| op.permission().to_owned());
    store::check_grant(&permission, &known_permissions()).map_err(|e| match e {
        StoreError::Invalid { reason, .. } => invalid(
            field,
            format!("{reason} (or its WSDL operation name such as CreateAccount; see `partnergate operations`)"),
        ),
        other => AdminError::from(other),
    })?;
    Ok(permission)
}

/// A group name.
pub(super) fn group_name(field: &'static str, name: &str) -> Result<(), AdminError> {
    if store::valid_group_name(name) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{name:?} does not match [A-Za-z0-9][A-Za-z0-9._-]{{0,63}}"),
        ))
    }
}

/// A rate: both numbers 1..=2147483647.
pub(super) fn rate(field: &'static str, r: RateInput) -> Result<Rate, AdminError> {
    let max = u64::try_from(i32::MAX).unwrap_or(u64::MAX);
    let part = |what: &str, v: u64| {
        if v == 0 || v > max {
            Err(invalid(field, format!("{what} must be 1..{max}, not {v}")))
        } else {
            u32::try_from(v).map_err(|_| invalid(field, format!("{what} is too large")))
        }
    };
    let per_second = part("per_second", r.per_second)?;
    let burst = part("burst", r.burst)?;
    Rate::new(per_second, burst).ok_or_else(|| invalid(field, "must be positive"))
}

/// `partner` or `callback`.
pub(super) fn key_kind(s: &str) -> Result<KeyKind, AdminError> {
    KeyKind::from_db(s).ok_or_else(|| {
        invalid(
            "kind",
            format!("{s:?} is not a key kind: use partner or callback"),
        )
    })
}

/// A rotation overlap: a duration up to [`MAX_OVERLAP`].
pub(super) fn overlap(s: &str) -> Result<Duration, AdminError> {
    let d = parse_duration(s).map_err(|e| invalid("overlap", e))?;
    if d > MAX_OVERLAP {
        return Err(invalid(
            "overlap",
            format!(
                "{s:?} is longer than {} days",
                MAX_OVERLAP.as_secs() / 86_400
            ),
        ));
    }
    Ok(d)
}

/// A duration as `0` or number-unit pairs with units `s`, `m`, `h`, `d`: `90s`, `15m`, `24h`,
/// `7d`, `1h30m`. A bare number other than 0 is refused (seconds or hours?).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bad = || format!("{s:?} is not a duration: use e.g. 0, 90s, 15m, 24h, 7d or 1h30m");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        if digits.is_empty() || digits.len() > 9 {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// An optional reason for a status change.
pub(super) fn reason(input: StatusInput) -> Result<Option<String>, AdminError> {
    if let Some(r) = &input.reason {
        text("reason", r, MAX_REASON_CHARS)?;
    }
    Ok(input.reason)
}

/// `DECIMAL [CUR[/UNIT]]`: up to 12 integer and 6 fraction digits, an ISO 4217 code, a
/// lowercase unit (`0.0125`, `0.0125 EUR`, `0.0125 EUR/min`).
fn billing_rate(s: &str) -> Result<(), AdminError> {
    let bad = || {
        invalid(
            "billing_rate",
            format!(
                "{s:?} is not DECIMAL [CURRENCY[/UNIT]], e.g. 0.0125, 0.0125 EUR or 0.0125 EUR/min"
            ),
        )
    };
    let (number, rest) = match s.split_once(' ') {
        Some((n, r)) => (n, Some(r)),
        None => (s, None),
    };
    let (int, frac) = match number.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (number, None),
    };
    let digits = |t: &str, max: usize| {
        !t.is_empty() && t.len() <= max && t.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(int, 12) || frac.is_some_and(|f| !digits(f, 6)) {
        return Err(bad());
    }
    if let Some(rest) = rest {
        let (currency, unit) = match rest.split_once('/') {
            Some((c, u)) => (c, Some(u)),
            None => (rest, None),
        };
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(bad());
        }
        if unit.is_some_and(|u| {
            u.is_empty() || u.len() > 16 || !u.bytes().all(|b| b.is_ascii_lowercase())
        }) {
            return Err(bad());
        }
    }
    Ok(())
}

/// `https://host[:port]/path` (or `http://` when the deployment allows it), without
/// credentials.
pub(super) fn callback_url(s: &str, rules: &Rules) -> Result<(), AdminError> {
    let field = "callback_url";
    if s.len() > MAX_URL_BYTES {
        return Err(invalid(field, format!("longer than {MAX_URL_BYTES} bytes")));
    }
    if s.starts_with("http://") && !rules.allow_http_callbacks {
        return Err(invalid(
            field,
            format!("{s:?} is not https:// (http:// only where callback.allow_http = true)"),
        ));
    }
    if !s.starts_with("https://") && !s.starts_with("http://") {
        return Err(invalid(
            field,
            format!("{s:?} is not an absolute https:// URL"),
        ));
    }
    let uri: http::Uri = s
        .parse()
        .map_err(|e| invalid(field, format!("{s:?} is not a URL: {e}")))?;
    let authority = uri
        .authority()
        .ok_or_else(|| invalid(field, format!("{s:?} has no host")))?;
    if authority.as_str().contains('@') {
        return Err(invalid(
            field,
            "must not contain credentials (user:password@)",
        ));
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(invalid(field, format!("{s:?} has no host")));
    }
    // An IP literal is judged now (the relay judges resolved names again when it connects).
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<std::net::IpAddr>() {
        if let Some(why) = crate::callback::refused_target(ip, &rules.callback_allowed_networks) {
            return Err(invalid(
                field,
                format!(
                    "{ip} is a {why} address: callbacks go to the partner's public systems \
                     (internal networks only where listed in callback.allowed_networks)"
                ),
            ));
        }
    } else if host
        .rsplit('.')
        .find(|label| !label.is_empty())
        .is_some_and(|last| {
            last.bytes().all(|b| b.is_ascii_digit())
                || last.len() > 1 && last[..2].eq_ignore_ascii_case("0x")
        })
    {
        // `2130706433`, `127.1`, `0x7f.1`: resolvers read these as IPv4 addresses; no DNS
        // name ends in a number.
        return Err(invalid(
            field,
            format!("{host:?} is neither a DNS name nor a dotted-quad IPv4 address"),
        ));
    }
    Ok(())
}

/// One or more PEM certificates that parse as trust anchors (what the callback client loads).
fn callback_ca_pem(s: &str) -> Result<(), AdminError> {
    let field = "callback_ca_pem";
    if s.len() > MAX_PEM_BYTES {
        return Err(invalid(field, format!("larger than {MAX_PEM_BYTES} bytes")));
    }
    let mut roots = rustls::RootCertStore::empty();
    let mut count = 0usize;
    for cert in CertificateDer::pem_slice_iter(s.as_bytes()) {
        let cert = cert.map_err(|e| invalid(field, format!("not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| invalid(field, format!("certificate {}: {e}", count + 1)))?;
        count += 1;
    }
    if count == 0 {
        return Err(invalid(
            field,
            "no certificate found (expected -----BEGIN CERTIFICATE----- blocks)",
        ));
    }
    Ok(())
}

/// A client certificate to register: one leaf certificate, PEM (`field`: where it came from,
/// `add_client_certs` of a partner update or the `client_certificate` of an enrollment).
pub(super) fn client_cert(
    field: &'static str,
    pem: &str,
) -> Result<store::NewClientCert, AdminError> {
    if pem.len() > MAX_PEM_BYTES {
        return Err(invalid(field, format!("larger than {MAX_PEM_BYTES} bytes")));
    }
    let (der, info) =
        crate::certificate::single_leaf(pem).map_err(|e| invalid(field, e.to_string()))?;
    Ok(store::NewClientCert {
        der: der.to_vec(),
        info,
    })
}

/// A client CA: certificates that are trust anchors, and a subject that reads.
fn client_ca(ca: ClientCaInput) -> Result<(String, String), AdminError> {
    if ca.ca_pem.len() > MAX_PEM_BYTES {
        return Err(invalid(
            "client_ca.ca_pem",
            format!("larger than {MAX_PEM_BYTES} bytes"),
        ));
    }
    crate::certificate::ClientCa::new(&ca.ca_pem, &ca.subject).map_err(|e| match e {
        crate::certificate::CertError::BadSubject(_) => invalid("client_ca.subject", e.to_string()),
        _ => invalid("client_ca.ca_pem", e.to_string()),
    })?;
    Ok((ca.ca_pem, ca.subject.trim().to_string()))
}

/// Feature defaults: a JSON object the contract accepts.
fn feature_defaults(v: &serde_json::Value) -> Result<(), AdminError> {
    if !v.is_object() {
        return Err(invalid(
            "feature_defaults",
            "must be a JSON object keyed by feature code",
        ));
    }
    crate::provision::features::validate_defaults(v)
        .map_err(|e| invalid("feature_defaults", e.to_string()))
}

/// `partner create`.
pub(super) fn new_partner(c: CreatePartner) -> Result<NewPartner, AdminError> {
    if let Some(id) = &c.id {
        if !store::valid_partner_id(id) {
            return Err(invalid(
                "id",
                format!("{id:?} does not match [A-Z0-9][A-Z0-9-]{{2,31}}"),
            ));
        }
    }
    store::check_name(&c.name).map_err(|e| as_field("name", e))?;
    if let Some(country) = &c.country {
        store::check_country(country).map_err(|e| as_field("country", e))?;
    }
    if let Some(g) = &c.group {
        group_name("group", g)?;
    }
    if c.allow.is_empty() {
        return Err(invalid("allow", "at least one network is required"));
    }
    let allow = c
        .allow
        .iter()
        .map(|a| net("allow", a))
        .collect::<Result<Vec<_>, _>>()?;
    if c.grants.is_empty() {
        return Err(invalid("grants", "at least one permission is required"));
    }
    let grants = c
        .grants
        .iter()
        .map(|g| permission("grants", g))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(v) = &c.feature_defaults {
        feature_defaults(v)?;
    }
    let new = NewPartner {
        partner_id: c.id,
        name: c.name,
        country: c.country,
        group: c.group,
        allow,
        grants,
        key_ttl: None,
        feature_defaults: c.feature_defaults,
    };
    new.check(&known_permissions())?;
    Ok(new)
}

/// `partner update`.
pub(super) fn partner_changes(
    u: UpdatePartner,
    rules: &Rules,
) -> Result<PartnerChanges, AdminError> {
    if let Some(name) = &u.name {
        store::check_name(name).map_err(|e| as_field("name", e))?;
    }
    if let Some(Some(v)) = &u.contact {
        text("contact", v, MAX_CONTACT_CHARS)?;
    }
    if let Some(Some(v)) = &u.billing_rate {
        billing_rate(v)?;
    }
    if let Some(Some(v)) = &u.country {
        store::check_country(v).map_err(|e| as_field("country", e))?;
    }
    if let Some(Some(v)) = &u.group {
        group_name("group", v)?;
    }
    if let Some(Some(v)) = &u.callback_url {
        callback_url(v, rules)?;
    }
    if let Some(Some(v)) = &u.callback_ca_pem {
        callback_ca_pem(v)?;
    }
    if let Some(Some(v)) = &u.feature_defaults {
        feature_defaults(v)?;
    }
    let add_client_certs = u
        .add_client_certs
        .iter()
        .map(|pem| client_cert("add_client_certs", pem))
        .collect::<Result<Vec<_>, _>>()?;
    let remove_client_certs = u
        .remove_client_certs
        .iter()
        .map(|fp| {
            crate::certificate::parse_fingerprint(fp)
                .map_err(|e| invalid("remove_client_certs", e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let client_ca = u
        .client_ca
        .map(|ca| ca.map(client_ca).transpose())
        .transpose()?;
    let changes = PartnerChanges {
        add_client_certs,
        remove_client_certs,
        client_ca,
        name: u.name,
        contact: u.contact,
        billing_rate: u.billing_rate,
        country: u.country,
        group: u.group,
        callback_url: u.callback_url,
        callback_ca_pem: u.callback_ca_pem,
        feature_defaults: u.feature_defaults,
    };
    if changes.is_empty() {
        return Err(invalid("update", "nothing to change"));
    }
    Ok(changes)
}

/// `group update` and the group throttle.
pub(super) fn group_changes(u: UpdateGroup) -> Result<GroupChanges, AdminError> {
    if let Some(name) = &u.name {
        group_name("name", name)?;
    }
    let changes = GroupChanges {
        rename: u.name,
        rate: u
            .rate
            .map(|r| r.map(|r| rate("rate", r)).transpose())
            .transpose()?,
        aggregate: u
            .aggregate
            .map(|r| r.map(|r| rate("aggregate", r)).transpose())
            .transpose()?,
    };
    if changes.is_empty() {
        return Err(invalid("update", "nothing to change"));
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        for bad in ["", "2", "h", "2x", "-1s", "1.5h", "2 h", "99999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn billing_rates() {
        for ok in ["0", "0.0125", "12 EUR", "0.0125 EUR/min"] {
            assert!(billing_rate(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".5",
            "1.",
            "1,5",
            "0.1234567",
            "1 eur",
            "1 EUR/",
            "1 EUR/Min",
            "1  EUR",
        ] {
            assert!(billing_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn callback_urls() {
        let strict = Rules::default();
        let lax = Rules {
            allow_http_callbacks: true,
            callback_allowed_networks: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert!(callback_url("https://bss.example/cb", &strict).is_ok());
        assert!(callback_url("https://bss.example:8443/a/b?x=1", &strict).is_ok());
        assert!(callback_url("http://127.0.0.1:9/cb", &strict).is_err());
        assert!(callback_url("http://127.0.0.1:9/cb", &lax).is_ok());
        for bad in [
            "ftp://x/",
            "bss.example/cb",
            "https://",
            "https://u:p@h/",
            "https://h/a b",
        ] {
            assert!(callback_url(bad, &lax).is_err(), "{bad}");
        }
    }

    /// Callback URLs naming an internal address by IP are refused when saved (the relay
    /// refuses them again, and names resolving to them, when it connects).
    #[test]
    fn callback_urls_must_not_point_inside() {
        let strict = Rules::default();
        for url in [
            "https://169.254.169.254/latest/meta-data/",
            "https://127.0.0.1/cb",
            "https://10.1.2.3:8443/cb",
            "https://192.168.0.10/cb",
            "https://[::1]/cb",
            "https://[::ffff:127.0.0.1]/cb",
            "https://[fd00::2]/cb",
            "https://0.0.0.0/cb",
            "https://2130706433/cb",
            "https://127.1/cb",
            "https://0x7f.0.0.1/cb",
        ] {
            let e = callback_url(url, &strict).unwrap_err();
            assert_eq!(e.field(), Some("callback_url"), "{url}");
            let text = e.to_string();
            assert!(
                text.contains("callback.allowed_networks") || text.contains("dotted-quad"),
                "{url}: {text}"
            );
        }
        let e = callback_url("https://169.254.169.254/", &strict)
            .unwrap_err()
            .to_string();
        assert!(e.contains("link-local"), "{e}");
        // Names pass here (they are resolved when connecting); public literals pass.
        assert!(callback_url("https://localhost:8443/cb", &strict).is_ok());
        assert!(callback_url("https://bss.example.com/cb", &strict).is_ok());
        assert!(callback_url("https://93.184.215.14/cb", &strict).is_ok());
        assert!(callback_url("https://[2001:db8::1]/cb", &strict).is_ok());
        // An explicitly allowed network is accepted.
        let tests = Rules {
            allow_http_callbacks: false,
            callback_allowed_networks: vec!["10.0.0.0/8".parse().unwrap()],
        };
        assert!(callback_url("https://10.1.2.3:8443/cb", &tests).is_ok());
        assert!(callback_url("https://127.0.0.1/cb", &tests).is_err());
    }

    #[test]
    fn nets_keep_host_bits_out() {
        assert_eq!(net("cidr", "10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            net("cidr", "192.0.2.7").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(
            net("cidr", "2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        let e = net("cidr", "10.1.2.3/8").unwrap_err().to_string();
        assert!(e.contains("did you mean 10.0.0.0/8"), "{e}");
        assert!(net("cidr", "10.0.0.0/33").is_err());
    }

    #[test]
    fn permissions_accept_wsdl_names() {
        assert_eq!(permission("p", "CreateAccount").unwrap(), "accounts.create");
        assert_eq!(permission("p", "accounts.*").unwrap(), "accounts.*");
        assert_eq!(permission("p", "*").unwrap(), "*");
        assert!(permission("p", "DeleteEverything").is_err());
        assert!(permission("p", "billing.*").is_err());
    }
}
