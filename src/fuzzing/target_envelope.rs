//! Target `envelope`: the XML limit pass, the envelope scan, credential extraction and the SOAP
//! fault parser on arbitrary bytes, and the check that a scanned element is a whole element of
//! the input. Uses the partner world (`partners.rs`) and the stages it fuzzes.

use crate::authenticate;
use crate::config::XmlLimits;
use crate::decode::{self, DecodeLimits};
use crate::envelope::{self, BodyElement};
use crate::forward;
use crate::generated::partner;
use crate::limit;

use super::contains;
use super::partners::{fuzz_partner, snapshot, NOW};

/// Whether `inner` is a sub-slice of `outer` (same memory).
pub(super) fn within(outer: &[u8], inner: &[u8]) -> bool {
    let o = outer.as_ptr_range();
    let i = inner.as_ptr_range();
    o.start <= i.start && i.end <= o.end
}

/// A scanned element is a whole element of the input: inside it, from `<` to `>`, and its
/// local name is inside its bytes.
fn check_element(input: &[u8], el: &BodyElement<'_>, what: &str) {
    assert!(
        within(input, el.bytes()),
        "{what}: the element slice is not inside the input"
    );
    assert!(
        el.bytes().first() == Some(&b'<') && el.bytes().last() == Some(&b'>'),
        "{what}: the element slice is not a whole element: {:?}",
        String::from_utf8_lossy(el.bytes())
    );
    assert!(
        !el.local_name.is_empty() && within(el.bytes(), el.local_name),
        "{what}: the local name is not inside the element"
    );
    // The local name is the element's own: its tag name, after the prefix.
    let tag = &el.bytes()[1..];
    let qname_len = tag
        .iter()
        .position(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>'))
        .unwrap_or(tag.len());
    let qname = &tag[..qname_len];
    let local = qname
        .iter()
        .position(|b| *b == b':')
        .map_or(qname, |i| &qname[i + 1..]);
    assert_eq!(
        String::from_utf8_lossy(local),
        String::from_utf8_lossy(el.local_name),
        "{what}: the local name is not the element's"
    );
}

// === target: envelope ===

/// Target `envelope`: the XML limit pass, the envelope scan, credential extraction and the SOAP
/// fault parser on arbitrary bytes.
pub fn envelope(data: &[u8]) {
    if let Ok(outline) = limit::check_xml(data, &XmlLimits::default()) {
        // Stepping over what the limit pass has read gives the full scan's result (asserted
        // inside with the feature `fuzzing`).
        let _ = envelope::scan_outlined(data, &outline);
    }
    // As an upstream's answer (any bytes can come back): the one-pass decode equals the full
    // scan and decode (asserted inside with the feature `fuzzing`).
    let op = partner::Operation::ALL[data.len() % partner::Operation::ALL.len()];
    let _ = forward::decode_upstream_reply(op, 200, data);
    // The scan runs on its own too: the forward path scans upstream answers without the limit
    // pass, so it must hold on any input.
    let Ok(env) = envelope::scan(data) else {
        return;
    };
    check_element(data, &env.body, "body");
    for h in &env.headers {
        check_element(data, &h.element, "header block");
    }
    let snapshot = snapshot();
    if let Ok(auth) = authenticate::authenticate(&env, snapshot, NOW) {
        let p = fuzz_partner(&auth.partner.partner_id).expect("a partner of the snapshot");
        assert!(p.may_call(), "{} authenticated but may not call", p.id);
        assert!(
            contains(data, p.key.as_bytes()),
            "{} authenticated without its key in the input",
            p.id
        );
    }
    if let Ok(auth) = authenticate::authenticate_callback(&env, snapshot, NOW) {
        let p = fuzz_partner(&auth.partner.partner_id).expect("a partner of the snapshot");
        assert!(
            contains(data, p.callback_key.as_bytes()),
            "{} authenticated (callback) without its callback key in the input",
            p.id
        );
    }
    if let Ok(f) = envelope::parse_fault(&env) {
        if let Some(detail) = &f.detail {
            check_element(data, detail, "fault detail");
            let _ = decode::partner_fault(detail, DecodeLimits::default());
            let _ = decode::callback_fault(detail, DecodeLimits::default());
        }
    }
}
