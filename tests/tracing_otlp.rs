#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! OpenTelemetry tracing of the real binary against an OTLP/HTTP receiver built here (a hyper
//! server decoding `ExportTraceServiceRequest` with the `opentelemetry-proto` messages): the
//! server span, its stage spans and the client span share one trace and nest; the upstream gets
//! the client span's `traceparent`; a trusted caller's trace is continued, anyone else's is
//! not; no attribute holds a key or body content; with tracing off nothing is sent and no
//! `traceparent` goes upstream.

mod common;
#[path = "common/serve.rs"]
mod serve;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

use common::*;
use partnergate::envelope::SoapVersion;
use partnergate::generated::partner::Operation;
use partnergate::store::Store;
use serve::Binary;

const OP: Operation = Operation::GetAccount;

/// The receiver: every span of every export, and how many exports came.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
    exports: Arc<Mutex<usize>>,
    addr: Option<SocketAddr>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = Receiver {
            addr: Some(listener.local_addr().unwrap()),
            ..Receiver::default()
        };
        let (spans, exports) = (Arc::clone(&r.spans), Arc::clone(&r.exports));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (spans, exports) = (Arc::clone(&spans), Arc::clone(&exports));
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (spans, exports) = (Arc::clone(&spans), Arc::clone(&exports));
                        async move {
                            assert_eq!(req.uri().path(), "/v1/traces");
                            assert_eq!(req.headers()["content-type"], "application/x-protobuf");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let export = ExportTraceServiceRequest::decode(body).expect("protobuf");
                            *exports.lock().unwrap() += 1;
                            let mut all = spans.lock().unwrap();
                            for rs in export.resource_spans {
                                let service = rs
                                    .resource
                                    .iter()
                                    .flat_map(|r| &r.attributes)
                                    .find(|kv| kv.key == "service.name")
                                    .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?));
                                assert_eq!(service.as_deref(), Some("pg-test"));
                                for ss in rs.scope_spans {
                                    all.extend(ss.spans);
                                }
                            }
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .header("content-type", "application/x-protobuf")
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        r
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr.unwrap())
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits (bounded) for the server span of `request_id` and every span of its trace: the
    /// server span, five stage spans and the client span.
    async fn trace_of(&self, request_id: &str) -> (Span, Vec<Span>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spans = self.spans();
            if let Some(server) = spans
                .iter()
                .find(|s| attr(s, "partnergate.request_id").as_deref() == Some(request_id))
            {
                let children: Vec<Span> = spans
                    .iter()
                    .filter(|s| s.trace_id == server.trace_id && s.span_id != server.span_id)
                    .cloned()
                    .collect();
                if children.len() >= 6 {
                    return (server.clone(), children);
                }
            }
            assert!(
                Instant::now() < deadline,
                "no complete trace for {request_id}: {:#?}",
                self.spans()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

fn attr(s: &Span, key: &str) -> Option<String> {
    s.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// POSTs the GetAccount fixture of `p` from the local address `from` with `extra` headers.
async fn call_from(
    gw: SocketAddr,
    from: [u8; 4],
    p: &Partner,
    extra: &[(&str, &str)],
) -> RawResponse {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    let stream = socket.connect(gw).await.unwrap();
    let mut conn = Conn::new(stream);
    let body = request_fixture(OP, SoapVersion::Soap11, p);
    let (ct, headers) = soap_headers(SoapVersion::Soap11, Some(OP.soap_action()));
    let mut all: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    all.extend_from_slice(extra);
    all.push(("Connection", "close"));
    conn.send(&post_bytes(&gw.to_string(), &ct, &all, &body))
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), conn.read_response())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r
}

/// The upstream's copy of the request with this gateway request id.
fn upstream_copy(up: &StubUpstream, request_id: &str) -> Recorded {
    up.requests()
        .into_iter()
        .find(|r| upstream_request_id(r) == request_id)
        .expect("the upstream got the request")
}

/// Checks the shape of one request's trace; returns (server span, client span).
fn check_trace(server: &Span, children: &[Span], p: &Partner) -> Span {
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(server.name, "partner GetAccount");
    assert_eq!(attr(server, "partnergate.face").as_deref(), Some("partner"));
    assert_eq!(
        attr(server, "partnergate.partner").as_deref(),
        Some(p.id.as_str())
    );
    assert_eq!(
        attr(server, "partnergate.operation").as_deref(),
        Some("GetAccount")
    );
    assert_eq!(attr(server, "partnergate.outcome").as_deref(), Some("ok"));
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("200")
    );
    let mut stages: Vec<&str> = children
        .iter()
        .filter(|s| s.kind == SpanKind::Internal as i32)
        .map(|s| s.name.as_str())
        .collect();
    stages.sort_unstable();
    assert_eq!(
        stages,
        ["checks", "decode", "envelope", "limit", "upstream"]
    );
    for child in children {
        assert_eq!(child.trace_id, server.trace_id);
        assert_eq!(child.parent_span_id, server.span_id, "{} nests", child.name);
        assert!(child.start_time_unix_nano >= server.start_time_unix_nano);
        assert!(child.end_time_unix_nano <= server.end_time_unix_nano);
    }
    let clients: Vec<&Span> = children
        .iter()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].name, "upstream");
    assert_eq!(
        attr(clients[0], "partnergate.outcome").as_deref(),
        Some("ok")
    );
    clients[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_nest_in_one_trace_and_the_upstream_gets_its_traceparent() {
    let receiver = Receiver::start().await;
    let up = StubUpstream::start(Reply::Fixture).await;
    let db = temp_path("trace-bin", "db");
    let p = {
        let store = Store::open(&db.display().to_string()).unwrap();
        onboard_partner(&store, &["*"], &["127.0.0.0/8"], None)
    };
    let gw = Binary::serve(
        db,
        &up.url,
        &[
            ("PARTNERGATE_TRACING_OTLP_ENDPOINT", receiver.url()),
            ("PARTNERGATE_TRACING_SERVICE_NAME", "pg-test".into()),
            (
                "PARTNERGATE_TRACING_TRUSTED_TRACEPARENT",
                "127.0.0.2/32".into(),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ],
    )
    .await;
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{caller_trace}-{caller_span}-01");
    let with_parent = [
        ("traceparent", traceparent.as_str()),
        ("tracestate", "vendor=opaque"),
    ];

    // No traceparent: a new trace, the server span its root.
    let fresh = call_from(gw.addr, [127, 0, 0, 1], &p, &[]).await;
    // A traceparent from an address outside tracing.trusted_traceparent: ignored.
    let untrusted = call_from(gw.addr, [127, 0, 0, 1], &p, &with_parent).await;
    // The same from the trusted address: continued.
    let trusted = call_from(gw.addr, [127, 0, 0, 2], &p, &with_parent).await;

    for (r, continued) in [(&fresh, false), (&untrusted, false), (&trusted, true)] {
        let id = r.request_id();
        let (server, children) = receiver.trace_of(&id).await;
        let client = check_trace(&server, &children, &p);
        let trace_id = hex(&server.trace_id);
        if continued {
            assert_eq!(trace_id, caller_trace);
            assert_eq!(hex(&server.parent_span_id), caller_span);
        } else {
            assert_ne!(trace_id, caller_trace);
            assert!(server.parent_span_id.is_empty(), "a root span");
        }
        // The upstream got the client span's context.
        let copy = upstream_copy(&up, &id);
        assert_eq!(
            copy.header("traceparent").as_deref(),
            Some(format!("00-{trace_id}-{}-01", hex(&client.span_id)).as_str())
        );
        assert_eq!(
            copy.header("tracestate").as_deref(),
            continued.then_some("vendor=opaque")
        );
    }

    // Nothing secret or from the body in any attribute.
    let body = String::from_utf8(request_fixture(OP, SoapVersion::Soap11, &p)).unwrap();
    for span in receiver.spans() {
        for kv in &span.attributes {
            let v = kv
                .value
                .as_ref()
                .and_then(|v| v.value.as_ref())
                .and_then(text);
            let v = v.unwrap_or_default();
            assert!(!v.contains(&p.key), "{}: the key", kv.key);
            assert!(!v.contains("pgk_"), "{}: a key", kv.key);
            assert!(!v.contains("ACC-0000001001"), "{}: body content", kv.key);
            assert!(!v.contains('<'), "{}: markup", kv.key);
            assert!(
                // (The partner id and the operation are attributes on purpose.)
                v.len() < 8 || v == p.id || v == OP.name() || !body.contains(&v),
                "{} = {v:?} is from the body",
                kv.key
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tracing_off_nothing_is_sent_and_no_traceparent_goes_upstream() {
    let receiver = Receiver::start().await;
    let up = StubUpstream::start(Reply::Fixture).await;
    let db = temp_path("trace-off", "db");
    let p = {
        let store = Store::open(&db.display().to_string()).unwrap();
        onboard_partner(&store, &["*"], &["127.0.0.0/8"], None)
    };
    // The OpenTelemetry environment points at the receiver and the caller is trusted: tracing
    // is still off without tracing.otlp_endpoint.
    let gw = Binary::serve(
        db,
        &up.url,
        &[
            (
                "PARTNERGATE_TRACING_TRUSTED_TRACEPARENT",
                "127.0.0.0/8".into(),
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url()),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ],
    )
    .await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = call_from(
        gw.addr,
        [127, 0, 0, 1],
        &p,
        &[("traceparent", traceparent), ("tracestate", "a=b")],
    )
    .await;
    let copy = upstream_copy(&up, &r.request_id());
    assert_eq!(copy.header("traceparent"), None);
    assert_eq!(copy.header("tracestate"), None);
    // Ten export intervals: nothing arrives.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(*receiver.exports.lock().unwrap(), 0);
    drop(gw);
}

/// The callback relay: a trusted TSP's trace is continued through the relay to the partner's
/// BSS, which gets the relay's client span in `traceparent` (an in-process gateway; its spans
/// are flushed when it stops).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_carries_the_trace_to_the_partner_bss() {
    use partnergate::generated::callback::Operation as CallbackOp;
    let receiver = Receiver::start().await;
    let mut config = test_config();
    config.callback.allow_http = true;
    config.callback.allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
    config.tracing.otlp_endpoint = Some(receiver.url());
    config.tracing.service_name = "pg-test".into();
    config.tracing.trusted_traceparent = vec!["127.0.0.0/8".parse().unwrap()];
    let gw = start_gateway(config).await;
    let p = gw.partner(&["*"], &["127.0.0.0/8"]).await;
    let bss = StubUpstream::start(Reply::Fixture).await;
    let changes = partnergate::store::PartnerChanges {
        callback_url: Some(Some(bss.url.clone())),
        ..partnergate::store::PartnerChanges::default()
    };
    gw.store.update_partner("test", &p.id, &changes).unwrap();
    gw.sync().await;

    let op = CallbackOp::ALL[0];
    let body = callback_fixture(op, &p);
    let caller_trace = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let mut req = format!(
        "POST {CALLBACK_PATH} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/xml; charset=utf-8\r\n\
         SOAPAction: \"{}\"\r\ntraceparent: 00-{caller_trace}-{caller_span}-01\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        gw.addr,
        op.soap_action(),
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let resp = exchange(gw.addr, &req).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let id = resp.request_id();
    let got = bss.take();
    assert_eq!(got.len(), 1);
    let sent = got[0]
        .header("traceparent")
        .expect("traceparent to the BSS");
    gw.stop().await;

    let spans = receiver.spans();
    let server = spans
        .iter()
        .find(|s| attr(s, "partnergate.request_id").as_deref() == Some(id.as_str()))
        .expect("the callback's server span");
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(server.name, format!("callback {}", op.name()));
    assert_eq!(
        attr(server, "partnergate.face").as_deref(),
        Some("callback")
    );
    assert_eq!(
        attr(server, "partnergate.partner").as_deref(),
        Some(p.id.as_str())
    );
    assert_eq!(hex(&server.trace_id), caller_trace);
    assert_eq!(hex(&server.parent_span_id), caller_span);
    let client = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client as i32 && s.parent_span_id == server.span_id)
        .expect("the client span of the call to the BSS");
    assert_eq!(client.name, "callback");
    assert_eq!(client.trace_id, server.trace_id);
    assert_eq!(attr(client, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        sent,
        format!("00-{caller_trace}-{}-01", hex(&client.span_id))
    );
}

/// `tracing.sample_ratio = 0`: new traces are not recorded (nothing exported), but the upstream
/// still gets a `traceparent`, marked not sampled (flags 00), so the trace id goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_traces_export_nothing_and_still_propagate() {
    let receiver = Receiver::start().await;
    let up = StubUpstream::start(Reply::Fixture).await;
    let db = temp_path("trace-unsampled", "db");
    let p = {
        let store = Store::open(&db.display().to_string()).unwrap();
        onboard_partner(&store, &["*"], &["127.0.0.0/8"], None)
    };
    let gw = Binary::serve(
        db,
        &up.url,
        &[
            ("PARTNERGATE_TRACING_OTLP_ENDPOINT", receiver.url()),
            ("PARTNERGATE_TRACING_SAMPLE_RATIO", "0".into()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ],
    )
    .await;
    let r = call_from(gw.addr, [127, 0, 0, 1], &p, &[]).await;
    let copy = upstream_copy(&up, &r.request_id());
    let sent = copy.header("traceparent").expect("a traceparent upstream");
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!((parts[0], parts[3]), ("00", "00"), "{sent}");
    assert_eq!((parts[1].len(), parts[2].len()), (32, 16), "{sent}");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(receiver.spans().is_empty(), "{:#?}", receiver.spans());
    drop(gw);
}
