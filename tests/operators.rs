//! Operator accounts and roles, black-box against the real binary (`partnergate serve` on
//! 127.0.0.1, `tests/common/serve.rs`) and its CLI:
//! - every admin operation is allowed exactly for the roles that may run it, through the admin
//!   API and through the CLI (`--as` / `PARTNERGATE_OPERATOR_TOKEN`), from one table each;
//! - audit rows name the operator;
//! - dashboard logins are throttled (the Nth bad password 429 with `Retry-After`, the right
//!   password refused during the lock, the lock ends);
//! - a disabled operator's session and token are refused within a second on a second node
//!   sharing the (PostgreSQL) database.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;
#[path = "common/db.rs"]
#[allow(dead_code, reason = "a part of it is used here")]
mod db;
#[path = "common/serve.rs"]
mod serve;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use db::Db;
use serve::Binary;

const BOOTSTRAP: &str = "bootstrap-token-for-operator-tests-0123";
const ROLES: [&str; 3] = ["viewer", "operator", "admin"];

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).unwrap()
}

// === HTTP ===

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

    fn cookies(&self) -> Vec<(String, String)> {
        self.head
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                if !k.eq_ignore_ascii_case("set-cookie") {
                    return None;
                }
                let pair = v.trim().split(';').next()?;
                let (n, v) = pair.split_once('=')?;
                Some((n.to_owned(), v.to_owned()))
            })
            .collect()
    }
}

async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[String], body: &str) -> Resp {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .expect("answered in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    Resp {
        status: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// An admin API call with a bearer token and a JSON body.
async fn api(addr: SocketAddr, token: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    let headers = [
        format!("Authorization: Bearer {token}"),
        "Content-Type: application/json".to_owned(),
    ];
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    send(addr, method, &format!("/admin/v1{path}"), &headers, &body).await
}

/// A browser without a browser: cookies kept, forms posted.
struct Browser {
    addr: SocketAddr,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new(addr: SocketAddr) -> Browser {
        Browser {
            addr,
            cookies: BTreeMap::new(),
        }
    }

    async fn request(&mut self, method: &str, path: &str, form: &[(&str, &str)]) -> Resp {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut headers = vec![format!("Cookie: {cookie}")];
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        if method == "POST" {
            headers.push("Content-Type: application/x-www-form-urlencoded".to_owned());
        }
        let r = send(self.addr, method, path, &headers, &body).await;
        for (k, v) in r.cookies() {
            if v.is_empty() {
                self.cookies.remove(&k);
            } else {
                self.cookies.insert(k, v);
            }
        }
        r
    }

    /// Posts the login form (a fresh form each time, as a browser would).
    async fn login(&mut self, name: &str, password: &str) -> Resp {
        let page = self.request("GET", "/ui/login", &[]).await;
        let csrf = csrf(&page.body);
        self.request(
            "POST",
            "/ui/login",
            &[("csrf", &csrf), ("name", name), ("password", password)],
        )
        .await
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn csrf(body: &str) -> String {
    let at = body
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    body[at..at + 64].to_owned()
}

// === the node ===

/// Admin listener environment for a node: its own free port, the bootstrap token, a short lock.
fn admin_env(extra: &[(&str, String)]) -> (SocketAddr, Vec<(&'static str, String)>) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut env = vec![
        ("PARTNERGATE_ADMIN_LISTEN", addr.to_string()),
        ("PARTNERGATE_ADMIN_TOKEN", BOOTSTRAP.to_owned()),
    ];
    for (k, v) in extra {
        let k: &'static str = match *k {
            "PARTNERGATE_ADMIN_LOGIN_MAX_FAILURES" => "PARTNERGATE_ADMIN_LOGIN_MAX_FAILURES",
            "PARTNERGATE_ADMIN_LOGIN_LOCK_MS" => "PARTNERGATE_ADMIN_LOGIN_LOCK_MS",
            other => panic!("unexpected {other}"),
        };
        env.push((k, v.clone()));
    }
    (addr, env)
}

/// The first admin through the bootstrap token: its API token and password.
async fn bootstrap(admin: SocketAddr) -> (String, String) {
    let r = api(
        admin,
        BOOTSTRAP,
        "POST",
        "/bootstrap",
        Some(json!({"name": "root"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    assert_eq!(v["operator"]["role"], "admin");
    // Once only; and the bootstrap token opens nothing else.
    let again = api(
        admin,
        BOOTSTRAP,
        "POST",
        "/bootstrap",
        Some(json!({"name": "root2"})),
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(
        api(admin, BOOTSTRAP, "GET", "/partners", None).await.status,
        401
    );
    (
        v["token"].as_str().unwrap().to_owned(),
        v["password"].as_str().unwrap().to_owned(),
    )
}

/// Creates an operator with `role` as `admin_token`: its password and an API token.
async fn operator(
    admin: SocketAddr,
    admin_token: &str,
    name: &str,
    role: &str,
) -> (String, String) {
    let r = api(
        admin,
        admin_token,
        "POST",
        "/operators",
        Some(json!({"name": name, "role": role})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let password = r.json()["password"].as_str().unwrap().to_owned();
    let r = api(
        admin,
        admin_token,
        "POST",
        &format!("/operators/{name}/tokens"),
        Some(json!({"label": "tests"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    (password, r.json()["token"].as_str().unwrap().to_owned())
}

fn upstream() -> String {
    common::closed_port_url()
}

// === who may do what ===

/// Every admin operation through the API: method, path, body (`{p}` partner, `{g}` group,
/// `{t}` an operator to act on, `{id}` its token's id, `{r}` the role acting) and the lowest
/// role that may run it. Ordered so that each succeeds when allowed (offboarding and the
/// group's rename last).
const API_TABLE: &[(&str, &str, &str, &str)] = &[
    ("GET", "/partners", "", "viewer"),
    (
        "POST",
        "/partners",
        r#"{"name": "New {r}", "allow": ["192.0.2.1"], "grants": ["*"]}"#,
        "operator",
    ),
    ("GET", "/partners/{p}", "", "viewer"),
    (
        "PATCH",
        "/partners/{p}",
        r#"{"contact": "Jane"}"#,
        "operator",
    ),
    ("GET", "/partners/{p}/keys", "", "viewer"),
    (
        "POST",
        "/partners/{p}/keys/rotate",
        r#"{"overlap": "0"}"#,
        "operator",
    ),
    (
        "POST",
        "/partners/{p}/keys/revoke",
        r#"{"kind": "callback"}"#,
        "operator",
    ),
    ("GET", "/partners/{p}/allowlist", "", "viewer"),
    (
        "POST",
        "/partners/{p}/allowlist",
        r#"{"cidr": "198.51.100.0/24"}"#,
        "operator",
    ),
    (
        "POST",
        "/partners/{p}/allowlist/remove",
        r#"{"cidr": "198.51.100.0/24"}"#,
        "operator",
    ),
    ("GET", "/partners/{p}/grants", "", "viewer"),
    (
        "POST",
        "/partners/{p}/grants",
        r#"{"permission": "devices.*"}"#,
        "operator",
    ),
    (
        "POST",
        "/partners/{p}/grants/revoke",
        r#"{"permission": "devices.*"}"#,
        "operator",
    ),
    (
        "PUT",
        "/partners/{p}/throttle",
        r#"{"per_second": 5, "burst": 10}"#,
        "operator",
    ),
    ("DELETE", "/partners/{p}/throttle", "", "operator"),
    (
        "PUT",
        "/partners/{p}/callback-throttle",
        r#"{"per_second": 2, "burst": 5}"#,
        "operator",
    ),
    ("DELETE", "/partners/{p}/callback-throttle", "", "operator"),
    (
        "PUT",
        "/partners/{p}/group",
        r#"{"group": "{g}"}"#,
        "operator",
    ),
    ("GET", "/groups", "", "viewer"),
    ("POST", "/groups", r#"{"name": "new-{r}"}"#, "admin"),
    ("GET", "/groups/{g}", "", "viewer"),
    (
        "PUT",
        "/groups/{g}/throttle",
        r#"{"rate": {"per_second": 5, "burst": 5}}"#,
        "operator",
    ),
    ("DELETE", "/groups/{g}/throttle", "", "operator"),
    ("GET", "/audit?limit=5", "", "viewer"),
    ("GET", "/nodes", "", "viewer"),
    ("POST", "/partners/{p}/suspend", "", "operator"),
    ("POST", "/partners/{p}/reinstate", "", "operator"),
    ("GET", "/operators", "", "admin"),
    (
        "POST",
        "/operators",
        r#"{"name": "made-by-{r}", "role": "viewer"}"#,
        "admin",
    ),
    (
        "PUT",
        "/operators/{t}/role",
        r#"{"role": "operator"}"#,
        "admin",
    ),
    ("GET", "/operators/{t}/tokens", "", "admin"),
    (
        "POST",
        "/operators/{t}/tokens",
        r#"{"label": "x"}"#,
        "admin",
    ),
    (
        "POST",
        "/operators/{t}/tokens/revoke",
        r#"{"id": {id}}"#,
        "admin",
    ),
    ("POST", "/operators/{t}/reset-password", "", "admin"),
    ("POST", "/operators/{t}/disable", "", "admin"),
    ("POST", "/operators/{t}/enable", "", "admin"),
    ("POST", "/partners/{p}/offboard", "", "operator"),
    (
        "PATCH",
        "/groups/{g}",
        r#"{"name": "renamed-{r}"}"#,
        "admin",
    ),
];

/// The same operations through the CLI: arguments (placeholders as above) and the lowest role.
const CLI_TABLE: &[(&str, &str)] = &[
    ("partner list", "viewer"),
    (
        "partner create --name New --allow 192.0.2.1 --grant *",
        "operator",
    ),
    ("partner show {p}", "viewer"),
    ("partner update {p} --contact Jane", "operator"),
    ("key list {p}", "viewer"),
    ("key rotate {p} --overlap 0", "operator"),
    ("key revoke {p} --kind callback", "operator"),
    ("allow list {p}", "viewer"),
    ("allow add {p} 198.51.100.0/24", "operator"),
    ("allow remove {p} 198.51.100.0/24", "operator"),
    ("grant list {p}", "viewer"),
    ("grant add {p} devices.*", "operator"),
    ("grant revoke {p} devices.*", "operator"),
    ("throttle set --partner {p} --rate 5 --burst 10", "operator"),
    ("throttle clear --partner {p}", "operator"),
    (
        "throttle set --partner {p} --callback-rate 2 --callback-burst 5",
        "operator",
    ),
    ("throttle clear --partner {p} --callback", "operator"),
    ("group assign {p} {g}", "operator"),
    ("group list", "viewer"),
    ("group create cli-new-{r}", "admin"),
    ("group show {g}", "viewer"),
    ("throttle set --group {g} --rate 5 --burst 5", "operator"),
    ("throttle clear --group {g}", "operator"),
    ("audit list --limit 5", "viewer"),
    ("nodes", "viewer"),
    ("partner suspend {p}", "operator"),
    ("partner reinstate {p}", "operator"),
    ("operator list", "admin"),
    (
        "operator create --name cli-made-by-{r} --role viewer",
        "admin",
    ),
    ("operator set-role --name {t} --role operator", "admin"),
    ("operator token list --name {t}", "admin"),
    ("operator token create --name {t} --label x", "admin"),
    ("operator token revoke --name {t} --id {id}", "admin"),
    ("operator reset-password --name {t}", "admin"),
    ("operator disable --name {t}", "admin"),
    ("operator enable --name {t}", "admin"),
    ("partner offboard {p}", "operator"),
    ("group update {g} --rename cli-renamed-{r}", "admin"),
];

/// What each role acts on: a partner, a group and an operator of its own, made by the admin.
struct Targets {
    partner: String,
    group: String,
    operator: String,
    token_id: i64,
}

async fn targets(admin: SocketAddr, root: &str, tag: &str) -> Targets {
    let r = api(
        admin,
        root,
        "POST",
        "/partners",
        Some(json!({"name": format!("Target {tag}"), "allow": ["192.0.2.9"], "grants": ["*"]})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let partner = r.json()["partner_id"].as_str().unwrap().to_owned();
    let group = format!("group-{tag}");
    let r = api(admin, root, "POST", "/groups", Some(json!({"name": group}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let operator = format!("target-{tag}");
    self::operator(admin, root, &operator, "viewer").await;
    let r = api(
        admin,
        root,
        "GET",
        &format!("/operators/{operator}/tokens"),
        None,
    )
    .await;
    let token_id = r.json()["tokens"][0]["id"].as_i64().unwrap();
    Targets {
        partner,
        group,
        operator,
        token_id,
    }
}

fn fill(template: &str, t: &Targets, role: &str) -> String {
    template
        .replace("{p}", &t.partner)
        .replace("{g}", &t.group)
        .replace("{t}", &t.operator)
        .replace("{id}", &t.token_id.to_string())
        .replace("{r}", role)
}

fn cli(db: &str, token: &str, args: &str) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_partnergate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PARTNERGATE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("PARTNERGATE_DATABASE_URL", db)
        .env("PARTNERGATE_OPERATOR_TOKEN", token)
        .args(args.split(' '))
        .output()
        .unwrap()
}

/// Through the API and the CLI: each operation of the tables is allowed for every role at or
/// above its own (a success status / exit 0) and refused for every role below (403 / exit 1
/// naming the role, nothing written); audit rows name the operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_allowed_exactly_for_its_roles() {
    let db = Db::sqlite_tagged("operators");
    let url = db.url();
    let (admin, env) = admin_env(&[]);
    let node = Binary::serve_url(&url, &upstream(), &env).await;
    let (root, _) = bootstrap(admin).await;
    let mut tokens = BTreeMap::new();
    for role in ROLES {
        let (_, token) = operator(admin, &root, &format!("{role}-user"), role).await;
        tokens.insert(role, token);
    }

    let mut acted_on = BTreeMap::new();
    for role in ROLES {
        let t = targets(admin, &root, &format!("api-{role}")).await;
        for (method, path, body, needed) in API_TABLE {
            let path = fill(path, &t, role);
            let body = (!body.is_empty()).then(|| fill(body, &t, role));
            let value = body.as_deref().map(|b| serde_json::from_str(b).unwrap());
            let r = api(admin, &tokens[role], method, &path, value).await;
            if rank(role) >= rank(needed) {
                assert!(
                    (200..300).contains(&r.status),
                    "{role} may {method} {path}: {} {}",
                    r.status,
                    r.body
                );
            } else {
                assert_eq!(r.status, 403, "{role} may not {method} {path}: {}", r.body);
                let error = r.json()["error"].as_str().unwrap().to_owned();
                assert!(
                    error.contains(&format!("needs the {needed} role")),
                    "{error}"
                );
            }
        }
        acted_on.insert(("api", role), t.partner);
    }

    for role in ROLES {
        let t = targets(admin, &root, &format!("cli-{role}")).await;
        for (args, needed) in CLI_TABLE {
            let args = fill(args, &t, role);
            let out = cli(&url, &tokens[role], &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if rank(role) >= rank(needed) {
                assert!(out.status.success(), "{role} may `{args}`: {stderr}");
            } else {
                assert_eq!(out.status.code(), Some(1), "{role} may not `{args}`");
                assert!(
                    stderr.contains(&format!("forbidden: this needs the {needed} role")),
                    "{role} `{args}`: {stderr}"
                );
            }
        }
        acted_on.insert(("cli", role), t.partner);
    }
    // No operation is missing from a table: one row per admin request, in both.
    assert_eq!(API_TABLE.len(), CLI_TABLE.len());

    // Audit rows name the operator and where it acted from.
    let r = api(admin, &root, "GET", "/audit?limit=1000", None).await;
    let entries = r.json()["entries"].as_array().unwrap().clone();
    let actor_of = |action: &str, target: &str| -> Vec<String> {
        entries
            .iter()
            .filter(|e| e["action"] == action && e["target"] == target)
            .map(|e| e["actor"].as_str().unwrap().to_owned())
            .collect()
    };
    let actors = actor_of("partner.suspend", &acted_on[&("api", "operator")]);
    assert_eq!(actors.len(), 1, "{actors:?}");
    assert!(
        actors[0].starts_with("op:operator-user/api:127.0.0.1:"),
        "{actors:?}"
    );
    let actors = actor_of("partner.suspend", &acted_on[&("cli", "admin")]);
    assert_eq!(actors.len(), 1, "{actors:?}");
    assert!(actors[0].starts_with("op:admin-user/cli:"), "{actors:?}");
    let made = actor_of("operator.create", "operator:viewer-user");
    assert!(made[0].starts_with("op:root/api:127.0.0.1:"), "{made:?}");
    let first = actor_of("operator.create", "operator:root");
    assert!(
        first[0].starts_with("bootstrap/api:127.0.0.1:"),
        "{first:?}"
    );
    // No secret in any row.
    let text = r.body.clone();
    for token in tokens.values() {
        assert!(!text.contains(token.as_str()));
    }
    drop(node);
}

// === login throttling ===

/// Three bad passwords lock the name: the third is answered 429 with `Retry-After`, the right
/// password is refused during the lock, and works after it; an unknown name reads the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_lock_the_account_for_a_while() {
    let db = Db::sqlite_tagged("operators-login");
    let (admin, env) = admin_env(&[
        ("PARTNERGATE_ADMIN_LOGIN_MAX_FAILURES", "3".into()),
        ("PARTNERGATE_ADMIN_LOGIN_LOCK_MS", "1500".into()),
    ]);
    let node = Binary::serve_url(&db.url(), &upstream(), &env).await;
    let (root, _) = bootstrap(admin).await;
    let (password, _) = operator(admin, &root, "alice", "operator").await;

    let mut b = Browser::new(admin);
    for name in ["alice", "nobody"] {
        for attempt in 1..=2 {
            let r = b.login(name, "wrong-password").await;
            assert_eq!(r.status, 401, "{name} attempt {attempt}: {}", r.body);
            assert!(r.body.contains("do not match an enabled operator"));
        }
        let r = b.login(name, "wrong-password").await;
        assert_eq!(r.status, 429, "{name}: the third failure locks");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry), "{retry}");
        assert!(r.body.contains("Too many failed logins"));
    }
    // The right password during the lock: refused, unchecked.
    let r = b.login("alice", &password).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(!b.cookies.contains_key("pg_session"));
    // The lock ends (1.5 s from the third failure).
    let started = Instant::now();
    let r = loop {
        let r = b.login("alice", &password).await;
        if r.status != 429 {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the lock did not end"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(b.cookies.contains_key("pg_session"));
    let page = b.request("GET", "/ui/partners", &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("alice (operator)"));
    // Nothing typed was logged.
    assert!(!node.log().contains(&password));
    assert!(!node.log().contains("wrong-password"));
}

// === disabling, across nodes ===

/// Two nodes on one PostgreSQL database: an operator logged in (and with a token) through
/// node A is disabled through A; node B refuses its session and its token within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_operator_is_refused_on_every_node_within_a_second() {
    let db = Db::postgres_tagged("operators");
    let url = db.url();
    let (admin_a, env_a) = admin_env(&[]);
    let (admin_b, env_b) = admin_env(&[]);
    let node_a = Binary::serve_url(&url, &upstream(), &env_a).await;
    let node_b = Binary::serve_url(&url, &upstream(), &env_b).await;
    let (root, _) = bootstrap(admin_a).await;
    let (password, token) = operator(admin_a, &root, "leaver", "operator").await;

    let mut b = Browser::new(admin_a);
    assert_eq!(b.login("leaver", &password).await.status, 303);
    // The session and the token work on B.
    b.addr = admin_b;
    assert_eq!(b.request("GET", "/ui/partners", &[]).await.status, 200);
    assert_eq!(
        api(admin_b, &token, "GET", "/partners", None).await.status,
        200
    );

    let r = api(admin_a, &root, "POST", "/operators/leaver/disable", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let disabled = Instant::now();
    let (mut session_gone, mut token_gone) = (None, None);
    while session_gone.is_none() || token_gone.is_none() {
        if session_gone.is_none() {
            let r = b.request("GET", "/ui/partners", &[]).await;
            if r.status == 303 && r.header("location").as_deref() == Some("/ui/login") {
                session_gone = Some(disabled.elapsed());
            }
        }
        if token_gone.is_none()
            && api(admin_b, &token, "GET", "/partners", None).await.status == 401
        {
            token_gone = Some(disabled.elapsed());
        }
        assert!(
            disabled.elapsed() < Duration::from_secs(1),
            "still accepted after 1 s: session {session_gone:?}, token {token_gone:?}"
        );
    }
    println!("refused on node B after: session {session_gone:?}, token {token_gone:?}");
    // And its password no longer logs in anywhere.
    let mut again = Browser::new(admin_b);
    assert_eq!(again.login("leaver", &password).await.status, 401);
    drop((node_a, node_b));
}
