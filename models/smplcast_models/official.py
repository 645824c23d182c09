"""Reading the official MPS-Net/SPIN files, and writing random checkpoints in their format (for
tests of the converter; the real weights live on a file host that machines here cannot reach)."""
from __future__ import annotations

import pathlib

import numpy as np
import torch

from .mpsnet import Dims, load_official, random_init

SPIN_FILE = "spin_model_checkpoint.pth.tar"
MPSNET_FILE = "mpsnet_model_best.pth.tar"
MEAN_FILE = "smpl_mean_params.npz"


def _state_dict(path: pathlib.Path, key: str) -> dict:
    ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or key not in ckpt:
        found = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path}: expected a checkpoint with the state dict under key {key!r} "
                         f"(the official release's layout); found {found}")
    return ckpt[key]


def load(spin: pathlib.Path, mpsnet: pathlib.Path, mean_params: pathlib.Path | None):
    spin_sd = _state_dict(spin, "model")
    mps_sd = _state_dict(mpsnet, "gen_state_dict")
    means = dict(np.load(str(mean_params))) if mean_params else None
    return load_official(spin_sd, mps_sd, means)


def write_random(out: pathlib.Path, seed: int) -> None:
    """Full-size random checkpoints laid out like the official ones, including keys the converter
    must ignore: SPIN's own regression head and SMPL body-model buffers (random stand-ins here)."""
    backbone, head = random_init(seed, Dims.full())
    g = torch.Generator().manual_seed(seed + 1)
    spin_sd = dict(backbone.state_dict())
    spin_sd.update({k: torch.randn(v.shape, generator=g) for k, v in head.regressor.state_dict().items()})
    mps_sd = dict(head.state_dict())
    mps_sd.update({"regressor.smpl.v_template": torch.randn(10, 3, generator=g),
                   "regressor.smpl.shapedirs": torch.randn(10, 3, 10, generator=g)})
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 0, "model": spin_sd}, str(out / SPIN_FILE))
    torch.save({"epoch": 0, "gen_state_dict": mps_sd, "performance": 0.0}, str(out / MPSNET_FILE))
    reg = head.regressor
    np.savez(str(out / MEAN_FILE), pose=reg.init_pose[0].numpy().astype(np.float64),
             shape=reg.init_shape[0].numpy().astype(np.float64), cam=reg.init_cam[0].numpy().astype(np.float64))
