"""Official checkpoint format: loading (smplcast_models.official) and the converter end to end.

`official.write_random` writes full-size random checkpoints laid out like the release's files
(spin_model_checkpoint.pth.tar key `model`, mpsnet_model_best.pth.tar key `gen_state_dict` with
SMPL stand-ins under regressor.smpl.*, smpl_mean_params.npz). The converter runs once on them
(module-scoped fixture, about a minute on 2 cores).
"""
from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from helpers import rel_diff
from smplcast_models import data, official, parity
from smplcast_models.export import HEAD_OUTPUTS
from smplcast_models.mpsnet import FRAME_OUTPUTS, Dims, load_official, random_init

MODELS = Path(__file__).resolve().parents[1]
SEED = 5
F32_GRAPHS = {"backbone": {"feature"}, "temporal": set(HEAD_OUTPUTS),
              "temporal_frame": set(FRAME_OUTPUTS), "temporal_step": set(HEAD_OUTPUTS)}
INT8_GRAPHS = {"backbone": "QLinearConv", "temporal": "QLinearMatMul"}
RUNTIMES = {"onnxruntime", "tract"}
TRACT_UNSUPPORTED = {"QLinearAdd", "QGemm", "QLinearGlobalAveragePool", "QLinearConcat"}


@pytest.fixture(scope="module")
def expected():
    """(backbone, head) the checkpoints were written from."""
    return random_init(SEED, Dims.full())


@pytest.fixture(scope="module")
def official_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("official")
    official.write_random(d, SEED)
    yield d
    shutil.rmtree(d, ignore_errors=True)  # ~140 MB; pytest would keep it for three runs


def paths(d):
    return d / official.SPIN_FILE, d / official.MPSNET_FILE, d / official.MEAN_FILE


@pytest.fixture(scope="module")
def official_dicts(official_dir):
    spin, mps, mean = paths(official_dir)
    spin_sd = torch.load(str(spin), map_location="cpu", weights_only=False)["model"]
    mps_sd = torch.load(str(mps), map_location="cpu", weights_only=False)["gen_state_dict"]
    return spin_sd, mps_sd, dict(np.load(str(mean)))


def assert_same_weights(got: torch.nn.Module, want: torch.nn.Module):
    g, w = got.state_dict(), want.state_dict()
    assert g.keys() == w.keys()
    for k in w:
        assert torch.equal(g[k], w[k]), k


def test_files_have_official_layout(official_dicts):
    spin_sd, mps_sd, means = official_dicts
    assert any(k.startswith("regressor.smpl.") for k in mps_sd)
    assert {k.split(".")[0] for k in mps_sd} == {"nonlocalblock", "regressor"}
    assert "fc1.weight" in spin_sd and "layer4.2.conv3.weight" in spin_sd  # SPIN's own head too
    assert spin_sd["conv1.weight"].shape == (64, 3, 7, 7)
    assert mps_sd["nonlocalblock.conv_phi.weight"].shape == (1024, 2048, 1)
    assert mps_sd["regressor.fc1.weight"].shape == (1024, 2048 + 144 + 13)
    assert {k: v.shape for k, v in means.items()} == {"pose": (144,), "shape": (10,), "cam": (3,)}


def test_load_equals_random_init(official_dir, expected):
    backbone, head = official.load(*paths(official_dir))
    assert not backbone.training and not head.training
    assert_same_weights(backbone, expected[0])
    assert_same_weights(head, expected[1])


def test_load_strips_module_prefix(official_dicts, expected):
    """Checkpoints saved from nn.DataParallel have every key under `module.`."""
    spin_sd, mps_sd, means = official_dicts
    _, head = load_official(spin_sd, {f"module.{k}": v for k, v in mps_sd.items()}, means)
    assert_same_weights(head, expected[1])


def test_mean_params_fill_missing_init_buffers(official_dicts, expected):
    spin_sd, mps_sd, means = official_dicts
    no_init = {k: v for k, v in mps_sd.items() if not k.startswith("regressor.init_")}
    _, head = load_official(spin_sd, no_init, means)
    for name in ("pose", "shape", "cam"):
        buf = getattr(head.regressor, f"init_{name}")
        assert buf.dtype == torch.float32 and buf.shape == (1, means[name].size)
        assert torch.equal(buf, getattr(expected[1].regressor, f"init_{name}")), name
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*regressor\.init_pose"):
        load_official(spin_sd, no_init, None)


@pytest.mark.parametrize("which,key", [("spin", "layer4.2.bn3.running_var"),
                                       ("mpsnet", "nonlocalblock.conv_g.weight"),
                                       ("mpsnet", "regressor.deccam.bias")])
def test_missing_key_raises(which, key, official_dicts):
    spin_sd, mps_sd, means = official_dicts
    if which == "spin":
        spin_sd = {k: v for k, v in spin_sd.items() if k != key}
    else:
        mps_sd = {k: v for k, v in mps_sd.items() if k != key}
    with pytest.raises(RuntimeError, match=rf"Missing key\(s\) in state_dict: \"{key}\""):
        load_official(spin_sd, mps_sd, means)


@pytest.mark.parametrize("which,key,shape", [("spin", "layer1.0.conv1.weight", (32, 64, 1, 1)),
                                             ("mpsnet", "regressor.fc1.weight", (1024, 2048)),
                                             ("mpsnet", "nonlocalblock.attention.fc.weight", (128, 2048))])
def test_wrong_shape_raises(which, key, shape, official_dicts):
    spin_sd, mps_sd, means = official_dicts
    bad = {key: torch.zeros(shape)}
    if which == "spin":
        spin_sd = {**spin_sd, **bad}
    else:
        mps_sd = {**mps_sd, **bad}
    with pytest.raises(RuntimeError, match=rf"size mismatch for {key}"):
        load_official(spin_sd, mps_sd, means)


def test_unexpected_key_raises(official_dicts):
    spin_sd, mps_sd, means = official_dicts
    with pytest.raises(RuntimeError, match=r"Unexpected key\(s\).*nonlocalblock\.extra\.weight"):
        load_official(spin_sd, {**mps_sd, "nonlocalblock.extra.weight": torch.zeros(1)}, means)


def test_file_missing_a_key_raises(official_dir, official_dicts, tmp_path):
    """Through the files, as the converter reads them."""
    spin, mps, mean = paths(official_dir)
    _, mps_sd, _ = official_dicts
    bad = tmp_path / official.MPSNET_FILE
    torch.save({"gen_state_dict": {k: v for k, v in mps_sd.items() if k != "regressor.fc2.weight"}},
               str(bad))
    try:
        with pytest.raises(RuntimeError, match=r"Missing key\(s\) in state_dict: \"regressor\.fc2\.weight\""):
            official.load(spin, bad, mean)
    finally:
        bad.unlink()  # 46 MB


# --------------------------------------------------------------------------------------------
# The converter end to end on the official-format files.


def _load_convert():
    spec = importlib.util.spec_from_file_location("smplcast_convert", MODELS / "convert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def converted(official_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted")
    spin, mps, mean = paths(official_dir)
    threads = torch.get_num_threads()  # main() sets 1 thread for the whole process
    try:
        rc = _load_convert().main(["--spin", str(spin), "--mpsnet", str(mps), "--mean-params", str(mean),
                                   "--out", str(out), "--calib-images", "4", "--calib-clips", "2"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    yield out
    shutil.rmtree(out, ignore_errors=True)  # ~230 MB of graphs


def test_converter_writes_all_files(converted):
    names = {p.name for p in converted.iterdir()}
    want = {f"{g}.onnx" for g in F32_GRAPHS} | {f"{g}.int8.onnx" for g in INT8_GRAPHS}
    assert want | {"model.json", "parity.json"} == names  # nothing else (no *.pre.onnx left)
    manifest = json.loads((converted / "model.json").read_text())
    assert manifest["trained"] is True and manifest["model_id"] == "mpsnet-official"
    assert manifest["dims"] == Dims.full().to_json()
    assert manifest["seq_len"] == 16 and manifest["centre"] == 8


def test_converter_f32_parity(converted):
    report = json.loads((converted / "parity.json").read_text())
    f32 = report["parity"]["f32"]
    assert set(f32) == set(F32_GRAPHS)
    for graph, outputs in F32_GRAPHS.items():
        assert set(f32[graph]) == RUNTIMES, graph
        for runtime, diffs in f32[graph].items():
            assert set(diffs) == outputs, (graph, runtime)
            for out, d in diffs.items():
                assert d["ref_scale"] > 0, (graph, runtime, out)
                assert d["max_rel_to_scale"] <= 1e-4, (graph, runtime, out, d)


def test_converter_int8_parity_present(converted):
    int8 = json.loads((converted / "parity.json").read_text())["parity"]["int8"]
    assert set(int8) == set(INT8_GRAPHS)
    for graph in INT8_GRAPHS:
        assert set(int8[graph]) == RUNTIMES, graph
        for runtime, diffs in int8[graph].items():
            assert set(diffs) == F32_GRAPHS[graph], (graph, runtime)
            for out, d in diffs.items():
                assert set(d) == {"max_abs", "mean_abs", "ref_scale", "max_rel_to_scale"}
                assert all(math.isfinite(v) for v in d.values()), (graph, runtime, out, d)


def test_converter_graph_ops(converted):
    for graph in F32_GRAPHS:
        ops = {n.op_type for n in onnx.load(str(converted / f"{graph}.onnx")).graph.node}
        assert "Gemm" not in ops, graph
        assert not any(op.startswith("QLinear") for op in ops), graph
    for graph, qop in INT8_GRAPHS.items():
        ops = {n.op_type for n in onnx.load(str(converted / f"{graph}.int8.onnx")).graph.node}
        assert qop in ops, (graph, sorted(ops))
        assert "Gemm" not in ops, graph
        assert not ops & TRACT_UNSUPPORTED, (graph, ops & TRACT_UNSUPPORTED)


@torch.no_grad()
def test_converted_graphs_compute_the_written_weights(converted, expected):
    """Closes the loop: the exported graphs equal the model the checkpoints were written from
    (not merely the model the converter loaded)."""
    backbone, head = expected
    image = data.images(1, seed=41)
    got = parity.run_ort(converted / "backbone.onnx", {"image": image.numpy()}, threads=2)
    assert rel_diff(backbone(image), torch.from_numpy(got["feature"])) <= 1e-4
    w = data.small_windows(2, 2048, seed=42)
    got = parity.run_ort(converted / "temporal.onnx", {"features": w.numpy()}, threads=2)
    for name, ref in zip(HEAD_OUTPUTS, head(w)):
        assert rel_diff(ref, torch.from_numpy(got[name])) <= 1e-4, name
