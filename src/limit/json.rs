//! The limits pass of a JSON body (the REST face), before anything parses it and before the
//! caller is authenticated, as `check_xml` is for the SOAP face: one byte scan for nesting depth,
//! members or items per object or array, and string length, bounded by the XML structure limits
//! of the same names (`limits.xml.max_depth`, `max_children`, `max_text_bytes`). Whether the
//! body is well-formed JSON is the decoder's to say; this pass only keeps it small.

use super::LimitError;
use crate::config::XmlLimits;

/// Checks `body` against `limits`: objects and arrays nested at most `max_depth` deep, at most
/// `max_children` members or items in one, no string (escapes counted as written) longer than
/// `max_text_bytes`.
pub fn check_json(body: &[u8], limits: &XmlLimits) -> Result<(), LimitError> {
    let over = |what: &'static str, limit: usize| LimitError::Json { what, limit };
    // Commas seen in each open object or array.
    let mut open: Vec<usize> = Vec::new();
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        match b {
            b'"' => {
                let start = i + 1;
                i = start;
                while let Some(&c) = body.get(i) {
                    match c {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
                if i.min(body.len()) - start > limits.max_text_bytes {
                    return Err(over("max_text_bytes", limits.max_text_bytes));
                }
            }
            b'{' | b'[' => {
                if open.len() >= limits.max_depth {
                    return Err(over("max_depth", limits.max_depth));
                }
                open.push(0);
            }
            b'}' | b']' => {
                open.pop();
            }
            b',' => {
                if let Some(commas) = open.last_mut() {
                    *commas += 1;
                    if *commas >= limits.max_children {
                        return Err(over("max_children", limits.max_children));
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> XmlLimits {
        XmlLimits {
            max_depth: 3,
            max_children: 3,
            max_text_bytes: 5,
            ..XmlLimits::default()
        }
    }

    #[test]
    fn depth_children_and_strings_are_bounded_and_strings_hide_their_brackets() {
        let check = |s: &str| check_json(s.as_bytes(), &limits()).map_err(|e| e.key());
        assert_eq!(check(r#"{"a":[{"b":1}]}"#), Ok(()));
        assert_eq!(check(r#"{"a":[[{}]]}"#), Err("limits.xml.max_depth"));
        assert_eq!(check(r#"{"a":"[[[[","b":1}"#), Ok(()));
        assert_eq!(
            check(r#"{"a":"\"[[[[\""}"#),
            Err("limits.xml.max_text_bytes")
        );
        assert_eq!(check(r#"{"abcde":"ab\"c"}"#), Ok(()));
        assert_eq!(check(r#"[1,2,3]"#), Ok(()));
        assert_eq!(check(r#"[1,2,3,4]"#), Err("limits.xml.max_children"));
        assert_eq!(
            check(r#"{"a":"unterminated"#),
            Err("limits.xml.max_text_bytes")
        );
        assert_eq!(check(r#"]]]]{"#), Ok(()));
    }
}
