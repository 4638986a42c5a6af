//! The callback direction end to end: the TSP (this test) calls `POST /soap/callback/v1` with a
//! partner's callback key; the gateway checks the caller, the key and the contract, and forwards a
//! canonical envelope to a recording stub partner BSS (plain HTTP where allowed, and HTTPS with a
//! per-partner CA), then returns the partner's typed answer — or a CallbackFault that says why.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use partnergate::decode::{self, DecodeLimits};
use partnergate::envelope::{self, SoapVersion};
use partnergate::generated::callback::{self, FaultDetail, Operation};
use partnergate::generated::types::cb;
use partnergate::store::PartnerChanges;

const CALLBACK_PATH: &str = "/soap/callback/v1";

fn callback_fixture(op: Operation, p: &Partner) -> Vec<u8> {
    let text = String::from_utf8(fixture(&format!("callback/{}/request.xml", op.name()))).unwrap();
    text.replace("pgc_test_fedcba9876543210fedcba9876543210", &p.callback_key)
        .replace("PARTNER-0042", &p.id)
        .into_bytes()
}

async fn call(addr: std::net::SocketAddr, op: Operation, body: &[u8]) -> RawResponse {
    let mut req = format!(
        "POST {CALLBACK_PATH} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml; charset=utf-8\r\nSOAPAction: \"{}\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        op.soap_action(),
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    exchange(addr, &req).await
}

fn set_callback(gw: &TestGateway, p: &Partner, url: &str, ca_pem: Option<&str>) {
    let changes = PartnerChanges {
        callback_url: Some(Some(url.to_string())),
        callback_ca_pem: Some(ca_pem.map(str::to_string)),
        ..PartnerChanges::default()
    };
    gw.store
        .update_partner("test", &p.id, &changes)
        .expect("set callback URL");
}

fn callback_fault(resp: &RawResponse) -> cb::CallbackFault {
    let env = envelope::scan(&resp.body).unwrap_or_else(|e| panic!("{e}: {}", resp.text()));
    let fault = envelope::parse_fault(&env).expect("a SOAP fault");
    let entry = fault.detail.expect("a detail");
    match decode::callback_fault(&entry, DecodeLimits::default()).expect("CallbackFault") {
        FaultDetail::Callback(f) => *f,
    }
}

async fn gateway(
    configure: impl FnOnce(&mut partnergate::config::Config),
) -> (TestGateway, Partner) {
    let mut config = test_config();
    config.callback.allow_http = true;
    config.callback.response_timeout = Duration::from_millis(500);
    configure(&mut config);
    let gw = start_gateway(config).await;
    let p = gw.partner(&["*"], &["127.0.0.0/8"]).await;
    (gw, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_reach_the_partner_bss_as_canonical_envelopes() {
    let (gw, p) = gateway(|_| {}).await;
    let bss = StubUpstream::start(Reply::Fixture).await;
    set_callback(&gw, &p, &bss.url, None);
    gw.sync().await;
    for op in Operation::ALL {
        let resp = call(gw.addr, op, &callback_fixture(op, &p)).await;
        assert_eq!(resp.status, 200, "{op:?}: {}", resp.text());
        // The TSP gets the canonical re-encoding of the partner's answer.
        let canonical = fixture(&format!("callback/{}/response.canonical.xml", op.name()));
        assert_eq!(resp.text(), String::from_utf8(canonical).unwrap());
        // The partner got our canonical envelope, with the CallbackAuth header re-encoded.
        let got = bss.take();
        assert_eq!(got.len(), 1);
        let body = &got[0].body;
        let env = envelope::scan(body).expect("scan");
        assert_eq!(env.version, SoapVersion::Soap11);
        let request = decode::callback_request(&env.body, DecodeLimits::default()).expect("decode");
        assert_eq!(request.operation(), op);
        let (ns, local) = callback::AUTH_HEADER_ELEMENT;
        assert!(env.headers.iter().any(|h| h.element.is(ns, local)));
        assert_eq!(
            got[0]
                .headers
                .get("soapaction")
                .and_then(|v| v.to_str().ok()),
            Some(format!("\"{}\"", op.soap_action()).as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_callbacks_never_reach_the_partner() {
    let (gw, p) = gateway(|_| {}).await;
    let bss = StubUpstream::start(Reply::Fixture).await;
    set_callback(&gw, &p, &bss.url, None);
    gw.sync().await;
    let op = Operation::NotifyProvisioningEvent;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("wrong callback key", {
            let mut q = p.clone();
            q.callback_key = format!("pgc_{}", "0".repeat(64));
            callback_fixture(op, &q)
        }),
        ("the API key used as callback key", {
            let mut q = p.clone();
            q.callback_key = p.key.clone();
            callback_fixture(op, &q)
        }),
        ("unknown partner", {
            let mut q = p.clone();
            q.id = "PARTNER-9999".into();
            callback_fixture(op, &q)
        }),
    ];
    for (what, body) in cases {
        let resp = call(gw.addr, op, &body).await;
        assert_eq!(resp.status, 500, "{what}");
        let f = callback_fault(&resp);
        assert_eq!(
            f.reason,
            cb::CallbackFaultReason::AuthenticationFailed,
            "{what}"
        );
    }
    // A body that breaks the contract.
    let bad = String::from_utf8(callback_fixture(op, &p))
        .unwrap()
        .replace(
            "<cb:EventType>DEVICE_REGISTERED</cb:EventType>",
            "<cb:EventType>DEVICE_TELEPORTED</cb:EventType>",
        )
        .into_bytes();
    assert_ne!(
        bad,
        callback_fixture(op, &p),
        "the fixture has the event type to break"
    );
    let resp = call(gw.addr, op, &bad).await;
    assert_eq!(
        callback_fault(&resp).reason,
        cb::CallbackFaultReason::InvalidRequest,
        "{}",
        resp.text()
    );
    assert_eq!(bss.count(), 0, "nothing reached the partner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_tsp_servers_may_call_back() {
    let (gw, p) =
        gateway(|c| c.callback.allowed_callers = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let bss = StubUpstream::start(Reply::Fixture).await;
    set_callback(&gw, &p, &bss.url, None);
    gw.sync().await;
    let op = Operation::GetCustomerRecord;
    let resp = call(gw.addr, op, &callback_fixture(op, &p)).await;
    assert_eq!(
        callback_fault(&resp).reason,
        cb::CallbackFaultReason::AuthenticationFailed
    );
    assert_eq!(bss.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_down_slow_or_wrong_is_a_clear_fault() {
    let (gw, p) = gateway(|_| {}).await;
    let op = Operation::GetCustomerRecord;
    // No callback URL registered.
    let resp = call(gw.addr, op, &callback_fixture(op, &p)).await;
    assert_eq!(
        callback_fault(&resp).reason,
        cb::CallbackFaultReason::NotFound
    );
    // Down.
    set_callback(&gw, &p, &closed_port_url(), None);
    gw.sync().await;
    let resp = call(gw.addr, op, &callback_fixture(op, &p)).await;
    let f = callback_fault(&resp);
    assert_eq!(f.reason, cb::CallbackFaultReason::Unavailable);
    assert!(
        f.message.as_str().contains("unreachable"),
        "{}",
        f.message.as_str()
    );
    // Slow: answered within the response timeout plus slack, never a hang.
    let slow = StubUpstream::start(Reply::Delay(Duration::from_secs(3))).await;
    set_callback(&gw, &p, &slow.url, None);
    gw.sync().await;
    let started = Instant::now();
    let resp = call(gw.addr, op, &callback_fixture(op, &p)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        callback_fault(&resp).reason,
        cb::CallbackFaultReason::Unavailable
    );
    // Not XML.
    let junk = StubUpstream::start(Reply::InvalidXml).await;
    set_callback(&gw, &p, &junk.url, None);
    gw.sync().await;
    let resp = call(gw.addr, op, &callback_fixture(op, &p)).await;
    assert_eq!(
        callback_fault(&resp).reason,
        cb::CallbackFaultReason::Unavailable
    );
}

/// A partner's `CallbackFault` reaches the TSP with its reason and trace id, and the gateway's
/// texts: the partner's faultstring and Message stay in the log (the rule of the partner
/// direction, issue 14).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partners_callback_fault_keeps_its_reason_and_gets_our_texts() {
    let (gw, p) = gateway(|_| {}).await;
    let secret =
        "java.sql.SQLException: ORA-01017 at crm-db.partner.local user=crm password=hunter2";
    let text = String::from_utf8(fixture("callback/faults/CallbackFault.soap11.xml"))
        .unwrap()
        .replace(
            "<faultstring>Unknown customer reference</faultstring>",
            &format!("<faultstring>{secret}</faultstring>"),
        )
        .replace("Unknown customer reference CRM-2024/000999.", secret);
    let bss = StubUpstream::start(Reply::Raw {
        status: 500,
        body: text.into_bytes(),
    })
    .await;
    set_callback(&gw, &p, &bss.url, None);
    gw.sync().await;
    let op = Operation::GetCustomerRecord;
    let resp = call(gw.addr, op, &callback_fixture(op, &p)).await;
    assert_eq!(resp.status, 500, "{}", resp.text());
    let env = envelope::scan(&resp.body).unwrap();
    let fault = envelope::parse_fault(&env).unwrap();
    assert_eq!(
        fault.reason,
        format!(
            "Partner Fault: the partner's system does not know the customer reference (request {})",
            resp.request_id()
        )
    );
    let f = callback_fault(&resp);
    assert_eq!(f.reason, cb::CallbackFaultReason::NotFound);
    assert_eq!(
        f.message.as_str(),
        "the partner's system does not know the customer reference."
    );
    assert_eq!(
        f.request_id.as_ref().map(|r| r.as_str()),
        Some("crm-trace-5f2e9a01")
    );
    for piece in [
        "SQLException",
        "ORA-01017",
        "crm-db",
        "password",
        "hunter2",
        "CRM-2024",
    ] {
        assert!(!resp.text().contains(piece), "{piece}: {}", resp.text());
    }
    assert_eq!(bss.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_callback_urls_need_explicit_permission() {
    let (gw, p) = gateway(|c| c.callback.allow_http = false).await;
    let bss = StubUpstream::start(Reply::Fixture).await;
    set_callback(&gw, &p, &bss.url, None);
    gw.sync().await;
    let op = Operation::GetCustomerRecord;
    let resp = call(gw.addr, op, &callback_fixture(op, &p)).await;
    let f = callback_fault(&resp);
    assert_eq!(f.reason, cb::CallbackFaultReason::NotFound);
    assert!(
        f.message.as_str().contains("https"),
        "{}",
        f.message.as_str()
    );
    assert_eq!(bss.count(), 0);
}

/// A partner BSS over HTTPS with a certificate from the partner's own CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_the_partners_own_ca() {
    let (gw, p) = gateway(|c| c.callback.allow_http = false).await;
    let pki = test_pki();
    let acceptor = partnergate::server::tls_acceptor(&pki.cert_path, &pki.key_path).expect("TLS");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen2 = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let seen = Arc::clone(&seen2);
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let seen = Arc::clone(&seen);
                    async move {
                        let _ = req.into_body().collect().await;
                        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
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
    let url = format!("https://localhost:{port}/bss/callback");
    let op = Operation::GetCustomerRecord;
    // Without the partner's CA the system roots do not know the certificate.
    set_callback(&gw, &p, &url, None);
    gw.sync().await;
    let resp = call(gw.addr, op, &callback_fixture(op, &p)).await;
    assert_eq!(
        callback_fault(&resp).reason,
        cb::CallbackFaultReason::Unavailable,
        "{}",
        resp.text()
    );
    // With it, the call goes through.
    set_callback(&gw, &p, &url, Some(&pki.ca_pem));
    gw.sync().await;
    let resp = call(gw.addr, op, &callback_fixture(op, &p)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_wsdl_is_published() {
    let (gw, _) = gateway(|_| {}).await;
    let r = get(
        gw.addr,
        &format!("{CALLBACK_PATH}?wsdl"),
        Some("gw.example.net"),
    )
    .await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains("PartnerCallbackService"));
    assert!(
        text.contains("schemaLocation=\"http://gw.example.net/soap/callback/v1?xsd=callback.xsd\""),
        "{text}"
    );
    let xsd = get(gw.addr, &format!("{CALLBACK_PATH}?xsd=callback.xsd"), None).await;
    assert_eq!(xsd.status, 200);
    assert!(xsd.text().contains("CallbackAuth"));
}
