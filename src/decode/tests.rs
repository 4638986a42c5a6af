//! One test per strictness rule: a message that breaks it, and the path and rule the error names.
//! Also one test per gap the spike measured in xsd-parser's generated code.

use std::borrow::Cow;

use quick_xml::events::BytesText;

use super::strict::{declares, push_raw_value};
use super::text::{all_xml_chars, is_xml_char, text_blank, text_piece};
use super::*;
use crate::envelope;
use crate::generated::partner::{Operation, Request};
use crate::generated::types::{cmn, ftr};

const ENV_OPEN: &str = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:cmn="urn:partnergate:partner:common:v1" xmlns:acc="urn:partnergate:partner:accounts:v1" xmlns:svc="urn:partnergate:partner:services:v1" xmlns:ftr="urn:partnergate:partner:features:v1"><soapenv:Body>"#;
const ENV_CLOSE: &str = "</soapenv:Body></soapenv:Envelope>";

/// A valid CreateAccount body; tests replace one piece of it.
const CREATE: &str = "<acc:CreateAccount>\
<acc:CustomerReference>CRM-1</acc:CustomerReference>\
<acc:AccountType>BUSINESS</acc:AccountType>\
<acc:Contact><cmn:FirstName>Anna</cmn:FirstName><cmn:LastName>Müller</cmn:LastName><cmn:Phone>+493012345678</cmn:Phone></acc:Contact>\
<acc:Address><cmn:Street>Friedrichstraße 1</cmn:Street><cmn:PostalCode>10117</cmn:PostalCode><cmn:City>Berlin</cmn:City><cmn:Country>DE</cmn:Country></acc:Address>\
</acc:CreateAccount>";

fn decode_body(body: &str) -> Result<Request, DecodeError> {
    decode_body_limits(body, DecodeLimits::default())
}

fn decode_body_limits(body: &str, limits: DecodeLimits) -> Result<Request, DecodeError> {
    let doc = format!("{ENV_OPEN}{body}{ENV_CLOSE}");
    let env = envelope::scan(doc.as_bytes()).expect("the test envelope scans");
    partner_request(&env.body, limits)
}

fn create_with(from: &str, to: &str) -> String {
    assert!(CREATE.contains(from), "test bug: {from} not in CREATE");
    CREATE.replacen(from, to, 1)
}

#[track_caller]
fn refused(body: &str, rule: Rule, path: &str) -> DecodeError {
    let err = decode_body(body).expect_err("must be refused");
    assert_eq!(err.rule, rule, "{err}");
    assert_eq!(err.path, path, "{err}");
    assert!(err.to_string().contains(rule.as_str()), "{err}");
    err
}

#[test]
fn the_valid_body_decodes() {
    let request = decode_body(CREATE).expect("valid");
    assert_eq!(request.operation(), Operation::CreateAccount);
    let Request::CreateAccount(create) = request else {
        panic!("operation")
    };
    assert_eq!(create.contact.last_name.as_str(), "Müller");
}

#[test]
fn unknown_element() {
    let body = create_with(
        "<acc:AccountType>",
        "<acc:Discount>100</acc:Discount><acc:AccountType>",
    );
    refused(&body, Rule::UnknownElement, "/CreateAccount/Discount");
}

#[test]
fn element_out_of_order() {
    let body = create_with(
        "<acc:CustomerReference>CRM-1</acc:CustomerReference><acc:AccountType>BUSINESS</acc:AccountType>",
        "<acc:AccountType>BUSINESS</acc:AccountType><acc:CustomerReference>CRM-1</acc:CustomerReference>",
    );
    // The first element seen is AccountType while the required CustomerReference precedes it.
    refused(
        &body,
        Rule::MissingElement,
        "/CreateAccount/CustomerReference",
    );
}

#[test]
fn element_out_of_order_later_in_the_sequence() {
    // Address before Contact: Contact is required, so Address is out of order.
    let contact = "<acc:Contact><cmn:FirstName>Anna</cmn:FirstName><cmn:LastName>Müller</cmn:LastName><cmn:Phone>+493012345678</cmn:Phone></acc:Contact>";
    let address = "<acc:Address><cmn:Street>Friedrichstraße 1</cmn:Street><cmn:PostalCode>10117</cmn:PostalCode><cmn:City>Berlin</cmn:City><cmn:Country>DE</cmn:Country></acc:Address>";
    let body = CREATE
        .replacen(contact, "", 1)
        .replacen(address, &format!("{address}{contact}"), 1);
    // Address comes where Contact is required.
    refused(&body, Rule::MissingElement, "/CreateAccount/Contact");
}

#[test]
fn element_out_of_order_after_a_later_sibling() {
    // Phone (optional) given before Email (optional, earlier in the sequence).
    let body = create_with(
        "<cmn:Phone>+493012345678</cmn:Phone>",
        "<cmn:Phone>+493012345678</cmn:Phone><cmn:Email>a@b.example</cmn:Email>",
    );
    let err = refused(
        &body,
        Rule::ElementOutOfOrder,
        "/CreateAccount/Contact/Email",
    );
    assert!(err.detail.contains("before Phone"), "{err}");
}

#[test]
fn element_not_allowed_in_this_parent() {
    // City is a contract element, but not a child of Contact.
    let body = create_with(
        "</acc:Contact>",
        "<cmn:City>Berlin</cmn:City></acc:Contact>",
    );
    refused(&body, Rule::NotAllowedHere, "/CreateAccount/Contact/City");
}

#[test]
fn missing_required_element() {
    let body = create_with("<acc:AccountType>BUSINESS</acc:AccountType>", "");
    refused(&body, Rule::MissingElement, "/CreateAccount/AccountType");
}

#[test]
fn missing_required_leaf_names_it() {
    let body = create_with("<cmn:City>Berlin</cmn:City>", "");
    refused(&body, Rule::MissingElement, "/CreateAccount/Address/City");
    // A missing last element is found when its parent ends.
    let body = create_with("<cmn:Country>DE</cmn:Country>", "");
    refused(
        &body,
        Rule::MissingElement,
        "/CreateAccount/Address/Country",
    );
}

#[test]
fn duplicated_single_element() {
    let body = create_with(
        "<acc:AccountType>BUSINESS</acc:AccountType>",
        "<acc:AccountType>BUSINESS</acc:AccountType><acc:AccountType>RESIDENTIAL</acc:AccountType>",
    );
    refused(&body, Rule::DuplicateElement, "/CreateAccount/AccountType");
}

#[test]
fn wrong_namespace_of_the_contract() {
    let body = create_with(
        "<acc:AccountType>BUSINESS</acc:AccountType>",
        "<svc:AccountType>BUSINESS</svc:AccountType>",
    );
    refused(&body, Rule::WrongNamespace, "/CreateAccount/AccountType");
}

#[test]
fn foreign_namespace() {
    let body = create_with(
        "<acc:AccountType>BUSINESS</acc:AccountType>",
        r#"<x:AccountType xmlns:x="urn:evil">BUSINESS</x:AccountType>"#,
    );
    refused(&body, Rule::WrongNamespace, "/CreateAccount/AccountType");
}

#[test]
fn unqualified_child() {
    // The spike measured that the generated code accepts elements without a namespace.
    let body = create_with(
        "<acc:AccountType>BUSINESS</acc:AccountType>",
        r#"<AccountType xmlns="">BUSINESS</AccountType>"#,
    );
    refused(
        &body,
        Rule::UnqualifiedElement,
        "/CreateAccount/AccountType",
    );
}

#[test]
fn unqualified_document() {
    let body = CREATE.replace("acc:", "").replace("cmn:", "");
    let doc = format!(
        "{}{body}{ENV_CLOSE}",
        ENV_OPEN.replace(" xmlns:acc=", " xmlns:x=")
    );
    // A body element without a namespace is refused by the envelope scan already.
    let err = envelope::scan(doc.as_bytes()).expect_err("refused");
    assert_eq!(
        err,
        envelope::EnvelopeError::Unqualified("CreateAccount".into())
    );
}

#[test]
fn undeclared_prefix() {
    let body = create_with(
        "<acc:AccountType>BUSINESS</acc:AccountType>",
        "<zz:AccountType>BUSINESS</zz:AccountType>",
    );
    let doc = format!("{ENV_OPEN}{body}{ENV_CLOSE}");
    // quick-xml's scan does not resolve prefixes of skipped content; the strict reader does.
    match envelope::scan(doc.as_bytes()) {
        Ok(env) => {
            let err = partner_request(&env.body, DecodeLimits::default()).expect_err("refused");
            assert_eq!(err.rule, Rule::UndeclaredPrefix, "{err}");
            assert_eq!(err.path, "/CreateAccount/AccountType");
        }
        Err(e) => panic!("scan should leave this to the decoder: {e}"),
    }
}

#[test]
fn enumeration_value_not_in_the_list() {
    let body = create_with(">BUSINESS<", ">PREMIUM<");
    let err = refused(&body, Rule::Enumeration, "/CreateAccount/AccountType");
    assert!(err.detail.contains("PREMIUM"), "{err}");
}

#[test]
fn enumeration_is_case_sensitive() {
    refused(
        &create_with(">BUSINESS<", ">business<"),
        Rule::Enumeration,
        "/CreateAccount/AccountType",
    );
}

#[test]
fn pattern_violated() {
    let body = create_with("+493012345678", "+49 30 12345678");
    refused(&body, Rule::Pattern, "/CreateAccount/Contact/Phone");
    refused(
        &create_with(">DE<", ">XX<"),
        Rule::Enumeration,
        "/CreateAccount/Address/Country",
    );
}

#[test]
fn max_length_counts_characters_not_bytes() {
    // PersonName is 1..100 characters: 100 two-byte characters are legal (200 bytes).
    let long = "é".repeat(100);
    let body = create_with(">Anna<", &format!(">{long}<"));
    decode_body(&body).expect("100 characters are within maxLength 100");
    let too_long = "é".repeat(101);
    let body = create_with(">Anna<", &format!(">{too_long}<"));
    let err = refused(&body, Rule::MaxLength, "/CreateAccount/Contact/FirstName");
    assert!(
        err.detail.len() < 300,
        "the offending value is quoted only in part: {err}"
    );
}

#[test]
fn min_length_violated() {
    // ApiKey: 16..128 characters of [A-Za-z0-9_-].
    let header = |key: &str| {
        format!(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:cmn="urn:partnergate:partner:common:v1"><soapenv:Header><cmn:PartnerAuth><cmn:PartnerId>PARTNER-0042</cmn:PartnerId><cmn:ApiKey>{key}</cmn:ApiKey></cmn:PartnerAuth></soapenv:Header><soapenv:Body><cmn:X/></soapenv:Body></soapenv:Envelope>"#
        )
    };
    let decode = |key: &str| {
        let doc = header(key);
        let env = envelope::scan(doc.as_bytes()).expect("scan");
        partner_auth(&env.headers[0].element, DecodeLimits::default())
    };
    assert!(decode("pgk_0123456789abc").is_ok());
    let err = decode("pgk_0123456789a").expect_err("15 characters");
    assert_eq!(err.rule, Rule::MinLength, "{err}");
    assert_eq!(err.path, "/PartnerAuth/ApiKey");
    // An empty name breaks the pattern (which forbids empty and padded values) first.
    refused(
        &create_with(">Anna<", "><"),
        Rule::Pattern,
        "/CreateAccount/Contact/FirstName",
    );
}

#[test]
fn list_bounds_violated() {
    // DoNotDisturb AllowList: at most 20 numbers.
    let numbers: String = (0..21)
        .map(|i| format!("<ftr:AllowList>+4930123456{i:02}</ftr:AllowList>"))
        .collect();
    let body = format!(
        "<ftr:EnableFeature><ftr:ServiceId>SVC-0000008001</ftr:ServiceId><ftr:Feature>DO_NOT_DISTURB</ftr:Feature>\
<ftr:Settings><ftr:DoNotDisturb>{numbers}</ftr:DoNotDisturb></ftr:Settings></ftr:EnableFeature>"
    );
    let err = decode_body(&body).expect_err("refused");
    assert_eq!(err.rule, Rule::MaxOccurs, "{err}");
    assert_eq!(err.path, "/EnableFeature/Settings/DoNotDisturb/AllowList");
    let twenty: String = (0..20)
        .map(|i| format!("<ftr:AllowList>+4930123456{i:02}</ftr:AllowList>"))
        .collect();
    let ok = body.replace(&numbers, &twenty);
    let Request::EnableFeature(req) = decode_body(&ok).expect("20 is the maximum") else {
        panic!()
    };
    let Some(ftr::FeatureSettings::DoNotDisturb(dnd)) = req.settings else {
        panic!("settings")
    };
    assert_eq!(dnd.allow_list.len(), 20);
}

#[test]
fn text_where_none_belongs() {
    let body = create_with("<acc:Contact>", "<acc:Contact>hello");
    refused(&body, Rule::TextNotAllowed, "/CreateAccount/Contact");
    let body = create_with("</acc:Contact>", "trailing</acc:Contact>");
    refused(&body, Rule::TextNotAllowed, "/CreateAccount/Contact");
}

#[test]
fn wrong_type() {
    let add = |channels: &str| {
        format!(
            "<svc:AddService><svc:AccountNumber>ACC-0000001001</svc:AccountNumber><svc:ServiceType>VOIP</svc:ServiceType>\
<svc:Settings><svc:MaxChannels>{channels}</svc:MaxChannels></svc:Settings></svc:AddService>"
        )
    };
    decode_body(&add("30")).expect("valid");
    refused(&add("abc"), Rule::Type, "/AddService/Settings/MaxChannels");
    refused(
        &add("99999999999999999999"),
        Rule::Type,
        "/AddService/Settings/MaxChannels",
    );
    refused(
        &add("101"),
        Rule::MaxInclusive,
        "/AddService/Settings/MaxChannels",
    );
    refused(
        &add("0"),
        Rule::MinInclusive,
        "/AddService/Settings/MaxChannels",
    );
}

#[test]
fn attributes_are_refused_everywhere() {
    // Unknown attribute on a leaf: the spike measured the generated code accepting it.
    let body = create_with("<acc:AccountType>", r#"<acc:AccountType foo="x">"#);
    refused(
        &body,
        Rule::AttributeNotAllowed,
        "/CreateAccount/AccountType",
    );
    // xsi:type and xsi:nil: accepted and ignored by the generated code.
    let xsi = r#"xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance""#;
    let body = create_with(
        "<acc:AccountType>",
        &format!(r#"<acc:AccountType {xsi} xsi:type="acc:Other">"#),
    );
    refused(
        &body,
        Rule::AttributeNotAllowed,
        "/CreateAccount/AccountType",
    );
    let body = create_with(
        "<cmn:FirstName>Anna</cmn:FirstName>",
        &format!(r#"<cmn:FirstName {xsi} xsi:nil="true"/>"#),
    );
    refused(
        &body,
        Rule::AttributeNotAllowed,
        "/CreateAccount/Contact/FirstName",
    );
    let body = create_with("<acc:Contact>", r#"<acc:Contact id="1">"#);
    refused(&body, Rule::AttributeNotAllowed, "/CreateAccount/Contact");
}

#[test]
fn padded_values_are_refused_not_trimmed() {
    // The generated code trims text: " Anna " would silently become "Anna".
    refused(
        &create_with(">Anna<", "> Anna <"),
        Rule::Whitespace,
        "/CreateAccount/Contact/FirstName",
    );
    refused(
        &create_with(">BUSINESS<", ">BUSINESS\n<"),
        Rule::Whitespace,
        "/CreateAccount/AccountType",
    );
}

#[test]
fn internal_whitespace_and_formatting_are_kept() {
    let body =
        create_with(">Anna<", ">Anna  Maria<").replace("<acc:Contact>", "<acc:Contact>\n   ");
    let Request::CreateAccount(c) = decode_body(&body).expect("valid") else {
        panic!()
    };
    assert_eq!(c.contact.first_name.as_str(), "Anna  Maria");
}

#[test]
fn references_cdata_and_comments_join_into_one_value() {
    let body = create_with(
        ">Müller<",
        ">M&#252;<![CDATA[ll]]><!-- c -->er &amp; S&#xF6;hne<",
    );
    let Request::CreateAccount(c) = decode_body(&body).expect("valid") else {
        panic!()
    };
    assert_eq!(c.contact.last_name.as_str(), "Müller & Söhne");
}

#[test]
fn unknown_entity_is_refused() {
    let body = create_with(">Anna<", ">&xxe;<");
    refused(&body, Rule::Entity, "/CreateAccount/Contact/FirstName");
}

#[test]
fn characters_xml_forbids_are_refused() {
    refused(
        &create_with(">Anna<", ">An&#1;na<"),
        Rule::InvalidCharacter,
        "/CreateAccount/Contact/FirstName",
    );
    refused(
        &create_with(">Anna<", ">An\u{1}na<"),
        Rule::InvalidCharacter,
        "/CreateAccount/Contact/FirstName",
    );
}

#[test]
fn processing_instruction_is_refused() {
    let body = create_with("<acc:Contact>", "<?evil x?><acc:Contact>");
    let err = decode_body(&body).expect_err("refused");
    assert_eq!(err.rule, Rule::ProcessingInstruction, "{err}");
}

#[test]
fn depth_is_bounded() {
    let err = decode_body_limits(
        CREATE,
        DecodeLimits {
            max_depth: 2,
            ..DecodeLimits::default()
        },
    )
    .expect_err("refused");
    assert_eq!(err.rule, Rule::Depth, "{err}");
    assert_eq!(err.path, "/CreateAccount/Contact/FirstName");
}

#[test]
fn deep_nesting_of_unknown_elements_stops_at_the_first() {
    let deep = "<acc:X>".repeat(10_000) + &"</acc:X>".repeat(10_000);
    let body = create_with("<acc:AccountType>", &format!("{deep}<acc:AccountType>"));
    let err = decode_body(&body).expect_err("refused");
    assert!(
        matches!(err.rule, Rule::UnknownElement | Rule::Depth),
        "{err}"
    );
}

#[test]
fn body_element_that_is_not_an_operation() {
    // The spike measured the generated code accepting any root name: the operation table
    // decides from the body element instead, and an unknown one is refused.
    let err = decode_body("<acc:DeleteEverything/>").expect_err("refused");
    assert_eq!(err.rule, Rule::UnknownElement);
    assert_eq!(err.path, "/DeleteEverything");
    // A response element in a request position is not a request.
    let err = decode_body("<acc:GetAccountResponse/>").expect_err("refused");
    assert_eq!(err.rule, Rule::UnknownElement);
}

#[test]
fn invalid_date_time_is_refused() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/GetAccount/response.xml"
    ))
    .expect("fixture");
    let start = doc.find("<acc:CreatedAt>").expect("CreatedAt") + "<acc:CreatedAt>".len();
    let end = doc[start..].find('<').expect("end") + start;
    let bad = format!("{}2026-02-30T10:00:00Z{}", &doc[..start], &doc[end..]);
    let env = envelope::scan(bad.as_bytes()).expect("scan");
    let err = partner_response(Operation::GetAccount, &env.body, DecodeLimits::default())
        .expect_err("refused");
    assert_eq!(err.rule, Rule::Type, "{err}");
    assert_eq!(err.path, "/GetAccountResponse/Account/CreatedAt");
}

#[test]
fn constructors_check_every_facet() {
    // The spike measured `MacAddress::new("garbage")` succeeding: build.rs adds the pattern
    // check, and the tuple field is private, so an invalid value cannot be built at all.
    assert!(cmn::MacAddress::new("garbage".into()).is_err());
    assert!(cmn::MacAddress::new("00:1A:2B:3C:4D:5E".into()).is_ok());
    assert!(cmn::PersonName::new("é".repeat(100)).is_ok());
    assert!(cmn::PersonName::new("é".repeat(101)).is_err());
    assert!(cmn::PersonName::new(" padded".into()).is_err());
    assert!(cmn::E164Number::new("+49 30".into()).is_err());
}

#[test]
fn wrong_operation_response_is_refused() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/GetAccount/response.xml"
    ))
    .expect("fixture");
    let env = envelope::scan(doc.as_bytes()).expect("scan");
    let err = partner_response(Operation::GetDevice, &env.body, DecodeLimits::default())
        .expect_err("refused");
    assert_eq!(err.rule, Rule::UnknownElement);
}

#[test]
fn header_blocks_may_carry_soap_header_attributes_on_their_root_only() {
    let doc = |auth: &str| {
        format!(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:cmn="urn:partnergate:partner:common:v1"><soapenv:Header>{auth}</soapenv:Header><soapenv:Body><cmn:X/></soapenv:Body></soapenv:Envelope>"#
        )
    };
    let decode = |auth: &str, limits: DecodeLimits| {
        let text = doc(auth);
        let env = envelope::scan(text.as_bytes()).expect("scan");
        partner_auth(&env.headers[0].element, limits)
    };
    let ok = r#"<cmn:PartnerAuth soapenv:mustUnderstand="1" soapenv:actor="http://schemas.xmlsoap.org/soap/actor/next"><cmn:PartnerId>PARTNER-0042</cmn:PartnerId><cmn:ApiKey>pgk_0123456789abcdef</cmn:ApiKey></cmn:PartnerAuth>"#;
    assert!(decode(ok, DecodeLimits::header_block()).is_ok());
    // Not in a body element, and not below the header block's root.
    assert_eq!(
        decode(ok, DecodeLimits::default()).map_err(|e| e.rule),
        Err(Rule::AttributeNotAllowed)
    );
    let nested = r#"<cmn:PartnerAuth><cmn:PartnerId soapenv:mustUnderstand="1">PARTNER-0042</cmn:PartnerId><cmn:ApiKey>pgk_0123456789abcdef</cmn:ApiKey></cmn:PartnerAuth>"#;
    assert_eq!(
        decode(nested, DecodeLimits::header_block()).map_err(|e| e.rule),
        Err(Rule::AttributeNotAllowed)
    );
    let other = r#"<cmn:PartnerAuth foo="1"><cmn:PartnerId>PARTNER-0042</cmn:PartnerId><cmn:ApiKey>pgk_0123456789abcdef</cmn:ApiKey></cmn:PartnerAuth>"#;
    assert_eq!(
        decode(other, DecodeLimits::header_block()).map_err(|e| e.rule),
        Err(Rule::AttributeNotAllowed)
    );
}

/// The byte-wise character check agrees with the character-wise definition of XML 1.0 `Char`.
#[test]
fn byte_wise_character_check_matches_the_definition() {
    let samples = [
        "",
        "a",
        "plain ASCII text",
        "tab\tnewline\ncr\r",
        "\u{0}",
        "x\u{1}y",
        "\u{1F}",
        "\u{7F}",
        "\u{85}",
        "Müller & Söhne",
        "\u{D7FF}",
        "\u{E000}",
        "\u{FFFD}",
        "\u{FFFE}",
        "\u{FFFF}",
        "ab\u{FFFE}",
        "\u{FFFF}cd",
        "\u{EFFF}\u{FFEF}\u{FEFF}",
        "\u{F8FF}\u{FFBF}",
        "\u{10000}",
        "\u{10FFFF}",
        "日本語のテキスト",
        "emoji 🎉 ok",
        "\u{FFFD}\u{FFFE}\u{FFFD}",
    ];
    for s in samples {
        assert_eq!(all_xml_chars(s), s.chars().all(is_xml_char), "{s:?}");
        let long = format!("{}{s}{}", "x".repeat(70), "y".repeat(130));
        assert_eq!(
            all_xml_chars(&long),
            long.chars().all(is_xml_char),
            "{long:?}"
        );
    }
    proptest::proptest!(|(s in ".*", t in proptest::collection::vec(proptest::char::any(), 0..200))| {
        proptest::prop_assert_eq!(all_xml_chars(&s), s.chars().all(is_xml_char));
        let t: String = t.into_iter().collect();
        proptest::prop_assert_eq!(all_xml_chars(&t), t.chars().all(is_xml_char));
    });
    assert!(text_blank(" \t\r\n"));
    assert!(!text_blank(" \u{A0} "));
    assert!(!text_blank(" \u{85} "));
}

/// Found by the `roundtrip` fuzz target (`fuzz/regressions/roundtrip/cdata-end-in-value`): a value
/// holding `]]>` (raw, or as `]]&gt;`) decoded, but the serializer refuses to write it, so the
/// request could not be forwarded (a 500 after authentication) and a response not relayed.
#[test]
fn a_value_holding_the_cdata_end_is_refused() {
    for city in [
        "Be]]&gt;rlin",
        "Be]]>rlin",
        "Be<![CDATA[]]]]><![CDATA[>]]>rlin",
    ] {
        let e = decode_body(&create_with("Berlin", city)).expect_err(city);
        assert_eq!(
            (e.path.as_str(), e.rule),
            ("/CreateAccount/Address/City", Rule::InvalidCharacter),
            "{city}: {e}"
        );
    }
    assert!(decode_body(&create_with("Berlin", "Be]]rlin &gt;")).is_ok());
}

#[test]
fn patterns_use_xml_schema_whitespace() {
    // XML Schema's `\s` is space, tab, CR and LF only: a name starting with a no-break space
    // matches `\S(.*\S)?` (xmllint agrees); the regex crate's Unicode `\s` refused it.
    let body = create_with("<cmn:LastName>Müller", "<cmn:LastName>\u{A0}Müller");
    let Request::CreateAccount(req) = decode_body(&body).expect("schema-valid") else {
        panic!("wrong operation");
    };
    // (Debug escapes the no-break space)
    assert!(format!("{req:?}").contains(r"\u{a0}Müller"), "{req:?}");
    // `.` matches neither CR nor LF: a carriage return inside a one-line name breaks it.
    let body = create_with("<cmn:LastName>Müller", "<cmn:LastName>Mü&#13;ller");
    refused(&body, Rule::Pattern, "/CreateAccount/Contact/LastName");
    // Through the constructor too.
    assert!(cmn::PersonName::new("\u{A0}Müller".into()).is_ok());
    assert!(cmn::PersonName::new("Mü\rller".into()).is_err());
    assert!(cmn::PersonName::new("Müller ".into()).is_err());
}

#[test]
fn cdata_end_is_found_like_a_substring_search() {
    for s in [
        "", ">", "]>", "]]>", "a]]>b", "]] >", "]]]>", "> ]]", "a>b>c]]", "x]]>", "]]>x", "é]]>",
    ] {
        assert_eq!(contains_cdata_end(s), s.contains("]]>"), "{s:?}");
        // The same beyond 64 bytes (the SIMD search), at both ends.
        let long = format!("{}{s}", "y".repeat(70));
        assert_eq!(contains_cdata_end(&long), long.contains("]]>"), "{long:?}");
        let long = format!("{s}{}", "y".repeat(70));
        assert_eq!(contains_cdata_end(&long), long.contains("]]>"), "{long:?}");
    }
}

#[test]
fn redeclared_bindings_keep_raw_values_and_the_elements_own_win() {
    assert!(declares(b"xmlns", b""));
    assert!(declares(b"xmlns:cmn", b"cmn"));
    assert!(!declares(b"xmlns:cmn", b""));
    assert!(!declares(b"xmlns", b"cmn"));
    assert!(!declares(b"xmlns:cmnx", b"cmn"));
    assert!(!declares(b"xmlnsx", b""));
    let mut tag = Vec::new();
    push_raw_value(&mut tag, b"urn:a&amp;b");
    assert_eq!(tag, b"=\"urn:a&amp;b\"");
    tag.clear();
    push_raw_value(&mut tag, b"urn:\"q\"");
    assert_eq!(tag, b"='urn:\"q\"'");
    // The body element declares the default namespace itself and inherits cmn from the
    // envelope: both reach the generated code.
    let body = create_with(
        "<acc:CreateAccount>",
        "<CreateAccount xmlns=\"urn:partnergate:partner:accounts:v1\">",
    )
    .replace("</acc:CreateAccount>", "</CreateAccount>")
    .replace("<acc:", "<")
    .replace("</acc:", "</");
    decode_body(&body).expect("default namespace on the body element");
}

#[test]
fn text_pieces_are_borrowed_unless_a_cr_needs_normalizing() {
    let t = BytesText::from_escaped("a b");
    assert!(matches!(text_piece(t), Some(Cow::Borrowed("a b"))));
    let t = BytesText::from_escaped("a\r\nb\rc");
    assert_eq!(text_piece(t).as_deref(), Some("a\nb\nc"));
}
