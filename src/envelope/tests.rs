//! Unit tests of `envelope` (beside the module, in their own file).
use std::borrow::Cow;

use super::scan::scan_with;
use super::tag::within;
use super::*;

const BODY: &str = "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\
    <soap:Body><x:Ping xmlns:x=\"urn:x\"/></soap:Body></soap:Envelope>";

#[test]
fn declarations_are_borrowed_from_the_input() {
    let doc = "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" \
        xmlns:a=\"urn:a\"><soap:Header><a:H xmlns:b=\"urn:b\"/></soap:Header>\
        <soap:Body xmlns=\"urn:d\"><x:Ping xmlns:x=\"urn:x\"/></soap:Body></soap:Envelope>";
    let env = scan(doc.as_bytes()).unwrap();
    let all = env.headers[0]
        .element
        .inherited
        .iter()
        .chain(&env.body.inherited);
    for (prefix, ns) in all {
        assert!(matches!(prefix, Cow::Borrowed(_)), "{prefix:?} copied");
        assert!(matches!(ns, Cow::Borrowed(_)), "{ns:?} copied");
    }
    let body: Vec<_> = env
        .body
        .inherited
        .iter()
        .map(|(p, n)| (&**p, &**n))
        .collect();
    assert!(body.contains(&(&b""[..], &b"urn:d"[..])), "{body:?}");
    assert!(body.contains(&(&b"a"[..], &b"urn:a"[..])), "{body:?}");
    // A slice of the input is found in it; another buffer's bytes are not.
    let input = b"xmlns:a=\"urn:a\"";
    assert_eq!(within(input, &input[9..14]), Some(&b"urn:a"[..]));
    let other = b"urn:a".to_vec();
    assert_eq!(within(input, &other), None);
}

/// Found by tests/hostile.rs: a second XML declaration, or one after a comment or
/// whitespace, was accepted (and its encoding checked as if it were the document's).
#[test]
fn the_xml_declaration_is_only_allowed_at_the_start() {
    let decl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
    for prefix in [
        format!("{decl}{decl}"),
        format!("<!-- c -->{decl}"),
        format!("\n{decl}"),
    ] {
        assert_eq!(
            scan(format!("{prefix}{BODY}").as_bytes()).map(|e| e.version),
            Err(EnvelopeError::ProcessingInstruction),
            "{prefix}"
        );
    }
    assert!(scan(format!("{decl}\n<!-- c -->{BODY}").as_bytes()).is_ok());
    assert!(scan(format!("\u{FEFF}{decl}{BODY}").as_bytes()).is_ok());
}

/// The `envelope` fuzz target's finding on the scan of an answer no limits pass has read:
/// a second byte order mark was skipped by quick-xml unseen and every slice was three bytes
/// off. The limits pass's one rule ([`crate::limit::document`]) refuses it here too.
#[test]
fn a_second_byte_order_mark_is_refused_not_skipped() {
    let expected = Err(EnvelopeError::Malformed(
        "nothing but one UTF-8 byte order mark may come before the XML document".into(),
    ));
    for doc in [
        format!("\u{FEFF}\u{FEFF}{BODY}"),
        format!("\u{FEFF}\u{FEFF}<?xml version=\"1.0\"?>{BODY}"),
        format!("x{BODY}"),
    ] {
        assert_eq!(scan(doc.as_bytes()).map(|e| e.version), expected, "{doc:?}");
        assert_eq!(
            scan_to_body(doc.as_bytes()).map(|e| e.envelope.version),
            expected,
            "{doc:?}"
        );
    }
    let one = format!("\u{FEFF}{BODY}");
    let env = scan(one.as_bytes()).expect("one byte order mark");
    assert_eq!(env.body.bytes(), b"<x:Ping xmlns:x=\"urn:x\"/>");
    assert_eq!(
        scan(b"\xEF\xBB\xBF\xFF<a/>").map(|e| e.version),
        Err(EnvelopeError::Encoding)
    );
}

fn outlined(doc: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    let outline = crate::limit::check_xml(doc, &crate::config::XmlLimits::default())
        .expect("within the limits");
    // Asserts in this debug build that the result is the full scan's.
    let env = scan_outlined(doc, &outline);
    assert_eq!(env, scan(doc));
    env
}

#[test]
fn the_outlined_scan_steps_over_header_blocks_and_the_body_element() {
    let doc = "\u{FEFF}<?xml version=\"1.0\"?>\n<soap:Envelope \
        xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Header>\
        <a:H xmlns:a=\"urn:a\"><a:K>k</a:K><a:H>nested, same name</a:H></a:H >\
        <a:E xmlns:a=\"urn:a\"/></soap:Header>\n<soap:Body><x:Ping xmlns:x=\"urn:x\">\
        <x:V>1</x:V><!-- c --></x:Ping\n></soap:Body></soap:Envelope>";
    let outline = crate::limit::check_xml(doc.as_bytes(), &crate::config::XmlLimits::default())
        .expect("within the limits");
    // The two elements with content (H, Ping) are recorded; the empty one (E) needs none.
    assert_eq!(
        outline.skips_for(doc.as_bytes()).map(|(_, s)| s.len()),
        Some(2)
    );
    let env = outlined(doc.as_bytes()).expect("scans");
    assert!(env.headers[0].element.bytes().ends_with(b"</a:H >"));
    assert!(env.body.bytes().ends_with(b"</x:Ping\n>"));
    // Other bytes than the outline's: ignored (the scan reads everything).
    let copy = doc.as_bytes().to_vec();
    assert!(outline.skips_for(&copy).is_none());
    assert_eq!(scan_outlined(&copy, &outline), scan(&copy));
}

/// White box: the content between a recorded start and end tag is not read again (here it
/// is not even XML; the limits pass never records such a thing, which is why skipping is
/// safe), and a record that does not fit is not used.
#[test]
fn recorded_content_is_stepped_over() {
    let doc = b"<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\
        <soap:Body><x:Ping xmlns:x=\"urn:x\"><<&</x:Ping></soap:Body></soap:Envelope>";
    let start = memchr::memmem::find(doc, b"<x:Ping").expect("start");
    let end_tag = memchr::memmem::find(doc, b"</x:Ping").expect("end");
    let text = std::str::from_utf8(doc).expect("utf-8");
    let (env, _) = scan_with(text, &[(start, end_tag)], false).expect("stepped over");
    assert_eq!(env.body.bytes(), &doc[start..end_tag + 9]);
    assert_eq!(env.body.local_name, b"Ping");
    assert!(matches!(
        scan_with(text, &[], false),
        Err(EnvelopeError::Malformed(_))
    ));
    // Records that do not point at this element's end tag: the reader reads (and refuses).
    for wrong in [
        (start, end_tag - 1),
        (start + 1, end_tag),
        (start, start + 1),
    ] {
        assert!(
            matches!(
                scan_with(text, &[wrong], false),
                Err(EnvelopeError::Malformed(_))
            ),
            "{wrong:?}"
        );
    }
}

/// The full scan does not resolve namespaces inside header blocks and the body element
/// (quick-xml's `read_to_end`), so declarations its namespace reader would refuse there are
/// the decoder's to refuse: stepping over them changes nothing.
#[test]
fn declarations_in_content_are_the_decoders_business() {
    for decl in [
        "xmlns:xml=\"urn:other\"",
        "xmlns:xmlns=\"urn:other\"",
        "xmlns:p=\"\"",
    ] {
        let doc = format!(
            "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\
            <soap:Body><x:Ping xmlns:x=\"urn:x\"><x:V {decl}/></x:Ping></soap:Body>\
            </soap:Envelope>"
        );
        assert!(outlined(doc.as_bytes()).is_ok(), "{decl}");
    }
}

/// Envelope, Header and Body carry namespace declarations and nothing else.
#[test]
fn only_declarations_on_envelope_header_and_body() {
    let soap = "xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"";
    for (doc, attr) in [
        (format!("<soap:Envelope id=\"1\" {soap}><soap:Body><x:P xmlns:x=\"urn:x\"/></soap:Body></soap:Envelope>"), "id"),
        (format!("<soap:Envelope {soap} xmlns:a=\"urn:a\" a:b=\"c\"><soap:Body><x:P xmlns:x=\"urn:x\"/></soap:Body></soap:Envelope>"), "a:b"),
        (format!("<soap:Envelope {soap}><soap:Header soap:actor=\"x\"/><soap:Body><x:P xmlns:x=\"urn:x\"/></soap:Body></soap:Envelope>"), "soap:actor"),
        (format!("<soap:Envelope {soap}><soap:Body soap:encodingStyle=\"e\"><x:P xmlns:x=\"urn:x\"/></soap:Body></soap:Envelope>"), "soap:encodingStyle"),
    ] {
        assert_eq!(
            scan(doc.as_bytes()).map(|e| e.version),
            Err(EnvelopeError::AttributeNotAllowed(attr.into())),
            "{doc}"
        );
    }
    // A malformed attribute before a disallowed one: malformed, as before.
    let doc = format!("<soap:Envelope {soap} a=\"1\" a=\"2\" b=\"3\"><soap:Body/></soap:Envelope>");
    assert!(matches!(scan(doc.as_bytes()), Err(EnvelopeError::AttributeNotAllowed(a)) if a == "a"));
    let doc = format!("<soap:Envelope {soap} {soap} b=\"3\"><soap:Body/></soap:Envelope>");
    assert!(matches!(
        scan(doc.as_bytes()),
        Err(EnvelopeError::Malformed(_))
    ));
    // Declarations on Envelope and Body are inherited by the body element.
    let doc = format!("<soap:Envelope {soap} xmlns:a=\"urn:a\"><soap:Body xmlns=\"urn:d\"><P/></soap:Body></soap:Envelope>");
    let env = scan(doc.as_bytes()).expect("scans");
    assert_eq!(env.body.namespace, b"urn:d");
    assert_eq!(env.body.inherited.len(), 3);
}

/// An element's namespace declarations end with it: the full scan (which reads the content
/// itself) and the outlined scan (which steps over it) both refuse a sibling that uses them.
/// Found by the `envelope` fuzz target: the full scan let `cmn` reach the siblings of the body
/// element (quick-xml's `NsReader::read_to_end` keeps the scope open) and refused the loose text
/// after them instead.
#[test]
fn declarations_end_with_their_element() {
    let doc = include_bytes!("../../fuzz/regressions/envelope/outlined-disagrees-6150240d.xml");
    let unqualified = Err(EnvelopeError::Unqualified("cmn:FirstName".into()));
    assert_eq!(scan(doc).map(|e| e.version), unqualified);
    assert_eq!(outlined(doc).map(|e| e.version), unqualified);

    // A header block's declarations do not reach the next block, in the full scan, the outlined
    // scan and the scan up to the body.
    let doc = format!(
        r#"<s:Envelope xmlns:s="{SOAP11_NS}"><s:Header><h:A xmlns:h="urn:h" xmlns:b="urn:b">x</h:A><b:B>y</b:B></s:Header><s:Body><h:C xmlns:h="urn:h"/></s:Body></s:Envelope>"#
    );
    let unqualified = Err(EnvelopeError::Unqualified("b:B".into()));
    assert_eq!(scan(doc.as_bytes()).map(|e| e.version), unqualified);
    assert_eq!(outlined(doc.as_bytes()).map(|e| e.version), unqualified);
    assert_eq!(
        scan_to_body(doc.as_bytes()).map(|e| e.envelope.version),
        unqualified
    );
    // Nor the body element.
    let doc = format!(
        r#"<s:Envelope xmlns:s="{SOAP11_NS}"><s:Header><h:A xmlns:h="urn:h" xmlns:b="urn:b">x</h:A></s:Header><s:Body><b:C/></s:Body></s:Envelope>"#
    );
    let unqualified = Err(EnvelopeError::Unqualified("b:C".into()));
    assert_eq!(scan(doc.as_bytes()).map(|e| e.version), unqualified);
    assert_eq!(
        scan_to_body(doc.as_bytes()).map(|e| e.envelope.version),
        unqualified
    );
}

/// The full scan finds an element's end tag with a reader of its own: content that starts with
/// U+FEFF (which a fresh reader would take for a byte order mark) keeps its bytes, and an end tag
/// that closes something else is refused as the namespace reader refuses it.
#[test]
fn the_full_scan_reads_content_to_the_right_end_tag() {
    let bom = '\u{FEFF}';
    let doc = format!(
        "<s:Envelope xmlns:s=\"{SOAP11_NS}\"><s:Body><m:X xmlns:m=\"urn:m\">{bom}<m:Y>1</m:Y><m:X>2</m:X></m:X></s:Body></s:Envelope>"
    );
    let env = scan(doc.as_bytes()).expect("scans");
    assert_eq!(
        env.body.text,
        "<m:X xmlns:m=\"urn:m\">\u{FEFF}<m:Y>1</m:Y><m:X>2</m:X></m:X>"
    );
    assert_eq!(env, outlined(doc.as_bytes()).expect("scans"));
    for bad in [
        "<m:X xmlns:m=\"urn:m\"></m:Z></m:X>",
        "<m:X xmlns:m=\"urn:m\"><m:Y></m:X>",
    ] {
        let doc =
            format!("<s:Envelope xmlns:s=\"{SOAP11_NS}\"><s:Body>{bad}</s:Body></s:Envelope>");
        match scan(doc.as_bytes()) {
            Err(EnvelopeError::Malformed(m)) => assert!(m.contains("expected `</"), "{bad}: {m}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}
