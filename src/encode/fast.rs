//! The fast path of the canonical encode.
//!
//! build.rs generates, for every content model, an implementation of [`FastEncode`] that writes
//! the value's children straight into the output buffer — the same bytes xsd-parser's generated
//! serializer produces through quick-xml events (`<p:Name>`, the value from the same
//! `SerializeBytes`, escaped by the same `quick_xml::escape::escape`, `</p:Name>`; `<p:Name/>`
//! for a value that serializes to nothing; the root's namespace declarations as the serializer
//! writes them). If the fast path meets anything it does not handle (a value whose
//! `SerializeBytes` fails, `]]>` in a value), it gives up, the buffer is cut back, and the
//! generated serializer writes the element (and reports the error). In debug builds (the tests)
//! and in the fuzz targets (feature `fuzzing`) every fast encoding is compared with the
//! serializer's bytes, and a difference panics.

use quick_xml::Writer;
use xsd_parser_types::quick_xml::{Error, SerializeBytes, SerializeHelper};

/// A type with a generated fast encoder.
pub trait FastEncode {
    /// The namespace declarations (prefix, namespace) its start tag carries as the root.
    const ROOT_XMLNS: &'static [(&'static [u8], &'static [u8])];

    /// Writes the children (not the element's own tags).
    fn content(&self, w: &mut FastWriter<'_>) -> Option<()>;
}

/// The output buffer and the helper `SerializeBytes` takes.
pub struct FastWriter<'o> {
    out: &'o mut Vec<u8>,
    helper: SerializeHelper,
}

impl FastWriter<'_> {
    fn open(&mut self, name: &[u8]) {
        self.out.push(b'<');
        self.out.extend_from_slice(name);
        self.out.push(b'>');
    }

    fn close(&mut self, name: &[u8]) {
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(name);
        self.out.push(b'>');
    }

    /// A child of a complex type.
    pub fn child<T: FastEncode>(&mut self, value: &T, name: &[u8]) -> Option<()> {
        self.open(name);
        value.content(self)?;
        self.close(name);
        Some(())
    }

    /// A leaf, as `ContentSerializer` writes it.
    pub fn leaf<T: SerializeBytes>(&mut self, value: &T, name: &[u8]) -> Option<()> {
        match value.serialize_bytes(&mut self.helper).ok()? {
            None => {
                self.out.push(b'<');
                self.out.extend_from_slice(name);
                self.out.extend_from_slice(b"/>");
            }
            Some(data) => {
                // `]]>` holds a `>`, so only a value that needs escaping can hold it; the
                // serializer refuses it with an error: let it.
                let escaped = needs_escape(data.as_bytes());
                if escaped && crate::decode::contains_cdata_end(&data) {
                    return None;
                }
                self.open(name);
                if escaped {
                    self.out
                        .extend_from_slice(quick_xml::escape::escape(data.as_ref()).as_bytes());
                } else {
                    self.out.extend_from_slice(data.as_bytes());
                }
                self.close(name);
            }
        }
        Some(())
    }
}

/// Whether `quick_xml::escape::escape` changes `text`: it replaces `<`, `>`, `&`, `'` and `"`.
/// Most values hold none of them and are copied as they are (quick-xml's escape walks every
/// byte: 12 % of the instructions of the 240 KB response's encode). Short values (most) are
/// checked byte by byte, long ones with two SIMD searches (memchr's setup costs more than a
/// short value's loop).
fn needs_escape(text: &[u8]) -> bool {
    if text.len() < 64 {
        return text
            .iter()
            .any(|&b| matches!(b, b'<' | b'>' | b'&' | b'\'' | b'"'));
    }
    memchr::memchr3(b'<', b'>', b'&', text).is_some()
        || memchr::memchr2(b'\'', b'"', text).is_some()
}

/// Writes `value` as the root element `name` (`prefix:local`) with its namespace declarations
/// into `out`; `false` (and `out` as it was) when the fast path gives up.
pub fn write_root<T: FastEncode>(value: &T, name: &str, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let mut w = FastWriter {
        out,
        helper: SerializeHelper::default(),
    };
    let name = name.as_bytes();
    w.out.push(b'<');
    w.out.extend_from_slice(name);
    for (prefix, ns) in T::ROOT_XMLNS {
        w.out.extend_from_slice(b" xmlns:");
        w.out.extend_from_slice(prefix);
        w.out.extend_from_slice(b"=\"");
        w.out.extend_from_slice(ns);
        w.out.push(b'"');
    }
    w.out.push(b'>');
    if value.content(&mut w).is_none() {
        w.out.truncate(start);
        return false;
    }
    w.close(name);
    true
}

/// Writes `value` as the root element `name` with [`write_root`], or, when the fast path gives
/// up, with `slow` (the generated serializer, which also reports the error).
pub fn encode_root<T: FastEncode>(
    value: &T,
    name: &str,
    writer: &mut Writer<&mut Vec<u8>>,
    slow: impl FnOnce(&mut Writer<&mut Vec<u8>>) -> Result<(), Error>,
) -> Result<(), Error> {
    let start = writer.get_ref().len();
    if !write_root(value, name, writer.get_mut()) {
        return slow(writer);
    }
    // Debug builds and the fuzz targets (built in release with the `fuzzing` feature).
    #[cfg(any(debug_assertions, feature = "fuzzing"))]
    {
        let mut check = Vec::new();
        let result = slow(&mut Writer::new(&mut check));
        let fast = &writer.get_ref()[start..];
        // Offsets and lengths only, never the bytes: a credential header holds a key.
        let differs_at = fast.iter().zip(&check).position(|(a, b)| a != b);
        assert!(
            result.is_ok() && check == fast,
            "the fast encode of {name} differs from the serializer's ({:?}): lengths {} and {}, \
             first difference at byte {differs_at:?}",
            result.err().map(|e| e.to_string()),
            fast.len(),
            check.len()
        );
    }
    #[cfg(not(any(debug_assertions, feature = "fuzzing")))]
    let _ = (start, slow);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{self, DecodeLimits};
    use crate::envelope;
    use crate::generated::partner;
    use crate::generated::types::cmn;

    /// Every golden request and response is written by the fast path (that it writes the
    /// serializer's bytes is checked by `encode_root` in every debug-build test that encodes).
    #[test]
    fn golden_messages_take_the_fast_path() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let mut n = 0;
        for op in partner::Operation::ALL {
            let dir = root.join(op.name());
            for file in ["request.xml", "response.xml"] {
                let bytes = std::fs::read(dir.join(file)).expect("fixture");
                let env = envelope::scan(&bytes).expect("scans");
                let limits = DecodeLimits::default();
                let mut out = Vec::new();
                let fast = if file == "request.xml" {
                    let request = decode::partner_request(&env.body, limits).expect("decodes");
                    request.write_fast(&mut out)
                } else {
                    let response =
                        decode::partner_response(op, &env.body, limits).expect("decodes");
                    response.write_fast(&mut out)
                };
                assert!(fast && !out.is_empty(), "{op:?} {file}");
                n += 1;
            }
        }
        assert_eq!(n, 36);
    }

    #[test]
    fn needs_escape_is_exactly_when_escape_changes_the_text() {
        let samples = [
            "",
            "plain",
            "Müller & Söhne",
            "a<b",
            "a>b",
            "it's",
            "say \"hi\"",
            "\u{FFFD}x",
        ];
        let long = "x".repeat(200) + "&" + &"y".repeat(100);
        let long_plain = "z".repeat(300);
        let long_quote = "z".repeat(100) + "'";
        let longs = [long.as_str(), long_plain.as_str(), long_quote.as_str()];
        for text in samples.iter().copied().chain(longs) {
            let changed = quick_xml::escape::escape(text) != text;
            assert_eq!(needs_escape(text.as_bytes()), changed, "{text:?}");
        }
        for b in 0u8..=127 {
            let text = String::from(char::from(b));
            let changed = quick_xml::escape::escape(text.as_str()) != text;
            assert_eq!(needs_escape(text.as_bytes()), changed, "byte {b}");
        }
    }

    #[test]
    fn a_value_the_serializer_refuses_is_left_to_it() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/faults");
        let bytes = std::fs::read(root.join("InvalidRequestFault.soap11.xml")).expect("fixture");
        let env = envelope::scan(&bytes).expect("scans");
        let fault = envelope::parse_fault(&env).expect("a fault");
        let detail = fault.detail.expect("a detail");
        let decoded = decode::partner_fault(&detail, DecodeLimits::default()).expect("decodes");
        let partner::FaultDetail::InvalidRequest(mut value) = decoded else {
            panic!("not InvalidRequest")
        };
        let name = "cmn:InvalidRequestFault";
        let mut out = Vec::new();
        assert!(write_root(&*value, name, &mut out));
        value.message = cmn::FaultMessage::new("a ]]> b".into()).expect("a valid message");
        let mut out = b"kept".to_vec();
        assert!(!write_root(&*value, name, &mut out));
        assert_eq!(out, b"kept");
        let mut w = Writer::new(&mut out);
        let result = encode_root(&*value, name, &mut w, |w| {
            xsd_parser_types::quick_xml::SerializeSync::serialize(&*value, name, w)
        });
        assert!(result.is_err(), "the serializer's error");
    }
}
