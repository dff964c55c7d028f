//! The fuzz crate's shared code: each target's body lives in [`protocol_targets`], so the
//! libFuzzer binaries in `fuzz_targets/` and the workspace's `cargo test` replay of the
//! committed corpus (`protocol/tests/it/fuzz_regressions.rs`) run the same code path.

pub mod protocol_targets;
