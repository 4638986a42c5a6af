//! The JSON face's golden files: every partner operation's fixture in `tests/data/<Op>/` has its
//! JSON form beside it (`request.json`, indented, as a partner would write it; `response.json`,
//! compact, as the encoder writes it), and every partner fault detail in `tests/data/faults/` its
//! `<Name>.json`. Asserted for each:
//! - `request.json` → `json::decode_partner_request` → the canonical SOAP encoder (the bytes sent
//!   upstream) is byte-identical to `request.canonical.xml`, the XML fixture's canonical form:
//!   both faces reach the partner API with the same message;
//! - `response.xml` → the strict XML decoder → `json::encode_partner_response` is byte-identical
//!   to `response.json`, and `response.json` → `json::decode_partner_response` → encode gives
//!   the same bytes again (JSON → typed → JSON); likewise for the fault details;
//! - the request's JSON re-encodes (compact) to a document that decodes to the same value.
//!
//! Refresh after a deliberate mapping or contract change with
//! `PARTNERGATE_UPDATE_GOLDEN=1 cargo test --test json_golden` and review the diff.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::path::{Path, PathBuf};

use partnergate::decode::{self, DecodeLimits};
use partnergate::encode;
use partnergate::envelope::{self, SoapVersion};
use partnergate::generated::partner;
use partnergate::json;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn updating() -> bool {
    std::env::var_os("PARTNERGATE_UPDATE_GOLDEN").is_some()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with PARTNERGATE_UPDATE_GOLDEN=1 cargo test --test json_golden",
            path.display()
        )
    })
}

fn assert_same(path: &Path, expected: &[u8], actual: &[u8]) {
    assert_eq!(
        String::from_utf8_lossy(expected),
        String::from_utf8_lossy(actual),
        "{}",
        path.display()
    );
}

/// Compact JSON indented by two spaces per level (strings copied as they are).
fn indent(compact: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut level = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    let newline = |out: &mut Vec<u8>, level: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', level * 2));
    };
    for (i, &b) in compact.iter().enumerate() {
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                out.push(b);
            }
            b'{' | b'[' => {
                out.push(b);
                level += 1;
                if !matches!(compact.get(i + 1), Some(b'}' | b']')) {
                    newline(&mut out, level);
                }
            }
            b'}' | b']' => {
                level -= 1;
                if !matches!(compact.get(i.wrapping_sub(1)), Some(b'{' | b'[')) {
                    newline(&mut out, level);
                }
                out.push(b);
            }
            b',' => {
                out.push(b);
                newline(&mut out, level);
            }
            b':' => out.extend_from_slice(b": "),
            _ => out.push(b),
        }
    }
    out.push(b'\n');
    out
}

#[test]
fn requests_in_json_reach_the_upstream_as_the_xml_fixtures_do() {
    let limits = DecodeLimits::default();
    for op in partner::Operation::ALL {
        let dir = data_dir().join(op.name());
        let json_path = dir.join("request.json");
        if updating() {
            let xml = read(&dir.join("request.xml"));
            let env = envelope::scan(&xml).expect("scan");
            let request = decode::partner_request(&env.body, limits).expect("decode");
            let mut compact = Vec::new();
            json::encode_partner_request(&request, &mut compact).expect("encode");
            std::fs::write(&json_path, indent(&compact)).expect("write");
        }
        let body = read(&json_path);
        let request = json::decode_partner_request(op, &body, &[], &limits)
            .unwrap_or_else(|e| panic!("{}: {e}", json_path.display()));
        assert_eq!(request.operation(), op);
        let mut upstream = Vec::new();
        encode::body_only(SoapVersion::Soap11, &mut upstream, |w| {
            Ok(request.encode(w)?)
        })
        .expect("encode");
        let canonical = dir.join("request.canonical.xml");
        assert_same(&canonical, &read(&canonical), &upstream);

        // JSON → typed → JSON → typed.
        let mut compact = Vec::new();
        json::encode_partner_request(&request, &mut compact).expect("encode");
        let again = json::decode_partner_request(op, &compact, &[], &limits).expect("decode");
        assert_eq!(again, request, "{}", json_path.display());
        let mut twice = Vec::new();
        json::encode_partner_request(&again, &mut twice).expect("encode");
        assert_same(&json_path, &compact, &twice);
    }
}

/// `value` (decoded from XML) encodes to the golden JSON at `json_path`, which decodes back to
/// `value` and re-encodes to the same bytes.
fn check_golden_json<T: PartialEq + std::fmt::Debug>(
    json_path: &Path,
    value: &T,
    encode_json: impl Fn(&T, &mut Vec<u8>) -> Result<(), json::JsonEncodeError>,
    decode_json: impl Fn(&[u8]) -> Result<T, decode::DecodeError>,
) {
    let mut out = Vec::new();
    encode_json(value, &mut out).expect("encode");
    if updating() {
        std::fs::write(json_path, &out).expect("write");
    }
    let golden = read(json_path);
    assert_same(json_path, &golden, &out);
    let decoded = decode_json(&golden).unwrap_or_else(|e| panic!("{}: {e}", json_path.display()));
    assert_eq!(&decoded, value, "{}", json_path.display());
    let mut again = Vec::new();
    encode_json(&decoded, &mut again).expect("encode");
    assert_same(json_path, &golden, &again);
}

#[test]
fn responses_from_xml_encode_to_the_golden_json_and_back() {
    let limits = DecodeLimits::default();
    for op in partner::Operation::ALL {
        let dir = data_dir().join(op.name());
        let xml = read(&dir.join("response.xml"));
        let env = envelope::scan(&xml).expect("scan");
        let response = decode::partner_response(op, &env.body, limits).expect("decode");
        check_golden_json(
            &dir.join("response.json"),
            &response,
            json::encode_partner_response,
            |b| json::decode_partner_response(op, b, &limits),
        );
    }
}

#[test]
fn fault_details_encode_to_the_golden_json_and_back() {
    let limits = DecodeLimits::default();
    for kind in partner::FaultKind::ALL {
        let (_, local) = kind.element();
        let xml = read(&data_dir().join(format!("faults/{local}.soap11.xml")));
        let env = envelope::scan(&xml).expect("scan");
        let fault = envelope::parse_fault(&env).expect("a fault");
        let detail = fault.detail.expect("a detail");
        let detail = decode::partner_fault(&detail, limits).expect("decode");
        assert_eq!(detail.kind(), kind);
        check_golden_json(
            &data_dir().join(format!("faults/{local}.json")),
            &detail,
            json::encode_partner_fault,
            |b| json::decode_partner_fault(kind, b, &limits),
        );
    }
}
