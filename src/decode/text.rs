//! The checks every leaf value passes, in the strict reader and in the fast path alike (XML 1.0
//! characters, no surrounding whitespace, no `]]>`), the text pieces quick-xml hands out read as
//! strings, and the bounded quoting of an offending value in an error's detail. Uses `rules.rs`
//! only.

use std::borrow::Cow;

use quick_xml::events::BytesText;
use xsd_parser_types::quick_xml::{ErrorKind, ValidateError};

use super::rules::Rule;

/// A text piece as a string. Without a CR there are no line ends to normalize (XML 1.0 §2.11),
/// so the bytes are the text, borrowed from the input; with one, quick-xml normalizes them.
/// (`xml10_content` on every piece — whitespace between elements included — was 3 % of a
/// request: encoding dispatch and normalization for a few bytes.)
pub(super) fn text_piece(t: BytesText<'_>) -> Option<Cow<'_, str>> {
    if memchr::memchr(b'\r', &t).is_some() {
        return t.xml10_content().ok();
    }
    match t.into_inner() {
        Cow::Borrowed(b) => std::str::from_utf8(b).ok().map(Cow::Borrowed),
        Cow::Owned(v) => String::from_utf8(v).ok().map(Cow::Owned),
    }
}

/// `text.contains("]]>")`: `>` is rare in values, so a SIMD search for it (memchr) and a look
/// at the two bytes before each one replaces a substring search over every value.
pub(crate) fn contains_cdata_end(text: &str) -> bool {
    let b = text.as_bytes();
    // Most values are short: a plain loop costs less than setting up the SIMD search.
    if b.len() < 64 {
        return b.windows(3).any(|w| w == b"]]>");
    }
    memchr::memchr_iter(b'>', b).any(|i| i >= 2 && &b[i - 2..i] == b"]]")
}

/// What is wrong with a value's text, if anything: the checks every leaf passes, in the strict
/// reader and in the fast path alike (which gives up where this names a problem).
pub(crate) fn leaf_text_problem(text: &str) -> Option<(Rule, String)> {
    // Byte-wise first (the hot path: every value of every message); the character scan runs
    // only to name the offending character.
    if !all_xml_chars(text) {
        let code = text.chars().find(|c| !is_xml_char(*c)).map_or(0, u32::from);
        return Some((
            Rule::InvalidCharacter,
            format!("character U+{code:04X} is not allowed in XML"),
        ));
    }
    if text.starts_with(is_xml_space) || text.ends_with(is_xml_space) {
        return Some((
            Rule::Whitespace,
            "leading or trailing whitespace around a value is not allowed".into(),
        ));
    }
    // The generated serializer refuses to write `]]>` in a value (XML 1.0 §2.4 forbids it raw
    // in content), so a value holding it could not be forwarded: refuse it here, with a rule,
    // rather than fail after authentication (caught by the `roundtrip` fuzz target).
    if contains_cdata_end(text) {
        return Some((
            Rule::InvalidCharacter,
            "the sequence ]]> is not allowed in a value".into(),
        ));
    }
    None
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

pub(super) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `text.chars().all(is_xml_char)`, byte-wise. A `str` is valid UTF-8, so it holds no
/// surrogates; the only characters outside XML 1.0's `Char` it can hold are the C0 controls but
/// tab, LF and CR (single bytes below 0x20) and U+FFFE and U+FFFF (`EF BF BE`, `EF BF BF`).
/// The control test runs branch-free over 64-byte chunks (vectorized); the three-byte test only
/// where an `EF` byte occurs at all.
pub(super) fn all_xml_chars(text: &str) -> bool {
    let bytes = text.as_bytes();
    let controls_ok = bytes.chunks(64).all(|chunk| {
        chunk.iter().fold(true, |ok, &b| {
            ok & ((b >= 0x20) | (b == b'\t') | (b == b'\n') | (b == b'\r'))
        })
    });
    if !controls_ok {
        return false;
    }
    // Short values: a plain loop; long ones: memchr's SIMD search (`<[u8]>::contains` is a
    // scalar loop, 3 % of decoding a 240 KB answer).
    let has_ef = if bytes.len() < 64 {
        bytes.contains(&0xEF)
    } else {
        memchr::memchr(0xEF, bytes).is_some()
    };
    if !has_ef {
        return true;
    }
    !bytes
        .windows(3)
        .any(|w| w[0] == 0xEF && w[1] == 0xBF && (w[2] == 0xBE || w[2] == 0xBF))
}

/// The rule and detail of a value the type refused: `kind` is the error of the generated
/// `DeserializeBytes` (its facets, enumeration or lexical form), `value` the text it was given.
/// The strict XML decoder and the JSON decoder both name refusals with it.
pub(crate) fn refused_value(kind: &ErrorKind, value: &str) -> (Rule, String) {
    let value = quote_value(value);
    match kind {
        ErrorKind::InvalidValue(_, validate) => {
            let (rule, what) = match validate {
                ValidateError::Pattern(p) => {
                    (Rule::Pattern, format!("does not match the pattern {p}"))
                }
                ValidateError::MinLength(n) => {
                    (Rule::MinLength, format!("is shorter than {n} characters"))
                }
                ValidateError::MaxLength(n) => {
                    (Rule::MaxLength, format!("is longer than {n} characters"))
                }
                ValidateError::LessThan(n) | ValidateError::LessEqualThan(n) => {
                    (Rule::MinInclusive, format!("is below the minimum {n}"))
                }
                ValidateError::GraterThan(n) | ValidateError::GraterEqualThan(n) => {
                    (Rule::MaxInclusive, format!("is above the maximum {n}"))
                }
                other => (Rule::Invalid, other.to_string()),
            };
            (rule, format!("value {value:?} {what}"))
        }
        ErrorKind::UnknownOrInvalidValue(_) => (
            Rule::Enumeration,
            format!("value {value:?} is not one of the allowed values"),
        ),
        ErrorKind::Custom(_) | ErrorKind::InvalidData(_) => (
            Rule::Type,
            format!("value {value:?} is not of the element's type"),
        ),
        other => (Rule::Invalid, quote_detail(&other.to_string())),
    }
}

/// At most this many characters of an offending value are quoted back.
pub(super) const QUOTE_CHARS: usize = 40;

pub(crate) fn quote_value(value: &str) -> String {
    let mut out: String = value.chars().take(QUOTE_CHARS).collect();
    if value.chars().nth(QUOTE_CHARS).is_some() {
        out.push('…');
    }
    out
}

pub(super) fn text_blank(s: impl AsRef<[u8]>) -> bool {
    // XML's four whitespace characters are ASCII: no byte of another character matches them.
    s.as_ref()
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

pub(super) fn quote_detail(s: &str) -> String {
    let mut out: String = s.chars().take(200).collect();
    if s.chars().nth(200).is_some() {
        out.push('…');
    }
    out
}
