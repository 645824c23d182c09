//! What the file says: the sections as serde reads them (unknown keys refused, defaults from
//! `Default`), and the TOML parser whose errors name the key and the line.

use std::path::PathBuf;

use serde::Deserialize;

use crate::detect::nanodet::Settings as DetectorSettings;
use crate::detect::track::{Keep, Settings as TrackerSettings};

/// The file as written. Every section and key is optional except `model.dir`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Names this daemon in topics and messages.
    pub device_id: Option<String>,
    pub source: RawSource,
    pub person: RawPerson,
    pub model: RawModel,
    pub mqtt: RawMqtt,
    pub stats: RawStats,
    pub pipeline: RawPipeline,
    pub homeassistant: RawHomeAssistant,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSource {
    /// `synthetic`, `files`, `v4l2`, `gstreamer`, `rtsp` or `video`.
    pub kind: String,
    /// Frames per second; 0: unpaced (as fast as the pipeline takes them, nothing dropped).
    /// Default 25; `video`: absent for the file's own rate.
    pub fps: Option<f64>,
    /// synthetic: frame size.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// synthetic: stop after this many frames (0 or absent: never).
    pub frames: Option<u64>,
    /// files: directory of .png/.jpg images, replayed in name order; video: the file.
    pub path: Option<PathBuf>,
    /// files, video: start again after the last image or frame.
    #[serde(rename = "loop")]
    pub looping: Option<bool>,
    /// v4l2: device path or stable link (default /dev/video0).
    pub device: Option<PathBuf>,
    /// v4l2: FourCC or "auto".
    pub format: Option<String>,
    /// v4l2: mmap buffers.
    pub buffers: Option<u32>,
    /// v4l2, gstreamer, rtsp: seconds without a frame before the camera counts as lost.
    pub stall_timeout_s: Option<f64>,
    /// gstreamer: the pipeline, ending in raw video (`libcamerasrc ! video/x-raw,width=1280`).
    pub pipeline: Option<String>,
    /// rtsp: `rtsp://host[:port]/path`, without a login (username and password_file).
    pub url: Option<String>,
    /// rtsp: "tcp" (default) or "udp".
    pub transport: Option<String>,
    /// rtsp: the jitter buffer's latency in milliseconds (default 200).
    pub latency_ms: Option<u32>,
    /// rtsp: the camera's user name.
    pub username: Option<String>,
    /// rtsp: a file whose first line is the camera's password.
    pub password_file: Option<PathBuf>,
    /// rtsp: the name of a systemd credential holding the password.
    pub password_credential: Option<String>,
}

impl Default for RawSource {
    fn default() -> Self {
        RawSource {
            kind: "synthetic".into(),
            fps: None,
            width: None,
            height: None,
            frames: None,
            path: None,
            looping: None,
            device: None,
            format: None,
            buffers: None,
            stall_timeout_s: None,
            pipeline: None,
            url: None,
            transport: None,
            latency_ms: None,
            username: None,
            password_file: None,
            password_credential: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPerson {
    /// Fixed person box [left, top, width, height] in pixels; absent: the whole frame.
    #[serde(rename = "box")]
    pub bbox: Option<[f32; 4]>,
    /// Crop side = longer box side × scale (1.1 in the official demo).
    pub scale: f32,
    /// Person detector ONNX (models/nanodet/nanodet.onnx, or BlazePose's
    /// models/detector/pose_detection.onnx): find and track people instead of using `box` or
    /// the whole frame.
    pub detector: Option<PathBuf>,
    /// The longer sides of NanoDet's inputs, pixels (multiples of 32): it runs at each.
    pub detector_sizes: Vec<usize>,
    /// Least NanoDet score of a detected person.
    pub min_score: f32,
    /// A frame this different from the last is a hard cut: every track ends (0: off).
    pub cut_threshold: f32,
    /// Run the detector every this many frames; the tracker predicts in between.
    pub detect_every: u32,
    /// Most people reported per frame, and whom to keep beyond that.
    pub max_people: usize,
    pub keep: Keep,
    /// Frames a track survives without a detection.
    pub max_age: u32,
    /// Missed detector runs in a row a person stays reported (as predicted).
    pub max_coast: u32,
    /// Consecutive detections before a new person is reported.
    pub min_hits: u32,
    /// Least IoU between a detection and a track's predicted box.
    pub iou_threshold: f32,
}

impl Default for RawPerson {
    fn default() -> Self {
        let t = TrackerSettings::default();
        let d = DetectorSettings::default();
        RawPerson {
            bbox: None,
            scale: 1.1,
            detector: None,
            detector_sizes: d.sizes.clone(),
            min_score: d.min_score,
            cut_threshold: 0.1,
            detect_every: 1,
            max_people: t.max_people,
            keep: t.keep,
            max_age: t.max_age,
            max_coast: t.max_coast,
            min_hits: t.min_hits,
            iou_threshold: t.iou_threshold,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawModel {
    /// Directory made by `models/run convert.py`.
    pub dir: Option<PathBuf>,
    /// Use backbone.int8.onnx.
    pub int8: bool,
    /// Run the float graphs in f16: native on ARMv8.2 cores (Pi 5, Jetson Orin), emulated and
    /// slow elsewhere.
    pub half_floats: bool,
    /// Threads for the models' matrix products; default 1 (the inference thread alone).
    pub threads: Option<usize>,
    /// Where the graphs run: "cpu" (default), "cuda" or "auto".
    pub device: Option<String>,
    /// The user's SMPL model (.npz): adds 24 posed joints per person to the messages.
    pub smpl_file: Option<PathBuf>,
    /// Removed (a test hook, in config.example.toml until 0.1): read only to say so, so that a
    /// config copied from that example still starts.
    pub extra_delay_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMqtt {
    pub host: String,
    /// Default: 1883, or 8883 with `tls`.
    pub port: Option<u16>,
    /// Topics are `<prefix>/<device_id>/pose|status|stats`.
    pub prefix: String,
    /// QoS of pose messages: 0, 1 or 2.
    pub pose_qos: u8,
    pub keep_alive_s: u64,
    /// How long start-up waits for the first connection before giving up.
    pub connect_timeout_s: f64,
    /// Pose messages waiting for the broker; when full the oldest is dropped and counted.
    pub queue: usize,
    /// Seconds a pose message may wait for the broker before it is stale (dropped, counted).
    pub max_age_s: f64,
    /// User name for brokers that require a login.
    pub username: Option<String>,
    /// A file holding the password (its first line), readable by the daemon only.
    pub password_file: Option<PathBuf>,
    /// The name of a systemd credential holding the password (`LoadCredential=NAME:FILE` in
    /// the unit): read from `$CREDENTIALS_DIRECTORY/NAME`.
    pub password_credential: Option<String>,
    /// Connect with TLS, verifying the broker against `ca_file` or the system's CAs.
    pub tls: bool,
    /// The CA (PEM) that signed the broker's certificate: a private or self-signed CA.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM) and its key, for brokers that require one.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// `"5"` (default; falls back to 3.1.1 when the broker refuses it) or `"3.1.1"`.
    pub protocol: String,
    /// MQTT 5: seconds the broker keeps the session after a disconnect; 0: a clean session.
    pub session_expiry_s: u32,
}

impl Default for RawMqtt {
    fn default() -> Self {
        RawMqtt {
            host: "127.0.0.1".into(),
            port: None,
            prefix: "smplcast".into(),
            pose_qos: 0,
            keep_alive_s: 10,
            connect_timeout_s: 10.0,
            queue: 64,
            max_age_s: 2.0,
            username: None,
            password_file: None,
            password_credential: None,
            tls: false,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            protocol: "5".into(),
            session_expiry_s: 0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStats {
    /// Seconds between stats messages; 0: none.
    pub interval_s: f64,
}

impl Default for RawStats {
    fn default() -> Self {
        RawStats { interval_s: 5.0 }
    }
}

/// `[homeassistant]`: Home Assistant MQTT discovery (off by default).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHomeAssistant {
    /// Publish discovery configs so that Home Assistant shows the daemon as a device.
    pub enabled: bool,
    /// Home Assistant's discovery prefix (its MQTT integration's setting).
    pub prefix: String,
}

impl Default for RawHomeAssistant {
    fn default() -> Self {
        RawHomeAssistant {
            enabled: false,
            prefix: crate::mqtt::homeassistant::DEFAULT_PREFIX.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPipeline {
    /// Frames waiting for inference (live sources drop the oldest beyond this).
    pub frame_queue: usize,
    /// How long a stop (SIGTERM, SIGINT) may take to flush what is in flight.
    pub shutdown_timeout_s: f64,
    /// Inference workers (frames in parallel); default: the cores but one, over
    /// `model.threads`.
    pub workers: Option<usize>,
    /// The model's frame rate: "auto" (default), a number of frames per second, or 0 (every
    /// frame).
    pub model_fps: Option<RawRate>,
}

/// `pipeline.model_fps`: a word or a number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawRate {
    Word(String),
    Fps(f64),
}

impl Default for RawPipeline {
    fn default() -> Self {
        RawPipeline { frame_queue: 2, shutdown_timeout_s: 5.0, workers: None, model_fps: None }
    }
}

// ---------------------------------------------------------------------------------------------
// What the daemon runs on.

/// Parses TOML into [`RawConfig`]; the error names the key path and the line.
pub(super) fn parse(text: &str) -> Result<RawConfig, String> {
    let de = toml::Deserializer::parse(text).map_err(|e| located(text, &e, None))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        located(text, e.inner(), (path != ".").then_some(path))
    })
}

/// `key: message (line L)`, with a "did you mean" for unknown keys.
fn located(text: &str, e: &toml::de::Error, key: Option<String>) -> String {
    let mut msg = e.message().trim().to_string();
    if let Some(hint) = did_you_mean(&msg) {
        msg.push_str(&hint);
    }
    let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1));
    let at = line.map_or(String::new(), |l| format!(" (line {l})"));
    match key {
        // An unknown key's path already ends at the key.
        Some(key) => format!("{key}: {msg}{at}"),
        None => format!("{msg}{at}"),
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`": the closest expected name.
fn did_you_mean(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once('`')?;
    let best = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|name| (strsim::damerau_levenshtein(unknown, name), name))
        .min_by_key(|&(distance, _)| distance)?;
    (best.0 <= 2 && best.0 < unknown.len()).then(|| format!("; did you mean `{}`?", best.1))
}
