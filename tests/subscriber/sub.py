#!/usr/bin/env python3
"""A third-party MQTT subscriber for smplcast (paho-mqtt + the spec-only decoder smplcast_sub).

Subscribes to <prefix>/<device>/pose, /status and /stats and prints one JSON line per message:
  {"ready": true}                                   once subscribed
  {"status": "online", "retain": true}              status messages
  {"pose": {...decoded message...}, "hex": "a9..."} pose messages (and their raw bytes; with
                                                    "violations": [...] the rules of
                                                    docs/WIRE.md the message breaks)
  {"stats": {...}}                                  stats messages (JSON)
With --mqtt5 it connects with MQTT 5, and every message line has "props": its content type,
payload format, expiry and user properties as received (null when absent).
Exits half a second after the first "offline" status that follows an "online" (MQTT orders
messages per topic only, so a pose published before "offline" may arrive just after it), or
after --timeout seconds.

With --recording FILE it subscribes to nothing: it prints each message of a `smplcast sub
--record` file as {"topic", "t_ns", "retain", "pose" or "text"}.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent))
import smplcast_sub  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int)
    ap.add_argument("--prefix", default="smplcast")
    ap.add_argument("--device")
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--camera", action="store_true", help="also print the camera state topic")
    ap.add_argument("--mqtt5", action="store_true", help="connect with MQTT 5; print properties")
    ap.add_argument("--recording", help="print a recording's messages instead of subscribing")
    args = ap.parse_args()
    if args.recording:
        return print_recording(args.recording)
    if args.port is None or args.device is None:
        ap.error("--port and --device are required to subscribe")
    base = f"{args.prefix}/{args.device}"
    state = {"online": False, "done": False}

    def out(obj):
        print(json.dumps(obj), flush=True)

    def on_connect(client, userdata, flags, reason, props):
        topics = [(f"{base}/pose", 1), (f"{base}/status", 1), (f"{base}/stats", 0)]
        client.subscribe(topics + ([(f"{base}/camera", 1)] if args.camera else []))

    def on_subscribe(client, userdata, mid, reasons, props):
        out({"ready": True})

    def printed(obj, m):
        if args.mqtt5:
            p = m.properties
            obj["props"] = {
                "content_type": getattr(p, "ContentType", None),
                "payload_format": getattr(p, "PayloadFormatIndicator", None),
                "expiry": getattr(p, "MessageExpiryInterval", None),
                "user": [list(kv) for kv in getattr(p, "UserProperty", [])],
            }
        print(json.dumps(obj), flush=True)

    def on_message(client, userdata, m):
        def out(obj):
            printed(obj, m)

        if m.topic.endswith("/status"):
            status = m.payload.decode()
            out({"status": status, "retain": bool(m.retain)})
            if status == "online":
                state["online"] = True
            elif status == "offline" and state["online"]:
                state["done"] = True
        elif m.topic.endswith("/stats"):
            out({"stats": json.loads(m.payload)})
        elif m.topic.endswith("/camera"):
            out({"camera": json.loads(m.payload), "retain": bool(m.retain)})
        else:
            try:
                msg = smplcast_sub.decode(m.payload)
                line = {"pose": msg, "hex": m.payload.hex()}
                broken = smplcast_sub.violations(msg)
                if broken:
                    line["violations"] = broken
                out(line)
            except smplcast_sub.DecodeError as e:
                out({"error": str(e)})

    protocol = mqtt.MQTTv5 if args.mqtt5 else mqtt.MQTTv311
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{args.device}", protocol=protocol
    )
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect(args.host, args.port, keepalive=10)
    client.loop_start()
    deadline = time.monotonic() + args.timeout
    while not state["done"] and time.monotonic() < deadline:
        time.sleep(0.02)
    if state["done"]:
        time.sleep(0.5)
    client.loop_stop()
    client.disconnect()
    return 0 if state["done"] else 1


def print_recording(path) -> int:
    """One JSON line per recorded message: topic, time, and the pose decoded, or the text."""
    _, messages = smplcast_sub.read_recording(path)
    for m in messages:
        line = {"topic": m["topic"], "t_ns": m["t_ns"], "retain": m["retain"]}
        if m["topic"].endswith("/pose"):
            line["pose"] = smplcast_sub.decode(m["payload"])
        else:
            line["text"] = m["payload"].decode()
        print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
