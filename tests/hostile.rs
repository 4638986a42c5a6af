#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Hostile input against the running gateway (in process, `partnergate::app::start`, with a
//! recording stub upstream): every case asserts its exact refusal (typed detail: the
//! `InvalidRequest` rule, the `AccessDenied` reason …) or HTTP behaviour, that the upstream was
//! not touched (or received only the canonical encoding of what was framed), and that the gateway
//! still serves a valid call afterwards.
//!
//! The same cases then run, one after another, against the **real binary** (`partnergate serve`
//! on a free port with a temporary SQLite database) while its peak resident memory (`VmHWM`) is
//! read before and after: [`peak_memory_of_the_real_binary_stays_bounded`] asserts it grows by
//! less than [`MEMORY_GROWTH_BOUND`] and prints the figures.
//!
//! The gateway is configured with a 4 MiB body limit (so that 100,000 attributes, megabyte names
//! and text reach the XML limits rather than the size limit) and 1 s header and body timeouts.
//!
//! Each case is a function (`Case`) run by its own test on a fresh in-process gateway and, in
//! sequence, by the memory test against the binary.
//!
//! The statuses below are the semantic ones (`faults.soap12_status = "semantic"`); by default
//! (the SOAP 1.2 HTTP binding) every one of these 4xx goes out as 400, an `env:Sender` fault,
//! which `fault` checks.
//!
//! | hostile input | expected | test |
//! |---|---|---|
//! | external entity (XXE, `SYSTEM file:///etc/passwd`) | 400 `doctype` | `gateway.rs`: `a_doctype_with_an_entity_is_refused` |
//! | external entity over HTTP, parameter entity (`%ext;`) | 400 `doctype`, nothing fetched | `entities_are_refused_and_never_fetched` (case [`external_and_parameter_entities`]) |
//! | billion laughs (10 levels) | 400 `doctype` | `billion_laughs_is_refused` (case [`billion_laughs`]) |
//! | quadratic blowup (entity × 5,000; 500,000 `&lt;` without a DTD) | 400 `doctype`; 400 `limits.xml.max_text_bytes` | `quadratic_blowup_is_refused` (case [`quadratic_blowup`]) |
//! | 10,000-deep nesting | 400 `limits.xml.max_depth` | `ten_thousand_deep_nesting_is_refused` (case [`ten_thousand_deep`]) (30 deep in a header: `gateway.rs`: `xml_depth_is_limited`) |
//! | 100,000 attributes | 400 `limits.xml.max_attributes` | `a_hundred_thousand_attributes_are_refused` (case [`hundred_thousand_attributes`]) (9: `gateway.rs`: `xml_attributes_are_limited`) |
//! | huge names, text, attribute values, comments (1–3 MiB) | 400 `limits.xml.max_name_bytes` / `max_text_bytes` / `max_attribute_value_bytes` | `huge_names_text_and_values_are_refused` (case [`huge_names_and_text`]) (at the bounds: `gateway.rs`: `xml_text_length_is_limited`, `the_other_xml_bounds_name_their_keys`) |
//! | namespace-declaration flooding (17 on one element) | 400 `limits.xml.max_namespace_declarations` | `gateway.rs`: `xml_namespace_declarations_are_limited` |
//! | namespace-declaration flooding within the bounds: 30 × 1 KiB on Envelope and Header inherited by 256 header blocks | 403 `authentication-failed` | `inherited_namespace_flooding_is_refused_unauthenticated` (case [`namespace_flooding_inherited`]) |
//! | namespace-declaration flooding within the bounds: 16 × 1 KiB on each of 256 header blocks | 403 `authentication-failed` | `per_element_namespace_flooding_is_refused_unauthenticated` (case [`namespace_flooding_per_element`]) |
//! | invalid UTF-8 (bad byte, overlong, surrogate) | 400 `encoding` | `invalid_utf8_is_refused` (case [`invalid_utf8`]) |
//! | declared encodings other than UTF-8 (ISO-8859-1, UTF-16, …) | 400 `envelope` | `declared_encodings_other_than_utf8_are_refused` (case [`declared_encodings`]) |
//! | UTF-16 bytes (LE/BE with BOM) | 400 `encoding` | `utf16_bodies_are_refused` (case [`utf16_bodies`]) (UTF-8 BOM accepted: `gateway.rs`: `a_utf8_byte_order_mark_is_accepted`) |
//! | two or three UTF-8 byte order marks (or one after whitespace) before the document | 400 `document-start` (one is accepted) | `one_byte_order_mark_is_accepted_and_more_are_refused` (case [`byte_order_marks`]) |
//! | U+FFFF in an end tag, quoted by the parser's error | 400 `malformed`, the fault quotes U+FFFD and xmllint reads it (SOAP 1.1 and 1.2) | `a_fault_quoting_forbidden_characters_is_well_formed_xml` (case [`forbidden_characters_in_quoted_input`]) |
//! | SOAPAction naming another operation than the body | 400 `soap-action` | `gateway.rs`: `a_soap_action_naming_another_operation_is_refused`, `a_soap12_action_parameter_naming_another_operation_is_refused` |
//! | two `PartnerAuth` headers (and PartnerAuth + WS-Security) | 403 `authentication-failed` | `gateway.rs`: `two_credential_headers_are_refused` |
//! | credentials inside the body | 403 `authentication-failed` / 400 `envelope` | `gateway.rs`: `partner_auth_in_the_body_does_not_authenticate` |
//! | credential header not a direct child of Header | 403 `authentication-failed` | `gateway.rs`: `partner_auth_nested_below_a_header_block_does_not_authenticate` |
//! | comment inside a key | 403 `authentication-failed` | `gateway.rs`: `a_key_split_by_a_comment_is_refused` |
//! | processing instruction in the body | 400 `processing-instruction` | `gateway.rs`: `a_processing_instruction_is_refused` |
//! | comments and CDATA in values (accepted, not relayed), PI in the prolog, misplaced XML declaration, `--` in a comment | 200 + canonical upstream; 400 `processing-instruction`; 400 `malformed` | `markup_in_values_is_not_relayed_and_pis_are_refused` (case [`comments_cdata_and_processing_instructions`]) |
//! | CDATA in a key | 403 `authentication-failed` | `gateway.rs`: `a_key_split_by_cdata_is_refused` |
//! | oversized body with Content-Length | 413 `limits.body_max_bytes`, connection closed | `gateway.rs`: `a_body_over_the_limit_with_content_length_is_413` |
//! | oversized body without Content-Length (chunked) | 413 `limits.body_max_bytes`, connection closed | `gateway.rs`: `a_chunked_body_over_the_limit_is_413` |
//! | smuggling: Content-Length + `Transfer-Encoding: chunked` (either order), a CreateAccount behind the chunked body | framed by the chunked coding, answered, connection closed (hyper follows RFC 9112 §6.1): the CreateAccount is never read | `request_smuggling_shapes_never_desynchronise` (case [`smuggling_shapes`]) |
//! | smuggling: conflicting Content-Length (two headers; a list), an equal list `n, n` | 400, connection closed | `request_smuggling_shapes_never_desynchronise` (case [`smuggling_shapes`]) |
//! | smuggling: duplicate equal Content-Length headers | read as that one length (RFC 9110 §8.6; hyper merges them), answered: no reader can frame it differently | `request_smuggling_shapes_never_desynchronise` (case [`smuggling_shapes`]) |
//! | smuggling: `Transfer-Encoding: chunked, identity`, `identity`, `xchunked` | 400, connection closed | `request_smuggling_shapes_never_desynchronise` (case [`smuggling_shapes`]) |
//! | smuggling: `Transfer-Encoding: chunked` twice | 400 (the content, chunked once more, is not XML) | `request_smuggling_shapes_never_desynchronise` (case [`smuggling_shapes`]) |
//! | smuggling: obsolete line folding (hiding Transfer-Encoding; continuing Content-Length), whitespace before the colon, chunk-size overflow, HTTP/1.0 with Transfer-Encoding | 400, connection closed | `request_smuggling_shapes_never_desynchronise` (case [`smuggling_shapes`]) |
//! | slow headers (slowloris: one byte every 100 ms) | closed after `limits.header_read_timeout_ms` | `slow_headers_are_cut_off` (case [`slow_headers`]) (a stalled head: `gateway.rs`: `a_stalled_request_head_is_closed_after_the_header_timeout`) |
//! | slow body (one byte every 50 ms) | 408 `limits.body_read_timeout_ms`, closed | `a_slow_body_is_cut_off` (case [`slow_body`]) (a stalled body: `gateway.rs`: `a_stalled_body_is_refused_after_the_body_timeout`) |
//! | a chunked body that never ends | 408 `limits.body_read_timeout_ms`, closed | `an_endless_chunked_body_is_cut_off` (case [`endless_chunked_body`]) |
//! | `Content-Encoding: gzip` (gzip bytes, or a plain body that says so), `identity, deflate` | 415 `content-encoding`, never decompressed | `compressed_bodies_are_refused_not_decompressed` (case [`gzip_content_encoding`]) |

mod common;
#[path = "common/serve.rs"]
mod serve;
use serve::Binary;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use partnergate::config::Config;
use partnergate::envelope::{FaultCode, SoapVersion};
use partnergate::generated::partner::{FaultDetail, Operation};
use partnergate::generated::types::cmn::AccessDeniedReason as Reason;
use partnergate::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use SoapVersion::Soap12;

/// The body limit of the hostile gateway: large enough that the XML limits, not the size limit,
/// refuse the megabyte-sized cases.
const BODY_MAX: usize = 4 * 1024 * 1024;
/// Header and body read timeouts of the hostile gateway.
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// Allowed on top of a configured timeout before a case calls it late (shared, busy CPUs).
const SLACK: Duration = Duration::from_millis(2500);
/// The peak resident memory of the real binary may grow by less than this over the whole suite.
/// The largest accepted body is 4 MiB and cases run one at a time; what the gateway holds per
/// request is a few copies of the body plus bounded parse state (the namespace flood's inherited
/// declarations: at most 256 blocks × 32 bindings × 1 KiB = 8 MiB).
pub const MEMORY_GROWTH_BOUND: u64 = 64 * 1024 * 1024;

// === the gateway under test ===

/// A running gateway (in process or the real binary) with its stub upstream and a partner.
struct Target {
    addr: SocketAddr,
    up: StubUpstream,
    p: Partner,
    _gw: Option<TestGateway>,
}

fn hostile_config(c: &mut Config) {
    c.limits.body_max_bytes = BODY_MAX;
    c.limits.header_read_timeout = READ_TIMEOUT;
    c.limits.body_read_timeout = READ_TIMEOUT;
    c.limits.keepalive_idle_timeout = Duration::from_secs(5);
}

async fn in_process() -> Target {
    let up = StubUpstream::start(Reply::Fixture).await;
    let mut c = test_config();
    c.upstream.url = Some(up.url.clone());
    hostile_config(&mut c);
    let gw = start_gateway(c).await;
    let p = gw.partner(&["*"], &["127.0.0.0/8"]).await;
    Target {
        addr: gw.addr,
        up,
        p,
        _gw: Some(gw),
    }
}

type Case = fn(&Target) -> Pin<Box<dyn Future<Output = ()> + '_>>;

/// Runs one case on a fresh in-process gateway, then a valid call.
async fn run(case: Case) {
    let t = in_process().await;
    case(&t).await;
    assert_happy(&t).await;
}

// === helpers ===

fn action() -> Option<&'static str> {
    Some(Operation::GetAccount.soap_action())
}

/// The SOAP 1.2 GetAccount fixture with real credentials, as text.
fn get12(t: &Target) -> String {
    String::from_utf8(request_fixture(Operation::GetAccount, Soap12, &t.p)).unwrap()
}

/// The fixture with `inner` inserted at the start of the operation element.
fn with_in_body(t: &Target, inner: &str) -> String {
    get12(t).replacen("<acc:GetAccount>", &format!("<acc:GetAccount>{inner}"), 1)
}

async fn post12(t: &Target, body: &[u8]) -> RawResponse {
    post_soap(t.addr, Soap12, action(), body).await
}

/// A SOAP 1.2 fault whose semantic status is `status` (the statuses this file names), sent with
/// the SOAP 1.2 HTTP binding's status (the default, `faults.soap12_status = "http-binding"`): 400
/// for a 4xx, which must be an `env:Sender` fault, 500 for the rest; content type, request id in
/// reason and detail, no key echoed.
fn fault(resp: &RawResponse, status: u16) -> Fault {
    let sender = (400..500).contains(&status);
    let sent = if sender { 400 } else { 500 };
    assert_eq!(resp.status, sent, "semantic {status}: {}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some("application/soap+xml; charset=utf-8"),
        "{}",
        resp.text()
    );
    let f = parse_fault_body(&resp.body);
    assert_eq!(f.version, Soap12);
    assert_eq!(f.code == FaultCode::Sender, sender, "{}", resp.text());
    let rid = resp.request_id();
    assert!(
        f.reason.ends_with(&format!(" (request {rid})")),
        "{}",
        f.reason
    );
    if f.detail.is_some() {
        assert_eq!(f.detail_request_id(), Some(rid));
    }
    assert!(!resp.text().contains("pgk_"), "a key is echoed");
    f
}

fn assert_invalid(resp: &RawResponse, status: u16, path: &str, rule: &str) -> Fault {
    let f = fault(resp, status);
    assert_eq!(f.code, FaultCode::Sender);
    match &f.detail {
        Some(FaultDetail::InvalidRequest(d)) => {
            assert_eq!((d.path.as_str(), d.rule.as_str()), (path, rule), "{f:?}");
        }
        other => panic!("expected InvalidRequestFault {path} {rule}, got {other:?}"),
    }
    f
}

fn assert_denied(resp: &RawResponse, reason: Reason) {
    let f = fault(resp, 403);
    match &f.detail {
        Some(FaultDetail::AccessDenied(d)) => assert_eq!(d.reason, reason, "{f:?}"),
        other => panic!("expected AccessDeniedFault, got {other:?}"),
    }
}

fn assert_untouched(t: &Target) {
    let got = t.up.requests();
    assert!(
        got.is_empty(),
        "the upstream received {} request(s): {:?}",
        got.len(),
        got.iter()
            .map(|r| r.header("soapaction"))
            .collect::<Vec<_>>()
    );
}

/// One accepted call, end to end: the canonical request upstream, the canonical response back.
async fn assert_happy(t: &Target) {
    t.up.take();
    let body = request_fixture(Operation::GetAccount, Soap12, &t.p);
    let resp = post12(t, &body).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.body,
        canonical_response(Operation::GetAccount, Soap12),
        "the canonical response"
    );
    let got = t.up.take();
    assert_eq!(got.len(), 1, "exactly one upstream request");
    assert_canonical_upstream(&got[0], &body, &t.p.id, &resp.request_id());
}

async fn expect_xml_limit(t: &Target, body: &[u8], rule: &str) {
    let resp = post12(t, body).await;
    let f = assert_invalid(&resp, 400, "/", rule);
    if rule.starts_with("limits.") {
        assert!(f.reason.contains(rule), "{}", f.reason);
    }
    assert_untouched(t);
}

// === entities ===

/// The stub upstream stands in for an attacker's server: an entity that were fetched would be
/// recorded there.
fn external_and_parameter_entities(t: &Target) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        let base = get12(t);
        let url = &t.up.url;
        let decl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
        for dtd in [
            format!("<!DOCTYPE env:Envelope [<!ENTITY ext SYSTEM \"{url}/ext\">]>"),
            format!("<!DOCTYPE env:Envelope [<!ENTITY % ext SYSTEM \"{url}/param\"> %ext;]>"),
            format!("<!DOCTYPE env:Envelope SYSTEM \"{url}/external-subset.dtd\">"),
            format!(
                "<!DOCTYPE env:Envelope [<!ENTITY % p \"<!ENTITY leak SYSTEM '{url}/leak'>\"> %p;]>"
            ),
        ] {
            let body = base.replacen(decl, &format!("{decl}{dtd}"), 1).replacen(
                "ACC-0000001001",
                "&ext;",
                1,
            );
            expect_xml_limit(t, body.as_bytes(), "doctype").await;
        }
    })
}

fn billion_laughs(t: &Target) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        let mut dtd = String::from("<!ENTITY lol0 \"lol\">");
        for i in 1..10 {
            let refs = format!("&lol{};", i - 1).repeat(10);
            dtd.push_str(&format!("<!ENTITY lol{i} \"{refs}\">"));
        }
        let body = get12(t)
            .replacen(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
                &format!("<?xml version=\"1.0\"?><!DOCTYPE env:Envelope [{dtd}]>"),
                1,
            )
            .replacen("ACC-0000001001", "&lol9;", 1);
        expect_xml_limit(t, body.as_bytes(), "doctype").await;
    })
}

fn quadratic_blowup(t: &Target) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        // One 50,000-character entity referenced 5,000 times (250 MB if expanded).
        let body = get12(t)
            .replacen(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
                &format!(
                    "<!DOCTYPE env:Envelope [<!ENTITY a \"{}\">]>",
                    "a".repeat(50_000)
                ),
                1,
            )
            .replacen("ACC-0000001001", &"&a;".repeat(5_000), 1);
        expect_xml_limit(t, body.as_bytes(), "doctype").await;
        // Without a DTD: half a million predefined references in one value.
        let body = get12(t).replacen("ACC-0000001001", &"&lt;".repeat(500_000), 1);
        expect_xml_limit(t, body.as_bytes(), "limits.xml.max_text_bytes").await;
    })
}

// === structure ===

fn ten_thousand_deep(t: &Target) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        let deep = format!("{}{}", "<acc:X>".repeat(10_000), "</acc:X>".repeat(10_000));
        expect_xml_limit(t, with_in_body(t, &deep).as_bytes(), "limits.xml.max_depth").await;
        // Unclosed: the limit, not the end of the document, is what refuses it.
        let open = "<acc:X>".repeat(10_000);
        expect_xml_limit(t, with_in_body(t, &open).as_bytes(), "limits.xml.max_depth").await;
    })
}

fn hundred_thousand_attributes(t: &Target) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        let attrs: String = (0..100_000).map(|i| format!(" a{i}=\"\"")).collect();
        let body = get12(t).replacen("<acc:GetAccount>", &format!("<acc:GetAccount{attrs}>"), 1);
        assert!(body.len() < BODY_MAX);
        expect_xml_limit(t, body.as_bytes(), "limits.xml.max_attributes").await;
    })
}

fn huge_names_and_text(t: &Target) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        let mib = 1024 * 1024;
        let name = "n".repeat(mib);
        for (inner, rule) in [
            (format!("<acc:{name}/>"), "limits.xml.max_name_bytes"),
            (
                format!("<acc:X {name}=\"v\"/>"),
                "limits.xml.max_name_bytes",
            ),
            (
                format!("<acc:X a=\"{}\"/>", "v".repeat(mib)),
                "limits.xml.max_attribute_value_bytes",
            ),
            ("t".repeat(3 * mib), "limits.xml.max_text_bytes"),
            (
                format!("<![CDATA[{}]]>", "c".repeat(3 * mib)),
                "limits.xml.max_text_bytes",
            ),
            (
                format!("<!--{}-->", "c".repeat(3 * mib)),
                "limits.xml.max_text_bytes",
            ),
        ] {
            expect_xml_limit(t, with_in_body(t, &inner).as_bytes(), rule).await;
        }
    })
}

/// 1 KiB namespace declarations, `n` of them, with prefixes `{tag}0…`.
fn ns_decls(tag: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!(" xmlns:{tag}{i}=\"urn:{tag}:{i}:{}\"", "u".repeat(1000)))
        .collect()
}

/// An unauthenticated GetAccount whose Envelope and Header carry `envelope` and `header`
/// declarations and whose Header holds `blocks`.
fn flood_body(envelope: &str, header: &str, blocks: &str) -> String {
    format!(
        "<env:Envelope xmlns:env=\"{SOAP12_NS}\" xmlns:acc=\"urn:partnergate:partner:accounts:v1\"{envelope}>\
         <env:Header{header}>{blocks}</env:Header><env:Body><acc:GetAccount>\
         <acc:AccountNumber>ACC-0000001001</acc:AccountNumber></acc:GetAccount></env:Body></env:Envelope>"
    )
}

/// Declarations on the Envelope and the Header (up to the per-element bound of 16) inherited by
/// 256 header blocks: every bound holds, so the scan reads it all before authentication refuses
/// it. Each block carries a copy of the 30 inherited bindings, about 30 KiB: ~8 MiB of state for
/// a 40 KiB body (bounded by `max_children` × 2 × `max_namespace_declarations` ×
/// `max_attribute_value_bytes`; the memory test shows what it costs).
fn namespace_flooding_inherited(t: &Target) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        let blocks: String = (0..256).map(|i| format!("<e{}:x/>", i % 14)).collect();
        let body = flood_body(&ns_decls("e", 14), &ns_decls("h", 16), &blocks);
        assert!(body.len() < 64 * 1024, "{}", body.len());
        let resp = post12(t, body.as_bytes()).await;
        assert_denied(&resp, Reason::AuthenticationFailed);
        assert_untouched(t);
    })
}

/// 16 declarations of 1 KiB namespaces on each of 256 header blocks (a 4 MiB body).
fn namespace_flooding_per_element(t: &Target) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        let blocks: String = (0..256)
            .map(|i| format!("<b{i}:x xmlns:b{i}=\"urn:b\"{}/>", ns_decls("c", 15)))
            .collect();
        let body = flood_body("", "", &blocks);
        assert!(body.len() < BODY_MAX, "{}", body.len());
        let resp = post12(t, body.as_bytes()).await;
        assert_denied(&resp, Reason::AuthenticationFailed);
        assert_untouched(t);
    })
}

// === encodings ===

fn invalid_utf8(t: &Target) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        for bad in [
            &b"\xff"[..],
            b"\xc3\x28",
            b"\xc0\xaf",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"\xe2\x82",
        ] {
            let text = get12(t);
            let at = text.find("ACC-0000001001").unwrap();
            let mut body = text.as_bytes()[..at].to_vec();
            body.extend_from_slice(bad);
            body.extend_from_slice(&text.as_bytes()[at..]);
            expect_xml_limit(t, &body, "encoding").await;
        }
    })
}

fn declared_encodings(t: &Target) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        for enc in [
            "ISO-8859-1",
            "UTF-16",
            "utf-16le",
            "US-ASCII",
            "UTF-7",
            "EBCDIC-US",
            "UTF8",
        ] {
            let body = get12(t).replacen("encoding=\"UTF-8\"", &format!("encoding=\"{enc}\""), 1);
            expect_xml_limit(t, body.as_bytes(), "envelope").await;
        }
        // Lower case is the same encoding.
        let body = get12(t).replacen("encoding=\"UTF-8\"", "encoding=\"utf-8\"", 1);
        let resp = post12(t, body.as_bytes()).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        t.up.take();
        // A UTF-8 byte order mark in front of a declaration of UTF-16.
        let mut body = b"\xEF\xBB\xBF".to_vec();
        body.extend_from_slice(
            get12(t)
                .replacen("encoding=\"UTF-8\"", "encoding=\"UTF-16\"", 1)
                .as_bytes(),
        );
        expect_xml_limit(t, &body, "envelope").await;
    })
}

fn utf16_bodies(t: &Target) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        let text = get12(t).replacen("encoding=\"UTF-8\"", "encoding=\"UTF-16\"", 1);
        let units: Vec<u16> = text.encode_utf16().collect();
        let mut le = vec![0xFF, 0xFE];
        le.extend(units.iter().flat_map(|u| u.to_le_bytes()));
        let mut be = vec![0xFE, 0xFF];
        be.extend(units.iter().flat_map(|u| u.to_be_bytes()));
        for body in [le, be] {
            expect_xml_limit(t, &body, "encoding").await;
        }
    })
}

// === what comes before the document ===

/// Found by the `envelope` fuzz target (`fuzz/regressions/envelope/two-byte-order-marks.xml`):
/// two UTF-8 byte order marks shifted every slice the envelope scan took by three bytes
/// (`/CreateAcco: the body element is not an operation of this contract`), three read as a
/// processing instruction. One is accepted; anything more is refused by the limits pass.
fn byte_order_marks(t: &Target) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        let op = Operation::CreateAccount;
        let create = request_fixture(op, Soap12, &t.p);
        // One: accepted, and the upstream gets the canonical request.
        let body = [BOM, &create].concat();
        let resp = post_soap(t.addr, Soap12, Some(op.soap_action()), &body).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.body, canonical_response(op, Soap12));
        let got = t.up.take();
        assert_eq!(got.len(), 1, "exactly one upstream request");
        assert_canonical_upstream(&got[0], &create, &t.p.id, &resp.request_id());
        // Two, three, and a mark after whitespace: refused before anything else reads them.
        let expected = "nothing but one UTF-8 byte order mark may come before the XML document \
                        (document-start)";
        for prefix in [BOM.repeat(2), BOM.repeat(3), [b"\n", BOM].concat()] {
            let body = [&prefix[..], &create].concat();
            let resp = post_soap(t.addr, Soap12, Some(op.soap_action()), &body).await;
            let f = assert_invalid(&resp, 400, "/", "document-start");
            assert_eq!(
                f.reason,
                format!(
                    "Invalid Request: {expected} (request {})",
                    resp.request_id()
                )
            );
            match &f.detail {
                Some(FaultDetail::InvalidRequest(d)) => assert_eq!(d.message.as_str(), expected),
                other => panic!("{other:?}"),
            }
            assert_untouched(t);
        }
        // Two in front of a declaration of another encoding: the same rule, first.
        let other = get12(t).replacen("encoding=\"UTF-8\"", "encoding=\"UTF-16\"", 1);
        let body = [&BOM.repeat(2), other.as_bytes()].concat();
        expect_xml_limit(t, &body, "document-start").await;
    })
}

// === characters a fault may not carry ===

/// `xmllint --noout` accepts `body` (skipped, with a note, when xmllint is not installed).
fn assert_xmllint_accepts(body: &[u8]) {
    use std::io::Write;
    let child = Command::new("xmllint")
        .args(["--noout", "--nonet", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("note: xmllint is not installed; the fault was checked with quick-xml only");
        return;
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body)
        .expect("write to xmllint");
    let out = child.wait_with_output().expect("xmllint");
    assert!(
        out.status.success(),
        "xmllint refuses the fault: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(body)
    );
}

/// Found by the `pipeline` fuzz target (`fuzz/regressions/pipeline/u-ffff-in-an-end-tag`): an
/// end tag holding U+FFFF was quoted raw in the fault's faultstring and Message, and no XML
/// parser reads that fault (xmllint: "Char 0xFFFF out of allowed range").
fn forbidden_characters_in_quoted_input(t: &Target) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        let expected = "not well-formed XML: ill-formed document: expected `</a>`, but \
                        `</a\u{FFFD}b>` was found (malformed)";
        for version in [SoapVersion::Soap11, Soap12] {
            let ns = match version {
                SoapVersion::Soap11 => SOAP11_NS,
                Soap12 => SOAP12_NS,
            };
            // Anonymous: no header at all.
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><env:Envelope xmlns:env=\"{ns}\">\
                 <env:Body><a>x</a\u{FFFF}b></env:Body></env:Envelope>"
            );
            let resp = post_soap(t.addr, version, action(), body.as_bytes()).await;
            let f = match version {
                SoapVersion::Soap11 => {
                    assert_eq!(resp.status, 500, "{}", resp.text());
                    parse_fault_body(&resp.body)
                }
                Soap12 => assert_invalid(&resp, 400, "/", "malformed"),
            };
            assert_eq!(
                f.reason,
                format!(
                    "Invalid Request: {expected} (request {})",
                    resp.request_id()
                )
            );
            match &f.detail {
                Some(FaultDetail::InvalidRequest(d)) => {
                    assert_eq!(
                        (d.path.as_str(), d.rule.as_str(), d.message.as_str()),
                        ("/", "malformed", expected)
                    );
                }
                other => panic!("{other:?}"),
            }
            let text = std::str::from_utf8(&resp.body).expect("UTF-8");
            assert!(
                !text.contains(['\u{FFFF}', '\u{FFFE}']),
                "a forbidden character in the fault"
            );
            assert_xmllint_accepts(&resp.body);
            assert_untouched(t);
        }
    })
}

// === markup in values ===

fn comments_cdata_and_processing_instructions(
    t: &Target,
) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        let clean = request_fixture(Operation::GetAccount, Soap12, &t.p);
        // A comment and a CDATA section inside a value are read as the value; neither reaches
        // the upstream, which gets the canonical encoding of the clean request.
        for value in [
            "ACC-00000<!-- hidden -->01001",
            "<![CDATA[ACC-0000001001]]>",
            "ACC-<![CDATA[00000]]>01001<!---->",
        ] {
            let body = get12(t).replacen("ACC-0000001001", value, 1);
            let resp = post12(t, body.as_bytes()).await;
            assert_eq!(resp.status, 200, "{value}: {}", resp.text());
            let got = t.up.take();
            assert_eq!(got.len(), 1);
            assert_canonical_upstream(&got[0], &clean, &t.p.id, &resp.request_id());
            assert!(!String::from_utf8_lossy(&got[0].body).contains("hidden"));
        }
        let decl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
        let pi = get12(t).replacen(
            decl,
            &format!("{decl}<?xml-stylesheet href=\"{}/x.xsl\"?>", t.up.url),
            1,
        );
        expect_xml_limit(t, pi.as_bytes(), "processing-instruction").await;
        let late_decl = format!("<!-- first -->{}", get12(t));
        expect_xml_limit(t, late_decl.as_bytes(), "processing-instruction").await;
        let double_dash =
            get12(t).replacen("<acc:GetAccount>", "<acc:GetAccount><!-- a -- b -->", 1);
        expect_xml_limit(t, double_dash.as_bytes(), "malformed").await;
    })
}

// === HTTP framing ===

/// What came back on a connection after a request: a response and whether the connection was
/// then closed, or a close without a response.
enum Answer {
    Response(RawResponse, bool),
    Closed,
}

async fn send_raw(addr: SocketAddr, bytes: &[u8]) -> Answer {
    let mut c = Conn::connect(addr).await;
    if c.send(bytes).await.is_err() {
        return Answer::Closed;
    }
    match tokio::time::timeout(Duration::from_secs(10), c.read_response()).await {
        Ok(Ok(resp)) => {
            // Closed means: nothing more is answered on this connection (a desynchronised
            // second request would be answered here), and the server ends it.
            let rest = tokio::time::timeout(Duration::from_secs(10), c.read_to_close()).await;
            let closed = matches!(&rest, Ok(rest) if rest.is_empty());
            Answer::Response(resp, closed)
        }
        Ok(Err(_)) => Answer::Closed,
        Err(_) => panic!("no answer and no close within 10 s"),
    }
}

fn head(extra: &str) -> String {
    let (ct, _) = soap_headers(Soap12, action());
    format!("POST /soap/partner/v1 HTTP/1.1\r\nHost: gw\r\nContent-Type: {ct}\r\n{extra}\r\n")
}

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in body.chunks(500) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// How a smuggling shape must be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Allowed {
    /// Exactly this status (a complete HTTP response), then the connection closed with nothing
    /// more on it, and the upstream untouched.
    Refused(u16),
    /// Read as the one length both headers agree on (RFC 9110 §8.6 allows it; hyper merges
    /// equal duplicates, so the service cannot see them): no reader can frame it differently,
    /// and the GetAccount is answered 200 and reaches the upstream canonically, once.
    SameFraming,
}
/// Each ambiguous shape frames a valid GetAccount one way and something else another way, and
/// carries a complete CreateAccount request behind it for a desynchronised reader to find.
/// Whatever the gateway does, the upstream must never see that CreateAccount, and may see only
/// the canonical encoding of the GetAccount; a refusal must close the connection (a reader that
/// kept it open would read the CreateAccount next).
fn smuggling_shapes(t: &Target) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        let get = request_fixture(Operation::GetAccount, Soap12, &t.p);
        let create = request_fixture(Operation::CreateAccount, Soap12, &t.p);
        let smuggled = {
            let (ct, _) = soap_headers(Soap12, Some(Operation::CreateAccount.soap_action()));
            post_bytes("gw", &ct, &[], &create)
        };
        let cat = |parts: &[&[u8]]| parts.concat();
        let n = get.len();
        let m = n + smuggled.len();
        use Allowed::*;
        let shapes: Vec<(&str, Allowed, Vec<u8>)> = vec![
            (
                "Content-Length and Transfer-Encoding: chunked",
                Refused(400),
                cat(&[
                    head("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n").as_bytes(),
                    &chunked(&get),
                    &smuggled,
                ]),
            ),
            (
                "Transfer-Encoding: chunked, then Content-Length",
                Refused(400),
                cat(&[
                    head(&format!("Transfer-Encoding: chunked\r\nContent-Length: {m}\r\n"))
                        .as_bytes(),
                    &chunked(&get),
                    &smuggled,
                ]),
            ),
            (
                "conflicting Content-Length headers",
                Refused(400),
                cat(&[
                    head(&format!("Content-Length: {n}\r\nContent-Length: {m}\r\n")).as_bytes(),
                    &get,
                    &smuggled,
                ]),
            ),
            // Equal values frame the same for every reader: nothing is smuggled behind it
            // (a request there would be an ordinary pipelined one).
            (
                "duplicate equal Content-Length headers",
                SameFraming,
                cat(&[
                    head(&format!(
                        "Content-Length: {n}\r\nContent-Length: {n}\r\nConnection: close\r\n"
                    ))
                    .as_bytes(),
                    &get,
                ]),
            ),
            (
                "conflicting Content-Length list",
                Refused(400),
                cat(&[
                    head(&format!("Content-Length: {n}, {m}\r\n")).as_bytes(),
                    &get,
                    &smuggled,
                ]),
            ),
            (
                "equal Content-Length list",
                Refused(400),
                cat(&[
                    head(&format!("Content-Length: {n}, {n}\r\n")).as_bytes(),
                    &get,
                    &smuggled,
                ]),
            ),
            (
                "Transfer-Encoding: chunked, identity",
                Refused(400),
                cat(&[
                    head(&format!(
                        "Transfer-Encoding: chunked, identity\r\nContent-Length: {n}\r\n"
                    ))
                    .as_bytes(),
                    &get,
                    &smuggled,
                ]),
            ),
            (
                "Transfer-Encoding: identity",
                Refused(400),
                cat(&[
                    head(&format!("Transfer-Encoding: identity\r\nContent-Length: {n}\r\n"))
                        .as_bytes(),
                    &get,
                    &smuggled,
                ]),
            ),
            // Framed the same by every reader (the outer chunked coding ends the message), so a
            // request behind it would be a plain pipelined request: none is sent. The content,
            // chunked once more, is not XML: the gateway's own 400.
            (
                "Transfer-Encoding: chunked twice",
                Refused(400),
                cat(&[
                    head("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n")
                        .as_bytes(),
                    &chunked(&chunked(&get)),
                ]),
            ),
            (
                "Transfer-Encoding: xchunked",
                Refused(400),
                cat(&[
                    head(&format!("Transfer-Encoding: xchunked\r\nContent-Length: {n}\r\n"))
                        .as_bytes(),
                    &get,
                    &smuggled,
                ]),
            ),
            (
                "obsolete line folding hiding Transfer-Encoding",
                Refused(400),
                cat(&[
                    head(&format!(
                        "Content-Length: {n}\r\nX-Folded: a\r\n Transfer-Encoding: chunked\r\n"
                    ))
                    .as_bytes(),
                    &chunked(&get),
                    &smuggled,
                ]),
            ),
            (
                "obsolete line folding of Content-Length",
                Refused(400),
                cat(&[
                    head(&format!("Content-Length: {n}\r\n {}\r\n", smuggled.len())).as_bytes(),
                    &get,
                    &smuggled,
                ]),
            ),
            (
                "whitespace before the colon",
                Refused(400),
                cat(&[
                    head(&format!("Content-Length: {n}\r\nTransfer-Encoding : chunked\r\n"))
                        .as_bytes(),
                    &chunked(&get),
                    &smuggled,
                ]),
            ),
            (
                "chunk size overflow",
                Refused(400),
                cat(&[
                    head("Transfer-Encoding: chunked\r\n").as_bytes(),
                    b"10000000000000000000001\r\n",
                    &get,
                    b"\r\n0\r\n\r\n",
                    &smuggled,
                ]),
            ),
            // RFC 9112 §6.1: a coding the server does not understand is a 501; the body is
            // never read, so the request behind it is never seen.
            (
                "Transfer-Encoding: gzip, chunked",
                Refused(501),
                cat(&[
                    head("Transfer-Encoding: gzip, chunked\r\n").as_bytes(),
                    &chunked(&get),
                    &smuggled,
                ]),
            ),
            (
                "Transfer-Encoding: gzip, then chunked",
                Refused(501),
                cat(&[
                    head("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n").as_bytes(),
                    &chunked(&get),
                    &smuggled,
                ]),
            ),
            (
                "HTTP/1.0 with Transfer-Encoding",
                Refused(400),
                cat(&[
                    head("Transfer-Encoding: chunked\r\n")
                        .replacen("HTTP/1.1", "HTTP/1.0", 1)
                        .as_bytes(),
                    &chunked(&get),
                    &smuggled,
                ]),
            ),
        ];
        let mut failures = Vec::new();
        for (name, allowed, bytes) in shapes {
            let answer = send_raw(t.addr, &bytes).await;
            let got = t.up.take();
            let what = match &answer {
                Answer::Response(resp, _) => format!("{} ", resp.status),
                Answer::Closed => "closed ".into(),
            };
            println!(
                "smuggling: {name}: {what}, upstream saw {} request(s)",
                got.len()
            );
            let ok = match (&answer, allowed) {
                (Answer::Response(resp, closed), Refused(status)) => {
                    resp.status == status && *closed && got.is_empty()
                }
                (Answer::Response(resp, _), SameFraming) => {
                    resp.status == 200 && got.len() == 1 && {
                        assert_canonical_upstream(&got[0], &get, &t.p.id, &resp.request_id());
                        true
                    }
                }
                (Answer::Closed, _) => false,
            };
            if !ok {
                failures.push(format!(
                    "{name}: {what}, upstream {:?}",
                    got.iter()
                        .map(|r| r.header("soapaction"))
                        .collect::<Vec<_>>()
                ));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    })
}

/// Writes `bytes` one at a time every `every` on the write half until the peer stops reading;
/// returns when the connection closed (or `limit` passed) and what arrived meanwhile.
async fn trickle(
    addr: SocketAddr,
    prefix: &[u8],
    bytes: Vec<u8>,
    every: Duration,
    limit: Duration,
) -> (Duration, Vec<u8>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(prefix).await.unwrap();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        for b in bytes.iter().cycle() {
            tokio::time::sleep(every).await;
            if wr.write_all(&[*b]).await.is_err() {
                return;
            }
        }
    });
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    writer.abort();
    assert!(
        read.is_ok(),
        "the connection was still open after {limit:?}"
    );
    (started.elapsed(), got)
}

fn slow_headers(t: &Target) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        // One byte every 100 ms of an endless header: each read makes progress, only a deadline
        // for the whole head ends it.
        let (took, got) = trickle(
            t.addr,
            b"POST /soap/partner/v1 HTTP/1.1\r\nHost: gw\r\n",
            b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".to_vec(),
            Duration::from_millis(100),
            READ_TIMEOUT + SLACK + Duration::from_secs(5),
        )
        .await;
        assert!(took < READ_TIMEOUT + SLACK, "closed only after {took:?}");
        let text = String::from_utf8_lossy(&got);
        assert!(got.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
        assert_untouched(t);
    })
}

fn slow_body(t: &Target) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        let body = request_fixture(Operation::GetAccount, Soap12, &t.p);
        let head = head(&format!("Content-Length: {}\r\n", body.len()));
        let (took, got) = trickle(
            t.addr,
            head.as_bytes(),
            body,
            Duration::from_millis(50),
            READ_TIMEOUT + SLACK + Duration::from_secs(5),
        )
        .await;
        assert!(took < READ_TIMEOUT + SLACK, "answered only after {took:?}");
        assert_body_timeout(&got);
        assert_untouched(t);
    })
}

fn endless_chunked_body(t: &Target) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        let head = head("Transfer-Encoding: chunked\r\n");
        // Valid one-byte chunks, forever: never the terminating zero-size chunk.
        let (took, got) = trickle(
            t.addr,
            head.as_bytes(),
            b"1\r\n \r\n".to_vec(),
            Duration::from_millis(10),
            READ_TIMEOUT + SLACK + Duration::from_secs(5),
        )
        .await;
        assert!(took < READ_TIMEOUT + SLACK, "answered only after {took:?}");
        assert_body_timeout(&got);
        assert_untouched(t);
    })
}

/// A `limits.body_read_timeout_ms` fault (semantic 408; sent as 400, an `env:Sender` fault of
/// SOAP 1.2) with `Connection: close`, in raw bytes.
fn assert_body_timeout(got: &[u8]) {
    let text = String::from_utf8_lossy(got);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(head.starts_with("HTTP/1.1 400"), "{text}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let f = parse_fault_body(body.as_bytes());
    match &f.detail {
        Some(FaultDetail::InvalidRequest(d)) => {
            assert_eq!(d.rule.as_str(), "limits.body_read_timeout_ms");
        }
        other => panic!("{other:?}"),
    }
}

// === content encoding ===

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A valid gzip stream of `data` (stored deflate blocks: no compression needed to be gzip).
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let chunks: Vec<&[u8]> = data.chunks(65_535).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = u16::try_from(chunk.len()).unwrap();
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
    out
}

/// The gateway never decompresses (no zip bomb can expand past the body limit): a body with a
/// content coding other than identity is refused with 415 and the rule `content-encoding`,
/// whether it really is gzip or only says so.
fn gzip_content_encoding(t: &Target) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        t.up.take();
        let plain = request_fixture(Operation::GetAccount, Soap12, &t.p);
        for (coding, body) in [
            ("gzip", gzip(&plain)),
            ("gzip", plain.clone()),
            ("identity, deflate", plain.clone()),
        ] {
            let resp = post_soap_with(
                t.addr,
                Soap12,
                action(),
                &[("Content-Encoding", coding)],
                &body,
            )
            .await;
            let f = assert_invalid(&resp, 415, "/", "content-encoding");
            assert!(f.reason.contains("send the envelope uncompressed"), "{f:?}");
        }
        assert_untouched(t);
    })
}

// === the cases, in process ===

const CASES: &[(&str, Case)] = &[
    (
        "external_and_parameter_entities",
        external_and_parameter_entities,
    ),
    ("billion_laughs", billion_laughs),
    ("quadratic_blowup", quadratic_blowup),
    ("ten_thousand_deep", ten_thousand_deep),
    ("hundred_thousand_attributes", hundred_thousand_attributes),
    ("huge_names_and_text", huge_names_and_text),
    ("namespace_flooding_inherited", namespace_flooding_inherited),
    (
        "namespace_flooding_per_element",
        namespace_flooding_per_element,
    ),
    ("invalid_utf8", invalid_utf8),
    ("declared_encodings", declared_encodings),
    ("utf16_bodies", utf16_bodies),
    ("byte_order_marks", byte_order_marks),
    (
        "forbidden_characters_in_quoted_input",
        forbidden_characters_in_quoted_input,
    ),
    (
        "comments_cdata_and_processing_instructions",
        comments_cdata_and_processing_instructions,
    ),
    ("smuggling_shapes", smuggling_shapes),
    ("slow_headers", slow_headers),
    ("slow_body", slow_body),
    ("endless_chunked_body", endless_chunked_body),
    ("gzip_content_encoding", gzip_content_encoding),
];

#[tokio::test]
async fn entities_are_refused_and_never_fetched() {
    run(external_and_parameter_entities).await;
}

#[tokio::test]
async fn billion_laughs_is_refused() {
    run(billion_laughs).await;
}

#[tokio::test]
async fn quadratic_blowup_is_refused() {
    run(quadratic_blowup).await;
}

#[tokio::test]
async fn ten_thousand_deep_nesting_is_refused() {
    run(ten_thousand_deep).await;
}

#[tokio::test]
async fn a_hundred_thousand_attributes_are_refused() {
    run(hundred_thousand_attributes).await;
}

#[tokio::test]
async fn huge_names_text_and_values_are_refused() {
    run(huge_names_and_text).await;
}

#[tokio::test]
async fn inherited_namespace_flooding_is_refused_unauthenticated() {
    run(namespace_flooding_inherited).await;
}

#[tokio::test]
async fn per_element_namespace_flooding_is_refused_unauthenticated() {
    run(namespace_flooding_per_element).await;
}

#[tokio::test]
async fn invalid_utf8_is_refused() {
    run(invalid_utf8).await;
}

#[tokio::test]
async fn declared_encodings_other_than_utf8_are_refused() {
    run(declared_encodings).await;
}

#[tokio::test]
async fn utf16_bodies_are_refused() {
    run(utf16_bodies).await;
}

#[tokio::test]
async fn one_byte_order_mark_is_accepted_and_more_are_refused() {
    run(byte_order_marks).await;
}

#[tokio::test]
async fn a_fault_quoting_forbidden_characters_is_well_formed_xml() {
    run(forbidden_characters_in_quoted_input).await;
}

#[tokio::test]
async fn markup_in_values_is_not_relayed_and_pis_are_refused() {
    run(comments_cdata_and_processing_instructions).await;
}

#[tokio::test]
async fn request_smuggling_shapes_never_desynchronise() {
    run(smuggling_shapes).await;
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    run(slow_headers).await;
}

#[tokio::test]
async fn a_slow_body_is_cut_off() {
    run(slow_body).await;
}

#[tokio::test]
async fn an_endless_chunked_body_is_cut_off() {
    run(endless_chunked_body).await;
}

#[tokio::test]
async fn compressed_bodies_are_refused_not_decompressed() {
    run(gzip_content_encoding).await;
}

// === the real binary and its peak memory ===

async fn real_binary() -> (Target, Binary) {
    let up = StubUpstream::start(Reply::Fixture).await;
    let db = temp_path("hostile", "db");
    let store = Store::open(&db.display().to_string()).expect("store");
    let p = onboard_partner(&store, &["*"], &["127.0.0.0/8"], None);
    drop(store);
    let ms = |d: Duration| d.as_millis().to_string();
    let env = [
        ("PARTNERGATE_LIMITS_BODY_MAX_BYTES", BODY_MAX.to_string()),
        (
            "PARTNERGATE_LIMITS_HEADER_READ_TIMEOUT_MS",
            ms(READ_TIMEOUT),
        ),
        ("PARTNERGATE_LIMITS_BODY_READ_TIMEOUT_MS", ms(READ_TIMEOUT)),
        (
            "PARTNERGATE_LIMITS_KEEPALIVE_IDLE_TIMEOUT_MS",
            "5000".to_string(),
        ),
        (
            "PARTNERGATE_THROTTLE_DEFAULT_RATE_PER_SECOND",
            "10000".to_string(),
        ),
        ("PARTNERGATE_THROTTLE_DEFAULT_BURST", "10000".to_string()),
    ];
    let binary = Binary::serve(db, &up.url, &env).await;
    (
        Target {
            addr: binary.addr,
            up,
            p,
            _gw: None,
        },
        binary,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_memory_of_the_real_binary_stays_bounded() {
    let (t, binary) = real_binary().await;
    // Warm up: the first calls allocate the pools, caches and buffers every process has.
    for _ in 0..3 {
        assert_happy(&t).await;
    }
    let (hwm_before, rss_before) = binary.memory();
    let started = Instant::now();
    for (name, case) in CASES {
        let case_started = Instant::now();
        case(&t).await;
        assert_happy(&t).await;
        let (hwm, rss) = binary.memory();
        println!(
            "{name:<45} {:>6} ms  VmHWM {:>6} KiB  VmRSS {:>6} KiB",
            case_started.elapsed().as_millis(),
            hwm / 1024,
            rss / 1024
        );
    }
    let (hwm_after, rss_after) = binary.memory();
    let growth = hwm_after.saturating_sub(hwm_before);
    println!(
        "real binary over {} cases in {:.1} s: VmHWM {} KiB -> {} KiB (+{} KiB, bound {} KiB); \
         VmRSS {} KiB -> {} KiB",
        CASES.len(),
        started.elapsed().as_secs_f64(),
        hwm_before / 1024,
        hwm_after / 1024,
        growth / 1024,
        MEMORY_GROWTH_BOUND / 1024,
        rss_before / 1024,
        rss_after / 1024,
    );
    assert!(
        growth < MEMORY_GROWTH_BOUND,
        "peak memory grew by {} KiB (bound {} KiB)",
        growth / 1024,
        MEMORY_GROWTH_BOUND / 1024
    );
}
