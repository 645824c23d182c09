"""tests/data/pixels.json (the colour-conversion references src/pixels.rs is tested against) is
what OpenCV computes now: regenerating it gives the committed file."""
from __future__ import annotations

import importlib.util
from pathlib import Path

MODELS = Path(__file__).resolve().parents[1]


def test_committed_pixel_vectors_are_opencvs():
    spec = importlib.util.spec_from_file_location("gen", MODELS / "gen_pixel_vectors.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.PATH.read_text() == gen.build()
