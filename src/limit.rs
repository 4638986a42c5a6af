//! Stage: size, time and XML structure limits. Takes the HTTP body and returns its bytes once they
//! are known to be within every bound (body size and read time; XML depth, attributes, namespace
//! declarations, children, name, text and attribute value lengths, element count; no DOCTYPE, no
//! processing instruction, UTF-8 only) — or a [`LimitError`] that names the limit and its config key.
//!
//! The XML pass is a single streaming read with quick-xml that keeps one counter per open
//! element; it runs before anything else parses the document.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use quick_xml::events::Event;
use quick_xml::Reader;

use crate::config::XmlLimits;

/// A bound was exceeded. Every variant names its config key (see [`LimitError::key`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// The body is larger than `limits.body_max_bytes` (declared or actual).
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body did not arrive within `limits.body_read_timeout_ms`.
    #[error("request body not received within {0:?}")]
    BodyTimeout(Duration),
    /// The body arrived slower than `limits.min_receive_bytes_per_second` over a window.
    #[error("request body arriving slower than {bytes_per_second} bytes/s over {window:?}")]
    BodyTooSlow {
        /// The floor.
        bytes_per_second: u32,
        /// The window it is measured over.
        window: Duration,
    },
    /// The connection failed while the body was read.
    #[error("request body could not be read: {0}")]
    BodyRead(String),
    /// The body is not UTF-8.
    #[error("the body is not UTF-8")]
    NotUtf8,
    /// Something before the document's first markup other than one UTF-8 byte order mark (and,
    /// before a root element without XML declaration, whitespace): a second byte order mark,
    /// text (see [`document`]).
    #[error("nothing but one UTF-8 byte order mark may come before the XML document")]
    DocumentStart,
    /// A DOCTYPE (DTDs and entities are not allowed).
    #[error("DOCTYPE is not allowed")]
    Doctype,
    /// A processing instruction.
    #[error("processing instructions are not allowed")]
    ProcessingInstruction,
    /// Not well-formed XML.
    #[error("not well-formed XML: {0}")]
    Malformed(String),
    /// A structural XML bound.
    #[error("XML limit exceeded: {what} (more than {limit})")]
    Xml {
        /// Which bound: its config key without the `limits.xml.` prefix.
        what: &'static str,
        /// The bound.
        limit: usize,
    },
    /// A structural bound of a JSON body (the REST face), the XML bound of the same name.
    #[error("JSON limit exceeded: {what} (more than {limit})")]
    Json {
        /// Which bound: its config key without the `limits.xml.` prefix.
        what: &'static str,
        /// The bound.
        limit: usize,
    },
}

impl LimitError {
    /// The config key of the limit, for faults and statistics.
    pub fn key(&self) -> &'static str {
        match self {
            LimitError::BodyTooLarge { .. } => "limits.body_max_bytes",
            LimitError::BodyTimeout(_) => "limits.body_read_timeout_ms",
            LimitError::BodyTooSlow { .. } => "limits.min_receive_bytes_per_second",
            LimitError::BodyRead(_) => "body-read",
            LimitError::NotUtf8 => "encoding",
            LimitError::DocumentStart => "document-start",
            LimitError::Doctype => "doctype",
            LimitError::ProcessingInstruction => "processing-instruction",
            LimitError::Malformed(_) => "malformed",
            LimitError::Xml { what, .. } | LimitError::Json { what, .. } => match *what {
                "max_depth" => "limits.xml.max_depth",
                "max_attributes" => "limits.xml.max_attributes",
                "max_namespace_declarations" => "limits.xml.max_namespace_declarations",
                "max_children" => "limits.xml.max_children",
                "max_name_bytes" => "limits.xml.max_name_bytes",
                "max_text_bytes" => "limits.xml.max_text_bytes",
                "max_attribute_value_bytes" => "limits.xml.max_attribute_value_bytes",
                _ => "limits.xml.max_elements",
            },
        }
    }
}

/// The receive-rate floor: at least `bytes_per_second × window` bytes in every window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateFloor {
    /// Bytes per second (`limits.min_receive_bytes_per_second`).
    pub bytes_per_second: u32,
    /// The window (`limits.min_receive_window_ms`).
    pub window: Duration,
}

impl RateFloor {
    /// The floor of `limits`, or `None` when it is off (0 bytes per second).
    pub fn of(limits: &crate::config::Limits) -> Option<RateFloor> {
        (limits.min_receive_bytes_per_second > 0).then_some(RateFloor {
            bytes_per_second: limits.min_receive_bytes_per_second,
            window: limits.min_receive_window,
        })
    }

    /// Bytes a full window must bring: at least one (a window too short for a whole byte at
    /// the rate would otherwise turn the floor off).
    pub fn bytes_per_window(&self) -> u64 {
        let millis = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        (u64::from(self.bytes_per_second).saturating_mul(millis) / 1000).max(1)
    }
}

/// The bounds on reading one body.
#[derive(Clone, Copy, Debug)]
pub struct BodyBounds {
    /// Largest body (`limits.body_max_bytes`).
    pub max: usize,
    /// Time for the whole body (`limits.body_read_timeout_ms`).
    pub timeout: Duration,
    /// The receive-rate floor, measured over every window from the first byte on.
    pub floor: Option<RateFloor>,
}

/// Reads a body to the end within `max` bytes and `timeout`. A declared `Content-Length` above
/// `max` is refused before reading anything.
pub async fn read_body<B>(
    body: B,
    declared_length: Option<u64>,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, LimitError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let bounds = BodyBounds {
        max,
        timeout,
        floor: None,
    };
    read_body_within(body, declared_length, bounds).await
}

/// [`read_body`] with a receive-rate floor: every window must bring the floor's bytes (or the
/// rest of the body), so a client that trickles or stalls is cut after one window instead of
/// holding the connection for the whole `timeout`.
pub async fn read_body_within<B>(
    body: B,
    declared_length: Option<u64>,
    bounds: BodyBounds,
) -> Result<Bytes, LimitError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let max = bounds.max;
    if declared_length.is_some_and(|n| n > max as u64) {
        return Err(LimitError::BodyTooLarge { limit: max });
    }
    let read = async {
        let mut body = body;
        let mut buf = BytesMut::with_capacity(declared_length.map_or(8 * 1024, |n| n as usize));
        let mut window = bounds
            .floor
            .map(|f| (f, tokio::time::Instant::now() + f.window, 0u64));
        loop {
            let frame = match &mut window {
                None => body.frame().await,
                Some((floor, end, got)) => {
                    match tokio::time::timeout_at(*end, body.frame()).await {
                        Ok(frame) => frame,
                        Err(_) if *got >= floor.bytes_per_window() => {
                            // Enough this window: measure the next one, from now (after a
                            // stall of the runtime, `end + window` could already be past).
                            *end = tokio::time::Instant::now() + floor.window;
                            *got = 0;
                            continue;
                        }
                        Err(_) => {
                            return Err(LimitError::BodyTooSlow {
                                bytes_per_second: floor.bytes_per_second,
                                window: floor.window,
                            })
                        }
                    }
                }
            };
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| LimitError::BodyRead(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > max {
                    return Err(LimitError::BodyTooLarge { limit: max });
                }
                if let Some((_, _, got)) = &mut window {
                    *got += data.len() as u64;
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(bounds.timeout, read)
        .await
        .map_err(|_| LimitError::BodyTimeout(bounds.timeout))?
}

/// The UTF-8 byte order mark (XML 1.0 §4.3.3 allows one before the document).
pub(crate) const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The document as every stage reads it: `input` without its one UTF-8 byte order mark, as
/// UTF-8 text, whose first markup (`<`) comes first — after XML whitespace at most (which the
/// XML declaration does not allow before it: the limits pass refuses that as a processing
/// instruction). The one rule for the bytes in front of a document, used by the limits pass and
/// by the envelope scan of anything the limits pass has not read (upstream answers).
///
/// quick-xml skips a byte order mark at the start of its input without counting it in its
/// positions; a second one (or anything it would read as text before the declaration) would
/// shift every slice the envelope scan takes by its length, so it is refused here, before any
/// reader runs, with its own rule (`document-start`).
pub fn document(input: &[u8]) -> Result<&str, LimitError> {
    let doc = input.strip_prefix(UTF8_BOM).unwrap_or(input);
    let Ok(text) = std::str::from_utf8(doc) else {
        return Err(LimitError::NotUtf8);
    };
    match text
        .bytes()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        None | Some(b'<') => Ok(text),
        Some(_) => Err(LimitError::DocumentStart),
    }
}

/// What the limits pass learnt about a document it accepted, for the envelope scan that reads it
/// next ([`crate::envelope::scan_outlined`]): the document is UTF-8 and well-formed, and where
/// the elements at depth 3 (in an envelope: the header blocks and the body element) end, so that
/// the scan can step over their content instead of reading it a second time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outline<'a> {
    /// The bytes the outline was taken from, as received (with a byte order mark, if any): the
    /// outline is only used with these very bytes.
    input: &'a [u8],
    /// The [`document`] of `input`, validated as UTF-8.
    doc: &'a str,
    /// (offset of `<` of the start tag, offset of `<` of the end tag) of every element at depth 3
    /// that has content, in document order; offsets into `doc`.
    skips: Vec<(usize, usize)>,
}

impl<'a> Outline<'a> {
    /// The [`document`] of `input` and the skips, if the outline was taken from exactly `input`
    /// (the same bytes as received, not a copy).
    pub(crate) fn skips_for(&self, input: &[u8]) -> Option<(&'a str, &[(usize, usize)])> {
        std::ptr::eq(self.input, input).then_some((self.doc, &self.skips[..]))
    }
}

/// Checks the document against every structural bound in one streaming pass.
pub fn check_xml<'a>(input: &'a [u8], limits: &XmlLimits) -> Result<Outline<'a>, LimitError> {
    // The offsets the outline records are into the very text the envelope scan reads.
    let text = document(input)?;
    let doc = text.as_bytes();
    let exceeded = |what: &'static str, limit: usize| LimitError::Xml { what, limit };
    let mut outline = Outline {
        input,
        doc: text,
        skips: Vec::new(),
    };
    // The start offset of the open element at depth 3.
    let mut open3: Option<usize> = None;
    let mut reader = Reader::from_reader(doc);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.check_comments = true;
    // Children counted per open element.
    let mut children: Vec<usize> = Vec::with_capacity(limits.max_depth.min(64) + 1);
    let mut elements = 0usize;
    let mut text_run = 0usize;
    let mut seen_root = false;
    let mut first_event = true;
    loop {
        let at = reader.buffer_position() as usize;
        let event = reader
            .read_event()
            .map_err(|e| LimitError::Malformed(e.to_string()))?;
        let is_first = std::mem::replace(&mut first_event, false);
        match &event {
            Event::Start(s) | Event::Empty(s) => {
                text_run = 0;
                elements += 1;
                if elements > limits.max_elements {
                    return Err(exceeded("max_elements", limits.max_elements));
                }
                if let Some(parent) = children.last_mut() {
                    *parent += 1;
                    if *parent > limits.max_children {
                        return Err(exceeded("max_children", limits.max_children));
                    }
                } else if seen_root {
                    return Err(LimitError::Malformed("more than one root element".into()));
                }
                seen_root = true;
                if s.name().as_ref().len() > limits.max_name_bytes {
                    return Err(exceeded("max_name_bytes", limits.max_name_bytes));
                }
                let mut attributes = 0usize;
                let mut declarations = 0usize;
                // Most tags have no attributes: no attribute iterator for them (it would yield nothing).
                if !s.attributes_raw().is_empty() {
                    for attr in s.attributes().with_checks(true) {
                        let attr = attr.map_err(|e| LimitError::Malformed(e.to_string()))?;
                        if attr.key.as_namespace_binding().is_some() {
                            declarations += 1;
                            if declarations > limits.max_namespace_declarations {
                                return Err(exceeded(
                                    "max_namespace_declarations",
                                    limits.max_namespace_declarations,
                                ));
                            }
                        } else {
                            attributes += 1;
                            if attributes > limits.max_attributes {
                                return Err(exceeded("max_attributes", limits.max_attributes));
                            }
                        }
                        if attr.key.as_ref().len() > limits.max_name_bytes {
                            return Err(exceeded("max_name_bytes", limits.max_name_bytes));
                        }
                        if attr.value.len() > limits.max_attribute_value_bytes {
                            return Err(exceeded(
                                "max_attribute_value_bytes",
                                limits.max_attribute_value_bytes,
                            ));
                        }
                    }
                }
                if matches!(event, Event::Start(_)) {
                    children.push(0);
                    if children.len() > limits.max_depth {
                        return Err(exceeded("max_depth", limits.max_depth));
                    }
                    if children.len() == 3 {
                        open3 = Some(at);
                    }
                }
            }
            Event::End(_) => {
                text_run = 0;
                if children.len() == 3 {
                    if let Some(start) = open3.take() {
                        outline.skips.push((start, at));
                    }
                }
                children.pop();
            }
            Event::Text(t) => {
                text_run += t.len();
                if text_run > limits.max_text_bytes {
                    return Err(exceeded("max_text_bytes", limits.max_text_bytes));
                }
            }
            Event::CData(t) => {
                text_run += t.len();
                if text_run > limits.max_text_bytes {
                    return Err(exceeded("max_text_bytes", limits.max_text_bytes));
                }
            }
            Event::GeneralRef(r) => {
                text_run += r.len() + 2;
                if text_run > limits.max_text_bytes {
                    return Err(exceeded("max_text_bytes", limits.max_text_bytes));
                }
            }
            Event::Comment(c) => {
                if c.len() > limits.max_text_bytes {
                    return Err(exceeded("max_text_bytes", limits.max_text_bytes));
                }
            }
            Event::DocType(_) => return Err(LimitError::Doctype),
            Event::PI(_) => return Err(LimitError::ProcessingInstruction),
            Event::Decl(_) => {
                // The XML declaration only at the very start (XML 1.0 §2.8; the one UTF-8 BOM
                // is cut off by `document`): anywhere else, after a comment, whitespace or another
                // declaration, `<?xml …?>` is a processing instruction with a reserved name.
                if !is_first {
                    return Err(LimitError::ProcessingInstruction);
                }
            }
            Event::Eof => {
                if !children.is_empty() {
                    return Err(LimitError::Malformed(
                        "the document ended inside an element".into(),
                    ));
                }
                return Ok(outline);
            }
        }
    }
}

mod json;
pub use json::check_json;

#[cfg(test)]
mod tests {
    use super::*;

    fn check(doc: &str) -> Result<(), LimitError> {
        check_xml(doc.as_bytes(), &XmlLimits::default()).map(|_| ())
    }

    #[test]
    fn fixtures_pass() {
        for op in ["CreateAccount", "ListServices", "GetFeature"] {
            for file in ["request.xml", "response.xml"] {
                let path = format!("{}/tests/data/{op}/{file}", env!("CARGO_MANIFEST_DIR"));
                let doc = std::fs::read(&path).expect("fixture");
                check_xml(&doc, &XmlLimits::default()).unwrap_or_else(|e| panic!("{path}: {e}"));
            }
        }
    }

    #[test]
    fn each_bound_is_named() {
        let l = XmlLimits::default();
        let deep = "<a>".repeat(l.max_depth + 1) + &"</a>".repeat(l.max_depth + 1);
        assert_eq!(
            check(&deep).map_err(|e| e.key()),
            Err("limits.xml.max_depth")
        );
        let attrs: String = (0..=l.max_attributes)
            .map(|i| format!(" a{i}=\"x\""))
            .collect();
        assert_eq!(
            check(&format!("<a{attrs}/>")).map_err(|e| e.key()),
            Err("limits.xml.max_attributes")
        );
        let ns: String = (0..=l.max_namespace_declarations)
            .map(|i| format!(" xmlns:n{i}=\"urn:{i}\""))
            .collect();
        assert_eq!(
            check(&format!("<a{ns}/>")).map_err(|e| e.key()),
            Err("limits.xml.max_namespace_declarations")
        );
        let kids = "<b/>".repeat(l.max_children + 1);
        assert_eq!(
            check(&format!("<a>{kids}</a>")).map_err(|e| e.key()),
            Err("limits.xml.max_children")
        );
        let name = "n".repeat(l.max_name_bytes + 1);
        assert_eq!(
            check(&format!("<{name}/>")).map_err(|e| e.key()),
            Err("limits.xml.max_name_bytes")
        );
        let text = "t".repeat(l.max_text_bytes + 1);
        assert_eq!(
            check(&format!("<a>{text}</a>")).map_err(|e| e.key()),
            Err("limits.xml.max_text_bytes")
        );
        let split = format!(
            "<a>{}&amp;{}</a>",
            "t".repeat(l.max_text_bytes / 2),
            "t".repeat(l.max_text_bytes / 2)
        );
        assert_eq!(
            check(&split).map_err(|e| e.key()),
            Err("limits.xml.max_text_bytes")
        );
        let value = "v".repeat(l.max_attribute_value_bytes + 1);
        assert_eq!(
            check(&format!("<a x=\"{value}\"/>")).map_err(|e| e.key()),
            Err("limits.xml.max_attribute_value_bytes")
        );
    }

    #[test]
    fn doctype_entities_and_pis_are_refused() {
        assert_eq!(
            check("<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><a>&x;</a>"),
            Err(LimitError::Doctype)
        );
        assert_eq!(
            check("<a><?php evil() ?></a>"),
            Err(LimitError::ProcessingInstruction)
        );
        assert!(check("<?xml version=\"1.0\"?><a/>").is_ok());
        assert_eq!(
            check("<a/><?xml version=\"1.0\"?>"),
            Err(LimitError::ProcessingInstruction)
        );
    }

    /// Found by tests/hostile.rs: a second XML declaration, or one after a comment or
    /// whitespace, was accepted as if it were the document's own.
    #[test]
    fn the_xml_declaration_is_only_allowed_at_the_start() {
        for doc in [
            "<?xml version=\"1.0\"?><?xml version=\"1.0\"?><a/>",
            "<!-- c --><?xml version=\"1.0\"?><a/>",
            "\n<?xml version=\"1.0\"?><a/>",
        ] {
            assert_eq!(check(doc), Err(LimitError::ProcessingInstruction), "{doc}");
        }
        assert!(check("\u{FEFF}<?xml version=\"1.0\" encoding=\"UTF-8\"?><a/>").is_ok());
        assert!(check("<?xml version=\"1.0\"?>\n<!-- c -->\n<a/>").is_ok());
    }

    /// Found by the `envelope` fuzz target (`fuzz/regressions/envelope/two-byte-order-marks.xml`):
    /// the limits pass and the envelope scan cut off one UTF-8 byte order mark each and quick-xml
    /// skipped a second one unseen, so every slice the scan took was off by three bytes (through
    /// the gateway: `/CreateAcco: the body element is not an operation of this contract`); three
    /// marks read as a processing instruction. One mark and nothing else may come first.
    #[test]
    fn one_byte_order_mark_and_nothing_else_comes_before_the_document() {
        let decl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><a><b>x</b></a>";
        assert!(check(decl).is_ok());
        assert!(check(&format!("\u{FEFF}{decl}")).is_ok());
        for prefix in [
            "\u{FEFF}\u{FEFF}",
            "\u{FEFF}\u{FEFF}\u{FEFF}",
            "\u{FEFF} \u{FEFF}",
            "\n\u{FEFF}",
            "x",
            "\u{FEFF}x",
            "\u{200B}",
            "\u{FFFE}",
        ] {
            assert_eq!(
                check(&format!("{prefix}{decl}")),
                Err(LimitError::DocumentStart),
                "{prefix:?}"
            );
        }
        assert_eq!(LimitError::DocumentStart.key(), "document-start");
        assert_eq!(
            LimitError::DocumentStart.to_string(),
            "nothing but one UTF-8 byte order mark may come before the XML document"
        );
        // Without a declaration, XML's whitespace before the root element is allowed (and
        // before a declaration it is refused as before, as a processing instruction).
        assert!(check("\u{FEFF}\n <a/>").is_ok());
        assert_eq!(
            check("\u{FEFF}\u{FEFF}<a/>"),
            Err(LimitError::DocumentStart)
        );
        assert_eq!(
            check(&format!("\u{FEFF}\n{decl}")),
            Err(LimitError::ProcessingInstruction)
        );
        // Other encodings are still named as such (UTF-16 with its byte order mark).
        assert_eq!(
            check_xml(b"\xFF\xFE<\x00a\x00/\x00>\x00", &XmlLimits::default()),
            Err(LimitError::NotUtf8)
        );
        // The document every later stage reads: the text after the one mark.
        assert_eq!(document(b"\xEF\xBB\xBF<a/>"), Ok("<a/>"));
        assert_eq!(document(b"<a/>"), Ok("<a/>"));
        assert_eq!(document(b""), Ok(""));
        let doc = b"\xEF\xBB\xBF<a><b>x</b></a>";
        let outline = check_xml(doc, &XmlLimits::default()).expect("accepted");
        assert_eq!(
            outline.skips_for(doc).map(|(text, _)| text),
            Some("<a><b>x</b></a>")
        );
    }

    #[test]
    fn encoding_and_well_formedness() {
        assert_eq!(
            check_xml(b"<a>\xff</a>", &XmlLimits::default()),
            Err(LimitError::NotUtf8)
        );
        assert!(matches!(check("<a><b></a>"), Err(LimitError::Malformed(_))));
        assert!(matches!(check("<a>"), Err(LimitError::Malformed(_))));
        assert!(matches!(check("<a/><b/>"), Err(LimitError::Malformed(_))));
    }

    #[tokio::test]
    async fn body_size_declared_and_actual() {
        let body = http_body_util::Full::new(Bytes::from_static(b"0123456789"));
        let ok = read_body(body, Some(10), 10, Duration::from_secs(1)).await;
        assert_eq!(ok.as_deref(), Ok(&b"0123456789"[..]));
        let body = http_body_util::Full::new(Bytes::from_static(b"0123456789"));
        assert_eq!(
            read_body(body, Some(11), 10, Duration::from_secs(1)).await,
            Err(LimitError::BodyTooLarge { limit: 10 })
        );
        let body = http_body_util::Full::new(Bytes::from_static(b"0123456789"));
        assert_eq!(
            read_body(body, None, 9, Duration::from_secs(1)).await,
            Err(LimitError::BodyTooLarge { limit: 9 })
        );
    }
}
