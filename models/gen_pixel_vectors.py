#!/usr/bin/env python3
"""Reference colour conversions for src/pixels.rs, by OpenCV (an independent implementation):
random YUYV, NV12 and I420 images of 16×12 and their RGB24 conversions (BT.601 limited range, what
cv2.COLOR_YUV2RGB_YUYV / _NV12 / _I420 compute). Writes tests/data/pixels.json.

    models/run gen_pixel_vectors.py
"""
import json
from pathlib import Path

import cv2
import numpy as np

W, H = 16, 12
PATH = Path(__file__).resolve().parent.parent / "tests/data/pixels.json"


def build() -> str:
    """The JSON text of the vectors (deterministic for a given OpenCV)."""
    rng = np.random.default_rng(7)
    out = {"generator": f"models/gen_pixel_vectors.py, OpenCV {cv2.__version__}"}
    yuyv = rng.integers(0, 256, size=(H, W * 2), dtype=np.uint8)
    rgb = cv2.cvtColor(yuyv.reshape(H, W, 2), cv2.COLOR_YUV2RGB_YUYV)
    out["yuyv"] = {"width": W, "height": H, "input": yuyv.ravel().tolist(), "rgb": rgb.ravel().tolist()}
    nv12 = rng.integers(0, 256, size=(H * 3 // 2, W), dtype=np.uint8)
    rgb = cv2.cvtColor(nv12, cv2.COLOR_YUV2RGB_NV12)
    out["nv12"] = {"width": W, "height": H, "input": nv12.ravel().tolist(), "rgb": rgb.ravel().tolist()}
    i420 = rng.integers(0, 256, size=(H * 3 // 2, W), dtype=np.uint8)
    rgb = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
    out["i420"] = {"width": W, "height": H, "input": i420.ravel().tolist(), "rgb": rgb.ravel().tolist()}
    return json.dumps(out) + "\n"


if __name__ == "__main__":
    PATH.write_text(build())
    print(f"wrote {PATH}")
