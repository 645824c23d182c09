"""`random_init` (convert.py --random-init SEED [--narrow]) is deterministic and shape-only."""
from __future__ import annotations

import torch

from smplcast_models.mpsnet import Dims, random_init


def state(seed: int, dims: Dims) -> dict[str, torch.Tensor]:
    backbone, head = random_init(seed, dims)
    return {**{f"backbone.{k}": v for k, v in backbone.state_dict().items()},
            **{f"head.{k}": v for k, v in head.state_dict().items()}}


def test_same_seed_same_weights():
    a, b = state(3, Dims.narrow()), state(3, Dims.narrow())
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_different_seed_different_weights():
    a, b = state(3, Dims.narrow()), state(4, Dims.narrow())
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    # Every randomly drawn tensor differs; only the BatchNorm step counters are equal.
    assert set(a) - set(differ) == {k for k in a if k.endswith("num_batches_tracked")}


def test_independent_of_the_global_rng():
    """Every tensor is drawn from the seeded generator: nothing of the modules' default
    (global-RNG) initialisation survives."""
    torch.manual_seed(1)
    a = state(3, Dims.narrow())
    torch.manual_seed(2)
    b = state(3, Dims.narrow())
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_narrow_has_the_full_keys(full_model):
    narrow = state(0, Dims.narrow())
    backbone, head = full_model
    full = {**{f"backbone.{k}": v for k, v in backbone.state_dict().items()},
            **{f"head.{k}": v for k, v in head.state_dict().items()}}
    assert list(narrow) == list(full)  # same keys, same order
    differ = {k for k in full if narrow[k].shape != full[k].shape}
    assert differ and all(narrow[k].dim() == full[k].dim() for k in full)
    # Widths independent of Dims: conv1's input channels, the mixing conv, the output layers.
    for k in ("backbone.conv1.weight", "head.nonlocalblock.conv_mask_forR.weight",
              "head.regressor.init_pose", "head.regressor.decshape.bias", "head.regressor.deccam.bias"):
        if k == "backbone.conv1.weight":
            assert narrow[k].shape[1:] == full[k].shape[1:] == (3, 7, 7)
        else:
            assert narrow[k].shape == full[k].shape, k


def test_full_dims_are_the_published_ones(full_model):
    backbone, head = full_model
    assert sum(p.numel() for p in backbone.parameters()) == 23_508_032  # ResNet-50 without fc
    sd = head.state_dict()
    assert sd["nonlocalblock.conv_theta.weight"].shape == (1024, 2048, 1)
    assert sd["nonlocalblock.attention.fc.weight"].shape == (256, 2048)
    assert sd["nonlocalblock.attention.attention.0.weight"].shape == (256, 768)
    assert sd["regressor.fc1.weight"].shape == (1024, 2205)
