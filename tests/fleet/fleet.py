#!/usr/bin/env python3
"""Fleet tests (issue 22): many daemons into one broker, and a site bridged to a central one.

    tests/run tests/fleet/fleet.py fleet  [--daemons 20] [--fps 5] [--seconds 20] [--json FILE]
    tests/run tests/fleet/fleet.py bridge [--outage 20] [--json FILE]

Everything runs on loopback: mosquitto (Debian's 2.0.11) on free ports, the release binary
(`--binary`, default target/release/smplcast) on the synthetic source with the narrow test model
(models/fixtures/narrow), and paho-mqtt subscribers that decode every pose with the spec-only
decoder tests/subscriber/smplcast_sub.py. Scratch files (configs, logs) go to target/fleet/.

fleet: one mosquitto; first a baseline (one daemon alone, --baseline-seconds), then --daemons
daemons at once (--seconds), each a 160×120 synthetic camera at --fps with one person (the
whole frame) and pose QoS 0. Each phase is measured over a window that starts once every daemon
is online and has published a pose with its full lookahead (7 frames). It reports, per phase:
pose messages/s and payload bytes/s at the subscriber, bytes per message, the broker's and the
daemons' CPU (% of one core, from utime + stime in /proc/PID/stat over the window), the daemons'
RSS, the lag from capture (`mono_ns`, same host) to the subscriber's receipt (p50, p95), the
same lag less the model's lookahead (`win.lookahead` frames × 1 / `win.fps`: the part that is
not the temporal window's wait), seq gaps per device, undecodable messages and WIRE.md
violations, and the frames the daemons dropped (their stats). It fails when a daemon delivered
nothing, a message did not decode or broke a rule, a seq is missing, or the fleet's rate is not
daemons × fps within 15 %. No gap is tolerated: on loopback TCP nothing is lost in transit,
mosquitto drops QoS 0 for a connected subscriber only when more than max_queued_messages
(1000) wait for it (seconds of backlog at these rates; its $SYS drop count is reported), and
a daemon drops only when its queue of 64 fills (`mqtt.queue`), which a local broker does not
let happen. A gap therefore means an overload worth failing on, not noise.

bridge: a device-side mosquitto bridged to a central one (`topic smplcast/# out 1`,
`cleansession false`, `max_queued_messages 100`), the central one with persistence. One daemon
at 10 fps publishes poses at QoS 1 with `mqtt.max_age_s = 60` to the device broker; a central
subscriber (fixed client id, clean_session false, QoS 1) reads them. After a few seconds the
central broker is stopped (SIGTERM: it saves its sessions) for --outage seconds (20: 200
poses, twice the bridge's queue), restarted on the same port, and the daemon is stopped once
delivery is live again. A second subscriber on the device broker sees every pose the daemon
published and the broker's `$SYS/broker/publish/messages/dropped`. It reports the poses
published (seq first..last), delivered before the outage, held by the bridge and delivered
after it, and missing, and fails when: the central subscriber's session did not survive the
restart, nothing was dropped (the outage did not overflow the queue), more were held than the
queue's bound plus the in-flight window (100 + 20), a pose arrived out of seq order (QoS 1
duplicates at reconnection are counted and allowed), or the device broker's dropped count
does not account for the missing poses. That count is the poses missing plus copies of the
retained status and camera messages: mosquitto re-queues one of each for the bridge at every
connection attempt, and drops those too once the queue is full. So the check is: poses
missing ≤ dropped ≤ poses missing + 2 × attempts (from the device broker's log); fewer
dropped than missing is a loss nobody counted.

Exits non-zero with the reasons; prints a table and one JSON summary (also to --json FILE).
"""
from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/subscriber"))
import smplcast_sub  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PREFIX = "smplcast"
# mosquitto's default max_inflight_messages: a bridge may have this many QoS 1 messages sent
# but unacknowledged when the central broker goes; they are resent beside its queue.
INFLIGHT = 20


class Failure(Exception):
    """A check or a step failed; the message says which and where to look."""


# --- processes -------------------------------------------------------------------------------

class Children:
    """Every process this script starts; all are stopped at exit, whatever happens."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []
        atexit.register(self.stop_all)

    def start(self, name: str, argv: list[str], log: Path) -> subprocess.Popen:
        with open(log, "ab") as f:
            proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        self.procs.append((name, proc, log))
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 15, signalled: bool = False) -> int:
        """SIGTERM (unless already `signalled`: a second one makes the daemon skip its flush),
        then waits."""
        if proc.poll() is None:
            if not signalled:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise Failure(f"pid {proc.pid} ({proc.args[0]}) ignored SIGTERM for {timeout} s")
        return proc.returncode

    def stop_all(self) -> None:
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, proc, _ in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, log: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failure(f"{what} exited ({proc.returncode}) before listening on port {port}; "
                          f"{log}:\n{tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Failure(f"{what} did not listen on port {port} within {timeout} s; {log}:\n{tail(log)}")


def wait_for(cond, timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a live process, from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # fields[0] is field 3, `state`
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(q / 100 * len(v)) - 1))]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    osname = next((line.split("=", 1)[1].strip('"')
                   for line in Path("/etc/os-release").read_text().splitlines()
                   if line.startswith("PRETTY_NAME=")), "?")
    version = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout
    version = version.splitlines()[0] if version else "mosquitto ?"
    return (f"{os.cpu_count()} cores {platform.machine()} ({cpu}), {osname}, "
            f"kernel {platform.release()}, {version}")


class Broker:
    """A mosquitto with its own config file and log, on a fixed loopback port."""

    def __init__(self, kids: Children, name: str, work: Path, port: int, conf: str) -> None:
        self.kids, self.name, self.port = kids, name, port
        self.conf = work / f"{name}.conf"
        self.log = work / f"{name}.log"
        self.conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                             f"log_dest stderr\n{conf}")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = self.kids.start(self.name, ["mosquitto", "-c", str(self.conf)], self.log)
        wait_port(self.port, self.proc, f"mosquitto '{self.name}'", self.log)

    def stop(self) -> None:
        rc = self.kids.stop(self.proc)
        if rc != 0:
            raise Failure(f"mosquitto '{self.name}' exited {rc}; {self.log}:\n{tail(self.log)}")


def persistence_dir(path: Path) -> Path:
    """A directory mosquitto can write: started as root it runs as the user `mosquitto`."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        try:
            shutil.chown(path, "mosquitto", "mosquitto")
        except LookupError:
            pass  # no such user: mosquitto stays root
    return path


def daemon_config(dev: str, port: int, fps: float, qos: int, max_age_s: float,
                  stats_s: float, models: str) -> str:
    # No [person] detector: one person, the whole frame (track 0 for the daemon's lifetime).
    return (f'device_id = "{dev}"\n'
            f'[source]\nkind = "synthetic"\nwidth = 160\nheight = 120\nfps = {float(fps)}\n'
            f'[model]\ndir = "{models}"\nthreads = 1\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nprefix = "{PREFIX}"\n'
            f'pose_qos = {qos}\nmax_age_s = {float(max_age_s)}\n'
            f'[stats]\ninterval_s = {float(stats_s)}\n'
            f'[pipeline]\nmodel_fps = {float(fps)}\nworkers = 1\n')


class Daemon:
    def __init__(self, kids: Children, work: Path, args, dev: str, port: int, fps: float,
                 qos: int = 0, max_age_s: float = 2, stats_s: float = 5) -> None:
        self.kids, self.dev = kids, dev
        self.conf = work / f"{dev}.toml"
        self.log = work / f"{dev}.log"
        self.conf.write_text(daemon_config(dev, port, fps, qos, max_age_s, stats_s, args.models))
        self.argv = [args.binary, "run", "--config", str(self.conf)]
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log.unlink(missing_ok=True)
        self.proc = self.kids.start(self.dev, self.argv, self.log)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise Failure(f"daemon {self.dev} exited {self.proc.returncode}; "
                          f"{self.log}:\n{tail(self.log)}")

    def stop(self, signalled: bool = False) -> None:
        rc = self.kids.stop(self.proc, timeout=20, signalled=signalled)
        if rc != 0:
            raise Failure(f"daemon {self.dev} exited {rc} on SIGTERM; "
                          f"{self.log}:\n{tail(self.log)}")


def client(name: str, clean: bool = True) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, clean_session=clean)
    c.reconnect_delay_set(0.1, 0.5)
    return c


def connect(c: mqtt.Client, port: int, topics: list[tuple[str, int]], what: str) -> None:
    """Connects and subscribes once (a persistent session keeps the subscription); waits for
    the SUBACK."""
    subscribed = threading.Event()
    c.on_subscribe = lambda *a: subscribed.set()
    c.connect("127.0.0.1", port, keepalive=10)
    c.subscribe(topics)
    c.loop_start()
    if not subscribed.wait(10):
        raise Failure(f"{what}: no SUBACK from the broker on port {port} within 10 s")


def preflight(args) -> Path:
    if not os.access(args.binary, os.X_OK):
        raise Failure(f"no daemon binary at {args.binary} (cargo build --release)")
    if shutil.which("mosquitto") is None:
        raise Failure("mosquitto is not installed (apt-get install mosquitto)")
    work = ROOT / "target/fleet" / args.cmd
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


# --- fleet -----------------------------------------------------------------------------------

class PoseLog:
    """What the subscriber received: one record per pose message, plus statuses and stats."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.poses: list[tuple] = []  # (recv_ns, dev, seq, mono_ns, lookahead, fps, bytes)
        self.bad: list[str] = []  # undecodable or rule-breaking, with the reason
        self.status: dict[str, str] = {}
        self.stats: dict[str, dict] = {}
        self.full_lookahead: set[str] = set()
        self.dropped = None  # the broker's $SYS/broker/publish/messages/dropped

    def on_message(self, c, userdata, m) -> None:
        now = time.monotonic_ns()
        parts = m.topic.split("/")
        with self.lock:
            if m.topic == "$SYS/broker/publish/messages/dropped":
                self.dropped = int(m.payload)
            elif parts[-1] == "status":
                self.status[parts[1]] = m.payload.decode(errors="replace")
            elif parts[-1] == "stats":
                self.stats[parts[1]] = json.loads(m.payload)
            elif parts[-1] == "pose":
                try:
                    msg = smplcast_sub.decode(m.payload)
                except (smplcast_sub.DecodeError, ValueError, KeyError, TypeError) as e:
                    self.bad.append(f"{m.topic}: undecodable: {e}")
                    return
                broken = smplcast_sub.violations(msg)
                if msg["dev"] != parts[1]:
                    broken.append(f"dev {msg['dev']!r} on topic {m.topic}")
                if broken:
                    self.bad.append(f"{m.topic} seq {msg['seq']}: {broken}")
                win = msg["win"]
                self.poses.append((now, msg["dev"], msg["seq"], msg["mono_ns"], win["lookahead"],
                                   win.get("fps"), len(m.payload)))
                if win["lookahead"] > 0:
                    self.full_lookahead.add(msg["dev"])


def run_phase(name: str, kids: Children, work: Path, args, broker: Broker, log: PoseLog,
              n: int, seconds: float) -> dict:
    devs = [f"{name}-{i:02d}" for i in range(n)]
    daemons = [Daemon(kids, work, args, dev, broker.port, args.fps) for dev in devs]
    t_start = time.monotonic()
    for d in daemons:
        d.start()

    def ready() -> bool:
        for d in daemons:
            d.check_alive()
        with log.lock:
            return all(log.status.get(d) == "online" and d in log.full_lookahead for d in devs)

    try:
        wait_for(ready, 30 + n, f"{name}: every daemon online with a full-lookahead pose")
    except Failure:
        with log.lock:
            late = [d for d in devs if not (log.status.get(d) == "online"
                                            and d in log.full_lookahead)]
        raise Failure(f"{name}: {len(late)} of {n} daemons not online with a full-lookahead pose "
                      f"within {30 + n} s: {late} (logs in {work})")
    startup_s = time.monotonic() - t_start
    procs = [broker.proc] + [d.proc for d in daemons]
    with log.lock:
        dropped0 = log.dropped
    cpu0, t0 = [cpu_s(p.pid) for p in procs], time.monotonic_ns()
    time.sleep(seconds)
    cpu1, t1 = [cpu_s(p.pid) for p in procs], time.monotonic_ns()
    rss = [rss_mb(d.proc.pid) for d in daemons]
    for d in daemons:
        d.check_alive()
    window_s = (t1 - t0) / 1e9
    for d in daemons:
        d.proc.send_signal(signal.SIGTERM)  # all at once: a fleet stops in parallel
    for d in daemons:
        d.stop(signalled=True)
    time.sleep(1.0)  # the last poses and $SYS reach the subscriber
    cpu_pct = [(b - a) / window_s * 100 for a, b in zip(cpu0, cpu1)]

    with log.lock:
        poses = [p for p in log.poses if p[1] in devs]
        stats = {d: log.stats.get(d, {}) for d in devs}
        dropped1 = log.dropped
    win = [p for p in poses if t0 <= p[0] <= t1]
    lag = [(p[0] - p[3]) / 1e6 for p in win]
    lag_wait = [(p[0] - p[3]) / 1e6 - p[4] * 1000 / (p[5] or args.fps) for p in win]
    per_dev = {d: [] for d in devs}
    for p in poses:
        per_dev[p[1]].append(p[2])
    gaps, dups, disorder = {}, 0, 0
    for d, seqs in per_dev.items():
        seen = set(seqs)
        gaps[d] = (max(seqs) + 1 - len(seen)) if seqs else 0  # every seq 0..last
        dups += len(seqs) - len(seen)
        disorder += sum(1 for a, b in zip(seqs, seqs[1:]) if b < a)
    count = {d: 0 for d in devs}
    for p in win:
        count[p[1]] += 1
    rate = len(win) / window_s
    nbytes = sum(p[6] for p in win)
    r = lambda x, k=1: None if x is None else round(x, k)  # noqa: E731
    return {
        "daemons": n,
        "fps_each": args.fps,
        "startup_s": r(startup_s),
        "window_s": r(window_s, 2),
        "messages": len(win),
        "messages_per_s": r(rate),
        "expected_per_s": n * args.fps,
        "per_device_per_s": [r(min(count.values()) / window_s, 2),
                             r(max(count.values()) / window_s, 2)],
        "payload_bytes_per_s": round(nbytes / window_s),
        "bytes_per_message": r(nbytes / len(win)) if win else None,
        "broker_cpu_pct": r(cpu_pct[0]),
        "daemon_cpu_pct_mean": r(sum(cpu_pct[1:]) / n),
        "daemon_cpu_pct_max": r(max(cpu_pct[1:])),
        "daemon_rss_mb_mean": r(sum(rss) / n),
        "lag_ms_p50": r(percentile(lag, 50)),
        "lag_ms_p95": r(percentile(lag, 95)),
        "lag_less_lookahead_ms_p50": r(percentile(lag_wait, 50)),
        "lag_less_lookahead_ms_p95": r(percentile(lag_wait, 95)),
        "lookahead_frames": sorted({p[4] for p in win}),
        "seq_gaps": sum(gaps.values()),
        "seq_gaps_per_device": {d: g for d, g in gaps.items() if g},
        "duplicates": dups,
        "out_of_order": disorder,
        "silent_devices": [d for d, c in count.items() if c == 0],
        "frames_dropped": sum(s.get("frames_dropped", 0) for s in stats.values()),
        "messages_dropped": sum(s.get("messages_dropped", 0) for s in stats.values()),
        "broker_dropped": (None if dropped0 is None or dropped1 is None
                           else dropped1 - dropped0),
    }


def check_phase(name: str, m: dict, log: PoseLog, problems: list[str]) -> None:
    if m["silent_devices"]:
        problems.append(f"{name}: daemons delivered nothing in the window: {m['silent_devices']}")
    if m["seq_gaps"]:
        problems.append(f"{name}: {m['seq_gaps']} seq gaps at QoS 0 on loopback (none allowed): "
                        f"{m['seq_gaps_per_device']}; broker dropped {m['broker_dropped']}, "
                        f"daemons dropped {m['messages_dropped']}")
    if m["out_of_order"]:
        problems.append(f"{name}: {m['out_of_order']} messages out of seq order")
    low, high = m["expected_per_s"] * 0.85, m["expected_per_s"] * 1.15
    if not low <= m["messages_per_s"] <= high:
        problems.append(f"{name}: {m['messages_per_s']} messages/s, expected "
                        f"{m['expected_per_s']} ± 15 % (frames dropped by the daemons: "
                        f"{m['frames_dropped']})")


def fleet(args) -> dict:
    work = preflight(args)
    kids = Children()
    broker = Broker(kids, "broker", work, free_port(), "sys_interval 1\n")
    broker.start()
    log = PoseLog()
    sub = client("fleet-sub")
    sub.on_message = log.on_message
    connect(sub, broker.port, [(f"{PREFIX}/+/pose", 0), (f"{PREFIX}/+/status", 1),
                               (f"{PREFIX}/+/stats", 0),
                               ("$SYS/broker/publish/messages/dropped", 0)], "fleet subscriber")
    problems: list[str] = []
    phases = {}
    try:
        for name, n, seconds in (("baseline", 1, args.baseline_seconds),
                                 ("fleet", args.daemons, args.seconds)):
            phases[name] = run_phase(name, kids, work, args, broker, log, n, seconds)
            check_phase(name, phases[name], log, problems)
    finally:
        sub.loop_stop()
        sub.disconnect()
        broker.stop()
    with log.lock:
        if log.bad:
            problems.append(f"{len(log.bad)} pose messages undecodable or against WIRE.md, "
                            f"e.g. {log.bad[:3]}")
    cols = [("phase", None), ("daemons", "daemons"), ("msg/s", "messages_per_s"),
            ("expect", "expected_per_s"), ("B/s", "payload_bytes_per_s"),
            ("B/msg", "bytes_per_message"), ("broker%", "broker_cpu_pct"),
            ("daemon%", "daemon_cpu_pct_mean"), ("max%", "daemon_cpu_pct_max"),
            ("RSS MB", "daemon_rss_mb_mean"), ("lag p50", "lag_ms_p50"),
            ("p95", "lag_ms_p95"), ("-la p50", "lag_less_lookahead_ms_p50"),
            ("p95", "lag_less_lookahead_ms_p95"), ("gaps", "seq_gaps"),
            ("fr.drop", "frames_dropped")]
    print("  ".join(f"{c:>8}" for c, _ in cols))
    for name, m in phases.items():
        print("  ".join(f"{name if k is None else m[k]!s:>8}" for _, k in cols))
    print("(CPU: % of one core, mean over daemons and max; lag: capture → subscriber, ms; "
          "-la: less lookahead × frame period)")
    return {"test": "fleet", "phases": phases, "undecodable_or_invalid": len(log.bad),
            "problems": problems}


# --- bridge ----------------------------------------------------------------------------------

def bridge_conf(central_port: int, queue: int) -> str:
    """The device-side broker's config (less listener and logging): the one docs/FLEET.md
    quotes."""
    return f"""\
sys_interval 1
# QoS 1 messages held per client, the bridge included, beyond those in flight
max_queued_messages {queue}
persistence false

connection central
address 127.0.0.1:{central_port}
topic {PREFIX}/# out 1
cleansession false
remote_clientid smplcast-site-bridge
# retry the central broker every 1 to 2 s (jittered); the default backs off from 5 s to 30 s
restart_timeout 1 2
"""


def bridge(args) -> dict:
    work = preflight(args)
    kids = Children()
    central_port, device_port = free_port(), free_port()
    store = persistence_dir(work / "central-db")
    central = Broker(kids, "central", work, central_port,
                     f"persistence true\npersistence_location {store}/\n"
                     "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n")
    device = Broker(kids, "device", work, device_port,
                    "log_type all\n" + bridge_conf(central_port, args.queue))
    central.start()
    device.start()

    lock = threading.Lock()
    seen_at_device: dict[int, int] = {}  # seq → when the device broker had it (ns)
    delivered: list[tuple[int, int]] = []  # (recv_ns, seq) at the central subscriber
    states: list[tuple[int, str]] = []  # (recv_ns, topic): status and camera at central
    retained: set[str] = set()  # the retained topics under the bridged prefix
    bad: list[str] = []
    sysv: dict[str, str] = {}
    history: list[tuple[int, int]] = []  # (recv_ns, $SYS dropped count) of the device broker
    sessions: list[bool] = []  # session_present on each connection of the central subscriber

    def decode(payload: bytes, where: str) -> int | None:
        try:
            return smplcast_sub.decode(payload)["seq"]
        except (smplcast_sub.DecodeError, ValueError, KeyError, TypeError) as e:
            bad.append(f"{where}: {e}")
            return None

    def on_device(c, u, m) -> None:
        now = time.monotonic_ns()
        with lock:
            if m.topic.startswith("$SYS/"):
                sysv[m.topic] = m.payload.decode()
                if m.topic.endswith("/dropped"):
                    history.append((now, int(m.payload)))
            elif m.topic.rsplit("/", 1)[-1] in ("status", "camera"):  # retained (WIRE.md)
                retained.add(m.topic)
            elif m.topic.endswith("/pose"):
                seq = decode(m.payload, "device broker")
                if seq is not None:
                    seen_at_device.setdefault(seq, now)

    def on_central(c, u, m) -> None:
        now = time.monotonic_ns()
        with lock:
            if not m.topic.endswith("/pose"):
                states.append((now, m.topic))
                return
            seq = decode(m.payload, "central broker")
            if seq is not None:
                delivered.append((now, seq))

    def on_central_connect(c, u, flags, reason, props) -> None:
        with lock:
            sessions.append(bool(flags.session_present))

    def bridge_state() -> str | None:
        with lock:
            return sysv.get("$SYS/broker/connection/smplcast-site-bridge/state")

    def dropped() -> int | None:
        with lock:
            v = sysv.get("$SYS/broker/publish/messages/dropped")
        return None if v is None else int(v)

    monitor = client("device-monitor")
    monitor.on_message = on_device
    connect(monitor, device_port, [("$SYS/broker/publish/messages/dropped", 0),
                                   ("$SYS/broker/connection/+/state", 0),
                                   (f"{PREFIX}/#", 1)], "device-side monitor")
    wait_for(lambda: bridge_state() == "1", 10, "the device broker's bridge to connect to central")
    sub = client("smplcast-central-sub", clean=False)
    sub.on_message = on_central
    sub.on_connect = on_central_connect
    connect(sub, central_port, [(f"{PREFIX}/#", 1)], "central subscriber")

    daemon = Daemon(kids, work, args, "site-cam", device_port, args.fps, qos=1,
                    max_age_s=args.max_age_s, stats_s=0)
    daemon.start()
    try:
        n_before = int(args.fps * 3)

        def delivered_count() -> int:
            daemon.check_alive()
            with lock:
                return len(delivered)
        wait_for(lambda: delivered_count() >= n_before, 30,
                 f"{n_before} poses at the central subscriber through the bridge")
        wait_for(lambda: dropped() is not None, 5, "the device broker's $SYS dropped count")
        dropped_before = dropped()
        t_down = time.monotonic_ns()
        central.stop()
        time.sleep(args.outage)
        daemon.check_alive()
        central.start()
        t_up = time.monotonic_ns()
        wait_for(lambda: bridge_state() == "1", 15,
                 "the bridge to reconnect to the restarted central broker")
        t_bridge = time.monotonic_ns()
        with lock:
            live_seq = max(seen_at_device)
        wait_for(lambda: len(sessions) >= 2, 10, "the central subscriber to reconnect")
        if not sessions[-1]:
            raise Failure("the central broker lost the subscriber's session over its restart "
                          f"(persistence in {store}; {central.log})")
        wait_for(lambda: any(s >= live_seq for _, s in list(delivered)), 15,
                 f"live delivery to resume (seq {live_seq} at the central subscriber)")
        time.sleep(1.0)
        t_stop = time.monotonic_ns()  # the daemon's offline and stopped come after this
        daemon.stop()
        time.sleep(2.0)  # the tail, and $SYS (every second) after the last drop
    finally:
        sub.loop_stop()
        monitor.loop_stop()
    dropped_after = dropped()
    device.stop()
    central.stop()

    # mosquitto re-subscribes the bridge's local topics on every connection attempt, and so
    # queues a copy of each retained message under them (status, camera) per attempt: while
    # the central broker is away those copies take queue slots, and once the queue is full
    # they are dropped and counted with the poses. The attempts are the log's local
    # SUBSCRIBEs after the first. The copies dropped are not seen one by one, so the check
    # below bounds them: poses missing ≤ dropped ≤ poses missing + every copy made.
    attempts = device.log.read_text(errors="replace").count("doing local SUBSCRIBE") - 1
    with lock:
        at_device = dict(seen_at_device)
        got = list(delivered)
        n_retained = len(retained)
        state_copies = sum(1 for t, _ in states if t_up < t < t_stop)
    first, last = min(at_device), max(at_device)
    published = set(range(first, last + 1))
    order, first_seen, dups, disorder = [], set(), 0, []
    for t, s in got:
        if s in first_seen:
            dups += 1
            continue
        if order and s < order[-1][1]:
            disorder.append((order[-1][1], s))
        first_seen.add(s)
        order.append((t, s))
    before = [s for t, s in order if t < t_down]
    after = [s for t, s in order if t > t_up]
    held = [s for s in after if at_device.get(s, t_bridge) < t_bridge]
    missing = sorted(published - first_seen)
    n_dropped = dropped_after - dropped_before
    copies = n_retained * (attempts + 1)  # + 1: the copies made at the last, successful one
    m = {
        "fps": args.fps,
        "outage_s": args.outage,
        "max_age_s": args.max_age_s,
        "queue_bound": args.queue,
        "published": len(published),
        "seq_first_last": [first, last],
        "missing_at_device_broker": len(published - set(at_device)),
        "delivered_before_outage": len(before),
        "published_during_outage": sum(1 for t in at_device.values() if t_down <= t < t_bridge),
        "held_by_bridge": len(held),
        "delivered_after_outage": len(after),
        "missing": len(missing),
        "missing_seq_ranges": ranges(missing),
        "device_broker_dropped": n_dropped,
        "retained_topics": n_retained,
        "bridge_connection_attempts": attempts,
        "retained_copies_held": state_copies,
        "dropped_less_missing": n_dropped - len(missing),
        "device_dropped_timeline": [[round((t - t_down) / 1e9, 1), v] for t, v in history],
        "duplicates": dups,
        "out_of_order": len(disorder),
        "bridge_reconnect_s": round((t_bridge - t_up) / 1e9, 2),
        "subscriber_sessions_present": sessions,
        "undecodable": len(bad),
    }
    problems = []
    if m["missing_at_device_broker"]:
        problems.append(f"{m['missing_at_device_broker']} poses never reached the device broker "
                        "(the daemon dropped them; the bridge cannot be blamed)")
    if n_dropped <= 0:
        problems.append(f"the device broker dropped nothing: a {args.outage} s outage at "
                        f"{args.fps} fps should overflow a queue of {args.queue}")
    if len(missing) > n_dropped:
        problems.append(f"{len(missing)} poses missing at the central subscriber, but the device "
                        f"broker counted {n_dropped} dropped: {len(missing) - n_dropped} losses "
                        "nobody counted")
    elif n_dropped > len(missing) + copies:
        problems.append(f"the device broker counted {n_dropped} dropped, more than the "
                        f"{len(missing)} poses missing and the {copies} copies of retained "
                        f"messages ({n_retained} topics × {attempts + 1} bridge connections)")
    if len(held) + state_copies > args.queue + INFLIGHT:
        problems.append(f"the bridge held {len(held)} poses and {state_copies} retained copies, "
                        f"more than its bound {args.queue} + {INFLIGHT} in flight")
    if not held:
        problems.append("nothing held by the bridge was delivered after the outage")
    if disorder:
        problems.append(f"{len(disorder)} poses out of seq order (after, before): {disorder[:5]}")
    if bad:
        problems.append(f"{len(bad)} undecodable poses, e.g. {bad[:3]}")
    for k, v in m.items():
        print(f"  {k:28} {v}")

    return {"test": "bridge", "bridge": m, "problems": problems}


def ranges(seqs: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for s in seqs:
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out


def main() -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--binary", default=str(ROOT / "target/release/smplcast"))
    common.add_argument("--models", default=str(ROOT / "models/fixtures/narrow"))
    common.add_argument("--json", help="also write the summary here")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cmds = ap.add_subparsers(dest="cmd", required=True)
    f = cmds.add_parser("fleet", parents=[common],
                        help="N daemons into one mosquitto, after a one-daemon baseline")
    f.add_argument("--daemons", type=int, default=20)
    f.add_argument("--fps", type=float, default=5)
    f.add_argument("--seconds", type=float, default=20, help="the fleet's measured window")
    f.add_argument("--baseline-seconds", type=float, default=6)
    b = cmds.add_parser("bridge", parents=[common],
                        help="a device broker bridged to a central one, with an outage")
    b.add_argument("--fps", type=float, default=10)
    b.add_argument("--outage", type=float, default=20, help="seconds the central broker is down")
    b.add_argument("--queue", type=int, default=100, help="the device broker's max_queued_messages")
    b.add_argument("--max-age-s", type=float, default=60,
                   help="the daemon's mqtt.max_age_s (MQTT 5: the poses' message expiry)")
    args = ap.parse_args()
    if args.json and not Path(args.json).is_absolute():
        args.json = str(Path.cwd() / args.json)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))  # run the cleanup
    t0 = time.monotonic()
    try:
        summary = fleet(args) if args.cmd == "fleet" else bridge(args)
    except Failure as e:
        summary = {"test": args.cmd, "problems": [str(e)]}
    summary["wall_s"] = round(time.monotonic() - t0, 1)
    summary["machine"] = machine()
    summary["command"] = "tests/run tests/fleet/fleet.py " + " ".join(sys.argv[1:])
    print(json.dumps(summary))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    for p in summary["problems"]:
        print(f"FAIL ({args.cmd}): {p}", file=sys.stderr)
    return 1 if summary["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
