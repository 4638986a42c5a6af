//! The fuzz targets on stable: seed corpora built from the golden fixtures (checked in under
//! `fuzz/seeds/`, refreshed with `PARTNERGATE_UPDATE_SEEDS=1 cargo test --features fuzzing --lib
//! fuzzing`), every seed and every regression input (`fuzz/regressions/<target>/`) replayed, and
//! checks that the harnesses really reach the deep paths (a seed that is refused at the first
//! stage would make a fuzz run look good while testing nothing).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderValue};

use super::stub::with_harness;
use super::target_decode::{decode_envelope, wrap, Selector};
use super::target_envelope::within;
use super::target_json::JsonSelector;
use super::target_pipeline::{
    allowed_independently, permitted_independently, pipeline_input, run_pipeline,
};
use super::*;
use crate::authenticate;
use crate::envelope;
use crate::generated::{callback, partner};

const TARGETS: [&str; 5] = ["envelope", "decode", "roundtrip", "json", "pipeline"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(target: &str, data: &[u8]) {
    match target {
        "envelope" => envelope(data),
        "decode" => decode(data),
        "roundtrip" => roundtrip(data),
        "json" => json(data),
        "pipeline" => pipeline(data),
        other => panic!("no target {other}"),
    }
}

/// Every `*.xml` under `dir`, by path relative to `tests/data`, sorted.
fn fixtures(dir: &Path, base: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            fixtures(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "xml") {
            let rel = path
                .strip_prefix(base)
                .expect("under tests/data")
                .to_string_lossy()
                .replace('/', "-");
            out.push((rel, std::fs::read(&path).expect("fixture")));
        }
    }
}

fn all_fixtures() -> Vec<(String, Vec<u8>)> {
    let base = root().join("tests/data");
    let mut out = Vec::new();
    fixtures(&base, &base, &mut out);
    out
}

/// The operation index (into `Operation::ALL`) a fixture belongs to, from its name.
fn op_index(name: &str) -> usize {
    if let Some(i) = partner::Operation::ALL
        .iter()
        .position(|op| name.starts_with(&format!("{}-", op.name())))
    {
        return i;
    }
    callback::Operation::ALL
        .iter()
        .position(|op| name.contains(op.name()))
        .unwrap_or(0)
}

/// The GetAccount fixture with a WS-Security UsernameToken instead of PartnerAuth.
fn wsse_get_account() -> Vec<u8> {
    let get = std::fs::read(root().join("tests/data/GetAccount/request.xml")).expect("fixture");
    let text = String::from_utf8_lossy(&get);
    let start = text.find("<cmn:PartnerAuth>").expect("PartnerAuth");
    let end = text.find("</cmn:PartnerAuth>").expect("PartnerAuth end") + 18;
    let wsse = format!(
        "<wsse:Security xmlns:wsse=\"{}\" soapenv:mustUnderstand=\"1\"><wsse:UsernameToken>\
         <wsse:Username>{}</wsse:Username><wsse:Password Type=\"{}\">{}</wsse:Password>\
         </wsse:UsernameToken></wsse:Security>",
        authenticate::WSSE_NS,
        PARTNERS[0].id,
        authenticate::PASSWORD_TEXT,
        PARTNERS[0].key
    );
    format!("{}{wsse}{}", &text[..start], &text[end..]).into_bytes()
}

/// Enrollment messages (the contract has no golden fixtures of its own): (name, operation
/// index, body element).
const ENROLLMENT_SEEDS: [(&str, usize, &str); 4] = [
    (
        "enrollment-RequestEnrollment",
        0,
        "<enr:RequestEnrollment xmlns:enr=\"urn:partnergate:enrollment:v1\" \
         xmlns:cmn=\"urn:partnergate:partner:common:v1\"><enr:CompanyName>Acme Telecom</enr:CompanyName>\
         <enr:Country>DE</enr:Country><enr:Contact><cmn:FirstName>Anna</cmn:FirstName>\
         <cmn:LastName>Muller</cmn:LastName><cmn:Email>anna@example.com</cmn:Email></enr:Contact>\
         <enr:Operation>CreateAccount</enr:Operation><enr:Operation>accounts.*</enr:Operation>\
         <enr:Network>198.51.100.0/28</enr:Network><enr:Network>2001:db8:10::/48</enr:Network>\
         <enr:CallbackUrl>https://bss.acme.example/callback</enr:CallbackUrl>\
         <enr:AcceptedTerms>2026-01</enr:AcceptedTerms></enr:RequestEnrollment>",
    ),
    (
        "enrollment-RequestEnrollmentResponse",
        0,
        "<enr:RequestEnrollmentResponse xmlns:enr=\"urn:partnergate:enrollment:v1\">\
         <enr:EnrollmentId>enr_0123456789abcdef0123456789abcdef</enr:EnrollmentId>\
         <enr:PickupSecret>pge_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef</enr:PickupSecret>\
         <enr:Status>PENDING</enr:Status></enr:RequestEnrollmentResponse>",
    ),
    (
        "enrollment-GetEnrollmentStatus",
        1,
        "<enr:GetEnrollmentStatus xmlns:enr=\"urn:partnergate:enrollment:v1\">\
         <enr:EnrollmentId>enr_0123456789abcdef0123456789abcdef</enr:EnrollmentId>\
         <enr:PickupSecret>pge_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef</enr:PickupSecret>\
         </enr:GetEnrollmentStatus>",
    ),
    (
        "enrollment-GetEnrollmentStatusResponse",
        1,
        "<enr:GetEnrollmentStatusResponse xmlns:enr=\"urn:partnergate:enrollment:v1\" \
         xmlns:cmn=\"urn:partnergate:partner:common:v1\">\
         <enr:EnrollmentId>enr_0123456789abcdef0123456789abcdef</enr:EnrollmentId>\
         <enr:Status>APPROVED</enr:Status><enr:PartnerId>PARTNER-0001</enr:PartnerId>\
         <enr:ApiKey>pgk_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef</enr:ApiKey>\
         <enr:CallbackKey>pgc_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef</enr:CallbackKey>\
         </enr:GetEnrollmentStatusResponse>",
    ),
];

/// The seed corpus of `target`, built from the golden fixtures: (file name, bytes).
fn seeds(target: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let fixtures = all_fixtures();
    match target {
        "envelope" => {
            for (name, bytes) in fixtures {
                out.insert(name, bytes);
            }
            out.insert("wsse-GetAccount.xml".into(), wsse_get_account());
        }
        "decode" | "roundtrip" => {
            for (name, bytes) in &fixtures {
                let Ok(env) = envelope::scan(bytes) else {
                    continue;
                };
                let canonical = name.contains("canonical");
                let i = op_index(name);
                let mut seed = vec![Selector::byte(i, env.version, !canonical, false)];
                seed.extend_from_slice(env.body.bytes());
                out.insert(format!("{name}-body"), seed);
                for (n, h) in env.headers.iter().enumerate() {
                    let mut seed = vec![Selector::byte(i, env.version, true, true)];
                    seed.extend_from_slice(h.element.bytes());
                    out.insert(format!("{name}-header{n}"), seed);
                }
            }
            for (name, i, body) in ENROLLMENT_SEEDS {
                let mut seed = vec![Selector::byte(i, SoapVersion::Soap11, false, false)];
                seed.extend_from_slice(body.as_bytes());
                out.insert(format!("{name}-body"), seed);
            }
        }
        "json" => json_seeds(&mut out),
        "pipeline" => {
            let head = |version: SoapVersion, action: &str| match version {
                SoapVersion::Soap11 => format!(
                    "Content-Type: text/xml; charset=utf-8\r\nSOAPAction: \"{action}\"\r\n\r\n"
                ),
                SoapVersion::Soap12 => format!(
                    "Content-Type: application/soap+xml; charset=utf-8; action=\"{action}\"\r\n\r\n"
                ),
            };
            let seed = |sel: u8, head: &str, body: &[u8]| {
                let mut s = vec![sel];
                s.extend_from_slice(head.as_bytes());
                s.extend_from_slice(body);
                s
            };
            for (name, bytes) in &fixtures {
                let request = name.contains("request")
                    && !name.starts_with("callback")
                    && !name.contains("canonical");
                if !(request || name.starts_with("invalid-")) {
                    continue;
                }
                let op = partner::Operation::ALL[op_index(name)];
                let version = envelope::scan(bytes).map_or(SoapVersion::Soap11, |e| e.version);
                let action = if request { op.soap_action() } else { "" };
                out.insert(name.clone(), seed(0, &head(version, action), bytes));
            }
            // GetAccount from every peer and with every stub answer.
            let get = &fixtures
                .iter()
                .find(|(n, _)| n == "GetAccount-request.xml")
                .expect("GetAccount fixture")
                .1;
            let action = partner::Operation::GetAccount.soap_action();
            let h11 = head(SoapVersion::Soap11, action);
            for peer in 1..u8::try_from(PEERS.len()).expect("few peers") {
                out.insert(format!("peer{peer}-GetAccount"), seed(peer, &h11, get));
            }
            for reply in 1..8u8 {
                out.insert(
                    format!("reply{reply}-GetAccount"),
                    seed(reply << 3, &h11, get),
                );
            }
            // Through the trusted proxy, for an allowed client.
            let proxied = format!("X-Forwarded-For: 203.0.113.5, 127.0.0.1\r\n{h11}");
            out.insert("proxy-GetAccount".into(), seed(3, &proxied, get));
            // A client's own `Forwarded` passed through the proxy (which writes X-Forwarded-For):
            // never believed, so refused at the allowlist.
            let forwarded =
                format!("Forwarded: for=\"[::1]:443\";proto=https, for=127.0.0.1\r\n{h11}");
            out.insert("forwarded-GetAccount".into(), seed(3, &forwarded, get));
            // The second partner: permitted (accounts.*) and not (devices).
            let second = |body: &[u8]| {
                String::from_utf8_lossy(body)
                    .replace(PARTNERS[0].id, PARTNERS[1].id)
                    .replace(PARTNERS[0].key, PARTNERS[1].key)
                    .into_bytes()
            };
            out.insert("partner43-GetAccount".into(), seed(1, &h11, &second(get)));
            let device = &fixtures
                .iter()
                .find(|(n, _)| n == "GetDevice-request.xml")
                .expect("GetDevice fixture")
                .1;
            out.insert(
                "partner43-GetDevice".into(),
                seed(
                    1,
                    &head(
                        SoapVersion::Soap11,
                        partner::Operation::GetDevice.soap_action(),
                    ),
                    &second(device),
                ),
            );
            // WS-Security UsernameToken instead of PartnerAuth.
            out.insert("wsse-GetAccount".into(), seed(0, &h11, &wsse_get_account()));
        }
        other => panic!("no target {other}"),
    }
    out
}

/// Invalid JSON seeds for the json target: (name, selector, body).
const JSON_INVALID_SEEDS: [(&str, JsonSelector, &str); 7] = [
    (
        // The XML face refuses `]]>` in a value (the serializer could not write it): so must
        // the JSON face.
        "invalid-cdata-end",
        JsonSelector::Fault(partner::FaultKind::InvalidRequest),
        r#"{"Path":"/Envelope","Rule":"pattern","Message":"a ]]> b","RequestId":"gw-7f3c2a9e-4b1d-4e8a-9c65-2d1f0e8b7a41"}"#,
    ),
    (
        "invalid-duplicate-escaped",
        JsonSelector::Request(partner::Operation::GetAccount),
        r#"{"AccountNumber":"ACC-0000001001","Account\u004eumber":"ACC-0000001001"}"#,
    ),
    (
        "invalid-lone-surrogate",
        JsonSelector::Request(partner::Operation::GetAccount),
        r#"{"AccountNumber":"ACC-\ud800"}"#,
    ),
    (
        "invalid-fraction",
        JsonSelector::Request(partner::Operation::AddService),
        r#"{"AccountNumber":"ACC-0000001001","ServiceType":"VOIP","Settings":{"MaxChannels":4.5}}"#,
    ),
    (
        "invalid-choice-of-two",
        JsonSelector::Request(partner::Operation::ModifyFeature),
        r#"{"ServiceId":"SVC-0000008001","Feature":"CALL_WAITING","Settings":{"CallWaiting":{},"CallerId":{}}}"#,
    ),
    (
        "invalid-trailing",
        JsonSelector::Request(partner::Operation::GetAccount),
        r#"{"AccountNumber":"ACC-0000001001"} []"#,
    ),
    (
        "invalid-null",
        JsonSelector::Fault(partner::FaultKind::Throttled),
        r#"{"RetryAfterSeconds":null}"#,
    ),
];

/// The json target's seeds: every golden JSON file (`tests/data/<Op>/request.json`,
/// `response.json`, `tests/data/faults/<Fault>.json`) behind its selector byte, and a few
/// invalid documents.
fn json_seeds(out: &mut BTreeMap<String, Vec<u8>>) {
    let data = root().join("tests/data");
    let mut add = |name: String, sel: JsonSelector, path: PathBuf| {
        let mut seed = vec![sel.byte()];
        seed.extend(std::fs::read(&path).expect("golden JSON"));
        out.insert(name, seed);
    };
    for op in partner::Operation::ALL {
        let dir = data.join(op.name());
        add(
            format!("{}-request.json", op.name()),
            JsonSelector::Request(op),
            dir.join("request.json"),
        );
        add(
            format!("{}-response.json", op.name()),
            JsonSelector::Response(op),
            dir.join("response.json"),
        );
    }
    for kind in partner::FaultKind::ALL {
        let (_, local) = kind.element();
        add(
            format!("faults-{local}.json"),
            JsonSelector::Fault(kind),
            data.join(format!("faults/{local}.json")),
        );
    }
    for (name, sel, body) in JSON_INVALID_SEEDS {
        let mut seed = vec![sel.byte()];
        seed.extend_from_slice(body.as_bytes());
        out.insert(name.to_string(), seed);
    }
}

/// Every golden JSON seed is accepted (the target reaches its round trips), every invalid one
/// refused.
#[test]
fn the_json_seeds_decode() {
    let mut accepted = 0;
    for (name, data) in seeds("json") {
        let body = &data[1..];
        let l = crate::decode::DecodeLimits::default();
        let result = match JsonSelector::from_byte(data[0]) {
            JsonSelector::Request(op) => {
                crate::json::decode_partner_request(op, body, &[], &l).map(drop)
            }
            JsonSelector::Response(op) => {
                crate::json::decode_partner_response(op, body, &l).map(drop)
            }
            JsonSelector::Fault(kind) => {
                crate::json::decode_partner_fault(kind, body, &l).map(drop)
            }
        };
        assert_eq!(
            result.is_ok(),
            !name.starts_with("invalid-"),
            "{name}: {result:?}"
        );
        accepted += usize::from(result.is_ok());
    }
    assert_eq!(accepted, 18 * 2 + 6);
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .map(|p| {
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                std::fs::read(&p).expect("read"),
            )
        })
        .collect()
}

#[test]
fn seed_corpora_are_fresh() {
    let update = std::env::var_os("PARTNERGATE_UPDATE_SEEDS").is_some();
    for target in TARGETS {
        let dir = root().join("fuzz/seeds").join(target);
        let want = seeds(target);
        if update {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("seed dir");
            for (name, bytes) in &want {
                std::fs::write(dir.join(name), bytes).expect("write seed");
            }
            continue;
        }
        let have = files(&dir);
        assert!(
            have == want,
            "fuzz/seeds/{target} is stale: run PARTNERGATE_UPDATE_SEEDS=1 cargo test --features \
             fuzzing --lib fuzzing ({} files, {} expected)",
            have.len(),
            want.len()
        );
    }
}

#[test]
fn every_seed_and_regression_input_passes() {
    for target in TARGETS {
        for dir in ["fuzz/seeds", "fuzz/regressions"] {
            for (name, bytes) in files(&root().join(dir).join(target)) {
                let result = std::panic::catch_unwind(|| run(target, &bytes));
                assert!(result.is_ok(), "{dir}/{target}/{name} fails");
            }
        }
    }
}

#[test]
fn the_pipeline_seeds_reach_the_upstream() {
    let seeds = seeds("pipeline");
    let mut reached = Vec::new();
    for (name, data) in &seeds {
        let input = pipeline_input(data).expect("input");
        let (outcome, calls) = with_harness(|h| run_pipeline(h, &input));
        let called = !calls.is_empty();
        if called {
            reached.push(name.as_str());
        }
        let expect_call = !name.starts_with("invalid-")
            && ![
                "peer1",
                "peer2",
                "peer3",
                "peer5",
                "partner43-GetDevice",
                "forwarded-",
            ]
            .iter()
            .any(|p| name.starts_with(p));
        assert_eq!(
            called,
            expect_call,
            "{name}: {:?}",
            outcome.result.as_ref().err().map(ToString::to_string)
        );
    }
    assert!(reached.len() >= 18 + 6, "{reached:?}");
}

#[test]
fn the_decode_seeds_decode() {
    let mut requests = 0;
    let mut responses = 0;
    let mut faults = 0;
    let mut headers = 0;
    for (name, data) in seeds("decode") {
        let sel = Selector::from_byte(data[0]);
        let doc = wrap(sel, &data[1..]);
        let env = envelope::scan(&doc).unwrap_or_else(|e| panic!("{name}: {e}"));
        let d = decode_envelope(sel, &env);
        requests += usize::from(d.request.is_some());
        responses += usize::from(d.response.is_some());
        faults += usize::from(d.soap_fault_detail.is_some());
        headers += d.auth.len() + d.callback_auth.len();
        if name.starts_with("enrollment-") {
            let decoded = if name.ends_with("Response-body") {
                d.enrollment_response.is_some()
            } else {
                d.enrollment_request.is_some()
            };
            assert!(decoded, "{name} does not decode");
            continue;
        }
        if name.contains("request") && name.ends_with("-body") && !name.starts_with("callback") {
            assert!(d.request.is_some(), "{name} does not decode");
        }
        if name.contains("response") && name.ends_with("-body") && !name.starts_with("callback") {
            assert!(d.response.is_some(), "{name} does not decode");
        }
    }
    // Every operation's request and response, in both the fixture and its canonical form.
    assert!(requests >= 36 && responses >= 36, "{requests} {responses}");
    assert!(faults >= 24 && headers >= 22, "{faults} {headers}");
}

#[test]
fn the_envelope_invariants_hold_on_the_fixtures() {
    for (name, bytes) in all_fixtures() {
        envelope(&bytes);
        if let Ok(env) = envelope::scan(&bytes) {
            if name.contains("request.xml") && !name.starts_with("callback") {
                assert!(
                    authenticate::authenticate(&env, snapshot(), NOW).is_ok(),
                    "{name} does not authenticate"
                );
            }
        }
    }
}

#[test]
fn the_invariant_checks_catch_what_they_should() {
    // A slice from elsewhere is not inside the input.
    let a = b"<a/>".to_vec();
    let b = b"<a/>".to_vec();
    assert!(within(&a, &a[1..3]));
    assert!(!within(&a, &b[1..3]));
    // The independent allowlist and grant checks.
    let p = &PARTNERS[0];
    let none = HeaderMap::new();
    assert!(allowed_independently(p, PEERS[0], &none));
    assert!(allowed_independently(p, PEERS[4], &none));
    assert!(!allowed_independently(p, PEERS[2], &none));
    assert!(!allowed_independently(p, PEERS[3], &none));
    let mut fwd = HeaderMap::new();
    fwd.insert("x-forwarded-for", HeaderValue::from_static("127.0.0.9:80"));
    assert!(allowed_independently(p, PEERS[3], &fwd));
    assert!(!allowed_independently(p, PEERS[2], &fwd));
    let mut client_forwarded = HeaderMap::new();
    client_forwarded.insert("forwarded", HeaderValue::from_static("for=127.0.0.9"));
    assert!(!allowed_independently(p, PEERS[3], &client_forwarded));
    assert!(permitted_independently(
        &PARTNERS[1],
        partner::Operation::ModifyAccount
    ));
    assert!(permitted_independently(
        &PARTNERS[1],
        partner::Operation::GetService
    ));
    assert!(!permitted_independently(
        &PARTNERS[1],
        partner::Operation::ListServices
    ));
}
