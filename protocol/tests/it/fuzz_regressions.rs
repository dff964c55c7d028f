//! Replays the fuzz targets' committed inputs with `cargo test`: every file in
//! `fuzz/corpus/<target>/` (the minimized corpus) and `fuzz/regressions/<target>/` (each crash
//! or hang the fuzzer ever found) goes through the same function the libFuzzer binary calls
//! (`fuzz/src/protocol_targets.rs`, included below), so a fixed bug stays fixed without a
//! nightly toolchain. The seed generator's valid messages must still be accepted, and each
//! corpus must still reach its parsers (`test_support::fuzz` holds the checks).

#[allow(dead_code, unreachable_pub)]
#[path = "../../../fuzz/src/protocol_targets.rs"]
mod protocol_targets;

use std::path::Path;

use protocol_targets::{run, seeds, TARGETS};
use test_support::fuzz::Corpus;

fn corpus() -> Corpus {
    Corpus {
        dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz"),
        shown: "fuzz",
        regenerate: "bash scripts/fuzz.sh seeds",
        targets: &TARGETS,
        run,
    }
}

test_support::replay_tests!(corpus(), seeds());
