//! The independent check: libxml2's validator (xmllint) compiles every schema and validates every
//! fixture and every canonical encoding our encoder produced (`*.canonical.xml`, written by
//! `tests/golden.rs`) against the published XSDs, and rejects every negative fixture.
//! Needs `xmllint` (Debian: libxml2-utils; `.ci/setup` installs it).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::process::Command;

#[test]
fn contract_fixtures_and_encoder_output_validate_with_xmllint() {
    let root = env!("CARGO_MANIFEST_DIR");
    let probe = Command::new("xmllint").arg("--version").output();
    assert!(
        probe.is_ok(),
        "xmllint is not installed: run `sudo .ci/setup` (Debian package libxml2-utils)"
    );
    let out = Command::new("bash")
        .arg("tests/xmllint.sh")
        .current_dir(root)
        .output()
        .expect("run tests/xmllint.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tests/xmllint.sh failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("0 failures"), "{stdout}");
}
