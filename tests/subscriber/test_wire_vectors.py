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


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector_satisfies_every_rule_of_the_spec(path):
    assert smplcast_sub.violations(smplcast_sub.decode(path.read_bytes())) == []


@pytest.mark.parametrize("mutate, rule", [
    (lambda m: m.update(dev=""), "'dev' is empty"),
    (lambda m: m["win"].update(len=8), "'len' is 8"),
    (lambda m: m["win"].update(lookahead=3), "'lookahead' is 3"),
    (lambda m: m.update(people=[]), "not 0 with nobody tracked"),
    (lambda m: m.update(people=m["people"] * 2), "not ascending and unique"),
    (lambda m: m["people"][0].update(box=[212, 4512, 131, 402]), "not inside the 640×480 image"),
    (lambda m: m["people"][0].update(box=[600, 0, 41, 10]), "not inside"),
    (lambda m: m["people"][0].update(score=1.5), "score 1.5"),
    (lambda m: m["people"][0]["pose"].__setitem__(4, 3.3), "joint 1 rotates"),
    (lambda m: m["people"][0]["shape"].__setitem__(0, float("nan")), "'shape' holds"),
])
def test_each_rule_is_checked(mutate, rule):
    m = smplcast_sub.decode((HERE.parent / "data" / "wire" / "v1-one-person.cbor").read_bytes())
    assert smplcast_sub.violations(m) == []
    mutate(m)
    assert any(rule in v for v in smplcast_sub.violations(m)), smplcast_sub.violations(m)


def test_an_angle_over_pi_within_binary16_rounding_is_allowed():
    m = smplcast_sub.decode((HERE.parent / "data" / "wire" / "v1-one-person.cbor").read_bytes())
    m["people"][0]["pose"][0:3] = [3.14226, 0.0, 0.0]  # seen live: π rounded up in binary16
    assert smplcast_sub.violations(m) == []


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
