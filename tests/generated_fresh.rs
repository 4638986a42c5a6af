//! `generated/` is the reviewed mirror of what build.rs writes to `OUT_DIR` (the crate compiles
//! from `OUT_DIR`, so it can never be stale; the mirror can). This test fails when the mirror
//! differs from what build.rs produces now.
//!
//! Refresh it with `PARTNERGATE_UPDATE_GENERATED=1 cargo test --test generated_fresh` and commit
//! the diff together with the contract change that caused it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::path::Path;

const FILES: [&str; 8] = [
    "types.rs",
    "partner_operations.rs",
    "callback_operations.rs",
    "enrollment_operations.rs",
    "partner-api-soap11.wsdl",
    "partner-callback-soap11.wsdl",
    "partner-enrollment-soap11.wsdl",
    "partner-openapi.json",
];

#[test]
fn generated_mirror_is_fresh() {
    let out = Path::new(env!("OUT_DIR"));
    let mirror = Path::new(env!("CARGO_MANIFEST_DIR")).join("generated");
    let update = std::env::var_os("PARTNERGATE_UPDATE_GENERATED").is_some();
    let mut stale = Vec::new();
    for name in FILES {
        let now =
            std::fs::read(out.join(name)).unwrap_or_else(|e| panic!("{name} in OUT_DIR: {e}"));
        let path = mirror.join(name);
        if update {
            std::fs::create_dir_all(&mirror).expect("create generated/");
            std::fs::write(&path, &now).expect("write mirror");
            continue;
        }
        match std::fs::read(&path) {
            Ok(old) if old == now => {}
            Ok(_) => stale.push(format!("{name} differs")),
            Err(e) => stale.push(format!("{name}: {e}")),
        }
    }
    assert!(
        stale.is_empty(),
        "generated/ is stale ({}); refresh it with PARTNERGATE_UPDATE_GENERATED=1 cargo test --test generated_fresh",
        stale.join(", ")
    );
    // Nothing else lives in generated/.
    let extra: Vec<_> = std::fs::read_dir(&mirror)
        .expect("generated/")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !FILES.contains(&n.as_str()) && n != "README.md")
        .collect();
    assert!(
        extra.is_empty(),
        "unexpected files in generated/: {extra:?}"
    );
}

#[test]
fn every_generated_file_says_it_is_generated() {
    let out = Path::new(env!("OUT_DIR"));
    for name in FILES {
        let text = std::fs::read_to_string(out.join(name)).expect("read");
        let head: String = text.lines().take(3).collect::<Vec<_>>().join("\n");
        assert!(
            head.contains("@generated"),
            "{name} lacks the @generated header"
        );
        assert!(
            head.contains("do not edit") || head.contains("Do not edit"),
            "{name}"
        );
    }
}
