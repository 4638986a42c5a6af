//! Unit tests of `authenticate` (beside the module, in their own file).
use super::*;

/// Absent, empty (SOAP 1.1 `actor=""` as toolkits send it; SOAP 1.2 `role=""`, a relative
/// reference to this endpoint), `next` and SOAP 1.2 `ultimateReceiver` are for us; other
/// roles, and each version's URIs in the other version, are not.
#[test]
fn header_blocks_addressed_to_us() {
    let block = |role: Option<&str>| HeaderBlock {
        element: BodyElement {
            text: "<p:PartnerAuth/>",
            inherited: Vec::new(),
            namespace: Vec::new(),
            local_name: b"PartnerAuth",
        },
        must_understand: false,
        role: role.map(str::to_string),
    };
    let next11 = "http://schemas.xmlsoap.org/soap/actor/next";
    let next12 = "http://www.w3.org/2003/05/soap-envelope/role/next";
    let ultimate = "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver";
    let none = "http://www.w3.org/2003/05/soap-envelope/role/none";
    let other = "http://example.com/some-other-node";
    for (role, soap11, soap12) in [
        (None, true, true),
        (Some(""), true, true),
        (Some(" \t"), true, true),
        (Some(next11), true, false),
        (
            Some(" http://schemas.xmlsoap.org/soap/actor/next "),
            true,
            false,
        ),
        (Some(next12), false, true),
        (Some(ultimate), false, true),
        (Some(none), false, false),
        (Some(other), false, false),
        (Some("next"), false, false),
    ] {
        let b = block(role);
        assert_eq!(
            addressed_to_us(&b, SoapVersion::Soap11),
            soap11,
            "1.1 {role:?}"
        );
        assert_eq!(
            addressed_to_us(&b, SoapVersion::Soap12),
            soap12,
            "1.2 {role:?}"
        );
    }
}

#[test]
fn credentials_are_plain_text() {
    let block = |text: &'static str| BodyElement {
        text,
        inherited: Vec::new(),
        namespace: Vec::new(),
        local_name: b"PartnerAuth",
    };
    let clean =
        "<p:PartnerAuth><p:PartnerId>P-1</p:PartnerId><p:ApiKey>pgk_abc</p:ApiKey></p:PartnerAuth>";
    assert!(plain_text_only(&block(clean)).is_ok());
    for marked in [
        "<p:A><p:K>pgk_<!-- x -->abc</p:K></p:A>",
        "<p:A><p:K>pgk_<![CDATA[abc]]></p:K></p:A>",
        "<p:A><p:K>pgk_&#97;bc</p:K></p:A>",
        "<p:A><p:K>pgk_&amp;abc</p:K></p:A>",
        "<p:A><!----><p:K>pgk_abc</p:K></p:A>",
    ] {
        assert!(
            matches!(
                plain_text_only(&block(marked)),
                Err(AuthError::Malformed(_))
            ),
            "{marked}"
        );
    }
}

fn security(content: &str) -> BodyElement<'static> {
    let text: &'static str = Box::leak(
        format!("<wsse:Security xmlns:wsse=\"{WSSE_NS}\" xmlns:wsu=\"{WSU_NS}\">{content}</wsse:Security>")
            .into_boxed_str(),
    );
    BodyElement {
        text,
        inherited: Vec::new(),
        namespace: WSSE_NS.as_bytes().to_vec(),
        local_name: b"Security",
    }
}

fn token(fields: &str) -> String {
    format!("<wsse:UsernameToken>{fields}</wsse:UsernameToken>")
}

const NOW: i64 = 1_780_000_000; // 2026-05-28T20:26:40Z

#[test]
fn utc_timestamps_read_as_unix_seconds() {
    assert_eq!(utc_seconds("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(utc_seconds("2026-05-28T20:26:40Z"), Some(NOW));
    assert_eq!(utc_seconds("2026-05-28T20:26:40.999Z"), Some(NOW));
    assert_eq!(utc_seconds("2000-03-01T00:00:00Z"), Some(951_868_800));
    for bad in [
        "2026-05-28T20:26:40",
        "2026-05-28T20:26:40+02:00",
        "2026-02-30T00:00:00Z",
        "tomorrow",
        "",
        " 2026-05-28T20:26:40Z",
    ] {
        assert_eq!(utc_seconds(bad), None, "{bad}");
    }
}

/// Two Usernames or two Passwords: the credential has two readings (the old reader took the
/// last of each), so it is refused like PartnerAuth's duplicates.
#[test]
fn a_repeated_username_or_password_is_refused() {
    let one =
        token("<wsse:Username>PARTNER-0001</wsse:Username><wsse:Password>pgk_a</wsse:Password>");
    let p = username_token(&security(&one), NOW).expect("one of each");
    assert_eq!(
        (p.partner_id.as_str(), p.key.as_str()),
        ("PARTNER-0001", "pgk_a")
    );
    for fields in [
        "<wsse:Username>PARTNER-0009</wsse:Username><wsse:Username>PARTNER-0001</wsse:Username>\
         <wsse:Password>pgk_a</wsse:Password>",
        "<wsse:Username>PARTNER-0001</wsse:Username><wsse:Password>pgk_x</wsse:Password>\
         <wsse:Password>pgk_a</wsse:Password>",
        "<wsse:Username>PARTNER-0001</wsse:Username><wsse:Password>pgk_a</wsse:Password>\
         <wsse:Nonce>bm9uY2U=</wsse:Nonce><wsse:Nonce>bm9uY2U=</wsse:Nonce>",
    ] {
        match username_token(&security(&token(fields)), NOW).map(|p| p.partner_id) {
            Err(AuthError::Malformed(m)) => assert!(m.contains("more than one"), "{m}"),
            other => panic!("{fields}: {other:?}"),
        }
    }
}

/// The Timestamp's Expires is checked, with [`CLOCK_SKEW_SECS`] of tolerance; a Timestamp
/// that does not read as UTC times is refused.
#[test]
fn an_expired_timestamp_is_refused() {
    let creds =
        token("<wsse:Username>PARTNER-0001</wsse:Username><wsse:Password>pgk_a</wsse:Password>");
    let with = |ts: &str| security(&format!("<wsu:Timestamp>{ts}</wsu:Timestamp>{creds}"));
    let at = |secs: i64| crate::xs::DateTime::from_unix(secs).as_str().to_string();
    let expires = |secs: i64| {
        format!(
            "<wsu:Created>{}</wsu:Created><wsu:Expires>{}</wsu:Expires>",
            at(secs - 300),
            at(secs)
        )
    };
    assert!(
        username_token(&with(&expires(NOW + 60)), NOW).is_ok(),
        "valid"
    );
    assert!(
        username_token(&with(&expires(NOW - CLOCK_SKEW_SECS)), NOW).is_ok(),
        "expired within the clock skew"
    );
    assert_eq!(
        username_token(&with(&expires(NOW - CLOCK_SKEW_SECS - 1)), NOW).err(),
        Some(AuthError::Expired)
    );
    assert!(
        username_token(&with(""), NOW).is_ok(),
        "Expires is optional"
    );
    for bad in [
        "<wsu:Expires>next week</wsu:Expires>".to_string(),
        format!(
            "<wsu:Expires>{}</wsu:Expires>",
            at(NOW + 60).trim_end_matches('Z')
        ),
        "<wsu:Created>yesterday</wsu:Created>".to_string(),
        format!(
            "{}<wsu:Expires>{}</wsu:Expires>",
            expires(NOW + 60),
            at(NOW + 60)
        ),
        "<wsu:Other/>".to_string(),
    ] {
        assert!(
            matches!(
                username_token(&with(&bad), NOW),
                Err(AuthError::Malformed(_))
            ),
            "{bad}"
        );
    }
    let twice = security(&format!("<wsu:Timestamp/><wsu:Timestamp/>{creds}"));
    assert!(matches!(
        username_token(&twice, NOW),
        Err(AuthError::Malformed(_))
    ));
}
