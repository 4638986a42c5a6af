//! The contract's typed entry points: a request, response, fault detail or credential header of
//! the partner or the callback contract, decoded by the fast path with the strict decoder behind
//! it ([`decode_fast_or_strict`]). Uses `rules.rs`, `strict.rs`, `fast.rs`, the generated
//! operation tables and `crate::envelope`.

use xsd_parser_types::quick_xml::Error as XmlError;

use super::fast;
use super::rules::{DecodeError, DecodeLimits, Rule};
use super::strict::{decode_with, StrictReader};
use crate::envelope::{BodyElement, OpenEnvelope};
use crate::generated::{callback, partner};

/// Decodes `body` with a generated fast decoder ([`fast`]) and, when that gives up, with the
/// strict decoder through [`decode_with`]: the value, or the strict decoder's error.
///
/// In debug builds (the test suite) and with the `fuzzing` feature a value from the fast path
/// is checked against the strict decoder's answer for the same bytes, and any difference
/// panics: the fast path must never accept what the strict decoder refuses, nor decode
/// differently.
pub fn decode_fast_or_strict<'a, T: PartialEq + std::fmt::Debug>(
    body: &'a BodyElement<'a>,
    namespaces: &'static [&'static str],
    limits: DecodeLimits,
    fast: impl FnOnce(&mut fast::FastReader<'a>) -> Option<T>,
    strict: impl FnOnce(&mut StrictReader<'a>) -> Result<T, XmlError>,
) -> Result<T, DecodeError> {
    match fast::decode(body, limits, fast) {
        Some(value) => {
            // Debug builds and the fuzz targets (built in release with the `fuzzing` feature).
            #[cfg(any(debug_assertions, feature = "fuzzing"))]
            {
                // The message names the strict decoder's error, never the values: a credential
                // header's value holds the key.
                let strict = decode_with(body, namespaces, limits, strict);
                assert!(
                    strict.as_ref().is_ok_and(|s| *s == value),
                    "the fast decode disagrees with the strict decoder: {}",
                    strict
                        .as_ref()
                        .map_or_else(ToString::to_string, |_| "another value".into())
                );
            }
            Ok(value)
        }
        None => decode_with(body, namespaces, limits, strict),
    }
}

/// The body element is not the request of any operation of the contract.
pub fn unknown_operation(body: &BodyElement<'_>) -> DecodeError {
    DecodeError {
        path: format!("/{}", String::from_utf8_lossy(body.local_name)),
        rule: Rule::UnknownElement,
        detail: "the body element is not an operation of this contract".into(),
    }
}

/// Decodes a partner API request body (the operation is looked up from the body element).
pub fn partner_request(
    body: &BodyElement<'_>,
    limits: DecodeLimits,
) -> Result<partner::Request, DecodeError> {
    let op = partner::Operation::from_request_element(&body.namespace, body.local_name)
        .ok_or_else(|| unknown_operation(body))?;
    decode_fast_or_strict(
        body,
        partner::NAMESPACES,
        limits,
        |r| partner::Request::decode_fast(op, r),
        |r| partner::Request::decode(op, r),
    )
}

/// Decodes the upstream's response body to a partner API request of `op`.
pub fn partner_response(
    op: partner::Operation,
    body: &BodyElement<'_>,
    limits: DecodeLimits,
) -> Result<partner::Response, DecodeError> {
    let (ns, local) = op.response_element();
    if !body.is(ns, local) {
        return Err(unknown_operation(body));
    }
    decode_fast_or_strict(
        body,
        partner::NAMESPACES,
        limits,
        |r| partner::Response::decode_fast(op, r),
        |r| partner::Response::decode(op, r),
    )
}

/// The fast path alone for a partner API response read by [`crate::envelope::scan_to_body`]:
/// the response, if the body element is `op`'s response element, the fast path decodes it and
/// the rest of the document closes the envelope; `None` otherwise (the caller then scans the
/// whole document and decodes as usual, which names any error).
pub fn partner_response_open(
    op: partner::Operation,
    open: &OpenEnvelope<'_>,
    limits: DecodeLimits,
) -> Option<partner::Response> {
    let body = &open.envelope.body;
    let (ns, local) = op.response_element();
    if !body.is(ns, local) {
        return None;
    }
    let (value, end) = fast::decode_open(body, limits, |r| partner::Response::decode_fast(op, r))?;
    open.closes_after(end).then_some(value)
}

/// Decodes a partner API fault detail element.
pub fn partner_fault(
    element: &BodyElement<'_>,
    limits: DecodeLimits,
) -> Result<partner::FaultDetail, DecodeError> {
    let kind = partner::FaultKind::from_element(&element.namespace, element.local_name)
        .ok_or_else(|| unknown_operation(element))?;
    decode_fast_or_strict(
        element,
        partner::NAMESPACES,
        limits,
        |r| partner::FaultDetail::decode_fast(kind, r),
        |r| partner::FaultDetail::decode(kind, r),
    )
}

/// Decodes the partner credential header block (`PartnerAuth`).
pub fn partner_auth(
    element: &BodyElement<'_>,
    limits: DecodeLimits,
) -> Result<partner::AuthHeader, DecodeError> {
    decode_fast_or_strict(
        element,
        partner::NAMESPACES,
        limits,
        partner::decode_auth_header_fast,
        partner::decode_auth_header,
    )
}

/// Decodes a callback request body.
pub fn callback_request(
    body: &BodyElement<'_>,
    limits: DecodeLimits,
) -> Result<callback::Request, DecodeError> {
    let op = callback::Operation::from_request_element(&body.namespace, body.local_name)
        .ok_or_else(|| unknown_operation(body))?;
    decode_fast_or_strict(
        body,
        callback::NAMESPACES,
        limits,
        |r| callback::Request::decode_fast(op, r),
        |r| callback::Request::decode(op, r),
    )
}

/// Decodes a partner BSS's response to a callback of `op`.
pub fn callback_response(
    op: callback::Operation,
    body: &BodyElement<'_>,
    limits: DecodeLimits,
) -> Result<callback::Response, DecodeError> {
    let (ns, local) = op.response_element();
    if !body.is(ns, local) {
        return Err(unknown_operation(body));
    }
    decode_fast_or_strict(
        body,
        callback::NAMESPACES,
        limits,
        |r| callback::Response::decode_fast(op, r),
        |r| callback::Response::decode(op, r),
    )
}

/// Decodes a callback fault detail element.
pub fn callback_fault(
    element: &BodyElement<'_>,
    limits: DecodeLimits,
) -> Result<callback::FaultDetail, DecodeError> {
    let kind = callback::FaultKind::from_element(&element.namespace, element.local_name)
        .ok_or_else(|| unknown_operation(element))?;
    decode_fast_or_strict(
        element,
        callback::NAMESPACES,
        limits,
        |r| callback::FaultDetail::decode_fast(kind, r),
        |r| callback::FaultDetail::decode(kind, r),
    )
}

/// Decodes the callback credential header block (`CallbackAuth`).
pub fn callback_auth(
    element: &BodyElement<'_>,
    limits: DecodeLimits,
) -> Result<callback::AuthHeader, DecodeError> {
    decode_fast_or_strict(
        element,
        callback::NAMESPACES,
        limits,
        callback::decode_auth_header_fast,
        callback::decode_auth_header,
    )
}
