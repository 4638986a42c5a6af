//! SOAP toolkit conformance: every published WSDL must load and generate a working
//! client in the toolkits partners use (zeep, JAX-WS wsimport, gSOAP, node-soap).
//!
//! Each test runs one script from `tests/toolkits/` on every WSDL: the full partner WSDL,
//! its SOAP 1.1-only view, the callback WSDL and its SOAP 1.1-only view, and the enrollment
//! WSDL and its SOAP 1.1-only view. The script checks that every operation and port is in the
//! generated client, and every header a binding input binds, on every operation; the
//! enrollment contract binds no soap:header anywhere (the anonymous enrollment endpoint), so
//! there the script checks the opposite: the client's operations take no header. The
//! enrollment WSDLs are covered for client generation only (no live call here; its flow is
//! called through zeep in tests/enrollment.rs).
//!
//! For the two partner WSDLs the script's generated client also calls a real gateway started
//! here (in process, with the reference partner API layer) on every port it has, and must
//! surface each of these as the toolkit's typed fault: a wrong key (`AccessDeniedFault`
//! `authentication-failed`), an account that does not exist (`NotFoundFault` `account`)
//! and a throttled partner (`ThrottledFault` with `RetryAfterSeconds`). The script prints
//! `LIVE-OK <soap11|soap12> …` per SOAP version it called; the test requires the versions
//! the toolkit has for that WSDL ([`live_versions`]).
//!
//! The toolkits are installed by `.ci/setup`; a missing toolkit is a test FAILURE, never a
//! skip. Run one toolkit with `cargo test --test toolkits gsoap -- --nocapture` to see the
//! toolkit's own output and warnings.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::env;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Upper bound for one script on one WSDL (gSOAP's C++ compile is the slowest).
const TIMEOUT: Duration = Duration::from_secs(600);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const FULL: &str = "wsdl/partner-api.wsdl";
const FULL_SOAP11: &str = "generated/partner-api-soap11.wsdl";
const CALLBACK: &str = "wsdl/partner-callback.wsdl";
const CALLBACK_SOAP11: &str = "generated/partner-callback-soap11.wsdl";
const ENROLLMENT: &str = "wsdl/partner-enrollment.wsdl";
const ENROLLMENT_SOAP11: &str = "generated/partner-enrollment-soap11.wsdl";

/// The published contracts, relative to the repository root (the SOAP 1.1-only views are
/// the committed mirrors of what build.rs makes; `generated_fresh` keeps them current).
fn wsdls() -> [&'static str; 6] {
    [
        FULL,
        FULL_SOAP11,
        CALLBACK,
        CALLBACK_SOAP11,
        ENROLLMENT,
        ENROLLMENT_SOAP11,
    ]
}

/// The SOAP versions a toolkit's client generated from `wsdl` must have called the gateway
/// with (`LIVE-OK` lines). gSOAP generates one client for the full WSDL that sends SOAP 1.2
/// on every operation (see tests/toolkits/README.md); the others get one port per binding.
/// The callback and enrollment WSDLs are not called live (none).
fn live_versions(toolkit: &str, wsdl: &str) -> &'static [&'static str] {
    match (toolkit, wsdl) {
        ("gsoap", FULL) => &["soap12"],
        (_, FULL) => &["soap11", "soap12"],
        (_, FULL_SOAP11) => &["soap11"],
        _ => &[],
    }
}

/// A gateway for the generated clients to call: in process, the reference partner API layer
/// behind it, one partner allowed everything from loopback and one throttled to one call per
/// second (burst 1). Fields drop in order: the gateway before its runtime.
struct Live {
    gw: common::TestGateway,
    partner: common::Partner,
    throttled: common::Partner,
    _rt: tokio::runtime::Runtime,
}

impl Live {
    fn start() -> Live {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (gw, partner, throttled) = rt.block_on(async {
            let gw = common::start_gateway(common::test_config()).await;
            let partner = gw.partner(&["*"], &["127.0.0.0/8"]).await;
            let throttled = gw.partner(&["*"], &["127.0.0.0/8"]).await;
            gw.store
                .set_partner_rate(&throttled.id, partnergate::store::Rate::new(1, 1))
                .expect("rate");
            gw.sync().await;
            (gw, partner, throttled)
        });
        Live {
            gw,
            partner,
            throttled,
            _rt: rt,
        }
    }

    /// What the scripts read: where to call and as whom.
    fn env(&self, cmd: &mut Command) {
        cmd.env(
            "PG_LIVE_ENDPOINT",
            format!("http://{}/soap/partner/v1", self.gw.addr),
        )
        .env("PG_LIVE_PARTNER", &self.partner.id)
        .env("PG_LIVE_KEY", &self.partner.key)
        .env("PG_LIVE_THROTTLED_PARTNER", &self.throttled.id)
        .env("PG_LIVE_THROTTLED_KEY", &self.throttled.key);
    }
}

fn on_path(cmd: &str) -> bool {
    env::var_os("PATH")
        .map(|p| env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

/// Fails the test with the agreed message when a prerequisite is missing.
fn require(toolkit: &str, what: &[&str], files: &[&Path]) {
    let mut missing: Vec<String> = Vec::new();
    for cmd in what.iter().chain(["xmllint", "bash"].iter()) {
        if !on_path(cmd) {
            missing.push(format!("`{cmd}` not on PATH"));
        }
    }
    for f in files {
        if !f.exists() {
            missing.push(format!("{} missing", f.display()));
        }
    }
    assert!(
        missing.is_empty(),
        "{toolkit} not installed: run `sudo .ci/setup` ({})",
        missing.join(", ")
    );
}

fn venv() -> PathBuf {
    env::var_os("PARTNERGATE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/partnergate/venv"))
}

struct Outcome {
    ok: bool,
    status: String,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

fn run(mut cmd: Command) -> Outcome {
    let start = Instant::now();
    let mut child = cmd
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait on toolkit script") {
            break Some(st);
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    Outcome {
        ok: status.map(|s| s.success()).unwrap_or(false),
        status: match status {
            Some(s) => s.to_string(),
            None => format!("killed after {TIMEOUT:?}"),
        },
        stdout,
        stderr,
        elapsed: start.elapsed(),
    }
}

/// Runs `make_cmd(wsdl)` for every WSDL, with a live gateway to call; fails listing every
/// WSDL that failed, with the script's stdout/stderr, and every WSDL whose client did not
/// report the live calls of [`live_versions`]. Toolkit warnings are echoed (visible with
/// --nocapture).
fn check_all(toolkit: &str, make_cmd: impl Fn(&str) -> Command) {
    let live = Live::start();
    let mut failures = Vec::new();
    for wsdl in wsdls() {
        let mut cmd = make_cmd(wsdl);
        live.env(&mut cmd);
        let mut o = run(cmd);
        for version in live_versions(toolkit, wsdl) {
            let line = format!("LIVE-OK {version} ");
            if o.ok && !o.stdout.lines().any(|l| l.starts_with(&line)) {
                o.ok = false;
                o.status = format!("no `{line}…` line: the {version} port was not called");
            }
        }
        for l in o.stdout.lines().filter(|l| l.starts_with("LIVE-OK ")) {
            println!("  {l}");
        }
        let warnings: Vec<&str> = o
            .stdout
            .lines()
            .filter(|l| l.starts_with("TOOLKIT-WARNING"))
            .collect();
        println!(
            "{toolkit} {wsdl}: {} ({} warning(s), {:.1}s)",
            if o.ok { "ok" } else { "FAIL" },
            warnings.len(),
            o.elapsed.as_secs_f64()
        );
        for w in &warnings {
            println!("  {w}");
        }
        if !o.ok {
            failures.push(format!(
                "---- {toolkit} on {wsdl}: {}\n---- stdout:\n{}\n---- stderr:\n{}",
                o.status, o.stdout, o.stderr
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{toolkit} rejected the contract:\n{}",
        failures.join("\n")
    );
}

fn script(name: &str) -> PathBuf {
    root().join("tests/toolkits").join(name)
}

#[test]
fn zeep() {
    let python = venv().join("bin/python");
    require("zeep", &[], &[&python, &venv().join("bin/pip")]);
    let probe = Command::new(&python)
        .args(["-c", "import zeep"])
        .output()
        .expect("run venv python");
    assert!(
        probe.status.success(),
        "zeep not installed: run `sudo .ci/setup` ({} cannot import zeep: {})",
        python.display(),
        String::from_utf8_lossy(&probe.stderr)
    );
    check_all("zeep", |wsdl| {
        let mut c = Command::new(&python);
        c.arg(script("zeep.py")).arg(wsdl);
        c
    });
}

#[test]
fn wsimport() {
    require(
        "wsimport (jaxws + JDK 17)",
        &["wsimport", "java", "javac"],
        &[],
    );
    check_all("wsimport", |wsdl| {
        let mut c = Command::new("bash");
        c.arg(script("wsimport.sh")).arg(wsdl);
        c
    });
}

#[test]
fn gsoap() {
    require(
        "gSOAP (gsoap + libgsoap-dev + g++)",
        &["wsdl2h", "soapcpp2", "g++"],
        &[
            Path::new("/usr/include/stdsoap2.h"),
            Path::new("/usr/share/gsoap/import/soap12.h"),
        ],
    );
    check_all("gsoap", |wsdl| {
        let mut c = Command::new("bash");
        c.arg(script("gsoap.sh")).arg(wsdl);
        c
    });
}

#[test]
fn node_soap() {
    let soap_pkg = root().join("tests/toolkits/node/node_modules/soap/package.json");
    require("node-soap (node + npm ci)", &["node"], &[&soap_pkg]);
    check_all("node-soap", |wsdl| {
        let mut c = Command::new("node");
        c.arg(script("node-soap.js")).arg(wsdl);
        c
    });
}
