#!/usr/bin/env bash
# Instructions per run of each model part: a repeatable performance metric on a noisy machine.
#
#   scripts/insn-count.sh [x86|aarch64|all] [MODELS_DIR]   (default: all, models/generated/full)
#
# x86_64: valgrind --tool=callgrind on target/release/smplcast (valgrind emulates up to AVX2:
#   tract picks its AVX2/FMA kernels there, not AVX-512).
# aarch64: qemu-aarch64 (the dynamic qemu-user, which loads plugins) with the instruction
#   counting plugin tests/insn/insn.c (from ../shared/recipes/arm-insn-count; qemu 7.2 prints
#   plugin output only with `-d plugin`), emulating a Cortex-A76 (Raspberry Pi 5: ARMv8.2 with
#   SDOT and fp16) and a Cortex-A72 (Pi 4: ARMv8.0, no SDOT). Two runtimes on the same graphs
#   and inputs:
#   - tract: the aarch64 release binary of cross/build-debian.sh;
#   - onnxruntime: its aarch64 wheel, in tests/insn/ort_loop.py (backbone only).
#   Both run in a Debian 12 arm64 root (target/cross/insn-root: a copy of the .deb test's
#   root, or debootstrap, plus python3, with the aarch64 wheels of onnxruntime and numpy
#   unpacked in /opt/ort) through qemu's -L. qemu-user shows the guest the host's
#   /proc/cpuinfo: tract then cannot tell the core (it picks kernels by "CPU part" and f16 by
#   "Features"), and onnxruntime's cpuinfo library crashes. So the root holds a /proc/cpuinfo
#   of the emulated core, written before each core's runs; -L looks there first, and both
#   runtimes see the core as on the board.
#   INSN_RUNTIMES="tract" (or "onnxruntime") narrows the runtimes.
#
# Per part: one run that loads the graph and runs it once (warm-up), one that runs it 1 + N
# times; (second − first) ÷ N is the count per run, without loading. Prints one JSON line
# per figure and writes them all to target/insn-count.json.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
models=${2:-models/generated/full}
# Runs per count: INSN_RUNS, or by part. Loading varies by up to ~1 M instructions from run to
# run, so a small part needs many runs for that to vanish in (many − one) ÷ N: three identical
# counts of the per-frame projection gave 2.76–3.44 M with N = 4, and 2.85–2.89 M with N = 50.
runs_for() { # runs_for PART
  if [ -n "${INSN_RUNS:-}" ]; then echo "$INSN_RUNS"; return; fi
  case $1 in backbone) echo 2 ;; head) echo 4 ;; *) echo 30 ;; esac
}
# INSN_PARTS / INSN_CPUS (space-separated) narrow a run, e.g. INSN_PARTS="backbone:f32";
# without INSN_PARTS, aarch64 adds the f16 parts. INSN_AARCH64_BIN: another aarch64 binary.
read -r -a parts <<< "${INSN_PARTS:-backbone:f32 backbone:int8 project:f32 step:f32 head:f32}"
read -r -a cpus <<< "${INSN_CPUS:-cortex-a76 cortex-a72}"
read -r -a runtimes <<< "${INSN_RUNTIMES:-tract onnxruntime}"
out=target/insn-count.json
: > "$out"

# Parse the instruction count from a run's stderr.
callgrind_total() { sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'; }
plugin_total() { sed -n 's/^GUEST_INSNS *\([0-9]*\).*/\1/p'; }

# The tract runs: `smplcast bench --only PART --precision P --iterations K`.
tract_run() { # tract_run PART PRECISION ITERATIONS RUNNER...
  local part=$1 precision=$2 k=$3; shift 3
  "$@" bench --models "$models" --only "$part" --precision "$precision" --iterations "$k"
}
# The onnxruntime runs (backbone only): tests/insn/ort_loop.py MODEL ITERATIONS.
onnxruntime_run() { # onnxruntime_run PART PRECISION ITERATIONS RUNNER...
  local part=$1 precision=$2 k=$3; shift 3
  local file=$part.onnx; [ "$precision" = int8 ] && file=$part.int8.onnx
  "$@" tests/insn/ort_loop.py "$PWD/$models/$file" "$k"
}

measure() { # measure ARCH CPU RUNTIME PARSER COMMAND... (COMMAND: counter + program)
  local arch=$1 cpu=$2 runtime=$3 parser=$4; shift 4
  local selected=("${parts[@]}")
  [ "$runtime" = tract ] || read -r -a selected <<< "${INSN_ORT_PARTS:-backbone:f32 backbone:int8}"
  for p in "${selected[@]}"; do
    local part=${p%%:*} precision=${p##*:} one many N
    N=$(runs_for "$part")
    # No fp16 arithmetic on ARMv8.0: tract would emulate it.
    [ "$precision" = f16 ] && [ "$cpu" = cortex-a72 ] && continue
    one=$("${runtime}_run" "$part" "$precision" 1 "$@" 2>&1 >/dev/null | $parser)
    many=$("${runtime}_run" "$part" "$precision" $((1 + N)) "$@" 2>&1 >/dev/null | $parser)
    local per=$(( (many - one) / N ))
    local line
    line=$(printf '{"arch": "%s", "cpu": "%s", "runtime": "%s", "part": "%s", "precision": "%s", "insns_per_run": %d, "runs": %d, "models": "%s"}' \
      "$arch" "$cpu" "$runtime" "$part" "$precision" "$per" "$N" "$models")
    echo "$line" | tee -a "$out"
  done
}

# A Debian 12 arm64 root with python3 and onnxruntime's + numpy's aarch64 wheels in /opt/ort.
arm_root() {
  local root=$1 deb_root=target/cross/arm64-root
  if [ ! -x "$root/usr/bin/python3" ]; then
    [ -e /proc/sys/fs/binfmt_misc/register ] ||
      mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] ||
      printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' \
        > /proc/sys/fs/binfmt_misc/register
    rm -rf "$root"
    if [ -x "$deb_root/usr/bin/dpkg" ]; then
      cp -a "$deb_root" "$root"
    else
      command -v debootstrap >/dev/null || apt-get install -y -qq --no-install-recommends debootstrap
      debootstrap --arch=arm64 --variant=minbase bookworm "$root" http://deb.debian.org/debian
    fi
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    chroot "$root" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends python3 && apt-get clean'
  fi
  if [ ! -d "$root/opt/ort/onnxruntime" ]; then
    local wheels=target/insn/wheels-aarch64
    local ort numpy
    ort=$(sed -n 's/^onnxruntime==//p' models/requirements.txt)
    numpy=$(sed -n 's/^numpy==//p' models/requirements.txt)
    models/run -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
      --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 \
      "onnxruntime==$ort" "numpy==$numpy" -d "$wheels"
    mkdir -p "$root/opt/ort" "$root/sys/devices/system/cpu"
    for w in "$wheels"/*.whl; do python3 -m zipfile -e "$w" "$root/opt/ort"; done
  fi
  printf '0-1\n' > "$root/sys/devices/system/cpu/possible"
  printf '0-1\n' > "$root/sys/devices/system/cpu/present"
}

# /proc/cpuinfo of two cores of the emulated kind, as Linux writes it on the board.
fake_cpuinfo() { # fake_cpuinfo ROOT CPU
  local part features
  case $2 in
    cortex-a76) part=0xd0b; features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
    cortex-a72) part=0xd08; features="fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid" ;;
    *) echo "insn-count: no cpuinfo for $2" >&2; exit 1 ;;
  esac
  for i in 0 1; do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: %s\nCPU revision\t: 0\n\n' \
      "$i" "$features" "$part"
  done > "$1/proc/cpuinfo"
}

if [ "$which" = x86 ] || [ "$which" = all ]; then
  command -v valgrind >/dev/null || { echo "insn-count: apt-get install valgrind" >&2; exit 1; }
  cargo build --release --locked --features v4l2 --bin smplcast
  measure x86_64 "valgrind (AVX2)" tract callgrind_total \
    valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/smplcast
fi
plugin=target/insn/libinsn.so
if [ "$which" != x86 ]; then
  command -v qemu-aarch64 >/dev/null || { echo "insn-count: apt-get install qemu-user" >&2; exit 1; }
  mkdir -p target/insn
  gcc -shared -fPIC -O2 -o "$plugin" tests/insn/insn.c
fi
if [ "$which" = aarch64 ] || [ "$which" = all ]; then
  bin=${INSN_AARCH64_BIN:-target/cross/aarch64-unknown-linux-gnu/release/smplcast}
  [ -x "$bin" ] || cross/build-debian.sh aarch64
  root=$PWD/target/cross/insn-root
  arm_root "$root"
  # f16 runs natively only on ARMv8.2 cores (valgrind would count tract's f16 emulation).
  [ -n "${INSN_PARTS:-}" ] || parts+=(backbone:f16 project:f16 step:f16)
  qemu=(qemu-aarch64 -plugin "$plugin" -d plugin -L "$root")
  for cpu in "${cpus[@]}"; do
    fake_cpuinfo "$root" "$cpu"
    for runtime in "${runtimes[@]}"; do
      case $runtime in
        tract) measure aarch64 "$cpu" tract plugin_total "${qemu[@]}" -cpu "$cpu" "$bin" ;;
        onnxruntime) measure aarch64 "$cpu" onnxruntime plugin_total \
          env PYTHONPATH=/opt/ort "${qemu[@]}" -cpu "$cpu" "$root/usr/bin/python3" ;;
      esac
    done
  done
fi
echo "insn-count: wrote $out"
