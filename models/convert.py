#!/usr/bin/env python3
"""MPS-Net converter: official checkpoints (or deterministic random weights) -> ONNX -> int8,
with a parity report (PyTorch vs onnxruntime vs tract) and optional test vectors.

  # the official release files (from the MPS-Net README's data download)
  models/run convert.py --spin spin_model_checkpoint.pth.tar \
      --mpsnet mpsnet_model_best.pth.tar --mean-params smpl_mean_params.npz --out models/mpsnet

  # untrained models of the exact shapes, for tests, benches and the demo
  models/run convert.py --random-init 0 --out models/generated/full
  models/run convert.py --random-init 0 --narrow --vectors --out models/fixtures/narrow

  # the int8 backbone calibrated on crops of the user's scene (`smplcast run --save-crops DIR`),
  # with its error on the last crops in time against the default calibration on photographs
  models/run convert.py --spin ... --calib-dir DIR --out models/mpsnet
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from smplcast_models import data, export, official, parity, scene  # noqa: E402
from smplcast_models.geometry import rot6d_to_rotmat  # noqa: E402
from smplcast_models.mpsnet import Dims, TemporalFrame, TemporalStep, random_init  # noqa: E402


HOLDOUT = 0.25  # --calib-holdout
CHUNK = 16  # held-out crops per backbone run, which bounds the memory of a large held-out set


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--random-init", type=int, metavar="SEED", help="deterministic random weights (untrained)")
    src.add_argument("--spin", type=pathlib.Path, help="official spin_model_checkpoint.pth.tar")
    p.add_argument("--mpsnet", type=pathlib.Path, help="official mpsnet_model_best.pth.tar")
    p.add_argument("--mean-params", type=pathlib.Path, help="official smpl_mean_params.npz")
    p.add_argument("--narrow", action="store_true", help="with --random-init: widths / 8 (test fixture)")
    p.add_argument("--out", type=pathlib.Path, required=True, help="output model directory")
    p.add_argument("--no-int8", action="store_true", help="skip quantisation")
    p.add_argument("--vectors", action="store_true", help="write vectors.npz for the Rust tests")
    p.add_argument("--calib-images", type=int, default=32, help="backbone calibration crops")
    p.add_argument("--calib-clips", type=int, default=8, help="temporal calibration clips (16 frames)")
    p.add_argument("--calib-dir", type=pathlib.Path, metavar="DIR",
                   help="calibrate the backbone on the scene's crops in DIR (224x224 RGB PNGs "
                        "saved by `smplcast run --save-crops DIR`) instead of the photographs")
    p.add_argument("--calib-holdout", type=float, metavar="FRACTION",
                   help="with --calib-dir: the last FRACTION of the crops in time is held out to "
                        f"measure the error, not calibrated on (default {HOLDOUT})")
    args = p.parse_args(argv)
    if args.spin and not args.mpsnet:
        p.error("--spin needs --mpsnet (and usually --mean-params)")
    if args.narrow and args.random_init is None:
        p.error("--narrow is only meaningful with --random-init")
    if args.calib_images < 1:
        p.error("--calib-images must be at least 1")
    args.scene = None
    if args.calib_dir is None:
        if args.calib_holdout is not None:
            p.error("--calib-holdout is only meaningful with --calib-dir")
        return args
    if args.no_int8:
        p.error("--calib-dir calibrates the int8 backbone: drop --no-int8")
    holdout = HOLDOUT if args.calib_holdout is None else args.calib_holdout
    if not 0 < holdout < 1:
        p.error(f"--calib-holdout {holdout}: must be between 0 and 1 (a fraction of the crops)")
    try:
        # Read (and check) the crops now, before the minutes of export.
        args.scene = scene.load(args.calib_dir, holdout, args.calib_images)
    except ValueError as e:
        p.error(f"--calib-dir: {e}")
    return args


def build(args):
    if args.random_init is not None:
        dims = Dims.narrow() if args.narrow else Dims.full()
        backbone, head = random_init(args.random_init, dims)
        prov = {"weights": f"random-init seed {args.random_init} (UNTRAINED: shapes only)",
                "trained": False, "model_id": f"mpsnet-random-{args.random_init}-w{dims.width}"}
    else:
        backbone, head = official.load(args.spin, args.mpsnet, args.mean_params)
        prov = {"weights": f"official: {args.spin.name}, {args.mpsnet.name}", "trained": True,
                "model_id": "mpsnet-official"}
    return backbone, head, prov


def held_out_report(out: pathlib.Path, backbone, crops: scene.Scene, photos: torch.Tensor) -> dict:
    """The int8 backbone's feature error on the scene's held-out crops, against the PyTorch f32
    backbone: as written (calibrated on the scene) and calibrated on `photos` (the default, into
    a temporary file)."""
    t0 = time.time()
    held = crops.held_out_images
    with torch.no_grad():
        ref = torch.cat([backbone(held[i:i + CHUNK]) for i in range(0, len(held), CHUNK)]).numpy()
    feeds, reference = {"image": held.numpy()}, {"feature": ref}
    report = {"dir": str(crops.directory), "crops": crops.total,
              "calibrated_on": [p.name for p in crops.calibrate],
              "held_out": [p.name for p in crops.held_out],
              "photos_calibrated_on": f"{len(photos)} crops of scikit-image photographs"}
    report["scene"] = parity.compare(out / "backbone.int8.onnx", feeds, reference, chunk=CHUNK)
    with tempfile.TemporaryDirectory() as tmp:
        photo_graph = pathlib.Path(tmp) / "backbone.int8.onnx"
        export.quantize(out / "backbone.onnx", photo_graph,
                        [{"image": photos[i:i + 1].numpy()} for i in range(len(photos))])
        report["photos"] = parity.compare(photo_graph, feeds, reference, chunk=CHUNK)
    for source in ("scene", "photos"):
        for d in report[source].values():
            f = d["feature"]
            f["mean_rel_to_scale"] = f["mean_abs"] / f["ref_scale"] if f["ref_scale"] > 0 else f["mean_abs"]
    print(f"measured the int8 backbone on {len(held)} held-out crops ({time.time() - t0:.1f} s)")
    return report


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    torch.set_num_threads(1)
    backbone, head, prov = build(args)
    out = args.out
    export.export_f32(backbone, head, out)
    export.write_manifest(out, head.dims, prov)
    print(f"exported f32 graphs to {out} ({time.time() - t0:.1f} s)")

    with torch.no_grad():
        # Calibration and parity inputs are different draws of the same real photographs.
        calib_images = data.images(args.calib_images, seed=100)
        clip_imgs = data.clips(args.calib_clips, seed=200)
        n, t = clip_imgs.shape[:2]
        calib_windows = backbone(clip_imgs.reshape(n * t, 3, 224, 224)).reshape(n, t, -1)
        test_images = data.images(2, seed=300)
        test_clip = data.clips(2, seed=400)
        real_windows = backbone(test_clip.reshape(-1, 3, 224, 224)).reshape(2, 16, -1)
        windows = torch.cat([real_windows, data.small_windows(2, head.dims.feat, seed=500)])
        feature = backbone(test_images)
        head_out = dict(zip(export.HEAD_OUTPUTS, head(windows)))
        step_in = export.frame_inputs(head, windows)
        frame_out = dict(zip(export.FRAME_OUTPUTS, TemporalFrame(head)(windows[:, 0])))
        # Track-start windows (one frame's feature repeated 16 times), for the int8 end-to-end
        # check in Rust: int8 backbone -> f32 head against PyTorch f32 throughout.
        repeat_out = dict(zip(export.HEAD_OUTPUTS, head(feature[:, None].expand(-1, 16, -1))))
        real_out = dict(zip(export.HEAD_OUTPUTS, head(real_windows)))

    def np_(d):
        return {k: v.numpy() for k, v in d.items()}

    cases = {
        "backbone": ({"image": test_images.numpy()}, {"feature": feature.numpy()}),
        "temporal": ({"features": windows.numpy()}, np_(head_out)),
        "temporal_frame": ({"feature": windows[:, 0].numpy()}, np_(frame_out)),
        "temporal_step": (np_(step_in), np_(head_out)),
    }
    report = {"model": json.loads((out / "model.json").read_text()), "parity": {"f32": {}, "int8": {}},
              "inputs": "backbone: 2 crops of scikit-image photographs; temporal: 2 windows of backbone "
                        "features of drifting crops + 2 small-scale random windows"}
    for graph, (feeds, ref) in cases.items():
        report["parity"]["f32"][graph] = parity.compare(out / f"{graph}.onnx", feeds, ref)

    if not args.no_int8:
        t1 = time.time()
        backbone_calib = calib_images if args.scene is None else args.scene.calibrate_images
        export.quantize(out / "backbone.onnx", out / "backbone.int8.onnx",
                        [{"image": backbone_calib[i:i + 1].numpy()} for i in range(len(backbone_calib))])
        export.quantize(out / "temporal.onnx", out / "temporal.int8.onnx",
                        [{"features": calib_windows[i:i + 1].numpy()} for i in range(len(calib_windows))])
        print(f"quantised to int8 ({time.time() - t1:.1f} s)")
        for graph in ("backbone", "temporal"):
            feeds, ref = cases[graph]
            report["parity"]["int8"][graph] = parity.compare(out / f"{graph}.int8.onnx", feeds, ref)
        if args.scene is not None:
            report["calibration"] = held_out_report(out, backbone, args.scene, calib_images)
        report["end_to_end"] = parity.end_to_end(out, test_clip.numpy(), real_windows.numpy(),
                                                 np_(real_out))

    if args.vectors:
        np.savez_compressed(
            out / "vectors.npz", image=test_images.numpy(), feature=feature.numpy(),
            windows=windows.numpy(), rotmat=rot6d_to_rotmat(head_out["pose6d"].reshape(-1, 6))
            .reshape(len(windows), 24, 3, 3).numpy(), **np_(head_out),
            **{f"repeat_{k}": v for k, v in np_(repeat_out).items()})
    (out / "parity.json").write_text(json.dumps(report, indent=2) + "\n")
    parity.print_report(report)
    print(f"wrote {out / 'parity.json'} ({time.time() - t0:.1f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
