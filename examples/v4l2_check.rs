//! Runs smplcast's V4L2 capture code against a real kernel driver: the `vivid` virtual camera,
//! inside a qemu guest booted by tests/vivid/run-vivid-test.sh (as root, /dev/video0 present).
//! Prints one `CHECK <name>: ok|FAIL …` line per check and exits non-zero if any failed.
//!
//! Checks: the device listing; a request the device cannot meet (error lists the offer); YUYV
//! and NV12/GREY capture with increasing monotonic kernel timestamps and the asked frame
//! interval; the fused crop on real frames; unbinding the driver while streaming (the source
//! reports the camera gone, no panic), and rebinding it (capture resumes by itself in a new
//! segment).

use std::path::PathBuf;
use std::time::{Duration, Instant};

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

    if c.failed.is_empty() {
        println!("ALL CHECKS PASSED");
    } else {
        println!("FAILED: {}", c.failed.join(", "));
        std::process::exit(1);
    }
}
