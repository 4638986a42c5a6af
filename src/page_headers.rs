//! The security headers of every HTML page the gateway serves (the operators' dashboard, the REST
//! face's docs page): the page's Content-Security-Policy, no framing, no MIME sniffing, no
//! referrer. Uses only `http`.

use http::{header, HeaderMap, HeaderValue};

/// Sets the headers every HTML page carries, with `csp` as its Content-Security-Policy.
pub fn insert(h: &mut HeaderMap, csp: &'static str) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_header_is_set() {
        let mut h = HeaderMap::new();
        insert(&mut h, "default-src 'none'");
        assert_eq!(h["content-security-policy"], "default-src 'none'");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h.len(), 4);
    }
}
