//! Unit tests of `callback` (beside the module, in their own file).
use super::*;
use ipnet::IpNet;

fn refused(ip: &str, allowed: &[&str]) -> Option<&'static str> {
    let allowed: Vec<IpNet> = allowed
        .iter()
        .map(|n| crate::config::parse_net(n).expect("net"))
        .collect();
    refused_target(ip.parse().expect("ip"), &allowed)
}

#[test]
fn internal_addresses_are_refused_unless_allowed() {
    for ip in [
        "127.0.0.1",
        "127.9.9.9",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.255",
        "192.0.0.8",
        "198.18.0.1",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
    ] {
        assert!(refused(ip, &[]).is_some(), "{ip} is not refused");
    }
    for ip in [
        "0.0.0.0",
        "0.1.2.3",
        "255.255.255.255",
        "224.0.0.1",
        "::",
        "ff02::1",
        "::ffff:0.0.0.0",
    ] {
        assert!(
            refused(ip, &["0.0.0.0/0", "::/0"]).is_some(),
            "{ip} is allowed"
        );
    }
    for ip in [
        "93.184.215.14",
        "8.8.8.8",
        "172.32.0.1",
        "100.128.0.1",
        "192.0.2.1",
        "2001:db8::1",
        "2a00:1450::1",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ] {
        assert_eq!(refused(ip, &[]), None, "{ip} is refused");
    }
    assert_eq!(refused("127.0.0.1", &["127.0.0.0/8"]), None);
    assert_eq!(refused("::ffff:127.0.0.1", &["127.0.0.0/8"]), None);
    assert!(refused("127.0.0.1", &["10.0.0.0/8"]).is_some());
    assert_eq!(refused("::1", &["::1"]), None);
    assert_eq!(refused("10.9.9.9", &["10.0.0.0/8"]), None);
}

/// A URL with an IP literal is judged before connecting: hyper's connector never resolves
/// a literal, so the resolver would not see it.
#[tokio::test]
async fn the_connector_refuses_literals_and_resolved_names() {
    use tower_service::Service as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut closed = GuardedConnector::new(&[], Duration::from_secs(2));
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://localhost:{port}/"),
    ] {
        let uri: http::Uri = url.parse().expect("uri");
        std::future::poll_fn(|cx| closed.poll_ready(cx))
            .await
            .expect("ready");
        let Err(err) = closed.call(uri).await else {
            panic!("{url} was connected to");
        };
        let text = crate::forward::error_chain(&*err);
        assert!(text.contains("refused: loopback address"), "{url}: {text}");
    }
    let mut open = GuardedConnector::new(
        &[crate::config::parse_net("127.0.0.0/8").expect("net")],
        Duration::from_secs(2),
    );
    let uri: http::Uri = format!("http://localhost:{port}/").parse().expect("uri");
    std::future::poll_fn(|cx| open.poll_ready(cx))
        .await
        .expect("ready");
    assert!(open.call(uri).await.is_ok(), "allowed explicitly");
}
