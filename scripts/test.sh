#!/usr/bin/env bash
# The whole smplcast test suite, on a fresh Debian 12 machine (run as root, or as a user with
# sudo). Installs what it needs: Debian packages, the Python venv of models/ (PyTorch,
# onnxruntime, tract), and generates the full-size random-weight models it tests against.
#
#   bash scripts/test.sh            # everything (see the README for its time on 2 cores; ~15 GB of disk)
#
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Freshness: every crate the suite builds, and the cargo tools it installs (cargo-deny,
# cargo-deb), come through a cargo home under target/ that this script owns, never the
# machine's ~/.cargo registry. On a clean clone (CI) it starts empty, so a crate that no step
# fetches fails the run here rather than on a user's fresh machine. The toolchain itself
# (rustup's, in ~/.rustup) is kept. pip runs with --no-cache-dir (models/run,
# cross/build-debian.sh); zig's cache lives in target/cross/tools.
export CARGO_HOME="${SMPLCAST_CARGO_HOME:-$PWD/target/cargo-home}"
mkdir -p "$CARGO_HOME"

# Steps run in six lanes, so that the CPU-bound builds overlap the steps that wait on the
# network or the wall clock: on 2 cores the run is CPU-bound, so the lanes are there to keep
# both cores busy to the end. The cheap checks (fmt, module cycles) come first; a failing
# main step (clippy, the build, a test) stops every lane at once, a failed lane fails the run
# when it is joined. Each lane's output goes to target/ci/LANE.log and is printed when it
# ends. At the end: one line per step (lane, start and length in seconds from the start, CPU
# seconds), the wall time and the CPU in all.
#
#   main   install, cargo fetch, fmt; clippy, x86 build (linted); then the x86 tests (after python)
#   python the test venv, the PyTorch venv, models/ tests, full-size models, the Home Assistant
#          venv
#   debtools what the packaging steps need (cargo-deb, the arm64 root, the VM's root)
#   fleet  after the x86 build, beside its tests: 20 daemons into one broker, a bridged site
#          through an outage (mostly waiting on the wall clock)
#   arm64  aarch64 build (with the qemu tests), qemu tests, the arm64 .debs and their
#          install/upgrade/remove test
#   armv7  armv7 build (tract-core unoptimised), qemu smoke run, the armhf .deb
CI=target/ci
rm -rf "$CI" && mkdir -p "$CI"
# The .deb files the suite makes are compressed with cargo-deb's --fast: about 10 % larger, for
# a tenth of the CPU (45 s against 5 s for the amd64 package here).
export DEB_FAST=1
T0=$SECONDS
# CPU_NOW: CPU seconds (user + system) used so far by this shell's finished children. Each
# step runs in a subshell of its own, which reads this just before it ends: its own CPU, with
# nothing of the lanes that the main shell reaps meanwhile. `times` must run in that shell,
# not in a $(...): its second line is the children's user and system time, "1m2.345s 0m6.7s".
child_cpu() {
  local f="$CI/.times.$BASHPID" u s
  times > "$f"
  { read -r _; read -r u s; } < "$f"
  local us=${u#*m} ss=${s#*m}   # "2.345s": whole seconds before the dot
  CPU_NOW=$(( ${u%%m*} * 60 + 10#${us%%.*} + ${s%%m*} * 60 + 10#${ss%%.*} ))
}
step() { # step NAME COMMAND...: runs a part and records its lane, start, length and CPU
  local name="$1" t0=$SECONDS cpu_file="$CI/.cpu.${LANE:-main}"; shift
  echo; echo "=== $name"
  ( "$@"; child_cpu; echo "$CPU_NOW" > "$cpu_file" )
  printf '%-7s %5d %5d %5d  %s\n' "${LANE:-main}" $((t0 - T0)) $((SECONDS - t0)) \
    "$(cat "$cpu_file")" "$name" >> "$CI/timings"
}

# lane NAME FUNCTION [NICE]: runs FUNCTION in the background, its output in
# target/ci/NAME.log, at niceness NICE (default 0).
declare -A lane_pids=()
lane() {
  ( LANE=$1; renice -n "${3:-0}" -p $BASHPID >/dev/null; "$2" ) > "$CI/$1.log" 2>&1 &
  lane_pids[$1]=$!
  echo "=== lane $1 started (target/ci/$1.log)"
}
# join NAME: waits for a lane, prints its log; a failed lane stops the run (and the others).
join() {
  local rc=0
  wait "${lane_pids[$1]}" || rc=$?
  echo; echo "=== lane $1 (rc $rc) ======================================"
  cat "$CI/$1.log"
  if [ $rc != 0 ]; then
    echo "=== lane $1 FAILED (rc $rc); stopping" >&2
    kill $(jobs -p) 2>/dev/null || true
    table; exit $rc
  fi
}
# Whatever way the script ends, no lane outlives it; a failed run shows where each lane was.
on_exit() {
  local rc=$? l
  if [ $rc != 0 ]; then
    for l in "${!lane_pids[@]}"; do echo "=== lane $l, last lines:"; tail -30 "$CI/$l.log"; done
  fi
  kill $(jobs -p) 2>/dev/null || true
}
trap on_exit EXIT
table() {
  echo; echo "=== per part (lane, start s, length s, CPU s)"
  sort -k2 -n "$CI/timings" 2>/dev/null || true
  echo "wall: $((SECONDS - T0)) s; CPU: $(awk '{ s += $4 } END { print s }' "$CI/timings" 2>/dev/null) s"
}

install_packages() {
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # libclang-dev: the v4l crate's bindings (feature v4l2). qemu + busybox + cpio + kmod +
  # file: the V4L2 test in a qemu guest with the vivid driver (tests/vivid/).
  # systemd: systemd-analyze for the unit checks. openssl: the test CA (tests/tls/).
  # chromium: the viewer's browser test (tests/viewer.rs). debootstrap: the .deb test's arm64
  # root (tests/deb/). GStreamer (feature gstreamer): its development files, the plugin sets
  # the sources use (RTSP, demuxers, H.264 decoding, x264 to make test videos) and the RTSP
  # server of tests/gst/ (gst-rtsp-server through Python GObject).
  local want=(python3 python3-venv python3-pip ca-certificates mosquitto libclang-dev
              qemu-system-x86 busybox-static cpio kmod file systemd openssl chromium debootstrap
              pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
              gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
              gstreamer1.0-plugins-ugly gstreamer1.0-libav python3-gi python3-gst-1.0
              gir1.2-gst-rtsp-server-1.0)
  local missing=()
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # The package lists are refreshed on every run, even when nothing is missing: later steps
  # download packages by name (the vivid kernel, debootstrap's mirror) and stale lists would
  # point at versions the mirror no longer has.
  if command -v apt-get >/dev/null; then
    $sudo apt-get update -qq
    if [ ${#missing[@]} -gt 0 ]; then
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
  fi
  command -v cargo >/dev/null || {
    echo "cargo not found: install Rust ≥ 1.91 with rustup (https://rustup.rs)" >&2; exit 1; }
  rustup component add clippy rustfmt >/dev/null 2>&1 || true
  # The ARM builds' tools (Debian's Rust, cross libcs, qemu-user, zig), installed here and
  # not in the ARM lane, so that no apt run overlaps another step.
  cross/build-debian.sh --setup
}

python_tests() {
  models/run -m pytest models/tests -q
}

full_models() {
  # Full-size MPS-Net graphs with deterministic random weights (not committed: ~230 MB).
  models/run convert.py --random-init 0 --vectors --out models/generated/full
}

# Everything is built and tested with the V4L2 and GStreamer sources and tract's CUDA runtime
# (features v4l2, gstreamer and cuda; CUDA is compile only here: without a GPU the daemon runs
# on the CPU, and model.device = "cuda" is a tested start-up error). tests/gpu/run.sh runs the
# GPU part where there is one.
FEATURES=v4l2,gstreamer,cuda
rust_format() {
  cargo fmt --check
  python3 scripts/module-deps.py   # the library's modules depend one way: no import cycle
}

rust_checks() {
  # The library as subscribers build it (`default-features = false`: smpl + wire, no tract).
  cargo clippy --release --lib --no-default-features --locked -- -D warnings
}

# Clippy lints our crate while it compiles (clippy-driver as cargo's wrapper for the workspace
# only): `cargo clippy` would compile every dependency a second time, in check mode (tract
# alone: about 250 s of CPU here), for no artefact the tests use. The ARM builds compile the
# other feature sets (armv7: without cuda) and fail on a warning of ours too.
lint_while_building() {
  RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)" "$@"
}

rust_build() {
  # Everything the tests run, and the benches. A warning of ours, clippy's included, fails it.
  lint_while_building cargo build --release --all-targets --features $FEATURES --locked 2>&1 |
    tee "$CI/build.log"
  if grep -E '^warning: `smplcast` .* generated [0-9]+ warning' "$CI/build.log"; then
    echo "the build warns (above)" >&2; return 1
  fi
}

rust_tests() {
  SMPLCAST_FULL_MODELS=models/generated/full lint_while_building \
    cargo test --release --features $FEATURES --locked
  # What subscribers get with `default-features = false`: smpl + wire, no tract.
  cargo test --release --locked --no-default-features --lib --test wire_vectors
}

main_job_smoke() {
  # The README's main command (`cargo run --release -- demo`) must keep working. The binary
  # built above is used as it is: `cargo run` would rebuild tract with the feature set of a
  # build without dev-dependencies (several minutes) for the same code.
  ./target/release/smplcast demo --models models/fixtures/narrow --frames 30
  ./target/release/smplcast check-models models/generated/full
  ./target/release/smplcast check-config config.example.toml
}

people_eval() {
  # The daemon's person detector and tracker on real footage (vtest.avi, fetched from Debian's
  # opencv-doc) against the hand labels of tests/data/people/: fails below the goals.
  models/run people_eval.py --smplcast target/release/smplcast --check \
    --json target/people-eval.json
}

scene_calibration() {
  # int8 calibrated on the user's own scene: the daemon saves person crops of real footage
  # (every 4th frame of vtest.avi, as people_eval extracted it; NanoDet finds the people), and
  # convert.py calibrates the narrow model's int8 backbone on them, reporting the error on the
  # crops it held out (the last quarter in time) beside the photo calibration's.
  local dir=target/scene-calibration port=18831 rc=0
  rm -rf "$dir"; mkdir -p "$dir/frames"
  for f in target/people-eval/vtest-near/*[048].jpg; do ln -s "$PWD/$f" "$dir/frames/"; done
  cat > "$dir/config.toml" <<TOML
[source]
kind = "files"
path = "frames"
fps = 0
[person]
detector = "$PWD/models/nanodet/nanodet.onnx"
[model]
dir = "$PWD/models/fixtures/narrow"
[mqtt]
port = $port
TOML
  mosquitto -p $port > "$dir/mosquitto.log" 2>&1 & local broker=$!
  ./target/release/smplcast run --config "$dir/config.toml" --save-crops "$dir/crops" \
    --save-crops-max 120 > "$dir/daemon.log" 2>&1 || rc=$?
  kill $broker; wait $broker 2>/dev/null || true
  [ $rc = 0 ] || { tail -20 "$dir/daemon.log"; return $rc; }
  echo "crops saved: $(ls "$dir/crops" | wc -l)"
  models/run convert.py --random-init 0 --narrow --calib-dir "$dir/crops" --out "$dir/narrow"
}

vivid_test() {
  # The V4L2 capture code against a real kernel driver: vivid in a qemu guest (tests/vivid/).
  # The daemon part of the check loads the bundled narrow model from /extra/narrow.
  VIVID_EXTRA=models/fixtures/narrow bash tests/vivid/run-vivid-test.sh target/release/examples/v4l2_check
}

# The x86_64 .deb of the binary tested above, and a second version of it for the upgrade.
amd64_packages() {
  wait_for_deb_tools
  scripts/deb-amd64.sh
  DEB_VERSION=0.1.0-99~upgradetest DEB_OUT=target/packages-upgradetest scripts/deb-amd64.sh
}

systemd_vm() {
  # The package under a real systemd: Debian 12 booted in qemu (tests/systemd-vm/).
  bash tests/systemd-vm/run.sh target/packages/smplcast_*_amd64.deb \
    target/packages-upgradetest/smplcast_*_amd64.deb
}

systemd_unit() {
  # The unit against the installed tree is verified by the .deb test; here its hardening:
  # `systemd-analyze security` exposure must stay <= 2.5 (the threshold is in tenths).
  systemd-analyze security --offline=true --threshold=25 systemd/smplcast.service | tail -1
}

# ARM: cross/build-debian.sh (Debian's Rust + cargo-zigbuild, glibc <= 2.31), run under
# qemu-user. aarch64 runs the model tests (tract's aarch64 kernels, int8 included);
# armv7 a smoke run of the whole pipeline. Both release binaries pass the glibc check.
arm64_packages() {
  # Two versions of the arm64 package for the upgrade test. --tests: the package holds the
  # binary the qemu tests above ran; it was built together with the test binaries, and a build
  # without them would relink everything with other features.
  wait_for_deb_tools
  cross/build-debian.sh --tests --deb aarch64
  DEB_VERSION=0.1.0-99~upgradetest DEB_OUT=target/cross/packages-upgradetest \
    cross/build-debian.sh --tests --deb aarch64
  bash tests/deb/run-deb-test.sh target/cross/packages/smplcast_*_arm64.deb \
    target/cross/packages-upgradetest/smplcast_*_arm64.deb
}

armhf_package() {
  wait_for_deb_tools
  cross/build-debian.sh --quick --deb armv7
}

# The debtools lane makes cargo-deb and the arm64 root; the packaging steps wait for them.
wait_for_deb_tools() {
  until [ -e "$CI/deb-tools.done" ]; do
    if [ -e "$CI/deb-tools.failed" ]; then
      echo "no .deb tools: the debtools lane failed (target/ci/debtools.log)" >&2; return 1
    fi
    sleep 5
  done
}

disk_report() { # what the suite keeps on disk (CI has failed on a full disk before)
  df -h . | tail -1 | awk '{print "free on " $6 ": " $4 " of " $2}'
  du -sh target models/.venv tests/.venv tests/homeassistant/.venv "$CARGO_HOME/registry" 2>/dev/null || true
}

crate_count() { { find "$CARGO_HOME/registry/cache" -name '*.crate' 2>/dev/null || true; } | wc -l; }

cargo_fetch() {
  # Every package in Cargo.lock, for every platform (cargo deny reads the metadata of the
  # Windows-only ones too), with the network allowed; later steps build with --locked.
  cargo fetch --locked
  # Proof that the fetch is complete: cargo's full metadata resolves offline from it alone.
  cargo metadata --locked --offline --format-version 1 >/dev/null
  echo "cargo home $CARGO_HOME: $(crate_count) crates, $crates_before of them there before this run"
}

arm64_lane() {
  step "aarch64: build release + qemu tests" cross/build-debian.sh --tests aarch64
  step "aarch64: qemu (glibc, smoke, model tests)" cross/build-debian.sh --tests --check aarch64
  step ".deb arm64: build, install/upgrade/remove" arm64_packages
}

# armv7 is built with tract-core unoptimised (--quick): its check is a smoke run, and this saves
# about 300 s of the run's CPU. aarch64 is built as released, and runs the model tests.
armv7_lane() {
  step "armv7: build (tract-core unoptimised)" cross/build-debian.sh --quick armv7
  step "armv7: qemu (glibc, smoke)" cross/build-debian.sh --quick --check armv7
  step ".deb armhf: build" armhf_package
}

python_lane() {
  # The test harness's small venv (the Rust tests' subscriber and references), then the
  # model tooling's PyTorch venv and what needs it.
  step "test venv + independent subscriber (pytest)" tests/run -m pytest tests/subscriber -q
  step "PyTorch venv + models/ tests (pytest)" python_tests
  # Real footage for tests/gstreamer.rs and people_eval: Debian's opencv-doc vtest.avi.
  step "footage: vtest.avi (Debian's opencv-doc)" models/run people_eval.py --fetch-only
  step "full-size random models (convert.py)" full_models
  # Home Assistant 2024.3.3's own schema checks for the daemon's MQTT discovery (tests/daemon.rs
  # runs its validate.py); the self-test proves they reject broken messages.
  step "Home Assistant venv (tests/homeassistant) + validator self-test" \
    tests/homeassistant/run tests/homeassistant/validate.py --self-test
}

debtools_lane() {
  # However the lane ends without them, the packaging steps stop waiting.
  trap '[ -e "$CI/deb-tools.done" ] || touch "$CI/deb-tools.failed"' EXIT
  step ".deb tools: cargo-deb, arm64 root, the VM's root (debootstrap)" deb_tools
}

# The fleet steps measure load and wait out an outage: little CPU, a minute of wall clock
# each, so they run beside the x86 tests. Their pass/fail checks hold under that load; the
# figures of docs/FLEET.md were measured on a quiet machine.
fleet_lane() {
  step "fleet: 20 daemons into one mosquitto (tests/fleet/fleet.py)" \
    tests/run tests/fleet/fleet.py fleet --json target/fleet.json
  step "fleet: a bridged site through a 20 s central outage (tests/fleet/fleet.py)" \
    tests/run tests/fleet/fleet.py bridge --json target/fleet-bridge.json
}

deb_tools() {
  cross/build-debian.sh --cargo-deb
  bash tests/deb/run-deb-test.sh --prepare
  bash tests/systemd-vm/run.sh --prepare
  touch "$CI/deb-tools.done"
}

crates_before=$(crate_count)
echo "cargo home: $CARGO_HOME ($crates_before crates present before this run; 0 on a clean clone)"
disk_report
step "install Debian packages, Rust, ARM tools" install_packages
step "cargo fetch (all platforms) into target/cargo-home" cargo_fetch
step "cargo fmt, module cycles" rust_format
lane python python_lane
lane debtools debtools_lane 10
# The ARM lanes yield to the main lane (niceness 10): clippy and the x86 build still fail
# fast, and the ARM builds take every cycle the x86 steps leave (the tests wait on the wall
# clock at times). Two ARM lanes, so that the end of the run is never one build alone.
lane arm64 arm64_lane 10
lane armv7 armv7_lane 10
step "cargo clippy (the wire-only library)" rust_checks
step "cargo build + clippy (release, v4l2 + gstreamer + cuda: every target)" rust_build
join python
lane fleet fleet_lane
step "cargo test (release; narrow + full models)" rust_tests
step "demo smoke run" main_job_smoke
step "people on real footage (models/people_eval.py)" people_eval
step "int8 calibrated on crops of real footage (--save-crops, convert.py --calib-dir)" scene_calibration
step "soak, 60 s at full speed (scripts/soak.sh)" bash scripts/soak.sh 60
step "soak, 60 s of an RTSP camera (scripts/soak.sh … rtsp)" bash scripts/soak.sh 60 target/soak-rtsp.csv rtsp
step "V4L2 in a qemu guest (vivid driver)" vivid_test
step "systemd unit: security exposure" systemd_unit
step ".deb amd64: the tested binary, and an upgrade" amd64_packages
step "systemd in a VM: the .deb's service (tests/systemd-vm)" systemd_vm
step "cargo deny (advisories, licences, bans, sources)" bash scripts/deny.sh
join fleet
join debtools
join arm64
join armv7
for d in target/packages/*.deb target/cross/packages/*.deb; do
  dpkg-deb --info "$d" | grep -E 'Package|Version|Architecture|Depends'
done

echo; echo "=== all tests passed"; table
echo; echo "=== disk"; disk_report
