//! The daemon's configuration: one TOML file (config.example.toml documents every key).
//!
//! [`RawConfig`] is what serde reads (unknown keys refused, defaults from `Default`);
//! [`Config::from_raw`] checks every field at once and reports every problem, each naming the
//! key, the bad value and what is expected. After that no code re-validates configuration.
//! Relative paths are taken relative to the config file's directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::detect::nanodet::Settings as DetectorSettings;
use crate::detect::track::{Keep, Settings as TrackerSettings};
use crate::geom::BBox;
use crate::mqtt::{self, publish, QoS};

/// A configuration that cannot be used: the file and every problem found.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}", file.display(), problems.join("\n  "))]
pub struct Error {
    pub file: PathBuf,
    /// One line per problem: `key = value: expected …`.
    pub problems: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// What the file says.

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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSource {
    /// `synthetic` or `files`.
    pub kind: String,
    /// Frames per second; 0: unpaced (as fast as the pipeline takes them, nothing dropped).
    pub fps: f64,
    /// synthetic: frame size.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// synthetic: stop after this many frames (0 or absent: never).
    pub frames: Option<u64>,
    /// files: directory of .png/.jpg images, replayed in name order.
    pub path: Option<PathBuf>,
    /// files: start again after the last image.
    #[serde(rename = "loop")]
    pub looping: Option<bool>,
    /// v4l2: device path or stable link (default /dev/video0).
    pub device: Option<PathBuf>,
    /// v4l2: FourCC or "auto".
    pub format: Option<String>,
    /// v4l2: mmap buffers.
    pub buffers: Option<u32>,
    /// v4l2: seconds without a frame before the camera counts as lost.
    pub stall_timeout_s: Option<f64>,
}

impl Default for RawSource {
    fn default() -> Self {
        RawSource {
            kind: "synthetic".into(),
            fps: 25.0,
            width: None,
            height: None,
            frames: None,
            path: None,
            looping: None,
            device: None,
            format: None,
            buffers: None,
            stall_timeout_s: None,
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
    /// The user's SMPL model (.npz): adds 24 posed joints per person to the messages.
    pub smpl_file: Option<PathBuf>,
    /// Test hook: sleep this long per frame in inference, to make the model slower than the
    /// source. 0 in production.
    pub extra_delay_ms: u64,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPipeline {
    /// Frames waiting for inference (live sources drop the oldest beyond this).
    pub frame_queue: usize,
    /// How long a stop (SIGTERM, SIGINT) may take to flush what is in flight.
    pub shutdown_timeout_s: f64,
}

impl Default for RawPipeline {
    fn default() -> Self {
        RawPipeline { frame_queue: 2, shutdown_timeout_s: 5.0 }
    }
}

// ---------------------------------------------------------------------------------------------
// What the daemon runs on.

/// A checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub device_id: String,
    pub source: SourceConfig,
    /// Fixed person box; `None`: the whole frame.
    pub people: People,
    pub crop_scale: f32,
    pub model: ModelConfig,
    /// `None`: publish nothing (the demo's `--no-mqtt`).
    pub mqtt: Option<MqttConfig>,
    /// `None`: no stats messages.
    pub stats_interval: Option<Duration>,
    pub frame_queue: usize,
    pub shutdown_timeout: Duration,
}

/// The person detector the packaged config, the demo's `--detector` and the bench use.
pub const DEFAULT_DETECTOR: &str = "models/nanodet/nanodet.onnx";

pub use crate::detect::finder::People;

impl People {
    /// The detector in `detector` with every `[person]` setting at its default: what a config
    /// file with only `person.detector` gets.
    pub fn detected(detector: PathBuf) -> People {
        People::detected_with(detector, &RawPerson::default())
    }

    /// The detector in `detector` with the `[person]` settings of `p` (checked).
    fn detected_with(detector: PathBuf, p: &RawPerson) -> People {
        People::Detected {
            detector,
            every: p.detect_every,
            detection: DetectorSettings {
                sizes: p.detector_sizes.clone(),
                min_score: p.min_score,
                ..DetectorSettings::default()
            },
            tracker: TrackerSettings {
                max_age: p.max_age,
                max_coast: p.max_coast,
                min_hits: p.min_hits,
                iou_threshold: p.iou_threshold,
                max_people: p.max_people,
                keep: p.keep,
            },
            cut_threshold: p.cut_threshold,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum SourceConfig {
    Synthetic {
        width: u32,
        height: u32,
        fps: f64,
        frames: Option<u64>,
    },
    Files {
        path: PathBuf,
        fps: f64,
        looping: bool,
    },
    V4l2 {
        device: PathBuf,
        width: u32,
        height: u32,
        /// 0: the device's current rate.
        fps: f64,
        /// FourCC; `None`: the first readable one the device offers.
        format: Option<String>,
        buffers: u32,
        stall_timeout: Duration,
    },
}

#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub dir: PathBuf,
    pub int8: bool,
    /// The float graphs in f16 (tract's `f32_to_f16`); the int8 backbone keeps its integer convs.
    pub half_floats: bool,
    /// Threads for the models' matrix products (1: the inference thread alone).
    pub threads: usize,
    pub extra_delay: Duration,
    /// SMPL model file for joints; `None`: messages carry no joints.
    pub smpl_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct MqttConfig {
    pub settings: publish::Settings,
    /// How long start-up waits for the broker; `None`: until it answers.
    pub connect_timeout: Option<Duration>,
    pub queue: usize,
}

/// Where a default install keeps its config; systemd's unit passes it explicitly.
pub const DEFAULT_PATH: &str = "/etc/smplcast/config.toml";

impl Config {
    /// A built-in configuration (the demo's, the bench's): the daemon's defaults around the
    /// given source, model and person finder, publishing to `broker` (QoS 0) or nowhere.
    pub fn builtin(
        device: &str,
        source: SourceConfig,
        model: ModelConfig,
        people: People,
        broker: Option<(String, u16)>,
    ) -> Config {
        let mqtt = broker.map(|(host, port)| MqttConfig {
            settings: publish::Settings {
                broker: mqtt::Broker::plain(host, port),
                prefix: "smplcast".into(),
                device_id: device.to_string(),
                pose_qos: QoS::AtMostOnce,
                client_cap: 64,
                max_age: Duration::from_secs(2),
            },
            connect_timeout: Some(Duration::from_secs(5)),
            queue: 64,
        });
        Config {
            device_id: device.to_string(),
            source,
            people,
            crop_scale: 1.1,
            model,
            mqtt,
            stats_interval: None,
            frame_queue: 2,
            shutdown_timeout: Duration::from_secs(5),
        }
    }

    /// Reads and checks `file`.
    ///
    /// # Errors
    /// [`Error`] naming the file and every problem: unreadable, not TOML, an unknown key (with
    /// the closest known one), a wrong type or a value out of range.
    pub fn load(file: &Path) -> Result<Config, Error> {
        let fail = |p: String| Error { file: file.to_path_buf(), problems: vec![p] };
        let text = std::fs::read_to_string(file)
            .map_err(|e| fail(format!("cannot read the config file: {e}")))?;
        let base = file.parent().unwrap_or(Path::new("."));
        Config::from_toml(&text, base)
            .map_err(|problems| Error { file: file.to_path_buf(), problems })
    }

    /// Parses and checks TOML text; relative paths are resolved against `base`.
    ///
    /// # Errors
    /// Every problem found, one line each (a TOML error is one problem).
    pub fn from_toml(text: &str, base: &Path) -> Result<Config, Vec<String>> {
        let raw = parse(text).map_err(|p| vec![p])?;
        Config::from_raw(raw, base)
    }

    /// Checks `raw`; relative paths are resolved against `base`.
    ///
    /// # Errors
    /// Every problem found, one line each.
    pub fn from_raw(raw: RawConfig, base: &Path) -> Result<Config, Vec<String>> {
        let mut c = Checker::default();
        let device_id = raw.device_id.unwrap_or_else(|| "cam0".into());
        c.topic_level("device_id", &device_id);

        let s = &raw.source;
        c.check(
            "source.fps",
            &s.fps,
            s.fps == 0.0 || (1.0..=1000.0).contains(&s.fps),
            "0 (unpaced) or 1 to 1000",
        );
        // Which optional keys each kind takes.
        let kinds: [(&str, &[&str]); 3] = [
            ("synthetic", &["width", "height", "frames"]),
            ("files", &["path", "loop"]),
            ("v4l2", &["device", "width", "height", "format", "buffers", "stall_timeout_s"]),
        ];
        let set = [
            ("width", s.width.is_some()),
            ("height", s.height.is_some()),
            ("frames", s.frames.is_some()),
            ("path", s.path.is_some()),
            ("loop", s.looping.is_some()),
            ("device", s.device.is_some()),
            ("format", s.format.is_some()),
            ("buffers", s.buffers.is_some()),
            ("stall_timeout_s", s.stall_timeout_s.is_some()),
        ];
        if let Some((_, takes)) = kinds.iter().find(|(k, _)| *k == s.kind) {
            for (key, _) in set.iter().filter(|(key, on)| *on && !takes.contains(key)) {
                let users: Vec<String> = kinds
                    .iter()
                    .filter(|(_, t)| t.contains(key))
                    .map(|(k, _)| format!("\"{k}\""))
                    .collect();
                c.problem(format!(
                    "source.{key}: not used by kind = \"{}\" (only by kind = {}); remove it",
                    s.kind,
                    users.join(" or ")
                ));
            }
        }
        let size = |c: &mut Checker| {
            let (width, height) = (s.width.unwrap_or(640), s.height.unwrap_or(480));
            for (key, v) in [("source.width", width), ("source.height", height)] {
                c.check(key, &v, (16..=8192).contains(&v), "16 to 8192 pixels");
            }
            (width, height)
        };
        let source = match s.kind.as_str() {
            "synthetic" => {
                let (width, height) = size(&mut c);
                let frames = s.frames.filter(|&n| n > 0);
                SourceConfig::Synthetic { width, height, fps: s.fps, frames }
            }
            "v4l2" => {
                if !cfg!(feature = "v4l2") {
                    c.problem(
                        "source.kind = \"v4l2\": this smplcast was built without V4L2 support; \
                         rebuild with `cargo build --release --features v4l2` (needs libclang-dev)"
                            .into(),
                    );
                }
                let (width, height) = size(&mut c);
                let device = s.device.clone().unwrap_or_else(|| PathBuf::from("/dev/video0"));
                let format = s.format.clone().filter(|f| f != "auto");
                if let Some(f) = &format {
                    c.check(
                        "source.format",
                        f,
                        ["YUYV", "NV12", "RGB3", "GREY", "MJPG"].contains(&f.as_str()),
                        "\"auto\", \"YUYV\", \"MJPG\", \"NV12\", \"GREY\" or \"RGB3\"",
                    );
                }
                let buffers = s.buffers.unwrap_or(4);
                c.check("source.buffers", &buffers, (2..=32).contains(&buffers), "2 to 32");
                let stall = c.seconds(
                    "source.stall_timeout_s",
                    s.stall_timeout_s.unwrap_or(2.0),
                    0.2,
                    60.0,
                );
                SourceConfig::V4l2 {
                    device,
                    width,
                    height,
                    fps: s.fps,
                    format,
                    buffers,
                    stall_timeout: stall,
                }
            }
            "files" => {
                let path = match &s.path {
                    Some(p) => base.join(p),
                    None => {
                        c.problem(
                            "source.path: missing; expected the directory of .png/.jpg frames"
                                .into(),
                        );
                        PathBuf::new()
                    }
                };
                if s.path.is_some() && !path.is_dir() {
                    c.problem(format!(
                        "source.path = {:?}: not a directory ({}); expected a directory of \
                         .png/.jpg frames",
                        path.display().to_string(),
                        path.metadata().err().map_or("a file".into(), |e| e.to_string())
                    ));
                }
                SourceConfig::Files { path, fps: s.fps, looping: s.looping.unwrap_or(false) }
            }
            other => {
                c.problem(format!(
                    "source.kind = {other:?}: expected \"synthetic\", \"files\" or \"v4l2\""
                ));
                SourceConfig::Synthetic { width: 640, height: 480, fps: 0.0, frames: None }
            }
        };

        let p = &raw.person;
        let person_box = p.bbox.map(|[left, top, width, height]| BBox { left, top, width, height });
        let people = match &p.detector {
            None => People::Region(person_box),
            Some(d) => {
                let detector = base.join(d);
                if p.bbox.is_some() {
                    c.problem("person.box: not used with person.detector (the detector finds the boxes); remove one".into());
                }
                if !detector.is_file() {
                    c.problem(format!(
                        "person.detector = {:?}: no such file; expected the detector ONNX \
                         (models/nanodet/nanodet.onnx)",
                        detector.display().to_string()
                    ));
                }
                c.check(
                    "person.detector_sizes",
                    &p.detector_sizes,
                    (1..=4).contains(&p.detector_sizes.len())
                        && p.detector_sizes
                            .iter()
                            .all(|s| (64..=2048).contains(s) && s.is_multiple_of(32)),
                    "1 to 4 sizes, each 64 to 2048 pixels and a multiple of 32",
                );
                c.check(
                    "person.min_score",
                    &p.min_score,
                    (0.01..=0.99).contains(&p.min_score),
                    "0.01 to 0.99",
                );
                c.check(
                    "person.cut_threshold",
                    &p.cut_threshold,
                    (0.0..=1.0).contains(&p.cut_threshold),
                    "0 (off) to 1",
                );
                c.check(
                    "person.detect_every",
                    &p.detect_every,
                    (1..=30).contains(&p.detect_every),
                    "1 to 30 frames",
                );
                c.check(
                    "person.max_people",
                    &p.max_people,
                    (1..=16).contains(&p.max_people),
                    "1 to 16",
                );
                c.check(
                    "person.max_age",
                    &p.max_age,
                    (1..=300).contains(&p.max_age),
                    "1 to 300 frames",
                );
                c.check(
                    "person.max_coast",
                    &p.max_coast,
                    p.max_coast <= p.max_age,
                    "0 to max_age detector runs",
                );
                c.check(
                    "person.min_hits",
                    &p.min_hits,
                    (1..=30).contains(&p.min_hits),
                    "1 to 30 detections",
                );
                c.check(
                    "person.iou_threshold",
                    &p.iou_threshold,
                    (0.01..=0.99).contains(&p.iou_threshold),
                    "0.01 to 0.99",
                );
                People::detected_with(detector, p)
            }
        };
        if let Some(b) = p.bbox {
            c.check(
                "person.box",
                &b,
                b.iter().all(|v| v.is_finite()) && b[2] >= 1.0 && b[3] >= 1.0,
                "[left, top, width, height] in pixels, width and height ≥ 1",
            );
        }
        c.check(
            "person.scale",
            &p.scale,
            (0.5..=4.0).contains(&p.scale),
            "0.5 to 4 (1.1: the official demo)",
        );

        let dir = match &raw.model.dir {
            Some(d) => {
                let dir = base.join(d);
                if !dir.is_dir() {
                    c.problem(format!(
                        "model.dir = {:?}: not a directory; expected the directory made by \
                         `models/run convert.py` (backbone.onnx, temporal_frame.onnx, \
                         temporal_step.onnx)",
                        dir.display().to_string()
                    ));
                }
                dir
            }
            None => {
                c.problem(
                    "model.dir: missing; expected the directory made by `models/run convert.py`"
                        .into(),
                );
                PathBuf::new()
            }
        };
        let delay = raw.model.extra_delay_ms;
        c.check(
            "model.extra_delay_ms",
            &delay,
            delay <= 10_000,
            "0 to 10000 (a test hook; 0 in production)",
        );
        let threads = raw.model.threads.unwrap_or(1);
        c.check("model.threads", &threads, (1..=64).contains(&threads), "1 to 64");
        let model = ModelConfig {
            dir,
            int8: raw.model.int8,
            half_floats: raw.model.half_floats,
            threads,
            extra_delay: Duration::from_millis(delay),
            smpl_file: raw.model.smpl_file.as_ref().map(|f| base.join(f)),
        };

        let m = &raw.mqtt;
        let broker = broker_of(m, base, &mut c);
        if m.prefix.is_empty() || m.prefix.starts_with('/') || m.prefix.ends_with('/') {
            c.problem(format!(
                "mqtt.prefix = {:?}: expected topic levels without leading or trailing '/'",
                m.prefix
            ));
        } else {
            m.prefix.split('/').for_each(|level| c.topic_level("mqtt.prefix", level));
        }
        let pose_qos = match m.pose_qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            2 => QoS::ExactlyOnce,
            q => {
                c.problem(format!("mqtt.pose_qos = {q}: expected 0, 1 or 2"));
                QoS::AtMostOnce
            }
        };
        let connect_timeout = if m.connect_timeout_s == 0.0 {
            None
        } else {
            Some(c.seconds("mqtt.connect_timeout_s", m.connect_timeout_s, 0.1, 600.0))
        };
        c.check("mqtt.queue", &m.queue, (1..=10_000).contains(&m.queue), "1 to 10000 messages");
        let max_age = c.seconds("mqtt.max_age_s", m.max_age_s, 0.05, 86_400.0);
        let mqtt = MqttConfig {
            settings: publish::Settings {
                broker,
                prefix: m.prefix.clone(),
                device_id: device_id.clone(),
                pose_qos,
                client_cap: m.queue,
                max_age,
            },
            connect_timeout,
            queue: m.queue,
        };

        let interval = raw.stats.interval_s;
        let stats_interval = if interval == 0.0 {
            None
        } else {
            Some(c.seconds("stats.interval_s", interval, 0.1, 3600.0))
        };
        let q = raw.pipeline.frame_queue;
        c.check("pipeline.frame_queue", &q, (1..=64).contains(&q), "1 to 64 frames");
        let shutdown_timeout =
            c.seconds("pipeline.shutdown_timeout_s", raw.pipeline.shutdown_timeout_s, 0.5, 300.0);

        c.finish(Config {
            device_id,
            source,
            people,
            crop_scale: p.scale,
            model,
            mqtt: Some(mqtt),
            stats_interval,
            frame_queue: q,
            shutdown_timeout,
        })
    }

    /// The effective configuration as one line for the start-up log.
    pub fn summary(&self) -> String {
        let mqtt = self.mqtt.as_ref().map_or("off".into(), |m| {
            format!(
                "{}:{} topics {}/{}/…",
                m.settings.broker.host, m.settings.broker.port, m.settings.prefix, self.device_id
            )
        });
        format!(
            "device {} · source {:?} · person {} · model {}{}{} · mqtt {mqtt}",
            self.device_id,
            self.source,
            match &self.people {
                People::Region(None) => "whole frame".into(),
                People::Region(Some(b)) => format!("box {:?}", b.as_array()),
                People::Detected { detector, every, detection, tracker, .. } => format!(
                    "detector {} ({:?} px, score ≥ {}) every {every} frame(s), up to {} ({:?})",
                    detector.display(),
                    detection.sizes,
                    detection.min_score,
                    tracker.max_people,
                    tracker.keep
                ),
            },
            self.model.dir.display(),
            match (self.model.int8, self.model.half_floats) {
                (false, false) => "",
                (true, false) => " (int8)",
                (false, true) => " (f16)",
                (true, true) => " (int8 backbone, f16 head)",
            },
            self.model
                .smpl_file
                .as_ref()
                .map_or(String::new(), |f| format!(" · joints from {}", f.display())),
        )
    }
}

/// Parses TOML into [`RawConfig`]; the error names the key path and the line.
fn parse(text: &str) -> Result<RawConfig, String> {
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

/// Collects problems.
#[derive(Default)]
struct Checker {
    problems: Vec<String>,
}

/// The broker of an `[mqtt]` section (host, port, keep-alive, login, TLS), checked as the
/// daemon checks it: `smplcast sub` builds its own from flags of the same names.
///
/// # Errors
/// Every problem, each naming its key.
pub fn broker(m: &RawMqtt, base: &Path) -> Result<mqtt::Broker, Vec<String>> {
    let mut c = Checker::default();
    let broker = broker_of(m, base, &mut c);
    if c.problems.is_empty() {
        Ok(broker)
    } else {
        Err(c.problems)
    }
}

fn broker_of(m: &RawMqtt, base: &Path, c: &mut Checker) -> mqtt::Broker {
    c.check("mqtt.host", &m.host, !m.host.trim().is_empty(), "a host name or IP address");
    let port = m.port.unwrap_or(if m.tls { 8883 } else { 1883 });
    c.check("mqtt.port", &port, port != 0, "1 to 65535");
    c.check(
        "mqtt.keep_alive_s",
        &m.keep_alive_s,
        (5..=3600).contains(&m.keep_alive_s),
        "5 to 3600",
    );
    mqtt::Broker {
        host: m.host.clone(),
        port,
        keep_alive: Duration::from_secs(m.keep_alive_s),
        login: login(m, base, c),
        tls: tls(m, base, c),
    }
}

/// The TLS client configuration of `[mqtt]`, or `None` for plain TCP.
fn tls(m: &RawMqtt, base: &Path, c: &mut Checker) -> Option<Arc<rustls::ClientConfig>> {
    let resolve = |f: &Option<PathBuf>| f.as_ref().map(|f| base.join(f));
    let files = mqtt::tls::Files {
        ca: resolve(&m.ca_file),
        client_cert: resolve(&m.client_cert_file),
        client_key: resolve(&m.client_key_file),
    };
    if !m.tls {
        if files.ca.is_some() || files.client_cert.is_some() || files.client_key.is_some() {
            c.problem(
                "mqtt.ca_file, client_cert_file and client_key_file need mqtt.tls = true".into(),
            );
        }
        return None;
    }
    mqtt::tls::client_config(&files).map_err(|p| c.problem(p)).ok()
}

/// The broker login of `[mqtt]`: the user name, and the password read from its file or
/// systemd credential. Problems name the key and the file, never the password.
fn login(m: &RawMqtt, base: &Path, c: &mut Checker) -> Option<mqtt::Login> {
    let file = match (&m.password_file, &m.password_credential) {
        (Some(_), Some(_)) => {
            c.problem("mqtt.password_file and mqtt.password_credential: set one, not both".into());
            return None;
        }
        (Some(f), None) => Some(("mqtt.password_file", base.join(f))),
        (None, Some(name)) => match std::env::var_os("CREDENTIALS_DIRECTORY") {
            Some(dir) => Some(("mqtt.password_credential", Path::new(&dir).join(name))),
            None => {
                c.problem(format!(
                    "mqtt.password_credential = {name:?}: $CREDENTIALS_DIRECTORY is not set; \
                     expected the daemon to run under systemd with LoadCredential={name}:FILE \
                     (or use mqtt.password_file)"
                ));
                return None;
            }
        },
        (None, None) => None,
    };
    let Some(username) = m.username.clone() else {
        if let Some((key, _)) = file {
            c.problem(format!("{key}: a password needs mqtt.username too"));
        }
        return None;
    };
    let Some((key, path)) = file else {
        return Some(mqtt::Login { username, password: mqtt::Password::default() });
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let password = text.lines().next().unwrap_or("").to_string();
            if password.is_empty() {
                c.problem(format!(
                    "{key}: {:?} is empty; expected the password on its first line",
                    path.display().to_string()
                ));
            }
            Some(mqtt::Login { username, password: mqtt::Password(password) })
        }
        Err(e) => {
            c.problem(format!(
                "{key}: cannot read {:?} ({e}); expected a file with the broker password, \
                 readable by the daemon",
                path.display().to_string()
            ));
            None
        }
    }
}

impl Checker {
    fn problem(&mut self, p: String) {
        self.problems.push(p);
    }

    fn check<T: std::fmt::Debug>(&mut self, key: &str, value: &T, ok: bool, expected: &str) {
        if !ok {
            self.problem(format!("{key} = {value:?}: expected {expected}"));
        }
    }

    /// A duration in seconds within `min..=max`.
    fn seconds(&mut self, key: &str, v: f64, min: f64, max: f64) -> Duration {
        self.check(key, &v, (min..=max).contains(&v), &format!("{min} to {max} seconds"));
        Duration::from_secs_f64(v.clamp(min, max))
    }

    /// One MQTT topic level: no wildcards, separators or spaces.
    fn topic_level(&mut self, key: &str, level: &str) {
        let ok = !level.is_empty()
            && level.len() <= 64
            && level.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch));
        self.check(key, &level, ok, "1 to 64 of A-Z a-z 0-9 - _ . (an MQTT topic level)");
    }

    fn finish(self, config: Config) -> Result<Config, Vec<String>> {
        if self.problems.is_empty() {
            Ok(config)
        } else {
            Err(self.problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    fn check(text: &str) -> Result<Config, String> {
        let raw = parse(text)?;
        Config::from_raw(raw, root()).map_err(|p| p.join("\n"))
    }

    const MODEL: &str = "[model]\ndir = \"models/fixtures/narrow\"\n";

    #[test]
    fn example_config_is_valid() {
        let c = Config::load(&root().join("config.example.toml")).unwrap();
        assert_eq!(c.device_id, "cam0");
        assert!(c.model.dir.join("backbone.onnx").is_file(), "{:?}", c.model.dir);
    }

    #[test]
    fn defaults_need_only_the_model() {
        let c = check(MODEL).unwrap();
        assert_eq!(
            c.source,
            SourceConfig::Synthetic { width: 640, height: 480, fps: 25.0, frames: None }
        );
        assert_eq!((c.people, c.crop_scale), (People::Region(None), 1.1));
        let m = c.mqtt.unwrap();
        assert_eq!((m.settings.broker.host.as_str(), m.settings.broker.port), ("127.0.0.1", 1883));
        assert_eq!(c.stats_interval, Some(Duration::from_secs(5)));
        assert!(check("").unwrap_err().contains("model.dir: missing"));
        assert!(m.settings.broker.tls.is_none());
    }

    #[test]
    fn tls_defaults_to_port_8883_and_trusts_the_ca_file() {
        let c = check(&format!("[mqtt]\ntls = true\nca_file = \"tests/data/tls/ca.pem\"\n{MODEL}"));
        let m = c.unwrap().mqtt.unwrap();
        assert_eq!(m.settings.broker.port, 8883);
        assert!(m.settings.broker.tls.is_some());
        let explicit = format!(
            "[mqtt]\nport = 1884\ntls = true\nca_file = \"tests/data/tls/ca.pem\"\n{MODEL}"
        );
        assert_eq!(check(&explicit).unwrap().mqtt.unwrap().settings.broker.port, 1884);
    }

    #[test]
    fn errors_name_key_value_and_expectation() {
        let cases = [
            (
                "[source]\nfps = \"fast\"\n",
                "source.fps: invalid type: string \"fast\", expected f64 (line 2)",
            ),
            ("[source]\nfsp = 3\n", "source.fsp: unknown field `fsp`"),
            ("[source]\nfsp = 3\n", "did you mean `fps`?"),
            ("[mqtt]\nport = 70000\n", "mqtt.port: invalid value: integer `70000`, expected u16"),
            ("[source]\nfps = -1.0\n", "source.fps = -1.0: expected 0 (unpaced) or 1 to 1000"),
            (
                "[source]\nkind = \"camera\"\n",
                "source.kind = \"camera\": expected \"synthetic\", \"files\" or \"v4l2\"",
            ),
            ("[source]\nkind = \"files\"\n", "source.path: missing"),
            ("[source]\nkind = \"files\"\npath = \"nowhere\"\n", "source.path = "),
            ("[source]\npath = \"x\"\n", "source.path: not used by kind = \"synthetic\" (only by kind = \"files\")"),
            ("[source]\nkind = \"files\"\npath = \".\"\nwidth = 3\n", "source.width: not used by kind = \"files\" (only by kind = \"synthetic\" or \"v4l2\")"),
            ("[source]\nkind = \"v4l2\"\nformat = \"H264\"\n", "source.format = \"H264\": expected \"auto\", \"YUYV\""),
            ("[source]\nkind = \"v4l2\"\nbuffers = 1\n", "source.buffers = 1: expected 2 to 32"),
            ("[mqtt]\npose_qos = 3\n", "mqtt.pose_qos = 3: expected 0, 1 or 2"),
            ("[mqtt]\nprefix = \"a/+\"\n", "mqtt.prefix = \"+\": expected 1 to 64 of"),
            ("device_id = \"cam 1\"\n", "device_id = \"cam 1\": expected"),
            ("[person]\nbox = [0, 0, 0, 10]\n", "person.box = [0.0, 0.0, 0.0, 10.0]: expected"),
            (
                "[stats]\ninterval_s = 0.01\n",
                "stats.interval_s = 0.01: expected 0.1 to 3600 seconds",
            ),
            ("[model]\ndir = \"nowhere\"\n", "model.dir = "),
            ("[source\n", "(line 1)"),
            ("[model]\ndir = \"models/fixtures/narrow\"\nthreads = 0\n", "model.threads = 0: expected 1 to 64"),
            ("[mqtt]\nmax_age_s = 0\n", "mqtt.max_age_s = 0.0: expected 0.05 to 86400 seconds"),
            ("[mqtt]\npassword_file = \"Cargo.toml\"\n", "mqtt.password_file: a password needs mqtt.username too"),
            ("[mqtt]\nusername = \"u\"\npassword_file = \"nowhere\"\n", "mqtt.password_file: cannot read"),
            (
                "[mqtt]\npassword_file = \"a\"\npassword_credential = \"b\"\n",
                "mqtt.password_file and mqtt.password_credential: set one, not both",
            ),
            ("[mqtt]\nca_file = \"ca.pem\"\n", "mqtt.ca_file, client_cert_file and client_key_file need mqtt.tls = true"),
            ("[mqtt]\ntls = true\nca_file = \"nowhere.pem\"\n", "mqtt.ca_file: cannot read PEM certificates from"),
            ("[mqtt]\ntls = true\nca_file = \"Cargo.toml\"\n", "mqtt.ca_file: \"/"),
            ("[mqtt]\ntls = true\nca_file = \"Cargo.toml\"\n", "holds no certificate; expected PEM"),
            (
                "[mqtt]\ntls = true\nca_file = \"tests/data/tls/ca.pem\"\nclient_cert_file = \"tests/data/tls/ca.pem\"\n",
                "mqtt.client_cert_file and mqtt.client_key_file: set both or neither",
            ),
            (
                "[mqtt]\ntls = true\nca_file = \"tests/data/tls/ca.pem\"\nclient_cert_file = \"tests/data/tls/ca.pem\"\nclient_key_file = \"Cargo.toml\"\n",
                "mqtt.client_key_file: cannot read a PEM private key from",
            ),
        ];
        for (text, want) in cases {
            let text =
                if text.contains("[model]") { text.to_string() } else { format!("{text}{MODEL}") };
            let err = check(&text).expect_err(&text);
            assert!(err.contains(want), "config:\n{text}\nerror:\n{err}\nwanted: {want}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = check("[source]\nfps = -1.0\nwidth = 1\n[mqtt]\nqueue = 0\n").unwrap_err();
        for key in ["source.fps", "source.width", "mqtt.queue", "model.dir"] {
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn load_names_the_file_and_resolves_paths_beside_it() {
        let dir = std::env::temp_dir().join(format!("smplcast-config-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("frames")).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "[source]\nkind = \"files\"\npath = \"frames\"\n[model]\ndir = \".\"\n",
        )
        .unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(
            c.source,
            SourceConfig::Files { path: dir.join("frames"), fps: 25.0, looping: false }
        );
        let err = Config::load(&dir.join("missing.toml")).unwrap_err().to_string();
        assert!(err.contains("missing.toml: cannot read the config file"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
