//! Callbacks in tests: the TSP's partner API layer calling a partner's BSS through the relay.

use std::net::SocketAddr;

use partnergate::decode::{self, DecodeLimits};
use partnergate::envelope;

use super::{exchange, fixture, Partner, RawResponse};

/// The relay's path.
pub const CALLBACK_PATH: &str = "/soap/callback/v1";

/// `tests/data/callback/<Op>/request.xml` with `p`'s id and callback key.
pub fn callback_fixture(op: partnergate::generated::callback::Operation, p: &Partner) -> Vec<u8> {
    let text = String::from_utf8(fixture(&format!("callback/{}/request.xml", op.name())))
        .expect("UTF-8 fixture");
    text.replace("pgc_test_fedcba9876543210fedcba9876543210", &p.callback_key)
        .replace("PARTNER-0042", &p.id)
        .into_bytes()
}

/// One callback `POST`ed to the relay at `addr`, on a connection of its own.
pub async fn post_callback(
    addr: SocketAddr,
    op: partnergate::generated::callback::Operation,
    body: &[u8],
) -> RawResponse {
    let mut req = format!(
        "POST {CALLBACK_PATH} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml; charset=utf-8\r\nSOAPAction: \"{}\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        op.soap_action(),
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    exchange(addr, &req).await
}

/// The `CallbackFault` detail of a relay's fault answer.
pub fn callback_fault(resp: &RawResponse) -> partnergate::generated::types::cb::CallbackFault {
    use partnergate::generated::callback::FaultDetail as CallbackDetail;
    let env = envelope::scan(&resp.body).unwrap_or_else(|e| panic!("{e}: {}", resp.text()));
    let fault = envelope::parse_fault(&env).expect("a SOAP fault");
    let entry = fault.detail.expect("a detail");
    match decode::callback_fault(&entry, DecodeLimits::default()).expect("CallbackFault") {
        CallbackDetail::Callback(f) => *f,
    }
}
