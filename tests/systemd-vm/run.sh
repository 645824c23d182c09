#!/usr/bin/env bash
# The packaged service under a real systemd: boots Debian 12 with systemd as PID 1 under
# qemu-system-x86_64 (TCG: no KVM needed), installs the x86_64 .deb there and checks the unit as
# a user's first `systemctl enable --now smplcast` meets it. Run as root (debootstrap, chroot):
#
#   tests/systemd-vm/run.sh OLD.deb NEW.deb     # NEW: a higher version, for the upgrade
#   tests/systemd-vm/run.sh --prepare           # only the root (the test command makes it
#                                               # early, beside the builds)
#
# (scripts/deb-amd64.sh makes both; the test command does.) The checks run inside the VM
# (tests/systemd-vm/guest.sh, their list at its top and in docs/reliability.md):
# install; READY; messages to a subscriber; the broker login through LoadCredential; the
# hardening exposure; DynamicUser with the video group; the watchdog restarting a stalled
# daemon; the camera unplugged and plugged back; journal fields; stop; reboot; upgrade; the
# start limit on a broken config; /proc/cpuinfo visible to tract.
#
# - The root: debootstrap --variant=minbase with systemd, mosquitto and what the .deb depends
#   on, kept in target/systemd-vm/root (built once, ~50 s; delete it to rebuild). The VM has no
#   network: everything comes in the image.
# - The kernel: Debian's linux-image-amd64 (tests/vivid/kernel.sh, shared with the vivid test).
#   Its virtio and ext4 drivers are modules, so a busybox initramfs loads them, mounts /dev/vda
#   and switch_roots to systemd. The root gets vivid and what vivid needs, nothing else.
# - The disk: `mkfs.ext4 -d` writes the root and the test's files into a fresh image on every
#   run (no loop mount): what the VM changes is thrown away with it.
#
# Environment: VM_TIMEOUT (s, default 480), VM_CPU (default qemu64: with `max`, tract takes
# AVX kernels that TCG emulates very slowly).
#
# VM_ARCH=arm64 runs the same test on aarch64 (qemu-system-aarch64, `virt` board, Cortex-A72)
# with the arm64 .deb files (cross/build-debian.sh --deb aarch64). Not in the test command: it
# does not fit its time (the README's test section has the measured time). It needs qemu-system-arm
# and qemu-user-static (debootstrap's second stage runs under binfmt_misc); the root then
# carries Debian's arm64 kernel and its initramfs, built in the chroot.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
prepare=0; [ "${1:-}" != --prepare ] || prepare=1
[ $# = 2 ] || [ $prepare = 1 ] || { sed -n '2,11p' "$0" >&2; exit 2; }
ARCH=${VM_ARCH:-amd64}
PACKAGES=systemd,systemd-sysv,dbus,udev,kmod,mosquitto,mosquitto-clients,libglib2.0-0,libgstreamer1.0-0,libgstreamer-plugins-base1.0-0,gstreamer1.0-plugins-base
case $ARCH in
  amd64) WORK=target/systemd-vm ;;
  arm64) WORK=target/systemd-vm-arm64 PACKAGES+=,linux-image-arm64
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || {
      echo "no binfmt_misc entry for aarch64: apt-get install qemu-user-static" >&2; exit 2; } ;;
  *) echo "VM_ARCH=$ARCH: amd64 or arm64" >&2; exit 2 ;;
esac
ROOT=$WORK/root
t0=$SECONDS
mkdir -p "$WORK"

if [ "$(cat "$ROOT.packages" 2>/dev/null)" != "$PACKAGES" ]; then
  rm -rf "$ROOT"
  debootstrap --arch="$ARCH" --variant=minbase --include="$PACKAGES" bookworm "$ROOT" \
    http://deb.debian.org/debian
  echo "$PACKAGES" > "$ROOT.packages"
fi
echo "[vm] root ready at $((SECONDS - t0)) s"
[ $prepare = 0 ] || exit 0
OLD=$(realpath "$1") NEW=$(realpath "$2")

# amd64: Debian's kernel (tests/vivid/kernel.sh, shared with the vivid test). The root gets
# vivid and the modules it needs, with their index (depmod), so that udev and modprobe find
# them in the guest; its virtio and ext4 drivers go in a busybox initramfs (amd64_initramfs).
# arm64: the root carries Debian's arm64 kernel, all its modules and its initramfs.
if [ "$ARCH" = amd64 ]; then
  KDIR=target/vivid/kernel
  KV=$(tests/vivid/kernel.sh)
  rm -rf "$ROOT/lib/modules" && mkdir -p "$ROOT/lib/modules/$KV"
  cp "$KDIR/lib/modules/$KV"/modules.{order,builtin,builtin.modinfo} "$ROOT/lib/modules/$KV/"
  modprobe -d "$KDIR" -S "$KV" --show-depends vivid | awk '$1 == "insmod" { print $2 }' |
    while read -r ko; do
      rel=lib/modules/${ko#*/lib/modules/}
      mkdir -p "$ROOT/$(dirname "$rel")" && cp "$ko" "$ROOT/$rel"
    done
  depmod -b "$ROOT" "$KV"
  [ -n "$(find "$ROOT/lib/modules" -name vivid.ko)" ] || { echo "vivid.ko not copied" >&2; exit 1; }
fi
echo vivid > "$ROOT/etc/modules-load.d/vivid.conf"
echo "options vivid n_devs=1 node_types=0x1" > "$ROOT/etc/modprobe.d/vivid.conf"

# The broker requires a login: one for the daemon, one for the subscribers, fresh passwords.
mkdir -p "$ROOT/root/vmtest"
for who in daemon viewer; do
  od -An -tx8 -N8 /dev/urandom | tr -d ' \n' > "$ROOT/root/vmtest/$who-password"
done
rm -f "$ROOT/etc/mosquitto/passwd"
chroot "$ROOT" mosquitto_passwd -b -c /etc/mosquitto/passwd smplcast "$(cat "$ROOT/root/vmtest/daemon-password")"
chroot "$ROOT" mosquitto_passwd -b /etc/mosquitto/passwd viewer "$(cat "$ROOT/root/vmtest/viewer-password")"
chroot "$ROOT" chown mosquitto:mosquitto /etc/mosquitto/passwd
chmod 600 "$ROOT/etc/mosquitto/passwd"
cat > "$ROOT/etc/mosquitto/conf.d/smplcast-test.conf" <<'EOF'
listener 1883 127.0.0.1
allow_anonymous false
password_file /etc/mosquitto/passwd
EOF

# The packages and the checks.
cp "$OLD" "$ROOT/root/vmtest/old.deb"
cp "$NEW" "$ROOT/root/vmtest/new.deb"
install -m 755 tests/systemd-vm/guest.sh "$ROOT/usr/local/bin/vmtest"
rm -rf "$ROOT/var/lib/vmtest"
echo smplcast-vm > "$ROOT/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 smplcast-vm\n::1 localhost ip6-localhost ip6-loopback\n' > "$ROOT/etc/hosts"
cat > "$ROOT/etc/systemd/system/vmtest.service" <<'EOF'
[Unit]
Description=smplcast VM test (tests/systemd-vm/guest.sh)
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/bin/vmtest
StandardOutput=journal+console
StandardError=journal+console
[Install]
WantedBy=multi-user.target
EOF
chroot "$ROOT" systemctl enable vmtest.service >/dev/null 2>&1
# No login prompt on the console: the test's output is all that goes there.
chroot "$ROOT" systemctl mask serial-getty@ttyS0.service serial-getty@ttyAMA0.service >/dev/null 2>&1

amd64_initramfs() { # busybox, the drivers of a virtio disk with ext4, an init that mounts it
  IRD=$WORK/initramfs
  rm -rf "$IRD" && mkdir -p "$IRD"/{bin,mods,dev,proc,sys,new}
  cp "$(command -v busybox)" "$IRD/bin/"
  MODS="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk crc16 mbcache jbd2 crc32c_generic libcrc32c ext4"
  for m in $MODS; do
    f=$(find "$KDIR/lib/modules/$KV" -name "$m.ko" | head -1)
    [ -n "$f" ] || { echo "module $m not in $KDIR" >&2; exit 2; }
    cp "$f" "$IRD/mods/"
  done
  cat > "$IRD/init" <<EOF
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc; /bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
for m in $MODS; do /bin/busybox insmod /mods/\$m.ko; done
i=0; while [ ! -b /dev/vda ] && [ \$i -lt 100 ]; do /bin/busybox sleep 0.1; i=\$((i+1)); done
/bin/busybox mount -t ext4 /dev/vda /new || { echo "@@VMTEST no root disk"; /bin/busybox poweroff -f; }
/bin/busybox umount /proc /sys; /bin/busybox mount --move /dev /new/dev
exec /bin/busybox switch_root /new /sbin/init
EOF
  chmod +x "$IRD/init"
  (cd "$IRD" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/initramfs.cpio.gz"
}

boot() { # the VM, its serial console into $LOG.raw, until it powers off
  case $ARCH in
    amd64)
      amd64_initramfs
      timeout "${VM_TIMEOUT:-480}" qemu-system-x86_64 -accel tcg -cpu "${VM_CPU:-qemu64}" -m 1536 -smp 2 \
        -nodefaults -display none -monitor none -serial "file:$LOG.raw" -kernel "$KDIR/boot/vmlinuz-$KV" \
        -initrd "$WORK/initramfs.cpio.gz" -drive "file=$WORK/disk.img,format=raw,if=virtio" \
        -append "console=ttyS0 quiet panic=-1 systemd.show_status=0 cryptomgr.notests" </dev/null || true
      ;;
    arm64)
      KV=$(ls "$ROOT/lib/modules" | head -1)
      timeout "${VM_TIMEOUT:-480}" qemu-system-aarch64 -M virt -cpu "${VM_CPU:-cortex-a72}" -m 1536 -smp 2 \
        -nodefaults -display none -monitor none -serial "file:$LOG.raw" -kernel "$ROOT/boot/vmlinuz-$KV" \
        -initrd "$ROOT/boot/initrd.img-$KV" -drive "file=$WORK/disk.img,format=raw,if=virtio" \
        -append "root=/dev/vda rw console=ttyAMA0 quiet panic=-1 systemd.show_status=0" </dev/null || true
      ;;
  esac
}

rm -f "$WORK/disk.img"
mkfs.ext4 -q -d "$ROOT" "$WORK/disk.img" 2G
echo "[vm] image ready at $((SECONDS - t0)) s ($(du -sm "$ROOT" | cut -f1) MB); booting"
LOG=$WORK/console.log   # $LOG.raw while it runs
rm -f "$LOG.raw"
tq=$SECONDS
boot
tr -d '\r' < "$LOG.raw" > "$LOG"
echo "[vm] qemu ran $((SECONDS - tq)) s; the whole test $((SECONDS - t0)) s"
grep '@@' "$LOG" || true
if grep -q '@@CHECK FAIL' "$LOG" || ! grep -q '@@VMTEST-END 0 failed' "$LOG"; then
  echo "systemd VM test FAILED (console: $LOG); its last lines:" >&2
  tail -40 "$LOG" >&2
  exit 1
fi
echo "systemd VM test passed: $(grep -c '@@CHECK ok' "$LOG") checks"
