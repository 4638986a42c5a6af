//! The contract's typed entry points: a request, response, fault detail or credential header of
//! the partner or the callback contract, decoded by the fast path with the strict decoder behind
//! it ([`decode_fast_or_strict`]). Uses `rules.rs`, `strict.rs`, `fast.rs`, the generated
//! operation tables and `crate::envelope`.

use xsd_parser_types::quick_xml::Error as XmlError;

use super::fast;
use super::rules::{DecodeError, DecodeLimits, Rule};
use super::strict::{decode_with, StrictReader};
use crate::envelope::{BodyElement, OpenEnvelope};
use crate::generated::{callback, enrollment, partner};

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

/// Decodes `body` as the message its element names: `find` looks the element's namespace and
/// local name up (the operation of a request, the kind of a fault detail), and the fast and the
/// strict decoder read the body as that; an element `find` does not know is
/// [`unknown_operation`].
fn decode_named<'a, K: Copy, T: PartialEq + std::fmt::Debug>(
    body: &'a BodyElement<'a>,
    namespaces: &'static [&'static str],
    limits: DecodeLimits,
    find: impl FnOnce(&[u8], &[u8]) -> Option<K>,
    fast: impl FnOnce(K, &mut fast::FastReader<'a>) -> Option<T>,
    strict: impl FnOnce(K, &mut StrictReader<'a>) -> Result<T, XmlError>,
) -> Result<T, DecodeError> {
    let key = find(&body.namespace, body.local_name).ok_or_else(|| unknown_operation(body))?;
    decode_fast_or_strict(
        body,
        namespaces,
        limits,
        |r| fast(key, r),
        |r| strict(key, r),
    )
}

/// One entry point that decodes a body element as the message its name selects ([`decode_named`]):
/// `$name` returns `$c::$ty`, `$find` maps the element to the key its decoders take.
macro_rules! named_entry {
    ($(#[$doc:meta])* $name:ident: $c:ident::$ty:ident, found by $find:path) => {
        $(#[$doc])*
        pub fn $name(
            body: &BodyElement<'_>,
            limits: DecodeLimits,
        ) -> Result<$c::$ty, DecodeError> {
            let (fast, strict) = ($c::$ty::decode_fast, $c::$ty::decode);
            decode_named(body, $c::NAMESPACES, limits, $find, fast, strict)
        }
    };
}

/// The typed entry points of one contract, `$c` its generated module (`partner`, `callback`,
/// `enrollment`): every contract has the same four — a request (its operation looked up from
/// the body element), the response to an operation, a fault detail, the credential header block — and
/// decode them the same way, through the module's `Operation`, `Request`, `Response`,
/// `FaultKind`, `FaultDetail` and auth header decoders; an anonymous contract (enrollment) has
/// no credential header and leaves `auth` out. The invocation names each function and gives its
/// doc.
macro_rules! entry_points {
    (
        $c:ident;
        $(#[$request_doc:meta])* request: $request:ident;
        $(#[$response_doc:meta])* response: $response:ident;
        $(#[$fault_doc:meta])* fault: $fault:ident;
        $(#[$auth_doc:meta])* auth: $auth:ident;
    ) => {
        entry_points! {
            $c;
            $(#[$request_doc])* request: $request;
            $(#[$response_doc])* response: $response;
            $(#[$fault_doc])* fault: $fault;
        }

        $(#[$auth_doc])*
        pub fn $auth(
            element: &BodyElement<'_>,
            limits: DecodeLimits,
        ) -> Result<$c::AuthHeader, DecodeError> {
            decode_fast_or_strict(
                element,
                $c::NAMESPACES,
                limits,
                $c::decode_auth_header_fast,
                $c::decode_auth_header,
            )
        }
    };
    (
        $c:ident;
        $(#[$request_doc:meta])* request: $request:ident;
        $(#[$response_doc:meta])* response: $response:ident;
        $(#[$fault_doc:meta])* fault: $fault:ident;
    ) => {
        named_entry! {
            $(#[$request_doc])*
            $request: $c::Request, found by $c::Operation::from_request_element
        }

        $(#[$response_doc])*
        pub fn $response(
            op: $c::Operation,
            body: &BodyElement<'_>,
            limits: DecodeLimits,
        ) -> Result<$c::Response, DecodeError> {
            let (ns, local) = op.response_element();
            if !body.is(ns, local) {
                return Err(unknown_operation(body));
            }
            decode_fast_or_strict(
                body,
                $c::NAMESPACES,
                limits,
                |r| $c::Response::decode_fast(op, r),
                |r| $c::Response::decode(op, r),
            )
        }

        named_entry! {
            $(#[$fault_doc])*
            $fault: $c::FaultDetail, found by $c::FaultKind::from_element
        }
    };
}

entry_points! {
    partner;
    /// Decodes a partner API request body (the operation is looked up from the body element).
    request: partner_request;
    /// Decodes the upstream's response body to a partner API request of `op`.
    response: partner_response;
    /// Decodes a partner API fault detail element.
    fault: partner_fault;
    /// Decodes the partner credential header block (`PartnerAuth`).
    auth: partner_auth;
}

entry_points! {
    callback;
    /// Decodes a callback request body.
    request: callback_request;
    /// Decodes a partner BSS's response to a callback of `op`.
    response: callback_response;
    /// Decodes a callback fault detail element.
    fault: callback_fault;
    /// Decodes the callback credential header block (`CallbackAuth`).
    auth: callback_auth;
}

entry_points! {
    enrollment;
    /// Decodes an enrollment request body (anonymous: the contract has no credential header).
    request: enrollment_request;
    /// Decodes an enrollment response body of `op` (for clients and tests).
    response: enrollment_response;
    /// Decodes an enrollment fault detail element.
    fault: enrollment_fault;
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
