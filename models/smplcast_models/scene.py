"""Crops of the user's own scene, for calibrating the int8 backbone (convert.py --calib-dir).

`smplcast run --save-crops DIR` saves each person crop as the backbone sees it before
normalisation: PNG, 8-bit RGB, 224×224, named `t{track:05}-f{frame:09}.png` (track id, frame
id). Neighbouring frames of a track are near-duplicates, so a random split would hold out crops
that are all but in the calibration set. The split is by time instead: the crops in frame order,
the last `holdout` fraction held out, calibration on the earlier ones.

Errors are ValueError with a message for the user: it names the directory or the file, what was
expected, and what to do.
"""
from __future__ import annotations

import math
import pathlib
import re
from dataclasses import dataclass

import numpy as np
import torch

from . import data

NAME = re.compile(r"t(\d+)-f(\d+)\.png")
SIZE = 224
EXPECTED = (f"a {SIZE}×{SIZE} 8-bit RGB PNG, the crop before normalisation, as "
            "`smplcast run --save-crops DIR` writes it")


@dataclass
class Scene:
    """The crops of one directory, split in time."""

    directory: pathlib.Path
    total: int
    calibrate: list[pathlib.Path]
    """Calibration crops: at most `cap`, evenly spaced over the earlier part, in time order."""
    held_out: list[pathlib.Path]
    """The last crops in time."""
    calibrate_images: torch.Tensor
    """[len(calibrate), 3, 224, 224] f32, ImageNet-normalised (data.from_rgb8)."""
    held_out_images: torch.Tensor
    """[len(held_out), 3, 224, 224], likewise."""


def time_order(paths: list[pathlib.Path]) -> list[pathlib.Path]:
    """By frame id, then track id, for files named `t{track}-f{frame}.png`; any other files
    come after those, by name."""

    def key(p: pathlib.Path):
        m = NAME.fullmatch(p.name)
        return (0, int(m[2]), int(m[1]), p.name) if m else (1, 0, 0, p.name)

    return sorted(paths, key=key)


def split(paths: list[pathlib.Path], holdout: float, cap: int) -> tuple[list, list]:
    """(calibrate, held_out) of `paths` in time order: held out the last floor(n × holdout)
    crops (at least 1), calibrate on at most `cap` of the others, evenly spaced.

    # Errors
    ValueError if there are fewer than 2 crops."""
    ordered = time_order(paths)
    n = len(ordered)
    if n < 2:
        raise ValueError(f"{n} crop; need at least 2 (to calibrate on the earlier ones and hold "
                         "out the last in time)")
    held = min(max(1, math.floor(n * holdout + 1e-9)), n - 1)
    rest = ordered[:n - held]
    if len(rest) > cap:
        rest = [rest[i] for i in np.linspace(0, len(rest) - 1, cap).round().astype(int)]
    return rest, ordered[n - held:]


def read(path: pathlib.Path) -> np.ndarray:
    """One crop as [224, 224, 3] uint8 RGB.

    # Errors
    ValueError naming the file if it cannot be read or is not a 224×224 8-bit RGB image."""
    from skimage import io

    try:
        img = io.imread(str(path))
    except Exception as e:  # noqa: BLE001: whatever the decoder raises, say which file
        raise ValueError(f"{path}: cannot read it as a PNG ({e}); expected {EXPECTED}") from None
    if img.shape != (SIZE, SIZE, 3) or img.dtype != np.uint8:
        raise ValueError(f"{path}: {describe(img)}; expected {EXPECTED}")
    return img


def describe(img: np.ndarray) -> str:
    """For error messages: "100×100 RGBA (uint8)" and the like."""
    if img.ndim not in (2, 3):
        return f"an image of shape {img.shape}"
    channels = 1 if img.ndim == 2 else img.shape[2]
    kind = {1: "grayscale", 2: "grayscale + alpha", 3: "RGB", 4: "RGBA"}.get(channels, f"{channels}-channel")
    return f"{img.shape[1]}×{img.shape[0]} {kind} ({img.dtype})"


def load(directory: pathlib.Path, holdout: float, cap: int) -> Scene:
    """The PNG crops in `directory`, every one checked, split by `split`.

    # Errors
    ValueError if the directory is missing, holds no PNG or fewer than 2, or any PNG is not a
    224×224 8-bit RGB image."""
    hint = f"collect crops of the scene with `smplcast run --save-crops {directory}`"
    if not directory.is_dir():
        raise ValueError(f"{directory}: not a directory; {hint}")
    paths = [p for p in directory.iterdir() if p.suffix.lower() == ".png" and p.is_file()]
    if not paths:
        raise ValueError(f"{directory}: no .png files; {hint}")
    try:
        calibrate, held_out = split(paths, holdout, cap)
    except ValueError as e:
        raise ValueError(f"{directory}: {e}; {hint}") from None
    wanted = set(calibrate) | set(held_out)
    loaded = {}
    for p in time_order(paths):
        img = read(p)  # every file, so that a bad one is found whichever part it falls in
        if p in wanted:
            loaded[p] = data.from_rgb8(img)
    return Scene(directory, len(paths), calibrate, held_out,
                 torch.stack([loaded[p] for p in calibrate]),
                 torch.stack([loaded[p] for p in held_out]))
