#!/usr/bin/env bash
# The Debian packages as a person installs them (CI runs this; root only):
#  1. scripts/release.sh --test-key --check-reproducible: both .deb files, the .xpi and .crx
#     (signed with a throwaway key, so the package ships that key's extension ID), packaged twice
#     and compared byte for byte;
#  2. lintian on both packages (errors and warnings fail; overrides carry their reasons);
#  3. in a copy-on-write root (scripts/overlay-root.sh: real apt-get, dpkg and maintainer
#     scripts, nothing reaches the machine, so other browser tests never see the package):
#     apt-get install both; run the installed programs (hybrid-bridge --version and doctor,
#     man pages, completions, tunnel-server --check with the shipped configuration and a
#     health check of it running as its system user, systemd-analyze verify on its unit);
#     Debian's Chromium and Firefox ESR each find the extension and host from the package
#     alone and complete a registration and a sign-in (browser/test/installed.mjs);
#     apt-get purge both;
#  4. every path the install, the tests and the purge left in that root is checked against
#     what Debian policy lets a purged package leave (below, each with its reason).
#
#   bash scripts/package-test.sh                 # packages a release build (cargo build --release)
#   bash scripts/package-test.sh --profile dev   # CI: packages the debug build scripts/test.sh made
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=3.8.0

# What the hybrid-bridge package ships for the security key (bridge/dist/): the udev rule,
# uhid at boot, the login service, the window program.
KEY_FILES="/usr/lib/udev/rules.d/70-hybrid-bridge-key.rules /usr/lib/modules-load.d/hybrid-bridge-key.conf /usr/lib/systemd/user/hybrid-bridge-key.service /usr/bin/hybrid-bridge-window"

if [ "${1:-}" = --inside ]; then
  # Step 3, inside the copy-on-write root: $2 holds the packages.
  rel=$2
  export DEBIAN_FRONTEND=noninteractive HOME=/tmp/package-test-home NO_COLOR=1
  mkdir -p "$HOME"
  say() { echo "-- $*" >&2; }
  say "apt-get install ./hybrid-bridge_*.deb ./tunnel-server_*.deb"
  apt-get install -y -qq --no-install-recommends "$rel"/hybrid-bridge_*.deb "$rel"/tunnel-server_*.deb >/dev/null
  say "the installed programs"
  hybrid-bridge --version
  tunnel-server --version
  man -P cat hybrid-bridge | grep -q 'hybrid-bridge'
  man -P cat tunnel-server | grep -q 'tunnel-server'
  bash -c '. /usr/share/bash-completion/completions/hybrid-bridge && complete -p hybrid-bridge' >/dev/null
  test -s /usr/share/zsh/vendor-completions/_hybrid-bridge
  test -s /usr/share/fish/vendor_completions.d/hybrid-bridge.fish
  # The security key's system files: the udev rule, uhid at boot, the login service.
  for f in $KEY_FILES; do test -s "$f" || { echo "$f is not installed" >&2; exit 1; }; done
  grep -qx 'uhid' /usr/lib/modules-load.d/hybrid-bridge-key.conf
  test -x /usr/bin/hybrid-bridge-window
  grep -q '^ExecStart=/usr/bin/hybrid-bridge key$' /usr/lib/systemd/user/hybrid-bridge-key.service
  # The browser host as the package installed it, for every browser's system folder.
  hybrid-bridge doctor --only browser --system --chromium-extension-id "$HB_PACKAGE_CHROMIUM_ID"
  say "tunnel-server: the shipped configuration, the unit, a run as its system user"
  tunnel-server --config /etc/tunnel-server/relay.toml --check
  systemd-analyze verify /lib/systemd/system/tunnel-server.service
  id tunnel-server
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  runuser -u tunnel-server -- tunnel-server --config /etc/tunnel-server/relay.toml --listen "127.0.0.1:$port" &
  relay=$!
  ok=0
  for _ in $(seq 50); do
    if tunnel-server health --config /etc/tunnel-server/relay.toml --address "127.0.0.1:$port" --timeout 1s; then ok=1; break; fi
    sleep 0.2
  done
  kill "$relay"; wait "$relay" || true
  [ $ok = 1 ] || { echo "the packaged relay did not answer /healthz as the tunnel-server user" >&2; exit 1; }
  # Debian's launcher (/etc/chromium.d/extensions) hands everything in
  # /usr/share/chromium/extensions to --load-extension as an unpacked extension: a file of ours
  # there would stop every Chromium start with a "Failed to load extension" dialog.
  if dpkg -L hybrid-bridge | grep -q '^/usr/share/chromium/extensions/'; then
    echo "the package ships files into /usr/share/chromium/extensions, which Debian's Chromium launcher loads as unpacked extensions" >&2
    exit 1
  fi
  say "the browsers, with only the package installed (browser/test/installed.mjs)"
  # Chromium installs the extension from the package's external extension file
  # (/usr/lib/chromium/extensions/<id>.json), Firefox ESR from the package's policy; each then
  # registers and signs in through the package's host.
  (cd browser && HYBRID_BRIDGE_SKIP_BUILD=1 node --test --test-concurrency=1 test/installed.mjs)
  say "apt-get purge hybrid-bridge tunnel-server"
  apt-get purge -y -qq hybrid-bridge tunnel-server >/dev/null
  for gone in /usr/bin/hybrid-bridge /usr/lib/hybrid-bridge /usr/share/hybrid-bridge /etc/tunnel-server /var/lib/tunnel-server $KEY_FILES; do
    if [ -e "$gone" ]; then echo "$gone is still there after the purge" >&2; exit 1; fi
  done
  exit 0
fi

profile=release
if [ "${1:-}" = --profile ]; then
  profile=${2:?--profile release or dev}
fi
if [ "$(id -u)" != 0 ]; then
  echo "package-test.sh installs packages (in a private copy-on-write root): run it as root" >&2
  exit 1
fi
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  echo "installing cargo-deb $CARGO_DEB_VERSION (once per machine)" >&2
  cargo install --locked -j2 cargo-deb --version "$CARGO_DEB_VERSION"
fi
command -v lintian >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian >/dev/null; }

out=$(realpath -m "${CARGO_TARGET_DIR:-target}/package-test")
rm -rf "$out"
mkdir -p "$out"
echo "== release.sh --test-key --check-reproducible --profile $profile" >&2
bash scripts/release.sh --test-key --check-reproducible --profile "$profile" --out "$out/release" 2> >(tee "$out/release.log" >&2)
id=$(sed -n 's/^chromium extension id: //p' "$out/release.log")

echo "== lintian" >&2
lintian --fail-on error,warning --display-info "$out"/release/*.deb

echo "== install, use, browsers, purge (in a copy-on-write root)" >&2
OVERLAY_CHANGES=$out/changes HB_PACKAGE_CHROMIUM_ID=$id \
  bash scripts/overlay-root.sh bash scripts/package-test.sh --inside "$out/release"

# What a purged package may leave (Debian policy), each with its reason:
allowed=(
  # the system user stays after a purge (policy 9.2.2: its files elsewhere must not pass to a
  # later user with the same ID), so the account files keep its line
  '^/etc/(passwd|group|shadow|gshadow)-?$'
  # the package manager's own records: dpkg's database, apt's state, caches and logs
  '^/var/lib/dpkg(/|$)' '^/var/lib/apt(/|$)' '^/var/cache/apt(/|$)' '^/var/cache/debconf(/|$)' '^/var/log(/|$)'
  # man-db's index, rebuilt by its trigger when manual pages come and go
  '^/var/cache/man(/|$)'
  # fontconfig's cache: a browser run as root writes the cache of a font folder the machine
  # has none for yet (Firefox ESR's own /usr/lib/firefox-esr/fonts on a machine where no
  # browser ran before this test)
  '^/var/cache/fontconfig/'
  # the lock adduser's shadow tools take on the account files
  '^/etc/\.pwd\.lock$'
  # runtime state under /run (a tmpfs, empty at the next boot): adduser's lock, systemd's
  # record of units loaded
  '^/run/adduser$' '^/run/systemd/systemd-units-load$'
  # dpkg removes a folder that no installed package ships once it is empty: /etc/opt, which
  # holds the Chrome, Brave, Edge and Vivaldi host folders, goes with the purge when nothing
  # else was in it
  '^/etc/opt$'
)
pattern=$(IFS='|'; echo "${allowed[*]}")
left=$(awk '{print $2, $1}' "$out/changes" | while read -r path kind; do
  [[ $path =~ $pattern ]] && continue
  # Chromium's external extensions folder, when the machine had it before the install (Chromium
  # makes it, mode 0700, when it runs as root: scripts/key-vm does): dpkg removes it with the
  # purge once the package's file in it is gone, as it does any empty folder no installed
  # package ships. Gone is allowed; left behind is not.
  [ "$path $kind" = "/usr/lib/chromium/extensions deleted" ] && continue
  echo "$path $kind"
done)
if [ -n "$left" ]; then
  echo "the purge left these behind (path, kind):" >&2
  echo "$left" >&2
  exit 1
fi
echo "purged clean: $(wc -l < "$out/changes") paths changed in the root, each of a kind a purge may leave (this script lists them with their reasons)" >&2
echo "package test: both packages built, lintian clean, installed, used by Chromium and Firefox ESR, purged"
