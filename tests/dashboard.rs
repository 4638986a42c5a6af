//! Black-box tests of the operators' dashboard (`/ui/` on the admin listener): the gateway
//! started in process (`partnergate::app::start`) on a fresh SQLite file with an admin token and
//! the in-process partner API layer.
//!
//! - Security, over plain HTTP: login required on every page and action, CSRF, escaping,
//!   session expiry, the token never in a URL or a log, security headers.
//! - The browser test: headless Chromium driven through chromedriver (WebDriver, `fantoccini`):
//!   log in, create a partner, copy its key from the page, grant an operation, call the gateway
//!   with the key, see the usage page's p50/p95/p99 latency chart and numbers, revoke the
//!   key, see the next call refused within a second; a screenshot of
//!   each main page goes to `target/dashboard-screenshots/`. Chromium and chromedriver are
//!   installed by `.ci/setup`; missing, they fail the test (never a skip).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use std::time::{Duration, Instant};

use partnergate::admin::{Actor, Admin, AdminToken, CreatePartner, Request, Rules};
use partnergate::config::{AdminConfig, Config};
use partnergate::password::Password;
use partnergate::store::{PartnerStatus, Rate, Role, Store, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "dashboard-admin-token-0123456789abcdef";
/// The admin operator every test logs in as (made through the store at start).
const OPERATOR: &str = "root";
const PASSWORD: &str = "dashboard-password-0123456789";

// === logs ===

#[path = "common/logs.rs"]
mod logs;
use logs::logs;

// === the gateway ===

fn temp_path(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let nonce: u64 = rand::random();
    std::env::temp_dir().join(format!(
        "partnergate-dashboard-{tag}-{}-{}-{nonce:016x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

struct Gateway {
    addr: SocketAddr,
    admin: SocketAddr,
    store: Store,
    /// The SQLite file to remove (`None`: a database the test owns, shared by several nodes).
    db: Option<PathBuf>,
    shutdown: tokio::sync::watch::Sender<bool>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for suffix in ["", "-wal", "-shm"] {
            let Some(db) = &self.db else { break };
            let mut p = db.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Starts the gateway with the in-process partner API layer, an admin token, dashboard
/// sessions of `lifetime`, and statistics flushed every 200 ms.
async fn start(lifetime: Duration, cookie_secure: bool) -> Gateway {
    let db = temp_path("db").with_extension("db");
    let mut gw = start_on(&db.display().to_string(), lifetime, cookie_secure).await;
    gw.db = Some(db);
    gw
}

/// [`start`] on the database at `url` (a node of several on one PostgreSQL database).
async fn start_on(url: &str, lifetime: Duration, cookie_secure: bool) -> Gateway {
    logs();
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: url.to_owned(),
        default_rate: Rate::new(10_000, 10_000).unwrap(),
        stats_flush_interval: Duration::from_millis(200),
        admin: AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: Some(AdminToken::new(TOKEN).unwrap()),
            session_lifetime: lifetime,
            cookie_secure,
            ..AdminConfig::default()
        },
        ..Config::default()
    };
    config.limits.header_read_timeout = Duration::from_secs(5);
    config.limits.body_read_timeout = Duration::from_secs(5);
    let running = partnergate::app::start(config)
        .await
        .unwrap_or_else(|e| panic!("gateway start: {e}"));
    let store = Store::open(url).unwrap();
    // The operator to log in as (a second node on the same database finds it there already).
    let hash = partnergate::password::hash(&Password::new(PASSWORD.into())).unwrap();
    match store.create_operator("test-setup", OPERATOR, Role::Admin, &hash) {
        Ok(_) | Err(StoreError::Conflict(_)) => {}
        Err(e) => panic!("operator: {e}"),
    }
    Gateway {
        addr: running.addr,
        admin: running.admin_addr.expect("admin listener"),
        store,
        db: None,
        shutdown: running.shutdown,
        done: Some(running.done),
    }
}

impl Gateway {
    /// Shuts the node down and waits until it has stopped (bounded).
    async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(done) = self.done.take() {
            tokio::time::timeout(Duration::from_secs(10), done)
                .await
                .expect("the node stops in time")
                .expect("server task");
        }
    }

    /// Onboards a partner through the admin service (as the CLI does): its id.
    fn onboard(&self, name: &str) -> String {
        let reply = Admin::new(self.store.clone())
            .handle(
                Request::CreatePartner(CreatePartner {
                    name: name.into(),
                    allow: vec!["127.0.0.1".into()],
                    grants: vec!["accounts.*".into()],
                    ..CreatePartner::default()
                }),
                &Rules::default(),
                &Actor::cli(),
            )
            .unwrap();
        serde_json::to_value(&reply.view).unwrap()["partner_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn status(&self, partner: &str) -> PartnerStatus {
        self.store.partner_detail(partner).unwrap().partner.status
    }
}

// === a raw HTTP/1.1 client with a cookie jar ===

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of the first `name="csrf"` hidden field.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.body));
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

/// Undoes HTML escaping (to compare a page with plain text).
fn unescape(html: &str) -> String {
    html.replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn send(addr: SocketAddr, raw: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("answered in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A browser stand-in: keeps cookies, sends forms.
struct Client {
    addr: SocketAddr,
    cookies: BTreeMap<String, String>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            cookies: BTreeMap::new(),
        }
    }

    async fn request(&mut self, method: &str, path: &str, extra: &str, body: Option<&str>) -> Resp {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{extra}",
            self.addr
        );
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req.push_str(&format!("Cookie: {}\r\n", jar.join("; ")));
        }
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body.unwrap_or(""));
        let r = send(self.addr, req.as_bytes()).await;
        for c in r.all("set-cookie") {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        r
    }

    async fn get(&mut self, path: &str) -> Resp {
        self.request("GET", path, "", None).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.request("POST", path, "", Some(&form_encode(form)))
            .await
    }

    /// Logs in through the form; the first page's CSRF token.
    async fn login(&mut self) -> String {
        let page = self.get("/ui/login").await;
        assert_eq!(page.status, 200);
        let r = self
            .post(
                "/ui/login",
                &[
                    ("csrf", &page.csrf()),
                    ("name", OPERATOR),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert_eq!(r.header("location"), Some("/ui/partners"));
        let partners = self.get("/ui/partners").await;
        assert_eq!(partners.status, 200);
        partners.csrf()
    }
}

// === security ===

#[tokio::test]
async fn every_page_and_action_needs_a_login() {
    let gw = start(Duration::from_secs(3600), false).await;
    let p = gw.onboard("Acme");
    let enrollment = file_enrollment(&gw, 9, "Acme", None);
    let mut c = Client::new(gw.admin);
    for page in [
        "/ui".to_owned(),
        "/ui/partners".to_owned(),
        "/ui/partners/new".to_owned(),
        format!("/ui/partners/{p}"),
        "/ui/reveal".to_owned(),
        "/ui/usage".to_owned(),
        "/ui/groups".to_owned(),
        "/ui/groups/gold".to_owned(),
        "/ui/audit".to_owned(),
        "/ui/nodes".to_owned(),
        "/ui/enrollments".to_owned(),
        format!("/ui/enrollments/{enrollment}"),
        format!("/ui/enrollments/{enrollment}/approve"),
        "/ui/nothing/here".to_owned(),
    ] {
        let r = c.get(&page).await;
        assert!(
            r.status == 303
                && (r.header("location") == Some("/ui/login")
                    || (page == "/ui" && r.header("location") == Some("/ui/partners"))),
            "{page}: {} {:?}",
            r.status,
            r.header("location")
        );
        assert!(!r.body.contains(&p), "{page} leaks data");
    }
    // The admin API's bearer token is not a dashboard credential.
    let r = c
        .request(
            "GET",
            "/ui/partners",
            &format!("Authorization: Bearer {TOKEN}\r\n"),
            None,
        )
        .await;
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/login")));

    let before = gw.store.revision().unwrap();
    let audit = gw.store.audit_log(None, 1000).unwrap().len();
    for (action, form) in [
        (
            "/ui/partners".to_owned(),
            vec![("name", "X"), ("allow", "127.0.0.1"), ("grant", "*")],
        ),
        (format!("/ui/partners/{p}/suspend"), vec![]),
        (
            format!("/ui/partners/{p}/offboard"),
            vec![("confirm", "yes")],
        ),
        (
            format!("/ui/partners/{p}/keys/rotate"),
            vec![("kind", "partner")],
        ),
        (
            format!("/ui/partners/{p}/keys/revoke"),
            vec![("kind", "partner")],
        ),
        (
            format!("/ui/partners/{p}/allowlist"),
            vec![("cidr", "10.0.0.0/8")],
        ),
        (
            format!("/ui/partners/{p}/allowlist/remove"),
            vec![("cidr", "127.0.0.1/32")],
        ),
        (
            format!("/ui/partners/{p}/grants/add"),
            vec![("permission", "*")],
        ),
        (
            format!("/ui/partners/{p}/grants/revoke"),
            vec![("permission", "accounts.*")],
        ),
        (format!("/ui/partners/{p}/update"), vec![("name", "Evil")]),
        (format!("/ui/partners/{p}/group"), vec![("group", "")]),
        (
            format!("/ui/partners/{p}/throttle"),
            vec![("per_second", "1"), ("burst", "1")],
        ),
        (format!("/ui/partners/{p}/throttle/clear"), vec![]),
        (
            format!("/ui/partners/{p}/callback-throttle"),
            vec![("per_second", "1"), ("burst", "1")],
        ),
        (format!("/ui/partners/{p}/callback-throttle/clear"), vec![]),
        ("/ui/groups".to_owned(), vec![("name", "gold")]),
        (
            "/ui/groups/gold".to_owned(),
            vec![("rate_ps", "1"), ("rate_burst", "1")],
        ),
        ("/ui/groups/gold/rename".to_owned(), vec![("name", "x")]),
        (
            format!("/ui/enrollments/{enrollment}/approve"),
            vec![("name", "X"), ("allow", "127.0.0.1"), ("grant", "*")],
        ),
        (
            format!("/ui/enrollments/{enrollment}/reject"),
            vec![("reason", "no")],
        ),
        ("/ui/logout".to_owned(), vec![]),
    ] {
        // Even with a (guessed) CSRF value: no session, no action.
        let mut form = form.clone();
        form.push(("csrf", "0000"));
        let r = c.post(&action, &form).await;
        assert_eq!(r.status, 401, "{action}: {}", r.body);
        assert!(r.body.contains("nothing was changed"), "{action}");
    }
    assert_eq!(gw.store.revision().unwrap(), before, "nothing written");
    assert_eq!(gw.store.audit_log(None, 1000).unwrap().len(), audit);
    assert_eq!(gw.status(&p), PartnerStatus::Active);
    assert_eq!(
        gw.store.enrollment(&enrollment).unwrap().state,
        partnergate::store::EnrollmentState::Pending
    );
    // A forged session cookie is no session either.
    c.cookies.insert("pg_session".into(), "f".repeat(64));
    let r = c.get("/ui/partners").await;
    assert_eq!(r.status, 303);
}

/// An empty login cookie and an empty form field are equal strings: the double-submit check
/// must not take that for a match (a page that can set cookies on the admin host could log a
/// browser in with the operator's token otherwise, or a script could skip the form).
#[tokio::test]
async fn an_empty_login_csrf_cookie_and_field_are_refused() {
    let gw = start(Duration::from_secs(3600), false).await;
    let mut c = Client::new(gw.admin);
    c.cookies.insert("pg_login".into(), String::new());
    let r = c
        .post(
            "/ui/login",
            &[("csrf", ""), ("name", OPERATOR), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        unescape(&r.body).contains("The login form had expired or was not sent from this page"),
        "{}",
        r.body
    );
    assert!(!c.cookies.contains_key("pg_session"), "logged in");
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let gw = start(Duration::from_secs(3600), false).await;
    let p = gw.onboard("Acme");
    let mut c = Client::new(gw.admin);

    // The login form itself: without its double-submit cookie, or with another value.
    let page = c.get("/ui/login").await;
    let csrf = page.csrf();
    let mut stranger = Client::new(gw.admin);
    let r = stranger
        .post(
            "/ui/login",
            &[("csrf", &csrf), ("name", OPERATOR), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(!stranger.cookies.contains_key("pg_session"));
    let r = c
        .post(
            "/ui/login",
            &[
                ("csrf", "forged"),
                ("name", OPERATOR),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(!c.cookies.contains_key("pg_session"));

    let csrf = c.login().await;
    let path = format!("/ui/partners/{p}/suspend");
    let before = gw.store.revision().unwrap();
    for form in [
        vec![("reason", "test")],
        vec![("reason", "test"), ("csrf", "")],
        vec![("reason", "test"), ("csrf", "f00d")],
    ] {
        let r = c.post(&path, &form).await;
        assert_eq!(r.status, 403, "{form:?}");
        assert!(r.body.contains("nothing was changed"), "{}", r.body);
    }
    // Another session's token is not this session's.
    let mut other = Client::new(gw.admin);
    let other_csrf = other.login().await;
    assert_ne!(other_csrf, csrf);
    let r = c
        .post(&path, &[("reason", "test"), ("csrf", &other_csrf)])
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(gw.store.revision().unwrap(), before, "nothing written");
    assert_eq!(gw.status(&p), PartnerStatus::Active);

    // With it: done, and audited as the dashboard's operator.
    let r = c
        .post(&path, &[("reason", "unpaid invoice"), ("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location").unwrap(),
        format!("/ui/partners/{p}#lifecycle")
    );
    assert_eq!(gw.status(&p), PartnerStatus::Suspended);
    let last = &gw.store.audit_log(Some(&p), 1).unwrap()[0];
    assert_eq!(last.action, "partner.suspend");
    assert!(
        last.actor.starts_with("op:root/ui:127.0.0.1:"),
        "{}",
        last.actor
    );
    let page = c.get(&format!("/ui/partners/{p}")).await;
    assert!(page.body.contains(&format!("Partner {p} suspended")));
    // The message is shown once.
    let page = c.get(&format!("/ui/partners/{p}")).await;
    assert!(!page.body.contains(&format!("Partner {p} suspended")));

    // Logging out ends the session; its token is worth nothing after.
    let r = c.post("/ui/logout", &[("csrf", &csrf)]).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/login")));
    let r = c
        .post(&format!("/ui/partners/{p}/reinstate"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(gw.status(&p), PartnerStatus::Suspended);
}

#[tokio::test]
async fn the_nodes_page_lists_the_running_node() {
    let gw = start(Duration::from_secs(3600), false).await;
    let mut c = Client::new(gw.admin);
    c.login().await;
    // The node's first heartbeat is written at start; allow a busy machine a few more.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let page = loop {
        let page = c.get("/ui/nodes").await;
        assert_eq!(page.status, 200, "{}", page.body);
        if page.body.contains(&gw.addr.to_string()) {
            break page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node {} not listed: {}",
            gw.addr,
            page.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(page.body.contains("aria-current=\"page\">Nodes</a>"));
    assert!(page.body.contains("<span class=\"badge up\">up</span>"));
    assert!(page.body.contains("<td>poll</td>"), "SQLite: polled");
    assert!(page.body.contains(env!("CARGO_PKG_VERSION")));
    assert!(page.body.contains("1 nodes, 1 up"));
}

#[tokio::test]
async fn partner_names_render_as_text() {
    let gw = start(Duration::from_secs(3600), false).await;
    let mut c = Client::new(gw.admin);
    let csrf = c.login().await;
    let evil = "<script>alert(1)</script>";
    let r = c
        .post(
            "/ui/partners",
            &[
                ("csrf", &csrf),
                ("name", evil),
                ("allow", "127.0.0.1"),
                ("grant", "accounts.get"),
                ("grant_other", ""),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let reveal = c.get("/ui/reveal").await;
    let id = gw.store.list_partners().unwrap()[0].partner_id.clone();
    // askama writes numeric character references.
    let escaped = "&#60;script&#62;alert(1)&#60;/script&#62;";
    for page in [
        reveal,
        c.get("/ui/partners").await,
        c.get(&format!("/ui/partners/{id}")).await,
        c.get("/ui/usage").await,
        c.get("/ui/audit").await,
    ] {
        assert_eq!(page.status, 200);
        assert!(!page.body.contains(evil), "{}", page.body);
        assert!(!page.body.contains("<script>"), "inline script");
    }
    let page = c.get(&format!("/ui/partners/{id}")).await;
    assert!(page.body.contains(escaped));
    assert!(c.get("/ui/partners").await.body.contains(escaped));
    // A search for it is echoed as text too.
    let r = c
        .get("/ui/partners?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await;
    assert!(!r.body.contains(evil) && r.body.contains(escaped));
}

#[tokio::test]
async fn sessions_expire() {
    let gw = start(Duration::from_secs(1), false).await;
    let p = gw.onboard("Acme");
    let mut c = Client::new(gw.admin);
    let csrf = c.login().await;
    let page = c.get("/ui/login").await;
    assert_eq!(page.status, 303, "a live session skips the login form");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = c.get("/ui/partners").await;
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/login")));
    let r = c
        .post(&format!("/ui/partners/{p}/suspend"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(gw.status(&p), PartnerStatus::Active);
    // The cookie says so too.
    let mut fresh = Client::new(gw.admin);
    let page = fresh.get("/ui/login").await;
    let r = fresh
        .post(
            "/ui/login",
            &[
                ("csrf", &page.csrf()),
                ("name", OPERATOR),
                ("password", PASSWORD),
            ],
        )
        .await;
    let cookie = r
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("pg_session="))
        .unwrap()
        .to_owned();
    assert!(cookie.split("; ").any(|a| a == "Max-Age=1"), "{cookie}");
}

#[tokio::test]
async fn the_token_never_appears_in_a_url_or_a_log() {
    let gw = start(Duration::from_secs(3600), false).await;
    let mut c = Client::new(gw.admin);
    // A token in the query string is refused unread, even with a valid form.
    let page = c.get("/ui/login").await;
    let r = c
        .post(
            &format!("/ui/login?token={TOKEN}"),
            &[
                ("csrf", &page.csrf()),
                ("name", OPERATOR),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("never accepted in a URL"));
    assert!(!c.cookies.contains_key("pg_session"));
    // Nor does a GET log in.
    let r = c.get(&format!("/ui/login?token={TOKEN}")).await;
    assert_eq!(r.status, 200);
    assert!(!c.cookies.contains_key("pg_session"));
    // A wrong token: refused, after a short delay.
    let page = c.get("/ui/login").await;
    let started = Instant::now();
    let r = c
        .post(
            "/ui/login",
            &[
                ("csrf", &page.csrf()),
                ("name", OPERATOR),
                ("password", "not-the-password-0123456789"),
            ],
        )
        .await;
    assert_eq!(r.status, 401);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(r.body.contains("do not match an enabled operator"));

    let csrf = c.login().await;
    // Every page the login flow and the dashboard answer: no token, anywhere.
    let p = gw.onboard("Acme");
    for path in [
        "/ui/partners".to_owned(),
        format!("/ui/partners/{p}"),
        "/ui/audit".to_owned(),
    ] {
        let r = c.get(&path).await;
        assert!(!r.body.contains(PASSWORD), "{path}");
        assert!(
            r.headers.iter().all(|(_, v)| !v.contains(PASSWORD)),
            "{path}"
        );
    }
    let r = c
        .post(&format!("/ui/partners/{p}/suspend"), &[("csrf", &csrf)])
        .await;
    assert!(!r.header("location").unwrap().contains(PASSWORD));
    // The session id is not the token, and not derived from it in any visible way.
    let sid = c.cookies.get("pg_session").unwrap();
    assert_ne!(sid, TOKEN);
    assert_eq!(sid.len(), 64);

    let logs = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    assert!(
        logs.contains("dashboard: logged in"),
        "the logs are captured"
    );
    assert!(!logs.contains(TOKEN), "the token is in the logs");
    assert!(!logs.contains(PASSWORD), "a password is in the logs");
    assert!(!logs.contains(sid.as_str()), "a session id is in the logs");
    assert!(!logs.contains(&csrf), "a CSRF token is in the logs");
}

fn assert_hardened(r: &Resp, what: &str) {
    let csp = r
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"));
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "{what}: {part} in {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{what}");
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
    assert_eq!(
        r.header("cross-origin-opener-policy"),
        Some("same-origin"),
        "{what}"
    );
}

#[tokio::test]
async fn security_headers_are_present() {
    let gw = start(Duration::from_secs(3600), false).await;
    let p = gw.onboard("Acme");
    let mut c = Client::new(gw.admin);
    let login = c.get("/ui/login").await;
    assert_hardened(&login, "login");
    assert_eq!(
        login.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let cookie = login.header("set-cookie").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert_hardened(&c.get("/ui/partners").await, "redirect");
    let r = c
        .post(
            "/ui/login",
            &[
                ("csrf", &login.csrf()),
                ("name", OPERATOR),
                ("password", PASSWORD),
            ],
        )
        .await;
    let session = r
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("pg_session="))
        .unwrap()
        .to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(session.contains(attr), "{attr} in {session}");
    }
    for path in [
        "/ui/partners".to_owned(),
        format!("/ui/partners/{p}"),
        "/ui/partners/new".to_owned(),
        "/ui/usage".to_owned(),
        "/ui/groups".to_owned(),
        "/ui/audit".to_owned(),
        "/ui/nodes".to_owned(),
        "/ui/reveal".to_owned(),
        "/ui/partners/NOPE-1".to_owned(),
        "/ui/static/dashboard.css".to_owned(),
        "/ui/static/dashboard.js".to_owned(),
    ] {
        let r = c.get(&path).await;
        assert_hardened(&r, &path);
        // No inline script and no inline style anywhere (the CSP would block them).
        assert!(
            !r.body.contains("<script>") && !r.body.contains(" style="),
            "{path}"
        );
        assert!(!r.body.contains("onclick="), "{path}");
    }
    assert_eq!(c.get("/ui/partners/NOPE-1").await.status, 404);
    assert_eq!(
        c.get("/ui/static/dashboard.css")
            .await
            .header("content-type"),
        Some("text/css; charset=utf-8")
    );
    // With admin.cookie_secure (TLS in front of the listener): Secure cookies and HSTS.
    let gw = start(Duration::from_secs(3600), true).await;
    let mut c = Client::new(gw.admin);
    let login = c.get("/ui/login").await;
    assert!(login.header("set-cookie").unwrap().contains("; Secure"));
    assert!(login.header("strict-transport-security").is_some());
    let r = c
        .post(
            "/ui/login",
            &[
                ("csrf", &login.csrf()),
                ("name", OPERATOR),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(r
        .all("set-cookie")
        .iter()
        .any(|c| c.starts_with("pg_session=") && c.contains("; Secure")));
}

#[tokio::test]
async fn actions_validate_like_the_cli_and_the_api() {
    let gw = start(Duration::from_secs(3600), false).await;
    let p = gw.onboard("Acme");
    let mut c = Client::new(gw.admin);
    let csrf = c.login().await;
    let page = format!("/ui/partners/{p}");
    // The service's own message for a host-bits CIDR, as the CLI and the API would say it.
    let expected = Admin::new(gw.store.clone())
        .handle(
            Request::AddAllow {
                partner: p.clone(),
                cidr: "10.0.0.1/8".into(),
            },
            &Rules::default(),
            &Actor::cli(),
        )
        .unwrap_err()
        .to_string();
    let before = gw.store.revision().unwrap();
    let r = c
        .post(
            &format!("{page}/allowlist"),
            &[("csrf", &csrf), ("cidr", "10.0.0.1/8")],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(gw.store.revision().unwrap(), before);
    let shown = unescape(&c.get(&page).await.body);
    // The same words, as a sentence (the flash messages start in upper case).
    let expected = format!("I{}", expected.strip_prefix('i').unwrap());
    assert!(shown.contains(&expected), "{expected} in the page");
    // The create form keeps what was typed and says what is wrong.
    let r = c
        .post(
            "/ui/partners",
            &[("csrf", &csrf), ("name", "Beta"), ("allow", "")],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r
        .body
        .contains("invalid allow: at least one network is required"));
    assert!(r.body.contains("value=\"Beta\""));
    // Throttle, group, grants, details: each one change with its audit row.
    let audit = gw.store.audit_log(Some(&p), 1000).unwrap().len();
    let r = c
        .post(
            "/ui/groups",
            &[
                ("csrf", &csrf),
                ("name", "gold"),
                ("rate_ps", "20"),
                ("rate_burst", "40"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    for (action, form) in [
        ("throttle", vec![("per_second", "5"), ("burst", "10")]),
        (
            "callback-throttle",
            vec![("per_second", "2"), ("burst", "3")],
        ),
        ("group", vec![("group", "gold")]),
        ("grants/add", vec![("permission", "GetDevice")]),
        (
            "update",
            vec![
                ("name", "Acme Telecom"),
                ("country", "AT"),
                ("contact", "Jane"),
            ],
        ),
        ("keys/rotate", vec![("kind", "callback"), ("overlap", "0")]),
    ] {
        let mut form = form.clone();
        form.push(("csrf", &csrf));
        let r = c.post(&format!("{page}/{action}"), &form).await;
        assert_eq!(r.status, 303, "{action}");
    }
    let d = gw.store.partner_detail(&p).unwrap();
    assert_eq!(d.partner.name, "Acme Telecom");
    assert_eq!(d.partner.country.as_deref(), Some("AT"));
    assert_eq!(d.partner.group.as_deref(), Some("gold"));
    assert_eq!(d.partner.rate.map(|r| r.per_second.get()), Some(5));
    assert_eq!(d.partner.callback_rate, Rate::new(2, 3));
    assert!(d.grants.contains(&"devices.get".to_owned()));
    assert_eq!(gw.store.audit_log(Some(&p), 1000).unwrap().len(), audit + 6);
    // The callback rate beside the inbound one, with its own clear form; clearing it brings
    // the configured default back.
    let shown = c.get(&page).await;
    assert!(
        shown
            .body
            .contains("Callbacks to its BSS: own rate <strong>2/s, burst 3</strong>"),
        "{}",
        shown.body
    );
    assert!(shown.body.contains("/callback-throttle/clear"));
    let r = c
        .post(
            &format!("{page}/callback-throttle/clear"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        gw.store.partner_detail(&p).unwrap().partner.callback_rate,
        None
    );
    let shown = c.get(&page).await;
    assert!(
        shown
            .body
            .contains("default callback rate applies: 5/s, burst 10"),
        "{}",
        shown.body
    );
    // The rotated key is shown once, on the next page.
    let reveal = c.get("/ui/reveal").await;
    assert!(reveal.body.contains("pgc_"), "{}", reveal.body);
    assert!(reveal.body.contains("shown exactly once"));
    let again = c.get("/ui/reveal").await;
    assert!(!again.body.contains("pgc_"));
    // Offboarding needs the confirmation box.
    let r = c
        .post(&format!("{page}/offboard"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(gw.status(&p), PartnerStatus::Active);
}

// === several nodes on one PostgreSQL database ===

#[path = "common/db.rs"]
#[allow(dead_code, reason = "shared with tests/store.rs")]
mod db;

/// One row of `dashboard_sessions`, read around the gateway.
#[derive(Debug, diesel::QueryableByName)]
struct SessionRow {
    #[diesel(sql_type = diesel::sql_types::Binary)]
    id_hash: Vec<u8>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    created_at: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    expires_at: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Binary>)]
    flash: Option<Vec<u8>>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Binary>)]
    reveal: Option<Vec<u8>>,
}

#[derive(diesel::QueryableByName)]
struct ColumnName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    column_name: String,
}

/// Every stored session, straight from the database, and the table's columns.
fn stored_sessions(url: &str) -> (Vec<SessionRow>, Vec<String>) {
    use diesel::{Connection, RunQueryDsl};
    let mut c = diesel::PgConnection::establish(url).unwrap();
    let rows = diesel::sql_query(
        "SELECT id_hash, created_at, expires_at, flash, reveal FROM dashboard_sessions",
    )
    .load::<SessionRow>(&mut c)
    .unwrap();
    let columns = diesel::sql_query(
        "SELECT column_name::text AS column_name FROM information_schema.columns \
         WHERE table_name = 'dashboard_sessions' ORDER BY ordinal_position",
    )
    .load::<ColumnName>(&mut c)
    .unwrap()
    .into_iter()
    .map(|c| c.column_name)
    .collect();
    (rows, columns)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The keys on a reveal page (`pgk_…`, `pgc_…` in the read-only fields).
fn revealed_keys(body: &str) -> Vec<String> {
    body.split("value=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|v| v.starts_with("pgk_") || v.starts_with("pgc_"))
        .map(str::to_owned)
        .collect()
}

/// A load balancer in front of two nodes on one PostgreSQL database: a login through node A
/// works through node B (pages, CSRF-protected actions, the one-time flash and the keys shown
/// once, whichever node shows them) and through A again after A restarts; a logout through B
/// ends the session on A. The database holds neither the session id, nor the CSRF token, nor
/// a plaintext key while the key waits to be shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_works_through_every_node_and_survives_a_restart() {
    let pg = db::Db::postgres_tagged("sessions");
    let url = pg.url();
    let hour = Duration::from_secs(3600);
    let a = start_on(&url, hour, false).await;
    let b = start_on(&url, hour, false).await;
    let p = a.onboard("Acme");

    // Log in through A.
    let mut c = Client::new(a.admin);
    let csrf = c.login().await;
    let sid = c.cookies.get("pg_session").unwrap().clone();

    // Node B knows the session: a page, and an action with the same CSRF token.
    c.addr = b.admin;
    let page = c.get("/ui/partners").await;
    assert_eq!(
        page.status, 200,
        "node B does not know the login: {}",
        page.body
    );
    assert!(page.body.contains(&p));
    assert_eq!(page.csrf(), csrf, "one CSRF token on every node");
    let r = c
        .post(&format!("/ui/partners/{p}/suspend"), &[("reason", "test")])
        .await;
    assert_eq!(r.status, 403, "B still wants the token");
    let r = c
        .post(
            &format!("/ui/partners/{p}/suspend"),
            &[("reason", "unpaid"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(a.status(&p), PartnerStatus::Suspended);
    let (rows, _) = stored_sessions(&url);
    let flash = rows[0]
        .flash
        .clone()
        .expect("the outcome waits in the session");
    assert!(!contains(&flash, b"suspended") && !contains(&flash, p.as_bytes()));
    // Its outcome is shown once, by A.
    c.addr = a.admin;
    let page = c.get(&format!("/ui/partners/{p}")).await;
    assert!(
        page.body.contains(&format!("Partner {p} suspended")),
        "{}",
        page.body
    );
    c.addr = b.admin;
    let page = c.get(&format!("/ui/partners/{p}")).await;
    assert!(!page.body.contains(&format!("Partner {p} suspended")));

    // Create a partner through B: its keys wait, sealed, for the next page.
    let r = c
        .post(
            "/ui/partners",
            &[
                ("csrf", &csrf),
                ("name", "Beta Telecom"),
                ("allow", "127.0.0.1"),
                ("grant", "accounts.*"),
                ("grant_other", ""),
            ],
        )
        .await;
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/reveal")));
    let (rows, columns) = stored_sessions(&url);
    assert_eq!(
        columns,
        [
            "id_hash",
            "created_at",
            "expires_at",
            "flash",
            "reveal",
            "operator_id"
        ],
        "nothing else is stored"
    );
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.id_hash, partnergate::secret::hash(&sid).to_vec());
    assert_eq!(row.expires_at - row.created_at, 3_600_000);
    let sealed = row.reveal.clone().expect("the keys wait in the session");
    for column in [&row.id_hash, &sealed] {
        for secret in [sid.as_bytes(), &unhex(&sid), csrf.as_bytes(), &unhex(&csrf)] {
            assert!(!contains(column, secret), "a session secret is stored");
        }
        for prefix in [&b"pgk_"[..], b"pgc_", b"Beta Telecom", b"PARTNER-"] {
            assert!(!contains(column, prefix), "plaintext in the stored reveal");
        }
    }

    // Restart A, with the keys still waiting: A' shows them, once.
    a.stop().await;
    let a = start_on(&url, hour, false).await;
    c.addr = a.admin;
    let reveal = c.get("/ui/reveal").await;
    assert_eq!(
        reveal.status, 200,
        "logged out by the restart: {}",
        reveal.body
    );
    let keys = revealed_keys(&reveal.body);
    assert_eq!(keys.len(), 2, "{}", reveal.body);
    for key in &keys {
        assert!(!contains(&sealed, key.as_bytes()));
        assert!(!contains(&sealed, &key.as_bytes()[4..]));
    }
    assert!(
        stored_sessions(&url).0[0].reveal.is_none(),
        "cleared once shown"
    );
    c.addr = b.admin;
    assert!(revealed_keys(&c.get("/ui/reveal").await.body).is_empty());
    // The shown key is the partner's: the gateway accepts it.
    let beta = a
        .store
        .list_partners()
        .unwrap()
        .into_iter()
        .find(|x| x.name == "Beta Telecom")
        .unwrap()
        .partner_id;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = get_account(a.addr, &beta, &keys[0]).await;
        if body.contains("NotFoundFault") {
            break;
        }
        assert!(Instant::now() < deadline, "{status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Still logged in on the restarted A: a page and an action.
    c.addr = a.admin;
    let page = c.get(&format!("/ui/partners/{p}")).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.csrf(), csrf);
    let r = c
        .post(&format!("/ui/partners/{p}/reinstate"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(a.status(&p), PartnerStatus::Active);

    // Log out through B: refused on A, the row is gone.
    let kept = c.cookies.clone();
    c.addr = b.admin;
    let r = c.post("/ui/logout", &[("csrf", &csrf)]).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/login")));
    c.cookies = kept; // as a stolen cookie would
    c.addr = a.admin;
    let r = c.get("/ui/partners").await;
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/login")));
    let r = c
        .post(
            &format!("/ui/partners/{p}/suspend"),
            &[("reason", "late"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(a.status(&p), PartnerStatus::Active);
    assert!(stored_sessions(&url).0.is_empty());
    a.stop().await;
    b.stop().await;
}

/// Two nodes with one-second sessions: a login through A works on B, and once its second is
/// over both refuse it, pages and actions, and its row is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_on_every_node() {
    let pg = db::Db::postgres_tagged("sessions");
    let url = pg.url();
    let a = start_on(&url, Duration::from_secs(1), false).await;
    let b = start_on(&url, Duration::from_secs(1), false).await;
    let p = a.onboard("Acme");
    let mut c = Client::new(a.admin);
    let login = Instant::now();
    let csrf = c.login().await;
    c.addr = b.admin;
    let page = c.get("/ui/partners").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        login.elapsed() < Duration::from_millis(900),
        "too slow to test"
    );
    tokio::time::sleep(Duration::from_millis(1300).saturating_sub(login.elapsed())).await;
    for node in [b.admin, a.admin] {
        c.addr = node;
        let r = c.get("/ui/partners").await;
        assert_eq!((r.status, r.header("location")), (303, Some("/ui/login")));
        let r = c
            .post(&format!("/ui/partners/{p}/suspend"), &[("csrf", &csrf)])
            .await;
        assert_eq!(r.status, 401);
    }
    assert_eq!(a.status(&p), PartnerStatus::Active);
    assert!(stored_sessions(&url).0.is_empty(), "deleted when read");
    a.stop().await;
    b.stop().await;
}

// === the browser ===

/// chromedriver on a free loopback port; killed (by its pid) when dropped.
struct Driver {
    child: std::process::Child,
    port: u16,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn chromedriver() -> Driver {
    for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} not installed: run `sudo .ci/setup` (Debian packages chromium, chromium-driver)"
        );
    }
    let port = free_port();
    let child = std::process::Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        port,
        profile: temp_path("chromium-profile"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    driver
}

async fn browser(driver: &Driver, width: u32) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), "chrome".into());
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars",
                format!("--user-data-dir={}", driver.profile.display()),
                format!("--window-size={width},1000"),
            ],
        }),
    );
    // Keep the console (read by `console_errors`).
    caps.insert(
        "goog:loggingPrefs".into(),
        serde_json::json!({"browser": "ALL"}),
    );
    fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A screenshot of the whole page at `width` (the window is resized to the page's height).
async fn screenshot(b: &fantoccini::Client, name: &str, width: u32) {
    b.set_window_size(width, 1000).await.unwrap();
    let height = b
        .execute(
            "window.scrollTo(0, 0); return document.documentElement.scrollHeight;",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(1000)
        .clamp(600, 6000);
    b.set_window_size(width, u32::try_from(height).unwrap() + 140)
        .await
        .unwrap();
    b.execute("window.scrollTo(0, 0);", vec![]).await.unwrap();
    let png = b.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).unwrap();
    b.set_window_size(WIDE, 1000).await.unwrap();
}

/// The widths the pages are looked at: a desktop and a narrow window (tablet, split screen).
const WIDE: u32 = 1400;
const NARROW: u32 = 800;

/// Screenshots of the page at both widths (`{name}-1400.png`, `{name}-800.png`).
async fn screenshots(b: &fantoccini::Client, name: &str) {
    screenshot(b, &format!("{name}-{WIDE}"), WIDE).await;
    screenshot(b, &format!("{name}-{NARROW}"), NARROW).await;
}

/// The browser console's errors (level SEVERE: failed loads such as a 401 icon, CSP
/// violations, script errors) since the last read, through chromedriver's log endpoint.
async fn console_errors(driver: &Driver, b: &fantoccini::Client) -> Vec<String> {
    let session = b.session_id().await.unwrap().expect("a session");
    let body = r#"{"type":"browser"}"#;
    let raw = format!(
        "POST /session/{session}/se/log HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Connection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len(),
        port = driver.port
    );
    // chromedriver keeps the connection open: read the head, then Content-Length bytes.
    let mut stream = TcpStream::connect(("127.0.0.1", driver.port))
        .await
        .unwrap();
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let read = async {
        loop {
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok());
                if n == 0 || length.is_some_and(|l| body.len() >= l) {
                    return (head.to_owned(), body.to_owned());
                }
            }
            assert!(n > 0, "chromedriver closed the connection");
        }
    };
    let (head, body) = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("chromedriver's log in time");
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "chromedriver's log: {head}\n{body}"
    );
    let json = &body[body.find('{').unwrap()..=body.rfind('}').unwrap()];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["value"]
        .as_array()
        .expect("log entries")
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// No error in the browser's console since the last look (`page` names it in the failure).
async fn assert_quiet_console(driver: &Driver, b: &fantoccini::Client, page: &str) {
    let errors = console_errors(driver, b).await;
    assert!(errors.is_empty(), "console errors on {page}: {errors:#?}");
}

/// No horizontal scrolling at the current width: neither the page nor any table box.
async fn assert_no_sideways_scroll(b: &fantoccini::Client, page: &str) {
    let wide = b
        .execute(
            "const d = document.documentElement; \
             const out = []; \
             if (d.scrollWidth > d.clientWidth) { out.push('page ' + d.scrollWidth + ' > ' + d.clientWidth); } \
             document.querySelectorAll('.table-wrap').forEach(function (w) { \
               if (w.scrollWidth > w.clientWidth) { \
                 const t = w.querySelector('table'); \
                 out.push((t && t.id ? t.id : 'table') + ' ' + w.scrollWidth + ' > ' + w.clientWidth); \
               } \
             }); \
             return out;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        wide,
        serde_json::json!([]),
        "{page} scrolls sideways at {WIDE} px"
    );
}

/// Every chart's bars and every colour swatch of an outcome have that outcome's colour, the
/// one of the legend, and no two outcomes share one: (outcome, colour) pairs of the page.
async fn outcome_colours(b: &fantoccini::Client) -> BTreeMap<String, String> {
    let v = b
        .execute(
            "const legend = {}; const clash = []; \
             document.querySelectorAll('figcaption.legend-box .legend').forEach(function (l) { \
               const name = l.textContent.trim(); const fill = l.querySelector('rect').getAttribute('fill'); \
               if (legend[name] && legend[name] !== fill) { clash.push('legend ' + name); } \
               legend[name] = fill; \
             }); \
             let bars = 0; \
             document.querySelectorAll('svg.chart rect').forEach(function (r) { \
               const t = r.querySelector('title'); if (!t) { return; } \
               const text = t.textContent; \
               const name = Object.keys(legend).find(function (n) { return text.endsWith(' ' + n + ': ' + text.split(': ').pop()); }); \
               if (!name) { clash.push('no legend for ' + text); return; } \
               bars += 1; \
               if (r.getAttribute('fill') !== legend[name]) { clash.push(text + ' ' + r.getAttribute('fill') + ' != ' + legend[name]); } \
             }); \
             document.querySelectorAll('#outcomes tbody tr').forEach(function (row) { \
               const name = row.querySelector('code').textContent; \
               const fill = row.querySelector('rect').getAttribute('fill'); \
               if (legend[name] !== fill) { clash.push('table ' + name + ' ' + fill + ' != ' + legend[name]); } \
             }); \
             return {legend: legend, clash: clash, bars: bars};",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(v["clash"], serde_json::json!([]), "{v}");
    assert!(v["bars"].as_u64().unwrap() > 0, "{v}");
    let legend: BTreeMap<String, String> = serde_json::from_value(v["legend"].clone()).unwrap();
    let distinct: std::collections::BTreeSet<&String> = legend.values().collect();
    assert_eq!(
        distinct.len(),
        legend.len(),
        "two outcomes share a colour: {legend:?}"
    );
    legend
}

/// A SOAP 1.1 GetAccount call with `partner` and `key`: (HTTP status, body).
async fn get_account(addr: SocketAddr, partner: &str, key: &str) -> (u16, String) {
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/GetAccount/request.xml"
    ))
    .unwrap();
    let body = fixture
        .replace("pgk_test_0123456789abcdef0123456789abcdef", key)
        .replace("PARTNER-0042", partner);
    let raw = format!(
        "POST /soap/partner/v1 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: text/xml; charset=utf-8\r\n\
         SOAPAction: \"urn:partnergate:partner:v1/GetAccount\"\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = send(addr, raw.as_bytes()).await;
    (r.status, r.body)
}

/// Types `text` into the element `at` finds.
async fn fill(b: &fantoccini::Client, at: fantoccini::Locator<'_>, text: &str) {
    b.find(at).await.unwrap().send_keys(text).await.unwrap();
}

/// Clicks the element `at` finds.
async fn click(b: &fantoccini::Client, at: fantoccini::Locator<'_>) {
    b.find(at).await.unwrap().click().await.unwrap();
}

async fn text_of(b: &fantoccini::Client, css: &str) -> String {
    b.find(fantoccini::Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_onboards_a_partner_and_revokes_its_key_in_a_browser() {
    let gw = start(Duration::from_secs(3600), false).await;
    let driver = chromedriver().await;
    let b = browser(&driver, WIDE).await;
    let ui = format!("http://{}/ui", gw.admin);
    use fantoccini::Locator::{Css, Id, XPath};

    // Log in. The browser asks for /favicon.ico before any login: no 401 in the console.
    b.goto(&format!("{ui}/partners")).await.unwrap();
    assert!(b.current_url().await.unwrap().path().ends_with("/ui/login"));
    screenshots(&b, "01-login").await;
    assert_quiet_console(&driver, &b, "the login page").await;
    // By keyboard: the name field has the focus; Tab to the password; Enter submits.
    let focused = b.active_element().await.unwrap();
    assert_eq!(focused.attr("id").await.unwrap().as_deref(), Some("name"));
    focused
        .send_keys(&format!("{OPERATOR}\u{E004}{PASSWORD}\u{E007}"))
        .await
        .unwrap();
    b.wait().for_element(Css("h1")).await.unwrap();
    assert_eq!(text_of(&b, "h1").await, "Partners");
    assert!(!b.current_url().await.unwrap().as_str().contains(PASSWORD));
    assert_quiet_console(&driver, &b, "the partner list").await;
    // The search field shows its whole placeholder.
    let fits = b
        .execute(
            "const q = document.getElementById('q'); const s = getComputedStyle(q); \
             const c = document.createElement('canvas').getContext('2d'); c.font = s.font; \
             const room = q.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight); \
             return [c.measureText(q.placeholder).width, room];",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        fits[0].as_f64().unwrap() <= fits[1].as_f64().unwrap(),
        "placeholder cut: {fits}"
    );

    // Create a partner: allowed from this machine, one operation granted to begin with.
    click(&b, Css("a.button.primary")).await;
    b.wait().for_element(Id("name")).await.unwrap();
    fill(&b, Id("name"), "Acme Telecom").await;
    fill(&b, Id("country"), "AT").await;
    fill(&b, Id("allow"), "127.0.0.1").await;
    click(&b, Css("input[name=grant][value='accounts.find']")).await;
    screenshots(&b, "02-new-partner").await;
    assert_quiet_console(&driver, &b, "the new partner form").await;
    click(&b, Css("form.stack button[type=submit]")).await;
    b.wait().for_element(Id("key-1")).await.unwrap();
    assert!(text_of(&b, ".warning").await.contains("shown exactly once"));
    let key = b
        .find(Id("key-1"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(key.starts_with("pgk_") && key.len() == 68, "{key}");
    // The message is a sentence: "Partner PARTNER-… created".
    let created = text_of(&b, "h1").await;
    assert!(
        created.starts_with("Partner PARTNER-") && created.contains("created"),
        "{created:?}"
    );
    let callback_key = b
        .find(Id("key-2"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(callback_key.starts_with("pgc_"));
    // The copy button (the external script unhides it) copies and says so.
    let copy = b.find(Css("button[data-copy='key-1']")).await.unwrap();
    assert!(
        copy.is_displayed().await.unwrap(),
        "the script ran (CSP allows 'self')"
    );
    copy.click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let status = loop {
        let s = text_of(&b, "#key-1-status").await;
        if !s.is_empty() || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        status.starts_with("Copied") || status.contains("Ctrl+C"),
        "{status:?}"
    );
    screenshots(&b, "03-keys-shown-once").await;
    assert_quiet_console(&driver, &b, "the keys page").await;
    let partner = gw.store.list_partners().unwrap()[0].partner_id.clone();

    // Not granted yet: refused.
    let (status, body) = get_account(gw.addr, &partner, &key).await;
    assert!(body.contains("AccessDeniedFault"), "{status} {body}");

    // Grant GetAccount in the permission matrix.
    click(&b, Css("a.button.primary")).await;
    b.wait().for_element(Id("matrix")).await.unwrap();
    click(&b, Css("#op-GetAccount button")).await;
    b.wait().for_element(Css(".flash.ok")).await.unwrap();
    let flash = text_of(&b, ".flash.ok").await;
    assert!(flash.contains("granted"), "{flash}");
    assert!(
        flash.starts_with(char::is_uppercase),
        "sentence case: {flash:?}"
    );
    assert!(text_of(&b, "#op-GetAccount").await.contains("granted"));

    // The key works: the in-process partner API layer knows no such account (NotFoundFault,
    // an authorised call), where a refusal would be an AccessDeniedFault.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (status, body) = get_account(gw.addr, &partner, &key).await;
        if body.contains("NotFoundFault") {
            assert_eq!(status, 500, "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never authorised: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..4 {
        get_account(gw.addr, &partner, &key).await;
    }
    get_account(gw.addr, &partner, "pgk_wrong").await;
    // Let the statistics reach the database (flushed every 200 ms), then look at the page.
    tokio::time::sleep(Duration::from_millis(600)).await;
    b.refresh().await.unwrap();
    b.wait().for_element(Id("key-table")).await.unwrap();

    // Contact and billing rate, set in the edit form, are shown in the details.
    click(&b, XPath("//summary[text()='Edit details']")).await;
    fill(&b, Id("e-contact"), "noc@acme.example").await;
    fill(&b, Id("e-billing"), "0.0125 EUR/min").await;
    click(&b, XPath("//button[text()='Save details']")).await;
    b.wait().for_element(Css(".flash.ok")).await.unwrap();
    assert_eq!(text_of(&b, "#contact").await, "noc@acme.example");
    assert_eq!(text_of(&b, "#billing-rate").await, "0.0125 EUR/min");
    // On the default throttle: the configured value, not the setting's name alone.
    for id in ["#rate", "#rate-summary"] {
        let rate = text_of(&b, id).await;
        assert!(
            rate.contains("default rate applies: 10000/s, burst 10000"),
            "{id}: {rate}"
        );
    }
    // Status, keys and usage come first; the permission matrix after them.
    let order = b
        .execute(
            "return Array.from(document.querySelectorAll('main section')).map(function (s) { return s.id; });",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        order,
        serde_json::json!([
            "lifecycle",
            "keys",
            "usage",
            "details",
            "throttle",
            "allowlist",
            "permissions",
            "audit"
        ])
    );
    let partner_colours = outcome_colours(&b).await;
    assert!(
        partner_colours.contains_key("upstream-not-found"),
        "{partner_colours:?}"
    );
    assert_no_sideways_scroll(&b, "the partner page").await;
    screenshots(&b, "04-partner").await;
    assert_quiet_console(&driver, &b, "the partner page").await;

    // Revoke the partner key from its row; the next call is refused within a second.
    b.find(XPath(
        "//table[@id='key-table']//tr[td[2]='partner']//button",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let revoked_at = Instant::now();
    b.wait().for_element(Css(".flash.ok")).await.unwrap();
    assert!(text_of(&b, ".flash.ok").await.contains("revoked"));
    assert_quiet_console(&driver, &b, "the partner page after a revoke").await;
    loop {
        let (status, body) = get_account(gw.addr, &partner, &key).await;
        if body.contains("AccessDeniedFault") {
            assert_ne!(status, 200);
            break;
        }
        assert!(body.contains("NotFoundFault"), "{status} {body}");
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "the revoked key still worked after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let refused_after = revoked_at.elapsed();
    assert!(refused_after < Duration::from_secs(1), "{refused_after:?}");
    assert!(text_of(&b, "#key-table").await.contains("revoked"));

    // The other main pages.
    b.goto(&format!("{ui}/partners")).await.unwrap();
    b.wait().for_element(Id("partners")).await.unwrap();
    assert!(text_of(&b, "#partners").await.contains("Acme Telecom"));
    // Ok, upstream faults and refusals per partner: the NotFound answers are upstream faults
    // (at least 5), the wrong key and the call before the grant refusals, none answered ok.
    let head = text_of(&b, "#partners thead").await;
    for col in ["Calls 24 h", "Ok", "Upstream faults", "Refused"] {
        assert!(head.contains(col), "{head}");
    }
    let cell = |class: &'static str| {
        let b = &b;
        async move {
            text_of(b, &format!("#partners tbody td.{class}"))
                .await
                .parse::<i64>()
                .unwrap()
        }
    };
    let (calls, ok, upstream, refused) = (
        cell("calls").await,
        cell("ok").await,
        cell("upstream").await,
        cell("refused").await,
    );
    assert!(
        ok == 0 && upstream >= 5 && refused >= 1,
        "{ok} {upstream} {refused}"
    );
    assert_eq!(calls, ok + upstream + refused);
    screenshots(&b, "06-partners").await;
    assert_quiet_console(&driver, &b, "the partner list").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    b.goto(&format!("{ui}/usage?partner={partner}&range=1h"))
        .await
        .unwrap();
    b.wait().for_element(Id("ops")).await.unwrap();
    assert!(text_of(&b, "#ops").await.contains("GetAccount"));
    // Latency percentiles: the chart has a point per percentile for each minute with calls
    // that reached the partner API layer (the NotFound answers), and the numbers are in the
    // summary and the GetAccount row (p50, p95, p99 in columns 6 to 8).
    let points = b
        .find_all(Css("#percentiles svg.chart circle"))
        .await
        .unwrap();
    assert!(
        points.len() >= 3 && points.len() % 3 == 0,
        "{} points",
        points.len()
    );
    // An SVG <title> is not rendered text: read its textContent.
    let chart_title = b
        .find(Css("#percentiles svg.chart > title"))
        .await
        .unwrap()
        .prop("textContent")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(chart_title.contains("Latency percentiles"), "{chart_title}");
    let is_latency = |t: &str| {
        t.strip_suffix(" ms")
            .or_else(|| t.strip_suffix(" s"))
            .is_some_and(|n| n.parse::<f64>().is_ok_and(|v| v > 0.0))
    };
    let summary = text_of(&b, "#pct-summary").await;
    let parts: Vec<&str> = summary.split(", ").collect();
    assert_eq!(parts.len(), 3, "{summary}");
    for (part, name) in parts.iter().zip(["p50 ", "p95 ", "p99 "]) {
        let value = part
            .strip_prefix(name)
            .unwrap_or_else(|| panic!("{summary}"));
        assert!(is_latency(value), "{summary}");
    }
    let mut row = Vec::new();
    for col in 6..=8 {
        row.push(
            b.find(XPath(&format!(
                "//table[@id='ops']//tr[td[1]='GetAccount']/td[{col}]"
            )))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        );
    }
    assert!(row.iter().all(|t| is_latency(t)), "{row:?}");
    // One colour per outcome: the same in both charts, the outcome table and the partner page.
    let usage_colours = outcome_colours(&b).await;
    for (outcome, colour) in &partner_colours {
        assert_eq!(usage_colours.get(outcome), Some(colour), "{outcome}");
    }
    assert_eq!(usage_colours.get("ok"), None, "no call was answered ok");
    assert_no_sideways_scroll(&b, "the usage page").await;
    screenshots(&b, "07-usage").await;
    assert_quiet_console(&driver, &b, "the usage page").await;
    // Without a range asked for, the range holds the data: these minutes, not 24 hours.
    b.goto(&format!("{ui}/usage")).await.unwrap();
    b.wait().for_element(Id("range-note")).await.unwrap();
    let title = b
        .find(Css("#calls svg.chart > title"))
        .await
        .unwrap()
        .prop("textContent")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(title, "Calls by outcome, last 15 minutes");
    assert_no_sideways_scroll(&b, "the usage page (fitted range)").await;
    screenshots(&b, "07-usage-fitted").await;
    assert_quiet_console(&driver, &b, "the usage page (fitted range)").await;
    b.goto(&format!("{ui}/groups")).await.unwrap();
    fill(&b, Id("g-name"), "gold").await;
    fill(&b, Id("g-ps"), "20").await;
    fill(&b, Id("g-b"), "40").await;
    fill(&b, Id("g-aps"), "200").await;
    fill(&b, Id("g-ab"), "400").await;
    click(&b, Css("form.stack button[type=submit]")).await;
    b.wait().for_element(Css(".flash.ok")).await.unwrap();
    assert!(text_of(&b, ".flash.ok")
        .await
        .contains("Group gold created"));
    screenshots(&b, "08-groups").await;
    assert_quiet_console(&driver, &b, "the groups page").await;
    b.goto(&format!("{ui}/partners/{partner}")).await.unwrap();
    b.find(Id("t-group"))
        .await
        .unwrap()
        .select_by_value("gold")
        .await
        .unwrap();
    click(&b, XPath("//form[contains(@action, '/group')]//button")).await;
    b.wait().for_element(Css(".flash.ok")).await.unwrap();
    assert!(text_of(&b, ".flash.ok")
        .await
        .contains("is now in group gold"));
    b.goto(&format!("{ui}/groups/gold")).await.unwrap();
    assert!(text_of(&b, "main").await.contains(&partner));
    screenshots(&b, "08-group").await;
    assert_quiet_console(&driver, &b, "the group page").await;
    // Rename gold: the audit rows recorded under the old name lead to the group's page now.
    fill(&b, Id("g-new"), "platinum").await;
    click(&b, XPath("//form[contains(@action, '/rename')]//button")).await;
    b.wait().for_element(Css(".flash.ok")).await.unwrap();
    b.goto(&format!("{ui}/audit")).await.unwrap();
    assert!(text_of(&b, "main").await.contains("key.revoke"));
    // Changes read `field: old → new`, with times in UTC: no JSON, no epoch seconds.
    let changes = text_of(&b, "main table tbody").await;
    for line in [
        "contact: none → noc@acme.example",
        "billing rate: none → 0.0125 EUR/min",
        "group: none → gold",
        "name: gold → platinum",
    ] {
        assert!(changes.contains(line), "{line:?} in {changes}");
    }
    assert!(
        !changes.contains('{') && !changes.contains("\"from\""),
        "{changes}"
    );
    let revoke = b
        .find(XPath("//tr[td[3]='key.revoke']/td[5]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        revoke.starts_with("revoked: key ") && revoke.contains("partner, pgk_"),
        "{revoke}"
    );
    let links: Vec<String> = serde_json::from_value(
        b.execute(
            "return Array.from(document.querySelectorAll('main table a')).map(function (a) { return a.getAttribute('href'); });",
            vec![],
        )
        .await
        .unwrap(),
    )
    .unwrap();
    assert!(
        links.contains(&"/ui/groups/platinum".to_owned()),
        "{links:?}"
    );
    assert!(!links.contains(&"/ui/groups/gold".to_owned()), "{links:?}");
    screenshots(&b, "09-audit").await;
    assert_quiet_console(&driver, &b, "the audit log").await;
    for href in &links {
        b.goto(&format!("http://{}{href}", gw.admin)).await.unwrap();
        let h1 = text_of(&b, "h1").await;
        assert!(h1 != "Not found", "{href} leads nowhere");
    }
    assert_quiet_console(&driver, &b, "the audit log's links").await;
    b.goto(&format!("{ui}/nodes")).await.unwrap();
    screenshots(&b, "11-nodes").await;
    assert_quiet_console(&driver, &b, "the nodes page").await;
    b.close().await.unwrap();
    eprintln!("revoked key refused after {refused_after:?}");
}

/// The issue's journey in a browser, behind a stand-in load balancer (the browser sends the
/// cookie of 127.0.0.1 to every port): log in through node A, change a partner through node B,
/// restart node A, still logged in there; log out there, and node B wants a login again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_stays_logged_in_across_nodes_and_a_restart() {
    use fantoccini::Locator::Css;
    let pg = db::Db::postgres_tagged("sessions");
    let url = pg.url();
    let hour = Duration::from_secs(3600);
    let a = start_on(&url, hour, false).await;
    let node_b = start_on(&url, hour, false).await;
    let p = a.onboard("Acme");
    let driver = chromedriver().await;
    let b = browser(&driver, WIDE).await;

    // Log in through A.
    b.goto(&format!("http://{}/ui/login", a.admin))
        .await
        .unwrap();
    b.wait().for_element(Css("#name")).await.unwrap();
    fill(&b, Css("#name"), OPERATOR).await;
    fill(&b, Css("#password"), &format!("{PASSWORD}\u{E007}")).await;
    b.wait().for_element(Css("h1")).await.unwrap();
    assert_eq!(text_of(&b, "h1").await, "Partners");

    // Change the partner through B: no login asked for.
    b.goto(&format!("http://{}/ui/partners/{p}", node_b.admin))
        .await
        .unwrap();
    b.wait().for_element(Css("#matrix")).await.unwrap();
    click(&b, Css("#op-GetDevice button")).await;
    b.wait().for_element(Css(".flash.ok")).await.unwrap();
    assert!(text_of(&b, ".flash.ok").await.contains("granted"));
    let grants = a.store.partner_detail(&p).unwrap().grants;
    assert!(grants.iter().any(|g| g == "devices.get"), "{grants:?}");

    // Restart A: still logged in there.
    a.stop().await;
    let a = start_on(&url, hour, false).await;
    b.goto(&format!("http://{}/ui/partners/{p}", a.admin))
        .await
        .unwrap();
    b.wait().for_element(Css("h1")).await.unwrap();
    let path = b.current_url().await.unwrap().path().to_owned();
    assert_eq!(
        path,
        format!("/ui/partners/{p}"),
        "logged out by the restart"
    );
    assert!(text_of(&b, "#op-GetDevice").await.contains("granted"));
    screenshot(&b, "10-after-restart", WIDE).await;
    assert_quiet_console(&driver, &b, "a page after the restart").await;

    // Log out through the restarted A: B wants a login.
    click(&b, Css("form.logout button")).await;
    b.wait().for_element(Css("#name")).await.unwrap();
    b.goto(&format!("http://{}/ui/partners", node_b.admin))
        .await
        .unwrap();
    b.wait().for_element(Css("#name")).await.unwrap();
    assert!(b.current_url().await.unwrap().path().ends_with("/ui/login"));
    b.close().await.unwrap();
    a.stop().await;
    node_b.stop().await;
}

/// A viewer in a real browser: the pages show no button that changes anything (no status,
/// key, allowlist, permission or throttle form, no "New partner", no Operators page), and a
/// forged POST — a form the dashboard never showed it, built in the page and submitted with the
/// session's valid CSRF token — is refused 403 by the admin service, nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_change_buttons_and_a_forged_post_is_refused() {
    use fantoccini::Locator::Css;
    let gw = start(Duration::from_secs(3600), false).await;
    let p = gw.onboard("Acme");
    let viewer_password = "viewer-password-0123456789";
    let hash = partnergate::password::hash(&Password::new(viewer_password.into())).unwrap();
    gw.store
        .create_operator("test-setup", "vera", Role::Viewer, &hash)
        .unwrap();
    let driver = chromedriver().await;
    let b = browser(&driver, WIDE).await;
    let ui = format!("http://{}/ui", gw.admin);

    b.goto(&format!("{ui}/login")).await.unwrap();
    fill(&b, Css("#name"), "vera").await;
    fill(&b, Css("#password"), &format!("{viewer_password}\u{E007}")).await;
    b.wait().for_element(Css("h1")).await.unwrap();
    assert_eq!(text_of(&b, "h1").await, "Partners");
    assert_eq!(text_of(&b, "#who").await, "vera (viewer)");
    assert!(b.find(Css("a[href='/ui/partners/new']")).await.is_err());
    assert!(b.find(Css("a[href='/ui/operators']")).await.is_err());

    // The partner's page: everything readable, no form but the logout's.
    b.goto(&format!("{ui}/partners/{p}")).await.unwrap();
    b.wait().for_element(Css("#matrix")).await.unwrap();
    assert!(text_of(&b, "#key-table").await.contains("partner"));
    let forms = b.find_all(Css("main form")).await.unwrap();
    assert!(forms.is_empty(), "{} forms shown to a viewer", forms.len());
    assert!(b.find_all(Css("main button")).await.unwrap().is_empty());
    screenshot(&b, "20-viewer-partner", WIDE).await;

    // A forged suspend with the session's own CSRF token: 403, the partner still active.
    b.execute(
        "const f = document.createElement('form');
         f.method = 'post'; f.action = arguments[0];
         const i = document.createElement('input');
         i.name = 'csrf'; i.value = document.querySelector('form.logout input[name=csrf]').value;
         f.appendChild(i); document.body.appendChild(f); f.submit();",
        vec![serde_json::json!(format!("/ui/partners/{p}/suspend"))],
    )
    .await
    .unwrap();
    b.wait().for_element(Css("h1")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while text_of(&b, "h1").await != "Not allowed" {
        assert!(Instant::now() < deadline, "no refusal page");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(text_of(&b, "main")
        .await
        .contains("needs the operator role"));
    assert_eq!(
        gw.store.partner_detail(&p).unwrap().partner.status,
        PartnerStatus::Active
    );
    // The same POST over plain HTTP with the browser's session: the status is 403.
    let cookie = b.get_named_cookie("pg_session").await.unwrap();
    let mut c = Client::new(gw.admin);
    c.cookies
        .insert("pg_session".into(), cookie.value().to_owned());
    let page = c.get(&format!("/ui/partners/{p}")).await;
    assert_eq!(page.status, 200);
    let r = c
        .post(
            &format!("/ui/partners/{p}/keys/rotate"),
            &[("csrf", &page.csrf()), ("kind", "partner")],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(gw.store.list_keys(&p).unwrap().len(), 2, "no key made");
    b.close().await.unwrap();
}

// === enrollments ===

/// Files an enrollment request through the store, as the enrollment endpoint would after its
/// checks (from 203.0.113.7); its id.
fn file_enrollment(gw: &Gateway, n: u8, company: &str, certificate: Option<String>) -> String {
    use partnergate::store::{EnrollmentContact, EnrollmentRequest, Filed};
    let id = format!("enr_{}", format!("{n:02x}").repeat(16));
    let request = EnrollmentRequest {
        company: company.into(),
        country: "DE".into(),
        contacts: vec![EnrollmentContact {
            first_name: "Anna".into(),
            last_name: "Muller".into(),
            email: Some("anna@zeta.example".into()),
            ..EnrollmentContact::default()
        }],
        operations: vec!["accounts.create".into(), "accounts.get".into()],
        networks: vec!["198.51.100.0/29".into()],
        callback_url: Some("https://bss.zeta.example/cb".into()),
        client_certificate: certificate,
        accepted_terms: "1".into(),
    };
    let hash = partnergate::secret::hash(&format!("pge_{}", "5".repeat(64)));
    let filed = gw
        .store
        .file_enrollment(&id, &hash, &request, "203.0.113.7", 10)
        .unwrap();
    assert_eq!(filed, Filed::Filed);
    id
}

/// Logs `name` in through the browser's login form.
async fn browser_login(b: &fantoccini::Client, ui: &str, name: &str, password: &str) {
    use fantoccini::Locator::Css;
    b.goto(&format!("{ui}/login")).await.unwrap();
    b.wait().for_element(Css("#name")).await.unwrap();
    fill(b, Css("#name"), name).await;
    fill(b, Css("#password"), &format!("{password}\u{E007}")).await;
    b.wait().for_element(Css("h1")).await.unwrap();
    assert_eq!(text_of(b, "h1").await, "Partners");
}

/// Waits until the page's `h1` reads `text`.
async fn wait_for_heading(b: &fantoccini::Client, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(h) = b.find(fantoccini::Locator::Css("h1")).await {
            if h.text().await.is_ok_and(|t| t == text) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "no page headed {text:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Enrollment review in a real browser (issue 19 part 3). An operator opens the queue from the
/// navigation (pending requests with company, operations, networks, callback URL, source),
/// opens one, and approves it through the pre-filled partner form with the name, the id and a
/// permission changed and a rate added: the partner exists with those values and the request's
/// client certificate registered, the enrollment is approved, and the audit rows name the
/// operator. Another request is rejected with a reason and shows rejected with it. Then a
/// viewer sees the queue and the request but no button or form, the approve form is refused
/// 403, and a forged approve (the session's valid CSRF token) and reject are refused 403,
/// nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollments_are_approved_and_rejected_in_a_browser_and_viewers_only_look() {
    use fantoccini::Locator::{Css, Id};
    use partnergate::store::EnrollmentState;
    let gw = start(Duration::from_secs(3600), false).await;
    let cert = {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["bss.zeta.example".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "bss.zeta.example");
        params.self_signed(&key).unwrap()
    };
    let fingerprint = partnergate::certificate::fingerprint_hex(
        &partnergate::certificate::fingerprint(cert.der()),
    );
    let zeta = file_enrollment(&gw, 1, "Zeta Networks GmbH", Some(cert.pem()));
    let yotta = file_enrollment(&gw, 2, "Yotta Mobile", None);
    let driver = chromedriver().await;
    let b = browser(&driver, WIDE).await;
    let ui = format!("http://{}/ui", gw.admin);
    browser_login(&b, &ui, OPERATOR, PASSWORD).await;

    // The queue, from the navigation: both requests pending, with what they asked for.
    click(&b, Css("nav a[href='/ui/enrollments']")).await;
    wait_for_heading(&b, "Enrollments").await;
    let pending = text_of(&b, "#pending").await;
    for fact in [
        "Zeta Networks GmbH",
        "Yotta Mobile",
        "accounts.create, accounts.get",
        "198.51.100.0/29",
        "https://bss.zeta.example/cb",
        "203.0.113.7",
        "DE",
    ] {
        assert!(pending.contains(fact), "{fact} missing from {pending}");
    }
    assert!(text_of(&b, "main").await.contains("None decided yet"));
    screenshots(&b, "30-enrollments").await;
    assert_quiet_console(&driver, &b, "the enrollment queue").await;

    // Approve Zeta: the form is filled in from the request; change name, id and a permission.
    click(&b, Css(&format!("#enr-{zeta} a"))).await;
    wait_for_heading(&b, "Enrollment of Zeta Networks GmbH").await;
    assert!(text_of(&b, "#request").await.contains(&fingerprint));
    click(&b, Id("approve")).await;
    wait_for_heading(&b, "Approve Zeta Networks GmbH").await;
    let value = |id: &'static str| {
        let b = b.clone();
        async move {
            b.find(Id(id))
                .await
                .unwrap()
                .prop("value")
                .await
                .unwrap()
                .unwrap()
        }
    };
    assert_eq!(value("name").await, "Zeta Networks GmbH");
    assert_eq!(value("id").await, "ZETA-NETWORKS-GMBH");
    assert_eq!(value("allow").await, "198.51.100.0/29");
    assert_eq!(value("callback_url").await, "https://bss.zeta.example/cb");
    let checked = |css: String| {
        let b = b.clone();
        async move {
            b.find(Css(&css))
                .await
                .unwrap()
                .prop("checked")
                .await
                .unwrap()
                .as_deref()
                == Some("true")
        }
    };
    assert!(checked("input[name=grant][value='accounts.create']".into()).await);
    assert!(checked("input[name=grant][value='accounts.get']".into()).await);
    assert!(!checked("input[name=grant][value='devices.get']".into()).await);
    assert!(
        checked("#client_cert".into()).await,
        "the certificate is required by default"
    );
    screenshots(&b, "31-enrollment-approve").await;
    assert_quiet_console(&driver, &b, "the approve form").await;
    b.find(Id("name")).await.unwrap().clear().await.unwrap();
    fill(&b, Id("name"), "Zeta Telecom").await;
    b.find(Id("id")).await.unwrap().clear().await.unwrap();
    fill(&b, Id("id"), "ZETA-01").await;
    click(&b, Css("input[name=grant][value='accounts.get']")).await;
    click(&b, Css("input[name=grant][value='devices.get']")).await;
    fill(&b, Id("rate_ps"), "5").await;
    fill(&b, Id("rate_burst"), "10").await;
    click(&b, Css("#approve-form button[type=submit]")).await;
    wait_for_heading(&b, "Enrollment of Zeta Networks GmbH").await;
    let flash = text_of(&b, ".flash.ok").await;
    assert_eq!(
        flash,
        format!(
            "Enrollment {zeta} approved: partner ZETA-01 created with its client certificate; \
             its keys are made when the partner collects them"
        )
    );
    assert_eq!(text_of(&b, "#status").await, "approved");
    assert!(text_of(&b, "#decision").await.contains("ZETA-01"));
    assert!(b.find(Id("approve")).await.is_err(), "decided: no button");

    let p = gw.store.partner_detail("ZETA-01").unwrap();
    assert_eq!(p.partner.name, "Zeta Telecom");
    assert_eq!(p.partner.country.as_deref(), Some("DE"));
    assert_eq!(
        p.partner.callback_url.as_deref(),
        Some("https://bss.zeta.example/cb")
    );
    let mut grants = p.grants.clone();
    grants.sort();
    assert_eq!(grants, ["accounts.create", "devices.get"]);
    assert_eq!(p.allow, ["198.51.100.0/29"]);
    assert_eq!(p.partner.rate, Some(Rate::new(5, 10).unwrap()));
    let certs: Vec<&str> = p.client_certs.iter().map(|c| c.sha256.as_str()).collect();
    assert_eq!(certs, [fingerprint.as_str()]);
    assert!(p.keys.is_empty(), "the keys wait for the pickup");
    let record = gw.store.enrollment(&zeta).unwrap();
    assert_eq!(record.state, EnrollmentState::Approved);
    assert_eq!(record.partner_id.as_deref(), Some("ZETA-01"));
    let audit = gw.store.audit_log(Some(&zeta), 10).unwrap();
    let approve = audit
        .iter()
        .find(|a| a.action == "enrollment.approve")
        .expect("an enrollment.approve audit row");
    assert!(approve.actor.starts_with("op:root"), "{}", approve.actor);
    let created = gw.store.audit_log(Some("ZETA-01"), 10).unwrap();
    assert!(
        created
            .iter()
            .any(|a| a.action == "partner.create" && a.actor.starts_with("op:root")),
        "{created:?}"
    );

    // Reject Yotta with a reason.
    b.goto(&format!("{ui}/enrollments/{yotta}")).await.unwrap();
    wait_for_heading(&b, "Enrollment of Yotta Mobile").await;
    fill(
        &b,
        Id("reason-text"),
        "Unknown company; write to partners@tsp.example",
    )
    .await;
    click(&b, Css("#reject button[type=submit]")).await;
    b.wait().for_element(Css(".flash.ok")).await.unwrap();
    assert_eq!(
        text_of(&b, ".flash.ok").await,
        format!("Enrollment {yotta} rejected")
    );
    assert_eq!(text_of(&b, "#status").await, "rejected");
    assert_eq!(
        text_of(&b, "#reason").await,
        "Unknown company; write to partners@tsp.example"
    );
    let record = gw.store.enrollment(&yotta).unwrap();
    assert_eq!(record.state, EnrollmentState::Rejected);
    b.goto(&format!("{ui}/enrollments")).await.unwrap();
    wait_for_heading(&b, "Enrollments").await;
    let decided = text_of(&b, "#decided").await;
    assert!(
        decided.contains("ZETA-01") && decided.contains("Unknown company"),
        "{decided}"
    );
    assert!(text_of(&b, "main")
        .await
        .contains("No requests wait for review"));

    // A viewer: the queue and the request, no button; every change refused 403.
    let waiting = file_enrollment(&gw, 3, "Xenon Telecom", None);
    let viewer_password = "viewer-password-0123456789";
    let hash = partnergate::password::hash(&Password::new(viewer_password.into())).unwrap();
    gw.store
        .create_operator("test-setup", "vera", Role::Viewer, &hash)
        .unwrap();
    click(&b, Css("form.logout button")).await;
    b.wait().for_element(Css("#name")).await.unwrap();
    browser_login(&b, &ui, "vera", viewer_password).await;
    click(&b, Css("nav a[href='/ui/enrollments']")).await;
    wait_for_heading(&b, "Enrollments").await;
    assert!(text_of(&b, "#pending").await.contains("Xenon Telecom"));
    click(&b, Css(&format!("#enr-{waiting} a"))).await;
    wait_for_heading(&b, "Enrollment of Xenon Telecom").await;
    assert!(b.find_all(Css("main form")).await.unwrap().is_empty());
    assert!(b.find_all(Css("main button")).await.unwrap().is_empty());
    assert!(b.find(Id("approve")).await.is_err());
    screenshot(&b, "32-viewer-enrollment", WIDE).await;
    b.goto(&format!("{ui}/enrollments/{waiting}/approve"))
        .await
        .unwrap();
    wait_for_heading(&b, "Not allowed").await;
    // A forged approve with the session's own CSRF token.
    b.execute(
        "const f = document.createElement('form');
         f.method = 'post'; f.action = arguments[0];
         for (const [k, v] of [['csrf', document.querySelector('form.logout input[name=csrf]').value],
                               ['name', 'Forged'], ['allow', '198.51.100.0/29'], ['grant', '*']]) {
           const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i);
         }
         document.body.appendChild(f); f.submit();",
        vec![serde_json::json!(format!("/ui/enrollments/{waiting}/approve"))],
    )
    .await
    .unwrap();
    wait_for_heading(&b, "Not allowed").await;
    assert!(text_of(&b, "main")
        .await
        .contains("needs the operator role"));
    // The same over plain HTTP with the viewer's session: 403, for approve and reject.
    let cookie = b.get_named_cookie("pg_session").await.unwrap();
    let mut c = Client::new(gw.admin);
    c.cookies
        .insert("pg_session".into(), cookie.value().to_owned());
    let page = c.get(&format!("/ui/enrollments/{waiting}")).await;
    assert_eq!(page.status, 200);
    let csrf = page.csrf();
    for (action, form) in [
        ("approve", vec![("csrf", csrf.as_str()), ("name", "Forged")]),
        (
            "reject",
            vec![("csrf", csrf.as_str()), ("reason", "forged")],
        ),
    ] {
        let r = c
            .post(&format!("/ui/enrollments/{waiting}/{action}"), &form)
            .await;
        assert_eq!(r.status, 403, "{action}: {}", r.body);
    }
    assert_eq!(
        gw.store.enrollment(&waiting).unwrap().state,
        EnrollmentState::Pending
    );
    assert_eq!(gw.store.list_partners().unwrap().len(), 1, "only ZETA-01");
    b.close().await.unwrap();
}
