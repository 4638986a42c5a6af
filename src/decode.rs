//! Stage: strict typed decode. Takes the body element found by the envelope scan
//! ([`crate::envelope::BodyElement`]) and returns the generated request/response value, or a
//! [`DecodeError`] that names the element path and the schema rule it broke.
//!
//! xsd-parser's generated deserializer enforces element order, required and duplicated elements,
//! enumerations and facets, but lets some things through (measured in
//! `../shared/notes/rust-spike.md`). [`StrictReader`] sits between quick-xml and the generated
//! code and closes those gaps before the generated code sees an event:
//! - every element must be qualified, in one of the contract's namespaces;
//! - no attributes at all besides namespace declarations (the contract declares none), so
//!   `xsi:type`, `xsi:nil` and unknown attributes on leaves are refused;
//! - leaf text must not start or end with whitespace (the generated code would silently trim it);
//!   text beside child elements (mixed content) is refused;
//! - text pieces, entity and character references and CDATA are joined into one text event, so
//!   the generated code sees one value; characters that XML 1.0 forbids are refused;
//! - processing instructions, DOCTYPE and unknown entities are refused; comments are dropped;
//! - the body element is read to its end tag and no further; nesting depth is bounded.
//!
//! The rooms, in the order data flows through them: `entry.rs` holds the contract's typed entry
//! points ([`partner_request`], [`callback_response`], …) and [`decode_fast_or_strict`], which
//! tries `fast.rs` (the generated straight-line decoders) and falls back to `strict.rs` (the
//! [`StrictReader`] under xsd-parser's generated deserializer, [`decode_with`]; its
//! `strict/explain.rs` names the path and rule of a refusal); both readers check values with
//! `text.rs`; `rules.rs` defines [`Rule`], [`DecodeError`] and [`DecodeLimits`], used by all.
//! This file only declares the rooms and re-exports their public items.

mod entry;
pub mod fast;
mod rules;
mod strict;
mod text;

pub use crate::xml::{reference_char, Binding};
pub use entry::{
    callback_auth, callback_fault, callback_request, callback_response, decode_fast_or_strict,
    enrollment_fault, enrollment_request, enrollment_response, partner_auth, partner_fault,
    partner_request, partner_response, partner_response_open, unknown_operation,
};
pub use rules::{DecodeError, DecodeLimits, Rule};
pub use strict::{decode_with, StrictReader};
pub(crate) use text::{contains_cdata_end, leaf_text_problem, quote_value, refused_value};

#[cfg(test)]
mod tests;
