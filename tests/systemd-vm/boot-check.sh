#!/usr/bin/env bash
# Groundwork for issue 23 (the packaged service under a real systemd), NOT yet a step of the
# test command: boots Debian 12 with systemd as PID 1 under qemu-system-x86_64 (TCG is fine),
# from a disk image built without root mounts, checks that mosquitto runs, reboots, and checks
# again. What issue 23 adds on top: the x86_64 .deb installed in the guest, the unit's checks
# (READY, watchdog, vivid unplug, stop, upgrade, credentials, journal fields).
#
#   bash tests/systemd-vm/boot-check.sh        # as root (debootstrap, chroot)
#
# - The root: debootstrap --variant=minbase with systemd, mosquitto and the .deb's libraries,
#   kept in target/systemd-vm/root (built once; delete it to rebuild).
# - The kernel: Debian's linux-image-amd64, unpacked by tests/vivid/run-vivid-test.sh into
#   target/vivid/kernel (run that once first). Its virtio and ext4 drivers are modules, so a
#   busybox initramfs loads them, mounts /dev/vda and switch_roots to systemd.
# - The disk: `mkfs.ext4 -d ROOT` writes the root into an image file, no loop mount needed.
# - The check: a oneshot unit after multi-user.target counts boots in /var/lib/vmtest-boots,
#   prints `@@VMTEST boot N`, reboots after the first boot and powers off after the second.
#
# Measured on the 2-core development machine (2026-12-05, TCG, -cpu qemu64, 2 vCPUs):
# debootstrap 49 s (339 MB), mkfs.ext4 -d 1.9 s, both boots and the reboot 37 s of qemu wall:
# multi-user with mosquitto active 11 s after power-on, 14 s after the reboot.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
WORK=target/systemd-vm
KDIR=target/vivid/kernel
ROOT=$WORK/root
PACKAGES=systemd,systemd-sysv,dbus,udev,kmod,mosquitto,libgstreamer1.0-0,libgstreamer-plugins-base1.0-0,gstreamer1.0-plugins-base
mkdir -p "$WORK"
[ -d "$KDIR/lib/modules" ] || {
  echo "no kernel in $KDIR: run tests/vivid/run-vivid-test.sh once (it downloads it)" >&2; exit 2; }
KV=$(ls "$KDIR/lib/modules" | head -1)

if [ "$(cat "$ROOT.packages" 2>/dev/null)" != "$PACKAGES" ]; then
  rm -rf "$ROOT"
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOT" http://deb.debian.org/debian
  echo "$PACKAGES" > "$ROOT.packages"
fi

# The boot check, installed into the root on every run.
mkdir -p "$ROOT/lib/modules"
rm -rf "$ROOT/lib/modules/$KV" && cp -a "$KDIR/lib/modules/$KV" "$ROOT/lib/modules/"
echo smplcast-vm > "$ROOT/etc/hostname"
rm -f "$ROOT/var/lib/vmtest-boots"
cat > "$ROOT/usr/local/bin/vmtest" <<'EOF'
#!/bin/sh
n=$(( $(cat /var/lib/vmtest-boots 2>/dev/null || echo 0) + 1 )); echo $n > /var/lib/vmtest-boots; sync
echo "@@VMTEST boot $n up $(cut -d' ' -f1 /proc/uptime) mosquitto $(systemctl is-active mosquitto)"
if [ "$n" = 1 ]; then systemctl reboot; else systemctl poweroff; fi
EOF
chmod +x "$ROOT/usr/local/bin/vmtest"
cat > "$ROOT/etc/systemd/system/vmtest.service" <<'EOF'
[Unit]
Description=smplcast VM boot check
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/bin/vmtest
StandardOutput=journal+console
[Install]
WantedBy=multi-user.target
EOF
chroot "$ROOT" systemctl enable vmtest.service >/dev/null 2>&1

# The initramfs: busybox, the drivers of a virtio disk with ext4, and an init that mounts it.
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

rm -f "$WORK/disk.img"
mkfs.ext4 -q -d "$ROOT" "$WORK/disk.img" 2G
LOG=$WORK/console.log
timeout 300 qemu-system-x86_64 -accel tcg -cpu qemu64 -m 1024 -smp 2 -nodefaults \
  -display none -monitor none -serial stdio -kernel "$KDIR/boot/vmlinuz-$KV" \
  -initrd "$WORK/initramfs.cpio.gz" -drive "file=$WORK/disk.img,format=raw,if=virtio" \
  -append "console=ttyS0 quiet panic=-1 systemd.show_status=0" </dev/null 2>&1 |
  tr -d '\r' > "$LOG" || true
grep '@@VMTEST' "$LOG" || true
grep -q '@@VMTEST boot 1 .* mosquitto active' "$LOG" && grep -q '@@VMTEST boot 2 .* mosquitto active' "$LOG" || {
  echo "boot check failed: $LOG" >&2; tail -30 "$LOG" >&2; exit 1; }
echo "boot check passed: systemd booted, mosquitto active, rebooted, mosquitto active again"
