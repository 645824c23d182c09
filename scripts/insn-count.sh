#!/usr/bin/env bash
# Instructions per run of each model part: a repeatable performance metric on a noisy machine.
#
#   scripts/insn-count.sh [x86|aarch64|all] [MODELS_DIR]     (default: all, models/generated/full)
#
# x86_64: valgrind --tool=callgrind on target/release/smplcast (valgrind emulates up to AVX2:
#   tract picks its AVX2/FMA kernels there, not AVX-512).
# aarch64: qemu-aarch64 (the dynamic qemu-user, which loads plugins) with the instruction
#   counting plugin tests/insn/insn.c (from ../shared/recipes/arm-insn-count) on the aarch64
#   release binary of cross/build-debian.sh (qemu 7.2 prints plugin output only with
#   `-d plugin`), emulating a Cortex-A76 (Raspberry Pi 5: ARMv8.2
#   with SDOT and fp16) and a Cortex-A72 (Pi 4: ARMv8.0, no SDOT).
#
# Per part: one run that loads the graph and runs it once (warm-up), one that runs it 1 + N
# times; (second − first) ÷ N is the count per run, without loading. Prints one JSON line
# per figure and writes them all to target/insn-count.json.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
models=${2:-models/generated/full}
N=${INSN_RUNS:-2}
# INSN_PARTS / INSN_CPUS (space-separated) narrow a run, e.g. INSN_PARTS="backbone:f32".
read -r -a parts <<< "${INSN_PARTS:-backbone:f32 backbone:int8 project:f32 step:f32 head:f32}"
read -r -a cpus <<< "${INSN_CPUS:-cortex-a76 cortex-a72}"
out=target/insn-count.json
: > "$out"

# count RUNNER... : instructions of `smplcast bench --only` under RUNNER (prints a number)
count_x86() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null \
    | sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
}
count_arm() {
  "$@" 2>&1 >/dev/null | sed -n 's/^GUEST_INSNS *\([0-9]*\).*/\1/p'
}

measure() { # measure ARCH CPU COUNTER BINARY...
  local arch=$1 cpu=$2 counter=$3; shift 3
  for p in "${parts[@]}"; do
    local part=${p%%:*} precision=${p##*:} one many
    local run=("$@" bench --models "$models" --only "$part" --precision "$precision")
    one=$($counter "${run[@]}" --iterations 1)
    many=$($counter "${run[@]}" --iterations $((1 + N)))
    local per=$(( (many - one) / N ))
    local line
    line=$(printf '{"arch": "%s", "cpu": "%s", "part": "%s", "precision": "%s", "insns_per_run": %d, "runs": %d, "models": "%s"}' \
      "$arch" "$cpu" "$part" "$precision" "$per" "$N" "$models")
    echo "$line" | tee -a "$out"
  done
}

if [ "$which" = x86 ] || [ "$which" = all ]; then
  command -v valgrind >/dev/null || { echo "insn-count: apt-get install valgrind" >&2; exit 1; }
  cargo build --release --locked --features v4l2 --bin smplcast
  measure x86_64 "valgrind (AVX2)" count_x86 target/release/smplcast
fi
if [ "$which" = aarch64 ] || [ "$which" = all ]; then
  command -v qemu-aarch64 >/dev/null || { echo "insn-count: apt-get install qemu-user" >&2; exit 1; }
  bin=target/cross/aarch64-unknown-linux-gnu/release/smplcast
  [ -x "$bin" ] || cross/build-debian.sh aarch64
  plugin=target/insn/libinsn.so
  mkdir -p target/insn
  gcc -shared -fPIC -O2 -o "$plugin" tests/insn/insn.c
  for cpu in "${cpus[@]}"; do
    measure aarch64 "$cpu" count_arm qemu-aarch64 -cpu "$cpu" -plugin "$plugin" -d plugin \
      -L /usr/aarch64-linux-gnu "$bin"
  done
fi
echo "insn-count: wrote $out"
