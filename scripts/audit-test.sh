#!/usr/bin/env bash
# Tests scripts/audit.sh: offline without a database it skips quickly and says so (or fails
# with AUDIT_REQUIRED=1); with a database that has an advisory against a crate in Cargo.lock it
# fails and names it; with one that does not, it passes. The databases are fabricated here, so
# this runs offline. Needs cargo-audit (audit.sh installs it from PyPI when missing).
set -uo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
check() { # name, condition result
    if [ "$2" = 0 ]; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); echo "FAIL $1"; fi
}

# A database with one advisory against every version of $1.
fabricate() {
    mkdir -p "$tmp/db-$1/crates/$1"
    cat >"$tmp/db-$1/crates/$1/RUSTSEC-2099-0001.md" <<ADVISORY
\`\`\`toml
[advisory]
id = "RUSTSEC-2099-0001"
package = "$1"
date = "2099-01-01"
url = "https://example.invalid/advisory"

[versions]
patched = [">= 999.0.0"]
\`\`\`

# Fabricated advisory for scripts/audit-test.sh
ADVISORY
    echo "$tmp/db-$1"
}

# An unreachable database URL (a closed loopback port) and no local copy.
offline=(env -u AUDIT_DB AUDIT_DB_URL=http://127.0.0.1:9/advisory-db.git CARGO_HOME="$tmp/cargo-home")
start=$(date +%s)
out=$("${offline[@]}" bash scripts/audit.sh 2>&1); rc=$?
took=$(($(date +%s) - start))
echo "$out" | sed 's/^/    /'
[ $rc = 0 ] && grep -q "SKIPPED: .*did not answer" <<<"$out" && [ "$took" -lt 15 ]
check "offline without a database: skipped, exit 0, in ${took}s" $?
out=$("${offline[@]}" AUDIT_REQUIRED=1 bash scripts/audit.sh 2>&1); rc=$?
[ $rc = 1 ] && grep -q "SKIPPED" <<<"$out"
check "offline with AUDIT_REQUIRED=1: exit 1" $?

out=$(AUDIT_DB=$(fabricate hex) bash scripts/audit.sh 2>&1); rc=$?
echo "$out" | sed 's/^/    /'
[ $rc = 1 ] && grep -q "RUSTSEC-2099-0001" <<<"$out" && grep -q "Crate: *hex" <<<"$out"
check "an advisory against hex (in Cargo.lock): exit 1, named" $?

out=$(AUDIT_DB=$(fabricate no-such-crate-here) bash scripts/audit.sh 2>&1); rc=$?
[ $rc = 0 ] && grep -q "audit: ok" <<<"$out"
check "an advisory against a crate not in Cargo.lock: exit 0" $?

out=$(AUDIT_DB="$tmp/empty" bash scripts/audit.sh 2>&1); rc=$?
[ $rc = 0 ] && grep -q "SKIPPED: AUDIT_DB=.* not an advisory database" <<<"$out"
check "AUDIT_DB that is not a database: skipped and said" $?

echo "audit-test: $passed passed, $failed failed"
[ "$failed" = 0 ]
