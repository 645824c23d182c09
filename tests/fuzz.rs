//! Fuzzing without a nightly toolchain: a mutation fuzzer (no coverage guidance) over the
//! inputs that come from outside: the wire decoder (bytes from the network), the config
//! parser (a user's file), the MJPEG path (a camera's frames, decoded and sampled into the
//! model's tensor) and the detector's post-processing with the tracker behind it (any values
//! the detector graph may output).
//!
//! Each target starts from a seed corpus of valid inputs, mutates them (bit flips, boundary
//! bytes, inserted, deleted, duplicated and spliced ranges, truncation) and runs the target
//! under `catch_unwind`: a panic fails the test, after writing the input to
//! `target/fuzz-crashes/`. Inputs in `tests/data/fuzz/<target>/` (past crashes, committed as
//! regressions) run first, every time.
//!
//! `SMPLCAST_FUZZ_SECS` (default 3) sets each target's time, `SMPLCAST_FUZZ_SEED` the seed
//! (default: from the clock; printed). The test command runs the short version;
//! `scripts/fuzz.sh` runs each target for 10 minutes.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::mqtt::root;
use smplcast::config::Config;
use smplcast::detect::blazepose::{anchors, postprocess};
use smplcast::detect::track::{Settings, Tracker};
use smplcast::detect::Detection;
use smplcast::pixels::{crop_normalised, decode_jpeg};
use smplcast::wire;

/// xorshift64*: small, fast, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [u8; 10] = [0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x40, 0x20, 0x10, 0xc0];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(8) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(at..at, bytes);
            }
            3 if len > 1 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                input.drain(at..at + n);
            }
            4 if len > 1 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                let copy = input[at..at + n].to_vec();
                let to = rng.below(len + 1);
                input.splice(to..to, copy);
            }
            5 if len > 0 => input.truncate(rng.below(len)),
            6 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() && len > 0 {
                    let from = rng.below(other.len());
                    let n = 1 + rng.below((other.len() - from).min(256));
                    let to = rng.below(len);
                    let end = (to + n).min(len);
                    input.splice(to..end, other[from..from + n].iter().copied());
                }
            }
            7 if len >= 4 => {
                // A 32-bit little-endian boundary value (lengths, counts, floats).
                let at = rng.below(len - 3);
                let v: u32 = [0, 1, u32::MAX, 0x7fff_ffff, 0x8000_0000, 0x7f80_0000, 0xffc0_0000]
                    [rng.below(7)];
                input[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            _ => {}
        }
    }
}

fn seconds() -> f64 {
    std::env::var("SMPLCAST_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0)
}

fn seed() -> u64 {
    std::env::var("SMPLCAST_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64
            | 1
    })
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out.into_iter()
        .filter(|p| p.is_file())
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect()
}

/// The seed corpus: the files of `dir` (under the repository root) ending in `.ext`.
fn seeds(dir: &str, ext: &str) -> Vec<Vec<u8>> {
    files(&root().join(dir))
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == ext))
        .map(|(_, b)| b)
        .collect()
}

/// Runs `target` on the regression inputs, then on mutations of `corpus` for the time budget.
fn fuzz(name: &str, corpus: Vec<Vec<u8>>, target: impl Fn(&[u8])) {
    assert!(!corpus.is_empty(), "{name}: empty seed corpus");
    std::panic::set_hook(Box::new(|_| {})); // a caught panic is reported below, with its input
    let run = |input: &[u8]| catch_unwind(AssertUnwindSafe(|| target(input)));
    for (path, input) in files(&root().join("tests/data/fuzz").join(name)) {
        if let Err(e) = run(&input) {
            let _ = std::panic::take_hook();
            panic!("{name}: regression input {} panics: {}", path.display(), message(&e));
        }
    }
    let seed = seed();
    let mut rng = Rng(seed);
    let budget = Duration::from_secs_f64(seconds());
    let started = Instant::now();
    let mut execs = 0u64;
    let mut input = Vec::new();
    while started.elapsed() < budget {
        input.clear();
        input.extend_from_slice(&corpus[rng.below(corpus.len())]);
        mutate(&mut rng, &mut input, &corpus);
        execs += 1;
        if let Err(e) = run(&input) {
            let _ = std::panic::take_hook();
            let dir = root().join("target/fuzz-crashes");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{name}-{seed}-{execs}.bin"));
            std::fs::write(&file, &input).unwrap();
            panic!(
                "{name}: panic on input {} (seed {seed}, exec {execs}): {}; commit it to \
                 tests/data/fuzz/{name}/ with the fix",
                file.display(),
                message(&e)
            );
        }
    }
    let _ = std::panic::take_hook();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "figure: fuzz {name}: {execs} inputs in {secs:.1} s ({:.0}/s), seed {seed}, no panic",
        execs as f64 / secs
    );
}

fn message(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

#[test]
fn fuzz_wire_decoder() {
    fuzz("wire", seeds("tests/data/wire", "cbor"), |bytes| {
        if let Ok(msg) = wire::decode(bytes) {
            // What decodes re-encodes, and that decodes again.
            wire::decode(&wire::encode(&msg)).expect("a decoded message re-encodes");
        }
    });
}

#[test]
fn fuzz_config_parser() {
    let corpus = ["config.example.toml", "systemd/config.toml"]
        .iter()
        .map(|f| std::fs::read(root().join(f)).unwrap())
        .collect();
    let base = root().to_path_buf();
    fuzz("config", corpus, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        if let Err(problems) = Config::from_toml(&text, &base) {
            assert!(!problems.is_empty() && problems.iter().all(|p| !p.is_empty()));
        }
    });
}

#[test]
fn fuzz_mjpeg_frames() {
    let mut corpus = seeds("tests/data/frames", "jpg");
    corpus.truncate(4);
    let mut tensor = Vec::new();
    let tensor = std::cell::RefCell::new(&mut tensor);
    fuzz("mjpeg", corpus, |bytes| {
        if let Ok(image) = decode_jpeg(bytes) {
            // The camera path: a decoded frame goes straight into the crop sampler.
            let (w, h) = (image.width as f32, image.height as f32);
            let mut t = tensor.borrow_mut();
            crop_normalised(
                &image,
                (w / 2.0, h / 2.0, w.max(h) * 1.1),
                32,
                [0.5; 3],
                [0.25; 3],
                &mut t,
            );
            assert!(t.iter().all(|v| v.is_finite()));
        }
    });
}

/// The detector's outputs from fuzz bytes: image size, then records of (anchor, logit, 12
/// coordinates) written into otherwise empty outputs; the tracker then follows what it finds
/// over three frames.
#[test]
fn fuzz_detector_postprocessing_and_tracker() {
    let anchors = anchors();
    let mut corpus = Vec::new();
    for seed in 0..8u64 {
        let mut rng = Rng(seed * 7919 + 1);
        let mut input = vec![0x80, 0x02, 0xe0, 0x01]; // 640 × 480
        for _ in 0..1 + rng.below(6) {
            input.extend_from_slice(&(rng.below(anchors.len()) as u16).to_le_bytes());
            let logit = 2.0 + rng.below(4) as f32;
            input.extend_from_slice(&logit.to_le_bytes());
            for k in 0..12 {
                let v =
                    if k < 4 { 20.0 + rng.below(60) as f32 } else { rng.below(100) as f32 - 50.0 };
                input.extend_from_slice(&v.to_le_bytes());
            }
        }
        corpus.push(input);
    }
    let n = anchors.len();
    fuzz("detector", corpus, |bytes| {
        if bytes.len() < 4 {
            return;
        }
        let width = u32::from(u16::from_le_bytes([bytes[0], bytes[1]]));
        let height = u32::from(u16::from_le_bytes([bytes[2], bytes[3]]));
        let mut raw = vec![0.0f32; n * 12];
        let mut logits = vec![-20.0f32; n];
        for rec in bytes[4..].chunks_exact(2 + 13 * 4) {
            let a = usize::from(u16::from_le_bytes([rec[0], rec[1]])) % n;
            let f = |i: usize| f32::from_le_bytes(rec[2 + 4 * i..6 + 4 * i].try_into().unwrap());
            logits[a] = f(0);
            for k in 0..12 {
                raw[a * 12 + k] = f(1 + k);
            }
        }
        let people = postprocess(&raw, &logits, &anchors, width, height);
        let found: Vec<Detection> =
            people.iter().filter_map(|p| p.body_box(width, height)).collect();
        let mut tracker = Tracker::new(Settings::default());
        for _ in 0..3 {
            tracker.update(&found, [width, height]);
        }
        tracker.predict([width, height]);
    });
}

/// NanoDet's outputs from fuzz bytes (image size, then records of cell, score and 4
/// distances in otherwise empty outputs), and raw boxes straight into the tracker (any size,
/// sign or NaN, any score): over six frames of updates, predictions and a reset, every
/// reported box is finite and inside the image.
#[test]
fn fuzz_nanodet_postprocessing_and_tracker() {
    use smplcast::detect::nanodet;
    let settings = nanodet::Settings::default();
    let mut corpus = Vec::new();
    for seed in 0..8u64 {
        let mut rng = Rng(seed * 104_729 + 3);
        let mut input = vec![0x00, 0x05, 0xd0, 0x02]; // 1280 × 720
        for _ in 0..1 + rng.below(6) {
            input.extend_from_slice(&(rng.below(4000) as u16).to_le_bytes());
            input.extend_from_slice(&(0.5 + rng.below(50) as f32 / 100.0).to_le_bytes());
            for _ in 0..4 {
                input.extend_from_slice(&(rng.below(100) as f32 / 10.0).to_le_bytes());
            }
        }
        corpus.push(input);
    }
    fuzz("nanodet", corpus, |bytes| {
        if bytes.len() < 4 {
            return;
        }
        let width = u32::from(u16::from_le_bytes([bytes[0], bytes[1]]));
        let height = u32::from(u16::from_le_bytes([bytes[2], bytes[3]]));
        let input = nanodet::input_size(width, height, settings.sizes[0]);
        let cells: usize = nanodet::STRIDES.iter().map(|s| (input[0] / s) * (input[1] / s)).sum();
        let mut scores = vec![0.0f32; cells];
        let mut dists = vec![0.0f32; 4 * cells];
        let mut raw = Vec::new();
        for rec in bytes[4..].chunks_exact(2 + 5 * 4) {
            let c = usize::from(u16::from_le_bytes([rec[0], rec[1]])) % cells.max(1);
            let f = |i: usize| f32::from_le_bytes(rec[2 + 4 * i..6 + 4 * i].try_into().unwrap());
            scores[c] = f(0);
            for k in 0..4 {
                dists[4 * c + k] = f(1 + k);
            }
            let bbox = smplcast::geom::BBox { left: f(1), top: f(2), width: f(3), height: f(4) };
            raw.push(Detection { bbox, score: f(0) });
        }
        let found = nanodet::postprocess(&scores, &dists, input, [width, height], &settings);
        let mut tracker = Tracker::new(Settings::default());
        for frame in 0..6 {
            let up = match frame {
                2 => tracker.predict([width, height]),
                4 => {
                    tracker.reset();
                    tracker.update(&raw, [width, height])
                }
                f if f % 2 == 0 => tracker.update(&found, [width, height]),
                _ => tracker.update(&raw, [width, height]),
            };
            for p in up.people {
                let b = p.bbox;
                assert!([b.left, b.top, b.width, b.height].iter().all(|v| v.is_finite()), "{p:?}");
                assert!(b.left >= 0.0 && b.top >= 0.0, "{p:?}");
                assert!(b.left + b.width <= width as f32 + 1e-3, "{p:?}");
                assert!(b.top + b.height <= height as f32 + 1e-3, "{p:?}");
            }
        }
    });
}

/// Corrupt video files through the `video` source: containers and H.264 bitstreams with bytes
/// flipped, cut and spliced. Whatever GStreamer makes of them, the source gives frames the
/// sampler reads, errors (counted and skipped by the daemon) or an end, and never panics.
#[cfg(feature = "gstreamer")]
#[test]
fn fuzz_video_files() {
    use smplcast::source::gst::{Kind, Settings, Stream};
    use smplcast::source::FrameSource;

    let dir = std::env::temp_dir().join(format!("smplcast-fuzz-video-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    gstreamer::init().unwrap();
    let corpus: Vec<Vec<u8>> = [("mp4mux", "seed.mp4"), ("matroskamux", "seed.mkv")]
        .iter()
        .map(|(muxer, name)| {
            let path = dir.join(name);
            let description = format!(
                "videotestsrc num-buffers=6 ! video/x-raw,format=I420,width=96,height=64 \
                 ! x264enc key-int-max=3 ! h264parse ! {muxer} ! filesink location={}",
                path.display()
            );
            let pipeline = gstreamer::parse::launch(&description).unwrap();
            use gstreamer::prelude::*;
            pipeline.set_state(gstreamer::State::Playing).unwrap();
            let bus = pipeline.bus().unwrap();
            bus.timed_pop_filtered(
                gstreamer::ClockTime::from_seconds(30),
                &[gstreamer::MessageType::Eos],
            );
            pipeline.set_state(gstreamer::State::Null).unwrap();
            std::fs::read(&path).unwrap()
        })
        .collect();
    let file = dir.join("input.mp4");
    let mut tensor = Vec::new();
    let tensor = std::cell::RefCell::new(&mut tensor);
    fuzz("video", corpus, |bytes| {
        std::fs::write(&file, bytes).unwrap();
        let kind = Kind::Video { path: file.clone(), paced: false, looping: false };
        // A file that stalls ends after this (without a frame: a start-up error).
        let stall_timeout = Duration::from_millis(300);
        let Ok(mut source) = Stream::open(Settings { kind, stall_timeout }) else {
            return; // a start-up error, which names the file
        };
        for _ in 0..64 {
            match source.next_frame() {
                Ok(Some(frame)) => {
                    let image = &frame.image;
                    let (w, h) = (image.width as f32, image.height as f32);
                    let mut t = tensor.borrow_mut();
                    crop_normalised(
                        image,
                        (w / 2.0, h / 2.0, w.max(h)),
                        16,
                        [0.5; 3],
                        [0.25; 3],
                        &mut t,
                    );
                    assert!(t.iter().all(|v| v.is_finite()));
                }
                Ok(None) => break,
                Err(_) => {}
            }
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
