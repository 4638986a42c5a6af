#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Mutual TLS outwards and on the admin listener (issue 18): the upstream client presents
//! `upstream.client_cert`/`client_key` to an upstream that requires a client certificate (and
//! without them the call fails with `UpstreamUnavailableFault` and a log line that says why);
//! the callback relay presents `callback.client_cert`/`client_key` to a partner BSS that requires
//! one (and without them the TSP gets an `Unavailable` CallbackFault and the BSS no call);
//! the admin listener over HTTPS (`admin.tls`) sets `Secure` cookies and HSTS.

mod common;
#[path = "common/logs.rs"]
mod logs;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use common::pki::{Ca, Leaf, Spec};
use common::*;
use partnergate::envelope::SoapVersion;
use partnergate::generated::partner::{FaultDetail, Operation};
use tokio::net::{TcpListener, TcpStream};

const OP: Operation = Operation::GetAccount;

/// A TLS server config with `server`'s certificate that requires a client certificate from
/// `client_ca`.
fn mtls_acceptor(server: &Leaf, client_ca: &Ca) -> tokio_rustls::TlsAcceptor {
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
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A TLS front for `backend` (plain HTTP) that requires a client certificate from `client_ca`:
/// its address.
async fn mtls_front(server: &Leaf, client_ca: &Ca, backend: std::net::SocketAddr) -> u16 {
    let acceptor = mtls_acceptor(server, client_ca);
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

/// What the stub partner BSS behind mutual TLS saw: the client certificates of the
/// handshakes it completed, and the SOAP calls it answered.
#[derive(Default)]
struct BssSeen {
    client_certs: Mutex<Vec<CertificateDer<'static>>>,
    failed_handshakes: AtomicUsize,
    calls: AtomicUsize,
}

/// A partner BSS over HTTPS (`server`'s certificate) that requires a client certificate from
/// `client_ca` and answers every call with the `GetCustomerRecord` response fixture: its port.
async fn mtls_bss(server: &Leaf, client_ca: &Ca, seen: Arc<BssSeen>) -> u16 {
    let acceptor = mtls_acceptor(server, client_ca);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(tls) => tls,
                    Err(_) => {
                        seen.failed_handshakes.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                };
                if let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                    seen.client_certs
                        .lock()
                        .unwrap()
                        .push(cert.clone().into_owned());
                }
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let seen = Arc::clone(&seen);
                    async move {
                        let _ = req.into_body().collect().await;
                        seen.calls.fetch_add(1, Ordering::SeqCst);
                        let body = fixture("callback/GetCustomerRecord/response.xml");
                        let mut r = http::Response::new(Full::new(Bytes::from(body)));
                        r.headers_mut()
                            .insert("content-type", "text/xml".parse().unwrap());
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    port
}

/// The callback relay presents `callback.client_cert`/`client_key` to a partner BSS that
/// requires a client certificate; without them the TSP gets an `Unavailable` CallbackFault,
/// the BSS is never called, and the log says a certificate was wanted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_client_presents_its_certificate() {
    use partnergate::generated::callback::Operation as CallbackOp;
    use partnergate::generated::types::cb::CallbackFaultReason;
    const CLIENT_CN: &str = "partnergate-callbacks.example";
    let log = logs::logs();
    let server_ca = Ca::new("partner BSS server CA");
    let server = server_ca.leaf(&Spec::server());
    let client_ca = Ca::new("gateway callback client CA");
    let client = client_ca.leaf(&Spec::client(CLIENT_CN));
    let seen = Arc::new(BssSeen::default());
    let port = mtls_bss(&server, &client_ca, Arc::clone(&seen)).await;
    let url = format!("https://localhost:{port}/bss/callback");
    let op = CallbackOp::GetCustomerRecord;
    for with_cert in [true, false] {
        let mut c = test_config();
        // Loopback (where the stub BSS listens) is closed to callbacks by default.
        c.callback.allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
        c.callback.response_timeout = Duration::from_secs(5);
        c.callback.client = with_cert.then(|| partnergate::config::TlsConfig {
            cert: client.cert_path.clone(),
            key: client.key_path.clone(),
        });
        let gw = start_gateway(c).await;
        let p = gw.partner(&["*"], &["127.0.0.0/8"]).await;
        let changes = partnergate::store::PartnerChanges {
            callback_url: Some(Some(url.clone())),
            callback_ca_pem: Some(Some(server_ca.pem.clone())),
            ..partnergate::store::PartnerChanges::default()
        };
        gw.store.update_partner("test", &p.id, &changes).unwrap();
        gw.sync().await;
        let resp = post_callback(gw.addr, op, &callback_fixture(op, &p)).await;
        if with_cert {
            assert_eq!(resp.status, 200, "{}", resp.text());
            assert_eq!(
                seen.calls.load(Ordering::SeqCst),
                1,
                "the BSS got exactly one call"
            );
            let certs = seen.client_certs.lock().unwrap().clone();
            assert_eq!(certs.len(), 1, "one handshake, with a client certificate");
            // The certificate configured, byte for byte (so its SHA-256 fingerprint too) ...
            assert_eq!(certs[0], client.der);
            assert_eq!(
                Sha256::digest(certs[0].as_ref()),
                Sha256::digest(client.der.as_ref())
            );
            // ... and its subject and issuer as the stub BSS reads them.
            let (_, x509) = x509_parser::parse_x509_certificate(certs[0].as_ref()).unwrap();
            assert_eq!(x509.subject().to_string(), format!("CN={CLIENT_CN}"));
            assert_eq!(x509.issuer().to_string(), "CN=gateway callback client CA");
        } else {
            assert_eq!(resp.status, 500, "{}", resp.text());
            let f = callback_fault(&resp);
            assert_eq!(f.reason, CallbackFaultReason::Unavailable);
            assert_eq!(
                f.message.as_str(),
                "Unavailable: the partner's system could not be reached or did not answer correctly"
            );
            assert_eq!(f.request_id, None);
            assert_eq!(f.retry_after_seconds, None);
            assert_eq!(
                seen.calls.load(Ordering::SeqCst),
                1,
                "no call reached the BSS without a certificate"
            );
            assert_eq!(
                seen.client_certs.lock().unwrap().len(),
                1,
                "no handshake without a certificate completed"
            );
            assert!(
                seen.failed_handshakes.load(Ordering::SeqCst) >= 1,
                "the BSS refused the handshake"
            );
            let request_id = resp.request_id();
            let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
            let line = text
                .lines()
                .find(|l| l.contains(&request_id) && l.contains("callback refused"))
                .unwrap_or_else(|| panic!("no log line of {request_id} in\n{text}"));
            assert!(line.contains("outcome=\"callback-unavailable\""), "{line}");
            // TLS 1.3: the client's side of the handshake completes, and the BSS's alert
            // arrives when the request is sent.
            assert!(
                line.contains("received fatal alert: CertificateRequired"),
                "the log says a client certificate was wanted: {line}"
            );
        }
        gw.stop().await;
    }
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
