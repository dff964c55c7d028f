#!/usr/bin/env bash
# The soak (BENCHMARKS.md, "Soak"): the relay serving 1,000,000 mixed ceremonies (loadgen
# soak: QR and linked, some abandoned mid-way, some from phones that never read), then the
# bridge and the simulated phone serving 10,000 back-to-back sign-ins in one process
# (hybrid-demo --soak), each sampled throughout and judged by the same rule (loadgen
# soak-report): after warm-up every series stays within ±10 % of its median (the counts of
# what is in flight are only required to come back to idle), and every series comes back to
# its idle baseline (at most 10 % above it). Writes CSV and SVG for both into the output folder and exits non-zero,
# naming the series, if either drifted.
#
#   bash scripts/soak.sh                 the full soak, release build (about 30 minutes on
#                                        two cores)
#   bash scripts/soak.sh --short         20,000 relay and 200 bridge ceremonies (CI)
#   --profile dev|release                which build to run (default release)
#   --out DIR                            where the CSV and SVG go (default target/soak)
set -euo pipefail
cd "$(dirname "$0")/.."

short=0
profile=release
out=target/soak
while [ $# -gt 0 ]; do
  case "$1" in
    --short) short=1 ;;
    --profile) profile="$2"; shift ;;
    --profile=*) profile="${1#--profile=}" ;;
    --out) out="$2"; shift ;;
    --out=*) out="${1#--out=}" ;;
    *) echo "soak.sh: unknown argument $1 (--short, --profile dev|release, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$short" = 1 ]; then
  relay=(--ceremonies 20000 --prime 2000 --warmup-percent 30 --idle 20s --sample-every 2s)
  bridge=(--soak 200 --soak-prime 20 --soak-warmup-percent 30 --soak-idle 4s --soak-sample-every 250ms)
else
  relay=(--ceremonies 1000000 --prime 5000 --idle 40s --sample-every 5s)
  bridge=(--soak 10000 --soak-prime 50 --soak-idle 10s --soak-sample-every 5s)
fi

cargo build -q -j2 --profile "$profile" -p relay-bench -p tunnel-server -p hybrid-demo
dir="${CARGO_TARGET_DIR:-target}"
case "$profile" in
  dev) bin="$dir/debug" ;;
  *) bin="$dir/$profile" ;;
esac
mkdir -p "$out"
# One descriptor per client socket on loadgen's side; the relay inherits the limit.
ulimit -n 20000 2>/dev/null || true

status=0
echo "== the relay: loadgen soak ${relay[*]}"
"$bin/loadgen" soak "${relay[@]}" --csv "$out/relay.csv" --svg "$out/relay.svg" || status=1

echo "== the bridge and phone-sim in one process: hybrid-demo ${bridge[*]}"
if "$bin/hybrid-demo" --quiet "${bridge[@]}" --soak-csv "$out/bridge.csv" --dir "$out/demo"; then
  "$bin/loadgen" soak-report --csv "$out/bridge.csv" --svg "$out/bridge.svg" --in-flight fds,tasks \
    --title "bridge and phone-sim soak: ${bridge[1]} sign-ins in one process" || status=1
else
  status=1
fi
rm -rf "$out/demo"
echo "samples and plots: $out/relay.csv $out/relay.svg $out/bridge.csv $out/bridge.svg"
exit "$status"
