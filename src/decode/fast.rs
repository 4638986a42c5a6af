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

use super::{is_xml_char, leaf_text_problem, reference_char, text_blank};
use crate::envelope::BodyElement;

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
mod tests {
    //! Every golden fixture takes the fast path (otherwise it would be slow, not wrong: the
    //! debug-build comparison in `decode_fast_or_strict` covers being wrong, in every test that
    //! decodes anything), and the unusual-but-valid shapes it leaves to the strict decoder.
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::decode::{self, DecodeLimits};
    use crate::envelope;
    use crate::generated::{callback, partner};

    fn fixtures(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("invalid") {
                fixtures(&path, out);
            } else if path.extension().is_some_and(|e| e == "xml") {
                out.push(path);
            }
        }
    }

    /// The fast path decoded `what` (`fast`), to the strict decoder's value: 1.
    #[track_caller]
    fn took_fast_path<T: PartialEq + std::fmt::Debug>(
        path: &Path,
        what: &str,
        fast: Option<T>,
        strict: Result<T, decode::DecodeError>,
    ) -> usize {
        let at = path.display();
        assert!(fast.is_some(), "{at}: the fast path gave up on the {what}");
        assert_eq!(fast, strict.ok(), "{at}: {what}");
        1
    }

    /// Decodes every element of a fixture the gateway decodes (credential header, fault detail,
    /// body) with the fast path, checking it did not give up; the number of elements decoded.
    fn fast_only(path: &Path) -> usize {
        let bytes = std::fs::read(path).expect("fixture");
        let env = envelope::scan(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let callbacks = path.components().any(|c| c.as_os_str() == "callback");
        let (limits, header) = (DecodeLimits::default(), DecodeLimits::header_block());
        let mut decoded = 0;
        for block in &env.headers {
            let el = &block.element;
            decoded += match callbacks {
                true if el.is(
                    callback::AUTH_HEADER_ELEMENT.0,
                    callback::AUTH_HEADER_ELEMENT.1,
                ) =>
                {
                    let fast = decode(el, header, callback::decode_auth_header_fast);
                    took_fast_path(path, "header", fast, decode::callback_auth(el, header))
                }
                false
                    if el.is(
                        partner::AUTH_HEADER_ELEMENT.0,
                        partner::AUTH_HEADER_ELEMENT.1,
                    ) =>
                {
                    let fast = decode(el, header, partner::decode_auth_header_fast);
                    took_fast_path(path, "header", fast, decode::partner_auth(el, header))
                }
                _ => 0,
            };
        }
        if let Ok(fault) = envelope::parse_fault(&env) {
            let Some(d) = &fault.detail else {
                return decoded;
            };
            let (ns, local) = (&d.namespace, d.local_name);
            return decoded
                + if callbacks {
                    let kind = callback::FaultKind::from_element(ns, local).expect("declared");
                    let fast = decode(d, limits, |r| callback::FaultDetail::decode_fast(kind, r));
                    took_fast_path(
                        path,
                        "fault detail",
                        fast,
                        decode::callback_fault(d, limits),
                    )
                } else {
                    let kind = partner::FaultKind::from_element(ns, local).expect("declared");
                    let fast = decode(d, limits, |r| partner::FaultDetail::decode_fast(kind, r));
                    took_fast_path(path, "fault detail", fast, decode::partner_fault(d, limits))
                };
        }
        let body = &env.body;
        let (ns, local) = (&body.namespace, body.local_name);
        decoded
            + match (
                callbacks,
                partner::Operation::from_request_element(ns, local),
            ) {
                (true, _) => match callback::Operation::from_request_element(ns, local) {
                    Some(op) => {
                        let fast = decode(body, limits, |r| callback::Request::decode_fast(op, r));
                        took_fast_path(path, "body", fast, decode::callback_request(body, limits))
                    }
                    None => {
                        let op = callback::Operation::from_response_element(ns, local).expect("op");
                        let fast = decode(body, limits, |r| callback::Response::decode_fast(op, r));
                        let strict = decode::callback_response(op, body, limits);
                        took_fast_path(path, "body", fast, strict)
                    }
                },
                (false, Some(op)) => {
                    let fast = decode(body, limits, |r| partner::Request::decode_fast(op, r));
                    took_fast_path(path, "body", fast, decode::partner_request(body, limits))
                }
                (false, None) => {
                    let op = partner::Operation::from_response_element(ns, local).expect("op");
                    let fast = decode(body, limits, |r| partner::Response::decode_fast(op, r));
                    took_fast_path(
                        path,
                        "body",
                        fast,
                        decode::partner_response(op, body, limits),
                    )
                }
            }
    }

    #[test]
    fn every_golden_fixture_takes_the_fast_path() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let mut files = Vec::new();
        fixtures(&root, &mut files);
        files.sort();
        assert!(files.len() > 80, "found only {} fixtures", files.len());
        let decoded: usize = files.iter().map(|f| fast_only(f)).sum();
        // Every request has a body and a header; every fault a detail; responses a body.
        assert!(
            decoded > files.len(),
            "decoded {decoded} elements in {} files",
            files.len()
        );
    }

    const ENV_OPEN: &str = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:acc="urn:partnergate:partner:accounts:v1"><s:Body>"#;
    const ENV_CLOSE: &str = "</s:Body></s:Envelope>";
    const BODY: &str =
        "<acc:GetAccount><acc:AccountNumber>ACC-0000001001</acc:AccountNumber></acc:GetAccount>";

    /// (fast path's answer, strict decoder's answer) for a GetAccount body.
    fn both(
        body: &str,
    ) -> (
        Option<partner::Request>,
        Result<partner::Request, decode::DecodeError>,
    ) {
        let doc = format!("{ENV_OPEN}{body}{ENV_CLOSE}");
        let env = envelope::scan(doc.as_bytes()).expect("scans");
        let op = partner::Operation::GetAccount;
        let fast = decode(&env.body, DecodeLimits::default(), |r| {
            partner::Request::decode_fast(op, r)
        });
        let strict = decode::decode_with(
            &env.body,
            partner::NAMESPACES,
            DecodeLimits::default(),
            |r| partner::Request::decode(op, r),
        );
        (fast, strict)
    }

    #[test]
    fn ordinary_variants_take_the_fast_path() {
        for body in [
            BODY.to_string(),
            // default namespace, a re-declared prefix, whitespace between elements
            r#"<GetAccount xmlns="urn:partnergate:partner:accounts:v1"> <AccountNumber>ACC-0000001001</AccountNumber>
</GetAccount>"#
                .to_string(),
            r#"<a:GetAccount xmlns:a="urn:partnergate:partner:accounts:v1"><b:AccountNumber xmlns:b="urn:partnergate:partner:accounts:v1">ACC-0000001001</b:AccountNumber></a:GetAccount>"#.to_string(),
            BODY.replace("ACC-0000001001", "ACC-000000&#49;001"),
        ] {
            let (fast, strict) = both(&body);
            assert!(fast.is_some(), "{body}");
            assert_eq!(fast, strict.ok(), "{body}");
        }
    }

    #[test]
    fn unusual_but_valid_shapes_are_left_to_the_strict_decoder() {
        for body in [
            BODY.replace("<acc:AccountNumber>", "<!-- c --><acc:AccountNumber>"),
            BODY.replace("ACC-0000001001", "<![CDATA[ACC-0000001001]]>"),
        ] {
            let (fast, strict) = both(&body);
            assert!(fast.is_none(), "{body}");
            assert!(strict.is_ok(), "{body}: {strict:?}");
        }
    }

    #[test]
    fn blank_text_in_an_element_without_children_is_left_to_the_strict_decoder() {
        // Found by the `decode` fuzz target: the strict decoder reads text in an element without
        // child elements as a value and refuses whitespace there.
        let open = ENV_OPEN.replace(
            "<s:Body>",
            r#"<s:Body xmlns:cmn="urn:partnergate:partner:common:v1">"#,
        );
        let body = "<acc:ModifyAccount><acc:AccountNumber>ACC-0000001001</acc:AccountNumber>\
                    <acc:Settings>SETTINGS</acc:Settings></acc:ModifyAccount>";
        let op = partner::Operation::ModifyAccount;
        for (settings, fast_path) in [
            ("", true),
            ("\n  ", false),
            ("<acc:Currency>EUR</acc:Currency> ", true),
        ] {
            let doc = format!("{open}{}{ENV_CLOSE}", body.replace("SETTINGS", settings));
            let env = envelope::scan(doc.as_bytes()).expect("scans");
            let limits = DecodeLimits::default();
            let fast = decode(&env.body, limits, |r| partner::Request::decode_fast(op, r));
            let strict = decode::decode_with(&env.body, partner::NAMESPACES, limits, |r| {
                partner::Request::decode(op, r)
            });
            assert_eq!(fast.is_some(), fast_path, "{settings:?}");
            assert_eq!(strict.is_ok(), fast_path, "{settings:?}: {strict:?}");
        }
    }

    /// Edits at tag boundaries that keep a message close to valid, where the fast path and the
    /// strict decoder are most likely to disagree: (which `>`, what to do).
    fn mutate(body: &str, edits: &[(usize, u8)]) -> String {
        const PIECES: [&str; 12] = [
            " ",
            "\n",
            "\r\n",
            "<!-- c -->",
            "&amp;",
            "&#32;",
            "&#x41;",
            "<![CDATA[x]]>",
            "x",
            "\t",
            "<x:Y xmlns:x=\"urn:partnergate:partner:common:v1\"/>",
            "]]>",
        ];
        let mut out = body.to_string();
        for &(k, edit) in edits {
            let ends: Vec<usize> = out.match_indices('>').map(|(i, _)| i + 1).collect();
            if ends.is_empty() {
                break;
            }
            let at = ends[k % ends.len()];
            let next = out[at..].find('<').map_or(out.len(), |i| at + i);
            let piece = PIECES[usize::from(edit / 8) % PIECES.len()];
            match edit % 8 {
                0 => out.insert_str(at, piece),
                1 => out.insert_str(next, piece),
                2 => out.replace_range(at..next, ""),
                3 => out.replace_range(at..next, piece),
                // inside a value
                4 => {
                    let mut mid = at + (next - at) / 2;
                    while !out.is_char_boundary(mid) {
                        mid -= 1;
                    }
                    out.insert_str(mid, piece);
                }
                _ if next >= out.len() => {}
                // repeat or drop the element that starts at `next`
                _ => {
                    let name_end = out[next..]
                        .find(['>', ' ', '/'])
                        .map_or(out.len(), |i| next + i);
                    let name = out[next + 1..name_end].to_string();
                    let close = format!("</{name}>");
                    if let Some(end) = out[next..].find(&close).map(|i| next + i + close.len()) {
                        if edit % 8 < 7 {
                            let element = out[next..end].to_string();
                            out.insert_str(end, &element);
                        } else {
                            out.replace_range(next..end, "");
                        }
                    }
                }
            }
        }
        out
    }

    /// Which contract a golden message belongs to.
    #[derive(Clone, Copy)]
    enum Contract {
        Partner(partner::Operation),
        Callback(callback::Operation),
    }

    /// Every golden request and response of both contracts: (contract, document, is a response).
    fn golden_messages() -> Vec<(Contract, String, bool)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let dirs = partner::Operation::ALL
            .iter()
            .map(|op| (Contract::Partner(*op), root.join(op.name())))
            .chain(callback::Operation::ALL.iter().map(|op| {
                (
                    Contract::Callback(*op),
                    root.join("callback").join(op.name()),
                )
            }));
        let mut out = Vec::new();
        for (contract, dir) in dirs {
            for (file, response) in [("request.xml", false), ("response.xml", true)] {
                let doc = std::fs::read_to_string(dir.join(file)).expect("fixture");
                out.push((contract, doc, response));
            }
        }
        out
    }

    /// Decodes every element of a message the gateway decodes (credential header blocks and the
    /// body) through `decode_fast_or_strict`, which compares the two paths in this debug build;
    /// whether all of them decoded.
    fn decode_all(doc: &str, contract: Contract, response: bool) -> bool {
        // The request path's outlined scan (asserted to equal the full scan in this debug build).
        if let Ok(outline) =
            crate::limit::check_xml(doc.as_bytes(), &crate::config::XmlLimits::default())
        {
            let _ = envelope::scan_outlined(doc.as_bytes(), &outline);
        }
        // An answer of the partner API: the forward stage's one-pass decode (asserted to equal
        // the full scan and decode in this debug build).
        if let (Contract::Partner(op), true) = (contract, response) {
            let _ = crate::forward::decode_upstream_reply(op, 200, doc.as_bytes());
        }
        let Ok(env) = envelope::scan(doc.as_bytes()) else {
            return false;
        };
        let (limits, header) = (DecodeLimits::default(), DecodeLimits::header_block());
        let mut ok = true;
        for block in &env.headers {
            ok &= match contract {
                Contract::Partner(_) => decode::partner_auth(&block.element, header).is_ok(),
                Contract::Callback(_) => decode::callback_auth(&block.element, header).is_ok(),
            };
        }
        ok & match (contract, response) {
            (Contract::Partner(op), true) => {
                decode::partner_response(op, &env.body, limits).is_ok()
            }
            (Contract::Partner(_), false) => decode::partner_request(&env.body, limits).is_ok(),
            (Contract::Callback(op), true) => {
                decode::callback_response(op, &env.body, limits).is_ok()
            }
            (Contract::Callback(_), false) => decode::callback_request(&env.body, limits).is_ok(),
        }
    }

    /// The byte ranges of the elements the gateway decodes (header blocks, body) in `doc`.
    fn decoded_elements(doc: &str) -> Vec<std::ops::Range<usize>> {
        let env = envelope::scan(doc.as_bytes()).expect("scans");
        let base = doc.as_ptr() as usize;
        env.headers
            .iter()
            .map(|h| h.element.bytes())
            .chain([env.body.bytes()])
            .map(|b| {
                let at = b.as_ptr() as usize - base;
                at..at + b.len()
            })
            .collect()
    }

    /// Every single edit at every tag boundary of every golden request and response of both
    /// contracts, in the body and in the credential header: whatever the fast path accepts, the
    /// strict decoder accepts with the same value.
    #[test]
    fn every_single_edit_of_the_golden_messages_decodes_the_same_way_on_both_paths() {
        let mut decoded = 0;
        let mut variants = 0;
        for (contract, doc, response) in golden_messages() {
            for range in decoded_elements(&doc) {
                let element = &doc[range.clone()];
                for k in 0..element.matches('>').count() {
                    // Every edit kind with every piece once (12 pieces × 8 kinds); the element
                    // edits (kinds 5–7) do not depend on the piece.
                    for edit in 0..96u8 {
                        if edit % 8 > 4 && edit >= 8 {
                            continue;
                        }
                        let variant = format!(
                            "{}{}{}",
                            &doc[..range.start],
                            mutate(element, &[(k, edit)]),
                            &doc[range.end..]
                        );
                        variants += 1;
                        decoded += usize::from(decode_all(&variant, contract, response));
                    }
                }
            }
        }
        assert!(
            // 55,692 variants, 24,217 of them valid, when written.
            variants > 40_000 && decoded > 15_000,
            "{decoded} of {variants}"
        );
    }

    /// Every single edit after the body element of every golden answer of the partner API
    /// (where the one-pass decode of upstream answers checks the rest of the envelope itself):
    /// the one-pass result equals the full scan and decode (asserted inside
    /// `decode_upstream_reply`), and it accepts exactly what the full path accepts.
    #[test]
    fn every_single_edit_after_the_body_element_of_an_answer_is_read_as_the_full_scan_reads_it() {
        let (mut variants, mut accepted) = (0, 0);
        for (contract, doc, response) in golden_messages() {
            let (Contract::Partner(op), true) = (contract, response) else {
                continue;
            };
            let body = decoded_elements(&doc).pop().expect("a body element");
            let (head, tail) = doc.split_at(body.end);
            for k in 0..tail.matches('>').count() + 1 {
                for edit in 0..96u8 {
                    let variant = format!("{head}{}", mutate(tail, &[(k, edit)]));
                    variants += 1;
                    let reply = crate::forward::decode_upstream_reply(op, 200, variant.as_bytes());
                    accepted += usize::from(reply.is_ok());
                }
            }
        }
        assert!(
            variants > 5_000 && accepted > 500,
            "{accepted} of {variants}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// Near-valid variants of the golden requests and responses: whatever the fast path
        /// accepts, the strict decoder accepts with the same value (`decode_fast_or_strict`
        /// asserts it in this debug build; decoding here is enough to check it).
        #[test]
        fn near_valid_variants_decode_the_same_way_on_both_paths(
            message in 0usize..40,
            target in 0usize..2,
            edits in proptest::collection::vec((0usize..200, proptest::num::u8::ANY), 1..4),
        ) {
            let messages = golden_messages();
            let (contract, doc, response) = &messages[message % messages.len()];
            let ranges = decoded_elements(doc);
            let range = ranges[target % ranges.len()].clone();
            let variant = format!(
                "{}{}{}",
                &doc[..range.start],
                mutate(&doc[range.clone()], &edits),
                &doc[range.end..]
            );
            decode_all(&variant, *contract, *response);
        }
    }

    #[test]
    fn what_the_strict_decoder_refuses_the_fast_path_gives_up_on() {
        for body in [
            BODY.replace("ACC-0000001001", " ACC-0000001001"),
            BODY.replace("ACC-0000001001", "ACC-1"),
            BODY.replace("<acc:AccountNumber>", "<acc:AccountNumber x=\"1\">"),
            BODY.replace("<acc:AccountNumber>", "<acc:Extra/><acc:AccountNumber>"),
            BODY.replace(
                "</acc:GetAccount>",
                "<acc:AccountNumber>ACC-0000001001</acc:AccountNumber></acc:GetAccount>",
            ),
            BODY.replace("</acc:GetAccount>", "x</acc:GetAccount>"),
            BODY.replace("<acc:AccountNumber>ACC-0000001001</acc:AccountNumber>", ""),
            BODY.replace("acc:AccountNumber", "AccountNumber"),
            BODY.replace("ACC-0000001001", "ACC-0000001001&#1;"),
            BODY.replace("ACC-0000001001", "ACC-0000001001\r"),
            BODY.replace("<acc:AccountNumber>ACC-0000001001</acc:AccountNumber>", " "),
            BODY.replace(
                "<acc:GetAccount>",
                "<acc:GetAccount xmlns:acc=\"urn:other\">",
            ),
        ] {
            let (fast, strict) = both(&body);
            assert!(fast.is_none(), "{body}");
            assert!(strict.is_err(), "{body}");
        }
    }
}
