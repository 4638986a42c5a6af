//! Every golden fixture takes the fast path (otherwise it would be slow, not wrong: the
//! debug-build comparison in `decode_fast_or_strict` covers being wrong, in every test that
//! decodes anything), and the unusual-but-valid shapes it leaves to the strict decoder.
use std::path::{Path, PathBuf};

use super::*;
use crate::decode::{self, DecodeLimits};
use crate::envelope;
use crate::generated::{callback, partner};

fn fixtures(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && !path.ends_with("invalid") {
            fixtures(&path, out);
        } else if path.extension().is_some_and(|e| e == "xml") {
            out.push(path);
        }
    }
}

/// The fast path decoded `what` (`fast`), to the strict decoder's value: 1.
#[track_caller]
fn took_fast_path<T: PartialEq + std::fmt::Debug>(
    path: &Path,
    what: &str,
    fast: Option<T>,
    strict: Result<T, decode::DecodeError>,
) -> usize {
    let at = path.display();
    assert!(fast.is_some(), "{at}: the fast path gave up on the {what}");
    assert_eq!(fast, strict.ok(), "{at}: {what}");
    1
}

/// Decodes every element of a fixture the gateway decodes (credential header, fault detail,
/// body) with the fast path, checking it did not give up; the number of elements decoded.
fn fast_only(path: &Path) -> usize {
    let bytes = std::fs::read(path).expect("fixture");
    let env = envelope::scan(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let callbacks = path.components().any(|c| c.as_os_str() == "callback");
    let (limits, header) = (DecodeLimits::default(), DecodeLimits::header_block());
    let mut decoded = 0;
    for block in &env.headers {
        let el = &block.element;
        decoded += match callbacks {
            true if el.is(
                callback::AUTH_HEADER_ELEMENT.0,
                callback::AUTH_HEADER_ELEMENT.1,
            ) =>
            {
                let fast = decode(el, header, callback::decode_auth_header_fast);
                took_fast_path(path, "header", fast, decode::callback_auth(el, header))
            }
            false
                if el.is(
                    partner::AUTH_HEADER_ELEMENT.0,
                    partner::AUTH_HEADER_ELEMENT.1,
                ) =>
            {
                let fast = decode(el, header, partner::decode_auth_header_fast);
                took_fast_path(path, "header", fast, decode::partner_auth(el, header))
            }
            _ => 0,
        };
    }
    if let Ok(fault) = envelope::parse_fault(&env) {
        let Some(d) = &fault.detail else {
            return decoded;
        };
        let (ns, local) = (&d.namespace, d.local_name);
        return decoded
            + if callbacks {
                let kind = callback::FaultKind::from_element(ns, local).expect("declared");
                let fast = decode(d, limits, |r| callback::FaultDetail::decode_fast(kind, r));
                took_fast_path(
                    path,
                    "fault detail",
                    fast,
                    decode::callback_fault(d, limits),
                )
            } else {
                let kind = partner::FaultKind::from_element(ns, local).expect("declared");
                let fast = decode(d, limits, |r| partner::FaultDetail::decode_fast(kind, r));
                took_fast_path(path, "fault detail", fast, decode::partner_fault(d, limits))
            };
    }
    let body = &env.body;
    let (ns, local) = (&body.namespace, body.local_name);
    decoded
        + match (
            callbacks,
            partner::Operation::from_request_element(ns, local),
        ) {
            (true, _) => match callback::Operation::from_request_element(ns, local) {
                Some(op) => {
                    let fast = decode(body, limits, |r| callback::Request::decode_fast(op, r));
                    took_fast_path(path, "body", fast, decode::callback_request(body, limits))
                }
                None => {
                    let op = callback::Operation::from_response_element(ns, local).expect("op");
                    let fast = decode(body, limits, |r| callback::Response::decode_fast(op, r));
                    let strict = decode::callback_response(op, body, limits);
                    took_fast_path(path, "body", fast, strict)
                }
            },
            (false, Some(op)) => {
                let fast = decode(body, limits, |r| partner::Request::decode_fast(op, r));
                took_fast_path(path, "body", fast, decode::partner_request(body, limits))
            }
            (false, None) => {
                let op = partner::Operation::from_response_element(ns, local).expect("op");
                let fast = decode(body, limits, |r| partner::Response::decode_fast(op, r));
                took_fast_path(
                    path,
                    "body",
                    fast,
                    decode::partner_response(op, body, limits),
                )
            }
        }
}

#[test]
fn every_golden_fixture_takes_the_fast_path() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files = Vec::new();
    fixtures(&root, &mut files);
    files.sort();
    assert!(files.len() > 80, "found only {} fixtures", files.len());
    let decoded: usize = files.iter().map(|f| fast_only(f)).sum();
    // Every request has a body and a header; every fault a detail; responses a body.
    assert!(
        decoded > files.len(),
        "decoded {decoded} elements in {} files",
        files.len()
    );
}

const ENV_OPEN: &str = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:acc="urn:partnergate:partner:accounts:v1"><s:Body>"#;
const ENV_CLOSE: &str = "</s:Body></s:Envelope>";
const BODY: &str =
    "<acc:GetAccount><acc:AccountNumber>ACC-0000001001</acc:AccountNumber></acc:GetAccount>";

/// (fast path's answer, strict decoder's answer) for a GetAccount body.
fn both(
    body: &str,
) -> (
    Option<partner::Request>,
    Result<partner::Request, decode::DecodeError>,
) {
    let doc = format!("{ENV_OPEN}{body}{ENV_CLOSE}");
    let env = envelope::scan(doc.as_bytes()).expect("scans");
    let op = partner::Operation::GetAccount;
    let fast = decode(&env.body, DecodeLimits::default(), |r| {
        partner::Request::decode_fast(op, r)
    });
    let strict = decode::decode_with(
        &env.body,
        partner::NAMESPACES,
        DecodeLimits::default(),
        |r| partner::Request::decode(op, r),
    );
    (fast, strict)
}

#[test]
fn ordinary_variants_take_the_fast_path() {
    for body in [
        BODY.to_string(),
        // default namespace, a re-declared prefix, whitespace between elements
        r#"<GetAccount xmlns="urn:partnergate:partner:accounts:v1"> <AccountNumber>ACC-0000001001</AccountNumber>
</GetAccount>"#
            .to_string(),
        r#"<a:GetAccount xmlns:a="urn:partnergate:partner:accounts:v1"><b:AccountNumber xmlns:b="urn:partnergate:partner:accounts:v1">ACC-0000001001</b:AccountNumber></a:GetAccount>"#.to_string(),
        BODY.replace("ACC-0000001001", "ACC-000000&#49;001"),
    ] {
        let (fast, strict) = both(&body);
        assert!(fast.is_some(), "{body}");
        assert_eq!(fast, strict.ok(), "{body}");
    }
}

#[test]
fn unusual_but_valid_shapes_are_left_to_the_strict_decoder() {
    for body in [
        BODY.replace("<acc:AccountNumber>", "<!-- c --><acc:AccountNumber>"),
        BODY.replace("ACC-0000001001", "<![CDATA[ACC-0000001001]]>"),
    ] {
        let (fast, strict) = both(&body);
        assert!(fast.is_none(), "{body}");
        assert!(strict.is_ok(), "{body}: {strict:?}");
    }
}

#[test]
fn blank_text_in_an_element_without_children_is_left_to_the_strict_decoder() {
    // Found by the `decode` fuzz target: the strict decoder reads text in an element without
    // child elements as a value and refuses whitespace there.
    let open = ENV_OPEN.replace(
        "<s:Body>",
        r#"<s:Body xmlns:cmn="urn:partnergate:partner:common:v1">"#,
    );
    let body = "<acc:ModifyAccount><acc:AccountNumber>ACC-0000001001</acc:AccountNumber>\
                <acc:Settings>SETTINGS</acc:Settings></acc:ModifyAccount>";
    let op = partner::Operation::ModifyAccount;
    for (settings, fast_path) in [
        ("", true),
        ("\n  ", false),
        ("<acc:Currency>EUR</acc:Currency> ", true),
    ] {
        let doc = format!("{open}{}{ENV_CLOSE}", body.replace("SETTINGS", settings));
        let env = envelope::scan(doc.as_bytes()).expect("scans");
        let limits = DecodeLimits::default();
        let fast = decode(&env.body, limits, |r| partner::Request::decode_fast(op, r));
        let strict = decode::decode_with(&env.body, partner::NAMESPACES, limits, |r| {
            partner::Request::decode(op, r)
        });
        assert_eq!(fast.is_some(), fast_path, "{settings:?}");
        assert_eq!(strict.is_ok(), fast_path, "{settings:?}: {strict:?}");
    }
}

/// Edits at tag boundaries that keep a message close to valid, where the fast path and the
/// strict decoder are most likely to disagree: (which `>`, what to do).
fn mutate(body: &str, edits: &[(usize, u8)]) -> String {
    const PIECES: [&str; 12] = [
        " ",
        "\n",
        "\r\n",
        "<!-- c -->",
        "&amp;",
        "&#32;",
        "&#x41;",
        "<![CDATA[x]]>",
        "x",
        "\t",
        "<x:Y xmlns:x=\"urn:partnergate:partner:common:v1\"/>",
        "]]>",
    ];
    let mut out = body.to_string();
    for &(k, edit) in edits {
        let ends: Vec<usize> = out.match_indices('>').map(|(i, _)| i + 1).collect();
        if ends.is_empty() {
            break;
        }
        let at = ends[k % ends.len()];
        let next = out[at..].find('<').map_or(out.len(), |i| at + i);
        let piece = PIECES[usize::from(edit / 8) % PIECES.len()];
        match edit % 8 {
            0 => out.insert_str(at, piece),
            1 => out.insert_str(next, piece),
            2 => out.replace_range(at..next, ""),
            3 => out.replace_range(at..next, piece),
            // inside a value
            4 => {
                let mut mid = at + (next - at) / 2;
                while !out.is_char_boundary(mid) {
                    mid -= 1;
                }
                out.insert_str(mid, piece);
            }
            _ if next >= out.len() => {}
            // repeat or drop the element that starts at `next`
            _ => {
                let name_end = out[next..]
                    .find(['>', ' ', '/'])
                    .map_or(out.len(), |i| next + i);
                let name = out[next + 1..name_end].to_string();
                let close = format!("</{name}>");
                if let Some(end) = out[next..].find(&close).map(|i| next + i + close.len()) {
                    if edit % 8 < 7 {
                        let element = out[next..end].to_string();
                        out.insert_str(end, &element);
                    } else {
                        out.replace_range(next..end, "");
                    }
                }
            }
        }
    }
    out
}

/// Which contract a golden message belongs to.
#[derive(Clone, Copy)]
enum Contract {
    Partner(partner::Operation),
    Callback(callback::Operation),
}

/// Every golden request and response of both contracts: (contract, document, is a response).
fn golden_messages() -> Vec<(Contract, String, bool)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let dirs = partner::Operation::ALL
        .iter()
        .map(|op| (Contract::Partner(*op), root.join(op.name())))
        .chain(callback::Operation::ALL.iter().map(|op| {
            (
                Contract::Callback(*op),
                root.join("callback").join(op.name()),
            )
        }));
    let mut out = Vec::new();
    for (contract, dir) in dirs {
        for (file, response) in [("request.xml", false), ("response.xml", true)] {
            let doc = std::fs::read_to_string(dir.join(file)).expect("fixture");
            out.push((contract, doc, response));
        }
    }
    out
}

/// Decodes every element of a message the gateway decodes (credential header blocks and the
/// body) through `decode_fast_or_strict`, which compares the two paths in this debug build;
/// whether all of them decoded.
fn decode_all(doc: &str, contract: Contract, response: bool) -> bool {
    // The request path's outlined scan (asserted to equal the full scan in this debug build).
    if let Ok(outline) =
        crate::limit::check_xml(doc.as_bytes(), &crate::config::XmlLimits::default())
    {
        let _ = envelope::scan_outlined(doc.as_bytes(), &outline);
    }
    // An answer of the partner API: the forward stage's one-pass decode (asserted to equal
    // the full scan and decode in this debug build).
    if let (Contract::Partner(op), true) = (contract, response) {
        let _ = crate::forward::decode_upstream_reply(op, 200, doc.as_bytes());
    }
    let Ok(env) = envelope::scan(doc.as_bytes()) else {
        return false;
    };
    let (limits, header) = (DecodeLimits::default(), DecodeLimits::header_block());
    let mut ok = true;
    for block in &env.headers {
        ok &= match contract {
            Contract::Partner(_) => decode::partner_auth(&block.element, header).is_ok(),
            Contract::Callback(_) => decode::callback_auth(&block.element, header).is_ok(),
        };
    }
    ok & match (contract, response) {
        (Contract::Partner(op), true) => decode::partner_response(op, &env.body, limits).is_ok(),
        (Contract::Partner(_), false) => decode::partner_request(&env.body, limits).is_ok(),
        (Contract::Callback(op), true) => decode::callback_response(op, &env.body, limits).is_ok(),
        (Contract::Callback(_), false) => decode::callback_request(&env.body, limits).is_ok(),
    }
}

/// The byte ranges of the elements the gateway decodes (header blocks, body) in `doc`.
fn decoded_elements(doc: &str) -> Vec<std::ops::Range<usize>> {
    let env = envelope::scan(doc.as_bytes()).expect("scans");
    let base = doc.as_ptr() as usize;
    env.headers
        .iter()
        .map(|h| h.element.bytes())
        .chain([env.body.bytes()])
        .map(|b| {
            let at = b.as_ptr() as usize - base;
            at..at + b.len()
        })
        .collect()
}

/// Every single edit at every tag boundary of every golden request and response of both
/// contracts, in the body and in the credential header: whatever the fast path accepts, the
/// strict decoder accepts with the same value.
#[test]
fn every_single_edit_of_the_golden_messages_decodes_the_same_way_on_both_paths() {
    let mut decoded = 0;
    let mut variants = 0;
    for (contract, doc, response) in golden_messages() {
        for range in decoded_elements(&doc) {
            let element = &doc[range.clone()];
            for k in 0..element.matches('>').count() {
                // Every edit kind with every piece once (12 pieces × 8 kinds); the element
                // edits (kinds 5–7) do not depend on the piece.
                for edit in 0..96u8 {
                    if edit % 8 > 4 && edit >= 8 {
                        continue;
                    }
                    let variant = format!(
                        "{}{}{}",
                        &doc[..range.start],
                        mutate(element, &[(k, edit)]),
                        &doc[range.end..]
                    );
                    variants += 1;
                    decoded += usize::from(decode_all(&variant, contract, response));
                }
            }
        }
    }
    assert!(
        // 55,692 variants, 24,217 of them valid, when written.
        variants > 40_000 && decoded > 15_000,
        "{decoded} of {variants}"
    );
}

/// Every single edit after the body element of every golden answer of the partner API
/// (where the one-pass decode of upstream answers checks the rest of the envelope itself):
/// the one-pass result equals the full scan and decode (asserted inside
/// `decode_upstream_reply`), and it accepts exactly what the full path accepts.
#[test]
fn every_single_edit_after_the_body_element_of_an_answer_is_read_as_the_full_scan_reads_it() {
    let (mut variants, mut accepted) = (0, 0);
    for (contract, doc, response) in golden_messages() {
        let (Contract::Partner(op), true) = (contract, response) else {
            continue;
        };
        let body = decoded_elements(&doc).pop().expect("a body element");
        let (head, tail) = doc.split_at(body.end);
        for k in 0..tail.matches('>').count() + 1 {
            for edit in 0..96u8 {
                let variant = format!("{head}{}", mutate(tail, &[(k, edit)]));
                variants += 1;
                let reply = crate::forward::decode_upstream_reply(op, 200, variant.as_bytes());
                accepted += usize::from(reply.is_ok());
            }
        }
    }
    assert!(
        variants > 5_000 && accepted > 500,
        "{accepted} of {variants}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
    /// Near-valid variants of the golden requests and responses: whatever the fast path
    /// accepts, the strict decoder accepts with the same value (`decode_fast_or_strict`
    /// asserts it in this debug build; decoding here is enough to check it).
    #[test]
    fn near_valid_variants_decode_the_same_way_on_both_paths(
        message in 0usize..40,
        target in 0usize..2,
        edits in proptest::collection::vec((0usize..200, proptest::num::u8::ANY), 1..4),
    ) {
        let messages = golden_messages();
        let (contract, doc, response) = &messages[message % messages.len()];
        let ranges = decoded_elements(doc);
        let range = ranges[target % ranges.len()].clone();
        let variant = format!(
            "{}{}{}",
            &doc[..range.start],
            mutate(&doc[range.clone()], &edits),
            &doc[range.end..]
        );
        decode_all(&variant, *contract, *response);
    }
}

#[test]
fn what_the_strict_decoder_refuses_the_fast_path_gives_up_on() {
    for body in [
        BODY.replace("ACC-0000001001", " ACC-0000001001"),
        BODY.replace("ACC-0000001001", "ACC-1"),
        BODY.replace("<acc:AccountNumber>", "<acc:AccountNumber x=\"1\">"),
        BODY.replace("<acc:AccountNumber>", "<acc:Extra/><acc:AccountNumber>"),
        BODY.replace(
            "</acc:GetAccount>",
            "<acc:AccountNumber>ACC-0000001001</acc:AccountNumber></acc:GetAccount>",
        ),
        BODY.replace("</acc:GetAccount>", "x</acc:GetAccount>"),
        BODY.replace("<acc:AccountNumber>ACC-0000001001</acc:AccountNumber>", ""),
        BODY.replace("acc:AccountNumber", "AccountNumber"),
        BODY.replace("ACC-0000001001", "ACC-0000001001&#1;"),
        BODY.replace("ACC-0000001001", "ACC-0000001001\r"),
        BODY.replace("<acc:AccountNumber>ACC-0000001001</acc:AccountNumber>", " "),
        BODY.replace(
            "<acc:GetAccount>",
            "<acc:GetAccount xmlns:acc=\"urn:other\">",
        ),
    ] {
        let (fast, strict) = both(&body);
        assert!(fast.is_none(), "{body}");
        assert!(strict.is_err(), "{body}");
    }
}
