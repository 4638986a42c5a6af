//! The JSON decoder's refusals, each with its exact path and rule, and the encoder's escaping.

use super::*;
use crate::decode::Rule;
use crate::generated::partner::Operation;
use crate::generated::types::svc::ServiceSettings;

const ACCOUNT: &str = r#""AccountNumber":"ACC-0000001001""#;

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

/// The error of decoding `body` as `op`'s request: (path, rule).
fn refused_with_url(op: Operation, body: &[u8], url: &[(&str, &str)]) -> (String, Rule) {
    match decode_partner_request(op, body, url, &limits()) {
        Ok(v) => panic!("accepted: {v:?}"),
        Err(e) => (e.path, e.rule),
    }
}

fn refused(op: Operation, body: &str) -> (String, Rule) {
    refused_with_url(op, body.as_bytes(), &[])
}

fn accepted(op: Operation, body: &str) -> partner::Request {
    decode_partner_request(op, body.as_bytes(), &[], &limits())
        .unwrap_or_else(|e| panic!("refused: {e}"))
}

fn at(path: &str, rule: Rule) -> (String, Rule) {
    (path.to_string(), rule)
}

/// A golden request with `from` replaced by `to` (once, and it must occur).
fn golden(op: Operation, from: &str, to: &str) -> String {
    let path = format!(
        "{}/tests/data/{}/request.json",
        env!("CARGO_MANIFEST_DIR"),
        op.name()
    );
    let text = std::fs::read_to_string(path).expect("golden request");
    assert!(text.contains(from), "{from:?} not in the {op:?} request");
    text.replacen(from, to, 1)
}

/// A ServiceSettings object (an integer member) decoded with members from the URL, re-encoded.
fn settings_with_url(body: &str, url: &[(&str, &str)]) -> Result<String, (String, Rule)> {
    let mut r = JsonReader::new(body.as_bytes(), &limits()).map_err(|e| (e.path, e.rule))?;
    let value = ServiceSettings::json_object(&mut r, url).map_err(|e| (e.path, e.rule))?;
    r.finish().map_err(|e| (e.path, e.rule))?;
    let mut out = Vec::new();
    value.json(&mut JsonWriter::new(&mut out)).expect("encode");
    Ok(String::from_utf8(out).expect("UTF-8"))
}

#[test]
fn an_unknown_member_is_refused_at_its_path() {
    let body = format!(r#"{{{ACCOUNT},"Foo":1}}"#);
    assert_eq!(
        refused(Operation::GetAccount, &body),
        at("/Foo", Rule::UnknownElement)
    );
    let body = golden(
        Operation::CreateAccount,
        r#""FirstName": "Anna""#,
        r#""Nickname": "Anna""#,
    );
    assert_eq!(
        refused(Operation::CreateAccount, &body),
        at("/Contact/Nickname", Rule::UnknownElement)
    );
    // The path escapes `~` and `/` (RFC 6901).
    let body = format!(r#"{{{ACCOUNT},"a/b~c":1}}"#);
    assert_eq!(
        refused(Operation::GetAccount, &body),
        at("/a~1b~0c", Rule::UnknownElement)
    );
}

#[test]
fn a_duplicate_member_is_refused_also_when_spelled_with_escapes() {
    let twice = format!(r#"{{{ACCOUNT},{ACCOUNT}}}"#);
    assert_eq!(
        refused(Operation::GetAccount, &twice),
        at("/AccountNumber", Rule::DuplicateElement)
    );
    let escaped = format!(r#"{{{ACCOUNT},"Account\u004eumber":"ACC-0000001002"}}"#);
    assert_eq!(
        refused(Operation::GetAccount, &escaped),
        at("/AccountNumber", Rule::DuplicateElement)
    );
    // Alone, the escaped name is the name.
    let request = accepted(
        Operation::GetAccount,
        r#"{"Account\u004eumber":"ACC-0000001001"}"#,
    );
    assert_eq!(
        request,
        accepted(Operation::GetAccount, &format!("{{{ACCOUNT}}}"))
    );
}

#[test]
fn a_missing_required_member_is_named() {
    let body = golden(Operation::CreateAccount, r#""City": "Berlin","#, "");
    assert_eq!(
        refused(Operation::CreateAccount, &body),
        at("/Address/City", Rule::MissingElement)
    );
    assert_eq!(
        refused(Operation::GetAccount, "{}"),
        at("/AccountNumber", Rule::MissingElement)
    );
    // An empty body is the empty object.
    assert_eq!(
        refused(Operation::GetAccount, ""),
        at("/AccountNumber", Rule::MissingElement)
    );
}

#[test]
fn a_value_of_the_wrong_json_type_is_refused() {
    let cases = [
        (
            r#""MaxChannels": 4"#,
            r#""MaxChannels": "4""#,
            "/Settings/MaxChannels",
        ),
        (
            r#""MaxChannels": 4"#,
            r#""MaxChannels": 4.0"#,
            "/Settings/MaxChannels",
        ),
        (
            r#""MaxChannels": 4"#,
            r#""MaxChannels": 4e0"#,
            "/Settings/MaxChannels",
        ),
        (
            r#""MaxChannels": 4"#,
            r#""MaxChannels": 99999999999"#,
            "/Settings/MaxChannels",
        ),
        (
            r#""MaxChannels": 4"#,
            r#""MaxChannels": null"#,
            "/Settings/MaxChannels",
        ),
        (
            r#""ServiceType": "VOIP""#,
            r#""ServiceType": 1"#,
            "/ServiceType",
        ),
        (
            r#""ServiceType": "VOIP""#,
            r#""ServiceType": {}"#,
            "/ServiceType",
        ),
        (
            r#""ServiceType": "VOIP""#,
            r#""ServiceType": ["VOIP"]"#,
            "/ServiceType",
        ),
        (
            r#""ServiceType": "VOIP""#,
            r#""ServiceType": null"#,
            "/ServiceType",
        ),
        (
            r#""ServiceType": "VOIP""#,
            r#""ServiceType": true"#,
            "/ServiceType",
        ),
        (
            r#""RequestId": "crm-2024-000817-svc-voip""#,
            r#""RequestId": null"#,
            "/RequestId",
        ),
        (r#""Settings": {"#, r#""Settings": [{"#, "/Settings"),
    ];
    for (from, to, path) in cases {
        let body = golden(Operation::AddService, from, to);
        assert_eq!(
            refused(Operation::AddService, &body),
            at(path, Rule::Type),
            "{to}"
        );
    }
    let body = golden(
        Operation::EnableFeature,
        r#""EmailNotification": true"#,
        r#""EmailNotification": "true""#,
    );
    assert_eq!(
        refused(Operation::EnableFeature, &body),
        at("/Settings/Voicemail/EmailNotification", Rule::Type)
    );
}

#[test]
fn facets_are_checked_by_the_generated_constructors() {
    let create = |from: &str, to: &str| {
        refused(
            Operation::CreateAccount,
            &golden(Operation::CreateAccount, from, to),
        )
    };
    assert_eq!(
        create(
            r#""Email": "anna.mueller@mueller-soehne.example""#,
            r#""Email": "not an email""#
        ),
        at("/Contact/Email", Rule::Pattern)
    );
    assert_eq!(
        create(
            r#""AccountType": "BUSINESS""#,
            r#""AccountType": "business""#
        ),
        at("/AccountType", Rule::Enumeration)
    );
    // maxLength counts characters: 100 × ü (200 bytes) is allowed, 101 is not.
    let name = |n: usize| format!(r#""FirstName": "{}""#, "ü".repeat(n));
    let ok = golden(
        Operation::CreateAccount,
        r#""FirstName": "Anna""#,
        &name(100),
    );
    accepted(Operation::CreateAccount, &ok);
    assert_eq!(
        create(r#""FirstName": "Anna""#, &name(101)),
        at("/Contact/FirstName", Rule::MaxLength)
    );
    let service = |to: &str| {
        refused(
            Operation::AddService,
            &golden(Operation::AddService, r#""MaxChannels": 4"#, to),
        )
    };
    assert_eq!(
        service(r#""MaxChannels": 0"#),
        at("/Settings/MaxChannels", Rule::MinInclusive)
    );
    assert_eq!(
        service(r#""MaxChannels": 101"#),
        at("/Settings/MaxChannels", Rule::MaxInclusive)
    );
    accepted(
        Operation::AddService,
        &golden(
            Operation::AddService,
            r#""MaxChannels": 4"#,
            r#""MaxChannels": 100"#,
        ),
    );
}

#[test]
fn values_pass_the_xml_decoders_own_checks() {
    let account = |value: &str| {
        refused(
            Operation::GetAccount,
            &format!(r#"{{"AccountNumber":"{value}"}}"#),
        )
    };
    assert_eq!(
        account(" ACC-0000001001"),
        at("/AccountNumber", Rule::Whitespace)
    );
    assert_eq!(
        account("ACC-0000001001\\n"),
        at("/AccountNumber", Rule::Whitespace)
    );
    let notes = |value: &str| {
        refused(
            Operation::CreateAccount,
            &golden(
                Operation::CreateAccount,
                r#""Notes": "Preferred"#,
                &format!(r#""Notes": "{value}Preferred"#),
            ),
        )
    };
    assert_eq!(
        notes("\\u0001"),
        at("/Settings/Notes", Rule::InvalidCharacter)
    );
    assert_eq!(
        notes("\\u0000"),
        at("/Settings/Notes", Rule::InvalidCharacter)
    );
    assert_eq!(
        notes("\\uFFFE"),
        at("/Settings/Notes", Rule::InvalidCharacter)
    );
    assert_eq!(notes("]]>"), at("/Settings/Notes", Rule::InvalidCharacter));
    // A lone surrogate is not a character; a pair is one.
    assert_eq!(
        notes("\\ud800"),
        at("/Settings/Notes", Rule::InvalidCharacter)
    );
    assert_eq!(
        notes("\\udc00x"),
        at("/Settings/Notes", Rule::InvalidCharacter)
    );
    assert_eq!(
        notes("\\ud800\\u0041"),
        at("/Settings/Notes", Rule::InvalidCharacter)
    );
    let pair = golden(
        Operation::CreateAccount,
        r#""Notes": "Preferred"#,
        r#""Notes": "\ud83d\ude00 Preferred"#,
    );
    let partner::Request::CreateAccount(request) = accepted(Operation::CreateAccount, &pair) else {
        panic!("not CreateAccount")
    };
    let notes = request.settings.and_then(|s| s.notes).expect("notes");
    assert!(notes.as_str().starts_with("😀 Preferred"));
}

#[test]
fn arrays_are_bounded_and_single_items_must_be_arrays() {
    let allow = |items: usize| {
        let list: Vec<String> = (0..items)
            .map(|i| format!("\"+4930123456{i:02}\""))
            .collect();
        golden(
            Operation::ModifyFeature,
            r#""CallForwarding": {
      "ForwardTo": "+4917012345678",
      "Condition": "NO_ANSWER",
      "RingSeconds": 20
    }"#,
            &format!(r#""DoNotDisturb": {{"AllowList": [{}]}}"#, list.join(",")),
        )
    };
    accepted(Operation::ModifyFeature, &allow(20));
    assert_eq!(
        refused(Operation::ModifyFeature, &allow(21)),
        at("/Settings/DoNotDisturb/AllowList/20", Rule::MaxOccurs)
    );
    // `[]` for a list with minOccurs 0 is the same as leaving it out.
    assert_eq!(
        accepted(Operation::ModifyFeature, &allow(0)),
        accepted(
            Operation::ModifyFeature,
            &allow(0).replace(r#""AllowList": []"#, "")
        )
    );
    let single = allow(1).replace(r#"[""#, "\"").replace(r#""]"#, "\"");
    assert_eq!(
        refused(Operation::ModifyFeature, &single),
        at("/Settings/DoNotDisturb/AllowList", Rule::Type)
    );
}

#[test]
fn a_choice_holds_exactly_one_member() {
    let two = golden(
        Operation::ModifyFeature,
        "\n  }\n}",
        r#", "CallWaiting": {}
  }
}"#,
    );
    assert_eq!(
        refused(Operation::ModifyFeature, &two),
        at("/Settings/CallWaiting", Rule::NotAllowedHere)
    );
    let twice = golden(
        Operation::ModifyFeature,
        "\n  }\n}",
        r#", "CallForwarding": {"ForwardTo": "+4917012345678", "Condition": "ALWAYS"}
  }
}"#,
    );
    assert_eq!(
        refused(Operation::ModifyFeature, &twice),
        at("/Settings/CallForwarding", Rule::DuplicateElement)
    );
    let none = golden(
        Operation::ModifyFeature,
        r#""Settings": {"#,
        r#""Settings": {}, "Unused": {"#,
    );
    assert_eq!(
        refused(Operation::ModifyFeature, &none),
        at("/Settings", Rule::MissingElement)
    );
}

#[test]
fn nesting_deeper_than_the_limit_is_refused() {
    let body = golden(Operation::CreateAccount, "\"", "\"");
    let tight = DecodeLimits {
        max_depth: 1,
        ..DecodeLimits::default()
    };
    let e = decode_partner_request(Operation::CreateAccount, body.as_bytes(), &[], &tight)
        .expect_err("too deep");
    assert_eq!((e.path.as_str(), e.rule), ("/Contact", Rule::Depth));
    let ok = DecodeLimits {
        max_depth: 2,
        ..DecodeLimits::default()
    };
    decode_partner_request(Operation::CreateAccount, body.as_bytes(), &[], &ok)
        .expect("two levels are enough");
}

#[test]
fn malformed_json_is_refused_where_it_breaks() {
    let cases: [(&[u8], &str); 12] = [
        (br#"{"AccountNumber":"ACC-0000001001""#, ""),
        (br#"{"AccountNumber":"ACC-0000001001","#, ""),
        (br#"{"AccountNumber":"ACC-0000001001",}"#, ""),
        (br#"{"AccountNumber" "ACC-0000001001"}"#, ""),
        (br#"{"AccountNumber":"ACC-0000001001"} x"#, ""),
        (br#"{"AccountNumber":"ACC-0000001001"}{}"#, ""),
        (br#"{"AccountNumber":"ACC-0000001001\x"}"#, "/AccountNumber"),
        (
            b"{\"AccountNumber\":\"ACC-0000001001\n\"}",
            "/AccountNumber",
        ),
        (br#"{"AccountNumber":'ACC-0000001001'}"#, "/AccountNumber"),
        (br#"{"AccountNumber":"ACC-\u00"}"#, "/AccountNumber"),
        (b"\xEF\xBB\xBF{\"AccountNumber\":\"ACC-0000001001\"}", ""),
        // Not UTF-8.
        (b"{\"AccountNumber\":\"ACC-\xff\"}", ""),
    ];
    for (body, path) in cases {
        assert_eq!(
            refused_with_url(Operation::GetAccount, body, &[]),
            at(path, Rule::Malformed),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let cases: [(&str, &str); 5] = [
        (r#"{"DisplayName": nul}"#, "/DisplayName"),
        (r#"{"DisplayName": True}"#, "/DisplayName"),
        (r#"{"MaxChannels": 04}"#, "/MaxChannels"),
        (r#"{"MaxChannels": -}"#, "/MaxChannels"),
        (r#"{"MaxChannels": 1.}"#, "/MaxChannels"),
    ];
    for (body, path) in cases {
        assert_eq!(
            settings_with_url(body, &[]),
            Err(at(path, Rule::Malformed)),
            "{body}"
        );
    }
}

#[test]
fn a_string_longer_than_the_bound_is_refused_before_its_facets() {
    let long = "x".repeat(MAX_STRING_CHARS + 1);
    assert_eq!(
        refused(
            Operation::GetAccount,
            &format!(r#"{{"AccountNumber":"{long}"}}"#)
        ),
        at("/AccountNumber", Rule::MaxLength)
    );
}

#[test]
fn members_from_the_url_are_typed_by_their_schema_type() {
    let url = [("AccountNumber", "ACC-0000001001")];
    let from_url =
        decode_partner_request(Operation::GetAccount, b"", &url, &limits()).expect("accepted");
    assert_eq!(
        from_url,
        accepted(Operation::GetAccount, &format!("{{{ACCOUNT}}}"))
    );
    assert_eq!(
        refused_with_url(
            Operation::GetAccount,
            format!("{{{ACCOUNT}}}").as_bytes(),
            &url
        ),
        at("/AccountNumber", Rule::DuplicateElement)
    );
    assert_eq!(
        refused_with_url(Operation::GetAccount, b"", &[("AccountNumber", "acc 1")]),
        at("/AccountNumber", Rule::Pattern)
    );
    assert_eq!(
        refused_with_url(Operation::GetAccount, b"", &[("Account", "ACC-0000001001")]),
        at("/Account", Rule::UnknownElement)
    );
    assert_eq!(
        refused_with_url(Operation::CreateAccount, b"{}", &[("Contact", "x")]),
        at("/Contact", Rule::Type)
    );
    // An integer member parses from the URL's text, through the same constructor.
    assert_eq!(
        settings_with_url("{}", &[("MaxChannels", "4")]),
        Ok(r#"{"MaxChannels":4}"#.to_string())
    );
    assert_eq!(
        settings_with_url("{}", &[("MaxChannels", "0")]),
        Err(at("/MaxChannels", Rule::MinInclusive))
    );
    assert_eq!(
        settings_with_url("{}", &[("MaxChannels", "four")]),
        Err(at("/MaxChannels", Rule::Type))
    );
    assert_eq!(
        settings_with_url(r#"{"MaxChannels": 4}"#, &[("MaxChannels", "4")]),
        Err(at("/MaxChannels", Rule::DuplicateElement))
    );
}

#[test]
fn strings_are_escaped_per_rfc_8259() {
    let mut out = Vec::new();
    writer::push_string(&mut out, "a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}ü/<>&");
    assert_eq!(
        String::from_utf8(out).expect("UTF-8"),
        r#""a\"b\\c\n\r\t\b\f\u0001\u001fü/<>&""#
    );
    // A value with quotes, a backslash, a tab and a CR survives JSON → typed → JSON → typed.
    let body = golden(
        Operation::CreateAccount,
        r#""Notes": "Preferred"#,
        r#""Notes": "say \"hi\" \\ \t\r\n Preferred"#,
    );
    let request = accepted(Operation::CreateAccount, &body);
    let mut out = Vec::new();
    encode_partner_request(&request, &mut out).expect("encode");
    let again =
        decode_partner_request(Operation::CreateAccount, &out, &[], &limits()).expect("decode");
    assert_eq!(again, request);
}
