#!/usr/bin/env bash
# kernel.sh [WORK]: Debian's stock kernel (linux-image-amd64) downloaded once and unpacked, not
# installed, into WORK/kernel (default target/vivid/kernel); prints its version. Used by the
# vivid test (tests/vivid/) and the systemd VM test (tests/systemd-vm/).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${1:-$REPO/target/vivid}
KDIR="$WORK/kernel"
mkdir -p "$WORK"
if ! ls "$KDIR"/boot/vmlinuz-* >/dev/null 2>&1; then
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
  [ -n "$pkg" ] || { echo "cannot resolve linux-image-amd64 (run apt-get update)" >&2; exit 2; }
  echo "[kernel] downloading $pkg" >&2
  (cd "$WORK" && rm -f linux-image-*.deb && apt-get download "$pkg" >&2)
  rm -rf "$KDIR.tmp"; dpkg-deb -x "$WORK"/linux-image-*.deb "$KDIR.tmp"
  kv=$(ls "$KDIR.tmp/lib/modules")
  depmod -b "$KDIR.tmp" "$kv"
  mv "$KDIR.tmp" "$KDIR"
fi
ls "$KDIR/lib/modules" | head -1
