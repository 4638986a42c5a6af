//! Golden fixtures in `tests/data/`: every request and response decodes strictly, re-encodes to
//! the canonical form checked in beside it (`*.canonical.xml`), and the canonical form decodes to
//! the same value and re-encodes to identical bytes.
//!
//! Refresh the canonical files after a deliberate encoder or contract change with
//! `PARTNERGATE_UPDATE_GOLDEN=1 cargo test --test golden` and review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

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
