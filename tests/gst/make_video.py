#!/usr/bin/env python3
"""Writes a small Ogg/Theora test video (videotestsrc, frame numbers drawn in) with GStreamer
through Debian's Python GObject bindings (python3-gi, python3-gst-1.0; theoraenc and oggmux are
in gstreamer1.0-plugins-base). Ogg/Theora, because decoding it needs only the base plugins, the
set the .deb depends on: the ARM smoke runs under qemu-user read it (cross/build-debian.sh).

    python3 tests/gst/make_video.py OUT.ogv [--frames 24] [--size 160x120] [--fps 25]

Runs with the system's python3 (the bindings are Debian packages, not PyPI's).
"""
import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", default="160x120")
    ap.add_argument("--fps", type=int, default=25)
    args = ap.parse_args()
    Gst.init(None)
    width, height = args.size.split("x")
    pipeline = Gst.parse_launch(
        f"videotestsrc num-buffers={args.frames} pattern=ball "
        f"! video/x-raw,format=I420,width={width},height={height},framerate={args.fps}/1 "
        f"! theoraenc ! oggmux ! filesink location={args.out}"
    )
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(
        60 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR
    )
    pipeline.set_state(Gst.State.NULL)
    if msg is None or msg.type != Gst.MessageType.EOS:
        err = msg.parse_error()[0].message if msg else "timed out"
        sys.exit(f"make_video: {args.out}: {err}")


if __name__ == "__main__":
    main()
