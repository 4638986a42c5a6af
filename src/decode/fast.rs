//! The fast path of the strict decode.
//!
//! build.rs generates, for every content model of the contract, an implementation of
//! [`FastDecode`]: straight-line code that reads the model's children in schema order from a
//! [`FastReader`] and builds xsd-parser's type directly, calling the same `DeserializeBytes`
//! (facets, enumerations, patterns) as xsd-parser's own deserializer does for every leaf. It
//! replaces, for well-formed ordinary messages, the generic deserializer chain of
//! xsd-parser-types driven through [`super::StrictReader`] (three quarters of a request's
//! instructions: see bench/README.md).
//!
//! The fast path never decides that a message is invalid. It returns `None` at the first thing it
//! does not expect — an unknown, missing, repeated or misplaced element, any attribute that is not
//! a namespace declaration, a comment, CDATA, a processing instruction, text beside elements, a
//! carriage return in a value (line-end normalization), a value the type refuses — and the
//! caller then runs the strict decoder on the same bytes, which either decodes it (the unusual
//! but valid cases above) or names the error exactly as before. So the errors partners see are
//! unchanged, and the fast path only has to be right about what it accepts: in debug builds
//! (the tests) and in the fuzz targets (feature `fuzzing`) every value it returns is compared
//! with the strict decoder's, and a difference panics (see [`super::decode_fast_or_strict`]).

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use xsd_parser_types::quick_xml::{DeserializeBytes, DeserializeHelper};

use super::text::{is_xml_char, leaf_text_problem, text_blank};
use crate::envelope::BodyElement;
use crate::xml::reference_char;

/// A type with a generated fast decoder.
pub trait FastDecode: Sized {
    /// Reads the content and the end tag of an element of this type, whose start tag the reader
    /// has just consumed.
    fn fast(r: &mut FastReader<'_>) -> Option<Self>;
}

/// The next start tag or end tag, looked at but not consumed.
#[derive(Clone, Copy)]
enum Next<'b> {
    Start {
        ns: &'b [u8],
        local: &'b [u8],
        empty: bool,
    },
    End,
}

/// A quick-xml reader over exactly one body element (or header block) with its own namespace
/// scope: declarations borrow the input, resolution is a walk over a handful of bindings.
pub struct FastReader<'b> {
    reader: Reader<&'b [u8]>,
    /// The element's text (validated as UTF-8 once, by the envelope scan or the limits pass):
    /// text pieces, tags and declarations are sliced from it.
    text: &'b str,
    /// In-scope declarations: (prefix, namespace, depth of the element that declared them);
    /// empty prefix = the default namespace; depth 0 = inherited from the envelope.
    bindings: Vec<(&'b [u8], &'b [u8], u32)>,
    /// Depth of the innermost consumed, open element (0 before the root).
    depth: u32,
    /// [`super::DecodeLimits::max_depth`].
    max_depth: u32,
    /// The innermost open element has no child element yet.
    childless: bool,
    next: Option<Next<'b>>,
    helper: DeserializeHelper,
    root: (&'b [u8], &'b [u8]),
}

/// Decodes `body` with a generated fast decoder, or `None` when the strict decoder must.
pub fn decode<'b, T>(
    body: &'b BodyElement<'_>,
    limits: super::DecodeLimits,
    decode: impl FnOnce(&mut FastReader<'b>) -> Option<T>,
) -> Option<T> {
    let mut r = FastReader::new(body, limits);
    let value = decode(&mut r)?;
    // The element is the whole input: nothing may follow its end tag.
    match (r.depth, r.reader.read_event()) {
        (0, Ok(Event::Eof)) => Some(value),
        _ => None,
    }
}

/// [`decode`] of an element whose bytes run on past its end tag (the body element of
/// [`crate::envelope::scan_to_body`]): the value and the offset just after its end tag, where
/// the caller checks what follows.
pub fn decode_open<'b, T>(
    body: &'b BodyElement<'_>,
    limits: super::DecodeLimits,
    decode: impl FnOnce(&mut FastReader<'b>) -> Option<T>,
) -> Option<(T, usize)> {
    let mut r = FastReader::new(body, limits);
    let value = decode(&mut r)?;
    (r.depth == 0 && r.next.is_none()).then(|| (value, r.reader.buffer_position() as usize))
}

impl<'b> FastReader<'b> {
    fn new(body: &'b BodyElement<'_>, limits: super::DecodeLimits) -> Self {
        let mut reader = Reader::from_reader(body.bytes());
        reader.config_mut().check_end_names = true;
        let mut bindings = Vec::with_capacity(body.inherited.len() + 4);
        for (prefix, ns) in &body.inherited {
            bindings.push((prefix.as_ref(), ns.as_ref(), 0));
        }
        FastReader {
            reader,
            text: body.text,
            bindings,
            depth: 0,
            max_depth: u32::try_from(limits.max_depth).unwrap_or(u32::MAX),
            childless: false,
            next: None,
            helper: DeserializeHelper::default(),
            root: (&body.namespace, body.local_name),
        }
    }

    /// Reads the root element (the one the envelope scan found) as a `T`.
    pub fn root<T: FastDecode>(&mut self) -> Option<T> {
        let (ns, local) = self.root;
        if self.depth != 0 || !self.next_is(ns, local)? {
            return None;
        }
        self.child::<T>()
    }

    /// Whether the next element is `{ns}local`; `Some(false)` also at the parent's end tag.
    /// `None`: something the fast path does not handle comes first.
    #[inline]
    pub fn next_is(&mut self, ns: &[u8], local: &[u8]) -> Option<bool> {
        let next = match self.next {
            Some(n) => n,
            None => {
                let n = self.read_next()?;
                self.next = Some(n);
                n
            }
        };
        Some(matches!(next, Next::Start { ns: n, local: l, .. } if n == ns && l == local))
    }

    /// Reads the next element, a complex type.
    pub fn child<T: FastDecode>(&mut self) -> Option<T> {
        self.enter()?;
        T::fast(self)
    }

    /// Reads the next element, a leaf, through the type's `DeserializeBytes` (its facets).
    pub fn leaf<T: DeserializeBytes>(&mut self) -> Option<T> {
        let empty = self.enter()?;
        if empty {
            self.end()?;
            return T::deserialize_bytes(&mut self.helper, b"").ok();
        }
        let mut text: Cow<'b, str> = Cow::Borrowed("");
        loop {
            match self.reader.read_event().ok()? {
                Event::Text(t) => {
                    let Cow::Borrowed(piece) = t.into_inner() else {
                        return None;
                    };
                    // A carriage return needs line-end normalization: the strict decoder's job.
                    // (memchr: SIMD; `<[u8]>::contains` is a scalar loop, 5 % of a 240 KB answer.)
                    if memchr::memchr(b'\r', piece).is_some() {
                        return None;
                    }
                    let piece = self.piece_str(piece)?;
                    if text.is_empty() {
                        text = Cow::Borrowed(piece);
                    } else {
                        text.to_mut().push_str(piece);
                    }
                }
                Event::GeneralRef(r) => {
                    let c = reference_char(&r).filter(|c| is_xml_char(*c))?;
                    text.to_mut().push(c);
                }
                Event::End(_) => break,
                _ => return None,
            }
        }
        // The strict reader's leaf checks.
        if leaf_text_problem(&text).is_some() {
            return None;
        }
        self.leave();
        T::deserialize_bytes(&mut self.helper, text.as_bytes()).ok()
    }

    /// Reads the end tag of the element being read.
    pub fn end(&mut self) -> Option<()> {
        let next = match self.next.take() {
            Some(n) => n,
            None => self.read_next()?,
        };
        match next {
            Next::End => {
                self.leave();
                Some(())
            }
            Next::Start { .. } => None,
        }
    }

    /// A slice of the input as the `str` it is part of (no second UTF-8 validation): the slice
    /// reader's text events borrow the input, and a piece starts and ends at markup (ASCII).
    fn piece_str(&self, piece: &'b [u8]) -> Option<&'b str> {
        let at = (piece.as_ptr() as usize).checked_sub(self.text.as_ptr() as usize)?;
        self.text.get(at..at.checked_add(piece.len())?)
    }

    /// Consumes the start tag looked at; whether it was an empty element.
    fn enter(&mut self) -> Option<bool> {
        let Some(Next::Start { empty, .. }) = self.next.take() else {
            return None;
        };
        self.depth += 1;
        if self.depth > self.max_depth {
            return None;
        }
        if empty {
            self.next = Some(Next::End);
        }
        self.childless = true;
        Some(empty)
    }

    /// Closes the element at the current depth: its declarations go out of scope.
    fn leave(&mut self) {
        self.next = None;
        // The parent has had this child.
        self.childless = false;
        while self.bindings.last().is_some_and(|b| b.2 >= self.depth) {
            self.bindings.pop();
        }
        self.depth = self.depth.saturating_sub(1);
    }

    /// The next start or end tag, skipping whitespace between elements.
    /// Whitespace is skipped only beside child elements: the strict decoder reads text in an
    /// element without children as a value, and refuses whitespace there (found by the
    /// `decode` fuzz target's fast/strict comparison: `<acc:Settings> </acc:Settings>`).
    fn read_next(&mut self) -> Option<Next<'b>> {
        let mut blank_text = false;
        loop {
            match self.reader.read_event().ok()? {
                Event::Text(t) => {
                    if !text_blank(&*t) {
                        return None;
                    }
                    blank_text |= !t.is_empty();
                }
                Event::Start(s) => {
                    self.childless = false;
                    return self.start_tag(&s, false);
                }
                Event::Empty(s) => {
                    self.childless = false;
                    return self.start_tag(&s, true);
                }
                Event::End(_) if blank_text && self.childless => return None,
                Event::End(_) => return Some(Next::End),
                _ => return None,
            }
        }
    }

    /// A start tag: its namespace declarations enter the scope of the depth it will have once
    /// consumed; any other attribute leaves the message to the strict decoder.
    fn start_tag(&mut self, start: &BytesStart<'_>, empty: bool) -> Option<Next<'b>> {
        // The tag as a slice of the input (so that names and declarations borrow the input):
        // it ends before `>` (or `/>`) at the reader's position.
        let end =
            (self.reader.buffer_position() as usize).checked_sub(if empty { 2 } else { 1 })?;
        let tag_start = end.checked_sub(start.len())?;
        let tag: &'b [u8] = self.text.as_bytes().get(tag_start..end)?;
        if tag != &start[..] {
            return None;
        }
        let name_len = start.name().as_ref().len();
        let depth = self.depth + 1;
        if tag.len() > name_len {
            let attributes =
                quick_xml::events::attributes::Attributes::new(self.piece_str(tag)?, name_len);
            for attr in attributes {
                let attr = attr.ok()?;
                let Cow::Borrowed(value) = attr.value else {
                    return None;
                };
                let key: &'b [u8] = attr.key.into_inner();
                let prefix: &'b [u8] = match key {
                    b"xmlns" => b"",
                    [b'x', b'm', b'l', b'n', b's', b':', prefix @ ..] => prefix,
                    _ => return None,
                };
                // Reserved prefixes, undeclarations and escaped URIs: the strict decoder's job.
                if value.is_empty()
                    || value.contains(&b'&')
                    || prefix.len() >= 3 && prefix[..3].eq_ignore_ascii_case(b"xml")
                {
                    return None;
                }
                self.bindings.push((prefix, value, depth));
            }
        }
        let name = &tag[..name_len];
        let (prefix, local): (&[u8], &'b [u8]) = match memchr::memchr(b':', name) {
            Some(i) => (&name[..i], &name[i + 1..]),
            None => (b"", name),
        };
        let ns = self
            .bindings
            .iter()
            .rev()
            .find(|b| b.0 == prefix)
            .map(|b| b.1)?;
        Some(Next::Start { ns, local, empty })
    }
}

#[cfg(test)]
mod tests;
