"""The committed narrow fixture (models/fixtures/narrow) is what the current code produces, and
checkpoint files of the wrong layout get a clear error."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from smplcast_models import official

MODELS = Path(__file__).resolve().parents[1]
FIXTURE = MODELS / "fixtures" / "narrow"


def _convert():
    spec = importlib.util.spec_from_file_location("convert", MODELS / "convert.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_fixture_is_up_to_date(tmp_path):
    threads = torch.get_num_threads()
    try:
        _convert().main(["--random-init", "0", "--narrow", "--vectors", "--no-int8", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    fresh, committed = np.load(tmp_path / "vectors.npz"), np.load(FIXTURE / "vectors.npz")
    assert sorted(fresh.files) == sorted(committed.files)
    for k in fresh.files:
        scale = max(float(np.abs(committed[k]).max()), 1e-6)
        diff = float(np.abs(fresh[k] - committed[k]).max()) / scale
        assert diff <= 1e-5, (f"{k} differs by {diff:.2e}: re-run `models/run convert.py "
                              "--random-init 0 --narrow --vectors --out models/fixtures/narrow`")


def test_checkpoint_without_its_state_dict_key(tmp_path):
    official.write_random(tmp_path, seed=1)
    bad = tmp_path / "bad.pth.tar"
    torch.save({"state_dict": {}}, str(bad))
    with pytest.raises(ValueError, match=r"bad\.pth\.tar: expected a checkpoint with the state dict "
                                         r"under key 'gen_state_dict'.*found \['state_dict'\]"):
        official.load(tmp_path / official.SPIN_FILE, bad, None)
