//! Helpers shared by the black-box gateway tests: an in-process gateway on a fresh SQLite file,
//! a recording stub upstream, a raw HTTP/1.1 client (plain and TLS) that controls framing
//! exactly, fixtures with real credentials, and typed parsing of fault responses.

#![allow(
    dead_code,
    reason = "shared by several test files; each uses a part of it"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use partnergate::config::Config;
use partnergate::decode::{self, DecodeLimits};
use partnergate::envelope::{self, FaultCode, SoapVersion};
use partnergate::forward::{self, CallContext};
use partnergate::generated::partner::{self, FaultDetail, Operation};
use partnergate::generated::types::cmn;
use partnergate::store::{NewPartner, Rate, Store};

mod callback;
pub mod pki;
#[allow(
    unused_imports,
    reason = "shared by several test files; only the callback tests use these"
)]
pub use callback::*;

/// The API key the fixtures carry.
pub const FIXTURE_KEY: &str = "pgk_test_0123456789abcdef0123456789abcdef";
/// The partner id the fixtures carry.
pub const FIXTURE_PARTNER: &str = "PARTNER-0042";
/// The SOAP 1.1 envelope namespace.
pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The SOAP 1.2 envelope namespace.
pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";

// === fixtures ===

/// `tests/data`.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// A fixture's bytes, by path relative to `tests/data`.
pub fn fixture(rel: &str) -> Vec<u8> {
    let path = data_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replaces the fixtures' placeholder partner id and key with real ones.
pub fn personalize(bytes: &[u8], partner_id: &str, key: &str) -> Vec<u8> {
    String::from_utf8(bytes.to_vec())
        .expect("fixtures are UTF-8")
        .replace(FIXTURE_KEY, key)
        .replace(FIXTURE_PARTNER, partner_id)
        .into_bytes()
}

/// `tests/data/<Op>/request.xml` (or `request.soap12.xml`) with real credentials.
pub fn request_fixture(op: Operation, version: SoapVersion, partner: &Partner) -> Vec<u8> {
    let file = match version {
        SoapVersion::Soap11 => "request.xml",
        SoapVersion::Soap12 => "request.soap12.xml",
    };
    personalize(
        &fixture(&format!("{}/{file}", op.name())),
        &partner.id,
        &partner.key,
    )
}

/// Whether `tests/data/<Op>/request.soap12.xml` exists.
pub fn has_soap12_fixture(op: Operation) -> bool {
    data_dir()
        .join(op.name())
        .join("request.soap12.xml")
        .exists()
}

/// The canonical response fixture of `op`, in the envelope of `version`.
pub fn canonical_response(op: Operation, version: SoapVersion) -> Vec<u8> {
    let text = String::from_utf8(fixture(&format!("{}/response.canonical.xml", op.name())))
        .expect("UTF-8");
    match version {
        SoapVersion::Soap11 => text.into_bytes(),
        SoapVersion::Soap12 => text.replacen(SOAP11_NS, SOAP12_NS, 1).into_bytes(),
    }
}

/// Decodes a partner request (fixture) as the gateway does.
pub fn decode_request(bytes: &[u8]) -> partner::Request {
    let env = envelope::scan(bytes).expect("fixture scans");
    decode::partner_request(&env.body, DecodeLimits::default()).expect("fixture decodes")
}

/// A unique path in the temp directory.
pub fn temp_path(tag: &str, ext: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let nonce: u64 = rand::random();
    std::env::temp_dir().join(format!(
        "partnergate-{tag}-{}-{}-{nonce:016x}.{ext}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Removes a SQLite file and its WAL/SHM companions.
pub fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

// === the gateway ===

/// A configuration for tests: short timeouts, fast refresh, a generous default rate.
pub fn test_config() -> Config {
    let mut c = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        refresh_interval: Duration::from_millis(20),
        default_rate: Rate::new(10_000, 10_000).expect("rate"),
        default_callback_rate: Rate::new(10_000, 10_000).expect("rate"),
        ..Config::default()
    };
    c.limits.header_read_timeout = Duration::from_secs(3);
    c.limits.body_read_timeout = Duration::from_secs(3);
    c.limits.keepalive_idle_timeout = Duration::from_secs(5);
    c.upstream.connect_timeout = Duration::from_secs(2);
    c.upstream.response_timeout = Duration::from_secs(3);
    c
}

/// A partner as onboarded: its id and both keys.
#[derive(Clone, Debug)]
pub struct Partner {
    /// `PARTNER-0001`, …
    pub id: String,
    /// `pgk_…`
    pub key: String,
    /// `pgc_…`
    pub callback_key: String,
}

/// A running in-process gateway on its own SQLite file.
pub struct TestGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// A second handle on its database.
    pub store: Store,
    /// The SQLite file.
    pub db_path: PathBuf,
    /// The CA to trust when the gateway serves TLS (set it before [`TestGateway::sync`]).
    pub tls_ca: Option<rustls::pki_types::CertificateDer<'static>>,
    shutdown: tokio::sync::watch::Sender<bool>,
    done: Option<tokio::task::JoinHandle<()>>,
}

/// Starts the gateway of `config` on 127.0.0.1:0 with a fresh SQLite file.
pub async fn start_gateway(config: Config) -> TestGateway {
    start_gateway_at(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Starts the gateway of `config` listening on `listen` with a fresh SQLite file. On an
/// unspecified address (`[::]:0`, a dual-stack listener), [`TestGateway::addr`] is
/// `127.0.0.1:PORT`: IPv4 clients reach it as IPv4-mapped peers (`::ffff:127.0.0.1`).
pub async fn start_gateway_at(mut config: Config, listen: SocketAddr) -> TestGateway {
    let db_path = temp_path("gw", "db");
    config.database_url = db_path.display().to_string();
    config.listen = listen;
    let running = partnergate::app::start(config)
        .await
        .unwrap_or_else(|e| panic!("gateway start: {e}"));
    let store = Store::open(&db_path.display().to_string()).expect("second store handle");
    let mut addr = running.addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::IpAddr::from([127, 0, 0, 1]));
    }
    TestGateway {
        addr,
        store,
        db_path,
        tls_ca: None,
        shutdown: running.shutdown,
        done: Some(running.done),
    }
}

impl TestGateway {
    /// Onboards a partner (active, no group) and waits until the gateway's snapshot has it.
    pub async fn partner(&self, grants: &[&str], allow: &[&str]) -> Partner {
        let p = onboard_partner(&self.store, grants, allow, None);
        self.sync().await;
        p
    }

    /// Waits (bounded) until the gateway's snapshot has caught up with the database: `/readyz`
    /// reports the snapshot revision.
    pub async fn sync(&self) {
        let want = self.store.revision().expect("revision");
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let r = match &self.tls_ca {
                Some(ca) => get_tls(self.addr, ca, "/readyz").await,
                None => get(self.addr, "/readyz", None).await,
            };
            let text = String::from_utf8_lossy(&r.body).into_owned();
            let have = text
                .strip_prefix("ready: snapshot revision ")
                .and_then(|t| t.split_whitespace().next())
                .and_then(|n| n.parse::<i64>().ok());
            if have.is_some_and(|h| h >= want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "snapshot did not reach revision {want}: {text}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Shuts the gateway down and waits for it (bounded).
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(done) = self.done.take() {
            tokio::time::timeout(Duration::from_secs(5), done)
                .await
                .expect("gateway stops in time")
                .expect("server task");
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        remove_db(&self.db_path);
    }
}

/// The permissions of every operation (what `create_partner` validates grants against).
pub fn known_permissions() -> Vec<&'static str> {
    Operation::ALL.map(|o| o.permission()).to_vec()
}

fn parse_nets(allow: &[&str]) -> Vec<ipnet::IpNet> {
    allow
        .iter()
        .map(|a| partnergate::config::parse_net(a).expect("network"))
        .collect()
}

/// Onboards a partner; returns (partner id, api key).
pub fn onboard(store: &Store, grants: &[&str], allow: &[&str]) -> (String, String) {
    let p = onboard_partner(store, grants, allow, None);
    (p.id, p.key)
}

/// Onboards a partner, optionally into `group`.
pub fn onboard_partner(
    store: &Store,
    grants: &[&str],
    allow: &[&str],
    group: Option<&str>,
) -> Partner {
    let created = store
        .create_partner(
            NewPartner {
                partner_id: None,
                name: "Test Partner".into(),
                country: Some("DE".into()),
                group: group.map(str::to_string),
                allow: parse_nets(allow),
                grants: grants.iter().map(|g| (*g).to_string()).collect(),
                ..NewPartner::default()
            },
            &known_permissions(),
        )
        .expect("create partner");
    Partner {
        id: created.partner_id,
        key: created.api_key.expose().to_string(),
        callback_key: created.callback_key.expose().to_string(),
    }
}

// === the stub upstream ===

/// How the stub upstream answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// `tests/data/<Op>/response.xml` of the operation named by the SOAPAction, HTTP 200.
    Fixture,
    /// A fault fixture (`tests/data/faults/<file>`) with this HTTP status.
    Fault {
        /// File name in `tests/data/faults`.
        file: &'static str,
        /// HTTP status.
        status: u16,
    },
    /// An HTML error page with HTTP 502.
    Html502,
    /// Not XML at all, with HTTP 200.
    InvalidXml,
    /// The response fixture of another operation, HTTP 200.
    OtherOperation(Operation),
    /// The right response fixture padded with a comment to this many bytes.
    Oversized(usize),
    /// Waits this long, then answers like [`Reply::Fixture`].
    Delay(Duration),
    /// This HTTP status with a short HTML body (e.g. 401).
    Status(u16),
    /// These bytes (a SOAP 1.1 envelope, say) with this HTTP status.
    Raw {
        /// HTTP status.
        status: u16,
        /// The body.
        body: Vec<u8>,
    },
}

/// One request the stub received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// HTTP method.
    pub method: http::Method,
    /// Request target.
    pub uri: http::Uri,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Recorded {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

/// A recording HTTP server on 127.0.0.1:0 standing in for the partner API layer.
pub struct StubUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT/partner-api`.
    pub url: String,
    reply: Arc<Mutex<Reply>>,
    records: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StubUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn stub_answer(
    reply: &Reply,
    action: Option<Operation>,
    callback: Option<partnergate::generated::callback::Operation>,
) -> (u16, Vec<u8>) {
    let own = |op: Option<Operation>| match (op, callback) {
        (Some(op), _) => fixture(&format!("{}/response.xml", op.name())),
        // A partner BSS answering a callback.
        (None, Some(cb)) => fixture(&format!("callback/{}/response.xml", cb.name())),
        (None, None) => b"<html>no such action</html>".to_vec(),
    };
    match reply {
        Reply::Fixture | Reply::Delay(_) => (200, own(action)),
        Reply::Fault { file, status } => (*status, fixture(&format!("faults/{file}"))),
        Reply::Html502 => (
            502,
            b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
                .to_vec(),
        ),
        Reply::InvalidXml => (200, b"<soap:Envelope <<< this is not xml".to_vec()),
        Reply::Status(status) => (*status, b"<html><body>status</body></html>".to_vec()),
        Reply::OtherOperation(op) => (200, own(Some(*op))),
        Reply::Oversized(n) => {
            let mut body = own(action);
            let pad = n.saturating_sub(body.len() + 7);
            body.extend_from_slice(b"<!--");
            body.extend(std::iter::repeat_n(b'x', pad));
            body.extend_from_slice(b"-->");
            (200, body)
        }
        Reply::Raw { status, body } => (*status, body.clone()),
    }
}

impl StubUpstream {
    /// Starts the stub with `reply`.
    pub async fn start(reply: Reply) -> StubUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind stub");
        let addr = listener.local_addr().expect("addr");
        let reply = Arc::new(Mutex::new(reply));
        let records: Arc<Mutex<Vec<Recorded>>> = Arc::new(Mutex::new(Vec::new()));
        let (r, rec) = (Arc::clone(&reply), Arc::clone(&records));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (r, rec) = (Arc::clone(&r), Arc::clone(&rec));
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (r, rec) = (Arc::clone(&r), Arc::clone(&rec));
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let action_text = parts
                                .headers
                                .get("soapaction")
                                .map(|v| {
                                    String::from_utf8_lossy(v.as_bytes())
                                        .trim_matches('"')
                                        .to_string()
                                })
                                .unwrap_or_default();
                            let action = Operation::from_soap_action(action_text.as_bytes());
                            let callback_action =
                                partnergate::generated::callback::Operation::from_soap_action(
                                    action_text.as_bytes(),
                                );
                            rec.lock().expect("records").push(Recorded {
                                method: parts.method,
                                uri: parts.uri,
                                headers: parts.headers,
                                body,
                            });
                            let reply = r.lock().expect("reply").clone();
                            if let Reply::Delay(d) = reply {
                                tokio::time::sleep(d).await;
                            }
                            let (status, bytes) = stub_answer(&reply, action, callback_action);
                            let mut resp = http::Response::new(Full::new(Bytes::from(bytes)));
                            *resp.status_mut() =
                                http::StatusCode::from_u16(status).expect("status");
                            let ct = if matches!(reply, Reply::Html502 | Reply::Status(_)) {
                                "text/html"
                            } else {
                                "text/xml; charset=utf-8"
                            };
                            resp.headers_mut().insert(
                                http::header::CONTENT_TYPE,
                                http::HeaderValue::from_static(ct),
                            );
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        StubUpstream {
            addr,
            url: format!("http://{addr}/partner-api"),
            reply,
            records,
            task,
        }
    }

    /// Changes how the stub answers from now on.
    pub fn set_reply(&self, reply: Reply) {
        *self.reply.lock().expect("reply") = reply;
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.records.lock().expect("records").clone()
    }

    /// Everything received so far, forgetting it.
    pub fn take(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.records.lock().expect("records"))
    }

    /// How many requests were received.
    pub fn count(&self) -> usize {
        self.records.lock().expect("records").len()
    }
}

/// An `http://` URL on which nothing listens (connection refused).
pub fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}/partner-api")
}

/// Checks that `rec` is exactly the canonical upstream request for `fixture` (a partner
/// request) on behalf of `partner_id` with gateway request id `request_id`.
pub fn assert_canonical_upstream(
    rec: &Recorded,
    fixture: &[u8],
    partner_id: &str,
    request_id: &str,
) {
    let request = decode_request(fixture);
    let op = request.operation();
    assert_eq!(rec.method, http::Method::POST);
    assert_eq!(
        rec.header("soapaction").as_deref(),
        Some(format!("\"{}\"", op.soap_action()).as_str()),
        "SOAPAction sent upstream"
    );
    assert!(
        rec.header("content-type")
            .is_some_and(|c| c.starts_with("text/xml")),
        "upstream content type: {:?}",
        rec.header("content-type")
    );
    let expected = forward::encode_upstream_request(
        CallContext {
            trace: None,
            partner_id,
            request_id,
        },
        &request,
    )
    .expect("encode");
    assert_eq!(
        String::from_utf8_lossy(&rec.body),
        String::from_utf8_lossy(&expected),
        "the upstream body is the canonical encoding"
    );
    // Only the gateway's own headers: nothing of the partner's request is relayed.
    for name in rec.headers.keys() {
        assert!(
            [
                "host",
                "content-type",
                "content-length",
                "soapaction",
                "x-partnergate-gateway-secret"
            ]
            .contains(&name.as_str()),
            "header {name} reached the upstream"
        );
    }
    let text = String::from_utf8_lossy(&rec.body);
    assert!(!text.contains("pgk_"), "a partner key reached the upstream");
    assert!(
        !text.contains("pgc_"),
        "a callback key reached the upstream"
    );
    let assertion = gateway_assertion(&rec.body);
    assert_eq!(assertion.partner_id.as_str(), partner_id);
    assert_eq!(assertion.request_id.as_str(), request_id);
}

/// The `cmn:GatewayAssertion` header of an upstream request, decoded strictly.
pub fn gateway_assertion(body: &[u8]) -> cmn::GatewayAssertion {
    use xsd_parser_types::quick_xml::DeserializeSync;
    let env = envelope::scan(body).expect("upstream request scans");
    assert_eq!(env.version, SoapVersion::Soap11, "upstream is SOAP 1.1");
    assert_eq!(env.headers.len(), 1, "exactly one header block upstream");
    let block = &env.headers[0];
    assert!(block
        .element
        .is("urn:partnergate:partner:common:v1", "GatewayAssertion"));
    decode::decode_with(
        &block.element,
        partner::NAMESPACES,
        DecodeLimits::default(),
        cmn::GatewayAssertion::deserialize,
    )
    .expect("GatewayAssertion decodes")
}

/// The request id the gateway asserted upstream.
pub fn upstream_request_id(rec: &Recorded) -> String {
    gateway_assertion(&rec.body).request_id.as_str().to_string()
}

// === raw HTTP/1.1 client ===

/// A parsed HTTP response.
#[derive(Clone, Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Headers in order (names lower-cased).
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header of this name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The gateway's request id (`X-Request-Id`).
    pub fn request_id(&self) -> String {
        self.header("x-request-id")
            .unwrap_or_else(|| panic!("no X-Request-Id: {self:?}"))
            .to_string()
    }
}

/// One HTTP/1.1 connection over any byte stream (TCP or TLS).
pub struct Conn<S> {
    /// The stream.
    pub stream: S,
    buf: Vec<u8>,
}

impl Conn<TcpStream> {
    /// Connects over TCP.
    pub async fn connect(addr: SocketAddr) -> Conn<TcpStream> {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Conn::new(stream)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S) -> Conn<S> {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes bytes as they are.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    async fn need(&mut self, len: usize) -> std::io::Result<()> {
        while self.buf.len() < len {
            if self.fill().await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed mid-response",
                ));
            }
        }
        Ok(())
    }

    async fn line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.fill().await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed before a full line",
                ));
            }
        }
    }

    /// Reads one response: status line, headers, and a Content-Length, chunked or
    /// read-to-close body.
    pub async fn read_response(&mut self) -> std::io::Result<RawResponse> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            if self.fill().await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before a response head ({} bytes: {:?})",
                        self.buf.len(),
                        String::from_utf8_lossy(&self.buf)
                    ),
                ));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let proto = parts.next().unwrap_or("");
        assert!(proto.starts_with("HTTP/1."), "status line {status_line:?}");
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let body = if let Some(len) = find("content-length") {
            let len: usize = len.parse().expect("content-length");
            self.need(len).await?;
            self.buf.drain(..len).collect()
        } else if find("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            let mut body = Vec::new();
            loop {
                let size_line = self.line().await?;
                let size_text = String::from_utf8_lossy(&size_line);
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .expect("chunk size");
                if size == 0 {
                    // Trailers, up to the empty line.
                    while !self.line().await?.is_empty() {}
                    break;
                }
                self.need(size + 2).await?;
                body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
            }
            body
        } else if status == 204 || status == 304 || (100..200).contains(&status) {
            Vec::new()
        } else {
            while self.fill().await? > 0 {}
            std::mem::take(&mut self.buf)
        };
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// Reads until the peer closes (or resets) the connection; returns what arrived.
    pub async fn read_to_close(&mut self) -> Vec<u8> {
        loop {
            match self.fill().await {
                Ok(0) | Err(_) => return std::mem::take(&mut self.buf),
                Ok(_) => {}
            }
        }
    }
}

/// The bytes of a POST to the SOAP endpoint with `Content-Length`.
pub fn post_bytes(host: &str, content_type: &str, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "POST /soap/partner/v1 HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The content type (and SOAPAction header) a well-behaved client of `version` sends.
pub fn soap_headers(version: SoapVersion, action: Option<&str>) -> (String, Vec<(String, String)>) {
    match version {
        SoapVersion::Soap11 => (
            "text/xml; charset=utf-8".to_string(),
            action
                .map(|a| vec![("SOAPAction".to_string(), format!("\"{a}\""))])
                .unwrap_or_default(),
        ),
        SoapVersion::Soap12 => (
            match action {
                Some(a) => format!("application/soap+xml; charset=utf-8; action=\"{a}\""),
                None => "application/soap+xml; charset=utf-8".to_string(),
            },
            Vec::new(),
        ),
    }
}

/// Sends raw request bytes on a fresh connection and reads one response.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut c = Conn::connect(addr).await;
    c.send(request).await.expect("send");
    tokio::time::timeout(Duration::from_secs(10), c.read_response())
        .await
        .expect("response in time")
        .expect("response")
}

/// POSTs a SOAP message of `version` with the operation's action (SOAPAction header for SOAP
/// 1.1, the `action` parameter for SOAP 1.2) on a fresh connection.
pub async fn post_soap(
    addr: SocketAddr,
    version: SoapVersion,
    action: Option<&str>,
    body: &[u8],
) -> RawResponse {
    post_soap_with(addr, version, action, &[], body).await
}

/// Like [`post_soap`] with extra headers.
pub async fn post_soap_with(
    addr: SocketAddr,
    version: SoapVersion,
    action: Option<&str>,
    extra: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let (ct, headers) = soap_headers(version, action);
    let mut all: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    all.extend_from_slice(extra);
    all.push(("Connection", "close"));
    exchange(addr, &post_bytes(&addr.to_string(), &ct, &all, body)).await
}

/// GETs `target` on a fresh connection (`Host` as given, else the address).
pub async fn get(addr: SocketAddr, target: &str, host: Option<&str>) -> RawResponse {
    let host = host.map_or_else(|| addr.to_string(), str::to_string);
    let req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    exchange(addr, req.as_bytes()).await
}

// === TLS ===

/// A CA and a leaf certificate for 127.0.0.1/localhost, written as PEM files.
pub struct TestPki {
    /// The CA certificate (DER), to trust.
    pub ca_der: rustls::pki_types::CertificateDer<'static>,
    /// The same CA certificate as PEM (for other TLS clients, and per-partner CAs).
    pub ca_pem: String,
    /// The leaf certificate file.
    pub cert_path: PathBuf,
    /// The leaf key file.
    pub key_path: PathBuf,
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.cert_path);
        let _ = std::fs::remove_file(&self.key_path);
    }
}

/// Generates a CA and a leaf for `127.0.0.1` and `localhost` with rcgen.
pub fn test_pki() -> TestPki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "partnergate test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("leaf params");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("leaf cert");
    let cert_path = temp_path("tls-cert", "pem");
    let key_path = temp_path("tls-key", "pem");
    std::fs::write(&cert_path, leaf.pem()).expect("write cert");
    std::fs::write(&key_path, leaf_key.serialize_pem()).expect("write key");
    TestPki {
        ca_der: ca_cert.der().clone(),
        ca_pem: ca_cert.pem(),
        cert_path,
        key_path,
    }
}

/// Starts the gateway of `config` with a TLS listener whose certificate a fresh [`test_pki`]
/// issued (its CA set as [`TestGateway::tls_ca`]).
pub async fn start_tls_gateway(mut config: Config) -> (TestGateway, TestPki) {
    let pki = test_pki();
    config.tls = Some(partnergate::config::TlsConfig {
        cert: pki.cert_path.clone(),
        key: pki.key_path.clone(),
    });
    let mut gw = start_gateway(config).await;
    gw.tls_ca = Some(pki.ca_der.clone());
    (gw, pki)
}

/// Connects with TLS to `addr`, trusting only `ca`, for server name `name`.
pub async fn connect_tls(
    addr: SocketAddr,
    ca: &rustls::pki_types::CertificateDer<'static>,
    name: &str,
) -> Conn<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("add CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let server_name =
        rustls::pki_types::ServerName::try_from(name.to_string()).expect("server name");
    let tls = connector
        .connect(server_name, tcp)
        .await
        .expect("TLS handshake");
    Conn::new(tls)
}

/// GETs `target` over TLS (server name `localhost`) on a fresh connection.
pub async fn get_tls(
    addr: SocketAddr,
    ca: &rustls::pki_types::CertificateDer<'static>,
    target: &str,
) -> RawResponse {
    let mut c = connect_tls(addr, ca, "localhost").await;
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    c.send(req.as_bytes()).await.expect("send");
    tokio::time::timeout(Duration::from_secs(10), c.read_response())
        .await
        .expect("response in time")
        .expect("response")
}

// === faults ===

/// A SOAP fault response, parsed strictly.
#[derive(Clone, Debug)]
pub struct Fault {
    /// The envelope's SOAP version.
    pub version: SoapVersion,
    /// The fault code.
    pub code: FaultCode,
    /// `faultstring` / `Reason/Text`.
    pub reason: String,
    /// The typed detail, if any.
    pub detail: Option<FaultDetail>,
}

impl Fault {
    /// The detail's request id.
    pub fn detail_request_id(&self) -> Option<String> {
        let id = match self.detail.as_ref()? {
            FaultDetail::AccessDenied(d) => &d.request_id,
            FaultDetail::InvalidRequest(d) => &d.request_id,
            FaultDetail::Throttled(d) => &d.request_id,
            FaultDetail::NotFound(d) => &d.request_id,
            FaultDetail::Conflict(d) => &d.request_id,
            FaultDetail::UpstreamUnavailable(d) => &d.request_id,
        };
        Some(id.as_str().to_string())
    }
}

/// Parses a fault envelope with the gateway's own envelope scan, fault parser and typed
/// fault-detail decoder.
pub fn parse_fault_body(body: &[u8]) -> Fault {
    let env = envelope::scan(body)
        .unwrap_or_else(|e| panic!("fault scans ({e}): {}", String::from_utf8_lossy(body)));
    let fault = envelope::parse_fault(&env)
        .unwrap_or_else(|e| panic!("a SOAP fault ({e}): {}", String::from_utf8_lossy(body)));
    let detail = fault.detail.as_ref().map(|d| {
        decode::partner_fault(d, DecodeLimits::default())
            .unwrap_or_else(|e| panic!("typed detail ({e}): {}", String::from_utf8_lossy(body)))
    });
    Fault {
        version: env.version,
        code: fault.code,
        reason: fault.reason,
        detail,
    }
}

// === PostgreSQL ===

/// Runs one SQL statement with `psql` against `url` (tests create and drop their own databases).
pub fn psql(url: &str, sql: &str) {
    let out = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh database on the test PostgreSQL (`PARTNERGATE_TEST_POSTGRES_URL`, set by
/// `tests/run.sh`): its URL and name. Drop it with `psql(url, "DROP DATABASE … WITH (FORCE)")`.
pub fn fresh_postgres_database(tag: &str) -> (String, String, String) {
    let url = std::env::var("PARTNERGATE_TEST_POSTGRES_URL").expect(
        "PARTNERGATE_TEST_POSTGRES_URL is not set: run tests/run.sh (it starts a throwaway PostgreSQL)",
    );
    let name = format!("pg_{tag}_{}", rand::random::<u32>());
    psql(&url, &format!("CREATE DATABASE {name}"));
    let (base, _) = url.rsplit_once('/').expect("URL with a database");
    let db = format!("{base}/{name}");
    (url, name, db)
}

// === /metrics ===

/// `GET /metrics` of the listener at `addr` (asserted 200).
pub async fn metrics(addr: SocketAddr) -> String {
    let r = get(addr, "/metrics", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

/// The value of `series` (the name with its labels, exactly as written) in Prometheus text.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}
