#!/usr/bin/env bash
# The ARM builds' target root for the feature `gstreamer`: Debian 11 (bullseye) arm64 or armhf,
# because bullseye has glibc 2.31, the release binaries' floor (Jetson on Ubuntu 20.04), and
# GStreamer 1.18. It holds
# - what the build links against: GStreamer's and GLib's libraries and .pc files. gstreamer-rs
#   only calls GStreamer 1.14's API (no v1_16+ feature), so the binary runs on 1.16 (JetPack 5)
#   and later; GStreamer's symbols are unversioned, so 1.18 does not leak into the binary;
# - what qemu-user runs the binaries on (`qemu -L`): the closure of those libraries and of
#   gstreamer1.0-plugins-base (the demuxers, Theora decoder and videoconvert of the smoke run),
#   bullseye's glibc 2.31 included, so the ARM runs happen on the oldest libc we support.
#
#   cross/gst-sysroot.sh aarch64|armv7     → makes target/cross/sysroot/ARCH once, and prints
#                                            the pkg-config environment to export
#
# apt downloads the packages with a configuration of its own under the sysroot (never the
# host's: no foreign architecture is added to the machine) and checks them against bullseye's
# signed index with the host's Debian keyring; dpkg-deb unpacks them: nothing is installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

case "${1:-}" in
  aarch64) arch=arm64 gnu=aarch64-linux-gnu ;;
  armv7) arch=armhf gnu=arm-linux-gnueabihf ;;
  *) echo "usage: $0 aarch64|armv7" >&2; exit 2 ;;
esac
root=$PWD/target/cross/sysroot/$arch
# Run time: the libraries the binary links (gstreamer-1.0, -app-1.0, -video-1.0, glib,
# gobject) and the base plugins, with everything they depend on.
runtime=(libgstreamer1.0-0 libgstreamer-plugins-base1.0-0 gstreamer1.0-plugins-base)
# Build time: their development files, without their dependencies (the headers and Python
# of libglib2.0-dev's are unused: the -sys crates are pre-generated bindings, and pkg-config
# only reads the .pc files).
dev=(libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libglib2.0-dev)
# Packages the .pc files name as private requirements: pkg-config wants them to exist even
# though only a static link uses them. Stubs stand in for them (a dynamic link needs none).
private=(libpcre libffi zlib mount libselinux orc-0.4 libunwind libdw)

if [ ! -e "$root/.done" ]; then
  rm -rf "$root"
  apt_dir=$root.apt
  mkdir -p "$apt_dir"/{lists/partial,archives/partial} "$root/stubs"
  printf 'deb [arch=%s] http://deb.debian.org/debian bullseye main\n' "$arch" > "$apt_dir/sources.list"
  : > "$apt_dir/status"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::State::Status=$apt_dir/status"
            -o "Dir::Cache::Archives=$apt_dir/archives" -o "APT::Architecture=$arch"
            -o "APT::Architectures::=$arch" -o Acquire::Languages=none -o APT::Sandbox::User=root -o Debug::NoLocking=1 -qq)
  apt-get "${apt_opts[@]}" update
  apt-get "${apt_opts[@]}" install -y --download-only --no-install-recommends "${runtime[@]/%/:$arch}"
  (cd "$apt_dir/archives" && apt-get "${apt_opts[@]}" download "${dev[@]/%/:$arch}")
  for deb in "$apt_dir"/archives/*.deb; do dpkg-deb -x "$deb" "$root"; done
  for p in "${private[@]}"; do
    printf 'Name: %s\nDescription: stub: a private requirement, not linked\nVersion: 99\n' "$p" \
      > "$root/stubs/$p.pc"
  done
  rm -rf "$apt_dir"
  touch "$root/.done"
fi

# The .pc files hold absolute paths (/usr/lib/<triple>): the sysroot prefix maps them.
echo "export PKG_CONFIG_ALLOW_CROSS=1 PKG_CONFIG_SYSROOT_DIR=$root" \
  "PKG_CONFIG_LIBDIR=$root/usr/lib/$gnu/pkgconfig:$root/usr/share/pkgconfig:$root/stubs"
