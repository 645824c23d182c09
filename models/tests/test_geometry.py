"""Checks the torch geometry reference (smplcast_models.geometry) against scipy.

Run from the repository root:  python -m pytest models/tests
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smplcast_models.geometry import (  # noqa: E402
    axis_angle_to_rotmat,
    crop_cam_to_orig,
    rot6d_to_rotmat,
    rotmat_to_axis_angle,
)

SEED = 1234
PI = math.pi


def sixd_of(r: np.ndarray) -> np.ndarray:
    """6D encoding of rotation matrices [..., 3, 3]: first two columns, row-major."""
    return r[..., :, :2].reshape(*r.shape[:-2], 6)


def assert_same_rotation_vectors(got: np.ndarray, want: np.ndarray, atol: float) -> None:
    """Axis-angle equality; near pi, where the axis sign is ambiguous, compare rotations."""
    angle = np.linalg.norm(want, axis=-1)
    far = angle < PI - 1e-2
    np.testing.assert_allclose(got[far], want[far], rtol=0, atol=atol)
    np.testing.assert_allclose(
        Rotation.from_rotvec(got).as_matrix(), Rotation.from_rotvec(want).as_matrix(), atol=atol
    )
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), angle, rtol=0, atol=atol)


def test_rot6d_recovers_rotation_from_its_first_two_columns() -> None:
    r = Rotation.random(1000, random_state=SEED).as_matrix()
    got = rot6d_to_rotmat(torch.tensor(sixd_of(r))).numpy()
    np.testing.assert_allclose(got, r, rtol=0, atol=1e-12)


def test_rot6d_is_gram_schmidt_of_the_columns() -> None:
    x = np.random.default_rng(SEED).standard_normal((1000, 6)) * 3
    r = rot6d_to_rotmat(torch.tensor(x)).numpy()
    eye = np.broadcast_to(np.eye(3), r.shape)
    np.testing.assert_allclose(np.swapaxes(r, -1, -2) @ r, eye, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    a1, a2 = x[:, 0::2], x[:, 1::2]
    np.testing.assert_allclose(r[:, :, 0], a1 / np.linalg.norm(a1, axis=-1, keepdims=True))
    # b2 lies in span(a1, a2) with a positive a2 component.
    assert (np.einsum("bi,bi->b", r[:, :, 1], a2) > 0).all()
    np.testing.assert_allclose(np.einsum("bij,bj->bi", np.linalg.pinv(r), a2)[:, 2], 0, atol=1e-9)


def test_rot6d_float32_matches_float64() -> None:
    # Same float32 inputs on both sides; what remains is float32 arithmetic, amplified where
    # a2 is nearly parallel to a1. 1e-5 is the tolerance the Rust tests use.
    x = np.random.default_rng(SEED).standard_normal((500, 6)).astype(np.float32)
    r64 = rot6d_to_rotmat(torch.tensor(x, dtype=torch.float64)).numpy()
    r32 = rot6d_to_rotmat(torch.tensor(x))
    assert r32.dtype == torch.float32
    np.testing.assert_allclose(r32.numpy(), r64, rtol=0, atol=1e-5)


def test_axis_angle_matches_scipy_on_random_rotations() -> None:
    rot = Rotation.random(5000, random_state=SEED)
    got = rotmat_to_axis_angle(torch.tensor(rot.as_matrix())).numpy()
    assert_same_rotation_vectors(got, rot.as_rotvec(), atol=1e-10)


@pytest.mark.parametrize(
    "angle", [0.0, 1e-12, 1e-8, 1e-6, 1e-3, PI / 2, PI - 1e-3, PI - 1e-5, PI - 1e-6, PI - 1e-9, PI]
)
def test_axis_angle_matches_scipy_at_special_angles(angle: float) -> None:
    rng = np.random.default_rng(SEED)
    axes = np.concatenate([np.eye(3), -np.eye(3), rng.standard_normal((20, 3))])
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    rot = Rotation.from_rotvec(axes * angle)
    got = rotmat_to_axis_angle(torch.tensor(rot.as_matrix())).numpy()
    assert_same_rotation_vectors(got, rot.as_rotvec(), atol=1e-10)
    assert (np.linalg.norm(got, axis=-1) <= PI + 1e-12).all()


def test_axis_angle_from_float32_matrices() -> None:
    rot = Rotation.random(2000, random_state=SEED + 1)
    m32 = torch.tensor(rot.as_matrix(), dtype=torch.float32)
    got = rotmat_to_axis_angle(m32)
    assert got.dtype == torch.float32
    want = Rotation.from_matrix(m32.double().numpy()).as_rotvec()
    assert_same_rotation_vectors(got.double().numpy(), want, atol=1e-5)


def test_rodrigues_matches_scipy_and_round_trips() -> None:
    rng = np.random.default_rng(SEED)
    aa = rng.standard_normal((2000, 3))
    aa *= (rng.uniform(0, PI, 2000) / np.linalg.norm(aa, axis=-1))[:, None]
    aa[:3] = [[0, 0, 0], [1e-9, 0, 0], [0, 0, PI]]
    r = axis_angle_to_rotmat(torch.tensor(aa)).numpy()
    np.testing.assert_allclose(r, Rotation.from_rotvec(aa).as_matrix(), atol=1e-12)
    back = rotmat_to_axis_angle(torch.tensor(r)).numpy()
    assert_same_rotation_vectors(back, aa, atol=1e-10)


def test_batch_shapes() -> None:
    x = torch.randn(2, 5, 24, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    r = rot6d_to_rotmat(x)
    assert r.shape == (2, 5, 24, 3, 3)
    assert rotmat_to_axis_angle(r).shape == (2, 5, 24, 3)
    flat = rotmat_to_axis_angle(r.reshape(-1, 3, 3)).reshape(2, 5, 24, 3)
    torch.testing.assert_close(rotmat_to_axis_angle(r), flat, rtol=0, atol=1e-15)


def test_crop_cam_reprojects_to_the_same_pixels() -> None:
    rng = np.random.default_rng(SEED)
    for img_w, img_h in [(1920.0, 1080.0), (640.0, 480.0), (720.0, 1280.0)]:
        cam = np.stack(
            [rng.uniform(0.5, 1.2, 50), rng.uniform(-0.3, 0.3, 50), rng.uniform(-0.3, 0.3, 50)], -1
        )
        bbox = np.stack(
            [rng.uniform(0, img_w, 50), rng.uniform(0, img_h, 50), rng.uniform(80, 700, 50)], -1
        )
        orig = crop_cam_to_orig(torch.tensor(cam), torch.tensor(bbox), img_w, img_h).numpy()
        pts = rng.uniform(-1, 1, (50, 2))
        s, tx, ty = cam.T
        cx, cy, h = bbox.T
        sx, sy, otx, oty = orig.T
        np.testing.assert_allclose(
            cx + s * (pts[:, 0] + tx) * h / 2, img_w / 2 * (1 + sx * (pts[:, 0] + otx)), atol=1e-9
        )
        np.testing.assert_allclose(
            cy + s * (pts[:, 1] + ty) * h / 2, img_h / 2 * (1 + sy * (pts[:, 1] + oty)), atol=1e-9
        )
