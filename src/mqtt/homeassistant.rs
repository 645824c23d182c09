//! Home Assistant MQTT discovery (`[homeassistant]`): the retained config messages that make
//! one daemon a Home Assistant device with a sensor per health figure, read from the daemon's
//! own `stats` and `camera` topics (docs/WIRE.md). Pure: [`discovery`] builds the messages,
//! the publisher sends them (retained, QoS 1) on every connection.
//!
//! - Topics: `<ha prefix>/sensor/<node_id>/<object_id>/config`, HA's discovery pattern. HA
//!   allows only `[a-zA-Z0-9_-]` in a node or object id, so [`node_id`] is the MQTT prefix and
//!   the device id with every other character (`.`, `/`) turned into `_`; the state topics keep
//!   the real device id (`.` is valid in MQTT topics).
//! - Sensors: frames in and poses out per second, people per frame and inference ms (means over
//!   each stats interval), frames and messages dropped (totals since start), and the camera's
//!   state (`streaming`, `lost`, `stopped`) with the rest of `camera` as attributes.
//! - Availability: `<prefix>/<device>/status` (`online`, `offline`, the last will). Stats
//!   values expire after three stats intervals without a report (`expire_after`).
//! - No abbreviations (`stat_t` for `state_topic`): the messages are sent once per connection,
//!   and the full names are what tests/homeassistant/validate.py checks against HA's schema.
//! - The camera state is a plain text sensor. HA 2024.3's MQTT sensor schema has no `options`
//!   (its discovery schema drops unknown keys), so `device_class: enum` would come without its
//!   choices; later HA versions take them.

use std::time::Duration;

use serde_json::{json, Map, Value};

/// `[homeassistant]`, when enabled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Home Assistant's discovery prefix (its MQTT integration's setting), without trailing
    /// slash: `homeassistant` by default.
    pub prefix: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { prefix: DEFAULT_PREFIX.into() }
    }
}

/// Home Assistant's default discovery prefix.
pub const DEFAULT_PREFIX: &str = "homeassistant";

/// A sensor read from the stats report.
struct Stat {
    /// The report's key (`telemetry::stats::Report`), also the object id.
    key: &'static str,
    name: &'static str,
    unit: Option<&'static str>,
    device_class: Option<&'static str>,
    /// `measurement` for rates and means, `total_increasing` for totals since start (they
    /// restart at 0 with the daemon, which HA takes as a reset).
    state_class: &'static str,
    precision: Option<u8>,
    icon: Option<&'static str>,
    diagnostic: bool,
}

const STATS: [Stat; 6] = [
    Stat {
        key: "fps_in",
        name: "Frames in",
        unit: Some("fps"),
        device_class: None,
        state_class: "measurement",
        precision: Some(1),
        icon: Some("mdi:camera-iris"),
        diagnostic: false,
    },
    Stat {
        key: "fps_out",
        name: "Poses out",
        unit: Some("msg/s"),
        device_class: None,
        state_class: "measurement",
        precision: Some(1),
        icon: Some("mdi:human-handsup"),
        diagnostic: false,
    },
    Stat {
        key: "people_per_frame",
        name: "People per frame",
        unit: None,
        device_class: None,
        state_class: "measurement",
        precision: Some(2),
        icon: Some("mdi:account-group"),
        diagnostic: false,
    },
    Stat {
        key: "inference_ms",
        name: "Inference time",
        unit: Some("ms"),
        device_class: Some("duration"),
        state_class: "measurement",
        precision: Some(1),
        icon: None,
        diagnostic: true,
    },
    Stat {
        key: "frames_dropped",
        name: "Frames dropped",
        unit: None,
        device_class: None,
        state_class: "total_increasing",
        precision: None,
        icon: Some("mdi:image-remove"),
        diagnostic: true,
    },
    Stat {
        key: "messages_dropped",
        name: "Messages dropped",
        unit: None,
        device_class: None,
        state_class: "total_increasing",
        precision: None,
        icon: Some("mdi:email-remove-outline"),
        diagnostic: true,
    },
];

/// The object id of the camera state sensor; its value is `camera`'s key `state`.
const CAMERA: &str = "camera";

/// The stats report keys the sensors read (each in a `value_template`).
pub const STATS_KEYS: [&str; 6] =
    [STATS[0].key, STATS[1].key, STATS[2].key, STATS[3].key, STATS[4].key, STATS[5].key];

/// `text` with every character HA refuses in a node or object id (`[a-zA-Z0-9_-]` only)
/// turned into `_`.
pub fn sanitise(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// The discovery topics' node id: the MQTT prefix and the device id, sanitised
/// (`smplcast` and `cam.0` give `smplcast_cam_0`), so that daemons of two prefixes differ.
pub fn node_id(mqtt: &super::Settings) -> String {
    sanitise(&format!("{}_{}", mqtt.prefix, mqtt.device_id))
}

/// Seconds after which HA marks a stats sensor unknown: three stats intervals, whole seconds,
/// at least 1.
pub fn expire_after(stats_interval: Duration) -> u64 {
    (stats_interval.as_secs_f64() * 3.0).ceil().max(1.0) as u64
}

/// The retained discovery config messages of one daemon: (topic, JSON payload), one per
/// sensor. Publish each retained at QoS 1 on every connection (HA re-reads them when it
/// restarts). `stats_interval` is the daemon's `[stats] interval_s` (the config refuses
/// `[homeassistant]` without stats).
pub fn discovery(
    mqtt: &super::Settings,
    ha: &Settings,
    stats_interval: Duration,
) -> Vec<(String, Vec<u8>)> {
    let node = node_id(mqtt);
    let device = json!({
        "identifiers": [node.clone()],
        "name": format!("smplcast {}", mqtt.device_id),
        "manufacturer": "smplcast",
        "model": "smplcast pose daemon",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let common = |object: &str, name: &str| -> Map<String, Value> {
        let Value::Object(map) = json!({
            "name": name,
            "unique_id": format!("{node}_{object}"),
            "object_id": format!("{node}_{object}"),
            "availability_topic": mqtt.topic("status"),
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
            "origin": { "name": "smplcast", "sw_version": env!("CARGO_PKG_VERSION") },
        }) else {
            unreachable!("an object literal is an object")
        };
        map
    };
    let topic = |object: &str| format!("{}/sensor/{node}/{object}/config", ha.prefix);
    let mut out = Vec::with_capacity(STATS.len() + 1);
    for s in &STATS {
        let mut map = common(s.key, s.name);
        let mut set = |k: &str, v: Value| {
            map.insert(k.into(), v);
        };
        set("state_topic", mqtt.topic("stats").into());
        set("value_template", format!("{{{{ value_json.{} }}}}", s.key).into());
        set("state_class", s.state_class.into());
        set("expire_after", expire_after(stats_interval).into());
        if let Some(unit) = s.unit {
            set("unit_of_measurement", unit.into());
        }
        if let Some(class) = s.device_class {
            set("device_class", class.into());
        }
        if let Some(p) = s.precision {
            set("suggested_display_precision", p.into());
        }
        if let Some(icon) = s.icon {
            set("icon", icon.into());
        }
        if s.diagnostic {
            set("entity_category", "diagnostic".into());
        }
        out.push((topic(s.key), map));
    }
    let mut map = common(CAMERA, "Camera");
    map.insert("state_topic".into(), mqtt.topic("camera").into());
    map.insert("value_template".into(), "{{ value_json.state }}".into());
    // `source`, `reason` (when lost) and `since_utc_us` as the entity's attributes.
    map.insert("json_attributes_topic".into(), mqtt.topic("camera").into());
    map.insert("icon".into(), "mdi:cctv".into());
    out.push((topic(CAMERA), map));
    out.into_iter().map(|(t, map)| (t, Value::Object(map).to_string().into_bytes())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{Broker, QoS};

    fn settings(device: &str) -> super::super::Settings {
        super::super::Settings {
            broker: Broker::plain("127.0.0.1", 1883),
            prefix: "smplcast".into(),
            device_id: device.into(),
            pose_qos: QoS::AtMostOnce,
            client_cap: 64,
            max_age: Duration::from_secs(2),
            discovery: Vec::new(),
        }
    }

    fn messages(device: &str) -> Vec<(String, Value)> {
        discovery(&settings(device), &Settings::default(), Duration::from_secs(5))
            .into_iter()
            .map(|(t, p)| (t, serde_json::from_slice(&p).unwrap()))
            .collect()
    }

    /// HA's `TOPIC_MATCHER` (components/mqtt/discovery.py, 2024.3), written out:
    /// `(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config`
    /// after the discovery prefix.
    fn matches_discovery_pattern(topic: &str, prefix: &str) -> bool {
        let id = |s: &str| {
            !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        };
        let Some(rest) = topic.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) else {
            return false;
        };
        let levels: Vec<&str> = rest.split('/').collect();
        match levels.as_slice() {
            [component, node, object, "config"] => {
                component.chars().all(|c| c.is_alphanumeric() || c == '_') && id(node) && id(object)
            }
            _ => false,
        }
    }

    #[test]
    fn ids_are_sanitised_and_state_topics_keep_the_device_id() {
        let all = messages("cam.front-1");
        assert_eq!(all.len(), 7);
        for (topic, p) in &all {
            assert!(matches_discovery_pattern(topic, "homeassistant"), "{topic}");
            assert!(topic.starts_with("homeassistant/sensor/smplcast_cam_front-1/"), "{topic}");
            for key in ["unique_id", "object_id"] {
                let id = p[key].as_str().unwrap();
                assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)), "{id}");
            }
            let state = p["state_topic"].as_str().unwrap();
            assert!(state.starts_with("smplcast/cam.front-1/"), "{state}");
            assert_eq!(p["availability_topic"], "smplcast/cam.front-1/status");
            assert_eq!(p["device"]["identifiers"][0], "smplcast_cam_front-1");
        }
        let ids: std::collections::BTreeSet<_> =
            all.iter().map(|(_, p)| p["unique_id"].as_str().unwrap().to_string()).collect();
        assert_eq!(ids.len(), all.len(), "unique ids");
        assert_eq!(sanitise("a/b.c d"), "a_b_c_d");
    }

    #[test]
    fn stats_expire_after_three_intervals() {
        assert_eq!(expire_after(Duration::from_secs(5)), 15);
        assert_eq!(expire_after(Duration::from_millis(100)), 1);
        assert_eq!(expire_after(Duration::from_millis(1500)), 5);
        for (_, p) in messages("cam0") {
            let stats = p["state_topic"] == "smplcast/cam0/stats";
            assert_eq!(p["expire_after"].as_u64(), stats.then_some(15), "{p}");
        }
    }

    /// Every template's key is in a real stats report (and the camera's in a camera state):
    /// a renamed report field fails here, not in Home Assistant.
    #[test]
    fn template_keys_exist_in_the_reports() {
        use crate::telemetry::stats::{MqttCounters, Reporter};
        use crate::telemetry::{CameraState, Streaming};
        let report = Reporter::new(
            std::sync::Arc::default(),
            std::sync::Arc::new(MqttCounters::default()),
            Vec::new(),
        )
        .report();
        let stats = serde_json::to_value(&report).unwrap();
        let camera = serde_json::to_value(CameraState {
            state: Streaming::Streaming,
            source: "synthetic".into(),
            reason: None,
            since_utc_us: 0,
        })
        .unwrap();
        let mut keys = Vec::new();
        for (_, p) in messages("cam0") {
            let template = p["value_template"].as_str().unwrap();
            let key = template
                .strip_prefix("{{ value_json.")
                .and_then(|t| t.strip_suffix(" }}"))
                .unwrap_or_else(|| panic!("{template}"));
            let payload = if p["state_topic"] == "smplcast/cam0/camera" { &camera } else { &stats };
            assert!(payload[key].is_number() || payload[key].is_string(), "{key} in {payload}");
            keys.push(key.to_string());
        }
        assert_eq!(keys[..6], STATS_KEYS.map(String::from));
        assert_eq!(keys[6], "state");
    }

    /// `SMPLCAST_HA_DISCOVERY=FILE cargo test --lib homeassistant` writes the messages for a
    /// dotted device id as JSON lines (`{"topic", "payload"}`), for
    /// `tests/homeassistant/run tests/homeassistant/validate.py FILE`.
    #[test]
    fn writes_the_messages_as_json_lines_when_asked() {
        let Some(file) = std::env::var_os("SMPLCAST_HA_DISCOVERY") else { return };
        let lines: Vec<String> = messages("cam.0")
            .into_iter()
            .map(|(topic, payload)| json!({ "topic": topic, "payload": payload }).to_string())
            .collect();
        std::fs::write(file, lines.join("\n") + "\n").unwrap();
    }
}
