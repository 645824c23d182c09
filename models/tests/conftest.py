"""Shared fixtures of the model tests. Run from the repository root:

    models/run -m pytest models/tests -q

Puts models/ on sys.path (for `import smplcast_models`) and models/tests/ (for the vendored
`official_mpsnet`), whatever directory pytest is started from.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
MODELS = TESTS.parent
for p in (str(MODELS), str(TESTS)):
    if p not in sys.path:
        sys.path.insert(0, p)

from helpers import real_windows  # noqa: E402
from smplcast_models.mpsnet import Dims, random_init  # noqa: E402

FULL_SEED = 0


@pytest.fixture(scope="session")
def full_model():
    """(backbone, head) = random_init(FULL_SEED, Dims.full()), shared: do not modify."""
    return random_init(FULL_SEED, Dims.full())


@pytest.fixture(scope="session")
def narrow_model():
    """(backbone, head) = random_init(FULL_SEED, Dims.narrow()), shared: do not modify."""
    return random_init(FULL_SEED, Dims.narrow())


@pytest.fixture(scope="session")
def full_real_windows(full_model):
    """One window of full-size backbone features, [1, 16, 2048] (about 2 s on 2 cores)."""
    return real_windows(full_model[0], 1, seed=7)


@pytest.fixture(scope="session")
def narrow_real_windows(narrow_model):
    return real_windows(narrow_model[0], 2, seed=7)
