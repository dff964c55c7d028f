//! Racing processes: a test re-runs its own test binary as children, each running that same test
//! with an environment variable that tells it it is a child and what to do, and lets them loose
//! at the same moment (a `go` file), so that two processes really write one file at once. The
//! parent calls [`race`]; the test's first line calls [`child`] and, in a child, does its part
//! and exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The current test binary running only `test` (its path in the binary, e.g.
/// `"files::two_bridges_storing_links_lose_none"`) with `env` = `value`, stdout discarded.
pub fn this_test(test: &str, env: &str, value: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture"])
        .env(env, value)
        .stdout(Stdio::null());
    cmd
}

/// In the parent: one child per tag, each running `test` with `env` = `"{path}|{tag}"`, let go
/// at once; returns when all have exited and fails the test unless every one succeeded.
pub fn race(test: &str, env: &str, path: &Path, tags: &[&str]) {
    let children: Vec<_> = tags
        .iter()
        .map(|tag| {
            this_test(test, env, format!("{}|{tag}", path.display()))
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(go_file(path), b"").unwrap();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a racing child failed");
    }
}

/// In a child started by [`race`] (`env` is set): the path and tag it was given, once the go
/// signal is there. `None` in the parent.
pub fn child(env: &str) -> Option<(PathBuf, String)> {
    let spec = std::env::var(env).ok()?;
    let (path, tag) = spec.split_once('|').expect("a race spec is path|tag");
    let path = PathBuf::from(path);
    let go = go_file(&path);
    while !go.exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    Some((path, tag.to_string()))
}

/// The names `"{tag}{i:03}"` for every tag and `i` in `0..per_tag`, sorted: what racing
/// children that each store `per_tag` items named so leave behind.
pub fn names(tags: &[&str], per_tag: usize) -> Vec<String> {
    let mut want: Vec<String> = tags
        .iter()
        .flat_map(|t| (0..per_tag).map(move |i| format!("{t}{i:03}")))
        .collect();
    want.sort_unstable();
    want
}

/// Fails the test, listing them, when any of `want` is missing from `have` (`what`: "links").
pub fn assert_none_lost<S: AsRef<str>>(have: &[S], want: &[String], what: &str) {
    let lost: Vec<&String> = want
        .iter()
        .filter(|w| !have.iter().any(|h| h.as_ref() == w.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} stored {what} lost: {lost:?}",
        lost.len(),
        want.len()
    );
}

fn go_file(path: &Path) -> PathBuf {
    path.with_extension("go")
}
