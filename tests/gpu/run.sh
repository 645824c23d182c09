#!/usr/bin/env bash
# Issue 20's checks that need an NVIDIA GPU and many cores: run on the device machine
# (x86_64, CUDA 13, cuDNN 9, PyTorch's NVIDIA wheels in /opt/torch/.venv, 16 cores; see
# ../shared/recipes/gpu), never in CI. Prepared and built here, carried there:
#
#   bash tests/gpu/run.sh --prepare     # here: builds the inputs into target/gpu (≈ 50 MB)
#   bash tests/gpu/run.sh               # there, with `carry: ["target/gpu"]`; figures to $OUT
#
# The inputs, xz-compressed to fit what travels (64 MiB): target/gpu/smplcast (release, features
# v4l2 + cuda, stripped), target/gpu/gpu-tests (tests/gpu.rs), and target/gpu/full/ (the
# full-size f32 graphs the daemon runs, their weights re-quantised to 4 levels by
# tests/gpu/lowent.py, so that they compress: same shapes and speed, for timing only; parity
# uses the committed narrow model's PyTorch vectors). With the tracked tree (40 MB) that is
# about 63 MB.
#
# What it runs, each part's output in $OUT/<part>.txt (and the benches' JSON):
#   1. the GPU parity check against the PyTorch vectors (tests/gpu.rs), f32 and f16;
#   2. start-up: the backbone prepared on the GPU with a cold kernel cache, then a warm one;
#   3. the CUDA bench: the full backbone per run on the GPU (f32, f16) and on one CPU core,
#      and its time per crop at 1, 2, 4 and 8 crops per call on the GPU (people batched);
#   4. the worker scaling bench at 1, 2, 4 and 8 workers (f32, 1 thread each), and
#      `bench --device cpu,cuda` end to end.
set -uo pipefail
cd "$(dirname "$0")/../.."
IN=target/gpu

if [ "${1:-}" = --prepare ]; then
  set -e
  mkdir -p "$IN/full"
  cargo build --release --locked --features v4l2,cuda --bin smplcast --test gpu
  out=${CARGO_TARGET_DIR:-target}/release
  cp "$out/smplcast" "$IN/smplcast" && strip "$IN/smplcast"
  test_bin=$(ls -t "$out"/deps/gpu-* | grep -v '\.d$' | head -1)
  cp "$test_bin" "$IN/gpu-tests" && strip "$IN/gpu-tests"
  src=${SMPLCAST_FULL_MODELS:-models/generated/full}
  python=$(scripts/venv.sh "${SMPLCAST_VENV:-models/.venv}" models/requirements.txt)
  for g in backbone temporal_frame temporal_step; do
    "$python" tests/gpu/lowent.py "$src/$g.onnx" "$IN/full/$g.onnx"
  done
  cp "$src/model.json" "$IN/full/"
  # What travels is at most 64 MiB: everything xz-compressed (the run unpacks it).
  xz -T2 -6 -f "$IN/smplcast" "$IN/gpu-tests" "$IN"/full/*.onnx
  du -sh "$IN"
  exit 0
fi

OUT=${OUT:-$IN/out}
mkdir -p "$OUT"
for f in "$IN"/*.xz "$IN"/full/*.xz; do [ -e "$f" ] && xz -dkf "$f"; done
chmod +x "$IN/smplcast" "$IN/gpu-tests"
# The CUDA libraries: the toolkit's, then PyTorch's wheels (cuDNN 9, cuBLAS).
LD_LIBRARY_PATH=/usr/local/cuda/lib64:$(ls -d /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib 2>/dev/null | tr '\n' ':')${LD_LIBRARY_PATH:-}
export LD_LIBRARY_PATH CUDA_HOME=${CUDA_HOME:-/usr/local/cuda} RUST_LOG=info
# tract keeps its compiled kernels under $XDG_CACHE_HOME/tract: a cold cache, then a warm one.
export XDG_CACHE_HOME=$PWD/target/gpu-cache
rm -rf "$XDG_CACHE_HOME"
bin=$IN/smplcast
part() { # part NAME COMMAND...: runs it, its output to $OUT/NAME.txt, its wall time on stdout
  local name=$1 t0=$SECONDS; shift
  echo "== $name: $*"
  "$@" > "$OUT/$name.txt" 2>&1
  echo "== $name: rc $? in $((SECONDS - t0)) s"; tail -5 "$OUT/$name.txt"
}
{ nvidia-smi -L; nproc; uname -m; } | tee "$OUT/machine.txt"

part parity "$IN/gpu-tests" --ignored --nocapture --test-threads 1
part startup-cold "$bin" bench --models "$IN/full" --only backbone --device cuda --precision f32 --iterations 0
part startup-warm "$bin" bench --models "$IN/full" --only backbone --device cuda --precision f32 --iterations 0
part cuda-f32 "$bin" bench --models "$IN/full" --only backbone --device cuda --precision f32 --iterations 30
part cuda-f16 "$bin" bench --models "$IN/full" --only backbone --device cuda --precision f16 --iterations 30
part cuda-batch "$bin" bench --models "$IN/full" --only backbone --device cuda --precision f32 \
  --batch 1,2,4,8 --iterations 20
part cpu-f32 "$bin" bench --models "$IN/full" --only backbone --device cpu --precision f32 --iterations 10
part workers "$bin" bench --models "$IN/full" --precision f32 --workers 1,2,4,8 --frames 60 \
  --warmup 10 --json "$OUT/workers.json"
part devices "$bin" bench --models "$IN/full" --precision f32 --device cpu,cuda --frames 60 \
  --warmup 10 --json "$OUT/devices.json"
echo "== done; figures in $OUT"
