//! Stage: canonical encoding. Takes a typed value (decoded and validated, or built by the partner
//! API layer) and returns the only bytes partnergate ever sends on: a fresh SOAP envelope whose
//! body element is written by the generated serializer. Nothing of the partner's original bytes
//! (comments, prefixes, whitespace, unknown headers, the partner's key) can survive this.
//!
//! The output is canonical: no XML declaration variants, no indentation, one fixed envelope
//! prefix, the generated prefixes for the contract's namespaces. Encoding the same value twice
//! gives the same bytes, and decoding the output gives the same value back (tested for every
//! golden fixture and by a property test).

use quick_xml::events::{BytesEnd, BytesStart, Event};
use quick_xml::Writer;

use crate::envelope::SoapVersion;

/// The generated serializer refused a value, or writing failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the message: {0}")]
pub struct EncodeError(String);

impl From<xsd_parser_types::quick_xml::Error> for EncodeError {
    fn from(e: xsd_parser_types::quick_xml::Error) -> Self {
        EncodeError(e.to_string())
    }
}

impl From<std::io::Error> for EncodeError {
    fn from(e: std::io::Error) -> Self {
        EncodeError(e.to_string())
    }
}

/// The XML declaration every envelope starts with.
pub const XML_DECLARATION: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

/// The envelope prefix partnergate writes, for both SOAP versions.
pub const ENVELOPE_PREFIX: &str = "soap";

/// A writer over the output buffer, handed to the closures that write header blocks and the body.
pub type XmlWriter<'w> = Writer<&'w mut Vec<u8>>;

/// Writes `<?xml …?><soap:Envelope><soap:Header>…</soap:Header><soap:Body>…</soap:Body></soap:Envelope>`
/// into `out`. `header` writes the header blocks (no Header element is written when it is `None`);
/// `body` writes the one body element.
pub fn envelope<H, B>(
    version: SoapVersion,
    out: &mut Vec<u8>,
    header: Option<H>,
    body: B,
) -> Result<(), EncodeError>
where
    H: FnOnce(&mut XmlWriter<'_>) -> Result<(), EncodeError>,
    B: FnOnce(&mut XmlWriter<'_>) -> Result<(), EncodeError>,
{
    let start = out.len();
    // The declaration as quick-xml writes it for `BytesDecl::new("1.0", Some("UTF-8"), None)`,
    // without building the event (two allocations and a copy per envelope).
    out.extend_from_slice(XML_DECLARATION);
    let mut w = Writer::new(out);
    let mut root = BytesStart::new("soap:Envelope");
    root.push_attribute(("xmlns:soap", version.namespace()));
    w.write_event(Event::Start(root))?;
    if let Some(header) = header {
        w.write_event(Event::Start(BytesStart::new("soap:Header")))?;
        header(&mut w)?;
        w.write_event(Event::End(BytesEnd::new("soap:Header")))?;
    }
    w.write_event(Event::Start(BytesStart::new("soap:Body")))?;
    body(&mut w)?;
    w.write_event(Event::End(BytesEnd::new("soap:Body")))?;
    w.write_event(Event::End(BytesEnd::new("soap:Envelope")))?;
    escape_carriage_returns(w.into_inner(), start);
    Ok(())
}

/// Rewrites every carriage return in `out[from..]` as the character reference `&#xD;`.
///
/// quick-xml escapes only `<`, `>`, `&`, `'` and `"`. A value may hold a CR (sent as `&#13;`),
/// but written raw, every XML parser — ours included — reads it back as a line feed (XML 1.0
/// §2.11, end-of-line handling), so the receiver would get another value than the one
/// validated (caught by the `roundtrip` fuzz invariant). Canonical XML writes `&#xD;` too. The
/// encoder writes no CR outside values (no indentation), and in UTF-8 the byte 0x0D is only ever
/// a CR.
pub fn escape_carriage_returns(out: &mut Vec<u8>, from: usize) {
    // memchr (SIMD): this runs over every encoded envelope, and almost never finds one.
    if out
        .get(from..)
        .is_none_or(|tail| memchr::memchr(b'\r', tail).is_none())
    {
        return;
    }
    let tail = out.split_off(from);
    out.reserve(tail.len() + 16);
    for b in tail {
        if b == b'\r' {
            out.extend_from_slice(b"&#xD;");
        } else {
            out.push(b);
        }
    }
}

/// Closure type for "no header".
pub type NoHeader = fn(&mut XmlWriter<'_>) -> Result<(), EncodeError>;

/// An envelope with only a body.
pub fn body_only<B>(version: SoapVersion, out: &mut Vec<u8>, body: B) -> Result<(), EncodeError>
where
    B: FnOnce(&mut XmlWriter<'_>) -> Result<(), EncodeError>,
{
    envelope::<NoHeader, B>(version, out, None, body)
}

/// Writes a SOAP fault envelope of `version`: code, reason and (optionally) one typed detail
/// entry written by `detail`. This is the only fault writer; `fault.rs` decides what goes in.
pub fn fault<D>(
    version: SoapVersion,
    out: &mut Vec<u8>,
    code: crate::envelope::FaultCode,
    reason: &str,
    detail: Option<D>,
) -> Result<(), EncodeError>
where
    D: FnOnce(&mut XmlWriter<'_>) -> Result<(), EncodeError>,
{
    use quick_xml::events::BytesText;
    let code_text = format!("soap:{}", code.local_name(version));
    body_only(version, out, |w| {
        w.write_event(Event::Start(BytesStart::new("soap:Fault")))?;
        match version {
            SoapVersion::Soap11 => {
                w.create_element("faultcode")
                    .write_text_content(BytesText::new(&code_text))?;
                w.create_element("faultstring")
                    .write_text_content(BytesText::new(reason))?;
                if let Some(detail) = detail {
                    w.write_event(Event::Start(BytesStart::new("detail")))?;
                    detail(w)?;
                    w.write_event(Event::End(BytesEnd::new("detail")))?;
                }
            }
            SoapVersion::Soap12 => {
                w.write_event(Event::Start(BytesStart::new("soap:Code")))?;
                w.create_element("soap:Value")
                    .write_text_content(BytesText::new(&code_text))?;
                w.write_event(Event::End(BytesEnd::new("soap:Code")))?;
                w.write_event(Event::Start(BytesStart::new("soap:Reason")))?;
                w.create_element("soap:Text")
                    .with_attribute(("xml:lang", "en"))
                    .write_text_content(BytesText::new(reason))?;
                w.write_event(Event::End(BytesEnd::new("soap:Reason")))?;
                if let Some(detail) = detail {
                    w.write_event(Event::Start(BytesStart::new("soap:Detail")))?;
                    detail(w)?;
                    w.write_event(Event::End(BytesEnd::new("soap:Detail")))?;
                }
            }
        }
        w.write_event(Event::End(BytesEnd::new("soap:Fault")))?;
        Ok(())
    })
}

pub mod fast;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{self, DecodeLimits};
    use crate::envelope;

    /// Caught by the `roundtrip` fuzz invariant (input: `fuzz/regressions/roundtrip/
    /// cr-in-free-text`): a CR in a value (`&#13;`) was written raw and read back as a line feed.
    #[test]
    fn a_carriage_return_in_a_value_survives_encoding() {
        let path = format!(
            "{}/tests/data/CreateAccount/request.canonical.xml",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).expect("fixture").replacen(
            "Preferred contact",
            "Preferred&#13;contact&#13;&#10;by",
            1,
        );
        let env = envelope::scan(text.as_bytes()).expect("scan");
        let request = decode::partner_request(&env.body, DecodeLimits::default()).expect("decode");
        let mut out = b"prefix\r".to_vec();
        body_only(SoapVersion::Soap11, &mut out, |w| Ok(request.encode(w)?)).expect("encode");
        assert!(
            out.starts_with(b"prefix\r<?xml"),
            "bytes before `from` are left alone"
        );
        let encoded = &out[7..];
        assert!(!encoded.contains(&b'\r'));
        assert!(String::from_utf8_lossy(encoded).contains("Preferred&#xD;contact&#xD;\nby"));
        let env = envelope::scan(encoded).expect("scan");
        let again = decode::partner_request(&env.body, DecodeLimits::default()).expect("decode");
        assert_eq!(again, request);
    }
}
