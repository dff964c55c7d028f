#!/usr/bin/env bash
# Runs a command as root in a private, copy-on-write view of this machine: a mount namespace
# where / is an overlay whose upper layer is a fresh tmpfs, with /proc, /sys, /dev, /work and
# this repository's checkout (wherever it is cloned) bound in. apt-get, dpkg and maintainer scripts run for real inside it, yet nothing they
# write reaches the machine: other browser tests running at the same time never see the
# package, and an aborted run leaves nothing to clean up.
#
# After the command, every path it left in the overlay (files written, changed or deleted:
# the upper layer) is listed in the file named by OVERLAY_CHANGES, if set, one path per line
# after its kind: new, changed, deleted, new-dir. That list is how the package test checks what a
# purge leaves behind.
#
#   OVERLAY_CHANGES=/tmp/changes bash scripts/overlay-root.sh bash -c 'apt-get install ./x.deb'
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "overlay-root.sh needs root (a mount namespace and an overlay mount)" >&2
  exit 1
fi
if [ $# -eq 0 ]; then
  echo "usage: [OVERLAY_CHANGES=FILE] bash scripts/overlay-root.sh COMMAND [ARGS...]" >&2
  exit 2
fi

inner() {
  set -euo pipefail
  local base
  base=$(mktemp -d /tmp/overlay-root.XXXXXX)
  mount -t tmpfs -o mode=0755 overlay-root "$base"
  mkdir "$base/up" "$base/work" "$base/root"
  mount -t overlay overlay -o "lowerdir=/,upperdir=$base/up,workdir=$base/work" "$base/root"
  # Everything under /tmp stays inside (a fresh tmpfs; not part of the changes list).
  mount -t tmpfs -o mode=1777 overlay-tmp "$base/root/tmp"
  # The root's own mounts are not part of the overlay: bind them in. The checkout is bound
  # too, so what a test writes there (screenshots, logs) reaches the machine and is not
  # taken for something the packages left behind.
  for d in /proc /sys /dev /work "$OVERLAY_REPO"; do
    [ -d "$d" ] || continue
    mkdir -p "$base/root$d"
    mount --rbind "$d" "$base/root$d"
  done
  local rc=0
  chroot "$base/root" /usr/bin/env -C "$PWD" "$@" || rc=$?
  if [ -n "${OVERLAY_CHANGES:-}" ]; then
    # A folder is copied up whenever something below it is written: list only new folders.
    # Outside the chroot, / is still the machine's own root, to compare with.
    (cd "$base/up" && find . -mindepth 1 -printf '%y /%P\n') | while read -r kind path; do
      case $kind in
        c) echo "deleted $path" ;;
        d) [ -d "$path" ] || echo "new-dir $path" ;;
        *) if [ -e "$path" ] || [ -L "$path" ]; then echo "changed $path"; else echo "new $path"; fi ;;
      esac
    done | sort -k2 > "$OVERLAY_CHANGES"
  fi
  return $rc
}

OVERLAY_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export OVERLAY_REPO
export -f inner
# A private mount namespace: every mount above ends with the command.
exec unshare --mount --propagation private bash -c 'inner "$@"' inner "$@"
