//! Golden fixtures in `tests/data/`: every request and response decodes strictly, re-encodes to
//! the canonical form checked in beside it (`*.canonical.xml`), and the canonical form decodes to
//! the same value and re-encodes to identical bytes.
//!
//! Refresh the canonical files after a deliberate encoder or contract change with
//! `PARTNERGATE_UPDATE_GOLDEN=1 cargo test --test golden` and review the diff.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::path::{Path, PathBuf};

use partnergate::decode::{self, DecodeLimits};
use partnergate::encode;
use partnergate::envelope::{self, SoapVersion};
use partnergate::generated::{callback, partner};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Compares `actual` with the checked-in golden file, or rewrites it when asked to.
fn check_golden(path: &Path, actual: &[u8]) {
    if std::env::var_os("PARTNERGATE_UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with PARTNERGATE_UPDATE_GOLDEN=1 cargo test --test golden",
            path.display()
        )
    });
    assert_eq!(
        String::from_utf8_lossy(&expected),
        String::from_utf8_lossy(actual),
        "{} differs from the encoder's output",
        path.display()
    );
}

fn canonical_path(fixture: &Path) -> PathBuf {
    let name = fixture.file_name().and_then(|n| n.to_str()).expect("name");
    fixture.with_file_name(name.replace(".xml", ".canonical.xml"))
}

/// One decode → encode → decode → encode cycle; returns the canonical bytes.
fn round_trip<T: PartialEq + std::fmt::Debug>(
    fixture: &Path,
    decode: impl Fn(&envelope::BodyElement<'_>) -> Result<T, decode::DecodeError>,
    encode: impl Fn(&T, &mut encode::XmlWriter<'_>) -> Result<(), encode::EncodeError>,
) -> Vec<u8> {
    let bytes = std::fs::read(fixture).expect("read fixture");
    let env = envelope::scan(&bytes).unwrap_or_else(|e| panic!("{}: {e}", fixture.display()));
    let value = decode(&env.body).unwrap_or_else(|e| panic!("{}: {e}", fixture.display()));

    let mut first = Vec::new();
    encode::body_only(env.version, &mut first, |w| encode(&value, w)).expect("encode");
    let env2 =
        envelope::scan(&first).unwrap_or_else(|e| panic!("re-encoded {}: {e}", fixture.display()));
    assert_eq!(env2.version, env.version);
    let value2 = decode(&env2.body).unwrap_or_else(|e| {
        panic!(
            "re-encoded {} does not decode: {e}\n{}",
            fixture.display(),
            String::from_utf8_lossy(&first)
        )
    });
    assert_eq!(
        value,
        value2,
        "{}: decode(encode(x)) != x",
        fixture.display()
    );
    let mut second = Vec::new();
    encode::body_only(env.version, &mut second, |w| encode(&value2, w)).expect("encode");
    assert_eq!(
        first,
        second,
        "{}: encoding is not stable",
        fixture.display()
    );
    first
}

fn partner_request_fixtures() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for op in partner::Operation::ALL {
        let dir = data_dir().join(op.name());
        for name in ["request.xml", "request.soap12.xml"] {
            let path = dir.join(name);
            if path.exists() {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn every_operation_has_a_request_and_a_response_fixture() {
    for op in partner::Operation::ALL {
        let dir = data_dir().join(op.name());
        assert!(
            dir.join("request.xml").exists(),
            "{} has no request.xml",
            op.name()
        );
        assert!(
            dir.join("response.xml").exists(),
            "{} has no response.xml",
            op.name()
        );
    }
    for op in callback::Operation::ALL {
        let dir = data_dir().join("callback").join(op.name());
        assert!(
            dir.join("request.xml").exists(),
            "callback {} has no request.xml",
            op.name()
        );
        assert!(
            dir.join("response.xml").exists(),
            "callback {} has no response.xml",
            op.name()
        );
    }
}

#[test]
fn partner_requests_round_trip() {
    let fixtures = partner_request_fixtures();
    assert!(fixtures.len() >= partner::Operation::ALL.len());
    for fixture in fixtures {
        let canonical = round_trip(
            &fixture,
            |b| decode::partner_request(b, DecodeLimits::default()),
            |v, w| Ok(v.encode(w)?),
        );
        check_golden(&canonical_path(&fixture), &canonical);
    }
}

#[test]
fn partner_requests_decode_to_their_operation_and_carry_the_auth_header() {
    for fixture in partner_request_fixtures() {
        let op_name = fixture
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .expect("dir");
        let bytes = std::fs::read(&fixture).expect("read");
        let env = envelope::scan(&bytes).expect("scan");
        let request = decode::partner_request(&env.body, DecodeLimits::default()).expect("decode");
        assert_eq!(request.operation().name(), op_name, "{}", fixture.display());
        let (ns, local) = partner::AUTH_HEADER_ELEMENT;
        let auth = env
            .headers
            .iter()
            .find(|h| h.element.is(ns, local))
            .unwrap_or_else(|| panic!("{}: no PartnerAuth", fixture.display()));
        let header =
            decode::partner_auth(&auth.element, DecodeLimits::default()).expect("auth decodes");
        assert_eq!(header.partner_id.as_str(), "PARTNER-0042");
        if fixture.to_string_lossy().contains("soap12") {
            assert_eq!(env.version, SoapVersion::Soap12);
        }
    }
}

#[test]
fn partner_responses_round_trip() {
    for op in partner::Operation::ALL {
        let fixture = data_dir().join(op.name()).join("response.xml");
        let canonical = round_trip(
            &fixture,
            |b| decode::partner_response(op, b, DecodeLimits::default()),
            |v, w| Ok(v.encode(w)?),
        );
        check_golden(&canonical_path(&fixture), &canonical);
    }
}

#[test]
fn callback_requests_and_responses_round_trip() {
    for op in callback::Operation::ALL {
        let dir = data_dir().join("callback").join(op.name());
        let request = dir.join("request.xml");
        let canonical = round_trip(
            &request,
            |b| decode::callback_request(b, DecodeLimits::default()),
            |v, w| Ok(v.encode(w)?),
        );
        check_golden(&canonical_path(&request), &canonical);
        let response = dir.join("response.xml");
        let canonical = round_trip(
            &response,
            |b| decode::callback_response(op, b, DecodeLimits::default()),
            |v, w| Ok(v.encode(w)?),
        );
        check_golden(&canonical_path(&response), &canonical);
    }
}

/// Fault fixtures: parse the fault, decode its detail strictly, re-encode the fault, and get the
/// same code, reason and detail back.
fn fault_round_trip(fixture: &Path, callback: bool) -> Vec<u8> {
    let bytes = std::fs::read(fixture).expect("read fixture");
    let env = envelope::scan(&bytes).unwrap_or_else(|e| panic!("{}: {e}", fixture.display()));
    let fault =
        envelope::parse_fault(&env).unwrap_or_else(|e| panic!("{}: {e}", fixture.display()));
    let entry = fault.detail.as_ref().expect("typed detail");
    let detail = if callback {
        decode::callback_fault(entry, DecodeLimits::default()).map(Err)
    } else {
        decode::partner_fault(entry, DecodeLimits::default()).map(Ok)
    }
    .unwrap_or_else(|e| panic!("{}: {e}", fixture.display()));
    let encode_detail = |d: &Result<partner::FaultDetail, callback::FaultDetail>,
                         w: &mut encode::XmlWriter<'_>| match d {
        Ok(p) => Ok(p.encode(w)?),
        Err(c) => Ok(c.encode(w)?),
    };
    let mut out = Vec::new();
    encode::fault(
        env.version,
        &mut out,
        fault.code,
        &fault.reason,
        Some(|w: &mut encode::XmlWriter<'_>| encode_detail(&detail, w)),
    )
    .expect("encode fault");
    let env2 = envelope::scan(&out).expect("re-encoded fault scans");
    let fault2 = envelope::parse_fault(&env2).expect("re-encoded fault parses");
    assert_eq!(fault2.code, fault.code);
    assert_eq!(fault2.reason, fault.reason);
    let entry2 = fault2.detail.as_ref().expect("detail");
    let detail2 = if callback {
        decode::callback_fault(entry2, DecodeLimits::default()).map(Err)
    } else {
        decode::partner_fault(entry2, DecodeLimits::default()).map(Ok)
    }
    .expect("re-encoded detail decodes");
    assert_eq!(detail, detail2, "{}", fixture.display());
    out
}

#[test]
fn faults_round_trip() {
    let mut seen = 0;
    for kind in partner::FaultKind::ALL {
        let (_, local) = kind.element();
        for version in ["soap11", "soap12"] {
            let fixture = data_dir()
                .join("faults")
                .join(format!("{local}.{version}.xml"));
            let canonical = fault_round_trip(&fixture, false);
            check_golden(&canonical_path(&fixture), &canonical);
            seen += 1;
        }
    }
    assert_eq!(seen, 12);
    for version in ["soap11", "soap12"] {
        let fixture = data_dir()
            .join("callback/faults")
            .join(format!("CallbackFault.{version}.xml"));
        let canonical = fault_round_trip(&fixture, true);
        check_golden(&canonical_path(&fixture), &canonical);
    }
}

/// Every negative fixture (which xmllint rejects) is refused by partnergate too.
#[test]
fn invalid_fixtures_are_refused() {
    let dir = data_dir().join("invalid");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("invalid/") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("xml")
            || path.to_string_lossy().contains(".canonical.")
        {
            continue;
        }
        count += 1;
        let bytes = std::fs::read(&path).expect("read");
        let Ok(env) = envelope::scan(&bytes) else {
            continue;
        };
        let body = &env.body;
        let refused = if let Ok(fault) = envelope::parse_fault(&env) {
            match fault.detail {
                Some(d) => decode::partner_fault(&d, DecodeLimits::default()).is_err(),
                None => false,
            }
        } else if body.is(envelope::SOAP11_NS, "Fault") || body.is(envelope::SOAP12_NS, "Fault") {
            true
        } else if let Some(op) = partner::Operation::ALL.iter().find(|op| {
            let (ns, local) = op.response_element();
            body.is(ns, local)
        }) {
            decode::partner_response(*op, body, DecodeLimits::default()).is_err()
        } else if callback::Operation::from_request_element(&body.namespace, body.local_name)
            .is_some()
        {
            decode::callback_request(body, DecodeLimits::default()).is_err()
        } else {
            decode::partner_request(body, DecodeLimits::default()).is_err()
        };
        assert!(refused, "{} was accepted", path.display());
    }
    assert!(count >= 10, "only {count} negative fixtures");
}
