//! Where callbacks may go: the classes of addresses a callback must never reach (loopback,
//! link-local, private, shared, unique-local, reserved, unspecified, broadcast, multicast, in
//! every IPv4-in-IPv6 form), judged on every address DNS gives and on the connected peer.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use ipnet::IpNet;

/// How an address is treated as a callback target.
enum Class {
    /// A public address.
    Public,
    /// Internal: refused unless inside `callback.allowed_networks`.
    Internal(&'static str),
    /// Never a callback target, whatever is configured.
    Never(&'static str),
}

fn v4_in(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn v4_class(ip: Ipv4Addr) -> Class {
    let internal: [([u8; 4], u32, &'static str); 9] = [
        ([127, 0, 0, 0], 8, "loopback"),
        ([10, 0, 0, 0], 8, "private"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 168, 0, 0], 16, "private"),
        ([169, 254, 0, 0], 16, "link-local (cloud metadata)"),
        ([100, 64, 0, 0], 10, "shared address space (CGNAT)"),
        ([192, 0, 0, 0], 24, "IETF protocol assignments"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([240, 0, 0, 0], 4, "reserved"),
    ];
    if v4_in(ip, [0, 0, 0, 0], 8) {
        return Class::Never("unspecified (0.0.0.0/8)");
    }
    if ip.is_broadcast() {
        return Class::Never("broadcast");
    }
    if ip.is_multicast() {
        return Class::Never("multicast");
    }
    internal
        .iter()
        .find(|(net, prefix, _)| v4_in(ip, *net, *prefix))
        .map_or(Class::Public, |(_, _, why)| Class::Internal(why))
}

fn v6_class(ip: Ipv6Addr) -> Class {
    let s = ip.segments();
    if ip.is_unspecified() {
        Class::Never("unspecified")
    } else if ip.is_multicast() {
        Class::Never("multicast")
    } else if ip.is_loopback() {
        Class::Internal("loopback")
    } else if s[0] & 0xffc0 == 0xfe80 {
        Class::Internal("link-local")
    } else if s[0] & 0xffc0 == 0xfec0 {
        Class::Internal("site-local")
    } else if s[0] & 0xfe00 == 0xfc00 {
        Class::Internal("unique local (private)")
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        Class::Internal("local-use NAT64")
    } else {
        Class::Public
    }
}

/// The IPv4 address an IPv6 address stands for, if it embeds one: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, deprecated) and the NAT64 well-known
/// prefix (`64:ff9b::a.b.c.d`, which a NAT64 gateway turns into the IPv4 address).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let compatible = s[..6].iter().all(|x| *x == 0) && !ip.is_unspecified() && !ip.is_loopback();
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|x| *x == 0);
    (compatible || nat64).then_some(low)
}

/// Why the callback relay must not connect to `ip` (`None`: it may). Internal addresses
/// (loopback, private, link-local, shared, unique-local, reserved …) are refused unless inside
/// one of `allowed` (`callback.allowed_networks`); unspecified, broadcast and multicast always.
/// An IPv6 address that embeds an IPv4 one is judged as that IPv4 address.
pub fn refused_target(ip: IpAddr, allowed: &[IpNet]) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let class = match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => v6_class(v6),
    };
    match class {
        Class::Public => None,
        Class::Never(why) => Some(why),
        Class::Internal(why) => (!allowed.iter().any(|n| n.contains(&ip))).then_some(why),
    }
}

/// The refusal of a callback target, as an I/O error for the connector (logged, never shown).
fn refused_error(what: &str, why: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!("callback target {what} refused: {why} address (callback.allowed_networks)"),
    )
}

/// The callback client's resolver: the system resolver, with every address [`refused_target`]
/// refuses dropped; a name with nothing left is an error.
#[derive(Clone)]
pub struct GuardedResolver {
    allowed: Arc<[IpNet]>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allowed = Arc::clone(&self.allowed);
        Box::pin(async move {
            let host = name.as_str().to_string();
            let mut refused = None;
            let mut kept = Vec::new();
            for addr in tokio::net::lookup_host((host.as_str(), 0)).await? {
                match refused_target(addr.ip(), &allowed) {
                    None => kept.push(addr),
                    Some(why) => refused = refused.or(Some((addr.ip(), why))),
                }
            }
            match (kept.is_empty(), refused) {
                (true, Some((ip, why))) => Err(refused_error(&format!("{host} ({ip})"), why)),
                _ => Ok(kept.into_iter()),
            }
        })
    }
}

/// The callback client's TCP connector: an IP literal in the URL is checked before connecting
/// (hyper's connector does not resolve literals), names go through [`GuardedResolver`], and the
/// address actually connected to is checked once more.
#[derive(Clone)]
pub struct GuardedConnector {
    inner: HttpConnector<GuardedResolver>,
    allowed: Arc<[IpNet]>,
}

impl GuardedConnector {
    /// A connector refusing what `allowed` does not open up, with `connect_timeout`.
    pub fn new(allowed: &[IpNet], connect_timeout: Duration) -> GuardedConnector {
        let allowed: Arc<[IpNet]> = allowed.into();
        let mut inner = HttpConnector::new_with_resolver(GuardedResolver {
            allowed: Arc::clone(&allowed),
        });
        inner.enforce_http(false);
        inner.set_connect_timeout(Some(connect_timeout));
        GuardedConnector { inner, allowed }
    }
}

impl tower_service::Service<http::Uri> for GuardedConnector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let literal = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<IpAddr>().ok());
        if let Some(ip) = literal {
            if let Some(why) = refused_target(ip, &self.allowed) {
                let error = refused_error(&ip.to_string(), why);
                return Box::pin(async move { Err(error.into()) });
            }
        }
        let allowed = Arc::clone(&self.allowed);
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let io = connecting.await?;
            let peer = io.inner().peer_addr()?;
            if let Some(why) = refused_target(peer.ip(), &allowed) {
                return Err(refused_error(&peer.ip().to_string(), why).into());
            }
            Ok(io)
        })
    }
}
