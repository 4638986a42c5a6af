#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Mutual TLS outwards and on the admin listener (issue 18): the upstream client presents
//! `upstream.client_cert`/`client_key` to an upstream that requires a client certificate (and
//! without them the call fails with `UpstreamUnavailableFault` and a log line that says why);
//! the admin listener over HTTPS (`admin.tls`) sets `Secure` cookies and HSTS.

mod common;
#[path = "common/logs.rs"]
mod logs;

use std::sync::Arc;
use std::time::Duration;

use common::pki::{Ca, Leaf, Spec};
use common::*;
use partnergate::envelope::SoapVersion;
use partnergate::generated::partner::{FaultDetail, Operation};
use tokio::net::{TcpListener, TcpStream};

const OP: Operation = Operation::GetAccount;

/// A TLS front for `backend` (plain HTTP) that requires a client certificate from `client_ca`:
/// its address.
async fn mtls_front(server: &Leaf, client_ca: &Ca, backend: std::net::SocketAddr) -> u16 {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(client_ca.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let (chain, key) = server.identity();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut back) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut back).await;
            });
        }
    });
    port
}

fn backend_of(url: &str) -> (std::net::SocketAddr, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    (host.parse().unwrap(), format!("/{path}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_client_presents_its_certificate() {
    let log = logs::logs();
    let up = StubUpstream::start(Reply::Fixture).await;
    let (backend, path) = backend_of(&up.url);
    let server_ca = Ca::new("upstream server CA");
    let server = server_ca.leaf(&Spec::server());
    let client_ca = Ca::new("gateway client CA");
    let client = client_ca.leaf(&Spec::client("gateway.example"));
    let port = mtls_front(&server, &client_ca, backend).await;
    let ca_file = server_ca.pem_file();
    for with_cert in [true, false] {
        let mut c = test_config();
        c.upstream.url = Some(format!("https://localhost:{port}{path}"));
        c.upstream.ca_file = Some(ca_file.clone());
        c.upstream.client = with_cert.then(|| partnergate::config::TlsConfig {
            cert: client.cert_path.clone(),
            key: client.key_path.clone(),
        });
        let gw = start_gateway(c).await;
        let p = gw.partner(&["*"], &["127.0.0.0/8"]).await;
        let body = request_fixture(OP, SoapVersion::Soap11, &p);
        let resp = post_soap(gw.addr, SoapVersion::Soap11, Some(OP.soap_action()), &body).await;
        if with_cert {
            assert_eq!(resp.status, 200, "{}", resp.text());
            assert_eq!(
                up.count(),
                1,
                "the upstream got the call through the mTLS front"
            );
        } else {
            let f = parse_fault_body(&resp.body);
            assert!(
                matches!(f.detail, Some(FaultDetail::UpstreamUnavailable(_))),
                "{f:?}"
            );
            assert_eq!(up.count(), 1, "nothing more reached the upstream");
            let request_id = resp.request_id();
            let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
            let line = text
                .lines()
                .find(|l| l.contains(&request_id) && l.contains("upstream"))
                .unwrap_or_else(|| panic!("no log line of {request_id} in\n{text}"));
            assert!(
                line.to_ascii_lowercase().contains("certificate"),
                "the log says a client certificate was wanted: {line}"
            );
        }
        gw.stop().await;
    }
    let _ = std::fs::remove_file(&ca_file);
}

const TOKEN: &str = "admin-token-0123456789abcdef";
const OPERATOR: &str = "root";
const PASSWORD: &str = "dashboard-password-0123456789";

/// The admin listener over HTTPS: the dashboard's cookies are `Secure` and responses carry
/// `Strict-Transport-Security` (without `admin.cookie_secure`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_over_tls() {
    let ca = Ca::new("admin CA");
    let leaf = ca.leaf(&Spec::server());
    let db = temp_path("admin-tls", "db");
    let mut c = test_config();
    c.database_url = db.display().to_string();
    c.admin.token = Some(partnergate::secret::AdminToken::new(TOKEN).unwrap());
    c.admin.listen = "127.0.0.1:0".parse().unwrap();
    c.admin.tls = Some(partnergate::config::TlsConfig {
        cert: leaf.cert_path.clone(),
        key: leaf.key_path.clone(),
    });
    assert!(!c.admin.cookie_secure);
    let running = partnergate::app::start(c).await.unwrap();
    let admin = running.admin_addr.unwrap();
    // An operator to log in as.
    let store = partnergate::store::Store::open(&db.display().to_string()).unwrap();
    let password = partnergate::password::Password::new(PASSWORD.into());
    let hash = partnergate::password::hash(&password).unwrap();
    store
        .create_operator(
            "test-setup",
            OPERATOR,
            partnergate::store::Role::Admin,
            &hash,
        )
        .unwrap();
    let page = get_tls(admin, &ca.der, "/ui/login").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    let cookie = page.header("set-cookie").unwrap().to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let pair = cookie.split(';').next().unwrap();
    let text = page.text();
    let csrf = text
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap();
    let form = format!("csrf={csrf}&name={OPERATOR}&password={PASSWORD}");
    let (mut conn, _) = common::pki::connect_as(admin, &ca.der, None).await;
    let req = format!(
        "POST /ui/login HTTP/1.1\r\nHost: localhost\r\nCookie: {pair}\r\nContent-Type: \
         application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    conn.send(req.as_bytes()).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), conn.read_response())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 303, "{}", r.text());
    let session = r.header("set-cookie").unwrap();
    assert!(
        session.contains("; Secure") && session.contains("HttpOnly"),
        "{session}"
    );
    assert!(r.header("strict-transport-security").is_some());
    // The API too.
    let api = get_tls(admin, &ca.der, "/admin/v1/partners").await;
    assert_eq!(api.status, 401);
    assert!(api.header("strict-transport-security").is_some());
    let _ = running.shutdown.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), running.done).await;
    remove_db(&db);
}
