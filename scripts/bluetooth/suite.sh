#!/usr/bin/env bash
# The real-stack Bluetooth suite: builds the three programs, installs the Debian packages the
# guest uses (BlueZ, btvirt, python-fido2) when missing, and boots one QEMU guest
# (scripts/vm/run.sh) that runs every check in scripts/bluetooth/guest.sh. Exits non-zero if
# any check failed. BENCH_ROUNDS (default 1) sets how many relay and BLE ceremonies the
# benchmark section times.
#
# Cost: one guest boot. 524-536 s of guest time measured on the 2-core machine at host load
# 13-15 (about 2.5 minutes of CPU in all, so about 4 minutes expected on an idle 2-core
# machine; the programs are the debug builds scripts/test.sh already made). Bound: the guest is
# killed after VM_TIMEOUT seconds (default 900).
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
command -v bluetoothd >/dev/null 2>&1 || [ -x /usr/sbin/bluetoothd ] || need+=(bluez)
command -v btvirt >/dev/null 2>&1 || need+=(bluez-test-tools)
command -v dbus-daemon >/dev/null 2>&1 || need+=(dbus)
/usr/bin/python3 -c 'import fido2' >/dev/null 2>&1 || need+=(python3-fido2)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "the Bluetooth suite needs Debian packages: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo build -q -j2 --bins -p bridge -p phone-sim -p tunnel-server --features phone-sim/bluez
bin=$(realpath "${CARGO_TARGET_DIR:-target}/debug")
export VM_MODULES="bluetooth hci_vhci ecdh_generic cmac ecb af_alg algif_hash algif_skcipher"
export VM_TIMEOUT=${VM_TIMEOUT:-900}
start=$(date +%s)
status=0
bash scripts/vm/run.sh scripts/bluetooth/guest.sh "$bin" "${BENCH_ROUNDS:-1}" || status=$?
echo "bluetooth suite: $(( $(date +%s) - start )) s, exit $status"
exit $status
