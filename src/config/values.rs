//! Parsers of single configuration values that other stages also use (a `Host` header's host,
//! networks and CIDRs). Uses only `ipnet`.

use ipnet::IpNet;

/// A host name or address with an optional port, as a `Host` header carries it: letters, digits,
/// `.`, `-`, `:`, `[` and `]` only, at most 255 bytes (nothing that could break out of an XML
/// attribute or a URL).
pub fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// A comma-separated list of addresses and CIDRs (see [`parse_net`]); empty items are skipped.
pub fn nets(value: &str) -> Result<Vec<IpNet>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_net)
        .collect()
}

/// An address or a CIDR (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`). A network with host bits
/// set (`10.1.2.3/8`) is refused rather than silently widened: it is most likely a typo.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(format!(
                "{s:?} has host bits set; did you mean {}?",
                net.trunc()
            ));
        }
        return Ok(net);
    }
    s.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{s:?} is not an IP address or CIDR"))
}
