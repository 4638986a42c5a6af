//! Partner enrollment through the real binary (`/soap/enrollment/v1`, issue 19): the whole flow
//! with a zeep client generated from the served WSDL and the operator's CLI, and the anonymous
//! endpoint's defences — closed by default, the per-address limit, the pending cap, no oracle
//! between an unknown id and a wrong pickup secret, hostile XML refused by the limits pass, and
//! concurrent pickups of which exactly one gets the keys.
//!
//! Needs the zeep venv `.ci/setup` installs (`PARTNERGATE_VENV`, default
//! `/opt/partnergate/venv`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;
#[path = "common/serve.rs"]
mod serve;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use partnergate::envelope::FaultCode;
use partnergate::generated::partner::FaultDetail;
use partnergate::generated::types::cmn::AccessDeniedReason;
use serve::Binary;

const REQUEST_ACTION: &str = "urn:partnergate:enrollment:v1/RequestEnrollment";
const STATUS_ACTION: &str = "urn:partnergate:enrollment:v1/GetEnrollmentStatus";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_partnergate")
}

fn venv_python() -> PathBuf {
    let venv = std::env::var("PARTNERGATE_VENV").unwrap_or_else(|_| "/opt/partnergate/venv".into());
    let python = Path::new(&venv).join("bin/python");
    assert!(
        python.exists(),
        "{}: zeep is not installed",
        python.display()
    );
    python
}

/// A `RequestEnrollment` envelope for the loopback network.
fn request_enrollment(company: &str) -> Vec<u8> {
    request_enrollment_with(company, None)
}

/// [`request_enrollment`], with a client certificate (PEM) when given.
fn request_enrollment_with(company: &str, client_certificate: Option<&str>) -> Vec<u8> {
    let cert = client_certificate.map_or_else(String::new, |pem| {
        format!("<e:ClientCertificate>{}</e:ClientCertificate>", pem.trim())
    });
    format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:e="urn:partnergate:enrollment:v1" xmlns:c="urn:partnergate:partner:common:v1"><s:Body><e:RequestEnrollment><e:CompanyName>{company}</e:CompanyName><e:Country>DE</e:Country><e:Contact><c:FirstName>Anna</c:FirstName><c:LastName>Muller</c:LastName></e:Contact><e:Operation>CreateAccount</e:Operation><e:Network>127.0.0.1/32</e:Network>{cert}<e:AcceptedTerms>1</e:AcceptedTerms></e:RequestEnrollment></s:Body></s:Envelope>"#
    )
    .into_bytes()
}

fn get_status(id: &str, secret: &str) -> Vec<u8> {
    format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:e="urn:partnergate:enrollment:v1"><s:Body><e:GetEnrollmentStatus><e:EnrollmentId>{id}</e:EnrollmentId><e:PickupSecret>{secret}</e:PickupSecret></e:GetEnrollmentStatus></s:Body></s:Envelope>"#
    )
    .into_bytes()
}

/// The text of the first `<enr:NAME>` element of a response.
fn element(body: &str, name: &str) -> Option<String> {
    let open = format!("<enr:{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find('<')? + start;
    Some(body[start..end].to_string())
}

/// POSTs a SOAP 1.1 message to the enrollment endpoint on a fresh connection.
async fn call(addr: SocketAddr, action: &str, body: &[u8]) -> RawResponse {
    let mut request = format!(
        "POST /soap/enrollment/v1 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml; charset=utf-8\r\nSOAPAction: \"{action}\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    exchange(addr, &request).await
}

/// Files a request; (enrollment id, pickup secret).
async fn file(addr: SocketAddr, company: &str) -> (String, String) {
    file_body(addr, &request_enrollment(company)).await
}

/// Files the request `body`; (enrollment id, pickup secret).
async fn file_body(addr: SocketAddr, body: &[u8]) -> (String, String) {
    let r = call(addr, REQUEST_ACTION, body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    (
        element(&text, "EnrollmentId").expect("id"),
        element(&text, "PickupSecret").expect("secret"),
    )
}

fn cli(db: &Path, args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(args)
        .args(["--database-url", &db.display().to_string()])
        .output()
        .expect("run the CLI");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn open_env(extra: &[(&str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![("PARTNERGATE_ENROLLMENT_ALLOW", "127.0.0.1/32".to_string())];
    for (k, v) in extra {
        let key: &'static str = Box::leak(k.to_string().into_boxed_str());
        env.push((key, (*v).to_string()));
    }
    env
}

fn access_denied(r: &RawResponse) -> (AccessDeniedReason, String) {
    let f = parse_fault_body(&r.body);
    assert_eq!(f.code, FaultCode::Sender);
    match f.detail {
        Some(FaultDetail::AccessDenied(d)) => (d.reason, f.reason),
        other => panic!("expected AccessDeniedFault, got {other:?}"),
    }
}

fn throttled(r: &RawResponse) -> (u32, String) {
    let f = parse_fault_body(&r.body);
    match f.detail {
        Some(FaultDetail::Throttled(d)) => (d.retry_after_seconds, f.reason),
        other => panic!("expected ThrottledFault, got {other:?}: {}", r.text()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeep_enrolls_collects_once_and_calls_with_the_collected_key() {
    let up = StubUpstream::start(Reply::Fixture).await;
    let db = temp_path("enroll-e2e", "db");
    let env = open_env(&[("PARTNERGATE_ENROLLMENT_BURST", "20")]);
    let binary = Binary::serve(db.clone(), &up.url, &env).await;
    let base = format!("http://{}", binary.addr);
    let zeep = move |args: &[&str]| -> serde_json::Value {
        let out = Command::new(venv_python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/zeep_enrollment.py"))
            .arg(&base)
            .args(args)
            .output()
            .expect("run zeep");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "zeep failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("JSON")
    };
    let filed = tokio::task::spawn_blocking({
        let zeep = zeep.clone();
        move || zeep(&["request"])
    })
    .await
    .unwrap();
    assert_eq!(filed["status"], "PENDING");
    assert_eq!(filed["then"], "PENDING");
    let id = filed["enrollment_id"].as_str().unwrap().to_string();
    let secret = filed["pickup_secret"].as_str().unwrap().to_string();

    let listed = cli(&db, &["enrollment", "list", "--status", "pending"]);
    assert!(
        listed.contains(&id) && listed.contains("Zeta Networks"),
        "{listed}"
    );
    let approved = cli(&db, &["enrollment", "approve", &id]);
    assert!(
        approved.contains("approved: partner PARTNER-0001 created"),
        "{approved}"
    );

    let collected = tokio::task::spawn_blocking(move || zeep(&["collect", &id, &secret]))
        .await
        .unwrap();
    assert_eq!(collected["first"], "APPROVED");
    assert_eq!(collected["partner_id"], "PARTNER-0001");
    assert_eq!(collected["second"], "COLLECTED");
    assert_eq!(collected["account"], "ACC-0000001001");
    let calls = up.requests();
    assert_eq!(calls.len(), 1, "the upstream got the one CreateAccount");
    assert!(String::from_utf8_lossy(&calls[0].body).contains("CreateAccount"));
    // The audit log has the approval, the partner's creation and the collection (prefixes only).
    let audit = cli(&db, &["audit", "list"]);
    for action in ["enrollment.approve", "partner.create", "enrollment.collect"] {
        assert!(audit.contains(action), "{audit}");
    }
    assert!(
        !binary.log().contains("pge_") && !binary.log().contains("pgk_6"),
        "no secret logged"
    );
}

/// A request that carries a client certificate: approving it through the CLI registers that
/// certificate for the new partner (`partner show` lists the fingerprint the enrollment showed,
/// the `enrollment.approve` audit row names it); `--no-client-cert` approves another request
/// with the partner registering none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_registers_the_client_certificate_unless_opted_out() {
    use common::pki::{self_signed, Spec};
    let up = StubUpstream::start(Reply::Fixture).await;
    let db = temp_path("enroll-cert", "db");
    let env = open_env(&[("PARTNERGATE_ENROLLMENT_BURST", "10")]);
    let binary = Binary::serve(db.clone(), &up.url, &env).await;
    let json = |out: String| -> serde_json::Value { serde_json::from_str(&out).expect("JSON") };
    let registered = |partner: &str| -> Vec<String> {
        let shown = json(cli(&db, &["partner", "show", partner, "--json"]));
        shown["client_certs"]
            .as_array()
            .expect("client_certs")
            .iter()
            .map(|c| c["sha256"].as_str().unwrap().to_owned())
            .collect()
    };

    let kept = self_signed(&Spec::client("certa.example"));
    let fingerprint = partnergate::certificate::fingerprint_hex(
        &partnergate::certificate::fingerprint(&kept.der),
    );
    let body = request_enrollment_with("Certa", Some(&kept.pem));
    let (id, _) = file_body(binary.addr, &body).await;
    let shown = json(cli(&db, &["enrollment", "show", &id, "--json"]));
    assert_eq!(shown["client_certificate_sha256"], fingerprint.as_str());
    let approved = cli(&db, &["enrollment", "approve", &id, "--id", "CERTA-01"]);
    assert!(
        approved.contains("created with its client certificate"),
        "{approved}"
    );
    assert_eq!(registered("CERTA-01"), [fingerprint.as_str()]);
    let audit = cli(&db, &["audit", "list", "--target", &id, "--json"]);
    assert!(audit.contains(&fingerprint), "{audit}");

    let other = self_signed(&Spec::client("certb.example"));
    let body = request_enrollment_with("Certb", Some(&other.pem));
    let (id, _) = file_body(binary.addr, &body).await;
    let approved = cli(
        &db,
        &[
            "enrollment",
            "approve",
            &id,
            "--id",
            "CERTB-01",
            "--no-client-cert",
        ],
    );
    assert!(!approved.contains("client certificate"), "{approved}");
    assert!(registered("CERTB-01").is_empty());
    assert_eq!(registered("CERTA-01").len(), 1);
}

#[tokio::test]
async fn closed_by_default_with_one_clear_fault() {
    let up = StubUpstream::start(Reply::Fixture).await;
    let binary = Binary::serve(temp_path("enroll-closed", "db"), &up.url, &[]).await;
    let r = call(binary.addr, REQUEST_ACTION, &request_enrollment("Acme")).await;
    assert_eq!(r.status, 500, "SOAP 1.1 faults are 500 (WS-I)");
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "refused before the body"
    );
    let (reason, text) = access_denied(&r);
    assert_eq!(reason, AccessDeniedReason::SourceNotAllowed);
    assert!(
        text.starts_with("Access Denied: enrollment is not open to this address (request gw-"),
        "{text}"
    );
}

#[tokio::test]
async fn the_per_address_limit_admits_the_burst_then_refuses() {
    let up = StubUpstream::start(Reply::Fixture).await;
    let env = open_env(&[
        ("PARTNERGATE_ENROLLMENT_RATE_PER_MINUTE", "1"),
        ("PARTNERGATE_ENROLLMENT_BURST", "3"),
    ]);
    let binary = Binary::serve(temp_path("enroll-rate", "db"), &up.url, &env).await;
    let unknown = get_status(
        "enr_00000000000000000000000000000000",
        &format!("pge_{}", "0".repeat(64)),
    );
    for i in 0..3 {
        let r = call(binary.addr, STATUS_ACTION, &unknown).await;
        let (reason, _) = access_denied(&r);
        assert_eq!(reason, AccessDeniedReason::AuthenticationFailed, "call {i}");
    }
    let r = call(binary.addr, STATUS_ACTION, &unknown).await;
    let (retry, text) = throttled(&r);
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(text.contains("enrollment.rate_per_minute"), "{text}");
    assert_eq!(r.header("retry-after"), Some(retry.to_string().as_str()));
}

#[tokio::test]
async fn the_pending_cap_refuses_further_requests() {
    let up = StubUpstream::start(Reply::Fixture).await;
    let env = open_env(&[
        ("PARTNERGATE_ENROLLMENT_MAX_PENDING", "2"),
        ("PARTNERGATE_ENROLLMENT_BURST", "10"),
    ]);
    let binary = Binary::serve(temp_path("enroll-cap", "db"), &up.url, &env).await;
    file(binary.addr, "One").await;
    file(binary.addr, "Two").await;
    let r = call(binary.addr, REQUEST_ACTION, &request_enrollment("Three")).await;
    let (retry, text) = throttled(&r);
    assert_eq!(retry, 3600);
    assert!(text.contains("enrollment.max_pending"), "{text}");
}

#[tokio::test]
async fn an_unknown_id_and_a_wrong_secret_get_the_same_bytes() {
    let up = StubUpstream::start(Reply::Fixture).await;
    let env = open_env(&[("PARTNERGATE_ENROLLMENT_BURST", "10")]);
    let binary = Binary::serve(temp_path("enroll-oracle", "db"), &up.url, &env).await;
    let (id, secret) = file(binary.addr, "Acme").await;
    let wrong = format!("pge_{}", "1".repeat(64));
    assert_ne!(secret, wrong);
    let unknown_id = format!("enr_{}", "f".repeat(32));
    let a = call(binary.addr, STATUS_ACTION, &get_status(&id, &wrong)).await;
    let b = call(
        binary.addr,
        STATUS_ACTION,
        &get_status(&unknown_id, &secret),
    )
    .await;
    assert_eq!(a.status, b.status);
    // Each answer carries its own request id; everything else is byte for byte the same.
    let masked = |r: &RawResponse| r.text().replace(&r.request_id(), "REQUEST-ID");
    assert_eq!(masked(&a), masked(&b));
    assert_eq!(
        access_denied(&a).0,
        AccessDeniedReason::AuthenticationFailed
    );
}

#[tokio::test]
async fn hostile_xml_is_refused_by_the_limits_pass() {
    let up = StubUpstream::start(Reply::Fixture).await;
    let env = open_env(&[("PARTNERGATE_ENROLLMENT_BURST", "10")]);
    let db = temp_path("enroll-hostile", "db");
    let binary = Binary::serve(db.clone(), &up.url, &env).await;
    let laughs = br#"<?xml version="1.0"?><!DOCTYPE s [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><e:RequestEnrollment xmlns:e="urn:partnergate:enrollment:v1"><e:CompanyName>&b;</e:CompanyName></e:RequestEnrollment></s:Body></s:Envelope>"#;
    let deep = {
        let mut s = String::from(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><e:RequestEnrollment xmlns:e="urn:partnergate:enrollment:v1">"#,
        );
        s.push_str(&"<e:CompanyName>".repeat(200));
        s.push_str(&"</e:CompanyName>".repeat(200));
        s.push_str("</e:RequestEnrollment></s:Body></s:Envelope>");
        s.into_bytes()
    };
    for (body, rule) in [
        (&laughs[..], "doctype"),
        (&deep[..], "limits.xml.max_depth"),
    ] {
        let r = call(binary.addr, REQUEST_ACTION, body).await;
        let f = parse_fault_body(&r.body);
        match f.detail {
            Some(FaultDetail::InvalidRequest(d)) => assert_eq!(d.rule.as_str(), rule),
            other => panic!("expected InvalidRequestFault, got {other:?}"),
        }
    }
    let listed = cli(&db, &["enrollment", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(
        v["enrollments"].as_array().map(Vec::len),
        Some(0),
        "nothing was filed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pickups_give_the_keys_to_exactly_one() {
    let up = StubUpstream::start(Reply::Fixture).await;
    let db = temp_path("enroll-race", "db");
    let env = open_env(&[("PARTNERGATE_ENROLLMENT_BURST", "50")]);
    let binary = Binary::serve(db.clone(), &up.url, &env).await;
    let (id, secret) = file(binary.addr, "Racer").await;
    cli(&db, &["enrollment", "approve", &id]);
    let addr = binary.addr;
    let body = get_status(&id, &secret);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let body = body.clone();
            tokio::spawn(async move { call(addr, STATUS_ACTION, &body).await })
        })
        .collect();
    let mut with_keys = 0;
    let mut collected = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let text = r.text();
        match element(&text, "Status").as_deref() {
            Some("APPROVED") => {
                assert!(element(&text, "ApiKey").is_some());
                with_keys += 1;
            }
            Some("COLLECTED") => {
                assert!(element(&text, "ApiKey").is_none());
                collected += 1;
            }
            other => panic!("unexpected status {other:?}"),
        }
    }
    assert_eq!((with_keys, collected), (1, 7));
    // Exactly two keys (one partner key, one callback key) were stored.
    let keys = cli(&db, &["key", "list", "PARTNER-0001", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&keys).unwrap();
    assert_eq!(v["keys"].as_array().map(Vec::len), Some(2), "{keys}");
}

/// Eight threads collect one approved enrollment at the same instant, straight through the
/// store: exactly one gets keys, and exactly two key hashes are stored. On SQLite, and on
/// PostgreSQL when `PARTNERGATE_TEST_POSTGRES_URL` is set (`tests/run.sh`).
#[test]
fn racing_collections_in_the_store_give_the_keys_once() {
    use partnergate::store::{Approval, EnrollmentRequest, NewPartner, Store};
    let sqlite = temp_path("enroll-store-race", "db");
    let mut urls = vec![sqlite.display().to_string()];
    let pg = std::env::var("PARTNERGATE_TEST_POSTGRES_URL")
        .ok()
        .map(|_| fresh_postgres_database("enroll_race"));
    if let Some((_, _, db)) = &pg {
        urls.push(db.clone());
    }
    for url in urls {
        let store = Store::open(&url).unwrap();
        let secret = format!("pge_{}", "7".repeat(64));
        let hash = partnergate::secret::hash(&secret);
        let request = EnrollmentRequest {
            company: "Racer".into(),
            country: "DE".into(),
            operations: vec!["accounts.create".into()],
            networks: vec!["127.0.0.1/32".into()],
            accepted_terms: "1".into(),
            ..EnrollmentRequest::default()
        };
        let id = "enr_0123456789abcdef0123456789abcdef";
        store
            .file_enrollment(id, &hash, &request, "127.0.0.1", 10)
            .unwrap();
        let approval = Approval {
            partner: NewPartner {
                name: "Racer".into(),
                allow: vec!["127.0.0.1/32".parse().unwrap()],
                grants: vec!["accounts.create".into()],
                ..NewPartner::default()
            },
            ..Approval::default()
        };
        let partner = store
            .approve_enrollment("test", id, approval, &known_permissions())
            .unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (store, barrier) = (store.clone(), std::sync::Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    // SQLite may answer "database is locked" to a loser: it got nothing either.
                    store.collect_enrollment(id, &hash).ok().flatten().is_some()
                })
            })
            .collect();
        let winners = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|won| *won)
            .count();
        assert_eq!(winners, 1, "{url}");
        assert_eq!(store.list_keys(&partner).unwrap().len(), 2, "{url}");
    }
    remove_db(&sqlite);
}
