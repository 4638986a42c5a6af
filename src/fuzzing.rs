//! Fuzz logic, compiled with the `fuzzing` feature only. One function per cargo-fuzz target in
//! `fuzz/` (the targets in `fuzz/fuzz_targets/` are three-line wrappers around these), each
//! taking arbitrary bytes and checking the invariants of the untrusted-input stages:
//!
//! - [`envelope()`]: XML limit pass, envelope scan, credential extraction (`authenticate`,
//!   `authenticate_callback`) against [`snapshot`], SOAP fault parse. No panic; every slice the
//!   scan returns lies inside the input and is a whole element; a successful authentication
//!   means an active partner's valid key is literally in the input.
//! - [`decode()`]: strict typed decode of every request, response, fault detail and header type
//!   of both contracts. No panic.
//! - [`roundtrip()`]: whatever decodes re-encodes, the encoding decodes to an equal value and
//!   re-encodes to identical bytes.
//! - [`pipeline()`]: the whole request path ([`pipeline::handle`]) with a recording stub
//!   [`Upstream`]. No panic; every answer is a typed response that re-decodes or a fault that
//!   `fault.rs` renders into an envelope `envelope::scan` + `parse_fault` + the typed fault
//!   decoder accept; nothing reaches the upstream unless the credentials, the calling address and
//!   the permission are valid (checked here independently of the gateway's own code), and what
//!   reaches it decodes strictly.
//!
//! The logic lives in the crate (style guide: "fuzz logic lives in the crate, with thin
//! targets") so it compiles, lints and runs on stable: `cargo test --features fuzzing --lib
//! fuzzing` replays the seed corpora (`fuzz/seeds/`) and every input in `fuzz/regressions/`.
//!
//! Why a cargo feature and not `cfg(fuzzing)`: cargo-fuzz does pass `--cfg fuzzing` to every
//! crate it builds, this one included, but rustc's `unexpected_cfgs` lint then warns in every
//! normal build unless the cfg is declared (a `[lints]` or build.rs change), and code behind
//! `cfg(fuzzing)` is never compiled, linted or tested by the normal toolchain. The feature is
//! enabled by `fuzz/Cargo.toml` and by CI's extra clippy and test runs.

#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a panic is how a fuzz invariant reports a violation"
)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use xsd_parser_types::quick_xml::{DeserializeSync, SerializeSync};

use crate::authenticate;
use crate::config::XmlLimits;
use crate::decode::{self, DecodeLimits};
use crate::encode::{self, EncodeError, XmlWriter};
use crate::envelope::{self, BodyElement, Envelope, FaultCode, SoapVersion};
use crate::fault::{self, Soap11Status, Soap12Status, StatusModes};
use crate::forward::{self, BoxFuture, CallContext, ForwardError, Upstream, UpstreamReply};
use crate::generated::types::cmn;
use crate::generated::{callback, partner};
use crate::limit;
use crate::pipeline::{self, Gateway, Incoming, Outcome, Rejection, Settings};
use crate::secret::{self, KeyKind};
use crate::store::{KeyEntry, PartnerEntry, PartnerStatus, Rate, Snapshot, SnapshotCell};
use crate::throttle::Throttle;

// === the fixed partner snapshot ===

/// "Now" for key expiry in the fuzz targets (unix seconds), so that runs are reproducible.
pub const NOW: i64 = 1_700_000_000;

/// The gateway request id the pipeline target uses.
pub const REQUEST_ID: &str = "gw-fuzz-00000000000000000000000000000001";

/// One partner of the fuzz snapshot, as plain data (the invariants are checked against this, not
/// against the snapshot the code under test reads).
#[derive(Clone, Copy, Debug)]
pub struct FuzzPartner {
    /// Partner id.
    pub id: &'static str,
    /// Its API key (the golden fixtures' key for `PARTNER-0042`).
    pub key: &'static str,
    /// Its callback key.
    pub callback_key: &'static str,
    /// Only `Active` partners may call.
    pub status: PartnerStatus,
    /// Allowed source networks.
    pub allow: &'static [&'static str],
    /// Grants.
    pub grants: &'static [&'static str],
    /// Key expiry (unix seconds).
    pub expires_at: Option<i64>,
}

impl FuzzPartner {
    /// Whether this partner's API key is usable at [`NOW`] and the partner may call.
    pub fn may_call(&self) -> bool {
        self.status == PartnerStatus::Active && self.expires_at.is_none_or(|at| at > NOW)
    }
}

/// The partners of [`snapshot`]: the fixtures' partner with every grant, a partner limited to
/// some operations and one network, a suspended partner and one whose keys have expired.
pub const PARTNERS: [FuzzPartner; 4] = [
    FuzzPartner {
        id: "PARTNER-0042",
        key: "pgk_test_0123456789abcdef0123456789abcdef",
        callback_key: "pgc_test_0123456789abcdef0123456789abcdef",
        status: PartnerStatus::Active,
        allow: &["127.0.0.0/8"],
        grants: &["*"],
        expires_at: None,
    },
    FuzzPartner {
        id: "PARTNER-0043",
        key: "pgk_test_43434343434343434343434343434343",
        callback_key: "pgc_test_43434343434343434343434343434343",
        status: PartnerStatus::Active,
        allow: &["192.0.2.0/24"],
        grants: &["accounts.*", "services.get"],
        expires_at: None,
    },
    FuzzPartner {
        id: "PARTNER-0044",
        key: "pgk_test_44444444444444444444444444444444",
        callback_key: "pgc_test_44444444444444444444444444444444",
        status: PartnerStatus::Suspended,
        allow: &["0.0.0.0/0", "::/0"],
        grants: &["*"],
        expires_at: None,
    },
    FuzzPartner {
        id: "PARTNER-0045",
        key: "pgk_test_45454545454545454545454545454545",
        callback_key: "pgc_test_45454545454545454545454545454545",
        status: PartnerStatus::Active,
        allow: &["0.0.0.0/0", "::/0"],
        grants: &["*"],
        expires_at: Some(NOW - 1),
    },
];

/// The source addresses the pipeline target chooses from (first input byte, low 3 bits).
pub const PEERS: [IpAddr; 6] = [
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)),
    // A trusted proxy: the client address comes from X-Forwarded-For.
    IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1)),
    IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x7f00, 1)),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// The trusted proxies of the pipeline target's gateway.
pub const TRUSTED_PROXIES: &str = "10.9.0.0/16";

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter()
        .map(|n| n.parse().expect("a network of the fuzz snapshot"))
        .collect()
}

/// The partner snapshot every target authenticates against (built once).
pub fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let mut partners = std::collections::HashMap::new();
        for (i, p) in (0i64..).zip(PARTNERS.iter()) {
            let key = |id: i64, kind: KeyKind, text: &str| KeyEntry {
                id,
                kind,
                prefix: secret::display_prefix(text),
                hash: secret::hash(text),
                expires_at: p.expires_at,
            };
            let entry = PartnerEntry {
                partner_id: p.id.to_string(),
                name: format!("Fuzz partner {i}"),
                status: p.status,
                group: None,
                country: Some("DE".into()),
                keys: vec![
                    key(2 * i + 1, KeyKind::Partner, p.key),
                    key(2 * i + 2, KeyKind::Callback, p.callback_key),
                ],
                allow: nets(p.allow),
                grants: p.grants.iter().map(|g| (*g).to_string()).collect(),
                rate: None,
                callback_rate: None,
                callback_url: None,
                callback_ca_pem: None,
                feature_defaults: None,
            };
            partners.insert(p.id.to_string(), Arc::new(entry));
        }
        Snapshot {
            revision: 1,
            partners,
            groups: std::collections::HashMap::new(),
            loaded_at: UNIX_EPOCH,
        }
    })
}

fn fuzz_partner(id: &str) -> Option<&'static FuzzPartner> {
    PARTNERS.iter().find(|p| p.id == id)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether `inner` is a sub-slice of `outer` (same memory).
fn within(outer: &[u8], inner: &[u8]) -> bool {
    let o = outer.as_ptr_range();
    let i = inner.as_ptr_range();
    o.start <= i.start && i.end <= o.end
}

/// A scanned element is a whole element of the input: inside it, from `<` to `>`, and its
/// local name is inside its bytes.
fn check_element(input: &[u8], el: &BodyElement<'_>, what: &str) {
    assert!(
        within(input, el.bytes()),
        "{what}: the element slice is not inside the input"
    );
    assert!(
        el.bytes().first() == Some(&b'<') && el.bytes().last() == Some(&b'>'),
        "{what}: the element slice is not a whole element: {:?}",
        String::from_utf8_lossy(el.bytes())
    );
    assert!(
        !el.local_name.is_empty() && within(el.bytes(), el.local_name),
        "{what}: the local name is not inside the element"
    );
    // The local name is the element's own: its tag name, after the prefix.
    let tag = &el.bytes()[1..];
    let qname_len = tag
        .iter()
        .position(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>'))
        .unwrap_or(tag.len());
    let qname = &tag[..qname_len];
    let local = qname
        .iter()
        .position(|b| *b == b':')
        .map_or(qname, |i| &qname[i + 1..]);
    assert_eq!(
        String::from_utf8_lossy(local),
        String::from_utf8_lossy(el.local_name),
        "{what}: the local name is not the element's"
    );
}

// === target: envelope ===

/// Target `envelope`: the XML limit pass, the envelope scan, credential extraction and the SOAP
/// fault parser on arbitrary bytes.
pub fn envelope(data: &[u8]) {
    if let Ok(outline) = limit::check_xml(data, &XmlLimits::default()) {
        // Stepping over what the limit pass has read gives the full scan's result (asserted
        // inside with the feature `fuzzing`).
        let _ = envelope::scan_outlined(data, &outline);
    }
    // As an upstream's answer (any bytes can come back): the one-pass decode equals the full
    // scan and decode (asserted inside with the feature `fuzzing`).
    let op = partner::Operation::ALL[data.len() % partner::Operation::ALL.len()];
    let _ = forward::decode_upstream_reply(op, 200, data);
    // The scan runs on its own too: the forward path scans upstream answers without the limit
    // pass, so it must hold on any input.
    let Ok(env) = envelope::scan(data) else {
        return;
    };
    check_element(data, &env.body, "body");
    for h in &env.headers {
        check_element(data, &h.element, "header block");
    }
    let snapshot = snapshot();
    if let Ok(auth) = authenticate::authenticate(&env, snapshot, NOW) {
        let p = fuzz_partner(&auth.partner.partner_id).expect("a partner of the snapshot");
        assert!(p.may_call(), "{} authenticated but may not call", p.id);
        assert!(
            contains(data, p.key.as_bytes()),
            "{} authenticated without its key in the input",
            p.id
        );
    }
    if let Ok(auth) = authenticate::authenticate_callback(&env, snapshot, NOW) {
        let p = fuzz_partner(&auth.partner.partner_id).expect("a partner of the snapshot");
        assert!(
            contains(data, p.callback_key.as_bytes()),
            "{} authenticated (callback) without its callback key in the input",
            p.id
        );
    }
    if let Ok(f) = envelope::parse_fault(&env) {
        if let Some(detail) = &f.detail {
            check_element(data, detail, "fault detail");
            let _ = decode::partner_fault(detail, DecodeLimits::default());
            let _ = decode::callback_fault(detail, DecodeLimits::default());
        }
    }
}

// === targets: decode and roundtrip ===

/// How the decode and roundtrip targets read their input: the first byte chooses the operation
/// (`Operation::ALL[b % 18]`) and, in `b / 18`, the wrapping; the rest goes into a SOAP envelope.
#[derive(Clone, Copy, Debug)]
struct Selector {
    op: partner::Operation,
    callback_op: callback::Operation,
    version: SoapVersion,
    /// The envelope declares the contracts' usual prefixes (inherited by the element).
    inherited: bool,
    /// The rest is a header block (else the body element).
    in_header: bool,
}

impl Selector {
    fn from_byte(b: u8) -> Selector {
        let n = partner::Operation::ALL.len();
        let flags = usize::from(b) / n;
        Selector {
            op: partner::Operation::ALL[usize::from(b) % n],
            callback_op: callback::Operation::ALL[usize::from(b) % callback::Operation::ALL.len()],
            version: if flags & 1 == 0 {
                SoapVersion::Soap11
            } else {
                SoapVersion::Soap12
            },
            inherited: flags & 2 != 0,
            in_header: flags & 4 != 0,
        }
    }

    /// The first input byte that selects `op` with these flags.
    #[cfg(test)]
    fn byte(op_index: usize, version: SoapVersion, inherited: bool, in_header: bool) -> u8 {
        let flags = usize::from(version == SoapVersion::Soap12)
            | usize::from(inherited) << 1
            | usize::from(in_header) << 2;
        u8::try_from(flags * partner::Operation::ALL.len() + op_index).expect("fits a byte")
    }
}

/// The prefixes the contracts' fixtures use, for [`Selector::inherited`].
const PREFIXES: [(&str, &str); 7] = [
    ("cmn", "urn:partnergate:partner:common:v1"),
    ("acc", "urn:partnergate:partner:accounts:v1"),
    ("svc", "urn:partnergate:partner:services:v1"),
    ("dev", "urn:partnergate:partner:devices:v1"),
    ("ftr", "urn:partnergate:partner:features:v1"),
    ("cb", "urn:partnergate:callback:v1"),
    (
        "wsse",
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    ),
];

fn wrap(sel: Selector, rest: &[u8]) -> Vec<u8> {
    let ns = sel.version.namespace();
    let mut doc = Vec::with_capacity(rest.len() + 1024);
    doc.extend_from_slice(b"<soap:Envelope xmlns:soap=\"");
    doc.extend_from_slice(ns.as_bytes());
    doc.push(b'"');
    if sel.inherited {
        for (prefix, uri) in [("soapenv", ns), ("env", ns)].into_iter().chain(PREFIXES) {
            doc.extend_from_slice(format!(" xmlns:{prefix}=\"{uri}\"").as_bytes());
        }
    }
    doc.push(b'>');
    if sel.in_header {
        doc.extend_from_slice(b"<soap:Header>");
        doc.extend_from_slice(rest);
        doc.extend_from_slice(b"</soap:Header><soap:Body><x:Ping xmlns:x=\"urn:x\"/></soap:Body>");
    } else {
        doc.extend_from_slice(b"<soap:Body>");
        doc.extend_from_slice(rest);
        doc.extend_from_slice(b"</soap:Body>");
    }
    doc.extend_from_slice(b"</soap:Envelope>");
    doc
}

/// Everything the decoders accepted in one input.
#[derive(Default)]
struct Decoded {
    request: Option<partner::Request>,
    response: Option<partner::Response>,
    fault: Option<partner::FaultDetail>,
    soap_fault_detail: Option<partner::FaultDetail>,
    callback_request: Option<callback::Request>,
    callback_response: Option<callback::Response>,
    callback_fault: Option<callback::FaultDetail>,
    auth: Vec<partner::AuthHeader>,
    callback_auth: Vec<callback::AuthHeader>,
    assertion: Vec<cmn::GatewayAssertion>,
}

fn assertion(element: &BodyElement<'_>) -> Option<cmn::GatewayAssertion> {
    decode::decode_with(
        element,
        partner::NAMESPACES,
        DecodeLimits::default(),
        cmn::GatewayAssertion::deserialize,
    )
    .ok()
}

fn decode_envelope(sel: Selector, env: &Envelope<'_>) -> Decoded {
    let limits = DecodeLimits::default();
    let body = &env.body;
    let mut out = Decoded {
        request: decode::partner_request(body, limits).ok(),
        response: decode::partner_response(sel.op, body, limits).ok(),
        fault: decode::partner_fault(body, limits).ok(),
        callback_request: decode::callback_request(body, limits).ok(),
        callback_response: decode::callback_response(sel.callback_op, body, limits).ok(),
        callback_fault: decode::callback_fault(body, limits).ok(),
        ..Decoded::default()
    };
    if let Ok(f) = envelope::parse_fault(env) {
        if let Some(detail) = &f.detail {
            out.soap_fault_detail = decode::partner_fault(detail, limits).ok();
            let _ = decode::callback_fault(detail, limits);
        }
    }
    for h in &env.headers {
        let el = &h.element;
        out.auth
            .extend(decode::partner_auth(el, DecodeLimits::header_block()).ok());
        out.callback_auth
            .extend(decode::callback_auth(el, DecodeLimits::header_block()).ok());
        out.assertion.extend(assertion(el));
    }
    out
}

/// Target `decode`: strict typed decode of every message type on arbitrary input.
pub fn decode(data: &[u8]) {
    let Some((&b, rest)) = data.split_first() else {
        return;
    };
    let sel = Selector::from_byte(b);
    let doc = wrap(sel, rest);
    // As an upstream's answer: the one-pass decode equals the full scan and decode (asserted
    // inside with the feature `fuzzing`).
    let _ = forward::decode_upstream_reply(sel.op, 200, &doc);
    let Ok(env) = envelope::scan(&doc) else {
        return;
    };
    let _ = decode_envelope(sel, &env);
}

/// Encodes a body element written by `write` into a fresh envelope of `version`.
fn encode_body(
    version: SoapVersion,
    write: impl FnOnce(&mut XmlWriter<'_>) -> Result<(), EncodeError>,
) -> Vec<u8> {
    let mut out = Vec::new();
    encode::body_only(version, &mut out, write)
        .unwrap_or_else(|e| panic!("a decoded value does not encode: {e}"));
    out
}

/// The roundtrip invariant for one value: encode, decode (must succeed and be equal), encode
/// again (must be identical).
fn round<T: PartialEq + std::fmt::Debug>(
    what: &str,
    value: &T,
    version: SoapVersion,
    encode_value: impl Fn(&T, &mut XmlWriter<'_>) -> Result<(), EncodeError>,
    decode_body: impl Fn(&BodyElement<'_>) -> Result<T, decode::DecodeError>,
) {
    let first = encode_body(version, |w| encode_value(value, w));
    let env = envelope::scan(&first).unwrap_or_else(|e| {
        panic!(
            "{what}: the encoding does not scan ({e}): {}",
            String::from_utf8_lossy(&first)
        )
    });
    let back = decode_body(&env.body).unwrap_or_else(|e| {
        panic!(
            "{what}: the encoding does not decode ({e}): {}",
            String::from_utf8_lossy(&first)
        )
    });
    assert_eq!(
        &back,
        value,
        "{what}: decoding the encoding gives another value: {}",
        String::from_utf8_lossy(&first)
    );
    let second = encode_body(version, |w| encode_value(&back, w));
    assert_eq!(
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second),
        "{what}: re-encoding is not identical"
    );
}

/// A fault detail inside a whole SOAP fault, as `fault.rs` writes it: the fault must parse and
/// its detail decode to the same value.
fn round_fault(detail: &partner::FaultDetail, version: SoapVersion) {
    let write = |d: &partner::FaultDetail| {
        let mut out = Vec::new();
        encode::fault(
            version,
            &mut out,
            FaultCode::Sender,
            "Fuzz & <roundtrip>",
            Some(|w: &mut XmlWriter<'_>| Ok(d.encode(w)?)),
        )
        .unwrap_or_else(|e| panic!("a decoded fault detail does not encode: {e}"));
        out
    };
    let first = write(detail);
    let env = envelope::scan(&first).expect("an encoded fault scans");
    let parsed = envelope::parse_fault(&env).unwrap_or_else(|e| {
        panic!(
            "an encoded fault does not parse ({e}): {}",
            String::from_utf8_lossy(&first)
        )
    });
    assert_eq!(parsed.reason, "Fuzz & <roundtrip>");
    let entry = parsed.detail.expect("the encoded fault has its detail");
    let back = decode::partner_fault(&entry, DecodeLimits::default()).unwrap_or_else(|e| {
        panic!(
            "an encoded fault detail does not decode ({e}): {}",
            String::from_utf8_lossy(&first)
        )
    });
    assert_eq!(&back, detail);
    assert_eq!(first, write(&back), "re-encoding a fault is not identical");
}

/// Target `roundtrip`: whatever decodes must re-encode, decode to an equal value and re-encode
/// to identical bytes.
pub fn roundtrip(data: &[u8]) {
    let Some((&b, rest)) = data.split_first() else {
        return;
    };
    let sel = Selector::from_byte(b);
    let doc = wrap(sel, rest);
    let Ok(env) = envelope::scan(&doc) else {
        return;
    };
    let d = decode_envelope(sel, &env);
    let v = sel.version;
    let l = DecodeLimits::default();
    if let Some(r) = &d.request {
        round(
            "request",
            r,
            v,
            |r, w| Ok(r.encode(w)?),
            |b| decode::partner_request(b, l),
        );
        // What the upstream receives: the canonical upstream envelope decodes to the same value.
        let ctx = CallContext {
            partner_id: PARTNERS[0].id,
            request_id: REQUEST_ID,
        };
        let bytes = forward::encode_upstream_request(ctx, r).expect("the upstream request encodes");
        let env = envelope::scan(&bytes).expect("the upstream request scans");
        assert_eq!(
            &decode::partner_request(&env.body, l).expect("the upstream request decodes"),
            r
        );
    }
    if let Some(r) = &d.response {
        round(
            "response",
            r,
            v,
            |r, w| Ok(r.encode(w)?),
            |b| decode::partner_response(sel.op, b, l),
        );
    }
    for f in d.fault.iter().chain(&d.soap_fault_detail) {
        round(
            "fault detail",
            f,
            v,
            |f, w| Ok(f.encode(w)?),
            |b| decode::partner_fault(b, l),
        );
        round_fault(f, v);
    }
    if let Some(r) = &d.callback_request {
        round(
            "callback request",
            r,
            v,
            |r, w| Ok(r.encode(w)?),
            |b| decode::callback_request(b, l),
        );
    }
    if let Some(r) = &d.callback_response {
        round(
            "callback response",
            r,
            v,
            |r, w| Ok(r.encode(w)?),
            |b| decode::callback_response(sel.callback_op, b, l),
        );
    }
    if let Some(f) = &d.callback_fault {
        round(
            "callback fault detail",
            f,
            v,
            |f, w| Ok(f.encode(w)?),
            |b| decode::callback_fault(b, l),
        );
    }
    for h in &d.auth {
        round(
            "PartnerAuth",
            h,
            v,
            |h, w| Ok(partner::encode_auth_header(h, w)?),
            |b| decode::partner_auth(b, DecodeLimits::header_block()),
        );
    }
    for h in &d.callback_auth {
        round(
            "CallbackAuth",
            h,
            v,
            |h, w| Ok(callback::encode_auth_header(h, w)?),
            |b| decode::callback_auth(b, DecodeLimits::header_block()),
        );
    }
    for a in &d.assertion {
        round(
            "GatewayAssertion",
            a,
            v,
            |a, w| Ok(a.serialize("cmn:GatewayAssertion", w)?),
            |b| {
                decode::decode_with(
                    b,
                    partner::NAMESPACES,
                    l,
                    cmn::GatewayAssertion::deserialize,
                )
            },
        );
    }
}

// === target: pipeline ===

/// How the stub upstream answers (first input byte, bits 3–5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum StubReply {
    /// The operation's golden response fixture.
    Response,
    /// A golden fault fixture (index into [`FAULT_FIXTURES`]).
    Fault(usize),
    /// No answer in time.
    Timeout,
}

impl StubReply {
    fn from_bits(bits: u8) -> StubReply {
        match usize::from(bits & 7) {
            0 => StubReply::Response,
            7 => StubReply::Timeout,
            n => StubReply::Fault(n - 1),
        }
    }
}

macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/", $path))
    };
}

/// The golden SOAP 1.1 fault fixtures the stub can answer with (`AccessDenied` included: the
/// forward stage must turn it into an error, never relay it).
const FAULT_FIXTURES: [&[u8]; 6] = [
    fixture!("faults/AccessDeniedFault.soap11.xml"),
    fixture!("faults/InvalidRequestFault.soap11.xml"),
    fixture!("faults/ThrottledFault.soap11.xml"),
    fixture!("faults/NotFoundFault.soap11.xml"),
    fixture!("faults/ConflictFault.soap11.xml"),
    fixture!("faults/UpstreamUnavailableFault.soap11.xml"),
];

/// The golden response fixture of `op`.
fn response_fixture(op: partner::Operation) -> &'static [u8] {
    use partner::Operation as O;
    match op {
        O::CreateAccount => fixture!("CreateAccount/response.xml"),
        O::ModifyAccount => fixture!("ModifyAccount/response.xml"),
        O::ChangeAccountStatus => fixture!("ChangeAccountStatus/response.xml"),
        O::GetAccount => fixture!("GetAccount/response.xml"),
        O::FindAccounts => fixture!("FindAccounts/response.xml"),
        O::AddService => fixture!("AddService/response.xml"),
        O::ModifyService => fixture!("ModifyService/response.xml"),
        O::ChangeServiceStatus => fixture!("ChangeServiceStatus/response.xml"),
        O::GetService => fixture!("GetService/response.xml"),
        O::ListServices => fixture!("ListServices/response.xml"),
        O::AddDevice => fixture!("AddDevice/response.xml"),
        O::ModifyDevice => fixture!("ModifyDevice/response.xml"),
        O::ChangeDeviceStatus => fixture!("ChangeDeviceStatus/response.xml"),
        O::GetDevice => fixture!("GetDevice/response.xml"),
        O::EnableFeature => fixture!("EnableFeature/response.xml"),
        O::ModifyFeature => fixture!("ModifyFeature/response.xml"),
        O::ChangeFeatureStatus => fixture!("ChangeFeatureStatus/response.xml"),
        O::GetFeature => fixture!("GetFeature/response.xml"),
    }
}

/// One call the stub received.
#[derive(Debug)]
struct Call {
    partner_id: String,
    request_id: String,
    request: partner::Request,
}

/// A recording upstream: checks that what it receives encodes canonically and decodes strictly,
/// and answers with a golden fixture.
struct Stub {
    reply: Mutex<StubReply>,
    calls: Mutex<Vec<Call>>,
}

impl Upstream for Stub {
    fn call<'a>(
        &'a self,
        ctx: CallContext<'a>,
        request: &'a partner::Request,
    ) -> BoxFuture<'a, Result<UpstreamReply, ForwardError>> {
        // What reaches the upstream: the canonical envelope, which decodes strictly to the same
        // request.
        let bytes = forward::encode_upstream_request(ctx, request)
            .unwrap_or_else(|e| panic!("a forwarded request does not encode: {e}"));
        let env = envelope::scan(&bytes).expect("the upstream request scans");
        let again = decode::partner_request(&env.body, DecodeLimits::default())
            .unwrap_or_else(|e| panic!("the upstream request does not decode: {e}"));
        assert_eq!(
            &again, request,
            "the upstream request decodes to another value"
        );
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("pgk_") && !text.contains("pgc_"),
            "a key reached the upstream"
        );
        self.calls.lock().expect("calls").push(Call {
            partner_id: ctx.partner_id.to_string(),
            request_id: ctx.request_id.to_string(),
            request: request.clone(),
        });
        let reply = stub_reply(request.operation(), *self.reply.lock().expect("reply"));
        Box::pin(std::future::ready(reply))
    }
}

/// What the stub answers: the fixture decoded by the forward stage's own strict decoder (once
/// per operation and answer: it does not depend on the input).
fn stub_reply(op: partner::Operation, reply: StubReply) -> Result<UpstreamReply, ForwardError> {
    type Cache = std::collections::HashMap<
        (partner::Operation, StubReply),
        Result<UpstreamReply, ForwardError>,
    >;
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(|| Mutex::new(Cache::new()))
        .lock()
        .expect("cache");
    cache
        .entry((op, reply))
        .or_insert_with(|| match reply {
            StubReply::Response => {
                let r = forward::decode_upstream_reply(op, 200, response_fixture(op));
                assert!(
                    matches!(r, Ok(UpstreamReply::Response(_))),
                    "the golden response of {op:?} does not decode: {r:?}"
                );
                r
            }
            StubReply::Fault(i) => forward::decode_upstream_reply(op, 500, FAULT_FIXTURES[i]),
            StubReply::Timeout => Err(ForwardError::Timeout(Duration::from_secs(20))),
        })
        .clone()
}

struct PipelineHarness {
    gateway: Gateway,
    stub: Arc<Stub>,
}

/// Runs `f` with this thread's harness (one per thread: the stub records the calls of one
/// request at a time, and the unit tests run on several threads).
fn with_harness<R>(f: impl FnOnce(&PipelineHarness) -> R) -> R {
    thread_local! {
        static HARNESS: PipelineHarness = new_harness();
    }
    HARNESS.with(f)
}

fn new_harness() -> PipelineHarness {
    let stub = Arc::new(Stub {
        reply: Mutex::new(StubReply::Response),
        calls: Mutex::new(Vec::new()),
    });
    let upstream: Arc<dyn Upstream> = Arc::clone(&stub) as Arc<dyn Upstream>;
    let gateway = Gateway {
        settings: Settings {
            xml: XmlLimits::default(),
            trusted_proxies: nets(&[TRUSTED_PROXIES]),
            trusted_proxy_header: crate::allowlist::ProxyHeader::XForwardedFor,
            fault_status: StatusModes::default(),
        },
        snapshot: Arc::new(SnapshotCell::new(snapshot().clone())),
        // Never throttles: throttling is time-driven, not input-driven.
        throttle: Throttle::new(Rate::new(1_000_000_000, 1_000_000_000).expect("rate")),
        upstream: Some(upstream),
        stats: Arc::new(crate::stats::Stats::default()),
        callback: None,
    };
    PipelineHarness { gateway, stub }
}

/// Drives a future that never waits (the stub upstream answers at once) to its end.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the request path waited although nothing it calls can wait"),
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// The pipeline target's input: the first byte chooses the peer (bits 0–2) and the stub's answer
/// (bits 3–5); then `Name: value` header lines up to an empty line; then the body.
struct PipelineInput<'a> {
    peer: IpAddr,
    reply: StubReply,
    headers: HeaderMap,
    body: &'a [u8],
}

fn pipeline_input(data: &[u8]) -> Option<PipelineInput<'_>> {
    let (&sel, mut rest) = data.split_first()?;
    let peer = PEERS[usize::from(sel & 7) % PEERS.len()];
    let reply = StubReply::from_bits(sel >> 3);
    let mut headers = HeaderMap::new();
    loop {
        let (line, after) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = after;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(trim(&line[..colon])),
            HeaderValue::from_bytes(trim(&line[colon + 1..])),
        ) else {
            continue;
        };
        if headers.len() < 64 {
            headers.append(name, value);
        }
    }
    Some(PipelineInput {
        peer,
        reply,
        headers,
        body: rest,
    })
}

fn v4_mapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// Independently of `allowlist.rs`: the peer is allowed, or it is a trusted proxy and a
/// forwarding header names an allowed address.
fn allowed_independently(p: &FuzzPartner, peer: IpAddr, headers: &HeaderMap) -> bool {
    let allow = nets(p.allow);
    let ok = |ip: IpAddr| allow.iter().any(|n| n.contains(&v4_mapped(ip)));
    if ok(peer) {
        return true;
    }
    if !nets(&[TRUSTED_PROXIES])
        .iter()
        .any(|n| n.contains(&v4_mapped(peer)))
    {
        return false;
    }
    let parse = |token: &str| -> Option<IpAddr> {
        token
            .parse()
            .ok()
            .or_else(|| token.rsplit_once(':').and_then(|(h, _)| h.parse().ok()))
    };
    // Only the header the proxies are configured to write (X-Forwarded-For here); a client's
    // `Forwarded` passed through by the proxy is never believed.
    headers.get_all("x-forwarded-for").iter().any(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .split([',', ';', '=', '"', ' ', '\t', '[', ']'])
            .filter_map(parse)
            .any(ok)
    })
}

/// Independently of `authorize.rs`: a grant permits the operation.
fn permitted_independently(p: &FuzzPartner, op: partner::Operation) -> bool {
    let permission = op.permission();
    let domain = permission.split('.').next().unwrap_or(permission);
    p.grants
        .iter()
        .any(|g| *g == "*" || *g == permission || g.strip_suffix(".*").is_some_and(|d| d == domain))
}

/// A rendered fault parses as a SOAP fault of `version` whose detail (if any) decodes; returns
/// whether it has one.
fn check_fault(body: &[u8], version: SoapVersion, what: &str) -> bool {
    let env = envelope::scan(body).unwrap_or_else(|e| {
        panic!(
            "{what}: the fault does not scan ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    assert_eq!(env.version, version, "{what}: fault in the wrong version");
    let f = envelope::parse_fault(&env).unwrap_or_else(|e| {
        panic!(
            "{what}: not a SOAP fault ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    assert!(
        f.reason.contains(REQUEST_ID),
        "{what}: the reason does not name the request id: {}",
        f.reason
    );
    if let Some(detail) = &f.detail {
        decode::partner_fault(detail, DecodeLimits::default()).unwrap_or_else(|e| {
            panic!(
                "{what}: the fault detail does not decode ({e}): {}",
                String::from_utf8_lossy(body)
            )
        });
    }
    f.detail.is_some()
}

/// The `Message` of an upstream's contract fault.
fn upstream_message(detail: &partner::FaultDetail) -> &str {
    use partner::FaultDetail as D;
    match detail {
        D::AccessDenied(d) => d.message.as_str(),
        D::InvalidRequest(d) => d.message.as_str(),
        D::Throttled(d) => d.message.as_str(),
        D::NotFound(d) => d.message.as_str(),
        D::Conflict(d) => d.message.as_str(),
        D::UpstreamUnavailable(d) => d.message.as_str(),
    }
}

/// Every answer is a typed response that encodes and decodes back, or a fault that renders and
/// parses.
fn check_answer(outcome: &Outcome) {
    let version = outcome.version;
    match &outcome.result {
        Ok(UpstreamReply::Response(r)) => {
            let bytes = encode_body(version, |w| Ok(r.encode(w)?));
            let env = envelope::scan(&bytes).expect("the response scans");
            let back = decode::partner_response(r.operation(), &env.body, DecodeLimits::default())
                .unwrap_or_else(|e| panic!("the response does not decode: {e}"));
            assert_eq!(&back, r);
        }
        Ok(UpstreamReply::Fault(f)) => {
            let rendered = fault::render_upstream(f, version, REQUEST_ID, StatusModes::default());
            // A typed detail always: the upstream's kind, or the gateway's UpstreamUnavailable.
            assert!(
                check_fault(&rendered.body, version, "upstream fault"),
                "the upstream fault went out without a typed detail"
            );
            // The upstream's texts never reach the partner: its Message (the golden faults'
            // faultstrings are not checked: "Not Found: account" is also the gateway's own).
            if let Some(text) = f.detail.as_ref().map(upstream_message) {
                assert!(
                    !contains(&rendered.body, text.as_bytes()),
                    "the upstream's text {text:?} reached the partner"
                );
            }
        }
        Err(rejection) => {
            // Every refusal carries its typed detail, but the two SOAP-level faults.
            let detail_expected = !matches!(
                rejection,
                Rejection::Envelope(envelope::EnvelopeError::VersionMismatch)
                    | Rejection::Auth(authenticate::AuthError::MustUnderstand(_))
            );
            let semantic = StatusModes {
                soap11: Soap11Status::Semantic,
                soap12: Soap12Status::Semantic,
            };
            for mode in [StatusModes::default(), semantic] {
                let rendered = fault::render(rejection, version, REQUEST_ID, mode);
                assert!(
                    rendered.status.is_client_error() || rendered.status.is_server_error(),
                    "a refusal with status {}",
                    rendered.status
                );
                // By default only the statuses WS-I (SOAP 1.1: 500) and the SOAP 1.2 HTTP
                // binding (400 for env:Sender, 500 otherwise) allow.
                if mode == StatusModes::default() {
                    let allowed: &[u16] = match version {
                        SoapVersion::Soap11 => &[500],
                        SoapVersion::Soap12 => &[400, 500],
                    };
                    assert!(
                        allowed.contains(&rendered.status.as_u16()),
                        "a {version:?} refusal with status {} by default",
                        rendered.status
                    );
                }
                let has_detail = check_fault(&rendered.body, version, rejection.stage());
                assert_eq!(
                    has_detail,
                    detail_expected,
                    "{}: the fault's typed detail: {}",
                    rejection.stage(),
                    String::from_utf8_lossy(&rendered.body)
                );
                if matches!(rejection, Rejection::Auth(_)) {
                    for p in &PARTNERS {
                        assert!(
                            !contains(&rendered.body, p.key.as_bytes()),
                            "an authentication fault quotes a key"
                        );
                    }
                }
            }
        }
    }
}

/// One request through the harness's gateway: the outcome and the calls the stub received.
fn run_pipeline(h: &PipelineHarness, input: &PipelineInput<'_>) -> (Outcome, Vec<Call>) {
    *h.stub.reply.lock().expect("reply") = input.reply;
    h.stub.calls.lock().expect("calls").clear();
    let incoming = Incoming {
        peer: input.peer,
        headers: &input.headers,
        body: input.body,
        request_id: REQUEST_ID,
    };
    let outcome = block_on(pipeline::handle(&h.gateway, incoming));
    let calls = std::mem::take(&mut *h.stub.calls.lock().expect("calls"));
    (outcome, calls)
}

/// Target `pipeline`: the whole request path in process, from HTTP headers and body to the
/// answer, with a recording stub upstream.
pub fn pipeline(data: &[u8]) {
    let Some(input) = pipeline_input(data) else {
        return;
    };
    let (outcome, calls) = with_harness(|h| run_pipeline(h, &input));
    assert!(
        calls.len() <= 1,
        "{} upstream calls for one request",
        calls.len()
    );
    match calls.first() {
        Some(call) => {
            let p = fuzz_partner(&call.partner_id)
                .unwrap_or_else(|| panic!("upstream called for unknown {}", call.partner_id));
            assert!(
                p.may_call(),
                "upstream called for {} that may not call",
                p.id
            );
            assert!(
                contains(input.body, p.key.as_bytes()) && contains(input.body, p.id.as_bytes()),
                "upstream called for {} without its id and key in the body",
                p.id
            );
            assert!(
                allowed_independently(p, input.peer, &input.headers),
                "upstream called for {} from {} which is not allowed",
                p.id,
                input.peer
            );
            let op = call.request.operation();
            assert!(
                permitted_independently(p, op),
                "upstream called for {} with {op:?}, which it is not granted",
                p.id
            );
            assert_eq!(outcome.operation, Some(op));
            assert_eq!(outcome.partner.as_deref(), Some(p.id));
            assert_eq!(call.request_id, REQUEST_ID);
            assert!(
                matches!(outcome.result, Ok(_) | Err(Rejection::Forward(_))),
                "refused after the upstream was called: {:?}",
                outcome.result.as_ref().err()
            );
        }
        None => {
            assert!(
                matches!(
                    outcome.result,
                    Err(ref r) if !matches!(r, Rejection::Forward(_))
                ),
                "an upstream answer or error without an upstream call"
            );
        }
    }
    check_answer(&outcome);
}

#[cfg(test)]
mod tests;
