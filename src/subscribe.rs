//! `smplcast sub`: subscribes to the pose, status and stats topics and prints each message as one JSON
//! line, for debugging a deployment from a terminal.
//!
//! Pose payloads are decoded with [`crate::wire::decode`]; payloads that do not decode are
//! printed as an `error` line, never dropped silently.

use std::io::Write;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::wire;

/// What to subscribe to.
#[derive(Clone, Debug)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub prefix: String,
    /// Device id, or `+` for every device.
    pub device: String,
    /// Stop after this many pose messages.
    pub count: Option<u64>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Line<'a> {
    Pose { topic: &'a str, pose: wire::PoseMsg },
    Status { topic: &'a str, status: &'a str, retained: bool },
    Stats { topic: &'a str, stats: serde_json::Value },
    Error { topic: &'a str, error: String },
}

/// Errors that end the subscriber.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("MQTT broker {host}:{port} unreachable ({source}); is it running, and are --host and --port right?")]
    Connection { host: String, port: u16, source: rumqttc::ConnectionError },
    #[error("MQTT client request failed: {0}")]
    Client(#[from] rumqttc::ClientError),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// Prints messages to `out` until `shutdown`, or until `settings.count` poses were printed.
///
/// # Errors
/// [`Error::Connection`] when the broker cannot be reached at all (the first connection
/// attempt fails), [`Error::Output`] when `out` fails.
pub async fn run(
    settings: Settings,
    mut out: impl Write,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let id = format!("smplcast-sub-{}", std::process::id());
    let mut opts = MqttOptions::new(id, &settings.host, settings.port);
    opts.set_keep_alive(Duration::from_secs(30)).set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    let base = format!("{}/{}", settings.prefix, settings.device);
    client.subscribe(format!("{base}/pose"), QoS::AtMostOnce).await?;
    client.subscribe(format!("{base}/status"), QoS::AtLeastOnce).await?;
    client.subscribe(format!("{base}/stats"), QoS::AtMostOnce).await?;
    let (mut poses, mut connected) = (0u64, false);
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            e = eventloop.poll() => e,
        };
        let publish = match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                connected = true;
                continue;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => p,
            Ok(_) => continue,
            Err(source) if !connected => {
                return Err(Error::Connection {
                    host: settings.host.clone(),
                    port: settings.port,
                    source,
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "MQTT connection lost; reconnecting.");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let topic = publish.topic.as_str();
        let line = if topic.ends_with("/status") {
            let status = std::str::from_utf8(&publish.payload).unwrap_or("<not UTF-8>");
            Line::Status { topic, status, retained: publish.retain }
        } else if topic.ends_with("/stats") {
            match serde_json::from_slice(&publish.payload) {
                Ok(stats) => Line::Stats { topic, stats },
                Err(e) => Line::Error { topic, error: format!("stats are not JSON: {e}") },
            }
        } else {
            match wire::decode(&publish.payload) {
                Ok(pose) => {
                    poses += 1;
                    Line::Pose { topic, pose }
                }
                Err(e) => Line::Error { topic, error: e.to_string() },
            }
        };
        serde_json::to_writer(&mut out, &line).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        out.flush()?;
        if settings.count.is_some_and(|n| poses >= n) {
            break;
        }
    }
    let _ = client.try_disconnect();
    Ok(())
}
