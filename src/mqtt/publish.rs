//! MQTT publisher: pose messages and status to a broker with rumqttc, on the tokio runtime.
//!
//! Topics (docs/WIRE.md): `<prefix>/<device_id>/pose` (CBOR, not retained, QoS from settings),
//! `<prefix>/<device_id>/status` (`online` / `offline`, retained, QoS 1; `offline` is also the
//! last will, so a killed daemon still reads `offline`).
//!
//! Input is a [`queue::Receiver`] of [`Outgoing`] pose messages: a drop-oldest queue, so a slow
//! or absent broker never blocks inference; what it drops is counted there. Poses are handed
//! to rumqttc only while connected: during an outage they wait in that bounded queue (memory
//! stays bounded, the oldest are dropped and counted) and rumqttc's own request channel holds
//! at most what was in flight when the connection broke. A pose that waited longer than
//! `max_age` is stale: it is dropped and counted ([`Counters::stale`]) instead of being sent, so
//! a reconnection brings the live stream back, not a flood of old poses. Stats published
//! during an outage are dropped (the next report replaces them); retained states (the
//! camera's) are kept, the latest per topic, and published on reconnection.
//!
//! Reconnection is rumqttc's: the event loop is polled again after an error, with a backoff
//! of [`Backoff`] (from 100 ms up to 1 s, so the stream is back within about a second of the
//! broker). On every (re)connection the retained `online` is published again.
//! A clean shutdown drains the queue, publishes `offline`, waits for the broker's
//! acknowledgement of it, then disconnects, all within [`FLUSH_DEADLINE`].
//!
//! MQTT 5 (docs/WIRE.md "MQTT 5 properties"): poses carry their content type, payload format,
//! schema version and an expiry of `max_age` (rounded up to whole seconds), so a broker drops
//! them for a slow subscriber too. With a clean session, the pose topic goes by topic alias 1 when
//! the broker takes aliases: the topic once per connection, then the alias alone. The alias is
//! tied to the connection that got it (a connection count), so an alias-only publish is never
//! decided for a later connection; what rumqttc still held when a connection broke is discarded
//! with the clean session (rumqttc keeps it only when the broker resumes a session, and a kept
//! session, `session_expiry`, sends full topics).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::link::{Event, Props, RequestError};
use super::{Broker, Failure, QoS, Seen, Settings, Will};
use crate::queue;
use crate::stages::output::{Outbox, Outgoing, Publisher, Running};
use crate::telemetry::stats::MqttCounters;
use crate::telemetry::Notice;

/// What the publisher shares with the daemon.
#[derive(Debug, Default)]
pub struct Counters {
    /// Its counters, for the stats report.
    pub stats: Arc<MqttCounters>,
    /// Why the last connection attempt failed, for the start-up error.
    pub last_failure: std::sync::Mutex<Option<Failure>>,
}

/// The daemon's publisher: [`run`] as a [`Publisher`], with start-up waiting for the broker
/// ([`wait_for_broker`]).
pub struct Mqtt {
    settings: Settings,
    connect_timeout: Option<Duration>,
    counters: Arc<Counters>,
}

impl Mqtt {
    /// `connect_timeout`: how long start-up waits for the broker (`None`: as long as it takes).
    pub fn new(settings: Settings, connect_timeout: Option<Duration>) -> Self {
        Mqtt { settings, connect_timeout, counters: Arc::default() }
    }
}

impl Publisher for Mqtt {
    fn run(&self, out: Outbox) -> Running {
        let (settings, counters) = (self.settings.clone(), self.counters.clone());
        Box::pin(async move {
            run(settings, out.poses, Some(out.notices), counters, out.stop).await?;
            Ok(())
        })
    }

    fn wait_ready(
        &self,
        shutdown: &CancellationToken,
        gone: &dyn Fn() -> bool,
    ) -> anyhow::Result<()> {
        let broker = &self.settings.broker;
        wait_for_broker(broker, self.connect_timeout, &self.counters, shutdown, gone)?;
        Ok(())
    }

    fn counters(&self) -> Arc<MqttCounters> {
        self.counters.stats.clone()
    }
}

/// Errors of the publisher.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Client(#[from] RequestError),
    #[error("stopped while connecting to the MQTT broker at {0}")]
    Stopped(String),
    #[error("cannot connect to the MQTT broker at {broker}{within} ({last_error}); {fix}")]
    Unreachable { broker: String, within: String, last_error: String, fix: &'static str },
}

/// Waits until the publisher's first connection is accepted: up to `timeout`, or, with
/// `None`, as long as it takes (or until `gone()`: the publisher ended). Meanwhile nothing
/// else runs; under systemd the status says what it waits for, and the start timeout is
/// extended while it keeps trying.
///
/// # Errors
/// [`Error::Unreachable`], naming the broker, rumqttc's last error and the `[mqtt]` keys to
/// fix; [`Error::Stopped`] when `shutdown` is cancelled meanwhile.
pub fn wait_for_broker(
    broker: &Broker,
    timeout: Option<Duration>,
    counters: &Counters,
    shutdown: &CancellationToken,
    gone: impl Fn() -> bool,
) -> Result<(), Error> {
    let started = Instant::now();
    let mut next_report = started + Duration::from_secs(1);
    let last_failure = || counters.last_failure.lock().ok().and_then(|e| e.clone());
    let last_error = || last_failure().map_or_else(|| "no answer".into(), |f| f.message);
    while counters.stats.connections.load(Ordering::Relaxed) == 0 {
        if shutdown.is_cancelled() {
            return Err(Error::Stopped(broker.describe()));
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) || gone() {
            return Err(Error::Unreachable {
                broker: broker.describe(),
                within: timeout.map_or(String::new(), |t| format!(" within {t:?}")),
                last_error: last_error(),
                fix: Failure::fix(last_failure().map(|f| f.kind), broker.tls.is_some()),
            });
        }
        if Instant::now() >= next_report {
            let waited = started.elapsed().as_secs();
            let status = format!(
                "waiting for the MQTT broker at {} for {waited} s ({})",
                broker.describe(),
                last_error()
            );
            if waited == 1 || waited.is_multiple_of(30) {
                tracing::warn!(
                    "{status}; retrying (mqtt.connect_timeout_s = 0: until it answers)."
                );
            }
            crate::telemetry::systemd::waiting(&status, Duration::from_secs(10));
            next_report += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

const STATUS_ONLINE: &str = "online";
const STATUS_OFFLINE: &str = "offline";
const JSON: &str = "application/json";
/// How long a clean shutdown waits for `offline` and the disconnect to reach the broker.
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(2);

/// A notice as it is published: topic leaf, JSON payload, retained.
type NoticeMessage = (&'static str, Vec<u8>, bool);

/// The MQTT 5 properties of a pose message (docs/WIRE.md).
fn pose_props(max_age: Duration) -> Props {
    // Whole seconds, rounded up, at least 1 (0 would mean "expired" to some brokers).
    let expiry = max_age.as_secs() + u64::from(max_age.subsec_nanos() > 0);
    Props {
        content_type: Some("application/cbor"),
        payload_format: Some(0),
        expiry_s: Some(u32::try_from(expiry.max(1)).unwrap_or(u32::MAX)),
        alias: None,
        user: vec![("smplcast-schema".into(), crate::wire::SCHEMA_VERSION.to_string())],
    }
}

/// The MQTT 5 properties of a text payload (`status`) or a JSON one (`camera`, `stats`,
/// discovery configs).
fn text_props(content_type: &'static str) -> Props {
    Props { content_type: Some(content_type), payload_format: Some(1), ..Props::default() }
}

/// The pose topic's alias (the only one the daemon uses).
const POSE_ALIAS: u16 = 1;

/// The connection the publisher hands messages to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Connection {
    /// Counts the connections accepted, from 1.
    number: u64,
    /// Whether the pose topic may go by [`POSE_ALIAS`] on it.
    alias: bool,
}

/// A [`Notice`]'s topic leaf (`<prefix>/<device_id>/<leaf>`), JSON payload and whether it
/// is a retained state (QoS 1, a late subscriber must see it) or a report (QoS 0, not
/// retained: the next one replaces it).
fn notice_message(n: &Notice) -> Option<NoticeMessage> {
    match n {
        Notice::Camera(state) => Some(("camera", serde_json::to_vec(state).ok()?, true)),
        Notice::Stats(report) => Some(("stats", serde_json::to_vec(report).ok()?, false)),
    }
}

/// Publishes what arrives on `pose_rx` (and the [`Notice`]s on `notice_rx`) until
/// `shutdown` is cancelled or the pose queue closes, then publishes `offline` and disconnects
/// (within [`FLUSH_DEADLINE`]).
///
/// # Errors
/// [`Error::Client`] if rumqttc refuses a request outright (its channel closed).
pub async fn run(
    settings: Settings,
    pose_rx: queue::Receiver<Outgoing>,
    notice_rx: Option<queue::Receiver<Notice>>,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let status = settings.topic("status");
    let pose = settings.topic("pose");
    let will = Will { topic: status.clone(), payload: STATUS_OFFLINE };
    let (client, eventloop) = settings.broker.connect(
        format!("smplcast-{}", settings.device_id),
        settings.client_cap,
        Some(will),
    );
    // Aliases only with a clean session: a kept one resends queued messages on the next
    // connection, where the alias means nothing.
    let alias_allowed = settings.broker.session_expiry.is_none();
    let discovery = settings.discovery.clone();

    // The event loop drives the socket: connection, reconnection with backoff, acks.
    let loop_client = client.clone();
    let loop_counters = counters.clone();
    let loop_status = status.clone();
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
    // QoS 1 publishes handed to rumqttc, and the PUBACKs seen. A clean shutdown waits until
    // every one is acknowledged, `offline` (the last) included: the broker acks `offline`
    // after routing everything published before it (some brokers drop what is in flight at
    // DISCONNECT), and counting them all means no earlier ack (a late pose's) ends the wait.
    let sent_qos1 = Arc::new(AtomicU64::new(0));
    let (acks_tx, mut acks_rx) = tokio::sync::watch::channel(0u64);
    let loop_sent_qos1 = sent_qos1.clone();
    // The connection the broker has accepted, if any: poses go to rumqttc only then.
    let (connected_tx, mut connected_rx) = tokio::sync::watch::channel(None::<Connection>);
    let driver = tokio::spawn(async move {
        super::drive(eventloop, |seen| match seen {
            Seen::Event(Event::Connected { alias_max, .. }) => {
                let number = loop_counters.stats.connections.fetch_add(1, Ordering::Relaxed) + 1;
                let protocol = loop_client.protocol();
                tracing::info!(topic = %loop_status, %protocol, "Connected to the MQTT broker.");
                let mut retained = vec![(loop_status.clone(), STATUS_ONLINE.into(), "text/plain")];
                retained.extend(discovery.iter().map(|(t, p)| (t.clone(), p.clone(), JSON)));
                for (topic, payload, kind) in retained {
                    let props = text_props(kind);
                    if loop_client
                        .try_publish(&topic, QoS::AtLeastOnce, true, payload, &props)
                        .is_ok()
                    {
                        loop_sent_qos1.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let alias = alias_allowed && *alias_max >= POSE_ALIAS;
                let _ = connected_tx.send(Some(Connection { number, alias }));
            }
            // QoS 1 acks, and QoS 2's completions.
            Seen::Event(Event::Acked) => acks_tx.send_modify(|n| *n += 1),
            Seen::Event(_) => {}
            Seen::Failed(failure) => {
                let _ = connected_tx.send(None);
                if let Ok(mut last) = loop_counters.last_failure.lock() {
                    *last = Some(failure.clone());
                }
            }
        })
        .await;
        let _ = done_tx.send(true);
    });

    let max_age = settings.max_age;
    let qos1 = |qos: QoS| if qos == QoS::AtMostOnce { 0 } else { 1 };
    let mut pose_props = pose_props(max_age);
    // The connection on which the pose topic was sent with its alias.
    let mut announced = 0u64;
    let mut publish_pose = |out: Outgoing, on: Option<Connection>| {
        let t0 = Instant::now();
        let (topic, alias) = match on {
            Some(c) if c.alias && announced == c.number => ("", Some(POSE_ALIAS)),
            Some(c) if c.alias => (pose.as_str(), Some(POSE_ALIAS)),
            _ => (pose.as_str(), None),
        };
        pose_props.alias = alias;
        if out.made.elapsed() > max_age {
            counters.stats.stale.fetch_add(1, Ordering::Relaxed);
        } else if client
            .try_publish(topic, settings.pose_qos, false, out.bytes, &pose_props)
            .is_ok()
        {
            if let (Some(c), Some(_)) = (on, alias) {
                announced = c.number;
            }
            counters.stats.queued.fetch_add(1, Ordering::Relaxed);
            sent_qos1.fetch_add(qos1(settings.pose_qos), Ordering::Relaxed);
        } else {
            counters.stats.publish_dropped.fetch_add(1, Ordering::Relaxed);
        }
        counters.stats.handoff.add(t0.elapsed());
    };
    let publish_notice = |(leaf, payload, retain): NoticeMessage| {
        let qos = if retain { QoS::AtLeastOnce } else { QoS::AtMostOnce };
        // A stats report lost to a full request channel is replaced soon; a state is
        // published again on its next change and on every connection (`held`).
        let (topic, props) = (settings.topic(leaf), text_props(JSON));
        if client.try_publish(&topic, qos, retain, payload, &props).is_ok() {
            sent_qos1.fetch_add(qos1(qos), Ordering::Relaxed);
        }
    };
    let next_notice = || async {
        match &notice_rx {
            Some(rx) => rx.recv_async().await.ok(),
            None => std::future::pending().await,
        }
    };
    // The latest retained state per topic (the camera's), published again on every connection:
    // a broker restarted without persistence has lost it.
    let mut held: BTreeMap<&'static str, NoticeMessage> = BTreeMap::new();
    let mut connected = *connected_rx.borrow_and_update();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = connected_rx.changed() => {
                if changed.is_err() {
                    break; // the event loop ended
                }
                connected = *connected_rx.borrow_and_update();
                if connected.is_some() {
                    for n in held.values() {
                        publish_notice(n.clone());
                    }
                }
            }
            msg = pose_rx.recv_async(), if connected.is_some() => match msg {
                // The connection as it is now, not as this loop last saw it.
                Ok(out) => publish_pose(out, *connected_rx.borrow()),
                Err(_) => break,
            },
            // Disconnected, poses wait; the pipeline may end meanwhile.
            _ = tokio::time::sleep(Duration::from_millis(100)), if connected.is_none() => {
                if pose_rx.is_closed() {
                    break;
                }
            }
            Some(n) = next_notice() => match notice_message(&n) {
                Some(m @ (leaf, _, true)) => {
                    if connected.is_some() {
                        publish_notice(m.clone());
                    }
                    held.insert(leaf, m);
                }
                // A report is dropped while disconnected (the next one replaces it).
                Some(m) if connected.is_some() => publish_notice(m),
                Some(_) | None => {}
            },
        };
    }
    // What was already queued goes out before `offline` (the queue is bounded: a few items).
    while let Some(out) = pose_rx.try_recv() {
        publish_pose(out, *connected_rx.borrow());
    }
    // So do the notices that came with the end: the camera's `stopped`.
    while let Some(n) = notice_rx.as_ref().and_then(queue::Receiver::try_recv) {
        match notice_message(&n) {
            Some(m) if connected.is_some() => publish_notice(m),
            _ => {}
        }
    }

    // Clean shutdown: `offline` (retained), then DISCONNECT; the driver ends when it is sent.
    let flush = async {
        let (offline, props) = (STATUS_OFFLINE.into(), text_props("text/plain"));
        client.publish(&status, QoS::AtLeastOnce, true, offline, &props).await?;
        let all = sent_qos1.fetch_add(1, Ordering::Relaxed) + 1;
        while *acks_rx.borrow_and_update() < all {
            if acks_rx.changed().await.is_err() {
                break;
            }
        }
        client.disconnect().await?;
        while !*done_rx.borrow() {
            if done_rx.changed().await.is_err() {
                break;
            }
        }
        Ok::<(), Error>(())
    };
    let result = match tokio::time::timeout(FLUSH_DEADLINE, flush).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!(
                "MQTT broker did not take the disconnect in time; the last will says offline."
            );
            Ok(())
        }
    };
    driver.abort();
    result
}
