#!/usr/bin/env python3
"""A synthetic SMPL model file and reference joints for src/joints.rs (tests/joints.rs).

    python models/gen_joints_vectors.py OUT_DIR

Writes OUT_DIR/smpl_synthetic.npz, laid out like the smplx package's SMPL_NEUTRAL.npz
(v_template 6890×3, shapedirs 6890×3×16, J_regressor 24×6890 dense, kintree_table 2×24 uint32
with 2³² − 1 for the root, all float64) but random: no real SMPL data is ever in the
repository. And OUT_DIR/joints_vectors.json: for several (θ, β), the 24 posed joints from
the reference below, a direct numpy transcription of SMPL's forward kinematics as the smplx
package writes it (`batch_rodrigues`, `batch_rigid_transform` in smplx/lbs.py), computed in
float64 from the float32 inputs the daemon receives. Deterministic (fixed seed).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

# SMPL's kinematic tree (the parent of each joint).
PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
VERTICES, SHAPES = 6890, 16


def rodrigues(rvec: np.ndarray) -> np.ndarray:
    """smplx's batch_rodrigues for one vector (it adds 1e-8 to the angle; here the exact
    formula, with the identity at zero)."""
    angle = np.linalg.norm(rvec)
    if angle == 0.0:
        return np.eye(3)
    k = rvec / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def posed_joints(model: dict, pose: np.ndarray, betas: np.ndarray) -> np.ndarray:
    shaped = model["v_template"] + model["shapedirs"][:, :, :10] @ betas
    rest = model["J_regressor"] @ shaped
    parents = model["kintree_table"][0].astype(np.int64)
    transforms = []
    for k in range(24):
        local = np.eye(4)
        local[:3, :3] = rodrigues(pose[3 * k:3 * k + 3])
        if k == 0:
            local[:3, 3] = rest[0]
            transforms.append(local)
        else:
            p = parents[k]
            local[:3, 3] = rest[k] - rest[p]
            transforms.append(transforms[p] @ local)
    return np.stack([t[:3, 3] for t in transforms])


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261126)
    tree = np.array([[2**32 - 1] + PARENTS[1:], list(range(24))], dtype=np.uint32)
    # A body-sized template; each joint regressed from a few dozen vertices, as in SMPL.
    template = rng.normal(0.0, 0.3, (VERTICES, 3))
    regressor = np.zeros((24, VERTICES))
    for j in range(24):
        idx = rng.choice(VERTICES, 40, replace=False)
        w = rng.random(40)
        regressor[j, idx] = w / w.sum()
    model = {
        "v_template": template,
        "shapedirs": rng.normal(0.0, 0.01, (VERTICES, 3, SHAPES)),
        "J_regressor": regressor,
        "kintree_table": tree,
        # Present in real files, unused by the joints.
        "f": rng.integers(0, VERTICES, (13776, 3)).astype(np.uint32),
    }
    np.savez(out / "smpl_synthetic.npz", **model)
    cases = []
    for i in range(8):
        scale = [0.0, 0.3, 1.0, 2.5][i % 4]
        pose = (rng.normal(0.0, scale, 72)).astype(np.float32)
        if i == 1:
            pose[:] = np.float32(1e-7)  # near-zero angles: the series branch
        betas = rng.normal(0.0, 1.5, 10).astype(np.float32)
        joints = posed_joints(model, pose.astype(np.float64), betas.astype(np.float64))
        cases.append({"pose": pose.tolist(), "shape": betas.tolist(), "joints": joints.tolist()})
    (out / "joints_vectors.json").write_text(json.dumps({"cases": cases}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
