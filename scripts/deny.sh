#!/usr/bin/env bash
# Checks the dependency graph against deny.toml with cargo-deny: licences, bans (duplicate
# versions, wildcards), sources (crates.io only) and, when the RustSec advisory database can be
# had, advisories. A violation fails the run (exit 1).
#
# The advisory database (a git repository on GitHub) is fetched into cargo-deny's own copy
# ($CARGO_HOME/advisory-dbs) when GitHub answers within $DENY_NET_TIMEOUT seconds (default 10).
# Without GitHub, an existing copy is used as it is and its date printed; without either, the
# advisories check is NOT RUN and the script says so in capitals (exit 0; exit 1 with
# DENY_ADVISORIES_REQUIRED=1). crates.io's registry mirrors do not carry the database.
#
# cargo-deny comes from PATH when it is the pinned version, else it is built once with
# `cargo install --locked` into ~/.cargo/bin: about 5 minutes of CPU, so 3-4 minutes on two
# idle cores (19.5 minutes were measured on a 2-core machine other builds kept busy); later
# runs reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION=0.20.2
# DENY_CONFIG, DENY_DB_URL and DENY_DB_PATH exist for scripts/deny-test.sh, which points them
# at a fabricated database; they must agree with the config's db-urls and db-path.
CONFIG=${DENY_CONFIG:-deny.toml}
DB_URL=${DENY_DB_URL:-https://github.com/rustsec/advisory-db}
DB_DIR=${DENY_DB_PATH:-${CARGO_HOME:-$HOME/.cargo}/advisory-dbs}
NET_TIMEOUT=${DENY_NET_TIMEOUT:-10}

say() { printf 'deny: %s\n' "$*"; }

# 1. cargo-deny, pinned.
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
  say "installing cargo-deny $CARGO_DENY_VERSION (cargo install --locked; once per machine)"
  started=$(date +%s)
  # Its own target folder: the workspace's CARGO_TARGET_DIR is not for tools.
  tools=$(mktemp -d)
  trap 'rm -rf "$tools"' EXIT
  cargo install --locked --quiet -j2 --target-dir "$tools" "cargo-deny@$CARGO_DENY_VERSION"
  say "installed in $(($(date +%s) - started)) s"
fi
say "$(cargo deny --version)"

# 2. What can be checked offline.
cargo deny --locked --config "$CONFIG" check --hide-inclusion-graph licenses bans sources

# 3. Advisories, when the database is at hand.
required=${DENY_ADVISORIES_REQUIRED:-0}
if GIT_TERMINAL_PROMPT=0 timeout "$NET_TIMEOUT" git ls-remote --exit-code "$DB_URL" HEAD >/dev/null 2>&1; then
  say "advisories: fetching the RustSec database from $DB_URL"
  cargo deny --locked --config "$CONFIG" check --hide-inclusion-graph advisories
elif compgen -G "$DB_DIR/*/crates" >/dev/null; then
  db=$(dirname "$(compgen -G "$DB_DIR/*/crates" | head -1)")
  age=$(git -C "$db" log -1 --format=%cs 2>/dev/null || echo "an unknown date")
  say "advisories: $DB_URL did not answer in ${NET_TIMEOUT} s; checking against the local copy of $age in $db"
  cargo deny --locked --offline --config "$CONFIG" check --hide-inclusion-graph advisories
else
  say "advisories: NOT CHECKED. The RustSec advisory database cannot be had here: $DB_URL did"
  say "not answer in ${NET_TIMEOUT} s and there is no local copy in $DB_DIR. Licences, bans and"
  say "sources were checked. Run this where GitHub is reachable to check advisories too."
  if [ "$required" = 1 ]; then
    say "DENY_ADVISORIES_REQUIRED=1: failing"
    exit 1
  fi
fi
