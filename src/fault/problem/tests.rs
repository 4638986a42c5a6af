//! Tests of the REST face's problem documents: every refusal renders as valid JSON of a
//! documented type and status.

use super::*;
use crate::decode::{DecodeError, Rule};

fn text(r: &ProblemResponse) -> String {
    String::from_utf8(r.body.clone()).unwrap_or_default()
}

#[test]
fn every_rejection_is_a_json_problem_of_a_documented_type_and_status() {
    for q in ["", "a\"b\\c\u{0}\u{7f}</x>]]>", "€ 𝄞"] {
        for r in crate::fault::tests::rejections(q) {
            let p = problem(&r, "gw-1");
            let v: serde_json::Value = serde_json::from_slice(&p.body)
                .unwrap_or_else(|e| panic!("{r:?}: {e}: {}", text(&p)));
            let ty = v["type"].as_str().unwrap_or_default();
            let slug = ty
                .strip_prefix(TYPE_PREFIX)
                .unwrap_or_else(|| panic!("{ty}"));
            let known = PROBLEM_TYPES
                .iter()
                .find(|t| t.slug == slug)
                .unwrap_or_else(|| panic!("{slug} is not documented"));
            assert_eq!(v["title"], known.title);
            assert_eq!(v["status"], p.status.as_u16());
            assert!(
                known.statuses.contains(&p.status.as_u16()),
                "{r:?} {}",
                p.status
            );
            assert_eq!(v["requestId"], "gw-1");
        }
    }
}

#[test]
fn a_decode_error_keeps_its_rule_and_path() {
    let r = Rejection::Decode(DecodeError {
        path: "/Customer/FirstName".into(),
        rule: Rule::MaxLength,
        detail: "longer than 64 characters".into(),
    });
    let p = problem(&r, "gw-1");
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert_eq!(p.outcome, "invalid-request");
    assert!(text(&p).starts_with(
        "{\"type\":\"urn:partnergate:problem:invalid-request\",\"title\":\"Invalid request\",\"status\":400,\
         \"detail\":\"Invalid Request: /Customer/FirstName: longer than 64 characters\",\"requestId\":\"gw-1\",\
         \"rule\":\"maxLength\",\"path\":\"/Customer/FirstName\""
    ), "{}", text(&p));
}

#[test]
fn authentication_is_401_with_a_challenge_and_a_suspension_403() {
    let p = problem(&Rejection::Auth(AuthError::Missing), "gw-1");
    assert_eq!((p.status, p.challenge), (StatusCode::UNAUTHORIZED, true));
    assert!(
        text(&p).contains("\"reason\":\"authentication-failed\""),
        "{}",
        text(&p)
    );
    let p = problem(
        &Rejection::Auth(AuthError::Suspended {
            claimed: "P-1".into(),
            status: crate::store::PartnerStatus::Suspended,
        }),
        "gw-1",
    );
    assert_eq!((p.status, p.challenge), (StatusCode::FORBIDDEN, false));
    assert!(
        text(&p).contains("\"reason\":\"partner-suspended\""),
        "{}",
        text(&p)
    );
}

#[test]
fn routes_and_media_types() {
    let p = problem(
        &Rejection::Route(RouteError::MethodNotAllowed {
            allow: "GET, PATCH",
        }),
        "gw-1",
    );
    assert_eq!(
        (p.status, p.allow),
        (StatusCode::METHOD_NOT_ALLOWED, Some("GET, PATCH"))
    );
    let p = problem(&Rejection::Route(RouteError::NotFound), "gw-1");
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(text(&p).contains("urn:partnergate:problem:no-route"));
    let p = problem(
        &Rejection::Route(RouteError::UnsupportedMediaType("text/xml".into())),
        "gw-1",
    );
    assert_eq!(p.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(text(&p).contains("urn:partnergate:problem:unsupported-media-type"));
}
