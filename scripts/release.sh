#!/usr/bin/env bash
# Release artefacts from one command (docs/RELEASE.md): the two Debian packages
# (hybrid-bridge_<version>-1_amd64.deb, tunnel-server_<version>-1_amd64.deb), the extension for
# Firefox (.xpi) and Chromium (.crx, signed), and SHA256SUMS, in OUT (default dist/release).
#
#   bash scripts/release.sh --key /secure/hybrid-bridge-extension.pem   # a release
#   bash scripts/release.sh --test-key                                  # CI: a throwaway key
#   bash scripts/release.sh --test-key --check-reproducible             # and package it twice
#   bash scripts/release.sh --key KEY.pem --firefox-xpi signed.xpi      # ship Mozilla's signed .xpi
#   bash scripts/release.sh --test-key --profile dev                    # CI: the tests' debug build
#
# --profile dev packages the debug binaries that scripts/test.sh builds, with the same cargo
# command, so after the tests nothing is compiled: CI tests the packaging, installation and
# browsers in minutes instead of spending about 9 CPU-minutes on a release build. A release
# always uses the default, --profile release.
#
# The .crx is signed with --key, whose public key gives the Chromium extension ID: the real key
# (kept outside the repository) gives the published ID kbehonokcoobakmaiaaeeiedfmmjlope, and the
# script refuses a --key that gives another. --test-key makes a throwaway key (removed at
# exit): the extension then gets another ID, and the host manifests and Chromium's external
# extension file in the package follow it, so the package works as a whole.
#
# Reproducible: everything is stamped with SOURCE_DATE_EPOCH (default: the last commit's time),
# the build paths are remapped, the .xpi and .crx are written in a fixed order with fixed
# times. --check-reproducible packages a second time from the same binaries and compares the
# bytes of the .deb, .xpi and .crx files; docs/RELEASE.md lists what a rebuild from scratch can
# still change.
#
# Needs: cargo, cargo-deb (`cargo install --locked cargo-deb --version 3.8.0`), node (and
# `npm ci` in browser/ for nothing more than node's own modules), gzip.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

OUT=dist/release
KEY=
SIGNED_XPI=
TEST_KEY=0
CHECK=0
PROFILE=release
PUBLISHED_ID=kbehonokcoobakmaiaaeeiedfmmjlope
CARGO_DEB_VERSION=3.8.0
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --key) KEY=$2; shift 2 ;;
    --firefox-xpi) SIGNED_XPI=$(realpath "$2"); shift 2 ;;
    --test-key) TEST_KEY=1; shift ;;
    --check-reproducible) CHECK=1; shift ;;
    --profile) PROFILE=$2; shift 2 ;;
    -h|--help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "release.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $PROFILE in
  release) PROFILE_DIR=release ;;
  dev) PROFILE_DIR=debug ;;
  *) echo "release.sh: --profile is release or dev, not $PROFILE" >&2; exit 2 ;;
esac
if [ -z "$KEY" ] && [ $TEST_KEY = 0 ]; then
  echo "release.sh: give the extension signing key (--key FILE; docs/RELEASE.md says where it lives) or --test-key" >&2
  exit 2
fi
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  echo "release.sh: needs cargo-deb $CARGO_DEB_VERSION: cargo install --locked cargo-deb --version $CARGO_DEB_VERSION" >&2
  exit 1
fi

SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
TARGET=$CARGO_TARGET_DIR
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

if [ $TEST_KEY = 1 ]; then
  KEY=$scratch/throwaway-extension-key.pem
  node browser/tools/pack.mjs keygen "$KEY" >/dev/null
fi

# The binaries. A release build has the build's own paths taken out (panic messages name
# source files), so its bytes do not depend on where the tree was checked out.
step() { echo "== $*" >&2; }
if [ "$PROFILE" = release ]; then
  step "cargo build --release (hybrid-bridge, tunnel-server)"
  export SOURCE_DATE_EPOCH
  RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$REPO=/build/hybrid-bridge --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo" \
    cargo build --release --locked -j2 -p bridge --bin hybrid-bridge -p tunnel-server --bin tunnel-server
else
  # scripts/test.sh's own command in the caller's environment (same packages, features, flags
  # and variables: the cc crate's build scripts rebuild C code when SOURCE_DATE_EPOCH
  # changes), so after the tests it compiles nothing.
  step "cargo build --workspace --bins --features phone-sim/bluez (the tests' debug build)"
  cargo build --workspace -j2 --bins --features phone-sim/bluez
  export SOURCE_DATE_EPOCH
fi
BRIDGE=$TARGET/$PROFILE_DIR/hybrid-bridge
RELAY=$TARGET/$PROFILE_DIR/tunnel-server
# cargo-deb packages target/release/ (the paths in Cargo.toml) of a target folder of its own,
# holding the binaries stripped as Debian ships them (lintian: unstripped-binary-or-object;
# its --strip would also try the shell launcher). The build's own binaries stay as they are.
DEB_TARGET=$TARGET/package-$PROFILE
mkdir -p "$DEB_TARGET/release"
strip --strip-unneeded -o "$DEB_TARGET/release/hybrid-bridge" "$BRIDGE"
strip --strip-unneeded -o "$DEB_TARGET/release/tunnel-server" "$RELAY"
STAGE=$DEB_TARGET/release/package
VERSION=$("$BRIDGE" --version | awk '{print $2}')
DEB_VERSION=$VERSION-1

# A Debian changelog entry for each package (lintian wants one; the history is CHANGELOG.md).
changelog() {
  local pkg=$1 date
  date=$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")
  printf '%s (%s) unstable; urgency=medium\n\n  * Release %s: see README.md and CHANGELOG.md in the source.\n\n -- hybrid-bridge developers <hybrid-bridge@example.invalid>  %s\n' \
    "$pkg" "$DEB_VERSION" "$VERSION" "$date"
}

# Everything the packages ship that the build generates (bridge/Cargo.toml and
# tunnel-server/Cargo.toml name these paths in [package.metadata.deb]).
stage() {
  rm -rf "$STAGE"
  local hb=$STAGE/hybrid-bridge ts=$STAGE/tunnel-server
  mkdir -p "$hb/completions" "$hb/extension" "$hb/chromium-extensions" "$hb/firefox" "$ts"
  "$BRIDGE" man | gzip -9n > "$hb/hybrid-bridge.1.gz"
  "$RELAY" man | gzip -9n > "$ts/tunnel-server.1.gz"
  NO_COLOR=1 "$BRIDGE" completions bash > "$hb/completions/hybrid-bridge"
  NO_COLOR=1 "$BRIDGE" completions zsh > "$hb/completions/_hybrid-bridge"
  NO_COLOR=1 "$BRIDGE" completions fish > "$hb/completions/hybrid-bridge.fish"
  changelog hybrid-bridge | gzip -9n > "$hb/changelog.Debian.gz"
  changelog tunnel-server | gzip -9n > "$ts/changelog.Debian.gz"

  # The extension, packed and signed; its ID decides what the host manifests allow.
  local packed
  packed=$(node browser/tools/pack.mjs --key "$KEY" --out "$scratch/extension")
  CHROMIUM_ID=$(node -e 'console.log(JSON.parse(process.argv[1]).chromium_id)' "$packed")
  if [ $TEST_KEY = 0 ] && [ "$CHROMIUM_ID" != "$PUBLISHED_ID" ]; then
    echo "release.sh: $KEY gives the Chromium ID $CHROMIUM_ID, not the published $PUBLISHED_ID: wrong key (or use --test-key for a test build)" >&2
    exit 1
  fi
  if [ -n "$SIGNED_XPI" ]; then
    # Mozilla's signed copy of this very add-on (web-ext sign, docs/RELEASE.md): same ID and
    # version, plus the signature files Firefox release requires.
    python3 - "$SIGNED_XPI" "$VERSION" <<'PY'
import json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
m = json.loads(z.read("manifest.json"))
gecko = m.get("browser_specific_settings", {}).get("gecko", {}).get("id")
if gecko != "hybrid-bridge@hybridbridge.org" or m.get("version") != sys.argv[2]:
    sys.exit(f"release.sh: {sys.argv[1]} is add-on {gecko} {m.get('version')}, not hybrid-bridge@hybridbridge.org {sys.argv[2]}")
if "META-INF/mozilla.rsa" not in z.namelist():
    sys.exit(f"release.sh: {sys.argv[1]} is not signed (no META-INF/mozilla.rsa)")
PY
    cp "$SIGNED_XPI" "$scratch/extension/hybrid-bridge-$VERSION.xpi"
  fi
  cp "$scratch/extension/hybrid-bridge-$VERSION.xpi" "$hb/extension/hybrid-bridge.xpi"
  cp "$scratch/extension/hybrid-bridge-$VERSION.crx" "$hb/extension/hybrid-bridge.crx"
  "$BRIDGE" browser install --system --root "$hb/root" --host-binary /usr/bin/hybrid-bridge \
    --chromium-extension-id "$CHROMIUM_ID" >/dev/null
  # Chromium and Chrome install an extension named by an <id>.json in their external
  # extensions folder (bridge/Cargo.toml says which folder, and why); Firefox one named by
  # policy (ExtensionSettings). Both from the package.
  printf '{\n  "external_crx": "/usr/share/hybrid-bridge/extension/hybrid-bridge.crx",\n  "external_version": "%s"\n}\n' \
    "$VERSION" > "$hb/chromium-extensions/$CHROMIUM_ID.json"
  printf '{\n  "policies": {\n    "ExtensionSettings": {\n      "hybrid-bridge@hybridbridge.org": {\n        "installation_mode": "normal_installed",\n        "install_url": "file:///usr/share/hybrid-bridge/extension/hybrid-bridge.xpi"\n      }\n    }\n  }\n}\n' \
    > "$hb/firefox/policies.json"
  # Files the build wrote keep no build-time mtime or umask in the packages.
  find "$STAGE" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

# Both packages and the extension into $1.
package() {
  local out=$1
  mkdir -p "$out"
  rm -f "$out"/*.deb "$out"/*.xpi "$out"/*.crx "$out"/SHA256SUMS
  stage
  step "cargo deb (hybrid-bridge, tunnel-server) into $out"
  CARGO_TARGET_DIR=$DEB_TARGET cargo deb --no-build -p bridge -o "$out" >/dev/null
  CARGO_TARGET_DIR=$DEB_TARGET cargo deb --no-build -p tunnel-server -o "$out" >/dev/null
  cp "$scratch/extension/hybrid-bridge-$VERSION.xpi" "$scratch/extension/hybrid-bridge-$VERSION.crx" "$out/"
  (cd "$out" && sha256sum -- *.deb *.xpi *.crx > SHA256SUMS)
}

package "$OUT"
if [ $CHECK = 1 ]; then
  step "reproducible: package again and compare"
  again=$scratch/again
  package "$again"
  if ! diff <(cd "$OUT" && cat SHA256SUMS) <(cd "$again" && cat SHA256SUMS); then
    echo "release.sh: packaging twice gave different bytes (above); see docs/RELEASE.md, Reproducible" >&2
    exit 1
  fi
  echo "reproducible: the second packaging gave the same bytes for every file in SHA256SUMS" >&2
fi
echo "chromium extension id: $CHROMIUM_ID" >&2
(cd "$OUT" && ls -l -- *.deb *.xpi *.crx SHA256SUMS) >&2
echo "$OUT"
