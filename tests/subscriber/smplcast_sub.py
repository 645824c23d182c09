"""A third-party decoder for smplcast pose messages, written from docs/WIRE.md alone (it shares
no code with the daemon). Used by the subscriber tests; also a starting point for users.

    import smplcast_sub
    msg = smplcast_sub.decode(payload)      # dict, as in docs/WIRE.md, with pose/shape as lists
    header, messages = smplcast_sub.read_recording("session.rec")   # `smplcast sub --record`
"""
from __future__ import annotations

import io
import math
import struct

import cbor2

SCHEMA_VERSION = 1
TAG_F16_LE = 84
HEADER = {"v": int, "dev": str, "seq": int, "frame": int, "utc_us": int, "mono_ns": int,
          "model": str, "win": dict, "img": list, "people": list}
PERSON = {"id": int, "box": list, "score": float, "cam": list, "cam_img": list,
          "pose": cbor2.CBORTag, "shape": cbor2.CBORTag}
ARRAY_LEN = {"pose": 72, "shape": 10}
OPTIONAL_ARRAY_LEN = {"joints": 72}  # 24 posed joints × [x, y, z], metres
FLOATS_LEN = {"cam": 3, "cam_img": 4}


class DecodeError(ValueError):
    pass


def f16_array(value, n: int) -> list[float]:
    if not isinstance(value, cbor2.CBORTag) or value.tag != TAG_F16_LE:
        raise DecodeError(f"expected a tag-{TAG_F16_LE} typed array, got {value!r:.60}")
    if not isinstance(value.value, bytes) or len(value.value) != 2 * n:
        raise DecodeError(f"typed array of {len(value.value)} bytes, expected {2 * n}")
    return list(struct.unpack(f"<{n}e", value.value))


def _check(obj: dict, schema: dict, where: str) -> None:
    for key, kind in schema.items():
        if key not in obj:
            raise DecodeError(f"{where}: missing key {key!r}")
        if not isinstance(obj[key], kind) or (kind is int and isinstance(obj[key], bool)):
            raise DecodeError(f"{where}: {key!r} is {type(obj[key]).__name__}, expected {kind.__name__}")


def decode(payload: bytes) -> dict:
    """Decodes one pose message; unknown keys are kept but not interpreted."""
    msg = cbor2.loads(payload)
    if not isinstance(msg, dict):
        raise DecodeError("a pose message is a CBOR map")
    if msg.get("v") != SCHEMA_VERSION:
        raise DecodeError(f"schema version {msg.get('v')!r}, this decoder reads {SCHEMA_VERSION}")
    _check(msg, HEADER, "message")
    if set(msg["win"]) < {"len", "lookahead"} or len(msg["img"]) != 2:
        raise DecodeError("message: bad 'win' or 'img'")
    fps = msg["win"].get("fps", 1.0)
    if not isinstance(fps, float) or not fps > 0:
        raise DecodeError(f"message: 'win' 'fps' must be a positive float, not {fps!r}")
    for i, p in enumerate(msg["people"]):
        _check(p, PERSON, f"person {i}")
        if len(p["box"]) != 4 or not all(isinstance(v, int) and v >= 0 for v in p["box"]):
            raise DecodeError(f"person {i}: 'box' must be 4 unsigned integers")
        for key, n in FLOATS_LEN.items():
            if len(p[key]) != n or not all(isinstance(v, float) for v in p[key]):
                raise DecodeError(f"person {i}: {key!r} must be {n} floats")
        for key, n in ARRAY_LEN.items():
            p[key] = f16_array(p[key], n)
        for key, n in OPTIONAL_ARRAY_LEN.items():
            if key in p:
                p[key] = f16_array(p[key], n)
        if p.get("predicted", True) is not True:
            raise DecodeError(f"person {i}: 'predicted' is present only as true")
    return msg


# docs/WIRE.md, "Meaning" and "Precision": the values a decoded message may hold.
WINDOW_LEN = 16
LOOKAHEADS = (0, 7)  # 7 while a window reaches past the frame; 0 at a track's ends, or nobody
MAX_ANGLE = math.pi * (1 + 2 ** -11)  # π, and binary16's rounding of the three components


def violations(msg: dict) -> list[str]:
    """Every rule of docs/WIRE.md that a decoded message breaks (empty: none). `decode` checks
    the structure; this checks the values."""
    out = []
    if not msg["dev"]:
        out.append("'dev' is empty")
    for key in ("seq", "frame", "mono_ns"):
        if msg[key] < 0:
            out.append(f"{key!r} is negative")
    win, (width, height) = msg["win"], msg["img"]
    if win["len"] != WINDOW_LEN:
        out.append(f"'win' 'len' is {win['len']}, not {WINDOW_LEN}")
    if win["lookahead"] not in LOOKAHEADS:
        out.append(f"'win' 'lookahead' is {win['lookahead']}, not one of {LOOKAHEADS}")
    if not msg["people"] and win["lookahead"] != 0:
        out.append("'win' 'lookahead' is not 0 with nobody tracked")
    if not (width > 0 and height > 0):
        out.append(f"'img' {msg['img']} is not a size")
    ids = [p["id"] for p in msg["people"]]
    if ids != sorted(set(ids)):
        out.append(f"people ids {ids} are not ascending and unique")
    for p in msg["people"]:
        who = f"person {p['id']}"
        left, top, w, h = p["box"]
        if w == 0 or h == 0 or left + w > width or top + h > height:
            out.append(f"{who}: box {p['box']} is not inside the {width}×{height} image")
        if not 0.0 <= p["score"] <= 1.0:
            out.append(f"{who}: score {p['score']} is not in [0, 1]")
        for key in ("cam", "cam_img", "pose", "shape", "joints"):
            if not all(math.isfinite(v) for v in p.get(key, [])):
                out.append(f"{who}: {key!r} holds a value that is not finite")
        for j in range(24):
            angle = math.sqrt(sum(v * v for v in p["pose"][3 * j:3 * j + 3]))
            if angle > MAX_ANGLE:
                out.append(f"{who}: joint {j} rotates {angle:.5f} rad, over π")
    return out


RECORDING_VERSION = 1
RECORDED = {"t_ns": int, "topic": str, "qos": int, "retain": bool, "payload": bytes}


def read_recording(path) -> tuple[dict, list[dict]]:
    """Reads a recording (docs/WIRE.md, "Recordings"): the header and every whole message, in
    order. A last message cut short (the recorder was stopped mid-write) is left out."""
    with open(path, "rb") as f:
        data = f.read()
    stream = io.BytesIO(data)
    header = cbor2.load(stream)
    if not isinstance(header, dict) or header.get("smplcast_recording") != RECORDING_VERSION:
        raise DecodeError(f"{path}: not a version {RECORDING_VERSION} smplcast recording")
    messages = []
    while stream.tell() < len(data):
        start = stream.tell()
        try:
            m = cbor2.load(stream)
        except cbor2.CBORDecodeEOF:
            stream.seek(start)
            break
        _check(m, RECORDED, f"recorded message {len(messages)}")
        messages.append(m)
    return header, messages
