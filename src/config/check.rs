//! Checking a [`RawConfig`]'s sections: every problem is collected (a [`Checker`]), each naming
//! the key, the bad value and what is expected; the result is the typed configuration.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::raw::{
    RawHomeAssistant, RawModel, RawMqtt, RawPerson, RawPipeline, RawRate, RawSource, RawStats,
};
use super::{Config, ModelConfig, MqttConfig, People, SourceConfig};
use crate::geom::BBox;
use crate::model::Device;
use crate::mqtt::{self, QoS};
use crate::secret::Password;
use crate::source::gst;
use crate::stages::rate::ModelRate;

/// `[source]`.
pub(super) fn source(s: &RawSource, base: &Path, c: &mut Checker) -> SourceConfig {
    let fps = s.fps.unwrap_or(25.0);
    c.check(
        "source.fps",
        &fps,
        fps == 0.0 || (1.0..=1000.0).contains(&fps),
        "0 (unpaced) or 1 to 1000",
    );
    // Which optional keys each kind takes.
    let kinds: [(&str, &[&str]); 6] = [
        ("synthetic", &["fps", "width", "height", "frames"]),
        ("files", &["fps", "path", "loop"]),
        ("v4l2", &["fps", "device", "width", "height", "format", "buffers", "stall_timeout_s"]),
        ("gstreamer", &["pipeline", "stall_timeout_s"]),
        (
            "rtsp",
            &[
                "url",
                "transport",
                "latency_ms",
                "username",
                "password_file",
                "password_credential",
                "stall_timeout_s",
            ],
        ),
        ("video", &["fps", "path", "loop", "stall_timeout_s"]),
    ];
    let set = [
        ("fps", s.fps.is_some()),
        ("width", s.width.is_some()),
        ("height", s.height.is_some()),
        ("frames", s.frames.is_some()),
        ("path", s.path.is_some()),
        ("loop", s.looping.is_some()),
        ("device", s.device.is_some()),
        ("format", s.format.is_some()),
        ("buffers", s.buffers.is_some()),
        ("stall_timeout_s", s.stall_timeout_s.is_some()),
        ("pipeline", s.pipeline.is_some()),
        ("url", s.url.is_some()),
        ("transport", s.transport.is_some()),
        ("latency_ms", s.latency_ms.is_some()),
        ("username", s.username.is_some()),
        ("password_file", s.password_file.is_some()),
        ("password_credential", s.password_credential.is_some()),
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
    let stall = |c: &mut Checker| {
        c.seconds("source.stall_timeout_s", s.stall_timeout_s.unwrap_or(2.0), 0.2, 60.0)
    };
    match s.kind.as_str() {
        "synthetic" => {
            let (width, height) = size(c);
            let frames = s.frames.filter(|&n| n > 0);
            SourceConfig::Synthetic { width, height, fps, frames }
        }
        "v4l2" => {
            if !cfg!(feature = "v4l2") {
                c.problem(
                    "source.kind = \"v4l2\": this smplcast was built without V4L2 support; \
                     rebuild with `cargo build --release --features v4l2` (needs libclang-dev)"
                        .into(),
                );
            }
            let (width, height) = size(c);
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
            SourceConfig::V4l2 {
                device,
                width,
                height,
                fps,
                format,
                buffers,
                stall_timeout: stall(c),
            }
        }
        "files" => {
            let path = existing_path(s, base, c, "directory", Path::is_dir);
            SourceConfig::Files { path, fps, looping: s.looping.unwrap_or(false) }
        }
        "gstreamer" | "rtsp" | "video" => {
            if !cfg!(feature = "gstreamer") {
                c.problem(format!(
                    "source.kind = {:?}: this smplcast was built without GStreamer support; \
                     rebuild with `cargo build --release --features gstreamer` (needs \
                     libgstreamer1.0-dev and libgstreamer-plugins-base1.0-dev)",
                    s.kind
                ));
            }
            let kind = match s.kind.as_str() {
                "gstreamer" => gst::Kind::Pipeline(gst_pipeline(s, c)),
                "rtsp" => rtsp(s, base, c),
                _ => {
                    let path = existing_path(s, base, c, "video file", Path::is_file);
                    c.check(
                        "source.fps",
                        &fps,
                        s.fps.is_none() || fps == 0.0,
                        "absent (the file's own rate) or 0 (unpaced)",
                    );
                    gst::Kind::Video {
                        path,
                        paced: s.fps.is_none(),
                        looping: s.looping.unwrap_or(false),
                    }
                }
            };
            SourceConfig::Gstreamer(gst::Settings { kind, stall_timeout: stall(c) })
        }
        other => {
            c.problem(format!(
                "source.kind = {other:?}: expected \"synthetic\", \"files\", \"v4l2\", \
                 \"gstreamer\", \"rtsp\" or \"video\""
            ));
            SourceConfig::Synthetic { width: 640, height: 480, fps: 0.0, frames: None }
        }
    }
}

/// `source.path`, which must exist as a `what` (checked by `is`).
fn existing_path(
    s: &RawSource,
    base: &Path,
    c: &mut Checker,
    what: &str,
    is: fn(&Path) -> bool,
) -> PathBuf {
    let expected = if what == "directory" {
        "a directory of .png/.jpg frames".to_string()
    } else {
        format!("a {what}")
    };
    let Some(p) = &s.path else {
        c.problem(format!("source.path: missing; expected {expected}"));
        return PathBuf::new();
    };
    let path = base.join(p);
    if !is(&path) {
        let why = path.metadata().err().map_or_else(|| format!("not a {what}"), |e| e.to_string());
        c.problem(format!(
            "source.path = {:?}: {why}; expected {expected}",
            path.display().to_string()
        ));
    }
    path
}

/// `source.pipeline` of `kind = "gstreamer"`: present, and not ending in a sink (the daemon
/// adds its own).
fn gst_pipeline(s: &RawSource, c: &mut Checker) -> String {
    let Some(p) = s.pipeline.clone().filter(|p| !p.trim().is_empty()) else {
        c.problem(
            "source.pipeline: missing; expected a GStreamer pipeline ending in raw video, \
             e.g. \"libcamerasrc ! video/x-raw,width=1280,height=720\""
                .into(),
        );
        return String::new();
    };
    let last = p.trim().trim_end_matches('!').rsplit('!').next().unwrap_or("").trim().to_string();
    let element = last.split_whitespace().next().unwrap_or("");
    if element.ends_with("sink") {
        c.problem(format!(
            "source.pipeline: ends in {element:?}; end it in raw video instead (the daemon adds \
             `videoconvert ! appsink`)"
        ));
    }
    p
}

/// `kind = "rtsp"`: the URL (without a login in it), transport, latency and the login.
fn rtsp(s: &RawSource, base: &Path, c: &mut Checker) -> gst::Kind {
    let url = s.url.clone().unwrap_or_default();
    if s.url.is_none() {
        c.problem("source.url: missing; expected rtsp://host[:port]/path".into());
    } else if !(url.starts_with("rtsp://")
        || url.starts_with("rtsps://")
        || url.starts_with("rtspt://"))
    {
        c.problem(format!(
            "source.url = {:?}: expected rtsp://host[:port]/path (or rtsps://, rtspt://)",
            gst::launch::redact(&url)
        ));
    } else if gst::launch::redact(&url) != url {
        c.problem(format!(
            "source.url = {:?}: has a login in it; put the user in source.username and the \
             password in source.password_file or source.password_credential, so that it is \
             never written in a config or a log",
            gst::launch::redact(&url)
        ));
    }
    let transport = s.transport.as_deref().unwrap_or("tcp");
    c.check(
        "source.transport",
        &transport,
        ["tcp", "udp"].contains(&transport),
        "\"tcp\" or \"udp\"",
    );
    let latency_ms = s.latency_ms.unwrap_or(200);
    c.check("source.latency_ms", &latency_ms, latency_ms <= 10_000, "0 to 10000");
    let password =
        secret("source", s.password_file.as_ref(), s.password_credential.as_ref(), base, c);
    let login = match (s.username.clone(), password) {
        (Some(user), Some(password)) => Some(gst::Login { user, password }),
        (Some(user), None) => Some(gst::Login { user, password: Password::default() }),
        (None, Some(_)) => {
            let key = password_key(s.password_file.is_some(), "source");
            c.problem(format!("{key}: a password needs source.username too"));
            None
        }
        (None, None) => None,
    };
    gst::Kind::Rtsp { url, tcp: transport == "tcp", latency_ms, login }
}

/// `[person]`: how people are found, and the crop scale.
pub(super) fn person(p: &RawPerson, base: &Path, c: &mut Checker) -> (People, f32) {
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
    (people, p.scale)
}

/// `[model]`.
pub(super) fn model(m: &RawModel, base: &Path, c: &mut Checker) -> ModelConfig {
    let dir = match &m.dir {
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
                "model.dir: missing; expected the directory made by `models/run convert.py`".into(),
            );
            PathBuf::new()
        }
    };
    if m.extra_delay_ms.is_some() {
        tracing::warn!("[model] extra_delay_ms is no longer read (it was a test hook): remove it.");
    }
    let threads = m.threads.unwrap_or(1);
    c.check("model.threads", &threads, (1..=64).contains(&threads), "1 to 64");
    let device = match m.device.as_deref() {
        None | Some("cpu") => Device::Cpu,
        Some("auto") => Device::Auto,
        // A build without CUDA cannot honour it: said here, so that `check-config` says it too.
        Some("cuda") if !crate::model::device::CUDA_BUILT => {
            use crate::model::device::{NOT_BUILT, OTHERWISE};
            c.problem(format!("model.device = \"cuda\": {NOT_BUILT}. {OTHERWISE}"));
            Device::Cpu
        }
        Some("cuda") => Device::Cuda,
        Some(other) => {
            c.problem(format!("model.device = {other:?}: expected \"cpu\", \"cuda\" or \"auto\""));
            Device::Cpu
        }
    };
    ModelConfig {
        dir,
        int8: m.int8,
        half_floats: m.half_floats,
        threads,
        device,
        smpl_file: m.smpl_file.as_ref().map(|f| base.join(f)),
    }
}

/// `[mqtt]`.
pub(super) fn mqtt(m: &RawMqtt, device_id: &str, base: &Path, c: &mut Checker) -> MqttConfig {
    let broker = broker_of(m, base, c);
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
    MqttConfig {
        settings: mqtt::Settings {
            broker,
            prefix: m.prefix.clone(),
            device_id: device_id.to_string(),
            pose_qos,
            client_cap: m.queue,
            max_age,
            discovery: Vec::new(),
        },
        connect_timeout,
        queue: m.queue,
    }
}

/// `[stats]`: the report interval, `None` for no reports.
pub(super) fn stats(s: &RawStats, c: &mut Checker) -> Option<Duration> {
    let interval = s.interval_s;
    if interval == 0.0 {
        None
    } else {
        Some(c.seconds("stats.interval_s", interval, 0.1, 3600.0))
    }
}

/// `[homeassistant]`: `None` unless enabled. Discovery needs the stats reports its sensors
/// read, and a prefix that is topic levels without wildcards.
pub(super) fn homeassistant(
    h: &RawHomeAssistant,
    stats_interval: Option<Duration>,
    c: &mut Checker,
) -> Option<mqtt::homeassistant::Settings> {
    if !h.enabled {
        return None;
    }
    if stats_interval.is_none() {
        c.problem(
            "homeassistant.enabled = true: needs stats, but [stats] interval_s = 0 turns them \
             off (Home Assistant's sensors read the stats topic); set [stats] interval_s to \
             0.1 to 3600 seconds (5 by default), or homeassistant.enabled = false"
                .into(),
        );
    }
    if h.prefix.is_empty() || h.prefix.starts_with('/') || h.prefix.ends_with('/') {
        c.problem(format!(
            "homeassistant.prefix = {:?}: expected topic levels without leading or trailing '/' \
             (Home Assistant's discovery prefix, \"homeassistant\" by default)",
            h.prefix
        ));
    } else {
        for level in h.prefix.split('/') {
            c.check(
                "homeassistant.prefix",
                &level,
                !level.is_empty() && !level.contains(['#', '+', '\0']),
                "MQTT topic levels without '#', '+' or empty levels (Home Assistant's discovery \
                 prefix, \"homeassistant\" by default)",
            );
        }
    }
    Some(mqtt::homeassistant::Settings { prefix: h.prefix.clone() })
}

/// `[pipeline]`: the frame queue and the shutdown deadline.
pub(super) fn pipeline(
    p: &RawPipeline,
    threads: usize,
    c: &mut Checker,
) -> (usize, Duration, usize, ModelRate) {
    let q = p.frame_queue;
    c.check("pipeline.frame_queue", &q, (1..=64).contains(&q), "1 to 64 frames");
    let shutdown_timeout =
        c.seconds("pipeline.shutdown_timeout_s", p.shutdown_timeout_s, 0.5, 300.0);
    let workers = p.workers.unwrap_or_else(|| super::default_workers(threads));
    c.check("pipeline.workers", &workers, (1..=64).contains(&workers), "1 to 64");
    let expected = "\"auto\", 0 (every frame) or 1 to 1000 frames per second";
    let rate = match &p.model_fps {
        None => ModelRate::Auto,
        Some(RawRate::Word(w)) if w == "auto" => ModelRate::Auto,
        Some(RawRate::Fps(f)) if *f == 0.0 => ModelRate::Every,
        Some(RawRate::Fps(f)) if (1.0..=1000.0).contains(f) => ModelRate::At(*f),
        Some(RawRate::Word(w)) => {
            c.problem(format!("pipeline.model_fps = {w:?}: expected {expected}"));
            ModelRate::Auto
        }
        Some(RawRate::Fps(f)) => {
            c.problem(format!("pipeline.model_fps = {f}: expected {expected}"));
            ModelRate::Auto
        }
    };
    (q, shutdown_timeout, workers, rate)
}

/// Collects problems.
#[derive(Default)]
pub(super) struct Checker {
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
    let protocol = mqtt::Protocol::parse(&m.protocol);
    c.check("mqtt.protocol", &m.protocol, protocol.is_some(), "\"5\" or \"3.1.1\"");
    let protocol = protocol.unwrap_or_default();
    let session_expiry = (m.session_expiry_s > 0).then_some(m.session_expiry_s);
    if session_expiry.is_some() && protocol == mqtt::Protocol::V311 {
        c.problem(format!(
            "mqtt.session_expiry_s = {}: needs mqtt.protocol = \"5\" (MQTT 3.1.1 has no session \
             expiry); set it to 0, or the protocol to \"5\"",
            m.session_expiry_s
        ));
    }
    mqtt::Broker {
        host: m.host.clone(),
        port,
        keep_alive: Duration::from_secs(m.keep_alive_s),
        login: login(m, base, c),
        tls: tls(m, base, c),
        protocol,
        session_expiry,
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
    let password =
        secret("mqtt", m.password_file.as_ref(), m.password_credential.as_ref(), base, c);
    let Some(username) = m.username.clone() else {
        if password.is_some() {
            c.problem(format!(
                "{}: a password needs mqtt.username too",
                password_key(m.password_file.is_some(), "mqtt")
            ));
        }
        return None;
    };
    Some(mqtt::Login { username, password: password.unwrap_or_default() })
}

/// The key a password came from.
fn password_key(from_file: bool, section: &str) -> String {
    format!("{section}.{}", if from_file { "password_file" } else { "password_credential" })
}

/// A password from `SECTION.password_file` (relative to the config) or
/// `SECTION.password_credential` (a systemd credential): the first line. Problems name the key
/// and the file, never the password.
fn secret(
    section: &str,
    file: Option<&PathBuf>,
    credential: Option<&String>,
    base: &Path,
    c: &mut Checker,
) -> Option<Password> {
    let (key, path) = match (file, credential) {
        (Some(_), Some(_)) => {
            c.problem(format!(
                "{section}.password_file and {section}.password_credential: set one, not both"
            ));
            return None;
        }
        (Some(f), None) => (format!("{section}.password_file"), base.join(f)),
        (None, Some(name)) => match std::env::var_os("CREDENTIALS_DIRECTORY") {
            Some(dir) => (format!("{section}.password_credential"), Path::new(&dir).join(name)),
            None => {
                c.problem(format!(
                    "{section}.password_credential = {name:?}: $CREDENTIALS_DIRECTORY is not \
                     set; expected the daemon to run under systemd with \
                     LoadCredential={name}:FILE (or use {section}.password_file)"
                ));
                return None;
            }
        },
        (None, None) => return None,
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
            Some(Password(password))
        }
        Err(e) => {
            c.problem(format!(
                "{key}: cannot read {:?} ({e}); expected a file with the password, readable \
                 by the daemon",
                path.display().to_string()
            ));
            None
        }
    }
}

impl Checker {
    pub(super) fn problem(&mut self, p: String) {
        self.problems.push(p);
    }

    pub(super) fn check<T: std::fmt::Debug>(
        &mut self,
        key: &str,
        value: &T,
        ok: bool,
        expected: &str,
    ) {
        if !ok {
            self.problem(format!("{key} = {value:?}: expected {expected}"));
        }
    }

    /// A duration in seconds within `min..=max`.
    pub(super) fn seconds(&mut self, key: &str, v: f64, min: f64, max: f64) -> Duration {
        self.check(key, &v, (min..=max).contains(&v), &format!("{min} to {max} seconds"));
        Duration::from_secs_f64(v.clamp(min, max))
    }

    /// One MQTT topic level: no wildcards, separators or spaces.
    pub(super) fn topic_level(&mut self, key: &str, level: &str) {
        let ok = !level.is_empty()
            && level.len() <= 64
            && level.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch));
        self.check(key, &level, ok, "1 to 64 of A-Z a-z 0-9 - _ . (an MQTT topic level)");
    }

    pub(super) fn finish(self, config: Config) -> Result<Config, Vec<String>> {
        if self.problems.is_empty() {
            Ok(config)
        } else {
            Err(self.problems)
        }
    }
}
