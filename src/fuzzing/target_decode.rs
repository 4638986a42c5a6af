//! Target `decode`: the first input byte chooses an operation and a wrapping ([`Selector`]), the
//! rest goes into a SOAP envelope, and every decoder of the three contracts reads it
//! ([`decode_envelope`], which the `roundtrip` target reuses). Uses the decode and envelope
//! stages and the forward stage's one-pass reading of an answer.

use xsd_parser_types::quick_xml::DeserializeSync;

use crate::decode::{self, DecodeLimits};
use crate::envelope::{self, BodyElement, Envelope, SoapVersion};
use crate::forward;
use crate::generated::types::cmn;
use crate::generated::{callback, enrollment, partner};

/// How the decode and roundtrip targets read their input: the first byte chooses the operation
/// of each contract (`Operation::ALL[b % 18]` of the partner API, `b % 2` of the callback and
/// of the enrollment contract) and, in `b / 18`, the wrapping; the rest goes into a SOAP
/// envelope.
#[derive(Clone, Copy, Debug)]
pub(super) struct Selector {
    pub(super) op: partner::Operation,
    pub(super) callback_op: callback::Operation,
    pub(super) enrollment_op: enrollment::Operation,
    pub(super) version: SoapVersion,
    /// The envelope declares the contracts' usual prefixes (inherited by the element).
    inherited: bool,
    /// The rest is a header block (else the body element).
    in_header: bool,
}

impl Selector {
    pub(super) fn from_byte(b: u8) -> Selector {
        let n = partner::Operation::ALL.len();
        let flags = usize::from(b) / n;
        Selector {
            op: partner::Operation::ALL[usize::from(b) % n],
            callback_op: callback::Operation::ALL[usize::from(b) % callback::Operation::ALL.len()],
            enrollment_op: enrollment::Operation::ALL
                [usize::from(b) % enrollment::Operation::ALL.len()],
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
    pub(super) fn byte(
        op_index: usize,
        version: SoapVersion,
        inherited: bool,
        in_header: bool,
    ) -> u8 {
        let flags = usize::from(version == SoapVersion::Soap12)
            | usize::from(inherited) << 1
            | usize::from(in_header) << 2;
        u8::try_from(flags * partner::Operation::ALL.len() + op_index).expect("fits a byte")
    }
}

/// The prefixes the contracts' fixtures use, for [`Selector::inherited`].
const PREFIXES: [(&str, &str); 8] = [
    ("cmn", "urn:partnergate:partner:common:v1"),
    ("acc", "urn:partnergate:partner:accounts:v1"),
    ("svc", "urn:partnergate:partner:services:v1"),
    ("dev", "urn:partnergate:partner:devices:v1"),
    ("ftr", "urn:partnergate:partner:features:v1"),
    ("cb", "urn:partnergate:callback:v1"),
    ("enr", "urn:partnergate:enrollment:v1"),
    (
        "wsse",
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    ),
];

pub(super) fn wrap(sel: Selector, rest: &[u8]) -> Vec<u8> {
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
pub(super) struct Decoded {
    pub(super) request: Option<partner::Request>,
    pub(super) response: Option<partner::Response>,
    pub(super) fault: Option<partner::FaultDetail>,
    pub(super) soap_fault_detail: Option<partner::FaultDetail>,
    pub(super) callback_request: Option<callback::Request>,
    pub(super) callback_response: Option<callback::Response>,
    pub(super) callback_fault: Option<callback::FaultDetail>,
    pub(super) enrollment_request: Option<enrollment::Request>,
    pub(super) enrollment_response: Option<enrollment::Response>,
    pub(super) enrollment_fault: Option<enrollment::FaultDetail>,
    pub(super) auth: Vec<partner::AuthHeader>,
    pub(super) callback_auth: Vec<callback::AuthHeader>,
    pub(super) assertion: Vec<cmn::GatewayAssertion>,
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

pub(super) fn decode_envelope(sel: Selector, env: &Envelope<'_>) -> Decoded {
    let limits = DecodeLimits::default();
    let body = &env.body;
    let mut out = Decoded {
        request: decode::partner_request(body, limits).ok(),
        response: decode::partner_response(sel.op, body, limits).ok(),
        fault: decode::partner_fault(body, limits).ok(),
        callback_request: decode::callback_request(body, limits).ok(),
        callback_response: decode::callback_response(sel.callback_op, body, limits).ok(),
        callback_fault: decode::callback_fault(body, limits).ok(),
        enrollment_request: decode::enrollment_request(body, limits).ok(),
        enrollment_response: decode::enrollment_response(sel.enrollment_op, body, limits).ok(),
        enrollment_fault: decode::enrollment_fault(body, limits).ok(),
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
