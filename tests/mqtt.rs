//! The publisher against a real mosquitto broker on loopback, read by a third-party subscriber
//! (Python paho-mqtt + tests/subscriber/smplcast_sub.py, written from docs/WIRE.md alone).
//! scripts/test.sh installs mosquitto and the Python venv.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::mqtt::{
    assert_retained_offline, is_status, root, rumqttd_v311, Broker, Relay, Sent, Subscriber,
};

use serde_json::Value;
use smplcast::mqtt::publish::{self, Counters};
use smplcast::mqtt::Settings;
use smplcast::mqtt::{self, QoS};
use smplcast::queue;
use smplcast::stages::output::Outgoing;
use smplcast::wire::{self, Person, PoseMsg, Window, SCHEMA_VERSION};
use tokio_util::sync::CancellationToken;

fn settings(port: u16, device: &str) -> Settings {
    Settings {
        broker: mqtt::Broker {
            keep_alive: Duration::from_secs(5),
            ..mqtt::Broker::plain("127.0.0.1", port)
        },
        prefix: "smplcast".into(),
        device_id: device.into(),
        pose_qos: QoS::AtMostOnce,
        client_cap: 16,
        max_age: Duration::from_secs(60),
        discovery: Vec::new(),
    }
}

fn message(seq: u64) -> PoseMsg {
    PoseMsg {
        v: SCHEMA_VERSION,
        dev: "test".into(),
        seq,
        frame: 100 + seq,
        utc_us: 1_795_600_000_000_000 + seq as i64 * 33_333,
        mono_ns: 5_000_000_000 + seq * 33_333_333,
        model: "mpsnet-random-0-w8".into(),
        win: Window { len: 16, lookahead: 7, fps: None },
        img: [640, 480],
        people: vec![Person {
            id: 7,
            bbox: [100, 20, 120, 300],
            score: 0.9,
            cam: [0.9, 0.01, 0.2],
            cam_img: [0.17, 0.23, -0.4, 0.1],
            pose: std::array::from_fn(|j| ((j as u64 + seq) as f32 * 0.1).sin()),
            shape: std::array::from_fn(|j| j as f32 * 0.1 - 0.5),
            joints: None,
            predicted: false,
        }],
    }
}

/// A publisher on its own runtime, as the daemon runs it.
struct Publisher {
    rt: tokio::runtime::Runtime,
    pose_tx: queue::Sender<Outgoing>,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), publish::Error>>,
}

impl Publisher {
    fn start(port: u16, device: &str) -> Publisher {
        Publisher::start_with(settings(port, device))
    }

    fn start_with(settings: Settings) -> Publisher {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (pose_tx, pose_rx) = queue::bounded("poses", 64);
        let counters = Arc::new(Counters::default());
        let shutdown = CancellationToken::new();
        let run = publish::run(settings, pose_rx, None, counters.clone(), shutdown.clone());
        let task = rt.spawn(run);
        Publisher { rt, pose_tx, counters, shutdown, task }
    }
}

#[test]
fn poses_reach_a_third_party_subscriber_and_status_goes_offline_on_clean_stop() {
    let device = "clean-stop";
    let broker = Broker::start();
    let sub = Subscriber::start(broker.port, device, 30);
    sub.until(Duration::from_secs(15), |v| v["ready"] == true);

    let Publisher { rt, pose_tx, counters, shutdown, task } = Publisher::start(broker.port, device);
    let mut lines = Vec::new();
    rt.block_on(async {
        // Poses are published once `online` is seen, so the status order is deterministic.
        let online = |l: &[Value]| l.iter().any(|v| is_status(v, "online"));
        sub.until_async(&mut lines, Duration::from_secs(15), online).await;
        for seq in 0..20 {
            pose_tx.send(Outgoing::now(wire::encode(&message(seq)))).unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let all_poses = |l: &[Value]| l.iter().filter(|v| v.get("pose").is_some()).count() >= 20;
        sub.until_async(&mut lines, Duration::from_secs(15), all_poses).await;
        shutdown.cancel();
        task.await.unwrap().unwrap();
    });
    lines.extend(sub.until(Duration::from_secs(10), |v| is_status(v, "offline")));

    let poses: Vec<&Value> = lines.iter().filter_map(|v| v.get("pose")).collect();
    assert_eq!(poses.len(), 20);
    for (seq, got) in poses.iter().enumerate() {
        let want = wire::decode(&wire::encode(&message(seq as u64))).unwrap();
        assert_eq!(**got, serde_json::to_value(&want).unwrap(), "pose seq {seq}");
    }
    let statuses: Vec<&str> = lines.iter().filter_map(|v| v["status"].as_str()).collect();
    assert_eq!(statuses.last(), Some(&"offline"), "{statuses:?}");
    assert!(statuses.contains(&"online"));
    assert_eq!(counters.stats.queued.load(std::sync::atomic::Ordering::Relaxed), 20);
    assert_eq!(pose_tx.dropped(), 0);
}

#[test]
fn last_will_says_offline_when_the_connection_dies() {
    let device = "killed";
    let broker = Broker::start();
    let sub = Subscriber::start(broker.port, device, 30);
    sub.until(Duration::from_secs(15), |v| v["ready"] == true);

    let Publisher { rt, pose_tx: _pose_tx, .. } = Publisher::start(broker.port, device);
    let mut lines = Vec::new();
    let online = |l: &[Value]| l.iter().any(|v| is_status(v, "online"));
    rt.block_on(sub.until_async(&mut lines, Duration::from_secs(15), online));
    // Like a SIGKILL: the tasks vanish, the socket closes without DISCONNECT or `offline`.
    rt.shutdown_background();
    sub.until(Duration::from_secs(10), |v| is_status(v, "offline"));

    // The will is retained: a subscriber that comes later reads `offline` at once.
    assert_retained_offline(broker.port, device);
}

/// `smplcast sub` (the CLI) prints the same messages, decoded, as JSON lines.
#[test]
fn smplcast_sub_prints_decoded_messages() {
    let device = "cli-sub";
    let broker = Broker::start();
    let Publisher { rt, pose_tx, shutdown, task, .. } = Publisher::start(broker.port, device);
    let CliSub { child: mut cli, lines } = CliSub::start(broker.port, device, &["--count", "5"]);
    rt.block_on(async {
        // The retained `online` arrives first: from then on the CLI is subscribed.
        let first = tokio::task::spawn_blocking(move || {
            let v = lines.recv_timeout(Duration::from_secs(15)).expect("retained status");
            (v, lines)
        });
        let (first, lines) = first.await.unwrap();
        assert_eq!(
            (first["status"].as_str(), first["retained"].as_bool()),
            (Some("online"), Some(true))
        );
        for seq in 0..5 {
            pose_tx.send(Outgoing::now(wire::encode(&message(seq)))).unwrap();
        }
        let status = tokio::task::spawn_blocking(move || cli.wait()).await.unwrap().unwrap();
        assert!(status.success());
        // The reader thread may still be forwarding the last lines.
        let poses: Vec<Value> =
            (0..5).map_while(|_| lines.recv_timeout(Duration::from_secs(5)).ok()).collect();
        assert_eq!(poses.len(), 5, "{poses:?}");
        for (seq, line) in poses.iter().enumerate() {
            assert_eq!(line["topic"], format!("smplcast/{device}/pose"));
            let want = wire::decode(&wire::encode(&message(seq as u64))).unwrap();
            assert_eq!(line["pose"], serde_json::to_value(&want).unwrap());
        }
        shutdown.cancel();
        task.await.unwrap().unwrap();
    });
}

#[test]
fn smplcast_sub_names_an_unreachable_broker() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = Command::new(env!("CARGO_BIN_EXE_smplcast"))
        .args(["sub", "--port", &port.to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("MQTT broker at 127.0.0.1:{port}")), "{err}");
    assert!(err.contains("start the broker or fix [mqtt] host and port"), "{err}");
}

/// `smplcast demo` on the narrow model with `extra` flags, publishing to mosquitto; what the
/// Python subscriber printed until the demo's `offline`.
fn demo_to_subscriber(
    device: &str,
    frames: u64,
    extra: &[&str],
) -> (std::process::Output, Vec<Value>) {
    let broker = Broker::start();
    let sub = Subscriber::start_with(broker.port, device, 60, &["--camera"]);
    sub.until(Duration::from_secs(15), |v| v["ready"] == true);
    let out = Command::new(env!("CARGO_BIN_EXE_smplcast"))
        .args(["demo", "--models"])
        .arg(root().join("models/fixtures/narrow"))
        .args(["--frames", &frames.to_string(), "--device", device])
        .args(["--mqtt", &format!("127.0.0.1:{}", broker.port)])
        .args(extra)
        .output()
        .unwrap();
    if !out.status.success() {
        return (out, Vec::new());
    }
    let mut lines = sub.until(Duration::from_secs(20), |v| is_status(v, "offline"));
    lines.extend(sub.rest(Duration::from_secs(5)));
    (out, lines)
}

/// End to end: `smplcast demo` (synthetic source → model → window → SMPL → CBOR → publisher)
/// → mosquitto → the Python subscriber, which decodes from the spec alone.
#[test]
fn demo_streams_every_frame_to_a_third_party_subscriber() {
    let (device, frames) = ("e2e", 40u64);
    let (out, lines) = demo_to_subscriber(device, frames, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let poses: Vec<&Value> = lines.iter().filter_map(|v| v.get("pose")).collect();
    assert_eq!(poses.len() as u64, frames, "QoS 0 on loopback with a 64-deep queue loses nothing");
    let broken: Vec<&Value> = lines.iter().filter_map(|v| v.get("violations")).collect();
    assert!(broken.is_empty(), "messages break docs/WIRE.md's rules: {broken:?}");
    for (k, p) in poses.iter().enumerate() {
        let k = k as u64;
        assert_eq!((p["seq"].as_u64(), p["frame"].as_u64()), (Some(k), Some(k)), "in order");
        assert_eq!((p["dev"].as_str(), p["v"].as_u64()), (Some(device), Some(1)));
        // Track start (frames 0-7) and end (last 7) use repeated windows: no lookahead.
        let centred = k >= 8 && k + 7 < frames;
        assert_eq!(p["win"]["lookahead"].as_u64(), Some(if centred { 7 } else { 0 }), "frame {k}");
        let people = p["people"].as_array().unwrap();
        assert_eq!(people.len(), 1);
        let person = &people[0];
        assert_eq!(person["pose"].as_array().unwrap().len(), 72);
        assert_eq!(person["shape"].as_array().unwrap().len(), 10);
        let finite = |key: &str| person[key].as_array().unwrap().iter().all(|x| x.is_f64());
        assert!(["pose", "shape", "cam", "cam_img"].iter().all(|k| finite(k)));
        // Axis-angle: each joint's angle is in [0, π] (binary16 rounding allowed).
        for j in person["pose"].as_array().unwrap().chunks(3) {
            let n: f64 = j.iter().map(|x| x.as_f64().unwrap().powi(2)).sum::<f64>().sqrt();
            assert!(n <= std::f64::consts::PI + 2e-3, "joint angle {n}");
        }
    }
    // Capture times grow with the frame.
    let mono: Vec<u64> = poses.iter().map(|p| p["mono_ns"].as_u64().unwrap()).collect();
    assert!(mono.windows(2).all(|w| w[0] < w[1]));
    let statuses: Vec<&str> = lines.iter().filter_map(|v| v["status"].as_str()).collect();
    assert_eq!((statuses.first(), statuses.last()), (Some(&"online"), Some(&"offline")));
    // The retained camera state ends `stopped`, published before `offline`.
    let states: Vec<&str> = lines.iter().filter_map(|v| v["camera"]["state"].as_str()).collect();
    assert_eq!(states, ["streaming", "stopped"]);
    let stopped = lines.iter().position(|v| v["camera"]["state"] == "stopped");
    let offline = lines.iter().position(|v| v["status"] == "offline");
    assert!(stopped < offline, "{lines:?}");
}

/// The README's main command: `smplcast demo` with nothing else installed starts its own
/// broker (rumqttd) and reports what its subscriber receives.
/// The README's main command on its embedded broker: a third-party subscriber (paho-mqtt,
/// decoding from docs/WIRE.md) connects to the port the demo prints and receives its poses,
/// in order and decodable, to the last frame.
#[test]
fn demo_runs_on_its_embedded_broker() {
    let mut demo = Command::new(env!("CARGO_BIN_EXE_smplcast"))
        .args(["demo", "--models"])
        .arg(root().join("models/fixtures/narrow"))
        .args(["--frames", "30", "--fps", "10"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(demo.stdout.take().unwrap()).lines();
    let first = stdout.next().unwrap().unwrap();
    let port: u16 = first
        .strip_prefix("embedded MQTT broker on 127.0.0.1:")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no broker port in {first:?}"));
    let sub = Subscriber::start(port, "demo", 30);
    let seen = sub.until(Duration::from_secs(20), |v| v["pose"]["seq"] == 29);
    let rest: Vec<String> = stdout.map_while(Result::ok).collect();
    assert!(demo.wait().unwrap().success(), "{rest:?}");
    assert_eq!(rest.last().map(String::as_str), Some("30 frames in, 0 dropped, 30 results out"));
    // Subscribed a moment after the demo started: a contiguous run to the last frame.
    let seqs: Vec<u64> = seen.iter().filter_map(|v| v["pose"]["seq"].as_u64()).collect();
    assert!(seqs.len() >= 10, "{seqs:?}");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert!(seen.iter().all(|v| v.get("error").is_none()), "{seen:?}");
    // The demo publishes stats every second (3 s of frames).
    let stats: Vec<&Value> = seen.iter().filter_map(|v| v.get("stats")).collect();
    assert!(!stats.is_empty() && stats.iter().all(|s| s["frames_in"].is_u64()), "{seen:?}");
}

/// `smplcast demo --detector --images DIR`: the default detector finds the people of a real
/// frame (vtest.avi's frame 60: six people in the hand labels), and the tracker reports them once confirmed
/// (`min_hits` = 3 by default), so the last of four copies of the frame has people.
#[test]
fn demo_finds_people_in_real_frames_with_its_default_detector() {
    let dir = std::env::temp_dir().join(format!("smplcast-demo-images-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..4 {
        let frame = root().join("tests/data/nanodet/vtest-0060.png");
        std::fs::copy(frame, dir.join(format!("{i}.png"))).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_smplcast"))
        .current_dir(root())
        .args(["demo", "--detector", "--models"])
        .arg(root().join("models/fixtures/narrow"))
        .arg("--images")
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    let (live, last) = (lines[lines.len() - 2], lines[lines.len() - 1]);
    assert_eq!(last, "4 frames in, 0 dropped, 4 results out", "{stdout}");
    let people: usize = live
        .split(" people ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no people count in {live:?}"));
    assert!(people >= 3, "{live}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `smplcast demo` on the narrow models until stopped, its stdout piped.
fn endless_demo(stderr: Stdio) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_smplcast"))
        .args(["demo", "--models"])
        .arg(root().join("models/fixtures/narrow"))
        .args(["--frames", "0"])
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// The exit status of `child`, which must exit within 30 s.
fn exit_within_30_s(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            return exit;
        }
        assert!(Instant::now() < deadline, "still running 30 s after its stdout closed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `smplcast demo | head -2`: when the reader of its stdout goes, the demo stops as on Ctrl-C
/// and exits 0, instead of panicking in its next status line.
#[test]
fn demo_stops_cleanly_when_its_stdout_is_closed() {
    let mut child = endless_demo(Stdio::piped());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("embedded MQTT broker"), "{first}");
    let status = lines.next().unwrap().unwrap();
    assert!(status.contains("frames in"), "{status}");
    drop(lines);
    let exit = exit_within_30_s(&mut child);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(exit.success(), "{exit}: {stderr}");
    assert!(!stderr.contains("panicked") && stderr.contains("stdout was closed"), "{stderr}");
}

/// `smplcast sub | head -1` ends with exit status 0 once its reader has gone.
#[test]
fn sub_ends_cleanly_when_its_stdout_is_closed() {
    let mut demo = endless_demo(Stdio::null());
    let mut demo_lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let first = demo_lines.next().unwrap().unwrap();
    let port = first.split("127.0.0.1:").nth(1).and_then(|s| s.split(' ').next()).unwrap();
    let mut sub = Command::new(env!("CARGO_BIN_EXE_smplcast"))
        .args(["sub", "--port", port, "--device", "demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(sub.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().starts_with('{'));
    drop(lines);
    let exit = exit_within_30_s(&mut sub);
    let _ = demo.kill();
    let _ = demo.wait();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut sub.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(exit.success(), "{exit}: {stderr}");
}

/// `smplcast sub` as a child process; its JSON lines through a channel.
struct CliSub {
    child: std::process::Child,
    lines: mpsc::Receiver<Value>,
}

impl CliSub {
    fn start(port: u16, device: &str, args: &[&str]) -> CliSub {
        let mut child = Command::new(env!("CARGO_BIN_EXE_smplcast"))
            .args(["sub", "--port", &port.to_string(), "--device", device])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel::<Value>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str(&line).expect("sub prints JSON lines"));
            }
        });
        CliSub { child, lines }
    }

    /// A recorder: `--count COUNT --record FILE`.
    fn record(port: u16, device: &str, count: u64, file: &std::path::Path) -> CliSub {
        let (count, file) = (count.to_string(), file.to_str().unwrap().to_string());
        CliSub::start(port, device, &["--count", &count, "--record", &file])
    }

    /// The retained status, which the broker sends as soon as the subscription is in place.
    fn subscribed(&self, want: &str) {
        let first = self.lines.recv_timeout(Duration::from_secs(15)).expect("retained status");
        assert_eq!(first["status"].as_str(), Some(want), "{first}");
    }

    /// Waits for the recorder to exit after its `--count` poses (30 s at most).
    fn finish(mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the recorder did not receive its poses in 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success());
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("smplcast-mqtt-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read_recording(file: &std::path::Path) -> Vec<wire::Recorded> {
    let reader = wire::Reader::new(std::fs::File::open(file).unwrap()).unwrap();
    reader.map(Result::unwrap).collect()
}

/// Record → replay → record again: every payload comes back byte for byte, in order, on its
/// topic.
#[test]
fn a_recording_replays_byte_identical_payloads() {
    let (device, n) = ("rec", 20u64);
    let dir = scratch("record");
    let (first, second) = (dir.join("first.rec"), dir.join("second.rec"));
    let broker = Broker::start();
    let Publisher { rt, pose_tx, shutdown, task, .. } = Publisher::start(broker.port, device);
    let recorder = CliSub::record(broker.port, device, n, &first);
    rt.block_on(async {
        let recorder = tokio::task::spawn_blocking(move || {
            recorder.subscribed("online");
            recorder
        });
        let recorder = recorder.await.unwrap();
        for seq in 0..n {
            pose_tx.send(Outgoing::now(wire::encode(&message(seq)))).unwrap();
            // Paced like a camera: a burst beyond the client's 16 requests is dropped.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::task::spawn_blocking(move || recorder.finish()).await.unwrap();
        shutdown.cancel();
        task.await.unwrap().unwrap();
    });
    let recorded = read_recording(&first);
    let poses: Vec<&wire::Recorded> =
        recorded.iter().filter(|m| m.topic.ends_with("/pose")).collect();
    assert_eq!(poses.len() as u64, n);
    for (seq, m) in poses.iter().enumerate() {
        assert_eq!(m.payload, wire::encode(&message(seq as u64)), "pose {seq} recorded as sent");
    }
    assert!(recorded.windows(2).all(|w| w[0].t_ns <= w[1].t_ns));

    // The publisher left `offline` retained: the second recorder's first message.
    let again = CliSub::record(broker.port, device, n, &second);
    again.subscribed("offline");
    let out = Command::new(env!("CARGO_BIN_EXE_smplcast"))
        .args(["sub", "--port", &broker.port.to_string(), "--speed", "0", "--replay"])
        .arg(&first)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("Replayed {} messages", recorded.len())), "{stderr}");
    again.finish();
    let replayed = read_recording(&second);
    // After the retained `offline`: what the first recording holds, in order.
    let payloads = |ms: &[wire::Recorded]| -> Vec<(String, Vec<u8>)> {
        ms.iter().map(|m| (m.topic.clone(), m.payload.clone())).collect()
    };
    assert_eq!(replayed[0].payload, b"offline");
    assert_eq!(payloads(&replayed[1..]), payloads(&recorded));

    // The third-party reader, written from docs/WIRE.md, reads the replayed recording.
    let out = Command::new(common::mqtt::python())
        .arg(root().join("tests/subscriber/sub.py"))
        .arg("--recording")
        .arg(&second)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), replayed.len());
    let seqs: Vec<u64> = lines.iter().filter_map(|l| l["pose"]["seq"].as_u64()).collect();
    assert_eq!(seqs, (0..n).collect::<Vec<u64>>());
    assert_eq!(
        (lines[0]["text"].as_str(), lines[0]["retain"].as_bool()),
        (Some("offline"), Some(true))
    );
}

/// A file that is not a recording is named, and nothing is published.
#[test]
fn replay_names_a_file_that_is_not_a_recording() {
    let file = scratch("not-a-recording").join("pose.cbor");
    std::fs::write(&file, wire::encode(&message(0))).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_smplcast"))
        .args(["sub", "--port", "1", "--replay"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("recording {}: not a smplcast recording", file.display())),
        "{err}"
    );
}

/// With an SMPL model file the demo adds 24 posed joints per person, which the third-party
/// subscriber decodes; they are the forward kinematics of the published θ and β (to binary16
/// precision). The synthetic model file comes from models/gen_joints_vectors.py.
#[test]
fn demo_with_an_smpl_file_publishes_joints() {
    let (device, frames) = ("joints", 12u64);
    let dir = scratch("joints");
    let smpl_file = common::synthetic_smpl_file(&dir);
    let (out, lines) =
        demo_to_subscriber(device, frames, &["--smpl-file", smpl_file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("SMPL model loaded"), "{stderr}");
    let skeleton = smplcast::smpl::joints::Skeleton::load(&smpl_file).unwrap();
    let poses: Vec<&Value> = lines.iter().filter_map(|v| v.get("pose")).collect();
    assert_eq!(poses.len() as u64, frames);
    let floats = |v: &Value| -> Vec<f32> {
        v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
    };
    for p in poses {
        let person = &p["people"][0];
        let joints = floats(&person["joints"]);
        assert_eq!(joints.len(), 72);
        let pose: [f32; 72] = floats(&person["pose"]).try_into().unwrap();
        let shape: [f32; 10] = floats(&person["shape"]).try_into().unwrap();
        let want = skeleton.joints(&pose, &shape);
        for (k, (got, want)) in joints.iter().zip(want.as_flattened()).enumerate() {
            // θ and β were rounded to binary16 after the joints were computed: a few mm.
            assert!(
                (got - want).abs() < 0.02,
                "joint {} axis {}: {got} against {want}",
                k / 3,
                k % 3
            );
        }
    }
}

/// Without an SMPL model file the messages carry no joints, and start-up says so.
#[test]
fn a_missing_smpl_file_is_named_at_start_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_smplcast"))
        .args(["demo", "--no-mqtt", "--frames", "1", "--models"])
        .arg(root().join("models/fixtures/narrow"))
        .args(["--smpl-file", "/nowhere/SMPL_NEUTRAL.npz"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[model] smpl_file") && err.contains("/nowhere/SMPL_NEUTRAL.npz"),
        "{err}"
    );
}

/// Waits (10 s at most) until the publisher's second connection is accepted.
async fn second_connection(counters: &Counters) {
    let connections = || counters.stats.connections.load(std::sync::atomic::Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while connections() < 2 {
        assert!(Instant::now() < deadline, "no reconnection after the cut");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn poses_in(lines: &[Value]) -> usize {
    lines.iter().filter(|v| v.get("pose").is_some()).count()
}

/// Publishes poses `seqs` once the subscriber has seen `online`, waits until it has `want`
/// poses in all, and returns its lines.
async fn online_then_poses(
    sub: &Subscriber,
    lines: &mut Vec<Value>,
    pose_tx: &queue::Sender<Outgoing>,
    seqs: std::ops::Range<u64>,
    want: usize,
) {
    let online = |l: &[Value]| l.iter().any(|v| is_status(v, "online"));
    sub.until_async(lines, Duration::from_secs(15), online).await;
    for seq in seqs {
        pose_tx.send(Outgoing::now(wire::encode(&message(seq)))).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sub.until_async(lines, Duration::from_secs(15), |l| poses_in(l) >= want).await;
}

/// The MQTT 5 properties of docs/WIRE.md, as an independent MQTT 5 subscriber (paho) reads
/// them through mosquitto.
#[test]
fn mqtt5_messages_carry_content_type_expiry_and_schema() {
    let device = "props";
    let broker = Broker::start();
    let sub = Subscriber::start_with(broker.port, device, 30, &["--mqtt5"]);
    sub.until(Duration::from_secs(15), |v| v["ready"] == true);
    let Publisher { rt, pose_tx, shutdown, task, .. } = Publisher::start(broker.port, device);
    let mut lines = Vec::new();
    rt.block_on(async {
        online_then_poses(&sub, &mut lines, &pose_tx, 0..3, 3).await;
        shutdown.cancel();
        task.await.unwrap().unwrap();
    });
    lines.extend(sub.until(Duration::from_secs(10), |v| is_status(v, "offline")));
    let poses: Vec<&Value> = lines.iter().filter(|v| v.get("pose").is_some()).collect();
    assert_eq!(poses.len(), 3);
    for p in poses {
        let props = &p["props"];
        assert_eq!(props["content_type"], "application/cbor", "{props}");
        assert_eq!(props["payload_format"], 0, "{props}");
        assert_eq!(props["user"], serde_json::json!([["smplcast-schema", "1"]]), "{props}");
        // max_age 60 s; the broker forwards what is left of it.
        let expiry = props["expiry"].as_u64().unwrap_or(0);
        assert!((55..=60).contains(&expiry), "{props}");
    }
    let statuses: Vec<&Value> = lines.iter().filter(|v| v.get("status").is_some()).collect();
    assert!(statuses.len() >= 2, "{lines:?}");
    for s in statuses {
        assert_eq!(s["props"]["content_type"], "text/plain", "{s}");
        assert_eq!(s["props"]["payload_format"], 1, "{s}");
    }
}

/// The pose topic's alias: the topic with alias 1 once per connection, then the alias alone;
/// after a cut connection the topic again. mosquitto resolves every one for a 3.1.1 subscriber.
#[test]
fn the_pose_topic_goes_by_alias_once_per_connection() {
    let device = "alias";
    let broker = Broker::start();
    let relay = Relay::start(broker.port);
    let sub = Subscriber::start(broker.port, device, 30);
    sub.until(Duration::from_secs(15), |v| v["ready"] == true);
    let Publisher { rt, pose_tx, counters, shutdown, task } = Publisher::start(relay.port, device);
    let mut lines = Vec::new();
    rt.block_on(async {
        online_then_poses(&sub, &mut lines, &pose_tx, 0..5, 5).await;
        relay.cut();
        second_connection(&counters).await;
        online_then_poses(&sub, &mut lines, &pose_tx, 5..10, 10).await;
        shutdown.cancel();
        task.await.unwrap().unwrap();
    });
    let seqs: Vec<u64> = lines.iter().filter_map(|v| v["pose"]["seq"].as_u64()).collect();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>());
    let sent = relay.sent();
    assert!(
        matches!(sent[0], Sent::Connect { level: 5, clean: true, session_expiry: None }),
        "{sent:?}"
    );
    let pose_topic = format!("smplcast/{device}/pose");
    let poses: Vec<(String, Option<u16>)> = sent
        .iter()
        .filter_map(|s| match s {
            Sent::Publish { topic, alias } if topic.is_empty() || *topic == pose_topic => {
                Some((topic.clone(), *alias))
            }
            _ => None,
        })
        .collect();
    let announce = (pose_topic, Some(1));
    let alone = (String::new(), Some(1));
    let mut want = vec![announce.clone()];
    want.extend(std::iter::repeat_n(alone.clone(), 4));
    want.push(announce);
    want.extend(std::iter::repeat_n(alone, 4));
    assert_eq!(poses, want);
}

/// Three poses from a publisher of `settings` (changed by `change`) through a [`Relay`] in front
/// of mosquitto to the Python subscriber; what the relay saw the publisher send.
fn three_poses_through_a_relay(device: &str, change: impl FnOnce(&mut Settings)) -> Vec<Sent> {
    let broker = Broker::start();
    let relay = Relay::start(broker.port);
    let sub = Subscriber::start(broker.port, device, 30);
    sub.until(Duration::from_secs(15), |v| v["ready"] == true);
    let mut s = settings(relay.port, device);
    change(&mut s);
    let Publisher { rt, pose_tx, shutdown, task, .. } = Publisher::start_with(s);
    let mut lines = Vec::new();
    rt.block_on(async {
        online_then_poses(&sub, &mut lines, &pose_tx, 0..3, 3).await;
        shutdown.cancel();
        task.await.unwrap().unwrap();
    });
    relay.sent()
}

/// The PUBLISH packets of `sent` on the pose topic of `device` with the topic in full, no alias.
fn full_topic_poses(sent: &[Sent], device: &str) -> usize {
    let pose_topic = format!("smplcast/{device}/pose");
    let full =
        |s: &&Sent| matches!(s, Sent::Publish { topic, alias: None } if *topic == pose_topic);
    sent.iter().filter(full).count()
}

/// `mqtt.protocol = "3.1.1"`: a 3.1.1 CONNECT, full topics, and the poses arrive.
#[test]
fn protocol_3_1_1_is_a_setting() {
    let device = "v311";
    let sent = three_poses_through_a_relay(device, |s| s.broker.protocol = mqtt::Protocol::V311);
    assert!(matches!(sent[0], Sent::Connect { level: 4, clean: true, .. }), "{sent:?}");
    assert_eq!(full_topic_poses(&sent, device), 3, "{sent:?}");
}

/// `mqtt.session_expiry_s`: a kept session (no clean start, the expiry sent), and full topics,
/// since a kept session resends what it queued on a connection where an alias means nothing.
#[test]
fn a_session_expiry_keeps_the_session_and_the_full_topic() {
    let device = "session";
    let sent = three_poses_through_a_relay(device, |s| s.broker.session_expiry = Some(600));
    let connect = Sent::Connect { level: 5, clean: false, session_expiry: Some(600) };
    assert_eq!(sent[0], connect, "{sent:?}");
    assert_eq!(full_topic_poses(&sent, device), 3, "{sent:?}");
}

/// A broker that speaks 3.1.1 only (rumqttd's 3.1.1 listener) closes the connection after an
/// MQTT 5 CONNECT: the publisher falls back to 3.1.1, says so, and stays there after a cut.
#[test]
fn a_broker_that_refuses_mqtt5_gets_3_1_1() {
    let device = "fallback";
    let port = rumqttd_v311();
    let relay = Relay::start(port);
    let sub = Subscriber::start(port, device, 30);
    sub.until(Duration::from_secs(15), |v| v["ready"] == true);
    let Publisher { rt, pose_tx, counters, shutdown, task } = Publisher::start(relay.port, device);
    let mut lines = Vec::new();
    rt.block_on(async {
        online_then_poses(&sub, &mut lines, &pose_tx, 0..3, 3).await;
        relay.cut();
        second_connection(&counters).await;
        shutdown.cancel();
        task.await.unwrap().unwrap();
    });
    let levels: Vec<u8> = relay
        .sent()
        .iter()
        .filter_map(|s| match s {
            Sent::Connect { level, .. } => Some(*level),
            _ => None,
        })
        .collect();
    assert_eq!(levels, [5, 4, 4]);
    let poses = lines.iter().filter(|v| v.get("pose").is_some()).count();
    eprintln!(
        "figure: broker refusing MQTT 5 (rumqttd's 3.1.1 listener): CONNECT levels {levels:?} \
         (5, the fallback, 4 again after a cut connection), {poses} of 3 poses delivered"
    );
}

/// `smplcast sub` processes that are killed when the test ends, passed or not.
struct Members(Vec<CliSub>);

impl Drop for Members {
    fn drop(&mut self) {
        for m in &mut self.0 {
            let _ = m.child.kill();
            let _ = m.child.wait();
        }
    }
}

/// `smplcast sub --share GROUP`: three members split a QoS 1 stream, none lost or twice; poses
/// published before the group had members are kept for nobody; when one member goes, the two
/// others get everything.
#[test]
fn a_consumer_group_splits_the_stream() {
    let device = "group";
    let broker = Broker::start();
    let mut s = settings(broker.port, device);
    s.pose_qos = QoS::AtLeastOnce;
    let Publisher { rt, pose_tx, shutdown, task, .. } = Publisher::start_with(s);
    // The publisher runs on a thread of its own while the test blocks.
    let publisher = std::thread::spawn(move || rt.block_on(task));
    let send = |seqs: std::ops::Range<u64>| {
        for seq in seqs {
            pose_tx.send(Outgoing::now(wire::encode(&message(seq)))).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    // Published with no member: a shared subscription keeps nothing for a group that is not
    // there yet.
    let watcher = Subscriber::start(broker.port, device, 30);
    let online = |v: &Value| is_status(v, "online");
    watcher.until(Duration::from_secs(15), online);
    send(0..20);
    // They have reached the broker once a plain subscriber has them all.
    let seen = std::cell::Cell::new(0);
    watcher.until(Duration::from_secs(15), |v| {
        seen.set(seen.get() + usize::from(v.get("pose").is_some()));
        seen.get() == 20
    });
    let mut members =
        Members((0..3).map(|_| CliSub::start(broker.port, device, &["--share", "g"])).collect());
    let members = &mut members.0;
    for m in members.iter() {
        m.subscribed("online");
    }
    let collect = |members: &[CliSub], want: usize| {
        let mut got: Vec<Vec<u64>> = vec![Vec::new(); members.len()];
        let deadline = Instant::now() + Duration::from_secs(20);
        while got.iter().map(Vec::len).sum::<usize>() < want && Instant::now() < deadline {
            for (m, seqs) in members.iter().zip(&mut got) {
                while let Ok(v) = m.lines.try_recv() {
                    seqs.extend(v["pose"]["seq"].as_u64());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        got
    };
    send(20..320);
    let first = collect(members, 300);
    let got = first.clone();
    let mut all: Vec<u64> = got.concat();
    all.sort_unstable();
    assert_eq!(all, (20..320).collect::<Vec<_>>(), "split: {got:?}");
    for seqs in &got {
        assert!(seqs.len() >= 30, "a member got {} of 300", seqs.len());
    }
    // One member goes: the other two take over.
    let mut gone = members.pop().unwrap();
    gone.child.kill().unwrap();
    gone.child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    send(320..620);
    let got = collect(members, 300);
    let mut all: Vec<u64> = got.concat();
    all.sort_unstable();
    assert_eq!(all, (320..620).collect::<Vec<_>>(), "after one left: {got:?}");
    let split: Vec<usize> = first.iter().map(Vec::len).collect();
    let after: Vec<usize> = got.iter().map(Vec::len).collect();
    eprintln!(
        "figure: consumer group: 20 poses published before any member went to none; 3 members \
         split 300 QoS 1 poses {split:?}, none lost or twice; one killed, the other two got all \
         300 {after:?}"
    );
    shutdown.cancel();
    publisher.join().unwrap().unwrap().unwrap();
}
