"""The NanoDet person detector (models/nanodet/): converting the npm package again gives the
committed file byte for byte, and the ONNX graph (onnxruntime) computes what the TF.js graph
computes, by a literal op-by-op reading of the TF graph (NHWC ops and all of onnx-tf's
transposes, run in PyTorch), on real photos."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

MODELS = Path(__file__).resolve().parents[1]
NANODET = MODELS / "nanodet"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


conv = _load(NANODET / "convert_nanodet.py", "convert_nanodet")


@pytest.fixture(scope="module")
def package():
    tgz = conv.fetch_tgz(MODELS / ".cache")
    return conv.read_members(tgz)


def test_conversion_is_reproducible(package):
    model = conv.convert(package[conv.MEMBERS[0]], package[conv.MEMBERS[1]])
    prov = json.loads((NANODET / "provenance.json").read_text())
    blob = model.SerializeToString()
    assert conv.sha256(blob) == prov["onnx_sha256"]
    assert blob == (NANODET / "nanodet.onnx").read_bytes()
    assert conv.sha256(package[conv.MEMBERS[0]]) == prov["model_json_sha256"]
    assert conv.sha256(package[conv.MEMBERS[1]]) == prov["weights_sha256"]


def tf_graph(model_json: bytes, weights_bin: bytes, image_nchw: np.ndarray) -> dict:
    """Runs the TF.js graph literally: every node with TensorFlow's semantics."""
    model = json.loads(model_json)
    w = conv.load_weights(model, weights_bin)
    v: dict[str, object] = {}

    def get(ref):
        name, _, idx = ref.partition(":")
        x = v[name]
        return x[int(idx or 0)] if isinstance(x, tuple) else x

    def nhwc_conv(x, k, strides):  # VALID padding
        y = F.conv2d(x.permute(0, 3, 1, 2), torch.from_numpy(k).permute(3, 2, 0, 1),
                     stride=strides)
        return y.permute(0, 2, 3, 1)

    for n in model["modelTopology"]["node"]:
        op, name, ins = n["op"], n["name"], n.get("input", [])
        if op == "Const":
            v[name] = w[name]
        elif op == "Placeholder":
            v[name] = torch.from_numpy(image_nchw)
        elif op == "Identity":
            v[name] = get(ins[0])
        elif op == "Transpose":
            v[name] = get(ins[0]).permute(*[int(i) for i in get(ins[1])])
        elif op in ("Pad", "PadV2"):
            pads = np.asarray(get(ins[1])).astype(int)
            value = float(get(ins[2])) if op == "PadV2" else 0.0
            flat = [int(p) for pair in pads[::-1] for p in pair]
            v[name] = F.pad(get(ins[0]), flat, value=value)
        elif op == "Conv2D":
            v[name] = nhwc_conv(get(ins[0]), get(ins[1]), conv.attr_ints(n, "strides")[1:3])
        elif op in ("Add", "AddV2"):
            a, b = get(ins[0]), get(ins[1])
            if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
                v[name] = a + b
            else:
                v[name] = torch.as_tensor(a) + torch.as_tensor(b)
        elif op == "LeakyRelu":
            v[name] = F.leaky_relu(get(ins[0]), float(n["attr"]["alpha"]["f"]))
        elif op == "Sigmoid":
            v[name] = torch.sigmoid(get(ins[0]))
        elif op == "MaxPool":
            x = get(ins[0]).permute(0, 3, 1, 2)
            y = F.max_pool2d(x, conv.attr_ints(n, "ksize")[1:3], conv.attr_ints(n, "strides")[1:3])
            v[name] = y.permute(0, 2, 3, 1)
        elif op == "ConcatV2":
            v[name] = torch.cat([get(i) for i in ins[:-1]], int(get(ins[-1])))
        elif op == "ResizeBilinear":
            size = [int(s) for s in get(ins[1])]
            x = get(ins[0]).permute(0, 3, 1, 2)
            y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            v[name] = y.permute(0, 2, 3, 1)
        elif op == "SplitV":
            sizes = [int(s) for s in get(ins[1])]
            v[name] = tuple(torch.split(get(ins[0]), sizes, int(get(ins[2]))))
        elif op == "Reshape":
            v[name] = get(ins[0]).reshape([int(s) for s in get(ins[1])])
        elif op == "SparseToDense":
            idx, shape, vals, default = (np.asarray(get(i)) for i in ins)
            out = np.full(shape.astype(np.int64), default, np.int64)
            out[tuple(idx.astype(np.int64).T)] = vals
            v[name] = out
        else:
            raise AssertionError(f"op {op} not interpreted")
    return {k: v[k].numpy() for k in [f"Identity{s}" for s in ["", "_1", "_2", "_3", "_4", "_5"]]}


def photos():
    from skimage import data
    return {"astronaut": data.astronaut(), "coffee": data.coffee()}


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_onnx_matches_the_tfjs_graph(package, name):
    rgb = photos()[name]
    import cv2
    img = cv2.resize(rgb, (416, 416), interpolation=cv2.INTER_AREA).astype(np.float32)
    # The TF graph takes NanoDet's normalised BGR; the ONNX graph RGB 0–255.
    bgr = img[..., ::-1]
    norm = (bgr - np.array(conv.MEAN_BGR, np.float32)) / np.array(conv.STD_BGR, np.float32)
    with torch.no_grad():
        tf = tf_graph(package[conv.MEMBERS[0]], package[conv.MEMBERS[1]],
                      np.ascontiguousarray(norm.transpose(2, 0, 1)[None]))
    sess = ort.InferenceSession(str(NANODET / "nanodet.onnx"))
    score, dist = sess.run(None, {"image": np.ascontiguousarray(img.transpose(2, 0, 1)[None])})
    # TF outputs: class scores [1, cells, 80] and bins [1, cells, 44] per stride 8, 16, 32.
    cls = np.concatenate([tf["Identity"], tf["Identity_1"], tf["Identity_2"]], 1)
    bins = np.concatenate([tf["Identity_3"], tf["Identity_4"], tf["Identity_5"]], 1)
    bins = bins.reshape(1, -1, 4, conv.BINS)
    prob = np.exp(bins - bins.max(-1, keepdims=True))
    prob /= prob.sum(-1, keepdims=True)
    want_dist = (prob * np.arange(conv.BINS)).sum(-1)
    np.testing.assert_allclose(score[0], cls[0, :, conv.PERSON], atol=2e-5)
    np.testing.assert_allclose(dist, want_dist, atol=2e-4)
    if name == "astronaut":  # a person fills the photo: the best cell is sure of it
        assert score.max() > 0.7, score.max()
