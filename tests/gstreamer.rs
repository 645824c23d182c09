//! The GStreamer sources (feature `gstreamer`) against real GStreamer: video files this test
//! makes (videotestsrc → x264 → MP4 and Matroska), real footage (Debian's vtest.avi), and a real
//! RTSP server (gst-rtsp-server through Debian's Python GObject bindings) that is killed and
//! restarted under a running daemon. scripts/test.sh installs GStreamer and its plugin sets.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{config, hex, narrow, rss_kb, scratch, Daemon};
use common::mqtt::{is_status, root, Broker, Subscriber};
use gstreamer as gst;
use gstreamer::prelude::*;
use serde_json::Value;
use smplcast::pixels::PixelFormat;
use smplcast::source::gst::{Kind, Settings, Stream};
use smplcast::source::{Error, Frame, FrameSource};
use smplcast::wire;

/// A GStreamer pipeline from its description.
fn launch(description: &str) -> gst::Pipeline {
    gst::init().unwrap();
    gst::parse::launch(description).unwrap().downcast::<gst::Pipeline>().unwrap()
}

/// Plays `pipeline` to its end; panics with its error.
fn play(pipeline: &gst::Pipeline, description: &str) {
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("the pipeline ends within 60 s");
    pipeline.set_state(gst::State::Null).unwrap();
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("{description}: {}", e.error());
    }
}

/// Runs a GStreamer pipeline to its end; panics with its error.
fn gst_run(description: &str) {
    play(&launch(description), description);
}

/// `frames` frames of a moving test pattern, H.264 in `muxer`'s container.
fn make_video(dir: &Path, name: &str, muxer: &str, (w, h): (u32, u32), frames: u32) -> PathBuf {
    let path = dir.join(name);
    gst_run(&format!(
        "videotestsrc num-buffers={frames} pattern=ball \
         ! video/x-raw,format=I420,width={w},height={h},framerate=25/1 \
         ! x264enc key-int-max=10 ! h264parse ! {muxer} ! filesink location={}",
        path.display()
    ));
    path
}

/// The file's frames as GStreamer alone decodes them: I420, one after another.
fn reference_frames(path: &Path, (w, h): (u32, u32)) -> Vec<Vec<u8>> {
    let raw = path.with_extension("yuv");
    gst_run(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 \
         ! filesink location={}",
        path.display(),
        raw.display()
    ));
    let size = (w * h + 2 * (w / 2) * (h / 2)) as usize;
    std::fs::read(raw).unwrap().chunks(size).map(<[u8]>::to_vec).collect()
}

fn video(path: &Path, paced: bool, looping: bool) -> Stream {
    let kind = Kind::Video { path: path.to_path_buf(), paced, looping };
    Stream::open(Settings { kind, stall_timeout: Duration::from_secs(2) }).unwrap()
}

/// Every frame until the source ends.
fn drain(source: &mut Stream) -> Vec<Frame> {
    std::iter::from_fn(|| source.next_frame().unwrap()).collect()
}

#[test]
fn video_files_give_every_frame_once_in_order() {
    let dir = scratch("gst-files");
    for (muxer, name, size) in
        [("mp4mux", "clip.mp4", (320, 240)), ("matroskamux", "clip.mkv", (176, 144))]
    {
        let path = make_video(&dir, name, muxer, size, 40);
        let reference = reference_frames(&path, size);
        assert_eq!(reference.len(), 40, "{name}: the reference decode");
        let mut source = video(&path, false, false);
        assert!(!source.is_live() && source.fps().is_none(), "unpaced: {}", source.describe());
        let frames = drain(&mut source);
        assert_eq!(frames.len(), 40, "{name}: every frame");
        for (i, (frame, want)) in frames.iter().zip(&reference).enumerate() {
            assert_eq!((frame.id, frame.segment), (i as u64, 0), "{name}");
            assert_eq!(frame.image.format, PixelFormat::I420, "{name}: the decoder's own layout");
            assert_eq!((frame.image.width, frame.image.height), size);
            assert!(frame.image.data == *want, "{name}: frame {i} differs from GStreamer's decode");
        }
        assert!(source.next_frame().unwrap().is_none(), "ended stays ended");
    }
}

#[test]
fn a_paced_video_keeps_the_files_rate_and_a_looping_one_goes_round() {
    let dir = scratch("gst-paced");
    let path = make_video(&dir, "clip.mp4", "mp4mux", (160, 120), 30);
    let mut source = video(&path, true, false);
    assert!(source.is_live(), "paced: frames come in real time");
    assert_eq!(source.fps(), Some(25.0));
    let t0 = Instant::now();
    let frames = drain(&mut source);
    let took = t0.elapsed().as_secs_f64();
    assert_eq!(frames.len(), 30);
    // 29 periods of 40 ms after the first frame, within 15 %.
    let want = 29.0 / 25.0;
    assert!((took - want).abs() <= 0.15 * want, "30 frames at 25 fps took {took:.3} s");
    eprintln!("paced: 30 frames at 25 fps in {took:.3} s");
    let span = (frames[29].time.mono_ns - frames[0].time.mono_ns) as f64 * 1e-9;
    assert!((span - want).abs() <= 0.15 * want, "capture times span {span:.3} s");

    let mut looping = video(&path, false, true);
    let frames: Vec<Frame> = (0..75).map(|_| looping.next_frame().unwrap().unwrap()).collect();
    let segments: Vec<u64> = frames.iter().map(|f| f.segment).collect();
    assert_eq!(segments, [vec![0; 30], vec![1; 30], vec![2; 15]].concat(), "a segment per pass");
    let ids: Vec<u64> = frames.iter().map(|f| f.id).collect();
    assert_eq!(ids, (0..75).collect::<Vec<u64>>(), "ids go on counting across passes");
    assert_eq!(frames[30].image, frames[0].image, "round again from the first frame");
}

/// A live stream whose caps give no rate (`framerate=0/1`, as from an RTSP camera whose SDP and
/// SPS state none) gets its rate measured from its first 16 frames' timestamps.
#[test]
fn a_live_stream_without_a_rate_in_its_caps_gets_one_measured() {
    let kind = Kind::Pipeline(
        "videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=20/1 \
         ! capssetter caps=\"video/x-raw,framerate=(fraction)0/1\""
            .into(),
    );
    let mut source =
        Stream::open(Settings { kind, stall_timeout: Duration::from_secs(2) }).unwrap();
    assert!(source.is_live());
    assert_eq!(source.fps(), None, "no rate before it is measured: {}", source.describe());
    let known: Vec<bool> = (0..20)
        .map(|_| {
            source.next_frame().unwrap().unwrap();
            source.fps().is_some()
        })
        .collect();
    assert_eq!(known.iter().position(|k| *k), Some(15), "measured on the 16th frame: {known:?}");
    let fps = source.fps().unwrap();
    assert!((fps - 20.0).abs() < 0.5, "measured {fps} fps from a 20 fps stream");
    eprintln!("figure: a 20 fps stream with framerate=0/1 caps measured at {fps:.3} fps");
}

/// Debian's opencv-doc footage (people crossing a plaza), fetched by the test command
/// (`models/run people_eval.py --fetch-only`).
fn vtest() -> PathBuf {
    let avi = root().join("models/.cache/vtest.avi");
    assert!(avi.is_file(), "no {}: run `models/run people_eval.py --fetch-only`", avi.display());
    avi
}

/// Buffers of vtest.avi the replay test runs: about its first 240 frames of 795 (everyone
/// else's time in the test command is worth more than the rest of the plaza; people_eval runs
/// all of it).
const VTEST_BUFFERS: usize = 240;

/// The frames GStreamer's own decode of `path` gives, counted at a fakesink.
fn decoded_frames(path: &Path) -> usize {
    let description = format!("filesrc location={} ! decodebin ! fakesink name=s", path.display());
    let pipeline = launch(&description);
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = count.clone();
    let pad = pipeline.by_name("s").unwrap().static_pad("sink").unwrap();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    play(&pipeline, &description);
    count.load(std::sync::atomic::Ordering::Relaxed)
}

/// The start of vtest.avi ([`VTEST_BUFFERS`] of its buffers), cut without decoding (remuxed to
/// Matroska: avimux cannot take avidemux's pads in a launch line).
fn vtest_clip(dir: &Path) -> PathBuf {
    let clip = dir.join("vtest-clip.mkv");
    gst_run(&format!(
        "filesrc location={} ! avidemux ! identity eos-after={VTEST_BUFFERS} ! matroskamux \
         ! filesink location={}",
        vtest().display(),
        clip.display()
    ));
    clip
}

/// Runs the daemon over `clip` (`frames` long), unpaced, to its end; the pose payloads without
/// timestamps.
fn replay(broker: &Broker, device: &str, clip: &Path, frames: usize) -> Vec<Vec<u8>> {
    let sub = Subscriber::start(broker.port, device, 120);
    sub.until(Duration::from_secs(15), |v| v["ready"] == true);
    let source = format!("kind = \"video\"\npath = {:?}\nfps = 0", clip.display().to_string());
    let detector = root().join("models/nanodet/nanodet.onnx");
    let cfg = config(device, broker.port, &source, "", 0.0)
        + &format!("[person]\ndetector = {:?}\n", detector.display().to_string());
    let mut daemon = Daemon::start(device, &cfg);
    let (status, stderr) = daemon.wait(Duration::from_secs(300));
    assert!(status.success(), "the replay ends by itself: {stderr}");
    assert!(stderr.contains("768×576 I420 unpaced"), "{stderr}");
    let every = format!("frames_in={frames} frames_dropped=0");
    assert!(stderr.contains(&every), "every frame: {stderr}");
    let online = std::cell::Cell::new(false);
    let mut lines = sub.until(Duration::from_secs(30), |v| {
        online.set(online.get() || is_status(v, "online"));
        online.get() && is_status(v, "offline")
    });
    lines.extend(sub.rest(Duration::from_secs(5)));
    lines
        .iter()
        .filter(|l| l.get("pose").is_some())
        .map(|l| {
            let mut m = wire::decode(&hex(l["hex"].as_str().unwrap())).unwrap();
            (m.utc_us, m.mono_ns) = (0, 0);
            wire::encode(&m)
        })
        .collect()
}

#[test]
fn real_footage_replays_byte_identical_payloads() {
    let broker = Broker::start();
    let clip = vtest_clip(&scratch("gst-vtest-clip"));
    let frames = decoded_frames(&clip);
    assert!((200..=VTEST_BUFFERS).contains(&frames), "{frames} frames in the clip");
    let first = replay(&broker, "gst-vtest", &clip, frames);
    let second = replay(&broker, "gst-vtest", &clip, frames);
    assert_eq!(first.len(), frames, "a message per frame");
    let people: usize = first.iter().map(|m| wire::decode(m).unwrap().people.len()).sum();
    assert!(people > frames, "people are found in the plaza: {people} person-frames");
    let differing = (0..first.len()).filter(|&i| first[i] != second[i]).count();
    assert_eq!(differing, 0, "two unpaced runs of one file give the same payloads");
}

/// The RTSP server of tests/gst/rtsp_server.py on `port`, listening when this returns.
struct RtspServer(Child);

impl RtspServer {
    fn start(port: u16, login: Option<(&str, &str)>) -> RtspServer {
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(root().join("tests/gst/rtsp_server.py")).args(["--port", &port.to_string()]);
        if let Some((user, password)) = login {
            cmd.args(["--user", user, "--password", password]);
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(
            line.trim(),
            format!("ready {port}"),
            "the RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0)"
        );
        RtspServer(child)
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn an_rtsp_camera_that_goes_away_for_10_s_is_back_within_2_s() {
    let device = "gst-rtsp";
    let broker = Broker::start();
    let port = free_port();
    let server = RtspServer::start(port, None);
    let sub = Subscriber::start_with(broker.port, device, 120, &["--camera"]);
    sub.until(Duration::from_secs(15), |v| v["ready"] == true);
    let source = format!("kind = \"rtsp\"\nurl = \"rtsp://127.0.0.1:{port}/cam\"");
    let mut daemon = Daemon::start(device, &config(device, broker.port, &source, "", 0.0));
    daemon.wait_running("an RTSP camera");
    let streaming = |v: &Value| v["camera"]["state"] == "streaming";
    let lost = |v: &Value| v["camera"]["state"] == "lost";
    let mut lines = sub.until(Duration::from_secs(10), streaming);
    // Three seconds of poses, then the server goes away for 10 s.
    let t0 = Instant::now();
    lines.extend(sub.until(Duration::from_secs(10), |_| t0.elapsed() > Duration::from_secs(3)));
    let before = rss_kb(daemon.child.id());
    drop(server);
    lines.extend(sub.until(Duration::from_secs(5), lost));
    std::thread::sleep(Duration::from_secs(10));
    let server = RtspServer::start(port, None);
    let back = Instant::now();
    lines.extend(sub.until(Duration::from_secs(5), streaming));
    let took = back.elapsed();
    assert!(took <= Duration::from_secs(2), "back {took:?} after the server returned");
    let t1 = Instant::now();
    lines.extend(sub.until(Duration::from_secs(10), |_| t1.elapsed() > Duration::from_secs(3)));
    let after = rss_kb(daemon.child.id());
    daemon.signal(rustix::process::Signal::TERM);
    let (status, stderr) = daemon.wait(Duration::from_secs(15));
    assert!(status.success(), "{stderr}");
    lines.extend(sub.rest(Duration::from_secs(3)));
    drop(server);

    let states: Vec<&str> = lines.iter().filter_map(|l| l["camera"]["state"].as_str()).collect();
    assert_eq!(states, ["streaming", "lost", "streaming", "stopped"], "{stderr}");
    let seqs: Vec<u64> = lines.iter().filter_map(|l| l["pose"]["seq"].as_u64()).collect();
    assert!(seqs.len() > 100, "poses before and after: {}", seqs.len());
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "seq continuous: {seqs:?}");
    assert!(
        stderr.contains("Source lost; restarting.") && stderr.contains("Source back; streaming."),
        "{stderr}"
    );
    // Ten restarts' worth of pipelines built and torn down: memory back where it was.
    let grown_mb = (after as f64 - before as f64) / 1024.0;
    eprintln!(
        "figure: RTSP outage 10 s: back {:.2} s after the server returned, states {states:?}, \
         {} poses with seq continuous, RSS {before} kB before the loss and {after} kB 3 s after \
         the return",
        took.as_secs_f64(),
        seqs.len()
    );
    assert!(grown_mb < 8.0, "RSS {before} kB before the loss, {after} kB after: +{grown_mb:.1} MB");
}

#[test]
fn bad_gstreamer_inputs_are_one_start_up_error_each() {
    let dir = scratch("gst-bad");
    let port = free_port();
    let login = RtspServer::start(port, Some(("viewer", "right")));
    std::fs::write(dir.join("password"), "wrong\n").unwrap();
    std::fs::write(
        dir.join("noise.mp4"),
        (0..20_000u32).map(|i| (i * 7919 % 251) as u8).collect::<Vec<u8>>(),
    )
    .unwrap();
    // A real AVI whose codec nothing decodes: H.264 relabelled with an unknown FourCC.
    let avi = dir.join("h264.avi");
    gst_run(&format!(
        "videotestsrc num-buffers=10 ! video/x-raw,format=I420,width=160,height=120 \
         ! x264enc ! avimux ! filesink location={}",
        avi.display()
    ));
    let bytes = std::fs::read(&avi).unwrap();
    let mut patched = bytes.clone();
    for i in 0..patched.len().saturating_sub(4) {
        if &patched[i..i + 4] == b"H264" {
            patched[i..i + 4].copy_from_slice(b"ZZZZ");
        }
    }
    assert_ne!(patched, bytes, "the FourCC was found");
    std::fs::write(dir.join("unknown.avi"), patched).unwrap();
    let closed = free_port();
    let cases: [(&str, String, &str); 8] = [
        ("wrong URL", format!("kind = \"rtsp\"\nurl = \"rtsp://127.0.0.1:{closed}/cam\""), "cannot reach the camera"),
        (
            "wrong login",
            format!("kind = \"rtsp\"\nurl = \"rtsp://127.0.0.1:{port}/cam\"\nusername = \"viewer\"\npassword_file = \"password\""),
            "the server refused the login",
        ),
        ("no stream at the path", format!("kind = \"rtsp\"\nurl = \"rtsp://127.0.0.1:{port}/nothing\""), "not found"),
        ("unknown element", "kind = \"gstreamer\"\npipeline = \"videotestsrc ! nosuchelement\"".into(), "GStreamer element `nosuchelement` is not installed"),
        ("syntax error", "kind = \"gstreamer\"\npipeline = \"videotestsrc ! ! videoscale\"".into(), "pipeline syntax error"),
        ("missing file", "kind = \"video\"\npath = \"nowhere.mp4\"".into(), "source.path = "),
        ("not a video", "kind = \"video\"\npath = \"noise.mp4\"".into(), "not a video GStreamer can read"),
        ("no decoder", "kind = \"video\"\npath = \"unknown.avi\"".into(), "no GStreamer decoder for video/x-avi-unknown"),
    ];
    for (what, source, want) in cases {
        let case = dir.join(what.replace(' ', "-"));
        std::fs::create_dir_all(&case).unwrap();
        for f in ["password", "noise.mp4", "unknown.avi"] {
            std::fs::copy(dir.join(f), case.join(f)).unwrap();
        }
        let cfg =
            format!("[source]\n{source}\n[model]\ndir = {:?}\n", narrow().display().to_string());
        let mut daemon = Daemon::start_in(&case, &cfg, &[], &[]);
        let error = daemon.start_up_error(what, Duration::from_secs(30));
        assert!(error.contains(want), "{what}: {error}");
        let stderr = daemon.stderr();
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert!(
            !stderr.contains("wrong\n") && !error.contains("wrong"),
            "{what}: the password is never written"
        );
    }
    drop(login);
    eprintln!("figure: bad GStreamer inputs: 8 cases, one start-up error line each naming the fix, exit non-zero, no panic, password not written");
}

/// The source's errors are typed: a loss is `Gone`, not a bad frame.
#[test]
fn a_lost_rtsp_stream_is_gone_and_counts_no_bad_frames() {
    let port = free_port();
    let server = RtspServer::start(port, None);
    let kind = Kind::Rtsp {
        url: format!("rtsp://127.0.0.1:{port}/cam"),
        tcp: false,
        latency_ms: 100,
        login: None,
    };
    let mut source =
        Stream::open(Settings { kind, stall_timeout: Duration::from_secs(1) }).unwrap();
    let first = source.next_frame().unwrap().unwrap();
    assert_eq!(
        first.image.format,
        PixelFormat::I420,
        "UDP transport, decoded: {}",
        source.describe()
    );
    drop(server);
    let killed = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last_id = first.id;
    loop {
        match source.next_frame() {
            Ok(Some(f)) => last_id = f.id,
            Err(Error::Gone { input, reason }) => {
                assert!(input.starts_with("RTSP rtsp://127.0.0.1:"), "{input}");
                assert!(!reason.is_empty());
                eprintln!("RTSP loss seen after {:?}: {reason}", killed.elapsed());
                break;
            }
            other => panic!("a loss, not {other:?}"),
        }
        assert!(Instant::now() < deadline, "no loss reported within 10 s");
    }
    let lost_after = killed.elapsed();
    let server = RtspServer::start(port, None);
    let returned = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(10);
    let back = loop {
        match source.next_frame() {
            Ok(Some(f)) => break f,
            Err(Error::Gone { .. }) => assert!(Instant::now() < deadline, "not back in 10 s"),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(back.id, last_id + 1, "ids go on counting");
    assert_eq!(back.segment, first.segment + 1, "a new segment after the loss");
    eprintln!(
        "figure: RTSP loss (UDP, stall timeout 1 s): reported {:.2} s after the server died, \
         back {:.2} s after it returned, next frame id +1, segment +1",
        lost_after.as_secs_f64(),
        returned.elapsed().as_secs_f64()
    );
    drop(server);
}
