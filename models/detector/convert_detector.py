#!/usr/bin/env python3
"""The person detector: MediaPipe's BlazePose detector (`pose_detection.tflite` from the
`mediapipe==0.10.21` wheel on PyPI, Apache-2.0) converted to ONNX for tract.

    models/run detector/convert_detector.py [--wheel mediapipe-0.10.21-….whl]

Without --wheel it downloads the wheel with pip into models/.cache/. Writes
models/detector/pose_detection.onnx, LICENSE.mediapipe and provenance.json (hashes of the
wheel, the .tflite and the .onnx).

tflite2onnx 0.4.1 rejects this model (DENSIFY, DEPTH_TO_SPACE), so this converts the eight op
types the model uses directly: sparse/fp16 weights (DENSIFY → DEQUANTIZE chains) are
materialised as dense fp32 by running the LiteRT interpreter once with every tensor kept.
The graph works in NCHW inside and keeps the TFLite interface: input `input_1` [1,224,224,3]
NHWC RGB in [-1, 1]; outputs `Identity` [1,2254,12] (box x, y, w, h and 4 keypoints, in
224-px units relative to the anchors) and `Identity_1` [1,2254,1] (score logits).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
WHEEL = "mediapipe==0.10.21"
TFLITE = "mediapipe/modules/pose_detection/pose_detection.tflite"
LICENSE = "mediapipe-0.10.21.dist-info/LICENSE"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def to_onnx(src: str, dst: str):
    """Converts the .tflite at `src` to ONNX at `dst`; returns (nodes, initializers)."""
    from ai_edge_litert import schema_py_generated as S
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    buf = open(src, 'rb').read()
    m = S.ModelT.InitFromObj(S.Model.GetRootAsModel(buf, 0))
    g = m.subgraphs[0]
    OPN = {v: k for k, v in S.BuiltinOperator.__dict__.items() if not k.startswith('_')}

    it = Interpreter(model_path=src, experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp['index'], np.zeros(inp['shape'], np.float32))
    it.invoke()

    def const(i):
        return np.array(it.get_tensor(i))

    nodes, inits = [], []
    layout = {}          # tensor idx -> 'NCHW' (4-D, transposed) or 'PLAIN'
    name = {}            # tensor idx -> onnx name
    def tname(i):
        return name.setdefault(i, 't%d' % i)
    cnt = [0]
    def fresh(p):
        cnt[0] += 1; return '%s_%d' % (p, cnt[0])
    def add_init(arr, p):
        n = fresh(p); inits.append(numpy_helper.from_array(arr, n)); return n

    def act(out_name, fa, pre):
        """Apply fused activation; returns nothing, wires pre -> out_name."""
        if fa == 0:
            nodes.append(helper.make_node('Identity', [pre], [out_name]))
        elif fa == 1:
            nodes.append(helper.make_node('Relu', [pre], [out_name]))
        elif fa == 3:
            lo = add_init(np.array(0, np.float32), 'c0'); hi = add_init(np.array(6, np.float32), 'c6')
            nodes.append(helper.make_node('Clip', [pre, lo, hi], [out_name]))
        else:
            raise NotImplementedError('fused activation %d' % fa)

    def same_pads(in_hw, k_hw, s_hw, d_hw):
        b, e = [], []
        for n, k, s, d in zip(in_hw, k_hw, s_hw, d_hw):
            out = -(-n // s); ek = (k - 1) * d + 1
            tot = max((out - 1) * s + ek - n, 0)
            b.append(tot // 2); e.append(tot - tot // 2)
        return b + e

    def as_nhwc(i):
        if layout.get(i) == 'NCHW':
            n = fresh('nhwc'); nodes.append(helper.make_node('Transpose', [tname(i)], [n], perm=[0, 2, 3, 1])); return n
        return tname(i)

    # graph input: NHWC, transposed to NCHW
    gin = g.inputs[0]
    in_name = g.tensors[gin].name.decode()
    nodes.append(helper.make_node('Transpose', [in_name], [tname(gin)], perm=[0, 3, 1, 2]))
    layout[gin] = 'NCHW'
    shape = lambda i: [int(x) for x in g.tensors[i].shape]

    for op in g.operators:
        c = m.operatorCodes[op.opcodeIndex]; opn = OPN[max(c.builtinCode, c.deprecatedBuiltinCode)]
        o = op.builtinOptions; I, O = list(op.inputs), list(op.outputs)
        if opn in ('DENSIFY', 'DEQUANTIZE'):
            continue  # weights materialised via const()
        out = tname(O[0])
        if opn in ('CONV_2D', 'DEPTHWISE_CONV_2D'):
            w = const(I[1]).astype(np.float32); b = const(I[2]).astype(np.float32)
            ih, iw = shape(I[0])[1:3]
            if opn == 'CONV_2D':
                W = w.transpose(0, 3, 1, 2); group = 1                     # OHWI -> OIHW
            else:
                assert o.depthMultiplier == 1
                W = w.transpose(3, 0, 1, 2); group = W.shape[0]            # 1HWC -> C1HW
            kh, kw = W.shape[2:]
            pads = [0, 0, 0, 0] if o.padding == S.Padding.VALID else \
                same_pads((ih, iw), (kh, kw), (o.strideH, o.strideW), (o.dilationHFactor, o.dilationWFactor))
            pre = fresh('conv')
            nodes.append(helper.make_node('Conv', [tname(I[0]), add_init(W, 'W'), add_init(b, 'B')], [pre],
                                          kernel_shape=[kh, kw], strides=[o.strideH, o.strideW], pads=pads,
                                          dilations=[o.dilationHFactor, o.dilationWFactor], group=group))
            act(out, o.fusedActivationFunction, pre); layout[O[0]] = 'NCHW'
        elif opn == 'PAD':
            p = const(I[1]).astype(np.int64)            # [4,2] NHWC
            assert layout[I[0]] == 'NCHW'
            p = p[[0, 3, 1, 2]]
            pads = np.concatenate([p[:, 0], p[:, 1]]).astype(np.int64)
            nodes.append(helper.make_node('Pad', [tname(I[0]), add_init(pads, 'pads')], [out], mode='constant'))
            layout[O[0]] = 'NCHW'
        elif opn == 'ADD':
            pre = fresh('add')
            assert layout[I[0]] == layout[I[1]] == 'NCHW'
            nodes.append(helper.make_node('Add', [tname(I[0]), tname(I[1])], [pre]))
            act(out, o.fusedActivationFunction, pre); layout[O[0]] = 'NCHW'
        elif opn == 'DEPTH_TO_SPACE':
            nodes.append(helper.make_node('DepthToSpace', [tname(I[0])], [out], blocksize=o.blockSize, mode='DCR'))
            layout[O[0]] = 'NCHW'
        elif opn == 'RESIZE_BILINEAR':
            hw = const(I[1]).astype(np.int64)
            ctm = 'align_corners' if o.alignCorners else ('half_pixel' if o.halfPixelCenters else 'asymmetric')
            sizes = np.array([1, shape(I[0])[3], hw[0], hw[1]], np.int64)
            nodes.append(helper.make_node('Resize', [tname(I[0]), '', '', add_init(sizes, 'sizes')], [out],
                                          mode='linear', coordinate_transformation_mode=ctm))
            layout[O[0]] = 'NCHW'
        elif opn == 'RESHAPE':
            shp = const(I[1]).astype(np.int64)
            nodes.append(helper.make_node('Reshape', [as_nhwc(I[0]), add_init(shp, 'shape')], [out]))
            layout[O[0]] = 'NCHW' if len(shp) == 4 and False else 'PLAIN'
            assert len(shp) != 4
        elif opn == 'CONCATENATION':
            ls = {layout[i] for i in I}; assert len(ls) == 1
            ax = o.axis
            if ls == {'NCHW'}:
                ax = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1}[ax]
            pre = fresh('cat')
            nodes.append(helper.make_node('Concat', [tname(i) for i in I], [pre], axis=ax))
            act(out, o.fusedActivationFunction, pre); layout[O[0]] = ls.pop()
        else:
            raise NotImplementedError(opn)

    outputs = []
    for oi in g.outputs:
        on = g.tensors[oi].name.decode()
        src_name = as_nhwc(oi)
        nodes.append(helper.make_node('Identity', [src_name], [on]))
        outputs.append(helper.make_tensor_value_info(on, TensorProto.FLOAT, shape(oi)))

    graph = helper.make_graph(nodes, 'pose_detection', [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, shape(gin))],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)], producer_name='tflite_to_onnx.py')
    model.ir_version = 8
    onnx.checker.check_model(model)
    from onnx import shape_inference
    model = shape_inference.infer_shapes(model)
    onnx.save(model, dst)
    return len(nodes), len(inits)


def fetch_wheel(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob("mediapipe-0.10.21-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-q",
                        "-d", str(cache)], check=True)
        found = sorted(cache.glob("mediapipe-0.10.21-*.whl"))
    return found[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, help="mediapipe 0.10.21 wheel (default: pip download)")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    wheel = args.wheel or fetch_wheel(HERE.parent / ".cache")
    with zipfile.ZipFile(wheel) as z:
        tflite, licence = z.read(TFLITE), z.read(LICENSE)
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = args.out / "pose_detection.tflite.tmp"
    tmp.write_bytes(tflite)
    try:
        nodes, inits = to_onnx(str(tmp), str(args.out / "pose_detection.onnx"))
    finally:
        tmp.unlink()
    (args.out / "LICENSE.mediapipe").write_bytes(licence)
    onnx_bytes = (args.out / "pose_detection.onnx").read_bytes()
    provenance = {
        "source": f"PyPI {WHEEL}, {wheel.name} ({wheel.stat().st_size} bytes)",
        "wheel_sha256": sha256(wheel.read_bytes()),
        "tflite": TFLITE,
        "tflite_sha256": sha256(tflite),
        "onnx_sha256": sha256(onnx_bytes),
        "licence": "Apache-2.0 (LICENSE.mediapipe, from " + LICENSE + ")",
        "converter": "models/detector/convert_detector.py",
        "nodes": nodes,
        "initializers": inits,
    }
    (args.out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    print(json.dumps(provenance, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
