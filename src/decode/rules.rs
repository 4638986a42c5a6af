//! What the strict decode enforces and how it reports a refusal: the schema [`Rule`]s with their
//! stable names, [`DecodeError`] (path, rule, detail), and the decoder's own bounds
//! ([`DecodeLimits`]). Uses nothing else of the crate; every other room of `decode` uses it.

/// The schema rule a message broke. The string forms are stable: they appear in
/// `InvalidRequest` faults and in statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// An element the contract does not define.
    UnknownElement,
    /// A contract element where the content model does not allow it (out of order).
    ElementOutOfOrder,
    /// A contract element inside a parent that does not allow it.
    NotAllowedHere,
    /// A single element given twice.
    DuplicateElement,
    /// More repetitions of a list element than its maxOccurs.
    MaxOccurs,
    /// A required element is missing.
    MissingElement,
    /// An element in a namespace the contract does not use there.
    WrongNamespace,
    /// An element without a namespace where the contract requires one.
    UnqualifiedElement,
    /// A prefix that was never declared.
    UndeclaredPrefix,
    /// An attribute (the contract declares none; xsi:type and xsi:nil included).
    AttributeNotAllowed,
    /// A value that is not in the enumeration.
    Enumeration,
    /// A value that does not match the type's pattern.
    Pattern,
    /// A value shorter than minLength (in characters).
    MinLength,
    /// A value longer than maxLength (in characters).
    MaxLength,
    /// A number below the minimum.
    MinInclusive,
    /// A number above the maximum.
    MaxInclusive,
    /// A value that is not of the element's type (`abc` for an integer, a bad date).
    Type,
    /// Text where the content model allows only elements.
    TextNotAllowed,
    /// Leading or trailing whitespace around a value.
    Whitespace,
    /// A character XML 1.0 does not allow.
    InvalidCharacter,
    /// Nested deeper than the decoder allows.
    Depth,
    /// A processing instruction.
    ProcessingInstruction,
    /// A DOCTYPE (and with it any entity declaration).
    Doctype,
    /// An entity reference other than the five predefined ones.
    Entity,
    /// Not well-formed XML.
    Malformed,
    /// Anything else the generated decoder refused.
    Invalid,
}

impl Rule {
    /// The stable name used in faults.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::UnknownElement => "unknown-element",
            Rule::ElementOutOfOrder => "element-out-of-order",
            Rule::NotAllowedHere => "element-not-allowed-here",
            Rule::DuplicateElement => "duplicate-element",
            Rule::MaxOccurs => "maxOccurs",
            Rule::MissingElement => "missing-element",
            Rule::WrongNamespace => "wrong-namespace",
            Rule::UnqualifiedElement => "unqualified-element",
            Rule::UndeclaredPrefix => "undeclared-prefix",
            Rule::AttributeNotAllowed => "attribute-not-allowed",
            Rule::Enumeration => "enumeration",
            Rule::Pattern => "pattern",
            Rule::MinLength => "minLength",
            Rule::MaxLength => "maxLength",
            Rule::MinInclusive => "minInclusive",
            Rule::MaxInclusive => "maxInclusive",
            Rule::Type => "type",
            Rule::TextNotAllowed => "text-not-allowed",
            Rule::Whitespace => "whitespace",
            Rule::InvalidCharacter => "invalid-character",
            Rule::Depth => "depth",
            Rule::ProcessingInstruction => "processing-instruction",
            Rule::Doctype => "doctype",
            Rule::Entity => "entity",
            Rule::Malformed => "malformed",
            Rule::Invalid => "invalid",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a body did not decode: where, which rule, and a short human explanation. The detail never
/// quotes more than a bounded prefix of the offending value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {rule}: {detail}")]
pub struct DecodeError {
    /// Element path from the body element, e.g. `/CreateAccount/Contact/FirstName`.
    pub path: String,
    /// The rule that was broken.
    pub rule: Rule,
    /// A short explanation for the partner's developer.
    pub detail: String,
}

/// Bounds the decoder enforces on its own (the envelope scan bounds the document as a whole).
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// Maximum element depth below and including the body element.
    pub max_depth: usize,
    /// Allow the SOAP envelope's header attributes (`mustUnderstand`, `actor`, `role`,
    /// `encodingStyle`, `relay`) on the decoded element itself: a header block carries them,
    /// and the envelope scan has already read them.
    pub header_block: bool,
}

impl DecodeLimits {
    /// The limits for a SOAP header block.
    pub fn header_block() -> Self {
        DecodeLimits {
            header_block: true,
            ..DecodeLimits::default()
        }
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        // The deepest path in the contract is 5 elements (e.g. GetFeatureResponse/FeatureInstance/
        // Settings/DoNotDisturb/AllowList); 16 leaves room without allowing abuse.
        DecodeLimits {
            max_depth: 16,
            header_block: false,
        }
    }
}
