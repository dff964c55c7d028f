#!/usr/bin/env bash
# Boots a stock Debian kernel under QEMU (software emulation, no KVM needed) with this machine's
# root filesystem shared read-only, runs GUEST_SCRIPT with bash as root inside it, and exits
# with the script's status (99 if the guest died before the script finished, 124 on timeout).
# One guest per suite: the script runs all of the suite's checks.
#
#   bash scripts/vm/run.sh GUEST_SCRIPT [ARGS...]
#
# Inside the guest: the host's root read-only at /, tmpfs on /tmp, /run, /var/tmp and
# /var/lib/bluetooth, HOME=/tmp/home, loopback up, VM_GUEST=1, the working directory VM_WORK
# shared read-write at the same path as on the host (the script runs from there as a copy;
# VM_SCRIPT_DIR is the directory it came from), and `modprobe` resolving the guest kernel's
# modules (for the script and for the kernel's own requests).
#
# Environment:
#   VM_MODULES  modules loaded before the script starts (e.g. "uhid hid_generic")
#   VM_MEM      guest memory (default 1G)          VM_SMP      guest CPUs (default 1)
#   VM_TIMEOUT  seconds before the guest is killed (default 300)
#   VM_WORK     host directory shared read-write (default: a fresh temporary directory)
#   VM_CACHE    where setup.sh keeps the kernel (default /var/cache/hybrid-bridge-vm)
# The guest's console (the script's output) streams to stdout; the kernel log is left in
# VM_WORK/dmesg.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ]; then
  sed -n '2,/^set /p' "$0" | sed -e '/^set /d' -e 's/^# \{0,1\}//'
  exit 2
fi
script=$(realpath "$1")
shift
[ -f "$script" ] || { echo "vm: no such guest script: $script" >&2; exit 2; }

kroot=$(bash "$here/setup.sh")
kver=$(basename "$kroot")
work=${VM_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/vm-work.XXXXXX")}
mkdir -p "$work"
work=$(realpath "$work")
rm -f "$work/.vm-rc"
# The script runs from the work directory: the guest's /tmp is its own, so a script kept in the
# host's /tmp would not be visible there. VM_SCRIPT_DIR names where it came from.
cp "$script" "$work/.vm-script"

# The initramfs: busybox-static, the modules that reach the shared root (9p over virtio), and
# an /init that mounts it, prepares the chroot and runs the script.
initrd=$(mktemp -d "${TMPDIR:-/tmp}/vm-initrd.XXXXXX")
trap 'rm -rf "$initrd"' EXIT
mkdir -p "$initrd"/{bin,proc,sys,dev,host,mods}
cp /bin/busybox "$initrd/bin/busybox"
modprobe -d "$kroot" -S "$kver" -a --show-depends 9p 9pnet_virtio virtio_pci |
  awk '$1=="insmod"{print $2}' | awk '!seen[$0]++' |
  while read -r m; do cp "$m" "$initrd/mods/"; basename "$m"; done > "$initrd/mods/order"
{
  printf 'KROOT=%q\nKVER=%q\nWORK=%q\nSCRIPT_DIR=%q\nMODULES=%q\n' \
    "$kroot" "$kver" "$work" "$(dirname "$script")" "${VM_MODULES:-}"
} > "$initrd/vm.env"
{ printf 'ARGS=('; printf '%q ' "$@"; printf ')\n'; } > "$initrd/vm-args.bash"
# Kernel module requests run the host's kmod inside the shared root, against the guest kernel's
# modules. Crypto instance names such as "crypto-ecb(aes)" never name a module: failing them at
# once keeps AF_ALG users (btvirt) from stalling.
cat > "$initrd/bin/modprobe-host" <<HELPER
#!/bin/busybox sh
case "\$*" in *"("*) exit 1;; esac
exec /bin/busybox chroot /host /sbin/modprobe -d "$kroot" -S "$kver" "\$@"
HELPER
chmod +x "$initrd/bin/modprobe-host"
cat > "$initrd/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
. /vm.env
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod /mods/$m; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /host
echo /bin/modprobe-host > /proc/sys/kernel/modprobe
mount -t proc proc /host/proc; mount -t sysfs sys /host/sys; mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts devpts /host/dev/pts; mount -t tmpfs shm /host/dev/shm
mount -t debugfs debugfs /host/sys/kernel/debug 2>/dev/null
for d in /tmp /run /var/tmp /var/lib/bluetooth; do
  [ -d /host$d ] && mount -t tmpfs tmpfs /host$d
done
mkdir -p /host/run/vm/bin /host/tmp/home
printf '#!/bin/sh\nexec /sbin/modprobe -d "%s" -S "%s" "$@"\n' "$KROOT" "$KVER" > /host/run/vm/bin/modprobe
chmod +x /host/run/vm/bin/modprobe
mkdir -p "/host$WORK"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 work "/host$WORK"
ifconfig lo 127.0.0.1 up
for m in $MODULES; do
  /bin/modprobe-host "$m" || echo "vm: could not load module $m"
done
echo "vm: guest ready after $(cut -d' ' -f1 /proc/uptime) s"
cp /vm.env "/host/run/vm/env"; cat /vm-args.bash >> "/host/run/vm/env"
chroot /host /bin/bash -c '. /run/vm/env; cd "$WORK" &&
  export PATH=/run/vm/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp/home VM_GUEST=1 VM_WORK="$WORK" VM_SCRIPT_DIR="$SCRIPT_DIR" TMPDIR=/tmp &&
  exec /bin/bash "$WORK/.vm-script" "${ARGS[@]}"'
echo $? > "/host$WORK/.vm-rc"
dmesg > "/host$WORK/dmesg.txt"
sync
poweroff -f
INIT
chmod +x "$initrd/init"
(cd "$initrd" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd/initrd.cpio.gz"

# no_timer_check: under emulation on a loaded host the kernel's check that the IO-APIC timer
# ticks can miss and panic the boot ("IO-APIC + timer doesn't work"); the guest skips it.
start=$(date +%s)
status=0
timeout "${VM_TIMEOUT:-300}" qemu-system-x86_64 -accel tcg -cpu max \
  -m "${VM_MEM:-1G}" -smp "${VM_SMP:-1}" \
  -nodefaults -no-user-config -display none -serial stdio -no-reboot \
  -kernel "$kroot/vmlinux" -initrd "$initrd/initrd.cpio.gz" \
  -append "console=ttyS0 quiet panic=-1 no_timer_check rdinit=/init" \
  -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
  -fsdev local,id=work,path="$work",security_model=none,multidevs=remap \
  -device virtio-9p-pci,fsdev=work,mount_tag=work </dev/null || status=$?
echo "vm: guest ran $(( $(date +%s) - start )) s; its files are in $work" >&2
if [ "$status" = 124 ]; then
  echo "vm: the guest did not finish within ${VM_TIMEOUT:-300} s" >&2
  exit 124
fi
if [ ! -s "$work/.vm-rc" ]; then
  echo "vm: the guest stopped before the script finished (qemu status $status)" >&2
  exit 99
fi
exit "$(cat "$work/.vm-rc")"
