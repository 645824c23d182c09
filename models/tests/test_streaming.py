"""The streaming form (TemporalFrame per frame + TemporalStep per window) equals TemporalHead."""
from __future__ import annotations

import pytest
import torch

from helpers import rel_diff
from smplcast_models import data
from smplcast_models.export import HEAD_OUTPUTS, STEP_INPUTS, frame_inputs
from smplcast_models.mpsnet import FRAME_OUTPUTS, TemporalFrame, TemporalStep

TOL = 1e-5


def _windows(kind: str, head, real):
    feat = head.dims.feat
    if kind == "small":
        return data.small_windows(3, feat, seed=31)
    if kind == "x10":
        return 10 * data.small_windows(2, feat, seed=32)
    return real  # backbone features of photo crops


@torch.no_grad()
@pytest.mark.parametrize("size", ("narrow", "full"))
@pytest.mark.parametrize("kind", ("small", "x10", "real"))
def test_step_equals_head(size, kind, request):
    _, head = request.getfixturevalue(f"{size}_model")
    w = _windows(kind, head, request.getfixturevalue(f"{size}_real_windows"))
    ref = head(w)
    feeds = frame_inputs(head, w)
    assert tuple(feeds) == STEP_INPUTS
    got = TemporalStep(head)(*(feeds[k] for k in STEP_INPUTS))
    for name, r, g in zip(HEAD_OUTPUTS, ref, got):
        assert r.shape == g.shape
        assert rel_diff(r, g) <= TOL, f"{size} {kind} {name}: {rel_diff(r, g):.2e}"
    # Batched step == each window alone (the daemon batches people).
    for i in range(w.shape[0]):
        alone = TemporalStep(head)(*(feeds[k][i:i + 1] for k in STEP_INPUTS))
        for name, r, g in zip(HEAD_OUTPUTS, ref, alone):
            assert rel_diff(r[i:i + 1], g) <= TOL, f"{size} {kind} window {i} {name}"


@torch.no_grad()
def test_frame_outputs_are_per_frame(narrow_model):
    """The frame graph's projections of a frame do not depend on the other frames of the batch,
    so the daemon can cache them when the frame arrives."""
    _, head = narrow_model
    x = data.small_windows(1, head.dims.feat, seed=33)[0]  # 16 frames as a batch
    frame = TemporalFrame(head)
    together = frame(x)
    assert len(together) == len(FRAME_OUTPUTS)
    for j in (0, 7, 15):
        alone = frame(x[j:j + 1])
        for name, a, b in zip(FRAME_OUTPUTS, together, alone):
            assert rel_diff(a[j:j + 1], b) <= TOL, name
