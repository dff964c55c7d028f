//! Tidy: the checks that keep the repository explaining itself, run by `cargo test` (this
//! module is part of the `e2e` test binary; alone: `cargo test -p hybrid-tests --test e2e
//! tidy::`). Each test reads the files of the working tree (what `git ls-files` lists, tracked
//! or new but not ignored) and fails with every offending `file:line` and what to do about it:
//!
//! - every Rust module opens with a `//!` paragraph (docs/STYLE.md#docs);
//! - no tracker numbers and no wording about earlier states of the code outside `CHANGELOG.md`
//!   (docs/STYLE.md#history);
//! - every package declares the workspace's licence, and the licence texts exist;
//! - every document a file cites exists, and so does the anchor it names;
//! - no two modules of a crate import each other, directly or round a loop ([`cycles`]);
//! - each package has at most one integration-test binary (docs/STYLE.md#tests): linking is
//!   the slow part on two cores, and one binary links once.
//!
//! The model is rust-analyzer's `xtask/src/tidy.rs`: plain string scanning, no configuration,
//! messages that say how to fix what they found.

mod cycles;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Phrases that describe an earlier state of the code rather than what it is. Matched without
/// regard to case, on word boundaries.
const HISTORY_PHRASES: &[&str] = &[
    "as before",
    "before the fix",
    "after the fix",
    "before this change",
    "after this change",
    "since this change",
    "with this change",
    "previously",
    "the old code",
    "on the old code",
    "the old behaviour",
    "the old behavior",
    "the previous code",
    "the previous commit",
    "the previous version",
    "until now",
];

/// This file: its tests and lists hold the very strings the checks refuse.
const SELF: &str = "tests/tests/tidy.rs";

/// Files allowed to talk about history.
const HISTORY_EXEMPT: &[&str] = &["CHANGELOG.md", SELF];

/// Names that may precede a `§` section number: outside specifications. The repository's own
/// documents are cited by anchor (`docs/PROTOCOL.md#advert`), never by section number.
const SPECIFICATIONS: &[&str] = &[
    "WebAuthn",
    "CTAP",
    "RFC",
    "Noise",
    "Permissions Policy",
    "FIPS",
    "SEC 1",
    "NIST",
    "X.509",
    "W3C",
    "Bluetooth",
    "COSE",
    "CBOR",
];

/// Text files the history, citation and section checks read, by extension (or full name).
const TEXT: &[&str] = &[
    "rs",
    "md",
    "toml",
    "sh",
    "py",
    "js",
    "mjs",
    "json",
    "yml",
    "yaml",
    "txt",
    "conf",
    "service",
    "Dockerfile",
    "run",
];

#[test]
fn every_rust_module_opens_with_a_doc_comment() {
    let mut problems = Problems::default();
    for file in files().iter().filter(|f| has_extension(f, "rs")) {
        let text = read(file);
        // Inner attributes (`#![no_main]`) may come first; then the module doc.
        let first = text
            .lines()
            .enumerate()
            .find(|(_, l)| !l.trim().is_empty() && !l.starts_with("#!["));
        match first {
            Some((_, l)) if l.starts_with("//!") => {}
            other => problems.add(
                file,
                other.map_or(1, |(n, _)| n + 1),
                "the file does not open with a `//!` module doc: start it with one paragraph \
                 saying what this module owns, citing the docs/PROTOCOL.md section it \
                 implements if any (docs/STYLE.md#docs)",
            ),
        }
    }
    problems.assert("module docs");
}

#[test]
fn no_tracker_numbers_or_history_words_outside_the_changelog() {
    let mut problems = Problems::default();
    for file in files().iter().filter(|f| is_text(f)) {
        let name = slash(file);
        if HISTORY_EXEMPT.contains(&name.as_str()) || name.ends_with("package-lock.json") {
            continue;
        }
        for (n, line) in read(file).lines().enumerate() {
            let lower = line.to_ascii_lowercase();
            if let Some(found) = tracker_number(&lower) {
                problems.add(
                    file,
                    n + 1,
                    &format!(
                        "`{found}` refers to the issue tracker: say what the code does and why; \
                         the issue belongs in the commit message and CHANGELOG.md \
                         (docs/STYLE.md#history)"
                    ),
                );
            }
            for phrase in HISTORY_PHRASES {
                if contains_words(&lower, phrase) {
                    problems.add(
                        file,
                        n + 1,
                        &format!(
                            "{phrase:?} describes an earlier state of the code: describe what \
                             is, with the reason; what changed belongs in CHANGELOG.md and the \
                             commit message (docs/STYLE.md#history)"
                        ),
                    );
                }
            }
        }
    }
    problems.assert("history in the code");
}

#[test]
fn every_package_declares_the_workspace_licence() {
    let root = root();
    let workspace = read(Path::new("Cargo.toml"));
    let licence = toml_string(&workspace, "workspace.package", "license")
        .expect("the root Cargo.toml sets [workspace.package] license");
    let mut problems = Problems::default();
    for file in files().iter().filter(|f| f.ends_with("Cargo.toml")) {
        let text = read(file);
        if !text.lines().any(|l| l.trim() == "[package]") {
            continue;
        }
        let inherited = text
            .lines()
            .any(|l| l.replace(' ', "") == "license.workspace=true");
        let own = toml_string(&text, "package", "license");
        match (inherited, own) {
            (true, _) => {}
            (false, Some(l)) if l == licence => {}
            (false, Some(l)) => problems.add(
                file,
                line_of(&text, "license"),
                &format!(
                    "the package's licence is {l:?} but the workspace's is {licence:?}: write \
                     `license.workspace = true` (or, outside the workspace, `license = \
                     \"{licence}\"`)"
                ),
            ),
            (false, None) => problems.add(
                file,
                1,
                &format!(
                    "the package declares no licence: add `license.workspace = true` under \
                     [package] (outside the workspace: `license = \"{licence}\"`)"
                ),
            ),
        }
    }
    for (id, text_file) in [("MIT", "LICENSE-MIT"), ("Apache-2.0", "LICENSE-APACHE")] {
        if licence.split(" OR ").any(|l| l.trim() == id) && !root.join(text_file).is_file() {
            problems.add(
                Path::new(text_file),
                1,
                &format!("the workspace is licensed {licence:?} but {text_file} is missing: add the licence text"),
            );
        }
    }
    problems.assert("licences");
}

#[test]
fn every_cited_document_exists() {
    let files = files();
    let known: BTreeSet<String> = files.iter().map(|f| slash(f)).collect();
    let mut anchors: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut problems = Problems::default();
    for file in files.iter().filter(|f| is_text(f)) {
        let name = slash(file);
        if name == SELF || name.ends_with("package-lock.json") {
            continue;
        }
        let text = read(file);
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            for cite in citations(line) {
                let Some(target) = resolve(&known, &name, &cite.path) else {
                    problems.add(
                        file,
                        n + 1,
                        &format!(
                            "cites {:?}, which is not in the repository: cite a document the \
                             repository holds (docs/PROTOCOL.md, docs/STYLE.md, \
                             ARCHITECTURE.md, …) or bring the text in",
                            cite.path
                        ),
                    );
                    continue;
                };
                for anchor in &cite.anchors {
                    let ids = anchors
                        .entry(target.clone())
                        .or_insert_with(|| anchors_of(&read(Path::new(&target))));
                    if !ids.contains(anchor) {
                        problems.add(
                            file,
                            n + 1,
                            &format!(
                                "cites {target}#{anchor}, but {target} has no such anchor: \
                                 use one of its `<a id=\"…\">` or heading anchors"
                            ),
                        );
                    }
                }
            }
            if let Some(col) = bare_section_number(&lines, n) {
                problems.add(
                    file,
                    n + 1,
                    &format!(
                        "`{}` cites a section number without naming the specification: cite \
                         this repository's documents by anchor (docs/PROTOCOL.md#…), or name \
                         the outside specification (WebAuthn, CTAP, RFC …) on the line",
                        &line[col..].chars().take(8).collect::<String>()
                    ),
                );
            }
        }
    }
    problems.assert("cited documents");
}

#[test]
fn every_package_has_at_most_one_integration_test_binary() {
    let all = files();
    let mut problems = Problems::default();
    for manifest in all.iter().filter(|f| f.ends_with("Cargo.toml")) {
        let text = read(manifest);
        if !text.lines().any(|l| l.trim() == "[package]") {
            continue;
        }
        let dir = manifest.parent().unwrap_or(Path::new(""));
        let under_tests: Vec<String> = all
            .iter()
            .filter_map(|f| f.strip_prefix(dir.join("tests")).ok())
            .map(slash)
            .collect();
        let binaries = test_binaries(&text, &under_tests);
        if binaries.len() > 1 {
            problems.add(
                manifest,
                0,
                &format!(
                    "{} integration-test binaries ({}): make them modules of one binary whose \
                     root only lists modules (`tests/it/main.rs` with `mod …;`, \
                     `autotests = false` and one [[test]] entry)",
                    binaries.len(),
                    binaries.join(", ")
                ),
            );
        }
    }
    problems.assert("one integration-test binary per package");
}

/// The integration-test binaries a manifest makes, as Cargo finds them: its `[[test]]`
/// entries, and unless `autotests = false`, each `tests/X.rs` and `tests/X/main.rs`
/// (`under_tests`: the package's files below `tests/`, relative to it).
fn test_binaries(manifest: &str, under_tests: &[String]) -> Vec<String> {
    let mut out: Vec<String> = manifest
        .lines()
        .filter(|l| l.trim() == "[[test]]")
        .map(|_| "a [[test]] entry".to_string())
        .collect();
    if toml_string(manifest, "package", "autotests").as_deref() != Some("false") {
        out.extend(
            under_tests
                .iter()
                .filter(|f| {
                    let parts: Vec<&str> = f.split('/').collect();
                    matches!(parts.as_slice(), [file] if file.ends_with(".rs"))
                        || matches!(parts.as_slice(), [_, "main.rs"])
                })
                .map(|f| format!("tests/{f}")),
        );
    }
    out
}

#[test]
fn no_module_imports_another_that_imports_it() {
    let all = files();
    let mut problems = Problems::default();
    let mut crates = 0;
    for manifest in all.iter().filter(|f| f.ends_with("Cargo.toml")) {
        let src = manifest.parent().unwrap_or(Path::new("")).join("src");
        if !read(manifest).lines().any(|l| l.trim() == "[package]") {
            continue;
        }
        for files in crates_in(&src, &all) {
            crates += 1;
            let sources: Vec<cycles::Source> = files
                .into_iter()
                .map(|(path, module)| cycles::Source {
                    module,
                    shown: slash(&path),
                    text: read(&path),
                })
                .collect();
            for cycle in cycles::find(&sources) {
                let mut message = format!(
                    "modules {} import each other; move what they share into a module of its \
                     own so the arrows run one way (docs/STYLE.md#docs). The imports:",
                    cycle.modules.join(", ")
                );
                for edge in &cycle.edges {
                    let _ = write!(message, "\n      {edge}");
                }
                problems.add(&src, 0, &message);
            }
        }
    }
    assert!(
        crates >= 8,
        "found only {crates} crates: is the repository root right?"
    );
    problems.assert("module cycles");
}

/// The crates whose sources live under `src`, each as its files with their module paths: the
/// library and `main.rs` (one module tree rooted at `src/`), and each binary in `src/bin/`
/// (`X.rs` or `X/main.rs`, with its modules in `X/`).
fn crates_in(src: &Path, all: &[PathBuf]) -> Vec<Vec<(PathBuf, String)>> {
    let rust: Vec<&PathBuf> = all
        .iter()
        .filter(|f| f.starts_with(src) && has_extension(f, "rs"))
        .collect();
    let bin = src.join("bin");
    let mut out = Vec::new();
    let main_tree: Vec<(PathBuf, String)> = rust
        .iter()
        .filter(|f| !f.starts_with(&bin))
        .map(|f| {
            (
                (*f).clone(),
                cycles::module_of(f.strip_prefix(src).expect("under src")),
            )
        })
        .collect();
    if !main_tree.is_empty() {
        out.push(main_tree);
    }
    let mut bins = BTreeSet::new();
    for f in rust.iter().filter(|f| f.starts_with(&bin)) {
        let rel = f.strip_prefix(&bin).expect("under src/bin");
        if let Some(first) = rel.iter().next() {
            bins.insert(Path::new(first).with_extension(""));
        }
    }
    for name in bins {
        let dir = bin.join(&name);
        let single = dir.with_extension("rs");
        let tree: Vec<(PathBuf, String)> = rust
            .iter()
            .filter_map(|f| {
                if **f == single {
                    Some(((*f).clone(), String::new()))
                } else {
                    let rel = f.strip_prefix(&dir).ok()?;
                    Some(((*f).clone(), cycles::module_of(rel)))
                }
            })
            .collect();
        out.push(tree);
    }
    out
}

/// The problems one check found, each `file:line: what to do`.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, file: &Path, line: usize, message: &str) {
        let place = if line == 0 {
            slash(file)
        } else {
            format!("{}:{line}", slash(file))
        };
        self.0.push(format!("{place}: {message}"));
    }

    fn assert(self, check: &str) {
        if !self.0.is_empty() {
            panic!(
                "tidy ({check}): {} problem(s)\n  {}\n",
                self.0.len(),
                self.0.join("\n  ")
            );
        }
    }
}

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The working tree's files, relative to the root: tracked, or new and not ignored. Outside a
/// git checkout, every file under the root except build output and dependencies.
fn files() -> Vec<PathBuf> {
    static FILES: OnceLock<Vec<PathBuf>> = OnceLock::new();
    FILES.get_or_init(list_files).clone()
}

fn list_files() -> Vec<PathBuf> {
    let root = root();
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(&root)
        .output()
        .ok()
        .filter(|o| o.status.success());
    let mut out: Vec<PathBuf> = match listed {
        Some(o) => String::from_utf8_lossy(&o.stdout)
            .split('\0')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect(),
        None => walk(&root, Path::new("")),
    };
    // A tracked file deleted in the working tree is listed but gone.
    out.retain(|f| root.join(f).is_file());
    out.sort();
    out.dedup();
    out
}

fn walk(root: &Path, dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || ["target", "node_modules", "dist"].contains(&name.as_str()) {
            continue;
        }
        let rel = dir.join(&name);
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.extend(walk(root, &rel)),
            Ok(t) if t.is_file() => out.push(rel),
            _ => {}
        }
    }
    out
}

fn read(file: &Path) -> String {
    let bytes = std::fs::read(root().join(file))
        .unwrap_or_else(|e| panic!("tidy: cannot read {}: {e}", file.display()));
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The path with `/` separators, as people write it.
fn slash(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e == ext)
}

fn is_text(path: &Path) -> bool {
    let s = slash(path);
    if s.contains("/corpus/") || s.contains("/regressions/") {
        return false;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path.extension().map(|e| e.to_string_lossy().into_owned());
    TEXT.iter()
        .any(|t| ext.as_deref() == Some(*t) || name == *t)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `phrase` occurs in `lower` with no letter or digit directly around it.
fn contains_words(lower: &str, phrase: &str) -> bool {
    let b = lower.as_bytes();
    lower.match_indices(phrase).any(|(i, _)| {
        let end = i + phrase.len();
        (i == 0 || !is_word_byte(b[i - 1])) && (end == b.len() || !is_word_byte(b[end]))
    })
}

/// A reference to the issue tracker in a lowercased line: `issue 12`, `issues #3`, `#12`.
fn tracker_number(lower: &str) -> Option<String> {
    let b = lower.as_bytes();
    let digits_at = |mut j: usize| {
        let start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        (j > start && (j == b.len() || !is_word_byte(b[j]))).then_some(j)
    };
    for (i, _) in lower.match_indices("issue") {
        if i > 0 && is_word_byte(b[i - 1]) {
            continue;
        }
        let mut j = i + "issue".len();
        if b.get(j) == Some(&b's') {
            j += 1;
        }
        while j < b.len() && (b[j] == b' ' || b[j] == b'#') {
            j += 1;
        }
        if j > i + 5 {
            if let Some(end) = digits_at(j) {
                return Some(lower[i..end].to_string());
            }
        }
    }
    for (i, _) in lower.match_indices('#') {
        // `#12` standing alone: after a space or bracket, not `PKCS#8` or `repo#12`.
        if i > 0 && !matches!(b[i - 1], b' ' | b'(' | b'[' | b'\t') {
            continue;
        }
        if let Some(end) = digits_at(i + 1) {
            return Some(lower[i..end].to_string());
        }
    }
    None
}

/// A document cited on a line: a path ending in `.md`, and the anchors named after it
/// (`docs/PROTOCOL.md#flow-qr, #flow-linked`).
struct Citation {
    path: String,
    anchors: Vec<String>,
}

fn citations(line: &str) -> Vec<Citation> {
    let b = line.as_bytes();
    let path_byte = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'/');
    let mut out = Vec::new();
    for (i, _) in line.match_indices(".md") {
        let end = i + 3;
        if end < b.len() && is_word_byte(b[end]) {
            continue; // `.mdx`, `.md_…`
        }
        let mut start = i;
        while start > 0 && path_byte(b[start - 1]) {
            start -= 1;
        }
        let path = &line[start..end];
        let token_start = line[..start]
            .rfind(char::is_whitespace)
            .map_or(0, |k| k + 1);
        let token = &line[token_start..end];
        // URLs, globs, placeholders and paths on an installed system (a package's
        // `usr/share/doc/…`) are not documents of this repository.
        if path == ".md"
            || ["usr/", "/usr/", "etc/", "/etc/"]
                .iter()
                .any(|p| path.starts_with(p))
            || path.starts_with('.') && !path.starts_with("../") && !path.starts_with("./")
            || token.contains("://")
            || token.contains('*')
            || token.contains('<')
            || token.contains('$')
        {
            continue;
        }
        let mut anchors = Vec::new();
        let mut j = end;
        loop {
            let k = if line[j..].starts_with('#') {
                j + 1
            } else if line[j..].starts_with(", #") {
                j + 3
            } else {
                break;
            };
            let mut e = k;
            while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'-' || b[e] == b'_') {
                e += 1;
            }
            if e == k {
                break;
            }
            anchors.push(line[k..e].to_string());
            j = e;
        }
        out.push(Citation {
            path: path.to_string(),
            anchors,
        });
    }
    out
}

/// The repository file a citation in `from` names: relative to the citing file's folder or a
/// folder above it up to the root, or (a bare file name) any file of that name.
fn resolve(known: &BTreeSet<String>, from: &str, cited: &str) -> Option<String> {
    // The citing file's folder and each folder above it (a crate-relative `deploy/README.md`).
    let mut candidates = Vec::new();
    let mut dir = from.rsplit_once('/').map_or("", |(d, _)| d);
    loop {
        candidates.push(normalize(&format!("{dir}/{cited}")));
        match dir.rsplit_once('/') {
            Some((up, _)) => dir = up,
            None if !dir.is_empty() => dir = "",
            None => break,
        }
    }
    if !cited.contains('/') {
        candidates.extend(
            known
                .iter()
                .filter(|k| k.rsplit('/').next() == Some(cited))
                .map(|k| Some(k.clone())),
        );
    }
    candidates.into_iter().flatten().find(|c| known.contains(c))
}

/// `a/./b/../c` as `a/c`; `None` if it climbs out of the root.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// The anchors a Markdown document defines: `<a id="…">` and its headings' slugs.
fn anchors_of(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("<a id=\"") {
        let rest = &text[i + 7..];
        if let Some(end) = rest.find('"') {
            out.insert(rest[..end].to_string());
        }
    }
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix('#') {
            let title = heading.trim_start_matches('#').trim();
            let slug: String = title
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    ' ' => Some('-'),
                    _ => None,
                })
                .collect();
            out.insert(slug);
        }
    }
    out
}

/// The column of a `§n` on line `n` when neither it nor the two lines before it name an
/// outside specification.
fn bare_section_number(lines: &[&str], n: usize) -> Option<usize> {
    let line = lines[n];
    let col = line
        .match_indices('§')
        .map(|(i, _)| i)
        .find(|&i| line[i + '§'.len_utf8()..].starts_with(|c: char| c.is_ascii_digit()))?;
    let window = lines[n.saturating_sub(2)..=n].join(" ");
    (!SPECIFICATIONS.iter().any(|s| window.contains(s))).then_some(col)
}

/// A string value `key = "…"` in `[table]` of a TOML file (enough for Cargo manifests).
fn toml_string(text: &str, table: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            current = t.trim_matches(|c| c == '[' || c == ']').to_string();
            continue;
        }
        if current != table || t.starts_with('#') {
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            continue;
        };
        if k.trim() == key {
            return Some(v.trim().trim_matches('"').to_string());
        }
    }
    None
}

/// The 1-based number of the first line containing `needle`, or 1.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map_or(1, |n| n + 1)
}

#[test]
fn the_scanners_find_what_they_should_and_nothing_else() {
    assert_eq!(
        tracker_number("see issue 12 item 1").as_deref(),
        Some("issue 12")
    );
    assert_eq!(tracker_number("issues #3 and"), Some("issues #3".into()));
    assert_eq!(tracker_number("fixes #42."), Some("#42".into()));
    assert_eq!(tracker_number("pkcs#8, sec1"), None);
    assert_eq!(tracker_number("the issued certificate"), None);
    assert_eq!(tracker_number("an issue with 2 parts"), None);
    assert_eq!(tracker_number("#[derive(debug)]"), None);
    assert!(contains_words("works as before.", "as before"));
    assert!(!contains_words("has before", "as before"));
    let c = citations("see docs/PROTOCOL.md#flow-qr, #flow-linked and [x](../README.md)");
    assert_eq!(c.len(), 2);
    assert_eq!(
        (c[0].path.as_str(), c[0].anchors.clone()),
        (
            "docs/PROTOCOL.md",
            vec!["flow-qr".to_string(), "flow-linked".to_string()]
        )
    );
    assert_eq!(c[1].path, "../README.md");
    assert!(citations("https://github.com/o/r/blob/main/README.md").is_empty());
    assert!(citations("`*.md` files").is_empty());
    assert!(citations(r#"["../README.md", "usr/share/doc/x/README.md"]"#).len() == 1);
    let known: BTreeSet<String> = ["docs/PROTOCOL.md", "README.md"].map(String::from).into();
    assert_eq!(
        resolve(&known, "bridge/src/a.rs", "docs/PROTOCOL.md").as_deref(),
        Some("docs/PROTOCOL.md")
    );
    assert_eq!(
        resolve(&known, "docs/STYLE.md", "../README.md").as_deref(),
        Some("README.md")
    );
    assert_eq!(
        resolve(&known, "docs/STYLE.md", "PROTOCOL.md").as_deref(),
        Some("docs/PROTOCOL.md")
    );
    assert_eq!(resolve(&known, "bridge/src/a.rs", "HYBRID.md"), None);
    let a = anchors_of("# The title\n<a id=\"qr-keys\"></a>\n## 3.2 CBOR keys\n");
    assert!(a.contains("qr-keys") && a.contains("the-title") && a.contains("32-cbor-keys"));
    assert!(bare_section_number(&["x", "(HYBRID.md §4)"], 1).is_some());
    assert!(bare_section_number(&["WebAuthn", "the", "§6.1 flags"], 2).is_none());
    assert!(bare_section_number(&["no section sign here"], 0).is_none());
    let tree = [
        "k/src/lib.rs",
        "k/src/a.rs",
        "k/src/main.rs",
        "k/src/bin/one.rs",
        "k/src/bin/one/flood.rs",
        "k/src/bin/two/main.rs",
        "k/src/bin/two/commands/mod.rs",
        "k/src/bin/two/commands/scan.rs",
    ]
    .map(PathBuf::from);
    let crates = crates_in(Path::new("k/src"), &tree);
    let modules: Vec<Vec<&str>> = crates
        .iter()
        .map(|c| c.iter().map(|(_, m)| m.as_str()).collect())
        .collect();
    assert_eq!(
        modules,
        [
            vec!["", "a", ""],
            vec!["", "flood"],
            vec!["", "commands", "commands::scan"]
        ]
    );
    let manifest =
        "[package]\nname = \"x\"\n# a comment\nlicense = \"MIT\"\n[lib]\nlicense = \"no\"\n";
    assert_eq!(
        toml_string(manifest, "package", "license").as_deref(),
        Some("MIT")
    );
    assert_eq!(toml_string(manifest, "package", "edition"), None);

    let one = "[package]\nname = \"x\"\nautotests = false\n\n[[test]]\nname = \"it\"\n";
    let files = ["it/main.rs".to_string(), "it/flow.rs".to_string()];
    assert_eq!(test_binaries(one, &files).len(), 1);
    let auto = "[package]\nname = \"x\"\n";
    let files = [
        "a.rs".to_string(),
        "b/main.rs".to_string(),
        "b/helpers.rs".to_string(),
        "vectors/v.json".to_string(),
    ];
    assert_eq!(
        test_binaries(auto, &files),
        ["tests/a.rs".to_string(), "tests/b/main.rs".to_string()]
    );
}
