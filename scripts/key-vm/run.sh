#!/usr/bin/env bash
# The phone as a USB security key (`hybrid-bridge key`) under a real Linux kernel, in one QEMU
# guest (scripts/vm): the key on /dev/uhid, the relay on loopback, phone-sim as the phone.
#
#   bash scripts/key-vm/run.sh [tools|browsers|all]      (default: all)
#
#   tools     libfido2's fido2-token/-cred/-assert, python-fido2, OpenSSH, a linked phone and
#             every CTAPHID error path through hidraw (guest-tools.sh)
#   browsers  Firefox ESR and Chromium, with no extension, register and sign in on a test page
#             through the key (guest-browsers.sh)
#   all       both, one after the other in the same guest (guest-all.sh)
#
# Installs the Debian packages the guests use on the host (the guest runs the host's root
# read-only), builds the three binaries, warms the browsers' profiles natively, boots once, and
# fails on any FAIL line. Time: TIMING. Bound: the guest is killed after 25 minutes (10 for
# tools alone), each browser after 800 s; on failure the guest's files are kept and named.
set -euo pipefail
cd "$(dirname "$0")/../.."
suite=${1:-all}
case "$suite" in tools | browsers | all) ;; *) sed -n '2,11p' "$0" >&2; exit 2 ;; esac

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

start=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/key-vm.XXXXXX")
log=$work/guest.log
if [ "$suite" != tools ]; then
  # Browser start-up dominates the guest's time under TCG, and a profile's first start is the
  # slowest: Firefox builds its startup cache and registers its built-in add-ons (10 s here
  # natively, 5 s for the next start; several minutes under TCG on a busy machine). One
  # native start of each browser fills the profiles the guest copies (guest-browsers.sh).
  mkdir -p "$work/vm/warm/firefox" "$work/home"
  cp scripts/key-vm/user.js "$work/vm/warm/firefox/"
  HOME=$work/home MOZ_CRASHREPORTER_DISABLE=1 timeout 120 firefox-esr --headless --no-remote \
    --profile "$work/vm/warm/firefox" --screenshot "$work/firefox.png" about:blank >/dev/null 2>&1 ||
    echo "key-vm: warming Firefox's profile failed; the guest starts from an empty one" >&2
  HOME=$work/home timeout 120 chromium --headless=new --no-sandbox --no-first-run --disable-gpu \
    --user-data-dir="$work/vm/warm/chromium" --screenshot="$work/chromium.png" about:blank \
    >/dev/null 2>&1 ||
    echo "key-vm: warming Chromium's profile failed; the guest starts from an empty one" >&2
  echo "== key-vm: browser profiles warmed natively, $(( $(date +%s) - start )) s"
fi
# Browsers need two CPUs and 3 GiB under TCG (scripts/vm/README.md); the
# tools suite alone fits in one CPU and 1 GiB.
if [ "$suite" = tools ]; then cpus=1 mem=1G limit=600; else cpus=2 mem=3G limit=1500; fi
echo "== key-vm: $suite (one QEMU guest, $cpus CPU, $mem; load $(cut -d' ' -f1-3 /proc/loadavg))"
set +e
VM_WORK=$work/vm VM_MODULES="uhid hid_generic" VM_SMP=$cpus VM_MEM=$mem VM_TIMEOUT=$limit \
  bash scripts/vm/run.sh scripts/key-vm/guest-all.sh "$bin" "$suite" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
fails=$(grep -c '^FAIL' "$log" || true)
echo "== key-vm: $suite: $(grep -c '^PASS' "$log" || true) passed, $fails failed, guest status $status, $(( $(date +%s) - start )) s"
if [ "$status" != 0 ] || [ "$fails" != 0 ]; then
  echo "key-vm: FAILED; the guest's files (key.log, phone.log, each program's output) are in $work/vm" >&2
  exit 1
fi
rm -rf "$work"
