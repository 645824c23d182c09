"""Parity: the same inputs through PyTorch, onnxruntime and tract (its Python binding, the same
tract version as the daemon), compared per output against PyTorch f32."""
from __future__ import annotations

import pathlib

import numpy as np
import onnx


def input_names(path: pathlib.Path) -> list[str]:
    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def output_names(path: pathlib.Path) -> list[str]:
    return [o.name for o in onnx.load(str(path), load_external_data=False).graph.output]


def run_ort(path: pathlib.Path, feeds: dict[str, np.ndarray], threads: int = 1) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    outs = sess.run(None, {k: np.ascontiguousarray(feeds[k], dtype=np.float32) for k in input_names(path)})
    return dict(zip(output_names(path), outs))


def run_tract(path: pathlib.Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import tract

    names = input_names(path)
    model = tract.onnx().load(str(path))
    for i, name in enumerate(names):
        shape = ",".join(str(d) for d in feeds[name].shape)
        model.set_input_fact(i, f"{shape},f32")
    runnable = model.into_model().into_runnable()
    outs = runnable.run([np.ascontiguousarray(feeds[k], dtype=np.float32) for k in names])
    return dict(zip(output_names(path), (o.to_numpy() for o in outs)))


def diff(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    d = np.abs(ref.astype(np.float64) - got.astype(np.float64))
    scale = float(np.max(np.abs(ref)))
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean()), "ref_scale": scale,
            "max_rel_to_scale": float(d.max() / scale) if scale > 0 else float(d.max())}


def compare(path: pathlib.Path, feeds: dict[str, np.ndarray], reference: dict[str, np.ndarray],
            chunk: int | None = None) -> dict:
    """{runtime: {output: diff}} for onnxruntime and tract against the PyTorch reference. With
    `chunk`, the graph runs on at most that many items of the batch at a time (the memory of a
    large batch), and the outputs are joined before they are compared."""
    n = len(next(iter(feeds.values())))
    step = chunk or n
    report = {}
    for runtime, run in (("onnxruntime", run_ort), ("tract", run_tract)):
        parts = [run(path, {k: v[i:i + step] for k, v in feeds.items()}) for i in range(0, n, step)]
        got = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        report[runtime] = {k: diff(reference[k], got[k]) for k in reference}
    return report


def print_report(report: dict) -> None:
    print(f"{'graph':<34}{'runtime':<13}{'output':<9}{'max abs':>11}{'mean abs':>11}{'max/scale':>11}")
    for precision, graphs in report["parity"].items():
        for graph, runtimes in graphs.items():
            for runtime, outputs in runtimes.items():
                for out, d in outputs.items():
                    print(f"{precision + ' ' + graph:<34}{runtime:<13}{out:<9}"
                          f"{d['max_abs']:>11.2e}{d['mean_abs']:>11.2e}{d['max_rel_to_scale']:>11.2e}")
    if "calibration" in report:
        print_calibration(report["calibration"])
    for path, entry in report.get("end_to_end", {}).items():
        a = entry["joint_angle_deg"]
        print(f"end to end {path}: joint rotation error max {a['max']:.3f} deg, mean {a['mean']:.3f} "
              f"deg; shape max/scale {entry['shape']['max_rel_to_scale']:.2e}; cam max/scale "
              f"{entry['cam']['max_rel_to_scale']:.2e}")


def print_calibration(cal: dict) -> None:
    """convert.py --calib-dir: the int8 backbone's feature error on the held-out crops of the
    scene, calibrated on the scene's earlier crops and on the photographs, side by side."""
    print(f"int8 backbone on {len(cal['held_out'])} held-out crops of {cal['dir']} (the last in time "
          f"of {cal['crops']}), feature error: calibrated on the scene ({len(cal['calibrated_on'])} "
          f"earlier crops) and on the photos ({cal['photos_calibrated_on']})")
    print(f"{'runtime':<13}{'calibrated on':<15}{'max/scale':>11}{'mean/scale':>12}")
    for runtime in cal["scene"]:
        for source in ("scene", "photos"):
            d = cal[source][runtime]["feature"]
            print(f"{runtime:<13}{source:<15}{d['max_rel_to_scale']:>11.2e}{d['mean_rel_to_scale']:>12.2e}")


def joint_angle_errors(ref_pose6d: np.ndarray, got_pose6d: np.ndarray) -> np.ndarray:
    """Geodesic angle in degrees between the joint rotations of two [N, 144] 6D poses: [N, 24]."""
    import torch

    from .geometry import rot6d_to_rotmat

    def rot(p):
        return rot6d_to_rotmat(torch.as_tensor(p, dtype=torch.float64).reshape(-1, 6)).numpy()

    r = np.einsum("kji,kjl->kil", rot(ref_pose6d), rot(got_pose6d))
    cos = np.clip((np.trace(r, axis1=1, axis2=2) - 1) / 2, -1, 1)
    return np.degrees(np.arccos(cos)).reshape(len(ref_pose6d), -1)


def end_to_end(model_dir: pathlib.Path, clips: np.ndarray, ref_windows: np.ndarray,
               reference: dict[str, np.ndarray]) -> dict:
    """The product path with an int8 backbone: clips [N, 16, 3, 224, 224] -> backbone (f32 or
    int8) -> f32 temporal head, per runtime, against PyTorch f32 throughout."""
    n, t = clips.shape[:2]
    images = clips.reshape(n * t, 3, 224, 224)
    report = {}
    for runtime, run in (("onnxruntime", run_ort), ("tract", run_tract)):
        for backbone in ("backbone.onnx", "backbone.int8.onnx"):
            feats = np.concatenate([run(model_dir / backbone, {"image": images[i:i + 1]})["feature"]
                                    for i in range(n * t)]).reshape(n, t, -1)
            got = run(model_dir / "temporal.onnx", {"features": feats})
            angles = joint_angle_errors(reference["pose6d"], got["pose6d"])
            entry = {k: diff(reference[k], got[k]) for k in reference}
            entry["feature"] = diff(ref_windows, feats)
            entry["joint_angle_deg"] = {"max": float(angles.max()), "mean": float(angles.mean())}
            report[f"{runtime} {backbone} -> temporal.onnx"] = entry
    return report
