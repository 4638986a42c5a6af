#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Black-box tests of the real binary: `partner create` and `serve`.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use partnergate::envelope::SoapVersion;
use partnergate::generated::partner::Operation;
use partnergate::store::Store;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_partnergate"));
    cmd.current_dir(std::env::temp_dir());
    // The tests choose every setting; nothing may leak in from the environment.
    for (k, _) in std::env::vars() {
        if k.starts_with("PARTNERGATE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

/// A SQLite path, removed (with its companions) on drop.
struct Db(PathBuf);

impl Db {
    fn new() -> Db {
        Db(temp_path("cli", "db"))
    }

    fn url(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        remove_db(&self.0);
    }
}

fn create(db: &Db, args: &[&str]) -> Output {
    let mut cmd = bin();
    cmd.args(["partner", "create", "--json", "--database-url", &db.url()]);
    cmd.args(args);
    cmd.output().expect("run partner create")
}

struct Created {
    partner_id: String,
    api_key: String,
    callback_key: String,
}

fn create_ok(db: &Db, args: &[&str]) -> Created {
    let out = create(db, args);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "stdout {stdout}\nstderr {stderr}");
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let field = |k: &str| {
        v[k].as_str()
            .unwrap_or_else(|| panic!("{k} in {v}"))
            .to_string()
    };
    let c = Created {
        partner_id: field("partner_id"),
        api_key: field("api_key"),
        callback_key: field("callback_key"),
    };
    assert_eq!(v.as_object().unwrap().len(), 3, "{v}");
    assert!(
        c.api_key.starts_with("pgk_") && c.api_key.len() > 40,
        "{}",
        c.api_key
    );
    assert!(c.callback_key.starts_with("pgc_") && c.callback_key.len() > 40);
    // Each key is printed exactly once, and only on standard output.
    assert_eq!(stdout.matches(&c.api_key).count(), 1);
    assert_eq!(stdout.matches(&c.callback_key).count(), 1);
    assert!(
        !stderr.contains(&c.api_key) && !stderr.contains(&c.callback_key),
        "{stderr}"
    );
    c
}

#[test]
fn partner_create_prints_the_keys_once_as_json() {
    let db = Db::new();
    let c = create_ok(
        &db,
        &[
            "--name",
            "Acme Telecom",
            "--country",
            "DE",
            "--allow",
            "192.0.2.0/24",
            "--allow",
            "127.0.0.1",
            "--grant",
            "accounts.*",
            "--grant",
            "AddDevice",
        ],
    );
    assert_eq!(c.partner_id, "PARTNER-0001");
    let snapshot = Store::open(&db.url()).unwrap().load_snapshot().unwrap();
    let p = &snapshot.partners[&c.partner_id];
    assert_eq!(p.name, "Acme Telecom");
    assert_eq!(p.country.as_deref(), Some("DE"));
    let mut grants = p.grants.clone();
    grants.sort();
    assert_eq!(grants, ["accounts.*", "devices.add"]);
    let mut allow: Vec<String> = p.allow.iter().map(ToString::to_string).collect();
    allow.sort();
    assert_eq!(allow, ["127.0.0.1/32", "192.0.2.0/24"]);
    // The database keeps hashes, not keys.
    let raw = std::fs::read(&db.0).unwrap();
    let hay = String::from_utf8_lossy(&raw);
    assert!(!hay.contains(&c.api_key) && !hay.contains(&c.callback_key));
    // A second partner gets the next id and other keys.
    let d = create_ok(
        &db,
        &["--name", "Beta", "--allow", "10.0.0.0/8", "--grant", "*"],
    );
    assert_eq!(d.partner_id, "PARTNER-0002");
    assert_ne!(d.api_key, c.api_key);
}

#[test]
fn bad_partner_input_is_refused_and_writes_nothing() {
    let db = Db::new();
    create_ok(
        &db,
        &["--name", "First", "--allow", "127.0.0.1/32", "--grant", "*"],
    );
    let store = Store::open(&db.url()).unwrap();
    let revision = store.revision().unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &[
                "--name",
                "X",
                "--allow",
                "127.0.0.1/32",
                "--grant",
                "accounts.delete",
            ],
            &["grants", "accounts.delete"],
        ),
        (
            &[
                "--name",
                "X",
                "--allow",
                "127.0.0.1/32",
                "--grant",
                "billing.*",
            ],
            &["grants", "billing.*"],
        ),
        (
            &["--name", "X", "--allow", "10.0.0.0/33", "--grant", "*"],
            &["--allow", "10.0.0.0/33"],
        ),
        (
            &["--name", "X", "--allow", "not-an-ip", "--grant", "*"],
            &["--allow", "not-an-ip"],
        ),
        (
            &[
                "--name",
                "X",
                "--country",
                "Germany",
                "--allow",
                "127.0.0.1/32",
                "--grant",
                "*",
            ],
            &["country", "Germany"],
        ),
        (
            &[
                "--name",
                "X",
                "--country",
                "de",
                "--allow",
                "127.0.0.1/32",
                "--grant",
                "*",
            ],
            &["country", "de"],
        ),
        (
            &["--name", " X", "--allow", "127.0.0.1/32", "--grant", "*"],
            &["name"],
        ),
        (
            &[
                "--name",
                "X",
                "--id",
                "PARTNER-0001",
                "--allow",
                "127.0.0.1/32",
                "--grant",
                "*",
            ],
            &["PARTNER-0001", "exists"],
        ),
    ];
    for (args, words) in cases {
        let out = create(&db, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            out.stdout.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for w in *words {
            assert!(
                stderr.contains(w),
                "{args:?}: the message names {w:?}: {stderr}"
            );
        }
        assert!(
            !stderr.contains("pgk_") && !stderr.contains("pgc_"),
            "{stderr}"
        );
        assert!(
            stderr.lines().count() <= 3,
            "a clear message, not a trace: {stderr}"
        );
    }
    assert_eq!(store.revision().unwrap(), revision, "nothing was written");
    assert_eq!(store.load_snapshot().unwrap().partners.len(), 1);
}

/// The store refuses an allowlist network with host bits ("10.1.2.3/8 has host bits set; did
/// you mean 10.0.0.0/8?"): an operator who typed a prefix length by mistake must not silently
/// open a whole network.
#[test]
fn an_allow_network_with_host_bits_is_refused() {
    let db = Db::new();
    let out = create(
        &db,
        &["--name", "X", "--allow", "10.1.2.3/8", "--grant", "*"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() {
        let snapshot = Store::open(&db.url()).unwrap().load_snapshot().unwrap();
        let allow: Vec<String> = snapshot
            .partners
            .values()
            .flat_map(|p| p.allow.iter().map(ToString::to_string))
            .collect();
        panic!("--allow 10.1.2.3/8 was accepted and stored as {allow:?}");
    }
    assert!(stdout.is_empty());
    assert!(stderr.contains("10.1.2.3/8"), "{stderr}");
}

#[test]
fn bad_partner_input_creates_no_database() {
    let db = Db::new();
    for args in [
        &["--name", "X", "--allow", "10.0.0.0/33", "--grant", "*"][..],
        &["--name", "X", "--allow", "127.0.0.1/32", "--grant", "nope"][..],
        &[
            "--name",
            "X",
            "--country",
            "Germany",
            "--allow",
            "127.0.0.1/32",
            "--grant",
            "*",
        ][..],
    ] {
        let out = create(&db, args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            !db.0.exists(),
            "{args:?} was refused but left a new database file at {}",
            db.0.display()
        );
    }
}

/// A child process killed on drop (a failing test leaves nothing running).
struct Running {
    child: Child,
    stderr: PathBuf,
}

impl Running {
    fn spawn(cmd: &mut Command) -> Running {
        let stderr = temp_path("serve-stderr", "log");
        let file = std::fs::File::create(&stderr).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn serve");
        Running { child, stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Polls for the exit within `limit`.
    fn exit_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr);
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Waits (bounded) until `/healthz` answers.
async fn wait_healthy(addr: std::net::SocketAddr, server: &mut Running) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            let r = get(addr, "/healthz", None).await;
            assert_eq!(r.status, 200);
            return;
        }
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("serve exited with {status}: {}", server.stderr());
        }
        assert!(
            Instant::now() < deadline,
            "serve did not listen: {}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_forwards_a_call_and_stops_on_sigterm() {
    let db = Db::new();
    let c = create_ok(
        &db,
        &["--name", "Acme", "--allow", "127.0.0.1/32", "--grant", "*"],
    );
    let up = StubUpstream::start(Reply::Fixture).await;
    let port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut server = Running::spawn(bin().args([
        "serve",
        "--listen",
        &addr.to_string(),
        "--database-url",
        &db.url(),
        "--upstream",
        &up.url,
    ]));
    wait_healthy(addr, &mut server).await;

    let partner = Partner {
        id: c.partner_id.clone(),
        key: c.api_key.clone(),
        callback_key: c.callback_key.clone(),
    };
    for version in [SoapVersion::Soap11, SoapVersion::Soap12] {
        let body = request_fixture(Operation::GetAccount, version, &partner);
        let resp = post_soap(
            addr,
            version,
            Some(Operation::GetAccount.soap_action()),
            &body,
        )
        .await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(
            resp.body,
            canonical_response(Operation::GetAccount, version),
            "{}",
            resp.text()
        );
        let got = up.take();
        assert_eq!(got.len(), 1);
        assert_canonical_upstream(&got[0], &body, &partner.id, &resp.request_id());
    }
    // A refusal, for the log.
    let body = personalize(
        &fixture("GetAccount/request.xml"),
        &partner.id,
        &format!("{}x", &partner.key[..partner.key.len() - 1]),
    );
    let resp = post_soap(addr, SoapVersion::Soap11, None, &body).await;
    assert_eq!(resp.status, 500);
    assert_eq!(up.count(), 0);

    // Access lines are buffered (log_flush_ms, default 100 ms) but reach the log file while
    // the server runs, without colour codes (stderr is a file here, not a terminal).
    let access_lines = |log: &str| {
        log.lines()
            .filter(|l| l.contains("partnergate::access"))
            .count()
    };
    let start = std::time::Instant::now();
    while access_lines(&server.stderr()) < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "access lines not written: {}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !server.stderr().contains('\x1b'),
        "colour codes in a log file"
    );

    server.terminate();
    let status = server
        .exit_within(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("serve did not stop on SIGTERM: {}", server.stderr()));
    let stderr = server.stderr();
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(
        !stderr.contains(&c.api_key),
        "the API key was logged: {stderr}"
    );
    assert!(
        !stderr.contains(&c.callback_key),
        "the callback key was logged"
    );
    assert!(
        !stderr.contains(&c.api_key[4..20]),
        "part of the API key was logged"
    );
    assert!(stderr.contains("listening"), "{stderr}");
    assert!(
        stderr.contains("shutting down"),
        "lines buffered at shutdown are written: {stderr}"
    );
    assert_eq!(access_lines(&stderr), 3, "{stderr}");
    assert!(db.0.exists());
    // Without an admin token the admin API is off, and the log says so; the database in use
    // is named.
    assert!(
        stderr.contains("admin API and dashboard off: no admin.token configured"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("database=\"{}\"", db.url()))
            || stderr.contains(&format!("database={}", db.url())),
        "{stderr}"
    );
}

/// `upstream serve` names the database it opened (it defaults to ./partnergate.db).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_serve_logs_its_database() {
    let db = Db::new();
    let port = free_port();
    let server = Running::spawn(bin().args([
        "upstream",
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--gateway-secret",
        "0123456789abcdef0123",
        "--database-url",
        &db.url(),
    ]));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !server.stderr().contains("partner API layer listening") {
        assert!(Instant::now() < deadline, "{}", server.stderr());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let stderr = server.stderr();
    assert!(stderr.contains("partner API layer database"), "{stderr}");
    assert!(stderr.contains(&db.url()), "{stderr}");
}
