//! Property test of the codec over generated messages: take a canonical fixture, change one leaf
//! (a new value drawn from a wide alphabet, the leaf removed, the leaf duplicated, two leaves
//! swapped), and run it through the envelope scan and the strict decoder. Whatever is accepted
//! must re-encode, decode to an equal value, and re-encode to identical bytes; nothing panics.
//! It must also pass through the JSON face: encoded as JSON, the JSON decoder accepts it (the
//! two faces accept the same values), decodes the same value and re-encodes identical JSON.
//! Most mutations are refused, which is the point: the accepted ones are the valid values the
//! schema allows, drawn far more widely than the fixtures.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::path::Path;
use std::sync::OnceLock;

use partnergate::decode::{self, DecodeLimits};
use partnergate::encode;
use partnergate::envelope;
use partnergate::generated::partner;
use partnergate::json;
use proptest::prelude::*;

/// Canonical request and response fixtures: (operation, is_response, text).
fn fixtures() -> &'static Vec<(partner::Operation, bool, String)> {
    static FIXTURES: OnceLock<Vec<(partner::Operation, bool, String)>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let mut out = Vec::new();
        for op in partner::Operation::ALL {
            for (file, response) in [
                ("request.canonical.xml", false),
                ("response.canonical.xml", true),
            ] {
                let text = std::fs::read_to_string(dir.join(op.name()).join(file))
                    .expect("canonical fixture");
                out.push((op, response, text));
            }
        }
        out
    })
}

/// Byte ranges of leaf elements `<p:X>text</p:X>` in a canonical (unindented) document, with the
/// range of their text.
fn leaves(doc: &str) -> Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    static LEAF: OnceLock<regex::Regex> = OnceLock::new();
    let re =
        LEAF.get_or_init(|| regex::Regex::new(r"<([^/<>\s]+)>([^<>]*)</([^<>]+)>").expect("regex"));
    re.captures_iter(doc)
        .filter(|c| c[1] == c[3])
        .map(|c| {
            let all = c.get(0).expect("match");
            let text = c.get(2).expect("text");
            (all.range(), text.range())
        })
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[derive(Debug, Clone)]
enum Mutation {
    Value(String),
    Remove,
    Duplicate,
    SwapWithNext,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => "[ -~éßü€\u{1F600}\t\n&<>]{0,24}".prop_map(Mutation::Value),
        4 => "(ACTIVE|SUSPENDED|TERMINATED|PENDING|[0-9]{1,3}|-?[0-9]{1,12}|true|false|0|1|\\+[1-9][0-9]{1,14}|[0-9A-F]{2}(:[0-9A-F]{2}){5}|20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z)".prop_map(Mutation::Value),
        1 => Just(Mutation::Remove),
        1 => Just(Mutation::Duplicate),
        1 => Just(Mutation::SwapWithNext),
    ]
}

fn apply(doc: &str, leaf: usize, m: &Mutation) -> String {
    let spans = leaves(doc);
    if spans.is_empty() {
        return doc.to_string();
    }
    let (all, text) = spans[leaf % spans.len()].clone();
    match m {
        Mutation::Value(v) => format!("{}{}{}", &doc[..text.start], escape(v), &doc[text.end..]),
        Mutation::Remove => format!("{}{}", &doc[..all.start], &doc[all.end..]),
        Mutation::Duplicate => format!(
            "{}{}{}",
            &doc[..all.end],
            &doc[all.clone()],
            &doc[all.end..]
        ),
        Mutation::SwapWithNext => match spans.get(leaf % spans.len() + 1) {
            Some((next, _)) if next.start == all.end => format!(
                "{}{}{}{}",
                &doc[..all.start],
                &doc[next.clone()],
                &doc[all.clone()],
                &doc[next.end..]
            ),
            _ => doc.to_string(),
        },
    }
}

/// What the XML decoder accepted, through the JSON face: encode, decode (accepted, equal),
/// encode again (identical).
fn check_json<T: PartialEq + std::fmt::Debug>(
    value: &T,
    encode_json: impl Fn(&T, &mut Vec<u8>) -> Result<(), json::JsonEncodeError>,
    decode_json: impl Fn(&[u8]) -> Result<T, decode::DecodeError>,
) {
    let mut a = Vec::new();
    encode_json(value, &mut a).expect("accepted values encode as JSON");
    let again = decode_json(&a).unwrap_or_else(|e| {
        panic!(
            "the JSON face refuses what the SOAP face accepted ({e}): {}",
            String::from_utf8_lossy(&a)
        )
    });
    assert_eq!(value, &again);
    let mut b = Vec::new();
    encode_json(&again, &mut b).expect("encode");
    assert_eq!(a, b);
}

/// Decodes, and if accepted checks the round trip. Returns whether it was accepted.
fn check(op: partner::Operation, response: bool, doc: &str) -> bool {
    let Ok(env) = envelope::scan(doc.as_bytes()) else {
        return false;
    };
    let limits = DecodeLimits::default();
    if response {
        let Ok(value) = decode::partner_response(op, &env.body, limits) else {
            return false;
        };
        let mut a = Vec::new();
        encode::body_only(env.version, &mut a, |w| Ok(value.encode(w)?))
            .expect("accepted values encode");
        let env2 = envelope::scan(&a).expect("scan");
        let again =
            decode::partner_response(op, &env2.body, limits).expect("encoder output decodes");
        assert_eq!(value, again);
        let mut b = Vec::new();
        encode::body_only(env.version, &mut b, |w| Ok(again.encode(w)?)).expect("encode");
        assert_eq!(a, b);
        check_json(&value, json::encode_partner_response, |j| {
            json::decode_partner_response(op, j, &limits)
        });
    } else {
        let Ok(value) = decode::partner_request(&env.body, limits) else {
            return false;
        };
        assert_eq!(value.operation(), op);
        let mut a = Vec::new();
        encode::body_only(env.version, &mut a, |w| Ok(value.encode(w)?))
            .expect("accepted values encode");
        let env2 = envelope::scan(&a).expect("scan");
        let again = decode::partner_request(&env2.body, limits).expect("encoder output decodes");
        assert_eq!(value, again);
        let mut b = Vec::new();
        encode::body_only(env.version, &mut b, |w| Ok(again.encode(w)?)).expect("encode");
        assert_eq!(a, b);
        check_json(&value, json::encode_partner_request, |j| {
            json::decode_partner_request(op, j, &[], &limits)
        });
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn accepted_messages_round_trip(fixture in 0usize..36, leaf in 0usize..64, first in mutation(), second in mutation()) {
        let (op, response, doc) = &fixtures()[fixture % fixtures().len()];
        let once = apply(doc, leaf, &first);
        let twice = apply(&once, leaf / 2, &second);
        check(*op, *response, &once);
        check(*op, *response, &twice);
    }
}

#[test]
fn the_mutator_produces_accepted_and_refused_messages() {
    // Guards against a property that passes because nothing is ever accepted.
    let (op, response, doc) = &fixtures()[0];
    assert!(check(*op, *response, doc));
    let spans = leaves(doc);
    assert!(spans.len() > 5);
    let mut accepted = 0;
    let mut refused = 0;
    for leaf in 0..spans.len() {
        for m in [
            Mutation::Remove,
            Mutation::Duplicate,
            Mutation::Value("x".into()),
        ] {
            if check(*op, *response, &apply(doc, leaf, &m)) {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
    }
    assert!(
        accepted > 0 && refused > 0,
        "accepted {accepted}, refused {refused}"
    );
}
