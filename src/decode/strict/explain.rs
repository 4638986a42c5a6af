//! The cold path of the strict reader: turns a refusal (its own, or the generated decoder's
//! error) into the element path and the schema rule, re-reading the input and walking the
//! contract's content models where it must. Uses the strict reader's state, `rules.rs`,
//! `text.rs`, the generated content models and `crate::xml`.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::Reader;
use xsd_parser_types::quick_xml::{Error as XmlError, ErrorKind};

use super::{Open, StrictReader};
use crate::decode::rules::{DecodeError, Rule};
use crate::decode::text::{quote_detail, quote_value, refused_value, QUOTE_CHARS};
use crate::generated::types::{ContentModel, CONTENT_MODELS, CONTRACT_ELEMENTS, ROOT_MODELS};
use crate::xml::reference_char;

impl StrictReader<'_> {
    /// Turns the generated decoder's error into a path and a rule.
    pub(super) fn explain(&self, error: XmlError) -> DecodeError {
        if let Some(v) = &self.violation {
            return v.clone();
        }
        let path = self.path();
        let (rule, detail, path) = match &error.kind {
            ErrorKind::UnexpectedEvent(Event::Start(s) | Event::Empty(s)) => {
                // The reader has already entered the unexpected element: the path ends with it.
                let (rule, detail, at_parent) = self.classify_unexpected(s);
                match at_parent {
                    Some(name) => {
                        let parent = path.rsplit_once('/').map_or("", |(p, _)| p).to_string();
                        (rule, detail, format!("{parent}/{name}"))
                    }
                    None => (rule, detail, path),
                }
            }
            ErrorKind::UnexpectedEvent(Event::Text(_) | Event::CData(_) | Event::GeneralRef(_)) => {
                (
                    Rule::TextNotAllowed,
                    "this element contains elements, not text".to_string(),
                    path,
                )
            }
            ErrorKind::UnexpectedEvent(Event::End(_))
            | ErrorKind::UnexpectedEoF
            | ErrorKind::MissingContent => match self.missing_at_end() {
                Some(name) => (
                    Rule::MissingElement,
                    format!("required element {name} is missing"),
                    format!("{path}/{name}"),
                ),
                None => (
                    Rule::MissingElement,
                    "the element ended before its required content".to_string(),
                    path,
                ),
            },
            ErrorKind::MissingElement(name) => {
                let name = name.to_string().trim_matches('"').to_string();
                (
                    Rule::MissingElement,
                    format!("required element {name} is missing"),
                    format!("{path}/{name}"),
                )
            }
            ErrorKind::DuplicateElement(name) => {
                let name = name.to_string().trim_matches('"').to_string();
                (
                    Rule::DuplicateElement,
                    format!("element {name} appears more than once"),
                    format!("{path}/{name}"),
                )
            }
            kind @ (ErrorKind::InvalidValue(..)
            | ErrorKind::UnknownOrInvalidValue(_)
            | ErrorKind::Custom(_)
            | ErrorKind::InvalidData(_)) => {
                let (rule, detail) = refused_value(kind, &self.leaf_text());
                (rule, detail, path)
            }
            ErrorKind::InsufficientSize { min, max, actual } => (
                Rule::MaxOccurs,
                format!(
                    "{actual} occurrences, allowed {min}..{}",
                    max.map_or("unbounded".into(), |m| m.to_string())
                ),
                path,
            ),
            ErrorKind::XmlError(e) => (Rule::Malformed, format!("not well-formed XML: {e}"), path),
            ErrorKind::InvalidUtf8(_) => {
                (Rule::InvalidCharacter, "not valid UTF-8".to_string(), path)
            }
            ErrorKind::UnexpectedAttribute(_) | ErrorKind::DuplicateAttribute(_) => (
                Rule::AttributeNotAllowed,
                "attributes are not allowed".to_string(),
                path,
            ),
            other => (Rule::Invalid, quote_detail(&other.to_string()), path),
        };
        DecodeError { path, rule, detail }
    }

    /// An element the generated code did not expect here: not in the contract at all, in the
    /// wrong namespace, not allowed in this parent, given again, out of order, or placed where a
    /// required element is missing. Returns the rule, a detail, and — when the error is about
    /// another element (the missing one) — that element's name, for the path.
    fn classify_unexpected(&self, start: &BytesStart<'_>) -> (Rule, String, Option<String>) {
        let local = start.local_name();
        let local = local.as_ref();
        let name = quote_value(&String::from_utf8_lossy(local));
        let ns = match self.resolver.resolve_element(start.name()).0 {
            ResolveResult::Bound(ns) => ns.0.to_vec(),
            _ => Vec::new(),
        };
        let declared = |ns: Option<&[u8]>| {
            CONTRACT_ELEMENTS.iter().any(|entry| {
                let (e_ns, e_local) = entry.split_once(' ').unwrap_or(("", entry));
                e_local.as_bytes() == local && ns.is_none_or(|ns| e_ns.as_bytes() == ns)
            })
        };
        if !declared(Some(&ns)) {
            if declared(None) {
                return (
                    Rule::WrongNamespace,
                    format!("element {name} is not in the namespace the contract declares for it"),
                    None,
                );
            }
            return (
                Rule::UnknownElement,
                format!("element {name} is not part of the contract"),
                None,
            );
        }
        let depth = self.stack.len().saturating_sub(1);
        let (Some(model), Some(child)) = (self.model_at(depth), self.last_start) else {
            return (
                Rule::ElementOutOfOrder,
                format!("element {name} is not allowed at this position"),
                None,
            );
        };
        let parent = self
            .stack
            .len()
            .checked_sub(2)
            .and_then(|i| self.stack.get(i))
            .copied();
        let siblings = parent
            .map(|p| self.children_of(p, child.start))
            .unwrap_or_default();
        let count = |n: &str| siblings.iter().filter(|s| s.as_str() == n).count();
        let Some(index) = model
            .children
            .iter()
            .position(|c| c.name.as_bytes() == local)
        else {
            return (
                Rule::NotAllowedHere,
                format!("element {name} is not allowed inside this element"),
                None,
            );
        };
        let this = &model.children[index];
        if model.choice {
            return if siblings.is_empty() {
                (
                    Rule::ElementOutOfOrder,
                    format!("element {name} is not allowed at this position"),
                    None,
                )
            } else {
                (
                    Rule::DuplicateElement,
                    "only one of the alternatives may be given".to_string(),
                    None,
                )
            };
        }
        let seen = count(this.name);
        if seen >= this.max as usize {
            return if this.max == 1 {
                (
                    Rule::DuplicateElement,
                    format!("element {name} appears more than once"),
                    None,
                )
            } else {
                (
                    Rule::MaxOccurs,
                    format!("element {name} may appear at most {} times", this.max),
                    None,
                )
            };
        }
        let last = siblings
            .iter()
            .filter_map(|s| model.children.iter().position(|c| c.name == s.as_str()))
            .max();
        if let Some(last) = last {
            if index < last {
                let after = model.children[last].name;
                return (
                    Rule::ElementOutOfOrder,
                    format!("element {name} must come before {after}"),
                    None,
                );
            }
        }
        let from = last.map_or(0, |l| l);
        let missing = model.children[from..index]
            .iter()
            .find(|c| (count(c.name) as u32) < c.min)
            .map(|c| c.name);
        match missing {
            Some(missing) => (
                Rule::MissingElement,
                format!("required element {missing} is missing before {name}"),
                Some(missing.to_string()),
            ),
            None => (
                Rule::ElementOutOfOrder,
                format!("element {name} is not allowed at this position"),
                None,
            ),
        }
    }

    /// The text of the leaf element on top of the stack, as the generated code saw it (cold path:
    /// re-reads the element).
    fn leaf_text(&self) -> String {
        let Some(top) = self.stack.last() else {
            return String::new();
        };
        let Some(slice) = self.input.get(top.start..) else {
            return String::new();
        };
        let mut reader = Reader::from_reader(slice);
        let mut text = String::new();
        let mut depth = 0usize;
        while let Ok(event) = reader.read_event() {
            match event {
                Event::Start(_) => depth += 1,
                Event::End(_) | Event::Empty(_) | Event::Eof => {
                    if depth <= 1 {
                        break;
                    }
                    depth -= 1;
                }
                Event::Text(t) if depth == 1 => text.push_str(&String::from_utf8_lossy(&t)),
                Event::CData(c) if depth == 1 => text.push_str(&String::from_utf8_lossy(&c)),
                Event::GeneralRef(r) if depth == 1 => {
                    if let Some(c) = reference_char(&r) {
                        text.push(c);
                    }
                }
                _ => {}
            }
            if text.len() > 4 * QUOTE_CHARS {
                break;
            }
        }
        text
    }

    /// The required child that is missing when the element on top of the stack ends early.
    fn missing_at_end(&self) -> Option<&'static str> {
        let top = *self.stack.last()?;
        let model = self.model_at(self.stack.len())?;
        let end = self.reader.buffer_position() as usize;
        let children = self.children_of(top, end);
        if model.choice {
            return None;
        }
        model
            .children
            .iter()
            .find(|c| (children.iter().filter(|s| s.as_str() == c.name).count() as u32) < c.min)
            .map(|c| c.name)
    }

    /// The content model of the element at `depth` (1 = the body element), walking the schema
    /// from the body element down the open elements' names.
    fn model_at(&self, depth: usize) -> Option<&'static ContentModel> {
        let find_model = |key: &str| {
            CONTENT_MODELS
                .binary_search_by(|(k, _)| (*k).cmp(key))
                .ok()
                .map(|i| &CONTENT_MODELS[i].1)
        };
        let root = self.stack.first()?;
        let root_key = format!(
            "{} {}",
            String::from_utf8_lossy(self.root_namespace),
            String::from_utf8_lossy(self.local_of(root))
        );
        let i = ROOT_MODELS
            .binary_search_by(|(k, _)| (*k).cmp(root_key.as_str()))
            .ok()?;
        let mut model = find_model(ROOT_MODELS[i].1)?;
        for open in self.stack.iter().take(depth).skip(1) {
            let local = self.local_of(open);
            let child = model.children.iter().find(|c| c.name.as_bytes() == local)?;
            model = find_model(child.model?)?;
        }
        Some(model)
    }

    fn local_of(&self, open: &Open) -> &[u8] {
        let qname = &self.input[open.name.0..open.name.1];
        match qname.iter().position(|b| *b == b':') {
            Some(i) => &qname[i + 1..],
            None => qname,
        }
    }

    /// Local names of the children of `parent` that start before `until` (cold path: re-reads
    /// the parent's content).
    fn children_of(&self, parent: Open, until: usize) -> Vec<String> {
        let mut out = Vec::new();
        let Some(slice) = self.input.get(parent.start..until) else {
            return out;
        };
        let mut reader = Reader::from_reader(slice);
        let mut depth = 0usize;
        while let Ok(event) = reader.read_event() {
            match event {
                Event::Start(s) => {
                    if depth == 1 {
                        out.push(String::from_utf8_lossy(s.local_name().as_ref()).into_owned());
                    }
                    depth += 1;
                }
                Event::Empty(s) if depth == 1 => {
                    out.push(String::from_utf8_lossy(s.local_name().as_ref()).into_owned());
                }
                Event::End(_) => depth = depth.saturating_sub(1),
                Event::Eof => break,
                _ => {}
            }
        }
        out
    }
}
