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

use std::borrow::Cow;

use quick_xml::events::{BytesStart, BytesText, Event};
use quick_xml::name::{Namespace, NamespaceResolver, PrefixDeclaration, ResolveResult};
use quick_xml::Reader;
use xsd_parser_types::quick_xml::{
    Error as XmlError, ErrorKind, ValidateError, XmlReader, XmlReaderSync,
};

use crate::envelope::{BodyElement, OpenEnvelope};
use crate::generated::types::{ContentModel, CONTENT_MODELS, CONTRACT_ELEMENTS, ROOT_MODELS};
pub use crate::xml::{reference_char, Binding};

/// The schema rule a message broke. The string forms are stable: they appear in
/// `InvalidRequest` faults and in statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// An element the contract does not define.
    UnknownElement,
    /// A contract element where the content model does not allow it (out of order).
    ElementOutOfOrder,
    /// A contract element inside a parent that does not allow it.
    NotAllowedHere,
    /// A single element given twice.
    DuplicateElement,
    /// More repetitions of a list element than its maxOccurs.
    MaxOccurs,
    /// A required element is missing.
    MissingElement,
    /// An element in a namespace the contract does not use there.
    WrongNamespace,
    /// An element without a namespace where the contract requires one.
    UnqualifiedElement,
    /// A prefix that was never declared.
    UndeclaredPrefix,
    /// An attribute (the contract declares none; xsi:type and xsi:nil included).
    AttributeNotAllowed,
    /// A value that is not in the enumeration.
    Enumeration,
    /// A value that does not match the type's pattern.
    Pattern,
    /// A value shorter than minLength (in characters).
    MinLength,
    /// A value longer than maxLength (in characters).
    MaxLength,
    /// A number below the minimum.
    MinInclusive,
    /// A number above the maximum.
    MaxInclusive,
    /// A value that is not of the element's type (`abc` for an integer, a bad date).
    Type,
    /// Text where the content model allows only elements.
    TextNotAllowed,
    /// Leading or trailing whitespace around a value.
    Whitespace,
    /// A character XML 1.0 does not allow.
    InvalidCharacter,
    /// Nested deeper than the decoder allows.
    Depth,
    /// A processing instruction.
    ProcessingInstruction,
    /// A DOCTYPE (and with it any entity declaration).
    Doctype,
    /// An entity reference other than the five predefined ones.
    Entity,
    /// Not well-formed XML.
    Malformed,
    /// Anything else the generated decoder refused.
    Invalid,
}

impl Rule {
    /// The stable name used in faults.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::UnknownElement => "unknown-element",
            Rule::ElementOutOfOrder => "element-out-of-order",
            Rule::NotAllowedHere => "element-not-allowed-here",
            Rule::DuplicateElement => "duplicate-element",
            Rule::MaxOccurs => "maxOccurs",
            Rule::MissingElement => "missing-element",
            Rule::WrongNamespace => "wrong-namespace",
            Rule::UnqualifiedElement => "unqualified-element",
            Rule::UndeclaredPrefix => "undeclared-prefix",
            Rule::AttributeNotAllowed => "attribute-not-allowed",
            Rule::Enumeration => "enumeration",
            Rule::Pattern => "pattern",
            Rule::MinLength => "minLength",
            Rule::MaxLength => "maxLength",
            Rule::MinInclusive => "minInclusive",
            Rule::MaxInclusive => "maxInclusive",
            Rule::Type => "type",
            Rule::TextNotAllowed => "text-not-allowed",
            Rule::Whitespace => "whitespace",
            Rule::InvalidCharacter => "invalid-character",
            Rule::Depth => "depth",
            Rule::ProcessingInstruction => "processing-instruction",
            Rule::Doctype => "doctype",
            Rule::Entity => "entity",
            Rule::Malformed => "malformed",
            Rule::Invalid => "invalid",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a body did not decode: where, which rule, and a short human explanation. The detail never
/// quotes more than a bounded prefix of the offending value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {rule}: {detail}")]
pub struct DecodeError {
    /// Element path from the body element, e.g. `/CreateAccount/Contact/FirstName`.
    pub path: String,
    /// The rule that was broken.
    pub rule: Rule,
    /// A short explanation for the partner's developer.
    pub detail: String,
}

/// Bounds the decoder enforces on its own (the envelope scan bounds the document as a whole).
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// Maximum element depth below and including the body element.
    pub max_depth: usize,
    /// Allow the SOAP envelope's header attributes (`mustUnderstand`, `actor`, `role`,
    /// `encodingStyle`, `relay`) on the decoded element itself: a header block carries them,
    /// and the envelope scan has already read them.
    pub header_block: bool,
}

impl DecodeLimits {
    /// The limits for a SOAP header block.
    pub fn header_block() -> Self {
        DecodeLimits {
            header_block: true,
            ..DecodeLimits::default()
        }
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        // The deepest path in the contract is 5 elements (e.g. GetFeatureResponse/FeatureInstance/
        // Settings/DoNotDisturb/AllowList); 16 leaves room without allowing abuse.
        DecodeLimits {
            max_depth: 16,
            header_block: false,
        }
    }
}

/// Decodes `body` with `decode` (a generated `Request::decode`/`Response::decode` closure) through
/// a [`StrictReader`] and checks that the whole body element was consumed.
pub fn decode_with<'a, T>(
    body: &'a BodyElement<'a>,
    namespaces: &'static [&'static str],
    limits: DecodeLimits,
    decode: impl FnOnce(&mut StrictReader<'a>) -> Result<T, XmlError>,
) -> Result<T, DecodeError> {
    let mut reader = StrictReader::new(body, namespaces, limits);
    let result = decode(&mut reader);
    match result {
        Ok(value) => {
            // The generated code stops at the body element's end tag: it must have been read.
            reader.settle();
            if !reader.finished {
                return Err(reader.error_here(Rule::Malformed, "the body element did not end"));
            }
            Ok(value)
        }
        Err(error) => Err(reader.explain(error)),
    }
}

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

/// The quick-xml reader the generated deserializer reads from. See the module doc.
pub struct StrictReader<'a> {
    reader: Reader<&'a [u8]>,
    input: &'a [u8],
    resolver: NamespaceResolver,
    /// Declarations from the envelope, re-declared on the body element for the generated code.
    inherited: &'a [Binding<'a>],
    namespaces: &'static [&'static str],
    /// The body element's namespace: the start of the content-model walk on the error path.
    root_namespace: &'a [u8],
    limits: DecodeLimits,
    /// Open elements: byte range of the element's name and start offset of its start tag.
    stack: Vec<Open>,
    /// An element was closed: pop it before reading on (so errors raised on an end tag still
    /// see its path).
    pop_pending: bool,
    /// The event to hand out after a joined text event.
    pending: Option<Event<'a>>,
    text: Text<'a>,
    started: bool,
    finished: bool,
    violation: Option<DecodeError>,
    /// Where an unexpected child started, to tell unknown from out-of-order and duplicates.
    last_start: Option<Open>,
}

#[derive(Clone, Copy, Debug)]
struct Open {
    name: (usize, usize),
    start: usize,
    had_child: bool,
}

enum Text<'a> {
    None,
    Borrowed(Cow<'a, str>),
    Owned(String),
}

impl<'a> Text<'a> {
    fn push(&mut self, piece: &str) {
        match self {
            Text::None => *self = Text::Owned(piece.to_owned()),
            Text::Borrowed(b) => {
                let mut s = String::with_capacity(b.len() + piece.len());
                s.push_str(b);
                s.push_str(piece);
                *self = Text::Owned(s);
            }
            Text::Owned(s) => s.push_str(piece),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Text::None => "",
            Text::Borrowed(b) => b,
            Text::Owned(s) => s,
        }
    }
}

/// Whether the namespace declaration `key` (`xmlns` or `xmlns:p`) declares `prefix` (empty: the
/// default namespace).
fn declares(key: &[u8], prefix: &[u8]) -> bool {
    match key.strip_prefix(b"xmlns") {
        Some([]) => prefix.is_empty(),
        Some([b':', rest @ ..]) => !prefix.is_empty() && rest == prefix,
        _ => false,
    }
}

/// `="value"` with a raw attribute value: in quotes it cannot contain (a value taken from a
/// `'…'` attribute may hold `"` but not `'`).
fn push_raw_value(tag: &mut Vec<u8>, value: &[u8]) {
    let quote = if value.contains(&b'"') { b'\'' } else { b'"' };
    tag.push(b'=');
    tag.push(quote);
    tag.extend_from_slice(value);
    tag.push(quote);
}

/// A text piece as a string. Without a CR there are no line ends to normalize (XML 1.0 §2.11),
/// so the bytes are the text, borrowed from the input; with one, quick-xml normalizes them.
/// (`xml10_content` on every piece — whitespace between elements included — was 3 % of a
/// request: encoding dispatch and normalization for a few bytes.)
fn text_piece(t: BytesText<'_>) -> Option<Cow<'_, str>> {
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
fn leaf_text_problem(text: &str) -> Option<(Rule, String)> {
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

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `text.chars().all(is_xml_char)`, byte-wise. A `str` is valid UTF-8, so it holds no
/// surrogates; the only characters outside XML 1.0's `Char` it can hold are the C0 controls but
/// tab, LF and CR (single bytes below 0x20) and U+FFFE and U+FFFF (`EF BF BE`, `EF BF BF`).
/// The control test runs branch-free over 64-byte chunks (vectorized); the three-byte test only
/// where an `EF` byte occurs at all.
fn all_xml_chars(text: &str) -> bool {
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

/// At most this many characters of an offending value are quoted back.
const QUOTE_CHARS: usize = 40;

fn quote_value(value: &str) -> String {
    let mut out: String = value.chars().take(QUOTE_CHARS).collect();
    if value.chars().nth(QUOTE_CHARS).is_some() {
        out.push('…');
    }
    out
}

impl<'a> StrictReader<'a> {
    /// A reader over exactly the body element.
    pub fn new(
        body: &'a BodyElement<'a>,
        namespaces: &'static [&'static str],
        limits: DecodeLimits,
    ) -> Self {
        let mut reader = Reader::from_reader(body.bytes());
        let config = reader.config_mut();
        config.check_end_names = true;
        config.check_comments = true;
        let mut resolver = NamespaceResolver::default();
        for (prefix, ns) in &body.inherited {
            let decl = if prefix.is_empty() {
                PrefixDeclaration::Default
            } else {
                PrefixDeclaration::Named(prefix)
            };
            // The envelope scan already checked these declarations.
            let _ = resolver.add(decl, Namespace(ns));
        }
        StrictReader {
            reader,
            input: body.bytes(),
            resolver,
            inherited: &body.inherited,
            namespaces,
            root_namespace: &body.namespace,
            limits,
            stack: Vec::with_capacity(8),
            pop_pending: false,
            pending: None,
            text: Text::None,
            started: false,
            finished: false,
            violation: None,
            last_start: None,
        }
    }

    /// Leaves the element whose end tag was handed out last.
    fn settle(&mut self) {
        if self.pop_pending {
            self.pop_pending = false;
            self.stack.pop();
            self.resolver.pop();
            if self.stack.is_empty() {
                self.finished = true;
            }
        }
    }

    /// The element path by local names, e.g. `/CreateAccount/Contact/FirstName`.
    fn path(&self) -> String {
        let mut path = String::new();
        for open in &self.stack {
            let qname = &self.input[open.name.0..open.name.1];
            let local = match qname.iter().position(|b| *b == b':') {
                Some(i) => &qname[i + 1..],
                None => qname,
            };
            path.push('/');
            path.push_str(&String::from_utf8_lossy(local));
        }
        if path.is_empty() {
            path.push('/');
        }
        path
    }

    fn error_here(&self, rule: Rule, detail: impl Into<String>) -> DecodeError {
        DecodeError {
            path: self.path(),
            rule,
            detail: detail.into(),
        }
    }

    fn violate(&mut self, rule: Rule, detail: impl Into<String>) -> XmlError {
        let error = self.error_here(rule, detail);
        let message = error.to_string();
        self.violation = Some(error);
        XmlError::custom(Violation(message))
    }

    /// Turns the generated decoder's error into a path and a rule.
    fn explain(&self, error: XmlError) -> DecodeError {
        if let Some(v) = &self.violation {
            return v.clone();
        }
        let path = self.path();
        let (rule, detail, path) = match &error.kind {
            ErrorKind::UnexpectedEvent(Event::Start(s) | Event::Empty(s)) => {
                // The reader has already entered the unexpected element: the path ends with it.
                let (rule, detail, at_parent) = self.classify_unexpected(s);
                match at_parent {
                    Some(name) => {
                        let parent = path.rsplit_once('/').map_or("", |(p, _)| p).to_string();
                        (rule, detail, format!("{parent}/{name}"))
                    }
                    None => (rule, detail, path),
                }
            }
            ErrorKind::UnexpectedEvent(Event::Text(_) | Event::CData(_) | Event::GeneralRef(_)) => {
                (
                    Rule::TextNotAllowed,
                    "this element contains elements, not text".to_string(),
                    path,
                )
            }
            ErrorKind::UnexpectedEvent(Event::End(_))
            | ErrorKind::UnexpectedEoF
            | ErrorKind::MissingContent => match self.missing_at_end() {
                Some(name) => (
                    Rule::MissingElement,
                    format!("required element {name} is missing"),
                    format!("{path}/{name}"),
                ),
                None => (
                    Rule::MissingElement,
                    "the element ended before its required content".to_string(),
                    path,
                ),
            },
            ErrorKind::MissingElement(name) => {
                let name = name.to_string().trim_matches('"').to_string();
                (
                    Rule::MissingElement,
                    format!("required element {name} is missing"),
                    format!("{path}/{name}"),
                )
            }
            ErrorKind::DuplicateElement(name) => {
                let name = name.to_string().trim_matches('"').to_string();
                (
                    Rule::DuplicateElement,
                    format!("element {name} appears more than once"),
                    format!("{path}/{name}"),
                )
            }
            ErrorKind::InvalidValue(_, validate) => {
                let value = quote_value(&self.leaf_text());
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
                (rule, format!("value {value:?} {what}"), path)
            }
            ErrorKind::UnknownOrInvalidValue(_) => (
                Rule::Enumeration,
                format!(
                    "value {:?} is not one of the allowed values",
                    quote_value(&self.leaf_text())
                ),
                path,
            ),
            ErrorKind::Custom(_) | ErrorKind::InvalidData(_) => (
                Rule::Type,
                format!(
                    "value {:?} is not of the element's type",
                    quote_value(&self.leaf_text())
                ),
                path,
            ),
            ErrorKind::InsufficientSize { min, max, actual } => (
                Rule::MaxOccurs,
                format!(
                    "{actual} occurrences, allowed {min}..{}",
                    max.map_or("unbounded".into(), |m| m.to_string())
                ),
                path,
            ),
            ErrorKind::XmlError(e) => (Rule::Malformed, format!("not well-formed XML: {e}"), path),
            ErrorKind::InvalidUtf8(_) => {
                (Rule::InvalidCharacter, "not valid UTF-8".to_string(), path)
            }
            ErrorKind::UnexpectedAttribute(_) | ErrorKind::DuplicateAttribute(_) => (
                Rule::AttributeNotAllowed,
                "attributes are not allowed".to_string(),
                path,
            ),
            other => (Rule::Invalid, quote_detail(&other.to_string()), path),
        };
        DecodeError { path, rule, detail }
    }

    /// An element the generated code did not expect here: not in the contract at all, in the
    /// wrong namespace, not allowed in this parent, given again, out of order, or placed where a
    /// required element is missing. Returns the rule, a detail, and — when the error is about
    /// another element (the missing one) — that element's name, for the path.
    fn classify_unexpected(&self, start: &BytesStart<'_>) -> (Rule, String, Option<String>) {
        let local = start.local_name();
        let local = local.as_ref();
        let name = quote_value(&String::from_utf8_lossy(local));
        let ns = match self.resolver.resolve_element(start.name()).0 {
            ResolveResult::Bound(ns) => ns.0.to_vec(),
            _ => Vec::new(),
        };
        let declared = |ns: Option<&[u8]>| {
            CONTRACT_ELEMENTS.iter().any(|entry| {
                let (e_ns, e_local) = entry.split_once(' ').unwrap_or(("", entry));
                e_local.as_bytes() == local && ns.is_none_or(|ns| e_ns.as_bytes() == ns)
            })
        };
        if !declared(Some(&ns)) {
            if declared(None) {
                return (
                    Rule::WrongNamespace,
                    format!("element {name} is not in the namespace the contract declares for it"),
                    None,
                );
            }
            return (
                Rule::UnknownElement,
                format!("element {name} is not part of the contract"),
                None,
            );
        }
        let depth = self.stack.len().saturating_sub(1);
        let (Some(model), Some(child)) = (self.model_at(depth), self.last_start) else {
            return (
                Rule::ElementOutOfOrder,
                format!("element {name} is not allowed at this position"),
                None,
            );
        };
        let parent = self
            .stack
            .len()
            .checked_sub(2)
            .and_then(|i| self.stack.get(i))
            .copied();
        let siblings = parent
            .map(|p| self.children_of(p, child.start))
            .unwrap_or_default();
        let count = |n: &str| siblings.iter().filter(|s| s.as_str() == n).count();
        let Some(index) = model
            .children
            .iter()
            .position(|c| c.name.as_bytes() == local)
        else {
            return (
                Rule::NotAllowedHere,
                format!("element {name} is not allowed inside this element"),
                None,
            );
        };
        let this = &model.children[index];
        if model.choice {
            return if siblings.is_empty() {
                (
                    Rule::ElementOutOfOrder,
                    format!("element {name} is not allowed at this position"),
                    None,
                )
            } else {
                (
                    Rule::DuplicateElement,
                    "only one of the alternatives may be given".to_string(),
                    None,
                )
            };
        }
        let seen = count(this.name);
        if seen >= this.max as usize {
            return if this.max == 1 {
                (
                    Rule::DuplicateElement,
                    format!("element {name} appears more than once"),
                    None,
                )
            } else {
                (
                    Rule::MaxOccurs,
                    format!("element {name} may appear at most {} times", this.max),
                    None,
                )
            };
        }
        let last = siblings
            .iter()
            .filter_map(|s| model.children.iter().position(|c| c.name == s.as_str()))
            .max();
        if let Some(last) = last {
            if index < last {
                let after = model.children[last].name;
                return (
                    Rule::ElementOutOfOrder,
                    format!("element {name} must come before {after}"),
                    None,
                );
            }
        }
        let from = last.map_or(0, |l| l);
        let missing = model.children[from..index]
            .iter()
            .find(|c| (count(c.name) as u32) < c.min)
            .map(|c| c.name);
        match missing {
            Some(missing) => (
                Rule::MissingElement,
                format!("required element {missing} is missing before {name}"),
                Some(missing.to_string()),
            ),
            None => (
                Rule::ElementOutOfOrder,
                format!("element {name} is not allowed at this position"),
                None,
            ),
        }
    }

    /// The text of the leaf element on top of the stack, as the generated code saw it (cold path:
    /// re-reads the element).
    fn leaf_text(&self) -> String {
        let Some(top) = self.stack.last() else {
            return String::new();
        };
        let Some(slice) = self.input.get(top.start..) else {
            return String::new();
        };
        let mut reader = Reader::from_reader(slice);
        let mut text = String::new();
        let mut depth = 0usize;
        while let Ok(event) = reader.read_event() {
            match event {
                Event::Start(_) => depth += 1,
                Event::End(_) | Event::Empty(_) | Event::Eof => {
                    if depth <= 1 {
                        break;
                    }
                    depth -= 1;
                }
                Event::Text(t) if depth == 1 => text.push_str(&String::from_utf8_lossy(&t)),
                Event::CData(c) if depth == 1 => text.push_str(&String::from_utf8_lossy(&c)),
                Event::GeneralRef(r) if depth == 1 => {
                    if let Some(c) = reference_char(&r) {
                        text.push(c);
                    }
                }
                _ => {}
            }
            if text.len() > 4 * QUOTE_CHARS {
                break;
            }
        }
        text
    }

    /// The required child that is missing when the element on top of the stack ends early.
    fn missing_at_end(&self) -> Option<&'static str> {
        let top = *self.stack.last()?;
        let model = self.model_at(self.stack.len())?;
        let end = self.reader.buffer_position() as usize;
        let children = self.children_of(top, end);
        if model.choice {
            return None;
        }
        model
            .children
            .iter()
            .find(|c| (children.iter().filter(|s| s.as_str() == c.name).count() as u32) < c.min)
            .map(|c| c.name)
    }

    /// The content model of the element at `depth` (1 = the body element), walking the schema
    /// from the body element down the open elements' names.
    fn model_at(&self, depth: usize) -> Option<&'static ContentModel> {
        let find_model = |key: &str| {
            CONTENT_MODELS
                .binary_search_by(|(k, _)| (*k).cmp(key))
                .ok()
                .map(|i| &CONTENT_MODELS[i].1)
        };
        let root = self.stack.first()?;
        let root_key = format!(
            "{} {}",
            String::from_utf8_lossy(self.root_namespace),
            String::from_utf8_lossy(self.local_of(root))
        );
        let i = ROOT_MODELS
            .binary_search_by(|(k, _)| (*k).cmp(root_key.as_str()))
            .ok()?;
        let mut model = find_model(ROOT_MODELS[i].1)?;
        for open in self.stack.iter().take(depth).skip(1) {
            let local = self.local_of(open);
            let child = model.children.iter().find(|c| c.name.as_bytes() == local)?;
            model = find_model(child.model?)?;
        }
        Some(model)
    }

    fn local_of(&self, open: &Open) -> &[u8] {
        let qname = &self.input[open.name.0..open.name.1];
        match qname.iter().position(|b| *b == b':') {
            Some(i) => &qname[i + 1..],
            None => qname,
        }
    }

    /// Local names of the children of `parent` that start before `until` (cold path: re-reads
    /// the parent's content).
    fn children_of(&self, parent: Open, until: usize) -> Vec<String> {
        let mut out = Vec::new();
        let Some(slice) = self.input.get(parent.start..until) else {
            return out;
        };
        let mut reader = Reader::from_reader(slice);
        let mut depth = 0usize;
        while let Ok(event) = reader.read_event() {
            match event {
                Event::Start(s) => {
                    if depth == 1 {
                        out.push(String::from_utf8_lossy(s.local_name().as_ref()).into_owned());
                    }
                    depth += 1;
                }
                Event::Empty(s) if depth == 1 => {
                    out.push(String::from_utf8_lossy(s.local_name().as_ref()).into_owned());
                }
                Event::End(_) => depth = depth.saturating_sub(1),
                Event::Eof => break,
                _ => {}
            }
        }
        out
    }

    /// Checks a start tag: namespace, attributes, depth. Returns the event to hand out (the body
    /// element gets the envelope's namespace declarations added).
    fn open(&mut self, start: BytesStart<'a>, empty: bool) -> Result<Event<'a>, XmlError> {
        let tag_start = self.reader.buffer_position() as usize;
        // Position of the name inside the input: the tag ends at buffer_position; the name is
        // the first bytes of the tag content.
        let raw = start.name().as_ref().len();
        let tag_len = start.len() + if empty { 3 } else { 2 };
        let start_offset = tag_start.saturating_sub(tag_len);
        let name = (start_offset + 1, start_offset + 1 + raw);
        if let Some(parent) = self.stack.last_mut() {
            parent.had_child = true;
        }
        let open = Open {
            name,
            start: start_offset,
            had_child: false,
        };
        self.stack.push(open);
        self.last_start = Some(open);
        if self.stack.len() > self.limits.max_depth {
            return Err(self.violate(
                Rule::Depth,
                format!("nested deeper than {} elements", self.limits.max_depth),
            ));
        }
        if let Err(e) = self.resolver.push(&start) {
            return Err(self.violate(Rule::Malformed, format!("bad namespace declaration: {e}")));
        }
        for attr in start.attributes().with_checks(true) {
            let attr = match attr {
                Ok(a) => a,
                Err(e) => return Err(self.violate(Rule::Malformed, format!("bad attribute: {e}"))),
            };
            let soap_header_attribute = self.limits.header_block
                && self.stack.len() == 1
                && {
                    let (res, local) = self.resolver.resolve_attribute(attr.key);
                    matches!(res, ResolveResult::Bound(ns) if ns.0 == crate::envelope::SOAP11_NS.as_bytes() || ns.0 == crate::envelope::SOAP12_NS.as_bytes())
                        && matches!(
                            local.as_ref(),
                            b"mustUnderstand" | b"actor" | b"role" | b"encodingStyle" | b"relay"
                        )
                };
            if attr.key.as_namespace_binding().is_none() && !soap_header_attribute {
                let key = quote_value(&String::from_utf8_lossy(attr.key.as_ref()));
                return Err(self.violate(
                    Rule::AttributeNotAllowed,
                    format!("attribute {key} is not allowed (the contract declares no attributes)"),
                ));
            }
        }
        match self.resolver.resolve_element(start.name()).0 {
            ResolveResult::Bound(ns) => {
                let ns = ns.0;
                if !self.namespaces.iter().any(|n| n.as_bytes() == ns) {
                    let ns = quote_value(&String::from_utf8_lossy(ns));
                    return Err(self.violate(
                        Rule::WrongNamespace,
                        format!("namespace {ns} is not used by this contract"),
                    ));
                }
            }
            ResolveResult::Unbound => {
                return Err(self.violate(
                    Rule::UnqualifiedElement,
                    "element has no namespace; the contract's elements are qualified",
                ));
            }
            ResolveResult::Unknown(prefix) => {
                let prefix = quote_value(&String::from_utf8_lossy(&prefix));
                return Err(self.violate(
                    Rule::UndeclaredPrefix,
                    format!("prefix {prefix} is not declared"),
                ));
            }
        }
        let event = if !self.started && (!self.inherited.is_empty() || self.limits.header_block) {
            // Re-declare the envelope's bindings on the body element so that the generated
            // code's own namespace resolver sees them (declarations on the element win), and
            // leave out the SOAP header attributes of a header block (only namespace
            // declarations remain: everything else was refused above).
            // The start tag is written into one buffer sized up front, values as they stand in
            // the input (raw: quick-xml's resolvers compare raw values, so escaping them again
            // would change the namespace the generated code sees).
            let qname = start.name();
            let own: Vec<_> = start
                .attributes()
                .flatten()
                .filter(|a| a.key.as_namespace_binding().is_some())
                .collect();
            let size = qname.as_ref().len()
                + self
                    .inherited
                    .iter()
                    .map(|(p, ns)| p.len() + ns.len() + 10)
                    .sum::<usize>()
                + own
                    .iter()
                    .map(|a| a.key.as_ref().len() + a.value.len() + 4)
                    .sum::<usize>();
            let mut tag = Vec::with_capacity(size);
            tag.extend_from_slice(qname.as_ref());
            for (prefix, ns) in self.inherited {
                if !own.iter().any(|a| declares(a.key.as_ref(), prefix)) {
                    tag.extend_from_slice(b" xmlns");
                    if !prefix.is_empty() {
                        tag.push(b':');
                        tag.extend_from_slice(prefix);
                    }
                    push_raw_value(&mut tag, ns);
                }
            }
            for attr in &own {
                tag.push(b' ');
                tag.extend_from_slice(attr.key.as_ref());
                push_raw_value(&mut tag, &attr.value);
            }
            let name_len = qname.as_ref().len();
            let Ok(tag) = String::from_utf8(tag) else {
                return Err(self.violate(Rule::InvalidCharacter, "not valid UTF-8"));
            };
            let owned = BytesStart::from_content(tag, name_len);
            if empty {
                Event::Empty(owned)
            } else {
                Event::Start(owned)
            }
        } else if empty {
            Event::Empty(start)
        } else {
            Event::Start(start)
        };
        self.started = true;
        Ok(event)
    }

    /// Leaf text that is about to be handed out: whitespace and character checks.
    fn check_leaf_text(&mut self) -> Result<(), XmlError> {
        match leaf_text_problem(self.text.as_str()) {
            Some((rule, detail)) => Err(self.violate(rule, detail)),
            None => Ok(()),
        }
    }

    fn next_event(&mut self) -> Result<Event<'a>, XmlError> {
        if let Some(event) = self.pending.take() {
            return Ok(event);
        }
        self.settle();
        if self.finished {
            return Ok(Event::Eof);
        }
        loop {
            let event = match self.reader.read_event() {
                Ok(e) => e,
                Err(e) => {
                    return Err(self.violate(Rule::Malformed, format!("not well-formed XML: {e}")))
                }
            };
            match event {
                Event::Start(s) | Event::Empty(s) if !self.text_is_blank() => {
                    let _ = s;
                    return Err(self.violate(
                        Rule::TextNotAllowed,
                        "text beside child elements is not allowed",
                    ));
                }
                Event::Start(s) => {
                    self.text = Text::None;
                    return self.open(s, false);
                }
                Event::Empty(s) => {
                    self.text = Text::None;
                    let event = self.open(s, true)?;
                    self.pop_pending = true;
                    return Ok(event);
                }
                Event::End(e) => {
                    self.pop_pending = true;
                    let had_child = self.stack.last().is_some_and(|o| o.had_child);
                    let text = std::mem::replace(&mut self.text, Text::None);
                    if had_child {
                        if !text_blank(text.as_str()) {
                            self.text = text;
                            return Err(self.violate(
                                Rule::TextNotAllowed,
                                "text beside child elements is not allowed",
                            ));
                        }
                        return Ok(Event::End(e));
                    }
                    if matches!(text, Text::None) {
                        return Ok(Event::End(e));
                    }
                    self.text = text;
                    self.check_leaf_text()?;
                    let text = std::mem::replace(&mut self.text, Text::None);
                    self.pending = Some(Event::End(e));
                    return Ok(match text {
                        Text::Borrowed(Cow::Borrowed(s)) => Event::Text(BytesText::from_escaped(s)),
                        Text::Borrowed(Cow::Owned(s)) | Text::Owned(s) => {
                            Event::Text(BytesText::new(&s).into_owned())
                        }
                        Text::None => return Ok(self.pending.take().unwrap_or(Event::Eof)),
                    });
                }
                Event::Text(t) => {
                    let Some(piece) = text_piece(t) else {
                        return Err(self.violate(Rule::InvalidCharacter, "not valid UTF-8"));
                    };
                    match &mut self.text {
                        Text::None if memchr::memchr2(b'&', b'<', piece.as_bytes()).is_none() => {
                            self.text = Text::Borrowed(piece)
                        }
                        text => text.push(&piece),
                    }
                }
                Event::CData(c) => {
                    let piece = match c.decode() {
                        Ok(p) => p,
                        Err(_) => {
                            return Err(self.violate(Rule::InvalidCharacter, "not valid UTF-8"))
                        }
                    };
                    self.text.push(&piece);
                }
                Event::GeneralRef(r) => {
                    let resolved = match reference_char(&r) {
                        Some(c) if is_xml_char(c) => c,
                        Some(c) => {
                            let code = u32::from(c);
                            return Err(self.violate(
                                Rule::InvalidCharacter,
                                format!("character reference U+{code:04X} is not allowed in XML"),
                            ));
                        }
                        None if r.is_char_ref() => {
                            return Err(self.violate(Rule::Entity, "invalid character reference"))
                        }
                        None => {
                            let name = quote_value(&String::from_utf8_lossy(&r));
                            return Err(self
                                .violate(Rule::Entity, format!("entity &{name}; is not defined")));
                        }
                    };
                    let mut buf = [0u8; 4];
                    self.text.push(resolved.encode_utf8(&mut buf));
                }
                Event::Comment(_) => {}
                Event::PI(_) | Event::Decl(_) => {
                    return Err(self.violate(
                        Rule::ProcessingInstruction,
                        "processing instructions are not allowed",
                    ));
                }
                Event::DocType(_) => {
                    return Err(self.violate(Rule::Doctype, "DOCTYPE is not allowed"))
                }
                Event::Eof => {
                    return Err(self.violate(
                        Rule::Malformed,
                        "the document ended inside the body element",
                    ))
                }
            }
        }
    }

    fn text_is_blank(&self) -> bool {
        text_blank(self.text.as_str())
    }
}

fn text_blank(s: impl AsRef<[u8]>) -> bool {
    // XML's four whitespace characters are ASCII: no byte of another character matches them.
    s.as_ref()
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

fn quote_detail(s: &str) -> String {
    let mut out: String = s.chars().take(200).collect();
    if s.chars().nth(200).is_some() {
        out.push('…');
    }
    out
}

/// A rule the strict reader enforced; carried through the generated code as a custom error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Violation(String);

impl XmlReader for StrictReader<'_> {
    fn extend_error(&self, error: XmlError) -> XmlError {
        error
    }
}

impl<'a> XmlReaderSync<'a> for StrictReader<'a> {
    fn read_event(&mut self) -> Result<Event<'a>, XmlError> {
        if self.violation.is_some() {
            return Err(XmlError::custom(Violation("already refused".into())));
        }
        self.next_event()
    }
}

// === the contract's entry points ===

use crate::generated::{callback, partner};

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

pub mod fast;

#[cfg(test)]
mod tests;
