//! `application/x-www-form-urlencoded` bodies and query strings (the `form_urlencoded` crate),
//! percent-encoded path segments (`percent-encoding`), and cookies (`cookie`): the web's rules
//! from the crates every Rust web stack uses, with one stricter rule of ours: what does not
//! decode to UTF-8 is refused, never replaced by U+FFFD.

use std::borrow::Cow;

use cookie::{Cookie, SameSite};
use http::{header, HeaderMap, HeaderValue};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What [`encode`] leaves as it is: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Decoded name/value pairs, in order.
#[derive(Clone, Debug, Default)]
pub struct Form(Vec<(String, String)>);

/// A path segment's `%XX` escapes decoded; `None` when the result is not UTF-8. A `%` not
/// followed by two hex digits stays as written (as in browsers and `url`).
pub fn decode_segment(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(Cow::into_owned)
}

/// Percent-encodes a path segment or query value (RFC 3986 unreserved characters stay).
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

impl Form {
    /// Parses `a=1&b=2` as browsers send it (`+` is a space, `%XX` an escape, a `%` that starts
    /// none stays as written); `None` when a name or value does not decode to UTF-8.
    pub fn parse(text: &str) -> Option<Form> {
        // `&`, `=` and `+` are ASCII and no UTF-8 sequence holds an ASCII byte, so the whole
        // text decodes to UTF-8 exactly when every name and value does.
        percent_decode_str(text).decode_utf8().ok()?;
        Some(Form(
            form_urlencoded::parse(text.as_bytes())
                .into_owned()
                .collect(),
        ))
    }

    /// Every pair, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs().find(|(k, _)| *k == name).map(|(_, v)| v)
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
        self.pairs()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .collect()
    }

    /// Whether `name` was sent (with any value).
    pub fn has(&self, name: &str) -> bool {
        self.pairs().any(|(k, _)| k == name)
    }
}

/// The value of cookie `name` (the first one sent; pairs that are not cookies are skipped).
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A `Set-Cookie` for the dashboard: `HttpOnly`, `SameSite=Strict`, `Secure` when `secure`,
/// for `path` and `max_age` seconds (0 removes it).
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> HeaderValue {
    let seconds = i64::try_from(max_age).unwrap_or(i64::MAX);
    let cookie = Cookie::build((name, value))
        .path(path)
        .max_age(cookie::time::Duration::seconds(seconds))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .build();
    // Names and values are ours (constants, base64url tokens): always a valid header.
    HeaderValue::from_str(&cookie.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
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
        assert_eq!(Form::parse("a=%41%2b").unwrap().get("a"), Some("A+"));
        // Not UTF-8 once decoded: refused, in a name or a value, alone or split by `&`.
        for bad in ["a=%ff", "%ff=1", "a=%C3&b=%A9", "a=%C3"] {
            assert!(Form::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(Form::parse("a=%C3%A9").unwrap().get("a"), Some("é"));
        // A `%` that starts no escape stays as written (WHATWG), as do `%+5` and `%4`.
        let f = Form::parse("a=%zz&b=%+5&c=%4").unwrap();
        assert_eq!(
            f.pairs().collect::<Vec<_>>(),
            [("a", "%zz"), ("b", "% 5"), ("c", "%4")]
        );
    }

    #[test]
    fn segments_decode_and_encode() {
        assert_eq!(encode("P 1/<x>+é"), "P%201%2F%3Cx%3E%2B%C3%A9");
        assert_eq!(
            decode_segment("P%201%2F%3Cx%3E%2B%C3%A9").as_deref(),
            Some("P 1/<x>+é")
        );
        assert_eq!(
            decode_segment("a+b").as_deref(),
            Some("a+b"),
            "+ is a plus in a path"
        );
        assert!(decode_segment("%ff").is_none());
    }

    #[test]
    fn cookies_are_found() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1; pg_session=abc".parse().unwrap());
        h.append(header::COOKIE, "pg_session=later".parse().unwrap());
        assert_eq!(cookie(&h, "pg_session").as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "a").as_deref(), Some("1"));
        assert_eq!(cookie(&h, "b"), None);
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "junk; pg_session=x".parse().unwrap());
        assert_eq!(cookie(&h, "pg_session").as_deref(), Some("x"));
    }

    #[test]
    fn set_cookies_carry_the_flags() {
        let attrs = |v: HeaderValue| -> Vec<String> {
            let mut a: Vec<String> = v.to_str().unwrap().split("; ").map(str::to_owned).collect();
            a.sort();
            a
        };
        assert_eq!(
            attrs(set_cookie("pg_session", "t0k", "/ui", 3600, false)),
            [
                "HttpOnly",
                "Max-Age=3600",
                "Path=/ui",
                "SameSite=Strict",
                "pg_session=t0k"
            ]
        );
        assert_eq!(
            attrs(set_cookie("pg_login", "", "/ui/login", 0, true)),
            [
                "HttpOnly",
                "Max-Age=0",
                "Path=/ui/login",
                "SameSite=Strict",
                "Secure",
                "pg_login="
            ]
        );
    }
}
