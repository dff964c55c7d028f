#![no_main]
//! libFuzzer entry point; the body is `protocol_targets::ctaphid` (see fuzz/src/protocol_targets.rs).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hybrid_protocol_fuzz::protocol_targets::ctaphid(data);
});
