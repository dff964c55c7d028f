//! Replays a fuzz crate's committed inputs under `cargo test`, so a bug the fuzzer found stays
//! fixed without a nightly toolchain. A [`Corpus`] names a fuzz directory (`corpus/<target>/`,
//! the minimized corpus, and `regressions/<target>/`, every crash or hang ever found) and the
//! function the libFuzzer binary calls; its three checks are the same for every fuzz crate:
//! each target has a seed and every seed is still accepted, each corpus holds inputs and still
//! reaches its parsers, and every regression input replays without a panic.
//! [`replay_tests!`](crate::replay_tests) writes the three tests for a fuzz crate.

use std::path::{Path, PathBuf};

/// What a fuzz target's entry point answers: `None` for an unknown target, else whether the
/// parsers accepted the input.
pub type Run = fn(&str, &[u8]) -> Option<bool>;

/// One fuzz crate's committed inputs and its targets.
pub struct Corpus {
    /// The fuzz crate's directory (holding `corpus/` and `regressions/`).
    pub dir: PathBuf,
    /// How messages name that directory, e.g. `fuzz` or `fuzz/bridge`.
    pub shown: &'static str,
    /// The command that regenerates the corpus from the seeds.
    pub regenerate: &'static str,
    /// The target names.
    pub targets: &'static [&'static str],
    /// The entry point the libFuzzer binary calls.
    pub run: Run,
}

impl Corpus {
    /// Every target has a seed, and every seed is still accepted by its target.
    pub fn check_seeds(&self, seeds: &[(&'static str, String, Vec<u8>)]) {
        for target in self.targets {
            assert!(
                seeds.iter().any(|(t, _, _)| t == target),
                "no seed for target {target}"
            );
        }
        for (target, name, bytes) in seeds {
            assert_eq!(
                (self.run)(target, bytes),
                Some(true),
                "seed {target}/{name} ({} bytes) is no longer accepted",
                bytes.len()
            );
        }
    }

    /// Each target's committed corpus holds at least three inputs and at least one of them
    /// is still accepted (so the corpus still reaches the parsers).
    pub fn check_corpus(&self) {
        let shown = self.shown;
        for target in self.targets {
            let corpus = inputs(&self.dir.join("corpus").join(target));
            assert!(
                corpus.len() >= 3,
                "{shown}/corpus/{target} holds {} inputs; regenerate it with `{}`",
                corpus.len(),
                self.regenerate
            );
            let accepted = corpus
                .iter()
                .filter(|(_, bytes)| (self.run)(target, bytes).expect("known target"))
                .count();
            assert!(
                accepted > 0,
                "none of the {} inputs in {shown}/corpus/{target} is accepted any more",
                corpus.len()
            );
        }
    }

    /// Replays every file under `regressions/<target>/`; a panic fails the test with the
    /// input's path printed just above it. Returns how many inputs were replayed.
    pub fn replay_regressions(&self) -> usize {
        let shown = self.shown;
        let root = self.dir.join("regressions");
        let mut replayed = 0;
        let entries = std::fs::read_dir(&root)
            .unwrap_or_else(|e| panic!("{shown}/regressions must exist: {e}"));
        for entry in entries {
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
                self.targets.contains(&target),
                "{shown}/regressions/{target} is not one of its fuzz targets ({:?})",
                self.targets
            );
            for (file, bytes) in inputs(&path) {
                eprintln!("replaying {}", file.display());
                let _ = (self.run)(target, &bytes);
                replayed += 1;
            }
        }
        eprintln!("replayed {replayed} regression inputs");
        replayed
    }
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

/// The three replay tests (seeds accepted, corpus reaches the parsers, regressions replay)
/// for a fuzz crate: `replay_tests!(corpus(), seeds())`, where `corpus()` builds its
/// [`Corpus`] and `seeds()` lists its seed inputs.
#[macro_export]
macro_rules! replay_tests {
    ($corpus:expr, $seeds:expr) => {
        #[test]
        fn every_seed_is_accepted_by_its_target() {
            $corpus.check_seeds(&$seeds);
        }

        #[test]
        fn committed_corpus_replays_and_reaches_the_parsers() {
            $corpus.check_corpus();
        }

        #[test]
        fn every_regression_input_replays_without_panic() {
            $corpus.replay_regressions();
        }
    };
}
