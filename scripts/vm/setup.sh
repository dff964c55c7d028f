#!/usr/bin/env bash
# Prepares what scripts/vm/run.sh boots: the Debian packages QEMU needs and a stock Debian 12
# kernel unpacked into a cache directory (modules indexed with depmod, an uncompressed vmlinux
# that QEMU starts directly through its PVH entry point). Idempotent; prints the kernel it uses.
# Run as root (it installs packages), or install them yourself first:
#   apt-get install qemu-system-x86 busybox-static kmod cpio
# Environment: VM_CACHE (default /var/cache/hybrid-bridge-vm), VM_KERNEL_PACKAGE (default: the
# package linux-image-amd64 depends on).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${VM_CACHE:-/var/cache/hybrid-bridge-vm}

need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
command -v depmod >/dev/null 2>&1 || need+=(kmod)
command -v cpio >/dev/null 2>&1 || need+=(cpio)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "scripts/vm needs Debian packages: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "vm: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

mkdir -p "$cache"
pkg=${VM_KERNEL_PACKAGE:-$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')}
if [ -z "$pkg" ]; then
  echo "vm: no Debian kernel package found (apt-get update first?)" >&2
  exit 1
fi
kver=${pkg#linux-image-}
kroot=$cache/$kver
if [ ! -f "$kroot/ready" ]; then
  echo "vm: unpacking $pkg into $kroot" >&2
  tmp=$(mktemp -d "$cache/download.XXXXXX")
  (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null)
  rm -rf "$kroot"
  mkdir -p "$kroot"
  dpkg-deb -x "$tmp"/"$pkg"_*.deb "$kroot"
  rm -rf "$tmp"
  depmod -b "$kroot" "$kver"
  python3 "$here/extract-vmlinux.py" "$kroot/boot/vmlinuz-$kver" "$kroot/vmlinux"
  touch "$kroot/ready"
fi
ln -sfn "$kver" "$cache/current"
echo "$kroot"
