//! Shared by the benchmarks: fixtures, the bulk message (267 KB), an onboarded partner, and a
//! `Gateway` assembled by hand around an in-memory upstream (as `tests/gateway.rs`
//! `no_upstream_configured_is_503` does) so that `pipeline::handle` runs without sockets.

#![allow(dead_code, reason = "each benchmark binary uses a part of this module")]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use partnergate::encode;
use partnergate::forward::{self, BoxFuture, CallContext, ForwardError, Upstream, UpstreamReply};
use partnergate::generated::partner::{self, Operation};
use partnergate::pipeline::{self, Gateway, Incoming, Settings};
use partnergate::store::{NewPartner, Rate, Snapshot, SnapshotCell, Store};

/// The partner id and key in the request fixtures (replaced by real ones).
pub const FIXTURE_PARTNER: &str = "PARTNER-0042";
/// The key in the request fixtures.
pub const FIXTURE_KEY: &str = "pgk_test_0123456789abcdef0123456789abcdef";

/// `tests/data/<rel>`.
pub fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(rel),
    )
    .expect("fixture")
}

/// A FindAccountsResponse with 100 accounts, each with 1,500 characters of notes (266,709 B as
/// generated, 240,895 B canonical): the largest message the contract allows in practice
/// (requests are a few KB at most).
pub fn bulk_response() -> Vec<u8> {
    let one = String::from_utf8(fixture("GetAccount/response.xml")).unwrap();
    let start = one.find("<acc:Account>").unwrap();
    let end = one.find("</acc:Account>").unwrap() + "</acc:Account>".len();
    let notes = "Installation on weekdays; ask for the site manager. ".repeat(29);
    let account = one[start..end].replace(
        "Preferred contact by e-mail.\nInstallation appointments on weekdays only.",
        notes.trim_end(),
    );
    let accounts: String = (0..100)
        .map(|i| account.replace("ACC-0000001001", &format!("ACC-{:010}", 1000 + i)))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
xmlns:cmn=\"urn:partnergate:partner:common:v1\" xmlns:acc=\"urn:partnergate:partner:accounts:v1\"><soapenv:Body>\
<acc:FindAccountsResponse>{accounts}</acc:FindAccountsResponse></soapenv:Body></soapenv:Envelope>"
    )
    .into_bytes()
}

/// A partner onboarded into a throwaway SQLite file (removed again), and the snapshot the
/// gateway would load: grants `*`, allowed from 127.0.0.0/8.
pub struct Onboarded {
    pub snapshot: Snapshot,
    pub partner_id: String,
    pub key: String,
}

pub fn onboard() -> Onboarded {
    let db = std::env::temp_dir().join(format!("partnergate-bench-{}.db", std::process::id()));
    remove_db(&db);
    let store = Store::open(&db.display().to_string()).expect("store");
    let permissions: Vec<&str> = Operation::ALL.iter().map(|o| o.permission()).collect();
    let created = store
        .create_partner(
            NewPartner {
                name: "Bench Partner".into(),
                country: Some("DE".into()),
                allow: vec!["127.0.0.0/8".parse().unwrap()],
                grants: vec!["*".into()],
                ..NewPartner::default()
            },
            &permissions,
        )
        .expect("create partner");
    let snapshot = store.load_snapshot().expect("snapshot");
    drop(store);
    remove_db(&db);
    Onboarded {
        snapshot,
        partner_id: created.partner_id,
        key: created.api_key.expose().to_string(),
    }
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// A request fixture with the onboarded partner's id and key.
pub fn request(op: Operation, who: &Onboarded) -> Vec<u8> {
    String::from_utf8(fixture(&format!("{}/request.xml", op.name())))
        .unwrap()
        .replace(FIXTURE_KEY, &who.key)
        .replace(FIXTURE_PARTNER, &who.partner_id)
        .into_bytes()
}

/// The HTTP headers a SOAP 1.1 client sends for `op`.
pub fn headers(op: Operation) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    h.insert(
        "soapaction",
        HeaderValue::from_str(&format!("\"{}\"", op.soap_action())).unwrap(),
    );
    h
}

/// The partner API layer in memory: does the CPU work `HttpUpstream` does around the HTTP
/// exchange — encodes the canonical upstream envelope (GatewayAssertion + body) and decodes the
/// canned answer as strictly as a real one — without sockets.
pub struct Canned {
    pub answer: Vec<u8>,
}

impl Upstream for Canned {
    fn call<'a>(
        &'a self,
        ctx: CallContext<'a>,
        request: &'a partner::Request,
    ) -> BoxFuture<'a, Result<UpstreamReply, ForwardError>> {
        Box::pin(async move {
            let sent = forward::encode_upstream_request(ctx, request)?;
            std::hint::black_box(&sent);
            forward::decode_upstream_reply(request.operation(), 200, &self.answer)
        })
    }
}

/// A gateway around `upstream` with the default limits and a rate that never throttles.
pub fn gateway(snapshot: Snapshot, upstream: Arc<dyn Upstream>) -> Gateway {
    let config = partnergate::config::Config::default();
    Gateway {
        settings: Settings {
            xml: config.limits.xml,
            trusted_proxies: Vec::new(),
            trusted_proxy_header: partnergate::allowlist::ProxyHeader::default(),
            fault_status: config.fault_status,
        },
        snapshot: Arc::new(SnapshotCell::new(snapshot)),
        throttle: partnergate::throttle::Throttle::new(
            Rate::new(u32::MAX, u32::MAX).expect("rate"),
        ),
        upstream: Some(upstream),
        stats: Arc::default(),
        callback: None,
        enrollment: None,
    }
}

/// One request as the server answers it once the body is read: `pipeline::handle` (every check,
/// strict decode, upstream encode, strict decode of the answer) and the canonical encode of the
/// response for the partner. Returns the response body.
pub async fn answer(gw: &Gateway, headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    let incoming = Incoming {
        peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
        headers,
        body,
        request_id: "gw-0123456789abcdef0123456789abcdef",
        client_cert: None,
        trace: None,
    };
    let outcome = pipeline::handle(gw, incoming).await;
    match outcome.result {
        Ok(UpstreamReply::Response(response)) => {
            let mut out = Vec::with_capacity(2048);
            encode::body_only(outcome.version, &mut out, |w| Ok(response.encode(w)?)).unwrap();
            out
        }
        Ok(UpstreamReply::Fault(f)) => panic!("upstream fault: {f:?}"),
        Err(e) => panic!("refused: {e}"),
    }
}

/// Polls a future that never waits (the in-memory upstream never does) to completion.
pub fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the in-memory pipeline should not wait"),
    }
}
