//! What the daemon tells about itself, apart from poses: its counters and stats reports
//! ([`stats`]), its state to systemd ([`systemd`]), its log ([`log`]), its memory ([`memory`]), and the
//! [`Notice`]s for subscribers. A leaf: it does not know MQTT; `mqtt` chooses the topics, QoS
//! and retain flags of what it is given.

use serde::Serialize;

pub mod log;
pub mod memory;
pub mod stats;
pub mod systemd;

/// A notice for subscribers, besides the poses.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// The source's state changed: a state a late subscriber must see.
    Camera(CameraState),
    /// A periodic report: replaced by the next one.
    Stats(stats::Report),
}

/// The source's state (docs/WIRE.md, `camera`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CameraState {
    pub state: Streaming,
    /// The source as configured and negotiated.
    pub source: String,
    /// Why it is lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it entered this state, µs since the Unix epoch.
    pub since_utc_us: i64,
}

/// Whether the source delivers frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Streaming {
    Streaming,
    Lost,
    /// The daemon stopped reading it (a clean stop, or the source ended).
    Stopped,
}
