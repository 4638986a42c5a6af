//! `xs:pattern` facets: XML Schema regular expressions are not the regex crate's.
//!
//! build.rs includes this file too: it translates every pattern with [`to_rust`] before the
//! generated code compiles it, and replaces the contract's "no surrounding whitespace" patterns
//! ([`Shape`]) with a call to [`trimmed`].
//!
//! What differs (XML Schema 1.0 Part 2, Appendix F):
//! - `\s` is exactly space, tab, CR and LF (the regex crate: every Unicode space, so a name
//!   starting with a no-break space, valid by the schema, was refused); `\S` its complement;
//! - `.` is any character but CR and LF (the regex crate: but LF);
//! - `^` and `$` are ordinary characters (the regex crate: anchors); in a character class, `&`
//!   and `~` are ordinary too (the regex crate: `&&`, `~~` set operations).
//!
//! Constructs the contract does not use and that would need more than a rewrite (`\i`, `\c`,
//! `\w`, Unicode block escapes `\p{IsBasicLatin}`, class subtraction `[a-z-[aeiou]]`) are
//! refused, so a schema that starts using one fails the build instead of being checked wrongly.

/// XML Schema's `\s`, as a regex crate class.
const SPACE: &str = r"[\x20\t\n\r]";
/// XML Schema's `\S`.
const NOT_SPACE: &str = r"[^\x20\t\n\r]";
/// XML Schema's `.` outside a class.
const ANY_BUT_NEWLINE: &str = r"[^\n\r]";

/// The regex crate's spelling of an XML Schema pattern (unanchored; the caller anchors it).
pub fn to_rust(xsd: &str) -> Result<String, String> {
    let mut out = String::with_capacity(xsd.len() + 16);
    let mut chars = xsd.chars().peekable();
    // Depth of character classes (XML Schema only nests them for subtraction, refused below).
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_class_start = std::mem::take(&mut class_start);
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    return Err("a pattern cannot end with a backslash".into());
                };
                match e {
                    's' => out.push_str(SPACE),
                    'S' => out.push_str(NOT_SPACE),
                    'i' | 'I' | 'c' | 'C' | 'w' | 'W' => {
                        return Err(format!("\\{e} is not supported (XML name characters / word characters differ from the regex crate's)"));
                    }
                    'p' | 'P' => {
                        let mut name = String::new();
                        for n in chars.by_ref() {
                            name.push(n);
                            if n == '}' {
                                break;
                            }
                        }
                        if name.starts_with("{Is") {
                            return Err(format!("block escape \\{e}{name} is not supported"));
                        }
                        out.push('\\');
                        out.push(e);
                        out.push_str(&name);
                    }
                    _ => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '[' if in_class => {
                return Err("character class subtraction is not supported".into());
            }
            '[' => {
                in_class = true;
                class_start = true;
                out.push('[');
            }
            ']' if in_class && !at_class_start => {
                in_class = false;
                out.push(']');
            }
            '^' if in_class && at_class_start => {
                class_start = true; // `[^]…` : a `]` right after `[^` is still the first character
                out.push('^');
            }
            '-' if in_class && chars.peek() == Some(&'[') => {
                return Err("character class subtraction is not supported".into());
            }
            '-' if in_class && chars.peek() == Some(&'-') => {
                return Err("`--` in a character class is not supported".into());
            }
            '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            '.' if !in_class => out.push_str(ANY_BUT_NEWLINE),
            '^' | '$' if !in_class => {
                out.push('\\');
                out.push(c);
            }
            '(' if !in_class && chars.peek() == Some(&'?') => {
                return Err("`(?` is not XML Schema syntax".into());
            }
            _ => out.push(c),
        }
    }
    if in_class {
        return Err("unterminated character class".into());
    }
    Ok(out)
}

/// Patterns that only say "no whitespace at either end", checked without a regex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `\S(.*\S)?`: non-empty, no XML Schema whitespace at either end, no CR or LF at all.
    TrimmedLine,
    /// `\S([\s\S]*\S)?`: non-empty, no XML Schema whitespace at either end.
    TrimmedText,
}

impl Shape {
    /// The shape of an XML Schema pattern, if it is one of these.
    pub fn of(xsd: &str) -> Option<Shape> {
        match xsd {
            r"\S(.*\S)?" => Some(Shape::TrimmedLine),
            r"\S([\s\S]*\S)?" => Some(Shape::TrimmedText),
            _ => None,
        }
    }
}

/// Whether `s` matches the pattern of [`Shape::TrimmedLine`] (`single_line`) or
/// [`Shape::TrimmedText`]. XML Schema's whitespace characters are ASCII, so the first and
/// last bytes decide (a byte of a multi-byte character is never ASCII).
pub fn trimmed(s: &str, single_line: bool) -> bool {
    let b = s.as_bytes();
    let space = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r');
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            !space(first)
                && !space(last)
                && (!single_line || !b.iter().any(|c| matches!(c, b'\n' | b'\r')))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn compiled(xsd: &str) -> regex::Regex {
        regex::Regex::new(&format!("^(?:{})$", to_rust(xsd).unwrap())).unwrap()
    }

    #[test]
    fn xml_schema_whitespace_is_four_characters() {
        let line = compiled(r"\S(.*\S)?");
        // U+00A0 (no-break space) and U+2028 are not XML Schema whitespace: valid at the ends.
        assert!(line.is_match("\u{A0}Müller"));
        assert!(line.is_match("Müller\u{2028}"));
        assert!(!line.is_match(" Müller"));
        assert!(!line.is_match("Müller\t"));
        // `.` does not match CR (the regex crate's `.` does).
        assert!(!line.is_match("a\rb"));
        assert!(!line.is_match("a\nb"));
        let text = compiled(r"\S([\s\S]*\S)?");
        assert!(text.is_match("a\r\nb"));
        assert!(!text.is_match("a\r\n"));
        assert!(!text.is_match(""));
    }

    #[test]
    fn anchors_are_ordinary_characters_and_classes_keep_their_meaning() {
        let caret = compiled(r"a^b$");
        assert!(caret.is_match("a^b$"));
        assert!(!caret.is_match("ab"));
        let class = compiled(r"[a&~-]+");
        assert!(class.is_match("a&~-"));
        let negated = compiled(r"[^\s]+");
        assert!(negated.is_match("\u{A0}x"));
        assert!(!negated.is_match("x y"));
        let mac = compiled(r"([0-9A-F]{2}:){5}[0-9A-F]{2}");
        assert!(mac.is_match("00:1A:2B:3C:4D:5E"));
        assert!(!mac.is_match("00:1a:2B:3C:4D:5E"));
        let e164 = compiled(r"\+[1-9][0-9]{1,14}");
        assert!(e164.is_match("+4930123456"));
        let dot_in_class = compiled(r"[.]");
        assert!(dot_in_class.is_match("."));
        assert!(!dot_in_class.is_match("x"));
    }

    #[test]
    fn unsupported_constructs_fail_the_build() {
        for p in [
            r"\i\c*",
            r"\w+",
            r"\p{IsBasicLatin}",
            r"[a-z-[aeiou]]",
            r"[a--z]",
            r"(?i)a",
            r"[ab",
            "a\\",
        ] {
            assert!(to_rust(p).is_err(), "{p} accepted");
        }
        assert_eq!(to_rust(r"\p{Lu}+").unwrap(), r"\p{Lu}+");
    }

    #[test]
    fn shapes_are_recognised_exactly() {
        assert_eq!(Shape::of(r"\S(.*\S)?"), Some(Shape::TrimmedLine));
        assert_eq!(Shape::of(r"\S([\s\S]*\S)?"), Some(Shape::TrimmedText));
        assert_eq!(Shape::of(r"\S(.*\S)"), None);
        assert_eq!(Shape::of(r"[A-Z]{3}"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// The direct checks agree with the translated patterns on strings of the characters
        /// that matter (XML Schema whitespace, other Unicode spaces, multi-byte characters).
        #[test]
        fn direct_checks_match_the_patterns(
            s in proptest::collection::vec(
                proptest::sample::select(vec![' ', '\t', '\n', '\r', '\u{A0}', '\u{2028}', 'a', 'é', '€', '😀']),
                0..8,
            ).prop_map(|v| v.into_iter().collect::<String>())
        ) {
            let line = compiled(r"\S(.*\S)?");
            let text = compiled(r"\S([\s\S]*\S)?");
            prop_assert_eq!(trimmed(&s, true), line.is_match(&s), "{:?}", s);
            prop_assert_eq!(trimmed(&s, false), text.is_match(&s), "{:?}", s);
        }
    }
}
