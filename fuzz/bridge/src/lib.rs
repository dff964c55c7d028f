//! The bridge fuzz targets' bodies live in [`bridge_targets`], shared with
//! `bridge/tests/fuzz_regressions.rs`, which replays the committed corpus with `cargo test`.

pub mod bridge_targets;
