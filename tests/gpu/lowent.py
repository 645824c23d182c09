"""Re-quantises an ONNX graph's large float32 weights to a few levels (same shapes, same
distribution scale), so that a random-weight graph compresses for the trip to the GPU machine:
for timing only. After ../shared/recipes/gpu/lowent.py (16 levels); 4 levels here.
usage: lowent.py IN.onnx OUT.onnx"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper

LEVELS = np.array([-1.5, -0.5, 0.5, 1.5], dtype=np.float32)

m = onnx.load(sys.argv[1])
for init in m.graph.initializer:
    w = numpy_helper.to_array(init)
    if w.dtype == np.float32 and w.size > 4096:
        s = float(w.std()) or 1.0
        q = LEVELS[np.clip(np.floor(w / s + 2), 0, 3).astype(np.int64)] * s
        init.CopyFrom(numpy_helper.from_array(q.astype(np.float32), init.name))
onnx.save(m, sys.argv[2])
