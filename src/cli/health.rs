//! `partnergate health`: asks a running gateway's `/healthz` (alive) or `/readyz` (ready: the
//! database reachable) over plain HTTP and exits 0 only on HTTP 200 — the container image's
//! `HEALTHCHECK` (the image has no other HTTP client). Uses hyper's client, the configuration
//! loader and `forward::error_chain`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use partnergate::forward::error_chain;

use super::args::Common;
use super::setup::load_config;

/// `partnergate health [--url URL] [--ready] [--timeout-ms MS]`: `url` or, without it, the
/// configured partner listener on loopback.
pub fn health(
    url: Option<&str>,
    ready: bool,
    timeout: Duration,
    common: &Common,
    out: &mut String,
) -> Result<(), String> {
    let path = if ready { "/readyz" } else { "/healthz" };
    let url = match url {
        Some(url) => url.to_owned(),
        None => {
            let config = load_config(common, BTreeMap::new())?;
            if config.tls.is_some() {
                return Err(
                    "the partner listener serves TLS: give --url of a plain-HTTP address, or probe \
                     it from outside"
                        .into(),
                );
            }
            format!("http://{}{path}", on_loopback(config.listen))
        }
    };
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url}: only http:// URLs are probed"));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    let status = runtime
        .block_on(async {
            let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
            tokio::time::timeout(timeout, client.get(uri)).await
        })
        .map_err(|_| format!("{url}: no answer within {} ms", timeout.as_millis()))?
        .map_err(|e| format!("{url}: {}", error_chain(&e)))?
        .status();
    if status != http::StatusCode::OK {
        return Err(format!("{url}: HTTP {}", status.as_u16()));
    }
    out.push_str(&format!("{url}: HTTP 200\n"));
    Ok(())
}

/// Where to reach a listener bound to `addr` from this host: an unspecified address
/// (`0.0.0.0`, `::`) through loopback.
fn on_loopback(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listeners_are_probed_on_loopback() {
        let at = |s: &str| on_loopback(s.parse().unwrap()).to_string();
        assert_eq!(at("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(at("[::]:8080"), "[::1]:8080");
        assert_eq!(at("192.0.2.7:8443"), "192.0.2.7:8443");
    }
}
