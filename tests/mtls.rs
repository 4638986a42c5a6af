#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Mutual TLS on the partner listener (issue 18): partners with registered client
//! certificates, with a CA and an expected subject, and without either, against the running
//! gateway on 127.0.0.1 with CAs and certificates made per run.

mod common;

use std::time::Duration;

use common::pki::{self_signed, Ca, Leaf, Spec};
use common::*;
use partnergate::admin::{Actor, Admin, ClientCaInput, Request, Rules, UpdatePartner};
use partnergate::envelope::{FaultCode, SoapVersion};
use partnergate::generated::partner::{FaultDetail, Operation};
use partnergate::generated::types::cmn::AccessDeniedReason as Reason;

const OP: Operation = Operation::GetAccount;

/// Registers client-certificate settings the way `partner update` does.
async fn update(gw: &TestGateway, partner: &Partner, update: UpdatePartner) {
    let admin = Admin::new(gw.store.clone());
    let request = Request::UpdatePartner {
        partner: partner.id.clone(),
        update,
    };
    admin
        .handle(request, &Rules::default(), &Actor::cli())
        .unwrap_or_else(|e| panic!("partner update: {e}"));
    gw.sync().await;
}

fn add_cert(leaf: &Leaf) -> UpdatePartner {
    UpdatePartner {
        add_client_certs: vec![leaf.pem.clone()],
        ..UpdatePartner::default()
    }
}

/// One GetAccount call of `p` over TLS, presenting `client`.
async fn call_tls(
    gw: &TestGateway,
    server_ca: &rustls::pki_types::CertificateDer<'static>,
    p: &Partner,
    client: Option<&Leaf>,
) -> RawResponse {
    let (mut c, _) = pki::connect_as(gw.addr, server_ca, client).await;
    let body = request_fixture(OP, SoapVersion::Soap11, p);
    let (ct, headers) = soap_headers(SoapVersion::Soap11, Some(OP.soap_action()));
    let mut h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    h.push(("Connection", "close"));
    c.send(&post_bytes("localhost", &ct, &h, &body))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), c.read_response())
        .await
        .expect("answer in time")
        .expect("answer")
}

fn assert_answered(resp: &RawResponse, what: &str) {
    assert_eq!(resp.status, 200, "{what}: {}", resp.text());
    assert_eq!(
        resp.text(),
        String::from_utf8(canonical_response(OP, SoapVersion::Soap11)).unwrap(),
        "{what}"
    );
}

/// `AccessDeniedFault` with reason `client-certificate`, built like every access refusal.
fn assert_refused(resp: &RawResponse, what: &str) {
    assert_eq!(
        resp.status,
        500,
        "{what}: SOAP 1.1 faults are 500: {}",
        resp.text()
    );
    let f = parse_fault_body(&resp.body);
    assert_eq!(f.code, FaultCode::Sender, "{what}");
    assert_eq!(
        f.reason,
        format!(
            "Access Denied: client certificate missing or not accepted (request {})",
            resp.request_id()
        ),
        "{what}"
    );
    match &f.detail {
        Some(FaultDetail::AccessDenied(d)) => {
            assert_eq!(d.reason, Reason::ClientCertificate, "{what}");
        }
        other => panic!("{what}: expected AccessDeniedFault, got {other:?}"),
    }
}

struct Tls {
    gw: TestGateway,
    _up: StubUpstream,
    server: TestPki,
}

/// A gateway with a TLS listener (its certificate from `test_pki`) in front of a stub upstream.
async fn tls_gateway() -> Tls {
    let up = StubUpstream::start(Reply::Fixture).await;
    let mut c = test_config();
    c.upstream.url = Some(up.url.clone());
    let (gw, server) = start_tls_gateway(c).await;
    Tls {
        gw,
        _up: up,
        server,
    }
}

/// Pinned certificates: the partner's own admits it (several at once, for rotation); none,
/// another partner's, a removed one or an expired one are refused; a partner without
/// certificates is unaffected by what the connection presents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_certificates_admit_only_their_partner() {
    let t = tls_gateway().await;
    let ca = &t.server.ca_der;
    let a = t.gw.partner(&["*"], &["127.0.0.0/8"]).await;
    let b = t.gw.partner(&["*"], &["127.0.0.0/8"]).await;
    let free = t.gw.partner(&["*"], &["127.0.0.0/8"]).await;
    // Self-signed: a pinned certificate needs no CA.
    let cert_a = self_signed(&Spec::client("bss-a.example"));
    let cert_a2 = self_signed(&Spec::client("bss-a.example"));
    let cert_b = self_signed(&Spec::client("bss-b.example"));
    let expired = self_signed(&Spec {
        expired: true,
        ..Spec::client("bss-a.example")
    });
    update(
        &t.gw,
        &a,
        UpdatePartner {
            add_client_certs: vec![cert_a.pem.clone(), cert_a2.pem.clone(), expired.pem.clone()],
            ..UpdatePartner::default()
        },
    )
    .await;
    update(&t.gw, &b, add_cert(&cert_b)).await;

    assert_answered(
        &call_tls(&t.gw, ca, &a, Some(&cert_a)).await,
        "A with its cert",
    );
    assert_answered(
        &call_tls(&t.gw, ca, &a, Some(&cert_a2)).await,
        "A with its 2nd cert",
    );
    assert_refused(&call_tls(&t.gw, ca, &a, None).await, "A without a cert");
    assert_refused(
        &call_tls(&t.gw, ca, &a, Some(&cert_b)).await,
        "A with B's cert",
    );
    assert_refused(
        &call_tls(&t.gw, ca, &a, Some(&expired)).await,
        "A, expired cert",
    );
    assert_answered(
        &call_tls(&t.gw, ca, &b, Some(&cert_b)).await,
        "B with its cert",
    );
    assert_refused(
        &call_tls(&t.gw, ca, &b, Some(&cert_a)).await,
        "B with A's cert",
    );
    assert_answered(
        &call_tls(&t.gw, ca, &free, None).await,
        "no certs: TLS without one",
    );
    assert_answered(
        &call_tls(&t.gw, ca, &free, Some(&cert_a)).await,
        "no certs: any cert",
    );

    // Removed by fingerprint: refused from the next snapshot on; the other stays.
    let fp = hex(&cert_a.der);
    update(
        &t.gw,
        &a,
        UpdatePartner {
            remove_client_certs: vec![fp.to_uppercase()],
            ..UpdatePartner::default()
        },
    )
    .await;
    assert_refused(
        &call_tls(&t.gw, ca, &a, Some(&cert_a)).await,
        "A, removed cert",
    );
    assert_answered(
        &call_tls(&t.gw, ca, &a, Some(&cert_a2)).await,
        "A, kept cert",
    );

    // The refusals are counted under their own outcome.
    let text = get_tls(t.gw.addr, ca, "/metrics").await.text();
    let series = format!(
        "partnergate_requests_total{{partner=\"{}\",operation=\"GetAccount\",outcome=\"denied-client-certificate\",face=\"soap\"}} 4",
        a.id
    );
    assert!(text.contains(&series), "{series} in\n{text}");
}

/// A partner CA and an expected subject: the CA's certificate with that subject is admitted;
/// another subject, an expired certificate, or the subject from another CA are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_ca_with_expected_subject() {
    let t = tls_gateway().await;
    let ca = &t.server.ca_der;
    let p = t.gw.partner(&["*"], &["127.0.0.0/8"]).await;
    let partner_ca = Ca::new("Example Partner CA");
    let other_ca = Ca::new("Someone Else's CA");
    let subject = Spec {
        o: Some("Example GmbH"),
        ..Spec::client("bss.example")
    };
    let good = partner_ca.leaf(&subject);
    let wrong_subject = partner_ca.leaf(&Spec {
        o: Some("Example GmbH"),
        ..Spec::client("intruder.example")
    });
    let expired = partner_ca.leaf(&Spec {
        expired: true,
        ..subject
    });
    let foreign = other_ca.leaf(&Spec {
        o: Some("Example GmbH"),
        ..Spec::client("bss.example")
    });
    update(
        &t.gw,
        &p,
        UpdatePartner {
            client_ca: Some(Some(ClientCaInput {
                ca_pem: partner_ca.pem.clone(),
                // Written in another order than the certificate's: the same subject.
                subject: "O=Example GmbH, CN=bss.example".into(),
            })),
            ..UpdatePartner::default()
        },
    )
    .await;
    assert_answered(
        &call_tls(&t.gw, ca, &p, Some(&good)).await,
        "right CA, right subject",
    );
    assert_refused(
        &call_tls(&t.gw, ca, &p, Some(&wrong_subject)).await,
        "right CA, wrong subject",
    );
    assert_refused(&call_tls(&t.gw, ca, &p, Some(&expired)).await, "expired");
    assert_refused(&call_tls(&t.gw, ca, &p, Some(&foreign)).await, "other CA");
    assert_refused(&call_tls(&t.gw, ca, &p, None).await, "no certificate");

    // Cleared: the partner calls without a certificate again.
    update(
        &t.gw,
        &p,
        UpdatePartner {
            client_ca: Some(None),
            ..UpdatePartner::default()
        },
    )
    .await;
    assert_answered(&call_tls(&t.gw, ca, &p, None).await, "CA cleared");
}

/// On a plain-HTTP listener a partner without client certificates works as before; one with
/// them is refused (no TLS, no certificate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_for_partners_without_certificates() {
    let up = StubUpstream::start(Reply::Fixture).await;
    let mut c = test_config();
    c.upstream.url = Some(up.url.clone());
    let gw = start_gateway(c).await;
    let free = gw.partner(&["*"], &["127.0.0.0/8"]).await;
    let pinned = gw.partner(&["*"], &["127.0.0.0/8"]).await;
    update(&gw, &pinned, add_cert(&self_signed(&Spec::client("x")))).await;
    let addr = gw.addr;
    let send = |p: &Partner| {
        let body = request_fixture(OP, SoapVersion::Soap11, p);
        async move { post_soap(addr, SoapVersion::Soap11, Some(OP.soap_action()), &body).await }
    };
    assert_answered(&send(&free).await, "plain HTTP, no certificates registered");
    assert_refused(&send(&pinned).await, "plain HTTP, certificates registered");
}

/// Registration refuses what is not one certificate, and a certificate registered already.
#[tokio::test]
async fn registration_is_validated() {
    let up = StubUpstream::start(Reply::Fixture).await;
    let mut c = test_config();
    c.upstream.url = Some(up.url.clone());
    let gw = start_gateway(c).await;
    let a = gw.partner(&["*"], &["127.0.0.0/8"]).await;
    let b = gw.partner(&["*"], &["127.0.0.0/8"]).await;
    let admin = Admin::new(gw.store.clone());
    let run = |p: &Partner, u: UpdatePartner| {
        admin
            .handle(
                Request::UpdatePartner {
                    partner: p.id.clone(),
                    update: u,
                },
                &Rules::default(),
                &Actor::cli(),
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let cert = self_signed(&Spec::client("bss.example"));
    let two = format!("{}{}", cert.pem, self_signed(&Spec::client("y")).pem);
    let e = run(
        &a,
        UpdatePartner {
            add_client_certs: vec![two],
            ..Default::default()
        },
    );
    assert!(
        e.as_ref().is_err_and(|e| e.contains("2 certificates")),
        "{e:?}"
    );
    let e = run(
        &a,
        UpdatePartner {
            add_client_certs: vec!["hello".into()],
            ..Default::default()
        },
    );
    assert!(
        e.as_ref()
            .is_err_and(|e| e.contains("no certificate found")),
        "{e:?}"
    );
    run(&a, add_cert(&cert)).unwrap();
    let e = run(&b, add_cert(&cert));
    assert!(
        e.as_ref().is_err_and(|e| e.contains("registered already")),
        "{e:?}"
    );
    let e = run(
        &a,
        UpdatePartner {
            remove_client_certs: vec!["abc".into()],
            ..Default::default()
        },
    );
    assert!(e.as_ref().is_err_and(|e| e.contains("SHA-256")), "{e:?}");
    let ca = Ca::new("CA");
    let e = run(
        &a,
        UpdatePartner {
            client_ca: Some(Some(ClientCaInput {
                ca_pem: ca.pem.clone(),
                subject: "not a subject".into(),
            })),
            ..Default::default()
        },
    );
    assert!(
        e.as_ref().is_err_and(|e| e.contains("client_ca.subject")),
        "{e:?}"
    );
    // `partner show`'s data: fingerprint, subject, dates, state.
    let detail = gw.store.partner_detail(&a.id).unwrap();
    assert_eq!(detail.client_certs.len(), 1);
    assert_eq!(detail.client_certs[0].sha256, hex(&cert.der));
    assert_eq!(detail.client_certs[0].subject, "CN=bss.example");
}

/// The SHA-256 of a DER certificate, lower-case hex.
fn hex(der: &[u8]) -> String {
    partnergate::certificate::fingerprint_hex(&partnergate::certificate::fingerprint(der))
}

use common::pki;
