"""The independent Python decoder (smplcast_sub, from docs/WIRE.md) reads the committed vectors
to exactly their JSON values, and rejects malformed messages."""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import cbor2
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import smplcast_sub  # noqa: E402

VECTORS = sorted((HERE.parent / "data" / "wire").glob("*.cbor"))


def test_there_are_vectors():
    assert len(VECTORS) >= 3


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector_decodes_to_its_json(path):
    msg = smplcast_sub.decode(path.read_bytes())
    want = json.loads(path.with_suffix(".json").read_text())
    assert msg == want  # binary16 values are exact in both


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector_is_plain_cbor_with_typed_arrays(path):
    raw = cbor2.loads(path.read_bytes())
    for p in raw["people"]:
        assert p["pose"].tag == 84 and len(p["pose"].value) == 144
        assert p["shape"].tag == 84 and len(p["shape"].value) == 20
        if "joints" in p:
            assert p["joints"].tag == 84 and len(p["joints"].value) == 144


def _one() -> dict:
    return cbor2.loads((HERE.parent / "data" / "wire" / "v1-one-person.cbor").read_bytes())


@pytest.mark.parametrize("mutate, error", [
    (lambda m: m.update(v=2), "schema version 2"),
    (lambda m: m.pop("seq"), "missing key 'seq'"),
    (lambda m: m.update(seq="1"), "'seq' is str"),
    (lambda m: m["people"][0].update(pose=cbor2.CBORTag(85, b"\0" * 144)), "tag-84"),
    (lambda m: m["people"][0].update(pose=cbor2.CBORTag(84, b"\0" * 142)), "142 bytes"),
    (lambda m: m["people"][0].update(box=[1, 2, 3]), "'box'"),
    (lambda m: m["people"][0].update(predicted=False), "'predicted'"),
    (lambda m: m["win"].update(fps=0.0), "'fps' must be a positive float"),
    (lambda m: m["win"].update(fps=10), "'fps' must be a positive float"),
])
def test_malformed_messages_are_rejected(mutate, error):
    m = _one()
    mutate(m)
    with pytest.raises(smplcast_sub.DecodeError, match=error):
        smplcast_sub.decode(cbor2.dumps(m))


def test_unknown_keys_are_ignored():
    m = _one()
    m["future_key"] = [1, 2]
    assert smplcast_sub.decode(cbor2.dumps(m))["people"][0]["id"] == 0


def test_f16_little_endian():
    assert smplcast_sub.f16_array(cbor2.CBORTag(84, struct.pack("<2e", 1.5, -3.140625)), 2) == [1.5, -3.140625]
