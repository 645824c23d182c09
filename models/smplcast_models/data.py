"""Inputs for calibration, parity and test vectors: real photographs and feature windows.

Images come from scikit-image's bundled data (public domain / CC0; see skimage.data's docs):
astronaut (a person), camera (a person), coffee, chelsea, rocket. Crops are square, jittered and
resized to 224×224, then normalised with ImageNet mean/std like the daemon's preprocessing.
`from_rgb8` and `to_rgb8` convert between that form and the 8-bit RGB crops the daemon saves
(`smplcast run --save-crops`, read by smplcast_models.scene).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
IMAGES = ("astronaut", "camera", "coffee", "chelsea", "rocket")


def _photo(name: str) -> np.ndarray:
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return img[..., :3].astype(np.float32) / 255.0


def crop(img: np.ndarray, cx: float, cy: float, side: float) -> torch.Tensor:
    """Square crop (zero padded outside), bilinear resize to 224, ImageNet-normalised [3, 224, 224]."""
    h, w, _ = img.shape
    half = side / 2
    x0, y0 = int(round(cx - half)), int(round(cy - half))
    s = int(round(side))
    canvas = np.zeros((s, s, 3), dtype=np.float32)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + s, w), min(y0 + s, h)
    canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = img[sy0:sy1, sx0:sx1]
    t = torch.from_numpy((canvas - MEAN) / STD).permute(2, 0, 1)[None]
    return F.interpolate(t, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)[0]


def from_rgb8(rgb: np.ndarray) -> torch.Tensor:
    """[224, 224, 3] uint8 RGB -> [3, 224, 224] f32, ImageNet-normalised exactly as `crop` does."""
    return torch.from_numpy((rgb.astype(np.float32) / 255.0 - MEAN) / STD).permute(2, 0, 1).contiguous()


def to_rgb8(t: torch.Tensor) -> np.ndarray:
    """The inverse of `from_rgb8` (rounded): [3, H, W] ImageNet-normalised -> [H, W, 3] uint8 RGB."""
    rgb = t.permute(1, 2, 0).numpy() * STD + MEAN
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def images(count: int, seed: int) -> torch.Tensor:
    """`count` random crops of the photographs: [count, 3, 224, 224]."""
    rng = np.random.default_rng(seed)
    photos = [_photo(n) for n in IMAGES]
    out = []
    for i in range(count):
        img = photos[i % len(photos)]
        h, w, _ = img.shape
        side = rng.uniform(0.4, 1.0) * min(h, w)
        cx, cy = rng.uniform(side / 2, w - side / 2), rng.uniform(side / 2, h - side / 2)
        out.append(crop(img, cx, cy, side))
    return torch.stack(out)


def clips(count: int, seed: int, frames: int = 16) -> torch.Tensor:
    """`count` clips of `frames` crops drifting smoothly over one photograph, like a tracked
    person: [count, frames, 3, 224, 224]."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        img = _photo(IMAGES[i % len(IMAGES)])
        h, w, _ = img.shape
        side = rng.uniform(0.5, 0.8) * min(h, w)
        start = np.array([rng.uniform(side / 2, w - side / 2), rng.uniform(side / 2, h - side / 2)])
        drift = rng.normal(0, 2.0, size=2)
        frames_ = [crop(img, *(start + t * drift), side * (1 + 0.005 * t)) for t in range(frames)]
        out.append(torch.stack(frames_))
    return torch.stack(out)


def small_windows(count: int, feat: int, seed: int) -> torch.Tensor:
    """Feature windows at a small scale, [count, 16, feat]: the Gram and attention logits are
    O(1), so MoCA's softmaxes are far from one-hot and a transposed matrix would show."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(count, 1, feat, generator=g)
    walk = torch.cumsum(0.3 * torch.randn(count, 16, feat, generator=g), dim=1)
    return (base + walk) * feat ** -0.5
