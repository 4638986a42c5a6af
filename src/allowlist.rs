//! Stage: calling-server allowlist. Takes the authenticated partner and the connection's peer
//! address (and, only when the peer is a configured trusted proxy, the client address the proxy
//! reports in the one forwarding header it is configured to write) and returns the caller's
//! address if it is inside one of the partner's allowlist networks — or an [`AllowError`].
//!
//! Every address is compared in its [`canonical`] form: a dual-stack listener (`[::]:…`) sees
//! IPv4 peers as `::ffff:a.b.c.d`, and configured networks are written as `a.b.c.d/n`.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

use crate::authenticate::Authenticated;

/// Why the caller is not allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllowError {
    /// The address is in none of the partner's networks.
    #[error("caller {0} is not on the partner's allowlist")]
    NotAllowed(IpAddr),
    /// A trusted proxy sent a forwarding header that does not parse.
    #[error("malformed forwarding header from a trusted proxy")]
    BadForwardingHeader,
}

pub use crate::config::ProxyHeader;

/// The one form every address is compared in: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
/// how a dual-stack socket reports an IPv4 peer) becomes the IPv4 address; everything else is
/// unchanged. Used for peers, for addresses from forwarding headers, for the callback caller
/// check and for `metrics.allow`.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` (in any form) is inside one of `nets`.
pub fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|n| n.contains(&ip))
}

/// The address the request really comes from: the peer, or — if the peer is a trusted proxy —
/// the nearest untrusted address in the chain the proxies wrote in `header` (rightmost first, as
/// each proxy appends; entries added by untrusted hops are never believed). Every address is
/// [`canonical`].
pub fn client_address(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    header: ProxyHeader,
) -> Result<IpAddr, AllowError> {
    let peer = canonical(peer);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Ok(peer);
    }
    let mut chain: Vec<IpAddr> = Vec::new();
    for value in headers.get_all(header.name()) {
        let value = value
            .to_str()
            .map_err(|_| AllowError::BadForwardingHeader)?;
        for element in value.split(',') {
            match header {
                ProxyHeader::XForwardedFor => {
                    chain.push(parse_node(element.trim()).ok_or(AllowError::BadForwardingHeader)?);
                }
                ProxyHeader::Forwarded => {
                    for pair in element.split(';') {
                        let Some((k, v)) = pair.trim().split_once('=') else {
                            continue;
                        };
                        if k.trim().eq_ignore_ascii_case("for") {
                            chain
                                .push(parse_node(v.trim()).ok_or(AllowError::BadForwardingHeader)?);
                        }
                    }
                }
            }
        }
    }
    Ok(chain
        .into_iter()
        .map(canonical)
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer))
}

/// `192.0.2.1`, `"[2001:db8::1]:443"`, `192.0.2.1:1234`.
fn parse_node(v: &str) -> Option<IpAddr> {
    let v = v.trim_matches('"');
    if let Ok(ip) = v.parse() {
        return Some(ip);
    }
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    v.rsplit_once(':').and_then(|(host, _)| host.parse().ok())
}

/// Checks `address` against the partner's allowlist.
pub fn check(auth: &Authenticated, address: IpAddr) -> Result<IpAddr, AllowError> {
    let address = canonical(address);
    if contains(&auth.partner.allow, address) {
        Ok(address)
    } else {
        Err(AllowError::NotAllowed(address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    const XFF: ProxyHeader = ProxyHeader::XForwardedFor;
    const FWD: ProxyHeader = ProxyHeader::Forwarded;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarding_headers_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let peer = ip("203.0.113.9");
        let h = headers(&[("x-forwarded-for", "192.0.2.1")]);
        assert_eq!(
            client_address(peer, &h, &trusted, XFF),
            Ok(peer),
            "untrusted peer: header ignored"
        );
        let proxy = ip("10.1.2.3");
        assert_eq!(
            client_address(proxy, &h, &trusted, XFF),
            Ok(ip("192.0.2.1"))
        );
        // A client that forges the header gets its forged entry skipped: the proxy appended the
        // real address last.
        let h = headers(&[("x-forwarded-for", "192.0.2.1, 198.51.100.7")]);
        assert_eq!(
            client_address(proxy, &h, &trusted, XFF),
            Ok(ip("198.51.100.7"))
        );
        let h = headers(&[("forwarded", "for=\"[2001:db8::1]:443\";proto=https")]);
        assert_eq!(
            client_address(proxy, &h, &trusted, FWD),
            Ok(ip("2001:db8::1"))
        );
        let h = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(
            client_address(proxy, &h, &trusted, XFF),
            Err(AllowError::BadForwardingHeader)
        );
    }

    /// Proxies append to the header they write and pass the other one through as the client
    /// sent it: only the configured header is believed, whatever the other one says.
    #[test]
    fn only_the_configured_header_is_read() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let proxy = ip("10.1.2.3");
        let h = headers(&[
            ("forwarded", "for=192.0.2.1"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(
            client_address(proxy, &h, &trusted, XFF),
            Ok(ip("198.51.100.7"))
        );
        assert_eq!(
            client_address(proxy, &h, &trusted, FWD),
            Ok(ip("192.0.2.1"))
        );
        // The configured header absent: the proxy itself is the caller, never the other header.
        let h = headers(&[("forwarded", "for=192.0.2.1")]);
        assert_eq!(client_address(proxy, &h, &trusted, XFF), Ok(proxy));
        let h = headers(&[("x-forwarded-for", "192.0.2.1")]);
        assert_eq!(client_address(proxy, &h, &trusted, FWD), Ok(proxy));
        assert_eq!(ProxyHeader::parse(" X-Forwarded-For "), Some(XFF));
        assert_eq!(ProxyHeader::parse("forwarded"), Some(FWD));
        assert_eq!(ProxyHeader::parse("x-real-ip"), None);
    }

    /// A dual-stack listener reports IPv4 peers as `::ffff:a.b.c.d`; proxies may write that form
    /// too. Both are compared as the IPv4 address.
    #[test]
    fn ipv4_mapped_addresses_are_canonical() {
        assert_eq!(canonical(ip("::ffff:127.0.0.1")), ip("127.0.0.1"));
        assert_eq!(canonical(ip("::1")), ip("::1"));
        assert_eq!(canonical(ip("192.0.2.1")), ip("192.0.2.1"));
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().expect("net")];
        let h = headers(&[("x-forwarded-for", "::ffff:10.1.2.3, ::ffff:127.0.0.1")]);
        assert_eq!(
            client_address(ip("::ffff:127.0.0.1"), &h, &trusted, XFF),
            Ok(ip("10.1.2.3")),
            "the mapped peer is the trusted proxy, the mapped proxy entry is skipped"
        );
        assert_eq!(
            client_address(ip("::ffff:192.0.2.9"), &h, &trusted, XFF),
            Ok(ip("192.0.2.9"))
        );
        assert!(contains(&trusted, ip("::ffff:127.0.0.1")));
        assert!(!contains(&trusted, ip("::ffff:127.0.0.2")));
    }
}
