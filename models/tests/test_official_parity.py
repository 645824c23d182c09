"""Our re-implementation (smplcast_models.mpsnet) against the official MPS-Net code.

The official `TemporalEncoder` (MoCA + HAFI) is vendored unchanged in official_mpsnet.py. It
hard-codes attention_size=2048 and a 256-wide HAFI, so these tests run at the published size
(Dims.full()). The SPIN regressor's forward loop is written out below from the official
lib/models/spin.py (`Regressor.forward` up to, not including, SMPL).
"""
from __future__ import annotations

import copy

import pytest
import torch

import official_mpsnet
from helpers import rel_diff
from smplcast_models import data
from smplcast_models.mpsnet import Dims, TemporalEncoder, TemporalHead

FEAT = 2048
TOL = 1e-5  # float32, relative to the output's max |value|
TOL64 = 1e-12  # the same computation in float64: equal up to rounding


def official_encoder_from(head: TemporalHead) -> official_mpsnet.TemporalEncoder:
    enc = official_mpsnet.TemporalEncoder(channel=FEAT)
    # strict=True: every key of ours exists in the official module with the same shape, and
    # vice versa.
    enc.load_state_dict(head.nonlocalblock.state_dict(), strict=True)
    return enc.eval()


@pytest.fixture(scope="module")
def official_encoder(full_model):
    return official_encoder_from(full_model[1])


def official_regressor(reg, x: torch.Tensor, n_iter: int = 3):
    """lib/models/spin.py `Regressor.forward` (is_train=False) without SMPL, over `reg`'s weights:
    the dropouts are the identity in eval mode."""
    batch_size = x.shape[0]
    init_pose = reg.init_pose.expand(batch_size, -1)
    init_shape = reg.init_shape.expand(batch_size, -1)
    init_cam = reg.init_cam.expand(batch_size, -1)
    pred_pose = init_pose
    pred_shape = init_shape
    pred_cam = init_cam
    for i in range(n_iter):
        xc = torch.cat([x, pred_pose, pred_shape, pred_cam], 1)
        xc = reg.fc1(xc)
        xc = reg.fc2(xc)
        pred_pose = reg.decpose(xc) + pred_pose
        pred_shape = reg.decshape(xc) + pred_shape
        pred_cam = reg.deccam(xc) + pred_cam
    return pred_pose, pred_shape, pred_cam


def windows(kind: str, full_real_windows) -> torch.Tensor:
    if kind == "small":  # MoCA's softmaxes far from one-hot
        return data.small_windows(3, FEAT, seed=11)
    if kind == "x10":  # ten times larger: softmaxes sharper, HAFI's tanh layers nearer saturation
        return 10 * data.small_windows(3, FEAT, seed=12)
    if kind == "real":  # backbone features of photo crops (feature norms ~185): saturated
        return full_real_windows
    raise ValueError(kind)


WINDOW_KINDS = ("small", "x10", "real")


def test_state_dict_keys_and_shapes_match_official(full_model):
    ours = full_model[1].nonlocalblock.state_dict()
    theirs = official_mpsnet.TemporalEncoder(channel=FEAT).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}
    # And the other way round: an official state dict loads strictly into ours.
    TemporalEncoder(Dims.full()).load_state_dict(theirs, strict=True)


@torch.no_grad()
@pytest.mark.parametrize("kind", WINDOW_KINDS)
def test_encoder_matches_official(kind, full_model, official_encoder, full_real_windows):
    head = full_model[1]
    w = windows(kind, full_real_windows)
    for i in range(w.shape[0]):
        x = w[i:i + 1]  # batch 1: the official code is only correct for one sample at a time
        out, scores, moca = official_encoder(x, is_train=False)
        assert scores.shape == (1, 3) and moca.shape == (1, FEAT, 16)
        assert rel_diff(moca.permute(0, 2, 1), head.nonlocalblock.moca(x)) <= TOL
        assert rel_diff(out, head.nonlocalblock(x)) <= TOL, f"{kind} window {i}"


@torch.no_grad()
@pytest.mark.parametrize("kind", ("small", "real"))
def test_encoder_matches_official_float64(kind, full_model, official_encoder, full_real_windows):
    """In float64 the two agree to rounding: the port is the same function, not a close one."""
    ours = copy.deepcopy(full_model[1].nonlocalblock).double()
    theirs = copy.deepcopy(official_encoder).double()
    x = windows(kind, full_real_windows)[:1].double()
    assert rel_diff(theirs(x)[0], ours(x)) <= TOL64


@torch.no_grad()
@pytest.mark.parametrize("kind", ("small", "real"))
def test_regressor_matches_official_spin_loop(kind, full_model, official_encoder, full_real_windows):
    reg = full_model[1].regressor
    w = windows(kind, full_real_windows)
    feat = torch.cat([official_encoder(w[i:i + 1])[0] for i in range(w.shape[0])])
    ref = official_regressor(reg, feat)
    for name, r, g in zip(("pose6d", "shape", "cam"), ref, reg(feat)):  # TemporalHead's form
        assert rel_diff(r, g) <= TOL, name


@torch.no_grad()
@pytest.mark.parametrize("kind", ("small", "real"))
def test_regressor_is_one_affine_map(kind, full_model, official_encoder, full_real_windows):
    """The streaming form's regressor (`Regressor.affine`, folded into the frame graph) is the
    official three-iteration loop: in float64 to rounding, in float32 within TOL."""
    reg = full_model[1].regressor
    w = windows(kind, full_real_windows)
    feat = torch.cat([official_encoder(w[i:i + 1])[0] for i in range(w.shape[0])])
    r, r0 = reg.affine()
    for x, m, m0, tol in ((feat.double(), r, r0, TOL64), (feat, r.float(), r0.float(), TOL)):
        ref = official_regressor(copy.deepcopy(reg).to(x.dtype), x)
        got = torch.split(x @ m.t() + m0, (144, 10, 3), dim=1)
        for name, a, b in zip(("pose6d", "shape", "cam"), ref, got):
            assert rel_diff(a, b) <= tol, f"{name} {x.dtype}: {rel_diff(a, b):.1e}"


@torch.no_grad()
@pytest.mark.parametrize("kind", WINDOW_KINDS)
def test_head_matches_official_pipeline(kind, full_model, official_encoder, full_real_windows):
    """Official MPSnet.forward up to SMPL (encoder, then regressor) vs our TemporalHead."""
    head = full_model[1]
    w = windows(kind, full_real_windows)
    for i in range(w.shape[0]):
        x = w[i:i + 1]
        ref = official_regressor(head.regressor, official_encoder(x)[0])
        for name, r, g in zip(("pose6d", "shape", "cam"), ref, head(x)):
            assert rel_diff(r, g) <= TOL, f"{kind} window {i} {name}"


@torch.no_grad()
def test_official_batching_bug(full_model, official_encoder):
    """The official MoCA stacks its two T×T maps with `cat(dim=0).view(N, 2, T, T)`: for N > 1
    that pairs sample 0's NSSM with sample 1's NSSM, and the attention maps of both with each
    other. Its output for a batch therefore differs from running each sample alone; ours does
    not."""
    enc = full_model[1].nonlocalblock
    w = data.small_windows(2, FEAT, seed=21)
    alone_official = torch.cat([official_encoder(w[i:i + 1])[0] for i in range(2)])
    batch_official = official_encoder(w)[0]
    bug = rel_diff(alone_official, batch_official)
    assert bug > 1e-4, f"official batch-2 output equals per-sample output ({bug:.2e}): bug gone?"

    alone_ours = torch.cat([enc(w[i:i + 1]) for i in range(2)])
    assert rel_diff(alone_ours, enc(w)) <= TOL
    assert rel_diff(alone_official, alone_ours) <= TOL

    # The mechanism, exactly: in the official batch, sample 0 mixes the two NSSMs and sample 1
    # the two θφ maps.
    gram = torch.matmul(w, w.transpose(1, 2))
    theta = torch.matmul(w, enc.conv_theta.weight[:, :, 0].t())
    phi = torch.matmul(w, enc.conv_phi.weight[:, :, 0].t())
    att = torch.matmul(theta, phi.transpose(1, 2))
    y = torch.stack([enc.mix(gram[0], gram[1]), enc.mix(att[0], att[1])])
    g = torch.matmul(w, enc.conv_g.weight[:, :, 0].t())
    moca_mixed = w + torch.matmul(torch.matmul(y, g), enc.conv_mask.weight[:, :, 0].t())
    assert rel_diff(moca_mixed, official_encoder(w)[2].permute(0, 2, 1)) <= TOL
