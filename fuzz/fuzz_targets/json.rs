#![no_main]
//! Thin target: the logic and its invariants are `partnergate::fuzzing::json`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| partnergate::fuzzing::json(data));
