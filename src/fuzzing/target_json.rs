//! Target `json`: the first input byte chooses what the rest is read as ([`JsonSelector`]: a
//! partner request, response or fault detail of some operation or kind), the rest is the JSON
//! body. Invariants: no panic; a refusal names a rule other than `invalid` and a path that is a
//! JSON Pointer; whatever is accepted re-encodes to JSON that decodes to an equal value and
//! re-encodes to identical bytes, and its canonical SOAP encoding (for a request: also the
//! upstream envelope) decodes with the XML decoder (fast and strict compared, as in every
//! fuzzing build) to the same value, so the two faces agree. Uses the json, decode, encode,
//! envelope and forward stages and the partner world.

use crate::decode::{self, DecodeError, DecodeLimits, Rule};
use crate::encode::{self, XmlWriter};
use crate::envelope::{self, FaultCode, SoapVersion};
use crate::generated::partner;
use crate::json;

use super::encode_body;
use super::target_roundtrip::check_upstream;

/// What the json target reads its input as: byte 0 `b`, `b % 3` the kind (request, response,
/// fault detail), `(b / 3) % 18` the operation, `(b / 3) % 6` the fault kind.
#[derive(Clone, Copy, Debug)]
pub(super) enum JsonSelector {
    Request(partner::Operation),
    Response(partner::Operation),
    Fault(partner::FaultKind),
}

impl JsonSelector {
    pub(super) fn from_byte(b: u8) -> Self {
        let n = usize::from(b / 3);
        let op = partner::Operation::ALL[n % partner::Operation::ALL.len()];
        match b % 3 {
            0 => JsonSelector::Request(op),
            1 => JsonSelector::Response(op),
            _ => JsonSelector::Fault(partner::FaultKind::ALL[n % partner::FaultKind::ALL.len()]),
        }
    }

    /// The first input byte that selects this.
    #[cfg(test)]
    pub(super) fn byte(self) -> u8 {
        let op_index = |op| partner::Operation::ALL.iter().position(|o| *o == op);
        let (kind, n) = match self {
            JsonSelector::Request(op) => (0, op_index(op)),
            JsonSelector::Response(op) => (1, op_index(op)),
            JsonSelector::Fault(kind) => {
                (2, partner::FaultKind::ALL.iter().position(|k| *k == kind))
            }
        };
        let n = n.expect("a listed operation or fault kind");
        u8::try_from(n * 3 + kind).expect("fits a byte")
    }
}

/// A refusal must name a real rule and a JSON Pointer.
fn check_refusal(e: &DecodeError) {
    assert_ne!(e.rule, Rule::Invalid, "an unexplained refusal: {e}");
    assert!(
        e.path.is_empty() || e.path.starts_with('/'),
        "not a JSON Pointer: {e}"
    );
}

/// JSON → typed → JSON: the encoding decodes to an equal value and re-encodes identically.
fn json_round<T: PartialEq + std::fmt::Debug>(
    what: &str,
    value: &T,
    encode_json: impl Fn(&T, &mut Vec<u8>) -> Result<(), json::JsonEncodeError>,
    decode_json: impl Fn(&[u8]) -> Result<T, DecodeError>,
) {
    let mut first = Vec::new();
    encode_json(value, &mut first)
        .unwrap_or_else(|e| panic!("{what}: an accepted value does not encode as JSON: {e}"));
    let back = decode_json(&first).unwrap_or_else(|e| {
        panic!(
            "{what}: the JSON encoding does not decode ({e}): {}",
            String::from_utf8_lossy(&first)
        )
    });
    assert_eq!(
        &back, value,
        "{what}: JSON → typed → JSON changed the value"
    );
    let mut second = Vec::new();
    encode_json(&back, &mut second).expect("encodes again");
    assert_eq!(
        first, second,
        "{what}: re-encoding the JSON is not identical"
    );
}

/// The SOAP face: the canonical encoding decodes with the XML decoder to the same value.
fn soap_round<T: PartialEq + std::fmt::Debug>(
    what: &str,
    value: &T,
    encode_xml: impl Fn(&T, &mut XmlWriter<'_>) -> Result<(), encode::EncodeError>,
    decode_xml: impl Fn(&envelope::BodyElement<'_>) -> Result<T, DecodeError>,
) {
    for version in [SoapVersion::Soap11, SoapVersion::Soap12] {
        let bytes = encode_body(version, |w| encode_xml(value, w));
        let env = envelope::scan(&bytes)
            .unwrap_or_else(|e| panic!("{what}: the SOAP encoding does not scan: {e}"));
        let back = decode_xml(&env.body).unwrap_or_else(|e| {
            panic!(
                "{what}: the SOAP face refuses what the JSON face accepted ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(
            &back, value,
            "{what}: the two faces decode different values"
        );
    }
}

/// The invariants of an accepted value on both faces: [`json_round`] with the JSON encoder and
/// decoder, then [`soap_round`] with the value's own SOAP encoder and the XML decoder.
macro_rules! both_faces {
    ($what:literal, $value:expr, $encode_json:path, $decode_json:expr, $decode_xml:expr) => {{
        json_round($what, &$value, $encode_json, $decode_json);
        soap_round($what, &$value, |v, w| Ok(v.encode(w)?), $decode_xml);
    }};
}

/// Target `json`.
pub fn json(data: &[u8]) {
    let Some((&b, body)) = data.split_first() else {
        return;
    };
    let l = DecodeLimits::default();
    match JsonSelector::from_byte(b) {
        JsonSelector::Request(op) => {
            let request = match json::decode_partner_request(op, body, &[], &l) {
                Ok(r) => r,
                Err(e) => return check_refusal(&e),
            };
            assert_eq!(request.operation(), op);
            both_faces!(
                "request",
                request,
                json::encode_partner_request,
                |b| json::decode_partner_request(op, b, &[], &l),
                |b| decode::partner_request(b, l)
            );
            check_upstream(&request, l);
        }
        JsonSelector::Response(op) => {
            let response = match json::decode_partner_response(op, body, &l) {
                Ok(r) => r,
                Err(e) => return check_refusal(&e),
            };
            both_faces!(
                "response",
                response,
                json::encode_partner_response,
                |b| json::decode_partner_response(op, b, &l),
                |b| decode::partner_response(op, b, l)
            );
        }
        JsonSelector::Fault(kind) => {
            let detail = match json::decode_partner_fault(kind, body, &l) {
                Ok(d) => d,
                Err(e) => return check_refusal(&e),
            };
            both_faces!(
                "fault detail",
                detail,
                json::encode_partner_fault,
                |b| json::decode_partner_fault(kind, b, &l),
                |b| decode::partner_fault(b, l)
            );
            // Inside a whole SOAP fault, as fault.rs writes it.
            let mut out = Vec::new();
            encode::fault(
                SoapVersion::Soap12,
                &mut out,
                FaultCode::Sender,
                "json",
                Some(|w: &mut XmlWriter<'_>| Ok(detail.encode(w)?)),
            )
            .expect("the fault encodes");
            let env = envelope::scan(&out).expect("the fault scans");
            let fault = envelope::parse_fault(&env).expect("the fault parses");
            let entry = fault.detail.expect("the fault has its detail");
            assert_eq!(
                decode::partner_fault(&entry, l).expect("the detail decodes"),
                detail
            );
        }
    }
}
