//! The strict reader ([`StrictReader`]) between quick-xml and xsd-parser's generated
//! deserializer, which closes the gaps the generated code leaves (see the `decode` module doc),
//! and [`decode_with`], the strict decode of one element. Why a refusal happened — the element
//! path and the rule — is worked out in `strict/explain.rs`. Uses `rules.rs`, `text.rs`,
//! `crate::envelope` (the element and the SOAP namespaces) and `crate::xml`.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, BytesText, Event};
use quick_xml::name::{Namespace, NamespaceResolver, PrefixDeclaration, ResolveResult};
use quick_xml::Reader;
use xsd_parser_types::quick_xml::{Error as XmlError, XmlReader, XmlReaderSync};

use super::rules::{DecodeError, DecodeLimits, Rule};
use super::text::{is_xml_char, leaf_text_problem, quote_value, text_blank, text_piece};
use crate::envelope::BodyElement;
use crate::xml::{reference_char, Binding};

mod explain;

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
pub(super) fn declares(key: &[u8], prefix: &[u8]) -> bool {
    match key.strip_prefix(b"xmlns") {
        Some([]) => prefix.is_empty(),
        Some([b':', rest @ ..]) => !prefix.is_empty() && rest == prefix,
        _ => false,
    }
}

/// `="value"` with a raw attribute value: in quotes it cannot contain (a value taken from a
/// `'…'` attribute may hold `"` but not `'`).
pub(super) fn push_raw_value(tag: &mut Vec<u8>, value: &[u8]) {
    let quote = if value.contains(&b'"') { b'\'' } else { b'"' };
    tag.push(b'=');
    tag.push(quote);
    tag.extend_from_slice(value);
    tag.push(quote);
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
