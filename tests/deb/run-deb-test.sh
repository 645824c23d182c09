#!/usr/bin/env bash
# Installs, upgrades and removes the arm64 .deb in a real Debian 12 arm64 root (debootstrap,
# run under qemu-user through binfmt_misc), as dpkg on a Raspberry Pi or Jetson would.
# Run as root after `cross/build-debian.sh --deb aarch64` built the two packages:
#
#   tests/deb/run-deb-test.sh OLD.deb NEW.deb
#   tests/deb/run-deb-test.sh --prepare     only make the arm64 root (the test command does
#                                           this early, while the packages are being built)
#
# Checks: files land where the unit and the config expect them; the packaged binary runs in
# the root and accepts the packaged config (models included); it reads a video through
# GStreamer with only what the package depends on (Debian 12's GStreamer 1.22); the unit verifies
# (systemd-analyze) against the installed tree; an upgrade keeps the user's edited config
# and installs the new version; remove keeps the config; purge removes it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD/target/cross/arm64-root
prepare=0; [ "${1:-}" != --prepare ] || prepare=1

# binfmt_misc: the root's own arm64 programs (dpkg, sh, smplcast) run under qemu, also when
# exec'd from one another. The F flag loads the interpreter now, so it works in the chroot.
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' \
    > /proc/sys/fs/binfmt_misc/register
fi

# What the package depends on beyond a minimal Debian (Cargo.toml, package.metadata.deb),
# installed with the root: the test needs no network, and dpkg -i checks the dependencies.
DEPENDS=libgstreamer1.0-0,libgstreamer-plugins-base1.0-0,gstreamer1.0-plugins-base
if [ "$(cat "$ROOT.depends" 2>/dev/null)" != "$DEPENDS" ]; then
  command -v debootstrap >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
  rm -rf "$ROOT"
  debootstrap --arch=arm64 --variant=minbase --include="$DEPENDS" bookworm "$ROOT" \
    http://deb.debian.org/debian
  echo "$DEPENDS" > "$ROOT.depends"
fi
in_root() { chroot "$ROOT" "$@"; }
[ "$(in_root dpkg --print-architecture)" = arm64 ]
[ $prepare = 0 ] || { echo "arm64 root ready: $ROOT"; exit 0; }
old=$(realpath "$1") new=$(realpath "$2")

fail() { echo "FAIL: $*" >&2; exit 1; }
version() { in_root dpkg-query -W -f='${Version}' smplcast 2>/dev/null || true; }
cp "$old" "$ROOT/tmp/old.deb"
cp "$new" "$ROOT/tmp/new.deb"
in_root dpkg --purge smplcast >/dev/null 2>&1 || true

echo "== install $(basename "$old")"
in_root dpkg -i /tmp/old.deb
for f in /usr/bin/smplcast /etc/smplcast/config.toml /lib/systemd/system/smplcast.service \
         /usr/share/smplcast/models/narrow/backbone.onnx \
         /usr/share/smplcast/models/detector/pose_detection.onnx \
         /usr/share/smplcast/models/nanodet/nanodet.onnx \
         /usr/share/doc/smplcast/config.example.toml /usr/share/doc/smplcast/examples/gpu.conf; do
  [ -e "$ROOT$f" ] || fail "$f not installed"
done
in_root dpkg-query -W -f='${Conffiles}\n' smplcast | grep -q /etc/smplcast/config.toml ||
  fail "/etc/smplcast/config.toml is not a conffile"
in_root /usr/bin/smplcast --version
# The service's ExecStartPre, as the service runs it: the packaged config and models.
in_root /usr/bin/smplcast check-config /etc/smplcast/config.toml
# A GStreamer source (kind = "video", Ogg/Theora: base plugins) as the package runs it.
/usr/bin/python3 tests/gst/make_video.py "$ROOT/tmp/smoke.ogv" --frames 12
in_root /usr/bin/smplcast bench --only source --source /tmp/smoke.ogv --iterations 12
# The installed unit, verified by the host's systemd with its programs' paths mapped into the
# root (the minimal root has no systemd of its own).
unit_dir=$(mktemp -d)
sed "s|/usr/bin/smplcast|$ROOT/usr/bin/smplcast|g" "$ROOT/lib/systemd/system/smplcast.service" \
  > "$unit_dir/smplcast.service"
systemd-analyze verify "$unit_dir/smplcast.service"
rm -rf "$unit_dir"
v_old=$(version)

echo "== upgrade to $(basename "$new") with an edited config"
sed -i 's/^device_id = .*/device_id = "edited-by-user"/' "$ROOT/etc/smplcast/config.toml"
in_root dpkg -i --force-confold /tmp/new.deb
v_new=$(version)
[ "$v_new" != "$v_old" ] || fail "version still $v_old after the upgrade"
grep -q '^device_id = "edited-by-user"' "$ROOT/etc/smplcast/config.toml" ||
  fail "the upgrade replaced the user's config"
in_root /usr/bin/smplcast check-config /etc/smplcast/config.toml >/dev/null

echo "== remove (config kept), then purge"
in_root dpkg -r smplcast
[ ! -e "$ROOT/usr/bin/smplcast" ] || fail "binary left after remove"
[ ! -e "$ROOT/usr/share/smplcast/models/narrow/backbone.onnx" ] || fail "models left after remove"
[ -e "$ROOT/etc/smplcast/config.toml" ] || fail "remove deleted the config"
in_root dpkg -P smplcast
[ ! -e "$ROOT/etc/smplcast/config.toml" ] || fail "purge left the config"
echo "deb install $v_old → upgrade $v_new → remove → purge: OK"
