#!/usr/bin/env bash
# run-vivid-test.sh <binary> [args...]
#
# Adapted from the verified recipe in ../shared/recipes/vivid/ (owned here now): the work
# directory defaults to target/vivid inside the repository, so CI caches nothing outside it.
#
# Boots Debian's stock kernel under qemu-system-x86_64 (KVM if usable, else TCG)
# with a tiny initramfs that loads the `vivid` virtual V4L2 driver, then runs
# <binary> [args...] inside the guest as root with /dev/video* present.
# The binary's stdout/stderr go to the serial console (printed here and saved to
# $VIVID_WORK/last-console.log). This script exits with the binary's exit status,
# read from the console marker "@@VIVID-EXIT=<rc>"; 125 if no marker was seen
# (boot failure, timeout, guest panic).
#
# The binary should be static (e.g. RUSTFLAGS="-C target-feature=+crt-static"
# cargo build --target x86_64-unknown-linux-gnu); a dynamic one gets its ldd
# libraries copied in.
#
# Environment knobs:
#   VIVID_WORK     cache/work dir (default <repo>/target/vivid); the kernel .deb is
#                  downloaded and unpacked there once.
#   VIVID_TIMEOUT  seconds before qemu is killed (default 180)
#   VIVID_ACCEL    auto|kvm|tcg (default auto: kvm if it initialises, else tcg)
#   VIVID_PARAMS   vivid module parameters (default "n_devs=1 node_types=0x1"
#                  = one device, video capture node only -> /dev/video0)
#   VIVID_V4L2CTL  1 = run v4l2-ctl diagnostics (list devices/formats, stream
#                  30 mmap frames) before the binary (needs v4l-utils on host)
#   VIVID_MEM      guest RAM in MiB (default 1024)
#   VIVID_CPU      the guest CPU under TCG (default qemu64)
#   VIVID_EXTRA    extra host files to put in the guest under /extra/ (space separated)
set -euo pipefail

[ $# -ge 1 ] || { sed -n '2,30p' "$0"; exit 2; }
BIN=$(readlink -f "$1"); shift
[ -x "$BIN" ] || { echo "not executable: $BIN" >&2; exit 2; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${VIVID_WORK:-$REPO/target/vivid}
TIMEOUT=${VIVID_TIMEOUT:-180}
ACCEL=${VIVID_ACCEL:-auto}
PARAMS=${VIVID_PARAMS:-n_devs=1 node_types=0x1}
MEM=${VIVID_MEM:-1024}
mkdir -p "$WORK"

need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
[ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' || need_pkgs+=(busybox-static)
command -v cpio >/dev/null || need_pkgs+=(cpio)
command -v depmod >/dev/null || need_pkgs+=(kmod)
command -v file >/dev/null || need_pkgs+=(file)
if [ "${VIVID_V4L2CTL:-0}" = 1 ]; then command -v v4l2-ctl >/dev/null || need_pkgs+=(v4l-utils); fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "[vivid] installing: ${need_pkgs[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >&2
fi

# ---- kernel (Debian linux-image-amd64, unpacked, not installed) ----
KDIR="$WORK/kernel"
KV=$("$REPO/tests/vivid/kernel.sh" "$WORK")
VMLINUZ="$KDIR/boot/vmlinuz-$KV"

# ---- initramfs ----
ROOT=$(mktemp -d "$WORK/root.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT"/{bin,sbin,proc,sys,dev,tmp,lib/modules,test,extra,usr/bin,usr/sbin}
cp /bin/busybox "$ROOT/bin/busybox"

copy_with_libs() { # <host file> <dest path in root>
  install -D -m 0755 "$1" "$ROOT/$2"
  if ! file -L "$1" | grep -qE 'statically linked|static-pie linked'; then
    ldd "$1" | grep -oE '/[^ ]+' | while read -r lib; do
      [ -e "$lib" ] && install -D "$(readlink -f "$lib")" "$ROOT$lib"
    done
  fi
}

: > "$ROOT/modules.order"
modprobe -d "$KDIR" -S "$KV" --show-depends vivid | awk '$1=="insmod"{print $2}' | while read -r ko; do
  cp "$ko" "$ROOT/lib/modules/"; echo "$(basename "$ko")" >> "$ROOT/modules.order"
done

copy_with_libs "$BIN" /test/bin
if [ "${VIVID_V4L2CTL:-0}" = 1 ]; then copy_with_libs "$(command -v v4l2-ctl)" /usr/bin/v4l2-ctl; fi
for f in ${VIVID_EXTRA:-}; do cp -a "$f" "$ROOT/extra/"; done

q() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
ARGS=""; for a in "$@"; do ARGS+=" $(q "$a")"; done

cat > "$ROOT/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
ifconfig lo 127.0.0.1 up   # loopback for an in-guest MQTT broker
echo "@@VIVID-UPTIME-INIT \$(cut -d' ' -f1 /proc/uptime)"
for m in \$(cat /modules.order); do
  p=""; [ "\$m" = vivid.ko ] && p="$PARAMS"
  insmod /lib/modules/\$m \$p || echo "@@VIVID-INSMOD-FAIL \$m"
done
i=0; while [ ! -e /dev/video0 ] && [ \$i -lt 50 ]; do sleep 0.1; i=\$((i+1)); done
echo "@@VIVID-UPTIME-READY \$(cut -d' ' -f1 /proc/uptime) devices: \$(ls /dev/video* 2>/dev/null)"
if [ -x /usr/bin/v4l2-ctl ]; then
  echo "@@VIVID-V4L2CTL list-devices"; v4l2-ctl --list-devices
  echo "@@VIVID-V4L2CTL list-formats-ext"; v4l2-ctl -d /dev/video0 --list-formats-ext
  echo "@@VIVID-V4L2CTL stream"; v4l2-ctl -d /dev/video0 --stream-mmap --stream-count=30 --stream-to=/dev/null; echo "@@VIVID-V4L2CTL stream rc=\$?"
fi
echo "@@VIVID-BEGIN"
cd /test
/test/bin$ARGS
rc=\$?
echo "@@VIVID-EXIT=\$rc"
echo "@@VIVID-UPTIME-END \$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
EOF
chmod +x "$ROOT/init"
INITRD="$WORK/initramfs.cpio.gz"
(cd "$ROOT" && find . | cpio -o -H newc --quiet | gzip -1) > "$INITRD"

# ---- boot ----
if [ "$ACCEL" = auto ]; then
  # /dev/kvm alone is not enough: on hosts whose KVM is the PVM flavour
  # (kvm_pvm module, no vmx/svm cpu flag) KVM initialises fine but a stock
  # kernel hangs right after "Probing EDD". Require hardware virt flags.
  if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo && [ ! -d /sys/module/kvm_pvm ] \
     && echo quit | qemu-system-x86_64 -accel kvm -M none -nodefaults -display none -monitor stdio >/dev/null 2>&1; then
    ACCEL=kvm; else ACCEL=tcg; fi
fi
# Under TCG the guest CPU is qemu64 (SSE2): with `max` tract picks its AVX/AVX-512 kernels,
# which TCG emulates so slowly that the daemon check made 12 results in 60 s and its stop timed
# out (on a host with AVX-512, 2026-12-05); VIVID_CPU overrides.
if [ "$ACCEL" = kvm ]; then CPU=host,-arch-capabilities; else CPU=${VIVID_CPU:-qemu64}; fi
echo "[vivid] kernel $KV, accel=$ACCEL, initramfs $(du -h "$INITRD" | cut -f1)" >&2
LOG="$WORK/last-console.log"
t0=$(date +%s.%N)
set +e
# cryptomgr.notests: the kernel's boot-time crypto self-tests, which nothing here needs; under
# TCG on a loaded host one of them soft-locked a vCPU until the timeout (CI, 2026-12-05).
timeout "$TIMEOUT" qemu-system-x86_64 -accel "$ACCEL" -cpu "$CPU" -m "$MEM" -smp 2 \
  -nodefaults -no-reboot -display none -monitor none -serial stdio \
  -kernel "$VMLINUZ" -initrd "$INITRD" \
  -append "console=ttyS0 quiet panic=-1 rdinit=/init cryptomgr.notests" </dev/null 2>&1 | tr -d '\r' | tee "$LOG"
qrc=${PIPESTATUS[0]}
set -e
t1=$(date +%s.%N)
echo "[vivid] qemu rc=$qrc, wall $(echo "$t1 - $t0" | bc 2>/dev/null || awk "BEGIN{print $t1-$t0}")s" >&2
rc=$(grep -oE '^@@VIVID-EXIT=[0-9]+' "$LOG" | tail -1 | cut -d= -f2 || true)
if [ -z "$rc" ]; then echo "[vivid] no exit marker (timeout/boot failure)" >&2; exit 125; fi
exit "$rc"
