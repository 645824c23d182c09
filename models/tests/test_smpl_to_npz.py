"""models/smpl_to_npz.py on a synthetic pickle laid out like the official SMPL ones (a chumpy
`shapedirs`, a scipy sparse `J_regressor`, latin-1 Python-2-style strings). chumpy itself is
not installed: the pickle is written with a stand-in module of that name, whose objects keep
their array in `x` as chumpy's do. No SMPL data is involved."""
from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import smpl_to_npz  # noqa: E402


def _fake_chumpy():
    ch = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x

        def __getstate__(self):
            return {"x": self.x, "_dirty_vars": set()}

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    ch.Ch = Ch
    return ch


def test_a_chumpy_and_sparse_pickle_converts_to_dense_arrays(tmp_path, monkeypatch):
    ch = _fake_chumpy()
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch", ch)
    rng = np.random.default_rng(1)
    v, b = 50, 10
    shapedirs = rng.normal(size=(v, 3, b))
    regressor = scipy.sparse.random(24, v, density=0.2, format="csc", random_state=2)
    data = {
        "v_template": rng.normal(size=(v, 3)),
        "shapedirs": ch.Ch(shapedirs),
        "J_regressor": regressor,
        "kintree_table": np.array([[4294967295] + list(range(23)), list(range(24))]),
        "bs_style": "lbs",
    }
    pkl = tmp_path / "SMPL_FAKE.pkl"
    pkl.write_bytes(pickle.dumps(data, protocol=2))
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    monkeypatch.delitem(sys.modules, "chumpy")

    monkeypatch.setattr(sys, "argv", ["smpl_to_npz.py", str(pkl)])
    assert smpl_to_npz.main() == 0
    out = np.load(tmp_path / "SMPL_FAKE.npz")
    assert set(out.files) == {"v_template", "shapedirs", "J_regressor", "kintree_table"}
    np.testing.assert_array_equal(out["shapedirs"], shapedirs)
    np.testing.assert_array_equal(out["J_regressor"], regressor.toarray())
    np.testing.assert_array_equal(out["v_template"], data["v_template"])


def test_a_pickle_without_smpl_arrays_is_named(tmp_path):
    pkl = tmp_path / "other.pkl"
    pkl.write_bytes(pickle.dumps({"weights": np.zeros(3)}))
    try:
        smpl_to_npz.to_arrays(pkl)
    except SystemExit as e:
        assert "not an SMPL model pickle" in str(e) and "J_regressor" in str(e)
    else:
        raise AssertionError("no error")
