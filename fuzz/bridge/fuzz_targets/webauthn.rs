#![no_main]
//! libFuzzer entry point; the body is `bridge_targets::webauthn` (see fuzz/bridge/src/bridge_targets.rs).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hybrid_bridge_fuzz::bridge_targets::webauthn(data);
});
