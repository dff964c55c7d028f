//! Replays the bridge fuzz targets' committed inputs with `cargo test`: every file in
//! `fuzz/bridge/corpus/<target>/` (the minimized corpus) and `fuzz/bridge/regressions/<target>/`
//! (each crash or hang the fuzzer ever found) goes through the same function the libFuzzer
//! binary calls (`fuzz/bridge/src/bridge_targets.rs`, included below), so a fixed bug stays
//! fixed without a nightly toolchain. The seeds must still be accepted, and each corpus must
//! still reach its parsers (`test_support::fuzz` holds the checks).

#[allow(dead_code, unreachable_pub)]
#[path = "../../../fuzz/bridge/src/bridge_targets.rs"]
mod bridge_targets;

use std::path::Path;

use bridge_targets::{run, seeds, TARGETS};
use test_support::fuzz::Corpus;

fn corpus() -> Corpus {
    Corpus {
        dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/bridge"),
        shown: "fuzz/bridge",
        regenerate: "FUZZ_DIR=fuzz/bridge bash scripts/fuzz.sh seeds",
        targets: &TARGETS,
        run,
    }
}

test_support::replay_tests!(corpus(), seeds());
