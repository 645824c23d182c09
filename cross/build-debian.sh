#!/usr/bin/env bash
# Cross-compiles smplcast for ARM on Debian 12 (x86_64) without Docker, and checks the result
# under qemu-user. The release binaries need glibc <= 2.31 (Jetson on Ubuntu 20.04; Pi OS
# bookworm has 2.36), and the script fails if one needs more.
#
#   cross/build-debian.sh [--setup] [--cargo-deb] [--tests] [--check] [--deb] [--quick] [aarch64] [armv7]
#
#   (no flag)  build target/cross/aarch64-unknown-linux-gnu/release/smplcast and
#              target/cross/armv7/armv7-unknown-linux-gnueabihf/release/smplcast (default: both)
#   --setup    only install what the builds need (Debian packages, zig): the test command
#              does this up front, so that its ARM builds never run apt beside other steps
#   --tests    also build the test binaries that --check runs under qemu (in the same cargo
#              run as the binary: one feature set, so the packaged binary is the tested one)
#   --check    under qemu-user: the glibc floor, a smoke run of the binary (`demo` on the
#              bundled model: threads, tract's ARM kernels, the embedded broker) and, with
#              --tests, the model-parity, streaming and NanoDet detector tests
#   --deb      Debian packages with cargo-deb: target/cross/packages/smplcast_<v>_<arch>.deb
#              (not cargo-deb's own target/cross/debian/: it deletes other versions there)
#   --quick    everything unoptimised (opt-level 0, std included) but our crate and
#              tract-linalg's kernels: a build that is only smoke-tested (the test command's
#              armv7 build), not for a release. Everything at opt-level 0 built in 536 CPU-s
#              against 756 with only tract-core unoptimised (the quick build before; side by
#              side on 2 cores); our crate stays optimised because the crop sampler at
#              opt-level 0 took 570 ms a frame under qemu, and tract-linalg because the models
#              run on it. In the test command the armv7 build step took 665 CPU-s, against
#              800 before (clean clones, 2026-12-05).
#   --cargo-deb  only build cargo-deb into target/cross/tools (the test command does this
#              early, beside the ARM builds, so that packaging waits on nothing)
#
# How (verified on Debian 12, 2 cores; times in README "Deploying"):
# - Rust: Debian's rustc-web/cargo-web 1.96 from bookworm-security (rustup cannot download
#   targets here). Its std for the target is rebuilt from rust-web-src (-Zbuild-std, with
#   RUSTC_BOOTSTRAP=1): Debian's prebuilt libstd-rust-web-dev:<arch> must be the identical
#   version and come from the foreign-arch security index, which was broken on the mirror
#   for armhf, and one broken index makes apt ignore the whole suite. Rebuilding std costs
#   about a minute per target and needs no foreign architecture in apt at all.
# - Linking: cargo-zigbuild + zig (both from PyPI, pinned below) with the target suffix
#   `.2.31`: zig links against glibc 2.31's symbol versions. C and assembly (tract-linalg's
#   kernels, the v4l bindings' bindgen) use zig's clang for the target too.
# - GStreamer (feature gstreamer): the build links against bullseye's (glibc 2.31), from a
#   sysroot that cross/gst-sysroot.sh downloads and unpacks; nothing is installed.
# - qemu-user-static runs the ARM binaries in that sysroot (`-L`): bullseye's glibc 2.31, the
#   floor, and GStreamer's libraries and base plugins.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

GLIBC=2.31
ZIGLANG=0.17.1
CARGO_ZIGBUILD=0.24.1
CROSS=$PWD/target/cross
TOOLS=$CROSS/tools
# Each target builds in a target directory of its own, so that the two can build at once
# (cargo locks a target directory for a build): aarch64's is target/cross itself, where the
# scripts and docs look for it, armv7's target/cross/armv7.
target_dir() { case "$1" in aarch64) echo "$CROSS" ;; armv7) echo "$CROSS/armv7" ;; esac; }

tests=0 check=0 deb=0 quick=0 setup_only=0 cargo_deb_only=0 targets=()
for a in "$@"; do
  case "$a" in
    --setup) setup_only=1 ;;
    --cargo-deb) cargo_deb_only=1 ;;
    --tests) tests=1 ;;
    --check) check=1 ;;
    --deb) deb=1 ;;
    --quick) quick=1 ;;
    aarch64 | armv7) targets+=("$a") ;;
    *) echo "usage: $0 [--setup] [--cargo-deb] [--tests] [--check] [--deb] [--quick] [aarch64] [armv7]" >&2; exit 2 ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(aarch64 armv7)

triple() { case "$1" in aarch64) echo aarch64-unknown-linux-gnu ;; armv7) echo armv7-unknown-linux-gnueabihf ;; esac; }
gnu() { case "$1" in aarch64) echo aarch64-linux-gnu ;; armv7) echo arm-linux-gnueabihf ;; esac; }
# qemu-user emulates the CPU of a Raspberry Pi 4 (Cortex-A72, ARMv8.0 NEON) or Pi 2 (Cortex-A7,
# ARMv7 NEON): the oldest cores we support, so no newer instruction slips in (qemu's default
# `max` CPU has SVE2, which tract would detect and use).
qemu() { case "$1" in aarch64) echo "qemu-aarch64-static -cpu cortex-a72" ;; armv7) echo "qemu-arm-static -cpu cortex-a7" ;; esac; }

setup() {
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  local want=(rustc-web cargo-web rust-web-src libclang-dev python3-venv qemu-user-static pkg-config
              binutils-aarch64-linux-gnu binutils-arm-linux-gnueabihf
              libc6-dev-arm64-cross libc6-dev-armhf-cross)
  local missing=()
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  local v; v=$(/usr/bin/rustc --version | awk '{print $2}')
  if [ "$(printf '%s\n1.92\n' "$v" | sort -V | head -1)" != 1.92 ]; then
    echo "Debian's rustc is $v; smplcast needs >= 1.92: rustc-web comes from bookworm-security" >&2
    exit 1
  fi
  if [ ! -x "$TOOLS/venv/bin/cargo-zigbuild" ]; then
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install -q --no-cache-dir "ziglang==$ZIGLANG" "cargo-zigbuild==$CARGO_ZIGBUILD"
  fi
  # Debian's cargo and rustc (rustup's rustc cannot read Debian's std sources' build).
  # zig and cargo-zigbuild keep their caches under target/ too, not in ~/.cache.
  export XDG_CACHE_HOME=$TOOLS/cache ZIG_GLOBAL_CACHE_DIR=$TOOLS/cache/zig
  export PATH=$TOOLS/venv/bin:/usr/bin:$PATH CARGO=/usr/bin/cargo RUSTC=/usr/bin/rustc \
         RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
}

# The cargo arguments every build of a target shares, so test and release builds share
# their dependencies. Both have V4L2 and GStreamer; aarch64 also tract's CUDA runtime for
# CUDA 12 (feature cuda12: a Jetson with JetPack 6; the libraries load at run time, so the
# same binary runs on a Pi).
features() { case $1 in aarch64) echo v4l2,gstreamer,cuda12 ;; *) echo v4l2,gstreamer ;; esac; }
sysroot() { case "$1" in aarch64) echo "$CROSS/sysroot/arm64" ;; armv7) echo "$CROSS/sysroot/armhf" ;; esac; }
cargo_args() {
  echo --release --locked --features "$(features "$1")" -Zbuild-std=std,panic_abort \
    --target "$(triple "$1").$GLIBC"
  [ $quick = 0 ] || echo --config profile.release.opt-level=0 \
    --config profile.release.package.smplcast.opt-level=3 \
    --config profile.release.package.tract-linalg.opt-level=3
}

# The tests that run under qemu-user: those whose results depend on the architecture, that
# is on tract's ARM kernels (int8 SDOT, f16, f32): the model parity against PyTorch, the
# streaming head, the default person detector. The rest (unit tests, wire vectors, bad model
# files, the daemon, MQTT) is the same code on every architecture and runs natively; the
# smoke run above checks the whole ARM binary end to end.
QEMU_TESTS=(--test model_parity --test streaming --test detector_nanodet)

build() {
  local t=$1
  echo "== build $t: $(triple "$t"), glibc <= $GLIBC"
  # The v4l bindings (bindgen) need the kernel's uapi headers for the target, from
  # linux-libc-dev-<arch>-cross; clang finds them by itself for aarch64 but not for armv7.
  # (bindgen reads the hyphenated variable first.) With --tests, `test --no-run` builds the
  # qemu tests and, for them, the smplcast binary itself.
  local what=(zigbuild --bin smplcast)
  [ $tests = 0 ] || what=(test --no-run "${QEMU_TESTS[@]}")
  # A warning of ours fails the build (aarch64 compiles the cuda12 code, armv7 the code
  # without CUDA; the x86 build lints the rest).
  local log=$CARGO_TARGET_DIR/build.log
  mkdir -p "$CARGO_TARGET_DIR"
  # shellcheck disable=SC2046
  env "BINDGEN_EXTRA_CLANG_ARGS_$(triple "$t")=-I/usr/$(gnu "$t")/include" \
    cargo-zigbuild "${what[@]}" $(cargo_args "$t") 2>&1 | tee "$log"
  if grep -E '^warning: `smplcast` .* generated [0-9]+ warning' "$log"; then
    echo "FAIL: the $t build warns (above; $log)" >&2; exit 1
  fi
}

binary() { echo "$CARGO_TARGET_DIR/$(triple "$1")/release/smplcast"; }

# The highest GLIBC_x.y symbol version the binary needs must be <= $GLIBC.
check_glibc() {
  local t=$1 need
  need=$("$(gnu "$t")-objdump" -T "$(binary "$t")" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
  echo "$(binary "$t"): needs ${need}"
  if [ "$(printf '%s\nGLIBC_%s\n' "$need" "$GLIBC" | sort -V | tail -1)" != "GLIBC_$GLIBC" ]; then
    echo "FAIL: $(triple "$t") binary needs $need, more than glibc $GLIBC" >&2
    exit 1
  fi
}

# qemu-user runs ARM programs in the target's sysroot (bullseye: glibc 2.31, GStreamer).
# GStreamer scans its plugins in the process (it would exec an ARM scanner otherwise), into
# a registry under the target directory.
qemu_run() { echo "timeout 900 $(qemu "$1") -L $(sysroot "$1")"; }
export GST_REGISTRY_FORK=no
run_arm() { # run_arm TARGET COMMAND...: an ARM program under qemu-user
  local t=$1; shift
  # shellcheck disable=SC2046
  GST_REGISTRY=$CARGO_TARGET_DIR/gst-registry.bin $(qemu_run "$t") "$@"
}

smoke() {
  local t=$1 bin; bin=$(binary "$t")
  echo "== smoke $t (qemu-user)"
  run_arm "$t" "$bin" --version
  run_arm "$t" "$bin" check-models models/fixtures/narrow
  run_arm "$t" "$bin" check-config config.example.toml
  # The whole pipeline: synthetic source → detector-free narrow model → embedded broker →
  # the demo's own subscriber, which fails the run if a message is missing or undecodable.
  run_arm "$t" "$bin" demo --models models/fixtures/narrow --frames 24
  # The GStreamer source (kind = "video") on a Theora file in an Ogg container (base plugins
  # only, as the .deb depends on): every frame of the file read and cropped, then, in an
  # optimised build, through the whole pipeline (unoptimised, the models are too slow for its
  # 5-s stop).
  local ogv=$CARGO_TARGET_DIR/smoke.ogv
  /usr/bin/python3 tests/gst/make_video.py "$ogv" --frames 24 --size 160x120
  run_arm "$t" "$bin" bench --only source --source "$ogv" --iterations 24
  [ $quick = 1 ] || run_arm "$t" "$bin" bench --models models/fixtures/narrow --precision f32 \
    --source "$ogv" --frames 10 --warmup 2 --no-latency
  if [ "$t" = aarch64 ]; then
    # Built with tract's CUDA runtime (feature cuda12): model.device = "cuda" where there is
    # no GPU is one start-up error naming the missing driver and its package, not a panic.
    local cfg out; cfg=$(mktemp --suffix .toml)
    printf '[source]\nkind = "synthetic"\nfps = 0\nframes = 3\n[model]\ndir = "%s"\ndevice = "cuda"\n' \
      "$PWD/models/fixtures/narrow" > "$cfg"
    if out=$(run_arm "$t" "$bin" run --config "$cfg" 2>&1); then
      echo "FAIL: model.device = \"cuda\" started without a GPU: $out" >&2; exit 1
    fi
    if ! grep -q 'cannot open libcuda.so.1 (the NVIDIA driver' <<<"$out" || grep -q panicked <<<"$out"; then
      echo "FAIL: model.device = \"cuda\" without a GPU: $out" >&2; exit 1
    fi
    echo "model.device = cuda without a GPU: $(grep -o 'model.device = "cuda": .\{0,120\}' <<<"$out")"
    rm -f "$cfg"
  fi
}

unit_tests() {
  local t=$1 tt; tt=$(triple "$t" | tr a-z- A-Z_)
  echo "== tests $t (qemu-user)"
  # shellcheck disable=SC2046
  env "CARGO_TARGET_${tt}_RUNNER=$(qemu_run "$t")" GST_REGISTRY="$CARGO_TARGET_DIR/gst-registry.bin" \
    cargo-zigbuild test $(cargo_args "$t") "${QEMU_TESTS[@]}"
}

install_cargo_deb() {
  if [ ! -x "$TOOLS/bin/cargo-deb" ]; then
    # rustup's or Debian's cargo, whichever is first on the caller's PATH: a host tool.
    # Not optimised: packaging a few files needs no speed (its C compressor keeps its own
    # flags), and the test command is bound by CPU.
    env -u RUSTC_BOOTSTRAP CARGO_TARGET_DIR="$TOOLS/build" CARGO_PROFILE_RELEASE_OPT_LEVEL=0 \
      cargo install --quiet --locked --root "$TOOLS" cargo-deb --version 3.8.0
  fi
}

package() { # DEB_VERSION=V overrides the package version; DEB_OUT=DIR the output directory;
  # DEB_FAST=1 compresses faster (a larger file for a tenth of the CPU: the test command's)
  local t=$1 version=${DEB_VERSION:-} out=${DEB_OUT:-$CROSS/packages}
  install_cargo_deb
  echo "== deb $t"
  mkdir -p "$out"
  "$TOOLS/bin/cargo-deb" --no-build --strip --target "$(triple "$t")" \
    --output "$out/" ${version:+--deb-version "$version"} ${DEB_FAST:+--fast}
}

setup
[ $setup_only = 0 ] || exit 0
if [ $cargo_deb_only = 1 ]; then install_cargo_deb; exit 0; fi
for t in "${targets[@]}"; do
  export CARGO_TARGET_DIR; CARGO_TARGET_DIR=$(target_dir "$t")
  # pkg-config finds the target's GStreamer in its sysroot: the same environment for every
  # cargo run of the target, or the -sys crates' build scripts would run again.
  eval "$(cross/gst-sysroot.sh "$t")"
  build "$t"
  if [ $check = 1 ]; then
    check_glibc "$t"
    smoke "$t"
    [ $tests = 0 ] || unit_tests "$t"
  fi
  [ $deb = 0 ] || package "$t"
done
