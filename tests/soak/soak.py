#!/usr/bin/env python3
"""Soak test: the daemon at full speed for a while, watched from outside.

Starts mosquitto on a free loopback port, a paho-mqtt subscriber (decoding every pose with the
spec-only decoder tests/subscriber/smplcast_sub.py), and `smplcast run` on an unpaced synthetic
source (as fast as the model goes, nothing dropped by design), or with `--source rtsp` on an
RTSP camera: tests/gst/rtsp_server.py streaming H.264 at 25 fps, 640 × 480 (a build with the
`gstreamer` feature). Every second it records the
daemon's RSS (/proc/PID/status) and the queue depths of its stats message into a CSV, then
checks:
  - RSS growth after the warm-up (the first 20 % of the run, at least 10 s) < 2 MB;
  - no queue grows: each queue's mean depth in the last quarter is at most one more than in
    the first three quarters, and never beyond its bound;
  - seq continuity on the subscriber: every seq from 0 to the last, once, all decodable.
Exits non-zero when a check fails and prints one JSON summary line.

    models/run ../tests/soak/soak.py --seconds 600 --binary target/release/smplcast
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/subscriber"))
import smplcast_sub  # noqa: E402

RSS_GROWTH_LIMIT_KB = 2048


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"mosquitto did not listen on {port}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--binary", default=str(ROOT / "target/release/smplcast"))
    ap.add_argument("--models", default=str(ROOT / "models/fixtures/narrow"))
    ap.add_argument("--csv", default=None, help="where to write the per-second samples")
    ap.add_argument("--source", choices=["synthetic", "rtsp"], default="synthetic")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="smplcast-soak-"))
    port = free_port()
    broker = subprocess.Popen(["mosquitto", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wait_port(port)

    seqs: list[int] = []
    undecodable = [0]
    stats: list[dict] = []
    lock = threading.Lock()
    subscribed = threading.Event()

    def on_connect(client, userdata, flags, reason, props):
        client.subscribe([("smplcast/soak/pose", 1), ("smplcast/soak/stats", 0)])

    def on_message(client, userdata, m):
        with lock:
            if m.topic.endswith("/stats"):
                stats.append(json.loads(m.payload))
                return
            try:
                seqs.append(smplcast_sub.decode(m.payload)["seq"])
            except smplcast_sub.DecodeError:
                undecodable[0] += 1

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = on_connect
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    subscribed.wait(10)

    camera = None
    if args.source == "rtsp":
        rtsp_port = free_port()
        # Debian's GObject bindings: the system's python3, not this venv's.
        camera = subprocess.Popen(
            ["/usr/bin/python3", str(ROOT / "tests/gst/rtsp_server.py"), "--port", str(rtsp_port),
             "--size", "640x480"], stdout=subprocess.PIPE, text=True)
        if camera.stdout.readline().strip() != f"ready {rtsp_port}":
            raise RuntimeError("the RTSP server did not start")
        source = f'kind = "rtsp"\nurl = "rtsp://127.0.0.1:{rtsp_port}/cam"\n'
    else:
        source = 'kind = "synthetic"\nwidth = 640\nheight = 480\nfps = 0\n'
    config = work / "config.toml"
    config.write_text(
        f'device_id = "soak"\n[source]\n{source}'
        f'[model]\ndir = "{args.models}"\n[mqtt]\nport = {port}\npose_qos = 1\n'
        "[stats]\ninterval_s = 1\n"
    )
    log = open(work / "daemon.log", "w")
    daemon = subprocess.Popen([args.binary, "run", "--config", str(config)],
                              stdout=subprocess.DEVNULL, stderr=log)
    samples = []
    t0 = time.monotonic()
    try:
        for second in range(1, args.seconds + 1):
            time.sleep(max(0.0, t0 + second - time.monotonic()))
            if daemon.poll() is not None:
                raise RuntimeError(f"daemon exited {daemon.returncode}: see {work}/daemon.log")
            with lock:
                last = stats[-1] if stats else {}
            queues = last.get("queues", {})
            samples.append({
                "t_s": second,
                "rss_kb": rss_kb(daemon.pid),
                "frames": queues.get("frames", {}).get("len", 0),
                "features": queues.get("features", {}).get("len", 0),
                "poses": queues.get("poses", {}).get("len", 0),
                "messages_out": last.get("messages_out", 0),
            })
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        time.sleep(1)  # the last poses reach the subscriber
        client.loop_stop()
        broker.terminate()
        broker.wait()
        if camera:
            camera.terminate()
            camera.wait()

    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(samples[0]))
            w.writeheader()
            w.writerows(samples)

    warm = max(10, args.seconds // 5)
    rss = [s["rss_kb"] for s in samples[warm:]]
    growth = max(rss) - min(rss)
    problems = []
    if growth >= RSS_GROWTH_LIMIT_KB:
        problems.append(f"RSS grew {growth} kB after the warm-up")
    bounds = {"frames": 2, "features": 4, "poses": 64}
    quarter = len(samples) * 3 // 4
    for q, bound in bounds.items():
        depth = [s[q] for s in samples]
        if max(depth) > bound:
            problems.append(f"queue {q} reached {max(depth)} > its bound {bound}")
        early, late = depth[:quarter], depth[quarter:]
        if sum(late) / len(late) > sum(early) / len(early) + 1:
            problems.append(f"queue {q} deeper at the end than before: {depth}")
    if daemon.returncode != 0:
        problems.append(f"daemon exited {daemon.returncode}")
    continuous = seqs == list(range(len(seqs)))
    if not seqs or not continuous or undecodable[0]:
        problems.append(f"seq not continuous ({len(seqs)} messages, {undecodable[0]} undecodable)")
    summary = {
        "source": args.source,
        "seconds": args.seconds,
        "messages": len(seqs),
        "messages_per_s": round(len(seqs) / args.seconds, 1),
        "rss_kb_after_warmup": [min(rss), max(rss)],
        "rss_growth_kb": growth,
        "max_queue_depth": {q: max(s[q] for s in samples) for q in bounds},
        "seq_continuous": continuous,
        "problems": problems,
    }
    print(json.dumps(summary))
    if not problems:
        for p in work.iterdir():
            p.unlink()
        work.rmdir()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
