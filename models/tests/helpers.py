"""Helpers shared by the model tests (imported as `helpers`; conftest.py puts this folder on
sys.path)."""
from __future__ import annotations

import torch

from smplcast_models import data


def rel_diff(ref: torch.Tensor, got: torch.Tensor) -> float:
    """max |ref - got| / max |ref| (as parity.py's max_rel_to_scale), in float64."""
    ref, got = ref.detach().double(), got.detach().double()
    assert ref.shape == got.shape, (ref.shape, got.shape)
    scale = ref.abs().max().item()
    d = (ref - got).abs().max().item()
    return d / scale if scale > 0 else d


def real_windows(backbone, count: int, seed: int) -> torch.Tensor:
    """Backbone features of `count` clips of drifting photo crops: [count, 16, feat]. With
    random weights these have the scale of real ResNet features (norms of order 100), so MoCA's
    softmaxes are saturated."""
    clips = data.clips(count, seed=seed)
    with torch.no_grad():
        return backbone(clips.reshape(-1, 3, 224, 224)).reshape(count, 16, -1)
