//! The REST/JSON face, black-box: the real binary (`partnergate serve` on a SQLite file of its
//! own) in front of the stub upstream, called over raw HTTP/1.1.
//!
//! - CreateAccount → GetAccount → AddService through JSON: each answer is the golden
//!   `response.json` of the operation, and the upstream receives byte for byte what it receives
//!   when the same fixture comes through the SOAP face (the gateway's request id aside).
//! - Every refusal is the exact `application/problem+json` document with its status (and
//!   `Allow`, `Retry-After`, `WWW-Authenticate` where they belong), and none reaches the
//!   upstream.
//! - The partner API's own faults (NotFound, Conflict, an invalid answer) are problems of their
//!   kind and status with their typed detail in JSON and the gateway's texts.
//! - `/metrics` and the access line carry `face="rest"`.
//! - The OpenAPI document names this deployment, and the docs page is served without script.

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
use std::time::{Duration, Instant};

use common::*;
use partnergate::envelope::SoapVersion;
use partnergate::generated::partner::Operation;
use partnergate::store::{Rate, Store};
use serve::Binary;

/// One REST call on a fresh connection: `method` `target` with `headers` and a body of
/// `content_type` (none when `None`).
async fn call(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> RawResponse {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let mut bytes = Vec::new();
    match body {
        Some((ct, b)) => {
            head.push_str(&format!(
                "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
                b.len()
            ));
            bytes.extend_from_slice(head.as_bytes());
            bytes.extend_from_slice(b);
        }
        None => {
            head.push_str("\r\n");
            bytes.extend_from_slice(head.as_bytes());
        }
    }
    exchange(addr, &bytes).await
}

fn auth(p: &Partner) -> Vec<(&str, String)> {
    vec![
        ("X-Partner-Id", p.id.clone()),
        ("Authorization", format!("Bearer {}", p.key)),
    ]
}

async fn rest(
    addr: SocketAddr,
    p: &Partner,
    method: &str,
    target: &str,
    body: Option<&[u8]>,
) -> RawResponse {
    let h = auth(p);
    let headers: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    call(
        addr,
        method,
        target,
        &headers,
        body.map(|b| ("application/json", b)),
    )
    .await
}

fn json_fixture(op: Operation, file: &str) -> Vec<u8> {
    fixture(&format!("{}/{file}", op.name()))
}

/// Asserts `r` is exactly the problem `expected` (with `{rid}` for the request id) and `status`.
fn assert_problem(r: &RawResponse, status: u16, expected: &str) {
    let rid = r.request_id();
    assert_eq!(
        (r.status, r.header("content-type")),
        (status, Some("application/problem+json")),
        "{}",
        r.text()
    );
    assert_eq!(r.text(), expected.replace("{rid}", &rid));
}

/// The problem of an invalid request refused by the JSON decoder.
fn invalid(path: &str, rule: &str, message: &str) -> String {
    format!(
        "{{\"type\":\"urn:partnergate:problem:invalid-request\",\"title\":\"Invalid request\",\"status\":400,\
         \"detail\":\"Invalid Request: {path}: {message}\",\"requestId\":\"{{rid}}\",\"rule\":\"{rule}\",\"path\":\"{path}\",\
         \"InvalidRequestFault\":{{\"Path\":\"{path}\",\"Rule\":\"{rule}\",\"Message\":\"{path}: {message}\",\"RequestId\":\"{{rid}}\"}}}}"
    )
}

/// The problem of a refused authentication.
const AUTH_FAILED: &str = "{\"type\":\"urn:partnergate:problem:authentication-failed\",\"title\":\"Authentication failed\",\
\"status\":401,\"detail\":\"Access Denied: authentication failed\",\"requestId\":\"{rid}\",\"reason\":\"authentication-failed\",\
\"AccessDeniedFault\":{\"Reason\":\"authentication-failed\",\"Message\":\"Access denied: authentication failed.\",\"RequestId\":\"{rid}\"}}";

fn denied(reason: &str, text: &str) -> String {
    format!(
        "{{\"type\":\"urn:partnergate:problem:access-denied\",\"title\":\"Access denied\",\"status\":403,\
         \"detail\":\"Access Denied: {text}\",\"requestId\":\"{{rid}}\",\"reason\":\"{reason}\",\
         \"AccessDeniedFault\":{{\"Reason\":\"{reason}\",\"Message\":\"Access denied: {text}.\",\"RequestId\":\"{{rid}}\"}}}}"
    )
}

/// A gateway with four partners: `ok` allowed everything from loopback, `elsewhere` allowed only
/// from 192.0.2.0/24, `reader` granted only `accounts.get`, `slow` at one call per second.
struct Setup {
    binary: Binary,
    up: StubUpstream,
    ok: Partner,
    elsewhere: Partner,
    reader: Partner,
    slow: Partner,
}

async fn setup() -> Setup {
    let db = temp_path("rest", "db");
    let store = Store::open(&db.display().to_string()).expect("store");
    let ok = onboard_partner(&store, &["*"], &["127.0.0.0/8"], None);
    let elsewhere = onboard_partner(&store, &["*"], &["192.0.2.0/24"], None);
    let reader = onboard_partner(&store, &["accounts.get"], &["127.0.0.0/8"], None);
    let slow = onboard_partner(&store, &["*"], &["127.0.0.0/8"], None);
    store
        .set_partner_rate(&slow.id, Rate::new(1, 1))
        .expect("rate");
    drop(store);
    let up = StubUpstream::start(Reply::Fixture).await;
    let env = [
        ("PARTNERGATE_LIMITS_BODY_MAX_BYTES", "16384".to_string()),
        ("PARTNERGATE_LOG_FLUSH_MS", "10".to_string()),
    ];
    let binary = Binary::serve(db, &up.url, &env).await;
    Setup {
        binary,
        up,
        ok,
        elsewhere,
        reader,
        slow,
    }
}

/// The upstream body with the gateway's request id cut out (it differs per call).
fn without_request_id(body: &[u8], request_id: &str) -> String {
    String::from_utf8_lossy(body).replace(request_id, "gw-…")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_add_service_through_json_reach_the_upstream_as_the_soap_face_sends_them() {
    let s = setup().await;
    let addr = s.binary.addr;
    let steps: [(Operation, &str, &str); 3] = [
        (
            Operation::CreateAccount,
            "POST",
            "/rest/partner/v1/accounts",
        ),
        (
            Operation::GetAccount,
            "GET",
            "/rest/partner/v1/accounts/ACC-0000001001",
        ),
        (
            Operation::AddService,
            "POST",
            "/rest/partner/v1/accounts/ACC-0000001001/services",
        ),
    ];
    for (op, method, target) in steps {
        // The SOAP face first, for the reference upstream body.
        let soap = post_soap(
            addr,
            SoapVersion::Soap11,
            Some(op.soap_action()),
            &request_fixture(op, SoapVersion::Soap11, &s.ok),
        )
        .await;
        assert_eq!(soap.status, 200, "{}", soap.text());
        let soap_up = s.up.take();
        assert_eq!(soap_up.len(), 1);

        // The same request as JSON: the URL members out of the body.
        let mut body: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&json_fixture(op, "request.json")).expect("request.json");
        for member in ["AccountNumber"] {
            if target.contains("ACC-") {
                body.remove(member);
            }
        }
        let body = if method == "GET" {
            None
        } else {
            Some(serde_json::to_vec(&body).expect("json"))
        };
        let r = rest(addr, &s.ok, method, target, body.as_deref()).await;
        assert_eq!(r.status, 200, "{op:?}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let golden = json_fixture(op, "response.json");
        assert_eq!(
            r.text(),
            String::from_utf8_lossy(&golden).trim_end(),
            "{op:?}: the answer is the golden JSON of the response"
        );
        let rest_up = s.up.take();
        assert_eq!(rest_up.len(), 1, "{op:?}: one upstream call");
        let request_id = r.request_id();
        assert_canonical_upstream(
            &rest_up[0],
            &request_fixture(op, SoapVersion::Soap11, &s.ok),
            &s.ok.id,
            &request_id,
        );
        assert_eq!(
            without_request_id(&rest_up[0].body, &request_id),
            without_request_id(&soap_up[0].body, &soap.request_id()),
            "{op:?}: the upstream receives the same canonical SOAP from both faces"
        );
    }

    // Statistics: both faces, apart.
    let m = metrics(addr).await;
    for (op, face) in [
        ("CreateAccount", "rest"),
        ("CreateAccount", "soap"),
        ("AddService", "rest"),
    ] {
        let series = format!(
            "partnergate_requests_total{{partner=\"{}\",operation=\"{op}\",outcome=\"ok\",face=\"{face}\"}}",
            s.ok.id
        );
        assert_eq!(metric(&m, &series), 1.0, "{series}");
    }
    // The access line of a REST call says so.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = s.binary.log();
        let line = log
            .lines()
            .find(|l| l.contains("operation=\"AddService\"") && l.contains("face=\"rest\""));
        if let Some(line) = line {
            assert!(line.contains("outcome=\"ok\""), "{line}");
            assert!(line.contains("status=200"), "{line}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no access line with face=rest:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_its_exact_problem_and_reaches_nothing_upstream() {
    let s = setup().await;
    let addr = s.binary.addr;
    let create = json_fixture(Operation::CreateAccount, "request.json");
    let create = String::from_utf8(create).expect("utf-8");
    let accounts = "/rest/partner/v1/accounts";
    let with = |extra: &str| create.replacen('{', &format!("{{{extra},"), 1);

    // Unknown member.
    let r = rest(
        addr,
        &s.ok,
        "POST",
        accounts,
        Some(with("\"Nickname\":\"x\"").as_bytes()),
    )
    .await;
    assert_problem(&r, 400, &invalid("/Nickname", "unknown-element", "unknown member; this object allows: RequestId, CustomerReference, AccountType, Contact, Address, Settings"));
    // Duplicate member.
    let r = rest(
        addr,
        &s.ok,
        "POST",
        accounts,
        Some(with("\"AccountType\":\"BUSINESS\"").as_bytes()),
    )
    .await;
    assert_problem(
        &r,
        400,
        &invalid(
            "/AccountType",
            "duplicate-element",
            "member given more than once (in the body, or in the URL and the body)",
        ),
    );
    // Wrong type.
    let r = rest(
        addr,
        &s.ok,
        "POST",
        accounts,
        Some(create.replace("\"de-DE\"", "42").as_bytes()),
    )
    .await;
    assert_problem(
        &r,
        400,
        &invalid(
            "/Settings/Language",
            "type",
            "expected a string, found a number",
        ),
    );
    // Facet violation.
    let r = rest(
        addr,
        &s.ok,
        "POST",
        accounts,
        Some(
            create
                .replace("\"+493012345678\"", "\"030 1234567\"")
                .as_bytes(),
        ),
    )
    .await;
    assert_problem(
        &r,
        400,
        r#"{"type":"urn:partnergate:problem:invalid-request","title":"Invalid request","status":400,"detail":"Invalid Request: /Contact/Phone: value \"030 1234567\" does not match the pattern \\+[1-9][0-9]{1,14}","requestId":"{rid}","rule":"pattern","path":"/Contact/Phone","InvalidRequestFault":{"Path":"/Contact/Phone","Rule":"pattern","Message":"/Contact/Phone: value \"030 1234567\" does not match the pattern \\+[1-9][0-9]{1,14}","RequestId":"{rid}"}}"#,
    );
    // Too deep: the limits pass, before the caller is even authenticated.
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let r = call(
        addr,
        "POST",
        accounts,
        &[],
        Some((
            "application/json",
            with(&format!("\"Deep\":{deep}")).as_bytes(),
        )),
    )
    .await;
    assert_problem(
        &r,
        400,
        r#"{"type":"urn:partnergate:problem:invalid-request","title":"Invalid request","status":400,"detail":"Invalid Request: JSON limit exceeded: max_depth (more than 24) (limits.xml.max_depth)","requestId":"{rid}","rule":"limits.xml.max_depth","path":"/","InvalidRequestFault":{"Path":"/","Rule":"limits.xml.max_depth","Message":"JSON limit exceeded: max_depth (more than 24) (limits.xml.max_depth)","RequestId":"{rid}"}}"#,
    );
    // Too big: refused as the body arrives, the connection closed.
    let big = with(&format!("\"Pad\":\"{}\"", "x".repeat(20_000)));
    let r = rest(addr, &s.ok, "POST", accounts, Some(big.as_bytes())).await;
    assert_problem(
        &r,
        413,
        r#"{"type":"urn:partnergate:problem:request-too-large","title":"Request too large","status":413,"detail":"Invalid Request: request body larger than 16384 bytes (limits.body_max_bytes)","requestId":"{rid}","rule":"limits.body_max_bytes","path":"/","InvalidRequestFault":{"Path":"/","Rule":"limits.body_max_bytes","Message":"request body larger than 16384 bytes (limits.body_max_bytes)","RequestId":"{rid}"}}"#,
    );
    assert_eq!(r.header("connection"), Some("close"));
    // Missing credentials, a key of another partner, a malformed one: the same 401.
    let get = "/rest/partner/v1/accounts/ACC-0000001001";
    for headers in [
        vec![],
        vec![("X-Partner-Id", s.ok.id.clone())],
        vec![
            ("X-Partner-Id", s.ok.id.clone()),
            ("Authorization", format!("Bearer {}", s.reader.key)),
        ],
        vec![
            ("X-Partner-Id", s.ok.id.clone()),
            ("Authorization", format!("Basic {}", s.ok.key)),
        ],
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = call(addr, "GET", get, &h, None).await;
        assert_problem(&r, 401, AUTH_FAILED);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"partnergate\"")
        );
    }
    // Not from an allowed network; not permitted.
    let r = rest(addr, &s.elsewhere, "GET", get, None).await;
    assert_problem(
        &r,
        403,
        &denied("source-not-allowed", "caller not on allowlist"),
    );
    let r = rest(addr, &s.reader, "POST", accounts, Some(create.as_bytes())).await;
    assert_problem(
        &r,
        403,
        &denied("operation-not-permitted", "operation not permitted"),
    );
    // Wrong content type.
    let h = auth(&s.ok);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = call(
        addr,
        "POST",
        accounts,
        &h,
        Some(("text/xml", create.as_bytes())),
    )
    .await;
    assert_problem(
        &r,
        415,
        r#"{"type":"urn:partnergate:problem:unsupported-media-type","title":"Unsupported media type","status":415,"detail":"Invalid Request: content type \"text/xml\" is not application/json","requestId":"{rid}","rule":"content-type","path":"/","InvalidRequestFault":{"Path":"/","Rule":"content-type","Message":"content type \"text/xml\" is not application/json","RequestId":"{rid}"}}"#,
    );
    // Unknown route, wrong method, a query member the route does not take.
    let r = rest(addr, &s.ok, "GET", "/rest/partner/v1/customers", None).await;
    assert_problem(
        &r,
        404,
        r#"{"type":"urn:partnergate:problem:no-route","title":"No such resource","status":404,"detail":"Invalid Request: no resource at this path","requestId":"{rid}","rule":"route","path":"/","InvalidRequestFault":{"Path":"/","Rule":"route","Message":"no resource at this path","RequestId":"{rid}"}}"#,
    );
    let r = rest(addr, &s.ok, "DELETE", get, None).await;
    assert_problem(
        &r,
        405,
        r#"{"type":"urn:partnergate:problem:method-not-allowed","title":"Method not allowed","status":405,"detail":"Invalid Request: method not allowed here (allowed: GET, PATCH)","requestId":"{rid}","rule":"method","path":"/","InvalidRequestFault":{"Path":"/","Rule":"method","Message":"method not allowed here (allowed: GET, PATCH)","RequestId":"{rid}"}}"#,
    );
    assert_eq!(r.header("allow"), Some("GET, PATCH"));
    let r = rest(
        addr,
        &s.ok,
        "POST",
        "/rest/partner/v1/openapi.json",
        Some(b"{}"),
    )
    .await;
    assert_problem(
        &r,
        405,
        r#"{"type":"urn:partnergate:problem:method-not-allowed","title":"Method not allowed","status":405,"detail":"Invalid Request: method not allowed here (allowed: GET)","requestId":"{rid}","rule":"method","path":"/","InvalidRequestFault":{"Path":"/","Rule":"method","Message":"method not allowed here (allowed: GET)","RequestId":"{rid}"}}"#,
    );
    assert_eq!(r.header("allow"), Some("GET"));
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "its body was not read"
    );
    let r = rest(addr, &s.ok, "GET", &format!("{get}?Status=ACTIVE"), None).await;
    assert_problem(
        &r,
        400,
        r#"{"type":"urn:partnergate:problem:invalid-request","title":"Invalid request","status":400,"detail":"Invalid Request: /Status: not a query member of this route","requestId":"{rid}","rule":"unknown-element","path":"/Status","InvalidRequestFault":{"Path":"/Status","Rule":"unknown-element","Message":"/Status: not a query member of this route","RequestId":"{rid}"}}"#,
    );
    assert_eq!(s.up.count(), 0, "no refused request reached the upstream");

    // Throttled: the second call within the second.
    let r = rest(addr, &s.slow, "GET", get, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = rest(addr, &s.slow, "GET", get, None).await;
    assert_problem(
        &r,
        429,
        r#"{"type":"urn:partnergate:problem:throttled","title":"Throttled","status":429,"detail":"Throttled: 1 req/s partner limit","requestId":"{rid}","ThrottledFault":{"RetryAfterSeconds":1,"Message":"Partner limit of 1 requests per second exceeded","RequestId":"{rid}"}}"#,
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(
        s.up.count(),
        1,
        "only the admitted call reached the upstream"
    );

    // The partner API's own faults: their kind, status and typed fields, the gateway's texts.
    for (file, status, expected) in [
        (
            "NotFoundFault.soap11.xml",
            404,
            r#"{"type":"urn:partnergate:problem:not-found","title":"Not found","status":404,"detail":"Not Found: account","requestId":"{rid}","NotFoundFault":{"Entity":"account","Message":"The account does not exist or is not visible to this partner.","RequestId":"{rid}"}}"#,
        ),
        (
            "ConflictFault.soap11.xml",
            409,
            r#"{"type":"urn:partnergate:problem:conflict","title":"Conflict","status":409,"detail":"Conflict: invalid-status-transition","requestId":"{rid}","ConflictFault":{"Reason":"invalid-status-transition","Message":"The requested status change is not allowed from the current status.","RequestId":"{rid}"}}"#,
        ),
    ] {
        s.up.set_reply(Reply::Fault { file, status: 500 });
        let r = rest(addr, &s.ok, "GET", get, None).await;
        assert_problem(&r, status, expected);
    }
    s.up.set_reply(Reply::Html502);
    let r = rest(addr, &s.ok, "GET", get, None).await;
    assert_problem(
        &r,
        502,
        r#"{"type":"urn:partnergate:problem:upstream-unavailable","title":"Upstream unavailable","status":502,"detail":"Upstream Unavailable: the partner API answered with an invalid response","requestId":"{rid}","UpstreamUnavailableFault":{"Message":"the partner API answered with an invalid response","RequestId":"{rid}"}}"#,
    );

    // Counted under the REST face.
    let m = metrics(addr).await;
    let series = format!(
        "partnergate_requests_total{{partner=\"{}\",operation=\"GetAccount\",outcome=\"throttled\",face=\"rest\"}}",
        s.slow.id
    );
    assert_eq!(metric(&m, &series), 1.0, "{series}");
}
