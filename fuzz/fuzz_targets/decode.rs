#![no_main]
//! Thin target: the logic and its invariants are `partnergate::fuzzing::decode`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| partnergate::fuzzing::decode(data));
