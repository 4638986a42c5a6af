//! The pipeline target's surroundings: a recording stub upstream that checks what reaches it and
//! answers with a golden fixture ([`StubReply`]), the gateway around it (one per thread) and a
//! poll-once executor for a request path that never waits. Uses the partner world and the
//! pipeline, forward, throttle and store types the gateway is built from.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::config::XmlLimits;
use crate::decode::{self, DecodeLimits};
use crate::envelope;
use crate::fault::StatusModes;
use crate::forward::{self, BoxFuture, CallContext, ForwardError, Upstream, UpstreamReply};
use crate::generated::partner;
use crate::pipeline::{Gateway, Settings};
use crate::store::{Rate, SnapshotCell};
use crate::throttle::Throttle;

use super::partners::{nets, snapshot, TRUSTED_PROXIES};

/// How the stub upstream answers (first input byte, bits 3–5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum StubReply {
    /// The operation's golden response fixture.
    Response,
    /// A golden fault fixture (index into [`FAULT_FIXTURES`]).
    Fault(usize),
    /// No answer in time.
    Timeout,
}

impl StubReply {
    pub(super) fn from_bits(bits: u8) -> StubReply {
        match usize::from(bits & 7) {
            0 => StubReply::Response,
            7 => StubReply::Timeout,
            n => StubReply::Fault(n - 1),
        }
    }
}

macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/", $path))
    };
}

/// The golden SOAP 1.1 fault fixtures the stub can answer with (`AccessDenied` included: the
/// forward stage must turn it into an error, never relay it).
const FAULT_FIXTURES: [&[u8]; 6] = [
    fixture!("faults/AccessDeniedFault.soap11.xml"),
    fixture!("faults/InvalidRequestFault.soap11.xml"),
    fixture!("faults/ThrottledFault.soap11.xml"),
    fixture!("faults/NotFoundFault.soap11.xml"),
    fixture!("faults/ConflictFault.soap11.xml"),
    fixture!("faults/UpstreamUnavailableFault.soap11.xml"),
];

/// The golden response fixture of `op`.
fn response_fixture(op: partner::Operation) -> &'static [u8] {
    use partner::Operation as O;
    match op {
        O::CreateAccount => fixture!("CreateAccount/response.xml"),
        O::ModifyAccount => fixture!("ModifyAccount/response.xml"),
        O::ChangeAccountStatus => fixture!("ChangeAccountStatus/response.xml"),
        O::GetAccount => fixture!("GetAccount/response.xml"),
        O::FindAccounts => fixture!("FindAccounts/response.xml"),
        O::AddService => fixture!("AddService/response.xml"),
        O::ModifyService => fixture!("ModifyService/response.xml"),
        O::ChangeServiceStatus => fixture!("ChangeServiceStatus/response.xml"),
        O::GetService => fixture!("GetService/response.xml"),
        O::ListServices => fixture!("ListServices/response.xml"),
        O::AddDevice => fixture!("AddDevice/response.xml"),
        O::ModifyDevice => fixture!("ModifyDevice/response.xml"),
        O::ChangeDeviceStatus => fixture!("ChangeDeviceStatus/response.xml"),
        O::GetDevice => fixture!("GetDevice/response.xml"),
        O::EnableFeature => fixture!("EnableFeature/response.xml"),
        O::ModifyFeature => fixture!("ModifyFeature/response.xml"),
        O::ChangeFeatureStatus => fixture!("ChangeFeatureStatus/response.xml"),
        O::GetFeature => fixture!("GetFeature/response.xml"),
    }
}

/// One call the stub received.
#[derive(Debug)]
pub(super) struct Call {
    pub(super) partner_id: String,
    pub(super) request_id: String,
    pub(super) request: partner::Request,
}

/// A recording upstream: checks that what it receives encodes canonically and decodes strictly,
/// and answers with a golden fixture.
pub(super) struct Stub {
    pub(super) reply: Mutex<StubReply>,
    pub(super) calls: Mutex<Vec<Call>>,
}

impl Upstream for Stub {
    fn call<'a>(
        &'a self,
        ctx: CallContext<'a>,
        request: &'a partner::Request,
    ) -> BoxFuture<'a, Result<UpstreamReply, ForwardError>> {
        // What reaches the upstream: the canonical envelope, which decodes strictly to the same
        // request.
        let bytes = forward::encode_upstream_request(ctx, request)
            .unwrap_or_else(|e| panic!("a forwarded request does not encode: {e}"));
        let env = envelope::scan(&bytes).expect("the upstream request scans");
        let again = decode::partner_request(&env.body, DecodeLimits::default())
            .unwrap_or_else(|e| panic!("the upstream request does not decode: {e}"));
        assert_eq!(
            &again, request,
            "the upstream request decodes to another value"
        );
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("pgk_") && !text.contains("pgc_"),
            "a key reached the upstream"
        );
        self.calls.lock().expect("calls").push(Call {
            partner_id: ctx.partner_id.to_string(),
            request_id: ctx.request_id.to_string(),
            request: request.clone(),
        });
        let reply = stub_reply(request.operation(), *self.reply.lock().expect("reply"));
        Box::pin(std::future::ready(reply))
    }
}

/// What the stub answers: the fixture decoded by the forward stage's own strict decoder (once
/// per operation and answer: it does not depend on the input).
fn stub_reply(op: partner::Operation, reply: StubReply) -> Result<UpstreamReply, ForwardError> {
    type Cache = std::collections::HashMap<
        (partner::Operation, StubReply),
        Result<UpstreamReply, ForwardError>,
    >;
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(|| Mutex::new(Cache::new()))
        .lock()
        .expect("cache");
    cache
        .entry((op, reply))
        .or_insert_with(|| match reply {
            StubReply::Response => {
                let r = forward::decode_upstream_reply(op, 200, response_fixture(op));
                assert!(
                    matches!(r, Ok(UpstreamReply::Response(_))),
                    "the golden response of {op:?} does not decode: {r:?}"
                );
                r
            }
            StubReply::Fault(i) => forward::decode_upstream_reply(op, 500, FAULT_FIXTURES[i]),
            StubReply::Timeout => Err(ForwardError::Timeout(Duration::from_secs(20))),
        })
        .clone()
}

pub(super) struct PipelineHarness {
    pub(super) gateway: Gateway,
    pub(super) stub: Arc<Stub>,
}

/// Runs `f` with this thread's harness (one per thread: the stub records the calls of one
/// request at a time, and the unit tests run on several threads).
pub(super) fn with_harness<R>(f: impl FnOnce(&PipelineHarness) -> R) -> R {
    thread_local! {
        static HARNESS: PipelineHarness = new_harness();
    }
    HARNESS.with(f)
}

fn new_harness() -> PipelineHarness {
    let stub = Arc::new(Stub {
        reply: Mutex::new(StubReply::Response),
        calls: Mutex::new(Vec::new()),
    });
    let upstream: Arc<dyn Upstream> = Arc::clone(&stub) as Arc<dyn Upstream>;
    let gateway = Gateway {
        settings: Settings {
            xml: XmlLimits::default(),
            trusted_proxies: nets(&[TRUSTED_PROXIES]),
            trusted_proxy_header: crate::allowlist::ProxyHeader::XForwardedFor,
            fault_status: StatusModes::default(),
        },
        snapshot: Arc::new(SnapshotCell::new(snapshot().clone())),
        // Never throttles: throttling is time-driven, not input-driven.
        throttle: Throttle::new(Rate::new(1_000_000_000, 1_000_000_000).expect("rate")),
        upstream: Some(upstream),
        stats: Arc::new(crate::stats::Stats::default()),
        callback: None,
        enrollment: None,
    };
    PipelineHarness { gateway, stub }
}

/// Drives a future that never waits (the stub upstream answers at once) to its end.
pub(super) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the request path waited although nothing it calls can wait"),
    }
}
