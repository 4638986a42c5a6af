//! Black-box tests of the `partnergate` binary's contract commands.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::process::{Command, Stdio};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_partnergate"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

#[test]
fn operations_lists_every_operation_with_its_permission() {
    let out = bin().arg("operations").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(text.lines().count(), 1 + 18, "{text}");
    assert!(text.contains("CreateAccount          accounts.create"));
    assert!(text.contains("ChangeFeatureStatus    features.changeStatus"));
    assert!(text.contains("ListServices           services.list"));
}

#[test]
fn check_accepts_a_valid_message_and_prints_its_canonical_form() {
    let out = bin()
        .args(["check", "tests/data/CreateAccount/request.xml"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let canonical = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/CreateAccount/request.canonical.xml"
    ))
    .expect("golden");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), canonical);
    assert!(String::from_utf8_lossy(&out.stderr).contains("ok: CreateAccount"));
}

#[test]
fn check_refuses_an_invalid_message_with_path_and_rule() {
    let out = bin()
        .args(["check", "tests/data/invalid/bad-mac-address.xml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("InvalidRequest at /AddDevice/MacAddress: pattern"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

/// Several files: each is checked and reported, then one summary line; the exit status is 1
/// when any failed (all pass: 0).
#[test]
fn check_takes_several_files_with_a_summary() {
    let good = "tests/data/CreateAccount/request.xml";
    let good12 = "tests/data/GetAccount/request.soap12.xml";
    let bad = "tests/data/invalid/bad-mac-address.xml";
    let out = bin()
        .args(["check", good, bad, good12, "tests/data/nope.xml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{good}: ok: CreateAccount (Soap11)")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{good12}: ok: GetAccount (Soap12)")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{bad}: InvalidRequest at /AddDevice/MacAddress: pattern"
        )),
        "{err}"
    );
    assert!(err.contains("tests/data/nope.xml: "), "{err}");
    assert!(err.contains("checked 4 files: 2 ok, 2 failed"), "{err}");
    assert!(err.contains("2 of 4 files failed the check"), "{err}");
    // The canonical forms of the two that passed, and nothing of the others.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("CreateAccount>") && stdout.contains("GetAccount>"),
        "{stdout}"
    );
    assert!(!stdout.contains("AddDevice"), "{stdout}");

    let out = bin().args(["check", good, good12]).output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("checked 2 files: 2 ok, 0 failed"), "{err}");
}

#[test]
fn check_reads_standard_input_and_refuses_non_soap() {
    use std::io::Write;
    let mut child = bin()
        .args(["check", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x/>")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DOCTYPE is not allowed"));
}

#[test]
fn check_responses_and_callbacks() {
    let out = bin()
        .args([
            "check",
            "--response",
            "GetAccount",
            "tests/data/GetAccount/response.xml",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin()
        .args([
            "check",
            "--callback",
            "tests/data/callback/NotifyProvisioningEvent/request.xml",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin()
        .args([
            "check",
            "--response",
            "Nope",
            "tests/data/GetAccount/response.xml",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown operation"));
}

#[test]
fn wsdl_views() {
    let full = bin().arg("wsdl").output().expect("run");
    let view = bin().args(["wsdl", "--soap11-only"]).output().expect("run");
    assert!(String::from_utf8_lossy(&full.stdout).contains("PartnerApiSoap12Port"));
    let view = String::from_utf8_lossy(&view.stdout);
    assert!(view.contains("PartnerApiSoap11Port") && !view.contains("PartnerApiSoap12"));
    let callback = bin().args(["wsdl", "--callback"]).output().expect("run");
    assert!(String::from_utf8_lossy(&callback.stdout).contains("PartnerCallbackSoap12Port"));
    let callback11 = bin()
        .args(["wsdl", "--callback", "--soap11-only"])
        .output()
        .expect("run");
    assert!(callback11.status.success());
    let callback11 = String::from_utf8_lossy(&callback11.stdout);
    assert!(
        callback11.contains("PartnerCallbackSoap11Port") && !callback11.contains("soap12"),
        "{callback11}"
    );
    let xsd = bin().args(["xsd", "devices.xsd"]).output().expect("run");
    assert!(String::from_utf8_lossy(&xsd.stdout).contains("MacAddress"));
    let bad = bin().args(["xsd", "nope.xsd"]).output().expect("run");
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn a_closed_pipe_is_not_a_panic() {
    let mut child = bin()
        .arg("wsdl")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}
