//! Stage: the JSON codec of the REST face. Decodes a JSON request into the same generated,
//! validated types the SOAP face decodes into, and encodes responses and fault details as JSON.
//! Uses `crate::decode` (its rules, errors, limits and value checks) and `crate::generated`
//! (the types and their generated [`JsonDecode`]/[`JsonEncode`] impls, from `codegen/json.rs`).
//!
//! # The mapping
//! - A document is an object holding the members of the body element's content model (the
//!   element itself is not a member): CreateAccount's body is `{"RequestId": …, "Customer…": …}`.
//!   Member names are the local element names. Members may come in any order; the encoder writes
//!   them in content-model order.
//! - A child with maxOccurs > 1 is always an array (also with one item). `[]` for a list with
//!   minOccurs 0 is the same as leaving it out; the encoder leaves out empty lists and absent
//!   optional members. More items than maxOccurs: `Rule::MaxOccurs` at the first item too
//!   many (`/List/3`); fewer than minOccurs: `Rule::MissingElement` at the member (`/List`).
//! - `null` is never accepted (`Rule::Type`): leave an optional member out.
//! - A choice is an object with exactly one member, one of the choice's children. A second
//!   alternative: `Rule::NotAllowedHere` at it; the same one twice:
//!   `Rule::DuplicateElement`; none: `Rule::MissingElement` at the object.
//! - Values: `xs:boolean` (and types restricted from it) as `true`/`false`; the integer types
//!   (`xs:int`, `xs:unsignedInt`, … and types restricted from them) as a JSON number without
//!   fraction or exponent; everything else (strings, enumerations, `xs:dateTime`, decimals …)
//!   as a JSON string holding the XSD lexical form. Every value passes the XML decoder's own
//!   checks (XML 1.0 characters: `Rule::InvalidCharacter`; no leading or trailing whitespace:
//!   `Rule::Whitespace`) and the type's generated constructor (facets, enumerations, lexical
//!   form: the same rules as the SOAP face), so both faces accept the same values.
//!
//! # Errors
//! A [`DecodeError`] with the JSON Pointer (RFC 6901) of the offending value from the document
//! root (`/Contact/Email`, `/Contacts/0/Email`; `~` and `/` in names escaped) and the same
//! [`Rule`](crate::decode::Rule)s as the XML decoder. The first error in document order is reported. Exactly:
//! - not UTF-8: `Rule::Malformed` at the root (path `""`; the body is checked as UTF-8 first);
//! - not well-formed JSON, more data after the document, a raw control character in a string,
//!   a bad escape: `Rule::Malformed` at the value being read;
//! - a `\u` escape that is a lone surrogate: `Rule::InvalidCharacter`;
//! - a string longer than [`MAX_STRING_CHARS`] characters: `Rule::MaxLength` (before facets);
//! - a member the object does not have: `Rule::UnknownElement` at `/…/name` (names are
//!   compared after unescaping: `"Na\u006de"` is `"Name"`);
//! - a member given twice (also once in the URL and once in the body):
//!   `Rule::DuplicateElement`;
//! - a required member missing: `Rule::MissingElement` at `/…/name`;
//! - a value of the wrong JSON type (`null` included): `Rule::Type`;
//! - objects and arrays nested deeper than [`DecodeLimits::max_depth`] (the document's object
//!   is level 1, each object or array inside it one more): `Rule::Depth` at the one too deep.
//!
//! # Members from the URL
//! [`decode_partner_request`] takes top-level members the route reads from the URL path or
//! query (e.g. GetAccount's `AccountNumber`) as text in the lexical form, typed by the member's
//! schema type (an integer member parses from the text). They are read before the body's; a
//! member in both: `Rule::DuplicateElement`. Only leaf members can come from the URL (an
//! object or array member: `Rule::Type`). An empty body is the empty object.
//!
//! The rooms: `reader.rs` (the strict pull reader the generated decoders drive), `writer.rs`
//! (the writer the generated encoders drive); this file the traits and the entry points.

mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use reader::{JsonReader, Members, MAX_STRING_CHARS};
pub use writer::{JsonEncodeError, JsonWriter};

use crate::decode::{DecodeError, DecodeLimits};
use crate::generated::partner;

/// A type with a generated JSON decoder (the type of every content model).
pub trait JsonDecode: Sized {
    /// Reads an object of this type at the reader's position; `url` holds members given as
    /// text (only the document root has any).
    fn json_object<'b>(
        r: &mut JsonReader<'b>,
        url: &[(&'b str, &'b str)],
    ) -> Result<Self, DecodeError>;
}

/// A type with a generated JSON encoder (the type of every content model).
pub trait JsonEncode {
    /// Writes the value as a JSON object.
    fn json(&self, w: &mut JsonWriter<'_>) -> Result<(), JsonEncodeError>;
}

/// Decodes the JSON request of `op`: `body` (empty: `{}`) plus the members the route takes from
/// the URL (`url_members`, as (name, lexical text)).
pub fn decode_partner_request<'b>(
    op: partner::Operation,
    body: &'b [u8],
    url_members: &[(&'b str, &'b str)],
    limits: &DecodeLimits,
) -> Result<partner::Request, DecodeError> {
    whole(body, limits, |r| {
        partner::Request::decode_json(op, r, url_members)
    })
}

/// Decodes the JSON form of `op`'s response (the inverse of [`encode_partner_response`]: for
/// tests, the fuzz target and clients written in Rust).
pub fn decode_partner_response(
    op: partner::Operation,
    body: &[u8],
    limits: &DecodeLimits,
) -> Result<partner::Response, DecodeError> {
    whole(body, limits, |r| partner::Response::decode_json(op, r, &[]))
}

/// Decodes the JSON form of a fault detail of `kind` (the inverse of [`encode_partner_fault`]).
pub fn decode_partner_fault(
    kind: partner::FaultKind,
    body: &[u8],
    limits: &DecodeLimits,
) -> Result<partner::FaultDetail, DecodeError> {
    whole(body, limits, |r| partner::FaultDetail::decode_json(kind, r))
}

/// Appends the JSON object of the response element's content to `out` (on error `out` is cut
/// back to where it was).
pub fn encode_partner_response(
    resp: &partner::Response,
    out: &mut Vec<u8>,
) -> Result<(), JsonEncodeError> {
    all_or_nothing(out, |w| resp.encode_json(w))
}

/// Appends the JSON object of a fault detail element's content to `out` (on error `out` is cut
/// back to where it was).
pub fn encode_partner_fault(
    detail: &partner::FaultDetail,
    out: &mut Vec<u8>,
) -> Result<(), JsonEncodeError> {
    all_or_nothing(out, |w| detail.encode_json(w))
}

/// Appends the JSON object of a request's content (the inverse of [`decode_partner_request`]:
/// for tests, the fuzz target and the golden files).
pub fn encode_partner_request(
    req: &partner::Request,
    out: &mut Vec<u8>,
) -> Result<(), JsonEncodeError> {
    all_or_nothing(out, |w| req.encode_json(w))
}

/// `body` read as one document by `read`: nothing but whitespace may follow.
fn whole<'b, T>(
    body: &'b [u8],
    limits: &DecodeLimits,
    read: impl FnOnce(&mut JsonReader<'b>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let mut r = JsonReader::new(body, limits)?;
    let value = read(&mut r)?;
    r.finish()?;
    Ok(value)
}

/// Runs `write` over `out`, cutting `out` back to where it was if it fails.
fn all_or_nothing(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut JsonWriter<'_>) -> Result<(), JsonEncodeError>,
) -> Result<(), JsonEncodeError> {
    let start = out.len();
    let result = write(&mut JsonWriter::new(out));
    if result.is_err() {
        out.truncate(start);
    }
    result
}
