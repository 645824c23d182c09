#!/usr/bin/env python3
"""Reference detections for tests/detector_nanodet.rs: NanoDet (models/nanodet/nanodet.onnx)
run by onnxruntime and decoded in numpy the way src/detect/nanodet.rs documents it, on real
images whose size is the detector's input (so no resampling differs between the two).

    models/run gen_nanodet_vectors.py [--vtest models/.cache/vtest.avi]

Writes tests/data/nanodet/: vtest-0060.png (a 512 × 384 crop of vtest.avi's frame 60: seven
people, two of them side by side; see models/people_eval.py for the footage), astronaut.png
(scikit-image's astronaut, 512 × 512) and vectors.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "tests/data/nanodet"
STRIDES = (8, 16, 32)
SETTINGS = {"sizes": [512], "min_score": 0.45, "nms_iou": 0.5}  # one size: the image's own


def iou(a, b):
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def detect(sess, rgb):
    """`rgb` is exactly the input size: [H, W, 3] uint8."""
    h, w = rgb.shape[:2]
    x = np.ascontiguousarray(rgb.astype(np.float32).transpose(2, 0, 1)[None])
    score, dist = sess.run(None, {"image": x})
    found = []
    k = 0
    for s in STRIDES:
        cols, rows = w // s, h // s
        for i in range(cols * rows):
            sc = float(score[0, k + i])
            if sc >= SETTINGS["min_score"]:
                cx, cy = (i % cols + 0.5) * s, (i // cols + 0.5) * s
                d = dist[0, k + i] * s
                b = [max(cx - d[0], 0.0), max(cy - d[1], 0.0), min(cx + d[2], w), min(cy + d[3], h)]
                if b[2] - b[0] >= 1 and b[3] - b[1] >= 1:
                    found.append((sc, [float(v) for v in b]))
        k += cols * rows
    found.sort(key=lambda t: -t[0])
    kept = []
    for sc, b in found:
        if all(iou(b, kb) <= SETTINGS["nms_iou"] for _, kb in kept):
            kept.append((sc, b))
    return [{"score": sc, "corners": b} for sc, b in kept]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vtest", type=Path, default=HERE / ".cache/vtest.avi")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(args.vtest))
    for _ in range(61):
        ok, frame = cap.read()
        assert ok
    crop = frame[100:484, 256:768]  # 384 rows × 512 columns
    cv2.imwrite(str(OUT / "vtest-0060.png"), crop)
    from skimage import data
    astro = data.astronaut()  # 512 × 512: the input size for a square frame
    cv2.imwrite(str(OUT / "astronaut.png"), astro[..., ::-1])
    sess = ort.InferenceSession(str(HERE / "nanodet/nanodet.onnx"))
    vectors = {"settings": SETTINGS, "images": {}}
    for name in ["vtest-0060", "astronaut"]:
        rgb = cv2.imread(str(OUT / f"{name}.png"))[..., ::-1]
        vectors["images"][name] = detect(sess, rgb)
        print(name, [round(d["score"], 3) for d in vectors["images"][name]])
    (OUT / "vectors.json").write_text(json.dumps(vectors, indent=1) + "\n")


if __name__ == "__main__":
    main()
