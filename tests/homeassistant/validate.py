#!/usr/bin/env python3
"""Checks smplcast's Home Assistant MQTT discovery messages with Home Assistant's own code
(homeassistant==2024.3.3, tests/homeassistant/requirements.txt):

    tests/homeassistant/run tests/homeassistant/validate.py MESSAGES [--stats FILE] [--camera FILE]
    tests/homeassistant/run tests/homeassistant/validate.py --port PORT --device ID
    tests/homeassistant/run tests/homeassistant/validate.py --self-test

MESSAGES is a file of JSON lines, one message each: {"topic": "...", "payload": {...} or "..."}
("-": stdin). For each message:
- the topic matches HA's discovery pattern (`TOPIC_MATCHER` of
  homeassistant.components.mqtt.discovery, after the discovery prefix, `--prefix`), for a
  component HA supports (`SUPPORTED_COMPONENTS`); only `sensor` is expected here;
- the payload, after HA's abbreviation expansion (as discovery.py does it), passes the MQTT
  sensor platform's `DISCOVERY_SCHEMA`, and no key is dropped by it (the schema removes keys it
  does not know: such a key would be silently ignored by HA);
- device_class, unit_of_measurement and state_class agree with HA's sensor tables
  (`DEVICE_CLASS_UNITS`, `DEVICE_CLASS_STATE_CLASSES`), and a state_class or a unit means a
  numeric sensor (HA refuses a non-numeric state for those);
- `value_template` renders with HA's template engine against the sample payload of its
  state topic (`--stats`, `--camera`: a stats report and a camera state as JSON), to a value
  that exists (the key is in the payload) and is a number where the sensor is numeric.
Prints one line per message and exits 1 on any problem.

With `--port PORT --device ID` it reads them from a broker on 127.0.0.1 instead (paho-mqtt):
every retained message under the discovery prefix (each must come retained), and one stats
report and the camera state of the daemon `ID` (`<--mqtt-prefix>/ID/stats`, `/camera`) as the
samples; then it checks as above, and that the state topics are the daemon's own.

`--self-test` runs the same checks on broken messages (no state_topic, a unit the device class
does not take, an id HA refuses, a template key missing from the stats) and fails unless each is
rejected: it proves the checks can fail.
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import json
import sys
import tempfile
import time

import voluptuous as vol
from homeassistant.components import sensor as ha_sensor
from homeassistant.components.mqtt import discovery as ha_discovery
from homeassistant.components.mqtt import sensor as mqtt_sensor
from homeassistant.components.mqtt.abbreviations import (
    ABBREVIATIONS,
    DEVICE_ABBREVIATIONS,
    ORIGIN_ABBREVIATIONS,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import template as ha_template
from homeassistant.util.enum import try_parse_enum

# What the sample payloads of `--stats` and `--camera` stand for when absent.
SAMPLE_STATS = {
    "uptime_s": 10.0,
    "interval_s": 5.0,
    "fps_in": 25.0,
    "fps_out": 24.8,
    "frames_in": 250,
    "frames_dropped": 2,
    "frames_bad": 0,
    "frames_strided": 0,
    "source_losses": 0,
    "scene_cuts": 0,
    "messages_out": 248,
    "messages_dropped": 0,
    "messages_stale": 0,
    "inference_ms": 31.5,
    "people_per_frame": 1.0,
    "person_ms": 30.0,
    "detector_ms": 0.0,
    "post_ms": 1.2,
    "queues": {"frames": {"len": 0, "dropped": 2}},
    "mqtt_connections": 1,
}
# A bare HomeAssistant (no integration loaded): the template engine renders only with one.
HASS: list = []
SAMPLE_CAMERA = {"state": "streaming", "source": "synthetic 640×480", "since_utc_us": 0}


def expand(payload: dict) -> dict:
    """HA's abbreviation expansion (components/mqtt/discovery.py, 2024.3): keys, then the
    device's and the origin's keys, then `~` in topics."""
    payload = dict(payload)
    for key in list(payload):
        payload[ABBREVIATIONS.get(key, key)] = payload.pop(key)
    for sub, table in (("device", DEVICE_ABBREVIATIONS), ("origin", ORIGIN_ABBREVIATIONS)):
        if isinstance(payload.get(sub), dict):
            inner = dict(payload[sub])
            for key in list(inner):
                inner[table.get(key, key)] = inner.pop(key)
            payload[sub] = inner
    if "~" in payload:
        base = payload.pop("~")
        for key, value in payload.items():
            if isinstance(value, str) and key.endswith("_topic"):
                if value.startswith("~"):
                    payload[key] = base + value[1:]
                elif value.endswith("~"):
                    payload[key] = value[:-1] + base
    return payload


def numeric(config: dict) -> bool:
    """Whether HA expects a number from this sensor: its own rule (`SensorEntity.state`)."""
    return ha_sensor._numeric_state_expected(  # noqa: SLF001 - the rule itself, not a copy
        try_parse_enum(ha_sensor.SensorDeviceClass, config.get("device_class")),
        config.get("state_class"),
        config.get("unit_of_measurement"),
        config.get("suggested_display_precision"),
    )


def check(topic: str, payload, prefix: str, samples: dict) -> list[str]:
    """The problems HA would have with one discovery message."""
    problems = []
    trimmed = topic.removeprefix(f"{prefix}/")
    match = ha_discovery.TOPIC_MATCHER.match(trimmed) if trimmed != topic else None
    if match is None:
        problems.append(f"topic does not match HA's discovery pattern under {prefix!r}")
    elif match.group("component") not in ha_discovery.SUPPORTED_COMPONENTS:
        problems.append(f"component {match.group('component')!r} is not one HA supports")
    elif match.group("component") != "sensor":
        problems.append(f"component {match.group('component')!r}: only sensors expected")
    elif match.end() != len(trimmed):
        problems.append("topic has levels after HA's pattern")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError as e:
            return problems + [f"payload is not JSON: {e}"]
    if not isinstance(payload, dict):
        return problems + ["payload is not a JSON object"]
    payload = expand(payload)
    try:
        config = mqtt_sensor.DISCOVERY_SCHEMA(copy.deepcopy(payload))
    except vol.Invalid as e:
        return problems + [f"HA's MQTT sensor schema refuses it: {e}"]
    dropped = sorted(set(payload) - set(config))
    if dropped:
        problems.append(f"keys HA's schema drops (ignored by HA): {', '.join(dropped)}")
    device_class = config.get("device_class")
    unit = config.get("unit_of_measurement")
    state_class = config.get("state_class")
    if device_class in ha_sensor.NON_NUMERIC_DEVICE_CLASSES and unit is not None:
        problems.append(f"device class {device_class} is not numeric and takes no unit")
    if device_class is not None:
        units = ha_sensor.DEVICE_CLASS_UNITS.get(device_class)
        if units is not None and unit not in units:
            problems.append(
                f"unit {unit!r} is not one of device class {device_class}'s: "
                f"{sorted(str(u) for u in units)}"
            )
        classes = ha_sensor.DEVICE_CLASS_STATE_CLASSES.get(device_class)
        if state_class is not None and classes is not None and state_class not in classes:
            problems.append(
                f"state class {state_class} is not one device class {device_class} takes"
            )
    # smplcast's own rules: exact topics of the daemon, available while its status is online.
    for key in ("state_topic", "json_attributes_topic", "availability_topic"):
        if key in config and any(w in str(config[key]) for w in "+#"):
            problems.append(f"{key} {config[key]!r} has a wildcard; expected the daemon's topic")
    if not str(config.get("availability_topic", "")).endswith("/status"):
        problems.append("no availability_topic on the daemon's status topic")
    elif (config["payload_available"], config["payload_not_available"]) != ("online", "offline"):
        problems.append("availability payloads are not the status topic's online/offline")
    state_topic = str(config["state_topic"])
    leaf = state_topic.rsplit("/", 1)[-1]
    sample = samples.get(leaf)
    template = config.get("value_template")
    if template is None:
        problems.append("no value_template: the state would be the whole JSON payload")
    elif sample is None:
        problems.append(f"no sample payload for state topic {state_topic!r}")
    else:
        problems += render(template, sample, numeric(config))
    if "json_attributes_topic" in config:
        leaf = str(config["json_attributes_topic"]).rsplit("/", 1)[-1]
        if not isinstance(samples.get(leaf), dict):
            problems.append("json_attributes_topic: not a JSON object topic")
    return problems


def render(template, sample: dict, number: bool) -> list[str]:
    """Renders `template` (an HA Template) as the MQTT sensor does: `value` the payload text,
    `value_json` its JSON. A key the payload lacks renders as an undefined (an empty string,
    or HA's warning); the key must be there."""
    source = template.template if isinstance(template, ha_template.Template) else str(template)
    template = ha_template.Template(source, HASS[0])
    text = json.dumps(sample)
    problems = []
    try:
        rendered = template.async_render(
            {"value": text, "value_json": sample}, parse_result=False, strict=True
        )
    except Exception as e:  # noqa: BLE001 - HA raises TemplateError and jinja2 errors alike
        return [f"value_template {template.template!r} does not render: {e}"]
    if rendered in ("", "None"):
        problems.append(f"value_template {template.template!r} renders empty")
    if number:
        try:
            float(rendered)
        except ValueError:
            problems.append(f"value_template renders {rendered!r}, not the number HA expects")
    return problems


def collect(
    port: int, prefix: str, base: str, timeout: float, wait_for: set[str]
) -> tuple[list, dict, list[str]]:
    """From the broker: the retained discovery messages (topic, payload), the latest stats and
    camera payloads of the daemon at `base` (`smplcast/cam.0`), and problems (a discovery
    message not retained, or nothing, or no payload of `wait_for`, within `timeout` s)."""
    import paho.mqtt.client as paho  # 1.6.1, HA 2024.3.3's pin

    found: dict[str, object] = {}
    samples: dict[str, object] = {}
    problems: list[str] = []
    last = [time.monotonic()]

    def on_connect(client, userdata, flags, rc):
        client.subscribe([(f"{prefix}/#", 1), (f"{base}/stats", 0), (f"{base}/camera", 1)])

    def on_message(client, userdata, m):
        if m.topic.startswith(f"{prefix}/"):
            if not m.retain:
                problems.append(f"{m.topic}: not retained")
            if m.payload:
                found[m.topic] = m.payload.decode()
            last[0] = time.monotonic()
        else:
            samples[m.topic.rsplit("/", 1)[-1]] = json.loads(m.payload)

    client = paho.Client(client_id=f"ha-validate-{base.replace('/', '-')}")
    client.on_connect, client.on_message = on_connect, on_message
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop_start()
    deadline = time.monotonic() + timeout
    # Retained messages arrive at once; wait for a stats report, and 0.5 s of quiet.
    while time.monotonic() < deadline:
        if found and wait_for <= set(samples) and time.monotonic() - last[0] > 0.5:
            break
        time.sleep(0.05)
    client.loop_stop()
    client.disconnect()
    for what in sorted(wait_for):
        if what not in samples:
            problems.append(f"no {base}/{what} message within {timeout} s")
    if not found:
        problems.append(f"no retained message under {prefix}/ within {timeout} s")
    return sorted(found.items()), samples, problems


def read_messages(path: str) -> list[tuple[str, object]]:
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8")
    with stream:
        out = []
        for line in stream:
            if line.strip():
                m = json.loads(line)
                out.append((m["topic"], m["payload"]))
        return out


def validate(messages, prefix: str, samples: dict) -> int:
    failed = 0
    if not messages:
        print("no discovery messages")
        return 1
    for topic, payload in messages:
        problems = check(topic, payload, prefix, samples)
        failed += bool(problems)
        print(f"{'FAIL' if problems else 'ok  '} {topic}")
        for p in problems:
            print(f"     {p}")
    print(f"{len(messages) - failed}/{len(messages)} discovery messages pass Home Assistant's checks")
    return 1 if failed else 0


def self_test(prefix: str, samples: dict) -> int:
    """Broken messages, each of which must be rejected."""
    good = {
        "name": "Inference time",
        "unique_id": "smplcast_selftest_inference_ms",
        "state_topic": "smplcast/cam.0/stats",
        "value_template": "{{ value_json.inference_ms }}",
        "unit_of_measurement": "ms",
        "device_class": "duration",
        "state_class": "measurement",
        "availability_topic": "smplcast/cam.0/status",
    }
    topic = f"{prefix}/sensor/smplcast_cam_0/inference_ms/config"
    assert not check(topic, good, prefix, samples), check(topic, good, prefix, samples)
    broken = [
        ("no state_topic", topic, {k: v for k, v in good.items() if k != "state_topic"}),
        ("a '.' in the node id", f"{prefix}/sensor/smplcast_cam.0/inference_ms/config", good),
        ("a unit the device class does not take", topic, {**good, "unit_of_measurement": "fps"}),
        ("a state class the device class does not take", topic, {**{k: v for k, v in good.items() if k != "unit_of_measurement"}, "device_class": "enum"}),
        ("no availability", topic, {k: v for k, v in good.items() if k != "availability_topic"}),
        ("a template key the stats lack", topic, {**good, "value_template": "{{ value_json.inference_us }}"}),
        ("an unknown key", topic, {**good, "expires_after": 15}),
        ("a wildcard in the state topic", topic, {**good, "state_topic": "smplcast/+/stats"}),
        ("a numeric sensor on a text value", topic, {**good, "value_template": "{{ value_json.queues }}"}),
    ]
    failed = 0
    for what, t, payload in broken:
        problems = check(t, payload, prefix, samples)
        print(f"{'rejected' if problems else 'ACCEPTED'}: {what}: {problems}")
        failed += not problems
    print(f"self-test: {len(broken) - failed}/{len(broken)} broken messages rejected")
    return 1 if failed else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("messages", nargs="?", help="JSON lines of {topic, payload}; - for stdin")
    ap.add_argument("--prefix", default="homeassistant", help="HA's discovery prefix")
    ap.add_argument("--stats", help="a stats report (JSON file) the sensors are rendered on")
    ap.add_argument("--camera", help="a camera state (JSON file)")
    ap.add_argument("--self-test", action="store_true", help="prove broken messages fail")
    ap.add_argument("--port", type=int, help="read the messages from the broker at this port")
    ap.add_argument("--device", help="the daemon's device id (with --port)")
    ap.add_argument("--mqtt-prefix", default="smplcast", help="the daemon's topic prefix")
    ap.add_argument("--timeout", type=float, default=20, help="seconds to wait (with --port)")
    ap.add_argument(
        "--wait-for",
        default="stats,camera",
        help="the daemon's topics whose payload must come (with --port); the others, if "
        "absent, are rendered on the built-in samples",
    )
    args = ap.parse_args()

    def load(path, default):
        if path is None:
            return default
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    samples = {"stats": load(args.stats, SAMPLE_STATS), "camera": load(args.camera, SAMPLE_CAMERA)}

    if args.port is not None and args.device is None:
        ap.error("--port needs --device")
    if args.port is None and args.messages is None and not args.self_test:
        ap.error("MESSAGES, --port or --self-test")
    base = f"{args.mqtt_prefix}/{args.device}"
    problems: list[str] = []
    if args.port is not None:
        # Before HA's event loop: HA refuses blocking calls (paho's loop, sleeps) inside it.
        wait_for = set(filter(None, args.wait_for.split(",")))
        messages, live, problems = collect(args.port, args.prefix, base, args.timeout, wait_for)
        samples.update(live)
        for topic, payload in messages:
            for key, t in json.loads(payload).items():
                if key.endswith("_topic") and not str(t).startswith(f"{base}/"):
                    problems.append(f"{topic}: {key} {t!r} is not a topic of {base}")
        for p in problems:
            print(f"FAIL {p}")
    else:
        messages = [] if args.self_test else read_messages(args.messages)

    async def run() -> int:
        # HA's validators and templates expect its event loop to be the running one, and its
        # template engine a HomeAssistant.
        with tempfile.TemporaryDirectory() as config_dir:
            HASS.append(HomeAssistant(config_dir))
            if args.self_test:
                return self_test(args.prefix, samples)
            return validate(messages, args.prefix, samples)

    failed = asyncio.run(run())
    return 1 if problems or failed else 0


if __name__ == "__main__":
    sys.exit(main())
