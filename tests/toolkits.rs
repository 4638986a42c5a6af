//! SOAP toolkit conformance: every published WSDL must load and generate a working
//! client in the toolkits partners use (zeep, JAX-WS wsimport, gSOAP, node-soap).
//!
//! Each test runs one script from `tests/toolkits/` on every WSDL. The toolkits are
//! installed by `.ci/setup`; a missing toolkit is a test FAILURE, never a skip.
//! Run one toolkit with `cargo test --test toolkits gsoap -- --nocapture` to see the
//! toolkit's own output and warnings.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

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

/// The published contracts, relative to the repository root. The SOAP 1.1-only view
/// is produced by the build; it is checked whenever it exists.
fn wsdls() -> Vec<&'static str> {
    let mut v = vec!["wsdl/partner-api.wsdl"];
    if root().join("generated/partner-api-soap11.wsdl").is_file() {
        v.push("generated/partner-api-soap11.wsdl");
    } else {
        eprintln!("note: generated/partner-api-soap11.wsdl does not exist (yet); not checked");
    }
    v.push("wsdl/partner-callback.wsdl");
    v
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

/// Runs `make_cmd(wsdl)` for every WSDL; fails listing every WSDL that failed, with the
/// script's stdout/stderr. Toolkit warnings are echoed (visible with --nocapture).
fn check_all(toolkit: &str, make_cmd: impl Fn(&str) -> Command) {
    let mut failures = Vec::new();
    for wsdl in wsdls() {
        let o = run(make_cmd(wsdl));
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
