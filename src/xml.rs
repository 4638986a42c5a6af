//! XML lexical pieces shared by the envelope scan (`envelope`) and the strict decoder
//! (`decode`): an inherited namespace binding and the one reading of a character or entity
//! reference. Below both, so that neither imports the other for them; uses quick-xml only.

use std::borrow::Cow;

/// An in-scope namespace declaration inherited from the envelope: (prefix, namespace); an empty
/// prefix is the default namespace.
pub type Binding<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// The character a reference stands for: a character reference (`&#252;`, `&#xFC;`) or one of
/// XML's five predefined entities. `None` for anything else (DTD entities are never expanded).
pub fn reference_char(r: &quick_xml::events::BytesRef<'_>) -> Option<char> {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return Some(c);
    }
    let name: &[u8] = r;
    match name {
        b"amp" => Some('&'),
        b"lt" => Some('<'),
        b"gt" => Some('>'),
        b"quot" => Some('"'),
        b"apos" => Some('\''),
        _ => None,
    }
}
