//! `application/x-www-form-urlencoded` bodies and query strings, and cookies.

use http::{header, HeaderMap};

/// Decoded name/value pairs, in order.
#[derive(Clone, Debug, Default)]
pub struct Form(Vec<(String, String)>);

/// `%XX` escapes and `+` (a space); `None` for a bad escape or non-UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                // Two hex digits exactly (from_str_radix alone would take "%+5").
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes a path segment or query value (RFC 3986 unreserved characters stay).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Form {
    /// Parses `a=1&b=2`; `None` when an escape is malformed.
    pub fn parse(text: &str) -> Option<Form> {
        let mut pairs = Vec::new();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            pairs.push((decode(k)?, decode(v)?));
        }
        Some(Form(pairs))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether `name` was sent (with any value).
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

/// The value of cookie `name` (the first one sent).
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        let f = Form::parse("a=1+2&b=%3Cx%3E&a=3&c").unwrap();
        assert_eq!(f.get("a"), Some("1 2"));
        assert_eq!(f.all("a"), vec!["1 2", "3"]);
        assert_eq!(f.get("b"), Some("<x>"));
        assert!(f.has("c") && f.text("c").is_none());
        assert!(Form::parse("a=%zz").is_none());
        assert!(Form::parse("a=%ff").is_none());
        assert!(decode("%+5").is_none(), "two hex digits, no sign");
        assert!(decode("%4").is_none());
        assert_eq!(decode("%41%2b").as_deref(), Some("A+"));
        assert_eq!(encode("P 1/<x>"), "P%201%2F%3Cx%3E");
    }

    #[test]
    fn cookies_are_found() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1; pg_session=abc".parse().unwrap());
        assert_eq!(cookie(&h, "pg_session").as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "b"), None);
    }
}
