#!/usr/bin/env bash
# The x86_64 .deb, from the binary that `cargo build --release` left in target/release (in the
# test command: the binary its tests ran), with cargo-deb's `amd64` variant (Cargo.toml).
#
#   scripts/deb-amd64.sh                 # → target/packages/smplcast_<version>_amd64.deb
#   DEB_VERSION=V DEB_OUT=DIR scripts/deb-amd64.sh    # another version, elsewhere
#   DEB_FAST=1 scripts/deb-amd64.sh      # compressed faster: 5 s of CPU instead of 45, 10 % larger
#
# The binary is built on this machine (Debian 12), so the package depends on the glibc it was
# linked against: the script fails if the binary needs a newer glibc than the package declares.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=target/release/smplcast
OUT=${DEB_OUT:-target/packages}
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release --features v4l2,gstreamer first" >&2; exit 2; }
cross/build-debian.sh --cargo-deb   # cargo-deb into target/cross/tools, once
mkdir -p "$OUT"
deb=$(target/cross/tools/bin/cargo-deb --no-build --strip --variant amd64 --output "$OUT/" \
  ${DEB_VERSION:+--deb-version "$DEB_VERSION"} ${DEB_FAST:+--fast} | tail -1)
# The newest glibc symbol version the binary needs, against the floor its package declares.
need=$(objdump -T "$BIN" | grep -oE 'GLIBC_[0-9.]+' | sed 's/GLIBC_//' | sort -uV | tail -1)
floor=$(dpkg-deb -f "$deb" Depends | sed -nE 's/.*libc6 \(>= ([0-9.]+)\).*/\1/p')
[ -n "$floor" ] || { echo "$deb: no libc6 floor in Depends" >&2; exit 1; }
dpkg --compare-versions "$need" le "$floor" || {
  echo "$BIN needs glibc $need, but $deb declares libc6 (>= $floor): raise the floor in Cargo.toml (variants.amd64)" >&2
  exit 1; }
echo "$deb: glibc $need needed, libc6 (>= $floor) declared"
dpkg-deb --info "$deb" | grep -E 'Package|Version|Architecture|Depends|Installed-Size'
