//! The daemon (`smplcast run --config FILE`) end to end: real mosquitto on loopback, the
//! third-party Python subscriber (paho-mqtt + the spec-only decoder), the real binary started
//! and stopped with real signals. scripts/test.sh installs mosquitto and the Python venv.

mod common;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{config, gpu_here, hex, narrow, rss_kb, scratch, send, Daemon};
use common::mqtt::{assert_retained_offline, is_status, root, Broker, Subscriber};
use rustix::process::Signal;
use serde_json::Value;
use smplcast::wire;

/// `smplcast sub ARGS` (at most 30 s): whether it succeeded, the pose lines it printed, and
/// its stderr.
fn sub_cli(args: &[&str]) -> (bool, usize, String) {
    let out = Command::new("timeout")
        .arg("30")
        .arg(env!("CARGO_BIN_EXE_smplcast"))
        .arg("sub")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    (out.status.success(), poses(&lines).len(), String::from_utf8_lossy(&out.stderr).into())
}

fn poses(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|v| v.get("pose").is_some()).collect()
}

/// The Python subscriber's decoding of every pose equals the Rust decoder's on the same bytes.
fn check_against_rust(pose_lines: &[&Value]) {
    for line in pose_lines {
        let bytes = hex(line["hex"].as_str().unwrap());
        let rust = wire::decode(&bytes).unwrap();
        assert_eq!(line["pose"], serde_json::to_value(&rust).unwrap(), "seq {}", rust.seq);
        assert_eq!(wire::encode(&rust), bytes, "encoding is canonical");
    }
}

fn seqs(pose_lines: &[&Value]) -> Vec<u64> {
    pose_lines.iter().map(|l| l["pose"]["seq"].as_u64().unwrap()).collect()
}

#[test]
fn synthetic_stream_reaches_a_third_party_subscriber_and_sigterm_says_offline() {
    let device = "daemon-clean";
    let broker = Broker::start();
    let sub = Subscriber::start(broker.port, device, 60);
    sub.until(Duration::from_secs(15), |v| v["ready"] == true);
    let source = "kind = \"synthetic\"\nwidth = 320\nheight = 240\nfps = 40";
    let mut daemon = Daemon::start(device, &config(device, broker.port, source, "", 0.5));

    let mut lines = sub.until(Duration::from_secs(30), |v| v["pose"]["seq"].as_u64() == Some(40));
    daemon.signal(Signal::TERM);
    let (status, stderr) = daemon.wait(Duration::from_secs(15));
    assert!(status.success(), "exit {status}:\n{stderr}");
    assert!(stderr.contains("Stopping. signal=\"SIGTERM\"") && stderr.contains("Stopped."));
    lines.extend(sub.until(Duration::from_secs(10), |v| is_status(v, "offline")));
    lines.extend(sub.rest(Duration::from_secs(5)));

    let got = poses(&lines);
    let seq = seqs(&got);
    assert_eq!(seq, (0..seq.len() as u64).collect::<Vec<_>>(), "seq continuous from 0");
    check_against_rust(&got);
    let frames: Vec<u64> = got.iter().map(|l| l["pose"]["frame"].as_u64().unwrap()).collect();
    assert!(frames.windows(2).all(|w| w[0] < w[1]), "frames in order: {frames:?}");
    for l in &got {
        let p = &l["pose"];
        assert_eq!(
            (p["dev"].as_str(), p["model"].as_str()),
            (Some(device), Some("mpsnet-random-0-w8"))
        );
        assert_eq!(p["img"], serde_json::json!([320, 240]));
        let person = &p["people"][0];
        assert_eq!(
            (person["id"].as_u64(), person["box"].clone()),
            (Some(0), serde_json::json!([0, 0, 320, 240]))
        );
        let len = |k: &str| person[k].as_array().unwrap().len();
        assert_eq!((len("pose"), len("shape"), len("cam"), len("cam_img")), (72, 10, 3, 4));
    }
    // The stop flushed the window: the last 7 results come without lookahead, after centred ones.
    let lookahead: Vec<u64> =
        got.iter().map(|l| l["pose"]["win"]["lookahead"].as_u64().unwrap()).collect();
    assert_eq!(
        lookahead[lookahead.len() - 8..],
        [7, 0, 0, 0, 0, 0, 0, 0],
        "{lookahead:?}\n{stderr}\n{lines:?}"
    );
    let stats: Vec<&Value> = lines.iter().filter_map(|v| v.get("stats")).collect();
    assert!(!stats.is_empty(), "stats every 0.5 s");
    let s = stats.last().unwrap();
    assert!(s["fps_in"].as_f64().unwrap() > 0.0 && s["uptime_s"].as_f64().unwrap() > 0.0, "{s}");
    for key in ["frames", "features", "poses"] {
        assert!(s["queues"][key]["len"].is_u64(), "queue {key} in {s}");
    }
    let statuses: Vec<&str> = lines.iter().filter_map(|v| v["status"].as_str()).collect();
    assert_eq!((statuses.first(), statuses.last()), (Some(&"online"), Some(&"offline")));
}

/// `[model] half_floats` with the int8 backbone: the temporal head loads in f16 and the poses
/// still reach the subscriber, decodable; where f16 is emulated the start-up says so.
#[test]
fn half_floats_run_the_head_in_f16() {
    // The same 12 synthetic frames (unpaced: none dropped) through the int8 backbone, with
    // the head in f16 and in f32: the messages differ (so f16 really ran), by little.
    let run = |device: &str, half: bool| -> (Vec<wire::PoseMsg>, String) {
        let broker = Broker::start();
        let sub = Subscriber::start(broker.port, device, 60);
        sub.until(Duration::from_secs(15), |v| v["ready"] == true);
        let source = "kind = \"synthetic\"\nwidth = 160\nheight = 120\nfps = 0\nframes = 12";
        let model = format!("int8 = true\nhalf_floats = {half}");
        let mut daemon = Daemon::start(device, &config(device, broker.port, source, &model, 0.0));
        let lines = sub.until(Duration::from_secs(60), |v| v["pose"]["seq"].as_u64() == Some(11));
        let (status, stderr) = daemon.wait(Duration::from_secs(15));
        assert!(status.success(), "exit {status}:\n{stderr}");
        let got = poses(&lines);
        assert_eq!(seqs(&got), (0..=11).collect::<Vec<_>>());
        check_against_rust(&got);
        let msgs = got.iter().map(|l| wire::decode(&hex(l["hex"].as_str().unwrap())).unwrap());
        (msgs.collect(), stderr)
    };
    let (f16, stderr) = run("daemon-f16", true);
    assert!(stderr.contains("backbone=int8 head=f16"), "{stderr}");
    let emulated = stderr.contains("no native f16 arithmetic");
    assert_eq!(emulated, !smplcast::model::native_half_floats(), "{stderr}");
    let (f32, stderr) = run("daemon-f32", false);
    assert!(stderr.contains("backbone=int8 head=f32"), "{stderr}");
    let (mut differ, mut most) = (0, 0f32);
    for (a, b) in f16.iter().zip(&f32) {
        assert_eq!((a.frame, a.people.len()), (b.frame, b.people.len()));
        for (p, q) in a.people.iter().zip(&b.people) {
            for (x, y) in p.pose.iter().zip(&q.pose) {
                let d = (x - y).abs();
                differ += usize::from(d > 0.0);
                most = most.max(d);
            }
        }
    }
    assert!(differ > 0, "f16 and f32 heads gave identical poses: f16 did not run");
    assert!(most < 0.05, "f16 moved a pose angle by {most} rad");
    eprintln!("figure: f16 head vs f32: {differ} of {} θ values differ, by ≤ {most} rad", 12 * 72);
}

#[test]
fn killed_daemon_goes_offline_by_its_last_will() {
    let device = "daemon-killed";
    let broker = Broker::start();
    let sub = Subscriber::start(broker.port, device, 60);
    sub.until(Duration::from_secs(15), |v| v["ready"] == true);
    let source = "fps = 30";
    let mut daemon = Daemon::start(device, &config(device, broker.port, source, "", 0.0));
    sub.until(Duration::from_secs(30), |v| v.get("pose").is_some());
    daemon.child.kill().unwrap(); // SIGKILL: no flush, no DISCONNECT
    let (status, _) = daemon.wait(Duration::from_secs(5));
    assert!(!status.success());
    sub.until(Duration::from_secs(10), |v| is_status(v, "offline"));
    // Retained: a later subscriber reads `offline` at once.
    assert_retained_offline(broker.port, device);
}

/// Runs the file source over tests/data/frames to its end on `workers` inference workers and
/// returns the pose lines.
fn replay(broker: &Broker, device: &str, workers: usize, model: &str) -> (Vec<Value>, String) {
    let sub = Subscriber::start(broker.port, device, 60);
    sub.until(Duration::from_secs(15), |v| v["ready"] == true);
    let frames = root().join("tests/data/frames");
    let source = format!("kind = \"files\"\npath = {:?}\nfps = 0", frames.display().to_string());
    let cfg = config(device, broker.port, &source, model, 0.0)
        + &format!("[pipeline]\nworkers = {workers}\n");
    let mut daemon = Daemon::start(device, &cfg);
    let (status, stderr) = daemon.wait(Duration::from_secs(60));
    assert!(status.success(), "the replay ends by itself: {stderr}");
    // The retained `offline` of an earlier run may come first: wait for this run's.
    let online = std::cell::Cell::new(false);
    let mut lines = sub.until(Duration::from_secs(10), |v| {
        online.set(online.get() || is_status(v, "online"));
        online.get() && is_status(v, "offline")
    });
    lines.extend(sub.rest(Duration::from_secs(5)));
    (lines.into_iter().filter(|v| v.get("pose").is_some()).collect(), stderr)
}

#[test]
fn replaying_files_gives_identical_payloads_apart_from_timestamps() {
    let device = "daemon-replay";
    let broker = Broker::start();
    // The second run on 3 workers: parallel inference changes nothing a subscriber gets. It
    // asks for `model.device = "auto"`, which runs on the CPU where CUDA is not usable.
    let (first, stderr) = replay(&broker, device, 1, "");
    let (second, auto) = replay(&broker, device, 3, "device = \"auto\"");
    assert!(stderr.contains("frame_010.jpg"), "the corrupt frame is named: {stderr}");
    if !gpu_here() {
        assert!(
            auto.contains("model.device = auto: running on the CPU. CUDA is not usable: "),
            "{auto}"
        );
        assert!(auto.contains("backbone_on=cpu"), "{auto}");
    }

    let first_refs: Vec<&Value> = first.iter().collect();
    check_against_rust(&first_refs);
    let frames: Vec<u64> = first.iter().map(|l| l["pose"]["frame"].as_u64().unwrap()).collect();
    let want: Vec<u64> = (0..20).filter(|&i| i != 10).collect();
    assert_eq!(frames, want, "every readable image, once, in order; the corrupt one skipped");
    let without_times = |lines: &[Value]| -> Vec<Vec<u8>> {
        lines
            .iter()
            .map(|l| {
                let mut m = wire::decode(&hex(l["hex"].as_str().unwrap())).unwrap();
                (m.utc_us, m.mono_ns) = (0, 0);
                wire::encode(&m)
            })
            .collect()
    };
    let (a, b) = (without_times(&first), without_times(&second));
    assert_eq!(a.len(), b.len());
    let differing: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    assert!(differing.is_empty(), "messages {differing:?} differ beyond their timestamps");
    assert_ne!(first[0]["hex"], second[0]["hex"], "the timestamps do differ");
    assert_eq!(first[0]["pose"]["img"], serde_json::json!([192, 144]));
}

#[test]
fn save_crops_keeps_one_crop_per_person_per_second_as_png() {
    // 20 frames at 10 fps (one unreadable), the whole frame as one person: 2 s, so 2 crops.
    let broker = Broker::start();
    let dir = scratch("save-crops");
    let crops = dir.join("crops");
    let frames = root().join("tests/data/frames");
    let source = format!("kind = \"files\"\npath = {:?}\nfps = 10", frames.display().to_string());
    let cfg = config("daemon-crops", broker.port, &source, "", 0.0);
    let args = [
        OsStr::new("--save-crops"),
        crops.as_os_str(),
        OsStr::new("--save-crops-max"),
        OsStr::new("5"),
    ];
    let mut daemon = Daemon::start_in(&dir, &cfg, &[], &args);
    let (status, stderr) = daemon.wait(Duration::from_secs(30));
    assert!(status.success(), "{stderr}");
    let mut names: Vec<String> = std::fs::read_dir(&crops)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}\n{stderr}");
    assert_eq!(names[0], "t00000-f000000000.png", "{names:?}");
    assert!(names[1].starts_with("t00000-f0000000"), "{names:?}");
    for name in &names {
        let png = std::fs::read(crops.join(name)).unwrap();
        let mut decoder = zune_png::PngDecoder::new(std::io::Cursor::new(png));
        let pixels = decoder.decode_raw().unwrap();
        assert_eq!(
            (decoder.dimensions(), pixels.len()),
            (Some((224, 224)), 224 * 224 * 3),
            "{name}"
        );
    }
    // A second run into the same directory is refused: samples of two runs do not mix.
    let mut again = Daemon::start_in(&dir, &cfg, &[], &args);
    let error = again.start_up_error("a used crop directory", Duration::from_secs(30));
    assert!(error.contains("already holds 2 .png files"), "{error}");
}

#[test]
fn start_up_errors_name_the_input_and_exit_non_zero() {
    let free_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let model = format!("[model]\ndir = {:?}\n", narrow().display().to_string());
    let scratch = scratch("bad-inputs");
    let corrupt = scratch.join("corrupt-model");
    std::fs::create_dir_all(&corrupt).unwrap();
    for f in ["temporal_frame.onnx", "temporal_step.onnx", "model.json"] {
        std::fs::copy(narrow().join(f), corrupt.join(f)).unwrap();
    }
    std::fs::write(corrupt.join("backbone.onnx"), b"not an onnx file").unwrap();
    let wrong = scratch.join("wrong-model");
    std::fs::create_dir_all(&wrong).unwrap();
    for f in ["temporal_frame.onnx", "temporal_step.onnx"] {
        std::fs::copy(narrow().join(f), wrong.join(f)).unwrap();
    }
    std::fs::copy(narrow().join("temporal.onnx"), wrong.join("backbone.onnx")).unwrap();
    let empty = scratch.join("no-frames");
    std::fs::create_dir_all(&empty).unwrap();
    let dir = |p: &Path| format!("[model]\ndir = {:?}\n", p.display().to_string());
    let unreachable = format!("[mqtt]\nport = {free_port}\nconnect_timeout_s = 0.5\n");

    let camera = |device: &str| format!("[source]\nkind = \"v4l2\"\ndevice = {device:?}\n{model}");
    let cameras: Vec<(String, Vec<String>)> =
        if cfg!(feature = "v4l2") {
            vec![
            (
                camera("/dev/null"),
                vec!["camera /dev/null: not a V4L2 device (Inappropriate ioctl".into()],
            ),
            (
                camera("/dev/video-none"),
                vec!["camera /dev/video-none: no such device; list cameras with `smplcast devices`"
                    .into()],
            ),
        ]
        } else {
            vec![(camera("/dev/video0"), vec!["built without V4L2 support".into()])]
        };
    let cases: Vec<(String, Vec<String>)> = cameras
        .into_iter()
        .chain([
            (
                format!("[source]\nfsp = 3\n{model}"),
                vec!["source.fsp: unknown field `fsp`".into(), "did you mean `fps`?".into()],
            ),
            (
                format!("[mqtt]\nport = \"x\"\n{model}"),
                vec!["mqtt.port: invalid type: string \"x\"".into()],
            ),
            (
                format!("[source]\nfps = 5000.0\n{model}"),
                vec!["source.fps = 5000.0: expected 0 (unpaced) or 1 to 1000".into()],
            ),
            (
                format!("{model}device = \"gpu\"\n"),
                vec!["model.device = \"gpu\": expected \"cpu\", \"cuda\" or \"auto\"".into()],
            ),
            (
                "[model]\ndir = \"/nonexistent/models\"\n".into(),
                vec!["model.dir = \"/nonexistent/models\": not a directory".into()],
            ),
            (
                format!("[mqtt]\ntls = true\nca_file = \"no-ca.pem\"\n{model}"),
                vec!["mqtt.ca_file: cannot read PEM certificates from".into()],
            ),
            (dir(&corrupt), vec!["backbone.onnx: not a usable backbone graph".into()]),
            (dir(&wrong), vec!["backbone.onnx: wrong backbone graph".into()]),
            (
                format!("{unreachable}{model}"),
                vec![
                    format!("cannot connect to the MQTT broker at 127.0.0.1:{free_port}"),
                    "start the broker or fix [mqtt] host and port".into(),
                ],
            ),
            (
                format!(
                    "[source]\nkind = \"files\"\npath = {:?}\n{model}",
                    empty.display().to_string()
                ),
                vec!["no .png, .jpg or .jpeg images".into()],
            ),
        ])
        .collect();
    // `cuda` where it cannot run: one error naming what is missing and where it comes from.
    let cuda = if !cfg!(any(feature = "cuda", feature = "cuda12")) {
        vec!["model.device = \"cuda\": this smplcast was built without CUDA support".into()]
    } else {
        let package = if cfg!(feature = "cuda") { "cuda-cudart-13-0" } else { "cuda-cudart-12-6" };
        vec![
            "model.device = \"cuda\": the dynamic loader cannot open libcuda.so.1 (the NVIDIA \
             driver"
                .into(),
            format!("({package})"),
            "libcudnn.so.9".into(),
            "Or set model.device = \"cpu\" or \"auto\"".into(),
        ]
    };
    let cases: Vec<(String, Vec<String>)> = if gpu_here() {
        cases
    } else {
        cases.into_iter().chain([(format!("{model}device = \"cuda\"\n"), cuda)]).collect()
    };
    let n = cases.len();
    for (text, wanted) in cases {
        let mut daemon = Daemon::start("bad", &text);
        let (status, stderr) = daemon.wait(Duration::from_secs(30));
        assert!(!status.success(), "config:\n{text}\nshould fail; stderr:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let error: Vec<&str> =
            stderr.lines().filter(|l| l.starts_with("smplcast: error:")).collect();
        assert_eq!(error.len(), 1, "one error line:\n{stderr}");
        for want in wanted {
            assert!(stderr.contains(&want), "config:\n{text}\nstderr:\n{stderr}\nwanted: {want}");
        }
    }
    eprintln!("figure: {n} bad start-up inputs: one error line each, exit non-zero, no panic");
    let out = Command::new(env!("CARGO_BIN_EXE_smplcast"))
        .args(["run", "--config", "/nonexistent/smplcast.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("/nonexistent/smplcast.toml: cannot read the config file"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(scratch);
}

#[test]
fn check_config_accepts_the_example_and_lists_every_problem() {
    let run = |file: &Path| {
        Command::new(env!("CARGO_BIN_EXE_smplcast")).arg("check-config").arg(file).output().unwrap()
    };
    let ok = run(&root().join("config.example.toml"));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("config.example.toml: OK"));

    let dir = scratch("check-config");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "device_id = \"a/b\"\n[source]\nfps = -3.0\n[mqtt]\npose_qos = 5\n")
        .unwrap();
    let out = run(&bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for key in
        ["device_id = \"a/b\"", "source.fps = -3.0", "mqtt.pose_qos = 5", "model.dir: missing"]
    {
        assert!(stderr.contains(key), "{key} in:\n{stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn demo_stops_cleanly_on_ctrl_c() {
    let mut demo = Command::new(env!("CARGO_BIN_EXE_smplcast"))
        .args(["demo", "--models"])
        .arg(narrow())
        .args(["--frames", "0", "--fps", "30"])
        .env("RUST_LOG", "warn,rumqttd=off")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(demo.stdout.take().unwrap()).lines();
    // Wait for a live line that shows the subscriber receiving.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = stdout.next().expect("demo output").unwrap();
        if line.contains("frames in") && line.contains("last seq") {
            break;
        }
        assert!(Instant::now() < deadline, "no live line");
    }
    send(&demo, Signal::INT);
    let rest: Vec<String> = stdout.map_while(Result::ok).collect();
    let status = demo.wait().unwrap();
    assert!(status.success(), "{status}: {rest:?}");
    let last = rest.last().unwrap();
    assert!(last.ends_with("results out (stopped)"), "{last}");
}

#[test]
fn two_people_get_two_stable_tracks_each_with_its_own_window() {
    two_people(1);
}

#[test]
fn detector_every_other_frame_with_the_tracker_predicting_between() {
    two_people(2);
}

/// The two-person sequence through the detector (every `every` frames) and the tracker.
fn two_people(every: u64) {
    let device = format!("daemon-two-{every}");
    let device = device.as_str();
    let broker = Broker::start();
    let sub = Subscriber::start(broker.port, device, 120);
    sub.until(Duration::from_secs(15), |v| v["ready"] == true);
    let frames = root().join("tests/data/two_people");
    let detector = root().join("models/detector/pose_detection.onnx");
    let source = format!("kind = \"files\"\npath = {:?}\nfps = 0", frames.display().to_string());
    let cfg = config(device, broker.port, &source, "", 0.0)
        + &format!(
            "[person]\ndetector = {:?}\nmin_hits = 2\ndetect_every = {every}\n",
            detector.display().to_string()
        );
    let mut daemon = Daemon::start(device, &cfg);
    let (status, stderr) = daemon.wait(Duration::from_secs(120));
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("Person detector loaded."), "{stderr}");
    let mut lines = sub.until(Duration::from_secs(10), |v| is_status(v, "offline"));
    lines.extend(sub.rest(Duration::from_secs(5)));
    let got = poses(&lines);
    check_against_rust(&got);
    let msgs: Vec<&Value> = got.iter().map(|l| &l["pose"]).collect();
    let frame_ids: Vec<u64> = msgs.iter().map(|m| m["frame"].as_u64().unwrap()).collect();
    assert_eq!(frame_ids, (0..24).collect::<Vec<_>>(), "one message per frame, in order");
    // Confirmed after two detector runs (min_hits 2): from then on two people, the same two
    // ids, the left one always the same id (no switches).
    let first = every as usize;
    assert!(msgs[..first].iter().all(|m| m["people"].as_array().unwrap().is_empty()));
    let mut left_id = None;
    let mut ids_seen = std::collections::BTreeSet::new();
    for m in &msgs[first..] {
        let people = m["people"].as_array().unwrap();
        assert_eq!(people.len(), 2, "frame {}: {people:?}", m["frame"]);
        let mut by_x: Vec<(u64, u64)> = people
            .iter()
            .map(|p| (p["box"][0].as_u64().unwrap(), p["id"].as_u64().unwrap()))
            .collect();
        by_x.sort();
        assert_eq!(
            *left_id.get_or_insert(by_x[0].1),
            by_x[0].1,
            "id switch at frame {}",
            m["frame"]
        );
        ids_seen.extend(by_x.iter().map(|&(_, id)| id));
        // Each person has its own window: different crops give different poses.
        assert_ne!(people[0]["pose"], people[1]["pose"]);
    }
    assert_eq!(ids_seen.len(), 2, "{ids_seen:?}");
}

/// What a `Type=notify` unit's systemd sees, without systemd: the test owns the notification
/// socket and sets `$WATCHDOG_USEC`. READY=1 after start-up, STATUS= lines with live figures,
/// WATCHDOG=1 while frames flow, STOPPING=1 on SIGTERM. (That no ping goes out while inference
/// is stuck is the notifier's logic, tested on a paused clock in src/telemetry/systemd.rs.)
#[test]
fn systemd_sees_ready_status_watchdog_pings_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let device = "daemon-notify";
    let broker = Broker::start();
    let dir = scratch(&format!("{device}-socket")); // not the daemon's own scratch dir
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let source = "kind = \"synthetic\"\nwidth = 160\nheight = 120\nfps = 25";
    let cfg = config(device, broker.port, source, "", 0.0);
    // A 400 ms watchdog: the daemon checks (and maybe pings) every 200 ms.
    let env = [("NOTIFY_SOCKET", socket_path.as_os_str()), ("WATCHDOG_USEC", OsStr::new("400000"))];
    let mut daemon = Daemon::start_with_env(device, &cfg, &env);
    let mut messages: Vec<(Duration, String)> = Vec::new();
    let mut ready_at = None;
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready_at.is_none_or(|t: Instant| t.elapsed() < Duration::from_millis(1500)) {
        assert!(Instant::now() < deadline, "{messages:?}\n{}", daemon.stderr());
        let Ok(n) = socket.recv(&mut buf) else { continue };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.contains("READY=1") {
            ready_at = Some(Instant::now());
        }
        messages.push((ready_at.map_or(Duration::ZERO, |t| t.elapsed()), text));
    }
    daemon.signal(Signal::TERM);
    let (status, stderr) = daemon.wait(Duration::from_secs(15));
    assert!(status.success(), "{stderr}");
    while let Ok(n) = socket.recv(&mut buf) {
        messages.push((Duration::MAX, String::from_utf8_lossy(&buf[..n]).into_owned()));
    }

    assert!(messages[0].1.starts_with("READY=1\n"), "{messages:?}");
    let pings = messages.iter().filter(|(_, m)| m.contains("WATCHDOG=1")).count();
    let statuses: Vec<&str> = messages
        .iter()
        .filter_map(|(_, m)| m.lines().find_map(|l| l.strip_prefix("STATUS=")))
        .collect();
    eprintln!(
        "figure: watchdog, the daemon under a 400 ms watchdog: {pings} pings in 1.5 s after READY"
    );
    // ~7 checks in 1.5 s, each after ~5 new frames.
    assert!(pings >= 4, "{messages:?}");
    assert!(statuses.iter().any(|s| s.contains("fps in")), "{statuses:?}");
    assert!(messages.last().is_some_and(|(_, m)| m.contains("STOPPING=1")), "{messages:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Seconds since the Unix epoch of an RFC 3339 UTC timestamp as tracing prints it
/// (`2026-11-25T21:20:42.856788Z`).
fn unix_seconds(stamp: &str) -> f64 {
    let t = humantime::parse_rfc3339(stamp).unwrap();
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

fn now_unix() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn unix_seconds_reads_tracing_timestamps() {
    assert_eq!(unix_seconds("1970-01-01T00:00:01.5Z"), 1.5);
    assert_eq!(unix_seconds("2000-03-01T00:00:00.000000Z"), 951_868_800.0);
    assert_eq!(unix_seconds("2026-11-25T21:20:42.250000Z"), 1_795_641_642.25);
}

/// The broker is killed for 30 s while the daemon streams, then restarted on the same port:
/// the daemon reconnects within 2 s of the broker's restart and says `online` again (retained),
/// its memory and queues stay bounded during the outage, and the poses made during the outage
/// are dropped as stale and counted instead of flooding subscribers on reconnection.
#[test]
fn broker_outage_reconnects_fast_drops_stale_poses_and_stays_bounded() {
    const OUTAGE_S: u64 = 10;
    let device = "daemon-outage";
    let broker = Broker::start();
    let port = broker.port;
    let sub = Subscriber::start(port, device, 60);
    sub.until(Duration::from_secs(15), |v| v["ready"] == true);
    // A queue that could hold the whole outage (25 fps × 10 s = 250): only the age limit
    // keeps the old poses from going out on reconnection.
    let cfg = format!(
        "device_id = \"{device}\"\n[source]\nkind = \"synthetic\"\nwidth = 160\nheight = 120\n\
         fps = 25\n[model]\ndir = {:?}\n[mqtt]\nport = {port}\nconnect_timeout_s = 5\n\
         queue = 1000\nmax_age_s = 1\n[stats]\ninterval_s = 0.5\n",
        narrow().display().to_string()
    );
    let mut daemon = Daemon::start(device, &cfg);
    sub.until(Duration::from_secs(30), |v| v["pose"]["seq"].as_u64().is_some_and(|s| s >= 25));
    drop(sub);

    broker.kill();
    let pid = daemon.child.id();
    let mut rss = Vec::new();
    for _ in 0..OUTAGE_S {
        std::thread::sleep(Duration::from_secs(1));
        rss.push(rss_kb(pid));
    }
    let restarted = now_unix();
    let broker = Broker::start_on(port);
    let sub = Subscriber::start(port, device, 60);
    let lines = sub.until(Duration::from_secs(30), |v| {
        v["stats"]["mqtt_connections"].as_u64() == Some(2)
            && v["stats"]["messages_out"].as_u64().is_some()
            && v["stats"]["uptime_s"].as_f64().is_some()
    });
    let more = sub.until(Duration::from_secs(15), |v| v["stats"]["mqtt_connections"] == 2);
    daemon.signal(Signal::TERM);
    let (status, stderr) = daemon.wait(Duration::from_secs(15));
    assert!(status.success(), "{stderr}");
    drop(broker);

    // Reconnected within 2 s of the restart (the daemon's own log of the connection).
    let connects: Vec<f64> = stderr
        .lines()
        .filter(|l| l.contains("Connected to the MQTT broker."))
        .map(|l| unix_seconds(l.split_whitespace().next().unwrap()))
        .collect();
    assert_eq!(connects.len(), 2, "{stderr}");
    let reconnect_s = connects[1] - restarted;
    assert!(reconnect_s < 2.0, "reconnected {reconnect_s:.2} s after the restart:\n{stderr}");
    // `online` again, for the new subscriber (retained or live).
    assert!(lines.iter().chain(&more).any(|v| is_status(v, "online")), "{lines:?}");
    // No pose made during the outage reached the new subscriber: each was captured at most
    // max_age (1 s) + the window's lookahead and inference (< 1 s here) before the restart.
    let poses: Vec<&Value> =
        lines.iter().chain(&more).filter(|v| v.get("pose").is_some()).collect();
    assert!(!poses.is_empty(), "the stream came back");
    let oldest = poses
        .iter()
        .map(|p| p["pose"]["utc_us"].as_i64().unwrap() as f64 / 1e6)
        .fold(f64::INFINITY, f64::min);
    assert!(
        oldest > restarted - 3.0,
        "a pose captured {:.1} s before the restart",
        restarted - oldest
    );
    let stats = more.iter().rev().find_map(|v| v.get("stats")).unwrap();
    let stale = stats["messages_stale"].as_u64().unwrap();
    assert!(stale as f64 > 0.8 * 25.0 * (OUTAGE_S - 2) as f64, "stale {stale}: {stats}");
    assert!(stats["messages_dropped"].as_u64().unwrap() >= stale, "{stats}");
    assert!(stats["queues"]["poses"]["len"].as_u64().unwrap() < 100, "drained: {stats}");
    // Memory: after a 2 s warm-up the outage adds at most the queued poses (~0.3 MB).
    let warm = &rss[2..];
    let growth_kb = warm.iter().max().unwrap() - warm.iter().min().unwrap();
    eprintln!(
        "figure: broker outage {OUTAGE_S} s: reconnected {reconnect_s:.2} s after the restart, \
         {stale} stale poses dropped, RSS growth {growth_kb} kB during the outage"
    );
    assert!(growth_kb < 4096, "RSS grew {growth_kb} kB during the outage: {rss:?}");
}

/// A broker that requires a login (mosquitto with a password file): the password comes from
/// a file or a systemd credential, a wrong or missing login is a start-up error that says
/// what to fix, and the password never appears in the daemon's output.
#[test]
fn broker_login_from_a_file_or_credential_and_refusals_name_the_fix() {
    let dir = scratch("login-broker");
    let secret = "s3cret-Pa55-7f1d";
    let passwd = dir.join("passwd");
    let made = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["cam", secret])
        .status()
        .unwrap();
    assert!(made.success());
    let broker = Broker::start_with_config(
        &dir,
        &format!("allow_anonymous false\npassword_file {}", passwd.display()),
    );
    std::fs::write(dir.join("good"), format!("{secret}\n")).unwrap();
    std::fs::write(dir.join("bad"), "wrong-password\n").unwrap();
    let credentials = dir.join("credentials");
    std::fs::create_dir_all(&credentials).unwrap();
    std::fs::write(credentials.join("mqtt-password"), secret).unwrap();

    let cases: [(&str, &str, bool); 4] = [
        ("file", "username = \"cam\"\npassword_file = \"good\"", true),
        ("credential", "username = \"cam\"\npassword_credential = \"mqtt-password\"", true),
        ("wrong", "username = \"cam\"\npassword_file = \"bad\"", false),
        ("anonymous", "", false),
    ];
    for (name, login, works) in cases {
        let device = format!("daemon-login-{name}");
        let cfg = format!(
            "device_id = \"{device}\"\n[source]\nkind = \"synthetic\"\nwidth = 160\n\
             height = 120\nfps = 10\n[model]\ndir = {:?}\n[mqtt]\nport = {}\n\
             connect_timeout_s = 2\n{login}\n",
            narrow().display().to_string(),
            broker.port
        );
        // Relative password files are beside the config: the daemon's scratch dir.
        let own = scratch(&device);
        std::fs::copy(dir.join("good"), own.join("good")).unwrap();
        std::fs::copy(dir.join("bad"), own.join("bad")).unwrap();
        let mut daemon = Daemon::start_in(
            &own,
            &cfg,
            &[("CREDENTIALS_DIRECTORY", credentials.as_os_str())],
            &[],
        );
        let port = broker.port.to_string();
        let sub = |password: &str| {
            let file = own.join(password).display().to_string();
            let login = ["--username", "cam", "--password-file", &file];
            sub_cli(&[&["--port", &port, "--device", &device, "--count", "2"][..], &login].concat())
        };
        if works {
            daemon.wait_running(name);
            if name == "file" {
                // `smplcast sub` logs in with the daemon's keys, as flags.
                let (ok, poses, stderr) = sub("good");
                assert!(ok && poses == 2, "sub with a login: {poses} poses; {stderr}");
                let (ok, _, stderr) = sub("bad");
                assert!(!ok && stderr.contains("username and password_file"), "{stderr}");
                eprintln!(
                    "figure: smplcast sub logs in (a wrong password is refused, the fix named)"
                );
            }
            daemon.signal(Signal::TERM);
            let (status, stderr) = daemon.wait(Duration::from_secs(15));
            assert!(status.success(), "{name}: {stderr}");
            assert!(!stderr.contains(secret), "{name}: the password was logged:\n{stderr}");
        } else {
            let error = daemon.start_up_error(name, Duration::from_secs(20));
            assert!(
                error.contains("refused") && error.contains("[mqtt] username and password_file"),
                "{name}: {error}"
            );
            let stderr = daemon.stderr();
            assert!(!stderr.contains(secret) && !stderr.contains("wrong-password"), "{stderr}");
        }
        eprintln!(
            "figure: broker login {name}: {}, password not in the output",
            if works { "connected" } else { "refused at start-up, the error names the keys" }
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// TLS to mosquitto with a private CA made by tests/tls/make-certs.sh: poses published over
/// TLS reach a subscriber (on the broker's plain loopback listener), a client certificate is
/// presented where the broker requires one, and each wrong setting stops start-up with an
/// error that names the key to fix.
#[test]
fn broker_tls_with_a_private_ca_and_wrong_settings_name_the_fix() {
    let dir = scratch("tls-broker");
    let made = Command::new(root().join("tests/tls/make-certs.sh")).arg(&dir).status().unwrap();
    assert!(made.success(), "tests/tls/make-certs.sh needs openssl");
    let free = || TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (tls_port, mutual_port) = (free(), free());
    let listener = |port: u16, extra: &str| {
        format!(
            "listener {port} 127.0.0.1\ncafile {0}/ca.pem\ncertfile {0}/server.pem\n\
             keyfile {0}/server.key\n{extra}\n",
            dir.display()
        )
    };
    let broker = Broker::start_with_config(
        &dir,
        &format!(
            "allow_anonymous true\n{}{}",
            listener(tls_port, ""),
            listener(mutual_port, "require_certificate true")
        ),
    );
    let plain_port = broker.port;
    for port in [tls_port, mutual_port] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let ca = format!("ca_file = \"{}/ca.pem\"", dir.display());
    let client = format!(
        "client_cert_file = \"{0}/client.pem\"\nclient_key_file = \"{0}/client.key\"",
        dir.display()
    );
    let other_ca = format!("ca_file = \"{}/other-ca.pem\"", dir.display());
    // (case, [mqtt] lines, None: streams, or Some(what the error must say))
    let cases: [(&str, String, Option<&str>); 7] = [
        ("private CA", format!("tls = true\nport = {tls_port}\n{ca}"), None),
        ("client certificate", format!("tls = true\nport = {mutual_port}\n{ca}\n{client}"), None),
        (
            "wrong CA",
            format!("tls = true\nport = {tls_port}\n{other_ca}"),
            Some("set [mqtt] ca_file to the CA that signed it"),
        ),
        (
            "host not in the certificate",
            format!("tls = true\nhost = \"localhost\"\nport = {tls_port}\n{ca}"),
            Some("host to a name (or IP) the certificate holds"),
        ),
        (
            "TLS to a plain listener",
            format!("tls = true\nport = {plain_port}\n{ca}"),
            Some("port the broker's TLS listener"),
        ),
        (
            "plain TCP to a TLS listener",
            format!("port = {tls_port}"),
            Some("(and tls, if the broker requires it)"),
        ),
        (
            "no client certificate where required",
            format!("tls = true\nport = {mutual_port}\n{ca}"),
            Some("set [mqtt] client_cert_file and client_key_file"),
        ),
    ];
    for (name, mqtt, error) in cases {
        let device = format!("daemon-tls-{}", name.replace(' ', "-"));
        let cfg = format!(
            "device_id = \"{device}\"\n[source]\nkind = \"synthetic\"\nwidth = 160\n\
             height = 120\nfps = 10\n[model]\ndir = {:?}\n[mqtt]\nconnect_timeout_s = 2\n\
             {mqtt}\n",
            narrow().display().to_string(),
        );
        let mut daemon = Daemon::start(&device, &cfg);
        match error {
            None => {
                let sub = Subscriber::start(plain_port, &device, 30);
                daemon.wait_running(name);
                let seen = sub.until(Duration::from_secs(20), |v| v["pose"]["seq"] == 3);
                assert!(poses(&seen).len() >= 2, "{name}: {seen:?}");
                // `smplcast sub` over the same TLS settings, as flags.
                let d = dir.display().to_string();
                let (ca, cert, key) =
                    (format!("{d}/ca.pem"), format!("{d}/client.pem"), format!("{d}/client.key"));
                let mut args = vec!["--tls", "--ca-file", &ca, "--device", &device, "--count", "2"];
                let port = if name == "client certificate" {
                    args.extend(["--client-cert-file", &cert, "--client-key-file", &key]);
                    mutual_port.to_string()
                } else {
                    tls_port.to_string()
                };
                args.extend(["--port", &port]);
                let (ok, poses, stderr) = sub_cli(&args);
                assert!(ok && poses == 2, "{name}: sub over TLS: {poses} poses; {stderr}");
                if name == "private CA" {
                    let other = format!("{d}/other-ca.pem");
                    let wrong = ["--tls", "--ca-file", &other, "--port", &port, "--count", "1"];
                    let (ok, _, stderr) = sub_cli(&wrong);
                    assert!(!ok && stderr.contains("set [mqtt] ca_file"), "{stderr}");
                }
                eprintln!("figure: broker TLS, {name}: smplcast sub receives over TLS too");
                daemon.signal(Signal::TERM);
                let (status, stderr) = daemon.wait(Duration::from_secs(15));
                assert!(status.success(), "{name}: {stderr}");
                eprintln!("figure: broker TLS, {name}: connected, poses delivered");
            }
            Some(fix) => {
                let error = daemon.start_up_error(name, Duration::from_secs(20));
                assert!(error.contains(fix), "{name}: {error}");
                eprintln!(
                    "figure: broker TLS, {name}: stopped at start-up, the error says \"{fix}\""
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `mqtt.connect_timeout_s = 0` a broker that is not up at start is waited for: the
/// daemon keeps retrying and runs nothing else, tells systemd what it waits for (and extends
/// its start timeout), and is ready within 2 s of the broker coming up.
#[test]
fn unreachable_broker_at_start_is_waited_for_when_asked() {
    use std::os::unix::net::UnixDatagram;
    let device = "daemon-wait-broker";
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = scratch(&format!("{device}-socket"));
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let cfg = format!(
        "device_id = \"{device}\"\n[source]\nkind = \"synthetic\"\nwidth = 160\nheight = 120\n\
         fps = 25\n[model]\ndir = {:?}\n[mqtt]\nport = {port}\nconnect_timeout_s = 0\n",
        narrow().display().to_string()
    );
    let mut daemon =
        Daemon::start_with_env(device, &cfg, &[("NOTIFY_SOCKET", socket_path.as_os_str())]);
    let mut buf = [0u8; 4096];
    let mut messages = Vec::new();
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        if let Ok(n) = socket.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(daemon.child.try_wait().unwrap().is_none(), "gave up:\n{}", daemon.stderr());
    assert!(!messages.iter().any(|m| m.contains("READY=1")), "{messages:?}");
    assert!(
        messages.iter().any(|m| m.contains("STATUS=waiting for the MQTT broker at 127.0.0.1")
            && m.contains("EXTEND_TIMEOUT_USEC=")),
        "{messages:?}"
    );
    assert!(!daemon.stderr().contains("Running."), "nothing runs before the broker");

    let broker = Broker::start_on(port);
    let up = Instant::now();
    loop {
        assert!(up.elapsed() < Duration::from_secs(2), "not ready 2 s after the broker came up");
        if let Ok(n) = socket.recv(&mut buf) {
            if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
                break;
            }
        }
    }
    eprintln!(
        "figure: broker down at start: ready {:.2} s after it came up",
        up.elapsed().as_secs_f64()
    );
    daemon.signal(Signal::TERM);
    let (status, stderr) = daemon.wait(Duration::from_secs(15));
    assert!(status.success(), "{stderr}");
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `[homeassistant] enabled = true`, for a device id with a `.` (which HA refuses in its ids):
/// on connecting, the daemon publishes retained discovery configs that Home Assistant
/// 2024.3.3's own code accepts (tests/homeassistant/validate.py: HA's discovery topic pattern,
/// its MQTT sensor schema, its sensor unit and state-class tables, every template rendered on the
/// daemon's real stats and camera payloads), and publishes them again after reconnecting to a
/// broker that lost them.
#[test]
fn home_assistant_discovery_passes_home_assistant_s_schema() {
    let python = root().join("tests/homeassistant/.venv/bin/python");
    assert!(
        python.is_file(),
        "no Home Assistant venv: run `tests/homeassistant/run -c \"import homeassistant\"` once \
         (scripts/test.sh does)"
    );
    let device = "daemon-ha.cam.0";
    let broker = Broker::start();
    let port = broker.port;
    let source = "kind = \"synthetic\"\nwidth = 160\nheight = 120\nfps = 10";
    let cfg = config(device, port, source, "", 0.5) + "[homeassistant]\nenabled = true\n";
    let mut daemon = Daemon::start(device, &cfg);
    daemon.wait_running("[homeassistant] enabled");
    let validate = |when: &str, wait_for: &str| {
        let out = Command::new(&python)
            .arg(root().join("tests/homeassistant/validate.py"))
            .args(["--port", &port.to_string(), "--device", device, "--timeout", "20"])
            .args(["--wait-for", wait_for])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("7/7 discovery messages pass"),
            "{when}: validate.py:\n{stdout}{stderr}\ndaemon:\n{}",
            daemon.stderr()
        );
        stdout
    };
    let first = validate("first connection", "stats,camera");
    assert!(
        first.contains("homeassistant/sensor/smplcast_daemon-ha_cam_0/fps_in/config"),
        "{first}"
    );
    // A broker without persistence loses its retained messages: the daemon publishes them again,
    // the configs and the camera state.
    broker.kill();
    let broker = Broker::start_on(port);
    validate("after reconnecting", "stats,camera");
    eprintln!(
        "figure: Home Assistant discovery, device id {device:?}: node id smplcast_daemon-ha_cam_0, \
         7/7 configs pass Home Assistant 2024.3.3's schema, again after a broker restart"
    );
    daemon.signal(Signal::TERM);
    let (status, stderr) = daemon.wait(Duration::from_secs(15));
    assert!(status.success(), "{stderr}");
    drop(broker);
}
