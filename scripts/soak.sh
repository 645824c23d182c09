#!/usr/bin/env bash
# Soak: the daemon at full speed on the synthetic source for SECONDS (default 600), watched
# from outside: RSS and queue depths every second (CSV), seq continuity on a paho-mqtt
# subscriber. Fails if RSS grows by 2 MB or more after the warm-up, a queue grows, or a
# message is missing. The test command runs a 60-second version.
#
#   bash scripts/soak.sh [SECONDS] [CSV]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -x target/release/smplcast ] || cargo build --release --features v4l2
exec tests/run tests/soak/soak.py --seconds "${1:-600}" --csv "${2:-target/soak.csv}"
