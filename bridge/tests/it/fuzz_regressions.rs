//! Replays the bridge fuzz targets' committed inputs with `cargo test`: every file in
//! `fuzz/bridge/corpus/<target>/` (the minimized corpus) and `fuzz/bridge/regressions/<target>/`
//! (each crash or hang the fuzzer ever found) goes through the same function the libFuzzer
//! binary calls (`fuzz/bridge/src/bridge_targets.rs`, included below), so a fixed bug stays
//! fixed without a nightly toolchain. The seeds must still be accepted, and each corpus must
//! still reach its parsers.

#[allow(dead_code, unreachable_pub)]
#[path = "../../../fuzz/bridge/src/bridge_targets.rs"]
mod bridge_targets;

use std::path::{Path, PathBuf};

use bridge_targets::{run, seeds, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/bridge")
}

/// The files of `dir`, sorted; none if it does not exist.
fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_seed_is_accepted_by_its_target() {
    let seeds = seeds();
    for target in TARGETS {
        assert!(
            seeds.iter().any(|(t, _, _)| *t == target),
            "no seed for target {target}"
        );
    }
    for (target, name, bytes) in &seeds {
        assert_eq!(
            run(target, bytes),
            Some(true),
            "seed {target}/{name} ({} bytes) is no longer accepted",
            bytes.len()
        );
    }
}

#[test]
fn committed_corpus_replays_and_reaches_the_parsers() {
    for target in TARGETS {
        let corpus = inputs(&fuzz_dir().join("corpus").join(target));
        assert!(
            corpus.len() >= 3,
            "fuzz/bridge/corpus/{target} holds {} inputs; regenerate it with `FUZZ_DIR=fuzz/bridge bash scripts/fuzz.sh seeds`",
            corpus.len()
        );
        let accepted = corpus
            .iter()
            .filter(|(_, bytes)| run(target, bytes).expect("known target"))
            .count();
        assert!(
            accepted > 0,
            "none of the {} inputs in fuzz/bridge/corpus/{target} is accepted any more",
            corpus.len()
        );
    }
}

#[test]
fn every_regression_input_replays_without_panic() {
    let root = fuzz_dir().join("regressions");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&root).expect("fuzz/bridge/regressions exists") {
        let path = entry.expect("readable directory entry").path();
        if !path.is_dir() {
            continue;
        }
        let target = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        // Any other name is a typo that would leave a crash unreplayed.
        assert!(
            TARGETS.contains(&target),
            "fuzz/bridge/regressions/{target} is not a bridge fuzz target ({TARGETS:?})"
        );
        for (file, bytes) in inputs(&path) {
            // A panic here fails the test with the input's path in the message above it.
            eprintln!("replaying {}", file.display());
            let _ = run(target, &bytes);
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} regression inputs");
}
