#!/usr/bin/env bash
# Fuzzing (tests/fuzz.rs): each target (wire decoder, config parser, MJPEG frames, detector
# post-processing + tracker) for SECONDS (default 600), one after the other. A panic fails the
# run and leaves the input in target/fuzz-crashes/; commit it to tests/data/fuzz/<target>/
# with the fix. The test command runs each for 3 s.
#
#   bash scripts/fuzz.sh [SECONDS] [SEED]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
env SMPLCAST_FUZZ_SECS="${1:-600}" ${2:+SMPLCAST_FUZZ_SEED="$2"} \
  cargo test --release --features v4l2 --locked --test fuzz -- --nocapture --test-threads 1
