#!/usr/bin/env bash
# The phone as a USB security key (`hybrid-bridge key`) under a real Linux kernel, in one QEMU
# guest per suite (scripts/vm): the key on /dev/uhid, the relay on loopback, phone-sim as the
# phone.
#
#   bash scripts/key-vm/run.sh [tools|browsers|all]      (default: all)
#
#   tools     libfido2's fido2-token/-cred/-assert, python-fido2, OpenSSH, a linked phone and
#             every CTAPHID error path through hidraw (guest-tools.sh; about 1–2 minutes)
#   browsers  Firefox ESR and Chromium, with no extension, register and sign in on a test page
#             through the key (guest-browsers.sh; 3–5 minutes under TCG on a quiet machine:
#             browser start-up; four times that on a busy one)
#
# Installs the Debian packages the guests use on the host (the guest runs the host's root
# read-only), builds the three binaries, boots, and fails on any FAIL line.
set -euo pipefail
cd "$(dirname "$0")/../.."
suite=${1:-all}
case "$suite" in tools | browsers | all) ;; *) sed -n '2,14p' "$0" >&2; exit 2 ;; esac

need=()
command -v fido2-token >/dev/null 2>&1 || need+=(fido2-tools)
/usr/bin/python3 -c 'import fido2, cryptography' >/dev/null 2>&1 || need+=(python3-fido2 python3-cryptography)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
if [ "$suite" != tools ]; then
  command -v firefox-esr >/dev/null 2>&1 || need+=(firefox-esr)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "key-vm: the suites need Debian packages: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "key-vm: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

target=${CARGO_TARGET_DIR:-target}
# The same build as scripts/test.sh's, so after it this is a no-op.
cargo build -q -j2 --workspace --bins --features phone-sim/bluez
bin=$(realpath "$target/debug")

failed=()
# run_suite NAME GUEST_SCRIPT CPUS MEMORY TIMEOUT_SECONDS
run_suite() {
  local name=$1 script=$2 start log status
  start=$(date +%s)
  log=$(mktemp "${TMPDIR:-/tmp}/key-vm-$name.XXXXXX")
  echo "== key-vm: $name suite (QEMU guest, $3 CPU, $4; load $(cut -d' ' -f1-3 /proc/loadavg))"
  set +e
  VM_MODULES="uhid hid_generic" VM_SMP=$3 VM_MEM=$4 VM_TIMEOUT=$5 \
    bash scripts/vm/run.sh "scripts/key-vm/$script" "$bin" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  set -e
  local fails
  fails=$(grep -c '^FAIL' "$log" || true)
  echo "== key-vm: $name suite: $(grep -c '^PASS' "$log" || true) passed, $fails failed, guest status $status, $(( $(date +%s) - start )) s"
  if [ "$status" != 0 ] || [ "$fails" != 0 ]; then
    failed+=("$name")
  fi
}

if [ "$suite" != browsers ]; then
  run_suite tools guest-tools.sh 1 1G 600
fi
if [ "$suite" != tools ]; then
  # Browsers need two CPUs and 3 GiB under TCG (scripts/vm and /work/shared/qemu/NOTES.md).
  run_suite browsers guest-browsers.sh 2 3G 1800
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "key-vm: FAILED: ${failed[*]}" >&2
  exit 1
fi
