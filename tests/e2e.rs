//! The whole system, as partners and operators meet it: the real `partnergate` binary, onboarded
//! through its CLI, called by clients that real SOAP toolkits generate from the WSDL the gateway
//! publishes (zeep; node-soap), over HTTP and TLS, with the partner API layer in process or as a
//! second process, on SQLite and on PostgreSQL.
//!
//! Needs the toolkits `.ci/setup` installs (the zeep venv, node-soap) and, for the PostgreSQL
//! case, `PARTNERGATE_TEST_POSTGRES_URL` (set by `tests/run.sh`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_partnergate")
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn venv_python() -> PathBuf {
    let venv = std::env::var("PARTNERGATE_VENV").unwrap_or_else(|_| "/opt/partnergate/venv".into());
    let python = Path::new(&venv).join("bin/python");
    assert!(
        python.exists(),
        "{} not found: zeep is not installed; run `sudo .ci/setup`",
        python.display()
    );
    python
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process that is killed when the test ends, whatever happens.
struct Proc {
    child: Child,
    name: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Sends SIGTERM and waits for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "{} exited with {status}", self.name);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop on SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn spawn(name: &'static str, args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env("RUST_LOG", "partnergate=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn partnergate");
    // Drain stderr so the child never blocks on a full pipe; keep it for failures.
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[{name}] {line}");
        }
    });
    Proc { child, name }
}

/// Waits until `url` answers (plain HTTP `GET /readyz` with 200).
fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s
                .write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        assert!(Instant::now() < deadline, "port {port} never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until a TCP port accepts connections (for the TLS listener and the upstream).
fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Onboarded {
    partner_id: String,
    api_key: String,
}

/// `partnergate partner create --json` through the CLI.
fn onboard(database_url: &str, name: &str) -> Onboarded {
    let out = Command::new(bin())
        .args([
            "partner",
            "create",
            "--name",
            name,
            "--allow",
            "127.0.0.1/32",
            "--grant",
            "*",
            "--feature-default",
            "VOICEMAIL.EmailNotification=true",
            "--json",
            "--database-url",
            database_url,
        ])
        .output()
        .expect("partner create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    Onboarded {
        partner_id: v["partner_id"].as_str().expect("partner_id").to_string(),
        api_key: v["api_key"].as_str().expect("api_key").to_string(),
    }
}

fn run_zeep(base: &str, a: &Onboarded, b: &Onboarded, ca: Option<&Path>) -> serde_json::Value {
    let mut cmd = Command::new(venv_python());
    cmd.arg(root().join("tests/clients/zeep_scenario.py"))
        .args([base, &a.partner_id, &a.api_key, &b.partner_id, &b.api_key]);
    if let Some(ca) = ca {
        cmd.arg(ca);
    }
    let out = cmd.output().expect("run zeep");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "zeep scenario failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("JSON result")
}

fn run_node(base: &str, a: &Onboarded, ca: Option<&Path>) -> serde_json::Value {
    let node_modules = root().join("tests/toolkits/node/node_modules");
    assert!(
        node_modules.join("soap").exists(),
        "node-soap is not installed: run `sudo .ci/setup`"
    );
    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/clients/node_call.js"))
        .args([base, &a.partner_id, &a.api_key])
        .env("NODE_PATH", &node_modules);
    if let Some(ca) = ca {
        cmd.env("NODE_EXTRA_CA_CERTS", ca);
    }
    let out = cmd.output().expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node-soap call failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("JSON result")
}

fn temp_db(tag: &str) -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("pg-e2e-{tag}-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = dir.join("partnergate.db").display().to_string();
    (dir, url)
}

#[test]
fn zeep_scenario_with_the_embedded_layer_on_sqlite() {
    let (_dir, db) = temp_db("embedded");
    let a = onboard(&db, "Acme Telecom");
    let b = onboard(&db, "Beta Mobile");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let gw = spawn(
        "gateway",
        &["serve", "--listen", &listen, "--database-url", &db],
        &[],
    );
    wait_ready(port);
    let base = format!("http://127.0.0.1:{port}");
    let result = run_zeep(&base, &a, &b, None);
    assert_eq!(result["ok"], true);
    let node = run_node(&base, &a, None);
    assert_eq!(node["ok"], true);
    gw.stop();
}

#[test]
fn zeep_scenario_with_gateway_and_layer_as_two_processes() {
    let (_dir, db) = temp_db("two");
    let a = onboard(&db, "Acme Telecom");
    let b = onboard(&db, "Beta Mobile");
    let secret = "s3cret-shared-by-gateway-and-layer";
    let up_port = free_port();
    let up_listen = format!("127.0.0.1:{up_port}");
    let layer = spawn(
        "layer",
        &[
            "upstream",
            "serve",
            "--listen",
            &up_listen,
            "--database-url",
            &db,
        ],
        &[("PARTNERGATE_UPSTREAM_GATEWAY_SECRET", secret)],
    );
    wait_listening(up_port);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let upstream = format!("http://127.0.0.1:{up_port}/soap/partner/v1");
    let gw = spawn(
        "gateway",
        &[
            "serve",
            "--listen",
            &listen,
            "--database-url",
            &db,
            "--upstream",
            &upstream,
        ],
        &[("PARTNERGATE_UPSTREAM_GATEWAY_SECRET", secret)],
    );
    wait_ready(port);
    let result = run_zeep(&format!("http://127.0.0.1:{port}"), &a, &b, None);
    assert_eq!(result["ok"], true);

    // A direct call to the layer that bypasses the gateway is refused, secret or not.
    let body = std::fs::read(root().join("tests/data/GetAccount/request.xml")).expect("fixture");
    for secret_header in [None, Some("wrong-secret-of-the-right-length!!")] {
        let mut req = format!(
            "POST /soap/partner/v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        if let Some(s) = secret_header {
            req.push_str(&format!("X-Partnergate-Gateway-Secret: {s}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(&body);
        let answer = raw_exchange(up_port, &bytes);
        assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
        assert!(answer.contains("AccessDeniedFault"), "{answer}");
    }
    gw.stop();
    layer.stop();
}

#[test]
fn zeep_and_node_over_tls() {
    let (_dir, db) = temp_db("tls");
    let a = onboard(&db, "Acme Telecom");
    let b = onboard(&db, "Beta Mobile");
    let pki = common::test_pki();
    let ca_path = std::env::temp_dir().join(format!("pg-ca-{}.pem", rand::random::<u64>()));
    std::fs::write(&ca_path, &pki.ca_pem).expect("write CA");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let gw = spawn(
        "gateway",
        &[
            "serve",
            "--listen",
            &listen,
            "--database-url",
            &db,
            "--tls-cert",
            pki.cert_path.to_str().expect("path"),
            "--tls-key",
            pki.key_path.to_str().expect("path"),
            "--public-url",
            &format!("https://localhost:{port}"),
        ],
        &[],
    );
    wait_listening(port);
    let base = format!("https://localhost:{port}");
    let result = run_zeep(&base, &a, &b, Some(&ca_path));
    assert_eq!(result["ok"], true);
    let node = run_node(&base, &a, Some(&ca_path));
    assert_eq!(node["ok"], true);
    gw.stop();
    let _ = std::fs::remove_file(&ca_path);
}

#[test]
fn zeep_scenario_on_postgresql_with_two_processes() {
    let (url, name, db) = common::fresh_postgres_database("e2e");
    let a = onboard(&db, "Acme Telecom");
    let b = onboard(&db, "Beta Mobile");
    let secret = "s3cret-shared-by-gateway-and-layer";
    let up_port = free_port();
    let layer = spawn(
        "layer",
        &[
            "upstream",
            "serve",
            "--listen",
            &format!("127.0.0.1:{up_port}"),
            "--database-url",
            &db,
        ],
        &[("PARTNERGATE_UPSTREAM_GATEWAY_SECRET", secret)],
    );
    wait_listening(up_port);
    let port = free_port();
    let gw = spawn(
        "gateway",
        &[
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &db,
            "--upstream",
            &format!("http://127.0.0.1:{up_port}/soap/partner/v1"),
        ],
        &[("PARTNERGATE_UPSTREAM_GATEWAY_SECRET", secret)],
    );
    wait_ready(port);
    let result = run_zeep(&format!("http://127.0.0.1:{port}"), &a, &b, None);
    assert_eq!(result["ok"], true);
    gw.stop();
    layer.stop();
    common::psql(&url, &format!("DROP DATABASE {name} WITH (FORCE)"));
}

fn raw_exchange(port: u16, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
