#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Mutual TLS against the real binary: `partner update --client-cert-file` and `partner show`,
//! curl with and without `--cert`, certificate reload on SIGHUP (new handshakes get the new
//! certificate, an open connection keeps working, a broken file keeps the old one), and start-up
//! errors that name the file.

mod common;
#[path = "common/serve.rs"]
mod serve;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::pki::{Ca, Spec};
use common::*;
use partnergate::envelope::SoapVersion;
use partnergate::generated::partner::Operation;
use partnergate::store::Store;
use serve::Binary;

const OP: Operation = Operation::GetAccount;

fn bin(args: &[&str]) -> Output {
    serve::command()
        .args(args)
        .output()
        .expect("run partnergate")
}

fn tls_env(cert: &std::path::Path, key: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("PARTNERGATE_TLS_CERT", cert.display().to_string()),
        ("PARTNERGATE_TLS_KEY", key.display().to_string()),
    ]
}

/// `curl` POSTing the GetAccount fixture of `p` over HTTPS, with `--cert`/`--key` if given:
/// (HTTP status, body).
fn curl(
    port: u16,
    ca_file: &std::path::Path,
    p: &Partner,
    client: Option<&common::pki::Leaf>,
) -> (u16, String) {
    let body_file = temp_path("curl-body", "xml");
    std::fs::write(&body_file, request_fixture(OP, SoapVersion::Soap11, p)).unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .arg("--cacert")
        .arg(ca_file)
        .args(["-H", "Content-Type: text/xml; charset=utf-8"])
        .args(["-H", &format!("SOAPAction: \"{}\"", OP.soap_action())])
        .arg("--data-binary")
        .arg(format!("@{}", body_file.display()));
    if let Some(leaf) = client {
        cmd.arg("--cert").arg(&leaf.cert_path);
        cmd.arg("--key").arg(&leaf.key_path);
    }
    cmd.arg(format!("https://localhost:{port}/soap/partner/v1"));
    let out = cmd.output().expect("run curl");
    let _ = std::fs::remove_file(&body_file);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", ""));
    (
        status
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("curl: {text} {}", String::from_utf8_lossy(&out.stderr))),
        body.to_string(),
    )
}

/// The CLI registers a certificate, `partner show` lists it, and curl with it is answered
/// while curl without it gets `AccessDeniedFault` with reason `client-certificate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_with_and_without_a_client_certificate() {
    let up = StubUpstream::start(Reply::Fixture).await;
    let server_ca = Ca::new("server CA");
    let server = server_ca.leaf(&Spec::server());
    let server_ca_file = server_ca.pem_file();
    let db = temp_path("mtls-bin", "db");
    let url = db.display().to_string();
    let p = {
        let store = Store::open(&url).unwrap();
        onboard_partner(&store, &["*"], &["127.0.0.0/8"], None)
    };
    let gw = Binary::serve_tls(
        db,
        &up.url,
        &tls_env(&server.cert_path, &server.key_path),
        &server_ca.der,
    )
    .await;
    let client_ca = Ca::new("partner CA");
    let client = client_ca.leaf(&Spec::client("bss.example"));
    let other = client_ca.leaf(&Spec::client("bss.example"));
    let cert_arg = client.cert_path.display().to_string();
    let out = bin(&[
        "partner",
        "update",
        &p.id,
        "--database-url",
        &url,
        "--client-cert-file",
        &cert_arg,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let show = bin(&["partner", "show", &p.id, "--database-url", &url]);
    let show = String::from_utf8_lossy(&show.stdout).into_owned();
    let fp = partnergate::certificate::fingerprint_hex(&partnergate::certificate::fingerprint(
        &client.der,
    ));
    assert!(
        show.contains(&fp) && show.contains("CN=bss.example"),
        "{show}"
    );

    // In force once the binary's snapshot has the change (it polls every 250 ms): until then
    // the partner needs no certificate.
    let port = gw.addr.port();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = curl(port, &server_ca_file, &p, None);
        if status == 500 {
            assert!(
                body.contains("AccessDeniedFault") && body.contains(">client-certificate<"),
                "{body}"
            );
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            Instant::now() < deadline,
            "the certificate never became required"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = curl(port, &server_ca_file, &p, Some(&client));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("GetAccountResponse"), "{body}");
    let (status, body) = curl(port, &server_ca_file, &p, Some(&other));
    assert_eq!(
        status, 500,
        "another certificate of the same CA is not registered: {body}"
    );
    assert!(body.contains(">client-certificate<"), "{body}");
    let _ = std::fs::remove_file(&server_ca_file);
}

/// SIGHUP reloads the listener's certificate: a new connection gets the new leaf, a
/// connection opened before keeps working; a broken replacement keeps the old certificate and
/// the log says why, naming the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_server_certificate() {
    let up = StubUpstream::start(Reply::Fixture).await;
    let ca = Ca::new("server CA");
    let first = ca.leaf(&Spec::server());
    let second = ca.leaf(&Spec::server());
    // The files the binary reads: `first`'s at the start.
    let cert = temp_path("reload-cert", "pem");
    let key = temp_path("reload-key", "pem");
    std::fs::write(&cert, &first.pem).unwrap();
    std::fs::write(&key, &first.key_pem).unwrap();
    let gw = Binary::serve_tls(
        temp_path("reload", "db"),
        &up.url,
        &tls_env(&cert, &key),
        &ca.der,
    )
    .await;

    let (mut before, served) = common::pki::connect_as(gw.addr, &ca.der, None).await;
    assert_eq!(served, first.der);
    let keep_alive = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    before.send(keep_alive).await.unwrap();
    assert_eq!(before.read_response().await.unwrap().status, 200);

    std::fs::write(&cert, &second.pem).unwrap();
    std::fs::write(&key, &second.key_pem).unwrap();
    gw.signal("HUP");
    wait_for_log(&gw, "certificate reloaded").await;
    let (_, served) = common::pki::connect_as(gw.addr, &ca.der, None).await;
    assert_eq!(
        served, second.der,
        "a new handshake gets the new certificate"
    );
    before.send(keep_alive).await.unwrap();
    let r = before.read_response().await.unwrap();
    assert_eq!(r.status, 200, "the connection opened before keeps working");

    // A broken certificate file: the old one stays, the log names the file.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    gw.signal("HUP");
    wait_for_log(&gw, "certificate not reloaded").await;
    let log = gw.log();
    let line = log
        .lines()
        .find(|l| l.contains("certificate not reloaded"))
        .unwrap();
    assert!(
        line.contains(&cert.display().to_string()) && line.contains("not PEM"),
        "{line}"
    );
    assert!(!log.contains("PRIVATE KEY"), "no key material in the log");
    let (_, served) = common::pki::connect_as(gw.addr, &ca.der, None).await;
    assert_eq!(served, second.der, "the old certificate stays");
    // A key that is not the certificate's: refused too.
    std::fs::write(&cert, &second.pem).unwrap();
    std::fs::write(&key, &first.key_pem).unwrap();
    gw.signal("HUP");
    wait_for_count(&gw, "does not match the certificate", 1).await;
    let (_, served) = common::pki::connect_as(gw.addr, &ca.der, None).await;
    assert_eq!(served, second.der);
    let _ = std::fs::remove_file(&cert);
    let _ = std::fs::remove_file(&key);
}

async fn wait_for_log(gw: &Binary, text: &str) {
    wait_for_count(gw, text, 1).await;
}

async fn wait_for_count(gw: &Binary, text: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.log().matches(text).count() < n {
        assert!(
            Instant::now() < deadline,
            "no {text:?} in the log:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A bad certificate or key file stops the start with a message naming the file and what is
/// wrong: unreadable, not PEM, a key that is not the certificate's.
#[test]
fn bad_certificate_files_are_named_at_start() {
    let ca = Ca::new("CA");
    let a = ca.leaf(&Spec::server());
    let b = ca.leaf(&Spec::server());
    let missing = temp_path("missing", "pem");
    let not_pem = temp_path("not-pem", "pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let db = temp_path("bad-tls", "db");
    let cases = [
        (
            "tls",
            missing.clone(),
            a.key_path.clone(),
            format!("{}: cannot read", missing.display()),
        ),
        (
            "admin.tls",
            not_pem.clone(),
            a.key_path.clone(),
            format!("{}: not PEM", not_pem.display()),
        ),
        (
            "upstream.client",
            a.cert_path.clone(),
            b.key_path.clone(),
            format!(
                "{}: the private key does not match the certificate in {}",
                b.key_path.display(),
                a.cert_path.display()
            ),
        ),
    ];
    for (which, cert, key, want) in cases {
        let (cert_key, key_key) = match which {
            "tls" => ("PARTNERGATE_TLS_CERT", "PARTNERGATE_TLS_KEY"),
            "admin.tls" => ("PARTNERGATE_ADMIN_TLS_CERT", "PARTNERGATE_ADMIN_TLS_KEY"),
            _ => (
                "PARTNERGATE_UPSTREAM_CLIENT_CERT",
                "PARTNERGATE_UPSTREAM_CLIENT_KEY",
            ),
        };
        let out = serve::command()
            .env(cert_key, &cert)
            .env(key_key, &key)
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
            .arg(&db)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{which}: started");
        assert!(
            stderr.contains(&want),
            "{which}: want {want:?} in\n{stderr}"
        );
        assert!(
            !stderr.contains("PRIVATE KEY"),
            "{which}: key material in\n{stderr}"
        );
    }
    let _ = std::fs::remove_file(&not_pem);
    remove_db(&db);
}
