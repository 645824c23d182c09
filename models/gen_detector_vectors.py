#!/usr/bin/env python3
"""Test vectors for the Rust person detector (src/detect/blazepose.rs): real images run through
the converted detector (onnxruntime) and the numpy reference decoder
(smplcast_models/blazepose.py). Writes tests/data/detector/:
  <name>_input.png   the letterboxed 224×224 detector input (what MediaPipe feeds the model)
  vectors.json       per image: size, and the detections (score, box and 4 keypoints in pixels)

    models/run gen_detector_vectors.py

Images: scikit-image's astronaut (one person; also as the 640×480 JPEG in benches/data), coffee
and chelsea (no person). All public domain (scikit-image data).
"""
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image
from skimage import data

from smplcast_models import blazepose

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests/data/detector"


def runner():
    sess = ort.InferenceSession(str(ROOT / "models/detector/pose_detection.onnx"),
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return lambda x: dict(zip(names, sess.run(None, {"input_1": x.astype(np.float32)})))


def main(out: Path = OUT):
    out.mkdir(parents=True, exist_ok=True)
    run, anchors = runner(), blazepose.ssd_anchors()
    images = {
        "astronaut": data.astronaut(),
        "astronaut_640x480": np.asarray(Image.open(ROOT / "benches/data/astronaut_640x480.jpg").convert("RGB")),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
    }
    vectors = {}
    for name, img in images.items():
        dets, u8 = blazepose.detect(img, run, anchors)
        Image.fromarray(u8).save(out / f"{name}_input.png")
        h, w = img.shape[:2]
        vectors[name] = {
            "width": w,
            "height": h,
            "detections": [
                {
                    "score": round(float(d["score"]), 6),
                    "box": [round(float(v), 3) for v in d["box"] * [w, h, w, h]],
                    "keypoints": [[round(float(x * w), 3), round(float(y * h), 3)] for x, y in d["kps"]],
                }
                for d in dets
            ],
        }
        print(name, vectors[name]["detections"])
    (out / "vectors.json").write_text(json.dumps(vectors, indent=1) + "\n")


if __name__ == "__main__":
    main()
