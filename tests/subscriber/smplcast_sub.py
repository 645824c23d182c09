"""A third-party decoder for smplcast pose messages, written from docs/WIRE.md alone (it shares
no code with the daemon). Used by the subscriber tests; also a starting point for users.

    import smplcast_sub
    msg = smplcast_sub.decode(payload)      # dict, as in docs/WIRE.md, with pose/shape as lists
    header, messages = smplcast_sub.read_recording("session.rec")   # `smplcast sub --record`
"""
from __future__ import annotations

import io
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
