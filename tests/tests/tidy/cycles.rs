//! Import cycles between the modules of one crate, found by reading paths, not by name
//! resolution.
//!
//! Every `.rs` file under a crate's `src/` (except `src/bin/`, which holds separate binary
//! crates) is a module: `src/a.rs` and `src/a/mod.rs` are `a`, `src/a/b.rs` is `a::b`, and
//! `lib.rs` / `main.rs` are the crate root. Comments and string literals are blanked out; then
//! every `use` tree is expanded (`use crate::{a::X, b::{c::Y}}`) and every other path in the
//! code that starts with `crate::`, `super::` or `self::` is collected, as are `use` paths that
//! start with a child module's name (`use child::X`). A path points into the longest known
//! module prefix: `crate::a::b::Item` is an edge to `a::b` if that file exists, else to `a`.
//! `super::` inside an inline `mod x { … }` (`mod tests { use super::*; }`) is the file's own
//! module, so it is no edge. Names the crate root re-exports (`pub use a::X;` in `lib.rs`)
//! resolve to the module they come from.
//!
//! Re-exports (`pub use`, `pub(crate) use`) are not edges: they are a module's public surface,
//! so a facade `mod.rs` that re-exports its children's items while the children use its
//! helpers is no cycle. The crate root is not a node: it declares and re-exports everything.
//! Glob imports (`use a::*`) count through their own edge; macro expansions are not seen.
//! A cycle is a strongly connected component of two or more modules (Tarjan's algorithm).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Modules of one crate that import each other, with the lines that make the edges.
#[derive(Debug)]
pub(super) struct Cycle {
    /// The modules, sorted.
    pub(super) modules: Vec<String>,
    /// `a -> b  (file:line, …)` for each edge inside the cycle.
    pub(super) edges: Vec<String>,
}

/// One file of a crate: its module path (`""` for the crate root), the path to show in
/// messages, and its text.
pub(super) struct Source {
    pub(super) module: String,
    pub(super) shown: String,
    pub(super) text: String,
}

/// The cycles among the modules of one crate.
pub(super) fn find(sources: &[Source]) -> Vec<Cycle> {
    let (nodes, edges) = graph(sources);
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = nodes
        .iter()
        .map(|m| (m.as_str(), BTreeSet::new()))
        .collect();
    for (a, b) in edges.keys() {
        if let Some(out) = graph.get_mut(a.as_str()) {
            out.insert(b.as_str());
        }
    }
    strongly_connected(&graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| Cycle {
            edges: edges
                .iter()
                .filter(|((a, b), _)| c.contains(a) && c.contains(b))
                .map(|((a, b), w)| format!("{a} -> {b}  ({})", w.join(", ")))
                .collect(),
            modules: c,
        })
        .collect()
}

/// The modules (the root left out) and the edges between them, each with the `file:line`s
/// that make it.
type Edges = BTreeMap<(String, String), Vec<String>>;

pub(super) fn graph(sources: &[Source]) -> (Vec<String>, Edges) {
    // `lib.rs` and `main.rs` are both the root: their re-exports count together.
    let mut files: BTreeMap<String, (String, String)> = BTreeMap::new();
    for s in sources {
        let entry = files.entry(s.module.clone()).or_default();
        entry.0 = s.shown.clone();
        entry.1.push_str(&s.text);
        entry.1.push('\n');
    }
    let modules: BTreeSet<String> = files.keys().cloned().collect();

    let mut reexports: BTreeMap<String, String> = BTreeMap::new();
    if let Some((_, text)) = files.get("") {
        let code = strip(text);
        for (_, tree, is_pub) in use_items(&code) {
            if !is_pub {
                continue;
            }
            for p in expand(&tree) {
                let segs: Vec<&str> = p
                    .split("::")
                    .filter(|s| !s.is_empty() && *s != "crate")
                    .collect();
                if let (Some(first), Some(last)) = (segs.first(), segs.last()) {
                    if modules.contains(*first) {
                        let name = last.rsplit('@').next().unwrap_or(last);
                        reexports.insert(name.to_string(), (*first).to_string());
                    }
                }
            }
        }
    }

    // (from, to) -> places
    let mut edges = Edges::new();
    for (module, (shown, text)) in &files {
        if module.is_empty() {
            continue;
        }
        let code = strip(text);
        let spans = inline_mod_spans(&code);
        let depth_at = |off: usize| spans.iter().filter(|(a, b)| *a <= off && off < *b).count();
        let line_at = |off: usize| code[..off].matches('\n').count() + 1;
        let mut found: Vec<(usize, String)> = Vec::new();
        let items = use_items(&code);
        for (off, tree, is_pub) in &items {
            if *is_pub {
                continue; // a re-export: the module's surface, not a dependency
            }
            for p in expand(tree) {
                found.push((*off, p.split('@').next().unwrap_or_default().to_string()));
            }
        }
        let used: Vec<(usize, usize)> = items_spans(&code);
        for (off, path) in qualified_paths(&code) {
            if used.iter().any(|(a, b)| *a <= off && off < *b) {
                continue;
            }
            found.push((off, path));
        }
        for (off, path) in found {
            let path: String = path.chars().filter(|c| !c.is_whitespace()).collect();
            let Some(target) = resolve(&modules, &reexports, module, &path, depth_at(off)) else {
                continue;
            };
            if target == *module || target.is_empty() {
                continue;
            }
            let place = format!("{shown}:{}", line_at(off));
            let list = edges.entry((module.clone(), target)).or_default();
            if !list.contains(&place) {
                list.push(place);
            }
        }
    }

    let nodes = modules.into_iter().filter(|m| !m.is_empty()).collect();
    (nodes, edges)
}

/// The module a file is, from its path relative to the crate's module folder: `a/b.rs` →
/// `a::b`, `a/mod.rs` → `a`, `lib.rs` / `main.rs` → `` (the root).
pub(super) fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().map(String::as_str) == Some("mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        return String::new();
    }
    parts.join("::")
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The code with comments, string and character literals blanked (newlines kept, so offsets
/// and line numbers still match the file).
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let n = b.len();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for x in &mut out[from..to.min(n)] {
            if *x != b'\n' {
                *x = b' ';
            }
        }
    };
    let mut i = 0;
    while i < n {
        let prev_ident = i > 0 && is_ident(b[i - 1]);
        if b[i..].starts_with(b"//") {
            let j = text[i..].find('\n').map_or(n, |k| i + k);
            blank(&mut out, i, j);
            i = j;
        } else if b[i..].starts_with(b"/*") {
            let (mut depth, mut j) = (1, i + 2);
            while j < n && depth > 0 {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if let Some(len) = (!prev_ident).then(|| raw_string_start(&b[i..])).flatten() {
            // r"…", r#"…"#, br"…", cr#"…"#
            let hashes = b[i..i + len].iter().filter(|c| **c == b'#').count();
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            let j = find_bytes(b, i + len, &close).map_or(n, |k| k + close.len());
            blank(&mut out, i, j);
            i = j;
        } else if b[i] == b'"'
            || (!prev_ident && matches!(b[i], b'b' | b'c') && b.get(i + 1) == Some(&b'"'))
        {
            let mut j = i + if b[i] == b'"' { 1 } else { 2 };
            while j < n && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            j += 1;
            blank(&mut out, i, j);
            i = j.min(n);
        } else if b[i] == b'\'' {
            match char_literal_len(&b[i..]) {
                Some(len) => {
                    blank(&mut out, i, i + len);
                    i += len;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The length of a raw string's opening (`r#"` is 3) at the start of `b`, if it is one.
fn raw_string_start(b: &[u8]) -> Option<usize> {
    let mut j = 0;
    if matches!(b.first(), Some(b'b' | b'c')) {
        j += 1;
    }
    if b.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    while b.get(j) == Some(&b'#') {
        j += 1;
    }
    (b.get(j) == Some(&b'"')).then_some(j + 1)
}

/// The length of a character literal at the start of `b` (`'a'`, `'\n'`, `'\u{1F600}'`), or
/// `None` for a lifetime or label.
fn char_literal_len(b: &[u8]) -> Option<usize> {
    let window = &b[..b.len().min(12)];
    if window.get(1) == Some(&b'\\') {
        // `'\''`: the escaped character is never the closing quote.
        let close = window.get(3..)?.iter().position(|c| *c == b'\'')?;
        return Some(close + 4);
    }
    // One character, possibly several UTF-8 bytes.
    let s = std::str::from_utf8(&window[1..]).ok().or_else(|| {
        (1..window.len())
            .rev()
            .find_map(|e| std::str::from_utf8(&window[1..e]).ok())
    })?;
    let c = s.chars().next()?;
    (c != '\'' && s[c.len_utf8()..].starts_with('\'')).then_some(1 + c.len_utf8() + 1)
}

fn find_bytes(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    (from..hay.len().saturating_sub(needle.len() - 1)).find(|&k| hay[k..].starts_with(needle))
}

/// Every `use` item: (offset of the item, its tree, whether it is a re-export).
fn use_items(code: &str) -> Vec<(usize, String, bool)> {
    let mut out = Vec::new();
    for (start, end) in items_spans(code) {
        let item = &code[start..end];
        let (is_pub, rest) = match item.strip_prefix("pub") {
            Some(r) => {
                let r = r.trim_start();
                let r = if r.starts_with('(') {
                    r.find(')').map_or(r, |k| &r[k + 1..])
                } else {
                    r
                };
                (true, r.trim_start())
            }
            None => (false, item),
        };
        let tree = rest.strip_prefix("use").unwrap_or(rest);
        let tree = tree.trim().trim_end_matches(';');
        out.push((start, tree.to_string(), is_pub));
    }
    out
}

/// The spans of `use …;` items, including a leading `pub` / `pub(…)`.
fn items_spans(code: &str) -> Vec<(usize, usize)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    for (i, _) in code.match_indices("use") {
        let before_ok = i == 0 || !is_ident(b[i - 1]);
        let after_ok = b.get(i + 3).is_some_and(|c| c.is_ascii_whitespace());
        if !before_ok || !after_ok {
            continue;
        }
        let Some(semi) = code[i..].find(';') else {
            continue;
        };
        let mut start = i;
        // A visibility right before: `pub use`, `pub(crate) use`, `pub(in a::b) use`.
        let head = code[..i].trim_end();
        let vis = if head.ends_with(')') {
            head.rfind('(')
                .and_then(|k| head[..k].trim_end().strip_suffix("pub").map(|h| h.len()))
        } else {
            head.strip_suffix("pub").map(str::len)
        };
        if let Some(k) = vis {
            if k == 0 || !is_ident(b[k - 1]) {
                start = k;
            }
        }
        out.push((start, i + semi + 1));
    }
    out
}

/// Paths in the code starting with `crate::`, `super::` or `self::`, with their offsets.
fn qualified_paths(code: &str) -> Vec<(usize, String)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    for kw in ["crate", "super", "self"] {
        for (i, _) in code.match_indices(kw) {
            if (i > 0 && is_ident(b[i - 1])) || b.get(i + kw.len()).is_some_and(|c| is_ident(*c)) {
                continue;
            }
            let mut j = i + kw.len();
            let mut end = None;
            loop {
                let mut k = j;
                while k < b.len() && b[k].is_ascii_whitespace() {
                    k += 1;
                }
                if !code[k..].starts_with("::") {
                    break;
                }
                k += 2;
                while k < b.len() && b[k].is_ascii_whitespace() {
                    k += 1;
                }
                let s = k;
                while k < b.len() && is_ident(b[k]) {
                    k += 1;
                }
                if k == s {
                    break;
                }
                j = k;
                end = Some(k);
            }
            if let Some(e) = end {
                out.push((i, code[i..e].to_string()));
            }
        }
    }
    out
}

/// A use tree (`a::{b, c::{d as e}}`) as its paths (`a::b`, `a::c::d@e`).
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" as ", "@")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let Some(brace) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..brace];
    let inner = &tree[brace + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (k, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    let mut out = Vec::new();
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        for e in expand(part) {
            out.push(if e == "self" {
                prefix.trim_end_matches(':').to_string()
            } else {
                format!("{prefix}{e}")
            });
        }
    }
    out
}

/// The `(start, end)` offsets of inline `mod x { … }` bodies.
fn inline_mod_spans(code: &str) -> Vec<(usize, usize)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    for (i, _) in code.match_indices("mod") {
        if (i > 0 && is_ident(b[i - 1])) || !b.get(i + 3).is_some_and(|c| c.is_ascii_whitespace()) {
            continue;
        }
        let mut k = i + 3;
        while k < b.len() && b[k].is_ascii_whitespace() {
            k += 1;
        }
        let s = k;
        while k < b.len() && is_ident(b[k]) {
            k += 1;
        }
        if k == s {
            continue;
        }
        while k < b.len() && b[k].is_ascii_whitespace() {
            k += 1;
        }
        if b.get(k) != Some(&b'{') {
            continue;
        }
        let (mut depth, mut j) = (1, k + 1);
        while j < b.len() && depth > 0 {
            match b[j] {
                b'{' => depth += 1,
                b'}' => depth -= 1,
                _ => {}
            }
            j += 1;
        }
        out.push((k + 1, j));
    }
    out
}

/// The module a path written inside `module` points into, or `None` when it leaves the
/// crate's modules (an outside crate, a local name).
fn resolve(
    modules: &BTreeSet<String>,
    reexports: &BTreeMap<String, String>,
    module: &str,
    path: &str,
    inline_depth: usize,
) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let own: Vec<&str> = if module.is_empty() {
        vec![]
    } else {
        module.split("::").collect()
    };
    let base: Vec<&str>;
    match segs.first().copied() {
        Some("crate") => {
            base = vec![];
            segs.remove(0);
        }
        Some("super" | "self") => {
            // Inside an inline module, `self` is that module and `super` the file's module.
            let mut b = own.clone();
            let mut depth = inline_depth;
            while let Some(first @ ("super" | "self")) = segs.first().copied() {
                if first == "super" {
                    if depth > 0 {
                        depth -= 1;
                    } else {
                        b.pop();
                    }
                }
                segs.remove(0);
            }
            if depth > 0 {
                return Some(module.to_string());
            }
            base = b;
        }
        Some(first) => {
            // A relative path: only a child module of this one counts.
            let child = if module.is_empty() {
                first.to_string()
            } else {
                format!("{module}::{first}")
            };
            if !modules.contains(&child) {
                return None;
            }
            base = own.clone();
        }
        None => return None,
    }
    for k in (1..=segs.len()).rev() {
        let mut cand = base.clone();
        cand.extend_from_slice(&segs[..k]);
        let cand = cand.join("::");
        if modules.contains(&cand) {
            return Some(cand);
        }
    }
    if base.is_empty() {
        if let Some(first) = segs.first() {
            return Some(reexports.get(*first).cloned().unwrap_or_default());
        }
    }
    Some(base.join("::"))
}

/// Tarjan's strongly connected components, each sorted.
fn strongly_connected(graph: &BTreeMap<&str, BTreeSet<&str>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<&'a str, BTreeSet<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on.insert(v);
        let graph = s.graph;
        for &w in graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            comp.sort();
            s.out.push(comp);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for &v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crate_of(files: &[(&str, &str)]) -> Vec<Cycle> {
        let sources: Vec<Source> = files
            .iter()
            .map(|(p, t)| Source {
                module: module_of(Path::new(p)),
                shown: format!("k/src/{p}"),
                text: t.to_string(),
            })
            .collect();
        find(&sources)
    }

    #[test]
    fn two_modules_that_use_each_other_are_a_cycle_with_both_lines() {
        let cycles = crate_of(&[
            ("lib.rs", "//! root\nmod a;\nmod b;\n"),
            ("a.rs", "//! a\nuse crate::b::Thing;\n"),
            ("b.rs", "//! b\n\nfn f() { crate::a::g() }\n"),
        ]);
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert_eq!(cycles[0].modules, ["a", "b"]);
        assert_eq!(
            cycles[0].edges,
            ["a -> b  (k/src/a.rs:2)", "b -> a  (k/src/b.rs:3)"]
        );
    }

    #[test]
    fn a_loop_through_three_modules_and_nested_use_trees_are_found() {
        let cycles = crate_of(&[
            ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
            ("a.rs", "use crate::{x::Y, b::{Z as W}};\n"),
            ("b.rs", "use super::c;\n"),
            ("c/mod.rs", "pub(crate) fn f() { super::a::h(); }\n"),
        ]);
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert_eq!(cycles[0].modules, ["a", "b", "c"]);
    }

    #[test]
    fn re_exports_tests_comments_and_strings_are_not_edges() {
        let cycles = crate_of(&[
            ("lib.rs", "mod a;\nmod b;\npub use a::Thing;\n"),
            // a facade re-exporting its child, which uses the facade's helper
            ("a/mod.rs", "mod child;\npub use child::Item;\npub(crate) fn helper() {}\n"),
            ("a/child.rs", "use super::helper;\n"),
            // b uses a; a mentions b only in comments, strings and its tests' `super`
            ("b.rs", "use crate::Thing;\n"),
            (
                "a/extra.rs",
                "// crate::b::x\nconst S: &str = \"crate::b::y\";\nconst R: &str = r#\"crate::b\"#;\n\
                 mod tests { use super::*; fn t() { let c = 'x'; } }\n",
            ),
        ]);
        assert!(cycles.is_empty(), "{cycles:?}");
    }

    #[test]
    fn the_stripper_keeps_lines_and_lifetimes() {
        let s = strip("fn f<'a>(x: &'a str) -> char { '\\n' } // c\n/* d\n */ \"e\"");
        assert_eq!(s.lines().count(), 3);
        assert!(s.contains("<'a>") && s.contains("&'a str"));
        assert!(!s.contains("\\n") && !s.contains("// c") && !s.contains('"'));
    }
}
