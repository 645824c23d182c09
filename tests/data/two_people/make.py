#!/usr/bin/env python3
"""Writes the two-person test sequence: 24 frames of 720×360, two views of scikit-image's
astronaut (public domain, NASA; one mirrored) drifting apart over a grey background, JPEG q 85.
Checks with the reference detector pipeline (models/smplcast_models/blazepose.py) that every
frame has exactly two people. Run with the models venv from the repository root:
`models/.venv/bin/python tests/data/two_people/make.py`."""
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image
from skimage import data

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "models"))
from smplcast_models import blazepose  # noqa: E402

out = Path(__file__).resolve().parent
sess = ort.InferenceSession(str(ROOT / "models/detector/pose_detection.onnx"), providers=["CPUExecutionProvider"])
run = lambda x: dict(zip(["Identity", "Identity_1"], sess.run(None, {"input_1": x.astype(np.float32)})))
person = np.asarray(Image.fromarray(data.astronaut()).resize((320, 320), Image.BILINEAR))
for old in out.glob("frame_*.jpg"):
    old.unlink()
for k in range(24):
    frame = np.full((360, 720, 3), 40, np.uint8)
    left, right = 24 - k, 376 + k
    frame[20:340, left:left + 320] = person
    frame[20:340, right:right + 320] = person[:, ::-1]
    path = out / f"frame_{k:03d}.jpg"
    Image.fromarray(frame).save(path, quality=85)
    dets, _ = blazepose.detect(np.asarray(Image.open(path).convert("RGB")), run)
    assert len(dets) == 2, (k, [d["score"] for d in dets])
print("wrote 24 frames, two people in each")
