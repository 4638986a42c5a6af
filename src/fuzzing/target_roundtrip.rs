//! Target `roundtrip`: whatever the decoders accept (read as the `decode` target reads it) must
//! re-encode, decode to an equal value and re-encode to identical bytes; a fault detail also
//! inside a whole SOAP fault, a request also as the upstream receives it. Uses `target_decode.rs`,
//! the partner world, and the decode, encode, envelope and forward stages.

use xsd_parser_types::quick_xml::{DeserializeSync, SerializeSync};

use crate::decode::{self, DecodeLimits};
use crate::encode::{self, EncodeError, XmlWriter};
use crate::envelope::{self, BodyElement, FaultCode, SoapVersion};
use crate::forward::{self, CallContext};
use crate::generated::types::cmn;
use crate::generated::{callback, partner};

use super::encode_body;
use super::partners::{PARTNERS, REQUEST_ID};
use super::target_decode::{decode_envelope, wrap, Selector};

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

/// [`round`] for each value in `$values` (an `Option` or a `Vec` of a generated message type,
/// encoded by its own `encode`), decoded back by `$decode`.
macro_rules! round_each {
    ($what:expr, $values:expr, $version:expr, $decode:expr) => {
        for value in $values.iter() {
            round($what, value, $version, |x, w| Ok(x.encode(w)?), $decode);
        }
    };
}

/// What the upstream receives of `request`: the canonical upstream envelope decodes to the
/// same value.
pub(super) fn check_upstream(request: &partner::Request, limits: DecodeLimits) {
    let ctx = CallContext {
        trace: None,
        partner_id: PARTNERS[0].id,
        request_id: REQUEST_ID,
    };
    let bytes =
        forward::encode_upstream_request(ctx, request).expect("the upstream request encodes");
    let env = envelope::scan(&bytes).expect("the upstream request scans");
    assert_eq!(
        &decode::partner_request(&env.body, limits).expect("the upstream request decodes"),
        request
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
        check_upstream(r, l);
    }
    round_each!("response", d.response, v, |b| {
        decode::partner_response(sel.op, b, l)
    });
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
    round_each!("callback request", d.callback_request, v, |b| {
        decode::callback_request(b, l)
    });
    round_each!("callback response", d.callback_response, v, |b| {
        decode::callback_response(sel.callback_op, b, l)
    });
    round_each!("callback fault detail", d.callback_fault, v, |b| {
        decode::callback_fault(b, l)
    });
    round_each!("enrollment request", d.enrollment_request, v, |b| {
        decode::enrollment_request(b, l)
    });
    round_each!("enrollment response", d.enrollment_response, v, |b| {
        decode::enrollment_response(sel.enrollment_op, b, l)
    });
    round_each!("enrollment fault detail", d.enrollment_fault, v, |b| {
        decode::enrollment_fault(b, l)
    });
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
