#!/usr/bin/env python3
"""How well smplcast finds and tracks people in real footage, against hand labels.

    models/run people_eval.py --smplcast target/release/smplcast [--detector FILE] \\
        [--report docs/people-eval.md] [--check]

The footage is `vtest.avi` (pedestrians crossing a plaza, 768 × 576, 10 fps, 795 frames) from
Debian's `opencv-doc` package: downloaded with `apt-get download` into models/.cache/ and only
that file extracted, checked against the sha256 in the labels. The labels
(tests/data/people/vtest.json) box every person on every 20th frame, by hand (how: the file's
`labelling`).

Two conditions (CONDITIONS): the footage as it is ("far": people at 12–25 % of the frame
height) and a 3× zoom on the plaza's centre ("near": 35–75 %), a crop of the same real frames
with the labels cropped alike.

The daemon runs as deployed, with two settings for an offline replay: `person.max_people` 16
(the default 4 is a compute budget: beyond it, people are tracked but not reported) and
`mqtt.max_age_s` a day (an unpaced replay must not drop messages as stale): `smplcast run` on the frames (a `files` source, unpaced, so no
frame is dropped), the person detector and tracker, the bundled narrow model, publishing to a
mosquitto on loopback; `smplcast sub --record` records what a subscriber gets. Scored:

- **Recall** per person-height band (height / frame height: ≥ 0.6, 0.4–0.6, 0.25–0.4,
  0.12–0.25): a labelled person counts as found when a reported box overlaps theirs with
  IoU ≥ 0.5 (one box per person, Hungarian matching). People under 0.12, people mostly hidden
  (`occluded`: their recall is given apart) and `ignore` boxes are neither counted as missed
  nor, when a box lands on them, as false.
- **Precision**: reported boxes that match a labelled person, over all reported boxes outside
  the ignored ones; per band by the reported box's height.
- **Id switches** per person per 10 s visible: the reported id of a labelled person changes
  between two consecutive labelled frames (2 s apart) where they were found in both. The
  labels' `tracks` link people across labelled frames (how: the labels' `labelling`); time
  visible is 2 s per link. **Fragmentations**: found, missed in a labelled frame, found again.
- **Empty frames**: labelled frames with someone of ≥ 0.12 visible and nobody reported.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LABELS = ROOT / "tests/data/people/vtest.json"
BANDS = [(0.6, 10.0, "≥ 0.6"), (0.4, 0.6, "0.4–0.6"), (0.25, 0.4, "0.25–0.4"),
         (0.12, 0.25, "0.12–0.25")]
MIN_HEIGHT = 0.12
IOU = 0.5
# The goals (docs/people-eval.md): recall ≥ 0.9 at ≥ 0.25 of the frame height, ≥ 0.7 at
# 0.12–0.25; precision ≥ 0.9; ≤ 1 id switch per person per 10 s visible.
GOALS = {"recall_large": 0.9, "recall_small": 0.7, "precision": 0.9, "switches_per_10s": 1.0}


# --- footage ---------------------------------------------------------------------------------

def fetch_footage(cache: Path, want_sha: str) -> Path:
    """vtest.avi from Debian's opencv-doc, extracted alone into `cache`."""
    avi = cache / "vtest.avi"
    if avi.exists() and sha256_file(avi) == want_sha:
        return avi
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", "opencv-doc"], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        deb = next(Path(tmp).glob("opencv-doc_*.deb"))
        member = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
        tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True,
                             capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp, member], input=tar, check=True)
        shutil.move(str(Path(tmp) / member), avi)
    got = sha256_file(avi)
    if got != want_sha:
        raise SystemExit(f"{avi}: sha256 {got}, the labels are for {want_sha}")
    return avi


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# Conditions: the footage as it is (people 12–25 % of the frame height, a camera on a first
# floor), and a 3× zoom on the plaza's centre (the same people at 35–75 %, as a closer camera
# sees them): a crop of the real frames, upscaled, with the labels cropped and scaled alike.
CONDITIONS = {"far": None, "near (3× zoom)": (232, 150, 256, 192)}


def write_frames(avi: Path, out: Path, crop=None) -> int:
    """Every frame (or its `crop` (left, top, width, height), upscaled to the frame's size) as
    JPEG (quality 95), 0000.jpg …; returns the count."""
    import cv2
    if out.exists() and (out / ".done").exists():
        return int((out / ".done").read_text())
    out.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(avi))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if crop:
            x, y, w, h = crop
            frame = cv2.resize(frame[y:y + h, x:x + w], (frame.shape[1], frame.shape[0]),
                               interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(out / f"{n:04d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        n += 1
    (out / ".done").write_text(str(n))
    return n


def crop_labels(labels: dict, crop) -> dict:
    """The labels of the cropped, upscaled frames: boxes cut to the crop and scaled; a person
    with less than half their box inside becomes an ignored box."""
    if not crop:
        return labels
    x, y, w, h = crop
    fw, fh = labels["footage"]["size"]
    sx, sy = fw / w, fh / h

    def move(b):
        c = [max(b[0], x), max(b[1], y), min(b[2], x + w), min(b[3], y + h)]
        if c[2] <= c[0] or c[3] <= c[1]:
            return None, 0.0
        inside = (c[2] - c[0]) * (c[3] - c[1]) / ((b[2] - b[0]) * (b[3] - b[1]))
        return [(c[0] - x) * sx, (c[1] - y) * sy, (c[2] - x) * sx, (c[3] - y) * sy], inside

    out = {**labels, "frames": {}}
    for f, lab in labels["frames"].items():
        people, tracks, occluded, ignore = [], [], [], []
        for b, t, o in zip(lab["people"], lab["tracks"], lab["occluded"]):
            moved, inside = move(b)
            if moved is None:
                continue
            if inside >= 0.5:
                people.append(moved)
                tracks.append(t)
                occluded.append(o)
            else:
                ignore.append(moved)
        ignore += [m for m, _ in map(move, lab["ignore"]) if m is not None]
        out["frames"][f] = {"people": people, "tracks": tracks, "occluded": occluded,
                            "ignore": ignore}
    return out


# --- scoring ---------------------------------------------------------------------------------

def iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(gt: list, pred: list) -> list[tuple[int, int]]:
    """Pairs (gt index, pred index) with IoU ≥ 0.5, maximising total IoU (Hungarian)."""
    from scipy.optimize import linear_sum_assignment
    if not gt or not pred:
        return []
    m = np.array([[iou(g, p) for p in pred] for g in gt])
    rows, cols = linear_sum_assignment(-m)
    return [(r, c) for r, c in zip(rows, cols) if m[r, c] >= IOU]


def band(height: float, frame_h: float):
    h = height / frame_h
    return next((name for lo, hi, name in BANDS if lo <= h < hi), None)


def score(labels: dict, reported: dict) -> dict:
    """`reported`: frame → [(id, [x0, y0, x1, y1], predicted)]."""
    frame_h = labels["footage"]["size"][1]
    frames = labels["frames"]
    found = {name: [0, 0] for *_, name in BANDS}      # band → [found, labelled]
    true = {name: [0, 0] for *_, name in BANDS}       # band → [matched, reported]
    empty, with_people = 0, 0
    occluded = [0, 0]                                  # [found, labelled] mostly hidden
    matched_id = {}                                    # (frame, gt index) → reported id
    ident = {(f, g): k for f, lab in frames.items() for g, k in enumerate(lab["tracks"])}
    for f, lab in frames.items():
        people = lab["people"]
        pred = reported.get(int(f), [])
        boxes = [p[1] for p in pred]
        pairs = match(people, boxes)
        hit_gt = {g for g, _ in pairs}
        hit_pred = {p for _, p in pairs}
        # People under 0.12 and mostly hidden ones are neither found nor missed.
        counted = [None if o else band(b[3] - b[1], frame_h)
                   for b, o in zip(people, lab["occluded"])]
        for g, o in enumerate(lab["occluded"]):
            if o:
                occluded[1] += 1
                occluded[0] += g in hit_gt
        for g, b in enumerate(people):
            if counted[g]:
                found[counted[g]][1] += 1
                found[counted[g]][0] += g in hit_gt
        for g, p in pairs:
            matched_id[(f, g)] = pred[p][0]
        ignore = [people[g] for g in range(len(people)) if not counted[g]] + lab["ignore"]
        for p, b in enumerate(boxes):
            name = band(b[3] - b[1], frame_h) or BANDS[-1][2]
            on_ignored = p not in hit_pred and any(iou(b, i) >= IOU for i in ignore)
            if p in hit_pred and counted[[g for g, q in pairs if q == p][0]] is None:
                continue  # matched a person under 0.12: neither true nor false
            if on_ignored:
                continue
            true[name][1] += 1
            true[name][0] += p in hit_pred
        if any(counted):
            with_people += 1
            empty += not pred
    # Identities: switches and fragmentations along each labelled identity.
    chains: dict[int, list] = {}
    for (f, g), k in sorted(ident.items(), key=lambda kv: int(kv[0][0])):
        chains.setdefault(k, []).append((f, g))
    switches = frags = links = 0
    for chain in chains.values():
        seen_missing = False
        last = None
        for f, g in chain:
            rid = matched_id.get((f, g))
            if rid is None:
                seen_missing = last is not None or seen_missing
                continue
            if last is not None:
                links += 1
                switches += rid != last
                frags += seen_missing
            seen_missing = False
            last = rid
    step_s = 2.0  # labelled frames are 20 frames apart at 10 fps
    visible_10s = links * step_s / 10.0
    tot_found = sum(v[0] for v in found.values())
    tot_true = sum(v[0] for v in true.values())
    tot_rep = sum(v[1] for v in true.values())
    large = [found[n] for lo, _, n in BANDS if lo >= 0.25]
    large_f, large_n = sum(v[0] for v in large), sum(v[1] for v in large)
    return {
        "recall": {n: ratio(*found[n]) for *_, n in BANDS},
        "labelled": {n: found[n][1] for *_, n in BANDS},
        "precision": {n: ratio(*true[n]) for *_, n in BANDS},
        "reported": {n: true[n][1] for *_, n in BANDS},
        "recall_all": ratio(tot_found, sum(v[1] for v in found.values())),
        "recall_occluded": ratio(*occluded),
        "occluded": occluded[1],
        "recall_large": ratio(large_f, large_n),
        "precision_all": ratio(tot_true, tot_rep),
        "links": links,
        "switches": switches,
        "fragmentations": frags,
        "switches_per_10s": switches / visible_10s if visible_10s else None,
        "fragmentations_per_10s": frags / visible_10s if visible_10s else None,
        "empty_frames": empty,
        "frames_with_people": with_people,
    }


def ratio(a, b):
    return round(a / b, 3) if b else None


# --- the daemon ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_daemon(smplcast: Path, frames: Path, detector: Path, work: Path,
               extra: str = "") -> dict:
    """Runs the daemon on `frames`; returns frame → [(id, box corners)] as a subscriber got
    them."""
    import cbor2
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    config = work / "config.toml"
    config.write_text(f"""device_id = "eval"
[source]
kind = "files"
path = "{frames}"
fps = 0
[person]
detector = "{detector}"
max_people = 16
{extra}
[model]
dir = "{ROOT / 'models/fixtures/narrow'}"
[mqtt]
host = "127.0.0.1"
port = {port}
max_age_s = 86400
""")
    rec = work / "session.rec"
    broker = subprocess.Popen(["mosquitto", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        sub = subprocess.Popen([str(smplcast), "sub", "--port", str(port), "--device", "eval",
                                "--record", str(rec)], stdout=subprocess.DEVNULL)
        time.sleep(1.0)
        log = work / "daemon.log"
        with open(log, "w") as out:
            rc = subprocess.run([str(smplcast), "run", "--config", str(config)], stdout=out,
                                stderr=subprocess.STDOUT, timeout=1800).returncode
        if rc != 0:
            raise SystemExit(f"smplcast run failed ({rc}); see {log}")
        time.sleep(1.0)
        sub.send_signal(signal.SIGINT)
        sub.wait(timeout=30)
    finally:
        broker.terminate()
        broker.wait()
    out = {}
    with open(rec, "rb") as f:
        items = list(cbor2_sequence(f.read(), cbor2))
    for item in items[1:]:
        if not item["topic"].endswith("/pose"):
            continue
        msg = cbor2.loads(item["payload"])
        out[msg["frame"]] = [(p["id"], [p["box"][0], p["box"][1], p["box"][0] + p["box"][2],
                                        p["box"][1] + p["box"][3]], p.get("predicted", False))
                             for p in msg["people"]]
    return out


def cbor2_sequence(data: bytes, cbor2):
    import io
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        yield cbor2.load(stream)


def wait_port(port: int, timeout: float = 10.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"mosquitto did not listen on {port}")


# --- report ----------------------------------------------------------------------------------

PICTURES = [60, 220, 500, 620]


def draw(frames: Path, labels: dict, reported: dict, out: Path, tag: str):
    """Labelled frames with the labels (thin white) and what the daemon reported (a colour per
    id, the id above; a predicted box dashed), as PNG."""
    import cv2
    out.mkdir(parents=True, exist_ok=True)
    for f in PICTURES:
        img = cv2.imread(str(frames / f"{f:04d}.jpg"))
        for b in labels["frames"][str(f)]["people"]:
            b = [int(round(v)) for v in b]
            cv2.rectangle(img, (b[0], b[1]), (b[2], b[3]), (255, 255, 255), 1)
        for rid, b, predicted in reported.get(f, []):
            colour = [int(c) for c in
                      cv2.cvtColor(np.uint8([[[rid * 47 % 180, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]]
            b = [int(round(v)) for v in b]
            if predicted:
                for x in range(b[0], b[2], 6):
                    cv2.line(img, (x, b[1]), (min(x + 3, b[2]), b[1]), colour, 2)
                    cv2.line(img, (x, b[3]), (min(x + 3, b[2]), b[3]), colour, 2)
            else:
                cv2.rectangle(img, (b[0], b[1]), (b[2], b[3]), colour, 2)
            cv2.putText(img, str(rid), (b[0], max(10, b[1] - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        colour, 1, cv2.LINE_AA)
        cv2.putText(img, f"{tag}, frame {f}", (8, 568), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                    (255, 255, 255), 2, cv2.LINE_AA)
        cv2.imwrite(str(out / f"{tag}-{f:04d}.png"), img)

def table(results: dict[str, dict]) -> str:
    names = list(results)
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for *_, n in BANDS:
        cells = [f"{fmt(r['recall'][n])} ({r['labelled'][n]})" for r in results.values()]
        lines.append(f"| recall, height {n} (labelled) | " + " | ".join(cells) + " |")
    for key, label in [("recall_all", "recall, all ≥ 0.12"),
                       ("recall_occluded", "recall, mostly hidden behind the sign (not in the goals)"),
                       ("precision_all", "precision"),
                       ("switches_per_10s", "id switches per person per 10 s"),
                       ("fragmentations_per_10s", "fragmentations per person per 10 s")]:
        lines.append(f"| {label} | " + " | ".join(fmt(r[key]) for r in results.values()) + " |")
    lines.append("| labelled frames with people and nobody reported | " + " | ".join(
        f"{r['empty_frames']} of {r['frames_with_people']}" for r in results.values()) + " |")
    return "\n".join(lines)


def fmt(v):
    return "—" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def check(r: dict) -> list[str]:
    bad = []
    if r["recall_large"] is not None and r["recall_large"] < GOALS["recall_large"]:
        bad.append(f"recall at ≥ 0.25 {r['recall_large']} < {GOALS['recall_large']}")
    small = r["recall"]["0.12–0.25"]
    if small is not None and small < GOALS["recall_small"]:
        bad.append(f"recall at 0.12–0.25 {small} < {GOALS['recall_small']}")
    if r["precision_all"] is not None and r["precision_all"] < GOALS["precision"]:
        bad.append(f"precision {r['precision_all']} < {GOALS['precision']}")
    s = r["switches_per_10s"]
    if s is not None and s > GOALS["switches_per_10s"]:
        bad.append(f"id switches per person per 10 s {s:.2f} > {GOALS['switches_per_10s']}")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smplcast", type=Path, help="the smplcast binary (required to evaluate)")
    ap.add_argument("--fetch-only", action="store_true",
                    help="only fetch the footage into models/.cache/ (tests/gstreamer.rs replays it)")
    ap.add_argument("--detector", type=Path, action="append",
                    help="detector ONNX (repeat to compare); default the NanoDet one")
    ap.add_argument("--person", default="", help="extra [person] config lines")
    ap.add_argument("--work", type=Path, default=ROOT / "target/people-eval")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--check", action="store_true", help="fail below the goals")
    ap.add_argument("--pictures", type=Path, help="draw labels and reports on a few frames here")
    args = ap.parse_args()
    labels = json.loads(LABELS.read_text())
    avi = fetch_footage(HERE / ".cache", labels["footage"]["sha256"])
    if args.fetch_only:
        print(avi)
        return
    if args.smplcast is None:
        ap.error("--smplcast is required")
    detectors = args.detector or [ROOT / "models/nanodet/nanodet.onnx"]
    results = {}
    for cond, crop in CONDITIONS.items():
        tag = cond.split()[0]
        frames = args.work / f"vtest-{tag}"
        n = write_frames(avi, frames, crop)
        assert n == labels["footage"]["frames"], n
        lab = crop_labels(labels, crop)
        for d in detectors:
            d = d.resolve()
            t0 = time.monotonic()
            reported = run_daemon(args.smplcast.resolve(), frames, d,
                                  args.work / f"{d.stem}-{tag}",
                                  args.person.replace("\\n", "\n"))
            r = score(lab, reported)
            r["seconds"] = round(time.monotonic() - t0, 1)
            results[f"{d.stem}, {cond}"] = r
            print(f"{d.stem}, {cond}: recall {r['recall_all']}, precision {r['precision_all']}, "
                  f"id switches per 10 s {fmt(r['switches_per_10s'])} ({r['seconds']} s)",
                  flush=True)
            if args.pictures:
                draw(frames, lab, reported, args.pictures, f"{d.stem}-{tag}")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    if args.check:
        bad = []
        for cond in CONDITIONS:
            bad += [f"{cond}: {b}" for b in check(results[f"{Path(detectors[0]).stem}, {cond}"])]
        if bad:
            raise SystemExit("people_eval: below the goals: " + "; ".join(bad))
        print("people_eval: the goals hold")


if __name__ == "__main__":
    main()
