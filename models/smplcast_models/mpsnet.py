"""MPS-Net inference path in PyTorch, re-implemented for export to ONNX.

Architecture and parameter names follow the official release (MIT licence):
  https://github.com/MPS-Net/MPS-Net_release  lib/models/mpsnet.py (TemporalEncoder = MoCA + HAFI,
  TemporalAttention), lib/models/spin.py (SPIN's HMR ResNet-50 backbone and iterative Regressor,
  itself from https://github.com/nkolot/SPIN models/hmr.py).
Wei et al., "Capturing Humans in Motion: Temporal-Attentive 3D Human Pose and Shape Estimation from
Monocular Video", CVPR 2022.

State-dict keys and shapes equal the official checkpoints', so the official files load with
`load_official` (strict, apart from keys the daemon does not need):
  - spin_model_checkpoint.pth.tar, key `model`: backbone `conv1`, `bn1`, `layer1..4`;
  - mpsnet_model_best.pth.tar, key `gen_state_dict`: `nonlocalblock.*`, `regressor.*`.

Differences from the official code, all intended:
  - Linear layers and the kernel-1 Conv1d projections are written as matmuls so they export as
    ONNX MatMul (tract and onnxruntime quantize MatMul to integer kernels; Gemm they do not).
  - The two T×T maps that MoCA mixes with `conv_mask_forR` are combined per sample. The official
    code stacks them with `cat(dim=0)` + `view`, which mixes samples when the batch is larger than
    one; for batch one both are identical.
  - Dropout is the identity (inference only) and SMPL itself is not part of the graph: the outputs
    are the regressor's 6D pose (24 × 6), shape β (10) and weak-perspective crop camera (3).

Besides the full-window head (`TemporalHead`) this module defines its streaming form, which gives
the same outputs from per-frame caches (see `TemporalFrame` and `TemporalStep`):
  frame graph  : one new frame's feature -> its projections (theta, phi, fx, fm, rx, rm)
  step graph   : the window's cached projections -> pose6d, shape, cam for the centre frame
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 16
NPOSE = 24 * 6
# MoCA outputs that HAFI reads, as in the official TemporalEncoder.forward.
BEF = (4, 5, 6)
CUR = (7, 8, 9)
AFT = (10, 11, 12)
HAFI_FIRST = BEF[0]
HAFI_ROWS = AFT[-1] + 1 - BEF[0]  # frames 4..12
CENTRE = 8


@dataclasses.dataclass(frozen=True)
class Dims:
    """Widths of the network. `full()` is the published MPS-Net; `narrow()` the same graph with
    every width divided by eight, for small committed test fixtures."""

    width: int = 64  # ResNet base width (conv1 channels)
    att_hidden: int = 256  # HAFI hidden size
    reg_hidden: int = 1024  # regressor fc1/fc2 width

    @property
    def feat(self) -> int:  # backbone feature size, 2048 for ResNet-50
        return self.width * 32

    @property
    def inter(self) -> int:  # MoCA projection size
        return self.feat // 2

    @staticmethod
    def full() -> "Dims":
        return Dims()

    @staticmethod
    def narrow() -> "Dims":
        return Dims(width=8, att_hidden=32, reg_hidden=128)

    def to_json(self) -> dict:
        return {"width": self.width, "att_hidden": self.att_hidden, "reg_hidden": self.reg_hidden,
                "feat": self.feat}


def linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """`layer(x)` written so that it exports as MatMul (+ Add), never Gemm."""
    y = torch.matmul(x, layer.weight.t())
    return y if layer.bias is None else y + layer.bias


def proj(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """A kernel-1 Conv1d applied to frames laid out as [..., T, C_in] -> [..., T, C_out]."""
    return torch.matmul(x, conv.weight[:, :, 0].t())


# --------------------------------------------------------------------------------------------
# Backbone: SPIN's HMR ResNet-50 feature extractor (conv1 ... layer4, 7x7 average pool).


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class Backbone(nn.Module):
    """[N, 3, 224, 224] f32 RGB, ImageNet mean/std -> [N, feat] (2048 for the full model)."""

    def __init__(self, dims: Dims = Dims.full(), layers=(3, 4, 6, 3)):
        super().__init__()
        w = dims.width
        self.inplanes = w
        self.conv1 = nn.Conv2d(3, w, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(w, layers[0])
        self.layer2 = self._make_layer(w * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(w * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(w * 8, layers[3], stride=2)
        self.avgpool = nn.AvgPool2d(7, stride=1)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * 4),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


# --------------------------------------------------------------------------------------------
# MoCA + HAFI (official attribute `nonlocalblock`) and the SPIN regressor.


class TemporalAttention(nn.Module):
    """HAFI's attention: three feature vectors -> softmax weights over the three.

    The official module defines `relu` but never applies it; neither do we."""

    def __init__(self, feat: int, hidden: int, seq_len: int = 3):
        super().__init__()
        self.fc = nn.Linear(feat, hidden)
        self.attention = nn.Sequential(
            nn.Linear(hidden * seq_len, hidden), nn.Tanh(),
            nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, seq_len), nn.Tanh(),
        )

    def scores_from_fc(self, f3: torch.Tensor) -> torch.Tensor:
        """[N, 3, hidden] (already through `fc`) -> [N, 3] softmax scores."""
        h = f3.reshape(f3.shape[0], -1)
        a = self.attention
        h = torch.tanh(linear(h, a[0]))
        h = torch.tanh(linear(h, a[2]))
        h = torch.tanh(linear(h, a[4]))
        return torch.softmax(h, dim=-1)

    def forward(self, y3: torch.Tensor) -> torch.Tensor:
        """[N, 3, feat] -> score-weighted sum [N, feat]."""
        s = self.scores_from_fc(linear(y3, self.fc))
        return torch.sum(y3 * s[:, :, None], dim=1)


class TemporalEncoder(nn.Module):
    """MoCA (motion continuity attention) followed by HAFI (hierarchical attentive integration)."""

    def __init__(self, dims: Dims):
        super().__init__()
        c, i = dims.feat, dims.inter
        self.conv_phi = nn.Conv1d(c, i, kernel_size=1, bias=False)
        self.conv_theta = nn.Conv1d(c, i, kernel_size=1, bias=False)
        self.conv_g = nn.Conv1d(c, i, kernel_size=1, bias=False)
        self.conv_mask = nn.Conv1d(i, c, kernel_size=1, bias=False)
        self.conv_mask_forR = nn.Conv2d(2, 1, kernel_size=1, bias=False)
        self.attention = TemporalAttention(c, dims.att_hidden)

    def mix(self, nssm_logits: torch.Tensor, att_logits: torch.Tensor) -> torch.Tensor:
        """MoCA's Y: row-softmax of the 1x1-conv mix of the two row-softmaxed T×T maps (per sample)."""
        w = self.conv_mask_forR.weight[0, :, 0, 0]
        y = w[0] * torch.softmax(nssm_logits, dim=-1) + w[1] * torch.softmax(att_logits, dim=-1)
        return torch.softmax(y, dim=-1)

    def moca(self, x: torch.Tensor) -> torch.Tensor:
        """[N, T, C] -> [N, T, C] (MoCA output = input + attention mask)."""
        gram = torch.matmul(x, x.transpose(1, 2))  # NSSM logits, [N, T, T]
        theta = proj(x, self.conv_theta)
        phi = proj(x, self.conv_phi)
        g = proj(x, self.conv_g)
        y = self.mix(gram, torch.matmul(theta, phi.transpose(1, 2)))
        return x + proj(torch.matmul(y, g), self.conv_mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 16, C] -> [N, C], the centre frame's feature."""
        out = self.moca(x)
        att = self.attention
        bef = att(out[:, list(BEF)])
        cur = att(out[:, list(CUR)])
        aft = att(out[:, list(AFT)])
        return att(torch.stack((bef, cur, aft), dim=1))


class Regressor(nn.Module):
    """SPIN's iterative regressor (3 iterations from the SMPL mean parameters)."""

    def __init__(self, dims: Dims):
        super().__init__()
        self.fc1 = nn.Linear(dims.feat + NPOSE + 13, dims.reg_hidden)
        self.fc2 = nn.Linear(dims.reg_hidden, dims.reg_hidden)
        self.decpose = nn.Linear(dims.reg_hidden, NPOSE)
        self.decshape = nn.Linear(dims.reg_hidden, 10)
        self.deccam = nn.Linear(dims.reg_hidden, 3)
        self.register_buffer("init_pose", torch.zeros(1, NPOSE))
        self.register_buffer("init_shape", torch.zeros(1, 10))
        self.register_buffer("init_cam", torch.zeros(1, 3))

    @torch.no_grad()
    def affine(self, n_iter: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
        """(R [157, feat], r0 [157]) in float64 with `forward(x)` = R·x + r0, split as
        (pose6d 144, shape 10, cam 3).

        SPIN's regressor has no activation: fc1, dropout (the identity at inference), fc2,
        dropout, then the three output layers. One iteration maps the state s = [pose, shape,
        cam] and the feature x to s' = A s + B x + c, with W_d the output layers' rows stacked,
        A = I + W_d W_2 W_1s, B = W_d W_2 W_1x, c = W_d (W_2 b_1 + b_2) + b_d. From the mean
        s_0, n iterations give s_n = A^n s_0 + (I + A + ... + A^(n-1)) (B x + c)."""
        f64 = torch.float64
        w1 = self.fc1.weight.to(f64)
        feat = w1.shape[1] - (NPOSE + 13)
        w_dec = torch.cat([self.decpose.weight, self.decshape.weight, self.deccam.weight]).to(f64)
        b_dec = torch.cat([self.decpose.bias, self.decshape.bias, self.deccam.bias]).to(f64)
        wd2 = w_dec @ self.fc2.weight.to(f64)
        a = torch.eye(NPOSE + 13, dtype=f64) + wd2 @ w1[:, feat:]
        b = wd2 @ w1[:, :feat]
        c = wd2 @ self.fc1.bias.to(f64) + w_dec @ self.fc2.bias.to(f64) + b_dec
        power, powers = torch.eye(NPOSE + 13, dtype=f64), torch.zeros(NPOSE + 13, NPOSE + 13, dtype=f64)
        for _ in range(n_iter):
            powers += power
            power = a @ power
        s0 = torch.cat([self.init_pose, self.init_shape, self.init_cam], 1)[0].to(f64)
        return powers @ b, power @ s0 + powers @ c

    def forward(self, x: torch.Tensor, n_iter: int = 3):
        """[N, feat] -> pose6d [N, 144], shape [N, 10], cam [N, 3] (the official computation)."""
        n = x.shape[0]
        pose = self.init_pose.expand(n, -1)
        shape = self.init_shape.expand(n, -1)
        cam = self.init_cam.expand(n, -1)
        for _ in range(n_iter):
            xc = linear(torch.cat([x, pose, shape, cam], 1), self.fc1)
            xc = linear(xc, self.fc2)
            pose = linear(xc, self.decpose) + pose
            shape = linear(xc, self.decshape) + shape
            cam = linear(xc, self.deccam) + cam
        return pose, shape, cam


class TemporalHead(nn.Module):
    """The temporal part of MPS-Net (official `MPSnet` minus SMPL):
    features [N, 16, C] -> pose6d [N, 144], shape [N, 10], cam [N, 3] for the centre frame (8)."""

    def __init__(self, dims: Dims = Dims.full()):
        super().__init__()
        self.dims = dims
        self.nonlocalblock = TemporalEncoder(dims)
        self.regressor = Regressor(dims)

    def forward(self, features: torch.Tensor):
        return self.regressor(self.nonlocalblock(features))


# --------------------------------------------------------------------------------------------
# Streaming form of TemporalHead. Every linear map is applied to each frame once, when it
# arrives; a step then needs only T×T-sized work and HAFI's small attention layers.
#
# Everything after MoCA's attention weights Y and HAFI's scores is linear, so it folds into
# per-frame maps (all products formed in float64 at export, then stored as float32):
#   MoCA output row i      out_i = x_i + Σ_j Y_ij Wm Wg x_j        (Wm = conv_mask, Wg = conv_g)
#   HAFI's fc of it        f_i  = fx_i + Σ_j Y_ij fm_j + b_fc,      fx_j = Wfc x_j, fm_j = Wfc Wm Wg x_j
#   HAFI's feature         feat = Σ_i w_i out_i, w_i = (score of row i in its group) × (score of
#                                 the group): both levels weight sums whose scores sum to one,
#                                 so their fc is the same weighted sum of the rows' f
#   the regressor          s    = R feat + r0                       (Regressor.affine)
#                               = Σ_i w_i rx_i + Σ_j (Σ_i w_i Y_ij) rm_j + r0,
#                                 rx_j = R x_j, rm_j = R Wm Wg x_j
# so a frame is cached as x (for MoCA's similarity map), theta, phi (its attention logits),
# fx, fm and rx, rm; MoCA's 9 × C output, the feature and the regressor's 1024-wide layers are
# never formed. Only MoCA rows 4..12 are read by HAFI, so only those rows of Y are.

FRAME_OUTPUTS = ("theta", "phi", "fx", "fm", "rx", "rm")
assert BEF + CUR + AFT == tuple(range(HAFI_FIRST, HAFI_FIRST + HAFI_ROWS)), "HAFI reads rows 4..12"


class TemporalFrame(nn.Module):
    """One frame's feature [N, C] -> theta [N, I], phi [N, I], fx [N, H], fm [N, H],
    rx [N, 157], rm [N, 157]."""

    def __init__(self, head: TemporalHead):
        super().__init__()
        e, f64 = head.nonlocalblock, torch.float64
        mask_g = e.conv_mask.weight[:, :, 0].to(f64) @ e.conv_g.weight[:, :, 0].to(f64)  # C × C
        r, _ = head.regressor.affine()
        wfc = e.attention.fc.weight.to(f64)
        maps = {
            "theta": e.conv_theta.weight[:, :, 0].to(f64),
            "phi": e.conv_phi.weight[:, :, 0].to(f64),
            "fx": wfc,
            "fm": wfc @ mask_g,
            "rx": r,
            "rm": r @ mask_g,
        }
        assert tuple(maps) == FRAME_OUTPUTS
        for name, w in maps.items():  # stored transposed: x @ w
            self.register_buffer(f"w_{name}", w.t().contiguous().float())

    def forward(self, x: torch.Tensor):
        return tuple(torch.matmul(x, getattr(self, f"w_{name}")) for name in FRAME_OUTPUTS)


class TemporalStep(nn.Module):
    """Cached frame outputs of a 16-frame window (each [N, 16, ·], plus the features x) ->
    pose6d [N, 144], shape [N, 10], cam [N, 3]; equals TemporalHead on the same window."""

    def __init__(self, head: TemporalHead):
        super().__init__()
        self.enc = head.nonlocalblock
        _, r0 = head.regressor.affine()
        self.register_buffer("r0", r0.float())

    def forward(self, x, theta, phi, fx, fm, rx, rm):
        e = self.enc
        att = e.attention
        n = x.shape[0]
        rows = slice(HAFI_FIRST, HAFI_FIRST + HAFI_ROWS)
        y = e.mix(torch.matmul(x[:, rows], x.transpose(1, 2)),
                  torch.matmul(theta[:, rows], phi.transpose(1, 2)))  # [N, 9, 16]
        f = fx[:, rows] + torch.matmul(y, fm) + att.fc.bias  # HAFI's fc of MoCA rows 4..12
        f3 = f.reshape(n, 3, 3, -1)  # the groups BEF, CUR, AFT
        s = att.scores_from_fc(f3.reshape(3 * n, 3, -1)).reshape(n, 3, 3)
        s2 = att.scores_from_fc(torch.sum(f3 * s[..., None], dim=2))  # [N, 3]
        w = (s * s2[..., None]).reshape(n, 1, HAFI_ROWS)
        state = torch.matmul(w, rx[:, rows]) + torch.matmul(torch.matmul(w, y), rm)  # [N, 1, 157]
        return torch.split(state[:, 0] + self.r0, (NPOSE, 10, 3), dim=1)


# --------------------------------------------------------------------------------------------
# Construction from official checkpoints or deterministic random weights.

BACKBONE_PREFIXES = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")
# Keys of the official checkpoints that the daemon does not use: SPIN's own regression head and
# the SMPL body model buffers (licensed separately; never exported).
IGNORED_HEAD_PREFIXES = ("regressor.smpl.",)


def load_official(spin_sd: dict, mpsnet_sd: dict, mean_params: dict | None):
    """Builds (Backbone, TemporalHead) from the official state dicts; raises on any missing key or
    shape mismatch. `mean_params` (arrays pose/shape/cam of smpl_mean_params.npz) overrides the
    init buffers when the checkpoint lacks them."""
    backbone = Backbone(Dims.full())
    head = TemporalHead(Dims.full())
    bb = {k: v for k, v in spin_sd.items() if k.startswith(BACKBONE_PREFIXES)}
    backbone.load_state_dict(bb, strict=True)
    hd = {k.removeprefix("module."): v for k, v in mpsnet_sd.items()}
    hd = {k: v for k, v in hd.items() if not k.startswith(IGNORED_HEAD_PREFIXES)}
    if mean_params is not None:
        for name in ("pose", "shape", "cam"):
            hd.setdefault(f"regressor.init_{name}",
                          torch.as_tensor(mean_params[name], dtype=torch.float32).reshape(1, -1))
    head.load_state_dict(hd, strict=True)
    return backbone.eval(), head.eval()


@torch.no_grad()
def random_init(seed: int, dims: Dims):
    """Deterministic random weights of the given widths (untrained!) with realistic statistics:
    BatchNorm with random affine and running stats, random mean params."""
    g = torch.Generator().manual_seed(seed)
    backbone, head = Backbone(dims), TemporalHead(dims)
    for module in (backbone, head):
        for name, p in sorted(module.state_dict().items()):
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif name.endswith("running_mean"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif ".bn" in name or name.startswith("bn1") or ".downsample.1" in name:
                # BatchNorm affine: gamma around 1 (kept small in the last bn of a block so the
                # residual stream does not explode), beta around 0.
                if name.endswith("weight"):
                    scale = 0.2 if ".bn3" in name else 1.0
                    p.copy_(scale * (0.75 + 0.5 * torch.rand(p.shape, generator=g)))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("init_pose"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif name.endswith("init_shape"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif name.endswith("init_cam"):
                p.copy_(torch.tensor([[0.9, 0.0, 0.2]]) + 0.05 * torch.randn(p.shape, generator=g))
            elif p.dim() >= 2:  # conv / linear weights: He-style fan-in scaling
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            else:  # biases
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
    # Head output layers start near zero, as SPIN's xavier(gain=0.01) init.
    reg = head.regressor
    for layer in (reg.decpose, reg.decshape, reg.deccam):
        layer.weight.mul_(0.05)
    return backbone.eval(), head.eval()
