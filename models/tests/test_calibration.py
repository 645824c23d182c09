"""convert.py --calib-dir: the int8 backbone calibrated on crops of the user's scene (PNGs as
`smplcast run --save-crops` writes them), split in time, with a held-out report; and clear
errors for directories that hold no such crops."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import io

from smplcast_models import data, scene

MODELS = Path(__file__).resolve().parents[1]

# 12 crops, 2 tracks interleaved in time: track 7 on even frames, track 3 on odd ones. Sorting
# by name (track first) would put all of track 3 first, so only a split by frame holds out
# frames 9, 10 and 11.
NAMES = [f"t{(7 if f % 2 == 0 else 3):05d}-f{100 + f:09d}.png" for f in range(12)]
HELD_OUT = 3  # floor(12 × 0.25)


def _convert():
    spec = importlib.util.spec_from_file_location("calib_convert", MODELS / "convert.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _save(path: Path, rgb: np.ndarray) -> None:
    io.imsave(str(path), rgb, check_contrast=False)


@pytest.fixture(scope="module")
def crop_dir(tmp_path_factory):
    """Real crops (of the scikit-image photographs, made by data.crop), de-normalised to 8-bit
    RGB and saved as the daemon names them."""
    d = tmp_path_factory.mktemp("crops")
    for name, img in zip(NAMES, data.images(len(NAMES), seed=900)):
        _save(d / name, data.to_rgb8(img))
    return d


@pytest.fixture(scope="module")
def calibrated(crop_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("calib-narrow")
    threads = torch.get_num_threads()  # main() sets 1 thread for the whole process
    try:
        rc = _convert().main(["--random-init", "0", "--narrow", "--out", str(out), "--calib-dir",
                              str(crop_dir), "--calib-images", "4", "--calib-clips", "2"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    return out


def test_calib_dir_writes_the_graph_and_the_report(calibrated, crop_dir):
    assert (calibrated / "backbone.int8.onnx").is_file()
    cal = json.loads((calibrated / "parity.json").read_text())["calibration"]
    assert cal["dir"] == str(crop_dir)
    assert cal["crops"] == len(NAMES)
    assert len(cal["held_out"]) == HELD_OUT
    assert len(cal["calibrated_on"]) == 4  # --calib-images 4 of the 9 earlier crops
    for source in ("scene", "photos"):
        assert set(cal[source]) == {"onnxruntime", "tract"}
        for runtime, d in cal[source].items():
            for key in ("max_rel_to_scale", "mean_rel_to_scale"):
                v = d["feature"][key]
                assert math.isfinite(v) and v > 0, (source, runtime, key, v)
            assert d["feature"]["mean_rel_to_scale"] <= d["feature"]["max_rel_to_scale"]
    assert not list(calibrated.glob("*.pre.onnx"))


def test_calib_held_out_are_the_last_in_time(calibrated):
    cal = json.loads((calibrated / "parity.json").read_text())["calibration"]
    assert cal["held_out"] == ["t00003-f000000109.png", "t00007-f000000110.png",
                               "t00003-f000000111.png"]
    # Evenly spaced over frames 100..108, in time order.
    assert cal["calibrated_on"] == ["t00007-f000000100.png", "t00003-f000000103.png",
                                    "t00003-f000000105.png", "t00007-f000000108.png"]


def test_calib_split_orders_by_frame_then_by_name():
    paths = [Path(n) for n in ("t00002-f000000005.png", "t00001-f000000009.png", "b.png",
                               "t00001-f000000001.png", "a.png")]
    assert [p.name for p in scene.time_order(paths)] == [
        "t00001-f000000001.png", "t00002-f000000005.png", "t00001-f000000009.png", "a.png", "b.png"]
    calibrate, held = scene.split(paths, 0.25, cap=32)
    assert [p.name for p in held] == ["b.png"]  # floor(5 × 0.25) = 1
    assert len(calibrate) == 4
    calibrate, held = scene.split(paths[:2], 0.9, cap=32)  # at least 1 calibrated on
    assert (len(calibrate), len(held)) == (1, 1)


def _error(capsys, *args) -> str:
    with pytest.raises(SystemExit) as e:
        _convert().parse_args(["--random-init", "0", "--narrow", "--out", "unused", *args])
    assert e.value.code == 2
    return capsys.readouterr().err


def test_calib_dir_without_pngs(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("no crops here")
    err = _error(capsys, "--calib-dir", str(tmp_path))
    assert f"{tmp_path}: no .png files" in err
    assert "smplcast run --save-crops" in err


def test_calib_dir_with_one_png(tmp_path, capsys):
    _save(tmp_path / NAMES[0], np.zeros((224, 224, 3), np.uint8))
    err = _error(capsys, "--calib-dir", str(tmp_path))
    assert f"{tmp_path}: 1 crop; need at least 2" in err


@pytest.mark.parametrize("shape, found", [((100, 100, 3), "100×100 RGB (uint8)"),
                                          ((224, 224), "224×224 grayscale (uint8)"),
                                          ((224, 224, 4), "224×224 RGBA (uint8)")])
def test_calib_dir_with_a_crop_of_the_wrong_form(tmp_path, capsys, shape, found):
    for name in NAMES[:3]:
        _save(tmp_path / name, np.zeros((224, 224, 3), np.uint8))
    bad = tmp_path / NAMES[3]
    _save(bad, np.full(shape, 128, np.uint8))
    err = _error(capsys, "--calib-dir", str(tmp_path))
    assert f"{bad}: {found}; expected a 224×224 8-bit RGB PNG" in err


def test_calib_holdout_out_of_range(tmp_path, capsys):
    err = _error(capsys, "--calib-dir", str(tmp_path), "--calib-holdout", "1")
    assert "--calib-holdout 1.0: must be between 0 and 1" in err
