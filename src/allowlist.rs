//! Stage: calling-server allowlist. Takes the authenticated partner and the connection's peer
//! address (and, only when the peer is a configured trusted proxy, the client address the proxy
//! reports in `Forwarded` / `X-Forwarded-For`) and returns the caller's address if it is inside
//! one of the partner's allowlist networks — or an [`AllowError`].

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

/// The address the request really comes from: the peer, or — if the peer is a trusted proxy —
/// the nearest untrusted address in the proxies' forwarding chain (rightmost first, as each proxy
/// appends; entries added by untrusted hops are never believed).
pub fn client_address(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Result<IpAddr, AllowError> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Ok(peer);
    }
    let mut chain: Vec<IpAddr> = Vec::new();
    for value in headers.get_all(http::header::FORWARDED) {
        let value = value
            .to_str()
            .map_err(|_| AllowError::BadForwardingHeader)?;
        for element in value.split(',') {
            for pair in element.split(';') {
                let Some((k, v)) = pair.trim().split_once('=') else {
                    continue;
                };
                if k.trim().eq_ignore_ascii_case("for") {
                    chain.push(parse_node(v.trim()).ok_or(AllowError::BadForwardingHeader)?);
                }
            }
        }
    }
    if chain.is_empty() {
        for value in headers.get_all("x-forwarded-for") {
            let value = value
                .to_str()
                .map_err(|_| AllowError::BadForwardingHeader)?;
            for part in value.split(',') {
                chain.push(parse_node(part.trim()).ok_or(AllowError::BadForwardingHeader)?);
            }
        }
    }
    Ok(chain
        .into_iter()
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
    let address = match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    };
    if auth.partner.allow.iter().any(|net| net.contains(&address)) {
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

    #[test]
    fn forwarding_headers_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let peer: IpAddr = "203.0.113.9".parse().expect("ip");
        let h = headers(&[("x-forwarded-for", "192.0.2.1")]);
        assert_eq!(
            client_address(peer, &h, &trusted),
            Ok(peer),
            "untrusted peer: header ignored"
        );
        let proxy: IpAddr = "10.1.2.3".parse().expect("ip");
        assert_eq!(
            client_address(proxy, &h, &trusted),
            Ok("192.0.2.1".parse().expect("ip"))
        );
        // A client that forges the header gets its forged entry skipped: the proxy appended the
        // real address last.
        let h = headers(&[("x-forwarded-for", "192.0.2.1, 198.51.100.7")]);
        assert_eq!(
            client_address(proxy, &h, &trusted),
            Ok("198.51.100.7".parse().expect("ip"))
        );
        let h = headers(&[("forwarded", "for=\"[2001:db8::1]:443\";proto=https")]);
        assert_eq!(
            client_address(proxy, &h, &trusted),
            Ok("2001:db8::1".parse().expect("ip"))
        );
        let h = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(
            client_address(proxy, &h, &trusted),
            Err(AllowError::BadForwardingHeader)
        );
    }
}
