#!/usr/bin/env python3
"""Convert an SMPL model pickle (.pkl, as distributed by the SMPL website) to the .npz the
daemon reads (`model.smpl_file`, src/joints.rs).

    models/run smpl_to_npz.py basicModel_neutral_lbs_10_207_0_v1.0.0.pkl [OUT.npz]

The official pickles were written by Python 2 and hold chumpy arrays (`shapedirs`) and a
scipy sparse `J_regressor`. chumpy does not install on current numpy, so this reads the
pickle without it: chumpy objects are read as the plain arrays they wrap (their `x`). The
.npz gets every array of the pickle, dense, in the smplx package's layout; the daemon reads
v_template, shapedirs, J_regressor and kintree_table. Nothing is uploaded anywhere.
"""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np


class _Chumpy:
    """Stands in for chumpy.ch.Ch and its subclasses while unpickling."""

    def __init__(self, *args, **kwargs):
        self.state = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"x": state}

    def array(self) -> np.ndarray:
        if "x" in self.state:
            return np.asarray(self.state["x"])
        arrays = [v for v in self.state.values() if isinstance(v, np.ndarray)]
        if len(arrays) != 1:
            raise ValueError(f"a chumpy object without its array: keys {sorted(self.state)}")
        return arrays[0]


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module.startswith("chumpy"):
            return _Chumpy
        return super().find_class(module, name)


def to_arrays(pkl: Path) -> dict[str, np.ndarray]:
    with open(pkl, "rb") as f:
        data = _Unpickler(f, encoding="latin1").load()
    out = {}
    for key, value in data.items():
        if isinstance(value, _Chumpy):
            value = value.array()
        elif hasattr(value, "toarray"):  # scipy.sparse
            value = value.toarray()
        if isinstance(value, np.ndarray) and value.dtype != object:
            out[key] = value
    missing = {"v_template", "shapedirs", "J_regressor", "kintree_table"} - set(out)
    if missing:
        raise SystemExit(f"{pkl}: not an SMPL model pickle (no {', '.join(sorted(missing))})")
    return out


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    pkl = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) == 3 else pkl.with_suffix(".npz")
    arrays = to_arrays(pkl)
    np.savez(out, **arrays)
    shapes = ", ".join(f"{k} {v.shape}" for k, v in sorted(arrays.items()))
    print(f"wrote {out}: {shapes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
