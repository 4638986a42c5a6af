//! X.509 facts for mutual TLS, below the request path and the store: a certificate's SHA-256
//! fingerprint, subject and validity (what `partner show` lists and the snapshot carries), the
//! expected-subject rule, a partner's client-certificate settings as the hot path holds them
//! ([`ClientAuth`]: pinned fingerprints, or a CA and a subject) and the certificate a connection
//! presented ([`Presented`]). Verifying a chain against a partner's CA uses rustls's own
//! verifier (rustls-webpki, ring's algorithms); the DER is read with x509-parser. Nothing here
//! imports from the crate.

use std::fmt;
use std::sync::OnceLock;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use sha2::{Digest, Sha256};

/// The SHA-256 of a certificate's DER (a leaf's identity when pinned).
pub type Fingerprint = [u8; 32];

/// Why a certificate, a CA bundle, a subject or a fingerprint is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The text is not PEM.
    #[error("not PEM: {0}")]
    NotPem(String),
    /// PEM without a `CERTIFICATE` block.
    #[error("no certificate found (expected -----BEGIN CERTIFICATE----- blocks)")]
    Empty,
    /// More than one certificate where one leaf is registered.
    #[error("{0} certificates: give the partner's own (leaf) certificate only")]
    NotOne(usize),
    /// A block that is not an X.509 certificate.
    #[error("certificate {index}: not a well-formed X.509 certificate: {reason}")]
    Malformed {
        /// 1-based position in the PEM text.
        index: usize,
        /// What the parser said.
        reason: String,
    },
    /// A CA certificate that cannot be a trust anchor.
    #[error("certificate {index}: not usable as a CA: {reason}")]
    NotAnAnchor {
        /// 1-based position in the PEM text.
        index: usize,
        /// What the verifier said.
        reason: String,
    },
    /// An expected subject that does not read as `TYPE=value, …`.
    #[error("{0:?} is not a subject like \"CN=name, O=organisation\"")]
    BadSubject(String),
    /// Not 64 hexadecimal digits (colons allowed).
    #[error("{0:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed)")]
    BadFingerprint(String),
}

/// The SHA-256 of `der`.
pub fn fingerprint(der: &[u8]) -> Fingerprint {
    Sha256::digest(der).into()
}

/// A fingerprint as 64 lower-case hex digits (how it is stored, listed and removed).
pub fn fingerprint_hex(fp: &Fingerprint) -> String {
    use fmt::Write as _;
    fp.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Reads a fingerprint as typed: hex digits in either case, with or without colons.
pub fn parse_fingerprint(text: &str) -> Result<Fingerprint, CertError> {
    let bad = || CertError::BadFingerprint(text.chars().take(100).collect());
    let digits: Vec<u8> = text.trim().bytes().filter(|b| *b != b':').collect();
    if digits.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// What is shown and stored of a registered certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// SHA-256 of the DER.
    pub sha256: Fingerprint,
    /// The subject, `CN=…, O=…` in the certificate's order.
    pub subject: String,
    /// Unix seconds from which it is valid.
    pub not_before: i64,
    /// Unix seconds after which it is not.
    pub not_after: i64,
}

/// A certificate expiring within this many seconds (30 days) is shown as `expiring`.
pub const EXPIRING_WITHIN_SECS: i64 = 30 * 86_400;

/// `valid`, `expiring` (within [`EXPIRING_WITHIN_SECS`]), `expired` or `not-yet-valid` at `now`.
pub fn validity_state(not_before: i64, not_after: i64, now: i64) -> &'static str {
    if now > not_after {
        "expired"
    } else if now < not_before {
        "not-yet-valid"
    } else if not_after - now <= EXPIRING_WITHIN_SECS {
        "expiring"
    } else {
        "valid"
    }
}

/// Reads the facts of one DER certificate.
pub fn describe(der: &[u8]) -> Result<CertInfo, CertError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| CertError::Malformed {
        index: 1,
        reason: e.to_string(),
    })?;
    let validity = cert.validity();
    Ok(CertInfo {
        sha256: fingerprint(der),
        subject: cert.subject().to_string(),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

/// Every `CERTIFICATE` block of `pem` (at least one).
pub fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::NotPem(e.to_string()))?;
    if certs.is_empty() {
        return Err(CertError::Empty);
    }
    Ok(certs)
}

/// One leaf certificate to register: its DER and its facts; it must parse for rustls too.
pub fn single_leaf(pem: &str) -> Result<(CertificateDer<'static>, CertInfo), CertError> {
    let mut certs = pem_certs(pem)?;
    if certs.len() != 1 {
        return Err(CertError::NotOne(certs.len()));
    }
    let der = certs.remove(0);
    webpki::EndEntityCert::try_from(&der).map_err(|e| CertError::Malformed {
        index: 1,
        reason: e.to_string(),
    })?;
    let info = describe(&der)?;
    Ok((der, info))
}

// === subjects ===

/// An expected subject: its attributes as `(TYPE, value)` pairs, types upper-cased, sorted.
/// Two subjects are the same when they have the same attributes, in whatever order they are
/// written (`CN=a, O=b` as OpenSSL prints it, `O=b,CN=a` as RFC 4514 writes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    text: String,
    attrs: Vec<(String, String)>,
}

impl Subject {
    /// Reads `CN=name, O=organisation` (`,` or `;` between attributes, `\,` inside a value).
    pub fn parse(text: &str) -> Result<Subject, CertError> {
        let bad = || CertError::BadSubject(text.chars().take(200).collect());
        let mut attrs = Vec::new();
        let mut current = String::new();
        let mut chars = text.trim().chars();
        let mut parts = Vec::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.push(chars.next().ok_or_else(bad)?),
                ',' | ';' => parts.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        parts.push(current);
        for part in parts {
            let (kind, value) = part.split_once('=').ok_or_else(bad)?;
            let (kind, value) = (kind.trim(), value.trim());
            if kind.is_empty()
                || value.is_empty()
                || !kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
            {
                return Err(bad());
            }
            attrs.push((kind.to_ascii_uppercase(), value.to_string()));
        }
        attrs.sort();
        Ok(Subject {
            text: text.trim().to_string(),
            attrs,
        })
    }

    /// The subject as it was given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a certificate's subject attributes (see [`subject_attrs`]) are these.
    pub fn matches(&self, attrs: &[(String, String)]) -> bool {
        self.attrs == attrs
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A certificate's subject attributes in [`Subject`]'s form; `None` when the certificate does
/// not parse or an attribute is not a string.
pub fn subject_attrs(der: &[u8]) -> Option<Vec<(String, String)>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let mut attrs = Vec::new();
    for attr in cert.subject().iter_attributes() {
        let kind = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
            .map_or_else(|_| attr.attr_type().to_id_string(), str::to_string);
        attrs.push((kind.to_ascii_uppercase(), attr.as_str().ok()?.to_string()));
    }
    attrs.sort();
    Some(attrs)
}

// === a partner's settings, as the snapshot holds them ===

/// A partner's client-certificate settings. A call is accepted when its certificate is one of
/// the pinned ones (and valid now), or chains to the CA and has the expected subject.
#[derive(Clone, Debug, Default)]
pub struct ClientAuth {
    /// Registered leaf certificates.
    pub pinned: Vec<PinnedCert>,
    /// A CA and the subject its certificates must have.
    pub ca: Option<ClientCa>,
}

/// A registered leaf certificate: matched by the SHA-256 of its DER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedCert {
    /// SHA-256 of the DER.
    pub sha256: Fingerprint,
    /// Unix seconds from which it is accepted.
    pub not_before: i64,
    /// Unix seconds after which it is refused.
    pub not_after: i64,
}

/// A partner CA and the expected subject.
#[derive(Clone, Debug)]
pub struct ClientCa {
    anchors: Vec<TrustAnchor<'static>>,
    subject: Subject,
}

/// Why a presented chain does not satisfy a partner's CA.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The chain does not verify (signature, issuer, validity dates, key usage).
    #[error("{0}")]
    Invalid(String),
    /// It verifies, but the leaf's subject is another one.
    #[error("subject {got:?} is not the expected {want:?}")]
    Subject {
        /// The leaf's subject (bounded).
        got: String,
        /// The expected subject.
        want: String,
    },
}

impl ClientCa {
    /// The CA certificate(s) of `pem` as trust anchors, and the expected `subject`.
    pub fn new(pem: &str, subject: &str) -> Result<ClientCa, CertError> {
        let anchors = pem_certs(pem)?
            .iter()
            .enumerate()
            .map(|(i, der)| {
                webpki::anchor_from_trusted_cert(der)
                    .map(|a| a.to_owned())
                    .map_err(|e| CertError::NotAnAnchor {
                        index: i + 1,
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ClientCa {
            anchors,
            subject: Subject::parse(subject)?,
        })
    }

    /// The expected subject.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// Verifies `presented`'s chain to one of the anchors at `now` for client authentication,
    /// then its leaf's subject.
    pub fn verify(&self, presented: &Presented, now: UnixTime) -> Result<(), ChainError> {
        let (leaf, intermediates) = presented
            .chain
            .split_first()
            .ok_or_else(|| ChainError::Invalid("empty chain".into()))?;
        let leaf_cert = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| ChainError::Invalid(e.to_string()))?;
        leaf_cert
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &self.anchors,
                intermediates,
                now,
                webpki::KeyUsage::client_auth(),
                None,
                None,
            )
            .map_err(|e| ChainError::Invalid(e.to_string()))?;
        match presented.subject_attrs() {
            Some(attrs) if self.subject.matches(attrs) => Ok(()),
            _ => Err(ChainError::Subject {
                got: describe(leaf)
                    .map(|i| i.subject.chars().take(200).collect())
                    .unwrap_or_default(),
                want: self.subject.to_string(),
            }),
        }
    }
}

// === what a connection presented ===

/// The certificate chain a TLS client presented, read once per connection: the leaf's
/// fingerprint at once (one SHA-256 per handshake with a certificate), its subject only when a
/// partner with a CA asks.
#[derive(Debug)]
pub struct Presented {
    chain: Vec<CertificateDer<'static>>,
    sha256: Fingerprint,
    subject: OnceLock<Option<Vec<(String, String)>>>,
}

impl Presented {
    /// The chain, leaf first; `None` when it is empty.
    pub fn new(chain: Vec<CertificateDer<'static>>) -> Option<Presented> {
        let sha256 = fingerprint(chain.first()?);
        Some(Presented {
            chain,
            sha256,
            subject: OnceLock::new(),
        })
    }

    /// SHA-256 of the leaf.
    pub fn sha256(&self) -> &Fingerprint {
        &self.sha256
    }

    /// The leaf's subject attributes (parsed on first use).
    pub fn subject_attrs(&self) -> Option<&[(String, String)]> {
        self.subject
            .get_or_init(|| self.chain.first().and_then(|leaf| subject_attrs(leaf)))
            .as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_with_or_without_colons() {
        let fp = [0xabu8; 32];
        let hex = fingerprint_hex(&fp);
        assert_eq!(hex.len(), 64);
        assert_eq!(parse_fingerprint(&hex), Ok(fp));
        let colons: Vec<String> = fp.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(parse_fingerprint(&colons.join(":")), Ok(fp));
        assert!(parse_fingerprint("abcd").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn subjects_compare_as_attribute_sets() {
        let a = Subject::parse("CN=bss.example, O=Example GmbH").expect("subject");
        let b = Subject::parse("o=Example GmbH;CN=bss.example").expect("subject");
        assert_eq!(a.attrs, b.attrs);
        let c = Subject::parse(r"CN=a\, b").expect("escaped comma");
        assert_eq!(c.attrs, vec![("CN".to_string(), "a, b".to_string())]);
        for bad in ["", "CN", "=x", "CN=", "C N=x"] {
            assert!(Subject::parse(bad).is_err(), "{bad:?}");
        }
    }
}
