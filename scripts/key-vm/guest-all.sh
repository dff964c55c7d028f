#!/usr/bin/env bash
# Guest (scripts/vm/run.sh): both suites in one boot, each in a working directory of its own
# with its own relay, key and phone, one after the other (guest-tools.sh, then
# guest-browsers.sh). The exit status is the number of failures (0: all passed).
#
#   guest-all.sh BIN_DIR [tools|browsers|all]
set -u
bin=$1
suites=${2:-all}
[ "$suites" = all ] && suites="tools browsers"
fails=0
for suite in $suites; do
  mkdir -p "$suite"
  (cd "$suite" && bash "$VM_SCRIPT_DIR/guest-$suite.sh" "$bin")
  fails=$((fails + $?))
done
exit "$fails"
