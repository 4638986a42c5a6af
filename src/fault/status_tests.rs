//! The HTTP status of every fault in both SOAP versions and both modes of each
//! (`faults.soap11_status`, `faults.soap12_status`).

use super::tests::rejections;
use super::*;
use crate::forward::UpstreamFault;

const SEMANTIC: StatusModes = StatusModes {
    soap11: Soap11Status::Semantic,
    soap12: Soap12Status::Semantic,
};

fn code_of(body: &[u8]) -> FaultCode {
    let env = crate::envelope::scan(body).expect("the fault scans");
    crate::envelope::parse_fault(&env).expect("a fault").code
}

/// By default SOAP 1.1 faults are 500 (WS-I R1126) and SOAP 1.2 faults follow the HTTP
/// binding's table (SOAP 1.2 Part 2, 7.5.2.2): `env:Sender` 400, every other code 500. The
/// semantic modes give the status that names what happened; `Retry-After` goes out either way.
#[test]
fn every_fault_gets_the_status_of_its_version_and_mode() {
    let mut sender = 0;
    let mut other = 0;
    for rejection in rejections("q") {
        let semantic = render(&rejection, SoapVersion::Soap12, "gw-1", SEMANTIC);
        let by_default = render(
            &rejection,
            SoapVersion::Soap12,
            "gw-1",
            StatusModes::default(),
        );
        let what = format!("{} {}", rejection.stage(), semantic.outcome);
        let code = code_of(&by_default.body);
        if code == FaultCode::Sender {
            assert_eq!(by_default.status, StatusCode::BAD_REQUEST, "{what}");
            assert!(semantic.status.is_client_error(), "{what}");
            sender += 1;
        } else {
            assert_eq!(
                by_default.status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{what}"
            );
            other += 1;
        }
        assert_eq!(by_default.retry_after, semantic.retry_after, "{what}");
        let soap11 = render(
            &rejection,
            SoapVersion::Soap11,
            "gw-1",
            StatusModes::default(),
        );
        assert_eq!(soap11.status, StatusCode::INTERNAL_SERVER_ERROR, "{what}");
        let soap11 = render(&rejection, SoapVersion::Soap11, "gw-1", SEMANTIC);
        assert_eq!(soap11.status, semantic.status, "{what}");
        // Each version's setting leaves the other version alone.
        let only11 = StatusModes {
            soap11: Soap11Status::Semantic,
            soap12: Soap12Status::HttpBinding,
        };
        let f = render(&rejection, SoapVersion::Soap12, "gw-1", only11);
        assert_eq!(f.status, by_default.status, "{what}");
    }
    assert!(sender > 20 && other > 3, "{sender} sender, {other} other");
}

/// The three faults partners' toolkits must read as typed faults on the SOAP 1.2 port: a wrong
/// key, throttling and an upstream NotFound are 400 by default, 403/429/404 when semantic.
#[test]
fn access_denied_throttled_and_not_found_are_400_on_soap12_by_default() {
    let denied = Rejection::Auth(crate::authenticate::AuthError::WrongKey {
        claimed: "PARTNER-0001".into(),
    });
    let throttled = rejections("q")
        .into_iter()
        .find(|r| matches!(r, Rejection::Throttle(_)))
        .expect("a throttled rejection");
    for (r, semantic) in [(&denied, 403), (&throttled, 429)] {
        let f = render(r, SoapVersion::Soap12, "gw-1", StatusModes::default());
        assert_eq!(f.status, StatusCode::BAD_REQUEST, "{}", f.outcome);
        let f = render(r, SoapVersion::Soap12, "gw-1", SEMANTIC);
        assert_eq!(f.status.as_u16(), semantic, "{}", f.outcome);
    }
    let f = render(
        &throttled,
        SoapVersion::Soap12,
        "gw-1",
        StatusModes::default(),
    );
    assert!(f.retry_after.is_some());
    let not_found = UpstreamFault {
        code: FaultCode::Sender,
        reason: "Not Found".into(),
        detail: Some(crate::generated::partner::FaultDetail::NotFound(Box::new(
            cmn::NotFoundFault {
                entity: cmn::NotFoundEntity::Account,
                message: message("x"),
                request_id: cmn::GatewayRequestId::new("up-1".into()).expect("id"),
            },
        ))),
    };
    let f = render_upstream(
        &not_found,
        SoapVersion::Soap12,
        "gw-1",
        StatusModes::default(),
    );
    assert_eq!(f.status, StatusCode::BAD_REQUEST);
    let f = render_upstream(&not_found, SoapVersion::Soap12, "gw-1", SEMANTIC);
    assert_eq!(f.status, StatusCode::NOT_FOUND);
}
