#!/usr/bin/env bash
# Tests scripts/deny.sh offline: without an advisory database it says plainly that advisories
# were not checked (exit 0, or 1 with DENY_ADVISORIES_REQUIRED=1); with a local database that
# has an advisory against a crate in Cargo.lock it fails and names it; with one that has none,
# it passes. The databases are fabricated here. Needs the cargo-deny that deny.sh installs.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
show() { while IFS= read -r line; do printf '    %s\n' "$line"; done; }
check() { # name, condition result
  if [ "$2" = 0 ]; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); echo "FAIL $1"; fi
}

# deny.toml with its advisory database moved to an unreachable URL and a folder of our own.
url=https://example.invalid/advisory-db
sed "s|^ignore = \[\]$|ignore = []\ndb-urls = [\"$url\"]\ndb-path = \"$tmp/dbs\"|" deny.toml >"$tmp/deny.toml"
grep -q "db-path" "$tmp/deny.toml" || { echo "FAIL deny.toml has no 'ignore = []' line under [advisories] to add a database to"; exit 1; }
run() { DENY_CONFIG="$tmp/deny.toml" DENY_DB_URL=$url DENY_DB_PATH="$tmp/dbs" DENY_NET_TIMEOUT=2 "$@" bash scripts/deny.sh 2>&1; }

out=$(run env); rc=$?
show <<<"$out"
[ $rc = 0 ] && grep -q "advisories: NOT CHECKED" <<<"$out" && grep -q "bans ok, licenses ok, sources ok" <<<"$out"
check "no database: licences, bans and sources checked; advisories NOT CHECKED, said; exit 0" $?
out=$(run env DENY_ADVISORIES_REQUIRED=1); rc=$?
[ $rc = 1 ] && grep -q "NOT CHECKED" <<<"$out"
check "no database with DENY_ADVISORIES_REQUIRED=1: exit 1" $?

# Where cargo-deny keeps the database for $url: it names the folder in its error.
dir=$(cargo deny --locked --offline --config "$tmp/deny.toml" check advisories 2>&1 \
  | grep -o "$tmp/dbs/[^'\" ]*" | head -1)
[ -n "$dir" ]
check "cargo-deny names its database folder ($dir)" $?

# A database with one advisory against every version of $1.
fabricate() {
  rm -rf "$dir"
  mkdir -p "$dir/crates/$1"
  cat >"$dir/crates/$1/RUSTSEC-2099-0001.md" <<ADVISORY
\`\`\`toml
[advisory]
id = "RUSTSEC-2099-0001"
package = "$1"
date = "2099-01-01"
url = "https://example.invalid/advisory"

[versions]
patched = [">= 999.0.0"]
\`\`\`

# Fabricated advisory for scripts/deny-test.sh
ADVISORY
  git -C "$dir" init -q && git -C "$dir" add -A \
    && git -C "$dir" -c user.email=test@example.invalid -c user.name=test commit -qm advisory
}

fabricate hex
out=$(run env); rc=$?
tail -12 <<<"$out" | show
[ $rc = 1 ] && grep -q "RUSTSEC-2099-0001" <<<"$out" && grep -q "local copy" <<<"$out"
check "a local database with an advisory against hex (in Cargo.lock): exit 1, named" $?

fabricate no-such-crate-here
out=$(run env); rc=$?
[ $rc = 0 ] && grep -q "advisories ok" <<<"$out"
check "a local database whose advisory matches nothing in Cargo.lock: exit 0" $?

echo "deny-test: $passed passed, $failed failed"
[ "$failed" = 0 ]
