//! Black-box tests of the admin HTTP API: the gateway started in process
//! (`partnergate::app::start`) on a fresh SQLite file with an admin token, driven by a raw
//! HTTP/1.1 client; a stub partner API layer answers GetAccount, so the SOAP endpoint shows
//! when a change made through the API is in force (the gateway's default 250 ms refresh).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use partnergate::admin::AdminToken;
use partnergate::config::{AdminConfig, Config};
use partnergate::store::{PartnerStatus, Rate, Store};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "admin-token-for-tests-0123456789abcdef";
const FIXTURE_KEY: &str = "pgk_test_0123456789abcdef0123456789abcdef";
const FIXTURE_PARTNER: &str = "PARTNER-0042";

// === logs ===

#[path = "common/logs.rs"]
mod logs;
use logs::logs;

// === the gateway ===

fn temp_db() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let nonce: u64 = rand::random();
    std::env::temp_dir().join(format!(
        "partnergate-admin-api-{}-{}-{nonce:016x}.db",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A stand-in partner API layer that answers every call with the GetAccount response fixture.
async fn stub_upstream() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = Bytes::from(
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/GetAccount/response.xml"
        ))
        .unwrap(),
    );
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move {
                        let mut r = http::Response::new(Full::new(body));
                        r.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("text/xml; charset=utf-8"),
                        );
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}/partner-api"), task)
}

/// A running gateway with its admin API, on its own database.
struct Gateway {
    addr: SocketAddr,
    admin: Option<SocketAddr>,
    /// The API token of the admin operator the bootstrap token made (empty without an admin
    /// listener).
    key: String,
    store: Store,
    db: PathBuf,
    shutdown: tokio::sync::watch::Sender<bool>,
    stub: tokio::task::JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.stub.abort();
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.db.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Starts the gateway (default 250 ms snapshot refresh) with `token` as its admin token.
async fn start(token: Option<&str>) -> Gateway {
    logs();
    let (upstream, stub) = stub_upstream().await;
    let db = temp_db();
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: db.display().to_string(),
        default_rate: Rate::new(10_000, 10_000).unwrap(),
        admin: AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: token.map(|t| AdminToken::new(t).unwrap()),
            ..AdminConfig::default()
        },
        ..Config::default()
    };
    config.upstream.url = Some(upstream);
    config.upstream.connect_timeout = Duration::from_secs(2);
    config.upstream.response_timeout = Duration::from_secs(3);
    config.limits.header_read_timeout = Duration::from_secs(2);
    config.limits.body_read_timeout = Duration::from_secs(2);
    let running = partnergate::app::start(config)
        .await
        .unwrap_or_else(|e| panic!("gateway start: {e}"));
    let store = Store::open(&db.display().to_string()).unwrap();
    // The shared token's one use: the first admin operator and its API token.
    let key = match running.admin_addr {
        Some(admin) => {
            let r = call(
                admin,
                "POST",
                "/admin/v1/bootstrap",
                token,
                Some(&json!({"name": "root-admin"})),
            )
            .await;
            assert_eq!(r.status, 201, "{}", r.body);
            r.json()["token"].as_str().unwrap().to_owned()
        }
        None => String::new(),
    };
    Gateway {
        addr: running.addr,
        admin: running.admin_addr,
        key,
        store,
        db,
        shutdown: running.shutdown,
        stub,
    }
}

// === a raw HTTP/1.1 client ===

#[derive(Debug)]
struct Resp {
    status: u16,
    head: String,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Sends `raw` on a fresh connection and reads the answer until the server closes it (a reset
/// after the answer, from a server that closes with part of a refused body unread, ends it too).
async fn exchange(addr: SocketAddr, raw: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(raw).await;
    parse(&read_all(&mut s, Duration::from_secs(10)).await)
}

/// Reads until end of stream or an error, within `limit`.
async fn read_all(s: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 8192];
        while let Ok(n @ 1..) = s.read(&mut chunk).await {
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .expect("answered (or closed) in time");
    buf
}

fn parse(buf: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head}"));
    Resp {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// An admin API call with `Authorization: Bearer <token>` (when given) and a JSON body.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Resp {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.map(Value::to_string).unwrap_or_default();
    if !body.is_empty() || method != "GET" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    exchange(addr, req.as_bytes()).await
}

impl Gateway {
    fn admin(&self) -> SocketAddr {
        self.admin.expect("admin API running")
    }

    /// An authorized call.
    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        call(self.admin(), method, path, Some(&self.key), body.as_ref()).await
    }

    /// An authorized call that must answer `status`; its JSON.
    async fn expect(&self, status: u16, method: &str, path: &str, body: Option<Value>) -> Value {
        let r = self.api(method, path, body.clone()).await;
        assert_eq!(
            r.status, status,
            "{method} {path} {body:?}: {} {}",
            r.status, r.body
        );
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json")
        );
        r.json()
    }

    /// A refused call: `status`, `{"error", "field"}` naming `words`, nothing written.
    async fn refused(
        &self,
        status: u16,
        method: &str,
        path: &str,
        body: Option<Value>,
        field: Option<&str>,
        words: &[&str],
    ) {
        let before = self.store.revision().unwrap();
        let audit = self.store.audit_log(None, 1000).unwrap().len();
        let v = self.expect(status, method, path, body).await;
        let error = v["error"].as_str().unwrap_or_else(|| panic!("{v}"));
        for w in words {
            assert!(error.contains(w), "{method} {path}: {w:?} in {error:?}");
        }
        assert_eq!(v["field"].as_str(), field, "{v}");
        assert_eq!(
            self.store.revision().unwrap(),
            before,
            "{method} {path} wrote"
        );
        assert_eq!(self.store.audit_log(None, 1000).unwrap().len(), audit);
    }

    /// `POST /admin/v1/partners` → (partner id, api key).
    async fn create(&self, body: Value) -> (String, String) {
        let v = self
            .expect(201, "POST", "/admin/v1/partners", Some(body))
            .await;
        (
            v["partner_id"].as_str().unwrap().to_owned(),
            v["api_key"].as_str().unwrap().to_owned(),
        )
    }

    /// Waits (bounded) until the gateway's snapshot has the database's current revision.
    async fn sync(&self) {
        let want = self.store.revision().unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let r = exchange(
                self.addr,
                format!(
                    "GET /readyz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.addr
                )
                .as_bytes(),
            )
            .await;
            let have = r
                .body
                .strip_prefix("ready: snapshot revision ")
                .and_then(|t| t.split_whitespace().next())
                .and_then(|n| n.parse::<i64>().ok());
            if have.is_some_and(|h| h >= want) {
                return;
            }
            assert!(Instant::now() < deadline, "no sync to {want}: {}", r.body);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `POST /soap/partner/v1`: GetAccount (SOAP 1.1) as `partner` with `key`.
    async fn get_account(&self, partner: &str, key: &str) -> Resp {
        let body = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/GetAccount/request.xml"
        ))
        .unwrap()
        .replace(FIXTURE_KEY, key)
        .replace(FIXTURE_PARTNER, partner);
        let req = format!(
            "POST /soap/partner/v1 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        exchange(self.addr, req.as_bytes()).await
    }
}

fn access_denied(r: &Resp) -> bool {
    r.status == 500 && r.body.contains("AccessDeniedFault")
}

/// Calls GetAccount until it is refused; how long that took after `since`.
async fn refused_within(
    gw: &Gateway,
    partner: &str,
    key: &str,
    since: Instant,
    limit: Duration,
) -> Duration {
    loop {
        let r = gw.get_account(partner, key).await;
        if access_denied(&r) {
            return since.elapsed();
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(since.elapsed() < limit, "still accepted after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn partner_body(name: &str) -> Value {
    json!({"name": name, "country": "DE", "allow": ["127.0.0.1/32"], "grants": ["GetAccount"]})
}

// === cases ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_is_off_without_a_token() {
    let gw = start(None).await;
    assert_eq!(gw.admin, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_right_token_are_refused() {
    let gw = start(Some(TOKEN)).await;
    let admin = gw.admin();
    let before = gw.store.revision().unwrap();
    let body = partner_body("Intruder");
    let wrong = format!("{}x", &TOKEN[..TOKEN.len() - 1]);
    let upper = TOKEN.to_uppercase();
    for token in [
        None,
        Some(""),
        // The shared admin token only bootstraps.
        Some(TOKEN),
        Some(wrong.as_str()),
        Some(upper.as_str()),
        Some("short"),
    ] {
        for (method, path, body) in [
            ("GET", "/admin/v1/partners", None),
            ("POST", "/admin/v1/partners", Some(&body)),
            ("GET", "/admin/v1/nowhere", None),
        ] {
            let r = call(admin, method, path, token, body).await;
            assert_eq!(r.status, 401, "{token:?} {method} {path}: {}", r.body);
            assert!(r.json()["error"].as_str().unwrap().contains("unauthorized"));
            assert_eq!(
                r.header("www-authenticate").as_deref(),
                Some("Bearer realm=\"partnergate-admin\"")
            );
        }
    }
    // Other schemes, the token in the URL, two Authorization headers.
    let raw = |auth: &str, path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n")
    };
    for req in [
        raw(
            &format!("Authorization: Basic {TOKEN}\r\n"),
            "/admin/v1/partners",
        ),
        raw(&format!("Authorization: {TOKEN}\r\n"), "/admin/v1/partners"),
        raw("", &format!("/admin/v1/partners?token={TOKEN}")),
        raw("", &format!("/admin/v1/partners?access_token={TOKEN}")),
        raw(
            &format!("Authorization: Bearer {TOKEN}\r\nAuthorization: Bearer {wrong}\r\n"),
            "/admin/v1/partners",
        ),
    ] {
        assert_eq!(exchange(admin, req.as_bytes()).await.status, 401, "{req}");
    }
    assert_eq!(gw.store.revision().unwrap(), before, "nothing written");
    // An operator's token (any case of the scheme).
    let ok = raw(
        &format!("Authorization: bearer {}\r\n", gw.key),
        "/admin/v1/partners",
    );
    let r = exchange(admin, ok.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"partners": []}));
    // The token is never logged; the requests are.
    let logged = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    assert!(logged.contains("admin request"), "{logged}");
    assert!(!logged.contains(TOKEN) && !logged.contains(&TOKEN[..16]));
    assert!(!logged.contains(&gw.key) && !logged.contains(&gw.key[..16]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_lifecycle() {
    let gw = start(Some(TOKEN)).await;
    let r = gw
        .api("POST", "/admin/v1/partners", Some(partner_body("Acme")))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let created = r.json();
    let fields: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, ["api_key", "callback_key", "partner_id"]);
    let a = created["partner_id"].as_str().unwrap().to_owned();
    let key = created["api_key"].as_str().unwrap().to_owned();
    assert_eq!(a, "PARTNER-0001");
    assert!(key.starts_with("pgk_"));
    let p = format!("/admin/v1/partners/{a}");

    // list, show
    let list = gw.expect(200, "GET", "/admin/v1/partners", None).await;
    assert_eq!(list["partners"][0]["partner_id"], a.as_str());
    let shown = gw.expect(200, "GET", &p, None).await;
    assert_eq!(shown["status"], "active");
    assert_eq!(
        strings(&shown["grants"]),
        ["accounts.get"],
        "WSDL name stored as permission"
    );
    assert!(
        !shown.to_string().contains(&key[4..20]),
        "no key material in show"
    );

    // update
    gw.expect(
        201,
        "POST",
        "/admin/v1/groups",
        Some(json!({"name": "gold"})),
    )
    .await;
    let ca = {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let k = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.self_signed(&k).unwrap().pem()
    };
    let v = gw
        .expect(
            200,
            "PATCH",
            &p,
            Some(json!({
                "name": "Acme Telecom",
                "contact": "Jane Doe <jane@acme.example>",
                "billing_rate": "0.01 EUR/min",
                "country": "AT",
                "group": "gold",
                "callback_url": "https://bss.acme.example/cb",
                "callback_ca_pem": ca,
                "feature_defaults": {"VOICEMAIL": {"MaxMessageSeconds": "120"}}
            })),
        )
        .await;
    assert_eq!(v["name"], "Acme Telecom");
    assert_eq!(v["country"], "AT");
    assert_eq!(v["group"], "gold");
    assert_eq!(v["callback_ca_pem"], ca.as_str());
    assert_eq!(
        v["feature_defaults"]["VOICEMAIL"]["MaxMessageSeconds"],
        "120"
    );
    let v = gw
        .expect(
            200,
            "PATCH",
            &p,
            Some(json!({"contact": null, "group": null})),
        )
        .await;
    assert!(v["contact"].is_null() && v["group"].is_null());
    assert_eq!(v["billing_rate"], "0.01 EUR/min", "absent fields stay");
    let snap = gw.store.load_snapshot().unwrap();
    assert_eq!(snap.partners[&a].country.as_deref(), Some("AT"));

    // bad input: 400 with the field, 404, nothing written
    let bad = |body: Value| Some(body);
    gw.refused(
        400,
        "PATCH",
        &p,
        bad(json!({"country": "Germany"})),
        Some("country"),
        &["Germany"],
    )
    .await;
    gw.refused(
        400,
        "PATCH",
        &p,
        bad(json!({"group": "nope"})),
        Some("group"),
        &["nope"],
    )
    .await;
    gw.refused(
        400,
        "PATCH",
        &p,
        bad(json!({"feature_defaults": {"NOPE": {}}})),
        Some("feature_defaults"),
        &["NOPE"],
    )
    .await;
    gw.refused(
        400,
        "PATCH",
        &p,
        bad(json!({"callback_url": "http://bss.acme.example/"})),
        Some("callback_url"),
        &["https://"],
    )
    .await;
    gw.refused(
        400,
        "PATCH",
        &p,
        bad(json!({"callback_ca_pem": "garbage"})),
        Some("callback_ca_pem"),
        &["certificate"],
    )
    .await;
    gw.refused(
        400,
        "PATCH",
        &p,
        bad(json!({"colour": "red"})),
        Some("body"),
        &["colour"],
    )
    .await;
    gw.refused(
        400,
        "PATCH",
        &p,
        bad(json!({})),
        Some("update"),
        &["nothing to change"],
    )
    .await;
    gw.refused(
        400,
        "POST",
        "/admin/v1/partners",
        bad(json!({"name": "X", "allow": ["10.1.2.3/8"], "grants": ["*"]})),
        Some("allow"),
        &["10.1.2.3/8", "host bits"],
    )
    .await;
    gw.refused(
        400,
        "POST",
        "/admin/v1/partners",
        bad(json!({"name": "X", "allow": ["127.0.0.1"], "grants": ["Nope"]})),
        Some("grants"),
        &["Nope"],
    )
    .await;
    gw.refused(
        409,
        "POST",
        "/admin/v1/partners",
        bad(json!({"id": a, "name": "X", "allow": ["127.0.0.1"], "grants": ["*"]})),
        None,
        &["already exists"],
    )
    .await;
    gw.refused(
        404,
        "GET",
        "/admin/v1/partners/PARTNER-9999",
        None,
        None,
        &["PARTNER-9999", "not found"],
    )
    .await;
    gw.refused(
        404,
        "PATCH",
        "/admin/v1/partners/PARTNER-9999",
        bad(json!({"contact": "x"})),
        None,
        &["not found"],
    )
    .await;
    // malformed JSON
    let broken = "{\"name\":";
    let raw = format!(
        "PATCH {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\
         Content-Length: {}\r\n\r\n{broken}",
        gw.key,
        broken.len()
    );
    let r = exchange(gw.admin(), raw.as_bytes()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["field"], "body");

    // status
    let v = gw
        .expect(
            200,
            "POST",
            &format!("{p}/suspend"),
            Some(json!({"reason": "unpaid"})),
        )
        .await;
    assert_eq!(v["status"], "suspended");
    gw.refused(
        409,
        "POST",
        &format!("{p}/suspend"),
        None,
        None,
        &["already suspended"],
    )
    .await;
    let v = gw
        .expect(200, "POST", &format!("{p}/reinstate"), None)
        .await;
    assert_eq!(v["status"], "active");
    let v = gw.expect(200, "POST", &format!("{p}/offboard"), None).await;
    assert_eq!(v["status"], "offboarded");
    assert!(v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["state"] == "revoked"));
    assert_eq!(strings(&v["allow"]), ["127.0.0.1/32"], "history kept");
    assert_eq!(
        gw.store.load_snapshot().unwrap().partners[&a].status,
        PartnerStatus::Offboarded
    );
    gw.refused(
        409,
        "POST",
        &format!("{p}/reinstate"),
        None,
        None,
        &["cannot be reinstated"],
    )
    .await;
    gw.refused(
        409,
        "PATCH",
        &p,
        bad(json!({"contact": "x"})),
        None,
        &["offboarded"],
    )
    .await;
    gw.refused(
        400,
        "POST",
        &format!("{p}/suspend"),
        bad(json!({"why": 1})),
        Some("body"),
        &["why"],
    )
    .await;
}

/// A callback URL naming an internal address by IP is refused when it is saved, with the
/// reason, and nothing is written (the relay checks resolved names again when it connects).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_urls_pointing_inside_are_refused_when_saved() {
    let gw = start(Some(TOKEN)).await;
    let (a, _) = gw.create(partner_body("Acme")).await;
    let p = format!("/admin/v1/partners/{a}");
    for (url, class) in [
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://127.0.0.1/cb", "loopback"),
        ("https://10.20.30.40:8443/cb", "private"),
        ("https://[::1]/cb", "loopback"),
        ("https://[::ffff:127.0.0.1]/cb", "loopback"),
    ] {
        gw.refused(
            400,
            "PATCH",
            &p,
            Some(json!({ "callback_url": url })),
            Some("callback_url"),
            &[class, "callback.allowed_networks"],
        )
        .await;
    }
    // A public name is saved (it is resolved, and judged, when the relay connects).
    let v = gw
        .expect(
            200,
            "PATCH",
            &p,
            Some(json!({"callback_url": "https://bss.acme.example/cb"})),
        )
        .await;
    assert_eq!(v["callback_url"], "https://bss.acme.example/cb");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_and_revocation_are_in_force_within_a_second() {
    let gw = start(Some(TOKEN)).await;
    let (a, k1) = gw.create(partner_body("Acme")).await;
    let p = format!("/admin/v1/partners/{a}");
    gw.sync().await;
    let r = gw.get_account(&a, &k1).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("GetAccountResponse"), "{}", r.body);

    // rotate with an overlap: both keys work
    let v = gw
        .expect(
            200,
            "POST",
            &format!("{p}/keys/rotate"),
            Some(json!({"kind": "partner", "overlap": "1h"})),
        )
        .await;
    let k2 = v["key"].as_str().unwrap().to_owned();
    let k1_id = v["expiring"][0]["id"].as_i64().unwrap();
    assert_eq!(v["expiring"][0]["state"], "expiring");
    gw.sync().await;
    assert_eq!(gw.get_account(&a, &k1).await.status, 200);
    assert_eq!(gw.get_account(&a, &k2).await.status, 200);

    // key list: metadata only
    let keys = gw.expect(200, "GET", &format!("{p}/keys"), None).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 3);
    let text = keys.to_string();
    assert!(
        !text.contains(&k1[4..20]) && !text.contains(&k2[4..20]),
        "{text}"
    );

    // revoke the old key: refused by the running gateway within a second
    let revoked_at = Instant::now();
    let v = gw
        .expect(
            200,
            "POST",
            &format!("{p}/keys/revoke"),
            Some(json!({"id": k1_id})),
        )
        .await;
    assert_eq!(v["revoked"][0]["id"], k1_id);
    let took = refused_within(&gw, &a, &k1, revoked_at, Duration::from_secs(1)).await;
    eprintln!("revoked key refused after {took:?}");
    assert_eq!(
        gw.get_account(&a, &k2).await.status,
        200,
        "the new key still works"
    );

    // rotate with --overlap 0: the previous key is refused within a second
    let rotated_at = Instant::now();
    let v = gw
        .expect(
            200,
            "POST",
            &format!("{p}/keys/rotate"),
            Some(json!({"overlap": "0"})),
        )
        .await;
    let k3 = v["key"].as_str().unwrap().to_owned();
    refused_within(&gw, &a, &k2, rotated_at, Duration::from_secs(1)).await;
    gw.sync().await;
    assert_eq!(gw.get_account(&a, &k3).await.status, 200);

    // suspension is in force within a second too, and reinstatement
    let at = Instant::now();
    gw.expect(200, "POST", &format!("{p}/suspend"), None).await;
    refused_within(&gw, &a, &k3, at, Duration::from_secs(1)).await;
    gw.expect(200, "POST", &format!("{p}/reinstate"), None)
        .await;
    gw.sync().await;
    assert_eq!(gw.get_account(&a, &k3).await.status, 200);

    // every partner key revoked
    let at = Instant::now();
    let v = gw
        .expect(
            200,
            "POST",
            &format!("{p}/keys/revoke"),
            Some(json!({"kind": "partner"})),
        )
        .await;
    // k3, and k2 (expired by the rotation with overlap 0, not yet revoked)
    assert_eq!(v["revoked"].as_array().unwrap().len(), 2);
    refused_within(&gw, &a, &k3, at, Duration::from_secs(1)).await;

    // bad input
    let rot = format!("{p}/keys/rotate");
    let rev = format!("{p}/keys/revoke");
    gw.refused(
        400,
        "POST",
        &rot,
        Some(json!({"overlap": "2x"})),
        Some("overlap"),
        &["2x"],
    )
    .await;
    gw.refused(
        400,
        "POST",
        &rot,
        Some(json!({"kind": "admin"})),
        Some("kind"),
        &["admin"],
    )
    .await;
    gw.refused(400, "POST", &rev, Some(json!({})), Some("kind"), &["kind"])
        .await;
    gw.refused(
        400,
        "POST",
        &rev,
        Some(json!({"kind": "partner", "id": 1})),
        Some("kind"),
        &["either"],
    )
    .await;
    gw.refused(
        409,
        "POST",
        &rev,
        Some(json!({"kind": "partner"})),
        None,
        &["no unrevoked"],
    )
    .await;
    gw.refused(
        404,
        "POST",
        &rev,
        Some(json!({"id": 424242})),
        None,
        &["424242"],
    )
    .await;
    gw.refused(
        404,
        "POST",
        "/admin/v1/partners/PARTNER-9999/keys/rotate",
        None,
        None,
        &["not found"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlist_grants_groups_and_throttle() {
    let gw = start(Some(TOKEN)).await;
    let (a, _) = gw.create(partner_body("Acme")).await;
    let p = format!("/admin/v1/partners/{a}");
    let allow = format!("{p}/allowlist");
    let grants = format!("{p}/grants");

    // allowlist
    let v = gw
        .expect(200, "POST", &allow, Some(json!({"cidr": "10.0.0.0/8"})))
        .await;
    assert_eq!(strings(&v["allow"]), ["127.0.0.1/32", "10.0.0.0/8"]);
    gw.expect(200, "POST", &allow, Some(json!({"cidr": "2001:db8::1"})))
        .await;
    let v = gw.expect(200, "GET", &allow, None).await;
    assert_eq!(
        strings(&v["allow"]),
        ["127.0.0.1/32", "10.0.0.0/8", "2001:db8::1/128"]
    );
    gw.refused(
        400,
        "POST",
        &allow,
        Some(json!({"cidr": "10.1.2.3/8"})),
        Some("cidr"),
        &["host bits"],
    )
    .await;
    gw.refused(
        400,
        "POST",
        &allow,
        Some(json!({"cidr": "nope"})),
        Some("cidr"),
        &["nope"],
    )
    .await;
    gw.refused(
        400,
        "POST",
        &allow,
        Some(json!({})),
        Some("body"),
        &["cidr"],
    )
    .await;
    gw.refused(
        409,
        "POST",
        &allow,
        Some(json!({"cidr": "10.0.0.0/8"})),
        None,
        &["already"],
    )
    .await;
    let remove = format!("{allow}/remove");
    gw.refused(
        404,
        "POST",
        &remove,
        Some(json!({"cidr": "172.16.0.0/12"})),
        None,
        &["not found"],
    )
    .await;
    let v = gw
        .expect(200, "POST", &remove, Some(json!({"cidr": "10.0.0.0/8"})))
        .await;
    assert_eq!(strings(&v["allow"]), ["127.0.0.1/32", "2001:db8::1/128"]);

    // grants
    let v = gw
        .expect(
            200,
            "POST",
            &grants,
            Some(json!({"permission": "CreateAccount"})),
        )
        .await;
    assert_eq!(strings(&v["grants"]), ["accounts.get", "accounts.create"]);
    gw.expect(
        200,
        "POST",
        &grants,
        Some(json!({"permission": "devices.*"})),
    )
    .await;
    gw.refused(
        400,
        "POST",
        &grants,
        Some(json!({"permission": "Nope"})),
        Some("permission"),
        &["Nope"],
    )
    .await;
    gw.refused(
        409,
        "POST",
        &grants,
        Some(json!({"permission": "accounts.create"})),
        None,
        &["already granted"],
    )
    .await;
    let revoke = format!("{grants}/revoke");
    gw.refused(
        404,
        "POST",
        &revoke,
        Some(json!({"permission": "*"})),
        None,
        &["not found"],
    )
    .await;
    let v = gw
        .expect(
            200,
            "POST",
            &revoke,
            Some(json!({"permission": "CreateAccount"})),
        )
        .await;
    assert_eq!(strings(&v["grants"]), ["accounts.get", "devices.*"]);
    assert!(gw.store.load_snapshot().unwrap().partners[&a].permits("devices.add"));

    // groups
    let v = gw
        .expect(
            201,
            "POST",
            "/admin/v1/groups",
            Some(json!({"name": "gold", "rate": {"per_second": 5, "burst": 10}})),
        )
        .await;
    assert_eq!(v["rate"], json!({"per_second": 5, "burst": 10}));
    gw.refused(
        409,
        "POST",
        "/admin/v1/groups",
        Some(json!({"name": "gold"})),
        None,
        &["already exists"],
    )
    .await;
    gw.refused(
        400,
        "POST",
        "/admin/v1/groups",
        Some(json!({"name": "a b"})),
        Some("name"),
        &["a b"],
    )
    .await;
    gw.refused(
        400,
        "POST",
        "/admin/v1/groups",
        Some(json!({"name": "x", "rate": {"per_second": 0, "burst": 1}})),
        Some("rate"),
        &["per_second"],
    )
    .await;
    let v = gw
        .expect(
            200,
            "PUT",
            &format!("{p}/group"),
            Some(json!({"group": "gold"})),
        )
        .await;
    assert_eq!(v["group"], "gold");
    gw.refused(
        400,
        "PUT",
        &format!("{p}/group"),
        Some(json!({"group": "nope"})),
        Some("group"),
        &["nope"],
    )
    .await;
    let v = gw
        .expect(
            200,
            "PATCH",
            "/admin/v1/groups/gold",
            Some(json!({"name": "platinum", "aggregate": {"per_second": 50, "burst": 100}})),
        )
        .await;
    assert_eq!(v["name"], "platinum");
    assert_eq!(strings(&v["members"]), [a.as_str()]);
    let v = gw.expect(200, "GET", "/admin/v1/groups", None).await;
    assert_eq!(v["groups"][0]["name"], "platinum");
    gw.refused(
        404,
        "GET",
        "/admin/v1/groups/gold",
        None,
        None,
        &["gold", "not found"],
    )
    .await;
    let snap = gw.store.load_snapshot().unwrap();
    assert_eq!(snap.partners[&a].group.as_deref(), Some("platinum"));
    assert_eq!(snap.groups["platinum"].aggregate, Rate::new(50, 100));
    let v = gw
        .expect(
            200,
            "PUT",
            &format!("{p}/group"),
            Some(json!({"group": null})),
        )
        .await;
    assert!(v["group"].is_null());

    // throttle
    let t = format!("{p}/throttle");
    let v = gw
        .expect(200, "PUT", &t, Some(json!({"per_second": 7, "burst": 14})))
        .await;
    assert_eq!(v["rate"], json!({"per_second": 7, "burst": 14}));
    assert_eq!(
        gw.store.load_snapshot().unwrap().partners[&a].rate,
        Rate::new(7, 14)
    );
    gw.refused(
        400,
        "PUT",
        &t,
        Some(json!({"per_second": 7})),
        Some("body"),
        &["burst"],
    )
    .await;
    let v = gw.expect(200, "DELETE", &t, None).await;
    assert!(v["rate"].is_null());

    // the callback rate: its own path, the same body, apart from the rate of the calls
    let ct = format!("{p}/callback-throttle");
    let v = gw
        .expect(200, "PUT", &ct, Some(json!({"per_second": 2, "burst": 5})))
        .await;
    assert_eq!(v["callback_rate"], json!({"per_second": 2, "burst": 5}));
    assert!(v["rate"].is_null(), "the rate of the calls is untouched");
    let entry = &gw.store.load_snapshot().unwrap().partners[&a];
    assert_eq!((entry.callback_rate, entry.rate), (Rate::new(2, 5), None));
    let audit = gw.store.audit_log(Some(&a), 1).unwrap();
    assert_eq!(audit[0].action, "callback-throttle.set");
    gw.refused(
        400,
        "PUT",
        &ct,
        Some(json!({"per_second": 0, "burst": 5})),
        Some("callback_rate"),
        &["per_second"],
    )
    .await;
    let v = gw.expect(200, "DELETE", &ct, None).await;
    assert!(v["callback_rate"].is_null());
    assert_eq!(
        gw.store.load_snapshot().unwrap().partners[&a].callback_rate,
        None
    );
    let gt = "/admin/v1/groups/platinum/throttle";
    let v = gw
        .expect(
            200,
            "PUT",
            gt,
            Some(json!({"rate": {"per_second": 3, "burst": 6}, "aggregate": null})),
        )
        .await;
    assert_eq!(v["rate"], json!({"per_second": 3, "burst": 6}));
    assert!(v["aggregate"].is_null());
    let v = gw.expect(200, "DELETE", gt, None).await;
    assert!(v["rate"].is_null() && v["aggregate"].is_null());
    gw.refused(
        400,
        "PUT",
        gt,
        Some(json!({"name": "x"})),
        Some("body"),
        &["name"],
    )
    .await;
    gw.refused(
        404,
        "PUT",
        "/admin/v1/groups/nope/throttle",
        Some(json!({"rate": null})),
        None,
        &["not found"],
    )
    .await;

    // routes and methods
    gw.refused(404, "GET", "/admin/v1/nowhere", None, None, &["no route"])
        .await;
    gw.refused(404, "GET", "/admin/v2/partners", None, None, &["no route"])
        .await;
    let r = gw.api("DELETE", &p, None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow").as_deref(), Some("GET, PATCH"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_name_the_api_and_its_peer() {
    let gw = start(Some(TOKEN)).await;
    let (a, key) = gw.create(partner_body("Acme")).await;
    let p = format!("/admin/v1/partners/{a}");
    gw.expect(200, "PATCH", &p, Some(json!({"contact": "Jane"})))
        .await;
    gw.expect(
        200,
        "POST",
        &format!("{p}/keys/rotate"),
        Some(json!({"overlap": "0"})),
    )
    .await;
    gw.expect(
        200,
        "POST",
        &format!("{p}/suspend"),
        Some(json!({"reason": "audit test"})),
    )
    .await;
    let v = gw
        .expect(
            200,
            "GET",
            &format!("/admin/v1/audit?target={a}&limit=10"),
            None,
        )
        .await;
    let entries = v["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "partner.suspend",
            "key.rotate",
            "partner.update",
            "partner.create"
        ]
    );
    for e in entries {
        let actor = e["actor"].as_str().unwrap();
        let peer: SocketAddr = actor
            .strip_prefix("op:root-admin/api:")
            .unwrap_or_else(|| panic!("{actor}"))
            .parse()
            .unwrap();
        assert!(peer.ip().is_loopback(), "{actor}");
        assert_eq!(e["target"], a.as_str());
        assert!(e["at"].as_i64().unwrap() > 1_700_000_000);
    }
    assert_eq!(entries[0]["detail"]["reason"], "audit test");
    assert!(
        !v.to_string().contains(&key[4..20]),
        "no key in the audit log"
    );
    let v = gw
        .expect(200, "GET", "/admin/v1/audit?target=group%3Anone", None)
        .await;
    assert!(v["entries"].as_array().unwrap().is_empty());
    gw.refused(
        400,
        "GET",
        "/admin/v1/audit?limit=0",
        None,
        Some("limit"),
        &["limit"],
    )
    .await;
    gw.refused(
        400,
        "GET",
        "/admin/v1/audit?who=me",
        None,
        Some("query"),
        &["who"],
    )
    .await;
    // Decoded as a form: `%XX` escapes, in names too; what does not decode to UTF-8 is
    // refused, not replaced.
    let v = gw
        .expect(
            200,
            "GET",
            &format!("/admin/v1/audit?%74arget={}&limit=1", a.replace('-', "%2D")),
            None,
        )
        .await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 1);
    assert_eq!(v["entries"][0]["target"], a.as_str());
    gw.refused(
        400,
        "GET",
        "/admin/v1/audit?target=group%3A%C3",
        None,
        Some("query"),
        &["UTF-8"],
    )
    .await;
}

#[tokio::test]
async fn nodes_lists_the_running_node() {
    let gw = start(Some(TOKEN)).await;
    // The node's first heartbeat is written at start; allow a busy machine a few more (and
    // the heartbeat after the bootstrap's write, which moved the revision).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let revision = gw.store.revision().unwrap();
    let v = loop {
        let v = gw.expect(200, "GET", "/admin/v1/nodes", None).await;
        if v["nodes"][0]["revision"] == revision {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "no node: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(v["heartbeat_seconds"], 1);
    assert_eq!(v["gone_after_seconds"], 5);
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{v}");
    assert_eq!(nodes[0]["listen"], gw.addr.to_string());
    assert_eq!(nodes[0]["state"], "up");
    assert_eq!(nodes[0]["changes"], "poll");
    assert_eq!(nodes[0]["revision"], gw.store.revision().unwrap());
    gw.refused(405, "POST", "/admin/v1/nodes", None, None, &[])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_bounded_and_slow_clients_time_out() {
    let gw = start(Some(TOKEN)).await;
    let admin = gw.admin();
    let before = gw.store.revision().unwrap();

    // Declared too large (64 KiB + 1): refused before the body is read.
    let req = format!(
        "POST /admin/v1/partners HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Authorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        gw.key,
        64 * 1024 + 1
    );
    let r = exchange(admin, req.as_bytes()).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(
        r.json()["error"].as_str().unwrap().contains("65536"),
        "{}",
        r.body
    );
    // Chunked (no length declared): refused once 64 KiB are exceeded while reading.
    let chunk = "y".repeat(16 * 1024);
    let mut req = format!(
        "POST /admin/v1/partners HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Authorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        gw.key
    );
    for _ in 0..4 {
        req.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    req.push_str("1\r\nz\r\n0\r\n\r\n");
    assert_eq!(exchange(admin, req.as_bytes()).await.status, 413);

    // A body that never arrives: 408 after limits.body_read_timeout_ms (2 s here).
    let started = Instant::now();
    let req = format!(
        "POST /admin/v1/partners HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 100\r\n\r\n{{\"name\"",
        gw.key
    );
    let mut s = TcpStream::connect(admin).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let buf = read_all(&mut s, Duration::from_secs(8)).await;
    assert_eq!(parse(&buf).status, 408);
    assert!(started.elapsed() >= Duration::from_millis(1900));

    // Headers that never end: the connection is closed (header timeout, 2 s).
    let started = Instant::now();
    let mut s = TcpStream::connect(admin).await.unwrap();
    s.write_all(b"GET /admin/v1/partners HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let buf = read_all(&mut s, Duration::from_secs(8)).await;
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(
        buf.is_empty() || String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    assert_eq!(gw.store.revision().unwrap(), before, "nothing written");
}
