"""The person detector (models/detector/): the committed ONNX is what convert_detector.py makes
from the mediapipe wheel, it computes what the original .tflite computes (LiteRT), and the
committed Rust test vectors are what the reference pipeline gives now."""
from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from skimage import data

from smplcast_models import blazepose

MODELS = Path(__file__).resolve().parents[1]
DETECTOR = MODELS / "detector"
ROOT = MODELS.parent


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def wheel():
    return _load(DETECTOR / "convert_detector.py", "convert_detector").fetch_wheel(MODELS / ".cache")


def test_committed_onnx_is_the_conversion_of_the_wheel(wheel, tmp_path):
    conv = _load(DETECTOR / "convert_detector.py", "convert_detector")
    assert conv.main(["--wheel", str(wheel), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "pose_detection.onnx").read_bytes() == (DETECTOR / "pose_detection.onnx").read_bytes()
    fresh = json.loads((tmp_path / "provenance.json").read_text())
    committed = json.loads((DETECTOR / "provenance.json").read_text())
    for key in ("wheel_sha256", "tflite_sha256", "onnx_sha256"):
        assert fresh[key] == committed[key], key
    assert (tmp_path / "LICENSE.mediapipe").read_bytes() == (DETECTOR / "LICENSE.mediapipe").read_bytes()
    assert "Apache License" in (DETECTOR / "LICENSE.mediapipe").read_text()


def test_onnx_computes_what_the_tflite_computes(wheel, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    with zipfile.ZipFile(wheel) as z:
        (tmp_path / "d.tflite").write_bytes(z.read("mediapipe/modules/pose_detection/pose_detection.tflite"))
    lite = Interpreter(model_path=str(tmp_path / "d.tflite"))
    lite.allocate_tensors()
    sess = ort.InferenceSession(str(DETECTOR / "pose_detection.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    for img in (data.astronaut(), data.coffee()):
        x, _ = blazepose.letterbox(img)
        x = x.astype(np.float32)
        lite.set_tensor(lite.get_input_details()[0]["index"], x)
        lite.invoke()
        want = {d["name"]: lite.get_tensor(d["index"]) for d in lite.get_output_details()}
        got = dict(zip(names, sess.run(None, {"input_1": x})))
        for name in names:
            # fp16 weights expanded to fp32, different kernels: ~1e-3 on values up to ~700.
            assert np.abs(got[name] - want[name]).max() < 1e-2, name


def test_reference_finds_the_astronaut_and_nobody_else():
    sess = ort.InferenceSession(str(DETECTOR / "pose_detection.onnx"), providers=["CPUExecutionProvider"])
    run = lambda x: dict(zip(["Identity", "Identity_1"], sess.run(None, {"input_1": x.astype(np.float32)})))
    dets, _ = blazepose.detect(data.astronaut(), run)
    assert len(dets) == 1
    # MediaPipe's own PoseDetectionCpu graph on this image (mediapipe 0.10.21): score 0.8071,
    # face box (159.0, 133.3)–(261.3, 235.6) px.
    assert abs(dets[0]["score"] - 0.8071) < 2e-3
    assert np.abs(dets[0]["box"] * 512 - [159.0, 133.3, 261.3, 235.6]).max() < 0.5
    for img in (data.coffee(), data.chelsea()):
        assert blazepose.detect(img, run)[0] == []


def test_rust_vectors_are_fresh(tmp_path):
    gen = _load(MODELS / "gen_detector_vectors.py", "gen_detector_vectors")
    gen.main(tmp_path)
    committed = ROOT / "tests/data/detector"
    assert (tmp_path / "vectors.json").read_text() == (committed / "vectors.json").read_text()
    for png in committed.glob("*_input.png"):
        from PIL import Image
        assert np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(tmp_path / png.name))), png.name
