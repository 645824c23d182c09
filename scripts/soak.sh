#!/usr/bin/env bash
# Soak: the daemon at full speed on the synthetic source (or on an RTSP camera streaming H.264
# at 25 fps: SOURCE = rtsp) for SECONDS (default 600), watched from outside: RSS and queue
# depths every second (CSV), seq continuity on a paho-mqtt subscriber. Fails if RSS grows by
# 2 MB or more after the warm-up, a queue grows, or a message is missing. The test command
# runs a 60-second version of each.
#
#   bash scripts/soak.sh [SECONDS] [CSV] [synthetic|rtsp]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -x target/release/smplcast ] || cargo build --release --features v4l2,gstreamer
exec tests/run tests/soak/soak.py --seconds "${1:-600}" --csv "${2:-target/soak.csv}" \
  --source "${3:-synthetic}"
