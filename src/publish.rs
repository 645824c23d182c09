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
//! that doubles from 100 ms up to [`MAX_BACKOFF`] (1 s, so the stream is back within about a
//! second of the broker). On every (re)connection the retained `online` is published again.
//! A clean shutdown drains the queue, publishes `offline`, waits for the broker's
//! acknowledgement of it, then disconnects, all within [`FLUSH_DEADLINE`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use rumqttc::QoS;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, TlsConfiguration, Transport};
use tokio_util::sync::CancellationToken;

use crate::queue;

/// Where and how to publish.
#[derive(Clone, Debug)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    /// Topic prefix, without trailing slash.
    pub prefix: String,
    pub device_id: String,
    /// QoS of pose messages (0 recommended: a stale pose is worth nothing).
    pub pose_qos: QoS,
    pub keep_alive: Duration,
    /// Capacity of rumqttc's request channel (messages waiting for the socket).
    pub client_cap: usize,
    /// A pose message that waited this long for the broker is stale: dropped, not sent.
    pub max_age: Duration,
    /// User name and password, for brokers that require a login.
    pub login: Option<Login>,
    /// TLS to the broker (`None`: plain TCP); built and checked by [`crate::tls`].
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A broker login.
#[derive(Clone, Debug)]
pub struct Login {
    pub username: String,
    pub password: Password,
}

/// A password: never printed (its `Debug` says `Password(***)`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// An encoded pose message and when it was made.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub bytes: Vec<u8>,
    pub made: Instant,
}

impl Outgoing {
    pub fn now(bytes: Vec<u8>) -> Self {
        Outgoing { bytes, made: Instant::now() }
    }
}

impl Settings {
    pub fn topic(&self, leaf: &str) -> String {
        format!("{}/{}/{leaf}", self.prefix, self.device_id)
    }
}

/// Counters shared with the stats reporter.
#[derive(Debug, Default)]
pub struct Counters {
    /// Pose messages handed to rumqttc; it sends them once connected (while the broker is down
    /// they wait in its bounded request channel).
    pub queued: AtomicU64,
    /// Pose messages dropped because rumqttc's request channel was full (broker slow or down).
    pub publish_dropped: AtomicU64,
    /// Pose messages dropped because they waited longer than `max_age` (a broker outage).
    pub stale: AtomicU64,
    /// Successful connections (1 + reconnections).
    pub connections: AtomicU64,
    /// Handing pose messages to rumqttc (the socket write is its event loop's).
    pub handoff: crate::stats::Stage,
    /// Why the last connection attempt failed, for the start-up error.
    pub last_failure: std::sync::Mutex<Option<Failure>>,
}

/// A failed connection attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    /// rumqttc's error, as text.
    pub message: String,
}

/// What a failed connection attempt means for the user: which settings to look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// No answer, a reset or a closed connection: the broker is down or elsewhere.
    Unreachable,
    /// The broker answered CONNECT with a refusal (bad login, not authorised).
    Refused,
    /// The broker's certificate did not verify: another CA, or a host it does not name.
    BrokerCertificate,
    /// The broker rejected our client certificate, or wanted one and got none.
    ClientCertificate,
    /// Another TLS failure, e.g. TLS to a plain listener.
    Handshake,
}

impl Failure {
    fn of(e: &rumqttc::ConnectionError) -> Self {
        use rustls::AlertDescription as Alert;
        let kind = match (e, tls_error(e)) {
            (rumqttc::ConnectionError::ConnectionRefused(_), _) => FailureKind::Refused,
            (_, Some(rustls::Error::InvalidCertificate(_))) => FailureKind::BrokerCertificate,
            (
                _,
                Some(rustls::Error::AlertReceived(
                    Alert::CertificateRequired
                    | Alert::BadCertificate
                    | Alert::UnknownCA
                    | Alert::CertificateUnknown
                    | Alert::CertificateExpired
                    | Alert::CertificateRevoked
                    | Alert::UnsupportedCertificate
                    | Alert::AccessDenied,
                )),
            ) => FailureKind::ClientCertificate,
            (rumqttc::ConnectionError::Tls(_), _) | (_, Some(_)) => FailureKind::Handshake,
            _ => FailureKind::Unreachable,
        };
        Failure { kind, message: e.to_string() }
    }
}

/// The rustls error behind `e`, if any. rustls reports through `std::io::Error`, whose
/// `source()` skips the error it wraps, so each I/O error is also opened with `get_ref`.
fn tls_error(e: &rumqttc::ConnectionError) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let inner = err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        if let Some(tls) = inner.and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return Some(tls);
        }
        next = err.source();
    }
    None
}

/// Errors that end the publisher.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("MQTT client request failed: {0}")]
    Client(#[from] rumqttc::ClientError),
}

const STATUS_ONLINE: &str = "online";
const STATUS_OFFLINE: &str = "offline";
/// The longest wait between two connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long a clean shutdown waits for `offline` and the disconnect to reach the broker.
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(2);

/// A message for a topic other than `pose`: stats (QoS 0) or a retained state such as the
/// camera's (QoS 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// Topic leaf: `<prefix>/<device_id>/<leaf>`.
    pub leaf: &'static str,
    pub payload: Vec<u8>,
    /// Retained, QoS 1 (a state a late subscriber must see); else QoS 0, not retained.
    pub retain: bool,
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
    let mut opts =
        MqttOptions::new(format!("smplcast-{}", settings.device_id), &settings.host, settings.port);
    opts.set_keep_alive(settings.keep_alive).set_clean_session(true).set_last_will(LastWill::new(
        &status,
        STATUS_OFFLINE,
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(login) = &settings.login {
        opts.set_credentials(login.username.clone(), login.password.0.clone());
    }
    if let Some(tls) = &settings.tls {
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls.clone())));
    }
    let (client, mut eventloop) = AsyncClient::new(opts, settings.client_cap.max(1));

    // The event loop drives the socket: connection, reconnection with backoff, acks.
    let loop_client = client.clone();
    let loop_counters = counters.clone();
    let loop_status = status.clone();
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
    // PUBACKs seen: a clean shutdown waits for the ack of `offline`, which the broker sends
    // after routing everything published before it (some brokers drop what is in flight at
    // DISCONNECT).
    let (acks_tx, mut acks_rx) = tokio::sync::watch::channel(0u64);
    // Whether the broker has accepted the current connection: poses go to rumqttc only then.
    let (connected_tx, mut connected_rx) = tokio::sync::watch::channel(false);
    let driver = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut disconnecting = false;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(100);
                    loop_counters.connections.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(topic = %loop_status, "Connected to the MQTT broker.");
                    let _ = loop_client.try_publish(
                        &loop_status,
                        QoS::AtLeastOnce,
                        true,
                        STATUS_ONLINE,
                    );
                    let _ = connected_tx.send(true);
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acks_tx.send_modify(|n| *n += 1);
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                    // Keep reading until the broker closes the connection: closing a socket
                    // with unread acks in it makes the kernel send a reset, and the broker
                    // then discards what it has not read yet (the last poses, `offline`).
                    disconnecting = true;
                }
                Ok(_) => {}
                Err(e) => {
                    if disconnecting {
                        let _ = done_tx.send(true);
                        return;
                    }
                    let _ = connected_tx.send(false);
                    if let Ok(mut last) = loop_counters.last_failure.lock() {
                        *last = Some(Failure::of(&e));
                    }
                    tracing::warn!(error = %e, retry_in = ?backoff, "MQTT connection failed.");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    });

    let max_age = settings.max_age;
    let publish_pose = |out: Outgoing| {
        let t0 = Instant::now();
        if out.made.elapsed() > max_age {
            counters.stale.fetch_add(1, Ordering::Relaxed);
        } else if client.try_publish(&pose, settings.pose_qos, false, out.bytes).is_ok() {
            counters.queued.fetch_add(1, Ordering::Relaxed);
        } else {
            counters.publish_dropped.fetch_add(1, Ordering::Relaxed);
        }
        counters.handoff.add(t0.elapsed());
    };
    let publish_notice = |n: Notice| {
        let qos = if n.retain { QoS::AtLeastOnce } else { QoS::AtMostOnce };
        // A stats report lost to a full request channel is replaced soon; a state is
        // published again on its next change.
        let _ = client.try_publish(settings.topic(n.leaf), qos, n.retain, n.payload);
    };
    let next_notice = || async {
        match &notice_rx {
            Some(rx) => rx.recv_async().await.ok(),
            None => std::future::pending().await,
        }
    };
    // Retained states that arrived while disconnected: the latest per topic.
    let mut held: BTreeMap<&'static str, Notice> = BTreeMap::new();
    let mut connected = *connected_rx.borrow_and_update();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = connected_rx.changed() => {
                if changed.is_err() {
                    break; // the event loop ended
                }
                connected = *connected_rx.borrow_and_update();
                if connected {
                    for (_, n) in std::mem::take(&mut held) {
                        publish_notice(n);
                    }
                }
            }
            msg = pose_rx.recv_async(), if connected => match msg {
                Ok(out) => publish_pose(out),
                Err(_) => break,
            },
            // Disconnected, poses wait; the pipeline may end meanwhile.
            _ = tokio::time::sleep(Duration::from_millis(100)), if !connected => {
                if pose_rx.is_closed() {
                    break;
                }
            }
            Some(n) = next_notice() => {
                if connected {
                    publish_notice(n);
                } else if n.retain {
                    held.insert(n.leaf, n);
                }
            }
        };
    }
    // What was already queued goes out before `offline` (the queue is bounded: a few items).
    while let Some(out) = pose_rx.try_recv() {
        publish_pose(out);
    }

    // Clean shutdown: `offline` (retained), then DISCONNECT; the driver ends when it is sent.
    let flush = async {
        let acks = *acks_rx.borrow_and_update();
        client.publish(&status, QoS::AtLeastOnce, true, STATUS_OFFLINE).await?;
        while *acks_rx.borrow_and_update() == acks {
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
