//! The daemon's configuration: one TOML file (config.example.toml documents every key).
//!
//! [`RawConfig`] is what serde reads (unknown keys refused, defaults from `Default`);
//! [`Config::from_raw`] checks every field at once and reports every problem, each naming the
//! key, the bad value and what is expected. After that no code re-validates configuration.
//! Relative paths are taken relative to the config file's directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::detect::nanodet::Settings as DetectorSettings;
use crate::detect::track::Settings as TrackerSettings;
use crate::model::Device;
use crate::mqtt::{self, QoS};
use crate::stages::rate::ModelRate;

mod check;
mod raw;

pub use check::broker;
use check::Checker;
use raw::parse;
pub use raw::{
    RawConfig, RawHomeAssistant, RawModel, RawMqtt, RawPerson, RawPipeline, RawSource, RawStats,
};

/// A configuration that cannot be used: the file and every problem found.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}", file.display(), problems.join("\n  "))]
pub struct Error {
    pub file: PathBuf,
    /// One line per problem: `key = value: expected …`.
    pub problems: Vec<String>,
}

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
    /// `[homeassistant]`: `Some` when enabled (then `mqtt` and `stats_interval` are `Some`).
    pub homeassistant: Option<mqtt::homeassistant::Settings>,
    pub frame_queue: usize,
    pub shutdown_timeout: Duration,
    /// Inference workers: frames inferred in parallel ([`default_workers`] unless set).
    pub workers: usize,
    /// Which camera frames the model gets (`pipeline.model_fps`).
    pub model_rate: ModelRate,
    /// `smplcast run --save-crops DIR --save-crops-max N`: a sample of the person crops.
    pub save_crops: Option<(PathBuf, usize)>,
}

/// `pipeline.workers` when it is not set: the cores but one (capture, finding people and post
/// share the last), over the `model.threads` each worker's matrix products use; at least 1, at
/// most 8. A 2-core machine gets 1, a 4-core Pi 3, a 6-core Jetson Orin Nano 5.
pub fn default_workers(threads: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    (cores.saturating_sub(1) / threads.max(1)).clamp(1, 8)
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
    /// `gstreamer`, `rtsp` and `video` (feature `gstreamer`).
    Gstreamer(crate::source::gst::Settings),
}

#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub dir: PathBuf,
    pub int8: bool,
    /// The float graphs in f16 (tract's `f32_to_f16`); the int8 backbone keeps its integer convs.
    pub half_floats: bool,
    /// Threads for the models' matrix products (1: the inference thread alone).
    pub threads: usize,
    /// Where the graphs run (`model.device`); decided at start-up by `model::device::select`.
    pub device: Device,
    /// SMPL model file for joints; `None`: messages carry no joints.
    pub smpl_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct MqttConfig {
    pub settings: mqtt::Settings,
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
        broker: Option<mqtt::Broker>,
    ) -> Config {
        let workers = default_workers(model.threads);
        let mqtt = broker.map(|broker| MqttConfig {
            settings: mqtt::Settings {
                broker,
                prefix: "smplcast".into(),
                device_id: device.to_string(),
                pose_qos: QoS::AtMostOnce,
                client_cap: 64,
                max_age: Duration::from_secs(2),
                discovery: Vec::new(),
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
            homeassistant: None,
            frame_queue: 2,
            shutdown_timeout: Duration::from_secs(5),
            workers,
            model_rate: ModelRate::Auto,
            save_crops: None,
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
        let source = check::source(&raw.source, base, &mut c);
        let (people, crop_scale) = check::person(&raw.person, base, &mut c);
        let model = check::model(&raw.model, base, &mut c);
        let mut mqtt = check::mqtt(&raw.mqtt, &device_id, base, &mut c);
        let stats_interval = check::stats(&raw.stats, &mut c);
        let homeassistant = check::homeassistant(&raw.homeassistant, stats_interval, &mut c);
        // Home Assistant's discovery configs: published by the publisher on every connection.
        if let (Some(ha), Some(interval)) = (&homeassistant, stats_interval) {
            let discovery = mqtt::homeassistant::discovery(&mqtt.settings, ha, interval);
            mqtt.settings.discovery = discovery;
        }
        let (frame_queue, shutdown_timeout, workers, model_rate) =
            check::pipeline(&raw.pipeline, model.threads, &mut c);
        c.finish(Config {
            device_id,
            source,
            people,
            crop_scale,
            model,
            mqtt: Some(mqtt),
            stats_interval,
            homeassistant,
            frame_queue,
            shutdown_timeout,
            workers,
            model_rate,
            save_crops: None,
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

    /// A config copied from the old example (it set the removed test hook to 0) still starts,
    /// and `pipeline.workers` is checked.
    #[test]
    fn the_removed_extra_delay_key_is_accepted_and_workers_are_checked() {
        let old = MODEL.replace("[model]\n", "[model]\nextra_delay_ms = 0\n");
        assert!(old.contains("extra_delay_ms"), "{old}");
        assert!(check(&old).is_ok());
        let c = check(&format!("[pipeline]\nworkers = 3\n{MODEL}")).unwrap();
        assert_eq!(c.workers, 3);
        assert!((1..=8).contains(&check(MODEL).unwrap().workers));
        let err = check(&format!("[pipeline]\nworkers = 0\n{MODEL}")).unwrap_err();
        assert!(err.contains("pipeline.workers = 0: expected 1 to 64"), "{err}");
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
                "source.kind = \"camera\": expected \"synthetic\", \"files\", \"v4l2\", \"gstreamer\", \"rtsp\" or \"video\"",
            ),
            ("[source]\nkind = \"gstreamer\"\n", "source.pipeline: missing; expected a GStreamer pipeline"),
            ("[source]\nkind = \"gstreamer\"\npipeline = \"videotestsrc ! autovideosink\"\n", "source.pipeline: ends in \"autovideosink\"; end it in raw video"),
            ("[source]\nkind = \"gstreamer\"\npipeline = \"videotestsrc\"\nfps = 5\n", "source.fps: not used by kind = \"gstreamer\""),
            ("[source]\nkind = \"rtsp\"\n", "source.url: missing; expected rtsp://host[:port]/path"),
            ("[source]\nkind = \"rtsp\"\nurl = \"http://cam/x\"\n", "source.url = \"http://cam/x\": expected rtsp://"),
            ("[source]\nkind = \"rtsp\"\nurl = \"rtsp://admin:hunter2@cam/x\"\n", "source.url = \"rtsp://cam/x\": has a login in it; put the user in source.username"),
            ("[source]\nkind = \"rtsp\"\nurl = \"rtsp://cam/x\"\ntransport = \"quic\"\n", "source.transport = \"quic\": expected \"tcp\" or \"udp\""),
            ("[source]\nkind = \"rtsp\"\nurl = \"rtsp://cam/x\"\npassword_file = \"Cargo.toml\"\n", "source.password_file: a password needs source.username too"),
            ("[source]\nkind = \"rtsp\"\nurl = \"rtsp://cam/x\"\nusername = \"u\"\npassword_credential = \"cam\"\n", "source.password_credential = \"cam\": $CREDENTIALS_DIRECTORY is not set"),
            ("[source]\nkind = \"video\"\n", "source.path: missing; expected a video file"),
            ("[source]\nkind = \"video\"\npath = \"src\"\n", "source.path = "),
            ("[source]\nkind = \"video\"\npath = \"Cargo.toml\"\nfps = 30\n", "source.fps = 30.0: expected absent (the file's own rate) or 0 (unpaced)"),
            ("[source]\nkind = \"files\"\n", "source.path: missing"),
            ("[source]\nkind = \"files\"\npath = \"nowhere\"\n", "source.path = "),
            ("[source]\npath = \"x\"\n", "source.path: not used by kind = \"synthetic\" (only by kind = \"files\" or \"video\")"),
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
            ("[mqtt]\nprotocol = \"3\"\n", "mqtt.protocol = \"3\": expected \"5\" or \"3.1.1\""),
            (
                "[mqtt]\nprotocol = \"3.1.1\"\nsession_expiry_s = 60\n",
                "mqtt.session_expiry_s = 60: needs mqtt.protocol = \"5\"",
            ),
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

    /// `[homeassistant]` is off by default; on, it needs stats, and its prefix is checked.
    #[test]
    fn home_assistant_discovery_needs_stats_and_a_topic_prefix() {
        assert_eq!(check(MODEL).unwrap().homeassistant, None);
        let on = check(&format!("[homeassistant]\nenabled = true\n{MODEL}")).unwrap();
        let settings = on.homeassistant.unwrap();
        assert_eq!(settings.prefix, "homeassistant");
        assert_eq!(on.stats_interval, Some(Duration::from_secs(5)));
        let custom = "[homeassistant]\nenabled = true\nprefix = \"ha/discovery\"\n";
        let c = check(&format!("{custom}{MODEL}")).unwrap();
        assert_eq!(c.homeassistant.unwrap().prefix, "ha/discovery");
        // Off, the prefix is not checked.
        let off = check(&format!("[homeassistant]\nprefix = \"\"\n{MODEL}")).unwrap();
        assert_eq!(off.homeassistant, None);
        let cases = [
            (
                "[stats]\ninterval_s = 0\n[homeassistant]\nenabled = true\n",
                "homeassistant.enabled = true: needs stats, but [stats] interval_s = 0 turns \
                 them off (Home Assistant's sensors read the stats topic); set [stats] \
                 interval_s to 0.1 to 3600 seconds",
            ),
            (
                "[homeassistant]\nenabled = true\nprefix = \"\"\n",
                "homeassistant.prefix = \"\": expected topic levels without leading or trailing",
            ),
            (
                "[homeassistant]\nenabled = true\nprefix = \"ha/#\"\n",
                "homeassistant.prefix = \"#\": expected MQTT topic levels without '#', '+'",
            ),
            (
                "[homeassistant]\nenabled = true\nprefix = \"h+a\"\n",
                "homeassistant.prefix = \"h+a\": expected MQTT topic levels without '#', '+'",
            ),
            (
                "[homeassistant]\nenabled = true\nprefix = \"homeassistant/\"\n",
                "homeassistant.prefix = \"homeassistant/\": expected topic levels without",
            ),
            ("[homeassistant]\nenable = true\n", "did you mean `enabled`?"),
        ];
        for (text, want) in cases {
            let text = format!("{text}{MODEL}");
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
