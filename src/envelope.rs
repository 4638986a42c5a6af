//! Stage: envelope scan. Takes the request body bytes and returns an [`Envelope`]: the SOAP
//! version, the header blocks and the one body element, each as a byte slice with the namespace
//! declarations it inherits — or an [`EnvelopeError`].
//!
//! This is a cheap streaming pass (quick-xml): it reads element names and skips over content.
//! The typed decode of the body happens later ([`crate::decode`]), after the caller is known to be
//! authentic and permitted.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{QName, ResolveResult};
use quick_xml::NsReader;

use crate::limit::Outline;
use crate::xml::Binding;

/// SOAP 1.1 envelope namespace.
pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// SOAP 1.2 envelope namespace.
pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";

/// The SOAP version of a message, from its envelope namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SoapVersion {
    /// SOAP 1.1 (`text/xml`, `SOAPAction` header).
    Soap11,
    /// SOAP 1.2 (`application/soap+xml; action=…`).
    Soap12,
}

impl SoapVersion {
    /// The envelope namespace.
    pub const fn namespace(self) -> &'static str {
        match self {
            SoapVersion::Soap11 => SOAP11_NS,
            SoapVersion::Soap12 => SOAP12_NS,
        }
    }

    /// The HTTP content type (without parameters).
    pub const fn content_type(self) -> &'static str {
        match self {
            SoapVersion::Soap11 => "text/xml",
            SoapVersion::Soap12 => "application/soap+xml",
        }
    }
}

/// One element (a header block or the body element) as it appears in the message, with the
/// namespace declarations in scope from its ancestors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyElement<'a> {
    /// Exactly the element, from `<` of its start tag to `>` of its end tag: a slice of the
    /// document, which the envelope scan (or the limits pass) has validated as UTF-8 once.
    pub text: &'a str,
    /// Declarations inherited from the envelope (prefix, namespace); empty prefix = default.
    pub inherited: Vec<Binding<'a>>,
    /// The element's namespace.
    pub namespace: Vec<u8>,
    /// The element's local name.
    pub local_name: &'a [u8],
}

impl<'a> BodyElement<'a> {
    /// [`Self::text`] as bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Whether the element is `{ns}local`.
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.namespace == ns.as_bytes() && self.local_name == local.as_bytes()
    }
}

/// A SOAP header block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderBlock<'a> {
    /// The block itself.
    pub element: BodyElement<'a>,
    /// `mustUnderstand` is set (`1`/`true`).
    pub must_understand: bool,
    /// `actor` (SOAP 1.1) or `role` (SOAP 1.2), if given.
    pub role: Option<String>,
}

/// A scanned envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// From the envelope namespace.
    pub version: SoapVersion,
    /// The header blocks, in document order.
    pub headers: Vec<HeaderBlock<'a>>,
    /// The one body element.
    pub body: BodyElement<'a>,
}

/// Why a message is not an acceptable SOAP envelope.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The bytes are not well-formed XML.
    #[error("not well-formed XML: {0}")]
    Malformed(String),
    /// An XML declaration names an encoding other than UTF-8, or the bytes are not UTF-8.
    #[error("only UTF-8 is accepted")]
    Encoding,
    /// A DOCTYPE (DTDs and entity declarations are not allowed in SOAP).
    #[error("DOCTYPE is not allowed")]
    Doctype,
    /// A processing instruction.
    #[error("processing instructions are not allowed")]
    ProcessingInstruction,
    /// The root element is not `Envelope`.
    #[error("the root element is not a SOAP Envelope")]
    NotAnEnvelope,
    /// `Envelope` in a namespace that is neither SOAP 1.1 nor SOAP 1.2.
    #[error("unsupported SOAP envelope namespace")]
    VersionMismatch,
    /// Something other than an optional Header followed by the Body.
    #[error("unexpected element {0} in the envelope")]
    UnexpectedElement(String),
    /// No Body.
    #[error("the envelope has no Body")]
    NoBody,
    /// An empty Body.
    #[error("the Body is empty")]
    EmptyBody,
    /// More than one element in the Body.
    #[error("the Body has more than one element")]
    MultipleBodyElements,
    /// A header block or body element without a namespace.
    #[error("element {0} has no namespace")]
    Unqualified(String),
    /// An attribute the envelope does not allow.
    #[error("attribute {0} is not allowed here")]
    AttributeNotAllowed(String),
    /// Text directly inside Envelope, Header or Body.
    #[error("text is not allowed directly inside {0}")]
    TextNotAllowed(&'static str),
    /// Anything but whitespace and comments after the envelope.
    #[error("content after the envelope")]
    TrailingContent,
}

fn malformed(e: impl std::fmt::Display) -> EnvelopeError {
    EnvelopeError::Malformed(e.to_string())
}

fn lossy(bytes: &[u8]) -> String {
    let mut s: String = String::from_utf8_lossy(bytes).chars().take(64).collect();
    if bytes.len() > 64 {
        s.push('…');
    }
    s
}

/// `part` as a slice of `input` when it lies inside it (a start tag read by the slice reader
/// does; its attributes are slices of the tag), so that it can outlive the tag.
fn within<'a>(input: &'a [u8], part: &[u8]) -> Option<&'a [u8]> {
    let offset = (part.as_ptr() as usize).checked_sub(input.as_ptr() as usize)?;
    input.get(offset..offset.checked_add(part.len())?)
}

/// What [`declarations`] does with an attribute that is not a namespace declaration.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Others {
    /// Passes over it (a fault element's own attributes are none of the envelope's business).
    Skip,
    /// Refuses it: Envelope, Header and Body carry namespace declarations only.
    Refuse,
}

/// Namespace declarations of a start tag, borrowed from the input where the tag is a slice of
/// it (copied otherwise), in one pass over its attributes.
fn declarations<'a>(
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

struct Scanner<'a, 's> {
    /// The document, validated as UTF-8 once: the elements are slices of it.
    text: &'a str,
    reader: NsReader<&'a [u8]>,
    /// From the limits pass: where header blocks and the body element end (see [`scan_outlined`]).
    skips: &'s [(usize, usize)],
    /// Bytes stepped over with a skip, which the reader's position does not count.
    skipped: usize,
    /// [`scan_to_body`]: stop at the body element's start tag.
    open_body: bool,
}

impl<'a> Scanner<'a, '_> {
    fn next(&mut self) -> Result<Event<'a>, EnvelopeError> {
        self.reader.read_event().map_err(malformed)
    }

    /// Namespace of an element start, in the reader's current scope.
    fn namespace(&self, name: QName<'_>) -> Option<Vec<u8>> {
        self.namespace_ref(name).map(<[u8]>::to_vec)
    }

    /// [`Self::namespace`], borrowed from the reader (no copy for a comparison).
    fn namespace_ref(&self, name: QName<'_>) -> Option<&[u8]> {
        match self.reader.resolve_element(name).0 {
            ResolveResult::Bound(ns) => Some(ns.0),
            _ => None,
        }
    }

    /// The document's bytes.
    fn input(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The offset in the document just after the last event.
    fn position(&self) -> usize {
        self.reader.buffer_position() as usize + self.skipped
    }

    /// The offset of `<` of the start tag just read.
    fn tag_begin(&self, start: &BytesStart<'_>, empty: bool) -> usize {
        self.position()
            .saturating_sub(start.len() + if empty { 3 } else { 2 })
    }

    /// The text from `begin` to `end` (element boundaries: markup, so character boundaries).
    fn slice(&self, begin: usize, end: usize) -> Result<&'a str, EnvelopeError> {
        self.text
            .get(begin..end)
            .ok_or_else(|| malformed("element bounds"))
    }

    /// Reads a child element to its end and returns its text.
    fn element(&mut self, start: &BytesStart<'a>, empty: bool) -> Result<&'a str, EnvelopeError> {
        let (begin, here) = (self.tag_begin(start, empty), self.position());
        if empty {
            return self.slice(begin, here);
        }
        let end_tag = match self.recorded_end_tag(begin, here, start.name()) {
            Some(end_tag) => end_tag,
            None => self.find_end_tag(here, start.name())?,
        };
        self.read_end_tag(here, end_tag, start.name())?;
        self.slice(begin, self.position())
    }

    /// Where the end tag of the element whose start tag (at `begin`, ending at `here`) was just
    /// read is, if the limits pass recorded it. The limits pass has read the content with the
    /// same reader configuration (well-formed, names of end tags checked, comments checked), so
    /// reading it again could not fail and would produce nothing the scan keeps.
    /// `None`: no usable record (the caller finds the end tag itself).
    fn recorded_end_tag(&mut self, begin: usize, here: usize, name: QName<'_>) -> Option<usize> {
        while self.skips.first().is_some_and(|s| s.0 < begin) {
            self.skips = &self.skips[1..];
        }
        let &(_, end_tag) = self.skips.first().filter(|s| s.0 == begin)?;
        self.skips = &self.skips[1..];
        // The reader's remaining input must be exactly the input after `here`, and the record
        // must point at this element's end tag.
        let input = self.input();
        let closes = |tail: &[u8]| {
            tail.strip_prefix(b"</")
                .and_then(|t| t.strip_prefix(name.as_ref()))
                .is_some_and(|t| matches!(t.first(), Some(b'>' | b' ' | b'\t' | b'\r' | b'\n')))
        };
        match (input.get(here..), input.get(end_tag..)) {
            (Some(tail), Some(end))
                if end_tag >= here && *self.reader.get_mut() == tail && closes(end) =>
            {
                Some(end_tag)
            }
            _ => None,
        }
    }

    /// Reads the content of the element whose start tag (named `name`, ending at `here`) was
    /// just read, with a reader of its own, and returns the offset of `<` of its end tag.
    ///
    /// Not `NsReader::read_to_end`: in quick-xml 0.38 it consumes the end tag without closing
    /// the element's namespace scope, so the element's declarations would stay in force for its
    /// siblings (`<b:X xmlns:b="…"/>` after it would resolve). The end tag is read by the
    /// namespace reader instead ([`Self::read_end_tag`]), as after a recorded skip.
    fn find_end_tag(&self, here: usize, name: QName<'_>) -> Result<usize, EnvelopeError> {
        let input = self.input();
        // From the `>` of the start tag: a fresh reader skips a byte order mark at the very
        // start of its input without counting it, which content starting with U+FEFF would be.
        let from = here
            .checked_sub(1)
            .filter(|&f| input.get(f) == Some(&b'>'))
            .ok_or_else(|| malformed("element bounds"))?;
        let mut reader = quick_xml::Reader::from_reader(&input[from..]);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.check_comments = true;
        // The element's own end tag closes nothing this reader opened; checked by name below.
        config.allow_unmatched_ends = true;
        let mut depth = 0usize;
        loop {
            let at = reader.buffer_position() as usize;
            match reader.read_event().map_err(malformed)? {
                Event::Start(_) => depth += 1,
                Event::End(e) if depth == 0 => {
                    if e.name() != name {
                        return Err(malformed(quick_xml::Error::IllFormed(
                            quick_xml::errors::IllFormedError::MismatchedEndTag {
                                expected: lossy(name.as_ref()),
                                found: lossy(e.name().as_ref()),
                            },
                        )));
                    }
                    return Ok(from + at);
                }
                Event::End(_) => depth -= 1,
                Event::Eof => {
                    return Err(malformed(format_args!(
                        "the document ended inside `{}`",
                        lossy(name.as_ref())
                    )))
                }
                _ => {}
            }
        }
    }

    /// Moves the namespace reader from `here` (just after a start tag named `name`) to its end
    /// tag at `end_tag` and reads that end tag through it: it closes the element's namespace
    /// scope and its entry in the reader's stack of open names. (The caller has checked that
    /// `end_tag` is this element's end tag; the reader is past the content then, so a surprise
    /// is an error, not a retry.)
    fn read_end_tag(
        &mut self,
        here: usize,
        end_tag: usize,
        name: QName<'_>,
    ) -> Result<(), EnvelopeError> {
        let input = self.input();
        let end = input
            .get(end_tag..)
            .filter(|_| end_tag >= here)
            .ok_or_else(|| malformed("element bounds"))?;
        *self.reader.get_mut() = end;
        self.skipped += end_tag - here;
        match self.reader.read_event().map_err(malformed)? {
            Event::End(e) if e.name() == name => Ok(()),
            _ => Err(malformed("the end tag does not close the element")),
        }
    }
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Scans a SOAP 1.1 or 1.2 envelope.
pub fn scan(input: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    scan_outlined(input, &Outline::default())
}

/// [`scan`] of a document the limits pass has accepted, with what it recorded: the scan does not
/// validate the UTF-8 again and steps over the content of header blocks and the body element
/// instead of reading it (the typed decode reads it later). The result is the same as [`scan`]'s
/// for every document the limits pass accepts (checked in debug builds and by the `envelope`
/// fuzz target); an outline taken from other bytes is ignored.
pub fn scan_outlined<'a>(
    input: &'a [u8],
    outline: &Outline<'a>,
) -> Result<Envelope<'a>, EnvelopeError> {
    let outlined = outline.skips_for(input);
    let (text, skips) = match outlined {
        Some(outlined) => outlined,
        None => (document(input)?, &[][..]),
    };
    let envelope = scan_with(text, skips, false).map(|(env, _)| env);
    // Debug builds and the fuzz targets: the same as the scan that reads everything. The message
    // never shows the envelope (a credential header holds a key).
    #[cfg(any(debug_assertions, feature = "fuzzing"))]
    if outlined.is_some() {
        let plain = scan_with(text, &[], false).map(|(env, _)| env);
        let same_bytes =
            |a: &BodyElement<'_>, b: &BodyElement<'_>| std::ptr::eq(a.bytes(), b.bytes());
        let same = match (&envelope, &plain) {
            (Ok(a), Ok(b)) => {
                a == b
                    && same_bytes(&a.body, &b.body)
                    && a.headers
                        .iter()
                        .zip(&b.headers)
                        .all(|(x, y)| same_bytes(&x.element, &y.element))
            }
            (a, b) => a == b,
        };
        assert!(
            same,
            "the outlined envelope scan disagrees with the full scan"
        );
    }
    envelope
}

/// An envelope read up to the start tag of its body element ([`scan_to_body`]). The body
/// element's `bytes` run from its start tag to the end of the document.
#[derive(Debug)]
pub struct OpenEnvelope<'a> {
    /// The envelope so far: version, header blocks (complete), the body element (open).
    pub envelope: Envelope<'a>,
    /// The qualified names of the Envelope and Body start tags, as written.
    tags: Tags<'a>,
}

/// The qualified names of the Envelope and Body start tags, as written.
#[derive(Clone, Copy, Debug)]
struct Tags<'a> {
    root: &'a [u8],
    body: &'a [u8],
}

impl OpenEnvelope<'_> {
    /// Whether the document after offset `end` of the body element's bytes (just after its end
    /// tag) closes the envelope as [`scan`] requires: blank text and comments, the Body end tag,
    /// blank text and comments, the Envelope end tag, blank text and comments. `false` for
    /// anything else, where the caller runs [`scan`] (which names what is wrong).
    pub fn closes_after(&self, end: usize) -> bool {
        let Some(tail) = self.envelope.body.bytes().get(end..) else {
            return false;
        };
        // quick-xml would skip a byte order mark at the start of its input unseen.
        if tail.starts_with(crate::limit::UTF8_BOM) {
            return false;
        }
        let mut reader = quick_xml::Reader::from_reader(tail);
        let config = reader.config_mut();
        config.check_comments = true;
        // The start tags are before the tail: the names are compared here.
        config.allow_unmatched_ends = true;
        let mut closing = [self.tags.body, self.tags.root].into_iter();
        loop {
            match reader.read_event() {
                Ok(Event::Text(t)) if is_blank(&t) => {}
                Ok(Event::Comment(_)) => {}
                Ok(Event::End(e)) if closing.next() == Some(e.name().as_ref()) => {}
                Ok(Event::Eof) => return closing.next().is_none(),
                _ => return false,
            }
        }
    }
}

/// Reads an envelope up to the start tag of its body element, for a caller that decodes the
/// body element from there and then checks the rest with [`OpenEnvelope::closes_after`] — one
/// pass over the body instead of two (the upstream's answers, which no limits pass has read).
/// Everything before the body element is checked as [`scan`] checks it; an error here, or a rest
/// that does not close the envelope, is for [`scan`] to name.
pub fn scan_to_body(input: &[u8]) -> Result<OpenEnvelope<'_>, EnvelopeError> {
    let text = document(input)?;
    scan_with(text, &[], true).map(|(envelope, tags)| OpenEnvelope { envelope, tags })
}

/// The document as text, by the limits pass's one rule for what may come in front of it
/// ([`crate::limit::document`]: one UTF-8 byte order mark, cut off before any slice is taken).
fn document(input: &[u8]) -> Result<&str, EnvelopeError> {
    crate::limit::document(input).map_err(|e| match e {
        crate::limit::LimitError::NotUtf8 => EnvelopeError::Encoding,
        other => malformed(other),
    })
}

/// The scan of a document (without byte order mark), with the limits pass's skips if it has
/// read it (none otherwise); with `open_body`, it stops at the body element's start tag.
fn scan_with<'a>(
    text: &'a str,
    skips: &[(usize, usize)],
    open_body: bool,
) -> Result<(Envelope<'a>, Tags<'a>), EnvelopeError> {
    let input = text.as_bytes();
    let mut reader = NsReader::from_reader(input);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.check_comments = true;
    let mut s = Scanner {
        text,
        reader,
        skips,
        skipped: 0,
        open_body,
    };

    // Prolog. The XML declaration only as the very first thing (XML 1.0 §2.8).
    let mut first = true;
    let root = loop {
        let event = s.next()?;
        let is_first = std::mem::replace(&mut first, false);
        match event {
            Event::Decl(_) if !is_first => return Err(EnvelopeError::ProcessingInstruction),
            Event::Decl(decl) => {
                if let Some(enc) = decl.encoding() {
                    let enc = enc.map_err(malformed)?;
                    if !enc.eq_ignore_ascii_case(b"utf-8") {
                        return Err(EnvelopeError::Encoding);
                    }
                }
            }
            Event::Comment(_) => {}
            Event::Text(t) if is_blank(&t) => {}
            Event::DocType(_) => return Err(EnvelopeError::Doctype),
            Event::PI(_) => return Err(EnvelopeError::ProcessingInstruction),
            Event::Start(start) => break start,
            Event::Empty(_) => return Err(EnvelopeError::NoBody),
            Event::Eof => return Err(malformed("empty document")),
            _ => return Err(malformed("content before the root element")),
        }
    };
    let mut tags = Tags {
        root: qname_slice(input, &root, s.position(), false),
        body: b"",
    };
    if root.local_name().as_ref() != b"Envelope" {
        return Err(EnvelopeError::NotAnEnvelope);
    }
    let version = match s.namespace_ref(root.name()) {
        Some(ns) if ns == SOAP11_NS.as_bytes() => SoapVersion::Soap11,
        Some(ns) if ns == SOAP12_NS.as_bytes() => SoapVersion::Soap12,
        _ => return Err(EnvelopeError::VersionMismatch),
    };
    let soap_ns = version.namespace().as_bytes();
    let mut envelope_decls = Vec::new();
    declarations(input, &root, &mut envelope_decls, Others::Refuse)?;

    let mut headers = Vec::new();
    let mut body = None;
    let mut seen_header = false;
    loop {
        let (start, empty) = match s.next()? {
            Event::Start(start) => (start, false),
            Event::Empty(start) => (start, true),
            Event::End(_) => break,
            Event::Text(t) if is_blank(&t) => continue,
            Event::Comment(_) => continue,
            Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => {
                return Err(EnvelopeError::TextNotAllowed("Envelope"))
            }
            Event::PI(_) => return Err(EnvelopeError::ProcessingInstruction),
            Event::DocType(_) => return Err(EnvelopeError::Doctype),
            Event::Decl(_) => return Err(EnvelopeError::ProcessingInstruction),
            Event::Eof => return Err(malformed("the document ended inside the Envelope")),
        };
        let in_soap = s.namespace_ref(start.name()) == Some(soap_ns);
        let local = start.local_name();
        let name = || lossy(start.name().as_ref());
        if body.is_some() {
            return Err(EnvelopeError::UnexpectedElement(name()));
        }
        let mut decls = envelope_decls.clone();
        declarations(input, &start, &mut decls, Others::Refuse)?;
        match (in_soap, local.as_ref()) {
            (true, b"Header") if !seen_header => {
                seen_header = true;
                if !empty {
                    headers = scan_children(&mut s, &decls, version, "Header")?;
                }
            }
            (true, b"Body") => {
                if empty {
                    return Err(EnvelopeError::EmptyBody);
                }
                tags.body = qname_slice(input, &start, s.position(), false);
                let mut children = scan_children(&mut s, &decls, version, "Body")?;
                if children.len() > 1 {
                    return Err(EnvelopeError::MultipleBodyElements);
                }
                let child = children.pop().ok_or(EnvelopeError::EmptyBody)?;
                if child.must_understand || child.role.is_some() {
                    return Err(EnvelopeError::AttributeNotAllowed(
                        "mustUnderstand/role on the body element".into(),
                    ));
                }
                body = Some(child.element);
                if s.open_body {
                    break;
                }
            }
            _ => return Err(EnvelopeError::UnexpectedElement(name())),
        }
    }
    let body = body.ok_or(EnvelopeError::NoBody)?;
    if s.open_body {
        let envelope = Envelope {
            version,
            headers,
            body,
        };
        return Ok((envelope, tags));
    }
    loop {
        match s.next()? {
            Event::Eof => break,
            Event::Comment(_) => {}
            Event::Text(t) if is_blank(&t) => {}
            _ => return Err(EnvelopeError::TrailingContent),
        }
    }
    let envelope = Envelope {
        version,
        headers,
        body,
    };
    Ok((envelope, tags))
}

/// Reads the children of Header or Body up to the parent's end tag (with `open_body`, the body
/// element only to its start tag: its bytes run to the end of the document).
fn scan_children<'a>(
    s: &mut Scanner<'a, '_>,
    decls: &[Binding<'a>],
    version: SoapVersion,
    parent: &'static str,
) -> Result<Vec<HeaderBlock<'a>>, EnvelopeError> {
    let mut out = Vec::new();
    loop {
        let (start, empty) = match s.next()? {
            Event::Start(start) => (start, false),
            Event::Empty(start) => (start, true),
            Event::End(_) => return Ok(out),
            Event::Text(t) if is_blank(&t) => continue,
            Event::Comment(_) => continue,
            Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => {
                return Err(EnvelopeError::TextNotAllowed(parent))
            }
            Event::PI(_) | Event::Decl(_) => return Err(EnvelopeError::ProcessingInstruction),
            Event::DocType(_) => return Err(EnvelopeError::Doctype),
            Event::Eof => return Err(malformed("the document ended inside the envelope")),
        };
        // The reader resolves names in the child's own scope here (its declarations included).
        let namespace = s
            .namespace(start.name())
            .ok_or_else(|| EnvelopeError::Unqualified(lossy(start.name().as_ref())))?;
        let mut must_understand = false;
        let mut role = None;
        for attr in start.attributes().with_checks(true) {
            let attr = attr.map_err(malformed)?;
            let (res, local) = s.reader.resolve_attribute(attr.key);
            let soap =
                matches!(res, ResolveResult::Bound(ns) if ns.0 == version.namespace().as_bytes());
            if !soap {
                continue;
            }
            match (version, local.as_ref()) {
                (_, b"mustUnderstand") => {
                    must_understand = match (version, attr.value.as_ref()) {
                        (_, b"1") => true,
                        (_, b"0") => false,
                        (SoapVersion::Soap12, b"true") => true,
                        (SoapVersion::Soap12, b"false") => false,
                        _ => return Err(EnvelopeError::AttributeNotAllowed("mustUnderstand with a value other than 0/1 (or true/false in SOAP 1.2)".into())),
                    };
                }
                (SoapVersion::Soap11, b"actor") | (SoapVersion::Soap12, b"role") => {
                    let value = attr
                        .decode_and_unescape_value(s.reader.decoder())
                        .map_err(malformed)?;
                    role = Some(value.into_owned());
                }
                (SoapVersion::Soap12, b"relay") | (_, b"encodingStyle") => {}
                (_, other) => return Err(EnvelopeError::AttributeNotAllowed(lossy(other))),
            }
        }
        let local_name = local_name_slice(s.input(), &start, s.position(), empty);
        let open = s.open_body && parent == "Body";
        let bytes = if open {
            s.slice(s.tag_begin(&start, empty), s.text.len())?
        } else {
            s.element(&start, empty)?
        };
        out.push(HeaderBlock {
            element: BodyElement {
                text: bytes,
                inherited: decls.to_vec(),
                namespace,
                local_name,
            },
            must_understand,
            role,
        });
        if open {
            return Ok(out);
        }
    }
}

/// The local name of a start tag as a slice of the input (the tag has just been read).
fn local_name_slice<'a>(
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
fn qname_slice<'a>(input: &'a [u8], start: &BytesStart<'_>, end: usize, empty: bool) -> &'a [u8] {
    let tag_len = start.len() + if empty { 3 } else { 2 };
    let begin = end.saturating_sub(tag_len) + 1;
    let name_len = start.name().as_ref().len();
    input.get(begin..begin + name_len).unwrap_or_default()
}

// === SOAP faults ===

/// The SOAP fault codes of both versions, mapped onto one set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultCode {
    /// The envelope namespace was not understood.
    VersionMismatch,
    /// A mandatory header block was not understood.
    MustUnderstand,
    /// SOAP 1.1 `Client`, SOAP 1.2 `Sender`: the request was at fault.
    Sender,
    /// SOAP 1.1 `Server`, SOAP 1.2 `Receiver`: the service was at fault.
    Receiver,
    /// SOAP 1.2 `DataEncodingUnknown`.
    DataEncodingUnknown,
}

impl FaultCode {
    /// The local name of the code in `version`.
    pub const fn local_name(self, version: SoapVersion) -> &'static str {
        match (self, version) {
            (FaultCode::VersionMismatch, _) => "VersionMismatch",
            (FaultCode::MustUnderstand, _) => "MustUnderstand",
            (FaultCode::Sender, SoapVersion::Soap11) => "Client",
            (FaultCode::Sender, SoapVersion::Soap12) => "Sender",
            (FaultCode::Receiver, SoapVersion::Soap11) => "Server",
            (FaultCode::Receiver, SoapVersion::Soap12) => "Receiver",
            (FaultCode::DataEncodingUnknown, _) => "DataEncodingUnknown",
        }
    }

    fn from_local(version: SoapVersion, local: &str) -> Option<Self> {
        // SOAP 1.1 allows dotted refinements such as `Client.Authentication`.
        let base = match version {
            SoapVersion::Soap11 => local.split('.').next().unwrap_or(local),
            SoapVersion::Soap12 => local,
        };
        Some(match (version, base) {
            (_, "VersionMismatch") => FaultCode::VersionMismatch,
            (_, "MustUnderstand") => FaultCode::MustUnderstand,
            (SoapVersion::Soap11, "Client") | (SoapVersion::Soap12, "Sender") => FaultCode::Sender,
            (SoapVersion::Soap11, "Server") | (SoapVersion::Soap12, "Receiver") => {
                FaultCode::Receiver
            }
            (SoapVersion::Soap12, "DataEncodingUnknown") => FaultCode::DataEncodingUnknown,
            _ => return None,
        })
    }
}

/// A parsed SOAP fault.
#[derive(Clone, Debug)]
pub struct SoapFault<'a> {
    /// The fault code.
    pub code: FaultCode,
    /// The human-readable reason (`faultstring`, or the first `Reason/Text`).
    pub reason: String,
    /// The one detail entry, if any.
    pub detail: Option<BodyElement<'a>>,
}

/// A fault element tree (faults are small; the tree is bounded by [`MAX_FAULT_NODES`]).
struct Node<'a> {
    namespace: Option<Vec<u8>>,
    local: String,
    text: String,
    children: Vec<Node<'a>>,
    element: BodyElement<'a>,
}

/// Faults larger than this many elements are refused.
pub const MAX_FAULT_NODES: usize = 64;

fn fault_tree<'a>(body: &BodyElement<'a>) -> Result<Node<'a>, EnvelopeError> {
    use quick_xml::name::{Namespace, NamespaceResolver, PrefixDeclaration};
    let text = body.text;
    let input = text.as_bytes();
    let mut reader = quick_xml::Reader::from_reader(input);
    reader.config_mut().check_end_names = true;
    let mut resolver = NamespaceResolver::default();
    for (prefix, ns) in &body.inherited {
        let decl = if prefix.is_empty() {
            PrefixDeclaration::Default
        } else {
            PrefixDeclaration::Named(prefix)
        };
        resolver.add(decl, Namespace(ns)).map_err(malformed)?;
    }
    // Open nodes: the node, where its start tag began, and the declarations in scope inside it.
    let mut stack: Vec<(Node<'a>, usize, Vec<Binding<'a>>)> = Vec::new();
    let mut count = 0usize;
    loop {
        let before = reader.buffer_position() as usize;
        let (start, empty) = match reader.read_event().map_err(malformed)? {
            Event::Start(s) => (s, false),
            Event::Empty(s) => (s, true),
            Event::End(_) => {
                let end = reader.buffer_position() as usize;
                if let Some(root) = close(&mut stack, &mut resolver, end, text)? {
                    return Ok(root);
                }
                continue;
            }
            Event::Text(t) => {
                let text = t.xml10_content().map_err(malformed)?;
                push_text(&mut stack, &text);
                continue;
            }
            Event::CData(c) => {
                let text = c.decode().map_err(malformed)?;
                push_text(&mut stack, &text);
                continue;
            }
            Event::GeneralRef(r) => {
                let c = crate::xml::reference_char(&r)
                    .ok_or_else(|| malformed("undefined entity in a fault"))?;
                push_text(&mut stack, c.encode_utf8(&mut [0u8; 4]));
                continue;
            }
            Event::Comment(_) => continue,
            Event::PI(_) | Event::Decl(_) => return Err(EnvelopeError::ProcessingInstruction),
            Event::DocType(_) => return Err(EnvelopeError::Doctype),
            Event::Eof => return Err(malformed("the fault ended early")),
        };
        count += 1;
        if count > MAX_FAULT_NODES {
            return Err(malformed("the fault has too many elements"));
        }
        resolver.push(&start).map_err(malformed)?;
        let namespace = match resolver.resolve_element(start.name()).0 {
            ResolveResult::Bound(ns) => Some(ns.0.to_vec()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(p) => {
                return Err(malformed(format!("undeclared prefix {}", lossy(&p))))
            }
        };
        let outer = stack
            .last()
            .map_or_else(|| body.inherited.clone(), |(_, _, d)| d.clone());
        let mut inner = outer.clone();
        declarations(input, &start, &mut inner, Others::Skip)?;
        let local_name = local_name_slice(input, &start, reader.buffer_position() as usize, empty);
        let node = Node {
            namespace: namespace.clone(),
            local: String::from_utf8_lossy(local_name).into_owned(),
            text: String::new(),
            children: Vec::new(),
            element: BodyElement {
                text: text
                    .get(before..)
                    .ok_or_else(|| malformed("fault bounds"))?,
                inherited: outer,
                namespace: namespace.unwrap_or_default(),
                local_name,
            },
        };
        stack.push((node, before, inner));
        if empty {
            let end = reader.buffer_position() as usize;
            if let Some(root) = close(&mut stack, &mut resolver, end, text)? {
                return Ok(root);
            }
        }
    }
}

fn push_text(stack: &mut [(Node<'_>, usize, Vec<Binding<'_>>)], text: &str) {
    if let Some((node, _, _)) = stack.last_mut() {
        node.text.push_str(text);
    }
}

/// Closes the top node: fixes its byte range, attaches it to its parent, or returns it when it
/// is the root.
fn close<'a>(
    stack: &mut Vec<(Node<'a>, usize, Vec<Binding<'a>>)>,
    resolver: &mut quick_xml::name::NamespaceResolver,
    end: usize,
    input: &'a str,
) -> Result<Option<Node<'a>>, EnvelopeError> {
    let (mut node, start, _) = stack.pop().ok_or_else(|| malformed("unbalanced fault"))?;
    resolver.pop();
    node.element.text = input
        .get(start..end)
        .ok_or_else(|| malformed("fault bounds"))?;
    match stack.last_mut() {
        Some((parent, _, _)) => {
            parent.children.push(node);
            Ok(None)
        }
        None => Ok(Some(node)),
    }
}

/// Parses the body element of `env` as a SOAP fault of its version.
pub fn parse_fault<'a>(env: &Envelope<'a>) -> Result<SoapFault<'a>, EnvelopeError> {
    let version = env.version;
    let soap = version.namespace().as_bytes();
    if !env.body.is(version.namespace(), "Fault") {
        return Err(EnvelopeError::UnexpectedElement(lossy(env.body.local_name)));
    }
    let root = fault_tree(&env.body)?;
    let is = |n: &Node<'_>, qualified: bool, local: &str| {
        n.local == local
            && if qualified {
                n.namespace.as_deref() == Some(soap)
            } else {
                n.namespace.is_none()
            }
    };
    let qname_code = |text: &str, node: &Node<'_>| -> Result<FaultCode, EnvelopeError> {
        let text = text.trim();
        let (prefix, local) = text.split_once(':').unwrap_or(("", text));
        let bound = node
            .element
            .inherited
            .iter()
            .any(|(p, ns)| p.as_ref() == prefix.as_bytes() && ns.as_ref() == soap);
        if !bound {
            return Err(EnvelopeError::UnexpectedElement(format!(
                "fault code {}",
                lossy(text.as_bytes())
            )));
        }
        FaultCode::from_local(version, local).ok_or_else(|| {
            EnvelopeError::UnexpectedElement(format!("fault code {}", lossy(text.as_bytes())))
        })
    };
    let mut code = None;
    let mut reason = None;
    let mut detail = None;
    for child in &root.children {
        match version {
            SoapVersion::Soap11 if is(child, false, "faultcode") && code.is_none() => {
                // The code's prefix is resolved in the scope of faultcode itself.
                let mut scope = child.element.clone();
                declarations_of(&mut scope)?;
                code = Some(qname_code(
                    &child.text,
                    &Node {
                        element: scope,
                        ..shallow(child)
                    },
                )?);
            }
            SoapVersion::Soap11 if is(child, false, "faultstring") && reason.is_none() => {
                reason = Some(child.text.clone());
            }
            SoapVersion::Soap11 if is(child, false, "faultactor") => {}
            SoapVersion::Soap11 if is(child, false, "detail") && detail.is_none() => {
                detail = Some(single_entry(child)?);
            }
            SoapVersion::Soap12 if is(child, true, "Code") && code.is_none() => {
                let value = child
                    .children
                    .first()
                    .filter(|v| is(v, true, "Value"))
                    .ok_or_else(|| EnvelopeError::UnexpectedElement("Code without Value".into()))?;
                let mut scope = value.element.clone();
                declarations_of(&mut scope)?;
                code = Some(qname_code(
                    &value.text,
                    &Node {
                        element: scope,
                        ..shallow(value)
                    },
                )?);
            }
            SoapVersion::Soap12 if is(child, true, "Reason") && reason.is_none() => {
                let text = child
                    .children
                    .iter()
                    .find(|t| is(t, true, "Text"))
                    .ok_or_else(|| {
                        EnvelopeError::UnexpectedElement("Reason without Text".into())
                    })?;
                reason = Some(text.text.clone());
            }
            SoapVersion::Soap12 if is(child, true, "Node") || is(child, true, "Role") => {}
            SoapVersion::Soap12 if is(child, true, "Detail") && detail.is_none() => {
                detail = Some(single_entry(child)?);
            }
            _ => {
                return Err(EnvelopeError::UnexpectedElement(format!(
                    "{} in the Fault",
                    child.local
                )))
            }
        }
    }
    Ok(SoapFault {
        code: code
            .ok_or_else(|| EnvelopeError::UnexpectedElement("Fault without a code".into()))?,
        reason: reason
            .ok_or_else(|| EnvelopeError::UnexpectedElement("Fault without a reason".into()))?,
        detail: detail.flatten(),
    })
}

fn shallow<'a>(n: &Node<'a>) -> Node<'a> {
    Node {
        namespace: n.namespace.clone(),
        local: n.local.clone(),
        text: n.text.clone(),
        children: Vec::new(),
        element: n.element.clone(),
    }
}

/// Adds the element's own declarations to its inherited ones (for resolving QName text).
fn declarations_of(element: &mut BodyElement<'_>) -> Result<(), EnvelopeError> {
    let input = element.bytes();
    let mut reader = quick_xml::Reader::from_reader(input);
    if let Event::Start(s) | Event::Empty(s) = reader.read_event().map_err(malformed)? {
        declarations(input, &s, &mut element.inherited, Others::Skip)?;
    }
    Ok(())
}

/// The one entry of a detail element (none is allowed; several are refused).
fn single_entry<'a>(detail: &Node<'a>) -> Result<Option<BodyElement<'a>>, EnvelopeError> {
    match detail.children.as_slice() {
        [] => Ok(None),
        [entry] => {
            if entry.namespace.is_none() {
                return Err(EnvelopeError::Unqualified(entry.local.clone()));
            }
            Ok(Some(entry.element.clone()))
        }
        _ => Err(EnvelopeError::UnexpectedElement(
            "more than one detail entry".into(),
        )),
    }
}

#[cfg(test)]
mod tests;
