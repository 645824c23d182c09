#!/usr/bin/env python3
"""onnxruntime side of the model benchmark (benches/model.rs spawns it; see docs/BENCHMARKS.md).

Times the graphs of a model directory in onnxruntime on one thread (CPUExecutionProvider,
intra_op 1, inter_op 1, sequential execution), on the inputs the Rust bench wrote, and prints
one JSON object on stdout: the raw per-iteration times in ms, so both runtimes' figures are
summarised by the same code (the Rust bench's).

  models/run bench_ort.py --dir models/generated/full --image image.npy --window window.npy \
      --backbone-iters 20 --head-iters 100 --warmup 3

  image   [1, 3, 224, 224] f32: the backbone input
  window  [1, 16, C] f32: the temporal head input (the incremental form projects its last frame
          and steps over the 16 frames' projections, as the daemon does per new frame)

Measurements of the same group alternate within each iteration (and their order reverses every
other iteration), so machine noise hits every graph alike. Graphs missing from the directory
(e.g. no int8 files) are skipped and reported under "skipped".
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

# Before numpy / onnxruntime load their thread pools. (No torch import here: smplcast_models.parity
# needs only onnx.)
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from smplcast_models.parity import input_names, output_names  # noqa: E402


def session(path: pathlib.Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # No spinning worker threads: with one thread there are none, but say so explicitly.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class Graph:
    """One session and the name of its single input (the head/backbone graphs)."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.sess = session(path)
        self.inputs = input_names(path)
        self.outputs = output_names(path)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.sess.run(None, {k: feeds[k] for k in self.inputs})


class Incremental:
    """temporal_frame on the new frame + temporal_step over the 16 frames' projections, the
    streaming form (what the daemon runs per frame; see src/model/mod.rs, `Streaming`)."""

    def __init__(self, frame: pathlib.Path, step: pathlib.Path, window: np.ndarray):
        self.frame = Graph(frame)
        self.step = Graph(step)
        n, t, c = window.shape
        # The 16 frames' projections, as the daemon's TrackWindow caches them.
        proj = self.frame.run({"feature": np.ascontiguousarray(window.reshape(n * t, c))})
        cached = dict(zip(self.frame.outputs, (p.reshape(n, t, -1) for p in proj)))
        cached["x"] = window
        self.cached = cached
        self.new_frame = np.ascontiguousarray(window[:, -1])

    def run(self) -> tuple[float, float, list[np.ndarray]]:
        """Returns (project ms, step ms, head outputs)."""
        t0 = time.perf_counter()
        proj = self.frame.run({"feature": self.new_frame})
        t1 = time.perf_counter()
        # Assemble the step inputs: 15 cached frames + the new one (a copy per input, as the
        # Rust side gathers its caches into contiguous buffers).
        feeds = {}
        for name in self.step.inputs:
            new = self.new_frame if name == "x" else proj[self.frame.outputs.index(name)]
            feeds[name] = np.concatenate([self.cached[name][:, :-1], new[:, None]], axis=1)
        outs = self.step.run(feeds)
        t2 = time.perf_counter()
        return (t1 - t0) * 1e3, (t2 - t1) * 1e3, outs


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def alternate(cases: dict, iters: int, warmup: int) -> dict[str, list[float]]:
    """{name: [ms per iteration]} running every case once per iteration, in an order that reverses
    every other iteration. A case returns its time in ms, or a dict of named parts in ms."""
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    samples: dict[str, list[float]] = {}
    for i in range(iters):
        for name in (names if i % 2 == 0 else names[::-1]):
            got = cases[name]()
            for key, ms in (got.items() if isinstance(got, dict) else [(name, got)]):
                samples.setdefault(key, []).append(ms)
    return samples


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=pathlib.Path, required=True, help="model directory")
    p.add_argument("--image", type=pathlib.Path, required=True, help="backbone input .npy [1,3,224,224]")
    p.add_argument("--window", type=pathlib.Path, required=True, help="head input .npy [1,16,C]")
    p.add_argument("--backbone-iters", type=int, default=20)
    p.add_argument("--head-iters", type=int, default=100)
    p.add_argument("--warmup", type=int, default=3, help="untimed runs of each graph first")
    p.add_argument("--no-incremental", action="store_true", help="skip temporal_frame + temporal_step")
    args = p.parse_args(argv)

    import onnxruntime as ort

    image = np.ascontiguousarray(np.load(args.image), dtype=np.float32)
    window = np.ascontiguousarray(np.load(args.window), dtype=np.float32)
    skipped = []

    def present(name: str) -> pathlib.Path | None:
        path = args.dir / name
        if path.exists():
            return path
        skipped.append(name)
        return None

    backbone = {}
    for name in ("backbone.onnx", "backbone.int8.onnx"):
        if path := present(name):
            g = Graph(path)
            backbone[name] = lambda g=g: timed(lambda: g.run({"image": image}))

    heads = {}
    outputs = {}
    for name in ("temporal.onnx", "temporal.int8.onnx"):
        if path := present(name):
            g = Graph(path)
            outputs[name] = g.run({"features": window})
            heads[name] = lambda g=g: timed(lambda: g.run({"features": window}))
    incremental_diff = None
    if not args.no_incremental:
        frame, step = present("temporal_frame.onnx"), present("temporal_step.onnx")
        if frame and step:
            inc = Incremental(frame, step, window)
            _, _, got = inc.run()
            if "temporal.onnx" in outputs:
                incremental_diff = max(float(np.max(np.abs(a - b)))
                                       for a, b in zip(outputs["temporal.onnx"], got))

            def incremental():
                project, step_ms, _ = inc.run()
                return {"incremental": project + step_ms, "incremental.project": project,
                        "incremental.step": step_ms}

            heads["incremental"] = incremental

    samples = {}
    samples.update(alternate(backbone, args.backbone_iters, args.warmup))
    samples.update(alternate(heads, args.head_iters, args.warmup))
    report = {
        "runtime": "onnxruntime",
        "version": ort.__version__,
        "numpy": np.__version__,
        "provider": "CPUExecutionProvider",
        "intra_op_num_threads": 1,
        "inter_op_num_threads": 1,
        "execution_mode": "sequential",
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "warmup": args.warmup,
        "incremental_vs_full_max_abs": incremental_diff,
        "skipped": skipped,
        "samples_ms": samples,
    }
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
