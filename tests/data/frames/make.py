#!/usr/bin/env python3
"""Writes the replay test frames: 20 views of scikit-image's astronaut.png (public domain, NASA)
panning across the image, 192×144, as PNG and JPEG with a few pixel formats, and one corrupt
JPEG. Run with the models venv: `models/run ../tests/data/frames/make.py` from models/, or
`models/.venv/bin/python tests/data/frames/make.py`. Deterministic for a given Pillow."""
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

out = Path(__file__).resolve().parent
img = data.astronaut()  # 512×512 RGB
for old in out.glob("frame_*"):
    old.unlink()
for k in range(20):
    x, y = 40 + 8 * k, 60 + 3 * k
    crop = Image.fromarray(np.ascontiguousarray(img[y:y + 288, x:x + 384])).resize((192, 144), Image.BILINEAR)
    path = out / f"frame_{k:03d}"
    if k == 10:
        # Corrupt: the first 600 bytes of a JPEG. The daemon counts it and skips it.
        import io
        buf = io.BytesIO()
        crop.save(buf, "JPEG", quality=90)
        (path.with_suffix(".jpg")).write_bytes(buf.getvalue()[:600])
    elif k == 5:
        crop.convert("L").save(path.with_suffix(".png"))
    elif k == 7:
        crop.convert("RGBA").save(path.with_suffix(".png"))
    elif k % 2:
        crop.save(path.with_suffix(".jpg"), quality=90)
    else:
        crop.save(path.with_suffix(".png"))
print(f"wrote {len(list(out.glob('frame_*')))} frames to {out}")
