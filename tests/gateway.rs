#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Black-box tests of the running gateway: every fault path and the happy path of every
//! operation, asserting both what the partner got and what the upstream received.

mod common;

use std::time::{Duration, Instant};

use common::*;
use partnergate::config::Config;
use partnergate::envelope::{FaultCode, SoapVersion};
use partnergate::generated::partner::{FaultDetail, Operation};
use partnergate::generated::types::cmn;
use partnergate::secret::KeyKind;
use partnergate::store::{PartnerStatus, Rate};

use cmn::AccessDeniedReason as Reason;
use SoapVersion::{Soap11, Soap12};

const NS_CMN: &str = "urn:partnergate:partner:common:v1";
const NS_ACC: &str = "urn:partnergate:partner:accounts:v1";
const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const PASSWORD_TEXT: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";
const PASSWORD_DIGEST: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
/// Allowed on top of a configured timeout before a test calls it late (shared, busy CPUs).
const SLACK: Duration = Duration::from_millis(1500);

// === set-up ===

struct Env {
    gw: TestGateway,
    up: StubUpstream,
    p: Partner,
}

async fn setup_with(reply: Reply, tweak: impl FnOnce(&mut Config)) -> Env {
    let up = StubUpstream::start(reply).await;
    let mut c = test_config();
    c.upstream.url = Some(up.url.clone());
    tweak(&mut c);
    let gw = start_gateway(c).await;
    let p = gw.partner(&["*"], &["127.0.0.0/8"]).await;
    Env { gw, up, p }
}

async fn setup() -> Env {
    setup_with(Reply::Fixture, |_| {}).await
}

fn action(op: Operation) -> Option<&'static str> {
    Some(op.soap_action())
}

fn soap_ct(version: SoapVersion) -> &'static str {
    match version {
        Soap11 => "text/xml; charset=utf-8",
        Soap12 => "application/soap+xml; charset=utf-8",
    }
}

/// The status of a fault: SOAP 1.1 always 500 (WS-I R1126, the default mode), SOAP 1.2 the
/// semantic one.
/// The status a fault gets by default: SOAP 1.1 500 (WS-I R1126); SOAP 1.2 by the HTTP
/// binding's table (Part 2, 7.5.2.2): `env:Sender` 400, every other fault 500. Every fault whose
/// `semantic` status is 4xx is a Sender fault, every 5xx one a Receiver (or MustUnderstand) fault
/// (`fault` checks the code against the status).
fn st(version: SoapVersion, semantic: u16) -> u16 {
    match version {
        Soap11 => 500,
        Soap12 if (400..500).contains(&semantic) => 400,
        Soap12 => 500,
    }
}

/// A GetAccount request in SOAP 1.1 with `header` as the whole `soapenv:Header` content
/// (`None`: no Header element at all).
fn get_account_11(header: Option<&str>) -> Vec<u8> {
    let header = header.map_or_else(String::new, |h| {
        format!("<soapenv:Header>{h}</soapenv:Header>")
    });
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope xmlns:soapenv=\"{SOAP11_NS}\" \
         xmlns:cmn=\"{NS_CMN}\" xmlns:acc=\"{NS_ACC}\">{header}<soapenv:Body><acc:GetAccount>\
         <acc:AccountNumber>ACC-0000001001</acc:AccountNumber></acc:GetAccount></soapenv:Body>\
         </soapenv:Envelope>"
    )
    .into_bytes()
}

/// The same in SOAP 1.2.
fn get_account_12(header: Option<&str>) -> Vec<u8> {
    let header = header.map_or_else(String::new, |h| format!("<env:Header>{h}</env:Header>"));
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<env:Envelope xmlns:env=\"{SOAP12_NS}\" \
         xmlns:cmn=\"{NS_CMN}\" xmlns:acc=\"{NS_ACC}\">{header}<env:Body><acc:GetAccount>\
         <acc:AccountNumber>ACC-0000001001</acc:AccountNumber></acc:GetAccount></env:Body>\
         </env:Envelope>"
    )
    .into_bytes()
}

fn partner_auth(id: &str, key: &str) -> String {
    format!(
        "<cmn:PartnerAuth><cmn:PartnerId>{id}</cmn:PartnerId><cmn:ApiKey>{key}</cmn:ApiKey></cmn:PartnerAuth>"
    )
}

fn wsse(id: &str, key: &str, password_type: &str) -> String {
    format!(
        "<wsse:Security xmlns:wsse=\"{WSSE_NS}\" soapenv:mustUnderstand=\"1\"><wsse:UsernameToken>\
         <wsse:Username>{id}</wsse:Username><wsse:Password Type=\"{password_type}\">{key}</wsse:Password>\
         </wsse:UsernameToken></wsse:Security>"
    )
}

async fn call(env: &Env, version: SoapVersion, op: Option<Operation>, body: &[u8]) -> RawResponse {
    post_soap(env.gw.addr, version, op.and_then(action), body).await
}

async fn call_fixture(env: &Env, op: Operation, version: SoapVersion) -> (Vec<u8>, RawResponse) {
    let body = request_fixture(op, version, &env.p);
    let resp = call(env, version, Some(op), &body).await;
    (body, resp)
}

// === assertions ===

/// A successful call: the canonical response for the partner, exactly one canonical request
/// upstream.
fn assert_ok(env: &Env, resp: &RawResponse, sent: &[u8], op: Operation, version: SoapVersion) {
    assert_eq!(resp.status, 200, "{op:?} {version:?}: {}", resp.text());
    assert_eq!(resp.header("content-type"), Some(soap_ct(version)));
    assert_eq!(
        resp.text(),
        String::from_utf8(canonical_response(op, version)).unwrap(),
        "{op:?} {version:?}: the partner gets the canonical response"
    );
    let rid = resp.request_id();
    let got = env.up.take();
    assert_eq!(got.len(), 1, "{op:?}: exactly one upstream request");
    assert_canonical_upstream(&got[0], sent, &env.p.id, &rid);
}

/// A fault of `version` with `status`: content type, request id in reason and detail.
fn fault(resp: &RawResponse, version: SoapVersion, status: u16) -> Fault {
    assert_eq!(resp.status, status, "{}", resp.text());
    if version == Soap12 && matches!(status, 400 | 500) {
        let f = parse_fault_body(&resp.body);
        assert_eq!(
            f.code == FaultCode::Sender,
            status == 400,
            "SOAP 1.2 HTTP binding: env:Sender is 400, every other fault 500: {}",
            resp.text()
        );
    }
    assert_eq!(
        resp.header("content-type"),
        Some(soap_ct(version)),
        "{}",
        resp.text()
    );
    let f = parse_fault_body(&resp.body);
    assert_eq!(f.version, version);
    let rid = resp.request_id();
    assert!(
        f.reason.ends_with(&format!(" (request {rid})")),
        "reason {:?} names the request id {rid}",
        f.reason
    );
    if f.detail.is_some() {
        assert_eq!(f.detail_request_id(), Some(rid));
    }
    assert!(
        !resp.text().contains("pgk_"),
        "a key is echoed: {}",
        resp.text()
    );
    f
}

fn assert_denied(resp: &RawResponse, version: SoapVersion, reason: Reason) -> Fault {
    let f = fault(resp, version, st(version, 403));
    assert_eq!(f.code, FaultCode::Sender);
    match &f.detail {
        Some(FaultDetail::AccessDenied(d)) => assert_eq!(d.reason, reason, "{f:?}"),
        other => panic!("expected AccessDeniedFault, got {other:?}"),
    }
    f
}

fn assert_invalid(
    resp: &RawResponse,
    version: SoapVersion,
    semantic: u16,
    path: &str,
    rule: &str,
) -> Fault {
    let f = fault(resp, version, st(version, semantic));
    assert_eq!(f.code, FaultCode::Sender);
    match &f.detail {
        Some(FaultDetail::InvalidRequest(d)) => {
            assert_eq!((d.path.as_str(), d.rule.as_str()), (path, rule), "{f:?}");
        }
        other => panic!("expected InvalidRequestFault {path} {rule}, got {other:?}"),
    }
    assert!(f.reason.starts_with("Invalid Request: "), "{}", f.reason);
    f
}

fn assert_unavailable(resp: &RawResponse, version: SoapVersion, semantic: u16) -> Fault {
    let f = fault(resp, version, st(version, semantic));
    assert_eq!(f.code, FaultCode::Receiver);
    assert!(
        matches!(f.detail, Some(FaultDetail::UpstreamUnavailable(_))),
        "expected UpstreamUnavailableFault, got {f:?}"
    );
    assert!(
        f.reason.starts_with("Upstream Unavailable: "),
        "{}",
        f.reason
    );
    f
}

fn assert_nothing_upstream(env: &Env) {
    let got = env.up.requests();
    assert!(
        got.is_empty(),
        "the upstream received {} request(s)",
        got.len()
    );
}

/// One accepted GetAccount call, end to end.
async fn assert_happy(env: &Env) {
    let (sent, resp) = call_fixture(env, Operation::GetAccount, Soap11).await;
    assert_ok(env, &resp, &sent, Operation::GetAccount, Soap11);
}

// === happy paths ===

#[tokio::test]
async fn every_operation_round_trips_in_soap11() {
    let env = setup().await;
    for op in Operation::ALL {
        let (sent, resp) = call_fixture(&env, op, Soap11).await;
        assert_ok(&env, &resp, &sent, op, Soap11);
    }
}

#[tokio::test]
async fn soap12_requests_get_soap12_responses() {
    let env = setup().await;
    let ops: Vec<Operation> = Operation::ALL
        .into_iter()
        .filter(|op| has_soap12_fixture(*op))
        .collect();
    assert_eq!(ops, [Operation::CreateAccount, Operation::GetAccount]);
    for op in ops {
        let (sent, resp) = call_fixture(&env, op, Soap12).await;
        assert_ok(&env, &resp, &sent, op, Soap12);
    }
}

// === authentication ===

#[tokio::test]
async fn no_credential_header_is_refused() {
    let env = setup().await;
    let resp = call(
        &env,
        Soap11,
        Some(Operation::GetAccount),
        &get_account_11(None),
    )
    .await;
    assert_denied(&resp, Soap11, Reason::AuthenticationFailed);
    let resp = call(
        &env,
        Soap12,
        Some(Operation::GetAccount),
        &get_account_12(Some("")),
    )
    .await;
    assert_denied(&resp, Soap12, Reason::AuthenticationFailed);
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn unknown_partner_is_refused() {
    let env = setup().await;
    let body = get_account_11(Some(&partner_auth("PARTNER-9999", &env.p.key)));
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_denied(&resp, Soap11, Reason::AuthenticationFailed);
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn wrong_key_is_refused() {
    let env = setup().await;
    let mut wrong = env.p.key.clone();
    let last = if wrong.ends_with('0') { "1" } else { "0" };
    wrong.replace_range(wrong.len() - 1.., last);
    let body = get_account_11(Some(&partner_auth(&env.p.id, &wrong)));
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_denied(&resp, Soap11, Reason::AuthenticationFailed);
    // The fixture's placeholder key, unchanged, is no key at all.
    let body = personalize(&fixture("GetAccount/request.xml"), &env.p.id, FIXTURE_KEY);
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_denied(&resp, Soap11, Reason::AuthenticationFailed);
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn a_revoked_key_is_refused_within_a_second() {
    let env = setup().await;
    assert_happy(&env).await;
    let revoked_at = Instant::now();
    assert_eq!(
        env.gw
            .store
            .revoke_key(&env.p.id, KeyKind::Partner)
            .unwrap(),
        1
    );
    let body = request_fixture(Operation::GetAccount, Soap11, &env.p);
    loop {
        let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
        if resp.status != 200 {
            assert_denied(&resp, Soap11, Reason::AuthenticationFailed);
            break;
        }
        env.up.take();
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "the revoked key was still accepted after {:?}",
            revoked_at.elapsed()
        );
    }
    // And stays refused; nothing more reached the upstream.
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_denied(&resp, Soap11, Reason::AuthenticationFailed);
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn the_callback_key_is_not_an_api_key() {
    let env = setup().await;
    assert!(env.p.callback_key.starts_with("pgc_"));
    let body = get_account_11(Some(&partner_auth(&env.p.id, &env.p.callback_key)));
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_denied(&resp, Soap11, Reason::AuthenticationFailed);
    assert!(!resp.text().contains("pgc_"));
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn two_credential_headers_are_refused() {
    let env = setup().await;
    let auth = partner_auth(&env.p.id, &env.p.key);
    let body = get_account_11(Some(&format!("{auth}{auth}")));
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_denied(&resp, Soap11, Reason::AuthenticationFailed);
    // PartnerAuth plus a valid WS-Security token: also two credentials.
    let body = get_account_11(Some(&format!(
        "{auth}{}",
        wsse(&env.p.id, &env.p.key, PASSWORD_TEXT)
    )));
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_denied(&resp, Soap11, Reason::AuthenticationFailed);
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn partner_auth_in_the_body_does_not_authenticate() {
    let env = setup().await;
    let auth = partner_auth(&env.p.id, &env.p.key);
    // Inside the operation element, with no header: no credentials.
    let body = format!(
        "<soapenv:Envelope xmlns:soapenv=\"{SOAP11_NS}\" xmlns:cmn=\"{NS_CMN}\" xmlns:acc=\"{NS_ACC}\">\
         <soapenv:Body><acc:GetAccount>{auth}<acc:AccountNumber>ACC-0000001001</acc:AccountNumber>\
         </acc:GetAccount></soapenv:Body></soapenv:Envelope>"
    );
    let resp = call(&env, Soap11, Some(Operation::GetAccount), body.as_bytes()).await;
    assert_denied(&resp, Soap11, Reason::AuthenticationFailed);
    // As a second body element: not an acceptable envelope.
    let body = format!(
        "<soapenv:Envelope xmlns:soapenv=\"{SOAP11_NS}\" xmlns:cmn=\"{NS_CMN}\" xmlns:acc=\"{NS_ACC}\">\
         <soapenv:Body>{auth}<acc:GetAccount><acc:AccountNumber>ACC-0000001001</acc:AccountNumber>\
         </acc:GetAccount></soapenv:Body></soapenv:Envelope>"
    );
    let resp = call(
        &env,
        Soap12,
        None,
        body.replace(SOAP11_NS, SOAP12_NS).as_bytes(),
    )
    .await;
    assert_invalid(&resp, Soap12, 400, "/", "envelope");
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn partner_auth_nested_below_a_header_block_does_not_authenticate() {
    let env = setup().await;
    let auth = partner_auth(&env.p.id, &env.p.key);
    let body = get_account_11(Some(&format!(
        "<x:Wrapper xmlns:x=\"urn:example:wrapper\">{auth}</x:Wrapper>"
    )));
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_denied(&resp, Soap11, Reason::AuthenticationFailed);
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn a_key_split_by_cdata_is_refused() {
    let env = setup().await;
    let (a, b) = env.p.key.split_at(12);
    let body = get_account_11(Some(&partner_auth(
        &env.p.id,
        &format!("{a}<![CDATA[{b}]]>"),
    )));
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_denied(&resp, Soap11, Reason::AuthenticationFailed);
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn a_key_split_by_a_comment_is_refused() {
    let env = setup().await;
    let (a, b) = env.p.key.split_at(12);
    let body = get_account_11(Some(&partner_auth(&env.p.id, &format!("{a}<!-- x -->{b}"))));
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_denied(&resp, Soap11, Reason::AuthenticationFailed);
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn ws_security_password_text_is_accepted() {
    let env = setup().await;
    let body = get_account_11(Some(&wsse(&env.p.id, &env.p.key, PASSWORD_TEXT)));
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_ok(&env, &resp, &body, Operation::GetAccount, Soap11);
}

#[tokio::test]
async fn ws_security_password_digest_is_refused() {
    let env = setup().await;
    let body = get_account_11(Some(&wsse(&env.p.id, &env.p.key, PASSWORD_DIGEST)));
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_denied(&resp, Soap11, Reason::AuthenticationFailed);
    assert_nothing_upstream(&env);
}

/// Two Usernames (or two Passwords) in one UsernameToken: the credential has two readings; it
/// is refused like two PartnerAuth headers, whichever of them would match.
#[tokio::test]
async fn a_username_token_with_a_repeated_field_is_refused() {
    let env = setup().await;
    let other = env.gw.partner(&["*"], &["127.0.0.0/8"]).await;
    let fields = [
        format!(
            "<wsse:Username>{}</wsse:Username><wsse:Username>{}</wsse:Username>\
             <wsse:Password Type=\"{PASSWORD_TEXT}\">{}</wsse:Password>",
            other.id, env.p.id, env.p.key
        ),
        format!(
            "<wsse:Username>{}</wsse:Username><wsse:Password Type=\"{PASSWORD_TEXT}\">{}</wsse:Password>\
             <wsse:Password Type=\"{PASSWORD_TEXT}\">{}</wsse:Password>",
            env.p.id, other.key, env.p.key
        ),
    ];
    for f in fields {
        let header = format!(
            "<wsse:Security xmlns:wsse=\"{WSSE_NS}\" soapenv:mustUnderstand=\"1\">\
             <wsse:UsernameToken>{f}</wsse:UsernameToken></wsse:Security>"
        );
        let resp = call(
            &env,
            Soap11,
            Some(Operation::GetAccount),
            &get_account_11(Some(&header)),
        )
        .await;
        assert_denied(&resp, Soap11, Reason::AuthenticationFailed);
    }
    assert_nothing_upstream(&env);
}

/// A `wsu:Timestamp` whose `Expires` is past (beyond 300 s of clock skew) is refused like any
/// authentication failure; a current one is accepted.
#[tokio::test]
async fn an_expired_ws_security_timestamp_is_refused() {
    const WSU_NS: &str =
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
    let env = setup().await;
    let now = partnergate::pipeline::unix_now();
    let at = |secs: i64| {
        partnergate::xs::DateTime::from_unix(secs)
            .as_str()
            .to_string()
    };
    let header = |created: i64, expires: i64| {
        format!(
            "<wsse:Security xmlns:wsse=\"{WSSE_NS}\" xmlns:wsu=\"{WSU_NS}\" soapenv:mustUnderstand=\"1\">\
             <wsu:Timestamp><wsu:Created>{}</wsu:Created><wsu:Expires>{}</wsu:Expires></wsu:Timestamp>\
             <wsse:UsernameToken><wsse:Username>{}</wsse:Username>\
             <wsse:Password Type=\"{PASSWORD_TEXT}\">{}</wsse:Password></wsse:UsernameToken></wsse:Security>",
            at(created),
            at(expires),
            env.p.id,
            env.p.key
        )
    };
    let expired = header(now - 3600, now - 3300);
    let resp = call(
        &env,
        Soap11,
        Some(Operation::GetAccount),
        &get_account_11(Some(&expired)),
    )
    .await;
    assert_denied(&resp, Soap11, Reason::AuthenticationFailed);
    assert_nothing_upstream(&env);
    let current = get_account_11(Some(&header(now - 5, now + 300)));
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &current).await;
    assert_ok(&env, &resp, &current, Operation::GetAccount, Soap11);
}

#[tokio::test]
async fn a_suspended_partner_is_told_so_only_with_its_valid_key() {
    let env = setup().await;
    env.gw
        .store
        .set_status(&env.p.id, PartnerStatus::Suspended)
        .unwrap();
    env.gw.sync().await;
    let (_, resp) = call_fixture(&env, Operation::GetAccount, Soap11).await;
    assert_denied(&resp, Soap11, Reason::PartnerSuspended);
    let body = get_account_11(Some(&partner_auth(&env.p.id, &env.p.callback_key)));
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_denied(&resp, Soap11, Reason::AuthenticationFailed);
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn authentication_refusals_are_byte_identical_but_for_the_request_id() {
    let env = setup().await;
    let other = env.gw.partner(&["*"], &["127.0.0.0/8"]).await;
    env.gw
        .store
        .revoke_key(&other.id, KeyKind::Partner)
        .unwrap();
    env.gw.sync().await;
    let p = &env.p;
    let auth = partner_auth(&p.id, &p.key);
    let (a, b) = p.key.split_at(12);
    let mut wrong = p.key.clone();
    wrong.replace_range(
        4..5,
        if wrong.as_bytes()[4] == b'a' {
            "b"
        } else {
            "a"
        },
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("no header", get_account_11(None)),
        ("empty header", get_account_11(Some(""))),
        (
            "unknown partner",
            get_account_11(Some(&partner_auth("PARTNER-9999", &p.key))),
        ),
        (
            "wrong key",
            get_account_11(Some(&partner_auth(&p.id, &wrong))),
        ),
        (
            "revoked key",
            get_account_11(Some(&partner_auth(&other.id, &other.key))),
        ),
        (
            "callback key",
            get_account_11(Some(&partner_auth(&p.id, &p.callback_key))),
        ),
        (
            "two headers",
            get_account_11(Some(&format!("{auth}{auth}"))),
        ),
        (
            "nested",
            get_account_11(Some(&format!("<x:W xmlns:x=\"urn:x\">{auth}</x:W>"))),
        ),
        (
            "malformed id",
            get_account_11(Some(&partner_auth("partner 1", &p.key))),
        ),
        ("empty key", get_account_11(Some(&partner_auth(&p.id, "")))),
        (
            "digest",
            get_account_11(Some(&wsse(&p.id, &p.key, PASSWORD_DIGEST))),
        ),
        (
            "wsse wrong key",
            get_account_11(Some(&wsse(&p.id, &wrong, PASSWORD_TEXT))),
        ),
        (
            "wsse cdata",
            get_account_11(Some(&wsse(
                &p.id,
                &format!("{a}<![CDATA[{b}]]>"),
                PASSWORD_TEXT,
            ))),
        ),
    ];
    let mut first: Option<(String, u16, String)> = None;
    for (name, body) in cases {
        let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
        assert_denied(&resp, Soap11, Reason::AuthenticationFailed);
        let rid = resp.request_id();
        let text = resp.text().replace(&rid, "REQUEST-ID");
        match &first {
            None => first = Some((name.to_string(), resp.status, text)),
            Some((first_name, status, first_text)) => {
                assert_eq!(resp.status, *status, "{name} vs {first_name}");
                assert_eq!(&text, first_text, "{name} vs {first_name}");
            }
        }
    }
    assert_nothing_upstream(&env);
}

// === SOAP header rules ===

#[tokio::test]
async fn partner_auth_marked_must_understand_is_accepted() {
    let env = setup().await;
    let auth = partner_auth(&env.p.id, &env.p.key).replacen(
        "<cmn:PartnerAuth>",
        "<cmn:PartnerAuth soapenv:mustUnderstand=\"1\">",
        1,
    );
    let body = get_account_11(Some(&auth));
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_ok(&env, &resp, &body, Operation::GetAccount, Soap11);
}

#[tokio::test]
async fn partner_auth_with_soap12_must_understand_and_the_next_role_is_accepted() {
    let env = setup().await;
    for (attrs, version) in [
        (" env:mustUnderstand=\"true\"", Soap12),
        (
            " env:mustUnderstand=\"1\" env:role=\"http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver\"",
            Soap12,
        ),
        (
            " soapenv:actor=\"http://schemas.xmlsoap.org/soap/actor/next\" soapenv:mustUnderstand=\"1\"",
            Soap11,
        ),
    ] {
        let auth = partner_auth(&env.p.id, &env.p.key)
            .replacen("<cmn:PartnerAuth>", &format!("<cmn:PartnerAuth{attrs}>"), 1);
        let body = match version {
            Soap11 => get_account_11(Some(&auth)),
            Soap12 => get_account_12(Some(&auth)),
        };
        let resp = call(&env, version, Some(Operation::GetAccount), &body).await;
        assert_ok(&env, &resp, &body, Operation::GetAccount, version);
    }
}

/// Toolkits (Axis 1, some .NET stacks) send header blocks with `actor=""` and
/// `mustUnderstand="0"`: an empty actor means the ultimate recipient, as an absent one does.
/// SOAP 1.2 `role=""` (a relative reference to this endpoint) and `next` are for us too; the
/// `none` role and another node's are not, so a credential there is no credential.
#[tokio::test]
async fn an_empty_actor_or_role_addresses_the_gateway() {
    let env = setup().await;
    let with = |attrs: &str, version: SoapVersion| {
        let auth = partner_auth(&env.p.id, &env.p.key).replacen(
            "<cmn:PartnerAuth>",
            &format!("<cmn:PartnerAuth{attrs}>"),
            1,
        );
        match version {
            Soap11 => get_account_11(Some(&auth)),
            Soap12 => get_account_12(Some(&auth)),
        }
    };
    for (attrs, version) in [
        (" soapenv:actor=\"\" soapenv:mustUnderstand=\"0\"", Soap11),
        (" soapenv:actor=\"\"", Soap11),
        (" env:role=\"\" env:mustUnderstand=\"false\"", Soap12),
        (
            " env:role=\"http://www.w3.org/2003/05/soap-envelope/role/next\"",
            Soap12,
        ),
    ] {
        let body = with(attrs, version);
        let resp = call(&env, version, Some(Operation::GetAccount), &body).await;
        assert_ok(&env, &resp, &body, Operation::GetAccount, version);
    }
    for (attrs, version) in [
        (
            " env:role=\"http://www.w3.org/2003/05/soap-envelope/role/none\"",
            Soap12,
        ),
        (
            " soapenv:actor=\"http://example.com/some-other-node\"",
            Soap11,
        ),
    ] {
        let body = with(attrs, version);
        let resp = call(&env, version, Some(Operation::GetAccount), &body).await;
        assert_denied(&resp, version, Reason::AuthenticationFailed);
    }
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn a_utf8_byte_order_mark_is_accepted() {
    // XML 1.0 (4.3.3): entities encoded in UTF-8 may begin with the byte order mark; some SOAP
    // stacks write it.
    let env = setup().await;
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend(request_fixture(Operation::GetAccount, Soap11, &env.p));
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_ok(&env, &resp, &body[3..], Operation::GetAccount, Soap11);
}

#[tokio::test]
async fn an_unknown_must_understand_header_is_a_must_understand_fault() {
    let env = setup().await;
    let auth = partner_auth(&env.p.id, &env.p.key);
    let body = get_account_11(Some(&format!(
        "{auth}<t:Trace xmlns:t=\"urn:example:trace\" soapenv:mustUnderstand=\"1\">abc</t:Trace>"
    )));
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    let f = fault(&resp, Soap11, 500);
    assert_eq!(f.code, FaultCode::MustUnderstand);
    assert!(
        f.reason.contains("{urn:example:trace}Trace"),
        "{}",
        f.reason
    );
    let body = get_account_12(Some(&format!(
        "{auth}<t:Trace xmlns:t=\"urn:example:trace\" env:mustUnderstand=\"true\">abc</t:Trace>"
    )));
    let resp = call(&env, Soap12, Some(Operation::GetAccount), &body).await;
    let f = fault(&resp, Soap12, 500);
    assert_eq!(f.code, FaultCode::MustUnderstand);
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn a_must_understand_header_for_another_node_is_ignored() {
    let env = setup().await;
    let auth = partner_auth(&env.p.id, &env.p.key);
    let body = get_account_11(Some(&format!(
        "{auth}<t:Trace xmlns:t=\"urn:example:trace\" soapenv:mustUnderstand=\"1\" \
         soapenv:actor=\"http://example.com/some-other-node\">abc</t:Trace>"
    )));
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_ok(&env, &resp, &body, Operation::GetAccount, Soap11);
    let body = get_account_12(Some(&format!(
        "{auth}<t:Trace xmlns:t=\"urn:example:trace\" env:mustUnderstand=\"true\" \
         env:role=\"http://example.com/some-other-node\">abc</t:Trace>"
    )));
    let resp = call(&env, Soap12, Some(Operation::GetAccount), &body).await;
    assert_ok(&env, &resp, &body, Operation::GetAccount, Soap12);
}

// === allowlist ===

#[tokio::test]
async fn a_caller_outside_the_allowlist_is_refused() {
    let mut env = setup().await;
    env.p = env.gw.partner(&["*"], &["10.0.0.0/8"]).await;
    let (_, resp) = call_fixture(&env, Operation::GetAccount, Soap12).await;
    assert_denied(&resp, Soap12, Reason::SourceNotAllowed);
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn a_trusted_proxy_forwards_the_client_address() {
    let mut env = setup_with(Reply::Fixture, |c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    env.p = env.gw.partner(&["*"], &["10.0.0.0/8"]).await;
    let body = request_fixture(Operation::GetAccount, Soap11, &env.p);
    let resp = post_soap_with(
        env.gw.addr,
        Soap11,
        action(Operation::GetAccount),
        &[("X-Forwarded-For", "10.1.2.3")],
        &body,
    )
    .await;
    assert_ok(&env, &resp, &body, Operation::GetAccount, Soap11);
    // Without the header, the proxy itself is the caller: not allowed.
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_denied(&resp, Soap11, Reason::SourceNotAllowed);
    // A forwarding header that does not parse is not believed either.
    let resp = post_soap_with(
        env.gw.addr,
        Soap11,
        action(Operation::GetAccount),
        &[("X-Forwarded-For", "not-an-ip")],
        &body,
    )
    .await;
    assert_denied(&resp, Soap11, Reason::SourceNotAllowed);
    // A forged entry before the proxy's own is not believed.
    let resp = post_soap_with(
        env.gw.addr,
        Soap11,
        action(Operation::GetAccount),
        &[("X-Forwarded-For", "10.1.2.3, 192.0.2.9")],
        &body,
    )
    .await;
    assert_denied(&resp, Soap11, Reason::SourceNotAllowed);
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let mut env = setup().await;
    env.p = env.gw.partner(&["*"], &["10.0.0.0/8"]).await;
    let body = request_fixture(Operation::GetAccount, Soap11, &env.p);
    for (name, value) in [
        ("X-Forwarded-For", "10.1.2.3"),
        ("Forwarded", "for=10.1.2.3"),
    ] {
        let resp = post_soap_with(
            env.gw.addr,
            Soap11,
            action(Operation::GetAccount),
            &[(name, value)],
            &body,
        )
        .await;
        assert_denied(&resp, Soap11, Reason::SourceNotAllowed);
    }
    assert_nothing_upstream(&env);
}

/// nginx, HAProxy and cloud load balancers append the client to `X-Forwarded-For` and pass a
/// client's own `Forwarded` through: only the configured header is believed.
#[tokio::test]
async fn a_clients_forwarded_header_is_not_believed_behind_an_x_forwarded_for_proxy() {
    let mut env = setup_with(Reply::Fixture, |c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    env.p = env.gw.partner(&["*"], &["10.0.0.0/8"]).await;
    let body = request_fixture(Operation::GetAccount, Soap11, &env.p);
    for headers in [
        // The client's forged Forwarded, passed through; the proxy wrote the real address.
        &[
            ("Forwarded", "for=10.1.2.3"),
            ("X-Forwarded-For", "192.0.2.9"),
        ][..],
        // The client's Forwarded alone: the proxy itself is the caller.
        &[("Forwarded", "for=10.1.2.3")][..],
    ] {
        let resp = post_soap_with(
            env.gw.addr,
            Soap11,
            action(Operation::GetAccount),
            headers,
            &body,
        )
        .await;
        assert_denied(&resp, Soap11, Reason::SourceNotAllowed);
    }
    assert_nothing_upstream(&env);
}

/// `trusted_proxy_header = "forwarded"`: then `Forwarded` is read and `X-Forwarded-For` never.
#[tokio::test]
async fn proxies_that_write_forwarded_are_read_from_forwarded_only() {
    let mut env = setup_with(Reply::Fixture, |c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.trusted_proxy_header = partnergate::allowlist::ProxyHeader::Forwarded;
    })
    .await;
    env.p = env.gw.partner(&["*"], &["10.0.0.0/8"]).await;
    let body = request_fixture(Operation::GetAccount, Soap11, &env.p);
    let resp = post_soap_with(
        env.gw.addr,
        Soap11,
        action(Operation::GetAccount),
        &[("X-Forwarded-For", "10.1.2.3")],
        &body,
    )
    .await;
    assert_denied(&resp, Soap11, Reason::SourceNotAllowed);
    assert_nothing_upstream(&env);
    let resp = post_soap_with(
        env.gw.addr,
        Soap11,
        action(Operation::GetAccount),
        &[
            ("X-Forwarded-For", "192.0.2.9"),
            ("Forwarded", "for=10.1.2.3;proto=https"),
        ],
        &body,
    )
    .await;
    assert_ok(&env, &resp, &body, Operation::GetAccount, Soap11);
}

/// On a dual-stack listener (`[::]:…`) an IPv4 proxy is the peer `::ffff:127.0.0.1`; it is
/// still the trusted proxy `127.0.0.1`.
#[tokio::test]
async fn a_dual_stack_listener_recognises_its_trusted_proxy() {
    let up = StubUpstream::start(Reply::Fixture).await;
    let mut c = test_config();
    c.upstream.url = Some(up.url.clone());
    c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let gw = start_gateway_at(c, "[::]:0".parse().unwrap()).await;
    let p = gw.partner(&["*"], &["10.0.0.0/8"]).await;
    let env = Env { gw, up, p };
    let body = request_fixture(Operation::GetAccount, Soap11, &env.p);
    let resp = post_soap_with(
        env.gw.addr,
        Soap11,
        action(Operation::GetAccount),
        &[("X-Forwarded-For", "10.1.2.3")],
        &body,
    )
    .await;
    assert_ok(&env, &resp, &body, Operation::GetAccount, Soap11);
    // The proxy's own address is still not the partner's.
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_denied(&resp, Soap11, Reason::SourceNotAllowed);
}

// === authorization ===

#[tokio::test]
async fn a_domain_grant_permits_only_its_domain() {
    let mut env = setup().await;
    env.p = env.gw.partner(&["accounts.*"], &["127.0.0.1/32"]).await;
    let (sent, resp) = call_fixture(&env, Operation::CreateAccount, Soap11).await;
    assert_ok(&env, &resp, &sent, Operation::CreateAccount, Soap11);
    let (_, resp) = call_fixture(&env, Operation::AddDevice, Soap11).await;
    assert_denied(&resp, Soap11, Reason::OperationNotPermitted);
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn an_exact_grant_permits_only_that_operation() {
    let mut env = setup().await;
    env.p = env.gw.partner(&["accounts.get"], &["127.0.0.1/32"]).await;
    let (sent, resp) = call_fixture(&env, Operation::GetAccount, Soap12).await;
    assert_ok(&env, &resp, &sent, Operation::GetAccount, Soap12);
    for op in [Operation::CreateAccount, Operation::FindAccounts] {
        let (_, resp) = call_fixture(&env, op, Soap11).await;
        assert_denied(&resp, Soap11, Reason::OperationNotPermitted);
    }
    let (_, resp) = call_fixture(&env, Operation::CreateAccount, Soap12).await;
    assert_denied(&resp, Soap12, Reason::OperationNotPermitted);
    assert_nothing_upstream(&env);
}

// === throttling ===

fn assert_throttled(resp: &RawResponse, version: SoapVersion, scope: &str) {
    let f = fault(resp, version, st(version, 429));
    assert_eq!(f.code, FaultCode::Sender);
    assert_eq!(resp.header("retry-after"), Some("1"), "{resp:?}");
    match &f.detail {
        Some(FaultDetail::Throttled(d)) => assert_eq!(d.retry_after_seconds, 1),
        other => panic!("expected ThrottledFault, got {other:?}"),
    }
    assert!(
        f.reason
            .starts_with(&format!("Throttled: 1 req/s {scope} limit")),
        "{}",
        f.reason
    );
}

async fn third_call_is_throttled(version: SoapVersion) {
    let env = setup().await;
    env.gw
        .store
        .set_partner_rate(&env.p.id, Rate::new(1, 2))
        .unwrap();
    env.gw.sync().await;
    for _ in 0..2 {
        let (sent, resp) = call_fixture(&env, Operation::GetAccount, version).await;
        assert_ok(&env, &resp, &sent, Operation::GetAccount, version);
    }
    let (_, resp) = call_fixture(&env, Operation::GetAccount, version).await;
    assert_throttled(&resp, version, "partner");
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn throttled_soap12_is_429_with_retry_after() {
    third_call_is_throttled(Soap12).await;
}

#[tokio::test]
async fn throttled_soap11_is_500_with_retry_after() {
    third_call_is_throttled(Soap11).await;
}

/// `faults.soap11_status = "semantic"` and `faults.soap12_status = "semantic"`: both versions
/// get the statuses that name what happened (403, 404, 429), `Retry-After` as always.
#[tokio::test]
async fn semantic_mode_gives_faults_of_both_versions_the_semantic_statuses() {
    for version in [Soap11, Soap12] {
        let env = setup_with(Reply::Fixture, |c| {
            c.fault_status = partnergate::fault::StatusModes {
                soap11: partnergate::fault::Soap11Status::Semantic,
                soap12: partnergate::fault::Soap12Status::Semantic,
            };
        })
        .await;
        let mut wrong = env.p.clone();
        let last = if env.p.key.ends_with('x') { "y" } else { "x" };
        wrong.key = format!("{}{last}", &env.p.key[..env.p.key.len() - 1]);
        let body = request_fixture(Operation::GetAccount, version, &wrong);
        let resp = call(&env, version, Some(Operation::GetAccount), &body).await;
        let f = fault(&resp, version, 403);
        assert!(
            matches!(f.detail, Some(FaultDetail::AccessDenied(_))),
            "{f:?}"
        );
        env.gw
            .store
            .set_partner_rate(&env.p.id, Rate::new(1, 1))
            .unwrap();
        env.gw.sync().await;
        let (_, ok) = call_fixture(&env, Operation::GetAccount, version).await;
        assert_eq!(ok.status, 200);
        let (_, resp) = call_fixture(&env, Operation::GetAccount, version).await;
        let f = fault(&resp, version, 429);
        assert_eq!(resp.header("retry-after"), Some("1"));
        assert!(matches!(f.detail, Some(FaultDetail::Throttled(_))), "{f:?}");
    }
}

#[tokio::test]
async fn a_group_cap_is_shared_by_its_members() {
    let env = setup().await;
    let store = &env.gw.store;
    store
        .create_group("resellers", None, Rate::new(1, 2))
        .unwrap();
    let a = onboard_partner(store, &["*"], &["127.0.0.0/8"], Some("resellers"));
    let b = onboard_partner(store, &["*"], &["127.0.0.0/8"], Some("resellers"));
    env.gw.sync().await;
    for p in [&a, &b] {
        let resp = call(
            &env,
            Soap12,
            Some(Operation::GetAccount),
            &request_fixture(Operation::GetAccount, Soap12, p),
        )
        .await;
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    assert_eq!(env.up.take().len(), 2);
    let resp = call(
        &env,
        Soap12,
        Some(Operation::GetAccount),
        &request_fixture(Operation::GetAccount, Soap12, &b),
    )
    .await;
    assert_throttled(&resp, Soap12, "group");
    // A partner outside the group is not affected.
    assert_happy(&env).await;
}

/// A call the group cap refuses spends none of the partner's own rate: A (own rate 1/s, burst 2)
/// is refused by the group again and again, never by its own limit (which the old code drained
/// with every refused call).
#[tokio::test]
async fn a_call_the_group_cap_refuses_spends_none_of_the_partners_own_rate() {
    let env = setup().await;
    let store = &env.gw.store;
    store
        .create_group("resellers", None, Rate::new(1, 1))
        .unwrap();
    let a = onboard_partner(store, &["*"], &["127.0.0.0/8"], Some("resellers"));
    let b = onboard_partner(store, &["*"], &["127.0.0.0/8"], Some("resellers"));
    store.set_partner_rate(&a.id, Rate::new(1, 2)).unwrap();
    env.gw.sync().await;
    let get = |p: &Partner| request_fixture(Operation::GetAccount, Soap12, p);
    // B takes the group's only cell.
    let started = Instant::now();
    let resp = call(&env, Soap12, Some(Operation::GetAccount), &get(&b)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let mut admitted = 1;
    for _ in 0..3 {
        let resp = call(&env, Soap12, Some(Operation::GetAccount), &get(&a)).await;
        if started.elapsed() >= Duration::from_millis(900) && resp.status == 200 {
            admitted += 1;
            break; // the group refilled (a slow machine): A was admitted, as it should be.
        }
        assert_throttled(&resp, Soap12, "group");
    }
    assert_eq!(env.up.take().len(), admitted, "refused calls went upstream");
}

/// Limiters of groups that are gone are dropped when the refresher installs the new snapshot:
/// a group renamed away and back starts with a fresh cap instead of the old, spent one.
#[tokio::test]
async fn a_group_renamed_away_and_back_gets_a_fresh_limiter() {
    let env = setup().await;
    let store = &env.gw.store;
    store
        .create_group("resellers", None, Rate::new(1, 1))
        .unwrap();
    let a = onboard_partner(store, &["*"], &["127.0.0.0/8"], Some("resellers"));
    env.gw.sync().await;
    let body = request_fixture(Operation::GetAccount, Soap12, &a);
    let resp = call(&env, Soap12, Some(Operation::GetAccount), &body).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = call(&env, Soap12, Some(Operation::GetAccount), &body).await;
    assert_throttled(&resp, Soap12, "group");
    for (from, to) in [
        ("resellers", "resellers-old"),
        ("resellers-old", "resellers"),
    ] {
        let changes = partnergate::store::GroupChanges {
            rename: Some(to.to_string()),
            ..partnergate::store::GroupChanges::default()
        };
        store.update_group("test", from, &changes).unwrap();
        env.gw.sync().await;
    }
    let resp = call(&env, Soap12, Some(Operation::GetAccount), &body).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

/// `limits.max_in_flight_per_partner`: with 2 calls of a partner waiting on a slow upstream, the
/// third is refused at once (429, Retry-After 1, the key named); when they finish, calls pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partners_calls_in_flight_are_limited() {
    let env = setup_with(Reply::Delay(Duration::from_millis(1500)), |c| {
        c.limits.max_in_flight_per_partner = 2;
    })
    .await;
    let body = request_fixture(Operation::GetAccount, Soap12, &env.p);
    let addr = env.gw.addr;
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let body = body.clone();
            tokio::spawn(async move {
                post_soap(addr, Soap12, action(Operation::GetAccount), &body).await
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(3);
    while env.up.count() < 2 {
        assert!(
            Instant::now() < deadline,
            "the two calls did not reach the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let resp = call(&env, Soap12, Some(Operation::GetAccount), &body).await;
    let f = fault(&resp, Soap12, st(Soap12, 429));
    assert_eq!(f.code, FaultCode::Sender);
    assert_eq!(resp.header("retry-after"), Some("1"), "{resp:?}");
    match &f.detail {
        Some(FaultDetail::Throttled(d)) => {
            assert_eq!(d.retry_after_seconds, 1);
            assert_eq!(
                d.message.as_str(),
                "2 requests of this partner are already in flight (limits.max_in_flight_per_partner)"
            );
        }
        other => panic!("expected ThrottledFault, got {other:?}"),
    }
    assert!(
        f.reason.starts_with(
            "Throttled: 2 requests in flight limit (limits.max_in_flight_per_partner) (request "
        ),
        "{}",
        f.reason
    );
    assert_eq!(env.up.count(), 2, "the refused call did not go upstream");
    for task in slow {
        assert_eq!(task.await.unwrap().status, 200);
    }
    env.up.set_reply(Reply::Fixture);
    env.up.take();
    assert_happy(&env).await;
}

// === strict decode ===

#[tokio::test]
async fn invalid_requests_are_refused_with_path_and_rule() {
    let expected: &[(&str, &str, &str)] = &[
        (
            "attribute-on-element.xml",
            "/GetAccount/AccountNumber",
            "attribute-not-allowed",
        ),
        ("bad-mac-address.xml", "/AddDevice/MacAddress", "pattern"),
        (
            "leading-whitespace.xml",
            "/ModifyAccount/Address/Street",
            "whitespace",
        ),
        (
            "name-carriage-return.xml",
            "/CreateAccount/Contact/LastName",
            "pattern",
        ),
        (
            "missing-required.xml",
            "/CreateAccount/Address",
            "missing-element",
        ),
        (
            "name-too-long.xml",
            "/CreateAccount/Contact/FirstName",
            "maxLength",
        ),
        (
            "notes-trailing-newline.xml",
            "/CreateAccount/Settings/Notes",
            "whitespace",
        ),
        (
            "two-feature-settings.xml",
            "/EnableFeature/Settings/CallWaiting",
            "duplicate-element",
        ),
        (
            "unknown-element.xml",
            "/CreateAccount/Nickname",
            "unknown-element",
        ),
        // The envelope scan refuses an unqualified body element before any decode.
        ("unqualified-wrapper.xml", "/", "envelope"),
        (
            "wrong-enum.xml",
            "/ChangeAccountStatus/Status",
            "enumeration",
        ),
    ];
    let env = setup().await;
    let mut seen = 0;
    let mut entries: Vec<_> = std::fs::read_dir(data_dir().join("invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        if !text.contains(FIXTURE_KEY) {
            continue; // not a partner request (responses, faults, callbacks)
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        let (_, want_path, want_rule) = expected
            .iter()
            .find(|(f, _, _)| *f == name)
            .unwrap_or_else(|| panic!("{name}: no expectation for this partner request"));
        seen += 1;
        let body = personalize(&bytes, &env.p.id, &env.p.key);
        for version in [Soap11, Soap12] {
            let body = match version {
                Soap11 => body.clone(),
                Soap12 => String::from_utf8(body.clone())
                    .unwrap()
                    .replace(SOAP11_NS, SOAP12_NS)
                    .into_bytes(),
            };
            let resp = post_soap(env.gw.addr, version, None, &body).await;
            let f = assert_invalid(&resp, version, 400, want_path, want_rule);
            assert!(
                f.reason.len() < 700,
                "{name}: the reason is bounded: {}",
                f.reason
            );
        }
    }
    assert_eq!(seen, expected.len(), "every expectation matched a fixture");
    assert_nothing_upstream(&env);
    assert_happy(&env).await;
}

#[tokio::test]
async fn an_unknown_operation_is_refused() {
    let env = setup().await;
    let body = String::from_utf8(get_account_11(Some(&partner_auth(&env.p.id, &env.p.key))))
        .unwrap()
        .replace("acc:GetAccount>", "acc:DeleteAccount>");
    let resp = call(
        &env,
        Soap12,
        None,
        body.replace(SOAP11_NS, SOAP12_NS).as_bytes(),
    )
    .await;
    assert_invalid(&resp, Soap12, 400, "/DeleteAccount", "unknown-element");
    // A response element is not a request either.
    let body = personalize(&fixture("GetAccount/response.xml"), &env.p.id, &env.p.key);
    let resp = call(&env, Soap11, None, &body).await;
    assert_invalid(&resp, Soap11, 400, "/GetAccountResponse", "unknown-element");
    assert_nothing_upstream(&env);
}

// === SOAPAction and content type ===

#[tokio::test]
async fn a_soap_action_naming_another_operation_is_refused() {
    let env = setup().await;
    let body = request_fixture(Operation::CreateAccount, Soap11, &env.p);
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    let f = assert_invalid(&resp, Soap11, 400, "/", "soap-action");
    assert!(f.reason.contains("CreateAccount"), "{}", f.reason);
    // An action outside the contract, too.
    let resp = post_soap(env.gw.addr, Soap11, Some("urn:example:Other"), &body).await;
    assert_invalid(&resp, Soap11, 400, "/", "soap-action");
    // Two SOAPAction headers.
    let a = format!("\"{}\"", Operation::CreateAccount.soap_action());
    let resp = post_soap_with(
        env.gw.addr,
        Soap11,
        action(Operation::CreateAccount),
        &[("SOAPAction", &a)],
        &body,
    )
    .await;
    assert_invalid(&resp, Soap11, 400, "/", "soap-action");
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn a_soap12_action_parameter_naming_another_operation_is_refused() {
    let env = setup().await;
    let body = request_fixture(Operation::CreateAccount, Soap12, &env.p);
    let resp = call(&env, Soap12, Some(Operation::GetAccount), &body).await;
    assert_invalid(&resp, Soap12, 400, "/", "soap-action");
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn a_matching_or_absent_action_is_accepted() {
    let env = setup().await;
    for version in [Soap11, Soap12] {
        for op in [Some(Operation::CreateAccount), None] {
            let body = request_fixture(Operation::CreateAccount, version, &env.p);
            let resp = call(&env, version, op, &body).await;
            assert_ok(&env, &resp, &body, Operation::CreateAccount, version);
        }
    }
    // An empty SOAPAction ("") is no action.
    let body = request_fixture(Operation::CreateAccount, Soap11, &env.p);
    let resp = post_soap_with(env.gw.addr, Soap11, None, &[("SOAPAction", "\"\"")], &body).await;
    assert_ok(&env, &resp, &body, Operation::CreateAccount, Soap11);
}

#[tokio::test]
async fn a_content_type_of_the_other_soap_version_is_refused() {
    let env = setup().await;
    // text/xml (SOAP 1.1) carrying a SOAP 1.2 envelope.
    let body = request_fixture(Operation::GetAccount, Soap12, &env.p);
    let resp = call(&env, Soap11, Some(Operation::GetAccount), &body).await;
    assert_invalid(&resp, Soap12, 400, "/", "soap-version");
    // application/soap+xml carrying a SOAP 1.1 envelope.
    let body = request_fixture(Operation::GetAccount, Soap11, &env.p);
    let resp = call(&env, Soap12, Some(Operation::GetAccount), &body).await;
    assert_invalid(&resp, Soap11, 400, "/", "soap-version");
    // Neither.
    let req = post_bytes(
        &env.gw.addr.to_string(),
        "application/json",
        &[("Connection", "close")],
        &body,
    );
    let resp = exchange(env.gw.addr, &req).await;
    assert_invalid(&resp, Soap11, 400, "/", "content-type");
    assert_nothing_upstream(&env);
}

// === limits ===

#[tokio::test]
async fn a_body_over_the_limit_with_content_length_is_413() {
    let env = setup_with(Reply::Fixture, |c| c.limits.body_max_bytes = 4096).await;
    let (ct, _) = soap_headers(Soap12, None);
    // Only the head: the declared length alone is refused, before any body byte is read.
    let req = format!(
        "POST /soap/partner/v1 HTTP/1.1\r\nHost: gw\r\nContent-Type: {ct}\r\nContent-Length: 5000\r\n\r\n"
    );
    let mut c = Conn::connect(env.gw.addr).await;
    c.send(req.as_bytes()).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), c.read_response())
        .await
        .expect("answered without the body")
        .unwrap();
    let f = assert_invalid(&resp, Soap12, 413, "/", "limits.body_max_bytes");
    assert!(f.reason.contains("limits.body_max_bytes"), "{}", f.reason);
    assert_eq!(resp.header("connection"), Some("close"));
    // SOAP 1.1: the same refusal with 500.
    let (ct, _) = soap_headers(Soap11, None);
    let req = format!(
        "POST /soap/partner/v1 HTTP/1.1\r\nHost: gw\r\nContent-Type: {ct}\r\nContent-Length: 4097\r\n\r\n"
    );
    let resp = exchange(env.gw.addr, req.as_bytes()).await;
    assert_invalid(&resp, Soap11, 413, "/", "limits.body_max_bytes");
    assert_nothing_upstream(&env);
    assert_happy(&env).await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let env = setup_with(Reply::Fixture, |c| c.limits.body_max_bytes = 4096).await;
    let (ct, _) = soap_headers(Soap12, None);
    let mut req = format!(
        "POST /soap/partner/v1 HTTP/1.1\r\nHost: gw\r\nContent-Type: {ct}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..5 {
        req.extend_from_slice(b"400\r\n");
        req.extend(std::iter::repeat_n(b' ', 0x400));
        req.extend_from_slice(b"\r\n");
    }
    let resp = exchange(env.gw.addr, &req).await;
    assert_invalid(&resp, Soap12, 413, "/", "limits.body_max_bytes");
    assert_eq!(resp.header("connection"), Some("close"));
    // A chunked body within the limit is fine.
    let body = request_fixture(Operation::GetAccount, Soap12, &env.p);
    let (ct, _) = soap_headers(Soap12, action(Operation::GetAccount));
    let mut req = format!(
        "POST /soap/partner/v1 HTTP/1.1\r\nHost: gw\r\nContent-Type: {ct}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for part in body.chunks(100) {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let resp = exchange(env.gw.addr, &req).await;
    assert_ok(&env, &resp, &body, Operation::GetAccount, Soap12);
}

/// A valid, authenticated GetAccount (SOAP 1.2) with `extra` header blocks after PartnerAuth.
fn with_extra_header(p: &Partner, extra: &str) -> Vec<u8> {
    get_account_12(Some(&format!("{}{extra}", partner_auth(&p.id, &p.key))))
}

async fn assert_xml_limit(env: &Env, body: &[u8], rule: &str) {
    let resp = call(env, Soap12, Some(Operation::GetAccount), body).await;
    let f = assert_invalid(&resp, Soap12, 400, "/", rule);
    if rule.starts_with("limits.") {
        assert!(f.reason.contains(rule), "{}", f.reason);
    }
    assert_nothing_upstream(env);
}

#[tokio::test]
async fn xml_depth_is_limited() {
    let env = setup().await;
    let deep = format!(
        "<d:x xmlns:d=\"urn:deep\">{}{}</d:x>",
        "<d:x>".repeat(30),
        "</d:x>".repeat(30)
    );
    assert_xml_limit(
        &env,
        &with_extra_header(&env.p, &deep),
        "limits.xml.max_depth",
    )
    .await;
    assert_happy(&env).await;
}

#[tokio::test]
async fn xml_attributes_are_limited() {
    let env = setup().await;
    let attrs: String = (0..9).map(|i| format!(" a{i}=\"v\"")).collect();
    let block = format!("<d:x xmlns:d=\"urn:attrs\"{attrs}/>");
    assert_xml_limit(
        &env,
        &with_extra_header(&env.p, &block),
        "limits.xml.max_attributes",
    )
    .await;
}

#[tokio::test]
async fn xml_namespace_declarations_are_limited() {
    let env = setup().await;
    let decls: String = (0..17)
        .map(|i| format!(" xmlns:n{i}=\"urn:n:{i}\""))
        .collect();
    let block = format!("<d:x xmlns:d=\"urn:ns\"{decls}/>");
    assert_xml_limit(
        &env,
        &with_extra_header(&env.p, &block),
        "limits.xml.max_namespace_declarations",
    )
    .await;
}

#[tokio::test]
async fn xml_text_length_is_limited() {
    let env = setup().await;
    let block = format!(
        "<d:x xmlns:d=\"urn:text\">{}</d:x>",
        "t".repeat(8 * 1024 + 1)
    );
    assert_xml_limit(
        &env,
        &with_extra_header(&env.p, &block),
        "limits.xml.max_text_bytes",
    )
    .await;
}

#[tokio::test]
async fn the_other_xml_bounds_name_their_keys() {
    let env = setup_with(Reply::Fixture, |c| c.limits.xml.max_elements = 300).await;
    let kids = format!("<d:x xmlns:d=\"urn:kids\">{}</d:x>", "<d:y/>".repeat(257));
    let name = format!("<d:{0} xmlns:d=\"urn:name\"/>", "n".repeat(130));
    let value = format!("<d:x xmlns:d=\"urn:value\" a=\"{}\"/>", "v".repeat(1025));
    let many = format!(
        "<d:x xmlns:d=\"urn:many\">{}</d:x>",
        "<d:y><d:z/></d:y>".repeat(150)
    );
    for (block, rule) in [
        (kids, "limits.xml.max_children"),
        (name, "limits.xml.max_name_bytes"),
        (value, "limits.xml.max_attribute_value_bytes"),
        (many, "limits.xml.max_elements"),
    ] {
        assert_xml_limit(&env, &with_extra_header(&env.p, &block), rule).await;
    }
    assert_happy(&env).await;
}

#[tokio::test]
async fn a_doctype_with_an_entity_is_refused() {
    let env = setup().await;
    let body = String::from_utf8(request_fixture(Operation::GetAccount, Soap12, &env.p)).unwrap();
    let body = body.replacen(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><!DOCTYPE env:Envelope [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>",
        1,
    );
    let body = body.replacen("ACC-0000001001", "&xxe;", 1);
    assert_xml_limit(&env, body.as_bytes(), "doctype").await;
}

#[tokio::test]
async fn a_processing_instruction_is_refused() {
    let env = setup().await;
    let body = String::from_utf8(request_fixture(Operation::GetAccount, Soap12, &env.p)).unwrap();
    let body = body.replacen("<acc:GetAccount>", "<acc:GetAccount><?evil run?>", 1);
    assert_xml_limit(&env, body.as_bytes(), "processing-instruction").await;
}

#[tokio::test]
async fn a_stalled_request_head_is_closed_after_the_header_timeout() {
    let env = setup_with(Reply::Fixture, |c| {
        c.limits.header_read_timeout = Duration::from_millis(300);
        c.limits.keepalive_idle_timeout = Duration::from_secs(20);
    })
    .await;
    let mut c = Conn::connect(env.gw.addr).await;
    c.send(b"POST /soap/partner/v1 HT").await.unwrap();
    let started = Instant::now();
    let got = tokio::time::timeout(Duration::from_secs(10), c.read_to_close())
        .await
        .expect("the connection is closed");
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(300) + SLACK,
        "closed only after {took:?}"
    );
    assert!(
        took >= Duration::from_millis(100),
        "closed too early: {took:?}"
    );
    assert!(
        !String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "{got:?}"
    );
    assert_nothing_upstream(&env);
    assert_happy(&env).await;
}

#[tokio::test]
async fn a_stalled_body_is_refused_after_the_body_timeout() {
    let env = setup_with(Reply::Fixture, |c| {
        c.limits.body_read_timeout = Duration::from_millis(300);
        c.limits.keepalive_idle_timeout = Duration::from_secs(20);
    })
    .await;
    let body = request_fixture(Operation::GetAccount, Soap12, &env.p);
    let req = post_bytes("gw", &soap_headers(Soap12, None).0, &[], &body);
    let mut c = Conn::connect(env.gw.addr).await;
    // Everything but the last 10 bytes of the body, then nothing.
    c.send(&req[..req.len() - 10]).await.unwrap();
    let started = Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(10), c.read_response())
        .await
        .expect("answered")
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(300) + SLACK,
        "answered only after {took:?}"
    );
    let f = assert_invalid(&resp, Soap12, 408, "/", "limits.body_read_timeout_ms");
    assert!(
        f.reason.contains("limits.body_read_timeout_ms"),
        "{}",
        f.reason
    );
    assert_eq!(resp.header("connection"), Some("close"));
    tokio::time::timeout(Duration::from_secs(5), c.read_to_close())
        .await
        .expect("then closed");
    assert_nothing_upstream(&env);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let env = setup_with(Reply::Fixture, |c| {
        c.limits.keepalive_idle_timeout = Duration::from_millis(300);
        c.limits.header_read_timeout = Duration::from_secs(20);
        c.upstream.response_timeout = Duration::from_millis(250);
    })
    .await;
    let body = request_fixture(Operation::GetAccount, Soap11, &env.p);
    let (ct, headers) = soap_headers(Soap11, action(Operation::GetAccount));
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let req = post_bytes("gw", &ct, &headers, &body);
    let mut c = Conn::connect(env.gw.addr).await;
    // Two requests on the one connection: keep-alive works.
    for _ in 0..2 {
        c.send(&req).await.unwrap();
        let resp = c.read_response().await.unwrap();
        assert_ok(&env, &resp, &body, Operation::GetAccount, Soap11);
    }
    let idle_since = Instant::now();
    let rest = tokio::time::timeout(Duration::from_secs(10), c.read_to_close())
        .await
        .expect("the idle connection is closed");
    let took = idle_since.elapsed();
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        took < Duration::from_millis(300) + SLACK,
        "closed only after {took:?}"
    );
    assert!(
        took >= Duration::from_millis(100),
        "closed too early: {took:?}"
    );
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let env = setup_with(Reply::Fixture, |c| {
        c.limits.max_connections = 2;
        c.limits.keepalive_idle_timeout = Duration::from_secs(20);
        c.limits.header_read_timeout = Duration::from_secs(20);
    })
    .await;
    let body = request_fixture(Operation::GetAccount, Soap11, &env.p);
    let (ct, headers) = soap_headers(Soap11, action(Operation::GetAccount));
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let req = post_bytes("gw", &ct, &headers, &body);
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut c = Conn::connect(env.gw.addr).await;
        c.send(&req).await.unwrap();
        let resp = c.read_response().await.unwrap();
        assert_eq!(resp.status, 200);
        open.push(c);
    }
    env.up.take();
    let mut third = Conn::connect(env.gw.addr).await;
    third.send(&req).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(500), third.read_response()).await;
    assert!(early.is_err(), "the third connection was served: {early:?}");
    assert_eq!(env.up.count(), 0);
    drop(open.remove(0));
    let resp = tokio::time::timeout(Duration::from_secs(5), third.read_response())
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert_ok(&env, &resp, &body, Operation::GetAccount, Soap11);
}

// === upstream ===

async fn upstream_failure(reply: Reply, tweak: impl FnOnce(&mut Config), semantic: u16) -> Env {
    let env = setup_with(reply, tweak).await;
    for version in [Soap11, Soap12] {
        let (sent, resp) = call_fixture(&env, Operation::GetAccount, version).await;
        let f = assert_unavailable(&resp, version, semantic);
        assert!(!f.reason.contains("html"), "{}", f.reason);
        let got = env.up.take();
        assert_eq!(got.len(), 1, "exactly one upstream request");
        assert_canonical_upstream(&got[0], &sent, &env.p.id, &resp.request_id());
    }
    env
}

#[tokio::test]
async fn a_refused_upstream_connection_is_503() {
    let up_url = closed_port_url();
    let up = StubUpstream::start(Reply::Fixture).await;
    let mut c = test_config();
    c.upstream.url = Some(up_url);
    let gw = start_gateway(c).await;
    let p = gw.partner(&["*"], &["127.0.0.0/8"]).await;
    let env = Env { gw, up, p };
    for version in [Soap11, Soap12] {
        let (_, resp) = call_fixture(&env, Operation::GetAccount, version).await;
        let f = assert_unavailable(&resp, version, 503);
        assert!(f.reason.contains("unreachable"), "{}", f.reason);
    }
}

#[tokio::test]
async fn a_slow_upstream_is_504_within_the_timeout() {
    let env = setup_with(Reply::Delay(Duration::from_secs(5)), |c| {
        c.upstream.response_timeout = Duration::from_millis(300);
    })
    .await;
    let started = Instant::now();
    let (sent, resp) = call_fixture(&env, Operation::GetAccount, Soap12).await;
    let took = started.elapsed();
    assert_unavailable(&resp, Soap12, 504);
    assert!(
        took < Duration::from_millis(300) + SLACK,
        "answered only after {took:?}"
    );
    let got = env.up.take();
    assert_eq!(got.len(), 1);
    assert_canonical_upstream(&got[0], &sent, &env.p.id, &resp.request_id());
}

#[tokio::test]
async fn an_html_502_from_upstream_is_502() {
    let env = upstream_failure(Reply::Html502, |_| {}, 502).await;
    env.up.set_reply(Reply::Fixture);
    assert_happy(&env).await;
}

#[tokio::test]
async fn invalid_xml_from_upstream_is_502() {
    upstream_failure(Reply::InvalidXml, |_| {}, 502).await;
}

#[tokio::test]
async fn a_response_of_another_operation_is_502() {
    upstream_failure(Reply::OtherOperation(Operation::GetDevice), |_| {}, 502).await;
}

#[tokio::test]
async fn an_oversized_upstream_response_is_502() {
    upstream_failure(
        Reply::Oversized(64 * 1024),
        |c| c.upstream.max_response_bytes = 8 * 1024,
        502,
    )
    .await;
}

#[tokio::test]
async fn a_typed_upstream_fault_is_passed_on_with_our_request_id_and_texts() {
    for (file, status) in [
        ("NotFoundFault.soap11.xml", 500),
        ("NotFoundFault.soap12.xml", 400),
    ] {
        let env = setup_with(Reply::Fault { file, status }, |_| {}).await;
        for version in [Soap11, Soap12] {
            let (sent, resp) = call_fixture(&env, Operation::GetAccount, version).await;
            let f = fault(&resp, version, st(version, 404));
            assert_eq!(f.code, FaultCode::Sender);
            match &f.detail {
                Some(FaultDetail::NotFound(d)) => {
                    assert_eq!(d.entity, cmn::NotFoundEntity::Account);
                    // The gateway's text, not the upstream's ("Account ACC-0000009999 does not
                    // exist.").
                    assert_eq!(
                        d.message.as_str(),
                        "The account does not exist or is not visible to this partner."
                    );
                    assert_eq!(d.request_id.as_str(), resp.request_id());
                }
                other => panic!("expected NotFoundFault, got {other:?}"),
            }
            assert_eq!(
                f.reason,
                format!("Not Found: account (request {})", resp.request_id())
            );
            assert!(
                !resp.text().contains("gw-7f3c2a9e"),
                "the upstream's request id leaked"
            );
            assert!(
                !resp.text().contains("ACC-0000009999"),
                "the upstream's message leaked"
            );
            let got = env.up.take();
            assert_eq!(got.len(), 1);
            assert_canonical_upstream(&got[0], &sent, &env.p.id, &resp.request_id());
        }
    }
}

/// What an upstream's fault said in issue 14: the database, its host, a user and a password.
const UPSTREAM_SECRET: &str =
    "java.sql.SQLException: ORA-01017 at db-int-7.corp.local:1521 user=prov_admin password=hunter2";

/// Neither the upstream's text nor any word of it is in the response bytes.
fn assert_no_upstream_text(resp: &RawResponse) {
    let text = String::from_utf8_lossy(&resp.body);
    for piece in UPSTREAM_SECRET
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| p.len() >= 4)
        .chain(["ORA-01017", "db-int-7", "hunter2", "gw-upstream-0001"])
    {
        assert!(
            !text.contains(piece),
            "{piece:?} reached the partner: {text}"
        );
    }
}

fn upstream_fault_11(faultcode: &str, detail: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope xmlns:soapenv=\"{SOAP11_NS}\" \
         xmlns:cmn=\"{NS_CMN}\"><soapenv:Body><soapenv:Fault><faultcode>soapenv:{faultcode}</faultcode>\
         <faultstring>{UPSTREAM_SECRET}&#10;\tat oracle.jdbc.driver.T4CTTIoer.processError</faultstring>\
         {detail}</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    .into_bytes()
}

/// Issue 14: an upstream fault without a contract detail had its faultstring passed on verbatim.
#[tokio::test]
async fn an_upstream_fault_without_detail_becomes_our_upstream_unavailable_fault() {
    for faultcode in ["Server", "Client"] {
        let body = upstream_fault_11(faultcode, "");
        let env = setup_with(Reply::Raw { status: 500, body }, |_| {}).await;
        for version in [Soap11, Soap12] {
            let (sent, resp) = call_fixture(&env, Operation::GetAccount, version).await;
            let f = assert_unavailable(&resp, version, 502);
            let rid = resp.request_id();
            assert_eq!(
                f.reason,
                format!("Upstream Unavailable: the partner API could not serve the request (request {rid})")
            );
            match &f.detail {
                Some(FaultDetail::UpstreamUnavailable(d)) => {
                    assert_eq!(
                        d.message.as_str(),
                        "the partner API could not serve the request"
                    );
                    assert_eq!(d.request_id.as_str(), rid);
                }
                other => panic!("{other:?}"),
            }
            assert_no_upstream_text(&resp);
            let got = env.up.take();
            assert_eq!(got.len(), 1);
            assert_canonical_upstream(&got[0], &sent, &env.p.id, &rid);
        }
    }
}

/// Issue 14: a typed NotFound's faultstring and Message were passed on verbatim. The typed
/// field (Entity) stays, the texts are the gateway's.
#[tokio::test]
async fn a_typed_upstream_fault_keeps_its_typed_fields_and_gets_our_texts() {
    let detail = format!(
        "<detail><cmn:NotFoundFault><cmn:Entity>service</cmn:Entity>\
         <cmn:Message>{UPSTREAM_SECRET}</cmn:Message><cmn:RequestId>gw-upstream-0001</cmn:RequestId>\
         </cmn:NotFoundFault></detail>"
    );
    let body = upstream_fault_11("Client", &detail);
    let env = setup_with(Reply::Raw { status: 500, body }, |_| {}).await;
    for version in [Soap11, Soap12] {
        let (_, resp) = call_fixture(&env, Operation::GetAccount, version).await;
        let f = fault(&resp, version, st(version, 404));
        let rid = resp.request_id();
        assert_eq!(f.code, FaultCode::Sender);
        assert_eq!(f.reason, format!("Not Found: service (request {rid})"));
        match &f.detail {
            Some(FaultDetail::NotFound(d)) => {
                assert_eq!(d.entity, cmn::NotFoundEntity::Service);
                assert_eq!(
                    d.message.as_str(),
                    "The service does not exist or is not visible to this partner."
                );
                assert_eq!(d.request_id.as_str(), rid);
            }
            other => panic!("expected NotFoundFault, got {other:?}"),
        }
        assert_no_upstream_text(&resp);
        assert_eq!(env.up.take().len(), 1);
    }
}

/// The `Message` of any contract fault detail.
fn detail_message(d: &FaultDetail) -> &str {
    match d {
        FaultDetail::AccessDenied(d) => d.message.as_str(),
        FaultDetail::InvalidRequest(d) => d.message.as_str(),
        FaultDetail::Throttled(d) => d.message.as_str(),
        FaultDetail::NotFound(d) => d.message.as_str(),
        FaultDetail::Conflict(d) => d.message.as_str(),
        FaultDetail::UpstreamUnavailable(d) => d.message.as_str(),
    }
}

#[tokio::test]
async fn every_typed_upstream_fault_keeps_its_kind_and_status() {
    use partnergate::generated::partner::FaultKind;
    let env = setup().await;
    // (fixture, SOAP 1.2 status, kind the partner sees, Retry-After, the gateway's reason and
    // Message; the fixtures' own texts — "Account ACC-0000001001 is TERMINATED …", "Rate limit
    // of 20 requests per second exceeded." … — never reach the partner)
    let cases = [
        (
            "ConflictFault.soap11.xml",
            409,
            FaultKind::Conflict,
            None,
            "Conflict: invalid-status-transition",
            "The requested status change is not allowed from the current status.",
        ),
        (
            "InvalidRequestFault.soap11.xml",
            400,
            FaultKind::InvalidRequest,
            None,
            "Invalid Request: the partner API refused the request",
            "The partner API refused the request: see Path and Rule.",
        ),
        (
            "ThrottledFault.soap11.xml",
            429,
            FaultKind::Throttled,
            Some("30"),
            "Throttled: the partner API is busy",
            "The partner API is busy: retry after 30 seconds.",
        ),
        (
            "UpstreamUnavailableFault.soap12.xml",
            502,
            FaultKind::UpstreamUnavailable,
            None,
            "Upstream Unavailable: the partner API could not serve the request",
            "the partner API could not serve the request",
        ),
        // The upstream refusing the gateway is not an access decision about the partner.
        (
            "AccessDeniedFault.soap11.xml",
            502,
            FaultKind::UpstreamUnavailable,
            None,
            "Upstream Unavailable: the partner API answered with an invalid response",
            "the partner API answered with an invalid response",
        ),
    ];
    for (file, status, kind, retry_after, reason, message) in cases {
        env.up.set_reply(Reply::Fault { file, status: 500 });
        for version in [Soap11, Soap12] {
            let (sent, resp) = call_fixture(&env, Operation::GetAccount, version).await;
            let f = fault(&resp, version, st(version, status));
            assert_eq!(
                f.detail.as_ref().map(FaultDetail::kind),
                Some(kind),
                "{file}: {f:?}"
            );
            assert_eq!(resp.header("retry-after"), retry_after, "{file}");
            assert_eq!(
                f.reason,
                format!("{reason} (request {})", resp.request_id()),
                "{file}"
            );
            assert_eq!(
                f.detail.as_ref().map(detail_message),
                Some(message),
                "{file}"
            );
            if let Some(FaultDetail::InvalidRequest(d)) = &f.detail {
                // The typed fields of the upstream's detail are kept.
                assert_eq!(
                    (d.path.as_str(), d.rule.as_str()),
                    ("/Envelope/Body/CreateAccount/Contact/Email", "pattern")
                );
            }
            assert!(
                !resp.text().contains("gw-7f3c2a9e"),
                "{file}: upstream request id leaked"
            );
            let got = env.up.take();
            assert_eq!(got.len(), 1);
            assert_canonical_upstream(&got[0], &sent, &env.p.id, &resp.request_id());
        }
    }
}

#[tokio::test]
async fn the_gateway_secret_goes_upstream_and_partner_headers_do_not() {
    let env = setup_with(Reply::Fixture, |c| {
        c.upstream.gateway_secret = Some("s3cret-s3cret-s3cret".into());
    })
    .await;
    let body = request_fixture(Operation::GetAccount, Soap11, &env.p);
    let resp = post_soap_with(
        env.gw.addr,
        Soap11,
        action(Operation::GetAccount),
        &[
            ("X-Partner-Debug", "internal"),
            ("Authorization", "Basic cGFydG5lcjpwdw=="),
            ("Cookie", "session=abc"),
            ("X-Forwarded-For", "10.9.9.9"),
            ("X-Request-Id", "gw-00000000000000000000000000000000"),
        ],
        &body,
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    // The request id is the gateway's own, whatever the partner sent.
    assert_ne!(resp.request_id(), "gw-00000000000000000000000000000000");
    assert!(resp.request_id().starts_with("gw-"));
    let got = env.up.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].header("x-partnergate-gateway-secret").as_deref(),
        Some("s3cret-s3cret-s3cret")
    );
    assert_ok(&env, &resp, &body, Operation::GetAccount, Soap11);
}

/// `app::start` always has an upstream (without a URL it runs the reference layer in process),
/// so a gateway without one is assembled from the library's parts here.
#[tokio::test]
async fn no_upstream_configured_is_503() {
    use std::sync::Arc;
    let mut config = test_config();
    let db = temp_path("no-upstream", "db");
    config.database_url = db.display().to_string();
    let store = partnergate::store::Store::open(&config.database_url).unwrap();
    let p = onboard_partner(&store, &["*"], &["127.0.0.0/8"], None);
    let gateway = Arc::new(partnergate::pipeline::Gateway {
        settings: partnergate::pipeline::Settings {
            xml: config.limits.xml,
            trusted_proxies: Vec::new(),
            trusted_proxy_header: partnergate::allowlist::ProxyHeader::default(),
            fault_status: config.fault_status,
        },
        snapshot: Arc::new(partnergate::store::SnapshotCell::new(
            store.load_snapshot().unwrap(),
        )),
        throttle: partnergate::throttle::Throttle::new(config.default_rate),
        upstream: None,
        stats: Arc::default(),
        callback: None,
        enrollment: None,
    });
    let server = partnergate::server::Server::new(&config, gateway).unwrap();
    let listener = partnergate::server::Server::bind(config.listen)
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let done = tokio::spawn(server.serve(listener, rx, Duration::from_secs(1)));
    for version in [Soap11, Soap12] {
        let body = request_fixture(Operation::GetAccount, version, &p);
        let resp = post_soap(addr, version, action(Operation::GetAccount), &body).await;
        let f = assert_unavailable(&resp, version, 503);
        assert!(
            f.reason.contains("no partner API is configured"),
            "{}",
            f.reason
        );
    }
    stop.send(true).unwrap();
    done.await.unwrap();
    remove_db(&db);
}

#[tokio::test]
async fn without_an_upstream_url_the_reference_layer_answers_in_process() {
    let gw = start_gateway(test_config()).await;
    let p = gw.partner(&["*"], &["127.0.0.0/8"]).await;
    // An account that does not exist: the layer's typed NotFound, with our request id.
    let body = request_fixture(Operation::GetAccount, Soap12, &p);
    let resp = post_soap(gw.addr, Soap12, action(Operation::GetAccount), &body).await;
    let f = fault(&resp, Soap12, st(Soap12, 404));
    assert!(matches!(f.detail, Some(FaultDetail::NotFound(_))), "{f:?}");
    let body = request_fixture(Operation::CreateAccount, Soap11, &p);
    let resp = post_soap(gw.addr, Soap11, action(Operation::CreateAccount), &body).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.text().contains("CreateAccountResponse"),
        "{}",
        resp.text()
    );
}

#[tokio::test]
async fn an_upstream_slower_than_the_idle_timeout_but_within_its_own_is_answered() {
    // keepalive_idle_timeout (400 ms) < upstream delay (1 s) < upstream.response_timeout (3 s):
    // the partner's connection is quiet while the gateway waits, but the call is in time.
    let env = setup_with(Reply::Delay(Duration::from_secs(1)), |c| {
        c.limits.keepalive_idle_timeout = Duration::from_millis(400);
        c.upstream.response_timeout = Duration::from_secs(3);
    })
    .await;
    let (sent, resp) = call_fixture(&env, Operation::GetAccount, Soap11).await;
    assert_ok(&env, &resp, &sent, Operation::GetAccount, Soap11);
}

// === robustness ===

#[tokio::test]
async fn the_server_keeps_serving_after_every_refusal() {
    let env = setup_with(Reply::Fixture, |c| {
        c.limits.body_max_bytes = 16 * 1024;
        c.limits.header_read_timeout = Duration::from_millis(300);
        c.upstream.response_timeout = Duration::from_millis(300);
    })
    .await;
    let addr = env.gw.addr;
    // Not HTTP at all.
    let mut c = Conn::connect(addr).await;
    c.send(b"\x16\x03\x01\x00\xff garbage\r\n\r\n")
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_close()).await;
    // A stalled head.
    let mut c = Conn::connect(addr).await;
    c.send(b"POST /soap/partner/v1 HTTP/1.1\r\nHost:")
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_close()).await;
    // A connection dropped mid-body.
    let mut c = Conn::connect(addr).await;
    c.send(b"POST /soap/partner/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 900\r\n\r\n<soap")
        .await
        .unwrap();
    drop(c);
    // Oversized, malformed, hostile and unauthenticated bodies.
    let big = vec![b'x'; 20 * 1024];
    let bodies: Vec<Vec<u8>> = vec![
        big,
        b"<not-closed>".to_vec(),
        b"\xff\xfe<x/>".to_vec(),
        b"<!DOCTYPE x [<!ENTITY a \"aa\"><!ENTITY b \"&a;&a;\">]><x>&b;</x>".to_vec(),
        get_account_11(None),
        Vec::new(),
    ];
    for body in bodies {
        let resp = post_soap(addr, Soap11, None, &body).await;
        assert_eq!(resp.status, 500, "{}", resp.text());
        parse_fault_body(&resp.body);
    }
    // Upstream failures.
    env.up.set_reply(Reply::Delay(Duration::from_secs(3)));
    let (_, resp) = call_fixture(&env, Operation::GetAccount, Soap12).await;
    assert_unavailable(&resp, Soap12, 504);
    env.up.set_reply(Reply::InvalidXml);
    let (_, resp) = call_fixture(&env, Operation::GetAccount, Soap12).await;
    assert_unavailable(&resp, Soap12, 502);
    env.up.set_reply(Reply::Fixture);
    env.up.take();
    // Headers over limits.max_header_bytes.
    let big_header = format!(
        "POST /soap/partner/v1 HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nContent-Length: 0\r\n\r\n",
        "p".repeat(64 * 1024)
    );
    let mut c = Conn::connect(addr).await;
    let _ = c.send(big_header.as_bytes()).await;
    let got = tokio::time::timeout(Duration::from_secs(5), c.read_to_close())
        .await
        .expect("closed");
    assert!(
        !got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // Unknown routes and methods.
    assert_eq!(get(addr, "/nope", None).await.status, 404);
    let resp = exchange(
        addr,
        b"PUT /soap/partner/v1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 405);
    assert_happy(&env).await;
}

// === contract and health endpoints ===

#[tokio::test]
async fn the_wsdl_points_at_a_listed_host_or_else_the_listener() {
    let env = setup_with(Reply::Fixture, |c| {
        c.public_hosts = vec!["gw.example.test:8443".into(), "gw.example.test".into()];
    })
    .await;
    let addr = env.gw.addr;
    let resp = get(addr, "/soap/partner/v1?wsdl", Some("GW.example.test:8443")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/xml; charset=utf-8"));
    assert_eq!(resp.header("cache-control"), Some("no-cache"));
    assert_eq!(resp.header("vary"), Some("Host"));
    let wsdl = resp.text();
    let endpoint = "http://gw.example.test:8443/soap/partner/v1";
    assert_eq!(
        wsdl.matches(&format!("location=\"{endpoint}\"")).count(),
        2,
        "{wsdl}"
    );
    assert!(wsdl.contains("<soap12:address"));
    for xsd in ["common", "accounts", "services", "devices", "features"] {
        assert!(
            wsdl.contains(&format!("schemaLocation=\"{endpoint}?xsd={xsd}.xsd\"")),
            "{xsd}"
        );
    }
    assert!(!wsdl.contains("localhost:8080"));

    let resp = get(
        addr,
        "/soap/partner/v1?wsdl=soap11",
        Some("gw.example.test"),
    )
    .await;
    assert_eq!(resp.status, 200);
    let wsdl = resp.text();
    assert!(wsdl.contains("location=\"http://gw.example.test/soap/partner/v1\""));
    assert!(
        !wsdl.contains("soap12:address"),
        "the SOAP 1.1 view has no SOAP 1.2 port"
    );

    let resp = get(addr, "/soap/partner/v1?xsd=common.xsd", None).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("cache-control"), Some("no-cache"));
    assert!(resp
        .text()
        .contains("targetNamespace=\"urn:partnergate:partner:common:v1\""));
    let resp = get(
        addr,
        "/soap/partner/v1?xsd=accounts.xsd",
        Some("gw.example.test"),
    )
    .await;
    assert!(
        resp.text()
            .contains("schemaLocation=\"http://gw.example.test/soap/partner/v1?xsd=common.xsd\""),
        "{}",
        resp.text()
    );

    for target in [
        "/soap/partner/v1?xsd=nope.xsd",
        "/soap/partner/v1?xsd=../Cargo.toml",
        "/soap/partner/v1?wsdl=soap13",
        "/soap/partner/v1",
    ] {
        assert_eq!(get(addr, target, None).await.status, 404, "{target}");
    }
    // A Host that is not listed is never reflected, whether it is a host name or not: the
    // documents point at the listener's own address.
    let listener = format!("location=\"http://{addr}/soap/partner/v1\"");
    for forged in [
        "evil.example",
        "evil\"><x",
        "gw.example.test.evil.example",
        "gw.example.test:1",
    ] {
        let resp = get(addr, "/soap/partner/v1?wsdl", Some(forged)).await;
        assert_eq!(resp.status, 200, "{forged}");
        assert!(!resp.text().contains("evil"), "{forged}");
        assert!(!resp.text().contains("gw.example.test"), "{forged}");
        assert_eq!(resp.text().matches(&listener).count(), 2, "{forged}");
    }
}

/// RFC 9112 §3.2: more than one Host (the first used to win) or none on HTTP/1.1 is a 400, and
/// the connection is closed.
#[tokio::test]
async fn duplicate_or_missing_host_headers_are_refused() {
    let env = setup_with(Reply::Fixture, |c| {
        c.public_hosts = vec!["gw.example.test".into()]
    })
    .await;
    let addr = env.gw.addr;
    for (name, request) in [
        (
            "two Host headers",
            "GET /soap/partner/v1?wsdl HTTP/1.1\r\nHost: gw.example.test\r\nHost: evil.example\r\n\r\n",
        ),
        (
            "two equal Host headers",
            "GET /soap/partner/v1?wsdl HTTP/1.1\r\nHost: gw.example.test\r\nHost: gw.example.test\r\n\r\n",
        ),
        ("no Host header", "GET /soap/partner/v1?wsdl HTTP/1.1\r\n\r\n"),
    ] {
        let mut c = Conn::connect(addr).await;
        c.send(request.as_bytes()).await.unwrap();
        let resp = c.read_response().await.unwrap();
        assert_eq!(resp.status, 400, "{name}: {}", resp.text());
        assert_eq!(resp.header("connection"), Some("close"), "{name}");
        let rest = tokio::time::timeout(Duration::from_secs(5), c.read_to_close())
            .await
            .expect("closed");
        assert!(rest.is_empty(), "{name}");
    }
    // A SOAP request with two Host headers is refused before anything reads it.
    env.up.take();
    let body = request_fixture(Operation::GetAccount, Soap11, &env.p);
    let (ct, headers) = soap_headers(Soap11, action(Operation::GetAccount));
    let mut h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    h.push(("Host", "evil.example"));
    let resp = exchange(addr, &post_bytes("gw", &ct, &h, &body)).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(env.up.count(), 0);
}

#[tokio::test]
async fn the_wsdl_uses_the_public_url_when_configured() {
    let env = setup_with(Reply::Fixture, |c| {
        c.public_url = Some("https://partners.example.com".into());
    })
    .await;
    let resp = get(env.gw.addr, "/soap/partner/v1?wsdl", Some("internal:8080")).await;
    let wsdl = resp.text();
    assert_eq!(
        wsdl.matches("location=\"https://partners.example.com/soap/partner/v1\"")
            .count(),
        2
    );
    assert!(wsdl.contains(
        "schemaLocation=\"https://partners.example.com/soap/partner/v1?xsd=common.xsd\""
    ));
    assert!(!wsdl.contains("internal:8080"));
    // The address is configured: caches may keep the document.
    assert_eq!(resp.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(resp.header("vary"), None);
}

#[tokio::test]
async fn health_and_readiness() {
    let env = setup().await;
    let resp = get(env.gw.addr, "/healthz", None).await;
    assert_eq!((resp.status, resp.text().as_str()), (200, "ok\n"));
    let resp = get(env.gw.addr, "/readyz", None).await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.text().starts_with("ready: snapshot revision "),
        "{}",
        resp.text()
    );
    assert!(resp.text().contains("(1 partners)"), "{}", resp.text());
}

// === TLS ===

#[tokio::test]
async fn tls_serves_the_soap_endpoint() {
    let up = StubUpstream::start(Reply::Fixture).await;
    let mut c = test_config();
    c.upstream.url = Some(up.url.clone());
    let (gw, pki) = start_tls_gateway(c).await;
    let p = gw.partner(&["*"], &["127.0.0.0/8"]).await;
    let env = Env { gw, up, p };
    let body = request_fixture(Operation::GetAccount, Soap11, &env.p);
    for name in ["localhost", "127.0.0.1"] {
        let mut c = connect_tls(env.gw.addr, &pki.ca_der, name).await;
        let (ct, headers) = soap_headers(Soap11, action(Operation::GetAccount));
        let mut h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        h.push(("Connection", "close"));
        c.send(&post_bytes("localhost", &ct, &h, &body))
            .await
            .unwrap();
        let resp = c.read_response().await.unwrap();
        assert_ok(&env, &resp, &body, Operation::GetAccount, Soap11);
    }
    // HTTPS in the served WSDL.
    let mut c = connect_tls(env.gw.addr, &pki.ca_der, "localhost").await;
    c.send(
        b"GET /soap/partner/v1?wsdl HTTP/1.1\r\nHost: localhost:8443\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let resp = c.read_response().await.unwrap();
    assert!(
        resp.text().contains(&format!(
            "location=\"https://{}/soap/partner/v1\"",
            env.gw.addr
        )),
        "no public_url and Host not listed: the listener's address, over https"
    );
    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut c = Conn::connect(env.gw.addr).await;
    c.send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), c.read_to_close())
        .await
        .expect("closed");
    assert!(
        !got.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}
