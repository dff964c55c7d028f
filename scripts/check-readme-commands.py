#!/usr/bin/env python3
"""Runs the commands the READMEs show, so a person who copies one never meets a flag that
does not exist.

Every command line in the READMEs' and benchmark pages' code blocks (and in inline `code` that
starts with one of our programs) that calls `hybrid-bridge`, `phone-sim`, `tunnel-server`,
`hybrid-demo` or `loadgen` — directly, by a path such as `target/release/loadgen`, or as
`cargo run -p <crate> -- …` — is run with `--help` appended: clap then checks
every flag and value before it and exits 0, or exits 2 naming what is wrong. A code block
whose info string is `sh run` is a walkthrough and is executed for real with bash (the
programs on PATH, a fresh HOME, a time limit) and must exit 0.

Usage: check-readme-commands.py [--bin-dir target/debug] [README.md ...]
Prints one line per failure and ends with "N passed, N failed".
"""

import os
import re
import shlex
import subprocess
import sys
import tempfile

PROGRAMS = {"hybrid-bridge", "phone-sim", "tunnel-server", "hybrid-demo", "loadgen"}
CRATE_BINARY = {
    "bridge": "hybrid-bridge",
    "phone-sim": "phone-sim",
    "tunnel-server": "tunnel-server",
    "hybrid-demo": "hybrid-demo",
    "relay-bench": "loadgen",
}
DEFAULT_READMES = [
    "README.md",
    "BENCHMARKS.md",
    "phone-sim/README.md",
    "tunnel-server/README.md",
    "tunnel-server/BENCHMARKS.md",
    "browser/README.md",
]


def blocks(text):
    """(info string, body, first line number) of each fenced code block."""
    out, info, body, start = [], None, [], 0
    for n, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"^\s*```(.*)$", line)
        if fence and info is None:
            info, body, start = fence.group(1).strip(), [], n + 1
        elif fence:
            out.append((info, "\n".join(body), start))
            info = None
        elif info is not None:
            body.append(line)
    return out


def inline_commands(text):
    """Inline `code` spans that start with one of our programs."""
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            continue
        for span in re.findall(r"`([^`]+)`", line):
            if span.split(" ", 1)[0] in PROGRAMS and " " in span:
                found.append((span, n))
    return found


def commands(body):
    """Simple commands in a shell snippet: continuations joined, comments dropped, split
    at `&&`, `||`, `;`, `|` and `&`."""
    joined = re.sub(r"\\\n\s*", " ", body)
    out = []
    for line in joined.splitlines():
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            tokens = list(lexer)
        except ValueError:
            continue
        current = []
        skip_next = False
        for t in tokens + [";"]:
            if skip_next:
                skip_next = False
                continue
            if t in (">", ">>", "<", "2>"):
                skip_next = True
                continue
            if set(t) <= set(";&|"):
                if current:
                    out.append(current)
                current = []
                continue
            current.append(t)
    return out


def program_call(argv):
    """(binary, args) for a call of one of our programs, else None."""
    while argv and re.match(r"^[A-Z_][A-Z0-9_]*=", argv[0]):
        argv = argv[1:]  # environment assignments
    if not argv:
        return None
    if argv[0] in PROGRAMS:
        return argv[0], argv[1:]
    if "/" in argv[0] and os.path.basename(argv[0]) in PROGRAMS:
        return os.path.basename(argv[0]), argv[1:]  # target/release/loadgen
    if argv[:2] == ["cargo", "run"] and "--" in argv:
        split = argv.index("--")
        opts, rest = argv[2:split], argv[split + 1:]
        if "-p" in opts and opts.index("-p") + 1 < len(opts):
            crate = opts[opts.index("-p") + 1]
            if crate in CRATE_BINARY:
                return CRATE_BINARY[crate], rest
    if argv[:2] == ["cargo", "run"] and "-p" in argv:
        crate = argv[argv.index("-p") + 1] if argv.index("-p") + 1 < len(argv) else ""
        if crate in CRATE_BINARY:
            return CRATE_BINARY[crate], []
    return None


def main():
    args = sys.argv[1:]
    bin_dir = "target/debug"
    if args[:1] == ["--bin-dir"]:
        bin_dir, args = args[1], args[2:]
    bin_dir = os.path.abspath(bin_dir)
    readmes = args or [p for p in DEFAULT_READMES if os.path.exists(p)]
    for program in PROGRAMS:
        if not os.access(os.path.join(bin_dir, program), os.X_OK):
            print(f"{program} is not built in {bin_dir}: run `cargo build --workspace` first")
            print("0 passed, 1 failed")
            return 1
    passed = failed = 0
    home = tempfile.mkdtemp(prefix="readme-check-")
    env = dict(os.environ, HOME=home, NO_COLOR="1", PATH=f"{bin_dir}:{os.environ['PATH']}")
    env.pop("RUST_LOG", None)
    for readme in readmes:
        text = open(readme, encoding="utf-8").read()
        calls = []
        for info, body, start in blocks(text):
            lang = info.split()[0] if info else ""
            if lang not in ("", "sh", "bash", "shell", "console"):
                continue
            if info.split()[1:2] == ["run"]:
                work = tempfile.mkdtemp(prefix="readme-run-")
                # Background jobs the walkthrough leaves behind (after a failure) are ended.
                script = "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + body
                proc = subprocess.Popen(
                    ["bash", "-euo", "pipefail", "-c", script],
                    cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    text=True, start_new_session=True,
                )
                try:
                    output, _ = proc.communicate(timeout=120)
                    ok, why = proc.returncode == 0, f"exit {proc.returncode}\n{output}"
                except subprocess.TimeoutExpired:
                    ok, why = False, "did not finish in 120 s"
                finally:
                    try:
                        os.killpg(proc.pid, 9)
                    except ProcessLookupError:
                        pass
                    proc.wait()
                if ok:
                    passed += 1
                else:
                    failed += 1
                    print(f"{readme}:{start}: the walkthrough failed: {why.strip()[-2000:]}")
                continue
            for argv in commands(body):
                call = program_call(argv)
                if call:
                    calls.append((call, start))
        for span, line in inline_commands(text):
            for argv in commands(span):
                call = program_call(argv)
                if call:
                    calls.append((call, line))
        for (program, argv), line in calls:
            try:
                # --help goes before a `--` (what follows it is not parsed as flags).
                cut = argv.index("--") if "--" in argv else len(argv)
                r = subprocess.run(
                    [os.path.join(bin_dir, program), *argv[:cut], "--help"],
                    env=env, capture_output=True, text=True, timeout=20,
                )
                ok, why = r.returncode == 0, r.stderr.strip()
            except subprocess.TimeoutExpired:
                ok, why = False, "timed out"
            shown = " ".join(shlex.quote(a) for a in [program, *argv])
            if ok:
                passed += 1
            else:
                failed += 1
                print(f"{readme}:{line}: `{shown}` does not parse: {why}")
    print(f"readmes: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
