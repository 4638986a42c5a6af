//! The pieces of a start tag the envelope scan and the fault parser both read: its namespace
//! declarations (borrowed from the input) and its names as slices of the input. Uses the
//! envelope's error type and `crate::xml` only.

use std::borrow::Cow;

use quick_xml::events::BytesStart;

use super::{lossy, malformed, EnvelopeError};
use crate::xml::Binding;

/// `part` as a slice of `input` when it lies inside it (a start tag read by the slice reader
/// does; its attributes are slices of the tag), so that it can outlive the tag.
pub(super) fn within<'a>(input: &'a [u8], part: &[u8]) -> Option<&'a [u8]> {
    let offset = (part.as_ptr() as usize).checked_sub(input.as_ptr() as usize)?;
    input.get(offset..offset.checked_add(part.len())?)
}

/// What [`declarations`] does with an attribute that is not a namespace declaration.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Others {
    /// Passes over it (a fault element's own attributes are none of the envelope's business).
    Skip,
    /// Refuses it: Envelope, Header and Body carry namespace declarations only.
    Refuse,
}

/// Namespace declarations of a start tag, borrowed from the input where the tag is a slice of
/// it (copied otherwise), in one pass over its attributes.
pub(super) fn declarations<'a>(
    input: &'a [u8],
    start: &BytesStart<'a>,
    into: &mut Vec<Binding<'a>>,
    others: Others,
) -> Result<(), EnvelopeError> {
    for attr in start.attributes().with_checks(true) {
        let attr = attr.map_err(malformed)?;
        let key = attr.key.as_ref();
        let prefix: &[u8] = if key == b"xmlns" {
            b""
        } else if let Some(p) = key.strip_prefix(b"xmlns:") {
            p
        } else if others == Others::Refuse {
            return Err(EnvelopeError::AttributeNotAllowed(lossy(key)));
        } else {
            continue;
        };
        let prefix: Cow<'a, [u8]> = match within(input, prefix) {
            _ if prefix.is_empty() => Cow::Borrowed(b""),
            Some(p) => Cow::Borrowed(p),
            None => Cow::Owned(prefix.to_vec()),
        };
        let value: Cow<'a, [u8]> = match within(input, &attr.value) {
            Some(v) => Cow::Borrowed(v),
            None => Cow::Owned(attr.value.into_owned()),
        };
        into.retain(|(p, _)| p.as_ref() != prefix.as_ref());
        into.push((prefix, value));
    }
    Ok(())
}

/// The local name of a start tag as a slice of the input (the tag has just been read).
pub(super) fn local_name_slice<'a>(
    input: &'a [u8],
    start: &BytesStart<'_>,
    end: usize,
    empty: bool,
) -> &'a [u8] {
    let qname = qname_slice(input, start, end, empty);
    match qname.iter().position(|b| *b == b':') {
        Some(i) => &qname[i + 1..],
        None => qname,
    }
}

/// The qualified name of a start tag as a slice of the input (the tag has just been read).
pub(super) fn qname_slice<'a>(
    input: &'a [u8],
    start: &BytesStart<'_>,
    end: usize,
    empty: bool,
) -> &'a [u8] {
    let tag_len = start.len() + if empty { 3 } else { 2 };
    let begin = end.saturating_sub(tag_len) + 1;
    let name_len = start.name().as_ref().len();
    input.get(begin..begin + name_len).unwrap_or_default()
}
