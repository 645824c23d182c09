#!/usr/bin/env python3
"""Regenerates docs/reliability.md: runs the fault and bad-input tests, the soak and the
fuzzers, and tabulates each fault or input tried, the result, the measured figure and the
test that checks it. The figures are the lines the tests print as `figure: ...`.

    python3 scripts/reliability.py [--soak-seconds 60] [--fuzz-seconds 10]

Needs what the test command installs (mosquitto, the test venv tests/.venv); run scripts/test.sh once.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (what is tried, what must happen, figure-line pattern, test)
ROWS = [
    ("MQTT broker killed for 10 s while streaming, then restarted",
     "reconnects within 2 s, `online` again (retained), poses made during the outage dropped "
     "as stale and counted, not flooded; RSS bounded",
     r"broker outage", "tests/daemon.rs `broker_outage_reconnects_fast_drops_stale_poses_and_stays_bounded`"),
    ("MQTT broker down at start (`mqtt.connect_timeout_s = 0`)",
     "keeps retrying, runs nothing else, systemd status says so and the start timeout is "
     "extended; ready within 2 s of the broker",
     r"broker down at start", "tests/daemon.rs `unreachable_broker_at_start_is_waited_for_when_asked`"),
    ("MQTT broker down at start (default 10 s)",
     "one error line naming host:port and the fix, non-zero exit",
     r"bad start-up inputs", "tests/daemon.rs `start_up_errors_name_the_input_and_exit_non_zero`"),
    ("Broker requires a login: password from a file, a systemd credential, wrong, none",
     "connects with the right one; refusal is a start-up error naming the keys; the password "
     "never appears in the output",
     r"broker login", "tests/daemon.rs `broker_login_from_a_file_or_credential_and_refusals_name_the_fix`"),
    ("TLS to mosquitto with a private CA (tests/tls/make-certs.sh), with and without a required "
     "client certificate; then wrong CA, host not in the certificate, TLS to a plain port, "
     "plain TCP to a TLS port, no client certificate where required",
     "connects and delivers poses with the right settings; each wrong one is a start-up error "
     "that says which `[mqtt]` key to fix; unreadable or non-PEM files are config errors",
     r"broker TLS", "tests/daemon.rs `broker_tls_with_a_private_ca_and_wrong_settings_name_the_fix`; "
     "src/config.rs `errors_name_key_value_and_expectation`"),
    ("Dependencies: RustSec advisories, licences, bans (OpenSSL, aws-lc), sources",
     "`cargo deny check` passes; every ignored advisory has a written reason in deny.toml; "
     "no `unsafe` in our code but one reviewed block, glibc's malloc_trim in src/memory.rs (`#![deny(unsafe_code)]`; the binary forbids it)",
     r"cargo deny", "scripts/deny.sh (deny.toml), in the test command"),
    ("Bad configs (unknown key, wrong type, out of range), missing / corrupt / wrong-architecture "
     "models, unreachable broker, empty frame directory, camera path that is no video device "
     "or does not exist",
     "one `smplcast: error:` line naming the input and the fix, non-zero exit before anything "
     "is published, no panic",
     r"bad start-up inputs", "tests/daemon.rs `start_up_errors_name_the_input_and_exit_non_zero`; "
     "src/config.rs `errors_name_key_value_and_expectation`"),
    ("RTSP camera: the server killed for 10 s while streaming, then restarted",
     "camera state `lost` then `streaming`, back within 2 s of the server, `source_losses` "
     "counted, seq continuous, MQTT and the process up, RSS bounded",
     r"RTSP outage", "tests/gstreamer.rs `an_rtsp_camera_that_goes_away_for_10_s_is_back_within_2_s`"),
    ("RTSP stream lost (UDP transport): frames stop",
     "a loss (`Gone`), not bad frames; restarted with a backoff, frame ids go on counting, a new "
     "segment",
     r"RTSP loss", "tests/gstreamer.rs `a_lost_rtsp_stream_is_gone_and_counts_no_bad_frames`"),
    ("GStreamer sources at start-up: wrong RTSP URL, wrong login, no stream at the path, "
     "unknown element, pipeline syntax error, missing file, a file that is not a video, a "
     "codec with no decoder installed",
     "one `smplcast: error:` line naming the input and the fix (the Debian package of a missing "
     "element or decoder), non-zero exit, no panic, the password never written",
     r"bad GStreamer inputs", "tests/gstreamer.rs `bad_gstreamer_inputs_are_one_start_up_error_each`"),
    ("RTSP camera for the soak's length (H.264, 640 × 480 at 25 fps)",
     "RSS growth < 2 MB after warm-up, no queue growth, every seq received once",
     r"RTSP soak", "tests/soak/soak.py --source rtsp (scripts/soak.sh SECONDS CSV rtsp; 60 s in "
     "the test command)"),
    ("A broker that refuses MQTT 5 (speaks 3.1.1 only)",
     "the daemon falls back to 3.1.1 with a warning naming the broker and `mqtt.protocol`, "
     "stays 3.1.1 after a cut connection, the poses arrive",
     r"broker refusing MQTT 5", "tests/mqtt.rs `a_broker_that_refuses_mqtt5_gets_3_1_1`"),
    ("A consumer group (`smplcast sub --share`) with no members, then 3, then one killed",
     "nothing kept for a group without members; members split the stream with none lost or "
     "twice; the others take over from one that leaves",
     r"consumer group", "tests/mqtt.rs `a_consumer_group_splits_the_stream`"),
    ("A bridged site: the central broker down 20 s (device mosquitto → central, queue 100)",
     "the bridge holds at most its bound, every loss is counted by the device broker, what "
     "arrives is in order, the central session survives",
     r"bridge outage", "tests/fleet/fleet.py `bridge` (in the test command)"),
    ("Home Assistant discovery with a device id that is not a valid object id (`cam.0`)",
     "the id is sanitised for discovery (state topics keep it), and Home Assistant's own schema "
     "accepts every config",
     r"Home Assistant discovery", "tests/daemon.rs `home_assistant_discovery_passes_home_assistant_s_schema`"),
    ("Inference stuck (one frame takes 3 s)",
     "no watchdog ping while stuck (systemd restarts after WatchdogSec); pings resume with frames",
     r"watchdog", "src/telemetry/systemd.rs `watchdog_pings_only_while_frames_flow` (paused clock); "
     "tests/daemon.rs `systemd_sees_ready_status_watchdog_pings_and_stopping` (the binary)"),
    ("Full-speed run (soak)",
     "RSS growth < 2 MB after warm-up, no queue growth, every seq received once",
     r"^soak", "tests/soak/soak.py (scripts/soak.sh; 60 s in the test command)"),
    ("Random and mutated inputs: wire decoder, config parser, MJPEG frames, detector "
     "post-processing + tracker, video files (MP4 and Matroska through the `video` source)",
     "no panic (a crashing input is kept as a regression test)",
     r"fuzz", "tests/fuzz.rs (scripts/fuzz.sh; 3 s per target in the test command)"),
    # tests/systemd-vm: the x86_64 .deb's service in Debian 12 booted under qemu (TCG).
    ("Under a real systemd (Debian 12 in a VM): `systemctl enable --now` of the installed .deb",
     "READY within TimeoutStartSec; poses reach a subscriber in the VM (decoded by `smplcast sub`)",
     r"^vm (install|READY|messages)", "tests/systemd-vm (guest.sh), in the test command"),
    ("Under a real systemd: the daemon stalled (SIGSTOP)",
     "the watchdog kills it and systemd restarts it within WatchdogSec + RestartSec; `status` "
     "goes `offline` (the will), then `online`; NRestarts 1",
     r"^vm watchdog", "tests/systemd-vm (guest.sh)"),
    ("Under a real systemd: the camera unplugged and plugged back (vivid unbound, bound)",
     "camera state `lost`, then `streaming`; the same process, no restart",
     r"^vm camera", "tests/systemd-vm (guest.sh)"),
    ("Under a real systemd: `systemctl stop`, then `systemctl reboot`",
     "`offline` published and a clean exit within TimeoutStopSec; after the reboot the service "
     "is back by itself and poses flow",
     r"^vm (stop|reboot)", "tests/systemd-vm (guest.sh)"),
    ("Under a real systemd: `apt install` of a newer .deb while the service runs",
     "restarted once, the edited config.toml kept, the version changed, `online` again",
     r"^vm upgrade", "tests/systemd-vm (guest.sh)"),
    ("Under a real systemd: the broker password as a credential (`LoadCredential`) to a "
     "mosquitto with a password file",
     "the broker refuses anonymous clients; the daemon logs in; config.toml holds no password",
     r"^vm (credential|broker refuses)", "tests/systemd-vm (guest.sh)"),
    ("Under a real systemd: the hardening, measured in the VM",
     "`systemd-analyze security smplcast` exposure ≤ 2.5; a dynamic user with the video group "
     "reaches /dev/video0 (DevicePolicy=closed); tract runs under MemoryDenyWriteExecute and the "
     "syscall filter; tract sees /proc/cpuinfo (its ARM CPU detection; `ProcSubset=pid` hid it); the journal has the daemon's fields",
     r"^vm (hardening|DynamicUser|journal|/proc)", "tests/systemd-vm (guest.sh)"),
    ("Under a real systemd: a broken config.toml (a string where a number belongs)",
     "`ExecStartPre` (check-config) names the key; systemd gives up after StartLimitBurst=5 "
     "starts (start request repeated too quickly) instead of restarting forever",
     r"^vm (start limit|ExecStartPre)", "tests/systemd-vm (guest.sh)"),
]


def run(cmd: list[str], env: dict | None = None) -> str:
    print("$", " ".join(cmd), file=sys.stderr)
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                       env=None if env is None else {**__import__("os").environ, **env})
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-4000:] + p.stderr[-4000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return p.stdout + p.stderr


def vm_figures() -> list[str]:
    """The checks of the systemd VM test, from its last run's console (the test command's, or
    `tests/systemd-vm/run.sh OLD.deb NEW.deb`): it takes minutes, so it is not run again here."""
    log = ROOT / "target/systemd-vm/console.log"
    if not log.exists():
        print("no target/systemd-vm/console.log: run scripts/test.sh (or tests/systemd-vm/run.sh)",
              file=sys.stderr)
        return []
    when = datetime.datetime.fromtimestamp(log.stat().st_mtime).strftime("%Y-%m-%d")
    return [f"vm {m.group(1)} (VM run of {when})"
            for m in re.finditer(r"@@CHECK ok (.*)", log.read_text(errors="replace"))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--soak-seconds", type=int, default=60)
    ap.add_argument("--fuzz-seconds", type=float, default=10)
    args = ap.parse_args()

    # The test command's features: its build is reused.
    cargo = ["cargo", "test", "--release", "--features", "v4l2,gstreamer,cuda", "--locked"]
    out = run(cargo + ["--test", "daemon", "--", "--nocapture", "--test-threads", "1",
                       "broker_", "unreachable_broker", "systemd_sees", "start_up_errors",
                       "home_assistant"])
    out += run(cargo + ["--test", "mqtt", "--", "--nocapture", "--test-threads", "1",
                        "a_broker_that_refuses", "a_consumer_group"])
    out += run(cargo + ["--lib", "--", "--nocapture", "watchdog_pings"])
    out += run(cargo + ["--test", "gstreamer", "--", "--nocapture", "--test-threads", "1",
                        "rtsp", "bad_gstreamer"])
    out += run(cargo + ["--test", "fuzz", "--", "--nocapture", "--test-threads", "1"],
               env={"SMPLCAST_FUZZ_SECS": str(args.fuzz_seconds)})
    figures = [l.split("figure: ", 1)[1].strip() for l in out.splitlines() if "figure: " in l]
    run(["tests/run", "tests/fleet/fleet.py", "bridge", "--json", "target/fleet-bridge.json"])
    b = json.loads((ROOT / "target/fleet-bridge.json").read_text())["bridge"]
    figures.append(
        f"bridge outage {b['outage_s']} s at {b['fps']} fps: {b['held_by_bridge']} poses held "
        f"(bound {b['queue_bound']}) and delivered after it, {b['missing']} missing, "
        f"{b['device_broker_dropped']} counted dropped by the device broker (the missing poses "
        f"and {b['dropped_less_missing']} copies of retained states), {b['out_of_order']} out of "
        f"order, {b['duplicates']} QoS 1 duplicate(s); back {b['bridge_reconnect_s']} s after "
        f"the restart")
    figures += vm_figures()
    deny_out = run(["bash", "scripts/deny.sh"])
    database = next((l.split(": ", 2)[2] for l in deny_out.splitlines()
                     if l.startswith("deny: advisory database")), "?")
    ignored = len(re.findall(r'\{ id = "RUSTSEC', (ROOT / "deny.toml").read_text()))
    figures.append(f"cargo deny: {deny_out.strip().splitlines()[-1]}; advisory database {database}; "
                   f"{ignored} advisories ignored, each with its reason")
    for source, name in [("synthetic", "soak"), ("rtsp", "RTSP soak")]:
        soak_out = run(["bash", "scripts/soak.sh", str(args.soak_seconds),
                        f"target/soak-{source}.csv", source])
        soak = json.loads([l for l in soak_out.splitlines() if l.startswith("{")][-1])
        figures.append(
            f"{name} {soak['seconds']} s: {soak['messages']} messages ({soak['messages_per_s']}/s), "
            f"RSS growth {soak['rss_growth_kb']} kB after warm-up, max queue depths "
            f"{soak['max_queue_depth']}, seq continuous: {soak['seq_continuous']}"
        )

    lines = [
        "# Reliability",
        "",
        "Each fault or bad input tried, what must happen, the figure measured and the test that "
        "checks it. Generated by `python3 scripts/reliability.py` "
        f"(soak {args.soak_seconds} s, fuzzing {args.fuzz_seconds:g} s per target) on "
        f"{datetime.date.today()}, {platform.machine()}, {__import__('os').cpu_count()} CPUs; "
        "the tests assert the limits, the figures are what this run measured.",
        "",
        "| fault / input | required | measured | test |",
        "|---|---|---|---|",
    ]
    for what, required, pattern, test in ROWS:
        got = [f for f in figures if re.search(pattern, f)]
        measured = "<br>".join(got) if got else "(no figure printed)"
        lines.append(f"| {what} | {required} | {measured} | {test} |")
    lines += [
        "",
        "Longer runs: `python3 scripts/reliability.py --soak-seconds 600 --fuzz-seconds 600`, "
        "or `bash scripts/soak.sh 600` and `bash scripts/fuzz.sh 600` alone.",
        "",
    ]
    (ROOT / "docs/reliability.md").write_text("\n".join(lines))
    print("wrote docs/reliability.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
