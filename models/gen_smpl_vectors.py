#!/usr/bin/env python3
"""Write tests/data/smpl_vectors.json, the reference vectors for src/smpl.rs.

Run from the repository root:  python models/gen_smpl_vectors.py

Every value comes from the PyTorch reference in models/smplcast_models/geometry.py and
is checked here, before anything is written, against independent computations:
scipy.spatial.transform.Rotation for rotations (axis-angle compared directly, or, near pi
where the axis sign is ambiguous, through the rotation it describes), and pixel
reprojection for cameras. Deterministic (fixed seed), so re-running gives the same file.

Inputs (6D, cameras) are rounded to float32 first, since that is what the Rust code
receives; expected outputs are computed from those float32 values in float64.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "models"))

from smplcast_models.geometry import (  # noqa: E402
    axis_angle_to_rotmat,
    crop_cam_to_orig,
    rot6d_to_rotmat,
    rotmat_to_axis_angle,
)

OUT = ROOT / "tests" / "data" / "smpl_vectors.json"
SEED = 20240611
PI = math.pi
# Reference angles above this are compared through rotation matrices (axis sign ambiguity).
NEAR_PI = PI - 1e-2


def sixd_from_rotmat(r: np.ndarray) -> np.ndarray:
    """First two columns of R, row-major: [R00, R01, R10, R11, R20, R21]."""
    return r[:, :2].reshape(6)


def rotation_cases(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    cases: list[tuple[str, np.ndarray]] = [("identity", np.array([1, 0, 0, 1, 0, 0], float))]
    for i in range(32):
        cases.append((f"random_normal_{i}", rng.standard_normal(6)))
    for i, mag in enumerate([1e-3, 1e-2, 10.0, 1e3]):
        cases.append((f"random_scaled_{i}", mag * rng.standard_normal(6)))
    axes = [
        np.array([1.0, 0, 0]),
        np.array([0, 1.0, 0]),
        np.array([0, 0, 1.0]),
        np.array([1.0, 1.0, 0]) / math.sqrt(2),
        np.array([-1.0, 2.0, 3.0]) / math.sqrt(14),
    ]
    axes += [v / np.linalg.norm(v) for v in rng.standard_normal((2, 3))]
    for a, axis in enumerate(axes):
        for label, angle in [
            ("small_1e-6", 1e-6),
            ("small_1e-3", 1e-3),
            ("generic_1", 1.0),
            ("half_pi", PI / 2),
            ("near_pi_1e-3", PI - 1e-3),
            ("near_pi_1e-5", PI - 1e-5),
            ("near_pi_1e-6", PI - 1e-6),
            ("pi", PI),
        ]:
            r = Rotation.from_rotvec(axis * angle).as_matrix()
            cases.append((f"{label}_axis{a}", sixd_from_rotmat(r)))
    for i, r in enumerate(Rotation.random(16, random_state=SEED).as_matrix()):
        cases.append((f"random_rotation_{i}", sixd_from_rotmat(r)))
    return cases


def check_rotation(name: str, sixd: np.ndarray, r: np.ndarray, aa: np.ndarray) -> None:
    """Assert the torch results against independent computations."""
    # Proper rotation, and Gram-Schmidt of the 6D columns.
    assert np.abs(r.T @ r - np.eye(3)).max() < 1e-12, name
    assert abs(np.linalg.det(r) - 1.0) < 1e-12, name
    a1, a2 = sixd[0::2], sixd[1::2]
    assert np.allclose(r[:, 0], a1 / np.linalg.norm(a1), atol=1e-12), name
    b2 = a2 - (r[:, 0] @ a2) * r[:, 0]
    assert np.allclose(r[:, 1], b2 / np.linalg.norm(b2), atol=1e-12), name
    # float32 torch path agrees with the float64 one.
    r32 = rot6d_to_rotmat(torch.tensor(sixd, dtype=torch.float32)).numpy()
    assert np.abs(r32 - r).max() < 1e-6, (name, np.abs(r32 - r).max())
    # Axis-angle against scipy.
    ref = Rotation.from_matrix(r).as_rotvec()
    angle = np.linalg.norm(aa)
    assert 0.0 <= angle <= PI + 1e-12, name
    assert abs(angle - np.linalg.norm(ref)) < 1e-9, (name, angle, np.linalg.norm(ref))
    if np.linalg.norm(ref) < NEAR_PI:
        assert np.abs(aa - ref).max() < 1e-9, (name, aa, ref)
    r_back = Rotation.from_rotvec(aa).as_matrix()
    assert np.abs(r_back - r).max() < 1e-9, (name, np.abs(r_back - r).max())
    r_rod = axis_angle_to_rotmat(torch.tensor(aa)).numpy()
    assert np.abs(r_rod - r).max() < 1e-12, name


def camera_cases(rng: np.random.Generator) -> list[dict]:
    out = []
    for img_w, img_h in [(1920.0, 1080.0), (640.0, 480.0), (1280.0, 720.0), (720.0, 1280.0)]:
        for _ in range(3):
            cam = np.array(
                [rng.uniform(0.5, 1.2), rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3)]
            ).astype(np.float32).astype(np.float64)
            bbox = np.array(
                [rng.uniform(0, img_w), rng.uniform(0, img_h), rng.uniform(80, 700)]
            ).astype(np.float32).astype(np.float64)
            orig = crop_cam_to_orig(
                torch.tensor(cam), torch.tensor(bbox), img_w, img_h
            ).numpy()
            # Independent check: crop route and image route land on the same pixels.
            pts = rng.uniform(-1, 1, size=(8, 2))
            s, tx, ty = cam
            cx, cy, h = bbox
            crop_px = np.stack(
                (cx + s * (pts[:, 0] + tx) * h / 2, cy + s * (pts[:, 1] + ty) * h / 2), -1
            )
            sx, sy, otx, oty = orig
            img_px = np.stack(
                (
                    img_w / 2 * (1 + sx * (pts[:, 0] + otx)),
                    img_h / 2 * (1 + sy * (pts[:, 1] + oty)),
                ),
                -1,
            )
            assert np.abs(crop_px - img_px).max() < 1e-9, np.abs(crop_px - img_px).max()
            out.append(
                {
                    "crop_cam": cam.tolist(),
                    "bbox": bbox.tolist(),
                    "img": [img_w, img_h],
                    "orig_cam": orig.tolist(),
                }
            )
    return out


def dump(doc: dict) -> str:
    """JSON with one case per line, so a regenerated file diffs readably."""
    lines = ["{"]
    for key, value in doc.items():
        if isinstance(value, list):
            items = ",\n".join("  " + json.dumps(v) for v in value)
            lines.append(f"{json.dumps(key)}: [\n{items}\n ],")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value)},")
    lines[-1] = lines[-1].rstrip(",")
    return "\n".join(lines) + "\n}\n"


def main() -> None:
    rng = np.random.default_rng(SEED)
    rotations = []
    for name, sixd in rotation_cases(rng):
        sixd = sixd.astype(np.float32).astype(np.float64)  # what the Rust side receives
        r = rot6d_to_rotmat(torch.tensor(sixd)).numpy()
        aa = rotmat_to_axis_angle(torch.tensor(r)).numpy()
        check_rotation(name, sixd, r, aa)
        rotations.append(
            {
                "name": name,
                "sixd": sixd.tolist(),
                "rotmat": r.tolist(),
                "axis_angle": aa.tolist(),
            }
        )

    # The batched torch path agrees with the per-case results.
    batch = torch.tensor([c["sixd"] for c in rotations], dtype=torch.float64)
    aa_batch = rotmat_to_axis_angle(rot6d_to_rotmat(batch)).numpy()
    diff = np.abs(aa_batch - np.array([c["axis_angle"] for c in rotations])).max()
    assert diff < 1e-12, diff

    doc = {
        "generator": "models/gen_smpl_vectors.py",
        "reference": "models/smplcast_models/geometry.py (torch, float64 from float32 inputs)",
        "seed": SEED,
        "torch": torch.__version__,
        "rotations": rotations,
        "cameras": camera_cases(rng),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(dump(doc))
    n_cam = len(doc["cameras"])
    print(f"wrote {OUT.relative_to(ROOT)}: {len(rotations)} rotations, {n_cam} cameras")


if __name__ == "__main__":
    main()
