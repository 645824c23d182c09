"""Export to ONNX (opset 17) and static int8 quantisation (onnxruntime, QOperator).

Graphs written to a model directory (names and tensor layouts are the contract with the Rust
`model` module; keep them in sync with src/model.rs):

  backbone.onnx        image    [N, 3, 224, 224] f32 RGB, ImageNet mean/std -> feature [N, C]
  temporal.onnx        features [N, 16, C]                  -> pose6d [N, 144], shape [N, 10], cam [N, 3]
  temporal_frame.onnx  feature  [N, C]                      -> theta [N, I], phi [N, I], fx [N, H],
                                                               fm [N, H], rx [N, 157], rm [N, 157]
  temporal_step.onnx   x [N,16,C], theta [N,16,I], phi [N,16,I], fx [N,16,H], fm [N,16,H],
                       rx [N,16,157], rm [N,16,157]         -> pose6d, shape, cam (as temporal.onnx)
  *.int8.onnx          the same graphs quantised (Conv, MatMul and Relu; u8 activations, s8
                       per-tensor weights)
  model.json           widths, provenance, and which files are untrained
"""
from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import onnx
import torch

from .mpsnet import FRAME_OUTPUTS, SEQ_LEN, Backbone, Dims, TemporalFrame, TemporalHead, TemporalStep

OPSET = 17
HEAD_OUTPUTS = ("pose6d", "shape", "cam")
STEP_INPUTS = ("x",) + FRAME_OUTPUTS


def _export(module: torch.nn.Module, args: tuple, path: pathlib.Path, inputs, outputs) -> None:
    axes = {name: {0: "N"} for name in (*inputs, *outputs)}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), opset_version=OPSET, input_names=list(inputs),
                          output_names=list(outputs), dynamic_axes=axes, do_constant_folding=True,
                          dynamo=False)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    ops = {n.op_type for n in model.graph.node}
    assert "Gemm" not in ops, f"{path.name}: Linear must export as MatMul, found Gemm"


def frame_inputs(head: TemporalHead, features: torch.Tensor) -> dict[str, torch.Tensor]:
    """The step graph's inputs for windows `features` [N, 16, C] (frame graph applied per frame)."""
    n, t, c = features.shape
    with torch.no_grad():
        proj = TemporalFrame(head)(features.reshape(n * t, c))
    out = {"x": features}
    out.update({k: v.reshape(n, t, -1) for k, v in zip(FRAME_OUTPUTS, proj)})
    return out


def export_f32(backbone: Backbone, head: TemporalHead, out: pathlib.Path) -> None:
    dims = head.dims
    out.mkdir(parents=True, exist_ok=True)
    image = torch.zeros(1, 3, 224, 224)
    feats = 0.1 * torch.randn(1, SEQ_LEN, dims.feat, generator=torch.Generator().manual_seed(1))
    _export(backbone, (image,), out / "backbone.onnx", ["image"], ["feature"])
    _export(head, (feats,), out / "temporal.onnx", ["features"], HEAD_OUTPUTS)
    _export(TemporalFrame(head), (feats[:, 0],), out / "temporal_frame.onnx", ["feature"], FRAME_OUTPUTS)
    step_in = frame_inputs(head, feats)
    _export(TemporalStep(head), tuple(step_in[k] for k in STEP_INPUTS), out / "temporal_step.onnx",
            STEP_INPUTS, HEAD_OUTPUTS)


class _Reader:
    """onnxruntime CalibrationDataReader over a list of feed dicts."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)


def quantize(src: pathlib.Path, dst: pathlib.Path, feeds: list[dict[str, np.ndarray]]) -> None:
    """Static int8, QOperator format (QLinearConv / QLinearMatMul run on tract's integer kernels;
    QDQ graphs would run in float there). Choices measured in ../shared/DESIGN.md §3:
    per-tensor weights (per-channel made tract 3× slower), u8 activations (s8 made onnxruntime 14×
    slower), Relu quantised with the convs (removes Dequantize→Relu→Quantize chains)."""
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dst.with_suffix(".pre.onnx")
    # No onnxruntime graph optimisation here: it fuses MatMul + Add into Gemm, which tract
    # cannot quantise.
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True, skip_optimization=True)
    try:
        quantize_static(str(pre), str(dst), _Reader(feeds), quant_format=QuantFormat.QOperator,
                        op_types_to_quantize=["Conv", "MatMul", "Relu"], per_channel=False,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": True})
    finally:
        pre.unlink(missing_ok=True)
    model = onnx.load(str(dst))
    # The float graph's value_info survives quantisation with stale element types (an f32 entry
    # for a tensor that is now produced by Dequantize/QLinear nodes): tract trusts it and fails its
    # analysis. Shapes are re-inferred from the inputs anyway.
    del model.graph.value_info[:]
    onnx.save(model, str(dst))
    unsupported = {"QLinearAdd", "QGemm", "QLinearGlobalAveragePool", "QLinearConcat"}
    found = unsupported & {n.op_type for n in model.graph.node}
    assert not found, f"{dst.name}: onnxruntime-only ops that tract cannot run: {found}"


def write_manifest(out: pathlib.Path, dims: Dims, provenance: dict) -> None:
    manifest = {"architecture": "MPS-Net (CVPR 2022), SPIN HMR ResNet-50 backbone",
                "seq_len": SEQ_LEN, "centre": 8, "dims": dims.to_json(), **provenance}
    (out / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
