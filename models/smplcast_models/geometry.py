"""PyTorch reference for the SMPL output geometry that the daemon computes in Rust.

This module is the ground truth for ``src/smpl.rs``: ``models/gen_smpl_vectors.py``
evaluates it (cross-checked against ``scipy.spatial.transform.Rotation``) and writes
``tests/data/smpl_vectors.json``, which the Rust tests load.

Conventions:

* 6D rotations follow Zhou et al., "On the Continuity of Rotation Representations in
  Neural Networks" (CVPR 2019), in the memory layout used by SPIN
  (https://github.com/nkolot/SPIN, ``models/hmr.py`` / ``utils/geometry.py``) and hence by
  VIBE and MPS-Net: the six numbers are a row-major 3x2 matrix whose two columns are
  Gram-Schmidt orthonormalised into the first two columns of the rotation matrix. The code
  here is written from that description, not copied.
* Axis-angle vectors are ``axis * angle`` with ``angle`` in ``[0, pi]``.
* Cameras are weak-perspective, ``[s, tx, ty]`` in normalised crop coordinates, and
  ``[sx, sy, tx, ty]`` in normalised image coordinates (see :func:`crop_cam_to_orig`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "axis_angle_to_rotmat",
    "crop_cam_to_orig",
    "rot6d_to_rotmat",
    "rotmat_to_axis_angle",
]


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """Convert 6D rotations ``[..., 6]`` to rotation matrices ``[..., 3, 3]``.

    ``x`` viewed as ``[..., 3, 2]`` (row-major) gives columns ``a1 = x[..., 0::2]`` and
    ``a2 = x[..., 1::2]``; ``b1 = normalize(a1)``, ``b2 = normalize(a2 - (b1.a2) b1)``,
    ``b3 = b1 x b2``; the result has columns ``b1, b2, b3``. The computation stays in the
    input dtype, like the network head.
    """
    if x.shape[-1] != 6:
        raise ValueError(f"expected [..., 6], got {tuple(x.shape)}")
    m = x.reshape(*x.shape[:-1], 3, 2)
    a1 = m[..., 0]
    a2 = m[..., 1]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(dim=-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def rotmat_to_axis_angle(rotmat: torch.Tensor) -> torch.Tensor:
    """Convert rotation matrices ``[..., 3, 3]`` to axis-angle ``[..., 3]``.

    Computed in float64 and returned in the input dtype. Written from
    ``R = cos(t) I + sin(t) [k]x + (1 - cos(t)) k k^T``:

    * ``cos(t) = (trace(R) - 1) / 2`` (clamped), ``w = vee(R - R^T) / 2 = sin(t) k``,
      ``t = atan2(|w|, cos(t))`` in ``[0, pi]``;
    * ``cos(t) >= 0``: result ``w * t / |w|`` (zero when ``w = 0``);
    * ``cos(t) < 0``: ``k k^T = (sym(R) - cos(t) I) / (1 - cos(t))``; ``k`` is its column with
      the largest diagonal entry over the square root of that entry, with the sign that
      makes ``k . w >= 0``. Well conditioned up to and including ``t = pi``, where the sign
      is arbitrary (both describe the same rotation).
    """
    if rotmat.shape[-2:] != (3, 3):
        raise ValueError(f"expected [..., 3, 3], got {tuple(rotmat.shape)}")
    r = rotmat.to(torch.float64)
    w = 0.5 * torch.stack(
        (
            r[..., 2, 1] - r[..., 1, 2],
            r[..., 0, 2] - r[..., 2, 0],
            r[..., 1, 0] - r[..., 0, 1],
        ),
        dim=-1,
    )
    cos = (0.5 * (r.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0)).clamp(-1.0, 1.0)
    sin = w.norm(dim=-1)
    theta = torch.atan2(sin, cos)

    # Small and moderate angles: skew part.
    factor = torch.where(sin > 0, theta / torch.where(sin > 0, sin, 1.0), 0.0)
    aa_skew = w * factor.unsqueeze(-1)

    # Large angles: symmetric part. 1 - cos >= 1 where this branch is used.
    eye = torch.eye(3, dtype=r.dtype, device=r.device)
    sym = 0.5 * (r + r.transpose(-1, -2))
    kkt = (sym - cos[..., None, None] * eye) / (1.0 - cos).clamp_min(1.0)[..., None, None]
    diag = kkt.diagonal(dim1=-2, dim2=-1)
    col = diag.argmax(dim=-1)
    idx = col[..., None, None].expand(*kkt.shape[:-1], 1)
    k = torch.gather(kkt, -1, idx).squeeze(-1)  # kkt[..., :, col]
    d = torch.gather(diag, -1, col[..., None]).squeeze(-1)
    k = F.normalize(k / d.clamp_min(1e-300).sqrt().unsqueeze(-1), dim=-1)
    sign = torch.where((k * w).sum(dim=-1) < 0, -1.0, 1.0).to(r.dtype)
    aa_sym = k * (sign * theta).unsqueeze(-1)

    use_sym = (cos < 0) & (d > 0)
    return torch.where(use_sym.unsqueeze(-1), aa_sym, aa_skew).to(rotmat.dtype)


def axis_angle_to_rotmat(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: axis-angle ``[..., 3]`` to rotation matrices ``[..., 3, 3]``.

    ``R = I + (sin t / t) K + ((1 - cos t) / t^2) K^2`` with ``K = [aa]x``; the second
    coefficient is evaluated as ``2 (sin(t/2) / t)^2``. Computed in float64.
    """
    v = aa.to(torch.float64)
    t = v.norm(dim=-1)
    small = t < 1e-8
    ts = torch.where(small, 1.0, t)
    a = torch.where(small, 1.0, torch.sin(ts) / ts)
    h = torch.sin(0.5 * ts) / ts
    b = torch.where(small, 0.5, 2.0 * h * h)
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    kmat = torch.stack(
        (
            torch.stack((zero, -z, y), dim=-1),
            torch.stack((z, zero, -x), dim=-1),
            torch.stack((-y, x, zero), dim=-1),
        ),
        dim=-2,
    )
    eye = torch.eye(3, dtype=v.dtype, device=v.device)
    r = eye + a[..., None, None] * kmat + b[..., None, None] * (kmat @ kmat)
    return r.to(aa.dtype)


def crop_cam_to_orig(
    cam: torch.Tensor, bbox: torch.Tensor, img_w: float, img_h: float
) -> torch.Tensor:
    """Re-express a weak-perspective crop camera in normalised full-image coordinates.

    ``cam``: ``[..., 3]`` = ``(s, tx, ty)``; a point ``X`` lands at ``u = s (X + tx)`` in
    ``[-1, 1]`` crop coordinates, i.e. at pixel ``cx + u h / 2``. ``bbox``: ``[..., 3]`` =
    ``(cx, cy, h)``, the square crop's centre and side in pixels. Returns ``[..., 4]`` =
    ``(sx, sy, tx', ty')`` with ``(x - W/2) / (W/2) = sx (X + tx')``:
    ``sx = s h / W``, ``tx' = tx + (cx - W/2) / ((W/2) sx)``, and likewise for y with ``H``.
    """
    s, tx, ty = cam.unbind(-1)
    cx, cy, h = bbox.unbind(-1)
    hw, hh = 0.5 * img_w, 0.5 * img_h
    sx = s * h / img_w
    sy = s * h / img_h
    return torch.stack((sx, sy, tx + (cx - hw) / (hw * sx), ty + (cy - hh) / (hh * sy)), dim=-1)
