//! The strict pull reader the generated JSON decoders drive: JSON tokens (RFC 8259) read straight
//! into the generated types, strings unescaped (borrowed when they hold no escape), nesting depth
//! bounded, every refusal named with a JSON Pointer path (RFC 6901) and a [`Rule`]. Values are
//! checked by the decoder's own checks (`crate::decode::leaf_text_problem`) and the types'
//! generated constructors (`DeserializeBytes`), exactly as the XML decoders check them. Uses
//! `crate::decode` only.
//!
//! There is no "skip a value": an unknown member, a wrong type or a bad value ends the decode at
//! once, so the reader never descends deeper than the contract's content models do, and the
//! first error in document order is the one reported.

use std::borrow::Cow;

use xsd_parser_types::quick_xml::{DeserializeBytes, DeserializeHelper};

use super::JsonDecode;
use crate::decode::{
    leaf_text_problem, quote_value, refused_value, DecodeError, DecodeLimits, Rule,
};

/// The longest JSON string (a value or a member name) the reader accepts, in characters: the
/// largest `maxLength` of the contracts (enrollment's certificate request), so the bound refuses
/// no value a facet would accept; it holds before any facet is checked.
pub const MAX_STRING_CHARS: usize = 16_384;

/// At most this many characters of an unknown member name go into an error's path.
const PATH_KEY_CHARS: usize = 64;

/// One step of the path to the value being read.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// An object member (a contract element name).
    Key(&'static str),
    /// An array item.
    Index(usize),
}

/// The reader over one JSON document.
pub struct JsonReader<'b> {
    /// The document, validated as UTF-8 once (an empty body reads as `{}`).
    text: &'b str,
    pos: usize,
    /// Open objects and arrays.
    depth: usize,
    max_depth: usize,
    path: Vec<Step>,
    /// The text of a member taken from the URL, for the next value read.
    pending: Option<&'b str>,
    helper: DeserializeHelper,
}

/// The members of an object being read: those taken from the URL first, then the body's.
pub struct Members<'u, 'b> {
    url: std::slice::Iter<'u, (&'b str, &'b str)>,
    /// A member's step is on the path.
    open: bool,
    /// No body member read yet.
    first: bool,
}

/// The JSON type of the value at a position, for the "expected X, found Y" errors.
fn found(byte: Option<u8>) -> &'static str {
    match byte {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'-' | b'0'..=b'9') => "a number",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "something else",
    }
}

impl<'b> JsonReader<'b> {
    /// A reader over `body`; an empty body is the empty object. Not UTF-8: [`Rule::Malformed`].
    pub fn new(body: &'b [u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        let text = match std::str::from_utf8(body) {
            Ok("") => "{}",
            Ok(text) => text,
            Err(e) => {
                return Err(DecodeError {
                    path: String::new(),
                    rule: Rule::Malformed,
                    detail: format!(
                        "not valid UTF-8 at byte {}: JSON text must be UTF-8",
                        e.valid_up_to()
                    ),
                })
            }
        };
        Ok(JsonReader {
            text,
            pos: 0,
            depth: 0,
            max_depth: limits.max_depth,
            path: Vec::with_capacity(8),
            pending: None,
            helper: DeserializeHelper::default(),
        })
    }

    /// After the root value: only whitespace may follow.
    pub fn finish(&mut self) -> Result<(), DecodeError> {
        self.skip_ws();
        if self.pos < self.text.len() {
            return Err(self.malformed("more data after the JSON document"));
        }
        Ok(())
    }

    /// The path of the value being read, as a JSON Pointer.
    fn pointer(&self) -> String {
        let mut out = String::new();
        for step in &self.path {
            out.push('/');
            match step {
                Step::Key(k) => push_escaped(&mut out, k),
                Step::Index(i) => out.push_str(&i.to_string()),
            }
        }
        out
    }

    /// An error at the value being read.
    pub fn error(&self, rule: Rule, detail: impl Into<String>) -> DecodeError {
        DecodeError {
            path: self.pointer(),
            rule,
            detail: detail.into(),
        }
    }

    /// An error at `name`, a member of the object being read.
    fn error_at(&self, name: &str, rule: Rule, detail: String) -> DecodeError {
        let mut path = self.pointer();
        path.push('/');
        let short: String = name.chars().take(PATH_KEY_CHARS).collect();
        push_escaped(&mut path, &short);
        if short.len() < name.len() {
            path.push('…');
        }
        DecodeError { path, rule, detail }
    }

    fn malformed(&self, what: &str) -> DecodeError {
        self.error(
            Rule::Malformed,
            format!("not well-formed JSON at byte {}: {what}", self.pos),
        )
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        let bytes = self.text.as_bytes();
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// A value of another JSON type than `expected` (or not a JSON value at all).
    fn wrong_type(&self, expected: &str) -> DecodeError {
        let rest = &self.text.as_bytes()[self.pos..];
        let json_value = matches!(self.peek(), Some(b'{' | b'[' | b'"' | b'-' | b'0'..=b'9'))
            || [&b"true"[..], b"false", b"null"]
                .iter()
                .any(|l| rest.starts_with(l));
        match self.peek() {
            None => self.malformed("the document ends where a value is expected"),
            Some(_) if json_value => self.error(
                Rule::Type,
                format!("expected {expected}, found {}", found(self.peek())),
            ),
            Some(_) => self.malformed("expected a value"),
        }
    }

    /// Opens the object or array (`open` is `{` or `[`, `expected` names it) at the position:
    /// never from the URL, one level deeper.
    fn enter(&mut self, open: u8, expected: &str) -> Result<(), DecodeError> {
        if self.pending.is_some() {
            return Err(self.error(Rule::Type, "this member cannot be given in the URL"));
        }
        self.skip_ws();
        if self.peek() != Some(open) {
            return Err(self.wrong_type(expected));
        }
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(self.error(
                Rule::Depth,
                format!("nested deeper than {} levels", self.max_depth),
            ));
        }
        self.pos += 1;
        Ok(())
    }

    /// Starts reading an object: the members given in `url`, then the body's.
    pub fn object<'u>(
        &mut self,
        url: &'u [(&'b str, &'b str)],
    ) -> Result<Members<'u, 'b>, DecodeError> {
        self.enter(b'{', "an object")?;
        Ok(Members {
            url: url.iter(),
            open: false,
            first: true,
        })
    }

    /// The next member of the object, as its index in `names` (its step is then on the path),
    /// or `None` at the object's end. A name not in `names`: [`Rule::UnknownElement`].
    pub fn member(
        &mut self,
        m: &mut Members<'_, 'b>,
        names: &'static [&'static str],
    ) -> Result<Option<usize>, DecodeError> {
        if m.open {
            self.path.pop();
            m.open = false;
        }
        if let Some((name, text)) = m.url.next() {
            let i = self.known(names, name)?;
            self.path.push(Step::Key(names[i]));
            m.open = true;
            self.pending = Some(text);
            return Ok(Some(i));
        }
        self.skip_ws();
        let at_end = match (m.first, self.peek()) {
            (_, Some(b'}')) => true,
            (true, Some(b'"')) => false,
            (true, _) => return Err(self.malformed("expected a member name or '}'")),
            (false, Some(b',')) => {
                self.pos += 1;
                self.skip_ws();
                if self.peek() != Some(b'"') {
                    return Err(self.malformed("expected a member name after ','"));
                }
                false
            }
            (false, _) => return Err(self.malformed("expected ',' or '}' after a member")),
        };
        if at_end {
            self.pos += 1;
            self.depth -= 1;
            return Ok(None);
        }
        m.first = false;
        let name = self.string_token()?;
        self.skip_ws();
        if self.peek() != Some(b':') {
            return Err(self.malformed("expected ':' after a member name"));
        }
        self.pos += 1;
        let i = self.known(names, &name)?;
        self.path.push(Step::Key(names[i]));
        m.open = true;
        Ok(Some(i))
    }

    fn known(&self, names: &'static [&'static str], name: &str) -> Result<usize, DecodeError> {
        names.iter().position(|n| *n == name).ok_or_else(|| {
            let allowed = names.join(", ");
            self.error_at(
                name,
                Rule::UnknownElement,
                format!("unknown member; this object allows: {allowed}"),
            )
        })
    }

    /// Refuses a member given twice (`is_first` false): in the body, or in the URL and the body.
    pub fn unique(&self, is_first: bool) -> Result<(), DecodeError> {
        if is_first {
            return Ok(());
        }
        Err(self.error(
            Rule::DuplicateElement,
            "member given more than once (in the body, or in the URL and the body)",
        ))
    }

    /// A required member's value, or [`Rule::MissingElement`] at `/…/name`.
    pub fn required<T>(&self, value: Option<T>, name: &str) -> Result<T, DecodeError> {
        value.ok_or_else(|| {
            self.error_at(
                name,
                Rule::MissingElement,
                format!("required member {name} is missing"),
            )
        })
    }

    /// A list member's items (absent: none), or [`Rule::MissingElement`] at `/…/name` when
    /// there are fewer than `min`.
    pub fn at_least<T>(
        &self,
        items: Option<Vec<T>>,
        min: usize,
        name: &str,
    ) -> Result<Vec<T>, DecodeError> {
        let items = items.unwrap_or_default();
        if items.len() < min {
            return Err(self.error_at(
                name,
                Rule::MissingElement,
                format!("{name} needs at least {min} items, has {}", items.len()),
            ));
        }
        Ok(items)
    }

    /// The match arm for an index `member` never returns (none: a decoder bug, not a panic).
    pub fn no_such_member(&self) -> DecodeError {
        self.error(Rule::Invalid, "internal: member index out of range")
    }

    /// An object of a content model.
    pub fn child<T: JsonDecode>(&mut self) -> Result<T, DecodeError> {
        T::json_object(self, &[])
    }

    /// An array of at most `max` items, each read by `item`.
    pub fn list<T>(
        &mut self,
        max: usize,
        mut item: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        self.enter(b'[', "an array")?;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(items);
        }
        loop {
            self.path.push(Step::Index(items.len()));
            if items.len() == max {
                return Err(self.error(
                    Rule::MaxOccurs,
                    format!("more than the {max} items allowed"),
                ));
            }
            items.push(item(self)?);
            self.path.pop();
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(items);
                }
                _ => return Err(self.malformed("expected ',' or ']' after an item")),
            }
        }
    }

    /// A value written as a JSON string (strings, enumerations, dates, decimals …).
    pub fn string<T: DeserializeBytes>(&mut self) -> Result<T, DecodeError> {
        if let Some(text) = self.pending.take() {
            return self.value(text);
        }
        self.skip_ws();
        if self.peek() != Some(b'"') {
            return Err(self.wrong_type("a string"));
        }
        let text = self.string_token()?;
        self.value(&text)
    }

    /// A value written as a JSON number without fraction or exponent (the integer types).
    pub fn integer<T: DeserializeBytes>(&mut self) -> Result<T, DecodeError> {
        if let Some(text) = self.pending.take() {
            return self.value(text);
        }
        self.skip_ws();
        if !matches!(self.peek(), Some(b'-' | b'0'..=b'9')) {
            return Err(self.wrong_type("an integer number"));
        }
        let (text, integer) = self.number_token()?;
        if !integer {
            return Err(self.error(
                Rule::Type,
                format!(
                    "value {:?} is not an integer (no fraction or exponent)",
                    quote_value(text)
                ),
            ));
        }
        self.value(text)
    }

    /// A value written as JSON `true` or `false` (xs:boolean).
    pub fn boolean<T: DeserializeBytes>(&mut self) -> Result<T, DecodeError> {
        if let Some(text) = self.pending.take() {
            return self.value(text);
        }
        self.skip_ws();
        let rest = &self.text.as_bytes()[self.pos..];
        let text = if rest.starts_with(b"true") {
            "true"
        } else if rest.starts_with(b"false") {
            "false"
        } else {
            return Err(self.wrong_type("true or false"));
        };
        self.pos += text.len();
        self.value(text)
    }

    /// The checks every leaf value passes (XML 1.0 characters, no surrounding whitespace, no
    /// `]]>`), then the type's constructor (facets, enumeration, lexical form).
    fn value<T: DeserializeBytes>(&mut self, text: &str) -> Result<T, DecodeError> {
        if let Some((rule, detail)) = leaf_text_problem(text) {
            return Err(self.error(rule, detail));
        }
        T::deserialize_bytes(&mut self.helper, text.as_bytes()).map_err(|e| {
            let (rule, detail) = refused_value(&e.kind, text);
            self.error(rule, detail)
        })
    }

    /// A number (RFC 8259 grammar) at the position: its text and whether it is an integer.
    fn number_token(&mut self) -> Result<(&'b str, bool), DecodeError> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - from
        };
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        let n = digits(&mut i);
        if n == 0 || (n > 1 && bytes[int_start] == b'0') {
            self.pos = i;
            return Err(self.malformed("a number needs digits, without a leading zero"));
        }
        let mut integer = true;
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            integer = false;
            if digits(&mut i) == 0 {
                self.pos = i;
                return Err(self.malformed("a fraction needs digits"));
            }
        }
        if let Some(b'e' | b'E') = bytes.get(i) {
            i += 1;
            integer = false;
            if let Some(b'+' | b'-') = bytes.get(i) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                self.pos = i;
                return Err(self.malformed("an exponent needs digits"));
            }
        }
        self.pos = i;
        Ok((&self.text[start..i], integer))
    }

    /// A string at the position (at its `"`), unescaped; borrowed when it holds no escape.
    fn string_token(&mut self) -> Result<Cow<'b, str>, DecodeError> {
        let text: &'b str = self.text;
        let bytes = text.as_bytes();
        self.pos += 1;
        let start = self.pos;
        let mut owned: Option<String> = None;
        let mut run = start;
        loop {
            let Some(&b) = bytes.get(self.pos) else {
                return Err(self.malformed("the document ends inside a string"));
            };
            match b {
                b'"' => {
                    let value = match owned {
                        None => Cow::Borrowed(&text[start..self.pos]),
                        Some(mut s) => {
                            s.push_str(&text[run..self.pos]);
                            Cow::Owned(s)
                        }
                    };
                    self.pos += 1;
                    // Characters are at most as many as bytes: count only long strings.
                    if value.len() > MAX_STRING_CHARS && value.chars().count() > MAX_STRING_CHARS {
                        return Err(self.error(
                            Rule::MaxLength,
                            format!("a JSON string may hold at most {MAX_STRING_CHARS} characters"),
                        ));
                    }
                    return Ok(value);
                }
                b'\\' => {
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(&text[run..self.pos]);
                    let c = self.escape()?;
                    if let Some(s) = owned.as_mut() {
                        s.push(c);
                    }
                    run = self.pos;
                }
                0x00..=0x1F => {
                    return Err(self.malformed(&format!(
                        "control character U+{b:04X} in a string must be escaped"
                    )))
                }
                _ => self.pos += 1,
            }
        }
    }

    /// The escape at the position (at its `\`); the position moves past it.
    fn escape(&mut self) -> Result<char, DecodeError> {
        let bytes = self.text.as_bytes();
        let c = match bytes.get(self.pos + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 2;
                let unit = self.hex4()?;
                if (0xD800..0xDC00).contains(&unit) {
                    if bytes.get(self.pos) == Some(&b'\\') && bytes.get(self.pos + 1) == Some(&b'u')
                    {
                        let at = self.pos;
                        self.pos += 2;
                        let low = self.hex4()?;
                        if (0xDC00..0xE000).contains(&low) {
                            let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                            return char::from_u32(code)
                                .ok_or_else(|| self.malformed("invalid surrogate pair"));
                        }
                        self.pos = at;
                    }
                    return Err(self.lone_surrogate(unit));
                }
                if (0xDC00..0xE000).contains(&unit) {
                    return Err(self.lone_surrogate(unit));
                }
                return char::from_u32(unit).ok_or_else(|| self.malformed("invalid \\u escape"));
            }
            _ => return Err(self.malformed("invalid escape in a string")),
        };
        self.pos += 2;
        Ok(c)
    }

    fn lone_surrogate(&self, unit: u32) -> DecodeError {
        self.error(
            Rule::InvalidCharacter,
            format!("\\u{unit:04X} is a lone surrogate, not a character"),
        )
    }

    fn hex4(&mut self) -> Result<u32, DecodeError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.malformed("\\u needs four hex digits"))?;
        let unit =
            u32::from_str_radix(digits, 16).map_err(|_| self.malformed("invalid \\u escape"))?;
        self.pos += 4;
        Ok(unit)
    }
}

/// Appends `key` as a JSON Pointer reference token (`~` → `~0`, `/` → `~1`).
fn push_escaped(out: &mut String, key: &str) {
    for c in key.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
}
