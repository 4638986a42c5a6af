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
use partnergate::generated::callback::{self, Operation};
use partnergate::generated::types::cb;
use partnergate::store::PartnerChanges;

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

/// The one text the TSP gets for every failure to reach the partner or get a valid answer.
const UNAVAILABLE: &str =
    "Unavailable: the partner's system could not be reached or did not answer correctly";

/// A gateway whose callbacks may use `http://` and reach loopback (where the stub BSS listens):
/// both are closed by default.
async fn gateway(
    configure: impl FnOnce(&mut partnergate::config::Config),
) -> (TestGateway, Partner) {
    let mut config = test_config();
    config.callback.allow_http = true;
    config.callback.allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
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
        let resp = post_callback(gw.addr, op, &callback_fixture(op, &p)).await;
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
        let resp = post_callback(gw.addr, op, &body).await;
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
    let resp = post_callback(gw.addr, op, &bad).await;
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
    let resp = post_callback(gw.addr, op, &callback_fixture(op, &p)).await;
    assert_eq!(
        callback_fault(&resp).reason,
        cb::CallbackFaultReason::AuthenticationFailed
    );
    assert_eq!(bss.count(), 0);
}

/// A caller outside `callback.allowed_callers` (here: an address a partner's allowlist admits
/// through the accept gate) is refused on its head: the 256 KiB it declares is never waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_caller_is_refused_before_its_body_is_read() {
    let (gw, _p) =
        gateway(|c| c.callback.allowed_callers = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let mut c = Conn::connect(gw.addr).await;
    let head = format!(
        "POST {CALLBACK_PATH} HTTP/1.1\r\nHost: gw\r\nContent-Type: text/xml; charset=utf-8\r\n\
         Content-Length: {}\r\n\r\n<soap",
        256 * 1024
    );
    c.send(head.as_bytes()).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(2), c.read_response())
        .await
        .expect("answered without the body (body timeout here: 3 s)")
        .unwrap();
    assert_eq!(resp.status, 500, "{}", resp.text());
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(
        callback_fault(&resp).reason,
        cb::CallbackFaultReason::AuthenticationFailed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_down_slow_or_wrong_is_a_clear_fault() {
    let (gw, p) = gateway(|_| {}).await;
    let op = Operation::GetCustomerRecord;
    // No callback URL registered.
    let resp = post_callback(gw.addr, op, &callback_fixture(op, &p)).await;
    assert_eq!(
        callback_fault(&resp).reason,
        cb::CallbackFaultReason::NotFound
    );
    // Down.
    set_callback(&gw, &p, &closed_port_url(), None);
    gw.sync().await;
    let resp = post_callback(gw.addr, op, &callback_fixture(op, &p)).await;
    let f = callback_fault(&resp);
    assert_eq!(f.reason, cb::CallbackFaultReason::Unavailable);
    assert_eq!(f.message.as_str(), UNAVAILABLE);
    // Slow: answered within the response timeout plus slack, never a hang.
    let slow = StubUpstream::start(Reply::Delay(Duration::from_secs(3))).await;
    set_callback(&gw, &p, &slow.url, None);
    gw.sync().await;
    let started = Instant::now();
    let resp = post_callback(gw.addr, op, &callback_fixture(op, &p)).await;
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
    let resp = post_callback(gw.addr, op, &callback_fixture(op, &p)).await;
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
    let resp = post_callback(gw.addr, op, &callback_fixture(op, &p)).await;
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
    let resp = post_callback(gw.addr, op, &callback_fixture(op, &p)).await;
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
    let resp = post_callback(gw.addr, op, &callback_fixture(op, &p)).await;
    assert_eq!(
        callback_fault(&resp).reason,
        cb::CallbackFaultReason::Unavailable,
        "{}",
        resp.text()
    );
    // With it, the call goes through.
    set_callback(&gw, &p, &url, Some(&pki.ca_pem));
    gw.sync().await;
    let resp = post_callback(gw.addr, op, &callback_fixture(op, &p)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_wsdl_is_published() {
    let (gw, _) = gateway(|c| c.public_hosts = vec!["gw.example.net".into()]).await;
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
    // A Host that is not listed in public_hosts is never reflected: the listener's address is.
    let forged = get(
        gw.addr,
        &format!("{CALLBACK_PATH}?wsdl"),
        Some("evil.example"),
    )
    .await;
    assert_eq!(forged.status, 200);
    assert_eq!(forged.header("cache-control"), Some("no-cache"));
    assert!(!forged.text().contains("evil.example"));
    assert!(
        forged.text().contains(&format!(
            "schemaLocation=\"http://{}/soap/callback/v1?xsd=callback.xsd\"",
            gw.addr
        )),
        "{}",
        forged.text()
    );
    let xsd = get(gw.addr, &format!("{CALLBACK_PATH}?xsd=callback.xsd"), None).await;
    assert_eq!(xsd.status, 200);
    assert!(xsd.text().contains("CallbackAuth"));
    assert!(text.contains("PartnerCallbackSoap12Port"), "{text}");

    // The SOAP 1.1-only view, for partners whose toolkits reject SOAP 1.2 bindings: the same
    // contract without the SOAP 1.2 binding, port and namespace, schemas served from here.
    let r = get(
        gw.addr,
        &format!("{CALLBACK_PATH}?wsdl=soap11"),
        Some("gw.example.net"),
    )
    .await;
    assert_eq!(r.status, 200);
    let view = r.text();
    assert!(view.contains("PartnerCallbackSoap11Port"), "{view}");
    assert!(!view.contains("soap12"), "{view}");
    assert!(
        view.contains("schemaLocation=\"http://gw.example.net/soap/callback/v1?xsd=callback.xsd\""),
        "{view}"
    );
    for op in ["GetCustomerRecord", "NotifyProvisioningEvent"] {
        assert!(
            view.contains(&format!("<wsdl:operation name=\"{op}\">")),
            "{op}"
        );
    }
    assert_eq!(
        get(gw.addr, &format!("{CALLBACK_PATH}?wsdl=soap13"), None)
            .await
            .status,
        404
    );
}

/// The fault text and status the TSP gets, without the request id.
fn unavailable_answer(resp: &RawResponse) -> (u16, String, String) {
    let f = callback_fault(resp);
    assert_eq!(
        f.reason,
        cb::CallbackFaultReason::Unavailable,
        "{}",
        resp.text()
    );
    let env = envelope::scan(&resp.body).unwrap();
    let reason = envelope::parse_fault(&env).unwrap().reason;
    let reason = reason
        .split(" (request ")
        .next()
        .unwrap_or_default()
        .to_string();
    (resp.status, reason, f.message.as_str().to_string())
}

/// Only the `CallbackAuth` that was verified reaches the partner: a block addressed to another
/// SOAP node (which authentication rightly ignores) naming another partner, placed first, is
/// neither relayed nor read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_verified_callback_credential_is_relayed() {
    let (gw, a) = gateway(|_| {}).await;
    let b = gw.partner(&["*"], &["127.0.0.0/8"]).await;
    let bss = StubUpstream::start(Reply::Fixture).await;
    set_callback(&gw, &a, &bss.url, None);
    gw.sync().await;
    let op = Operation::NotifyProvisioningEvent;
    let forged_key = format!("pgc_{}", "7".repeat(64));
    let foreign = format!(
        "<cb:CallbackAuth soapenv:actor=\"http://intermediary.example/\">\
         <cb:PartnerId>{}</cb:PartnerId><cb:CallbackKey>{forged_key}</cb:CallbackKey></cb:CallbackAuth>",
        b.id
    );
    let body = String::from_utf8(callback_fixture(op, &a))
        .unwrap()
        .replacen("<soapenv:Header>", &format!("<soapenv:Header>{foreign}"), 1);
    let resp = post_callback(gw.addr, op, body.as_bytes()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let got = bss.take();
    assert_eq!(got.len(), 1);
    let env = envelope::scan(&got[0].body).expect("scan");
    let (ns, local) = callback::AUTH_HEADER_ELEMENT;
    let blocks: Vec<_> = env
        .headers
        .iter()
        .filter(|h| h.element.is(ns, local))
        .collect();
    assert_eq!(blocks.len(), 1, "one CallbackAuth relayed");
    let header = decode::callback_auth(&blocks[0].element, DecodeLimits::header_block())
        .expect("CallbackAuth");
    assert_eq!(header.partner_id.as_str(), a.id, "the verified partner");
    assert_eq!(
        header.callback_key.as_str(),
        a.callback_key,
        "the verified key"
    );
    let text = String::from_utf8_lossy(&got[0].body);
    assert!(
        !text.contains(&b.id) && !text.contains(&forged_key),
        "{text}"
    );
}

/// Two SOAPAction headers are refused on the callback path as on the partner path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_with_two_soap_actions_is_refused() {
    let (gw, p) = gateway(|_| {}).await;
    let bss = StubUpstream::start(Reply::Fixture).await;
    set_callback(&gw, &p, &bss.url, None);
    gw.sync().await;
    let op = Operation::GetCustomerRecord;
    let body = callback_fixture(op, &p);
    let mut req = format!(
        "POST {CALLBACK_PATH} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/xml; charset=utf-8\r\nSOAPAction: \"{a}\"\r\nSOAPAction: \"{a}\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        gw.addr,
        body.len(),
        a = op.soap_action(),
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let resp = exchange(gw.addr, &req).await;
    assert_eq!(resp.status, 500, "{}", resp.text());
    let f = callback_fault(&resp);
    assert_eq!(f.reason, cb::CallbackFaultReason::InvalidRequest);
    assert_eq!(
        f.message.as_str(),
        "Invalid Request: the callback does not match the contract: more than one SOAPAction header"
    );
    assert_eq!(bss.count(), 0, "nothing reached the partner");
}

/// A callback URL whose name resolves to an internal address passes the save-time check (names
/// are not resolved then) but the relay refuses to connect: by default no internal network is
/// open, and the TSP gets the one "unavailable" answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_to_loopback_is_refused_when_connecting() {
    let (gw, p) = gateway(|c| c.callback.allowed_networks = Vec::new()).await;
    let bss = StubUpstream::start(Reply::Fixture).await;
    let url = format!("http://localhost:{}/bss", bss.addr.port());
    let rules = partnergate::admin::Rules {
        allow_http_callbacks: true,
        callback_allowed_networks: Vec::new(),
    };
    partnergate::admin::Admin::new(gw.store.clone())
        .handle(
            partnergate::admin::Request::UpdatePartner {
                partner: p.id.clone(),
                update: partnergate::admin::UpdatePartner {
                    callback_url: Some(Some(url)),
                    ..partnergate::admin::UpdatePartner::default()
                },
            },
            &rules,
            &partnergate::admin::Actor::cli(),
        )
        .expect("a name passes the save-time check");
    gw.sync().await;
    let op = Operation::GetCustomerRecord;
    let resp = post_callback(gw.addr, op, &callback_fixture(op, &p)).await;
    let (status, reason, message) = unavailable_answer(&resp);
    assert_eq!(
        (status, reason.as_str(), message.as_str()),
        (500, UNAVAILABLE, UNAVAILABLE)
    );
    assert_eq!(bss.count(), 0, "the BSS stub on loopback was not called");
    // An IP literal written past the save-time check (straight into the database) is refused
    // when connecting too.
    set_callback(&gw, &p, &bss.url, None);
    gw.sync().await;
    let resp = post_callback(gw.addr, op, &callback_fixture(op, &p)).await;
    assert_eq!(unavailable_answer(&resp).2, UNAVAILABLE);
    assert_eq!(bss.count(), 0, "the BSS stub on loopback was not called");
}

/// Refused target, connection refused and an HTTP 401 answer read exactly the same for the TSP
/// (status, fault reason, CallbackFault message): the callback URL is no port scanner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_to_reach_the_partner_reads_the_same() {
    let (gw, p) =
        gateway(|c| c.callback.allowed_networks = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let op = Operation::GetCustomerRecord;
    let denied = StubUpstream::start(Reply::Status(401)).await;
    let cases = [
        ("HTTP 401", denied.url.clone()),
        ("connection refused", closed_port_url()),
        (
            "refused target (127.0.0.2 is outside the allowed 127.0.0.1/32)",
            format!("http://127.0.0.2:{}/bss", denied.addr.port()),
        ),
    ];
    for (what, url) in cases {
        set_callback(&gw, &p, &url, None);
        gw.sync().await;
        let resp = post_callback(gw.addr, op, &callback_fixture(op, &p)).await;
        let (status, reason, message) = unavailable_answer(&resp);
        assert_eq!(
            (status, reason.as_str(), message.as_str()),
            (500, UNAVAILABLE, UNAVAILABLE),
            "{what}"
        );
    }
    assert_eq!(denied.count(), 1, "only the 401 case reached the stub");
}
