#!/usr/bin/env bash
# Finds import cycles between the modules of one Rust crate.
#
#   scripts/module-cycles.sh <crate src dir> [--edges] [--strict]
#   for d in */src; do scripts/module-cycles.sh "$d"; done
#
# How it works: every .rs file under the src dir (except src/bin/, which holds separate
# binary crates) is a module: src/a.rs and src/a/mod.rs are `a`, src/a/b.rs is `a::b`, and
# lib.rs/main.rs are the crate root. Comments and string literals are stripped; then every
# `use` tree is expanded (`use crate::{a::X, b::{c::Y}}`) and every other path in the code
# that starts with `crate::`, `super::` or `self::` is collected, as are `use` paths that start
# with a child module's name (`use child::X`). Each path resolves to the longest known module
# prefix: `crate::a::b::Item` is an edge to `a::b` if that file exists, else to `a`.
# `super::` inside an inline `mod x { ... }` (e.g. `mod tests { use super::*; }`) refers to
# the file's own module, so it is no edge. Names re-exported by the crate root
# (`pub use a::X;` in lib.rs) resolve to the module they come from.
#
# Re-exports (`pub use`, `pub(crate) use`) are not edges: they are a module's public surface,
# so a facade `mod.rs` that re-exports its children's items while the children use its
# helpers is no cycle (--strict counts them too). The crate root itself is not a node: it
# declares and re-exports everything, so every `use crate::X` of a re-export would otherwise
# look like a cycle through it. Every other reference counts, parent and child included. It
# reads paths, not name resolution, so a glob import's (`use a::*`) later bare names are
# covered by the glob's own edge, and macros' expansions are not seen.
#
# Prints each cycle (a strongly connected component of two or more modules) with the lines
# that make its edges, and exits 1 if there is one; 0 and "no module cycles" otherwise.
# --edges also prints the whole edge list. Needs python3. Exit status 2: bad usage.
set -euo pipefail

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: $0 <crate src dir> [--edges] [--strict]" >&2
  exit 2
fi

exec python3 - "$@" <<'PY'
import os, re, sys

src = os.path.normpath(sys.argv[1])
show_edges = "--edges" in sys.argv[2:]
strict = "--strict" in sys.argv[2:]

def module_of(path):
    rel = os.path.relpath(path, src)
    parts = rel[:-3].split(os.sep)
    if parts[-1] == "mod":
        parts = parts[:-1]
    if parts in (["lib"], ["main"]):
        return ""
    return "::".join(parts)

files = {}
for root, dirs, names in os.walk(src):
    rel = os.path.relpath(root, src)
    if rel == "bin" or rel.startswith("bin" + os.sep):
        continue
    for n in names:
        if n.endswith(".rs"):
            p = os.path.join(root, n)
            files[module_of(p)] = p
modules = set(files)

def strip(text):
    """Blanks out comments, string and char literals, keeping newlines (for line numbers)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif re.match(r'(b|c)?r#*"', text[i:i + 8]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'(b|c)?r(#*)"', text[i:])
            end = '"' + m.group(2)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif c == '"' or (c in "bc" and text[i + 1:i + 2] == '"' and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))):
            j = i + (1 if c == '"' else 2)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif c == "'" and re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 12]):
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 12])
            out.append(" " * m.end())
            i += m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)

def expand(tree):
    """Expands a use tree (`a::{b, c::{d, e}}`) into its paths."""
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+", "@", tree))
    depth, start, parts = 0, 0, []
    brace = tree.find("{")
    if brace < 0:
        return [tree]
    prefix = tree[:brace]
    inner = tree[brace + 1:tree.rfind("}")]
    for k, ch in enumerate(inner):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:k])
            start = k + 1
    parts.append(inner[start:])
    paths = []
    for p in parts:
        if not p:
            continue
        for e in expand(p):
            paths.append(prefix + e if e != "self" else prefix.rstrip(":"))
    return paths

def inline_mod_spans(code):
    """(start, end) offsets of inline `mod x { ... }` bodies."""
    spans = []
    for m in re.finditer(r"\bmod\s+\w+\s*\{", code):
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        spans.append((m.end(), j))
    return spans

def resolve(mod, path, inline_depth):
    """The module a path (as written inside `mod`) points into, or None."""
    segs = [s for s in path.split("::") if s]
    if segs and segs[0] == "crate":
        base, segs = [], segs[1:]
    elif segs and segs[0] in ("super", "self"):
        base = mod.split("::") if mod else []
        # Inside an inline module `self` is that module and `super` the file's module.
        depth = inline_depth
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                if depth > 0:
                    depth -= 1
                else:
                    base = base[:-1]
            segs = segs[1:]
        if depth > 0:
            return mod
    else:
        # A relative path: only a child module of this one counts.
        child = (mod + "::" if mod else "") + segs[0] if segs else None
        if child not in modules:
            return None
        base = mod.split("::") if mod else []
    found = "::".join(base)
    for k in range(len(segs), 0, -1):
        cand = "::".join(base + segs[:k])
        if cand in modules:
            found = cand
            break
    else:
        if not base and segs:
            found = reexports.get(segs[0], "")
    return found

# Names the crate root re-exports, and from which module.
reexports = {}
root = files.get("")
if root:
    code = strip(open(root, encoding="utf-8").read())
    for m in re.finditer(r"\bpub\s+use\s+([^;]+);", code):
        for p in expand(m.group(1)):
            segs = [s for s in p.split("::") if s and s != "crate"]
            if segs and segs[0] in modules:
                reexports[segs[-1].split("@")[-1]] = segs[0]

edges = {}  # (from, to) -> [file:line]
for mod, path in files.items():
    if not mod:
        continue
    code = strip(open(path, encoding="utf-8").read())
    spans = inline_mod_spans(code)
    def depth_at(off):
        return sum(1 for a, b in spans if a <= off < b)
    def line_at(off):
        return code.count("\n", 0, off) + 1
    found = []
    used = []
    for m in re.finditer(r"\b(pub\s*(\([^)]*\))?\s*)?use\s+([^;]+);", code):
        used.append((m.start(), m.end()))
        if m.group(1) and not strict:
            continue  # a re-export: the module's public surface, not a dependency
        for p in expand(m.group(3)):
            found.append((m.start(), p.split("@")[0]))
    for m in re.finditer(r"\b(crate|super|self)((?:\s*::\s*\w+)+)", code):
        if any(a <= m.start() < b for a, b in used):
            continue
        found.append((m.start(), m.group(0)))
    for off, p in found:
        target = resolve(mod, re.sub(r"\s+", "", p), depth_at(off))
        if target is None or target == mod or target == "":
            continue
        where = f"{os.path.relpath(path)}:{line_at(off)}"
        if where not in edges.setdefault((mod, target), []):
            edges[(mod, target)].append(where)

graph = {m: set() for m in modules if m}
for a, b in edges:
    graph[a].add(b)

# Tarjan's strongly connected components.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in sorted(graph[v]):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        sccs.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in sorted(graph):
    if v not in index:
        visit(v)

if show_edges:
    for (a, b), where in sorted(edges.items()):
        print(f"{a} -> {b}  ({', '.join(where)})")
cycles = [c for c in sccs if len(c) > 1]
if not cycles:
    print(f"{src}: no module cycles ({len(graph)} modules, {len(edges)} edges)")
    sys.exit(0)
for c in cycles:
    print(f"{src}: cycle between {', '.join(c)}:")
    for (a, b), where in sorted(edges.items()):
        if a in c and b in c:
            print(f"  {a} -> {b}  ({', '.join(where)})")
sys.exit(1)
PY
