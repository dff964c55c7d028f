#!/usr/bin/env bash
# Coverage-guided fuzzing of every cargo-fuzz target in fuzz/ for a bounded time (CI runs this).
#
#   bash scripts/fuzz.sh              build, then run each target for its share of FUZZ_BUDGET
#   bash scripts/fuzz.sh seeds        write the seed inputs into fuzz/corpus/ and minimize it
#   bash scripts/fuzz.sh merge        minimize what the last run found into fuzz/corpus/
#
#   FUZZ_DIR=fuzz/bridge      the bridge's targets (native messaging, W3C options JSON), a
#                             package of their own because they build the bridge's dependencies
#
#   FUZZ_TARGETS="frame qr"   only these targets (default: all, from `cargo fuzz list`)
#   FUZZ_SECONDS=3600         seconds per target (default: FUZZ_BUDGET / number of targets)
#   FUZZ_BUDGET=175           seconds of fuzzing for all targets together (default 175; the
#                             step, with start-up and a warm build, stays within 5 minutes)
#   FUZZ_MIN_EXECS=1000       fail a target that runs fewer executions per second
#
# Each target starts from the committed corpus ($FUZZ_DIR/corpus/<target>, read-only) and writes
# new inputs to $FUZZ_DIR/target/fuzz-corpus/<target>. A crash, hang (10 s per input) or
# out-of-memory fails the run, and the input is copied to $FUZZ_DIR/regressions/<target>/, which `cargo test`
# replays: fix the bug and commit the input with the fix. Without a nightly toolchain this
# says so and exits 0, so the rest of CI still runs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
mode=${1:-run}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: skipped: there is no nightly toolchain (cargo-fuzz needs one); install it with"
  echo "      \`rustup toolchain install nightly\` to fuzz"
  exit 0
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz into ~/.cargo/bin (once)"
  cargo install --locked cargo-fuzz
fi

fuzz_dir=${FUZZ_DIR:-fuzz}
dir="$root/$fuzz_dir"
cd "$dir"
mkdir -p target
# `cargo fuzz <command> --fuzz-dir`: cargo-fuzz would otherwise take fuzz/ from any folder
# below the repository. Each fuzz dir builds into its own target/.
fuzz() {
  local command=$1
  shift
  CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2} cargo +nightly fuzz "$command" --fuzz-dir "$dir" "$@"
}
targets=${FUZZ_TARGETS:-$(fuzz list)}
count=$(echo "$targets" | wc -w)
budget=${FUZZ_BUDGET:-175}
seconds=${FUZZ_SECONDS:-$(( budget / count > 10 ? budget / count : 10 ))}
min_execs=${FUZZ_MIN_EXECS:-1000}
# Release without AddressSanitizer (the workspace forbids unsafe code; ASan made the handshake
# target four times slower) and with debug assertions and overflow checks only in the code under
# test (fuzz/Cargo.toml's profile), so P-256 runs at full speed. Every command uses the same
# flags, so they share one build.
build_flags=(--release --sanitizer none)

case "$mode" in
  seeds)
    cargo +nightly run -q --manifest-path "$dir/Cargo.toml" --example seeds
    for t in $targets; do
      fuzz cmin "${build_flags[@]}" "$t" "$dir/corpus/$t" -- -rss_limit_mb=2048 >"target/cmin-$t.log" 2>&1 \
        || { tail -20 "target/cmin-$t.log"; exit 1; }
      echo "fuzz: corpus/$t: $(find "corpus/$t" -type f | wc -l) inputs after cmin"
    done
    exit 0
    ;;
  merge)
    for t in $targets; do
      if [ -d "target/fuzz-corpus/$t" ]; then
        cp -n "target/fuzz-corpus/$t"/* "corpus/$t"/ 2>/dev/null || true
      fi
      fuzz cmin "${build_flags[@]}" "$t" "$dir/corpus/$t" -- -rss_limit_mb=2048 >"target/cmin-$t.log" 2>&1 \
        || { tail -20 "target/cmin-$t.log"; exit 1; }
      echo "fuzz: corpus/$t: $(find "corpus/$t" -type f | wc -l) inputs after cmin"
    done
    exit 0
    ;;
  run) ;;
  *) echo "usage: bash scripts/fuzz.sh [run|seeds|merge]" >&2; exit 2 ;;
esac

echo "fuzz: building $count targets in $fuzz_dir (release, no sanitizer, overflow checks in our crates)"
build_start=$(date +%s)
fuzz build "${build_flags[@]}" >target/fuzz-build.log 2>&1 || { tail -40 target/fuzz-build.log; exit 1; }
echo "fuzz: built in $(( $(date +%s) - build_start )) s; running each target ${seconds} s" \
  "(load: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores)"

failed=()
printf '%-12s %10s %10s %8s %8s  %s\n' target execs/s executions corpus new result
for t in $targets; do
  work="$dir/target/fuzz-corpus/$t"
  artifacts="$dir/artifacts/$t"
  log="$dir/target/fuzz-$t.log"
  rm -rf "$work"
  mkdir -p "$work" "$artifacts" "corpus/$t"
  status=0
  fuzz run "${build_flags[@]}" "$t" "$work" "$dir/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  added=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
  corpus=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  result=ok
  if [ "$status" -ne 0 ]; then
    result="FAILED (exit $status): crash, hang or out-of-memory; see $log"
    mkdir -p "$dir/regressions/$t"
    for a in "$artifacts"/crash-* "$artifacts"/timeout-* "$artifacts"/oom-* "$artifacts"/slow-unit-*; do
      [ -f "$a" ] && cp "$a" "$dir/regressions/$t/" \
        && result="$result; kept as $fuzz_dir/regressions/$t/$(basename "$a")"
    done
    failed+=("$t")
  elif [ -z "$execs" ] || [ "$execs" -lt "$min_execs" ]; then
    result="FAILED: below $min_execs execs/s"
    failed+=("$t")
  fi
  printf '%-12s %10s %10s %8s %8s  %s\n' "$t" "${execs:-?}" "${runs:-?}" "${corpus:-?}" "${added:-?}" "$result"
  if [ "$status" -ne 0 ]; then
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -8 | sed 's/^/    /'
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (logs in $fuzz_dir/target/fuzz-<target>.log; reproduce with" \
    "\`cargo +nightly fuzz run --release -s none <target> regressions/<target>/<file>\` from $fuzz_dir/)" >&2
  exit 1
fi
echo "fuzz: every target ran ${seconds} s with no crash, hang or slow target" \
  "(new inputs are in $fuzz_dir/target/fuzz-corpus; keep them with \`bash scripts/fuzz.sh merge\`)"
