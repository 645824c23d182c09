"""One ONNX graph in onnxruntime, run in a loop: the onnxruntime side of scripts/insn-count.sh.

  python3 ort_loop.py MODEL.onnx ITERATIONS

Runs under qemu-aarch64 with the instruction counting plugin, in a Debian arm64 root holding
onnxruntime's and numpy's aarch64 wheels (the script sets that up). The session is set up as in
models/bench_ort.py: one thread, sequential. The input is the one `smplcast bench --only`
feeds tract: the same xorshift sequence mapped to [-1, 1), so both runtimes count the same
work. Needs only numpy and onnxruntime.
"""
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402


def noise(n: int) -> np.ndarray:
    """src/bench.rs part_loop's noise(): xorshift32 from 0x2545f491, as f32 in [-1, 1)."""
    seed, seeds = 0x2545F491, []
    for _ in range(n):
        seed ^= (seed << 13) & 0xFFFFFFFF
        seed ^= seed >> 17
        seed ^= (seed << 5) & 0xFFFFFFFF
        seeds.append(seed)
    # u32 → f32 rounds to nearest, as Rust's `as`; u32::MAX as f32 is 2^32.
    values = np.array(seeds, dtype=np.float64).astype(np.float32)
    return values / np.float32(4294967296.0) * np.float32(2.0) - np.float32(1.0)


def main() -> None:
    model, iterations = sys.argv[1], int(sys.argv[2])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    x = noise(int(np.prod(shape))).reshape(shape)
    for _ in range(iterations):
        sess.run(None, {inp.name: x})


if __name__ == "__main__":
    main()
