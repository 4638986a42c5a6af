//! The envelope scan: bytes → [`Envelope`] (version, header blocks, the body element), with the
//! limits pass's outline stepped over where it has one ([`scan_outlined`]), or up to the body
//! element's start tag ([`scan_to_body`]). Uses the envelope's types, `tag.rs`, and `crate::limit`
//! (the one rule for what precedes a document, the outline).

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{QName, ResolveResult};
use quick_xml::NsReader;

use super::tag::{declarations, local_name_slice, qname_slice, Others};
use super::{
    lossy, malformed, BodyElement, Envelope, EnvelopeError, HeaderBlock, SoapVersion, SOAP11_NS,
    SOAP12_NS,
};
use crate::limit::Outline;
use crate::xml::Binding;

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
pub(super) struct Tags<'a> {
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
pub(super) fn scan_with<'a>(
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
