#!/usr/bin/env bash
# Runs every test in the workspace: unit, integration and end-to-end, including the btleplug
# scanner against a mock BlueZ, the relay's scale-out and fleet tests behind nginx (the fleet
# test runs relay processes in UTS namespaces of their own with util-linux's unshare), the
# browser extension's tests, the security key's window under Xvfb, and the security key under
# a real kernel in QEMU (scripts/key-vm).
# Installs the Debian packages those need when they are missing (dbus, python3-dbusmock, nginx,
# xvfb, xdotool, imagemagick, python3-gi, gir1.2-gtk-4.0, chromium, firefox-esr, golang-go,
# golang-github-duo-labs-webauthn-dev; QEMU, a kernel, fido2-tools, python3-fido2,
# openssh-client); run as root or install them yourself first. Extra arguments go to
# `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v dbus-daemon >/dev/null 2>&1 || need+=(dbus)
/usr/bin/python3 -c 'import dbusmock, dbus' >/dev/null 2>&1 || need+=(python3-dbusmock python3-dbus)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
# The security key's window (bridge/dist/hybrid-bridge-window, GTK 4 through PyGObject) runs
# under Xvfb, keys pressed by xdotool, screenshots taken by ImageMagick's import.
command -v Xvfb >/dev/null 2>&1 || need+=(xvfb)
command -v xdotool >/dev/null 2>&1 || need+=(xdotool)
command -v import >/dev/null 2>&1 || need+=(imagemagick)
/usr/bin/python3 -c 'import gi; gi.require_version("Gtk", "4.0"); from gi.repository import Gtk' \
  >/dev/null 2>&1 || need+=(python3-gi gir1.2-gtk-4.0)
# The browser extension's end-to-end tests (browser/README.md) drive Debian's browsers.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v firefox-esr >/dev/null 2>&1 || need+=(firefox-esr)
# Their Go relying party (browser/rp/go_webauthn) builds offline from Debian's Go library.
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ -d /usr/share/gocode/src/github.com/duo-labs/webauthn ] || need+=(golang-github-duo-labs-webauthn-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing test dependencies: ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "the tests need Debian packages: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

# phone-sim's BlueZ advertiser is behind a feature; the tests exercise it against the mock BlueZ.
cargo test --workspace -j2 --features phone-sim/bluez "$@"

# The browser extension: unit tests, web-ext lint, and end-to-end in Chromium and Firefox ESR
# against the binaries cargo test just built.
(cd browser && npm ci --no-audit --no-fund --loglevel=error && HYBRID_BRIDGE_SKIP_BUILD=1 npm test)

# Every command the READMEs show parses with the real programs; walkthroughs run as written.
cargo build --workspace -j2 --bins --features phone-sim/bluez
python3 scripts/check-readme-commands.py --bin-dir "${CARGO_TARGET_DIR:-target}/debug"

# The phone as a USB security key under a real Linux kernel (one QEMU guest per suite,
# scripts/vm): libfido2's tools, python-fido2, OpenSSH, every CTAPHID error through hidraw,
# then Firefox ESR and Chromium with no extension, all through `hybrid-bridge key` on
# /dev/uhid. Installs QEMU, a Debian kernel and the programs it drives when run as root.
bash scripts/key-vm/run.sh all
