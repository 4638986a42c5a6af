//! Fuzz logic, compiled with the `fuzzing` feature only. One function per cargo-fuzz target in
//! `fuzz/` (the targets in `fuzz/fuzz_targets/` are three-line wrappers around these), each
//! taking arbitrary bytes and checking the invariants of the untrusted-input stages:
//!
//! - [`envelope()`]: XML limit pass, envelope scan, credential extraction (`authenticate`,
//!   `authenticate_callback`) against [`snapshot`], SOAP fault parse. No panic; every slice the
//!   scan returns lies inside the input and is a whole element; a successful authentication
//!   means an active partner's valid key is literally in the input.
//! - [`decode()`]: strict typed decode of every request, response, fault detail and header type
//!   of both contracts. No panic.
//! - [`roundtrip()`]: whatever decodes re-encodes, the encoding decodes to an equal value and
//!   re-encodes to identical bytes.
//! - [`json()`]: the JSON decoder of every partner request, response and fault detail. No
//!   panic; a refusal names a rule and a JSON Pointer; whatever it accepts re-encodes to JSON
//!   that decodes to the same value and re-encodes identically, and its canonical SOAP encoding
//!   decodes with the XML decoder to the same value (the two faces agree).
//! - [`pipeline()`]: the whole request path ([`crate::pipeline::handle`]) with a recording stub
//!   [`Upstream`](crate::forward::Upstream). No panic; every answer is a typed response that
//!   re-decodes or a fault that `fault.rs` renders into an envelope `envelope::scan` +
//!   `parse_fault` + the typed fault decoder accept; nothing reaches the upstream unless the
//!   credentials, the calling address and the permission are valid (checked here independently
//!   of the gateway's own code), and what reaches it decodes strictly.
//!
//! The logic lives in the crate (style guide: "fuzz logic lives in the crate, with thin
//! targets") so it compiles, lints and runs on stable: `cargo test --features fuzzing --lib
//! fuzzing` replays the seed corpora (`fuzz/seeds/`) and every input in `fuzz/regressions/`.
//!
//! Why a cargo feature and not `cfg(fuzzing)`: cargo-fuzz does pass `--cfg fuzzing` to every
//! crate it builds, this one included, but rustc's `unexpected_cfgs` lint then warns in every
//! normal build unless the cfg is declared (a `[lints]` or build.rs change), and code behind
//! `cfg(fuzzing)` is never compiled, linted or tested by the normal toolchain. The feature is
//! enabled by `fuzz/Cargo.toml` and by CI's extra clippy and test runs.
//!
//! The rooms: `partners.rs` the fixed world every target runs in (the snapshot, peers, "now");
//! one file per target, `target_envelope.rs`, `target_decode.rs`, `target_roundtrip.rs` (which
//! reads its input as `target_decode.rs` does), `target_json.rs` and `target_pipeline.rs`
//! (over `stub.rs`, the recording upstream and the gateway around it); this file the two helpers several targets
//! share. The targets do not use each other but as said. They may use any stage of the crate;
//! nothing in the crate uses them.

#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a panic is how a fuzz invariant reports a violation"
)]

mod partners;
mod stub;
mod target_decode;
mod target_envelope;
mod target_json;
mod target_pipeline;
mod target_roundtrip;

pub use partners::{snapshot, FuzzPartner, NOW, PARTNERS, PEERS, REQUEST_ID, TRUSTED_PROXIES};
pub use target_decode::decode;
pub use target_envelope::envelope;
pub use target_json::json;
pub use target_pipeline::pipeline;
pub use target_roundtrip::roundtrip;

use crate::encode::{self, EncodeError, XmlWriter};
use crate::envelope::SoapVersion;

/// Whether `needle` (not empty) occurs in `haystack`: a key or an id literally in the input.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Encodes a body element written by `write` into a fresh envelope of `version`.
fn encode_body(
    version: SoapVersion,
    write: impl FnOnce(&mut XmlWriter<'_>) -> Result<(), EncodeError>,
) -> Vec<u8> {
    let mut out = Vec::new();
    encode::body_only(version, &mut out, write)
        .unwrap_or_else(|e| panic!("a decoded value does not encode: {e}"));
    out
}

#[cfg(test)]
mod tests;
