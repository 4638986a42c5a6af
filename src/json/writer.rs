//! The writer the generated JSON encoders drive: compact JSON (RFC 8259) into a byte buffer,
//! values taken from the types' generated `SerializeBytes` (the same lexical form the XML
//! encoder writes), strings escaped (`"`, `\` and the control characters), integers as numbers,
//! booleans as `true`/`false`. Uses nothing else of the crate.

use xsd_parser_types::quick_xml::{SerializeBytes, SerializeHelper};

use super::JsonEncode;

/// A value that cannot be written as JSON (its type's serializer refused it, or an integer or
/// boolean type wrote something that is not a JSON number or boolean).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the JSON: {0}")]
pub struct JsonEncodeError(String);

impl From<xsd_parser_types::quick_xml::Error> for JsonEncodeError {
    fn from(e: xsd_parser_types::quick_xml::Error) -> Self {
        JsonEncodeError(e.to_string())
    }
}

/// The output buffer and the helper `SerializeBytes` takes.
pub struct JsonWriter<'o> {
    out: &'o mut Vec<u8>,
    helper: SerializeHelper,
}

impl<'o> JsonWriter<'o> {
    /// A writer appending to `out`.
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        JsonWriter {
            out,
            helper: SerializeHelper::default(),
        }
    }

    /// Opens an object.
    pub fn begin(&mut self) {
        self.out.push(b'{');
    }

    /// Closes an object.
    pub fn end(&mut self) {
        self.out.push(b'}');
    }

    /// A member name (a contract element name: no character needs escaping) and its colon.
    pub fn key(&mut self, name: &str) {
        if self.out.last() != Some(&b'{') {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// An object of a content model.
    pub fn child<T: JsonEncode>(&mut self, value: &T) -> Result<(), JsonEncodeError> {
        value.json(self)
    }

    /// An array, each item written by `item`.
    pub fn list<T>(
        &mut self,
        items: &[T],
        mut item: impl FnMut(&mut Self, &T) -> Result<(), JsonEncodeError>,
    ) -> Result<(), JsonEncodeError> {
        self.out.push(b'[');
        for (i, v) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            item(self, v)?;
        }
        self.out.push(b']');
        Ok(())
    }

    /// A value as a JSON string holding its lexical form.
    pub fn string<T: SerializeBytes>(&mut self, value: &T) -> Result<(), JsonEncodeError> {
        let text = value.serialize_bytes(&mut self.helper)?;
        push_string(self.out, text.as_deref().unwrap_or(""));
        Ok(())
    }

    /// A value of an integer type as a JSON number.
    pub fn integer<T: SerializeBytes>(&mut self, value: &T) -> Result<(), JsonEncodeError> {
        let text = value.serialize_bytes(&mut self.helper)?;
        let text = text.as_deref().unwrap_or("");
        let digits = text.strip_prefix('-').unwrap_or(text);
        let plain = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if !plain {
            return Err(JsonEncodeError(format!("{text:?} is not a JSON integer")));
        }
        self.out.extend_from_slice(text.as_bytes());
        Ok(())
    }

    /// A value of a boolean type as JSON `true` or `false`.
    pub fn boolean<T: SerializeBytes>(&mut self, value: &T) -> Result<(), JsonEncodeError> {
        let text = value.serialize_bytes(&mut self.helper)?;
        let literal: &[u8] = match text.as_deref() {
            Some("true" | "1") => b"true",
            Some("false" | "0") => b"false",
            other => {
                return Err(JsonEncodeError(format!("{other:?} is not a boolean")));
            }
        };
        self.out.extend_from_slice(literal);
        Ok(())
    }
}

/// Appends `text` as a JSON string: `"` and `\` escaped, control characters as `\n`, `\r`,
/// `\t`, `\b`, `\f` or `\u00XX`; everything else as it is (UTF-8).
pub(crate) fn push_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0C => b"\\f",
            0x00..=0x1F => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        if escaped.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xF)]);
        } else {
            out.extend_from_slice(escaped);
        }
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}
