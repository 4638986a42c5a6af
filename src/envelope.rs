//! Stage: envelope scan. Takes the request body bytes and returns an [`Envelope`]: the SOAP
//! version, the header blocks and the one body element, each as a byte slice with the namespace
//! declarations it inherits — or an [`EnvelopeError`].
//!
//! This is a cheap streaming pass (quick-xml): it reads element names and skips over content.
//! The typed decode of the body happens later ([`crate::decode`]), after the caller is known to be
//! authentic and permitted.
//!
//! The rooms: this file holds the vocabulary the others use (the SOAP versions, [`Envelope`],
//! [`BodyElement`], [`HeaderBlock`], [`EnvelopeError`]); `scan.rs` reads an envelope ([`scan`],
//! [`scan_outlined`], [`scan_to_body`]); `fault.rs` reads the body element of a scanned envelope
//! as a SOAP fault ([`parse_fault`]); both over `tag.rs`, the pieces of a start tag they read
//! (namespace declarations, names as slices of the input). `scan.rs` and `fault.rs` do not use
//! each other. Uses `crate::xml` and `crate::limit` only.

mod fault;
mod scan;
mod tag;

pub use fault::{parse_fault, FaultCode, SoapFault, MAX_FAULT_NODES};
pub use scan::{scan, scan_outlined, scan_to_body, OpenEnvelope};

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

#[cfg(test)]
mod tests;
