//! HTTP framing of a SOAP request, for both directions (partner calls in `pipeline`, TSP
//! callbacks in `callback`): the content type names the SOAP version (and SOAP 1.2's
//! `action`), at most one SOAPAction, no content coding the gateway would have to decompress.
//! Also the answer of the endpoints whose reply the listener frames the same way (the callback
//! relay, enrollment). Uses only `http` and the envelope's [`SoapVersion`].

use http::HeaderMap;

use crate::envelope::SoapVersion;

/// The HTTP framing of a SOAP request is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Neither `text/xml` (SOAP 1.1) nor `application/soap+xml` (SOAP 1.2).
    #[error("content type {0:?} is not text/xml (SOAP 1.1) or application/soap+xml (SOAP 1.2)")]
    ContentType(String),
    /// The content type names one SOAP version and the envelope is the other.
    #[error("the content type does not match the envelope's SOAP version")]
    VersionConflict,
    /// More than one SOAPAction header.
    #[error("more than one SOAPAction header")]
    DuplicateAction,
    /// A `Content-Encoding` other than `identity` (gzip, deflate, …): the gateway checks the
    /// envelope as sent and does not decompress (a decompression bomb would get past the body
    /// limit), so it says so instead of failing on the compressed bytes.
    #[error("content encoding {0:?} is not accepted: send the envelope uncompressed")]
    ContentEncoding(String),
}

impl TransportError {
    /// The rule name in the fault detail.
    pub fn rule(&self) -> &'static str {
        match self {
            TransportError::ContentType(_) => "content-type",
            TransportError::VersionConflict => "soap-version",
            TransportError::DuplicateAction => "soap-action",
            TransportError::ContentEncoding(_) => "content-encoding",
        }
    }

    /// The HTTP status of the fault (RFC 9110 §15.5.16: 415 for an unsupported content coding).
    pub fn status(&self) -> http::StatusCode {
        match self {
            TransportError::ContentEncoding(_) => http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }
}

/// Refuses a request body with a content coding other than `identity`.
pub fn content_encoding(headers: &HeaderMap) -> Result<(), TransportError> {
    for value in headers.get_all(http::header::CONTENT_ENCODING) {
        let text = String::from_utf8_lossy(value.as_bytes());
        let identity = text
            .split(',')
            .map(str::trim)
            .all(|c| c.is_empty() || c.eq_ignore_ascii_case("identity"));
        if !identity {
            return Err(TransportError::ContentEncoding(
                text.chars().take(100).collect(),
            ));
        }
    }
    Ok(())
}

/// The SOAP version a content type names, and the `action` parameter of a SOAP 1.2 one.
pub fn content_type_version(
    headers: &HeaderMap,
) -> Result<(SoapVersion, Option<String>), TransportError> {
    let value = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let version = match media.as_str() {
        "text/xml" => SoapVersion::Soap11,
        "application/soap+xml" => SoapVersion::Soap12,
        _ => {
            return Err(TransportError::ContentType(
                value.chars().take(100).collect(),
            ))
        }
    };
    let mut action = None;
    for param in parts {
        if let Some((k, v)) = param.split_once('=') {
            if k.trim().eq_ignore_ascii_case("action") {
                action = Some(v.trim().trim_matches('"').to_string());
            }
        }
    }
    Ok((version, action))
}

/// The SOAPAction of a request: the header (at most one), else the content type's `action`.
pub fn soap_action(
    headers: &HeaderMap,
    from_content_type: Option<String>,
) -> Result<Option<String>, TransportError> {
    let mut values = headers.get_all("soapaction").iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(TransportError::DuplicateAction);
    }
    let header = first
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .trim()
                .trim_matches('"')
                .to_string()
        })
        .filter(|a| !a.is_empty());
    Ok(header.or(from_content_type).filter(|a| !a.is_empty()))
}

/// The answer of the callback relay or the enrollment endpoint, for the listener to frame,
/// count and log.
pub struct SoapAnswer {
    /// HTTP status.
    pub status: http::StatusCode,
    /// The SOAP envelope.
    pub body: Vec<u8>,
    /// Its SOAP version.
    pub version: SoapVersion,
    /// The partner, once known (a callback's; never an enrollment's).
    pub partner: Option<String>,
    /// The operation, once known.
    pub operation: Option<&'static str>,
    /// `ok` or the refusal's label.
    pub outcome: &'static str,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(codings: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in codings {
            h.append(
                http::header::CONTENT_ENCODING,
                http::HeaderValue::from_str(c).unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_the_identity_coding_is_accepted() {
        assert_eq!(content_encoding(&headers(&[])), Ok(()));
        assert_eq!(content_encoding(&headers(&["identity"])), Ok(()));
        assert_eq!(content_encoding(&headers(&["Identity", ""])), Ok(()));
        for bad in [
            &["gzip"][..],
            &["identity, br"],
            &["identity", "deflate"],
            &["x-gzip"],
        ] {
            let err = content_encoding(&headers(bad)).unwrap_err();
            assert_eq!(err.rule(), "content-encoding");
            assert_eq!(err.status(), http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
    }
}
