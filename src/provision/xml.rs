//! Stored records as canonical XML: the contract's encoder writes them and the strict decoder
//! reads them back, so a stored record is always a valid contract value. Uses the generated
//! types and `decode`/`encode` only; knows nothing of tables or rules.

use quick_xml::Writer;
use xsd_parser_types::quick_xml::{
    DeserializeSync, SerializeSync, WithDeserializer, WithSerializer,
};

use super::Problem;
use crate::decode::{self, DecodeLimits};
use crate::envelope::BodyElement;
use crate::generated::partner::{self, Operation, Response};

pub(crate) const NS_ACC: &str = "urn:partnergate:partner:accounts:v1";
pub(crate) const NS_SVC: &str = "urn:partnergate:partner:services:v1";
pub(crate) const NS_DEV: &str = "urn:partnergate:partner:devices:v1";
pub(crate) const NS_FTR: &str = "urn:partnergate:partner:features:v1";

/// Canonical XML of a value, with `root` as its element name.
pub(crate) fn to_xml<T: WithSerializer>(value: &T, root: &str) -> Result<String, Problem> {
    let mut out = Vec::with_capacity(1024);
    let mut w = Writer::new(&mut out);
    value
        .serialize(root, &mut w)
        .map_err(|e| Problem::Corrupt(format!("encode {root}: {e}")))?;
    crate::encode::escape_carriage_returns(&mut out, 0);
    String::from_utf8(out).map_err(|e| Problem::Corrupt(e.to_string()))
}

/// Decodes a stored record strictly.
pub(crate) fn from_xml<T>(xml: &str, namespace: &str) -> Result<T, Problem>
where
    T: WithDeserializer,
    for<'a> T:
        DeserializeSync<'a, decode::StrictReader<'a>, Error = xsd_parser_types::quick_xml::Error>,
{
    let bytes = xml.as_bytes();
    let name_end = bytes
        .iter()
        .position(|b| matches!(b, b' ' | b'>' | b'/' | b'\t' | b'\n'))
        .unwrap_or(bytes.len());
    let qname = bytes.get(1..name_end).unwrap_or_default();
    let local_name = qname.rsplit(|b| *b == b':').next().unwrap_or(qname);
    let body = BodyElement {
        text: xml,
        inherited: Vec::new(),
        namespace: namespace.as_bytes().to_vec(),
        local_name,
    };
    decode::decode_with(&body, partner::NAMESPACES, DecodeLimits::default(), |r| {
        T::deserialize(r)
    })
    .map_err(|e| Problem::Corrupt(e.to_string()))
}

/// A response as remembered under its request id.
pub(crate) fn encode_response(response: &Response) -> Result<String, Problem> {
    let mut out = Vec::with_capacity(1024);
    let mut w = Writer::new(&mut out);
    response
        .encode(&mut w)
        .map_err(|e| Problem::Corrupt(e.to_string()))?;
    crate::encode::escape_carriage_returns(&mut out, 0);
    String::from_utf8(out).map_err(|e| Problem::Corrupt(e.to_string()))
}

/// A remembered response, read back strictly.
pub(crate) fn decode_response(op: Operation, xml: &str) -> Result<Response, Problem> {
    let (ns, local) = op.response_element();
    let body = BodyElement {
        text: xml,
        inherited: Vec::new(),
        namespace: ns.as_bytes().to_vec(),
        local_name: local.as_bytes(),
    };
    decode::partner_response(op, &body, DecodeLimits::default())
        .map_err(|e| Problem::Corrupt(e.to_string()))
}
