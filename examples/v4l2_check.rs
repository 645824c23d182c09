//! Runs smplcast's V4L2 capture code against a real kernel driver: the `vivid` virtual camera,
//! inside a qemu guest booted by tests/vivid/run-vivid-test.sh (as root, /dev/video0 present).
//! Prints one `CHECK <name>: ok|FAIL …` line per check and exits non-zero if any failed.
//!
//! Checks: the device listing; a request the device cannot meet (error lists the offer); YUYV
//! and NV12/GREY capture with increasing monotonic kernel timestamps and the asked frame
//! interval; the fused crop on real frames; unbinding the driver while streaming (the source
//! reports the camera gone, no panic), and rebinding it (capture resumes by itself in a new
//! segment); and the whole daemon on the camera (models from /extra/narrow, the embedded MQTT
//! broker on loopback, a subscriber): unplugging publishes the camera as lost, flushes the
//! window, keeps MQTT up, and replugging starts new windows.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smplcast::config::{Config, ModelConfig, MqttConfig, SourceConfig};
use smplcast::mqtt;
use smplcast::{daemon, wire};

// The embedded broker of `smplcast demo`: part of the command-line tools, not the library.
#[allow(dead_code)] // the demo reads the WebSocket port; this check does not
#[path = "../src/cli/broker.rs"]
mod broker;

use smplcast::pixels::PixelFormat;
use smplcast::source::v4l2::{list_devices, Camera, Settings};
use smplcast::source::{CaptureTime, Error, Frame, FrameSource};

const DEVICE: &str = "/dev/video0";
const UNBIND: &str = "/sys/bus/platform/drivers/vivid/unbind";
const BIND: &str = "/sys/bus/platform/drivers/vivid/bind";

struct Checks {
    failed: Vec<String>,
}

impl Checks {
    fn check(&mut self, name: &str, result: Result<String, String>) {
        match result {
            Ok(detail) => println!("CHECK {name}: ok {detail}"),
            Err(why) => {
                println!("CHECK {name}: FAIL {why}");
                self.failed.push(name.to_string());
            }
        }
    }
}

fn settings(format: &str, width: u32, height: u32, fps: f64) -> Settings {
    Settings {
        device: PathBuf::from(DEVICE),
        width,
        height,
        fps,
        format: Some(format.to_string()),
        buffers: 4,
        stall_timeout: Duration::from_secs(2),
    }
}

/// `n` frames from `camera` (errors are failures here).
fn grab(camera: &mut Camera, n: usize) -> Result<Vec<Frame>, String> {
    (0..n)
        .map(|_| camera.next_frame().map_err(|e| e.to_string())?.ok_or("source ended".to_string()))
        .collect()
}

/// Timestamps strictly increasing, close to now on CLOCK_MONOTONIC, spaced by `interval`.
fn timing(frames: &[Frame], interval: f64) -> Result<String, String> {
    let mono: Vec<u64> = frames.iter().map(|f| f.time.mono_ns).collect();
    if !mono.windows(2).all(|w| w[0] < w[1]) {
        return Err(format!("timestamps not increasing: {mono:?}"));
    }
    let now = CaptureTime::now().mono_ns;
    let age = now.saturating_sub(*mono.last().unwrap_or(&0));
    if age > 2_000_000_000 {
        return Err(format!("last timestamp {age} ns old: not CLOCK_MONOTONIC?"));
    }
    let gaps: Vec<f64> = mono.windows(2).map(|w| (w[1] - w[0]) as f64 / 1e9).collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    if (mean - interval).abs() > 0.15 * interval {
        return Err(format!("mean frame interval {mean:.4} s, asked {interval:.4} s"));
    }
    Ok(format!(
        "{} frames, mean interval {:.2} ms (asked {:.2} ms)",
        frames.len(),
        mean * 1e3,
        interval * 1e3
    ))
}

fn content(frames: &[Frame], want: PixelFormat) -> Result<String, String> {
    let f = frames.last().ok_or("no frames")?;
    if f.image.format != want {
        return Err(format!("layout {:?}, expected {want:?}", f.image.format));
    }
    let (min, max) = f.image.data.iter().fold((255u8, 0u8), |(a, b), &v| (a.min(v), b.max(v)));
    if max - min < 50 {
        return Err(format!("flat image: values {min}..{max}"));
    }
    // The fused crop on a real frame: finite, and not constant.
    let mut t = Vec::new();
    let (w, h) = (f.image.width as f32, f.image.height as f32);
    smplcast::pixels::crop_normalised(
        &f.image,
        (w / 2.0, h / 2.0, h),
        224,
        [0.5; 3],
        [0.25; 3],
        &mut t,
    );
    let finite = t.iter().all(|v| v.is_finite());
    let spread =
        t.iter().fold(f32::MIN, |m, &v| m.max(v)) - t.iter().fold(f32::MAX, |m, &v| m.min(v));
    if !finite || spread < 1.0 {
        return Err(format!("crop tensor finite {finite}, spread {spread}"));
    }
    Ok(format!(
        "{:?} {}×{} stride {}, values {min}..{max}",
        f.image.format, f.image.width, f.image.height, f.image.stride
    ))
}

fn main() {
    let mut c = Checks { failed: Vec::new() };

    let listing = list_devices();
    // The head of it (vivid offers 83 formats at 6 sizes each).
    listing.lines().take(8).for_each(|l| println!("{l}"));
    c.check(
        "devices lists vivid with YUYV",
        if listing.contains(DEVICE) && listing.contains("YUYV") {
            Ok(format!("({} lines)", listing.lines().count()))
        } else {
            Err(listing.clone())
        },
    );

    // Requests it cannot meet: each error names what the device offers.
    for (name, s) in [
        ("unmeetable format", settings("MJPG", 640, 480, 0.0)),
        ("unmeetable rate", settings("YUYV", 640, 480, 997.0)),
        (
            "missing device",
            Settings { device: "/dev/video9".into(), ..settings("YUYV", 640, 480, 0.0) },
        ),
    ] {
        let r = match Camera::open(s) {
            Ok(_) => Err("opened".into()),
            Err(e @ Error::Device { .. }) => {
                let msg = e.to_string();
                let clear = msg.contains("it offers") || msg.contains("smplcast devices");
                if clear {
                    Ok(msg)
                } else {
                    Err(format!("unclear: {msg}"))
                }
            }
            Err(e) => Err(format!("wrong error: {e}")),
        };
        c.check(name, r);
    }

    // YUYV at 25 fps (vivid defaults to 5), then a planar and a grey layout.
    for (format, layout, w, h, fps) in [
        ("YUYV", PixelFormat::Yuyv, 640, 480, 25.0),
        ("NV12", PixelFormat::Nv12, 320, 180, 30.0),
        ("GREY", PixelFormat::Grey, 640, 360, 15.0),
    ] {
        let r = Camera::open(settings(format, w, h, fps)).map_err(|e| e.to_string()).and_then(
            |mut cam| {
                let _warm = grab(&mut cam, 3)?;
                let frames = grab(&mut cam, 20)?;
                Ok(format!("{}; {}", timing(&frames, 1.0 / fps)?, content(&frames, layout)?))
            },
        );
        c.check(&format!("capture {format} {w}×{h} at {fps} fps"), r);
    }

    // Unplug while streaming, then plug back.
    let r = (|| -> Result<String, String> {
        let mut cam = Camera::open(settings("YUYV", 640, 480, 25.0)).map_err(|e| e.to_string())?;
        grab(&mut cam, 5)?;
        std::fs::write(UNBIND, "vivid.0").map_err(|e| format!("unbind: {e}"))?;
        let t0 = Instant::now();
        let mut frames_after = 0;
        let reason = loop {
            match cam.next_frame() {
                Ok(Some(_)) => frames_after += 1,
                Ok(None) => return Err("source ended".into()),
                Err(Error::Gone { reason, .. }) => break reason,
                Err(e) => return Err(format!("wrong error: {e}")),
            }
            if t0.elapsed() > Duration::from_secs(10) {
                return Err("no loss reported 10 s after unbinding".into());
            }
        };
        let lost_after = t0.elapsed();
        // While gone, every call reports it (after a short wait) and never panics.
        for _ in 0..4 {
            match cam.next_frame() {
                Err(Error::Gone { .. }) => {}
                other => {
                    return Err(format!(
                        "while unbound: {other:?}",
                        other = other.map(|f| f.map(|f| f.id))
                    ))
                }
            }
        }
        std::fs::write(BIND, "vivid.0").map_err(|e| format!("bind: {e}"))?;
        let t1 = Instant::now();
        let frame = loop {
            match cam.next_frame() {
                Ok(Some(f)) => break f,
                Ok(None) => return Err("source ended".into()),
                Err(Error::Gone { .. }) => {}
                Err(e) => return Err(format!("after rebinding: {e}")),
            }
            if t1.elapsed() > Duration::from_secs(20) {
                return Err("no frame 20 s after rebinding".into());
            }
        };
        if frame.segment != 1 {
            return Err(format!("frame after recovery in segment {}, expected 1", frame.segment));
        }
        let more = grab(&mut cam, 10)?;
        Ok(format!(
            "lost {:.2} s after unbind ({frames_after} frames in flight; \"{reason}\"), back {:.2} s after bind; {}",
            lost_after.as_secs_f64(),
            t1.elapsed().as_secs_f64(),
            timing(&more, 0.04)?
        ))
    })();
    c.check("unplug and replug while streaming", r);

    c.check("daemon over an unplugged and replugged camera", daemon_check());

    if c.failed.is_empty() {
        println!("ALL CHECKS PASSED");
    } else {
        println!("FAILED: {}", c.failed.join(", "));
        std::process::exit(1);
    }
}

/// Messages a subscriber received: (topic leaf, payload).
type Inbox = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

fn subscribe(port: u16, inbox: Inbox) -> Result<(), String> {
    use smplcast::mqtt::client::{Incoming, Subscriber};
    use smplcast::mqtt::QoS;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        rt.block_on(async move {
            let topics = vec![("smplcast/vivid/#".to_string(), QoS::AtLeastOnce)];
            let mut subscriber = Subscriber::new(&broker::client(port), "check".into(), topics);
            loop {
                match subscriber.next().await {
                    Ok(Incoming::Subscribed) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Incoming::Message(p)) => {
                        let leaf = p.topic.rsplit('/').next().unwrap_or_default().to_string();
                        inbox.lock().unwrap().push((leaf, p.payload));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        })
    });
    ready.recv_timeout(Duration::from_secs(10)).map_err(|_| "subscriber not subscribed".to_string())
}

/// Waits until `pred` holds for the inbox, or fails after `secs`.
fn wait_for(
    inbox: &Inbox,
    secs: u64,
    what: &str,
    pred: impl Fn(&[(String, Vec<u8>)]) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !pred(&inbox.lock().unwrap()) {
        if Instant::now() > deadline {
            return Err(format!("{what}: not within {secs} s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn camera_states(msgs: &[(String, Vec<u8>)]) -> Vec<String> {
    msgs.iter()
        .filter(|(leaf, _)| leaf == "camera")
        .filter_map(|(_, p)| serde_json::from_slice::<serde_json::Value>(p).ok())
        .filter_map(|v| v["state"].as_str().map(str::to_string))
        .collect()
}

fn poses(msgs: &[(String, Vec<u8>)]) -> Vec<wire::PoseMsg> {
    msgs.iter()
        .filter(|(leaf, _)| leaf == "pose")
        .filter_map(|(_, p)| wire::decode(p).ok())
        .collect()
}

fn daemon_check() -> Result<String, String> {
    let models = PathBuf::from("/extra/narrow");
    if !models.join("backbone.onnx").is_file() {
        return Err("no models in /extra/narrow (VIVID_EXTRA=models/fixtures/narrow)".into());
    }
    let port = broker::start().map_err(|e| e.to_string())?.mqtt;
    let inbox: Inbox = Arc::default();
    subscribe(port, inbox.clone())?;
    let config = Config {
        device_id: "vivid".into(),
        source: SourceConfig::V4l2 {
            device: DEVICE.into(),
            width: 320,
            height: 180,
            fps: 10.0,
            format: Some("YUYV".into()),
            buffers: 4,
            stall_timeout: Duration::from_secs(1),
        },
        people: smplcast::config::People::Region(None),
        crop_scale: 1.1,
        model: ModelConfig {
            dir: models,
            int8: false,
            half_floats: false,
            threads: 1,
            device: smplcast::model::Device::Cpu,
            smpl_file: None,
        },
        mqtt: Some(MqttConfig {
            settings: mqtt::Settings {
                broker: broker::client(port),
                prefix: "smplcast".into(),
                device_id: "vivid".into(),
                pose_qos: smplcast::mqtt::QoS::AtLeastOnce,
                client_cap: 64,
                max_age: Duration::from_secs(60),
                discovery: Vec::new(),
            },
            connect_timeout: Some(Duration::from_secs(10)),
            queue: 64,
        }),
        stats_interval: Some(Duration::from_millis(500)),
        homeassistant: None,
        frame_queue: 2,
        shutdown_timeout: Duration::from_secs(10),
        workers: 1,
        model_rate: smplcast::stages::rate::ModelRate::Auto,
        save_crops: None,
    };
    let running = daemon::start(&config).map_err(|e| format!("{e:#}"))?;
    let result = (|| -> Result<usize, String> {
        wait_for(&inbox, 60, "20 poses", |m| poses(m).len() >= 20)?;
        std::fs::write(UNBIND, "vivid.0").map_err(|e| format!("unbind: {e}"))?;
        wait_for(&inbox, 20, "camera lost", |m| {
            camera_states(m).last().map(String::as_str) == Some("lost")
        })?;
        let before = poses(&inbox.lock().unwrap()).len();
        std::thread::sleep(Duration::from_secs(2));
        std::fs::write(BIND, "vivid.0").map_err(|e| format!("bind: {e}"))?;
        wait_for(&inbox, 30, "camera streaming again", |m| {
            camera_states(m).iter().filter(|s| *s == "streaming").count() >= 2
        })?;
        wait_for(&inbox, 60, "20 poses after replugging", |m| poses(m).len() >= before + 20)?;
        Ok(before)
    })();
    running.stop();
    let summary = running.wait().map_err(|e| format!("{e:#}"))?;
    let before = result?;
    let msgs = inbox.lock().unwrap().clone();
    let all = poses(&msgs);
    let seq: Vec<u64> = all.iter().map(|m| m.seq).collect();
    if seq != (0..seq.len() as u64).collect::<Vec<_>>() {
        return Err(format!("seq not continuous: {seq:?}"));
    }
    // The loss ends the track: its last 7 results come without lookahead (flushed), then the
    // new track's first 8 do too, before centred results resume. (Under emulation most frames
    // are dropped for slow inference, so this is found by pattern, not by count.)
    let look: Vec<u8> = all.iter().map(|m| m.win.lookahead).collect();
    let restart =
        look.windows(17).position(|w| w[0] == 7 && w[1..16].iter().all(|&l| l == 0) && w[16] == 7);
    let frames: Vec<u64> = all.iter().map(|m| m.frame).collect();
    let Some(i) = restart else {
        return Err(format!("no flush + restart in lookaheads {look:?} (frames {frames:?})"));
    };
    if !look.starts_with(&[0; 8]) || look.iter().filter(|&&l| l == 7).count() < 2 {
        return Err(format!("lookaheads {look:?}"));
    }
    let stats: Vec<serde_json::Value> = msgs
        .iter()
        .filter(|(leaf, _)| leaf == "stats")
        .filter_map(|(_, p)| serde_json::from_slice(p).ok())
        .collect();
    let losses = stats.last().and_then(|s| s["source_losses"].as_u64());
    if losses != Some(1) {
        return Err(format!("stats source_losses {losses:?}, expected 1"));
    }
    Ok(format!(
        "{} poses ({before} before the loss; flush + new windows from result {}), camera states \
         {:?}, {} frames in, {} dropped",
        all.len(),
        i + 1,
        camera_states(&msgs),
        summary.frames_in,
        summary.frames_dropped
    ))
}
